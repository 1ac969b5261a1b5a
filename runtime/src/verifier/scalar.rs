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
//!
//! Concrete semantics are the interpreter's (`interp.rs`): W32 results are
//! zero-extended; shift counts are masked (`& 63`, `& 31`); `x / 0 = 0`, `x % 0 = x`;
//! signed division truncates, `MIN / -1 = MIN`, `MIN % -1 = 0`; `MovSx` and endian
//! conversions with an unknown size act as a plain move / 64-bit conversion.
//!
//! Every value this module returns is normalized (`sync`, the kernel's
//! `reg_bounds_sync` made exact for each pair of constraints): the tnum's known bits
//! and the four ranges agree, each bound is reached by some value the other
//! components allow, and no constraint can tighten another any more.
//!
//! Internally each width is a `B`: a tnum and unsigned/signed bounds in `bits` bits
//! (32-bit values are kept in `u64`/`i64` within the 32-bit ranges). Many transfer
//! functions compute an integer range `[lo, hi]` (with no wrap) holding every exact
//! result; when `hi - lo < 2^bits` the wrapped results lie in the circular interval
//! `[lo mod 2^bits, hi mod 2^bits]`, which gives unsigned and signed bounds at once
//! (`B::meet_int`). This covers the kernel's overflow checks and its both-overflow
//! cases with one rule.

use isa::{AluOp, Endian, JmpCond, Width};

const LO32: u64 = 0xffff_ffff;
const SIGN64: u64 = 1 << 63;

const fn umask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

fn smin_of(bits: u32) -> i64 {
    if bits >= 64 {
        i64::MIN
    } else {
        -(1i64 << (bits - 1))
    }
}

fn smax_of(bits: u32) -> i64 {
    if bits >= 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    }
}

/// `x`'s low `bits` bits read as a signed number.
fn to_s(x: u64, bits: u32) -> i64 {
    if bits >= 64 {
        x as i64
    } else {
        ((x << (64 - bits)) as i64) >> (64 - bits)
    }
}

/// The `bits`-bit pattern of the signed `x`.
fn to_u(x: i64, bits: u32) -> u64 {
    x as u64 & umask(bits)
}

const fn sign_bit(bits: u32) -> u64 {
    1u64 << (bits - 1)
}

/// All ones up to `x`'s highest set bit: an upper bound of `y | z` and `y ^ z` when
/// `y, z <= x`.
fn fill_below(x: u64) -> u64 {
    if x == 0 {
        0
    } else {
        u64::MAX >> x.leading_zeros()
    }
}

/// Whether `l` is in the circular interval `a ..= b` (wrapping past the top when `a > b`).
fn in_circ(l: u64, a: u64, b: u64) -> bool {
    if a <= b {
        a <= l && l <= b
    } else {
        l >= a || l <= b
    }
}

/// The least value `>= min` whose low 32 bits are in the circular interval `a ..= b`.
fn lift_min(min: u64, a: u64, b: u64) -> Option<u64> {
    let (l, hi) = (min & LO32, min & !LO32);
    if in_circ(l, a, b) {
        Some(min)
    } else if l < a {
        Some(hi | a)
    } else {
        hi.checked_add(1 << 32).map(|h| h | a)
    }
}

