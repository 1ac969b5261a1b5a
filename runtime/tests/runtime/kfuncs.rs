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

/// The XDP metadata kfuncs: the kernel loads their callers only bound to a device, and
/// cannot test-run those; the runtime answers as a device without RX metadata (the
/// kernel's generic versions: -EOPNOTSUPP, outputs untouched), in both engines.
#[test]
fn xdp_metadata_kfuncs_answer_eopnotsupp() {
    let object = bpf_progs::object("xdp_metadata");
    let data = std::fs::read(bpf_progs::packet("udp.bin")).unwrap();
    const EOPNOTSUPP: i64 = -95;
    // (return, preset output(s)) as the program lays them out in meta_out.
    let want: [i64; 8] = [
        EOPNOTSUPP, 0x1111, EOPNOTSUPP, 0x2222, 0x3333, EOPNOTSUPP, 0x4444, 0x5555,
    ];
    for engine in [Engine::Interpreter, Engine::Jit] {
        let out = super::jit::run_engine(engine, &object, "xdp_metadata", &data, 1, &[], &[])
            .unwrap_or_else(|e| panic!("{}: {e}", engine.name()));
        assert_eq!(out.retval, 2, "{}", engine.name());
        let got: Vec<i64> = out.maps["meta_out"]
            .iter()
            .map(|(_, v)| i64::from_ne_bytes(v[0][..8].try_into().unwrap()))
            .collect();
        assert_eq!(got, want, "{}", engine.name());
    }
    // What the kernel says of the same object in a test run.
    if !kclient::require("xdp_metadata in the kernel") {
        return;
    }
    let pin = format!("/sys/fs/bpf/xdp_kfunc_md_{}", std::process::id());
    let out = std::process::Command::new("bpftool")
        .args(["-d", "prog", "load"])
        .arg(&object)
        .arg(&pin)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&pin);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the kernel loaded xdp_metadata unbound"
    );
    assert!(
        log.contains("metadata kfuncs require device-bound program"),
        "{log}"
    );
}
