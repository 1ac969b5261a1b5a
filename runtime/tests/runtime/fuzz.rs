//! Differential fuzzing: interpreter vs JIT vs kernel on random valid programs
//! (`fuzz_gen.rs`).
//!
//! Every program runs in the interpreter and the JIT on the same packet, `Vm` and frame;
//! r0, the trap (kind, address and pc) and the output packet must agree. The generated
//! epilogue folds the stack frame and r6..r8 into r0, so r0 also checks the stack. Where
//! bpf(2) is permitted, each program is also loaded into the kernel with a raw
//! `BPF_PROG_LOAD` (type XDP, no maps) and, when the verifier accepts it, run with
//! `BPF_PROG_TEST_RUN` on the same packet: the low 32 bits of r0 and the output packet
//! must match.
//!
//! `cargo test` runs a short round; `XDP_FUZZ_PROGRAMS=N` runs N programs,
//! `XDP_FUZZ_SEED=S` changes the first seed, `XDP_FUZZ_THREADS=T` the parallelism.
//! A mismatch prints its seed: `XDP_FUZZ_SEED=<seed> XDP_FUZZ_PROGRAMS=1` replays it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use isa::RawInsn;
use runtime::jit::{JitObject, JitOptions};
use runtime::maptable::MapTable;
use runtime::{LoadedObject, Packet, Trap, TrapKind, Vm};

use super::fuzz_gen::{self, Program};

/// The kernel side: raw bpf(2) through `kclient::prog`, no libbpf.
pub(crate) mod kernel {
    use std::os::fd::OwnedFd;

    use isa::RawInsn;

    /// Loads `insns` as an XDP program: the program's fd, or the verifier's refusal.
    pub fn load(insns: &[RawInsn], want_log: bool) -> Result<OwnedFd, String> {
        load_logged(insns, want_log as u32).map(|(fd, _)| fd)
    }

    /// Loads `insns` with verifier log level `level` (0: none): the fd and the log.
    pub fn load_logged(insns: &[RawInsn], level: u32) -> Result<(OwnedFd, String), String> {
        kclient::prog::load("fuzz", insns, c"GPL", &[], level, 1 << 24).map_err(|e| e.to_string())
    }

    /// Runs the program once on `data`: (retval, data_out).
    pub fn run(fd: &OwnedFd, data: &[u8]) -> Result<(u32, Vec<u8>), String> {
        kclient::prog::test_run(fd, data, 1, 4096)
            .map(|r| (r.retval, r.data_out))
            .map_err(|e| e.to_string())
    }

    /// The kernel's id of a loaded program.
    pub fn prog_id(fd: &OwnedFd) -> Result<u32, String> {
        kclient::prog::prog_id(fd).map_err(|e| e.to_string())
    }

    /// Whether this process may load and run XDP programs.
    pub fn available() -> Result<(), String> {
        kclient::available()
    }
}

/// What one engine produced.
#[derive(Debug, PartialEq)]
pub(crate) struct Run {
    pub(crate) result: Result<u64, Trap>,
    pub(crate) packet: Vec<u8>,
}

/// A program loaded for our engines.
fn load_ours(insns: &[RawInsn], starts: &[usize]) -> Result<LoadedObject, String> {
    let maps = MapTable::new(Vec::new());
    let prepared = runtime::program::prepare("fuzz", "xdp", insns, starts, &maps)
        .map_err(|e| format!("prepare: {e}"))?;
    Ok(LoadedObject {
        maps,
        programs: vec![prepared],
        rejected: Vec::new(),
        all_programs: Vec::new(),
    })
}

/// Runs a program in the interpreter and the JIT on the same `Vm` and packet frame.
pub(crate) fn run_both(
    insns: &[RawInsn],
    starts: &[usize],
    data: &[u8],
    vm: &mut Vm,
    pkt: &mut Packet,
) -> Result<(Run, Run), String> {
    let loaded = load_ours(insns, starts)?;
    let jit =
        JitObject::compile(&loaded, &JitOptions::default()).map_err(|e| format!("jit: {e}"))?;
    pkt.reset(data).map_err(|e| e.to_string())?;
    let result = loaded.run(vm, 0, pkt);
    let interp = Run {
        result,
        packet: pkt.data_with_meta().to_vec(),
    };
    pkt.reset(data).map_err(|e| e.to_string())?;
    let result = jit.run(vm, 0, pkt);
    let jit = Run {
        result,
        packet: pkt.data_with_meta().to_vec(),
    };
    Ok((interp, jit))
}

pub(crate) fn listing(insns: &[RawInsn]) -> String {
    let mut s = String::new();
    for (pc, i) in insns.iter().enumerate() {
        s.push_str(&format!(
            "  {pc:4}: {:02x} dst={} src={} off={} imm={}\n",
            i.code, i.dst, i.src, i.off, i.imm
        ));
    }
    s
}

#[derive(Default)]
struct Stats {
    programs: AtomicU64,
    traps: AtomicU64,
    kernel_accepted: AtomicU64,
    kernel_compared: AtomicU64,
    mismatches: AtomicU64,
}

