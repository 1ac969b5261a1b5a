//! Events to user space: `bpf_perf_event_output` as XDP programs have it
//! (`bpf_xdp_event_output`, net/core/filter.c, then `__bpf_perf_event_output`,
//! kernel/trace/bpf_trace.c) and the ring buffer helpers (kernel/bpf/ringbuf.c):
//! `bpf_ringbuf_output`, `_reserve`, `_submit`, `_discard`, `_query`.
//!
//! The rings live in the store (`maps/src/ring.rs`), so a consumer in any process
//! that opens it reads the records (`xdp-runner map events`). A perf slot "has an
//! event" when user space wrote any value into it (`map update`), as a perf
//! event fd would in the kernel.

use super::{neg_errno, HelperCtx};
use crate::error::TrapKind;
use crate::maptable::types;
use isa::helpers::func;

const PERF_EVENT_OUTPUT: i32 = func::perf_event_output;
const RINGBUF_OUTPUT: i32 = func::ringbuf_output;
const RINGBUF_RESERVE: i32 = func::ringbuf_reserve;
const RINGBUF_SUBMIT: i32 = func::ringbuf_submit;
const RINGBUF_DISCARD: i32 = func::ringbuf_discard;
const RINGBUF_QUERY: i32 = func::ringbuf_query;

/// `BPF_F_INDEX_MASK`: the perf slot (all ones: `BPF_F_CURRENT_CPU`).
pub const BPF_F_INDEX_MASK: u64 = 0xffff_ffff;
/// `BPF_F_CTXLEN_MASK`: how many packet bytes follow the data in the record.
pub const BPF_F_CTXLEN_MASK: u64 = 0xf_ffff << 32;
/// `BPF_RB_NO_WAKEUP`, `BPF_RB_FORCE_WAKEUP`: the only flags of bpf_ringbuf_output.
pub const BPF_RB_NO_WAKEUP: u64 = 1;
pub const BPF_RB_FORCE_WAKEUP: u64 = 2;
/// `bpf_ringbuf_query` flags.
pub const BPF_RB_AVAIL_DATA: u64 = 0;
pub const BPF_RB_RING_SIZE: u64 = 1;
pub const BPF_RB_CONS_POS: u64 = 2;
pub const BPF_RB_PROD_POS: u64 = 3;
/// `RINGBUF_MAX_RECORD_SZ`: larger reservations fail.
const RINGBUF_MAX_RECORD_SZ: u64 = (u32::MAX >> 2) as u64;

/// `bpf_perf_event_output(ctx, map, flags, data, size)`.
///
/// As `bpf_xdp_event_output`: flags outside the index and ctx-length masks give
/// -EINVAL; a ctx length above the packet's gives -EFAULT; then the slot (the
/// worker's own for `BPF_F_CURRENT_CPU`) past `max_entries` gives -E2BIG, an empty
/// slot -ENOENT, and a full slot ring -ENOSPC (the record is counted as lost). The
/// record is the data followed by the first ctx-length bytes of the packet.
pub(super) fn perf_event_output(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    if a[0] != ctx.pkt.md_addr() {
        return Err(TrapKind::HelperBadPointer {
            helper: PERF_EVENT_OUTPUT,
            addr: a[0],
            len: crate::xdp::XdpMd::SIZE as u64,
        });
    }
    let m = ctx.map(PERF_EVENT_OUTPUT, a[1])?;
    if m.info.map_type != types::PERF_EVENT_ARRAY {
        return Err(TrapKind::HelperMapType {
            helper: PERF_EVENT_OUTPUT,
            map_type: m.info.map_type,
        });
    }
    let flags = a[2];
    let data = ctx.bytes(PERF_EVENT_OUTPUT, a[3], a[4])?;
    if flags & !(BPF_F_CTXLEN_MASK | BPF_F_INDEX_MASK) != 0 {
        return Ok(neg_errno(libc::EINVAL));
    }
    let md = *ctx.pkt.md();
    let pkt_len = u64::from(md.data_end - md.data);
    let ctx_len = (flags & BPF_F_CTXLEN_MASK) >> 32;
    if ctx_len > pkt_len {
        return Ok(neg_errno(libc::EFAULT));
    }
    let pkt = ctx.bytes(PERF_EVENT_OUTPUT, u64::from(md.data), ctx_len)?;
    match m
        .map
        .perf_output(flags & BPF_F_INDEX_MASK, ctx.cpu, &[data, pkt])
    {
        Ok(()) => Ok(0),
        // perf_output_begin: no room in the ring, the record is lost.
        Err(maps::MapError::RingFull { .. }) => Ok(neg_errno(libc::ENOSPC)),
        Err(e) => Ok(neg_errno(e.errno())),
    }
}

