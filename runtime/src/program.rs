//! Preparing a linked program for the interpreter: structural verification, the
//! analysis (`verifier`), and pre-decoding into [`Op`]s, with map references resolved
//! to addresses and each memory access marked proven or checked.
//!
//! The checks here are what keeps the interpreter's unchecked instruction fetch sound:
//! every jump and call lands on an instruction start inside the program, and no path
//! runs off the end. A [`Prepared`] can only be made by [`prepare`] (its fields are
//! private), so a program the interpreter runs always carries these proofs.
//!
//! One instruction definition: `isa::Insn` is the typed instruction set. [`Op`] is its
//! lowering into one flat enum for the interpreter's single dispatch ([`Op::lower`],
//! an exhaustive match over `Insn`), and [`Op::insn`] raises it back (exhaustive over
//! `Op`), which the JIT translates. Neither has a catch-all, so the compiler checks
//! both directions; a unit test checks the round trip on every instruction form.

use isa::opcode::*;
use isa::{AluOp, AtomicOp, CallTarget, Endian, Insn, JmpCond, Operand, RawInsn, Size, Width};

use crate::cycles::SlotSet;
use crate::error::VerifyError;
use crate::helpers;
use crate::maptable::MapTable;
use crate::verifier::{Analysis, MapDesc};
use std::sync::Arc;

/// One pre-decoded instruction slot, as the interpreter runs it.
///
/// Registers are 0..=10 (the decoder checked them). Jump and call offsets are relative
/// to the next slot. `LdImm64` holds the full 64-bit value with map references resolved
/// to addresses (and a `BPF_PSEUDO_FUNC` to the callback's slot); the slot after it is
/// a [`Op::Hole`]. Loads, stores and atomics come in two forms: the plain one checks its
/// access against the run's regions, the `Proven` one does not, because the analysis
/// proved it inside a region in every state that reaches it. Only [`prepare`] chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[rustfmt::skip]
pub enum Op {
    // 64-bit ALU: dst op= imm (sign-extended) or dst op= src.
    Add64Imm { dst: u8, imm: i32 },
    Add64Reg { dst: u8, src: u8 },
    Sub64Imm { dst: u8, imm: i32 },
    Sub64Reg { dst: u8, src: u8 },
    Mul64Imm { dst: u8, imm: i32 },
    Mul64Reg { dst: u8, src: u8 },
    Div64Imm { dst: u8, imm: i32 },
    Div64Reg { dst: u8, src: u8 },
    SDiv64Imm { dst: u8, imm: i32 },
    SDiv64Reg { dst: u8, src: u8 },
    Or64Imm { dst: u8, imm: i32 },
    Or64Reg { dst: u8, src: u8 },
    And64Imm { dst: u8, imm: i32 },
    And64Reg { dst: u8, src: u8 },
    Lsh64Imm { dst: u8, imm: i32 },
    Lsh64Reg { dst: u8, src: u8 },
    Rsh64Imm { dst: u8, imm: i32 },
    Rsh64Reg { dst: u8, src: u8 },
    Mod64Imm { dst: u8, imm: i32 },
    Mod64Reg { dst: u8, src: u8 },
    SMod64Imm { dst: u8, imm: i32 },
    SMod64Reg { dst: u8, src: u8 },
    Xor64Imm { dst: u8, imm: i32 },
    Xor64Reg { dst: u8, src: u8 },
    Arsh64Imm { dst: u8, imm: i32 },
    Arsh64Reg { dst: u8, src: u8 },
    Mov64Imm { dst: u8, imm: i32 },
    Mov64Reg { dst: u8, src: u8 },
    /// dst = (i64) (i8/i16/i32) src.
    MovSx64B { dst: u8, src: u8 },
    MovSx64H { dst: u8, src: u8 },
    MovSx64W { dst: u8, src: u8 },
    Neg64 { dst: u8 },
    // 32-bit ALU: the same on the low 32 bits, zero-extended into dst.
    Add32Imm { dst: u8, imm: i32 },
    Add32Reg { dst: u8, src: u8 },
    Sub32Imm { dst: u8, imm: i32 },
    Sub32Reg { dst: u8, src: u8 },
    Mul32Imm { dst: u8, imm: i32 },
    Mul32Reg { dst: u8, src: u8 },
    Div32Imm { dst: u8, imm: i32 },
    Div32Reg { dst: u8, src: u8 },
    SDiv32Imm { dst: u8, imm: i32 },
    SDiv32Reg { dst: u8, src: u8 },
    Or32Imm { dst: u8, imm: i32 },
    Or32Reg { dst: u8, src: u8 },
    And32Imm { dst: u8, imm: i32 },
    And32Reg { dst: u8, src: u8 },
    Lsh32Imm { dst: u8, imm: i32 },
    Lsh32Reg { dst: u8, src: u8 },
    Rsh32Imm { dst: u8, imm: i32 },
    Rsh32Reg { dst: u8, src: u8 },
    Mod32Imm { dst: u8, imm: i32 },
    Mod32Reg { dst: u8, src: u8 },
    SMod32Imm { dst: u8, imm: i32 },
    SMod32Reg { dst: u8, src: u8 },
    Xor32Imm { dst: u8, imm: i32 },
    Xor32Reg { dst: u8, src: u8 },
    Arsh32Imm { dst: u8, imm: i32 },
    Arsh32Reg { dst: u8, src: u8 },
    Mov32Imm { dst: u8, imm: i32 },
    Mov32Reg { dst: u8, src: u8 },
    /// dst = (u32) (i32) (i8/i16) src.
    MovSx32B { dst: u8, src: u8 },
    MovSx32H { dst: u8, src: u8 },
    Neg32 { dst: u8 },
    // Byte order: to little-endian (a truncation on little-endian hosts), to
    // big-endian, and the unconditional swap, of the low 16, 32 or 64 bits.
    Le16 { dst: u8 },
    Le32 { dst: u8 },
    Le64 { dst: u8 },
    Be16 { dst: u8 },
    Be32 { dst: u8 },
    Be64 { dst: u8 },
    Swap16 { dst: u8 },
    Swap32 { dst: u8 },
    Swap64 { dst: u8 },
    // Jumps: to the next slot + off.
    Ja { off: i32 },
    Jeq64Imm { dst: u8, imm: i32, off: i16 },
    Jeq64Reg { dst: u8, src: u8, off: i16 },
    Jgt64Imm { dst: u8, imm: i32, off: i16 },
    Jgt64Reg { dst: u8, src: u8, off: i16 },
    Jge64Imm { dst: u8, imm: i32, off: i16 },
    Jge64Reg { dst: u8, src: u8, off: i16 },
    Jset64Imm { dst: u8, imm: i32, off: i16 },
    Jset64Reg { dst: u8, src: u8, off: i16 },
    Jne64Imm { dst: u8, imm: i32, off: i16 },
    Jne64Reg { dst: u8, src: u8, off: i16 },
    Jsgt64Imm { dst: u8, imm: i32, off: i16 },
    Jsgt64Reg { dst: u8, src: u8, off: i16 },
    Jsge64Imm { dst: u8, imm: i32, off: i16 },
    Jsge64Reg { dst: u8, src: u8, off: i16 },
    Jlt64Imm { dst: u8, imm: i32, off: i16 },
    Jlt64Reg { dst: u8, src: u8, off: i16 },
    Jle64Imm { dst: u8, imm: i32, off: i16 },
    Jle64Reg { dst: u8, src: u8, off: i16 },
    Jslt64Imm { dst: u8, imm: i32, off: i16 },
    Jslt64Reg { dst: u8, src: u8, off: i16 },
    Jsle64Imm { dst: u8, imm: i32, off: i16 },
    Jsle64Reg { dst: u8, src: u8, off: i16 },
    Jeq32Imm { dst: u8, imm: i32, off: i16 },
    Jeq32Reg { dst: u8, src: u8, off: i16 },
    Jgt32Imm { dst: u8, imm: i32, off: i16 },
    Jgt32Reg { dst: u8, src: u8, off: i16 },
    Jge32Imm { dst: u8, imm: i32, off: i16 },
    Jge32Reg { dst: u8, src: u8, off: i16 },
    Jset32Imm { dst: u8, imm: i32, off: i16 },
    Jset32Reg { dst: u8, src: u8, off: i16 },
    Jne32Imm { dst: u8, imm: i32, off: i16 },
    Jne32Reg { dst: u8, src: u8, off: i16 },
    Jsgt32Imm { dst: u8, imm: i32, off: i16 },
    Jsgt32Reg { dst: u8, src: u8, off: i16 },
    Jsge32Imm { dst: u8, imm: i32, off: i16 },
    Jsge32Reg { dst: u8, src: u8, off: i16 },
    Jlt32Imm { dst: u8, imm: i32, off: i16 },
    Jlt32Reg { dst: u8, src: u8, off: i16 },
    Jle32Imm { dst: u8, imm: i32, off: i16 },
    Jle32Reg { dst: u8, src: u8, off: i16 },
    Jslt32Imm { dst: u8, imm: i32, off: i16 },
    Jslt32Reg { dst: u8, src: u8, off: i16 },
    Jsle32Imm { dst: u8, imm: i32, off: i16 },
    Jsle32Reg { dst: u8, src: u8, off: i16 },
    // Calls and exit.
    /// A helper other than the two below, by id.
    Call { id: i32 },
    /// `bpf_tail_call`.
    TailCall,
    /// `bpf_loop`.
    Loop,
    /// `bpf_for_each_map_elem`.
    ForEach,
    /// A bpf-to-bpf call of the function at the next slot + off.
    CallLocal { off: i32 },
    Exit,
    /// `lddw`, resolved; the next slot is a `Hole`.
    LdImm64 { dst: u8, imm: i64 },
    /// The second slot of an `lddw`: never executed (no jump lands there).
    Hole,
    // Loads: dst = *(size *)(src + off), zero- or sign-extended.
    LdxB { dst: u8, src: u8, off: i16 },
    LdxH { dst: u8, src: u8, off: i16 },
    LdxW { dst: u8, src: u8, off: i16 },
    LdxDW { dst: u8, src: u8, off: i16 },
    LdxSB { dst: u8, src: u8, off: i16 },
    LdxSH { dst: u8, src: u8, off: i16 },
    LdxSW { dst: u8, src: u8, off: i16 },
    ProvenLdxB { dst: u8, src: u8, off: i16 },
    ProvenLdxH { dst: u8, src: u8, off: i16 },
    ProvenLdxW { dst: u8, src: u8, off: i16 },
    ProvenLdxDW { dst: u8, src: u8, off: i16 },
    ProvenLdxSB { dst: u8, src: u8, off: i16 },
    ProvenLdxSH { dst: u8, src: u8, off: i16 },
    ProvenLdxSW { dst: u8, src: u8, off: i16 },
    // Stores: *(size *)(dst + off) = imm (sign-extended) or src.
    StB { dst: u8, off: i16, imm: i32 },
    StH { dst: u8, off: i16, imm: i32 },
    StW { dst: u8, off: i16, imm: i32 },
    StDW { dst: u8, off: i16, imm: i32 },
    StxB { dst: u8, src: u8, off: i16 },
    StxH { dst: u8, src: u8, off: i16 },
    StxW { dst: u8, src: u8, off: i16 },
    StxDW { dst: u8, src: u8, off: i16 },
    ProvenStB { dst: u8, off: i16, imm: i32 },
    ProvenStH { dst: u8, off: i16, imm: i32 },
    ProvenStW { dst: u8, off: i16, imm: i32 },
    ProvenStDW { dst: u8, off: i16, imm: i32 },
    ProvenStxB { dst: u8, src: u8, off: i16 },
    ProvenStxH { dst: u8, src: u8, off: i16 },
    ProvenStxW { dst: u8, src: u8, off: i16 },
    ProvenStxDW { dst: u8, src: u8, off: i16 },
    // Atomics on (dst + off), 4 or 8 bytes; alignment is always checked.
    AtomicW { op: AtomicOp, fetch: bool, dst: u8, src: u8, off: i16 },
    AtomicDW { op: AtomicOp, fetch: bool, dst: u8, src: u8, off: i16 },
    ProvenAtomicW { op: AtomicOp, fetch: bool, dst: u8, src: u8, off: i16 },
    ProvenAtomicDW { op: AtomicOp, fetch: bool, dst: u8, src: u8, off: i16 },
}

