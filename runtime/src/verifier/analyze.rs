//! The exploration: every path from the entry, one abstract state per path, forked at
//! conditional jumps whose outcome is not known, pruned where a state already explored
//! at the same slot holds the new one (the kernel's `do_check` / `is_state_visited`).

use isa::{AluOp, CallTarget, Insn, JmpCond, Operand, Width};

use super::bounds;
use super::protos::{self, Arg, Ret, Size};
use super::scalar::Scalar;
use super::state::{self, Frame, Reg, State, FRAME_BYTES, MAX_FRAMES, SLOTS};
use super::{Analysis, Fact, MapDesc, Region};
use crate::maptable::types;
use crate::xdp::XdpMd;

/// Instructions processed before the analysis gives up (`BPF_COMPLEXITY_LIMIT_INSNS`).
pub const COMPLEXITY_LIMIT: u64 = 1_000_000;
/// States kept at one slot before new ones are joined into the last, and before
/// joins widen (so that loops the kernel would walk to their end converge).
const JOIN_AFTER: usize = 8;
const WIDEN_AFTER: usize = 96;
/// Outside loop heads, a path stores its state for pruning at most every this many
/// instructions (as the kernel's `is_state_visited` does), and no more than
/// `MAX_STORED` states are kept in all: pruning is an optimisation, and these bound
/// the memory a long program takes.
const STORE_EVERY: u64 = 8;
const MAX_STORED: usize = 1 << 15;
/// The largest variable part a packet pointer may carry (`MAX_PACKET_OFF`).
const MAX_PACKET_OFF: u64 = 0xffff;

/// What the analysis of one slot found so far, over every state that reached it.
#[derive(Clone, Default)]
struct Acc {
    reached: bool,
    /// Every state's access (or every checked helper argument) was proven.
    ok: bool,
    region: Option<Region>,
    mixed: bool,
    why: Option<String>,
    /// Helper calls: the map in r1 (`Some(Some(m))` the same in every state).
    map: Option<Option<u32>>,
    args_ok: u8,
    args_ptr: u8,
    /// `bpf_map_update_elem`: in some state a pointer into the map's values survives
    /// the call (in r6..r9 or a spill of any frame).
    value_ptr_kept: bool,
}

pub struct Options {
    /// Whether r1 holds the context at the entry (false: nothing is assumed).
    pub entry_ctx: bool,
    pub limit: u64,
}

struct Analyzer<'a> {
    insns: &'a [Option<Insn>],
    maps: &'a [MapDesc],
    acc: Vec<Acc>,
    prune: Vec<bool>,
    /// Targets of backward jumps and bpf_loop calls: states are always stored there.
    loop_head: Vec<bool>,
    stored: usize,
    live: Vec<u16>,
    visited: Vec<Vec<State>>,
    work: Vec<(usize, State)>,
    processed: u64,
    next_id: u32,
    tail_ctx_unproven: bool,
    /// Per map: a pointer to one of its values left the registers and spills the
    /// analysis follows (stored elsewhere, or copied by a helper from the stack).
    value_ptr_escaped: Vec<bool>,
}

/// Analyses a program: `insns[pc]` is the instruction starting at slot `pc` (None for
/// the second slot of an lddw).
pub fn analyze(insns: &[Option<Insn>], maps: &[MapDesc], opts: &Options) -> Analysis {
    let n = insns.len();
    let mut a = Analyzer {
        insns,
        maps,
        acc: vec![Acc::default(); n],
        prune: prune_points(insns),
        loop_head: loop_heads(insns),
        stored: 0,
        live: liveness(insns),
        visited: vec![Vec::new(); n],
        work: Vec::new(),
        processed: 0,
        next_id: 0,
        tail_ctx_unproven: false,
        value_ptr_escaped: vec![false; maps.len()],
    };
    let mut entry = State {
        frames: vec![Frame::new(0, usize::MAX, false)],
    };
    if opts.entry_ctx {
        entry.set(1, Reg::Ctx { off: 0 });
    }
    a.work.push((0, entry));
    let mut gave_up = false;
    'paths: while let Some((mut pc, mut st)) = a.work.pop() {
        // Instructions since this path last stored a state (a new path stores at once).
        let mut since = STORE_EVERY;
        loop {
            a.processed += 1;
            if a.processed > opts.limit {
                gave_up = true;
                break 'paths;
            }
            if pc >= n {
                continue 'paths;
            }
            if a.prune[pc] {
                let store = a.loop_head[pc] || since >= STORE_EVERY;
                match a.visit(pc, st, store) {
                    Some(s) => st = s,
                    None => continue 'paths,
                }
                if store {
                    since = 0;
                }
            }
            since += 1;
            match a.step(pc, &mut st) {
                Some(next) => pc = next,
                None => continue 'paths,
            }
        }
    }
    let mut facts = vec![Fact::default(); n];
    let mut unproven = Vec::new();
    let mut accesses = Vec::new();
    for (pc, acc) in a.acc.iter().enumerate() {
        let Some(insn) = &insns[pc] else { continue };
        let is_access = matches!(
            insn,
            Insn::Load { .. } | Insn::Store { .. } | Insn::Atomic { .. }
        );
        let is_call = matches!(insn, Insn::Call(CallTarget::Helper(_)));
        if is_access {
            accesses.push(pc);
        }
        if !is_access && !is_call {
            continue;
        }
        let proven = !gave_up && acc.reached && acc.ok;
        let f = &mut facts[pc];
        if is_access {
            f.proven = proven;
            f.region = if proven && !acc.mixed {
                acc.region
            } else {
                None
            };
        } else if !gave_up && acc.reached {
            f.proven = acc.ok;
            f.call_map = acc.map.flatten();
            f.update_in_place = matches!(insn, Insn::Call(CallTarget::Helper(id)) if *id as i64 == crate::helpers::MAP_UPDATE_ELEM)
                && f.call_map.is_some_and(|m| {
                    !acc.value_ptr_kept
                        && !a.value_ptr_escaped.get(m as usize).copied().unwrap_or(true)
                });
            f.proven_args = acc.args_ok & acc.args_ptr;
            f.ptr_args = acc.args_ptr;
            if let Insn::Call(CallTarget::Helper(id)) = insn {
                if let Some(p) = protos::proto(*id) {
                    for (i, a) in p.args.iter().enumerate() {
                        if *a == Arg::Ctx {
                            f.ctx_args |= 1 << i;
                        }
                    }
                }
            }
        }
        // Helper calls with pointer arguments not all proven are listed too.
        let checked_call = match insn {
            Insn::Call(CallTarget::Helper(id)) => {
                protos::proto(*id).is_some_and(|p| p.args.iter().any(|a| *a != Arg::Any))
            }
            _ => false,
        };
        if (is_access || checked_call) && !proven {
            let text = if gave_up {
                format!(
                    "{pc}: {}\n; not proven: the analysis gave up after {} instructions",
                    isa::format_insn(insn, pc),
                    opts.limit
                )
            } else if !acc.reached {
                format!(
                    "{pc}: {}\n; not proven: no path from the entry reaches it",
                    isa::format_insn(insn, pc)
                )
            } else {
                acc.why.clone().unwrap_or_default()
            };
            unproven.push((pc, text));
        }
    }
    Analysis {
        facts: facts.into(),
        accesses,
        unproven,
        processed: a.processed.min(opts.limit),
        gave_up,
        tail_call_unproven_ctx: a.tail_ctx_unproven,
        entry_ctx: opts.entry_ctx,
        insns: Default::default(),
        maps: Default::default(),
    }
}