/// Checks one program; a mismatch is described in the error.
fn check_program(
    seed: u64,
    kernel_ok: bool,
    vm: &mut Vm,
    pkt: &mut Packet,
    stats: &Stats,
) -> Result<(), String> {
    let Program {
        insns,
        subprog_starts,
        packet,
    } = fuzz_gen::generate(seed);
    let (interp, jit) = run_both(&insns, &subprog_starts, &packet, vm, pkt)?;
    stats.programs.fetch_add(1, Ordering::Relaxed);
    if interp.result.is_err() {
        stats.traps.fetch_add(1, Ordering::Relaxed);
    }
    if interp != jit {
        return Err(format!(
            "interpreter and JIT differ\n  interp: {:?}\n  jit:    {:?}\n  interp packet: {}\n  jit packet:    {}",
            interp.result,
            jit.result,
            bpf_progs::hex_encode(&interp.packet),
            bpf_progs::hex_encode(&jit.packet)
        ));
    }
    if !kernel_ok {
        return Ok(());
    }
    let Ok(fd) = kernel::load(&insns, false) else {
        return Ok(());
    };
    stats.kernel_accepted.fetch_add(1, Ordering::Relaxed);
    let (retval, out) = kernel::run(&fd, &packet).map_err(|e| format!("kernel run: {e}"))?;
    stats.kernel_compared.fetch_add(1, Ordering::Relaxed);
    match interp.result {
        Ok(r0) if r0 as u32 == retval && out == interp.packet => Ok(()),
        other => Err(format!(
            "runtime and kernel differ\n  ours:   {other:?}\n  kernel: Ok({retval})\n  our packet:    {}\n  kernel packet: {}",
            bpf_progs::hex_encode(&interp.packet),
            bpf_progs::hex_encode(&out)
        )),
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn fuzz_interpreter_jit_kernel() {
    let default = if cfg!(debug_assertions) { 400 } else { 20_000 };
    let count = env_u64("XDP_FUZZ_PROGRAMS", default);
    let first = env_u64("XDP_FUZZ_SEED", 0x5eed_0000);
    let threads = env_u64(
        "XDP_FUZZ_THREADS",
        std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
    )
    .max(1);
    let kernel_ok = match kernel::available() {
        Ok(()) => true,
        Err(why) => {
            kclient::skip(
                "kernel side of the fuzzer",
                &format!("{why} (interpreter vs JIT still runs)"),
            );
            false
        }
    };
    let stats = Stats::default();
    let failures = Mutex::new(Vec::<String>::new());
    let next = AtomicU64::new(0);
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut vm = Vm::new(0);
                let mut pkt = Packet::new(&[0u8; fuzz_gen::PACKET_LEN]).unwrap();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let seed = first + i;
                    if let Err(e) = check_program(seed, kernel_ok, &mut vm, &mut pkt, &stats) {
                        stats.mismatches.fetch_add(1, Ordering::Relaxed);
                        let mut f = failures.lock().unwrap();
                        if f.len() < 10 {
                            let p = fuzz_gen::generate(seed);
                            f.push(format!("seed {seed}: {e}\n{}", listing(&p.insns)));
                        }
                    }
                }
            });
        }
    });
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "fuzz: {} programs in {:.1?} ({} trapped), kernel accepted {} and compared {}, {} mismatches",
        get(&stats.programs),
        start.elapsed(),
        get(&stats.traps),
        get(&stats.kernel_accepted),
        get(&stats.kernel_compared),
        get(&stats.mismatches),
    );
    let f = failures.into_inner().unwrap();
    assert!(f.is_empty(), "{}", f.join("\n"));
    if kernel_ok {
        // The generator aims at programs the verifier takes; most must be accepted.
        assert!(
            get(&stats.kernel_accepted) * 2 > get(&stats.programs),
            "the kernel accepted only {} of {} programs",
            get(&stats.kernel_accepted),
            get(&stats.programs)
        );
    }
}

#[test]
fn generator_is_reproducible() {
    let a = fuzz_gen::generate(42);
    let b = fuzz_gen::generate(42);
    assert_eq!(a.insns, b.insns);
    assert_eq!(a.packet, b.packet);
    assert_ne!(fuzz_gen::generate(43).insns, a.insns);
    // The shrinker's pointer-leak check accepts what the generator makes.
    for seed in 0..300 {
        let p = fuzz_gen::generate(seed);
        assert!(
            address_independent(&p.insns, &p.subprog_starts),
            "seed {seed}\n{}",
            listing(&p.insns)
        );
    }
}

/// Prints why the kernel refuses generated programs (diagnostics for the generator).
#[test]
#[ignore]
fn kernel_rejections() {
    if !kclient::require("kernel_rejections") {
        return;
    }
    let mut shown = 0;
    for seed in 0x5eed_0000..0x5eed_0000 + 300u64 {
        let p = fuzz_gen::generate(seed);
        if let Err(e) = kernel::load(&p.insns, true) {
            let last: Vec<&str> = e.lines().rev().take(3).collect();
            println!("seed {seed}: {:?}", last);
            shown += 1;
            if shown > 20 {
                break;
            }
        }
    }
}

/// Runs hand-written instructions in both engines; they must agree.
fn both(insns: &[RawInsn]) -> Result<u64, Trap> {
    let mut vm = Vm::new(0);
    let mut pkt = Packet::new(&[0u8; 64]).unwrap();
    let (interp, jit) = run_both(insns, &[], &[7u8; 64], &mut vm, &mut pkt).unwrap();
    assert_eq!(interp, jit, "interpreter vs JIT on {}", listing(insns));
    jit.result
}

