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
    Link(u32),
    /// A symbolic link (seen only without following it: lstat, readlink, unlink).
    Symlink,
}

/// The node a pin makes.
fn pin_node(w: Pinned) -> Node {
    match w {
        Pinned::Map(id) => Node::Map(id),
        Pinned::Prog(id) => Node::Prog(id),
        Pinned::Link(id) => Node::Link(id),
        Pinned::Dir => Node::Dir,
        Pinned::Symlink => Node::Symlink,
    }
}

/// Most symbolic links one lookup follows (the kernel's MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

/// `path` (normalised, virtual) with the symbolic links of its directories
/// resolved, and of its last component when `follow`, as path lookup does. A
/// target off the virtual bpffs, or too many links, gives None (ENOENT, ELOOP
/// for the kernel; nothing here reaches the host's files).
pub fn resolve(store: &maps::Store, path: &str, follow: bool) -> Option<String> {
    let links: Vec<String> = store
        .pins()
        .into_iter()
        .filter(|(_, w)| *w == Pinned::Symlink)
        .map(|(p, _)| p)
        .collect();
    if links.is_empty() {
        return Some(path.to_string());
    }
    let mut cur = path.to_string();
    for _ in 0..MAX_SYMLINKS {
        let parts: Vec<&str> = cur.split('/').filter(|c| !c.is_empty()).collect();
        let mut prefix = String::new();
        let mut hop = None;
        for (i, c) in parts.iter().enumerate() {
            prefix.push('/');
            prefix.push_str(c);
            if i + 1 == parts.len() && !follow {
                break;
            }
            if links.contains(&prefix) {
                let target = store.symlink_target(&prefix).ok()?;
                hop = Some((
                    target,
                    parts[i + 1..].join("/"),
                    parent(&prefix).to_string(),
                ));
                break;
            }
        }
        let Some((target, rest, dir)) = hop else {
            return Some(cur);
        };
        let base = if target.starts_with('/') {
            target
        } else {
            format!("{dir}/{target}")
        };
        cur = virtual_path(&format!("{base}/{rest}"))?;
    }
    None
}

/// What `path` names without following a symbolic link in its last component.
pub fn node_nofollow(store: &maps::Store, path: &str) -> Option<Node> {
    let p = resolve(store, path, false)?;
    match store.pinned(&p) {
        Ok(Pinned::Symlink) => Some(Node::Symlink),
        _ => node_at(store, &p),
    }
}

/// symlink on the virtual bpffs: `path` names `target`.
pub fn symlink(store: &maps::Store, path: &str, target: &str) -> Result<(), Errno> {
    let path = resolve(store, path, false).ok_or(libc::ENOENT)?;
    if node_nofollow(store, &path).is_some() {
        return Err(libc::EEXIST);
    }
    check_parent(store, &path)?;
    store.pin_symlink(&path, target).map_err(|e| e.errno())
}

