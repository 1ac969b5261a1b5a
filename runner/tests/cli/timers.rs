//! `bpf_timer` through the binary: `run --wait-timers`, `timers --store`, and a
//! driver killed (SIGKILL) over and over while timers fire.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{json_of, path_str, run, runner, temp_path};

/// Each run arms one timer: key = a counter bumped per run, deadline (key % 100)
/// * 20 ms away; the callback counts its firing in the element.
const ARM_C: &str = r#"
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#define CLOCK_MONOTONIC 1
struct elem { __u64 fired; __u64 armed; struct bpf_timer t; };
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4096); __type(key, __u32); __type(value, struct elem); } flows SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u32); } next SEC(".maps");
static long spin(__u64 i, void *ctx) { return 0; }
static int fire(void *map, __u32 *key, struct elem *v)
{
	/* Long enough that a kill often lands inside a callback. */
	bpf_loop(30000, spin, 0, 0);
	__sync_fetch_and_add(&v->fired, 1);
	return 0;
}
SEC("xdp") int xdp_arm(struct xdp_md *ctx)
{
	__u32 z = 0, k, *c;
	struct elem e = {}, *v;
	c = bpf_map_lookup_elem(&next, &z);
	if (!c) return XDP_ABORTED;
	k = __sync_fetch_and_add(c, 1);
	e.armed = 1;
	if (bpf_map_update_elem(&flows, &k, &e, BPF_ANY)) return XDP_ABORTED;
	v = bpf_map_lookup_elem(&flows, &k);
	if (!v) return XDP_ABORTED;
	if (bpf_timer_init(&v->t, &flows, CLOCK_MONOTONIC)) return XDP_ABORTED;
	if (bpf_timer_set_callback(&v->t, fire)) return XDP_ABORTED;
	if (bpf_timer_start(&v->t, (k % 100) * 20000000ULL, 0)) return XDP_ABORTED;
	return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
"#;

fn build(dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let src = dir.join("arm.c");
    let obj = dir.join("arm.o");
    std::fs::write(&src, ARM_C).map_err(|e| e.to_string())?;
    let arch_inc = format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let out = std::process::Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-I"])
        .arg(&arch_inc)
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .map_err(|e| format!("clang: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "clang failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(obj)
}

/// The (fired, armed) words of every element of `flows` in store `name`.
fn fired(name: &str, n: u32) -> Vec<u64> {
    let store = maps::Store::open(name).expect("store");
    let m = store.map_by_name("flows").expect("flows");
    (0..n)
        .map(|k| {
            let mut v = [0u8; 32];
            m.lookup(&k.to_ne_bytes(), &mut v).expect("element");
            u64::from_ne_bytes(v[..8].try_into().unwrap())
        })
        .collect()
}

#[test]
fn wait_timers_shows_what_the_callbacks_did_in_both_engines() {
    let dir = temp_path("timers-wait");
    let obj = match build(&dir) {
        Ok(o) => o,
        Err(why) => {
            kclient::skip("run --wait-timers: cannot build the program", &why);
            return;
        }
    };
    let pkt = path_str(&dir.join("pkt"));
    std::fs::write(&pkt, [0u8; 64]).unwrap();
    for engine in ["interpreter", "jit"] {
        let v = json_of(&run(&[
            "run",
            &path_str(&obj),
            "--data-in",
            &pkt,
            "--repeat",
            "3",
            "--engine",
            engine,
            "--wait-timers",
            "5000",
            "--json",
        ]));
        let flows = v["maps"]["flows"].as_array().expect("flows");
        assert_eq!(flows.len(), 3, "{engine}");
        for e in flows {
            // fired = 1, armed = 1 (little-endian u64s).
            assert!(
                e["value"]
                    .as_str()
                    .unwrap()
                    .starts_with("01000000000000000100"),
                "{engine}: {e}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_killed_driver_is_taken_over_and_no_timer_is_lost() {
    let dir = temp_path("timers-kill");
    let obj = match build(&dir) {
        Ok(o) => o,
        Err(why) => {
            kclient::skip("timer driver crash test: cannot build the program", &why);
            return;
        }
    };
    let pkt = path_str(&dir.join("pkt"));
    std::fs::write(&pkt, [0u8; 64]).unwrap();
    let name = format!("xdp-timers-kill-{}", std::process::id());
    let _ = maps::Store::unlink(&name);
    let n = 400u32;
    let out = run(&[
        "run",
        &path_str(&obj),
        "--data-in",
        &pkt,
        "--repeat",
        &n.to_string(),
        "--store",
        &name,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Drivers killed with SIGKILL after 5..65 ms each, while the timers (spread
    // over two seconds) fire; each new one takes the lease over.
    let mut kills = 0u64;
    for i in 0..30u64 {
        let mut child = runner()
            .args(["timers", "--store", &name, "--duration", "30"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("driver starts");
        std::thread::sleep(Duration::from_millis(20 + (i * 37) % 101));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        kills += 1;
    }
    // A last driver fires what is left.
    let v = json_of(&run(&[
        "timers",
        "--store",
        &name,
        "--until-idle",
        "--duration",
        "30",
        "--json",
    ]));
    assert_eq!(v["armed"], 0, "{v}");
    let counts = fired(&name, n);
    let lost: Vec<u32> = (0..n).filter(|&k| counts[k as usize] == 0).collect();
    assert!(lost.is_empty(), "timers never fired: {lost:?}");
    // A timer fires twice only when its driver was killed inside its callback:
    // at most once per kill.
    let extra: u64 = counts.iter().map(|&c| c - 1).sum();
    eprintln!(
        "{kills} drivers killed, {} callbacks left to the last one, {extra} run twice",
        v["fired"]
    );
    assert!(extra <= kills, "{extra} extra firings for {kills} kills");
    let store = maps::Store::open(&name).unwrap();
    store.recover();
    store.check().expect("the store is consistent");
    drop(store);
    maps::Store::unlink(&name).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