pub(crate) const fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> RawInsn {
    RawInsn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

pub(crate) fn lddw(dst: u8, v: u64) -> [RawInsn; 2] {
    [
        ins(0x18, dst, 0, 0, v as u32 as i32),
        ins(0, 0, 0, 0, (v >> 32) as u32 as i32),
    ]
}

const EXIT: RawInsn = RawInsn {
    code: 0x95,
    dst: 0,
    src: 0,
    off: 0,
    imm: 0,
};

/// `r0 = a; r1 = b; r0 = r0 OP r1` for one ALU opcode (with its `off`).
fn binop(code: u8, off: i16, a: u64, b: u64) -> u64 {
    let mut p = Vec::new();
    p.extend(lddw(0, a));
    p.extend(lddw(1, b));
    p.push(ins(code, 0, 1, off, 0));
    p.push(EXIT);
    both(&p).unwrap()
}

#[test]
fn division_edge_cases_match() {
    // (code, off, a, b, expected) from the ISA document's rules.
    let min64 = i64::MIN as u64;
    let cases: &[(u8, i16, u64, u64, u64)] = &[
        (0x3f, 0, 7, 0, 0),
        (0x9f, 0, 7, 0, 7),
        (0x3f, 1, min64, u64::MAX, min64),
        (0x9f, 1, min64, u64::MAX, 0),
        (0x3f, 1, (-7i64) as u64, 2, (-3i64) as u64),
        (0x9f, 1, (-7i64) as u64, 2, (-1i64) as u64),
        (0x9f, 1, (-7i64) as u64, 0, (-7i64) as u64),
        (0x3c, 0, 7, 0, 0),
        (0x9c, 0, 0xffff_ffff_0000_0007, 0, 7),
        (0x3c, 1, 0x8000_0000, 0xffff_ffff, 0x8000_0000),
        (0x9c, 1, 0x8000_0000, 0xffff_ffff, 0),
        (0x9c, 1, 0x1_ffff_fff9, 0, 0xffff_fff9),
        (0x3c, 1, 0xffff_fff8, 2, 0xffff_fffc),
    ];
    for &(code, off, a, b, want) in cases {
        assert_eq!(
            binop(code, off, a, b),
            want,
            "{code:#x} off {off}: {a:#x}, {b:#x}"
        );
    }
}

#[test]
fn division_by_constants_match() {
    // Immediate divisors take a different path in the JIT (0 and -1 resolved statically).
    for (code, off, imm, a, want) in [
        (0x37u8, 0i16, 0i32, 9u64, 0u64),
        (0x97, 0, 0, 9, 9),
        (0x37, 1, -1, i64::MIN as u64, i64::MIN as u64),
        (0x97, 1, -1, 5, 0),
        (0x34, 1, -1, 0x8000_0000, 0x8000_0000),
        (0x94, 0, 0, 0xffff_ffff_0000_0009, 9),
        (0x37, 0, -1, 5, 0),
        (0x97, 0, -1, 5, 5),
    ] {
        let mut p = Vec::new();
        p.extend(lddw(0, a));
        p.push(ins(code, 0, 0, off, imm));
        p.push(EXIT);
        assert_eq!(both(&p).unwrap(), want, "{code:#x} off {off} imm {imm}");
    }
}

#[test]
fn shifts_swaps_and_sign_extension_match() {
    assert_eq!(binop(0x6f, 0, 1, 65), 2);
    assert_eq!(binop(0x6c, 0, 1, 33), 2);
    assert_eq!(binop(0xcf, 0, 1 << 63, 127), u64::MAX);
    assert_eq!(binop(0xcc, 0, 0x8000_0000, 31), 0xffff_ffff);
    assert_eq!(binop(0xbf, 8, 0, 0x80), 0xffff_ffff_ffff_ff80);
    assert_eq!(binop(0xbc, 16, 0, 0x8000), 0xffff_8000);
    assert_eq!(binop(0xbf, 32, 0, 0x8000_0000), 0xffff_ffff_8000_0000);
    for (code, imm, want) in [
        (0xd7u8, 16, 0x8877u64),
        (0xd7, 32, 0x8877_6655),
        (0xd7, 64, 0x8877_6655_4433_2211),
        (0xdc, 16, 0x8877),
        (0xd4, 32, 0x5566_7788),
        (0xd4, 64, 0x1122_3344_5566_7788),
    ] {
        let mut p = Vec::new();
        p.extend(lddw(0, 0x1122_3344_5566_7788));
        p.push(ins(code, 0, 0, 0, imm));
        p.push(EXIT);
        assert_eq!(both(&p).unwrap(), want, "{code:#x} {imm}");
    }
}

#[test]
fn wild_pointers_trap_alike() {
    // Addresses at the very top of the address space: the region checks must not
    // overflow, and nothing may be touched.
    for addr in [u64::MAX, u64::MAX - 3, 0, 0x1000, 1 << 47] {
        let mut p = Vec::new();
        p.extend(lddw(1, addr));
        p.push(ins(0x61, 0, 1, 0, 0));
        p.push(EXIT);
        let t = both(&p).unwrap_err();
        assert_eq!(t.pc, 2);
        assert!(
            matches!(t.kind, TrapKind::OutOfBounds { addr: a, len: 4, write: false } if a == addr)
        );
        let mut p = Vec::new();
        p.extend(lddw(1, addr));
        p.push(ins(0x7a, 1, 0, 0, 5));
        p.push(EXIT);
        let t = both(&p).unwrap_err();
        assert!(matches!(
            t.kind,
            TrapKind::OutOfBounds {
                write: true,
                len: 8,
                ..
            }
        ));
    }
}

#[test]
fn calls_frames_and_depth_match() {
    // main: r6 = 100; *(fp-8) = 11; call f; r0 += *(fp-8) + r6.
    // f: *(fp-8) = 22 (its own frame); r6 = 1000; reads the caller's fp-8 through
    // fp+504; r0 = 5 + that.
    let p = [
        ins(0xb7, 6, 0, 0, 100),
        ins(0x7a, 10, 0, -8, 11),
        ins(0x85, 0, 1, 0, 4),
        ins(0x79, 1, 10, -8, 0),
        ins(0x0f, 0, 1, 0, 0),
        ins(0x0f, 0, 6, 0, 0),
        EXIT,
        // f
        ins(0x7a, 10, 0, -8, 22),
        ins(0xb7, 6, 0, 0, 1000),
        ins(0x79, 2, 10, 504, 0),
        ins(0xb7, 0, 0, 0, 5),
        ins(0x0f, 0, 2, 0, 0),
        EXIT,
    ];
    let mut vm = Vm::new(0);
    let mut pkt = Packet::new(&[0u8; 64]).unwrap();
    let (interp, jit) = run_both(&p, &[7], &[0u8; 64], &mut vm, &mut pkt).unwrap();
    assert_eq!(interp, jit);
    assert_eq!(jit.result.unwrap(), 5 + 11 + 11 + 100);
    // Unbounded recursion stops at 8 frames with the pc of the failing call.
    let p = [ins(0x85, 0, 1, 0, -1), EXIT];
    let t = both(&p).unwrap_err();
    assert_eq!(
        t,
        Trap {
            kind: TrapKind::CallDepth,
            pc: 0
        }
    );
}

#[test]
fn atomics_match() {
    for (code, op) in [
        (0xdbu8, 0x00),
        (0xdb, 0x01),
        (0xdb, 0x41),
        (0xdb, 0x51),
        (0xdb, 0xa1),
        (0xdb, 0xe1),
        (0xdb, 0xf1),
        (0xc3, 0x01),
        (0xc3, 0xa0),
        (0xc3, 0xf1),
        (0xc3, 0xe1),
    ] {
        for r0 in [0x0f0f_0000_ffffu64, 0x1234] {
            let mut p = Vec::new();
            p.extend(lddw(1, 0x1_0000_1234));
            p.push(ins(0x7b, 10, 1, -8, 0));
            p.extend(lddw(2, 0xffff_0000_00ff_00ff));
            p.extend(lddw(0, r0));
            p.push(ins(code, 10, 2, -8, op));
            // r0 = r0 ^ r2 * 3 ^ mem * 7
            p.push(ins(0x79, 3, 10, -8, 0));
            p.push(ins(0x27, 2, 0, 0, 3));
            p.push(ins(0x27, 3, 0, 0, 7));
            p.push(ins(0xaf, 0, 2, 0, 0));
            p.push(ins(0xaf, 0, 3, 0, 0));
            p.push(EXIT);
            both(&p).unwrap();
        }
    }
    // Misaligned.
    let p = [ins(0xb7, 2, 0, 0, 1), ins(0xdb, 10, 2, -12, 0), EXIT];
    assert!(matches!(
        both(&p).unwrap_err().kind,
        TrapKind::MisalignedAtomic { len: 8, .. }
    ));
}

/// One ALU or byte-order instruction on random operands, in all three engines: the whole
/// 64-bit result is compared (the kernel returns its low half, then its high half).
#[test]
fn single_instructions_match_the_kernel() {
    let kernel_ok = kernel::available();
    if let Err(why) = &kernel_ok {
        kclient::skip("kernel side of single_instructions_match_the_kernel", why);
    }
    let mut rng = fuzz_gen::Rng::new(7);
    let mut codes: Vec<(u8, i16, i32)> = Vec::new();
    for class in [0x07u8, 0x04] {
        for op in [
            0x00u8, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x90, 0xa0, 0xc0,
        ] {
            codes.push((class | op | 0x08, 0, 0));
            if op == 0x30 || op == 0x90 {
                codes.push((class | op | 0x08, 1, 0));
            }
        }
        codes.push((class | 0x80, 0, 0));
        codes.push((class | 0xb0 | 0x08, 8, 0));
        codes.push((class | 0xb0 | 0x08, 16, 0));
    }
    codes.push((0xbf, 32, 0));
    for bits in [16, 32, 64] {
        codes.push((0xd4, 0, bits));
        codes.push((0xdc, 0, bits));
        codes.push((0xd7, 0, bits));
    }
    let mut vm = Vm::new(0);
    let mut pkt = Packet::new(&[0u8; 64]).unwrap();
    let mut failures = Vec::new();
    let mut compared = 0;
    for &(code, off, imm) in &codes {
        for _ in 0..12 {
            let a = match rng.below(4) {
                0 => rng.next(),
                1 => rng.next() as u32 as u64,
                2 => (rng.next() as i32) as i64 as u64,
                _ => [0, 1, u64::MAX, 1 << 63, 0x8000_0000, 0xffff_ffff][rng.below(6) as usize],
            };
            let b = match rng.below(4) {
                0 => rng.next(),
                1 => rng.below(70),
                2 => (rng.next() as i32) as i64 as u64,
                _ => [0, 1, u64::MAX, 1 << 63, 0x8000_0000, 0xffff_ffff][rng.below(6) as usize],
            };
            let mut p = Vec::new();
            p.extend(lddw(0, a));
            p.extend(lddw(1, b));
            let src = if code & 0x08 != 0 && code & 0xf0 != 0xd0 {
                1
            } else {
                0
            };
            p.push(ins(code, 0, src, off, imm));
            p.push(EXIT);
            let (interp, jit) = run_both(&p, &[], &[0u8; 64], &mut vm, &mut pkt).unwrap();
            assert_eq!(interp, jit, "{}", listing(&p));
            let ours = jit.result.unwrap();
            if kernel_ok.is_err() {
                continue;
            }
            let mut hi = p.clone();
            hi.insert(hi.len() - 1, ins(0x77, 0, 0, 0, 32));
            let mut theirs = 0u64;
            for (shift, prog) in [(0, &p), (32, &hi)] {
                let fd =
                    kernel::load(prog, true).unwrap_or_else(|e| panic!("{e}\n{}", listing(prog)));
                let (r, _) = kernel::run(&fd, &[0u8; 64]).unwrap();
                theirs |= (r as u64) << shift;
            }
            compared += 1;
            if ours != theirs {
                failures.push(format!(
                    "{code:#04x} off {off} imm {imm}: {a:#x}, {b:#x}: ours {ours:#x}, kernel {theirs:#x}"
                ));
            }
        }
    }
    println!("{compared} single instructions compared with the kernel");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Whether our engines and the kernel disagree on `insns` (None: the kernel refuses it,
/// the engines disagree among themselves, or the result may depend on addresses: see
/// `address_independent`; each side also runs twice, at different addresses in ours).
fn kernel_mismatch(insns: &[RawInsn], starts: &[usize], data: &[u8]) -> Option<bool> {
    kernel_mismatch_with(insns, starts, data, false)
}

/// `kernel_mismatch`; with `explained`, also requires that the kernel accepts the program
/// with its atomic fetches rewritten into plain accesses (`fuzz_regress::deatomise`) and
/// agrees with us on that one: the mismatch is then the verifier's atomic-fetch
/// precision bug, and the program stays one that reads nothing uninitialised.
fn kernel_mismatch_with(
    insns: &[RawInsn],
    starts: &[usize],
    data: &[u8],
    explained: bool,
) -> Option<bool> {
    if !address_independent(insns, starts) {
        return None;
    }
    // The kernel first: it refuses the loops a shrink step may have made endless.
    let fd = kernel::load(insns, false).ok()?;
    let mut vm = Vm::new(0);
    let mut pkt = Packet::new(data).ok()?;
    let (interp, jit) = run_both(insns, starts, data, &mut vm, &mut pkt).ok()?;
    if interp != jit {
        return None;
    }
    let mut vm2 = Vm::new(0);
    let mut pkt2 = Packet::new(data).ok()?;
    let (again, _) = run_both(insns, starts, data, &mut vm2, &mut pkt2).ok()?;
    if again != interp {
        return None;
    }
    let (retval, out) = kernel::run(&fd, data).ok()?;
    for _ in 0..2 {
        if kernel::run(&fd, data).ok()? != (retval, out.clone()) {
            return None;
        }
    }
    let mismatch = !matches!(interp.result, Ok(r0) if r0 as u32 == retval && out == interp.packet);
    if explained && mismatch {
        let (plain, plain_starts) = super::fuzz_regress::deatomise(insns, starts);
        let fd = kernel::load(&plain, false).ok()?;
        let (r, o) = kernel::run(&fd, data).ok()?;
        let (ours, _) = run_both(&plain, &plain_starts, data, &mut vm, &mut pkt).ok()?;
        if ours != interp
            || !matches!(interp.result, Ok(r0) if r0 as u32 == r && o == interp.packet)
        {
            return None;
        }
    }
    Some(mismatch)
}

/// Shrinks a kernel mismatch (`XDP_FUZZ_SEED`) and prints what is left, as a Rust
/// literal for `fuzz_regress.rs`.
#[test]
#[ignore]
fn minimise_kernel_mismatch() {
    let Ok(seed) = std::env::var("XDP_FUZZ_SEED").map(|s| s.parse::<u64>().unwrap()) else {
        println!("SKIP: set XDP_FUZZ_SEED");
        return;
    };
    let p = fuzz_gen::generate(seed);
    assert_eq!(
        kernel_mismatch(&p.insns, &p.subprog_starts, &p.packet),
        Some(true)
    );
    // Shrink keeping the explanation when it holds: the kernel's verifier bug.
    let explained =
        kernel_mismatch_with(&p.insns, &p.subprog_starts, &p.packet, true) == Some(true);
    println!(
        "seed {seed}: {}",
        if explained {
            "the de-atomised program matches us in the kernel: the verifier's atomic-fetch bug"
        } else {
            "NOT explained by the atomic-fetch verifier bug"
        }
    );
    let (insns, starts) = shrink(&p.insns, &p.subprog_starts, &p.packet, explained);
    let kept: Vec<String> = insns
        .iter()
        .enumerate()
        .map(|(pc, i)| {
            format!(
                "        ins(0x{:02x}, {}, {}, {}, {}), // {pc}",
                i.code, i.dst, i.src, i.off, i.imm
            )
        })
        .collect();
    println!(
        "seed {seed}, starts {starts:?}, packet {}:\n{}",
        bpf_progs::hex_encode(&p.packet),
        kept.join("\n")
    );
    let mut vm = Vm::new(0);
    let mut pkt = Packet::new(&p.packet).unwrap();
    let (interp, _) = run_both(&insns, &starts, &p.packet, &mut vm, &mut pkt).unwrap();
    let fd = kernel::load(&insns, false).unwrap();
    println!(
        "ours {:?} {}\nkernel {:?}",
        interp.result.map(|r| format!("{r:#x}")),
        bpf_progs::hex_encode(&interp.packet),
        kernel::run(&fd, &p.packet).map(|(r, o)| (format!("{r:#x}"), bpf_progs::hex_encode(&o)))
    );
}

/// Removes the instructions `keep[pc] == false` (never half of an lddw), fixing the
/// offsets of jumps and calls that cross them: the remaining program and its subprogram
/// starts, or None when a jump or call targets a removed instruction that has no
/// surviving successor.
fn compact(
    insns: &[RawInsn],
    starts: &[usize],
    keep: &[bool],
) -> Option<(Vec<RawInsn>, Vec<usize>)> {
    // new_index[pc]: the new slot of pc, or of the first kept slot after it.
    let mut new_index = vec![0usize; insns.len() + 1];
    let mut n = 0;
    for pc in 0..insns.len() {
        new_index[pc] = n;
        if keep[pc] {
            n += 1;
        }
    }
    new_index[insns.len()] = n;
    let mut out = Vec::with_capacity(n);
    for (pc, i) in insns.iter().enumerate() {
        if !keep[pc] {
            continue;
        }
        let mut i = *i;
        let class = i.code & 0x07;
        let is_jump = (class == 0x05 || class == 0x06) && i.code & 0xf0 != 0x90;
        let helper_call = i.code == 0x85 && i.src != 1;
        if is_jump && !helper_call {
            let in_imm = i.code == 0x85 || i.code == 0x06;
            let off = if in_imm { i.imm as i64 } else { i.off as i64 };
            let target = pc as i64 + 1 + off;
            if target < 0 || target as usize > insns.len() {
                return None;
            }
            let new_off = new_index[target as usize] as i64 - new_index[pc] as i64 - 1;
            if in_imm {
                i.imm = new_off as i32;
            } else {
                i.off = i16::try_from(new_off).ok()?;
            }
        }
        out.push(i);
    }
    let mut new_starts = Vec::new();
    for &s in starts {
        if !keep[s] {
            return None;
        }
        new_starts.push(new_index[s]);
    }
    Some((out, new_starts))
}

/// Whether no register that may hold a pointer is used as a scalar (an ALU operand, a
/// stored value, a branch operand against a scalar, a call argument to a subprogram, the
/// return value): a forward data-flow over each function, joining over paths.
///
/// Root may leak pointers into scalars, so a shrink step that removes the instruction
/// overwriting a pointer yields a program whose result depends on where its stack and
/// packet live; such programs are no comparison.
fn address_independent(insns: &[RawInsn], starts: &[usize]) -> bool {
    const SCALAR: u8 = 1;
    const PTR: u8 = 2;
    const CTX: u8 = 4;
    const UNINIT: u8 = 8;
    let mut bounds: Vec<usize> = std::iter::once(0).chain(starts.iter().copied()).collect();
    bounds.sort_unstable();
    bounds.push(insns.len());
    for f in 0..bounds.len() - 1 {
        let (lo, hi) = (bounds[f], bounds[f + 1]);
        let mut entry = [UNINIT; 11];
        entry[10] = PTR;
        if f == 0 {
            entry[1] = CTX;
        } else {
            entry[1..=5].fill(SCALAR);
        }
        let mut state: Vec<Option<[u8; 11]>> = vec![None; hi - lo];
        state[0] = Some(entry);
        let mut changed = true;
        while changed {
            changed = false;
            let mut pc = lo;
            while pc < hi {
                let Some(mut r) = state[pc - lo] else {
                    pc += 1;
                    continue;
                };
                let i = insns[pc];
                let (d, s) = (i.dst as usize, i.src as usize);
                if d > 10 || s > 10 {
                    return false;
                }
                let class = i.code & 7;
                let bad = |v: u8| v & (PTR | CTX) != 0;
                let mut succ: Vec<usize> = Vec::new();
                let mut len = 1;
                match class {
                    0x04 | 0x07 => {
                        let op = i.code & 0xf0;
                        let reg = i.code & 0x08 != 0 && op != 0xd0;
                        if op == 0xb0 {
                            r[d] = if reg { r[s] } else { SCALAR };
                            if reg && i.off != 0 && bad(r[s]) {
                                return false;
                            }
                        } else if (op == 0x00 || op == 0x10) && !reg && class == 0x07 {
                            // pointer += imm stays a pointer
                        } else {
                            if bad(r[d]) || (reg && bad(r[s])) {
                                return false;
                            }
                            r[d] = SCALAR;
                        }
                    }
                    0x00 => {
                        if i.code == 0x18 {
                            r[d] = SCALAR;
                            len = 2;
                        }
                    }
                    0x01 => {
                        r[d] = if r[s] & CTX != 0 { PTR } else { SCALAR };
                    }
                    0x02 => {}
                    0x03 => {
                        if bad(r[s]) {
                            return false;
                        }
                        if i.code & 0xe0 == 0xc0 {
                            if i.imm == 0xf1 {
                                if bad(r[0]) {
                                    return false;
                                }
                                r[0] = SCALAR;
                            } else if i.imm & 1 != 0 {
                                r[s] = SCALAR;
                            }
                        }
                    }
                    _ => {
                        let op = i.code & 0xf0;
                        if i.code == 0x95 {
                            if bad(r[0]) {
                                return false;
                            }
                            len = 0;
                        } else if i.code == 0x85 {
                            if i.src == 1 && r[1..=5].iter().any(|&v| bad(v)) {
                                return false;
                            }
                            r[1..=5].fill(UNINIT);
                            r[0] = SCALAR;
                        } else if op == 0x00 {
                            let off = if class == 0x06 {
                                i.imm as i64
                            } else {
                                i.off as i64
                            };
                            succ.push((pc as i64 + 1 + off) as usize);
                            len = 0;
                        } else {
                            let reg = i.code & 0x08 != 0;
                            let both_ptr = reg
                                && bad(r[d])
                                && bad(r[s])
                                && r[d] & SCALAR == 0
                                && r[s] & SCALAR == 0;
                            if !both_ptr && (bad(r[d]) || (reg && bad(r[s]))) {
                                return false;
                            }
                            succ.push((pc as i64 + 1 + i.off as i64) as usize);
                        }
                    }
                }
                if len > 0 {
                    succ.push(pc + len);
                }
                for t in succ {
                    if t < lo || t >= hi {
                        continue;
                    }
                    let slot = &mut state[t - lo];
                    let joined = match slot {
                        None => r,
                        Some(old) => std::array::from_fn(|k| old[k] | r[k]),
                    };
                    if *slot != Some(joined) {
                        *slot = Some(joined);
                        changed = true;
                    }
                }
                pc += 1.max(len);
            }
        }
    }
    true
}

/// Shrinks a kernel mismatch: nops out instructions, then removes the nops, while the
/// mismatch persists. (Frame initialisation stores stay: without them the program would
/// read uninitialised stack, which the kernel allows root but which has no defined value.)
fn shrink(
    insns: &[RawInsn],
    starts: &[usize],
    packet: &[u8],
    explained: bool,
) -> (Vec<RawInsn>, Vec<usize>) {
    let mut insns = insns.to_vec();
    let mut starts = starts.to_vec();
    let nop = ins(0xbf, 0, 0, 0, 0);
    let mut changed = true;
    while changed {
        changed = false;
        let mut pc = 0;
        while pc < insns.len() {
            let len = if insns[pc].code == 0x18 { 2 } else { 1 };
            let init_store = insns[pc].code == 0x7a && insns[pc].dst == 10;
            if insns[pc] != nop && insns[pc].code != 0x95 && !init_store {
                let mut t = insns.clone();
                for k in 0..len {
                    t[pc + k] = nop;
                }
                if kernel_mismatch_with(&t, &starts, packet, explained) == Some(true) {
                    insns = t;
                    changed = true;
                }
            }
            pc += len;
        }
        // Remove the nops one at a time (a jump may target one).
        let mut pc = 0;
        while pc < insns.len() {
            if insns[pc] == nop {
                let mut keep = vec![true; insns.len()];
                keep[pc] = false;
                if let Some((t, s)) = compact(&insns, &starts, &keep) {
                    if kernel_mismatch_with(&t, &s, packet, explained) == Some(true) {
                        insns = t;
                        starts = s;
                        changed = true;
                        continue;
                    }
                }
            }
            pc += 1;
        }
    }
    (insns, starts)
}

/// Loads the program in the file `XDP_FUZZ_INSNS` (one `code dst src off imm` per line,
/// as the minimiser prints them; `starts` and `packet` lines optional) into the kernel
/// with a full verifier log, prints the log, the kernel's translated program and both
/// results. (A diagnostic.)
#[test]
#[ignore]
fn explain_program() {
    let Ok(path) = std::env::var("XDP_FUZZ_INSNS") else {
        println!("SKIP: set XDP_FUZZ_INSNS");
        return;
    };
    let text = std::fs::read_to_string(path).unwrap();
    let mut insns = Vec::new();
    let mut starts = Vec::new();
    let mut packet = vec![0u8; 64];
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("starts") {
            starts = rest
                .split_whitespace()
                .map(|s| s.parse().unwrap())
                .collect();
            continue;
        }
        if let Some(rest) = line.strip_prefix("packet") {
            packet = bpf_progs::hex_decode(rest.trim()).unwrap();
            continue;
        }
        let line = line.trim_start_matches("ins(").split("//").next().unwrap();
        let f: Vec<i64> = line
            .split(|c: char| c == ',' || c == ')' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.strip_prefix("0x")
                    .map(|h| i64::from_str_radix(h, 16).unwrap())
                    .unwrap_or_else(|| s.parse().unwrap())
            })
            .collect();
        if f.len() == 5 {
            insns.push(ins(
                f[0] as u8,
                f[1] as u8,
                f[2] as u8,
                f[3] as i16,
                f[4] as i32,
            ));
        }
    }
    let (fd, log) = kernel::load_logged(&insns, 2).unwrap_or_else(|e| panic!("{e}"));
    println!("{log}");
    let id = kernel::prog_id(&fd).unwrap().to_string();
    let x = std::process::Command::new("bpftool")
        .args(["prog", "dump", "xlated", "id", &id])
        .output()
        .unwrap();
    println!("{}", String::from_utf8_lossy(&x.stdout));
    let mut vm = Vm::new(0);
    let mut pkt = Packet::new(&packet).unwrap();
    let (interp, jit) = run_both(&insns, &starts, &packet, &mut vm, &mut pkt).unwrap();
    println!(
        "interp {:?}\njit {:?}\nkernel {:?}",
        interp.result.map(|r| format!("{r:#x}")),
        jit.result.map(|r| format!("{r:#x}")),
        kernel::run(&fd, &packet).map(|(r, _)| format!("{r:#x}"))
    );
}

/// bpf_csum_diff on stack buffers, with edge-case seeds and sizes, in all three engines.
#[test]
fn csum_diff_matches_the_kernel() {
    let kernel_ok = kernel::available();
    if let Err(why) = &kernel_ok {
        kclient::skip("kernel side of csum_diff_matches_the_kernel", why);
    }
    let mut failures = Vec::new();
    let mut vm = Vm::new(0);
    let mut pkt = Packet::new(&[0u8; 64]).unwrap();
    let mut rng = fuzz_gen::Rng::new(28);
    let seeds = [
        0u64,
        1,
        0xffff,
        0xffff_0000,
        0xffff_ffff,
        0x1234_5678,
        0xffff_ffff_0000_0001,
    ];
    for round in 0..40 {
        let seed = if round < seeds.len() {
            seeds[round]
        } else {
            rng.next()
        };
        // Stack words: fixed ones first, then random ones, which also reach the sums
        // whose one's-complement zero has two forms.
        let words: [i32; 4] = if round < seeds.len() {
            [0x7fff_ffff, -0x1234_5678, -1, 0x0102_0304]
        } else {
            std::array::from_fn(|_| match rng.below(3) {
                0 => -1,
                1 => 0,
                _ => rng.next() as i32,
            })
        };
        for (fs, ts) in [(0, 0), (0, 4), (4, 0), (8, 8), (16, 4), (4, 16)] {
            let mut p = vec![
                ins(0x7a, 10, 0, -8, words[0]),
                ins(0x7a, 10, 0, -16, words[1]),
                ins(0x7a, 10, 0, -24, words[2]),
                ins(0x7a, 10, 0, -32, words[3]),
                ins(0xbf, 1, 10, 0, 0),
                ins(0x07, 1, 0, 0, -16),
                ins(0xb7, 2, 0, 0, fs),
                ins(0xbf, 3, 10, 0, 0),
                ins(0x07, 3, 0, 0, -32),
                ins(0xb7, 4, 0, 0, ts),
            ];
            p.extend(lddw(5, seed));
            p.push(ins(0x85, 0, 0, 0, 28));
            p.push(EXIT);
            let (interp, jit) = run_both(&p, &[], &[0u8; 64], &mut vm, &mut pkt).unwrap();
            assert_eq!(interp, jit);
            if kernel_ok.is_err() {
                continue;
            }
            // The whole 64-bit r0: its low half, then its high half.
            let mut hi = p.clone();
            hi.insert(hi.len() - 1, ins(0x77, 0, 0, 0, 32));
            let mut r = 0u64;
            for (shift, prog) in [(0, &p), (32, &hi)] {
                let fd = kernel::load(prog, true).unwrap_or_else(|e| panic!("{e}"));
                r |= (kernel::run(&fd, &[0u8; 64]).unwrap().0 as u64) << shift;
            }
            let ours = interp.result.unwrap();
            if ours != r {
                failures.push(format!(
                    "seed {seed:#x} from {fs} to {ts}: ours {ours:#x}, kernel {r:#x}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Fuzz seeds that once disagreed with the kernel: the interpreter's bpf_csum_diff
/// returned 0xffff where the kernel returns 0 (its 6.13 formula), fixed in
/// `helpers/misc.rs`. Replayed through all three engines. (Since the generator puts a
/// non-fetching atomic before each atomic fetch, these seeds generate other programs;
/// `csum_diff_matches_the_kernel` covers the formula directly.)
#[test]
fn fuzz_regressions() {
    let kernel_ok = match kernel::available() {
        Ok(()) => true,
        Err(why) => {
            kclient::skip("kernel side of fuzz_regressions", &why);
            false
        }
    };
    let stats = Stats::default();
    let mut vm = Vm::new(0);
    let mut pkt = Packet::new(&[0u8; 64]).unwrap();
    for seed in [1592590525u64, 1592591573, 1592591683, 1592591707] {
        check_program(seed, kernel_ok, &mut vm, &mut pkt, &stats)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

/// For the seeds in `XDP_PROBE_SEEDS` (comma-separated): does the kernel mismatch
/// persist with every bpf_csum_diff call replaced by `r0 = 0`? (A diagnostic.)
#[test]
#[ignore]
fn probe_csum_in_kernel_mismatches() {
    let Ok(list) = std::env::var("XDP_PROBE_SEEDS") else {
        println!("SKIP: set XDP_PROBE_SEEDS");
        return;
    };
    for seed in list.split(',').filter_map(|s| s.trim().parse::<u64>().ok()) {
        let p = fuzz_gen::generate(seed);
        let mut t = p.insns.clone();
        for i in t.iter_mut() {
            if i.code == 0x85 && i.src == 0 && i.imm == 28 {
                *i = ins(0xb7, 0, 0, 0, 0);
            }
        }
        println!(
            "seed {seed}: as generated {:?}, without csum_diff {:?}",
            kernel_mismatch(&p.insns, &p.subprog_starts, &p.packet),
            kernel_mismatch(&t, &p.subprog_starts, &p.packet)
        );
    }
}

/// An atomic add (and xchg) on a stack slot that holds a spilled constant, then a branch
/// on the slot's value: ours must see the updated value. Prints what the kernel returns
/// (the kernel mismatches this pattern led to are in `fuzz_regress.rs`).
#[test]
fn atomics_on_spilled_constants() {
    // fp-8 = 5; r7 = 3; lock fp-8 += r7; r0 = fp-8; if r0 == 5 goto +1; r0 = 99; exit
    let add = [
        ins(0x7a, 10, 0, -8, 5),
        ins(0xb7, 7, 0, 0, 3),
        ins(0xdb, 10, 7, -8, 0x00),
        ins(0x79, 0, 10, -8, 0),
        ins(0x15, 0, 0, 1, 5),
        ins(0xb7, 0, 0, 0, 99),
        EXIT,
    ];
    // fp-8 = 5; r6 = 7; r6 = xchg(fp-8, r6); lock fp-8 += r6; r0 = fp-8; (5 + 5 = 10)
    let xchg = [
        ins(0x7a, 10, 0, -8, 5),
        ins(0xb7, 6, 0, 0, 7),
        ins(0xdb, 10, 6, -8, 0xe1),
        ins(0xdb, 10, 6, -8, 0x00),
        ins(0x79, 0, 10, -8, 0),
        EXIT,
    ];
    assert_eq!(both(&add).unwrap(), 99);
    assert_eq!(both(&xchg).unwrap(), 12);
    if let Err(why) = kernel::available() {
        kclient::skip("kernel side of atomics_on_spilled_constants", &why);
        return;
    }
    for (name, p) in [("add", &add[..]), ("xchg", &xchg[..])] {
        match kernel::load(p, true) {
            Ok(fd) => println!(
                "kernel {name}: {:?}",
                kernel::run(&fd, &[0u8; 64]).map(|r| r.0)
            ),
            Err(e) => println!("kernel {name}: refused: {}", e.lines().last().unwrap_or("")),
        }
    }
}
