//! Live sockets on veth pairs in a network namespace: AF_PACKET rings with fanout,
//! AF_XDP sockets and the kernel redirect program. They need root (or CAP_NET_ADMIN,
//! CAP_NET_RAW and CAP_BPF); each prints `SKIP:` with the reason where it cannot run.

#[path = "netns.rs"]
mod netns;

use self::netns::Netns;
use dataplane::afpacket::{ifindex, Fanout, RingConfig, RxRing, TxSocket};
use dataplane::afxdp::{XskProgram, XskSocket};
use dataplane::live_error::LiveError;

const ETHERTYPE: u16 = 0x88b5; // IEEE local experimental

/// A broadcast frame of `len` bytes carrying `seq`, from source MAC `src_last`.
fn frame(seq: u32, len: usize, src_last: u8) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].fill(0xff);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, src_last]);
    f[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[18..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(7);
    }
    f
}

/// An IPv4/UDP frame of flow `flow` (its source port) carrying `seq` after the
/// marker "dplive".
fn udp_frame(seq: u32, flow: u16, pad: usize) -> Vec<u8> {
    let payload_len = 6 + 4 + pad;
    let mut f = vec![0u8; 14 + 20 + 8 + payload_len];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xaa]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + 8 + payload_len) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 0, 0, 2]);
    ip[16..20].copy_from_slice(&[10, 0, 0, 1]);
    let mut sum = 0u32;
    for w in ip.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&(10000 + flow).to_be_bytes());
    udp[2..4].copy_from_slice(&9999u16.to_be_bytes());
    udp[4..6].copy_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    f[42..48].copy_from_slice(b"dplive");
    f[48..52].copy_from_slice(&seq.to_be_bytes());
    f
}

/// The sequence number and flow of a frame made by `udp_frame`.
fn ours_udp(f: &[u8]) -> Option<(u32, u16)> {
    (f.len() >= 52 && f[42..48] == *b"dplive").then(|| {
        (
            u32::from_be_bytes([f[48], f[49], f[50], f[51]]),
            u16::from_be_bytes([f[34], f[35]]) - 10000,
        )
    })
}

fn ours(f: &[u8]) -> Option<u32> {
    (f.len() >= 18 && f[12..14] == ETHERTYPE.to_be_bytes())
        .then(|| u32::from_be_bytes([f[14], f[15], f[16], f[17]]))
}

#[test]
fn afpacket_fanout_keeps_a_flow_on_one_socket_and_skips_outgoing_frames() {
    let ns = match Netns::new("fan") {
        Ok(ns) => ns,
        Err(e) => return println!("SKIP: no network namespace: {e}"),
    };
    ns.veth("fa0", "fa1", 1).unwrap();
    let r = ns
        .run(|| {
            let a = ifindex("fa0").unwrap();
            let b = ifindex("fa1").unwrap();
            let first = RxRing::open(a, RingConfig::default(), Fanout::New).unwrap();
            let group = first.fanout_group().expect("a fanout group");
            let second = RxRing::open(a, RingConfig::default(), Fanout::Join(group)).unwrap();
            let mut rings = [first, second];
            let tx_b = TxSocket::open(b).unwrap();
            // Through the qdisc layer, as the host's own frames go: the rings' taps
            // see them as outgoing frames.
            let tx_a = TxSocket::open_with(a, false).unwrap();
            // 64 frames of 15 UDP flows into fa0 (an odd count, so a round-robin
            // spread would split flows), and 10 frames out of fa0 (which
            // the rings must not see).
            let mut sent = Vec::new();
            for seq in 0..64u32 {
                let f = udp_frame(seq, (seq % 15) as u16, seq as usize);
                tx_b.send(&f).unwrap();
                sent.push(f);
            }
            for seq in 1000..1010u32 {
                tx_a.send(&udp_frame(seq, 99, 0)).unwrap();
            }
            let mut got: Vec<Vec<(u32, u16)>> = vec![Vec::new(), Vec::new()];
            let mut buf = Vec::new();
            for _ in 0..25 {
                for (i, r) in rings.iter_mut().enumerate() {
                    r.wait(20).unwrap();
                    while let Some(info) = r.next_frame(&mut buf) {
                        if let Some((seq, flow)) = ours_udp(&buf) {
                            assert_eq!(info.wire_len as usize, buf.len());
                            if let Some(f) = sent.get(seq as usize) {
                                assert_eq!(&buf, f, "frame {seq} changed");
                            }
                            got[i].push((seq, flow));
                        }
                    }
                }
            }
            got
        })
        .join();
    let got = r.unwrap();
    let mut seqs: Vec<u32> = got.iter().flatten().map(|&(s, _)| s).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (0..64).collect::<Vec<u32>>(),
        "every frame into fa0 once, none of fa0's own (socket 0: {:?}, socket 1: {:?})",
        got[0],
        got[1]
    );
    // A flow is seen by one socket only, and the flows are spread over both (15
    // flows all hashing to one of two sockets: probability 2^-14).
    for flow in 0..15u16 {
        let on: Vec<usize> = (0..2)
            .filter(|&i| got[i].iter().any(|&(_, f)| f == flow))
            .collect();
        assert_eq!(on.len(), 1, "flow {flow} on sockets {on:?}");
    }
    assert!(!got[0].is_empty() && !got[1].is_empty(), "{got:?}");
}

