//! Coreutils on the virtual bpffs: `ls`, `stat`, `test -e`, `find`, `mv`, `rm`,
//! `ln -s` run as uid 65534 under the shim see, move and remove the pins
//! bpftool made there, with the types, modes and link counts the kernel's
//! bpffs shows root for the same tree; and nothing reaches the host's
//! /sys/fs/bpf.

use std::process::{Command, Output};

use super::{run_under_shim, unprivileged_unavailable, TestStore};

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(what: &str, o: Output) -> String {
    assert!(
        o.status.success(),
        "{what} failed: {}{}",
        text(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    text(&o)
}

/// Which of `names` the host's /sys/fs/bpf holds. The host's bpffs is shared
/// with whatever else runs on the machine (kernel tests pin there too), so
/// only the names the shim's runs made are looked for.
fn on_host(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| std::fs::symlink_metadata(format!("/sys/fs/bpf/{n}")).is_ok())
        .cloned()
        .collect()
}

/// `stat` of the tree below `dir` (relative names, type, mode, links, size),
/// as a command runs it: `run(argv)`.
fn tree_stat(run: &dyn Fn(&[&str]) -> Output, dir: &str) -> String {
    let found = ok("find", run(&["find", dir]));
    let mut paths: Vec<&str> = found.lines().collect();
    paths.sort();
    let mut argv = vec!["stat", "-c", "%n %F %a %h %s %b"];
    argv.extend(paths.iter().copied());
    let out = ok("stat", run(&argv));
    out.replace(&format!("{dir}/"), "").replace(dir, "D")
}

/// The same steps on the kernel's bpffs (root) and under the shim (uid 65534).
fn steps(run: &dyn Fn(&[&str]) -> Output, dir: &str) -> Vec<String> {
    let mut seen = Vec::new();
    ok("mkdir", run(&["mkdir", dir]));
    ok("mkdir sub", run(&["mkdir", &format!("{dir}/sub")]));
    let m = format!("{dir}/m");
    ok(
        "bpftool map create",
        run(&[
            "bpftool", "map", "create", &m, "type", "array", "key", "4", "value", "4", "entries",
            "1", "name", "vfs_m",
        ]),
    );
    ok(
        "bpftool map pin",
        run(&[
            "bpftool",
            "map",
            "pin",
            "pinned",
            &m,
            &format!("{dir}/sub/m2"),
        ]),
    );
    seen.push(tree_stat(run, dir));
    // bpftool -f walks the bpffs (nftw) to name each object's pins.
    let shown = ok(
        "bpftool -f map show",
        run(&["bpftool", "-f", "map", "show", "pinned", &m]),
    );
    let mut pinned: Vec<String> = shown
        .lines()
        .filter(|l| l.contains("pinned"))
        .map(|l| l.trim().replace(dir, "D"))
        .collect();
    pinned.sort();
    seen.push(pinned.join("\n"));
    // ls -l: type, mode, links, size and name (owner and time differ).
    let ls = ok("ls -l", run(&["ls", "-l", dir, &format!("{dir}/sub")]));
    let ls: Vec<String> = ls
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 9 {
                format!("{} {} {} {}", f[0], f[1], f[4], f[8])
            } else {
                l.replace(dir, "D")
            }
        })
        .collect();
    seen.push(ls.join("\n"));
    let e = run(&["test", "-e", &m]);
    let f = run(&["test", "-f", &m]);
    let d = run(&["test", "-d", &format!("{dir}/sub")]);
    let none = run(&["test", "-e", &format!("{dir}/none")]);
    seen.push(format!(
        "test: {} {} {} {}",
        e.status.success(),
        f.status.success(),
        d.status.success(),
        none.status.success()
    ));
    // Creating files is refused (bpffs has no create), pins cannot be read
    // (EIO for a map without a BTF view), directories come by mkdir.
    let touch = run(&["touch", &format!("{dir}/f")]);
    let cat = run(&["cat", &m]);
    // (Not mkdir -p: it walks with chdir, and uid 65534 cannot enter the
    // host's bpffs, mode 0700, which the shim does not fake.)
    let mkdir_p = run(&["mkdir", &format!("{dir}/x"), &format!("{dir}/x/y")]);
    let rmdir = run(&["rmdir", &format!("{dir}/x/y"), &format!("{dir}/x")]);
    seen.push(format!(
        "touch {} cat {} {} mkdir {} rmdir {}",
        touch.status.success(),
        cat.status.success(),
        String::from_utf8_lossy(&cat.stderr).contains("Input/output error"),
        mkdir_p.status.success(),
        rmdir.status.success(),
    ));
    // mv of a pin, and of a directory with a pin below it.
    ok("mv pin", run(&["mv", &m, &format!("{dir}/sub/m3")]));
    ok(
        "mv dir",
        run(&["mv", &format!("{dir}/sub"), &format!("{dir}/sub2")]),
    );
    seen.push(tree_stat(run, dir));
    // The moved pin still names the map.
    let show = ok(
        "map show",
        run(&[
            "bpftool",
            "map",
            "show",
            "pinned",
            &format!("{dir}/sub2/m3"),
        ]),
    );
    seen.push(format!(
        "moved pin is vfs_m: {}",
        show.contains("name vfs_m")
    ));
    let mv_onto_dir = run(&[
        "mv",
        "-T",
        &format!("{dir}/sub2/m2"),
        &format!("{dir}/sub2"),
    ]);
    seen.push(format!(
        "mv onto a non-empty dir: {}",
        mv_onto_dir.status.success()
    ));
    ok("rm", run(&["rm", &format!("{dir}/sub2/m2")]));
    seen.push(tree_stat(run, dir));
    ok("rm -r", run(&["rm", "-r", dir]));
    seen.push(format!(
        "gone: {}",
        !run(&["test", "-e", dir]).status.success()
    ));
    seen
}

