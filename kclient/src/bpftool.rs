//! The kernel oracle: runs an object in the kernel through `bpftool` (an
//! independent loader: libbpf) and `BPF_PROG_TEST_RUN`. [`crate::available`] says
//! whether it can run here.
//!
//! Each [`run`] works in its own private directories, so parallel test
//! threads never collide:
//! - a bpffs: a fresh `mount -t bpf` at a temp dir (or a fresh subdirectory
//!   of `/sys/fs/bpf` when that is a bpffs), holding `progs/` and `maps/`;
//! - a plain temp dir for `data_in`/`data_out`.
//!
//! Steps: `bpftool prog loadall OBJ progs type xdp pinmaps maps`, `bpftool
//! map update pinned` for the sets, `taskset -c 0 bpftool prog run pinned
//! progs/PROG data_in F data_out F repeat N` (CPU 0, so per-CPU values land in
//! slot 0), then `bpftool -j map dump pinned` for every pinned map. A guard
//! removes the pins, unmounts and deletes the directories, also on error.
//!
//! Map names are normalised to the object's: libbpf pins `.bss` as
//! `<obj8>_bss` (kernel name `<obj8>.bss`, `<obj8>` being the first 8
//! characters of the object's file stem), `.data` and `.rodata` likewise, and
//! custom sections such as `.rodata.str1.1` as `_rodata_str1_1` (kernel name
//! `.rodata.str1.1`). BTF-defined maps keep their names.
//!
//! Kernel facts (6.x, x86-64, 4 KiB pages) the tests rely on:
//! - frames shorter than 14 bytes are refused with EINVAL; bpftool then
//!   prints `Error: failed to run program: Invalid argument` on stderr and
//!   exits with status 234;
//! - the linear part holds at most 4096 - 256 - 320 = 3520 bytes; larger
//!   inputs go to fragments (also for programs without `xdp.frags`) up to
//!   3520 + 17 * 4096 = 73152 bytes; beyond that ENOMEM;
//! - `data_out` starts at `data_meta`: metadata is included;
//! - `repeat` reruns the program on the same buffer, unreset.
//!
//! Event maps: a `perf_event_array` dumps as no entries (bpftool lists each slot
//! with a lookup error, skipped as a devmap's empty slots are), and a `ringbuf`
//! is not dumped at all (bpftool fails on it): both appear with no entries.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

/// Size of the output buffer bpftool hands the kernel: the largest input
/// the kernel accepts plus room for tail growth and metadata.
const DATA_SIZE_OUT: usize = 80 * 1024;

/// A map entry to write before a run: (object map name, key, value).
pub type MapSet = (String, Vec<u8>, Vec<u8>);

/// A prog_array slot to fill before a run: (object map name, slot, program name).
pub type ProgSet = (String, u32, String);

/// The result of one kernel run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRun {
    /// The program's return value (the XDP action).
    pub retval: u32,
    /// The kernel's average duration per run, in nanoseconds.
    pub duration_ns: u64,
    /// The frame after the run, starting at `data_meta`.
    pub data_out: Vec<u8>,
    /// Every map of the object, by the object's map name.
    pub maps: BTreeMap<String, Vec<KernelEntry>>,
    /// The context after the run, when a `ctx_in` was given.
    pub ctx_out: Option<Vec<u8>>,
}

/// One map entry as the kernel holds it (bytes in memory order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelEntry {
    pub key: Vec<u8>,
    /// One value, or one per possible CPU for per-CPU maps.
    pub values: Vec<Vec<u8>>,
}

