//! The kernel oracle against facts derived independently from the C sources
//! and the packets: every case × packet runs in the kernel, and what comes
//! back (verdict, output frame, maps) is what the C code must produce.
//!
//! The facts about the cases run on the live kernel where bpf(2) may be used and on
//! its recorded answers elsewhere (`bpf_progs::recorded`); the tests that need the
//! kernel itself (other builds, other inputs, loads it must refuse) need root,
//! bpftool and bpf(2), and print `SKIP: <reason>` otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use bpf_progs::{cases, object, object_for, packet, Case, Cpu, BLOCKED_PORT, OOB_PROGRAMS};
use kclient::bpftool::{self as kernel, KernelEntry, KernelRun};

const XDP_ABORTED: u32 = 0;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

macro_rules! require_kernel {
    () => {
        if !kclient::require("kernel oracle") {
            return;
        }
    };
}

fn read_packet(name: &str) -> Vec<u8> {
    fs::read(packet(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn run_case(case: &Case, pkt: &str, cpu: Cpu) -> KernelRun {
    let obj = object_for(case.object, cpu).unwrap_or_else(|| panic!("no {cpu:?} object"));
    bpf_progs::recorded::live(case, pkt, &obj)
        .unwrap_or_else(|e| panic!("{} ({cpu:?}): {e}", case.label(pkt)))
}

/// The kernel's answer for `case` on `pkt` with the committed object: live where
/// bpf(2) may be used, else its recorded answer (`bpf_progs::recorded`), so the facts
/// below are checked on every machine.
fn answer(case: &Case, pkt: &str) -> KernelRun {
    bpf_progs::recorded::kernel_answer(case, pkt, &object(case.object))
        .unwrap_or_else(|e| panic!("{}: {e}", case.label(pkt)))
        .0
}

fn cases_of(object: &str) -> impl Iterator<Item = &'static Case> + '_ {
    cases().iter().filter(move |c| c.object == object)
}

/// The single value of a non-per-CPU map's only entry with `key`.
fn value<'a>(run: &'a KernelRun, map: &str, key: &[u8]) -> &'a [u8] {
    let entries = run.maps.get(map).unwrap_or_else(|| panic!("no map {map}"));
    let e = entries
        .iter()
        .find(|e| e.key == key)
        .unwrap_or_else(|| panic!("{map}: no key {key:02x?}"));
    assert_eq!(e.values.len(), 1, "{map} is per-CPU");
    &e.values[0]
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

/// RFC 1071, written here independently of packets/gen.py.
fn inet_csum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from_be_bytes([chunk[0], 0])
        };
        sum += u32::from(word);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

// ---------------------------------------------------------------------
// Packets (no kernel needed)
// ---------------------------------------------------------------------

#[test]
fn packets_are_what_gen_py_documents() {
    let len = |n| read_packet(n).len();
    assert_eq!(len("icmp.bin"), 98, "ping-sized");
    assert_eq!(len("short.bin"), 10);
    for name in [
        "icmp.bin",
        "udp.bin",
        "tcp_syn.bin",
        "ipv4_opts.bin",
        "blocked_port.bin",
    ] {
        let p = read_packet(name);
        assert_eq!(&p[12..14], &[0x08, 0x00], "{name}: IPv4");
        let ihl = usize::from(p[14] & 0xf) * 4;
        assert_eq!(
            inet_csum(&p[14..14 + ihl]),
            0,
            "{name}: IPv4 header checksum"
        );
        let tot = usize::from(u16::from_be_bytes([p[16], p[17]]));
        assert_eq!(tot, p.len() - 14, "{name}: tot_len");
        let l4 = &p[14 + ihl..];
        let proto = p[23];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&p[26..34]);
        pseudo.extend_from_slice(&[0, proto]);
        pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        pseudo.extend_from_slice(l4);
        match proto {
            1 => assert_eq!(inet_csum(l4), 0, "{name}: ICMP checksum"),
            6 | 17 => assert_eq!(inet_csum(&pseudo), 0, "{name}: L4 checksum"),
            other => panic!("{name}: protocol {other}"),
        }
    }
    let blocked = read_packet("blocked_port.bin");
    assert_eq!(&blocked[36..38], &BLOCKED_PORT.to_be_bytes());
    let ipv6 = read_packet("ipv6.bin");
    assert_eq!(&ipv6[12..14], &[0x86, 0xdd]);
    assert_eq!(ipv6[14] >> 4, 6);
    let vlan = read_packet("vlan_udp.bin");
    assert_eq!(&vlan[12..14], &[0x88, 0xa8]);
    assert_eq!(&vlan[16..18], &[0x81, 0x00]);
    assert_eq!(&vlan[20..22], &[0x08, 0x00]);
}

// ---------------------------------------------------------------------
// Generic: every case × packet runs and dumps every map of its object
// ---------------------------------------------------------------------

