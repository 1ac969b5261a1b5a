//! The bpf(2) system call with a `union bpf_attr` written at the offsets of
//! `isa::uapi::attr` (checked against the kernel headers by isa's tests).
//!
//! This module holds the crate's unsafe code: the system call, and taking ownership
//! of the descriptors it returns.
#![deny(unsafe_op_in_unsafe_fn)]

use std::os::fd::{FromRawFd, OwnedFd};

use isa::uapi::{attr, BPF_OBJ_NAME_LEN};

/// A zeroed `union bpf_attr` of the size the runtime follows, 8-byte aligned as the
/// kernel's. Members are written and read at `isa::uapi::attr` offsets.
#[derive(Clone)]
#[repr(C, align(8))]
pub struct Attr([u8; attr::SIZE]);

impl Default for Attr {
    fn default() -> Attr {
        Attr([0; attr::SIZE])
    }
}

impl Attr {
    /// Writes a `__u32` member.
    pub fn set_u32(&mut self, off: usize, v: u32) -> &mut Attr {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }

    /// Writes a `__u64` (or `__aligned_u64` pointer) member.
    pub fn set_u64(&mut self, off: usize, v: u64) -> &mut Attr {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }

    /// Writes a pointer member.
    pub fn set_ptr<T>(&mut self, off: usize, p: *const T) -> &mut Attr {
        self.set_u64(off, p as u64)
    }

    /// Writes a `char name[BPF_OBJ_NAME_LEN]` member ([`obj_name`]).
    pub fn set_name(&mut self, off: usize, name: &str) -> &mut Attr {
        self.0[off..off + BPF_OBJ_NAME_LEN].copy_from_slice(&obj_name(name));
        self
    }

    /// Reads a `__u32` member (an output of the command).
    pub fn u32(&self, off: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[off..off + 4]);
        u32::from_ne_bytes(b)
    }
}

/// `bpf(cmd, attr, sizeof attr)`: the command's non-negative result, or the
/// kernel's errno.
///
/// The caller keeps every buffer a pointer member of `attr` points to alive and of
/// the size the neighbouring members give (the kernel reads and writes them).
pub fn bpf(cmd: u32, attr: &mut Attr) -> std::io::Result<i64> {
    // SAFETY: `attr` is a live, initialised union bpf_attr of attr::SIZE bytes; the
    // kernel reads at most that many and writes only output members inside it.
    // Pointer members reference buffers the caller keeps alive across the call (the
    // function's contract, as for every bpf(2) user); a bad one is EFAULT, never a
    // write outside them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            libc::c_long::from(cmd),
            attr.0.as_mut_ptr(),
            attr::SIZE,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The descriptor a bpf(2) command returned, owned.
pub fn take_fd(fd: i64) -> OwnedFd {
    // SAFETY: `fd` was just returned by bpf(2) as a new descriptor nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// A kernel object name: at most 15 bytes of `[A-Za-z0-9_.]` (others become `_`).
pub fn obj_name(name: &str) -> [u8; BPF_OBJ_NAME_LEN] {
    let mut out = [0u8; BPF_OBJ_NAME_LEN];
    for (o, c) in out.iter_mut().zip(name.bytes().take(BPF_OBJ_NAME_LEN - 1)) {
        *o = if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' {
            c
        } else {
            b'_'
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_truncated_and_sanitised() {
        assert_eq!(&obj_name("abc")[..4], b"abc\0");
        assert_eq!(
            &obj_name("a-very-long-program-name")[..],
            b"a_very_long_pro\0"
        );
    }

    #[test]
    fn members_land_at_their_offsets() {
        let mut a = Attr::default();
        a.set_u32(attr::test::REPEAT, 0x0102_0304)
            .set_u64(attr::test::DATA_IN, 0x1122_3344_5566_7788);
        assert_eq!(a.0[32..36], 0x0102_0304u32.to_ne_bytes());
        assert_eq!(a.0[16..24], 0x1122_3344_5566_7788u64.to_ne_bytes());
        assert_eq!(a.u32(attr::test::REPEAT), 0x0102_0304);
        assert_eq!(std::mem::align_of::<Attr>(), 8);
    }
}
