//! The engines side by side: interpreter dispatch on assembled programs, the seed
//! workload (xdp_counter, MAC swap, ICMP frame) and the map-heavy workload (8 lookups
//! and 2 updates per run in a 1M-entry hash) in the interpreter, the JIT and, where
//! bpf(2) is permitted, the kernel's BPF_PROG_TEST_RUN. The `peers` group puts rbpf's
//! JIT and interpreter beside them on the compared workloads (`bench::compare`).
//!
//! `cargo bench -p bench --bench engines`; one time per run of the program.

use std::time::Duration;

use bench::rbpf_peer::RbpfProgram;
use bench::{compare, dispatch, Workload};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use runtime::jit::JitObject;
use runtime::Vm;

/// The interpreter and the JIT on one workload, one run per iteration on the same
/// buffer (as the kernel's repeat).
fn both_engines(c: &mut Criterion, group: &str, label: &str, w: &Workload) {
    let jit = JitObject::compile(&w.loaded, &Default::default()).expect("JIT compiles");
    let mut g = c.benchmark_group(group);
    let mut vm = Vm::new(0);
    let mut pkt = w.fresh_packet().expect("packet");
    let env = w.loaded.env();
    g.bench_function(BenchmarkId::new("interpreter", label), |b| {
        b.iter(|| black_box(vm.run(&env, w.prog, &mut pkt)))
    });
    let mut pkt = w.fresh_packet().expect("packet");
    g.bench_function(BenchmarkId::new("jit", label), |b| {
        b.iter(|| black_box(jit.run(&mut vm, w.prog, &mut pkt)))
    });
    g.finish();
}

/// The kernel's time for the same workload: BPF_PROG_TEST_RUN with `repeat` = the
/// iteration count, its own average per run (whole nanoseconds).
fn kernel_engine(c: &mut Criterion, group: &str, label: &str, w: &Workload, fills: &[(&str, u64)]) {
    let k = match w.kernel(fills) {
        Ok(k) => k,
        Err(why) => {
            println!("SKIP: {group}/kernel/{label}: {why}");
            return;
        }
    };
    let name = w.prog_name().to_string();
    let mut g = c.benchmark_group(group);
    g.bench_function(BenchmarkId::new("kernel", label), |b| {
        b.iter_custom(|iters| {
            let repeat = iters.clamp(1, u32::MAX as u64) as u32;
            match k.test_run(&name, &w.packet, repeat) {
                Ok(run) => run.duration * repeat,
                Err(e) => panic!("kernel test run of {name}: {e}"),
            }
        })
    });
    g.finish();
}

fn dispatch_benches(c: &mut Criterion) {
    for (label, insns) in [
        ("alu_straight_64", dispatch::alu_straight(64)),
        ("branchy_32", dispatch::branchy(32)),
        ("loop_100x3", dispatch::counted_loop(100)),
    ] {
        let w = dispatch::workload(label, insns).expect("dispatch workload");
        both_engines(c, "dispatch", label, &w);
    }
}

fn seed_workload(c: &mut Criterion) {
    let w = Workload::from_bpf_progs("xdp_counter", None, "icmp").expect("xdp_counter.o");
    both_engines(c, "seed", "xdp_counter_icmp", &w);
    kernel_engine(c, "seed", "xdp_counter_icmp", &w, &[]);
}

fn map_heavy(c: &mut Criterion) {
    const FILL: u64 = 1 << 20;
    let w = Workload::from_bpf_progs("xdp_map_heavy", Some("xdp_map_heavy"), "icmp")
        .expect("xdp_map_heavy.o");
    w.fill("big_map", FILL).expect("fill big_map");
    both_engines(c, "map_heavy", "8_lookups_2_updates_1M", &w);
    kernel_engine(
        c,
        "map_heavy",
        "8_lookups_2_updates_1M",
        &w,
        &[("big_map", FILL)],
    );
}

/// rbpf's JIT and interpreter on one workload, one run per iteration on one frame.
fn rbpf_engines(c: &mut Criterion, group: &str, label: &str, w: &Workload) {
    let program = match RbpfProgram::link(&w.object, w.prog_name()) {
        Ok(p) => p,
        Err(why) => {
            println!("SKIP: {group}/rbpf/{label}: {why}");
            return;
        }
    };
    let mut g = c.benchmark_group(group);
    match program.jit(&w.packet) {
        Ok(mut vm) => {
            g.bench_function(BenchmarkId::new("rbpf_jit", label), |b| {
                b.iter(|| black_box(vm.run()))
            });
        }
        Err(why) => println!("SKIP: {group}/rbpf_jit/{label}: {why}"),
    }
    let mut vm = program.interpreter(&w.packet).expect("rbpf interpreter");
    g.bench_function(BenchmarkId::new("rbpf_interpreter", label), |b| {
        b.iter(|| black_box(vm.run()))
    });
    g.finish();
}

/// Every engine on the compared workloads: the pure parser, xdp_counter, xdp_parser,
/// xdp_fw and xdp_stats (`src/bin/compare.rs` prints them as one table).
fn peers(c: &mut Criterion) {
    for &(label, object, packet) in compare::WORKLOADS {
        let w = compare::workload(object, packet).expect("compared workload");
        let label = label.replace(['/', ' '], "_");
        both_engines(c, "peers", &label, &w);
        rbpf_engines(c, "peers", &label, &w);
        kernel_engine(c, "peers", &label, &w, &[]);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = dispatch_benches, seed_workload, map_heavy, peers
}
criterion_main!(benches);
