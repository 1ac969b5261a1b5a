//! Free functions on the scalar domain's public API that the analysis needs beyond
//! `scalar.rs`: exact constant folding, interval arithmetic on the 64-bit bounds,
//! the meet of two sound descriptions, joins and widening.
//!
//! Each function is sound on its own (its result contains every concrete value the
//! inputs allow), whatever `Scalar`'s transfer functions prove: the results are
//! intersected with them, so a more precise `scalar.rs` only makes these tighter.

use isa::{AluOp, Endian, JmpCond, Width};

use super::scalar::{Scalar, Tnum};

/// The values `lo..=hi` (signed 64-bit), with the 32-bit bounds that follow.
pub fn range(lo: i64, hi: i64) -> Scalar {
    let mut s = Scalar::unknown();
    if lo > hi {
        return s;
    }
    s.smin = lo;
    s.smax = hi;
    if lo >= 0 {
        s.umin = lo as u64;
        s.umax = hi as u64;
        if hi <= u32::MAX as i64 {
            s.u32_min = lo as u32;
            s.u32_max = hi as u32;
            if hi <= i32::MAX as i64 {
                s.s32_min = lo as i32;
                s.s32_max = hi as i32;
            }
            // Bits above the highest bit of `hi` are known zero.
            let bits = 64 - (hi as u64).leading_zeros();
            let mask = if bits >= 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            s.var_off = Tnum { value: 0, mask };
        }
    } else if hi < 0 {
        s.umin = lo as u64;
        s.umax = hi as u64;
    }
    if lo >= i32::MIN as i64 && hi <= i32::MAX as i64 && (lo >= 0 || hi < 0) {
        s.s32_min = lo as i32;
        s.s32_max = hi as i32;
    }
    s
}

/// The values `lo..=hi` (unsigned 64-bit).
pub fn urange(lo: u64, hi: u64) -> Scalar {
    if hi <= i64::MAX as u64 {
        return range(lo as i64, hi as i64);
    }
    let mut s = Scalar::unknown();
    if lo <= hi {
        s.umin = lo;
        s.umax = hi;
        if lo > i64::MAX as u64 {
            s.smin = lo as i64;
            s.smax = hi as i64;
        }
    }
    s
}

/// The values both describe; `None` when there is none.
pub fn meet(a: &Scalar, b: &Scalar) -> Option<Scalar> {
    let known_a = !a.var_off.mask;
    let known_b = !b.var_off.mask;
    let both = known_a & known_b;
    if (a.var_off.value ^ b.var_off.value) & both != 0 {
        return None;
    }
    let mask = a.var_off.mask & b.var_off.mask;
    let value = (a.var_off.value | b.var_off.value) & !mask;
    let s = Scalar {
        var_off: Tnum { value, mask },
        smin: a.smin.max(b.smin),
        smax: a.smax.min(b.smax),
        umin: a.umin.max(b.umin),
        umax: a.umax.min(b.umax),
        s32_min: a.s32_min.max(b.s32_min),
        s32_max: a.s32_max.min(b.s32_max),
        u32_min: a.u32_min.max(b.u32_min),
        u32_max: a.u32_max.min(b.u32_max),
    };
    if s.smin > s.smax || s.umin > s.umax || s.s32_min > s.s32_max || s.u32_min > s.u32_max {
        return None;
    }
    // A known value must lie within the bounds.
    if let Some(v) = s.as_const() {
        if !s.contains(v) {
            return None;
        }
    }
    Some(s)
}

/// The least description (in this representation) of both.
pub fn join(a: &Scalar, b: &Scalar) -> Scalar {
    let mask = a.var_off.mask | b.var_off.mask | (a.var_off.value ^ b.var_off.value);
    Scalar {
        var_off: Tnum {
            value: a.var_off.value & !mask,
            mask,
        },
        smin: a.smin.min(b.smin),
        smax: a.smax.max(b.smax),
        umin: a.umin.min(b.umin),
        umax: a.umax.max(b.umax),
        s32_min: a.s32_min.min(b.s32_min),
        s32_max: a.s32_max.max(b.s32_max),
        u32_min: a.u32_min.min(b.u32_min),
        u32_max: a.u32_max.max(b.u32_max),
    }
}

