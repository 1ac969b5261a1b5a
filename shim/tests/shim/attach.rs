//! XDP attachment under the shim against the kernel's: tests/c/xdp_attach.c
//! creates, updates, detaches and closes BPF links, then attaches, replaces and
//! detaches by netlink (libbpf's bpf_xdp_attach/bpf_xdp_query: RTM_SETLINK and
//! RTM_GETLINK with IFLA_XDP), on one end of a veth in a fresh network
//! namespace, once as root against the kernel and once as uid 65534 under the
//! shim; every step's errno, link info and query must agree. Then the data
//! plane: `xdp-runner attach --follow` runs what a libbpf loader attached, and
//! stops when its link goes. Needs root (namespaces), `ip`, `cc` and libbpf;
//! prints `SKIP:` otherwise.

use std::path::PathBuf;
use std::process::{Command, Output};

use super::{shim_so, unprivileged_unavailable, TestStore};

/// A network namespace with a veth pair `va`/`vb`, deleted on drop.
pub struct VethNs(pub String);

impl VethNs {
    pub fn new(tag: &str) -> Result<VethNs, String> {
        let name = format!("xs-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let ns = VethNs(name);
        ns.ip(&["netns", "add", &ns.0], false)?;
        // No IPv6 on the namespace's links: a link coming up sends router
        // solicitations and MLD reports of its own, which an attached program
        // would see (and count) on one side of a comparison and not the other.
        let sysctl = Command::new("ip")
            .args(["netns", "exec", &ns.0, "sh", "-c"])
            .arg(
                "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && \
                 echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
            )
            .output()
            .map_err(|e| format!("sh: {e}"))?;
        if !sysctl.status.success() {
            return Err(format!(
                "disable_ipv6: {}",
                String::from_utf8_lossy(&sysctl.stderr).trim()
            ));
        }
        ns.ip(
            &["link", "add", "va", "type", "veth", "peer", "name", "vb"],
            true,
        )?;
        for d in ["lo", "va", "vb"] {
            ns.ip(&["link", "set", d, "up"], true)?;
        }
        Ok(ns)
    }

    pub fn ip(&self, args: &[&str], inside: bool) -> Result<String, String> {
        let mut c = Command::new("ip");
        if inside {
            c.args(["-n", &self.0]);
        }
        let out = c.args(args).output().map_err(|e| format!("ip: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `argv` in the namespace: as root without the shim, or as uid
    /// 65534 under the shim on `store`.
    pub fn run(&self, argv: &[&str], shim: Option<&TestStore>) -> Output {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]);
        match shim {
            None => {
                c.args(argv).env_remove("LD_PRELOAD");
            }
            Some(store) => {
                c.args([
                    "setpriv",
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "--inh-caps=-all",
                    "--",
                ])
                .args(argv)
                .env("LD_PRELOAD", shim_so())
                .env("XDPSHIM_STORE", &store.0);
            }
        }
        c.output().expect("ip netns exec runs")
    }
}

impl Drop for VethNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// Why these tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    if let Some(why) = unprivileged_unavailable() {
        return Some(why);
    }
    let ok = Command::new("ip")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    (!ok).then(|| "no ip command".to_string())
}

fn attach_tool() -> Result<PathBuf, String> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/c/xdp_attach.c");
    let dir = shim_so()
        .parent()
        .map(|d| d.join("shim-test-c"))
        .ok_or("no target directory")?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    super::libbpf::compile(&src, &dir.join("xdp-attach"), &["-lbpf", "-lelf", "-lz"])
}

fn lines(what: &str, out: &Output) -> Vec<String> {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.ends_with("done\n"),
        "{what}: {}\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines().map(str::to_string).collect()
}

#[test]
fn xdp_links_behave_as_the_kernels() {
    const T: &str = "xdp_links_behave_as_the_kernels";
    if let Some(why) = unavailable() {
        return println!("SKIP: {T}: {why}");
    }
    let tool = match attach_tool() {
        Ok(t) => t,
        Err(why) => return println!("SKIP: {T}: {why}"),
    };
    let obj = bpf_progs::object("xdp_icmp_echo");
    let argv = [
        tool.to_str().expect("utf-8"),
        obj.to_str().expect("utf-8"),
        "va",
    ];
    let ns = VethNs::new("links").expect("namespace");
    let store = TestStore::new("links");
    let shim = lines("under the shim", &ns.run(&argv, Some(&store)));
    // What the kernel must also say (facts of the kernel, asked once).
    for expected in [
        "create p1 0",
        "create p2 busy -16",
        "update replace wrong old -1",
        "l1 info type 6 prog p1 ifindex 0",
        "update detached -67",
        "create p1 drv beside skb -17",
        "by id info type 6 prog p2 ifindex dev",
        "create p1 after close 0",
        "nl empty query mode 0 prog none skb none drv none hw none",
        "nl p1 query mode 2 prog p1 skb p1 drv none hw none",
        "nl attach p2 noexist -16",
        "nl replace wrong old -17",
        "nl p2 query mode 2 prog p2 skb p2 drv none hw none",
        "nl detach over link -16",
        "nl attach lo drv -95",
        "nl link closed query mode 0 prog none skb none drv none hw none",
    ] {
        assert!(
            shim.iter().any(|l| l == expected),
            "no {expected:?} under the shim:\n{}",
            shim.join("\n")
        );
    }
    let kernel = ns.run(&argv, None);
    let kernel_text = String::from_utf8_lossy(&kernel.stdout);
    if kernel_text.starts_with("setup failed") {
        return println!("SKIP: {T}: kernel comparison: {kernel_text}");
    }
    let kernel = lines("against the kernel", &kernel);
    assert_eq!(kernel, shim, "kernel (left) and shim (right) disagree");
}

