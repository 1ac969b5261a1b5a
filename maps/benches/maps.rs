//! Hash-map benchmarks: the store's hash map next to `std::collections::HashMap`,
//! single-threaded and from two threads, on 1K and 1M entries of u32 -> u64; and
//! the program hot paths of each map type (`prog_paths`: `Map::prog_lookup` /
//! `prog_update` of hash, per-CPU hash, LRU, 2-byte keys, array, per-CPU array,
//! LPM; `prog_ops`: the same through `Map::prog_ops`, with `update_in_place`).
//! `maps/examples/hotpath.sh` counts the host instructions of the same calls.
//!
//! Building with `RUSTFLAGS="--cfg maps_baseline"` leaves out the `prog_ops` group,
//! so that the same file builds against an older tree for a before/after run.
//!
//! `cargo bench -p maps --bench maps` runs them. Before criterion starts, the binary
//! prints two facts it measures itself: the allocations per update (a counting global
//! allocator) and the store bytes of a 1M-entry u32 -> u64 hash next to keys + values.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion};
use maps::{Map, MapDef, Store, StoreOptions, BPF_ANY, BPF_MAP_TYPE_HASH};

/// Counts every allocation of the process.
struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded caller contract.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded caller contract.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded caller contract.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SIZES: [u32; 2] = [1 << 10, 1 << 20];

/// A store with one full u32 -> u64 hash of `n` entries (keys 0..n), and the keys
/// in a scrambled order for lookups.
fn filled(n: u32) -> (Store, Map, Vec<u32>) {
    let store = Store::anonymous(StoreOptions {
        size: 256 << 20,
        ncpus: Some(2),
    })
    .expect("store");
    let map = store
        .create_map(&MapDef {
            map_type: BPF_MAP_TYPE_HASH,
            key_size: 4,
            value_size: 8,
            max_entries: n,
            name: "bench".into(),
            ..MapDef::default()
        })
        .expect("map");
    for k in 0..n {
        map.update(&k.to_ne_bytes(), &u64::from(k).to_ne_bytes(), BPF_ANY)
            .expect("fill");
    }
    (store, map, scrambled(n))
}

fn scrambled(n: u32) -> Vec<u32> {
    // A multiplicative permutation of 0..n (n is a power of two, the factor odd).
    (0..n)
        .map(|i| i.wrapping_mul(2_654_435_761) & (n - 1))
        .collect()
}

fn std_filled(n: u32) -> HashMap<u32, u64> {
    (0..n).map(|k| (k, u64::from(k))).collect()
}

#[inline]
fn lookup(map: &Map, k: u32) -> u64 {
    let key = k.to_ne_bytes();
    // SAFETY: `key` is 4 readable bytes, the map's key size.
    let p = unsafe { map.prog_lookup(key.as_ptr(), 0) };
    if p.is_null() {
        0
    } else {
        // SAFETY: a non-null lookup result points to the 8-byte value (8-aligned).
        unsafe { std::ptr::read_volatile(p as *const u64) }
    }
}

#[inline]
fn update(map: &Map, k: u32, v: u64, cpu: u32) {
    let key = k.to_ne_bytes();
    let val = v.to_ne_bytes();
    // SAFETY: `key` and `val` are the map's key and value sizes.
    let r = unsafe { map.prog_update(key.as_ptr(), val.as_ptr(), BPF_ANY, cpu) };
    black_box(r).ok();
}

fn single_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("single_thread");
    for n in SIZES {
        let (_store, map, keys) = filled(n);
        let std_map = std_filled(n);
        let mask = keys.len() - 1;
        g.bench_function(BenchmarkId::new("store_hash_lookup", n), |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & mask;
                black_box(lookup(&map, keys[i]))
            })
        });
        g.bench_function(BenchmarkId::new("std_hashmap_lookup", n), |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & mask;
                black_box(std_map.get(&keys[i]).copied())
            })
        });
        g.bench_function(BenchmarkId::new("store_hash_update", n), |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & mask;
                update(&map, keys[i], i as u64, 0)
            })
        });
        let mut std_map = std_map;
        g.bench_function(BenchmarkId::new("std_hashmap_update", n), |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & mask;
                black_box(std_map.insert(keys[i], i as u64))
            })
        });
    }
    g.finish();
}

