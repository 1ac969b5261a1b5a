//! The issue-5 programs (`bpf_progs::real_world_cases`) in the kernel, for the
//! -mcpu=v1, v2 and v3 builds, against facts derived here from the C sources
//! and the packets: verdicts, rewritten frames (checksums recomputed here
//! from scratch), and counters. None of these programs depends on time or
//! randomness: the SYN cookie has no time counter on purpose, and the LB's
//! hash is a fixed function of the 5-tuple.

use std::collections::BTreeMap;

use bpf_progs::{hex_decode, object_for, real_world_cases, Case, Cpu, FIB_NETNS_SETUP};
use kclient::bpftool::{self as kernel, KernelRun};

use super::{
    inet_csum, read_packet, u32_at, u64_at, value, XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX,
};

const XDP_REDIRECT: u32 = 4;

/// The builds to check: v2 always, v1/v3 when build.rs made them.
fn cpus(object: &str) -> Vec<Cpu> {
    Cpu::ALL
        .into_iter()
        .filter(|&cpu| {
            let ok = object_for(object, cpu).is_some();
            if !ok {
                println!("SKIP: no {cpu:?} build of {object} (clang absent at build time)");
            }
            ok
        })
        .collect()
}

fn pending_of(object: &str) -> impl Iterator<Item = &'static Case> + '_ {
    real_world_cases()
        .iter()
        .filter(move |c| c.object == object)
}

fn run_pending(case: &Case, pkt: &str, cpu: Cpu) -> KernelRun {
    let obj = object_for(case.object, cpu).unwrap_or_else(|| panic!("no {cpu:?} object"));
    let sets = case.sets_bytes().expect("case hex");
    let data = read_packet(pkt);
    let res = if case.object == "xdp_fib" {
        kernel::run_in_netns(
            &obj,
            case.prog,
            &data,
            case.repeat,
            &sets,
            &case.prog_sets_owned(),
            None,
            FIB_NETNS_SETUP,
        )
    } else {
        kernel::run_with(
            &obj,
            case.prog,
            &data,
            case.repeat,
            &sets,
            &case.prog_sets_owned(),
        )
    };
    res.unwrap_or_else(|e| panic!("{} ({cpu:?}): {e}", case.label(pkt)))
}

/// Runs every case × packet × build of `object` through `check`.
fn for_each_run(object: &str, mut check: impl FnMut(&Case, &str, &[u8], &KernelRun, &str)) {
    let mut n = 0;
    for cpu in cpus(object) {
        for case in pending_of(object) {
            for pkt in case.packets {
                let input = read_packet(pkt);
                let run = run_pending(case, pkt, cpu);
                let label = format!("{} {cpu:?}", case.label(pkt));
                check(case, pkt, &input, &run, &label);
                n += 1;
            }
        }
    }
    assert!(n > 0, "no runs for {object}");
    println!("{object}: {n} kernel runs checked");
}

/// CPU 0's value of a per-CPU map entry (the oracle pins runs to CPU 0);
/// asserts that every other CPU's value is zero.
fn cpu0<'a>(run: &'a KernelRun, map: &str, key: &[u8], label: &str) -> &'a [u8] {
    let e = run.maps[map]
        .iter()
        .find(|e| e.key == key)
        .unwrap_or_else(|| panic!("{label}: {map} has no key {key:02x?}"));
    for (cpu, v) in e.values.iter().enumerate().skip(1) {
        assert!(v.iter().all(|b| *b == 0), "{label}: {map} on CPU {cpu}");
    }
    &e.values[0]
}

fn set_value(case: &Case, map: &str, key: &[u8]) -> Option<Vec<u8>> {
    case.sets
        .iter()
        .rev()
        .find(|(m, k, _)| *m == map && hex_decode(k).ok().as_deref() == Some(key))
        .map(|(_, _, v)| hex_decode(v).expect("hex"))
}

fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

/// An IPv4 header (20 bytes) with its checksum computed here.
#[allow(clippy::too_many_arguments)]
fn ipv4_hdr(
    tos: u8,
    tot_len: u16,
    id: u16,
    frag: u16,
    ttl: u8,
    proto: u8,
    src: &[u8],
    dst: &[u8],
) -> Vec<u8> {
    let mut h = vec![0x45, tos];
    h.extend_from_slice(&tot_len.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[ttl, proto, 0, 0]);
    h.extend_from_slice(src);
    h.extend_from_slice(dst);
    let c = inet_csum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// The TCP/UDP checksum over the IPv4 pseudo-header: 0 when valid.
fn l4_csum_v4(ip: &[u8], l4: &[u8]) -> u16 {
    let mut p = ip[12..20].to_vec();
    p.extend_from_slice(&[0, ip[9]]);
    p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    p.extend_from_slice(l4);
    inet_csum(&p)
}

/// The ICMPv6 checksum over the IPv6 pseudo-header: 0 when valid.
fn icmp6_csum(ip6: &[u8], msg: &[u8]) -> u16 {
    let mut p = ip6[8..40].to_vec();
    p.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 58]);
    p.extend_from_slice(msg);
    inet_csum(&p)
}

// ---------------------------------------------------------------------
// The hash of xdp_lb.c / xdp_syncookie.c (murmur3 mixing), rewritten here.
// ---------------------------------------------------------------------

