//! Workers: each owns a fixed worker index for its lifetime (its
//! `bpf_get_smp_processor_id()` and per-CPU map slot), one frame buffer in the
//! kernel's geometry, and its counters; it runs one program on one frame at a time.

use runtime::jit::{JitObject, JitOptions};
use runtime::{action, LoadedObject, Packet, Trap, Vm};

use crate::counters::{Counter, Counts, SharedCounters, WorkerCounters};
use crate::error::DataplaneError;
use crate::io::FrameMeta;

/// How programs run: the runtime's engines.
pub use runtime::Engine;

/// What became of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// XDP_ABORTED, a return value that is no XDP action, or a run that trapped.
    Aborted,
    Drop,
    Pass,
    Tx,
    Redirect,
    /// Not run: shorter than an Ethernet header (the kernel's test run refuses it
    /// with EINVAL, and no driver hands such a frame to XDP).
    Runt,
    /// Not run: longer than a frame buffer holds (3520 bytes) for a program without
    /// frags support (a driver never hands it such a frame, since it refuses to
    /// attach one to an interface whose MTU allows them), or longer than a
    /// multi-buffer frame holds (3520 bytes and 17 fragments of 4096) for an
    /// `xdp.frags` program.
    Oversize,
}

impl Verdict {
    /// Every verdict.
    pub const ALL: [Verdict; 7] = [
        Verdict::Aborted,
        Verdict::Drop,
        Verdict::Pass,
        Verdict::Tx,
        Verdict::Redirect,
        Verdict::Runt,
        Verdict::Oversize,
    ];

    /// The verdict of a run that returned `retval`.
    pub fn from_retval(retval: u32) -> Verdict {
        match retval {
            action::DROP => Verdict::Drop,
            action::PASS => Verdict::Pass,
            action::TX => Verdict::Tx,
            action::REDIRECT => Verdict::Redirect,
            _ => Verdict::Aborted,
        }
    }

    /// Lower-case name, as in output file names and `--json` keys.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Aborted => "aborted",
            Verdict::Drop => "drop",
            Verdict::Pass => "pass",
            Verdict::Tx => "tx",
            Verdict::Redirect => "redirect",
            Verdict::Runt => "runt",
            Verdict::Oversize => "oversize",
        }
    }

    /// The counter this verdict adds to.
    pub fn counter(self) -> Counter {
        match self {
            Verdict::Aborted => Counter::Aborted,
            Verdict::Drop => Counter::Drop,
            Verdict::Pass => Counter::Pass,
            Verdict::Tx => Counter::Tx,
            Verdict::Redirect => Counter::Redirect,
            Verdict::Runt => Counter::Runt,
            Verdict::Oversize => Counter::Oversize,
        }
    }

    /// Whether the program ran on the frame.
    pub fn ran(self) -> bool {
        !matches!(self, Verdict::Runt | Verdict::Oversize)
    }
}

/// Settings of a data plane.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub engine: Engine,
    /// How many workers; each needs a per-CPU slot of the store.
    pub workers: u32,
    /// The step budget of each run ([`runtime::DEFAULT_MAX_STEPS`]).
    pub max_steps: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            engine: Engine::Interpreter,
            workers: 1,
            max_steps: runtime::DEFAULT_MAX_STEPS,
        }
    }
}

/// Runs in the program statistics are added to the store in groups of this many.
const STATS_BATCH: u64 = 256;

/// One program of a loaded object, set up to run on `workers` workers.
#[derive(Debug)]
pub struct Dataplane<'a> {
    store: &'a maps::Store,
    loaded: &'a LoadedObject,
    prog: usize,
    config: Config,
    counters: SharedCounters,
}

