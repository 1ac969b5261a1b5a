//! The bpf_timer programs (issue 14) in both engines against the kernel: every
//! `bpf_progs::timers::timer_cases` case runs as a sequence of `xdp-runner run`s on
//! one store (the first from the object, the others `--id` on the stored program),
//! the last with `--wait-timers`, and every map it prints must be the kernel's after
//! the same runs and a wait with its maps pinned (`kclient::bpftool::run_steps`).
//!
//! A runtime that refuses the bpf_timer helpers at load prints `SKIP: runtime timers not
//! merged` here, and nothing else does: once the runtime takes timers, the
//! comparison runs by itself.

use std::collections::BTreeMap;
use std::time::Duration;

use bpf_progs::timers::{timer_cases, TimerCase};
use kclient::bpftool::KernelRun;
use serde_json::Value;

use super::{path_str, runner, temp_path};

/// What one engine printed after a case's last run, or that the runtime refused
/// timers at load.
enum Ours {
    Doc(Value),
    NoTimers(String),
}

/// [`run_once`] until its steps ran quickly enough for the answer to hold
/// (`TimerCase::valid_within_ms`), at most `bpf_progs::timers::ATTEMPTS` times.
fn run_case(case: &TimerCase, engine: &str) -> Ours {
    let mut spans = Vec::new();
    for _ in 0..bpf_progs::timers::ATTEMPTS {
        let (ours, span) = run_once(case, engine);
        if matches!(ours, Ours::NoTimers(_)) || case.valid(span) {
            return ours;
        }
        spans.push(span);
    }
    panic!(
        "{} ({engine}): the steps took {spans:?}, never under {} ms: the machine is too \
         loaded for the answer to hold",
        case.label(),
        case.valid_within_ms
    );
}

/// The case's steps, each an `xdp-runner run` on one store, and the time from the
/// first one's start to the last one's.
fn run_once(case: &TimerCase, engine: &str) -> (Ours, Duration) {
    let started = std::time::Instant::now();
    let mut span = Duration::ZERO;
    let store = format!(
        "xdp-runner-test-{}-timers-{}-{engine}",
        std::process::id(),
        case.name
    );
    let _ = std::fs::remove_file(format!("/dev/shm/{store}"));
    let mut id: Option<String> = None;
    let mut last = None;
    for (i, step) in case.steps.iter().enumerate() {
        let frame = temp_path(&format!("timers-{}-{engine}-{i}.bin", case.name));
        std::fs::write(&frame, step.frame.bytes()).expect("write frame");
        let mut args: Vec<String> = vec!["run".into()];
        match &id {
            None => args.extend([
                path_str(&bpf_progs::object(case.object)),
                "--prog".into(),
                step.prog.into(),
            ]),
            Some(id) => args.extend(["--id".into(), id.clone()]),
        }
        args.extend([
            "--data-in".into(),
            path_str(&frame),
            "--repeat".into(),
            step.repeat.to_string(),
            "--engine".into(),
            engine.into(),
            "--json".into(),
            "--store".into(),
            store.clone(),
        ]);
        if i + 1 == case.steps.len() {
            span = started.elapsed();
            args.extend(["--wait-timers".into(), case.wait_ms.to_string()]);
        }
        let out = runner().args(&args).output().expect("xdp-runner starts");
        let _ = std::fs::remove_file(&frame);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            let _ = std::fs::remove_file(format!("/dev/shm/{store}"));
            if i == 0 {
                if let Some(refusal) = refuses_timers(case, engine) {
                    return (Ours::NoTimers(refusal), span);
                }
            }
            panic!("{} {engine} step {i}: {args:?}: {text}", case.label());
        }
        let doc: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{} {engine}: {e}: {text}", case.label()));
        if id.is_none() && case.steps.len() > 1 {
            let list = runner()
                .args(["prog", "list", "--json", "--store", &store])
                .output()
                .expect("xdp-runner starts");
            let progs: Value = serde_json::from_slice(&list.stdout).unwrap_or_else(|e| {
                panic!("{}: prog list: {e}: {list:?}", case.label());
            });
            let found = progs
                .as_array()
                // The store keeps the kernel's 15-character program names.
                .and_then(|a| {
                    a.iter()
                        .find(|p| p["name"] == step.prog[..step.prog.len().min(15)])
                })
                .and_then(|p| p["id"].as_u64())
                .unwrap_or_else(|| panic!("{}: no {} in {progs}", case.label(), step.prog));
            id = Some(found.to_string());
        }
        last = Some(doc);
    }
    let _ = std::fs::remove_file(format!("/dev/shm/{store}"));
    (Ours::Doc(last.expect("a case has steps")), span)
}

