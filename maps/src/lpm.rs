//! LPM_TRIE with the kernel's lpm_trie.c semantics, in a preallocated node pool.
//!
//! # Memory (offsets inside the map's data region)
//! ```text
//! 0   control block: root u32 | lock u32 | seq u32 | n_entries u32 |
//!                    free_head u32 | fresh u32 | repair mark u32 | reserved
//! 64  nodes: (2 * max_entries + 2) x { child[0] u32, child[1] u32,
//!            prefixlen u32, flags u32, data (round_up(data_size, 8)),
//!            value (round_up(value_size, 8)) }
//! ```
//! A node link is `idx + 1` (0 is null). `flags` bit 0 is the kernel's
//! LPM_TREE_NODE_FLAG_IM (intermediate node), bit 1 marks a node in use.
//! The tree has the kernel's exact shape (same insertion, intermediate-node and
//! deletion rules), so get_next_key walks it in the kernel's postorder.
//!
//! # Concurrency
//! - Every field is written only by the holder of `lock` (a pid spinlock); a
//!   node is filled before a Release store of a link publishes it.
//! - `seq` is odd while the holder changes links or frees nodes. Lock-free
//!   lookups walk with Acquire loads and retry when `seq` was odd or changed
//!   (a node they stood on may have been freed and reused); after a few
//!   retries they take the lock. The free list is threaded through `child[0]`
//!   and changed only under the lock.
//! - Node data and values are read and written with word-sized atomics.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use crate::def::{BPF_EXIST, BPF_NOEXIST};
use crate::error::MapError;
use crate::map::Map;
use crate::mem;

const NODE_IM: u32 = 1;
const NODE_USED: u32 = 2;
const NODE_HDR: usize = 16;
const OPTIMISTIC_TRIES: u32 = 16;

/// A link slot: the root or a child pointer of a node.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Root,
    Child(u32, u32),
}

impl Map {
    #[inline]
    fn lpm_ctrl(&self, off: usize) -> &AtomicU32 {
        // SAFETY: off < 24, inside the 64-byte control block at the start of the
        // data region, 4-aligned.
        unsafe { AtomicU32::from_ptr(self.data.wrapping_add(off) as *mut u32) }
    }
    fn lpm_root(&self) -> &AtomicU32 {
        self.lpm_ctrl(0)
    }
    pub(crate) fn lpm_lock(&self) -> &AtomicU32 {
        self.lpm_ctrl(4)
    }
    pub(crate) fn lpm_seq(&self) -> &AtomicU32 {
        self.lpm_ctrl(8)
    }
    pub(crate) fn lpm_n_entries(&self) -> &AtomicU32 {
        self.lpm_ctrl(12)
    }
    pub(crate) fn lpm_free_head(&self) -> &AtomicU32 {
        self.lpm_ctrl(16)
    }
    pub(crate) fn lpm_fresh(&self) -> &AtomicU32 {
        self.lpm_ctrl(20)
    }

    pub(crate) fn lpm_len(&self) -> u32 {
        self.lpm_n_entries().load(Ordering::Relaxed)
    }

    fn max_prefixlen(&self) -> u32 {
        (self.key_size - 4) * 8
    }

    /// Node base; `idx` is checked against nelems (clamped if not).
    #[inline]
    pub(crate) fn node(&self, idx: u32) -> *mut u8 {
        let idx = idx.min(self.nelems.saturating_sub(1));
        self.elems.wrapping_add(idx as usize * self.elem_size)
    }

    #[inline]
    fn n_u32(&self, idx: u32, off: usize) -> &AtomicU32 {
        // SAFETY: off < 16, inside the header of an in-bounds, 8-aligned node.
        unsafe { AtomicU32::from_ptr(self.node(idx).wrapping_add(off) as *mut u32) }
    }
    pub(crate) fn n_child(&self, idx: u32, bit: u32) -> &AtomicU32 {
        self.n_u32(idx, if bit == 0 { 0 } else { 4 })
    }
    pub(crate) fn n_prefixlen(&self, idx: u32) -> &AtomicU32 {
        self.n_u32(idx, 8)
    }
    pub(crate) fn n_flags(&self, idx: u32) -> &AtomicU32 {
        self.n_u32(idx, 12)
    }
    fn n_data(&self, idx: u32) -> *mut u8 {
        self.node(idx).wrapping_add(NODE_HDR)
    }
    fn n_value(&self, idx: u32) -> *mut u8 {
        self.node(idx).wrapping_add(NODE_HDR + self.key_stride)
    }

    fn slot(&self, s: Slot) -> &AtomicU32 {
        match s {
            Slot::Root => self.lpm_root(),
            Slot::Child(n, b) => self.n_child(n, b),
        }
    }

    /// Decodes a link: None for null or out-of-range.
    #[inline]
    pub(crate) fn lpm_link(&self, link: u32) -> Option<u32> {
        let idx = link.checked_sub(1)?;
        (idx < self.nelems).then_some(idx)
    }

    /// Word `w` of node `idx`'s data as a big-endian number (byte 0 most significant).
    #[inline]
    fn data_word(&self, idx: u32, w: usize) -> u64 {
        // SAFETY: w < key_stride / 8: inside the node's 8-aligned data area.
        let v = unsafe { AtomicU64::from_ptr(self.n_data(idx).add(w * 8) as *mut u64) }
            .load(Ordering::Relaxed);
        u64::from_be_bytes(v.to_ne_bytes())
    }

    /// The kernel's longest_prefix_match: matching leading bits of node `idx` and
    /// `key_data`, at most min(node prefixlen, `key_prefixlen`).
    fn match_len(&self, idx: u32, key_data: &[u8], key_prefixlen: u32) -> u32 {
        let limit = self
            .n_prefixlen(idx)
            .load(Ordering::Relaxed)
            .min(key_prefixlen);
        let mut bits = 0u32;
        for (w, chunk) in key_data.chunks(8).enumerate() {
            if bits >= limit {
                break;
            }
            let mut kb = [0u8; 8];
            kb[..chunk.len()].copy_from_slice(chunk);
            let x = self.data_word(idx, w) ^ u64::from_be_bytes(kb);
            if x != 0 {
                bits += x.leading_zeros();
                break;
            }
            bits += 64;
        }
        bits.min(limit)
    }

