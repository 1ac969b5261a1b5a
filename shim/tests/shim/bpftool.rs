//! The system `bpftool` run twice with the same commands: as root against
//! the kernel (on a real bpffs), and as uid 65534 with no capabilities under
//! the shim (on the shim's virtual bpffs). Both transcripts must agree, after
//! normalising only what legitimately differs between the kernel and us
//! (see [`Side::normalise_show_json`] and [`Side::normalise_show_text`]:
//! ids, tags, times, uid, the kernel's JIT and memory accounting).
//!
//! Four objects are exercised (the tail-call and map-of-maps ones are
//! described where their steps are); the first two:
//! - `xdp_counter.o`: a plain `__u32 -> __u32` hash, updated by the program;
//! - `xdp_fw.o`: an LPM trie keyed by a struct (`{prefixlen, addr[4]}`, so
//!   bpftool's BTF formatting of keys is exercised, as are longest-prefix
//!   lookups) and a per-CPU array with a struct value (`{packets, bytes}`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::{run_under_shim, shim_so, unprivileged_unavailable, TestStore};

/// Every bpftool invocation is bounded, so a hanging shim fails the test
/// instead of hanging it.
const TIMEOUT_SECS: &str = "60";

/// A bpffs's filesystem type as /proc/self/mounts spells it.
const BPFFS_TYPE: &str = "bpf";

/// Whether a step is expected to succeed (used directly when there is no
/// kernel to compare with; with a kernel, the exit statuses are compared).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Ok,
    Fail,
}

/// One bpftool invocation of the sequence.
#[derive(Debug, Clone)]
struct Step {
    /// bpftool's arguments (without `bpftool`), with placeholders:
    /// `{X}` the per-side pin prefix, `{O}` the objects' directory, `{P}`
    /// the packets' directory, `{T}` the per-side scratch directory.
    args: Vec<String>,
    expect: Expect,
    /// A `data_out` file name (in `{T}`) whose bytes are compared.
    data_out: Option<&'static str>,
    /// The output is a dump of a hash map with several entries: the kernel
    /// iterates a hash table in bucket order, and its bucket hash is seeded
    /// randomly per map (`htab->hashrnd`), so even two kernel runs disagree
    /// on the order. Entries are sorted by key before comparing.
    unordered: bool,
    /// `prog show` (the whole listing, `-j`): the entry whose id is that of
    /// the program pinned at this path is selected before comparing, since
    /// the kernel lists every program of the machine and the shim only those
    /// of its store.
    listing_of: Option<String>,
}

fn words(cmd: &str) -> Vec<String> {
    cmd.split_whitespace().map(str::to_string).collect()
}

fn step(expect: Expect, cmd: &str) -> Step {
    Step {
        args: words(cmd),
        expect,
        data_out: None,
        unordered: false,
        listing_of: None,
    }
}

/// `cmd` twice: plain, then with `-j`.
fn both(expect: Expect, cmd: &str) -> [Step; 2] {
    [step(expect, cmd), step(expect, &format!("-j {cmd}"))]
}

fn prog_run(pinned: &str, packet: &str, out: &'static str, repeat: u32, json: bool) -> Step {
    let j = if json { "-j " } else { "" };
    let mut s = step(
        Expect::Ok,
        &format!("{j}prog run pinned {pinned} data_in {{P}}/{packet} data_out {{T}}/{out} repeat {repeat}"),
    );
    s.data_out = Some(out);
    s
}

fn listing(pinned: &str) -> Step {
    let mut s = step(Expect::Ok, "-j prog show");
    s.listing_of = Some(pinned.to_string());
    s
}