fn mix(h: u32, k: u32) -> u32 {
    let k = k
        .wrapping_mul(0xcc9e_2d51)
        .rotate_left(15)
        .wrapping_mul(0x1b87_3593);
    (h ^ k)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

fn fmix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// An IPv4 TCP/UDP frame's (src, dst, sport, dport, proto), IHL 5.
fn five_tuple(p: &[u8]) -> Option<(u32, u32, u16, u16, u8)> {
    if p.len() < 38 || p[12..14] != [0x08, 0x00] || p[14] != 0x45 {
        return None;
    }
    let proto = p[23];
    if proto != 6 && proto != 17 {
        return None;
    }
    Some((be32(p, 26), be32(p, 30), be16(p, 34), be16(p, 36), proto))
}

fn lb_hash(t: (u32, u32, u16, u16, u8)) -> u32 {
    let (s, d, sp, dp, proto) = t;
    let h = mix(
        mix(mix(0x4c4b_5f31, s), d),
        (u32::from(sp) << 16) | u32::from(dp),
    );
    fmix(h ^ u32::from(proto))
}

// ---------------------------------------------------------------------
// xdp_lb and xdp_decap
// ---------------------------------------------------------------------

const RING_SIZE: u32 = 13;
const GW_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const LB_SRC: [u8; 4] = [192, 168, 1, 1];

/// lb_stats indices.
const ST_PASS: u32 = 0;
const ST_IPIP: u32 = 1;
const ST_GUE: u32 = 2;
const ST_CONN_HIT: u32 = 3;
const ST_CONN_NEW: u32 = 4;

fn flow_key(t: (u32, u32, u16, u16, u8)) -> Vec<u8> {
    let mut k = t.0.to_be_bytes().to_vec();
    k.extend_from_slice(&t.1.to_be_bytes());
    k.extend_from_slice(&t.2.to_be_bytes());
    k.extend_from_slice(&t.3.to_be_bytes());
    k.extend_from_slice(&[t.4, 0, 0, 0]);
    k
}

/// One xdp_lb run per the C source: (verdict, frame, stats bumped as
/// (index, bytes), conn_table entry written).
#[allow(clippy::type_complexity)]
fn lb_model(case: &Case, p: &[u8]) -> (u32, Vec<u8>, Vec<(u32, u64)>, Option<(Vec<u8>, u32)>) {
    let len = p.len() as u64;
    let pass = (XDP_PASS, p.to_vec(), vec![(ST_PASS, len)], None);
    let Some(t) = five_tuple(p) else { return pass };
    let mut vk = t.1.to_be_bytes().to_vec();
    vk.extend_from_slice(&t.3.to_be_bytes());
    vk.extend_from_slice(&[t.4, 0]);
    let Some(meta) = set_value(case, "vip_map", &vk) else {
        return pass;
    };
    let (vip_num, flags) = (u32_at(&meta, 0), u32_at(&meta, 4));
    let fk = flow_key(t);
    let mut stats = Vec::new();
    let (real, new_conn) = match set_value(case, "conn_table", &fk) {
        Some(v) => {
            stats.push((ST_CONN_HIT, len));
            (u32_at(&v, 0), None)
        }
        None => {
            let slot = vip_num * RING_SIZE + lb_hash(t) % RING_SIZE;
            let r = set_value(case, "ch_rings", &slot.to_le_bytes()).map_or(0, |v| u32_at(&v, 0));
            stats.push((ST_CONN_NEW, len));
            (r, Some((fk, r)))
        }
    };
    let real_addr = set_value(case, "reals", &real.to_le_bytes()).expect("real set")[0..4].to_vec();
    let inner = &p[14..];
    let mut out = GW_MAC.to_vec();
    out.extend_from_slice(&p[0..6]);
    out.extend_from_slice(&[0x08, 0x00]);
    let inner_len = be16(p, 16);
    if flags & 1 == 1 {
        out.extend(ipv4_hdr(
            p[15],
            inner_len + 32,
            0,
            0,
            64,
            17,
            &LB_SRC,
            &real_addr,
        ));
        out.extend_from_slice(&(0x8000 | (lb_hash(t) & 0x7fff) as u16).to_be_bytes());
        out.extend_from_slice(&6080u16.to_be_bytes());
        out.extend_from_slice(&(inner_len + 12).to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 4, 0, 0]);
        out.extend_from_slice(inner);
        stats.push((ST_GUE, out.len() as u64));
    } else {
        out.extend(ipv4_hdr(
            p[15],
            inner_len + 20,
            0,
            0,
            64,
            4,
            &LB_SRC,
            &real_addr,
        ));
        out.extend_from_slice(inner);
        stats.push((ST_IPIP, out.len() as u64));
    }
    (XDP_TX, out, stats, new_conn)
}