/// The greatest value `<= max` whose low 32 bits are in the circular interval `a ..= b`.
fn lift_max(max: u64, a: u64, b: u64) -> Option<u64> {
    let (l, hi) = (max & LO32, max & !LO32);
    if in_circ(l, a, b) {
        Some(max)
    } else if l > b {
        Some(hi | b)
    } else {
        hi.checked_sub(1 << 32).map(|h| h | b)
    }
}

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

    /// The values sharing the common high bits of `min` and `max` (kernel `tnum_range`).
    pub const fn range(min: u64, max: u64) -> Tnum {
        let chi = min ^ max;
        let bits = 64 - chi.leading_zeros();
        if bits > 63 {
            return Tnum::UNKNOWN;
        }
        let delta = (1u64 << bits) - 1;
        Tnum {
            value: min & !delta,
            mask: delta,
        }
    }

    /// `Some(v)` when every bit is known.
    pub const fn as_const(self) -> Option<u64> {
        if self.mask == 0 {
            Some(self.value)
        } else {
            None
        }
    }

    /// The low `bits` bits, the others known zero (kernel `tnum_cast`).
    pub const fn truncate(self, bits: u32) -> Tnum {
        let m = umask(bits);
        Tnum {
            value: self.value & m,
            mask: self.mask & m,
        }
    }

    /// `self << k`, `k < 64`.
    pub const fn lshift(self, k: u32) -> Tnum {
        Tnum {
            value: self.value << k,
            mask: self.mask << k,
        }
    }

    /// `self >> k` (logical), `k < 64`.
    pub const fn rshift(self, k: u32) -> Tnum {
        Tnum {
            value: self.value >> k,
            mask: self.mask >> k,
        }
    }

    /// Arithmetic shift right by `k` in `bits` (32 or 64) bits; an unknown sign bit
    /// spreads as unknown (kernel `tnum_arshift`).
    pub const fn arshift(self, k: u32, bits: u32) -> Tnum {
        if bits == 32 {
            Tnum {
                value: ((self.value as u32 as i32) >> k) as u32 as u64,
                mask: ((self.mask as u32 as i32) >> k) as u32 as u64,
            }
        } else {
            Tnum {
                value: ((self.value as i64) >> k) as u64,
                mask: ((self.mask as i64) >> k) as u64,
            }
        }
    }

    /// Kernel `tnum_add`.
    pub const fn add(self, b: Tnum) -> Tnum {
        let sm = self.mask.wrapping_add(b.mask);
        let sv = self.value.wrapping_add(b.value);
        let sigma = sm.wrapping_add(sv);
        let chi = sigma ^ sv;
        let mu = chi | self.mask | b.mask;
        Tnum {
            value: sv & !mu,
            mask: mu,
        }
    }

    /// Kernel `tnum_sub`.
    pub const fn sub(self, b: Tnum) -> Tnum {
        let dv = self.value.wrapping_sub(b.value);
        let alpha = dv.wrapping_add(self.mask);
        let beta = dv.wrapping_sub(b.mask);
        let chi = alpha ^ beta;
        let mu = chi | self.mask | b.mask;
        Tnum {
            value: dv & !mu,
            mask: mu,
        }
    }

    pub const fn and(self, b: Tnum) -> Tnum {
        let alpha = self.value | self.mask;
        let beta = b.value | b.mask;
        let v = self.value & b.value;
        Tnum {
            value: v,
            mask: alpha & beta & !v,
        }
    }

    pub const fn or(self, b: Tnum) -> Tnum {
        let v = self.value | b.value;
        let mu = self.mask | b.mask;
        Tnum {
            value: v,
            mask: mu & !v,
        }
    }

    pub const fn xor(self, b: Tnum) -> Tnum {
        let v = self.value ^ b.value;
        let mu = self.mask | b.mask;
        Tnum {
            value: v & !mu,
            mask: mu,
        }
    }

    /// `self * b`: the intersection of the kernel's `tnum_mul` (long multiplication,
    /// a union of both cases for an unknown bit), the same with the operands swapped,
    /// and its earlier form (known part multiplied exactly): each is sound, and none
    /// is always the most precise.
    pub const fn mul(self, b: Tnum) -> Tnum {
        let r = self.mul_long(b);
        let r = match r.intersect(b.mul_long(self)) {
            Some(t) => t,
            None => r,
        };
        match r.intersect(self.mul_split(b)) {
            Some(t) => t,
            None => r,
        }
    }

    /// Kernel `tnum_mul` (6.18): add `b` for a known 1 bit of `self`, take the union
    /// of adding it and not for an unknown bit.
    const fn mul_long(self, b: Tnum) -> Tnum {
        let (mut a, mut b) = (self, b);
        let mut acc = Tnum::constant(0);
        while a.value != 0 || a.mask != 0 {
            if a.value & 1 != 0 {
                acc = acc.add(b);
            } else if a.mask & 1 != 0 {
                acc = acc.union(acc.add(b));
            }
            a = a.rshift(1);
            b = b.lshift(1);
        }
        acc
    }

    /// The kernel's earlier `tnum_mul`: the known parts' product plus the sum of the
    /// partial products' unknown parts.
    const fn mul_split(self, b: Tnum) -> Tnum {
        let (mut a, mut b) = (self, b);
        let acc_v = a.value.wrapping_mul(b.value);
        let mut acc_m = Tnum::constant(0);
        while a.value != 0 || a.mask != 0 {
            if a.value & 1 != 0 {
                acc_m = acc_m.add(Tnum {
                    value: 0,
                    mask: b.mask,
                });
            } else if a.mask & 1 != 0 {
                acc_m = acc_m.add(Tnum {
                    value: 0,
                    mask: b.value | b.mask,
                });
            }
            a = a.rshift(1);
            b = b.lshift(1);
        }
        Tnum::constant(acc_v).add(acc_m)
    }

    /// The values both describe; `None` when a bit is known differently in each.
    pub const fn intersect(self, b: Tnum) -> Option<Tnum> {
        if (self.value ^ b.value) & !self.mask & !b.mask != 0 {
            return None;
        }
        let v = self.value | b.value;
        let mu = self.mask & b.mask;
        Some(Tnum {
            value: v & !mu,
            mask: mu,
        })
    }

    /// The least tnum describing the values of both (kernel `tnum_union`).
    pub const fn union(self, b: Tnum) -> Tnum {
        let v = self.value & b.value;
        let mu = (self.value ^ b.value) | self.mask | b.mask;
        Tnum {
            value: v & !mu,
            mask: mu,
        }
    }

    /// Whether every value of `b` is one of `self` (kernel `tnum_in`).
    pub const fn includes(self, b: Tnum) -> bool {
        b.mask & !self.mask == 0 && b.value & !self.mask == self.value
    }

    /// The byte swap of the low `bits` (16, 32 or 64) bits, zero-extended: exact, as
    /// each bit moves to a fixed place.
    pub const fn swap_bytes(self, bits: u32) -> Tnum {
        match bits {
            16 => Tnum {
                value: (self.value as u16).swap_bytes() as u64,
                mask: (self.mask as u16).swap_bytes() as u64,
            },
            32 => Tnum {
                value: (self.value as u32).swap_bytes() as u64,
                mask: (self.mask as u32).swap_bytes() as u64,
            },
            _ => Tnum {
                value: self.value.swap_bytes(),
                mask: self.mask.swap_bytes(),
            },
        }
    }

    /// The least value `>= m` this tnum describes.
    pub const fn min_ge(self, m: u64) -> Option<u64> {
        let (v, mk) = (self.value, self.mask);
        if v | mk < m {
            return None;
        }
        // m's bits where unknown, the known bits elsewhere.
        let x0 = (m & mk) | v;
        if x0 == m {
            return Some(m);
        }
        // The highest bit where they differ is a known one.
        let p = 63 - (x0 ^ m).leading_zeros();
        let below_p = (1u64 << p) - 1;
        if x0 > m {
            // Bit p is 1 in x0, 0 in m: keep the prefix, the least bits below.
            return Some((x0 & !below_p) | (v & below_p));
        }
        // Bit p is 0 in x0 (known), 1 in m: raise the lowest unknown bit above p that
        // m has at 0, keep what is above it, the least bits below.
        let above_p = if p == 63 { 0 } else { u64::MAX << (p + 1) };
        let cand = mk & !m & above_p;
        if cand == 0 {
            return None;
        }
        let q = cand.trailing_zeros();
        let below_q = (1u64 << q) - 1;
        let above_q = if q == 63 { 0 } else { u64::MAX << (q + 1) };
        Some((x0 & above_q) | (1u64 << q) | (v & below_q))
    }

    /// The greatest value `<= m` this tnum describes.
    pub const fn max_le(self, m: u64) -> Option<u64> {
        let c = Tnum {
            value: !self.value & !self.mask,
            mask: self.mask,
        };
        match c.min_ge(!m) {
            Some(r) => Some(!r),
            None => None,
        }
    }

    /// The same tnum with bit `bits - 1` flipped where known: the values `x ^ sign`,
    /// whose unsigned order is the signed order of the `x`.
    const fn biased(self, bits: u32) -> Tnum {
        Tnum {
            value: self.value ^ (sign_bit(bits) & !self.mask),
            mask: self.mask,
        }
    }
}

/// One width of a scalar: a tnum and unsigned/signed bounds in `bits` (32 or 64, 8 or 16
/// for intermediate low parts) bits. Values outside the width do not occur.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct B {
    t: Tnum,
    umin: u64,
    umax: u64,
    smin: i64,
    smax: i64,
}

