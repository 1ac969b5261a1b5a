//! The runtime's integration tests: every bpf-progs program × every test packet against
//! the kernel (BPF_PROG_TEST_RUN through bpftool), the same for the -mcpu=v1 and v3
//! builds, and programs that fault.

use std::collections::BTreeMap;
use std::path::Path;

use bpf_progs::recorded::Source;
use bpf_progs::Cpu;
use kclient::bpftool as kernel;
use runtime::{LoadedObject, Packet, TrapKind, Vm};

/// One instruction slot from its fields (for hand-written programs).
/// A one-slot prog_array named "jmp" in a store of its own, slot 0 holding program id
/// `target` (`programs[target - 1]` of the object it is bound into).
fn prog_array_to(target: u32) -> runtime::BoundMap {
    let store = maps::Store::anonymous(maps::StoreOptions {
        size: 1 << 20,
        ncpus: Some(1),
    })
    .unwrap();
    let def = maps::MapDef {
        map_type: runtime::maptable::types::PROG_ARRAY,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        map_flags: 0,
        name: "jmp".into(),
        btf_key_type_id: 0,
        btf_value_type_id: 0,
        btf_id: 0,
        holder_pid: 0,
    };
    let map = store.create_map(&def).unwrap();
    map.update(&0u32.to_ne_bytes(), &target.to_ne_bytes(), 0)
        .unwrap();
    runtime::BoundMap {
        name: "jmp".into(),
        info: map.info(),
        map,
    }
}

