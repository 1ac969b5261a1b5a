//! Hostile pointers from the application (tests/c/hostile_pointers.c): unreadable
//! paths, read-only or unmapped result buffers and bpf(2) attributes. Under
//! the shim each call gives the errno the kernel gives for the same call
//! (EFAULT; EINVAL for a zero-length readlink), and the process survives; run as root without the shim, the
//! same binary shows the kernel's answers.

use std::path::PathBuf;
use std::process::{Command, Output};

use super::{run_under_shim, shim_so, unprivileged_unavailable, TestStore};

fn build() -> Result<PathBuf, String> {
    match Command::new("cc").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Err("cc not found".to_string()),
    }
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/c/hostile_pointers.c");
    let out = shim_so()
        .parent()
        .map(|d| d.join("shim-test-c"))
        .ok_or("no target directory")?;
    std::fs::create_dir_all(&out).map_err(|e| format!("mkdir {}: {e}", out.display()))?;
    super::libbpf::compile(&src, &out.join("hostile_pointers"), &[])
}

fn show(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `(case, "result errno")` lines of a run that reached its end.
fn cases(what: &str, out: &Output) -> Vec<(String, String)> {
    assert!(
        out.status.success(),
        "{what}: the process did not survive:\n{}",
        show(out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().last(), Some("done"), "{what}:\n{}", show(out));
    text.lines()
        .filter(|l| *l != "done")
        .map(|l| {
            let (name, rest) = l.split_once(' ').expect("case line");
            (name.to_string(), rest.to_string())
        })
        .collect()
}

#[test]
fn hostile_pointers_give_the_kernels_efault_and_the_process_survives() {
    let bin = match build() {
        Ok(b) => b,
        Err(why) => {
            println!("SKIP: hostile pointers: {why}");
            return;
        }
    };
    if let Some(why) = unprivileged_unavailable() {
        println!("SKIP: hostile pointers: {why}");
        return;
    }
    let store = TestStore::new("hostile");
    let shim = cases(
        "under the shim",
        &run_under_shim(&store, &[bin.to_str().expect("utf-8 path")]),
    );
    assert!(shim.len() >= 25, "{shim:?}");
    for (name, got) in &shim {
        // readlink of a map descriptor names the kernel's anon inode:
        // "anon_inode:bpf-map", 18 bytes.
        let want = match name.as_str() {
            "readlink_fd_ok" => "18 0".to_string(),
            // No room at all: EINVAL before anything is written.
            "readlink_fd_zero" => format!("-1 {}", libc::EINVAL),
            _ => format!("-1 {}", libc::EFAULT),
        };
        assert_eq!(got, &want, "{name} under the shim");
    }
    // The oracle: the same calls against the kernel, as root.
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIP: hostile pointers against the kernel: not root");
        return;
    }
    let out = Command::new(&bin)
        .env_remove("LD_PRELOAD")
        .output()
        .expect("run hostile");
    assert_eq!(cases("against the kernel", &out), shim);
}
