//! Kernel clients: everything that loads objects, maps and programs into the running
//! kernel and test-runs them there. The runtime does not depend on this crate; its
//! users are the kernel column of `xdp-runner bench` and of the bench crate, and the
//! tests that take the kernel as their oracle.
//!
//! - [`sys`]: the bpf(2) system call with a `union bpf_attr` written at
//!   `isa::uapi`'s offsets (the crate's only unsafe code).
//! - [`object`]: [`KernelObject`], a loader object's maps and XDP programs in the
//!   kernel, filled and test-run through bpf(2).
//! - [`prog`]: raw instructions as an XDP program, `BPF_PROG_TEST_RUN`.
//! - [`map`]: a kernel map element by element, answering errnos.
//! - [`bpftool`]: the oracle through bpftool (libbpf as an independent loader):
//!   run an object's program on a packet and dump every map.
//!
//! [`available`] is the one check, shared by all of them, that the kernel may be
//! used here.

pub mod bpftool;
pub mod error;
pub mod map;
pub mod object;
pub mod prog;
pub mod sys;

use std::sync::OnceLock;

pub use error::KernelError;
pub use maps::possible_cpus;
pub use object::KernelObject;
pub use prog::TestRun;

/// Whether this process may use the kernel as the clients here do: bpf(2) loads and
/// test-runs an XDP program, and the bpftool oracle can run (bpftool and taskset
/// present, root, a bpffs). `Err` says why not. Checked once per process.
pub fn available() -> Result<(), String> {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    AVAILABLE
        .get_or_init(|| {
            probe_bpf()?;
            bpftool::probe()
        })
        .clone()
}

/// The environment variable that turns a skipped kernel comparison into a failure
/// (`.ci/run` sets it: CI runs as root, so nothing there may skip the kernel).
pub const REQUIRE_ENV: &str = "XDP_REQUIRE_ORACLE";

/// Reports a kernel comparison that cannot run here: prints `SKIP: what: why`, or
/// panics when [`REQUIRE_ENV`] is set.
pub fn skip(what: &str, why: &str) {
    assert!(
        std::env::var_os(REQUIRE_ENV).is_none(),
        "{REQUIRE_ENV} is set but {what} cannot use the kernel: {why}"
    );
    println!("SKIP: {what}: {why}");
}

/// Whether the kernel may be used here ([`available`]); when not, [`skip`]s `what`.
pub fn require(what: &str) -> bool {
    match available() {
        Ok(()) => true,
        Err(why) => {
            skip(what, &why);
            false
        }
    }
}

/// The smallest XDP program, `r0 = XDP_PASS; exit`, loaded and run once.
fn probe_bpf() -> Result<(), String> {
    use isa::opcode::{BPF_ALU64, BPF_K, BPF_MOV, EXIT};
    let insns = [
        isa::RawInsn::new(
            BPF_ALU64 | BPF_MOV | BPF_K,
            0,
            0,
            0,
            isa::uapi::XDP_PASS as i32,
        ),
        isa::RawInsn::new(EXIT, 0, 0, 0, 0),
    ];
    let (fd, _) = prog::load("probe", &insns, c"GPL", &[], 0, 0)
        .map_err(|e| format!("BPF_PROG_LOAD refused: {e}"))?;
    match prog::test_run(&fd, &[0u8; 64], 1, 4096) {
        Ok(r) if r.retval == isa::uapi::XDP_PASS => Ok(()),
        Ok(r) => Err(format!(
            "the probe program returned {}, not XDP_PASS",
            r.retval
        )),
        Err(e) => Err(format!("BPF_PROG_TEST_RUN refused: {e}")),
    }
}

/// Bytes of a map value as user space passes it to bpf(2): per-CPU maps take one
/// 8-byte aligned slot per possible CPU.
pub fn user_value_size(map_type: u32, value_size: u32) -> usize {
    if isa::uapi::is_percpu_map_type(map_type) {
        (value_size as usize).div_ceil(8) * 8 * maps::possible_cpus() as usize
    } else {
        value_size as usize
    }
}
