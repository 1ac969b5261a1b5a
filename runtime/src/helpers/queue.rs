//! bpf_map_push_elem, bpf_map_pop_elem, bpf_map_peek_elem (queue, stack and bloom
//! filter maps) and bpf_map_lookup_percpu_elem.

use super::HelperCtx;
use crate::error::TrapKind;

use isa::helpers::func::{
    map_lookup_percpu_elem as LOOKUP_PERCPU, map_peek_elem as PEEK, map_pop_elem as POP,
    map_push_elem as PUSH,
};
use isa::uapi::{BPF_MAP_TYPE_BLOOM_FILTER, BPF_MAP_TYPE_QUEUE, BPF_MAP_TYPE_STACK};

fn push_pop_type(t: u32) -> bool {
    matches!(
        t,
        BPF_MAP_TYPE_QUEUE | BPF_MAP_TYPE_STACK | BPF_MAP_TYPE_BLOOM_FILTER
    )
}

/// `bpf_map_push_elem(map, value, flags)`: 0, or -E2BIG (full, BPF_ANY), -EINVAL
/// (flags).
pub(super) fn push_elem(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let m = ctx.map(PUSH, a[0])?;
    if !push_pop_type(m.info.map_type) {
        return Err(TrapKind::HelperMapType {
            helper: PUSH,
            map_type: m.info.map_type,
        });
    }
    let value = ctx.bytes(PUSH, a[1], u64::from(m.info.value_size))?;
    // SAFETY: `value` holds value_size readable bytes.
    Ok(unsafe { m.map.prog_push(value.as_ptr(), a[2]) } as u64)
}

fn pop_peek(
    ctx: &mut HelperCtx<'_, '_>,
    a: [u64; 5],
    helper: i32,
    delete: bool,
) -> Result<u64, TrapKind> {
    let m = ctx.map(helper, a[0])?;
    let t = m.info.map_type;
    if !push_pop_type(t) || (delete && t == BPF_MAP_TYPE_BLOOM_FILTER) {
        return Err(TrapKind::HelperMapType {
            helper,
            map_type: t,
        });
    }
    let (map, len) = (m.map.clone(), u64::from(m.info.value_size));
    let value = ctx.bytes_mut(helper, a[1], len)?;
    // SAFETY: `value` holds value_size writable bytes.
    Ok(unsafe { map.prog_pop_peek(value.as_mut_ptr(), delete) } as u64)
}

/// `bpf_map_pop_elem(map, value)`: 0, or -ENOENT with `value` zeroed.
pub(super) fn pop_elem(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    pop_peek(ctx, a, POP, true)
}

/// `bpf_map_peek_elem(map, value)`: 0, or -ENOENT (an empty queue or stack, with
/// `value` zeroed; a value a bloom filter does not hold).
pub(super) fn peek_elem(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    pop_peek(ctx, a, PEEK, false)
}

/// `bpf_map_lookup_percpu_elem(map, key, cpu)`: CPU `cpu`'s value of a per-CPU
/// map, NULL when the key is absent or `cpu` is not below the store's per-CPU
/// slot count (the kernel's nr_cpu_ids).
pub(super) fn lookup_percpu_elem(
    ctx: &mut HelperCtx<'_, '_>,
    a: [u64; 5],
) -> Result<u64, TrapKind> {
    let m = ctx.map(LOOKUP_PERCPU, a[0])?;
    if !isa::uapi::is_percpu_map_type(m.info.map_type) {
        return Err(TrapKind::HelperMapType {
            helper: LOOKUP_PERCPU,
            map_type: m.info.map_type,
        });
    }
    let key = ctx.bytes(LOOKUP_PERCPU, a[1], u64::from(m.info.key_size))?;
    let cpu = a[2] as u32;
    if cpu >= m.map.ncpus() {
        return Ok(0);
    }
    // SAFETY: `key` holds key_size readable bytes; cpu is one of the map's slots.
    Ok(unsafe { m.map.prog_lookup(key.as_ptr(), cpu) } as u64)
}
