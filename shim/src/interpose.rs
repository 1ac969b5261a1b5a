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
    names_bpf(p) || (!p.starts_with(b"/") && relative_maybe_virtual(p))
}

/// Whether a path names "bpf" somewhere: an absolute path reaches the
/// virtual bpffs only then (`/sys/fs/bpf`, `//sys/fs/../fs/bpf`).
fn names_bpf(p: &[u8]) -> bool {
    p.windows(3).any(|w| w == b"bpf")
}

/// Whether a relative path may name something on the virtual bpffs: only
/// when it names "bpf" (`../bpf/x`) or the cwd lies there. Decided without
/// allocating (the cwd read into a stack buffer), so calls that are not ours
/// never reach the allocator.
fn relative_maybe_virtual(p: &[u8]) -> bool {
    if names_bpf(p) {
        return true;
    }
    let mut cwd = [0u8; PATH_MAX];
    // SAFETY: cwd is writable for its length.
    let r = unsafe { libc::getcwd(cwd.as_mut_ptr() as *mut c_char, cwd.len()) };
    if r.is_null() {
        return false;
    }
    let n = cwd.iter().position(|&b| b == 0).unwrap_or(0);
    let cwd = &cwd[..n];
    cwd == b"/sys/fs/bpf" || cwd.starts_with(b"/sys/fs/bpf/")
}

/// The virtual bpffs path `p` names, if it does.
fn virtual_arg(p: *const c_char) -> Option<String> {
    virtual_of(&path_arg(p, bpffs_path)?)
}

