//! The analysis (`runtime::verifier`): its proofs are audited by running programs with
//! every check on (a trap at a proven slot ends with `ProofViolated`), and its coverage
//! of the bpf-progs programs is measured.

use std::collections::BTreeSet;

use bpf_progs::Cpu;
use isa::RawInsn;
use runtime::maptable::MapTable;
use runtime::{LoadedObject, Packet, TrapKind, Vm};

use super::fuzz_gen;

fn load(path: &std::path::Path) -> LoadedObject {
    let bytes = std::fs::read(path).expect("object");
    let obj = loader::Object::parse(&bytes).expect("parses");
    let store = maps::Store::anonymous(maps::StoreOptions::default()).expect("store");
    // The store's maps live as long as the loaded object needs them (leaked on purpose
    // in tests: the anonymous store is small).
    let store = Box::leak(Box::new(store));
    LoadedObject::load(&obj, store).expect("loads")
}

/// For every bpf-progs program: accesses proven / total; at least 99% overall.
#[test]
fn coverage_of_bpf_progs() {
    let mut seen = BTreeSet::new();
    let (mut proven, mut total) = (0usize, 0usize);
    let mut lines = Vec::new();
    for cpu in Cpu::ALL {
        for case in bpf_progs::cases() {
            if !seen.insert((case.object, case.prog, cpu.as_str())) {
                continue;
            }
            let Some(path) = bpf_progs::object_for(case.object, cpu) else {
                println!("SKIP: {} not built for -mcpu={}", case.object, cpu.as_str());
                continue;
            };
            let loaded = load(&path);
            let index = loaded.program_index(Some(case.prog)).expect("program");
            let a = loaded.programs[index].analysis();
            let (p, t) = a.coverage();
            // Exactly the proven accesses run unchecked in the interpreter.
            let unchecked = loaded.programs[index]
                .ops()
                .iter()
                .filter(|op| op.is_proven())
                .count();
            assert_eq!(unchecked, p, "{}:{}", case.object, case.prog);
            proven += p;
            total += t;
            lines.push(format!(
                "{:>4}/{:<4} {}:{} -mcpu={} ({} insns processed{})",
                p,
                t,
                case.object,
                case.prog,
                cpu.as_str(),
                a.processed,
                if a.gave_up { ", gave up" } else { "" }
            ));
            for (_, text) in a.unproven().iter().take(3) {
                lines.push(format!("    {}", text.replace('\n', "\n    ")));
            }
        }
    }
    for l in &lines {
        println!("{l}");
    }
    println!(
        "coverage: {proven}/{total} accesses proven ({:.2}%)",
        100.0 * proven as f64 / total.max(1) as f64
    );
    assert!(total > 0);
    assert!(
        proven * 100 >= total * 99,
        "only {proven} of {total} accesses proven"
    );
}

/// Every bpf-progs case in the interpreter, which audits every trap against the
/// proofs, and in the JIT in audit mode (the checks of proven accesses kept): none may
/// end with ProofViolated.
#[test]
fn bpf_progs_never_violate_a_proof() {
    let mut runs = 0;
    for cpu in Cpu::ALL {
        for case in bpf_progs::cases() {
            let Some(path) = bpf_progs::object_for(case.object, cpu) else {
                continue;
            };
            let sets = case.sets_bytes().expect("hex");
            for packet in case.packets {
                let data = std::fs::read(bpf_progs::packet(packet)).expect("packet");
                for engine in [super::jit::Engine::Audit, super::jit::Engine::JitAudit] {
                    let r = super::jit::run_engine(
                        engine,
                        &path,
                        case.prog,
                        &data,
                        case.repeat,
                        &sets,
                        &case.prog_sets_owned(),
                    );
                    if let Err(e) = &r {
                        assert!(
                            !e.contains("unsound proof"),
                            "{} [-mcpu={}] {}: {e}",
                            case.label(packet),
                            cpu.as_str(),
                            engine.name()
                        );
                    }
                    runs += 1;
                }
            }
        }
    }
    println!("audited {runs} runs");
    assert!(runs > 0);
}

