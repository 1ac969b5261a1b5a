//! `bpf_timer` state and the store's timer wheel.
//!
//! # What lives where
//! A map whose value holds a `struct bpf_timer` (found through the value's BTF when
//! the map is created, [`Store::create_map_with_timer`](crate::Store::create_map_with_timer))
//! gets a *timer area* of its own, allocated right after its data region:
//!
//! ```text
//! WheelHeader (64-byte aligned)   lock | tick_ns | elapsed | armed | occupied[68] | heads[4353]
//! TimerEntry x nslots (40 bytes)  one per element slot: array index or hash/LRU element
//! ```
//! The 16 bytes of `struct bpf_timer` in the value are opaque and never read: a
//! program may write them, so nothing there is trusted. A helper finds its timer by
//! the value pointer's slot in the map ([`Map::timer_slot_of`]).
//!
//! # The wheel
//! A hierarchical timing wheel after tokio's and the Linux timer wheel: level 0 is a
//! ring of 4096 one-tick slots holding the timers due within the next 4095 ticks
//! (4 s at the default tick), levels 1 to 4 have 64 slots each,
//! `4096 * 64^(l-1)` ticks wide, so it spans `2^36` ticks (beyond, a timer waits in
//! the top level and is cascaded again). Each slot is an intrusive doubly linked list
//! of entry indexes (`prev`/`next`, `idx + 1`, 0 ending a list), so start, re-arm and
//! cancel are O(1) and never allocate; a last list holds the *pending* timers, those
//! due at or before `elapsed`. [`Map::timer_pop_due`] advances `elapsed` to the
//! current tick, cascading each higher-level slot it reaches into the lower levels
//! (every timer moves at most 4 times), and takes pending timers one at a time. A
//! wide level 0 keeps timers due within 4096 ticks from cascading at all: a cascade
//! moves a whole slot's timers at once (measured: about 250 ns per timer at 1M), a
//! burst that would make timers due just after the slot's start late. A timer is due
//! at tick `ceil(deadline / tick)` and is taken when the driver's clock reaches that
//! tick, so it fires at most one tick (plus the driver's poll delay and any cascade
//! burst) late and never early. The tick is [`DEFAULT_TICK_NS`] (1 ms) unless a
//! driver sets another ([`Map::timer_set_tick`]): the wheel is then rebuilt.
//!
//! # Concurrency
//! Every field of the area is an atomic written under the wheel's pid lock
//! (`lock.rs`), taken by program helpers (init, start, cancel), by map updates and
//! deletes that free an element, and by the driver, with one exception: the lazy
//! re-arm below. Nothing holds the lock across a callback. The truth is each entry's
//! state word and `deadline`; the lists, `occupied` bits and `armed` count are
//! derived from them, so a holder that died mid-change is repaired by rebuilding
//! them ([`Map::timer_rebuild`]), which the next holder does when it takes the lock
//! over (and `Map::repair` does).
//!
//! # Lazy re-arm
//! A start of an armed timer to a deadline no earlier than its current one takes no
//! lock: it stores the deadline, then bumps the generation in the state word by
//! compare-and-swap (falling back to the locked path when the swap fails). The timer
//! stays in its list. The rule that makes this sound: *an armed timer's list comes
//! up no later than its deadline's tick*, and the driver that takes a timer from a
//! list reads its deadline again and files it anew when it is not due yet; it
//! clears `ARMED` by compare-and-swap on the word it read, so a concurrent re-arm
//! either lands before (the deadline is read again) or fails and re-arms under the
//! lock after the timer was taken. A re-arm per packet is then one compare-and-swap,
//! and a timer is re-filed at most once per expiry of its old deadline. A process
//! killed between the two stores leaves the new deadline with the old generation:
//! the timer fires at the new deadline as if the re-arm had completed (or, when a
//! locked start raced it to a later list, at that list's time), never early.
//!
//! # Generations and re-arm races
//! `gen` counts every start, cancel and reset of a timer. A driver takes a due timer
//! under the lock and notes `(map, slot, gen)` in the store's lease as in flight
//! before it clears `ARMED`; before running the callback it checks the timer again:
//! a cancel or reset since (gen changed and not armed) skips the callback, a re-arm
//! (by the program or by the callback itself) stays armed for its new deadline, so
//! the last arm wins, as with the kernel's hrtimer. A driver that dies with a
//! callback in flight leaves the record in the lease; the next driver runs that
//! callback again unless the timer changed since (gen differs or it is armed). So a
//! timer fires at least once per arm, and twice only when its driver was killed
//! while running its callback and the callback had not re-armed or cancelled it.
//!
//! Indexes read from shared memory are checked against `nslots` before use, and
//! every walk is bounded by `nslots`: a corrupt area is `MapError::Corrupt`.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::MapError;
use crate::lock;
use crate::map::Map;
use crate::shm::{SharedPod, Shm};

/// Levels of the wheel: level 0 of 4096 one-tick slots, then 4 levels of 64.
pub const LEVELS: usize = 5;
/// Bits of the tick level 0 spans (4096 ticks: 4 s at the default tick), so that
/// timers up to that far never cascade.
const L0_BITS: usize = 12;
/// Slots of the levels above 0.
pub const SLOTS: usize = 64;
/// Bits per occupancy word (lists `64w .. 64w + 63` have word `w`).
const WORD: usize = 64;
/// Lists: level 0's slots, each higher level's, then the pending list.
const NLISTS: usize = (1 << L0_BITS) + (LEVELS - 1) * SLOTS + 1;
const PENDING: usize = NLISTS - 1;
/// The span of the wheel in ticks.
const MAX_TICKS: u64 = (1 << (L0_BITS + 6 * (LEVELS - 1))) - 1;
/// The default tick: 1 ms.
pub const DEFAULT_TICK_NS: u64 = 1_000_000;
/// The smallest tick accepted.
pub const MIN_TICK_NS: u64 = 1_000;

/// `state` bits.
const ST_INIT: u32 = 1;
const ST_ARMED: u32 = 2;
const ST_CALLBACK: u32 = 4;
/// Clock id (bits 8..12) and CPU pin (bit 12), informational.
const ST_CLOCK_SHIFT: u32 = 8;
const ST_PINNED: u32 = 1 << 12;

/// `bpf_timer_init` clocks the kernel accepts.
pub const CLOCK_REALTIME: u32 = 0;
/// `CLOCK_MONOTONIC`.
pub const CLOCK_MONOTONIC: u32 = 1;
/// `CLOCK_BOOTTIME`.
pub const CLOCK_BOOTTIME: u32 = 7;

/// The wheel's header, at the start of a map's timer area.
#[repr(C)]
pub(crate) struct WheelHeader {
    /// Pid lock (lock.rs) guarding every field below and every entry.
    lock: AtomicU32,
    _pad: AtomicU32,
    /// Tick length in ns (0 means DEFAULT_TICK_NS).
    tick_ns: AtomicU64,
    /// The tick up to which timers have been moved to the pending list.
    elapsed: AtomicU64,
    /// Timers armed (in a list).
    armed: AtomicU64,
    /// Bit `b` of word `w`: list `64w + b` is not empty.
    occupied: [AtomicU64; PENDING / WORD],
    _reserved: [AtomicU64; 4],
    /// List heads: entry index + 1, 0 for an empty list.
    heads: [AtomicU32; NLISTS],
}

/// The timer of one element slot.
#[repr(C)]
pub(crate) struct TimerEntry {
    /// The state (bits 0..32: ST_* bits, clock id, pin) and the generation (bits
    /// 32..64: counts starts, cancels and resets) in one word, so that a re-arm
    /// without the lock ([`Map::timer_start`]) and the lock holder's changes are
    /// ordered by compare-and-swap: every change of either bumps or replaces the
    /// word as a whole ([`TimerEntry::update`]).
    sg: AtomicU64,
    /// Neighbours in its list (index + 1, 0 for none).
    prev: AtomicU32,
    next: AtomicU32,
    /// The list it is in + 1 (0: none).
    list: AtomicU32,
    /// Store id of the program that set the callback, and the callback's slot.
    prog: AtomicU32,
    pc: AtomicU32,
    _pad: AtomicU32,
    /// Monotonic deadline in ns.
    deadline: AtomicU64,
}