fn expected_maps(object: &str) -> BTreeSet<&'static str> {
    let names: &[&'static str] = match object {
        "xdp_counter" => &["counter_map"],
        "xdp_map_heavy" => &["big_map", "stats"],
        "xdp_events" => &["perf_events", "rb_events", "ev_rets", "ev_ok", "ev_seq"],
        "xdp_loop" => &["tcpopt_seen"],
        "xdp_fib" => &["fib_last"],
        "xdp_fib_probe" => &["fib_probe_out"],
        "xdp_parser" => &["stats_map", "port_blocklist"],
        "xdp_subprog" => &["sub_stats", ".bss", ".data", ".rodata", ".rodata.str1.1"],
        "xdp_encap" => &["encap_stats"],
        // The trailer's initialiser: a 16-byte constant.
        "xdp_tail_meta" => &["results", ".rodata.cst16"],
        "xdp_tailcall" => &["jmp_table", "hits"],
        "xdp_limits" => &["limits"],
        "xdp_lb" => &[
            "ch_rings",
            "conn_table",
            "lb_config",
            "lb_stats",
            "reals",
            "vip_map",
        ],
        "xdp_decap" => &["decap_stats"],
        "xdp_fw" => &["blocklist_v4", "blocklist_v6", "rule_hits"],
        "xdp_icmp_echo" => &["echo_stats"],
        "xdp_vlan" => &["vlan_cfg", "vlan_stats"],
        "xdp_syncookie" => &["cookie_key", "syncookie_stats"],
        "xdp_stats" => &["action_stats", "proto_stats"],
        "xdp_redirector" => &[
            "cpu_map",
            "redir_cfg",
            "redir_rets",
            "tx_ports",
            "tx_ports_hash",
        ],
        "xdp_core" => &["core_out"],
        "xdp_spinlock" => &["acct_array", "acct_hash"],
        "xdp_adjust_tail" => &[],
        "xdp_frags" => &[".bss"],
        "xdp_maps" => &["res", "small_hash", "arr", "lru", "routes", "pcpu"],
        "xdp_redirect" => &["res", "tx_port", "tx_hash"],
        "xdp_mim" => &[
            "arr_icmp",
            "arr_tcp",
            "arr_udp",
            "flows_tcp",
            "flows_udp",
            "by_proto",
            "by_l4",
            "mim_stats",
            "mim_jmp",
        ],
        "xdp_iter" => &["iter_out"],
        "xdp_dynptr" => &["dynptr_out", ".rodata"],
        "xdp_conntrack" => &["ct_out", ".rodata"],
        "xdp_queue" => &["queue", "stack", "bloom", "pcpu", "results"],
        "xdp_sock" => &["results"],
        "xdp_ringbuf_dynptr" => &["ring", "results", "local"],
        "xdp_foreach" => &["arr", "parr", "hash", "phash", "lru", "results"],
        "xdp_bloom_extra" => &["bloom1", "bloom15", "bloom5", "results"],
        "xdp_dynptr_frags" => &["out"],
        other => panic!("unknown object {other}"),
    };
    names.iter().copied().collect()
}

#[test]
fn every_case_runs_in_the_kernel() {
    require_kernel!();
    for case in cases() {
        for pkt in case.packets {
            let run = run_case(case, pkt, Cpu::V2);
            let names: BTreeSet<&str> = run.maps.keys().map(String::as_str).collect();
            assert_eq!(names, expected_maps(case.object), "{}", case.label(pkt));
            assert!(
                run.retval <= 4,
                "{}: retval {}",
                case.label(pkt),
                run.retval
            );
            assert!(!run.data_out.is_empty());
        }
    }
}

#[test]
fn v1_and_v3_builds_agree_with_v2() {
    require_kernel!();
    for cpu in [Cpu::V1, Cpu::V3] {
        if object_for("xdp_counter", cpu).is_none() {
            println!("SKIP: no {cpu:?} objects (clang absent at build time)");
            return;
        }
        // xdp_subprog's v3 build has more atomics (bss_fetch, flags32).
        let comparable = |c: &&Case| !(c.object == "xdp_subprog" && cpu == Cpu::V3);
        for case in cases().iter().filter(comparable) {
            for pkt in case.packets {
                let a = run_case(case, pkt, Cpu::V2);
                let b = run_case(case, pkt, cpu);
                assert_eq!(a.retval, b.retval, "{} {cpu:?}", case.label(pkt));
                assert_eq!(a.data_out, b.data_out, "{} {cpu:?}", case.label(pkt));
                // Hash iteration order depends on each kernel map's random seed.
                let sorted = |r: &KernelRun| {
                    let mut m = r.maps.clone();
                    m.values_mut()
                        .for_each(|es| es.sort_by(|x, y| x.key.cmp(&y.key)));
                    m
                };
                assert_eq!(sorted(&a), sorted(&b), "{} {cpu:?}", case.label(pkt));
            }
        }
    }
}

// ---------------------------------------------------------------------
// xdp_counter
// ---------------------------------------------------------------------

fn swapped_macs(p: &[u8]) -> Vec<u8> {
    let mut out = p.to_vec();
    out[0..6].copy_from_slice(&p[6..12]);
    out[6..12].copy_from_slice(&p[0..6]);
    out
}

