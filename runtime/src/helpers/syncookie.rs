//! SYN cookie helpers (net/core/filter.c, net/ipv4/syncookies.c,
//! net/ipv6/syncookies.c): `bpf_tcp_raw_gen_syncookie_ipv4/ipv6` and
//! `bpf_tcp_raw_check_syncookie_ipv4/ipv6`, with the kernel's cookie construction
//! (SipHash-2-4 of the addresses and ports under two keys, a minute counter in the top
//! 8 bits, the MSS table index in the low bits) and errors. The keys are the store's
//! secret (`MapTable::syncookie_secret`), so cookies differ from the kernel's, as two
//! kernels' differ; every process of a store makes and accepts the same cookies.

use super::{misc, neg_errno, HelperCtx};
use crate::error::TrapKind;
use isa::helpers::func;

const IPHDR: u64 = 20;
const IPV6HDR: u64 = 40;
const TCPHDR: u64 = 20;
const COOKIEBITS: u32 = 24;
const COOKIEMASK: u32 = (1 << COOKIEBITS) - 1;
/// The kernel's `MAX_SYNCOOKIE_AGE`: a cookie is good for this many minutes.
const MAX_SYNCOOKIE_AGE: u32 = 2;
/// `TCP_MSS_DEFAULT`: the MSS of a SYN without the option.
const TCP_MSS_DEFAULT: u16 = 536;
const MSSTAB_V4: [u16; 4] = [536, 1300, 1440, 1460];
const MSSTAB_V6: [u16; 4] = [1280 - 60, 1480 - 60, 1500 - 60, 9000 - 60];

/// SipHash-2-4 of `msg` under key `(k0, k1)` (the kernel's `siphash`).
pub(crate) fn siphash(k0: u64, k1: u64, msg: &[u8]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let compress = |m: u64, v: &mut [u64; 4]| {
        v[3] ^= m;
        round(v);
        round(v);
        v[0] ^= m;
    };
    let chunks = msg.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        compress(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])), &mut v);
    }
    let mut last = [0u8; 8];
    last[..tail.len()].copy_from_slice(tail);
    let b = u64::from_le_bytes(last) | (msg.len() as u64) << 56;
    compress(b, &mut v);
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// The kernel's `tcp_cookie_time`: minutes (of a clock every process shares).
fn cookie_time() -> u32 {
    (misc::clock_ns(libc::CLOCK_MONOTONIC) / 60_000_000_000) as u32
}

/// The addresses and ports a cookie covers, as the kernel hashes them.
enum Flow {
    /// saddr, daddr (as in memory), sport, dport (as in memory).
    V4([u8; 4], [u8; 4], u16, u16),
    V6([u8; 16], [u8; 16], u16, u16),
}

impl Flow {
    fn of(ip: &[u8], th: &[u8]) -> Flow {
        let sport = u16::from_ne_bytes([th[0], th[1]]);
        let dport = u16::from_ne_bytes([th[2], th[3]]);
        if ip.len() as u64 == IPV6HDR {
            let (mut s, mut d) = ([0u8; 16], [0u8; 16]);
            s.copy_from_slice(&ip[8..24]);
            d.copy_from_slice(&ip[24..40]);
            Flow::V6(s, d, sport, dport)
        } else {
            let (mut s, mut d) = ([0u8; 4], [0u8; 4]);
            s.copy_from_slice(&ip[12..16]);
            d.copy_from_slice(&ip[16..20]);
            Flow::V4(s, d, sport, dport)
        }
    }

