//! Map definitions, the kernel's creation checks, and each map's memory geometry.
//!
//! Pure arithmetic: no unsafe code, no memory access. `geometry` is run both when a
//! map is created and when a store is opened, so that a map table entry is trusted
//! only if its recorded sizes are the ones this build would have computed.

use crate::error::MapError;

// The kernel's numbers are defined once, in `isa::uapi`; the store's users see them
// here too.
pub use isa::uapi::{
    BPF_ANY, BPF_EXIST, BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS, BPF_F_INNER_MAP, BPF_F_LOCK,
    BPF_F_MMAPABLE, BPF_F_NO_COMMON_LRU, BPF_F_NO_PREALLOC, BPF_F_NUMA_NODE, BPF_F_PRESERVE_ELEMS,
    BPF_F_RDONLY, BPF_F_RDONLY_PROG, BPF_F_WRONLY, BPF_F_WRONLY_PROG, BPF_F_ZERO_SEED,
    BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_CPUMAP, BPF_MAP_TYPE_DEVMAP,
    BPF_MAP_TYPE_DEVMAP_HASH, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_HASH_OF_MAPS, BPF_MAP_TYPE_LPM_TRIE,
    BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY,
    BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERF_EVENT_ARRAY, BPF_MAP_TYPE_PROG_ARRAY,
    BPF_MAP_TYPE_RINGBUF, BPF_MAP_TYPE_XSKMAP, BPF_NOEXIST, BPF_OBJ_NAME_LEN,
};

/// The kernel's name of a map type the store implements, as bpftool prints it
/// ("hash", "lru_hash", ...); `None` for the others.
pub fn map_type_name(t: u32) -> Option<&'static str> {
    Kind::of(t).and_then(|_| isa::uapi::map_type_name(t))
}

/// Whether a map type keeps one value per worker (the bpf(2) value is
/// `ncpus * round_up(value_size, 8)` bytes).
pub fn is_percpu_type(t: u32) -> bool {
    isa::uapi::is_percpu_map_type(t)
}

/// All access flags.
pub const BPF_F_ACCESS_MASK: u32 =
    BPF_F_RDONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY | BPF_F_WRONLY_PROG;

const ARRAY_CREATE_FLAG_MASK: u32 =
    BPF_F_NUMA_NODE | BPF_F_MMAPABLE | BPF_F_ACCESS_MASK | BPF_F_PRESERVE_ELEMS | BPF_F_INNER_MAP;
const HTAB_CREATE_FLAG_MASK: u32 =
    BPF_F_NO_PREALLOC | BPF_F_NO_COMMON_LRU | BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK | BPF_F_ZERO_SEED;
/// The kernel's PCPU_MIN_UNIT_SIZE: bound on a per-CPU value.
const PCPU_MIN_UNIT_SIZE: u64 = 32 << 10;
/// The kernel's KMALLOC_MAX_SIZE on x86-64 with 4 KiB pages.
const KMALLOC_MAX_SIZE: u64 = 4 << 20;
/// sizeof(struct htab_elem) on x86-64, used only by the kernel's size check.
const KERNEL_HTAB_ELEM_SIZE: u64 = 48;

