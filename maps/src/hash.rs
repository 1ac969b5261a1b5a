//! HASH and PERCPU_HASH with the kernel's hashtab.c semantics, in preallocated
//! shared memory.
//!
//! # Memory (offsets inside the map's data region)
//! ```text
//! 0          control block: free_head u64 | fresh u32 | count u32 | LRU words | reserved
//! 64         lock stripes: n_stripes x { lock: u32 pid spinlock, seq: u32 change count }
//! buckets    n_buckets x { head: u32 link }
//! elems      nelems x { next: u32 link, [state: u32, LRU only],
//!                       key (round_up(key_size, 4)), pad to 8,
//!                       value(s) (round_up(value_size, 8) [x ncpus]) }
//! ```
//! A u32 -> u64 element is 16 bytes and its bucket 4, so a full map of 1M such
//! entries takes 20 MiB (keys + values alone: 12 MiB).
//!
//! A *link* is a `u32` with a 2-bit tag: `(idx + 1) << 2` names element `idx`;
//! `(b << 2) | 1` is the "nulls" end marker of bucket `b` (as the kernel's
//! hlist_nulls); `(idx + 1) << 2 | 2` is a free-list link (`2` ends the free
//! list); a bucket head of `0` means the bucket is empty.
//!
//! Bucket `b` is guarded by lock stripe `b & stripe_mask` (at most 1024
//! stripes): its lock serialises writers, its `seq` tells lock-free readers
//! that a chain of the stripe changed.
//!
//! # Concurrency (every field's rule)
//! - `bucket.head`, `elem.next`: written only by the holder of the bucket's
//!   stripe lock (Release), and by the free list once the element is unlinked;
//!   read lock-free by lookups and get_next_key (Acquire).
//! - key and value words: written (Relaxed atomics) before the element is
//!   published by a Release store of a link; values of a live element are
//!   updated in place only for PERCPU_HASH and when no spare element is free
//!   (word-wise atomics, so values of <= 8 bytes never tear).
//! - `free_head`: a lock-free stack of free elements, `tag << 32 | (idx + 1)`,
//!   the tag defeating ABA; a free element's `next` holds the stack's link,
//!   tagged as free, so a reader standing on a deleted element sees the tag and
//!   restarts.
//! - `fresh`: elements `fresh..nelems` were never used (atomic bump); this keeps
//!   map creation from touching every element.
//! - `count`: live keys, CAS-reserved before an insert (E2BIG at max_entries).
//! - `stripe.seq`: a sequence count written only by the stripe lock's holder:
//!   made odd (then a Release fence) before a change to a chain of the stripe
//!   and even (Release) after it. A lookup that misses re-reads it (after an
//!   Acquire fence) and restarts unless it was even and unchanged: otherwise it
//!   may have walked past a key being replaced (new element linked at the head,
//!   old one unlinked behind the reader) or through an element deleted and
//!   reused in the same bucket. Hits need no check. A holder dying mid-change
//!   leaves it odd; the next holder's change makes it even again.
//!
//! Lookups take no lock: they walk a chain with atomic loads and, like the
//! kernel's lookup_nulls_elem_raw, restart when they end on the nulls marker
//! of another bucket (the element they stood on was deleted and reused), reach
//! a free-list link (it was deleted), or miss while the stripe's `seq` changed.
//! Keys are compared word by word (no stored hash: the key is as short as one).
//! A plain HASH replaces an existing key the kernel's way: a new element is
//! linked at the head of the bucket, then the old one is unlinked; for that it
//! holds `ncpus` spare elements beyond max_entries. PERCPU_HASH updates in
//! place, as the kernel does.
//!
//! A writer that dies holding a stripe lock leaves at worst a leaked element
//! or count (every step is a single store that leaves the chains valid).

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use crate::def::{Kind, BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST};
use crate::error::MapError;
use crate::lock;
use crate::map::Map;
use crate::mem;

/// Element state bit (LRU maps): linked in a bucket chain.
pub(crate) const ST_LIVE: u32 = 1;
/// Element state bit (LRU maps): looked up since the eviction clock last passed.
pub(crate) const ST_REF: u32 = 2;
const MAX_RESTARTS: u32 = 1 << 12;

/// Link tags (low two bits).
pub(crate) const TAG_ELEM: u32 = 0;
const TAG_NULLS: u32 = 1;
pub(crate) const TAG_FREE: u32 = 2;

#[inline]
pub(crate) fn elem_link(idx: u32) -> u32 {
    (idx + 1) << 2
}

#[inline]
pub(crate) fn nulls(b: u32) -> u32 {
    (b << 2) | TAG_NULLS
}

/// The free-list link stored in a free element's `next`: `top` is the stack's
/// `idx + 1` below it (0 at the bottom).
#[inline]
fn free_link(top: u32) -> u32 {
    (top << 2) | TAG_FREE
}

/// Which link points at an element: a bucket head or another element's `next`.
#[derive(Clone, Copy)]
pub(crate) enum Prev {
    Head,
    Elem(u32),
}

impl Map {
    /// # Safety
    /// `p` is 4-aligned and lies, with 4 bytes, inside this map's data region.
    #[inline]
    unsafe fn u32_at(&self, p: *mut u8) -> &AtomicU32 {
        // SAFETY: caller contract; the region lives as long as self (Arc<Shm>),
        // and store memory is only accessed atomically.
        unsafe { AtomicU32::from_ptr(p as *mut u32) }
    }

    #[inline]
    pub(crate) fn free_head(&self) -> &AtomicU64 {
        // SAFETY: offset 0 of the data region, 64-aligned, inside the control block.
        unsafe { AtomicU64::from_ptr(self.data as *mut u64) }
    }

    #[inline]
    pub(crate) fn fresh(&self) -> &AtomicU32 {
        // SAFETY: offset 8 of the 64-byte control block.
        unsafe { self.u32_at(self.data.wrapping_add(8)) }
    }