    /// The kernel's `cookie_hash(..., count, c)`, key `c` of the secret.
    fn hash(&self, secret: &[u64; 4], count: u32, c: usize) -> u32 {
        let (k0, k1) = (secret[2 * c], secret[2 * c + 1]);
        match self {
            // siphash_4u32(saddr, daddr, sport << 16 | dport, count): the u32 words
            // in memory order, as the kernel's little-endian loads see them.
            Flow::V4(s, d, sp, dp) => {
                let mut m = [0u8; 16];
                m[0..4].copy_from_slice(s);
                m[4..8].copy_from_slice(d);
                let ports = u32::from(*sp) << 16 | u32::from(*dp);
                m[8..12].copy_from_slice(&ports.to_ne_bytes());
                m[12..16].copy_from_slice(&count.to_ne_bytes());
                siphash(k0, k1, &m) as u32
            }
            // struct { saddr; daddr; u32 count; be16 sport; be16 dport; }
            Flow::V6(s, d, sp, dp) => {
                let mut m = [0u8; 40];
                m[0..16].copy_from_slice(s);
                m[16..32].copy_from_slice(d);
                m[32..36].copy_from_slice(&count.to_ne_bytes());
                m[36..38].copy_from_slice(&sp.to_ne_bytes());
                m[38..40].copy_from_slice(&dp.to_ne_bytes());
                siphash(k0, k1, &m) as u32
            }
        }
    }

    fn msstab(&self) -> &'static [u16; 4] {
        match self {
            Flow::V4(..) => &MSSTAB_V4,
            Flow::V6(..) => &MSSTAB_V6,
        }
    }
}

/// The kernel's `secure_tcp_syn_cookie`.
fn make_cookie(flow: &Flow, secret: &[u64; 4], sseq: u32, data: u32, count: u32) -> u32 {
    flow.hash(secret, 0, 0)
        .wrapping_add(sseq)
        .wrapping_add(count << COOKIEBITS)
        .wrapping_add(flow.hash(secret, count, 1).wrapping_add(data) & COOKIEMASK)
}

/// The kernel's `check_tcp_syn_cookie`: the MSS index, or `u32::MAX`.
fn check_cookie(flow: &Flow, secret: &[u64; 4], cookie: u32, sseq: u32, count: u32) -> u32 {
    let cookie = cookie.wrapping_sub(flow.hash(secret, 0, 0).wrapping_add(sseq));
    let diff = count.wrapping_sub(cookie >> COOKIEBITS) & (u32::MAX >> COOKIEBITS);
    if diff >= MAX_SYNCOOKIE_AGE {
        return u32::MAX;
    }
    cookie.wrapping_sub(flow.hash(secret, count.wrapping_sub(diff), 1)) & COOKIEMASK
}

/// The kernel's `tcp_parse_mss_option(th, 0)` over `th` (the header and its options).
fn parse_mss(th: &[u8]) -> u16 {
    let doff = (th[12] >> 4) as usize * 4;
    let opts = th.get(TCPHDR as usize..doff.min(th.len())).unwrap_or(&[]);
    let mut mss = 0;
    let mut i = 0;
    while i < opts.len() {
        let code = opts[i];
        i += 1;
        match code {
            0 => return mss,
            1 => continue,
            _ => {
                let Some(&size) = opts.get(i) else {
                    return mss;
                };
                i += 1;
                let size = size as usize;
                if size < 2 || size > opts.len() - (i - 2) {
                    return mss;
                }
                if code == 2 && size == 4 {
                    let v = u16::from_be_bytes([opts[i], opts[i + 1]]);
                    if v != 0 {
                        mss = v;
                    }
                }
                i += size - 2;
            }
        }
    }
    mss
}

fn gen(ctx: &mut HelperCtx<'_, '_>, helper: i32, iplen: u64, a: [u64; 5]) -> Result<u64, TrapKind> {
    let th_len = a[2] as u32 as u64;
    let ip = ctx.bytes(helper, a[0], iplen)?.to_vec();
    let th = ctx.bytes(helper, a[1], th_len)?;
    if th_len < TCPHDR || th.len() as u64 != u64::from(th[12] >> 4) * 4 {
        return Ok(neg_errno(libc::EINVAL));
    }
    let flow = Flow::of(&ip, th);
    let seq = u32::from_be_bytes([th[4], th[5], th[6], th[7]]);
    let mss = match parse_mss(th) {
        0 => TCP_MSS_DEFAULT,
        m => m,
    };
    let tab = flow.msstab();
    let idx = (1..tab.len()).rev().find(|&i| mss >= tab[i]).unwrap_or(0);
    let cookie = make_cookie(
        &flow,
        ctx.maps.syncookie_secret(),
        seq,
        idx as u32,
        cookie_time(),
    );
    Ok(u64::from(cookie) | u64::from(tab[idx]) << 32)
}

