//! `bpf_fib_lookup` (helper 69) as the kernel's `bpf_xdp_fib_lookup` (net/core/filter.c,
//! 6.18), on the [`Net`] of the object's environment (`MapTable::net`).
//!
//! Order of checks and of the fields written on each return path follow the kernel:
//! - plen < 64: -EINVAL; flags outside DIRECT | OUTPUT | SKIP_NEIGH | TBID | SRC | MARK:
//!   -EINVAL; family neither AF_INET nor AF_INET6: -EAFNOSUPPORT; nothing written;
//! - IPv6 only: a link-local, multicast or loopback source or destination: NOT_FWDED;
//! - unknown `ifindex`: -ENODEV; forwarding off on it: FWD_DISABLED;
//! - DIRECT (+ TBID: the table in `tbid`, which is then zeroed) or the full lookup;
//!   blackhole / unreachable / prohibit routes give their codes (IPv4 throw and no
//!   route: NOT_FWDED), any type but unicast NOT_FWDED;
//! - the MTU check (the route's locked MTU, else the device's): `tot_len` above it
//!   gives FRAG_NEEDED with `mtu_result`;
//! - then `rt_metric`, `ifindex`, with SRC the source address (IPv6: NO_SRC_ADDR when
//!   there is none), the gateway into the destination;
//! - unless SKIP_NEIGH: a neighbour in a NUD_VALID state, else NO_NEIGH; `dmac`, `smac`;
//! - `h_vlan_proto` = `h_vlan_TCI` = 0 and `mtu_result` = the MTU.
//!
//! MARK is accepted and has no effect: without policy rules the kernel ignores marks.

use isa::helpers::func;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{neg_errno, HelperCtx};
use crate::error::TrapKind;
use crate::net::{table, Iface, LookupMiss, Net, Route, RouteType, SCOPE_LINK};

/// `bpf_fib_lookup`'s helper id.
pub const ID: i32 = func::fib_lookup;
/// `sizeof(struct bpf_fib_lookup)`.
pub const PARAMS_LEN: usize = 64;

/// `BPF_FIB_LOOKUP_*` flags.
pub mod flags {
    pub const DIRECT: u32 = 1 << 0;
    pub const OUTPUT: u32 = 1 << 1;
    pub const SKIP_NEIGH: u32 = 1 << 2;
    pub const TBID: u32 = 1 << 3;
    pub const SRC: u32 = 1 << 4;
    pub const MARK: u32 = 1 << 5;
    /// Every flag the kernel (6.18) accepts from XDP.
    pub const ALL: u32 = DIRECT | OUTPUT | SKIP_NEIGH | TBID | SRC | MARK;
}

/// `BPF_FIB_LKUP_RET_*` codes.
pub mod ret {
    pub const SUCCESS: u64 = 0;
    pub const BLACKHOLE: u64 = 1;
    pub const UNREACHABLE: u64 = 2;
    pub const PROHIBIT: u64 = 3;
    pub const NOT_FWDED: u64 = 4;
    pub const FWD_DISABLED: u64 = 5;
    pub const UNSUPP_LWT: u64 = 6;
    pub const NO_NEIGH: u64 = 7;
    pub const FRAG_NEEDED: u64 = 8;
    pub const NO_SRC_ADDR: u64 = 9;
}

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Field offsets in `struct bpf_fib_lookup`.
mod off {
    pub const FAMILY: usize = 0;
    pub const TOT_LEN: usize = 6;
    pub const IFINDEX: usize = 8;
    pub const RT_METRIC: usize = 12;
    pub const SRC: usize = 16;
    pub const DST: usize = 32;
    pub const TBID: usize = 48;
    pub const SMAC: usize = 52;
    pub const DMAC: usize = 58;
}