#[test]
fn coreutils_see_the_virtual_bpffs_as_the_kernels() {
    if let Some(why) = unprivileged_unavailable() {
        println!("SKIP: {why}");
        return;
    }
    if Command::new("bpftool").arg("version").output().is_err() {
        println!("SKIP: bpftool not found");
        return;
    }
    let store = TestStore::new("vfs");
    let dir = format!("/sys/fs/bpf/vfs-{}", std::process::id());
    let names: Vec<String> = [&dir["/sys/fs/bpf/".len()..], "xdp", "tc", "ip"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let before = on_host(&names);
    let shim = steps(&|argv: &[&str]| run_under_shim(&store, argv), &dir);
    // Symlinks (iproute2 makes ip, tc, xdp) and mkdir -p under the shim stay
    // off the host's bpffs, whatever they answer.
    let _ = run_under_shim(&store, &["ln", "-s", "ip", "/sys/fs/bpf/xdp"]);
    let _ = run_under_shim(&store, &["mkdir", "-p", "/sys/fs/bpf/tc/globals"]);
    let _ = run_under_shim(&store, &["chmod", "0700", "/sys/fs/bpf/tc"]);
    let after = on_host(&names);
    assert_eq!(before, after, "the shim changed the host's /sys/fs/bpf");
    // Under the shim, the tree is what was made.
    assert!(shim[0].contains("D directory 755 3 0 0"), "{}", shim[0]);
    assert!(
        shim[0].contains("m regular empty file 600 1 0 0"),
        "{}",
        shim[0]
    );
    assert!(shim[0].contains("sub directory 755 2 0 0"), "{}", shim[0]);
    assert!(
        shim[0].contains("sub/m2 regular empty file 600 1 0 0"),
        "{}",
        shim[0]
    );
    assert_eq!(shim[1], "pinned D/m\npinned D/sub/m2");
    assert_eq!(shim[3], "test: true true true false");
    assert_eq!(shim[4], "touch false cat false true mkdir true rmdir true");
    assert!(
        shim[5].contains("sub2/m3 regular empty file"),
        "{}",
        shim[5]
    );
    assert_eq!(shim[6], "moved pin is vfs_m: true");
    assert_eq!(shim.last().map(String::as_str), Some("gone: true"));

    // The kernel's bpffs, as root, on the same steps.
    let mounted = std::fs::read_to_string("/proc/self/mounts")
        .map(|m| {
            m.lines().any(|l| {
                l.split(' ').nth(1) == Some("/sys/fs/bpf") && l.split(' ').nth(2) == Some("bpf")
            })
        })
        .unwrap_or(false);
    // SAFETY: geteuid has no preconditions.
    if !mounted || unsafe { libc::geteuid() } != 0 {
        println!("SKIP: no kernel bpffs at /sys/fs/bpf as root to compare with");
        return;
    }
    /// Removes the kernel-side tree even when a step fails.
    struct Cleanup<'a>(&'a str);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0);
        }
    }
    let _cleanup = Cleanup(&dir);
    let kernel = steps(
        &|argv: &[&str]| {
            Command::new(argv[0])
                .args(&argv[1..])
                .output()
                .expect("run")
        },
        &dir,
    );
    assert_eq!(shim, kernel, "the shim's bpffs and the kernel's differ");
}