/// The RINGBUF map in argument register `value`, or a trap.
fn ring<'m>(
    ctx: &'m HelperCtx<'_, '_>,
    helper: i32,
    value: u64,
) -> Result<&'m crate::maptable::BoundMap, TrapKind> {
    let m = ctx.map(helper, value)?;
    if m.info.map_type != types::RINGBUF {
        return Err(TrapKind::HelperMapType {
            helper,
            map_type: m.info.map_type,
        });
    }
    Ok(m)
}

/// `bpf_ringbuf_output(map, data, size, flags)`: 0, -EINVAL for flags other than
/// the wakeup ones, -EAGAIN when the record does not fit.
pub(super) fn ringbuf_output(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let m = ring(ctx, RINGBUF_OUTPUT, a[0])?;
    let data = ctx.bytes(RINGBUF_OUTPUT, a[1], a[2])?;
    if a[3] & !(BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP) != 0 {
        return Ok(neg_errno(libc::EINVAL));
    }
    if a[2] > RINGBUF_MAX_RECORD_SZ {
        return Ok(neg_errno(libc::EAGAIN));
    }
    match m.map.ringbuf_output(&[data]) {
        Ok(()) => Ok(0),
        Err(e) => Ok(neg_errno(e.errno())),
    }
}

/// `bpf_ringbuf_reserve(map, size, flags)`: a pointer to `size` bytes of the ring
/// that the program fills and then submits or discards; NULL when flags are not 0
/// or there is no room.
pub(super) fn ringbuf_reserve(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let m = ring(ctx, RINGBUF_RESERVE, a[0])?;
    // A run holds at most MAX_RING_RECORDS records: past them the ring reads as full.
    if a[2] != 0 || a[1] > RINGBUF_MAX_RECORD_SZ || !ctx.regions.records.has_room() {
        return Ok(0);
    }
    let rec = m.map.ringbuf_reserve(a[1] as u32) as u64;
    if rec != 0 && !ctx.regions.records.hold(m, rec, a[1]) {
        // Not a ring of this run's table (cannot happen: `ring` resolved it there).
        m.map.ringbuf_commit(rec as usize as *mut u8, true);
        return Ok(0);
    }
    Ok(rec)
}

fn commit(ctx: &HelperCtx<'_, '_>, helper: i32, rec: u64, discard: bool) -> Result<u64, TrapKind> {
    // The kernel's verifier lets only a record this program reserved and has not yet
    // released through; anything else (a record of another run or process, one
    // already submitted, an address inside a record) stops the run here.
    let bad = TrapKind::HelperBadPointer {
        helper,
        addr: rec,
        len: 0,
    };
    let m = ctx.regions.records.release(rec).ok_or(bad)?;
    if !m.map.ringbuf_commit(rec as usize as *mut u8, discard) {
        return Err(bad);
    }
    Ok(0)
}

/// `bpf_ringbuf_submit(data, flags)`: commits a reserved record (flags only steer
/// wake-ups, which consumers here do not need).
pub(super) fn ringbuf_submit(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    commit(ctx, RINGBUF_SUBMIT, a[0], false)
}

/// `bpf_ringbuf_discard(data, flags)`: releases a reserved record unread.
pub(super) fn ringbuf_discard(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    commit(ctx, RINGBUF_DISCARD, a[0], true)
}

