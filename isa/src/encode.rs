//! [`Insn`] -> slots. The inverse of [`crate::decode()`]: for every slot
//! sequence that decodes, encoding the result gives the same slots back, with
//! one exception: a `gotol` (`JMP32|JA`) whose offset fits in 16 bits
//! re-encodes as the equivalent `ja` (`JMP|JA`), since [`Insn::Ja`] does not
//! record which of the two it came from. Encoding picks `ja` when the offset
//! fits and `gotol` otherwise, as LLVM does.
//!
//! Encoding does not validate: an [`Insn`] the decoder would never produce
//! (register 12, `MovSx(7)`, an atomic of size B, ...) encodes to slots that
//! the decoder rejects.

use crate::insn::*;
use crate::opcode::*;

/// The 1 or 2 slots of one instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Encoded {
    slots: [RawInsn; 2],
    len: usize,
}

impl Encoded {
    /// The slots: one, or two for `lddw`.
    pub fn as_slice(&self) -> &[RawInsn] {
        &self.slots[..self.len]
    }

    /// Number of slots (1 or 2).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: an instruction has at least one slot.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Little-endian bytes of the slots (8 or 16 bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        slots_to_bytes(self.as_slice())
    }
}

/// Encodes one instruction: the slots, and how many of them are used (1 or 2;
/// the unused second slot is all zero).
pub fn encode(insn: &Insn) -> ([RawInsn; 2], usize) {
    let e = encode_insn(insn);
    (e.slots, e.len)
}

/// Appends the slots of `insn` to `out`.
pub fn encode_into(insn: &Insn, out: &mut Vec<RawInsn>) {
    out.extend_from_slice(encode_insn(insn).as_slice());
}

/// Encodes an instruction sequence.
pub fn encode_all(insns: &[Insn]) -> Vec<RawInsn> {
    let mut out = Vec::with_capacity(insns.len() + 1);
    for insn in insns {
        encode_into(insn, &mut out);
    }
    out
}

/// Little-endian bytes of a slot sequence, as in an object file.
pub fn slots_to_bytes(slots: &[RawInsn]) -> Vec<u8> {
    slots.iter().flat_map(|s| s.to_bytes()).collect()
}

/// Encodes one instruction as an [`Encoded`].
pub fn encode_insn(insn: &Insn) -> Encoded {
    let one = |code, dst, src, off, imm| Encoded {
        slots: [RawInsn::new(code, dst, src, off, imm), RawInsn::default()],
        len: 1,
    };
    match *insn {
        Insn::Alu {
            width,
            op,
            dst,
            src,
        } => {
            let class = match width {
                Width::W32 => BPF_ALU,
                Width::W64 => BPF_ALU64,
            };
            let (opc, off) = alu_op_bits(op);
            let (srcbit, sreg, imm) = operand_bits(src);
            one(class | opc | srcbit, dst, sreg, off, imm)
        }
        Insn::End { kind, bits, dst } => {
            let code = match kind {
                Endian::ToLe => BPF_ALU | BPF_END | BPF_TO_LE,
                Endian::ToBe => BPF_ALU | BPF_END | BPF_TO_BE,
                Endian::Swap => BPF_ALU64 | BPF_END | BPF_TO_LE,
            };
            one(code, dst, 0, 0, bits.into())
        }
        Insn::Ja { off } => match i16::try_from(off) {
            Ok(off16) => one(JA, 0, 0, off16, 0),
            Err(_) => one(GOTOL, 0, 0, 0, off),
        },
        Insn::Jmp {
            width,
            cond,
            dst,
            src,
            off,
        } => {
            let class = match width {
                Width::W32 => BPF_JMP32,
                Width::W64 => BPF_JMP,
            };
            let (srcbit, sreg, imm) = operand_bits(src);
            one(class | jmp_cond_bits(cond) | srcbit, dst, sreg, off, imm)
        }
        Insn::Call(target) => {
            let (src, imm) = match target {
                CallTarget::Helper(id) => (0, id),
                CallTarget::Local(rel) => (BPF_PSEUDO_CALL, rel),
                CallTarget::Kfunc(id) => (BPF_PSEUDO_KFUNC_CALL, id),
            };
            one(CALL, 0, src, 0, imm)
        }
        Insn::Exit => one(EXIT, 0, 0, 0, 0),
        Insn::Load {
            size,
            sign_extend,
            dst,
            src,
            off,
        } => {
            let mode = if sign_extend { BPF_MEMSX } else { BPF_MEM };
            one(BPF_LDX | mode | size_bits(size), dst, src, off, 0)
        }
        Insn::Store {
            size,
            dst,
            off,
            src,
        } => match src {
            Operand::Reg(r) => one(BPF_STX | BPF_MEM | size_bits(size), dst, r, off, 0),
            Operand::Imm(imm) => one(BPF_ST | BPF_MEM | size_bits(size), dst, 0, off, imm),
        },
        Insn::Atomic {
            size,
            op,
            fetch,
            dst,
            src,
            off,
        } => {
            let base = match op {
                AtomicOp::Add => BPF_ATOMIC_ADD,
                AtomicOp::Or => BPF_ATOMIC_OR,
                AtomicOp::And => BPF_ATOMIC_AND,
                AtomicOp::Xor => BPF_ATOMIC_XOR,
                AtomicOp::Xchg => BPF_XCHG,
                AtomicOp::CmpXchg => BPF_CMPXCHG,
            };
            let imm = if fetch { base | BPF_FETCH } else { base };
            one(BPF_STX | BPF_ATOMIC | size_bits(size), dst, src, off, imm)
        }
        Insn::LdImm64 {
            dst,
            src,
            imm,
            next_imm,
        } => Encoded {
            slots: [
                RawInsn::new(LDDW, dst, src, 0, imm),
                RawInsn::new(0, 0, 0, 0, next_imm),
            ],
            len: 2,
        },
        Insn::LdPacket {
            size,
            indirect,
            src,
            imm,
        } => {
            let mode = if indirect { BPF_IND } else { BPF_ABS };
            one(BPF_LD | mode | size_bits(size), 0, src, 0, imm)
        }
    }
}

