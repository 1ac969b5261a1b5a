//! LRU_HASH and LRU_PERCPU_HASH: the hash layout of `hash.rs` plus eviction.
//!
//! The kernel keeps approximate LRU lists whose nodes carry a "ref" bit that
//! lookups set; its shrinker gives referenced nodes a second chance. We keep
//! the same approximation as a CLOCK over the element array: a lookup sets
//! `ST_REF` on the element (a plain load first, so hot keys cost no write), and
//! an update that finds no free element advances the clock hand over the
//! elements, clearing `ST_REF` bits, and evicts the first live element whose
//! bit is clear: the least recently used one up to the clock's resolution.
//!
//! # Concurrency
//! - The updater holds the stripe lock of its key's bucket for the whole update.
//! - `lru_lock` (control block offset 16, a pid spinlock) serialises the clock
//!   hand (offset 20, written only under `lru_lock`).
//! - A victim under another stripe is taken with `try_lock` on that stripe
//!   only; a busy stripe is skipped. So no thread ever waits for a second stripe
//!   lock while holding one, and lock order cannot deadlock (stripe -> lru -> try).
//! - Unlinking the victim follows the bucket `seq` protocol of `hash.rs`, so
//!   lock-free lookups walking through it restart.
//!
//! Capacity: exactly `max_entries` elements (the kernel's prealloc LRU), so the
//! map never holds more keys than that, and an update of a new key on a full
//! map always succeeds by evicting (the kernel never returns E2BIG for LRU).

use std::sync::atomic::{AtomicU32, Ordering};

use crate::def::{BPF_EXIST, BPF_NOEXIST};
use crate::error::MapError;
use crate::hash::{Prev, Probe, ST_LIVE, ST_REF};
use crate::lock;
use crate::map::Map;

impl Map {
    #[inline]
    pub(crate) fn lru_lock(&self) -> &AtomicU32 {
        // SAFETY: offset 16 of the 64-byte hash control block, 4-aligned.
        unsafe { AtomicU32::from_ptr(self.data.wrapping_add(16) as *mut u32) }
    }

    #[inline]
    fn clock_hand(&self) -> &AtomicU32 {
        // SAFETY: offset 20 of the 64-byte hash control block, 4-aligned.
        unsafe { AtomicU32::from_ptr(self.data.wrapping_add(20) as *mut u32) }
    }

    /// `lru_update` from a program on worker `cpu`, with the flag check that
    /// `hash_update` does first.
    ///
    /// # Safety
    /// As `lru_update`.
    #[inline(always)]
    pub(crate) unsafe fn lru_prog_update<P: Probe>(
        &self,
        p: P,
        value: *const u8,
        flags: u64,
        cpu: u32,
    ) -> Result<(), MapError> {
        // BPF_F_LOCK (4) needs a bpf_spin_lock in the value, not tracked yet: EINVAL.
        if flags > BPF_EXIST {
            return Err(MapError::InvalidFlags { id: self.id, flags });
        }
        // SAFETY: forwarded caller contract.
        unsafe { self.lru_update(p, value, flags, Some(cpu)) }
    }