fn fuzz_count(default: u64) -> u64 {
    std::env::var("XDP_VERIFIER_FUZZ")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The differential fuzzer's programs in the interpreter: none may end with
/// ProofViolated. XDP_VERIFIER_FUZZ=N runs N programs (default a few thousand).
#[test]
fn fuzz_programs_never_violate_a_proof() {
    let count = fuzz_count(if cfg!(debug_assertions) { 3000 } else { 50_000 });
    let mut vm = Vm::new(0);
    vm.set_audit(true);
    let mut pkt = Packet::new(&[0u8; fuzz_gen::PACKET_LEN]).unwrap();
    let (mut traps, mut proven, mut total, mut ran) = (0u64, 0usize, 0usize, 0u64);
    for seed in 0..count {
        let p = fuzz_gen::generate(0xa0d1_0000 + seed);
        let maps = MapTable::new(Vec::new());
        let Ok(prepared) =
            runtime::program::prepare("fuzz", "xdp", &p.insns, &p.subprog_starts, &maps)
        else {
            continue;
        };
        let (a, b) = prepared.analysis().coverage();
        proven += a;
        total += b;
        let loaded = LoadedObject {
            maps,
            programs: vec![prepared],
            rejected: Vec::new(),
            all_programs: Vec::new(),
        };
        pkt.reset(&p.packet).unwrap();
        ran += 1;
        if let Err(t) = loaded.run(&mut vm, 0, &mut pkt) {
            traps += 1;
            assert!(
                !matches!(t.kind, TrapKind::ProofViolated { .. }),
                "seed {}: {t}\n{}",
                0xa0d1_0000 + seed,
                listing(&p.insns)
            );
        }
    }
    println!(
        "verifier fuzz: {ran} programs run ({traps} trapped), {proven}/{total} accesses proven"
    );
    assert!(ran > count / 2);
}

fn listing(insns: &[RawInsn]) -> String {
    isa::disassemble(insns).unwrap_or_default()
}

/// Prints how long `prepare` (decoding, structural checks and the analysis) takes for
/// xdp_parser (the budget: analysis plus JIT within 2 ms); measure in release.
#[test]
fn analysis_time_of_xdp_parser() {
    let path = bpf_progs::object("xdp_parser");
    let bytes = std::fs::read(&path).expect("object");
    let obj = loader::Object::parse(&bytes).expect("parses");
    let loaded = load(&path);
    let p = obj
        .programs
        .iter()
        .find(|p| p.name == "xdp_parser")
        .expect("xdp_parser");
    let starts: Vec<usize> = p.subprogs.iter().map(|s| s.start).collect();
    let mut times = Vec::new();
    for _ in 0..25 {
        let t = std::time::Instant::now();
        let prepared =
            runtime::program::prepare(&p.name, &p.section, &p.insns, &starts, &loaded.maps)
                .expect("prepares");
        times.push(t.elapsed());
        assert!(prepared.analysis().processed > 0);
    }
    times.sort();
    println!(
        "xdp_parser: prepare with analysis {:?} (median of 25, {} slots)",
        times[12],
        p.insns.len()
    );
}

/// The hostile programs: where one must end with a memory trap at a pc, that access
/// (or helper call) is not proven; and none ends with ProofViolated in the
/// interpreter (the suite itself checks each ends as expected).
#[test]
fn hostile_memory_traps_are_not_proven() {
    use bpf_progs::hostile::{self, Expect};
    let mut checked = 0;
    for case in hostile::selected() {
        let Expect::Trap { kind, pc } = &case.expect else {
            continue;
        };
        if !matches!(*kind, "OutOfBounds" | "HelperBadPointer" | "HelperBadMap") {
            continue;
        }
        let store = maps::Store::anonymous(maps::StoreOptions::default()).expect("store");
        let Ok(loaded) = super::hostile::register(&store, &case) else {
            continue;
        };
        let (object, entry) = LoadedObject::from_store(&store, loaded.id).expect("from_store");
        let fact = object.programs[entry].analysis().fact(*pc);
        // The dynptr helpers reach memory through the dynptr their (proven) argument
        // holds: their trap's address is no argument, so a proven call is no
        // violation there; the audit run below is what checks them.
        let through_dynptr = case.name.contains("dynptr");
        let proven = if *kind == "OutOfBounds" {
            fact.proven
        } else {
            !through_dynptr && fact.ptr_args != 0 && fact.proven_args == fact.ptr_args
        };
        assert!(
            !proven,
            "{}: the {kind} at {pc} is proven: {fact:?}",
            case.name
        );
        let mut vm = Vm::new(0);
        vm.set_audit(true);
        let mut pkt = Packet::new(&case.packet).expect("packet");
        if let Err(t) = object.run(&mut vm, entry, &mut pkt) {
            assert!(
                !matches!(t.kind, TrapKind::ProofViolated { .. }),
                "{}: {t}",
                case.name
            );
        }
        checked += 1;
    }
    println!("{checked} hostile memory traps checked unproven");
    assert!(checked > 0);
}

/// Random instruction sequences (forward jumps only, so every run ends): the analysis
/// never panics, and no run ends with ProofViolated. XDP_VERIFIER_RANDOM=N sets how
/// many.
#[test]
fn random_programs_never_violate_a_proof() {
    let count: u64 = std::env::var("XDP_VERIFIER_RANDOM")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            20_000
        } else {
            200_000
        });
    // Opcodes: ALU64/ALU32 imm and reg, loads, stores, atomics, jumps, helper calls.
    const CODES: &[u8] = &[
        0x07, 0x0f, 0x17, 0x1f, 0x27, 0x57, 0x5f, 0x77, 0xb7, 0xbf, 0xbf, 0xbf, 0x04, 0xb4, 0x54,
        0x61, 0x69, 0x71, 0x79, 0x81, 0x62, 0x6a, 0x72, 0x7a, 0x63, 0x6b, 0x73, 0x7b, 0xc3, 0xdb,
        0x05, 0x15, 0x1d, 0x25, 0x2d, 0x3d, 0xa5, 0xad, 0x55, 0x85, 0xdc,
    ];
    const HELPERS: &[i32] = &[5, 7, 28, 44, 54, 65, 113, 188, 189, 190];
    let mut rng = fuzz_gen::Rng::new(0x7e57);
    let mut vm = Vm::new(0);
    vm.set_audit(true);
    let mut pkt = Packet::new(&[0x5au8; 80]).unwrap();
    let (mut ran, mut proven, mut total) = (0u64, 0usize, 0usize);
    for _ in 0..count {
        let n = 4 + rng.below(24) as usize;
        let mut insns = Vec::with_capacity(n + 1);
        // Start with data/data_end in r2/r3 most of the time, so packet code happens.
        if rng.chance(70) {
            insns.push(RawInsn::new(0x61, 2, 1, 0, 0));
            insns.push(RawInsn::new(0x61, 3, 1, 4, 0));
        }
        while insns.len() < n {
            let code = CODES[rng.below(CODES.len() as u64) as usize];
            let dst = rng.below(10) as u8;
            let src = rng.below(11) as u8;
            let left = (n - insns.len()) as i16;
            let (off, imm) = match code {
                0x05 | 0x15 | 0x1d | 0x25 | 0x2d | 0x3d | 0xa5 | 0xad | 0x55 => {
                    (rng.below(left as u64) as i16, rng.below(64) as i32)
                }
                0x85 => (0, HELPERS[rng.below(HELPERS.len() as u64) as usize]),
                0xc3 | 0xdb => (-8 * (1 + rng.below(8) as i16), 0),
                0xdc => (0, [16, 32, 64][rng.below(3) as usize]),
                _ if code & 7 >= 1 && code & 7 <= 3 => {
                    let base = if rng.chance(50) { -64 } else { 0 };
                    (base + rng.below(80) as i16, rng.below(256) as i32 - 128)
                }
                _ => (0, rng.below(128) as i32 - 32),
            };
            // Reserved fields zero, as the decoder requires.
            let class = code & 7;
            let reg_form = code & 8 != 0;
            let (dst, src, off, imm) = match class {
                // ALU64 / ALU32 (and the byte swap)
                4 | 7 if code == 0xdc => (dst, 0, 0, imm),
                4 | 7 => {
                    let imm = match code & 0xf0 {
                        0x60 | 0x70 | 0xc0 => imm.rem_euclid(32),
                        _ => imm,
                    };
                    if reg_form {
                        (dst, src, 0, 0)
                    } else {
                        (dst, 0, 0, imm)
                    }
                }
                1 => (dst, src, off, 0),
                2 => (dst, 0, off, imm),
                3 if code == 0xc3 || code == 0xdb => (
                    dst,
                    src,
                    off,
                    [0x00, 0x40, 0x50, 0xa0][rng.below(4) as usize],
                ),
                3 => (dst, src, off, 0),
                _ if code == 0x85 => (0, 0, 0, imm),
                _ if code == 0x05 => (0, 0, off, 0),
                _ if reg_form => (dst, src, off, 0),
                _ => (dst, 0, off, imm),
            };
            insns.push(RawInsn::new(code, dst, src, off, imm));
        }
        insns.push(RawInsn::new(0xb7, 0, 0, 0, 2));
        insns.push(RawInsn::new(0x95, 0, 0, 0, 0));
        let maps = MapTable::new(Vec::new());
        let Ok(prepared) = runtime::program::prepare("rnd", "xdp", &insns, &[], &maps) else {
            continue;
        };
        let (a, b) = prepared.analysis().coverage();
        proven += a;
        total += b;
        let loaded = LoadedObject {
            maps,
            programs: vec![prepared],
            rejected: Vec::new(),
            all_programs: Vec::new(),
        };
        pkt.reset(&[0x5au8; 80]).unwrap();
        ran += 1;
        if let Err(t) = loaded.run(&mut vm, 0, &mut pkt) {
            assert!(
                !matches!(t.kind, TrapKind::ProofViolated { .. }),
                "{t}\n{}",
                listing(&insns)
            );
        }
    }
    println!("random programs: {ran} run, {proven}/{total} accesses proven");
    assert!(ran > count / 4);
}

