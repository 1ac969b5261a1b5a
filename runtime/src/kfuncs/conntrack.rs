//! Conntrack kfuncs (net/netfilter/nf_conntrack_bpf.c) over a table kept in the store:
//! `bpf_xdp_ct_lookup`, `bpf_ct_release`.
//!
//! What is modelled: the store's connection table is a hash map named
//! [`TABLE_NAME`] (created when an object calling these kfuncs is loaded, shared by
//! every object and process of the store), keyed by [`key`] (address family, L4
//! protocol, zone, original-direction addresses and ports) and holding an image of
//! the kernel's `struct nf_conn` (248 bytes, Linux 6.18's layout: `timeout` at 8,
//! `status` at 128, `mark` at 168), which the returned `struct nf_conn *` points to,
//! so a program reads `ct->status` and `ct->mark` as in the kernel. A lookup by the
//! reply-direction tuple finds the entry too (`opts->dir` = 1). Entries are written
//! by user space (`maps::Map::update`) until programs can insert them. References
//! need no counting: an entry lives in the store, and `bpf_ct_release` only checks
//! its argument. Network namespaces: only the caller's (`netns_id` -1); any other is
//! `-ENONET`, as for a namespace id that does not exist.

use super::{id, KFUNC_BASE};
use crate::error::TrapKind;
use crate::helpers::{xdp, HelperCtx};

/// The store's connection table.
pub const TABLE_NAME: &str = "nf_conntrack";
/// Its key: family (AF_INET, AF_INET6), L4 protocol, zone (u16, native order), then
/// source address (16 bytes, IPv4 in the first 4), destination address, source port,
/// destination port (network order, as in `struct bpf_sock_tuple`).
pub const KEY_SIZE: u32 = 40;
/// `sizeof(struct nf_conn)` in Linux 6.18.
pub const NF_CONN_SIZE: u32 = 248;
/// Offsets of the fields programs read and write in `struct nf_conn`.
pub const NF_CONN_TIMEOUT: usize = 8;
pub const NF_CONN_STATUS: usize = 128;
pub const NF_CONN_MARK: usize = 168;
/// Entries of a table this runtime creates.
pub const TABLE_ENTRIES: u32 = 4096;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// `sizeof(struct bpf_ct_opts)`, and the older 12-byte layout the kernel accepts.
const OPTS_SZ: u64 = 16;
const OPTS_SZ_OLD: u64 = 12;
/// `BPF_F_CURRENT_NETNS`.
const CURRENT_NETNS: i32 = -1;

/// The table's definition.
pub fn table_def() -> maps::MapDef {
    maps::MapDef {
        map_type: crate::maptable::types::HASH,
        key_size: KEY_SIZE,
        value_size: NF_CONN_SIZE,
        max_entries: TABLE_ENTRIES,
        name: TABLE_NAME.to_string(),
        ..maps::MapDef::default()
    }
}

/// Whether `m` is a connection table (by name and shape).
pub fn is_table(info: &maps::MapInfo) -> bool {
    info.name == TABLE_NAME
        && info.map_type == crate::maptable::types::HASH
        && info.key_size == KEY_SIZE
        && info.value_size == NF_CONN_SIZE
}

/// The table key of a `struct bpf_sock_tuple` of `tuple_len` bytes (12: IPv4, 36:
/// IPv6), in the original direction or reversed.
pub fn key(tuple: &[u8], l4proto: u8, zone: u16, reverse: bool) -> Option<[u8; KEY_SIZE as usize]> {
    let (family, alen) = match tuple.len() {
        12 => (AF_INET, 4),
        36 => (AF_INET6, 16),
        _ => return None,
    };
    let mut k = [0u8; KEY_SIZE as usize];
    k[0] = family;
    k[1] = l4proto;
    k[2..4].copy_from_slice(&zone.to_ne_bytes());
    let (src, dst) = (&tuple[..alen], &tuple[alen..2 * alen]);
    let (sport, dport) = (
        &tuple[2 * alen..2 * alen + 2],
        &tuple[2 * alen + 2..2 * alen + 4],
    );
    let (src, dst, sport, dport) = if reverse {
        (dst, src, dport, sport)
    } else {
        (src, dst, sport, dport)
    };
    k[4..4 + alen].copy_from_slice(src);
    k[20..20 + alen].copy_from_slice(dst);
    k[36..38].copy_from_slice(sport);
    k[38..40].copy_from_slice(dport);
    Some(k)
}

