//! The BPF instruction set: one definition shared by the loader, verifier,
//! interpreter, JIT and disassembler.
//!
//! - [`opcode`]: the opcode fields and constants.
//! - [`insn`]: [`RawInsn`] (one 8-byte slot) and the decoded [`Insn`].
//! - [`decode`](mod@decode): bytes -> slots -> [`Insn`], with the kernel's
//!   opcode table and reserved-field checks.
//! - [`encode`](mod@encode): [`Insn`] -> slots, the inverse of decoding.
//! - [`disasm`]: llvm-objdump-compatible text.
//! - [`helpers`]: the kernel's helper ids and names, generated from one list.
//! - [`uapi`]: the rest of the kernel's BPF ABI: bpf(2) commands, map and program
//!   types, flags, XDP actions and the `union bpf_attr` offsets.
#![forbid(unsafe_code)]

pub mod decode;
pub mod disasm;
pub mod encode;
pub mod error;
pub mod helpers;
pub mod insn;
pub mod opcode;
pub mod uapi;

pub use decode::{decode, decode_all, parse_slots};
pub use disasm::{disassemble, format_insn};
pub use encode::{encode, encode_all, encode_insn, encode_into, slots_to_bytes, Encoded};
pub use error::DecodeError;
pub use helpers::{helper_id, helper_name};
pub use insn::*;