    #[inline]
    pub(crate) fn count(&self) -> &AtomicU32 {
        // SAFETY: offset 12 of the 64-byte control block.
        unsafe { self.u32_at(self.data.wrapping_add(12)) }
    }

    /// Head link of bucket `b` (masked into range).
    #[inline]
    pub(crate) fn head(&self, b: u32) -> &AtomicU32 {
        let b = b & self.bucket_mask;
        // SAFETY: b < n_buckets after masking; the bucket array holds n_buckets
        // 4-byte heads at `buckets`, 64-aligned.
        unsafe { self.u32_at(self.buckets.wrapping_add(b as usize * 4)) }
    }

    /// The lock stripe guarding bucket `b`.
    #[inline]
    pub(crate) fn stripe(&self, b: u32) -> u32 {
        b & self.stripe_mask
    }

    /// Field `field` (0 lock, 4 seq) of stripe `s` (masked into range).
    #[inline]
    fn stripe_field(&self, s: u32, field: usize) -> &AtomicU32 {
        let s = s & self.stripe_mask;
        // SAFETY: s < n_stripes after masking; the stripe array holds n_stripes
        // 8-byte stripes at `stripes`, 64-aligned.
        unsafe { self.u32_at(self.stripes.wrapping_add(s as usize * 8 + field)) }
    }

    /// The lock of bucket `b`'s stripe.
    #[inline]
    pub(crate) fn bucket_lock(&self, b: u32) -> &AtomicU32 {
        self.stripe_field(self.stripe(b), 0)
    }

    /// The change sequence of bucket `b`'s stripe.
    #[inline]
    pub(crate) fn bucket_seq(&self, b: u32) -> &AtomicU32 {
        self.stripe_field(self.stripe(b), 4)
    }

    /// Lock of stripe `s` (for taking every lock in order).
    #[inline]
    pub(crate) fn stripe_lock(&self, s: u32) -> &AtomicU32 {
        self.stripe_field(s, 0)
    }

    /// Change sequence of stripe `s`.
    #[inline]
    pub(crate) fn stripe_seq(&self, s: u32) -> &AtomicU32 {
        self.stripe_field(s, 4)
    }

    /// Called by the lock holder before changing bucket `b`'s chain; returns the
    /// odd value to pass to `seq_end`.
    #[inline]
    pub(crate) fn seq_begin(&self, b: u32) -> u32 {
        let seq = self.bucket_seq(b);
        let s = seq.load(Ordering::Relaxed);
        let odd = if s & 1 == 1 {
            s.wrapping_add(2)
        } else {
            s.wrapping_add(1)
        };
        seq.store(odd, Ordering::Relaxed);
        fence(Ordering::Release);
        odd
    }

    /// Called by the lock holder after changing bucket `b`'s chain.
    #[inline]
    pub(crate) fn seq_end(&self, b: u32, odd: u32) {
        self.bucket_seq(b)
            .store(odd.wrapping_add(1), Ordering::Release);
    }

    /// A lookup's miss is final only if bucket `b` was quiet (even) at `seq` and
    /// did not change since.
    #[inline]
    fn unchanged_since(&self, b: u32, seq: u32) -> bool {
        fence(Ordering::Acquire);
        seq & 1 == 0 && self.bucket_seq(b).load(Ordering::Relaxed) == seq
    }

    /// Element base. Every caller passes an index checked against nelems (by
    /// `link_elem`, `pop_free` or `find_locked`); `min` keeps a stray one in bounds.
    #[inline]
    pub(crate) fn elem(&self, idx: u32) -> *mut u8 {
        debug_assert!(idx < self.nelems);
        let idx = idx.min(self.nelems.saturating_sub(1));
        self.elems.wrapping_add(idx as usize * self.elem_size)
    }

    #[inline]
    pub(crate) fn e_next(&self, idx: u32) -> &AtomicU32 {
        // SAFETY: offset 0 of an in-bounds, 8-aligned element.
        unsafe { self.u32_at(self.elem(idx)) }
    }

    /// Element state of an LRU map: `ST_LIVE` while linked in a chain, `ST_REF`
    /// set by lookups (cleared by the eviction clock). Written by stripe-lock
    /// holders (LIVE) and lock-free by lookups (REF, fetch_or).
    #[inline]
    pub(crate) fn e_state(&self, idx: u32) -> &AtomicU32 {
        debug_assert!(self.kind.is_lru());
        // SAFETY: offset 4 of an in-bounds element; LRU elements have their state
        // word there (key_off 8), and for other kinds offset 4 is still inside the
        // element (key bytes), so a stray call cannot leave the element.
        unsafe { self.u32_at(self.elem(idx).wrapping_add(4)) }
    }

    /// The element's key (4-aligned, round_up(key_size, 4) bytes).
    #[inline]
    pub(crate) fn e_key(&self, idx: u32) -> *mut u8 {
        self.elem(idx).wrapping_add(self.key_off)
    }

    /// The element's (first) value (8-aligned).
    #[inline]
    pub(crate) fn e_value(&self, idx: u32) -> *mut u8 {
        self.elem(idx).wrapping_add(self.value_off)
    }

    /// Bucket of element `idx`, from its key (which is stable while the element
    /// is linked; a racing reuse only yields a bucket the caller then does not
    /// find the element in).
    pub(crate) fn elem_bucket(&self, idx: u32) -> u32 {
        let ks = self.key_size as usize;
        let mut small = [0u8; 64];
        let mut big = Vec::new();
        let k = if ks <= small.len() {
            &mut small[..ks]
        } else {
            big.resize(ks, 0);
            &mut big[..]
        };
        // SAFETY: the key area of idx < nelems holds round_up(key_size, 4) bytes.
        unsafe { mem::load_key(k, self.e_key(idx)) };
        // SAFETY: k has key_size bytes.
        unsafe { self.hash_of(k.as_ptr()) & self.bucket_mask }
    }