    /// htab_lru_map_update_elem / __htab_lru_percpu_map_update_elem.
    ///
    /// # Safety
    /// As `hash_update`, with `p` built from the key.
    pub(crate) unsafe fn lru_update<P: Probe>(
        &self,
        p: P,
        value: *const u8,
        flags: u64,
        cpu: Option<u32>,
    ) -> Result<(), MapError> {
        let percpu = self.kind.is_percpu();
        if let (Some(c), true) = (cpu, percpu) {
            if c >= self.ncpus {
                return Err(MapError::InvalidValue {
                    id: self.id,
                    what: "worker index >= ncpus",
                });
            }
        }
        let b = self.bucket(p);
        let _guard = self.take_lock(self.bucket_lock(b), || {
            format!("stripe lock {}", self.stripe(b))
        })?;
        // SAFETY: caller contract; lock held.
        let old = unsafe { self.find_locked(b, p) }.map_err(|c| self.chain_error(c))?;
        match (&old, flags) {
            (Some(_), BPF_NOEXIST) => return Err(MapError::Exists { id: self.id }),
            (None, BPF_EXIST) => return Err(MapError::NotFound { id: self.id }),
            _ => {}
        }
        if let (Some((o, _)), true) = (old, percpu) {
            // Per-CPU LRU updates in place and marks the element referenced.
            self.e_state(o).fetch_or(ST_REF, Ordering::Relaxed);
            // SAFETY: o < nelems; sizes per contract.
            unsafe { self.write_values(o, value, cpu, false) };
            return Ok(());
        }
        let skip = old.map(|(o, _)| o);
        let (n, old) = match self.pop_free() {
            // Nothing was evicted: the chain is as find_locked saw it.
            Some(n) => (n, old),
            None => {
                let Some(n) = self.lru_evict(b, skip) else {
                    // prealloc_lru_pop failed: only when every element is busy elsewhere.
                    return Err(MapError::NoFreeElement {
                        id: self.id,
                        what: "element",
                        why: "every element is being replaced by another update",
                    });
                };
                // The victim may have been in our bucket, ahead of `old`: find
                // old's link again.
                // SAFETY: caller contract; lock held.
                let old = unsafe { self.find_locked(b, p) }.map_err(|c| self.chain_error(c))?;
                (n, old)
            }
        };
        let odd = self.seq_begin(b);
        // SAFETY: n is ours (popped or evicted); lock held; sizes per contract.
        unsafe { self.init_and_link(self.kind, n, b, p, value, cpu) };
        match old {
            Some((o, prev)) => {
                self.e_state(n).fetch_or(ST_REF, Ordering::Relaxed);
                let prev = match prev {
                    Prev::Head => Prev::Elem(n),
                    p => p,
                };
                let next = self.e_next(o).load(Ordering::Relaxed);
                self.prev_link(b, prev).store(next, Ordering::Release);
                self.e_state(o).store(0, Ordering::Relaxed);
                self.seq_end(b, odd);
                self.push_free(o);
            }
            None => {
                self.count().fetch_add(1, Ordering::AcqRel);
                self.seq_end(b, odd);
            }
        }
        Ok(())
    }

    /// Runs the clock until it evicts an element; returns it, unlinked and owned
    /// by the caller. The caller holds bucket `own`'s lock; `skip` is never evicted.
    fn lru_evict(&self, own: u32, skip: Option<u32>) -> Option<u32> {
        let _lru = self.take_lock(self.lru_lock(), || "LRU lock".into()).ok()?;
        // Someone may have freed an element while we waited.
        if let Some(n) = self.pop_free() {
            return Some(n);
        }
        let n = self.nelems;
        if n == 0 {
            return None;
        }
        let hand = self.clock_hand();
        for _ in 0..(3 * u64::from(n) + 3) {
            let idx = hand.load(Ordering::Relaxed) % n;
            hand.store((idx + 1) % n, Ordering::Relaxed);
            if Some(idx) == skip {
                continue;
            }
            let st = self.e_state(idx);
            let s = st.load(Ordering::Relaxed);
            if s & ST_LIVE == 0 {
                continue;
            }
            if s & ST_REF != 0 {
                st.fetch_and(!ST_REF, Ordering::Relaxed);
                continue;
            }
            let vb = self.elem_bucket(idx);
            let evicted = if self.stripe(vb) == self.stripe(own) {
                self.unlink_elem(vb, idx)
            } else if let Some(_g) = lock::try_lock(self.bucket_lock(vb)) {
                self.unlink_elem(vb, idx)
            } else {
                false
            };
            if evicted {
                // Eviction cancels the element's timer, as a delete does.
                self.timer_reset(idx);
                return Some(idx);
            }
        }
        None
    }

