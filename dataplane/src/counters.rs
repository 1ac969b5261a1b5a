//! Per-worker counters kept in the store, where another process reads them while
//! the data plane runs (`xdp-runner stats`).
//!
//! They live in a per-CPU array map of the store (named [`MAP_NAME`], pinned as
//! `dataplane/<program name>`): key `k` is counter `k` ([`Counter`]), and each
//! worker writes only its own slot, the one its worker index selects, as a program
//! on that worker would. A slot's [`Counter::Active`] is 1 once its worker exists.
//! Readers use the map's ordinary lookup (word-wise atomic copies).
//!
//! This module holds unsafe code: each worker keeps the addresses of its slots and
//! stores to them as atomics.
#![deny(unsafe_op_in_unsafe_fn)]

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::DataplaneError;

/// The name of the counters map in the store.
pub const MAP_NAME: &str = "dp_counters";
/// Pins of counters maps start with this.
pub const PIN_PREFIX: &str = "dataplane/";

/// One counter of a worker. The discriminant is the map key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Counter {
    /// 1 once the worker of this slot exists.
    Active = 0,
    /// Frames taken from the source (run or not).
    Packets = 1,
    /// Their bytes.
    Bytes = 2,
    Aborted = 3,
    Drop = 4,
    Pass = 5,
    Tx = 6,
    Redirect = 7,
    /// Runs that ended in a trap (counted as aborted too).
    Errors = 8,
    /// Runs that returned a value that is no XDP action (counted as aborted too).
    InvalidAction = 9,
    /// Frames shorter than an Ethernet header, not run.
    Runt = 10,
    /// Frames longer than a frame buffer holds, not run.
    Oversize = 11,
    /// Time spent in program runs.
    RunNs = 12,
}

impl Counter {
    /// Every counter, in key order.
    pub const ALL: [Counter; 13] = [
        Counter::Active,
        Counter::Packets,
        Counter::Bytes,
        Counter::Aborted,
        Counter::Drop,
        Counter::Pass,
        Counter::Tx,
        Counter::Redirect,
        Counter::Errors,
        Counter::InvalidAction,
        Counter::Runt,
        Counter::Oversize,
        Counter::RunNs,
    ];
    /// How many there are: the map's max_entries.
    pub const COUNT: usize = Counter::ALL.len();

    /// The name used in output (`--json` keys).
    pub fn name(self) -> &'static str {
        match self {
            Counter::Active => "active",
            Counter::Packets => "packets",
            Counter::Bytes => "bytes",
            Counter::Aborted => "aborted",
            Counter::Drop => "drop",
            Counter::Pass => "pass",
            Counter::Tx => "tx",
            Counter::Redirect => "redirect",
            Counter::Errors => "errors",
            Counter::InvalidAction => "invalid_action",
            Counter::Runt => "runt",
            Counter::Oversize => "oversize",
            Counter::RunNs => "run_ns",
        }
    }
}

/// A set of counter values, indexed by [`Counter`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts(pub [u64; Counter::COUNT]);

impl Counts {
    pub fn get(&self, c: Counter) -> u64 {
        self.0[c as usize]
    }

    /// Adds `other` to these counts (for totals over workers).
    pub fn add(&mut self, other: &Counts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

/// The counters map of one data plane, in a store.
#[derive(Clone)]
pub struct SharedCounters {
    map: maps::Map,
    pin: String,
}

impl std::fmt::Debug for SharedCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCounters")
            .field("map", &self.map.id())
            .field("pin", &self.pin)
            .finish()
    }
}

impl SharedCounters {
    /// Creates the counters map of the program `prog` and pins it as
    /// `dataplane/<prog>`, replacing (and removing) the map an earlier run left there.
    pub fn create(store: &maps::Store, prog: &str) -> Result<SharedCounters, DataplaneError> {
        let fail = |reason: String| DataplaneError::Counters { reason };
        let def = maps::MapDef {
            map_type: runtime::maptable::types::PERCPU_ARRAY,
            key_size: 4,
            value_size: 8,
            max_entries: Counter::COUNT as u32,
            map_flags: 0,
            name: MAP_NAME.to_string(),
            btf_key_type_id: 0,
            btf_value_type_id: 0,
            btf_id: 0,
            holder_pid: 0,
        };
        let map = store
            .create_map(&def)
            .map_err(|e| fail(format!("creating map {MAP_NAME}: {e}")))?;
        let pin = format!("{PIN_PREFIX}{prog}");
        if let Ok(maps::Pinned::Map(old)) = store.pinned(&pin) {
            store
                .unpin(&pin)
                .map_err(|e| fail(format!("unpinning {pin}: {e}")))?;
            // The old map is only named by the pin: remove it with it.
            let _ = store.remove_map(old);
        }
        store
            .pin(&pin, maps::Pinned::Map(map.id()))
            .map_err(|e| fail(format!("pinning {pin}: {e}")))?;
        Ok(SharedCounters { map, pin })
    }

