//! What the kernel answers to the bpf_timer programs (issue 14), checked against
//! facts derived from the C sources (`src-c/xdp_timer_*.c`) and the kernel's
//! documented helper semantics: each [`bpf_progs::timers::timer_cases`] case runs in
//! the kernel with its maps pinned, waits for the timers, and its maps must say what
//! the comments below say. The runtimes are compared with the same kernel runs in
//! `runner/tests/cli/timer_progs.rs`.

use std::collections::BTreeMap;

use bpf_progs::timers::{timer_cases, TimerCase};
use kclient::bpftool::{self as kernel, KernelRun};

const EBUSY: i64 = 16;
const EINVAL: i64 = 22;
const EDEADLK: i64 = 35;
const ENOENT: i64 = 2;

/// Every timer case in the kernel, concurrently (most of the time is the wait),
/// once for both tests.
fn kernel_runs() -> &'static BTreeMap<String, KernelRun> {
    static RUNS: std::sync::OnceLock<BTreeMap<String, KernelRun>> = std::sync::OnceLock::new();
    RUNS.get_or_init(run_all)
}

fn run_all() -> BTreeMap<String, KernelRun> {
    std::thread::scope(|s| {
        let handles: Vec<_> = timer_cases()
            .iter()
            .map(|c| {
                s.spawn(move || {
                    let run = bpf_progs::timers::kernel_run(c)
                        .unwrap_or_else(|e| panic!("{}: {e}", c.label()));
                    (c.name.to_string(), run)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("kernel run"))
            .collect()
    })
}

fn entries<'a>(run: &'a KernelRun, map: &str) -> BTreeMap<Vec<u8>, &'a [u8]> {
    run.maps
        .get(map)
        .unwrap_or_else(|| panic!("no map {map}"))
        .iter()
        .map(|e| {
            assert_eq!(e.values.len(), 1, "{map} is per-CPU");
            (e.key.clone(), e.values[0].as_slice())
        })
        .collect()
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// An array of u64/s64 by index.
fn array(run: &KernelRun, map: &str) -> Vec<i64> {
    let e = entries(run, map);
    (0u32..e.len() as u32)
        .map(|i| u64_at(e[&i.to_le_bytes().to_vec()], 0) as i64)
        .collect()
}

/// `rc` with the slots a case does not write left at 0: `want` gives (slot, value).
fn rc_is(run: &KernelRun, label: &str, want: &[(usize, i64)]) {
    let mut expected = vec![0i64; 16];
    for &(slot, v) in want {
        expected[slot] = v;
    }
    assert_eq!(array(run, "rc"), expected, "{label}: rc");
}

/// `struct elem { struct bpf_timer t; u64 fired; u64 mark; }` by key: (fired, mark).
/// The kernel shows a value's bpf_timer as zeros, whatever the timer's state.
fn elems(run: &KernelRun, map: &str) -> BTreeMap<u32, (u64, u64)> {
    entries(run, map)
        .into_iter()
        .map(|(k, v)| {
            assert_eq!(v.len(), 32, "{map}");
            assert_eq!(&v[..16], &[0u8; 16], "{map}: the timer's bytes");
            let key = u32::from_le_bytes(k.as_slice().try_into().expect("u32 key"));
            (key, (u64_at(v, 16), u64_at(v, 24)))
        })
        .collect()
}

fn fired(run: &KernelRun, map: &str) -> Vec<u64> {
    elems(run, map).values().map(|(f, _)| *f).collect()
}

#[test]
fn the_kernel_answers_every_timer_case_as_the_sources_say() {
    if !kclient::require("kernel oracle (bpf_timer cases)") {
        return;
    }
    let runs = kernel_runs();
    let case = |name: &str| -> (&KernelRun, String) {
        let c: &TimerCase = timer_cases().iter().find(|c| c.name == name).expect("case");
        (&runs[name], c.label())
    };
    for run in runs.values() {
        assert_eq!(run.retval, 2, "XDP_PASS");
    }

    // Init: once 0, again -EBUSY; an unsupported clock or a flag above the clock id
    // -EINVAL; REALTIME and BOOTTIME are accepted.
    let (r, l) = case("timer_init_twice");
    rc_is(r, &l, &[(1, -EBUSY), (2, -EINVAL), (5, -EINVAL)]);
    assert_eq!(array(r, "cb"), [0, 0, 0, 0], "{l}");

    // Start before set_callback: -EINVAL; after it, the timer fires once.
    let (r, l) = case("timer_start_before_cb");
    rc_is(r, &l, &[(1, -EINVAL)]);
    assert_eq!(array(r, "cb"), [1, 0, 0, 0], "{l}");
    assert_eq!(fired(r, "atimers"), [1, 0, 0, 0], "{l}");

    // Cancel: -EINVAL before init, 0 when inactive, 1 when it was pending, 0 again.
    let (r, l) = case("timer_cancel_inactive");
    rc_is(r, &l, &[(0, -EINVAL), (5, 1)]);
    assert_eq!(array(r, "cb"), [0, 0, 0, 0], "{l}");

    // A callback cancelling its own timer: -EDEADLK.
    let (r, l) = case("timer_cancel_in_cb");
    rc_is(r, &l, &[(8, -EDEADLK)]);
    assert_eq!(array(r, "cb"), [1, 0, 0, 0], "{l}");

    // A callback re-arming itself: runs 3 times, each start 0.
    let (r, l) = case("timer_rearm_in_cb");
    rc_is(r, &l, &[]);
    assert_eq!(array(r, "cb"), [3, 3, 0, 0], "{l}");
    assert_eq!(fired(r, "atimers"), [3, 0, 0, 0], "{l}");

    // BPF_F_TIMER_ABS in the future and in the past both fire once; an unknown
    // flag is -EINVAL; BPF_F_TIMER_CPU_PIN is accepted.
    let (r, l) = case("timer_abs");
    rc_is(r, &l, &[(6, -EINVAL)]);
    assert_eq!(array(r, "cb"), [3, 0, 3, 0], "{l}");
    assert_eq!(fired(r, "atimers"), [1, 1, 1, 0], "{l}");

    // Updating an element with a pending timer (hash and array) cancels and frees
    // the timer: nothing fires, and the new value's timer is uninitialised.
    let (r, l) = case("timer_update_pending");
    rc_is(r, &l, &[(5, -EINVAL), (10, -EINVAL)]);
    assert_eq!(array(r, "cb"), [0, 0, 0, 0], "{l}");
    assert_eq!(elems(r, "htimers"), BTreeMap::from([(1, (0, 7))]), "{l}");
    assert_eq!(elems(r, "atimers")[&0], (0, 7), "{l}");

    // Deleting one: nothing fires.
    let (r, l) = case("timer_delete_pending");
    rc_is(r, &l, &[]);
    assert_eq!(array(r, "cb"), [0, 0, 0, 0], "{l}");
    assert!(elems(r, "htimers").is_empty(), "{l}");

    // LRU eviction of one: key 2 takes the single entry, key 1's timer never fires.
    let (r, l) = case("timer_lru_evict");
    rc_is(r, &l, &[]);
    assert_eq!(array(r, "cb"), [0, 0, 0, 0], "{l}");
    assert_eq!(elems(r, "ltimers"), BTreeMap::from([(2, (0, 0))]), "{l}");

    // A timer in an inner map's value fires.
    let (r, l) = case("timer_inner_map");
    rc_is(r, &l, &[]);
    assert_eq!(array(r, "cb"), [1, 0, 0, 0], "{l}");
    assert_eq!(fired(r, "inner"), [1, 0], "{l}");

    // A cancel forgets the callback: a start after it is -EINVAL until
    // set_callback is called again; then the timer fires.
    let (r, l) = case("timer_restart_after_cancel");
    rc_is(r, &l, &[(3, 1), (4, -EINVAL)]);
    assert_eq!(array(r, "cb"), [1, 0, 0, 0], "{l}");
    assert_eq!(fired(r, "atimers"), [1, 0, 0, 0], "{l}");

    // Relative timeouts of u64::MAX and 2^62 ns are accepted and stay pending; 0
    // fires at once.
    let (r, l) = case("timer_huge_timeout");
    rc_is(r, &l, &[]);
    assert_eq!(fired(r, "atimers"), [0, 0, 1, 0], "{l}");
}

#[test]
fn the_kernel_runs_the_watchdog_and_the_typed_timers_as_the_sources_say() {
    if !kclient::require("kernel oracle (bpf_timer programs)") {
        return;
    }
    let runs = kernel_runs();
    // wd_stats: timeouts, closed, arms, errors, opened. Every flow ends deleted: by
    // its FIN/RST or by its watchdog's callback.
    let wd = |name: &str| {
        let r = &runs[name];
        assert!(entries(r, "flows").is_empty(), "{name}: flows left");
        array(r, "wd_stats")
    };
    assert_eq!(wd("silent_flow_times_out"), [1, 0, 3, 0, 1]);
    assert_eq!(wd("fin_cancels"), [0, 1, 2, 0, 1]);
    assert_eq!(wd("rst_closes_one_of_two"), [2, 1, 4, 0, 3]);
    assert_eq!(wd("fin_of_unknown_flow"), [0, 0, 0, 0, 0]);

    // expired[{user, type}] = {count, context word}; op_rc: last start/stop per type.
    let expired = |name: &str| -> BTreeMap<(Vec<u8>, u32), (u64, u64)> {
        let r = &runs[name];
        assert!(entries(r, "login_timers").is_empty(), "{name}");
        assert!(entries(r, "session_timers").is_empty(), "{name}");
        entries(r, "expired")
            .into_iter()
            .map(|(k, v)| {
                let ty = u32::from_le_bytes(k[4..8].try_into().expect("type"));
                ((k[..4].to_vec(), ty), (u64_at(v, 0), u64_at(v, 8)))
            })
            .collect()
    };
    let a = vec![10, 0, 0, 1];
    // A: login started twice (2 attempts), session once (1 packet); B's login stopped
    // while pending (cancel 1) never expires.
    assert_eq!(
        expired("typed_timers_per_user"),
        BTreeMap::from([((a.clone(), 0), (1, 2)), ((a.clone(), 1), (1, 1))])
    );
    assert_eq!(array(&runs["typed_timers_per_user"], "op_rc"), [0, 1, 0, 0]);
    // A's login stopped (1), its session expires; B had no session (-ENOENT).
    assert_eq!(expired("stop_by_type"), BTreeMap::from([((a, 1), (1, 1))]));
    assert_eq!(array(&runs["stop_by_type"], "op_rc"), [0, 1, 0, -ENOENT]);
}

#[test]
fn the_kernel_loads_every_build_of_the_timer_programs() {
    if !kclient::require("kernel oracle (bpf_timer builds)") {
        return;
    }
    for p in bpf_progs::timers::TIMER_PROGRAMS {
        for cpu in bpf_progs::Cpu::ALL {
            let Some(obj) = bpf_progs::object_for(p, cpu) else {
                println!("SKIP: no {cpu:?} build of {p} (clang absent)");
                continue;
            };
            kernel::load_check(&obj).unwrap_or_else(|e| panic!("{p} {cpu:?}: {e}"));
        }
    }
}