fn raw(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> isa::RawInsn {
    isa::RawInsn::new(code, dst, src, off, imm)
}

#[path = "runtime/bloom_extra.rs"]
mod bloom_extra;
#[path = "runtime/bpf_loop.rs"]
mod bpf_loop;
#[path = "runtime/budget.rs"]
mod budget;
#[path = "runtime/events.rs"]
mod events;
#[path = "runtime/fib.rs"]
mod fib;
#[path = "runtime/foreach.rs"]
mod foreach;
#[path = "runtime/frags.rs"]
mod frags;
#[path = "runtime/freplace.rs"]
mod freplace;
#[path = "runtime/fuzz.rs"]
mod fuzz;
#[path = "runtime/fuzz_gen.rs"]
mod fuzz_gen;
#[path = "runtime/fuzz_regress.rs"]
mod fuzz_regress;
#[path = "runtime/helpers15.rs"]
mod helpers15;
#[path = "runtime/hostile.rs"]
mod hostile;
#[path = "runtime/jit.rs"]
mod jit;
#[path = "runtime/jit_maps.rs"]
mod jit_maps;
#[path = "runtime/jit_safety.rs"]
mod jit_safety;
#[path = "runtime/jit_size.rs"]
mod jit_size;
#[path = "runtime/kfuncs.rs"]
mod kfuncs;
#[path = "runtime/stack_chain.rs"]
mod stack_chain;
#[path = "runtime/support_table.rs"]
mod support_table;
#[path = "runtime/timer.rs"]
mod timer;
#[path = "runtime/verifier.rs"]
mod verifier;

use jit::Engine;

/// A key and its value (one per CPU for per-CPU maps).
type MapEntry = (Vec<u8>, Vec<Vec<u8>>);

/// What one run produced, in the form the kernel oracle reports it.
#[derive(Clone, Debug, PartialEq)]
struct Outcome {
    retval: u32,
    data_out: Vec<u8>,
    /// Map name → entries sorted by key (iteration order is not part of the contract).
    maps: BTreeMap<String, Vec<MapEntry>>,
}

fn run_ours(
    object: &Path,
    prog: &str,
    data: &[u8],
    repeat: u32,
    sets: &[(String, Vec<u8>, Vec<u8>)],
    prog_sets: &[kernel::ProgSet],
) -> Result<Outcome, String> {
    jit::run_engine(
        jit::Engine::Interpreter,
        object,
        prog,
        data,
        repeat,
        sets,
        prog_sets,
    )
}

fn kernel_outcome(run: kernel::KernelRun) -> Outcome {
    let maps = run
        .maps
        .into_iter()
        .map(|(name, entries)| {
            let mut e: Vec<_> = entries.into_iter().map(|e| (e.key, e.values)).collect();
            e.sort();
            (name, e)
        })
        .collect();
    Outcome {
        retval: run.retval,
        data_out: run.data_out,
        maps,
    }
}

/// Runs every case of bpf-progs built for `cpu` in both the runtime and the kernel.
fn differential(cpu: Cpu) {
    let failures = compare_cases(bpf_progs::cases(), cpu, &[Engine::Interpreter, Engine::Jit]);
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The differences between two outcomes of one run, as failure lines.
fn diff(label: &str, (a, ours): (&str, &Outcome), (b, theirs): (&str, &Outcome)) -> Vec<String> {
    let mut out = Vec::new();
    if ours.retval != theirs.retval {
        out.push(format!(
            "{label}: retval {} ({b} {})",
            ours.retval, theirs.retval
        ));
    }
    if ours.data_out != theirs.data_out {
        out.push(format!(
            "{label}: data_out differs\n  {a}: {}\n  {b}: {}",
            bpf_progs::hex_encode(&ours.data_out),
            bpf_progs::hex_encode(&theirs.data_out)
        ));
    }
    let names: std::collections::BTreeSet<_> = ours.maps.keys().chain(theirs.maps.keys()).collect();
    for name in names {
        if ours.maps.get(name) != theirs.maps.get(name) {
            out.push(format!(
                "{label}: map {name} differs\n  {a}: {:?}\n  {b}: {:?}",
                ours.maps.get(name),
                theirs.maps.get(name)
            ));
        }
    }
    out
}

/// Runs `cases` built for `cpu` in each of `engines` and, once per case, in the kernel;
/// every engine must match the kernel (where bpf(2) is permitted) and the first engine.
/// Returns the mismatches.
fn compare_cases(cases: &[bpf_progs::Case], cpu: Cpu, engines: &[Engine]) -> Vec<String> {
    let mut compared = 0;
    let mut recorded = 0;
    let mut failures = Vec::new();
    for case in cases {
        let Some(object) = bpf_progs::object_for(case.object, cpu) else {
            println!(
                "SKIP: {} not built for -mcpu={} (clang absent)",
                case.object,
                cpu.as_str()
            );
            continue;
        };
        let sets = case.sets_bytes().expect("case hex");
        let prog_sets = case.prog_sets_owned();
        for packet in case.packets {
            let data = std::fs::read(bpf_progs::packet(packet)).expect("packet");
            let label = format!("{} [-mcpu={}]", case.label(packet), cpu.as_str());
            let mut outcomes = Vec::new();
            for &engine in engines {
                let name = engine.name();
                match jit::run_engine(
                    engine,
                    &object,
                    case.prog,
                    &data,
                    case.repeat,
                    &sets,
                    &prog_sets,
                ) {
                    Ok(o) => outcomes.push((name, o)),
                    Err(e) => failures.push(format!("{label}: {name} error: {e}")),
                }
            }
            if let Some((first, rest)) = outcomes.split_first() {
                for other in rest {
                    failures.extend(diff(&label, (other.0, &other.1), (first.0, &first.1)));
                }
            }
            // The live kernel where it may be used, else its recorded answer.
            let theirs = match bpf_progs::recorded::kernel_answer(case, packet, &object) {
                Ok((r, Source::Live)) => kernel_outcome(r),
                Ok((r, Source::Recorded)) => {
                    recorded += 1;
                    kernel_outcome(r)
                }
                Ok((r, Source::RecordedOtherBuild)) => {
                    // Another build's recording: its return value and frame only.
                    recorded += 1;
                    let theirs = kernel_outcome(r);
                    for (name, ours) in &outcomes {
                        let ours = Outcome {
                            maps: BTreeMap::new(),
                            ..ours.clone()
                        };
                        let theirs = Outcome {
                            maps: BTreeMap::new(),
                            ..theirs.clone()
                        };
                        failures.extend(diff(&label, (name, &ours), ("kernel", &theirs)));
                    }
                    compared += 1;
                    continue;
                }
                Err(e) => {
                    failures.push(format!("{label}: kernel answer: {e}"));
                    continue;
                }
            };
            compared += 1;
            for (name, ours) in &outcomes {
                failures.extend(diff(&label, (name, ours), ("kernel", &theirs)));
            }
        }
    }
    println!(
        "-mcpu={}: {compared} runs compared with the kernel ({recorded} with its recorded answers)",
        cpu.as_str()
    );
    failures
}

#[test]
fn matches_the_kernel_v2() {
    differential(Cpu::V2);
}

#[test]
fn matches_the_kernel_v1() {
    differential(Cpu::V1);
}

#[test]
fn matches_the_kernel_v3() {
    differential(Cpu::V3);
}

#[test]
fn out_of_bounds_programs_trap() {
    let bytes = std::fs::read(bpf_progs::object("xdp_oob")).unwrap();
    let obj = loader::Object::parse(&bytes).unwrap();
    let store = maps::Store::anonymous(maps::StoreOptions::default()).unwrap();
    let loaded = LoadedObject::load(&obj, &store).unwrap();
    let mut data = std::fs::read(bpf_progs::packet("icmp")).unwrap();
    // xdp_oob_stack indexes a 16-byte stack buffer with the first packet byte: 0xff
    // reaches past the top of the stack.
    data[0] = 0xff;
    for name in bpf_progs::OOB_PROGRAMS {
        let index = loaded.program_index(Some(name)).unwrap();
        let mut pkt = Packet::new(&data).unwrap();
        let before = pkt.data().to_vec();
        let trap = loaded
            .run(&mut Vm::new(0), index, &mut pkt)
            .expect_err(name);
        assert!(
            matches!(trap.kind, TrapKind::OutOfBounds { .. }),
            "{name}: {trap}"
        );
        assert!(
            trap.pc < loaded.programs[index].ops().len(),
            "{name}: pc {} in range",
            trap.pc
        );
        assert_eq!(pkt.data().len(), before.len());
    }
}

#[test]
fn short_packets_are_refused_like_the_kernel() {
    let data = std::fs::read(bpf_progs::packet("short")).unwrap();
    assert!(data.len() < 14);
    let err = Packet::new(&data).err().expect("short packet refused");
    assert!(err.to_string().contains("EINVAL"), "{err}");
    if let Err(why) = kclient::available() {
        kclient::skip("kernel check of short packets", &why);
        return;
    }
    let r = kernel::run(
        &bpf_progs::object("xdp_counter"),
        "xdp_counter",
        &data,
        1,
        &[],
    );
    assert!(
        r.is_err(),
        "the kernel refuses a {}-byte packet too",
        data.len()
    );
}

/// Counts heap allocations made by the current thread, so that tests running in parallel
/// do not disturb each other's counts.
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    pub struct Counting;

    thread_local! {
        pub static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    }

    // SAFETY: defers every operation to the system allocator; only counts.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            ALLOCATIONS.with(|c| c.set(c.get() + 1));
            // SAFETY: same contract as ours.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: same contract as ours.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            ALLOCATIONS.with(|c| c.set(c.get() + 1));
            // SAFETY: same contract as ours.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    pub fn count() -> u64 {
        ALLOCATIONS.with(|c| c.get())
    }
}

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

