//! Copies to and from the application's memory that fail with EFAULT, as the
//! kernel's copy_from_user does, instead of crashing on a bad pointer:
//! `process_vm_readv`/`process_vm_writev` on our own process.

use std::ffi::c_void;

/// An errno.
pub type Errno = i32;

/// Reads `len` bytes at `addr`.
pub fn read(addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
    let mut out = vec![0u8; len];
    read_into(addr, &mut out)?;
    Ok(out)
}

/// Fills `out` from `addr`.
pub fn read_into(addr: u64, out: &mut [u8]) -> Result<(), Errno> {
    if out.is_empty() {
        return Ok(());
    }
    if addr == 0 {
        return Err(libc::EFAULT);
    }
    let local = libc::iovec {
        iov_base: out.as_mut_ptr() as *mut c_void,
        iov_len: out.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut c_void,
        iov_len: out.len(),
    };
    // SAFETY: the local iovec covers `out`; the kernel checks the remote one.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n != out.len() as isize {
        return Err(libc::EFAULT);
    }
    Ok(())
}

/// Writes `data` at `addr`.
pub fn write(addr: u64, data: &[u8]) -> Result<(), Errno> {
    if data.is_empty() {
        return Ok(());
    }
    if addr == 0 {
        return Err(libc::EFAULT);
    }
    let local = libc::iovec {
        iov_base: data.as_ptr() as *mut c_void,
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut c_void,
        iov_len: data.len(),
    };
    // SAFETY: the local iovec covers `data` (only read); the kernel checks the remote one.
    let n = unsafe { libc::process_vm_writev(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n != data.len() as isize {
        return Err(libc::EFAULT);
    }
    Ok(())
}

/// Reads a NUL-terminated string of at most `max` bytes (E2BIG beyond, like
/// strncpy_from_user callers), page by page so a string ending near the end
/// of a mapping reads fine.
pub fn read_cstr(addr: u64, max: usize) -> Result<String, Errno> {
    if addr == 0 {
        return Err(libc::EFAULT);
    }
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() <= max {
        let to_page = 4096 - (at % 4096) as usize;
        let chunk = read(at, to_page.min(max + 1 - out.len()))?;
        if let Some(end) = chunk.iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..end]);
            return String::from_utf8(out).map_err(|_| libc::EINVAL);
        }
        out.extend_from_slice(&chunk);
        at += chunk.len() as u64;
    }
    Err(libc::ENAMETOOLONG)
}

/// Reads a NUL-terminated string into `out` without allocating (for the
/// interposed libc calls, which may run where allocating is not safe), a
/// short first read, then page by page; returns its length without the NUL. ENAMETOOLONG when `out` fills
/// before a NUL.
pub fn read_cstr_into(addr: u64, out: &mut [u8]) -> Result<usize, Errno> {
    if addr == 0 {
        return Err(libc::EFAULT);
    }
    let mut len = 0;
    // Most paths are short: start with a small read, growing to whole pages
    // (never across a page boundary, which may end the mapping).
    let mut want = 128;
    while len < out.len() {
        let at = addr.wrapping_add(len as u64);
        let n = (4096 - (at % 4096) as usize).min(out.len() - len).min(want);
        want = 4096;
        let chunk = &mut out[len..len + n];
        read_into(at, chunk)?;
        if let Some(end) = chunk.iter().position(|&b| b == 0) {
            return Ok(len + end);
        }
        len += n;
    }
    Err(libc::ENAMETOOLONG)
}

/// The kernel's check_zeroed_user for the tail of a struct the application
/// sized larger than the kernel's: Ok when all `len` bytes at `addr` are zero,
/// E2BIG at the first non-zero one, EFAULT where unreadable. Read a page at a
/// time, so a huge length costs no huge buffer.
pub fn check_zero(addr: u64, len: usize) -> Result<(), Errno> {
    let mut at = addr;
    let mut left = len;
    let mut chunk = [0u8; 4096];
    while left > 0 {
        let n = left.min(4096 - (at % 4096) as usize);
        read_into(at, &mut chunk[..n])?;
        if chunk[..n].iter().any(|&b| b != 0) {
            return Err(libc::E2BIG);
        }
        at = at.wrapping_add(n as u64);
        left -= n;
    }
    Ok(())
}

/// u32 at byte `off` of an attribute buffer.
pub fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[off..off + 4]);
    u32::from_ne_bytes(x)
}

/// u64 at byte `off` of an attribute buffer.
pub fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[off..off + 8]);
    u64::from_ne_bytes(x)
}

/// Stores a u32 at byte `off`.
pub fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

/// Stores a u64 at byte `off`.
pub fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pointers_give_efault() {
        assert_eq!(read(0, 4), Err(libc::EFAULT));
        assert_eq!(read(8, 4), Err(libc::EFAULT));
        assert_eq!(write(16, &[1, 2]), Err(libc::EFAULT));
        assert_eq!(read_cstr(0, 10), Err(libc::EFAULT));
        let s = b"hello\0";
        assert_eq!(read_cstr(s.as_ptr() as u64, 16).as_deref(), Ok("hello"));
        assert_eq!(read_cstr(s.as_ptr() as u64, 3), Err(libc::ENAMETOOLONG));
        let mut out = [0xffu8; 8];
        assert_eq!(read_cstr_into(s.as_ptr() as u64, &mut out), Ok(5));
        assert_eq!(&out[..6], b"hello\0");
        assert_eq!(
            read_cstr_into(s.as_ptr() as u64, &mut out[..5]),
            Err(libc::ENAMETOOLONG)
        );
        assert_eq!(read_cstr_into(8, &mut out), Err(libc::EFAULT));
        // Longer than the first read.
        let mut long = vec![b'x'; 300];
        long.push(0);
        let mut big = [0u8; 512];
        assert_eq!(read_cstr_into(long.as_ptr() as u64, &mut big), Ok(300));
        assert_eq!(&big[..300], &long[..300]);
        let mut buf = [0u8; 3];
        write(buf.as_mut_ptr() as u64, &[7, 8, 9]).expect("write");
        assert_eq!(buf, [7, 8, 9]);
        let zeros = vec![0u8; 10_000];
        assert_eq!(check_zero(zeros.as_ptr() as u64, zeros.len()), Ok(()));
        let mut tail = zeros.clone();
        tail[9_999] = 1;
        assert_eq!(
            check_zero(tail.as_ptr() as u64, tail.len()),
            Err(libc::E2BIG)
        );
        // Non-zero before an unreadable part: E2BIG first, as the kernel.
        assert_eq!(
            check_zero(tail.as_ptr() as u64 + 9_999, usize::MAX / 2),
            Err(libc::E2BIG)
        );
        assert_eq!(check_zero(8, 1 << 40), Err(libc::EFAULT));
    }
}
