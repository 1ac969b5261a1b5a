//! Conntrack kfuncs (net/netfilter/nf_conntrack_bpf.c) over a table kept in the store:
//! `bpf_xdp_ct_lookup`, `bpf_xdp_ct_alloc`, `bpf_ct_insert_entry`, `bpf_ct_release`,
//! `bpf_ct_set_timeout`, `bpf_ct_change_timeout`, `bpf_ct_set_status`,
//! `bpf_ct_change_status`. (`bpf_ct_set_nat_info` is not implemented: NAT is not
//! modelled, and loading a program calling it names it.)
//!
//! What is modelled (ARCHITECTURE.md, "Conntrack"):
//! - The store's connection table is a hash map named [`TABLE_NAME`], created when an
//!   object calling these kfuncs is loaded and shared by every object and process of
//!   the store. Its key is the original-direction tuple ([`Tuple::key`]); its value an
//!   image of the kernel's `struct nf_conn` (Linux 6.18's layout, 248 bytes:
//!   `timeout` at 8, `zone` at 12, both `tuplehash[].tuple`s at 32 and 88, `status`
//!   at 128, `mark` at 168), which the `struct nf_conn *` a kfunc returns points to,
//!   so programs read `ct->status`, `ct->mark` and the tuples, and write `ct->mark`,
//!   as in the kernel. A lookup by the reply tuple finds the entry (`opts->dir` 1).
//! - Allocated entries (`bpf_xdp_ct_alloc`, not yet inserted) live in a second map,
//!   [`PENDING_NAME`], until `bpf_ct_insert_entry` moves them into the table
//!   (`-EEXIST` there, as the kernel's, returns NULL and frees the entry) or
//!   `bpf_ct_release` frees them. The kernel's verifier makes every program release
//!   or insert what it allocates; a program it would refuse may leave entries there,
//!   at most [`PENDING_ENTRIES`], after which allocation fails with `-ENOMEM`.
//! - Timeouts: `timeout` holds jiffies of a 1000 Hz clock (CLOCK_MONOTONIC
//!   milliseconds, shared by the store's processes): relative until insertion,
//!   absolute after, as the kernel's. An expired entry is not found, and a lookup
//!   that meets one removes it (the kernel's `nf_ct_gc_expired`).
//! - Status: `bpf_ct_set/change_status` follow `nf_ct_change_status_common` (-EBUSY
//!   for the unchangeable bits, SEEN_REPLY and ASSURED only set); insertion sets
//!   IPS_CONFIRMED.
//! - References need no counting: an entry lives in the store until it expires.
//! - Network namespaces and zones: the caller's namespace only (`netns_id` -1;
//!   another id is `-ENONET`, as for a namespace that does not exist); zones are part
//!   of the key.

use std::sync::atomic::{AtomicU32, Ordering};

use super::{id, KFUNC_BASE};
use crate::error::TrapKind;
use crate::helpers::{neg_errno, xdp, HelperCtx};
use crate::maptable::BoundMap;

/// The store's connection table.
pub const TABLE_NAME: &str = "nf_conntrack";
/// Allocated entries not yet inserted.
pub const PENDING_NAME: &str = "nf_ct_pending";
/// The table's key: family, L4 protocol, zone id (native order), source address (16
/// bytes, IPv4 in the first 4), destination address, source and destination ports
/// (network order).
pub const KEY_SIZE: u32 = 40;
/// `sizeof(struct nf_conn)` in Linux 6.18.
pub const NF_CONN_SIZE: u32 = 248;
/// Offsets in `struct nf_conn`.
pub const NF_CONN_TIMEOUT: usize = 8;
pub const NF_CONN_ZONE: usize = 12;
pub const NF_CONN_TUPLE_ORIGINAL: usize = 32;
pub const NF_CONN_TUPLE_REPLY: usize = 88;
pub const NF_CONN_STATUS: usize = 128;
pub const NF_CONN_MARK: usize = 168;
/// `ext`: the runtime keeps a pending entry's key there.
const NF_CONN_EXT: usize = 176;
/// `proto`, zeroed by allocation.
const NF_CONN_PROTO: usize = 184;
/// Entries of the tables this runtime creates.
pub const TABLE_ENTRIES: u32 = 4096;
pub const PENDING_ENTRIES: u32 = 256;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// `sizeof(struct bpf_ct_opts)`, and the older 12-byte layout the kernel accepts.
const OPTS_SZ: u64 = 16;
const OPTS_SZ_OLD: u64 = 12;
/// `BPF_F_CURRENT_NETNS`.
const CURRENT_NETNS: i32 = -1;
/// Jiffies per second of the runtime's conntrack clock.
const HZ: u32 = 1000;
/// The timeout `bpf_xdp_ct_alloc` gives, in seconds.
const ALLOC_TIMEOUT_S: u32 = 10;

