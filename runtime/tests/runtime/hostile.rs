//! The hostile-program suite (`bpf_progs::hostile`) in both engines: every program is
//! registered in a private store as the shim's PROG_LOAD does, loaded back with
//! `LoadedObject::from_store`, and run in the interpreter and the JIT on the same `Vm`
//! and store. Each must end as its case says (a return value, a trap of the named kind
//! at the named instruction, or a load error with the named fragment), and the two
//! engines must agree exactly (r0 or the whole trap, and the packet).
//!
//! The programs run in this process: a signal or a hang is a failure of the whole
//! binary, so each case's name is printed before it runs (`--nocapture` shows the last
//! one). `XDP_HOSTILE=name1,name2` runs only the named cases, `XDP_HOSTILE_SKIP=...`
//! all but those.

use bpf_progs::hostile::{self, Expect, Hostile, Setup};
use isa::RawInsn;
use runtime::jit::{JitObject, JitOptions};
use runtime::{LoadedObject, Packet, Trap, Vm};

fn raw(insns: &[hostile::Insn]) -> Vec<RawInsn> {
    insns
        .iter()
        .map(|i| RawInsn {
            code: i.code,
            dst: i.dst,
            src: i.src,
            off: i.off,
            imm: i.imm,
        })
        .collect()
}