/// Slots where states are compared with those seen before: jump targets, the slot
/// after a conditional jump or a call, and bpf_loop calls (callbacks return there).
fn prune_points(insns: &[Option<Insn>]) -> Vec<bool> {
    let n = insns.len();
    let mut p = vec![false; n];
    for (pc, insn) in insns.iter().enumerate() {
        let Some(insn) = insn else { continue };
        match insn {
            Insn::Ja { .. } | Insn::Jmp { .. } => {
                if let Some(t) = insn.jump_target(pc) {
                    if (0..n as i64).contains(&t) {
                        p[t as usize] = true;
                    }
                }
                if insn.is_cond_branch() && pc + 1 < n {
                    p[pc + 1] = true;
                }
            }
            Insn::Call(c) => {
                if pc + 1 < n {
                    p[pc + 1] = true;
                }
                if is_callback_helper(c) {
                    p[pc] = true;
                }
            }
            _ => {}
        }
    }
    p
}

/// bpf_loop and bpf_for_each_map_elem: helpers whose callback returns to the call.
fn is_callback_helper(c: &CallTarget) -> bool {
    *c == CallTarget::Helper(crate::helpers::BPF_LOOP as i32)
        || *c == CallTarget::Helper(crate::helpers::FOR_EACH_MAP_ELEM as i32)
}

/// Where states are always stored: targets of backward jumps, bpf_loop calls
/// (callbacks return there), and slots more than one path reaches (merge points).
fn loop_heads(insns: &[Option<Insn>]) -> Vec<bool> {
    let n = insns.len();
    let mut preds = vec![0u8; n];
    let mut h = vec![false; n];
    for (pc, insn) in insns.iter().enumerate() {
        let Some(insn) = insn else { continue };
        let next = pc + insn.slots();
        if !matches!(insn, Insn::Ja { .. } | Insn::Exit) && next < n {
            preds[next] = preds[next].saturating_add(1);
        }
        if insn.is_branch() {
            if let Some(t) = insn.jump_target(pc) {
                if (0..n as i64).contains(&t) {
                    let t = t as usize;
                    preds[t] = preds[t].saturating_add(1);
                    if t <= pc {
                        h[t] = true;
                    }
                }
            }
        }
        if matches!(insn, Insn::Call(c) if is_callback_helper(c)) {
            h[pc] = true;
        }
    }
    for (pc, p) in preds.iter().enumerate() {
        if *p >= 2 {
            h[pc] = true;
        }
    }
    h
}