    #[inline]
    pub(crate) fn prev_link(&self, b: u32, p: Prev) -> &AtomicU32 {
        match p {
            Prev::Head => self.head(b),
            Prev::Elem(i) => self.e_next(i),
        }
    }

    /// Decodes an element link; None for nulls markers, free links, 0, or
    /// out-of-range indices.
    #[inline]
    pub(crate) fn link_elem(&self, link: u32) -> Option<u32> {
        if link == 0 || link & 3 != TAG_ELEM {
            return None;
        }
        let idx = (link >> 2) - 1;
        (idx < self.nelems).then_some(idx)
    }

    /// The kernel's htab_map_hash: jhash2 for keys of whole u32 words, else jhash.
    ///
    /// # Safety
    /// `key` points to key_size readable bytes.
    #[inline]
    pub(crate) unsafe fn hash_of(&self, key: *const u8) -> u32 {
        if self.kind == Kind::DevMapHash {
            // dev_map_index_hash: the key itself selects the bucket.
            // SAFETY: caller contract: devmap_hash keys are 4 bytes.
            return unsafe { std::ptr::read_unaligned(key as *const u32) };
        }
        // SAFETY: caller contract.
        let k = unsafe { std::slice::from_raw_parts(key, self.key_size as usize) };
        htab_hash(k, self.seed)
    }

