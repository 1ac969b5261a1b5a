//! `xdp-runner attach` on veth pairs between network namespaces: the ICMP echo
//! responder answers `ping` on an interface without an address, and a devmap
//! forwarder carries a ping between two hosts, in AF_PACKET and AF_XDP mode. They
//! need root and `ip`/`ping`; each prints `SKIP:` with the reason otherwise. The
//! namespaces are deleted and the runners killed even when a test fails.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// A network namespace, deleted (with its interfaces) on drop.
struct Netns(String);

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Netns {
    fn new(tag: &str) -> Result<Netns, String> {
        let name = format!("xr-{tag}-{}", std::process::id());
        let _ = ip(&["netns", "del", &name]);
        ip(&["netns", "add", &name])?;
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn ip(&self, args: &[&str]) -> Result<String, String> {
        let mut a = vec!["-n", self.0.as_str()];
        a.extend_from_slice(args);
        ip(&a)
    }

    fn ifindex(&self, dev: &str) -> u32 {
        let out = self.ip(&["-o", "link", "show", "dev", dev]).unwrap();
        out.split(':').next().unwrap().trim().parse().unwrap()
    }

    fn mac(&self, dev: &str) -> String {
        let out = self.ip(&["-o", "link", "show", "dev", dev]).unwrap();
        let at = out.find("link/ether ").expect("an Ethernet device") + 11;
        out[at..at + 17].to_string()
    }

    /// `ping -c COUNT -W 1` from this namespace; returns the replies received.
    fn ping(&self, to: &str, count: u32) -> u32 {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &self.0, "ping", "-n", "-q", "-i", "0.2", "-W", "1", "-c",
            ])
            .arg(count.to_string())
            .arg(to)
            .output()
            .expect("ping runs");
        let text = String::from_utf8_lossy(&out.stdout);
        // "5 packets transmitted, 5 received, ..."
        text.lines()
            .find_map(|l| {
                let (_, rest) = l.split_once(" packets transmitted, ")?;
                rest.split(' ').next()?.parse().ok()
            })
            .unwrap_or_else(|| panic!("no ping summary in {text}"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

/// The reason these tests cannot run here, if any.
fn unavailable() -> Option<String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root {
        return Some("not root (network namespaces and raw sockets)".into());
    }
    for tool in ["ip", "ping"] {
        let ok = Command::new(tool)
            .arg("-V")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            return Some(format!("no {tool} command"));
        }
    }
    None
}

/// The message of a `{"error": "..."}` document, the runner's errors under --json.
fn json_error(stdout: &str) -> Option<String> {
    let v: Value = serde_json::from_str(stdout.trim()).ok()?;
    v["error"].as_str().map(str::to_string)
}

/// A running `xdp-runner attach`, killed on drop.
struct Attached {
    child: Child,
    stderr: mpsc::Receiver<String>,
}

/// What starting `attach` came to.
enum Start {
    Running(Attached),
    /// The mode is not permitted here (the runner's error).
    NotPermitted(String),
}

fn attach(ns: &Netns, iface: &str, mode: &str, object: &str, extra: &[String]) -> Start {
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            env!("CARGO_BIN_EXE_xdp-runner"),
            "attach",
        ])
        .args([
            object,
            "--iface",
            iface,
            "--mode",
            mode,
            "--duration",
            "120",
            "--json",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xdp-runner starts");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    // A bound against a runner that hangs, not a timing assertion.
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        if line.starts_with("attached ") {
            return Start::Running(Attached { child, stderr: rx });
        }
        seen.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    // Under --json the runner's error is `{"error": ...}` on stdout.
    let mut out = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut out);
    seen.extend(json_error(&out));
    let text = seen.join("\n");
    if text.contains(" needs ") {
        return Start::NotPermitted(text);
    }
    panic!("xdp-runner attach did not start: {text}");
}

