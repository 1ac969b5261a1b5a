//! Word-wise copies into and out of map memory.
//!
//! Map values sit at 8-byte-aligned offsets with sizes rounded up to 8, hash keys
//! at 4-byte-aligned offsets with sizes rounded up to 4; padding is kept zero. All copies touching store memory go
//! through `AtomicU64` loads and stores (Relaxed), so a concurrent reader never
//! sees a torn 8-byte word, and a value of 8 bytes or less is read or written
//! whole. Ordering with respect to publication (hash links) is the caller's job.

use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Copies `len` bytes from `src` into store memory at `dst`, one 8-byte word at
/// a time; the last word's bytes past `len` are written as zero.
///
/// # Safety
/// `dst` is 8-byte aligned and valid for writes of `round_up(len, 8)` bytes of
/// store memory (only ever accessed atomically by others); `src` is valid for
/// reads of `len` bytes and does not overlap `dst`.
#[inline]
pub(crate) unsafe fn store_words(dst: *mut u8, src: *const u8, len: usize) {
    let full = len / 8;
    for i in 0..full {
        // SAFETY: i*8+8 <= len, so the read is inside src; the word at dst+i*8 is
        // aligned and inside the destination (caller's contract).
        unsafe {
            let v = ptr::read_unaligned(src.add(i * 8) as *const u64);
            AtomicU64::from_ptr(dst.add(i * 8) as *mut u64).store(v, Ordering::Relaxed);
        }
    }
    let rem = len % 8;
    if rem != 0 {
        let mut b = [0u8; 8];
        // SAFETY: the tail [full*8, len) is inside src; the word at dst+full*8 is the
        // last of the round_up(len, 8) destination bytes.
        unsafe {
            ptr::copy_nonoverlapping(src.add(full * 8), b.as_mut_ptr(), rem);
            AtomicU64::from_ptr(dst.add(full * 8) as *mut u64)
                .store(u64::from_ne_bytes(b), Ordering::Relaxed);
        }
    }
}

/// Copies `dst.len()` bytes out of store memory at `src`, word by word.
///
/// # Safety
/// `src` is 8-byte aligned and valid for reads of `round_up(dst.len(), 8)` bytes
/// of store memory.
#[inline]
pub(crate) unsafe fn load_words(dst: &mut [u8], src: *const u8) {
    for (i, chunk) in dst.chunks_mut(8).enumerate() {
        // SAFETY: word i lies within round_up(dst.len(), 8) bytes of src, aligned.
        let v = unsafe { AtomicU64::from_ptr(src.add(i * 8) as *mut u64).load(Ordering::Relaxed) };
        let n = chunk.len();
        chunk.copy_from_slice(&v.to_ne_bytes()[..n]);
    }
}

/// Zeroes `len` bytes (a multiple of 8) of store memory at `dst`.
///
/// # Safety
/// `dst` is 8-byte aligned and valid for writes of `len` bytes; `len % 8 == 0`.
#[inline]
pub(crate) unsafe fn zero_words(dst: *mut u8, len: usize) {
    for i in 0..len / 8 {
        // SAFETY: word i is inside [dst, dst+len) and aligned.
        unsafe { AtomicU64::from_ptr(dst.add(i * 8) as *mut u64).store(0, Ordering::Relaxed) };
    }
}

/// Copies a `len`-byte key into store memory at `dst`, one 4-byte word at a time
/// (hash keys are 4-aligned); the last word's bytes past `len` are written as zero.
///
/// # Safety
/// `dst` is 4-byte aligned and valid for writes of `round_up(len, 4)` bytes of
/// store memory; `src` is valid for reads of `len` bytes and does not overlap `dst`.
#[inline]
pub(crate) unsafe fn store_key(dst: *mut u8, src: *const u8, len: usize) {
    for i in 0..len.div_ceil(4) {
        let n = (len - i * 4).min(4);
        let mut b = [0u8; 4];
        // SAFETY: bytes [i*4, i*4+n) are inside src; word i of dst is aligned and
        // inside the round_up(len, 4) destination bytes.
        unsafe {
            ptr::copy_nonoverlapping(src.add(i * 4), b.as_mut_ptr(), n);
            AtomicU32::from_ptr(dst.add(i * 4) as *mut u32)
                .store(u32::from_ne_bytes(b), Ordering::Relaxed);
        }
    }
}