/// Registers live at the start of each slot (bit r), within each function: a dead
/// register's value cannot matter, so pruning ignores it.
fn liveness(insns: &[Option<Insn>]) -> Vec<u16> {
    let n = insns.len();
    let mut live = vec![0u16; n];
    let bit = |r: u8| 1u16 << (r & 15);
    let op = |o: &Operand| match o {
        Operand::Reg(r) => bit(*r),
        Operand::Imm(_) => 0,
    };
    const ARGS: u16 = 0b11_1110;
    const CLOBBER: u16 = 0b11_1111;
    let mut changed = true;
    while changed {
        changed = false;
        for pc in (0..n).rev() {
            let Some(insn) = &insns[pc] else { continue };
            let out_of = |t: i64, live: &[u16]| -> u16 {
                if (0..n as i64).contains(&t) {
                    live[t as usize]
                } else {
                    0
                }
            };
            let next = out_of(pc as i64 + 1, &live);
            let (uses, defs, out) = match insn {
                Insn::Alu {
                    op: o, dst, src, ..
                } => {
                    let u = if matches!(o, AluOp::Mov | AluOp::MovSx(_)) {
                        0
                    } else {
                        bit(*dst)
                    };
                    (u | op(src), bit(*dst), next)
                }
                Insn::End { dst, .. } => (bit(*dst), bit(*dst), next),
                Insn::Ja { .. } => (0, 0, out_of(insn.jump_target(pc).unwrap_or(-1), &live)),
                Insn::Jmp { dst, src, .. } => (
                    bit(*dst) | op(src),
                    0,
                    next | out_of(insn.jump_target(pc).unwrap_or(-1), &live),
                ),
                Insn::Call(_) => (ARGS, CLOBBER, next),
                Insn::Exit => (1, 0, 0),
                Insn::Load { dst, src, .. } => (bit(*src), bit(*dst), next),
                Insn::Store { dst, src, .. } => (bit(*dst) | op(src), 0, next),
                Insn::Atomic {
                    dst,
                    src,
                    fetch,
                    op: aop,
                    ..
                } => {
                    let cmp = *aop == isa::AtomicOp::CmpXchg;
                    let u = bit(*dst) | bit(*src) | if cmp { 1 } else { 0 };
                    let d = if cmp {
                        1
                    } else if *fetch {
                        bit(*src)
                    } else {
                        0
                    };
                    (u, d, next)
                }
                Insn::LdImm64 { dst, .. } => (0, bit(*dst), out_of(pc as i64 + 2, &live)),
                Insn::LdPacket { .. } => (CLOBBER, 1, next),
            };
            let v = uses | (out & !defs) | bit(10);
            if v != live[pc] {
                live[pc] = v;
                changed = true;
            }
        }
    }
    live
}

/// The result of checking one access.
type Checked = Result<Region, String>;

fn neg(s: &Scalar) -> Scalar {
    if let Some(c) = s.as_const() {
        return Scalar::constant((c as i64).wrapping_neg() as u64);
    }
    match (s.smin.checked_neg(), s.smax.checked_neg()) {
        (Some(hi), Some(lo)) => bounds::range(lo, hi),
        _ => Scalar::unknown(),
    }
}

fn add(a: &Scalar, b: &Scalar) -> Scalar {
    bounds::alu(AluOp::Add, Width::W64, a, b)
}

