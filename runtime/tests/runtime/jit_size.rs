//! Large functions: above `SINGLE_PASS_ABOVE` slots the JIT compiles a function with
//! Cranelift's single-pass register allocator (the backtracking one takes time
//! quadratic in the function's size); the code still agrees with the interpreter.
//! Compile times are measured by `runtime/examples/jit_compile_time.rs`, not here.

use isa::RawInsn;
use runtime::jit::{JitObject, JitOptions, SINGLE_PASS_ABOVE};
use runtime::{LoadedObject, Packet, Vm};

fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> RawInsn {
    RawInsn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

/// A program of about `n` slots: a packet bounds test, then conditional branches over
/// ALU, stack and packet instructions; with `sub`, a subprogram of the same shape
/// called first.
fn program(n: usize, sub: Option<usize>) -> (Vec<RawInsn>, Vec<usize>) {
    let body = |p: &mut Vec<RawInsn>, n: usize| {
        let base = p.len();
        p.extend([
            ins(0x61, 2, 1, 0, 0),
            ins(0x61, 3, 1, 4, 0),
            ins(0xbf, 4, 2, 0, 0),
            ins(0x07, 4, 0, 0, 32),
            ins(0xb7, 0, 0, 0, 0),
            ins(0x2d, 4, 3, 1, 0),
            ins(0x05, 0, 0, 1, 0),
            ins(0x95, 0, 0, 0, 0),
        ]);
        let mut k = 0i32;
        while p.len() - base + 3 < n {
            k += 1;
            let r = 5 + (k % 5) as u8;
            p.push(ins(0x55, r, 0, 1, k));
            p.push(match k % 6 {
                0 => ins(0x0f, 0, r, 0, 0),
                1 => ins(0x27, r, 0, 0, k | 1),
                2 => ins(0x7b, 10, r, -8 * (1 + k % 8) as i16, 0),
                3 => ins(0x79, r, 10, -8 * (1 + (k + 3) % 8) as i16, 0),
                4 => ins(0x71, r, 2, (k % 32) as i16, 0),
                _ => ins(0x73, 2, r, (k % 32) as i16, 0),
            });
        }
        p.push(ins(0x95, 0, 0, 0, 0));
    };
    let mut p = Vec::new();
    let mut starts = Vec::new();
    if sub.is_some() {
        // r6 = r1; call sub; r1 = r6, then the entry's body.
        p.push(ins(0xbf, 6, 1, 0, 0));
        p.push(ins(0x85, 0, 1, 0, 0)); // patched below
        p.push(ins(0xbf, 1, 6, 0, 0));
    }
    body(&mut p, n);
    if let Some(m) = sub {
        let at = p.len();
        p[1].imm = (at - 2) as i32;
        starts.push(at);
        body(&mut p, m);
    }
    (p, starts)
}

fn compile_and_compare(p: &[RawInsn], starts: &[usize]) -> Vec<String> {
    let maps = runtime::maptable::MapTable::new(Vec::new());
    let prepared = runtime::program::prepare("big", "xdp", p, starts, &maps).unwrap();
    let loaded = LoadedObject {
        maps,
        programs: vec![prepared],
        rejected: Vec::new(),
        all_programs: Vec::new(),
    };
    let jit = JitObject::compile(&loaded, &JitOptions::default()).unwrap();
    let data: Vec<u8> = (0..64u8).collect();
    let mut pkt = Packet::new(&data).unwrap();
    let mut vm = Vm::new(0);
    let j = jit.run(&mut vm, 0, &mut pkt).unwrap();
    let jit_pkt = pkt.data().to_vec();
    pkt.reset(&data).unwrap();
    let i = loaded.run(&mut vm, 0, &mut pkt).unwrap();
    assert_eq!(j, i);
    assert_eq!(jit_pkt, pkt.data());
    jit.single_pass_functions().to_vec()
}

#[test]
fn functions_above_the_limit_get_the_single_pass_allocator() {
    // Small: the backtracking allocator everywhere.
    let (p, starts) = program(1000, Some(500));
    assert!(compile_and_compare(&p, &starts).is_empty());
    // A large subprogram after a small entry: only the subprogram switches.
    let (p, starts) = program(1000, Some(SINGLE_PASS_ABOVE + 500));
    assert_eq!(
        compile_and_compare(&p, &starts),
        vec![format!("bpf_prog_big_{}", starts[0])]
    );
    // A large entry function alone.
    let (p, starts) = program(SINGLE_PASS_ABOVE + 500, None);
    assert_eq!(compile_and_compare(&p, &starts), vec!["bpf_prog_big"]);
}