impl<'a> Dataplane<'a> {
    /// Program `prog` of `loaded` (whose maps live in `store`) on `config.workers`
    /// workers: at most the store's per-CPU slot count. Creates the counters map
    /// ([`crate::counters`]) in the store.
    pub fn new(
        store: &'a maps::Store,
        loaded: &'a LoadedObject,
        prog: usize,
        config: Config,
    ) -> Result<Dataplane<'a>, DataplaneError> {
        if config.workers == 0 {
            return Err(DataplaneError::NoWorkers);
        }
        if config.workers > store.ncpus() {
            return Err(DataplaneError::TooManyWorkers {
                workers: config.workers,
                slots: store.ncpus(),
            });
        }
        let Some(p) = loaded.programs.get(prog) else {
            return Err(DataplaneError::NoSuchProgram {
                index: prog,
                count: loaded.programs.len(),
            });
        };
        let counters = SharedCounters::create(store, &p.name)?;
        Ok(Dataplane {
            store,
            loaded,
            prog,
            config,
            counters,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn workers(&self) -> u32 {
        self.config.workers
    }

    pub fn loaded(&self) -> &'a LoadedObject {
        self.loaded
    }

    pub fn store(&self) -> &'a maps::Store {
        self.store
    }

    /// The index of the program in `loaded().programs`.
    pub fn program(&self) -> usize {
        self.prog
    }

    pub fn program_name(&self) -> &str {
        &self.loaded.programs[self.prog].name
    }

    /// The counters map in the store.
    pub fn counters(&self) -> &SharedCounters {
        &self.counters
    }

    /// Worker `index` (below [`Dataplane::workers`]): with the JIT, the object is
    /// compiled for it. Create each worker once; two workers of one index would
    /// share per-CPU slots. A `Worker` is not `Send` (the engines keep raw pointers
    /// to the programs): create it on the thread that runs it, e.g. inside
    /// `std::thread::scope` (the `Dataplane` is `Sync`).
    pub fn worker(&self, index: u32) -> Result<Worker<'_>, DataplaneError> {
        if index >= self.config.workers {
            return Err(DataplaneError::NoSuchWorker {
                index,
                workers: self.config.workers,
            });
        }
        let exec = match self.config.engine {
            Engine::Interpreter => Exec::Interpreter,
            Engine::Jit => Exec::Jit(Box::new(
                JitObject::compile(self.loaded, &JitOptions::default()).map_err(|e| {
                    DataplaneError::Jit {
                        prog: self.program_name().to_string(),
                        reason: e.to_string(),
                    }
                })?,
            )),
        };
        let pkt = Packet::new(&[0u8; runtime::xdp::ETH_HLEN]).map_err(|source| {
            DataplaneError::Buffer {
                worker: index,
                source,
            }
        })?;
        Ok(Worker {
            index,
            dp: self,
            exec,
            vm: Vm::new(index).with_max_steps(self.config.max_steps),
            pkt,
            counters: self.counters.worker(index)?,
            pending_runs: 0,
            pending_ns: 0,
            frags: loader::program_type(&self.loaded.programs[self.prog].section).1,
            out: Vec::new(),
        })
    }
}

enum Exec<'a> {
    Interpreter,
    Jit(Box<JitObject<'a>>),
}

/// What a worker did with one frame. The frame's bytes are borrowed from the
/// worker's buffer (or, for frames that did not run, from the input).
#[derive(Debug)]
pub struct Outcome<'w> {
    pub verdict: Verdict,
    /// The program's return value, when it ran to its end.
    pub retval: Option<u32>,
    /// The trap that ended the run, if one did.
    pub trap: Option<Trap>,
    /// The frame as the program left it, `data .. data_end`.
    pub data: &'w [u8],
    /// The metadata area, `data_meta .. data`.
    pub meta: &'w [u8],
    /// For [`Verdict::Redirect`]: where to.
    pub redirect: Option<runtime::helpers::Redirect>,
}

/// A thread's share of a data plane: a fixed worker index, a frame buffer, a VM.
pub struct Worker<'d> {
    index: u32,
    dp: &'d Dataplane<'d>,
    exec: Exec<'d>,
    vm: Vm,
    pkt: Packet,
    counters: WorkerCounters,
    /// Runs not yet added to the program's statistics in the store.
    pending_runs: u64,
    pending_ns: u64,
    /// Whether the program takes multi-buffer frames (`xdp.frags`).
    frags: bool,
    /// The frame after a multi-buffer run: the linear part, then the fragments.
    out: Vec<u8>,
}

impl std::fmt::Debug for Worker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .field("counts", &self.counters.counts())
            .finish()
    }
}

