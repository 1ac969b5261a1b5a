//! Per-map entry points for compiled programs: `Map::prog_ops` gives, for the
//! map's type and key size, plain function pointers to its lookup, update and
//! delete, chosen once when the handle is made, so that a caller that resolved
//! the map at compile time does no dispatch on the map type, no dispatch on the
//! key size, and gets `0` or `-errno` back (the helper's return value) instead
//! of a `Result`.
//!
//! Each function is the same code as `Map::prog_lookup` / `prog_update` /
//! `prog_delete` for that type, monomorphised: hash kinds for 1-3, 4, 8, 12 and
//! 16-byte keys read the key into registers once (see `hash.rs`, "Hot paths"),
//! other sizes use the byte-slice probe; arrays are a bounds check and a
//! multiply-add; LPM tries with IPv4 and IPv6 keys walk with the key in machine
//! words; every other type falls back to the generic `prog_*` call.
//!
//! The functions have the C ABI, so that generated code calls them directly with
//! the map's address (the JIT, for maps it resolved at compile time); none of them
//! unwinds.

use crate::def::{self, Kind};
use crate::hash::{Key4, Key8, KeyBytes, KeySmall, KeyWords, Probe, StoreExisting, UpdFail};
use crate::map::Map;

/// `bpf_map_lookup_elem` of one map: `(map, key, cpu)` gives the value pointer
/// (worker `cpu`'s slot of a per-CPU map) or null.
///
/// # Safety
/// `map` is the map the function was taken from (`Map::prog_ops` of it or of a
/// clone), `key` points to key_size readable bytes.
pub type LookupFn = unsafe extern "C" fn(map: &Map, key: *const u8, cpu: u32) -> *mut u8;

/// `bpf_map_update_elem` of one map: `(map, key, value, flags, cpu)` gives `0` or
/// `-errno`, as the helper returns it.
///
/// # Safety
/// `map` is the map the function was taken from, `key` and `value` point to
/// key_size and value_size readable bytes.
pub type UpdateFn =
    unsafe extern "C" fn(map: &Map, key: *const u8, value: *const u8, flags: u64, cpu: u32) -> i64;

/// `bpf_map_delete_elem` of one map: `0` or `-errno`.
///
/// # Safety
/// `map` is the map the function was taken from, `key` points to key_size
/// readable bytes.
pub type DeleteFn = unsafe extern "C" fn(map: &Map, key: *const u8) -> i64;

/// `Map::prog_update` of one map (the `Result` form of [`UpdateFn`]).
///
/// # Safety
/// As [`UpdateFn`].
pub(crate) type UpdateResFn = unsafe fn(
    map: &Map,
    key: *const u8,
    value: *const u8,
    flags: u64,
    cpu: u32,
) -> Result<(), crate::MapError>;

/// The program entry points of one map (see [`Map::prog_ops`]).
#[derive(Clone, Copy)]
pub struct ProgOps {
    /// As [`Map::prog_lookup`].
    pub lookup: LookupFn,
    /// As [`Map::prog_update`], with the kernel's semantics for every type: a
    /// plain HASH or LRU_HASH replaces an existing key's element (a pointer from
    /// an earlier lookup keeps seeing the old value), per-CPU maps and arrays
    /// write in place.
    pub update: UpdateFn,
    /// As `update`, except that a plain HASH with values of at most 8 bytes
    /// writes an existing key's value in place (one atomic word store under the
    /// bucket lock), which skips the spare element, the relinking and two
    /// free-list operations.
    ///
    /// The one observable difference from `update`: a value pointer the same
    /// run got from an earlier lookup of the same key reads the new value after
    /// the update, where the kernel's program reads the old one (it holds the
    /// replaced element). Use it only when the program is known not to read,
    /// after the update, through a pointer into this map obtained before it.
    /// Other processes and workers cannot tell the two apart: a value of at most
    /// 8 bytes is one atomic word either way, and the kernel's readers holding
    /// an old element may see it reused (and rewritten) by a later update, so a
    /// concurrent reader seeing the new value is a behaviour the kernel has too.
    /// For every other map, and for BPF_F_ZERO_SEED maps (whose key order is the
    /// kernel's, and an in-place write would keep a replaced key's position in its
    /// bucket), `update_in_place` is `update`.
    pub update_in_place: UpdateFn,
    /// As [`Map::prog_delete`].
    pub delete: DeleteFn,
}

impl std::fmt::Debug for ProgOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgOps").finish_non_exhaustive()
    }
}

/// A probe read from a key pointer (one per hash key size class).
pub(crate) trait ReadProbe: Probe {
    /// # Safety
    /// `key` points to `key_size` readable bytes, and `key_size` is one this
    /// probe is chosen for (see `hash_ops`).
    unsafe fn read(key: *const u8, key_size: u32) -> Self;
}

impl ReadProbe for Key4 {
    #[inline(always)]
    unsafe fn read(key: *const u8, _: u32) -> Self {
        // SAFETY: caller contract: 4 bytes.
        Key4(unsafe { std::ptr::read_unaligned(key as *const u32) })
    }
}

impl ReadProbe for Key8 {
    #[inline(always)]
    unsafe fn read(key: *const u8, _: u32) -> Self {
        // SAFETY: caller contract: 8 bytes.
        unsafe {
            Key8(
                std::ptr::read_unaligned(key as *const u32),
                std::ptr::read_unaligned(key.wrapping_add(4) as *const u32),
            )
        }
    }
}

