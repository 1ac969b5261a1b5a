//! Abstract states: registers and stack slots of every frame of the call chain, with
//! types, as the kernel's `struct bpf_reg_state` / `bpf_func_state` keep them.

use std::fmt;

use super::bounds;
use super::scalar::Scalar;

/// Bytes of stack per frame, and 8-byte slots per frame.
pub const FRAME_BYTES: i64 = 512;
pub const SLOTS: usize = 64;
/// Frames in a call chain, the entry function included (`MAX_CALL_FRAMES`).
pub const MAX_FRAMES: usize = 8;

/// The abstract value of one register (or of a spilled register in a stack slot).
#[derive(Clone, Debug, PartialEq)]
pub enum Reg {
    /// Never written on this path: any value at run time.
    Uninit,
    Scalar(Scalar),
    /// The context (`struct xdp_md`) plus a fixed offset.
    Ctx {
        off: i64,
    },
    /// The frame pointer of `frame` (an index into the state's frames) plus `off`.
    Stack {
        frame: u8,
        off: Scalar,
    },
    /// `data + var + fixed` (or `data_meta + ..` for `meta`), where `data + var +
    /// range <= data_end` (or `<= data` for `meta`) has been proven. Pointers with the
    /// same `id` share the same `var`; id 0 means `var` is 0.
    Packet {
        meta: bool,
        id: u32,
        fixed: i64,
        var: Scalar,
        range: u64,
    },
    PacketEnd,
    /// A map handle: the map's index in the program's map table.
    MapHandle {
        map: u32,
    },
    /// A pointer into one value of map `map`, at `off` from its start.
    MapValue {
        map: u32,
        off: Scalar,
    },
    /// What a lookup returned: a value pointer (`off` from its start) or NULL; a null
    /// test on one copy decides every copy with the same `id`.
    MapValueOrNull {
        map: u32,
        id: u32,
        off: Scalar,
    },
    /// A reserved ring buffer record of `size` bytes, at `off` from its start.
    Ring {
        id: u32,
        size: u32,
        off: Scalar,
    },
    RingOrNull {
        id: u32,
        size: u32,
    },
    /// The address of a function of the program (a callback), by its start slot.
    Func {
        pc: u32,
    },
}

impl Reg {
    pub fn unknown() -> Reg {
        Reg::Scalar(Scalar::unknown())
    }

    pub fn konst(v: u64) -> Reg {
        Reg::Scalar(Scalar::constant(v))
    }

    /// The scalar this register holds when used as a number: a pointer's bits are
    /// unknown to the analysis.
    pub fn as_scalar(&self) -> Scalar {
        match self {
            Reg::Scalar(s) => *s,
            _ => Scalar::unknown(),
        }
    }

    pub fn is_pointer(&self) -> bool {
        !matches!(self, Reg::Uninit | Reg::Scalar(_))
    }
}

/// One function's frame: its registers, stack slots and where it returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub regs: [Reg; 11],
    /// The 8-byte stack slots holding a spilled register (stored whole by an aligned
    /// 8-byte store), by slot index, sorted; slot `i` covers bytes `fp - 512 + 8i ..
    /// fp - 512 + 8i + 8`. Other slots hold bytes the analysis does not follow.
    pub spills: Vec<(u8, Reg)>,
    /// Where the caller continues: the slot after the call, or for a callback the
    /// `bpf_loop` call itself (it is evaluated again: one more iteration or the end).
    pub ret_pc: usize,
    pub callback: bool,
}

impl Reg {
    /// A pointer (or pointer-or-null) into the values of map `m`.
    pub fn points_into_map(&self, m: u32) -> bool {
        matches!(self, Reg::MapValue { map, .. } | Reg::MapValueOrNull { map, .. } if *map == m)
    }
}

impl Frame {
    pub fn new(index: usize, ret_pc: usize, callback: bool) -> Frame {
        let mut regs: [Reg; 11] = std::array::from_fn(|_| Reg::Uninit);
        regs[10] = Reg::Stack {
            frame: index as u8,
            off: Scalar::constant(0),
        };
        Frame {
            regs,
            spills: Vec::new(),
            ret_pc,
            callback,
        }
    }

