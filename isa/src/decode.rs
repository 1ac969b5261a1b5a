//! Bytes -> slots -> [`Insn`].
//!
//! The checks follow the kernel: an opcode byte is accepted only if it is in
//! `bpf_opcode_in_insntable()` (kernel/bpf/core.c) for the instruction set of
//! Documentation/bpf/standardization/instruction-set.rst, and the reserved
//! fields are checked the way `kernel/bpf/verifier.c` does (`check_alu_op`,
//! `check_cond_jmp_op`, `check_ld_abs`, `check_atomic`,
//! `resolve_pseudo_ldimm64` and `do_check`). A one-off manual run against the
//! 6.18 kernel's verifier (BPF_PROG_LOAD of about 25 edge-case encodings) gave
//! the same accept/reject answers. Decoding is stricter than the kernel in two places, where
//! [`Insn`] has no field to carry the value: `exit` with a non-zero `off`, and a
//! kfunc call with a non-zero `off` (a module BTF fd index, which clang never
//! emits in an object file). Extensions newer than instruction-set.rst
//! (`may_goto`, `gotox`, load-acquire/store-release, `addr_space_cast`) are
//! rejected.
//!
//! Semantic checks (jump targets in range, writes to r10, division by a zero
//! immediate, shift amounts) are the verifier's job, not the decoder's.

use crate::error::DecodeError;
use crate::insn::*;
use crate::opcode::*;