/// A key of `L` (1..=3) bytes: the `KeySmall` probe with its length a constant.
#[derive(Clone, Copy)]
pub(crate) struct SmallKey<const L: u32>(KeySmall);

impl<const L: u32> Probe for SmallKey<L> {
    #[inline(always)]
    fn hash(self, seed: u32) -> u32 {
        self.0.hash(seed)
    }
    #[inline(always)]
    fn fast(self, seed: u32) -> u32 {
        self.0.fast(seed)
    }
    #[inline(always)]
    unsafe fn eq(self, stored: *const u8) -> bool {
        // SAFETY: forwarded caller contract.
        unsafe { self.0.eq(stored) }
    }
    #[inline(always)]
    unsafe fn store(self, dst: *mut u8) {
        // SAFETY: forwarded caller contract.
        unsafe { self.0.store(dst) }
    }
}

impl<const L: u32> ReadProbe for SmallKey<L> {
    #[inline(always)]
    unsafe fn read(key: *const u8, _: u32) -> Self {
        // SAFETY: caller contract: L (1..=3) bytes.
        SmallKey(unsafe { KeySmall::read(key, L) })
    }
}

impl<const N: usize> ReadProbe for KeyWords<N> {
    #[inline(always)]
    unsafe fn read(key: *const u8, _: u32) -> Self {
        // SAFETY: caller contract: 4 * N bytes.
        unsafe { KeyWords::<N>::read(key) }
    }
}

impl ReadProbe for KeyBytes {
    #[inline(always)]
    unsafe fn read(key: *const u8, key_size: u32) -> Self {
        KeyBytes::new(key, key_size as usize)
    }
}

/// Hash kinds as constants (`Kind` cannot be a const generic parameter).
const HASH: u8 = 0;
const PERCPU_HASH: u8 = 1;
const LRU_HASH: u8 = 2;
const LRU_PERCPU_HASH: u8 = 3;

#[inline(always)]
const fn kind_of(k: u8) -> Kind {
    match k {
        HASH => Kind::Hash,
        PERCPU_HASH => Kind::PercpuHash,
        LRU_HASH => Kind::LruHash,
        _ => Kind::LruPercpuHash,
    }
}

/// # Safety
/// As [`LookupFn`]; the map's kind is `K` and its key size one `P` is for.
unsafe extern "C" fn hash_lookup<const K: u8, P: ReadProbe>(
    m: &Map,
    key: *const u8,
    cpu: u32,
) -> *mut u8 {
    debug_assert!(m.kind == kind_of(K));
    // SAFETY: caller contract.
    unsafe { m.hash_lookup_ptr_p(kind_of(K), P::read(key, m.key_size), cpu) }
}

/// # Safety
/// As [`UpdateFn`]; the map is a HASH or PERCPU_HASH (`K`) with a key size `P`
/// is for.
unsafe extern "C" fn hash_update<const K: u8, P: ReadProbe>(
    m: &Map,
    key: *const u8,
    value: *const u8,
    flags: u64,
    cpu: u32,
) -> i64 {
    debug_assert!(m.kind == kind_of(K));
    // SAFETY: caller contract.
    let r = unsafe {
        m.hash_prog_update_p(
            kind_of(K),
            P::read(key, m.key_size),
            value,
            flags,
            cpu,
            false,
        )
    };
    upd_ret(m, r)
}

/// A hash update's return value: 0 or -errno.
#[inline(always)]
fn upd_ret(m: &Map, r: Result<(), UpdFail>) -> i64 {
    match r {
        Ok(()) => 0,
        Err(f) => m.upd_errno(f),
    }
}

/// [`ProgOps::update_in_place`] of a HASH, and both updates of a PERCPU_HASH
/// (`K`): an existing key's value written in place under the stripe lock
/// (`Map::hash_store_existing`); the rest out of line.
///
/// # Safety
/// As [`UpdateFn`]; the map is a HASH or PERCPU_HASH (`K`) with a key size `P`
/// is for.
unsafe extern "C" fn hash_update_in_place<const K: u8, P: ReadProbe>(
    m: &Map,
    key: *const u8,
    value: *const u8,
    flags: u64,
    cpu: u32,
) -> i64 {
    debug_assert!(m.kind == kind_of(K));
    // SAFETY: caller contract.
    let p = unsafe { P::read(key, m.key_size) };
    // SAFETY: caller contract.
    match unsafe { m.hash_store_existing(kind_of(K), p, value, flags, cpu) } {
        StoreExisting::Stored => 0,
        // SAFETY: caller contract; the lock of bucket b was handed on to us.
        StoreExisting::Missed(b) => unsafe {
            update_after_miss::<K, P>(m, b, p, value, flags, cpu)
        },
        // SAFETY: caller contract.
        StoreExisting::No => unsafe { hash_update_slow::<K, P>(m, p, value, flags, cpu) },
    }
}

/// `hash_update_in_place` after a miss: the insert, under the lock handed on.
///
/// # Safety
/// As `Map::update_after_miss`.
#[cold]
#[inline(never)]
unsafe fn update_after_miss<const K: u8, P: ReadProbe>(
    m: &Map,
    b: u32,
    p: P,
    value: *const u8,
    flags: u64,
    cpu: u32,
) -> i64 {
    // SAFETY: forwarded caller contract.
    upd_ret(m, unsafe {
        m.update_after_miss(kind_of(K), b, p, value, flags, cpu)
    })
}