impl Attached {
    /// SIGTERM, then the JSON summary it prints.
    fn stop(mut self) -> Value {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -TERM {pid}");
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let status = self.child.wait().unwrap();
        let err: Vec<String> = self.stderr.try_iter().collect();
        assert!(status.success(), "{status}: {}", err.join("\n"));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex_bytes(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn n(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

fn echo_ping(mode: &str) {
    if let Some(why) = unavailable() {
        return println!("SKIP: attach {mode}: {why}");
    }
    let a = Netns::new(&format!("ea{}", &mode[3..5])).unwrap();
    let b = Netns::new(&format!("eb{}", &mode[3..5])).unwrap();
    // Two queues and two workers: a fanout group of two rings, or two AF_XDP
    // sockets.
    a.ip(&[
        "link",
        "add",
        "name",
        "ea0",
        "numtxqueues",
        "2",
        "numrxqueues",
        "2",
        "type",
        "veth",
        "peer",
        "name",
        "eb0",
        "netns",
        &b.0,
        "numtxqueues",
        "2",
        "numrxqueues",
        "2",
    ])
    .unwrap();
    a.ip(&["link", "set", "ea0", "up"]).unwrap();
    b.ip(&["link", "set", "eb0", "up"]).unwrap();
    b.ip(&["addr", "add", "10.77.0.2/24", "dev", "eb0"])
        .unwrap();
    // ea0 has no address: the host in `a` never answers. The peer knows its MAC.
    let mac = a.mac("ea0");
    b.ip(&[
        "neigh",
        "add",
        "10.77.0.1",
        "lladdr",
        &mac,
        "dev",
        "eb0",
        "nud",
        "permanent",
    ])
    .unwrap();
    assert_eq!(
        b.ping("10.77.0.1", 1),
        0,
        "something answers without the program"
    );

    let object = crate::path_str(&bpf_progs::object("xdp_icmp_echo"));
    let workers = ["--workers".to_string(), "2".to_string()];
    let run = match attach(&a, "ea0", mode, &object, &workers) {
        Start::Running(r) => r,
        Start::NotPermitted(why) => return println!("SKIP: attach --mode {mode}: {why}"),
    };
    // The link going down and up again does not end the data plane.
    a.ip(&["link", "set", "ea0", "down"]).unwrap();
    a.ip(&["link", "set", "ea0", "up"]).unwrap();
    let replies = b.ping("10.77.0.1", 5);
    let summary = run.stop();
    assert_eq!(replies, 5, "{summary}");
    // Five echo requests answered with XDP_TX and sent; nothing else was.
    assert_eq!(n(&summary, "tx"), 5, "{summary}");
    assert_eq!(n(&summary, "tx_sent"), 5, "{summary}");
    assert_eq!(n(&summary, "aborted"), 0, "{summary}");
    assert_eq!(summary["mode"], mode);
    let per = summary["per_worker"].as_array().expect("per_worker");
    assert_eq!(per.len(), 2, "{summary}");
    assert_eq!(per.iter().map(|w| n(w, "tx")).sum::<u64>(), 5, "{summary}");
}

#[test]
fn attach_afpacket_answers_ping() {
    echo_ping("afpacket");
}

#[test]
fn attach_afxdp_answers_ping() {
    echo_ping("afxdp");
}

fn forward_ping(mode: &str) {
    if let Some(why) = unavailable() {
        return println!("SKIP: attach {mode}: {why}");
    }
    let tag = &mode[3..5];
    let fwd = Netns::new(&format!("fw{tag}")).unwrap();
    let h1 = Netns::new(&format!("h1{tag}")).unwrap();
    let h2 = Netns::new(&format!("h2{tag}")).unwrap();
    fwd.ip(&[
        "link", "add", "name", "f0", "type", "veth", "peer", "name", "h0", "netns", &h1.0,
    ])
    .unwrap();
    fwd.ip(&[
        "link", "add", "name", "f1", "type", "veth", "peer", "name", "h1", "netns", &h2.0,
    ])
    .unwrap();
    for d in ["f0", "f1"] {
        fwd.ip(&["link", "set", d, "up"]).unwrap();
    }
    h1.ip(&["link", "set", "h0", "up"]).unwrap();
    h2.ip(&["link", "set", "h1", "up"]).unwrap();
    h1.ip(&["addr", "add", "10.78.0.1/24", "dev", "h0"])
        .unwrap();
    h2.ip(&["addr", "add", "10.78.0.2/24", "dev", "h1"])
        .unwrap();
    let (m1, m2) = (h1.mac("h0"), h2.mac("h1"));
    h1.ip(&[
        "neigh",
        "add",
        "10.78.0.2",
        "lladdr",
        &m2,
        "dev",
        "h0",
        "nud",
        "permanent",
    ])
    .unwrap();
    h2.ip(&[
        "neigh",
        "add",
        "10.78.0.1",
        "lladdr",
        &m1,
        "dev",
        "h1",
        "nud",
        "permanent",
    ])
    .unwrap();
    // The forwarder's namespace has no addresses and does not forward: without the
    // program nothing crosses it.
    assert_eq!(
        h1.ping("10.78.0.2", 1),
        0,
        "frames cross without the program"
    );

    let (i0, i1) = (fwd.ifindex("f0"), fwd.ifindex("f1"));
    assert!(i0 < 64 && i1 < 64, "devmap keys: ifindex {i0}, {i1}");
    let port = |from: u32, to: u32| {
        vec![
            "--set".to_string(),
            format!(
                "fwd_ports:{}={}",
                hex_bytes(&from.to_le_bytes()),
                hex_bytes(&to.to_le_bytes())
            ),
        ]
    };
    let object = crate::path_str(&bpf_progs::object("xdp_fwd"));
    let one = match attach(&fwd, "f0", mode, &object, &port(i0, i1)) {
        Start::Running(r) => r,
        Start::NotPermitted(why) => return println!("SKIP: attach --mode {mode}: {why}"),
    };
    let two = match attach(&fwd, "f1", mode, &object, &port(i1, i0)) {
        Start::Running(r) => r,
        Start::NotPermitted(why) => return println!("SKIP: attach --mode {mode}: {why}"),
    };
    let replies = h1.ping("10.78.0.2", 5);
    let (s1, s2) = (one.stop(), two.stop());
    assert_eq!(replies, 5, "{s1}\n{s2}");
    // Each direction: 5 ICMP frames (and whatever IPv6 the hosts sent) redirected
    // and sent out of the other port.
    for s in [&s1, &s2] {
        assert!(n(s, "redirect") >= 5, "{s}");
        assert_eq!(n(s, "redirect_sent"), n(s, "redirect"), "{s}");
        assert_eq!(n(s, "redirect_failed"), 0, "{s}");
        assert_eq!(n(s, "pass"), 0, "{s}");
    }
}

#[test]
fn attach_afpacket_forwards_through_a_devmap() {
    forward_ping("afpacket");
}

#[test]
fn attach_afxdp_forwards_through_a_devmap() {
    forward_ping("afxdp");
}

#[test]
fn attach_refuses_an_unknown_interface_and_zero_workers() {
    let object = crate::counter();
    let out = crate::run(&[
        "attach",
        &object,
        "--iface",
        "no-such-if0",
        "--duration",
        "1",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no interface \"no-such-if0\""), "{err}");
    let out = crate::run(&["attach", &object, "--iface", "lo", "--workers", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--workers must be at least 1"), "{err}");
    let out = crate::run(&["attach", &object, "--iface", "lo", "--duration", "-1"]);
    assert!(!out.status.success());
}

#[test]
fn attach_afxdp_passes_frames_to_the_host_through_the_tap() {
    if let Some(why) = unavailable() {
        return println!("SKIP: attach afxdp: {why}");
    }
    let a = Netns::new("pa").unwrap();
    let b = Netns::new("pb").unwrap();
    a.ip(&[
        "link", "add", "name", "pa0", "type", "veth", "peer", "name", "pb0", "netns", &b.0,
    ])
    .unwrap();
    a.ip(&["link", "set", "pa0", "up"]).unwrap();
    b.ip(&["link", "set", "pb0", "up"]).unwrap();
    b.ip(&["addr", "add", "10.79.0.2/24", "dev", "pb0"])
        .unwrap();
    // xdp_parser passes every frame. No static neighbour: ARP goes through the
    // program and the TAP device both ways.
    let object = crate::path_str(&bpf_progs::object("xdp_parser"));
    let run = match attach(&a, "pa0", "afxdp", &object, &[]) {
        Start::Running(r) => r,
        Start::NotPermitted(why) => return println!("SKIP: attach --mode afxdp: {why}"),
    };
    let tap = format!("xdppass{}", a.ifindex("pa0"));
    a.ip(&["addr", "add", "10.79.0.1/24", "dev", &tap]).unwrap();
    let replies = b.ping("10.79.0.1", 5);
    let summary = run.stop();
    assert_eq!(replies, 5, "{summary}");
    assert_eq!(summary["tap"], tap.as_str());
    // The requests (and ARP) reached the host only through the TAP device, and its
    // replies left only through it.
    assert!(n(&summary, "pass") >= 6, "{summary}");
    assert_eq!(
        n(&summary, "pass_injected"),
        n(&summary, "pass"),
        "{summary}"
    );
    assert!(n(&summary, "host_sent") >= 6, "{summary}");
}

fn interface_gone(mode: &str) {
    if let Some(why) = unavailable() {
        return println!("SKIP: attach {mode}: {why}");
    }
    let a = Netns::new(&format!("ga{}", &mode[3..5])).unwrap();
    a.ip(&[
        "link", "add", "name", "ga0", "type", "veth", "peer", "name", "gb0",
    ])
    .unwrap();
    a.ip(&["link", "set", "ga0", "up"]).unwrap();
    a.ip(&["link", "set", "gb0", "up"]).unwrap();
    let object = crate::path_str(&bpf_progs::object("xdp_icmp_echo"));
    let mut run = match attach(&a, "ga0", mode, &object, &[]) {
        Start::Running(r) => r,
        Start::NotPermitted(why) => return println!("SKIP: attach --mode {mode}: {why}"),
    };
    a.ip(&["link", "del", "ga0"]).unwrap();
    // It ends by itself (bounded wait; --duration is 120 s), with an error.
    let mut status = None;
    for _ in 0..300 {
        if let Some(s) = run.child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = status.expect("attach still running after its interface was deleted");
    assert!(!status.success(), "{status}");
    let mut out = String::new();
    run.child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let err = json_error(&out).unwrap_or_else(|| panic!("no JSON error on stdout: {out:?}"));
    assert!(err.contains("cannot attach to ga0"), "{err}");
}

#[test]
fn attach_afpacket_ends_when_the_interface_goes_away() {
    interface_gone("afpacket");
}

#[test]
fn attach_afxdp_ends_when_the_interface_goes_away() {
    interface_gone("afxdp");
}

#[test]
fn attach_follow_needs_a_store_and_takes_no_object() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_xdp-runner"))
            .arg("attach")
            .args(args)
            .output()
            .expect("xdp-runner runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = run(&["--follow"]);
    assert!(!ok && err.contains("--store"), "{err}");
    let object = crate::path_str(&bpf_progs::object("xdp_icmp_echo"));
    let (ok, err) = run(&["--follow", "--store", "x", &object]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    let (ok, err) = run(&["--follow", "--store", "x", "--iface", "lo"]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    let name = format!("xr-follow-missing-{}", std::process::id());
    let (ok, err) = run(&["--follow", "--store", &name]);
    assert!(
        !ok && err.contains(&format!("cannot open the store \"{name}\"")),
        "{err}"
    );
    // Without --follow, the object and the interface are needed.
    let (ok, err) = run(&["--iface", "lo"]);
    assert!(!ok && err.contains("OBJECT"), "{err}");
}
