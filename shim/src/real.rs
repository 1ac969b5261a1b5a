//! The libc functions the shim interposes, as the next object in the lookup
//! order provides them (`dlsym(RTLD_NEXT)`): the calls that are not ours go
//! there untouched.

use std::ffi::{c_char, c_int, c_long, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A lazily resolved `RTLD_NEXT` symbol.
pub struct Next {
    name: &'static [u8],
    addr: AtomicUsize,
}

impl Next {
    pub const fn new(name: &'static [u8]) -> Next {
        Next {
            name,
            addr: AtomicUsize::new(0),
        }
    }

    /// The address, or 0 if no later object defines the symbol.
    pub fn get(&self) -> usize {
        let a = self.addr.load(Ordering::Relaxed);
        if a != 0 {
            return a;
        }
        // SAFETY: name is a NUL-terminated symbol name.
        let p = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr() as *const c_char) };
        self.addr.store(p as usize, Ordering::Relaxed);
        p as usize
    }
}

pub static SYSCALL: Next = Next::new(b"syscall\0");
pub static MMAP: Next = Next::new(b"mmap\0");
pub static READLINK: Next = Next::new(b"readlink\0");
pub static OPEN: Next = Next::new(b"open\0");

fn missing() -> c_long {
    crate::set_errno(libc::ENOSYS);
    -1
}

/// The real `syscall(2)` wrapper.
///
/// # Safety
/// As libc's `syscall`.
pub unsafe fn syscall(n: c_long, a: [c_long; 6]) -> c_long {
    let f = SYSCALL.get();
    if f == 0 {
        return missing();
    }
    // SAFETY: f is libc's syscall, called with the registers the caller gave.
    unsafe {
        let f: unsafe extern "C" fn(c_long, ...) -> c_long = std::mem::transmute(f);
        f(n, a[0], a[1], a[2], a[3], a[4], a[5])
    }
}

/// The real `mmap`.
///
/// # Safety
/// As libc's `mmap`.
pub unsafe fn mmap(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: libc::off_t,
) -> *mut c_void {
    let f = MMAP.get();
    if f == 0 {
        crate::set_errno(libc::ENOSYS);
        return libc::MAP_FAILED;
    }
    // SAFETY: f is libc's mmap.
    unsafe {
        let f: unsafe extern "C" fn(
            *mut c_void,
            usize,
            c_int,
            c_int,
            c_int,
            libc::off_t,
        ) -> *mut c_void = std::mem::transmute(f);
        f(addr, len, prot, flags, fd, off)
    }
}

/// The real `readlink`.
///
/// # Safety
/// As libc's `readlink`.
pub unsafe fn readlink(path: *const c_char, buf: *mut c_char, size: usize) -> isize {
    let f = READLINK.get();
    if f == 0 {
        return missing() as isize;
    }
    // SAFETY: f is libc's readlink.
    unsafe {
        let f: unsafe extern "C" fn(*const c_char, *mut c_char, usize) -> isize =
            std::mem::transmute(f);
        f(path, buf, size)
    }
}

/// The real `open`.
///
/// # Safety
/// As libc's `open`.
pub unsafe fn open(path: *const c_char, flags: c_int, mode: libc::mode_t) -> c_int {
    let f = OPEN.get();
    if f == 0 {
        return missing() as c_int;
    }
    // SAFETY: f is libc's open.
    unsafe {
        let f: unsafe extern "C" fn(*const c_char, c_int, ...) -> c_int = std::mem::transmute(f);
        f(path, flags, mode as c_int)
    }
}