/// `hash_update_in_place` when its fast path does not apply: the whole update.
///
/// # Safety
/// As [`UpdateFn`], with the key read into `p`.
#[cold]
#[inline(never)]
unsafe fn hash_update_slow<const K: u8, P: ReadProbe>(
    m: &Map,
    p: P,
    value: *const u8,
    flags: u64,
    cpu: u32,
) -> i64 {
    // SAFETY: forwarded caller contract.
    upd_ret(m, unsafe {
        m.hash_prog_update_p(kind_of(K), p, value, flags, cpu, true)
    })
}

/// # Safety
/// As [`UpdateFn`]; the map is a HASH or PERCPU_HASH (`K`) with a key size `P`
/// is for.
unsafe fn hash_update_res<const K: u8, P: ReadProbe>(
    m: &Map,
    key: *const u8,
    value: *const u8,
    flags: u64,
    cpu: u32,
) -> Result<(), crate::MapError> {
    debug_assert!(m.kind == kind_of(K));
    // SAFETY: caller contract.
    let r = unsafe {
        m.hash_prog_update_p(
            kind_of(K),
            P::read(key, m.key_size),
            value,
            flags,
            cpu,
            false,
        )
    };
    r.map_err(|f| m.upd_error(f))
}

/// # Safety
/// As [`UpdateFn`]; the map is an LRU kind with a key size `P` is for.
unsafe fn lru_update_res<P: ReadProbe>(
    m: &Map,
    key: *const u8,
    value: *const u8,
    flags: u64,
    cpu: u32,
) -> Result<(), crate::MapError> {
    // SAFETY: caller contract.
    unsafe { m.lru_prog_update(P::read(key, m.key_size), value, flags, cpu) }
}

/// # Safety
/// As [`UpdateFn`]; the map is an LRU kind with a key size `P` is for.
unsafe extern "C" fn lru_update<P: ReadProbe>(
    m: &Map,
    key: *const u8,
    value: *const u8,
    flags: u64,
    cpu: u32,
) -> i64 {
    // SAFETY: caller contract.
    let r = unsafe { m.lru_prog_update(P::read(key, m.key_size), value, flags, cpu) };
    match r {
        Ok(()) => 0,
        Err(e) => -i64::from(e.errno()),
    }
}

/// # Safety
/// As [`DeleteFn`]; the map is a hash kind with a key size `P` is for.
unsafe extern "C" fn hash_delete<P: ReadProbe>(m: &Map, key: *const u8) -> i64 {
    // SAFETY: caller contract.
    match unsafe { m.hash_delete_p(P::read(key, m.key_size)) } {
        Ok(()) => 0,
        Err(e) => -i64::from(e.errno()),
    }
}

/// # Safety
/// As [`LookupFn`]; the map is an ARRAY.
unsafe extern "C" fn array_lookup(m: &Map, key: *const u8, _cpu: u32) -> *mut u8 {
    // SAFETY: caller contract.
    unsafe { m.array_lookup_ptr(key) }
}

/// # Safety
/// As [`LookupFn`]; the map is a PERCPU_ARRAY.
unsafe extern "C" fn percpu_array_lookup(m: &Map, key: *const u8, cpu: u32) -> *mut u8 {
    // SAFETY: caller contract.
    unsafe { m.percpu_array_lookup_ptr(key, cpu) }
}

/// # Safety
/// As [`UpdateFn`]; the map is an ARRAY or PERCPU_ARRAY.
unsafe extern "C" fn array_update(
    m: &Map,
    key: *const u8,
    value: *const u8,
    flags: u64,
    cpu: u32,
) -> i64 {
    // SAFETY: caller contract.
    match unsafe { m.array_prog_update(key, value, flags, cpu) } {
        Ok(()) => 0,
        Err(e) => -i64::from(e.errno()),
    }
}

/// # Safety
/// As [`LookupFn`]; the map is an LPM_TRIE with `D` data bytes (key size 4 + D),
/// `D` at most 16.
unsafe extern "C" fn lpm_lookup<const D: usize>(m: &Map, key: *const u8, _cpu: u32) -> *mut u8 {
    // SAFETY: caller contract.
    unsafe { m.lpm_lookup_ptr_fixed::<D>(key) }
}

/// # Safety
/// As [`LookupFn`].
unsafe extern "C" fn generic_lookup(m: &Map, key: *const u8, cpu: u32) -> *mut u8 {
    // SAFETY: caller contract.
    unsafe { m.prog_lookup_slow(key, cpu) }
}

/// # Safety
/// As [`UpdateFn`].
unsafe extern "C" fn generic_update(
    m: &Map,
    key: *const u8,
    value: *const u8,
    flags: u64,
    cpu: u32,
) -> i64 {
    // SAFETY: caller contract.
    match unsafe { m.prog_update(key, value, flags, cpu) } {
        Ok(()) => 0,
        Err(e) => -i64::from(e.errno()),
    }
}

/// # Safety
/// As [`DeleteFn`].
unsafe extern "C" fn generic_delete(m: &Map, key: *const u8) -> i64 {
    // SAFETY: caller contract.
    match unsafe { m.prog_delete(key) } {
        Ok(()) => 0,
        Err(e) => -i64::from(e.errno()),
    }
}

/// Update of a map programs may not write (BPF_F_RDONLY_PROG): EPERM, as
/// `Map::prog_update`.
///
/// # Safety
/// None needed (nothing is read); unsafe to fit [`UpdateFn`].
unsafe extern "C" fn read_only_update(_: &Map, _: *const u8, _: *const u8, _: u64, _: u32) -> i64 {
    -i64::from(libc::EPERM)
}

