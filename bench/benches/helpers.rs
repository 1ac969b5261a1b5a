//! The hot helpers, each called from a program that does little else, so the time is
//! the helper through the runtime's helper table (as programs call it) plus the
//! program's few instructions: compare with `baseline`, which only returns.
//!
//! `cargo bench -p bench --bench helpers`; one time per run of the program.

use std::time::Duration;

use bench::helpers;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use runtime::jit::JitObject;
use runtime::Vm;

fn helper_benches(c: &mut Criterion) {
    let w = helpers::workload().expect("helper workload");
    let jit = JitObject::compile(&w.loaded, &Default::default()).expect("JIT compiles");
    let env = w.loaded.env();
    let mut vm = Vm::new(0);
    let mut g = c.benchmark_group("helpers");
    for (name, _, _) in helpers::programs() {
        if name == "tail_target" {
            continue;
        }
        let prog = w.loaded.program_index(Some(name)).expect("prepared");
        let mut pkt = w.fresh_packet().expect("packet");
        g.bench_function(BenchmarkId::new("interpreter", name), |b| {
            b.iter(|| black_box(vm.run(&env, prog, &mut pkt)))
        });
        let mut pkt = w.fresh_packet().expect("packet");
        g.bench_function(BenchmarkId::new("jit", name), |b| {
            b.iter(|| black_box(jit.run(&mut vm, prog, &mut pkt)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(800));
    targets = helper_benches
}
criterion_main!(benches);
