//! The descriptors the shim hands out: memfds whose name says what they stand
//! for (`xdpshim:map:5`). Being real descriptors, they survive dup, fork and
//! SCM_RIGHTS, close normally, and need no table: the shim reads the name back
//! from `/proc/self/fd/N` when the application passes one in.
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
    /// An XDP attachment: program id and ifindex.
    Link(u32, u32),
    /// The descriptor of BPF_ENABLE_STATS.
    Stats,
}

impl Obj {
    fn name(self) -> String {
        match self {
            Obj::Map(id) => format!("xdpshim:map:{id}"),
            Obj::Prog(id) => format!("xdpshim:prog:{id}"),
            Obj::LocalProg(t) => format!("xdpshim:lprog:{t}"),
            Obj::Btf(id) => format!("xdpshim:btf:{id}"),
            Obj::LocalBtf => "xdpshim:lbtf".to_string(),
            Obj::Link(p, i) => format!("xdpshim:link:{p}:{i}"),
            Obj::Stats => "xdpshim:stats".to_string(),
        }
    }

    fn parse(name: &str) -> Option<Obj> {
        let rest = name.strip_prefix("xdpshim:")?;
        let mut it = rest.split(':');
        let kind = it.next()?;
        let mut num = || it.next().and_then(|s| s.parse::<u32>().ok());
        Some(match kind {
            "map" => Obj::Map(num()?),
            "prog" => Obj::Prog(num()?),
            "lprog" => Obj::LocalProg(num()?),
            "btf" => Obj::Btf(num()?),
            "lbtf" => Obj::LocalBtf,
            "link" => {
                let p = num()?;
                Obj::Link(p, num()?)
            }
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
            Obj::Link(..) => "bpf_link",
            Obj::Stats => "bpf-stats",
        }
    }
}

/// A new close-on-exec descriptor for `obj` (with `contents`, if any).
pub fn create(obj: Obj, contents: &[u8]) -> Result<c_int, Errno> {
    let name = CString::new(obj.name()).map_err(|_| libc::EINVAL)?;
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

/// What descriptor `fd` stands for: None if it is not one of ours.
pub fn lookup(fd: c_int) -> Option<Obj> {
    if fd < 0 {
        return None;
    }
    obj_of_link(&format!("/proc/self/fd/{fd}"))
}

/// What the descriptor behind a `/proc/PID/fd/N` link stands for, read with
/// libc's readlink (the shim's own names its descriptors as anon inodes).
pub fn obj_of_link(path: &str) -> Option<Obj> {
    let path = CString::new(path).ok()?;
    let mut buf = [0u8; 128];
    // SAFETY: path is a C string; buf is writable for its length.
    let n = unsafe { crate::real::readlink(path.as_ptr(), buf.as_mut_ptr() as *mut _, buf.len()) };
    if n <= 0 {
        return None;
    }
    let target = std::str::from_utf8(&buf[..n as usize]).ok()?;
    let name = target.strip_prefix("/memfd:")?;
    let name = name.strip_suffix(" (deleted)").unwrap_or(name);
    Obj::parse(name)
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
            Obj::Link(7, 2),
            Obj::Stats,
        ] {
            let fd = create(obj, b"data").expect("memfd");
            assert_eq!(lookup(fd), Some(obj));
            // SAFETY: fd is ours.
            let d = unsafe { libc::dup(fd) };
            assert_eq!(lookup(d), Some(obj));
            assert_eq!(contents(d).expect("read"), b"data");
            // SAFETY: both are ours.
            unsafe {
                libc::close(fd);
                libc::close(d);
            }
        }
        assert_eq!(lookup(0).filter(|_| false), None);
        assert_eq!(lookup(-1), None);
        assert_eq!(Obj::parse("xdpshim:map:x"), None);
        assert_eq!(Obj::parse("other:map:1"), None);
    }
}
