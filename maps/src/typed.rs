//! Typed control-plane views of a map: keys and values as Rust types.
//!
//! - [`TypedMap<K, V>`]: one value per key.
//! - [`PerCpuMap<K, V>`]: per-CPU maps, one value per worker for each key (a
//!   [`TypedMap`] refuses them, so that no read silently returns one worker's value).
//!
//! Keys and values are plain data ([`Pod`]): integers, arrays of them, and
//! `#[repr(C)]` structs that derive zerocopy's `FromBytes`, `IntoBytes` and
//! `Immutable` (the derive checks that the struct has no padding).
//!
//! ```
//! use maps::{MapDef, PerCpuMap, Store, StoreOptions, TypedMap, BPF_ANY, BPF_NOEXIST,
//!            BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_ARRAY};
//! use zerocopy::{FromBytes, Immutable, IntoBytes};
//!
//! #[derive(Clone, Copy, Debug, PartialEq, FromBytes, IntoBytes, Immutable)]
//! #[repr(C)]
//! struct Flow {
//!     packets: u64,
//!     bytes: u64,
//! }
//!
//! let store = Store::anonymous(StoreOptions { size: 1 << 20, ncpus: Some(2) })?;
//! let def = MapDef {
//!     map_type: BPF_MAP_TYPE_HASH,
//!     key_size: 4,
//!     value_size: 16,
//!     max_entries: 16,
//!     name: "flows".into(),
//!     ..MapDef::default()
//! };
//! let flows: TypedMap<u32, Flow> = TypedMap::new(store.create_map(&def)?)?;
//! flows.insert(&7, &Flow { packets: 1, bytes: 60 }, BPF_NOEXIST)?;
//! assert_eq!(flows.get(&7)?, Some(Flow { packets: 1, bytes: 60 }));
//! assert!(flows.insert(&7, &Flow { packets: 0, bytes: 0 }, BPF_NOEXIST).is_err()); // EEXIST
//! let all = flows.iter().collect::<Result<Vec<_>, _>>()?;
//! assert_eq!(all, vec![(7, Flow { packets: 1, bytes: 60 })]);
//! assert!(flows.remove(&7)?);
//! assert!(!flows.remove(&7)?);
//!
//! // Per-CPU values: one per worker.
//! let counters = store.create_map(&MapDef {
//!     map_type: BPF_MAP_TYPE_PERCPU_ARRAY,
//!     value_size: 8,
//!     max_entries: 1,
//!     name: "counters".into(),
//!     ..def
//! })?;
//! assert!(TypedMap::<u32, u64>::new(counters.clone()).is_err());
//! let counters: PerCpuMap<u32, u64> = PerCpuMap::new(counters)?;
//! counters.insert(&0, &[1, 2], BPF_ANY)?;
//! assert_eq!(counters.get(&0)?, Some(vec![1, 2]));
//! assert_eq!(counters.get(&0)?.map(|v| v.iter().sum::<u64>()), Some(3));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::marker::PhantomData;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::error::MapError;
use crate::map::Map;

/// Plain data: every bit pattern is a valid value and there is no padding, so a
/// value can be copied to and from map bytes. Implemented for every type with
/// zerocopy's `FromBytes + IntoBytes + Immutable` (derive them on `#[repr(C)]`
/// structs); no `unsafe` is needed.
pub trait Pod: FromBytes + IntoBytes + Immutable + Copy + 'static {}

impl<T: FromBytes + IntoBytes + Immutable + Copy + 'static> Pod for T {}

fn from_bytes<T: Pod>(b: &[u8]) -> T {
    // The callers pass exactly size_of::<T>() bytes.
    T::read_from_bytes(b).expect("a value of the type's size")
}

/// Checks that `K` and `V` have the map's key and value sizes, and whether the map
/// is per CPU as the handle expects.
fn check_types<K: Pod, V: Pod>(map: &Map, percpu: bool) -> Result<(), MapError> {
    let info = map.info();
    if std::mem::size_of::<K>() != info.key_size as usize
        || std::mem::size_of::<V>() != info.value_size as usize
    {
        return Err(MapError::InvalidValue {
            id: info.id,
            what: "key or value type size differs from the map's",
        });
    }
    match (crate::def::is_percpu_type(info.map_type), percpu) {
        (true, false) => Err(MapError::InvalidValue {
            id: info.id,
            what: "a per-CPU map holds one value per worker: use PerCpuMap",
        }),
        (false, true) => Err(MapError::InvalidValue {
            id: info.id,
            what: "not a per-CPU map: use TypedMap",
        }),
        _ => Ok(()),
    }
}

