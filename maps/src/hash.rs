//! HASH and PERCPU_HASH with the kernel's hashtab.c semantics, in preallocated
//! shared memory.
//!
//! # Memory (offsets inside the map's data region)
//! ```text
//! 0          control block: free_head u64 | fresh u32 | count u32 | LRU words |
//!            repair mark u32 (offset 24, see `Map::dirty_word`) | reserved
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
//! place, as the kernel does. (`ProgOps::update_in_place` writes a plain HASH's
//! values of up to 8 bytes in place too, under the bucket lock: one atomic word,
//! so no reader sees a torn value.)
//!
//! A writer that dies holding a stripe lock leaves at worst a leaked element
//! or count (every step is a single store that leaves the chains valid).
//!
//! # Parked elements
//! A program's replacement of a key in a plain HASH (`update_locked`) does
//! what the kernel does with its per-CPU `extra_elems`: the element it unlinks
//! is parked in the stripe's `parked` word (`idx + 1`, 0 for none) instead of
//! going back to the free list, and the next replacement under the same stripe
//! takes it back, so the replacement touches neither end of the shared free
//! list. Only a stripe-lock holder parks (a store into an empty slot), and only
//! while the free list or the never-used elements still hold one (so a full
//! map does not park); anyone may take (a swap to 0): `take_for_replace` under
//! the lock, and `pop_free` when the free list and the never-used elements are
//! exhausted (`steal_parked`, a scan of the stripes), so a parked element is
//! never lost to capacity. A parked
//! element is unlinked but its `next` is not tagged free: a lock-free reader
//! standing on it walks on into its old chain, and the `seq` protocol above
//! restarts it on a miss, as for an element between unlink and free. It keeps
//! its key and value until reused, so a program's pointer from an earlier
//! lookup still reads the old value, as with the kernel. `check` counts parked
//! elements as accounted for; `repair` returns them to the free list. A writer
//! that dies between taking and linking, or unlinking and parking, leaks the
//! element (repair reclaims it).
//!
//! # Hot paths
//! Every operation reads the caller's key once into a [`Probe`]: `KeySmall`
//! (1-3 bytes, one zero-padded word), `Key4` and `Key8` (one or two
//! native-endian words), `KeyWords<3>` / `KeyWords<4>` (12 and 16 bytes) are
//! hashed and compared word by word with no length loop, `DevKey` is a
//! DEVMAP_HASH index, and `KeyBytes` covers other sizes with the byte-slice
//! functions and `mem::key_eq`. Each probe has both bucket hashes: the kernel's
//! (`hash`: `jhash_1word` / `jhash_2words`, jhash2 unrolled, jhash for 1-3
//! bytes), used by BPF_F_ZERO_SEED maps, and the store's `fast_hash` (`fast`),
//! used by the others (see "the store's bucket hash" below; `Map::bucket`
//! chooses). The walk, update and delete code is generic over the probe, and
//! takes the map kind as a parameter; `progops.rs` instantiates it once per
//! kind and key-size class, so that a map's entry points (`Map::prog_ops`, and
//! `prog_lookup` / `prog_update` through them) run with the kind and key size
//! constant. A lookup restart (the seq protocol above) leaves the inline path
//! for the outlined `find_lockfree_slow`.
//!
//! Checks the hot paths do not repeat, and why that is sound:
//! - `elem_at` / `next_at` do not clamp the index into range as `elem` does:
//!   each index they get was compared with `nelems` where it was decoded from
//!   shared memory (the walks, `pop_free`), and `elems + nelems * elem_size`
//!   lies inside the data region because the geometry is recomputed from the
//!   map's definition whenever a store is opened (`layout::read_entry`), never
//!   read from the store.
//! - Key and value sizes are not re-checked: the `prog_*` callers guarantee
//!   key_size / value_size readable bytes (their `# Safety`), and `Map::lookup`
//!   / `update` check the user-space slices.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use crate::def::{Kind, BPF_ANY, BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST};
use crate::error::MapError;
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

/// How one lock-free walk of a bucket ended.
enum Walk {
    Found(u32),
    Missed,
    Restart,
}

/// A chain found corrupt under its lock: the bucket and what is wrong (kept
/// small so that the walk returns in registers; `Map::chain_error` makes the
/// `MapError`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChainCorrupt(pub(crate) u32, pub(crate) &'static str);

/// Why a program update failed, small and `Copy` so that the hot path returns it
/// in registers; `Map::upd_error` makes the `MapError` (and its errno).
#[derive(Clone, Copy, Debug)]
pub(crate) enum UpdFail {
    /// Flags other than BPF_ANY, BPF_NOEXIST, BPF_EXIST (EINVAL).
    Flags(u64),
    /// The worker index is not below the store's ncpus (EINVAL).
    Cpu,
    /// BPF_NOEXIST on a present key (EEXIST).
    Exists,
    /// BPF_EXIST on a missing key (ENOENT).
    NotFound,
    /// The map is full (E2BIG).
    TooBig,
    /// The bucket's chain is corrupt (EUCLEAN).
    Corrupt(ChainCorrupt),
    /// The bucket's stripe lock stayed held (the bucket).
    Lock(crate::lock::LockHeld, u32),
}

/// What `Map::hash_store_existing` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StoreExisting {
    /// The existing key's value was written; the update is done.
    Stored,
    /// Nothing was done (flags, worker index, a value too large, the lock not
    /// free): the caller goes the general way.
    No,
    /// The key is not in bucket `b`, whose lock the caller now holds (handed
    /// on): it continues with `update_after_miss`.
    Missed(u32),
}

/// Which link points at an element: a bucket head or another element's `next`.
#[derive(Clone, Copy)]
pub(crate) enum Prev {
    Head,
    Elem(u32),
}

/// A key as the hot paths see it: read once from the caller's bytes, then hashed,
/// compared with stored keys and stored, without slices or length loops for the
/// common 4- and 8-byte keys. Every operation that takes a key pointer builds
/// one with `with_probe!` and runs a body generic over it.
pub(crate) trait Probe: Copy {
    /// Bucket hash: the kernel's htab_map_hash (jhash2 / jhash) with `seed`, or
    /// the index itself for DEVMAP_HASH.
    fn hash(self, seed: u32) -> u32;

    /// The store's own bucket hash (`fast_hash` of the key's bytes), used by
    /// maps without BPF_F_ZERO_SEED; DEVMAP_HASH keeps its index.
    fn fast(self, seed: u32) -> u32;

    /// True when the stored key at `stored` equals this one.
    ///
    /// # Safety
    /// `stored` is 4-aligned and valid for reads of round_up(key_size, 4) bytes
    /// of store memory (only ever accessed atomically).
    unsafe fn eq(self, stored: *const u8) -> bool;

    /// Writes this key (zero-padded to a multiple of 4) at `dst`.
    ///
    /// # Safety
    /// `dst` is 4-aligned and valid for writes of round_up(key_size, 4) bytes of
    /// store memory.
    unsafe fn store(self, dst: *mut u8);
}

/// # Safety
/// `p` is 4-aligned and valid for 4 bytes of store memory.
#[inline(always)]
unsafe fn load_u32(p: *const u8) -> u32 {
    // SAFETY: caller contract; store memory is only accessed atomically.
    unsafe { AtomicU32::from_ptr(p as *mut u32) }.load(Ordering::Relaxed)
}

/// # Safety
/// `p` is 4-aligned and valid for 4 bytes of store memory.
#[inline(always)]
unsafe fn store_u32(p: *mut u8, v: u32) {
    // SAFETY: caller contract; store memory is only accessed atomically.
    unsafe { AtomicU32::from_ptr(p as *mut u32) }.store(v, Ordering::Relaxed)
}

/// A 4-byte key of a map hashed with jhash (jhash2 of one word).
#[derive(Clone, Copy)]
pub(crate) struct Key4(pub(crate) u32);

impl Probe for Key4 {
    #[inline(always)]
    fn hash(self, seed: u32) -> u32 {
        jhash_1word(self.0, seed)
    }
    #[inline(always)]
    fn fast(self, seed: u32) -> u32 {
        fast_final(fast_word(fast_init(4, seed), self.0))
    }
    #[inline(always)]
    unsafe fn eq(self, stored: *const u8) -> bool {
        // SAFETY: caller contract (4 bytes).
        unsafe { load_u32(stored) == self.0 }
    }
    #[inline(always)]
    unsafe fn store(self, dst: *mut u8) {
        // SAFETY: caller contract (4 bytes).
        unsafe { store_u32(dst, self.0) }
    }
}

/// A DEVMAP_HASH key: 4 bytes, its own hash (dev_map_index_hash).
#[derive(Clone, Copy)]
pub(crate) struct DevKey(pub(crate) u32);

impl Probe for DevKey {
    #[inline(always)]
    fn hash(self, _seed: u32) -> u32 {
        self.0
    }
    #[inline(always)]
    fn fast(self, _seed: u32) -> u32 {
        self.0
    }
    #[inline(always)]
    unsafe fn eq(self, stored: *const u8) -> bool {
        // SAFETY: caller contract (4 bytes).
        unsafe { Key4(self.0).eq(stored) }
    }
    #[inline(always)]
    unsafe fn store(self, dst: *mut u8) {
        // SAFETY: caller contract (4 bytes).
        unsafe { Key4(self.0).store(dst) }
    }
}

/// An 8-byte key as two native-endian words (stored keys are only 4-aligned).
#[derive(Clone, Copy)]
pub(crate) struct Key8(pub(crate) u32, pub(crate) u32);

impl Probe for Key8 {
    #[inline(always)]
    fn hash(self, seed: u32) -> u32 {
        jhash_2words(self.0, self.1, seed)
    }
    #[inline(always)]
    fn fast(self, seed: u32) -> u32 {
        fast_final(fast_word(fast_word(fast_init(8, seed), self.0), self.1))
    }
    #[inline(always)]
    unsafe fn eq(self, stored: *const u8) -> bool {
        // SAFETY: caller contract (8 bytes, 4-aligned: two words).
        unsafe { load_u32(stored) == self.0 && load_u32(stored.wrapping_add(4)) == self.1 }
    }
    #[inline(always)]
    unsafe fn store(self, dst: *mut u8) {
        // SAFETY: caller contract (8 bytes, 4-aligned: two words).
        unsafe {
            store_u32(dst, self.0);
            store_u32(dst.wrapping_add(4), self.1);
        }
    }
}

/// A key of 1 to 3 bytes, zero-padded to one word (as stored). The kernel hashes
/// it with jhash over its bytes: the padded little-endian word plus the final mix.
#[derive(Clone, Copy)]
pub(crate) struct KeySmall {
    /// The key's bytes, zero-padded.
    bytes: [u8; 4],
    /// key_size (1..=3).
    len: u32,
}

impl KeySmall {
    /// # Safety
    /// `key` points to `len` (1..=3) readable bytes.
    #[inline(always)]
    pub(crate) unsafe fn read(key: *const u8, len: u32) -> KeySmall {
        let mut bytes = [0u8; 4];
        // SAFETY: caller contract; len <= 3 < 4.
        unsafe {
            match len {
                1 => bytes[0] = *key,
                2 => std::ptr::copy_nonoverlapping(key, bytes.as_mut_ptr(), 2),
                _ => std::ptr::copy_nonoverlapping(key, bytes.as_mut_ptr(), 3),
            }
        }
        KeySmall { bytes, len }
    }
}

impl Probe for KeySmall {
    #[inline(always)]
    fn hash(self, seed: u32) -> u32 {
        // jhash: `case 3: a += k[2] << 16; case 2: a += k[1] << 8; case 1: a += k[0];`
        let init = jhash_init(self.len, seed);
        let (mut a, mut b, mut c) = (
            init.wrapping_add(u32::from_le_bytes(self.bytes)),
            init,
            init,
        );
        jhash_final(&mut a, &mut b, &mut c);
        c
    }
    #[inline(always)]
    fn fast(self, seed: u32) -> u32 {
        fast_final(fast_word(
            fast_init(self.len, seed),
            u32::from_ne_bytes(self.bytes),
        ))
    }
    #[inline(always)]
    unsafe fn eq(self, stored: *const u8) -> bool {
        // SAFETY: caller contract (one 4-byte word: key and zero padding).
        unsafe { load_u32(stored) == u32::from_ne_bytes(self.bytes) }
    }
    #[inline(always)]
    unsafe fn store(self, dst: *mut u8) {
        // SAFETY: caller contract (one 4-byte word).
        unsafe { store_u32(dst, u32::from_ne_bytes(self.bytes)) }
    }
}

/// A key of `N` whole words (12 or 16 bytes: IPv6 addresses, flow tuples), hashed
/// with jhash2 unrolled for `N`.
#[derive(Clone, Copy)]
pub(crate) struct KeyWords<const N: usize>(pub(crate) [u32; N]);

