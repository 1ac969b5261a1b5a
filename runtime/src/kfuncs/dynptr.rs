//! Dynptr kfuncs (kernel/bpf/helpers.c, net/core/filter.c) over the representation of
//! `helpers/dynptr.rs`: `bpf_dynptr_from_xdp`, `bpf_dynptr_slice`,
//! `bpf_dynptr_slice_rdwr`, `bpf_dynptr_size`, `bpf_dynptr_adjust`,
//! `bpf_dynptr_is_null`, `bpf_dynptr_is_rdonly`, `bpf_dynptr_clone`.

use super::{id, KFUNC_BASE};
use crate::error::TrapKind;
use crate::helpers::dynptr::{Dynptr, Kind, SIZE};
use crate::helpers::{neg_errno, xdp, HelperCtx};

fn load(ctx: &HelperCtx<'_, '_>, kfunc: i32, addr: u64) -> Result<Dynptr, TrapKind> {
    Dynptr::load(ctx, KFUNC_BASE + kfunc, addr)
}

pub(super) fn from_xdp(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    const K: i32 = KFUNC_BASE + id::BPF_DYNPTR_FROM_XDP;
    xdp::check_ctx(ctx, K, a[0])?;
    if a[1] != 0 {
        Dynptr::NULL.store(ctx, K, a[2])?;
        return Ok(neg_errno(libc::EINVAL));
    }
    let len = ctx.pkt.buff_len() as u32;
    Dynptr::new(a[0], Kind::Xdp, 0, len, false).store(ctx, K, a[2])?;
    Ok(0)
}

fn slice(
    ctx: &mut HelperCtx<'_, '_>,
    kfunc: i32,
    a: [u64; 5],
    rdwr: bool,
) -> Result<u64, TrapKind> {
    let k = KFUNC_BASE + kfunc;
    let p = load(ctx, kfunc, a[0])?;
    let (offset, buf, len) = (a[1] as u32 as u64, a[2], a[3] as u32 as u64);
    if p.is_null() || p.check_off_len(offset, len).is_err() || (rdwr && p.rdonly()) {
        return Ok(0);
    }
    let at = u64::from(p.offset) + offset;
    match p.kind() {
        Kind::Local | Kind::Ringbuf => {
            let addr = p.data.wrapping_add(at);
            ctx.bytes(k, addr, len)?;
            Ok(addr)
        }
        Kind::Xdp => {
            p.check_xdp(ctx, k)?;
            if let Ok(Some(addr)) = xdp::pointer(ctx, at, len) {
                return Ok(addr);
            }
            // Not in the linear part: a copy into the caller's buffer, if any.
            if buf == 0 {
                return Ok(0);
            }
            match xdp::load_into(ctx, k, at, buf, len)? {
                0 => Ok(buf),
                _ => Ok(0),
            }
        }
        Kind::Skb | Kind::Invalid => Ok(0),
    }
}

pub(super) fn slice_ro(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    slice(ctx, id::BPF_DYNPTR_SLICE, a, false)
}

pub(super) fn slice_rdwr(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    slice(ctx, id::BPF_DYNPTR_SLICE_RDWR, a, true)
}

pub(super) fn size(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let p = load(ctx, id::BPF_DYNPTR_SIZE, a[0])?;
    Ok(if p.is_null() {
        neg_errno(libc::EINVAL) as u32 as u64
    } else {
        u64::from(p.size())
    })
}

pub(super) fn adjust(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    const K: i32 = KFUNC_BASE + id::BPF_DYNPTR_ADJUST;
    let mut p = load(ctx, id::BPF_DYNPTR_ADJUST, a[0])?;
    let (start, end) = (a[1] as u32, a[2] as u32);
    if p.is_null() {
        return Ok(neg_errno(libc::EINVAL));
    }
    let size = p.size();
    if start > size || end > size {
        return Ok(neg_errno(libc::ERANGE));
    }
    if start > end {
        return Ok(neg_errno(libc::EINVAL));
    }
    p.offset = p.offset.wrapping_add(start);
    p.set_size(end - start);
    p.store(ctx, K, a[0])?;
    Ok(0)
}

pub(super) fn is_null(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    Ok(load(ctx, id::BPF_DYNPTR_IS_NULL, a[0])?.is_null() as u64)
}

pub(super) fn is_rdonly(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let p = load(ctx, id::BPF_DYNPTR_IS_RDONLY, a[0])?;
    Ok((!p.is_null() && p.rdonly()) as u64)
}

pub(super) fn clone(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    const K: i32 = KFUNC_BASE + id::BPF_DYNPTR_CLONE;
    let p = load(ctx, id::BPF_DYNPTR_CLONE, a[0])?;
    if p.is_null() {
        Dynptr::NULL.store(ctx, K, a[1])?;
        return Ok(neg_errno(libc::EINVAL));
    }
    p.store(ctx, K, a[1])?;
    Ok(0)
}

const _: () = assert!(SIZE == 16);