#[test]
fn lb_balances_and_encapsulates() {
    require_kernel!();
    for_each_run("xdp_lb", |case, pkt, input, run, label| {
        let mut frame = input.to_vec();
        let mut verdict = XDP_PASS;
        let mut stats: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        let mut conns: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
        for (m, k, v) in case.sets_bytes().expect("hex") {
            if m == "conn_table" {
                conns.insert(k, u32_at(&v, 0));
            }
        }
        for _ in 0..case.repeat {
            let (v, f, st, conn) = lb_model(case, &frame);
            verdict = v;
            frame = f;
            for (i, b) in st {
                let e = stats.entry(i).or_default();
                e.0 += 1;
                e.1 += b;
            }
            if let Some((k, r)) = conn {
                conns.insert(k, r);
            }
        }
        assert_eq!(run.retval, verdict, "{label}");
        assert_eq!(run.data_out, frame, "{label}");
        if case.repeat == 1 && ["tcp_syn.bin", "udp.bin"].contains(&pkt) {
            // Anchors: the VIP flows are balanced (IPIP for TCP, GUE for UDP).
            assert_eq!(run.retval, XDP_TX, "{label}");
            let proto = if pkt == "udp.bin" { 17 } else { 4 };
            assert_eq!(run.data_out[23], proto, "{label}: outer protocol");
        }
        if verdict == XDP_TX {
            assert_eq!(
                inet_csum(&run.data_out[14..34]),
                0,
                "{label}: outer checksum"
            );
        }
        for i in 0..6u32 {
            let v = cpu0(run, "lb_stats", &i.to_le_bytes(), label);
            let (n, b) = stats.get(&i).copied().unwrap_or_default();
            assert_eq!(
                (u64_at(v, 0), u64_at(v, 8)),
                (n, b),
                "{label}: lb_stats[{i}]"
            );
        }
        let got: BTreeMap<Vec<u8>, u32> = run.maps["conn_table"]
            .iter()
            .map(|e| (e.key.clone(), u32_at(&e.values[0], 0)))
            .collect();
        assert_eq!(got, conns, "{label}: conn_table");
    });
}

/// xdp_decap per the C source: (verdict, frame, decap_stats index).
fn decap_model(p: &[u8]) -> (Vec<u8>, u32) {
    let pass = (p.to_vec(), 0);
    if p.len() < 34 || p[12..14] != [0x08, 0x00] || p[14] != 0x45 || be16(p, 20) & 0x3fff != 0 {
        return pass;
    }
    let (strip, proto, stat): (usize, u16, u32) = match p[23] {
        4 => (20, 0x0800, 1),
        41 => (20, 0x86dd, 2),
        17 if p.len() >= 46 && be16(p, 36) == 6080 && p[42] == 0 => match p[43] {
            4 => (32, 0x0800, 3),
            41 => (32, 0x86dd, 3),
            _ => return pass,
        },
        _ => return pass,
    };
    let mut out = p[0..12].to_vec();
    out.extend_from_slice(&proto.to_be_bytes());
    out.extend_from_slice(&p[14 + strip..]);
    (out, stat)
}

#[test]
fn decap_strips_ipip_and_gue() {
    require_kernel!();
    for_each_run("xdp_decap", |case, _pkt, input, run, label| {
        let mut frame = input.to_vec();
        let mut counts = [0u64; 4];
        for _ in 0..case.repeat {
            let (f, stat) = decap_model(&frame);
            frame = f;
            counts[stat as usize] += 1;
        }
        assert_eq!(run.retval, XDP_PASS, "{label}");
        assert_eq!(run.data_out, frame, "{label}");
        for (i, n) in counts.iter().enumerate() {
            let v = cpu0(run, "decap_stats", &(i as u32).to_le_bytes(), label);
            assert_eq!(u64_at(v, 0), *n, "{label}: decap_stats[{i}]");
        }
    });
}

#[test]
fn lb_output_decapsulates_to_the_original() {
    require_kernel!();
    let lb = pending_of("xdp_lb")
        .find(|c| c.repeat == 1 && c.sets.len() > 10)
        .expect("lb case");
    for pkt in ["tcp_syn.bin", "udp.bin"] {
        let input = read_packet(pkt);
        let enc = run_pending(lb, pkt, Cpu::V2);
        assert_eq!(enc.retval, XDP_TX, "{pkt}");
        let obj = object_for("xdp_decap", Cpu::V2).expect("decap object");
        let dec = kernel::run(&obj, "xdp_decap", &enc.data_out, 1, &[]).expect("decap run");
        assert_eq!(dec.retval, XDP_PASS);
        let mut want = GW_MAC.to_vec();
        want.extend_from_slice(&input[0..6]);
        want.extend_from_slice(&input[12..]);
        assert_eq!(dec.data_out, want, "{pkt}: LB then decap");
    }
}

// ---------------------------------------------------------------------
// xdp_fw
// ---------------------------------------------------------------------

/// Longest-prefix match over the case's sets of `map`.
fn lpm(case: &Case, map: &str, addr: &[u8]) -> Option<u32> {
    let mut best: Option<(u32, u32)> = None;
    for (m, k, v) in case.sets_bytes().expect("hex") {
        if m != map {
            continue;
        }
        let plen = u32_at(&k, 0);
        let prefix = &k[4..];
        let matches = (0..plen as usize).all(|bit| {
            let mask = 0x80u8 >> (bit % 8);
            prefix[bit / 8] & mask == addr[bit / 8] & mask
        });
        if matches && best.is_none_or(|(p, _)| plen > p) {
            best = Some((plen, u32_at(&v, 0)));
        }
    }
    best.map(|(_, rule)| rule)
}

