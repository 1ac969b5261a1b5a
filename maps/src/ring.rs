//! RINGBUF and the per-slot rings of PERF_EVENT_ARRAY: producers in programs,
//! consumers in any process that opens the store.
//!
//! # RINGBUF memory (inside the map's data region, 4096-aligned)
//! ```text
//! 0     consumer_pos u64   written by the consumer only (Release)
//! 4096  producer_pos u64   written by producers under `lock` (Release)
//! 4104  lock u32           pid spinlock serialising producers
//! 8192  data               max_entries bytes (a power of two)
//! ```
//! Records are the kernel's: an 8-byte header `{ len: u32, pg_off: u32 }`
//! where `len` carries BPF_RINGBUF_BUSY_BIT (bit 31) while reserved and
//! BPF_RINGBUF_DISCARD_BIT (bit 30) when discarded, then the data, padded to
//! 8 bytes. The kernel maps the data twice so a record may wrap; here a record
//! never wraps: a producer that would cross the end first fills the rest of
//! the ring with a discarded record. Positions only grow; `pos & (size - 1)`
//! is the offset.
//!
//! # PERF_EVENT_ARRAY
//! Each slot `i` has a ring of [`PERF_RING_SIZE`](crate::PERF_RING_SIZE) bytes
//! after the slot table: header `{ head u64 (producer), tail u64 (consumer),
//! lost u64, lock u32 }` (64 bytes) then the data, with the same records
//! (no busy bit: a record is written whole under the lock before `head`
//! moves). A full ring drops the record and counts it in `lost`, as perf does.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::def::{self, Kind};
use crate::error::MapError;
use crate::lock;
use crate::map::Map;
use crate::mem;

/// Record header bit: reserved, not yet committed.
pub const BPF_RINGBUF_BUSY_BIT: u32 = 1 << 31;
/// Record header bit: discarded (skipped by consumers).
pub const BPF_RINGBUF_DISCARD_BIT: u32 = 1 << 30;
/// Record header size.
pub const BPF_RINGBUF_HDR_SZ: u64 = 8;

/// `bpf_perf_event_output` flag bits naming the slot (all ones: the current CPU).
pub const BPF_F_INDEX_MASK: u64 = 0xffff_ffff;
/// `bpf_perf_event_output` index meaning "the running worker's slot".
pub const BPF_F_CURRENT_CPU: u64 = BPF_F_INDEX_MASK;

/// Copies the concatenation of `parts` into store memory at `dst`, word by word
/// and without allocating; the last word's bytes past the end are written as zero.
///
/// # Safety
/// As [`mem::store_words`] for the parts' total length.
unsafe fn store_parts(dst: *mut u8, parts: &[&[u8]]) {
    let mut word = [0u8; 8];
    let mut fill = 0;
    let mut off = 0;
    for part in parts {
        let mut p: &[u8] = part;
        while !p.is_empty() {
            if fill == 0 && p.len() >= 8 {
                let n = p.len() / 8 * 8;
                // SAFETY: [off, off + n) is inside the destination, off is 8-aligned.
                unsafe { mem::store_words(dst.add(off), p.as_ptr(), n) };
                off += n;
                p = &p[n..];
                continue;
            }
            let take = (8 - fill).min(p.len());
            word[fill..fill + take].copy_from_slice(&p[..take]);
            fill += take;
            p = &p[take..];
            if fill == 8 {
                // SAFETY: as above, one whole word.
                unsafe { mem::store_words(dst.add(off), word.as_ptr(), 8) };
                off += 8;
                fill = 0;
            }
        }
    }
    if fill > 0 {
        // SAFETY: the last, partly used word; store_words zero-fills past `fill`.
        unsafe { mem::store_words(dst.add(off), word.as_ptr(), fill) };
    }
}

/// Why a record was not written.
enum RingErr {
    /// No room for a record of this many bytes.
    Full(u64),
    /// The producer lock stayed held.
    Lock(lock::LockHeld),
}

/// Where one ring lives: its positions, lock and data.
#[derive(Clone, Copy)]
struct Ring {
    prod: *mut u8,
    cons: *mut u8,
    lock: *mut u8,
    lost: Option<*mut u8>,
    data: *mut u8,
    size: u64,
}