/// (operation bits, off) of an ALU operation.
fn alu_op_bits(op: AluOp) -> (u8, i16) {
    match op {
        AluOp::Add => (BPF_ADD, 0),
        AluOp::Sub => (BPF_SUB, 0),
        AluOp::Mul => (BPF_MUL, 0),
        AluOp::Div => (BPF_DIV, 0),
        AluOp::SDiv => (BPF_DIV, 1),
        AluOp::Or => (BPF_OR, 0),
        AluOp::And => (BPF_AND, 0),
        AluOp::Lsh => (BPF_LSH, 0),
        AluOp::Rsh => (BPF_RSH, 0),
        AluOp::Neg => (BPF_NEG, 0),
        AluOp::Mod => (BPF_MOD, 0),
        AluOp::SMod => (BPF_MOD, 1),
        AluOp::Xor => (BPF_XOR, 0),
        AluOp::Mov => (BPF_MOV, 0),
        AluOp::MovSx(bits) => (BPF_MOV, bits.into()),
        AluOp::Arsh => (BPF_ARSH, 0),
    }
}

fn jmp_cond_bits(cond: JmpCond) -> u8 {
    match cond {
        JmpCond::Eq => BPF_JEQ,
        JmpCond::Gt => BPF_JGT,
        JmpCond::Ge => BPF_JGE,
        JmpCond::Set => BPF_JSET,
        JmpCond::Ne => BPF_JNE,
        JmpCond::Sgt => BPF_JSGT,
        JmpCond::Sge => BPF_JSGE,
        JmpCond::Lt => BPF_JLT,
        JmpCond::Le => BPF_JLE,
        JmpCond::Slt => BPF_JSLT,
        JmpCond::Sle => BPF_JSLE,
    }
}

fn size_bits(size: Size) -> u8 {
    match size {
        Size::B => BPF_B,
        Size::H => BPF_H,
        Size::W => BPF_W,
        Size::DW => BPF_DW,
    }
}