/// Whether every value of `b` is one of `a`: the domain's own test, or bound-wise
/// inclusion (each component of `a` holds `b`'s).
pub fn includes(a: &Scalar, b: &Scalar) -> bool {
    if a.includes(b) {
        return true;
    }
    let tnum_ok = a.var_off.mask & b.var_off.mask == b.var_off.mask
        && (b.var_off.value & !a.var_off.mask) == a.var_off.value;
    tnum_ok
        && a.smin <= b.smin
        && a.smax >= b.smax
        && a.umin <= b.umin
        && a.umax >= b.umax
        && a.s32_min <= b.s32_min
        && a.s32_max >= b.s32_max
        && a.u32_min <= b.u32_min
        && a.u32_max >= b.u32_max
}

/// `old` if it holds `new`, otherwise a widened value (any value), so loops converge.
pub fn widen(old: &Scalar, new: &Scalar) -> Scalar {
    if includes(old, new) {
        *old
    } else {
        Scalar::unknown()
    }
}

/// The value a load of `size` bytes gives.
pub fn loaded(size: usize, signed: bool) -> Scalar {
    let own = match (size, signed) {
        (8, _) => Scalar::unknown(),
        (n, false) => range(0, (1i64 << (8 * n)) - 1),
        (n, true) => range(-(1i64 << (8 * n - 1)), (1i64 << (8 * n - 1)) - 1),
    };
    meet(&Scalar::loaded(size, signed), &own).unwrap_or(own)
}

/// Exact `dst op src` for the operations folded here; `None` for the others.
fn fold(op: AluOp, width: Width, d: u64, s: u64) -> Option<u64> {
    let r = match width {
        Width::W64 => match op {
            AluOp::Add => d.wrapping_add(s),
            AluOp::Sub => d.wrapping_sub(s),
            AluOp::Mul => d.wrapping_mul(s),
            AluOp::Or => d | s,
            AluOp::And => d & s,
            AluOp::Xor => d ^ s,
            AluOp::Lsh => d.wrapping_shl((s & 63) as u32),
            AluOp::Rsh => d.wrapping_shr((s & 63) as u32),
            AluOp::Arsh => ((d as i64).wrapping_shr((s & 63) as u32)) as u64,
            AluOp::Neg => (d as i64).wrapping_neg() as u64,
            AluOp::Mov => s,
            AluOp::Div if s != 0 => d / s,
            AluOp::Mod if s != 0 => d % s,
            _ => return None,
        },
        Width::W32 => {
            let (d, s) = (d as u32, s as u32);
            (match op {
                AluOp::Add => d.wrapping_add(s),
                AluOp::Sub => d.wrapping_sub(s),
                AluOp::Mul => d.wrapping_mul(s),
                AluOp::Or => d | s,
                AluOp::And => d & s,
                AluOp::Xor => d ^ s,
                AluOp::Lsh => d.wrapping_shl(s & 31),
                AluOp::Rsh => d.wrapping_shr(s & 31),
                AluOp::Arsh => ((d as i32).wrapping_shr(s & 31)) as u32,
                AluOp::Neg => (d as i32).wrapping_neg() as u32,
                AluOp::Mov => s,
                AluOp::Div if s != 0 => d / s,
                AluOp::Mod if s != 0 => d % s,
                _ => return None,
            }) as u64
        }
    };
    Some(r)
}

/// `dst op src` in `width`: the domain's transfer function, met with exact constant
/// folding and simple interval rules.
pub fn alu(op: AluOp, width: Width, dst: &Scalar, src: &Scalar) -> Scalar {
    let own = own_alu(op, width, dst, src);
    // A folded constant is as precise as it gets.
    if let Some(o) = own.filter(|o| o.as_const().is_some()) {
        return o;
    }
    let base = Scalar::alu(op, width, *dst, *src);
    match own {
        Some(o) => meet(&base, &o).unwrap_or(o),
        None => base,
    }
}