impl TimerEntry {
    fn state(&self) -> u32 {
        self.sg.load(Ordering::Acquire) as u32
    }

    /// Sets the state to `f(state)` and, with `bump`, counts a generation, as one
    /// compare-and-swap (a lock-free re-arm may bump the generation meanwhile).
    /// Returns the state it replaced.
    fn update(&self, bump: bool, f: impl Fn(u32) -> u32) -> u32 {
        let old = self
            .sg
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |sg| {
                let gen = (sg >> 32) as u32;
                let gen = if bump { gen.wrapping_add(1) } else { gen };
                Some((u64::from(gen) << 32) | u64::from(f(sg as u32)))
            })
            .unwrap_or_else(|sg| sg);
        old as u32
    }
}

const HEADER_BYTES: usize = std::mem::size_of::<WheelHeader>().div_ceil(64) * 64;
/// Bytes of store per timer (one entry per element slot of a map with timers).
pub const ENTRY_BYTES: usize = std::mem::size_of::<TimerEntry>();
const _: () = assert!(ENTRY_BYTES == 40);

// SAFETY: repr(C), built only of atomics.
unsafe impl SharedPod for WheelHeader {}
// SAFETY: repr(C), built only of atomics.
unsafe impl SharedPod for TimerEntry {}

/// Bytes of a timer area for `nslots` element slots.
pub(crate) fn area_len(nslots: u64) -> u64 {
    HEADER_BYTES as u64 + nslots * ENTRY_BYTES as u64
}

/// Where a map's timers live: fixed when the map is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerArea {
    /// Offset of the area in the store.
    pub off: usize,
    /// Entries (element slots).
    pub nslots: u32,
    /// Offset of `struct bpf_timer` in the value.
    pub value_off: u32,
}

/// A due timer, taken off the wheel by [`Map::timer_pop_due`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    /// The element slot (array index or hash element).
    pub slot: u32,
    /// The timer's generation when it was taken.
    pub gen: u32,
    /// Store id of the program whose callback runs, and the callback's slot.
    pub prog: u32,
    /// The callback's instruction slot in that program.
    pub pc: u32,
}

/// A helper's failure, as the kernel's negative errno.
pub type Errno = i32;

/// The current monotonic time in ns (the timers' clock).
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// `clock` (a `CLOCK_*` id) in ns.
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; clock_gettime touches nothing else.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// The lowest bit of the tick that level `level`'s slot index starts at.
fn shift(level: usize) -> usize {
    if level == 0 {
        0
    } else {
        L0_BITS + 6 * (level - 1)
    }
}

/// Slots of level `level`.
fn slots(level: usize) -> usize {
    if level == 0 {
        1 << L0_BITS
    } else {
        SLOTS
    }
}

/// The list of level `level`'s slot `slot`.
fn list_of(level: usize, slot: usize) -> usize {
    if level == 0 {
        slot
    } else {
        (1 << L0_BITS) + (level - 1) * SLOTS + slot
    }
}

fn level_for(elapsed: u64, when: u64) -> usize {
    let mut masked = (elapsed ^ when) | ((1 << L0_BITS) - 1);
    if masked >= MAX_TICKS {
        masked = MAX_TICKS - 1;
    }
    let significant = 63 - masked.leading_zeros() as usize;
    if significant < L0_BITS {
        0
    } else {
        1 + (significant - L0_BITS) / 6
    }
}

fn slot_for(when: u64, level: usize) -> usize {
    ((when >> shift(level)) & (slots(level) as u64 - 1)) as usize
}

/// The locked wheel of one map.
struct Wheel<'m> {
    map: &'m Map,
    h: &'m WheelHeader,
    area: TimerArea,
}

impl<'m> Wheel<'m> {
    fn corrupt(&self, what: String) -> MapError {
        MapError::Corrupt {
            id: self.map.id,
            what: format!("timer wheel: {what}"),
        }
    }

