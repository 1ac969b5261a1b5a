//! Cross-checks against libbpf and the kernel through `bpftool prog loadall`:
//! libbpf's debug log tells where it appended each subprogram and what imm it
//! gave each relocated call; the kernel tells the maps libbpf created.
//! Needs root, bpftool and a bpffs; otherwise prints SKIP.

use std::path::{Path, PathBuf};
use std::process::Command;

use loader::Object;

use super::{fixture, fixture_dir, CPUS};

pub(super) struct BpfFs {
    pub(super) dir: PathBuf,
}

impl BpfFs {
    pub(super) fn mount(tag: &str) -> Result<BpfFs, String> {
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout == b"0\n")
            .unwrap_or(false);
        if !is_root {
            return Err("not root".into());
        }
        if Command::new("bpftool")
            .arg("version")
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            return Err("bpftool not found".into());
        }
        let dir = std::env::temp_dir().join(format!("loader-bpffs-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let ok = Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::fs::remove_dir(&dir);
            return Err("cannot mount a bpffs".into());
        }
        Ok(BpfFs { dir })
    }
}

impl Drop for BpfFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Runs `bpftool -d prog loadall`; returns (success, libbpf log).
pub(super) fn loadall(obj: &Path, pin_dir: &Path) -> (bool, String) {
    let out = Command::new("bpftool")
        .arg("-d")
        .args(["prog", "loadall"])
        .arg(obj)
        .arg(pin_dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(args: &[&str]) -> String {
    let out = Command::new("bpftool")
        .arg("-j")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bpftool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A number or string field of a flat JSON object printed by bpftool.
fn field(json: &str, key: &str) -> String {
    let pat = format!("\"{key}\":");
    let start = json
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + pat.len();
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end].trim_matches('"').to_string()
}

fn map_ids(json: &str) -> Vec<u32> {
    let Some(start) = json.find("\"map_ids\":[") else {
        return Vec::new();
    };
    let rest = &json[start + 11..];
    rest[..rest.find(']').unwrap()]
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

const MAP_TYPES: &[(u32, &str)] = &[
    (1, "hash"),
    (2, "array"),
    (3, "prog_array"),
    (6, "percpu_array"),
    (9, "lru_hash"),
    (12, "array_of_maps"),
    (14, "devmap"),
];

/// libbpf's log lines `prog 'P': insn #I relocated, imm M points to subprog 'S' (now at N offset)`,
/// with the entry program they belong to: the last one named by a
/// `prog 'E': added N insns from sub-prog 'S'` line (printed before the
/// recursion into S, while `relocated` lines come after it).
fn relocated_lines(
    log: &str,
    entries: &[&str],
) -> Vec<(String, String, usize, i32, String, usize)> {
    let mut out = Vec::new();
    let mut entry = String::new();
    for line in log.lines() {
        let Some(rest) = line.strip_prefix("libbpf: prog '") else {
            continue;
        };
        if let Some((prog, _)) = rest.split_once("': added ") {
            if entries.contains(&prog) {
                entry = prog.to_string();
            }
            continue;
        }
        let Some((prog, rest)) = rest.split_once("': insn #") else {
            continue;
        };
        let Some((insn, rest)) = rest.split_once(" relocated, imm ") else {
            continue;
        };
        let Some((imm, rest)) = rest.split_once(" points to subprog '") else {
            continue;
        };
        let Some((sub, rest)) = rest.split_once("' (now at ") else {
            continue;
        };
        let Some(now) = rest.strip_suffix(" offset)") else {
            continue;
        };
        if entries.contains(&prog) {
            entry = prog.to_string();
        }
        let (insn, imm, now) = (
            insn.parse().unwrap(),
            imm.parse().unwrap(),
            now.parse().unwrap(),
        );
        out.push((
            entry.clone(),
            prog.to_string(),
            insn,
            imm,
            sub.to_string(),
            now,
        ));
    }
    out
}

/// True when bpftool reports a libbpf older than v1.2.
fn libbpf_before_1_2() -> bool {
    let out = Command::new("bpftool").arg("version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(v) = text.split("libbpf v").nth(1) else {
        return false;
    };
    let mut parts = v
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) < (1, 2)
}

#[test]
fn linking_matches_libbpf_and_maps_match_the_kernel() {
    let fs = match BpfFs::mount("link") {
        Ok(fs) => fs,
        Err(reason) => {
            println!("SKIP: libbpf/kernel cross-check: {reason}");
            return;
        }
    };
    let old_libbpf = libbpf_before_1_2();
    let mut relocations_checked = 0;
    let mut maps_checked = 0;
    for base in ["subprogs", "maps", "globals"] {
        for cpu in CPUS {
            let name = format!("{base}.{cpu}.o");
            let obj = Object::parse(&fixture(&name)).unwrap();
            let pins = fs.dir.join(format!("{base}_{cpu}"));
            let (ok, log) = loadall(&fixture_dir().join(&name), &pins);
            assert!(ok, "{name}: bpftool loadall failed:\n{log}");

            // Linking: libbpf relocates each entry program in turn; a line names
            // the function whose instruction it patched.
            let entries: Vec<&str> = obj.programs.iter().map(|p| p.name.as_str()).collect();
            for (entry, func, insn, imm, sub, now) in relocated_lines(&log, &entries) {
                let p = obj
                    .program(&entry)
                    .unwrap_or_else(|| panic!("{name}: no entry program {entry:?}"));
                let f = p
                    .subprogs
                    .iter()
                    .find(|s| s.name == func)
                    .unwrap_or_else(|| panic!("{name}: {func} not in {}", p.name));
                let target = p
                    .subprogs
                    .iter()
                    .find(|s| s.name == sub)
                    .unwrap_or_else(|| panic!("{name}: {sub} not in {}", p.name));
                assert_eq!(
                    target.start, now,
                    "{name}/{}: {sub} placed where libbpf placed it",
                    p.name
                );
                assert_eq!(
                    p.insns[f.start + insn].imm,
                    imm,
                    "{name}/{}: imm of {func} insn #{insn}",
                    p.name
                );
                relocations_checked += 1;
            }

            // Maps: every map a program uses, as the kernel created it.
            for p in &obj.programs {
                let info = json(&[
                    "prog",
                    "show",
                    "pinned",
                    pins.join(&p.name).to_str().unwrap(),
                ]);
                for id in map_ids(&info) {
                    let m = json(&["map", "show", "id", &id.to_string()]);
                    let kname = field(&m, "name");
                    // libbpf prefixes .bss/.data/.rodata with the object name.
                    let spec = obj
                        .maps
                        .iter()
                        .find(|s| s.name == kname)
                        .or_else(|| {
                            obj.maps
                                .iter()
                                .find(|s| s.name.starts_with('.') && kname.ends_with(&s.name))
                        })
                        .unwrap_or_else(|| panic!("{name}: kernel map {kname} unknown"));
                    let ktype = MAP_TYPES
                        .iter()
                        .find(|(n, _)| *n == spec.map_type)
                        .map(|(_, s)| *s);
                    assert_eq!(
                        Some(field(&m, "type").as_str()),
                        ktype,
                        "{name}: {kname} type"
                    );
                    assert_eq!(
                        field(&m, "bytes_key"),
                        spec.key_size.to_string(),
                        "{name}: {kname} key"
                    );
                    assert_eq!(
                        field(&m, "bytes_value"),
                        spec.value_size.to_string(),
                        "{name}: {kname} value"
                    );
                    assert_eq!(
                        field(&m, "max_entries"),
                        spec.max_entries.to_string(),
                        "{name}: {kname} max"
                    );
                    // The kernel itself adds BPF_F_RDONLY_PROG to devmaps (dev_map_init_map).
                    let mut expected = spec.map_flags;
                    if matches!(spec.map_type, 14 | 25) {
                        expected |= 0x80;
                    }
                    // libbpf before 1.2 made every global data map mmapable; since
                    // then (and in the loader) only those with a non-static variable.
                    if old_libbpf && spec.kind != loader::MapKind::Regular {
                        expected |= loader::BPF_F_MMAPABLE;
                    }
                    assert_eq!(
                        field(&m, "flags"),
                        expected.to_string(),
                        "{name}: {kname} flags"
                    );
                    maps_checked += 1;
                }
            }
        }
    }
    println!("libbpf cross-check: {relocations_checked} relocations, {maps_checked} maps");
    assert!(
        relocations_checked >= 3 * 9,
        "subprogs alone has 9 relocated calls per object"
    );
    assert!(maps_checked >= 3 * (1 + 7 + 6));
}
