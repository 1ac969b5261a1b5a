//! Whole entries from user space: a per-CPU value given once for every worker, and
//! a map dumped as `(key, values)` with per-CPU values split per worker. Built on
//! the [`Map`] calls; no unsafe code.

use crate::def::{is_percpu_type, BPF_MAP_TYPE_PERF_EVENT_ARRAY};
use crate::error::MapError;
use crate::map::Map;

/// One entry of a map dump: the key and one value, or one per worker for per-CPU
/// maps (each `value_size` bytes, without the 8-byte slot padding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key's bytes.
    pub key: Vec<u8>,
    /// The value, or one per worker.
    pub values: Vec<Vec<u8>>,
}

impl Map {
    /// Writes one entry from user space. For a per-CPU map, a value of `value_size`
    /// bytes is written to every worker's slot; a value of [`Map::user_value_size`]
    /// bytes gives each worker its own (the bpf(2) layout).
    pub fn update_spread(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        let info = self.info();
        if key.len() != info.key_size as usize {
            return Err(MapError::KeySize {
                id: info.id,
                expected: info.key_size as usize,
                got: key.len(),
            });
        }
        let full = self.user_value_size();
        let one = info.value_size as usize;
        if is_percpu_type(info.map_type) && value.len() == one && full != one {
            let stride = one.div_ceil(8) * 8;
            let mut spread = vec![0u8; full];
            for chunk in spread.chunks_mut(stride) {
                chunk[..one].copy_from_slice(value);
            }
            return self.update(key, &spread, flags);
        }
        if value.len() != full {
            return Err(MapError::ValueSize {
                id: info.id,
                expected: full,
                got: value.len(),
            });
        }
        self.update(key, value, flags)
    }

    /// Every entry, in get_next_key order, with per-CPU values split per worker.
    /// Keys deleted during the walk are skipped; a perf_event_array's slots cannot
    /// be read back (as in the kernel, whose dump lists only the error) and give no
    /// entries. The walk stops after `max_entries` entries.
    pub fn dump(&self) -> Result<Vec<Entry>, MapError> {
        let info = self.info();
        let one = info.value_size as usize;
        let mut out = Vec::new();
        let mut value = vec![0u8; self.user_value_size()];
        for key in self.iter() {
            let key = key?;
            match self.lookup(&key, &mut value) {
                Ok(()) => {}
                Err(MapError::NotFound { .. }) => continue,
                Err(_) if info.map_type == BPF_MAP_TYPE_PERF_EVENT_ARRAY => continue,
                Err(e) => return Err(e),
            }
            let values = if is_percpu_type(info.map_type) {
                let stride = one.div_ceil(8) * 8;
                value.chunks(stride).map(|c| c[..one].to_vec()).collect()
            } else {
                vec![value.clone()]
            };
            out.push(Entry { key, values });
            if out.len() >= info.max_entries as usize {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        MapDef, Store, StoreOptions, BPF_ANY, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_HASH,
    };

    #[test]
    fn per_cpu_values_are_spread_and_dumped_per_worker() {
        let store = Store::anonymous(StoreOptions {
            size: 1 << 20,
            ncpus: Some(3),
        })
        .unwrap();
        let m = store
            .create_map(&MapDef {
                map_type: BPF_MAP_TYPE_PERCPU_HASH,
                key_size: 4,
                value_size: 4,
                max_entries: 4,
                name: "pc".into(),
                ..MapDef::default()
            })
            .unwrap();
        m.update_spread(&1u32.to_ne_bytes(), &[1, 2, 3, 4], BPF_ANY)
            .unwrap();
        // Each worker its own: 3 slots of 8 bytes.
        let mut own = vec![0u8; 24];
        own[8] = 9;
        own[16] = 7;
        m.update_spread(&2u32.to_ne_bytes(), &own, BPF_ANY).unwrap();
        let mut d = m.dump().unwrap();
        d.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].values, vec![vec![1, 2, 3, 4]; 3]);
        assert_eq!(
            d[1].values,
            vec![vec![0, 0, 0, 0], vec![9, 0, 0, 0], vec![7, 0, 0, 0]]
        );
        assert!(m
            .update_spread(&3u32.to_ne_bytes(), &[1, 2], BPF_ANY)
            .is_err());
        assert!(m.update_spread(&[3], &[1, 2, 3, 4], BPF_ANY).is_err());
    }

    #[test]
    fn plain_values_are_dumped_once() {
        let store = Store::anonymous(StoreOptions {
            size: 1 << 20,
            ncpus: Some(2),
        })
        .unwrap();
        let m = store
            .create_map(&MapDef {
                map_type: BPF_MAP_TYPE_HASH,
                key_size: 4,
                value_size: 2,
                max_entries: 4,
                name: "h".into(),
                ..MapDef::default()
            })
            .unwrap();
        m.update_spread(&5u32.to_ne_bytes(), &[5, 6], BPF_ANY)
            .unwrap();
        assert_eq!(m.dump().unwrap()[0].values, vec![vec![5, 6]]);
    }
}