#[test]
fn fw_drops_by_longest_prefix() {
    require_kernel!();
    for_each_run("xdp_fw", |case, pkt, input, run, label| {
        let rule = match &input[12..14] {
            [0x08, 0x00] => lpm(case, "blocklist_v4", &input[26..30]),
            [0x86, 0xdd] => lpm(case, "blocklist_v6", &input[22..38]),
            _ => None,
        };
        let (verdict, idx) = match rule {
            Some(r) => (XDP_DROP, r.min(15)),
            None => (XDP_PASS, 0),
        };
        // Anchors: 10.0.0.1/32 is rule 2 in FW_SETS; fd00::1 matches fd00::/64.
        match (case.sets.len(), pkt) {
            (3, "icmp.bin") => assert_eq!((verdict, idx), (XDP_DROP, 2), "{label}"),
            (3, "ipv6.bin") => assert_eq!((verdict, idx), (XDP_DROP, 5), "{label}"),
            (1, "udp.bin") => assert_eq!((verdict, idx), (XDP_DROP, 15), "{label}"),
            _ => {}
        }
        assert_eq!(run.retval, verdict, "{label}");
        assert_eq!(run.data_out, input, "{label}");
        let n = u64::from(case.repeat);
        for i in 0..16u32 {
            let v = cpu0(run, "rule_hits", &i.to_le_bytes(), label);
            let want = if i == idx {
                (n, n * input.len() as u64)
            } else {
                (0, 0)
            };
            assert_eq!((u64_at(v, 0), u64_at(v, 8)), want, "{label}: rule {i}");
        }
        assert_eq!(
            run.maps["blocklist_v4"].len() + run.maps["blocklist_v6"].len(),
            case.sets.len(),
            "{label}: the tries hold what was set"
        );
    });
}

// ---------------------------------------------------------------------
// xdp_icmp_echo
// ---------------------------------------------------------------------

/// One run per the C source: (verdict, frame, echo_stats index).
fn echo_model(p: &[u8]) -> (u32, Vec<u8>, u32) {
    let mut f = p.to_vec();
    if p[12..14] == [0x08, 0x00] && p[14] == 0x45 && p[23] == 1 && p[34] == 8 {
        f[0..6].copy_from_slice(&p[6..12]);
        f[6..12].copy_from_slice(&p[0..6]);
        f[26..30].copy_from_slice(&p[30..34]);
        f[30..34].copy_from_slice(&p[26..30]);
        f[22] = 64;
        f[24..26].copy_from_slice(&[0, 0]);
        let c = inet_csum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f[34] = 0;
        f[36..38].copy_from_slice(&[0, 0]);
        let c = inet_csum(&f[34..]);
        f[36..38].copy_from_slice(&c.to_be_bytes());
        return (XDP_TX, f, 0);
    }
    if p[12..14] == [0x86, 0xdd] && p[20] == 58 && p[54] == 128 {
        f[0..6].copy_from_slice(&p[6..12]);
        f[6..12].copy_from_slice(&p[0..6]);
        f[22..38].copy_from_slice(&p[38..54]);
        f[38..54].copy_from_slice(&p[22..38]);
        f[21] = 64;
        f[54] = 129;
        f[56..58].copy_from_slice(&[0, 0]);
        let c = icmp6_csum(&f[14..54], &f[54..]);
        f[56..58].copy_from_slice(&c.to_be_bytes());
        return (XDP_TX, f, 1);
    }
    (XDP_PASS, f, 2)
}

#[test]
fn icmp_echo_replies_with_valid_checksums() {
    require_kernel!();
    for_each_run("xdp_icmp_echo", |case, pkt, input, run, label| {
        let mut frame = input.to_vec();
        let mut verdict = 0;
        let mut counts = [0u64; 3];
        for _ in 0..case.repeat {
            let (v, f, i) = echo_model(&frame);
            verdict = v;
            frame = f;
            counts[i as usize] += 1;
        }
        assert_eq!(run.retval, verdict, "{label}");
        assert_eq!(run.data_out, frame, "{label}");
        if case.repeat == 1 && pkt.contains("icmp") {
            assert_eq!(run.retval, XDP_TX, "{label}: an echo request is answered");
        }
        let out = &run.data_out;
        if out[12..14] == [0x08, 0x00] && out[23] == 1 {
            assert_eq!(inet_csum(&out[14..34]), 0, "{label}: IPv4 checksum");
            assert_eq!(inet_csum(&out[34..]), 0, "{label}: ICMP checksum");
        }
        if out[12..14] == [0x86, 0xdd] && out[20] == 58 {
            assert_eq!(
                icmp6_csum(&out[14..54], &out[54..]),
                0,
                "{label}: ICMPv6 checksum"
            );
        }
        for (i, n) in counts.iter().enumerate() {
            let v = value(run, "echo_stats", &(i as u32).to_le_bytes());
            assert_eq!(u64_at(v, 0), *n, "{label}: echo_stats[{i}]");
        }
    });
}

// ---------------------------------------------------------------------
// xdp_vlan
// ---------------------------------------------------------------------