/// # Safety
/// As `read_only_update`, for [`DeleteFn`].
unsafe extern "C" fn read_only_delete(_: &Map, _: *const u8) -> i64 {
    -i64::from(libc::EPERM)
}

/// The hash kind `K`'s entry points for probe `P`.
fn hash_ops<const K: u8, P: ReadProbe>() -> (ProgOps, UpdateResFn) {
    let (update, update_in_place, res): (UpdateFn, UpdateFn, UpdateResFn) = match K {
        HASH => (
            hash_update::<K, P>,
            hash_update_in_place::<K, P>,
            hash_update_res::<K, P>,
        ),
        // A per-CPU hash writes an existing key's slot in place in both.
        PERCPU_HASH => (
            hash_update_in_place::<K, P>,
            hash_update_in_place::<K, P>,
            hash_update_res::<K, P>,
        ),
        _ => (lru_update::<P>, lru_update::<P>, lru_update_res::<P>),
    };
    let ops = ProgOps {
        lookup: hash_lookup::<K, P>,
        update,
        update_in_place,
        delete: hash_delete::<P>,
    };
    (ops, res)
}

/// The hash kind `K`'s entry points for a key of `key_size` bytes.
fn hash_ops_sized<const K: u8>(key_size: u32) -> (ProgOps, UpdateResFn) {
    match key_size {
        1 => hash_ops::<K, SmallKey<1>>(),
        2 => hash_ops::<K, SmallKey<2>>(),
        3 => hash_ops::<K, SmallKey<3>>(),
        4 => hash_ops::<K, Key4>(),
        8 => hash_ops::<K, Key8>(),
        12 => hash_ops::<K, KeyWords<3>>(),
        16 => hash_ops::<K, KeyWords<4>>(),
        _ => hash_ops::<K, KeyBytes>(),
    }
}

/// # Safety
/// As [`UpdateFn`].
unsafe fn generic_update_res(
    m: &Map,
    key: *const u8,
    value: *const u8,
    flags: u64,
    cpu: u32,
) -> Result<(), crate::MapError> {
    // SAFETY: caller contract.
    unsafe { m.prog_update_slow(key, value, flags, cpu) }
}

/// The entry points of a map of kind `kind`, key size `key_size` and flags
/// `map_flags` (called once per handle), and its `Map::prog_update`.
pub(crate) fn select(kind: Kind, key_size: u32, map_flags: u32) -> (ProgOps, UpdateResFn) {
    let (mut ops, res) = match kind {
        Kind::Hash => hash_ops_sized::<HASH>(key_size),
        Kind::PercpuHash => hash_ops_sized::<PERCPU_HASH>(key_size),
        Kind::LruHash => hash_ops_sized::<LRU_HASH>(key_size),
        Kind::LruPercpuHash => hash_ops_sized::<LRU_PERCPU_HASH>(key_size),
        Kind::Array => (
            ProgOps {
                lookup: array_lookup,
                update: array_update,
                update_in_place: array_update,
                delete: generic_delete,
            },
            generic_update_res as UpdateResFn,
        ),
        Kind::PercpuArray => (
            ProgOps {
                lookup: percpu_array_lookup,
                update: array_update,
                update_in_place: array_update,
                delete: generic_delete,
            },
            generic_update_res as UpdateResFn,
        ),
        Kind::LpmTrie if matches!(key_size, 8 | 20) => (
            ProgOps {
                lookup: if key_size == 8 {
                    lpm_lookup::<4>
                } else {
                    lpm_lookup::<16>
                },
                update: generic_update,
                update_in_place: generic_update,
                delete: generic_delete,
            },
            generic_update_res as UpdateResFn,
        ),
        _ => (
            ProgOps {
                lookup: generic_lookup,
                update: generic_update,
                update_in_place: generic_update,
                delete: generic_delete,
            },
            generic_update_res as UpdateResFn,
        ),
    };
    // A replaced key's new element goes to the head of its bucket, as in the
    // kernel; in place it would keep its position, and the get_next_key order of
    // a BPF_F_ZERO_SEED map (the kernel's) would differ from the kernel's.
    if map_flags & def::BPF_F_ZERO_SEED != 0 {
        ops.update_in_place = ops.update;
    }
    if map_flags & def::BPF_F_RDONLY_PROG != 0 {
        ops.update = read_only_update;
        ops.update_in_place = read_only_update;
        ops.delete = read_only_delete;
    }
    (ops, res)
}

#[cfg(test)]
mod tests {
    use crate::def::*;
    use crate::{Map, MapDef, Store, StoreOptions};
    use std::sync::atomic::Ordering;

    const NCPUS: u32 = 3;

    fn store() -> Store {
        Store::anonymous(StoreOptions {
            size: 16 << 20,
            ncpus: Some(NCPUS),
        })
        .expect("store")
    }

    fn map(s: &Store, t: u32, ks: u32, max: u32, flags: u32) -> Map {
        s.create_map(&MapDef {
            map_type: t,
            key_size: ks,
            value_size: 8,
            max_entries: max,
            map_flags: flags,
            name: "ops".into(),
            ..MapDef::default()
        })
        .expect("map")
    }

    /// Key `i` of `ks` bytes (distinct for i < 2^(8 ks)).
    fn key(i: u32, ks: u32) -> Vec<u8> {
        let mut k: Vec<u8> = (0..ks).map(|j| (j as u8).wrapping_mul(37)).collect();
        for (j, b) in i.to_le_bytes().iter().enumerate().take(ks as usize) {
            k[j] = *b;
        }
        k
    }

