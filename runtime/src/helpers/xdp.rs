//! XDP buffer helpers, with the kernel's limits and errors (net/core/filter.c):
//! bpf_xdp_adjust_head, bpf_xdp_adjust_meta, bpf_xdp_adjust_tail,
//! bpf_xdp_get_buff_len, bpf_xdp_load_bytes, bpf_xdp_store_bytes.

use super::{neg_errno, HelperCtx};
use crate::error::TrapKind;
use crate::xdp::{ETH_HLEN, MAX_META, XDP_FRAME_RESERVED};
use isa::helpers::func;

const ADJUST_HEAD: i32 = func::xdp_adjust_head;
const ADJUST_META: i32 = func::xdp_adjust_meta;
const ADJUST_TAIL: i32 = func::xdp_adjust_tail;
const GET_BUFF_LEN: i32 = func::xdp_get_buff_len;
const LOAD_BYTES: i32 = func::xdp_load_bytes;
const STORE_BYTES: i32 = func::xdp_store_bytes;

/// The first argument of an XDP helper must be the program's context.
pub(crate) fn check_ctx(ctx: &HelperCtx<'_, '_>, helper: i32, arg: u64) -> Result<(), TrapKind> {
    if arg != ctx.pkt.md_addr() {
        return Err(TrapKind::HelperBadPointer {
            helper,
            addr: arg,
            len: crate::xdp::XdpMd::SIZE as u64,
        });
    }
    Ok(())
}

pub(super) fn adjust_head(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    check_ctx(ctx, ADJUST_HEAD, a[0])?;
    let offset = a[1] as i32 as i64;
    let frame_end = ctx.pkt.hard_start() as i64 + XDP_FRAME_RESERVED as i64;
    let md = *ctx.pkt.md();
    let metalen = (md.data - md.data_meta) as i64;
    let data = md.data as i64 + offset;
    if data < frame_end + metalen || data > md.data_end as i64 - ETH_HLEN as i64 {
        return Ok(neg_errno(libc::EINVAL));
    }
    let new_meta = (md.data_meta as i64 + offset) as u32;
    if metalen > 0 {
        let base = ctx.pkt.hard_start() as u32;
        let frame = ctx.pkt.frame_mut();
        let (from, to) = ((md.data_meta - base) as usize, (new_meta - base) as usize);
        frame.copy_within(from..from + metalen as usize, to);
    }
    let m = ctx.pkt.md_mut();
    m.data_meta = new_meta;
    m.data = data as u32;
    Ok(0)
}

pub(super) fn adjust_meta(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    check_ctx(ctx, ADJUST_META, a[0])?;
    let offset = a[1] as i32 as i64;
    let frame_end = ctx.pkt.hard_start() as i64 + XDP_FRAME_RESERVED as i64;
    let md = *ctx.pkt.md();
    let meta = md.data_meta as i64 + offset;
    if meta < frame_end || meta > md.data as i64 {
        return Ok(neg_errno(libc::EINVAL));
    }
    let metalen = md.data as i64 - meta;
    if metalen & 3 != 0 || metalen > MAX_META as i64 {
        return Ok(neg_errno(libc::EACCES));
    }
    ctx.pkt.md_mut().data_meta = meta as u32;
    Ok(0)
}

pub(super) fn adjust_tail(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    check_ctx(ctx, ADJUST_TAIL, a[0])?;
    let offset = a[1] as i32;
    if ctx.pkt.has_frags() {
        return Ok(if offset < 0 {
            frags_shrink_tail(ctx, offset.wrapping_neg())
        } else {
            frags_increase_tail(ctx, offset)
        });
    }
    let offset = offset as i64;
    let md = *ctx.pkt.md();
    let data_end = md.data_end as i64 + offset;
    if data_end > ctx.pkt.hard_end() as i64 || data_end < md.data as i64 + ETH_HLEN as i64 {
        return Ok(neg_errno(libc::EINVAL));
    }
    if offset > 0 {
        // The kernel clears grown memory, which may hold old data.
        let start = (md.data_end as u64 - ctx.pkt.hard_start()) as usize;
        ctx.pkt.frame_mut()[start..start + offset as usize].fill(0);
    }
    ctx.pkt.md_mut().data_end = data_end as u32;
    Ok(0)
}