/// `ping -c COUNT` from namespace `ns`; the replies received.
fn ping(ns: &str, to: &str, count: u32) -> u32 {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-n", "-q", "-i", "0.2", "-W", "1", "-c",
        ])
        .arg(count.to_string())
        .arg(to)
        .output()
        .expect("ping runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            let (_, rest) = l.split_once(" packets transmitted, ")?;
            rest.split(' ').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no ping summary in {text}"))
}

/// A child process killed on drop, its stdout lines read on a thread.
pub struct Daemon {
    pub child: std::process::Child,
    pub lines: std::sync::mpsc::Receiver<String>,
}

impl Daemon {
    pub fn spawn(mut c: Command) -> Daemon {
        use std::io::BufRead;
        let mut child = c
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Daemon { child, lines }
    }

    /// The next line containing `what` (a bound against a hang, not a timing
    /// assertion); the lines before it are kept in `seen`.
    pub fn wait_for(&self, what: &str, seen: &mut Vec<String>) -> String {
        loop {
            match self.lines.recv_timeout(std::time::Duration::from_secs(60)) {
                Ok(l) if l.contains(what) => return l,
                Ok(l) => seen.push(l),
                Err(_) => panic!("no line with {what:?}; seen:\n{}", seen.join("\n")),
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number `key` of a JSON event line.
pub fn field(line: &str, key: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

/// The follow daemon (root, trusting the store of uid 65534) in namespace `ns`.
pub fn follow_daemon(ns: &str, store: &TestStore) -> Daemon {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns])
        .arg(super::libbpf::xdp_runner())
        .args([
            "attach",
            "--follow",
            "--store",
            &store.0,
            "--store-trust",
            "uid:65534",
            "--json",
        ])
        .env_remove("LD_PRELOAD");
    Daemon::spawn(c)
}

/// Namespaces `a` (with `va`, no address) and `b` (with `vb`, 10.79.x.2/24,
/// knowing va's MAC for 10.79.x.1): only a program on `va` answers a ping of
/// 10.79.x.1. Returns the address to ping and the second namespace.
pub fn echo_setup(a: &VethNs, subnet: u8) -> (String, VethNs) {
    let b = VethNs(format!("{}-b", a.0));
    let _ = Command::new("ip").args(["netns", "del", &b.0]).output();
    b.ip(&["netns", "add", &b.0], false).expect("netns b");
    a.ip(&["link", "set", "vb", "netns", &b.0], true)
        .expect("move vb");
    b.ip(&["link", "set", "vb", "up"], true).expect("vb up");
    b.ip(&["link", "set", "lo", "up"], true).expect("lo up");
    let me = format!("10.79.{subnet}.2/24");
    b.ip(&["addr", "add", &me, "dev", "vb"], true)
        .expect("address");
    let out = a
        .ip(&["-o", "link", "show", "dev", "va"], true)
        .expect("va");
    let at = out.find("link/ether ").expect("an Ethernet device") + 11;
    let mac = &out[at..at + 17];
    let to = format!("10.79.{subnet}.1");
    b.ip(
        &[
            "neigh",
            "add",
            &to,
            "lladdr",
            mac,
            "dev",
            "vb",
            "nud",
            "permanent",
        ],
        true,
    )
    .expect("neighbour");
    (to, b)
}

/// The loader (uid 65534 under the shim, in namespace `ns`) attaching by
/// `bpf_program__attach_xdp` and holding the link until its stdin closes.
fn hold(ns: &str, tool: &std::path::Path, store: &TestStore, pin: Option<&str>) -> Daemon {
    let obj = bpf_progs::object("xdp_icmp_echo");
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns])
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
        ])
        .arg(tool)
        .args([obj.to_str().expect("utf-8"), "va", "hold"])
        .args(pin)
        .env("LD_PRELOAD", shim_so())
        .env("XDPSHIM_STORE", &store.0);
    Daemon::spawn(c)
}

