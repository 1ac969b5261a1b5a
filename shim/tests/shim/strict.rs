//! Strict mode of BPF_PROG_LOAD (`XDPSHIM_STRICT=1`): an XDP program whose accesses
//! the runtime's analysis does not all prove safe is refused with EACCES and the
//! unproven instructions in the verifier log, as the kernel's verifier refuses it;
//! without it the same program loads (and runs its unproven accesses checked).

use std::process::Command;

use super::{run_under_shim, unprivileged_unavailable, TestStore};

#[test]
fn strict_mode_refuses_unproven_programs_with_a_log() {
    if let Some(why) = unprivileged_unavailable() {
        println!("SKIP: {why}");
        return;
    }
    if Command::new("bpftool").arg("version").output().is_err() {
        println!("SKIP: bpftool not found");
        return;
    }
    let store = TestStore::new("strict");
    let obj = |name: &str| {
        bpf_progs::root()
            .join("obj")
            .join(name)
            .to_string_lossy()
            .into_owned()
    };
    // xdp_mim reads a value of an inner map through the outer map's lookup, which the
    // analysis does not follow: two accesses stay unproven.
    let mim = obj("xdp_mim.o");
    let strict = |args: &[&str]| {
        let mut argv = vec!["env", "XDPSHIM_STRICT=1", "bpftool"];
        argv.extend_from_slice(args);
        run_under_shim(&store, &argv)
    };
    let out = strict(&["prog", "load", &mim, "/sys/fs/bpf/strict_mim"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "strict load of xdp_mim succeeded");
    assert!(
        err.contains("not proven safe (strict mode refuses the program)"),
        "{err}"
    );
    // The log names the instruction and the register states.
    assert!(err.contains("not proven"), "{err}");
    assert!(
        err.contains("Permission denied") || err.contains("-13"),
        "{err}"
    );

    // Without strict mode it loads.
    let out = run_under_shim(
        &store,
        &["bpftool", "prog", "load", &mim, "/sys/fs/bpf/mim"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A program whose accesses are all proven loads in strict mode.
    let counter = obj("xdp_counter.o");
    let out = strict(&["prog", "load", &counter, "/sys/fs/bpf/strict_counter"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