/// Bytes before the key in a hash element: the next link (u32); LRU maps add a
/// state word.
pub(crate) const HASH_ELEM_HDR: u64 = 4;
/// The same for LRU maps: next link, state.
pub(crate) const LRU_ELEM_HDR: u64 = 8;
/// Size of the hash map control block at the start of its data (free-list head etc).
pub(crate) const HASH_CTRL_SIZE: u64 = 64;
/// Bytes per hash bucket: the head link.
pub(crate) const HASH_BUCKET_SIZE: u64 = 4;
/// Bytes per lock stripe of a hash map: pid lock word, change sequence, parked
/// element, reserved.
pub(crate) const HASH_STRIPE_SIZE: u64 = 16;
/// Most lock stripes of one hash map (fewer when it has fewer buckets).
pub(crate) const HASH_MAX_STRIPES: u64 = 1024;
/// Largest element count a 30-bit element link can name.
pub(crate) const HASH_MAX_ELEMS: u64 = (1 << 30) - 2;
/// The LPM trie's node pool bound (31-bit links).
pub(crate) const LPM_MAX_NODES: u64 = (1 << 31) - 2;
/// Bytes of a slot of the "fd array" maps (devmap, cpumap, xskmap, array of
/// maps, perf event array): value word (<= 8 bytes) then a presence word.
pub(crate) const SLOT_SIZE: u64 = 16;
/// LPM trie node header: child[0], child[1], prefixlen, flags (u32 each).
pub(crate) const LPM_NODE_HDR: u64 = 16;
/// Largest LPM data size (the kernel's LPM_DATA_SIZE_MAX).
pub(crate) const LPM_DATA_SIZE_MAX: u32 = 256;
/// Ring buffer: consumer page, producer page, then the data.
pub(crate) const RINGBUF_HDR: u64 = 8192;
/// Bytes of ring per perf_event_array slot (the data area; a power of two).
pub const PERF_RING_SIZE: u64 = 32 << 10;
/// perf_event_array slot header bytes (before the ring).
pub(crate) const PERF_SLOT_HDR: u64 = 64;
/// The kernel's NR_CPUS bound on cpumap max_entries.
const NR_CPUS: u32 = 8192;

/// A map to create, as `BPF_MAP_CREATE` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MapDef {
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Maximum number of entries.
    pub max_entries: u32,
    /// `BPF_F_*` map flags.
    pub map_flags: u32,
    /// Name of `[A-Za-z0-9_.]` (the kernel's rule; EINVAL otherwise). Only the
    /// first 15 bytes are kept, as libbpf truncates before calling bpf(2).
    pub name: String,
    /// BTF type id of the key (0 if none).
    pub btf_key_type_id: u32,
    /// BTF type id of the value (0 if none).
    pub btf_value_type_id: u32,
    /// Id of the store's BTF object describing key and value (0 if none).
    pub btf_id: u32,
    /// Pid of the process that holds the map through descriptors (the shim's
    /// maps): when it has exited and no pin, program or descriptor keeps the
    /// map, the map may be removed. 0: the map stays until removed.
    pub holder_pid: u32,
}

/// What a created map is: its id and definition, as `BPF_OBJ_GET_INFO_BY_FD` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapInfo {
    /// Store-wide map id (from 1).
    pub id: u32,
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes (per CPU for per-CPU maps).
    pub value_size: u32,
    /// Maximum number of entries.
    pub max_entries: u32,
    /// `BPF_F_*` map flags.
    pub map_flags: u32,
    /// Map name.
    pub name: String,
    /// BTF type id of the key.
    pub btf_key_type_id: u32,
    /// BTF type id of the value.
    pub btf_value_type_id: u32,
    /// Id of the store's BTF object (0 if none).
    pub btf_id: u32,
    /// See [`MapDef::holder_pid`].
    pub holder_pid: u32,
}

/// Which implementation a map type uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Array,
    PercpuArray,
    ProgArray,
    Hash,
    PercpuHash,
    /// LRU_HASH: a hash whose updates evict the least recently used key.
    LruHash,
    /// LRU_PERCPU_HASH.
    LruPercpuHash,
    /// LPM_TRIE: the kernel's binary trie, in a node pool.
    LpmTrie,
    /// DEVMAP: slots of `struct bpf_devmap_val`.
    DevMap,
    /// DEVMAP_HASH: a hash keyed by u32 with the kernel's `key & mask` buckets.
    DevMapHash,
    /// CPUMAP: slots of `struct bpf_cpumap_val`.
    CpuMap,
    /// XSKMAP: slots of socket ids.
    XskMap,
    /// ARRAY_OF_MAPS: slots of inner map ids.
    ArrayOfMaps,
    /// HASH_OF_MAPS: a hash whose values are inner map ids.
    HashOfMaps,
    /// RINGBUF: one multi-producer ring read by a consumer.
    RingBuf,
    /// PERF_EVENT_ARRAY: one ring per slot (per worker).
    PerfEventArray,
}