/// (source bit, src register field, imm) of an operand.
fn operand_bits(src: Operand) -> (u8, u8, i32) {
    match src {
        Operand::Reg(r) => (BPF_X, r, 0),
        Operand::Imm(imm) => (BPF_K, 0, imm),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode;
    use crate::error::DecodeError;

    const DSTS: [u8; 5] = [0, 1, 10, 11, 15];
    const SRCS: [u8; 9] = [0, 1, 2, 3, 5, 6, 7, 10, 11];
    const OFFS: [i16; 9] = [0, 1, -1, 8, 16, 32, 7, i16::MIN, i16::MAX];
    const IMMS: [i32; 22] = [
        0,
        1,
        -1,
        2,
        8,
        16,
        32,
        64,
        0x40,
        0x41,
        0x50,
        0x51,
        0xa0,
        0xa1,
        0xe0,
        0xe1,
        0xf1,
        0x100,
        70000,
        -70000,
        i32::MIN,
        i32::MAX,
    ];

    /// Every opcode byte x representative field values: whatever decodes
    /// re-encodes to the same slots (except gotol with a short offset, which
    /// must re-encode to the equivalent ja and decode to the same Insn).
    #[test]
    fn round_trip_over_all_opcodes() {
        let tails = [
            RawInsn::new(0, 0, 0, 0, 0),
            RawInsn::new(0, 0, 0, 0, 5),
            RawInsn::new(1, 0, 0, 0, 0),
        ];
        let mut valid = 0usize;
        let mut invalid = 0usize;
        let mut codes_seen = [false; 256];
        for code in 0..=255u8 {
            for &dst in &DSTS {
                for &src in &SRCS {
                    for &off in &OFFS {
                        for &imm in &IMMS {
                            let tails = if code == LDDW {
                                &tails[..]
                            } else {
                                &tails[..1]
                            };
                            for tail in tails {
                                let slots = [RawInsn::new(code, dst, src, off, imm), *tail];
                                let Ok(insn) = decode(&slots, 0) else {
                                    invalid += 1;
                                    continue;
                                };
                                valid += 1;
                                codes_seen[usize::from(code)] = true;
                                let (enc, n) = encode(&insn);
                                assert_eq!(n, insn.slots());
                                if code == GOTOL && i16::try_from(imm).is_ok() {
                                    assert_eq!(enc[0], RawInsn::new(JA, 0, 0, imm as i16, 0));
                                    assert_eq!(decode(&enc, 0), Ok(insn));
                                    continue;
                                }
                                assert_eq!(&enc[..n], &slots[..n], "{insn:?}");
                            }
                        }
                    }
                }
            }
        }
        assert!(valid > 10_000, "only {valid} valid encodings");
        assert!(invalid > valid, "{invalid} invalid vs {valid} valid");
        assert_eq!(codes_seen.iter().filter(|&&s| s).count(), 125);
    }

    #[test]
    fn encodes_known_bytes() {
        // Expected bytes are llvm-objdump's for clang-compiled code.
        let cases: &[(Insn, &[u8])] = &[
            (
                Insn::Alu {
                    width: Width::W64,
                    op: AluOp::Mov,
                    dst: 6,
                    src: Operand::Reg(1),
                },
                &[0xbf, 0x16, 0, 0, 0, 0, 0, 0],
            ),
            (
                Insn::Alu {
                    width: Width::W32,
                    op: AluOp::Xor,
                    dst: 1,
                    src: Operand::Imm(-65536),
                },
                &[0xa4, 0x01, 0, 0, 0, 0, 0xff, 0xff],
            ),
            (
                Insn::Jmp {
                    width: Width::W64,
                    cond: JmpCond::Eq,
                    dst: 1,
                    src: Operand::Imm(0),
                    off: 69,
                },
                &[0x15, 0x01, 0x45, 0, 0, 0, 0, 0],
            ),
            (
                Insn::Atomic {
                    size: Size::DW,
                    op: AtomicOp::CmpXchg,
                    fetch: true,
                    dst: 1,
                    src: 2,
                    off: 0,
                },
                &[0xdb, 0x21, 0, 0, 0xf1, 0, 0, 0],
            ),
            (
                Insn::Call(CallTarget::Local(-1)),
                &[0x85, 0x10, 0, 0, 0xff, 0xff, 0xff, 0xff],
            ),
            (
                Insn::LdImm64 {
                    dst: 3,
                    src: 0,
                    imm: 0x89ab_cdefu32 as i32,
                    next_imm: 0x0123_4567,
                },
                &[
                    0x18, 0x03, 0, 0, 0xef, 0xcd, 0xab, 0x89, 0, 0, 0, 0, 0x67, 0x45, 0x23, 0x01,
                ],
            ),
            (Insn::Ja { off: 1 << 20 }, &[0x06, 0, 0, 0, 0, 0, 0x10, 0]),
            (Insn::Ja { off: -2 }, &[0x05, 0, 0xfe, 0xff, 0, 0, 0, 0]),
            (Insn::Exit, &[0x95, 0, 0, 0, 0, 0, 0, 0]),
        ];
        for (insn, bytes) in cases {
            assert_eq!(encode_insn(insn).to_bytes(), *bytes, "{insn:?}");
        }
        let all = encode_all(&[cases[5].0, Insn::Exit]);
        assert_eq!(all.len(), 3);
        assert_eq!(slots_to_bytes(&all)[16..], [0x95, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn invalid_insns_encode_to_rejected_slots() {
        let bad = [
            Insn::Alu {
                width: Width::W32,
                op: AluOp::MovSx(32),
                dst: 1,
                src: Operand::Reg(2),
            },
            Insn::Alu {
                width: Width::W64,
                op: AluOp::Add,
                dst: 12,
                src: Operand::Imm(0),
            },
            Insn::End {
                kind: Endian::Swap,
                bits: 8,
                dst: 1,
            },
            Insn::Atomic {
                size: Size::B,
                op: AtomicOp::Add,
                fetch: false,
                dst: 1,
                src: 2,
                off: 0,
            },
            Insn::Load {
                size: Size::DW,
                sign_extend: true,
                dst: 1,
                src: 2,
                off: 0,
            },
            Insn::LdPacket {
                size: Size::DW,
                indirect: false,
                src: 0,
                imm: 0,
            },
            Insn::LdImm64 {
                dst: 1,
                src: 9,
                imm: 0,
                next_imm: 0,
            },
        ];
        for insn in bad {
            let (slots, _) = encode(&insn);
            let r: Result<Insn, DecodeError> = decode(&slots, 0);
            assert!(r.is_err(), "{insn:?} decoded as {r:?}");
        }
    }
}