impl<const N: usize> KeyWords<N> {
    /// # Safety
    /// `key` points to `4 * N` readable bytes.
    #[inline(always)]
    pub(crate) unsafe fn read(key: *const u8) -> Self {
        let mut w = [0u32; N];
        for (i, x) in w.iter_mut().enumerate() {
            // SAFETY: caller contract: word i is inside the key.
            *x = unsafe { std::ptr::read_unaligned(key.wrapping_add(i * 4) as *const u32) };
        }
        KeyWords(w)
    }
}

impl<const N: usize> Probe for KeyWords<N> {
    #[inline(always)]
    fn hash(self, seed: u32) -> u32 {
        let w = self.0;
        let init = JHASH_INITVAL
            .wrapping_add((N as u32) << 2)
            .wrapping_add(seed);
        let (mut a, mut b, mut c) = (init, init, init);
        let mut i = 0;
        let mut len = N;
        while len > 3 {
            a = a.wrapping_add(w[i]);
            b = b.wrapping_add(w[i + 1]);
            c = c.wrapping_add(w[i + 2]);
            jhash_mix(&mut a, &mut b, &mut c);
            len -= 3;
            i += 3;
        }
        if len == 0 {
            return c;
        }
        if len >= 3 {
            c = c.wrapping_add(w[i + 2]);
        }
        if len >= 2 {
            b = b.wrapping_add(w[i + 1]);
        }
        a = a.wrapping_add(w[i]);
        jhash_final(&mut a, &mut b, &mut c);
        c
    }
    #[inline(always)]
    fn fast(self, seed: u32) -> u32 {
        let mut h = fast_init((N * 4) as u32, seed);
        for &w in &self.0 {
            h = fast_word(h, w);
        }
        fast_final(h)
    }
    #[inline(always)]
    unsafe fn eq(self, stored: *const u8) -> bool {
        let mut diff = 0;
        for (i, &x) in self.0.iter().enumerate() {
            // SAFETY: caller contract (N words, 4-aligned).
            diff |= unsafe { load_u32(stored.wrapping_add(i * 4)) } ^ x;
        }
        diff == 0
    }
    #[inline(always)]
    unsafe fn store(self, dst: *mut u8) {
        for (i, &x) in self.0.iter().enumerate() {
            // SAFETY: caller contract (N words, 4-aligned).
            unsafe { store_u32(dst.wrapping_add(i * 4), x) };
        }
    }
}

/// Any other key: its bytes in the caller's memory.
#[derive(Clone, Copy)]
pub(crate) struct KeyBytes {
    ptr: *const u8,
    len: usize,
}

impl KeyBytes {
    /// The probe of the `len` bytes at `ptr` (which must stay readable while the
    /// probe is used: its users' `# Safety` say so).
    #[inline(always)]
    pub(crate) fn new(ptr: *const u8, len: usize) -> KeyBytes {
        KeyBytes { ptr, len }
    }
}

impl Probe for KeyBytes {
    #[inline]
    fn hash(self, seed: u32) -> u32 {
        // SAFETY: built by with_probe! from key_size readable bytes.
        let k = unsafe { std::slice::from_raw_parts(self.ptr, self.len) };
        htab_hash(k, seed)
    }
    #[inline]
    fn fast(self, seed: u32) -> u32 {
        // SAFETY: built from key_size readable bytes (KeyBytes::new's users).
        let k = unsafe { std::slice::from_raw_parts(self.ptr, self.len) };
        fast_hash(k, seed)
    }
    #[inline]
    unsafe fn eq(self, stored: *const u8) -> bool {
        // SAFETY: caller contract for stored; ptr has len readable bytes.
        unsafe { mem::key_eq(stored, self.ptr, self.len) }
    }
    #[inline]
    unsafe fn store(self, dst: *mut u8) {
        // SAFETY: caller contract for dst; ptr has len readable bytes.
        unsafe { mem::store_key(dst, self.ptr, self.len) }
    }
}

/// Binds `$p` to the probe for the key at `$key` (a `*const u8` with the map's
/// key_size readable bytes: the expansion's contract, so it must sit in an
/// unsafe block whose SAFETY comment says why) and evaluates `$body`, once per
/// kind of probe. `$kind` is the map's kind (a constant on the fast paths).
macro_rules! with_probe {
    ($m:expr, $kind:expr, $key:expr, $p:ident => $body:expr) => {{
        let key: *const u8 = $key;
        match ($m.key_size, $kind == Kind::DevMapHash) {
            (4, false) => {
                let $p = Key4(std::ptr::read_unaligned(key as *const u32));
                $body
            }
            (4, true) => {
                let $p = DevKey(std::ptr::read_unaligned(key as *const u32));
                $body
            }
            (8, _) => {
                let $p = Key8(
                    std::ptr::read_unaligned(key as *const u32),
                    std::ptr::read_unaligned(key.wrapping_add(4) as *const u32),
                );
                $body
            }
            (1..=3, _) => {
                let $p = KeySmall::read(key, $m.key_size);
                $body
            }
            (12, _) => {
                let $p = KeyWords::<3>::read(key);
                $body
            }
            (16, _) => {
                let $p = KeyWords::<4>::read(key);
                $body
            }
            (len, _) => {
                let $p = KeyBytes {
                    ptr: key,
                    len: len as usize,
                };
                $body
            }
        }
    }};
}
/// What generated code needs to look a key up in a HASH or PERCPU_HASH map
/// inline, without a call into this crate: [`Map::hash_layout`], for maps with
/// keys of up to [`HashLayout::MAX_KEY`] bytes (BPF_F_ZERO_SEED maps: up to
/// [`HashLayout::MAX_JHASH_KEY`]). The addresses stay valid as long as the `Map`.
/// Every number here comes from the map's definition (the geometry is
/// recomputed whenever a store is opened), so generated code may rely on it;
/// everything it reads at these addresses is shared with other processes and
/// proves nothing.
///
/// The lookup, exactly as `walk_once` does it (all loads of store memory are
/// 4-byte atomic loads, in program order: acquire or stronger):
/// 1. The key's `key_words` words (as the store holds them: the key's bytes
///    zero-padded to whole native-endian words, as every probe reads and
///    stores them) are made by [`HashLayout::key_loads`]: each is a
///    zero-extending load of `bytes` at offset `off` of the program's key,
///    shifted left by `shift` and ored into word `word`.
/// 2. The bucket hash of the words, by `hash`, from the state `hash_init`
///    (which holds the seed and the key length); bucket `b = h & bucket_mask`.
///    - [`BucketHash::Fast`], the store's `fast_hash` (constants in
///      [`fast_hash_consts`]): for each word `w`,
///      `h = ((h ^ w) * WORD_MUL).rotate_left(WORD_ROT)`; then the finaliser.
///    - [`BucketHash::Jhash`], the kernel's jhash / jhash2 of BPF_F_ZERO_SEED
///      maps, for keys of at most 12 bytes (one final mix, no `__jhash_mix`;
///      constants in [`jhash_consts`]): `a`, `b`, `c` = `hash_init` plus the
///      words 0, 1, 2 the key has, then `jhash_consts::FINAL`; `h = c`.
/// 3. `seq` = the u32 at `stripes + (b & stripe_mask) * STRIPE_SIZE + STRIPE_SEQ`;
///    `link` = the u32 at `buckets + 4 * b`.
/// 4. `idx = (link >> 2) - 1` (wrapping). Unless `link & TAG_MASK == 0` and
///    `idx < nelems` (the bound every index read from the store must be checked
///    against), the walk ends. Otherwise the element is at `elems + idx *
///    elem_size`: when its key words at `key_off` (compared whole, padding
///    included) equal the key's, the value is at `value_off` (per-CPU: plus
///    `cpu * vstride`, for `cpu < ncpus`, else no value); else `link` = the
///    u32 at the element's offset 0 and the walk goes on, for at most `nelems`
///    elements.
/// 5. A walk that ended with `link == 0` or `link == nulls(b)`, while `seq` is
///    even and the stripe's seq still equals it, is a true miss (null). Any other
///    end (a writer changed the chain, a corrupt link, the step bound) must be
///    answered by the map's own lookup ([`Map::prog_lookup`]), which restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashLayout {
    /// `bucket_mask + 1` head links (u32).
    pub buckets: *const u8,
    /// Buckets - 1 (a power of two - 1).
    pub bucket_mask: u32,
    /// `stripe_mask + 1` lock stripes of `STRIPE_SIZE` bytes.
    pub stripes: *const u8,
    /// Stripes - 1 (a power of two - 1, at most `bucket_mask`).
    pub stripe_mask: u32,
    /// `nelems` elements of `elem_size` bytes (8-aligned).
    pub elems: *const u8,
    /// Bytes per element (a multiple of 8).
    pub elem_size: u32,
    /// Elements: every index decoded from a link must be below it.
    pub nelems: u32,
    /// Offsets of the key (4-aligned) and the first value (8-aligned) in an element.
    pub key_off: u32,
    /// See `key_off`.
    pub value_off: u32,
    /// The key's bytes.
    pub key_size: u32,
    /// Key words hashed and compared: `key_size` / 4, rounded up.
    pub key_words: u32,
    /// The bucket hash (step 2 above).
    pub hash: BucketHash,
    /// The hash's state before the key words (seed and key length).
    pub hash_init: u32,
    /// Per-CPU slots (0 for a plain HASH) and the bytes from one to the next.
    pub ncpus: u32,
    /// round_up(value_size, 8).
    pub vstride: u32,
}

/// One load of a program's key for an inline lookup ([`HashLayout::key_loads`]):
/// the `bytes` (1, 2 or 4) at offset `off` of the key, zero-extended to 32 bits,
/// shifted left by `shift` and ored into key word `word`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyLoad {
    /// The key word this load makes part of.
    pub word: u32,
    /// Byte offset in the key.
    pub off: u32,
    /// 1, 2 or 4.
    pub bytes: u32,
    /// Left shift into the word.
    pub shift: u32,
}

/// The bucket hash of an inline lookup ([`HashLayout::hash`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketHash {
    /// The store's `fast_hash` ([`fast_hash_consts`]).
    Fast,
    /// The kernel's jhash (BPF_F_ZERO_SEED maps, [`jhash_consts`]).
    Jhash,
}

/// A load of `bytes` at key offset `off` into word `off / 4`, shifted to where
/// those bytes sit in the native-endian word the store holds (the key's bytes
/// zero-padded to whole words: `KeySmall::read`, `mem::store_key`).
const fn key_load(off: u32, bytes: u32) -> KeyLoad {
    let word = off / 4;
    let at = off - 4 * word;
    let shift = if cfg!(target_endian = "little") {
        8 * at
    } else {
        8 * (4 - at - bytes)
    };
    KeyLoad {
        word,
        off,
        bytes,
        shift,
    }
}

/// What generated code needs to update an existing key's value in place, as
/// `hash_store_existing` does it ([`Map::hash_update_layout`]): an update with
/// flags BPF_ANY (0) or BPF_EXIST (2), and for a per-CPU map a worker index below
/// `lookup.ncpus`, may
/// 1. read the word at `pid`: when it is 0, go the general way (the map's own
///    update, which fills it);
/// 2. hash the key and find its bucket `b` as in [`HashLayout`]'s steps 1-2;
/// 3. take the stripe lock, the u32 at `lookup.stripes + (b & stripe_mask) *
///    STRIPE_SIZE`, with one compare-and-swap `0 -> pid` (acquire); when it is
///    not free, go the general way (which waits, and takes over a lock a dead
///    writer left);
/// 4. walk bucket `b` under the lock as in [`HashLayout`]'s step 4 (with every
///    index checked against `nelems` and at most `nelems` elements); on a hit
///    store the `value_size` bytes (one aligned word store) at the value
///    (per-CPU: the worker's slot), then release;
/// 5. release the lock: when the u32 still holds `pid`, store 0 (release);
/// 6. on any other end of the walk (the key is not there, a corrupt link, the
///    bound), release and go the general way, which inserts or reports.
#[derive(Clone, Copy, Debug)]
pub struct HashUpdateLayout {
    /// The lookup's layout.
    pub lookup: HashLayout,
    /// 4 or 8.
    pub value_size: u32,
    /// The word holding this process's pid, read at each update (0: not known).
    pub pid: &'static AtomicU32,
}

impl HashLayout {
    /// The largest key generated code looks up inline (16 words).
    pub const MAX_KEY: u32 = 64;
    /// The largest key of a BPF_F_ZERO_SEED map looked up inline: jhash hashes up
    /// to 12 bytes with its final mix alone.
    pub const MAX_JHASH_KEY: u32 = 12;