/// The runtime's refusal of a bpf_timer helper (the first it meets: `bpf_timer_init`
/// or `bpf_timer_cancel`) when it loads the case's first program
/// (a plain run, without the store or `--wait-timers`), else `None`.
fn refuses_timers(case: &TimerCase, engine: &str) -> Option<String> {
    let step = &case.steps[0];
    let frame = temp_path(&format!("timers-probe-{}-{engine}.bin", case.name));
    std::fs::write(&frame, step.frame.bytes()).expect("write frame");
    let out = runner()
        .args(["run", &path_str(&bpf_progs::object(case.object))])
        .args(["--prog", step.prog, "--engine", engine, "--data-in"])
        .arg(&frame)
        .output()
        .expect("xdp-runner starts");
    let _ = std::fs::remove_file(&frame);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (!out.status.success() && stderr.contains("(bpf_timer_") && stderr.contains("not supported"))
        .then_some(stderr)
}

/// (key hex, value hexes) sorted, for one map of the kernel's run.
fn kernel_entries(run: &KernelRun, name: &str) -> Vec<(String, Vec<String>)> {
    let mut v: Vec<_> = run.maps[name]
        .iter()
        .map(|e| {
            (
                bpf_progs::hex_encode(&e.key),
                e.values.iter().map(|v| bpf_progs::hex_encode(v)).collect(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The same for one map of `xdp-runner --json`; maps of maps name their inner maps.
fn our_entries(doc: &Value, name: &str, label: &str) -> Vec<(String, Vec<String>)> {
    let mut v: Vec<_> = doc["maps"][name]
        .as_array()
        .unwrap_or_else(|| panic!("{label}: map {name} missing in {doc}"))
        .iter()
        .map(|e| {
            let values = match (e.get("values"), e.get("map")) {
                (Some(vs), _) => vs
                    .as_array()
                    .expect("values")
                    .iter()
                    .map(|v| v.as_str().expect("hex").to_string())
                    .collect(),
                (None, Some(m)) => vec![bpf_progs::hex_encode(
                    m.as_str().expect("inner map name").as_bytes(),
                )],
                (None, None) => vec![e["value"].as_str().expect("value").to_string()],
            };
            (e["key"].as_str().expect("key").to_string(), values)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn timer_programs_match_the_kernel_in_both_engines() {
    if !kclient::require("kernel oracle (bpf_timer programs)") {
        return;
    }
    // The kernel's runs concurrently (most of each is the wait), then ours: the less
    // the machine is loaded, the less often a sequence is too slow and run again.
    let kernel: BTreeMap<&str, KernelRun> = std::thread::scope(|s| {
        let handles: Vec<_> = timer_cases()
            .iter()
            .map(|c| {
                s.spawn(move || {
                    bpf_progs::timers::kernel_run(c)
                        .unwrap_or_else(|e| panic!("{}: {e}", c.label()))
                })
            })
            .collect();
        timer_cases()
            .iter()
            .zip(handles)
            .map(|(c, h)| (c.name, h.join().expect("kernel run")))
            .collect()
    });
    let ours: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = timer_cases()
            .iter()
            .flat_map(|c| ["interpreter", "jit"].map(|engine| (c, engine)))
            .map(|(c, engine)| s.spawn(move || (c, engine, run_case(c, engine))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("run"))
            .collect()
    });
    let mut refused = Vec::new();
    let mut differ = Vec::new();
    for (case, engine, result) in ours {
        let label = format!("{} ({engine})", case.label());
        let doc = match result {
            Ours::Doc(doc) => doc,
            Ours::NoTimers(text) => {
                refused.push(format!("{label}: {}", text.trim()));
                continue;
            }
        };
        let theirs = &kernel[case.name];
        if doc["retval"] != theirs.retval {
            differ.push(format!(
                "{label}: retval {} (kernel {})",
                doc["retval"], theirs.retval
            ));
        }
        if doc["data_out"] != bpf_progs::hex_encode(&theirs.data_out) {
            differ.push(format!("{label}: data_out"));
        }
        for name in theirs.maps.keys() {
            let (got, want) = (
                our_entries(&doc, name, &label),
                kernel_entries(theirs, name),
            );
            if got != want {
                differ.push(format!(
                    "{label}: map {name}\n  ours:   {got:?}\n  kernel: {want:?}"
                ));
            }
        }
    }
    // Every difference at once: one case's answer rarely explains another's.
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    if !refused.is_empty() {
        // Only the runtime's refusal of the timer helpers at load gets here; any
        // other failure panicked above.
        assert_eq!(refused.len(), 2 * timer_cases().len(), "{refused:#?}");
        println!("SKIP: runtime timers not merged ({})", refused[0]);
    }
}
