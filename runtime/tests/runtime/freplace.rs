//! Function replacement (freplace): a program recorded in the store whose
//! global function has a replacement link runs the extension program, with its
//! own maps, on the same context, in both engines; the call returns the
//! extension's r0.

use isa::RawInsn;
use runtime::jit::{JitObject, JitOptions};
use runtime::{LoadedObject, Packet, Vm};

use super::raw;

const MOV64_K: u8 = 0xb7;
const MOV64_X: u8 = 0xbf;
const SUB64_X: u8 = 0x1f;
const LDXW: u8 = 0x61;
const STXDW: u8 = 0x7b;
const STW: u8 = 0x62;
const ADD64_K: u8 = 0x07;
const JEQ_K: u8 = 0x15;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;
const LDDW: u8 = 0x18;

fn bytes(insns: &[RawInsn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_bytes()).collect()
}

fn array(store: &maps::Store, name: &str) -> maps::Map {
    store
        .create_map(&maps::MapDef {
            map_type: runtime::maptable::types::ARRAY,
            key_size: 4,
            value_size: 8,
            max_entries: 1,
            name: name.into(),
            ..maps::MapDef::default()
        })
        .expect("array")
}

/// Stores `value` (a register) at key 0 of the program's map 0.
fn store_in_map0(value: u8) -> Vec<RawInsn> {
    vec![
        raw(STW, 10, 0, -4, 0),
        raw(MOV64_X, 2, 10, 0, 0),
        raw(ADD64_K, 2, 0, 0, -4),
        raw(LDDW, 1, 5, 0, 0), // BPF_PSEUDO_MAP_IDX 0
        raw(0, 0, 0, 0, 0),
        raw(CALL, 0, 0, 0, 1), // map_lookup_elem
        raw(JEQ_K, 0, 0, 1, 0),
        raw(STXDW, 0, value, 0, 0),
    ]
}

/// The target: the entry calls global function `f` (slot 4), which returns
/// XDP_DROP after counting in its own map; the entry returns what `f` returns.
fn target() -> (Vec<RawInsn>, usize) {
    let mut v = vec![
        raw(MOV64_X, 6, 1, 0, 0),
        raw(CALL, 0, 1, 0, 2), // BPF_PSEUDO_CALL to slot 3
        raw(EXIT, 0, 0, 0, 0),
    ];
    let f = v.len();
    v[1].imm = (f - 2) as i32;
    v.push(raw(MOV64_K, 7, 0, 0, 1));
    v.extend(store_in_map0(7));
    v.push(raw(MOV64_K, 0, 0, 0, 1));
    v.push(raw(EXIT, 0, 0, 0, 0));
    (v, f)
}

/// The extension: stores the frame's length (from the context it is given) in
/// its own map and returns XDP_TX.
fn extension() -> Vec<RawInsn> {
    let mut v = vec![
        raw(LDXW, 7, 1, 4, 0), // data_end
        raw(LDXW, 8, 1, 0, 0), // data
        raw(SUB64_X, 7, 8, 0, 0),
    ];
    v.extend(store_in_map0(7));
    v.push(raw(MOV64_K, 0, 0, 0, 3));
    v.push(raw(EXIT, 0, 0, 0, 0));
    v
}

fn run_both(store: &maps::Store, id: u32, frame: &[u8]) -> (u64, u64) {
    let (object, entry) = LoadedObject::from_store(store, id).expect("from_store");
    let mut vm = Vm::new(0);
    let mut pkt = Packet::new(frame).expect("packet");
    let interp = object.run(&mut vm, entry, &mut pkt).expect("interpreter");
    let jit = JitObject::compile(&object, &JitOptions::default()).expect("JIT");
    pkt.reset(frame).expect("reset");
    let jitted = jit.run(&mut vm, entry, &mut pkt).expect("JIT run");
    (interp, jitted)
}

fn refused(store: &maps::Store, id: u32) -> runtime::LoadError {
    match LoadedObject::from_store(store, id) {
        Ok(_) => panic!("program {id} was built"),
        Err(e) => e,
    }
}

