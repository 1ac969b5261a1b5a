//! `bpf_timer` in both engines: the helpers' results and what the callbacks did,
//! against what the kernel (6.18) answers for the same program (the expected values
//! below; `bpf-progs` and its kernel differential cover more programs).

use std::path::{Path, PathBuf};
use std::time::Duration;

use runtime::jit::{JitObject, JitOptions};
use runtime::timers::{CallbackEngine, TimerDriver};
use runtime::{LoadedObject, Packet, Vm};

/// The helpers' edge cases: init twice, start before set_callback, cancel of an
/// inactive timer (which drops the callback: the next start is -EINVAL), a bad
/// start flag, a bad clock, cancel of an uninitialised timer; the callback cancels
/// itself (-EDEADLK), records its key and re-arms itself once.
const TIMER_C: &str = r#"
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#define CLOCK_MONOTONIC 1
struct elem { __u64 fired; __u64 arg; struct bpf_timer t; };
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, __u32); __type(value, struct elem); } flows SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4); __type(key, __u32); __type(value, struct elem); } arr SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 16); __type(key, __u32); __type(value, __s64); } results SEC(".maps");
static __always_inline void set(__u32 k, __s64 v) { bpf_map_update_elem(&results, &k, &v, 0); }
static int cb(void *map, __u32 *key, struct elem *v)
{
	__u32 k = 10;
	__s64 c = bpf_timer_cancel(&v->t);
	__s64 *r = bpf_map_lookup_elem(&results, &k);
	v->fired++;
	if (r) *r = c;
	k = 11;
	r = bpf_map_lookup_elem(&results, &k);
	if (r) *r = *key;
	if (v->arg == 1) { v->arg = 2; bpf_timer_start(&v->t, 1000, 0); }
	return 0;
}
static int arr_cb(void *map, __u32 *key, struct elem *v)
{
	__u32 k = 12;
	__s64 *r = bpf_map_lookup_elem(&results, &k);
	v->fired++;
	if (r) *r = *key;
	return 0;
}
SEC("xdp") int xdp_timer(struct xdp_md *ctx)
{
	__u32 k = 7, a = 2;
	struct elem e = {}, *v, *w;
	bpf_map_update_elem(&flows, &k, &e, BPF_ANY);
	v = bpf_map_lookup_elem(&flows, &k);
	if (!v) return XDP_ABORTED;
	set(0, bpf_timer_init(&v->t, &flows, CLOCK_MONOTONIC));
	set(1, bpf_timer_init(&v->t, &flows, CLOCK_MONOTONIC));
	set(2, bpf_timer_start(&v->t, 1000, 0));
	set(3, bpf_timer_set_callback(&v->t, cb));
	set(4, bpf_timer_cancel(&v->t));
	set(5, bpf_timer_start(&v->t, 1000, 0));
	bpf_timer_set_callback(&v->t, cb);
	set(6, bpf_timer_start(&v->t, 1000, 4));
	set(9, bpf_timer_start(&v->t, 1000, 0));
	v->arg = 1;
	w = bpf_map_lookup_elem(&arr, &a);
	if (!w) return XDP_ABORTED;
	set(7, bpf_timer_init(&w->t, &arr, 5));
	set(8, bpf_timer_cancel(&w->t));
	bpf_timer_init(&w->t, &arr, CLOCK_MONOTONIC);
	bpf_timer_set_callback(&w->t, arr_cb);
	set(13, bpf_timer_start(&w->t, 2000, 0));
	return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
"#;

/// What kernel 6.18 leaves in `results` (index: value) after one run and the
/// timers fired (bpftool prog run with pinned maps, then a dump).
const KERNEL_RESULTS: [i64; 14] = [
    0,   // init
    -16, // init again: -EBUSY
    -22, // start before set_callback: -EINVAL
    0,   // set_callback
    0,   // cancel of an inactive timer
    -22, // start after that cancel (the callback was dropped): -EINVAL
    -22, // start with flags 4: -EINVAL
    -22, // init with clock 5: -EINVAL
    -22, // cancel of an uninitialised timer: -EINVAL
    0,   // start
    -35, // cancel from its own callback: -EDEADLK
    7,   // the key the callback saw
    2,   // the array callback's key (its index)
    0,   // array timer start
];

/// A timer in an inner map's value: the program finds the inner map through the
/// outer one, and `bpf_timer_init` names the inner map; the callback adds 1 + its
/// key (kernel 6.18: `inner0[1].fired` = 2, the helpers' results 0).
const INNER_C: &str = r#"
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct inner_v { __u64 fired; struct bpf_timer t; };
struct inner { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2); __type(key, __u32); __type(value, struct inner_v); } inner0 SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); __uint(max_entries, 1); __type(key, __u32); __array(values, struct inner); } outer SEC(".maps") = { .values = { [0] = &inner0 } };
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4); __type(key, __u32); __type(value, __s64); } res SEC(".maps");
static int icb(void *map, __u32 *key, struct inner_v *v) { v->fired += 1 + *key; return 0; }
SEC("xdp") int xdp_inner(struct xdp_md *ctx)
{
	__u32 z = 0, one = 1;
	__s64 r;
	void *im = bpf_map_lookup_elem(&outer, &z);
	struct inner_v *v;
	if (!im) return XDP_ABORTED;
	v = bpf_map_lookup_elem(im, &one);
	if (!v) return XDP_ABORTED;
	r = bpf_timer_init(&v->t, im, 1);
	bpf_map_update_elem(&res, &z, &r, 0);
	r = bpf_timer_set_callback(&v->t, icb);
	bpf_map_update_elem(&res, &one, &r, 0);
	r = bpf_timer_start(&v->t, 1000, 0);
	z = 2;
	bpf_map_update_elem(&res, &z, &r, 0);
	return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
"#;

fn build(dir: &Path, name: &str, c: &str) -> Result<PathBuf, String> {
    let src = dir.join(format!("{name}.c"));
    let obj = dir.join(format!("{name}.o"));
    std::fs::write(&src, c).map_err(|e| e.to_string())?;
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

fn results(loaded: &LoadedObject) -> Vec<i64> {
    let m = &loaded.maps.by_name("results").expect("results map").map;
    (0u32..14)
        .map(|k| {
            let mut v = [0u8; 8];
            m.lookup(&k.to_ne_bytes(), &mut v).expect("results entry");
            i64::from_ne_bytes(v)
        })
        .collect()
}

fn fired(loaded: &LoadedObject, map: &str, key: u32) -> (u64, u64) {
    let m = &loaded.maps.by_name(map).expect("map").map;
    let mut v = [0u8; 32];
    m.lookup(&key.to_ne_bytes(), &mut v).expect("entry");
    (
        u64::from_ne_bytes(v[..8].try_into().unwrap()),
        u64::from_ne_bytes(v[8..16].try_into().unwrap()),
    )
}

fn drive(store: &maps::Store, engine: &dyn CallbackEngine) -> runtime::timers::FireStats {
    let mut driver = TimerDriver::new(store).expect("lease");
    let mut vm = Vm::new(0);
    // The audit: a callback's access the analysis proved (its value, through r3)
    // that would trap ends the run with ProofViolated.
    vm.set_audit(true);
    let st = driver
        .run_for(
            Duration::from_secs(20),
            Duration::from_millis(1),
            true,
            &mut vm,
            engine,
            &|| false,
        )
        .expect("drive");
    assert_eq!(driver.armed(), 0, "every timer fired");
    assert!(driver.last_trap.is_none(), "{:?}", driver.last_trap);
    st
}

#[test]
fn timer_helpers_and_callbacks_match_the_kernel_in_both_engines() {
    let dir = std::env::temp_dir().join(format!("bpf_timer_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let obj = match build(&dir, "timer", TIMER_C) {
        Ok(o) => o,
        Err(why) => {
            kclient::skip("bpf_timer: cannot build the program", &why);
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
    };
    let bytes = std::fs::read(&obj).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let object = loader::Object::parse(&bytes).expect("parse");
    // The interpreter and the JIT in audit mode (every helper through the table),
    // then the JIT as it runs by default (bpf_timer_start called directly).
    for (jit, audit) in [(false, true), (true, true), (true, false)] {
        let store = maps::Store::anonymous(maps::StoreOptions {
            size: 4 << 20,
            ncpus: Some(2),
        })
        .unwrap();
        let loaded = LoadedObject::load(&object, &store).expect("load");
        let prog = loaded.program_index(Some("xdp_timer")).unwrap();
        let mut pkt = Packet::new(&[0u8; 64]).unwrap();
        let mut vm = Vm::new(0);
        vm.set_audit(audit);
        let st = if jit {
            let opts = JitOptions {
                audit,
                ..JitOptions::default()
            };
            let j = JitObject::compile(&loaded, &opts).expect("jit");
            assert_eq!(j.run(&mut vm, prog, &mut pkt).expect("run"), 2);
            drive(&store, &j)
        } else {
            assert_eq!(loaded.run(&mut vm, prog, &mut pkt).expect("run"), 2);
            drive(&store, &loaded)
        };
        let engine = match (jit, audit) {
            (false, _) => "interpreter",
            (true, true) => "jit (audit)",
            (true, false) => "jit",
        };
        assert_eq!(results(&loaded), KERNEL_RESULTS, "{engine}");
        // The hash timer fired twice (it re-armed itself once), the array one once.
        assert_eq!(fired(&loaded, "flows", 7), (2, 2), "{engine}");
        assert_eq!(fired(&loaded, "arr", 2).0, 1, "{engine}");
        assert_eq!(st.fired, 3, "{engine}");
        for m in loaded.maps.iter() {
            m.map.check().expect("consistent");
        }
        // The callbacks are analysed as entries of their own: their value accesses
        // are proven; only the key reads (r2) stay checked.
        let unproven = match loaded.programs[prog].analysis().strict("xdp_timer") {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        };
        assert_eq!(unproven.matches("; not proven:").count(), 2, "{unproven}");
    }
}

#[test]
fn timers_in_inner_maps_fire_in_both_engines() {
    let dir = std::env::temp_dir().join(format!("bpf_timer_inner_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let obj = match build(&dir, "inner", INNER_C) {
        Ok(o) => o,
        Err(why) => {
            kclient::skip("bpf_timer in inner maps: cannot build the program", &why);
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
    };
    let bytes = std::fs::read(&obj).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let object = loader::Object::parse(&bytes).expect("parse");
    for jit in [false, true] {
        let store = maps::Store::anonymous(maps::StoreOptions {
            size: 4 << 20,
            ncpus: Some(2),
        })
        .unwrap();
        let loaded = LoadedObject::load(&object, &store).expect("load");
        let prog = loaded.program_index(Some("xdp_inner")).unwrap();
        let mut pkt = Packet::new(&[0u8; 64]).unwrap();
        let mut vm = Vm::new(0);
        if jit {
            let j = JitObject::compile(&loaded, &JitOptions::default()).expect("jit");
            assert_eq!(j.run(&mut vm, prog, &mut pkt).expect("run"), 2);
            drive(&store, &j);
        } else {
            assert_eq!(loaded.run(&mut vm, prog, &mut pkt).expect("run"), 2);
            drive(&store, &loaded);
        }
        let res = &loaded.maps.by_name("res").expect("res").map;
        for k in 0u32..3 {
            let mut v = [0u8; 8];
            res.lookup(&k.to_ne_bytes(), &mut v).unwrap();
            assert_eq!(i64::from_ne_bytes(v), 0, "helper {k}");
        }
        let inner = &loaded.maps.by_name("inner0").expect("inner0").map;
        let mut v = [0u8; 24];
        inner.lookup(&1u32.to_ne_bytes(), &mut v).unwrap();
        assert_eq!(
            u64::from_ne_bytes(v[..8].try_into().unwrap()),
            2,
            "jit {jit}"
        );
    }
}