fn check(
    ctx: &mut HelperCtx<'_, '_>,
    helper: i32,
    iplen: u64,
    a: [u64; 5],
) -> Result<u64, TrapKind> {
    let ip = ctx.bytes(helper, a[0], iplen)?.to_vec();
    let th = ctx.bytes(helper, a[1], TCPHDR)?;
    let flow = Flow::of(&ip, th);
    let cookie = u32::from_be_bytes([th[8], th[9], th[10], th[11]]).wrapping_sub(1);
    let seq = u32::from_be_bytes([th[4], th[5], th[6], th[7]]).wrapping_sub(1);
    let idx = check_cookie(
        &flow,
        ctx.maps.syncookie_secret(),
        cookie,
        seq,
        cookie_time(),
    );
    if (idx as usize) < flow.msstab().len() {
        Ok(0)
    } else {
        Ok(neg_errno(libc::EACCES))
    }
}

pub(super) fn gen_ipv4(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    gen(ctx, func::tcp_raw_gen_syncookie_ipv4, IPHDR, a)
}

pub(super) fn gen_ipv6(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    gen(ctx, func::tcp_raw_gen_syncookie_ipv6, IPV6HDR, a)
}

pub(super) fn check_ipv4(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    check(ctx, func::tcp_raw_check_syncookie_ipv4, IPHDR, a)
}

pub(super) fn check_ipv6(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    check(ctx, func::tcp_raw_check_syncookie_ipv6, IPV6HDR, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siphash_matches_the_reference_vectors() {
        // SipHash-2-4 paper, appendix A: key 00..0f, message 00..0e.
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(siphash(k0, k1, &msg), 0xa129_ca61_49be_45e5);
        // The reference implementation's vectors.h: empty message, 8 bytes.
        assert_eq!(siphash(k0, k1, &[]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash(k0, k1, &msg[..8]), 0x93f5_f579_9a93_2462);
    }

    #[test]
    fn cookies_are_accepted_for_two_minutes_only() {
        let secret = [1, 2, 3, 4];
        let flow = Flow::V4([10, 0, 0, 1], [10, 0, 0, 2], 0x1234, 0x0050);
        let c = make_cookie(&flow, &secret, 1000, 3, 50);
        assert_eq!(check_cookie(&flow, &secret, c, 1000, 50), 3);
        assert_eq!(check_cookie(&flow, &secret, c, 1000, 51), 3);
        assert_eq!(check_cookie(&flow, &secret, c, 1000, 52), u32::MAX);
        assert_ne!(check_cookie(&flow, &secret, c, 1001, 50), 3);
        let other = Flow::V4([10, 0, 0, 1], [10, 0, 0, 2], 0x1234, 0x0051);
        assert_ne!(check_cookie(&other, &secret, c, 1000, 50), 3);
    }

    #[test]
    fn mss_option_parsing_follows_the_kernel() {
        let mut th = [0u8; 40];
        th[12] = 10 << 4;
        // NOP, NOP, MSS 1400, then EOL.
        th[20..26].copy_from_slice(&[1, 1, 2, 4, 0x05, 0x78]);
        assert_eq!(parse_mss(&th), 1400);
        // An option running past the header stops the parse.
        th[20..24].copy_from_slice(&[8, 40, 2, 4]);
        assert_eq!(parse_mss(&th), 0);
        th[12] = 5 << 4;
        assert_eq!(parse_mss(&th[..20]), 0);
    }
}