/// `enum ip_conntrack_status` bits.
pub mod status {
    pub const EXPECTED: u64 = 1 << 0;
    pub const SEEN_REPLY: u64 = 1 << 1;
    pub const ASSURED: u64 = 1 << 2;
    pub const CONFIRMED: u64 = 1 << 3;
    pub const DYING: u64 = 1 << 9;
    /// `IPS_UNCHANGEABLE_MASK`: NAT bits, EXPECTED, CONFIRMED, DYING, SEQ_ADJUST,
    /// TEMPLATE, UNTRACKED, OFFLOAD, HW_OFFLOAD.
    pub const UNCHANGEABLE: u64 =
        0x30 | 0x180 | EXPECTED | CONFIRMED | DYING | 0x40 | 0x800 | 0x1000 | 0x4000 | 0x8000;
    /// `__IPS_MAX_BIT`.
    pub const MAX_BIT: u32 = 16;
}

fn def(name: &str, key_size: u32, max_entries: u32) -> maps::MapDef {
    maps::MapDef {
        map_type: crate::maptable::types::HASH,
        key_size,
        value_size: NF_CONN_SIZE,
        max_entries,
        name: name.to_string(),
        ..maps::MapDef::default()
    }
}

/// The connection table's and the pending table's definitions.
pub fn table_defs() -> [maps::MapDef; 2] {
    [
        def(TABLE_NAME, KEY_SIZE, TABLE_ENTRIES),
        def(PENDING_NAME, 8, PENDING_ENTRIES),
    ]
}

/// Creates the store's connection and pending tables, unless they exist.
pub fn ensure_tables(store: &maps::Store) -> Result<(), crate::LoadError> {
    for def in table_defs() {
        if store.map_by_name(&def.name).is_err() {
            store
                .create_map(&def)
                .map_err(|source| crate::LoadError::Map {
                    name: def.name.clone(),
                    source,
                })?;
        }
    }
    Ok(())
}

/// Whether `info` is the connection table (0) or the pending table (1), by name and
/// shape.
pub fn table_kind(info: &maps::MapInfo) -> Option<usize> {
    table_defs().iter().position(|d| {
        info.name == d.name
            && info.map_type == d.map_type
            && info.key_size == d.key_size
            && info.value_size == d.value_size
    })
}

/// The conntrack clock: jiffies at [`HZ`].
fn now() -> u32 {
    (crate::helpers::misc_clock_ns(libc::CLOCK_MONOTONIC) / 1_000_000) as u32
}

/// A connection's original-direction tuple and zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple {
    pub l3num: u16,
    pub proto: u8,
    pub zone: u16,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: [u8; 2],
    pub dport: [u8; 2],
}