impl B {
    fn full(bits: u32) -> B {
        B {
            t: Tnum {
                value: 0,
                mask: umask(bits),
            },
            umin: 0,
            umax: umask(bits),
            smin: smin_of(bits),
            smax: smax_of(bits),
        }
    }

    fn constant(c: u64, bits: u32) -> B {
        let c = c & umask(bits);
        B {
            t: Tnum::constant(c),
            umin: c,
            umax: c,
            smin: to_s(c, bits),
            smax: to_s(c, bits),
        }
    }

    fn as_const(&self) -> Option<u64> {
        self.t.as_const()
    }

    fn empty(&self) -> bool {
        self.umin > self.umax || self.smin > self.smax
    }

    /// Intersect the bounds with the given ones (may leave it empty).
    fn meet(&mut self, umin: u64, umax: u64, smin: i64, smax: i64) {
        self.umin = self.umin.max(umin);
        self.umax = self.umax.min(umax);
        self.smin = self.smin.max(smin);
        self.smax = self.smax.min(smax);
    }

    /// Intersect with the circular interval `lo ..= hi` of `bits`-bit patterns: an
    /// unsigned range when it does not wrap past the top, a signed one when it does
    /// not wrap past the signed top.
    fn meet_circ(&mut self, lo: u64, hi: u64, bits: u32) {
        let m = umask(bits);
        let (lo, hi) = (lo & m, hi & m);
        let (ul, uh) = if lo <= hi { (lo, hi) } else { (0, m) };
        let (sl, sh) = (to_s(lo, bits), to_s(hi, bits));
        let (sl, sh) = if sl <= sh {
            (sl, sh)
        } else {
            (smin_of(bits), smax_of(bits))
        };
        self.meet(ul, uh, sl, sh);
    }

    /// Intersect with what the wrapped values of an exact integer range `lo ..= hi`
    /// can be: nothing learnt when it spans `2^bits` values or more.
    fn meet_int(&mut self, lo: i128, hi: i128, bits: u32) {
        if hi - lo <= umask(bits) as i128 {
            let m = umask(bits) as u128;
            self.meet_circ((lo as u128 & m) as u64, (hi as u128 & m) as u64, bits);
        }
    }

    /// `meet_int` for an unsigned integer range that may not fit in `i128`.
    fn meet_uint(&mut self, lo: u128, hi: u128, bits: u32) {
        if hi - lo <= umask(bits) as u128 {
            let m = umask(bits) as u128;
            self.meet_circ((lo & m) as u64, (hi & m) as u64, bits);
        }
    }

    /// The least `B` holding both.
    fn join(a: B, b: B) -> B {
        B {
            t: a.t.union(b.t),
            umin: a.umin.min(b.umin),
            umax: a.umax.max(b.umax),
            smin: a.smin.min(b.smin),
            smax: a.smax.max(b.smax),
        }
    }

    /// The values both ranges allow, as up to two unsigned intervals in increasing
    /// order: the signed range as unsigned patterns is one interval, or two when it
    /// holds both -1 and 0.
    fn pieces(&self, bits: u32) -> [Option<(u64, u64)>; 2] {
        let (smin_u, smax_u) = (to_u(self.smin, bits), to_u(self.smax, bits));
        let spieces = if self.smin >= 0 || self.smax < 0 {
            [Some((smin_u, smax_u)), None]
        } else {
            [Some((0, smax_u)), Some((smin_u, umask(bits)))]
        };
        spieces.map(|p| {
            let (a, b) = p?;
            let (lo, hi) = (a.max(self.umin), b.min(self.umax));
            (lo <= hi).then_some((lo, hi))
        })
    }

    /// Make the tnum and the two ranges agree (each is intersected with what the
    /// others allow, bounds moved to the nearest value the tnum allows); `None` when
    /// no value is left.
    fn tighten(&mut self, bits: u32) -> Option<()> {
        if self.empty() {
            return None;
        }
        let bias = sign_bit(bits);
        // Tnum -> ranges.
        self.umin = self.t.min_ge(self.umin)?;
        self.umax = self.t.max_le(self.umax)?;
        let tb = self.t.biased(bits);
        let lo = tb.min_ge(to_u(self.smin, bits) ^ bias)?;
        let hi = tb.max_le(to_u(self.smax, bits) ^ bias)?;
        self.smin = to_s(lo ^ bias, bits);
        self.smax = to_s(hi ^ bias, bits);
        if self.empty() {
            return None;
        }
        // Unsigned range against signed range: the signed range as unsigned patterns
        // is one interval, or two when it holds both -1 and 0.
        let mut pieces = [(0u64, 0u64); 2];
        let mut n = 0;
        for p in self.pieces(bits).into_iter().flatten() {
            pieces[n] = p;
            n += 1;
        }
        if n == 0 {
            return None;
        }
        self.umin = pieces[0].0;
        self.umax = pieces[n - 1].1;
        self.smin = pieces[..n].iter().map(|p| to_s(p.0, bits)).min()?;
        self.smax = pieces[..n].iter().map(|p| to_s(p.1, bits)).max()?;
        // Ranges -> tnum.
        self.t = self.t.intersect(Tnum::range(self.umin, self.umax))?;
        let sr = Tnum::range(to_u(self.smin, bits) ^ bias, to_u(self.smax, bits) ^ bias);
        self.t = self.t.intersect(sr.biased(bits))?;
        Some(())
    }
}

