//! Every run ends: programs the kernel's verifier would refuse (endless loops, loops
//! through calls, call trees without loops, nested `bpf_loop`, tail-call loops) stop
//! with the step-budget trap at the same pc in both engines, and the budget counts
//! exactly one step per backward jump taken on a cycle of the control-flow graph,
//! bpf-to-bpf call, `bpf_loop` callback invocation and tail call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::raw;
use runtime::jit::{JitObject, JitOptions};
use runtime::{BoundMap, LoadedObject, Packet, Trap, TrapKind, Vm};

fn ops(list: &[(u8, u8, u8, i16, i32)]) -> Vec<isa::RawInsn> {
    list.iter()
        .map(|&(c, d, s, o, i)| raw(c, d, s, o, i))
        .collect()
}

const EXIT: (u8, u8, u8, i16, i32) = (0x95, 0, 0, 0, 0);
/// `ja -1`: a jump to itself.
const JA_SELF: (u8, u8, u8, i16, i32) = (0x05, 0, 0, -1, 0);
/// `call pc + 1 + off` (bpf-to-bpf).
fn call(off: i32) -> (u8, u8, u8, i16, i32) {
    (0x85, 0, 1, 0, off)
}
/// `call bpf_loop` and `call bpf_tail_call`.
const CALL_LOOP: (u8, u8, u8, i16, i32) = (0x85, 0, 0, 0, 181);
const CALL_TAIL: (u8, u8, u8, i16, i32) = (0x85, 0, 0, 0, 12);

/// The two slots of `dst = &function at slot target`, for `ld_imm64` at slot `pc`.
fn ld_func(pc: usize, dst: u8, target: usize) -> Vec<isa::RawInsn> {
    vec![
        raw(0x18, dst, 4, 0, target as i32 - pc as i32 - 1),
        raw(0, 0, 0, 0, 0),
    ]
}

/// One program of `insns` with functions at `starts`, and the object's `maps`.
pub(super) fn object(
    insns: Vec<isa::RawInsn>,
    starts: &[usize],
    maps: Vec<BoundMap>,
) -> LoadedObject {
    let maps = runtime::maptable::MapTable::new(maps);
    let prepared = runtime::program::prepare("budget", "xdp", &insns, starts, &maps).unwrap();
    LoadedObject {
        maps,
        programs: vec![prepared],
        rejected: Vec::new(),
        all_programs: Vec::new(),
    }
}

/// Runs program 0 with a budget of `max_steps` in both engines; they must agree.
fn both(loaded: &LoadedObject, max_steps: u64) -> Result<u64, Trap> {
    let mut pkt = Packet::new(&[0u8; 64]).unwrap();
    let mut vm = Vm::new(0).with_max_steps(max_steps);
    let interp = loaded.run(&mut vm, 0, &mut pkt);
    let mut pkt = Packet::new(&[0u8; 64]).unwrap();
    let jit = JitObject::compile(loaded, &JitOptions::default())
        .unwrap()
        .run(&mut vm, 0, &mut pkt);
    assert_eq!(jit, interp, "the JIT differs from the interpreter");
    interp
}

fn budget_trap(pc: usize, limit: u64) -> Result<u64, Trap> {
    Err(Trap {
        kind: TrapKind::StepBudget { limit },
        pc,
    })
}

#[test]
fn ja_minus_one_ends_with_the_budget_trap() {
    let loaded = object(ops(&[(0xb7, 0, 0, 0, 0), JA_SELF, EXIT]), &[], Vec::new());
    assert_eq!(both(&loaded, 10_000), budget_trap(1, 10_000));
    assert_eq!(both(&loaded, 0), budget_trap(1, 0));
}

/// `r0 = 0; loop: r0 += 1; if r0 < n goto loop; exit`: n - 1 backward jumps taken.
fn counted_loop(n: i32) -> LoadedObject {
    object(
        ops(&[
            (0xb7, 0, 0, 0, 0),
            (0x07, 0, 0, 0, 1),
            (0xa5, 0, 0, -2, n),
            EXIT,
        ]),
        &[],
        Vec::new(),
    )
}

