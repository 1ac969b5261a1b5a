//! Errors of the live sources and sinks (AF_PACKET, AF_XDP, TAP).

use std::io;

/// A live interface that cannot be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("no interface {name:?}: {source}")]
    NoInterface { name: String, source: io::Error },
    #[error("{what} needs {needs}: {source}")]
    NotPermitted {
        what: &'static str,
        needs: &'static str,
        source: io::Error,
    },
    #[error("{op} on {iface}: {source}")]
    Socket {
        op: &'static str,
        iface: String,
        source: io::Error,
    },
    #[error("the kernel refused the AF_XDP redirect program for {iface}: {source}\n{log}")]
    KernelProgram {
        iface: String,
        source: io::Error,
        log: String,
    },
    #[error("{iface} has {queues} receive queues: AF_XDP mode feeds each worker from queues of its own, so at most {queues} workers (not {workers})")]
    TooFewQueues {
        iface: String,
        queues: u32,
        workers: u32,
    },
    #[error("interface {iface} is gone")]
    InterfaceGone { iface: String },
    #[error("receive ring of {block_count} blocks of {block_size} bytes: blocks must be a power of two of at least 4096 bytes, 1 to 65536 of them")]
    BadRing { block_size: u32, block_count: u32 },
}
