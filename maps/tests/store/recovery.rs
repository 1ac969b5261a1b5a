//! Writers killed with SIGKILL at random points, in a loop, on every map type
//! with a capacity: the store stays consistent, no entry is lost or duplicated
//! beyond the one being written when the writer died, and once emptied every
//! map takes exactly max_entries entries again (recovery runs by itself when
//! the store is opened).

use std::collections::BTreeMap;

use super::{fork_child, opts, wait_child, Named};
use maps::*;

const MAX: u32 = 8;
const KEYS: u32 = 12;

/// xorshift32: the child's operations and the parent's model of them agree.
fn rng(x: &mut u32) -> u32 {
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    *x
}

/// Operation `j` of round `round`: (key, Some(value) to update or None to delete).
fn op(round: u32, j: u32) -> (u32, Option<u64>) {
    let mut s = round.wrapping_mul(0x9e37_79b9) ^ j.wrapping_mul(0x85eb_ca6b) | 1;
    for _ in 0..3 {
        rng(&mut s);
    }
    let key = rng(&mut s) % KEYS;
    let del = rng(&mut s).is_multiple_of(3);
    (key, (!del).then_some(u64::from(round) << 32 | u64::from(j)))
}

fn lpm_key(key: u32) -> [u8; 8] {
    let mut k = [0u8; 8];
    k[..4].copy_from_slice(&32u32.to_ne_bytes());
    k[4..].copy_from_slice(&(0x0a00_0000 + key).to_be_bytes());
    k
}

fn key_bytes(m: &Map, key: u32) -> Vec<u8> {
    if m.info().map_type == BPF_MAP_TYPE_LPM_TRIE {
        lpm_key(key).to_vec()
    } else {
        key.to_ne_bytes().to_vec()
    }
}

fn key_of(m: &Map, kb: &[u8]) -> u32 {
    if m.info().map_type == BPF_MAP_TYPE_LPM_TRIE {
        u32::from_be_bytes([kb[4], kb[5], kb[6], kb[7]]) - 0x0a00_0000
    } else {
        u32::from_ne_bytes([kb[0], kb[1], kb[2], kb[3]])
    }
}

/// The map's content as key -> value (worker 0's value for per-CPU maps),
/// from a raw get_next_key walk that fails on a key seen twice.
fn content(m: &Map) -> BTreeMap<u32, u64> {
    let mut out = BTreeMap::new();
    let mut prev: Option<Vec<u8>> = None;
    let mut next = vec![0u8; m.info().key_size as usize];
    let mut value = vec![0u8; m.user_value_size()];
    for _ in 0..=m.info().max_entries {
        match m.get_next_key(prev.as_deref(), &mut next) {
            Ok(()) => {}
            Err(MapError::NotFound { .. }) => return out,
            Err(e) => panic!("{}: get_next_key: {e}", m.info().name),
        }
        m.lookup(&next, &mut value).expect("lookup of a walked key");
        let v = u64::from_ne_bytes(value[..8].try_into().expect("8 bytes"));
        let k = key_of(m, &next);
        assert!(
            out.insert(k, v).is_none(),
            "{}: key {k} listed twice",
            m.info().name
        );
        prev = Some(next.clone());
    }
    panic!("{}: more than max_entries keys", m.info().name);
}

/// What the map holds after `op` on `model`, for maps with an exact model.
fn apply(model: &mut BTreeMap<u32, u64>, (key, v): (u32, Option<u64>)) {
    match v {
        None => {
            model.remove(&key);
        }
        Some(v) if model.contains_key(&key) || model.len() < MAX as usize => {
            model.insert(key, v);
        }
        Some(_) => {} // full: E2BIG / ENOSPC
    }
}

