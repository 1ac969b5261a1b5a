//! The stack a run may touch is its live call chain, `[r10 - 512, top of the outermost
//! frame)`, in both engines: for loads and stores, for helpers' pointer arguments
//! (the generic helper path and the JIT's direct map shims) and in `bpf_loop`
//! callbacks, which run in a frame of their own. Pointers into callers' frames stay
//! usable. Each case runs through the hostile suite's checker (both engines, which
//! must agree).

use bpf_progs::hostile::{default_packet, Asm, Expect, Hostile, MapSpec};
use isa::helpers::func;
use runtime::jit::{JitObject, JitOptions};
use runtime::{Packet, Vm};

use crate::hostile::check;

const STDW: u8 = 0x7a;
const STW: u8 = 0x62;
const STXDW: u8 = 0x7b;
const LDXDW: u8 = 0x79;
const LDXW: u8 = 0x61;
const LDXB: u8 = 0x71;
const JA: u8 = 0x05;
const JNE: u8 = 0x55;
const MAP_LOOKUP: i32 = func::map_lookup_elem;
const BPF_LOOP: i32 = func::r#loop;

fn case(name: &'static str, build: impl FnOnce(&mut Asm) -> Expect) -> Hostile {
    let mut a = Asm::default();
    let expect = build(&mut a);
    Hostile {
        name,
        maps: vec![MapSpec {
            name: "arr",
            map_type: 2,
            key_size: 4,
            value_size: 8,
            max_entries: 4,
            flags: 0,
        }],
        setup: vec![],
        insns: a.insns,
        packet: default_packet(),
        expect,
        shim_expect: None,
    }
}

/// Aims the bpf-to-bpf call at `from` at the next slot.
fn aim_call(a: &mut Asm, from: usize) {
    a.insns[from].imm = a.pc() as i32 - from as i32 - 1;
}

fn trap(kind: &'static str, pc: usize) -> Expect {
    Expect::Trap { kind, pc }
}

/// `r0 = lookup(arr, r2)` through the generic helper path in both engines: r1 comes
/// from a register set in an earlier block, so the JIT does not resolve the map.
fn lookup_generic(a: &mut Asm) -> usize {
    a.ld_map(8, 0);
    a.raw(JA, 0, 0, 0, 0);
    a.movr(1, 8);
    a.call(MAP_LOOKUP)
}

/// `if r0 == 0 return 2; return 7`.
fn found_returns_7(a: &mut Asm) {
    let j = a.jump(JNE, 0, 0, 0);
    a.ret(2);
    a.here(j);
    a.ret(7);
}

