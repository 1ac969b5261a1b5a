//! Which memory accesses of a function need no run-time check, proven by a small
//! forward data-flow analysis over the function's control-flow graph.
//!
//! Each register is abstracted as one of:
//! - `Ctx`: the address of `struct xdp_md` (r1 on entry to a program's entry function
//!   as `run` and tail calls enter it: `run` passes the context, and a tail call happens
//!   only with r1 = the context; a bpf-to-bpf call to pc 0 goes to a copy compiled
//!   without this assumption, see `JitObject::compile`);
//! - `Fp(c)`: r10 + c (r10 is read-only);
//! - `Pkt(k)`: `ctx->data + k`, as loaded from the context since the last call;
//! - `End`: `ctx->data_end`, likewise;
//! - `Other`: anything else.
//!
//! plus `proven`: a length N for which the program has tested `data + N <= data_end`
//! (by a 64-bit compare of a `Pkt(N)` register with an `End` register) since the last
//! call. Every helper or bpf-to-bpf call may move the packet, so it forgets all packet
//! facts. An access is safe when it lies inside the current frame (`Fp`), inside the
//! context for a read (`Ctx`), or inside `data .. data + proven` (`Pkt`); these are
//! exactly accesses `Regions::check` accepts, so dropping their checks changes nothing.

use isa::{AluOp, AtomicOp, CallTarget, Insn, JmpCond, Operand, Size, Width};

use crate::interp::STACK_FRAME;
use crate::program::Op;
use crate::xdp::XdpMd;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum V {
    Other,
    Ctx,
    Fp(i64),
    Pkt(i64),
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct St {
    r: [V; 11],
    proven: i64,
}

impl St {
    fn meet(&self, o: &St) -> St {
        St {
            r: std::array::from_fn(|i| {
                if self.r[i] == o.r[i] {
                    self.r[i]
                } else {
                    V::Other
                }
            }),
            proven: self.proven.min(o.proven),
        }
    }

    fn forget_packet(&mut self) {
        for v in self.r.iter_mut() {
            if matches!(v, V::Pkt(_) | V::End) {
                *v = V::Other;
            }
        }
        self.proven = 0;
    }

    fn set(&mut self, reg: u8, v: V) {
        if let Some(slot) = self.r.get_mut(reg as usize) {
            *slot = v;
        }
    }

    fn get(&self, reg: u8) -> V {
        self.r.get(reg as usize).copied().unwrap_or(V::Other)
    }
}

/// Helpers that never move the packet's bounds: map lookup/update/delete, ktime,
/// trace_printk, prandom, smp_processor_id, redirect, csum_diff, redirect_map,
/// get_buff_len, load_bytes and store_bytes (which write inside the packet only).
const PACKET_STILL: &[i64] = &[1, 2, 3, 5, 6, 7, 8, 23, 28, 51, 125, 160, 188, 189, 190];

/// The largest offset tracked (keeps the arithmetic far from overflow).
const LIMIT: i64 = 1 << 20;

fn bounded(v: i64, f: fn(i64) -> V) -> V {
    if v.abs() < LIMIT {
        f(v)
    } else {
        V::Other
    }
}

/// The access an instruction makes: (base register, offset, size, write).
pub(super) fn access(op: &Op) -> Option<(u8, i64, i64, bool)> {
    match op.insn()? {
        Insn::Load { size, src, off, .. } => Some((src, off as i64, size.bytes() as i64, false)),
        Insn::Store { size, dst, off, .. } | Insn::Atomic { size, dst, off, .. } => {
            Some((dst, off as i64, size.bytes() as i64, true))
        }
        Insn::Alu { .. }
        | Insn::End { .. }
        | Insn::Ja { .. }
        | Insn::Jmp { .. }
        | Insn::Call(_)
        | Insn::Exit
        | Insn::LdImm64 { .. }
        | Insn::LdPacket { .. } => None,
    }
}

fn safe(st: &St, op: &Op) -> bool {
    let Some((base, off, size, write)) = access(op) else {
        return false;
    };
    match st.get(base) {
        V::Fp(c) => c + off >= -(STACK_FRAME as i64) && c + off + size <= 0,
        V::Ctx => !write && off >= 0 && off + size <= XdpMd::SIZE as i64,
        V::Pkt(k) => k + off >= 0 && k + off + size <= st.proven,
        _ => false,
    }
}

/// The state after the non-branching instruction `op`.
fn step(st: &mut St, op: &Op) {
    let Some(insn) = op.insn() else {
        return;
    };
    match insn {
        Insn::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst,
            src: Operand::Reg(src),
        } => {
            let v = st.get(src);
            st.set(dst, v);
        }
        Insn::Alu {
            width: Width::W64,
            op: op @ (AluOp::Add | AluOp::Sub),
            dst,
            src: Operand::Imm(imm),
        } => {
            let imm = if op == AluOp::Add {
                imm as i64
            } else {
                (imm as i64).wrapping_neg()
            };
            // Exact sums only (|c|, |imm| < 2^32: no overflow); a sum outside the
            // tracked range is forgotten, never clamped into it.
            let v = match st.get(dst) {
                V::Fp(c) => bounded(c + imm, V::Fp),
                V::Pkt(k) => bounded(k + imm, V::Pkt),
                _ => V::Other,
            };
            st.set(dst, v);
        }
        Insn::Load {
            size: Size::W,
            sign_extend: false,
            dst,
            src,
            off,
        } if st.get(src) == V::Ctx && (off == 0 || off == 4) => {
            st.set(dst, if off == 0 { V::Pkt(0) } else { V::End })
        }
        Insn::Call(target) => {
            for r in 0..=5 {
                st.set(r, V::Other);
            }
            // Helpers known not to move data, data_end or data_meta keep the packet
            // facts; bpf-to-bpf calls, tail calls and every other helper forget them.
            let keeps =
                matches!(target, CallTarget::Helper(id) if PACKET_STILL.contains(&(id as i64)));
            if !keeps {
                st.forget_packet();
            }
        }
        Insn::Atomic { op, fetch, src, .. } => {
            if op == AtomicOp::CmpXchg {
                st.set(0, V::Other);
            } else if fetch || op == AtomicOp::Xchg {
                st.set(src, V::Other);
            }
        }
        // Every other instruction that writes dst makes it unknown.
        Insn::Alu { dst, .. }
        | Insn::End { dst, .. }
        | Insn::Load { dst, .. }
        | Insn::LdImm64 { dst, .. } => st.set(dst, V::Other),
        Insn::LdPacket { .. } => st.set(0, V::Other),
        Insn::Ja { .. } | Insn::Jmp { .. } | Insn::Exit | Insn::Store { .. } => {}
    }
}

