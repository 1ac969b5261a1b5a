//! A libbpf loader of our own (tests/c/loader.c), built at run time with `cc`
//! against the system libbpf, run unprivileged under the shim and compared with
//! the same binary run as root against the kernel (the oracle).
//!
//! - `loader_runs_unprivileged_under_the_shim`: open, set `.rodata`, load, update
//!   maps, mmap `.data`, test-run with repeat, read everything back.
//! - `pins_outlive_the_loader_and_another_process_uses_them`: one process pins,
//!   another uses the pins, then `xdp-runner map dump` reads the store.
//! - `no_kernel_object_is_created`: bpf(2) is refused to uid 65534, the loader
//!   still works under the shim, and the kernel gains no object of ours.
//!
//! The loader prints one fact per line (see loader.c); lines starting with `id `
//! or `duration ` differ by nature and are left out of comparisons.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::{run_under_shim, shim_so, unprivileged_unavailable, TestStore};

/// The packet every test runs: 74 bytes, distinct MACs (02:..:02 <- 02:..:01).
const PACKET: &str = "udp";
/// Repeats per test run: odd, so xdp_counter's MAC swap shows in data_out.
const REPEAT: u32 = 3;

/// Serialises the parts of these tests that touch the kernel, so that the
/// kernel-object check of one test never sees the oracle run of another.
fn kernel_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The two C programs, compiled once per test binary.
struct Tools {
    loader: PathBuf,
    probe: PathBuf,
}

/// Compiles tests/c/*.c into target/<profile>/shim-test-c/ (a directory uid
/// 65534 can read). `Err` is a SKIP reason: no cc, or no libbpf headers/library.
fn tools() -> Result<&'static Tools, String> {
    static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
    TOOLS
        .get_or_init(build_tools)
        .as_ref()
        .map_err(Clone::clone)
}

fn build_tools() -> Result<Tools, String> {
    match Command::new("cc").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Err("cc not found".to_string()),
    }
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/c");
    let out = shim_so()
        .parent()
        .map(|d| d.join("shim-test-c"))
        .ok_or("no target directory")?;
    std::fs::create_dir_all(&out).map_err(|e| format!("mkdir {}: {e}", out.display()))?;
    let loader = compile(
        &src.join("loader.c"),
        &out.join("libbpf-loader"),
        &["-lbpf", "-lelf", "-lz"],
    )?;
    let probe = compile(&src.join("bpf_probe.c"), &out.join("bpf-probe"), &[])?;
    Ok(Tools { loader, probe })
}

