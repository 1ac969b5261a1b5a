//! The data plane against the kernel: a capture of the bpf-progs packets replayed by
//! one worker equals BPF_PROG_TEST_RUN of the same frames in the same order (each
//! output frame, its verdict, and every map at the end), in both engines; two
//! workers give the same per-CPU sums and counters as one; bad captures and worker
//! counts are clear errors.
//!
//! Unsafe code: `sched_setaffinity`, to run the kernel's test runs on CPU 0, the
//! per-CPU slot of worker 0.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use dataplane::capture::{CaptureSource, PcapSink, VerdictSinks};
use dataplane::{
    CaptureError, Config, Counter, Counts, Dataplane, DataplaneError, Engine, FrameMeta, OutFrame,
    ReplayOptions, SharedCounters, Sink, Summary, Verdict,
};
use runtime::LoadedObject;

#[path = "dataplane/live.rs"]
mod live;
#[path = "dataplane/timers.rs"]
mod timers;

/// The programs of the issue, with the control-plane entries their cases write.
/// Control-plane entries: (map, key hex, value hex).
type Sets = &'static [(&'static str, &'static str, &'static str)];

fn programs() -> Vec<(&'static str, Sets)> {
    vec![
        ("xdp_counter", &[]),
        // Port 6666 blocked (as the bpf-progs cases set it).
        ("xdp_parser", &[("port_blocklist", "1a0a", "01")]),
        ("xdp_fw", bpf_progs::FW_SETS),
        ("xdp_lb", bpf_progs::LB_SETS),
        ("xdp_icmp_echo", &[]),
    ]
}

const BASE: &[&str] = &[
    "icmp.bin",
    "udp.bin",
    "tcp_syn.bin",
    "ipv6.bin",
    "ipv6_icmp.bin",
    "vlan_udp.bin",
    "ipv4_opts.bin",
    "bad_ihl.bin",
    "blocked_port.bin",
    "ipip.bin",
    "gue.bin",
    "gue_ip6.bin",
    "vlan_q.bin",
    "fib_fwd.bin",
    "pkt_v4.bin",
    "pkt_v6.bin",
    "short.bin",
];

/// Several hundred frames: the bpf-progs packets in rounds, with IPv4 source
/// addresses and TCP/UDP source ports varied (more flows, other firewall rules and
/// load-balancer slots), some padded to other sizes, plus runts, a frame of exactly
/// the limit and frames over it (jumbo frames).
fn mixed_frames() -> Vec<Vec<u8>> {
    let base: Vec<Vec<u8>> = BASE
        .iter()
        .map(|n| std::fs::read(bpf_progs::packet(n)).expect(n))
        .collect();
    let mut out = Vec::new();
    for round in 0..24u32 {
        for (i, b) in base.iter().enumerate() {
            let mut f = b.clone();
            let ipv4 = f.len() >= 38 && f[12..14] == [8, 0] && f[14] == 0x45;
            if ipv4 && round % 2 == 1 && matches!(f[23], 6 | 17) {
                f[34..36].copy_from_slice(&(40000 + round as u16).to_be_bytes());
            }
            if ipv4 && round % 4 == 2 {
                f[29] = (round % 7) as u8 + 1;
            }
            if round % 3 == 2 && f.len() >= 14 {
                let pad = (37 * (round as usize + i)) % 1400;
                f.extend((0..pad).map(|k| k as u8));
            }
            out.push(f);
        }
        match round {
            5 => out.push(Vec::new()),
            7 => out.push(vec![0xff; 13]),
            9 => out.push(vec![0; 1]),
            11 => {
                let mut f = base[1].clone();
                f.resize(runtime::xdp::MAX_PACKET, 0x5a);
                out.push(f);
            }
            13 | 17 => {
                let mut f = base[0].clone();
                f.resize(runtime::xdp::MAX_PACKET + 1, 0xa5);
                out.push(f);
            }
            19 => {
                let mut f = base[2].clone();
                f.resize(9000, 0x33);
                out.push(f);
            }
            _ => {}
        }
    }
    out
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dataplane-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// `frames` as a classic pcap file.
fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut sink = PcapSink::create(path).expect("create pcap");
    for (i, f) in frames.iter().enumerate() {
        let meta = FrameMeta::new(std::time::Duration::from_micros(1_000 * i as u64), f.len());
        sink.write(f, &meta).expect("write frame");
    }
    Sink::flush(&mut sink).expect("flush");
}

