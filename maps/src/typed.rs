//! A typed control-plane view of a map: keys and values as Rust types.
//!
//! ```
//! use maps::{MapDef, Store, StoreOptions, TypedMap, BPF_ANY, BPF_NOEXIST, BPF_MAP_TYPE_HASH,
//!            BPF_MAP_TYPE_PERCPU_ARRAY};
//!
//! let store = Store::anonymous(StoreOptions { size: 1 << 20, ncpus: Some(2) })?;
//! let def = MapDef {
//!     map_type: BPF_MAP_TYPE_HASH,
//!     key_size: 4,
//!     value_size: 8,
//!     max_entries: 16,
//!     name: "flows".into(),
//!     ..MapDef::default()
//! };
//! let flows: TypedMap<u32, u64> = TypedMap::new(store.create_map(&def)?)?;
//! flows.insert(&7, &700, BPF_NOEXIST)?;
//! flows.insert(&8, &800, BPF_ANY)?;
//! assert_eq!(flows.get(&7)?, Some(700));
//! assert!(flows.insert(&7, &1, BPF_NOEXIST).is_err()); // EEXIST
//! assert!(flows.remove(&8)?);
//! assert!(!flows.remove(&8)?);
//! let all: Vec<(u32, u64)> = flows.iter().collect();
//! assert_eq!(all, vec![(7, 700)]);
//!
//! // Per-CPU values: one per worker.
//! let counters: TypedMap<u32, u64> = TypedMap::new(store.create_map(&MapDef {
//!     map_type: BPF_MAP_TYPE_PERCPU_ARRAY,
//!     max_entries: 1,
//!     name: "counters".into(),
//!     ..def
//! })?)?;
//! counters.insert_percpu(&0, &[1, 2], BPF_ANY)?;
//! assert_eq!(counters.get_percpu(&0)?, Some(vec![1, 2]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::marker::PhantomData;

use crate::error::MapError;
use crate::map::Map;

/// Plain data: every bit pattern is a valid value and there is no padding, so
/// a value can be copied to and from map bytes.
///
/// # Safety
/// Implement only for types with no padding bytes and no invalid bit patterns
/// (integers, arrays of them, `repr(C)` structs of them without padding).
pub unsafe trait Pod: Copy + 'static {}

macro_rules! pod {
    ($($t:ty),*) => { $(
        // SAFETY: integers have no padding and no invalid bit patterns.
        unsafe impl Pod for $t {}
    )* };
}
pod!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, usize, isize);
// SAFETY: an array of Pod has no padding between elements and no invalid patterns.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

fn bytes_of<T: Pod>(t: &T) -> &[u8] {
    // SAFETY: T: Pod has no padding, so all size_of::<T>() bytes are initialised.
    unsafe { std::slice::from_raw_parts(t as *const T as *const u8, std::mem::size_of::<T>()) }
}

fn from_bytes<T: Pod>(b: &[u8]) -> T {
    assert_eq!(b.len(), std::mem::size_of::<T>());
    // SAFETY: b has size_of::<T>() bytes and every bit pattern is a valid T.
    unsafe { std::ptr::read_unaligned(b.as_ptr() as *const T) }
}

/// A map whose keys are `K` and values `V` (per CPU for per-CPU maps).
#[derive(Clone, Debug)]
pub struct TypedMap<K: Pod, V: Pod> {
    map: Map,
    _types: PhantomData<fn(K, V)>,
}

impl<K: Pod, V: Pod> TypedMap<K, V> {
    /// Wraps `map`; `InvalidValue` unless `K` and `V` have its key and value sizes.
    pub fn new(map: Map) -> Result<Self, MapError> {
        let info = map.info();
        if std::mem::size_of::<K>() != info.key_size as usize
            || std::mem::size_of::<V>() != info.value_size as usize
        {
            return Err(MapError::InvalidValue {
                id: info.id,
                what: "key or value type size differs from the map's",
            });
        }
        Ok(TypedMap {
            map,
            _types: PhantomData,
        })
    }

    /// The untyped map.
    pub fn map(&self) -> &Map {
        &self.map
    }

    fn stride(&self) -> usize {
        std::mem::size_of::<V>().div_ceil(8) * 8
    }

    fn percpu(&self) -> bool {
        crate::def::is_percpu_type(self.map.info().map_type)
    }

    /// The value of `key` (worker 0's for per-CPU maps), or None if absent.
    pub fn get(&self, key: &K) -> Result<Option<V>, MapError> {
        Ok(self.get_percpu(key)?.and_then(|v| v.into_iter().next()))
    }

    /// Every worker's value of `key` (one element for other maps).
    pub fn get_percpu(&self, key: &K) -> Result<Option<Vec<V>>, MapError> {
        let mut buf = vec![0u8; self.map.user_value_size()];
        match self.map.lookup(bytes_of(key), &mut buf) {
            Ok(()) => {}
            Err(MapError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        let n = std::mem::size_of::<V>();
        if self.percpu() {
            Ok(Some(
                buf.chunks(self.stride())
                    .map(|c| from_bytes(&c[..n]))
                    .collect(),
            ))
        } else {
            Ok(Some(vec![from_bytes(&buf[..n])]))
        }
    }

    /// Writes `value` with `flags` (BPF_ANY, BPF_NOEXIST, BPF_EXIST); for a
    /// per-CPU map, every worker gets `value`.
    pub fn insert(&self, key: &K, value: &V, flags: u64) -> Result<(), MapError> {
        if self.percpu() {
            let all = vec![*value; self.map.ncpus() as usize];
            return self.insert_percpu(key, &all, flags);
        }
        self.map.update(bytes_of(key), bytes_of(value), flags)
    }

    /// Writes one value per worker (`values.len()` must be the store's ncpus).
    pub fn insert_percpu(&self, key: &K, values: &[V], flags: u64) -> Result<(), MapError> {
        let stride = self.stride();
        let mut buf = vec![0u8; values.len() * stride];
        for (chunk, v) in buf.chunks_mut(stride).zip(values) {
            chunk[..std::mem::size_of::<V>()].copy_from_slice(bytes_of(v));
        }
        self.map.update(bytes_of(key), &buf, flags)
    }

    /// Deletes `key`: true if it was there.
    pub fn remove(&self, key: &K) -> Result<bool, MapError> {
        match self.map.delete(bytes_of(key)) {
            Ok(()) => Ok(true),
            Err(MapError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Keys in get_next_key order; a corrupt map ends the walk early (use
    /// [`Map::iter`] to see the error).
    pub fn keys(&self) -> impl Iterator<Item = K> + '_ {
        self.map
            .iter()
            .map_while(Result::ok)
            .map(|k| from_bytes(&k))
    }

    /// `(key, value)` pairs in get_next_key order (worker 0's value for per-CPU
    /// maps); keys deleted during the walk are skipped.
    pub fn iter(&self) -> impl Iterator<Item = (K, V)> + '_ {
        self.keys()
            .filter_map(|k| self.get(&k).ok().flatten().map(|v| (k, v)))
    }
}