    /// Bit `index` of node `idx`'s data (0 past the data area: a prefix length
    /// read from a corrupt store never makes this read outside the node).
    fn node_bit(&self, idx: u32, index: u32) -> u32 {
        let w = index as usize / 64;
        if w >= self.key_stride / 8 {
            return 0;
        }
        let w = self.data_word(idx, w);
        ((w >> (63 - index % 64)) & 1) as u32
    }

    /// The link in slot `bit` of `parent`, checked as an edge of a well-formed
    /// trie: `Ok(None)` for no child, `Ok(Some(child))` when the child has a
    /// longer prefix (within the key), extends the parent's prefix and has
    /// `bit` at the parent's length, so that a lookup of its key reaches it
    /// through `parent`. Walks that follow only checked edges cannot loop.
    fn lpm_child_checked(&self, parent: u32, bit: u32) -> Result<Option<u32>, MapError> {
        let link = self.n_child(parent, bit).load(Ordering::Acquire);
        if link == 0 {
            return Ok(None);
        }
        let bad = |what: String| MapError::Corrupt {
            id: self.id,
            what: format!(
                "{:?}: lpm trie: child {bit} of node {parent}: {what}",
                self.meta.info.name
            ),
        };
        let child = self
            .lpm_link(link)
            .ok_or_else(|| bad(format!("link {link} out of range")))?;
        let pp = self.n_prefixlen(parent).load(Ordering::Relaxed);
        let cp = self.n_prefixlen(child).load(Ordering::Relaxed);
        if cp <= pp || cp > self.max_prefixlen() {
            return Err(bad(format!(
                "node {child} has prefix length {cp} under a parent of {pp} (a cycle or a bad node)"
            )));
        }
        let mut common = 0u32;
        for w in 0..(pp as usize).div_ceil(64) {
            let x = self.data_word(parent, w) ^ self.data_word(child, w);
            if x != 0 {
                common += x.leading_zeros();
                break;
            }
            common += 64;
        }
        if common < pp || self.node_bit(child, pp) != bit {
            return Err(bad(format!(
                "node {child} is not under its parent's prefix"
            )));
        }
        Ok(Some(child))
    }