/// The virtual bpffs path `s` names, if it does.
fn virtual_of(s: &str) -> Option<String> {
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
    if let Some(p) = virtual_arg(path) {
        return guard("readlink", || virtual_readlink(&p, buf, size)) as isize;
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
    if let Some(p) = virtual_arg(path) {
        return guard("open", || virtual_open(&p, flags)) as c_int;
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
    if let Some(p) = virtual_arg(path) {
        let fd = guard("fopen", || {
            let mut m = [0u8; 8];
            let n = crate::user::read_cstr_into(mode as u64, &mut m).map_err(|_| libc::EINVAL)?;
            let m = &m[..n];
            let flags = match (m.first(), m.contains(&b'+')) {
                (Some(b'r'), false) => libc::O_RDONLY,
                (Some(b'r'), true) => libc::O_RDWR,
                (Some(b'w'), rw) => {
                    libc::O_CREAT | libc::O_TRUNC | if rw { libc::O_RDWR } else { libc::O_WRONLY }
                }
                (Some(b'a'), rw) => {
                    libc::O_CREAT | libc::O_APPEND | if rw { libc::O_RDWR } else { libc::O_WRONLY }
                }
                _ => return Err(libc::EINVAL),
            };
            virtual_open(&p, flags)
        });
        if fd < 0 {
            return std::ptr::null_mut();
        }
        // SAFETY: fd is a fresh descriptor of ours (a virtual directory's); mode is the caller's C string.
        return unsafe { libc::fdopen(fd as c_int, mode) };
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
path_fn!(lstat, "lstat", (buf: *mut libc::stat), |p| virtual_lstat(&p, buf));
path_fn!(lstat64, "lstat64", (buf: *mut libc::stat), |p| virtual_lstat(&p, buf));

/// faccessat of a virtual path (from the cwd, a virtual directory's
/// descriptor or a real one of an ancestor).
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
    if let Some(p) = at_arg(dirfd, path, flags) {
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
    virtual_stat_at(p, buf, 0)
}

/// lstat of a virtual path: a symbolic link is itself.
fn virtual_lstat(p: &str, buf: *mut libc::stat) -> Result<i64, i32> {
    virtual_stat_at(p, buf, libc::AT_SYMLINK_NOFOLLOW)
}

/// The node `p` names, its last symbolic link followed unless `flags` has
/// AT_SYMLINK_NOFOLLOW; and the path its attributes are those of.
fn node_at(store: &maps::Store, p: &str, flags: c_int) -> Result<(vfs::Node, String), i32> {
    let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
    let r = vfs::resolve(store, p, follow).ok_or(libc::ENOENT)?;
    let n = if follow {
        vfs::node(store, &r)
    } else {
        vfs::node_nofollow(store, &r)
    };
    Ok((n.ok_or(libc::ENOENT)?, r))
}

fn virtual_stat_at(p: &str, buf: *mut libc::stat, flags: c_int) -> Result<i64, i32> {
    let store = state::store()?;
    let (n, r) = node_at(store, p, flags)?;
    crate::user::write(buf as u64, struct_bytes(&vfs::stat_buf(store, &r, n)))?;
    Ok(0)
}

/// readlink of a virtual path: a symbolic link's target (EINVAL for others).
fn virtual_readlink(p: &str, buf: *mut c_char, size: usize) -> Result<i64, i32> {
    if size == 0 || size > isize::MAX as usize {
        return Err(libc::EINVAL);
    }
    let t = vfs::readlink(state::store()?, p)?;
    let n = t.len().min(size);
    crate::user::write(buf as u64, &t.as_bytes()[..n])?;
    Ok(n as i64)
}

/// The bytes of a plain-data libc struct.
fn struct_bytes<T>(v: &T) -> &[u8] {
    // SAFETY: T is a plain-data libc struct (statfs, stat); reading its bytes is fine.
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }
}

/// The virtual path a `*at` call names: an absolute path under /sys/fs/bpf,
/// a relative one from the cwd (AT_FDCWD) or from a virtual directory
/// descriptor, or the descriptor itself with AT_EMPTY_PATH.
fn at_arg(dirfd: c_int, path: *const c_char, flags: c_int) -> Option<String> {
    if !active() {
        return None;
    }
    let mut buf = [0u8; PATH_MAX];
    let n = crate::user::read_cstr_into(path as u64, &mut buf).ok()?;
    let p = std::str::from_utf8(&buf[..n]).ok()?;
    if p.is_empty() {
        return if flags & libc::AT_EMPTY_PATH != 0 {
            fds::dir_of(dirfd)
        } else {
            None
        };
    }
    if p.starts_with('/') {
        return names_bpf(p.as_bytes())
            .then(|| vfs::virtual_path(p))
            .flatten();
    }
    if dirfd == libc::AT_FDCWD {
        return relative_maybe_virtual(p.as_bytes())
            .then(|| vfs::virtual_path(p))
            .flatten();
    }
    if let Some(dir) = fds::dir_of(dirfd) {
        return vfs::virtual_path(&format!("{dir}/{p}"));
    }
    // A real directory outside the virtual bpffs reaches it only through a
    // path naming "bpf" (`openat(fd of /sys/fs, "bpf")`, as `mkdir -p` walks):
    // only then is the directory's own path looked up.
    if !p.contains("bpf") {
        return None;
    }
    let link = std::ffi::CString::new(format!("/proc/self/fd/{dirfd}")).ok()?;
    let mut dir = [0u8; PATH_MAX];
    // SAFETY: link is a C string; dir is writable for its length.
    let n = unsafe { real::readlink(link.as_ptr(), dir.as_mut_ptr() as *mut c_char, dir.len()) };
    let dir = std::str::from_utf8(dir.get(..usize::try_from(n).ok()?)?).ok()?;
    if !dir.starts_with('/') {
        return None;
    }
    vfs::virtual_path(&format!("{dir}/{p}"))
}

/// Calls the next definition of `$sym` with type `$ty`, or fails with ENOSYS.
macro_rules! next {
    ($sym:literal, $ty:ty, $ret:expr, ($($a:expr),*)) => {{
        static NEXT: real::Next = real::Next::new(concat!($sym, "\0").as_bytes());
        let f = NEXT.get();
        if f == 0 {
            set_errno(libc::ENOSYS);
            return $ret;
        }
        // SAFETY: f is the next definition of this libc function, of this type.
        unsafe {
            let f: $ty = std::mem::transmute(f);
            f($($a),*)
        }
    }};
}

/// Looks up a virtual node, ENOENT if absent.
fn node_of(p: &str) -> Result<vfs::Node, i32> {
    vfs::node(state::store()?, p).ok_or(libc::ENOENT)
}

fn virtual_statx(p: &str, buf: *mut libc::statx, flags: c_int) -> Result<i64, i32> {
    let store = state::store()?;
    let (n, r) = node_at(store, p, flags)?;
    crate::user::write(buf as u64, struct_bytes(&vfs::statx_buf(store, &r, n)))?;
    Ok(0)
}

/// # Safety
/// As libc's `statx`.
#[no_mangle]
pub unsafe extern "C" fn statx(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mask: libc::c_uint,
    buf: *mut libc::statx,
) -> c_int {
    if let Some(p) = at_arg(dirfd, path, flags) {
        return guard("statx", || virtual_statx(&p, buf, flags)) as c_int;
    }
    next!(
        "statx",
        unsafe extern "C" fn(c_int, *const c_char, c_int, libc::c_uint, *mut libc::statx) -> c_int,
        -1,
        (dirfd, path, flags, mask, buf)
    )
}

/// # Safety
/// As libc's `fstatat`.
#[no_mangle]
pub unsafe extern "C" fn fstatat(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut libc::stat,
    flags: c_int,
) -> c_int {
    if let Some(p) = at_arg(dirfd, path, flags) {
        return guard("fstatat", || virtual_stat_at(&p, buf, flags)) as c_int;
    }
    next!(
        "fstatat",
        unsafe extern "C" fn(c_int, *const c_char, *mut libc::stat, c_int) -> c_int,
        -1,
        (dirfd, path, buf, flags)
    )
}

/// # Safety
/// As libc's `fstatat64`.
#[no_mangle]
pub unsafe extern "C" fn fstatat64(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut libc::stat,
    flags: c_int,
) -> c_int {
    // SAFETY: same contract (stat and stat64 are one layout on 64-bit).
    unsafe { fstatat(dirfd, path, buf, flags) }
}

/// fstat of a virtual directory descriptor.
///
/// # Safety
/// As libc's `fstat`.
#[no_mangle]
pub unsafe extern "C" fn fstat(fd: c_int, buf: *mut libc::stat) -> c_int {
    if let Some(p) = active().then(|| fds::dir_of(fd)).flatten() {
        return guard("fstat", || virtual_stat(&p, buf)) as c_int;
    }
    next!(
        "fstat",
        unsafe extern "C" fn(c_int, *mut libc::stat) -> c_int,
        -1,
        (fd, buf)
    )
}

/// # Safety
/// As libc's `fstat64`.
#[no_mangle]
pub unsafe extern "C" fn fstat64(fd: c_int, buf: *mut libc::stat) -> c_int {
    // SAFETY: same contract.
    unsafe { fstat(fd, buf) }
}

/// open of a virtual path, as bpffs answers: a directory gives a descriptor
/// fdopendir reads; a pin cannot be read (EIO, as bpffs for objects without
/// a seq_file view); creating a file is EACCES (bpffs has no create).
fn virtual_open(p: &str, flags: c_int) -> Result<i64, i32> {
    let store = state::store()?;
    match vfs::node(store, p) {
        None if flags & libc::O_CREAT != 0 => {
            vfs::check_parent(store, p)?;
            Err(libc::EACCES)
        }
        None => Err(libc::ENOENT),
        Some(_) if flags & (libc::O_CREAT | libc::O_EXCL) == libc::O_CREAT | libc::O_EXCL => {
            Err(libc::EEXIST)
        }
        Some(vfs::Node::Dir) => {
            if flags & libc::O_ACCMODE != libc::O_RDONLY {
                return Err(libc::EISDIR);
            }
            fds::create_dir(p).map(i64::from)
        }
        Some(_) if flags & libc::O_DIRECTORY != 0 => Err(libc::ENOTDIR),
        Some(_) => Err(libc::EIO),
    }
}

/// # Safety
/// As libc's `openat`.
#[no_mangle]
pub unsafe extern "C" fn openat(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: libc::mode_t,
) -> c_int {
    if let Some((_, obj)) = path_arg(path, proc_path).and_then(|p| proc_fd(&p, "fdinfo")) {
        return guard("fdinfo", || fdinfo_fd(obj).map(i64::from)) as c_int;
    }
    if let Some(p) = at_arg(dirfd, path, 0) {
        return guard("openat", || virtual_open(&p, flags)) as c_int;
    }
    next!(
        "openat",
        unsafe extern "C" fn(c_int, *const c_char, c_int, ...) -> c_int,
        -1,
        (dirfd, path, flags, mode as c_int)
    )
}

/// # Safety
/// As libc's `openat64`.
#[no_mangle]
pub unsafe extern "C" fn openat64(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: libc::mode_t,
) -> c_int {
    // SAFETY: same contract.
    unsafe { openat(dirfd, path, flags, mode) }
}

/// A directory stream of the virtual bpffs: its entries, read one by one.
/// Handed to the application as its `DIR *`; only the pointers recorded in
/// [`VDIRS`] are taken for ours.
struct VDir {
    entries: Vec<(Vec<u8>, u8, u64)>,
    pos: usize,
    ent: libc::dirent64,
    fd: c_int,
}

/// The open virtual directory streams (their addresses).
static VDIRS: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());
/// How many are open: the stream calls skip the lock while none is.
static VDIR_COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn is_vdir(d: *mut libc::DIR) -> bool {
    use std::sync::atomic::Ordering;
    VDIR_COUNT.load(Ordering::Relaxed) != 0
        && VDIRS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(d as usize))
}

/// A stream over the virtual directory `p` (`fd`: its descriptor, closed with it, or -1).
fn vdir_open(p: &str, fd: c_int) -> Result<*mut libc::DIR, i32> {
    use std::sync::atomic::Ordering;
    let store = state::store()?;
    match vfs::node(store, p) {
        Some(vfs::Node::Dir) => {}
        Some(_) => return Err(libc::ENOTDIR),
        None => return Err(libc::ENOENT),
    }
    let parent = match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    };
    let mut entries = vec![
        (b".".to_vec(), libc::DT_DIR, vfs::inode(p)),
        (b"..".to_vec(), libc::DT_DIR, vfs::inode(parent)),
    ];
    for (name, n) in vfs::entries(store, p) {
        let t = match n {
            vfs::Node::Dir => libc::DT_DIR,
            vfs::Node::Symlink => libc::DT_LNK,
            _ => libc::DT_REG,
        };
        let ino = vfs::inode(&format!("{p}/{name}"));
        entries.push((name.into_bytes(), t, ino));
    }
    let d = Box::new(VDir {
        entries,
        pos: 0,
        // SAFETY: dirent64 is plain data; all-zero is a valid value.
        ent: unsafe { std::mem::zeroed() },
        fd,
    });
    let ptr = Box::into_raw(d) as *mut libc::DIR;
    VDIRS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(ptr as usize);
    VDIR_COUNT.fetch_add(1, Ordering::Relaxed);
    Ok(ptr)
}