impl Kind {
    /// The kind implementing a `BPF_MAP_TYPE_*`, if the store has one.
    pub(crate) fn of(map_type: u32) -> Option<Kind> {
        Some(match map_type {
            BPF_MAP_TYPE_ARRAY => Kind::Array,
            BPF_MAP_TYPE_PERCPU_ARRAY => Kind::PercpuArray,
            BPF_MAP_TYPE_PROG_ARRAY => Kind::ProgArray,
            BPF_MAP_TYPE_HASH => Kind::Hash,
            BPF_MAP_TYPE_PERCPU_HASH => Kind::PercpuHash,
            BPF_MAP_TYPE_LRU_HASH => Kind::LruHash,
            BPF_MAP_TYPE_LRU_PERCPU_HASH => Kind::LruPercpuHash,
            BPF_MAP_TYPE_LPM_TRIE => Kind::LpmTrie,
            BPF_MAP_TYPE_DEVMAP => Kind::DevMap,
            BPF_MAP_TYPE_DEVMAP_HASH => Kind::DevMapHash,
            BPF_MAP_TYPE_CPUMAP => Kind::CpuMap,
            BPF_MAP_TYPE_XSKMAP => Kind::XskMap,
            BPF_MAP_TYPE_ARRAY_OF_MAPS => Kind::ArrayOfMaps,
            BPF_MAP_TYPE_HASH_OF_MAPS => Kind::HashOfMaps,
            BPF_MAP_TYPE_RINGBUF => Kind::RingBuf,
            BPF_MAP_TYPE_PERF_EVENT_ARRAY => Kind::PerfEventArray,
            _ => return None,
        })
    }

    /// Kinds stored in the hash layout (buckets + elements + free list).
    pub(crate) fn is_hash(self) -> bool {
        matches!(
            self,
            Kind::Hash
                | Kind::PercpuHash
                | Kind::LruHash
                | Kind::LruPercpuHash
                | Kind::DevMapHash
                | Kind::HashOfMaps
        )
    }

    /// Kinds stored as 16-byte slots (value word + presence word).
    pub(crate) fn is_slots(self) -> bool {
        matches!(
            self,
            Kind::DevMap | Kind::CpuMap | Kind::XskMap | Kind::ArrayOfMaps | Kind::PerfEventArray
        )
    }

    /// Per-CPU kinds.
    pub(crate) fn is_percpu(self) -> bool {
        matches!(
            self,
            Kind::PercpuArray | Kind::PercpuHash | Kind::LruPercpuHash
        )
    }

    /// LRU kinds.
    pub(crate) fn is_lru(self) -> bool {
        matches!(self, Kind::LruHash | Kind::LruPercpuHash)
    }
}

/// Where everything of one map lives inside its data region, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub kind: Kind,
    /// Total bytes of the map's data region.
    pub data_len: u64,
    /// Required alignment of the data region (64, or 4096 for BPF_F_MMAPABLE).
    pub align: u64,
    /// round_up(value_size, 8) (4 for PROG_ARRAY).
    pub vstride: u64,
    /// Hash: bucket count (power of two).
    pub n_buckets: u64,
    /// Hash: element count.
    pub nelems: u64,
    /// Hash: bytes per element.
    pub elem_size: u64,
    /// LPM: round_up(key_size - 4, 8); hash: round_up(key_size, 4).
    pub key_stride: u64,
    /// Hash: offset of the key in an element.
    pub key_off: u64,
    /// Hash: offset of the (first) value in an element, 8-aligned.
    pub value_off: u64,
    /// Hash: lock stripe count (power of two, at most n_buckets).
    pub n_stripes: u64,
    /// Hash: offset of the lock stripes in the data region.
    pub stripes_off: u64,
    /// Hash: offset of the bucket array in the data region.
    pub buckets_off: u64,
    /// Hash: offset of the element array in the data region.
    pub elems_off: u64,
}