fn value(m: &maps::Map) -> u64 {
    let mut v = [0u8; 8];
    m.lookup(&0u32.to_ne_bytes(), &mut v).expect("lookup");
    u64::from_ne_bytes(v)
}

#[test]
fn a_replaced_function_runs_the_extension_with_its_maps() {
    let store = maps::Store::anonymous(maps::StoreOptions {
        size: 4 << 20,
        ncpus: Some(1),
    })
    .expect("store");
    let (tmap, emap) = (array(&store, "target_map"), array(&store, "ext_map"));
    let (t, f) = target();
    let def = |name: &str, prog_type, insns: &[RawInsn], map: &maps::Map| maps::ProgramDef {
        name: name.into(),
        prog_type,
        insns: bytes(insns),
        map_ids: vec![map.id()],
        holder_pid: 1,
        ..maps::ProgramDef::default()
    };
    let tid =
        runtime::stored::register(&store, &def("target", 6, &t, &tmap), false).expect("target");
    let eid = runtime::stored::register(&store, &def("ext", 28, &extension(), &emap), false)
        .expect("extension");
    let frame = [0xabu8; 60];

    // Before the link: the function itself.
    assert_eq!(run_both(&store, tid, &frame), (1, 1));
    assert_eq!(value(&tmap), 1);
    assert_eq!(value(&emap), 0);

    let link = store
        .add_replacement(&maps::Replacement {
            link_id: 0,
            target: tid,
            func_start: f as u32,
            btf_id: 0,
            ext: eid,
            holder_pid: 1,
        })
        .expect("link");
    tmap.update(&0u32.to_ne_bytes(), &0u64.to_ne_bytes(), 0)
        .expect("reset");
    assert_eq!(run_both(&store, tid, &frame), (3, 3), "the extension's r0");
    assert_eq!(
        value(&emap),
        frame.len() as u64,
        "the extension's map, same context"
    );
    assert_eq!(value(&tmap), 0, "the replaced body did not run");

    // The link released: the function again.
    store.remove_replacement(link).expect("remove");
    assert_eq!(run_both(&store, tid, &frame), (1, 1));
}

#[test]
fn an_extension_can_replace_the_entry_and_a_non_extension_is_refused() {
    let store = maps::Store::anonymous(maps::StoreOptions {
        size: 4 << 20,
        ncpus: Some(1),
    })
    .expect("store");
    let (m, emap) = (array(&store, "m"), array(&store, "ext_map"));
    let (t, _) = target();
    let def = |prog_type, insns: &[RawInsn], map: &maps::Map| maps::ProgramDef {
        name: "p".into(),
        prog_type,
        insns: bytes(insns),
        map_ids: vec![map.id()],
        ..maps::ProgramDef::default()
    };
    let tid = runtime::stored::register(&store, &def(6, &t, &m), false).expect("target");
    let xdp = runtime::stored::register(&store, &def(6, &extension(), &emap), false).expect("xdp");
    let ext = runtime::stored::register(&store, &def(28, &extension(), &emap), false).expect("ext");
    let link = |func_start, ext| maps::Replacement {
        link_id: 0,
        target: tid,
        func_start,
        btf_id: 0,
        ext,
        holder_pid: 0,
    };
    let l = store.add_replacement(&link(3, xdp)).expect("link");
    let e = refused(&store, tid);
    assert!(e.to_string().contains("not an extension"), "{e}");
    store.remove_replacement(l).expect("remove");
    let l = store.add_replacement(&link(1, ext)).expect("link");
    let e = refused(&store, tid);
    assert!(e.to_string().contains("does not start a function"), "{e}");
    store.remove_replacement(l).expect("remove");

    // libxdp's compatibility check replaces a program's entry function.
    store.add_replacement(&link(0, ext)).expect("link");
    let frame = [0u8; 42];
    assert_eq!(run_both(&store, tid, &frame), (3, 3));
    assert_eq!(value(&emap), 42);
    assert_eq!(value(&m), 0, "the target did not run");
}
