//! Dynptrs: the runtime's `struct bpf_dynptr`, laid out as the kernel's
//! `struct bpf_dynptr_kern` (16 bytes, 8-aligned, on the program's stack):
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | `data`: the memory (LOCAL, RINGBUF) or, for XDP, the program's context |
//! | 8..12 | bits 0..24 the size, bits 28..31 the kind ([`Kind`]), bit 31 read-only |
//! | 12..16 | `offset` into `data` |
//!
//! A null dynptr is all zero (`data` 0). The program may overwrite its stack, so
//! nothing here trusts a dynptr: an XDP dynptr's `data` must be the run's context,
//! and its bytes are reached through the packet functions of `xdp.rs` (those of
//! `bpf_xdp_load_bytes`/`store_bytes`), which check the frame's current bounds;
//! LOCAL and RINGBUF dynptrs reach memory through `HelperCtx::bytes`, which checks
//! the run's regions. The ring buffer's dynptr helpers make RINGBUF dynptrs with
//! [`Dynptr::new`] and [`Dynptr::store`].
//!
//! The helpers `bpf_dynptr_read`, `bpf_dynptr_write`, `bpf_dynptr_data`,
//! `bpf_dynptr_from_mem` and the ring buffer's `bpf_ringbuf_reserve_dynptr`,
//! `_submit_dynptr` and `_discard_dynptr` are here;
//! the dynptr kfuncs (`bpf_dynptr_from_xdp`, `_slice`, `_slice_rdwr`, `_size`,
//! `_adjust`, `_is_null`, `_is_rdonly`, `_clone`) are in `kfuncs/dynptr.rs`.

use super::event::{commit, reserve_record};
use super::{neg_errno, xdp, HelperCtx};
use crate::error::TrapKind;

/// The kernel's `enum bpf_dynptr_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Invalid = 0,
    Local = 1,
    Ringbuf = 2,
    Skb = 3,
    Xdp = 4,
}

/// The bytes of a `struct bpf_dynptr`.
pub const SIZE: u64 = 16;
/// The most bytes a dynptr may cover (24 bits of size).
pub const MAX_SIZE: u32 = (1 << 24) - 1;
const SIZE_MASK: u32 = MAX_SIZE;
const KIND_SHIFT: u32 = 28;
const KIND_MASK: u32 = 0x7;
const RDONLY_BIT: u32 = 1 << 31;

/// A dynptr as read from the program's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dynptr {
    pub data: u64,
    /// Size, kind and read-only bit, as the kernel packs them.
    pub size_kind: u32,
    pub offset: u32,
}

impl Dynptr {
    /// The null dynptr.
    pub const NULL: Dynptr = Dynptr {
        data: 0,
        size_kind: 0,
        offset: 0,
    };

    /// The kernel's `bpf_dynptr_init`.
    pub fn new(data: u64, kind: Kind, offset: u32, size: u32, rdonly: bool) -> Dynptr {
        let rd = if rdonly { RDONLY_BIT } else { 0 };
        Dynptr {
            data,
            size_kind: (size & SIZE_MASK) | (kind as u32) << KIND_SHIFT | rd,
            offset,
        }
    }

    pub fn is_null(&self) -> bool {
        self.data == 0
    }

    pub fn size(&self) -> u32 {
        self.size_kind & SIZE_MASK
    }

    pub fn set_size(&mut self, size: u32) {
        self.size_kind = (self.size_kind & !SIZE_MASK) | (size & SIZE_MASK);
    }

    pub fn rdonly(&self) -> bool {
        self.size_kind & RDONLY_BIT != 0
    }

    pub fn kind(&self) -> Kind {
        match (self.size_kind >> KIND_SHIFT) & KIND_MASK {
            1 => Kind::Local,
            2 => Kind::Ringbuf,
            3 => Kind::Skb,
            4 => Kind::Xdp,
            _ => Kind::Invalid,
        }
    }

    /// Reads the dynptr at `addr` in the program's memory (a trap naming `helper`
    /// when the 16 bytes are not the program's).
    pub(crate) fn load(
        ctx: &HelperCtx<'_, '_>,
        helper: i32,
        addr: u64,
    ) -> Result<Dynptr, TrapKind> {
        let b = ctx.bytes(helper, addr, SIZE)?;
        let u32_at = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(Dynptr {
            data: u64::from(u32_at(0)) | u64::from(u32_at(4)) << 32,
            size_kind: u32_at(8),
            offset: u32_at(12),
        })
    }