/// `a op b` in `bits` bits for the operations whose low bits depend only on the
/// operands' low bits (add, sub, mul, and, or, xor).
fn binop(op: AluOp, a: B, b: B, bits: u32) -> B {
    let mut r = B::full(bits);
    let (au, bu) = (
        (a.umin as i128, a.umax as i128),
        (b.umin as i128, b.umax as i128),
    );
    let (as_, bs) = (
        (a.smin as i128, a.smax as i128),
        (b.smin as i128, b.smax as i128),
    );
    match op {
        // Sums and differences of the bounds, wrapped (kernel scalar_min_max_add/sub,
        // including the case where both ends overflow alike).
        AluOp::Add => {
            r.t = a.t.add(b.t).truncate(bits);
            r.meet_int(au.0 + bu.0, au.1 + bu.1, bits);
            r.meet_int(as_.0 + bs.0, as_.1 + bs.1, bits);
        }
        AluOp::Sub => {
            r.t = a.t.sub(b.t).truncate(bits);
            r.meet_int(au.0 - bu.1, au.1 - bu.0, bits);
            r.meet_int(as_.0 - bs.1, as_.1 - bs.0, bits);
        }
        // Products: the unsigned one is monotonic, the signed one's extremes are at
        // the corners (kernel scalar_min_max_mul, wrapped as for add).
        AluOp::Mul => {
            r.t = a.t.mul(b.t).truncate(bits);
            r.meet_uint(
                a.umin as u128 * b.umin as u128,
                a.umax as u128 * b.umax as u128,
                bits,
            );
            let c = [as_.0 * bs.0, as_.0 * bs.1, as_.1 * bs.0, as_.1 * bs.1];
            let (lo, hi) = (c.iter().min().copied(), c.iter().max().copied());
            if let (Some(lo), Some(hi)) = (lo, hi) {
                r.meet_int(lo, hi, bits);
            }
        }
        // Unsigned: x & y <= x, y; x | y >= x, y; x | y and x ^ y below the next
        // power of two of the larger. Signed: by the sign pieces of each operand
        // (`bitwise_signed`), joined.
        AluOp::And | AluOp::Or | AluOp::Xor => {
            let fill = fill_below(a.umax.max(b.umax));
            let (t, umin, umax) = match op {
                AluOp::And => (a.t.and(b.t), 0, a.umax.min(b.umax)),
                AluOp::Or => (a.t.or(b.t), a.umin.max(b.umin), fill),
                _ => (a.t.xor(b.t), 0, fill),
            };
            r.t = t;
            let pieces = |x: &B| {
                [
                    (x.smin < 0).then_some((x.smin, x.smax.min(-1))),
                    (x.smax >= 0).then_some((x.smin.max(0), x.smax)),
                ]
            };
            let (mut smin, mut smax) = (i64::MAX, i64::MIN);
            for pa in pieces(&a).into_iter().flatten() {
                for pb in pieces(&b).into_iter().flatten() {
                    let (lo, hi) = bitwise_signed(op, pa, pb);
                    (smin, smax) = (smin.min(lo), smax.max(hi));
                }
            }
            r.meet(umin, umax, smin, smax);
        }
        _ => {}
    }
    r
}

/// Signed bounds of `x op y` (and, or, xor) for `x` in `a` and `y` in `b`, each
/// range of one sign: x & y is non-negative and at most the non-negative one when one
/// is, negative and at most both when both are; x | y is negative and at least the
/// negative one when one is; x ^ y has the xor of the signs. For negative x,
/// !x = -1 - x is non-negative: x ^ y = !x ^ !y, x & y = !(!x | !y).
fn bitwise_signed(op: AluOp, a: (i64, i64), b: (i64, i64)) -> (i64, i64) {
    let ((a0, a1), (b0, b1)) = (a, b);
    let fill = |x: i64| fill_below(x as u64) as i64;
    match (op, a0 >= 0, b0 >= 0) {
        (AluOp::And, true, true) => (0, a1.min(b1)),
        (AluOp::And, true, false) => (0, a1),
        (AluOp::And, false, true) => (0, b1),
        (AluOp::And, false, false) => (-1 - fill((-1 - a0).max(-1 - b0)), a1.min(b1)),
        (AluOp::Or, true, true) => (a0.max(b0), fill(a1.max(b1))),
        (AluOp::Or, true, false) => (b0, -1),
        (AluOp::Or, false, true) => (a0, -1),
        (AluOp::Or, false, false) => (a0.max(b0), -1),
        (_, true, true) => (0, fill(a1.max(b1))),
        (_, false, false) => (0, fill((-1 - a0).max(-1 - b0))),
        (_, true, false) => (-1 - fill(a1.max(-1 - b0)), -1),
        (_, false, true) => (-1 - fill(b1.max(-1 - a0)), -1),
    }
}

/// Division and modulo in `bits` bits, by the pieces of the divisor: zero (the ISA's
/// `x / 0 = 0`, `x % 0 = x`), positive, negative. The kernel gives up on these.
fn divop(op: AluOp, a: B, b: B, bits: u32) -> B {
    let mut acc: Option<B> = None;
    let mut add = |p: B| {
        acc = Some(match acc {
            Some(q) => B::join(q, p),
            None => p,
        })
    };
    let ranged = |lo: i128, hi: i128| {
        let mut p = B::full(bits);
        p.meet_int(lo, hi, bits);
        p
    };
    let itself = || {
        let mut p = B::full(bits);
        p.meet(a.umin, a.umax, a.smin, a.smax);
        p
    };
    match op {
        AluOp::Div | AluOp::Mod => {
            if b.umin == 0 {
                add(if op == AluOp::Div {
                    B::constant(0, bits)
                } else {
                    itself()
                });
            }
            if b.umax >= 1 {
                let (d1, d2) = (b.umin.max(1), b.umax);
                add(if op == AluOp::Div {
                    // Monotonic in both.
                    ranged((a.umin / d2) as i128, (a.umax / d1) as i128)
                } else if a.umax < d1 {
                    itself()
                } else {
                    ranged(0, a.umax.min(d2 - 1) as i128)
                });
            }
        }
        _ => {
            let (x1, x2) = (a.smin as i128, a.smax as i128);
            if b.smin <= 0 && b.smax >= 0 {
                add(if op == AluOp::SDiv {
                    B::constant(0, bits)
                } else {
                    itself()
                });
            }
            let mut pieces = [None, None];
            if b.smax >= 1 {
                pieces[0] = Some((b.smin.max(1) as i128, b.smax as i128));
            }
            if b.smin <= -1 {
                pieces[1] = Some((b.smin as i128, b.smax.min(-1) as i128));
            }
            for (d1, d2) in pieces.into_iter().flatten() {
                if op == AluOp::SDiv {
                    // Truncating division is monotonic in each operand on a divisor
                    // range of one sign: the extremes are at the corners. The exact
                    // quotient of MIN / -1 wraps to MIN, which meet_int accounts for.
                    let c = [x1 / d1, x1 / d2, x2 / d1, x2 / d2];
                    let lo = c.iter().copied().min().unwrap_or(i128::MIN);
                    let hi = c.iter().copied().max().unwrap_or(i128::MAX);
                    add(ranged(lo, hi));
                } else {
                    // The remainder has the dividend's sign and is smaller than the
                    // divisor in magnitude; it is the dividend when that is smaller.
                    let (mn, mx) = (d1.abs().min(d2.abs()), d1.abs().max(d2.abs()));
                    add(if x1 > -mn && x2 < mn {
                        itself()
                    } else {
                        let lo = if x1 < 0 { x1.max(1 - mx) } else { 0 };
                        let hi = if x2 > 0 { x2.min(mx - 1) } else { 0 };
                        ranged(lo, hi)
                    });
                }
            }
        }
    }
    acc.unwrap_or_else(|| B::full(bits))
}