    /// Every data plane counters map of the store, by pin.
    pub fn list(store: &maps::Store) -> Vec<SharedCounters> {
        store
            .pins()
            .into_iter()
            .filter(|(path, _)| path.starts_with(PIN_PREFIX))
            .filter_map(|(pin, what)| match what {
                maps::Pinned::Map(id) => {
                    let map = store.map_by_id(id).ok()?;
                    let ok = map.info().map_type == runtime::maptable::types::PERCPU_ARRAY
                        && map.info().value_size == 8
                        && map.info().max_entries as usize >= Counter::COUNT;
                    ok.then_some(SharedCounters { map, pin })
                }
                _ => None,
            })
            .collect()
    }

    /// The pin path (`dataplane/<program>`).
    pub fn pin(&self) -> &str {
        &self.pin
    }

    /// The program name the pin carries.
    pub fn program(&self) -> &str {
        self.pin.strip_prefix(PIN_PREFIX).unwrap_or(&self.pin)
    }

    pub fn map(&self) -> &maps::Map {
        &self.map
    }

    /// The counts of every slot whose worker exists, by worker index.
    pub fn read(&self) -> Result<Vec<(u32, Counts)>, maps::MapError> {
        let ncpus = self.map.ncpus() as usize;
        let mut per = vec![Counts::default(); ncpus];
        let mut value = vec![0u8; self.map.user_value_size()];
        for c in Counter::ALL {
            self.map.lookup(&(c as u32).to_ne_bytes(), &mut value)?;
            for (cpu, chunk) in value.chunks(8).enumerate().take(ncpus) {
                per[cpu].0[c as usize] = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]));
            }
        }
        Ok(per
            .into_iter()
            .enumerate()
            .filter(|(_, c)| c.get(Counter::Active) != 0)
            .map(|(i, c)| (i as u32, c))
            .collect())
    }

    /// The counters of worker `index`, which only that worker may write.
    pub(crate) fn worker(&self, index: u32) -> Result<WorkerCounters, DataplaneError> {
        if index >= self.map.ncpus() {
            return Err(DataplaneError::Counters {
                reason: format!(
                    "worker {index} has no slot: the map has {}",
                    self.map.ncpus()
                ),
            });
        }
        let mut slots = [std::ptr::null::<AtomicU64>(); Counter::COUNT];
        for c in Counter::ALL {
            let key = (c as u32).to_ne_bytes();
            // SAFETY: `key` is 4 readable bytes, the map's key size.
            let p = unsafe { self.map.prog_lookup(key.as_ptr(), index) };
            if p.is_null() || !(p as usize).is_multiple_of(8) {
                return Err(DataplaneError::Counters {
                    reason: format!("no 8-byte slot for counter {} of worker {index}", c.name()),
                });
            }
            slots[c as usize] = p.cast::<AtomicU64>();
        }
        let mut w = WorkerCounters {
            _map: self.map.clone(),
            slots,
            local: Counts::default(),
        };
        // Start from zero: the slot may hold a value of an earlier worker.
        for c in Counter::ALL {
            w.store(c, 0);
        }
        w.add(Counter::Active, 1);
        Ok(w)
    }
}

/// One worker's counters: a local copy, stored to the worker's slots after each
/// change (the worker is their only writer).
pub struct WorkerCounters {
    /// Keeps the store mapped while the slot addresses are used.
    _map: maps::Map,
    /// The worker's slot of each counter: 8-byte aligned, inside the map's values.
    slots: [*const AtomicU64; Counter::COUNT],
    local: Counts,
}

// SAFETY: the slot addresses point into the store mapping `_map` keeps alive, which
// is the same in every thread; the atomics are only stored to by the one owner of
// this value.
unsafe impl Send for WorkerCounters {}

impl WorkerCounters {
    fn store(&self, c: Counter, v: u64) {
        // SAFETY: the slot is an aligned 8-byte value of a per-CPU array in the store,
        // which `_map` keeps mapped; every access to store memory is atomic.
        let slot = unsafe { &*self.slots[c as usize] };
        slot.store(v, Ordering::Relaxed);
    }

    /// Adds `n` to counter `c`.
    #[inline]
    pub fn add(&mut self, c: Counter, n: u64) {
        let v = self.local.0[c as usize].wrapping_add(n);
        self.local.0[c as usize] = v;
        self.store(c, v);
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        self.local
    }
}
