//! Who fires `bpf_timer`s: the driver of a store's timer wheels.
//!
//! A [`TimerDriver`] holds the store's timer lease (one driver per store at a time;
//! a dead driver's lease is taken over, see `maps/src/timer.rs`) and, at each
//! [`TimerDriver::fire_due`], takes every due timer off the wheels of the store's maps
//! and runs its callback `(map, key, value)` in the engine that holds its program
//! ([`CallbackEngine`]): the interpreter ([`LoadedObject`]), the JIT
//! ([`JitObject`]), or programs loaded from the store on demand
//! ([`StoredPrograms`], for a driver in another process than the one that loaded
//! them, such as `xdp-runner timers`). Callbacks run on the driver's `Vm`, so with
//! its worker index (`bpf_get_smp_processor_id()`, per-CPU slots).
//!
//! ```no_run
//! use runtime::timers::TimerDriver;
//! use runtime::{LoadedObject, Vm};
//! # let (store, loaded): (maps::Store, LoadedObject) = todo!();
//! let mut driver = TimerDriver::new(&store)?;
//! let mut vm = Vm::new(0);
//! // ... runs that start timers ...
//! let fired = driver.fire_due(maps::timer::monotonic_ns(), &mut vm, &loaded)?;
//! # Ok::<(), maps::MapError>(())
//! ```
//!
//! A callback that traps is counted ([`FireStats::traps`]) and the others still run;
//! a callback whose program no engine holds is counted as `orphans`.
//!
//! For benchmarks: `fire_due(now)` both advances the wheels to `now` and fires what is
//! due (callers may pass any monotonic `now`, e.g. to step time); [`TimerDriver::armed`]
//! and `maps::Map::timers_armed` count armed timers; `maps::Map::timer_bytes` /
//! `timer_slots` give a map's bytes of timer state and its slots
//! (`maps::timer::ENTRY_BYTES`, 40, per element slot plus one wheel header per map).

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use maps::timer::{monotonic_ns, Due};
use maps::{Map, MapError, Store, TimerLease};

use crate::error::Trap;
use crate::jit::JitObject;
use crate::memory::ValueArea;
use crate::xdp::Packet;
use crate::{LoadedObject, Vm};

/// Runs `bpf_timer` callbacks.
pub trait CallbackEngine {
    /// Runs the callback at slot `pc` of the program with store id `prog` with r1 =
    /// map `map_id`'s handle, r2 = `key`, r3 = `value`; None when this engine does
    /// not hold that program (or the map).
    #[allow(clippy::too_many_arguments)]
    fn run_callback(
        &self,
        vm: &mut Vm,
        prog: u32,
        pc: u32,
        map_id: u32,
        key: &[u8],
        value: u64,
        slot: u32,
        pkt: &mut Packet,
    ) -> Option<Result<u64, Trap>>;
}

/// The program index of store program `prog` in `loaded` and the callback's r1..r3
/// (the map's handle, the key, the value), or `None` when either is not there.
fn callback_args(
    loaded: &LoadedObject,
    prog: u32,
    map_id: u32,
    key: &[u8],
    value: u64,
) -> Option<(usize, [u64; 3])> {
    let entry = loaded.programs.iter().position(|p| p.store_id == prog)?;
    let map = loaded.maps.by_id(map_id)?;
    Some((entry, [map.handle_addr(), key.as_ptr() as u64, value]))
}

impl CallbackEngine for LoadedObject {
    fn run_callback(
        &self,
        vm: &mut Vm,
        prog: u32,
        pc: u32,
        map_id: u32,
        key: &[u8],
        value: u64,
        slot: u32,
        pkt: &mut Packet,
    ) -> Option<Result<u64, Trap>> {
        let (entry, args) = callback_args(self, prog, map_id, key, value)?;
        Some(vm.run_timer_callback(
            &self.env(),
            entry,
            pc as usize,
            args,
            ValueArea::read_only(key),
            pkt,
            (map_id, slot),
        ))
    }
}

impl CallbackEngine for JitObject<'_> {
    fn run_callback(
        &self,
        vm: &mut Vm,
        prog: u32,
        pc: u32,
        map_id: u32,
        key: &[u8],
        value: u64,
        slot: u32,
        pkt: &mut Packet,
    ) -> Option<Result<u64, Trap>> {
        let (entry, args) = callback_args(self.loaded_object(), prog, map_id, key, value)?;
        Some(self.run_timer_callback(
            vm,
            entry,
            pc as usize,
            args,
            ValueArea::read_only(key),
            pkt,
            (map_id, slot),
        ))
    }
}

