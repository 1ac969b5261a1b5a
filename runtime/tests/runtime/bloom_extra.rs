//! A bloom filter's hash count is the object's (`__uint(map_extra, N)` of a BTF map
//! definition): `bpf-progs/src-c/xdp_bloom_extra.c` (1, 15 and the default 5 hashes)
//! in both engines against the kernel (or its recorded answers).

use bpf_progs::Cpu;

use super::jit::Engine;

#[test]
fn bloom_filter_hash_count_comes_from_the_object() {
    let bytes = std::fs::read(bpf_progs::object("xdp_bloom_extra")).expect("object");
    let object = loader::Object::parse(&bytes).expect("parse");
    let extra = |name: &str| {
        object
            .maps
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.map_extra)
    };
    assert_eq!(
        (extra("bloom1"), extra("bloom15"), extra("bloom5")),
        (Some(1), Some(15), Some(0))
    );
    let store = maps::Store::anonymous(maps::StoreOptions::default()).expect("store");
    let loaded = runtime::LoadedObject::load(&object, &store).expect("load");
    let stored = |name: &str| {
        loaded
            .maps
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.map.map_extra())
    };
    assert_eq!((stored("bloom1"), stored("bloom15")), (Some(1), Some(15)));

    let cases: Vec<bpf_progs::Case> = bpf_progs::cases()
        .iter()
        .filter(|c| c.object == "xdp_bloom_extra")
        .cloned()
        .collect();
    assert!(!cases.is_empty());
    let failures = super::compare_cases(&cases, Cpu::V2, &[Engine::Interpreter, Engine::Jit]);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