/// As root (xdp-tools and iproute2 run so), under the shim: directories made
/// by absolute path and by `mkdirat` from a descriptor of /sys/fs, and
/// symlinks, land in the store, files are refused; `mkdir -p` (which walks with
/// chdir/fchdir, which the shim cannot fake) fails; the host's bpffs gains
/// nothing.
#[test]
fn root_under_the_shim_leaves_the_host_bpffs_alone() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIP: not root");
        return;
    }
    if Command::new("python3").arg("-V").output().is_err() {
        println!("SKIP: python3 not found");
        return;
    }
    let store = TestStore::new("vfsroot");
    let tag = format!("vfsroot-{}", std::process::id());
    let script = format!(
        "import os\n\
         os.mkdir('/sys/fs/bpf/{tag}-a')\n\
         os.mkdir('//sys/fs/../fs/bpf/./{tag}-c')\n\
         fd = os.open('/sys/fs', os.O_RDONLY | os.O_DIRECTORY)\n\
         os.mkdir('bpf/{tag}-b', dir_fd=fd)\n\
         print(os.access('bpf/{tag}-a', os.F_OK, dir_fd=fd))\n\
         for f in (lambda: os.symlink('ip', '/sys/fs/bpf/{tag}-l'),\n\
                   lambda: os.symlink('ip', 'bpf/{tag}-m', dir_fd=fd),\n\
                   lambda: open('/sys/fs/bpf/{tag}-f', 'w'),\n\
                   lambda: os.close(os.open('bpf/{tag}-g', os.O_CREAT | os.O_WRONLY, dir_fd=fd))):\n\
         \x20   try:\n\
         \x20       f()\n\
         \x20       print('made')\n\
         \x20   except OSError as e:\n\
         \x20       print(e.errno)\n"
    );
    let names: Vec<String> = ["a", "b", "c", "p", "l", "m", "f", "g"]
        .iter()
        .map(|n| format!("{tag}-{n}"))
        .collect();
    let before = on_host(&names);
    let run = |argv: &[&str]| {
        Command::new(argv[0])
            .args(&argv[1..])
            .env("LD_PRELOAD", super::shim_so())
            .env("XDPSHIM_STORE", &store.0)
            .output()
            .expect("run")
    };
    let out = ok("python3", run(&["python3", "-c", &script]));
    let mkdir_p = run(&["mkdir", "-p", &format!("/sys/fs/bpf/{tag}-p/globals")]);
    let listed = ok(
        "ls",
        run(&["ls", "/sys/fs/bpf", &format!("/sys/fs/bpf/{tag}-p")]),
    );
    let after = on_host(&names);
    for n in ["a", "b", "c", "p", "l", "m", "f", "g"] {
        let _ = std::fs::remove_dir(format!("/sys/fs/bpf/{tag}-{n}/globals"));
        let _ = std::fs::remove_dir(format!("/sys/fs/bpf/{tag}-{n}"));
        let _ = std::fs::remove_file(format!("/sys/fs/bpf/{tag}-{n}"));
    }
    assert_eq!(before, after, "the shim changed the host's /sys/fs/bpf");
    // Symbolic links are made (in the store); files: EACCES, as bpffs.
    assert_eq!(out, "True\nmade\nmade\n13\n13\n");
    assert!(!mkdir_p.status.success(), "mkdir -p: {mkdir_p:?}");
    for n in ["a", "b", "c", "l", "m"] {
        assert!(listed.contains(&format!("{tag}-{n}\n")), "{listed}");
    }
}