    /// Allocates a node (under the lock): free list, then never-used nodes.
    fn lpm_alloc(&self) -> Option<u32> {
        let fh = self.lpm_free_head();
        if let Some(idx) = self.lpm_link(fh.load(Ordering::Relaxed)) {
            fh.store(
                self.n_child(idx, 0).load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
            return Some(idx);
        }
        let fresh = self.lpm_fresh();
        let f = fresh.load(Ordering::Relaxed);
        if f >= self.nelems {
            return None;
        }
        fresh.store(f + 1, Ordering::Relaxed);
        Some(f)
    }

    /// Returns a node to the free list (under the lock, inside a seq section).
    pub(crate) fn lpm_free(&self, idx: u32) {
        self.n_flags(idx).store(0, Ordering::Relaxed);
        let fh = self.lpm_free_head();
        self.n_child(idx, 0)
            .store(fh.load(Ordering::Relaxed), Ordering::Relaxed);
        self.n_child(idx, 1).store(0, Ordering::Relaxed);
        fh.store(idx + 1, Ordering::Relaxed);
    }

    fn seq_odd(&self) -> u32 {
        let s = self.lpm_seq().load(Ordering::Relaxed);
        let odd = if s & 1 == 1 { s.wrapping_add(2) } else { s | 1 };
        self.lpm_seq().store(odd, Ordering::Relaxed);
        fence(Ordering::Release);
        odd
    }

    fn seq_even(&self, odd: u32) {
        self.lpm_seq().store(odd.wrapping_add(1), Ordering::Release);
    }

    /// trie_lookup_elem's walk; returns the matching node. Keys of up to 16
    /// data bytes (IPv4, IPv6, MAC-sized keys) walk with the key in one or two
    /// machine words (`lpm_walk_bits`); longer ones byte-slice by byte-slice.
    fn lpm_walk(&self, key_data: &[u8], key_prefixlen: u32) -> Option<u32> {
        match key_data.len() {
            0..=8 => self.lpm_walk_bits(u64::from_key(key_data), key_prefixlen),
            9..=16 => self.lpm_walk_bits(u128::from_key(key_data), key_prefixlen),
            _ => self.lpm_walk_slices(key_data, key_prefixlen),
        }
    }

    /// `lpm_walk_slices` with the key data as one big-endian number `B` (zero
    /// past the data, as the nodes' data areas are): each node costs one or two
    /// word loads, an xor and a leading-zero count.
    #[inline(always)]
    fn lpm_walk_bits<B: LpmBits>(&self, key: B, key_prefixlen: u32) -> Option<u32> {
        debug_assert!(self.key_stride >= B::BYTES);
        let max = self.max_prefixlen();
        let mut found = None;
        let mut link = self.lpm_root().load(Ordering::Acquire);
        let mut steps = 0;
        while let Some(n) = self.lpm_link(link) {
            steps += 1;
            if steps > max + 2 {
                return None; // a loop: only while a writer reuses nodes under us
            }
            // n < nelems (lpm_link): the node lies inside the pool, so `node`
            // needs no clamp here.
            let node = self.elems.wrapping_add(n as usize * self.elem_size);
            // The four blocks below: offsets 0..16 are the 4-aligned header
            // words of the 8-aligned node n; its data area at NODE_HDR holds
            // key_stride >= B::BYTES bytes, 8-aligned (data sizes up to 8 bytes
            // have an 8-byte area, up to 16 a 16-byte one).
            // SAFETY: as said above.
            let plen = unsafe { hdr(node, 8) }.load(Ordering::Relaxed);
            // SAFETY: as above.
            let data = unsafe { B::load(node.wrapping_add(NODE_HDR)) };
            // longest_prefix_match: at most min(node prefixlen, key prefixlen).
            let m = data.lz_xor(key).min(plen).min(key_prefixlen);
            if m == max {
                found = Some(n);
                break;
            }
            if m < plen {
                break;
            }
            // SAFETY: as above.
            if unsafe { hdr(node, 12) }.load(Ordering::Relaxed) & NODE_IM == 0 {
                found = Some(n);
            }
            // SAFETY: as above (child[0] at 0, child[1] at 4).
            link = unsafe { hdr(node, 4 * key.bit(plen) as usize) }.load(Ordering::Acquire);
        }
        found
    }

    /// trie_lookup_elem's walk over key data of any length.
    fn lpm_walk_slices(&self, key_data: &[u8], key_prefixlen: u32) -> Option<u32> {
        let max = self.max_prefixlen();
        let mut found = None;
        let mut link = self.lpm_root().load(Ordering::Acquire);
        let mut steps = 0;
        while let Some(n) = self.lpm_link(link) {
            steps += 1;
            if steps > max + 2 {
                return None; // a loop: only while a writer reuses nodes under us
            }
            let plen = self.n_prefixlen(n).load(Ordering::Relaxed);
            let m = self.match_len(n, key_data, key_prefixlen);
            if m == max {
                found = Some(n);
                break;
            }
            if m < plen {
                break;
            }
            if self.n_flags(n).load(Ordering::Relaxed) & NODE_IM == 0 {
                found = Some(n);
            }
            let bit = key_bit(key_data, plen);
            link = self.n_child(n, bit).load(Ordering::Acquire);
        }
        found
    }

    /// Longest-prefix lookup, lock-free with retries, then under the lock.
    fn lpm_find(&self, key_data: &[u8], key_prefixlen: u32) -> Result<Option<u32>, MapError> {
        for _ in 0..OPTIMISTIC_TRIES {
            let s = self.lpm_seq().load(Ordering::Acquire);
            if s & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let r = self.lpm_walk(key_data, key_prefixlen);
            fence(Ordering::Acquire);
            if self.lpm_seq().load(Ordering::Relaxed) == s {
                return Ok(r);
            }
        }
        let _g = self.take_lock(self.lpm_lock(), || "trie lock".into())?;
        Ok(self.lpm_walk(key_data, key_prefixlen))
    }

    /// Program lookup: a pointer to the value of the longest matching prefix.
    ///
    /// # Safety
    /// `key` points to key_size readable bytes.
    pub(crate) unsafe fn lpm_lookup_ptr(&self, key: *const u8) -> *mut u8 {
        // SAFETY: caller contract.
        let k = unsafe { std::slice::from_raw_parts(key, self.key_size as usize) };
        let (plen, data) = split_key(k);
        // A trie lock held past the wait bound reads as a miss (programs get no error).
        match self.lpm_find(data, plen) {
            Ok(Some(n)) => self.n_value(n),
            Ok(None) | Err(_) => std::ptr::null_mut(),
        }
    }

    /// `lpm_lookup_ptr` for keys of `D` data bytes (IPv4: 4, IPv6: 16; at most
    /// 16): the key read into machine words once and one lock-free walk, then
    /// `lpm_find` (retries, then the trie lock) only while a writer is at work.
    ///
    /// # Safety
    /// `key` points to key_size = 4 + D readable bytes.
    #[inline(always)]
    pub(crate) unsafe fn lpm_lookup_ptr_fixed<const D: usize>(&self, key: *const u8) -> *mut u8 {
        debug_assert!(D <= 16 && self.key_size as usize == 4 + D);
        // SAFETY: caller contract: 4 + D readable bytes.
        let (plen, data) = unsafe {
            (
                std::ptr::read_unaligned(key as *const u32),
                std::ptr::read_unaligned(key.wrapping_add(4) as *const [u8; D]),
            )
        };
        let s = self.lpm_seq().load(Ordering::Acquire);
        if s & 1 == 0 {
            let r = if D <= 8 {
                self.lpm_walk_bits(u64::from_key(&data), plen)
            } else {
                self.lpm_walk_bits(u128::from_key(&data), plen)
            };
            fence(Ordering::Acquire);
            if self.lpm_seq().load(Ordering::Relaxed) == s {
                return r.map_or(std::ptr::null_mut(), |n| self.n_value(n));
            }
        }
        // A trie lock held past the wait bound reads as a miss, as in lpm_lookup_ptr.
        match self.lpm_find(&data, plen) {
            Ok(Some(n)) => self.n_value(n),
            Ok(None) | Err(_) => std::ptr::null_mut(),
        }
    }

    pub(crate) fn lpm_user_lookup(&self, key: &[u8], out: &mut [u8]) -> Result<(), MapError> {
        let (plen, data) = split_key(key);
        let n = self
            .lpm_find(data, plen)?
            .ok_or(MapError::NotFound { id: self.id })?;
        // SAFETY: out has value_size bytes; the node's value area has vstride.
        unsafe { mem::load_words(out, self.n_value(n)) };
        Ok(())
    }

    /// trie_update_elem (Linux 6.14+: BPF_NOEXIST/BPF_EXIST honoured, ENOSPC
    /// only when a new prefix is added to a full trie).
    ///
    /// # Safety
    /// `key`/`value` point to key_size/value_size readable bytes.
    pub(crate) unsafe fn lpm_update(
        &self,
        key: *const u8,
        value: *const u8,
        flags: u64,
    ) -> Result<(), MapError> {
        if flags > BPF_EXIST {
            return Err(MapError::InvalidFlags { id: self.id, flags });
        }
        // SAFETY: caller contract.
        let k = unsafe { std::slice::from_raw_parts(key, self.key_size as usize) };
        let (plen, data) = split_key(k);
        let max = self.max_prefixlen();
        if plen > max {
            return Err(MapError::InvalidValue {
                id: self.id,
                what: "prefixlen above the key's bits",
            });
        }
        let _g = self.take_lock(self.lpm_lock(), || "trie lock".into())?;
        // The pool holds 2 * max_entries + 2 nodes, more than any trie of
        // max_entries prefixes needs: only nodes leaked by a writer that died (before
        // repair) or a corrupt free list can exhaust it.
        let nospace = || MapError::NoFreeElement {
            id: self.id,
            what: "trie node",
            why: "nodes leaked by a writer that died, or a corrupt free list",
        };
        let new = self.lpm_alloc().ok_or_else(nospace)?;
        self.n_prefixlen(new).store(plen, Ordering::Relaxed);
        self.n_child(new, 0).store(0, Ordering::Relaxed);
        self.n_child(new, 1).store(0, Ordering::Relaxed);
        self.n_flags(new).store(NODE_USED, Ordering::Relaxed);
        // SAFETY: the node's data area has key_stride >= data_size bytes, its value
        // area vstride >= value_size; `data`/`value` have those sizes.
        unsafe {
            mem::store_words(self.n_data(new), data.as_ptr(), data.len());
            mem::store_words(self.n_value(new), value, self.value_size as usize);
        }
        let check_add = || -> Result<(), MapError> {
            if flags == BPF_EXIST {
                return Err(MapError::NotFound { id: self.id });
            }
            let n = self.lpm_n_entries();
            if n.load(Ordering::Relaxed) >= self.max_entries {
                return Err(MapError::NoSpaceLeft {
                    id: self.id,
                    max_entries: self.max_entries,
                });
            }
            n.fetch_add(1, Ordering::Relaxed);
            Ok(())
        };
        let fail = |e: MapError| {
            self.lpm_free(new);
            Err(e)
        };
        let mut slot = Slot::Root;
        let mut node = None;
        let mut matchlen = 0;
        let mut steps = 0;
        while let Some(n) = self.lpm_link(self.slot(slot).load(Ordering::Acquire)) {
            node = Some(n);
            steps += 1;
            if steps > max + 2 {
                return fail(MapError::Corrupt {
                    id: self.id,
                    what: "lpm trie deeper than its prefix length".into(),
                });
            }
            matchlen = self.match_len(n, data, plen);
            let np = self.n_prefixlen(n).load(Ordering::Relaxed);
            if np != matchlen || np == plen || np == max {
                break;
            }
            node = None;
            slot = Slot::Child(n, key_bit(data, np));
        }
        let Some(node) = node else {
            if let Err(e) = check_add() {
                return fail(e);
            }
            let odd = self.seq_odd();
            self.slot(slot).store(new + 1, Ordering::Release);
            self.seq_even(odd);
            return Ok(());
        };
        let np = self.n_prefixlen(node).load(Ordering::Relaxed);
        let im = self.n_flags(node).load(Ordering::Relaxed) & NODE_IM != 0;
        if np == matchlen {
            if !im {
                if flags == BPF_NOEXIST {
                    return fail(MapError::Exists { id: self.id });
                }
            } else if let Err(e) = check_add() {
                return fail(e);
            }
            for bit in 0..2 {
                let c = self.n_child(node, bit).load(Ordering::Relaxed);
                self.n_child(new, bit).store(c, Ordering::Relaxed);
            }
            let odd = self.seq_odd();
            self.slot(slot).store(new + 1, Ordering::Release);
            self.lpm_free(node);
            self.seq_even(odd);
            return Ok(());
        }
        if let Err(e) = check_add() {
            return fail(e);
        }
        if matchlen == plen {
            let bit = self.node_bit(node, matchlen);
            self.n_child(new, bit).store(node + 1, Ordering::Relaxed);
            let odd = self.seq_odd();
            self.slot(slot).store(new + 1, Ordering::Release);
            self.seq_even(odd);
            return Ok(());
        }
        let Some(imn) = self.lpm_alloc() else {
            self.lpm_n_entries().fetch_sub(1, Ordering::Relaxed);
            return fail(nospace());
        };
        self.n_prefixlen(imn).store(matchlen, Ordering::Relaxed);
        self.n_flags(imn)
            .store(NODE_USED | NODE_IM, Ordering::Relaxed);
        for w in 0..self.key_stride / 8 {
            let v = self.data_word(node, w);
            // SAFETY: word w of imn's data area (key_stride bytes, 8-aligned).
            unsafe { AtomicU64::from_ptr(self.n_data(imn).add(w * 8) as *mut u64) }
                .store(u64::from_ne_bytes(v.to_be_bytes()), Ordering::Relaxed);
        }
        let (c0, c1) = if key_bit(data, matchlen) == 1 {
            (node, new)
        } else {
            (new, node)
        };
        self.n_child(imn, 0).store(c0 + 1, Ordering::Relaxed);
        self.n_child(imn, 1).store(c1 + 1, Ordering::Relaxed);
        let odd = self.seq_odd();
        self.slot(slot).store(imn + 1, Ordering::Release);
        self.seq_even(odd);
        Ok(())
    }

    /// trie_delete_elem.
    ///
    /// # Safety
    /// `key` points to key_size readable bytes.
    pub(crate) unsafe fn lpm_delete(&self, key: *const u8) -> Result<(), MapError> {
        // SAFETY: caller contract.
        let k = unsafe { std::slice::from_raw_parts(key, self.key_size as usize) };
        let (plen, data) = split_key(k);
        let max = self.max_prefixlen();
        if plen > max {
            return Err(MapError::InvalidValue {
                id: self.id,
                what: "prefixlen above the key's bits",
            });
        }
        let _g = self.take_lock(self.lpm_lock(), || "trie lock".into())?;
        let mut trim = Slot::Root;
        let mut trim2 = trim;
        let mut parent: Option<u32> = None;
        let mut node = None;
        let mut matchlen = 0;
        let mut steps = 0;
        while let Some(n) = self.lpm_link(self.slot(trim).load(Ordering::Acquire)) {
            node = Some(n);
            steps += 1;
            if steps > max + 2 {
                // Under the lock the trie cannot change: a path longer than the
                // key's bits is a cycle, and nothing may be deleted from it.
                return Err(MapError::Corrupt {
                    id: self.id,
                    what: format!(
                        "{:?}: lpm trie deeper than its prefix length",
                        self.meta.info.name
                    ),
                });
            }
            matchlen = self.match_len(n, data, plen);
            let np = self.n_prefixlen(n).load(Ordering::Relaxed);
            if np != matchlen || np == plen {
                break;
            }
            node = None;
            parent = Some(n);
            trim2 = trim;
            trim = Slot::Child(n, key_bit(data, np));
        }
        let not_found = MapError::NotFound { id: self.id };
        let Some(node) = node else {
            return Err(not_found);
        };
        let np = self.n_prefixlen(node).load(Ordering::Relaxed);
        if np != plen || np != matchlen || self.n_flags(node).load(Ordering::Relaxed) & NODE_IM != 0
        {
            return Err(not_found);
        }
        // The count drops only after the entry left the tree: a writer killed
        // in between leaves it one too high (repair recounts), never too low,
        // so the tree can never hold more than max_entries.
        let dec = || {
            let n = self.lpm_n_entries();
            let _ = n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_sub(1));
        };
        let c0 = self.n_child(node, 0).load(Ordering::Relaxed);
        let c1 = self.n_child(node, 1).load(Ordering::Relaxed);
        let odd = self.seq_odd();
        if c0 != 0 && c1 != 0 {
            self.n_flags(node)
                .store(NODE_USED | NODE_IM, Ordering::Relaxed);
            dec();
            self.seq_even(odd);
            return Ok(());
        }
        if let Some(p) = parent {
            if self.n_flags(p).load(Ordering::Relaxed) & NODE_IM != 0 && c0 == 0 && c1 == 0 {
                let pc0 = self.n_child(p, 0).load(Ordering::Relaxed);
                let other = if pc0 == node + 1 {
                    self.n_child(p, 1).load(Ordering::Relaxed)
                } else {
                    pc0
                };
                self.slot(trim2).store(other, Ordering::Release);
                dec();
                self.lpm_free(p);
                self.lpm_free(node);
                self.seq_even(odd);
                return Ok(());
            }
        }
        let repl = if c0 != 0 { c0 } else { c1 };
        self.slot(trim).store(repl, Ordering::Release);
        dec();
        self.lpm_free(node);
        self.seq_even(odd);
        Ok(())
    }