fn lookup_bytes(map: &Map, key: &[u8]) -> Result<Option<Vec<u8>>, MapError> {
    let mut buf = vec![0u8; map.user_value_size()];
    match map.lookup(key, &mut buf) {
        Ok(()) => Ok(Some(buf)),
        Err(MapError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn remove_key(map: &Map, key: &[u8]) -> Result<bool, MapError> {
    match map.delete(key) {
        Ok(()) => Ok(true),
        Err(MapError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A map whose keys are `K` and values `V` (not a per-CPU map: see [`PerCpuMap`]).
#[derive(Clone, Debug)]
pub struct TypedMap<K: Pod, V: Pod> {
    map: Map,
    _types: PhantomData<fn(K, V)>,
}

impl<K: Pod, V: Pod> TypedMap<K, V> {
    /// Wraps `map`; `InvalidValue` unless `K` and `V` have its key and value sizes
    /// and the map is not per CPU.
    pub fn new(map: Map) -> Result<Self, MapError> {
        check_types::<K, V>(&map, false)?;
        Ok(TypedMap {
            map,
            _types: PhantomData,
        })
    }

    /// The untyped map.
    pub fn map(&self) -> &Map {
        &self.map
    }

    /// The value of `key`, or None if absent.
    pub fn get(&self, key: &K) -> Result<Option<V>, MapError> {
        let size = std::mem::size_of::<V>();
        Ok(lookup_bytes(&self.map, key.as_bytes())?.map(|b| from_bytes(&b[..size])))
    }

    /// Writes `value` with `flags` (BPF_ANY, BPF_NOEXIST, BPF_EXIST).
    pub fn insert(&self, key: &K, value: &V, flags: u64) -> Result<(), MapError> {
        self.map.update(key.as_bytes(), value.as_bytes(), flags)
    }

    /// Deletes `key`: true if it was there.
    pub fn remove(&self, key: &K) -> Result<bool, MapError> {
        remove_key(&self.map, key.as_bytes())
    }

    /// Keys in get_next_key order; an error (a corrupt map) is the walk's last item.
    pub fn keys(&self) -> impl Iterator<Item = Result<K, MapError>> + '_ {
        self.map.iter().map(|k| k.map(|k| from_bytes(&k)))
    }

    /// `(key, value)` pairs in get_next_key order; keys deleted during the walk are
    /// skipped, and an error (a corrupt map) is the walk's last item.
    pub fn iter(&self) -> impl Iterator<Item = Result<(K, V), MapError>> + '_ {
        self.keys().filter_map(|k| match k {
            Err(e) => Some(Err(e)),
            Ok(k) => match self.get(&k) {
                Ok(Some(v)) => Some(Ok((k, v))),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            },
        })
    }
}

/// A per-CPU map whose keys are `K` and values `V`: every read returns one value
/// per worker (the store's `ncpus`), as the kernel's bpf(2) lookup does.
#[derive(Clone, Debug)]
pub struct PerCpuMap<K: Pod, V: Pod> {
    map: Map,
    _types: PhantomData<fn(K, V)>,
}

impl<K: Pod, V: Pod> PerCpuMap<K, V> {
    /// Wraps `map`; `InvalidValue` unless `K` and `V` have its key and value sizes
    /// and the map is per CPU.
    pub fn new(map: Map) -> Result<Self, MapError> {
        check_types::<K, V>(&map, true)?;
        Ok(PerCpuMap {
            map,
            _types: PhantomData,
        })
    }

    /// The untyped map.
    pub fn map(&self) -> &Map {
        &self.map
    }

    /// Each worker's slot: the value rounded up to 8 bytes.
    fn stride(&self) -> usize {
        std::mem::size_of::<V>().div_ceil(8) * 8
    }

    /// Every worker's value of `key`, or None if absent.
    pub fn get(&self, key: &K) -> Result<Option<Vec<V>>, MapError> {
        let size = std::mem::size_of::<V>();
        Ok(lookup_bytes(&self.map, key.as_bytes())?.map(|b| {
            b.chunks(self.stride())
                .map(|c| from_bytes(&c[..size]))
                .collect()
        }))
    }

    /// Writes one value per worker: `values.len()` must be the store's ncpus.
    pub fn insert(&self, key: &K, values: &[V], flags: u64) -> Result<(), MapError> {
        let stride = self.stride();
        let mut buf = vec![0u8; values.len() * stride];
        for (chunk, v) in buf.chunks_mut(stride).zip(values) {
            chunk[..std::mem::size_of::<V>()].copy_from_slice(v.as_bytes());
        }
        self.map.update(key.as_bytes(), &buf, flags)
    }

    /// Writes `value` in every worker's slot.
    pub fn insert_all(&self, key: &K, value: &V, flags: u64) -> Result<(), MapError> {
        let all = vec![*value; self.map.ncpus() as usize];
        self.insert(key, &all, flags)
    }

    /// Deletes `key` (hash maps): true if it was there.
    pub fn remove(&self, key: &K) -> Result<bool, MapError> {
        remove_key(&self.map, key.as_bytes())
    }

    /// `(key, every worker's value)` in get_next_key order; an error (a corrupt map)
    /// is the walk's last item.
    pub fn iter(&self) -> impl Iterator<Item = Result<(K, Vec<V>), MapError>> + '_ {
        self.map.iter().filter_map(|k| {
            let k: K = match k {
                Ok(k) => from_bytes(&k),
                Err(e) => return Some(Err(e)),
            };
            match self.get(&k) {
                Ok(Some(v)) => Some(Ok((k, v))),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            }
        })
    }
}