    /// Unlinks element `idx` from bucket `b` if it is there (the caller holds
    /// b's lock) and drops it from the count. The element is then the caller's.
    pub(crate) fn unlink_elem(&self, b: u32, idx: u32) -> bool {
        let mut prev = Prev::Head;
        let mut link = self.head(b).load(Ordering::Acquire);
        let mut steps = 0u32;
        while let Some(i) = self.link_elem(link) {
            if i == idx {
                let odd = self.seq_begin(b);
                let next = self.e_next(i).load(Ordering::Relaxed);
                self.prev_link(b, prev).store(next, Ordering::Release);
                self.e_state(i).store(0, Ordering::Relaxed);
                self.seq_end(b, odd);
                self.release_count();
                return true;
            }
            prev = Prev::Elem(i);
            link = self.e_next(i).load(Ordering::Acquire);
            steps += 1;
            if steps > self.nelems {
                return false;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use crate::def::*;
    use crate::{Map, MapDef, Store, StoreOptions};

    fn lru(t: u32, max: u32, ncpus: u32) -> Map {
        let s = Store::anonymous(StoreOptions {
            size: 4 << 20,
            ncpus: Some(ncpus),
        })
        .expect("store");
        s.create_map(&MapDef {
            map_type: t,
            key_size: 4,
            value_size: 8,
            max_entries: max,
            name: "lru".into(),
            ..MapDef::default()
        })
        .expect("map")
    }

    fn put(m: &Map, k: u32, v: u64) -> Result<(), i32> {
        let val: Vec<u8> = (0..m.user_value_size() / 8)
            .flat_map(|_| v.to_ne_bytes())
            .collect();
        m.update(&k.to_ne_bytes(), &val, BPF_ANY)
            .map_err(|e| e.errno())
    }

    fn has(m: &Map, k: u32) -> bool {
        let mut out = vec![0u8; m.user_value_size()];
        m.lookup(&k.to_ne_bytes(), &mut out).is_ok()
    }

    fn touch(m: &Map, k: u32) {
        // SAFETY: 4-byte key.
        assert!(!unsafe { m.prog_lookup(k.to_ne_bytes().as_ptr(), 0) }.is_null());
    }

    #[test]
    fn evicts_least_recently_used_at_capacity() {
        for t in [BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH] {
            let m = lru(t, 4, 2);
            for k in 1..=4 {
                put(&m, k, k.into()).expect("fill");
            }
            assert_eq!(m.len(), 4);
            // Keys 1 and 3 are used; 2 is the least recently used.
            touch(&m, 1);
            touch(&m, 3);
            touch(&m, 4);
            put(&m, 5, 5).expect("evicts");
            assert_eq!(m.len(), 4);
            assert!(has(&m, 5), "newest key present");
            assert!(!has(&m, 2), "LRU key evicted");
            for k in [1, 3, 4] {
                assert!(has(&m, k), "{t} key {k}");
            }
            // Many more inserts: never above max_entries, newest always present.
            for k in 100..200 {
                put(&m, k, 1).expect("insert");
                assert!(has(&m, k));
                assert!(m.len() <= 4);
                assert!(m.iter().collect::<Result<Vec<_>, _>>().expect("walk").len() <= 4);
            }
            // Flags on a full map.
            assert_eq!(
                m.update(
                    &7u32.to_ne_bytes(),
                    &vec![0; m.user_value_size()],
                    BPF_EXIST
                )
                .map_err(|e| e.errno()),
                Err(libc::ENOENT)
            );
            assert_eq!(
                m.update(
                    &199u32.to_ne_bytes(),
                    &vec![0; m.user_value_size()],
                    BPF_NOEXIST
                )
                .map_err(|e| e.errno()),
                Err(libc::EEXIST)
            );
            assert_eq!(
                m.update(&199u32.to_ne_bytes(), &vec![0; m.user_value_size()], 4)
                    .map_err(|e| e.errno()),
                Err(libc::EINVAL)
            );
        }
    }

    #[test]
    fn replacing_a_key_on_a_full_map_keeps_it() {
        let m = lru(BPF_MAP_TYPE_LRU_HASH, 3, 1);
        for k in 1..=3 {
            put(&m, k, 1).expect("fill");
        }
        put(&m, 2, 22).expect("replace");
        let mut out = [0u8; 8];
        m.lookup(&2u32.to_ne_bytes(), &mut out).expect("present");
        assert_eq!(u64::from_ne_bytes(out), 22);
        assert!(m.len() <= 3);
        m.delete(&2u32.to_ne_bytes()).expect("delete");
        assert!(!has(&m, 2));
        m.check().expect("consistent");
    }

    #[test]
    fn no_prealloc_is_refused_for_lru() {
        let s = Store::anonymous(StoreOptions {
            size: 1 << 20,
            ncpus: Some(1),
        })
        .expect("store");
        let d = MapDef {
            map_type: BPF_MAP_TYPE_LRU_HASH,
            key_size: 4,
            value_size: 8,
            max_entries: 4,
            map_flags: BPF_F_NO_PREALLOC,
            ..MapDef::default()
        };
        assert_eq!(
            s.create_map(&d).map_err(|e| e.errno()).err(),
            Some(crate::error::ENOTSUPP)
        );
    }
}
