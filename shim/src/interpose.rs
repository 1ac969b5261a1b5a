//! The C ABI entry points that replace libc's under LD_PRELOAD. Each one
//! decides quickly whether a call is ours; calls that are not go to the next
//! definition (libc's) untouched.

use std::ffi::{c_char, c_int, c_long, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::fds::{self, Obj};
use crate::{real, set_errno, state, vfs};

/// Whether the entry points answer at all: only when this code runs from the
/// shared library (preloaded), not when the crate is linked into a program
/// (its tests), whose own mkdir, statfs... must stay the real ones.
fn active() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    static ACTIVE: AtomicU8 = AtomicU8::new(0);
    match ACTIVE.load(Ordering::Relaxed) {
        1 => return true,
        2 => return false,
        _ => {}
    }
    // SAFETY: Dl_info is plain data; dladdr fills it for an address of ours.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: the address is a function of this object.
    let found = unsafe { libc::dladdr(active as *const c_void, &mut info) } != 0;
    let ours = found && !info.dli_fname.is_null() && {
        // SAFETY: dladdr gives a C string.
        let name = unsafe { CStr::from_ptr(info.dli_fname) }.to_bytes();
        name.ends_with(b".so") || name.windows(4).any(|w| w == b".so.")
    };
    ACTIVE.store(if ours { 1 } else { 2 }, Ordering::Relaxed);
    ours
}

/// Runs `f`, turning an Err or a panic into `-1` with errno.
fn guard(what: &str, f: impl FnOnce() -> Result<i64, i32>) -> i64 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            set_errno(e);
            -1
        }
        Err(_) => {
            state::log_once(what, &format!("{what}: internal error (panic); EFAULT"));
            set_errno(libc::EFAULT);
            -1
        }
    }
}

/// Longest path the kernel takes (PATH_MAX, with its NUL).
const PATH_MAX: usize = 4096;

/// The path argument of an interposed call, copied with the checked copy
/// (never dereferenced directly) into a stack buffer, and returned only when
/// `wanted` says it may be ours (no allocation for the others). None when the
/// shim is not answering, or the pointer is NULL or unreadable, or the path
/// is too long or not UTF-8: then the call is not ours, and the next
/// definition passes it to the kernel, which answers EFAULT or ENAMETOOLONG
/// as it does for any path.
fn path_arg(p: *const c_char, wanted: fn(&[u8]) -> bool) -> Option<String> {
    if p.is_null() || !active() {
        return None;
    }
    let mut buf = [0u8; PATH_MAX];
    let n = crate::user::read_cstr_into(p as u64, &mut buf).ok()?;
    let path = &buf[..n];
    if !wanted(path) {
        return None;
    }
    String::from_utf8(path.to_vec()).ok()
}

/// Paths `proc_fd` may take.
fn proc_path(p: &[u8]) -> bool {
    p.starts_with(b"/proc/")
}

/// Paths that may lie on the virtual bpffs (relative ones depend on the cwd).
fn bpffs_path(p: &[u8]) -> bool {
    p.starts_with(b"/sys/fs/bpf") || !p.starts_with(b"/")
}

/// The virtual bpffs path `p` names, if it does.
fn virtual_arg(p: *const c_char) -> Option<String> {
    virtual_of(&path_arg(p, bpffs_path)?)
}

/// The virtual bpffs path `s` names, if it does.
fn virtual_of(s: &str) -> Option<String> {
    if !s.starts_with("/sys/fs/bpf") && s.starts_with('/') {
        return None;
    }
    vfs::virtual_path(s)
}

/// `/proc/self/fd/N`, `/proc/<our pid>/fd/N` (and fdinfo): N if it is ours.
fn proc_fd(path: &str, dir: &str) -> Option<(c_int, Obj)> {
    if !active() {
        return None;
    }
    let rest = path.strip_prefix("/proc/")?;
    let (who, rest) = rest.split_once('/')?;
    // SAFETY: getpid has no preconditions and cannot fail.
    let me = unsafe { libc::getpid() };
    if who != "self" && who != "thread-self" && who.parse::<i32>().ok()? != me {
        return None;
    }
    let n: c_int = rest.strip_prefix(dir)?.strip_prefix('/')?.parse().ok()?;
    fds::lookup(n).map(|o| (n, o))
}

/// libc's `syscall`, for `__NR_bpf`. The six register arguments are read as
/// longs, as the SysV ABI passes variadic integer arguments.
///
/// # Safety
/// As libc's `syscall`.
#[no_mangle]
pub unsafe extern "C" fn syscall(
    n: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    if n != libc::SYS_bpf || !active() {
        // SAFETY: forwarded unchanged.
        return unsafe { real::syscall(n, [a1, a2, a3, a4, a5, a6]) };
    }
    guard("bpf", || crate::bpf::bpf(a1 as i32, a2 as u64, a3 as u32)) as c_long
}