/// A program of a million instructions (branches whose outcome is known, so one path
/// of 750k instructions): the analysis walks it within the complexity limit (the
/// time it takes is printed; memory is bounded by the states it keeps).
#[test]
fn a_million_instructions_are_walked_once() {
    let (insns, _) = bpf_progs::hostile::enormous_branch_pairs(1_000_000);
    let raw: Vec<RawInsn> = insns
        .iter()
        .map(|i| RawInsn::new(i.code, i.dst, i.src, i.off, i.imm))
        .collect();
    let t = std::time::Instant::now();
    let p = runtime::program::prepare("big", "xdp", &raw, &[], &MapTable::new(Vec::new()))
        .expect("prepares");
    println!(
        "1M instructions: prepare {:?}, {} processed, gave up: {}",
        t.elapsed(),
        p.analysis().processed,
        p.analysis().gave_up
    );
    assert!(!p.analysis().gave_up);
    assert_eq!(p.analysis().processed, 750_001);
}

/// A tail call passes r1 on: a target whose analysis assumed the context in r1 (its
/// context reads proven, so unchecked) must never be entered with anything else. Two
/// programs put together by hand (so the object's loader never dropped that
/// assumption): the first tail-calls the second with r1 = 0x1234. Both engines refuse
/// the tail call and go on, as the kernel's verifier refuses such a program.
#[test]
fn tail_calls_with_a_forged_ctx_are_refused() {
    // Slot 0 names programs[1].
    let bound = super::prog_array_to(2);
    let maps = MapTable::new(vec![bound]);
    let caller = [
        RawInsn::new(0xb7, 1, 0, 0, 0x1234), // r1 = 0x1234
        RawInsn::new(0x18, 2, isa::opcode::BPF_PSEUDO_MAP_IDX, 0, 0), // r2 = jmp
        RawInsn::new(0, 0, 0, 0, 0),
        RawInsn::new(0xb7, 3, 0, 0, 0),  // r3 = 0
        RawInsn::new(0x85, 0, 0, 0, 12), // tail call
        RawInsn::new(0xb7, 0, 0, 0, 1),  // r0 = 1
        RawInsn::new(0x95, 0, 0, 0, 0),
    ];
    let target = [
        RawInsn::new(0x61, 0, 1, 0, 0), // r0 = ctx->data
        RawInsn::new(0x95, 0, 0, 0, 0),
    ];
    let prepare = |name, insns: &[RawInsn]| {
        runtime::program::prepare(name, "xdp", insns, &[], &maps).expect("prepares")
    };
    let programs = vec![prepare("caller", &caller), prepare("target", &target)];
    assert!(
        programs[1].analysis().proven(0),
        "the context read is proven"
    );
    let loaded = LoadedObject {
        maps,
        programs,
        rejected: Vec::new(),
        all_programs: Vec::new(),
    };
    for audit in [false, true] {
        let mut vm = Vm::new(0);
        vm.set_audit(audit);
        let mut pkt = Packet::new(&[0u8; 64]).unwrap();
        assert_eq!(loaded.run(&mut vm, 0, &mut pkt), Ok(1), "audit {audit}");
    }
    let jit = runtime::jit::JitObject::compile(&loaded, &Default::default()).expect("compiles");
    let mut pkt = Packet::new(&[0u8; 64]).unwrap();
    assert_eq!(jit.run(&mut Vm::new(0), 0, &mut pkt), Ok(1));
}