fn vlan_model(case: &Case, p: &[u8]) -> (u32, Vec<u8>, usize) {
    let cfg = set_value(case, "vlan_cfg", &[0; 4]).unwrap_or_else(|| vec![0; 8]);
    let (mode, vid) = (
        u32_at(&cfg, 0),
        u16::from_le_bytes([cfg[4], cfg[5]]) & 0x0fff,
    );
    match mode {
        1 => {
            let mut f = p[0..12].to_vec();
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&vid.to_be_bytes());
            f.extend_from_slice(&p[12..]);
            (XDP_TX, f, 0)
        }
        2 if p[12..14] == [0x81, 0x00] || p[12..14] == [0x88, 0xa8] => {
            let mut f = p[0..12].to_vec();
            f.extend_from_slice(&p[16..]);
            (XDP_TX, f, 1)
        }
        _ => (XDP_PASS, p.to_vec(), 2),
    }
}

#[test]
fn vlan_pushes_and_pops_tags() {
    require_kernel!();
    for_each_run("xdp_vlan", |case, pkt, input, run, label| {
        let mut frame = input.to_vec();
        let mut verdict = 0;
        let mut counts = [0u64; 3];
        for _ in 0..case.repeat {
            let (v, f, i) = vlan_model(case, &frame);
            verdict = v;
            frame = f;
            counts[i] += 1;
        }
        assert_eq!(run.retval, verdict, "{label}");
        assert_eq!(run.data_out, frame, "{label}");
        if !case.sets.is_empty() && pkt != "udp.bin" {
            assert_eq!(
                run.retval, XDP_TX,
                "{label}: tagged frames are pushed or popped"
            );
        }
        for (i, n) in counts.iter().enumerate() {
            let v = value(run, "vlan_stats", &(i as u32).to_le_bytes());
            assert_eq!(u64_at(v, 0), *n, "{label}: vlan_stats[{i}]");
        }
    });
}

// ---------------------------------------------------------------------
// xdp_syncookie
// ---------------------------------------------------------------------

fn syncookie_model(case: &Case, p: &[u8]) -> (u32, Vec<u8>) {
    let pass = (XDP_PASS, p.to_vec());
    let Some(t) = five_tuple(p) else { return pass };
    let doff = usize::from(p[46] >> 4) * 4;
    if t.4 != 6 || p[47] & 0x17 != 0x02 || doff < 20 || 34 + doff > p.len() {
        return pass;
    }
    let mss = if doff >= 24 && p[54] == 2 && p[55] == 4 {
        Some(be16(p, 56))
    } else {
        None
    };
    let mss_idx = mss.map_or(0, |m| {
        [536, 1300, 1440, 1460]
            .iter()
            .rposition(|&x| x <= m)
            .unwrap_or(0)
    }) as u32;
    let k = set_value(case, "cookie_key", &[0; 4]).unwrap_or_else(|| vec![0; 16]);
    let k: Vec<u32> = (0..4).map(|i| u32_at(&k, 4 * i)).collect();
    let seq = be32(p, 38);
    let mut h = k[0];
    h = mix(h, t.0 ^ k[1]);
    h = mix(h, t.1 ^ k[2]);
    h = mix(h, ((u32::from(t.2) << 16) | u32::from(t.3)) ^ k[3]);
    h = mix(h, seq);
    let cookie = (fmix(h) & !3) | mss_idx;

    let mut f = p[6..12].to_vec();
    f.extend_from_slice(&p[0..6]);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend(ipv4_hdr(
        p[15],
        40,
        0,
        0x4000,
        64,
        6,
        &p[30..34],
        &p[26..30],
    ));
    let mut tcp = p[36..38].to_vec();
    tcp.extend_from_slice(&p[34..36]);
    tcp.extend_from_slice(&cookie.to_be_bytes());
    tcp.extend_from_slice(&seq.wrapping_add(1).to_be_bytes());
    tcp.extend_from_slice(&[0x50, 0x12]);
    tcp.extend_from_slice(&8192u16.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]);
    let c = l4_csum_v4(&f[14..34], &tcp);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    f.extend(tcp);
    (XDP_TX, f)
}

#[test]
fn syncookie_answers_syns() {
    require_kernel!();
    for_each_run("xdp_syncookie", |case, pkt, input, run, label| {
        let (verdict, frame) = syncookie_model(case, input);
        assert_eq!(
            verdict == XDP_TX,
            pkt == "tcp_syn.bin",
            "{label}: only the SYN is answered"
        );
        assert_eq!(run.retval, verdict, "{label}");
        assert_eq!(run.data_out, frame, "{label}");
        if verdict == XDP_TX {
            let out = &run.data_out;
            assert_eq!(out.len(), 54, "{label}");
            assert_eq!(inet_csum(&out[14..34]), 0, "{label}: IPv4 checksum");
            assert_eq!(
                l4_csum_v4(&out[14..34], &out[34..]),
                0,
                "{label}: TCP checksum"
            );
            assert_eq!(be32(out, 42), be32(input, 38) + 1, "{label}: ack");
            if pkt == "tcp_syn.bin" {
                // MSS 1460 -> index 3 in the cookie's low bits.
                assert_eq!(be32(out, 38) & 3, 3, "{label}");
            }
        }
        let sent = u64::from(verdict == XDP_TX);
        assert_eq!(
            u64_at(value(run, "syncookie_stats", &0u32.to_le_bytes()), 0),
            sent,
            "{label}"
        );
        assert_eq!(
            u64_at(value(run, "syncookie_stats", &1u32.to_le_bytes()), 0),
            1 - sent,
            "{label}"
        );
    });
}