#[test]
fn a_pinned_link_outlives_its_loader() {
    const T: &str = "a_pinned_link_outlives_its_loader";
    if let Some(why) = unavailable() {
        return println!("SKIP: {T}: {why}");
    }
    let tool = match attach_tool() {
        Ok(t) => t,
        Err(why) => return println!("SKIP: {T}: {why}"),
    };
    let a = VethNs::new("pinned").expect("namespace");
    let (to, b) = echo_setup(&a, 3);
    let store = TestStore::new("pinned");
    let mut loader = hold(&a.0, &tool, &store, Some("/sys/fs/bpf/echo_link"));
    let mut seen = Vec::new();
    loader.wait_for("attached", &mut seen);
    drop(loader.child.stdin.take());
    loader.wait_for("done", &mut seen);
    // The loader is gone; the pin holds the link, which the daemon runs.
    let daemon = follow_daemon(&a.0, &store);
    daemon.wait_for("\"started\"", &mut seen);
    assert_eq!(ping(&b.0, &to, 2), 2, "the pinned link's program answers");
    let rm = a.run(&["rm", "/sys/fs/bpf/echo_link"], Some(&store));
    assert!(rm.status.success(), "{rm:?}");
    let stopped = daemon.wait_for("\"stopped\"", &mut seen);
    assert_eq!(field(&stopped, "tx"), 2, "{stopped}");
}

#[test]
fn follow_runs_a_link_attached_under_the_shim() {
    const T: &str = "follow_runs_a_link_attached_under_the_shim";
    if let Some(why) = unavailable() {
        return println!("SKIP: {T}: {why}");
    }
    let tool = match attach_tool() {
        Ok(t) => t,
        Err(why) => return println!("SKIP: {T}: {why}"),
    };
    let a = VethNs::new("follow").expect("namespace");
    let (to, b) = echo_setup(&a, 1);
    assert_eq!(
        ping(&b.0, &to, 1),
        0,
        "something answers without the program"
    );

    let store = TestStore::new("follow");
    // The loader, uid 65534 under the shim, attaches and holds the link.
    let mut loader = hold(&a.0, &tool, &store, None);
    let mut seen = Vec::new();
    loader.wait_for("attached", &mut seen);

    let daemon = follow_daemon(&a.0, &store);
    let started = daemon.wait_for("\"started\"", &mut seen);
    assert!(started.contains("\"iface\":\"va\""), "{started}");
    assert_eq!(ping(&b.0, &to, 3), 3, "the attached program answers");
    // bpftool lists the link as the kernel's does ("ID: xdp  prog ID").
    let links = a.run(&["bpftool", "link", "show"], Some(&store));
    let links = String::from_utf8_lossy(&links.stdout);
    let want = format!(": xdp  prog {}", field(&started, "prog_id"));
    assert!(links.contains(&want), "{links}");

    // The loader closes its link and exits: the data plane on va stops.
    drop(loader.child.stdin.take());
    loader.wait_for("done", &mut seen);
    let stopped = daemon.wait_for("\"stopped\"", &mut seen);
    assert_eq!(field(&stopped, "tx"), 3, "{stopped}");
    assert_eq!(
        ping(&b.0, &to, 1),
        0,
        "nothing answers once the link is gone"
    );
    drop(daemon);
}

/// Program ids, MAC addresses, and the kernel JIT's `jited` word left out.
fn normalised(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("link/ether"))
        .map(|l| {
            let mut out = Vec::new();
            let mut words = l.split(' ').peekable();
            while let Some(w) = words.next() {
                if w == "jited" {
                    continue;
                }
                out.push(w.to_string());
                if (w == "id" || w == "\"id\":") && words.next().is_some() {
                    out.push("N".into());
                }
            }
            let line = out.join(" ");
            // JSON: "id":123
            match line.find("\"id\":") {
                Some(i) => {
                    let rest = &line[i + 5..];
                    let end = rest
                        .find(|c: char| !c.is_ascii_digit())
                        .unwrap_or(rest.len());
                    format!("{}\"id\":N{}", &line[..i], &rest[end..])
                }
                None => line,
            }
        })
        .collect()
}