/// mmap of a BPF_F_MMAPABLE array maps its values in the store file.
///
/// # Safety
/// As libc's `mmap`.
#[no_mangle]
pub unsafe extern "C" fn mmap(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: libc::off_t,
) -> *mut c_void {
    if fd < 0 || flags & libc::MAP_ANONYMOUS != 0 || !active() {
        // SAFETY: forwarded unchanged.
        return unsafe { real::mmap(addr, len, prot, flags, fd, off) };
    }
    let Some(Obj::Map(id)) = fds::lookup(fd) else {
        // SAFETY: forwarded unchanged.
        return unsafe { real::mmap(addr, len, prot, flags, fd, off) };
    };
    let r = guard("mmap", || {
        let m = state::store()?.map_by_id(id).map_err(|e| e.errno())?;
        let (start, size) = m.mmap_region().ok_or(libc::EINVAL)?;
        if flags & libc::MAP_SHARED == 0 {
            return Err(libc::EINVAL);
        }
        if prot & libc::PROT_WRITE != 0 && m.is_frozen() {
            return Err(libc::EPERM);
        }
        let end = (off as u64).checked_add(len as u64).ok_or(libc::EINVAL)?;
        if off < 0
            || !(off as u64).is_multiple_of(4096)
            || end > (size as u64).div_ceil(4096) * 4096
        {
            return Err(libc::EINVAL);
        }
        let sfd = std::os::fd::AsRawFd::as_raw_fd(state::store_file()?);
        // SAFETY: maps the store file at the map's page-aligned value region.
        let p = unsafe {
            real::mmap(
                addr,
                len,
                prot,
                flags,
                sfd,
                (start + off as u64) as libc::off_t,
            )
        };
        let e = fds::errno();
        if p == libc::MAP_FAILED {
            return Err(e);
        }
        Ok(p as i64)
    });
    if r == -1 {
        libc::MAP_FAILED
    } else {
        r as *mut c_void
    }
}

/// # Safety
/// As libc's `mmap64`.
#[no_mangle]
pub unsafe extern "C" fn mmap64(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: libc::off_t,
) -> *mut c_void {
    // SAFETY: same contract.
    unsafe { mmap(addr, len, prot, flags, fd, off) }
}

/// readlink of `/proc/self/fd/N` names our descriptors as the kernel's anon inodes.
///
/// # Safety
/// As libc's `readlink`.
#[no_mangle]
pub unsafe extern "C" fn readlink(path: *const c_char, buf: *mut c_char, size: usize) -> isize {
    if let Some((_, obj)) = path_arg(path, proc_path).and_then(|p| proc_fd(&p, "fd")) {
        return guard("readlink", || {
            // As the kernel: no room is EINVAL, an unwritable buffer EFAULT.
            if size == 0 || size > isize::MAX as usize {
                return Err(libc::EINVAL);
            }
            let s = format!("anon_inode:{}", obj.anon_name());
            let n = s.len().min(size);
            crate::user::write(buf as u64, &s.as_bytes()[..n])?;
            Ok(n as i64)
        }) as isize;
    }
    // SAFETY: forwarded unchanged.
    unsafe { real::readlink(path, buf, size) }
}

/// A memfd holding the fdinfo text of our descriptor, positioned at 0.
fn fdinfo_fd(obj: Obj) -> Result<c_int, i32> {
    let text = crate::info::fdinfo(obj)?;
    let fd = fds::create(Obj::Stats, text.as_bytes())?;
    // SAFETY: fd is ours.
    unsafe { libc::lseek(fd, 0, libc::SEEK_SET) };
    Ok(fd)
}

/// # Safety
/// As libc's `open`.
#[no_mangle]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: libc::mode_t) -> c_int {
    if let Some((_, obj)) = path_arg(path, proc_path).and_then(|p| proc_fd(&p, "fdinfo")) {
        return guard("fdinfo", || fdinfo_fd(obj).map(i64::from)) as c_int;
    }
    // SAFETY: forwarded unchanged.
    unsafe { real::open(path, flags, mode) }
}

/// # Safety
/// As libc's `open64`.
#[no_mangle]
pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: libc::mode_t) -> c_int {
    // SAFETY: same contract.
    unsafe { open(path, flags, mode) }
}

static FOPEN: real::Next = real::Next::new(b"fopen\0");

/// fopen of `/proc/self/fdinfo/N` for our descriptors (bpftool reads memlock,
/// frozen and the like there).
///
/// # Safety
/// As libc's `fopen`.
#[no_mangle]
pub unsafe extern "C" fn fopen(path: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    if let Some((_, obj)) = path_arg(path, proc_path).and_then(|p| proc_fd(&p, "fdinfo")) {
        let fd = guard("fdinfo", || fdinfo_fd(obj).map(i64::from));
        if fd < 0 {
            return std::ptr::null_mut();
        }
        // SAFETY: fd is a fresh readable memfd; "r" is a valid mode.
        return unsafe { libc::fdopen(fd as c_int, c"r".as_ptr()) };
    }
    let f = FOPEN.get();
    if f == 0 {
        set_errno(libc::ENOSYS);
        return std::ptr::null_mut();
    }
    // SAFETY: f is libc's fopen.
    unsafe {
        let f: unsafe extern "C" fn(*const c_char, *const c_char) -> *mut libc::FILE =
            std::mem::transmute(f);
        f(path, mode)
    }
}

