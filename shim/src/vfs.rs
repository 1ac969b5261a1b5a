//! The virtual bpffs: `/sys/fs/bpf/...` paths answered from the store's pins,
//! never from the real directory. Directories made with mkdir are recorded as
//! pins of their own; a directory that holds pins exists implicitly too.

use maps::Pinned;

use crate::user::Errno;

/// Where the virtual bpffs is mounted.
pub const ROOT: &str = "/sys/fs/bpf";
/// statfs f_type of bpffs.
pub const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// What a virtual path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    Dir,
    Map(u32),
    Prog(u32),
}

/// The normalised absolute form of `path` if it lies on the virtual bpffs.
pub fn virtual_path(path: &str) -> Option<String> {
    let abs = if path.starts_with('/') {
        path.to_string()
    } else {
        let cwd = std::env::current_dir().ok()?;
        format!("{}/{path}", cwd.to_str()?)
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in abs.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let norm = format!("/{}", parts.join("/"));
    (norm == ROOT || norm.starts_with("/sys/fs/bpf/")).then_some(norm)
}

/// What `path` (normalised, virtual) is, if anything.
pub fn node(store: &maps::Store, path: &str) -> Option<Node> {
    if path == ROOT {
        return Some(Node::Dir);
    }
    let prefix = format!("{path}/");
    let mut implicit = false;
    for (p, w) in store.pins() {
        if p == path {
            return Some(match w {
                Pinned::Map(id) => Node::Map(id),
                Pinned::Prog(id) => Node::Prog(id),
                Pinned::Dir => Node::Dir,
            });
        }
        implicit |= p.starts_with(&prefix);
    }
    implicit.then_some(Node::Dir)
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// A new entry at `path` needs an existing directory above it.
pub fn check_parent(store: &maps::Store, path: &str) -> Result<(), Errno> {
    if path == ROOT {
        return Err(libc::EEXIST);
    }
    match node(store, parent(path)) {
        Some(Node::Dir) => Ok(()),
        Some(_) => Err(libc::ENOTDIR),
        None => Err(libc::ENOENT),
    }
}

/// mkdir on the virtual bpffs.
pub fn mkdir(store: &maps::Store, path: &str) -> Result<(), Errno> {
    if node(store, path).is_some() {
        return Err(libc::EEXIST);
    }
    check_parent(store, path)?;
    store.pin(path, Pinned::Dir).map_err(|e| e.errno())
}

/// unlink on the virtual bpffs: removes a pin (the object stays while used).
pub fn unlink(store: &maps::Store, path: &str) -> Result<(), Errno> {
    match node(store, path) {
        None => Err(libc::ENOENT),
        Some(Node::Dir) => Err(libc::EISDIR),
        Some(_) => store.unpin(path).map_err(|e| e.errno()),
    }
}

/// rmdir on the virtual bpffs.
pub fn rmdir(store: &maps::Store, path: &str) -> Result<(), Errno> {
    if path == ROOT {
        return Err(libc::EBUSY);
    }
    let prefix = format!("{path}/");
    match node(store, path) {
        None => Err(libc::ENOENT),
        Some(Node::Dir) => {
            if store.pins().iter().any(|(p, _)| p.starts_with(&prefix)) {
                return Err(libc::ENOTEMPTY);
            }
            store.unpin(path).map_err(|e| e.errno())
        }
        Some(_) => Err(libc::ENOTDIR),
    }
}

/// The statfs answer for the virtual bpffs.
pub fn statfs_buf() -> libc::statfs {
    // SAFETY: statfs is plain data; all-zero is a valid value.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    s.f_type = BPF_FS_MAGIC as _;
    s.f_bsize = 4096;
    s.f_frsize = 4096;
    s.f_namelen = 255;
    s
}

/// The stat answer for a virtual node.
pub fn stat_buf(path: &str, n: Node) -> libc::stat {
    // SAFETY: stat is plain data; all-zero is a valid value.
    let mut s: libc::stat = unsafe { std::mem::zeroed() };
    s.st_mode = match n {
        Node::Dir => libc::S_IFDIR | 0o700,
        _ => libc::S_IFREG | 0o600,
    };
    s.st_nlink = if n == Node::Dir { 2 } else { 1 };
    // SAFETY: getuid/getgid cannot fail.
    unsafe {
        s.st_uid = libc::getuid();
        s.st_gid = libc::getgid();
    }
    s.st_blksize = 4096;
    s.st_dev = BPF_FS_MAGIC as _;
    s.st_ino = path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_on_the_virtual_bpffs() {
        assert_eq!(virtual_path("/sys/fs/bpf").as_deref(), Some(ROOT));
        assert_eq!(
            virtual_path("/sys/fs/bpf//a/./b/../c/").as_deref(),
            Some("/sys/fs/bpf/a/c")
        );
        assert_eq!(virtual_path("/sys/fs/bpfx/a"), None);
        assert_eq!(virtual_path("/tmp/a"), None);
        assert_eq!(virtual_path("/sys/fs/bpf/../x"), None);
    }

    #[test]
    fn directories_and_pins() {
        let s = maps::Store::anonymous(maps::StoreOptions {
            size: 1 << 20,
            ncpus: Some(1),
        })
        .expect("store");
        assert_eq!(node(&s, ROOT), Some(Node::Dir));
        assert_eq!(mkdir(&s, "/sys/fs/bpf/a/b"), Err(libc::ENOENT));
        mkdir(&s, "/sys/fs/bpf/a").expect("mkdir");
        assert_eq!(mkdir(&s, "/sys/fs/bpf/a"), Err(libc::EEXIST));
        mkdir(&s, "/sys/fs/bpf/a/b").expect("mkdir b");
        let m = s
            .create_map(&maps::MapDef {
                map_type: maps::BPF_MAP_TYPE_ARRAY,
                key_size: 4,
                value_size: 4,
                max_entries: 1,
                name: "m".into(),
                ..maps::MapDef::default()
            })
            .expect("map");
        check_parent(&s, "/sys/fs/bpf/a/b/m").expect("parent");
        s.pin("/sys/fs/bpf/a/b/m", Pinned::Map(m.id()))
            .expect("pin");
        assert_eq!(node(&s, "/sys/fs/bpf/a/b/m"), Some(Node::Map(m.id())));
        assert_eq!(check_parent(&s, "/sys/fs/bpf/a/b/m/x"), Err(libc::ENOTDIR));
        assert_eq!(rmdir(&s, "/sys/fs/bpf/a/b"), Err(libc::ENOTEMPTY));
        assert_eq!(unlink(&s, "/sys/fs/bpf/a/b"), Err(libc::EISDIR));
        unlink(&s, "/sys/fs/bpf/a/b/m").expect("unlink");
        assert_eq!(unlink(&s, "/sys/fs/bpf/a/b/m"), Err(libc::ENOENT));
        rmdir(&s, "/sys/fs/bpf/a/b").expect("rmdir");
        assert_eq!(node(&s, "/sys/fs/bpf/a/b"), None);
        // A pin made without mkdir (xdp-runner --pin-maps) implies its directory.
        s.pin("/sys/fs/bpf/x/y", Pinned::Map(m.id())).expect("pin");
        assert_eq!(node(&s, "/sys/fs/bpf/x"), Some(Node::Dir));
    }
}
