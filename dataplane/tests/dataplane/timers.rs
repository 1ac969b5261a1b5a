//! A replay drives the store's timers: timers the frames start fire while the
//! replay runs, in both engines, with no other driver.

use std::time::{Duration, Instant};

use dataplane::{Config, Dataplane, DataplaneError, Engine, FrameMeta, ReplayOptions, Source};
use runtime::LoadedObject;

/// Each frame arms one timer (key = a per-run counter), 0..4 ms away; the callback
/// counts its firing in the element.
const ARM_C: &str = r#"
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#define CLOCK_MONOTONIC 1
struct elem { __u64 fired; __u64 armed; struct bpf_timer t; };
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64); __type(key, __u32); __type(value, struct elem); } flows SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u32); } next SEC(".maps");
static int fire(void *map, __u32 *key, struct elem *v)
{
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
	bpf_timer_init(&v->t, &flows, CLOCK_MONOTONIC);
	bpf_timer_set_callback(&v->t, fire);
	bpf_timer_start(&v->t, (k % 5) * 1000000ULL, 0);
	return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
"#;

const FRAMES: u32 = 20;

/// `FRAMES` frames, then idle until every timer fired (or 20 s passed), then the end.
struct Frames {
    sent: u32,
    flows: maps::Map,
    since: Option<Instant>,
}

impl Frames {
    fn all_fired(&self) -> bool {
        (0..FRAMES).all(|k| {
            let mut v = [0u8; 32];
            self.flows.lookup(&k.to_ne_bytes(), &mut v).is_ok() && v[0] != 0
        })
    }
}

impl Source for Frames {
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<dataplane::io::Recv, DataplaneError> {
        use dataplane::io::Recv;
        if self.sent < FRAMES {
            self.sent += 1;
            buf.clear();
            buf.extend_from_slice(&[0u8; 64]);
            return Ok(Recv::Frame(FrameMeta::new(Duration::ZERO, 64)));
        }
        let since = *self.since.get_or_insert_with(Instant::now);
        if self.all_fired() || since.elapsed() > Duration::from_secs(20) {
            return Ok(Recv::End);
        }
        std::thread::sleep(Duration::from_millis(1));
        Ok(Recv::Idle)
    }
}

fn build(dir: &std::path::Path) -> Result<std::path::PathBuf, String> {
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
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(obj)
}

#[test]
fn a_replay_fires_the_timers_its_frames_start() {
    let dir = super::temp_dir("timers");
    let obj = match build(&dir) {
        Ok(o) => o,
        Err(why) => {
            kclient::skip("replay with timers: cannot build the program", &why);
            return;
        }
    };
    let object = loader::Object::parse(&std::fs::read(&obj).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    for (engine, workers) in [(Engine::Interpreter, 1), (Engine::Jit, 1)] {
        let store = maps::Store::anonymous(maps::StoreOptions {
            size: 4 << 20,
            ncpus: Some(4),
        })
        .unwrap();
        let loaded = LoadedObject::load(&object, &store).unwrap();
        let prog = loaded.program_index(Some("xdp_arm")).unwrap();
        let config = Config {
            engine,
            workers,
            ..Default::default()
        };
        let dp = Dataplane::new(&store, &loaded, prog, config).unwrap();
        let mut source = Frames {
            sent: 0,
            flows: store.map_by_name("flows").unwrap(),
            since: None,
        };
        dataplane::replay(&dp, &mut source, None, &ReplayOptions::default()).unwrap();
        assert!(
            source.all_fired(),
            "{engine:?}: every timer fired during the replay"
        );
        store.check().unwrap();
    }
}
