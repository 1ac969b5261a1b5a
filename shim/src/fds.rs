//! The descriptors the shim hands out: memfds whose name says which store and
//! what they stand for (`xdpshim:2d.1f3a:map:5`, the store's device and inode
//! in hex, then the object). Being real descriptors, they survive dup, fork
//! and SCM_RIGHTS, close normally, and need no table: the shim reads the name
//! back from `/proc/self/fd/N` when the application passes one in. A
//! descriptor of another store is not ours (EBADF), and holds nothing here.
//!
//! A BTF object is kept in its memfd's contents until a map or program refers
//! to it or it is pinned or queried (then it is recorded in the store), so the
//! many small BTF blobs of libbpf's feature probes never reach the store.

use std::ffi::{c_int, CString};
use std::os::fd::{FromRawFd, OwnedFd};

use crate::user::Errno;

/// What a shim descriptor stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Obj {
    /// A map of the store, by id.
    Map(u32),
    /// A program of the store, by id.
    Prog(u32),
    /// A program of another type than XDP: verified, not recorded (it cannot
    /// run here). Its type is kept for BPF_OBJ_GET_INFO_BY_FD.
    LocalProg(u32),
    /// A BTF object of the store, by id.
    Btf(u32),
    /// A BTF object held in the memfd's contents.
    LocalBtf,
    /// An XDP link of the store, by link id.
    Link(u32),
    /// A replacement (freplace) link of the store, by link id.
    Freplace(u32),
    /// The descriptor of BPF_ENABLE_STATS.
    Stats,
}

/// The part of a descriptor's name that says which store it belongs to.
pub fn store_tag(store: &maps::Store) -> String {
    store.descriptor_tag()
}

impl Obj {
    fn name(self, tag: &str) -> String {
        let what = match self {
            Obj::Map(id) => format!("map:{id}"),
            Obj::Prog(id) => format!("prog:{id}"),
            Obj::LocalProg(t) => format!("lprog:{t}"),
            Obj::Btf(id) => format!("btf:{id}"),
            Obj::LocalBtf => "lbtf".to_string(),
            Obj::Link(id) => format!("link:{id}"),
            Obj::Freplace(id) => format!("flink:{id}"),
            Obj::Stats => "stats".to_string(),
        };
        format!("xdpshim:{tag}:{what}")
    }

    fn parse(name: &str, tag: &str) -> Option<Obj> {
        let rest = name.strip_prefix("xdpshim:")?.strip_prefix(tag)?;
        let rest = rest.strip_prefix(':')?;
        let mut it = rest.split(':');
        let kind = it.next()?;
        let mut num = || it.next().and_then(|s| s.parse::<u32>().ok());
        Some(match kind {
            "map" => Obj::Map(num()?),
            "prog" => Obj::Prog(num()?),
            "lprog" => Obj::LocalProg(num()?),
            "btf" => Obj::Btf(num()?),
            "lbtf" => Obj::LocalBtf,
            "link" => Obj::Link(num()?),
            "flink" => Obj::Freplace(num()?),
            "stats" => Obj::Stats,
            _ => return None,
        })
    }

    /// What the kernel's anon inode for this object is called
    /// (`readlink /proc/self/fd/N` gives `anon_inode:<this>`).
    pub fn anon_name(self) -> &'static str {
        match self {
            Obj::Map(_) => "bpf-map",
            Obj::Prog(_) | Obj::LocalProg(_) => "bpf-prog",
            Obj::Btf(_) | Obj::LocalBtf => "btf",
            Obj::Link(_) | Obj::Freplace(_) => "bpf_link",
            Obj::Stats => "bpf-stats",
        }
    }
}

/// The tag of the store this process works on.
fn own_tag() -> Result<&'static str, Errno> {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(t) = TAG.get() {
        return Ok(t);
    }
    let tag = store_tag(crate::state::store()?);
    Ok(TAG.get_or_init(|| tag))
}

/// A new close-on-exec descriptor for `obj` (with `contents`, if any).
pub fn create(obj: Obj, contents: &[u8]) -> Result<c_int, Errno> {
    create_tagged(obj, contents, own_tag()?)
}

fn create_tagged(obj: Obj, contents: &[u8], tag: &str) -> Result<c_int, Errno> {
    let name = CString::new(obj.name(tag)).map_err(|_| libc::EINVAL)?;
    // SAFETY: name is a valid C string.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(errno());
    }
    if !contents.is_empty() {
        let mut done = 0;
        while done < contents.len() {
            // SAFETY: the buffer is valid for the given length; fd is ours.
            let n = unsafe {
                libc::write(
                    fd,
                    contents[done..].as_ptr() as *const libc::c_void,
                    contents.len() - done,
                )
            };
            if n <= 0 {
                let e = errno();
                // SAFETY: fd was just created and is not shared.
                drop(unsafe { OwnedFd::from_raw_fd(fd) });
                return Err(e);
            }
            done += n as usize;
        }
    }
    Ok(fd)
}