/// Whether the oracle can run here: bpftool and taskset present, root, a bpffs can
/// be had, and bpftool may create a map. Part of [`crate::available`].
pub(crate) fn probe() -> Result<(), String> {
    which_ok("bpftool", &["version"])?;
    which_ok("taskset", &["--version"])?;
    let euid = effective_uid()?;
    if euid != 0 {
        return Err(format!("not root (euid {euid})"));
    }
    let session = Session::new()?;
    let pin = session.bpffs.join("probe_map");
    let out = bpftool(&[
        "map".as_ref(),
        "create".as_ref(),
        pin.as_os_str(),
        "type".as_ref(),
        "array".as_ref(),
        "key".as_ref(),
        "4".as_ref(),
        "value".as_ref(),
        "4".as_ref(),
        "entries".as_ref(),
        "1".as_ref(),
        "name".as_ref(),
        "oracle_probe".as_ref(),
    ])?;
    if !out.status.success() {
        return Err(format!(
            "bpf(2) refused: bpftool map create: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

fn which_ok(tool: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(tool).args(args).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("{tool} {args:?} failed: {}", o.status)),
        Err(e) => Err(format!("{tool} not found: {e}")),
    }
}

fn effective_uid() -> Result<u32, String> {
    let status = fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .ok_or("no Uid line in /proc/self/status")?;
    line.split_whitespace()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("cannot parse {line:?}"))
}

/// Loads every program of `object` into the kernel (type xdp) and unloads
/// it again. `Err` carries libbpf's message and the verifier log tail.
pub fn load_check(object: &Path) -> Result<(), String> {
    let session = Session::new()?;
    session.loadall(object)
}

/// Runs `prog` of `object` in the kernel on `data_in`, `repeat` times (0 is
/// taken as 1), after writing `sets` (map name, key bytes, value bytes; a
/// per-CPU value is written to every CPU). Returns the result and every map.
pub fn run(
    object: &Path,
    prog: &str,
    data_in: &[u8],
    repeat: u32,
    sets: &[MapSet],
) -> Result<KernelRun, String> {
    run_with(object, prog, data_in, repeat, sets, &[])
}

/// [`run`], also filling prog_array slots with programs of the same object.
/// In the dump, a prog_array value is the target program's name (its bytes), and an
/// array/hash of maps value the inner map's object name (its bytes), since program
/// and map ids differ between the kernel and any other runtime.
pub fn run_with(
    object: &Path,
    prog: &str,
    data_in: &[u8],
    repeat: u32,
    sets: &[MapSet],
    prog_sets: &[ProgSet],
) -> Result<KernelRun, String> {
    run_full(object, prog, data_in, repeat, sets, prog_sets, None)
}

/// [`run_with`], also passing a test-run context (`ctx_in`, a `struct xdp_md`); the
/// context the kernel writes back is in [`KernelRun::ctx_out`].
pub fn run_full(
    object: &Path,
    prog: &str,
    data_in: &[u8],
    repeat: u32,
    sets: &[MapSet],
    prog_sets: &[ProgSet],
    ctx_in: Option<&[u8]>,
) -> Result<KernelRun, String> {
    run_impl(object, prog, data_in, repeat, sets, prog_sets, ctx_in, None)
}

/// [`run_full`], with the test run (only that step) inside a fresh network
/// namespace (`unshare -n`) prepared by the shell commands `netns_setup`
/// (e.g. `ip link add ...; ip route add ...`). Programs that consult the
/// routing tables (`bpf_fib_lookup`) then see a known, private set of
/// devices, routes and neighbours instead of the host's. Loading, map
/// updates and dumps happen in the caller's namespace.
#[allow(clippy::too_many_arguments)]
pub fn run_in_netns(
    object: &Path,
    prog: &str,
    data_in: &[u8],
    repeat: u32,
    sets: &[MapSet],
    prog_sets: &[ProgSet],
    ctx_in: Option<&[u8]>,
    netns_setup: &str,
) -> Result<KernelRun, String> {
    run_impl(
        object,
        prog,
        data_in,
        repeat,
        sets,
        prog_sets,
        ctx_in,
        Some(netns_setup),
    )
}

/// One test run of a sequence ([`run_steps`]): a program of the object, the frame it
/// runs on and how many times (the kernel's `repeat`, 0 taken as 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub prog: String,
    pub data_in: Vec<u8>,
    pub repeat: u32,
}