fn cases() -> Vec<Hostile> {
    vec![
        case("helper_key_below_the_frame_direct_map_shim", |a| {
            a.movr(2, 10);
            a.add(2, -520);
            a.ld_map(1, 0);
            let pc = a.call(MAP_LOOKUP);
            a.exit();
            trap("HelperBadPointer", pc)
        }),
        case("helper_key_below_the_frame_generic_helper", |a| {
            a.movr(2, 10);
            a.add(2, -516);
            let pc = lookup_generic(a);
            a.exit();
            trap("HelperBadPointer", pc)
        }),
        case("helper_key_straddling_the_frame_bottom", |a| {
            a.movr(2, 10);
            a.add(2, -514);
            a.ld_map(1, 0);
            let pc = a.call(MAP_LOOKUP);
            a.exit();
            trap("HelperBadPointer", pc)
        }),
        case("helper_key_at_the_frame_bottom_is_fine", |a| {
            a.raw(STW, 10, 0, -512, 1);
            a.movr(2, 10);
            a.add(2, -512);
            a.ld_map(1, 0);
            a.call(MAP_LOOKUP);
            found_returns_7(a);
            Expect::Ret(7)
        }),
        // The caller's key, looked up by a callee (both helper paths).
        case("callee_passes_the_callers_key_to_helpers", |a| {
            a.raw(STW, 10, 0, -4, 3);
            a.movr(1, 10);
            a.add(1, -4);
            let call = a.call_local(0);
            a.exit();
            aim_call(a, call);
            // callee: the key pointer comes in r1.
            a.movr(7, 1);
            a.movr(2, 7);
            lookup_generic(a);
            let j = a.jump(JNE, 0, 0, 0);
            a.ret(2);
            a.here(j);
            a.movr(2, 7);
            a.ld_map(1, 0);
            a.call(MAP_LOOKUP);
            found_returns_7(a);
            Expect::Ret(7)
        }),
        case("helper_key_in_a_returned_callee_frame", |a| {
            let call = a.call_local(0);
            a.movr(2, 0);
            let pc = lookup_generic(a);
            a.exit();
            aim_call(a, call);
            // callee: returns a pointer into its own frame, key 0 stored there.
            a.raw(STW, 10, 0, -8, 0);
            a.movr(0, 10);
            a.add(0, -8);
            a.exit();
            trap("HelperBadPointer", pc)
        }),
        case(
            "helper_key_in_a_returned_callee_frame_direct_map_shim",
            |a| {
                let call = a.call_local(0);
                a.movr(2, 0);
                a.ld_map(1, 0);
                let pc = a.call(MAP_LOOKUP);
                a.exit();
                aim_call(a, call);
                a.raw(STW, 10, 0, -8, 0);
                a.movr(0, 10);
                a.add(0, -8);
                a.exit();
                trap("HelperBadPointer", pc)
            },
        ),
        // bpf_loop: the callback counts in the caller's frame (through its context
        // pointer): 3 calls.
        case("bpf_loop_callback_writes_the_callers_frame", |a| {
            a.raw(STDW, 10, 0, -8, 0);
            a.mov(1, 3);
            let f = a.ld_func(2, 0);
            a.movr(3, 10);
            a.add(3, -8);
            a.mov(4, 0);
            a.call(BPF_LOOP);
            a.ldx(LDXDW, 0, 10, -8);
            a.exit();
            a.aim_func(f);
            a.ldx(LDXDW, 3, 2, 0);
            a.add(3, 1);
            a.raw(STXDW, 2, 3, 0, 0);
            a.ret(0);
            Expect::Ret(3)
        }),
        case("bpf_loop_callback_writes_below_its_frame", |a| {
            a.mov(1, 3);
            let f = a.ld_func(2, 0);
            a.mov(3, 0);
            a.mov(4, 0);
            a.call(BPF_LOOP);
            a.exit();
            a.aim_func(f);
            a.movr(1, 10);
            a.add(1, -520);
            let pc = a.raw(STDW, 1, 0, 0, 1);
            a.ret(0);
            trap("OutOfBounds", pc)
        }),
        case("bpf_loop_callback_key_below_its_frame", |a| {
            a.mov(1, 3);
            let f = a.ld_func(2, 0);
            a.mov(3, 0);
            a.mov(4, 0);
            a.call(BPF_LOOP);
            a.exit();
            a.aim_func(f);
            a.movr(2, 10);
            a.add(2, -516);
            let pc = lookup_generic(a);
            a.ret(1);
            trap("HelperBadPointer", pc)
        }),
        // After the loop, the callback's frame is gone for the caller too.
        case("caller_reads_a_finished_callbacks_frame", |a| {
            a.mov(1, 1);
            let f = a.ld_func(2, 0);
            a.mov(3, 0);
            a.mov(4, 0);
            a.call(BPF_LOOP);
            a.movr(1, 10);
            a.add(1, -520);
            let pc = a.ldx(LDXDW, 0, 1, 0);
            a.exit();
            a.aim_func(f);
            a.raw(STDW, 10, 0, -8, 9);
            a.ret(1);
            trap("OutOfBounds", pc)
        }),
        case("helper_key_in_a_finished_callbacks_frame", |a| {
            a.mov(1, 1);
            let f = a.ld_func(2, 0);
            a.mov(3, 0);
            a.mov(4, 0);
            a.call(BPF_LOOP);
            a.movr(2, 10);
            a.add(2, -516);
            a.ld_map(1, 0);
            let pc = a.call(MAP_LOOKUP);
            a.exit();
            a.aim_func(f);
            a.raw(STW, 10, 0, -4, 0);
            a.ret(1);
            trap("HelperBadPointer", pc)
        }),
        // Accesses of fewer than 8 bytes at the very top of the outermost frame,
        // through a pointer (not proven at compile time), from it and from a callee.
        case("short_accesses_at_the_top_of_the_stack", |a| {
            a.movr(1, 10);
            a.add(1, -4);
            a.raw(STW, 1, 0, 0, 5);
            let call = a.call_local(0);
            a.ldx(LDXW, 0, 1, 0);
            a.exit();
            aim_call(a, call);
            a.raw(STW, 1, 0, 0, 6);
            a.movr(2, 1);
            a.add(2, 3);
            a.ldx(LDXB, 0, 2, 0);
            a.exit();
            Expect::Ret(6)
        }),
        // Eight frames deep, the deepest callee still reaches the outermost frame.
        case("deepest_callee_reads_the_outermost_frame", |a| {
            a.raw(STDW, 10, 0, -8, 42);
            a.movr(1, 10);
            a.add(1, -8);
            // main and six middle frames each call the next function.
            for _ in 0..7 {
                let call = a.call_local(0);
                a.exit();
                aim_call(a, call);
            }
            a.ldx(LDXDW, 0, 1, 0);
            a.exit();
            Expect::Ret(42)
        }),
    ]
}

#[test]
fn the_stack_is_the_live_call_chain_in_both_engines() {
    let mut failures = Vec::new();
    for c in cases() {
        println!("stack chain: {}", c.name);
        if let Err(e) = check(&c) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A compiled function's frame can be far larger than a page (the spill slots of a
/// huge function): a run on a thread with less stack than the compiled code needs must
/// still end normally, never step over the thread's guard page into other memory.
#[test]
fn a_huge_frame_runs_on_a_thread_with_a_small_stack() {
    const SMALL: usize = 256 << 10;
    let (insns, r0) = bpf_progs::hostile::enormous_branch_pairs(60_000);
    // Loaded, compiled and run on a thread with a small stack (compiled code is used
    // by the thread that compiled it).
    let (need, result) = std::thread::Builder::new()
        .stack_size(SMALL)
        .spawn(move || {
            let (_store, object, entry) = crate::hostile::load_plain(&insns);
            let jit = JitObject::compile(&object, &JitOptions::default()).expect("JIT compile");
            let mut vm = Vm::new(0);
            let mut pkt = Packet::new(&default_packet()).expect("packet");
            (jit.host_stack_need(), jit.run(&mut vm, entry, &mut pkt))
        })
        .expect("spawn")
        .join()
        .expect("join");
    println!("host stack needed: {need} bytes");
    assert!(
        need > SMALL,
        "the frame is not large enough to test: {need}"
    );
    assert_eq!(result, Ok(r0));
}