/// `bpf_tail_call` and `bpf_loop`, which the interpreter runs itself.
const TAIL_CALL_ID: i32 = helpers::TAIL_CALL as i32;
const BPF_LOOP_ID: i32 = helpers::BPF_LOOP as i32;
const FOR_EACH_ID: i32 = helpers::FOR_EACH_MAP_ELEM as i32;

impl Op {
    /// The interpreter's form of `insn`: `imm64` is the resolved value of an `lddw`,
    /// `proven` whether the analysis proved the access of a load, store or atomic.
    /// `None` for instructions the runtime does not run (`LD_ABS`/`LD_IND`, kfunc
    /// calls) and for encodings the decoder never yields.
    #[rustfmt::skip]
    pub(crate) fn lower(insn: Insn, imm64: i64, proven: bool) -> Option<Op> {
        use Operand::{Imm, Reg};
        Some(match insn {
            Insn::Alu { width: Width::W64, op, dst, src } => match (op, src) {
                (AluOp::Add, Imm(imm)) => Op::Add64Imm { dst, imm },
                (AluOp::Add, Reg(src)) => Op::Add64Reg { dst, src },
                (AluOp::Sub, Imm(imm)) => Op::Sub64Imm { dst, imm },
                (AluOp::Sub, Reg(src)) => Op::Sub64Reg { dst, src },
                (AluOp::Mul, Imm(imm)) => Op::Mul64Imm { dst, imm },
                (AluOp::Mul, Reg(src)) => Op::Mul64Reg { dst, src },
                (AluOp::Div, Imm(imm)) => Op::Div64Imm { dst, imm },
                (AluOp::Div, Reg(src)) => Op::Div64Reg { dst, src },
                (AluOp::SDiv, Imm(imm)) => Op::SDiv64Imm { dst, imm },
                (AluOp::SDiv, Reg(src)) => Op::SDiv64Reg { dst, src },
                (AluOp::Or, Imm(imm)) => Op::Or64Imm { dst, imm },
                (AluOp::Or, Reg(src)) => Op::Or64Reg { dst, src },
                (AluOp::And, Imm(imm)) => Op::And64Imm { dst, imm },
                (AluOp::And, Reg(src)) => Op::And64Reg { dst, src },
                (AluOp::Lsh, Imm(imm)) => Op::Lsh64Imm { dst, imm },
                (AluOp::Lsh, Reg(src)) => Op::Lsh64Reg { dst, src },
                (AluOp::Rsh, Imm(imm)) => Op::Rsh64Imm { dst, imm },
                (AluOp::Rsh, Reg(src)) => Op::Rsh64Reg { dst, src },
                (AluOp::Mod, Imm(imm)) => Op::Mod64Imm { dst, imm },
                (AluOp::Mod, Reg(src)) => Op::Mod64Reg { dst, src },
                (AluOp::SMod, Imm(imm)) => Op::SMod64Imm { dst, imm },
                (AluOp::SMod, Reg(src)) => Op::SMod64Reg { dst, src },
                (AluOp::Xor, Imm(imm)) => Op::Xor64Imm { dst, imm },
                (AluOp::Xor, Reg(src)) => Op::Xor64Reg { dst, src },
                (AluOp::Arsh, Imm(imm)) => Op::Arsh64Imm { dst, imm },
                (AluOp::Arsh, Reg(src)) => Op::Arsh64Reg { dst, src },
                (AluOp::Mov, Imm(imm)) => Op::Mov64Imm { dst, imm },
                (AluOp::Mov, Reg(src)) => Op::Mov64Reg { dst, src },
                (AluOp::Neg, _) => Op::Neg64 { dst },
                (AluOp::MovSx(8), Reg(src)) => Op::MovSx64B { dst, src },
                (AluOp::MovSx(16), Reg(src)) => Op::MovSx64H { dst, src },
                (AluOp::MovSx(32), Reg(src)) => Op::MovSx64W { dst, src },
                (AluOp::MovSx(_), _) => return None,
            },
            Insn::Alu { width: Width::W32, op, dst, src } => match (op, src) {
                (AluOp::Add, Imm(imm)) => Op::Add32Imm { dst, imm },
                (AluOp::Add, Reg(src)) => Op::Add32Reg { dst, src },
                (AluOp::Sub, Imm(imm)) => Op::Sub32Imm { dst, imm },
                (AluOp::Sub, Reg(src)) => Op::Sub32Reg { dst, src },
                (AluOp::Mul, Imm(imm)) => Op::Mul32Imm { dst, imm },
                (AluOp::Mul, Reg(src)) => Op::Mul32Reg { dst, src },
                (AluOp::Div, Imm(imm)) => Op::Div32Imm { dst, imm },
                (AluOp::Div, Reg(src)) => Op::Div32Reg { dst, src },
                (AluOp::SDiv, Imm(imm)) => Op::SDiv32Imm { dst, imm },
                (AluOp::SDiv, Reg(src)) => Op::SDiv32Reg { dst, src },
                (AluOp::Or, Imm(imm)) => Op::Or32Imm { dst, imm },
                (AluOp::Or, Reg(src)) => Op::Or32Reg { dst, src },
                (AluOp::And, Imm(imm)) => Op::And32Imm { dst, imm },
                (AluOp::And, Reg(src)) => Op::And32Reg { dst, src },
                (AluOp::Lsh, Imm(imm)) => Op::Lsh32Imm { dst, imm },
                (AluOp::Lsh, Reg(src)) => Op::Lsh32Reg { dst, src },
                (AluOp::Rsh, Imm(imm)) => Op::Rsh32Imm { dst, imm },
                (AluOp::Rsh, Reg(src)) => Op::Rsh32Reg { dst, src },
                (AluOp::Mod, Imm(imm)) => Op::Mod32Imm { dst, imm },
                (AluOp::Mod, Reg(src)) => Op::Mod32Reg { dst, src },
                (AluOp::SMod, Imm(imm)) => Op::SMod32Imm { dst, imm },
                (AluOp::SMod, Reg(src)) => Op::SMod32Reg { dst, src },
                (AluOp::Xor, Imm(imm)) => Op::Xor32Imm { dst, imm },
                (AluOp::Xor, Reg(src)) => Op::Xor32Reg { dst, src },
                (AluOp::Arsh, Imm(imm)) => Op::Arsh32Imm { dst, imm },
                (AluOp::Arsh, Reg(src)) => Op::Arsh32Reg { dst, src },
                (AluOp::Mov, Imm(imm)) => Op::Mov32Imm { dst, imm },
                (AluOp::Mov, Reg(src)) => Op::Mov32Reg { dst, src },
                (AluOp::Neg, _) => Op::Neg32 { dst },
                (AluOp::MovSx(8), Reg(src)) => Op::MovSx32B { dst, src },
                (AluOp::MovSx(16), Reg(src)) => Op::MovSx32H { dst, src },
                (AluOp::MovSx(_), _) => return None,
            },
            Insn::End { kind, bits, dst } => match (kind, bits) {
                (Endian::ToLe, 16) => Op::Le16 { dst },
                (Endian::ToLe, 32) => Op::Le32 { dst },
                (Endian::ToLe, 64) => Op::Le64 { dst },
                (Endian::ToBe, 16) => Op::Be16 { dst },
                (Endian::ToBe, 32) => Op::Be32 { dst },
                (Endian::ToBe, 64) => Op::Be64 { dst },
                (Endian::Swap, 16) => Op::Swap16 { dst },
                (Endian::Swap, 32) => Op::Swap32 { dst },
                (Endian::Swap, 64) => Op::Swap64 { dst },
                (_, _) => return None,
            },
            Insn::Ja { off } => Op::Ja { off },
            Insn::Jmp { width, cond, dst, src, off } => match (width, cond, src) {
                (Width::W64, JmpCond::Eq, Imm(imm)) => Op::Jeq64Imm { dst, imm, off },
                (Width::W64, JmpCond::Eq, Reg(src)) => Op::Jeq64Reg { dst, src, off },
                (Width::W64, JmpCond::Gt, Imm(imm)) => Op::Jgt64Imm { dst, imm, off },
                (Width::W64, JmpCond::Gt, Reg(src)) => Op::Jgt64Reg { dst, src, off },
                (Width::W64, JmpCond::Ge, Imm(imm)) => Op::Jge64Imm { dst, imm, off },
                (Width::W64, JmpCond::Ge, Reg(src)) => Op::Jge64Reg { dst, src, off },
                (Width::W64, JmpCond::Set, Imm(imm)) => Op::Jset64Imm { dst, imm, off },
                (Width::W64, JmpCond::Set, Reg(src)) => Op::Jset64Reg { dst, src, off },
                (Width::W64, JmpCond::Ne, Imm(imm)) => Op::Jne64Imm { dst, imm, off },
                (Width::W64, JmpCond::Ne, Reg(src)) => Op::Jne64Reg { dst, src, off },
                (Width::W64, JmpCond::Sgt, Imm(imm)) => Op::Jsgt64Imm { dst, imm, off },
                (Width::W64, JmpCond::Sgt, Reg(src)) => Op::Jsgt64Reg { dst, src, off },
                (Width::W64, JmpCond::Sge, Imm(imm)) => Op::Jsge64Imm { dst, imm, off },
                (Width::W64, JmpCond::Sge, Reg(src)) => Op::Jsge64Reg { dst, src, off },
                (Width::W64, JmpCond::Lt, Imm(imm)) => Op::Jlt64Imm { dst, imm, off },
                (Width::W64, JmpCond::Lt, Reg(src)) => Op::Jlt64Reg { dst, src, off },
                (Width::W64, JmpCond::Le, Imm(imm)) => Op::Jle64Imm { dst, imm, off },
                (Width::W64, JmpCond::Le, Reg(src)) => Op::Jle64Reg { dst, src, off },
                (Width::W64, JmpCond::Slt, Imm(imm)) => Op::Jslt64Imm { dst, imm, off },
                (Width::W64, JmpCond::Slt, Reg(src)) => Op::Jslt64Reg { dst, src, off },
                (Width::W64, JmpCond::Sle, Imm(imm)) => Op::Jsle64Imm { dst, imm, off },
                (Width::W64, JmpCond::Sle, Reg(src)) => Op::Jsle64Reg { dst, src, off },
                (Width::W32, JmpCond::Eq, Imm(imm)) => Op::Jeq32Imm { dst, imm, off },
                (Width::W32, JmpCond::Eq, Reg(src)) => Op::Jeq32Reg { dst, src, off },
                (Width::W32, JmpCond::Gt, Imm(imm)) => Op::Jgt32Imm { dst, imm, off },
                (Width::W32, JmpCond::Gt, Reg(src)) => Op::Jgt32Reg { dst, src, off },
                (Width::W32, JmpCond::Ge, Imm(imm)) => Op::Jge32Imm { dst, imm, off },
                (Width::W32, JmpCond::Ge, Reg(src)) => Op::Jge32Reg { dst, src, off },
                (Width::W32, JmpCond::Set, Imm(imm)) => Op::Jset32Imm { dst, imm, off },
                (Width::W32, JmpCond::Set, Reg(src)) => Op::Jset32Reg { dst, src, off },
                (Width::W32, JmpCond::Ne, Imm(imm)) => Op::Jne32Imm { dst, imm, off },
                (Width::W32, JmpCond::Ne, Reg(src)) => Op::Jne32Reg { dst, src, off },
                (Width::W32, JmpCond::Sgt, Imm(imm)) => Op::Jsgt32Imm { dst, imm, off },
                (Width::W32, JmpCond::Sgt, Reg(src)) => Op::Jsgt32Reg { dst, src, off },
                (Width::W32, JmpCond::Sge, Imm(imm)) => Op::Jsge32Imm { dst, imm, off },
                (Width::W32, JmpCond::Sge, Reg(src)) => Op::Jsge32Reg { dst, src, off },
                (Width::W32, JmpCond::Lt, Imm(imm)) => Op::Jlt32Imm { dst, imm, off },
                (Width::W32, JmpCond::Lt, Reg(src)) => Op::Jlt32Reg { dst, src, off },
                (Width::W32, JmpCond::Le, Imm(imm)) => Op::Jle32Imm { dst, imm, off },
                (Width::W32, JmpCond::Le, Reg(src)) => Op::Jle32Reg { dst, src, off },
                (Width::W32, JmpCond::Slt, Imm(imm)) => Op::Jslt32Imm { dst, imm, off },
                (Width::W32, JmpCond::Slt, Reg(src)) => Op::Jslt32Reg { dst, src, off },
                (Width::W32, JmpCond::Sle, Imm(imm)) => Op::Jsle32Imm { dst, imm, off },
                (Width::W32, JmpCond::Sle, Reg(src)) => Op::Jsle32Reg { dst, src, off },
            },
            Insn::Call(CallTarget::Helper(TAIL_CALL_ID)) => Op::TailCall,
            Insn::Call(CallTarget::Helper(BPF_LOOP_ID)) => Op::Loop,
            Insn::Call(CallTarget::Helper(FOR_EACH_ID)) => Op::ForEach,
            Insn::Call(CallTarget::Helper(id)) => Op::Call { id },
            Insn::Call(CallTarget::Local(off)) => Op::CallLocal { off },
            Insn::Call(CallTarget::Kfunc(_)) => return None,
            Insn::Exit => Op::Exit,
            Insn::Load { size, sign_extend, dst, src, off } => match (size, sign_extend, proven) {
                (Size::B, false, false) => Op::LdxB { dst, src, off },
                (Size::B, false, true) => Op::ProvenLdxB { dst, src, off },
                (Size::H, false, false) => Op::LdxH { dst, src, off },
                (Size::H, false, true) => Op::ProvenLdxH { dst, src, off },
                (Size::W, false, false) => Op::LdxW { dst, src, off },
                (Size::W, false, true) => Op::ProvenLdxW { dst, src, off },
                (Size::DW, false, false) => Op::LdxDW { dst, src, off },
                (Size::DW, false, true) => Op::ProvenLdxDW { dst, src, off },
                (Size::B, true, false) => Op::LdxSB { dst, src, off },
                (Size::B, true, true) => Op::ProvenLdxSB { dst, src, off },
                (Size::H, true, false) => Op::LdxSH { dst, src, off },
                (Size::H, true, true) => Op::ProvenLdxSH { dst, src, off },
                (Size::W, true, false) => Op::LdxSW { dst, src, off },
                (Size::W, true, true) => Op::ProvenLdxSW { dst, src, off },
                (Size::DW, true, _) => return None,
            },
            Insn::Store { size, dst, off, src } => match (size, src, proven) {
                (Size::B, Imm(imm), false) => Op::StB { dst, off, imm },
                (Size::B, Imm(imm), true) => Op::ProvenStB { dst, off, imm },
                (Size::B, Reg(src), false) => Op::StxB { dst, src, off },
                (Size::B, Reg(src), true) => Op::ProvenStxB { dst, src, off },
                (Size::H, Imm(imm), false) => Op::StH { dst, off, imm },
                (Size::H, Imm(imm), true) => Op::ProvenStH { dst, off, imm },
                (Size::H, Reg(src), false) => Op::StxH { dst, src, off },
                (Size::H, Reg(src), true) => Op::ProvenStxH { dst, src, off },
                (Size::W, Imm(imm), false) => Op::StW { dst, off, imm },
                (Size::W, Imm(imm), true) => Op::ProvenStW { dst, off, imm },
                (Size::W, Reg(src), false) => Op::StxW { dst, src, off },
                (Size::W, Reg(src), true) => Op::ProvenStxW { dst, src, off },
                (Size::DW, Imm(imm), false) => Op::StDW { dst, off, imm },
                (Size::DW, Imm(imm), true) => Op::ProvenStDW { dst, off, imm },
                (Size::DW, Reg(src), false) => Op::StxDW { dst, src, off },
                (Size::DW, Reg(src), true) => Op::ProvenStxDW { dst, src, off },
            },
            Insn::Atomic { size, op, fetch, dst, src, off } => match (size, proven) {
                (Size::W, false) => Op::AtomicW { op, fetch, dst, src, off },
                (Size::W, true) => Op::ProvenAtomicW { op, fetch, dst, src, off },
                (Size::DW, false) => Op::AtomicDW { op, fetch, dst, src, off },
                (Size::DW, true) => Op::ProvenAtomicDW { op, fetch, dst, src, off },
                (Size::B | Size::H, _) => return None,
            },
            Insn::LdImm64 { dst, .. } => Op::LdImm64 { dst, imm: imm64 },
            Insn::LdPacket { .. } => return None,
        })
    }

