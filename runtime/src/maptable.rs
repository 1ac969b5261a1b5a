//! The maps of a loaded object as programs see them.
//!
//! An `lddw` of a map leaves the address of that map's [`BoundMap`] in a register; helpers
//! get it back with [`MapTable::resolve`], which accepts only exact element addresses of
//! this table, so a forged value is an error, never a wild pointer.

use maps::{Map, MapInfo};

use crate::memory::ValueArea;

/// Map types with program-visible values that the interpreter knows how to address.
pub mod types {
    pub const HASH: u32 = 1;
    pub const ARRAY: u32 = 2;
    pub const PROG_ARRAY: u32 = 3;
    pub const PERCPU_HASH: u32 = 5;
    pub const PERCPU_ARRAY: u32 = 6;
    pub const LRU_HASH: u32 = 9;
    pub const LRU_PERCPU_HASH: u32 = 10;
}

/// `BPF_F_RDONLY_PROG`: the program may read but not write the map's values.
pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;

/// One map of the object, bound to its storage.
#[derive(Debug)]
pub struct BoundMap {
    /// The object's name for the map (`.bss`, `.rodata`, or the map's own name).
    pub name: String,
    pub info: MapInfo,
    pub map: Map,
}

impl BoundMap {
    /// The value a program's `lddw` of this map yields.
    pub fn handle_addr(&self) -> u64 {
        self as *const BoundMap as u64
    }

    /// Address of byte `off` of the single value of an array map (global data), for
    /// `BPF_PSEUDO_MAP_IDX_VALUE`.
    pub fn direct_value_addr(&self, off: u32) -> Option<u64> {
        if self.info.map_type != types::ARRAY || off >= self.info.value_size {
            return None;
        }
        let key = 0u32.to_ne_bytes();
        // SAFETY: `key` is 4 readable bytes, the key size of an array map.
        let p = unsafe { self.map.prog_lookup(key.as_ptr(), 0) };
        (!p.is_null()).then(|| p as u64 + off as u64)
    }

    pub fn read_only(&self) -> bool {
        self.info.map_flags & BPF_F_RDONLY_PROG != 0
    }
}

/// The maps of one object, at stable addresses for as long as the table lives.
#[derive(Debug)]
pub struct MapTable {
    maps: Box<[BoundMap]>,
    areas: Box<[ValueArea]>,
}

impl MapTable {
    pub fn new(maps: Vec<BoundMap>) -> MapTable {
        let areas = maps
            .iter()
            .filter(|m| m.info.map_type != types::PROG_ARRAY)
            .map(|m| {
                let r = m.map.value_region();
                ValueArea {
                    base: r.base as usize,
                    len: r.len,
                    stride: r.stride,
                    value_offset: r.value_offset,
                    value_len: r.value_len,
                    writable: !m.read_only(),
                }
            })
            .filter(|a| a.len > 0 && a.stride > 0)
            .collect();
        MapTable {
            maps: maps.into(),
            areas,
        }
    }

    pub fn len(&self) -> usize {
        self.maps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<&BoundMap> {
        self.maps.get(index)
    }

    pub fn iter(&self) -> impl Iterator<Item = &BoundMap> {
        self.maps.iter()
    }

    pub fn by_name(&self, name: &str) -> Option<&BoundMap> {
        self.maps.iter().find(|m| m.name == name)
    }

    /// The map whose handle a program passed to a helper, if `value` is one.
    #[inline(always)]
    pub fn resolve(&self, value: u64) -> Option<&BoundMap> {
        let base = self.maps.as_ptr() as u64;
        let size = std::mem::size_of::<BoundMap>() as u64;
        let rel = value.checked_sub(base)?;
        if rel % size != 0 {
            return None;
        }
        self.maps.get((rel / size) as usize)
    }

    /// The value areas of every map, for the memory checks.
    pub fn value_areas(&self) -> &[ValueArea] {
        &self.areas
    }
}