impl Ring {
    fn a64(p: *mut u8) -> &'static AtomicU64 {
        // SAFETY: every pointer in a Ring is an 8-aligned word inside the map's data
        // region, which outlives every use (the Map holds the mapping); the 'static
        // is confined to this module's short-lived uses.
        unsafe { AtomicU64::from_ptr(p as *mut u64) }
    }
    fn prod(&self) -> &AtomicU64 {
        Self::a64(self.prod)
    }
    fn cons(&self) -> &AtomicU64 {
        Self::a64(self.cons)
    }
    fn lock(&self) -> &AtomicU32 {
        // SAFETY: as in a64, 4-aligned.
        unsafe { AtomicU32::from_ptr(self.lock as *mut u32) }
    }
    fn hdr(&self, pos: u64) -> &AtomicU32 {
        let off = (pos & (self.size - 1)) as usize;
        // SAFETY: off < size and 8-aligned (positions advance by multiples of 8).
        unsafe { AtomicU32::from_ptr(self.data.add(off) as *mut u32) }
    }
    fn at(&self, pos: u64) -> *mut u8 {
        self.data.wrapping_add((pos & (self.size - 1)) as usize)
    }

    /// Reserves `len` bytes; returns the record's position. Caller holds the lock.
    fn reserve_locked(&self, len: u32) -> Option<u64> {
        let total = def::round_up(u64::from(len) + BPF_RINGBUF_HDR_SZ, 8);
        if total > self.size {
            return None;
        }
        let cons = self.cons().load(Ordering::Acquire);
        let mut prod = self.prod().load(Ordering::Relaxed);
        let room_to_end = self.size - (prod & (self.size - 1));
        let pad = if total > room_to_end { room_to_end } else { 0 };
        // As the kernel: the producer may run at most size - 1 bytes ahead of the
        // consumer, so a ring is full one record before its bytes are all used.
        // Positions from the store are checked: a consumer ahead of the producer
        // (or positions near the end of u64) read as a full ring, never overflow.
        match prod
            .checked_add(pad + total)
            .and_then(|end| end.checked_sub(cons))
        {
            Some(used) if used < self.size => {}
            _ => return None,
        }
        if pad > 0 {
            // A discarded filler up to the end, so the record does not wrap.
            self.hdr(prod).store(
                (pad - BPF_RINGBUF_HDR_SZ) as u32 | BPF_RINGBUF_DISCARD_BIT,
                Ordering::Relaxed,
            );
            prod += pad;
        }
        self.hdr(prod)
            .store(len | BPF_RINGBUF_BUSY_BIT, Ordering::Relaxed);
        let pg_off = ((prod & (self.size - 1)) / 4096) as u32;
        // SAFETY: the pg_off word follows the len word inside the 8-byte header.
        unsafe { AtomicU32::from_ptr(self.at(prod).add(4) as *mut u32) }
            .store(pg_off, Ordering::Relaxed);
        self.prod().store(prod + total, Ordering::Release);
        Some(prod)
    }

    fn commit(&self, pos: u64, len: u32, discard: bool) {
        let v = if discard {
            len | BPF_RINGBUF_DISCARD_BIT
        } else {
            len
        };
        self.hdr(pos).store(v, Ordering::Release);
    }

    fn output(&self, parts: &[&[u8]]) -> Result<(), RingErr> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let Ok(len32) = u32::try_from(len) else {
            return Err(RingErr::Full(len as u64));
        };
        if len32 >= BPF_RINGBUF_DISCARD_BIT {
            return Err(RingErr::Full(len as u64));
        }
        let pos = {
            let _g = lock::lock(self.lock()).map_err(RingErr::Lock)?;
            self.reserve_locked(len32)
                .ok_or(RingErr::Full(len as u64))?
        };
        // SAFETY: the record [pos, pos + 8 + len) lies inside the data area (no
        // wrap, see reserve_locked) and is ours until committed.
        unsafe { store_parts(self.at(pos).add(BPF_RINGBUF_HDR_SZ as usize), parts) };
        self.commit(pos, len32, false);
        Ok(())
    }

    /// Consumes committed records in order, up to the first busy one. The
    /// walk is bounded by the ring: the producer can never be a whole ring
    /// ahead of the consumer, nor behind it, and a record never runs past the
    /// producer; positions or a header that say otherwise are corruption (an
    /// error, not a stream of garbage records).
    fn consume(&self, f: &mut dyn FnMut(&[u8]), max: usize) -> Result<usize, String> {
        let mut cons = self.cons().load(Ordering::Relaxed);
        let prod = self.prod().load(Ordering::Acquire);
        match prod.checked_sub(cons) {
            Some(ahead) if ahead < self.size => {}
            _ => {
                return Err(format!(
                    "producer position {prod} and consumer position {cons} are not within \
                     the ring's {} bytes",
                    self.size
                ))
            }
        }
        let mut n = 0;
        let mut buf = Vec::new();
        while cons < prod && n < max {
            let h = self.hdr(cons).load(Ordering::Acquire);
            if h & BPF_RINGBUF_BUSY_BIT != 0 {
                break;
            }
            let len = h & !(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
            let total = def::round_up(u64::from(len) + BPF_RINGBUF_HDR_SZ, 8);
            if total > prod - cons {
                return Err(format!(
                    "record at position {cons} of {len} bytes runs past the producer position {prod}"
                ));
            }
            if h & BPF_RINGBUF_DISCARD_BIT == 0 {
                buf.clear();
                buf.resize(len as usize, 0);
                // SAFETY: the record lies inside the data area (records never wrap).
                unsafe { mem::load_words(&mut buf, self.at(cons).add(8)) };
                f(&buf);
                n += 1;
            }
            cons += total;
            self.cons().store(cons, Ordering::Release);
        }
        Ok(n)
    }

    fn pending(&self) -> u64 {
        self.prod()
            .load(Ordering::Acquire)
            .saturating_sub(self.cons().load(Ordering::Acquire))
    }
}