/// # Safety
/// As libc's `opendir`.
#[no_mangle]
pub unsafe extern "C" fn opendir(path: *const c_char) -> *mut libc::DIR {
    if let Some(p) = virtual_arg(path) {
        let mut out = std::ptr::null_mut();
        guard("opendir", || {
            out = vdir_open(&p, -1)?;
            Ok(0)
        });
        return out;
    }
    next!(
        "opendir",
        unsafe extern "C" fn(*const c_char) -> *mut libc::DIR,
        std::ptr::null_mut(),
        (path)
    )
}

/// # Safety
/// As libc's `fdopendir`.
#[no_mangle]
pub unsafe extern "C" fn fdopendir(fd: c_int) -> *mut libc::DIR {
    if let Some(p) = active().then(|| fds::dir_of(fd)).flatten() {
        let mut out = std::ptr::null_mut();
        guard("fdopendir", || {
            out = vdir_open(&p, fd)?;
            Ok(0)
        });
        return out;
    }
    next!(
        "fdopendir",
        unsafe extern "C" fn(c_int) -> *mut libc::DIR,
        std::ptr::null_mut(),
        (fd)
    )
}

/// # Safety
/// As libc's `readdir64`.
#[no_mangle]
pub unsafe extern "C" fn readdir64(d: *mut libc::DIR) -> *mut libc::dirent64 {
    if is_vdir(d) {
        // SAFETY: d is a live VDir of ours (recorded in VDIRS until closedir).
        let v = unsafe { &mut *(d as *mut VDir) };
        let Some((name, t, ino)) = v.entries.get(v.pos) else {
            return std::ptr::null_mut();
        };
        v.pos += 1;
        let n = name.len().min(v.ent.d_name.len() - 1);
        v.ent.d_ino = *ino;
        v.ent.d_off = v.pos as i64;
        v.ent.d_reclen = std::mem::size_of::<libc::dirent64>() as u16;
        v.ent.d_type = *t;
        for (dst, src) in v.ent.d_name.iter_mut().zip(&name[..n]) {
            *dst = *src as c_char;
        }
        v.ent.d_name[n] = 0;
        return &mut v.ent;
    }
    next!(
        "readdir64",
        unsafe extern "C" fn(*mut libc::DIR) -> *mut libc::dirent64,
        std::ptr::null_mut(),
        (d)
    )
}