    fn ops_update(m: &Map, k: &[u8], v: u64, flags: u64, cpu: u32) -> i64 {
        let val = v.to_ne_bytes();
        // SAFETY: this map's entry point; k has key_size bytes, val value_size.
        unsafe { (m.prog_ops().update)(m, k.as_ptr(), val.as_ptr(), flags, cpu) }
    }

    fn ops_lookup(m: &Map, k: &[u8], cpu: u32) -> Option<u64> {
        // SAFETY: this map's entry point; k has key_size bytes.
        let p = unsafe { (m.prog_ops().lookup)(m, k.as_ptr(), cpu) };
        // SAFETY: a non-null result points at an 8-byte, 8-aligned value.
        (!p.is_null()).then(|| unsafe { std::ptr::read_volatile(p as *const u64) })
    }

    fn ops_delete(m: &Map, k: &[u8]) -> i64 {
        // SAFETY: this map's entry point; k has key_size bytes.
        unsafe { (m.prog_ops().delete)(m, k.as_ptr()) }
    }

    /// What `Map::update` (the user-space path, checked separately against the
    /// kernel) answers, as a helper's return value.
    fn user_errno(r: Result<(), crate::MapError>) -> i64 {
        r.map_or_else(|e| -i64::from(e.errno()), |()| 0)
    }

    /// Per kind and key size (every size with a probe of its own, and two
    /// without), the entry points store and find what the user-space API sees,
    /// return the user-space API's errnos for flags, missing and present keys,
    /// a full map and a bad worker index, and leave a map `check` accepts.
    #[test]
    fn entry_points_agree_with_the_user_api() {
        let s = store();
        for t in [
            BPF_MAP_TYPE_HASH,
            BPF_MAP_TYPE_PERCPU_HASH,
            BPF_MAP_TYPE_LRU_HASH,
            BPF_MAP_TYPE_LRU_PERCPU_HASH,
        ] {
            for ks in [1, 2, 3, 4, 6, 8, 12, 16, 20] {
                for flags in [0, BPF_F_ZERO_SEED] {
                    let m = map(&s, t, ks, 8, flags);
                    let percpu = m.kind.is_percpu();
                    let lru = m.kind.is_lru();
                    let what = format!("type {t} key {ks} flags {flags:#x}");
                    for i in 0..8 {
                        let k = key(i, ks);
                        assert_eq!(ops_lookup(&m, &k, 1), None, "{what}");
                        assert_eq!(
                            ops_update(&m, &k, 0, BPF_EXIST, 1),
                            -i64::from(libc::ENOENT)
                        );
                        assert_eq!(ops_update(&m, &k, 100 + u64::from(i), BPF_NOEXIST, 1), 0);
                        assert_eq!(
                            ops_update(&m, &k, 0, BPF_NOEXIST, 1),
                            -i64::from(libc::EEXIST)
                        );
                        assert_eq!(ops_update(&m, &k, 0, 4, 1), -i64::from(libc::EINVAL));
                        assert_eq!(ops_lookup(&m, &k, 1), Some(100 + u64::from(i)), "{what}");
                        // The user-space view: only worker 1's slot of a new per-CPU
                        // element is set.
                        let mut out = vec![0u8; m.user_value_size()];
                        m.lookup(&k, &mut out).expect("user lookup");
                        let slots: Vec<u64> = out
                            .chunks(8)
                            .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
                            .collect();
                        if percpu {
                            assert_eq!(slots, vec![0, 100 + u64::from(i), 0], "{what}");
                            assert_eq!(ops_lookup(&m, &k, 0), Some(0));
                        } else {
                            assert_eq!(slots, vec![100 + u64::from(i)], "{what}");
                        }
                    }
                    // Full: a new key is E2BIG (LRU evicts instead), as user space.
                    let new = key(8, ks);
                    let uv = vec![0u8; m.user_value_size()];
                    let want = if lru {
                        0
                    } else {
                        user_errno(m.update(&new, &uv, BPF_ANY))
                    };
                    assert_eq!(ops_update(&m, &new, 1, BPF_ANY, 1), want, "{what}");
                    if !lru {
                        assert_eq!(want, -i64::from(libc::E2BIG));
                        // Existing keys still update when full.
                        assert_eq!(ops_update(&m, &key(3, ks), 7, BPF_ANY, 2), 0);
                        assert_eq!(ops_lookup(&m, &key(3, ks), 2), Some(7), "{what}");
                    }
                    if percpu {
                        assert_eq!(
                            ops_update(&m, &key(3, ks), 7, BPF_ANY, NCPUS),
                            -i64::from(libc::EINVAL)
                        );
                        assert_eq!(ops_lookup(&m, &key(3, ks), NCPUS), None);
                    }
                    // Delete through the entry point; user space agrees.
                    let k = key(2, ks);
                    let present = m.lookup(&k, &mut vec![0u8; m.user_value_size()]).is_ok();
                    let want = if present { 0 } else { -i64::from(libc::ENOENT) };
                    assert_eq!(ops_delete(&m, &k), want, "{what}");
                    assert_eq!(ops_delete(&m, &k), -i64::from(libc::ENOENT), "{what}");
                    assert!(m.lookup(&k, &mut vec![0u8; m.user_value_size()]).is_err());
                    assert_eq!(ops_lookup(&m, &k, 1), None);
                    m.check().unwrap_or_else(|e| panic!("{what}: {e}"));
                }
            }
        }
    }