    /// The instruction this slot runs, as `isa::Insn` (map references and callbacks
    /// of an `lddw` as the plain constants they were resolved to); `None` for the
    /// second slot of an `lddw`. What the JIT translates.
    #[rustfmt::skip]
    pub fn insn(&self) -> Option<Insn> {
        use Operand::{Imm, Reg};
        let alu = |width, op, dst, src| Insn::Alu { width, op, dst, src };
        let jmp = |width, cond, dst, src, off| Insn::Jmp { width, cond, dst, src, off };
        let ld = |size, sign_extend, dst, src, off| Insn::Load { size, sign_extend, dst, src, off };
        let st = |size, dst, off, src| Insn::Store { size, dst, off, src };
        let end = |kind, bits, dst| Insn::End { kind, bits, dst };
        Some(match *self {
            Op::Add64Imm { dst, imm } => alu(Width::W64, AluOp::Add, dst, Imm(imm)),
            Op::Add64Reg { dst, src } => alu(Width::W64, AluOp::Add, dst, Reg(src)),
            Op::Sub64Imm { dst, imm } => alu(Width::W64, AluOp::Sub, dst, Imm(imm)),
            Op::Sub64Reg { dst, src } => alu(Width::W64, AluOp::Sub, dst, Reg(src)),
            Op::Mul64Imm { dst, imm } => alu(Width::W64, AluOp::Mul, dst, Imm(imm)),
            Op::Mul64Reg { dst, src } => alu(Width::W64, AluOp::Mul, dst, Reg(src)),
            Op::Div64Imm { dst, imm } => alu(Width::W64, AluOp::Div, dst, Imm(imm)),
            Op::Div64Reg { dst, src } => alu(Width::W64, AluOp::Div, dst, Reg(src)),
            Op::SDiv64Imm { dst, imm } => alu(Width::W64, AluOp::SDiv, dst, Imm(imm)),
            Op::SDiv64Reg { dst, src } => alu(Width::W64, AluOp::SDiv, dst, Reg(src)),
            Op::Or64Imm { dst, imm } => alu(Width::W64, AluOp::Or, dst, Imm(imm)),
            Op::Or64Reg { dst, src } => alu(Width::W64, AluOp::Or, dst, Reg(src)),
            Op::And64Imm { dst, imm } => alu(Width::W64, AluOp::And, dst, Imm(imm)),
            Op::And64Reg { dst, src } => alu(Width::W64, AluOp::And, dst, Reg(src)),
            Op::Lsh64Imm { dst, imm } => alu(Width::W64, AluOp::Lsh, dst, Imm(imm)),
            Op::Lsh64Reg { dst, src } => alu(Width::W64, AluOp::Lsh, dst, Reg(src)),
            Op::Rsh64Imm { dst, imm } => alu(Width::W64, AluOp::Rsh, dst, Imm(imm)),
            Op::Rsh64Reg { dst, src } => alu(Width::W64, AluOp::Rsh, dst, Reg(src)),
            Op::Mod64Imm { dst, imm } => alu(Width::W64, AluOp::Mod, dst, Imm(imm)),
            Op::Mod64Reg { dst, src } => alu(Width::W64, AluOp::Mod, dst, Reg(src)),
            Op::SMod64Imm { dst, imm } => alu(Width::W64, AluOp::SMod, dst, Imm(imm)),
            Op::SMod64Reg { dst, src } => alu(Width::W64, AluOp::SMod, dst, Reg(src)),
            Op::Xor64Imm { dst, imm } => alu(Width::W64, AluOp::Xor, dst, Imm(imm)),
            Op::Xor64Reg { dst, src } => alu(Width::W64, AluOp::Xor, dst, Reg(src)),
            Op::Arsh64Imm { dst, imm } => alu(Width::W64, AluOp::Arsh, dst, Imm(imm)),
            Op::Arsh64Reg { dst, src } => alu(Width::W64, AluOp::Arsh, dst, Reg(src)),
            Op::Mov64Imm { dst, imm } => alu(Width::W64, AluOp::Mov, dst, Imm(imm)),
            Op::Mov64Reg { dst, src } => alu(Width::W64, AluOp::Mov, dst, Reg(src)),
            Op::Neg64 { dst } => alu(Width::W64, AluOp::Neg, dst, Imm(0)),
            Op::MovSx64B { dst, src } => alu(Width::W64, AluOp::MovSx(8), dst, Reg(src)),
            Op::MovSx64H { dst, src } => alu(Width::W64, AluOp::MovSx(16), dst, Reg(src)),
            Op::MovSx64W { dst, src } => alu(Width::W64, AluOp::MovSx(32), dst, Reg(src)),
            Op::Add32Imm { dst, imm } => alu(Width::W32, AluOp::Add, dst, Imm(imm)),
            Op::Add32Reg { dst, src } => alu(Width::W32, AluOp::Add, dst, Reg(src)),
            Op::Sub32Imm { dst, imm } => alu(Width::W32, AluOp::Sub, dst, Imm(imm)),
            Op::Sub32Reg { dst, src } => alu(Width::W32, AluOp::Sub, dst, Reg(src)),
            Op::Mul32Imm { dst, imm } => alu(Width::W32, AluOp::Mul, dst, Imm(imm)),
            Op::Mul32Reg { dst, src } => alu(Width::W32, AluOp::Mul, dst, Reg(src)),
            Op::Div32Imm { dst, imm } => alu(Width::W32, AluOp::Div, dst, Imm(imm)),
            Op::Div32Reg { dst, src } => alu(Width::W32, AluOp::Div, dst, Reg(src)),
            Op::SDiv32Imm { dst, imm } => alu(Width::W32, AluOp::SDiv, dst, Imm(imm)),
            Op::SDiv32Reg { dst, src } => alu(Width::W32, AluOp::SDiv, dst, Reg(src)),
            Op::Or32Imm { dst, imm } => alu(Width::W32, AluOp::Or, dst, Imm(imm)),
            Op::Or32Reg { dst, src } => alu(Width::W32, AluOp::Or, dst, Reg(src)),
            Op::And32Imm { dst, imm } => alu(Width::W32, AluOp::And, dst, Imm(imm)),
            Op::And32Reg { dst, src } => alu(Width::W32, AluOp::And, dst, Reg(src)),
            Op::Lsh32Imm { dst, imm } => alu(Width::W32, AluOp::Lsh, dst, Imm(imm)),
            Op::Lsh32Reg { dst, src } => alu(Width::W32, AluOp::Lsh, dst, Reg(src)),
            Op::Rsh32Imm { dst, imm } => alu(Width::W32, AluOp::Rsh, dst, Imm(imm)),
            Op::Rsh32Reg { dst, src } => alu(Width::W32, AluOp::Rsh, dst, Reg(src)),
            Op::Mod32Imm { dst, imm } => alu(Width::W32, AluOp::Mod, dst, Imm(imm)),
            Op::Mod32Reg { dst, src } => alu(Width::W32, AluOp::Mod, dst, Reg(src)),
            Op::SMod32Imm { dst, imm } => alu(Width::W32, AluOp::SMod, dst, Imm(imm)),
            Op::SMod32Reg { dst, src } => alu(Width::W32, AluOp::SMod, dst, Reg(src)),
            Op::Xor32Imm { dst, imm } => alu(Width::W32, AluOp::Xor, dst, Imm(imm)),
            Op::Xor32Reg { dst, src } => alu(Width::W32, AluOp::Xor, dst, Reg(src)),
            Op::Arsh32Imm { dst, imm } => alu(Width::W32, AluOp::Arsh, dst, Imm(imm)),
            Op::Arsh32Reg { dst, src } => alu(Width::W32, AluOp::Arsh, dst, Reg(src)),
            Op::Mov32Imm { dst, imm } => alu(Width::W32, AluOp::Mov, dst, Imm(imm)),
            Op::Mov32Reg { dst, src } => alu(Width::W32, AluOp::Mov, dst, Reg(src)),
            Op::Neg32 { dst } => alu(Width::W32, AluOp::Neg, dst, Imm(0)),
            Op::MovSx32B { dst, src } => alu(Width::W32, AluOp::MovSx(8), dst, Reg(src)),
            Op::MovSx32H { dst, src } => alu(Width::W32, AluOp::MovSx(16), dst, Reg(src)),
            Op::Le16 { dst } => end(Endian::ToLe, 16, dst),
            Op::Le32 { dst } => end(Endian::ToLe, 32, dst),
            Op::Le64 { dst } => end(Endian::ToLe, 64, dst),
            Op::Be16 { dst } => end(Endian::ToBe, 16, dst),
            Op::Be32 { dst } => end(Endian::ToBe, 32, dst),
            Op::Be64 { dst } => end(Endian::ToBe, 64, dst),
            Op::Swap16 { dst } => end(Endian::Swap, 16, dst),
            Op::Swap32 { dst } => end(Endian::Swap, 32, dst),
            Op::Swap64 { dst } => end(Endian::Swap, 64, dst),
            Op::Ja { off } => Insn::Ja { off },
            Op::Jeq64Imm { dst, imm, off } => jmp(Width::W64, JmpCond::Eq, dst, Imm(imm), off),
            Op::Jeq64Reg { dst, src, off } => jmp(Width::W64, JmpCond::Eq, dst, Reg(src), off),
            Op::Jgt64Imm { dst, imm, off } => jmp(Width::W64, JmpCond::Gt, dst, Imm(imm), off),
            Op::Jgt64Reg { dst, src, off } => jmp(Width::W64, JmpCond::Gt, dst, Reg(src), off),
            Op::Jge64Imm { dst, imm, off } => jmp(Width::W64, JmpCond::Ge, dst, Imm(imm), off),
            Op::Jge64Reg { dst, src, off } => jmp(Width::W64, JmpCond::Ge, dst, Reg(src), off),
            Op::Jset64Imm { dst, imm, off } => jmp(Width::W64, JmpCond::Set, dst, Imm(imm), off),
            Op::Jset64Reg { dst, src, off } => jmp(Width::W64, JmpCond::Set, dst, Reg(src), off),
            Op::Jne64Imm { dst, imm, off } => jmp(Width::W64, JmpCond::Ne, dst, Imm(imm), off),
            Op::Jne64Reg { dst, src, off } => jmp(Width::W64, JmpCond::Ne, dst, Reg(src), off),
            Op::Jsgt64Imm { dst, imm, off } => jmp(Width::W64, JmpCond::Sgt, dst, Imm(imm), off),
            Op::Jsgt64Reg { dst, src, off } => jmp(Width::W64, JmpCond::Sgt, dst, Reg(src), off),
            Op::Jsge64Imm { dst, imm, off } => jmp(Width::W64, JmpCond::Sge, dst, Imm(imm), off),
            Op::Jsge64Reg { dst, src, off } => jmp(Width::W64, JmpCond::Sge, dst, Reg(src), off),
            Op::Jlt64Imm { dst, imm, off } => jmp(Width::W64, JmpCond::Lt, dst, Imm(imm), off),
            Op::Jlt64Reg { dst, src, off } => jmp(Width::W64, JmpCond::Lt, dst, Reg(src), off),
            Op::Jle64Imm { dst, imm, off } => jmp(Width::W64, JmpCond::Le, dst, Imm(imm), off),
            Op::Jle64Reg { dst, src, off } => jmp(Width::W64, JmpCond::Le, dst, Reg(src), off),
            Op::Jslt64Imm { dst, imm, off } => jmp(Width::W64, JmpCond::Slt, dst, Imm(imm), off),
            Op::Jslt64Reg { dst, src, off } => jmp(Width::W64, JmpCond::Slt, dst, Reg(src), off),
            Op::Jsle64Imm { dst, imm, off } => jmp(Width::W64, JmpCond::Sle, dst, Imm(imm), off),
            Op::Jsle64Reg { dst, src, off } => jmp(Width::W64, JmpCond::Sle, dst, Reg(src), off),
            Op::Jeq32Imm { dst, imm, off } => jmp(Width::W32, JmpCond::Eq, dst, Imm(imm), off),
            Op::Jeq32Reg { dst, src, off } => jmp(Width::W32, JmpCond::Eq, dst, Reg(src), off),
            Op::Jgt32Imm { dst, imm, off } => jmp(Width::W32, JmpCond::Gt, dst, Imm(imm), off),
            Op::Jgt32Reg { dst, src, off } => jmp(Width::W32, JmpCond::Gt, dst, Reg(src), off),
            Op::Jge32Imm { dst, imm, off } => jmp(Width::W32, JmpCond::Ge, dst, Imm(imm), off),
            Op::Jge32Reg { dst, src, off } => jmp(Width::W32, JmpCond::Ge, dst, Reg(src), off),
            Op::Jset32Imm { dst, imm, off } => jmp(Width::W32, JmpCond::Set, dst, Imm(imm), off),
            Op::Jset32Reg { dst, src, off } => jmp(Width::W32, JmpCond::Set, dst, Reg(src), off),
            Op::Jne32Imm { dst, imm, off } => jmp(Width::W32, JmpCond::Ne, dst, Imm(imm), off),
            Op::Jne32Reg { dst, src, off } => jmp(Width::W32, JmpCond::Ne, dst, Reg(src), off),
            Op::Jsgt32Imm { dst, imm, off } => jmp(Width::W32, JmpCond::Sgt, dst, Imm(imm), off),
            Op::Jsgt32Reg { dst, src, off } => jmp(Width::W32, JmpCond::Sgt, dst, Reg(src), off),
            Op::Jsge32Imm { dst, imm, off } => jmp(Width::W32, JmpCond::Sge, dst, Imm(imm), off),
            Op::Jsge32Reg { dst, src, off } => jmp(Width::W32, JmpCond::Sge, dst, Reg(src), off),
            Op::Jlt32Imm { dst, imm, off } => jmp(Width::W32, JmpCond::Lt, dst, Imm(imm), off),
            Op::Jlt32Reg { dst, src, off } => jmp(Width::W32, JmpCond::Lt, dst, Reg(src), off),
            Op::Jle32Imm { dst, imm, off } => jmp(Width::W32, JmpCond::Le, dst, Imm(imm), off),
            Op::Jle32Reg { dst, src, off } => jmp(Width::W32, JmpCond::Le, dst, Reg(src), off),
            Op::Jslt32Imm { dst, imm, off } => jmp(Width::W32, JmpCond::Slt, dst, Imm(imm), off),
            Op::Jslt32Reg { dst, src, off } => jmp(Width::W32, JmpCond::Slt, dst, Reg(src), off),
            Op::Jsle32Imm { dst, imm, off } => jmp(Width::W32, JmpCond::Sle, dst, Imm(imm), off),
            Op::Jsle32Reg { dst, src, off } => jmp(Width::W32, JmpCond::Sle, dst, Reg(src), off),
            Op::Call { id } => Insn::Call(CallTarget::Helper(id)),
            Op::TailCall => Insn::Call(CallTarget::Helper(TAIL_CALL_ID)),
            Op::Loop => Insn::Call(CallTarget::Helper(BPF_LOOP_ID)),
            Op::ForEach => Insn::Call(CallTarget::Helper(FOR_EACH_ID)),
            Op::CallLocal { off } => Insn::Call(CallTarget::Local(off)),
            Op::Exit => Insn::Exit,
            Op::LdImm64 { dst, imm } => Insn::LdImm64 { dst, src: 0, imm: imm as i32, next_imm: (imm >> 32) as i32 },
            Op::Hole => return None,
            Op::LdxB { dst, src, off } => ld(Size::B, false, dst, src, off),
            Op::ProvenLdxB { dst, src, off } => ld(Size::B, false, dst, src, off),
            Op::LdxH { dst, src, off } => ld(Size::H, false, dst, src, off),
            Op::ProvenLdxH { dst, src, off } => ld(Size::H, false, dst, src, off),
            Op::LdxW { dst, src, off } => ld(Size::W, false, dst, src, off),
            Op::ProvenLdxW { dst, src, off } => ld(Size::W, false, dst, src, off),
            Op::LdxDW { dst, src, off } => ld(Size::DW, false, dst, src, off),
            Op::ProvenLdxDW { dst, src, off } => ld(Size::DW, false, dst, src, off),
            Op::LdxSB { dst, src, off } => ld(Size::B, true, dst, src, off),
            Op::ProvenLdxSB { dst, src, off } => ld(Size::B, true, dst, src, off),
            Op::LdxSH { dst, src, off } => ld(Size::H, true, dst, src, off),
            Op::ProvenLdxSH { dst, src, off } => ld(Size::H, true, dst, src, off),
            Op::LdxSW { dst, src, off } => ld(Size::W, true, dst, src, off),
            Op::ProvenLdxSW { dst, src, off } => ld(Size::W, true, dst, src, off),
            Op::StB { dst, off, imm } => st(Size::B, dst, off, Imm(imm)),
            Op::StxB { dst, src, off } => st(Size::B, dst, off, Reg(src)),
            Op::ProvenStB { dst, off, imm } => st(Size::B, dst, off, Imm(imm)),
            Op::ProvenStxB { dst, src, off } => st(Size::B, dst, off, Reg(src)),
            Op::StH { dst, off, imm } => st(Size::H, dst, off, Imm(imm)),
            Op::StxH { dst, src, off } => st(Size::H, dst, off, Reg(src)),
            Op::ProvenStH { dst, off, imm } => st(Size::H, dst, off, Imm(imm)),
            Op::ProvenStxH { dst, src, off } => st(Size::H, dst, off, Reg(src)),
            Op::StW { dst, off, imm } => st(Size::W, dst, off, Imm(imm)),
            Op::StxW { dst, src, off } => st(Size::W, dst, off, Reg(src)),
            Op::ProvenStW { dst, off, imm } => st(Size::W, dst, off, Imm(imm)),
            Op::ProvenStxW { dst, src, off } => st(Size::W, dst, off, Reg(src)),
            Op::StDW { dst, off, imm } => st(Size::DW, dst, off, Imm(imm)),
            Op::StxDW { dst, src, off } => st(Size::DW, dst, off, Reg(src)),
            Op::ProvenStDW { dst, off, imm } => st(Size::DW, dst, off, Imm(imm)),
            Op::ProvenStxDW { dst, src, off } => st(Size::DW, dst, off, Reg(src)),
            Op::AtomicW { op, fetch, dst, src, off } => Insn::Atomic { size: Size::W, op, fetch, dst, src, off },
            Op::ProvenAtomicW { op, fetch, dst, src, off } => Insn::Atomic { size: Size::W, op, fetch, dst, src, off },
            Op::AtomicDW { op, fetch, dst, src, off } => Insn::Atomic { size: Size::DW, op, fetch, dst, src, off },
            Op::ProvenAtomicDW { op, fetch, dst, src, off } => Insn::Atomic { size: Size::DW, op, fetch, dst, src, off },
        })
    }