    /// The loads that make the key words from the program's key (step 1 above),
    /// in order: a 4-byte load per whole word, then the last 1-3 bytes as one
    /// byte, a u16, or a u16 and the byte after it (`KeySmall::read`).
    pub fn key_loads(&self) -> impl Iterator<Item = KeyLoad> {
        let (full, rem) = (self.key_size / 4, self.key_size % 4);
        let tail = 4 * full;
        let last: [Option<KeyLoad>; 2] = match rem {
            0 => [None, None],
            1 => [Some(key_load(tail, 1)), None],
            2 => [Some(key_load(tail, 2)), None],
            _ => [Some(key_load(tail, 2)), Some(key_load(tail + 2, 1))],
        };
        (0..full)
            .map(|i| key_load(4 * i, 4))
            .chain(last.into_iter().flatten())
    }

    /// Bytes per lock stripe, and the offset of its change sequence.
    pub const STRIPE_SIZE: u32 = 16;
    /// See `STRIPE_SIZE`.
    pub const STRIPE_SEQ: u32 = 4;
    /// The tag bits of a link; an element link has tag 0.
    pub const TAG_MASK: u32 = 3;

    /// The end marker of bucket `b`'s chain.
    pub fn nulls(b: u32) -> u32 {
        nulls(b)
    }
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

    /// Field `field` (0 lock, 4 seq, 8 parked element) of stripe `s` (masked
    /// into range).
    #[inline]
    fn stripe_field(&self, s: u32, field: usize) -> &AtomicU32 {
        let s = s & self.stripe_mask;
        // SAFETY: s < n_stripes after masking; the stripe array holds n_stripes
        // 16-byte stripes at `stripes`, 64-aligned.
        unsafe {
            self.u32_at(
                self.stripes
                    .wrapping_add(s as usize * HashLayout::STRIPE_SIZE as usize + field),
            )
        }
    }

    /// The parked element of stripe `s`: `idx + 1`, or 0 for none (see
    /// "Parked elements" in the module documentation).
    #[inline]
    pub(crate) fn stripe_parked(&self, s: u32) -> &AtomicU32 {
        self.stripe_field(s, 8)
    }

    /// An element for the replacement of a key in bucket `b` (whose stripe lock
    /// the caller holds): the stripe's parked element, else one from the free
    /// list. None when neither has one.
    #[inline(always)]
    fn take_for_replace(&self, b: u32) -> Option<u32> {
        let slot = self.stripe_parked(self.stripe(b));
        if slot.load(Ordering::Relaxed) != 0 {
            let link = slot.swap(0, Ordering::Acquire);
            if link != 0 && link <= self.nelems {
                return Some(link - 1);
            }
        }
        self.pop_free()
    }

    /// Parks element `old`, just unlinked from bucket `b` (whose stripe lock the
    /// caller holds), in the stripe's slot for the next replacement; to the free
    /// list when the slot is taken or no other element is free.
    #[inline(always)]
    fn park(&self, b: u32, old: u32) {
        let slot = self.stripe_parked(self.stripe(b));
        // Park only while other elements are to be had (free or never used), so
        // that parking never leaves inserts and replacements to `steal_parked`
        // (a scan of the stripes) on a full map.
        let spare = self.free_head().load(Ordering::Relaxed) as u32 != 0
            || self.fresh().load(Ordering::Relaxed) < self.nelems;
        if spare && slot.load(Ordering::Relaxed) == 0 {
            self.timer_reset(old);
            // Only stripe-lock holders park, so the slot stays empty until this
            // store (others may only take from it).
            slot.store(old + 1, Ordering::Release);
        } else {
            self.push_free(old);
        }
    }

    /// Takes an element parked in any stripe (when the free list is empty). Only
    /// plain hash maps park elements.
    #[cold]
    #[inline(never)]
    fn steal_parked(&self) -> Option<u32> {
        if self.kind != Kind::Hash {
            return None;
        }
        for s in 0..=self.stripe_mask {
            let slot = self.stripe_parked(s);
            if slot.load(Ordering::Relaxed) != 0 {
                let link = slot.swap(0, Ordering::Acquire);
                if link != 0 && link <= self.nelems {
                    return Some(link - 1);
                }
            }
        }
        None
    }

    /// The lock of bucket `b`'s stripe.
    #[inline]
    pub(crate) fn bucket_lock(&self, b: u32) -> &AtomicU32 {
        self.stripe_field(self.stripe(b), 0)
    }

    /// The change sequence of bucket `b`'s stripe.
    #[inline]
    pub(crate) fn bucket_seq(&self, b: u32) -> &AtomicU32 {
        self.stripe_field(self.stripe(b), HashLayout::STRIPE_SEQ as usize)
    }

    /// Lock of stripe `s` (for taking every lock in order).
    #[inline]
    pub(crate) fn stripe_lock(&self, s: u32) -> &AtomicU32 {
        self.stripe_field(s, 0)
    }

    /// Change sequence of stripe `s`.
    #[inline]
    pub(crate) fn stripe_seq(&self, s: u32) -> &AtomicU32 {
        self.stripe_field(s, HashLayout::STRIPE_SEQ as usize)
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

    /// Copies element `idx`'s key (key_size bytes) into `out`.
    pub(crate) fn load_elem_key(&self, idx: u32, out: &mut [u8]) {
        let n = out.len().min(self.key_size as usize);
        // SAFETY: the key area of idx (clamped below nelems by `elem`) holds
        // round_up(key_size, 4) bytes, 4-aligned; n <= key_size.
        unsafe { mem::load_key(&mut out[..n], self.e_key(idx)) };
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

    /// `next` of element `idx`, without `elem`'s clamp.
    ///
    /// # Safety
    /// idx < nelems (an index `find_locked`, `find_lockfree` or `pop_free`
    /// returned: each compares what it decodes from shared memory with nelems).
    #[inline(always)]
    unsafe fn next_at(&self, idx: u32) -> &AtomicU32 {
        // SAFETY: offset 0 of element idx < nelems (caller contract), 8-aligned
        // and inside the element array (geometry recomputed at open).
        unsafe { self.u32_at(self.elem_at(idx)) }
    }

    /// `prev_link` without `elem`'s clamp.
    ///
    /// # Safety
    /// A `Prev::Elem` index is < nelems (as `find_locked` returns them).
    #[inline(always)]
    unsafe fn prev_link_at(&self, b: u32, p: Prev) -> &AtomicU32 {
        match p {
            Prev::Head => self.head(b),
            // SAFETY: caller contract.
            Prev::Elem(i) => unsafe { self.next_at(i) },
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

    /// The bucket hash of the key at `key`: the kernel's htab_map_hash (jhash2
    /// for keys of whole u32 words, else jhash) for BPF_F_ZERO_SEED maps, the
    /// store's `fast_hash` for the others, the index itself for DEVMAP_HASH.
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
        if self.jhash {
            htab_hash(k, self.seed)
        } else {
            fast_hash(k, self.seed)
        }
    }

    /// Bucket of the key probe `p`: the kernel's jhash for BPF_F_ZERO_SEED maps
    /// (whose bucket order is the kernel's), the store's `fast_hash` otherwise.
    #[inline(always)]
    pub(crate) fn bucket<P: Probe>(&self, p: P) -> u32 {
        let h = if self.jhash {
            p.hash(self.seed)
        } else {
            p.fast(self.seed)
        };
        h & self.bucket_mask
    }

    /// Element base for an index the caller has checked against `nelems`.
    ///
    /// Unlike [`Map::elem`] there is no clamp: the hot paths compare every index
    /// decoded from shared memory with `nelems` right before calling this, and
    /// `elems + nelems * elem_size` lies inside the data region because the
    /// geometry is recomputed from the map's definition when the store is opened
    /// (`layout::read_entry`), never read from the store.
    #[inline(always)]
    fn elem_at(&self, idx: u32) -> *mut u8 {
        debug_assert!(idx < self.nelems);
        self.elems.wrapping_add(idx as usize * self.elem_size)
    }

    /// Lock-free chain walk of bucket `b` (masked) for the key `p`.
    ///
    /// Per element: one tag test, one bounds test of the index against `nelems`
    /// (links come from shared memory), the key compare, one load of `next`. The
    /// stripe's `seq` is read once before the walk and checked only on a miss.
    /// The first walk is inline; restarts (rare: a writer changed the chain under
    /// us) continue in the outlined `find_lockfree_slow`.
    ///
    /// # Safety
    /// `p` is a probe built from key_size readable bytes (see [`Probe`]).
    #[inline(always)]
    unsafe fn find_lockfree<P: Probe>(&self, p: P, b: u32) -> Option<u32> {
        let b = b & self.bucket_mask;
        // SAFETY: forwarded caller contract.
        match unsafe { self.walk_once(p, b) } {
            Walk::Found(idx) => Some(idx),
            Walk::Missed => None,
            // SAFETY: forwarded caller contract.
            Walk::Restart => unsafe { self.find_lockfree_slow(p, b) },
        }
    }

    /// `find_lockfree` after a first walk that must restart.
    ///
    /// # Safety
    /// As `find_lockfree`; b <= bucket_mask.
    #[cold]
    #[inline(never)]
    unsafe fn find_lockfree_slow<P: Probe>(&self, p: P, b: u32) -> Option<u32> {
        for _ in 1..MAX_RESTARTS {
            // SAFETY: forwarded caller contract.
            match unsafe { self.walk_once(p, b) } {
                Walk::Found(idx) => return Some(idx),
                Walk::Missed => return None,
                Walk::Restart => {}
            }
        }
        None
    }

    /// One lock-free walk of bucket `b` (the seq protocol in the module doc).
    ///
    /// # Safety
    /// As `find_lockfree`; b <= bucket_mask.
    #[inline(always)]
    unsafe fn walk_once<P: Probe>(&self, p: P, b: u32) -> Walk {
        let seq = self.bucket_seq(b).load(Ordering::Acquire);
        let mut link = self.head(b).load(Ordering::Acquire);
        let mut steps = 0u32;
        loop {
            // One test for "not an element link" and "out of range": link 0
            // decodes to u32::MAX, never below nelems.
            let idx = (link >> 2).wrapping_sub(1);
            if link & 3 != TAG_ELEM || idx >= self.nelems {
                if link & 3 == TAG_ELEM && link != 0 {
                    return Walk::Missed; // a corrupt link: no element to find
                }
                break;
            }
            let e = self.elem_at(idx);
            // SAFETY: e is element idx < nelems; its key area at key_off holds
            // key_stride = round_up(key_size, 4) bytes, 4-aligned.
            if unsafe { p.eq(e.wrapping_add(self.key_off)) } {
                return Walk::Found(idx);
            }
            // SAFETY: offset 0 of an in-bounds, 8-aligned element.
            link = unsafe { self.u32_at(e) }.load(Ordering::Acquire);
            steps += 1;
            if steps > self.nelems {
                // A cycle: the chain changed under us, or (in a quiet bucket)
                // the store is corrupt and the key is not found.
                link = 0;
                break;
            }
        }
        if (link == 0 || link == nulls(b)) && self.unchanged_since(b, seq) {
            return Walk::Missed; // the bucket was quiet: a true miss
        }
        // Ended in another bucket, on a free-list link, or the bucket changed
        // under us: we walked through a deleted element.
        Walk::Restart
    }

    /// Chain walk under the bucket lock: also returns the link pointing at the
    /// element. Under the lock the chain cannot change, so a link out of range or
    /// a chain longer than the element count (a cycle) is corruption.
    ///
    /// # Safety
    /// `p` is a probe built from key_size readable bytes; the caller holds bucket
    /// `b`'s lock.
    #[inline(always)]
    pub(crate) unsafe fn find_locked<P: Probe>(
        &self,
        b: u32,
        p: P,
    ) -> Result<Option<(u32, Prev)>, ChainCorrupt> {
        let mut prev = Prev::Head;
        let mut link = self.head(b).load(Ordering::Acquire);
        let mut steps = 0u32;
        loop {
            // As in walk_once: link 0 decodes to u32::MAX.
            let idx = (link >> 2).wrapping_sub(1);
            if link & 3 != TAG_ELEM || idx >= self.nelems {
                if link & 3 == TAG_ELEM && link != 0 {
                    return Err(ChainCorrupt(b, "a link out of range"));
                }
                break;
            }
            let e = self.elem_at(idx);
            // SAFETY: as in find_lockfree.
            if unsafe { p.eq(e.wrapping_add(self.key_off)) } {
                return Ok(Some((idx, prev)));
            }
            prev = Prev::Elem(idx);
            // SAFETY: offset 0 of an in-bounds, 8-aligned element.
            link = unsafe { self.u32_at(e) }.load(Ordering::Acquire);
            steps += 1;
            if steps > self.nelems {
                return Err(ChainCorrupt(b, "a cycle (longer than the element count)"));
            }
        }
        Ok(None)
    }

    /// The error of a `find_locked` that found a corrupt chain.
    #[cold]
    #[inline(never)]
    pub(crate) fn chain_error(&self, c: ChainCorrupt) -> MapError {
        self.chain_corrupt(c.0, c.1)
    }

    #[cold]
    #[inline(never)]
    fn chain_corrupt(&self, b: u32, what: &str) -> MapError {
        MapError::Corrupt {
            id: self.id,
            what: format!(
                "{:?}: hash chain of bucket {b}: {what}",
                self.meta.info.name
            ),
        }
    }

    /// Walks bucket `b`'s chain and checks it: every link in range, no more
    /// elements than the map has (else a cycle), each element's key hashing to
    /// `b`, the chain ending on `b`'s nulls marker, and `key` (if given) held by
    /// at most one element. Returns the first element and, when `key` is in the
    /// chain, `Some` of the element after it. The caller holds bucket `b`'s
    /// lock, so any failure is corruption. Allocates nothing.
    fn chain_checked(
        &self,
        b: u32,
        key: Option<&[u8]>,
    ) -> Result<(Option<u32>, Option<Option<u32>>), MapError> {
        let mut first = None;
        let mut after_key: Option<Option<u32>> = None;
        let mut just_matched = false;
        let mut link = self.head(b).load(Ordering::Acquire);
        if link == 0 {
            return Ok((None, None));
        }
        let mut len = 0u32;
        while link & 3 == TAG_ELEM && link != 0 {
            let Some(idx) = self.link_elem(link) else {
                return Err(self.chain_corrupt(b, &format!("link {link:#x} out of range")));
            };
            if len >= self.nelems {
                return Err(self.chain_corrupt(b, "a cycle (longer than the element count)"));
            }
            len += 1;
            let kb = self.elem_bucket(idx);
            if kb != b {
                return Err(
                    self.chain_corrupt(b, &format!("element {idx} holds a key of bucket {kb}"))
                );
            }
            first.get_or_insert(idx);
            if just_matched {
                after_key = Some(Some(idx));
                just_matched = false;
            }
            if let Some(k) = key {
                // SAFETY: the key area of idx < nelems has round_up(key_size, 4)
                // bytes; k has key_size bytes.
                if unsafe { mem::key_eq(self.e_key(idx), k.as_ptr(), k.len()) } {
                    if after_key.is_some() || just_matched {
                        return Err(
                            self.chain_corrupt(b, &format!("key repeated in element {idx}"))
                        );
                    }
                    just_matched = true;
                }
            }
            link = self.e_next(idx).load(Ordering::Acquire);
        }
        if link != nulls(b) {
            return Err(self.chain_corrupt(b, &format!("ends on link {link:#x}")));
        }
        if just_matched {
            after_key = Some(None);
        }
        Ok((first, after_key))
    }
    #[inline]
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
                return self.steal_parked();
            }
            match fresh.compare_exchange_weak(f, f + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(f),
                Err(cur) => f = cur,
            }
        }
    }

