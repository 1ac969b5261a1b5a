//! A minimal dynptr, for the ring buffer dynptr helpers and the dynptr helpers
//! (`bpf_dynptr_from_mem`, `_read`, `_write`, `_data`). The kfunc work defines
//! the runtime's dynptrs over frames; until it merges, this is the representation.
//!
//! A `struct bpf_dynptr` is 16 bytes of the program's stack that programs do not
//! read (the kernel's verifier forbids it). As the kernel's `bpf_dynptr_kern`:
//! `data` (u64, the memory's address), `size` (u32: the low 24 bits the size,
//! bits 28..31 the type, bit 31 read-only) and `offset` (u32). A null dynptr is
//! all zero. Nothing here trusts the 16 bytes: a program can write them, so every
//! access through a dynptr is checked against the run's regions (`HelperCtx::bytes`
//! and `bytes_mut`), and a ring buffer record is committed only if the run holds it.

use super::event::{commit, reserve_record};
use super::{neg_errno, HelperCtx};
use crate::error::TrapKind;

use isa::helpers::func;

/// The kernel's DYNPTR_MAX_SIZE.
const MAX_SIZE: u32 = (1 << 24) - 1;
const SIZE_MASK: u32 = MAX_SIZE;
const TYPE_SHIFT: u32 = 28;
const TYPE_MASK: u32 = 0x7;
const RDONLY: u32 = 1 << 31;
/// `enum bpf_dynptr_type`.
const TYPE_LOCAL: u32 = 1;
const TYPE_RINGBUF: u32 = 2;

#[derive(Clone, Copy, Default)]
struct Dynptr {
    data: u64,
    size: u32,
    offset: u32,
}

impl Dynptr {
    fn new(data: u64, ty: u32, size: u32, rdonly: bool) -> Dynptr {
        Dynptr {
            data,
            size: size | ty << TYPE_SHIFT | if rdonly { RDONLY } else { 0 },
            offset: 0,
        }
    }
    fn len(self) -> u32 {
        self.size & SIZE_MASK
    }
    fn ty(self) -> u32 {
        (self.size >> TYPE_SHIFT) & TYPE_MASK
    }
    fn rdonly(self) -> bool {
        self.size & RDONLY != 0
    }
    /// The address of byte `off` for `len` bytes, or -E2BIG past the end.
    fn at(self, off: u64, len: u64) -> Result<u64, i32> {
        match off.checked_add(len) {
            Some(end) if end <= u64::from(self.len()) => Ok(self
                .data
                .wrapping_add(u64::from(self.offset))
                .wrapping_add(off)),
            _ => Err(libc::E2BIG),
        }
    }
}

fn load(ctx: &HelperCtx<'_, '_>, helper: i32, addr: u64) -> Result<Dynptr, TrapKind> {
    let b = ctx.bytes(helper, addr, 16)?;
    let w = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    Ok(Dynptr {
        data: u64::from(w(0)) | u64::from(w(4)) << 32,
        size: w(8),
        offset: w(12),
    })
}

fn store(ctx: &mut HelperCtx<'_, '_>, helper: i32, addr: u64, d: Dynptr) -> Result<(), TrapKind> {
    let b = ctx.bytes_mut(helper, addr, 16)?;
    b[..8].copy_from_slice(&d.data.to_ne_bytes());
    b[8..12].copy_from_slice(&d.size.to_ne_bytes());
    b[12..].copy_from_slice(&d.offset.to_ne_bytes());
    Ok(())
}

/// Copies `len` bytes from `src` to `dst`, both checked (through a stack buffer, so
/// overlapping ranges copy as memmove does).
fn copy(
    ctx: &mut HelperCtx<'_, '_>,
    helper: i32,
    dst: u64,
    src: u64,
    len: u64,
) -> Result<(), TrapKind> {
    // Check both whole ranges first, as the kernel's verifier proves them.
    ctx.bytes(helper, src, len)?;
    ctx.bytes_mut(helper, dst, len)?;
    let mut buf = [0u8; 256];
    let mut done = 0;
    if dst > src && dst < src.wrapping_add(len) {
        // Backwards, so that an overlapping source is read before it is written.
        while done < len {
            let n = (len - done).min(256);
            let from = len - done - n;
            buf[..n as usize].copy_from_slice(ctx.bytes(helper, src + from, n)?);
            ctx.bytes_mut(helper, dst + from, n)?
                .copy_from_slice(&buf[..n as usize]);
            done += n;
        }
    } else {
        while done < len {
            let n = (len - done).min(256);
            buf[..n as usize].copy_from_slice(ctx.bytes(helper, src + done, n)?);
            ctx.bytes_mut(helper, dst + done, n)?
                .copy_from_slice(&buf[..n as usize]);
            done += n;
        }
    }
    Ok(())
}

