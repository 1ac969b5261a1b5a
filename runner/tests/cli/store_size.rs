//! `xdp-runner run` sizes its store from the object (`runtime::store_size_for`, as
//! `bench` does): katran's default balancer sizes (a 268 MB `ch_rings`, a 134 MB
//! `quic_mapping`) run, the anonymous store backing only the pages the program
//! touches; a named store too small for /dev/shm is a clear error.

use super::{path_str, run};

fn katran() -> String {
    path_str(&bpf_progs::object("xdp_katran_sizes"))
}

fn udp() -> String {
    path_str(&bpf_progs::packet("udp"))
}

#[test]
fn run_sizes_the_store_for_katran_default_maps() {
    // The second run sees the first one's write to ch_rings' last slot: XDP_TX.
    for engine in ["interpreter", "jit"] {
        let out = run(&[
            "run",
            &katran(),
            "--data-in",
            &udp(),
            "--repeat",
            "2",
            "--engine",
            engine,
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{engine}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with("Return value: 3,"), "{engine}: {stdout}");
    }
}

/// The anonymous store is a memfd whose pages are backed when first touched: 400 MB
/// of maps cost what the program and the loader touch, far less than the maps.
#[test]
fn run_touches_only_the_pages_it_uses() {
    let time = std::path::Path::new("/usr/bin/time");
    let probe = std::process::Command::new(time)
        .args(["-f", "%M", "true"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        println!("SKIP: the resident-set check needs GNU time (/usr/bin/time -f)");
        return;
    }
    let out = std::process::Command::new(time)
        .args(["-f", "maxrss_kb %M"])
        .arg(env!("CARGO_BIN_EXE_xdp-runner"))
        .args(["run", &katran(), "--data-in", &udp()])
        .output()
        .expect("time runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let kb: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no maxrss in {stderr}"));
    // ch_rings alone is 268 MB in the store.
    assert!(
        kb < 100 * 1024,
        "max RSS {kb} KiB for 400 MB of untouched maps"
    );
}

/// A named store reserves its whole size in /dev/shm when created: in a 128 MB
/// /dev/shm (a tmpfs mounted in a private mount namespace), katran's maps do not
/// fit and the error says so; in a 1 GB one they run.
#[test]
fn named_store_too_big_for_dev_shm_is_a_clear_error() {
    let unshare = std::process::Command::new("unshare")
        .args(["--mount", "true"])
        .output();
    if !unshare.is_ok_and(|o| o.status.success()) {
        println!("SKIP: a private /dev/shm needs unshare --mount (root)");
        return;
    }
    let script = |size: &str| {
        format!(
            "mount --make-rprivate / && mount -t tmpfs -o size={size} tmpfs /dev/shm && \
             exec {} run {} --data-in {} --store katran_sizes",
            env!("CARGO_BIN_EXE_xdp-runner"),
            katran(),
            udp()
        )
    };
    let small = std::process::Command::new("unshare")
        .args(["--mount", "sh", "-c", &script("128m")])
        .output()
        .expect("unshare runs");
    let err = String::from_utf8_lossy(&small.stderr);
    assert!(!small.status.success(), "ran in a 128 MB /dev/shm");
    let size = format!("{} bytes", {
        let bytes = std::fs::read(bpf_progs::object("xdp_katran_sizes")).unwrap();
        runtime::store_size_for(&loader::Object::parse(&bytes).unwrap())
    });
    for want in [
        size.as_str(),
        "/dev/shm",
        "without --store",
        "no room for store",
    ] {
        assert!(err.contains(want), "{want:?} not in: {err}");
    }
    let big = std::process::Command::new("unshare")
        .args(["--mount", "sh", "-c", &script("1g")])
        .output()
        .expect("unshare runs");
    let out = String::from_utf8_lossy(&big.stdout);
    assert!(
        big.status.success(),
        "{}",
        String::from_utf8_lossy(&big.stderr)
    );
    assert!(out.starts_with("Return value: 2,"), "{out}");
}