// ---------------------------------------------------------------------
// xdp_stats
// ---------------------------------------------------------------------

fn stats_model(p: &[u8]) -> (u32, u32) {
    match &p[12..14] {
        [0x08, 0x00] if p.len() >= 34 => (
            if p[23] == 1 { XDP_DROP } else { XDP_PASS },
            u32::from(p[23]),
        ),
        [0x08, 0x00] => (XDP_ABORTED, 0x10800),
        [0x86, 0xdd] if p.len() >= 54 => (
            if p[20] == 58 { XDP_DROP } else { XDP_PASS },
            u32::from(p[20]),
        ),
        [0x86, 0xdd] => (XDP_ABORTED, 0x186dd),
        _ => (XDP_PASS, 0x10000 | u32::from(be16(p, 12))),
    }
}

#[test]
fn stats_count_per_cpu_by_action_and_protocol() {
    require_kernel!();
    for_each_run("xdp_stats", |case, _pkt, input, run, label| {
        let (action, proto) = stats_model(input);
        let n = u64::from(case.repeat);
        let bytes = n * input.len() as u64;
        assert_eq!(run.retval, action, "{label}");
        assert_eq!(run.data_out, input, "{label}");
        for a in 0..5u32 {
            let v = cpu0(run, "action_stats", &a.to_le_bytes(), label);
            let want = if a == action { (n, bytes) } else { (0, 0) };
            assert_eq!((u64_at(v, 0), u64_at(v, 8)), want, "{label}: action {a}");
        }
        assert_eq!(run.maps["proto_stats"].len(), 1, "{label}");
        let v = cpu0(run, "proto_stats", &proto.to_le_bytes(), label);
        assert_eq!(
            (u64_at(v, 0), u64_at(v, 8)),
            (n, bytes),
            "{label}: proto {proto:#x}"
        );
    });
}

// ---------------------------------------------------------------------
// xdp_redirector
// ---------------------------------------------------------------------

#[test]
fn redirector_targets_and_fallbacks() {
    require_kernel!();
    for_each_run("xdp_redirector", |case, _pkt, input, run, label| {
        let ipv6 = input[12..14] == [0x86, 0xdd];
        let (slot, verdict) = match case.prog {
            // Key dst MAC[5] & 7 = 2; filled -> redirect, else the XDP_PASS fallback.
            "xdp_redir_devmap" => (
                0,
                if case.sets.is_empty() {
                    XDP_PASS
                } else {
                    XDP_REDIRECT
                },
            ),
            "xdp_redir_devhash" => (
                1,
                if case.sets.is_empty() {
                    XDP_DROP
                } else {
                    XDP_REDIRECT
                },
            ),
            // Only CPU 0's entry is set: IPv6 frames use key 1.
            "xdp_redir_cpumap" => (
                2,
                if ipv6 || case.sets.is_empty() {
                    XDP_PASS
                } else {
                    XDP_REDIRECT
                },
            ),
            // Flags 0 -> redirect; non-zero flags -> aborted.
            "xdp_redir_ifindex" => (
                3,
                if case.sets.is_empty() {
                    XDP_REDIRECT
                } else {
                    XDP_ABORTED
                },
            ),
            other => panic!("{other}"),
        };
        assert_eq!(run.retval, verdict, "{label}");
        assert_eq!(run.data_out, input, "{label}");
        for i in 0..4u32 {
            let want = if i == slot { verdict } else { 0 };
            assert_eq!(
                u32_at(value(run, "redir_rets", &i.to_le_bytes()), 0),
                want,
                "{label}: rets[{i}]"
            );
        }
        for (m, k, v) in case.sets_bytes().expect("hex") {
            if m != "redir_cfg" {
                assert_eq!(value(run, &m, &k), &v[..], "{label}: {m}");
            }
        }
    });
}

// ---------------------------------------------------------------------
// xdp_core
// ---------------------------------------------------------------------

#[test]
fn core_relocations_resolve_against_the_kernel() {
    require_kernel!();
    for_each_run("xdp_core", |case, _pkt, input, run, label| {
        assert_eq!(run.retval, XDP_PASS, "{label}");
        assert_eq!(run.data_out, input, "{label}");
        let full = case.prog == "xdp_core";
        let f = value(run, "core_out", &u32::from(!full).to_le_bytes());
        let g = |i: usize| u32_at(f, 8 + 4 * i);
        assert_eq!(u64_at(f, 0), u64::from(case.repeat), "{label}: runs");
        assert_eq!(g(2), input.len() as u32, "{label}: len");
        assert_eq!(g(3), u32::from(be16(input, 12)), "{label}: h_proto");
        if input[12..14] == [0x08, 0x00] {
            assert_eq!(g(4), u32::from(input[22]), "{label}: ttl");
            assert_eq!(g(5), u32::from(input[23]), "{label}: protocol");
            assert_eq!(g(6), u32_at(input, 26), "{label}: saddr");
            assert_eq!(g(7), u32::from(be16(input, 16)), "{label}: tot_len");
        } else {
            assert_eq!((g(4), g(5), g(6), g(7)), (0, 0, 0, 0), "{label}");
        }
        if full {
            // The test run's default context: loopback (ifindex 1), queue 0.
            assert_eq!((g(0), g(1)), (1, 0), "{label}: ifindex, rx queue");
            // egress_ifindex exists, saddr is 4 bytes, tot_len at 2,
            // rx_queue_index at 16, struct iphdr exists, ethhdr is 14
            // bytes, XDP_TX is 3.
            assert_eq!(
                (8..15).map(g).collect::<Vec<_>>(),
                vec![1, 4, 2, 16, 1, 14, 3],
                "{label}"
            );
        } else {
            assert_eq!((8..15).map(g).collect::<Vec<_>>(), vec![0; 7], "{label}");
        }
    });
}