/// `a` shifted by the constant `k < bits`.
fn shift_b(op: AluOp, a: B, k: u32, bits: u32) -> B {
    let mut r = B::full(bits);
    match op {
        // x << k is x * 2^k wrapped.
        AluOp::Lsh => {
            r.t = a.t.lshift(k).truncate(bits);
            r.meet_uint((a.umin as u128) << k, (a.umax as u128) << k, bits);
            r.meet_int((a.smin as i128) << k, (a.smax as i128) << k, bits);
        }
        AluOp::Rsh => {
            r.t = a.t.rshift(k);
            r.meet(a.umin >> k, a.umax >> k, smin_of(bits), smax_of(bits));
        }
        _ => {
            r.t = a.t.arshift(k, bits).truncate(bits);
            r.meet(0, umask(bits), a.smin >> k, a.smax >> k);
        }
    }
    r
}

/// The relation a branch's path establishes between its operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rel {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Sgt,
    Sge,
    Slt,
    Sle,
    Set,
    NotSet,
}

impl Rel {
    fn of(cond: JmpCond, taken: bool) -> Rel {
        use JmpCond as J;
        match (cond, taken) {
            (J::Eq, true) | (J::Ne, false) => Rel::Eq,
            (J::Ne, true) | (J::Eq, false) => Rel::Ne,
            (J::Gt, true) | (J::Le, false) => Rel::Gt,
            (J::Ge, true) | (J::Lt, false) => Rel::Ge,
            (J::Lt, true) | (J::Ge, false) => Rel::Lt,
            (J::Le, true) | (J::Gt, false) => Rel::Le,
            (J::Sgt, true) | (J::Sle, false) => Rel::Sgt,
            (J::Sge, true) | (J::Slt, false) => Rel::Sge,
            (J::Slt, true) | (J::Sge, false) => Rel::Slt,
            (J::Sle, true) | (J::Sgt, false) => Rel::Sle,
            (J::Set, true) => Rel::Set,
            (J::Set, false) => Rel::NotSet,
        }
    }
}

/// Whether `a rel b` holds for every pair (`Some(true)`), none (`Some(false)`), or
/// it depends (kernel is_scalar_branch_taken).
fn outcome_b(rel: Rel, a: &B, b: &B) -> Option<bool> {
    let not = |o: Option<bool>| o.map(|x| !x);
    match rel {
        Rel::Eq => {
            if let (Some(x), Some(y)) = (a.as_const(), b.as_const()) {
                return Some(x == y);
            }
            let disjoint = a.umin > b.umax
                || a.umax < b.umin
                || a.smin > b.smax
                || a.smax < b.smin
                || a.t.intersect(b.t).is_none();
            disjoint.then_some(false)
        }
        Rel::Ne => not(outcome_b(Rel::Eq, a, b)),
        Rel::Gt => {
            if a.umin > b.umax {
                Some(true)
            } else if a.umax <= b.umin {
                Some(false)
            } else {
                None
            }
        }
        Rel::Ge => {
            if a.umin >= b.umax {
                Some(true)
            } else if a.umax < b.umin {
                Some(false)
            } else {
                None
            }
        }
        Rel::Lt => outcome_b(Rel::Gt, b, a),
        Rel::Le => outcome_b(Rel::Ge, b, a),
        Rel::Sgt => {
            if a.smin > b.smax {
                Some(true)
            } else if a.smax <= b.smin {
                Some(false)
            } else {
                None
            }
        }
        Rel::Sge => {
            if a.smin >= b.smax {
                Some(true)
            } else if a.smax < b.smin {
                Some(false)
            } else {
                None
            }
        }
        Rel::Slt => outcome_b(Rel::Sgt, b, a),
        Rel::Sle => outcome_b(Rel::Sge, b, a),
        Rel::Set => {
            if a.t.value & b.t.value != 0 {
                Some(true)
            } else if (a.t.value | a.t.mask) & (b.t.value | b.t.mask) == 0 {
                Some(false)
            } else {
                None
            }
        }
        Rel::NotSet => not(outcome_b(Rel::Set, a, b)),
    }
}

/// `x` without the value `c` where `c` is one of its bounds.
fn exclude(mut x: B, c: u64, bits: u32) -> Option<B> {
    if x.umin == c {
        x.umin = x.umin.checked_add(1).filter(|&v| v <= umask(bits))?;
    }
    if x.umax == c {
        x.umax = x.umax.checked_sub(1)?;
    }
    let sc = to_s(c, bits);
    if x.smin == sc {
        x.smin = x.smin.checked_add(1).filter(|&v| v <= smax_of(bits))?;
    }
    if x.smax == sc {
        x.smax = x.smax.checked_sub(1).filter(|&v| v >= smin_of(bits))?;
    }
    (!x.empty()).then_some(x)
}