/// What descriptor `fd` stands for: None if it is not one of ours (or the
/// store cannot be opened). The store is asked for only when the descriptor
/// is a shim memfd, so looking at the store's own file while opening it
/// (the shim's `mmap`) does not come back here.
pub fn lookup(fd: c_int) -> Option<Obj> {
    if fd < 0 {
        return None;
    }
    let name = shim_name(&format!("/proc/self/fd/{fd}"))?;
    Obj::parse(&name, own_tag().ok()?)
}

#[cfg(test)]
fn lookup_tagged(fd: c_int, tag: &str) -> Option<Obj> {
    obj_of_link(&format!("/proc/self/fd/{fd}"), tag)
}

/// What the descriptor behind a `/proc/PID/fd/N` link stands for in the
/// store tagged `tag`.
pub fn obj_of_link(path: &str, tag: &str) -> Option<Obj> {
    Obj::parse(&shim_name(path)?, tag)
}

/// The memfd name behind a `/proc/PID/fd/N` link if it is a shim
/// descriptor's, read with libc's readlink (the shim's own names its
/// descriptors as anon inodes).
fn shim_name(path: &str) -> Option<String> {
    let path = CString::new(path).ok()?;
    let mut buf = [0u8; 256];
    // SAFETY: path is a C string; buf is writable for its length.
    let n = unsafe { crate::real::readlink(path.as_ptr(), buf.as_mut_ptr() as *mut _, buf.len()) };
    if n <= 0 {
        return None;
    }
    let target = std::str::from_utf8(&buf[..n as usize]).ok()?;
    let name = target.strip_prefix("/memfd:")?;
    let name = name.strip_suffix(" (deleted)").unwrap_or(name);
    name.starts_with("xdpshim:").then(|| name.to_string())
}

/// A new close-on-exec descriptor standing for the virtual bpffs directory
/// `path` (opened with open/openat, read with fdopendir): a memfd named
/// `xdpshim:<tag>:dir:<path>`. ENAMETOOLONG when the name is longer than
/// 238 bytes.
pub fn create_dir(path: &str) -> Result<c_int, Errno> {
    let name = format!("xdpshim:{}:dir:{path}", own_tag()?);
    // Read back through a 256-byte readlink of "/memfd:<name> (deleted)".
    if name.len() > 238 {
        return Err(libc::ENAMETOOLONG);
    }
    let name = CString::new(name).map_err(|_| libc::EINVAL)?;
    // SAFETY: name is a valid C string.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(errno());
    }
    DIRS_MADE.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(fd)
}

/// Set once this process made a virtual directory descriptor: until then no
/// descriptor can be one, and the `*at` calls skip looking.
static DIRS_MADE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The virtual directory descriptor `fd` stands for, if it is one of ours.
pub fn dir_of(fd: c_int) -> Option<String> {
    if fd < 0 || !DIRS_MADE.load(std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    let name = shim_name(&format!("/proc/self/fd/{fd}"))?;
    let rest = name
        .strip_prefix("xdpshim:")?
        .strip_prefix(own_tag().ok()?)?;
    let path = rest.strip_prefix(":dir:")?;
    crate::vfs::virtual_path(path).filter(|p| p == path)
}

/// The contents of a shim descriptor (a local BTF object's data).
pub fn contents(fd: c_int) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        // SAFETY: buf is writable for its length.
        let n = unsafe {
            libc::pread(
                fd,
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                out.len() as libc::off_t,
            )
        };
        if n < 0 {
            return Err(errno());
        }
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

/// The calling thread's errno.
pub fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_say_what_they_are_after_dup() {
        for obj in [
            Obj::Map(5),
            Obj::Prog(7),
            Obj::LocalProg(1),
            Obj::Btf(3),
            Obj::LocalBtf,
            Obj::Link(7),
            Obj::Stats,
        ] {
            let fd = create_tagged(obj, b"data", "2d.1f").expect("memfd");
            assert_eq!(lookup_tagged(fd, "2d.1f"), Some(obj));
            // Another store's descriptor is not ours.
            assert_eq!(lookup_tagged(fd, "2d.1"), None);
            assert_eq!(lookup_tagged(fd, "2d.1f0"), None);
            // SAFETY: fd is ours.
            let d = unsafe { libc::dup(fd) };
            assert_eq!(lookup_tagged(d, "2d.1f"), Some(obj));
            assert_eq!(contents(d).expect("read"), b"data");
            // SAFETY: both are ours.
            unsafe {
                libc::close(fd);
                libc::close(d);
            }
        }
        assert_eq!(lookup_tagged(0, "2d.1f"), None);
        assert_eq!(lookup(-1), None);
        assert_eq!(Obj::parse("xdpshim:2d.1f:map:x", "2d.1f"), None);
        assert_eq!(Obj::parse("xdpshim:map:1", "2d.1f"), None);
        assert_eq!(Obj::parse("other:2d.1f:map:1", "2d.1f"), None);
    }
}
