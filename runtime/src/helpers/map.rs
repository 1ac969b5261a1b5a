//! bpf_map_lookup_elem, bpf_map_update_elem, bpf_map_delete_elem.

use super::{neg_errno, HelperCtx};
use crate::error::TrapKind;
use crate::maptable::types;

use isa::helpers::func::{
    map_delete_elem as DELETE, map_lookup_elem as LOOKUP, map_update_elem as UPDATE,
};

/// Map types a program may not read or write through these helpers.
fn prog_accessible(map_type: u32) -> bool {
    map_type != types::PROG_ARRAY
}

pub(super) fn lookup_elem(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let m = ctx.map(LOOKUP, a[0])?;
    if !prog_accessible(m.info.map_type) {
        return Err(TrapKind::HelperMapType {
            helper: LOOKUP,
            map_type: m.info.map_type,
        });
    }
    let key = ctx.bytes(LOOKUP, a[1], m.info.key_size as u64)?;
    if matches!(m.info.map_type, types::ARRAY_OF_MAPS | types::HASH_OF_MAPS) {
        // As the kernel: the inner map itself, which the program then passes to
        // the map helpers; NULL for an empty slot or a map not bound at load.
        // SAFETY: `key` holds key_size readable bytes.
        let id = unsafe { m.map.inner_map_id(key.as_ptr()) };
        return Ok(id
            .and_then(|id| ctx.maps.by_id(id))
            .map_or(0, |inner| inner.handle_addr()));
    }
    // SAFETY: `key` holds key_size readable bytes.
    Ok(unsafe { m.map.prog_lookup(key.as_ptr(), ctx.cpu) } as u64)
}

pub(super) fn update_elem(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let m = ctx.map(UPDATE, a[0])?;
    if !prog_accessible(m.info.map_type) || m.read_only() {
        return Err(TrapKind::HelperMapType {
            helper: UPDATE,
            map_type: m.info.map_type,
        });
    }
    let key = ctx.bytes(UPDATE, a[1], m.info.key_size as u64)?.as_ptr();
    let value = ctx.bytes(UPDATE, a[2], m.info.value_size as u64)?.as_ptr();
    // SAFETY: `key` and `value` hold key_size and value_size readable bytes.
    match unsafe { m.map.prog_update(key, value, a[3], ctx.cpu) } {
        Ok(()) => Ok(0),
        Err(e) => Ok(neg_errno(e.errno())),
    }
}

pub(super) fn delete_elem(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let m = ctx.map(DELETE, a[0])?;
    if !prog_accessible(m.info.map_type) || m.read_only() {
        return Err(TrapKind::HelperMapType {
            helper: DELETE,
            map_type: m.info.map_type,
        });
    }
    let key = ctx.bytes(DELETE, a[1], m.info.key_size as u64)?;
    // SAFETY: `key` holds key_size readable bytes.
    match unsafe { m.map.prog_delete(key.as_ptr()) } {
        Ok(()) => Ok(0),
        Err(e) => Ok(neg_errno(e.errno())),
    }
}
