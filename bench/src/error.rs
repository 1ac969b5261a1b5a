//! Why the rbpf peer cannot run a program, or why a run failed.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum RbpfError {
    #[error("program {name} is not in the object")]
    NoProgram { name: String },
    #[error("{program}: instruction {pc} does not decode: {message}")]
    Decode {
        program: String,
        pc: usize,
        message: String,
    },
    /// An instruction or helper rbpf has no (kernel-equivalent) support for.
    #[error("{program}: instruction {pc} ({what}): {why}")]
    Unsupported {
        program: String,
        pc: usize,
        what: String,
        why: &'static str,
    },
    #[error("{program}: map {map} (type {map_type}) has no peer map (the peer's table holds array, per-CPU array, hash, per-CPU hash and LPM trie maps)")]
    UnsupportedMap {
        program: String,
        map: String,
        map_type: u32,
    },
    #[error("{program}: instruction {pc} refers to map #{index}, which the object does not have")]
    BadMapRef {
        program: String,
        pc: usize,
        index: i32,
    },
    #[error("{program}: rbpf's verifier refuses it: {message}")]
    Rejected { program: String, message: String },
    #[error("{program}: rbpf's JIT cannot compile it: {message}")]
    JitFailed { program: String, message: String },
    #[error("{program}: rbpf's JIT has no memory checks, so it runs only the programs the kernel's verifier accepts here (the bpf-progs benchmark programs and the pure parser), and this is not one of them")]
    NotVouched { program: String },
    #[error("{program}: packet: {message}")]
    Packet { program: String, message: String },
    #[error("{program}: rbpf's {engine} failed: {message}")]
    Run {
        program: String,
        engine: &'static str,
        message: String,
    },
}