/// readlink on the virtual bpffs.
pub fn readlink(store: &maps::Store, path: &str) -> Result<String, Errno> {
    let p = resolve(store, path, false).ok_or(libc::ENOENT)?;
    match node_nofollow(store, &p) {
        Some(Node::Symlink) => store.symlink_target(&p).map_err(|e| e.errno()),
        Some(_) => Err(libc::EINVAL),
        None => Err(libc::ENOENT),
    }
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

/// What `path` (normalised, virtual) is, if anything, symbolic links followed.
pub fn node(store: &maps::Store, path: &str) -> Option<Node> {
    node_at(store, &resolve(store, path, true)?)
}

/// What the resolved `path` is.
fn node_at(store: &maps::Store, path: &str) -> Option<Node> {
    if path == ROOT {
        return Some(Node::Dir);
    }
    let prefix = format!("{path}/");
    let mut implicit = false;
    for (p, w) in store.pins() {
        if p == path {
            return Some(pin_node(w));
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
    let path = &resolve(store, path, false).ok_or(libc::ENOENT)?;
    if node_nofollow(store, path).is_some() {
        return Err(libc::EEXIST);
    }
    check_parent(store, path)?;
    store.pin(path, Pinned::Dir).map_err(|e| e.errno())
}

/// unlink on the virtual bpffs: removes a pin (the object stays while used).
pub fn unlink(store: &maps::Store, path: &str) -> Result<(), Errno> {
    let path = &resolve(store, path, false).ok_or(libc::ENOENT)?;
    match node_nofollow(store, path) {
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
    let path = &resolve(store, path, false).ok_or(libc::ENOENT)?;
    let prefix = format!("{path}/");
    match node_nofollow(store, path) {
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

/// The device number the virtual bpffs reports: an anonymous device (major
/// 0), as the kernel's bpffs mounts are.
pub const DEV_MINOR: u32 = 0xbf;

/// A virtual node's attributes, as the kernel's bpffs gives them to root:
/// the mount's root is `drwx-----T` (mode=700 plus the sticky bit bpffs
/// adds), directories made by mkdir `drwxr-xr-x` (the usual umask; the
/// store keeps no mode), pins `-rw-------`; a directory links to itself,
/// its parent's entry and each subdirectory's `..`; sizes are 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub mode: u32,
    pub nlink: u64,
    pub ino: u64,
}

/// The attributes of `path` (normalised, virtual), a node of kind `n`.
pub fn attr(store: &maps::Store, path: &str, n: Node) -> Attr {
    let (mode, nlink) = match n {
        Node::Dir => {
            let subdirs = entries(store, path)
                .iter()
                .filter(|(_, k)| *k == Node::Dir)
                .count() as u64;
            let perm = if path == ROOT {
                libc::S_ISVTX | 0o700
            } else {
                0o755
            };
            (libc::S_IFDIR | perm, 2 + subdirs)
        }
        Node::Symlink => (libc::S_IFLNK | 0o777, 1),
        _ => (libc::S_IFREG | 0o600, 1),
    };
    Attr {
        mode,
        nlink,
        ino: inode(path),
    }
}

/// A stable inode number for `path` (the root's is 1, as the kernel's).
pub fn inode(path: &str) -> u64 {
    if path == ROOT {
        return 1;
    }
    path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) | 2
}

/// The stat answer for a virtual node.
pub fn stat_buf(store: &maps::Store, path: &str, n: Node) -> libc::stat {
    let a = attr(store, path, n);
    // SAFETY: stat is plain data; all-zero is a valid value.
    let mut s: libc::stat = unsafe { std::mem::zeroed() };
    s.st_mode = a.mode;
    s.st_nlink = a.nlink as _;
    // SAFETY: getuid/getgid cannot fail.
    unsafe {
        s.st_uid = libc::getuid();
        s.st_gid = libc::getgid();
    }
    s.st_blksize = 4096;
    s.st_dev = libc::makedev(0, DEV_MINOR);
    s.st_ino = a.ino;
    s
}

/// The statx answer for a virtual node (the basic stats; no birth time, as bpffs).
pub fn statx_buf(store: &maps::Store, path: &str, n: Node) -> libc::statx {
    let a = attr(store, path, n);
    // SAFETY: statx is plain data; all-zero is a valid value.
    let mut s: libc::statx = unsafe { std::mem::zeroed() };
    s.stx_mask = libc::STATX_BASIC_STATS;
    s.stx_blksize = 4096;
    s.stx_nlink = a.nlink as u32;
    // SAFETY: getuid/getgid cannot fail.
    unsafe {
        s.stx_uid = libc::getuid();
        s.stx_gid = libc::getgid();
    }
    s.stx_mode = a.mode as u16;
    s.stx_ino = a.ino;
    s.stx_dev_major = 0;
    s.stx_dev_minor = DEV_MINOR;
    s
}

/// The entries of the virtual directory `dir`, sorted by name: pins and
/// directories directly below it, implicit directories included.
pub fn entries(store: &maps::Store, dir: &str) -> Vec<(String, Node)> {
    let prefix = if dir == "/" {
        "/".to_string()
    } else {
        format!("{dir}/")
    };
    let mut out: Vec<(String, Node)> = Vec::new();
    for (p, w) in store.pins() {
        let Some(rest) = p.strip_prefix(&prefix) else {
            continue;
        };
        let (name, kind) = match rest.split_once('/') {
            Some((first, _)) => (first, Node::Dir),
            None => (rest, pin_node(w)),
        };
        if name.is_empty() {
            continue;
        }
        match out.iter_mut().find(|(n, _)| n == name) {
            Some(e) => {
                if kind == Node::Dir {
                    e.1 = Node::Dir;
                }
            }
            None => out.push((name.to_string(), kind)),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Flags of renameat2.
pub const RENAME_NOREPLACE: u32 = 1;
/// Flags of renameat2.
pub const RENAME_EXCHANGE: u32 = 2;

/// rename on the virtual bpffs, with the checks the kernel's VFS makes: a
/// pin moves in the store, a directory with everything below it.
pub fn rename(store: &maps::Store, from: &str, to: &str, flags: u32) -> Result<(), Errno> {
    if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0
        || flags == RENAME_NOREPLACE | RENAME_EXCHANGE
    {
        return Err(libc::EINVAL);
    }
    let from = &resolve(store, from, false).ok_or(libc::ENOENT)?;
    let to = &resolve(store, to, false).ok_or(libc::ENOENT)?;
    if from == ROOT || to == ROOT {
        return Err(libc::EBUSY);
    }
    let src = node_nofollow(store, from).ok_or(libc::ENOENT)?;
    check_parent(store, to)?;
    if flags & RENAME_EXCHANGE != 0 {
        // bpffs supports it (simple_rename_exchange); the store has no
        // atomic swap of two paths.
        return Err(libc::EINVAL);
    }
    if from == to {
        return Ok(());
    }
    let from_dir = format!("{from}/");
    if to.starts_with(&from_dir) {
        return Err(libc::EINVAL);
    }
    if let Some(dst) = node_nofollow(store, to) {
        if flags & RENAME_NOREPLACE != 0 {
            return Err(libc::EEXIST);
        }
        match (src == Node::Dir, dst == Node::Dir) {
            (true, false) => return Err(libc::ENOTDIR),
            (false, true) => return Err(libc::EISDIR),
            (true, true) => {
                if !entries(store, to).is_empty() {
                    return Err(libc::ENOTEMPTY);
                }
                store.unpin(to).map_err(|e| e.errno())?;
            }
            (false, false) => store.unpin(to).map_err(|e| e.errno())?,
        }
    }
    // The pins to move: the node itself and, for a directory, all below it.
    let moving: Vec<(String, Pinned)> = store
        .pins()
        .into_iter()
        .filter(|(p, _)| p == from || p.starts_with(&from_dir))
        .collect();
    if moving.is_empty() {
        // An implicit directory with nothing below it cannot be; keep the
        // answer the kernel would give for a vanished source.
        return Err(libc::ENOENT);
    }
    let mut made: Vec<String> = Vec::new();
    for (p, w) in &moving {
        let np = format!("{to}{}", &p[from.len()..]);
        let made_one = match w {
            Pinned::Symlink => store
                .symlink_target(p)
                .and_then(|t| store.pin_symlink(&np, &t)),
            w => store.pin(&np, *w),
        };
        if let Err(e) = made_one {
            for m in &made {
                let _ = store.unpin(m);
            }
            return Err(e.errno());
        }
        made.push(np);
    }
    for (p, _) in &moving {
        let _ = store.unpin(p);
    }
    Ok(())
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

    #[test]
    fn rename_moves_pins_and_directories() {
        let s = maps::Store::anonymous(maps::StoreOptions {
            size: 1 << 20,
            ncpus: Some(1),
        })
        .expect("store");
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
        mkdir(&s, "/sys/fs/bpf/a").expect("mkdir a");
        mkdir(&s, "/sys/fs/bpf/a/b").expect("mkdir b");
        mkdir(&s, "/sys/fs/bpf/e").expect("mkdir e");
        s.pin("/sys/fs/bpf/a/b/m", Pinned::Map(m.id()))
            .expect("pin");
        s.pin("/sys/fs/bpf/p", Pinned::Map(m.id())).expect("pin p");
        // The root: sticky, 0700, one link per subdirectory besides its two.
        let root = attr(&s, ROOT, Node::Dir);
        assert_eq!(root.mode, libc::S_IFDIR | libc::S_ISVTX | 0o700);
        assert_eq!(root.nlink, 4);
        assert_eq!(attr(&s, "/sys/fs/bpf/a", Node::Dir).nlink, 3);
        assert_eq!(
            attr(&s, "/sys/fs/bpf/p", Node::Map(m.id())).mode,
            libc::S_IFREG | 0o600
        );
        let names: Vec<String> = entries(&s, ROOT).into_iter().map(|e| e.0).collect();
        assert_eq!(names, ["a", "e", "p"]);
        assert_eq!(
            rename(&s, "/sys/fs/bpf/x", "/sys/fs/bpf/y", 0),
            Err(libc::ENOENT)
        );
        assert_eq!(
            rename(&s, "/sys/fs/bpf/p", "/sys/fs/bpf/q/r", 0),
            Err(libc::ENOENT)
        );
        assert_eq!(
            rename(&s, "/sys/fs/bpf/a", "/sys/fs/bpf/a/b/c", 0),
            Err(libc::EINVAL)
        );
        assert_eq!(
            rename(&s, "/sys/fs/bpf/a", "/sys/fs/bpf/p", 0),
            Err(libc::ENOTDIR)
        );
        assert_eq!(
            rename(&s, "/sys/fs/bpf/p", "/sys/fs/bpf/e", 0),
            Err(libc::EISDIR)
        );
        assert_eq!(
            rename(&s, "/sys/fs/bpf/e", "/sys/fs/bpf/a", 0),
            Err(libc::ENOTEMPTY)
        );
        assert_eq!(
            rename(&s, "/sys/fs/bpf/p", "/sys/fs/bpf/a/b/m", RENAME_NOREPLACE),
            Err(libc::EEXIST)
        );
        assert_eq!(rename(&s, ROOT, "/sys/fs/bpf/z", 0), Err(libc::EBUSY));
        // A directory moves with what is below it.
        rename(&s, "/sys/fs/bpf/a", "/sys/fs/bpf/e", 0).expect("rename dir");
        assert_eq!(node(&s, "/sys/fs/bpf/a"), None);
        assert_eq!(node(&s, "/sys/fs/bpf/e/b"), Some(Node::Dir));
        assert_eq!(node(&s, "/sys/fs/bpf/e/b/m"), Some(Node::Map(m.id())));
        // A pin replaces a pin.
        rename(&s, "/sys/fs/bpf/p", "/sys/fs/bpf/e/b/m", 0).expect("rename pin");
        assert_eq!(node(&s, "/sys/fs/bpf/p"), None);
        assert_eq!(node(&s, "/sys/fs/bpf/e/b/m"), Some(Node::Map(m.id())));
        assert_eq!(s.pins().len(), 3);
    }
}
