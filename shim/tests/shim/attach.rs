//! XDP attachment under the shim against the kernel's: tests/c/xdp_attach.c
//! creates, updates, detaches and closes BPF links on one end of a veth in a
//! fresh network namespace, once as root against the kernel and once as uid
//! 65534 under the shim; every step's errno and link info must agree. Needs
//! root (namespaces), `ip`, `cc` and libbpf; prints `SKIP:` otherwise.

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
