//! `bpf_for_each_map_elem(map, callback, callback_ctx, flags)`: the walk over a map's
//! elements both engines drive (the interpreter in `Vm::for_each`, the JIT through
//! `trampoline::for_each_shim`), as the kernel's `map_for_each_callback` of each map
//! type does:
//! - ARRAY and PERCPU_ARRAY: every index from 0 to max_entries, the value this worker's
//!   slot for the per-CPU array (`bpf_for_each_array_elem`);
//! - HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH: every element present, in the
//!   map's `get_next_key` order (`bpf_for_each_hash_elem` walks the buckets). The next
//!   key is taken before the callback runs, so a callback that deletes the element it
//!   was given goes on with the next one, as the kernel's walk does over the element
//!   it unlinked. An element deleted by the callback before the walk reaches it is
//!   not visited.
//!
//! The callback gets r1 = the map, r2 = a pointer to a copy of the key (read-only: a
//! region of its own, [`ForEach::key_area`]), r3 = the value, r4 = callback_ctx; a
//! non-zero return stops the walk. The helper returns the number of callback calls,
//! or -EINVAL for flags other than 0 (before anything else, as the kernel).

use isa::helpers::func::for_each_map_elem;
use isa::uapi::{
    BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH,
    BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PERCPU_HASH,
};

use crate::error::TrapKind;
use crate::maptable::MapTable;
use crate::memory::ValueArea;

/// The helper's id.
pub const FOR_EACH_MAP_ELEM: i64 = for_each_map_elem as i64;

/// Map types with a `map_for_each_callback` in the kernel (of those the runtime has).
pub(crate) fn walkable(map_type: u32) -> bool {
    matches!(
        map_type,
        BPF_MAP_TYPE_ARRAY
            | BPF_MAP_TYPE_PERCPU_ARRAY
            | BPF_MAP_TYPE_HASH
            | BPF_MAP_TYPE_PERCPU_HASH
            | BPF_MAP_TYPE_LRU_HASH
            | BPF_MAP_TYPE_LRU_PERCPU_HASH
    )
}

/// One walk over a map's elements.
pub(crate) struct ForEach {
    map: maps::Map,
    cpu: u32,
    array: bool,
    /// The key handed to the callback: its own allocation, so its address stays put
    /// while the walk goes on.
    key: Box<[u8]>,
    /// Arrays: the next index. Hashes: the number of keys taken so far (bounded by
    /// 2 * max_entries + 2, so a map changed by another process cannot make the walk
    /// endless).
    pos: u64,
    max_entries: u64,
    /// Hashes: the next key to visit, taken before the callback runs.
    pending: Option<Box<[u8]>>,
}

impl ForEach {
    /// The walk over the map whose handle is `handle`: an error for a value that is
    /// no map of `maps` and for a map type without elements to walk.
    pub(crate) fn new(maps: &MapTable, handle: u64, cpu: u32) -> Result<ForEach, TrapKind> {
        let helper = for_each_map_elem;
        let m = maps.resolve(handle).ok_or(TrapKind::HelperBadMap {
            helper,
            value: handle,
        })?;
        let t = m.info.map_type;
        if !walkable(t) {
            return Err(TrapKind::HelperMapType {
                helper,
                map_type: t,
            });
        }
        let array = matches!(t, BPF_MAP_TYPE_ARRAY | BPF_MAP_TYPE_PERCPU_ARRAY);
        let key_size = m.info.key_size as usize;
        let mut w = ForEach {
            map: m.map.clone(),
            cpu,
            array,
            key: vec![0u8; key_size].into_boxed_slice(),
            pos: 0,
            max_entries: u64::from(m.info.max_entries),
            pending: None,
        };
        if !array {
            w.pending = w.next_key(None);
        }
        Ok(w)
    }

    fn next_key(&mut self, after: Option<&[u8]>) -> Option<Box<[u8]>> {
        if self.pos > 2 * self.max_entries + 1 {
            return None;
        }
        self.pos += 1;
        let mut out = vec![0u8; self.key.len()].into_boxed_slice();
        self.map.get_next_key(after, &mut out).ok().map(|()| out)
    }

    /// The read-only region of the key the callback gets.
    pub(crate) fn key_area(&self) -> ValueArea {
        ValueArea::read_only(&self.key)
    }

    /// The next element: `(key address, value address)`, the key copied into the
    /// walk's key buffer; `None` at the end.
    pub(crate) fn next(&mut self) -> Option<(u64, u64)> {
        loop {
            let value = if self.array {
                if self.pos >= self.max_entries {
                    return None;
                }
                self.key.copy_from_slice(&(self.pos as u32).to_le_bytes());
                self.pos += 1;
                // SAFETY: the key buffer holds key_size (4) readable bytes.
                unsafe { self.map.prog_lookup(self.key.as_ptr(), self.cpu) }
            } else {
                let k = self.pending.take()?;
                self.key.copy_from_slice(&k);
                self.pending = self.next_key(Some(&k));
                // SAFETY: the key buffer holds key_size readable bytes.
                unsafe { self.map.prog_lookup(self.key.as_ptr(), self.cpu) }
            };
            if !value.is_null() {
                return Some((self.key.as_ptr() as u64, value as u64));
            }
            // Arrays: a per-CPU array with no slot for this worker has nothing to
            // visit. Hashes: the key was deleted meanwhile; go on with the next.
            if self.array {
                return None;
            }
        }
    }
}