/// Timer slots of a map whose value holds a `bpf_timer`: one per array index or
/// hash element. None for map types the kernel refuses timers in (EOPNOTSUPP):
/// only HASH, LRU_HASH and ARRAY hold them.
pub(crate) fn timer_slots(g: &Geometry, max_entries: u32) -> Option<u64> {
    match g.kind {
        Kind::Array => Some(u64::from(max_entries)),
        Kind::Hash | Kind::LruHash => Some(g.nelems),
        _ => None,
    }
}

pub(crate) fn round_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

fn invalid(name: &str, what: impl Into<String>) -> MapError {
    MapError::InvalidDef {
        name: name.to_owned(),
        what: what.into(),
    }
}

fn too_big(name: &str, what: impl Into<String>) -> MapError {
    MapError::DefTooBig {
        name: name.to_owned(),
        what: what.into(),
    }
}

/// The name as stored: its first 15 bytes, as libbpf truncates names to
/// BPF_OBJ_NAME_LEN - 1 before calling bpf(2).
pub(crate) fn stored_name(name: &str) -> &str {
    let mut end = name.len().min(BPF_OBJ_NAME_LEN - 1);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// The kernel's `bpf_obj_name_cpy` character rule: `[A-Za-z0-9_.]` only
/// (applied to the stored, truncated name).
pub(crate) fn check_name(name: &str) -> Result<(), MapError> {
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    {
        return Err(invalid(name, "name has characters outside [A-Za-z0-9_.]"));
    }
    Ok(())
}

fn access_ok(flags: u32) -> bool {
    flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG) != (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG)
}