/// # Safety
/// As libc's `readdir` (dirent and dirent64 are one layout on 64-bit).
#[no_mangle]
pub unsafe extern "C" fn readdir(d: *mut libc::DIR) -> *mut libc::dirent64 {
    if is_vdir(d) {
        // SAFETY: same contract.
        return unsafe { readdir64(d) };
    }
    next!(
        "readdir",
        unsafe extern "C" fn(*mut libc::DIR) -> *mut libc::dirent64,
        std::ptr::null_mut(),
        (d)
    )
}

/// # Safety
/// As libc's `closedir`.
#[no_mangle]
pub unsafe extern "C" fn closedir(d: *mut libc::DIR) -> c_int {
    if is_vdir(d) {
        let mut g = VDIRS.lock().unwrap_or_else(|p| p.into_inner());
        g.retain(|&x| x != d as usize);
        VDIR_COUNT.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        drop(g);
        // SAFETY: d came from Box::into_raw in vdir_open and is no longer recorded.
        let v = unsafe { Box::from_raw(d as *mut VDir) };
        if v.fd >= 0 {
            // SAFETY: the stream owns its descriptor, as fdopendir's does.
            unsafe { libc::close(v.fd) };
        }
        return 0;
    }
    next!(
        "closedir",
        unsafe extern "C" fn(*mut libc::DIR) -> c_int,
        -1,
        (d)
    )
}

/// # Safety
/// As libc's `rewinddir`.
#[no_mangle]
pub unsafe extern "C" fn rewinddir(d: *mut libc::DIR) {
    if is_vdir(d) {
        // SAFETY: d is a live VDir of ours.
        unsafe { (*(d as *mut VDir)).pos = 0 };
        return;
    }
    static NEXT: real::Next = real::Next::new(b"rewinddir\0");
    let f = NEXT.get();
    if f != 0 {
        // SAFETY: f is libc's rewinddir.
        unsafe {
            let f: unsafe extern "C" fn(*mut libc::DIR) = std::mem::transmute(f);
            f(d)
        }
    }
}

/// # Safety
/// As libc's `dirfd`.
#[no_mangle]
pub unsafe extern "C" fn dirfd(d: *mut libc::DIR) -> c_int {
    if is_vdir(d) {
        // SAFETY: d is a live VDir of ours.
        let fd = unsafe { (*(d as *mut VDir)).fd };
        if fd < 0 {
            set_errno(libc::ENOTSUP);
        }
        return fd;
    }
    next!(
        "dirfd",
        unsafe extern "C" fn(*mut libc::DIR) -> c_int,
        -1,
        (d)
    )
}

/// # Safety
/// As libc's `renameat2`.
#[no_mangle]
pub unsafe extern "C" fn renameat2(
    olddirfd: c_int,
    old: *const c_char,
    newdirfd: c_int,
    new: *const c_char,
    flags: libc::c_uint,
) -> c_int {
    let from = at_arg(olddirfd, old, 0);
    let to = at_arg(newdirfd, new, 0);
    match (from, to) {
        (Some(f), Some(t)) => {
            return guard("rename", || {
                vfs::rename(state::store()?, &f, &t, flags)?;
                Ok(0)
            }) as c_int
        }
        // Between the virtual bpffs and any other filesystem.
        (Some(_), None) | (None, Some(_)) => {
            set_errno(libc::EXDEV);
            return -1;
        }
        (None, None) => {}
    }
    next!(
        "renameat2",
        unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, libc::c_uint) -> c_int,
        -1,
        (olddirfd, old, newdirfd, new, flags)
    )
}

