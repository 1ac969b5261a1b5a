//! `bpftool feature probe`, `link show` and `net show` under the shim: the
//! probes report exactly what the runtime runs, and the listings answer.

use std::collections::BTreeSet;
use std::process::Output;

use serde_json::Value;

use crate::{run_under_shim, unprivileged_unavailable, TestStore};

/// Why bpftool cannot be run here, if it cannot.
fn skip_reason() -> Option<String> {
    if let Some(why) = unprivileged_unavailable() {
        return Some(why);
    }
    let found = std::process::Command::new("bpftool")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    (!found).then(|| "bpftool is not installed".to_string())
}

fn json_of(out: &Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what}: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {:?}", out.stdout))
}

/// The map types the store implements (DESIGN.md's list of the maps real
/// XDP programs use, `maps::def`'s kinds), in bpftool's spelling.
const STORE_MAP_TYPES: &[&str] = &[
    "hash",
    "array",
    "prog_array",
    "perf_event_array",
    "percpu_hash",
    "percpu_array",
    "lru_hash",
    "lru_percpu_hash",
    "lpm_trie",
    "array_of_maps",
    "hash_of_maps",
    "devmap",
    "cpumap",
    "xskmap",
    "devmap_hash",
    "ringbuf",
    "queue",
    "stack",
    "bloom_filter",
];

#[test]
fn feature_probe_lists_what_the_runtime_runs() {
    if let Some(why) = skip_reason() {
        println!("SKIP: feature_probe_lists_what_the_runtime_runs: {why}");
        return;
    }
    let store = TestStore::new("probe");
    let v = json_of(
        // `full`: without it bpftool skips bpf_trace_printk and a few others.
        &run_under_shim(
            &store,
            &["bpftool", "-j", "feature", "probe", "full", "unprivileged"],
        ),
        "feature probe",
    );
    let listed: BTreeSet<String> = v["helpers"]["xdp_available_helpers"]
        .as_array()
        .expect("helpers.xdp_available_helpers")
        .iter()
        .map(|h| h.as_str().expect("helper name").to_string())
        .collect();
    let table: BTreeSet<String> = runtime::helpers::supported_ids()
        .into_iter()
        .map(|id| {
            isa::helpers::helper_name(id)
                .unwrap_or_else(|| panic!("helper {id} has no kernel name"))
                .to_string()
        })
        .collect();
    assert_eq!(
        listed, table,
        "bpftool's XDP helpers (left) vs the runtime's helper table (right)"
    );

    let maps = v["map_types"].as_object().expect("map_types");
    let have: BTreeSet<String> = maps
        .iter()
        .filter(|(_, on)| on.as_bool() == Some(true))
        .map(|(k, _)| {
            k.strip_prefix("have_")
                .and_then(|k| k.strip_suffix("_map_type"))
                .unwrap_or_else(|| panic!("unexpected key {k}"))
                .to_string()
        })
        .collect();
    let want: BTreeSet<String> = STORE_MAP_TYPES.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        have, want,
        "bpftool's map types (left) vs the store's (right)"
    );
}

#[test]
fn link_and_net_show_answer() {
    if let Some(why) = skip_reason() {
        println!("SKIP: link_and_net_show_answer: {why}");
        return;
    }
    let store = TestStore::new("linkshow");
    let links = json_of(
        &run_under_shim(&store, &["bpftool", "-j", "link", "show"]),
        "link show",
    );
    assert_eq!(links, serde_json::json!([]), "no link exists");
    let plain = run_under_shim(&store, &["bpftool", "link", "show"]);
    assert!(plain.status.success(), "link show: {plain:?}");
    let net = json_of(
        &run_under_shim(&store, &["bpftool", "-j", "net", "show"]),
        "net show",
    );
    let entry = &net.as_array().expect("net show: a list")[0];
    for k in ["xdp", "tc", "flow_dissector"] {
        assert!(entry[k].is_array(), "net show: {k} in {net}");
    }
}