/// The kernel's map_alloc_check for the supported types, then our memory geometry.
/// `ncpus` is the store's per-CPU slot count.
pub(crate) fn geometry(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
    name: &str,
    ncpus: u32,
) -> Result<Geometry, MapError> {
    let Some(kind) = Kind::of(map_type) else {
        return Err(invalid(name, format!("unsupported map type {map_type}")));
    };
    let ncpus = u64::from(ncpus.max(1));
    let (key, value, max) = (
        u64::from(key_size),
        u64::from(value_size),
        u64::from(max_entries),
    );
    let vstride = round_up(value, 8);
    let mut g = Geometry {
        kind,
        data_len: 0,
        align: 64,
        vstride,
        n_buckets: 0,
        nelems: 0,
        elem_size: 0,
        key_stride: 0,
        key_off: 0,
        value_off: 0,
        n_stripes: 0,
        stripes_off: 0,
        buckets_off: 0,
        elems_off: 0,
    };
    match kind {
        Kind::Array | Kind::PercpuArray | Kind::ProgArray => {
            if kind == Kind::ProgArray {
                // fd_array_map_alloc_check
                if value_size != 4 {
                    return Err(invalid(name, "PROG_ARRAY value_size must be 4"));
                }
                if flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG) != 0 {
                    return Err(invalid(
                        name,
                        "PROG_ARRAY cannot be RDONLY_PROG/WRONLY_PROG",
                    ));
                }
            }
            // array_map_alloc_check
            if max_entries == 0 {
                return Err(invalid(name, "max_entries is 0"));
            }
            if key_size != 4 {
                return Err(invalid(name, "array key_size must be 4"));
            }
            if value_size == 0 {
                return Err(invalid(name, "value_size is 0"));
            }
            if flags & !ARRAY_CREATE_FLAG_MASK != 0 || !access_ok(flags) {
                return Err(invalid(name, format!("map_flags {flags:#x} not allowed")));
            }
            if kind == Kind::PercpuArray && flags & BPF_F_NUMA_NODE != 0 {
                return Err(invalid(name, "numa node on a per-CPU map"));
            }
            if kind != Kind::Array && flags & (BPF_F_MMAPABLE | BPF_F_INNER_MAP) != 0 {
                return Err(invalid(name, "MMAPABLE/INNER_MAP only on plain arrays"));
            }
            if flags & BPF_F_PRESERVE_ELEMS != 0 {
                return Err(invalid(name, "PRESERVE_ELEMS only on perf event arrays"));
            }
            if value > i32::MAX as u64 {
                return Err(too_big(name, "value_size > INT_MAX"));
            }
            if kind == Kind::PercpuArray && vstride > PCPU_MIN_UNIT_SIZE {
                return Err(too_big(name, "per-CPU value larger than 32 KiB"));
            }
            let (stride, copies) = match kind {
                Kind::ProgArray => (4, 1),
                Kind::PercpuArray => (vstride, ncpus),
                _ => (vstride, 1),
            };
            g.vstride = stride;
            g.data_len = max
                .checked_mul(stride)
                .and_then(|x| x.checked_mul(copies))
                .ok_or_else(|| too_big(name, "size overflows"))?;
            if flags & BPF_F_MMAPABLE != 0 {
                g.align = 4096;
                g.data_len = round_up(g.data_len, 4096);
            }
        }
        Kind::Hash
        | Kind::PercpuHash
        | Kind::LruHash
        | Kind::LruPercpuHash
        | Kind::HashOfMaps
        | Kind::DevMapHash => {
            let percpu = kind.is_percpu();
            let lru = kind.is_lru();
            if kind == Kind::DevMapHash {
                // dev_map_alloc_check / dev_map_init_map
                if max_entries == 0
                    || key_size != 4
                    || (value_size != 4 && value_size != 8)
                    || flags & !DEV_CREATE_FLAG_MASK != 0
                {
                    return Err(invalid(name, "devmap_hash: key 4, value 4 or 8, flags"));
                }
            } else {
                if kind == Kind::HashOfMaps && value_size != 4 {
                    return Err(invalid(name, "HASH_OF_MAPS value_size must be 4"));
                }
                // htab_map_alloc_check
                if flags & !HTAB_CREATE_FLAG_MASK != 0 || !access_ok(flags) {
                    return Err(invalid(name, format!("map_flags {flags:#x} not allowed")));
                }
                if flags & BPF_F_NO_COMMON_LRU != 0 && !lru {
                    return Err(invalid(name, "NO_COMMON_LRU on a non-LRU hash"));
                }
                if lru && flags & BPF_F_NO_PREALLOC != 0 {
                    return Err(MapError::DefNotSupported {
                        name: name.to_owned(),
                        what: "LRU maps cannot be BPF_F_NO_PREALLOC".into(),
                    });
                }
            }
            if flags & BPF_F_NUMA_NODE != 0 && percpu {
                return Err(invalid(name, "numa node on a per-CPU map"));
            }
            if max_entries == 0 || key_size == 0 || value_size == 0 {
                return Err(invalid(
                    name,
                    "max_entries, key_size and value_size must be > 0",
                ));
            }
            if key + value >= KMALLOC_MAX_SIZE - KERNEL_HTAB_ELEM_SIZE {
                return Err(too_big(name, "key_size + value_size too large"));
            }
            if percpu && vstride > PCPU_MIN_UNIT_SIZE {
                return Err(too_big(name, "per-CPU value larger than 32 KiB"));
            }
            // BPF_F_NO_PREALLOC is accepted; elements are always preallocated here,
            // which is invisible to users except for memory use.
            // A plain hash replaces an existing key by swapping in a spare element
            // (as the kernel's prealloc htab does with its per-CPU extra elements),
            // so it holds ncpus spares beyond max_entries.
            // LRU maps hold exactly max_entries elements (rounded to a multiple of
            // ncpus with BPF_F_NO_COMMON_LRU, as the kernel rounds them) and evict.
            let (spares, max) = if lru {
                let m = if flags & BPF_F_NO_COMMON_LRU != 0 {
                    let up = round_up(max, ncpus);
                    if up < max || up > u64::from(u32::MAX) {
                        max / ncpus * ncpus
                    } else {
                        up
                    }
                } else {
                    max
                };
                (0, m.max(1))
            } else if percpu {
                (0, max)
            } else {
                (ncpus, max)
            };
            if max + spares > HASH_MAX_ELEMS {
                return Err(too_big(name, "max_entries larger than 2^30 - 2 - ncpus"));
            }
            g.n_buckets = max.next_power_of_two();
            g.nelems = max + spares;
            g.key_stride = round_up(key, 4);
            g.key_off = if lru { LRU_ELEM_HDR } else { HASH_ELEM_HDR };
            g.value_off = round_up(g.key_off + g.key_stride, 8);
            let values = if percpu { vstride * ncpus } else { vstride };
            g.elem_size = g.value_off + values;
            g.n_stripes = g.n_buckets.min(HASH_MAX_STRIPES);
            g.stripes_off = HASH_CTRL_SIZE;
            g.buckets_off = round_up(g.stripes_off + g.n_stripes * HASH_STRIPE_SIZE, 64);
            g.elems_off = round_up(g.buckets_off + g.n_buckets * HASH_BUCKET_SIZE, 64);
            g.data_len = g
                .nelems
                .checked_mul(g.elem_size)
                .and_then(|x| x.checked_add(g.elems_off))
                .ok_or_else(|| too_big(name, "size overflows"))?;
        }
        Kind::LpmTrie => {
            // trie_alloc
            if max_entries == 0
                || flags & BPF_F_NO_PREALLOC == 0
                || flags & !LPM_CREATE_FLAG_MASK != 0
                || !access_ok(flags)
                || !(4 + 1..=4 + LPM_DATA_SIZE_MAX).contains(&key_size)
                || value_size == 0
                || value > KMALLOC_MAX_SIZE - u64::from(LPM_DATA_SIZE_MAX) - 24
            {
                return Err(invalid(
                    name,
                    "lpm_trie: needs BPF_F_NO_PREALLOC, key 5..=260, value > 0",
                ));
            }
            // Every insert adds at most one leaf and one intermediate node, and a
            // replacement needs a fresh node before the old one is freed.
            let pool = max
                .checked_mul(2)
                .and_then(|x| x.checked_add(2))
                .filter(|&x| x <= LPM_MAX_NODES)
                .ok_or_else(|| too_big(name, "max_entries too large"))?;
            g.nelems = pool;
            g.key_stride = round_up(key - 4, 8);
            g.elem_size = LPM_NODE_HDR + g.key_stride + vstride;
            g.elems_off = HASH_CTRL_SIZE;
            g.data_len = pool
                .checked_mul(g.elem_size)
                .and_then(|x| x.checked_add(g.elems_off))
                .ok_or_else(|| too_big(name, "size overflows"))?;
        }
        Kind::DevMap | Kind::CpuMap | Kind::XskMap | Kind::ArrayOfMaps | Kind::PerfEventArray => {
            let ok = match kind {
                Kind::DevMap => {
                    (value_size == 4 || value_size == 8) && flags & !DEV_CREATE_FLAG_MASK == 0
                }
                Kind::CpuMap => {
                    (value_size == 4 || value_size == 8) && flags & !BPF_F_NUMA_NODE == 0
                }
                Kind::XskMap => value_size == 4 && flags & !DEV_CREATE_FLAG_MASK == 0,
                Kind::PerfEventArray => {
                    value_size == 4
                        && flags & !ARRAY_CREATE_FLAG_MASK == 0
                        && flags
                            & (BPF_F_RDONLY_PROG
                                | BPF_F_WRONLY_PROG
                                | BPF_F_MMAPABLE
                                | BPF_F_INNER_MAP)
                            == 0
                }
                _ => {
                    value_size == 4
                        && flags & !ARRAY_CREATE_FLAG_MASK == 0
                        && flags
                            & (BPF_F_RDONLY_PROG
                                | BPF_F_WRONLY_PROG
                                | BPF_F_MMAPABLE
                                | BPF_F_PRESERVE_ELEMS)
                            == 0
                }
            };
            if max_entries == 0 || key_size != 4 || !ok {
                return Err(invalid(
                    name,
                    format!("{kind:?}: key 4, value 4 (or 8), flags {flags:#x}"),
                ));
            }
            if kind == Kind::CpuMap && max_entries > NR_CPUS {
                return Err(too_big(name, "cpumap max_entries > NR_CPUS"));
            }
            g.vstride = SLOT_SIZE;
            if kind == Kind::PerfEventArray {
                g.elem_size = PERF_SLOT_HDR + PERF_RING_SIZE;
                g.elems_off = max * SLOT_SIZE;
                g.data_len = max
                    .checked_mul(SLOT_SIZE + g.elem_size)
                    .ok_or_else(|| too_big(name, "size overflows"))?;
            } else {
                g.data_len = max * SLOT_SIZE;
            }
        }
        Kind::RingBuf => {
            if flags & !BPF_F_NUMA_NODE != 0
                || key_size != 0
                || value_size != 0
                || !max_entries.is_power_of_two()
                || !max_entries.is_multiple_of(4096)
            {
                return Err(invalid(
                    name,
                    "ringbuf: key and value size 0, max_entries a power-of-2 multiple of 4096",
                ));
            }
            g.align = 4096;
            g.elems_off = RINGBUF_HDR;
            g.data_len = RINGBUF_HDR + max;
        }
    }
    Ok(g)
}