/// # Safety
/// As libc's `renameat`.
#[no_mangle]
pub unsafe extern "C" fn renameat(
    olddirfd: c_int,
    old: *const c_char,
    newdirfd: c_int,
    new: *const c_char,
) -> c_int {
    // SAFETY: same contract, no flags.
    unsafe { renameat2(olddirfd, old, newdirfd, new, 0) }
}

/// # Safety
/// As libc's `rename`.
#[no_mangle]
pub unsafe extern "C" fn rename(old: *const c_char, new: *const c_char) -> c_int {
    // SAFETY: same contract, from the cwd.
    unsafe { renameat2(libc::AT_FDCWD, old, libc::AT_FDCWD, new, 0) }
}

/// # Safety
/// As libc's `unlinkat`.
#[no_mangle]
pub unsafe extern "C" fn unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    if let Some(p) = at_arg(dirfd, path, 0) {
        return guard("unlinkat", || {
            let store = state::store()?;
            if flags & libc::AT_REMOVEDIR != 0 {
                vfs::rmdir(store, &p)?;
            } else {
                vfs::unlink(store, &p)?;
            }
            Ok(0)
        }) as c_int;
    }
    next!(
        "unlinkat",
        unsafe extern "C" fn(c_int, *const c_char, c_int) -> c_int,
        -1,
        (dirfd, path, flags)
    )
}

/// # Safety
/// As libc's `mkdirat`.
#[no_mangle]
pub unsafe extern "C" fn mkdirat(dirfd: c_int, path: *const c_char, mode: libc::mode_t) -> c_int {
    if let Some(p) = at_arg(dirfd, path, 0) {
        return guard("mkdirat", || {
            vfs::mkdir(state::store()?, &p)?;
            Ok(0)
        }) as c_int;
    }
    next!(
        "mkdirat",
        unsafe extern "C" fn(c_int, *const c_char, libc::mode_t) -> c_int,
        -1,
        (dirfd, path, mode)
    )
}

/// Hard links on the virtual bpffs: the store holds none, so they are
/// refused (EPERM) rather than made in the host's bpffs.
fn no_links(p: &str) -> Result<i64, i32> {
    let store = state::store()?;
    if vfs::node(store, p).is_some() {
        return Err(libc::EEXIST);
    }
    vfs::check_parent(store, p)?;
    Err(libc::EPERM)
}

/// # Safety
/// As libc's `symlinkat`.
#[no_mangle]
pub unsafe extern "C" fn symlinkat(
    target: *const c_char,
    dirfd: c_int,
    path: *const c_char,
) -> c_int {
    if let Some(p) = at_arg(dirfd, path, 0) {
        return guard("symlinkat", || {
            let t = crate::user::read_cstr(target as u64, PATH_MAX)?;
            if t.is_empty() {
                return Err(libc::ENOENT);
            }
            vfs::symlink(state::store()?, &p, &t)?;
            Ok(0)
        }) as c_int;
    }
    next!(
        "symlinkat",
        unsafe extern "C" fn(*const c_char, c_int, *const c_char) -> c_int,
        -1,
        (target, dirfd, path)
    )
}

/// # Safety
/// As libc's `symlink`.
#[no_mangle]
pub unsafe extern "C" fn symlink(target: *const c_char, path: *const c_char) -> c_int {
    // SAFETY: same contract, from the cwd.
    unsafe { symlinkat(target, libc::AT_FDCWD, path) }
}

/// # Safety
/// As libc's `linkat`.
#[no_mangle]
pub unsafe extern "C" fn linkat(
    olddirfd: c_int,
    old: *const c_char,
    newdirfd: c_int,
    new: *const c_char,
    flags: c_int,
) -> c_int {
    let from = at_arg(olddirfd, old, flags);
    let to = at_arg(newdirfd, new, 0);
    match (from, to) {
        (Some(_), Some(t)) => return guard("linkat", || no_links(&t)) as c_int,
        (Some(_), None) | (None, Some(_)) => {
            set_errno(libc::EXDEV);
            return -1;
        }
        (None, None) => {}
    }
    next!(
        "linkat",
        unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, c_int) -> c_int,
        -1,
        (olddirfd, old, newdirfd, new, flags)
    )
}

/// # Safety
/// As libc's `link`.
#[no_mangle]
pub unsafe extern "C" fn link(old: *const c_char, new: *const c_char) -> c_int {
    // SAFETY: same contract, from the cwd.
    unsafe { linkat(libc::AT_FDCWD, old, libc::AT_FDCWD, new, 0) }
}

