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
//! multiply-add; every other type falls back to the generic `prog_*` call.

use crate::def::{self, Kind};
use crate::hash::{Key4, Key8, KeyBytes, KeySmall, KeyWords, Probe};
use crate::map::Map;

/// `bpf_map_lookup_elem` of one map: `(map, key, cpu)` gives the value pointer
/// (worker `cpu`'s slot of a per-CPU map) or null.
///
/// # Safety
/// `map` is the map the function was taken from (`Map::prog_ops` of it or of a
/// clone), `key` points to key_size readable bytes.
pub type LookupFn = unsafe fn(map: &Map, key: *const u8, cpu: u32) -> *mut u8;

/// `bpf_map_update_elem` of one map: `(map, key, value, flags, cpu)` gives `0` or
/// `-errno`, as the helper returns it.
///
/// # Safety
/// `map` is the map the function was taken from, `key` and `value` point to
/// key_size and value_size readable bytes.
pub type UpdateFn =
    unsafe fn(map: &Map, key: *const u8, value: *const u8, flags: u64, cpu: u32) -> i64;

/// `bpf_map_delete_elem` of one map: `0` or `-errno`.
///
/// # Safety
/// `map` is the map the function was taken from, `key` points to key_size
/// readable bytes.
pub type DeleteFn = unsafe fn(map: &Map, key: *const u8) -> i64;

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
    /// For every other map `update_in_place` is `update`.
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

impl ReadProbe for KeySmall {
    #[inline(always)]
    unsafe fn read(key: *const u8, key_size: u32) -> Self {
        // SAFETY: caller contract: 1..=3 bytes.
        unsafe { KeySmall::read(key, key_size) }
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
unsafe fn hash_lookup<const K: u8, P: ReadProbe>(m: &Map, key: *const u8, cpu: u32) -> *mut u8 {
    debug_assert!(m.kind == kind_of(K));
    // SAFETY: caller contract.
    unsafe { m.hash_lookup_ptr_p(kind_of(K), P::read(key, m.key_size), cpu) }
}

/// # Safety
/// As [`UpdateFn`]; the map is a HASH or PERCPU_HASH (`K`) with a key size `P`
/// is for.
unsafe fn hash_update<const K: u8, P: ReadProbe, const IN_PLACE: bool>(
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
            IN_PLACE,
        )
    };
    match r {
        Ok(()) => 0,
        Err(f) => m.upd_errno(f),
    }
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
unsafe fn lru_update<P: ReadProbe>(
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
unsafe fn hash_delete<P: ReadProbe>(m: &Map, key: *const u8) -> i64 {
    // SAFETY: caller contract.
    match unsafe { m.hash_delete_p(P::read(key, m.key_size)) } {
        Ok(()) => 0,
        Err(e) => -i64::from(e.errno()),
    }
}

/// # Safety
/// As [`LookupFn`]; the map is an ARRAY.
unsafe fn array_lookup(m: &Map, key: *const u8, _cpu: u32) -> *mut u8 {
    // SAFETY: caller contract.
    unsafe { m.array_lookup_ptr(key) }
}

/// # Safety
/// As [`LookupFn`]; the map is a PERCPU_ARRAY.
unsafe fn percpu_array_lookup(m: &Map, key: *const u8, cpu: u32) -> *mut u8 {
    // SAFETY: caller contract.
    unsafe { m.percpu_array_lookup_ptr(key, cpu) }
}

/// # Safety
/// As [`UpdateFn`]; the map is an ARRAY or PERCPU_ARRAY.
unsafe fn array_update(m: &Map, key: *const u8, value: *const u8, flags: u64, cpu: u32) -> i64 {
    // SAFETY: caller contract.
    match unsafe { m.array_prog_update(key, value, flags, cpu) } {
        Ok(()) => 0,
        Err(e) => -i64::from(e.errno()),
    }
}

/// # Safety
/// As [`LookupFn`].
unsafe fn generic_lookup(m: &Map, key: *const u8, cpu: u32) -> *mut u8 {
    // SAFETY: caller contract.
    unsafe { m.prog_lookup_slow(key, cpu) }
}

/// # Safety
/// As [`UpdateFn`].
unsafe fn generic_update(m: &Map, key: *const u8, value: *const u8, flags: u64, cpu: u32) -> i64 {
    // SAFETY: caller contract.
    match unsafe { m.prog_update(key, value, flags, cpu) } {
        Ok(()) => 0,
        Err(e) => -i64::from(e.errno()),
    }
}

/// # Safety
/// As [`DeleteFn`].
unsafe fn generic_delete(m: &Map, key: *const u8) -> i64 {
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
unsafe fn read_only_update(_: &Map, _: *const u8, _: *const u8, _: u64, _: u32) -> i64 {
    -i64::from(libc::EPERM)
}

/// # Safety
/// As `read_only_update`, for [`DeleteFn`].
unsafe fn read_only_delete(_: &Map, _: *const u8) -> i64 {
    -i64::from(libc::EPERM)
}

/// The hash kind `K`'s entry points for probe `P`.
fn hash_ops<const K: u8, P: ReadProbe>() -> (ProgOps, UpdateResFn) {
    let (update, update_in_place, res): (UpdateFn, UpdateFn, UpdateResFn) = match K {
        HASH => (
            hash_update::<K, P, false>,
            hash_update::<K, P, true>,
            hash_update_res::<K, P>,
        ),
        PERCPU_HASH => (
            hash_update::<K, P, false>,
            hash_update::<K, P, false>,
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
        1..=3 => hash_ops::<K, KeySmall>(),
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
    if map_flags & def::BPF_F_RDONLY_PROG != 0 {
        ops.update = read_only_update;
        ops.update_in_place = read_only_update;
        ops.delete = read_only_delete;
    }
    (ops, res)
}
