//! bpf_fib_lookup against the kernel: one script builds both a scratch network
//! namespace (the kernel's test run happens in it, `kernel::run_in_netns`) and a
//! [`runtime::Net`]; `xdp_fib_probe` passes the same params and flags to the helper in
//! both, and the return code and all 64 params bytes after the call must be equal, in
//! the interpreter and in the JIT.

use std::sync::Arc;

use kclient::bpftool as kernel;
use runtime::jit::{JitObject, JitOptions};
use runtime::{LoadedObject, Net, Packet, Vm};

const BASE: &str = "ip link set lo up
ip link add v0 index 10 address 02:00:00:00:01:01 type veth peer name v1 index 11 address 02:00:00:00:01:02
ip link add w0 index 20 address 02:00:00:00:02:01 mtu 1400 type veth peer name w1 index 21 address 02:00:00:00:02:02
ip addr add 10.1.0.1/24 dev v0
ip addr add 10.20.0.1/24 dev w0
ip -6 addr add fd00:1::1/64 dev v0 nodad
ip -6 addr add fd00:20::1/64 dev w0 nodad
ip link set v0 up
ip link set v1 up
ip link set w0 up
ip link set w1 up
ip neigh add 10.1.0.2 lladdr 02:00:00:00:01:fe dev v0 nud permanent
ip neigh add 10.1.0.3 dev v0 nud incomplete
ip neigh add 10.1.0.4 lladdr 02:00:00:00:01:fc dev v0 nud stale
ip neigh add 10.1.0.5 dev v0 nud failed
ip neigh add 10.20.0.2 lladdr 02:00:00:00:02:fe dev w0
ip -6 neigh add fd00:1::2 lladdr 02:00:00:00:01:fe dev v0
ip -6 neigh add fd00:20::2 lladdr 02:00:00:00:02:fe dev w0 nud reachable
ip route add 10.2.0.0/16 via 10.1.0.2
ip route add 10.2.7.0/24 via 10.1.0.4 metric 7
ip route add blackhole 10.3.0.0/16
ip route add unreachable 10.4.0.0/16
ip route add prohibit 10.5.0.0/16
ip route add throw 10.6.0.0/16
ip route add 10.7.0.0/16 via 10.1.0.3
ip route add 10.8.0.0/16 via 10.20.0.2 mtu lock 1000
ip route add 10.9.0.0/16 via 10.20.0.2 mtu 1100
ip route add 10.10.0.0/16 dev v0 src 10.20.0.1
ip route add 10.11.0.0/16 via 10.1.0.2 table 100 metric 3
ip route add 10.12.0.0/16 via 10.20.0.2
ip route add 10.12.0.0/16 via 10.1.0.2 metric 5
ip route add default via 10.20.0.2 metric 50
ip -6 route add fd00:2::/64 via fd00:1::2
ip -6 route add fd00:3::/64 via fd00:1::3
ip -6 route add blackhole fd00:4::/64
ip -6 route add unreachable fd00:5::/64
ip -6 route add prohibit fd00:6::/64
ip -6 route add fd00:7::/64 via fd00:1::2 mtu lock 1300
ip -6 route add fd00:8::/64 via fd00:1::2 table 100 metric 9
ip -6 route add fd00:9::/64 via fd00:20::2 src fd00:1::1
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.ipv6.conf.all.forwarding=1
sysctl -qw net.ipv4.conf.w1.forwarding=0
sysctl -qw net.ipv6.conf.w1.forwarding=0";

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const DIRECT: u32 = 1;
const OUTPUT: u32 = 2;
const SKIP_NEIGH: u32 = 4;
const TBID: u32 = 8;
const SRC: u32 = 16;
const MARK: u32 = 32;

/// One lookup: the params, the flags and the plen selector of xdp_fib_probe.
#[derive(Clone)]
struct Probe {
    name: &'static str,
    params: [u8; 64],
    flags: u32,
    /// 0: plen 64, 1: plen 32, 2: plen 63.
    plen_sel: u8,
}