    #[inline]
    pub(crate) fn push_free(&self, idx: u32) {
        // A freed element's timer is cancelled and forgotten (the kernel's
        // bpf_obj_free_fields).
        self.timer_reset(idx);
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
    #[inline]
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
                unsafe { self.store_value(slot, value) };
            }
            _ => {
                // SAFETY: value holds value_size bytes; the area has vstride.
                unsafe { self.store_value(base, value) }
            }
        }
    }

    /// Stores one value of value_size bytes; 4- and 8-byte values as one word.
    ///
    /// # Safety
    /// As `mem::store_words(dst, value, value_size)`.
    #[inline(always)]
    pub(crate) unsafe fn store_value(&self, dst: *mut u8, value: *const u8) {
        // SAFETY: caller contract; the constant lengths let the copy inline.
        unsafe {
            match self.value_size {
                8 => mem::store_words(dst, value, 8),
                4 => mem::store_words(dst, value, 4),
                n => mem::store_words(dst, value, n as usize),
            }
        }
    }

    /// Fills a free element and links it at the head of bucket `b`.
    ///
    /// # Safety
    /// Caller holds bucket b's lock; n < nelems is the caller's (popped or
    /// evicted); `p` a probe of key_size bytes; `value` as for `write_values`;
    /// `kind` is `self.kind`.
    #[inline(always)]
    pub(crate) unsafe fn init_and_link<P: Probe>(
        &self,
        kind: Kind,
        n: u32,
        b: u32,
        p: P,
        value: *const u8,
        cpu: Option<u32>,
    ) {
        let e = self.elem_at(n);
        // SAFETY: key area of n has key_stride = round_up(key_size, 4) bytes, 4-aligned.
        unsafe { p.store(e.wrapping_add(self.key_off)) };
        if kind.is_percpu() {
            // SAFETY: forwarded.
            unsafe { self.write_values(n, value, cpu, true) };
        } else {
            // SAFETY: the value area of n (8-aligned, vstride bytes); value has
            // value_size readable bytes (a non-per-CPU map's user and program
            // layouts are the same).
            unsafe { self.store_value(e.wrapping_add(self.value_off), value) };
        }
        let head = self.head(b);
        let h = head.load(Ordering::Relaxed);
        // SAFETY: offset 0 of the in-bounds, 8-aligned element n.
        unsafe { self.u32_at(e) }.store(if h == 0 { nulls(b) } else { h }, Ordering::Release);
        if kind.is_lru() {
            self.e_state(n).store(ST_LIVE, Ordering::Relaxed);
        }
        head.store(elem_link(n), Ordering::Release);
    }

    /// Update from user space (`cpu == None`) or from a program on worker `cpu`.
    ///
    /// # Safety
    /// `key` has key_size readable bytes; `value` has user_value_size (cpu None) or
    /// value_size (cpu Some) readable bytes.
    #[inline]
    pub(crate) unsafe fn hash_update(
        &self,
        key: *const u8,
        value: *const u8,
        flags: u64,
        cpu: Option<u32>,
    ) -> Result<(), MapError> {
        // SAFETY: forwarded caller contract (key_size readable bytes at key).
        unsafe {
            with_probe!(self, self.kind, key, p => self.hash_update_p(self.kind, p, value, flags, cpu))
        }
    }

    /// `Map::prog_update` of a HASH or PERCPU_HASH (`kind`, a constant in the
    /// caller, so the other kind's branches fold away).
    ///
    /// # Safety
    /// `key` and `value` have key_size and value_size readable bytes; `kind` is
    /// `self.kind`, a HASH or PERCPU_HASH.
    #[inline(always)]
    pub(crate) unsafe fn hash_prog_update(
        &self,
        kind: Kind,
        key: *const u8,
        value: *const u8,
        flags: u64,
        cpu: u32,
    ) -> Result<(), MapError> {
        // SAFETY: forwarded caller contract (key_size readable bytes at key).
        let r = unsafe {
            with_probe!(self, kind, key, p => {
                self.hash_prog_update_p(kind, p, value, flags, cpu, false)
            })
        };
        r.map_err(|f| self.upd_error(f))
    }

    /// `hash_update` for one kind of probe; `kind` is `self.kind`.
    ///
    /// # Safety
    /// As `hash_update`, with `p` built from the key.
    #[inline(always)]
    unsafe fn hash_update_p<P: Probe>(
        &self,
        kind: Kind,
        p: P,
        value: *const u8,
        flags: u64,
        cpu: Option<u32>,
    ) -> Result<(), MapError> {
        // BPF_F_LOCK needs a bpf_spin_lock in the value, not tracked yet: EINVAL.
        if (flags & !BPF_F_LOCK) > BPF_EXIST || flags & BPF_F_LOCK != 0 {
            return Err(MapError::InvalidFlags { id: self.id, flags });
        }
        if kind.is_lru() {
            // SAFETY: forwarded caller contract.
            return unsafe { self.lru_update(p, value, flags, cpu) };
        }
        let percpu = kind.is_percpu();
        if let Some(c) = cpu {
            if percpu && c >= self.ncpus {
                return Err(MapError::InvalidValue {
                    id: self.id,
                    what: "worker index >= ncpus",
                });
            }
        }
        let b = self.bucket(p);
        let _guard = self.take_lock(self.bucket_lock(b), || {
            format!("stripe lock {}", self.stripe(b))
        })?;
        // SAFETY: caller contract; we hold the lock.
        match unsafe { self.find_locked(b, p) }.map_err(|c| self.chain_error(c))? {
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
                        unsafe { self.init_and_link(kind, n, b, p, value, cpu) };
                        let prev = match prev {
                            Prev::Head => Prev::Elem(n),
                            p => p,
                        };
                        // SAFETY: old and prev's index come from find_locked, n from
                        // pop_free: all < nelems.
                        unsafe {
                            let next = self.next_at(old).load(Ordering::Relaxed);
                            self.prev_link_at(b, prev).store(next, Ordering::Release);
                        }
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
                if flags == BPF_EXIST && kind != Kind::DevMapHash {
                    return Err(MapError::NotFound { id: self.id });
                }
                if !self.reserve_count() {
                    return Err(self.too_big());
                }
                let Some(n) = self.pop_free() else {
                    self.release_count();
                    return Err(self.too_big());
                };
                let odd = self.seq_begin(b);
                // SAFETY: n is ours; lock held; sizes per contract.
                unsafe { self.init_and_link(kind, n, b, p, value, cpu) };
                self.seq_end(b, odd);
                Ok(())
            }
        }
    }

    /// The program update of a HASH or PERCPU_HASH for one kind of probe, as the
    /// kernel's htab_map_update_elem / __htab_percpu_map_update_elem: `kind` is
    /// `self.kind` (a constant in every caller, so the other kind's branches fold
    /// away), errors come back as a small `UpdFail` (no `MapError` on the hot
    /// path).
    ///
    /// An existing key's value is replaced the kernel's way (a new element linked
    /// at the head, the old one unlinked) for a plain HASH, and written in place
    /// for a PERCPU_HASH (this worker's slot), as the kernel does. With
    /// `in_place`, a plain HASH whose values are at most 8 bytes is also written
    /// in place (see `Map::prog_ops`, `update_in_place`, for when that is allowed).
    ///
    /// # Safety
    /// `p` is built from key_size readable bytes; `value` has value_size readable
    /// bytes; the map is a HASH or PERCPU_HASH (`kind`).
    #[inline(always)]
    pub(crate) unsafe fn hash_prog_update_p<P: Probe>(
        &self,
        kind: Kind,
        p: P,
        value: *const u8,
        flags: u64,
        cpu: u32,
        in_place: bool,
    ) -> Result<(), UpdFail> {
        debug_assert!(kind == self.kind && matches!(kind, Kind::Hash | Kind::PercpuHash));
        // BPF_F_LOCK (4) needs a bpf_spin_lock in the value, not tracked yet: EINVAL.
        if flags > BPF_EXIST {
            return Err(UpdFail::Flags(flags));
        }
        let percpu = kind.is_percpu();
        if percpu && cpu >= self.ncpus {
            return Err(UpdFail::Cpu);
        }
        let b = self.bucket(p);
        let guard = match crate::lock::lock(self.bucket_lock(b)) {
            Ok(g) => g,
            Err(h) => return Err(UpdFail::Lock(h, b)),
        };
        if guard.took_over() {
            self.mark_dirty();
        }
        // SAFETY: caller contract; we hold the lock.
        let found = unsafe { self.find_locked(b, p) };
        // The in-place cases first; inserts and the replacement of an element
        // continue in `update_locked` (inlined: outlining it cost the
        // replacement more than it saved the in-place path).
        if let Ok(Some((old, _))) = found {
            if flags != BPF_NOEXIST && self.writes_in_place(in_place) {
                // SAFETY: old < nelems (find_locked); cpu < ncpus for per-CPU maps
                // (checked above); value has value_size readable bytes.
                unsafe { self.store_in_place(old, value, percpu.then_some(cpu)) };
                return Ok(());
            }
        }
        // SAFETY: forwarded caller contract; the lock is held (guard lives on).
        let r = unsafe { self.update_locked(kind, b, p, found, value, flags, cpu) };
        drop(guard);
        r
    }

    /// The fast path of `hash_prog_update_p` for a map whose existing keys are
    /// written in place (PERCPU_HASH always, a plain HASH with values of at most
    /// 8 bytes on its `update_in_place` entry point): with BPF_ANY or BPF_EXIST,
    /// a worker index in range (per-CPU) and the stripe lock free at the first
    /// try, an existing key's value is stored under the lock (`Stored`). `No`
    /// when any of that does not hold: nothing was written and the lock is not
    /// held. `Missed(b)` when the walk under the lock did not find the key (or
    /// found the chain corrupt): the lock stays held, handed on to
    /// `update_after_miss`, which inserts (or reports).
    ///
    /// Kept to the lock, the walk and the store (a counter's update), so that
    /// the function calling it needs few registers; everything else is out of
    /// line.
    ///
    /// # Safety
    /// As `hash_prog_update_p`; `kind` is `self.kind`, a HASH or PERCPU_HASH.
    #[inline(always)]
    pub(crate) unsafe fn hash_store_existing<P: Probe>(
        &self,
        kind: Kind,
        p: P,
        value: *const u8,
        flags: u64,
        cpu: u32,
    ) -> StoreExisting {
        debug_assert!(kind == self.kind && matches!(kind, Kind::Hash | Kind::PercpuHash));
        let percpu = kind.is_percpu();
        let simple = self.writes_in_place(true) && (!percpu || cpu < self.ncpus);
        if (flags != BPF_ANY && flags != BPF_EXIST) || !simple {
            return StoreExisting::No;
        }
        let b = self.bucket(p);
        let Some(guard) = crate::lock::try_lock_free(self.bucket_lock(b)) else {
            return StoreExisting::No;
        };
        // SAFETY: caller contract; we hold the lock.
        let Ok(Some((old, _))) = (unsafe { self.find_locked(b, p) }) else {
            guard.hand_on();
            return StoreExisting::Missed(b);
        };
        // SAFETY: old < nelems (find_locked); cpu < ncpus for per-CPU maps (checked
        // above); value has value_size readable bytes.
        unsafe { self.store_in_place(old, value, percpu.then_some(cpu)) };
        drop(guard);
        StoreExisting::Stored
    }

    /// Writes element `old`'s value in place (per-CPU: worker `cpu`'s slot).
    ///
    /// # Safety
    /// `old < nelems`; `cpu < ncpus` when given; `value` has value_size readable
    /// bytes; the caller holds the element's stripe lock.
    #[inline(always)]
    unsafe fn store_in_place(&self, old: u32, value: *const u8, cpu: Option<u32>) {
        let slot = cpu.map_or(0, |c| c as usize * self.vstride);
        let v = self
            .elem_at(old)
            .wrapping_add(self.value_off)
            .wrapping_add(slot);
        // SAFETY: caller contract: the slot is inside the element's value area.
        unsafe { self.store_value(v, value) };
    }

    /// The rest of an update after `hash_store_existing` answered
    /// `Missed(b)`: under bucket `b`'s lock, which the caller handed on, the
    /// walk is repeated and `update_locked` inserts the key (or fails as
    /// `hash_prog_update_p` would); the lock is released here.
    ///
    /// # Safety
    /// As `hash_prog_update_p`; this process holds bucket `b`'s lock, taken by
    /// `hash_store_existing` for the probe `p` and handed on.
    #[cold]
    #[inline(never)]
    pub(crate) unsafe fn update_after_miss<P: Probe>(
        &self,
        kind: Kind,
        b: u32,
        p: P,
        value: *const u8,
        flags: u64,
        cpu: u32,
    ) -> Result<(), UpdFail> {
        // SAFETY: caller contract: the lock was handed on to us.
        let guard = unsafe { crate::lock::PidLockGuard::adopt(self.bucket_lock(b)) };
        // SAFETY: forwarded caller contract; the lock is held (guard lives on).
        let r = unsafe {
            let found = self.find_locked(b, p);
            self.update_locked(kind, b, p, found, value, flags, cpu)
        };
        drop(guard);
        r
    }

    /// The rest of `hash_prog_update_p` under bucket `b`'s lock, given what
    /// `find_locked` found: the kernel's replacement of an existing key (a new
    /// element linked at the head, then the old one unlinked; in place when no
    /// spare element is free) and the insert of a new key.
    ///
    /// # Safety
    /// As `hash_prog_update_p`; the caller holds bucket `b`'s lock and `found` is
    /// `find_locked(b, p)` under it.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn update_locked<P: Probe>(
        &self,
        kind: Kind,
        b: u32,
        p: P,
        found: Result<Option<(u32, Prev)>, ChainCorrupt>,
        value: *const u8,
        flags: u64,
        cpu: u32,
    ) -> Result<(), UpdFail> {
        match found {
            Err(c) => Err(UpdFail::Corrupt(c)),
            Ok(Some((old, prev))) => {
                if flags == BPF_NOEXIST {
                    return Err(UpdFail::Exists);
                }
                if !kind.is_percpu() {
                    if let Some(n) = self.take_for_replace(b) {
                        let odd = self.seq_begin(b);
                        // SAFETY: n is ours (taken); lock held; sizes per contract.
                        unsafe { self.init_and_link(kind, n, b, p, value, Some(cpu)) };
                        let prev = match prev {
                            Prev::Head => Prev::Elem(n),
                            p => p,
                        };
                        // SAFETY: old and prev's index come from find_locked, n from
                        // take_for_replace: all < nelems.
                        unsafe {
                            let next = self.next_at(old).load(Ordering::Relaxed);
                            self.prev_link_at(b, prev).store(next, Ordering::Release);
                        }
                        self.seq_end(b, odd);
                        self.park(b, old);
                        return Ok(());
                    }
                }
                // In place: per-CPU (this worker's slot), or no spare element.
                // SAFETY: old < nelems (from find_locked); cpu < ncpus was checked
                // for per-CPU maps; value has value_size bytes.
                unsafe { self.write_values(old, value, Some(cpu), false) };
                Ok(())
            }
            Ok(None) => {
                if flags == BPF_EXIST {
                    return Err(UpdFail::NotFound);
                }
                if !self.reserve_count() {
                    return Err(UpdFail::TooBig);
                }
                let Some(n) = self.pop_free() else {
                    self.release_count();
                    return Err(UpdFail::TooBig);
                };
                let odd = self.seq_begin(b);
                // SAFETY: n is ours; lock held; sizes per contract.
                unsafe { self.init_and_link(kind, n, b, p, value, Some(cpu)) };
                self.seq_end(b, odd);
                Ok(())
            }
        }
    }

    /// The `MapError` of a failed `hash_prog_update_p` (cold: only on errors).
    #[cold]
    #[inline(never)]
    pub(crate) fn upd_error(&self, f: UpdFail) -> MapError {
        match f {
            UpdFail::Flags(flags) => MapError::InvalidFlags { id: self.id, flags },
            UpdFail::Cpu => MapError::InvalidValue {
                id: self.id,
                what: "worker index >= ncpus",
            },
            UpdFail::Exists => MapError::Exists { id: self.id },
            UpdFail::NotFound => MapError::NotFound { id: self.id },
            UpdFail::TooBig => self.too_big(),
            UpdFail::Corrupt(c) => self.chain_error(c),
            UpdFail::Lock(h, b) => h.to_map_error(
                self.id,
                self.lock_name(format!("stripe lock {}", self.stripe(b))),
            ),
        }
    }

    /// `-errno` of a failed `hash_prog_update_p`, as `upd_error(f).errno()`.
    #[cold]
    #[inline(never)]
    pub(crate) fn upd_errno(&self, f: UpdFail) -> i64 {
        -i64::from(self.upd_error(f).errno())
    }

    #[cold]
    fn too_big(&self) -> MapError {
        MapError::TooBig {
            id: self.id,
            max_entries: self.max_entries,
        }
    }

    /// # Safety
    /// `key` has key_size readable bytes.
    #[inline]
    pub(crate) unsafe fn hash_delete(&self, key: *const u8) -> Result<(), MapError> {
        // SAFETY: forwarded caller contract.
        unsafe { with_probe!(self, self.kind, key, p => self.hash_delete_p(p)) }
    }

    /// # Safety
    /// `p` is built from key_size readable bytes.
    #[inline(always)]
    pub(crate) unsafe fn hash_delete_p<P: Probe>(&self, p: P) -> Result<(), MapError> {
        let b = self.bucket(p);
        let _guard = self.take_lock(self.bucket_lock(b), || {
            format!("stripe lock {}", self.stripe(b))
        })?;
        // SAFETY: caller contract; lock held.
        let found = unsafe { self.find_locked(b, p) }.map_err(|c| self.chain_error(c))?;
        let Some((idx, prev)) = found else {
            return Err(MapError::NotFound { id: self.id });
        };
        let odd = self.seq_begin(b);
        // SAFETY: idx and prev's index come from find_locked: < nelems.
        unsafe {
            let next = self.next_at(idx).load(Ordering::Relaxed);
            self.prev_link_at(b, prev).store(next, Ordering::Release);
        }
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
    #[inline(never)]
    pub(crate) unsafe fn hash_lookup_ptr(&self, key: *const u8, cpu: u32) -> *mut u8 {
        // SAFETY: forwarded caller contract.
        unsafe { with_probe!(self, self.kind, key, p => self.hash_lookup_ptr_p(self.kind, p, cpu)) }
    }

    /// # Safety
    /// `p` is built from key_size readable bytes; `kind` is `self.kind`.
    #[inline(always)]
    pub(crate) unsafe fn hash_lookup_ptr_p<P: Probe>(&self, kind: Kind, p: P, cpu: u32) -> *mut u8 {
        let percpu = kind.is_percpu();
        if percpu && cpu >= self.ncpus {
            return std::ptr::null_mut();
        }
        // SAFETY: caller contract.
        let Some(idx) = (unsafe { self.find_lockfree(p, self.bucket(p)) }) else {
            return std::ptr::null_mut();
        };
        if kind.is_lru() {
            // bpf_lru_node_set_ref: write only when not yet set.
            let st = self.e_state(idx);
            if st.load(Ordering::Relaxed) & ST_REF == 0 {
                st.fetch_or(ST_REF, Ordering::Relaxed);
            }
        }
        // idx < nelems (find_lockfree checked it).
        let v = self.elem_at(idx).wrapping_add(self.value_off);
        if percpu {
            v.wrapping_add(cpu as usize * self.vstride)
        } else {
            v
        }
    }

    /// The layout of this map for a lookup generated inline ([`HashLayout`]):
    /// `Some` for a HASH or PERCPU_HASH with keys of up to `HashLayout::MAX_KEY`
    /// bytes, whose lookup is exactly `walk_once` (every probe holds the key as
    /// its zero-padded words), bucketed by `fast_hash` or, for BPF_F_ZERO_SEED
    /// maps with keys of up to `MAX_JHASH_KEY` bytes, the kernel's jhash
    /// (`Map::bucket`). LRU maps have none: their hits set the element's
    /// reference bit.
    pub fn hash_layout(&self) -> Option<HashLayout> {
        let ncpus = match self.kind {
            Kind::Hash => 0,
            Kind::PercpuHash => self.ncpus,
            _ => return None,
        };
        if !(1..=HashLayout::MAX_KEY).contains(&self.key_size) {
            return None;
        }
        let (hash, hash_init) = if self.jhash {
            // jhash adds the little-endian word of a partial last word's bytes,
            // which is the word the store holds only on little-endian machines.
            if self.key_size > HashLayout::MAX_JHASH_KEY
                || (!self.key_size.is_multiple_of(4) && cfg!(target_endian = "big"))
            {
                return None;
            }
            (BucketHash::Jhash, jhash_init(self.key_size, self.seed))
        } else {
            (BucketHash::Fast, fast_init(self.key_size, self.seed))
        };
        Some(HashLayout {
            buckets: self.buckets,
            bucket_mask: self.bucket_mask,
            stripes: self.stripes,
            stripe_mask: self.stripe_mask,
            elems: self.elems,
            elem_size: self.elem_size as u32,
            nelems: self.nelems,
            key_off: self.key_off as u32,
            value_off: self.value_off as u32,
            key_size: self.key_size,
            key_words: self.key_size.div_ceil(4),
            hash,
            hash_init,
            ncpus,
            vstride: self.vstride as u32,
        })
    }

    /// Whether an update writes an existing key's value in place rather than
    /// replacing its element: always in a PERCPU_HASH (as the kernel); in a plain
    /// HASH only on the in-place entry point (`in_place_entry`: the caller knows
    /// no earlier lookup's value pointer is read after the update), with values of
    /// at most 8 bytes (one untorn word for concurrent readers) and not in a
    /// BPF_F_ZERO_SEED map (whose replacement moves the key to the head of its
    /// bucket, which its get_next_key order shows).
    #[inline(always)]
    fn writes_in_place(&self, in_place_entry: bool) -> bool {
        match self.kind {
            Kind::PercpuHash => true,
            Kind::Hash => in_place_entry && self.value_size <= 8 && !self.jhash,
            _ => false,
        }
    }

    /// What generated code needs to update an existing key in place itself, as
    /// [`ProgOps::update_in_place`](crate::ProgOps) of this map does (per-CPU: both
    /// updates): `None` unless this map writes existing keys in place (a
    /// PERCPU_HASH; a plain HASH with values of at most 8 bytes when
    /// `no_pointer_survives`, the caller's proof that nothing reads an earlier
    /// lookup's value pointer after the update, and not BPF_F_ZERO_SEED), the
    /// value is one word of 4 or 8 bytes, and [`Map::hash_layout`] describes its
    /// lookup. See [`HashUpdateLayout`] for the protocol.
    pub fn hash_update_layout(&self, no_pointer_survives: bool) -> Option<HashUpdateLayout> {
        let lookup = self.hash_layout()?;
        let in_place = self.writes_in_place(no_pointer_survives);
        (in_place && matches!(self.value_size, 4 | 8)).then(|| HashUpdateLayout {
            lookup,
            value_size: self.value_size,
            pid: crate::lock::pid_word(),
        })
    }

    /// Index of the element holding the key at `key`, lock-free, and its bucket.
    ///
    /// # Safety
    /// `key` has key_size readable bytes.
    unsafe fn find_key(&self, key: *const u8) -> (Option<u32>, u32) {
        // SAFETY: forwarded caller contract.
        unsafe {
            with_probe!(self, self.kind, key, p => {
                let b = self.bucket(p);
                (self.find_lockfree(p, b), b)
            })
        }
    }

    pub(crate) fn hash_user_lookup(&self, key: &[u8], out: &mut [u8]) -> Result<(), MapError> {
        // SAFETY: key is key_size bytes (checked by Map::lookup).
        let idx = unsafe { self.find_key(key.as_ptr()) }
            .0
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
        // Each answer comes from a chain checked under its stripe lock (in range,
        // acyclic, every key of that bucket, ending on its marker) in which the
        // key asked for appears at most once. Then every step moves forward (to a
        // later element of the bucket, or a later bucket), so a walk ends after at
        // most nelems keys whatever the store holds; a corrupt chain is an error.
        let mut first_bucket = 0u32;
        if let Some(k) = key {
            // SAFETY: k has key_size bytes (checked by Map::get_next_key).
            let b = unsafe { self.hash_of(k.as_ptr()) } & self.bucket_mask;
            let _g = self.take_lock(self.bucket_lock(b), || {
                format!("stripe lock {}", self.stripe(b))
            })?;
            match self.chain_checked(b, Some(k))?.1 {
                Some(Some(n)) => {
                    // SAFETY: key area of n < nelems, key_stride = round_up(out.len(), 4).
                    unsafe { mem::load_key(out, self.e_key(n)) };
                    return Ok(());
                }
                Some(None) => first_bucket = b + 1,
                // Not in the map (deleted meanwhile): the first key, as the kernel.
                None => {}
            }
        }
        for b in first_bucket..=self.bucket_mask {
            if self.head(b).load(Ordering::Acquire) == 0 {
                continue;
            }
            let _g = self.take_lock(self.bucket_lock(b), || {
                format!("stripe lock {}", self.stripe(b))
            })?;
            if let (Some(n), _) = self.chain_checked(b, None)? {
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

#[inline(always)]
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

/// The constants of the kernel's jhash (include/linux/jhash.h) as far as the
/// bucket hash of BPF_F_ZERO_SEED maps with keys of 1 to 4 or 8 bytes needs
/// them: the one definition both this crate and code generators emitting the
/// hash inline (see [`HashLayout`]) use.
pub mod jhash_consts {
    /// `JHASH_INITVAL`: the state before the key is `INITVAL + key length + seed`.
    pub const INITVAL: u32 = 0xdead_beef;
    /// `__jhash_final(a, b, c)` over the state `s = [a, b, c]`: for each `(x, y,
    /// r)` in order, `s[x] ^= s[y]; s[x] -= s[y].rotate_left(r)`; the hash is `c`.
    pub const FINAL: [(usize, usize, u32); 7] = [
        (2, 1, 14),
        (0, 2, 11),
        (1, 0, 25),
        (2, 1, 16),
        (0, 2, 4),
        (1, 0, 14),
        (2, 1, 24),
    ];
}

#[inline(always)]
fn jhash_final(a: &mut u32, b: &mut u32, c: &mut u32) {
    let mut s = [*a, *b, *c];
    for (x, y, r) in jhash_consts::FINAL {
        s[x] ^= s[y];
        s[x] = s[x].wrapping_sub(rol(s[y], r));
    }
    [*a, *b, *c] = s;
}

const JHASH_INITVAL: u32 = jhash_consts::INITVAL;

/// jhash's state before a key of `len` bytes hashed with `seed`.
#[inline(always)]
pub(crate) fn jhash_init(len: u32, seed: u32) -> u32 {
    JHASH_INITVAL.wrapping_add(len).wrapping_add(seed)
}

/// The kernel's jhash_1word: jhash2 of one word, without the slice.
#[inline(always)]
pub(crate) fn jhash_1word(w: u32, initval: u32) -> u32 {
    let init = jhash_init(4, initval);
    let (mut a, mut b, mut c) = (init.wrapping_add(w), init, init);
    jhash_final(&mut a, &mut b, &mut c);
    c
}

/// The kernel's jhash_2words: jhash2 of two words, without the slice.
#[inline(always)]
pub(crate) fn jhash_2words(w0: u32, w1: u32, initval: u32) -> u32 {
    let init = jhash_init(8, initval);
    let (mut a, mut b, mut c) = (init.wrapping_add(w0), init.wrapping_add(w1), init);
    jhash_final(&mut a, &mut b, &mut c);
    c
}

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

// ---- the store's bucket hash (maps without BPF_F_ZERO_SEED) ----
//
// The kernel hashes with jhash and a random seed, so its bucket order is only
// observable with BPF_F_ZERO_SEED; those maps keep jhash (`htab_hash`) and the
// kernel's order. Every other map hashes its key with `fast_hash`: the key's
// bytes zero-padded to 4-byte native-endian words (as the store holds keys),
// each folded in with a multiply and a rotate, then a full-avalanche 32-bit
// finaliser (the "lowbias32" mix), so that the masked low bits are well mixed.
// A 4-byte key costs 10 operations where jhash takes about 30. Stores are only
// shared between processes on one machine, so native-endian words are the same
// for every reader; the layout version (4) says which hash a store's maps use.

/// The constants of `fast_hash`, the one definition both this crate and code
/// generators emitting the hash inline (see [`HashLayout`]) use.
pub mod fast_hash_consts {
    /// `fast_init`: the key length is multiplied by this and xored into the seed.
    pub const LEN_MUL: u32 = 0x9e37_79b9;
    /// `fast_word`: `((h ^ w) * WORD_MUL).rotate_left(WORD_ROT)`.
    pub const WORD_MUL: u32 = 0xcc9e_2d51;
    /// See `WORD_MUL`.
    pub const WORD_ROT: u32 = 15;
    /// `fast_final`: `h ^= h >> FIN_SHIFT[0]; h *= FIN_MUL[0]; h ^= h >>
    /// FIN_SHIFT[1]; h *= FIN_MUL[1]; h ^ (h >> FIN_SHIFT[2])`.
    pub const FIN_MUL: [u32; 2] = [0x7feb_352d, 0x846c_a68b];
    /// See `FIN_MUL`.
    pub const FIN_SHIFT: [u32; 3] = [16, 15, 16];
}

use fast_hash_consts as fh;

/// `fast_hash` state before the first word: the seed and the key length.
#[inline(always)]
pub(crate) fn fast_init(len: u32, seed: u32) -> u32 {
    seed ^ len.wrapping_mul(fh::LEN_MUL)
}

/// `fast_hash`: folds one key word into the state.
#[inline(always)]
pub(crate) fn fast_word(h: u32, w: u32) -> u32 {
    (h ^ w).wrapping_mul(fh::WORD_MUL).rotate_left(fh::WORD_ROT)
}

/// `fast_hash`: the final avalanche.
#[inline(always)]
pub(crate) fn fast_final(mut h: u32) -> u32 {
    h ^= h >> fh::FIN_SHIFT[0];
    h = h.wrapping_mul(fh::FIN_MUL[0]);
    h ^= h >> fh::FIN_SHIFT[1];
    h = h.wrapping_mul(fh::FIN_MUL[1]);
    h ^ (h >> fh::FIN_SHIFT[2])
}

/// The store's bucket hash of a key (see above).
pub(crate) fn fast_hash(key: &[u8], seed: u32) -> u32 {
    let mut h = fast_init(key.len() as u32, seed);
    for chunk in key.chunks(4) {
        let mut w = [0u8; 4];
        w[..chunk.len()].copy_from_slice(chunk);
        h = fast_word(h, u32::from_ne_bytes(w));
    }
    fast_final(h)
}

/// The kernel's htab_map_hash.
#[inline]
pub(crate) fn htab_hash(key: &[u8], seed: u32) -> u32 {
    if key.len().is_multiple_of(4) {
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

    /// The bucket of `key` (key_size bytes) in `m`, as the map computes it.
    fn key_bucket(m: &Map, key: &[u8]) -> u32 {
        assert_eq!(key.len(), m.key_size as usize);
        // SAFETY: key has key_size bytes.
        unsafe { m.hash_of(key.as_ptr()) & m.bucket_mask }
    }

    /// Keys 0.. that land in the same bucket as `k(first)`, for a map of `nb` buckets.
    fn colliding(m: &Map, n: usize) -> Vec<u32> {
        let b0 = key_bucket(m, &k(1000));
        (1000..)
            .filter(|&i| key_bucket(m, &k(i)) == b0)
            .take(n)
            .collect()
    }

    /// A program's replacement parks the old element in its stripe (the kernel's
    /// extra element): a pointer from an earlier lookup keeps reading the old
    /// value on every stripe, also once the spare elements are all parked in
    /// other stripes (then a parked one is taken from another stripe), inserts
    /// still fill the map to max_entries, and check / repair account for
    /// parked elements.
    #[test]
    fn replacements_park_old_elements() {
        let s = store(2);
        let m = s.create_map(&hdef(BPF_MAP_TYPE_HASH, 64, 0)).expect("map");
        for i in 0..32 {
            m.update(&k(i), &v(u64::from(i)), BPF_ANY).expect("fill");
        }
        assert!(m.stripe_mask >= 16);
        for round in 0..3u64 {
            for i in 0..32u32 {
                let key = k(i);
                // SAFETY: 4-byte key, 8-byte values; p points at a value of the store.
                unsafe {
                    let p = m.prog_lookup(key.as_ptr(), 0) as *const u64;
                    let old = std::ptr::read_volatile(p);
                    let new = v(1000 * (round + 1) + u64::from(i));
                    m.prog_update(key.as_ptr(), new.as_ptr(), BPF_ANY, 0)
                        .expect("replace");
                    assert_eq!(std::ptr::read_volatile(p), old, "key {i} round {round}");
                }
                assert_eq!(get(&m, i), Some(1000 * (round + 1) + u64::from(i)));
            }
        }
        let parked = (0..=m.stripe_mask)
            .filter(|&s| m.stripe_parked(s).load(Ordering::Relaxed) != 0)
            .count();
        assert!(parked > 2, "{parked} parked: more than the spare elements");
        m.check().expect("parked elements are accounted for");
        // Inserts reach max_entries: the last ones take parked elements.
        for i in 100..132 {
            m.update(&k(i), &v(1), BPF_NOEXIST).expect("insert");
        }
        assert_eq!(errno(m.update(&k(200), &v(1), BPF_ANY)), libc::E2BIG);
        assert_eq!(m.len(), 64);
        m.check().expect("consistent");
        // Full: replacements no longer park (the free list holds the spares).
        for i in 100..132u32 {
            // SAFETY: 4-byte key, 8-byte value.
            unsafe { m.prog_update(k(i).as_ptr(), v(2).as_ptr(), BPF_ANY, 0) }.expect("replace");
        }
        m.delete(&k(100)).expect("delete");
        // A replacement that dies after taking an element leaks it; repair
        // reclaims it and returns the parked ones to the free list.
        let b = key_bucket(&m, &k(20));
        let _taken = m.take_for_replace(b).expect("an element");
        assert!(m.check().is_err(), "a leak is reported");
        assert!(m.repair().expect("repair") >= 1);
        m.check().expect("repaired");
        assert!((0..=m.stripe_mask).all(|s| m.stripe_parked(s).load(Ordering::Relaxed) == 0));
        for i in (0..32).chain(101..132) {
            assert!(get(&m, i).is_some(), "key {i}");
        }
        m.update(&k(100), &v(1), BPF_NOEXIST).expect("room again");
    }

    #[test]
    fn jhash_known_values() {
        // Zero-length input returns the initial value unmixed (jhash.h).
        assert_eq!(jhash(&[], 0), 0xdeadbeef);
        assert_eq!(jhash2(&[], 0), 0xdeadbeef);
        assert_eq!(jhash(&[], 1), 0xdeadbef0);
        // Non-empty input: the kernel's jhash is Bob Jenkins' lookup3 hashlittle
        // (include/linux/jhash.h), whose reference driver prints these values.
        let four_score = b"Four score and seven years ago";
        assert_eq!(jhash(four_score, 0), 0x1777_0551);
        assert_eq!(jhash(four_score, 1), 0xcd62_8161);
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
        assert_eq!(
            m.iter().collect::<Result<Vec<_>, _>>().expect("walk").len(),
            5
        );
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
                .map(|kb| kb.expect("walk"))
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
        let mut all: Vec<Vec<u8>> = m.iter().collect::<Result<_, _>>().expect("walk");
        assert_eq!(all.len(), 23);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 23);
        // Keys come in bucket order.
        let buckets: Vec<u32> = m
            .iter()
            .map(|kb| kb.expect("walk"))
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
        let last = m.iter().map(|k| k.expect("walk")).last().expect("last");
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
        let order: Vec<Vec<u8>> = m.iter().collect::<Result<_, _>>().expect("walk");
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
        let mut keys: Vec<Vec<u8>> = m.iter().collect::<Result<_, _>>().expect("walk");
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
                            if n.is_multiple_of(3) {
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

    /// A small deterministic generator (xorshift64*), for test inputs.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    #[test]
    fn word_hashes_equal_jhash2_and_jhash() {
        let mut r = Rng(0x1234_5678_9abc_def1);
        for _ in 0..10_000 {
            let x = r.next();
            let seed = r.next() as u32;
            let b = x.to_ne_bytes();
            let (w0, w1) = (word(&b, 0), word(&b, 1));
            assert_eq!(jhash_1word(w0, seed), jhash2(&b[..4], seed));
            assert_eq!(jhash_2words(w0, w1, seed), jhash2(&b, seed));
            // The probes hash as htab_map_hash does, which is what bucket order
            // (get_next_key) and the kernel differential rely on.
            assert_eq!(Key4(w0).hash(seed), htab_hash(&b[..4], seed));
            assert_eq!(Key8(w0, w1).hash(seed), htab_hash(&b, seed));
            let kb = KeyBytes {
                ptr: b.as_ptr(),
                len: 6,
            };
            assert_eq!(kb.hash(seed), jhash(&b[..6], seed));
            assert_eq!(DevKey(w0).hash(seed), w0);
        }
        // Zero seed, zero key: the same value through both routes.
        assert_eq!(jhash_1word(0, 0), jhash2(&[0; 4], 0));
        assert_eq!(jhash_2words(0, 0, 0), jhash2(&[0; 8], 0));
    }

    /// Every probe's `fast` is `fast_hash` of the key's bytes, and its `hash` the
    /// kernel's htab_map_hash, at every key size with a probe of its own, so
    /// that every path (program, user space, get_next_key, check) finds a key in
    /// the same bucket.
    #[test]
    fn probes_hash_as_the_byte_functions() {
        let mut r = Rng(0x0bad_cafe_f00d_1234);
        for _ in 0..5_000 {
            let seed = r.next() as u32;
            let mut b = [0u8; 20];
            for c in b.chunks_mut(8) {
                let x = r.next().to_ne_bytes();
                c.copy_from_slice(&x[..c.len()]);
            }
            for len in 1..=20usize {
                let key = &b[..len];
                let bytes = KeyBytes::new(key.as_ptr(), len);
                assert_eq!(bytes.fast(seed), fast_hash(key, seed), "len {len}");
                assert_eq!(bytes.hash(seed), htab_hash(key, seed), "len {len}");
                // SAFETY: key has len readable bytes (and 4 * N for the word probes).
                let (fast, kernel) = unsafe {
                    match len {
                        1..=3 => {
                            let p = KeySmall::read(key.as_ptr(), len as u32);
                            (p.fast(seed), p.hash(seed))
                        }
                        4 => {
                            let p = Key4(word(key, 0));
                            (p.fast(seed), p.hash(seed))
                        }
                        8 => {
                            let p = Key8(word(key, 0), word(key, 1));
                            (p.fast(seed), p.hash(seed))
                        }
                        12 => {
                            let p = KeyWords::<3>::read(key.as_ptr());
                            (p.fast(seed), p.hash(seed))
                        }
                        16 => {
                            let p = KeyWords::<4>::read(key.as_ptr());
                            (p.fast(seed), p.hash(seed))
                        }
                        _ => continue,
                    }
                };
                assert_eq!(fast, fast_hash(key, seed), "len {len}");
                assert_eq!(kernel, htab_hash(key, seed), "len {len}");
            }
        }
        // Keys differing in one byte, or only in length (zero padding), differ.
        assert_ne!(fast_hash(&[1, 0], 7), fast_hash(&[1, 0, 0], 7));
        assert_ne!(fast_hash(&[1, 2, 3, 4], 7), fast_hash(&[1, 2, 3, 5], 7));
    }

    /// The fast hash spreads keys over buckets: sequential 4-byte keys (ports,
    /// indices) and 8-byte keys differing only in their high word fill a
    /// power-of-two table with chains no longer than a random hash would give.
    #[test]
    fn fast_hash_spreads_sequential_keys() {
        let nb = 1u32 << 12;
        for (what, keys) in [
            (
                "u32 0..n",
                (0..nb)
                    .map(|i| i.to_ne_bytes().to_vec())
                    .collect::<Vec<_>>(),
            ),
            (
                "u64 high word",
                (0..nb)
                    .map(|i| (u64::from(i) << 32).to_ne_bytes().to_vec())
                    .collect(),
            ),
            (
                "u16 0..n",
                (0..nb).map(|i| (i as u16).to_ne_bytes().to_vec()).collect(),
            ),
        ] {
            let mut count = vec![0u32; nb as usize];
            for kb in &keys {
                count[(fast_hash(kb, 0x5eed) & (nb - 1)) as usize] += 1;
            }
            let longest = count.iter().copied().max().unwrap_or(0);
            let empty = count.iter().filter(|&&c| c == 0).count() as f64 / f64::from(nb);
            // A random hash: about 1/e of the buckets empty, longest chain ~ 7-8.
            assert!(longest <= 10, "{what}: a chain of {longest}");
            assert!(
                (0.30..0.45).contains(&empty),
                "{what}: {empty} of buckets empty"
            );
        }
    }

    #[test]
    fn probes_compare_and_store_whole_keys() {
        #[repr(align(8))]
        struct Buf([u8; 24]);
        let mut buf = Buf([0xAA; 24]);
        let at = buf.0[4..].as_mut_ptr();
        // SAFETY: `at` is 4-aligned with 20 bytes behind it.
        unsafe {
            Key8(0x0403_0201, 0x0807_0605).store(at);
            assert!(Key8(0x0403_0201, 0x0807_0605).eq(at));
            // Either word differing is a different key.
            assert!(!Key8(0x0403_0201, 0x0807_0606).eq(at));
            assert!(!Key8(0x0403_0200, 0x0807_0605).eq(at));
            assert!(Key4(0x0403_0201).eq(at));
            assert!(!Key4(0x0807_0605).eq(at));
        }
        assert_eq!(buf.0[..4], [0xAA; 4]);
        assert_eq!(buf.0[12], 0xAA);
        let key = [9u8, 8, 7, 6, 5];
        let kb = KeyBytes {
            ptr: key.as_ptr(),
            len: 5,
        };
        // SAFETY: as above (round_up(5, 4) = 8 bytes).
        unsafe {
            kb.store(at);
            assert!(kb.eq(at));
        }
        assert_eq!(&buf.0[4..12], &[9, 8, 7, 6, 5, 0, 0, 0]);
    }

    /// `n` keys of `ks` bytes landing in one bucket of `m`. For 8-byte keys they
    /// share their first word, so only the second word tells them apart.
    fn colliding_keys(m: &Map, ks: usize, n: usize) -> Vec<Vec<u8>> {
        let key = |i: u64| -> Vec<u8> {
            let mut kb = vec![0u8; ks];
            let v = if ks == 8 { (i << 32) | 7 } else { i };
            let bytes = v.to_ne_bytes();
            for (j, b) in kb.iter_mut().enumerate() {
                *b = bytes.get(j).copied().unwrap_or(j as u8);
            }
            kb
        };
        let bucket = |kb: &[u8]| key_bucket(m, kb);
        let b0 = bucket(&key(1000));
        (1000..)
            .map(key)
            .filter(|kb| bucket(kb) == b0)
            .take(n)
            .collect()
    }

    #[test]
    fn word_keys_in_one_bucket_across_kinds() {
        for t in [
            BPF_MAP_TYPE_HASH,
            BPF_MAP_TYPE_PERCPU_HASH,
            BPF_MAP_TYPE_LRU_HASH,
            BPF_MAP_TYPE_LRU_PERCPU_HASH,
        ] {
            for ks in [4u32, 8, 12, 5] {
                let s = store(2);
                let m = s
                    .create_map(&MapDef {
                        key_size: ks,
                        ..hdef(t, 64, BPF_F_ZERO_SEED)
                    })
                    .expect("map");
                let keys = colliding_keys(&m, ks as usize, 6);
                let uvs = m.user_value_size();
                let val =
                    |i: usize| -> Vec<u8> { (0..uvs / 8).flat_map(|_| v(i as u64 + 1)).collect() };
                for (i, kb) in keys.iter().enumerate() {
                    m.update(kb, &val(i), BPF_NOEXIST).expect("insert");
                }
                let what = format!("type {t} key {ks}");
                // Every key is found, by programs and by user space, with its value.
                let check = |present: &[usize]| {
                    for (i, kb) in keys.iter().enumerate() {
                        // SAFETY: kb has key_size bytes.
                        let p = unsafe { m.prog_lookup(kb.as_ptr(), 1) };
                        let mut out = vec![0u8; uvs];
                        let r = m.lookup(kb, &mut out);
                        if present.contains(&i) {
                            assert!(!p.is_null(), "{what}: key {i} missing");
                            // SAFETY: a hit points at an 8-byte slot.
                            let got = unsafe { std::ptr::read(p as *const u64) };
                            assert_eq!(got, i as u64 + 1, "{what}: key {i}");
                            assert!(r.is_ok(), "{what}: key {i}");
                            assert_eq!(out, val(i), "{what}: key {i}");
                        } else {
                            assert!(p.is_null(), "{what}: key {i} still found");
                            assert_eq!(errno(r), libc::ENOENT, "{what}: key {i}");
                        }
                    }
                };
                check(&[0, 1, 2, 3, 4, 5]);
                // A key of the bucket that was never inserted is not found.
                let mut absent = keys[0].clone();
                absent[ks as usize - 1] ^= 0x80;
                // SAFETY: absent has key_size bytes.
                let p = unsafe { m.prog_lookup(absent.as_ptr(), 0) };
                assert!(p.is_null(), "{what}");
                // Head insertion: the bucket lists the newest first.
                let order: Vec<Vec<u8>> = m.iter().collect::<Result<_, _>>().expect("walk");
                let rev: Vec<Vec<u8>> = keys.iter().rev().cloned().collect();
                assert_eq!(order, rev, "{what}");
                // Delete the tail (oldest), a middle one and the head (newest).
                for del in [0, 3, 5] {
                    // SAFETY: key_size bytes.
                    unsafe { m.prog_delete(keys[del].as_ptr()) }.expect("delete");
                }
                check(&[1, 2, 4]);
                // Program updates of existing and new keys through the fast paths.
                for (i, kb) in keys.iter().enumerate() {
                    let nv = v(100 + i as u64);
                    // SAFETY: key_size and value_size (8) bytes.
                    unsafe { m.prog_update(kb.as_ptr(), nv.as_ptr(), BPF_ANY, 1) }.expect("update");
                    // SAFETY: as above.
                    let p = unsafe { m.prog_lookup(kb.as_ptr(), 1) };
                    assert!(!p.is_null(), "{what}");
                    // SAFETY: a hit points at an 8-byte slot.
                    assert_eq!(unsafe { std::ptr::read(p as *const u64) }, 100 + i as u64);
                }
                assert_eq!(m.len(), 6, "{what}");
                m.check().expect("consistent");
            }
        }
    }

    #[test]
    fn u64_keys_iterate_in_kernel_bucket_order() {
        let s = store(1);
        let m = s
            .create_map(&MapDef {
                key_size: 8,
                ..hdef(BPF_MAP_TYPE_HASH, 256, BPF_F_ZERO_SEED)
            })
            .expect("map");
        let mut r = Rng(99);
        for _ in 0..200 {
            let key = r.next().to_ne_bytes();
            m.update(&key, &v(1), BPF_ANY).expect("insert");
        }
        let buckets: Vec<u32> = m
            .iter()
            .map(|kb| kb.expect("walk"))
            .map(|kb| jhash2(&kb, 0) & m.bucket_mask)
            .collect();
        assert_eq!(buckets.len(), m.len() as usize);
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn word_key_lookups_survive_deletes_in_their_bucket() {
        // Readers look up a stable key and a never-inserted key of one bucket
        // while writers insert, replace and delete the bucket's other keys.
        for ks in [4usize, 8] {
            let s = store(2);
            let m = s
                .create_map(&MapDef {
                    key_size: ks as u32,
                    ..hdef(BPF_MAP_TYPE_HASH, 16, 0)
                })
                .expect("map");
            let keys = colliding_keys(&m, ks, 7);
            let (stable, ghost) = (keys[0].clone(), keys[6].clone());
            m.update(&stable, &v(42), BPF_ANY).expect("insert");
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let rounds = std::sync::Arc::new(AtomicU64::new(0));
            let writers: Vec<_> = (0..2)
                .map(|w| {
                    let (m, stop, rounds) = (m.clone(), stop.clone(), rounds.clone());
                    let mine: Vec<Vec<u8>> = keys[1 + w * 2..3 + w * 2].to_vec();
                    std::thread::spawn(move || {
                        let mut n = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            for kb in &mine {
                                let _ = m.update(kb, &v(n), BPF_ANY);
                                let _ = m.update(kb, &v(n + 1), BPF_ANY);
                                let _ = m.delete(kb);
                                n += 1;
                            }
                            rounds.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            let mut lookups = 0u64;
            while lookups < 100_000 || rounds.load(Ordering::Relaxed) < 20_000 {
                // SAFETY: key_size bytes; pointers are not dereferenced.
                unsafe {
                    assert!(!m.prog_lookup(stable.as_ptr(), 0).is_null(), "key {ks}");
                    assert!(m.prog_lookup(ghost.as_ptr(), 0).is_null(), "key {ks}");
                }
                lookups += 1;
            }
            stop.store(true, Ordering::Relaxed);
            for w in writers {
                w.join().expect("writer");
            }
            let mut out = [0u8; 8];
            m.lookup(&stable, &mut out).expect("stable");
            assert_eq!(out, v(42));
            m.check().expect("consistent");
        }
    }

    #[test]
    fn a_stripe_lock_held_by_a_live_process_is_a_bounded_error_naming_it() {
        let s = store(1);
        let m = s.create_map(&hdef(BPF_MAP_TYPE_HASH, 8, 0)).expect("map");
        // SAFETY: k(1) has key_size bytes.
        let b = unsafe { m.hash_of(k(1).as_ptr()) } & m.bucket_mask;
        // This process holds the stripe and never releases it (as a thread stuck
        // in its critical section would).
        let me = crate::lock::my_pid();
        m.bucket_lock(b).store(me, Ordering::Relaxed);
        let e = m.update(&k(1), &[0; 8], BPF_ANY).expect_err("bounded wait");
        let MapError::LockHeld {
            id, ref lock, pid, ..
        } = e
        else {
            panic!("{e}");
        };
        assert_eq!((id, pid), (m.id, me));
        let s = m.stripe(b);
        assert!(
            lock.contains(&format!("stripe lock {s}")) && lock.contains("\"h\""),
            "{lock}"
        );
        assert!(e.to_string().contains(&format!("pid {me}")), "{e}");
        m.bucket_lock(b).store(0, Ordering::Relaxed);
        m.update(&k(1), &[0; 8], BPF_ANY).expect("free again");
    }

    /// The bucket of key `i` and the elements of its chain, in order.
    fn chain_of(m: &Map, i: u32) -> (u32, Vec<u32>) {
        // SAFETY: k(i) has key_size bytes.
        let b = unsafe { m.hash_of(k(i).as_ptr()) } & m.bucket_mask;
        let mut out = Vec::new();
        let mut link = m.head(b).load(Ordering::Relaxed);
        while let Some(idx) = m.link_elem(link) {
            out.push(idx);
            link = m.e_next(idx).load(Ordering::Relaxed);
        }
        (b, out)
    }

    /// A key >= `from` hashing to bucket `b`.
    fn key_in_bucket(m: &Map, b: u32, from: u32) -> u32 {
        (from..)
            // SAFETY: k(j) has key_size bytes.
            .find(|&j| unsafe { m.hash_of(k(j).as_ptr()) } & m.bucket_mask == b)
            .expect("a key")
    }

    fn walk(m: &Map) -> (Vec<Vec<u8>>, Option<MapError>) {
        let mut keys = Vec::new();
        for r in m.iter() {
            match r {
                Ok(key) => keys.push(key),
                Err(e) => return (keys, Some(e)),
            }
        }
        (keys, None)
    }

    #[test]
    fn a_cycle_in_a_chain_ends_dumps_and_updates_with_corrupt() {
        let s = store(1);
        let m = s
            .create_map(&hdef(BPF_MAP_TYPE_HASH, 1024, 0))
            .expect("map");
        for i in 0..42 {
            m.update(&k(i), &v(u64::from(i)), BPF_ANY).expect("insert");
        }
        // Two keys in one bucket, then the tail links back to the head.
        let (b, _) = chain_of(&m, 0);
        let j = key_in_bucket(&m, b, 1000);
        m.update(&k(j), &v(1), BPF_ANY).expect("insert");
        let (_, chain) = chain_of(&m, 0);
        assert!(chain.len() >= 2);
        let (head, tail) = (chain[0], chain[chain.len() - 1]);
        m.e_next(tail).store(elem_link(head), Ordering::Relaxed);

        let (keys, err) = walk(&m);
        assert!(keys.len() <= 43, "{} keys", keys.len());
        let Some(MapError::Corrupt { id, what }) = err else {
            panic!("walk ended with {err:?}");
        };
        assert_eq!(id, m.id);
        assert!(
            what.contains(&format!("bucket {b}")) && what.contains("cycle"),
            "{what}"
        );
        // A new key of that bucket: the locked walk finds the cycle too.
        let n = key_in_bucket(&m, b, j + 1);
        let e = m.update(&k(n), &v(1), BPF_ANY).expect_err("corrupt");
        assert!(matches!(e, MapError::Corrupt { .. }), "{e}");
        assert!(matches!(m.delete(&k(n)), Err(MapError::Corrupt { .. })));
    }

    #[test]
    fn cross_linked_and_repeated_keys_end_walks_with_corrupt() {
        let s = store(1);
        let m = s.create_map(&hdef(BPF_MAP_TYPE_HASH, 64, 0)).expect("map");
        for i in 0..20 {
            m.update(&k(i), &v(1), BPF_ANY).expect("insert");
        }
        // An empty bucket whose head names an element of another bucket.
        let (b0, chain0) = chain_of(&m, 0);
        let empty = (0..=m.bucket_mask)
            .find(|&b| m.head(b).load(Ordering::Relaxed) == 0)
            .expect("an empty bucket");
        m.head(empty).store(elem_link(chain0[0]), Ordering::Relaxed);
        let (_, err) = walk(&m);
        assert!(matches!(err, Some(MapError::Corrupt { .. })), "{err:?}");
        m.head(empty).store(0, Ordering::Relaxed);
        assert!(walk(&m).1.is_none(), "sound again");

        // The same key in two elements of one chain (a walk would go round).
        let j = key_in_bucket(&m, b0, 1000);
        m.update(&k(j), &v(1), BPF_ANY).expect("insert");
        let (_, chain) = chain_of(&m, 0);
        let other = *chain.iter().find(|&&e| e != chain0[0]).expect("two");
        // SAFETY: test: both key areas hold 4 bytes (key_size 4).
        unsafe {
            let mut key = [0u8; 4];
            mem::load_key(&mut key, m.e_key(chain0[0]));
            mem::store_key(m.e_key(other), key.as_ptr(), 4);
        }
        let (keys, err) = walk(&m);
        assert!(keys.len() <= 21);
        let Some(MapError::Corrupt { what, .. }) = err else {
            panic!("{err:?}");
        };
        assert!(what.contains("repeated"), "{what}");
    }

    /// `HashLayout` followed to the letter in Rust, as generated code follows it:
    /// for HASH and PERCPU_HASH, with and without BPF_F_ZERO_SEED, keys of 1 to 20,
    /// 32, 40 and 64 bytes (up to 12 with BPF_F_ZERO_SEED; read from a buffer whose
    /// bytes after the key are not zero), the bucket is `Map::bucket`'s and the walk
    /// finds the value `prog_lookup` finds, or misses where it misses; longer keys
    /// and LRU maps have no layout.
    #[test]
    fn hash_layout_describes_the_lookup() {
        let s = store(2);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for t in [BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_HASH] {
            for flags in [0, BPF_F_ZERO_SEED] {
                for key_size in (1u32..=20).chain([32, 40, 64]) {
                    let def = MapDef {
                        key_size,
                        ..hdef(t, 32, flags)
                    };
                    let m = s.create_map(&def).expect("map");
                    let Some(l) = m.hash_layout() else {
                        assert!(flags != 0 && key_size > 12, "{t} {flags:#x} {key_size}");
                        continue;
                    };
                    let what = format!("type {t} flags {flags:#x} key size {key_size}");
                    let keys: Vec<Vec<u8>> = (0..64)
                        .map(|_| (0..8).flat_map(|_| rand().to_ne_bytes()).collect())
                        .collect();
                    for key in &keys[..32] {
                        let _ = m.update(
                            &key[..key_size as usize],
                            &vec![1u8; m.user_value_size()],
                            BPF_ANY,
                        );
                    }
                    // Per-CPU: worker 1's slot.
                    let cpu = u32::from(l.ncpus > 0);
                    let mut hits = 0;
                    for key in &keys {
                        let mut buf = [0xa5u8; 72];
                        buf[..key_size as usize].copy_from_slice(&key[..key_size as usize]);
                        let mut w = [0u32; 16];
                        for ld in l.key_loads() {
                            let b = &buf[ld.off as usize..(ld.off + ld.bytes) as usize];
                            let mut v = [0u8; 4];
                            v[..b.len()].copy_from_slice(b);
                            let v = match ld.bytes {
                                1 => u32::from(v[0]),
                                2 => u32::from(u16::from_ne_bytes([v[0], v[1]])),
                                _ => u32::from_ne_bytes(v),
                            };
                            w[ld.word as usize] |= v << ld.shift;
                        }
                        let words = &w[..l.key_words as usize];
                        let h = match l.hash {
                            BucketHash::Fast => {
                                let mut h = l.hash_init;
                                for &x in words {
                                    h = ((h ^ x).wrapping_mul(fh::WORD_MUL))
                                        .rotate_left(fh::WORD_ROT);
                                }
                                h ^= h >> fh::FIN_SHIFT[0];
                                h = h.wrapping_mul(fh::FIN_MUL[0]);
                                h ^= h >> fh::FIN_SHIFT[1];
                                h = h.wrapping_mul(fh::FIN_MUL[1]);
                                h ^ (h >> fh::FIN_SHIFT[2])
                            }
                            BucketHash::Jhash => {
                                let mut st = [l.hash_init; 3];
                                for (i, &x) in words.iter().enumerate() {
                                    st[i] = st[i].wrapping_add(x);
                                }
                                for (x, y, r) in jhash_consts::FINAL {
                                    st[x] = (st[x] ^ st[y]).wrapping_sub(st[y].rotate_left(r));
                                }
                                st[2]
                            }
                        };
                        let b = h & l.bucket_mask;
                        assert_eq!(b, key_bucket(&m, &key[..key_size as usize]), "{what}");
                        // The walk (quiet map: no restarts).
                        // SAFETY: every address below is inside the map's buckets and
                        // elements: b <= bucket_mask, idx < nelems.
                        let found = unsafe {
                            let mut link = load_u32(l.buckets.wrapping_add(4 * b as usize));
                            let mut found = std::ptr::null_mut::<u8>();
                            loop {
                                let idx = (link >> 2).wrapping_sub(1);
                                if link & HashLayout::TAG_MASK != 0 || idx >= l.nelems {
                                    assert!(link == 0 || link == HashLayout::nulls(b), "{what}");
                                    break;
                                }
                                let e = l.elems.wrapping_add((idx * l.elem_size) as usize);
                                let same = (0..l.key_words).all(|i| {
                                    load_u32(e.wrapping_add((l.key_off + 4 * i) as usize))
                                        == w[i as usize]
                                });
                                if same {
                                    let v = l.value_off + cpu * l.vstride;
                                    found = e.wrapping_add(v as usize) as *mut u8;
                                    break;
                                }
                                link = load_u32(e);
                            }
                            found
                        };
                        // SAFETY: buf holds key_size bytes.
                        let want = unsafe { m.prog_lookup(buf.as_ptr(), cpu) };
                        assert_eq!(found, want, "{what}");
                        hits += u32::from(!found.is_null());
                    }
                    assert!((16..64).contains(&hits), "{what}: {hits} hits, some misses");
                }
            }
        }
        for (t, flags, key_size) in [
            (BPF_MAP_TYPE_HASH, 0, 65),
            (BPF_MAP_TYPE_HASH, 0, 256),
            (BPF_MAP_TYPE_HASH, BPF_F_ZERO_SEED, 13),
            (BPF_MAP_TYPE_LRU_HASH, 0, 4),
            (BPF_MAP_TYPE_LRU_PERCPU_HASH, 0, 4),
        ] {
            let m = s
                .create_map(&MapDef {
                    key_size,
                    ..hdef(t, 8, flags)
                })
                .expect("map");
            assert!(m.hash_layout().is_none(), "type {t} key size {key_size}");
        }
    }
}
