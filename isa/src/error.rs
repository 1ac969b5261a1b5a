//! Errors of the instruction-set crate.

use thiserror::Error;

/// Why a byte string or an instruction slot is not a valid BPF instruction.
///
/// `pc` is always the index of the 8-byte slot that holds the offending field
/// (for the second half of an `lddw` it is the index of that second slot).
/// The checks mirror the kernel's (`bpf_opcode_in_insntable`, `do_check`,
/// `check_alu_op`, `check_cond_jmp_op`, `check_ld_abs`, `check_atomic`,
/// `resolve_pseudo_ldimm64`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The byte length is not a multiple of 8.
    #[error("instruction bytes have length {len}, not a multiple of 8")]
    TrailingBytes { len: usize },

    /// `pc` is past the end of the slots.
    #[error("pc {pc} is out of range: the program has {len} slots")]
    PcOutOfRange { pc: usize, len: usize },

    /// The opcode byte names no instruction of the ISA.
    #[error("insn {pc}: unknown opcode {code:#04x}")]
    UnknownOpcode { pc: usize, code: u8 },

    /// A register field names a register above r10.
    #[error("insn {pc}: invalid register r{reg} in the {field} field (opcode {code:#04x})")]
    BadRegister {
        pc: usize,
        code: u8,
        field: &'static str,
        reg: u8,
    },

    /// A field that must be zero (or one of a few fixed values) for this opcode is not.
    #[error("insn {pc}: opcode {code:#04x} uses reserved field {field} = {value}")]
    ReservedField {
        pc: usize,
        code: u8,
        field: &'static str,
        value: i64,
    },

    /// An `lddw` starts in the last slot, so its second half is missing.
    #[error("insn {pc}: lddw is truncated, its second slot is missing")]
    TruncatedLdImm64 { pc: usize },

    /// The second slot of an `lddw` has a non-zero code, dst, src or off.
    #[error(
        "insn {pc}: invalid second slot of lddw (code {code:#04x}, dst {dst}, src {src}, off {off}; all must be 0)"
    )]
    BadLdImm64Tail {
        pc: usize,
        code: u8,
        dst: u8,
        src: u8,
        off: i16,
    },

    /// An `lddw` with a src (pseudo kind) outside 0..=6.
    #[error("insn {pc}: lddw with unknown pseudo source {src}")]
    BadLdImm64Src { pc: usize, src: u8 },

    /// The imm of a `STX|ATOMIC` instruction is not an atomic operation.
    #[error("insn {pc}: invalid atomic operation {imm:#x}")]
    BadAtomicOp { pc: usize, imm: i32 },

    /// An atomic instruction of size B or H.
    #[error("insn {pc}: invalid atomic operand size in opcode {code:#04x} (only W and DW)")]
    BadAtomicSize { pc: usize, code: u8 },

    /// A byte-swap whose imm is not 16, 32 or 64.
    #[error("insn {pc}: invalid byte-swap width {imm} (must be 16, 32 or 64)")]
    BadEndianWidth { pc: usize, imm: i32 },

    /// A call whose src is not 0 (helper), 1 (local) or 2 (kfunc).
    #[error("insn {pc}: call with unknown src {src}")]
    BadCallSrc { pc: usize, src: u8 },
}