    /// The register spilled in slot `slot`, if any.
    pub fn spill(&self, slot: usize) -> Option<&Reg> {
        self.spills
            .binary_search_by_key(&slot, |(s, _)| *s as usize)
            .ok()
            .map(|i| &self.spills[i].1)
    }

    pub fn set_spill(&mut self, slot: usize, r: Reg) {
        debug_assert!(slot < SLOTS);
        match self
            .spills
            .binary_search_by_key(&slot, |(s, _)| *s as usize)
        {
            Ok(i) => self.spills[i].1 = r,
            Err(i) => self.spills.insert(i, (slot as u8, r)),
        }
    }

    /// Forgets the spills in slots `lo..hi`.
    pub fn clear_slots(&mut self, lo: usize, hi: usize) {
        self.spills
            .retain(|(s, _)| (*s as usize) < lo || (*s as usize) >= hi);
    }
}

/// The state of one path: the frames of the call chain, the entry function's first.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    pub frames: Vec<Frame>,
}

impl State {
    pub fn cur(&self) -> &Frame {
        self.frames.last().expect("a state has a frame")
    }

    pub fn cur_mut(&mut self) -> &mut Frame {
        self.frames.last_mut().expect("a state has a frame")
    }

    pub fn reg(&self, r: u8) -> &Reg {
        &self.cur().regs[r as usize]
    }

    pub fn set(&mut self, r: u8, v: Reg) {
        self.cur_mut().regs[r as usize] = v;
    }

    /// Every register and spilled register of every frame.
    pub fn for_each_reg(&mut self, mut f: impl FnMut(&mut Reg)) {
        for fr in &mut self.frames {
            for r in fr.regs.iter_mut() {
                f(r);
            }
            for (_, r) in fr.spills.iter_mut() {
                f(r);
            }
        }
    }

    /// Forgets every spilled register of every frame (memory the analysis cannot
    /// place may have been written).
    pub fn clobber_all_stacks(&mut self) {
        for fr in &mut self.frames {
            fr.spills.clear();
        }
    }
}

/// Whether `old` holds every concrete state `new` does, for the registers in `live`
/// (one mask per frame): the pruning test (the kernel's `states_equal`/`regsafe`).
pub fn includes(old: &State, new: &State, live: &[u16]) -> bool {
    if old.frames.len() != new.frames.len() {
        return false;
    }
    let mut ids: Vec<(u32, (u32, i64))> = Vec::new();
    for (i, (fo, fnew)) in old.frames.iter().zip(&new.frames).enumerate() {
        if fo.ret_pc != fnew.ret_pc || fo.callback != fnew.callback {
            return false;
        }
        let mask = live.get(i).copied().unwrap_or(u16::MAX);
        for r in 0..11 {
            if mask & (1 << r) == 0 {
                continue;
            }
            if !reg_includes(&fo.regs[r], &fnew.regs[r], &mut ids) {
                return false;
            }
        }
        // Slots old does not follow hold anything; a spill in old needs one in new.
        for (slot, a) in &fo.spills {
            match fnew.spill(*slot as usize) {
                Some(b) => {
                    if !reg_includes(a, b, &mut ids) {
                        return false;
                    }
                }
                None => {
                    if !matches!(a, Reg::Uninit) && a != &Reg::unknown() {
                        return false;
                    }
                }
            }
        }
    }
    true
}

/// Ids must correspond one way: registers that share an id in `old` (one variable
/// part) share one in `new`, and for packet pointers the same difference `d` of their
/// fixed offsets (new fixed - old fixed), by which the variable parts differ.
fn same_id(ids: &mut Vec<(u32, (u32, i64))>, a: u32, b: u32, d: i64) -> bool {
    match ids.iter().find(|(x, _)| *x == a) {
        Some(&(_, y)) => y == (b, d),
        None => {
            ids.push((a, (b, d)));
            true
        }
    }
}

