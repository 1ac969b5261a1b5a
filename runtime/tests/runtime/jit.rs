//! The JIT on real programs. Every bpf-progs case runs in both engines and the kernel
//! through `compare_cases` in runtime.rs; here: the out-of-bounds programs trap at the
//! interpreter's pc, runs allocate nothing, compile time of a 1,000-instruction program.

use std::collections::BTreeMap;
use std::path::Path;

use kclient::bpftool as kernel;
use runtime::jit::{JitObject, JitOptions, MemoryChecks};
use runtime::{LoadedObject, Packet, TrapKind, Vm};

use super::raw;
use super::{counting, Outcome};

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Engine {
    Interpreter,
    /// The interpreter in its audit mode (`Vm::set_audit`): proven accesses checked too.
    Audit,
    Jit,
    /// The JIT with the checks of proven accesses kept (`JitOptions::audit`).
    JitAudit,
}

impl Engine {
    pub(super) fn name(self) -> &'static str {
        match self {
            Engine::Interpreter => "interpreter",
            Engine::Audit => "interpreter (audit)",
            Engine::Jit => "jit",
            Engine::JitAudit => "jit (audit)",
        }
    }
}

/// Loads `object` fresh, writes the case's entries, runs `prog` `repeat` times in
/// `engine`, and dumps every map (prog_array values as program names, map-in-map values
/// as inner map names, entries sorted by key, as the kernel oracle reports them).
pub(super) fn run_engine(
    engine: Engine,
    object: &Path,
    prog: &str,
    data: &[u8],
    repeat: u32,
    sets: &[(String, Vec<u8>, Vec<u8>)],
    prog_sets: &[kernel::ProgSet],
) -> Result<Outcome, String> {
    let bytes = std::fs::read(object).map_err(|e| e.to_string())?;
    let obj = loader::Object::parse(&bytes).map_err(|e| e.to_string())?;
    let store = maps::Store::anonymous(maps::StoreOptions::default()).map_err(|e| e.to_string())?;
    let mut loaded = LoadedObject::load(&obj, &store).map_err(|e| e.to_string())?;
    // Programs whose kernel runs happen in a prepared namespace see the same table.
    let stem = object.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if let Some(setup) = bpf_progs::netns_setup(stem) {
        let net = runtime::Net::parse(setup).map_err(|e| e.to_string())?;
        loaded.set_net(std::sync::Arc::new(net));
    }
    let index = loaded
        .program_index(Some(prog))
        .map_err(|e| e.to_string())?;
    for (map, key, value) in sets {
        loaded
            .update_entry(map, key, value, 0)
            .map_err(|e| e.to_string())?;
    }
    for (map, slot, target) in prog_sets {
        let id = loaded
            .program_id(target)
            .ok_or(format!("no program {target}"))?;
        loaded
            .update_entry(map, &slot.to_ne_bytes(), &id.to_ne_bytes(), 0)
            .map_err(|e| e.to_string())?;
    }
    let mut pkt = Packet::new(data).map_err(|e| e.to_string())?;
    let mut vm = Vm::new(0);
    vm.set_audit(engine == Engine::Audit);
    let (ret, _) = match engine {
        Engine::Interpreter | Engine::Audit => {
            loaded.run_repeat(&mut vm, index, &mut pkt, repeat as u64)
        }
        Engine::Jit | Engine::JitAudit => {
            let opts = JitOptions {
                audit: engine == Engine::JitAudit,
                ..JitOptions::default()
            };
            let jit = JitObject::compile(&loaded, &opts).map_err(|e| e.to_string())?;
            jit.run_repeat(&mut vm, index, &mut pkt, repeat as u64)
        }
    }
    .map_err(|t| format!("trap: {t}"))?;
    let mut maps = BTreeMap::new();
    for m in loaded.maps.iter() {
        let mut entries: Vec<_> = m
            .map
            .dump()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|e| (e.key, e.values))
            .collect();
        if m.info.map_type == runtime::maptable::types::PROG_ARRAY {
            for (_, values) in &mut entries {
                for v in values.iter_mut() {
                    let id = u32::from_ne_bytes(v.as_slice().try_into().unwrap());
                    *v = loaded.programs[id as usize - 1].name.as_bytes().to_vec();
                }
            }
        }
        if matches!(
            m.info.map_type,
            runtime::maptable::types::ARRAY_OF_MAPS | runtime::maptable::types::HASH_OF_MAPS
        ) {
            // As the oracle reports them: the inner map's name, not its (store) id.
            for (_, values) in &mut entries {
                for v in values.iter_mut() {
                    let id = u32::from_ne_bytes(v.as_slice().try_into().unwrap());
                    let inner = loaded.maps.by_id(id).ok_or(format!("no map id {id}"))?;
                    *v = inner.name.as_bytes().to_vec();
                }
            }
        }
        entries.sort();
        maps.insert(m.name.clone(), entries);
    }
    Ok(Outcome {
        retval: ret as u32,
        data_out: pkt.data_out().into_owned(),
        maps,
    })
}