/// The sequence run on both sides.
fn sequence() -> Vec<Step> {
    use Expect::{Fail, Ok};
    let mut v = Vec::new();

    // xdp_counter.o: counter_map is a hash __u32 -> __u32; the program
    // increments the entry of the frame's length (74 for udp.bin).
    let c = "{X}_counter";
    let m = format!("{c}/maps/counter_map");
    v.push(step(
        Ok,
        &format!("prog loadall {{O}}/xdp_counter.o {c} pinmaps {c}/maps"),
    ));
    v.extend(both(Ok, &format!("map show pinned {m}")));
    v.push(step(
        Ok,
        &format!("map update pinned {m} key 54 0 0 0 value 7 0 0 0"),
    ));
    v.extend(both(Ok, &format!("map lookup pinned {m} key 54 0 0 0")));
    v.extend(both(Ok, &format!("map dump pinned {m}")));
    v.extend(both(Ok, &format!("map getnext pinned {m}")));
    // EEXIST.
    v.extend(both(
        Fail,
        &format!("map update pinned {m} key 54 0 0 0 value 1 0 0 0 noexist"),
    ));
    // ENOENT.
    v.extend(both(
        Fail,
        &format!("map update pinned {m} key 99 0 0 0 value 1 0 0 0 exist"),
    ));
    v.push(step(
        Ok,
        &format!("map update pinned {m} key 74 0 0 0 value 100 0 0 0 any"),
    ));
    for mut s in both(Ok, &format!("map dump pinned {m}")) {
        s.unordered = true;
        v.push(s);
    }
    v.push(step(Ok, &format!("map delete pinned {m} key 54 0 0 0")));
    v.extend(both(Fail, &format!("map lookup pinned {m} key 54 0 0 0")));
    v.extend(both(Fail, &format!("map delete pinned {m} key 54 0 0 0")));
    v.push(prog_run(
        &format!("{c}/xdp_counter"),
        "udp.bin",
        "counter.out",
        3,
        false,
    ));
    v.push(prog_run(
        &format!("{c}/xdp_counter"),
        "udp.bin",
        "counter_j.out",
        3,
        true,
    ));
    v.push(prog_run(
        &format!("{c}/xdp_counter"),
        "pkt_v4.bin",
        "counter_v4.out",
        2,
        true,
    ));
    for mut s in both(Ok, &format!("map dump pinned {m}")) {
        s.unordered = true;
        v.push(s);
    }
    v.push(step(Ok, &format!("map delete pinned {m} key 54 0 0 0")));
    v.extend(both(Ok, &format!("map dump pinned {m}")));
    v.extend(both(Ok, &format!("map lookup pinned {m} key 74 0 0 0")));
    // The only key has no successor: ENOENT.
    v.extend(both(Fail, &format!("map getnext pinned {m} key 74 0 0 0")));
    v.extend(both(Ok, &format!("prog show pinned {c}/xdp_counter")));
    v.extend(both(Ok, &format!("map show pinned {m}")));
    v.push(listing(&format!("{c}/xdp_counter")));

    // xdp_fw.o: blocklist_v4 is an LPM trie {__u32 prefixlen; __u8 addr[4]}
    // -> __u32 rule; rule_hits a per-CPU array of {__u64 packets, bytes}.
    let f = "{X}_fw";
    let lpm = format!("{f}/maps/blocklist_v4");
    let hits = format!("{f}/maps/rule_hits");
    v.push(step(
        Ok,
        &format!("prog loadall {{O}}/xdp_fw.o {f} pinmaps {f}/maps"),
    ));
    v.extend(both(Ok, &format!("map show pinned {lpm}")));
    v.extend(both(Ok, &format!("map show pinned {hits}")));
    v.push(step(
        Ok,
        &format!("-j map show pinned {f}/maps/blocklist_v6"),
    ));
    v.push(step(
        Ok,
        &format!("map update pinned {lpm} key 32 0 0 0 10 0 0 1 value 3 0 0 0"),
    ));
    v.push(step(
        Ok,
        &format!("map update pinned {lpm} key 24 0 0 0 10 0 0 0 value 5 0 0 0"),
    ));
    // Exact match, then the longest prefix (the /24) for 10.0.0.9.
    v.extend(both(
        Ok,
        &format!("map lookup pinned {lpm} key 32 0 0 0 10 0 0 1"),
    ));
    v.extend(both(
        Ok,
        &format!("map lookup pinned {lpm} key 32 0 0 0 10 0 0 9"),
    ));
    v.extend(both(
        Fail,
        &format!("map lookup pinned {lpm} key 32 0 0 0 10 0 1 9"),
    ));
    // The trie's iteration order is the kernel's (no random seed): strict.
    v.extend(both(Ok, &format!("map dump pinned {lpm}")));
    v.push(step(
        Ok,
        &format!("map delete pinned {lpm} key 24 0 0 0 10 0 0 0"),
    ));
    v.extend(both(
        Fail,
        &format!("map lookup pinned {lpm} key 32 0 0 0 10 0 0 9"),
    ));
    // A per-CPU value written by bpftool goes to every CPU.
    v.push(step(
        Ok,
        &format!("map update pinned {hits} key 1 0 0 0 value 5 0 0 0 0 0 0 0 6 0 0 0 0 0 0 0"),
    ));
    v.extend(both(Ok, &format!("map lookup pinned {hits} key 1 0 0 0")));
    // Index 16 is out of range (max_entries 16): E2BIG.
    v.extend(both(
        Fail,
        &format!("map update pinned {hits} key 16 0 0 0 value 1 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0"),
    ));
    // Arrays cannot be deleted from: EINVAL.
    v.extend(both(Fail, &format!("map delete pinned {hits} key 1 0 0 0")));
    // udp.bin comes from 10.0.0.1: rule 3, XDP_DROP; ipv6.bin: no rule, XDP_PASS.
    v.push(prog_run(
        &format!("{f}/xdp_fw"),
        "udp.bin",
        "fw_drop.out",
        4,
        false,
    ));
    v.push(prog_run(
        &format!("{f}/xdp_fw"),
        "udp.bin",
        "fw_drop_j.out",
        1,
        true,
    ));
    v.push(prog_run(
        &format!("{f}/xdp_fw"),
        "ipv6.bin",
        "fw_pass.out",
        2,
        true,
    ));
    v.extend(both(Ok, &format!("map dump pinned {hits}")));
    v.extend(both(Ok, &format!("map dump pinned {lpm}")));
    v.extend(both(Ok, &format!("prog show pinned {f}/xdp_fw")));
    v.push(listing(&format!("{f}/xdp_fw")));

    // xdp_tailcall.o: tc_entry tail-calls through jmp_table by protocol
    // (0 IPv4, 1 IPv6, 2 UDP, 3 TCP); slots take programs by pin, and `hits`
    // counts which program ran.
    let t = "{X}_tailcall";
    let jt = format!("{t}/maps/jmp_table");
    v.push(step(
        Ok,
        &format!("prog loadall {{O}}/xdp_tailcall.o {t} pinmaps {t}/maps"),
    ));
    for (slot, prog) in ["tc_ipv4", "tc_ipv6", "tc_udp", "tc_tcp"]
        .iter()
        .enumerate()
    {
        v.push(step(
            Ok,
            &format!("map update pinned {jt} key {slot} 0 0 0 value pinned {t}/{prog}"),
        ));
    }
    for (pkt, out) in [
        ("udp.bin", "tc_udp.out"),
        ("tcp_syn.bin", "tc_tcp.out"),
        ("ipv6.bin", "tc_v6.out"),
    ] {
        v.push(prog_run(&format!("{t}/tc_entry"), pkt, out, 2, true));
    }
    v.extend(both(Ok, &format!("map dump pinned {t}/maps/hits")));
    // An emptied slot: the tail call fails and the caller goes on.
    v.push(step(Ok, &format!("map delete pinned {jt} key 2 0 0 0")));
    v.push(prog_run(
        &format!("{t}/tc_entry"),
        "udp.bin",
        "tc_empty.out",
        1,
        true,
    ));
    v.extend(both(Ok, &format!("map dump pinned {t}/maps/hits")));

    // xdp_mim.o: libbpf fills an array of maps, a hash of maps and a
    // prog_array from `.values` initialisers (map descriptors in outer-map
    // updates, an inner map template at creation); the program picks the inner
    // maps by protocol (IPv6: an empty slot).
    let m = "{X}_mim";
    v.push(step(
        Ok,
        &format!("prog loadall {{O}}/xdp_mim.o {m} pinmaps {m}/maps"),
    ));
    for (pkt, out) in [
        ("tcp_syn.bin", "mim_tcp.out"),
        ("udp.bin", "mim_udp.out"),
        ("ipv6.bin", "mim_v6.out"),
    ] {
        v.push(prog_run(&format!("{m}/xdp_mim"), pkt, out, 2, true));
    }
    v.push(prog_run(
        &format!("{m}/xdp_mim_jump"),
        "tcp_syn.bin",
        "mim_jump.out",
        1,
        true,
    ));
    for inner in ["arr_tcp", "arr_udp", "flows_tcp", "flows_udp"] {
        v.extend(both(Ok, &format!("map dump pinned {m}/maps/{inner}")));
    }
    v
}