/// `a` and `b` restricted to the pairs where `a rel b` (kernel regs_refine_cond_op);
/// `None` when no pair is left.
fn refine_b(rel: Rel, mut a: B, mut b: B, bits: u32) -> Option<(B, B)> {
    let m = umask(bits);
    match rel {
        Rel::Eq => {
            let r = B {
                t: a.t.intersect(b.t)?,
                umin: a.umin.max(b.umin),
                umax: a.umax.min(b.umax),
                smin: a.smin.max(b.smin),
                smax: a.smax.min(b.smax),
            };
            (a, b) = (r, r);
        }
        Rel::Ne => {
            let (a0, b0) = (a, b);
            if let Some(c) = b0.as_const() {
                a = exclude(a, c, bits)?;
            }
            if let Some(c) = a0.as_const() {
                b = exclude(b, c, bits)?;
            }
        }
        Rel::Gt => {
            a.umin = a.umin.max(b.umin.checked_add(1).filter(|&v| v <= m)?);
            b.umax = b.umax.min(a.umax.checked_sub(1)?);
        }
        Rel::Ge => {
            a.umin = a.umin.max(b.umin);
            b.umax = b.umax.min(a.umax);
        }
        Rel::Lt => return refine_b(Rel::Gt, b, a, bits).map(|(b, a)| (a, b)),
        Rel::Le => return refine_b(Rel::Ge, b, a, bits).map(|(b, a)| (a, b)),
        Rel::Sgt => {
            a.smin = a
                .smin
                .max(b.smin.checked_add(1).filter(|&v| v <= smax_of(bits))?);
            b.smax = b
                .smax
                .min(a.smax.checked_sub(1).filter(|&v| v >= smin_of(bits))?);
        }
        Rel::Sge => {
            a.smin = a.smin.max(b.smin);
            b.smax = b.smax.min(a.smax);
        }
        Rel::Slt => return refine_b(Rel::Sgt, b, a, bits).map(|(b, a)| (a, b)),
        Rel::Sle => return refine_b(Rel::Sge, b, a, bits).map(|(b, a)| (a, b)),
        Rel::Set => {
            // Both are non-zero; a has one of the bits b may have, so it is at least
            // the lowest of them; when b may have one bit only, both have it.
            let (pa, pb) = (a.t.value | a.t.mask, b.t.value | b.t.mask);
            a.umin = a.umin.max(pb & pb.wrapping_neg()).max(1);
            b.umin = b.umin.max(pa & pa.wrapping_neg()).max(1);
            for p in [pa, pb] {
                if p.is_power_of_two() {
                    let bit = Tnum {
                        value: p,
                        mask: m & !p,
                    };
                    a.t = a.t.intersect(bit)?;
                    b.t = b.t.intersect(bit)?;
                }
            }
        }
        Rel::NotSet => {
            // Bits known set in one are clear in the other.
            let (ka, kb) = (a.t.value, b.t.value);
            a.t = a.t.intersect(Tnum {
                value: 0,
                mask: m & !kb,
            })?;
            b.t = b.t.intersect(Tnum {
                value: 0,
                mask: m & !ka,
            })?;
        }
    }
    (!a.empty() && !b.empty()).then_some((a, b))
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
    /// sign-extended with `signed` (LDX|MEMSX). Any other size: unknown.
    pub fn loaded(size: usize, signed: bool) -> Scalar {
        let bits = match size {
            1 | 2 | 4 => size as u32 * 8,
            _ => return Scalar::unknown(),
        };
        let mut hi = B::full(64);
        if signed {
            hi.meet(0, u64::MAX, smin_of(bits), smax_of(bits));
        } else {
            hi.meet(0, umask(bits), i64::MIN, i64::MAX);
        }
        Scalar::from_parts(hi, B::full(32))
            .and_then(Scalar::sync)
            .unwrap_or_else(Scalar::unknown)
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

    /// The 64-bit view.
    fn hi(&self) -> B {
        B {
            t: self.var_off,
            umin: self.umin,
            umax: self.umax,
            smin: self.smin,
            smax: self.smax,
        }
    }

    /// The view of the low 32 bits.
    fn lo(&self) -> B {
        B {
            t: self.var_off.truncate(32),
            umin: self.u32_min as u64,
            umax: self.u32_max as u64,
            smin: self.s32_min as i64,
            smax: self.s32_max as i64,
        }
    }

    /// A value from its 64-bit view and the view of its low 32 bits (the tnums are
    /// intersected); `None` when they contradict. Not normalized.
    fn from_parts(hi: B, lo: B) -> Option<Scalar> {
        let var_off = hi.t.intersect(Tnum {
            value: lo.t.value & LO32,
            mask: lo.t.mask | !LO32,
        })?;
        let s = Scalar {
            var_off,
            smin: hi.smin,
            smax: hi.smax,
            umin: hi.umin,
            umax: hi.umax,
            s32_min: lo.smin.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            s32_max: lo.smax.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            u32_min: lo.umin.min(LO32) as u32,
            u32_max: lo.umax.min(LO32) as u32,
        };
        (s.smin <= s.smax && s.umin <= s.umax && s.s32_min <= s.s32_max && s.u32_min <= s.u32_max)
            .then_some(s)
    }

    /// The 32-bit result `lo` zero-extended to 64 bits.
    fn zext(lo: B) -> Option<Scalar> {
        let hi = B {
            t: lo.t.truncate(32),
            umin: lo.umin,
            umax: lo.umax,
            smin: lo.umin as i64,
            smax: lo.umax as i64,
        };
        Scalar::from_parts(hi, lo)
    }

    /// Normalize (the kernel's reg_bounds_sync, exact for each pair of constraints):
    /// each width's tnum and ranges agree (`B::tighten`); a 64-bit range spanning
    /// fewer than 2^32 values bounds the low 32 bits (the kernel's
    /// __reg32_deduce_bounds); the 32-bit ranges move the 64-bit bounds to the
    /// nearest values with allowed low bits (__reg_deduce_mixed_bounds). Repeated
    /// until nothing changes (at most 64 rounds). `None`: no value is left. Every
    /// value this module returns is already normalized; this is for values built
    /// field by field.
    pub fn sync(self) -> Option<Scalar> {
        let (mut hi, mut lo) = (self.hi(), self.lo());
        let bias = |x: i64| x as u64 ^ SIGN64;
        let unbias = |x: u64| (x ^ SIGN64) as i64;
        for _ in 0..64 {
            let (ph, pl) = (hi, lo);
            let t = hi.t.intersect(Tnum {
                value: lo.t.value & LO32,
                mask: lo.t.mask | !LO32,
            })?;
            hi.t = t;
            lo.t = t.truncate(32);
            hi.tighten(64)?;
            lo.tighten(32)?;
            if hi.umax - hi.umin <= LO32 {
                lo.meet_circ(hi.umin, hi.umax, 32);
            }
            if (hi.smax as i128 - hi.smin as i128) <= LO32 as i128 {
                lo.meet_circ(hi.smin as u64, hi.smax as u64, 32);
            }
            if lo.empty() {
                return None;
            }
            for (a, b) in [(lo.umin, lo.umax), (to_u(lo.smin, 32), to_u(lo.smax, 32))] {
                hi.umin = lift_min(hi.umin, a, b)?;
                hi.umax = lift_max(hi.umax, a, b)?;
                hi.smin = unbias(lift_min(bias(hi.smin), a, b)?);
                hi.smax = unbias(lift_max(bias(hi.smax), a, b)?);
            }
            if hi.empty() {
                return None;
            }
            if hi == ph && lo == pl {
                break;
            }
        }
        Scalar::from_parts(hi, lo)
    }

    /// `dst op src` in `width` (W32 results are zero-extended to 64 bits, as the ISA
    /// says). `Neg` ignores `src`; `MovSx(bits)` sign-extends the low bits of `src`.
    pub fn alu(op: AluOp, width: Width, dst: Scalar, src: Scalar) -> Scalar {
        let r = match width {
            Width::W64 => Scalar::alu64(op, dst, src),
            Width::W32 => Scalar::alu32(op, dst, src),
        };
        // `None` only when an operand describes no value at all.
        r.and_then(Scalar::sync).unwrap_or_else(Scalar::unknown)
    }

    fn alu64(op: AluOp, d: Scalar, s: Scalar) -> Option<Scalar> {
        match op {
            AluOp::Mov => Some(s),
            // The low 32 bits are the 32-bit operation's on the operands' low bits.
            AluOp::Add | AluOp::Sub | AluOp::Mul | AluOp::And | AluOp::Or | AluOp::Xor => {
                Scalar::from_parts(binop(op, d.hi(), s.hi(), 64), binop(op, d.lo(), s.lo(), 32))
            }
            AluOp::Neg => Scalar::from_parts(
                binop(AluOp::Sub, B::constant(0, 64), d.hi(), 64),
                binop(AluOp::Sub, B::constant(0, 32), d.lo(), 32),
            ),
            AluOp::Div | AluOp::SDiv | AluOp::Mod | AluOp::SMod => {
                Scalar::from_parts(divop(op, d.hi(), s.hi(), 64), B::full(32))
            }
            AluOp::Lsh | AluOp::Rsh | AluOp::Arsh => Scalar::shift(op, Width::W64, d, s),
            // movsx: the low 8/16/32 bits as a signed number (kernel
            // coerce_reg_to_size_sx); the low 32 bits sign-extended from 8/16 too.
            AluOp::MovSx(b @ (8 | 16)) => {
                Scalar::from_parts(s.sext_low(b as u32, 64)?, s.sext_low(b as u32, 32)?)
            }
            AluOp::MovSx(32) => Scalar::from_parts(s.sext_low(32, 64)?, s.lo()),
            AluOp::MovSx(_) => Some(s),
        }
    }

    fn alu32(op: AluOp, d: Scalar, s: Scalar) -> Option<Scalar> {
        match op {
            AluOp::MovSx(b @ (8 | 16)) => Scalar::zext(s.sext_low(b as u32, 32)?),
            AluOp::Mov | AluOp::MovSx(_) => Scalar::zext(s.lo()),
            AluOp::Add | AluOp::Sub | AluOp::Mul | AluOp::And | AluOp::Or | AluOp::Xor => {
                Scalar::zext(binop(op, d.lo(), s.lo(), 32))
            }
            AluOp::Neg => Scalar::zext(binop(AluOp::Sub, B::constant(0, 32), d.lo(), 32)),
            AluOp::Div | AluOp::SDiv | AluOp::Mod | AluOp::SMod => {
                Scalar::zext(divop(op, d.lo(), s.lo(), 32))
            }
            AluOp::Lsh | AluOp::Rsh | AluOp::Arsh => Scalar::shift(op, Width::W32, d, s),
        }
    }

    /// The low `b` bits (8, 16 or 32) as a `b`-bit value: bounded by the tnum and by
    /// every range of the value spanning fewer than `2^b` values.
    fn low_bits(&self, b: u32) -> Option<B> {
        let mut r = B::full(b);
        r.t = self.var_off.truncate(b);
        let (hi, lo) = (self.hi(), self.lo());
        r.meet_int(hi.umin as i128, hi.umax as i128, b);
        r.meet_int(hi.smin as i128, hi.smax as i128, b);
        r.meet_int(lo.umin as i128, lo.umax as i128, b);
        r.meet_int(lo.smin as i128, lo.smax as i128, b);
        // Tighter: the low bits of each interval of values the ranges allow, joined.
        for (v, bits) in [(hi, 64), (lo, 32)] {
            let mut img: Option<B> = None;
            for (p0, p1) in v.pieces(bits).into_iter().flatten() {
                if p1 - p0 > umask(b) {
                    img = None;
                    break;
                }
                let mut q = B::full(b);
                q.meet_circ(p0, p1, b);
                img = Some(img.map_or(q, |i| B::join(i, q)));
            }
            if let Some(i) = img {
                r.meet(i.umin, i.umax, i.smin, i.smax);
            }
        }
        r.tighten(b)?;
        Some(r)
    }

    /// The low `b` bits sign-extended, as a value in `bits` bits.
    fn sext_low(&self, b: u32, bits: u32) -> Option<B> {
        let low = self.low_bits(b)?;
        let mut r = B::full(bits);
        r.t = low.t.lshift(64 - b).arshift(64 - b, 64).truncate(bits);
        // The non-negative low values stay, the negative ones go to the top.
        let half = sign_bit(b);
        let ext = |x: u64| to_u(to_s(x, b), bits);
        let nonneg = (low.umin < half).then(|| (low.umin, low.umax.min(half - 1)));
        let neg = (low.umax >= half).then(|| (ext(low.umin.max(half)), ext(low.umax)));
        let umin = nonneg.or(neg).map_or(0, |p| p.0);
        let umax = neg.or(nonneg).map_or(umask(bits), |p| p.1);
        r.meet(umin, umax, low.smin, low.smax);
        Some(r)
    }

    /// The low `b` bits (16 or 32) zero-extended to 64 bits; with 32, the low
    /// half keeps its signed bounds too.
    fn zext_low(&self, b: u32) -> Option<Scalar> {
        let low = self.low_bits(b)?;
        let mut hi = B::full(64);
        hi.t = low.t;
        hi.meet(low.umin, low.umax, 0, i64::MAX);
        let lo = if b == 32 {
            low
        } else {
            let mut lo = B::full(32);
            lo.t = low.t;
            lo.meet(low.umin, low.umax, 0, i32::MAX as i64);
            lo
        };
        Scalar::from_parts(hi, lo)
    }

    /// Shifts: the count is the source's low 6 (5) bits; each count the source
    /// allows is applied (kernel scalar_min_max_{lsh,rsh,arsh} for a constant count)
    /// and the results joined. The kernel gives up when the count may reach the
    /// width; this follows the interpreter's masking instead.
    fn shift(op: AluOp, width: Width, d: Scalar, s: Scalar) -> Option<Scalar> {
        let bits: u32 = if width == Width::W64 { 64 } else { 32 };
        let cnt = if bits == 64 { s.hi() } else { s.lo() };
        let mut acc: Option<Scalar> = None;
        for k in 0..bits {
            let k64 = k as u64;
            if (k64 ^ cnt.t.value) & !cnt.t.mask & (bits as u64 - 1) != 0 {
                continue;
            }
            if cnt.umax < bits as u64 && !(cnt.umin..=cnt.umax).contains(&k64) {
                continue;
            }
            let Some(r) = Scalar::shift_const(op, bits, d, k) else {
                continue;
            };
            acc = Some(match acc {
                Some(a) => Scalar::join_raw(a, r)?,
                None => r,
            });
        }
        acc
    }

    fn shift_const(op: AluOp, bits: u32, d: Scalar, k: u32) -> Option<Scalar> {
        let (hi, lo) = (d.hi(), d.lo());
        if bits == 32 {
            return Scalar::zext(shift_b(op, lo, k, 32));
        }
        let mut rh = shift_b(op, hi, k, 64);
        let rl = match op {
            AluOp::Lsh if k < 32 => shift_b(op, lo, k, 32),
            AluOp::Lsh => B::constant(0, 32),
            _ => B::full(32),
        };
        if op == AluOp::Lsh && k >= 32 {
            // Only the low 64 - k bits matter: x << k = low32(x) * 2^k wrapped, so
            // the 32-bit ranges bound it (the kernel's `w << 32` case).
            rh.meet_uint((lo.umin as u128) << k, (lo.umax as u128) << k, 64);
            rh.meet_int((lo.smin as i128) << k, (lo.smax as i128) << k, 64);
        }
        Scalar::from_parts(rh, rl)
    }

    /// The least value holding both, not normalized.
    fn join_raw(a: Scalar, b: Scalar) -> Option<Scalar> {
        Scalar::from_parts(B::join(a.hi(), b.hi()), B::join(a.lo(), b.lo()))
    }

    /// A byte-order conversion of the low `bits` of `dst`: `ToLe` truncates (the
    /// host is little-endian), `ToBe` and `Swap` swap the bytes, which moves the
    /// tnum's bits exactly. A size other than 16 or 32 is 64, as in the interpreter.
    pub fn endian(kind: Endian, bits: u8, dst: Scalar) -> Scalar {
        let b: u32 = match bits {
            16 => 16,
            32 => 32,
            _ => 64,
        };
        let r = match kind {
            Endian::ToLe if b == 64 => Some(dst),
            Endian::ToLe => dst.zext_low(b),
            Endian::ToBe | Endian::Swap => {
                let mut hi = B::full(64);
                hi.t = dst.var_off.truncate(b).swap_bytes(b);
                Scalar::from_parts(hi, B::full(32))
            }
        };
        r.and_then(Scalar::sync).unwrap_or_else(Scalar::unknown)
    }

    /// The views of `width`.
    fn view(&self, width: Width) -> (B, u32) {
        match width {
            Width::W64 => (self.hi(), 64),
            Width::W32 => (self.lo(), 32),
        }
    }

    /// `self` with the view of `width` replaced, normalized.
    fn with_view(&self, width: Width, v: B) -> Option<Scalar> {
        match width {
            Width::W64 => Scalar::from_parts(v, self.lo()),
            Width::W32 => Scalar::from_parts(self.hi(), v),
        }?
        .sync()
    }

    /// The values of `dst` and `src` on the path where `dst cond src` (compared in
    /// `width`) is `taken` (or not). `None`: that path cannot happen. Each side is
    /// bounded by the other as the kernel's regs_refine_cond_op does, then
    /// normalized, which carries a 32-bit comparison's facts to the 64-bit bounds.
    pub fn refine(
        cond: JmpCond,
        width: Width,
        taken: bool,
        dst: Scalar,
        src: Scalar,
    ) -> Option<(Scalar, Scalar)> {
        if Scalar::branch_outcome(cond, width, dst, src) == Some(!taken) {
            return None;
        }
        let rel = Rel::of(cond, taken);
        let ((a, bits), (b, _)) = (dst.view(width), src.view(width));
        let (a, b) = refine_b(rel, a, b, bits)?;
        Some((dst.with_view(width, a)?, src.with_view(width, b)?))
    }

    /// Whether the branch's outcome is known: `Some(true)` always taken,
    /// `Some(false)` never, `None` either. From the bounds and tnums of the compared
    /// width (kernel is_scalar_branch_taken); a 64-bit equality is also decided by
    /// disjoint 32-bit views.
    pub fn branch_outcome(cond: JmpCond, width: Width, dst: Scalar, src: Scalar) -> Option<bool> {
        let rel = Rel::of(cond, true);
        let ((a, _), (b, _)) = (dst.view(width), src.view(width));
        let r = outcome_b(rel, &a, &b);
        if r.is_none()
            && width == Width::W64
            && matches!(rel, Rel::Eq | Rel::Ne)
            && outcome_b(Rel::Eq, &dst.lo(), &src.lo()) == Some(false)
        {
            return Some(rel == Rel::Ne);
        }
        r
    }

    /// The least abstract value holding both (for merging states, if ever needed):
    /// union of the tnums, hull of each range, normalized.
    pub fn join(a: Scalar, b: Scalar) -> Scalar {
        Scalar::join_raw(a, b)
            .and_then(Scalar::sync)
            .unwrap_or_else(Scalar::unknown)
    }

    /// Whether every value of `other` is one of `self` (state pruning: a state seen
    /// before that is at least as general as the new one makes exploring it again
    /// useless). The kernel's regsafe rule for scalars: each range of `other`
    /// within `self`'s (range_within) and its tnum within `self`'s (tnum_in).
    pub fn includes(&self, other: &Scalar) -> bool {
        self.var_off.includes(other.var_off)
            && self.umin <= other.umin
            && other.umax <= self.umax
            && self.smin <= other.smin
            && other.smax <= self.smax
            && self.u32_min <= other.u32_min
            && other.u32_max <= self.u32_max
            && self.s32_min <= other.s32_min
            && other.s32_max <= self.s32_max
    }
}

#[cfg(test)]
mod tests;