/// `cc -O1 -Wall SRC -o DST LIBS`, written to a temporary name and renamed so
/// that concurrent test binaries never run a half-written file.
pub(super) fn compile(src: &Path, dst: &Path, libs: &[&str]) -> Result<PathBuf, String> {
    let tmp = dst.with_extension(format!("tmp{}", std::process::id()));
    let out = Command::new("cc")
        .args(["-O1", "-Wall"])
        .arg(src)
        .arg("-o")
        .arg(&tmp)
        .args(libs)
        .output()
        .map_err(|e| format!("cannot run cc: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        if stderr.contains("bpf/") && stderr.contains("No such file")
            || stderr.contains("cannot find -lbpf")
            || stderr.contains("cannot find -lelf")
        {
            return Err(format!(
                "libbpf development files missing: {}",
                stderr.trim()
            ));
        }
        panic!("cc {} failed:\n{stderr}", src.display());
    }
    std::fs::rename(&tmp, dst).map_err(|e| format!("rename {}: {e}", tmp.display()))?;
    Ok(dst.to_path_buf())
}

/// The tools, or a printed SKIP.
fn tools_or_skip(test: &str) -> Option<&'static Tools> {
    match tools() {
        Ok(t) => Some(t),
        Err(why) => {
            println!("SKIP: {test}: {why}");
            None
        }
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn show(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The output lines that must agree between kernel and shim. A hash map's
/// iteration order is not part of its behaviour: each run of entry lines
/// (`map NAME key ...`) is sorted.
fn comparable(stdout: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.starts_with("id ") && !l.starts_with("duration "))
        .map(str::to_string)
        .collect();
    let is_entry = |l: &str| l.starts_with("map ") && l.contains(" key ");
    let mut i = 0;
    while i < lines.len() {
        let start = i;
        while i < lines.len() && is_entry(&lines[i]) {
            i += 1;
        }
        lines[start..i].sort();
        i = i.max(start + 1);
    }
    lines
}

/// Checks a successful loader run and returns its comparable lines.
fn succeeded(what: &str, out: &Output) -> Vec<String> {
    assert!(
        out.status.success() && out.stdout.ends_with(b"done\n"),
        "{what} failed:\n{}",
        show(out)
    );
    comparable(&out.stdout)
}

/// Asserts that every line of `expected` is in `lines`.
fn assert_has(what: &str, lines: &[String], expected: &[String]) {
    for e in expected {
        assert!(
            lines.iter().any(|l| l == e),
            "{what}: missing line {e:?} in:\n{}",
            lines.join("\n")
        );
    }
}

/// Asserts equal line lists, naming the first difference.
fn assert_same(what: &str, kernel: &[String], shim: &[String]) {
    if kernel == shim {
        return;
    }
    let first = kernel
        .iter()
        .zip(shim)
        .position(|(a, b)| a != b)
        .unwrap_or(kernel.len().min(shim.len()));
    panic!(
        "{what}: shim output differs from the kernel's at line {first}:\n  kernel: {:?}\n  shim:   {:?}\n--- kernel\n{}\n--- shim\n{}",
        kernel.get(first),
        shim.get(first),
        kernel.join("\n"),
        shim.join("\n")
    );
}

/// The value hex of `map NAME key KEY value HEX` for a map whose name ends with
/// `suffix`.
fn map_value<'a>(lines: &'a [String], suffix: &str, key: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| {
        let mut w = l.split(' ');
        match (w.next(), w.next(), w.next(), w.next(), w.next(), w.next()) {
            (Some("map"), Some(name), Some("key"), Some(k), Some("value"), Some(v))
                if name.ends_with(suffix) && k == key =>
            {
                Some(v)
            }
            _ => None,
        }
    })
}

fn packet() -> Vec<u8> {
    std::fs::read(bpf_progs::packet(PACKET)).expect("read the test packet")
}

/// What xdp_subprog.c implies after the loader's `run` mode (object built with
/// -mcpu=v2): sub_stats[0] starts at {packets 1000, bytes 5}, sub_stats[1] is
/// 0xab bytes, data_counter is set to 1000 through the mmapped .data; each run
/// adds 1 packet and len bytes, data_counter += 2, data_last_len = len, and the
/// verdict is PASS (2) iff len >= cfg_min_len, else DROP (1). The packet is
/// not written.
fn subprog_expectations(pkt: &[u8], min_len: u32) -> Vec<String> {
    let len = pkt.len() as u64;
    let r = u64::from(REPEAT);
    let verdict = if len >= u64::from(min_len) { 2 } else { 1 };
    let le64 = |v: u64| hex(&v.to_le_bytes());
    let le32 = |v: u32| hex(&v.to_le_bytes());
    vec![
        "program xdp_subprog".to_string(),
        "proginfo xdp_subprog type 6".to_string(),
        // BPF_NOEXIST on an existing array slot: EEXIST.
        "update sub_stats noexist 17".to_string(),
        format!("retval {verdict}"),
        format!("data_out {}", hex(pkt)),
        "mapinfo sub_stats type 2 key 4 value 24 max_entries 2 flags 0".to_string(),
        format!("map sub_stats key 01000000 value {}", "ab".repeat(24)),
        "map sub_stats entries 2".to_string(),
        format!("var .rodata cfg_min_len {}", le32(min_len)),
        format!("var .rodata cfg_mult {}", le32(3)),
        format!("var .data data_counter {}", le64(1000 + 2 * r)),
        format!("var .data data_last_len {}", le32(pkt.len() as u32)),
        format!("var .bss bss_packets {}", le64(r)),
        format!("var .bss bss_bytes {}", le64(r * len)),
    ]
}