#[test]
fn sigkilled_writers_lose_no_entry_and_no_capacity() {
    let n = Named::new("sigkill-capacity");
    let s = Store::create(&n.0, opts(16 << 20)).expect("create");
    let def = |map_type: u32, name: &str| MapDef {
        map_type,
        key_size: 4,
        value_size: 8,
        max_entries: MAX,
        name: name.into(),
        ..MapDef::default()
    };
    let mut defs = vec![
        def(BPF_MAP_TYPE_HASH, "hash"),
        def(BPF_MAP_TYPE_PERCPU_HASH, "percpu_hash"),
        def(BPF_MAP_TYPE_LRU_HASH, "lru_hash"),
        def(BPF_MAP_TYPE_LRU_PERCPU_HASH, "lru_percpu_hash"),
        def(BPF_MAP_TYPE_ARRAY, "array"),
        def(BPF_MAP_TYPE_PERCPU_ARRAY, "percpu_array"),
    ];
    defs.push(MapDef {
        key_size: 8,
        map_flags: BPF_F_NO_PREALLOC,
        ..def(BPF_MAP_TYPE_LPM_TRIE, "lpm")
    });
    let maps: Vec<Map> = defs.iter().map(|d| s.create_map(d).expect("map")).collect();
    let progress = s
        .create_map(&MapDef {
            max_entries: 1,
            ..def(BPF_MAP_TYPE_ARRAY, "progress")
        })
        .expect("progress");
    // SAFETY: slot 0 of a one-element u64 array: 8 bytes, 8-aligned, in the store.
    let done = unsafe {
        std::sync::atomic::AtomicU64::from_ptr(progress.prog_lookup([0u8; 4].as_ptr(), 0).cast())
    };
    let exact = |m: &Map| {
        !matches!(
            m.info().map_type,
            BPF_MAP_TYPE_LRU_HASH | BPF_MAP_TYPE_LRU_PERCPU_HASH
        )
    };
    let mut models: Vec<BTreeMap<u32, u64>> = vec![BTreeMap::new(); maps.len()];
    let mut seed = 0x1234_5678u32;
    let mut recovered = 0u32;
    let mut dirty_rounds = 0u32;
    for round in 0..60u32 {
        done.store(0, std::sync::atomic::Ordering::SeqCst);
        let ms = maps.clone();
        let pid = fork_child(move || {
            // Program-path operations only: they allocate nothing (fork_child).
            for j in 0u32.. {
                let (key, v) = op(round, j);
                for m in &ms {
                    let lk = lpm_key(key);
                    let kb = if m.info().map_type == BPF_MAP_TYPE_LPM_TRIE {
                        lk.as_ptr()
                    } else {
                        (&key as *const u32).cast()
                    };
                    let is_array = matches!(
                        m.info().map_type,
                        BPF_MAP_TYPE_ARRAY | BPF_MAP_TYPE_PERCPU_ARRAY
                    );
                    // SAFETY: keys and values have the maps' sizes.
                    unsafe {
                        match v {
                            Some(v) if !is_array || key < MAX => {
                                let _ = m.prog_update(kb, (&v as *const u64).cast(), BPF_ANY, 0);
                            }
                            None if !is_array => {
                                let _ = m.prog_delete(kb);
                            }
                            _ => {}
                        }
                    }
                }
                done.store(u64::from(j) + 1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        // Kill at a random point once the child is well under way.
        let start = u64::from(rng(&mut seed) % 300) + 1;
        while done.load(std::sync::atomic::Ordering::SeqCst) < start {
            std::hint::spin_loop();
        }
        std::thread::sleep(std::time::Duration::from_micros(u64::from(
            rng(&mut seed) % 200,
        )));
        // SAFETY: kills our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        wait_child(pid);
        let p = done.load(std::sync::atomic::Ordering::SeqCst) as u32;
        if maps.iter().any(|m| m.needs_repair()) {
            dirty_rounds += 1;
        }

        // A fresh open recovers what the child left (lock words naming it).
        let s2 = Store::open(&n.0).expect("open after the kill");
        s2.check()
            .unwrap_or_else(|e| panic!("round {round}: consistent after open: {e}"));
        for (m, model) in maps.iter().zip(models.iter_mut()) {
            let name = m.info().name;
            let got = content(m);
            if !exact(m) {
                assert!(got.len() <= MAX as usize, "{name}: {} keys", got.len());
                for (k, v) in &got {
                    // Each value was written for its own key by some operation.
                    let (r, j) = ((v >> 32) as u32, *v as u32);
                    assert_eq!(op(r, j).0, *k, "{name}: key {k} holds another key's value");
                }
                *model = got;
                continue;
            }
            let is_array = matches!(
                m.info().map_type,
                BPF_MAP_TYPE_ARRAY | BPF_MAP_TYPE_PERCPU_ARRAY
            );
            let mut want = model.clone();
            for j in 0..p {
                let o = op(round, j);
                if is_array {
                    if let (k, Some(v)) = o {
                        if k < MAX {
                            want.insert(k, v);
                        }
                    }
                } else {
                    apply(&mut want, o);
                }
            }
            // Operation p may have been in flight: its key may show either state.
            let (kp, _) = op(round, p);
            let mut after = want.clone();
            if is_array {
                if let (k, Some(v)) = op(round, p) {
                    if k < MAX {
                        after.insert(k, v);
                    }
                }
            } else {
                apply(&mut after, op(round, p));
            }
            let mut got_rest = got.clone();
            let got_kp = got_rest.remove(&kp);
            let mut want_rest = want.clone();
            let before_kp = want_rest.remove(&kp);
            assert_eq!(got_rest, want_rest, "{name}: round {round}, {p} operations");
            assert!(
                got_kp == before_kp || got_kp == after.get(&kp).copied(),
                "{name}: round {round}: key {kp} holds {got_kp:?}, neither {before_kp:?} nor {:?}",
                after.get(&kp)
            );
            *model = got;
        }
        recovered += 1;
    }
    assert_eq!(recovered, 60);
    println!("{dirty_rounds} of 60 kills left a map to repair");

    // Empty every map, then each takes exactly max_entries new keys.
    let s3 = Store::open(&n.0).expect("open");
    s3.check().expect("consistent");
    for m in &maps {
        let name = m.info().name;
        let t = m.info().map_type;
        if matches!(t, BPF_MAP_TYPE_ARRAY | BPF_MAP_TYPE_PERCPU_ARRAY) {
            let v = vec![7u8; m.user_value_size()];
            for i in 0..MAX {
                m.update(&i.to_ne_bytes(), &v, BPF_ANY).expect("array slot");
            }
            continue;
        }
        let keys: Vec<Vec<u8>> = m.iter().collect::<Result<_, _>>().expect("walk");
        for kb in keys {
            m.delete(&kb).expect("delete");
        }
        assert!(content(m).is_empty(), "{name}: emptied");
        let v = vec![1u8; m.user_value_size()];
        for i in 0..MAX {
            m.update(&key_bytes(m, 100 + i), &v, BPF_NOEXIST)
                .unwrap_or_else(|e| panic!("{name}: entry {} of {MAX}: {e}", i + 1));
        }
        assert_eq!(
            content(m).len(),
            MAX as usize,
            "{name}: nothing evicted early"
        );
        let extra = m.update(&key_bytes(m, 200), &v, BPF_NOEXIST);
        match t {
            BPF_MAP_TYPE_HASH | BPF_MAP_TYPE_PERCPU_HASH => {
                assert!(
                    matches!(extra, Err(MapError::TooBig { .. })),
                    "{name}: {extra:?}"
                )
            }
            BPF_MAP_TYPE_LPM_TRIE => {
                assert!(
                    matches!(extra, Err(MapError::NoSpaceLeft { .. })),
                    "{name}: {extra:?}"
                )
            }
            _ => assert!(extra.is_ok(), "{name}: LRU evicts: {extra:?}"),
        }
    }
    s3.check().expect("consistent at the end");
}