fn reg_includes(old: &Reg, new: &Reg, ids: &mut Vec<(u32, (u32, i64))>) -> bool {
    use Reg::*;
    match (old, new) {
        (Uninit, _) => true,
        (Scalar(a), Scalar(b)) => bounds::includes(a, b),
        (Scalar(a), _) => *a == super::scalar::Scalar::unknown(),
        (Ctx { off: a }, Ctx { off: b }) => a == b,
        (Stack { frame: fa, off: a }, Stack { frame: fb, off: b }) => {
            fa == fb && bounds::includes(a, b)
        }
        (
            Packet {
                meta: ma,
                id: ia,
                fixed: fa,
                var: va,
                range: ra,
            },
            Packet {
                meta: mb,
                id: ib,
                fixed: fb,
                var: vb,
                range: rb,
            },
        ) => {
            // old: data + va + fa, new: data + vb + fb: the same address when
            // va = vb + d with d = fb - fa. What old proved (data + va + ra <= end)
            // must follow from new's (data + vb + rb <= end): ra + d <= rb.
            let d = fb.wrapping_sub(*fa);
            if ma != mb || d.unsigned_abs() > 1 << 30 || (*ra as i128 + d as i128) > *rb as i128 {
                return false;
            }
            let shifted = if d == 0 {
                *vb
            } else if vb.umin.checked_add_signed(d).is_some()
                && vb.umax.checked_add_signed(d).is_some()
                && vb.smin >= 0
            {
                bounds::alu(
                    isa::AluOp::Add,
                    isa::Width::W64,
                    vb,
                    &super::scalar::Scalar::constant(d as u64),
                )
            } else {
                return false;
            };
            // A known variable part needs no id: equal values are the link.
            bounds::includes(va, &shifted) && (va.as_const().is_some() || same_id(ids, *ia, *ib, d))
        }
        (PacketEnd, PacketEnd) => true,
        (MapHandle { map: a }, MapHandle { map: b }) => a == b,
        (MapValue { map: ma, off: a }, MapValue { map: mb, off: b }) => {
            ma == mb && bounds::includes(a, b)
        }
        (
            MapValueOrNull {
                map: ma,
                id: ia,
                off: a,
            },
            MapValueOrNull {
                map: mb,
                id: ib,
                off: b,
            },
        ) => ma == mb && bounds::includes(a, b) && same_id(ids, *ia, *ib, 0),
        (
            Ring {
                id: ia,
                size: sa,
                off: a,
            },
            Ring {
                id: ib,
                size: sb,
                off: b,
            },
        ) => sa == sb && bounds::includes(a, b) && same_id(ids, *ia, *ib, 0),
        (RingOrNull { id: ia, size: sa }, RingOrNull { id: ib, size: sb }) => {
            sa == sb && same_id(ids, *ia, *ib, 0)
        }
        (Func { pc: a }, Func { pc: b }) => a == b,
        _ => false,
    }
}

/// `old` widened so that it holds `new` too (used where one slot is reached by many
/// states, so that loops converge): registers of different kinds become unknown
/// scalars, offsets and values not held become unknown.
pub fn widen(old: &State, new: &State, next_id: &mut u32, hard: bool) -> Option<State> {
    if old.frames.len() != new.frames.len() {
        return None;
    }
    let mut out = old.clone();
    // Registers that shared an id (and, for packet pointers, the difference of their
    // fixed offsets) in both states share the new one.
    let mut ids: Vec<((u32, u32, i64), u32)> = Vec::new();
    let mut fresh = |a: u32, b: u32, d: i64| -> u32 {
        if let Some(&(_, n)) = ids.iter().find(|(k, _)| *k == (a, b, d)) {
            return n;
        }
        *next_id += 1;
        ids.push(((a, b, d), *next_id));
        *next_id
    };
    for (fo, (fa, fb)) in out
        .frames
        .iter_mut()
        .zip(old.frames.iter().zip(&new.frames))
    {
        if fa.ret_pc != fb.ret_pc || fa.callback != fb.callback {
            return None;
        }
        for r in 0..11 {
            fo.regs[r] = widen_reg(&fa.regs[r], &fb.regs[r], &mut fresh, hard);
        }
        fo.spills = fa
            .spills
            .iter()
            .filter_map(|(s, a)| {
                let b = fb.spill(*s as usize)?;
                Some((*s, widen_reg(a, b, &mut fresh, hard)))
            })
            .collect();
    }
    Some(out)
}