/// Checks a `run` output against the source-derived expectations.
fn check_subprog(what: &str, lines: &[String], pkt: &[u8], min_len: u32) {
    assert_has(what, lines, &subprog_expectations(pkt, min_len));
    // sub_stats[0]: packets and bytes (the first 16 bytes of struct stats).
    let v0 = map_value(lines, "sub_stats", "00000000")
        .unwrap_or_else(|| panic!("{what}: no sub_stats[0] in:\n{}", lines.join("\n")));
    let r = u64::from(REPEAT);
    let want = format!(
        "{}{}",
        hex(&(1000 + r).to_le_bytes()),
        hex(&(5 + r * pkt.len() as u64).to_le_bytes())
    );
    assert!(
        v0.starts_with(&want),
        "{what}: sub_stats[0] = {v0}, expected packets/bytes {want}"
    );
    // The shared mappings show what lookup shows.
    for sec in [".data", ".bss", ".rodata"] {
        let via_lookup = map_value(lines, sec, "00000000")
            .unwrap_or_else(|| panic!("{what}: no {sec} map in:\n{}", lines.join("\n")));
        assert_has(what, lines, &[format!("mmap {sec} {via_lookup}")]);
    }
}

/// Whether this process may use bpf(2): the probe (a direct BPF_MAP_CREATE)
/// run as we are, without the shim. `Err` is a SKIP reason.
fn kernel_bpf(tools: &Tools) -> Result<(), String> {
    let out = Command::new(&tools.probe)
        .env_remove("LD_PRELOAD")
        .output()
        .map_err(|e| format!("cannot run the bpf probe: {e}"))?;
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if said.starts_with("ok") {
        Ok(())
    } else {
        Err(format!("kernel bpf(2) unavailable here: {said}"))
    }
}

/// Runs the loader as root against the kernel, or says why not.
fn run_kernel(tools: &Tools, argv: &[&str]) -> Result<Output, String> {
    kernel_bpf(tools)?;
    Command::new(argv[0])
        .args(&argv[1..])
        .env_remove("LD_PRELOAD")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))
}

#[test]
fn loader_runs_unprivileged_under_the_shim() {
    const T: &str = "loader_runs_unprivileged_under_the_shim";
    let Some(tools) = tools_or_skip(T) else {
        return;
    };
    let obj = bpf_progs::object("xdp_subprog");
    let pkt_path = bpf_progs::packet(PACKET);
    let pkt = packet();
    let len = pkt.len() as u32;
    let unpriv = unprivileged_unavailable();
    let repeat = REPEAT.to_string();
    // At the packet's length: PASS; one byte above: DROP.
    for min_len in [len, len + 1] {
        let min = min_len.to_string();
        let argv = [
            path_str(&tools.loader),
            "run",
            path_str(&obj),
            path_str(&pkt_path),
            &min,
            &repeat,
        ];
        let kernel = {
            let _k = kernel_lock();
            run_kernel(tools, &argv)
        };
        let kernel = match kernel {
            Ok(out) => {
                let lines = succeeded("loader against the kernel", &out);
                check_subprog("kernel", &lines, &pkt, min_len);
                Some(lines)
            }
            Err(why) => {
                println!("SKIP: {T}: kernel comparison (cfg_min_len {min_len}): {why}");
                None
            }
        };
        if let Some(why) = &unpriv {
            println!("SKIP: {T}: shim run: {why}");
            continue;
        }
        let store = TestStore::new(&format!("libbpf-run{min_len}"));
        let out = run_under_shim(&store, &argv);
        let lines = succeeded("loader under the shim (uid 65534)", &out);
        check_subprog("shim", &lines, &pkt, min_len);
        if let Some(kernel) = kernel {
            assert_same(&format!("cfg_min_len {min_len}"), &kernel, &lines);
        }
    }
}

/// `xdp-runner` of this build (target/<profile>/xdp-runner); built with cargo
/// when missing.
pub(super) fn xdp_runner() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let runner = profile_dir.join("xdp-runner");
    if runner.is_file() {
        return runner;
    }
    let target = profile_dir.parent().expect("target directory");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .args(["build", "-p", "runner"])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .status()
        .expect("run cargo build -p runner");
    assert!(status.success(), "cargo build -p runner failed");
    assert!(runner.is_file(), "no {} after the build", runner.display());
    runner
}