/// What one step produced, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    status: Option<i32>,
    stdout: String,
    stderr: String,
    data_out: Option<Vec<u8>>,
}

/// One side of the comparison: the kernel (root, real bpffs) or the shim.
struct Side<'a> {
    label: &'static str,
    /// `None`: the kernel.
    store: Option<&'a TestStore>,
    /// The pin prefix `{X}`.
    prefix: String,
    /// Scratch directory `{T}` (data_out files).
    tmp: PathBuf,
}

impl Side<'_> {
    fn expand(&self, arg: &str) -> String {
        let progs = bpf_progs::root();
        arg.replace("{X}", &self.prefix)
            .replace("{O}", &progs.join("obj").to_string_lossy())
            .replace("{P}", &progs.join("packets").to_string_lossy())
            .replace("{T}", &self.tmp.to_string_lossy())
    }

    /// Runs bpftool with (expanded) `args`, on CPU 0 so per-CPU values land
    /// in slot 0 on both sides.
    fn bpftool(&self, args: &[String]) -> Output {
        let mut argv: Vec<String> = ["timeout", TIMEOUT_SECS, "taskset", "-c", "0", "bpftool"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        argv.extend(args.iter().map(|a| self.expand(a)));
        match self.store {
            Some(store) => {
                let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
                run_under_shim(store, &refs)
            }
            None => Command::new(&argv[0])
                .args(&argv[1..])
                .output()
                .expect("run bpftool"),
        }
    }

    /// The name of map `id` on this side, for `map_ids`.
    fn map_name(&self, id: u64) -> String {
        let out = self.bpftool(&words(&format!("-j map show id {id}")));
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| {
                format!(
                    "<map id {id}: {}>",
                    String::from_utf8_lossy(&out.stderr).trim()
                )
            })
    }

    /// The id of the program pinned at `pinned` (a template).
    fn prog_id(&self, pinned: &str) -> Result<u64, String> {
        let out = self.bpftool(&[
            "-j".into(),
            "prog".into(),
            "show".into(),
            "pinned".into(),
            pinned.into(),
        ]);
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_u64))
            .ok_or_else(|| {
                format!(
                    "prog show pinned {pinned}: status {:?}, stdout {:?}, stderr {:?}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )
            })
    }

    fn run(&self, s: &Step) -> Outcome {
        let out = self.bpftool(&s.args);
        let status = out.status.code();
        let stdout = String::from_utf8_lossy(&out.stdout).replace(&self.prefix, "{X}");
        let stderr = String::from_utf8_lossy(&out.stderr).replace(&self.prefix, "{X}");
        let data_out = s.data_out.and_then(|f| fs::read(self.tmp.join(f)).ok());
        let json = s.args.first().map(String::as_str) == Some("-j");
        let verb: Vec<&str> = s
            .args
            .iter()
            .map(String::as_str)
            .filter(|a| *a != "-j")
            .take(2)
            .collect();
        let stdout = if let Some(pinned) = &s.listing_of {
            self.select_listing(pinned, &stdout)
        } else {
            match (verb.as_slice(), json) {
                (["prog" | "map", "show"], true) => match serde_json::from_str::<Value>(&stdout) {
                    Ok(mut v) => {
                        self.normalise_show_json(&mut v);
                        v.to_string()
                    }
                    Err(_) => stdout,
                },
                (["prog" | "map", "show"], false) => self.normalise_show_text(&stdout),
                (["prog", "run"], true) => match serde_json::from_str::<Value>(&stdout) {
                    Ok(mut v) => {
                        normalise_run_json(&mut v);
                        v.to_string()
                    }
                    Err(_) => stdout,
                },
                (["prog", "run"], false) => normalise_run_text(&stdout),
                (["map", "dump"], _) if s.unordered => sort_dump(&stdout, json),
                _ => stdout,
            }
        };
        Outcome {
            status,
            stdout,
            stderr,
            data_out,
        }
    }

    /// From the whole `prog show -j` listing, the normalised entry of the
    /// program pinned at `pinned`.
    fn select_listing(&self, pinned: &str, stdout: &str) -> String {
        let id = match self.prog_id(pinned) {
            Ok(id) => id,
            Err(e) => return format!("<no id: {e}>"),
        };
        let list = match serde_json::from_str::<Value>(stdout) {
            Ok(Value::Array(list)) => list,
            _ => return format!("<listing is not a JSON array: {stdout}>"),
        };
        match list
            .into_iter()
            .find(|p| p.get("id").and_then(Value::as_u64) == Some(id))
        {
            Some(mut p) => {
                self.normalise_show_json(&mut p);
                p.to_string()
            }
            None => format!("<no program with id {id} in the listing: {stdout}>"),
        }
    }

    /// `prog show -j` / `map show -j` objects. Only the top-level fields
    /// bpftool fills from bpf_prog_info / bpf_map_info are touched (a BTF
    /// value may well have a field named `id`).
    fn normalise_show_json(&self, v: &mut Value) {
        let Some(obj) = v.as_object_mut() else {
            return;
        };
        // Ids come from the kernel's idr or the store's counter.
        for key in ["id", "btf_id"] {
            if obj.contains_key(key) {
                obj.insert(key.into(), Value::from("<id>"));
            }
        }
        // The tag is a hash of the instructions whose function depends on
        // the kernel version: the first 8 bytes of SHA-1 before, of SHA-256
        // since 6.18 (both over the instructions with the map ld_imm64
        // immediates zeroed). The runtime computes the 6.18 one: compared
        // from 6.18 on, ignored before.
        if !kernel_tags_are_sha256() && obj.contains_key("tag") {
            obj.insert("tag".into(), Value::from("<tag>"));
        }
        // A wall-clock time.
        if obj.contains_key("loaded_at") {
            obj.insert("loaded_at".into(), Value::from("<time>"));
        }
        // The loader's uid: root for the kernel side, 65534 under the shim.
        if obj.contains_key("uid") {
            obj.insert("uid".into(), Value::from("<uid>"));
        }
        // "jited"/"bytes_jited": the kernel JIT's output and its size are
        // not ours (bpftool omits bytes_jited when nothing was jited).
        obj.remove("jited");
        obj.remove("bytes_jited");
        // The kernel's memory accounting (pages, hash buckets, ...).
        if obj.contains_key("bytes_memlock") {
            obj.insert("bytes_memlock".into(), Value::from("<memlock>"));
        }
        // The size after the kernel verifier's rewrites (it inlines map
        // lookups, patches helper calls), so it is the kernel's, not the
        // object's.
        if obj.contains_key("bytes_xlated") {
            obj.insert("bytes_xlated".into(), Value::from("<xlated>"));
        }
        // Run-time statistics (kernel.bpf_stats_enabled), verifier
        // statistics, and the processes holding fds (found by a kernel BPF
        // iterator bpftool loads itself): present or not depending on the
        // kernel's configuration.
        for key in [
            "run_time_ns",
            "run_cnt",
            "recursion_misses",
            "verified_insns",
            "pids",
        ] {
            obj.remove(key);
        }
        // Map ids become map names; sorted, since the order is that in which
        // the kernel verifier met the maps.
        if let Some(Value::Array(ids)) = obj.get("map_ids") {
            let mut names: Vec<String> = ids
                .iter()
                .map(|id| match id.as_u64() {
                    Some(id) => self.map_name(id),
                    None => format!("<bad id {id}>"),
                })
                .collect();
            names.sort();
            obj.insert("map_ids".into(), Value::from(names));
        }
    }

    /// `prog show` / `map show` in plain text: lines of fields separated by
    /// two spaces, each `key value`, e.g.
    /// `\txlated 1448B  jited 805B  memlock 4096B  map_ids 7,5,6`.
    /// The same fields as in [`Self::normalise_show_json`], for the same reasons.
    fn normalise_show_text(&self, text: &str) -> String {
        let mut out = String::new();
        for (i, line) in text.lines().enumerate() {
            let (indent, body) = match line.strip_prefix('\t') {
                Some(rest) => ("\t", rest),
                None => ("", line),
            };
            // Process listing (kernel-configuration dependent, see above).
            if body.starts_with("pids ") {
                continue;
            }
            let mut fields = Vec::new();
            for (j, field) in body.split("  ").enumerate() {
                let (key, value) = field.split_once(' ').unwrap_or((field, ""));
                let new = match key {
                    // "1247388: xdp": the id.
                    k if i == 0
                        && j == 0
                        && k.ends_with(':')
                        && k[..k.len() - 1].chars().all(|c| c.is_ascii_digit()) =>
                    {
                        format!("<id>: {value}")
                    }
                    "tag" if kernel_tags_are_sha256() => field.to_string(),
                    "tag" | "loaded_at" | "uid" | "memlock" | "xlated" | "btf_id" => {
                        format!("{key} <{key}>")
                    }
                    "jited" | "run_time_ns" | "run_cnt" | "recursion_misses" | "verified_insns" => {
                        continue
                    }
                    // What bpftool prints instead of `jited NB` when the
                    // program has no native code (see "jited" above).
                    "not" if value == "jited" => continue,
                    "map_ids" => {
                        let mut names: Vec<String> = value
                            .split(',')
                            .map(|id| match id.parse() {
                                Ok(id) => self.map_name(id),
                                Err(_) => format!("<bad id {id}>"),
                            })
                            .collect();
                        names.sort();
                        format!("map_ids {}", names.join(","))
                    }
                    _ => field.to_string(),
                };
                fields.push(new);
            }
            out.push_str(indent);
            out.push_str(&fields.join("  "));
            out.push('\n');
        }
        out
    }
}

