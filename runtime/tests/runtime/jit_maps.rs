//! The JIT's direct map helpers: `bpf_map_lookup_elem` / `bpf_map_update_elem` on a
//! constant map handle call their own shim with the map resolved at compile time. They
//! must give exactly the generic helper's results and traps, which the interpreter and
//! the JIT's generic path (r1 not a constant of the block) give.

use isa::opcode::BPF_PSEUDO_MAP_IDX;
use isa::RawInsn;
use runtime::jit::{JitObject, JitOptions};
use runtime::{LoadedObject, Packet, Trap, TrapKind, Vm};

fn raw(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> RawInsn {
    RawInsn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

/// A xorshift64 generator from `seed` (not 0): the tests' random keys and values.
fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// Another writer: inserts (value `value_of(k)`) and deletes keys 100..116 of `map`,
/// 20,000 changes, then raises `done`.
fn churn(map: &maps::Map, value_of: impl Fn(u32) -> u64, done: &std::sync::atomic::AtomicBool) {
    for round in 0..20_000u32 {
        let k = 100 + round % 16;
        if round % 3 == 2 {
            let _ = map.delete(&k.to_ne_bytes());
        } else {
            let _ = map.update(&k.to_ne_bytes(), &value_of(k).to_ne_bytes(), 0);
        }
    }
    done.store(true, std::sync::atomic::Ordering::Release);
}

/// `dst = &map index`.
fn ld_map(dst: u8, index: i32) -> [RawInsn; 2] {
    [
        raw(0x18, dst, BPF_PSEUDO_MAP_IDX, 0, index),
        raw(0, 0, 0, 0, 0),
    ]
}

/// Two slots that put the map in r1: an `ld_imm64` (direct shim) or a copy of r9,
/// which the prologue loaded in another block (generic helper path).
fn r1_map(direct: bool) -> [RawInsn; 2] {
    if direct {
        ld_map(1, 0)
    } else {
        [raw(0xbf, 1, 9, 0, 0), raw(0xb7, 5, 0, 0, 0)]
    }
}

/// Runs `build(direct)` for both paths in the JIT and in the interpreter, on the hash
/// map of xdp_counter.o (u32 → u32, the only map: index 0), each run on fresh maps.
/// All four results must agree; returns it.
fn all_paths(build: &dyn Fn(bool) -> Vec<RawInsn>) -> Result<u64, Trap> {
    let object = bpf_progs::object("xdp_counter");
    let bytes = std::fs::read(&object).unwrap();
    let obj = loader::Object::parse(&bytes).unwrap();
    let mut results = Vec::new();
    // One worker for every run: a trap's address on the stack is then the same.
    let mut vm = Vm::new(0);
    for direct in [true, false] {
        for jit in [true, false] {
            let store = maps::Store::anonymous(maps::StoreOptions::default()).unwrap();
            let loaded = LoadedObject::load(&obj, &store).unwrap();
            assert_eq!(loaded.maps.get(0).unwrap().name, "counter_map");
            let insns = build(direct);
            let prepared =
                runtime::program::prepare("p", "xdp", &insns, &[], &loaded.maps).unwrap();
            let custom = LoadedObject {
                maps: loaded.maps,
                programs: vec![prepared],
                rejected: Vec::new(),
                all_programs: Vec::new(),
            };
            let mut pkt = Packet::new(&[0u8; 64]).unwrap();
            let r = if jit {
                JitObject::compile(&custom, &JitOptions::default())
                    .unwrap()
                    .run(&mut vm, 0, &mut pkt)
            } else {
                custom.run(&mut vm, 0, &mut pkt)
            };
            results.push(((direct, jit), r));
        }
    }
    let first = results[0].1;
    for (which, r) in &results {
        assert_eq!(
            *r, first,
            "(direct, jit) = {which:?} differs from the others"
        );
    }
    first
}

/// Prologue: r9 = the map (slots 0-1).
fn prologue() -> Vec<RawInsn> {
    ld_map(9, 0).to_vec()
}

#[test]
fn direct_map_helpers_give_the_helpers_results() {
    // key 7: insert 5 (NOEXIST: 0), insert again (NOEXIST: -EEXIST), overwrite with 9
    // (EXIST: 0), then look it up and read the value. r0 = value | ret1 << 8 |
    // ret2 << 16 | ret3 << 24 (each return value's low byte).
    let build = |direct: bool| {
        let mut p = prologue();
        p.push(raw(0x62, 10, 0, -4, 7));
        p.push(raw(0x62, 10, 0, -8, 5));
        let update = |p: &mut Vec<RawInsn>, flags: i32, save: u8| {
            p.extend(r1_map(direct));
            p.push(raw(0xbf, 2, 10, 0, 0));
            p.push(raw(0x07, 2, 0, 0, -4));
            p.push(raw(0xbf, 3, 10, 0, 0));
            p.push(raw(0x07, 3, 0, 0, -8));
            p.push(raw(0xb7, 4, 0, 0, flags));
            p.push(raw(0x85, 0, 0, 0, 2));
            p.push(raw(0xbf, save, 0, 0, 0));
        };
        update(&mut p, 1, 6);
        update(&mut p, 1, 7);
        p.push(raw(0x62, 10, 0, -8, 9));
        update(&mut p, 2, 8);
        p.extend(r1_map(direct));
        p.push(raw(0xbf, 2, 10, 0, 0));
        p.push(raw(0x07, 2, 0, 0, -4));
        p.push(raw(0x85, 0, 0, 0, 1));
        p.push(raw(0x15, 0, 0, 11, 0)); // if r0 == 0 goto missing
        p.push(raw(0x61, 0, 0, 0, 0));
        for (r, shift) in [(6u8, 8), (7, 16), (8, 24)] {
            p.push(raw(0x57, r, 0, 0, 0xff));
            p.push(raw(0x67, r, 0, 0, shift));
            p.push(raw(0x4f, 0, r, 0, 0));
        }
        p.push(raw(0x95, 0, 0, 0, 0));
        // missing:
        p.push(raw(0xb7, 0, 0, 0, 0xdead));
        p.push(raw(0x95, 0, 0, 0, 0));
        p
    };
    let eexist = (-libc::EEXIST) as u8 as u64;
    assert_eq!(all_paths(&build), Ok(9 | eexist << 16));
}

#[test]
fn direct_map_helpers_trap_on_bad_pointers_like_the_helpers() {
    // Lookup with the key at r10 (past the stack top): the helper's trap, at the call.
    let lookup = |direct: bool| {
        let mut p = prologue();
        p.extend(r1_map(direct));
        p.push(raw(0xbf, 2, 10, 0, 0));
        p.push(raw(0x85, 0, 0, 0, 1));
        p.push(raw(0x95, 0, 0, 0, 0));
        p
    };
    let r = all_paths(&lookup).unwrap_err();
    assert_eq!(r.pc, 5);
    assert!(
        matches!(
            r.kind,
            TrapKind::HelperBadPointer {
                helper: 1,
                len: 4,
                ..
            }
        ),
        "{r}"
    );
    // Update with a NULL value: the helper's trap names the value.
    let update = |direct: bool| {
        let mut p = prologue();
        p.push(raw(0x62, 10, 0, -4, 7));
        p.extend(r1_map(direct));
        p.push(raw(0xbf, 2, 10, 0, 0));
        p.push(raw(0x07, 2, 0, 0, -4));
        p.push(raw(0xb7, 3, 0, 0, 0));
        p.push(raw(0xb7, 4, 0, 0, 0));
        p.push(raw(0x85, 0, 0, 0, 2));
        p.push(raw(0x95, 0, 0, 0, 0));
        p
    };
    assert_eq!(
        all_paths(&update),
        Err(Trap {
            kind: TrapKind::HelperBadPointer {
                helper: 2,
                addr: 0,
                len: 4
            },
            pc: 9
        })
    );
}

/// An update of an existing key replaces its element, as the kernel's does: a value
/// pointer the program kept from an earlier lookup still reads the old value (the
/// analysis lets the JIT write in place only where no such pointer survives), and a
/// new lookup reads the new one. r0 = old read through the kept pointer | new << 8.
#[test]
fn a_value_pointer_kept_across_an_update_reads_the_old_value() {
    let build = |direct: bool| {
        let mut p = prologue();
        p.push(raw(0x62, 10, 0, -4, 7)); // key 7
        p.push(raw(0x62, 10, 0, -8, 5)); // value 5
        let update = |p: &mut Vec<RawInsn>| {
            p.extend(r1_map(direct));
            p.push(raw(0xbf, 2, 10, 0, 0));
            p.push(raw(0x07, 2, 0, 0, -4));
            p.push(raw(0xbf, 3, 10, 0, 0));
            p.push(raw(0x07, 3, 0, 0, -8));
            p.push(raw(0xb7, 4, 0, 0, 0));
            p.push(raw(0x85, 0, 0, 0, 2));
        };
        let lookup = |p: &mut Vec<RawInsn>| {
            p.extend(r1_map(direct));
            p.push(raw(0xbf, 2, 10, 0, 0));
            p.push(raw(0x07, 2, 0, 0, -4));
            p.push(raw(0x85, 0, 0, 0, 1));
        };
        update(&mut p);
        lookup(&mut p);
        p.push(raw(0xbf, 6, 0, 0, 0)); // r6 = the value pointer
        p.push(raw(0x62, 10, 0, -8, 6)); // value 6
        update(&mut p);
        lookup(&mut p);
        p.push(raw(0x15, 6, 0, 6, 0)); // if r6 == 0 goto missing
        p.push(raw(0x15, 0, 0, 5, 0)); // if r0 == 0 goto missing
        p.push(raw(0x61, 1, 6, 0, 0)); // r1 = *r6: the old value
        p.push(raw(0x61, 0, 0, 0, 0)); // r0 = *r0: the new value
        p.push(raw(0x67, 0, 0, 0, 8));
        p.push(raw(0x4f, 0, 1, 0, 0));
        p.push(raw(0x95, 0, 0, 0, 0));
        // missing:
        p.push(raw(0xb7, 0, 0, 0, 0xdead));
        p.push(raw(0x95, 0, 0, 0, 0));
        p
    };
    assert_eq!(all_paths(&build), Ok(5 | 6 << 8));
}

/// Key sizes of the inline lookup tests: every length of a partial last word, whole
/// words, and the longest key looked up inline.
const KEY_SIZES: [u32; 14] = [1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 16, 20, 40, 64];

/// Bytes of the packet `hash_lookup_program` copies to its key on the stack.
const KEY_COPY: i32 = 64;

/// key = the packet's first key_size bytes (the packet's first `KEY_COPY` bytes
/// copied to the stack); r0 = the value's first 8 bytes (the run's worker's slot), 0
/// on a miss (every value the tests store is odd).
fn hash_lookup_program() -> Vec<RawInsn> {
    let mut insns = vec![
        raw(0x61, 6, 1, 0, 0),                       // r6 = data
        raw(0x61, 7, 1, 4, 0),                       // r7 = data_end
        raw(0xbf, 8, 6, 0, 0),                       // r8 = data
        raw(0x07, 8, 0, 0, KEY_COPY),                // r8 += KEY_COPY
        raw(0x2d, 8, 7, 8 + KEY_COPY as i16 / 4, 0), // if r8 > r7 goto miss
    ];
    for i in 0..KEY_COPY as i16 / 8 {
        insns.push(raw(0x79, 3, 6, 8 * i, 0)); // r3 = *(u64 *)(data + 8i)
        insns.push(raw(0x7b, 10, 3, 8 * i - KEY_COPY as i16, 0));
    }
    insns.extend(ld_map(1, 0));
    insns.extend([
        raw(0xbf, 2, 10, 0, 0),
        raw(0x07, 2, 0, 0, -KEY_COPY),
        raw(0x85, 0, 0, 0, 1),
        raw(0x15, 0, 0, 2, 0), // if r0 == 0 goto miss
        raw(0x79, 0, 0, 0, 0),
        raw(0x95, 0, 0, 0, 0),
        raw(0xb7, 0, 0, 0, 0), // miss:
        raw(0x95, 0, 0, 0, 0),
    ]);
    insns
}

/// xdp_counter.o with its one map made a `map_type` with `map_flags`, `key_size`-byte
/// keys, 8-byte values and `max_entries`, and the program `insns` in place of its own.
fn hash_object(
    store: &maps::Store,
    map_type: u32,
    map_flags: u32,
    key_size: u32,
    max_entries: u32,
    insns: &[RawInsn],
) -> LoadedObject {
    hash_object_sized(
        store,
        map_type,
        map_flags,
        (key_size, 8),
        max_entries,
        insns,
    )
}

/// `hash_object` with `(key_size, value_size)`.
fn hash_object_sized(
    store: &maps::Store,
    map_type: u32,
    map_flags: u32,
    (key_size, value_size): (u32, u32),
    max_entries: u32,
    insns: &[RawInsn],
) -> LoadedObject {
    let bytes = std::fs::read(bpf_progs::object("xdp_counter")).unwrap();
    let mut obj = loader::Object::parse(&bytes).unwrap();
    let spec = &mut obj.maps[0];
    spec.map_type = map_type;
    spec.map_flags = map_flags;
    spec.key_size = key_size;
    spec.value_size = value_size;
    spec.max_entries = max_entries;
    spec.btf_key_type_id = 0;
    spec.btf_value_type_id = 0;
    let loaded = LoadedObject::load(&obj, store).unwrap();
    let prepared = runtime::program::prepare("p", "xdp", insns, &[], &loaded.maps).unwrap();
    LoadedObject {
        maps: loaded.maps,
        programs: vec![prepared],
        rejected: Vec::new(),
        all_programs: Vec::new(),
    }
}

/// The inline hash lookup on a store whose chains another process corrupted: every
/// bucket head, and the link of each bucket's first element, in turn set to an index
/// just past the elements, one 2^29 elements past them (a wild address were it not
/// checked), a free-list, nulls or tag-3 link to a live element, another bucket's
/// nulls marker, and the element itself (a cycle). Every key's JIT lookup must end
/// (no crash, no endless walk) with the interpreter's and `Map::lookup`'s answer:
/// a link out of range is a miss, a free-list link or a foreign end asks the map's
/// own lookup (which gives up after its restarts), a cycle is cut after `nelems`.
/// (Maps of 16 and 4096 entries: as many lock stripes as buckets, and fewer.)
#[test]
fn inline_hash_lookup_survives_corrupt_links() {
    use runtime::maptable::types::HASH;
    use std::sync::atomic::{AtomicU32, Ordering};
    let insns = hash_lookup_program();
    for (key_size, max_entries) in [(2u32, 16), (4, 16), (8, 16), (4, 4096)] {
        let store = maps::Store::anonymous(maps::StoreOptions::default()).unwrap();
        let custom = hash_object(&store, HASH, 0, key_size, max_entries, &insns);
        let jit = JitObject::compile(&custom, &JitOptions::default()).unwrap();
        let map = &custom.maps.get(0).unwrap().map;
        let l = map.hash_layout().expect("inline");
        let key_of = |x: u64| (x * 0x0101_0101 + 3).to_ne_bytes()[..key_size as usize].to_vec();
        for x in 0..12u64 {
            map.update(&key_of(x), &(2 * x + 1).to_ne_bytes(), 0)
                .unwrap();
        }
        let at = |p: *const u8| {
            // SAFETY: every address passed is a 4-aligned u32 inside the map's buckets
            // or its elements (an index below nelems), memory of the store that lives
            // as long as `store`, only ever accessed atomically.
            unsafe { AtomicU32::from_ptr(p as *mut u32) }
        };
        let head = |b: u32| at(l.buckets.wrapping_add(4 * b as usize));
        let next_of = |link: u32| {
            let idx = (link >> 2) - 1;
            assert!(link & 3 == 0 && idx < l.nelems, "a sound link {link:#x}");
            at(l.elems.wrapping_add((idx * l.elem_size) as usize))
        };
        let mut vm = Vm::new(0);
        let mut check = |what: &str| {
            for x in 0..24u64 {
                let key = key_of(x);
                let mut out = [0u8; 8];
                let want = map
                    .lookup(&key, &mut out)
                    .map_or(0, |()| u64::from_ne_bytes(out));
                let mut frame = [0xeeu8; 64];
                frame[..key.len()].copy_from_slice(&key);
                let mut pkt = Packet::new(&frame).unwrap();
                let got = jit.run(&mut vm, 0, &mut pkt).unwrap();
                let mut pkt = Packet::new(&frame).unwrap();
                let interp = custom.run(&mut vm, 0, &mut pkt).unwrap();
                assert_eq!(
                    (got, interp),
                    (want, want),
                    "key size {key_size}, {what}, key {x}"
                );
            }
        };
        check("sound");
        let mut corrupted = 0;
        for b in 0..=l.bucket_mask {
            let first = head(b).load(Ordering::Relaxed);
            if first == 0 || first & 3 != 0 {
                continue;
            }
            let live = first & !3;
            let bad = [
                (l.nelems + 1) << 2,
                ((1 << 29) + 1) << 2,
                live | 1,
                live | 2,
                live | 3,
                maps::HashLayout::nulls(b ^ 1),
            ];
            for (slot, name) in [(head(b), "head"), (next_of(first), "next")] {
                let keep = slot.load(Ordering::Relaxed);
                let cycle = if name == "next" { Some(first) } else { None };
                for v in bad.into_iter().chain(cycle) {
                    slot.store(v, Ordering::Relaxed);
                    check(&format!("bucket {b} {name} {v:#x}"));
                    corrupted += 1;
                }
                slot.store(keep, Ordering::Relaxed);
            }
        }
        assert!(corrupted >= 6 * 2 * 4, "{corrupted} corruptions");
        check("restored");
    }
}

/// The JIT's inline hash lookup (HASH and PERCPU_HASH with keys of 1 to 64 bytes,
/// bucketed by the store's hash or, BPF_F_ZERO_SEED (up to 12 bytes), the kernel's
/// jhash; a map and key the analysis proved) against `Map::lookup` and the
/// interpreter: a map
/// filled to capacity with as many buckets as entries (so chains of several elements:
/// collisions), then entries deleted and other keys inserted into the freed elements,
/// and lookups of present, deleted and never-inserted keys after each change. The
/// bytes after the key are never zero, so a key read past its size is seen.
#[test]
fn inline_hash_lookup_agrees_with_map_lookup() {
    use runtime::maptable::types::{HASH, PERCPU_HASH};
    let insns = hash_lookup_program();
    let mut rand = xorshift(0x9e37_79b9_7f4a_7c15u64);
    let cases = [HASH, PERCPU_HASH].into_iter().flat_map(|t| {
        [0, isa::uapi::BPF_F_ZERO_SEED]
            .into_iter()
            .flat_map(move |flags| KEY_SIZES.into_iter().map(move |k| (t, flags, k)))
    });
    for (map_type, flags, key_size) in cases {
        let store = maps::Store::anonymous(maps::StoreOptions::default()).unwrap();
        let custom = hash_object(&store, map_type, flags, key_size, 64, &insns);
        let jit = JitObject::compile(&custom, &JitOptions::default()).unwrap();
        let map = &custom.maps.get(0).unwrap().map;
        // Inline: every key size up to 64 bytes, up to 12 with BPF_F_ZERO_SEED
        // (jhash's final mix alone).
        let inline = flags == 0 || key_size <= 12;
        assert_eq!(
            map.hash_layout().is_some(),
            inline,
            "type {map_type} flags {flags:#x} key size {key_size}: inline"
        );
        let vlen = map.user_value_size();
        let mut vm = Vm::new(0);
        // Keys from a universe of 160 for a map of 64: hits and misses both. Every
        // byte of a key varies with x.
        let key_of = |x: u64| -> Vec<u8> {
            let word = |i: u64| {
                let mut k = (x + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i;
                k ^= k >> 29;
                k = k.wrapping_mul(0xbf58_476d_1ce4_e5b9);
                k ^ (k >> 32)
            };
            let bytes: Vec<u8> = (0..8).flat_map(|i| word(i).to_ne_bytes()).collect();
            bytes[..key_size as usize].to_vec()
        };
        let check_all = |vm: &mut Vm| {
            for x in 0..160u64 {
                let key = key_of(x);
                let mut out = vec![0u8; vlen];
                let want = match map.lookup(&key, &mut out) {
                    Ok(()) => u64::from_ne_bytes(out[..8].try_into().unwrap()),
                    Err(_) => 0,
                };
                let mut frame = [0xeeu8; 64];
                frame[..key.len()].copy_from_slice(&key);
                let mut pkt = Packet::new(&frame).unwrap();
                let got = jit.run(vm, 0, &mut pkt).unwrap();
                let mut pkt = Packet::new(&frame).unwrap();
                let interp = custom.run(vm, 0, &mut pkt).unwrap();
                assert_eq!(
                    (got, interp),
                    (want, want),
                    "type {map_type}, flags {flags:#x}, key size {key_size}, key {x}"
                );
            }
        };
        let value = |rand: &mut dyn FnMut() -> u64| -> Vec<u8> {
            (0..vlen / 8)
                .flat_map(|_| (rand() | 1).to_ne_bytes())
                .collect()
        };
        // Fill to capacity (E2BIG once full).
        for x in 0..160u64 {
            let _ = map.update(&key_of(x), &value(&mut rand), 0);
        }
        assert_eq!(map.len(), 64);
        check_all(&mut vm);
        for _round in 0..4 {
            for _ in 0..24 {
                let _ = map.delete(&key_of(rand() % 160));
            }
            check_all(&mut vm);
            for _ in 0..24 {
                let _ = map.update(&key_of(rand() % 160), &value(&mut rand), 0);
            }
            check_all(&mut vm);
        }
    }
}

/// The inline hash lookup while another thread inserts and deletes keys in the same
/// buckets: keys never deleted are always found with their value (a walk that raced
/// with a change restarts in the map's own lookup, never misses), and keys that come
/// and go are either missing or have their one value.
#[test]
fn inline_hash_lookup_under_concurrent_changes() {
    use runtime::maptable::types::HASH;
    let insns = hash_lookup_program();
    let bytes = std::fs::read(bpf_progs::object("xdp_counter")).unwrap();
    let mut obj = loader::Object::parse(&bytes).unwrap();
    let spec = &mut obj.maps[0];
    spec.map_type = HASH;
    spec.value_size = 8;
    spec.max_entries = 32;
    spec.btf_key_type_id = 0;
    spec.btf_value_type_id = 0;
    let store = maps::Store::anonymous(maps::StoreOptions::default()).unwrap();
    let loaded = LoadedObject::load(&obj, &store).unwrap();
    let prepared = runtime::program::prepare("p", "xdp", &insns, &[], &loaded.maps).unwrap();
    let custom = LoadedObject {
        maps: loaded.maps,
        programs: vec![prepared],
        rejected: Vec::new(),
        all_programs: Vec::new(),
    };
    let jit = JitObject::compile(&custom, &JitOptions::default()).unwrap();
    let map = &custom.maps.get(0).unwrap().map;
    let value_of = |k: u32| u64::from(k) * 2 + 1;
    for k in 0..16u32 {
        map.update(&k.to_ne_bytes(), &value_of(k).to_ne_bytes(), 0)
            .unwrap();
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|sc| {
        sc.spawn(|| churn(map, value_of, &done));
        let mut vm = Vm::new(0);
        let mut frame = [0u8; 64];
        let mut i = 0u32;
        while !done.load(std::sync::atomic::Ordering::Acquire) || i < 1000 {
            let k = if i.is_multiple_of(2) {
                i / 2 % 16
            } else {
                100 + i / 2 % 16
            };
            frame[..4].copy_from_slice(&k.to_ne_bytes());
            let mut pkt = Packet::new(&frame).unwrap();
            let got = jit.run(&mut vm, 0, &mut pkt).unwrap();
            if k < 16 {
                assert_eq!(got, value_of(k), "stable key {k} (lookup {i})");
            } else {
                assert!(got == 0 || got == value_of(k), "key {k}: {got}");
            }
            i += 1;
        }
    });
}

/// `bpf_map_update_elem(map, key, value, flags)` with the key the frame's first 8
/// bytes (its first key_size bytes count), the value the next 8 and the flags the
/// byte after them; r0 = the update's return value (77 for a frame under 24 bytes).
fn hash_update_program() -> Vec<RawInsn> {
    let mut insns = vec![
        raw(0x61, 6, 1, 0, 0),    // r6 = data
        raw(0x61, 7, 1, 4, 0),    // r7 = data_end
        raw(0xbf, 8, 6, 0, 0),    // r8 = data
        raw(0x07, 8, 0, 0, 24),   // r8 += 24
        raw(0x2d, 8, 7, 13, 0),   // if r8 > r7 goto short
        raw(0x79, 3, 6, 0, 0),    // r3 = *(u64 *)(data + 0)
        raw(0x7b, 10, 3, -8, 0),  // key
        raw(0x79, 3, 6, 8, 0),    // r3 = *(u64 *)(data + 8)
        raw(0x7b, 10, 3, -16, 0), // value
        raw(0x71, 4, 6, 16, 0),   // r4 = *(u8 *)(data + 16): flags
    ];
    insns.extend(ld_map(1, 0));
    insns.extend([
        raw(0xbf, 2, 10, 0, 0),
        raw(0x07, 2, 0, 0, -8),
        raw(0xbf, 3, 10, 0, 0),
        raw(0x07, 3, 0, 0, -16),
        raw(0x85, 0, 0, 0, 2),
        raw(0x95, 0, 0, 0, 0),
        raw(0xb7, 0, 0, 0, 77), // short:
        raw(0x95, 0, 0, 0, 0),
    ]);
    insns
}

/// The JIT's inline in-place update (HASH with 4- and 8-byte values, PERCPU_HASH,
/// 4- and 8-byte keys: `maps::HashUpdateLayout`) against the interpreter on a store
/// of its own, run for run: the same random updates (keys from a universe of 160 for
/// a map of 64 with as many buckets as entries, so chains; values random; flags
/// BPF_ANY, BPF_NOEXIST, BPF_EXIST and an invalid 4), with deletes between rounds;
/// every return value and, after each round, every key's value (each worker's slot)
/// must be equal. Then the same with every stripe lock held by a writer that died:
/// the inline path must leave the update to the map's own, which takes the lock over.
#[test]
fn inline_hash_update_agrees_with_the_interpreter() {
    use runtime::maptable::types::{HASH, PERCPU_HASH};
    const DEAD: u32 = (1 << 22) + 17;
    let insns = hash_update_program();
    let mut rand = xorshift(0x2545_f491_4f6c_dd1du64);
    for (map_type, key_size, value_size) in [
        (HASH, 4, 4),
        (HASH, 4, 8),
        (HASH, 8, 8),
        (PERCPU_HASH, 4, 4),
        (PERCPU_HASH, 8, 8),
    ] {
        let what = format!("type {map_type}, key {key_size}, value {value_size}");
        let opts = maps::StoreOptions {
            ncpus: Some(2),
            ..maps::StoreOptions::default()
        };
        let (sa, sb) = (
            maps::Store::anonymous(opts.clone()).unwrap(),
            maps::Store::anonymous(opts).unwrap(),
        );
        let sizes = (key_size, value_size);
        let a = hash_object_sized(&sa, map_type, 0, sizes, 64, &insns);
        let b = hash_object_sized(&sb, map_type, 0, sizes, 64, &insns);
        let jit = JitObject::compile(&a, &JitOptions::default()).unwrap();
        let (ma, mb) = (&a.maps.get(0).unwrap().map, &b.maps.get(0).unwrap().map);
        let key_of = |x: u64| -> [u8; 8] {
            (x.wrapping_mul(0x0100_0000_0100_0001) ^ 0x5a5a_5a5a_a5a5_a5a5).to_ne_bytes()
        };
        let same_maps = |round: &str| {
            for x in 0..160u64 {
                let k = &key_of(x)[..key_size as usize];
                let (mut va, mut vb) = (
                    vec![0u8; ma.user_value_size()],
                    vec![0u8; mb.user_value_size()],
                );
                let (ra, rb) = (ma.lookup(k, &mut va), mb.lookup(k, &mut vb));
                assert_eq!(ra.is_ok(), rb.is_ok(), "{what}, {round}, key {x}");
                assert_eq!(va, vb, "{what}, {round}, key {x}");
            }
            ma.check()
                .unwrap_or_else(|e| panic!("{what}, {round}: {e}"));
        };
        let l = ma.hash_layout().expect("inline");
        // The stripes' lock words.
        let locks = || {
            (0..=l.stripe_mask).map(|st| {
                let p = l
                    .stripes
                    .wrapping_add((st * maps::HashLayout::STRIPE_SIZE) as usize);
                // SAFETY: the lock word of stripe `st` (below stripe_mask + 1), a
                // 4-aligned u32 of the store, which lives as long as `sa`, only ever
                // accessed atomically.
                unsafe { std::sync::atomic::AtomicU32::from_ptr(p as *mut u32) }
            })
        };
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        let hold_every_lock = |pid: u32| locks().for_each(|w| w.store(pid, relaxed));
        let free_stripes = || locks().filter(|w| w.load(relaxed) == 0).count();
        let run = |x: u64, value: u64, flags: u8, cpu: u32| {
            let mut frame = [0u8; 64];
            frame[..8].copy_from_slice(&key_of(x));
            frame[8..16].copy_from_slice(&value.to_ne_bytes());
            frame[16] = flags;
            let got = jit
                .run(&mut Vm::new(cpu), 0, &mut Packet::new(&frame).unwrap())
                .unwrap();
            let want = b
                .run(&mut Vm::new(cpu), 0, &mut Packet::new(&frame).unwrap())
                .unwrap();
            assert_eq!(got, want, "{what}: key {x}, flags {flags}, worker {cpu}");
            got
        };
        for round in 0..6 {
            let mut zeros = 0;
            for i in 0..300 {
                let flags = [0u8, 0, 0, 1, 2, 2, 4][(rand() % 7) as usize];
                zeros += u32::from(run(rand() % 160, rand(), flags, i % 2) == 0);
            }
            assert!(zeros > 60, "{what}: updates succeed ({zeros} of 300)");
            same_maps(&format!("round {round}"));
            for _ in 0..24 {
                let k = key_of(rand() % 160);
                let k = &k[..key_size as usize];
                assert_eq!(ma.delete(k).is_ok(), mb.delete(k).is_ok(), "{what}");
            }
            same_maps(&format!("round {round}, deletes"));
        }
        // Every lock held by a writer that died: an existing key's update must not
        // go ahead inline; the map's own update takes its stripe's lock over (and
        // releases it: exactly that one stripe is free after).
        let present: Vec<u64> = (0..160u64)
            .filter(|&x| {
                let mut v = vec![0u8; mb.user_value_size()];
                mb.lookup(&key_of(x)[..key_size as usize], &mut v).is_ok()
            })
            .take(8)
            .collect();
        assert!(!present.is_empty(), "{what}");
        for x in present {
            hold_every_lock(DEAD);
            assert_eq!(run(x, rand(), 0, 1), 0, "{what}: key {x}");
            assert_eq!(
                free_stripes(),
                1,
                "{what}: key {x}: the one lock taken over"
            );
        }
        hold_every_lock(0);
        ma.repair().expect("repair");
        same_maps("dead locks");
    }
}

/// The inline in-place update while another thread inserts and deletes keys in the
/// same buckets (a map of 32 with 32 buckets): every update of a key that is never
/// deleted finds it (BPF_EXIST gives 0), the last value written is the one the map
/// holds, and the chains stay sound.
#[test]
fn inline_hash_update_under_concurrent_changes() {
    use runtime::maptable::types::HASH;
    let insns = hash_update_program();
    let store = maps::Store::anonymous(maps::StoreOptions::default()).unwrap();
    let custom = hash_object_sized(&store, HASH, 0, (4, 8), 32, &insns);
    let jit = JitObject::compile(&custom, &JitOptions::default()).unwrap();
    let map = &custom.maps.get(0).unwrap().map;
    assert!(map.hash_update_layout(true).is_some(), "inline");
    for k in 0..16u32 {
        map.update(&k.to_ne_bytes(), &0u64.to_ne_bytes(), 0)
            .unwrap();
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut last = [0u64; 16];
    std::thread::scope(|sc| {
        sc.spawn(|| churn(map, u64::from, &done));
        let mut vm = Vm::new(0);
        let mut i = 0u64;
        while !done.load(std::sync::atomic::Ordering::Acquire) || i < 2000 {
            let k = (i % 16) as u32;
            let mut frame = [0u8; 64];
            frame[..4].copy_from_slice(&k.to_ne_bytes());
            frame[8..16].copy_from_slice(&(i + 1).to_ne_bytes());
            frame[16] = 2; // BPF_EXIST
            let r = jit.run(&mut vm, 0, &mut Packet::new(&frame).unwrap());
            assert_eq!(r, Ok(0), "update {i} of key {k}");
            last[k as usize] = i + 1;
            i += 1;
        }
    });
    for (k, &want) in last.iter().enumerate() {
        let mut out = [0u8; 8];
        map.lookup(&(k as u32).to_ne_bytes(), &mut out).unwrap();
        assert_eq!(u64::from_ne_bytes(out), want, "key {k}");
    }
    map.check().expect("sound chains");
}