/// `Some((taken, fallthrough))` refinements of a conditional jump on packet bounds.
fn refine(st: &St, op: &Op) -> (St, St) {
    let (mut taken, mut fall) = (*st, *st);
    // Only 64-bit register compares.
    let Some(Insn::Jmp {
        width: Width::W64,
        cond,
        dst,
        src: Operand::Reg(src),
        ..
    }) = op.insn()
    else {
        return (taken, fall);
    };
    let (a, b) = (st.get(dst), st.get(src));
    // (edge where "pkt(k) <= end" holds, k)
    let fact = match (cond, a, b) {
        (JmpCond::Gt | JmpCond::Ge, V::Pkt(k), V::End) => Some((false, k)), // a > b / a >= b: fallthrough
        (JmpCond::Lt | JmpCond::Le, V::End, V::Pkt(k)) => Some((false, k)), // end < a / end <= a
        (JmpCond::Le | JmpCond::Lt, V::Pkt(k), V::End) => Some((true, k)),  // a <= end / a < end
        (JmpCond::Ge | JmpCond::Gt, V::End, V::Pkt(k)) => Some((true, k)),  // end >= a / end > a
        _ => None,
    };
    if let Some((on_taken, k)) = fact {
        let s = if on_taken { &mut taken } else { &mut fall };
        if k > s.proven {
            s.proven = k;
        }
    }
    (taken, fall)
}