/// The `TrapKind` variant's name, as the suite names kinds.
fn kind_name(t: &Trap) -> String {
    let debug = format!("{:?}", t.kind);
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A case's maps in `store` and its program registered there.
pub(super) struct Loaded {
    maps: Vec<maps::Map>,
    pub(super) id: u32,
}

/// Creates the maps and registers the program: the load error's text if it fails.
/// Another program is registered first, so that the case's program id is not 1 (as in
/// a store that already holds programs).
pub(super) fn register(store: &maps::Store, case: &Hostile) -> Result<Loaded, String> {
    register_insns(
        store,
        &[0xb7, 0, 0, 0, 2, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0],
        &[],
    )
    .expect("the first program");
    let mut made = Vec::new();
    for m in &case.maps {
        let def = maps::MapDef {
            map_type: m.map_type,
            key_size: m.key_size,
            value_size: m.value_size,
            max_entries: m.max_entries,
            map_flags: m.flags,
            name: m.name.to_string(),
            ..Default::default()
        };
        made.push(
            store
                .create_map(&def)
                .unwrap_or_else(|e| panic!("{}: map {}: {e}", case.name, m.name)),
        );
    }
    let insns: Vec<u8> = raw(&case.insns).iter().flat_map(|x| x.to_bytes()).collect();
    let map_ids: Vec<u32> = made.iter().map(|m| m.id()).collect();
    let id = register_insns(store, &insns, &map_ids)?;
    Ok(Loaded { maps: made, id })
}

/// PROG_LOAD of `insns` (bytes) with `map_ids` as its map list: the id, or the error.
fn register_insns(store: &maps::Store, insns: &[u8], map_ids: &[u32]) -> Result<u32, String> {
    let insns = runtime::stored::raw_insns(insns);
    let def = maps::ProgramDef {
        name: "hostile".to_string(),
        prog_type: 6,
        tag: runtime::stored::prog_tag(&insns),
        insns: insns.iter().flat_map(|x| x.to_bytes()).collect(),
        map_ids: map_ids.to_vec(),
        btf_id: 0,
        gpl_compatible: true,
        // SAFETY: getuid cannot fail.
        uid: unsafe { libc::getuid() },
        expected_attach_type: 0,
        prog_flags: 0,
        holder_pid: std::process::id(),
    };
    runtime::stored::register(store, &def, false).map_err(|e| e.to_string())
}

fn apply_setup(case: &Hostile, l: &Loaded) {
    for s in &case.setup {
        match s {
            Setup::Update { map, key, value } => l.maps[*map].update(key, value, 0),
            Setup::SelfInProgArray { map, slot } => {
                l.maps[*map].update(&slot.to_ne_bytes(), &l.id.to_ne_bytes(), 0)
            }
        }
        .unwrap_or_else(|e| panic!("{}: setup {s:?}: {e}", case.name));
    }
}

/// Runs one case in both engines and checks it; a failure is described in the error.
pub(crate) fn check(case: &Hostile) -> Result<(), String> {
    let name = case.name;
    let store = maps::Store::anonymous(maps::StoreOptions::default()).expect("store");
    let loaded = match register(&store, case) {
        Ok(l) => l,
        Err(msg) => {
            return match &case.expect {
                Expect::LoadError(fragment) if msg.contains(fragment.as_str()) => Ok(()),
                other => Err(format!(
                    "{name}: load failed with {msg:?}, expected {other:?}"
                )),
            };
        }
    };
    if let Expect::LoadError(fragment) = &case.expect {
        return Err(format!(
            "{name}: loaded, expected a load error containing {fragment:?}"
        ));
    }
    let (object, entry): (LoadedObject, usize) = LoadedObject::from_store(&store, loaded.id)
        .map_err(|e| format!("{name}: from_store: {e}"))?;
    let jit = JitObject::compile(&object, &JitOptions::default())
        .map_err(|e| format!("{name}: JIT compile: {e}"))?;
    // One Vm and one frame for both engines, so that trap addresses match; the
    // suite's small budget keeps the endless cases fast (budget.rs tests the default).
    let mut vm = Vm::new(0).with_max_steps(hostile::SUITE_MAX_STEPS);
    let mut pkt = Packet::new(&case.packet).map_err(|e| format!("{name}: packet: {e}"))?;
    apply_setup(case, &loaded);
    let interp = object.run(&mut vm, entry, &mut pkt);
    let interp_pkt = pkt.data_with_meta().to_vec();
    apply_setup(case, &loaded);
    pkt.reset(&case.packet).map_err(|e| e.to_string())?;
    let jitted = jit.run(&mut vm, entry, &mut pkt);
    let jit_pkt = pkt.data_with_meta().to_vec();
    let mut failures = Vec::new();
    // Ring buffer positions move on between the two runs: compare where a trap
    // names a record by kind and pc only.
    let ring = case.maps.iter().any(|m| m.map_type == 27);
    let same = match (&interp, &jitted) {
        (Err(a), Err(b)) if ring => kind_name(a) == kind_name(b) && a.pc == b.pc,
        _ => interp == jitted,
    };
    if !same {
        failures.push(format!(
            "engines disagree: interpreter {interp:?}, JIT {jitted:?}"
        ));
    }
    if interp_pkt != jit_pkt {
        failures.push("engines leave different packets".to_string());
    }
    for (engine, result) in [("interpreter", interp), ("JIT", jitted)] {
        let ok = match (&case.expect, &result) {
            (Expect::Ret(want), Ok(r0)) => want == r0,
            (Expect::Trap { kind, pc }, Err(t)) => kind_name(t) == *kind && t.pc == *pc,
            _ => false,
        };
        if !ok {
            let got = match result {
                Ok(r0) => format!("r0 = {r0:#x}"),
                Err(t) => format!("{} ({t})", kind_name(&t)),
            };
            failures.push(format!("{engine}: {got}, expected {:?}", case.expect));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}: {}", failures.join("; ")))
    }
}

#[test]
fn hostile_programs_end_as_expected_in_both_engines() {
    let cases = hostile::selected();
    let mut failures = Vec::new();
    for case in &cases {
        println!("hostile: {}", case.name);
        if let Err(e) = check(case) {
            failures.push(e);
        }
    }
    println!(
        "{} hostile programs, {} failed",
        cases.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs a program of `insns` (no maps) in both engines; returns both results.
fn run_plain(insns: &[hostile::Insn]) -> (Result<u64, Trap>, Result<u64, Trap>) {
    let case = Hostile {
        name: "enormous",
        maps: vec![],
        setup: vec![],
        insns: insns.to_vec(),
        packet: hostile::default_packet(),
        expect: Expect::Ret(0),
        shim_expect: None,
    };
    let store = maps::Store::anonymous(maps::StoreOptions::default()).expect("store");
    let loaded = register(&store, &case).expect("register");
    let (object, entry) = LoadedObject::from_store(&store, loaded.id).expect("from_store");
    let mut vm = Vm::new(0);
    let mut pkt = Packet::new(&case.packet).unwrap();
    let interp = object.run(&mut vm, entry, &mut pkt);
    let jit = JitObject::compile(&object, &JitOptions::default()).expect("JIT compile");
    pkt.reset(&case.packet).unwrap();
    (interp, jit.run(&mut vm, entry, &mut pkt))
}

/// A program of `insns` (no maps) registered in a store and loaded back.
pub(crate) fn load_plain(insns: &[hostile::Insn]) -> (maps::Store, LoadedObject, usize) {
    let case = Hostile {
        name: "plain",
        maps: vec![],
        setup: vec![],
        insns: insns.to_vec(),
        packet: hostile::default_packet(),
        expect: Expect::Ret(0),
        shim_expect: None,
    };
    let store = maps::Store::anonymous(maps::StoreOptions::default()).expect("store");
    let loaded = register(&store, &case).expect("register");
    let (object, entry) = LoadedObject::from_store(&store, loaded.id).expect("from_store");
    (store, object, entry)
}

/// The kernel's limit: 1M instructions, straight-line. Both engines run it.
#[test]
fn hostile_program_of_one_million_instructions() {
    let (insns, r0) = hostile::enormous_straight_line(1_000_000);
    let (interp, jit) = run_plain(&insns);
    assert_eq!(interp, Ok(r0));
    assert_eq!(jit, Ok(r0));
}

/// 1M instructions of branch pairs: the shape whose JIT compile time was
/// quadratic (issue 11, item 7).
#[test]
fn hostile_program_of_one_million_branch_instructions() {
    let (insns, r0) = hostile::enormous_branch_pairs(1_000_000);
    let (interp, jit) = run_plain(&insns);
    assert_eq!(interp, Ok(r0));
    assert_eq!(jit, Ok(r0));
}

/// The kernel as the oracle where it accepts a program: every case without maps that
/// must return a value is loaded with a raw BPF_PROG_LOAD; those the verifier accepts
/// run with BPF_PROG_TEST_RUN, and the kernel's retval and packet must be the
/// expectation's and the interpreter's.
#[test]
fn hostile_programs_the_kernel_accepts_match_it() {
    use super::fuzz::kernel;
    if let Err(why) = kernel::available() {
        kclient::skip("hostile programs in the kernel", &why);
        return;
    }
    let (mut accepted, mut refused) = (Vec::new(), 0);
    let mut failures = Vec::new();
    for case in hostile::selected() {
        let Expect::Ret(want) = case.expect else {
            continue;
        };
        // Cases that need a fix are asked too: the kernel says what the fix must give.
        if !case.maps.is_empty() {
            continue;
        }
        let insns = raw(&case.insns);
        let Ok(fd) = kernel::load(&insns, false) else {
            refused += 1;
            continue;
        };
        accepted.push(case.name);
        let (retval, data_out) = match kernel::run(&fd, &case.packet) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: kernel run: {e}", case.name));
                continue;
            }
        };
        if retval != want as u32 {
            failures.push(format!(
                "{}: the kernel returns {retval:#x}, the case expects {want:#x}",
                case.name
            ));
        }
        let store = maps::Store::anonymous(maps::StoreOptions::default()).expect("store");
        let loaded = register(&store, &case).expect("register");
        let (object, entry) = LoadedObject::from_store(&store, loaded.id).expect("from_store");
        let mut pkt = Packet::new(&case.packet).unwrap();
        let _ = object.run(&mut Vm::new(0), entry, &mut pkt);
        if pkt.data_with_meta() != data_out.as_slice() {
            failures.push(format!(
                "{}: the packet differs from the kernel's",
                case.name
            ));
        }
    }
    println!(
        "hostile programs in the kernel: {} accepted and compared ({}), {refused} refused",
        accepted.len(),
        accepted.join(", ")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// bpf_csum_diff against the kernel (6.13 and later: no size checks): odd sizes, zero
/// sizes, sizes over 512, odd offsets, seeds with high bits and the edges of one's
/// complement zero, each in the kernel, the interpreter and the JIT, which must agree
/// on r0 (the kernel returns a 16-bit value, so its 32-bit retval is all of it).
#[test]
fn csum_diff_matches_the_kernel() {
    use super::fuzz::kernel;
    use bpf_progs::hostile::Asm;
    // Bytes 0..1100 pseudo-random, then 20 zero bytes, then 20 bytes of 0xff.
    let mut packet: Vec<u8> = Vec::new();
    let mut x = 0x9e37_79b9u32;
    for _ in 0..1100 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        packet.push(x as u8);
    }
    packet.extend([0u8; 20]);
    packet.extend([0xffu8; 20]);
    const ZEROS: i32 = 1100;
    const ONES: i32 = 1120;
    // (from offset, from size, to offset, to size, seed)
    let mut cases: Vec<(i32, i32, i32, i32, u64)> = Vec::new();
    for (fs, ts) in [
        (0, 0),
        (0, 1),
        (1, 0),
        (3, 5),
        (6, 0),
        (0, 7),
        (2, 2),
        (4, 4),
        (600, 0),
        (0, 1000),
        (513, 511),
        (81, 79),
        (40, 40),
    ] {
        for seed in [0u64, 0xffff_ffff, 0x1234_5678_9abc_def0, 0xffff] {
            cases.push((0, fs, 3, ts, seed));
            cases.push((1, fs, 64, ts, seed));
        }
    }
    for (fo, fs, to, ts) in [
        (ONES, 4, ZEROS, 4),
        (ONES, 3, ZEROS, 5),
        (ZEROS, 8, ONES, 8),
        (ONES, 8, 0, 0),
        (ZEROS, 8, 0, 0),
        (0, 0, ZEROS, 8),
        (0, 0, ONES, 7),
        (ONES, 2, ONES, 2),
        (ONES, 20, 0, 0),
    ] {
        for seed in [0u64, 0xffff_ffff, 1] {
            cases.push((fo, fs, to, ts, seed));
        }
    }
    let kernel_ok = match kernel::available() {
        Ok(()) => true,
        Err(why) => {
            kclient::skip("bpf_csum_diff in the kernel", &why);
            false
        }
    };
    let mut failures = Vec::new();
    for &(fo, fs, to, ts, seed) in &cases {
        let mut a = Asm::default();
        a.pkt_checked(packet.len() as i32);
        a.movr(7, 2);
        a.movr(1, 7);
        a.add(1, fo);
        a.mov(2, fs);
        a.movr(3, 7);
        a.add(3, to);
        a.mov(4, ts);
        a.lddw(5, seed);
        a.call(28);
        a.exit();
        let case = Hostile {
            name: "csum_diff",
            maps: vec![],
            setup: vec![],
            insns: a.insns,
            packet: packet.clone(),
            expect: Expect::Ret(0),
            shim_expect: None,
        };
        let store = maps::Store::anonymous(maps::StoreOptions::default()).expect("store");
        let loaded = register(&store, &case).expect("register");
        let (object, entry) = LoadedObject::from_store(&store, loaded.id).expect("from_store");
        let jit = JitObject::compile(&object, &JitOptions::default()).expect("JIT compile");
        let mut vm = Vm::new(0);
        let mut pkt = Packet::new(&packet).unwrap();
        let interp = object.run(&mut vm, entry, &mut pkt);
        pkt.reset(&packet).unwrap();
        let jitted = jit.run(&mut vm, entry, &mut pkt);
        let what = format!("from +{fo} size {fs}, to +{to} size {ts}, seed {seed:#x}");
        if interp != jitted {
            failures.push(format!("{what}: interpreter {interp:?}, JIT {jitted:?}"));
        }
        if !kernel_ok {
            continue;
        }
        let fd = match kernel::load(&raw(&case.insns), false) {
            Ok(fd) => fd,
            Err(e) => {
                failures.push(format!("{what}: the kernel refuses it: {e}"));
                continue;
            }
        };
        match kernel::run(&fd, &packet) {
            Ok((retval, _)) if interp == Ok(u64::from(retval)) => {}
            Ok((retval, _)) => failures.push(format!(
                "{what}: the kernel returns {retval:#x}, the interpreter {interp:?}"
            )),
            Err(e) => failures.push(format!("{what}: kernel run: {e}")),
        }
    }
    println!("bpf_csum_diff: {} cases compared", cases.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