#[test]
fn jit_out_of_bounds_programs_trap_like_the_interpreter() {
    let bytes = std::fs::read(bpf_progs::object("xdp_oob")).unwrap();
    let obj = loader::Object::parse(&bytes).unwrap();
    let store = maps::Store::anonymous(maps::StoreOptions::default()).unwrap();
    let loaded = LoadedObject::load(&obj, &store).unwrap();
    let jit = JitObject::compile(&loaded, &JitOptions::default()).unwrap();
    let mut data = std::fs::read(bpf_progs::packet("icmp")).unwrap();
    // As in `out_of_bounds_programs_trap`: 0xff sends xdp_oob_stack past the stack top.
    data[0] = 0xff;
    for name in bpf_progs::OOB_PROGRAMS {
        let index = loaded.program_index(Some(name)).unwrap();
        // The same frame and stack for both, so the faulting addresses compare too.
        let mut pkt = Packet::new(&data).unwrap();
        let mut vm = Vm::new(0);
        let jit_trap = jit.run(&mut vm, index, &mut pkt).expect_err(name);
        pkt.reset(&data).unwrap();
        let interp_trap = loaded.run(&mut vm, index, &mut pkt).expect_err(name);
        assert!(
            matches!(jit_trap.kind, TrapKind::OutOfBounds { .. }),
            "{name}: {jit_trap}"
        );
        assert_eq!(jit_trap, interp_trap, "{name}: same kind, address and pc");
    }
}

#[test]
fn jit_runs_make_no_heap_allocation() {
    for (object, packet) in [
        ("xdp_counter", "icmp"),
        ("xdp_parser", "vlan_udp"),
        ("xdp_subprog", "udp"),
        ("xdp_encap", "tcp_syn"),
        ("xdp_tailcall", "udp"),
    ] {
        let bytes = std::fs::read(bpf_progs::object(object)).unwrap();
        let obj = loader::Object::parse(&bytes).unwrap();
        let store = maps::Store::anonymous(maps::StoreOptions::default()).unwrap();
        let loaded = LoadedObject::load(&obj, &store).unwrap();
        let jit = JitObject::compile(&loaded, &JitOptions::default()).unwrap();
        let index = loaded.program_index(None).unwrap();
        let mut pkt = Packet::new(&std::fs::read(bpf_progs::packet(packet)).unwrap()).unwrap();
        let mut vm = Vm::new(0);
        jit.run(&mut vm, index, &mut pkt).unwrap();
        let before = counting::count();
        jit.run_repeat(&mut vm, index, &mut pkt, 1000).unwrap();
        for _ in 0..100 {
            jit.run(&mut vm, index, &mut pkt).unwrap();
        }
        assert_eq!(
            counting::count() - before,
            0,
            "{object}: allocations during JIT runs"
        );
    }
}

