//! Which backward jumps can repeat code: those on a cycle of the program's
//! control-flow graph.
//!
//! Both engines count a step of the run's budget ([`crate::interp::Vm::max_steps`])
//! at every backward jump that lies on a cycle, at every bpf-to-bpf call, `bpf_loop`
//! or `bpf_for_each_map_elem` callback invocation and tail call. A backward jump on
//! no cycle (clang's shared exit blocks placed before the code that jumps to them)
//! cannot be taken twice without one of the counted edges in between, so leaving it
//! uncounted keeps every run bounded: between two counted steps a frame executes
//! each of its instructions at most once.
//!
//! A backward jump from `u` to `v` lies on a cycle exactly when `u` and `v` are in
//! the same strongly connected component of the graph whose edges are fall-through
//! (a call returns to the next instruction) and jump targets. The components come
//! from an iterative Tarjan walk, linear in the program's size.

use isa::Insn;

/// A set of instruction slots (one bit each).
#[derive(Clone, Debug, Default)]
pub struct SlotSet(Box<[u64]>);

impl SlotSet {
    fn new(len: usize) -> Self {
        SlotSet(vec![0u64; len.div_ceil(64)].into())
    }

    fn insert(&mut self, pc: usize) {
        self.0[pc / 64] |= 1 << (pc % 64);
    }

    /// Whether `pc` is in the set (false for slots past the program).
    #[inline]
    pub fn contains(&self, pc: usize) -> bool {
        self.0.get(pc / 64).is_some_and(|w| w >> (pc % 64) & 1 == 1)
    }
}

/// The slots of the backward jumps (`ja` and conditional jumps with a negative
/// offset) that lie on a cycle of the control-flow graph of `decoded` (the
/// program's instructions with their slots, `len` slots in all; every jump target
/// was checked to be an instruction's slot).
pub fn backward_jumps_on_cycles(decoded: &[(usize, Insn)], len: usize) -> SlotSet {
    // Node of each slot that starts an instruction.
    let mut node_of = vec![usize::MAX; len];
    for (n, &(pc, _)) in decoded.iter().enumerate() {
        node_of[pc] = n;
    }
    let target = |pc: usize, off: i64| -> Option<usize> {
        let t = usize::try_from(pc as i64 + 1 + off).ok()?;
        node_of.get(t).copied().filter(|&n| n != usize::MAX)
    };
    let next = |pc: usize, insn: &Insn| {
        node_of
            .get(pc + insn.slots())
            .copied()
            .filter(|&n| n != usize::MAX)
    };
    // Successors of each node: at most two.
    let succ: Vec<[Option<usize>; 2]> = decoded
        .iter()
        .map(|&(pc, insn)| match insn {
            Insn::Exit => [None, None],
            Insn::Ja { off } => [target(pc, off as i64), None],
            Insn::Jmp { off, .. } => [next(pc, &insn), target(pc, off as i64)],
            _ => [next(pc, &insn), None],
        })
        .collect();
    let comp = components(&succ);
    let mut set = SlotSet::new(len);
    for (n, &(pc, insn)) in decoded.iter().enumerate() {
        let off = match insn {
            Insn::Ja { off } => off as i64,
            Insn::Jmp { off, .. } => off as i64,
            _ => continue,
        };
        if off < 0 {
            if let Some(t) = target(pc, off) {
                if comp[t] == comp[n] {
                    set.insert(pc);
                }
            }
        }
    }
    set
}

/// The strongly connected component of each node (Tarjan, iterative).
fn components(succ: &[[Option<usize>; 2]]) -> Vec<usize> {
    const NONE: usize = usize::MAX;
    let n = succ.len();
    let mut index = vec![NONE; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut comp = vec![NONE; n];
    let mut stack: Vec<usize> = Vec::new();
    // The walk: (node, next successor to look at).
    let mut walk: Vec<(usize, usize)> = Vec::new();
    let mut counter = 0;
    let mut ncomp = 0;
    for root in 0..n {
        if index[root] != NONE {
            continue;
        }
        walk.push((root, 0));
        index[root] = counter;
        low[root] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut i)) = walk.last_mut() {
            if *i < 2 {
                let s = succ[v][*i];
                *i += 1;
                if let Some(w) = s {
                    if index[w] == NONE {
                        index[w] = counter;
                        low[w] = counter;
                        counter += 1;
                        stack.push(w);
                        on_stack[w] = true;
                        walk.push((w, 0));
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                }
                continue;
            }
            walk.pop();
            if let Some(&(parent, _)) = walk.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp[w] = ncomp;
                    if w == v {
                        break;
                    }
                }
                ncomp += 1;
            }
        }
    }
    comp
}

#[cfg(test)]
mod tests {
    use super::*;
    use isa::{JmpCond, Operand, Width};

    fn jmp(off: i16) -> Insn {
        Insn::Jmp {
            width: Width::W64,
            cond: JmpCond::Eq,
            dst: 1,
            src: Operand::Imm(0),
            off,
        }
    }

    fn on_cycles(insns: &[Insn]) -> Vec<usize> {
        let mut decoded = Vec::new();
        let mut pc = 0;
        for &i in insns {
            decoded.push((pc, i));
            pc += i.slots();
        }
        let set = backward_jumps_on_cycles(&decoded, pc);
        (0..pc).filter(|&p| set.contains(p)).collect()
    }

    #[test]
    fn loops_count_and_shared_exits_do_not() {
        let mov = Insn::Alu {
            width: Width::W64,
            op: isa::AluOp::Mov,
            dst: 0,
            src: Operand::Imm(1),
        };
        // 0: exit; 1: if r1 == 0 goto 0 (backward to a shared exit: no cycle);
        // 2: mov; 3: if r1 == 0 goto 2 (a loop); 4: ja -5 (to 0: no cycle).
        assert_eq!(
            on_cycles(&[Insn::Exit, jmp(-2), mov, jmp(-2), Insn::Ja { off: -5 }]),
            vec![3]
        );
        // A loop closed by `ja` around a forward exit test, and a self loop.
        // 0: if r1 == 0 goto 3; 1: mov; 2: ja -3; 3: ja -1 (itself).
        assert_eq!(
            on_cycles(&[jmp(2), mov, Insn::Ja { off: -3 }, Insn::Ja { off: -1 }]),
            vec![2, 3]
        );
        // A backward jump into a loop from below it is not on the loop's cycle
        // unless the loop can reach it: 0: mov; 1: if goto 0 (loop); 2: ja -3 (to 0,
        // and 0 reaches 2 through 1's fall-through: a cycle).
        assert_eq!(on_cycles(&[mov, jmp(-2), Insn::Ja { off: -3 }]), vec![1, 2]);
        // lddw takes two slots; the jump over it backwards is on a cycle.
        let lddw = Insn::LdImm64 {
            dst: 2,
            src: 0,
            imm: 7,
            next_imm: 0,
        };
        assert_eq!(on_cycles(&[lddw, jmp(-3), Insn::Exit]), vec![2]);
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        // A walk 200,000 instructions deep (a loop over the last 32,768 of them):
        // the walk is iterative.
        let mov = Insn::Alu {
            width: Width::W64,
            op: isa::AluOp::Mov,
            dst: 0,
            src: Operand::Imm(1),
        };
        let mut insns = vec![mov; 200_000];
        insns.push(jmp(i16::MIN));
        insns.push(Insn::Exit);
        let found = on_cycles(&insns);
        assert_eq!(found, vec![200_000]);
    }
}