// ---------------------------------------------------------------------
// xdp_loop
// ---------------------------------------------------------------------

/// The TCP option walk, written here: (calls, mss, wscale, sack, tsval,
/// tsecr, nops, unknown, end offset).
fn walk_options(tcp: &[u8]) -> [u32; 9] {
    let end = usize::from(tcp[12] >> 4) * 4;
    let (mut off, mut r) = (20usize, [0u32; 9]);
    for _ in 0..16 {
        r[0] += 1;
        if off >= end || off >= tcp.len() {
            break;
        }
        match tcp[off] {
            0 => break,
            1 => {
                r[6] += 1;
                off += 1;
                continue;
            }
            _ => {}
        }
        if off + 2 > end || off + 2 > tcp.len() {
            break;
        }
        let len = usize::from(tcp[off + 1]);
        if len < 2 || off + len > end {
            break;
        }
        match (tcp[off], len) {
            (2, 4) => r[1] = u32::from(be16(tcp, off + 2)),
            (3, 3) => r[2] = u32::from(tcp[off + 2]),
            (4, 2) => r[3] = 1,
            (8, 10) => {
                r[4] = be32(tcp, off + 2);
                r[5] = be32(tcp, off + 6);
            }
            (2..=4, _) | (8, _) => {}
            _ => r[7] += 1,
        }
        off += len;
    }
    r[8] = off as u32;
    r
}

#[test]
fn loop_walks_tcp_options() {
    require_kernel!();
    for_each_run("xdp_loop", |_case, pkt, input, run, label| {
        assert_eq!(run.retval, XDP_PASS, "{label}");
        assert_eq!(run.data_out, input, "{label}");
        let v = value(run, "tcpopt_seen", &0u32.to_le_bytes());
        let got: Vec<u32> = (0..10).map(|i| u32_at(v, 4 * i)).collect();
        if input[12..14] != [0x08, 0x00] || input[23] != 6 {
            assert_eq!(got, vec![0; 10], "{label}: untouched");
            return;
        }
        let ihl = usize::from(input[14] & 0xf) * 4;
        let r = walk_options(&input[14 + ihl..]);
        // bpf_loop returns the number of callback calls.
        let mut want = vec![r[0]];
        want.extend_from_slice(&r);
        assert_eq!(got, want, "{label}");
        if pkt == "tcp_syn.bin" {
            // MSS 1460, SACK, TS 0x01020304/0, NOP, WS 7: 5 options + the end.
            assert_eq!(
                want,
                vec![6, 6, 1460, 7, 1, 0x0102_0304, 0, 1, 0, 40],
                "{label}"
            );
        }
    });
}

// ---------------------------------------------------------------------
// xdp_spinlock
// ---------------------------------------------------------------------

#[test]
fn spinlock_updates_all_fields_together() {
    require_kernel!();
    for_each_run("xdp_spinlock", |case, _pkt, input, run, label| {
        assert_eq!(run.retval, XDP_PASS, "{label}");
        let n = u64::from(case.repeat);
        let len = input.len() as u32;
        let proto = u32::from(be16(input, 12));
        let class = match proto {
            0x0800 => 0u32,
            0x86dd => 1,
            _ => 2,
        };
        // lock (reads as 0), last, packets, bytes, min, max.
        let mut acct = vec![0u8; 8];
        acct[4..8].copy_from_slice(&len.to_le_bytes());
        acct.extend_from_slice(&n.to_le_bytes());
        acct.extend_from_slice(&(n * u64::from(len)).to_le_bytes());
        acct.extend_from_slice(&len.to_le_bytes());
        acct.extend_from_slice(&len.to_le_bytes());
        for c in 0..3u32 {
            let want = if c == class {
                acct.clone()
            } else {
                vec![0; 32]
            };
            assert_eq!(
                value(run, "acct_array", &c.to_le_bytes()),
                &want[..],
                "{label}: class {c}"
            );
        }
        assert_eq!(run.maps["acct_hash"].len(), 1, "{label}");
        assert_eq!(
            value(run, "acct_hash", &proto.to_le_bytes()),
            &acct[..],
            "{label}"
        );
    });
}

// ---------------------------------------------------------------------
// xdp_fib
// ---------------------------------------------------------------------

