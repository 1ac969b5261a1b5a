//! Loops the program hot path of one map type, for host instructions per call
//! under callgrind (`maps/examples/hotpath.sh` runs every type and key size).
//!
//! ```text
//! cargo build --release -p maps --example hotpath
//! valgrind --tool=callgrind --toggle-collect='hotpath::op_*' \
//!     target/release/examples/hotpath hash 4 100000
//! callgrind_annotate --inclusive=yes callgrind.out.*
//! ```
//! Arguments: `TYPE KEY_SIZE ITERS`. TYPE is one of hash, percpu_hash, lru_hash,
//! lru_percpu_hash, array, percpu_array, lpm; KEY_SIZE is the key's bytes (for
//! lpm the data bytes after the 4-byte prefix length; arrays take 4). The map
//! (value u64, 4096 entries, 2 workers) holds `LIVE` keys; each iteration runs,
//! through one `#[inline(never)]` function each, as the runtime's helpers call
//! the map:
//! - `op_lookup`: `prog_lookup` of a present key;
//! - `op_lookup_miss`: `prog_lookup` of an absent key;
//! - `op_update_existing`: `prog_update` BPF_ANY of a present key (the value
//!   changes each call);
//! - `op_update_new`: `prog_update` BPF_ANY of an absent key (hash kinds, lpm);
//! - `op_delete`: `prog_delete` of the key `op_update_new` just added;
//! - `op_ops_lookup`, `op_ops_update_existing`, `op_in_place_update_existing`:
//!   the same through `Map::prog_ops` (`lookup`, `update`, `update_in_place`).
//!
//! Collecting only inside `op_*` counts the map's instructions plus one call
//! frame; callgrind's inclusive cost of each `op_*` divided by ITERS is its cost
//! per call (the script takes the difference of two ITERS to cancel first-call
//! effects).

use std::hint::black_box;

use maps::{Map, MapDef, ProgOps, Store, StoreOptions, BPF_ANY};

const LIVE: usize = 1024;
const MAX: u32 = 4096;

#[inline(never)]
fn op_lookup(map: &Map, key: &[u8]) -> *mut u8 {
    // SAFETY: key has key_size bytes.
    unsafe { map.prog_lookup(key.as_ptr(), 1) }
}

// The ops return different things so that the compiler does not merge the
// functions of identical bodies (callgrind would then count them as one).
#[inline(never)]
fn op_lookup_miss(map: &Map, key: &[u8]) -> bool {
    // SAFETY: key has key_size bytes.
    unsafe { map.prog_lookup(key.as_ptr(), 1) }.is_null()
}

#[inline(never)]
fn op_update_existing(map: &Map, key: &[u8], val: &[u8; 8]) -> bool {
    // SAFETY: key has key_size bytes, val value_size = 8.
    unsafe { map.prog_update(key.as_ptr(), val.as_ptr(), BPF_ANY, 1) }.is_err()
}

#[inline(never)]
fn op_update_new(map: &Map, key: &[u8], val: &[u8; 8]) -> bool {
    // SAFETY: key has key_size bytes, val value_size = 8.
    unsafe { map.prog_update(key.as_ptr(), val.as_ptr(), BPF_ANY, 1) }.is_ok()
}

#[inline(never)]
fn op_delete(map: &Map, key: &[u8]) -> bool {
    // SAFETY: key has key_size bytes.
    unsafe { map.prog_delete(key.as_ptr()) }.is_ok()
}

#[inline(never)]
fn op_ops_lookup(ops: &ProgOps, map: &Map, key: &[u8]) -> usize {
    // SAFETY: the entry point is this map's; key has key_size bytes.
    unsafe { (ops.lookup)(map, key.as_ptr(), 1) as usize }
}

#[inline(never)]
fn op_ops_update_existing(ops: &ProgOps, map: &Map, key: &[u8], val: &[u8; 8]) -> i64 {
    // SAFETY: the entry point is this map's; key and val have key_size and 8 bytes.
    unsafe { (ops.update)(map, key.as_ptr(), val.as_ptr(), BPF_ANY, 1) }
}

#[inline(never)]
fn op_in_place_update_existing(ops: &ProgOps, map: &Map, key: &[u8], val: &[u8; 8]) -> i32 {
    // SAFETY: the entry point is this map's; key and val have key_size and 8 bytes.
    unsafe { (ops.update_in_place)(map, key.as_ptr(), val.as_ptr(), BPF_ANY, 1) as i32 }
}

