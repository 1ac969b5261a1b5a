//! A bpf-to-bpf call to the entry function (pc 0) with a forged r1. The entry function
//! runs with r1 = the context only when `run` or a tail call enters it; a call from the
//! program itself may pass anything. Loads of r1 + 0 / r1 + 4 through such a call are
//! not the packet bounds, so accesses through them must stay checked, in both engines.
//! Before the JIT compiled a separate copy of the entry function for internal calls,
//! these programs read host memory unchecked and wrote into another packet's frame
//! (or died with SIGSEGV for an unmapped r1).

use super::jit::loaded_from;
use super::raw;
use runtime::jit::{JitObject, JitOptions};
use runtime::{Packet, Trap, TrapKind, Vm};

/// The body the entry function runs when entered with r2 != 0 (a call from itself):
/// `data = *(u32 *)(r1 + 0); data_end = *(u32 *)(r1 + 4); if data + 8 <= data_end
/// { *(u64 *)data = data + 8; r0 = 1 }`. Its first slot is at `at`.
fn inner(at: usize) -> (Vec<isa::RawInsn>, usize, usize) {
    let p = vec![
        raw(0x61, 3, 1, 0, 0), // r3 = *(u32 *)(r1 + 0)
        raw(0x61, 4, 1, 4, 0), // r4 = *(u32 *)(r1 + 4)
        raw(0xbf, 5, 3, 0, 0), // r5 = r3
        raw(0x07, 5, 0, 0, 8), // r5 += 8
        raw(0xb7, 0, 0, 0, 0), // r0 = 0
        raw(0x2d, 5, 4, 2, 0), // if r5 > r4 goto exit
        raw(0x7b, 3, 5, 0, 0), // *(u64 *)(r3 + 0) = r5
        raw(0xb7, 0, 0, 0, 1), // r0 = 1
        raw(0x95, 0, 0, 0, 0), // exit
    ];
    (p, at, at + 6)
}

/// r1 = `addr` (host memory), then a call to pc 0. Returns the program, the pc of the
/// first load through r1 and the pc of the store.
pub(super) fn forged_host_ctx(addr: u64) -> (Vec<isa::RawInsn>, usize, usize) {
    let mut p = vec![
        raw(0x55, 2, 0, 5, 0), // 0: if r2 != 0 goto 6
        raw(0x18, 1, 0, 0, addr as u32 as i32),
        raw(0, 0, 0, 0, (addr >> 32) as u32 as i32), // r1 = addr
        raw(0xb7, 2, 0, 0, 1),                       // 3: r2 = 1
        raw(0x85, 0, 1, 0, -5),                      // 4: call pc 0
        raw(0x95, 0, 0, 0, 0),                       // 5: exit
    ];
    let (body, load, store) = inner(p.len());
    p.extend(body);
    (p, load, store)
}

/// A fake context on the stack, `{ data = victim, data_end = 0xffffffff }`, passed as
/// r1 in a call to pc 0. Returns the program and the pc of the store.
pub(super) fn forged_stack_ctx(victim: u32) -> (Vec<isa::RawInsn>, usize) {
    let mut p = vec![
        raw(0x55, 2, 0, 6, 0),               // 0: if r2 != 0 goto 7
        raw(0x62, 10, 0, -8, victim as i32), // 1: *(u32 *)(r10 - 8) = victim
        raw(0x62, 10, 0, -4, -1),            // 2: *(u32 *)(r10 - 4) = 0xffffffff
        raw(0xbf, 1, 10, 0, 0),              // 3: r1 = r10
        raw(0x07, 1, 0, 0, -8),              // 4: r1 += -8
        raw(0xb7, 2, 0, 0, 1),               // 5: r2 = 1
        raw(0x85, 0, 1, 0, -7),              // 6: call pc 0
    ];
    p.push(raw(0x95, 0, 0, 0, 0)); // 7: exit
                                   // The jump at 0 goes to 7 + 1 = 8: the inner body.
    p[0].off = 7;
    let (body, _, store) = inner(p.len());
    p.extend(body);
    (p, store)
}

/// Runs `insns` in both engines on a fresh 64-byte packet; returns (jit, interpreter).
fn both(insns: &[isa::RawInsn]) -> (Result<u64, Trap>, Result<u64, Trap>) {
    let loaded = loaded_from(insns);
    let jit = JitObject::compile(&loaded, &JitOptions::default()).unwrap();
    let data = [7u8; 64];
    let mut pkt = Packet::new(&data).unwrap();
    let mut vm = Vm::new(0);
    let j = jit.run(&mut vm, 0, &mut pkt);
    pkt.reset(&data).unwrap();
    let i = loaded.run(&mut vm, 0, &mut pkt);
    (j, i)
}

