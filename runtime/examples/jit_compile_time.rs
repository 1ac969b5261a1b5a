//! JIT compile time against program size: programs of conditional branches over ALU,
//! stack and packet instructions, 10k to 1M instructions (the kernel's limit), compiled
//! once each; prints instructions, compile time and time per instruction.
//!
//! `cargo run --release -p runtime --example jit_compile_time [SIZES...]`
//! (default sizes: 10000 50000 200000 1000000).

use isa::RawInsn;
use runtime::jit::{JitObject, JitOptions};
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

/// About `n` instructions: a packet bounds test, then pairs of a conditional branch
/// over one instruction (ALU, stack store/load, packet load/store) until `n`.
fn program(n: usize) -> Vec<RawInsn> {
    let mut p = vec![
        ins(0x61, 2, 1, 0, 0),
        ins(0x61, 3, 1, 4, 0),
        ins(0xbf, 4, 2, 0, 0),
        ins(0x07, 4, 0, 0, 32),
        ins(0xb7, 0, 0, 0, 0),
        ins(0x2d, 4, 3, 1, 0), // if data + 32 > data_end goto exit
        ins(0x05, 0, 0, 1, 0), // goto body
        ins(0x95, 0, 0, 0, 0), // exit
    ];
    for r in 5..=9 {
        p.push(ins(0xb7, r, 0, 0, r as i32));
    }
    let mut k = 0i32;
    while p.len() + 3 < n {
        k += 1;
        let r = 5 + (k % 5) as u8;
        p.push(ins(0x55, r, 0, 1, k)); // if r != k goto +1
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
    p
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 50_000, 200_000, 1_000_000]
    } else {
        sizes
    };
    for n in sizes {
        let p = program(n);
        let maps = runtime::maptable::MapTable::new(Vec::new());
        let prepared = runtime::program::prepare("big", "xdp", &p, &[], &maps).unwrap();
        let loaded = LoadedObject {
            maps,
            programs: vec![prepared],
            rejected: Vec::new(),
            all_programs: Vec::new(),
        };
        let jit = match JitObject::compile(&loaded, &JitOptions::default()) {
            Ok(j) => j,
            Err(e) => {
                println!("{:>8} insns: {e}", p.len());
                continue;
            }
        };
        let t = jit.compile_time();
        // The compiled code agrees with the interpreter.
        let data = [0x5au8; 64];
        let mut pkt = Packet::new(&data).unwrap();
        let mut vm = Vm::new(0);
        let j = jit.run(&mut vm, 0, &mut pkt).unwrap();
        pkt.reset(&data).unwrap();
        let i = loaded.run(&mut vm, 0, &mut pkt).unwrap();
        assert_eq!(j, i);
        println!(
            "{:>8} insns: compile {:>9.3} s  ({:.2} us/insn)",
            p.len(),
            t.as_secs_f64(),
            t.as_secs_f64() * 1e6 / p.len() as f64
        );
    }
}
