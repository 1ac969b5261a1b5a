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
