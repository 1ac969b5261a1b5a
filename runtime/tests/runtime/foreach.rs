//! bpf_for_each_map_elem (`bpf-progs/src-c/xdp_foreach.c`) in both engines against
//! the kernel (or its recorded answers): arrays, per-CPU arrays, hashes, per-CPU
//! hashes and LRU hashes; early stops, a callback deleting the element it was given,
//! values written by the callback, flags 1. The hostile cases (the key is read-only,
//! the callback must be a subprogram) are in `bpf_progs::hostile`.

use bpf_progs::Cpu;

use super::jit::{run_engine, Engine};

fn slot(out: &super::Outcome, i: u32) -> u64 {
    let (_, v) = out.maps["results"]
        .iter()
        .find(|(k, _)| k.as_slice() == i.to_ne_bytes())
        .unwrap_or_else(|| panic!("no slot {i}"));
    u64::from_ne_bytes(v[0].as_slice().try_into().expect("u64 value"))
}

#[test]
fn for_each_map_elem_matches_the_kernel() {
    let cases: Vec<bpf_progs::Case> = bpf_progs::cases()
        .iter()
        .filter(|c| c.object == "xdp_foreach")
        .cloned()
        .collect();
    assert!(!cases.is_empty());
    let failures = super::compare_cases(&cases, Cpu::V2, &[Engine::Interpreter, Engine::Jit]);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn for_each_map_elem_counts_stops_and_deletes() {
    let object = bpf_progs::object("xdp_foreach");
    let data = std::fs::read(bpf_progs::packet("udp.bin")).expect("packet");
    let w: Vec<u64> = (0..8)
        .map(|i| u32::from_ne_bytes(data[14 + 4 * i..18 + 4 * i].try_into().unwrap()) as u64)
        .collect();
    for engine in [Engine::Interpreter, Engine::Jit] {
        let name = engine.name();
        let out = run_engine(engine, &object, "xdp_foreach", &data, 1, &[], &[])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // The whole array: 8 calls, keys 0..8 and values w[i] + i.
        let sum: u64 = (0..8u64).map(|i| (i << 32) + w[i as usize] + i).sum();
        assert_eq!(
            (slot(&out, 0), slot(&out, 1), slot(&out, 2)),
            (8, sum, 8),
            "{name}"
        );
        // Stopped at index 3: 4 calls.
        assert_eq!((slot(&out, 3), slot(&out, 5)), (4, 4), "{name}");
        // The hash: as many calls as distinct keys; stopped at the first element.
        let mut keys: Vec<u64> = (0..8).map(|i| (w[i] | 1) + 2 * i as u64).collect();
        keys.sort_unstable();
        keys.dedup();
        let n = keys.len() as u64;
        assert_eq!((slot(&out, 6), slot(&out, 8)), (n, n), "{name}");
        assert_eq!((slot(&out, 9), slot(&out, 11)), (1, 1), "{name}");
        // Deleting the odd values: every element visited once, the even ones left.
        let deleted = slot(&out, 28);
        assert_eq!(slot(&out, 27), n, "{name}: the walk that deletes");
        assert_eq!(slot(&out, 30), n - deleted, "{name}: the walk after it");
        // Flags 1: -EINVAL, no call.
        assert_eq!(slot(&out, 33), (-22i64) as u64, "{name}");
        assert_eq!(slot(&out, 35), 0, "{name}");
    }
}
