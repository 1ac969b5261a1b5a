//! Builds every C program in `src-c/` with `-mcpu=v1` and `-mcpu=v3` into
//! `OUT_DIR/v1/NAME.o` and `OUT_DIR/v3/NAME.o`, in the style of aya's
//! `test/integration-test/build.rs`. The `-mcpu=v2` objects are committed in
//! `obj/` (rebuilt by the Makefile), so a machine without clang still has them.
//!
//! Without clang on PATH (or with `BPF_PROGS_NO_CLANG` set) this prints a
//! cargo warning and builds nothing; `bpf_progs::object_for(_, V1 | V3)` then
//! returns `None`. A program that fails to compile is reported the same way
//! and skipped: a missing libbpf-dev must not break the workspace build.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let src_dir = manifest_dir.join("src-c");
    let clang = env::var_os("CLANG").unwrap_or_else(|| "clang".into());

    println!("cargo:rerun-if-changed={}", src_dir.display());
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-env-changed=BPF_PROGS_NO_CLANG");
    println!("cargo:rustc-env=BPF_PROGS_CPU_DIR={}", out_dir.display());

    let mut sources: Vec<PathBuf> = match fs::read_dir(&src_dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension() == Some(OsStr::new("c")))
            .collect(),
        Err(e) => {
            println!("cargo:warning=cannot read {}: {e}", src_dir.display());
            return;
        }
    };
    sources.sort();
    for src in &sources {
        println!("cargo:rerun-if-changed={}", src.display());
    }

    let have_clang = env::var_os("BPF_PROGS_NO_CLANG").is_none()
        && Command::new(&clang)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
    if !have_clang {
        // No stale objects from an earlier build with clang.
        for cpu in ["v1", "v3"] {
            let _ = fs::remove_dir_all(out_dir.join(cpu));
        }
        println!("cargo:warning=clang not found: -mcpu=v1/v3 objects not built");
        return;
    }

    // <linux/types.h> includes <asm/types.h>, found in the multiarch directory.
    let multiarch = Path::new("/usr/include").join(format!("{}-linux-gnu", env::consts::ARCH));

    for (cpu, version) in [("v1", 1), ("v3", 3)] {
        let dir = out_dir.join(cpu);
        if let Err(e) = fs::create_dir_all(&dir) {
            println!("cargo:warning=cannot create {}: {e}", dir.display());
            return;
        }
        for src in &sources {
            let Some(stem) = src.file_stem() else {
                continue;
            };
            let obj = dir.join(stem).with_extension("o");
            let mut cmd = Command::new(&clang);
            cmd.args(["-O2", "-g", "-target", "bpf", "-Wall"])
                .arg(format!("-mcpu={cpu}"))
                .arg(format!("-DXDP_CPU_VERSION={version}"));
            if multiarch.is_dir() {
                cmd.arg("-I").arg(&multiarch);
            }
            cmd.arg("-c").arg(src).arg("-o").arg(&obj);
            match cmd.output() {
                Ok(out) if out.status.success() => {}
                Ok(out) => {
                    let _ = fs::remove_file(&obj);
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let first = stderr.lines().find(|l| l.contains("error")).unwrap_or("");
                    println!(
                        "cargo:warning=clang -mcpu={cpu} failed on {}: {first}",
                        src.display()
                    );
                }
                Err(e) => println!("cargo:warning=cannot run clang: {e}"),
            }
        }
    }
}