#[test]
fn the_budget_counts_each_backward_jump_taken_once() {
    let loaded = counted_loop(1000);
    // 999 backward jumps: a budget of 999 suffices, 998 stops at the jump (slot 2).
    assert_eq!(both(&loaded, 999), Ok(1000));
    assert_eq!(both(&loaded, 998), budget_trap(2, 998));
    // Forward jumps and straight-line code take no step.
    let forward = object(
        ops(&[
            (0xb7, 0, 0, 0, 5),
            (0x15, 0, 0, 1, 5), // taken, forward
            (0xb7, 0, 0, 0, 9),
            (0x05, 0, 0, 0, 0), // ja +0
            EXIT,
        ]),
        &[],
        Vec::new(),
    );
    assert_eq!(both(&forward, 0), Ok(5));
}

#[test]
fn a_backward_jump_on_no_cycle_takes_no_step() {
    // clang's shape: a shared exit block placed before the code that jumps back to
    // it. 0: ja +2 (to 3); 1: r0 = 7; 2: exit; 3: r0 = 1; 4: if r0 == 1 goto 1
    // (backward, taken, on no cycle); 5: ja -5 (to 1: backward, on no cycle).
    let loaded = object(
        ops(&[
            (0x05, 0, 0, 2, 0),
            (0xb7, 0, 0, 0, 7),
            EXIT,
            (0xb7, 0, 0, 0, 1),
            (0x15, 0, 0, -4, 1),
            (0x05, 0, 0, -5, 0),
        ]),
        &[],
        Vec::new(),
    );
    assert_eq!(both(&loaded, 0), Ok(7));
    // The same backward jump closing a loop (slot 4 back to slot 3) counts.
    let looping = object(
        ops(&[
            (0xb7, 0, 0, 0, 0),
            (0x05, 0, 0, 1, 0),
            EXIT,
            (0x07, 0, 0, 0, 1),
            (0xa5, 0, 0, -2, 3), // if r0 < 3 goto 3
            (0x05, 0, 0, -4, 0), // ja -4 (to 2: no cycle)
        ]),
        &[],
        Vec::new(),
    );
    assert_eq!(both(&looping, 2), Ok(3));
    assert_eq!(both(&looping, 1), budget_trap(4, 1));
}

#[test]
fn a_loop_through_a_call_ends_with_the_budget_trap() {
    // 0: call f (slot 3); 1: if r0 != 0 goto 0; 2: exit; f: r0 = 1; exit.
    let loaded = object(
        ops(&[call(2), (0x55, 0, 0, -2, 0), EXIT, (0xb7, 0, 0, 0, 1), EXIT]),
        &[3],
        Vec::new(),
    );
    // Two steps per round: the call, then the backward jump.
    assert_eq!(both(&loaded, 10), budget_trap(0, 10));
    assert_eq!(both(&loaded, 11), budget_trap(1, 11));
    // Inside a callee: f loops on itself.
    let inner = object(ops(&[call(1), EXIT, JA_SELF]), &[2], Vec::new());
    assert_eq!(both(&inner, 100), budget_trap(2, 100));
}

/// main calls A(6); A(n) and B(n), mutually recursive: `if n == 0 return; call
/// other(n - 1) twice`. 1 + 2 + ... + 2^6 = 127 calls and no backward jump; 8 frames
/// deep at most (main, then A(6) .. A(0)).
fn call_tree() -> LoadedObject {
    let f = |other: i32| {
        vec![
            (0x15, 1, 0, 5, 0), // if r1 == 0 goto exit
            (0x07, 1, 0, 0, -1),
            (0xbf, 6, 1, 0, 0),
            call(other),
            (0xbf, 1, 6, 0, 0),
            call(other - 2),
            EXIT,
        ]
    };
    let mut p = vec![(0xb7, 1, 0, 0, 6), call(1), EXIT];
    // A at 3: its calls at 6 and 8 go to B at 10 (offsets 3 and 1).
    p.extend(f(3));
    // B at 10: its calls at 13 and 15 go to A at 3 (offsets -11 and -13).
    p.extend(f(-11));
    object(ops(&p), &[3, 10], Vec::new())
}

