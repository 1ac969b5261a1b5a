//! The socket helpers XDP programs may call, and bpf_check_mtu.
//!
//! Sockets: the runtime runs programs outside the kernel, where there are no
//! sockets, so its model is the one a test run in an empty network namespace
//! sees: no socket exists. `bpf_sk_lookup_tcp`, `bpf_sk_lookup_udp` and
//! `bpf_skc_lookup_tcp` return NULL (after the kernel's checks of their
//! arguments, which also end in NULL); `bpf_sk_release` returns 0; and
//! `bpf_tcp_check_syncookie` / `bpf_tcp_gen_syncookie`, which the kernel's
//! verifier lets a program call only with a socket it looked up, answer
//! -EINVAL (the kernel's answer for a socket that is not a TCP listener).
//!
//! `bpf_check_mtu`: the kernel's `bpf_xdp_check_mtu` on the interfaces of the
//! object's network (`--net`, `LoadedObject::set_net`): ifindex 0 is the frame's
//! ingress interface.

use super::{neg_errno, HelperCtx};
use crate::error::TrapKind;

use isa::helpers::func::{
    check_mtu as CHECK_MTU, sk_lookup_tcp as SK_LOOKUP_TCP, sk_lookup_udp as SK_LOOKUP_UDP,
    skc_lookup_tcp as SKC_LOOKUP_TCP, tcp_check_syncookie as CHECK_SYNCOOKIE,
    tcp_gen_syncookie as GEN_SYNCOOKIE,
};

fn lookup(ctx: &mut HelperCtx<'_, '_>, helper: i32, a: [u64; 5]) -> Result<u64, TrapKind> {
    // The tuple is read whatever its size says (the kernel's verifier proves
    // it readable); a size of neither form, flags, or any netns all end in NULL.
    let len = a[2] as u32 as u64;
    ctx.bytes(helper, a[1], len)?;
    Ok(0)
}

pub(super) fn sk_lookup_tcp(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    lookup(ctx, SK_LOOKUP_TCP, a)
}

pub(super) fn sk_lookup_udp(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    lookup(ctx, SK_LOOKUP_UDP, a)
}

pub(super) fn skc_lookup_tcp(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    lookup(ctx, SKC_LOOKUP_TCP, a)
}

/// No socket is ever handed out, so there is nothing to release.
pub(super) fn sk_release(_: &mut HelperCtx<'_, '_>, _: [u64; 5]) -> Result<u64, TrapKind> {
    Ok(0)
}

fn syncookie(ctx: &mut HelperCtx<'_, '_>, helper: i32, a: [u64; 5]) -> Result<u64, TrapKind> {
    ctx.bytes(helper, a[1], a[2] as u32 as u64)?;
    ctx.bytes(helper, a[3], a[4] as u32 as u64)?;
    Ok(neg_errno(libc::EINVAL))
}

pub(super) fn tcp_check_syncookie(
    ctx: &mut HelperCtx<'_, '_>,
    a: [u64; 5],
) -> Result<u64, TrapKind> {
    syncookie(ctx, CHECK_SYNCOOKIE, a)
}

pub(super) fn tcp_gen_syncookie(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    syncookie(ctx, GEN_SYNCOOKIE, a)
}

/// `BPF_MTU_CHK_RET_FRAG_NEEDED`.
const FRAG_NEEDED: i32 = 1;
/// `dev->hard_header_len` of Ethernet-like devices (veth, loopback, dummy).
const HARD_HEADER_LEN: i32 = 14;

/// `bpf_check_mtu(ctx, ifindex, &mtu_len, len_diff, flags)`, as
/// `bpf_xdp_check_mtu`: the frame's length (or `*mtu_len` plus the link header
/// when it is not 0) plus `len_diff` against the device's MTU plus its link
/// header: 0 or `BPF_MTU_CHK_RET_FRAG_NEEDED`; -EINVAL for any flag (XDP has no
/// segment check), -ENODEV for an unknown interface. `*mtu_len` gets the MTU,
/// and is left alone on those errors (as Linux 6.18 does).
pub(super) fn check_mtu(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let md = *ctx.pkt.md();
    let mut xdp_len = md.data_end.wrapping_sub(md.data) as i32;
    let mtu_in = {
        let b = ctx.bytes(CHECK_MTU, a[2], 4)?;
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
    };
    let ifindex = a[1] as u32;
    let dev = if ifindex == 0 {
        md.ingress_ifindex
    } else {
        ifindex
    };
    if a[4] != 0 {
        return Ok(neg_errno(libc::EINVAL));
    }
    let Some(iface) = ctx.maps.net().iface(dev) else {
        return Ok(neg_errno(libc::ENODEV));
    };
    let mtu = iface.mtu as i32;
    let dev_len = mtu.wrapping_add(HARD_HEADER_LEN);
    if mtu_in != 0 {
        xdp_len = (mtu_in as i32).wrapping_add(HARD_HEADER_LEN);
    }
    xdp_len = xdp_len.wrapping_add(a[3] as i32);
    let ret = if xdp_len > dev_len { FRAG_NEEDED } else { 0 };
    let out = ctx.bytes_mut(CHECK_MTU, a[2], 4)?;
    out.copy_from_slice(&(mtu as u32).to_ne_bytes());
    Ok(ret as i64 as u64)
}