/// Params with every output field holding garbage, so that a field the helper does not
/// write is seen as such: sport/dport, the tos word, h_vlan/tbid and the MACs.
fn probe(name: &'static str, ifindex: u32, dst: &str, tot_len: u16, flags: u32) -> Probe {
    let dst: std::net::IpAddr = dst.parse().expect("dst");
    let mut p = [0u8; 64];
    p[1] = 17;
    p[2..6].copy_from_slice(&[0x12, 0x34, 0x00, 0x35]);
    p[6..8].copy_from_slice(&tot_len.to_ne_bytes());
    p[8..12].copy_from_slice(&ifindex.to_ne_bytes());
    p[12..16].copy_from_slice(&0x5555_5501u32.to_ne_bytes());
    p[48..64].fill(0xaa);
    match dst {
        std::net::IpAddr::V4(d) => {
            p[0] = AF_INET;
            p[16..20].copy_from_slice(&[10, 9, 9, 9]);
            p[20..32].fill(0x77);
            p[32..36].copy_from_slice(&d.octets());
            p[36..48].fill(0x66);
        }
        std::net::IpAddr::V6(d) => {
            p[0] = AF_INET6;
            let s: std::net::Ipv6Addr = "fd00:99::9".parse().expect("src");
            p[16..32].copy_from_slice(&s.octets());
            p[32..48].copy_from_slice(&d.octets());
        }
    }
    Probe {
        name,
        params: p,
        flags,
        plen_sel: 0,
    }
}

impl Probe {
    fn tbid(mut self, t: u32) -> Probe {
        self.params[48..52].copy_from_slice(&t.to_ne_bytes());
        self
    }
    fn family(mut self, f: u8) -> Probe {
        self.params[0] = f;
        self
    }
    fn plen(mut self, sel: u8) -> Probe {
        self.plen_sel = sel;
        self
    }
    fn src6(mut self, s: &str) -> Probe {
        let s: std::net::Ipv6Addr = s.parse().expect("src");
        self.params[16..32].copy_from_slice(&s.octets());
        self
    }

    fn frame(&self) -> Vec<u8> {
        let mut f = self.params.to_vec();
        f.extend_from_slice(&self.flags.to_le_bytes());
        f.push(self.plen_sel);
        f.resize(72, 0);
        f
    }
}