#[test]
fn mutual_recursion_counts_every_call() {
    let loaded = call_tree();
    assert_eq!(both(&loaded, 127), Ok(0));
    // The 127th call is the last one made: B(1)'s second call (slot 15).
    assert_eq!(both(&loaded, 126), budget_trap(15, 126));
    // The first call is main's.
    assert_eq!(both(&loaded, 0), budget_trap(1, 0));
    // Without a base case the depth limit stops it first.
    let endless = object(
        ops(&[call(1), EXIT, call(1), EXIT, call(-3), EXIT]),
        &[2, 4],
        Vec::new(),
    );
    assert_eq!(both(&endless, 1000).unwrap_err().kind, TrapKind::CallDepth);
}

/// main: `bpf_loop(1 << 23, outer)`; outer (slot 8): `bpf_loop(1 << 23, inner)`;
/// inner (slot 16): `return 0`. 2^46 callbacks, as the kernel accepts.
fn nested_loops(inner_body: &[(u8, u8, u8, i16, i32)]) -> LoadedObject {
    let mut p = ops(&[(0xb7, 1, 0, 0, 1 << 23)]);
    p.extend(ld_func(1, 2, 8));
    p.extend(ops(&[
        (0xb7, 3, 0, 0, 0),
        (0xb7, 4, 0, 0, 0),
        CALL_LOOP,
        (0xb7, 0, 0, 0, 2),
        EXIT,
    ]));
    assert_eq!(p.len(), 8);
    p.extend(ops(&[(0xb7, 1, 0, 0, 1 << 23)]));
    p.extend(ld_func(9, 2, 16));
    p.extend(ops(&[
        (0xb7, 3, 0, 0, 0),
        (0xb7, 4, 0, 0, 0),
        CALL_LOOP,
        (0xb7, 0, 0, 0, 0),
        EXIT,
    ]));
    assert_eq!(p.len(), 16);
    p.extend(ops(inner_body));
    object(p, &[8, 16], Vec::new())
}

#[test]
fn nested_bpf_loop_ends_with_the_budget_trap() {
    let loaded = nested_loops(&[(0xb7, 0, 0, 0, 0), EXIT]);
    // Step 1: the outer loop's first callback (charged to its call, slot 5); steps
    // 2..=1000: the inner loop's callbacks; step 1001 is refused at the inner call.
    assert_eq!(both(&loaded, 1000), budget_trap(13, 1000));
    assert_eq!(both(&loaded, 0), budget_trap(5, 0));
    // A loop inside the innermost callback.
    let looping = nested_loops(&[JA_SELF]);
    assert_eq!(both(&looping, 1000), budget_trap(16, 1000));
}

/// A prog_array with program 0 in slot 0, and a program that tail-calls slot 0:
/// `0: r6 = r1; 1: r1 = r6; 2: r2 = jmp_table; 4: r3 = 0; 5: tail call;` then
/// `6: r0 = 7; exit` (`again` false) or `6: goto 1` (`again` true).
fn tail_loop(again: bool) -> LoadedObject {
    let bound = super::prog_array_to(1);
    let mut p = ops(&[(0xbf, 6, 1, 0, 0), (0xbf, 1, 6, 0, 0)]);
    p.extend([raw(0x18, 2, 5, 0, 0), raw(0, 0, 0, 0, 0)]);
    p.extend(ops(&[(0xb7, 3, 0, 0, 0), CALL_TAIL]));
    if again {
        p.extend(ops(&[(0x05, 0, 0, -6, 0)]));
    } else {
        p.extend(ops(&[(0xb7, 0, 0, 0, 7), EXIT]));
    }
    object(p, &[], vec![bound])
}