/// Frames the AF_XDP socket received, those sent back (by sequence number), and
/// whether the kernel program ran in native mode.
type XskResult = (Vec<Vec<u8>>, Vec<u32>, bool);

#[test]
fn afxdp_socket_receives_the_queue_and_sends_back() {
    let ns = match Netns::new("xsk") {
        Ok(ns) => ns,
        Err(e) => return println!("SKIP: no network namespace: {e}"),
    };
    ns.veth("xa0", "xa1", 1).unwrap();
    let r = ns
        .run(|| -> Result<XskResult, LiveError> {
            let a = ifindex("xa0")?;
            let b = ifindex("xa1")?;
            let prog = XskProgram::attach(a, 1)?;
            let mut xsk = XskSocket::open(a, 0)?;
            prog.register(0, &xsk)?;
            let tx_b = TxSocket::open(b)?;
            let mut rx_b = RxRing::open(b, RingConfig::default(), Fanout::None)?;
            for seq in 0..20u32 {
                tx_b.send(&frame(seq, 64 + seq as usize * 50, 1)).unwrap();
            }
            let mut got = Vec::new();
            let mut buf = Vec::new();
            for _ in 0..50 {
                xsk.wait(20)?;
                while xsk.next_frame(&mut buf).is_some() {
                    if ours(&buf).is_some() {
                        got.push(buf.clone());
                    }
                }
                if got.len() == 20 {
                    break;
                }
            }
            // Send them back out of xa0: xa1 receives them.
            for f in &got {
                xsk.send(f).unwrap();
            }
            let mut back = Vec::new();
            for _ in 0..50 {
                rx_b.wait(20)?;
                while rx_b.next_frame(&mut buf).is_some() {
                    if let Some(seq) = ours(&buf) {
                        back.push(seq);
                    }
                }
                if back.len() == 20 {
                    break;
                }
            }
            Ok((got, back, prog.native()))
        })
        .join()
        .unwrap();
    let (got, back, native) = match r {
        Ok(v) => v,
        Err(e @ LiveError::NotPermitted { .. }) => return println!("SKIP: {e}"),
        Err(e) => panic!("{e}"),
    };
    println!(
        "AF_XDP on veth, program in {} mode",
        if native { "native" } else { "generic" }
    );
    let want: Vec<Vec<u8>> = (0..20u32)
        .map(|s| frame(s, 64 + s as usize * 50, 1))
        .collect();
    assert_eq!(got, want);
    assert_eq!(back, (0..20).collect::<Vec<u32>>());
}

/// An IPv6/UDP frame of flow `flow`.
fn udp6_frame(flow: u16) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + 8 + 16];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xaa]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let ip = &mut f[14..54];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&24u16.to_be_bytes());
    ip[6] = 17;
    ip[7] = 64;
    ip[8] = 0xfd;
    ip[23] = 2;
    ip[24] = 0xfd;
    ip[39] = 1;
    f[54..56].copy_from_slice(&(20000 + flow).to_be_bytes());
    f[56..58].copy_from_slice(&9999u16.to_be_bytes());
    f[58..60].copy_from_slice(&24u16.to_be_bytes());
    f
}