fn widen_reg(a: &Reg, b: &Reg, fresh: &mut impl FnMut(u32, u32, i64) -> u32, hard: bool) -> Reg {
    use Reg::*;
    let w = |x: &super::scalar::Scalar, y: &super::scalar::Scalar| {
        if hard {
            bounds::widen(x, y)
        } else {
            bounds::join(x, y)
        }
    };
    match (a, b) {
        (Uninit, _) | (_, Uninit) => Uninit,
        (Scalar(x), Scalar(y)) => Scalar(w(x, y)),
        (Ctx { off: x }, Ctx { off: y }) if x == y => a.clone(),
        (Stack { frame: f, off: x }, Stack { frame: g, off: y }) if f == g => Stack {
            frame: *f,
            off: w(x, y),
        },
        (
            Packet {
                meta: ma,
                id: ia,
                fixed: fa,
                var: va,
                range: ra,
            },
            Packet {
                meta: mb,
                id: ib,
                fixed: fb,
                var: vb,
                range: rb,
            },
        ) if ma == mb => {
            if ia == ib && fa == fb {
                return Packet {
                    meta: *ma,
                    id: *ia,
                    fixed: *fa,
                    var: w(va, vb),
                    range: (*ra).min(*rb),
                };
            }
            // data + v + f in both, with different variable parts or fixed offsets:
            // one pointer data + v' + min(f) with a new id for v' = v + (f - min(f)),
            // and what each range proved, relative to the new base.
            let fmin = (*fa).min(*fb);
            let (da, db) = ((fa - fmin) as u64, (fb - fmin) as u64);
            let shift = |v: &super::scalar::Scalar, d: u64| {
                bounds::alu(
                    isa::AluOp::Add,
                    isa::Width::W64,
                    v,
                    &super::scalar::Scalar::constant(d),
                )
            };
            let var = w(&shift(va, da), &shift(vb, db));
            let range = (*ra as i64 - da as i64).min(*rb as i64 - db as i64).max(0) as u64;
            Packet {
                meta: *ma,
                id: fresh(*ia, *ib, *fb - *fa),
                fixed: fmin,
                var,
                range,
            }
        }
        (PacketEnd, PacketEnd) => PacketEnd,
        (MapHandle { map: x }, MapHandle { map: y }) if x == y => a.clone(),
        (MapValue { map: m, off: x }, MapValue { map: n, off: y }) if m == n => MapValue {
            map: *m,
            off: w(x, y),
        },
        (
            MapValueOrNull {
                map: m,
                id: ia,
                off: x,
            },
            MapValueOrNull {
                map: n,
                id: ib,
                off: y,
            },
        ) if m == n => MapValueOrNull {
            map: *m,
            id: fresh(*ia, *ib, 0),
            off: w(x, y),
        },
        (
            Ring {
                id: ia,
                size: sa,
                off: x,
            },
            Ring {
                id: ib,
                size: sb,
                off: y,
            },
        ) if sa == sb => Ring {
            id: fresh(*ia, *ib, 0),
            size: *sa,
            off: w(x, y),
        },
        (RingOrNull { id: ia, size: sa }, RingOrNull { id: ib, size: sb }) if sa == sb => {
            RingOrNull {
                id: fresh(*ia, *ib, 0),
                size: *sa,
            }
        }
        (Func { pc: x }, Func { pc: y }) if x == y => a.clone(),
        _ => Reg::unknown(),
    }
}

fn fmt_scalar(f: &mut fmt::Formatter<'_>, s: &Scalar) -> fmt::Result {
    if let Some(v) = s.as_const() {
        return write!(f, "{}", v as i64);
    }
    write!(f, "(")?;
    let mut sep = "";
    if s.smin != i64::MIN || s.smax != i64::MAX {
        write!(f, "smin={},smax={}", s.smin, s.smax)?;
        sep = ",";
    }
    if s.umin != 0 || s.umax != u64::MAX {
        write!(f, "{sep}umin={},umax={}", s.umin, s.umax)?;
        sep = ",";
    }
    if s.var_off.mask != u64::MAX {
        write!(
            f,
            "{sep}var_off=({:#x}; {:#x})",
            s.var_off.value, s.var_off.mask
        )?;
    }
    write!(f, ")")
}

struct ScalarFmt<'a>(&'a Scalar);

