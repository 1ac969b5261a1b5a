//! The shared-memory store and the map types of the userspace XDP runtime.
//!
//! A [`Store`] is a file in /dev/shm (or an anonymous memfd) holding a versioned
//! header, a map table and the memory of every map, addressed by offsets so each
//! process may map it anywhere. [`Map`] handles give the user-space (`bpf(2)`
//! layout) API and the program-facing hot path ([`Map::prog_lookup`] and
//! friends: no allocation, no syscall, no lock held across calls).
//!
//! Map semantics follow the kernel's arraymap.c and hashtab.c: flags, errnos,
//! iteration order (bit-for-bit with `BPF_F_ZERO_SEED`, since the hash is the
//! kernel's jhash), per-CPU layouts.
//!
//! # Modules holding unsafe code
//! - `shm.rs`: creating/mapping the store files (reservation, owner checks,
//!   memfd seals), checked typed views of the mapping.
//! - `layout.rs`: the header and map-table structs (`SharedPod` impls only).
//! - `lock.rs`: pid spinlocks (`kill(pid, 0)`, `pthread_atfork`).
//! - `mem.rs`: word-wise atomic copies into and out of map memory.
//! - `array.rs`, `hash.rs`, `lru.rs`, `lpm.rs`, `slots.rs`, `ring.rs`, `queue.rs`, `bloom.rs`, `map.rs`:
//!   raw pointers into map memory at validated offsets.
//! - `progops.rs`: the per-map program entry points (`Map::prog_ops`), unsafe
//!   functions forwarding their callers' key and value pointers.
//! - `objects.rs`: program instructions copied into and out of the store.
//! - `timer.rs`: `SharedPod` impls of the timer wheel and lease, `clock_gettime`.
//!
//! `def.rs`, `store.rs`, `check.rs`, `entries.rs`, `fill.rs`, `typed.rs` and `error.rs` hold no
//! unsafe code.
//!
//! # Reading the maps a run left in a named store
//!
//! `xdp-runner run prog.o --data-in pkt.bin --store demo` keeps the object's maps in
//! `/dev/shm/demo` after the run. A control plane in another process opens the
//! store, finds a map by the name the object gave it, and reads it through a typed
//! handle ([`TypedMap`], or [`PerCpuMap`] for per-CPU maps):
//!
//! ```
//! use maps::{MapDef, Store, StoreOptions, TypedMap, BPF_ANY, BPF_MAP_TYPE_ARRAY};
//! # let name = format!("maps-doc-{}", std::process::id());
//! # // What `xdp-runner run --store NAME` leaves behind: the store and the object's
//! # // maps (here xdp_counter's `counter_map`, with one entry the program wrote).
//! # {
//! #     let run = Store::create(&name, StoreOptions { size: 1 << 20, ncpus: Some(2) })?;
//! #     let m = run.create_map(&MapDef {
//! #         map_type: BPF_MAP_TYPE_ARRAY,
//! #         key_size: 4,
//! #         value_size: 8,
//! #         max_entries: 1,
//! #         name: "counter_map".into(),
//! #         ..MapDef::default()
//! #     })?;
//! #     m.update(&0u32.to_ne_bytes(), &3u64.to_ne_bytes(), BPF_ANY)?;
//! # }
//!
//! let store = Store::open(&name)?; // the NAME given to --store
//! let counter: TypedMap<u32, u64> = TypedMap::new(store.map_by_name("counter_map")?)?;
//! assert_eq!(counter.get(&0)?, Some(3));
//! for entry in counter.iter() {
//!     let (key, value) = entry?;
//!     println!("{key}: {value}");
//! }
//! # drop(store);
//! # Store::unlink(&name)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

mod array;
mod bloom;
mod check;
mod def;
mod entries;
mod error;
mod fill;
mod hash;
mod layout;
mod lock;
mod lpm;
mod lru;
mod map;
mod mem;
mod objects;
mod progops;
mod queue;
mod ring;
mod shm;
mod slots;
mod store;
pub mod timer;
mod typed;
mod xdp;

pub use array::ArrayLayout;
pub use def::*;
pub use entries::Entry;
pub use error::{MapError, ObjectError, StoreError, ENOTSUPP};
pub use fill::{fill_bytes, fill_fits};
pub use hash::{fast_hash_consts, jhash_consts, BucketHash, HashLayout, HashUpdateLayout, KeyLoad};
pub use layout::{LAYOUT_VERSION, MAGIC, MAP_TABLE_CAP, MIN_STORE_SIZE};
pub use map::{Map, MapKeys, ValueRegion};
pub use objects::{
    boottime_ns, Pinned, ProgramBtfInfo, ProgramDef, ProgramInfo, Replacement, MAX_BTF_SIZE,
    MAX_PIN_PATH, MAX_PROG_MAPS,
};
pub use progops::{DeleteFn, LookupFn, ProgOps, UpdateFn};
pub use ring::{
    BPF_F_CURRENT_CPU, BPF_F_INDEX_MASK, BPF_RINGBUF_BUSY_BIT, BPF_RINGBUF_DISCARD_BIT,
    BPF_RINGBUF_HDR_SZ,
};
pub use shm::{StoreAccess, Trust, MAX_STORE_NAME};
pub use store::{parse_cpu_list, possible_cpus, Store, StoreOptions, DEFAULT_STORE_SIZE};
pub use timer::{Due, TimerLease};
pub use typed::{PerCpuMap, Pod, TypedMap};
pub use xdp::{
    XdpAttachment, XdpRequest, XDP_FLAGS_DRV_MODE, XDP_FLAGS_HW_MODE, XDP_FLAGS_MASK,
    XDP_FLAGS_MODES, XDP_FLAGS_REPLACE, XDP_FLAGS_SKB_MODE, XDP_FLAGS_UPDATE_IF_NOEXIST,
};