impl Tuple {
    /// From a `struct bpf_sock_tuple` of 12 (IPv4) or 36 (IPv6) bytes: the kernel's
    /// `bpf_nf_ct_tuple_parse` (EPROTO, then EAFNOSUPPORT).
    pub fn parse(t: &[u8], proto: u8, zone: u16) -> Result<Tuple, i32> {
        if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
            return Err(libc::EPROTO);
        }
        let (l3num, alen) = match t.len() {
            12 => (AF_INET, 4),
            36 => (AF_INET6, 16),
            _ => return Err(libc::EAFNOSUPPORT),
        };
        let mut x = Tuple {
            l3num,
            proto,
            zone,
            src: [0; 16],
            dst: [0; 16],
            sport: [t[2 * alen], t[2 * alen + 1]],
            dport: [t[2 * alen + 2], t[2 * alen + 3]],
        };
        x.src[..alen].copy_from_slice(&t[..alen]);
        x.dst[..alen].copy_from_slice(&t[alen..2 * alen]);
        Ok(x)
    }

    pub fn reversed(&self) -> Tuple {
        Tuple {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            ..*self
        }
    }

    /// The table key.
    pub fn key(&self) -> [u8; KEY_SIZE as usize] {
        let mut k = [0u8; KEY_SIZE as usize];
        k[0] = self.l3num as u8;
        k[1] = self.proto;
        k[2..4].copy_from_slice(&self.zone.to_ne_bytes());
        k[4..20].copy_from_slice(&self.src);
        k[20..36].copy_from_slice(&self.dst);
        k[36..38].copy_from_slice(&self.sport);
        k[38..40].copy_from_slice(&self.dport);
        k
    }

    /// Writes the tuple as the kernel's `struct nf_conntrack_tuple` at `at`.
    fn write(&self, img: &mut [u8], at: usize, dir: u8) {
        let t = &mut img[at..at + 40];
        t[0..16].copy_from_slice(&self.src);
        t[16..18].copy_from_slice(&self.sport);
        t[18..20].copy_from_slice(&self.l3num.to_ne_bytes());
        t[20..36].copy_from_slice(&self.dst);
        t[36..38].copy_from_slice(&self.dport);
        t[38] = self.proto;
        t[39] = dir;
    }

    /// The original tuple of an entry's image.
    fn of_image(img: &[u8]) -> Tuple {
        let t = &img[NF_CONN_TUPLE_ORIGINAL..NF_CONN_TUPLE_ORIGINAL + 40];
        let mut x = Tuple {
            l3num: u16::from_ne_bytes([t[18], t[19]]),
            proto: t[38],
            zone: u16::from_ne_bytes([img[NF_CONN_ZONE], img[NF_CONN_ZONE + 1]]),
            src: [0; 16],
            dst: [0; 16],
            sport: [t[16], t[17]],
            dport: [t[36], t[37]],
        };
        x.src.copy_from_slice(&t[0..16]);
        x.dst.copy_from_slice(&t[20..36]);
        x
    }
}

/// Checked `struct bpf_ct_opts` (the kernel's checks, in its order, up to the tuple).
struct Opts {
    netns_id: i32,
    l4proto: u8,
    zone: u16,
}