impl Analyzer<'_> {
    fn fresh(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    fn map(&self, m: u32) -> Option<&MapDesc> {
        self.maps.get(m as usize)
    }

    /// Live registers of each frame of `st` at `pc`.
    fn live_masks(&self, pc: usize, st: &State) -> Vec<u16> {
        let k = st.frames.len();
        let mut v = vec![0u16; k];
        v[k - 1] = self.live[pc];
        for i in (0..k - 1).rev() {
            let child = &st.frames[i + 1];
            let at = self.live.get(child.ret_pc).copied().unwrap_or(u16::MAX);
            v[i] = if child.callback { at } else { at & !0b11_1111 } | (1 << 10);
        }
        v
    }

    /// Pruning at `pc`: `None` when a state seen before holds `st`.
    fn visit(&mut self, pc: usize, st: State, store: bool) -> Option<State> {
        let live = self.live_masks(pc, &st);
        if self.visited[pc]
            .iter()
            .any(|old| state::includes(old, &st, &live))
        {
            return None;
        }
        if !store || self.stored >= MAX_STORED {
            return Some(st);
        }
        self.stored += 1;
        let seen = &mut self.visited[pc];
        if seen.len() >= JOIN_AFTER {
            // Join into the last state of the same call chain and explore the join.
            if let Some(i) = seen.iter().rposition(|o| {
                o.frames.len() == st.frames.len()
                    && o.frames
                        .iter()
                        .zip(&st.frames)
                        .all(|(a, b)| a.ret_pc == b.ret_pc && a.callback == b.callback)
            }) {
                let hard = seen.len() >= WIDEN_AFTER;
                let mut id = self.next_id;
                if let Some(w) = state::widen(&seen[i], &st, &mut id, hard) {
                    self.next_id = id;
                    seen.push(w.clone());
                    return Some(w);
                }
            }
        }
        seen.push(st.clone());
        Some(st)
    }

    fn record_access(&mut self, pc: usize, st: &State, r: &Checked) {
        let acc = &mut self.acc[pc];
        if !acc.reached {
            acc.reached = true;
            acc.ok = true;
        }
        match r {
            Ok(region) => match acc.region {
                None => acc.region = Some(*region),
                Some(x) if x != *region => acc.mixed = true,
                _ => {}
            },
            Err(why) => {
                acc.ok = false;
                if acc.why.is_none() {
                    let insn = self.insns[pc].as_ref().expect("an instruction");
                    acc.why = Some(format!(
                        "{pc}: {}\n; not proven: {why}\n; {}",
                        isa::format_insn(insn, pc),
                        st.to_string().replace('\n', "\n; ")
                    ));
                }
            }
        }
    }

    /// Checks `[base + off, base + off + size)` for an access of up to `size` bytes.
    fn check(&self, st: &State, base: &Reg, off: i64, size: u64, write: bool) -> Checked {
        let size = size as i128;
        let off = off as i128;
        match base {
            Reg::Stack { frame, off: o } => {
                if *frame as usize >= st.frames.len() {
                    return Err("pointer into a frame that returned".into());
                }
                let lo = o.smin as i128 + off;
                let hi = o.smax as i128 + off + size;
                if lo >= -(FRAME_BYTES as i128) && hi <= 0 {
                    Ok(Region::Stack)
                } else {
                    Err(format!(
                        "stack access [{lo}, {hi}) outside the frame [-{FRAME_BYTES}, 0)"
                    ))
                }
            }
            Reg::Ctx { off: c } => {
                let lo = *c as i128 + off;
                if write {
                    Err("the context is read-only".into())
                } else if lo >= 0 && lo + size <= XdpMd::SIZE as i128 {
                    Ok(Region::Ctx)
                } else {
                    Err(format!("context access at {lo} size {size}"))
                }
            }
            Reg::Packet {
                fixed, var, range, ..
            } => {
                if var.umax > MAX_PACKET_OFF * 16 {
                    return Err("packet pointer with an unbounded offset".into());
                }
                let lo = var.umin as i128 + *fixed as i128 + off;
                let hi = *fixed as i128 + off + size;
                if lo >= 0 && hi <= *range as i128 {
                    Ok(Region::Packet)
                } else {
                    Err(format!(
                        "packet access [{}, {hi}) beyond the proven range {range}",
                        *fixed as i128 + off
                    ))
                }
            }
            Reg::MapValue { map, off: o } => {
                let Some(m) = self.map(*map) else {
                    return Err("unknown map".into());
                };
                if write && m.read_only {
                    return Err("write into a read-only map".into());
                }
                let lo = o.smin as i128 + off;
                let hi = o.smax as i128 + off + size;
                if lo >= 0 && hi <= m.value_size as i128 {
                    Ok(Region::MapValue { map: *map })
                } else {
                    Err(format!(
                        "map value access [{lo}, {hi}) outside value_size {}",
                        m.value_size
                    ))
                }
            }
            Reg::Ring {
                size: n, off: o, ..
            } => {
                let lo = o.smin as i128 + off;
                let hi = o.smax as i128 + off + size;
                if lo >= 0 && hi <= *n as i128 {
                    Ok(Region::Ring)
                } else {
                    Err(format!("ring record access [{lo}, {hi}) outside size {n}"))
                }
            }
            Reg::MapValueOrNull { .. } | Reg::RingOrNull { .. } => {
                Err("pointer that may be NULL".into())
            }
            other => Err(format!("access through {other}")),
        }
    }

    /// The effect on tracked stack slots of a write of up to `size` bytes at
    /// `base + off` that `checked` describes.
    fn clobber(st: &mut State, base: &Reg, off: i64, size: u64, checked: &Checked) {
        match (base, checked) {
            (Reg::Stack { frame, off: o }, Ok(_)) => {
                let lo = (o.smin as i128 + off as i128 + FRAME_BYTES as i128) as usize;
                let hi =
                    (o.smax as i128 + off as i128 + size as i128 + FRAME_BYTES as i128) as usize;
                st.frames[*frame as usize].clear_slots(lo / 8, hi.div_ceil(8).min(SLOTS));
            }
            (_, Ok(Region::Stack)) => st.clobber_all_stacks(),
            (_, Ok(_)) => {}
            (_, Err(_)) => st.clobber_all_stacks(),
        }
    }

    fn operand(st: &State, src: &Operand) -> Reg {
        match src {
            Operand::Imm(i) => Reg::konst(*i as i64 as u64),
            Operand::Reg(r) => st.reg(*r).clone(),
        }
    }

    /// Executes the instruction at `pc` on `st`; returns the next slot, or None when
    /// the path ends. Other successors go to the work list.
    fn step(&mut self, pc: usize, st: &mut State) -> Option<usize> {
        let insn = self.insns[pc]?;
        match insn {
            Insn::Alu {
                width,
                op,
                dst,
                src,
            } => {
                let s = Self::operand(st, &src);
                let d = st.reg(dst).clone();
                let v = self.alu(op, width, d, s);
                st.set(dst, v);
                Some(pc + 1)
            }
            Insn::End { kind, bits, dst } => {
                let d = st.reg(dst).as_scalar();
                st.set(dst, Reg::Scalar(bounds::endian(kind, bits, &d)));
                Some(pc + 1)
            }
            Insn::Ja { off } => Some((pc as i64 + 1 + off as i64) as usize),
            Insn::Jmp {
                width,
                cond,
                dst,
                src,
                off,
            } => self.branch(pc, st, width, cond, dst, src, off),
            Insn::Call(CallTarget::Helper(id)) => self.helper(pc, st, id),
            Insn::Call(CallTarget::Local(rel)) => {
                let k = st.frames.len();
                if k >= MAX_FRAMES {
                    // The run stops with CallDepth here.
                    return None;
                }
                let args: Vec<Reg> = (1..=5).map(|r| st.reg(r).clone()).collect();
                let mut f = Frame::new(k, pc + 1, false);
                for (i, a) in args.into_iter().enumerate() {
                    f.regs[i + 1] = a;
                }
                st.frames.push(f);
                Some((pc as i64 + 1 + rel as i64) as usize)
            }
            Insn::Call(CallTarget::Kfunc(_)) => None,
            Insn::Exit => {
                if st.frames.len() == 1 {
                    return None;
                }
                let callee = st.frames.pop().expect("two frames");
                let k = st.frames.len();
                let next = if callee.callback {
                    callee.ret_pc
                } else {
                    let f = st.cur_mut();
                    f.regs[0] = callee.regs[0].clone();
                    for r in 1..=5 {
                        f.regs[r] = Reg::Uninit;
                    }
                    callee.ret_pc
                };
                // Pointers into the frame that returned mean nothing now.
                st.for_each_reg(|r| {
                    if let Reg::Stack { frame, .. } = r {
                        if *frame as usize >= k {
                            *r = Reg::unknown();
                        }
                    }
                });
                Some(next)
            }
            Insn::Load {
                size,
                sign_extend,
                dst,
                src,
                off,
            } => {
                let base = st.reg(src).clone();
                let n = size.bytes();
                let r = self.check(st, &base, off as i64, n as u64, false);
                self.record_access(pc, st, &r);
                let v = match (&base, &r) {
                    (Reg::Stack { frame, off: o }, Ok(_)) => {
                        let at = o.as_const().map(|c| c as i64 + off as i64);
                        Self::stack_load(st, *frame, at, n, sign_extend)
                    }
                    (Reg::Ctx { off: c }, Ok(_)) if n == 4 && !sign_extend => {
                        match c + off as i64 {
                            0 => Reg::Packet {
                                meta: false,
                                id: 0,
                                fixed: 0,
                                var: Scalar::constant(0),
                                range: 0,
                            },
                            4 => Reg::PacketEnd,
                            8 => Reg::Packet {
                                meta: true,
                                id: 0,
                                fixed: 0,
                                var: Scalar::constant(0),
                                range: 0,
                            },
                            _ => Reg::Scalar(bounds::loaded(n, false)),
                        }
                    }
                    _ => Reg::Scalar(bounds::loaded(n, sign_extend)),
                };
                st.set(dst, v);
                Some(pc + 1)
            }
            Insn::Store {
                size,
                dst,
                off,
                src,
            } => {
                let base = st.reg(dst).clone();
                let n = size.bytes();
                let value = Self::operand(st, &src);
                let r = self.check(st, &base, off as i64, n as u64, true);
                self.record_access(pc, st, &r);
                Self::clobber(st, &base, off as i64, n as u64, &r);
                let spilled = matches!(
                    (&base, &r, n),
                    (Reg::Stack { off: o, .. }, Ok(_), 8)
                        if o.as_const().is_some_and(|c| (c as i64 + off as i64) % 8 == 0)
                );
                if !spilled {
                    self.escape(&value);
                }
                if let (Reg::Stack { frame, off: o }, Ok(_), 8) = (&base, &r, n) {
                    if let Some(c) = o.as_const() {
                        let at = c as i64 + off as i64;
                        if at % 8 == 0 {
                            let slot = ((at + FRAME_BYTES) / 8) as usize;
                            let v = match value {
                                Reg::Uninit => Reg::unknown(),
                                v => v,
                            };
                            st.frames[*frame as usize].set_spill(slot, v);
                        }
                    }
                }
                Some(pc + 1)
            }
            Insn::Atomic {
                size,
                op,
                fetch,
                dst,
                src,
                off,
            } => {
                let base = st.reg(dst).clone();
                let n = size.bytes();
                let r = self.check(st, &base, off as i64, n as u64, true);
                self.record_access(pc, st, &r);
                Self::clobber(st, &base, off as i64, n as u64, &r);
                let stored = st.reg(src).clone();
                self.escape(&stored);
                let v = Reg::Scalar(bounds::loaded(n, false));
                if op == isa::AtomicOp::CmpXchg {
                    st.set(0, v);
                } else if fetch {
                    st.set(src, v);
                }
                Some(pc + 1)
            }
            Insn::LdImm64 {
                dst,
                src,
                imm,
                next_imm,
            } => {
                let v = match src {
                    0 => Reg::konst((next_imm as u32 as u64) << 32 | imm as u32 as u64),
                    isa::opcode::BPF_PSEUDO_MAP_IDX => Reg::MapHandle { map: imm as u32 },
                    isa::opcode::BPF_PSEUDO_MAP_IDX_VALUE => match self.map(imm as u32) {
                        Some(m) if m.map_type == types::ARRAY => Reg::MapValue {
                            map: imm as u32,
                            off: Scalar::constant(next_imm as u32 as u64),
                        },
                        _ => Reg::unknown(),
                    },
                    isa::opcode::BPF_PSEUDO_FUNC => Reg::Func {
                        pc: (pc as i64 + 1 + imm as i64) as u32,
                    },
                    _ => Reg::unknown(),
                };
                st.set(dst, v);
                Some(pc + 2)
            }
            Insn::LdPacket { .. } => None,
        }
    }

    fn stack_load(st: &State, frame: u8, at: Option<i64>, n: usize, signed: bool) -> Reg {
        let fallback = Reg::Scalar(bounds::loaded(n, signed));
        let Some(at) = at else { return fallback };
        let slot = ((at + FRAME_BYTES).div_euclid(8)) as usize;
        let within = (at + FRAME_BYTES).rem_euclid(8) as usize;
        if within + n > 8 || slot >= SLOTS {
            return fallback;
        }
        match st.frames[frame as usize].spill(slot) {
            Some(r) if n == 8 && within == 0 => r.clone(),
            Some(Reg::Scalar(s)) => match s.as_const() {
                Some(v) => {
                    let bits = v >> (8 * within);
                    let v = match (n, signed) {
                        (8, _) => bits,
                        (n, false) => bits & ((1u64 << (8 * n)) - 1),
                        (n, true) => {
                            let sh = 64 - 8 * n as u32;
                            (((bits << sh) as i64) >> sh) as u64
                        }
                    };
                    Reg::konst(v)
                }
                None => fallback,
            },
            _ => fallback,
        }
    }

    fn alu(&mut self, op: AluOp, width: Width, d: Reg, s: Reg) -> Reg {
        if op == AluOp::Mov && width == Width::W64 {
            return s;
        }
        if width == Width::W64 && (d.is_pointer() || s.is_pointer()) {
            return match (op, &d, &s) {
                (AluOp::Add, p, Reg::Scalar(x)) if p.is_pointer() => self.ptr_add(p, x),
                (AluOp::Add, Reg::Scalar(x), p) if p.is_pointer() => self.ptr_add(p, x),
                (AluOp::Add, p, Reg::Uninit) if p.is_pointer() => {
                    self.ptr_add(p, &Scalar::unknown())
                }
                (AluOp::Sub, p, Reg::Scalar(x)) if p.is_pointer() => self.ptr_add(p, &neg(x)),
                _ => Reg::unknown(),
            };
        }
        if op == AluOp::Neg {
            return Reg::Scalar(bounds::alu(op, width, &d.as_scalar(), &Scalar::unknown()));
        }
        Reg::Scalar(bounds::alu(op, width, &d.as_scalar(), &s.as_scalar()))
    }

    fn ptr_add(&mut self, p: &Reg, x: &Scalar) -> Reg {
        const LIMIT: i64 = 1 << 29;
        match p {
            Reg::Ctx { off } => match x.as_const() {
                Some(c) if (c as i64).unsigned_abs() < LIMIT as u64 => Reg::Ctx {
                    off: off + c as i64,
                },
                _ => Reg::unknown(),
            },
            Reg::Stack { frame, off } => Reg::Stack {
                frame: *frame,
                off: add(off, x),
            },
            Reg::MapValue { map, off } => Reg::MapValue {
                map: *map,
                off: add(off, x),
            },
            Reg::Ring { id, size, off } => Reg::Ring {
                id: *id,
                size: *size,
                off: add(off, x),
            },
            Reg::Packet {
                meta,
                id,
                fixed,
                var,
                range,
            } => {
                if let Some(c) = x.as_const() {
                    let f = fixed.wrapping_add(c as i64);
                    if f.unsigned_abs() < LIMIT as u64 {
                        return Reg::Packet {
                            meta: *meta,
                            id: *id,
                            fixed: f,
                            var: *var,
                            range: *range,
                        };
                    }
                    return Reg::unknown();
                }
                if x.smin >= 0 && x.umax <= MAX_PACKET_OFF && var.umax <= MAX_PACKET_OFF * 8 {
                    let v = add(var, x);
                    let id = self.fresh();
                    return Reg::Packet {
                        meta: *meta,
                        id,
                        fixed: *fixed,
                        var: v,
                        range: 0,
                    };
                }
                Reg::unknown()
            }
            _ => Reg::unknown(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn branch(
        &mut self,
        pc: usize,
        st: &mut State,
        width: Width,
        cond: JmpCond,
        dst: u8,
        src: Operand,
        off: i16,
    ) -> Option<usize> {
        let target = (pc as i64 + 1 + off as i64) as usize;
        let d = st.reg(dst).clone();
        let s = Self::operand(st, &src);
        let fall = pc + 1;
        // NULL tests of lookup and reserve results.
        if width == Width::W64 && matches!(cond, JmpCond::Eq | JmpCond::Ne) {
            let null_test = match (&d, &s) {
                (Reg::MapValueOrNull { .. } | Reg::RingOrNull { .. }, Reg::Scalar(z))
                    if z.as_const() == Some(0) =>
                {
                    Some(d.clone())
                }
                _ => None,
            };
            if let Some(p) = null_test {
                let mut other = st.clone();
                let (null_st, nonnull_st) = if cond == JmpCond::Eq {
                    (&mut other, &mut *st)
                } else {
                    (&mut *st, &mut other)
                };
                mark_null(null_st, &p, true);
                mark_null(nonnull_st, &p, false);
                // `st` continues on the fall-through path.
                self.work.push((target, other));
                return Some(fall);
            }
        }
        // Packet range tests.
        if width == Width::W64 {
            if let Some((taken_ok, p, end_is_data)) = packet_test(cond, &d, &s) {
                let mut other = st.clone();
                let ok_state = if taken_ok { &mut other } else { &mut *st };
                mark_range(ok_state, &p, end_is_data);
                self.work.push((target, other));
                return Some(fall);
            }
        }
        if d.is_pointer() || s.is_pointer() {
            self.work.push((target, st.clone()));
            return Some(fall);
        }
        let (ds, ss) = (d.as_scalar(), s.as_scalar());
        match bounds::outcome(cond, width, &ds, &ss) {
            Some(true) => return Some(target),
            Some(false) => return Some(fall),
            None => {}
        }
        let set = |st: &mut State, dv: Scalar, sv: Scalar| {
            st.set(dst, Reg::Scalar(dv));
            if let Operand::Reg(r) = src {
                if r != dst {
                    st.set(r, Reg::Scalar(sv));
                }
            }
        };
        if let Some((dt, stk)) = bounds::refine(cond, width, true, &ds, &ss) {
            let mut other = st.clone();
            set(&mut other, dt, stk);
            self.work.push((target, other));
        }
        match bounds::refine(cond, width, false, &ds, &ss) {
            Some((df, sf)) => {
                set(st, df, sf);
                Some(fall)
            }
            None => None,
        }
    }

    fn helper(&mut self, pc: usize, st: &mut State, id: i32) -> Option<usize> {
        let Some(proto) = protos::proto(id) else {
            // libbpf's poison call: the run stops there.
            return None;
        };
        let map = match st.reg(1) {
            Reg::MapHandle { map } => Some(*map),
            _ => None,
        };
        let mut ok = 0u8;
        let mut ptr = 0u8;
        let mut why = None;
        let mut releases = Vec::new();
        for (i, arg) in proto.args.iter().enumerate() {
            let r = i as u8 + 1;
            let v = st.reg(r).clone();
            let bit = 1u8 << i;
            let res: Result<(), String> = match arg {
                Arg::Any => continue,
                Arg::Map => match v {
                    Reg::MapHandle { .. } => Ok(()),
                    _ => Err(format!("R{r} is not a map: {v}")),
                },
                Arg::Ctx => match v {
                    Reg::Ctx { off: 0 } => Ok(()),
                    _ => Err(format!("R{r} is not the context: {v}")),
                },
                Arg::Callback => match v {
                    Reg::Func { .. } => Ok(()),
                    _ => Err(format!("R{r} is not a function: {v}")),
                },
                Arg::RingRecord => match v {
                    Reg::Ring { id, off, .. } if off.as_const() == Some(0) => {
                        releases.push(id);
                        Ok(())
                    }
                    _ => Err(format!("R{r} is not a reserved record: {v}")),
                },
                Arg::Read(size) | Arg::Write(size) => {
                    let write = matches!(arg, Arg::Write(_));
                    if !write {
                        // The helper may copy spilled value pointers out of this frame.
                        if let Reg::Stack { frame, .. } = &v {
                            let spills: Vec<Reg> = st.frames[*frame as usize]
                                .spills
                                .iter()
                                .map(|(_, r)| r.clone())
                                .collect();
                            for r in &spills {
                                self.escape(r);
                            }
                        }
                    }
                    let res = match self.arg_size(st, *size, map) {
                        Some(0) => Ok(Region::Stack),
                        Some(n) => self.check(st, &v, 0, n, write),
                        None => Err(format!("R{r}'s size is not bounded")),
                    };
                    if write {
                        match self.arg_size(st, *size, map) {
                            Some(0) => {}
                            Some(n) => Self::clobber(st, &v, 0, n, &res),
                            None => st.clobber_all_stacks(),
                        }
                    }
                    res.map(|_| ())
                }
            };
            ptr |= bit;
            match res {
                Ok(()) => ok |= bit,
                Err(e) => {
                    if why.is_none() {
                        why = Some(e);
                    }
                }
            }
        }
        self.record_call(pc, st, map, ok, ptr, why);
        if id as i64 == crate::helpers::MAP_UPDATE_ELEM {
            if let Some(m) = map {
                let kept = st.frames.iter().any(|f| {
                    f.regs[6..=9].iter().any(|r| r.points_into_map(m))
                        || f.spills.iter().any(|(_, r)| r.points_into_map(m))
                });
                self.acc[pc].value_ptr_kept |= kept;
            }
        }
        if id as i64 == crate::helpers::TAIL_CALL && ok & 1 == 0 {
            self.tail_ctx_unproven = true;
        }
        for rid in releases {
            st.for_each_reg(|r| match r {
                Reg::Ring { id, .. } | Reg::RingOrNull { id, .. } if *id == rid => {
                    *r = Reg::unknown()
                }
                _ => {}
            });
        }
        if id as i64 == crate::helpers::BPF_LOOP {
            if let Reg::Func { pc: cb } = st.reg(2).clone() {
                if st.frames.len() < MAX_FRAMES {
                    let mut cs = st.clone();
                    let k = cs.frames.len();
                    let mut f = Frame::new(k, pc, true);
                    f.regs[1] = Reg::Scalar(bounds::range(0, 1 << 23));
                    f.regs[2] = cs.reg(3).clone();
                    cs.frames.push(f);
                    self.work.push((cb as usize, cs));
                }
            }
        }
        if id as i64 == crate::helpers::FOR_EACH_MAP_ELEM {
            // The callback runs in a frame below this one, once per element: r1 the
            // map, r2 the key (a read-only copy, not followed: accesses through it
            // keep their run-time checks), r3 the element's value, r4 callback_ctx.
            if let (Reg::Func { pc: cb }, Reg::MapHandle { map: m }) =
                (st.reg(2).clone(), st.reg(1).clone())
            {
                let walkable = self
                    .map(m)
                    .is_some_and(|d| crate::helpers::foreach::walkable(d.map_type));
                if walkable && st.frames.len() < MAX_FRAMES {
                    let mut cs = st.clone();
                    let k = cs.frames.len();
                    let mut f = Frame::new(k, pc, true);
                    f.regs[1] = Reg::MapHandle { map: m };
                    f.regs[2] = Reg::unknown();
                    f.regs[3] = Reg::MapValue {
                        map: m,
                        off: Scalar::constant(0),
                    };
                    f.regs[4] = cs.reg(3).clone();
                    cs.frames.push(f);
                    self.work.push((cb as usize, cs));
                }
            }
        }
        if id == isa::helpers::func::timer_set_callback {
            // A bpf_timer callback runs later, from the timer driver, as an entry of
            // its own: r1 the timer's map, r2 its key (not followed), r3 its value.
            if let (Reg::Func { pc: cb }, Reg::MapValue { map, .. }) =
                (st.reg(2).clone(), st.reg(1).clone())
            {
                let mut cs = State {
                    frames: vec![Frame::new(0, usize::MAX, false)],
                };
                cs.set(1, Reg::MapHandle { map });
                cs.set(2, Reg::unknown());
                cs.set(
                    3,
                    Reg::MapValue {
                        map,
                        off: Scalar::constant(0),
                    },
                );
                self.work.push((cb as usize, cs));
            }
        }
        if proto.changes_packet {
            st.for_each_reg(|r| {
                if matches!(r, Reg::Packet { .. } | Reg::PacketEnd) {
                    *r = Reg::unknown();
                }
            });
        }
        let r0 = match proto.ret {
            Ret::Integer => Reg::unknown(),
            Ret::MapValueOrNull => match map.and_then(|m| self.map(m).map(|d| (m, d))) {
                Some((m, d)) if has_values(d.map_type) => Reg::MapValueOrNull {
                    map: m,
                    id: self.fresh(),
                    off: Scalar::constant(0),
                },
                _ => Reg::unknown(),
            },
            Ret::RingRecordOrNull => {
                let size = st.reg(2).as_scalar().as_const();
                match (map.and_then(|m| self.map(m)), size) {
                    (Some(d), Some(n))
                        if d.map_type == types::RINGBUF && n <= d.ring_size as u64 =>
                    {
                        Reg::RingOrNull {
                            id: self.fresh(),
                            size: n as u32,
                        }
                    }
                    _ => Reg::unknown(),
                }
            }
        };
        let f = st.cur_mut();
        f.regs[0] = r0;
        for r in 1..=5 {
            f.regs[r] = Reg::Uninit;
        }
        Some(pc + 1)
    }

    /// The most bytes a sized argument can name, when bounded (below 4 GiB).
    fn arg_size(&self, st: &State, size: Size, map: Option<u32>) -> Option<u64> {
        match size {
            Size::Key => map.and_then(|m| self.map(m)).map(|d| d.key_size as u64),
            Size::Value => map.and_then(|m| self.map(m)).map(|d| d.value_size as u64),
            Size::Fixed(n) => Some(n as u64),
            Size::Reg { r, low32 } => {
                let s = st.reg(r).as_scalar();
                if s.umax <= u32::MAX as u64 {
                    Some(s.umax)
                } else if low32 && s.u32_max < u32::MAX {
                    Some(s.u32_max as u64)
                } else {
                    None
                }
            }
        }
    }

    /// `v` was stored where the analysis does not follow it: if it points into a map's
    /// values, that map's updates may no longer write in place.
    fn escape(&mut self, v: &Reg) {
        if let Reg::MapValue { map, .. } | Reg::MapValueOrNull { map, .. } = v {
            if let Some(e) = self.value_ptr_escaped.get_mut(*map as usize) {
                *e = true;
            }
        }
    }

    fn record_call(
        &mut self,
        pc: usize,
        st: &State,
        map: Option<u32>,
        ok: u8,
        ptr: u8,
        why: Option<String>,
    ) {
        let acc = &mut self.acc[pc];
        if !acc.reached {
            acc.reached = true;
            acc.ok = true;
            acc.args_ok = 0xff;
            acc.map = Some(map);
        }
        if acc.map != Some(map) {
            acc.map = Some(None);
        }
        acc.args_ok &= ok;
        acc.args_ptr |= ptr;
        if ok & ptr != ptr {
            acc.ok = false;
            if acc.why.is_none() {
                let insn = self.insns[pc].as_ref().expect("an instruction");
                acc.why = Some(format!(
                    "{pc}: {}\n; not proven: {}\n; {}",
                    isa::format_insn(insn, pc),
                    why.unwrap_or_default(),
                    st.to_string().replace('\n', "\n; ")
                ));
            }
        }
    }
}

/// Map types whose lookups return a pointer into the map's value area.
fn has_values(t: u32) -> bool {
    matches!(
        t,
        types::HASH
            | types::ARRAY
            | types::PERCPU_HASH
            | types::PERCPU_ARRAY
            | types::LRU_HASH
            | types::LRU_PERCPU_HASH
            | types::LPM_TRIE
    )
}

/// After a NULL test of `p`: every copy (same id) is NULL or a valid pointer.
fn mark_null(st: &mut State, p: &Reg, is_null: bool) {
    let want = match p {
        Reg::MapValueOrNull { id, .. } | Reg::RingOrNull { id, .. } => *id,
        _ => return,
    };
    st.for_each_reg(|r| {
        let new = match r {
            Reg::MapValueOrNull { map, id, off } if *id == want => {
                if is_null {
                    Reg::konst(0)
                } else {
                    Reg::MapValue {
                        map: *map,
                        off: *off,
                    }
                }
            }
            Reg::RingOrNull { id, size } if *id == want => {
                if is_null {
                    Reg::konst(0)
                } else {
                    Reg::Ring {
                        id: *id,
                        size: *size,
                        off: Scalar::constant(0),
                    }
                }
            }
            _ => return,
        };
        *r = new;
    });
}

/// A comparison of a packet pointer with packet_end (or a meta pointer with data):
/// `(whether the taken path is the one where the pointer is at most the end, the
/// pointer, whether the end is data)`.
fn packet_test(cond: JmpCond, d: &Reg, s: &Reg) -> Option<(bool, Reg, bool)> {
    use JmpCond::*;
    let is_data = |r: &Reg| {
        matches!(
            r,
            Reg::Packet {
                meta: false,
                id: 0,
                fixed: 0,
                ..
            }
        )
    };
    // (pointer on the left, `ptr cond end`)
    let (ptr, end_is_data, left) = match (d, s) {
        (Reg::Packet { meta: false, .. }, Reg::PacketEnd) => (d, false, true),
        (Reg::PacketEnd, Reg::Packet { meta: false, .. }) => (s, false, false),
        (Reg::Packet { meta: true, .. }, e) if is_data(e) => (d, true, true),
        (e, Reg::Packet { meta: true, .. }) if is_data(e) => (s, true, false),
        _ => return None,
    };
    // The path where ptr <= end: for `ptr > end` / `ptr >= end` the fall-through,
    // for `ptr < end` / `ptr <= end` the taken one; mirrored when the end is on the left.
    let taken_ok = match (cond, left) {
        (Gt | Ge, true) => false,
        (Lt | Le, true) => true,
        (Gt | Ge, false) => true,
        (Lt | Le, false) => false,
        _ => return None,
    };
    Some((taken_ok, ptr.clone(), end_is_data))
}

/// On the path where `p <= end`: every pointer with `p`'s variable part may access
/// up to `p`'s fixed offset.
fn mark_range(st: &mut State, p: &Reg, _end_is_data: bool) {
    let Reg::Packet {
        meta, id, fixed, ..
    } = p
    else {
        return;
    };
    if *fixed <= 0 {
        return;
    }
    let (want_meta, want_id, r) = (*meta, *id, *fixed as u64);
    st.for_each_reg(|x| {
        if let Reg::Packet {
            meta, id, range, ..
        } = x
        {
            if *meta == want_meta && *id == want_id && *range < r {
                *range = r;
            }
        }
    });
}