fn own_alu(op: AluOp, width: Width, d: &Scalar, s: &Scalar) -> Option<Scalar> {
    if let (Some(a), Some(b)) = (d.as_const(), s.as_const()) {
        if let Some(v) = fold(op, width, a, b) {
            return Some(Scalar::constant(v));
        }
    }
    if op == AluOp::Neg {
        if let Some(a) = d.as_const() {
            return fold(op, width, a, 0).map(Scalar::constant);
        }
    }
    if width == Width::W32 {
        if op == AluOp::Mov {
            if let Some(v) = s.as_const() {
                return Some(Scalar::constant(v as u32 as u64));
            }
            if s.umax <= u32::MAX as u64 {
                return Some(urange(s.umin, s.umax));
            }
        }
        if op == AluOp::And {
            if let Some(m) = s.as_const().or(d.as_const()) {
                return Some(urange(0, m as u32 as u64));
            }
        }
        if op == AluOp::Rsh {
            if let Some(c) = s.as_const() {
                return Some(urange(0, (u32::MAX >> (c & 31)) as u64));
            }
        }
        return Some(urange(0, u32::MAX as u64));
    }
    match op {
        AluOp::Mov => Some(*s),
        AluOp::Add | AluOp::Sub => {
            let (lo, hi) = if op == AluOp::Add {
                (d.smin.checked_add(s.smin)?, d.smax.checked_add(s.smax)?)
            } else {
                (d.smin.checked_sub(s.smax)?, d.smax.checked_sub(s.smin)?)
            };
            Some(range(lo, hi))
        }
        AluOp::And => {
            // Non-negative operands: the result is at most the smaller of them.
            let m = match (d.smin >= 0, s.smin >= 0) {
                (true, true) => d.umax.min(s.umax),
                (true, false) => d.umax,
                (false, true) => s.umax,
                (false, false) => return None,
            };
            Some(urange(0, m))
        }
        AluOp::Rsh => {
            let c = s.as_const()? & 63;
            Some(urange(d.umin >> c, d.umax >> c))
        }
        AluOp::Lsh => {
            let c = s.as_const()? & 63;
            if c < 64 && d.umax.leading_zeros() as u64 > c {
                Some(urange(d.umin << c, d.umax << c))
            } else {
                None
            }
        }
        AluOp::Mul => {
            if d.smin >= 0 && s.smin >= 0 {
                let hi = d.umax.checked_mul(s.umax)?;
                Some(urange(d.umin.checked_mul(s.umin)?, hi))
            } else {
                None
            }
        }
        AluOp::Div => {
            let c = s.as_const()?;
            (c != 0).then(|| urange(d.umin / c, d.umax / c))
        }
        AluOp::Mod => {
            let c = s.as_const()?;
            (c != 0).then(|| urange(0, (c - 1).min(d.umax)))
        }
        AluOp::Or | AluOp::Xor => {
            if d.smin >= 0 && s.smin >= 0 {
                let bits = 64 - (d.umax | s.umax).leading_zeros();
                let hi = if bits >= 63 {
                    i64::MAX as u64
                } else {
                    (1u64 << bits) - 1
                };
                Some(urange(0, hi))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A byte-order conversion, folded when the value is known.
pub fn endian(kind: Endian, bits: u8, dst: &Scalar) -> Scalar {
    if cfg!(target_endian = "little") && dst.as_const().is_some() {
        return endian_own(kind, bits, dst);
    }
    let base = Scalar::endian(kind, bits, *dst);
    let own = endian_own(kind, bits, dst);
    if cfg!(target_endian = "big") {
        return base;
    }
    meet(&base, &own).unwrap_or(own)
}

/// A byte-order conversion as this (little-endian) host does it.
fn endian_own(kind: Endian, bits: u8, dst: &Scalar) -> Scalar {
    match dst.as_const() {
        Some(v) => {
            let r = match (kind, bits) {
                (Endian::ToLe, 16) => v as u16 as u64,
                (Endian::ToLe, 32) => v as u32 as u64,
                (Endian::ToLe, _) => v,
                (_, 16) => (v as u16).swap_bytes() as u64,
                (_, 32) => (v as u32).swap_bytes() as u64,
                (_, _) => v.swap_bytes(),
            };
            Scalar::constant(r)
        }
        None => match bits {
            16 => urange(0, u16::MAX as u64),
            32 => urange(0, u32::MAX as u64),
            _ => Scalar::unknown(),
        },
    }
}

/// Whether `d cond s` (in `width`) is known: `Some(true)` always, `Some(false)` never.
pub fn outcome(cond: JmpCond, width: Width, d: &Scalar, s: &Scalar) -> Option<bool> {
    if let (Some(a), Some(b)) = (d.as_const(), s.as_const()) {
        return Some(match width {
            Width::W64 => concrete(cond, a, b, false),
            Width::W32 => concrete(cond, a as u32 as u64, b as u32 as u64, true),
        });
    }
    if let Some(o) = Scalar::branch_outcome(cond, width, *d, *s) {
        return Some(o);
    }
    if width != Width::W64 {
        if let (Some(a), Some(b)) = (d.as_const(), s.as_const()) {
            return Some(concrete(cond, a as u32 as u64, b as u32 as u64, true));
        }
        return None;
    }
    if let (Some(a), Some(b)) = (d.as_const(), s.as_const()) {
        return Some(concrete(cond, a, b, false));
    }
    use JmpCond::*;
    match cond {
        Eq | Ne => {
            let disjoint = d.umax < s.umin || s.umax < d.umin || d.smax < s.smin || s.smax < d.smin;
            disjoint.then_some(cond == Ne)
        }
        Gt => decide(d.umin > s.umax, d.umax <= s.umin),
        Ge => decide(d.umin >= s.umax, d.umax < s.umin),
        Lt => decide(d.umax < s.umin, d.umin >= s.umax),
        Le => decide(d.umax <= s.umin, d.umin > s.umax),
        Sgt => decide(d.smin > s.smax, d.smax <= s.smin),
        Sge => decide(d.smin >= s.smax, d.smax < s.smin),
        Slt => decide(d.smax < s.smin, d.smin >= s.smax),
        Sle => decide(d.smax <= s.smin, d.smin > s.smax),
        Set => None,
    }
}

fn decide(always: bool, never: bool) -> Option<bool> {
    if always {
        Some(true)
    } else if never {
        Some(false)
    } else {
        None
    }
}

fn concrete(cond: JmpCond, a: u64, b: u64, w32: bool) -> bool {
    use JmpCond::*;
    let (sa, sb) = if w32 {
        (a as u32 as i32 as i64, b as u32 as i32 as i64)
    } else {
        (a as i64, b as i64)
    };
    match cond {
        Eq => a == b,
        Ne => a != b,
        Gt => a > b,
        Ge => a >= b,
        Lt => a < b,
        Le => a <= b,
        Set => a & b != 0,
        Sgt => sa > sb,
        Sge => sa >= sb,
        Slt => sa < sb,
        Sle => sa <= sb,
    }
}

/// The values of `d` and `s` on the path where `d cond s` is `taken` (or not); `None`
/// when that path cannot happen.
pub fn refine(
    cond: JmpCond,
    width: Width,
    taken: bool,
    d: &Scalar,
    s: &Scalar,
) -> Option<(Scalar, Scalar)> {
    let (d0, s0) = Scalar::refine(cond, width, taken, *d, *s)?;
    if width != Width::W64 {
        return Some((d0, s0));
    }
    use JmpCond::*;
    // The condition that holds on this path.
    let c = if taken {
        cond
    } else {
        match cond {
            Eq => Ne,
            Ne => Eq,
            Gt => Le,
            Ge => Lt,
            Lt => Ge,
            Le => Gt,
            Sgt => Sle,
            Sge => Slt,
            Slt => Sge,
            Sle => Sgt,
            Set => return Some((d0, s0)),
        }
    };
    let (dn, sn) = match c {
        Eq => {
            let m = meet(&d0, &s0)?;
            (m, m)
        }
        Ne => {
            // Only a constant at the edge of the other's range narrows it.
            let mut dn = d0;
            let mut sn = s0;
            if let Some(k) = s0.as_const() {
                dn = exclude(&d0, k)?;
            }
            if let Some(k) = d0.as_const() {
                sn = exclude(&s0, k)?;
            }
            (dn, sn)
        }
        Gt => (
            meet(&d0, &urange(s0.umin.checked_add(1)?, u64::MAX))?,
            meet(&s0, &urange(0, d0.umax.checked_sub(1)?))?,
        ),
        Ge => (
            meet(&d0, &urange(s0.umin, u64::MAX))?,
            meet(&s0, &urange(0, d0.umax))?,
        ),
        Lt => (
            meet(&d0, &urange(0, s0.umax.checked_sub(1)?))?,
            meet(&s0, &urange(d0.umin.checked_add(1)?, u64::MAX))?,
        ),
        Le => (
            meet(&d0, &urange(0, s0.umax))?,
            meet(&s0, &urange(d0.umin, u64::MAX))?,
        ),
        Sgt => (
            meet(&d0, &range(s0.smin.checked_add(1)?, i64::MAX))?,
            meet(&s0, &range(i64::MIN, d0.smax.checked_sub(1)?))?,
        ),
        Sge => (
            meet(&d0, &range(s0.smin, i64::MAX))?,
            meet(&s0, &range(i64::MIN, d0.smax))?,
        ),
        Slt => (
            meet(&d0, &range(i64::MIN, s0.smax.checked_sub(1)?))?,
            meet(&s0, &range(d0.smin.checked_add(1)?, i64::MAX))?,
        ),
        Sle => (
            meet(&d0, &range(i64::MIN, s0.smax))?,
            meet(&s0, &range(d0.smin, i64::MAX))?,
        ),
        Set => (d0, s0),
    };
    Some((dn, sn))
}

/// `a` without the value `k` where that narrows a bound.
fn exclude(a: &Scalar, k: u64) -> Option<Scalar> {
    if a.as_const() == Some(k) {
        return None;
    }
    let mut r = *a;
    if a.umin == k {
        r = meet(&r, &urange(k.checked_add(1)?, u64::MAX))?;
    } else if a.umax == k {
        r = meet(&r, &urange(0, k.checked_sub(1)?))?;
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_hold_their_values_only() {
        let r = range(3, 17);
        for x in 0..40u64 {
            assert_eq!(r.contains(x), (3..=17).contains(&x), "{x}");
        }
        let n = range(-5, -1);
        assert!(n.contains(-3i64 as u64) && !n.contains(0));
        let u = urange(u64::MAX - 2, u64::MAX);
        assert!(u.contains(u64::MAX) && !u.contains(5));
    }

    #[test]
    fn refinement_narrows_both_sides() {
        let x = urange(0, 1000);
        let (t, _) = refine(JmpCond::Gt, Width::W64, false, &x, &Scalar::constant(64)).unwrap();
        assert_eq!((t.umin, t.umax), (0, 64));
        let (t, _) = refine(JmpCond::Gt, Width::W64, true, &x, &Scalar::constant(64)).unwrap();
        assert_eq!((t.umin, t.umax), (65, 1000));
        assert!(refine(JmpCond::Gt, Width::W64, true, &x, &Scalar::constant(5000)).is_none());
        assert_eq!(
            outcome(JmpCond::Lt, Width::W64, &x, &Scalar::constant(1001)),
            Some(true)
        );
    }

    #[test]
    fn folding_and_meets() {
        let a = alu(
            AluOp::Add,
            Width::W64,
            &Scalar::constant(14),
            &Scalar::constant(20),
        );
        assert_eq!(a.as_const(), Some(34));
        let m = alu(
            AluOp::And,
            Width::W64,
            &Scalar::unknown(),
            &Scalar::constant(0xff),
        );
        assert!(m.umax <= 0xff && m.smin >= 0);
        assert!(meet(&Scalar::constant(1), &Scalar::constant(2)).is_none());
        let j = join(&Scalar::constant(1), &Scalar::constant(6));
        assert!(j.contains(1) && j.contains(6) && !j.contains(7));
        assert!(includes(&j, &Scalar::constant(4)));
        assert!(!includes(&Scalar::constant(4), &j));
    }
}