/// Programs of a store, loaded (for the interpreter) the first time one of their
/// callbacks is due: a driver in a process that did not load them.
pub struct StoredPrograms {
    store: Store,
    loaded: RefCell<HashMap<u32, Option<LoadedObject>>>,
}

impl StoredPrograms {
    pub fn new(store: &Store) -> StoredPrograms {
        StoredPrograms {
            store: store.clone(),
            loaded: RefCell::new(HashMap::new()),
        }
    }
}

impl CallbackEngine for StoredPrograms {
    fn run_callback(
        &self,
        vm: &mut Vm,
        prog: u32,
        pc: u32,
        map_id: u32,
        key: &[u8],
        value: u64,
        slot: u32,
        pkt: &mut Packet,
    ) -> Option<Result<u64, Trap>> {
        let mut cache = self.loaded.borrow_mut();
        let obj = cache.entry(prog).or_insert_with(|| {
            LoadedObject::from_store(&self.store, prog)
                .ok()
                .map(|(mut o, i)| {
                    // `from_store` may place programs at `id - 1`: the callback's
                    // program is found by its store id.
                    o.programs[i].store_id = prog;
                    o
                })
        });
        obj.as_ref()?
            .run_callback(vm, prog, pc, map_id, key, value, slot, pkt)
    }
}

/// What [`TimerDriver::fire_due`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FireStats {
    /// Callbacks run.
    pub fired: u64,
    /// Callbacks that trapped.
    pub traps: u64,
    /// Due timers whose program no engine holds (their callbacks did not run).
    pub orphans: u64,
    /// Callbacks a dead driver had in flight, run again.
    pub inherited: u64,
}

impl std::ops::AddAssign for FireStats {
    fn add_assign(&mut self, o: FireStats) {
        self.fired += o.fired;
        self.traps += o.traps;
        self.orphans += o.orphans;
        self.inherited += o.inherited;
    }
}

/// The driver of one store's timers (see the module docs).
pub struct TimerDriver {
    store: Store,
    lease: TimerLease,
    ids: Vec<u32>,
    maps: Vec<Map>,
    tick_ns: Option<u64>,
    refreshed: Option<Instant>,
    key: Vec<u8>,
    pkt: Packet,
    /// The last callback trap, for reports.
    pub last_trap: Option<Trap>,
}

impl TimerDriver {
    /// Takes the store's timer lease (`MapError::TimerLeaseHeld` when a live process
    /// drives it).
    pub fn new(store: &Store) -> Result<TimerDriver, MapError> {
        let lease = store.timer_lease()?;
        let pkt = Packet::new(&[0u8; 64]).map_err(|e| MapError::Corrupt {
            id: 0,
            what: format!("callback frame: {e}"),
        })?;
        Ok(TimerDriver {
            store: store.clone(),
            lease,
            ids: Vec::new(),
            maps: Vec::new(),
            tick_ns: None,
            refreshed: None,
            key: Vec::new(),
            pkt,
            last_trap: None,
        })
    }

    /// The lease was taken over from a driver that died.
    pub fn took_over(&self) -> bool {
        self.lease.took_over()
    }

    /// Sets the wheels' tick (ns; `maps::timer::DEFAULT_TICK_NS` unless set): each
    /// wheel with another tick is rebuilt.
    pub fn set_tick(&mut self, tick_ns: u64) -> Result<(), MapError> {
        self.tick_ns = Some(tick_ns);
        self.ids.clear();
        self.refreshed = None;
        self.refresh()
    }

    /// Picks up maps created or removed since the last look, at most every 10 ms (a
    /// removed map's timers were cancelled with it).
    fn refresh(&mut self) -> Result<(), MapError> {
        if self
            .refreshed
            .is_some_and(|t| t.elapsed() < Duration::from_millis(10))
        {
            return Ok(());
        }
        self.refreshed = Some(Instant::now());
        let ids = self.store.map_ids();
        if ids == self.ids {
            return Ok(());
        }
        self.maps.clear();
        for &id in &ids {
            let Ok(m) = self.store.map_by_id(id) else {
                continue;
            };
            if m.timer_slots() == 0 {
                continue;
            }
            if let Some(t) = self.tick_ns {
                m.timer_set_tick(t)?;
            }
            self.maps.push(m);
        }
        self.ids = ids;
        Ok(())
    }