/// Every frame a replay sent, in the order sent, whatever its verdict.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Frame>>>);

/// A frame out of a replay: its verdict and bytes (metadata included).
type Frame = (Verdict, Vec<u8>);

impl Sink for Collect {
    fn send(&mut self, frame: &OutFrame<'_>) -> Result<(), DataplaneError> {
        let mut bytes = frame.meta.to_vec();
        bytes.extend_from_slice(frame.data);
        self.0.lock().unwrap().push((frame.verdict, bytes));
        Ok(())
    }
    fn flush(&mut self) -> Result<(), DataplaneError> {
        Ok(())
    }
}

fn collecting_sinks() -> (VerdictSinks, Collect) {
    let c = Collect::default();
    let mut sinks = VerdictSinks::default();
    for v in Verdict::ALL {
        sinks.set(v, Box::new(c.clone()));
    }
    (sinks, c)
}

fn hex(s: &str) -> Vec<u8> {
    bpf_progs::hex_decode(s).expect("hex")
}

struct Ours {
    store: maps::Store,
    loaded: LoadedObject,
}

fn load_ours(object: &loader::Object, sets: &[(&str, &str, &str)]) -> Ours {
    let store = maps::Store::anonymous(maps::StoreOptions::default()).expect("store");
    let loaded = LoadedObject::load(object, &store).expect("load");
    for (m, k, v) in sets {
        loaded
            .update_entry(m, &hex(k), &hex(v), 0)
            .unwrap_or_else(|e| panic!("set {m}: {e}"));
    }
    Ours { store, loaded }
}

fn replay_file(
    ours: &Ours,
    prog: &str,
    engine: Engine,
    workers: u32,
    pcap: &Path,
) -> (Summary, Vec<(Verdict, Vec<u8>)>) {
    let index = ours.loaded.program_index(Some(prog)).expect("program");
    let config = Config {
        engine,
        workers,
        ..Default::default()
    };
    let dp = Dataplane::new(&ours.store, &ours.loaded, index, config).expect("data plane");
    let mut source = CaptureSource::open(pcap).expect("open capture");
    let (mut sinks, collected) = collecting_sinks();
    let summary = dataplane::replay(
        &dp,
        &mut source,
        Some(&mut sinks),
        &ReplayOptions::default(),
    )
    .expect("replay");
    let out = std::mem::take(&mut *collected.0.lock().unwrap());
    (summary, out)
}

/// Every entry of every map of the object in our store: key -> value bytes (per-CPU
/// values: each CPU's `value_size` bytes, concatenated).
fn our_maps(loaded: &LoadedObject) -> BTreeMap<String, BTreeMap<Vec<u8>, Vec<Vec<u8>>>> {
    loaded
        .maps
        .iter()
        .map(|m| {
            let entries = m.map.dump().expect("dump");
            (
                m.name.clone(),
                entries.into_iter().map(|e| (e.key, e.values)).collect(),
            )
        })
        .collect()
}

fn kernel_maps(
    ko: &kclient::KernelObject,
    loaded: &LoadedObject,
) -> BTreeMap<String, BTreeMap<Vec<u8>, Vec<Vec<u8>>>> {
    loaded
        .maps
        .iter()
        .map(|m| {
            let vs = m.info.value_size as usize;
            let percpu = runtime::is_percpu(m.info.map_type);
            let keys = ko.keys(&m.name).expect("kernel keys");
            let entries = keys
                .into_iter()
                .filter_map(|k| {
                    let v = ko.lookup_elem(&m.name, &k).expect("kernel lookup")?;
                    let values = if percpu {
                        v.chunks(vs.div_ceil(8) * 8)
                            .map(|c| c[..vs].to_vec())
                            .collect()
                    } else {
                        vec![v]
                    };
                    Some((k, values))
                })
                .collect();
            (m.name.clone(), entries)
        })
        .collect()
}