    /// Writes the dynptr to `addr` in the program's memory.
    pub(crate) fn store(
        &self,
        ctx: &mut HelperCtx<'_, '_>,
        helper: i32,
        addr: u64,
    ) -> Result<(), TrapKind> {
        let b = ctx.bytes_mut(helper, addr, SIZE)?;
        b[0..8].copy_from_slice(&self.data.to_ne_bytes());
        b[8..12].copy_from_slice(&self.size_kind.to_ne_bytes());
        b[12..16].copy_from_slice(&self.offset.to_ne_bytes());
        Ok(())
    }

    /// The kernel's `bpf_dynptr_check_off_len`: `-E2BIG` unless `offset .. offset +
    /// len` lies inside the dynptr.
    pub fn check_off_len(&self, offset: u64, len: u64) -> Result<(), i32> {
        let size = u64::from(self.size());
        if len > size || offset > size - len {
            return Err(libc::E2BIG);
        }
        Ok(())
    }

    /// An XDP dynptr's `data` must be the run's context (a trap otherwise: the kernel's
    /// verifier would not let a program make one).
    pub(crate) fn check_xdp(&self, ctx: &HelperCtx<'_, '_>, helper: i32) -> Result<(), TrapKind> {
        xdp::check_ctx(ctx, helper, self.data)
    }
}

/// `bpf_dynptr_read(dst, len, src, offset, flags)`.
pub(super) fn read(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    const H: i32 = isa::helpers::func::dynptr_read;
    let (dst, len, offset, flags) = (a[0], a[1] as u32 as u64, a[3] as u32 as u64, a[4]);
    let src = Dynptr::load(ctx, H, a[2])?;
    if src.is_null() || flags != 0 {
        return Ok(neg_errno(libc::EINVAL));
    }
    if let Err(e) = src.check_off_len(offset, len) {
        return Ok(neg_errno(e));
    }
    let at = u64::from(src.offset) + offset;
    match src.kind() {
        Kind::Xdp => {
            src.check_xdp(ctx, H)?;
            xdp::load_into(ctx, H, at, dst, len)
        }
        Kind::Local | Kind::Ringbuf => {
            let from = ctx.bytes(H, src.data.wrapping_add(at), len)?.as_ptr();
            let to = ctx.bytes_mut(H, dst, len)?.as_mut_ptr();
            // SAFETY: both ranges were just checked to be memory of the run (`to`
            // writable); `copy` tolerates overlap.
            unsafe { std::ptr::copy(from, to, len as usize) };
            Ok(0)
        }
        Kind::Skb | Kind::Invalid => Ok(neg_errno(libc::EFAULT)),
    }
}

/// `bpf_dynptr_write(dst, offset, src, len, flags)`.
pub(super) fn write(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    const H: i32 = isa::helpers::func::dynptr_write;
    let (offset, src, len, flags) = (a[1] as u32 as u64, a[2], a[3] as u32 as u64, a[4]);
    let dst = Dynptr::load(ctx, H, a[0])?;
    if dst.is_null() || dst.rdonly() {
        return Ok(neg_errno(libc::EINVAL));
    }
    if let Err(e) = dst.check_off_len(offset, len) {
        return Ok(neg_errno(e));
    }
    let at = u64::from(dst.offset) + offset;
    match dst.kind() {
        Kind::Xdp => {
            if flags != 0 {
                return Ok(neg_errno(libc::EINVAL));
            }
            dst.check_xdp(ctx, H)?;
            xdp::store_from(ctx, H, at, src, len)
        }
        Kind::Local | Kind::Ringbuf => {
            if flags != 0 {
                return Ok(neg_errno(libc::EINVAL));
            }
            let from = ctx.bytes(H, src, len)?.as_ptr();
            let to = ctx
                .bytes_mut(H, dst.data.wrapping_add(at), len)?
                .as_mut_ptr();
            // SAFETY: both ranges were just checked to be memory of the run (`to`
            // writable); `copy` tolerates overlap.
            unsafe { std::ptr::copy(from, to, len as usize) };
            Ok(0)
        }
        Kind::Skb | Kind::Invalid => Ok(neg_errno(libc::EFAULT)),
    }
}