    /// A load, store or atomic that runs without a region check (the analysis
    /// proved it).
    pub fn is_proven(&self) -> bool {
        matches!(
            self,
            Op::ProvenLdxB { .. }
                | Op::ProvenStB { .. }
                | Op::ProvenStxB { .. }
                | Op::ProvenLdxH { .. }
                | Op::ProvenStH { .. }
                | Op::ProvenStxH { .. }
                | Op::ProvenLdxW { .. }
                | Op::ProvenStW { .. }
                | Op::ProvenStxW { .. }
                | Op::ProvenLdxDW { .. }
                | Op::ProvenStDW { .. }
                | Op::ProvenStxDW { .. }
                | Op::ProvenLdxSB { .. }
                | Op::ProvenLdxSH { .. }
                | Op::ProvenLdxSW { .. }
                | Op::ProvenAtomicW { .. }
                | Op::ProvenAtomicDW { .. }
        )
    }
}

/// A program ready to run: made only by [`prepare`], so its instruction stream carries
/// `prepare`'s proofs (control flow stays inside it) and the analysis' (a `Proven`
/// access lies in a region), which the interpreter relies on to run without checks.
///
/// ```compile_fail,E0616
/// // The instructions and the analysis cannot be set from outside.
/// fn forge(p: &mut runtime::Prepared) {
///     p.ops = Vec::new().into_boxed_slice();
/// }
/// ```
///
/// ```compile_fail,E0616
/// fn forge(p: &mut runtime::Prepared, a: runtime::verifier::Analysis) {
///     p.analysis = std::sync::Arc::new(a);
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Prepared {
    pub name: String,
    pub section: String,
    /// The program's id in the store it was registered in (0: none), where its
    /// run statistics go.
    pub store_id: u32,
    /// One `Op` per instruction slot (the second slot of an `lddw` is a `Hole`).
    ops: Box<[Op]>,
    /// Start slots of the entry function and of every subprogram.
    functions: Vec<usize>,
    /// What the analysis proved about each slot (`verifier`).
    analysis: Arc<Analysis>,
    /// The table whose maps the `lddw` addresses (and the proofs) refer to
    /// ([`MapTable::id`]): a run with another table is refused.
    maps_id: u64,
    /// The backward jumps that take a step of the run's budget: those on a cycle
    /// ([`crate::cycles`]).
    counted_jumps: SlotSet,
}