/// The helper: `bpf_fib_lookup(ctx, params, plen, flags)`.
pub(super) fn fib_lookup(ctx: &mut HelperCtx<'_, '_>, args: [u64; 5]) -> Result<u64, TrapKind> {
    // `int plen` compared with a size_t: negative lengths pass as huge ones.
    let plen = args[2] as i32 as i64 as u64;
    let fl = args[3] as u32;
    if plen < PARAMS_LEN as u64 || fl & !flags::ALL != 0 {
        return Ok(neg_errno(libc::EINVAL));
    }
    let maps: &crate::maptable::MapTable = ctx.maps;
    let net = maps.net();
    let p = ctx.bytes_mut(ID, args[1], PARAMS_LEN as u64)?;
    let p: &mut [u8; PARAMS_LEN] = p.try_into().map_err(|_| TrapKind::HelperBadPointer {
        helper: ID,
        addr: args[1],
        len: PARAMS_LEN as u64,
    })?;
    Ok(lookup(net, p, fl))
}

/// `bpf_xdp_fib_lookup` after the plen check: `params` in, r0 out. `flags` must hold
/// only [`flags::ALL`] bits, or the result is -EINVAL.
pub fn lookup(net: &Net, params: &mut [u8; PARAMS_LEN], fl: u32) -> u64 {
    if fl & !flags::ALL != 0 {
        return neg_errno(libc::EINVAL);
    }
    match params[off::FAMILY] {
        AF_INET => lookup4(net, params, fl),
        AF_INET6 => lookup6(net, params, fl),
        _ => neg_errno(libc::EAFNOSUPPORT),
    }
}

fn u16_at(p: &[u8; PARAMS_LEN], o: usize) -> u16 {
    u16::from_ne_bytes([p[o], p[o + 1]])
}

fn u32_at(p: &[u8; PARAMS_LEN], o: usize) -> u32 {
    u32::from_ne_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]])
}

fn put_u32(p: &mut [u8; PARAMS_LEN], o: usize, v: u32) {
    p[o..o + 4].copy_from_slice(&v.to_ne_bytes());
}

fn ip4_at(p: &[u8; PARAMS_LEN], o: usize) -> Ipv4Addr {
    Ipv4Addr::new(p[o], p[o + 1], p[o + 2], p[o + 3])
}

fn ip6_at(p: &[u8; PARAMS_LEN], o: usize) -> Ipv6Addr {
    let mut b = [0u8; 16];
    b.copy_from_slice(&p[o..o + 16]);
    Ipv6Addr::from(b)
}

/// The table a DIRECT lookup uses (zeroing `tbid` when TBID names it), or `None` for
/// the full lookup.
fn direct_table(p: &mut [u8; PARAMS_LEN], fl: u32) -> Option<u32> {
    if fl & flags::DIRECT == 0 {
        return None;
    }
    if fl & flags::TBID != 0 {
        let t = u32_at(p, off::TBID);
        put_u32(p, off::TBID, 0);
        return Some(t);
    }
    Some(table::MAIN)
}

fn miss_code(m: LookupMiss) -> u64 {
    match m {
        LookupMiss::Reject(RouteType::Blackhole) => ret::BLACKHOLE,
        LookupMiss::Reject(RouteType::Unreachable) => ret::UNREACHABLE,
        LookupMiss::Reject(RouteType::Prohibit) => ret::PROHIBIT,
        _ => ret::NOT_FWDED,
    }
}

/// The step both families share after the table lookup: a unicast route with a
/// device, and the MTU check (`dev_mtu` gives the device's MTU as the family sees
/// it; a locked route MTU wins). FRAG_NEEDED writes `mtu_result` over `tot_len`.
fn forward<'n>(
    net: &'n Net,
    p: &mut [u8; PARAMS_LEN],
    lookup: Result<&'n Route, LookupMiss>,
    dev_mtu: impl Fn(u32) -> u32,
) -> Result<(&'n Route, &'n Iface, u32), u64> {
    let route = lookup.map_err(miss_code)?;
    if route.rtype != RouteType::Unicast {
        return Err(ret::NOT_FWDED);
    }
    let out = route.dev.and_then(|d| net.iface(d)).ok_or(ret::NOT_FWDED)?;
    let mtu = if route.mtu_lock && route.mtu != 0 {
        route.mtu
    } else {
        dev_mtu(out.mtu)
    };
    if u32::from(u16_at(p, off::TOT_LEN)) > mtu {
        p[off::TOT_LEN..off::TOT_LEN + 2].copy_from_slice(&(mtu as u16).to_ne_bytes());
        return Err(ret::FRAG_NEEDED);
    }
    Ok((route, out, mtu))
}