#[test]
fn counter_counts_from_zero_and_bounces() {
    for case in cases_of("xdp_counter") {
        for pkt in case.packets {
            let input = read_packet(pkt);
            let run = answer(case, pkt);
            assert_eq!(run.retval, XDP_TX, "{}", case.label(pkt));
            // Each run swaps the MACs; the buffer is not reset in between.
            let expect = if case.repeat % 2 == 1 {
                swapped_macs(&input)
            } else {
                input.clone()
            };
            assert_eq!(run.data_out, expect, "{}", case.label(pkt));

            // value = (old + 1) or 0 when absent: after n runs, n - 1.
            let key = (input.len() as u32).to_le_bytes();
            let preset = case
                .sets
                .iter()
                .find(|(m, k, _)| {
                    *m == "counter_map"
                        && bpf_progs::hex_decode(k).ok().as_deref() == Some(&key[..])
                })
                .map(|(_, _, v)| u32_at(&bpf_progs::hex_decode(v).expect("hex"), 0));
            let count = match preset {
                Some(v) => v + case.repeat,
                None => case.repeat - 1,
            };
            let entries = &run.maps["counter_map"];
            assert_eq!(entries.len(), 1, "{}", case.label(pkt));
            assert_eq!(
                entries[0],
                KernelEntry {
                    key: key.to_vec(),
                    values: vec![count.to_le_bytes().to_vec()]
                },
                "{}",
                case.label(pkt)
            );
        }
    }
}

#[test]
fn counter_on_a_full_linear_frame() {
    require_kernel!();
    // 4096 - 256 headroom - 320 skb_shared_info: all linear.
    let frame = vec![0xabu8; 3520];
    let run = kernel::run(&object("xdp_counter"), "xdp_counter", &frame, 1, &[]).expect("run");
    assert_eq!(run.retval, XDP_TX);
    assert_eq!(run.data_out, frame, "equal MACs swapped");
    assert_eq!(
        run.maps["counter_map"][0].key,
        3520u32.to_le_bytes().to_vec()
    );
}

#[test]
fn kernel_refuses_frames_shorter_than_ethernet() {
    require_kernel!();
    let obj = object("xdp_counter");
    let err = kernel::run(&obj, "xdp_counter", &read_packet("short.bin"), 1, &[]).unwrap_err();
    assert!(err.contains("Invalid argument"), "{err}");
    let err = kernel::run(&obj, "xdp_counter", &[0u8; 13], 1, &[]).unwrap_err();
    assert!(err.contains("Invalid argument"), "{err}");
    let run = kernel::run(&obj, "xdp_counter", &[0u8; 14], 1, &[]).expect("14 bytes");
    assert_eq!(run.retval, XDP_TX);
}

// ---------------------------------------------------------------------
// xdp_parser
// ---------------------------------------------------------------------

// enum stat_idx in xdp_parser.c
const ETH: usize = 0;
const VLAN: usize = 1;
const IPV4: usize = 2;
const IPV6: usize = 3;
const TCP: usize = 4;
const UDP: usize = 5;
const ICMP: usize = 6;
const ICMPV6: usize = 7;
const MALFORMED: usize = 9;
const BLOCKED: usize = 10;
const STAT_MAX: usize = 11;

/// (verdict, counters hit) per packet, read off the C source.
fn parser_expectation(pkt: &str) -> (u32, &'static [usize]) {
    match pkt {
        "icmp.bin" => (XDP_PASS, &[ETH, IPV4, ICMP]),
        "udp.bin" => (XDP_PASS, &[ETH, IPV4, UDP]),
        "tcp_syn.bin" | "ipv4_opts.bin" => (XDP_PASS, &[ETH, IPV4, TCP]),
        "ipv6.bin" => (XDP_PASS, &[ETH, IPV6, UDP]),
        "ipv6_icmp.bin" => (XDP_PASS, &[ETH, IPV6, ICMPV6]),
        "vlan_udp.bin" => (XDP_PASS, &[ETH, VLAN, IPV4, UDP]),
        "bad_ihl.bin" => (XDP_ABORTED, &[ETH, IPV4, MALFORMED]),
        "blocked_port.bin" => (XDP_DROP, &[ETH, IPV4, UDP, BLOCKED]),
        other => panic!("no expectation for {other}"),
    }
}

#[test]
fn parser_verdicts_and_per_cpu_counters() {
    for case in cases_of("xdp_parser") {
        for pkt in case.packets {
            let input = read_packet(pkt);
            let run = answer(case, pkt);
            let (verdict, hit) = parser_expectation(pkt);
            let label = case.label(pkt);
            assert_eq!(run.retval, verdict, "{label}");
            assert_eq!(run.data_out, input, "{label}: the parser writes nothing");

            let stats = &run.maps["stats_map"];
            assert_eq!(stats.len(), STAT_MAX, "{label}: arrays hold every key");
            let n = u64::from(case.repeat);
            for e in stats {
                let idx = u32_at(&e.key, 0) as usize;
                assert!(!e.values.is_empty());
                let (packets, bytes) = if hit.contains(&idx) {
                    (n, n * input.len() as u64)
                } else {
                    (0, 0)
                };
                assert_eq!(
                    u64_at(&e.values[0], 0),
                    packets,
                    "{label}: stat {idx} packets"
                );
                assert_eq!(u64_at(&e.values[0], 8), bytes, "{label}: stat {idx} bytes");
                for (cpu, v) in e.values.iter().enumerate().skip(1) {
                    assert_eq!(v, &vec![0u8; 16], "{label}: stat {idx} on CPU {cpu}");
                }
            }
            assert_eq!(
                run.maps["port_blocklist"],
                vec![KernelEntry {
                    key: BLOCKED_PORT.to_be_bytes().to_vec(),
                    values: vec![vec![1]]
                }]
            );
        }
    }
}