/// `prog run -j`: `{"retval":N,"duration":NS}`; the duration is a timing.
fn normalise_run_json(v: &mut Value) {
    if let Some(obj) = v.as_object_mut() {
        if obj.contains_key("duration") {
            obj.insert("duration".into(), Value::from("<ns>"));
        }
    }
}

/// `prog run`: `Return value: N, duration (average): NSns`; the duration is
/// a timing.
fn normalise_run_text(text: &str) -> String {
    const MARK: &str = "duration (average): ";
    text.lines()
        .map(|line| match line.find(MARK) {
            Some(at) => {
                let rest = &line[at + MARK.len()..];
                let digits = rest.chars().take_while(char::is_ascii_digit).count();
                format!("{}{MARK}<ns>{}\n", &line[..at], &rest[digits..])
            }
            None => format!("{line}\n"),
        })
        .collect()
}

/// A hash map's dump with its entries sorted by key (see [`Step::unordered`]).
/// With BTF, the plain-text dump is pretty-printed JSON as well; its layout
/// is checked by the single-entry dumps, which are compared verbatim.
fn sort_dump(stdout: &str, json: bool) -> String {
    let Ok(Value::Array(mut entries)) = serde_json::from_str::<Value>(stdout) else {
        return stdout.to_string();
    };
    entries.sort_by_key(|e| e.get("key").map(Value::to_string).unwrap_or_default());
    let v = Value::Array(entries);
    if json {
        v.to_string()
    } else {
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }
}