/// # Safety
/// As libc's `readlinkat`.
#[no_mangle]
pub unsafe extern "C" fn readlinkat(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut c_char,
    size: usize,
) -> isize {
    if let Some(p) = at_arg(dirfd, path, 0) {
        return guard("readlinkat", || virtual_readlink(&p, buf, size)) as isize;
    }
    next!(
        "readlinkat",
        unsafe extern "C" fn(c_int, *const c_char, *mut c_char, usize) -> isize,
        -1,
        (dirfd, path, buf, size)
    )
}

/// Changes of mode, owner, times or size on the virtual bpffs: the store
/// keeps none of them, so they are refused (EPERM) for an existing node,
/// never passed to the host's bpffs.
fn no_setattr(p: &str) -> Result<i64, i32> {
    node_of(p)?;
    Err(libc::EPERM)
}

/// Declares an interposer of a `*at` call that changes attributes.
macro_rules! setattr_at {
    ($name:ident, $sym:literal, ($($arg:ident: $ty:ty),*), $flags:expr) => {
        /// # Safety
        /// As the libc function of the same name.
        #[no_mangle]
        pub unsafe extern "C" fn $name(dirfd: c_int, path: *const c_char, $($arg: $ty),*) -> c_int {
            #[allow(unused_variables)]
            let flags: c_int = $flags;
            if let Some(p) = at_arg(dirfd, path, flags) {
                return guard($sym, || no_setattr(&p)) as c_int;
            }
            next!(
                $sym,
                unsafe extern "C" fn(c_int, *const c_char, $($ty),*) -> c_int,
                -1,
                (dirfd, path, $($arg),*)
            )
        }
    };
}

setattr_at!(fchmodat, "fchmodat", (mode: libc::mode_t, fl: c_int), fl);
setattr_at!(fchownat, "fchownat", (uid: libc::uid_t, gid: libc::gid_t, fl: c_int), fl);
setattr_at!(utimensat, "utimensat", (times: *const libc::timespec, fl: c_int), fl);

path_fn!(chmod, "chmod", (_mode: libc::mode_t), |p| no_setattr(&p));
path_fn!(chown, "chown", (_uid: libc::uid_t, _gid: libc::gid_t), |p| no_setattr(&p));
path_fn!(lchown, "lchown", (_uid: libc::uid_t, _gid: libc::gid_t), |p| no_setattr(&p));
path_fn!(truncate, "truncate", (_len: libc::off_t), |p| no_setattr(&p));
path_fn!(truncate64, "truncate64", (_len: libc::off_t), |p| no_setattr(&p));
path_fn!(creat, "creat", (_mode: libc::mode_t), |p| virtual_open(
    &p,
    libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC
));
path_fn!(mknod, "mknod", (_mode: libc::mode_t, _dev: libc::dev_t), |p| {
    let store = state::store()?;
    if vfs::node(store, &p).is_some() {
        return Err(libc::EEXIST);
    }
    vfs::check_parent(store, &p)?;
    Err(libc::EPERM)
});

/// The fortified open of `_FORTIFY_SOURCE` builds (coreutils' `mkdir -p`).
///
/// # Safety
/// As glibc's `__open_2`.
#[no_mangle]
pub unsafe extern "C" fn __open_2(path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: same contract as open without O_CREAT (which __open_2 refuses).
    unsafe { open(path, flags, 0) }
}

/// # Safety
/// As glibc's `__open64_2`.
#[no_mangle]
pub unsafe extern "C" fn __open64_2(path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: same contract.
    unsafe { open(path, flags, 0) }
}

/// # Safety
/// As glibc's `__openat_2`.
#[no_mangle]
pub unsafe extern "C" fn __openat_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: same contract as openat without O_CREAT.
    unsafe { openat(dirfd, path, flags, 0) }
}

/// # Safety
/// As glibc's `__openat64_2`.
#[no_mangle]
pub unsafe extern "C" fn __openat64_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: same contract.
    unsafe { openat(dirfd, path, flags, 0) }
}

/// The fortified readlink.
///
/// # Safety
/// As glibc's `__readlink_chk`.
#[no_mangle]
pub unsafe extern "C" fn __readlink_chk(
    path: *const c_char,
    buf: *mut c_char,
    size: usize,
    _buflen: usize,
) -> isize {
    // SAFETY: same contract as readlink (the size check is the caller's build's).
    unsafe { readlink(path, buf, size) }
}

/// # Safety
/// As glibc's `__readlinkat_chk`.
#[no_mangle]
pub unsafe extern "C" fn __readlinkat_chk(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut c_char,
    size: usize,
    _buflen: usize,
) -> isize {
    // SAFETY: same contract.
    unsafe { readlinkat(dirfd, path, buf, size) }
}

/// glibc's `struct FTW`.
#[repr(C)]
pub struct Ftw {
    base: c_int,
    level: c_int,
}

/// The callback of `nftw`.
pub type NftwFn = unsafe extern "C" fn(*const c_char, *const libc::stat, c_int, *mut Ftw) -> c_int;

const FTW_F: c_int = 0;
const FTW_D: c_int = 1;
const FTW_DP: c_int = 5;
const FTW_DEPTH: c_int = 8;
const FTW_ACTIONRETVAL: c_int = 16;
const FTW_SKIP_SUBTREE: c_int = 2;
const FTW_SKIP_SIBLINGS: c_int = 3;

