//! BLOOM_FILTER maps with the kernel's bloom_filter.c semantics.
//!
//! # Memory
//! The map's data region is the bit set: `bits / 8` bytes, `bits` a power of two
//! (`Geometry::n_buckets`; the handle keeps `bits - 1` as `bucket_mask` and the
//! number of hash functions as `nelems`). Bit `h` is bit `h % 64` of the u64 word
//! `h / 64`, as the kernel's `set_bit`/`test_bit` on its `unsigned long` array.
//!
//! A value sets, for `i` in 0..k, the bit `hash(value, seed + i) & mask`, where
//! hash is the kernel's jhash2 over the value's u32 words when value_size is a
//! multiple of 4, jhash over its bytes otherwise; `seed` is the map's hash seed
//! (0 with `BPF_F_ZERO_SEED`, so such a map sets the kernel's very bits).
//!
//! # Concurrency
//! Bits are only ever set, with an atomic `fetch_or`; a check reads words with
//! atomic loads. No lock.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::def::BPF_ANY;
use crate::error::MapError;
use crate::hash::{jhash, jhash2};
use crate::map::Map;

impl Map {
    /// The word holding bit `h` (h <= bucket_mask, so the word is inside the bit
    /// set).
    fn bloom_word(&self, h: u32) -> &AtomicU64 {
        // SAFETY: h <= bucket_mask = bits - 1, so word h / 64 lies inside the
        // bits / 8 bytes of the data region, which is 64-aligned; store memory is
        // only accessed atomically.
        unsafe { AtomicU64::from_ptr(self.data.wrapping_add((h as usize / 64) * 8) as *mut u64) }
    }

    fn bloom_hash(&self, value: &[u8], i: u32) -> u32 {
        let seed = self.seed.wrapping_add(i);
        let h = if value.len().is_multiple_of(4) {
            jhash2(value, seed)
        } else {
            jhash(value, seed)
        };
        h & self.bucket_mask
    }

    /// `bloom_map_push_elem`: adds `value` (value_size bytes); flags other than
    /// `BPF_ANY` are EINVAL.
    pub(crate) fn bloom_push(&self, value: &[u8], flags: u64) -> Result<(), MapError> {
        if flags != BPF_ANY {
            return Err(MapError::InvalidFlags { id: self.id, flags });
        }
        for i in 0..self.nelems {
            let h = self.bloom_hash(value, i);
            self.bloom_word(h)
                .fetch_or(1 << (h % 64), Ordering::Relaxed);
        }
        Ok(())
    }

    /// `bloom_map_peek_elem`: Ok when `value` may be in the set, ENOENT when it
    /// certainly is not.
    pub(crate) fn bloom_peek(&self, value: &[u8]) -> Result<(), MapError> {
        for i in 0..self.nelems {
            let h = self.bloom_hash(value, i);
            if self.bloom_word(h).load(Ordering::Relaxed) & (1 << (h % 64)) == 0 {
                return Err(MapError::NotFound { id: self.id });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::def::*;
    use crate::{MapDef, Store, StoreOptions};

    fn store() -> Store {
        Store::anonymous(StoreOptions {
            size: 4 << 20,
            ncpus: Some(2),
        })
        .expect("store")
    }

    fn def(v: u32, max: u32, flags: u32) -> MapDef {
        MapDef {
            map_type: BPF_MAP_TYPE_BLOOM_FILTER,
            key_size: 0,
            value_size: v,
            max_entries: max,
            map_flags: flags,
            name: "b".into(),
            ..Default::default()
        }
    }

    #[test]
    fn added_values_are_found_and_others_mostly_not() {
        let s = store();
        for v in [4u32, 6] {
            let m = s.create_map(&def(v, 100, 0)).expect("create");
            for i in 0..100u32 {
                let mut b = vec![0u8; v as usize];
                b[..4].copy_from_slice(&i.to_ne_bytes());
                m.push(&b, BPF_ANY).expect("push");
            }
            for i in 0..100u32 {
                let mut b = vec![0u8; v as usize];
                b[..4].copy_from_slice(&i.to_ne_bytes());
                assert!(m.contains(&b).expect("peek"), "{i} added");
            }
            let false_pos = (1000..2000u32)
                .filter(|i| {
                    let mut b = vec![0u8; v as usize];
                    b[..4].copy_from_slice(&i.to_ne_bytes());
                    m.contains(&b).expect("peek")
                })
                .count();
            // 100 values, 5 hashes, 1024 bits: about 1% false positives.
            assert!(false_pos < 100, "{false_pos} false positives of 1000");
        }
    }

    #[test]
    fn map_extra_sets_the_hash_count_and_is_kept() {
        let s = store();
        let one = s.create_map_extra(&def(4, 64, 0), 1).expect("create");
        let five = s.create_map(&def(4, 64, 0)).expect("create");
        assert_eq!((one.map_extra(), five.map_extra()), (1, 0));
        assert_eq!(s.map_by_id(one.id()).expect("reopen").map_extra(), 1);
        // One hash sets one bit per value, the default five up to five.
        one.push(&7u32.to_ne_bytes(), BPF_ANY).expect("push");
        five.push(&7u32.to_ne_bytes(), BPF_ANY).expect("push");
        let bits = |m: &crate::Map| -> u32 {
            (0..=m.bucket_mask / 64)
                .map(|w| {
                    m.bloom_word(w * 64)
                        .load(std::sync::atomic::Ordering::Relaxed)
                        .count_ones()
                })
                .sum()
        };
        assert_eq!(bits(&one), 1);
        assert!(bits(&five) > 1, "{}", bits(&five));
    }

    #[test]
    fn creation_checks_follow_the_kernel() {
        let s = store();
        let errno = |d: MapDef, extra: u64| {
            s.create_map_extra(&d, extra)
                .err()
                .map(|e| e.errno())
                .unwrap_or(0)
        };
        assert_eq!(errno(def(4, 1, 0), 0), 0);
        assert_eq!(errno(def(4, 1, 0), 15), 0);
        assert_eq!(errno(def(4, 1, 0), 16), libc::EINVAL);
        assert_eq!(errno(def(0, 1, 0), 0), libc::EINVAL);
        assert_eq!(errno(def(4, 0, 0), 0), libc::EINVAL);
        assert_eq!(errno(def(4, 1, BPF_F_NO_PREALLOC), 0), libc::EINVAL);
        assert_eq!(errno(def(4, 1, BPF_F_ZERO_SEED), 0), 0);
        let mut keyed = def(4, 1, 0);
        keyed.key_size = 4;
        assert_eq!(errno(keyed, 0), libc::EINVAL);
        // map_extra belongs to bloom filters only.
        let mut arr = def(4, 1, 0);
        arr.map_type = BPF_MAP_TYPE_ARRAY;
        arr.key_size = 4;
        assert_eq!(errno(arr, 3), libc::EINVAL);
        let m = s.create_map(&def(4, 1, 0)).expect("create");
        assert_eq!(
            m.push(&[0; 4], BPF_EXIST).map_err(|e| e.errno()),
            Err(libc::EINVAL)
        );
    }
}