    /// Lock-free chain walk.
    ///
    /// # Safety
    /// `key` points to key_size readable bytes.
    #[inline]
    unsafe fn find_lockfree(&self, key: *const u8, hash: u32) -> Option<u32> {
        let b = hash & self.bucket_mask;
        let mut restarts = 0;
        'restart: while restarts < MAX_RESTARTS {
            restarts += 1;
            let seq = self.bucket_seq(b).load(Ordering::Acquire);
            let mut link = self.head(b).load(Ordering::Acquire);
            let mut steps = 0u32;
            loop {
                if link == 0 || link & 3 != TAG_ELEM {
                    if (link == 0 || link == nulls(b)) && self.unchanged_since(b, seq) {
                        return None;
                    }
                    // Ended in another bucket, on a free-list link, or the bucket
                    // changed under us: we walked through a deleted element.
                    continue 'restart;
                }
                let idx = self.link_elem(link)?;
                // SAFETY: the stored key is 4-aligned with key_stride bytes inside
                // element idx < nelems; the probe has key_size bytes.
                if unsafe { mem::key_eq(self.e_key(idx), key, self.key_size as usize) } {
                    return Some(idx);
                }
                link = self.e_next(idx).load(Ordering::Acquire);
                steps += 1;
                if steps > self.nelems {
                    if self.unchanged_since(b, seq) {
                        return None; // a cycle in a quiet bucket: the store is corrupt
                    }
                    continue 'restart;
                }
            }
        }
        None
    }

    /// Chain walk under the bucket lock: also returns the link pointing at the element.
    ///
    /// # Safety
    /// `key` points to key_size readable bytes; the caller holds bucket `b`'s lock.
    pub(crate) unsafe fn find_locked(&self, b: u32, key: *const u8) -> Option<(u32, Prev)> {
        let mut prev = Prev::Head;
        let mut link = self.head(b).load(Ordering::Acquire);
        let mut steps = 0u32;
        while let Some(idx) = self.link_elem(link) {
            // SAFETY: as in find_lockfree.
            if unsafe { mem::key_eq(self.e_key(idx), key, self.key_size as usize) } {
                return Some((idx, prev));
            }
            prev = Prev::Elem(idx);
            link = self.e_next(idx).load(Ordering::Acquire);
            steps += 1;
            if steps > self.nelems {
                return None;
            }
        }
        None
    }

    pub(crate) fn pop_free(&self) -> Option<u32> {
        let fh = self.free_head();
        let mut h = fh.load(Ordering::Acquire);
        loop {
            let top = h as u32;
            if top == 0 {
                break;
            }
            let idx = top - 1;
            if idx >= self.nelems {
                return None; // corrupt free list: behave as full
            }
            let next = self.e_next(idx).load(Ordering::Relaxed);
            if next & 3 != TAG_FREE {
                // Popped and linked by another writer since we read the head (the
                // CAS would fail), or a corrupt free list: behave as full.
                let cur = fh.load(Ordering::Acquire);
                if cur == h {
                    return None;
                }
                h = cur;
                continue;
            }
            let new = (((h >> 32) + 1) << 32) | u64::from(next >> 2);
            match fh.compare_exchange_weak(h, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(idx),
                Err(cur) => h = cur,
            }
        }
        let fresh = self.fresh();
        let mut f = fresh.load(Ordering::Relaxed);
        loop {
            if f >= self.nelems {
                return None;
            }
            match fresh.compare_exchange_weak(f, f + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(f),
                Err(cur) => f = cur,
            }
        }
    }

    pub(crate) fn push_free(&self, idx: u32) {
        let fh = self.free_head();
        let mut h = fh.load(Ordering::Relaxed);
        loop {
            self.e_next(idx)
                .store(free_link(h as u32), Ordering::Relaxed);
            let new = (((h >> 32) + 1) << 32) | u64::from(idx + 1);
            match fh.compare_exchange_weak(h, new, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(cur) => h = cur,
            }
        }
    }

    fn reserve_count(&self) -> bool {
        self.count()
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |c| {
                (c < self.max_entries).then_some(c + 1)
            })
            .is_ok()
    }

    pub(crate) fn release_count(&self) {
        let _ = self
            .count()
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |c| c.checked_sub(1));
    }

    /// Number of keys in a hash map (0 for arrays).
    pub fn len(&self) -> u32 {
        if self.kind.is_hash() {
            self.count().load(Ordering::Relaxed)
        } else if self.kind == Kind::LpmTrie {
            self.lpm_len()
        } else {
            0
        }
    }

    /// True when a hash map holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the value(s) of element `idx`.
    ///
    /// `cpu == None`: `value` holds all slots (user-space layout) for per-CPU maps,
    /// value_size bytes otherwise. `cpu == Some(c)`: `value` has value_size bytes and
    /// goes to slot `c`; with `fresh_elem`, the other slots are zeroed.
    ///
    /// # Safety
    /// idx < nelems; `value` readable for the sizes above; c < ncpus.
    pub(crate) unsafe fn write_values(
        &self,
        idx: u32,
        value: *const u8,
        cpu: Option<u32>,
        fresh_elem: bool,
    ) {
        let base = self.e_value(idx);
        // In every block: base is the 8-aligned value area of element idx (the
        // caller checked idx < nelems), holding vstride (x ncpus for per-CPU) bytes.
        match (self.kind.is_percpu(), cpu) {
            (true, None) => {
                // SAFETY: value holds ncpus * vstride bytes (the user layout).
                unsafe { mem::store_words(base, value, self.ncpus as usize * self.vstride) }
            }
            (true, Some(c)) => {
                if fresh_elem {
                    // SAFETY: the whole value area of ncpus * vstride bytes.
                    unsafe { mem::zero_words(base, self.ncpus as usize * self.vstride) };
                }
                let slot = base.wrapping_add(c as usize * self.vstride);
                // SAFETY: c < ncpus (caller contract), so the slot is in the value
                // area; value holds value_size bytes.
                unsafe { mem::store_words(slot, value, self.value_size as usize) };
            }
            _ => {
                // SAFETY: value holds value_size bytes; the area has vstride.
                unsafe { mem::store_words(base, value, self.value_size as usize) }
            }
        }
    }

    /// Fills a free element and links it at the head of bucket `b`.
    ///
    /// # Safety
    /// Caller holds bucket b's lock; `key`/`value` as for `write_values`.
    pub(crate) unsafe fn init_and_link(
        &self,
        n: u32,
        b: u32,
        key: *const u8,
        value: *const u8,
        cpu: Option<u32>,
    ) {
        // SAFETY: key area of n has key_stride = round_up(key_size, 4) bytes, 4-aligned.
        unsafe { mem::store_key(self.e_key(n), key, self.key_size as usize) };
        // SAFETY: forwarded.
        unsafe { self.write_values(n, value, cpu, true) };
        let head = self.head(b);
        let h = head.load(Ordering::Relaxed);
        self.e_next(n)
            .store(if h == 0 { nulls(b) } else { h }, Ordering::Release);
        if self.kind.is_lru() {
            self.e_state(n).store(ST_LIVE, Ordering::Relaxed);
        }
        head.store(elem_link(n), Ordering::Release);
    }

    /// Update from user space (`cpu == None`) or from a program on worker `cpu`.
    ///
    /// # Safety
    /// `key` has key_size readable bytes; `value` has user_value_size (cpu None) or
    /// value_size (cpu Some) readable bytes.
    pub(crate) unsafe fn hash_update(
        &self,
        key: *const u8,
        value: *const u8,
        flags: u64,
        cpu: Option<u32>,
    ) -> Result<(), MapError> {
        // BPF_F_LOCK needs a bpf_spin_lock in the value, not tracked yet: EINVAL.
        if (flags & !BPF_F_LOCK) > BPF_EXIST || flags & BPF_F_LOCK != 0 {
            return Err(MapError::InvalidFlags { id: self.id, flags });
        }
        if self.kind.is_lru() {
            // SAFETY: forwarded caller contract.
            return unsafe { self.lru_update(key, value, flags, cpu) };
        }
        let percpu = self.kind.is_percpu();
        if let Some(c) = cpu {
            if percpu && c >= self.ncpus {
                return Err(MapError::InvalidValue {
                    id: self.id,
                    what: "worker index >= ncpus",
                });
            }
        }
        // SAFETY: caller contract.
        let hash = unsafe { self.hash_of(key) };
        let b = hash & self.bucket_mask;
        let _guard = lock::lock(self.bucket_lock(b));
        // SAFETY: caller contract; we hold the lock.
        match unsafe { self.find_locked(b, key) } {
            Some((old, prev)) => {
                if flags == BPF_NOEXIST {
                    return Err(MapError::Exists { id: self.id });
                }
                // DEVMAP_HASH (__dev_map_hash_update_elem) ignores BPF_EXIST on a
                // missing key; every other hash honours it below.
                if !percpu {
                    if let Some(n) = self.pop_free() {
                        let odd = self.seq_begin(b);
                        // SAFETY: n is ours (popped); lock held; sizes per contract.
                        unsafe { self.init_and_link(n, b, key, value, cpu) };
                        let prev = match prev {
                            Prev::Head => Prev::Elem(n),
                            p => p,
                        };
                        let next = self.e_next(old).load(Ordering::Relaxed);
                        self.prev_link(b, prev).store(next, Ordering::Release);
                        self.seq_end(b, odd);
                        self.push_free(old);
                        return Ok(());
                    }
                }
                // SAFETY: old < nelems (from find_locked); sizes per contract.
                unsafe { self.write_values(old, value, cpu, false) };
                Ok(())
            }
            None => {
                if flags == BPF_EXIST && self.kind != Kind::DevMapHash {
                    return Err(MapError::NotFound { id: self.id });
                }
                let full = MapError::TooBig {
                    id: self.id,
                    max_entries: self.max_entries,
                };
                if !self.reserve_count() {
                    return Err(full);
                }
                let Some(n) = self.pop_free() else {
                    self.release_count();
                    return Err(full);
                };
                let odd = self.seq_begin(b);
                // SAFETY: n is ours; lock held; sizes per contract.
                unsafe { self.init_and_link(n, b, key, value, cpu) };
                self.seq_end(b, odd);
                Ok(())
            }
        }
    }

    /// # Safety
    /// `key` has key_size readable bytes.
    pub(crate) unsafe fn hash_delete(&self, key: *const u8) -> Result<(), MapError> {
        // SAFETY: caller contract.
        let hash = unsafe { self.hash_of(key) };
        let b = hash & self.bucket_mask;
        let _guard = lock::lock(self.bucket_lock(b));
        // SAFETY: caller contract; lock held.
        let Some((idx, prev)) = (unsafe { self.find_locked(b, key) }) else {
            return Err(MapError::NotFound { id: self.id });
        };
        let odd = self.seq_begin(b);
        let next = self.e_next(idx).load(Ordering::Relaxed);
        self.prev_link(b, prev).store(next, Ordering::Release);
        if self.kind.is_lru() {
            self.e_state(idx).store(0, Ordering::Relaxed);
        }
        self.seq_end(b, odd);
        self.release_count();
        self.push_free(idx);
        Ok(())
    }

    /// Program lookup: hash + bucket walk + key compare.
    ///
    /// # Safety
    /// `key` has key_size readable bytes.
    #[inline]
    pub(crate) unsafe fn hash_lookup_ptr(&self, key: *const u8, cpu: u32) -> *mut u8 {
        let percpu = self.kind.is_percpu();
        if percpu && cpu >= self.ncpus {
            return std::ptr::null_mut();
        }
        // SAFETY: caller contract.
        let hash = unsafe { self.hash_of(key) };
        // SAFETY: caller contract.
        let found = unsafe { self.find_lockfree(key, hash) };
        if let (Some(idx), true) = (found, self.kind.is_lru()) {
            // bpf_lru_node_set_ref: write only when not yet set.
            let st = self.e_state(idx);
            if st.load(Ordering::Relaxed) & ST_REF == 0 {
                st.fetch_or(ST_REF, Ordering::Relaxed);
            }
        }
        match found {
            Some(idx) if percpu => self.e_value(idx).wrapping_add(cpu as usize * self.vstride),
            Some(idx) => self.e_value(idx),
            None => std::ptr::null_mut(),
        }
    }

    pub(crate) fn hash_user_lookup(&self, key: &[u8], out: &mut [u8]) -> Result<(), MapError> {
        // SAFETY: key is key_size bytes (checked by Map::lookup).
        let idx = unsafe { self.find_lockfree(key.as_ptr(), self.hash_of(key.as_ptr())) }
            .ok_or(MapError::NotFound { id: self.id })?;
        // SAFETY: out is user_value_size bytes, which fits the element's value area
        // (value_size, or ncpus contiguous slots of vstride).
        unsafe { mem::load_words(out, self.e_value(idx)) };
        Ok(())
    }

    pub(crate) fn hash_user_update(
        &self,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), MapError> {
        // SAFETY: key and value have the sizes Map::update checked.
        unsafe { self.hash_update(key.as_ptr(), value.as_ptr(), flags, None) }
    }

    pub(crate) fn hash_get_next_key(
        &self,
        key: Option<&[u8]>,
        out: &mut [u8],
    ) -> Result<(), MapError> {
        let mut first_bucket = 0u32;
        if let Some(k) = key {
            // SAFETY: k has key_size bytes (checked by Map::get_next_key).
            let hash = unsafe { self.hash_of(k.as_ptr()) };
            // SAFETY: as above.
            if let Some(idx) = unsafe { self.find_lockfree(k.as_ptr(), hash) } {
                if let Some(n) = self.link_elem(self.e_next(idx).load(Ordering::Acquire)) {
                    // SAFETY: key area of n < nelems, key_stride = round_up(out.len(), 4).
                    unsafe { mem::load_key(out, self.e_key(n)) };
                    return Ok(());
                }
                first_bucket = (hash & self.bucket_mask) + 1;
            }
        }
        for b in first_bucket..=self.bucket_mask {
            if let Some(n) = self.link_elem(self.head(b).load(Ordering::Acquire)) {
                // SAFETY: as above.
                unsafe { mem::load_key(out, self.e_key(n)) };
                return Ok(());
            }
        }
        Err(MapError::NotFound { id: self.id })
    }
}