/// What xdp_counter.c implies after `load-and-pin` then `use-pins`: process 1
/// wrote 2000 -> 1, process 2 reads it, writes 1000 -> 7 and runs REPEAT times
/// (the first run of a length stores 0, each later one adds 1: REPEAT - 1);
/// XDP_TX (3) with the MACs swapped an odd number of times.
fn counter_expectations(pkt: &[u8]) -> (Vec<String>, BTreeMap<String, String>) {
    let mut swapped = pkt.to_vec();
    swapped[..6].copy_from_slice(&pkt[6..12]);
    swapped[6..12].copy_from_slice(&pkt[..6]);
    let len_key = hex(&(pkt.len() as u32).to_le_bytes());
    let map: BTreeMap<String, String> = [
        (hex(&2000u32.to_le_bytes()), hex(&1u32.to_le_bytes())),
        (hex(&1000u32.to_le_bytes()), hex(&7u32.to_le_bytes())),
        (len_key, hex(&(REPEAT - 1).to_le_bytes())),
    ]
    .into_iter()
    .collect();
    let mut lines = vec![
        "proginfo xdp_counter type 6".to_string(),
        "mapinfo counter_map type 1 key 4 value 4 max_entries 1024 flags 0".to_string(),
        "lookup counter_map 2000 1".to_string(),
        "retval 3".to_string(),
        format!("data_out {}", hex(&swapped)),
        "map counter_map entries 3".to_string(),
    ];
    for (k, v) in &map {
        lines.push(format!("map counter_map key {k} value {v}"));
    }
    (lines, map)
}

/// A fresh bpffs mounted at a temp dir, unmounted and removed on drop.
struct Bpffs(PathBuf);

