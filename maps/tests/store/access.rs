//! Where stores live and who may open them: memory reserved at creation (a full
//! filesystem is an error, never SIGBUS), sizes checked on open, links and
//! stores of other users refused unless trusted.
//!
//! The parts that could die of SIGBUS run in a child process (this test binary
//! run again on one test), whose exit status must be a normal success.

use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use maps::*;

const CHILD_ENV: &str = "MAPS_TEST_STORE_CHILD";

/// A directory with a tmpfs of `size` mounted on it; unmounted and removed on drop.
struct SmallTmpfs(PathBuf);

impl SmallTmpfs {
    fn mount(test: &str, size: &str) -> Option<SmallTmpfs> {
        let dir = std::env::temp_dir().join(format!("maps-tmpfs-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(SmallTmpfs(dir))
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn access_in(dir: &Path) -> StoreAccess {
    StoreAccess {
        dir: Some(dir.to_owned()),
        ..StoreAccess::default()
    }
}

fn opts(size: usize) -> StoreOptions {
    StoreOptions {
        size,
        ncpus: Some(1),
    }
}

/// Runs this test binary again on `test` with `dir` in the environment; returns
/// its exit status and output.
fn run_child(test: &str, dir: &Path) -> (std::process::ExitStatus, String) {
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, dir)
        .output()
        .expect("run child");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status, text)
}

fn assert_child_ok(test: &str, dir: &Path) {
    use std::os::unix::process::ExitStatusExt;
    let (status, text) = run_child(test, dir);
    assert_eq!(
        status.signal(),
        None,
        "the child died of a signal (SIGBUS is 7):\n{text}"
    );
    assert!(status.success(), "child failed:\n{text}");
    assert!(
        text.contains("CHILD-DONE"),
        "the child ran nothing:\n{text}"
    );
}

/// Fills every byte of a store's free memory with arrays and writes each element.
fn fill_and_touch(s: &Store) {
    let per = 4096u32;
    while let Ok(m) = s.create_map(&MapDef {
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: 8,
        max_entries: per,
        name: "fill".into(),
        ..MapDef::default()
    }) {
        for i in 0..per {
            m.update(&i.to_ne_bytes(), &u64::from(i).to_ne_bytes(), 0)
                .expect("update");
        }
    }
}

#[test]
fn full_filesystem_is_an_error_at_create_not_sigbus() {
    const NAME: &str = "access::full_filesystem_is_an_error_at_create_not_sigbus";
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        let access = access_in(Path::new(&dir));
        let size = MIN_STORE_SIZE + (256 << 10); // ~900 KiB of a 1 MiB tmpfs
        let a = Store::create_with("a", opts(size), &access).expect("the first store fits");
        fill_and_touch(&a);
        match Store::create_with("b", opts(size), &access) {
            Err(e @ StoreError::NoRoom { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("no room for store") && text.contains("/b"),
                    "{text}"
                );
            }
            other => {
                panic!("expected NoRoom for a store the filesystem cannot hold, got {other:?}")
            }
        }
        // Nothing half-created is left: no "b", no temporary file.
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["a".to_string()]);
        fill_and_touch(&Store::open_with("a", &access).expect("reopen a"));
        println!("CHILD-DONE");
        return;
    }
    let Some(fs) = SmallTmpfs::mount("full", "1M") else {
        println!("SKIP: cannot mount a small tmpfs (needs root); full-filesystem test not run");
        return;
    };
    assert_child_ok(NAME, &fs.0);
}

#[test]
fn sparse_store_on_a_full_filesystem_is_an_error_at_open_not_sigbus() {
    const NAME: &str = "access::sparse_store_on_a_full_filesystem_is_an_error_at_open_not_sigbus";
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        let access = access_in(Path::new(&dir));
        match Store::open_with("sparse", &access) {
            Err(StoreError::NoRoom { .. }) => {}
            Ok(s) => {
                fill_and_touch(&s);
                panic!("a sparse store that cannot be backed was opened (and survived)");
            }
            Err(e) => panic!("expected NoRoom, got {e}"),
        }
        println!("CHILD-DONE");
        return;
    }
    let Some(fs) = SmallTmpfs::mount("sparse", "1M") else {
        println!("SKIP: cannot mount a small tmpfs (needs root); sparse-store test not run");
        return;
    };
    // A store as an older build made them: its header, then holes.
    let size = MIN_STORE_SIZE + (256 << 10);
    let header = {
        let s = Store::anonymous(opts(size)).expect("anonymous");
        let _ = s;
        let n = format!("maps-test-sparse-{}", std::process::id());
        let s = Store::create(&n, opts(size)).expect("template");
        let mut h = vec![0u8; 4096];
        s.file().read_exact_at(&mut h, 0).expect("header");
        let _ = Store::unlink(&n);
        h
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(fs.0.join("sparse"))
        .expect("sparse file");
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    f.set_len(size as u64).expect("set_len");
    f.write_all_at(&header, 0).expect("header");
    // Leave less room than the holes need.
    std::fs::write(fs.0.join("filler"), vec![1u8; 512 << 10]).expect("filler");
    assert_child_ok(NAME, &fs.0);
}