/// Runs `steps` in order on one load of `object` (its maps shared by every step, kept
/// pinned), after writing `sets`; then waits `wait` with the maps still pinned, so the
/// bpf_timers the programs started fire (the kernel cancels a map's timers when its
/// last user reference goes), and dumps every map. The [`KernelRun`]'s return value,
/// duration and frame are the last step's.
pub fn run_steps(
    object: &Path,
    steps: &[Step],
    sets: &[MapSet],
    wait: std::time::Duration,
) -> Result<KernelRun, String> {
    run_steps_timed(object, steps, sets, wait).map(|(run, _)| run)
}

/// [`run_steps`], also answering how long the steps took, from the start of the first
/// test run to the end of the last: a sequence whose meaning depends on a timer still
/// being pending at its last step is valid only when this was shorter than the timer.
pub fn run_steps_timed(
    object: &Path,
    steps: &[Step],
    sets: &[MapSet],
    wait: std::time::Duration,
) -> Result<(KernelRun, std::time::Duration), String> {
    let steps: Vec<(&str, &[u8], u32)> = steps
        .iter()
        .map(|s| (s.prog.as_str(), s.data_in.as_slice(), s.repeat))
        .collect();
    run_impl_steps(object, &steps, sets, &[], None, None, wait, None)
}

/// [`run_steps`], dumping only the maps named in `only` (by the object's map name):
/// a dump of a million entries through bpftool's JSON takes long.
pub fn run_steps_dumping(
    object: &Path,
    steps: &[Step],
    sets: &[MapSet],
    wait: std::time::Duration,
    only: &[&str],
) -> Result<KernelRun, String> {
    let steps: Vec<(&str, &[u8], u32)> = steps
        .iter()
        .map(|s| (s.prog.as_str(), s.data_in.as_slice(), s.repeat))
        .collect();
    run_impl_steps(object, &steps, sets, &[], None, None, wait, Some(only)).map(|(run, _)| run)
}

#[allow(clippy::too_many_arguments)]
fn run_impl(
    object: &Path,
    prog: &str,
    data_in: &[u8],
    repeat: u32,
    sets: &[MapSet],
    prog_sets: &[ProgSet],
    ctx_in: Option<&[u8]>,
    netns_setup: Option<&str>,
) -> Result<KernelRun, String> {
    run_impl_steps(
        object,
        &[(prog, data_in, repeat)],
        sets,
        prog_sets,
        ctx_in,
        netns_setup,
        std::time::Duration::ZERO,
        None,
    )
    .map(|(run, _)| run)
}