/// `bpf_ringbuf_query(map, flags)`: available bytes, ring size, consumer or producer
/// position; 0 for any other flags.
pub(super) fn ringbuf_query(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let m = ring(ctx, RINGBUF_QUERY, a[0])?;
    let (cons, prod) = ctx.maps.ring_positions(m).unwrap_or((0, 0));
    Ok(match a[1] {
        BPF_RB_AVAIL_DATA => prod.wrapping_sub(cons),
        BPF_RB_RING_SIZE => u64::from(m.info.max_entries),
        BPF_RB_CONS_POS => cons,
        BPF_RB_PROD_POS => prod,
        _ => 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maptable::{BoundMap, MapTable};
    use crate::memory::Regions;
    use crate::xdp::Packet;

    const NOENT: u64 = (-2i64) as u64;

    fn bind(m: maps::Map) -> BoundMap {
        BoundMap {
            name: m.info().name,
            info: m.info(),
            map: m,
        }
    }

    /// A table with a perf_event_array of 2 slots (map 0) and a 4096-byte ring (map 1).
    fn table(store: &maps::Store) -> MapTable {
        let perf = store
            .create_map(&maps::MapDef {
                map_type: types::PERF_EVENT_ARRAY,
                key_size: 4,
                value_size: 4,
                max_entries: 2,
                name: "perf".into(),
                ..maps::MapDef::default()
            })
            .expect("perf");
        let ring = store
            .create_map(&maps::MapDef {
                map_type: types::RINGBUF,
                max_entries: 4096,
                name: "ring".into(),
                ..maps::MapDef::default()
            })
            .expect("ring");
        MapTable::new(vec![bind(perf), bind(ring)])
    }

    /// Runs `f` with a helper context over `table`, a 100-byte packet of 0..100 and a
    /// 64-byte stack (returned to `f` as its address).
    fn with_ctx<R>(table: &MapTable, f: impl FnOnce(&mut HelperCtx<'_, '_>, u64) -> R) -> R {
        let data: Vec<u8> = (0..100u8).collect();
        let mut pkt = Packet::new(&data).expect("packet");
        let mut stack = [0u8; 64];
        for (i, b) in stack.iter_mut().enumerate() {
            *b = 0xa0 + i as u8;
        }
        let lo = stack.as_mut_ptr() as usize;
        let records = crate::maptable::RingRecords::new(table);
        let regions = Regions {
            stack_lo: lo,
            stack_hi: lo + stack.len(),
            ctx: pkt.md_addr() as usize,
            values: table.value_areas(),
            records: &records,
        };
        let mut rng = 1;
        let mut ctx = HelperCtx {
            regions: &regions,
            pkt: &mut pkt,
            maps: table,
            cpu: 1,
            rng: &mut rng,
            prog_id: 0,
            timer_cb: None,
        };
        f(&mut ctx, lo as u64)
    }

    fn handle(t: &MapTable, i: usize) -> u64 {
        t.get(i).expect("map").handle_addr()
    }

    #[test]
    fn perf_event_output_follows_bpf_xdp_event_output() {
        let store = maps::Store::anonymous(maps::StoreOptions {
            size: 1 << 20,
            ncpus: Some(2),
        })
        .expect("store");
        let t = table(&store);
        let perf = handle(&t, 0);
        with_ctx(&t, |ctx, stack| {
            let md = ctx.pkt.md_addr();
            let out = |ctx: &mut HelperCtx<'_, '_>, flags: u64, len: u64| {
                perf_event_output(ctx, [md, perf, flags, stack, len]).expect("no trap")
            };
            // Empty slot first, then the other errors in the kernel's order.
            assert_eq!(out(ctx, BPF_F_INDEX_MASK, 4), NOENT);
            assert_eq!(out(ctx, 1 << 52, 4), neg_errno(libc::EINVAL), "flag bit 52");
            assert_eq!(out(ctx, 2 | (1 << 60), 4), neg_errno(libc::EINVAL));
            assert_eq!(
                out(ctx, 101 << 32, 4),
                neg_errno(libc::EFAULT),
                "ctx > packet"
            );
            assert_eq!(out(ctx, 2, 4), neg_errno(libc::E2BIG));
            for slot in 0u32..2 {
                ctx.maps
                    .get(0)
                    .unwrap()
                    .map
                    .update(&slot.to_ne_bytes(), &7u32.to_ne_bytes(), 0)
                    .expect("attach");
            }
            // BPF_F_CURRENT_CPU is worker 1's slot; 100 packet bytes after 4 of data.
            assert_eq!(out(ctx, BPF_F_INDEX_MASK | (100 << 32), 4), 0);
            assert_eq!(out(ctx, 0, 0), 0, "an empty record");
            // A data pointer outside the program's memory traps.
            assert!(perf_event_output(ctx, [md, perf, 0, 8, 4]).is_err());
            assert!(perf_event_output(ctx, [md + 8, perf, 0, stack, 4]).is_err());
        });
        let m = &t.get(0).unwrap().map;
        let mut got = Vec::new();
        m.perf_consume(1, 10, |r| got.push(r.to_vec()))
            .expect("consume");
        let mut want = vec![0xa0, 0xa1, 0xa2, 0xa3];
        want.extend(0..100u8);
        assert_eq!(got, vec![want]);
        got.clear();
        m.perf_consume(0, 10, |r| got.push(r.to_vec()))
            .expect("consume");
        assert_eq!(got, vec![Vec::<u8>::new()]);
    }

    #[test]
    fn ring_records_are_reserved_writable_and_released_once() {
        let store = maps::Store::anonymous(maps::StoreOptions {
            size: 1 << 20,
            ncpus: Some(1),
        })
        .expect("store");
        let t = table(&store);
        let ring = handle(&t, 1);
        let perf = handle(&t, 0);
        with_ctx(&t, |ctx, stack| {
            let md = *ctx.pkt.md();
            let q = |ctx: &mut HelperCtx<'_, '_>, f: u64| {
                ringbuf_query(ctx, [ring, f, 0, 0, 0]).expect("query")
            };
            assert_eq!(
                ringbuf_output(ctx, [ring, stack, 5, BPF_RB_FORCE_WAKEUP, 0]),
                Ok(0)
            );
            assert_eq!(
                ringbuf_output(ctx, [ring, stack, 5, 4, 0]),
                Ok(neg_errno(libc::EINVAL))
            );
            assert_eq!(
                ringbuf_output(ctx, [ring, stack, 5000, 0, 0]).map_err(|_| ()),
                Err(()),
                "5000 bytes of a 64-byte stack"
            );
            assert_eq!(q(ctx, BPF_RB_AVAIL_DATA), 16);
            assert_eq!(q(ctx, BPF_RB_PROD_POS), 16);
            assert_eq!(q(ctx, BPF_RB_CONS_POS), 0);
            assert_eq!(q(ctx, BPF_RB_RING_SIZE), 4096);
            assert_eq!(q(ctx, 4), 0);
            assert_eq!(ringbuf_reserve(ctx, [ring, 8, 1, 0, 0]), Ok(0), "flags");
            assert_eq!(
                ringbuf_reserve(ctx, [ring, 4089, 0, 0, 0]),
                Ok(0),
                "too big"
            );
            let rec = ringbuf_reserve(ctx, [ring, 24, 0, 0, 0]).expect("reserve");
            assert_ne!(rec, 0);
            // The record is the program's to write (and the packet still is).
            assert!(ctx.regions.check(&md, rec, 24, true));
            assert!(ctx.regions.check(&md, md.data as u64, 8, true));
            ctx.bytes_mut(0, rec, 24).expect("writable").fill(0x5a);
            assert_eq!(q(ctx, BPF_RB_AVAIL_DATA), 16 + 32);
            assert_eq!(ringbuf_submit(ctx, [rec, BPF_RB_NO_WAKEUP, 0, 0, 0]), Ok(0));
            assert!(ringbuf_submit(ctx, [rec, 0, 0, 0, 0]).is_err(), "twice");
            assert!(ringbuf_discard(ctx, [rec, 0, 0, 0, 0]).is_err(), "released");
            let other = ringbuf_reserve(ctx, [ring, 8, 0, 0, 0]).expect("reserve");
            assert!(
                ringbuf_discard(ctx, [other + 8, 0, 0, 0, 0]).is_err(),
                "not a record"
            );
            assert!(
                ringbuf_discard(ctx, [stack, 0, 0, 0, 0]).is_err(),
                "not the ring"
            );
            assert_eq!(ringbuf_discard(ctx, [other, 0, 0, 0, 0]), Ok(0));
            // Ring helpers on a perf map, perf on a ring: a wrong map type.
            assert!(ringbuf_query(ctx, [perf, 0, 0, 0, 0]).is_err());
            assert!(perf_event_output(ctx, [ctx.pkt.md_addr(), ring, 0, stack, 1]).is_err());
        });
        let mut got = Vec::new();
        t.get(1)
            .unwrap()
            .map
            .ringbuf_consume(10, |r| got.push(r.to_vec()))
            .expect("consume");
        assert_eq!(
            got,
            vec![vec![0xa0, 0xa1, 0xa2, 0xa3, 0xa4], vec![0x5a; 24]]
        );
    }

    /// A record is program memory only between its reserve and its submit or discard,
    /// only for its reserved size, and only in the run that reserved it; what a run
    /// still holds when it ends is discarded, so consumers are not stopped by it.
    #[test]
    fn ring_records_are_program_memory_only_while_held() {
        let store = maps::Store::anonymous(maps::StoreOptions {
            size: 1 << 20,
            ncpus: Some(1),
        })
        .expect("store");
        let t = table(&store);
        let ring = handle(&t, 1);
        with_ctx(&t, |ctx, _| {
            let md = *ctx.pkt.md();
            let rec = ringbuf_reserve(ctx, [ring, 20, 0, 0, 0]).expect("reserve");
            assert_ne!(rec, 0);
            assert!(ctx.regions.check(&md, rec, 20, true));
            assert!(ctx.regions.check(&md, rec + 16, 4, false));
            assert!(!ctx.regions.check(&md, rec, 21, false), "past its end");
            assert!(!ctx.regions.check(&md, rec + 20, 1, false), "past its end");
            assert!(!ctx.regions.check(&md, rec - 8, 8, false), "its header");
            // Another run (another thread or process) cannot release it.
            with_ctx(&t, |other, _| {
                assert!(ringbuf_submit(other, [rec, 0, 0, 0, 0]).is_err());
                assert!(!other.regions.check(&md, rec, 1, false));
            });
            assert_eq!(ringbuf_submit(ctx, [rec, 0, 0, 0, 0]), Ok(0));
            assert!(!ctx.regions.check(&md, rec, 8, true), "submitted");
            assert!(!ctx.regions.check(&md, rec, 1, false), "submitted");
            let gone = ringbuf_reserve(ctx, [ring, 8, 0, 0, 0]).expect("reserve");
            assert_eq!(ringbuf_discard(ctx, [gone, 0, 0, 0, 0]), Ok(0));
            assert!(!ctx.regions.check(&md, gone, 8, true), "discarded");
            // At most MAX_RING_RECORDS held at once: then the ring reads as full.
            let held: Vec<u64> = (0..crate::maptable::MAX_RING_RECORDS)
                .map(|_| ringbuf_reserve(ctx, [ring, 8, 0, 0, 0]).expect("reserve"))
                .collect();
            assert!(held.iter().all(|&r| r != 0));
            assert_eq!(ringbuf_reserve(ctx, [ring, 8, 0, 0, 0]), Ok(0));
            assert_eq!(ringbuf_submit(ctx, [held[3], 0, 0, 0, 0]), Ok(0));
            assert!(held
                .iter()
                .enumerate()
                .all(|(i, &r)| ctx.regions.check(&md, r, 8, true) == (i != 3)));
            // The run ends holding the others.
        });
        with_ctx(&t, |ctx, stack| {
            assert_eq!(ringbuf_output(ctx, [ring, stack, 4, 0, 0]), Ok(0));
        });
        let mut got = Vec::new();
        t.get(1)
            .unwrap()
            .map
            .ringbuf_consume(100, |r| got.push(r.len()))
            .expect("consume");
        assert_eq!(got, vec![20, 8, 4], "the held records were discarded");
    }
}