/// Reads and checks opts and the tuple, as `__bpf_nf_ct_lookup` and
/// `__bpf_nf_ct_alloc_entry` do; `Err(errno)` for what the program gets in
/// `opts->error`.
fn parse_args(
    ctx: &HelperCtx<'_, '_>,
    k: i32,
    a: [u64; 5],
    lookup: bool,
) -> Result<Result<(Opts, Tuple), i32>, TrapKind> {
    let (tuple_addr, tuple_len, opts_addr, opts_len) =
        (a[1], a[2] as u32 as u64, a[3], a[4] as u32 as u64);
    if opts_addr == 0 || tuple_addr == 0 {
        return Ok(Err(libc::EINVAL));
    }
    if opts_len != OPTS_SZ && opts_len != OPTS_SZ_OLD {
        return Ok(Err(libc::EINVAL));
    }
    let o = ctx.bytes(k, opts_addr, opts_len)?;
    let netns_id = i32::from_ne_bytes([o[0], o[1], o[2], o[3]]);
    let l4proto = o[8];
    // 16 bytes: ct_zone_id (u16) at 10, ct_zone_dir at 12, reserved[3] at 13;
    // 12 bytes: reserved[2] at 10 (where ct_zone_id is now).
    let (zone, ok) = if opts_len == OPTS_SZ {
        (
            u16::from_ne_bytes([o[10], o[11]]),
            o[13..16].iter().all(|b| *b == 0),
        )
    } else {
        (0, o[10..12].iter().all(|b| *b == 0))
    };
    if !ok {
        return Ok(Err(libc::EINVAL));
    }
    if lookup && l4proto != IPPROTO_TCP && l4proto != IPPROTO_UDP {
        return Ok(Err(libc::EPROTO));
    }
    if netns_id < CURRENT_NETNS {
        return Ok(Err(libc::EINVAL));
    }
    // The tuple's bytes are read only for the sizes the kernel accepts.
    let t = if tuple_len == 12 || tuple_len == 36 {
        ctx.bytes(k, tuple_addr, tuple_len)?
    } else {
        &[][..]
    };
    let tuple = match Tuple::parse(t, l4proto, zone) {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    if netns_id >= 0 {
        return Ok(Err(libc::ENONET));
    }
    Ok(Ok((
        Opts {
            netns_id,
            l4proto,
            zone,
        },
        tuple,
    )))
}

/// Sets `opts->error` when opts is there (whatever size the program declared, as the
/// kernel does).
fn set_error(ctx: &mut HelperCtx<'_, '_>, k: i32, a: [u64; 5], e: i32) -> Result<(), TrapKind> {
    if a[3] != 0 {
        ctx.bytes_mut(k, a[3], 8)?[4..8].copy_from_slice(&(-e).to_ne_bytes());
    }
    Ok(())
}

/// The entry of `table` under `key` that has not expired (an expired one is removed).
fn find(table: &BoundMap, key: &[u8; KEY_SIZE as usize], cpu: u32) -> Option<u64> {
    // SAFETY: `key` holds the table's key_size bytes.
    let v = unsafe { table.map.prog_lookup(key.as_ptr(), cpu) };
    if v.is_null() {
        return None;
    }
    // SAFETY: `v` is a value of the table, NF_CONN_SIZE bytes, live in the store.
    let timeout = unsafe { std::ptr::read_unaligned(v.add(NF_CONN_TIMEOUT) as *const u32) };
    if (timeout.wrapping_sub(now()) as i32) <= 0 {
        // SAFETY: as above.
        let _ = unsafe { table.map.prog_delete(key.as_ptr()) };
        return None;
    }
    Some(v as u64)
}

pub(super) fn xdp_ct_lookup(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    const K: i32 = KFUNC_BASE + id::BPF_XDP_CT_LOOKUP;
    xdp::check_ctx(ctx, K, a[0])?;
    let (_, tuple) = match parse_args(ctx, K, a, true)? {
        Ok(x) => x,
        Err(e) => {
            set_error(ctx, K, a, e)?;
            return Ok(0);
        }
    };
    let found = ctx.maps.conntrack().and_then(|(table, _)| {
        [(0u8, tuple), (1u8, tuple.reversed())]
            .into_iter()
            .find_map(|(dir, t)| find(table, &t.key(), ctx.cpu).map(|v| (dir, v)))
    });
    match found {
        Some((dir, v)) => {
            ctx.bytes_mut(K, a[3], 10)?[9] = dir;
            Ok(v)
        }
        None => {
            set_error(ctx, K, a, libc::ENOENT)?;
            Ok(0)
        }
    }
}

static NEXT_PENDING: AtomicU32 = AtomicU32::new(0);

pub(super) fn xdp_ct_alloc(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    const K: i32 = KFUNC_BASE + id::BPF_XDP_CT_ALLOC;
    xdp::check_ctx(ctx, K, a[0])?;
    let (opts, tuple) = match parse_args(ctx, K, a, false)? {
        Ok(x) => x,
        Err(e) => {
            set_error(ctx, K, a, e)?;
            return Ok(0);
        }
    };
    let _ = (opts.netns_id, opts.l4proto, opts.zone);
    let Some((_, pending)) = ctx.maps.conntrack() else {
        set_error(ctx, K, a, libc::ENOMEM)?;
        return Ok(0);
    };
    let key = u64::from(std::process::id()) << 32
        | u64::from(NEXT_PENDING.fetch_add(1, Ordering::Relaxed));
    let mut img = [0u8; NF_CONN_SIZE as usize];
    img[NF_CONN_TIMEOUT..NF_CONN_TIMEOUT + 4]
        .copy_from_slice(&(ALLOC_TIMEOUT_S * HZ).to_ne_bytes());
    img[NF_CONN_ZONE..NF_CONN_ZONE + 2].copy_from_slice(&tuple.zone.to_ne_bytes());
    tuple.write(&mut img, NF_CONN_TUPLE_ORIGINAL, 0);
    tuple.reversed().write(&mut img, NF_CONN_TUPLE_REPLY, 1);
    img[NF_CONN_EXT..NF_CONN_EXT + 8].copy_from_slice(&key.to_ne_bytes());
    let kb = key.to_ne_bytes();
    // SAFETY: `kb` and `img` hold the pending table's key and value sizes.
    if unsafe {
        pending
            .map
            .prog_update(kb.as_ptr(), img.as_ptr(), maps::BPF_NOEXIST, ctx.cpu)
    }
    .is_err()
    {
        set_error(ctx, K, a, libc::ENOMEM)?;
        return Ok(0);
    }
    // SAFETY: as above.
    Ok(unsafe { pending.map.prog_lookup(kb.as_ptr(), ctx.cpu) } as u64)
}

/// Whether `addr` is the start of a value of `m`.
fn is_value_of(m: &BoundMap, addr: u64) -> bool {
    let r = m.map.value_region();
    let (base, addr) = (r.base as u64, addr);
    r.stride > 0
        && addr >= base
        && addr < base + r.len as u64
        && (addr - base) % r.stride as u64 == r.value_offset as u64
}

/// What a `struct nf_conn *` argument is.
enum Entry {
    /// Allocated, not inserted: its pending key.
    Pending(u64),
    Inserted,
}

/// The entry a program passed: a value of the table or of the pending table, or a
/// trap (the kernel's verifier accepts only pointers these kfuncs returned).
fn entry<'c>(
    ctx: &'c mut HelperCtx<'_, '_>,
    k: i32,
    addr: u64,
) -> Result<(Entry, &'c mut [u8]), TrapKind> {
    let bad = TrapKind::HelperBadPointer {
        helper: k,
        addr,
        len: u64::from(NF_CONN_SIZE),
    };
    let Some((table, pending)) = ctx.maps.conntrack() else {
        return Err(bad);
    };
    let kind = if is_value_of(pending, addr) {
        // SAFETY: a value of the pending table: NF_CONN_SIZE bytes in the store.
        let key = unsafe { std::ptr::read_unaligned((addr as usize + NF_CONN_EXT) as *const u64) };
        Entry::Pending(key)
    } else if is_value_of(table, addr) {
        Entry::Inserted
    } else {
        return Err(bad);
    };
    // SAFETY: a value of one of the tables, NF_CONN_SIZE bytes of the store mapped for
    // the table's life; the program may write these bytes itself (map values are
    // regions of its run).
    let img =
        unsafe { std::slice::from_raw_parts_mut(addr as usize as *mut u8, NF_CONN_SIZE as usize) };
    Ok((kind, img))
}