#[test]
fn fib_forwards_by_the_routing_table() {
    require_kernel!();
    // BPF_FIB_LKUP_RET_*: SUCCESS 0, BLACKHOLE 1, NOT_FWDED 4.
    for_each_run("xdp_fib", |_case, pkt, input, run, label| {
        let r = value(run, "fib_last", &0u32.to_le_bytes());
        let (rc, ifindex, verdict, lookups) =
            (u32_at(r, 0), u32_at(r, 4), u32_at(r, 8), u32_at(r, 12));
        match pkt {
            "fib_fwd.bin" => {
                assert_eq!(run.retval, XDP_REDIRECT, "{label}");
                assert_eq!(
                    (rc, ifindex, verdict, lookups),
                    (0, 10, XDP_REDIRECT, 1),
                    "{label}"
                );
                let mut want = input.to_vec();
                want[0..6].copy_from_slice(&[2, 0, 0, 0, 1, 0xfe]);
                want[6..12].copy_from_slice(&[2, 0, 0, 0, 1, 1]);
                want[22] -= 1;
                want[24..26].copy_from_slice(&[0, 0]);
                let c = inet_csum(&want[14..34]);
                want[24..26].copy_from_slice(&c.to_be_bytes());
                assert_eq!(run.data_out, want, "{label}");
            }
            "fib_blackhole.bin" => {
                assert_eq!(run.retval, XDP_DROP, "{label}");
                assert_eq!((rc, verdict, lookups), (1, XDP_DROP, 1), "{label}");
                assert_eq!(run.data_out, input, "{label}");
            }
            "icmp.bin" => {
                // 10.0.0.2 has no route in the namespace.
                assert_eq!(run.retval, XDP_PASS, "{label}");
                assert_eq!((rc, verdict, lookups), (4, XDP_PASS, 1), "{label}");
                assert_eq!(run.data_out, input, "{label}");
            }
            _ => {
                assert_eq!(run.retval, XDP_PASS, "{label}");
                assert_eq!(r, &[0u8; 16], "{label}: no lookup");
                assert_eq!(run.data_out, input, "{label}");
            }
        }
    });
}

// ---------------------------------------------------------------------
// xdp_adjust_tail: the kernel selftests' documented expectations
// ---------------------------------------------------------------------

#[test]
fn adjust_tail_selftest_expectations() {
    require_kernel!();
    for_each_run("xdp_adjust_tail", |case, pkt, input, run, label| {
        let (verdict, len) = match (case.prog, input.len()) {
            ("xdp_tail_grow", 74) => (XDP_TX, 114),
            ("xdp_tail_shrink", 74) => (XDP_TX, 54),
            (_, 54) => (XDP_DROP, 54),
            other => panic!("{other:?}"),
        };
        assert_eq!(run.retval, verdict, "{label}");
        assert_eq!(run.data_out.len(), len, "{label}");
        let keep = len.min(input.len());
        assert_eq!(&run.data_out[..keep], &input[..keep], "{label}");
        assert!(
            run.data_out[keep..].iter().all(|b| *b == 0),
            "{label}: grown bytes are zeroed"
        );
        if pkt == "pkt_v6.bin" {
            assert_eq!(input.len(), 74, "the selftests' pkt_v6");
        }
    });
    // A 128-byte frame grows to the largest linear frame: 4096 - 256 - 320.
    for cpu in cpus("xdp_adjust_tail") {
        let obj = object_for("xdp_adjust_tail", cpu).expect("object");
        let run = kernel::run(&obj, "xdp_tail_grow", &[0x5a; 128], 1, &[]).expect("run");
        assert_eq!(run.retval, XDP_TX, "{cpu:?}");
        assert_eq!(run.data_out.len(), 3520, "{cpu:?}");
    }
}

#[test]
fn issue5_packets_are_what_gen_py_documents() {
    let p = read_packet("pkt_v6.bin");
    assert_eq!(p.len(), 74);
    assert_eq!(&p[12..14], &[0x86, 0xdd]);
    assert_eq!((be16(&p, 18), p[20]), (123, 6), "payload_len, nexthdr");
    assert_eq!(
        (p[54 + 12], &p[54 + 18..54 + 20]),
        (0x50, &[123u8, 0][..]),
        "doff, urg_ptr"
    );
    let p = read_packet("pkt_v4.bin");
    assert_eq!(p.len(), 54);
    assert_eq!((p[14], be16(&p, 16), p[23]), (5, 123, 6));
    for name in [
        "ipip.bin",
        "gue.bin",
        "gue_ip6.bin",
        "fib_fwd.bin",
        "fib_blackhole.bin",
    ] {
        let p = read_packet(name);
        assert_eq!(inet_csum(&p[14..34]), 0, "{name}: outer IPv4 checksum");
        assert_eq!(usize::from(be16(&p, 16)), p.len() - 14, "{name}: tot_len");
    }
    let ipip = read_packet("ipip.bin");
    assert_eq!(ipip[23], 4);
    assert_eq!(inet_csum(&ipip[34..54]), 0, "inner checksum");
    let gue = read_packet("gue.bin");
    assert_eq!((be16(&gue, 36), &gue[42..46]), (6080, &[0u8, 4, 0, 0][..]));
    assert_eq!(be16(&gue, 38) as usize, gue.len() - 34, "UDP length");
    let gue6 = read_packet("gue_ip6.bin");
    assert_eq!((gue6[43], gue6[46] >> 4), (41, 6));
    let vq = read_packet("vlan_q.bin");
    assert_eq!(
        (&vq[12..14], be16(&vq, 14), &vq[16..18]),
        (&[0x81u8, 0][..], (3 << 13) | 5, &[8u8, 0][..])
    );
}