/// A 1,000-instruction program (straight-line ALU, stack and packet accesses, branches):
/// prints the JIT's compile time (no assertion on time; target: under 5 ms in release).
#[test]
fn compile_time_of_a_1000_instruction_program() {
    use isa::RawInsn;
    let ins = |code, dst, src, off, imm| RawInsn {
        code,
        dst,
        src,
        off,
        imm,
    };
    let mut p = vec![
        ins(0x61, 2, 1, 0, 0),
        ins(0x61, 3, 1, 4, 0),
        ins(0xbf, 4, 2, 0, 0),
        ins(0x07, 4, 0, 0, 32),
        ins(0xb7, 0, 0, 0, 0),
        ins(0x2d, 4, 3, 0, 0), // patched below: to the exit
    ];
    for r in 5..=9 {
        p.push(ins(0xb7, r, 0, 0, r as i32));
    }
    let mut k = 0i32;
    while p.len() < 995 {
        k += 1;
        let r = 5 + (k % 5) as u8;
        match k % 8 {
            0 => p.push(ins(0x0f, 0, r, 0, 0)),
            1 => p.push(ins(0x27, r, 0, 0, k)),
            2 => p.push(ins(0x7b, 10, r, -8 * (1 + k % 8) as i16, 0)),
            3 => p.push(ins(0x79, r, 10, -8 * (1 + (k + 3) % 8) as i16, 0)),
            4 => p.push(ins(0x71, r, 2, (k % 32) as i16, 0)),
            5 => p.push(ins(0x73, 2, r, (k % 32) as i16, 0)),
            6 => p.push(ins(0x55, r, 0, 1, k)),
            _ => p.push(ins(0xac, r, 0, 0, 0)),
        }
    }
    let exit = p.len();
    p[5].off = (exit - 6) as i16;
    p.push(ins(0x95, 0, 0, 0, 0));
    let maps = runtime::maptable::MapTable::new(Vec::new());
    let prepared = runtime::program::prepare("big", "xdp", &p, &[], &maps).unwrap();
    let loaded = LoadedObject {
        maps,
        programs: vec![prepared],
        rejected: Vec::new(),
        all_programs: Vec::new(),
    };
    let jit = JitObject::compile(&loaded, &JitOptions::default()).unwrap();
    println!(
        "compile time of a {}-instruction program: {:?} ({} build)",
        p.len(),
        jit.compile_time(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let data = [0x5au8; 64];
    let mut pkt = Packet::new(&data).unwrap();
    let mut vm = Vm::new(0);
    let j = jit.run(&mut vm, 0, &mut pkt).unwrap();
    let jit_pkt = pkt.data().to_vec();
    pkt.reset(&data).unwrap();
    let i = loaded.run(&mut vm, 0, &mut pkt).unwrap();
    assert_eq!(j, i);
    assert_eq!(jit_pkt, pkt.data());
}

/// The seed workload, side by side: xdp_counter on icmp.bin, `XDP_BENCH_REPEAT` runs
/// (default 10,000,000) in the JIT (checks on and off), the interpreter and the kernel
/// (`bpftool prog run ... repeat N`). Run with
/// `cargo test --release -p runtime --test runtime seed_workload -- --ignored --nocapture`.
#[test]
#[ignore]
fn seed_workload_speed() {
    let repeat: u64 = std::env::var("XDP_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let object = bpf_progs::object("xdp_counter");
    let data = std::fs::read(bpf_progs::packet("icmp")).unwrap();
    let bytes = std::fs::read(&object).unwrap();
    let obj = loader::Object::parse(&bytes).unwrap();
    let ns = |d: std::time::Duration| d.as_nanos() as f64 / repeat as f64;
    let mut results = Vec::new();
    // XDP_BENCH_CHECKS=1 or 0 runs only that JIT variant (for callgrind).
    let only = std::env::var("XDP_BENCH_CHECKS").ok();
    for (label, checks) in [("jit", true), ("jit, no memory checks", false)] {
        if only.as_deref().is_some_and(|o| (o == "1") != checks) {
            continue;
        }
        let store = maps::Store::anonymous(maps::StoreOptions::default()).unwrap();
        let loaded = LoadedObject::load(&obj, &store).unwrap();
        let jit = JitObject::compile(
            &loaded,
            &JitOptions {
                memory_checks: if checks {
                    MemoryChecks::On
                } else {
                    // SAFETY: xdp_counter on icmp.bin runs without faults (its runs with
                    // checks on, in this test and in the differential cases, never trap).
                    unsafe { MemoryChecks::off() }
                },
                ..JitOptions::default()
            },
        )
        .unwrap();
        let mut pkt = Packet::new(&data).unwrap();
        let (r, t) = jit
            .run_repeat(&mut Vm::new(0), 0, &mut pkt, repeat)
            .unwrap();
        println!(
            "{label}: {:.2} ns/run (r0 {r}, compile {:?})",
            ns(t),
            jit.compile_time()
        );
        results.push((label, ns(t)));
    }
    if std::env::var("XDP_BENCH_ONLY_JIT").is_ok() {
        return;
    }
    let store = maps::Store::anonymous(maps::StoreOptions::default()).unwrap();
    let loaded = LoadedObject::load(&obj, &store).unwrap();
    let mut pkt = Packet::new(&data).unwrap();
    let (_, t) = loaded
        .run_repeat(&mut Vm::new(0), 0, &mut pkt, repeat)
        .unwrap();
    println!("interpreter: {:.2} ns/run", ns(t));
    match kclient::available() {
        Err(why) => kclient::skip("kernel timing", &why),
        Ok(()) => {
            let k = kernel::run(&object, "xdp_counter", &data, repeat as u32, &[]).unwrap();
            println!(
                "kernel (bpftool prog run, repeat {repeat}): {} ns/run",
                k.duration_ns
            );
            for (label, v) in results {
                println!("{label} / kernel = {:.3}", v / k.duration_ns as f64);
            }
        }
    }
}

/// A hand-written program, loaded for both engines.
pub(super) fn loaded_from(insns: &[isa::RawInsn]) -> LoadedObject {
    let maps = runtime::maptable::MapTable::new(Vec::new());
    let prepared = runtime::program::prepare("p", "xdp", insns, &[], &maps).unwrap();
    LoadedObject {
        maps,
        programs: vec![prepared],
        rejected: Vec::new(),
        all_programs: Vec::new(),
    }
}

#[test]
fn packet_checks_come_back_after_a_helper_moves_the_packet() {
    // r6 = data; r7 = data_end; if data + 40 > data_end goto out;
    // r0 = *(u8 *)(r6 + 30)               -- proven, no check
    // bpf_xdp_adjust_tail(ctx, -40)        -- the packet shrinks to 24 bytes
    // r0 = *(u8 *)(r6 + 30)               -- must be checked again: traps
    let p = [
        raw(0x61, 6, 1, 0, 0),
        raw(0x61, 7, 1, 4, 0),
        raw(0xbf, 8, 6, 0, 0),
        raw(0x07, 8, 0, 0, 40),
        raw(0xb7, 0, 0, 0, 0),
        raw(0x2d, 8, 7, 5, 0),
        raw(0x71, 0, 6, 30, 0),
        raw(0xb7, 2, 0, 0, -40),
        raw(0x85, 0, 0, 0, 65),
        raw(0x71, 0, 6, 30, 0),
        raw(0xb7, 0, 0, 0, 7),
        raw(0x95, 0, 0, 0, 0),
    ];
    let loaded = loaded_from(&p);
    let jit = JitObject::compile(&loaded, &JitOptions::default()).unwrap();
    let data = [3u8; 64];
    let mut pkt = Packet::new(&data).unwrap();
    let mut vm = Vm::new(0);
    let j = jit.run(&mut vm, 0, &mut pkt).unwrap_err();
    pkt.reset(&data).unwrap();
    let i = loaded.run(&mut vm, 0, &mut pkt).unwrap_err();
    assert_eq!(j, i);
    assert_eq!(j.pc, 9);
    assert!(matches!(
        j.kind,
        TrapKind::OutOfBounds {
            len: 1,
            write: false,
            ..
        }
    ));
}

#[test]
fn unproven_packet_and_stack_pointer_accesses_stay_checked() {
    // A bounds test of 8 bytes does not cover a read at offset 8; a copy of r10 moved
    // above the frame top reads past the stack.
    for (p, pc) in [
        (
            vec![
                raw(0x61, 6, 1, 0, 0),
                raw(0x61, 7, 1, 4, 0),
                raw(0xbf, 8, 6, 0, 0),
                raw(0x07, 8, 0, 0, 8),
                raw(0xb7, 0, 0, 0, 0),
                raw(0x2d, 8, 7, 1, 0),
                raw(0x79, 0, 6, 8, 0),
                raw(0x95, 0, 0, 0, 0),
            ],
            None,
        ),
        (
            vec![
                raw(0xbf, 2, 10, 0, 0),
                raw(0x07, 2, 0, 0, 8),
                raw(0x79, 0, 2, -16, 0),
                raw(0x79, 0, 2, 0, 0),
                raw(0x95, 0, 0, 0, 0),
            ],
            Some(3),
        ),
    ] {
        let loaded = loaded_from(&p);
        let jit = JitObject::compile(&loaded, &JitOptions::default()).unwrap();
        // A 14-byte packet: offset 8 of an 8-byte read is past data_end.
        let data = [1u8; 14];
        let mut pkt = Packet::new(&data).unwrap();
        let mut vm = Vm::new(0);
        let j = jit.run(&mut vm, 0, &mut pkt);
        pkt.reset(&data).unwrap();
        let i = loaded.run(&mut vm, 0, &mut pkt);
        assert_eq!(j, i);
        let t = j.unwrap_err();
        assert!(matches!(t.kind, TrapKind::OutOfBounds { .. }), "{t}");
        assert_eq!(t.pc, pc.unwrap_or(6));
    }
}

#[test]
fn perf_map_names_every_function() {
    let bytes = std::fs::read(bpf_progs::object("xdp_subprog")).unwrap();
    let obj = loader::Object::parse(&bytes).unwrap();
    let store = maps::Store::anonymous(maps::StoreOptions::default()).unwrap();
    let loaded = LoadedObject::load(&obj, &store).unwrap();
    // The perf map is this process's /tmp/perf-PID.map; the test removes it when it
    // ends, passed or not, so the test run leaves no file behind.
    struct RemoveOnDrop(std::path::PathBuf);
    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _remove = RemoveOnDrop(runtime::jit::perfmap::path());
    let jit = JitObject::compile(
        &loaded,
        &JitOptions {
            perf_map: true,
            ..JitOptions::default()
        },
    )
    .unwrap();
    let map = std::fs::read_to_string(runtime::jit::perfmap::path()).unwrap();
    let names: Vec<&str> = jit.symbols().iter().map(|s| s.name.as_str()).collect();
    assert!(names
        .iter()
        .any(|n| *n == format!("bpf_prog_{}", loaded.programs[0].name)));
    assert!(
        names.len() > loaded.programs.len(),
        "subprograms are named too: {names:?}"
    );
    for s in jit.symbols() {
        let line = format!("{:x} {:x} {}", s.start, s.size, s.name);
        assert!(s.size > 0, "{line}");
        assert!(map.lines().any(|l| l == line), "{line} in the perf map");
    }
}