/// Scratch directories and kernel pins, removed on drop.
struct Scratch {
    dir: PathBuf,
    /// Kernel pin directories to remove.
    kernel_pins: Vec<PathBuf>,
    /// A bpffs we mounted ourselves.
    mounted: Option<PathBuf>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for p in &self.kernel_pins {
            let _ = fs::remove_dir_all(p);
        }
        if let Some(m) = &self.mounted {
            let _ = Command::new("umount").arg(m).status();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn is_bpffs(path: &str) -> bool {
    fs::read_to_string("/proc/self/mounts")
        .map(|m| {
            m.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 2 && f[1] == path && f[2] == BPFFS_TYPE
            })
        })
        .unwrap_or(false)
}

fn make_dir(path: &Path, mode: u32) {
    fs::create_dir_all(path).expect("create scratch dir");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod scratch dir");
}

fn show(o: &Outcome) -> String {
    let data = match &o.data_out {
        Some(d) => format!("{} bytes: {}", d.len(), bpf_progs::hex_encode(d)),
        None => "(none)".into(),
    };
    format!(
        "  exit status: {:?}\n  stdout:\n{}\n  stderr:\n{}\n  data_out: {data}",
        o.status,
        indent(&o.stdout),
        indent(&o.stderr)
    )
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    | {l}\n")).collect()
}