/// Runs `op` `iters` times on each of two threads at once; the time is the wall
/// time of the pair, so ns/op is per operation of one thread.
fn two_threads(iters: u64, op: impl Fn(usize, u64) + Sync) -> Duration {
    let barrier = std::sync::Barrier::new(3);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|t| {
                let (op, barrier) = (&op, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    for i in 0..iters {
                        op(t, i);
                    }
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for h in hs {
            h.join().expect("thread");
        }
        start.elapsed()
    })
}

fn two_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("two_threads");
    for n in SIZES {
        let (_store, map, keys) = filled(n);
        let mask = keys.len() as u64 - 1;
        let std_map = std::sync::RwLock::new(std_filled(n));
        g.bench_function(BenchmarkId::new("store_hash_lookup", n), |b| {
            b.iter_custom(|iters| {
                two_threads(iters, |t, i| {
                    black_box(lookup(&map, keys[((i + t as u64 * 7919) & mask) as usize]));
                })
            })
        });
        g.bench_function(BenchmarkId::new("std_hashmap_rwlock_lookup", n), |b| {
            b.iter_custom(|iters| {
                two_threads(iters, |t, i| {
                    let k = keys[((i + t as u64 * 7919) & mask) as usize];
                    black_box(std_map.read().expect("lock").get(&k).copied());
                })
            })
        });
        g.bench_function(BenchmarkId::new("store_hash_update", n), |b| {
            b.iter_custom(|iters| {
                two_threads(iters, |t, i| {
                    update(
                        &map,
                        keys[((i + t as u64 * 7919) & mask) as usize],
                        i,
                        t as u32,
                    )
                })
            })
        });
        g.bench_function(BenchmarkId::new("std_hashmap_mutex_update", n), |b| {
            b.iter_custom(|iters| {
                two_threads(iters, |t, i| {
                    let k = keys[((i + t as u64 * 7919) & mask) as usize];
                    black_box(std_map.write().expect("lock").insert(k, i));
                })
            })
        });
    }
    g.finish();
}

