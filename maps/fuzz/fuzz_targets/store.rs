//! Opens a real store with fuzz bytes written into its header, map table,
//! object table or map memory, then uses it as every tool does: check, a dump of
//! every map (get_next_key walk with lookups), lookups, updates and deletes
//! from user space and from the program-facing path, ring consumers, repair,
//! and the object listing (programs, BTF, pins).
//!
//! Any panic, hang or signal is a finding; a clear error is the right answer to
//! a corrupted store.
//!
//! Input: `n` (patch count, 1..=4), then per patch: region (1 byte), offset
//! (4 bytes, modulo the region's length), length (1 byte, 1..=64), the bytes;
//! what is left seeds the keys and values of the operations.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use maps::*;

const STORE_SIZE: usize = 1 << 20;

struct Template {
    dir: PathBuf,
    bytes: Vec<u8>,
    data_start: usize,
    data_end: usize,
}

fn def(map_type: u32, key_size: u32, value_size: u32, max_entries: u32, flags: u32) -> MapDef {
    MapDef {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_flags: flags,
        name: format!("m{map_type}"),
        ..MapDef::default()
    }
}

/// A store with a map of each type holding some entries, a program, a BTF
/// object and pins; its bytes are the starting point of every run.
fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("xdp-store-fuzz.{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let access = StoreAccess {
            dir: Some(dir.clone()),
            ..StoreAccess::default()
        };
        let _ = Store::unlink_with("t", &access);
        let s = Store::create_with(
            "t",
            StoreOptions {
                size: STORE_SIZE,
                ncpus: Some(2),
            },
            &access,
        )
        .expect("template store");
        let defs = [
            def(BPF_MAP_TYPE_ARRAY, 4, 8, 8, 0),
            def(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 8, 0),
            def(BPF_MAP_TYPE_HASH, 4, 8, 8, 0),
            def(BPF_MAP_TYPE_PERCPU_HASH, 4, 8, 8, 0),
            def(BPF_MAP_TYPE_LRU_HASH, 4, 8, 8, 0),
            def(BPF_MAP_TYPE_LRU_PERCPU_HASH, 4, 8, 8, 0),
            def(BPF_MAP_TYPE_LPM_TRIE, 8, 8, 8, BPF_F_NO_PREALLOC),
            def(BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4, 0),
            def(BPF_MAP_TYPE_DEVMAP, 4, 4, 4, 0),
            def(BPF_MAP_TYPE_DEVMAP_HASH, 4, 4, 4, 0),
            def(BPF_MAP_TYPE_CPUMAP, 4, 4, 4, 0),
            def(BPF_MAP_TYPE_XSKMAP, 4, 4, 4, 0),
            def(BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 4, 0),
            def(BPF_MAP_TYPE_HASH_OF_MAPS, 4, 4, 4, 0),
            def(BPF_MAP_TYPE_RINGBUF, 0, 0, 4096, 0),
            def(BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 2, 0),
        ];
        let btf = s.register_btf(&[0x9f, 0xeb, 1, 0, 24, 0, 0, 0]).ok();
        let prog = s
            .register_program(&ProgramDef {
                name: "p".into(),
                prog_type: 6,
                insns: vec![0xb7, 0, 0, 0, 2, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0],
                btf_id: btf.unwrap_or(0),
                ..ProgramDef::default()
            })
            .ok();
        let mut first_array = None;
        for d in &defs {
            let m = s.create_map(d).expect("template map");
            first_array.get_or_insert(m.id());
            let vsize = m.user_value_size();
            for i in 0..5u32 {
                let mut key = vec![0u8; d.key_size as usize];
                if d.map_type == BPF_MAP_TYPE_LPM_TRIE {
                    key[..4].copy_from_slice(&(8 + i * 4).to_ne_bytes());
                    key[4] = 10;
                    key[5] = i as u8;
                } else if !key.is_empty() {
                    key[..4].copy_from_slice(&i.to_ne_bytes());
                }
                let mut val = vec![i as u8 + 1; vsize];
                match d.map_type {
                    BPF_MAP_TYPE_PROG_ARRAY => match prog {
                        Some(p) => val.copy_from_slice(&p.to_ne_bytes()),
                        None => continue,
                    },
                    BPF_MAP_TYPE_ARRAY_OF_MAPS | BPF_MAP_TYPE_HASH_OF_MAPS => {
                        val.copy_from_slice(&first_array.unwrap_or(1).to_ne_bytes())
                    }
                    BPF_MAP_TYPE_CPUMAP => val.copy_from_slice(&64u32.to_ne_bytes()),
                    BPF_MAP_TYPE_PERF_EVENT_ARRAY | BPF_MAP_TYPE_RINGBUF => continue,
                    _ => {}
                }
                let _ = m.update(&key, &val, BPF_ANY);
            }
            if d.map_type == BPF_MAP_TYPE_RINGBUF {
                let _ = m.ringbuf_output(&[b"record one"]);
                let _ = m.ringbuf_output(&[b"record two, longer"]);
            }
            if d.map_type == BPF_MAP_TYPE_PERF_EVENT_ARRAY {
                let _ = m.perf_output(0, 0, &[b"perf record"]);
            }
            let _ = s.pin(&format!("/sys/fs/bpf/{}", d.name), Pinned::Map(m.id()));
        }
        if let Some(p) = prog {
            let _ = s.pin("/sys/fs/bpf/p", Pinned::Prog(p));
        }
        let data_end = (STORE_SIZE as u64 - s.free_bytes()) as usize;
        drop(s);
        let bytes = std::fs::read(access.path_of("t")).expect("template bytes");
        Template {
            dir,
            bytes,
            data_start: MIN_STORE_SIZE - 4096,
            data_end,
        }
    })
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if input.len() < n {
        return None;
    }
    let (a, b) = input.split_at(n);
    *input = b;
    Some(a)
}

