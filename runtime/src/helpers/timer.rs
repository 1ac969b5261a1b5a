//! bpf_timer_init, bpf_timer_set_callback, bpf_timer_start, bpf_timer_cancel, with
//! the kernel's semantics (kernel/bpf/helpers.c).
//!
//! A timer is found from the helper's pointer: it must be exactly the `struct
//! bpf_timer` field of a value of a map of the run's table that has timers (an
//! object map or an inner map); its state is the map's timer entry for that value's
//! element slot, in the store (`maps/src/timer.rs`). The 16 bytes in the value are
//! never read: a program may write them, so nothing there is trusted. A pointer
//! that is no map's timer is a trap (the kernel's verifier refuses such programs).
//!
//! Deadlines are kept on the monotonic clock: a relative start is `now + nsecs`, an
//! absolute one (`BPF_F_TIMER_ABS`) on a REALTIME or BOOTTIME timer is converted
//! with the clocks' offset at the call (a later change of the realtime clock does
//! not move it, unlike the kernel's hrtimer). `BPF_F_TIMER_CPU_PIN` is accepted and
//! recorded: callbacks run on the driver's worker.

use maps::timer::{clock_ns, monotonic_ns, CLOCK_BOOTTIME, CLOCK_REALTIME};

use super::{neg_errno, HelperCtx};
use crate::error::TrapKind;
use crate::maptable::{BoundMap, MapTable};

use isa::helpers::func::{
    timer_cancel as CANCEL, timer_init as INIT, timer_set_callback as SET_CALLBACK,
    timer_start as START,
};

/// `BPF_F_TIMER_ABS`: the deadline is absolute on the timer's clock.
pub const BPF_F_TIMER_ABS: u64 = 1;
/// `BPF_F_TIMER_CPU_PIN`: the callback runs on the CPU that started the timer.
pub const BPF_F_TIMER_CPU_PIN: u64 = 2;

/// `bpf_timer_start`'s helper id: compiled code calls [`start_in`] for it directly.
pub(crate) const START_ID: i64 = START as i64;

/// The map and element slot of the timer at `addr`: each map with timers of the
/// table (object maps, then inner maps) is asked whether `addr` is the timer field of
/// one of its values, a bounds check and, inside its elements, one division.
fn timer_at(maps: &MapTable, helper: i32, addr: u64) -> Result<(&BoundMap, u32), TrapKind> {
    maps.iter()
        .chain(maps.inner_maps())
        .filter(|m| m.map.timer_offset().is_some())
        .find_map(|m| m.map.timer_slot_of(addr).map(|s| (m, s)))
        .ok_or(TrapKind::HelperBadPointer {
            helper,
            addr,
            len: 16,
        })
}

fn ret(r: Result<(), i32>) -> u64 {
    match r {
        Ok(()) => 0,
        Err(e) => e as i64 as u64,
    }
}

/// `bpf_timer_init(timer, map, flags)`: -EINVAL for a clock other than MONOTONIC,
/// REALTIME or BOOTTIME, -EBUSY when initialised already.
pub(super) fn init(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let m = ctx.map(INIT, a[1])?;
    let Some(slot) = m.map.timer_slot_of(a[0]) else {
        return Err(TrapKind::HelperBadPointer {
            helper: INIT,
            addr: a[0],
            len: 16,
        });
    };
    Ok(ret(m.map.timer_init(slot, a[2])))
}

/// `bpf_timer_set_callback(timer, callback)`: -EINVAL when not initialised. The
/// callback is recorded as (program store id, slot): the driver runs it.
pub(super) fn set_callback(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let (m, slot) = timer_at(ctx.maps, SET_CALLBACK, a[0])?;
    let Ok(pc) = u32::try_from(a[1]) else {
        return Err(TrapKind::HelperBadCallback {
            helper: SET_CALLBACK,
            value: a[1],
        });
    };
    Ok(ret(m.map.timer_set_callback(slot, ctx.prog_id, pc)))
}