#[test]
fn tail_call_loops_end() {
    // A program tail-calling itself: 33 tail calls (MAX_TAIL_CALL_CNT), then the
    // call falls through. Each tail call is a step.
    let loaded = tail_loop(false);
    assert_eq!(both(&loaded, runtime::DEFAULT_MAX_STEPS), Ok(7));
    assert_eq!(both(&loaded, 33), Ok(7));
    assert_eq!(both(&loaded, 32), budget_trap(5, 32));
    // Once the tail calls are spent, the jump back loops: the budget ends it.
    let looping = tail_loop(true);
    assert_eq!(both(&looping, 1000), budget_trap(6, 1000));
}

#[test]
fn repeats_each_get_the_whole_budget() {
    // 999 steps per run; 50 runs of 999 each fit a budget of 999.
    let loaded = counted_loop(1000);
    let mut vm = Vm::new(0).with_max_steps(999);
    let mut pkt = Packet::new(&[0u8; 64]).unwrap();
    let r = loaded.run_repeated(&mut vm, 0, &mut pkt, 50).unwrap();
    assert_eq!((r.retval, r.runs, r.interrupted), (1000, 50, false));
    let jit = JitObject::compile(&loaded, &JitOptions::default()).unwrap();
    let r = jit.run_repeated(&mut vm, 0, &mut pkt, 50).unwrap();
    assert_eq!((r.retval, r.runs, r.interrupted), (1000, 50, false));
}

#[test]
fn a_raised_interruption_flag_stops_repeats_after_one_run() {
    let loaded = counted_loop(10);
    let flag = Arc::new(AtomicBool::new(true));
    let mut vm = Vm::new(0);
    vm.set_interrupt(flag.clone());
    let mut pkt = Packet::new(&[0u8; 64]).unwrap();
    let r = loaded.run_repeated(&mut vm, 0, &mut pkt, 1 << 40).unwrap();
    assert_eq!((r.retval, r.runs, r.interrupted), (10, 1, true));
    let jit = JitObject::compile(&loaded, &JitOptions::default()).unwrap();
    let r = jit.run_repeated(&mut vm, 0, &mut pkt, 1 << 40).unwrap();
    assert_eq!((r.retval, r.runs, r.interrupted), (10, 1, true));
    // Lowered: all runs.
    flag.store(false, Ordering::Relaxed);
    let r = jit.run_repeated(&mut vm, 0, &mut pkt, 1000).unwrap();
    assert_eq!((r.runs, r.interrupted), (1000, false));
    let r = loaded.run_repeated(&mut vm, 0, &mut pkt, 1000).unwrap();
    assert_eq!((r.runs, r.interrupted), (1000, false));
}

#[test]
fn an_interruption_from_another_thread_stops_an_endless_repeat() {
    // Repeats that would take days end when another thread raises the flag; the
    // count is what ran.
    let loaded = counted_loop(10);
    let jit = JitObject::compile(&loaded, &JitOptions::default()).unwrap();
    for engine in ["interpreter", "jit"] {
        let flag = Arc::new(AtomicBool::new(false));
        let mut vm = Vm::new(0);
        vm.set_interrupt(flag.clone());
        let raiser = {
            let flag = flag.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                flag.store(true, Ordering::Relaxed);
            })
        };
        let mut pkt = Packet::new(&[0u8; 64]).unwrap();
        let r = match engine {
            "jit" => jit.run_repeated(&mut vm, 0, &mut pkt, u64::MAX),
            _ => loaded.run_repeated(&mut vm, 0, &mut pkt, u64::MAX),
        }
        .unwrap();
        raiser.join().unwrap();
        assert!(
            r.interrupted && r.runs >= 1 && r.runs < u64::MAX,
            "{engine}: {r:?}"
        );
    }
}