/// # Safety
/// As libc's `fopen64`.
#[no_mangle]
pub unsafe extern "C" fn fopen64(path: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    // SAFETY: same contract.
    unsafe { fopen(path, mode) }
}

/// Declares an interposer of a path function: virtual bpffs paths go to
/// `$ours`, others to the next definition.
macro_rules! path_fn {
    ($name:ident, $sym:literal, ($($arg:ident: $ty:ty),*), |$vp:ident| $ours:expr) => {
        /// # Safety
        /// As the libc function of the same name.
        #[no_mangle]
        pub unsafe extern "C" fn $name(path: *const c_char, $($arg: $ty),*) -> c_int {
            static NEXT: real::Next = real::Next::new(concat!($sym, "\0").as_bytes());
            if let Some($vp) = virtual_arg(path) {
                return guard($sym, || $ours) as c_int;
            }
            let f = NEXT.get();
            if f == 0 {
                set_errno(libc::ENOSYS);
                return -1;
            }
            // SAFETY: f is the next definition of this libc function.
            unsafe {
                let f: unsafe extern "C" fn(*const c_char, $($ty),*) -> c_int =
                    std::mem::transmute(f);
                f(path, $($arg),*)
            }
        }
    };
}

path_fn!(statfs, "statfs", (buf: *mut libc::statfs), |p| virtual_statfs(&p, buf));
path_fn!(statfs64, "statfs64", (buf: *mut libc::statfs), |p| virtual_statfs(&p, buf));
path_fn!(mkdir, "mkdir", (_mode: libc::mode_t), |p| {
    vfs::mkdir(state::store()?, &p)?;
    Ok(0)
});
path_fn!(rmdir, "rmdir", (), |p| {
    vfs::rmdir(state::store()?, &p)?;
    Ok(0)
});
path_fn!(unlink, "unlink", (), |p| {
    vfs::unlink(state::store()?, &p)?;
    Ok(0)
});
path_fn!(access, "access", (_mode: c_int), |p| {
    vfs::node(state::store()?, &p).ok_or(libc::ENOENT)?;
    Ok(0)
});
path_fn!(stat, "stat", (buf: *mut libc::stat), |p| virtual_stat(&p, buf));
path_fn!(stat64, "stat64", (buf: *mut libc::stat), |p| virtual_stat(&p, buf));
path_fn!(lstat, "lstat", (buf: *mut libc::stat), |p| virtual_stat(&p, buf));
path_fn!(lstat64, "lstat64", (buf: *mut libc::stat), |p| virtual_stat(&p, buf));

/// faccessat of a virtual path (relative paths only with AT_FDCWD).
///
/// # Safety
/// As libc's `faccessat`.
#[no_mangle]
pub unsafe extern "C" fn faccessat(
    dirfd: c_int,
    path: *const c_char,
    mode: c_int,
    flags: c_int,
) -> c_int {
    static NEXT: real::Next = real::Next::new(b"faccessat\0");
    let ours = path_arg(path, bpffs_path)
        .filter(|s| s.starts_with('/') || dirfd == libc::AT_FDCWD)
        .and_then(|s| virtual_of(&s));
    if let Some(p) = ours {
        return guard("faccessat", || {
            vfs::node(state::store()?, &p).ok_or(libc::ENOENT)?;
            Ok(0)
        }) as c_int;
    }
    let f = NEXT.get();
    if f == 0 {
        set_errno(libc::ENOSYS);
        return -1;
    }
    // SAFETY: f is libc's faccessat.
    unsafe {
        let f: unsafe extern "C" fn(c_int, *const c_char, c_int, c_int) -> c_int =
            std::mem::transmute(f);
        f(dirfd, path, mode, flags)
    }
}

/// statfs of a virtual path: bpffs.
fn virtual_statfs(p: &str, buf: *mut libc::statfs) -> Result<i64, i32> {
    vfs::node(state::store()?, p).ok_or(libc::ENOENT)?;
    crate::user::write(buf as u64, struct_bytes(&vfs::statfs_buf()))?;
    Ok(0)
}

/// stat of a virtual path: a directory or a pin file.
fn virtual_stat(p: &str, buf: *mut libc::stat) -> Result<i64, i32> {
    let n = vfs::node(state::store()?, p).ok_or(libc::ENOENT)?;
    crate::user::write(buf as u64, struct_bytes(&vfs::stat_buf(p, n)))?;
    Ok(0)
}

/// The bytes of a plain-data libc struct.
fn struct_bytes<T>(v: &T) -> &[u8] {
    // SAFETY: T is a plain-data libc struct (statfs, stat); reading its bytes is fine.
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }
}