#[test]
fn attach_hands_cpumap_frames_to_the_worker_of_the_entry() {
    use dataplane::{Config, Counter, Dataplane, Mode};
    use std::sync::atomic::{AtomicBool, Ordering};

    let ns = match Netns::new("cpu") {
        Ok(ns) => ns,
        Err(e) => return println!("SKIP: no network namespace: {e}"),
    };
    ns.no_ipv6().unwrap();
    ns.veth("ca0", "ca1", 1).unwrap();
    let (per_worker, live) = ns
        .run(|| {
            let bytes = std::fs::read(bpf_progs::object("xdp_redirector")).unwrap();
            let object = loader::Object::parse(&bytes).unwrap();
            let store = maps::Store::anonymous(maps::StoreOptions {
                ncpus: Some(2),
                ..Default::default()
            })
            .unwrap();
            let loaded = runtime::LoadedObject::load(&object, &store).unwrap();
            for cpu in 0u32..2 {
                loaded
                    .update_entry("cpu_map", &cpu.to_le_bytes(), &192u32.to_le_bytes(), 0)
                    .unwrap();
            }
            let prog = loaded.program_index(Some("xdp_redir_cpumap")).unwrap();
            let config = Config {
                workers: 2,
                ..Default::default()
            };
            let dp = Dataplane::new(&store, &loaded, prog, config).unwrap();
            let a = ifindex("ca0").unwrap();
            let b = ifindex("ca1").unwrap();
            let stop = AtomicBool::new(false);
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let ready = move |_: &dataplane::Ready| {
                let _ = ready_tx.send(());
            };
            let ready_fn: &(dyn Fn(&dataplane::Ready) + Sync) = &ready;
            let mut opts = dataplane::AttachOptions::new(a, Mode::AfPacket);
            opts.stop = Some(&stop);
            opts.ready = Some(ready_fn);
            std::thread::scope(|s| {
                let (dp, stop) = (&dp, &stop);
                s.spawn(move || {
                    // A bound against a data plane that never starts.
                    let started = ready_rx.recv_timeout(std::time::Duration::from_secs(30));
                    if started.is_ok() {
                        let tx = TxSocket::open(b).unwrap();
                        for seq in 0..24u32 {
                            tx.send(&udp_frame(seq, (seq % 12) as u16, 0)).unwrap();
                        }
                        for flow in 0..8u16 {
                            tx.send(&udp6_frame(flow)).unwrap();
                        }
                        // Until the workers have taken all 32 frames (bounded).
                        for _ in 0..1000 {
                            let seen: u64 = dp
                                .counters()
                                .read()
                                .unwrap()
                                .iter()
                                .map(|(_, c)| c.get(Counter::Packets))
                                .sum();
                            if seen >= 32 {
                                break;
                            }
                            std::thread::sleep(std::time::Duration::from_millis(10));
                        }
                    }
                    stop.store(true, Ordering::Relaxed);
                });
                let done = dataplane::attach(dp, &opts).unwrap();
                (done.summary.per_worker.clone(), done.live.clone())
            })
        })
        .join()
        .unwrap();
    let packets: Vec<u64> = per_worker
        .iter()
        .map(|(_, c)| c.get(Counter::Packets))
        .collect();
    let redirects: u64 = per_worker
        .iter()
        .map(|(_, c)| c.get(Counter::Redirect))
        .sum();
    assert_eq!(packets.iter().sum::<u64>(), 32, "{per_worker:?}");
    assert_eq!(redirects, 32, "{per_worker:?}");
    let cpumap_in: Vec<u64> = live.iter().map(|(_, l)| l.cpumap_in).collect();
    let cpumap_out: u64 = live.iter().map(|(_, l)| l.cpumap_out).sum();
    assert_eq!(cpumap_out, 32, "{live:?}");
    // IPv4 frames to cpu_map[0] (worker 0), IPv6 frames to cpu_map[1] (worker 1),
    // whichever worker the fanout gave them to.
    assert_eq!(cpumap_in, vec![24, 8], "{live:?} {per_worker:?}");
    assert!(live.iter().all(|(_, l)| l.redirect_failed == 0), "{live:?}");
}