/// `bpf_timer_start(timer, nsecs, flags)`: -EINVAL for unknown flags, a timer not
/// initialised or without a callback.
pub(super) fn start(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    start_in(ctx.maps, [a[0], a[1], a[2]])
}

/// [`start`] on the run's map table: what the JIT's direct call of
/// `bpf_timer_start` runs (`jit/trampoline.rs`, `timer_start_shim`).
pub(crate) fn start_in(maps: &MapTable, a: [u64; 3]) -> Result<u64, TrapKind> {
    let (m, slot) = timer_at(maps, START, a[0])?;
    let flags = a[2];
    if flags & !(BPF_F_TIMER_ABS | BPF_F_TIMER_CPU_PIN) != 0 {
        return Ok(neg_errno(libc::EINVAL));
    }
    let now = monotonic_ns();
    let deadline = if flags & BPF_F_TIMER_ABS != 0 {
        match m.map.timer_clock(slot) {
            Some(CLOCK_REALTIME) => {
                let off = clock_ns(libc::CLOCK_REALTIME).wrapping_sub(now);
                a[1].saturating_sub(off)
            }
            Some(CLOCK_BOOTTIME) => {
                let off = clock_ns(libc::CLOCK_BOOTTIME).wrapping_sub(now);
                a[1].saturating_sub(off)
            }
            _ => a[1],
        }
    } else {
        now.saturating_add(a[1])
    };
    Ok(ret(m.map.timer_start(
        slot,
        deadline,
        flags & BPF_F_TIMER_CPU_PIN != 0,
    )))
}

/// `bpf_timer_cancel(timer)`: 1 when it was armed, 0 when not, -EDEADLK from its
/// own callback, -EINVAL when not initialised.
pub(super) fn cancel(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let (m, slot) = timer_at(ctx.maps, CANCEL, a[0])?;
    if ctx.timer_cb == Some((m.info.id, slot)) {
        return Ok(neg_errno(libc::EDEADLK));
    }
    Ok(match m.map.timer_cancel(slot) {
        Ok(armed) => u64::from(armed),
        Err(e) => e as i64 as u64,
    })
}

/// Byte offset of the `struct bpf_timer` in values of BTF type `type_id`, found as
/// the kernel's `btf_parse_fields` does: in the value's members, nested structs and
/// unions included. With more than one (which kernel 6.18 accepts at map creation),
/// the first: the helpers trap on the others.
pub fn btf_timer_offset(btf: &loader::btf::Btf, type_id: u32) -> Option<u32> {
    let mut found = None;
    find_timer(btf, type_id, 0, 0, &mut found);
    found
}

/// Whether values of map type `map_type` may hold a `bpf_timer` (the kernel's
/// `map_check_btf` refuses the others with EOPNOTSUPP; libbpf then creates the map
/// without BTF).
pub fn map_type_holds_timers(map_type: u32) -> bool {
    use crate::maptable::types;
    matches!(map_type, types::HASH | types::LRU_HASH | types::ARRAY)
}

fn find_timer(
    btf: &loader::btf::Btf,
    type_id: u32,
    base: u32,
    depth: u32,
    found: &mut Option<u32>,
) {
    use loader::btf::BtfKind;
    if depth > 32 || found.is_some() {
        return;
    }
    let Ok((id, t)) = btf.resolved_type(type_id) else {
        return;
    };
    match &t.kind {
        BtfKind::Struct { members, .. } | BtfKind::Union { members, .. } => {
            if matches!(t.kind, BtfKind::Struct { .. })
                && btf.type_name(id).is_ok_and(|n| n == "bpf_timer")
            {
                *found = Some(base);
                return;
            }
            for m in members {
                let bits = m.bit_offset(t.kind_flag);
                if bits % 8 == 0 {
                    find_timer(btf, m.type_id, base + bits / 8, depth + 1, found);
                }
            }
        }
        BtfKind::Array { elem_type, .. } => find_timer(btf, *elem_type, base, depth + 1, found),
        _ => {}
    }
}