fn free_pending(ctx: &HelperCtx<'_, '_>, key: u64) {
    if let Some((_, pending)) = ctx.maps.conntrack() {
        let kb = key.to_ne_bytes();
        // SAFETY: `kb` holds the pending table's key size.
        let _ = unsafe { pending.map.prog_delete(kb.as_ptr()) };
    }
}

fn get_u64(img: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(img[at..at + 8].try_into().unwrap_or([0; 8]))
}

fn get_u32(img: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(img[at..at + 4].try_into().unwrap_or([0; 4]))
}

pub(super) fn ct_insert_entry(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    const K: i32 = KFUNC_BASE + id::BPF_CT_INSERT_ENTRY;
    let (kind, img) = entry(ctx, K, a[0])?;
    let Entry::Pending(pkey) = kind else {
        return Err(TrapKind::HelperBadPointer {
            helper: K,
            addr: a[0],
            len: u64::from(NF_CONN_SIZE),
        });
    };
    let mut copy = [0u8; NF_CONN_SIZE as usize];
    copy.copy_from_slice(img);
    free_pending(ctx, pkey);
    let tuple = Tuple::of_image(&copy);
    let timeout = get_u32(&copy, NF_CONN_TIMEOUT).wrapping_add(now());
    copy[NF_CONN_TIMEOUT..NF_CONN_TIMEOUT + 4].copy_from_slice(&timeout.to_ne_bytes());
    let st = get_u64(&copy, NF_CONN_STATUS) | status::CONFIRMED;
    copy[NF_CONN_STATUS..NF_CONN_STATUS + 8].copy_from_slice(&st.to_ne_bytes());
    copy[NF_CONN_EXT..NF_CONN_EXT + 8].fill(0);
    let Some((table, _)) = ctx.maps.conntrack() else {
        return Ok(0);
    };
    // nf_conntrack_hash_check_insert: -EEXIST when either direction is known.
    let (key, rkey) = (tuple.key(), tuple.reversed().key());
    if find(table, &key, ctx.cpu).is_some() || find(table, &rkey, ctx.cpu).is_some() {
        return Ok(0);
    }
    // SAFETY: `key` and `copy` hold the table's key and value sizes.
    if unsafe {
        table
            .map
            .prog_update(key.as_ptr(), copy.as_ptr(), maps::BPF_NOEXIST, ctx.cpu)
    }
    .is_err()
    {
        return Ok(0);
    }
    Ok(find(table, &key, ctx.cpu).unwrap_or(0))
}