#[allow(clippy::too_many_arguments)]
fn run_impl_steps(
    object: &Path,
    steps: &[(&str, &[u8], u32)],
    sets: &[MapSet],
    prog_sets: &[ProgSet],
    ctx_in: Option<&[u8]>,
    netns_setup: Option<&str>,
    wait: std::time::Duration,
    only: Option<&[&str]>,
) -> Result<(KernelRun, std::time::Duration), String> {
    if steps.is_empty() {
        return Err("no program run given".to_string());
    }
    let session = Session::new()?;
    session.loadall(object)?;
    let pinned = session.pinned_maps(object)?;
    let maps: BTreeMap<String, PathBuf> = pinned
        .iter()
        .map(|(name, p)| (name.clone(), p.pin.clone()))
        .collect();
    // Kernel map id -> the object's map name, for the values of maps of maps.
    let map_names: BTreeMap<u32, String> = pinned
        .iter()
        .map(|(name, p)| (p.id, name.clone()))
        .collect();

    for (name, slot, target) in prog_sets {
        let pin = maps
            .get(name)
            .ok_or_else(|| format!("prog set: no map {name:?} in {}", object.display()))?;
        let target_pin = session.bpffs.join("progs").join(target);
        let mut args: Vec<String> = vec!["map".into(), "update".into(), "pinned".into()];
        args.push(pin.display().to_string());
        args.push("key".into());
        args.push("hex".into());
        args.extend(slot.to_le_bytes().iter().map(|b| format!("{b:02x}")));
        args.push("value".into());
        args.push("pinned".into());
        args.push(target_pin.display().to_string());
        let out = bpftool(&args)?;
        check(&out, &format!("bpftool map update {name} (prog {target})"))?;
    }

    for (name, key, value) in sets {
        let pin = maps
            .get(name)
            .ok_or_else(|| format!("set: no map {name:?} in {}", object.display()))?;
        let mut args: Vec<String> = vec!["map".into(), "update".into(), "pinned".into()];
        args.push(pin.display().to_string());
        args.push("key".into());
        args.push("hex".into());
        args.extend(key.iter().map(|b| format!("{b:02x}")));
        args.push("value".into());
        args.push("hex".into());
        args.extend(value.iter().map(|b| format!("{b:02x}")));
        let out = bpftool(&args)?;
        check(&out, &format!("bpftool map update {name}"))?;
    }

    let mut last = None;
    let started = std::time::Instant::now();
    for (prog, data_in, repeat) in steps {
        last = Some(session.test_run(object, prog, data_in, *repeat, ctx_in, netns_setup)?);
    }
    let span = started.elapsed();
    let (retval, duration_ns, data_out, ctx_out) = last.ok_or("no program run given")?;
    if !wait.is_zero() {
        std::thread::sleep(wait);
    }

    let prog_names = session.pinned_prog_ids()?;
    let mut dumps = BTreeMap::new();
    for (name, p) in &pinned {
        if only.is_some_and(|only| !only.contains(&name.as_str())) {
            continue;
        }
        let pin = &p.pin;
        // A ring buffer has no entries to dump (bpftool fails on it): its records
        // are read by consumers, not compared here. Nor have queues, stacks and
        // bloom filters (no keys; bpftool's dump fails too): programs show what
        // they hold by popping and peeking.
        let mut entries = if matches!(
            p.map_type.as_str(),
            "ringbuf" | "queue" | "stack" | "bloom_filter"
        ) {
            Vec::new()
        } else {
            dump_map(pin)?
        };
        if matches!(p.map_type.as_str(), "array_of_maps" | "hash_of_maps") {
            for e in &mut entries {
                for v in &mut e.values {
                    let id = u32::from_le_bytes(
                        v.as_slice()
                            .try_into()
                            .map_err(|_| "map-in-map value size")?,
                    );
                    let inner = map_names
                        .get(&id)
                        .ok_or_else(|| format!("{name}: unknown inner map id {id}"))?;
                    *v = inner.as_bytes().to_vec();
                }
            }
        }
        if p.map_type == "prog_array" {
            for e in &mut entries {
                for v in &mut e.values {
                    let id = u32::from_le_bytes(
                        v.as_slice()
                            .try_into()
                            .map_err(|_| "prog_array value size")?,
                    );
                    let name = prog_names
                        .get(&id)
                        .ok_or_else(|| format!("prog_array {name}: unknown program id {id}"))?;
                    *v = name.as_bytes().to_vec();
                }
            }
        }
        dumps.insert(name.clone(), entries);
    }
    Ok((
        KernelRun {
            retval,
            duration_ns,
            data_out,
            maps: dumps,
            ctx_out,
        },
        span,
    ))
}

/// Parses `Return value: X, duration: Yns` or
/// `Return value: X, duration (average): Yns`.
pub fn parse_run_output(stdout: &str) -> Result<(u32, u64), String> {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("Return value:"))
        .ok_or_else(|| format!("no 'Return value' in bpftool output: {stdout:?}"))?;
    let rest = line.trim_start().trim_start_matches("Return value:");
    let (ret, dur) = rest
        .split_once(',')
        .ok_or_else(|| format!("cannot parse {line:?}"))?;
    let retval = ret
        .trim()
        .parse::<u32>()
        .map_err(|e| format!("bad return value in {line:?}: {e}"))?;
    let dur = dur
        .rsplit_once(':')
        .map(|(_, d)| d.trim())
        .ok_or_else(|| format!("no duration in {line:?}"))?;
    let duration_ns = dur
        .trim_end_matches("ns")
        .trim()
        .parse::<u64>()
        .map_err(|e| format!("bad duration in {line:?}: {e}"))?;
    Ok((retval, duration_ns))
}