/// What a walk step tells its caller: go on, stop with this value, or skip
/// the remaining siblings.
enum Walk {
    Go,
    Stop(c_int),
    SkipSiblings,
}

/// Calls `f` on `shown` (the path as the application spelled it) and, for a
/// directory, on everything below it, in nftw's order.
fn walk(
    store: &maps::Store,
    f: NftwFn,
    flags: c_int,
    real: &str,
    shown: &str,
    n: vfs::Node,
    level: c_int,
) -> Walk {
    let action = flags & FTW_ACTIONRETVAL != 0;
    let call = |typeflag: c_int| -> c_int {
        let st = vfs::stat_buf(store, real, n);
        let Ok(c) = std::ffi::CString::new(shown) else {
            return 0;
        };
        let base = shown.trim_end_matches('/').rfind('/').map_or(0, |i| i + 1);
        let mut ftw = Ftw {
            base: base as c_int,
            level,
        };
        // SAFETY: f is the application's callback, called as nftw calls it:
        // a C string path, a stat buffer and an FTW that live across the call.
        unsafe { f(c.as_ptr(), &st, typeflag, &mut ftw) }
    };
    let verdict = |r: c_int| -> Option<Walk> {
        match r {
            0 => None,
            FTW_SKIP_SIBLINGS if action => Some(Walk::SkipSiblings),
            r => Some(Walk::Stop(r)),
        }
    };
    if n != vfs::Node::Dir {
        return verdict(call(FTW_F)).unwrap_or(Walk::Go);
    }
    if flags & FTW_DEPTH == 0 {
        match call(FTW_D) {
            FTW_SKIP_SUBTREE if action => return Walk::Go,
            r => {
                if let Some(w) = verdict(r) {
                    return w;
                }
            }
        }
    }
    for (name, k) in vfs::entries(store, real) {
        let sep = if shown.ends_with('/') { "" } else { "/" };
        match walk(
            store,
            f,
            flags,
            &format!("{real}/{name}"),
            &format!("{shown}{sep}{name}"),
            k,
            level + 1,
        ) {
            Walk::Go => {}
            Walk::SkipSiblings => break,
            Walk::Stop(r) => return Walk::Stop(r),
        }
    }
    if flags & FTW_DEPTH != 0 {
        return verdict(call(FTW_DP)).unwrap_or(Walk::Go);
    }
    Walk::Go
}

/// nftw over the virtual bpffs (bpftool's `-f` walks the bpffs mounts to
/// name pins). The walk never changes directory (FTW_CHDIR is ignored).
///
/// # Safety
/// As libc's `nftw`.
#[no_mangle]
pub unsafe extern "C" fn nftw(
    path: *const c_char,
    f: Option<NftwFn>,
    nopenfd: c_int,
    flags: c_int,
) -> c_int {
    if let (Some(p), Some(func)) = (virtual_arg(path), f) {
        let mut shown = [0u8; PATH_MAX];
        return guard("nftw", || {
            let n = crate::user::read_cstr_into(path as u64, &mut shown)?;
            let shown = std::str::from_utf8(&shown[..n]).map_err(|_| libc::EINVAL)?;
            let store = state::store()?;
            let node = vfs::node(store, &p).ok_or(libc::ENOENT)?;
            Ok(match walk(store, func, flags, &p, shown, node, 0) {
                Walk::Stop(r) => i64::from(r),
                _ => 0,
            })
        }) as c_int;
    }
    next!(
        "nftw",
        unsafe extern "C" fn(*const c_char, Option<NftwFn>, c_int, c_int) -> c_int,
        -1,
        (path, f, nopenfd, flags)
    )
}

/// # Safety
/// As libc's `nftw64`.
#[no_mangle]
pub unsafe extern "C" fn nftw64(
    path: *const c_char,
    f: Option<NftwFn>,
    nopenfd: c_int,
    flags: c_int,
) -> c_int {
    // SAFETY: same contract (stat and stat64 are one layout on 64-bit).
    unsafe { nftw(path, f, nopenfd, flags) }
}

// NETLINK_ROUTE sockets: XDP attachment by netlink (`netlink.rs`). Only
// sockets `socket(2)` made as AF_NETLINK/NETLINK_ROUTE are looked at.

/// # Safety
/// As libc's `socket`.
#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, proto: c_int) -> c_int {
    let fd = next!(
        "socket",
        unsafe extern "C" fn(c_int, c_int, c_int) -> c_int,
        -1,
        (domain, ty, proto)
    );
    if fd >= 0 && domain == libc::AF_NETLINK && proto == libc::NETLINK_ROUTE && active() {
        crate::netlink::mark(fd);
    }
    fd
}

/// Whether a call on `fd` may be the shim's: a NETLINK_ROUTE socket, shim active.
fn rtnl(fd: c_int) -> bool {
    active() && crate::netlink::is_rtnl(fd)
}

