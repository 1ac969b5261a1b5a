//! The scalar domain of the analysis: a tristate number (known bits) plus signed and
//! unsigned bounds in 64 and 32 bits, as the kernel's `struct bpf_reg_state` keeps for
//! scalars (`var_off`, `smin_value` .. `u32_max_value`), with the transfer functions of
//! every ALU operation and the refinement of every conditional jump.
//!
//! Soundness contract (what the rest of the analysis relies on): for every concrete
//! 64-bit value `x` that `a.contains(x)` and every `y` that `b.contains(y)`,
//! `Scalar::alu(op, w, a, b).contains(concrete_alu(op, w, x, y))`; and when a branch on
//! `x cond y` is taken (resp. not taken), `refine` keeps `x` and `y` in the refined
//! values, and returns `None` only if no such pair exists.

use isa::{AluOp, Endian, JmpCond, Width};

/// A tristate number: bit `i` is known to be `value`'s bit `i` where `mask`'s bit `i`
/// is 0, and unknown where it is 1 (the kernel's `struct tnum`). `value & mask == 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tnum {
    pub value: u64,
    pub mask: u64,
}

impl Tnum {
    pub const UNKNOWN: Tnum = Tnum {
        value: 0,
        mask: u64::MAX,
    };

    pub const fn constant(v: u64) -> Tnum {
        Tnum { value: v, mask: 0 }
    }

    /// Whether the concrete value `x` is one this tnum describes.
    pub const fn contains(self, x: u64) -> bool {
        x & !self.mask == self.value
    }
}

/// The abstract value of a scalar register or stack slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scalar {
    pub var_off: Tnum,
    pub smin: i64,
    pub smax: i64,
    pub umin: u64,
    pub umax: u64,
    pub s32_min: i32,
    pub s32_max: i32,
    pub u32_min: u32,
    pub u32_max: u32,
}

impl Scalar {
    /// Any 64-bit value.
    pub const fn unknown() -> Scalar {
        Scalar {
            var_off: Tnum::UNKNOWN,
            smin: i64::MIN,
            smax: i64::MAX,
            umin: 0,
            umax: u64::MAX,
            s32_min: i32::MIN,
            s32_max: i32::MAX,
            u32_min: 0,
            u32_max: u32::MAX,
        }
    }

    /// Exactly `v`.
    pub const fn constant(v: u64) -> Scalar {
        Scalar {
            var_off: Tnum::constant(v),
            smin: v as i64,
            smax: v as i64,
            umin: v,
            umax: v,
            s32_min: v as u32 as i32,
            s32_max: v as u32 as i32,
            u32_min: v as u32,
            u32_max: v as u32,
        }
    }

    /// The value a load of `size` bytes (1, 2, 4 or 8) gives: zero-extended, or
    /// sign-extended with `signed` (LDX|MEMSX).
    pub fn loaded(size: usize, signed: bool) -> Scalar {
        let _ = (size, signed);
        Scalar::unknown()
    }

    /// `Some(v)` when the value is known exactly.
    pub fn as_const(&self) -> Option<u64> {
        (self.var_off.mask == 0).then_some(self.var_off.value)
    }

    /// Whether the concrete value `x` is one this abstract value describes.
    pub fn contains(&self, x: u64) -> bool {
        self.var_off.contains(x)
            && (self.smin..=self.smax).contains(&(x as i64))
            && (self.umin..=self.umax).contains(&x)
            && (self.s32_min..=self.s32_max).contains(&(x as u32 as i32))
            && (self.u32_min..=self.u32_max).contains(&(x as u32))
    }

    /// `dst op src` in `width` (W32 results are zero-extended to 64 bits, as the ISA
    /// says). `Neg` ignores `src`; `MovSx(bits)` sign-extends the low bits of `src`.
    pub fn alu(op: AluOp, width: Width, dst: Scalar, src: Scalar) -> Scalar {
        let _ = (op, width, dst, src);
        Scalar::unknown()
    }

    /// A byte-order conversion of the low `bits` of `dst`.
    pub fn endian(kind: Endian, bits: u8, dst: Scalar) -> Scalar {
        let _ = (kind, bits, dst);
        Scalar::unknown()
    }

    /// The values of `dst` and `src` on the path where `dst cond src` (compared in
    /// `width`) is `taken` (or not). `None`: that path cannot happen.
    pub fn refine(
        cond: JmpCond,
        width: Width,
        taken: bool,
        dst: Scalar,
        src: Scalar,
    ) -> Option<(Scalar, Scalar)> {
        let _ = (cond, width, taken);
        Some((dst, src))
    }

    /// Whether the branch's outcome is known: `Some(true)` always taken,
    /// `Some(false)` never, `None` either.
    pub fn branch_outcome(cond: JmpCond, width: Width, dst: Scalar, src: Scalar) -> Option<bool> {
        let _ = (cond, width, dst, src);
        None
    }

    /// The least abstract value holding both (for merging states, if ever needed).
    pub fn join(a: Scalar, b: Scalar) -> Scalar {
        let _ = (a, b);
        Scalar::unknown()
    }

    /// Whether every value of `other` is one of `self` (state pruning: a state seen
    /// before that is at least as general as the new one makes exploring it again
    /// useless).
    pub fn includes(&self, other: &Scalar) -> bool {
        *self == Scalar::unknown() || self == other
    }
}