/// Region `r` of the template as (start, length).
fn region(t: &Template, r: u8) -> (usize, usize) {
    // Header, map table, object table, map memory (as maps/src/layout.rs lays them out).
    let map_table = 4096;
    let obj_table = map_table + MAP_TABLE_CAP as usize * 128;
    match r % 4 {
        0 => (0, 4096),
        1 => (map_table, obj_table - map_table),
        2 => (obj_table, t.data_start - obj_table),
        _ => (t.data_start, t.data_end - t.data_start),
    }
}

fn exercise(s: &Store, seed: &[u8]) {
    let _ = s.check();
    let word = |i: usize| -> u32 {
        let b = |j: usize| {
            seed.get((i * 4 + j) % seed.len().max(1))
                .copied()
                .unwrap_or(0)
        };
        u32::from_ne_bytes([b(0), b(1), b(2), b(3)])
    };
    for id in s.map_ids() {
        let Ok(m) = s.map_by_id(id) else { continue };
        let info = m.info();
        let mut value = vec![0u8; m.user_value_size()];
        // The dump, as `xdp-runner map dump` and bpftool walk it.
        let mut n = 0u64;
        for key in m.iter() {
            // A corrupt map ends the walk with an error, as dumps report it.
            let Ok(key) = key else { break };
            let _ = m.lookup(&key, &mut value);
            n += 1;
        }
        assert!(
            n <= u64::from(info.max_entries),
            "the key walk yields at most max_entries keys"
        );
        let region = m.value_region();
        for i in 0..4 {
            let mut key = vec![0u8; info.key_size as usize];
            for (j, b) in key.iter_mut().enumerate() {
                *b = (word(i + j / 4) >> ((j % 4) * 8)) as u8;
            }
            if let Some(b) = key.get_mut(0) {
                *b &= 0x7; // mostly indexes and keys that exist
            }
            let _ = m.lookup(&key, &mut value);
            value.iter_mut().for_each(|b| *b = word(i) as u8);
            let _ = m.update(&key, &value, u64::from(word(i + 1) % 3));
            // Maps whose program lookups return values (the others return
            // socket, device or inner map handles the runtime resolves).
            let has_values = matches!(
                info.map_type,
                BPF_MAP_TYPE_ARRAY
                    | BPF_MAP_TYPE_PERCPU_ARRAY
                    | BPF_MAP_TYPE_HASH
                    | BPF_MAP_TYPE_PERCPU_HASH
                    | BPF_MAP_TYPE_LRU_HASH
                    | BPF_MAP_TYPE_LRU_PERCPU_HASH
                    | BPF_MAP_TYPE_LPM_TRIE
            );
            if has_values {
                // SAFETY: key holds key_size bytes.
                let p = unsafe { m.prog_lookup(key.as_ptr(), word(i) % 3) };
                if !p.is_null() {
                    assert!(
                        region.contains(p as usize, 1),
                        "map {id} type {}: program lookup returned {p:p} outside its values {region:?}",
                        info.map_type
                    );
                }
            }
            if i % 2 == 1 {
                let _ = m.delete(&key);
            }
        }
        let mut next = vec![0u8; info.key_size as usize];
        let _ = m.get_next_key(None, &mut next);
        match info.map_type {
            BPF_MAP_TYPE_RINGBUF => {
                let _ = m.ringbuf_output(&[&seed[..seed.len().min(64)]]);
                let _ = m.ringbuf_consume(64, |_| {});
                let _ = m.ringbuf_avail();
            }
            BPF_MAP_TYPE_PERF_EVENT_ARRAY => {
                for idx in 0..info.max_entries.min(4) {
                    let _ = m.perf_consume(idx, 64, |_| {});
                    let _ = m.perf_lost(idx);
                }
            }
            _ => {}
        }
    }
    for p in s.programs() {
        let _ = s.program_by_id(p.id);
        let _ = s.program_insns(p.id);
    }
    for b in s.btf_ids() {
        let _ = s.btf_data(b);
    }
    // Each lookup by path walks the whole table: two of them are enough.
    for (path, _) in s.pins().into_iter().take(2) {
        let _ = s.pinned(&path);
        let _ = s.map_by_pin(&path);
    }
    // The allocation paths (the shared cursor, id counters, free slots).
    let _ = s.create_map(&def(BPF_MAP_TYPE_HASH, 4, 8, 4, 0));
    let _ = s.register_btf(&[0x9f, 0xeb, 1, 0, 24, 0, 0, 0]);
    let _ = s.register_program(&ProgramDef {
        name: "q".into(),
        prog_type: 6,
        insns: vec![0x95, 0, 0, 0, 0, 0, 0, 0],
        ..ProgramDef::default()
    });
    let _ = s.pin("/sys/fs/bpf/new", Pinned::Map(word(0) % 20));
    let _ = s.unpin("/sys/fs/bpf/m2");
    let _ = s.remove_program(word(1) % 4);
    let _ = s.remove_map(word(2) % 20);
    let _ = s.repair();
    let _ = s.check();
}

