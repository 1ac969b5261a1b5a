//! Consistency checks and crash repair of map memory (see the recovery rule in
//! `lock.rs`).

use std::sync::atomic::Ordering;

use crate::def::Kind;
use crate::error::MapError;
use crate::hash::{nulls, Prev, ST_LIVE, TAG_ELEM, TAG_FREE};
use crate::lock::PidLockGuard;
use crate::map::Map;

/// What a walk of a hash map found.
struct HashScan {
    chained: u32,
    free: u32,
    /// Elements parked in a stripe's slot (see hash.rs, "Parked elements").
    parked: u32,
    in_chain: Vec<bool>,
    in_free: Vec<bool>,
}

impl Map {
    fn corrupt(&self, what: String) -> MapError {
        MapError::Corrupt { id: self.id, what }
    }

    /// Checks the map's memory: for hash maps every chain is acyclic, ends on its
    /// own bucket's nulls marker, holds elements of that bucket only, no element
    /// is in two chains or both chained and free, the count equals the chained
    /// elements, every element is chained, free or never used, every `seq` is
    /// even; for LPM tries the tree is well formed and its entry count right.
    /// Run after [`Map::repair`] when a writer may have died (see `lock.rs`).
    pub fn check(&self) -> Result<(), MapError> {
        // The timer wheel, when the map has timers (`timer.rs`).
        self.check_timers()?;
        match self.kind {
            k if k.is_hash() => {
                let _locks = self.lock_all()?;
                self.check_hash_locked()
            }
            Kind::LpmTrie => {
                let _g = self.take_lock(self.lpm_lock(), || "trie lock".into())?;
                self.check_lpm_locked(false).map(|_| ())
            }
            _ => Ok(()),
        }
    }

    /// Repairs what a writer that died mid-update leaves behind: takes every
    /// lock of the map (taking over dead owners), returns leaked elements to
    /// the free list, recomputes counts and evens every bucket `seq`. Returns
    /// how many leaked elements or nodes were reclaimed. Structural corruption
    /// (which no crash can cause) is reported, not repaired.
    pub fn repair(&self) -> Result<u32, MapError> {
        // The timer wheel's lists are rebuilt from the timers' state.
        self.timer_rebuild()?;
        match self.kind {
            k if k.is_hash() => {
                let _locks = self.lock_all()?;
                let scan = self.scan_hash(true)?;
                // Parked elements go back to the free list (a writer may have
                // died between taking one and linking it: then the slot is
                // empty and the element is a leak, reclaimed below).
                for s in 0..=self.stripe_mask {
                    let link = self.stripe_parked(s).swap(0, Ordering::AcqRel);
                    if link != 0 && link <= self.fresh().load(Ordering::Relaxed) {
                        self.push_free(link - 1);
                    }
                }
                let mut reclaimed = 0;
                let fresh = self.fresh().load(Ordering::Relaxed).min(self.nelems);
                for idx in 0..fresh {
                    let i = idx as usize;
                    if !scan.in_chain[i] && !scan.in_free[i] {
                        if self.kind.is_lru() {
                            self.e_state(idx).store(0, Ordering::Relaxed);
                        }
                        self.push_free(idx);
                        reclaimed += 1;
                    }
                }
                self.count().store(scan.chained, Ordering::Release);
                for s in 0..=self.stripe_mask {
                    let seq = self.stripe_seq(s);
                    let v = seq.load(Ordering::Relaxed);
                    if v & 1 == 1 {
                        seq.store(v.wrapping_add(1), Ordering::Release);
                    }
                }
                self.check_hash_locked()?;
                self.clear_dirty();
                Ok(reclaimed)
            }
            Kind::LpmTrie => {
                let _g = self.take_lock(self.lpm_lock(), || "trie lock".into())?;
                let reclaimed = self.check_lpm_locked(true)?;
                self.clear_dirty();
                Ok(reclaimed)
            }
            _ => Ok(0),
        }
    }

