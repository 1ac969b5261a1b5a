//! The kernel's BPF ABI in one place (`include/uapi/linux/bpf.h`): `bpf(2)` command
//! numbers, map and program types, flags, XDP actions, the offsets of the
//! `union bpf_attr` members the runtime reads or writes, and (in
//! [`helpers`](crate::helpers)) the helper ids with their names.
//!
//! Every constant keeps the header's name, so each group is also listed as
//! `(name, value)` pairs ([`MAP_TYPES`], [`CMDS`], ...; `FIELDS` in each `attr`
//! module). The integration test `isa/tests/isa/uapi.rs` compiles a C file printing the
//! header's value for each name and compares them all, so a wrong number here fails
//! a test rather than a program.
//!
//! Instruction-level constants (`BPF_PSEUDO_*`, `LDDW`, `CALL`) live in
//! [`opcode`](crate::opcode).

/// Defines constants under their uapi names and a list of them as `(name, value)`.
macro_rules! uapi_consts {
    ($(#[$list_doc:meta])* $list:ident: $ty:ty { $($(#[$doc:meta])* $name:ident = $val:expr,)* }) => {
        $($(#[$doc])* pub const $name: $ty = $val;)*
        $(#[$list_doc])*
        pub const $list: &[(&str, $ty)] = &[$((stringify!($name), $name),)*];
    };
}

uapi_consts! {
    /// `enum bpf_cmd`: the first argument of bpf(2).
    CMDS: u32 {
        BPF_MAP_CREATE = 0,
        BPF_MAP_LOOKUP_ELEM = 1,
        BPF_MAP_UPDATE_ELEM = 2,
        BPF_MAP_DELETE_ELEM = 3,
        BPF_MAP_GET_NEXT_KEY = 4,
        BPF_PROG_LOAD = 5,
        BPF_OBJ_PIN = 6,
        BPF_OBJ_GET = 7,
        BPF_PROG_ATTACH = 8,
        BPF_PROG_DETACH = 9,
        BPF_PROG_TEST_RUN = 10,
        BPF_PROG_GET_NEXT_ID = 11,
        BPF_MAP_GET_NEXT_ID = 12,
        BPF_PROG_GET_FD_BY_ID = 13,
        BPF_MAP_GET_FD_BY_ID = 14,
        BPF_OBJ_GET_INFO_BY_FD = 15,
        BPF_PROG_QUERY = 16,
        BPF_RAW_TRACEPOINT_OPEN = 17,
        BPF_BTF_LOAD = 18,
        BPF_BTF_GET_FD_BY_ID = 19,
        BPF_TASK_FD_QUERY = 20,
        BPF_MAP_LOOKUP_AND_DELETE_ELEM = 21,
        BPF_MAP_FREEZE = 22,
        BPF_BTF_GET_NEXT_ID = 23,
        BPF_MAP_LOOKUP_BATCH = 24,
        BPF_MAP_LOOKUP_AND_DELETE_BATCH = 25,
        BPF_MAP_UPDATE_BATCH = 26,
        BPF_MAP_DELETE_BATCH = 27,
        BPF_LINK_CREATE = 28,
        BPF_LINK_UPDATE = 29,
        BPF_LINK_GET_FD_BY_ID = 30,
        BPF_LINK_GET_NEXT_ID = 31,
        BPF_ENABLE_STATS = 32,
        BPF_ITER_CREATE = 33,
        BPF_LINK_DETACH = 34,
        BPF_PROG_BIND_MAP = 35,
    }
}

uapi_consts! {
    /// `enum bpf_map_type`.
    MAP_TYPES: u32 {
        BPF_MAP_TYPE_UNSPEC = 0,
        BPF_MAP_TYPE_HASH = 1,
        BPF_MAP_TYPE_ARRAY = 2,
        BPF_MAP_TYPE_PROG_ARRAY = 3,
        BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4,
        BPF_MAP_TYPE_PERCPU_HASH = 5,
        BPF_MAP_TYPE_PERCPU_ARRAY = 6,
        BPF_MAP_TYPE_STACK_TRACE = 7,
        BPF_MAP_TYPE_CGROUP_ARRAY = 8,
        BPF_MAP_TYPE_LRU_HASH = 9,
        BPF_MAP_TYPE_LRU_PERCPU_HASH = 10,
        BPF_MAP_TYPE_LPM_TRIE = 11,
        BPF_MAP_TYPE_ARRAY_OF_MAPS = 12,
        BPF_MAP_TYPE_HASH_OF_MAPS = 13,
        BPF_MAP_TYPE_DEVMAP = 14,
        BPF_MAP_TYPE_SOCKMAP = 15,
        BPF_MAP_TYPE_CPUMAP = 16,
        BPF_MAP_TYPE_XSKMAP = 17,
        BPF_MAP_TYPE_SOCKHASH = 18,
        BPF_MAP_TYPE_CGROUP_STORAGE = 19,
        BPF_MAP_TYPE_REUSEPORT_SOCKARRAY = 20,
        BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE = 21,
        BPF_MAP_TYPE_QUEUE = 22,
        BPF_MAP_TYPE_STACK = 23,
        BPF_MAP_TYPE_SK_STORAGE = 24,
        BPF_MAP_TYPE_DEVMAP_HASH = 25,
        BPF_MAP_TYPE_STRUCT_OPS = 26,
        BPF_MAP_TYPE_RINGBUF = 27,
        BPF_MAP_TYPE_INODE_STORAGE = 28,
        BPF_MAP_TYPE_TASK_STORAGE = 29,
        BPF_MAP_TYPE_BLOOM_FILTER = 30,
        BPF_MAP_TYPE_USER_RINGBUF = 31,
    }
}

/// The kernel's name of a map type as bpftool prints it (`"lru_hash"`): the uapi
/// name without `BPF_MAP_TYPE_`, in lower case. `None` for an unknown type and 0.
pub fn map_type_name(t: u32) -> Option<&'static str> {
    // Indexed by type; checked against MAP_TYPES by a unit test below.
    const NAMES: [&str; 32] = [
        "unspec",
        "hash",
        "array",
        "prog_array",
        "perf_event_array",
        "percpu_hash",
        "percpu_array",
        "stack_trace",
        "cgroup_array",
        "lru_hash",
        "lru_percpu_hash",
        "lpm_trie",
        "array_of_maps",
        "hash_of_maps",
        "devmap",
        "sockmap",
        "cpumap",
        "xskmap",
        "sockhash",
        "cgroup_storage",
        "reuseport_sockarray",
        "percpu_cgroup_storage",
        "queue",
        "stack",
        "sk_storage",
        "devmap_hash",
        "struct_ops",
        "ringbuf",
        "inode_storage",
        "task_storage",
        "bloom_filter",
        "user_ringbuf",
    ];
    match t {
        0 => None,
        _ => NAMES.get(usize::try_from(t).ok()?).copied(),
    }
}

/// Whether a map type keeps one value per CPU (per worker here): its bpf(2) value
/// is `ncpus * round_up(value_size, 8)` bytes.
pub const fn is_percpu_map_type(t: u32) -> bool {
    matches!(
        t,
        BPF_MAP_TYPE_PERCPU_HASH
            | BPF_MAP_TYPE_PERCPU_ARRAY
            | BPF_MAP_TYPE_LRU_PERCPU_HASH
            | BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE
    )
}

/// Whether a map's values are other maps (`BPF_MAP_TYPE_{ARRAY,HASH}_OF_MAPS`).
pub const fn is_map_of_maps_type(t: u32) -> bool {
    matches!(t, BPF_MAP_TYPE_ARRAY_OF_MAPS | BPF_MAP_TYPE_HASH_OF_MAPS)
}

uapi_consts! {
    /// `enum bpf_prog_type` (the ones the runtime names).
    PROG_TYPES: u32 {
        BPF_PROG_TYPE_UNSPEC = 0,
        BPF_PROG_TYPE_SOCKET_FILTER = 1,
        BPF_PROG_TYPE_KPROBE = 2,
        BPF_PROG_TYPE_SCHED_CLS = 3,
        BPF_PROG_TYPE_SCHED_ACT = 4,
        BPF_PROG_TYPE_TRACEPOINT = 5,
        BPF_PROG_TYPE_XDP = 6,
        BPF_PROG_TYPE_PERF_EVENT = 7,
        BPF_PROG_TYPE_EXT = 28,
        BPF_PROG_TYPE_SYSCALL = 31,
    }
}

uapi_consts! {
    /// `enum bpf_attach_type` (the ones the runtime names).
    ATTACH_TYPES: u32 {
        BPF_XDP_DEVMAP = 33,
        BPF_XDP_CPUMAP = 35,
        BPF_XDP = 37,
    }
}

uapi_consts! {
    /// `enum xdp_action`: what an XDP program returns.
    XDP_ACTIONS: u32 {
        XDP_ABORTED = 0,
        XDP_DROP = 1,
        XDP_PASS = 2,
        XDP_TX = 3,
        XDP_REDIRECT = 4,
    }
}

uapi_consts! {
    /// Flags of `BPF_MAP_UPDATE_ELEM`, `BPF_MAP_LOOKUP_ELEM` and the batch commands.
    ELEM_FLAGS: u64 {
        /// Create or replace.
        BPF_ANY = 0,
        /// Create only.
        BPF_NOEXIST = 1,
        /// Replace only.
        BPF_EXIST = 2,
        /// Take the value's bpf_spin_lock (only for values holding one).
        BPF_F_LOCK = 4,
    }
}

uapi_consts! {
    /// `map_flags` of `BPF_MAP_CREATE`.
    MAP_FLAGS: u32 {
        /// Do not preallocate hash elements.
        BPF_F_NO_PREALLOC = 1 << 0,
        /// Per-CPU LRU lists.
        BPF_F_NO_COMMON_LRU = 1 << 1,
        /// `numa_node` is valid.
        BPF_F_NUMA_NODE = 1 << 2,
        /// Read-only from user space.
        BPF_F_RDONLY = 1 << 3,
        /// Write-only from user space.
        BPF_F_WRONLY = 1 << 4,
        /// Stack-trace maps: keep the build id.
        BPF_F_STACK_BUILD_ID = 1 << 5,
        /// Zero hash seed (deterministic bucket order).
        BPF_F_ZERO_SEED = 1 << 6,
        /// Read-only from programs.
        BPF_F_RDONLY_PROG = 1 << 7,
        /// Write-only from programs.
        BPF_F_WRONLY_PROG = 1 << 8,
        /// Clone a socket storage on accept.
        BPF_F_CLONE = 1 << 9,
        /// The memory may be mmap()ed (global data).
        BPF_F_MMAPABLE = 1 << 10,
        /// Keep perf_event_array elements when the map's creator closes it.
        BPF_F_PRESERVE_ELEMS = 1 << 11,
        /// The map is used as an inner map.
        BPF_F_INNER_MAP = 1 << 12,
    }
}

uapi_consts! {
    /// `prog_flags` of `BPF_PROG_LOAD`.
    PROG_FLAGS: u32 {
        /// Verify as if unaligned accesses were refused.
        BPF_F_STRICT_ALIGNMENT = 1 << 0,
        /// Do not check alignment.
        BPF_F_ANY_ALIGNMENT = 1 << 1,
        /// Randomise the upper halves of 32-bit results (testing).
        BPF_F_TEST_RND_HI32 = 1 << 2,
        /// Verifier state pruning at every instruction (testing).
        BPF_F_TEST_STATE_FREQ = 1 << 3,
        /// The program may sleep.
        BPF_F_SLEEPABLE = 1 << 4,
        /// XDP: the program understands multi-buffer frames.
        BPF_F_XDP_HAS_FRAGS = 1 << 5,
    }
}

uapi_consts! {
    /// Flags of `bpf_redirect_map`.
    REDIRECT_FLAGS: u64 {
        /// Redirect to every device of a devmap.
        BPF_F_BROADCAST = 1 << 3,
        /// With `BPF_F_BROADCAST`, not to the ingress device.
        BPF_F_EXCLUDE_INGRESS = 1 << 4,
    }
}

uapi_consts! {
    /// `flags` of `BPF_PROG_TEST_RUN`.
    TEST_RUN_FLAGS: u32 {
        /// Run on the CPU named by `cpu`.
        BPF_F_TEST_RUN_ON_CPU = 1 << 0,
        /// XDP: run on live frames that are really sent or redirected.
        BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1,
    }
}

uapi_consts! {
    /// Sizes fixed by the header.
    SIZES: usize {
        /// Length of map and program names, with their NUL (`BPF_OBJ_NAME_LEN`).
        BPF_OBJ_NAME_LEN = 16,
    }
}

/// Offsets of the `union bpf_attr` members, one module per member struct. Each
/// module's `C_PREFIX` is how C names the struct inside the union (empty for the
/// anonymous ones), and `FIELDS` lists `(FIELD, offset)` where `field` in lower
/// case is the C member.
pub mod attr {
    /// Defines one attribute struct's member offsets.
    macro_rules! attr_struct {
        ($(#[$doc:meta])* $module:ident, $prefix:literal { $($name:ident = $off:expr,)* }) => {
            abi_struct!($(#[$doc])* $module, "union bpf_attr", $prefix { $($name = $off,)* });
        };
    }

    /// Defines the member offsets of one C aggregate of the uapi.
    macro_rules! abi_struct {
        ($(#[$doc:meta])* $module:ident, $ctype:literal, $prefix:literal { $($name:ident = $off:expr,)* }) => {
            $(#[$doc])*
            pub mod $module {
                /// The C aggregate the offsets are in.
                pub const C_TYPE: &str = $ctype;
                /// How C names the members' struct inside it (empty for direct members).
                pub const C_PREFIX: &str = $prefix;
                $(#[doc = concat!("Offset of `", $prefix, stringify!($name), "` (lower case).")]
                pub const $name: usize = $off;)*
                /// Every member as `(NAME, offset)`.
                pub const FIELDS: &[(&str, usize)] = &[$((stringify!($name), $name),)*];
            }
        };
    }

    /// The size of `union bpf_attr` the runtime follows (the kernel accepts larger
    /// attributes whose extra bytes are zero).
    pub const SIZE: usize = 160;

    attr_struct! {
        /// `BPF_MAP_CREATE`.
        map_create, "" {
            MAP_TYPE = 0,
            KEY_SIZE = 4,
            VALUE_SIZE = 8,
            MAX_ENTRIES = 12,
            MAP_FLAGS = 16,
            INNER_MAP_FD = 20,
            NUMA_NODE = 24,
            MAP_NAME = 28,
            MAP_IFINDEX = 44,
            BTF_FD = 48,
            BTF_KEY_TYPE_ID = 52,
            BTF_VALUE_TYPE_ID = 56,
            BTF_VMLINUX_VALUE_TYPE_ID = 60,
            MAP_EXTRA = 64,
        }
    }

    attr_struct! {
        /// `BPF_MAP_{LOOKUP,UPDATE,DELETE}_ELEM`, `BPF_MAP_GET_NEXT_KEY`,
        /// `BPF_MAP_LOOKUP_AND_DELETE_ELEM`, `BPF_MAP_FREEZE`.
        map_elem, "" {
            MAP_FD = 0,
            KEY = 8,
            VALUE = 16,
            NEXT_KEY = 16,
            FLAGS = 24,
        }
    }

    attr_struct! {
        /// `BPF_MAP_*_BATCH`.
        batch, "batch." {
            IN_BATCH = 0,
            OUT_BATCH = 8,
            KEYS = 16,
            VALUES = 24,
            COUNT = 32,
            MAP_FD = 36,
            ELEM_FLAGS = 40,
            FLAGS = 48,
        }
    }

    attr_struct! {
        /// `BPF_PROG_LOAD`.
        prog_load, "" {
            PROG_TYPE = 0,
            INSN_CNT = 4,
            INSNS = 8,
            LICENSE = 16,
            LOG_LEVEL = 24,
            LOG_SIZE = 28,
            LOG_BUF = 32,
            KERN_VERSION = 40,
            PROG_FLAGS = 44,
            PROG_NAME = 48,
            PROG_IFINDEX = 64,
            EXPECTED_ATTACH_TYPE = 68,
            PROG_BTF_FD = 72,
            FUNC_INFO_REC_SIZE = 76,
            FUNC_INFO = 80,
            FUNC_INFO_CNT = 88,
            LINE_INFO_REC_SIZE = 92,
            LINE_INFO = 96,
            LINE_INFO_CNT = 104,
            ATTACH_BTF_ID = 108,
            ATTACH_PROG_FD = 112,
            CORE_RELO_CNT = 116,
            FD_ARRAY = 120,
            CORE_RELOS = 128,
            CORE_RELO_REC_SIZE = 136,
        }
    }

    attr_struct! {
        /// `BPF_OBJ_PIN`, `BPF_OBJ_GET`.
        obj, "" {
            PATHNAME = 0,
            BPF_FD = 8,
            FILE_FLAGS = 12,
        }
    }

    attr_struct! {
        /// `BPF_PROG_TEST_RUN`.
        test, "test." {
            PROG_FD = 0,
            RETVAL = 4,
            DATA_SIZE_IN = 8,
            DATA_SIZE_OUT = 12,
            DATA_IN = 16,
            DATA_OUT = 24,
            REPEAT = 32,
            DURATION = 36,
            CTX_SIZE_IN = 40,
            CTX_SIZE_OUT = 44,
            CTX_IN = 48,
            CTX_OUT = 56,
            FLAGS = 64,
            CPU = 68,
            BATCH_SIZE = 72,
        }
    }

    attr_struct! {
        /// `BPF_{PROG,MAP,BTF,LINK}_GET_NEXT_ID` and `_GET_FD_BY_ID`.
        get_id, "" {
            START_ID = 0,
            PROG_ID = 0,
            MAP_ID = 0,
            BTF_ID = 0,
            NEXT_ID = 4,
            OPEN_FLAGS = 8,
        }
    }

    attr_struct! {
        /// `BPF_OBJ_GET_INFO_BY_FD`.
        info, "info." {
            BPF_FD = 0,
            INFO_LEN = 4,
            INFO = 8,
        }
    }

    attr_struct! {
        /// `BPF_BTF_LOAD`.
        btf_load, "" {
            BTF = 0,
            BTF_LOG_BUF = 8,
            BTF_SIZE = 16,
            BTF_LOG_SIZE = 20,
            BTF_LOG_LEVEL = 24,
        }
    }

    attr_struct! {
        /// `BPF_LINK_CREATE`.
        link_create, "link_create." {
            PROG_FD = 0,
            TARGET_FD = 4,
            TARGET_IFINDEX = 4,
            ATTACH_TYPE = 8,
            FLAGS = 12,
        }
    }

    attr_struct! {
        /// `BPF_LINK_UPDATE`.
        link_update, "link_update." {
            LINK_FD = 0,
            NEW_PROG_FD = 4,
            FLAGS = 8,
            OLD_PROG_FD = 12,
        }
    }

    attr_struct! {
        /// `BPF_LINK_DETACH`.
        link_detach, "link_detach." {
            LINK_FD = 0,
        }
    }

    attr_struct! {
        /// `BPF_PROG_BIND_MAP`.
        prog_bind_map, "prog_bind_map." {
            PROG_FD = 0,
            MAP_FD = 4,
            FLAGS = 8,
        }
    }

    attr_struct! {
        /// `BPF_RAW_TRACEPOINT_OPEN`.
        raw_tracepoint, "raw_tracepoint." {
            NAME = 0,
            PROG_FD = 8,
        }
    }

    attr_struct! {
        /// `BPF_LINK_CREATE` of an extension program: the target function's BTF id.
        link_create_freplace, "link_create." {
            TARGET_BTF_ID = 16,
        }
    }

    attr_struct! {
        /// `BPF_ENABLE_STATS`.
        enable_stats, "enable_stats." {
            TYPE = 0,
        }
    }

    pub(crate) use abi_struct;

    /// One C aggregate's member offsets: its C type, the C prefix of its members
    /// and `(NAME, offset)` for each.
    pub type Layout = (&'static str, &'static str, &'static [(&'static str, usize)]);

    /// Every attribute struct.
    pub const ALL: &[Layout] = &[
        (map_create::C_TYPE, map_create::C_PREFIX, map_create::FIELDS),
        (map_elem::C_TYPE, map_elem::C_PREFIX, map_elem::FIELDS),
        (batch::C_TYPE, batch::C_PREFIX, batch::FIELDS),
        (prog_load::C_TYPE, prog_load::C_PREFIX, prog_load::FIELDS),
        (obj::C_TYPE, obj::C_PREFIX, obj::FIELDS),
        (test::C_TYPE, test::C_PREFIX, test::FIELDS),
        (get_id::C_TYPE, get_id::C_PREFIX, get_id::FIELDS),
        (info::C_TYPE, info::C_PREFIX, info::FIELDS),
        (btf_load::C_TYPE, btf_load::C_PREFIX, btf_load::FIELDS),
        (
            link_create::C_TYPE,
            link_create::C_PREFIX,
            link_create::FIELDS,
        ),
        (
            link_update::C_TYPE,
            link_update::C_PREFIX,
            link_update::FIELDS,
        ),
        (
            link_detach::C_TYPE,
            link_detach::C_PREFIX,
            link_detach::FIELDS,
        ),
        (
            enable_stats::C_TYPE,
            enable_stats::C_PREFIX,
            enable_stats::FIELDS,
        ),
        (
            prog_bind_map::C_TYPE,
            prog_bind_map::C_PREFIX,
            prog_bind_map::FIELDS,
        ),
        (
            raw_tracepoint::C_TYPE,
            raw_tracepoint::C_PREFIX,
            raw_tracepoint::FIELDS,
        ),
        (
            link_create_freplace::C_TYPE,
            link_create_freplace::C_PREFIX,
            link_create_freplace::FIELDS,
        ),
    ];
}

/// Offsets of the members of the `struct bpf_*_info` that `BPF_OBJ_GET_INFO_BY_FD`
/// fills, one module per struct (`FIELDS` as in [`attr`]).
pub mod info {
    use super::attr::abi_struct;

    abi_struct! {
        /// `struct bpf_map_info`.
        map, "struct bpf_map_info", "" {
            TYPE = 0,
            ID = 4,
            KEY_SIZE = 8,
            VALUE_SIZE = 12,
            MAX_ENTRIES = 16,
            MAP_FLAGS = 20,
            NAME = 24,
            IFINDEX = 40,
            BTF_ID = 64,
            BTF_KEY_TYPE_ID = 68,
            BTF_VALUE_TYPE_ID = 72,
        }
    }

    abi_struct! {
        /// `struct bpf_prog_info`.
        prog, "struct bpf_prog_info", "" {
            TYPE = 0,
            ID = 4,
            TAG = 8,
            JITED_PROG_LEN = 16,
            XLATED_PROG_LEN = 20,
            JITED_PROG_INSNS = 24,
            XLATED_PROG_INSNS = 32,
            LOAD_TIME = 40,
            CREATED_BY_UID = 48,
            NR_MAP_IDS = 52,
            MAP_IDS = 56,
            NAME = 64,
            IFINDEX = 80,
            BTF_ID = 128,
            RUN_TIME_NS = 192,
            RUN_CNT = 200,
            VERIFIED_INSNS = 216,
        }
    }

    /// The `__u32` word holding the `gpl_compatible:1` bitfield of
    /// `struct bpf_prog_info`: the one after `ifindex` (C cannot take a bitfield's
    /// offset; the header test checks that `netns_dev` follows it at the next 8 bytes).
    pub const PROG_GPL_COMPATIBLE_WORD: usize = prog::IFINDEX + 4;

    abi_struct! {
        /// `struct bpf_btf_info`.
        btf, "struct bpf_btf_info", "" {
            BTF = 0,
            BTF_SIZE = 8,
            ID = 12,
            NAME = 16,
            NAME_LEN = 24,
            KERNEL_BTF = 28,
        }
    }

    abi_struct! {
        /// `struct bpf_link_info`, with the XDP member of its union.
        link, "struct bpf_link_info", "" {
            TYPE = 0,
            ID = 4,
            PROG_ID = 8,
            XDP_IFINDEX = 16,
        }
    }

    /// Every info struct.
    pub const ALL: &[super::attr::Layout] = &[
        (map::C_TYPE, map::C_PREFIX, map::FIELDS),
        (prog::C_TYPE, prog::C_PREFIX, prog::FIELDS),
        (btf::C_TYPE, btf::C_PREFIX, btf::FIELDS),
        (link::C_TYPE, link::C_PREFIX, link::FIELDS),
    ];
}

uapi_consts! {
    /// `enum bpf_link_type` (the ones the runtime names).
    LINK_TYPES: u32 {
        BPF_LINK_TYPE_XDP = 6,
        BPF_LINK_TYPE_TRACING = 2,
    }
}

/// Every constant group as `(group, [(name, value)])`, for the header test.
pub fn all_constants() -> Vec<(&'static str, Vec<(&'static str, u64)>)> {
    fn widen<T: Copy + Into<u64>>(l: &'static [(&'static str, T)]) -> Vec<(&'static str, u64)> {
        l.iter().map(|&(n, v)| (n, v.into())).collect()
    }
    vec![
        ("bpf_cmd", widen(CMDS)),
        ("bpf_map_type", widen(MAP_TYPES)),
        ("bpf_prog_type", widen(PROG_TYPES)),
        ("bpf_attach_type", widen(ATTACH_TYPES)),
        ("xdp_action", widen(XDP_ACTIONS)),
        ("elem flags", widen(ELEM_FLAGS)),
        ("map flags", widen(MAP_FLAGS)),
        ("prog flags", widen(PROG_FLAGS)),
        ("redirect flags", widen(REDIRECT_FLAGS)),
        ("test run flags", widen(TEST_RUN_FLAGS)),
        ("bpf_link_type", widen(LINK_TYPES)),
        ("sizes", SIZES.iter().map(|&(n, v)| (n, v as u64)).collect()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_type_names_are_the_uapi_names() {
        for &(name, t) in MAP_TYPES {
            let want = name.strip_prefix("BPF_MAP_TYPE_").unwrap().to_lowercase();
            if t == 0 {
                assert_eq!(map_type_name(t), None);
            } else {
                assert_eq!(map_type_name(t), Some(want.as_str()), "{name}");
            }
        }
        assert_eq!(map_type_name(MAP_TYPES.len() as u32), None);
    }

    #[test]
    fn per_cpu_types() {
        let percpu: Vec<&str> = MAP_TYPES
            .iter()
            .filter(|&&(_, t)| is_percpu_map_type(t))
            .map(|&(n, _)| n)
            .collect();
        assert_eq!(
            percpu,
            [
                "BPF_MAP_TYPE_PERCPU_HASH",
                "BPF_MAP_TYPE_PERCPU_ARRAY",
                "BPF_MAP_TYPE_LRU_PERCPU_HASH",
                "BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE"
            ]
        );
    }
}