#[test]
fn parser_without_blocklist_passes_the_blocked_port() {
    require_kernel!();
    let run = kernel::run(
        &object("xdp_parser"),
        "xdp_parser",
        &read_packet("blocked_port.bin"),
        1,
        &[],
    )
    .expect("run");
    assert_eq!(run.retval, XDP_PASS);
    assert!(run.maps["port_blocklist"].is_empty());
}

// ---------------------------------------------------------------------
// xdp_subprog
// ---------------------------------------------------------------------

/// sum_buf(): s = s * cfg_mult + b over the first (up to) 16 bytes, u32.
fn subprog_sum(p: &[u8]) -> u32 {
    p.iter()
        .take(16)
        .fold(0u32, |s, &b| s.wrapping_mul(3).wrapping_add(u32::from(b)))
}

fn u64s(b: &[u8]) -> Vec<u64> {
    b.chunks(8).map(|c| u64_at(c, 0)).collect()
}

#[test]
fn subprog_globals_and_atomics() {
    for case in cases_of("xdp_subprog") {
        for pkt in case.packets {
            let input = read_packet(pkt);
            let len = input.len() as u64;
            let n = u64::from(case.repeat);
            let label = case.label(pkt);
            let run = answer(case, pkt);
            assert_eq!(run.retval, XDP_PASS, "{label}");
            assert_eq!(run.data_out, input, "{label}");

            let zero = 0u32.to_le_bytes();
            // .rodata: cfg_min_len = 14, cfg_mult = 3 (in either order).
            let ro = value(&run, ".rodata", &zero);
            let mut cfg = vec![u32_at(ro, 0), u32_at(ro, 4)];
            cfg.sort();
            assert_eq!(cfg, vec![3, 14], "{label}");
            assert_eq!(
                value(&run, ".rodata.str1.1", &zero),
                b"xdp_subprog: %d bytes, total %llu\n\0",
                "{label}"
            );
            // .data: u64 data_counter (100, +2 per run), then u32 last length.
            let data = value(&run, ".data", &zero);
            assert_eq!(data.len(), 12);
            assert_eq!(u64_at(data, 0), 100 + 2 * n, "{label}");
            assert_eq!(u32_at(data, 8), len as u32, "{label}");
            // .bss: packets, bytes, sum, fetch[8] (all 0 without v3 atomics).
            let mut bss = u64s(value(&run, ".bss", &zero));
            bss.sort();
            let mut expect = vec![n, n * len, n * u64::from(subprog_sum(&input))];
            expect.extend([0; 8]);
            expect.sort();
            assert_eq!(bss, expect, "{label}");
            // sub_stats[0]: packets, bytes, len32, flags32 (xadd of a bit).
            let st = value(&run, "sub_stats", &zero);
            assert_eq!(u64_at(st, 0), n, "{label}");
            assert_eq!(u64_at(st, 8), n * len, "{label}");
            assert_eq!(u32_at(st, 16), len as u32, "{label}");
            assert_eq!(
                u32_at(st, 20),
                (n as u32).wrapping_mul(1 << (len & 31)),
                "{label}"
            );
            assert_eq!(
                value(&run, "sub_stats", &1u32.to_le_bytes()),
                &[0u8; 24],
                "{label}"
            );
        }
    }
}

