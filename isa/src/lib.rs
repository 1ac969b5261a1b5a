//! The BPF instruction set: one definition shared by the loader, verifier,
//! interpreter, JIT and disassembler.
#![forbid(unsafe_code)]

pub mod insn;
pub mod opcode;

pub use insn::*;