/// `bpf_xdp_frags_shrink_tail`: `offset` is the negated argument, so `i32::MIN` stays
/// negative (the kernel's int arithmetic wraps) and shrinks nothing.
fn frags_shrink_tail(ctx: &mut HelperCtx<'_, '_>, offset: i32) -> u64 {
    if i64::from(offset) > ctx.pkt.buff_len() as i64 - ETH_HLEN as i64 {
        return neg_errno(libc::EINVAL);
    }
    if offset > 0 {
        ctx.pkt.shrink_frags(offset as usize);
    }
    0
}

/// `bpf_xdp_frags_increase_tail`: the last fragment grows into the rest of its page.
fn frags_increase_tail(ctx: &mut HelperCtx<'_, '_>, offset: i32) -> u64 {
    let Some(tailroom) = ctx.pkt.frag_tailroom() else {
        return neg_errno(libc::EINVAL);
    };
    if offset as usize > tailroom {
        return neg_errno(libc::EINVAL);
    }
    ctx.pkt.grow_frags(offset as usize);
    0
}

pub(super) fn get_buff_len(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    check_ctx(ctx, GET_BUFF_LEN, a[0])?;
    Ok(ctx.pkt.buff_len() as u64)
}

/// The checks of `bpf_xdp_pointer` on `offset .. offset + len`: the kernel's errno, or
/// the offset and length as sizes.
fn packet_range(ctx: &HelperCtx<'_, '_>, offset: u64, len: u64) -> Result<(usize, usize), i32> {
    let (offset, len) = (offset as u32 as u64, len as u32 as u64);
    if offset > 0xffff || len > 0xffff {
        return Err(libc::EFAULT);
    }
    if offset + len > ctx.pkt.buff_len() as u64 {
        return Err(libc::EINVAL);
    }
    Ok((offset as usize, len as usize))
}

pub(super) fn load_bytes(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    check_ctx(ctx, LOAD_BYTES, a[0])?;
    load_into(ctx, LOAD_BYTES, a[1], a[2], a[3] as u32 as u64)
}

pub(super) fn store_bytes(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    check_ctx(ctx, STORE_BYTES, a[0])?;
    store_from(ctx, STORE_BYTES, a[1], a[2], a[3] as u32 as u64)
}

/// The kernel's `bpf_xdp_pointer`: the address of packet bytes `offset .. offset + len`
/// (from `data`) when they lie in the linear part, `Ok(None)` when they lie in the
/// buffer but not (wholly) in the linear part, else the errno.
pub(crate) fn pointer(ctx: &HelperCtx<'_, '_>, offset: u64, len: u64) -> Result<Option<u64>, i32> {
    let (offset, len) = packet_range(ctx, offset, len)?;
    Ok(ctx.pkt.linear_ptr(offset, len))
}

/// The kernel's `__bpf_xdp_load_bytes` for `helper`: copies packet bytes `offset ..
/// offset + len` (linear part and fragments) into the program's memory at `buf`; r0 is
/// 0 or the negative errno.
pub(crate) fn load_into(
    ctx: &mut HelperCtx<'_, '_>,
    helper: i32,
    offset: u64,
    buf: u64,
    len: u64,
) -> Result<u64, TrapKind> {
    let buf = ctx.bytes_mut(helper, buf, len)?.as_mut_ptr();
    let (offset, len) = match packet_range(ctx, offset, len) {
        Ok(r) => r,
        Err(e) => return Ok(neg_errno(e)),
    };
    // SAFETY: `buf` was checked writable for `len` bytes; it may overlap the packet's
    // linear part, which `load_bytes` allows.
    unsafe { ctx.pkt.load_bytes(offset, buf, len) };
    Ok(0)
}

/// The kernel's `__bpf_xdp_store_bytes` for `helper`: copies `len` bytes of the
/// program's memory at `buf` to packet bytes `offset ..` (linear part and fragments);
/// r0 is 0 or the negative errno.
pub(crate) fn store_from(
    ctx: &mut HelperCtx<'_, '_>,
    helper: i32,
    offset: u64,
    buf: u64,
    len: u64,
) -> Result<u64, TrapKind> {
    let buf = ctx.bytes(helper, buf, len)?.as_ptr();
    let (offset, len) = match packet_range(ctx, offset, len) {
        Ok(r) => r,
        Err(e) => return Ok(neg_errno(e)),
    };
    // SAFETY: as in `load_into`, the other way round.
    unsafe { ctx.pkt.store_bytes(offset, buf, len) };
    Ok(0)
}
