//! The XDP RX metadata kfuncs (net/core/xdp.c): `bpf_xdp_metadata_rx_timestamp`,
//! `bpf_xdp_metadata_rx_hash`, `bpf_xdp_metadata_rx_vlan_tag`.
//!
//! The kernel loads a program calling them only when it is bound to a device
//! (`BPF_F_XDP_DEV_BOUND_ONLY`; otherwise "metadata kfuncs require device-bound
//! program"), and refuses to test-run a device-bound program (EINVAL), so no test
//! run answers them. The runtime's frames (files, AF_PACKET, AF_XDP, test runs) carry
//! no RX metadata, so it runs them as a device without the metadata operations: the
//! kernel's generic versions, which return -EOPNOTSUPP and write nothing.

use super::{id, KFUNC_BASE};
use crate::error::TrapKind;
use crate::helpers::{neg_errno, xdp, HelperCtx};

fn unsupported(ctx: &HelperCtx<'_, '_>, kfunc: i32, a: [u64; 5]) -> Result<u64, TrapKind> {
    xdp::check_ctx(ctx, KFUNC_BASE + kfunc, a[0])?;
    Ok(neg_errno(libc::EOPNOTSUPP))
}

pub(super) fn rx_timestamp(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    unsupported(ctx, id::BPF_XDP_METADATA_RX_TIMESTAMP, a)
}

pub(super) fn rx_hash(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    unsupported(ctx, id::BPF_XDP_METADATA_RX_HASH, a)
}

pub(super) fn rx_vlan_tag(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    unsupported(ctx, id::BPF_XDP_METADATA_RX_VLAN_TAG, a)
}