/// iproute2 (`ip link set dev lo xdpgeneric obj X.o sec xdp`, uid 65534 under
/// the shim) makes its tree (`tc/globals`, symlinks `ip` and `xdp`) in the
/// store, attaches in the store (`ip link show` says so), detaches, and the
/// host's /sys/fs/bpf gains nothing.
#[test]
fn iproute2_keeps_its_tree_in_the_store() {
    if let Some(why) = unprivileged_unavailable() {
        println!("SKIP: {why}");
        return;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        println!("SKIP: ip not found");
        return;
    }
    let store = TestStore::new("iproute2");
    let names: Vec<String> = ["ip", "tc", "xdp"].iter().map(|s| s.to_string()).collect();
    let before = on_host(&names);
    let obj = bpf_progs::object("xdp_icmp_echo");
    let obj = obj.to_str().expect("utf-8");
    let set = [
        "ip",
        "link",
        "set",
        "dev",
        "lo",
        "xdpgeneric",
        "obj",
        obj,
        "sec",
        "xdp",
    ];
    ok("ip link set xdpgeneric", run_under_shim(&store, &set));
    // A second run finds the tree made (symlink EEXIST, then lstat); ip
    // asks XDP_FLAGS_UPDATE_IF_NOEXIST unless -force, as with the kernel.
    let again = run_under_shim(&store, &set);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("XDP program already attached"),
        "{again:?}"
    );
    let mut forced = vec!["ip", "-force"];
    forced.extend_from_slice(&set[1..]);
    ok("ip -force link set", run_under_shim(&store, &forced));
    let shown = ok(
        "ip link show",
        run_under_shim(&store, &["ip", "link", "show", "dev", "lo"]),
    );
    let tree = ok(
        "stat",
        run_under_shim(
            &store,
            &[
                "stat",
                "-c",
                "%n %F",
                "/sys/fs/bpf/ip",
                "/sys/fs/bpf/xdp",
                "/sys/fs/bpf/tc/globals",
            ],
        ),
    );
    let target = ok(
        "readlink",
        run_under_shim(&store, &["readlink", "/sys/fs/bpf/xdp"]),
    );
    ok(
        "ip link set xdpgeneric off",
        run_under_shim(
            &store,
            &["ip", "link", "set", "dev", "lo", "xdpgeneric", "off"],
        ),
    );
    let after_off = ok(
        "ip link show",
        run_under_shim(&store, &["ip", "link", "show", "dev", "lo"]),
    );
    assert_eq!(
        before,
        on_host(&names),
        "the shim changed the host's /sys/fs/bpf"
    );
    assert!(shown.contains(" xdpgeneric "), "{shown}");
    assert!(shown.contains("prog/xdp id "), "{shown}");
    assert!(shown.contains("name xdp_icmp_echo"), "{shown}");
    assert_eq!(
        tree,
        "/sys/fs/bpf/ip symbolic link\n/sys/fs/bpf/xdp symbolic link\n/sys/fs/bpf/tc/globals directory\n"
    );
    assert_eq!(target, "/sys/fs/bpf/tc/\n");
    assert!(!after_off.contains("xdpgeneric"), "{after_off}");
}
