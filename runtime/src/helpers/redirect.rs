//! bpf_redirect_map (helper 51): resolves a DEVMAP, DEVMAP_HASH, CPUMAP or
//! XSKMAP entry the way the kernel's `__bpf_xdp_redirect_map` does, and records
//! the target on the packet ([`Packet::redirect`](crate::Packet::redirect)).
//!
//! - flags with bits outside the action bits (XDP_ABORTED..XDP_TX) and the
//!   map's own flags (BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS for devmaps) →
//!   XDP_ABORTED;
//! - an empty slot (without BPF_F_BROADCAST) → `flags & 3`, and the record is
//!   cleared, as the kernel clears its redirect info;
//! - a filled slot (or BPF_F_BROADCAST) → XDP_REDIRECT, recorded.

use super::HelperCtx;
use crate::error::TrapKind;
use crate::xdp::action;
use isa::helpers::func;

const REDIRECT_MAP: i32 = func::redirect_map;
const ACTION_MASK: u64 = 3;
const BPF_F_BROADCAST: u64 = 1 << 3;

/// Where a run asked `bpf_redirect_map` to send the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redirect {
    /// Store id of the map.
    pub map_id: u32,
    /// `BPF_MAP_TYPE_*` of the map.
    pub map_type: u32,
    /// The key (index) passed.
    pub key: u32,
    /// The flags passed (BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS).
    pub flags: u64,
    /// The entry found: ifindex (devmaps), queue size (cpumap), socket id
    /// (xskmap); `None` for a broadcast to an empty slot.
    pub target: Option<u64>,
}

pub(super) fn redirect_map(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let m = ctx.map(REDIRECT_MAP, a[0])?;
    let Some(mask) = m.map.redirect_flag_mask() else {
        return Err(TrapKind::HelperMapType {
            helper: REDIRECT_MAP,
            map_type: m.info.map_type,
        });
    };
    let flags = a[2];
    if flags & !(ACTION_MASK | mask) != 0 {
        return Ok(u64::from(action::ABORTED));
    }
    let key = a[1] as u32;
    let target = m.map.redirect_lookup(key);
    if target.is_none() && flags & BPF_F_BROADCAST == 0 {
        ctx.pkt.set_redirect(None);
        return Ok(flags & ACTION_MASK);
    }
    ctx.pkt.set_redirect(Some(Redirect {
        map_id: m.info.id,
        map_type: m.info.map_type,
        key,
        flags: flags & mask,
        target,
    }));
    Ok(u64::from(action::REDIRECT))
}

/// bpf_redirect(ifindex, flags): any flag is refused with XDP_ABORTED, as in the
/// kernel's XDP variant; otherwise the target interface is recorded (map id 0, map
/// type BPF_MAP_TYPE_UNSPEC) and the result is XDP_REDIRECT.
pub(super) fn redirect(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    if a[1] != 0 {
        return Ok(u64::from(action::ABORTED));
    }
    ctx.pkt.set_redirect(Some(Redirect {
        map_id: 0,
        map_type: 0,
        key: a[0] as u32,
        flags: 0,
        target: Some(a[0] as u32 as u64),
    }));
    Ok(u64::from(action::REDIRECT))
}