fn check(out: &Output, what: &str) -> Result<(), String> {
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        String::from_utf8_lossy(&out.stdout).trim()
    ))
}

fn bpftool<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Result<Output, String> {
    Command::new("bpftool")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run bpftool: {e}"))
}

#[derive(Deserialize)]
struct MapShow {
    #[serde(default)]
    id: u32,
    name: String,
    #[serde(rename = "type", default)]
    map_type: String,
}

#[derive(Deserialize)]
struct ProgShow {
    id: u32,
}

#[derive(Deserialize)]
struct DumpEntry {
    key: Option<Vec<String>>,
    value: Option<DumpValue>,
    values: Option<Vec<CpuValue>>,
}

/// A dumped value: bytes, or (devmap, cpumap: every key is listed) the
/// lookup error of an empty slot, `{"error": "No such file or directory"}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum DumpValue {
    Bytes(Vec<String>),
    Error { error: String },
}

#[derive(Deserialize)]
struct CpuValue {
    #[allow(dead_code)]
    cpu: u32,
    value: Vec<String>,
}

fn parse_hex_bytes(items: &[String]) -> Result<Vec<u8>, String> {
    items
        .iter()
        .map(|s| {
            let t = s.trim_start_matches("0x");
            u8::from_str_radix(t, 16).map_err(|e| format!("bad byte {s:?}: {e}"))
        })
        .collect()
}

/// Parses `bpftool -j map dump` output.
pub fn parse_dump(json: &str) -> Result<Vec<KernelEntry>, String> {
    let entries: Vec<DumpEntry> =
        serde_json::from_str(json).map_err(|e| format!("bad map dump JSON: {e}"))?;
    entries
        .into_iter()
        // Empty slots of maps whose dump lists every key: not entries.
        .filter(|e| !matches!(e.value, Some(DumpValue::Error { .. })))
        .map(|e| {
            let key = parse_hex_bytes(e.key.as_deref().ok_or("dump entry without key")?)?;
            let values = match (e.value, e.values) {
                (Some(DumpValue::Bytes(v)), _) => vec![parse_hex_bytes(&v)?],
                (Some(DumpValue::Error { error }), _) => {
                    return Err(format!("dump entry error: {error}"))
                }
                (None, Some(per_cpu)) => per_cpu
                    .iter()
                    .map(|c| parse_hex_bytes(&c.value))
                    .collect::<Result<_, _>>()?,
                (None, None) => return Err("dump entry without value".to_string()),
            };
            Ok(KernelEntry { key, values })
        })
        .collect()
}

fn dump_map(pin: &Path) -> Result<Vec<KernelEntry>, String> {
    let out = bpftool(&[
        "-j".as_ref(),
        "map".as_ref(),
        "dump".as_ref(),
        "pinned".as_ref(),
        pin.as_os_str(),
    ])?;
    check(&out, &format!("bpftool map dump {}", pin.display()))?;
    parse_dump(&String::from_utf8_lossy(&out.stdout))
}

/// libbpf's object name: the file name up to its first '.'.
fn libbpf_obj_name(object: &Path) -> String {
    let file = object
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.split('.').next().unwrap_or_default().to_string()
}