    /// LRU maps evict through the entry points as through user space: the least
    /// recently looked-up key goes, the newest stays.
    #[test]
    fn lru_eviction_through_the_entry_points() {
        let s = store();
        for t in [BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH] {
            let m = map(&s, t, 4, 4, 0);
            for i in 1..=4 {
                assert_eq!(ops_update(&m, &key(i, 4), u64::from(i), BPF_ANY, 0), 0);
            }
            for i in [1, 3, 4] {
                assert!(ops_lookup(&m, &key(i, 4), 0).is_some());
            }
            assert_eq!(ops_update(&m, &key(5, 4), 5, BPF_ANY, 0), 0);
            assert_eq!(m.len(), 4);
            assert_eq!(
                ops_lookup(&m, &key(2, 4), 0),
                None,
                "type {t}: LRU key evicted"
            );
            for i in [1, 3, 4, 5] {
                assert!(ops_lookup(&m, &key(i, 4), 0).is_some(), "type {t} key {i}");
            }
            m.check().expect("consistent");
        }
    }

    /// Arrays, LPM tries and read-only maps: the entry points answer as
    /// `prog_lookup` / `prog_update` / `prog_delete`.
    #[test]
    fn other_kinds_and_read_only_maps() {
        let s = store();
        let a = map(&s, BPF_MAP_TYPE_PERCPU_ARRAY, 4, 4, 0);
        assert_eq!(ops_update(&a, &key(2, 4), 9, BPF_ANY, 2), 0);
        assert_eq!(ops_lookup(&a, &key(2, 4), 2), Some(9));
        assert_eq!(ops_lookup(&a, &key(2, 4), 1), Some(0));
        assert_eq!(ops_lookup(&a, &key(4, 4), 2), None);
        assert_eq!(
            ops_update(&a, &key(4, 4), 9, BPF_ANY, 2),
            -i64::from(libc::E2BIG)
        );
        assert_eq!(
            ops_update(&a, &key(1, 4), 9, BPF_NOEXIST, 2),
            -i64::from(libc::EEXIST)
        );
        assert_eq!(ops_delete(&a, &key(1, 4)), -i64::from(libc::EINVAL));
        let t = s
            .create_map(&MapDef {
                map_type: BPF_MAP_TYPE_LPM_TRIE,
                key_size: 8,
                value_size: 8,
                max_entries: 4,
                map_flags: BPF_F_NO_PREALLOC,
                ..MapDef::default()
            })
            .expect("trie");
        let pfx = |plen: u32, ip: [u8; 4]| [plen.to_ne_bytes(), ip].concat();
        assert_eq!(ops_update(&t, &pfx(8, [10, 0, 0, 0]), 8, BPF_ANY, 0), 0);
        assert_eq!(ops_lookup(&t, &pfx(32, [10, 1, 2, 3]), 0), Some(8));
        assert_eq!(ops_lookup(&t, &pfx(32, [11, 1, 2, 3]), 0), None);
        assert_eq!(ops_delete(&t, &pfx(8, [10, 0, 0, 0])), 0);
        assert_eq!(ops_lookup(&t, &pfx(32, [10, 1, 2, 3]), 0), None);
        let r = map(&s, BPF_MAP_TYPE_HASH, 4, 4, BPF_F_RDONLY_PROG);
        r.update(&key(1, 4), &5u64.to_ne_bytes(), BPF_ANY)
            .expect("user update");
        assert_eq!(ops_lookup(&r, &key(1, 4), 0), Some(5));
        assert_eq!(
            ops_update(&r, &key(1, 4), 6, BPF_ANY, 0),
            -i64::from(libc::EPERM)
        );
        // SAFETY: this map's entry point; 4-byte key, 8-byte value.
        let in_place = unsafe {
            (r.prog_ops().update_in_place)(&r, key(1, 4).as_ptr(), [0u8; 8].as_ptr(), BPF_ANY, 0)
        };
        assert_eq!(in_place, -i64::from(libc::EPERM));
        assert_eq!(ops_delete(&r, &key(1, 4)), -i64::from(libc::EPERM));
        assert_eq!(ops_lookup(&r, &key(1, 4), 0), Some(5));
    }