/// Copies a key of `dst.len()` bytes out of store memory at `src`, word by word.
///
/// # Safety
/// `src` is 4-byte aligned and valid for reads of `round_up(dst.len(), 4)` bytes
/// of store memory.
#[inline]
pub(crate) unsafe fn load_key(dst: &mut [u8], src: *const u8) {
    for (i, chunk) in dst.chunks_mut(4).enumerate() {
        // SAFETY: word i lies within round_up(dst.len(), 4) bytes of src, aligned.
        let v = unsafe { AtomicU32::from_ptr(src.add(i * 4) as *mut u32).load(Ordering::Relaxed) };
        let n = chunk.len();
        chunk.copy_from_slice(&v.to_ne_bytes()[..n]);
    }
}

/// Compares a stored key (4-aligned, zero-padded to a multiple of 4) with a
/// probe key of `len` bytes.
///
/// # Safety
/// `stored` is 4-byte aligned and valid for reads of `round_up(len, 4)` bytes of
/// store memory; `probe` is valid for reads of `len` bytes.
#[inline]
pub(crate) unsafe fn key_eq(stored: *const u8, probe: *const u8, len: usize) -> bool {
    let full = len / 4;
    for i in 0..full {
        // SAFETY: inside both buffers per the contract.
        let (a, b) = unsafe {
            (
                AtomicU32::from_ptr(stored.add(i * 4) as *mut u32).load(Ordering::Relaxed),
                ptr::read_unaligned(probe.add(i * 4) as *const u32),
            )
        };
        if a != b {
            return false;
        }
    }
    let rem = len % 4;
    if rem != 0 {
        let mut b = [0u8; 4];
        // SAFETY: tail of probe; last padded word of stored.
        let a = unsafe {
            ptr::copy_nonoverlapping(probe.add(full * 4), b.as_mut_ptr(), rem);
            AtomicU32::from_ptr(stored.add(full * 4) as *mut u32).load(Ordering::Relaxed)
        };
        if a != u32::from_ne_bytes(b) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(align(8))]
    struct Buf([u8; 32]);

    #[test]
    fn words_roundtrip_and_pad_with_zero() {
        let mut buf = Buf([0xAA; 32]);
        let src: Vec<u8> = (1..=13).collect();
        // SAFETY: buf is 8-aligned and 32 >= round_up(13, 8) bytes.
        unsafe { store_words(buf.0.as_mut_ptr(), src.as_ptr(), 13) };
        assert_eq!(&buf.0[..13], &src[..]);
        assert_eq!(&buf.0[13..16], &[0, 0, 0]);
        assert_eq!(buf.0[16], 0xAA);
        let mut out = [0u8; 13];
        // SAFETY: as above.
        unsafe { load_words(&mut out, buf.0.as_ptr()) };
        assert_eq!(&out[..], &src[..]);
        // SAFETY: as above.
        unsafe { zero_words(buf.0.as_mut_ptr(), 16) };
        assert_eq!(&buf.0[..16], &[0; 16]);
    }

    #[test]
    fn keys_roundtrip_at_4_byte_alignment_and_pad_with_zero() {
        let mut buf = Buf([0xAA; 32]);
        let src: Vec<u8> = (1..=7).collect();
        let at = buf.0[4..].as_mut_ptr();
        // SAFETY: at is 4-aligned with 28 >= round_up(7, 4) bytes.
        unsafe { store_key(at, src.as_ptr(), 7) };
        assert_eq!(&buf.0[..4], &[0xAA; 4]);
        assert_eq!(&buf.0[4..11], &src[..]);
        assert_eq!(buf.0[11], 0);
        assert_eq!(buf.0[12], 0xAA);
        let mut out = [0u8; 7];
        // SAFETY: as above.
        unsafe { load_key(&mut out, buf.0[4..].as_ptr()) };
        assert_eq!(&out[..], &src[..]);
        // SAFETY: as above.
        assert!(unsafe { key_eq(buf.0[4..].as_ptr(), src.as_ptr(), 7) });
        let mut other = src.clone();
        other[6] = 0;
        // SAFETY: as above.
        assert!(!unsafe { key_eq(buf.0[4..].as_ptr(), other.as_ptr(), 7) });
        other[6] = 7;
        other[0] = 9;
        // SAFETY: as above.
        assert!(!unsafe { key_eq(buf.0[4..].as_ptr(), other.as_ptr(), 7) });
    }
}