/// Maps a pinned map's kernel name back to the object's map name.
pub fn normalise_map_name(obj_name: &str, pin_name: &str, kernel_name: &str) -> String {
    // Custom data sections (".rodata.str1.1", ".data.foo") get no object
    // prefix: the kernel name is the section name (truncated to 15
    // characters, where the pin name is ambiguous about '.' versus '_').
    if kernel_name.starts_with('.') {
        return kernel_name.to_string();
    }
    let prefix: String = obj_name.chars().take(8).collect();
    for sec in [".bss", ".data", ".rodata", ".kconfig"] {
        if kernel_name == format!("{prefix}{sec}") {
            return sec.to_string();
        }
    }
    pin_name.to_string()
}

/// A map the object pinned.
struct PinnedMap {
    pin: PathBuf,
    /// The kernel's map id.
    id: u32,
    /// The kernel's type name (`hash`, `prog_array`, `array_of_maps`, ...).
    map_type: String,
}

/// A private bpffs and file directory, removed on drop.
struct Session {
    /// Where pins go: a fresh bpffs mount, or a fresh dir in /sys/fs/bpf.
    bpffs: PathBuf,
    /// `Some(mount point)` when we mounted a bpffs ourselves.
    mounted: Option<PathBuf>,
    /// A plain temp dir for data files.
    files: PathBuf,
}

fn unique_name(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("xdp-oracle-{tag}-{}-{n}-{nanos}", std::process::id())
}

fn sys_fs_bpf_is_bpffs() -> bool {
    fs::read_to_string("/proc/mounts")
        .map(|m| {
            m.lines().any(|l| {
                let mut f = l.split_whitespace();
                let (_, mp, ty) = (f.next(), f.next(), f.next());
                mp == Some("/sys/fs/bpf") && ty == Some("bpf")
            })
        })
        .unwrap_or(false)
}

