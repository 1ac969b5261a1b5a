//! Loops one hash-map operation, for instruction counts per call under callgrind.
//!
//! ```text
//! cargo build --release -p maps --example hash_calls
//! valgrind --tool=callgrind --toggle-collect='hash_calls::op_*' \
//!     target/release/examples/hash_calls lookup 4 1024 1000000
//! ```
//! Arguments: `op key_size entries iters` where op is `lookup` (hits, program
//! path `prog_lookup`), `miss` (absent keys), `update` (BPF_ANY on present keys,
//! program path `prog_update`) or `user_lookup` (`Map::lookup`); key_size is 4
//! or 8; the map (value u64, max_entries = max(entries, 1024)) holds keys
//! 0..entries and the loop cycles through them. Each call goes through one
//! `#[inline(never)]` function `op_*`, as the runtime's helpers call the map, so
//! collecting only inside them (`--toggle-collect`) counts exactly the map's
//! instructions plus one call frame; divide the total by iters.

use std::hint::black_box;

use maps::{Map, MapDef, Store, StoreOptions, BPF_ANY, BPF_MAP_TYPE_HASH};

fn key_bytes(k: u64, ks: usize) -> [u8; 8] {
    let mut b = [0u8; 8];
    if ks == 4 {
        b[..4].copy_from_slice(&(k as u32).to_ne_bytes());
    } else {
        b = k.to_ne_bytes();
    }
    b
}

/// One program lookup (what the runtime's bpf_map_lookup_elem helper calls).
#[inline(never)]
fn op_lookup(map: &Map, key: &[u8; 8]) -> *mut u8 {
    // SAFETY: key has 8 >= key_size readable bytes.
    unsafe { map.prog_lookup(key.as_ptr(), 0) }
}

/// One program update with BPF_ANY (bpf_map_update_elem).
#[inline(never)]
fn op_update(map: &Map, key: &[u8; 8], val: &[u8; 8]) -> bool {
    // SAFETY: key and val have 8 readable bytes (>= key_size, = value_size).
    unsafe { map.prog_update(key.as_ptr(), val.as_ptr(), BPF_ANY, 0) }.is_ok()
}

/// One user-space lookup (bpf(2) BPF_MAP_LOOKUP_ELEM).
#[inline(never)]
fn op_user_lookup(map: &Map, key: &[u8], out: &mut [u8; 8]) -> bool {
    map.lookup(key, out).is_ok()
}

fn run(map: &Map, op: &str, entries: u64, iters: u64) -> u64 {
    let mask = entries.next_power_of_two() - 1;
    let mut sum = 0u64;
    // Keys are cycled through 0..entries (entries a power of two or 1).
    let k = |i: u64| if entries == 1 { 0 } else { i & mask };
    match op {
        "lookup" | "miss" => {
            let off = if op == "miss" { 1 << 30 } else { 0 };
            for i in 0..iters {
                let key = black_box(key_bytes(k(i) + off, 8));
                let p = op_lookup(map, &key);
                if !p.is_null() {
                    // SAFETY: a hit points at the 8-byte value.
                    sum = sum.wrapping_add(unsafe { std::ptr::read_volatile(p as *const u64) });
                }
            }
        }
        "update" => {
            for i in 0..iters {
                let key = black_box(key_bytes(k(i), 8));
                let val = black_box(i.to_ne_bytes());
                sum = sum.wrapping_add(op_update(map, &key, &val) as u64);
            }
        }
        "user_lookup" => {
            let ks = map.info().key_size as usize;
            let mut out = [0u8; 8];
            for i in 0..iters {
                let key = black_box(key_bytes(k(i), 8));
                if op_user_lookup(map, &key[..ks], &mut out) {
                    sum = sum.wrapping_add(u64::from_ne_bytes(out));
                }
            }
        }
        other => {
            eprintln!("unknown op {other}");
            std::process::exit(2);
        }
    }
    sum
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: hash_calls lookup|miss|update|user_lookup 4|8 ENTRIES ITERS");
        std::process::exit(2);
    };
    if args.len() != 5 {
        usage();
    }
    let op = args[1].as_str();
    let parse = |s: &str| s.parse::<u64>().unwrap_or_else(|_| usage());
    let (ks, entries, iters) = (parse(&args[2]), parse(&args[3]), parse(&args[4]));
    if ks != 4 && ks != 8 {
        usage();
    }
    let store = Store::anonymous(StoreOptions {
        size: 64 << 20,
        ncpus: Some(2),
    })
    .expect("store");
    let map = store
        .create_map(&MapDef {
            map_type: BPF_MAP_TYPE_HASH,
            key_size: ks as u32,
            value_size: 8,
            max_entries: (entries as u32).max(1024),
            name: "calls".into(),
            ..MapDef::default()
        })
        .expect("map");
    for k in 0..entries {
        map.update(&key_bytes(k, 8)[..ks as usize], &k.to_ne_bytes(), BPF_ANY)
            .expect("fill");
    }
    let sum = run(&map, op, entries, iters);
    println!("{op} key {ks} entries {entries} iters {iters}: checksum {sum}");
}