impl Map {
    fn ringbuf(&self) -> Option<Ring> {
        if self.kind != Kind::RingBuf {
            return None;
        }
        Some(Ring {
            cons: self.data,
            prod: self.data.wrapping_add(4096),
            lock: self.data.wrapping_add(4104),
            lost: None,
            data: self.data.wrapping_add(def::RINGBUF_HDR as usize),
            size: u64::from(self.max_entries),
        })
    }

    fn perf_ring(&self, idx: u32) -> Option<Ring> {
        if self.kind != Kind::PerfEventArray || idx >= self.max_entries {
            return None;
        }
        let base = self.elems.wrapping_add(idx as usize * self.elem_size);
        Some(Ring {
            prod: base,
            cons: base.wrapping_add(8),
            lost: Some(base.wrapping_add(16)),
            lock: base.wrapping_add(24),
            data: base.wrapping_add(def::PERF_SLOT_HDR as usize),
            size: def::PERF_RING_SIZE,
        })
    }

    /// `bpf_ringbuf_output`: appends one record made of `parts`. Errors with
    /// `RingFull` when there is no room (the helper's -EAGAIN).
    pub fn ringbuf_output(&self, parts: &[&[u8]]) -> Result<(), MapError> {
        let r = self
            .ringbuf()
            .ok_or_else(|| self.not_supported("ringbuf output"))?;
        r.output(parts).map_err(|e| match e {
            RingErr::Full(need) => MapError::RingFull { id: self.id, need },
            RingErr::Lock(h) => h.to_map_error(self.id, self.lock_name("producer lock".into())),
        })
    }

    /// `bpf_ringbuf_reserve`: reserves `len` bytes and returns a pointer to them
    /// (contiguous, 8-aligned), or null when the ring is full. The record stays
    /// busy (consumers stop at it) until [`Map::ringbuf_commit`].
    pub fn ringbuf_reserve(&self, len: u32) -> *mut u8 {
        let Some(r) = self.ringbuf() else {
            return std::ptr::null_mut();
        };
        if len >= BPF_RINGBUF_DISCARD_BIT {
            return std::ptr::null_mut();
        }
        // A producer lock held past the wait bound reads as a full ring.
        let Ok(_g) = lock::lock(r.lock()) else {
            return std::ptr::null_mut();
        };
        match r.reserve_locked(len) {
            Some(pos) => r.at(pos).wrapping_add(BPF_RINGBUF_HDR_SZ as usize),
            None => std::ptr::null_mut(),
        }
    }

