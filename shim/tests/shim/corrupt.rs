//! Stores whose records were changed behind the runtime's back (the file
//! written directly): bpftool under the shim and the shim's own checks must
//! give a clear error, never follow a bad type id, size or count into a
//! crash. Each case builds a small store (a BTF object, a hash map described
//! by it, an XDP program), corrupts one record in the file, then runs
//! `bpftool map show`, `map dump`, `prog show`, `prog dump xlated` and
//! `btf dump` under the shim.

use std::process::{Command, Output};

use super::{shim_so, TestStore};

/// `[1] int (4 bytes)`, `[2] typedef val -> 1`; strings "\0int\0val\0".
fn btf() -> Vec<u8> {
    let types: [u32; 7] = [1, 1 << 24, 4, 32, 5, 8 << 24, 1];
    let strings = b"\0int\0val\0";
    let mut out = Vec::new();
    let tlen = (types.len() * 4) as u32;
    for w in [0x0001_eb9fu32, 24, 0, tlen, tlen, strings.len() as u32] {
        out.extend_from_slice(&w.to_ne_bytes());
    }
    for w in types {
        out.extend_from_slice(&w.to_ne_bytes());
    }
    out.extend_from_slice(strings);
    out
}

/// The ids the store was built with.
struct Built {
    btf: u32,
    map: u32,
    prog: u32,
}

fn build(store: &TestStore) -> Built {
    let s = maps::Store::open_or_create(&store.0, maps::StoreOptions::default()).expect("store");
    let btf = s.register_btf(&btf()).expect("btf");
    let m = s
        .create_map(&maps::MapDef {
            map_type: maps::BPF_MAP_TYPE_HASH,
            key_size: 4,
            value_size: 4,
            max_entries: 4,
            name: "corrupt_map".into(),
            btf_key_type_id: 1,
            btf_value_type_id: 2,
            btf_id: btf,
            ..maps::MapDef::default()
        })
        .expect("map");
    m.update(&1u32.to_ne_bytes(), &7u32.to_ne_bytes(), 0)
        .expect("update");
    // r0 = XDP_PASS; exit
    let insns = vec![0xb7, 0, 0, 0, 2, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let prog = s
        .register_program(&maps::ProgramDef {
            name: "corrupt_prog".into(),
            prog_type: 6,
            tag: [1; 8],
            insns,
            map_ids: vec![m.id()],
            btf_id: btf,
            gpl_compatible: true,
            uid: 0,
            expected_attach_type: 0,
            prog_flags: 0,
            holder_pid: 0,
        })
        .expect("program");
    Built {
        btf,
        map: m.id(),
        prog,
    }
}

/// Overwrites 4 bytes at `delta` from the only occurrence of `anchor` in the
/// store file.
fn patch(store: &TestStore, anchor: &[u8], delta: isize, value: u32) {
    let path = format!("/dev/shm/{}", store.0);
    let mut data = std::fs::read(&path).expect("read store");
    let hits: Vec<usize> = data
        .windows(anchor.len())
        .enumerate()
        .filter(|(_, w)| *w == anchor)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "{:?} in the store",
        String::from_utf8_lossy(anchor)
    );
    let at = (hits[0] as isize + delta) as usize;
    data[at..at + 4].copy_from_slice(&value.to_ne_bytes());
    std::fs::write(&path, data).expect("write store");
}

fn bpftool(store: &TestStore, args: &[String]) -> Output {
    Command::new("bpftool")
        .args(args)
        .env("LD_PRELOAD", shim_so())
        .env("XDPSHIM_STORE", &store.0)
        .env("XDPSHIM_LOG", "1")
        .output()
        .expect("run bpftool")
}

/// Runs every listing and dump of the built objects; each must end without
/// a signal, and at least one must name the corruption (`expect`, the shim's
/// log line) on stderr.
fn run_all(what: &str, store: &TestStore, b: &Built, expect: &str) {
    let cmds = [
        "map show".to_string(),
        format!("map dump id {}", b.map),
        "prog show".to_string(),
        format!("prog dump xlated id {}", b.prog),
        format!("btf dump id {}", b.btf),
        "btf show".to_string(),
    ];
    let mut named = false;
    for c in &cmds {
        let args: Vec<String> = c.split(' ').map(String::from).collect();
        let out = bpftool(store, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code().is_some(),
            "{what}: `bpftool {c}` died: {}\n--- stdout\n{}--- stderr\n{stderr}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
        named |= stderr.contains(expect);
    }
    assert!(named, "{what}: no command reported {expect:?}");
}

fn have_bpftool() -> bool {
    let ok = Command::new("bpftool").arg("version").output().is_ok();
    if !ok {
        println!("SKIP: bpftool not found");
    }
    ok
}

#[test]
fn a_map_type_id_beyond_its_btf_is_refused() {
    let store = TestStore::new("corrupt-map");
    let b = build(&store);
    // MapEntry: btf_value_type_id lies 12 bytes before the name.
    patch(&store, b"corrupt_map\0", -12, 999);
    let s = maps::Store::open(&store.0).expect("open");
    assert_eq!(
        xdpshim::checked::map(&s, b.map).err(),
        Some(libc::EUCLEAN),
        "in process"
    );
    if have_bpftool() {
        let msg = format!("store corrupt: map {}: value type 999", b.map);
        run_all("map record", &store, &b, &msg);
    }
}

#[test]
fn a_btf_reference_beyond_the_last_type_is_refused() {
    let store = TestStore::new("corrupt-btf");
    let b = build(&store);
    // The typedef `val` (its name_off 5, info, type 1) now names type 77.
    let mut anchor = Vec::new();
    for w in [5u32, 8 << 24, 1] {
        anchor.extend_from_slice(&w.to_ne_bytes());
    }
    patch(&store, &anchor, 8, 77);
    let s = maps::Store::open(&store.0).expect("open");
    assert_eq!(
        xdpshim::checked::btf_data(&s, b.btf).err(),
        Some(libc::EUCLEAN)
    );
    assert_eq!(xdpshim::checked::map(&s, b.map).err(), Some(libc::EUCLEAN));
    assert_eq!(
        xdpshim::checked::program(&s, b.prog).err(),
        Some(libc::EUCLEAN)
    );
    if have_bpftool() {
        let msg = format!("store corrupt: BTF {}: type 2 refers to type 77", b.btf);
        run_all("BTF record", &store, &b, &msg);
    }
}

#[test]
fn a_program_longer_than_its_instructions_is_refused() {
    for (count, why) in [
        (1000u32, "1000 instructions recorded"),
        (0x2000_0001, "536870913 instructions"),
    ] {
        let store = TestStore::new("corrupt-prog");
        let b = build(&store);
        // Program entry: the instruction count (word 3) lies 16 bytes before the name.
        patch(&store, b"corrupt_prog\0", -16, count);
        let s = maps::Store::open(&store.0).expect("open");
        assert_eq!(
            xdpshim::checked::program(&s, b.prog).err(),
            Some(libc::EUCLEAN),
            "{count}"
        );
        if have_bpftool() {
            let msg = format!("store corrupt: program {}: {why}", b.prog);
            run_all("program record", &store, &b, &msg);
        }
    }
}