#[test]
fn runs_make_no_heap_allocation() {
    for (object, packet) in [
        ("xdp_counter", "icmp"),
        ("xdp_parser", "vlan_udp"),
        ("xdp_subprog", "udp"),
        ("xdp_encap", "tcp_syn"),
    ] {
        let bytes = std::fs::read(bpf_progs::object(object)).unwrap();
        let obj = loader::Object::parse(&bytes).unwrap();
        let store = maps::Store::anonymous(maps::StoreOptions::default()).unwrap();
        let loaded = LoadedObject::load(&obj, &store).unwrap();
        let index = loaded.program_index(None).unwrap();
        let mut pkt = Packet::new(&std::fs::read(bpf_progs::packet(packet)).unwrap()).unwrap();
        let mut vm = Vm::new(0);
        // Warm up once (first-time map insertions are still preallocated, but be fair).
        loaded.run(&mut vm, index, &mut pkt).unwrap();
        let before = counting::count();
        loaded.run_repeat(&mut vm, index, &mut pkt, 1000).unwrap();
        assert_eq!(
            counting::count() - before,
            0,
            "{object}: allocations during 1000 runs"
        );
    }
}

#[test]
fn co_re_relocated_programs_match_the_kernel() {
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        println!("SKIP: CO-RE differential: no /sys/kernel/btf/vmlinux");
        return;
    }
    let kernel_ok = kclient::available();
    if let Err(why) = &kernel_ok {
        kclient::skip("kernel comparison of CO-RE programs", why);
    }
    let loader_fixtures = bpf_progs::root().join("loader");
    let mut objects: Vec<(std::path::PathBuf, &str)> = ["v1", "v2", "v3"]
        .iter()
        .map(|v| (loader_fixtures.join(format!("core_xdp.{v}.o")), "core_xdp"))
        .collect();
    for cpu in Cpu::ALL {
        if let Some(o) = bpf_progs::object_for("xdp_core", cpu) {
            objects.push((o, "xdp_core"));
        }
    }
    for (object, prog) in objects {
        for packet in ["udp", "tcp_syn", "ipv6"] {
            let data = std::fs::read(bpf_progs::packet(packet)).unwrap();
            let label = format!("{} {prog} {packet}", object.display());
            let ours = run_ours(&object, prog, &data, 1, &[], &[])
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            if kernel_ok.is_err() {
                continue;
            }
            let theirs =
                kernel_outcome(kernel::run(&object, prog, &data, 1, &[]).expect("kernel run"));
            assert_eq!(ours, theirs, "{label}");
        }
    }
}