fn command_line(s: &Step) -> String {
    format!("bpftool {}", s.args.join(" "))
}

/// Checks that each step's exit status is what the sequence expects.
fn check_expectations(label: &str, steps: &[Step], outs: &[Outcome]) -> Vec<String> {
    steps
        .iter()
        .zip(outs)
        .filter(|(s, o)| (o.status == Some(0)) != (s.expect == Expect::Ok))
        .map(|(s, o)| {
            format!(
                "{label}: `{}` expected {:?}, got:\n{}",
                command_line(s),
                s.expect,
                show(o)
            )
        })
        .collect()
}

#[test]
fn bpftool_under_the_shim_prints_what_the_kernel_prints() {
    if Command::new("bpftool").arg("version").output().is_err() {
        println!("SKIP: bpftool not found");
        return;
    }
    if let Some(why) = unprivileged_unavailable() {
        println!("SKIP: {why}");
        return;
    }
    let so = shim_so();
    assert!(so.is_file(), "{} is missing", so.display());
    let kernel = kclient::available();

    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let unique = format!("xdpshim_bpftool_{}_{nanos}", std::process::id());
    let dir = std::env::temp_dir().join(&unique);
    make_dir(&dir, 0o755);
    let mut scratch = Scratch {
        dir: dir.clone(),
        kernel_pins: Vec::new(),
        mounted: None,
    };
    let kernel_tmp = dir.join("kernel");
    let shim_tmp = dir.join("shim");
    make_dir(&kernel_tmp, 0o755);
    // bpftool under the shim runs as uid 65534 and writes data_out here.
    make_dir(&shim_tmp, 0o777);

    let steps = sequence();

    // Kernel side.
    let kernel_outs = match &kernel {
        Err(why) => {
            kclient::skip(
                "kernel side",
                &format!("{why} (running the shim side alone)"),
            );
            None
        }
        Ok(()) => {
            let root = if is_bpffs("/sys/fs/bpf") {
                PathBuf::from("/sys/fs/bpf")
            } else {
                let m = dir.join("bpffs");
                make_dir(&m, 0o755);
                let ok = Command::new("mount")
                    .args(["-t", "bpf", "bpf"])
                    .arg(&m)
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                assert!(ok, "mount -t bpf bpf {} failed", m.display());
                scratch.mounted = Some(m.clone());
                m
            };
            let prefix = root.join(format!("{unique}_k"));
            let prefix = prefix.to_string_lossy().into_owned();
            for suffix in ["_counter", "_fw", "_tailcall", "_mim"] {
                scratch
                    .kernel_pins
                    .push(PathBuf::from(format!("{prefix}{suffix}")));
            }
            let side = Side {
                label: "kernel",
                store: None,
                prefix,
                tmp: kernel_tmp,
            };
            Some(steps.iter().map(|s| side.run(s)).collect::<Vec<_>>())
        }
    };
    if let Some(outs) = &kernel_outs {
        // The sequence itself is right: the kernel does what we expect.
        let wrong = check_expectations("kernel", &steps, outs);
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    // Shim side.
    let store = TestStore::new("bpftool");
    let side = Side {
        label: "shim",
        store: Some(&store),
        prefix: format!("/sys/fs/bpf/{unique}"),
        tmp: shim_tmp,
    };
    let shim_outs: Vec<Outcome> = steps.iter().map(|s| side.run(s)).collect();

    let Some(kernel_outs) = kernel_outs else {
        let wrong = check_expectations(side.label, &steps, &shim_outs);
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        check_shim_store(&side);
        return;
    };

    // XDPSHIM_BPFTOOL_TRANSCRIPT=1: both sides of every command.
    if std::env::var_os("XDPSHIM_BPFTOOL_TRANSCRIPT").is_some() {
        for (i, s) in steps.iter().enumerate() {
            println!(
                "=== `{}`\n--- kernel:\n{}\n--- shim:\n{}",
                command_line(s),
                show(&kernel_outs[i]),
                show(&shim_outs[i])
            );
        }
    }

    let differing: Vec<usize> = (0..steps.len())
        .filter(|&i| kernel_outs[i] != shim_outs[i])
        .collect();
    if let Some(&first) = differing.first() {
        let mut report = format!(
            "{} of {} bpftool commands differ between the kernel and the shim.\n\
             First: `{}`\n--- kernel:\n{}\n--- shim:\n{}\n",
            differing.len(),
            steps.len(),
            command_line(&steps[first]),
            show(&kernel_outs[first]),
            show(&shim_outs[first]),
        );
        report.push_str("All differing commands:\n");
        for &i in &differing {
            report.push_str(&format!("  {}\n", command_line(&steps[i])));
        }
        drop(scratch);
        panic!("{report}");
    }
    check_shim_store(&side);
}

/// What only the shim side can show: its bpffs is virtual, and its store is
/// private to this test.
fn check_shim_store(side: &Side<'_>) {
    // The shim's bpffs is virtual: nothing reached the real /sys/fs/bpf.
    for suffix in ["_counter", "_fw", "_tailcall", "_mim"] {
        let real = PathBuf::from(format!("{}{suffix}", side.prefix));
        assert!(
            !real.exists(),
            "{} exists on the real filesystem after the shim run",
            real.display()
        );
    }
    // The store is private to this test: its listing holds our programs and
    // nothing else.
    let out = side.bpftool(&words("-j prog show"));
    let mut names: Vec<String> = serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "tc_entry",
            "tc_ipv4",
            "tc_ipv6",
            "tc_tcp",
            "tc_udp",
            "xdp_counter",
            "xdp_fw",
            "xdp_mim",
            "xdp_mim_jump",
        ],
        "`bpftool -j prog show` under the shim: status {:?}, stdout {:?}, stderr {:?}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether the running kernel's program tags are SHA-256 based (6.18 on), as
/// the runtime's are.
fn kernel_tags_are_sha256() -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let mut it = release.trim().split(['.', '-']);
    let major: u32 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let minor: u32 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    (major, minor) >= (6, 18)
}