/// The common tail: neighbour, MACs, VLAN fields, `mtu_result`.
fn finish(
    net: &Net,
    p: &mut [u8; PARAMS_LEN],
    fl: u32,
    dev: u32,
    nexthop: IpAddr,
    mtu: u32,
) -> u64 {
    if fl & flags::SKIP_NEIGH == 0 {
        let Some(dmac) = net.neighbour(dev, nexthop) else {
            return ret::NO_NEIGH;
        };
        let smac = net.iface(dev).map(|i| i.mac).unwrap_or_default();
        p[off::DMAC..off::DMAC + 6].copy_from_slice(&dmac);
        p[off::SMAC..off::SMAC + 6].copy_from_slice(&smac);
    }
    // h_vlan_proto, h_vlan_TCI.
    p[off::TBID..off::TBID + 4].fill(0);
    if mtu != 0 {
        p[off::TOT_LEN..off::TOT_LEN + 2].copy_from_slice(&(mtu as u16).to_ne_bytes());
    }
    ret::SUCCESS
}

fn lookup4(net: &Net, p: &mut [u8; PARAMS_LEN], fl: u32) -> u64 {
    let ifindex = u32_at(p, off::IFINDEX);
    let Some(dev) = net.iface(ifindex) else {
        return neg_errno(libc::ENODEV);
    };
    if !dev.forwarding4 {
        return ret::FWD_DISABLED;
    }
    let oif = if fl & flags::OUTPUT != 0 { ifindex } else { 0 };
    let dst = ip4_at(p, off::DST);
    let tbl = direct_table(p, fl);
    // ip_mtu_from_fib_result: a locked route MTU, else the device's (at most IP_MAX_MTU).
    let (route, out, mtu) = match forward(net, p, net.lookup4(tbl, dst, oif), |dev| dev.min(0xffff))
    {
        Ok(f) => f,
        Err(code) => return code,
    };
    put_u32(p, off::RT_METRIC, route.metric);
    put_u32(p, off::IFINDEX, out.ifindex);
    let gw = match route.gateway {
        Some(IpAddr::V4(g)) => Some(g),
        _ => None,
    };
    if fl & flags::SRC != 0 {
        let src = match route.src {
            Some(IpAddr::V4(s)) => s,
            _ => {
                // The route's scope: universe with a gateway, link without.
                let scope = if gw.is_some() { 0 } else { SCOPE_LINK };
                net.select_addr4(out.ifindex, gw, scope)
            }
        };
        p[off::SRC..off::SRC + 4].copy_from_slice(&src.octets());
    }
    if let Some(g) = gw {
        p[off::DST..off::DST + 4].copy_from_slice(&g.octets());
    }
    let nexthop = ip4_at(p, off::DST);
    finish(net, p, fl, out.ifindex, IpAddr::V4(nexthop), mtu)
}

/// `rt6_need_strict`: multicast, link-local or loopback.
fn need_strict(a: Ipv6Addr) -> bool {
    let s = a.segments();
    a.is_loopback() || s[0] & 0xff00 == 0xff00 || s[0] & 0xffc0 == 0xfe80
}