/// Runs the rest of the calling thread on CPU 0, where worker 0's per-CPU slot is;
/// false if that is not allowed.
fn pin_to_cpu0() -> bool {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and
    // sched_setaffinity(0, ...) only touch that set and the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

fn sum_slots(values: &[Vec<u8>]) -> Vec<u64> {
    let words = values[0].len() / 8;
    (0..words)
        .map(|w| {
            values
                .iter()
                .map(|v| u64::from_ne_bytes(v[8 * w..8 * w + 8].try_into().unwrap()))
                .sum()
        })
        .collect()
}

#[test]
fn replay_equals_the_kernel_packet_by_packet() {
    let dir = temp_dir("kernel");
    let frames = mixed_frames();
    assert!(frames.len() >= 400, "{} frames", frames.len());
    let pcap = dir.join("mixed.pcap");
    write_pcap(&pcap, &frames);
    let kernel = kclient::available();
    if let Err(why) = &kernel {
        kclient::skip(
            "the kernel comparison of replay (replaying without it)",
            why,
        );
    }
    let pinned = kernel.is_ok() && pin_to_cpu0();
    for (name, sets) in programs() {
        let bytes = std::fs::read(bpf_progs::object(name)).expect("object");
        let object = loader::Object::parse(&bytes).expect("parse");
        for engine in [Engine::Interpreter, Engine::Jit] {
            let what = format!("{name} ({engine:?})");
            let ours = load_ours(&object, sets);
            let (summary, out) = replay_file(&ours, name, engine, 1, &pcap);
            assert_eq!(
                out.len(),
                frames.len(),
                "{what}: every frame comes out once"
            );
            let t = summary.total();
            assert_eq!(t.get(Counter::Packets), frames.len() as u64, "{what}");
            assert_eq!(t.get(Counter::Errors), 0, "{what}: no run trapped");
            let mut seen = Counts::default();
            for (i, (f, (verdict, data))) in frames.iter().zip(&out).enumerate() {
                seen.0[verdict.counter() as usize] += 1;
                if f.len() < 14 {
                    assert_eq!(*verdict, Verdict::Runt, "{what}: frame {i}");
                    assert_eq!(data, f, "{what}: a runt goes out as it came");
                } else if f.len() > runtime::xdp::MAX_PACKET {
                    assert_eq!(*verdict, Verdict::Oversize, "{what}: frame {i}");
                    assert_eq!(data, f, "{what}: frame {i}");
                } else {
                    assert!(verdict.ran(), "{what}: frame {i} of {} bytes ran", f.len());
                }
            }
            for v in Verdict::ALL {
                assert_eq!(seen.get(v.counter()), t.get(v.counter()), "{what}: {v:?}");
            }
            println!("{what}: {:?}", comparable(&t));
            // Every program acts on some frames (the capture reaches its paths).
            let acted = t.get(Counter::Tx) + t.get(Counter::Drop) + t.get(Counter::Redirect);
            assert!(
                acted > 0 && t.get(Counter::Pass) + acted > 300,
                "{what}: {t:?}"
            );
            let info = ours
                .store
                .program_by_id(
                    ours.loaded.programs[ours.loaded.program_index(Some(name)).unwrap()].store_id,
                )
                .expect("program info");
            let runs = frames
                .iter()
                .filter(|f| (14..=runtime::xdp::MAX_PACKET).contains(&f.len()))
                .count();
            assert_eq!(info.run_cnt, runs as u64, "{what}: run_cnt in the store");
            if kernel.is_err() {
                continue;
            }
            // The kernel, frame by frame, in the same order, on one load.
            let ko = kclient::KernelObject::load(&object).expect("kernel load");
            let ncpus = maps::possible_cpus() as usize;
            for (m, k, v) in sets {
                let mut v = hex(v);
                let info = ours.loaded.maps.by_name(m).expect("map").info.clone();
                if runtime::is_percpu(info.map_type) {
                    let stride = (info.value_size as usize).div_ceil(8) * 8;
                    v.resize(stride, 0);
                    v = v.repeat(ncpus);
                }
                ko.update_elem(m, &hex(k), &v, 0).expect("kernel set");
            }
            for (i, (f, (verdict, data))) in frames.iter().zip(&out).enumerate() {
                if f.len() > runtime::xdp::MAX_PACKET {
                    // The kernel's test run puts the bytes past 3520 in frags (the
                    // program sees 3520), which a real interface never gives a
                    // program without frags support: the data plane does not run
                    // such frames (checked above), so neither does the kernel here.
                    continue;
                }
                let run = ko.test_run(name, f, 1);
                if f.len() < 14 {
                    let err = run.expect_err("the kernel refuses a runt");
                    assert!(
                        err.to_string().contains("Invalid argument"),
                        "{what}: {err}"
                    );
                    continue;
                }
                let k = run.unwrap_or_else(|e| panic!("{what}: frame {i}: {e}"));
                assert_eq!(
                    *verdict,
                    Verdict::from_retval(k.retval),
                    "{what}: frame {i} verdict (kernel retval {})",
                    k.retval
                );
                assert_eq!(
                    bpf_progs::hex_encode(data),
                    bpf_progs::hex_encode(&k.data_out),
                    "{what}: frame {i} output"
                );
            }
            let (mine, theirs) = (our_maps(&ours.loaded), kernel_maps(&ko, &ours.loaded));
            for (map, entries) in &mine {
                let kmap = &theirs[map];
                let info = ours.loaded.maps.by_name(map).unwrap().info.clone();
                if runtime::is_percpu(info.map_type) && !pinned {
                    // Without CPU 0 the kernel's slot differs: compare the sums.
                    let a: BTreeMap<_, _> =
                        entries.iter().map(|(k, v)| (k, sum_slots(v))).collect();
                    let b: BTreeMap<_, _> = kmap.iter().map(|(k, v)| (k, sum_slots(v))).collect();
                    assert_eq!(a, b, "{what}: map {map} (sums over CPUs)");
                } else {
                    assert_eq!(entries, kmap, "{what}: map {map}");
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The counts without the ones that differ between runs (time, which slots exist).
fn comparable(c: &Counts) -> Vec<(&'static str, u64)> {
    Counter::ALL
        .iter()
        .filter(|k| !matches!(k, Counter::RunNs | Counter::Active))
        .map(|k| (k.name(), c.get(*k)))
        .collect()
}

#[test]
fn two_workers_sum_to_one() {
    let dir = temp_dir("workers");
    let frames = mixed_frames();
    let pcap = dir.join("mixed.pcap");
    write_pcap(&pcap, &frames);
    let ncpus = maps::possible_cpus();
    if ncpus < 2 {
        println!(
            "SKIP: two workers need a store with two per-CPU slots (this host has {ncpus} CPU)"
        );
        return;
    }
    // Programs whose state is per-CPU (statistics arrays) besides read-only config.
    for (name, sets, stats) in [
        (
            "xdp_parser",
            &[("port_blocklist", "1a0a", "01")][..],
            "stats_map",
        ),
        ("xdp_fw", bpf_progs::FW_SETS, "rule_hits"),
    ] {
        let bytes = std::fs::read(bpf_progs::object(name)).expect("object");
        let object = loader::Object::parse(&bytes).expect("parse");
        for engine in [Engine::Interpreter, Engine::Jit] {
            let what = format!("{name} ({engine:?})");
            let one = load_ours(&object, sets);
            let (s1, out1) = replay_file(&one, name, engine, 1, &pcap);
            let two = load_ours(&object, sets);
            let (s2, out2) = replay_file(&two, name, engine, 2, &pcap);
            assert_eq!(
                comparable(&s1.total()),
                comparable(&s2.total()),
                "{what}: totals"
            );
            assert_eq!(s2.per_worker.len(), 2, "{what}");
            for (w, c) in &s2.per_worker {
                assert!(c.get(Counter::Packets) > 50, "{what}: worker {w} got {c:?}");
            }
            // The same frames came out with the same verdicts (order differs).
            let mut a = out1.clone();
            let mut b = out2.clone();
            a.sort();
            b.sort();
            assert_eq!(a, b, "{what}: output frames");
            // Per-CPU maps: the sums over slots match; in the 2-worker run each
            // worker's frames are counted in its own slot only.
            let (m1, m2) = (our_maps(&one.loaded), our_maps(&two.loaded));
            for (map, e1) in &m1 {
                let info = one.loaded.maps.by_name(map).unwrap().info.clone();
                if !runtime::is_percpu(info.map_type) {
                    continue;
                }
                let e2 = &m2[map];
                let sums1: BTreeMap<_, _> = e1.iter().map(|(k, v)| (k, sum_slots(v))).collect();
                let sums2: BTreeMap<_, _> = e2.iter().map(|(k, v)| (k, sum_slots(v))).collect();
                assert_eq!(sums1, sums2, "{what}: map {map}");
                for (k, v) in e1 {
                    for slot in &v[1..] {
                        assert!(
                            slot.iter().all(|&b| b == 0),
                            "{what}: 1 worker wrote slot >0 of {map} {k:?}"
                        );
                    }
                }
            }
            // Each worker's frames in its own slot: the stats map's first word
            // summed over keys is that worker's count of some packet class, and
            // both slots are written.
            let e2 = &m2[stats];
            for slot in 0..2 {
                assert!(
                    e2.values().any(|v| v[slot].iter().any(|&b| b != 0)),
                    "{what}: {stats} slot {slot} written by worker {slot}"
                );
            }
            // The counters another process reads from the store match the summary.
            let shared = SharedCounters::list(&two.store);
            assert_eq!(shared.len(), 1, "{what}");
            assert_eq!(shared[0].program(), name);
            let read = shared[0].read().expect("read counters");
            let read: Vec<_> = read.iter().map(|(w, c)| (*w, comparable(c))).collect();
            let summary: Vec<_> = s2
                .per_worker
                .iter()
                .map(|(w, c)| (*w, comparable(c)))
                .collect();
            assert_eq!(read, summary, "{what}: counters in the store");
            // run_cnt counts every run of both workers.
            let id = two.loaded.programs[two.loaded.program_index(Some(name)).unwrap()].store_id;
            let t = s2.total();
            let runs = t.get(Counter::Packets) - t.get(Counter::Runt) - t.get(Counter::Oversize);
            assert_eq!(two.store.program_by_id(id).unwrap().run_cnt, runs, "{what}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_flow_stays_on_its_worker_in_capture_order() {
    // xdp_counter's hash counts frames by length: with each length its own flow
    // (source port = length), each key's count is exact only if one worker ran
    // the whole flow (no lost update between two workers' lookup and update).
    let dir = temp_dir("flows");
    let udp = std::fs::read(bpf_progs::packet("udp.bin")).unwrap();
    let mut frames = Vec::new();
    for rep in 0..20 {
        for len in 74..135u16 {
            let mut f = udp.clone();
            f[34..36].copy_from_slice(&len.to_be_bytes());
            f.resize(len as usize, rep as u8);
            frames.push(f);
        }
    }
    let pcap = dir.join("flows.pcap");
    write_pcap(&pcap, &frames);
    if maps::possible_cpus() < 2 {
        println!("SKIP: two workers need two per-CPU slots");
        return;
    }
    let object =
        loader::Object::parse(&std::fs::read(bpf_progs::object("xdp_counter")).unwrap()).unwrap();
    let ours = load_ours(&object, &[]);
    let (summary, out) = replay_file(&ours, "xdp_counter", Engine::Jit, 2, &pcap);
    assert_eq!(summary.total().get(Counter::Tx), frames.len() as u64);
    for (w, c) in &summary.per_worker {
        assert!(c.get(Counter::Packets) > 200, "worker {w}: {c:?}");
    }
    let counts = &our_maps(&ours.loaded)["counter_map"];
    assert_eq!(counts.len(), 61);
    for (k, v) in counts {
        // The seed's counting: the first frame stores 0, the 20th 19.
        assert_eq!(v[0], 19u32.to_ne_bytes().to_vec(), "length {k:?}");
    }
    // Per flow, the frames came out in capture order (the padding byte is the round).
    for len in 74..135usize {
        let rounds: Vec<u8> = out
            .iter()
            .filter(|(_, d)| d.len() == len)
            .map(|(_, d)| d[len - 1])
            .collect();
        if len > 74 {
            assert_eq!(rounds, (0..20).collect::<Vec<u8>>(), "length {len}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_captures_and_worker_counts_are_clear_errors() {
    let dir = temp_dir("errors");
    // Missing file.
    let err = CaptureSource::open(&dir.join("none.pcap")).unwrap_err();
    assert!(matches!(err, CaptureError::Open { .. }), "{err}");
    assert!(err.to_string().contains("none.pcap"), "{err}");
    // Not a capture: a raw frame.
    let err = CaptureSource::open(&bpf_progs::packet("udp.bin")).unwrap_err();
    assert!(matches!(err, CaptureError::NotACapture { .. }), "{err}");
    // A pcap of raw IP (LINKTYPE_RAW, 101).
    let raw = dir.join("raw.pcap");
    {
        let header = pcap_file::pcap::PcapHeader {
            datalink: pcap_file::DataLink::RAW,
            ..Default::default()
        };
        let file = std::fs::File::create(&raw).unwrap();
        let mut w = pcap_file::pcap::PcapWriter::with_header(file, header).unwrap();
        let ip = &std::fs::read(bpf_progs::packet("udp.bin")).unwrap()[14..];
        w.write_packet(&pcap_file::pcap::PcapPacket::new(
            Default::default(),
            ip.len() as u32,
            ip,
        ))
        .unwrap();
    }
    let err = CaptureSource::open(&raw).unwrap_err();
    assert!(matches!(err, CaptureError::NotEthernet { .. }), "{err}");
    assert!(err.to_string().contains("101"), "{err}");
    // A pcapng whose interface is raw IP: refused at its first frame.
    let rawng = dir.join("raw.pcapng");
    {
        use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
        use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
        let file = std::fs::File::create(&rawng).unwrap();
        let mut w = pcap_file::pcapng::PcapNgWriter::new(file).unwrap();
        w.write_pcapng_block(InterfaceDescriptionBlock::new(pcap_file::DataLink::RAW, 0))
            .unwrap();
        let ip = std::fs::read(bpf_progs::packet("udp.bin")).unwrap()[14..].to_vec();
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Default::default(),
            original_len: ip.len() as u32,
            data: ip.into(),
            options: vec![],
        })
        .unwrap();
    }
    let mut src = CaptureSource::open(&rawng).expect("a pcapng opens");
    let err = src.next_frame(&mut Vec::new()).unwrap_err();
    assert!(matches!(err, CaptureError::NotEthernet { .. }), "{err}");
    // More workers than per-CPU slots, and none.
    let object =
        loader::Object::parse(&std::fs::read(bpf_progs::object("xdp_counter")).unwrap()).unwrap();
    let store = maps::Store::anonymous(maps::StoreOptions {
        ncpus: Some(2),
        ..Default::default()
    })
    .unwrap();
    let loaded = LoadedObject::load(&object, &store).unwrap();
    let three = Config {
        workers: 3,
        ..Default::default()
    };
    let err = Dataplane::new(&store, &loaded, 0, three).unwrap_err();
    assert!(
        matches!(
            err,
            DataplaneError::TooManyWorkers {
                workers: 3,
                slots: 2
            }
        ),
        "{err}"
    );
    let none = Config {
        workers: 0,
        ..Default::default()
    };
    assert!(matches!(
        Dataplane::new(&store, &loaded, 0, none),
        Err(DataplaneError::NoWorkers)
    ));
    let dp = Dataplane::new(&store, &loaded, 0, Config::default()).unwrap();
    assert!(matches!(
        dp.worker(1),
        Err(DataplaneError::NoSuchWorker {
            index: 1,
            workers: 1
        })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pcapng_replays_as_pcap() {
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
    let dir = temp_dir("pcapng");
    let frames = mixed_frames();
    let pcap = dir.join("mixed.pcap");
    write_pcap(&pcap, &frames);
    let ng = dir.join("mixed.pcapng");
    {
        let file = std::fs::File::create(&ng).unwrap();
        let mut w = pcap_file::pcapng::PcapNgWriter::new(file).unwrap();
        w.write_pcapng_block(InterfaceDescriptionBlock::new(
            pcap_file::DataLink::ETHERNET,
            0,
        ))
        .unwrap();
        for (i, f) in frames.iter().enumerate() {
            w.write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: std::time::Duration::from_micros(i as u64),
                original_len: f.len() as u32,
                data: f.as_slice().into(),
                options: vec![],
            })
            .unwrap();
        }
    }
    let object =
        loader::Object::parse(&std::fs::read(bpf_progs::object("xdp_icmp_echo")).unwrap()).unwrap();
    let a = load_ours(&object, &[]);
    let (sa, oa) = replay_file(&a, "xdp_icmp_echo", Engine::Interpreter, 1, &pcap);
    let b = load_ours(&object, &[]);
    let (sb, ob) = replay_file(&b, "xdp_icmp_echo", Engine::Interpreter, 1, &ng);
    assert_eq!(comparable(&sa.total()), comparable(&sb.total()));
    assert_eq!(oa, ob);
    assert!(sa.total().get(Counter::Tx) > 0, "echo replies sent");
    // --out's files: one per verdict, readable as pcap, holding the frames.
    let out = dir.join("out");
    let dp = Dataplane::new(&a.store, &a.loaded, 0, Config::default()).unwrap();
    let mut sinks = VerdictSinks::pcap_dir(&out).unwrap();
    let mut src = CaptureSource::open(&ng).unwrap();
    let s = dataplane::replay(&dp, &mut src, Some(&mut sinks), &ReplayOptions::default()).unwrap();
    drop(sinks);
    for (file, verdicts) in dataplane::capture::OUT_FILES {
        let mut r = CaptureSource::open(&out.join(file)).unwrap();
        let mut n = 0u64;
        let mut buf = Vec::new();
        while r.next_frame(&mut buf).unwrap().is_some() {
            n += 1;
        }
        let want: u64 = verdicts.iter().map(|v| s.total().get(v.counter())).sum();
        assert_eq!(n, want, "{file}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A source that raises the stop flag as it hands out its `after`-th frame.
struct StopAfter<'a> {
    inner: CaptureSource,
    after: u64,
    read: u64,
    stop: &'a std::sync::atomic::AtomicBool,
}

impl dataplane::Source for StopAfter<'_> {
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<dataplane::Recv, DataplaneError> {
        let r = self.inner.recv(buf)?;
        self.read += 1;
        if self.read == self.after {
            self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(r)
    }
}

#[test]
fn the_stop_flag_ends_a_replay_after_the_frames_read() {
    let dir = temp_dir("stop");
    let frames = mixed_frames();
    let pcap = dir.join("mixed.pcap");
    write_pcap(&pcap, &frames);
    let object =
        loader::Object::parse(&std::fs::read(bpf_progs::object("xdp_counter")).unwrap()).unwrap();
    for workers in 1..=maps::possible_cpus().min(2) {
        let ours = load_ours(&object, &[]);
        let config = Config {
            workers,
            ..Default::default()
        };
        let dp = Dataplane::new(&ours.store, &ours.loaded, 0, config).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        let mut src = StopAfter {
            inner: CaptureSource::open(&pcap).unwrap(),
            after: 100,
            read: 0,
            stop: &stop,
        };
        let opts = ReplayOptions {
            stop: Some(&stop),
            ..Default::default()
        };
        let s = dataplane::replay(&dp, &mut src, None, &opts).unwrap();
        assert!(s.interrupted, "{workers} workers");
        // Every frame read ran (or was counted as not run), and no more were read.
        assert_eq!(s.packets(), 100, "{workers} workers");
        assert_eq!(src.read, 100);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