fn probes() -> Vec<Probe> {
    vec![
        probe("connected", 10, "10.1.0.2", 100, 0),
        probe("via gateway", 10, "10.2.3.4", 100, 0),
        probe(
            "longer prefix, stale neighbour, metric",
            10,
            "10.2.7.9",
            0,
            0,
        ),
        probe("blackhole", 10, "10.3.0.1", 0, 0),
        probe("unreachable", 10, "10.4.0.1", 0, 0),
        probe("prohibit", 10, "10.5.0.1", 0, 0),
        probe("throw", 10, "10.6.0.1", 0, 0),
        probe("default route", 10, "192.0.2.1", 0, 0),
        probe("local destination", 10, "10.1.0.1", 0, 0),
        probe("broadcast destination", 10, "10.1.0.255", 0, 0),
        probe("loopback destination", 10, "127.0.0.5", 0, 0),
        probe("no neighbour", 10, "10.1.0.9", 0, 0),
        probe("incomplete neighbour", 10, "10.7.0.1", 0, 0),
        probe("failed neighbour", 10, "10.1.0.5", 0, 0),
        probe("forwarding off on the device", 21, "10.1.0.2", 0, 0),
        probe("input on lo", 1, "10.2.3.4", 0, 0),
        probe("mtu exceeded", 10, "10.20.0.2", 1401, 0),
        probe("mtu reached", 10, "10.20.0.2", 1400, 0),
        probe("locked route mtu", 10, "10.8.0.1", 1001, 0),
        probe("unlocked route mtu is ignored", 10, "10.9.0.1", 1200, 0),
        probe("direct", 10, "10.2.3.4", 0, DIRECT),
        probe("direct, local destination", 10, "10.1.0.1", 0, DIRECT),
        probe("direct, tbid 100", 10, "10.11.0.1", 0, DIRECT | TBID).tbid(100),
        probe(
            "direct, tbid 100 misses main's routes",
            10,
            "10.2.3.4",
            0,
            DIRECT | TBID,
        )
        .tbid(100),
        probe("direct, tbid 255", 10, "10.2.3.4", 0, DIRECT | TBID).tbid(255),
        probe("direct, no such table", 10, "10.2.3.4", 0, DIRECT | TBID).tbid(77),
        probe("tbid without direct", 10, "10.11.0.1", 0, TBID).tbid(100),
        probe("output through w0", 20, "10.12.0.1", 0, OUTPUT),
        probe("output through v0", 10, "10.12.0.1", 0, OUTPUT),
        probe("output through v1: no route", 11, "10.2.3.4", 0, OUTPUT),
        probe("output to a local address", 10, "10.1.0.1", 0, OUTPUT),
        probe("skip neigh", 10, "10.1.0.9", 0, SKIP_NEIGH),
        probe("skip neigh, gateway", 10, "10.7.0.1", 0, SKIP_NEIGH),
        probe("src through a gateway", 10, "10.2.3.4", 0, SRC),
        probe("src, route prefsrc", 10, "10.10.0.1", 0, SRC),
        probe("src, connected", 10, "10.1.0.2", 0, SRC | SKIP_NEIGH),
        probe("mark", 10, "10.2.3.4", 0, MARK),
        probe("all flags", 10, "10.2.3.4", 0, 0x3f).tbid(254),
        probe("ipv6 connected", 10, "fd00:1::2", 100, 0),
        probe("ipv6 via gateway", 10, "fd00:2::5", 100, 0),
        probe("ipv6 no neighbour", 10, "fd00:3::1", 0, 0),
        probe("ipv6 blackhole", 10, "fd00:4::1", 0, 0),
        probe("ipv6 unreachable", 10, "fd00:5::1", 0, 0),
        probe("ipv6 prohibit", 10, "fd00:6::1", 0, 0),
        probe("ipv6 no route", 10, "fd00:99::1", 0, 0),
        probe("ipv6 local destination", 10, "fd00:1::1", 0, 0),
        probe("ipv6 subnet-router anycast", 10, "fd00:1::", 0, 0),
        probe("ipv6 link-local destination", 10, "fe80::1", 0, 0),
        probe("ipv6 link-local source", 10, "fd00:2::5", 0, 0).src6("fe80::2"),
        probe("ipv6 mtu exceeded", 10, "fd00:1::2", 1501, 0),
        probe("ipv6 locked route mtu", 10, "fd00:7::1", 1301, 0),
        probe("ipv6 forwarding off", 21, "fd00:1::2", 0, 0),
        probe("ipv6 direct", 10, "fd00:2::5", 0, DIRECT),
        probe("ipv6 direct, local destination", 10, "fd00:1::1", 0, DIRECT),
        probe("ipv6 direct, tbid 100", 10, "fd00:8::1", 0, DIRECT | TBID).tbid(100),
        probe("ipv6 output", 20, "fd00:2::5", 0, OUTPUT),
        probe("ipv6 skip neigh", 10, "fd00:3::1", 0, SKIP_NEIGH),
        probe("ipv6 src", 10, "fd00:2::5", 0, SRC),
        probe("ipv6 src, route prefsrc", 10, "fd00:9::1", 0, SRC),
        probe("ipv6 src on w0", 20, "fd00:20::2", 0, SRC),
        probe("bad plen 32", 10, "10.2.3.4", 0, 0).plen(1),
        probe("bad plen 63", 10, "10.2.3.4", 0, 0).plen(2),
        probe("bad flag 64", 10, "10.2.3.4", 0, 64),
        probe("bad flag 1<<31", 10, "10.2.3.4", 0, 1 << 31),
        probe("bad family 3", 10, "10.2.3.4", 0, 0).family(3),
        probe("bad family 0", 10, "10.2.3.4", 0, 0).family(0),
        probe("unknown ifindex", 99, "10.2.3.4", 0, 0),
        probe("ipv6 unknown ifindex", 99, "fd00:2::5", 0, 0),
    ]
}