pub(super) fn ct_release(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    const K: i32 = KFUNC_BASE + id::BPF_CT_RELEASE;
    if let (Entry::Pending(key), _) = entry(ctx, K, a[0])? {
        free_pending(ctx, key);
    }
    Ok(0)
}

/// `__nf_ct_set_timeout` (before insertion) or `__nf_ct_change_timeout`.
fn set_timeout(ctx: &mut HelperCtx<'_, '_>, k: i32, a: [u64; 5]) -> Result<u64, TrapKind> {
    let (kind, img) = entry(ctx, k, a[0])?;
    // msecs_to_jiffies at 1000 Hz, capped at INT_MAX.
    let t = (a[1] as u32).min(i32::MAX as u32);
    let t = match kind {
        Entry::Pending(_) => t,
        Entry::Inserted => now().wrapping_add(t),
    };
    img[NF_CONN_TIMEOUT..NF_CONN_TIMEOUT + 4].copy_from_slice(&t.to_ne_bytes());
    Ok(0)
}

pub(super) fn ct_set_timeout(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    set_timeout(ctx, KFUNC_BASE + id::BPF_CT_SET_TIMEOUT, a)
}

pub(super) fn ct_change_timeout(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    set_timeout(ctx, KFUNC_BASE + id::BPF_CT_CHANGE_TIMEOUT, a)
}

/// `nf_ct_change_status_common`.
fn change_status(ctx: &mut HelperCtx<'_, '_>, k: i32, a: [u64; 5]) -> Result<u64, TrapKind> {
    let (_, img) = entry(ctx, k, a[0])?;
    let new = u64::from(a[1] as u32);
    let cur = get_u64(img, NF_CONN_STATUS);
    let d = cur ^ new;
    if d & (status::EXPECTED | status::CONFIRMED | status::DYING) != 0
        || (d & status::SEEN_REPLY != 0 && new & status::SEEN_REPLY == 0)
        || (d & status::ASSURED != 0 && new & status::ASSURED == 0)
    {
        return Ok(neg_errno(libc::EBUSY));
    }
    let on = new & !status::UNCHANGEABLE & ((1 << status::MAX_BIT) - 1);
    let off = !new & !status::UNCHANGEABLE & ((1 << status::MAX_BIT) - 1);
    let st = (cur | on) & !off;
    img[NF_CONN_STATUS..NF_CONN_STATUS + 8].copy_from_slice(&st.to_ne_bytes());
    Ok(0)
}

pub(super) fn ct_set_status(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    change_status(ctx, KFUNC_BASE + id::BPF_CT_SET_STATUS, a)
}

pub(super) fn ct_change_status(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    change_status(ctx, KFUNC_BASE + id::BPF_CT_CHANGE_STATUS, a)
}

const _: () = assert!(NF_CONN_PROTO + 64 == NF_CONN_SIZE as usize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_both_directions_meet() {
        let t = Tuple::parse(&[10, 0, 0, 1, 10, 0, 0, 2, 0x9c, 0x41, 0, 80], 6, 0).unwrap();
        let r = Tuple::parse(&[10, 0, 0, 2, 10, 0, 0, 1, 0, 80, 0x9c, 0x41], 6, 0).unwrap();
        assert_eq!(t.key(), r.reversed().key());
        assert_ne!(t.key(), Tuple { proto: 17, ..t }.key());
        assert_eq!(Tuple::parse(&[0; 11], 6, 0), Err(libc::EAFNOSUPPORT));
        assert_eq!(Tuple::parse(&[0; 12], 1, 0), Err(libc::EPROTO));
        let mut img = [0u8; NF_CONN_SIZE as usize];
        t.write(&mut img, NF_CONN_TUPLE_ORIGINAL, 0);
        assert_eq!(Tuple::of_image(&img), t);
    }
}