impl Prepared {
    /// One `Op` per instruction slot.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Start slots of the entry function and of every subprogram, sorted.
    pub fn functions(&self) -> &[usize] {
        &self.functions
    }

    /// What the analysis proved about each slot.
    pub fn analysis(&self) -> &Analysis {
        &self.analysis
    }

    /// Whether the backward jump at `pc` takes a step of the run's budget when
    /// taken: it lies on a cycle of the control-flow graph ([`crate::cycles`]).
    #[inline]
    pub fn counts_step(&self, pc: usize) -> bool {
        self.counted_jumps.contains(pc)
    }

    /// The [`MapTable::id`] of the table the program was prepared with.
    pub(crate) fn maps_id(&self) -> u64 {
        self.maps_id
    }

    /// Replaces the analysis and marks each access proven or checked by it.
    fn set_analysis(&mut self, analysis: Analysis) {
        let ops = self
            .ops
            .iter()
            .enumerate()
            .map(|(pc, op)| match op.insn() {
                Some(insn) => {
                    let imm64 = match *op {
                        Op::LdImm64 { imm, .. } => imm,
                        _ => 0,
                    };
                    Op::lower(insn, imm64, analysis.proven(pc)).unwrap_or(*op)
                }
                None => *op,
            })
            .collect();
        self.ops = ops;
        self.analysis = Arc::new(analysis);
    }