    /// `update_in_place` on a plain hash: the element stays (a pointer from an
    /// earlier lookup reads the new value, `update` would leave it the old one),
    /// flags and a full map answer as `update`, values over 8 bytes are replaced
    /// as by `update`, and the map stays consistent.
    #[test]
    fn in_place_update_of_a_plain_hash() {
        let s = store();
        let m = map(&s, BPF_MAP_TYPE_HASH, 4, 2, 0);
        let ops = m.prog_ops();
        let k = key(1, 4);
        assert_eq!(ops_update(&m, &k, 5, BPF_ANY, 0), 0);
        // SAFETY: this map's entry points; 4-byte key, 8-byte values; p points at
        // the 8-byte value of a live element while `s` lives.
        unsafe {
            let p = (ops.lookup)(&m, k.as_ptr(), 0) as *const u64;
            let v = 6u64.to_ne_bytes();
            assert_eq!(
                (ops.update_in_place)(&m, k.as_ptr(), v.as_ptr(), BPF_ANY, 0),
                0
            );
            assert_eq!(std::ptr::read_volatile(p), 6, "written in place");
            assert_eq!((ops.lookup)(&m, k.as_ptr(), 0) as *const u64, p);
            let v = 7u64.to_ne_bytes();
            assert_eq!((ops.update)(&m, k.as_ptr(), v.as_ptr(), BPF_ANY, 0), 0);
            assert_eq!(std::ptr::read_volatile(p), 6, "update replaces the element");
            assert_ne!((ops.lookup)(&m, k.as_ptr(), 0) as *const u64, p);
            let upd = |k: &[u8], x: u64, f: u64| {
                let v = x.to_ne_bytes();
                (ops.update_in_place)(&m, k.as_ptr(), v.as_ptr(), f, 0)
            };
            assert_eq!(upd(&k, 8, BPF_NOEXIST), -i64::from(libc::EEXIST));
            assert_eq!(upd(&key(2, 4), 8, BPF_EXIST), -i64::from(libc::ENOENT));
            assert_eq!(upd(&key(2, 4), 8, BPF_ANY), 0);
            assert_eq!(upd(&key(3, 4), 8, BPF_ANY), -i64::from(libc::E2BIG));
            assert_eq!(upd(&k, 9, BPF_ANY), 0);
        }
        assert_eq!(ops_lookup(&m, &k, 0), Some(9));
        m.check().expect("consistent");
        // 16-byte values: in place would let a reader see half of each; replaced.
        let big = s
            .create_map(&MapDef {
                map_type: BPF_MAP_TYPE_HASH,
                key_size: 4,
                value_size: 16,
                max_entries: 2,
                ..MapDef::default()
            })
            .expect("map");
        big.update(&k, &[1u8; 16], BPF_ANY).expect("insert");
        let ops = big.prog_ops();
        // SAFETY: as above, with 16-byte values.
        unsafe {
            let p = (ops.lookup)(&big, k.as_ptr(), 0) as *const u64;
            let v = [2u8; 16];
            assert_eq!(
                (ops.update_in_place)(&big, k.as_ptr(), v.as_ptr(), BPF_ANY, 0),
                0
            );
            assert_eq!(std::ptr::read_volatile(p), u64::from_ne_bytes([1; 8]));
        }
        let mut out = [0u8; 16];
        big.lookup(&k, &mut out).expect("lookup");
        assert_eq!(out, [2u8; 16]);
    }

    /// On a BPF_F_ZERO_SEED hash map (whose get_next_key order is the kernel's),
    /// `update_in_place` orders keys as `update` does: the kernel links the new
    /// element of a replaced key at the head of its bucket, so an update in place
    /// would leave the key where it was and the iteration order would differ.
    #[test]
    fn in_place_updates_take_over_a_lock_a_dead_writer_left() {
        // A pid no process has: the kernel's pid_max is at most 2^22.
        const DEAD: u32 = (1 << 22) + 17;
        let s = store();
        for t in [BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_HASH] {
            let m = map(&s, t, 4, 4, 0);
            let ops = m.prog_ops();
            let (k, new) = (key(1, 4), key(2, 4));
            assert_eq!(ops_update(&m, &k, 5, BPF_ANY, 1), 0);
            // Every stripe held by a writer that died: the fast path finds no free
            // lock and the general path takes the lock over and marks the map.
            for st in 0..=m.stripe_mask {
                m.stripe_lock(st).store(DEAD, Ordering::Relaxed);
            }
            let dirty = m.dirty_word().expect("a hash map has a dirty mark");
            assert_eq!(dirty.load(Ordering::Relaxed), 0);
            // SAFETY: this map's entry points; 4-byte keys, 8-byte values.
            unsafe {
                let v = 6u64.to_ne_bytes();
                assert_eq!(
                    (ops.update_in_place)(&m, k.as_ptr(), v.as_ptr(), BPF_ANY, 1),
                    0
                );
                let v = 7u64.to_ne_bytes();
                assert_eq!(
                    (ops.update_in_place)(&m, new.as_ptr(), v.as_ptr(), BPF_ANY, 1),
                    0
                );
            }
            assert_eq!(ops_lookup(&m, &k, 1), Some(6), "type {t}");
            assert_eq!(ops_lookup(&m, &new, 1), Some(7), "type {t}");
            assert_eq!(
                dirty.load(Ordering::Relaxed),
                1,
                "type {t}: a takeover marks the map"
            );
            m.repair().expect("repair");
            m.check().expect("consistent");
            // Every lock the updates took was released.
            for st in 0..=m.stripe_mask {
                let w = m.stripe_lock(st).load(Ordering::Relaxed);
                assert!(w == 0 || w == DEAD, "type {t}: stripe {st} left at {w}");
            }
        }
    }

    #[test]
    fn in_place_update_keeps_the_kernel_order_of_zero_seed_maps() {
        let s = store();
        let order = |m: &Map| -> Vec<Vec<u8>> {
            let mut keys = Vec::new();
            let mut k = vec![0u8; 4];
            let mut prev: Option<Vec<u8>> = None;
            while m.get_next_key(prev.as_deref(), &mut k).is_ok() {
                keys.push(k.clone());
                prev = Some(k.clone());
            }
            keys
        };
        // 16 keys in 16 buckets: several chains of two or more.
        let maps: Vec<Map> = (0..2)
            .map(|_| map(&s, BPF_MAP_TYPE_HASH, 4, 16, BPF_F_ZERO_SEED))
            .collect();
        for m in &maps {
            for i in 0..16 {
                assert_eq!(ops_update(m, &key(i, 4), u64::from(i), BPF_ANY, 0), 0);
            }
        }
        for i in 0..16 {
            let v = (100 + u64::from(i)).to_ne_bytes();
            let k = key(i, 4);
            // SAFETY: these maps' entry points; 4-byte key, 8-byte value.
            unsafe {
                let ops = maps[0].prog_ops();
                assert_eq!(
                    (ops.update)(&maps[0], k.as_ptr(), v.as_ptr(), BPF_ANY, 0),
                    0
                );
                let ops = maps[1].prog_ops();
                assert_eq!(
                    (ops.update_in_place)(&maps[1], k.as_ptr(), v.as_ptr(), BPF_EXIST, 0),
                    0
                );
            }
            assert_eq!(order(&maps[0]), order(&maps[1]), "after updating key {i}");
        }
        assert_eq!(order(&maps[0]).len(), 16);
    }