#[test]
fn subprog_v3_atomics_with_results() {
    require_kernel!();
    let Some(obj) = object_for("xdp_subprog", Cpu::V3) else {
        println!("SKIP: no -mcpu=v3 object (clang absent at build time)");
        return;
    };
    let input = read_packet("icmp.bin");
    let len = input.len() as u64; // 98: bit 98 & 31 = 2
    let run = kernel::run(&obj, "xdp_subprog", &input, 2, &[]).expect("run");
    assert_eq!(run.retval, XDP_PASS);
    let zero = 0u32.to_le_bytes();
    let st = value(&run, "sub_stats", &zero);
    let bit = 1u32 << (len & 31);
    // Per run: flags |= bit; flags &= 0x0ffffff0; flags ^= 0x5a5a5a5a.
    let step = |f: u32| ((f | bit) & 0x0fff_fff0) ^ 0x5a5a_5a5a;
    let f1 = step(0);
    let f2 = step(f1);
    assert_eq!(u32_at(st, 20), f2);
    // len32: xchg to len, then cmpxchg(len -> 2 * len) succeeds.
    assert_eq!(u32_at(st, 16), 2 * len as u32);
    assert_eq!(u64_at(st, 0), 2);
    assert_eq!(u64_at(st, 8), 2 * len);
    // The second run's fetched values: the old values from the first run.
    let bss = value(&run, ".bss", &zero);
    let fetched: Vec<u64> = u64s(bss);
    // bss_fetch[0..8] are the last 8 u64 if declared last; find them as the
    // run-2 old values: bytes after 2 adds, flags before or/and/xor, len32 2*len...
    let expect_fetch = [
        2 * len,                             // fetch_add(bytes, 0) after both xadds
        u64::from(f1),                       // fetch_or: flags before run 2's or
        u64::from(f1 | bit),                 // fetch_and
        u64::from((f1 | bit) & 0x0fff_fff0), // fetch_xor
        2 * len,                             // xchg: len32 was 2 * len from run 1
        len,                                 // cmpxchg: len32 was len after the xchg
        102 + 2,                             // cmpxchg(data_counter, 0, 1): fails, old value
    ];
    let joined: Vec<u64> = fetched.clone();
    let pos = joined
        .windows(expect_fetch.len())
        .position(|w| w == expect_fetch)
        .unwrap_or_else(|| panic!("fetch results {expect_fetch:?} not in .bss {joined:?}"));
    // bss_fetch[7] = fetch_add(bss_sum, 1): the sum before run 2's +1,
    // which is 2 * sum (two runs' += sum) + 1 (run 1's fetch_add).
    let sum = u64::from(subprog_sum(&input));
    assert_eq!(joined[pos + 7], 2 * sum + 1);
}

// ---------------------------------------------------------------------
// xdp_encap
// ---------------------------------------------------------------------

#[test]
fn encap_prepends_an_ipip_header() {
    for case in cases_of("xdp_encap") {
        for pkt in case.packets {
            let input = read_packet(pkt);
            let label = case.label(pkt);
            let run = answer(case, pkt);
            let st = value(&run, "encap_stats", &0u32.to_le_bytes());
            if input[12..14] != [0x08, 0x00] {
                assert_eq!(run.retval, XDP_PASS, "{label}");
                assert_eq!(run.data_out, input, "{label}");
                assert_eq!(st, &[0u8; 24], "{label}");
                continue;
            }
            assert_eq!(run.retval, XDP_TX, "{label}");
            let out = &run.data_out;
            assert_eq!(out.len(), input.len() + 20, "{label}");
            assert_eq!(&out[0..6], &input[6..12], "{label}: dst = old src");
            assert_eq!(&out[6..12], &input[0..6], "{label}: src = old dst");
            assert_eq!(&out[12..14], &[0x08, 0x00]);
            let outer = &out[14..34];
            let inner_tot = u16::from_be_bytes([input[16], input[17]]);
            let mut expect = vec![0x45, 0x00];
            expect.extend_from_slice(&(inner_tot + 20).to_be_bytes());
            expect.extend_from_slice(&[0, 0, 0x40, 0x00, 64, 4]);
            expect.extend_from_slice(&outer[10..12]);
            expect.extend_from_slice(&[192, 168, 0, 1, 192, 168, 0, 2]);
            assert_eq!(outer, &expect[..], "{label}: outer header");
            assert_eq!(inet_csum(outer), 0, "{label}: outer checksum");
            assert_eq!(&out[34..], &input[14..], "{label}: inner packet intact");

            assert_eq!(u64_at(st, 0), 1, "{label}");
            assert_eq!(u64_at(st, 8), out.len() as u64, "{label}");
            // The raw bpf_csum_diff() sum (of little-endian words) folds to
            // the complement of the check field read as little-endian.
            let mut raw = u64_at(st, 16);
            while raw >> 16 != 0 {
                raw = (raw & 0xffff) + (raw >> 16);
            }
            assert_eq!(
                !(raw as u16),
                u16::from_le_bytes([outer[10], outer[11]]),
                "{label}"
            );
        }
    }
}

// ---------------------------------------------------------------------
// xdp_tail_meta
// ---------------------------------------------------------------------

// enum res in xdp_tail_meta.c
const R_RUNS: u32 = 0;
const R_LEN_BEFORE: u32 = 1;
const R_LOAD_RET: u32 = 2;
const R_LOAD_OOB_RET: u32 = 3;
const R_CSUM_VERIFY: u32 = 4;
const R_STORE_RET: u32 = 6;
const R_TAIL_BIG_RET: u32 = 7;
const R_TAIL_DELTA: u32 = 8;
const R_TAIL_RET: u32 = 9;
const R_TRAILER_RET: u32 = 10;
const R_META_RET: u32 = 11;
const R_LEN_AFTER: u32 = 12;
const META_MAGIC: u32 = 0x5eed_1e55;

fn results(run: &KernelRun) -> BTreeMap<u32, i64> {
    run.maps["results"]
        .iter()
        .map(|e| (u32_at(&e.key, 0), u64_at(&e.values[0], 0) as i64))
        .collect()
}

/// (tail delta, metadata bytes) per packet, read off the C source.
fn tail_expectation(p: &[u8]) -> (i64, usize) {
    match (&p[12..14], p.get(23)) {
        ([0x08, 0x00], Some(17)) => (16, 8),
        ([0x08, 0x00], Some(6)) => (-4, 4),
        ([0x08, 0x00], Some(1)) => (8, 4),
        ([0x86, 0xdd], _) => (-8, 4),
        _ => (0, 4),
    }
}