    /// The same program with the access at `pc` marked proven whatever the analysis
    /// found: for tests of the audit, which must then catch the forged proof. Test
    /// builds only.
    #[cfg(test)]
    pub(crate) fn forge_proven(&mut self, pc: usize) {
        let mut a = (*self.analysis).clone();
        a.forge_proven(pc);
        self.set_analysis(a);
    }
}

/// Verifies `insns` and turns them into [`Op`]s, resolving map references through `maps`.
pub fn prepare(
    name: &str,
    section: &str,
    insns: &[RawInsn],
    subprog_starts: &[usize],
    maps: &MapTable,
) -> Result<Prepared, VerifyError> {
    let prog = || name.to_string();
    if insns.is_empty() {
        return Err(VerifyError::Empty { prog: prog() });
    }
    let decoded = isa::decode_all(insns).map_err(|source| VerifyError::Decode {
        prog: prog(),
        source,
    })?;
    let len = insns.len();
    // Which slots start an instruction (false for the second half of an lddw).
    let mut starts = vec![false; len];
    for (pc, _) in &decoded {
        starts[*pc] = true;
    }
    let mut functions: Vec<usize> = vec![0];
    functions.extend(subprog_starts.iter().copied().filter(|&s| s < len));
    let target_ok = |pc: usize, rel: i64| -> Result<usize, VerifyError> {
        let t = pc as i64 + 1 + rel;
        if t < 0 || t >= len as i64 {
            return Err(VerifyError::JumpOutOfRange {
                prog: prog(),
                pc,
                target: t,
                len,
            });
        }
        if !starts[t as usize] {
            return Err(VerifyError::JumpIntoLdImm64 {
                prog: prog(),
                pc,
                target: t as usize - 1,
            });
        }
        Ok(t as usize)
    };
    // The resolved value of each lddw, by slot.
    let mut imm64 = vec![0i64; len];
    for &(pc, insn) in &decoded {
        match insn {
            Insn::Alu { dst, .. }
            | Insn::End { dst, .. }
            | Insn::Load { dst, .. }
            | Insn::LdImm64 { dst, .. }
                if dst == FRAME_POINTER =>
            {
                return Err(VerifyError::WriteToR10 { prog: prog(), pc });
            }
            Insn::Atomic {
                fetch: true, src, ..
            } if src == FRAME_POINTER => {
                return Err(VerifyError::WriteToR10 { prog: prog(), pc });
            }
            Insn::Atomic {
                op: AtomicOp::CmpXchg,
                ..
            } => {}
            Insn::LdPacket { .. } => {
                return Err(VerifyError::NotAllowed {
                    prog: prog(),
                    pc,
                    what: "LD_ABS/LD_IND",
                });
            }
            Insn::Ja { off } => {
                target_ok(pc, off as i64)?;
            }
            Insn::Jmp { off, .. } => {
                target_ok(pc, off as i64)?;
            }
            Insn::Call(CallTarget::Helper(id)) => {
                helpers::check_supported(id).map_err(|e| e.at(name, pc))?;
            }
            Insn::Call(CallTarget::Local(rel)) => {
                let t = target_ok(pc, rel as i64).map_err(|_| VerifyError::BadCallTarget {
                    prog: prog(),
                    pc,
                    target: pc as i64 + 1 + rel as i64,
                })?;
                if !functions.contains(&t) {
                    functions.push(t);
                }
            }
            Insn::Call(CallTarget::Kfunc(btf_id)) => {
                if crate::kfuncs::slot(btf_id).is_none() {
                    return Err(VerifyError::Kfunc {
                        prog: prog(),
                        pc,
                        btf_id,
                    });
                }
            }
            Insn::LdImm64 {
                src, imm, next_imm, ..
            } => {
                imm64[pc] = resolve_ldimm64(name, pc, src, imm, next_imm, maps)?;
                if src == BPF_PSEUDO_FUNC {
                    // A callback (bpf_loop) is a function even when no symbol names it.
                    let t = target_ok(pc, imm as i64)?;
                    imm64[pc] = t as i64;
                    if !functions.contains(&t) {
                        functions.push(t);
                    }
                }
            }
            Insn::Alu { .. }
            | Insn::End { .. }
            | Insn::Exit
            | Insn::Load { .. }
            | Insn::Store { .. }
            | Insn::Atomic { .. } => {}
        }
    }
    // No path may run past the last instruction: the last one must end control flow.
    let (last_pc, last) = *decoded
        .last()
        .expect("non-empty program decodes to at least one insn");
    // Kfuncs run as helpers of the table's kfunc slots (checked above).
    let mut decoded = decoded;
    for (_, insn) in decoded.iter_mut() {
        if let Insn::Call(CallTarget::Kfunc(id)) = *insn {
            if let Some(slot) = crate::kfuncs::slot(id) {
                *insn = Insn::Call(CallTarget::Helper(slot));
            }
        }
    }
    if !matches!(last, Insn::Exit | Insn::Ja { .. }) {
        return Err(VerifyError::FallsOffEnd {
            prog: prog(),
            pc: last_pc,
        });
    }
    functions.sort_unstable();
    functions.dedup();
    let counted_jumps = crate::cycles::backward_jumps_on_cycles(&decoded, len);
    let analysis = Analysis::run(&decoded, len, &MapDesc::of_table(maps), true);
    let mut ops = vec![Op::Hole; len];
    for &(pc, insn) in &decoded {
        ops[pc] = Op::lower(insn, imm64[pc], analysis.proven(pc)).ok_or_else(|| {
            VerifyError::NotAllowed {
                prog: prog(),
                pc,
                what: "this instruction",
            }
        })?;
    }
    Ok(Prepared {
        name: name.to_string(),
        section: section.to_string(),
        ops: ops.into(),
        functions,
        store_id: 0,
        analysis: Arc::new(analysis),
        maps_id: maps.id(),
        counted_jumps,
    })
}