/// Splits little-endian bytes into 8-byte slots. The length must be a multiple of 8.
pub fn parse_slots(bytes: &[u8]) -> Result<Vec<RawInsn>, DecodeError> {
    if !bytes.len().is_multiple_of(RawInsn::SIZE) {
        return Err(DecodeError::TrailingBytes { len: bytes.len() });
    }
    Ok(bytes
        .chunks_exact(RawInsn::SIZE)
        .map(|c| RawInsn::from_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect())
}

/// Decodes every instruction of `slots`, in order, with the slot index (pc) at
/// which each starts. An `lddw` covers two slots, so the next pc skips one.
pub fn decode_all(slots: &[RawInsn]) -> Result<Vec<(usize, Insn)>, DecodeError> {
    let mut out = Vec::with_capacity(slots.len());
    let mut pc = 0;
    while pc < slots.len() {
        let insn = decode(slots, pc)?;
        out.push((pc, insn));
        pc += insn.slots();
    }
    Ok(out)
}

/// Decodes the instruction that starts at slot `pc`. An `lddw` consumes slots
/// `pc` and `pc + 1`.
pub fn decode(slots: &[RawInsn], pc: usize) -> Result<Insn, DecodeError> {
    let raw = *slots.get(pc).ok_or(DecodeError::PcOutOfRange {
        pc,
        len: slots.len(),
    })?;
    let d = Ctx { pc, raw };
    match class(raw.code) {
        BPF_ALU | BPF_ALU64 => d.alu(),
        BPF_JMP | BPF_JMP32 => d.jmp(),
        BPF_LD => d.ld(slots),
        BPF_LDX => d.ldx(),
        BPF_ST => d.st(),
        _ => d.stx(), // BPF_STX: the class is 3 bits, all eight are covered.
    }
}

/// Size field of a load/store opcode.
pub(crate) fn size_of(code: u8) -> Size {
    match code & SIZE_MASK {
        BPF_W => Size::W,
        BPF_H => Size::H,
        BPF_B => Size::B,
        _ => Size::DW,
    }
}

/// The decoding context of one slot: its pc and fields.
struct Ctx {
    pc: usize,
    raw: RawInsn,
}

impl Ctx {
    fn unknown(&self) -> DecodeError {
        DecodeError::UnknownOpcode {
            pc: self.pc,
            code: self.raw.code,
        }
    }

    fn reserved(&self, field: &'static str, value: i64) -> DecodeError {
        DecodeError::ReservedField {
            pc: self.pc,
            code: self.raw.code,
            field,
            value,
        }
    }

    /// Fails unless `value` is zero.
    fn zero(&self, field: &'static str, value: i64) -> Result<(), DecodeError> {
        if value != 0 {
            return Err(self.reserved(field, value));
        }
        Ok(())
    }

    fn reg(&self, field: &'static str, reg: u8) -> Result<u8, DecodeError> {
        if usize::from(reg) >= NUM_REGS {
            return Err(DecodeError::BadRegister {
                pc: self.pc,
                code: self.raw.code,
                field,
                reg,
            });
        }
        Ok(reg)
    }

    fn dst(&self) -> Result<u8, DecodeError> {
        self.reg("dst", self.raw.dst)
    }

    fn src(&self) -> Result<u8, DecodeError> {
        self.reg("src", self.raw.src)
    }

    fn is_x(&self) -> bool {
        self.raw.code & SOURCE_MASK == BPF_X
    }

    /// The second operand: a register (BPF_X, imm must be 0) or the
    /// immediate (BPF_K, src must be 0).
    fn operand(&self) -> Result<Operand, DecodeError> {
        if self.is_x() {
            self.zero("imm", self.raw.imm.into())?;
            Ok(Operand::Reg(self.src()?))
        } else {
            self.zero("src", self.raw.src.into())?;
            Ok(Operand::Imm(self.raw.imm))
        }
    }

    fn alu(&self) -> Result<Insn, DecodeError> {
        let RawInsn {
            code,
            src,
            off,
            imm,
            ..
        } = self.raw;
        let width = if class(code) == BPF_ALU64 {
            Width::W64
        } else {
            Width::W32
        };
        let op = code & OP_MASK;
        match op {
            BPF_NEG => {
                if self.is_x() {
                    return Err(self.unknown());
                }
                self.zero("src", src.into())?;
                self.zero("off", off.into())?;
                self.zero("imm", imm.into())?;
                let dst = self.dst()?;
                Ok(Insn::Alu {
                    width,
                    op: AluOp::Neg,
                    dst,
                    src: Operand::Imm(0),
                })
            }
            BPF_END => {
                let kind = match (width, self.is_x()) {
                    (Width::W32, false) => Endian::ToLe,
                    (Width::W32, true) => Endian::ToBe,
                    (Width::W64, false) => Endian::Swap,
                    (Width::W64, true) => return Err(self.unknown()),
                };
                self.zero("src", src.into())?;
                self.zero("off", off.into())?;
                let bits = match imm {
                    16 => 16,
                    32 => 32,
                    64 => 64,
                    _ => return Err(DecodeError::BadEndianWidth { pc: self.pc, imm }),
                };
                let dst = self.dst()?;
                Ok(Insn::End { kind, bits, dst })
            }
            0xe0 | 0xf0 => Err(self.unknown()),
            _ => {
                let alu_op = match (op, off) {
                    (_, 0) => plain_alu_op(op),
                    (BPF_DIV, 1) => AluOp::SDiv,
                    (BPF_MOD, 1) => AluOp::SMod,
                    (BPF_MOV, 8 | 16) if self.is_x() => AluOp::MovSx(off as u8),
                    (BPF_MOV, 32) if self.is_x() && width == Width::W64 => AluOp::MovSx(32),
                    _ => return Err(self.reserved("off", off.into())),
                };
                let operand = self.operand()?;
                let dst = self.dst()?;
                Ok(Insn::Alu {
                    width,
                    op: alu_op,
                    dst,
                    src: operand,
                })
            }
        }
    }

    fn jmp(&self) -> Result<Insn, DecodeError> {
        let RawInsn {
            code,
            dst,
            src,
            off,
            imm,
        } = self.raw;
        let is32 = class(code) == BPF_JMP32;
        let op = code & OP_MASK;
        match op {
            BPF_JA => {
                if self.is_x() {
                    return Err(self.unknown());
                }
                self.zero("src", src.into())?;
                self.zero("dst", dst.into())?;
                if is32 {
                    self.zero("off", off.into())?;
                    Ok(Insn::Ja { off: imm })
                } else {
                    self.zero("imm", imm.into())?;
                    Ok(Insn::Ja { off: off.into() })
                }
            }
            BPF_CALL => {
                if is32 || self.is_x() {
                    return Err(self.unknown());
                }
                self.zero("off", off.into())?;
                self.zero("dst", dst.into())?;
                let target = match src {
                    0 => CallTarget::Helper(imm),
                    BPF_PSEUDO_CALL => CallTarget::Local(imm),
                    BPF_PSEUDO_KFUNC_CALL => CallTarget::Kfunc(imm),
                    _ => return Err(DecodeError::BadCallSrc { pc: self.pc, src }),
                };
                Ok(Insn::Call(target))
            }
            BPF_EXIT => {
                if is32 || self.is_x() {
                    return Err(self.unknown());
                }
                self.zero("imm", imm.into())?;
                self.zero("src", src.into())?;
                self.zero("dst", dst.into())?;
                self.zero("off", off.into())?;
                Ok(Insn::Exit)
            }
            0xe0 | 0xf0 => Err(self.unknown()),
            _ => {
                let cond = match op {
                    BPF_JEQ => JmpCond::Eq,
                    BPF_JGT => JmpCond::Gt,
                    BPF_JGE => JmpCond::Ge,
                    BPF_JSET => JmpCond::Set,
                    BPF_JNE => JmpCond::Ne,
                    BPF_JSGT => JmpCond::Sgt,
                    BPF_JSGE => JmpCond::Sge,
                    BPF_JLT => JmpCond::Lt,
                    BPF_JLE => JmpCond::Le,
                    BPF_JSLT => JmpCond::Slt,
                    _ => JmpCond::Sle,
                };
                let operand = self.operand()?;
                let width = if is32 { Width::W32 } else { Width::W64 };
                Ok(Insn::Jmp {
                    width,
                    cond,
                    dst: self.dst()?,
                    src: operand,
                    off,
                })
            }
        }
    }

    fn ld(&self, slots: &[RawInsn]) -> Result<Insn, DecodeError> {
        let RawInsn {
            code,
            dst,
            src,
            off,
            imm,
        } = self.raw;
        match (code & MODE_MASK, code & SIZE_MASK) {
            (BPF_IMM, BPF_DW) => {
                self.zero("off", off.into())?;
                if src > BPF_PSEUDO_MAP_IDX_VALUE {
                    return Err(DecodeError::BadLdImm64Src { pc: self.pc, src });
                }
                let dst = self.dst()?;
                let next_pc = self.pc + 1;
                let next = *slots
                    .get(next_pc)
                    .ok_or(DecodeError::TruncatedLdImm64 { pc: self.pc })?;
                if next.code != 0 || next.dst != 0 || next.src != 0 || next.off != 0 {
                    return Err(DecodeError::BadLdImm64Tail {
                        pc: next_pc,
                        code: next.code,
                        dst: next.dst,
                        src: next.src,
                        off: next.off,
                    });
                }
                if (src == BPF_PSEUDO_MAP_FD || src == BPF_PSEUDO_MAP_IDX) && next.imm != 0 {
                    return Err(DecodeError::ReservedField {
                        pc: next_pc,
                        code: next.code,
                        field: "imm",
                        value: next.imm.into(),
                    });
                }
                Ok(Insn::LdImm64 {
                    dst,
                    src,
                    imm,
                    next_imm: next.imm,
                })
            }
            (mode @ (BPF_ABS | BPF_IND), size) if size != BPF_DW => {
                let indirect = mode == BPF_IND;
                self.zero("dst", dst.into())?;
                self.zero("off", off.into())?;
                let src = if indirect {
                    self.src()?
                } else {
                    self.zero("src", src.into())?;
                    0
                };
                Ok(Insn::LdPacket {
                    size: size_of(code),
                    indirect,
                    src,
                    imm,
                })
            }
            _ => Err(self.unknown()),
        }
    }

    fn ldx(&self) -> Result<Insn, DecodeError> {
        let RawInsn { code, off, imm, .. } = self.raw;
        let sign_extend = match (code & MODE_MASK, code & SIZE_MASK) {
            (BPF_MEM, _) => false,
            (BPF_MEMSX, size) if size != BPF_DW => true,
            _ => return Err(self.unknown()),
        };
        self.zero("imm", imm.into())?;
        Ok(Insn::Load {
            size: size_of(code),
            sign_extend,
            dst: self.dst()?,
            src: self.src()?,
            off,
        })
    }

    fn st(&self) -> Result<Insn, DecodeError> {
        let RawInsn {
            code,
            src,
            off,
            imm,
            ..
        } = self.raw;
        if code & MODE_MASK != BPF_MEM {
            return Err(self.unknown());
        }
        self.zero("src", src.into())?;
        Ok(Insn::Store {
            size: size_of(code),
            dst: self.dst()?,
            off,
            src: Operand::Imm(imm),
        })
    }

    fn stx(&self) -> Result<Insn, DecodeError> {
        let RawInsn { code, off, imm, .. } = self.raw;
        match code & MODE_MASK {
            BPF_MEM => {
                self.zero("imm", imm.into())?;
                Ok(Insn::Store {
                    size: size_of(code),
                    dst: self.dst()?,
                    off,
                    src: Operand::Reg(self.src()?),
                })
            }
            BPF_ATOMIC => {
                let (op, fetch) = match imm {
                    BPF_ATOMIC_ADD => (AtomicOp::Add, false),
                    BPF_ATOMIC_OR => (AtomicOp::Or, false),
                    BPF_ATOMIC_AND => (AtomicOp::And, false),
                    BPF_ATOMIC_XOR => (AtomicOp::Xor, false),
                    x if x == BPF_ATOMIC_ADD | BPF_FETCH => (AtomicOp::Add, true),
                    x if x == BPF_ATOMIC_OR | BPF_FETCH => (AtomicOp::Or, true),
                    x if x == BPF_ATOMIC_AND | BPF_FETCH => (AtomicOp::And, true),
                    x if x == BPF_ATOMIC_XOR | BPF_FETCH => (AtomicOp::Xor, true),
                    BPF_XCHG => (AtomicOp::Xchg, true),
                    BPF_CMPXCHG => (AtomicOp::CmpXchg, true),
                    _ => return Err(DecodeError::BadAtomicOp { pc: self.pc, imm }),
                };
                let size = match code & SIZE_MASK {
                    BPF_W => Size::W,
                    BPF_DW => Size::DW,
                    _ => return Err(DecodeError::BadAtomicSize { pc: self.pc, code }),
                };
                Ok(Insn::Atomic {
                    size,
                    op,
                    fetch,
                    dst: self.dst()?,
                    src: self.src()?,
                    off,
                })
            }
            _ => Err(self.unknown()),
        }
    }
}

/// The ALU operation of an opcode whose `off` is 0 (NEG and END are handled
/// by the caller).
fn plain_alu_op(op: u8) -> AluOp {
    match op {
        BPF_ADD => AluOp::Add,
        BPF_SUB => AluOp::Sub,
        BPF_MUL => AluOp::Mul,
        BPF_DIV => AluOp::Div,
        BPF_OR => AluOp::Or,
        BPF_AND => AluOp::And,
        BPF_LSH => AluOp::Lsh,
        BPF_RSH => AluOp::Rsh,
        BPF_MOD => AluOp::Mod,
        BPF_XOR => AluOp::Xor,
        BPF_MOV => AluOp::Mov,
        _ => AluOp::Arsh,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> RawInsn {
        RawInsn::new(code, dst, src, off, imm)
    }

    fn one(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Result<Insn, DecodeError> {
        decode(&[raw(code, dst, src, off, imm)], 0)
    }

    fn reserved_field(r: Result<Insn, DecodeError>) -> &'static str {
        match r {
            Err(DecodeError::ReservedField { field, .. }) => field,
            other => panic!("expected ReservedField, got {other:?}"),
        }
    }

    #[test]
    fn parse_slots_splits_little_endian() {
        // `r9 = *(u32 *)(r6 + 4)` and `r2 += -4`, bytes as printed by llvm-objdump.
        let bytes = [
            0x61, 0x69, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x02, 0x00, 0x00, 0xfc, 0xff,
            0xff, 0xff,
        ];
        let slots = parse_slots(&bytes).unwrap();
        assert_eq!(slots, vec![raw(0x61, 9, 6, 4, 0), raw(0x07, 2, 0, 0, -4)]);
        assert_eq!(parse_slots(&[]).unwrap(), vec![]);
        assert_eq!(
            parse_slots(&bytes[..9]),
            Err(DecodeError::TrailingBytes { len: 9 })
        );
    }

    #[test]
    fn decodes_common_instructions() {
        assert_eq!(
            one(0x61, 9, 6, 4, 0).unwrap(),
            Insn::Load {
                size: Size::W,
                sign_extend: false,
                dst: 9,
                src: 6,
                off: 4
            }
        );
        assert_eq!(
            one(0x07, 2, 0, 0, -4).unwrap(),
            Insn::Alu {
                width: Width::W64,
                op: AluOp::Add,
                dst: 2,
                src: Operand::Imm(-4)
            }
        );
        assert_eq!(
            one(0xce, 1, 3, 1, 0).unwrap(),
            Insn::Jmp {
                width: Width::W32,
                cond: JmpCond::Slt,
                dst: 1,
                src: Operand::Reg(3),
                off: 1
            }
        );
        assert_eq!(
            one(0x85, 0, 1, 0, -1).unwrap(),
            Insn::Call(CallTarget::Local(-1))
        );
        assert_eq!(
            one(0x85, 0, 2, 0, 77).unwrap(),
            Insn::Call(CallTarget::Kfunc(77))
        );
        assert_eq!(one(0x95, 0, 0, 0, 0).unwrap(), Insn::Exit);
        assert_eq!(
            one(0xdb, 1, 3, 0, 0xa1).unwrap(),
            Insn::Atomic {
                size: Size::DW,
                op: AtomicOp::Xor,
                fetch: true,
                dst: 1,
                src: 3,
                off: 0
            }
        );
        assert_eq!(one(0x06, 0, 0, 0, 70000).unwrap(), Insn::Ja { off: 70000 });
        assert_eq!(one(0x05, 0, 0, -3, 0).unwrap(), Insn::Ja { off: -3 });
        assert_eq!(
            one(0xd7, 4, 0, 0, 32).unwrap(),
            Insn::End {
                kind: Endian::Swap,
                bits: 32,
                dst: 4
            }
        );
        assert_eq!(
            one(0xdc, 4, 0, 0, 16).unwrap(),
            Insn::End {
                kind: Endian::ToBe,
                bits: 16,
                dst: 4
            }
        );
        assert_eq!(
            one(0xbf, 1, 2, 32, 0).unwrap(),
            Insn::Alu {
                width: Width::W64,
                op: AluOp::MovSx(32),
                dst: 1,
                src: Operand::Reg(2)
            }
        );
        assert_eq!(
            one(0x3c, 1, 2, 1, 0).unwrap(),
            Insn::Alu {
                width: Width::W32,
                op: AluOp::SDiv,
                dst: 1,
                src: Operand::Reg(2)
            }
        );
        assert_eq!(
            one(0x97, 1, 0, 1, 7).unwrap(),
            Insn::Alu {
                width: Width::W64,
                op: AluOp::SMod,
                dst: 1,
                src: Operand::Imm(7)
            }
        );
        assert_eq!(
            one(0x91, 1, 2, -1, 0).unwrap(),
            Insn::Load {
                size: Size::B,
                sign_extend: true,
                dst: 1,
                src: 2,
                off: -1
            }
        );
        assert_eq!(
            one(0x7a, 10, 0, -8, -1).unwrap(),
            Insn::Store {
                size: Size::DW,
                dst: 10,
                off: -8,
                src: Operand::Imm(-1)
            }
        );
        assert_eq!(
            one(0x48, 0, 3, 0, 4).unwrap(),
            Insn::LdPacket {
                size: Size::H,
                indirect: true,
                src: 3,
                imm: 4
            }
        );
    }

    #[test]
    fn lddw_takes_two_slots() {
        let slots = [
            raw(0x18, 3, 0, 0, 0x89ab_cdefu32 as i32),
            raw(0, 0, 0, 0, 0x0123_4567),
        ];
        assert_eq!(
            decode(&slots, 0).unwrap(),
            Insn::LdImm64 {
                dst: 3,
                src: 0,
                imm: 0x89ab_cdefu32 as i32,
                next_imm: 0x0123_4567
            }
        );
        for src in 1..=6 {
            let next_imm = if src == 1 || src == 5 { 0 } else { 9 };
            let slots = [raw(0x18, 1, src, 0, 5), raw(0, 0, 0, 0, next_imm)];
            assert_eq!(
                decode(&slots, 0).unwrap(),
                Insn::LdImm64 {
                    dst: 1,
                    src,
                    imm: 5,
                    next_imm
                }
            );
        }
        // The kernel requires a zero second imm for map fd / map idx.
        let slots = [raw(0x18, 1, 1, 0, 5), raw(0, 0, 0, 0, 1)];
        assert!(matches!(
            decode(&slots, 0),
            Err(DecodeError::ReservedField {
                pc: 1,
                field: "imm",
                ..
            })
        ));
        assert_eq!(
            decode(&[raw(0x18, 1, 7, 0, 0), raw(0, 0, 0, 0, 0)], 0),
            Err(DecodeError::BadLdImm64Src { pc: 0, src: 7 })
        );
        assert_eq!(
            decode(&[raw(0x95, 0, 0, 0, 0), raw(0x18, 1, 0, 0, 0)], 1),
            Err(DecodeError::TruncatedLdImm64 { pc: 1 })
        );
        for tail in [
            raw(0x95, 0, 0, 0, 0),
            raw(0, 1, 0, 0, 0),
            raw(0, 0, 1, 0, 0),
            raw(0, 0, 0, 1, 0),
        ] {
            assert!(matches!(
                decode(&[raw(0x18, 1, 0, 0, 0), tail], 0),
                Err(DecodeError::BadLdImm64Tail { pc: 1, .. })
            ));
        }
        assert_eq!(
            reserved_field(decode(&[raw(0x18, 1, 0, 1, 0), raw(0, 0, 0, 0, 0)], 0)),
            "off"
        );
    }

    #[test]
    fn decode_all_reports_slot_pcs() {
        let slots = [
            raw(0xb7, 0, 0, 0, 1),
            raw(0x18, 1, 0, 0, 2),
            raw(0, 0, 0, 0, 3),
            raw(0x95, 0, 0, 0, 0),
        ];
        let pcs: Vec<usize> = decode_all(&slots)
            .unwrap()
            .iter()
            .map(|(pc, _)| *pc)
            .collect();
        assert_eq!(pcs, vec![0, 1, 3]);
        assert_eq!(
            decode(&slots, 4),
            Err(DecodeError::PcOutOfRange { pc: 4, len: 4 })
        );
        // An error names the slot it is in.
        let bad = [raw(0xb7, 0, 0, 0, 1), raw(0xff, 0, 0, 0, 0)];
        assert_eq!(
            decode_all(&bad),
            Err(DecodeError::UnknownOpcode { pc: 1, code: 0xff })
        );
    }

    #[test]
    fn rejects_reserved_fields_like_the_verifier() {
        // BPF_K ALU ops must have src = 0; BPF_X ALU ops imm = 0.
        assert_eq!(reserved_field(one(0x07, 1, 2, 0, 1)), "src");
        assert_eq!(reserved_field(one(0x0f, 1, 2, 0, 1)), "imm");
        // off = 1 only for div and mod.
        assert_eq!(reserved_field(one(0x0f, 1, 2, 1, 0)), "off");
        assert_eq!(reserved_field(one(0x3f, 1, 2, 2, 0)), "off");
        // movsx: 8/16/32 for ALU64, 8/16 for ALU, register source only.
        assert_eq!(reserved_field(one(0xbc, 1, 2, 32, 0)), "off");
        assert_eq!(reserved_field(one(0xbf, 1, 2, 64, 0)), "off");
        assert_eq!(reserved_field(one(0xb7, 1, 0, 8, 0)), "off");
        assert_eq!(reserved_field(one(0xbf, 1, 2, 0, 1)), "imm");
        // neg: K only, src/off/imm zero.
        assert_eq!(
            one(0x8f, 1, 0, 0, 0),
            Err(DecodeError::UnknownOpcode { pc: 0, code: 0x8f })
        );
        assert_eq!(reserved_field(one(0x87, 1, 0, 0, 1)), "imm");
        assert_eq!(reserved_field(one(0x87, 1, 1, 0, 0)), "src");
        // end: imm 16/32/64, ALU64 only with TO_LE.
        assert_eq!(
            one(0xd4, 1, 0, 0, 8),
            Err(DecodeError::BadEndianWidth { pc: 0, imm: 8 })
        );
        assert_eq!(
            one(0xdf, 1, 0, 0, 16),
            Err(DecodeError::UnknownOpcode { pc: 0, code: 0xdf })
        );
        assert_eq!(reserved_field(one(0xdc, 1, 0, 1, 16)), "off");
        // Jumps.
        assert_eq!(reserved_field(one(0x05, 0, 0, 1, 1)), "imm");
        assert_eq!(reserved_field(one(0x06, 0, 0, 1, 1)), "off");
        assert_eq!(reserved_field(one(0x05, 1, 0, 1, 0)), "dst");
        assert_eq!(reserved_field(one(0x15, 1, 2, 1, 0)), "src");
        assert_eq!(reserved_field(one(0x1d, 1, 2, 1, 5)), "imm");
        assert_eq!(reserved_field(one(0x85, 1, 0, 0, 1)), "dst");
        assert_eq!(reserved_field(one(0x85, 0, 0, 1, 1)), "off");
        assert_eq!(
            one(0x85, 0, 3, 0, 1),
            Err(DecodeError::BadCallSrc { pc: 0, src: 3 })
        );
        assert_eq!(
            one(0x86, 0, 0, 0, 1),
            Err(DecodeError::UnknownOpcode { pc: 0, code: 0x86 })
        );
        assert_eq!(
            one(0x96, 0, 0, 0, 0),
            Err(DecodeError::UnknownOpcode { pc: 0, code: 0x96 })
        );
        assert_eq!(reserved_field(one(0x95, 0, 0, 0, 1)), "imm");
        assert_eq!(reserved_field(one(0x95, 1, 0, 0, 0)), "dst");
        // may_goto (JMP|JCOND) is outside this ISA.
        assert_eq!(
            one(0xe5, 0, 0, 0, 0),
            Err(DecodeError::UnknownOpcode { pc: 0, code: 0xe5 })
        );
        // Loads and stores.
        assert_eq!(reserved_field(one(0x61, 1, 2, 0, 1)), "imm");
        assert_eq!(reserved_field(one(0x63, 1, 2, 0, 1)), "imm");
        assert_eq!(reserved_field(one(0x62, 1, 2, 0, 1)), "src");
        assert_eq!(
            one(0x99, 1, 2, 0, 0),
            Err(DecodeError::UnknownOpcode { pc: 0, code: 0x99 })
        );
        assert_eq!(reserved_field(one(0x30, 1, 0, 0, 1)), "dst");
        assert_eq!(reserved_field(one(0x30, 0, 1, 0, 1)), "src");
        assert_eq!(reserved_field(one(0x50, 0, 1, 2, 1)), "off");
        assert_eq!(
            one(0x38, 0, 0, 0, 1),
            Err(DecodeError::UnknownOpcode { pc: 0, code: 0x38 })
        );
        // Atomics: W/DW only, known operations only.
        assert_eq!(
            one(0xd3, 1, 2, 0, 0),
            Err(DecodeError::BadAtomicSize { pc: 0, code: 0xd3 })
        );
        assert_eq!(
            one(0xdb, 1, 2, 0, 2),
            Err(DecodeError::BadAtomicOp { pc: 0, imm: 2 })
        );
        assert_eq!(
            one(0xdb, 1, 2, 0, 0xe0),
            Err(DecodeError::BadAtomicOp { pc: 0, imm: 0xe0 })
        );
        // Registers above r10.
        assert!(matches!(
            one(0xbf, 11, 1, 0, 0),
            Err(DecodeError::BadRegister {
                reg: 11,
                field: "dst",
                ..
            })
        ));
        assert!(matches!(
            one(0x79, 1, 15, 0, 0),
            Err(DecodeError::BadRegister {
                reg: 15,
                field: "src",
                ..
            })
        ));
    }

    /// The opcode bytes that the kernel's `bpf_opcode_in_insntable()`
    /// (kernel/bpf/core.c, BPF_INSN_MAP plus the LD_ABS/IND carry-overs)
    /// accepts for the instruction set of instruction-set.rst, written out by
    /// hand from that table.
    fn kernel_opcode_table() -> Vec<u8> {
        let mut v = vec![];
        for class in [BPF_ALU, BPF_ALU64] {
            for op in [
                BPF_ADD, BPF_SUB, BPF_AND, BPF_OR, BPF_LSH, BPF_RSH, BPF_XOR, BPF_MUL, BPF_MOV,
                BPF_ARSH, BPF_DIV, BPF_MOD,
            ] {
                v.push(class | op | BPF_X);
                v.push(class | op | BPF_K);
            }
            v.push(class | BPF_NEG);
        }
        v.extend([BPF_ALU | BPF_END | BPF_TO_BE, BPF_ALU | BPF_END | BPF_TO_LE]);
        v.push(BPF_ALU64 | BPF_END | BPF_TO_LE);
        for class in [BPF_JMP, BPF_JMP32] {
            for op in [
                BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_JNE, BPF_JSGT, BPF_JSGE, BPF_JLT, BPF_JLE,
                BPF_JSLT, BPF_JSLE,
            ] {
                v.push(class | op | BPF_X);
                v.push(class | op | BPF_K);
            }
            v.push(class | BPF_JA);
        }
        v.extend([BPF_JMP | BPF_CALL, BPF_JMP | BPF_EXIT]);
        for size in [BPF_B, BPF_H, BPF_W, BPF_DW] {
            v.extend([
                BPF_STX | BPF_MEM | size,
                BPF_ST | BPF_MEM | size,
                BPF_LDX | BPF_MEM | size,
            ]);
        }
        v.extend([BPF_STX | BPF_ATOMIC | BPF_W, BPF_STX | BPF_ATOMIC | BPF_DW]);
        for size in [BPF_B, BPF_H, BPF_W] {
            v.extend([
                BPF_LDX | BPF_MEMSX | size,
                BPF_LD | BPF_ABS | size,
                BPF_LD | BPF_IND | size,
            ]);
        }
        v.push(BPF_LD | BPF_IMM | BPF_DW);
        v.sort_unstable();
        v
    }

    #[test]
    fn accepted_opcodes_are_the_kernel_table() {
        let expected = kernel_opcode_table();
        assert_eq!(expected.len(), 125);
        let imms = [0, 1, 16, 0x41, 0xe1];
        let mut accepted = vec![];
        for code in 0..=255u8 {
            let any = [0i16, 1, 8].iter().any(|&off| {
                imms.iter().any(|&imm| {
                    [0u8, 1].iter().any(|&src| {
                        decode(&[raw(code, 0, src, off, imm), raw(0, 0, 0, 0, 0)], 0).is_ok()
                    })
                })
            });
            if any {
                accepted.push(code);
            } else {
                // A code outside the table is "unknown opcode", except the B/H
                // atomics, which newer kernels list (for load-acquire/store-release)
                // and reject as "invalid atomic operand size".
                let expected = if code & MODE_MASK == BPF_ATOMIC && class(code) == BPF_STX {
                    DecodeError::BadAtomicSize { pc: 0, code }
                } else {
                    DecodeError::UnknownOpcode { pc: 0, code }
                };
                assert_eq!(one(code, 0, 0, 0, 0), Err(expected), "code {code:#04x}");
            }
        }
        assert_eq!(accepted, expected);
    }
}