impl Bpffs {
    fn mount() -> Result<Bpffs, String> {
        let dir = std::env::temp_dir().join(format!("xdpshim-libbpf-bpffs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let out = Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir(&dir);
            return Err(format!("mount -t bpf failed: {}", show(&out)));
        }
        Ok(Bpffs(dir))
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Runs load-and-pin then use-pins against the kernel on a private bpffs.
fn two_processes_in_kernel(tools: &Tools, obj: &Path, pkt: &Path) -> Result<Vec<String>, String> {
    kernel_bpf(tools)?;
    let _k = kernel_lock();
    let fs = Bpffs::mount()?;
    let dir = fs.0.join("pins");
    let dir = path_str(&dir);
    let loader = path_str(&tools.loader);
    let first = run_kernel(tools, &[loader, "load-and-pin", path_str(obj), dir])?;
    succeeded("load-and-pin against the kernel", &first);
    let second = run_kernel(
        tools,
        &[loader, "use-pins", dir, path_str(pkt), &REPEAT.to_string()],
    )?;
    Ok(succeeded("use-pins against the kernel", &second))
}

#[test]
fn pins_outlive_the_loader_and_another_process_uses_them() {
    const T: &str = "pins_outlive_the_loader_and_another_process_uses_them";
    let Some(tools) = tools_or_skip(T) else {
        return;
    };
    let obj = bpf_progs::object("xdp_counter");
    let pkt_path = bpf_progs::packet(PACKET);
    let (expected_lines, expected_map) = counter_expectations(&packet());

    let kernel = match two_processes_in_kernel(tools, &obj, &pkt_path) {
        Ok(lines) => {
            assert_has("kernel use-pins", &lines, &expected_lines);
            Some(lines)
        }
        Err(why) => {
            println!("SKIP: {T}: kernel comparison: {why}");
            None
        }
    };

    if let Some(why) = unprivileged_unavailable() {
        println!("SKIP: {T}: shim run: {why}");
        return;
    }
    let store = TestStore::new("libbpf-pins");
    let dir = format!("/sys/fs/bpf/xdpshim-libbpf-pins-{}", std::process::id());
    let loader = path_str(&tools.loader);
    let first = run_under_shim(&store, &[loader, "load-and-pin", path_str(&obj), &dir]);
    let first = succeeded("load-and-pin under the shim", &first);
    assert_has(
        "load-and-pin under the shim",
        &first,
        &[
            "pinned map counter_map".to_string(),
            "pinned prog xdp_counter".to_string(),
        ],
    );
    let repeat = REPEAT.to_string();
    let second = run_under_shim(
        &store,
        &[loader, "use-pins", &dir, path_str(&pkt_path), &repeat],
    );
    let second = succeeded("use-pins under the shim (a second process)", &second);
    assert_has("shim use-pins", &second, &expected_lines);
    if let Some(kernel) = kernel {
        assert_same("use-pins", &kernel, &second);
    }

    // A third process, outside the shim, reads the store by the pin (root
    // reading the store of uid 65534: it must trust it explicitly).
    let pin = format!("{dir}/counter_map");
    let out = Command::new(xdp_runner())
        .args([
            "map",
            "dump",
            "--store",
            &store.0,
            "--store-trust",
            "uid:65534",
        ])
        .args(["--json", "pinned", &pin])
        .output()
        .expect("run xdp-runner");
    assert!(
        out.status.success(),
        "xdp-runner map dump pinned {pin}:\n{}",
        show(&out)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("xdp-runner JSON: {e}\n{}", show(&out)));
    let entries = doc
        .as_array()
        .unwrap_or_else(|| panic!("xdp-runner dump is not an array: {doc}"));
    let dumped: BTreeMap<String, String> = entries
        .iter()
        .map(|e| {
            let k = e["key_hex"].as_str().unwrap_or_default().replace(' ', "");
            let v = e["value_hex"].as_str().unwrap_or_default().replace(' ', "");
            (k, v)
        })
        .collect();
    assert_eq!(
        dumped, expected_map,
        "xdp-runner map dump of {pin} (key_hex -> value_hex)"
    );
}

/// Ids and names of the kernel's programs and maps (`bpftool -j ... show`).
fn kernel_objects() -> Result<BTreeSet<(String, u64, String)>, String> {
    let mut set = BTreeSet::new();
    for kind in ["prog", "map"] {
        let out = Command::new("bpftool")
            .args(["-j", kind, "show"])
            .env_remove("LD_PRELOAD")
            .output()
            .map_err(|e| format!("bpftool not found: {e}"))?;
        if !out.status.success() {
            return Err(format!("bpftool {kind} show failed: {}", show(&out)));
        }
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("bpftool {kind} show JSON: {e}"))?;
        for o in doc.as_array().map(Vec::as_slice).unwrap_or_default() {
            let id = o["id"].as_u64().unwrap_or_default();
            let name = o["name"].as_str().unwrap_or_default().to_string();
            set.insert((kind.to_string(), id, name));
        }
    }
    Ok(set)
}

/// Kernel object names like those of our objects (programs, maps and libbpf's
/// `<obj8>.<section>` names for global data), when loaded under their usual
/// object names. Other tests on this machine load the same objects into the
/// kernel, so these are reported, not asserted on.
fn named_like_ours(name: &str) -> bool {
    matches!(
        name,
        "xdp_subprog" | "xdp_counter" | "sub_stats" | "counter_map"
    ) || name.starts_with("xdp_subp.")
        || name.starts_with("xdp_coun.")
        || name.starts_with(".rodata.str")
}

/// Objects in `after` but not `before` whose name `pred` accepts.
fn new_objects(
    before: &BTreeSet<(String, u64, String)>,
    after: &BTreeSet<(String, u64, String)>,
    pred: impl Fn(&str) -> bool,
) -> Vec<(String, u64, String)> {
    after
        .difference(before)
        .filter(|(_, _, name)| pred(name))
        .cloned()
        .collect()
}

/// Asserts that the kernel gained no map named with our unique object name
/// (`<unique>.bss`, ...); reports other new objects named like ours.
fn check_kernel_gained_nothing(
    when: &str,
    unique: &str,
    before: &BTreeSet<(String, u64, String)>,
    after: &BTreeSet<(String, u64, String)>,
) {
    let prefix = format!("{unique}.");
    let ours = new_objects(before, after, |n| n.starts_with(&prefix));
    assert!(
        ours.is_empty(),
        "{when}: the kernel gained objects of the shimmed loader: {ours:?}"
    );
    let alike = new_objects(before, after, named_like_ours);
    if !alike.is_empty() {
        println!(
            "note: {when}: new kernel objects named like ours, not from this loader \
             (not ours by name prefix {prefix:?}, and it holds no kernel BPF fd): {alike:?}"
        );
    }
}

/// The fds of a live process that are kernel BPF objects.
fn kernel_bpf_fds(pid: u32) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return found;
    };
    for e in dir.flatten() {
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        if target.starts_with("anon_inode:bpf") {
            found.push(format!(
                "fd {} -> {target}",
                e.file_name().to_string_lossy()
            ));
        }
    }
    found
}

