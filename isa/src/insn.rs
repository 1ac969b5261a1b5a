//! Raw (wire-format) instructions and their structured, decoded form.

/// One 8-byte instruction slot as it sits in an object file (little-endian).
///
/// A 64-bit immediate load (`lddw`) takes two slots; the second has `code == 0`
/// and carries the upper 32 bits in `imm`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RawInsn {
    pub code: u8,
    /// Destination register (low nibble of byte 1).
    pub dst: u8,
    /// Source register (high nibble of byte 1).
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl RawInsn {
    pub const SIZE: usize = 8;

    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        RawInsn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// Reads one slot from its little-endian encoding.
    pub fn from_bytes(b: [u8; 8]) -> Self {
        RawInsn {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// The slot's little-endian encoding.
    pub fn to_bytes(self) -> [u8; 8] {
        let off = self.off.to_le_bytes();
        let imm = self.imm.to_le_bytes();
        [
            self.code,
            (self.dst & 0x0f) | (self.src << 4),
            off[0],
            off[1],
            imm[0],
            imm[1],
            imm[2],
            imm[3],
        ]
    }
}

/// Operand width of an ALU or JMP instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Width {
    W32,
    W64,
}

/// Second operand of ALU and conditional jump instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    Reg(u8),
    /// Sign-extended to the operation's width at run time.
    Imm(i32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AluOp {
    Add,
    Sub,
    Mul,
    /// Unsigned division (off = 0).
    Div,
    /// Signed division (off = 1).
    SDiv,
    Or,
    And,
    Lsh,
    Rsh,
    Neg,
    /// Unsigned modulo (off = 0).
    Mod,
    /// Signed modulo (off = 1).
    SMod,
    Xor,
    Mov,
    /// Sign-extending move from the low 8, 16 or 32 bits (off = 8, 16, 32).
    MovSx(u8),
    Arsh,
}

/// Byte order conversion (`BPF_END`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endian {
    /// ALU | END | TO_LE: convert to little-endian (a truncation on little-endian hosts).
    ToLe,
    /// ALU | END | TO_BE: convert to big-endian.
    ToBe,
    /// ALU64 | END: unconditional byte swap.
    Swap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JmpCond {
    Eq,
    Gt,
    Ge,
    Set,
    Ne,
    Sgt,
    Sge,
    Lt,
    Le,
    Slt,
    Sle,
}

/// Access size of a load or store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    pub const fn bytes(self) -> usize {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtomicOp {
    Add,
    Or,
    And,
    Xor,
    /// Always fetches.
    Xchg,
    /// Always fetches; compares with r0.
    CmpXchg,
}

/// Target of a call instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallTarget {
    /// src = 0: helper function by id.
    Helper(i32),
    /// src = 1 (BPF_PSEUDO_CALL): local function at `pc + 1 + imm`.
    Local(i32),
    /// src = 2 (BPF_PSEUDO_KFUNC_CALL): kernel function by BTF id.
    Kfunc(i32),
}

/// A decoded instruction. Produced by [`crate::decode()`], turned back into slots by
/// [`crate::encode()`]. `lddw` is one `Insn` covering two slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Insn {
    Alu {
        width: Width,
        op: AluOp,
        dst: u8,
        src: Operand,
    },
    /// Byte order conversion of the low `bits` (16, 32 or 64) of `dst`.
    End {
        kind: Endian,
        bits: u8,
        dst: u8,
    },
    /// `JMP|JA` (16-bit offset) or `JMP32|JA` (gotol, 32-bit offset in imm).
    /// `off` is relative to the next instruction, in slots.
    Ja {
        off: i32,
    },
    Jmp {
        width: Width,
        cond: JmpCond,
        dst: u8,
        src: Operand,
        off: i16,
    },
    Call(CallTarget),
    Exit,
    /// `LDX|MEM` (zero-extending) or `LDX|MEMSX` (`sign_extend`): dst = *(size *)(src + off).
    Load {
        size: Size,
        sign_extend: bool,
        dst: u8,
        src: u8,
        off: i16,
    },
    /// `STX|MEM`, `ST|MEM`: *(size *)(dst + off) = src.
    Store {
        size: Size,
        dst: u8,
        off: i16,
        src: Operand,
    },
    /// `STX|ATOMIC` with size W or DW.
    Atomic {
        size: Size,
        op: AtomicOp,
        fetch: bool,
        dst: u8,
        src: u8,
        off: i16,
    },
    /// `LD|IMM|DW`: two slots. `src` is the pseudo kind (0 for a plain constant,
    /// BPF_PSEUDO_MAP_FD, ..). `imm` is the low 32 bits from the first slot
    /// and `next_imm` the upper 32 bits from the second.
    LdImm64 {
        dst: u8,
        src: u8,
        imm: i32,
        next_imm: i32,
    },
    /// Legacy `LD|ABS` / `LD|IND` packet loads (socket filters only; XDP rejects them).
    LdPacket {
        size: Size,
        indirect: bool,
        src: u8,
        imm: i32,
    },
}

