//! The shim under real programs: bpftool and a libbpf loader of our own run
//! unprivileged with `LD_PRELOAD=libxdpshim.so`, against a private store.

use std::path::PathBuf;
use std::process::{Command, Output};

#[path = "shim/attach.rs"]
mod attach;
#[path = "shim/bpftool.rs"]
mod bpftool;
#[path = "shim/calls.rs"]
mod calls;
#[path = "shim/corrupt.rs"]
mod corrupt;
#[path = "shim/hostile.rs"]
mod hostile;
#[path = "shim/hostile_pointers.rs"]
mod hostile_pointers;
#[path = "shim/libbpf.rs"]
mod libbpf;
#[path = "shim/lifetime.rs"]
mod lifetime;
#[path = "shim/probe.rs"]
mod probe;
#[path = "shim/queue.rs"]
mod queue;
#[path = "shim/strict.rs"]
mod strict;
#[path = "shim/vfs.rs"]
mod vfs;
#[path = "shim/xdptools.rs"]
mod xdptools;

/// The cdylib cargo built with this test binary: `cargo test` leaves the fresh
/// one in `target/<profile>/deps/` (next to the test binary), `cargo build` in
/// `target/<profile>/`.
pub fn shim_so() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("target/<profile>/deps");
    let fresh = deps.join("libxdpshim.so");
    if fresh.exists() {
        return fresh;
    }
    deps.parent()
        .expect("target/<profile>")
        .join("libxdpshim.so")
}

/// A store name private to one test; the store is removed on drop.
pub struct TestStore(pub String);

impl TestStore {
    pub fn new(tag: &str) -> TestStore {
        let name = format!("xdpshim-test-{tag}-{}", std::process::id());
        let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
        TestStore(name)
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/dev/shm/{}", self.0));
    }
}

/// Why unprivileged runs cannot happen here, if they cannot.
pub fn unprivileged_unavailable() -> Option<String> {
    let ok = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    (!ok).then(|| "setpriv cannot switch to uid 65534 (not root?)".to_string())
}

/// Runs `argv` as uid/gid 65534 with no capabilities, under the shim, on `store`.
pub fn run_under_shim(store: &TestStore, argv: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
        ])
        .args(argv)
        .env("LD_PRELOAD", shim_so())
        .env("XDPSHIM_STORE", &store.0)
        .output()
        .expect("run setpriv")
}