/// rc (s64) and params after the call, as xdp_fib_probe stores them.
fn ours(net: Option<Arc<Net>>, frame: &[u8], jit: bool) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(bpf_progs::object("xdp_fib_probe")).map_err(|e| e.to_string())?;
    let obj = loader::Object::parse(&bytes).map_err(|e| e.to_string())?;
    let store = maps::Store::anonymous(maps::StoreOptions::default()).map_err(|e| e.to_string())?;
    let mut loaded = LoadedObject::load(&obj, &store).map_err(|e| e.to_string())?;
    if let Some(net) = net {
        loaded.set_net(net);
    }
    let index = loaded
        .program_index(Some("xdp_fib_probe"))
        .map_err(|e| e.to_string())?;
    let mut pkt = Packet::new(frame).map_err(|e| e.to_string())?;
    let mut vm = Vm::new(0);
    let ret = if jit {
        let j = JitObject::compile(&loaded, &JitOptions::default()).map_err(|e| e.to_string())?;
        j.run(&mut vm, index, &mut pkt)
    } else {
        loaded.run(&mut vm, index, &mut pkt)
    }
    .map_err(|t| format!("trap: {t}"))?;
    if ret != u64::from(runtime::action::PASS) {
        return Err(format!("returned {ret}"));
    }
    let m = loaded.maps.by_name("fib_probe_out").ok_or("no map")?;
    let mut v = vec![0u8; 72];
    m.map
        .lookup(&0u32.to_ne_bytes(), &mut v)
        .map_err(|e| e.to_string())?;
    Ok(v)
}

fn theirs(script: &str, frame: &[u8]) -> Result<Vec<u8>, String> {
    let object = bpf_progs::object("xdp_fib_probe");
    let run = kernel::run_in_netns(&object, "xdp_fib_probe", frame, 1, &[], &[], None, script)?;
    if run.retval != runtime::action::PASS {
        return Err(format!("kernel returned {}", run.retval));
    }
    let e = run
        .maps
        .get("fib_probe_out")
        .and_then(|m| m.first())
        .ok_or("no fib_probe_out entry")?;
    Ok(e.values[0].clone())
}

fn show(v: &[u8]) -> String {
    let rc = i64::from_le_bytes(v[..8].try_into().unwrap_or([0; 8]));
    format!("rc {rc} params {}", bpf_progs::hex_encode(&v[8..]))
}

/// Compares every probe on `script`; `net` is what the runtime gets (None: no
/// `set_net`). Returns the mismatches and the return codes the runtime gave.
fn compare(script: &str, net: Option<Arc<Net>>, probes: &[Probe]) -> (Vec<String>, Vec<i64>) {
    let kernel_ok = kclient::available();
    if let Err(why) = &kernel_ok {
        kclient::skip(
            "fib_lookup kernel comparison",
            &format!("{why} (engines still compared)"),
        );
    }
    let mut failures = Vec::new();
    let mut rcs = Vec::new();
    for p in probes {
        let frame = p.frame();
        let interp = ours(net.clone(), &frame, false);
        let jit = ours(net.clone(), &frame, true);
        let (interp, jit) = match (interp, jit) {
            (Ok(a), Ok(b)) => (a, b),
            (a, b) => {
                failures.push(format!("{}: runtime error {a:?} / {b:?}", p.name));
                continue;
            }
        };
        rcs.push(i64::from_le_bytes(interp[..8].try_into().unwrap_or([0; 8])));
        if interp != jit {
            failures.push(format!(
                "{}: interp {} / jit {}",
                p.name,
                show(&interp),
                show(&jit)
            ));
        }
        if kernel_ok.is_err() {
            continue;
        }
        match theirs(script, &frame) {
            Ok(k) if k == interp => {
                if std::env::var_os("FIB_SHOW").is_some() {
                    println!("{:45} {}", p.name, show(&k));
                }
            }
            Ok(k) => failures.push(format!(
                "{}:\n  ours   {}\n  kernel {}",
                p.name,
                show(&interp),
                show(&k)
            )),
            Err(e) => failures.push(format!("{}: kernel run failed: {e}", p.name)),
        }
    }
    (failures, rcs)
}