impl fmt::Display for ScalarFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_scalar(f, self.0)
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reg::Uninit => write!(f, "?"),
            Reg::Scalar(s) => {
                if s.as_const().is_some() {
                    write!(f, "{}", ScalarFmt(s))
                } else {
                    write!(f, "scalar{}", ScalarFmt(s))
                }
            }
            Reg::Ctx { off } => write!(f, "ctx(off={off})"),
            // As the kernel: fp-16 (fp0 for r10 itself); a caller's frame says which.
            Reg::Stack { frame, off } => match (off.as_const(), frame) {
                (Some(c), 0) => write!(f, "fp{}", c as i64),
                (Some(c), _) => write!(f, "fp{}(frame={frame})", c as i64),
                (None, _) => write!(f, "fp(frame={frame},off={})", ScalarFmt(off)),
            },
            Reg::Packet {
                meta,
                id,
                fixed,
                var,
                range,
            } => write!(
                f,
                "{}(id={id},off={fixed},r={range},var={})",
                if *meta { "pkt_meta" } else { "pkt" },
                ScalarFmt(var)
            ),
            Reg::PacketEnd => write!(f, "pkt_end"),
            Reg::MapHandle { map } => write!(f, "map_ptr(map={map})"),
            Reg::MapValue { map, off } => write!(f, "map_value(map={map},off={})", ScalarFmt(off)),
            Reg::MapValueOrNull { map, id, off } => write!(
                f,
                "map_value_or_null(id={id},map={map},off={})",
                ScalarFmt(off)
            ),
            Reg::Ring { id, size, off } => {
                write!(f, "ringbuf_mem(id={id},size={size},off={})", ScalarFmt(off))
            }
            Reg::RingOrNull { id, size } => write!(f, "ringbuf_mem_or_null(id={id},size={size})"),
            Reg::Func { pc } => write!(f, "func(pc={pc})"),
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, fr) in self.frames.iter().enumerate() {
            if self.frames.len() > 1 {
                write!(f, "frame{i}: ")?;
            }
            let mut first = true;
            for (r, v) in fr.regs.iter().enumerate() {
                if matches!(v, Reg::Uninit) {
                    continue;
                }
                if !first {
                    write!(f, " ")?;
                }
                first = false;
                write!(f, "R{r}={v}")?;
            }
            for (s, v) in &fr.spills {
                write!(f, " fp{}={v}", (*s as i64) * 8 - FRAME_BYTES)?;
            }
            if i + 1 < self.frames.len() {
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(id: u32, fixed: i64, range: u64) -> Reg {
        Reg::Packet {
            meta: false,
            id,
            fixed,
            var: Scalar::constant(0),
            range,
        }
    }

    fn with(regs: &[(usize, Reg)]) -> State {
        let mut s = State {
            frames: vec![Frame::new(0, usize::MAX, false)],
        };
        for (r, v) in regs {
            s.frames[0].regs[*r] = v.clone();
        }
        s
    }

    #[test]
    fn joined_packet_cursors_keep_what_their_ranges_proved() {
        // A cursor at data+14 (range 18) and at data+18 (range 22), e.g. after an
        // optional VLAN tag; r7 moved with it (4 bytes further), r8 did not.
        let a = with(&[(6, pkt(0, 14, 18)), (7, pkt(0, 18, 18)), (8, pkt(0, 0, 18))]);
        let b = with(&[(6, pkt(0, 18, 22)), (7, pkt(0, 22, 22)), (8, pkt(0, 0, 22))]);
        let mut id = 100;
        let j = widen(&a, &b, &mut id, false).unwrap();
        let Reg::Packet {
            id: i6,
            fixed,
            var,
            range,
            ..
        } = &j.frames[0].regs[6]
        else {
            panic!("{:?}", j.frames[0].regs[6]);
        };
        assert_eq!((*fixed, *range), (14, 18));
        assert!(var.contains(0) && var.contains(4) && !var.contains(5));
        let Reg::Packet { id: i7, fixed, .. } = &j.frames[0].regs[7] else {
            panic!()
        };
        assert_eq!((*i7, *fixed), (*i6, 18));
        // r8 is the same pointer in both: it keeps id 0 and the smaller range.
        assert_eq!(j.frames[0].regs[8], pkt(0, 0, 18));
        assert!(includes(&j, &a, &[u16::MAX]) && includes(&j, &b, &[u16::MAX]));
        assert!(!includes(&a, &j, &[u16::MAX]));
    }
}