/// Allocations per update, and the store size of a 1M-entry u32 -> u64 hash.
fn facts() {
    let (store, map, keys) = filled(1 << 20);
    let ops = 200_000u64;
    let before = ALLOCS.load(Ordering::Relaxed);
    for i in 0..ops {
        update(&map, keys[(i as usize) & (keys.len() - 1)], i, 0);
        // Deleting and re-inserting exercises the free list too.
        if i % 4 == 0 {
            let k = keys[(i as usize) & (keys.len() - 1)].to_ne_bytes();
            // SAFETY: a 4-byte key.
            let _ = unsafe { map.prog_delete(k.as_ptr()) };
        }
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    println!(
        "allocations: {allocs} in {ops} updates (+{} deletes): {:.4} per update",
        ops / 4,
        allocs as f64 / ops as f64
    );
    drop(map);
    let empty = Store::anonymous(StoreOptions {
        size: 256 << 20,
        ncpus: Some(2),
    })
    .expect("store");
    let free0 = empty.free_bytes();
    empty
        .create_map(&MapDef {
            map_type: BPF_MAP_TYPE_HASH,
            key_size: 4,
            value_size: 8,
            max_entries: 1 << 20,
            name: "size".into(),
            ..MapDef::default()
        })
        .expect("map");
    let used = free0 - empty.free_bytes();
    let payload = (1u64 << 20) * (4 + 8);
    println!(
        "store bytes of a 1M-entry u32->u64 hash: {used} ({:.1} MiB); keys+values {payload} ({:.1} MiB); ratio {:.2}",
        used as f64 / (1 << 20) as f64,
        payload as f64 / (1 << 20) as f64,
        used as f64 / payload as f64
    );
    drop(store);
}

/// A store with one map of `map_type` (value u64, 1024 entries) holding keys
/// 0..512 of `ks` bytes (LPM: /32 prefixes of 4-byte data), and the keys.
fn prog_map(map_type: u32, ks: usize) -> (Store, Map, Vec<Vec<u8>>) {
    let lpm = map_type == maps::BPF_MAP_TYPE_LPM_TRIE;
    let store = Store::anonymous(StoreOptions {
        size: 16 << 20,
        ncpus: Some(2),
    })
    .expect("store");
    let map = store
        .create_map(&MapDef {
            map_type,
            key_size: ks as u32,
            value_size: 8,
            max_entries: 1024,
            map_flags: if lpm { maps::BPF_F_NO_PREALLOC } else { 0 },
            name: "prog".into(),
            ..MapDef::default()
        })
        .expect("map");
    let keys: Vec<Vec<u8>> = (0..512u32)
        .map(|i| {
            let x = i.wrapping_mul(2_654_435_761);
            if lpm {
                let mut k = 32u32.to_ne_bytes().to_vec();
                k.extend_from_slice(&x.to_be_bytes());
                k
            } else if ks == 2 {
                (i as u16).to_ne_bytes().to_vec()
            } else {
                i.to_ne_bytes()[..ks].to_vec()
            }
        })
        .collect();
    let v = vec![1u8; map.user_value_size()];
    for k in &keys {
        map.update(k, &v, BPF_ANY).expect("fill");
    }
    (store, map, keys)
}

const PROG_MAPS: [(&str, u32, usize); 7] = [
    ("hash_u32", BPF_MAP_TYPE_HASH, 4),
    ("hash_u16", BPF_MAP_TYPE_HASH, 2),
    ("percpu_hash_u32", maps::BPF_MAP_TYPE_PERCPU_HASH, 4),
    ("lru_hash_u32", maps::BPF_MAP_TYPE_LRU_HASH, 4),
    ("array", maps::BPF_MAP_TYPE_ARRAY, 4),
    ("percpu_array", maps::BPF_MAP_TYPE_PERCPU_ARRAY, 4),
    ("lpm_v4", maps::BPF_MAP_TYPE_LPM_TRIE, 8),
];

fn prog_paths(c: &mut Criterion) {
    let mut g = c.benchmark_group("prog_paths");
    for (name, t, ks) in PROG_MAPS {
        let (_store, map, keys) = prog_map(t, ks);
        let mask = keys.len() - 1;
        g.bench_function(BenchmarkId::new("lookup", name), |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & mask;
                // SAFETY: keys have key_size bytes.
                black_box(unsafe { map.prog_lookup(keys[i].as_ptr(), 1) })
            })
        });
        g.bench_function(BenchmarkId::new("update_existing", name), |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & mask;
                let v = (i as u64).to_ne_bytes();
                // SAFETY: keys have key_size bytes, v value_size.
                black_box(unsafe { map.prog_update(keys[i].as_ptr(), v.as_ptr(), BPF_ANY, 1) })
                    .ok();
            })
        });
    }
    g.finish();
}

#[cfg(not(maps_baseline))]
fn prog_ops(c: &mut Criterion) {
    let mut g = c.benchmark_group("prog_ops");
    for (name, t, ks) in PROG_MAPS {
        let (_store, map, keys) = prog_map(t, ks);
        let ops = map.prog_ops();
        let mask = keys.len() - 1;
        g.bench_function(BenchmarkId::new("lookup", name), |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & mask;
                // SAFETY: this map's entry point; keys have key_size bytes.
                black_box(unsafe { (ops.lookup)(&map, keys[i].as_ptr(), 1) })
            })
        });
        g.bench_function(BenchmarkId::new("update_existing", name), |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & mask;
                let v = (i as u64).to_ne_bytes();
                // SAFETY: this map's entry point; keys have key_size bytes, v value_size.
                black_box(unsafe { (ops.update)(&map, keys[i].as_ptr(), v.as_ptr(), BPF_ANY, 1) })
            })
        });
        g.bench_function(BenchmarkId::new("update_in_place", name), |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & mask;
                let v = (i as u64).to_ne_bytes();
                // SAFETY: as above.
                black_box(unsafe {
                    (ops.update_in_place)(&map, keys[i].as_ptr(), v.as_ptr(), BPF_ANY, 1)
                })
            })
        });
    }
    g.finish();
}

#[cfg(maps_baseline)]
fn prog_ops(_: &mut Criterion) {}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = single_thread, two_thread, prog_paths, prog_ops
}

fn main() {
    facts();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