#[test]
fn bpftool_and_ip_show_a_netlink_attachment() {
    const T: &str = "bpftool_and_ip_show_a_netlink_attachment";
    if let Some(why) = unavailable() {
        return println!("SKIP: {T}: {why}");
    }
    if Command::new("bpftool").arg("version").output().is_err() {
        return println!("SKIP: {T}: no bpftool");
    }
    let obj = bpf_progs::object("xdp_icmp_echo");
    let obj = obj.to_str().expect("utf-8");
    let pin = format!("/sys/fs/bpf/xs-netshow-{}", std::process::id());
    let steps: Vec<Vec<&str>> = vec![
        vec!["bpftool", "prog", "load", obj, &pin],
        vec![
            "bpftool",
            "net",
            "attach",
            "xdpgeneric",
            "pinned",
            &pin,
            "dev",
            "va",
        ],
        vec!["bpftool", "net", "show"],
        vec!["bpftool", "-j", "net", "show", "dev", "va"],
        vec!["ip", "link", "show", "dev", "va"],
        vec![
            "bpftool", "net", "attach", "xdpdrv", "pinned", &pin, "dev", "va",
        ],
        vec![
            "bpftool",
            "net",
            "attach",
            "xdpgeneric",
            "pinned",
            &pin,
            "dev",
            "va",
            "overwrite",
        ],
        vec!["bpftool", "net", "detach", "xdpgeneric", "dev", "va"],
        vec!["bpftool", "net", "show", "dev", "va"],
        vec!["ip", "link", "show", "dev", "va"],
    ];
    // One shell runs every step: one mount namespace (`ip netns exec` makes a
    // new one, without the pins of the last).
    let script: String = steps
        .iter()
        .map(|argv| {
            format!(
                "echo '$ {}'; {} 2>/dev/null; echo \"-> $?\"\n",
                argv[..3].join(" "),
                argv.join(" ")
            )
        })
        .collect();
    let transcript = |shim: Option<&TestStore>| -> Vec<String> {
        let ns = VethNs::new(if shim.is_some() { "nss" } else { "nsk" }).expect("namespace");
        let o = ns.run(&["sh", "-c", &script], shim);
        normalised(&String::from_utf8_lossy(&o.stdout))
    };
    let store = TestStore::new("netshow");
    let shim = transcript(Some(&store));
    let text = shim.join("\n");
    assert!(text.contains("va(3) generic id N"), "{text}");
    assert!(text.contains("xdpgeneric qdisc"), "{text}");
    assert!(text.contains("prog/xdp id N name xdp_icmp_echo"), "{text}");
    let kernel = transcript(None);
    let _ = std::fs::remove_file(&pin);
    if kernel.get(1).is_some_and(|l| l == "-> 0") {
        assert_eq!(kernel, shim, "kernel (left) and shim (right) disagree");
    } else {
        println!("SKIP: {T}: kernel comparison: the kernel did not load the program");
    }
}

#[test]
fn ip_link_set_xdp_obj_answers_ping_through_the_daemon() {
    const T: &str = "ip_link_set_xdp_obj_answers_ping_through_the_daemon";
    if let Some(why) = unavailable() {
        return println!("SKIP: {T}: {why}");
    }
    let obj = bpf_progs::object("xdp_icmp_echo");
    let a = VethNs::new("ipset").expect("namespace");
    let (to, b) = echo_setup(&a, 2);
    assert_eq!(
        ping(&b.0, &to, 1),
        0,
        "something answers without the program"
    );
    let store = TestStore::new("ipset");
    let ip = |args: &[&str]| {
        let mut argv = vec!["ip"];
        argv.extend_from_slice(args);
        let out = a.run(&argv, Some(&store));
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let obj = obj.to_str().expect("utf-8");
    ip(&[
        "link",
        "set",
        "dev",
        "va",
        "xdpgeneric",
        "obj",
        obj,
        "sec",
        "xdp",
    ]);
    let daemon = follow_daemon(&a.0, &store);
    let mut seen = Vec::new();
    let started = daemon.wait_for("\"started\"", &mut seen);
    assert!(started.contains("\"link_id\":0"), "{started}");
    assert_eq!(ping(&b.0, &to, 3), 3, "the attached program answers");
    // Replaced by a new load of the program: the old one stops, the new one runs.
    ip(&[
        "-force",
        "link",
        "set",
        "dev",
        "va",
        "xdpgeneric",
        "obj",
        obj,
        "sec",
        "xdp",
    ]);
    let stopped = daemon.wait_for("\"stopped\"", &mut seen);
    assert_eq!(field(&stopped, "tx"), 3, "{stopped}");
    assert_eq!(field(&stopped, "prog_id"), field(&started, "prog_id"));
    let restarted = daemon.wait_for("\"started\"", &mut seen);
    assert_ne!(field(&restarted, "prog_id"), field(&started, "prog_id"));
    assert_eq!(ping(&b.0, &to, 2), 2, "the new program answers");
    ip(&["link", "set", "dev", "va", "xdpgeneric", "off"]);
    let stopped = daemon.wait_for("\"stopped\"", &mut seen);
    assert_eq!(field(&stopped, "tx"), 2, "{stopped}");
    assert_eq!(ping(&b.0, &to, 1), 0, "nothing answers once detached");
}
