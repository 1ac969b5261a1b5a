//! The data plane's errors: captures, the workers' setup, and sinks.

use std::path::PathBuf;

/// A capture file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot open {}: {source}", .path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is neither a pcap nor a pcapng capture (it starts with {magic})", .path.display())]
    NotACapture { path: PathBuf, magic: String },
    #[error("{}: link type {link_type} is not Ethernet (LINKTYPE_ETHERNET, 1): XDP programs see Ethernet frames", .path.display())]
    NotEthernet { path: PathBuf, link_type: String },
    #[error("{}: frame {frame} names interface {interface}, which the capture does not describe", .path.display())]
    NoInterface {
        path: PathBuf,
        frame: u64,
        interface: u32,
    },
    #[error("{}: bad capture at frame {frame}: {source}", .path.display())]
    Read {
        path: PathBuf,
        frame: u64,
        source: pcap_file::PcapError,
    },
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: pcap_file::PcapError,
    },
    #[error("cannot create the output directory {}: {source}", .path.display())]
    OutDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why the data plane could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("{workers} workers asked for, but the store has {slots} per-CPU slots (each worker owns one; create the store with more CPUs or use fewer workers)")]
    TooManyWorkers { workers: u32, slots: u32 },
    #[error("at least one worker is needed")]
    NoWorkers,
    #[error("worker index {index} is out of range: the data plane has {workers} workers")]
    NoSuchWorker { index: u32, workers: u32 },
    #[error("no program with index {index} in the object (it has {count})")]
    NoSuchProgram { index: usize, count: usize },
    #[error("cannot compile {prog} with the JIT: {reason}")]
    Jit { prog: String, reason: String },
    #[error("cannot set up the worker counters in the store: {reason}")]
    Counters { reason: String },
    #[error("cannot map a packet buffer for worker {worker}: {source}")]
    Buffer {
        worker: u32,
        source: runtime::PacketError,
    },
    #[error("cannot update the statistics of program {id} in the store: {source}")]
    ProgramStats { id: u32, source: maps::ObjectError },
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Live(#[from] crate::live_error::LiveError),
    #[error("packet source: {reason}")]
    Source { reason: String },
    #[error("packet sink {name}: {reason}")]
    Sink { name: String, reason: String },
    #[error("worker {worker} stopped: {reason}")]
    WorkerFailed { worker: u32, reason: String },
    #[error("cannot load program {id} from the store: {source}")]
    StoredProgram { id: u32, source: runtime::LoadError },
}
