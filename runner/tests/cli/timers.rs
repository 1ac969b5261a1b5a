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

fn run_case(case: &TimerCase, engine: &str) -> Ours {
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
                    return Ours::NoTimers(refusal);
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
                .and_then(|a| a.iter().find(|p| p["name"] == step.prog))
                .and_then(|p| p["id"].as_u64())
                .unwrap_or_else(|| panic!("{}: no {} in {progs}", case.label(), step.prog));
            id = Some(found.to_string());
        }
        last = Some(doc);
    }
    let _ = std::fs::remove_file(format!("/dev/shm/{store}"));
    Ours::Doc(last.expect("a case has steps"))
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
    // The kernel's runs, concurrently with ours (most of each is the wait).
    let (kernel, ours) = std::thread::scope(|s| {
        let kernel: Vec<_> = timer_cases()
            .iter()
            .map(|c| {
                s.spawn(move || {
                    kclient::bpftool::run_steps(
                        &bpf_progs::object(c.object),
                        &c.kernel_steps(),
                        &[],
                        Duration::from_millis(c.wait_ms.into()),
                    )
                    .unwrap_or_else(|e| panic!("{}: {e}", c.label()))
                })
            })
            .collect();
        let ours: Vec<_> = timer_cases()
            .iter()
            .flat_map(|c| ["interpreter", "jit"].map(|engine| (c, engine)))
            .map(|(c, engine)| s.spawn(move || (c, engine, run_case(c, engine))))
            .collect();
        let kernel: BTreeMap<&str, KernelRun> = timer_cases()
            .iter()
            .zip(kernel)
            .map(|(c, h)| (c.name, h.join().expect("kernel run")))
            .collect();
        let ours: Vec<_> = ours.into_iter().map(|h| h.join().expect("run")).collect();
        (kernel, ours)
    });
    let mut refused = Vec::new();
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
        assert_eq!(doc["retval"], theirs.retval, "{label}");
        assert_eq!(
            doc["data_out"],
            bpf_progs::hex_encode(&theirs.data_out),
            "{label}"
        );
        for name in theirs.maps.keys() {
            assert_eq!(
                our_entries(&doc, name, &label),
                kernel_entries(theirs, name),
                "{label}: map {name}"
            );
        }
    }
    if !refused.is_empty() {
        // Only the runtime's refusal of bpf_timer_init at load gets here; any other
        // failure panicked above.
        assert_eq!(refused.len(), 2 * timer_cases().len(), "{refused:#?}");
        println!("SKIP: runtime timers not merged ({})", refused[0]);
    }
}