    /// Readers on other threads, through a held pointer and through user-space
    /// lookups, see in-place values whole (both halves of the word from one
    /// update) and never a missing key.
    #[test]
    fn concurrent_readers_see_whole_in_place_values() {
        let s = store();
        let m = map(&s, BPF_MAP_TYPE_HASH, 4, 16, 0);
        let k = key(1, 4);
        assert_eq!(ops_update(&m, &k, 0, BPF_ANY, 0), 0);
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|sc| {
            let readers: Vec<_> = (0..2)
                .map(|r| {
                    let (m, k, stop) = (&m, &k, &stop);
                    sc.spawn(move || {
                        let mut seen = 0u64;
                        // SAFETY: this map's entry point; 4-byte key.
                        let p = unsafe { (m.prog_ops().lookup)(m, k.as_ptr(), 0) } as *const u64;
                        assert!(!p.is_null());
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            let v = if r == 0 {
                                // SAFETY: p points at the 8-byte value of the live element.
                                unsafe { std::ptr::read_volatile(p) }
                            } else {
                                let mut out = [0u8; 8];
                                m.lookup(k, &mut out).expect("never missing");
                                u64::from_ne_bytes(out)
                            };
                            assert_eq!(v >> 32, v & 0xffff_ffff, "torn value {v:#x}");
                            assert!(v >= seen, "went back from {seen:#x} to {v:#x}");
                            seen = v;
                        }
                        seen
                    })
                })
                .collect();
            for x in 1..200_000u64 {
                let v = (x << 32 | x).to_ne_bytes();
                // SAFETY: this map's entry point; 4-byte key, 8-byte value.
                let r = unsafe {
                    (m.prog_ops().update_in_place)(&m, k.as_ptr(), v.as_ptr(), BPF_ANY, 0)
                };
                assert_eq!(r, 0);
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            for r in readers {
                r.join().expect("reader");
            }
        });
        assert_eq!(ops_lookup(&m, &k, 0), Some(199_999 << 32 | 199_999));
    }

    /// LPM tries with IPv4 and IPv6 keys (their own entry point, the key in machine
    /// words) answer every lookup as the generic path (`prog_lookup_slow`, the walk
    /// over byte slices) and the user-space lookup: random prefixes of random
    /// lengths, some deleted, looked up with random addresses near them.
    #[test]
    fn lpm_entry_points_agree_with_the_generic_lookup() {
        let s = store();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for data in [4u32, 16] {
            let t = s
                .create_map(&MapDef {
                    map_type: BPF_MAP_TYPE_LPM_TRIE,
                    key_size: 4 + data,
                    value_size: 8,
                    max_entries: 64,
                    map_flags: BPF_F_NO_PREALLOC,
                    ..MapDef::default()
                })
                .expect("trie");
            // A few base addresses, so prefixes nest and share branches.
            let bases: Vec<Vec<u8>> = (0..4)
                .map(|_| (0..data).map(|_| rand() as u8).collect())
                .collect();
            let near = |rand: &mut dyn FnMut() -> u64| -> Vec<u8> {
                let mut a = bases[(rand() % 4) as usize].clone();
                let flip = (rand() % u64::from(data * 8)) as usize;
                a[flip / 8] ^= 0x80 >> (flip % 8);
                a
            };
            let key = |plen: u32, addr: &[u8]| -> Vec<u8> {
                let mut k = plen.to_ne_bytes().to_vec();
                k.extend_from_slice(addr);
                k
            };
            let mut inserted = Vec::new();
            for i in 0..48u64 {
                let plen = (rand() % u64::from(data * 8 + 1)) as u32;
                let k = key(plen, &near(&mut rand));
                if t.update(&k, &(i * 2 + 1).to_ne_bytes(), BPF_ANY).is_ok() {
                    inserted.push(k);
                }
            }
            for k in inserted.iter().step_by(3) {
                let _ = t.delete(k);
            }
            for _ in 0..400 {
                let k = key(data * 8, &near(&mut rand));
                // SAFETY: k has key_size bytes.
                let generic = unsafe { t.prog_lookup_slow(k.as_ptr(), 0) };
                let want = (!generic.is_null())
                    // SAFETY: a value of 8 bytes, 8-aligned.
                    .then(|| unsafe { std::ptr::read_volatile(generic as *const u64) });
                let mut out = [0u8; 8];
                let user = t
                    .lookup(&k, &mut out)
                    .ok()
                    .map(|()| u64::from_ne_bytes(out));
                assert_eq!(user, want, "data {data}: user lookup {k:?}");
                assert_eq!(ops_lookup(&t, &k, 0), want, "data {data}: key {k:?}");
            }
            assert!(
                (0..64).any(|_| ops_lookup(&t, &key(data * 8, &near(&mut rand)), 0).is_some()),
                "data {data}: some lookups hit"
            );
        }
    }
}