const DEV_CREATE_FLAG_MASK: u32 = BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY;
const LPM_CREATE_FLAG_MASK: u32 = BPF_F_NO_PREALLOC | BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK;

/// Flags the kernel adds to a map's own at creation: devmaps are read-only to
/// programs (`dev_map_init_map` sets BPF_F_RDONLY_PROG).
pub(crate) fn implied_flags(map_type: u32) -> u32 {
    match map_type {
        BPF_MAP_TYPE_DEVMAP | BPF_MAP_TYPE_DEVMAP_HASH => BPF_F_RDONLY_PROG,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo(t: u32, k: u32, v: u32, m: u32, f: u32) -> Result<Geometry, MapError> {
        geometry(t, k, v, m, f, "m", 2)
    }

    fn errno(r: Result<Geometry, MapError>) -> i32 {
        r.err().map(|e| e.errno()).unwrap_or(0)
    }

    #[test]
    fn array_checks_follow_the_kernel() {
        assert_eq!(errno(geo(BPF_MAP_TYPE_ARRAY, 4, 4, 1, 0)), 0);
        assert_eq!(errno(geo(BPF_MAP_TYPE_ARRAY, 8, 4, 1, 0)), libc::EINVAL);
        assert_eq!(errno(geo(BPF_MAP_TYPE_ARRAY, 4, 0, 1, 0)), libc::EINVAL);
        assert_eq!(errno(geo(BPF_MAP_TYPE_ARRAY, 4, 4, 0, 0)), libc::EINVAL);
        assert_eq!(
            errno(geo(BPF_MAP_TYPE_ARRAY, 4, 4, 1, BPF_F_ZERO_SEED)),
            libc::EINVAL
        );
        assert_eq!(
            errno(geo(
                BPF_MAP_TYPE_ARRAY,
                4,
                4,
                1,
                BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG
            )),
            libc::EINVAL
        );
        assert_eq!(
            errno(geo(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 4, 1, BPF_F_MMAPABLE)),
            libc::EINVAL
        );
        assert_eq!(errno(geo(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 32768, 1, 0)), 0);
        assert_eq!(
            errno(geo(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 32769, 1, 0)),
            libc::E2BIG
        );
        assert_eq!(
            errno(geo(BPF_MAP_TYPE_PROG_ARRAY, 4, 8, 1, 0)),
            libc::EINVAL
        );
        assert_eq!(
            errno(geo(BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 1, BPF_F_RDONLY_PROG)),
            libc::EINVAL
        );
        assert_eq!(errno(geo(99, 4, 4, 1, 0)), libc::EINVAL);
    }

    #[test]
    fn array_sizes_round_values_to_8() {
        let g = geo(BPF_MAP_TYPE_ARRAY, 4, 12, 3, 0).expect("valid");
        assert_eq!((g.vstride, g.data_len), (16, 48));
        let g = geo(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 4, 3, 0).expect("valid");
        assert_eq!((g.vstride, g.data_len), (8, 3 * 8 * 2));
        let g = geo(
            BPF_MAP_TYPE_ARRAY,
            4,
            4,
            1,
            BPF_F_MMAPABLE | BPF_F_RDONLY_PROG,
        )
        .expect("valid");
        assert_eq!((g.align, g.data_len), (4096, 4096));
    }

    #[test]
    fn hash_checks_follow_the_kernel() {
        assert_eq!(errno(geo(BPF_MAP_TYPE_HASH, 1, 1, 1, 0)), 0);
        assert_eq!(errno(geo(BPF_MAP_TYPE_HASH, 0, 1, 1, 0)), libc::EINVAL);
        assert_eq!(errno(geo(BPF_MAP_TYPE_HASH, 1, 0, 1, 0)), libc::EINVAL);
        assert_eq!(errno(geo(BPF_MAP_TYPE_HASH, 1, 1, 0, 0)), libc::EINVAL);
        assert_eq!(
            errno(geo(BPF_MAP_TYPE_HASH, 1, 1, 1, BPF_F_MMAPABLE)),
            libc::EINVAL
        );
        assert_eq!(
            errno(geo(BPF_MAP_TYPE_HASH, 1, 1, 1, BPF_F_NO_COMMON_LRU)),
            libc::EINVAL
        );
        assert_eq!(
            errno(geo(
                BPF_MAP_TYPE_HASH,
                1,
                1,
                1,
                BPF_F_NO_PREALLOC | BPF_F_ZERO_SEED
            )),
            0
        );
        assert_eq!(errno(geo(BPF_MAP_TYPE_HASH, 4, 5 << 20, 1, 0)), libc::E2BIG);
        assert_eq!(
            errno(geo(BPF_MAP_TYPE_PERCPU_HASH, 4, 40000, 1, 0)),
            libc::E2BIG
        );
        assert_eq!(
            errno(geo(BPF_MAP_TYPE_PERCPU_HASH, 4, 8, 1, BPF_F_NUMA_NODE)),
            libc::EINVAL
        );
    }

    #[test]
    fn hash_geometry() {
        // Element: next (4) | key 6 -> 8 | pad to 16 | value 4 -> 8.
        let g = geo(BPF_MAP_TYPE_HASH, 6, 4, 5, 0).expect("valid");
        assert_eq!(g.n_buckets, 8);
        assert_eq!(g.n_stripes, 8);
        assert_eq!((g.key_off, g.value_off), (4, 16));
        assert_eq!(g.elem_size, 16 + 8);
        // Control block 64, then 8 stripes of 16 bytes.
        assert_eq!(g.buckets_off, 64 + 128);
        assert_eq!(g.elems_off, 192 + 64);
        assert_eq!(g.nelems, 5 + 2);
        assert_eq!(g.data_len, 256 + 7 * 24);
        // u32 -> u64: 16 bytes an element.
        let g = geo(BPF_MAP_TYPE_HASH, 4, 8, 1 << 20, 0).expect("valid");
        assert_eq!((g.key_off, g.value_off, g.elem_size), (4, 8, 16));
        assert_eq!(g.n_stripes, 1024);
        // LRU: next | state | key.
        let g = geo(BPF_MAP_TYPE_LRU_HASH, 4, 8, 3, 0).expect("valid");
        assert_eq!((g.key_off, g.value_off, g.elem_size), (8, 16, 24));
        let g = geo(BPF_MAP_TYPE_PERCPU_HASH, 4, 12, 1, 0).expect("valid");
        assert_eq!(g.elem_size, 8 + 2 * 16);
        assert_eq!(g.nelems, 1);
    }

    #[test]
    fn names_follow_the_kernel() {
        assert!(check_name("my_map.bss").is_ok());
        assert!(check_name("").is_ok());
        assert_eq!(check_name("a-b").map_err(|e| e.errno()), Err(libc::EINVAL));
        assert_eq!(check_name("é").map_err(|e| e.errno()), Err(libc::EINVAL));
        assert_eq!(stored_name("1234567890123456789"), "123456789012345");
        assert_eq!(stored_name("short"), "short");
        // Truncation never splits a character (such names are rejected anyway).
        assert_eq!(stored_name("12345678901234é"), "12345678901234");
    }
}