/// A request sent on a NETLINK_ROUTE socket: Some(result) if the shim answered it.
fn rtnl_send(fd: c_int, read: impl FnOnce() -> Result<Vec<u8>, i32>) -> Option<isize> {
    let mut handled = None;
    let r = guard("netlink send", || match read() {
        Ok(d) => match crate::netlink::send(fd, &d) {
            Some(n) => {
                handled = Some(());
                Ok(n as i64)
            }
            None => Ok(0),
        },
        // An unreadable buffer: the kernel's EFAULT.
        Err(e) => {
            handled = Some(());
            Err(e)
        }
    });
    handled.map(|_| r as isize)
}

/// # Safety
/// As libc's `sendto`.
#[no_mangle]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: usize,
    flags: c_int,
    addr: *const libc::sockaddr,
    addrlen: libc::socklen_t,
) -> isize {
    if rtnl(fd) {
        if let Some(r) = rtnl_send(fd, || crate::user::read(buf as u64, len.min(1 << 20))) {
            return r;
        }
    }
    next!(
        "sendto",
        unsafe extern "C" fn(
            c_int,
            *const c_void,
            usize,
            c_int,
            *const libc::sockaddr,
            libc::socklen_t,
        ) -> isize,
        -1,
        (fd, buf, len, flags, addr, addrlen)
    )
}

/// # Safety
/// As libc's `send`.
#[no_mangle]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, len: usize, flags: c_int) -> isize {
    if rtnl(fd) {
        if let Some(r) = rtnl_send(fd, || crate::user::read(buf as u64, len.min(1 << 20))) {
            return r;
        }
    }
    next!(
        "send",
        unsafe extern "C" fn(c_int, *const c_void, usize, c_int) -> isize,
        -1,
        (fd, buf, len, flags)
    )
}

/// The bytes a `struct msghdr`'s iovecs hold.
fn msg_bytes(msg: u64) -> Result<Vec<u8>, i32> {
    let h = crate::user::read(msg, 56)?;
    let (iov, n) = (
        crate::user::u64_at(&h, 16),
        crate::user::u64_at(&h, 24) as usize,
    );
    if n > 1024 {
        return Err(libc::EMSGSIZE);
    }
    let v = crate::user::read(iov, n * 16)?;
    let mut out = Vec::new();
    for i in 0..n {
        let (base, len) = (
            crate::user::u64_at(&v, i * 16),
            crate::user::u64_at(&v, i * 16 + 8) as usize,
        );
        if out.len() + len > 1 << 20 {
            return Err(libc::EMSGSIZE);
        }
        out.extend_from_slice(&crate::user::read(base, len)?);
    }
    Ok(out)
}

/// # Safety
/// As libc's `sendmsg`.
#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> isize {
    if rtnl(fd) {
        if let Some(r) = rtnl_send(fd, || msg_bytes(msg as u64)) {
            return r;
        }
    }
    next!(
        "sendmsg",
        unsafe extern "C" fn(c_int, *const libc::msghdr, c_int) -> isize,
        -1,
        (fd, msg, flags)
    )
}

/// A receive on a NETLINK_ROUTE socket: Some(result) if the shim answers it.
fn rtnl_recv(fd: c_int, dest: crate::netlink::Dest, flags: c_int) -> Option<isize> {
    let mut handled = false;
    let r = guard("netlink recv", || {
        match crate::netlink::recv(fd, dest, flags) {
            Some(r) => {
                handled = true;
                r.map(|n| n as i64)
            }
            None => Ok(0),
        }
    });
    handled.then_some(r as isize)
}

/// # Safety
/// As libc's `recvmsg`.
#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> isize {
    if rtnl(fd) {
        if let Some(r) = rtnl_recv(fd, crate::netlink::Dest::Msg(msg as u64), flags) {
            return r;
        }
    }
    next!(
        "recvmsg",
        unsafe extern "C" fn(c_int, *mut libc::msghdr, c_int) -> isize,
        -1,
        (fd, msg, flags)
    )
}

/// # Safety
/// As libc's `recvfrom`.
#[no_mangle]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    len: usize,
    flags: c_int,
    addr: *mut libc::sockaddr,
    addrlen: *mut libc::socklen_t,
) -> isize {
    if rtnl(fd) {
        let dest = crate::netlink::Dest::Buf {
            buf: buf as u64,
            len,
            addr: addr as u64,
            addrlen: addrlen as u64,
        };
        if let Some(r) = rtnl_recv(fd, dest, flags) {
            return r;
        }
    }
    next!(
        "recvfrom",
        unsafe extern "C" fn(
            c_int,
            *mut c_void,
            usize,
            c_int,
            *mut libc::sockaddr,
            *mut libc::socklen_t,
        ) -> isize,
        -1,
        (fd, buf, len, flags, addr, addrlen)
    )
}

/// # Safety
/// As libc's `recv`.
#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> isize {
    if rtnl(fd) {
        let dest = crate::netlink::Dest::Buf {
            buf: buf as u64,
            len,
            addr: 0,
            addrlen: 0,
        };
        if let Some(r) = rtnl_recv(fd, dest, flags) {
            return r;
        }
    }
    next!(
        "recv",
        unsafe extern "C" fn(c_int, *mut c_void, usize, c_int) -> isize,
        -1,
        (fd, buf, len, flags)
    )
}