impl<'d> Worker<'d> {
    /// The worker index: `bpf_get_smp_processor_id()` and the per-CPU slot.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        self.counters.counts()
    }

    /// Runs the program once on `frame`, in the worker's buffer (reset to the
    /// kernel's geometry: zeroed headroom, the frame, zeroed tailroom), and counts
    /// the result. Frames that cannot be run (runts, oversize) are counted and
    /// returned unchanged. An `xdp.frags` program runs frames past 3520 bytes as the
    /// kernel lays them out: the linear part, then page fragments.
    pub fn run<'s>(&'s mut self, frame: &'s [u8], meta: &FrameMeta) -> Outcome<'s> {
        self.counters.add(Counter::Packets, 1);
        self.counters.add(Counter::Bytes, frame.len() as u64);
        let skipped = if frame.len() < runtime::xdp::ETH_HLEN {
            Some(Verdict::Runt)
        } else if frame.len() > runtime::xdp::MAX_PACKET && !self.frags {
            Some(Verdict::Oversize)
        } else {
            None
        };
        if let Some(verdict) =
            skipped.or_else(|| self.pkt.reset(frame).err().map(|_| Verdict::Oversize))
        {
            self.counters.add(verdict.counter(), 1);
            return Outcome {
                verdict,
                retval: None,
                trap: None,
                data: frame,
                meta: &[],
                redirect: None,
            };
        }
        if meta.ingress_ifindex != 0 {
            self.pkt
                .set_rx_info(meta.ingress_ifindex, meta.rx_queue_index);
        }
        // One run, timed by the engine (two clock reads, as the kernel's bpf_stats).
        let result = match &self.exec {
            Exec::Interpreter => {
                self.dp
                    .loaded
                    .run_repeated(&mut self.vm, self.dp.prog, &mut self.pkt, 1)
            }
            Exec::Jit(jit) => jit.run_repeated(&mut self.vm, self.dp.prog, &mut self.pkt, 1),
        };
        let ns = result.as_ref().map_or(0, |r| {
            u64::try_from(r.elapsed.as_nanos()).unwrap_or(u64::MAX)
        });
        let result = result.map(|r| r.retval);
        self.counters.add(Counter::RunNs, ns);
        self.pending_runs += 1;
        self.pending_ns += ns;
        if self.pending_runs >= STATS_BATCH {
            // Statistics are best effort while running; `finish` reports errors.
            let _ = self.flush_stats();
        }
        let (verdict, retval, trap) = match result {
            Ok(r0) => {
                let r = r0 as u32;
                let v = Verdict::from_retval(r);
                if v == Verdict::Aborted && r != action::ABORTED {
                    self.counters.add(Counter::InvalidAction, 1);
                }
                (v, Some(r), None)
            }
            Err(trap) => {
                self.counters.add(Counter::Errors, 1);
                (Verdict::Aborted, None, Some(trap))
            }
        };
        self.counters.add(verdict.counter(), 1);
        let redirect = if verdict == Verdict::Redirect {
            self.pkt.redirect()
        } else {
            None
        };
        let meta_len = self.pkt.meta_len();
        let all = if self.pkt.has_frags() {
            self.pkt.data_out_into(&mut self.out);
            &self.out[..]
        } else {
            self.pkt.data_with_meta()
        };
        Outcome {
            verdict,
            retval,
            trap,
            data: &all[meta_len..],
            meta: &all[..meta_len],
            redirect,
        }
    }

    /// Adds the runs not yet accounted to the program's run_cnt and run_time_ns in
    /// the store.
    pub fn flush_stats(&mut self) -> Result<(), DataplaneError> {
        if self.pending_runs == 0 {
            return Ok(());
        }
        let id = self.dp.loaded.programs[self.dp.prog].store_id;
        let (runs, ns) = (self.pending_runs, self.pending_ns);
        self.pending_runs = 0;
        self.pending_ns = 0;
        self.dp
            .store
            .add_program_runs(id, runs, ns)
            .map_err(|source| DataplaneError::ProgramStats { id, source })
    }

    /// Accounts the last runs and returns the worker's counts.
    pub fn finish(mut self) -> Result<Counts, DataplaneError> {
        self.flush_stats()?;
        Ok(self.counters.counts())
    }
}

impl Drop for Worker<'_> {
    fn drop(&mut self) {
        let _ = self.flush_stats();
    }
}
