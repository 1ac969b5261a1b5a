//! Queue and stack maps through bpftool (`map create`, `push`, `peek`, `pop`,
//! `enqueue`/`dequeue`) as uid 65534 under the shim, and as root against the
//! kernel: the same outputs and exit statuses, step by step.

use std::process::{Command, Output};

use crate::{run_under_shim, unprivileged_unavailable, TestStore};

/// One step's answer: exit status, stdout, and whether stderr said something.
fn answer(out: &Output) -> (bool, String, bool) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        !out.stderr.is_empty(),
    )
}

fn steps(pin: &str) -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut v = Vec::new();
    for (ty, name) in [("queue", "q"), ("stack", "s")] {
        let p = format!("{pin}_{name}");
        v.push(s(&[
            "bpftool", "map", "create", &p, "type", ty, "key", "0", "value", "4", "entries", "2",
            "name", name,
        ]));
        v.push(s(&[
            "bpftool", "map", "push", "pinned", &p, "value", "1", "0", "0", "0",
        ]));
        v.push(s(&[
            "bpftool", "map", "enqueue", "pinned", &p, "value", "2", "0", "0", "0",
        ]));
        // Full: E2BIG.
        v.push(s(&[
            "bpftool", "map", "push", "pinned", &p, "value", "3", "0", "0", "0",
        ]));
        v.push(s(&["bpftool", "-j", "map", "peek", "pinned", &p]));
        v.push(s(&["bpftool", "-j", "map", "pop", "pinned", &p]));
        v.push(s(&["bpftool", "-j", "map", "dequeue", "pinned", &p]));
        // Empty: ENOENT.
        v.push(s(&["bpftool", "-j", "map", "pop", "pinned", &p]));
        v.push(s(&["bpftool", "-j", "map", "peek", "pinned", &p]));
        v.push(s(&["rm", &p]));
    }
    v
}

#[test]
fn bpftool_queue_and_stack_are_the_kernels() {
    if let Some(why) = unprivileged_unavailable() {
        println!("SKIP: bpftool_queue_and_stack_are_the_kernels: {why}");
        return;
    }
    if let Err(why) = kclient::available() {
        kclient::skip("bpftool on queue and stack maps against the kernel", &why);
        return;
    }
    let store = TestStore::new("queue");
    let kpin = format!("/sys/fs/bpf/xdpshim_test_queue_{}", std::process::id());
    let spin = "/sys/fs/bpf/queue_test".to_string();
    for (k, s) in steps(&kpin).iter().zip(steps(&spin)) {
        let kernel = Command::new(&k[0]).args(&k[1..]).output().expect("run");
        let shim = run_under_shim(&store, &s.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(answer(&shim), answer(&kernel), "{}", s.join(" "));
    }
}
