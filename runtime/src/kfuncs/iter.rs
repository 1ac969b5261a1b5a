//! Open-coded number iterators (kernel/bpf/bpf_iter.c): `bpf_iter_num_new`,
//! `bpf_iter_num_next`, `bpf_iter_num_destroy`, behind libbpf's `bpf_for` and
//! `bpf_repeat`. The iterator is the program's 8-byte `struct bpf_iter_num`, laid
//! out as the kernel's `struct bpf_iter_num_kern { int cur; int end; }`.

use super::{id, KFUNC_BASE};
use crate::error::TrapKind;
use crate::helpers::{neg_errno, HelperCtx};

/// The kernel's `BPF_MAX_LOOPS`: the most elements one iterator may cover.
const BPF_MAX_LOOPS: i64 = 8 * 1024 * 1024;

fn state<'c>(
    ctx: &'c mut HelperCtx<'_, '_>,
    kfunc: i32,
    addr: u64,
) -> Result<&'c mut [u8], TrapKind> {
    ctx.bytes_mut(KFUNC_BASE + kfunc, addr, 8)
}

fn put(s: &mut [u8], cur: i32, end: i32) {
    s[..4].copy_from_slice(&cur.to_ne_bytes());
    s[4..8].copy_from_slice(&end.to_ne_bytes());
}

pub(super) fn num_new(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let s = state(ctx, id::BPF_ITER_NUM_NEW, a[0])?;
    let (start, end) = (a[1] as i32, a[2] as i32);
    if start > end {
        put(s, 0, 0);
        return Ok(neg_errno(libc::EINVAL));
    }
    if end as i64 - start as i64 > BPF_MAX_LOOPS {
        put(s, 0, 0);
        return Ok(neg_errno(libc::E2BIG));
    }
    // next() increments first.
    put(s, start.wrapping_sub(1), end);
    Ok(0)
}

pub(super) fn num_next(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let s = state(ctx, id::BPF_ITER_NUM_NEXT, a[0])?;
    let cur = i32::from_ne_bytes([s[0], s[1], s[2], s[3]]);
    let end = i32::from_ne_bytes([s[4], s[5], s[6], s[7]]);
    // The kernel compares the wrapped int cur + 1, widened.
    if cur.wrapping_add(1) as i64 >= end as i64 {
        put(s, 0, 0);
        return Ok(0);
    }
    put(s, cur.wrapping_add(1), end);
    // A pointer to `cur`, the iterator's first field.
    Ok(a[0])
}

pub(super) fn num_destroy(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let s = state(ctx, id::BPF_ITER_NUM_DESTROY, a[0])?;
    put(s, 0, 0);
    Ok(0)
}