#[inline]
fn rol(x: u32, k: u32) -> u32 {
    x.rotate_left(k)
}

#[inline]
fn jhash_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= rol(*c, 4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= rol(*a, 6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= rol(*b, 8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= rol(*c, 16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= rol(*a, 19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= rol(*b, 4);
    *b = b.wrapping_add(*a);
}

#[inline]
fn jhash_final(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(rol(*b, 14));
    *a ^= *c;
    *a = a.wrapping_sub(rol(*c, 11));
    *b ^= *a;
    *b = b.wrapping_sub(rol(*a, 25));
    *c ^= *b;
    *c = c.wrapping_sub(rol(*b, 16));
    *a ^= *c;
    *a = a.wrapping_sub(rol(*c, 4));
    *b ^= *a;
    *b = b.wrapping_sub(rol(*a, 14));
    *c ^= *b;
    *c = c.wrapping_sub(rol(*b, 24));
}

const JHASH_INITVAL: u32 = 0xdeadbeef;

#[inline]
fn word(k: &[u8], i: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&k[i * 4..i * 4 + 4]);
    u32::from_ne_bytes(w)
}

/// The kernel's jhash2 over `k.len() / 4` native-endian words.
pub(crate) fn jhash2(k: &[u8], initval: u32) -> u32 {
    let mut len = k.len() / 4;
    let init = JHASH_INITVAL
        .wrapping_add((len as u32) << 2)
        .wrapping_add(initval);
    let (mut a, mut b, mut c) = (init, init, init);
    let mut i = 0;
    while len > 3 {
        a = a.wrapping_add(word(k, i));
        b = b.wrapping_add(word(k, i + 1));
        c = c.wrapping_add(word(k, i + 2));
        jhash_mix(&mut a, &mut b, &mut c);
        len -= 3;
        i += 3;
    }
    if len == 0 {
        return c;
    }
    if len >= 3 {
        c = c.wrapping_add(word(k, i + 2));
    }
    if len >= 2 {
        b = b.wrapping_add(word(k, i + 1));
    }
    a = a.wrapping_add(word(k, i));
    jhash_final(&mut a, &mut b, &mut c);
    c
}

/// The kernel's jhash over bytes.
pub(crate) fn jhash(k: &[u8], initval: u32) -> u32 {
    let mut len = k.len();
    let init = JHASH_INITVAL.wrapping_add(len as u32).wrapping_add(initval);
    let (mut a, mut b, mut c) = (init, init, init);
    let mut p = 0;
    while len > 12 {
        a = a.wrapping_add(word(k[p..].as_ref(), 0));
        b = b.wrapping_add(word(k[p..].as_ref(), 1));
        c = c.wrapping_add(word(k[p..].as_ref(), 2));
        jhash_mix(&mut a, &mut b, &mut c);
        len -= 12;
        p += 12;
    }
    if len == 0 {
        return c;
    }
    let t = &k[p..];
    let byte = |i: usize, sh: u32| u32::from(t[i]) << sh;
    // The kernel's fall-through switch, case 12 down to case 1.
    if len >= 12 {
        c = c.wrapping_add(byte(11, 24));
    }
    if len >= 11 {
        c = c.wrapping_add(byte(10, 16));
    }
    if len >= 10 {
        c = c.wrapping_add(byte(9, 8));
    }
    if len >= 9 {
        c = c.wrapping_add(byte(8, 0));
    }
    if len >= 8 {
        b = b.wrapping_add(byte(7, 24));
    }
    if len >= 7 {
        b = b.wrapping_add(byte(6, 16));
    }
    if len >= 6 {
        b = b.wrapping_add(byte(5, 8));
    }
    if len >= 5 {
        b = b.wrapping_add(byte(4, 0));
    }
    if len >= 4 {
        a = a.wrapping_add(byte(3, 24));
    }
    if len >= 3 {
        a = a.wrapping_add(byte(2, 16));
    }
    if len >= 2 {
        a = a.wrapping_add(byte(1, 8));
    }
    a = a.wrapping_add(byte(0, 0));
    jhash_final(&mut a, &mut b, &mut c);
    c
}

/// The kernel's htab_map_hash.
#[inline]
pub(crate) fn htab_hash(key: &[u8], seed: u32) -> u32 {
    if key.len() % 4 == 0 {
        jhash2(key, seed)
    } else {
        jhash(key, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::def::*;
    use crate::{MapDef, Store, StoreOptions};

    fn store(ncpus: u32) -> Store {
        Store::anonymous(StoreOptions {
            size: 8 << 20,
            ncpus: Some(ncpus),
        })
        .expect("store")
    }

    fn hdef(t: u32, max: u32, flags: u32) -> MapDef {
        MapDef {
            map_type: t,
            key_size: 4,
            value_size: 8,
            max_entries: max,
            map_flags: flags,
            name: "h".into(),
            ..MapDef::default()
        }
    }

    fn k(i: u32) -> [u8; 4] {
        i.to_ne_bytes()
    }

    fn v(x: u64) -> [u8; 8] {
        x.to_ne_bytes()
    }

    fn errno(r: Result<(), MapError>) -> i32 {
        r.err().map(|e| e.errno()).unwrap_or(0)
    }

    fn get(m: &Map, key: u32) -> Option<u64> {
        let mut out = [0u8; 8];
        m.lookup(&k(key), &mut out)
            .ok()
            .map(|()| u64::from_ne_bytes(out))
    }

    /// Keys 0.. that land in the same bucket as `k(first)`, for a map of `nb` buckets.
    fn colliding(m: &Map, n: usize) -> Vec<u32> {
        let b0 = htab_hash(&k(1000), m.seed) & m.bucket_mask;
        (1000..)
            .filter(|&i| htab_hash(&k(i), m.seed) & m.bucket_mask == b0)
            .take(n)
            .collect()
    }

    #[test]
    fn jhash_known_values() {
        // Zero-length input returns the initial value unmixed (jhash.h).
        assert_eq!(jhash(&[], 0), 0xdeadbeef);
        assert_eq!(jhash2(&[], 0), 0xdeadbeef);
        assert_eq!(jhash(&[], 1), 0xdeadbef0);
        // jhash and jhash2 agree on whole words of a little-endian machine.
        if cfg!(target_endian = "little") {
            let key: Vec<u8> = (0..24).collect();
            for len in [4, 8, 12, 16, 24] {
                assert_eq!(jhash(&key[..len], 7), jhash2(&key[..len], 7), "len {len}");
            }
        }
        assert_ne!(htab_hash(&k(1), 0), htab_hash(&k(2), 0));
    }

    #[test]
    fn flags_existing_missing_full() {
        let s = store(2);
        for t in [BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_HASH] {
            let m = s.create_map(&hdef(t, 2, 0)).expect("map");
            let val = vec![7u8; m.user_value_size()];
            let val2 = vec![9u8; m.user_value_size()];
            // Missing key.
            assert_eq!(errno(m.update(&k(1), &val, BPF_EXIST)), libc::ENOENT);
            assert_eq!(errno(m.update(&k(1), &val, 3)), libc::EINVAL);
            assert_eq!(errno(m.update(&k(1), &val, BPF_F_LOCK)), libc::EINVAL);
            assert_eq!(errno(m.update(&k(1), &val, BPF_NOEXIST)), 0);
            // Existing key.
            assert_eq!(errno(m.update(&k(1), &val2, BPF_NOEXIST)), libc::EEXIST);
            assert_eq!(errno(m.update(&k(1), &val2, BPF_EXIST)), 0);
            assert_eq!(errno(m.update(&k(1), &val, BPF_ANY)), 0);
            assert_eq!(errno(m.update(&k(2), &val, BPF_ANY)), 0);
            assert_eq!(m.len(), 2);
            // Full: new keys are E2BIG whatever the flag; existing keys still update.
            assert_eq!(errno(m.update(&k(3), &val, BPF_ANY)), libc::E2BIG);
            assert_eq!(errno(m.update(&k(3), &val, BPF_NOEXIST)), libc::E2BIG);
            assert_eq!(errno(m.update(&k(3), &val, BPF_EXIST)), libc::ENOENT);
            for _ in 0..5 {
                assert_eq!(errno(m.update(&k(1), &val2, BPF_ANY)), 0);
                assert_eq!(errno(m.update(&k(2), &val2, BPF_EXIST)), 0);
            }
            let mut out = vec![0u8; m.user_value_size()];
            m.lookup(&k(1), &mut out).expect("present");
            assert_eq!(out, val2);
            // Delete frees room.
            assert_eq!(errno(m.delete(&k(3))), libc::ENOENT);
            assert_eq!(errno(m.delete(&k(1))), 0);
            assert_eq!(errno(m.lookup(&k(1), &mut out)), libc::ENOENT);
            assert_eq!(errno(m.update(&k(3), &val, BPF_NOEXIST)), 0);
            assert_eq!(m.len(), 2);
            // Wrong sizes.
            assert_eq!(errno(m.update(&[0u8; 3], &val, BPF_ANY)), libc::EINVAL);
            assert_eq!(errno(m.update(&k(3), &val[1..], BPF_ANY)), libc::EINVAL);
        }
    }

    #[test]
    fn program_paths() {
        let s = store(2);
        let m = s.create_map(&hdef(BPF_MAP_TYPE_HASH, 4, 0)).expect("map");
        // SAFETY: key 4 bytes, value 8 bytes.
        unsafe {
            assert!(m.prog_lookup(k(5).as_ptr(), 0).is_null());
            assert_eq!(
                m.prog_update(k(5).as_ptr(), v(55).as_ptr(), BPF_ANY, 0),
                Ok(())
            );
            let p = m.prog_lookup(k(5).as_ptr(), 1);
            assert!(!p.is_null());
            assert!(m.value_region().contains(p as usize, 8));
            assert!(!m.value_region().contains(p as usize, 9));
            assert!(!m.value_region().contains(p as usize - 1, 1));
            assert_eq!(std::ptr::read(p as *const u64), 55);
            // Programs write through the pointer; user space sees it.
            std::ptr::write(p as *mut u64, 56);
            assert_eq!(get(&m, 5), Some(56));
            assert_eq!(m.prog_delete(k(5).as_ptr()), Ok(()));
            assert_eq!(
                m.prog_delete(k(5).as_ptr()).map_err(|e| e.errno()),
                Err(libc::ENOENT)
            );
            assert!(m.prog_lookup(k(5).as_ptr(), 0).is_null());
        }
    }

    #[test]
    fn percpu_hash_layout() {
        let s = store(3);
        let m = s
            .create_map(&hdef(BPF_MAP_TYPE_PERCPU_HASH, 4, 0))
            .expect("map");
        assert_eq!(m.user_value_size(), 24);
        // A program creates the element on worker 1: other slots are zero.
        // SAFETY: key 4 bytes, value 8 bytes.
        unsafe { m.prog_update(k(1).as_ptr(), v(11).as_ptr(), BPF_ANY, 1) }.expect("update");
        let mut out = [0u8; 24];
        m.lookup(&k(1), &mut out).expect("lookup");
        assert_eq!(out[..8], v(0));
        assert_eq!(out[8..16], v(11));
        assert_eq!(out[16..], v(0));
        // Worker 2 updates only its slot.
        // SAFETY: as above.
        unsafe { m.prog_update(k(1).as_ptr(), v(22).as_ptr(), BPF_EXIST, 2) }.expect("update");
        m.lookup(&k(1), &mut out).expect("lookup");
        assert_eq!(out[8..16], v(11));
        assert_eq!(out[16..], v(22));
        // User space writes all slots; programs read their own.
        let mut all = Vec::new();
        for c in 0..3u64 {
            all.extend_from_slice(&v(100 + c));
        }
        m.update(&k(1), &all, BPF_ANY).expect("update all");
        for c in 0..3u32 {
            // SAFETY: 4-byte key; result valid for 8 bytes.
            let p = unsafe { m.prog_lookup(k(1).as_ptr(), c) };
            assert!(!p.is_null());
            // SAFETY: p points to an 8-byte slot.
            let got = unsafe { std::ptr::read_unaligned(p as *const u64) };
            assert_eq!(got, 100 + u64::from(c));
            assert!(m.value_region().contains(p as usize, 8));
        }
        // SAFETY: 4-byte key.
        assert!(unsafe { m.prog_lookup(k(1).as_ptr(), 3) }.is_null());
        // SAFETY: 4-byte key, 8-byte value.
        let r = unsafe { m.prog_update(k(1).as_ptr(), v(0).as_ptr(), BPF_ANY, 3) };
        assert_eq!(r.map_err(|e| e.errno()), Err(libc::EINVAL));
    }

    #[test]
    fn delete_keeps_bucket_neighbours_reachable() {
        let s = store(1);
        let m = s.create_map(&hdef(BPF_MAP_TYPE_HASH, 64, 0)).expect("map");
        let keys = colliding(&m, 5);
        for (i, &key) in keys.iter().enumerate() {
            m.update(&k(key), &v(i as u64), BPF_NOEXIST)
                .expect("insert");
        }
        // Delete the middle, the head (last inserted) and the tail (first inserted).
        for del in [keys[2], keys[4], keys[0]] {
            m.delete(&k(del)).expect("delete");
            assert_eq!(get(&m, del), None);
        }
        assert_eq!(get(&m, keys[1]), Some(1));
        assert_eq!(get(&m, keys[3]), Some(3));
        // Re-insert reuses freed elements; everything stays reachable.
        for &key in &[keys[0], keys[2], keys[4]] {
            m.update(&k(key), &v(u64::from(key)), BPF_NOEXIST)
                .expect("reinsert");
        }
        for &key in &keys {
            assert!(get(&m, key).is_some(), "key {key}");
        }
        assert_eq!(m.iter().count(), 5);
    }

    #[test]
    fn get_next_key_order_and_restart() {
        let s = store(2);
        let m = s
            .create_map(&hdef(BPF_MAP_TYPE_HASH, 64, BPF_F_ZERO_SEED))
            .expect("map");
        let c = colliding(&m, 3);
        for &key in &c {
            m.update(&k(key), &v(1), BPF_ANY).expect("insert");
        }
        let bucket_order = |m: &Map| -> Vec<u32> {
            m.iter()
                .map(|kb| u32::from_ne_bytes([kb[0], kb[1], kb[2], kb[3]]))
                .filter(|x| c.contains(x))
                .collect()
        };
        // Head insertion: newest first within a bucket.
        assert_eq!(bucket_order(&m), vec![c[2], c[1], c[0]]);
        // Replacing an existing key in a plain hash moves it to the head (the
        // kernel links the new element first, then unlinks the old one).
        m.update(&k(c[0]), &v(2), BPF_ANY).expect("replace");
        assert_eq!(bucket_order(&m), vec![c[0], c[2], c[1]]);
        assert_eq!(get(&m, c[0]), Some(2));
        // Other buckets: add keys and check the full walk sees each key once.
        for key in 0..20u32 {
            m.update(&k(key), &v(3), BPF_ANY).expect("insert");
        }
        let mut all: Vec<Vec<u8>> = m.iter().collect();
        assert_eq!(all.len(), 23);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 23);
        // Keys come in bucket order.
        let buckets: Vec<u32> = m
            .iter()
            .map(|kb| htab_hash(&kb, 0) & m.bucket_mask)
            .collect();
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]));
        // A missing key restarts from the first key.
        let mut first = [0u8; 4];
        m.get_next_key(None, &mut first).expect("first");
        let mut out = [0u8; 4];
        m.get_next_key(Some(&k(999_999)), &mut out)
            .expect("restart");
        assert_eq!(out, first);
        // After the last key: ENOENT. Empty map: ENOENT.
        let last = m.iter().last().expect("last");
        assert_eq!(errno(m.get_next_key(Some(&last), &mut out)), libc::ENOENT);
        let e = s.create_map(&hdef(BPF_MAP_TYPE_HASH, 4, 0)).expect("map");
        assert_eq!(errno(e.get_next_key(None, &mut out)), libc::ENOENT);
    }

    #[test]
    fn percpu_replace_keeps_order() {
        let s = store(2);
        let m = s
            .create_map(&hdef(BPF_MAP_TYPE_PERCPU_HASH, 64, 0))
            .expect("map");
        let c = colliding(&m, 2);
        let val = [1u8; 16];
        m.update(&k(c[0]), &val, BPF_ANY).expect("insert");
        m.update(&k(c[1]), &val, BPF_ANY).expect("insert");
        m.update(&k(c[0]), &[2u8; 16], BPF_ANY)
            .expect("replace in place");
        let order: Vec<Vec<u8>> = m.iter().collect();
        assert_eq!(order, vec![k(c[1]).to_vec(), k(c[0]).to_vec()]);
    }

    #[test]
    fn odd_key_sizes() {
        let s = store(1);
        let d = MapDef {
            map_type: BPF_MAP_TYPE_HASH,
            key_size: 13,
            value_size: 3,
            max_entries: 8,
            name: "odd".into(),
            ..MapDef::default()
        };
        let m = s.create_map(&d).expect("map");
        let key1 = *b"0123456789abc";
        let mut key2 = key1;
        key2[12] = b'd';
        m.update(&key1, b"one", BPF_ANY).expect("insert");
        m.update(&key2, b"two", BPF_ANY).expect("insert");
        let mut out = [0u8; 3];
        m.lookup(&key1, &mut out).expect("k1");
        assert_eq!(&out, b"one");
        m.lookup(&key2, &mut out).expect("k2");
        assert_eq!(&out, b"two");
        let mut keys: Vec<Vec<u8>> = m.iter().collect();
        keys.sort();
        assert_eq!(keys, vec![key1.to_vec(), key2.to_vec()]);
    }

    #[test]
    fn lock_free_lookups_survive_churn() {
        // A stable key must stay visible while other threads insert, replace and
        // delete keys of the same bucket (elements are reused immediately).
        let s = store(2);
        let m = s.create_map(&hdef(BPF_MAP_TYPE_HASH, 16, 0)).expect("map");
        let c = colliding(&m, 6);
        let stable = c[0];
        m.update(&k(stable), &v(42), BPF_ANY).expect("insert");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let rounds = std::sync::Arc::new(AtomicU64::new(0));
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let m = m.clone();
                let c = c.clone();
                let stop = stop.clone();
                let rounds = rounds.clone();
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for &key in &c[1 + w * 2..3 + w * 2] {
                            let _ = m.update(&k(key), &v(n), BPF_ANY);
                            if n % 3 == 0 {
                                let _ = m.delete(&k(key));
                            }
                            n += 1;
                        }
                        // Replacing the stable key swaps elements under readers.
                        let _ = m.update(&k(stable), &v(42), BPF_EXIST);
                        rounds.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        // Look up until the writers have done a fair amount of churn (however
        // fast or slow this machine is), and at least 200k times.
        let mut lookups = 0u64;
        while lookups < 200_000 || rounds.load(Ordering::Relaxed) < 50_000 {
            // SAFETY: 4-byte key; the value pointer is not dereferenced.
            let p = unsafe { m.prog_lookup(k(stable).as_ptr(), 0) };
            assert!(!p.is_null(), "stable key vanished during churn");
            lookups += 1;
        }
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().expect("writer");
        }
        assert_eq!(get(&m, stable), Some(42));
        assert!(m.len() <= 16);
    }
}