/// `bpf_dynptr_data(ptr, offset, len)`: a pointer into LOCAL and RINGBUF dynptrs, NULL
/// for XDP ones (the kernel's programs use `bpf_dynptr_slice` for those).
pub(super) fn data(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    const H: i32 = isa::helpers::func::dynptr_data;
    let (offset, len) = (a[1] as u32 as u64, a[2] as u32 as u64);
    let p = Dynptr::load(ctx, H, a[0])?;
    if p.is_null() || p.check_off_len(offset, len).is_err() {
        return Ok(0);
    }
    match p.kind() {
        Kind::Local | Kind::Ringbuf if !p.rdonly() => {
            let addr = p.data.wrapping_add(u64::from(p.offset) + offset);
            ctx.bytes_mut(H, addr, len)?;
            Ok(addr)
        }
        _ => Ok(0),
    }
}

/// `bpf_dynptr_from_mem(data, size, flags, ptr)`: a LOCAL dynptr over `size` bytes of
/// program memory (read-only when the memory is); -EINVAL for flags, -E2BIG over the
/// size limit, with `ptr` set null.
pub(super) fn from_mem(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    const H: i32 = isa::helpers::func::dynptr_from_mem;
    let size = a[1] as u32;
    let err = if a[2] != 0 {
        Some(libc::EINVAL)
    } else if size > MAX_SIZE {
        Some(libc::E2BIG)
    } else {
        None
    };
    if let Some(e) = err {
        Dynptr::NULL.store(ctx, H, a[3])?;
        return Ok(neg_errno(e));
    }
    ctx.bytes(H, a[0], u64::from(size))?;
    let writable = size == 0 || ctx.bytes_mut(H, a[0], u64::from(size)).is_ok();
    Dynptr::new(a[0], Kind::Local, 0, size, !writable).store(ctx, H, a[3])?;
    Ok(0)
}

/// `bpf_ringbuf_reserve_dynptr(ringbuf, size, flags, ptr)`: a ring buffer record as a
/// RINGBUF dynptr; -EINVAL for flags or when the record does not fit, -E2BIG over the
/// size limit, with `ptr` set null.
pub(super) fn ringbuf_reserve_dynptr(
    ctx: &mut HelperCtx<'_, '_>,
    a: [u64; 5],
) -> Result<u64, TrapKind> {
    const H: i32 = isa::helpers::func::ringbuf_reserve_dynptr;
    let size = a[1] as u32;
    let (rec, err) = if a[2] != 0 {
        ctx.map(H, a[0])?;
        (0, libc::EINVAL)
    } else if size > MAX_SIZE {
        ctx.map(H, a[0])?;
        (0, libc::E2BIG)
    } else {
        (reserve_record(ctx, H, a[0], u64::from(size))?, libc::EINVAL)
    };
    if rec == 0 {
        Dynptr::NULL.store(ctx, H, a[3])?;
        return Ok(neg_errno(err));
    }
    Dynptr::new(rec, Kind::Ringbuf, 0, size, false).store(ctx, H, a[3])?;
    Ok(0)
}

/// Submits or discards the record of the RINGBUF dynptr at `addr` and sets it null; a
/// null dynptr does nothing, another kind traps (the kernel's verifier refuses it).
fn commit_dynptr(
    ctx: &mut HelperCtx<'_, '_>,
    helper: i32,
    addr: u64,
    discard: bool,
) -> Result<u64, TrapKind> {
    let d = Dynptr::load(ctx, helper, addr)?;
    if d.is_null() {
        return Ok(0);
    }
    if d.kind() != Kind::Ringbuf {
        return Err(TrapKind::HelperBadPointer {
            helper,
            addr,
            len: SIZE,
        });
    }
    commit(ctx, helper, d.data, discard)?;
    Dynptr::NULL.store(ctx, helper, addr)?;
    Ok(0)
}

/// `bpf_ringbuf_submit_dynptr(ptr, flags)`: commits the record and sets `ptr` null.
pub(super) fn ringbuf_submit_dynptr(
    ctx: &mut HelperCtx<'_, '_>,
    a: [u64; 5],
) -> Result<u64, TrapKind> {
    commit_dynptr(ctx, isa::helpers::func::ringbuf_submit_dynptr, a[0], false)
}

/// `bpf_ringbuf_discard_dynptr(ptr, flags)`: discards the record and sets `ptr` null.
pub(super) fn ringbuf_discard_dynptr(
    ctx: &mut HelperCtx<'_, '_>,
    a: [u64; 5],
) -> Result<u64, TrapKind> {
    commit_dynptr(ctx, isa::helpers::func::ringbuf_discard_dynptr, a[0], true)
}