    /// Timers armed in the store.
    pub fn armed(&mut self) -> u64 {
        let _ = self.refresh();
        self.maps.iter().map(|m| m.timers_armed()).sum()
    }

    /// The earliest deadline of an armed timer (monotonic ns, at tick precision).
    pub fn next_deadline(&mut self) -> Option<u64> {
        let _ = self.refresh();
        self.maps
            .iter()
            .filter_map(|m| m.timer_next_deadline())
            .min()
    }

    /// Runs the callback of every timer due at `now` (monotonic ns), in `engine`.
    pub fn fire_due(
        &mut self,
        now: u64,
        vm: &mut Vm,
        engine: &dyn CallbackEngine,
    ) -> Result<FireStats, MapError> {
        self.refresh()?;
        let mut st = FireStats::default();
        if let Some((map_id, slot, gen)) = self.lease.take_inherited() {
            if let Some(i) = self.maps.iter().position(|m| m.id() == map_id) {
                let probe = Due {
                    slot,
                    gen,
                    prog: 0,
                    pc: 0,
                };
                if let Some(due) = self.maps[i].timer_still_due(&probe, true) {
                    self.run(i, due, vm, engine, &mut st);
                    st.inherited += 1;
                }
            }
            self.lease.clear_inflight();
        }
        for i in 0..self.maps.len() {
            // A callback that re-arms itself for `now` is due again: at most two
            // rounds of the map's timers per call.
            let bound = 2 * u64::from(self.maps[i].timer_slots()) + 16;
            for _ in 0..bound {
                let Some(due) = self.maps[i].timer_pop_due(&self.lease, now)? else {
                    break;
                };
                self.run(i, due, vm, engine, &mut st);
                self.lease.clear_inflight();
            }
        }
        self.lease.heartbeat();
        Ok(st)
    }

    fn run(
        &mut self,
        i: usize,
        due: Due,
        vm: &mut Vm,
        engine: &dyn CallbackEngine,
        st: &mut FireStats,
    ) {
        let m = &self.maps[i];
        self.key.resize(m.info().key_size as usize, 0);
        let (Some(()), Some((_, value))) = (
            m.timer_key(due.slot, &mut self.key),
            m.timer_element(due.slot),
        ) else {
            st.orphans += 1;
            return;
        };
        match engine.run_callback(
            vm,
            due.prog,
            due.pc,
            m.id(),
            &self.key,
            value,
            due.slot,
            &mut self.pkt,
        ) {
            Some(Ok(_)) => st.fired += 1,
            Some(Err(t)) => {
                st.fired += 1;
                st.traps += 1;
                self.last_trap = Some(t);
            }
            None => st.orphans += 1,
        }
    }

    /// Fires due timers until `until` returns true, `max` has passed, or (with
    /// `stop_when_idle`) no timer is armed; sleeps until the next deadline between
    /// rounds (at most `poll`).
    pub fn run_for(
        &mut self,
        max: Duration,
        poll: Duration,
        stop_when_idle: bool,
        vm: &mut Vm,
        engine: &dyn CallbackEngine,
        until: &dyn Fn() -> bool,
    ) -> Result<FireStats, MapError> {
        let start = Instant::now();
        let mut total = FireStats::default();
        loop {
            let round = self.fire_due(monotonic_ns(), vm, engine)?;
            total += round;
            if until() || start.elapsed() >= max || (stop_when_idle && self.armed() == 0) {
                return Ok(total);
            }
            let now = monotonic_ns();
            let wait = self.next_deadline().map_or(poll, |d| {
                Duration::from_nanos(d.saturating_sub(now)).min(poll)
            });
            // Timers fell due while this round ran: fire them now. A sleep, however
            // short, gives the processor away, and on a loaded machine getting it
            // back takes milliseconds: that made the tail of the lateness. A round
            // that fired nothing sleeps anyway, so a due slot that holds no timer
            // to fire cannot spin.
            if wait.is_zero() && round.fired + round.orphans > 0 {
                continue;
            }
            let left = max.saturating_sub(start.elapsed());
            std::thread::sleep(wait.min(left).max(Duration::from_micros(50)));
        }
    }
}
