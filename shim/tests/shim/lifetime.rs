//! Object lifetime under the shim, as in the kernel: pins keep programs and
//! maps, a program keeps its maps, and what nothing holds goes once the
//! process that made it has exited (libbpf's probe maps included).

use crate::{run_under_shim, unprivileged_unavailable, TestStore};

const T: &str = "lifetime";

fn names(store: &TestStore) -> Vec<String> {
    let out = run_under_shim(store, &["bpftool", "-j", "map", "show"]);
    assert!(out.status.success(), "map show: {out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let mut n: Vec<String> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["name"].as_str().unwrap_or("").to_string())
        .collect();
    n.sort();
    n
}

#[test]
fn what_nothing_holds_goes_when_its_process_exits() {
    if which_bpftool().is_none() {
        println!("SKIP: {T}: bpftool not installed");
        return;
    }
    if let Some(why) = unprivileged_unavailable() {
        println!("SKIP: {T}: {why}");
        return;
    }
    let store = TestStore::new("lifetime");
    let obj = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../bpf-progs/obj/xdp_subprog.o"
    );
    let dir = format!("/sys/fs/bpf/lifetime{}", std::process::id());
    let load = run_under_shim(
        &store,
        &[
            "bpftool",
            "prog",
            "loadall",
            obj,
            &dir,
            "pinmaps",
            &format!("{dir}/maps"),
        ],
    );
    assert!(load.status.success(), "loadall: {load:?}");
    // The next process finds the object's maps, not libbpf's feature-probe
    // maps (unpinned, unused, their process gone).
    let after = names(&store);
    assert!(after.iter().any(|n| n == "sub_stats"), "{after:?}");
    assert!(after.iter().any(|n| n.ends_with(".rodata")), "{after:?}");
    assert!(
        !after.iter().any(|n| n.starts_with("libbpf_")),
        "probe maps left behind: {after:?}"
    );

    // Unpin everything (as `rm -r` of the directory would); the next process
    // collects the program, then the maps only it used.
    // The store of uid 65534, opened by root: trusted explicitly.
    let trusted = maps::StoreAccess {
        trust: maps::Trust::parse("uid:65534").expect("trust"),
        ..maps::StoreAccess::default()
    };
    let s = maps::Store::open_with(&store.0, &trusted).expect("open the store");
    let before = s.map_ids().len();
    assert!(before > 0 && !s.programs().is_empty());
    // Descriptors of another store's objects with the same ids (as another
    // loader in this process or elsewhere holds) keep nothing of this one.
    let other_store = TestStore::new("lifetime-other");
    let other =
        maps::Store::create(&other_store.0, maps::StoreOptions::default()).expect("another store");
    let other_tag = xdpshim::fds::store_tag(&other);
    assert_ne!(other_tag, xdpshim::fds::store_tag(&s));
    let names_held = s
        .map_ids()
        .into_iter()
        .map(|id| format!("xdpshim:{other_tag}:map:{id}"))
        .chain(
            s.programs()
                .into_iter()
                .map(|p| format!("xdpshim:{other_tag}:prog:{}", p.id)),
        );
    let held: Vec<std::fs::File> = names_held
        .map(|n| {
            let c = std::ffi::CString::new(n).expect("name");
            // SAFETY: c is a valid C string; the descriptor is owned below.
            let fd = unsafe { libc::memfd_create(c.as_ptr(), libc::MFD_CLOEXEC) };
            assert!(fd >= 0, "memfd_create");
            // SAFETY: fd was just created and is owned by nobody else.
            unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
        })
        .collect();
    for (path, _) in s.pins() {
        s.unpin(&path).expect("unpin");
    }
    let gone = xdpshim::gc::collect(&s);
    assert_eq!((gone.maps, gone.progs), (before, 1));
    assert!(s.programs().is_empty() && s.map_ids().is_empty());
    assert!(names(&store).is_empty());
    drop(held);
}

fn which_bpftool() -> Option<()> {
    std::process::Command::new("bpftool")
        .arg("version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| ())
}

/// The BTF ids `bpftool btf list` shows (each run first collects what exited
/// processes left).
fn btf_ids(store: &TestStore) -> Vec<u64> {
    let out = run_under_shim(store, &["bpftool", "-j", "btf", "list"]);
    assert!(out.status.success(), "btf list: {out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v.as_array()
        .expect("array")
        .iter()
        .map(|b| b["id"].as_u64().expect("id"))
        .collect()
}

#[test]
fn btf_of_a_failed_load_goes_with_its_loader() {
    const T: &str = "btf_of_a_failed_load_goes_with_its_loader";
    if which_bpftool().is_none() {
        println!("SKIP: {T}: bpftool not installed");
        return;
    }
    if let Some(why) = unprivileged_unavailable() {
        println!("SKIP: {T}: {why}");
        return;
    }
    let store = TestStore::new("btfgc");
    let obj = bpf_progs::object("xdp_mim").to_string_lossy().into_owned();
    // Strict mode refuses xdp_mim (two unproven accesses) after libbpf has
    // loaded the object's BTF and created its maps with it.
    let out = run_under_shim(
        &store,
        &[
            "env",
            "XDPSHIM_STRICT=1",
            "bpftool",
            "prog",
            "load",
            &obj,
            "/sys/fs/bpf/btfgc_failed",
        ],
    );
    assert!(!out.status.success(), "strict load succeeded: {out:?}");
    assert_eq!(
        btf_ids(&store),
        Vec::<u64>::new(),
        "BTF left by a failed load"
    );

    // The BTF of a loaded, pinned program stays, as its maps and program do.
    let out = run_under_shim(
        &store,
        &["bpftool", "prog", "load", &obj, "/sys/fs/bpf/btfgc_loaded"],
    );
    assert!(out.status.success(), "load: {out:?}");
    assert_eq!(btf_ids(&store).len(), 1, "the loaded object's BTF");
}