fn assert_oob(r: Result<u64, Trap>, pc: usize, what: &str) {
    match r {
        Err(Trap {
            kind: TrapKind::OutOfBounds { .. },
            pc: p,
        }) if p == pc => {}
        other => panic!("{what}: expected an out-of-bounds trap at pc {pc}, got {other:?}"),
    }
}

#[test]
fn a_call_to_the_entry_with_r1_in_host_memory_traps() {
    // Host memory holding a plausible context: data and data_end around the packet of
    // another run (a frame below 4 GiB, like every packet).
    let victim_data = [0x11u8; 64];
    let victim = Packet::new(&victim_data).unwrap();
    let va = victim.data().as_ptr() as u64;
    assert!(va < 1 << 32);
    let fake: Box<[u32; 6]> = Box::new([va as u32, va as u32 + 64, 0, 0, 0, 0]);
    let (p, load, _) = forged_host_ctx(fake.as_ptr() as u64);
    let (j, i) = both(&p);
    assert_oob(j, load, "jit");
    assert_oob(i, load, "interpreter");
    assert_eq!(
        victim.data(),
        &victim_data[..],
        "the other packet is untouched"
    );
    // An unmapped address (before the fix: SIGSEGV in the JIT).
    let (p, load, _) = forged_host_ctx(0x10);
    let (j, i) = both(&p);
    assert_oob(j, load, "jit, unmapped r1");
    assert_oob(i, load, "interpreter, unmapped r1");
}

#[test]
fn a_call_to_the_entry_with_a_fake_context_on_the_stack_traps() {
    let victim_data = [0x22u8; 64];
    let victim = Packet::new(&victim_data).unwrap();
    let va = victim.data().as_ptr() as u64;
    assert!(va < 1 << 32);
    let (p, store) = forged_stack_ctx(va as u32);
    let (j, i) = both(&p);
    assert_oob(j, store, "jit");
    assert_oob(i, store, "interpreter");
    assert_eq!(
        victim.data(),
        &victim_data[..],
        "the other packet is untouched"
    );
}

#[test]
fn the_entry_called_with_the_real_context_runs_in_its_copy() {
    // pc 0 called from itself with the real context: the program works in both engines
    // (r0 = 1 after an 8-byte store at data, checked in the copy for calls).
    let mut p = vec![
        raw(0x55, 2, 0, 3, 0),  // 0: if r2 != 0 goto 4
        raw(0xb7, 2, 0, 0, 1),  // 1: r2 = 1
        raw(0x85, 0, 1, 0, -3), // 2: call pc 0 (r1 is still the context)
        raw(0x95, 0, 0, 0, 0),  // 3: exit
    ];
    let (body, _, _) = inner(p.len());
    p.extend(body);
    let (j, i) = both(&p);
    assert_eq!(j, Ok(1));
    assert_eq!(i, Ok(1));
    // The copy calls reach is a function of its own; a program that never calls pc 0
    // has none.
    let names = |insns: &[isa::RawInsn]| -> Vec<String> {
        let loaded = loaded_from(insns);
        let jit = JitObject::compile(&loaded, &JitOptions::default()).unwrap();
        jit.symbols().iter().map(|s| s.name.clone()).collect()
    };
    assert!(names(&p).contains(&"bpf_prog_p_0".to_string()));
    assert!(!names(&p[4..]).contains(&"bpf_prog_p_0".to_string()));
}

/// Offsets the analysis follows are exact or forgotten: a large constant added to a
/// stack pointer and mostly taken back leaves it far outside the frame, and an access
/// through it stays checked.
#[test]
fn a_stack_pointer_moved_by_large_constants_stays_checked() {
    for (code, addend) in [(0x07u8, 0x7fff_ffffi32), (0x17, -0x7fff_ffff)] {
        let back = if code == 0x07 { -(1 << 20) } else { 1 << 20 };
        let p = [
            raw(0xbf, 2, 10, 0, 0),     // r2 = r10
            raw(0x07, 2, 0, 0, -16),    // r2 += -16
            raw(code, 2, 0, 0, addend), // r2 += 0x7fffffff (or -= -0x7fffffff)
            raw(code, 2, 0, 0, back),   // r2 -= 1 << 20
            raw(0x7a, 2, 0, 0, 1),      // *(u64 *)(r2 + 0) = 1
            raw(0xb7, 0, 0, 0, 0),
            raw(0x95, 0, 0, 0, 0),
        ];
        let (j, i) = both(&p);
        assert_oob(j, 4, "jit");
        assert_oob(i, 4, "interpreter");
    }
}