fn lookup6(net: &Net, p: &mut [u8; PARAMS_LEN], fl: u32) -> u64 {
    let src = ip6_at(p, off::SRC);
    let dst = ip6_at(p, off::DST);
    if need_strict(dst) || need_strict(src) {
        return ret::NOT_FWDED;
    }
    let ifindex = u32_at(p, off::IFINDEX);
    let Some(dev) = net.iface(ifindex) else {
        return neg_errno(libc::ENODEV);
    };
    if !dev.has_ipv6() || !dev.forwarding6 {
        return ret::FWD_DISABLED;
    }
    let tbl = direct_table(p, fl);
    // Both modes pass the device as the preferred output device.
    // ip6_mtu_from_fib6: a locked route MTU, else the device's IPv6 MTU (at least
    // 1280), at most IPV6_MAXPLEN + the header.
    let lookup = net.lookup6(tbl, dst, ifindex);
    let (route, out, mtu) = match forward(net, p, lookup, |dev| dev.max(1280)) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let mtu = mtu.min(65535 + 40);
    if let Some(IpAddr::V6(g)) = route.gateway {
        p[off::DST..off::DST + 16].copy_from_slice(&g.octets());
    }
    put_u32(p, off::RT_METRIC, route.metric);
    put_u32(p, off::IFINDEX, out.ifindex);
    if fl & flags::SRC != 0 {
        let s = match route.src {
            Some(IpAddr::V6(s)) => Some(s),
            _ => net.select_addr6(out.ifindex, dst),
        };
        let Some(s) = s else {
            return ret::NO_SRC_ADDR;
        };
        p[off::SRC..off::SRC + 16].copy_from_slice(&s.octets());
    }
    let nexthop = ip6_at(p, off::DST);
    finish(net, p, fl, out.ifindex, IpAddr::V6(nexthop), mtu)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A params block: family, tot_len, ifindex, tos word, src, dst (IPv4 or IPv6).
    fn params(family: u8, tot_len: u16, ifindex: u32, src: IpAddr, dst: IpAddr) -> [u8; 64] {
        let mut p = [0u8; 64];
        p[0] = family;
        p[6..8].copy_from_slice(&tot_len.to_ne_bytes());
        p[8..12].copy_from_slice(&ifindex.to_ne_bytes());
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                p[16..20].copy_from_slice(&s.octets());
                p[32..36].copy_from_slice(&d.octets());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                p[16..32].copy_from_slice(&s.octets());
                p[32..48].copy_from_slice(&d.octets());
            }
            _ => panic!("mixed families"),
        }
        p
    }

    use crate::net::tests::SETUP;

    /// The bytes the kernel (6.18) returned for this lookup through xdp_fib_probe in
    /// the SETUP namespace: ifindex 1, tot_len 100, 10.9.9.9 -> 10.2.3.4, tos word
    /// 0x55555501, flags 0.
    #[test]
    fn a_gateway_route_matches_the_kernel_bytes() {
        let net = Net::parse(SETUP).unwrap();
        let mut p = params(
            AF_INET,
            100,
            1,
            "10.9.9.9".parse().unwrap(),
            "10.2.3.4".parse().unwrap(),
        );
        p[12..16].copy_from_slice(&0x5555_5501u32.to_le_bytes());
        assert_eq!(lookup(&net, &mut p, 0), ret::SUCCESS);
        let kernel: [u8; 64] = [
            2, 0, 0, 0, 0, 0, 220, 5, 10, 0, 0, 0, 0, 0, 0, 0, 10, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 10, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1,
            1, 2, 0, 0, 0, 1, 254,
        ];
        assert_eq!(p, kernel);
    }

    #[test]
    fn argument_errors_write_nothing() {
        let net = Net::parse(SETUP).unwrap();
        let p0 = params(
            AF_INET,
            0,
            1,
            "10.9.9.9".parse().unwrap(),
            "10.2.3.4".parse().unwrap(),
        );
        let mut p = p0;
        assert_eq!(lookup(&net, &mut p, 64), neg_errno(libc::EINVAL));
        p[0] = 7;
        assert_eq!(lookup(&net, &mut p, 0), neg_errno(libc::EAFNOSUPPORT));
        p[0] = AF_INET;
        assert_eq!(p, p0);
        // Without a table: lo down, forwarding off.
        assert_eq!(lookup(&Net::new(), &mut p, 0), ret::FWD_DISABLED);
        p[8] = 2;
        assert_eq!(lookup(&Net::new(), &mut p, 0), neg_errno(libc::ENODEV));
    }
}