/// Key number `i` as `ks` bytes (distinct for i < 2^16 at every size); for lpm,
/// a full-length prefix.
fn key(i: u32, ks: usize, lpm: bool) -> Vec<u8> {
    let mut data = Vec::with_capacity(ks);
    let mut x = u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15) | u64::from(i);
    while data.len() < ks {
        data.extend_from_slice(&x.to_ne_bytes());
        x = x.rotate_left(17) ^ u64::from(i);
    }
    data.truncate(ks);
    if ks <= 4 {
        // Small keys: the number itself, so that all of them stay distinct.
        data = i.to_ne_bytes()[..ks].to_vec();
        if ks == 4 && lpm {
            data = i.to_be_bytes().to_vec();
        }
    }
    if lpm {
        let mut k = ((ks * 8) as u32).to_ne_bytes().to_vec();
        k.extend_from_slice(&data);
        k
    } else {
        data
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!(
            "usage: hotpath hash|percpu_hash|lru_hash|lru_percpu_hash|array|percpu_array|lpm \
             KEY_SIZE ITERS"
        );
        std::process::exit(2);
    };
    if args.len() != 4 {
        usage();
    }
    let map_type = match args[1].as_str() {
        "hash" => maps::BPF_MAP_TYPE_HASH,
        "percpu_hash" => maps::BPF_MAP_TYPE_PERCPU_HASH,
        "lru_hash" => maps::BPF_MAP_TYPE_LRU_HASH,
        "lru_percpu_hash" => maps::BPF_MAP_TYPE_LRU_PERCPU_HASH,
        "array" => maps::BPF_MAP_TYPE_ARRAY,
        "percpu_array" => maps::BPF_MAP_TYPE_PERCPU_ARRAY,
        "lpm" => maps::BPF_MAP_TYPE_LPM_TRIE,
        _ => usage(),
    };
    let ks: usize = args[2].parse().unwrap_or_else(|_| usage());
    let iters: u64 = args[3].parse().unwrap_or_else(|_| usage());
    let lpm = map_type == maps::BPF_MAP_TYPE_LPM_TRIE;
    let array = matches!(
        map_type,
        maps::BPF_MAP_TYPE_ARRAY | maps::BPF_MAP_TYPE_PERCPU_ARRAY
    );
    if ks == 0 || ks > 64 || (array && ks != 4) {
        usage();
    }
    let store = Store::anonymous(StoreOptions {
        size: 64 << 20,
        ncpus: Some(2),
    })
    .expect("store");
    let map = store
        .create_map(&MapDef {
            map_type,
            key_size: (ks + if lpm { 4 } else { 0 }) as u32,
            value_size: 8,
            max_entries: MAX,
            map_flags: if lpm { maps::BPF_F_NO_PREALLOC } else { 0 },
            name: "hotpath".into(),
            ..MapDef::default()
        })
        .expect("map");
    let present: Vec<Vec<u8>> = (0..LIVE as u32).map(|i| key(i, ks, lpm)).collect();
    // Absent keys: numbers above every present one (array indices >= max_entries).
    let first_absent = if array { MAX } else { LIVE as u32 + 1 };
    let absent: Vec<Vec<u8>> = (0..LIVE as u32)
        .map(|i| key(first_absent + i, ks, lpm))
        .collect();
    let uv = vec![1u8; map.user_value_size()];
    for k in &present {
        map.update(k, &uv, BPF_ANY).expect("fill");
    }
    // ok[op]: calls that found / stored what they should.
    let mut ok = [0u64; 8];
    let ops = map.prog_ops();
    for it in 0..iters {
        let i = (it as usize) % LIVE;
        let val = black_box(it.to_ne_bytes());
        ok[0] += !op_lookup(&map, black_box(&present[i])).is_null() as u64;
        ok[1] += op_lookup_miss(&map, black_box(&absent[i])) as u64;
        ok[2] += !op_update_existing(&map, black_box(&present[i]), &val) as u64;
        ok[5] += (op_ops_lookup(&ops, &map, black_box(&present[i])) != 0) as u64;
        ok[6] += (op_ops_update_existing(&ops, &map, black_box(&present[i]), &val) == 0) as u64;
        ok[7] +=
            (op_in_place_update_existing(&ops, &map, black_box(&present[i]), &val) == 0) as u64;
        if !array {
            ok[3] += op_update_new(&map, black_box(&absent[i]), &val) as u64;
            ok[4] += op_delete(&map, black_box(&absent[i])) as u64;
        }
    }
    let skip = if array { 3..5 } else { 0..0 };
    if (0..8).any(|i| !skip.contains(&i) && ok[i] != iters) {
        eprintln!("unexpected results: {ok:?} of {iters}");
        std::process::exit(1);
    }
    println!("{} key {ks} iters {iters}: ok", args[1]);
}