    /// `bpf_ringbuf_submit` (or `_discard` with `discard`) of a pointer that
    /// [`Map::ringbuf_reserve`] returned. False if `p` is not such a pointer.
    pub fn ringbuf_commit(&self, p: *mut u8, discard: bool) -> bool {
        let Some(r) = self.ringbuf() else {
            return false;
        };
        let off = (p as usize).wrapping_sub(r.data as usize + BPF_RINGBUF_HDR_SZ as usize);
        if off as u64 >= r.size || !off.is_multiple_of(8) {
            return false;
        }
        let h = r.hdr(off as u64).load(Ordering::Acquire);
        if h & BPF_RINGBUF_BUSY_BIT == 0 {
            return false;
        }
        r.commit(off as u64, h & !BPF_RINGBUF_BUSY_BIT, discard);
        true
    }

    /// Consumes up to `max` committed ringbuf records in order, calling `f` with
    /// each one's bytes; returns how many. Any process that opened the store may
    /// consume (one consumer at a time, as with the kernel's ring buffer).
    /// Corrupt positions or records are a `MapError::Corrupt`.
    pub fn ringbuf_consume(&self, max: usize, mut f: impl FnMut(&[u8])) -> Result<usize, MapError> {
        match self.ringbuf() {
            Some(r) => r
                .consume(&mut f, max)
                .map_err(|w| self.ring_corrupt("ring buffer", w)),
            None => Ok(0),
        }
    }

    #[cold]
    fn ring_corrupt(&self, which: &str, what: String) -> MapError {
        MapError::Corrupt {
            id: self.id,
            what: format!("{:?}: {which}: {what}", self.meta.info.name),
        }
    }

    /// Bytes produced and not yet consumed (`BPF_RB_AVAIL_DATA`).
    pub fn ringbuf_avail(&self) -> u64 {
        self.ringbuf().map(|r| r.pending()).unwrap_or(0)
    }

    /// `bpf_perf_event_output` into slot `index` (or worker `cpu`'s slot when
    /// `index` is BPF_F_CURRENT_CPU). E2BIG for an index out of range, ENOENT
    /// for a slot with no event; a full ring drops the record, counts it in
    /// [`Map::perf_lost`] and returns `RingFull`.
    pub fn perf_output(&self, index: u64, cpu: u32, parts: &[&[u8]]) -> Result<(), MapError> {
        if self.kind != Kind::PerfEventArray {
            return Err(self.not_supported("perf event output"));
        }
        let idx = if index & BPF_F_INDEX_MASK == BPF_F_CURRENT_CPU {
            cpu
        } else {
            (index & BPF_F_INDEX_MASK) as u32
        };
        if idx >= self.max_entries {
            return Err(MapError::TooBig {
                id: self.id,
                max_entries: self.max_entries,
            });
        }
        if self.slot_get(idx).is_none() {
            return Err(MapError::NotFound { id: self.id });
        }
        let r = self
            .perf_ring(idx)
            .ok_or(MapError::NotFound { id: self.id })?;
        r.output(parts).map_err(|e| match e {
            RingErr::Full(need) => {
                if let Some(l) = r.lost {
                    Ring::a64(l).fetch_add(1, Ordering::Relaxed);
                }
                MapError::RingFull { id: self.id, need }
            }
            RingErr::Lock(h) => {
                h.to_map_error(self.id, self.lock_name(format!("perf slot {idx} lock")))
            }
        })
    }

    /// Consumes up to `max` records of perf slot `index`; returns how many.
    /// Corrupt positions or records are a `MapError::Corrupt`.
    pub fn perf_consume(
        &self,
        index: u32,
        max: usize,
        mut f: impl FnMut(&[u8]),
    ) -> Result<usize, MapError> {
        match self.perf_ring(index) {
            Some(r) => r
                .consume(&mut f, max)
                .map_err(|w| self.ring_corrupt(&format!("perf slot {index}"), w)),
            None => Ok(0),
        }
    }