    /// Every stripe lock, in order (plus the LRU lock). Holding them all stops
    /// every writer, including free-list pops and pushes.
    fn lock_all(&self) -> Result<Vec<PidLockGuard<'_>>, MapError> {
        let mut v = Vec::with_capacity(self.stripe_mask as usize + 2);
        for s in 0..=self.stripe_mask {
            v.push(self.take_lock(self.stripe_lock(s), || format!("stripe lock {s}"))?);
        }
        if self.kind.is_lru() {
            v.push(self.take_lock(self.lru_lock(), || "LRU lock".into())?);
        }
        Ok(v)
    }

    /// Clears the repair mark (the caller holds every lock of the map and has
    /// just repaired it).
    fn clear_dirty(&self) {
        if let Some(w) = self.dirty_word() {
            w.store(0, Ordering::Release);
        }
    }

    /// Walks every chain and the free list. With `fix` (the caller holds every
    /// lock), an element whose key an earlier element of its chain already
    /// holds is unlinked: a replacement links the new element at the head
    /// before it unlinks the old one, and a writer killed in between leaves
    /// both (the stale copy would come back when the new one is deleted).
    fn scan_hash(&self, fix: bool) -> Result<HashScan, MapError> {
        let n = self.nelems as usize;
        let mut in_chain = vec![false; n];
        let mut in_free = vec![false; n];
        let mut chained = 0u32;
        let mut keys = std::collections::HashSet::new();
        let mut key = vec![0u8; self.key_size as usize];
        for b in 0..=self.bucket_mask {
            keys.clear();
            let mut prev = Prev::Head;
            let mut link = self.head(b).load(Ordering::Acquire);
            while link != 0 && link & 3 == TAG_ELEM {
                let idx = self.link_elem(link).ok_or_else(|| {
                    self.corrupt(format!("bucket {b}: link {link:#x} out of range"))
                })?;
                if in_chain[idx as usize] {
                    return Err(self.corrupt(format!("element {idx} chained twice (or a cycle)")));
                }
                self.load_elem_key(idx, &mut key);
                if !keys.insert(key.clone()) {
                    if !fix {
                        return Err(self.corrupt(format!(
                            "bucket {b}: element {idx} repeats a key of its chain"
                        )));
                    }
                    let next = self.e_next(idx).load(Ordering::Acquire);
                    let odd = self.seq_begin(b);
                    self.prev_link(b, prev).store(next, Ordering::Release);
                    self.seq_end(b, odd);
                    link = next;
                    continue; // now leaked: returned to the free list by repair
                }
                in_chain[idx as usize] = true;
                chained += 1;
                prev = Prev::Elem(idx);
                let kb = self.elem_bucket(idx);
                if kb != b {
                    return Err(self.corrupt(format!(
                        "element {idx} in bucket {b}, its key hashes to {kb}"
                    )));
                }
                if self.kind.is_lru() && self.e_state(idx).load(Ordering::Relaxed) & ST_LIVE == 0 {
                    return Err(self.corrupt(format!("chained element {idx} not marked live")));
                }
                link = self.e_next(idx).load(Ordering::Acquire);
            }
            if link != 0 && link != nulls(b) {
                return Err(self.corrupt(format!("bucket {b} ends on link {link:#x}")));
            }
        }
        let fresh = self.fresh().load(Ordering::Relaxed);
        if fresh > self.nelems {
            return Err(self.corrupt(format!("fresh {fresh} > {}", self.nelems)));
        }
        let mut free = 0u32;
        let mut top = self.free_head().load(Ordering::Acquire) as u32;
        while top != 0 {
            let idx = top - 1;
            if idx >= fresh {
                return Err(self.corrupt(format!("free element {idx} beyond fresh {fresh}")));
            }
            if in_free[idx as usize] || in_chain[idx as usize] {
                return Err(
                    self.corrupt(format!("free element {idx} is also chained or free twice"))
                );
            }
            in_free[idx as usize] = true;
            free += 1;
            let link = self.e_next(idx).load(Ordering::Relaxed);
            if link & 3 != TAG_FREE {
                return Err(self.corrupt(format!("free element {idx} has link {link:#x}")));
            }
            top = link >> 2;
        }
        let mut parked = 0u32;
        for s in 0..=self.stripe_mask {
            let link = self.stripe_parked(s).load(Ordering::Relaxed);
            if link == 0 {
                continue;
            }
            let idx = link - 1;
            if idx >= fresh {
                return Err(self.corrupt(format!(
                    "stripe {s}: parked element {idx} beyond fresh {fresh}"
                )));
            }
            if in_free[idx as usize] || in_chain[idx as usize] {
                return Err(self.corrupt(format!(
                    "stripe {s}: parked element {idx} is also chained, free or parked"
                )));
            }
            // Marked as free for the caller's "accounted for" test; counted apart.
            in_free[idx as usize] = true;
            parked += 1;
        }
        Ok(HashScan {
            chained,
            free,
            parked,
            in_chain,
            in_free,
        })
    }

    fn check_hash_locked(&self) -> Result<(), MapError> {
        let scan = self.scan_hash(false)?;
        let fresh = self.fresh().load(Ordering::Relaxed);
        if scan.chained + scan.free + scan.parked != fresh {
            return Err(self.corrupt(format!(
                "{} chained + {} free + {} parked != {fresh} used elements (leak)",
                scan.chained, scan.free, scan.parked
            )));
        }
        let count = self.count().load(Ordering::Relaxed);
        if count != scan.chained {
            return Err(self.corrupt(format!("count {count}, {} chained", scan.chained)));
        }
        if count > self.nelems {
            return Err(self.corrupt(format!("count {count} above capacity")));
        }
        for s in 0..=self.stripe_mask {
            if self.stripe_seq(s).load(Ordering::Relaxed) & 1 == 1 {
                return Err(self.corrupt(format!("lock stripe {s} seq left odd")));
            }
        }
        Ok(())
    }

    /// Checks (and with `fix`, repairs leaks and the count of) an LPM trie; the
    /// caller holds its lock. Returns the nodes reclaimed.
    fn check_lpm_locked(&self, fix: bool) -> Result<u32, MapError> {
        let mut mark = vec![false; self.nelems as usize];
        let entries = self
            .lpm_walk_all(&mut mark)
            .map_err(|w| self.corrupt(format!("lpm trie: {w}")))?;
        let fresh = self.lpm_fresh().load(Ordering::Relaxed).min(self.nelems);
        let mut free = vec![false; self.nelems as usize];
        let mut link = self.lpm_free_head().load(Ordering::Relaxed);
        let mut steps = 0;
        while let Some(idx) = self.lpm_link(link) {
            if mark[idx as usize] || free[idx as usize] || steps > self.nelems {
                return Err(self.corrupt(format!("lpm node {idx} both free and used (or a cycle)")));
            }
            free[idx as usize] = true;
            steps += 1;
            link = self.n_child(idx, 0).load(Ordering::Relaxed);
        }
        let mut reclaimed = 0;
        for idx in 0..fresh {
            if !mark[idx as usize] && !free[idx as usize] {
                if !fix {
                    return Err(self.corrupt(format!("lpm node {idx} leaked")));
                }
                self.lpm_free(idx);
                reclaimed += 1;
            }
        }
        if entries > self.max_entries {
            return Err(self.corrupt(format!(
                "lpm trie holds {entries} entries, max_entries {}",
                self.max_entries
            )));
        }
        let n = self.lpm_n_entries().load(Ordering::Relaxed);
        if n != entries {
            if !fix {
                return Err(self.corrupt(format!("lpm n_entries {n}, {entries} in the tree")));
            }
            self.lpm_n_entries().store(entries, Ordering::Relaxed);
        }
        let seq = self.lpm_seq().load(Ordering::Relaxed);
        if seq & 1 == 1 {
            if !fix {
                return Err(self.corrupt("lpm seq left odd".into()));
            }
            self.lpm_seq().store(seq.wrapping_add(1), Ordering::Release);
        }
        Ok(reclaimed)
    }
}