impl Session {
    fn new() -> Result<Session, String> {
        let files = std::env::temp_dir().join(unique_name("files"));
        fs::create_dir_all(&files).map_err(|e| format!("create {}: {e}", files.display()))?;
        // From here on, Drop cleans up whatever was made.
        let mut session = Session {
            bpffs: PathBuf::new(),
            mounted: None,
            files,
        };
        if sys_fs_bpf_is_bpffs() {
            let dir = Path::new("/sys/fs/bpf").join(unique_name("pins"));
            fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
            session.bpffs = dir;
        } else {
            let dir = std::env::temp_dir().join(unique_name("bpffs"));
            fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
            session.bpffs = dir.clone();
            let out = Command::new("mount")
                .args(["-t", "bpf", "bpf"])
                .arg(&dir)
                .output()
                .map_err(|e| format!("cannot run mount: {e}"))?;
            if !out.status.success() {
                let _ = fs::remove_dir(&dir);
                session.bpffs = PathBuf::new();
                return Err(format!(
                    "mount -t bpf failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            session.mounted = Some(dir);
        }
        Ok(session)
    }

    fn loadall(&self, object: &Path) -> Result<(), String> {
        let out = bpftool(&[
            "prog".as_ref(),
            "loadall".as_ref(),
            object.as_os_str(),
            self.bpffs.join("progs").as_os_str(),
            "type".as_ref(),
            "xdp".as_ref(),
            "pinmaps".as_ref(),
            self.bpffs.join("maps").as_os_str(),
        ])?;
        check(&out, &format!("bpftool prog loadall {}", object.display()))
    }

    /// Kernel program id -> program name, for every pinned program.
    /// One `bpftool prog run` of the pinned program `prog` (on CPU 0, in a fresh
    /// network namespace prepared by `netns_setup` when given): the return value,
    /// the duration, the output frame and the output context (with `ctx_in`).
    #[allow(clippy::type_complexity)]
    fn test_run(
        &self,
        object: &Path,
        prog: &str,
        data_in: &[u8],
        repeat: u32,
        ctx_in: Option<&[u8]>,
        netns_setup: Option<&str>,
    ) -> Result<(u32, u64, Vec<u8>, Option<Vec<u8>>), String> {
        let session = self;
        let prog_pin = session.bpffs.join("progs").join(prog);
        if !prog_pin.exists() {
            return Err(format!("no program {prog:?} in {}", object.display()));
        }
        let data_in_path = session.files.join("data_in");
        let data_out_path = session.files.join("data_out");
        fs::write(&data_in_path, data_in).map_err(|e| format!("write data_in: {e}"))?;
        let ctx_in_path = session.files.join("ctx_in");
        let ctx_out_path = session.files.join("ctx_out");
        let mut cmd = match netns_setup {
            None => Command::new("taskset"),
            Some(setup) => {
                // sh -c 'set -e; SETUP; exec "$0" "$@"' taskset -c 0 bpftool ...
                let mut c = Command::new("unshare");
                c.args(["-n", "sh", "-c"])
                    .arg(format!("set -e\n{setup}\nexec \"$0\" \"$@\""))
                    .arg("taskset");
                c
            }
        };
        cmd.args(["-c", "0", "bpftool", "prog", "run", "pinned"])
            .arg(&prog_pin)
            .arg("data_in")
            .arg(&data_in_path)
            .arg("data_out")
            .arg(&data_out_path)
            .args(["data_size_out", &DATA_SIZE_OUT.to_string()])
            .args(["repeat", &repeat.max(1).to_string()]);
        if let Some(ctx) = ctx_in {
            fs::write(&ctx_in_path, ctx).map_err(|e| format!("write ctx_in: {e}"))?;
            cmd.arg("ctx_in")
                .arg(&ctx_in_path)
                .arg("ctx_out")
                .arg(&ctx_out_path);
        }
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run taskset/bpftool: {e}"))?;
        check(&out, "bpftool prog run")?;
        let (retval, duration_ns) = parse_run_output(&String::from_utf8_lossy(&out.stdout))?;
        let data_out = fs::read(&data_out_path).map_err(|e| format!("read data_out: {e}"))?;
        let ctx_out = match ctx_in {
            Some(_) => Some(fs::read(&ctx_out_path).map_err(|e| format!("read ctx_out: {e}"))?),
            None => None,
        };
        Ok((retval, duration_ns, data_out, ctx_out))
    }

    fn pinned_prog_ids(&self) -> Result<BTreeMap<u32, String>, String> {
        let dir = self.bpffs.join("progs");
        let mut ids = BTreeMap::new();
        for entry in fs::read_dir(&dir).map_err(|e| format!("read {}: {e}", dir.display()))? {
            let entry = entry.map_err(|e| format!("read {}: {e}", dir.display()))?;
            let out = bpftool(&[
                "-j".as_ref(),
                "prog".as_ref(),
                "show".as_ref(),
                "pinned".as_ref(),
                entry.path().as_os_str(),
            ])?;
            check(&out, "bpftool prog show")?;
            let show: ProgShow = serde_json::from_slice(&out.stdout)
                .map_err(|e| format!("bad prog show JSON: {e}"))?;
            ids.insert(show.id, entry.file_name().to_string_lossy().into_owned());
        }
        Ok(ids)
    }

    /// Object map name -> pin path, kernel id and type, for every pinned map.
    fn pinned_maps(&self, object: &Path) -> Result<BTreeMap<String, PinnedMap>, String> {
        let obj_name = libbpf_obj_name(object);
        let dir = self.bpffs.join("maps");
        let mut maps = BTreeMap::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            // An object without maps: bpftool creates no directory.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(maps),
            Err(e) => return Err(format!("read {}: {e}", dir.display())),
        };
        for entry in rd {
            let entry = entry.map_err(|e| format!("read {}: {e}", dir.display()))?;
            let pin = entry.path();
            let pin_name = entry.file_name().to_string_lossy().into_owned();
            let out = bpftool(&[
                "-j".as_ref(),
                "map".as_ref(),
                "show".as_ref(),
                "pinned".as_ref(),
                pin.as_os_str(),
            ])?;
            check(&out, &format!("bpftool map show {}", pin.display()))?;
            let show: MapShow = serde_json::from_slice(&out.stdout)
                .map_err(|e| format!("bad map show JSON for {pin_name}: {e}"))?;
            maps.insert(
                normalise_map_name(&obj_name, &pin_name, &show.name),
                PinnedMap {
                    pin,
                    id: show.id,
                    map_type: show.map_type,
                },
            );
        }
        Ok(maps)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.bpffs.as_os_str().is_empty() {
            // Unlinking the pins drops the last references to the programs
            // and maps; on our own mount, umount would do it too.
            let _ = fs::remove_dir_all(&self.bpffs);
        }
        if let Some(mp) = &self.mounted {
            let _ = Command::new("umount").arg(mp).output();
            let _ = fs::remove_dir(mp);
        }
        let _ = fs::remove_dir_all(&self.files);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_run_lines() {
        assert_eq!(
            parse_run_output("Return value: 3, duration: 2127ns\n").unwrap(),
            (3, 2127)
        );
        assert_eq!(
            parse_run_output("Return value: 1, duration (average): 966ns\n").unwrap(),
            (1, 966)
        );
        assert!(parse_run_output("Error: failed to run program: Invalid argument").is_err());
        assert!(parse_run_output("Return value: x, duration: 1ns").is_err());
    }

    #[test]
    fn parses_dumps() {
        let plain = r#"[{"key":["0x62","0x00","0x00","0x00"],"value":["0x01","0x00","0x00","0x00"],"formatted":{"key":98,"value":1}}]"#;
        let e = parse_dump(plain).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].key, vec![0x62, 0, 0, 0]);
        assert_eq!(e[0].values, vec![vec![1, 0, 0, 0]]);

        let per_cpu = r#"[{"key":["0x00","0x00","0x00","0x00"],"values":[{"cpu":0,"value":["0x03","0xae"]},{"cpu":1,"value":["0x00","0x00"]}]}]"#;
        let e = parse_dump(per_cpu).unwrap();
        assert_eq!(e[0].values, vec![vec![3, 0xae], vec![0, 0]]);

        assert_eq!(parse_dump("[]").unwrap(), vec![]);

        // A devmap's empty slots are listed with the lookup error: skipped.
        let devmap = r#"[{"key":["0x00","0x00","0x00","0x00"],"value":{"error":"No such file or directory"}},{"key":["0x01","0x00","0x00","0x00"],"value":["0x01","0x00","0x00","0x00"]}]"#;
        let e = parse_dump(devmap).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].key, vec![1, 0, 0, 0]);
        assert_eq!(e[0].values, vec![vec![1, 0, 0, 0]]);
        assert!(parse_dump(r#"[{"key":["0xzz"],"value":[]}]"#).is_err());
        assert!(parse_dump(r#"[{"key":["0x00"]}]"#).is_err());
        assert!(parse_dump("not json").is_err());
    }

    #[test]
    fn normalises_libbpf_names() {
        assert_eq!(
            normalise_map_name("xdp_subprog", "xdp_subp_bss", "xdp_subp.bss"),
            ".bss"
        );
        assert_eq!(
            normalise_map_name("xdp_subprog", "xdp_subp_data", "xdp_subp.data"),
            ".data"
        );
        assert_eq!(
            normalise_map_name("xdp_subprog", "xdp_subp_rodata", "xdp_subp.rodata"),
            ".rodata"
        );
        assert_eq!(
            normalise_map_name("xdp_subprog", "_rodata_str1_1", ".rodata.str1.1"),
            ".rodata.str1.1"
        );
        assert_eq!(
            normalise_map_name("xdp_subprog", "sub_stats", "sub_stats"),
            "sub_stats"
        );
        // A BTF map longer than the kernel's 15 characters keeps its full name.
        assert_eq!(
            normalise_map_name("x", "a_very_long_map_name", "a_very_long_map"),
            "a_very_long_map_name"
        );
        assert_eq!(
            libbpf_obj_name(Path::new("/a/xdp_subprog.o")),
            "xdp_subprog"
        );
    }
}