    /// Records dropped because perf slot `index`'s ring was full.
    pub fn perf_lost(&self, index: u32) -> u64 {
        self.perf_ring(index)
            .and_then(|r| r.lost)
            .map(|l| Ring::a64(l).load(Ordering::Relaxed))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::def::*;
    use crate::{MapDef, Store, StoreOptions};

    fn store() -> Store {
        Store::anonymous(StoreOptions {
            size: 4 << 20,
            ncpus: Some(2),
        })
        .expect("store")
    }

    #[test]
    fn a_ring_is_full_one_byte_before_its_size_and_parts_are_gathered() {
        let s = store();
        let m = s
            .create_map(&MapDef {
                map_type: BPF_MAP_TYPE_RINGBUF,
                max_entries: 4096,
                name: "rb".into(),
                ..MapDef::default()
            })
            .expect("ringbuf");
        // Records of 1016 + 8 bytes: the kernel takes three (the producer may not
        // get 4096 bytes ahead of the consumer) and refuses the fourth.
        let rec = [7u8; 1016];
        for i in 0..3 {
            m.ringbuf_output(&[&rec])
                .unwrap_or_else(|e| panic!("{i}: {e}"));
        }
        assert_eq!(
            m.ringbuf_output(&[&rec]).map_err(|e| e.errno()),
            Err(libc::EAGAIN)
        );
        assert_eq!(m.ringbuf_consume(usize::MAX, |_| {}), Ok(3));
        // A record of several parts of odd lengths arrives as their concatenation.
        let parts: [&[u8]; 4] = [&[1, 2, 3], &[4; 13], &[], &[5, 6, 7, 8, 9, 10, 11, 12, 13]];
        let want: Vec<u8> = parts.concat();
        m.ringbuf_output(&parts).expect("room");
        let mut got = Vec::new();
        m.ringbuf_consume(1, |r| got = r.to_vec()).expect("consume");
        assert_eq!(got, want);
    }

    #[test]
    fn ringbuf_records_in_order_with_wrap_and_discard() {
        let s = store();
        let bad = MapDef {
            map_type: BPF_MAP_TYPE_RINGBUF,
            max_entries: 4096 + 1,
            name: "rb".into(),
            ..MapDef::default()
        };
        assert_eq!(
            s.create_map(&bad).map_err(|e| e.errno()).err(),
            Some(libc::EINVAL)
        );
        let m = s
            .create_map(&MapDef {
                max_entries: 4096,
                ..bad
            })
            .expect("ringbuf");
        let mut got = Vec::new();
        for round in 0..50u32 {
            // 1000-byte records: four fit; the fifth waits for the consumer.
            for i in 0..3u32 {
                let rec = vec![(round * 3 + i) as u8; 1000];
                m.ringbuf_output(&[&rec]).expect("room");
            }
            let p = m.ringbuf_reserve(16);
            assert!(!p.is_null());
            assert_eq!(p as usize % 8, 0);
            assert!(m.ringbuf_commit(p, true), "discard");
            assert!(!m.ringbuf_commit(p, false), "not twice");
            m.ringbuf_consume(usize::MAX, |r| got.push((r.len(), r[0])))
                .expect("consume");
        }
        assert_eq!(got.len(), 150);
        for (i, (len, b)) in got.iter().enumerate() {
            assert_eq!((*len, *b), (1000, i as u8));
        }
        // Full ring: refused, nothing lost from what is queued.
        let big = vec![1u8; 2000];
        m.ringbuf_output(&[&big]).expect("1");
        m.ringbuf_output(&[&big]).expect("2");
        assert_eq!(
            m.ringbuf_output(&[&big]).map_err(|e| e.errno()),
            Err(libc::EAGAIN)
        );
        assert_eq!(m.ringbuf_consume(usize::MAX, |_| {}), Ok(2));
        assert_eq!(m.ringbuf_avail(), 0);
    }

    #[test]
    fn perf_event_array_rings_per_slot() {
        let s = store();
        let m = s
            .create_map(&MapDef {
                map_type: BPF_MAP_TYPE_PERF_EVENT_ARRAY,
                key_size: 4,
                value_size: 4,
                max_entries: 2,
                name: "events".into(),
                ..MapDef::default()
            })
            .expect("perf");
        assert_eq!(
            m.perf_output(BPF_F_CURRENT_CPU, 1, &[b"x"])
                .map_err(|e| e.errno()),
            Err(libc::ENOENT)
        );
        for i in 0..2u32 {
            m.update(&i.to_ne_bytes(), &(100 + i).to_ne_bytes(), BPF_ANY)
                .expect("attach");
        }
        m.perf_output(BPF_F_CURRENT_CPU, 1, &[b"hello", b" world"])
            .expect("cpu 1");
        m.perf_output(0, 1, &[b"zero"]).expect("slot 0");
        assert_eq!(
            m.perf_output(5, 0, &[b"x"]).map_err(|e| e.errno()),
            Err(libc::E2BIG)
        );
        let mut got = Vec::new();
        m.perf_consume(1, 10, |r| got.push(r.to_vec()))
            .expect("consume");
        m.perf_consume(0, 10, |r| got.push(r.to_vec()))
            .expect("consume");
        assert_eq!(got, vec![b"hello world".to_vec(), b"zero".to_vec()]);
        let rec = vec![0u8; 4000];
        let mut ok = 0;
        while m.perf_output(0, 0, &[&rec]).is_ok() {
            ok += 1;
        }
        assert_eq!(ok, (PERF_RING_SIZE / 4008) as usize);
        assert_eq!(m.perf_lost(0), 1);
    }

    #[test]
    fn corrupt_ring_positions_are_an_error_not_endless_records() {
        let s = store();
        let m = s
            .create_map(&MapDef {
                map_type: BPF_MAP_TYPE_RINGBUF,
                max_entries: 4096,
                name: "rb".into(),
                ..MapDef::default()
            })
            .expect("ringbuf");
        m.ringbuf_output(&[b"one"]).expect("room");
        let r = m.ringbuf().expect("ring");
        // The producer 2^40 bytes ahead of the consumer: zeroed headers would read
        // as 2^37 empty records.
        r.prod().store(1 << 40, Ordering::Release);
        let mut n = 0u64;
        let e = m
            .ringbuf_consume(usize::MAX, |_| n += 1)
            .expect_err("corrupt");
        assert_eq!(n, 0);
        assert!(
            matches!(e, MapError::Corrupt { .. }) && e.to_string().contains("\"rb\""),
            "{e}"
        );
        // A consumer ahead of the producer: no record, no overflow in producers.
        r.prod().store(64, Ordering::Release);
        r.cons().store(u64::MAX - 8, Ordering::Release);
        assert!(m.ringbuf_consume(usize::MAX, |_| {}).is_err());
        assert_eq!(
            m.ringbuf_output(&[b"x"]).map_err(|e| e.errno()),
            Err(libc::EAGAIN)
        );
        // A header longer than what was produced.
        r.prod().store(16, Ordering::Release);
        r.cons().store(0, Ordering::Release);
        r.hdr(0).store(4000, Ordering::Release);
        let e = m.ringbuf_consume(usize::MAX, |_| {}).expect_err("corrupt");
        assert!(e.to_string().contains("runs past"), "{e}");
    }

    #[test]
    fn corrupt_perf_slot_positions_are_an_error() {
        let s = store();
        let m = s
            .create_map(&MapDef {
                map_type: BPF_MAP_TYPE_PERF_EVENT_ARRAY,
                key_size: 4,
                value_size: 4,
                max_entries: 2,
                name: "events".into(),
                ..MapDef::default()
            })
            .expect("perf");
        m.update(&0u32.to_ne_bytes(), &1u32.to_ne_bytes(), BPF_ANY)
            .expect("attach");
        let r = m.perf_ring(0).expect("ring");
        r.prod().store(1 << 40, Ordering::Release);
        let mut n = 0u64;
        let e = m
            .perf_consume(0, usize::MAX, |_| n += 1)
            .expect_err("corrupt");
        assert_eq!(n, 0);
        assert!(e.to_string().contains("perf slot 0"), "{e}");
    }
}