/// `bpf_dynptr_from_mem(data, size, flags, ptr)`: a local dynptr over `size` bytes
/// of program memory (read-only when the memory is); -EINVAL for flags, -E2BIG
/// over the size limit, with `ptr` set null.
pub(super) fn from_mem(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    const ID: i32 = func::dynptr_from_mem;
    let size = a[1] as u32;
    let err = if a[2] != 0 {
        Some(libc::EINVAL)
    } else if size > MAX_SIZE {
        Some(libc::E2BIG)
    } else {
        None
    };
    if let Some(e) = err {
        store(ctx, ID, a[3], Dynptr::default())?;
        return Ok(neg_errno(e));
    }
    ctx.bytes(ID, a[0], u64::from(size))?;
    let writable = size == 0 || ctx.bytes_mut(ID, a[0], u64::from(size)).is_ok();
    store(
        ctx,
        ID,
        a[3],
        Dynptr::new(a[0], TYPE_LOCAL, size, !writable),
    )?;
    Ok(0)
}

/// `bpf_ringbuf_reserve_dynptr(ringbuf, size, flags, ptr)`: a ring buffer record
/// as a dynptr; -EINVAL for flags or when the record does not fit, -E2BIG over the
/// size limit, with `ptr` set null.
pub(super) fn ringbuf_reserve_dynptr(
    ctx: &mut HelperCtx<'_, '_>,
    a: [u64; 5],
) -> Result<u64, TrapKind> {
    const ID: i32 = func::ringbuf_reserve_dynptr;
    let size = a[1] as u32;
    let (rec, err) = if a[2] != 0 {
        ctx.map(ID, a[0])?;
        (0, libc::EINVAL)
    } else if size > MAX_SIZE {
        ctx.map(ID, a[0])?;
        (0, libc::E2BIG)
    } else {
        (
            reserve_record(ctx, ID, a[0], u64::from(size))?,
            libc::EINVAL,
        )
    };
    if rec == 0 {
        store(ctx, ID, a[3], Dynptr::default())?;
        return Ok(neg_errno(err));
    }
    store(ctx, ID, a[3], Dynptr::new(rec, TYPE_RINGBUF, size, false))?;
    Ok(0)
}

fn commit_dynptr(
    ctx: &mut HelperCtx<'_, '_>,
    helper: i32,
    addr: u64,
    discard: bool,
) -> Result<u64, TrapKind> {
    let d = load(ctx, helper, addr)?;
    if d.data == 0 {
        return Ok(0);
    }
    if d.ty() != TYPE_RINGBUF {
        return Err(TrapKind::HelperBadPointer {
            helper,
            addr,
            len: 16,
        });
    }
    commit(ctx, helper, d.data, discard)?;
    store(ctx, helper, addr, Dynptr::default())?;
    Ok(0)
}

/// `bpf_ringbuf_submit_dynptr(ptr, flags)`: commits the record and sets `ptr` null.
pub(super) fn ringbuf_submit_dynptr(
    ctx: &mut HelperCtx<'_, '_>,
    a: [u64; 5],
) -> Result<u64, TrapKind> {
    commit_dynptr(ctx, func::ringbuf_submit_dynptr, a[0], false)
}

/// `bpf_ringbuf_discard_dynptr(ptr, flags)`: discards the record and sets `ptr` null.
pub(super) fn ringbuf_discard_dynptr(
    ctx: &mut HelperCtx<'_, '_>,
    a: [u64; 5],
) -> Result<u64, TrapKind> {
    commit_dynptr(ctx, func::ringbuf_discard_dynptr, a[0], true)
}

/// `bpf_dynptr_read(dst, len, src, offset, flags)`: 0, -EINVAL for a null dynptr or
/// flags, -E2BIG past its end.
pub(super) fn read(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    const ID: i32 = func::dynptr_read;
    let len = u64::from(a[1] as u32);
    let d = load(ctx, ID, a[2])?;
    if d.data == 0 || a[4] != 0 {
        return Ok(neg_errno(libc::EINVAL));
    }
    let src = match d.at(u64::from(a[3] as u32), len) {
        Ok(p) => p,
        Err(e) => return Ok(neg_errno(e)),
    };
    copy(ctx, ID, a[0], src, len)?;
    Ok(0)
}

/// `bpf_dynptr_write(dst, offset, src, len, flags)`: 0, -EINVAL for a null or
/// read-only dynptr or flags, -E2BIG past its end.
pub(super) fn write(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    const ID: i32 = func::dynptr_write;
    let len = u64::from(a[3] as u32);
    let d = load(ctx, ID, a[0])?;
    if d.data == 0 || d.rdonly() {
        return Ok(neg_errno(libc::EINVAL));
    }
    let dst = match d.at(u64::from(a[1] as u32), len) {
        Ok(p) => p,
        Err(e) => return Ok(neg_errno(e)),
    };
    if a[4] != 0 {
        return Ok(neg_errno(libc::EINVAL));
    }
    copy(ctx, ID, dst, a[2], len)?;
    Ok(0)
}

/// `bpf_dynptr_data(ptr, offset, len)`: the address of `len` bytes at `offset`, or
/// NULL for a null or read-only dynptr or a range past its end.
pub(super) fn data(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    const ID: i32 = func::dynptr_data;
    let d = load(ctx, ID, a[0])?;
    if d.data == 0 || d.rdonly() {
        return Ok(0);
    }
    Ok(d.at(u64::from(a[1] as u32), u64::from(a[2] as u32))
        .unwrap_or(0))
}