#[test]
fn truncated_store_is_seen_before_maps_are_handed_out() {
    let dir = std::env::temp_dir().join(format!("maps-trunc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let access = access_in(&dir);
    let s = Store::create_with("t", opts(MIN_STORE_SIZE + (64 << 10)), &access).expect("create");
    let m = s
        .create_map(&MapDef {
            map_type: BPF_MAP_TYPE_ARRAY,
            key_size: 4,
            value_size: 8,
            max_entries: 4,
            name: "a".into(),
            ..MapDef::default()
        })
        .expect("map");
    s.check_size().expect("intact");
    // Another process of the owner shortens the file under the mapping.
    std::fs::OpenOptions::new()
        .write(true)
        .open(access.path_of("t"))
        .expect("open")
        .set_len(4096)
        .expect("truncate");
    assert!(matches!(
        s.check_size(),
        Err(StoreError::Truncated { len: 4096, .. })
    ));
    let e = s
        .map_by_id(m.id())
        .expect_err("a truncated store hands out no map");
    assert!(e.to_string().contains("truncated"), "{e}");
    assert!(s.check().is_err());
    assert!(matches!(
        Store::open_with("t", &access),
        Err(StoreError::Truncated { .. })
    ));
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Root-only parts: files owned by someone else.
fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn chown(path: &Path, uid: u32, gid: u32) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: chown with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::chown(c.as_ptr(), uid, gid) }, 0, "chown");
}

#[test]
fn stores_of_other_users_links_and_writable_stores_are_refused() {
    let dir = std::env::temp_dir().join(format!("maps-owner-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let access = access_in(&dir);
    let path = access.path_of("s");
    Store::create_with("s", opts(MIN_STORE_SIZE), &access).expect("create");
    let meta = std::fs::metadata(&path).expect("meta");
    assert_eq!(meta.mode() & 0o777, 0o600, "created private");
    Store::open_with("s", &access).expect("the owner opens its store");

    // A symbolic link at the store's name, even to one's own store.
    std::os::unix::fs::symlink(&path, access.path_of("link")).expect("symlink");
    match Store::open_with("link", &access) {
        Err(StoreError::Symlink { path }) => assert!(path.ends_with("/link")),
        other => panic!("expected Symlink, got {other:?}"),
    }
    assert!(matches!(
        Store::create_with("link", opts(MIN_STORE_SIZE), &access),
        Err(StoreError::AlreadyExists { .. })
    ));
    // A directory or FIFO planted at the name.
    std::fs::create_dir(access.path_of("d")).expect("mkdir");
    assert!(Store::open_with("d", &access).is_err());

    // Writable by every user: never trusted.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    match Store::open_with("s", &access) {
        Err(e @ StoreError::Writable { .. }) => {
            assert!(e.to_string().contains("every user"), "{e}")
        }
        other => panic!("expected Writable, got {other:?}"),
    }
    let all = StoreAccess {
        trust: Trust::parse(&format!("uid:{},gid:{}", meta.uid(), meta.gid())).expect("trust"),
        ..access.clone()
    };
    assert!(matches!(
        Store::open_with("s", &all),
        Err(StoreError::Writable { .. })
    ));
    // Group-writable: only with the group trusted.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).expect("chmod");
    assert!(matches!(
        Store::open_with("s", &access),
        Err(StoreError::Writable { .. })
    ));
    let group = StoreAccess {
        trust: Trust::parse(&format!("gid:{}", meta.gid())).expect("trust"),
        ..access.clone()
    };
    Store::open_with("s", &group).expect("the trusted group's store opens");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    if !is_root() {
        println!("SKIP: not root; stores owned by another uid not tested");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    // Owned by nobody (65534): refused, with the reason and the way out.
    chown(&path, 65534, 65534);
    match Store::open_with("s", &access) {
        Err(
            e @ StoreError::NotOwner {
                owner: 65534,
                uid: 0,
                ..
            },
        ) => {
            let text = e.to_string();
            assert!(
                text.contains("owned by uid 65534") && text.contains("not you (uid 0)"),
                "{text}"
            );
            assert!(text.contains("--store-trust uid:65534"), "{text}");
        }
        other => panic!("expected NotOwner, got {other:?}"),
    }
    assert!(matches!(
        Store::open_or_create_with("s", opts(MIN_STORE_SIZE), &access),
        Err(StoreError::NotOwner { .. })
    ));
    // The opt-in: the owner's uid, or the store's group.
    let by_uid = StoreAccess {
        trust: Trust::parse("uid:65534").expect("trust"),
        ..access.clone()
    };
    Store::open_with("s", &by_uid).expect("trusted uid");
    let by_gid = StoreAccess {
        trust: Trust::parse("gid:65534").expect("trust"),
        ..access.clone()
    };
    Store::open_with("s", &by_gid).expect("trusted gid");
    let other = StoreAccess {
        trust: Trust::parse("uid:1000,gid:1000").expect("trust"),
        ..access.clone()
    };
    assert!(matches!(
        Store::open_with("s", &other),
        Err(StoreError::NotOwner { .. })
    ));

    // A store shared with a group at creation: mode 0660, that group; another
    // user of the group opens it trusting the group (here: root trusting it).
    let shared = StoreAccess {
        group: Some(65534),
        ..access.clone()
    };
    Store::create_with("g", opts(MIN_STORE_SIZE), &shared).expect("create shared");
    let meta = std::fs::metadata(access.path_of("g")).expect("meta");
    assert_eq!((meta.mode() & 0o777, meta.gid()), (0o660, 65534));
    chown(&access.path_of("g"), 65534, 65534);
    assert!(Store::open_with("g", &access).is_err());
    Store::open_with("g", &by_gid).expect("the group's store opens when the group is trusted");
    let _ = std::fs::remove_dir_all(&dir);
}