/// A tail call keeps r1 as the caller left it: when some program of `programs` may
/// tail-call with something other than the context in r1, none of them may be
/// analysed assuming r1 is the context at its entry (prog_array slots name programs of
/// the same object).
pub fn forget_entry_ctx_if_tail_calls_forge_it(programs: &mut [Prepared]) {
    if programs.iter().any(|p| p.analysis.tail_call_unproven_ctx) {
        for p in programs.iter_mut() {
            if p.analysis.entry_ctx {
                let a = p.analysis.without_entry_ctx();
                p.set_analysis(a);
            }
        }
    }
}

fn resolve_ldimm64(
    prog: &str,
    pc: usize,
    src: u8,
    imm: i32,
    next_imm: i32,
    maps: &MapTable,
) -> Result<i64, VerifyError> {
    let map_at = |index: i32| {
        maps.get(index as usize)
            .filter(|_| index >= 0)
            .ok_or(VerifyError::BadMapIndex {
                prog: prog.to_string(),
                pc,
                index: index as i64,
                count: maps.len(),
            })
    };
    match src {
        0 => Ok(((next_imm as u32 as u64) << 32 | imm as u32 as u64) as i64),
        BPF_PSEUDO_MAP_IDX => Ok(map_at(imm)?.handle_addr() as i64),
        BPF_PSEUDO_MAP_IDX_VALUE => {
            let m = map_at(imm)?;
            let off = next_imm as u32;
            match m.direct_value_addr(off) {
                Some(addr) => Ok(addr as i64),
                None => Err(VerifyError::BadMapValueOffset {
                    prog: prog.to_string(),
                    pc,
                    map: m.name.clone(),
                    offset: off as i64,
                    value_size: m.info.value_size,
                }),
            }
        }
        BPF_PSEUDO_FUNC => Ok(0),
        other => Err(VerifyError::BadPseudo {
            prog: prog.to_string(),
            pc,
            src: other,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(insns: &[Insn]) -> Result<Prepared, VerifyError> {
        let raw = isa::encode::encode_all(insns);
        prepare("p", "xdp", &raw, &[], &MapTable::new(Vec::new()))
    }

    fn mov(dst: u8, v: i32) -> Insn {
        Insn::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst,
            src: Operand::Imm(v),
        }
    }

    #[test]
    fn unknown_and_unsupported_helpers_are_named() {
        let e = check(&[Insn::Call(CallTarget::Helper(9999)), Insn::Exit]).unwrap_err();
        assert!(
            matches!(
                e,
                VerifyError::UnknownHelper {
                    id: 9999,
                    pc: 0,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("9999"), "{e}");
        // bpf_get_current_task (35) exists in the kernel (also for XDP) but not here.
        let e = check(&[
            mov(1, 1),
            mov(2, 0),
            Insn::Call(CallTarget::Helper(35)),
            Insn::Exit,
        ])
        .unwrap_err();
        assert!(
            matches!(e, VerifyError::UnsupportedHelper { id: 35, pc: 2, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("get_current_task"), "{e}");
        // bpf_fib_lookup (69) is supported.
        assert!(check(&[Insn::Call(CallTarget::Helper(69)), Insn::Exit]).is_ok());
        assert!(check(&[Insn::Call(CallTarget::Helper(1)), Insn::Exit]).is_ok());
    }

    #[test]
    fn control_flow_stays_inside_the_program() {
        let e = check(&[Insn::Ja { off: 5 }, Insn::Exit]).unwrap_err();
        assert!(
            matches!(
                e,
                VerifyError::JumpOutOfRange {
                    pc: 0,
                    target: 6,
                    ..
                }
            ),
            "{e}"
        );
        let e = check(&[Insn::Ja { off: -2 }, Insn::Exit]).unwrap_err();
        assert!(
            matches!(e, VerifyError::JumpOutOfRange { target: -1, .. }),
            "{e}"
        );
        let e = check(&[mov(0, 0)]).unwrap_err();
        assert!(matches!(e, VerifyError::FallsOffEnd { pc: 0, .. }), "{e}");
        // A jump into the second slot of an lddw.
        let e = check(&[
            Insn::Ja { off: 1 },
            Insn::LdImm64 {
                dst: 0,
                src: 0,
                imm: 1,
                next_imm: 0,
            },
            Insn::Exit,
        ])
        .unwrap_err();
        assert!(
            matches!(
                e,
                VerifyError::JumpIntoLdImm64 {
                    pc: 0,
                    target: 1,
                    ..
                }
            ),
            "{e}"
        );
        let e = check(&[Insn::Call(CallTarget::Local(7)), Insn::Exit]).unwrap_err();
        assert!(matches!(e, VerifyError::BadCallTarget { pc: 0, .. }), "{e}");
    }

    #[test]
    fn forbidden_instructions() {
        let e = check(&[mov(10, 0), Insn::Exit]).unwrap_err();
        assert!(matches!(e, VerifyError::WriteToR10 { pc: 0, .. }), "{e}");
        let e = check(&[Insn::Call(CallTarget::Kfunc(77)), Insn::Exit]).unwrap_err();
        assert!(matches!(e, VerifyError::Kfunc { btf_id: 77, .. }), "{e}");
        // A kfunc's helper-table slot is not a helper a program may call.
        let slot = crate::kfuncs::KFUNC_BASE + crate::kfuncs::id::BPF_ITER_NUM_DESTROY;
        let e = check(&[Insn::Call(CallTarget::Helper(slot)), Insn::Exit]).unwrap_err();
        assert!(matches!(e, VerifyError::UnknownHelper { pc: 0, .. }), "{e}");
        let kf = crate::kfuncs::id::BPF_ITER_NUM_DESTROY;
        assert!(check(&[Insn::Call(CallTarget::Kfunc(kf)), Insn::Exit]).is_ok());
        let e = check(&[
            Insn::LdImm64 {
                dst: 1,
                src: BPF_PSEUDO_MAP_IDX,
                imm: 3,
                next_imm: 0,
            },
            Insn::Exit,
        ])
        .unwrap_err();
        assert!(
            matches!(
                e,
                VerifyError::BadMapIndex {
                    index: 3,
                    count: 0,
                    ..
                }
            ),
            "{e}"
        );
        let e = check(&[
            Insn::LdPacket {
                size: isa::Size::W,
                indirect: false,
                src: 0,
                imm: 0,
            },
            Insn::Exit,
        ])
        .unwrap_err();
        assert!(matches!(e, VerifyError::NotAllowed { .. }), "{e}");
        assert!(matches!(check(&[]).unwrap_err(), VerifyError::Empty { .. }));
    }

    /// Every instruction form the decoder yields (one per opcode and operand kind).
    fn every_insn() -> Vec<Insn> {
        use isa::{Endian, JmpCond, Size};
        let mut v = Vec::new();
        let alu_ops = [
            AluOp::Add,
            AluOp::Sub,
            AluOp::Mul,
            AluOp::Div,
            AluOp::SDiv,
            AluOp::Or,
            AluOp::And,
            AluOp::Lsh,
            AluOp::Rsh,
            AluOp::Mod,
            AluOp::SMod,
            AluOp::Xor,
            AluOp::Mov,
            AluOp::Arsh,
        ];
        for width in [Width::W64, Width::W32] {
            for op in alu_ops {
                for src in [Operand::Imm(-7), Operand::Reg(3)] {
                    v.push(Insn::Alu {
                        width,
                        op,
                        dst: 2,
                        src,
                    });
                }
            }
            v.push(Insn::Alu {
                width,
                op: AluOp::Neg,
                dst: 4,
                src: Operand::Imm(0),
            });
            let bits: &[u8] = if width == Width::W64 {
                &[8, 16, 32]
            } else {
                &[8, 16]
            };
            for &b in bits {
                v.push(Insn::Alu {
                    width,
                    op: AluOp::MovSx(b),
                    dst: 1,
                    src: Operand::Reg(9),
                });
            }
            let conds = [
                JmpCond::Eq,
                JmpCond::Gt,
                JmpCond::Ge,
                JmpCond::Set,
                JmpCond::Ne,
                JmpCond::Sgt,
                JmpCond::Sge,
                JmpCond::Lt,
                JmpCond::Le,
                JmpCond::Slt,
                JmpCond::Sle,
            ];
            for cond in conds {
                for src in [Operand::Imm(-1), Operand::Reg(5)] {
                    v.push(Insn::Jmp {
                        width,
                        cond,
                        dst: 6,
                        src,
                        off: -3,
                    });
                }
            }
        }
        for kind in [Endian::ToLe, Endian::ToBe, Endian::Swap] {
            for bits in [16, 32, 64] {
                v.push(Insn::End { kind, bits, dst: 7 });
            }
        }
        v.push(Insn::Ja { off: 100_000 });
        v.push(Insn::Exit);
        for id in [
            1,
            helpers::TAIL_CALL as i32,
            helpers::BPF_LOOP as i32,
            helpers::FOR_EACH_MAP_ELEM as i32,
        ] {
            v.push(Insn::Call(CallTarget::Helper(id)));
        }
        v.push(Insn::Call(CallTarget::Local(-9)));
        for size in [Size::B, Size::H, Size::W, Size::DW] {
            for sign_extend in [false, true] {
                if !(sign_extend && size == Size::DW) {
                    v.push(Insn::Load {
                        size,
                        sign_extend,
                        dst: 0,
                        src: 10,
                        off: -8,
                    });
                }
            }
            for src in [Operand::Imm(-2), Operand::Reg(8)] {
                v.push(Insn::Store {
                    size,
                    dst: 10,
                    off: -16,
                    src,
                });
            }
        }
        for size in [Size::W, Size::DW] {
            for op in [
                AtomicOp::Add,
                AtomicOp::Or,
                AtomicOp::And,
                AtomicOp::Xor,
                AtomicOp::Xchg,
                AtomicOp::CmpXchg,
            ] {
                let always = matches!(op, AtomicOp::Xchg | AtomicOp::CmpXchg);
                let fetches: &[bool] = if always { &[true] } else { &[false, true] };
                for &fetch in fetches {
                    v.push(Insn::Atomic {
                        size,
                        op,
                        fetch,
                        dst: 10,
                        src: 1,
                        off: -8,
                    });
                }
            }
        }
        v.push(Insn::LdImm64 {
            dst: 3,
            src: 0,
            imm: -2,
            next_imm: 0x1234,
        });
        v
    }

    #[test]
    fn ops_round_trip_through_insn() {
        // The interpreter's form is compact: one tag byte and its fields.
        assert_eq!(std::mem::size_of::<Op>(), 16);
        let mut seen = std::collections::HashSet::new();
        for insn in every_insn() {
            // Each form also round-trips through the wire encoding and the decoder.
            let raw = isa::encode::encode_all(&[insn]);
            assert_eq!(isa::decode(&raw, 0).unwrap(), insn);
            let imm64 = 0x1234_ffff_fffe;
            for proven in [false, true] {
                let op = Op::lower(insn, imm64, proven).unwrap_or_else(|| panic!("{insn:?}"));
                assert_eq!(op.insn(), Some(insn), "{op:?}");
                let access = matches!(
                    insn,
                    Insn::Load { .. } | Insn::Store { .. } | Insn::Atomic { .. }
                );
                assert_eq!(op.is_proven(), proven && access, "{op:?}");
                // Distinct instructions lower to distinct ops.
                assert!(seen.insert(op) || !access && proven, "{op:?} twice");
            }
        }
        assert_eq!(
            Op::lower(
                Insn::Call(CallTarget::Helper(helpers::TAIL_CALL as i32)),
                0,
                false
            ),
            Some(Op::TailCall)
        );
        assert_eq!(Op::Hole.insn(), None);
        // What the runtime does not run has no form.
        assert_eq!(Op::lower(Insn::Call(CallTarget::Kfunc(3)), 0, false), None);
        let ld_abs = Insn::LdPacket {
            size: isa::Size::W,
            indirect: false,
            src: 0,
            imm: 0,
        };
        assert_eq!(Op::lower(ld_abs, 0, false), None);
    }

    #[test]
    fn proven_accesses_are_marked_at_prepare_time() {
        // *(u64 *)(r10 - 8) = 1 is proven; a store through a scalar (r1 = 0x1234) is not.
        let p = check(&[
            Insn::Store {
                size: isa::Size::DW,
                dst: 10,
                off: -8,
                src: Operand::Imm(1),
            },
            mov(1, 0x1234),
            Insn::Store {
                size: isa::Size::DW,
                dst: 1,
                off: 0,
                src: Operand::Imm(1),
            },
            Insn::Exit,
        ])
        .unwrap();
        assert!(p.analysis().proven(0) && !p.analysis().proven(2));
        assert_eq!(
            p.ops()[0],
            Op::ProvenStDW {
                dst: 10,
                off: -8,
                imm: 1
            }
        );
        assert_eq!(
            p.ops()[2],
            Op::StDW {
                dst: 1,
                off: 0,
                imm: 1
            }
        );
    }

    #[test]
    fn lddw_constants_are_pre_decoded() {
        let p = check(&[
            Insn::LdImm64 {
                dst: 0,
                src: 0,
                imm: -1,
                next_imm: 0x1234,
            },
            Insn::Exit,
        ])
        .unwrap();
        assert_eq!(
            p.ops()[0],
            Op::LdImm64 {
                dst: 0,
                imm: 0x1234_ffff_ffff
            }
        );
        assert_eq!(p.ops()[1], Op::Hole);
        assert_eq!(p.functions(), &[0]);
    }
}