    fn entry(&self, idx: u32) -> Result<&'m TimerEntry, MapError> {
        if idx >= self.area.nslots {
            return Err(self.corrupt(format!("entry {idx} >= {}", self.area.nslots)));
        }
        self.map
            .shm
            .view::<TimerEntry>(self.area.off + HEADER_BYTES + idx as usize * ENTRY_BYTES)
            .ok_or_else(|| self.corrupt(format!("entry {idx} outside the store")))
    }

    /// Decodes a link (index + 1, 0 = none).
    fn link(&self, l: u32) -> Result<Option<u32>, MapError> {
        match l {
            0 => Ok(None),
            l if l <= self.area.nslots => Ok(Some(l - 1)),
            l => Err(self.corrupt(format!("link {l} beyond {} entries", self.area.nslots))),
        }
    }

    fn tick_ns(&self) -> u64 {
        match self.h.tick_ns.load(Ordering::Relaxed) {
            0 => DEFAULT_TICK_NS,
            t => t.max(MIN_TICK_NS),
        }
    }

    fn when(&self, deadline: u64) -> u64 {
        deadline.div_ceil(self.tick_ns())
    }

    fn unlink(&self, idx: u32, e: &TimerEntry) -> Result<(), MapError> {
        let r = Ordering::Relaxed;
        let list = e.list.load(r);
        if list == 0 {
            return Ok(());
        }
        let list = (list - 1) as usize;
        if list >= NLISTS {
            return Err(self.corrupt(format!("entry {idx} in list {list}")));
        }
        let prev = self.link(e.prev.load(r))?;
        let next_raw = e.next.load(r);
        let next = self.link(next_raw)?;
        match prev {
            None => self.h.heads[list].store(next_raw, r),
            Some(p) => self.entry(p)?.next.store(next_raw, r),
        }
        if let Some(n) = next {
            self.entry(n)?.prev.store(e.prev.load(r), r);
        }
        if list < PENDING && self.h.heads[list].load(r) == 0 {
            self.h.occupied[list / WORD].fetch_and(!(1u64 << (list % WORD)), r);
        }
        e.list.store(0, r);
        e.prev.store(0, r);
        e.next.store(0, r);
        Ok(())
    }

    /// The list a timer due at tick `when` belongs in now.
    fn list_for(&self, when: u64) -> usize {
        let elapsed = self.h.elapsed.load(Ordering::Relaxed);
        if when <= elapsed {
            PENDING
        } else if when - elapsed < 1 << L0_BITS {
            // Level 0 is a ring over the next 4095 ticks, whatever their alignment.
            list_of(0, (when & ((1 << L0_BITS) - 1)) as usize)
        } else {
            let level = level_for(elapsed, when);
            list_of(level, slot_for(when, level))
        }
    }

    fn insert(&self, idx: u32, e: &TimerEntry) -> Result<(), MapError> {
        let r = Ordering::Relaxed;
        let list = self.list_for(self.when(e.deadline.load(r)));
        if list != PENDING {
            self.h.occupied[list / WORD].fetch_or(1u64 << (list % WORD), r);
        }
        let head = self.h.heads[list].load(r);
        if let Some(hd) = self.link(head)? {
            self.entry(hd)?.prev.store(idx + 1, r);
        }
        e.prev.store(0, r);
        e.next.store(head, r);
        e.list.store(list as u32 + 1, r);
        self.h.heads[list].store(idx + 1, r);
        Ok(())
    }

    /// The next slot to process: (list, deadline tick), the earliest of every level's
    /// first occupied slot, the highest level's on a tie.
    fn next_expiration(&self) -> Option<(usize, u64)> {
        let r = Ordering::Relaxed;
        let elapsed = self.h.elapsed.load(r);
        let mut best: Option<(usize, u64)> = None;
        for level in 0..LEVELS {
            let slot_range = 1u64 << shift(level);
            let n = slots(level) as u64;
            let level_range = slot_range * n;
            let now_slot = (elapsed >> shift(level)) & (n - 1);
            let base = list_of(level, 0);
            // The first occupied slot at or after `now_slot`, circularly.
            let words = slots(level) / WORD;
            let (w0, b0) = ((now_slot as usize) / WORD, (now_slot as usize) % WORD);
            let mut found = None;
            for k in 0..=words {
                let w = (w0 + k) % words;
                let mut bits = self.h.occupied[base / WORD + w].load(r);
                if k == 0 {
                    bits &= !0u64 << b0;
                } else if k == words {
                    bits &= (1u64 << b0).wrapping_sub(1);
                }
                if bits != 0 {
                    found = Some((w * WORD) as u64 + u64::from(bits.trailing_zeros()));
                    break;
                }
            }
            let Some(slot) = found else {
                continue;
            };
            let deadline = if level == 0 {
                // The ring: `slot` is `(slot - now_slot) mod 4096` ticks ahead (0: the
                // timers of tick `elapsed` itself, due now).
                elapsed + (slot.wrapping_sub(now_slot) & (n - 1))
            } else {
                let level_start = elapsed & !(level_range - 1);
                let mut deadline = level_start + slot * slot_range;
                if deadline <= elapsed {
                    deadline += level_range;
                }
                deadline
            };
            // On a tie the higher level goes first: its timers due at that tick
            // join the pending list, and `elapsed` never reaches a higher-level
            // slot's start with the slot still full (which would read as the next
            // rotation).
            if best.is_none_or(|(_, b)| deadline <= b) {
                best = Some((base + slot as usize, deadline));
            }
        }
        best
    }

    /// Advances `elapsed` towards tick `now` until a list holds a timer due by then:
    /// the pending list, or the level-0 slot of tick `elapsed` (every timer there is
    /// due at that tick). Higher-level slots reached on the way are cascaded.
    fn advance(&self, now: u64) -> Result<Option<usize>, MapError> {
        let r = Ordering::Relaxed;
        if self.h.heads[PENDING].load(r) != 0 {
            return Ok(Some(PENDING));
        }
        // Each round empties one higher-level slot, whose timers only go to lower
        // levels or the pending list (or, beyond the wheel's span, back to the top
        // level for the next rotation), so this ends.
        for _ in 0..(NLISTS * 2 + 4) {
            match self.next_expiration() {
                Some((list, deadline)) if deadline <= now => {
                    self.h.elapsed.store(deadline, r);
                    if list < 1 << L0_BITS {
                        if self.h.heads[list].load(r) != 0 {
                            return Ok(Some(list));
                        }
                        // A bit left set by a holder that died: clear it.
                        self.h.occupied[list / WORD].fetch_and(!(1u64 << (list % WORD)), r);
                        continue;
                    }
                    // Detach the whole list, then place each timer again.
                    let mut cur = self.h.heads[list].swap(0, r);
                    self.h.occupied[list / WORD].fetch_and(!(1u64 << (list % WORD)), r);
                    let mut n = 0u32;
                    while let Some(i) = self.link(cur)? {
                        n += 1;
                        if n > self.area.nslots {
                            return Err(self.corrupt(format!("list {list} has a cycle")));
                        }
                        let e = self.entry(i)?;
                        cur = e.next.load(r);
                        e.list.store(0, r);
                        e.prev.store(0, r);
                        e.next.store(0, r);
                        if e.state() & ST_ARMED != 0 {
                            self.insert(i, e)?;
                        }
                    }
                    if self.h.heads[PENDING].load(r) != 0 {
                        return Ok(Some(PENDING));
                    }
                }
                _ => {
                    if now > self.h.elapsed.load(r) {
                        self.h.elapsed.store(now, r);
                    }
                    return Ok(None);
                }
            }
        }
        Ok(None)
    }

    /// Rebuilds the lists, bits and count from the entries' state and deadline.
    fn rebuild(&self) -> Result<(), MapError> {
        let r = Ordering::Relaxed;
        for h in &self.h.heads {
            h.store(0, r);
        }
        for o in &self.h.occupied {
            o.store(0, r);
        }
        let now = monotonic_ns() / self.tick_ns();
        if self.h.elapsed.load(r) > now || self.h.elapsed.load(r) == 0 {
            self.h.elapsed.store(now, r);
        }
        let mut armed = 0u64;
        for i in 0..self.area.nslots {
            let e = self.entry(i)?;
            e.list.store(0, r);
            e.prev.store(0, r);
            e.next.store(0, r);
            if e.state() & ST_ARMED != 0 {
                self.insert(i, e)?;
                armed += 1;
            }
        }
        self.h.armed.store(armed, r);
        Ok(())
    }
}

/// The store's timer lease: which process drives the timers, its heartbeat, and the
/// callback it has in flight (see the module docs).
#[repr(C)]
pub(crate) struct LeaseWords {
    /// Pid of the driver (0: none).
    pub pid: AtomicU32,
    pub _pad: AtomicU32,
    /// Monotonic ns of the driver's last heartbeat.
    pub beat: AtomicU64,
    /// In flight: map id << 32 | slot + 1 (0: none).
    pub inflight: AtomicU64,
    /// In flight: the timer's generation.
    pub inflight_gen: AtomicU64,
}

// SAFETY: repr(C), built only of atomics.
unsafe impl SharedPod for LeaseWords {}

/// The lease's place in the header (the start of `Header::reserved`).
pub(crate) fn lease_words(shm: &Shm) -> Option<&LeaseWords> {
    shm.view::<LeaseWords>(crate::layout::HEADER_LEASE_OFF)
}

/// The right to drive a store's timers; released on drop.
pub struct TimerLease {
    shm: std::sync::Arc<Shm>,
    pid: u32,
    took_over: bool,
    inherited: Option<(u32, u32, u32)>,
}

impl std::fmt::Debug for TimerLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerLease")
            .field("pid", &self.pid)
            .field("took_over", &self.took_over)
            .finish()
    }
}

impl TimerLease {
    pub(crate) fn take(shm: std::sync::Arc<Shm>) -> Result<TimerLease, MapError> {
        let corrupt = || MapError::Corrupt {
            id: 0,
            what: "timer lease outside the store".into(),
        };
        let w = lease_words(&shm).ok_or_else(corrupt)?;
        let me = lock::my_pid();
        let took_over = match w
            .pid
            .compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => false,
            Err(cur) if cur != me && lock::held_by_dead(&w.pid) => {
                if w.pid
                    .compare_exchange(cur, me, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    return Err(MapError::TimerLeaseHeld {
                        pid: w.pid.load(Ordering::Relaxed),
                    });
                }
                true
            }
            Err(cur) => return Err(MapError::TimerLeaseHeld { pid: cur }),
        };
        w.beat.store(monotonic_ns(), Ordering::Relaxed);
        // The record stays until the callback has run again (`clear_inflight`): a
        // driver killed before that leaves it to the next one.
        let inflight = w.inflight.load(Ordering::Acquire);
        let gen = w.inflight_gen.load(Ordering::Acquire) as u32;
        let inherited = (inflight != 0 && inflight as u32 != 0)
            .then(|| ((inflight >> 32) as u32, (inflight as u32) - 1, gen));
        Ok(TimerLease {
            shm,
            pid: me,
            took_over,
            inherited,
        })
    }

    /// True when the lease was taken over from a driver that died.
    pub fn took_over(&self) -> bool {
        self.took_over
    }

    /// The callback a dead driver had in flight: (map id, slot, generation).
    pub fn inherited(&self) -> Option<(u32, u32, u32)> {
        self.inherited
    }

    /// [`TimerLease::inherited`], once: the driver runs it.
    pub fn take_inherited(&mut self) -> Option<(u32, u32, u32)> {
        self.inherited.take()
    }

    /// Records that this driver is alive.
    pub fn heartbeat(&self) {
        if let Some(w) = lease_words(&self.shm) {
            w.beat.store(monotonic_ns(), Ordering::Relaxed);
        }
    }

    /// The callback in flight is done.
    pub fn clear_inflight(&self) {
        if let Some(w) = lease_words(&self.shm) {
            w.inflight.store(0, Ordering::Release);
        }
    }

    fn set_inflight(&self, map_id: u32, slot: u32, gen: u32) {
        if let Some(w) = lease_words(&self.shm) {
            w.inflight_gen.store(u64::from(gen), Ordering::Relaxed);
            w.inflight.store(
                (u64::from(map_id) << 32) | u64::from(slot + 1),
                Ordering::Release,
            );
        }
    }

    fn owns(&self) -> bool {
        lease_words(&self.shm).is_some_and(|w| w.pid.load(Ordering::Acquire) == self.pid)
    }
}