    /// trie_get_next_key: postorder, more specific prefixes first.
    pub(crate) fn lpm_get_next_key(
        &self,
        key: Option<&[u8]>,
        out: &mut [u8],
    ) -> Result<(), MapError> {
        let _g = self.take_lock(self.lpm_lock(), || "trie lock".into())?;
        let max = self.max_prefixlen();
        let not_found = Err(MapError::NotFound { id: self.id });
        let Some(root) = self.lpm_link(self.lpm_root().load(Ordering::Acquire)) else {
            return not_found;
        };
        if self.n_prefixlen(root).load(Ordering::Relaxed) > max {
            return Err(MapError::Corrupt {
                id: self.id,
                what: format!(
                    "{:?}: lpm trie: root node {root} has a prefix longer than the key",
                    self.meta.info.name
                ),
            });
        }
        // Every edge followed below is checked (lpm_child_checked), so each
        // answer sits where a lookup of its key finds it and successive calls
        // move forward in postorder: a walk ends after at most max_entries keys.
        let mut search_root = Some(root);
        let mut next_node = None;
        'exact: {
            let Some(k) = key else { break 'exact };
            let (plen, data) = split_key(k);
            if plen > max {
                break 'exact;
            }
            let mut stack: Vec<u32> = Vec::new();
            let mut cur = Some(root);
            while let Some(n) = cur {
                if stack.len() > max as usize + 1 {
                    return not_found;
                }
                stack.push(n);
                let m = self.match_len(n, data, plen);
                let np = self.n_prefixlen(n).load(Ordering::Relaxed);
                if np != m || np == plen {
                    break;
                }
                cur = self.lpm_child_checked(n, key_bit(data, np))?;
            }
            let Some(n) = cur else { break 'exact };
            if self.n_prefixlen(n).load(Ordering::Relaxed) != plen
                || self.n_flags(n).load(Ordering::Relaxed) & NODE_IM != 0
            {
                break 'exact;
            }
            let mut node = n;
            let mut sp = stack.len() - 1;
            while sp > 0 {
                let parent = stack[sp - 1];
                if self.n_child(parent, 0).load(Ordering::Acquire) == node + 1 {
                    let right = self.lpm_child_checked(parent, 1)?;
                    if right.is_some() {
                        search_root = right;
                        break 'exact;
                    }
                }
                if self.n_flags(parent).load(Ordering::Relaxed) & NODE_IM == 0 {
                    next_node = Some(parent);
                    search_root = None;
                    break 'exact;
                }
                node = parent;
                sp -= 1;
            }
            return not_found;
        }
        if next_node.is_none() {
            let mut cur = search_root;
            let mut steps = 0;
            while let Some(n) = cur {
                steps += 1;
                if steps > 2 * (max + 2) {
                    break;
                }
                let left = self.lpm_child_checked(n, 0)?;
                if self.n_flags(n).load(Ordering::Relaxed) & NODE_IM != 0 {
                    cur = left;
                } else {
                    next_node = Some(n);
                    cur = match left {
                        Some(l) => Some(l),
                        None => self.lpm_child_checked(n, 1)?,
                    };
                }
            }
        }
        let Some(n) = next_node else {
            return not_found;
        };
        out[..4].copy_from_slice(&self.n_prefixlen(n).load(Ordering::Relaxed).to_ne_bytes());
        // SAFETY: the node's data area has key_stride >= data_size bytes.
        unsafe { mem::load_words(&mut out[4..], self.n_data(n)) };
        Ok(())
    }

    /// Walks the trie under the lock: (entries, nodes reachable); errors on a
    /// cycle, a bad link, an intermediate node without two children, or a free
    /// node in the tree. `mark` gets every reachable node.
    pub(crate) fn lpm_walk_all(&self, mark: &mut [bool]) -> Result<u32, String> {
        let mut entries = 0;
        let mut stack = vec![self.lpm_root().load(Ordering::Acquire)];
        while let Some(link) = stack.pop() {
            if link == 0 {
                continue;
            }
            let n = self
                .lpm_link(link)
                .ok_or_else(|| format!("link {link} out of range"))?;
            if mark[n as usize] {
                return Err(format!("node {n} reached twice"));
            }
            mark[n as usize] = true;
            let f = self.n_flags(n).load(Ordering::Relaxed);
            if f & NODE_USED == 0 {
                return Err(format!("free node {n} in the tree"));
            }
            let c0 = self.n_child(n, 0).load(Ordering::Relaxed);
            let c1 = self.n_child(n, 1).load(Ordering::Relaxed);
            if f & NODE_IM != 0 {
                if c0 == 0 || c1 == 0 {
                    return Err(format!("intermediate node {n} without two children"));
                }
            } else {
                entries += 1;
            }
            stack.push(c0);
            stack.push(c1);
        }
        Ok(entries)
    }
}

fn split_key(k: &[u8]) -> (u32, &[u8]) {
    let mut p = [0u8; 4];
    p.copy_from_slice(&k[..4]);
    (u32::from_ne_bytes(p), &k[4..])
}

/// Header word at `off` (0 child[0], 4 child[1], 8 prefixlen, 12 flags) of the
/// node at `node`.
///
/// # Safety
/// `node` is the base of a node of the pool (8-aligned); `off` is one of those.
#[inline(always)]
unsafe fn hdr<'a>(node: *mut u8, off: usize) -> &'a AtomicU32 {
    // SAFETY: caller contract; store memory is only accessed atomically.
    unsafe { AtomicU32::from_ptr(node.wrapping_add(off) as *mut u32) }
}

/// LPM key data of up to 8 (`u64`) or 16 (`u128`) bytes as one big-endian
/// number, zero past the data (bit 0 of the key is the number's top bit).
trait LpmBits: Copy {
    /// Bytes of the number (and of the node data area it is loaded from).
    const BYTES: usize;
    /// The key data, zero-padded.
    fn from_key(data: &[u8]) -> Self;
    /// A node's data area.
    ///
    /// # Safety
    /// `p` is 8-aligned and valid for `BYTES` bytes of store memory.
    unsafe fn load(p: *const u8) -> Self;
    /// Leading bits equal in `self` and `other`.
    fn lz_xor(self, other: Self) -> u32;
    /// The kernel's extract_bit: bit `index` (0 past the number).
    fn bit(self, index: u32) -> u32;
}

/// # Safety
/// `p` is 8-aligned and valid for 8 bytes of store memory.
#[inline(always)]
unsafe fn load_be64(p: *const u8) -> u64 {
    // SAFETY: caller contract; store memory is only accessed atomically.
    let v = unsafe { AtomicU64::from_ptr(p as *mut u64) }.load(Ordering::Relaxed);
    u64::from_be_bytes(v.to_ne_bytes())
}

impl LpmBits for u64 {
    const BYTES: usize = 8;
    #[inline(always)]
    fn from_key(data: &[u8]) -> u64 {
        let mut b = [0u8; 8];
        b[..data.len()].copy_from_slice(data);
        u64::from_be_bytes(b)
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> u64 {
        // SAFETY: caller contract.
        unsafe { load_be64(p) }
    }
    #[inline(always)]
    fn lz_xor(self, other: u64) -> u32 {
        (self ^ other).leading_zeros()
    }
    #[inline(always)]
    fn bit(self, index: u32) -> u32 {
        self.checked_shl(index).map_or(0, |x| (x >> 63) as u32)
    }
}

impl LpmBits for u128 {
    const BYTES: usize = 16;
    #[inline(always)]
    fn from_key(data: &[u8]) -> u128 {
        let mut b = [0u8; 16];
        b[..data.len()].copy_from_slice(data);
        u128::from_be_bytes(b)
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> u128 {
        // SAFETY: caller contract: two 8-aligned words.
        let (hi, lo) = unsafe { (load_be64(p), load_be64(p.wrapping_add(8))) };
        (u128::from(hi) << 64) | u128::from(lo)
    }
    #[inline(always)]
    fn lz_xor(self, other: u128) -> u32 {
        (self ^ other).leading_zeros()
    }
    #[inline(always)]
    fn bit(self, index: u32) -> u32 {
        self.checked_shl(index).map_or(0, |x| (x >> 127) as u32)
    }
}

/// The kernel's extract_bit on key data (0 past the end).
fn key_bit(data: &[u8], index: u32) -> u32 {
    data.get(index as usize / 8)
        .map(|b| u32::from((b >> (7 - index % 8)) & 1))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::NODE_USED;
    use crate::def::*;
    use crate::{Map, MapDef, Store, StoreOptions};
    use std::sync::atomic::AtomicU64;

    fn trie(max: u32) -> Map {
        let s = Store::anonymous(StoreOptions {
            size: 1 << 20,
            ncpus: Some(1),
        })
        .expect("store");
        s.create_map(&MapDef {
            map_type: BPF_MAP_TYPE_LPM_TRIE,
            key_size: 8,
            value_size: 4,
            max_entries: max,
            map_flags: BPF_F_NO_PREALLOC,
            name: "lpm".into(),
            ..MapDef::default()
        })
        .expect("map")
    }

    fn key(plen: u32, ip: [u8; 4]) -> [u8; 8] {
        let mut k = [0u8; 8];
        k[..4].copy_from_slice(&plen.to_ne_bytes());
        k[4..].copy_from_slice(&ip);
        k
    }

    fn get(m: &Map, ip: [u8; 4]) -> Option<u32> {
        let mut out = [0u8; 4];
        m.lookup(&key(32, ip), &mut out).ok()?;
        Some(u32::from_ne_bytes(out))
    }

    fn put(m: &Map, plen: u32, ip: [u8; 4], v: u32, flags: u64) -> Result<(), i32> {
        m.update(&key(plen, ip), &v.to_ne_bytes(), flags)
            .map_err(|e| e.errno())
    }

    /// The word walk (`lpm_walk_bits`, data up to 16 bytes) finds what the
    /// byte-slice walk finds, on random tries of every data size up to 16 bytes
    /// and lookups of random keys and prefix lengths (including keys on and
    /// near the stored prefixes, and prefix lengths above the key's bits).
    #[test]
    fn word_walk_equals_slice_walk() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for data in 1..=16usize {
            let s = Store::anonymous(StoreOptions {
                size: 4 << 20,
                ncpus: Some(1),
            })
            .expect("store");
            let m = s
                .create_map(&MapDef {
                    map_type: BPF_MAP_TYPE_LPM_TRIE,
                    key_size: 4 + data as u32,
                    value_size: 4,
                    max_entries: 256,
                    map_flags: BPF_F_NO_PREALLOC,
                    name: "lpm".into(),
                    ..MapDef::default()
                })
                .expect("map");
            let bits = 8 * data as u32;
            let key = |plen: u32, d: &[u8]| {
                let mut k = plen.to_ne_bytes().to_vec();
                k.extend_from_slice(d);
                k
            };
            // A few short bytes so that prefixes share and branch.
            let mut stored = Vec::new();
            for i in 0..200u32 {
                let d: Vec<u8> = (0..data).map(|_| (rnd() % 4) as u8 * 0x41).collect();
                let plen = (rnd() % u64::from(bits + 1)) as u32;
                m.update(&key(plen, &d), &i.to_ne_bytes(), BPF_ANY)
                    .expect("insert");
                stored.push(d);
            }
            for t in 0..2000 {
                let mut d: Vec<u8> = if t % 2 == 0 {
                    stored[t % stored.len()].clone()
                } else {
                    (0..data).map(|_| (rnd() % 4) as u8 * 0x41).collect()
                };
                if t % 3 == 0 {
                    let b = (rnd() % data as u64) as usize;
                    d[b] ^= 1 << (rnd() % 8);
                }
                let plen = match t % 4 {
                    0 => bits,
                    1 => (rnd() % u64::from(bits + 1)) as u32,
                    2 => bits + 1 + (rnd() % 64) as u32,
                    _ => u32::MAX,
                };
                let slices = m.lpm_walk_slices(&d, plen);
                assert_eq!(m.lpm_walk(&d, plen), slices, "data {data} key {d:?}/{plen}");
            }
            m.check().expect("consistent");
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let m = trie(16);
        put(&m, 8, [10, 0, 0, 0], 8, BPF_ANY).expect("8");
        put(&m, 16, [10, 1, 0, 0], 16, BPF_ANY).expect("16");
        put(&m, 24, [10, 1, 2, 0], 24, BPF_ANY).expect("24");
        put(&m, 0, [0, 0, 0, 0], 1, BPF_ANY).expect("default");
        assert_eq!(get(&m, [10, 1, 2, 3]), Some(24));
        assert_eq!(get(&m, [10, 1, 3, 3]), Some(16));
        assert_eq!(get(&m, [10, 2, 3, 3]), Some(8));
        assert_eq!(get(&m, [11, 2, 3, 3]), Some(1));
        assert_eq!(m.len(), 4);
        // Lookup with a shorter key prefix length stops there.
        let mut out = [0u8; 4];
        m.lookup(&key(12, [10, 1, 2, 3]), &mut out).expect("/12");
        assert_eq!(u32::from_ne_bytes(out), 8);
        // Delete the /16: /24 and /8 remain.
        m.delete(&key(16, [10, 1, 9, 9]))
            .expect("delete /16 (host bits ignored)");
        assert_eq!(get(&m, [10, 1, 3, 3]), Some(8));
        assert_eq!(get(&m, [10, 1, 2, 3]), Some(24));
        assert_eq!(
            m.delete(&key(16, [10, 1, 0, 0])).map_err(|e| e.errno()),
            Err(libc::ENOENT)
        );
        m.check().expect("consistent");
    }

    #[test]
    fn flags_and_capacity() {
        let m = trie(2);
        assert_eq!(put(&m, 8, [10, 0, 0, 0], 1, BPF_EXIST), Err(libc::ENOENT));
        put(&m, 8, [10, 0, 0, 0], 1, BPF_NOEXIST).expect("new");
        assert_eq!(put(&m, 8, [10, 0, 0, 0], 1, BPF_NOEXIST), Err(libc::EEXIST));
        put(&m, 8, [10, 0, 0, 0], 2, BPF_EXIST).expect("replace");
        put(&m, 16, [10, 1, 0, 0], 3, BPF_ANY).expect("second");
        assert_eq!(put(&m, 24, [10, 1, 2, 0], 4, BPF_ANY), Err(libc::ENOSPC));
        put(&m, 16, [10, 1, 0, 0], 5, BPF_ANY).expect("replace on a full trie");
        assert_eq!(put(&m, 33, [10, 1, 0, 0], 5, BPF_ANY), Err(libc::EINVAL));
        assert_eq!(put(&m, 8, [10, 1, 0, 0], 5, 3), Err(libc::EINVAL));
        assert_eq!(get(&m, [10, 1, 1, 1]), Some(5));
        assert_eq!(get(&m, [10, 2, 1, 1]), Some(2));
        m.check().expect("consistent");
    }

    #[test]
    fn get_next_key_is_postorder() {
        // The example of the kernel's lpm_trie.c: 192.168.0.0/16 with /24s below.
        let m = trie(8);
        put(&m, 16, [192, 168, 0, 0], 1, BPF_ANY).expect("/16");
        put(&m, 24, [192, 168, 0, 0], 2, BPF_ANY).expect("0/24");
        put(&m, 24, [192, 168, 128, 0], 3, BPF_ANY).expect("128/24");
        put(&m, 24, [192, 168, 1, 0], 4, BPF_ANY).expect("1/24");
        let order: Vec<(u32, [u8; 4])> = m
            .iter()
            .map(|k| k.expect("walk"))
            .map(|k| {
                (
                    u32::from_ne_bytes([k[0], k[1], k[2], k[3]]),
                    [k[4], k[5], k[6], k[7]],
                )
            })
            .collect();
        assert_eq!(
            order,
            vec![
                (24, [192, 168, 0, 0]),
                (24, [192, 168, 1, 0]),
                (24, [192, 168, 128, 0]),
                (16, [192, 168, 0, 0]),
            ]
        );
        // A missing key restarts at the leftmost.
        let mut out = [0u8; 8];
        m.get_next_key(Some(&key(20, [1, 2, 3, 4])), &mut out)
            .expect("first");
        assert_eq!(out, key(24, [192, 168, 0, 0]));
    }

    #[test]
    fn creation_needs_no_prealloc() {
        let s = Store::anonymous(StoreOptions {
            size: 1 << 20,
            ncpus: Some(1),
        })
        .expect("store");
        let d = MapDef {
            map_type: BPF_MAP_TYPE_LPM_TRIE,
            key_size: 8,
            value_size: 4,
            max_entries: 4,
            ..MapDef::default()
        };
        assert_eq!(
            s.create_map(&d).map_err(|e| e.errno()).err(),
            Some(libc::EINVAL)
        );
        let d2 = MapDef {
            key_size: 4,
            map_flags: BPF_F_NO_PREALLOC,
            ..d
        };
        assert_eq!(
            s.create_map(&d2).map_err(|e| e.errno()).err(),
            Some(libc::EINVAL)
        );
    }

    fn walk(m: &Map) -> (usize, Option<crate::MapError>) {
        let mut n = 0;
        for r in m.iter() {
            match r {
                Ok(_) => n += 1,
                Err(e) => return (n, Some(e)),
            }
        }
        (n, None)
    }

    #[test]
    fn corrupt_tries_end_walks_with_corrupt() {
        use std::sync::atomic::Ordering;
        let m = trie(16);
        put(&m, 8, [10, 0, 0, 0], 1, BPF_ANY).expect("8");
        put(&m, 16, [10, 1, 0, 0], 2, BPF_ANY).expect("16");
        put(&m, 24, [10, 1, 1, 0], 3, BPF_ANY).expect("24");
        put(&m, 24, [10, 1, 128, 0], 4, BPF_ANY).expect("24b");
        assert_eq!(walk(&m), (4, None));
        let root = m
            .lpm_link(m.lpm_root().load(Ordering::Relaxed))
            .expect("root");
        // A leaf whose child links back to the root: a cycle.
        let leaf = (0..m.nelems)
            .find(|&n| {
                m.n_flags(n).load(Ordering::Relaxed) & NODE_USED != 0
                    && m.n_prefixlen(n).load(Ordering::Relaxed) == 24
                    && m.n_child(n, 0).load(Ordering::Relaxed) == 0
            })
            .expect("a /24 leaf");
        m.n_child(leaf, 0).store(root + 1, Ordering::Relaxed);
        let (n, e) = walk(&m);
        assert!(n <= 4);
        let e = e.expect("an error");
        assert!(e.to_string().contains("cycle"), "{e}");
        assert!(matches!(m.check(), Err(crate::MapError::Corrupt { .. })));
        // A key under the cycle: updates and deletes see a path longer than the key.
        let deep = key(32, [10, 1, 1, 7]);
        for _ in 0..2 {
            let e = m.delete(&deep).expect_err("cycle");
            assert!(matches!(e, crate::MapError::Corrupt { .. }), "{e}");
        }
        assert!(matches!(
            m.update(&deep, &1u32.to_ne_bytes(), BPF_ANY),
            Err(crate::MapError::Corrupt { .. })
        ));
        m.n_child(leaf, 0).store(0, Ordering::Relaxed);
        assert_eq!(walk(&m), (4, None));
        // A node whose prefix does not extend its parent's.
        m.n_prefixlen(leaf).store(30, Ordering::Relaxed);
        let old = m.data_word(leaf, 0);
        // SAFETY: test: word 0 of the leaf's data area (8-aligned, in the node).
        unsafe {
            AtomicU64::from_ptr(m.n_data(leaf) as *mut u64)
                .store(u64::from_ne_bytes((!old).to_be_bytes()), Ordering::Relaxed)
        };
        let (_, e) = walk(&m);
        assert!(e.is_some_and(|e| e.to_string().contains("not under")));
        // A root prefix longer than the key.
        m.n_prefixlen(root).store(1000, Ordering::Relaxed);
        let (n, e) = walk(&m);
        assert_eq!(n, 0);
        assert!(e.is_some());
    }

    #[test]
    fn leaked_nodes_are_recovered_and_never_reported_as_store_space() {
        use std::sync::atomic::Ordering;
        let m = trie(4);
        // Every node handed out and none linked or free: what writers killed
        // between allocating and linking leave.
        m.lpm_fresh().store(m.nelems, Ordering::Relaxed);
        let e = put(&m, 8, [10, 0, 0, 0], 1, BPF_ANY);
        let mut out = [0u8; 4];
        let err = m
            .update(&key(8, [10, 0, 0, 0]), &1u32.to_ne_bytes(), BPF_ANY)
            .expect_err("no node");
        assert_eq!(e, Err(libc::ENOMEM));
        let text = err.to_string();
        assert!(
            !text.contains("no space in store") && text.contains("no free trie node"),
            "{text}"
        );
        // Marked by a lock takeover (a writer died): the update repairs and succeeds.
        m.mark_dirty();
        put(&m, 8, [10, 0, 0, 0], 1, BPF_ANY).expect("after repair");
        for i in 1..4u8 {
            put(&m, 16, [10, i, 0, 0], 1, BPF_ANY).expect("room for max_entries");
        }
        assert_eq!(m.lookup(&key(16, [10, 3, 0, 0]), &mut out), Ok(()));
        m.check().expect("consistent");
    }
}
