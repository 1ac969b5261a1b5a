//! Kfuncs (issue 15): the bpf-progs programs calling them, in both engines, against
//! the kernel (live where bpf(2) is permitted, else its recorded answers); loader
//! errors naming a kfunc the runtime does not implement.

use super::jit::Engine;
use bpf_progs::Cpu;

fn compare_object(object: &str) {
    let cases: Vec<bpf_progs::Case> = bpf_progs::cases()
        .iter()
        .filter(|c| c.object == object)
        .copied()
        .collect();
    assert!(!cases.is_empty(), "no cases for {object}");
    for cpu in [Cpu::V2, Cpu::V3] {
        let failures = super::compare_cases(&cases, cpu, &[Engine::Interpreter, Engine::Jit]);
        assert!(
            failures.is_empty(),
            "{} mismatches:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

#[test]
fn open_coded_iterators_match_the_kernel() {
    compare_object("xdp_iter");
}

#[test]
fn dynptrs_over_the_frame_match_the_kernel() {
    compare_object("xdp_dynptr");
}

/// A kfunc the runtime does not implement: the program is refused with an error naming
/// it (the kernel's would load it), at the call's slot.
#[test]
fn unimplemented_kfunc_is_named() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bpf-progs/loader/kfunc.v2.o");
    let object = loader::Object::parse(&std::fs::read(&path).unwrap()).unwrap();
    let store = maps::Store::anonymous(Default::default()).unwrap();
    let loaded = runtime::LoadedObject::load(&object, &store).unwrap();
    let err = loaded
        .program_index(Some("kfunc_prog"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("kfunc bpf_rcu_read_lock is not implemented") && err.contains("insn 0"),
        "{err}"
    );
}