impl Insn {
    /// Number of 8-byte slots the instruction occupies.
    pub const fn slots(&self) -> usize {
        match self {
            Insn::LdImm64 { .. } => 2,
            _ => 1,
        }
    }
}

impl Insn {
    /// The relative offset, in slots from the next instruction, of a jump
    /// (`Ja`, conditional `Jmp`) or a local call (`Call(Local)`). The target
    /// slot is `pc + 1 + offset`.
    pub const fn jump_offset(&self) -> Option<i32> {
        match *self {
            Insn::Ja { off } => Some(off),
            Insn::Jmp { off, .. } => Some(off as i32),
            Insn::Call(CallTarget::Local(off)) => Some(off),
            _ => None,
        }
    }

    /// The absolute target slot of a jump or local call at `pc`
    /// (`pc + 1 + offset`), which may lie outside the program, or `None` for
    /// other instructions.
    pub fn jump_target(&self, pc: usize) -> Option<i64> {
        let off = self.jump_offset()?;
        let pc = i64::try_from(pc).ok()?;
        Some(pc + 1 + i64::from(off))
    }

    /// A jump, conditional or not (`Ja`, `Jmp`). Calls are not branches.
    pub const fn is_branch(&self) -> bool {
        matches!(self, Insn::Ja { .. } | Insn::Jmp { .. })
    }

    /// A conditional jump.
    pub const fn is_cond_branch(&self) -> bool {
        matches!(self, Insn::Jmp { .. })
    }

    /// A call of any kind.
    pub const fn is_call(&self) -> bool {
        matches!(self, Insn::Call(_))
    }

    /// The instruction ends a basic block: a jump of any kind or `exit`.
    /// (A call returns to the next instruction, so it does not.)
    pub const fn ends_block(&self) -> bool {
        matches!(self, Insn::Ja { .. } | Insn::Jmp { .. } | Insn::Exit)
    }

    /// Execution may continue at the next instruction: false only for `Ja`
    /// and `Exit`.
    pub const fn falls_through(&self) -> bool {
        !matches!(self, Insn::Ja { .. } | Insn::Exit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_flow_queries() {
        let ja = Insn::Ja { off: -3 };
        let jmp = Insn::Jmp {
            width: Width::W32,
            cond: JmpCond::Ne,
            dst: 1,
            src: Operand::Imm(0),
            off: 7,
        };
        let local = Insn::Call(CallTarget::Local(10));
        let helper = Insn::Call(CallTarget::Helper(1));
        let mov = Insn::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst: 0,
            src: Operand::Imm(0),
        };

        assert_eq!(ja.jump_offset(), Some(-3));
        assert_eq!(jmp.jump_offset(), Some(7));
        assert_eq!(local.jump_offset(), Some(10));
        assert_eq!(helper.jump_offset(), None);
        assert_eq!(Insn::Exit.jump_offset(), None);

        assert_eq!(ja.jump_target(5), Some(3));
        assert_eq!(jmp.jump_target(5), Some(13));
        assert_eq!(Insn::Ja { off: -10 }.jump_target(2), Some(-7));
        assert_eq!(mov.jump_target(5), None);

        assert!(ja.is_branch() && jmp.is_branch() && !local.is_branch() && !Insn::Exit.is_branch());
        assert!(jmp.is_cond_branch() && !ja.is_cond_branch());
        assert!(local.is_call() && helper.is_call() && !jmp.is_call());
        assert!(ja.ends_block() && jmp.ends_block() && Insn::Exit.ends_block());
        assert!(!local.ends_block() && !mov.ends_block());
        assert!(!ja.falls_through() && !Insn::Exit.falls_through());
        assert!(jmp.falls_through() && local.falls_through() && mov.falls_through());

        let lddw = Insn::LdImm64 {
            dst: 1,
            src: 0,
            imm: 0,
            next_imm: 0,
        };
        assert_eq!((lddw.slots(), mov.slots()), (2, 1));
    }

    #[test]
    fn raw_insn_bytes_round_trip() {
        let raw = RawInsn::new(0x61, 9, 6, -4, -2);
        assert_eq!(
            raw.to_bytes(),
            [0x61, 0x69, 0xfc, 0xff, 0xfe, 0xff, 0xff, 0xff]
        );
        assert_eq!(RawInsn::from_bytes(raw.to_bytes()), raw);
    }
}