/// Strict mode (`LoadOptions::strict`): every bpf-progs object whose programs the
/// analysis proves entirely loads; xdp_mim, whose inner-map accesses it does not
/// follow, is refused with a log naming each unproven instruction and its registers.
#[test]
fn strict_mode_refuses_exactly_the_unproven_programs() {
    let strict = runtime::LoadOptions {
        strict: true,
        ..Default::default()
    };
    let mut seen = BTreeSet::new();
    let mut refused = Vec::new();
    for case in bpf_progs::cases() {
        if !seen.insert(case.object) {
            continue;
        }
        let path = bpf_progs::root()
            .join("obj")
            .join(format!("{}.o", case.object));
        let bytes = std::fs::read(&path).expect("object");
        let obj = loader::Object::parse(&bytes).expect("parses");
        let store = maps::Store::anonymous(maps::StoreOptions::default()).expect("store");
        let all_proven = LoadedObject::load(&obj, &store)
            .expect("loads")
            .programs
            .iter()
            .all(|p| p.analysis().unproven().is_empty() && !p.analysis().gave_up);
        match LoadedObject::load_with(&obj, &store, &strict) {
            Ok(_) => assert!(
                all_proven,
                "{}: strict mode let unproven code in",
                case.object
            ),
            Err(e) => {
                assert!(!all_proven, "{}: strict mode refused it: {e}", case.object);
                let text = e.to_string();
                assert!(text.contains("strict mode refuses"), "{text}");
                assert!(
                    text.contains("not proven") && text.contains("R10=fp"),
                    "{text}"
                );
                refused.push(case.object);
            }
        }
    }
    println!("strict mode refused: {refused:?}");
    // xdp_iter, xdp_dynptr, xdp_dynptr_frags, xdp_conntrack read through pointers
    // kfuncs return (bpf_iter_num_next, bpf_dynptr_slice, bpf_xdp_ct_lookup), which the
    // analysis does not type yet: those reads run checked. So do xdp_foreach's reads
    // of the key a bpf_for_each_map_elem callback gets (as a bpf_timer callback's).
    assert_eq!(
        refused,
        [
            "xdp_mim",
            "xdp_dynptr_frags",
            "xdp_foreach",
            "xdp_iter",
            "xdp_conntrack",
            "xdp_dynptr"
        ]
    );
}