/// The kernel's `__bpf_nf_ct_lookup`: the entry's address, or the errno.
fn lookup(ctx: &mut HelperCtx<'_, '_>, k: i32, a: [u64; 5]) -> Result<Result<u64, i32>, TrapKind> {
    let (tuple_addr, tuple_len, opts_addr, opts_len) =
        (a[1], a[2] as u32 as u64, a[3], a[4] as u32 as u64);
    if opts_addr == 0 || tuple_addr == 0 {
        return Ok(Err(libc::EINVAL));
    }
    if opts_len != OPTS_SZ && opts_len != OPTS_SZ_OLD {
        return Ok(Err(libc::EINVAL));
    }
    let opts = ctx.bytes(k, opts_addr, opts_len)?;
    let netns_id = i32::from_ne_bytes([opts[0], opts[1], opts[2], opts[3]]);
    let l4proto = opts[8];
    // 16 bytes: ct_zone_id (u16) at 10, ct_zone_dir at 12, reserved[3] at 13.
    let (zone, reserved_ok) = if opts_len == OPTS_SZ {
        (
            u16::from_ne_bytes([opts[10], opts[11]]),
            opts[13..16].iter().all(|b| *b == 0),
        )
    } else {
        (0, opts[10..12].iter().all(|b| *b == 0))
    };
    if !reserved_ok {
        return Ok(Err(libc::EINVAL));
    }
    if l4proto != IPPROTO_TCP && l4proto != IPPROTO_UDP {
        return Ok(Err(libc::EPROTO));
    }
    if netns_id < CURRENT_NETNS {
        return Ok(Err(libc::EINVAL));
    }
    if tuple_len != 12 && tuple_len != 36 {
        return Ok(Err(libc::EAFNOSUPPORT));
    }
    let tuple = ctx.bytes(k, tuple_addr, tuple_len)?.to_vec();
    if netns_id >= 0 {
        return Ok(Err(libc::ENONET));
    }
    let Some(table) = ctx.maps.conntrack() else {
        return Ok(Err(libc::ENOENT));
    };
    for (dir, reverse) in [(0u8, false), (1u8, true)] {
        let Some(key) = key(&tuple, l4proto, zone, reverse) else {
            return Ok(Err(libc::EAFNOSUPPORT));
        };
        // SAFETY: `key` holds the table's key_size bytes.
        let v = unsafe { table.map.prog_lookup(key.as_ptr(), ctx.cpu) };
        if !v.is_null() {
            ctx.bytes_mut(k, opts_addr, opts_len)?[9] = dir;
            return Ok(Ok(v as u64));
        }
    }
    Ok(Err(libc::ENOENT))
}

pub(super) fn xdp_ct_lookup(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    const K: i32 = KFUNC_BASE + id::BPF_XDP_CT_LOOKUP;
    xdp::check_ctx(ctx, K, a[0])?;
    match lookup(ctx, K, a)? {
        Ok(ct) => Ok(ct),
        Err(e) => {
            // opts->error, when opts is there.
            if a[3] != 0 && (a[4] as u32 as u64 == OPTS_SZ || a[4] as u32 as u64 == OPTS_SZ_OLD) {
                let o = ctx.bytes_mut(K, a[3], 8)?;
                o[4..8].copy_from_slice(&(-e).to_ne_bytes());
            }
            Ok(0)
        }
    }
}

pub(super) fn ct_release(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    const K: i32 = KFUNC_BASE + id::BPF_CT_RELEASE;
    // The entry must be one the program was given: an element of the table.
    ctx.bytes(K, a[0], u64::from(NF_CONN_SIZE))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_both_directions_meet() {
        let t: Vec<u8> = [10, 0, 0, 1, 10, 0, 0, 2, 0x9c, 0x41, 0, 80].to_vec();
        let r: Vec<u8> = [10, 0, 0, 2, 10, 0, 0, 1, 0, 80, 0x9c, 0x41].to_vec();
        assert_eq!(key(&t, 6, 0, false), key(&r, 6, 0, true));
        assert_ne!(key(&t, 6, 0, false), key(&t, 17, 0, false));
        assert_eq!(key(&t[..11], 6, 0, false), None);
    }
}