impl Drop for TimerLease {
    fn drop(&mut self) {
        if let Some(w) = lease_words(&self.shm) {
            let _ = w
                .pid
                .compare_exchange(self.pid, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }
}

impl Map {
    fn wheel_header(&self) -> Result<(&WheelHeader, TimerArea), MapError> {
        let area = self.timer.ok_or(MapError::Unsupported {
            id: self.id,
            op: "bpf_timer (no timer in the value)",
            errno: libc::EINVAL,
        })?;
        let h = self
            .shm
            .view::<WheelHeader>(area.off)
            .ok_or_else(|| MapError::Corrupt {
                id: self.id,
                what: "timer area outside the store".into(),
            })?;
        Ok((h, area))
    }

    /// Runs `f` on the locked wheel; a lock taken over from a dead holder rebuilds
    /// the wheel first.
    fn with_wheel<T>(
        &self,
        f: impl FnOnce(&Wheel<'_>) -> Result<T, MapError>,
    ) -> Result<T, MapError> {
        let (h, area) = self.wheel_header()?;
        let g = lock::lock(&h.lock)
            .map_err(|e| e.to_map_error(self.id, format!("map {} timer wheel lock", self.id)))?;
        let w = Wheel { map: self, h, area };
        if g.took_over() {
            w.rebuild()?;
        }
        f(&w)
    }

    /// The offset of `struct bpf_timer` in this map's value, when it has one.
    pub fn timer_offset(&self) -> Option<u32> {
        self.timer.map(|t| t.value_off)
    }

    /// Timer entries (element slots) of this map: its bytes of timer state are
    /// `timer_slots() * ENTRY_BYTES` plus one wheel header.
    pub fn timer_slots(&self) -> u32 {
        self.timer.map_or(0, |t| t.nslots)
    }

    /// Bytes of the store this map's timers take (entries and wheel).
    pub fn timer_bytes(&self) -> u64 {
        self.timer.map_or(0, |t| area_len(u64::from(t.nslots)))
    }

    /// The element slot whose value holds the `struct bpf_timer` at `addr`, or None
    /// when `addr` is not exactly the timer field of a value of this map.
    pub fn timer_slot_of(&self, addr: u64) -> Option<u32> {
        let t = self.timer?;
        let (base, stride, first, n) = match self.kind {
            crate::def::Kind::Array => (
                self.data as u64,
                self.vstride as u64,
                0u64,
                self.max_entries,
            ),
            k if k.is_hash() => (
                self.elems as u64,
                self.elem_size as u64,
                self.value_off as u64,
                self.nelems,
            ),
            _ => return None,
        };
        let rel = addr.checked_sub(base)?;
        // Outside the map's elements: no division (helpers try each map with timers).
        let n = u64::from(n.min(t.nslots));
        if stride == 0 || rel >= n.saturating_mul(stride) {
            return None;
        }
        let slot = rel / stride;
        (rel - slot * stride == first + u64::from(t.value_off)).then_some(slot as u32)
    }

    /// Addresses of the key and value of element `slot` (hash maps; arrays have no
    /// stored key: None for the key).
    pub fn timer_element(&self, slot: u32) -> Option<(Option<u64>, u64)> {
        let t = self.timer?;
        if slot >= t.nslots {
            return None;
        }
        match self.kind {
            crate::def::Kind::Array => Some((
                None,
                self.data as u64 + u64::from(slot) * self.vstride as u64,
            )),
            k if k.is_hash() => {
                let e = self.elems as u64 + u64::from(slot) * self.elem_size as u64;
                Some((Some(e + self.key_off as u64), e + self.value_off as u64))
            }
            _ => None,
        }
    }

    /// The key of element `slot` as a timer callback receives it: a hash element's
    /// stored key, or an array's index; `out` must hold `key_size` bytes.
    pub fn timer_key(&self, slot: u32, out: &mut [u8]) -> Option<()> {
        let (key, _) = self.timer_element(slot)?;
        if out.len() != self.key_size as usize {
            return None;
        }
        match key {
            None => out.copy_from_slice(&slot.to_ne_bytes()[..out.len().min(4)]),
            Some(k) => {
                // SAFETY: `k` is the key area of element `slot` < nelems (checked by
                // `timer_element`), key_size bytes inside the map's data region,
                // 4-aligned; `out` holds key_size bytes.
                unsafe { crate::mem::load_key(out, k as *const u8) }
            }
        }
        Some(())
    }

    /// `bpf_timer_init`: -EBUSY when initialised already, -EINVAL for a clock other
    /// than MONOTONIC, REALTIME or BOOTTIME (flags hold the clock id).
    pub fn timer_init(&self, slot: u32, flags: u64) -> Result<(), Errno> {
        let clock = flags as u32;
        if flags >> 32 != 0 || !matches!(clock, CLOCK_MONOTONIC | CLOCK_REALTIME | CLOCK_BOOTTIME) {
            return Err(-libc::EINVAL);
        }
        self.with_wheel(|w| {
            let e = w.entry(slot)?;
            let r = Ordering::Relaxed;
            if e.state() & ST_INIT != 0 {
                return Ok(Err(-libc::EBUSY));
            }
            e.prog.store(0, r);
            e.pc.store(0, r);
            e.update(true, |_| ST_INIT | (clock << ST_CLOCK_SHIFT));
            Ok(Ok(()))
        })
        .unwrap_or(Err(-libc::EINVAL))
    }

    /// `bpf_timer_set_callback`: -EINVAL when not initialised.
    pub fn timer_set_callback(&self, slot: u32, prog: u32, pc: u32) -> Result<(), Errno> {
        self.with_wheel(|w| {
            let e = w.entry(slot)?;
            let r = Ordering::Relaxed;
            let s = e.state();
            if s & ST_INIT == 0 {
                return Ok(Err(-libc::EINVAL));
            }
            e.prog.store(prog, r);
            e.pc.store(pc, r);
            e.update(false, |s| s | ST_CALLBACK);
            Ok(Ok(()))
        })
        .unwrap_or(Err(-libc::EINVAL))
    }

    /// The clock a timer was initialised with (None when not initialised).
    pub fn timer_clock(&self, slot: u32) -> Option<u32> {
        self.with_wheel(|w| {
            let s = w.entry(slot)?.state();
            Ok((s & ST_INIT != 0).then_some((s >> ST_CLOCK_SHIFT) & 0xf))
        })
        .ok()
        .flatten()
    }

    /// `bpf_timer_start` with the deadline on the monotonic clock: -EINVAL when not
    /// initialised or without a callback. Re-arms an armed timer; a re-arm of an
    /// armed timer to a deadline no earlier than its current one takes no lock
    /// ([`Map::timer_rearm_later`]).
    pub fn timer_start(&self, slot: u32, deadline_ns: u64, pinned: bool) -> Result<(), Errno> {
        if self.timer_rearm_later(slot, deadline_ns, pinned) {
            return Ok(());
        }
        self.with_wheel(|w| {
            let e = w.entry(slot)?;
            let r = Ordering::Relaxed;
            let s = e.state();
            if s & ST_INIT == 0 || s & ST_CALLBACK == 0 {
                return Ok(Err(-libc::EINVAL));
            }
            if w.h.elapsed.load(r) == 0 {
                w.h.elapsed.store(monotonic_ns() / w.tick_ns(), r);
            }
            let pin = if pinned { ST_PINNED } else { 0 };
            if s & ST_ARMED != 0 && e.list.load(r) == w.list_for(w.when(deadline_ns)) as u32 + 1 {
                // A re-arm into the list it is in (the same tick, most often: a
                // timer re-armed by every packet): only the deadline changes.
                e.deadline.store(deadline_ns, Ordering::Release);
                e.update(true, |s| (s & !ST_PINNED) | pin);
                return Ok(Ok(()));
            }
            if s & ST_ARMED != 0 {
                w.unlink(slot, e)?;
            } else {
                w.h.armed.fetch_add(1, r);
            }
            e.deadline.store(deadline_ns, Ordering::Release);
            e.update(true, |s| (s & !ST_PINNED) | ST_ARMED | pin);
            w.insert(slot, e)?;
            Ok(Ok(()))
        })
        .unwrap_or(Err(-libc::EINVAL))
    }

    /// `bpf_timer_cancel`: Ok(true) when it was armed, Ok(false) when not, -EINVAL
    /// when not initialised. As the kernel's, it forgets the callback (asked of
    /// the kernel: a start after a cancel is -EINVAL until set_callback).
    pub fn timer_cancel(&self, slot: u32) -> Result<bool, Errno> {
        self.with_wheel(|w| {
            let e = w.entry(slot)?;
            let r = Ordering::Relaxed;
            let s = e.state();
            if s & ST_INIT == 0 {
                return Ok(Err(-libc::EINVAL));
            }
            // The kernel's cancel drops the callback too (`drop_prog_refcnt`): a
            // start needs a new bpf_timer_set_callback.
            e.prog.store(0, r);
            e.pc.store(0, r);
            e.update(true, |s| s & !(ST_ARMED | ST_CALLBACK));
            if s & ST_ARMED == 0 {
                return Ok(Ok(false));
            }
            w.unlink(slot, e)?;
            w.h.armed.fetch_sub(1, r);
            Ok(Ok(true))
        })
        .unwrap_or(Err(-libc::EINVAL))
    }

    /// A re-arm of an armed timer to a deadline no earlier than its current one,
    /// without the wheel's lock: the timer stays in the list it is in, which comes
    /// up no later than the new deadline, and the driver, finding it there before
    /// its deadline, files it again ([`Map::timer_pop_due`]). So a timer re-armed by
    /// every packet costs a compare-and-swap per packet and one re-filing per
    /// expiry period. The deadline is stored first, then the state word's
    /// generation bumped by compare-and-swap from the word read before: when the
    /// driver took the timer (ARMED cleared) or anything else changed it in
    /// between, the swap fails and the caller re-arms under the lock. False when
    /// it did nothing (not armed, no callback, an earlier deadline, a lost race).
    fn timer_rearm_later(&self, slot: u32, deadline_ns: u64, pinned: bool) -> bool {
        let Some(area) = self.timer else {
            return false;
        };
        if slot >= area.nslots {
            return false;
        }
        let Some(e) = self
            .shm
            .view::<TimerEntry>(area.off + HEADER_BYTES + slot as usize * ENTRY_BYTES)
        else {
            return false;
        };
        let sg = e.sg.load(Ordering::Acquire);
        let s = sg as u32;
        let all = ST_INIT | ST_CALLBACK | ST_ARMED;
        if s & all != all || deadline_ns < e.deadline.load(Ordering::Acquire) {
            return false;
        }
        let pin = if pinned { ST_PINNED } else { 0 };
        e.deadline.store(deadline_ns, Ordering::Release);
        let gen = ((sg >> 32) as u32).wrapping_add(1);
        let new = (u64::from(gen) << 32) | u64::from((s & !ST_PINNED) | pin);
        e.sg.compare_exchange(sg, new, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Cancels and forgets the timer of element `slot`: the element was deleted,
    /// replaced, evicted, or (arrays) updated, as the kernel's
    /// `bpf_obj_free_fields`. A no-op for maps without timers.
    #[inline]
    pub(crate) fn timer_reset(&self, slot: u32) {
        if self.timer.is_some() {
            self.timer_reset_slow(slot);
        }
    }

    #[cold]
    fn timer_reset_slow(&self, slot: u32) {
        let _ = self.with_wheel(|w| {
            let e = w.entry(slot)?;
            let r = Ordering::Relaxed;
            let s = e.state();
            if s == 0 {
                return Ok(());
            }
            if s & ST_ARMED != 0 {
                w.unlink(slot, e)?;
                w.h.armed.fetch_sub(1, r);
            }
            e.update(true, |_| 0);
            e.prog.store(0, r);
            e.pc.store(0, r);
            Ok(())
        });
    }

    /// Cancels every timer of the map (the map is being removed).
    pub fn timer_cancel_all(&self) -> Result<(), MapError> {
        if self.timer.is_none() {
            return Ok(());
        }
        self.with_wheel(|w| {
            for i in 0..w.area.nslots {
                let e = w.entry(i)?;
                let s = e.state();
                if s & ST_ARMED != 0 {
                    e.update(true, |s| s & !ST_ARMED);
                }
            }
            w.rebuild()
        })
    }

    /// Armed timers of this map.
    pub fn timers_armed(&self) -> u64 {
        self.wheel_header()
            .map_or(0, |(h, _)| h.armed.load(Ordering::Relaxed))
    }

    /// The wheel's tick in ns.
    pub fn timer_tick_ns(&self) -> u64 {
        self.wheel_header().map_or(DEFAULT_TICK_NS, |(h, _)| {
            match h.tick_ns.load(Ordering::Relaxed) {
                0 => DEFAULT_TICK_NS,
                t => t.max(MIN_TICK_NS),
            }
        })
    }

    /// Sets the wheel's tick (at least [`MIN_TICK_NS`]) and rebuilds it when it
    /// changes: O(timer slots).
    pub fn timer_set_tick(&self, tick_ns: u64) -> Result<(), MapError> {
        let tick = tick_ns.max(MIN_TICK_NS);
        if self.timer.is_none() || self.timer_tick_ns() == tick {
            return Ok(());
        }
        self.with_wheel(|w| {
            w.h.tick_ns.store(tick, Ordering::Relaxed);
            w.h.elapsed.store(monotonic_ns() / tick, Ordering::Relaxed);
            w.rebuild()
        })
    }

    /// The earliest deadline (monotonic ns, rounded to the tick) of an armed timer,
    /// if any: what a driver sleeps until.
    pub fn timer_next_deadline(&self) -> Option<u64> {
        if self.timers_armed() == 0 {
            return None;
        }
        self.with_wheel(|w| {
            let tick = w.tick_ns();
            if w.h.heads[PENDING].load(Ordering::Relaxed) != 0 {
                return Ok(Some(w.h.elapsed.load(Ordering::Relaxed) * tick));
            }
            Ok(w.next_expiration().map(|(_, d)| d * tick))
        })
        .ok()
        .flatten()
    }

    /// Takes one timer due at `now_ns` (monotonic) off the wheel, records it in the
    /// lease as in flight, and returns it; None when none is due. The lease must be
    /// held by the caller.
    pub fn timer_pop_due(&self, lease: &TimerLease, now_ns: u64) -> Result<Option<Due>, MapError> {
        if self.timer.is_none() || self.timers_armed() == 0 {
            return Ok(None);
        }
        if !lease.owns() {
            return Err(MapError::TimerLeaseHeld {
                pid: lease_words(&lease.shm).map_or(0, |w| w.pid.load(Ordering::Relaxed)),
            });
        }
        self.with_wheel(|w| {
            let r = Ordering::Relaxed;
            let now = now_ns / w.tick_ns();
            // Each timer is taken once, or re-filed once to a tick after `now`.
            let bound = u64::from(w.area.nslots) * 2 + 2;
            // Re-filings of timers re-armed later without the lock meanwhile: a
            // re-arming thread can keep a popped timer's deadline moving, and a
            // call that spent its bound on them has found nothing due, which is
            // no corruption.
            let mut refiled = false;
            for _ in 0..bound {
                let Some(list) = w.advance(now)? else {
                    return Ok(None);
                };
                let Some(idx) = w.link(w.h.heads[list].load(r))? else {
                    continue;
                };
                let e = w.entry(idx)?;
                w.unlink(idx, e)?;
                // Only this holder clears ARMED; a lock-free re-arm meanwhile only
                // moves the deadline later and bumps the generation, so the
                // compare-and-swap below fails and the deadline is read again.
                loop {
                    let sg = e.sg.load(Ordering::Acquire);
                    // Listed but not armed (a holder died between the two stores): drop.
                    if sg as u32 & ST_ARMED == 0 {
                        break;
                    }
                    if w.when(e.deadline.load(Ordering::Acquire)) > now {
                        // Re-armed later without the lock: filed again for its
                        // deadline, not fired.
                        w.insert(idx, e)?;
                        refiled = true;
                        break;
                    }
                    let due = Due {
                        slot: idx,
                        gen: (sg >> 32) as u32,
                        prog: e.prog.load(r),
                        pc: e.pc.load(r),
                    };
                    lease.set_inflight(self.id, idx, due.gen);
                    let taken = sg & !u64::from(ST_ARMED);
                    if e.sg
                        .compare_exchange(sg, taken, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        w.h.armed.fetch_sub(1, r);
                        return Ok(Some(due));
                    }
                }
            }
            if refiled {
                return Ok(None);
            }
            Err(w.corrupt("due timers do not end".into()))
        })
    }

    /// Whether a timer taken as `due` should still run its callback: not cancelled
    /// or reset since (a re-arm keeps it, see the module docs). With `exact`, only
    /// when nothing at all changed (a dead driver's callback in flight).
    pub fn timer_still_due(&self, due: &Due, exact: bool) -> Option<Due> {
        self.with_wheel(|w| {
            let e = w.entry(due.slot)?;
            let r = Ordering::Relaxed;
            let sg = e.sg.load(Ordering::Acquire);
            let s = sg as u32;
            let same = (sg >> 32) as u32 == due.gen;
            let ok = s & ST_INIT != 0
                && s & ST_CALLBACK != 0
                && if exact {
                    same && s & ST_ARMED == 0
                } else {
                    same || s & ST_ARMED != 0
                };
            Ok(ok.then(|| Due {
                prog: e.prog.load(r),
                pc: e.pc.load(r),
                ..*due
            }))
        })
        .ok()
        .flatten()
    }

    /// Checks the wheel: every list well formed (links in range, `prev` mirrors
    /// `next`, no cycle, each entry's `list` names the list it is in, `occupied` bits
    /// match non-empty lists), exactly the armed timers listed, `armed` right.
    pub(crate) fn check_timers(&self) -> Result<(), MapError> {
        if self.timer.is_none() {
            return Ok(());
        }
        self.with_wheel(|w| {
            let r = Ordering::Relaxed;
            let mut seen = vec![false; w.area.nslots as usize];
            let mut listed = 0u64;
            for list in 0..NLISTS {
                let mut prev = 0u32;
                let mut cur = w.h.heads[list].load(r);
                if list < PENDING {
                    let bit = w.h.occupied[list / WORD].load(r) >> (list % WORD) & 1;
                    if (bit == 1) != (cur != 0) {
                        return Err(w.corrupt(format!("occupied bit of list {list} wrong")));
                    }
                }
                while let Some(i) = w.link(cur)? {
                    if std::mem::replace(&mut seen[i as usize], true) {
                        return Err(w.corrupt(format!("entry {i} listed twice")));
                    }
                    let e = w.entry(i)?;
                    if e.prev.load(r) != prev || e.list.load(r) != list as u32 + 1 {
                        return Err(w.corrupt(format!("entry {i} links inconsistent")));
                    }
                    if e.state() & ST_ARMED == 0 {
                        return Err(w.corrupt(format!("entry {i} listed but not armed")));
                    }
                    listed += 1;
                    prev = i + 1;
                    cur = e.next.load(r);
                }
            }
            for i in 0..w.area.nslots {
                let e = w.entry(i)?;
                if e.state() & ST_ARMED != 0 && !seen[i as usize] {
                    return Err(w.corrupt(format!("armed entry {i} in no list")));
                }
            }
            if w.h.armed.load(r) != listed {
                return Err(w.corrupt(format!(
                    "armed count {} but {listed} listed",
                    w.h.armed.load(r)
                )));
            }
            Ok(())
        })
    }

    /// Rebuilds the wheel from the timers' state (repair).
    pub fn timer_rebuild(&self) -> Result<(), MapError> {
        if self.timer.is_none() {
            return Ok(());
        }
        self.with_wheel(|w| w.rebuild())
    }

    /// Whether the wheel's lock names a dead process.
    pub(crate) fn timer_lock_dead(&self) -> bool {
        self.wheel_header()
            .is_ok_and(|(h, _)| lock::held_by_dead(&h.lock))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        MapDef, Store, StoreOptions, BPF_ANY, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH,
        BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY,
    };

    fn store() -> Store {
        Store::anonymous(StoreOptions {
            size: 16 << 20,
            ncpus: Some(2),
        })
        .unwrap()
    }

    /// A map of u32 -> { u64 data; struct bpf_timer t; } (timer at 8).
    fn timer_map(s: &Store, t: u32, max: u32) -> Map {
        let def = MapDef {
            map_type: t,
            key_size: 4,
            value_size: 24,
            max_entries: max,
            name: "timers".into(),
            ..MapDef::default()
        };
        s.create_map_with_timer(&def, Some(8)).unwrap()
    }

    fn value_of(m: &Map, k: u32) -> u64 {
        // SAFETY: a 4-byte key; the map's key size is 4.
        let p = unsafe { m.prog_lookup(k.to_ne_bytes().as_ptr(), 0) };
        assert!(!p.is_null(), "key {k} present");
        p as u64
    }

    fn slot(m: &Map, k: u32) -> u32 {
        m.timer_slot_of(value_of(m, k) + 8).expect("timer slot")
    }

    fn put(m: &Map, k: u32) {
        m.update(&k.to_ne_bytes(), &[0u8; 24], BPF_ANY).unwrap();
    }

    #[test]
    fn levels_and_slots() {
        assert_eq!(level_for(0, 1), 0);
        assert_eq!(level_for(0, 4095), 0);
        assert_eq!(level_for(0, 4096), 1);
        assert_eq!(level_for(0, (1 << 18) - 1), 1);
        assert_eq!(level_for(0, 1 << 18), 2);
        assert_eq!(level_for(0, 1 << 40), LEVELS - 1);
        assert_eq!(slot_for(4096 * 3 + 5, 1), 3);
        assert_eq!(slot_for(4096 * 3 + 5, 0), 5);
        assert_eq!(list_of(LEVELS - 1, SLOTS - 1), PENDING - 1);
    }

    #[test]
    fn a_version_4_store_opens_and_older_ones_do_not() {
        let s = store();
        let h = crate::layout::header(s.shm()).unwrap();
        h.version.store(4, Ordering::Relaxed);
        crate::layout::validate_header(s.shm()).unwrap();
        h.version.store(3, Ordering::Relaxed);
        assert!(matches!(
            crate::layout::validate_header(s.shm()),
            Err(crate::StoreError::Version { found: 3, .. })
        ));
    }

    #[test]
    fn creation_refuses_what_the_kernel_refuses() {
        let s = store();
        let def = |t: u32, v: u32| MapDef {
            map_type: t,
            key_size: 4,
            value_size: v,
            max_entries: 4,
            name: "t".into(),
            ..MapDef::default()
        };
        let e = s
            .create_map_with_timer(&def(BPF_MAP_TYPE_PERCPU_ARRAY, 16), Some(0))
            .unwrap_err();
        assert_eq!(e.errno(), libc::EOPNOTSUPP);
        let e = s
            .create_map_with_timer(&def(BPF_MAP_TYPE_ARRAY, 24), Some(4))
            .unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL);
        let e = s
            .create_map_with_timer(&def(BPF_MAP_TYPE_ARRAY, 16), Some(8))
            .unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL);
        let m = s
            .create_map_with_timer(&def(BPF_MAP_TYPE_ARRAY, 16), Some(0))
            .unwrap();
        assert_eq!(m.timer_slots(), 4);
        // Reopened from the table, the area is the same.
        let again = s.map_by_id(m.id()).unwrap();
        assert_eq!(again.timer_offset(), Some(0));
        assert_eq!(again.timer_slots(), 4);
    }

    #[test]
    fn helper_errors_follow_the_kernel() {
        let s = store();
        let m = timer_map(&s, BPF_MAP_TYPE_ARRAY, 4);
        let t = slot(&m, 1);
        assert_eq!(m.timer_cancel(t), Err(-libc::EINVAL));
        assert_eq!(m.timer_start(t, 1, false), Err(-libc::EINVAL));
        assert_eq!(m.timer_set_callback(t, 1, 2), Err(-libc::EINVAL));
        assert_eq!(m.timer_init(t, 3), Err(-libc::EINVAL));
        assert_eq!(m.timer_init(t, 1 << 32 | 1), Err(-libc::EINVAL));
        assert_eq!(m.timer_init(t, u64::from(CLOCK_MONOTONIC)), Ok(()));
        assert_eq!(
            m.timer_init(t, u64::from(CLOCK_BOOTTIME)),
            Err(-libc::EBUSY)
        );
        // Started before set_callback: EINVAL, as the kernel.
        assert_eq!(m.timer_start(t, 1, false), Err(-libc::EINVAL));
        assert_eq!(m.timer_set_callback(t, 7, 30), Ok(()));
        assert_eq!(m.timer_cancel(t), Ok(false));
        // The cancel forgot the callback (kernel 6.18 answers -EINVAL too).
        assert_eq!(m.timer_start(t, 1, false), Err(-libc::EINVAL));
        assert_eq!(m.timer_set_callback(t, 7, 30), Ok(()));
        assert_eq!(
            m.timer_start(t, monotonic_ns() + 1_000_000_000, false),
            Ok(())
        );
        assert_eq!(m.timers_armed(), 1);
        assert_eq!(m.timer_cancel(t), Ok(true));
        assert_eq!(m.timer_cancel(t), Ok(false));
        assert_eq!(m.timers_armed(), 0);
        m.check().unwrap();
    }

    /// Every timer fires once, never before its deadline, and at the first poll at
    /// or after the end of the tick holding its deadline; a second round starts
    /// seconds after the first ended (the wheel's `elapsed` behind the deadlines).
    #[test]
    fn the_wheel_fires_each_timer_once_within_a_tick() {
        let s = store();
        let n = 3000u32;
        let m = timer_map(&s, BPF_MAP_TYPE_ARRAY, n);
        let lease = s.timer_lease().unwrap();
        let last = wheel_round(&m, &lease, n, monotonic_ns(), 1);
        wheel_round(&m, &lease, n, last + 7_000_000_123, 2);
    }

    fn wheel_round(m: &Map, lease: &TimerLease, n: u32, base: u64, seed: u64) -> u64 {
        let tick = m.timer_tick_ns();
        let mut deadline = vec![0u64; n as usize];
        let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
        for k in 0..n {
            let t = slot(m, k);
            if m.timer_clock(t).is_none() {
                m.timer_init(t, 1).unwrap();
            }
            m.timer_set_callback(t, 1, k).unwrap();
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            // Spread over every level: up to ~2^30 ticks away, most near.
            let span = 1u64 << (rng % 31);
            let d = base + (rng >> 8) % span * tick + (rng >> 40) % tick;
            deadline[t as usize] = d;
            m.timer_start(t, d, false).unwrap();
        }
        // Re-arm a third of them, cancel another third.
        for k in 0..n {
            let t = slot(m, k);
            match k % 3 {
                0 => {
                    let d = deadline[t as usize] / 2 + base / 2 + 3;
                    deadline[t as usize] = d;
                    m.timer_start(t, d, false).unwrap();
                }
                1 => {
                    assert_eq!(m.timer_cancel(t), Ok(true));
                    deadline[t as usize] = 0;
                }
                _ => {}
            }
        }
        m.check().unwrap();
        let mut fired = vec![0u32; n as usize];
        let mut sorted: Vec<u64> = deadline.iter().copied().filter(|&d| d != 0).collect();
        sorted.sort_unstable();
        // Poll at every deadline's tick end.
        let mut polls: Vec<u64> = sorted.iter().map(|d| d.div_ceil(tick) * tick).collect();
        polls.dedup();
        for &now in &polls {
            while let Some(d) = m.timer_pop_due(lease, now).unwrap() {
                let dl = deadline[d.slot as usize];
                assert!(dl != 0, "cancelled timer {} fired", d.slot);
                assert!(dl <= now, "timer {} fired {} ns early", d.slot, dl - now);
                assert!(
                    now - dl < tick,
                    "timer {} fired {} ns late",
                    d.slot,
                    now - dl
                );
                assert_eq!(d.pc, d.slot, "callback of its own arm");
                fired[d.slot as usize] += 1;
                lease.clear_inflight();
            }
        }
        for (t, &d) in deadline.iter().enumerate() {
            assert_eq!(fired[t], u32::from(d != 0), "timer {t}");
        }
        assert_eq!(m.timers_armed(), 0);
        m.check().unwrap();
        *polls.last().unwrap()
    }

    #[test]
    fn freeing_an_element_cancels_its_timer() {
        let s = store();
        for t in [BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_ARRAY] {
            let m = timer_map(&s, t, 8);
            for k in 0..4 {
                put(&m, k);
                let ts = slot(&m, k);
                m.timer_init(ts, 1).unwrap();
                m.timer_set_callback(ts, 1, 1).unwrap();
                m.timer_start(ts, monotonic_ns() + (1 << 40), false)
                    .unwrap();
            }
            assert_eq!(m.timers_armed(), 4);
            // Update of an existing key: the element holding the timer goes away
            // (arrays: the update frees the timer in place).
            put(&m, 0);
            assert_eq!(m.timers_armed(), 3, "map type {t}: update");
            let s0 = slot(&m, 0);
            assert_eq!(m.timer_cancel(s0), Err(-libc::EINVAL), "fresh timer");
            if t != BPF_MAP_TYPE_ARRAY {
                m.delete(&1u32.to_ne_bytes()).unwrap();
                assert_eq!(m.timers_armed(), 2, "map type {t}: delete");
            }
            if t == BPF_MAP_TYPE_LRU_HASH {
                // More keys than the LRU holds evict the armed elements.
                for k in 10..30 {
                    put(&m, k);
                }
                assert_eq!(m.timers_armed(), 0, "map type {t}: eviction");
            }
            m.check().unwrap();
        }
    }

    #[test]
    fn removing_a_map_cancels_its_timers() {
        let s = store();
        let m = timer_map(&s, BPF_MAP_TYPE_ARRAY, 2);
        let t = slot(&m, 0);
        m.timer_init(t, 1).unwrap();
        m.timer_set_callback(t, 1, 1).unwrap();
        m.timer_start(t, monotonic_ns(), false).unwrap();
        s.remove_map(m.id()).unwrap();
        assert_eq!(m.timers_armed(), 0);
    }

    #[test]
    fn one_driver_at_a_time_and_a_dead_ones_lease_is_taken_over() {
        let s = store();
        let m = timer_map(&s, BPF_MAP_TYPE_ARRAY, 2);
        let lease = s.timer_lease().unwrap();
        assert!(matches!(
            s.timer_lease(),
            Err(MapError::TimerLeaseHeld { .. })
        ));
        let t = slot(&m, 1);
        m.timer_init(t, 1).unwrap();
        m.timer_set_callback(t, 1, 1).unwrap();
        m.timer_start(t, 5, false).unwrap();
        let due = m.timer_pop_due(&lease, monotonic_ns()).unwrap().unwrap();
        // The driver dies with the callback in flight.
        std::mem::forget(lease);
        let w = lease_words(s.shm()).unwrap();
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let dead = c.id();
        c.wait().unwrap();
        w.pid.store(dead, Ordering::Relaxed);
        let next = s.timer_lease().unwrap();
        assert!(next.took_over());
        assert_eq!(next.inherited(), Some((m.id(), t, due.gen)));
        // Unchanged since: it runs again. After a re-arm it would not.
        assert!(m.timer_still_due(&due, true).is_some());
        m.timer_start(t, 5, false).unwrap();
        assert!(m.timer_still_due(&due, true).is_none());
    }

    #[test]
    fn a_dead_holder_of_the_wheel_lock_leaves_a_wheel_that_is_rebuilt() {
        let s = store();
        let m = timer_map(&s, BPF_MAP_TYPE_HASH, 8);
        for k in 0..8 {
            put(&m, k);
            let t = slot(&m, k);
            m.timer_init(t, 1).unwrap();
            m.timer_set_callback(t, 1, 1).unwrap();
            m.timer_start(t, monotonic_ns() + u64::from(k) * 1_000_000_000, false)
                .unwrap();
        }
        let (h, _) = m.wheel_header().unwrap();
        // A holder died between two stores: a list head lost, the lock still his.
        let list = (0..NLISTS)
            .find(|&l| h.heads[l].load(Ordering::Relaxed) != 0)
            .unwrap();
        h.heads[list].store(0, Ordering::Relaxed);
        assert!(m.check().is_err());
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let dead = c.id();
        c.wait().unwrap();
        h.lock.store(dead, Ordering::Relaxed);
        assert!(m.needs_repair());
        m.recover().unwrap();
        m.check().unwrap();
        assert_eq!(m.timers_armed(), 8);
    }

    #[test]
    fn corrupt_links_are_errors() {
        let s = store();
        let m = timer_map(&s, BPF_MAP_TYPE_ARRAY, 4);
        let lease = s.timer_lease().unwrap();
        let t = slot(&m, 0);
        m.timer_init(t, 1).unwrap();
        m.timer_set_callback(t, 1, 1).unwrap();
        m.timer_start(t, 10, false).unwrap();
        let (h, _) = m.wheel_header().unwrap();
        h.heads[PENDING].store(u32::MAX, Ordering::Relaxed);
        assert!(matches!(
            m.timer_pop_due(&lease, monotonic_ns()),
            Err(MapError::Corrupt { .. })
        ));
        assert!(m.check().is_err());
        m.repair().unwrap();
        m.check().unwrap();
        assert!(m.timer_pop_due(&lease, monotonic_ns()).unwrap().is_some());
    }

    #[test]
    fn a_later_re_arm_takes_no_lock_and_the_driver_files_it_again() {
        let s = store();
        let m = timer_map(&s, BPF_MAP_TYPE_ARRAY, 4);
        let lease = s.timer_lease().unwrap();
        let tick = m.timer_tick_ns();
        let t = slot(&m, 1);
        m.timer_init(t, 1).unwrap();
        m.timer_set_callback(t, 1, 7).unwrap();
        let d1 = monotonic_ns() + 10 * tick;
        m.timer_start(t, d1, false).unwrap();
        // Another thread holds the wheel's lock: a re-arm to a later deadline
        // still completes (waiting would give up after STORE_LOCK_WAIT with an
        // error).
        let d2 = d1 + 5 * tick;
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|sc| {
            let m2 = &m;
            sc.spawn(move || {
                m2.with_wheel(|_| {
                    held_tx.send(()).unwrap();
                    let _ = done_rx.recv_timeout(std::time::Duration::from_secs(20));
                    Ok(())
                })
                .unwrap();
            });
            held_rx.recv().unwrap();
            let r = m.timer_start(t, d2, false);
            done_tx.send(()).unwrap();
            assert_eq!(r, Ok(()), "a later re-arm waited for the wheel's lock");
        });
        m.check().unwrap();
        assert_eq!(m.timers_armed(), 1);
        // Its old slot comes up: filed again, not fired.
        assert_eq!(
            m.timer_pop_due(&lease, d1.div_ceil(tick) * tick).unwrap(),
            None
        );
        m.check().unwrap();
        assert_eq!(m.timers_armed(), 1);
        assert_eq!(m.timer_pop_due(&lease, d2 - tick).unwrap(), None);
        let due = m
            .timer_pop_due(&lease, d2.div_ceil(tick) * tick)
            .unwrap()
            .expect("due at its new deadline");
        assert_eq!((due.slot, due.pc), (t, 7));
        lease.clear_inflight();
        assert_eq!(m.timers_armed(), 0);
        assert_eq!(m.timer_pop_due(&lease, d2 + 100 * tick).unwrap(), None);
        // An earlier re-arm moves it under the lock.
        m.timer_start(t, d2 + 50 * tick, false).unwrap();
        m.timer_start(t, d2 + 20 * tick, false).unwrap();
        assert_eq!(m.timer_pop_due(&lease, d2 + 19 * tick).unwrap(), None);
        assert!(m.timer_pop_due(&lease, d2 + 21 * tick).unwrap().is_some());
        lease.clear_inflight();
        m.check().unwrap();
    }

    #[test]
    fn re_arms_without_the_lock_race_the_driver_and_no_start_is_lost() {
        let s = store();
        let m = timer_map(&s, BPF_MAP_TYPE_ARRAY, 4);
        let lease = s.timer_lease().unwrap();
        let tick = m.timer_tick_ns();
        let t = slot(&m, 0);
        m.timer_init(t, 1).unwrap();
        m.timer_set_callback(t, 1, 3).unwrap();
        let base = monotonic_ns();
        let latest = std::sync::atomic::AtomicU64::new(base + tick);
        m.timer_start(t, base + tick, false).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        /// Stops the re-arming thread however the driver's loop ends (a failed
        /// assertion there must fail the test, not leave it waiting forever).
        struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let mut last_fire = None;
        std::thread::scope(|sc| {
            let _stop = Stop(&stop);
            sc.spawn(|| {
                // Re-arms always later: base + k ticks, one tick ahead of the driver
                // most of the time.
                let mut k = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    k += 1;
                    let d = base + k * tick / 4;
                    latest.store(d, Ordering::SeqCst);
                    m.timer_start(t, d, false).unwrap();
                }
            });
            // The driver's clock hovers around the timer's deadline: some pops find
            // it due, some find it re-armed later.
            for j in 0..100_000u64 {
                let now = (latest.load(Ordering::SeqCst) + (j % 3) * tick).saturating_sub(tick);
                if let Some(due) = m.timer_pop_due(&lease, now).unwrap() {
                    // Fired: the thread's next start arms it again.
                    assert_eq!(due.slot, t);
                    lease.clear_inflight();
                    last_fire = Some(now);
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
        m.check().unwrap();
        // The last start won: the timer fired at or after its deadline, or it is
        // still armed for it (no start lost to a driver taking the timer meanwhile)
        // and fires there.
        let last = latest.load(Ordering::SeqCst);
        if m.timers_armed() == 0 {
            let fired = last_fire.expect("neither armed nor fired");
            assert!(
                fired / tick >= last.div_ceil(tick),
                "the last start (deadline {last}) was lost: last fire at {fired}"
            );
            return;
        }
        assert_eq!(m.timers_armed(), 1);
        let far = last.div_ceil(tick) * tick;
        assert!(m.timer_pop_due(&lease, far).unwrap().is_some());
        lease.clear_inflight();
        assert_eq!(m.timers_armed(), 0);
    }
}
