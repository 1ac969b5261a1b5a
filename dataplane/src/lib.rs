//! The data plane: XDP programs on frames from packet sources, on worker threads.
//!
//! - [`Dataplane`]: one program of a [`runtime::LoadedObject`], an [`Engine`] and a
//!   worker count (at most the store's per-CPU slots).
//! - [`Worker`]: a fixed worker index for its lifetime (`bpf_get_smp_processor_id()`
//!   and the per-CPU slot), one frame buffer in the kernel's geometry reused for
//!   every frame, counters in the store ([`counters`]), and the program's run_cnt /
//!   run_time_ns in the store.
//! - [`Source`] and [`Sink`]: where frames come from and go to; [`capture`] reads
//!   pcap and pcapng files and writes pcap files, one per verdict.
//! - [`flow::worker_for`]: the flow hash that keeps a flow on one worker.
//! - [`replay()`]: a source through the workers into the sinks.
//! - [`timers`]: the thread that fires the store's `bpf_timer`s while `replay` or
//!   `attach` runs.
//!
//! ```no_run
//! use dataplane::{capture::{CaptureSource, VerdictSinks}, Config, Dataplane, ReplayOptions};
//! let object = loader::Object::parse(&std::fs::read("prog.o").unwrap()).unwrap();
//! let store = maps::Store::anonymous(Default::default()).unwrap();
//! let loaded = runtime::LoadedObject::load(&object, &store).unwrap();
//! let dp = Dataplane::new(&store, &loaded, 0, Config { workers: 2, ..Default::default() }).unwrap();
//! let mut source = CaptureSource::open("in.pcap".as_ref()).unwrap();
//! let mut sinks = VerdictSinks::pcap_dir("out".as_ref()).unwrap();
//! let summary = dataplane::replay(&dp, &mut source, Some(&mut sinks), &ReplayOptions::default()).unwrap();
//! println!("{} packets, {:.0} pps", summary.packets(), summary.pps());
//! ```
//!
//! - Live interfaces: [`afpacket`] (TPACKET_V3 rings with hash fanout), [`afxdp`]
//!   (AF_XDP sockets and the kernel program that feeds them), [`tap`]; [`attach()`]
//!   runs the workers on an interface.
//!
//! Modules holding unsafe code: `counters` (atomic stores to the worker's slots),
//! `afpacket` and `afxdp` (sockets, rings and UMEM shared with the kernel), `tap`
//! (TAP device ioctls).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod afpacket;
pub mod afxdp;
pub mod attach;
pub mod capture;
pub mod counters;
pub mod error;
pub mod flow;
pub mod io;
pub mod live_error;
pub mod replay;
pub mod tap;
pub mod timers;
pub mod worker;

pub use attach::{attach, AttachOptions, AttachSummary, LiveCounts, Mode, Ready};
pub use counters::{Counter, Counts, SharedCounters};
pub use error::{CaptureError, DataplaneError};
pub use io::{FrameMeta, OutFrame, Recv, Sink, Source};
pub use replay::{replay, Progress, ReplayOptions, Summary};
pub use worker::{Config, Dataplane, Engine, Outcome, Verdict, Worker};