fuzz_target!(|data: &[u8]| {
    let t = template();
    let mut input = data;
    let Some(&[count]) = take(&mut input, 1) else {
        return;
    };
    let mut bytes = t.bytes.clone();
    for _ in 0..(count % 4 + 1) {
        let Some(&[r, o0, o1, o2, o3, l]) =
            take(&mut input, 6).map(|s| <&[u8; 6]>::try_from(s).unwrap())
        else {
            break;
        };
        let (start, len) = region(t, r);
        let off = start + (u32::from_le_bytes([o0, o1, o2, o3]) as usize % len.max(1));
        let n = (usize::from(l) % 64 + 1).min(input.len());
        let Some(patch) = take(&mut input, n) else {
            break;
        };
        let end = (off + patch.len()).min(bytes.len());
        bytes[off..end].copy_from_slice(&patch[..end - off]);
    }
    let access = StoreAccess {
        dir: Some(t.dir.clone()),
        ..StoreAccess::default()
    };
    let path = access.path_of("s");
    {
        use std::os::unix::fs::FileExt;
        use std::os::unix::fs::OpenOptionsExt;
        // Overwritten in place: the file keeps its (reserved) pages.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .expect("open the store file");
        f.write_all_at(&bytes, 0).expect("write the store");
        f.set_len(bytes.len() as u64).expect("store length");
    }
    if let Ok(s) = Store::open_with("s", &access) {
        exercise(&s, input);
    }
});