#[test]
fn no_kernel_object_is_created() {
    const T: &str = "no_kernel_object_is_created";
    let Some(tools) = tools_or_skip(T) else {
        return;
    };
    if let Some(why) = unprivileged_unavailable() {
        println!("SKIP: {T}: {why}");
        return;
    }
    // 1. Without the shim, uid 65534 may not use bpf(2).
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
        ])
        .arg(&tools.probe)
        .env_remove("LD_PRELOAD")
        .output()
        .expect("run setpriv");
    let probe = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if probe.starts_with("ok") {
        println!("SKIP: {T}: the premise does not hold: uid 65534 may call bpf(2) here ({probe})");
        return;
    }
    assert!(
        probe.starts_with("err 1 "),
        "bpf(BPF_MAP_CREATE) as uid 65534: expected EPERM, got:\n{}",
        show(&out)
    );

    // 2. The same loader succeeds under the shim; while it holds its objects,
    //    none of its fds is a kernel BPF object and the kernel gained none.
    let _k = kernel_lock();
    let before = match kernel_objects() {
        Ok(s) => Some(s),
        Err(why) => {
            println!("SKIP: {T}: kernel object listing: {why}");
            None
        }
    };
    // Global-data maps become "<unique>.bss" etc.: names no one else uses.
    let unique = format!("x{:07x}", std::process::id() & 0x0fff_ffff);
    let store = TestStore::new("libbpf-nokernel");
    let pkt_path = bpf_progs::packet(PACKET);
    let pkt = packet();
    let obj = bpf_progs::object("xdp_subprog");
    let min = pkt.len().to_string();
    let repeat = REPEAT.to_string();
    let mut child = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
        ])
        .arg(&tools.loader)
        .args([
            "run",
            path_str(&obj),
            path_str(&pkt_path),
            &min,
            &repeat,
            "hold",
        ])
        .env("LD_PRELOAD", shim_so())
        .env("XDPSHIM_STORE", &store.0)
        .env("LOADER_OBJ_NAME", &unique)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the loader under the shim");
    let pid = child.id();
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut seen = String::new();
    let mut held = false;
    loop {
        let mut line = String::new();
        match stdout.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        seen.push_str(&line);
        if line == "held\n" {
            held = true;
            break;
        }
    }
    let (fds, during) = if held {
        (
            kernel_bpf_fds(pid),
            before.as_ref().map(|_| kernel_objects()),
        )
    } else {
        (Vec::new(), None)
    };
    // Let it close everything and exit.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.flush();
    }
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
    let out = child.wait_with_output().expect("wait for the loader");
    seen.push_str(&rest);
    let full = Output {
        status: out.status,
        stdout: seen.into_bytes(),
        stderr: out.stderr,
    };
    assert!(
        held,
        "the loader under the shim never got to `held`:\n{}",
        show(&full)
    );
    let lines = succeeded("loader under the shim (hold)", &full);
    check_subprog("shim (hold)", &lines, &pkt, pkt.len() as u32);
    assert!(
        fds.is_empty(),
        "the loader under the shim holds kernel BPF objects: {fds:?}"
    );
    // The loader's own names prove that the shim worked on them.
    assert_has(
        "shim (hold)",
        &lines,
        &[format!(
            "mapinfo {unique}.bss type 2 key 4 value 88 max_entries 1 flags 0x400"
        )],
    );
    if let (Some(before), Some(during)) = (&before, during) {
        let during = during.unwrap_or_else(|e| panic!("bpftool during the run: {e}"));
        check_kernel_gained_nothing(
            "while the loader held its objects",
            &unique,
            before,
            &during,
        );
    }

    // 3. Pins made under the shim live on its virtual bpffs only.
    let dir = format!("/sys/fs/bpf/xdpshim-libbpf-nokernel-{}", std::process::id());
    let obj_name = format!("LOADER_OBJ_NAME={unique}");
    let out = run_under_shim(
        &store,
        &[
            "env",
            &obj_name,
            path_str(&tools.loader),
            "load-and-pin",
            path_str(&obj),
            &dir,
        ],
    );
    let pinned = succeeded("load-and-pin under the shim", &out);
    assert_has(
        "load-and-pin under the shim",
        &pinned,
        &[
            format!("pinned map {unique}.bss"),
            "pinned prog xdp_subprog".to_string(),
        ],
    );
    assert!(
        !Path::new(&dir).exists(),
        "{dir} exists on the real filesystem after pinning under the shim"
    );
    if let Some(before) = &before {
        let after = kernel_objects().unwrap_or_else(|e| panic!("bpftool after the runs: {e}"));
        check_kernel_gained_nothing("after the pinning loader exited", &unique, before, &after);
    }
}