#[test]
fn fib_lookup_matches_the_kernel() {
    let net = Arc::new(Net::parse(BASE).expect("script"));
    let (failures, rcs) = compare(BASE, Some(net), &probes());
    // The probes reach every outcome: SUCCESS, BLACKHOLE, UNREACHABLE, PROHIBIT,
    // NOT_FWDED, FWD_DISABLED, NO_NEIGH, FRAG_NEEDED, -EINVAL, -EAFNOSUPPORT, -ENODEV.
    for rc in [0, 1, 2, 3, 4, 5, 7, 8, -22, -97, -19] {
        assert!(rcs.contains(&rc), "no probe returned {rc}: {rcs:?}");
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Without a table the runtime answers as a fresh namespace: only lo, down.
#[test]
fn fib_lookup_without_a_table_is_a_fresh_namespace() {
    // The kernel's fresh namespace inherits IPv4 forwarding from the initial one.
    let host_fwd = std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/forwarding")
        .map(|s| s.trim() == "1")
        .unwrap_or(false);
    let script = if host_fwd {
        println!("SKIP: the host forwards IPv4; the fresh namespace is compared with forwarding turned off");
        "sysctl -qw net.ipv4.conf.lo.forwarding=0"
    } else {
        "true"
    };
    let probes = [
        probe("lo, forwarding off", 1, "10.2.3.4", 0, 0),
        probe("ipv6 lo, forwarding off", 1, "fd00:2::5", 0, 0),
        probe("no such device", 2, "10.2.3.4", 0, 0),
        probe("ipv6 no such device", 2, "fd00:2::5", 0, 0),
    ];
    let (failures, rcs) = compare(script, None, &probes);
    assert_eq!(
        rcs,
        [5, 5, -19, -19],
        "FWD_DISABLED on lo, -ENODEV elsewhere"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A namespace with forwarding on everywhere and routes only through lo's absence.
#[test]
fn fib_lookup_on_forwarding_namespace_without_routes() {
    let script = "sysctl -qw net.ipv4.ip_forward=1\nsysctl -qw net.ipv6.conf.all.forwarding=1";
    let net = Arc::new(Net::parse(script).expect("script"));
    let probes = [
        probe("no route", 1, "10.2.3.4", 0, 0),
        probe("ipv6 no route", 1, "fd00:2::5", 0, 0),
        probe("direct no route", 1, "10.2.3.4", 0, DIRECT),
        probe("loopback, lo down", 1, "127.0.0.1", 0, 0),
    ];
    let (failures, _) = compare(script, Some(net), &probes);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A lookup allocates nothing: 1000 runs of the probe (each calls bpf_fib_lookup) on a
/// table with routes and neighbours, in both engines.
#[test]
fn fib_lookups_make_no_heap_allocation() {
    let bytes = std::fs::read(bpf_progs::object("xdp_fib_probe")).unwrap();
    let obj = loader::Object::parse(&bytes).unwrap();
    let store = maps::Store::anonymous(maps::StoreOptions::default()).unwrap();
    let mut loaded = LoadedObject::load(&obj, &store).unwrap();
    loaded.set_net(Arc::new(Net::parse(BASE).unwrap()));
    let index = loaded.program_index(Some("xdp_fib_probe")).unwrap();
    for p in [
        probe("gateway", 10, "10.2.3.4", 100, 0),
        probe("ipv6 src", 10, "fd00:2::5", 0, SRC),
    ] {
        let mut pkt = Packet::new(&p.frame()).unwrap();
        let mut vm = Vm::new(0);
        loaded.run(&mut vm, index, &mut pkt).unwrap();
        let before = super::counting::count();
        loaded.run_repeat(&mut vm, index, &mut pkt, 1000).unwrap();
        assert_eq!(
            super::counting::count() - before,
            0,
            "{}: interpreter",
            p.name
        );
        let jit = JitObject::compile(&loaded, &JitOptions::default()).unwrap();
        jit.run(&mut vm, index, &mut pkt).unwrap();
        let before = super::counting::count();
        jit.run_repeat(&mut vm, index, &mut pkt, 1000).unwrap();
        assert_eq!(super::counting::count() - before, 0, "{}: jit", p.name);
    }
}