impl crate::Store {
    /// Repairs every map a writer may have died inside ([`Map::needs_repair`]:
    /// a lock taken over from a dead owner since the last repair, or a lock
    /// word naming a dead process). Runs when a store is opened; cheap when no
    /// writer died (a look at each map's lock words). Returns the elements
    /// reclaimed; a map whose repair fails (corrupt, or a lock held past the
    /// wait bound) is left as it is: its operations report the problem.
    pub fn recover(&self) -> u32 {
        self.map_ids()
            .into_iter()
            .filter_map(|id| self.map_by_id(id).ok())
            .filter_map(|m| m.recover().ok())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use crate::def::*;
    use crate::{MapDef, MapError, Store, StoreOptions};

    /// A pid no process has: a child that exited and was reaped.
    fn dead_pid() -> Option<u32> {
        let mut c = std::process::Command::new("true").spawn().ok()?;
        let pid = c.id();
        c.wait().ok()?;
        Some(pid)
    }

    #[test]
    fn opening_a_store_repairs_what_a_dead_writer_left() {
        let Some(dead) = dead_pid() else {
            println!("SKIP: cannot spawn `true`");
            return;
        };
        let name = format!("maps-check-recover-{}", std::process::id());
        let s = Store::create(
            &name,
            StoreOptions {
                size: 4 << 20,
                ncpus: Some(2),
            },
        )
        .expect("create");
        let def = |map_type, key_size, map_flags| MapDef {
            map_type,
            key_size,
            value_size: 8,
            max_entries: 8,
            map_flags,
            name: "m".into(),
            ..MapDef::default()
        };
        let h = s.create_map(&def(BPF_MAP_TYPE_HASH, 4, 0)).expect("hash");
        let t = s
            .create_map(&def(BPF_MAP_TYPE_LPM_TRIE, 8, BPF_F_NO_PREALLOC))
            .expect("lpm");
        // A writer killed inside an insert into each: an element counted and
        // popped but never linked, a trie node allocated and counted but never
        // linked, and the locks still naming the dead writer.
        h.count().fetch_add(1, Ordering::Relaxed);
        assert!(h.pop_free().is_some());
        h.bucket_lock(3).store(dead, Ordering::Relaxed);
        t.lpm_fresh().fetch_add(1, Ordering::Relaxed);
        t.lpm_n_entries().fetch_add(1, Ordering::Relaxed);
        t.lpm_lock().store(dead, Ordering::Relaxed);
        assert!(h.needs_repair() && t.needs_repair());
        drop((h, t, s));

        let s = Store::open(&name).expect("open");
        let _ = Store::unlink(&name);
        s.check().expect("repaired on open");
        let ids = s.map_ids();
        let (h, t) = (
            s.map_by_id(ids[0]).expect("h"),
            s.map_by_id(ids[1]).expect("t"),
        );
        assert!(!h.needs_repair() && !t.needs_repair());
        for i in 0..8u32 {
            h.update(&i.to_ne_bytes(), &[0; 8], BPF_NOEXIST)
                .unwrap_or_else(|e| panic!("hash entry {}: {e}", i + 1));
            let mut k = [0u8; 8];
            k[..4].copy_from_slice(&32u32.to_ne_bytes());
            k[4..].copy_from_slice(&i.to_be_bytes());
            t.update(&k, &[0; 8], BPF_NOEXIST)
                .unwrap_or_else(|e| panic!("lpm entry {}: {e}", i + 1));
        }
        assert!(matches!(
            h.update(&9u32.to_ne_bytes(), &[0; 8], BPF_NOEXIST),
            Err(MapError::TooBig { .. })
        ));
        let mut k = [0u8; 8];
        k[..4].copy_from_slice(&32u32.to_ne_bytes());
        k[4..].copy_from_slice(&99u32.to_be_bytes());
        assert!(matches!(
            t.update(&k, &[0; 8], BPF_NOEXIST),
            Err(MapError::NoSpaceLeft { .. })
        ));
    }
}