/// One run of the program on frame `p` (model written from the C source).
fn tail_model(p: &[u8], meta: &mut Vec<u8>) -> Vec<u8> {
    let (delta, meta_len) = tail_expectation(p);
    let mut f = p.to_vec();
    if p[12..14] == [0x08, 0x00] && p[14] == 0x45 {
        f[22] -= 1; // TTL
        f[24..26].copy_from_slice(&[0, 0]);
        let c = inet_csum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    let len = f.len();
    let new_len = (len as i64 + delta) as usize;
    f.resize(new_len, 0);
    if delta == 16 {
        f[len..len + 7].copy_from_slice(b"TRAILER");
        f[len + 8..len + 10].copy_from_slice(&p[36..38]);
    }
    let mut m = META_MAGIC.to_le_bytes().to_vec();
    if meta_len == 8 {
        m.extend_from_slice(&(len as u32).to_le_bytes());
    }
    m.extend_from_slice(meta);
    *meta = m;
    f
}

#[test]
fn tail_meta_geometry_helpers() {
    for case in cases_of("xdp_tail_meta") {
        for pkt in case.packets {
            let input = read_packet(pkt);
            let label = case.label(pkt);
            let run = answer(case, pkt);
            assert_eq!(run.retval, XDP_PASS, "{label}");

            let mut frame = input.clone();
            let mut meta = Vec::new();
            let mut last_len = 0;
            for _ in 0..case.repeat {
                last_len = frame.len();
                frame = tail_model(&frame, &mut meta);
            }
            let mut expect = meta.clone();
            expect.extend_from_slice(&frame);
            assert_eq!(run.data_out, expect, "{label}: metadata + frame");

            let r = results(&run);
            let (delta, _) = tail_expectation(&input);
            assert_eq!(r[&R_RUNS], i64::from(case.repeat), "{label}");
            assert_eq!(r[&R_LEN_BEFORE], last_len as i64, "{label}");
            assert_eq!(r[&R_LOAD_RET], 0, "{label}");
            assert!(
                r[&R_LOAD_OOB_RET] < 0,
                "{label}: load past the end must fail"
            );
            assert!(r[&R_TAIL_BIG_RET] < 0, "{label}: +4096 must fail");
            assert_eq!(r[&R_TAIL_DELTA], delta, "{label}");
            assert_eq!(r[&R_TAIL_RET], 0, "{label}");
            assert_eq!(r[&R_META_RET], 0, "{label}");
            assert_eq!(r[&R_LEN_AFTER], frame.len() as i64, "{label}");
            if input[12..14] == [0x08, 0x00] && input[14] == 0x45 {
                assert_eq!(r[&R_CSUM_VERIFY], 0, "{label}: received header is valid");
                assert_eq!(r[&R_STORE_RET], 0, "{label}");
            }
            if delta == 16 {
                assert_eq!(r[&R_TRAILER_RET], 0, "{label}");
            }
        }
    }
}

// ---------------------------------------------------------------------
// xdp_oob
// ---------------------------------------------------------------------

#[test]
fn kernel_rejects_the_oob_programs() {
    require_kernel!();
    assert_eq!(OOB_PROGRAMS.len(), 3);
    for cpu in Cpu::ALL {
        let Some(obj) = object_for("xdp_oob", cpu) else {
            println!("SKIP: no {cpu:?} xdp_oob object");
            continue;
        };
        let err = kernel::load_check(&obj).expect_err("the verifier must reject xdp_oob");
        assert!(err.contains("loadall"), "{err}");
    }
    // The accepted programs load.
    for name in [
        "xdp_counter",
        "xdp_parser",
        "xdp_subprog",
        "xdp_encap",
        "xdp_tail_meta",
    ] {
        kernel::load_check(&object(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn unknown_program_and_map_are_errors() {
    require_kernel!();
    let obj = object("xdp_counter");
    let err = kernel::run(&obj, "nope", &read_packet("icmp.bin"), 1, &[]).unwrap_err();
    assert!(err.contains("nope"), "{err}");
    let sets = vec![("no_map".to_string(), vec![0; 4], vec![0; 4])];
    let err = kernel::run(&obj, "xdp_counter", &read_packet("icmp.bin"), 1, &sets).unwrap_err();
    assert!(err.contains("no_map"), "{err}");
}

#[test]
fn tail_calls_dispatch_by_protocol() {
    let case = cases_of("xdp_tailcall")
        .find(|c| c.repeat == 1)
        .expect("tailcall case");
    // (packet, verdict, slots whose hit counter is 1): entry counts slot 7 and tail-calls
    // by EtherType; tc_ipv4 then by protocol; tc_tcp's slot 1000 and tc_ipv6's slot 4
    // are out of range / empty, so they fall through to their own verdict.
    let expect: &[(&str, u32, &[u32])] = &[
        ("udp.bin", 3, &[7, 0, 2]),
        ("tcp_syn.bin", 1, &[7, 0, 3]),
        ("icmp.bin", 2, &[7, 0]),
        ("ipv6.bin", 1, &[7, 1]),
    ];
    for (pkt, verdict, slots) in expect {
        let run = answer(case, pkt);
        assert_eq!(run.retval, *verdict, "{pkt}");
        for slot in 0..8u32 {
            let hits =
                u64::from_le_bytes(value(&run, "hits", &slot.to_le_bytes()).try_into().unwrap());
            assert_eq!(hits, slots.contains(&slot) as u64, "{pkt}: slot {slot}");
        }
        let input = read_packet(pkt);
        let mut want = input.clone();
        if *pkt == "udp.bin" {
            want[11] ^= 0xff;
        }
        assert_eq!(run.data_out, want, "{pkt}");
    }
}

/// The `res` array of a run as signed results.
fn res_values(run: &KernelRun) -> Vec<i64> {
    let entries = run.maps.get("res").expect("res map");
    entries
        .iter()
        .map(|e| i64::from_le_bytes(e.values[0].as_slice().try_into().expect("8 bytes")))
        .collect()
}

#[test]
fn map_semantics_follow_the_c_source() {
    let case = cases_of("xdp_maps").next().expect("case");
    let run = answer(case, "udp.bin");
    assert_eq!(run.retval, XDP_PASS);
    let r = res_values(&run);
    let (enoent, e2big, eexist, einval, enospc) = (-2, -7, -17, -22, -28);
    // hash of 2: missing, existing, full, bad flags, delete.
    assert_eq!(
        &r[0..12],
        &[enoent, 0, eexist, 0, 0, e2big, e2big, enoent, 0, einval, enoent, 0]
    );
    // array: out of range, NOEXIST, EXIST, lookup past the end, delete.
    assert_eq!(&r[12..17], &[e2big, eexist, 0, 1, einval]);
    // LRU of 4: six inserts succeed, the newest is there, at most 4 remain.
    assert_eq!(&r[17..25], &[0, 0, 0, 0, 0, 0, 60, 1]);
    assert!(run.maps["lru"].is_empty());
    // LPM: /8 /16 /24 /0, longest matches, flags, a full trie, delete.
    assert_eq!(
        &r[25..42],
        &[0, 0, 0, 0, 24, 16, 8, 1, eexist, enoent, einval, 0, 0, enospc, 0, enoent, 8]
    );
    let prefixes: Vec<(u32, [u8; 4])> = run.maps["routes"]
        .iter()
        .map(|e| (u32_at(&e.key, 0), e.key[4..8].try_into().expect("4")))
        .collect();
    // Postorder: the most specific first.
    assert_eq!(
        prefixes,
        vec![
            (32, [10, 1, 2, 3]),
            (24, [10, 1, 2, 99]),
            (8, [10, 0, 0, 0]),
            (0, [0, 0, 0, 0]),
        ]
    );
    // Per-CPU: the counter on CPU 0 only (the oracle pins the run to CPU 0).
    assert_eq!(&r[42..44], &[0, 0]);
    let pc = &run.maps["pcpu"];
    assert_eq!(u64_at(&pc[0].values[0], 0), 1);
    assert!(pc[0].values[1..].iter().all(|v| u64_at(v, 0) == 0));
    // A program's update of a per-CPU array writes this CPU's slot only.
    assert_eq!(u64_at(&pc[1].values[0], 0), 7);
    assert!(pc[1].values[1..].iter().all(|v| u64_at(v, 0) == 0));
}

#[test]
fn redirect_map_follows_the_c_source() {
    let case = cases_of("xdp_redirect").next().expect("case");
    let run = answer(case, "udp.bin");
    const XDP_REDIRECT: u32 = 4;
    assert_eq!(run.retval, XDP_REDIRECT);
    let r = res_values(&run);
    assert_eq!(
        &r[0..6],
        &[
            i64::from(XDP_PASS),
            i64::from(XDP_DROP),
            i64::from(XDP_ABORTED),
            i64::from(XDP_ABORTED),
            i64::from(XDP_REDIRECT),
            i64::from(XDP_REDIRECT)
        ]
    );
    assert_eq!(run.maps["tx_port"].len(), 1);
    assert!(run.maps["tx_hash"].is_empty());
}

// The issue-5 programs (`real_world_cases`).
#[path = "oracle/issue5.rs"]
mod issue5;
#[path = "oracle/timers.rs"]
mod timers;

// ---------------------------------------------------------------------
// xdp_mim: maps of maps and a prog_array filled from `.values` initialisers
// ---------------------------------------------------------------------

/// The entries of a map whose values are names (maps of maps, prog_arrays), as
/// (u32 key, name).
fn named_slots(run: &KernelRun, map: &str) -> BTreeSet<(u32, String)> {
    run.maps
        .get(map)
        .unwrap_or_else(|| panic!("no map {map}"))
        .iter()
        .map(|e| {
            let key = u32::from_le_bytes(e.key.as_slice().try_into().expect("4-byte key"));
            (key, String::from_utf8(e.values[0].clone()).expect("a name"))
        })
        .collect()
}

#[test]
fn maps_of_maps_follow_the_c_source() {
    let case = cases_of("xdp_mim")
        .find(|c| c.prog == "xdp_mim" && c.repeat == 1)
        .expect("xdp_mim case");
    let slots = |pairs: &[(u32, &str)]| -> BTreeSet<(u32, String)> {
        pairs.iter().map(|(k, n)| (*k, n.to_string())).collect()
    };
    for pkt in case.packets {
        let input = read_packet(pkt);
        let run = answer(case, pkt);
        // libbpf filled the initial slots; the dump names the inner maps.
        assert_eq!(
            named_slots(&run, "by_proto"),
            slots(&[(0, "arr_icmp"), (1, "arr_tcp"), (3, "arr_udp")]),
            "{pkt}"
        );
        assert_eq!(
            named_slots(&run, "by_l4"),
            slots(&[(6, "flows_tcp"), (17, "flows_udp")]),
            "{pkt}"
        );
        assert_eq!(named_slots(&run, "mim_jmp"), slots(&[(0, "xdp_mim")]));
        // The C source's choice, from the frame.
        let ethertype = u16::from_be_bytes([input[12], input[13]]);
        let (proto, ttl) = (input[23], input[22]);
        let inner_array = match (ethertype, proto) {
            (0x0800, 1) => Some("arr_icmp"),
            (0x0800, 6) => Some("arr_tcp"),
            (0x0800, 17) => Some("arr_udp"),
            _ => None, // slot 2 (empty) or 9 (past max_entries)
        };
        let inner_hash = match (inner_array, proto) {
            (Some(_), 6) => Some("flows_tcp"),
            (Some(_), 17) => Some("flows_udp"),
            _ => None,
        };
        let verdict = match (inner_array, inner_hash) {
            (None, _) => XDP_DROP,
            (Some(_), None) => XDP_PASS,
            (Some(_), Some(_)) => XDP_TX,
        };
        assert_eq!(run.retval, verdict, "{pkt}");
        assert_eq!(run.data_out, input, "{pkt}");
        let stat = |k: u32| u64_at(value(&run, "mim_stats", &k.to_le_bytes()), 0);
        assert_eq!(stat(0), 1, "{pkt}: packets");
        assert_eq!(stat(1), inner_array.is_none() as u64, "{pkt}: array misses");
        assert_eq!(
            stat(2),
            (inner_array.is_some() && inner_hash.is_none()) as u64,
            "{pkt}: hash misses"
        );
        assert_eq!(stat(3), inner_hash.is_some() as u64, "{pkt}: new flows");
        for arr in ["arr_icmp", "arr_tcp", "arr_udp"] {
            for key in 0..4u32 {
                let bytes = u64_at(value(&run, arr, &key.to_le_bytes()), 0);
                let want = if Some(arr) == inner_array && key == u32::from(ttl & 3) {
                    input.len() as u64
                } else {
                    0
                };
                assert_eq!(bytes, want, "{pkt}: {arr}[{key}]");
            }
        }
        for hash in ["flows_tcp", "flows_udp"] {
            let entries = &run.maps[hash];
            if Some(hash) == inner_hash {
                assert_eq!(entries.len(), 1, "{pkt}: {hash}");
                assert_eq!(entries[0].key, input[30..34], "{pkt}: {hash} key is daddr");
                assert_eq!(u64_at(&entries[0].values[0], 0), 1);
            } else {
                assert!(entries.is_empty(), "{pkt}: {hash}");
            }
        }
    }
}

/// xdp_events in BPF_PROG_TEST_RUN: no perf event in perf_events (-ENOENT), the
/// error cases of bpf_xdp_event_output and bpf_ringbuf_output, and a 4096-byte ring
/// that 120 bytes per run (24 + 72 + 24) fill after 34 runs.
#[test]
fn events_fill_the_ring_and_find_no_perf_event() {
    for case in cases_of("xdp_events") {
        for pkt in case.packets {
            let run = answer(case, pkt);
            assert_eq!(run.retval, 2, "XDP_PASS");
            assert_eq!(run.data_out, read_packet(pkt), "unchanged");
            let at = |map: &str, i: u32| u64_at(value(&run, map, &i.to_le_bytes()), 0);
            let rets: Vec<i64> = (0..16).map(|i| at("ev_rets", i) as i64).collect();
            let runs = u64::from(case.repeat);
            let fit = runs.min(4095 / 120);
            let full = runs > fit;
            let used = (fit * 120) as i64;
            let want: Vec<i64> = vec![
                -2,
                -2,
                -7,
                -22,
                -14,
                if full { -11 } else { 0 },
                -22,
                i64::from(!full),
                i64::from(!full),
                0,
                used,
                4096,
                0,
                used,
                0,
                runs as i64,
            ];
            assert_eq!(rets, want, "{}", case.label(pkt));
            for (i, n) in [(0, 0), (5, fit), (7, fit), (8, fit), (9, 0), (15, runs)] {
                assert_eq!(at("ev_ok", i), n, "{}: ev_ok[{i}]", case.label(pkt));
            }
            assert!(run.maps["perf_events"].is_empty() && run.maps["rb_events"].is_empty());
        }
    }
}