/// For each slot of `ops[start..end]`, whether its memory access is proven safe.
/// `insns` lists the instruction starts, `leader` marks block starts (relative to
/// `start`), and `entry_ctx` says r1 holds the context on entry.
pub(super) fn safe_accesses(
    ops: &[Op],
    insns: &[usize],
    leader: &[bool],
    start: usize,
    entry_ctx: bool,
) -> Vec<bool> {
    let n = leader.len();
    let mut out = vec![false; n];
    let mut entry = St {
        r: [V::Other; 11],
        proven: 0,
    };
    entry.r[10] = V::Fp(0);
    if entry_ctx {
        entry.r[1] = V::Ctx;
    }
    let mut input: Vec<Option<St>> = vec![None; n];
    input[0] = Some(entry);
    // Index of each instruction start in `insns`.
    let mut idx = vec![usize::MAX; n];
    for (i, &pc) in insns.iter().enumerate() {
        idx[pc - start] = i;
    }
    let merge = |input: &mut Vec<Option<St>>, at: usize, s: St| -> bool {
        match input[at] {
            None => {
                input[at] = Some(s);
                true
            }
            Some(old) => {
                let m = old.meet(&s);
                if m != old {
                    input[at] = Some(m);
                    true
                } else {
                    false
                }
            }
        }
    };
    // Runs the block starting at relative slot `b`; `mark` records safe accesses.
    let run = |b: usize, mut st: St, out: &mut Option<&mut Vec<bool>>| -> Vec<(usize, St)> {
        let mut i = idx[b];
        let mut succ = Vec::new();
        while i < insns.len() {
            let pc = insns[i];
            let op = &ops[pc];
            if let Some(o) = out.as_deref_mut() {
                o[pc - start] = safe(&st, op);
            }
            let insn = op.insn();
            let next = pc + insn.map_or(1, |i| i.slots());
            match insn {
                Some(Insn::Exit) => return succ,
                Some(Insn::Ja { off }) => {
                    let t = (pc as i64 + 1 + off as i64) as usize;
                    succ.push((t - start, st));
                    return succ;
                }
                Some(Insn::Jmp { off, .. }) => {
                    let t = (pc as i64 + 1 + off as i64) as usize;
                    let (taken, fall) = refine(&st, op);
                    succ.push((t - start, taken));
                    succ.push((next - start, fall));
                    return succ;
                }
                _ => step(&mut st, op),
            }
            if next - start >= n {
                return succ;
            }
            if leader[next - start] {
                succ.push((next - start, st));
                return succ;
            }
            i += 1;
        }
        succ
    };
    let mut changed = true;
    let mut rounds = 0;
    while changed && rounds < 64 {
        changed = false;
        rounds += 1;
        for b in 0..n {
            if !leader[b] {
                continue;
            }
            let Some(st) = input[b] else { continue };
            for (s, st2) in run(b, st, &mut None) {
                if s < n && merge(&mut input, s, st2) {
                    changed = true;
                }
            }
        }
    }
    if changed {
        // No fixpoint (should not happen): prove nothing.
        return out;
    }
    for b in 0..n {
        if leader[b] {
            if let Some(st) = input[b] {
                run(b, st, &mut Some(&mut out));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use isa::RawInsn;

    use super::*;
    use crate::maptable::MapTable;

    fn raw(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> RawInsn {
        RawInsn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// Safe flags of a single-function program, everything one block per insn start.
    fn flags(insns: &[RawInsn], entry_ctx: bool) -> Vec<bool> {
        let p =
            crate::program::prepare("t", "xdp", insns, &[], &MapTable::new(Vec::new())).unwrap();
        let starts: Vec<usize> = (0..insns.len()).collect();
        let mut leader = vec![false; insns.len()];
        leader[0] = true;
        for (pc, op) in p.ops().iter().enumerate() {
            if let Some(t) = op
                .insn()
                .filter(Insn::is_branch)
                .and_then(|i| i.jump_target(pc))
            {
                leader[t as usize] = true;
                if pc + 1 < insns.len() {
                    leader[pc + 1] = true;
                }
            }
        }
        safe_accesses(p.ops(), &starts, &leader, 0, entry_ctx)
    }

    #[test]
    fn packet_range_follows_the_bounds_test() {
        let p = [
            raw(0x61, 2, 1, 0, 0),  // 0: r2 = data
            raw(0x61, 3, 1, 4, 0),  // 1: r3 = data_end
            raw(0xbf, 4, 2, 0, 0),  // 2: r4 = r2
            raw(0x07, 4, 0, 0, 14), // 3: r4 += 14
            raw(0x71, 0, 2, 0, 0),  // 4: before the test: checked
            raw(0x2d, 4, 3, 3, 0),  // 5: if r4 > r3 goto 9
            raw(0x69, 0, 2, 12, 0), // 6: bytes 12..14: safe
            raw(0x69, 0, 2, 13, 0), // 7: bytes 13..15: checked
            raw(0x61, 0, 1, 20, 0), // 8: ctx->egress_ifindex: safe
            raw(0x95, 0, 0, 0, 0),  // 9
        ];
        let f = flags(&p, true);
        assert!(f[0] && f[1], "context loads");
        assert!(!f[4] && f[6] && !f[7] && f[8]);
        // Without the context in r1, nothing about the packet is known.
        let f = flags(&p, false);
        assert!(!f[0] && !f[6]);
    }

    #[test]
    fn calls_forget_the_packet_and_frames_stay() {
        let p = [
            raw(0x61, 6, 1, 0, 0),
            raw(0x61, 7, 1, 4, 0),
            raw(0xbf, 8, 6, 0, 0),
            raw(0x07, 8, 0, 0, 8),
            raw(0xbf, 9, 10, 0, 0),
            raw(0x07, 9, 0, 0, -16),
            raw(0x2d, 8, 7, 5, 0),  // 6: if r8 > r7 goto 12
            raw(0x79, 0, 6, 0, 0),  // 7: safe
            raw(0x85, 0, 0, 0, 5),  // 8: ktime_get_ns
            raw(0x79, 0, 6, 0, 0),  // 9
            raw(0x7b, 9, 0, 8, 0),  // 10: r10 - 8: safe
            raw(0x7b, 9, 0, 16, 0), // 11: r10 + 0: checked
            raw(0x95, 0, 0, 0, 0),
        ];
        let f = flags(&p, true);
        assert!(f[7] && f[9], "ktime_get_ns does not move the packet");
        assert!(f[10] && !f[11]);
        let mut p = p;
        p[8] = raw(0x85, 0, 0, 0, 44); // bpf_xdp_adjust_head moves it
        let f = flags(&p, true);
        assert!(f[7] && !f[9]);
    }
}
