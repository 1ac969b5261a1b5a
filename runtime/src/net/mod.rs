//! The network that programs see through `bpf_fib_lookup`: interfaces, routes and
//! neighbours of one network namespace, modelled on the kernel's.
//!
//! A [`Net`] is built from a script of the same `ip`/`sysctl` commands that would set up
//! a Linux network namespace ([`Net::parse`]), so one text configures both the kernel
//! (for differential tests) and the runtime. What the kernel adds by itself is derived
//! the same way:
//! - `lo` (ifindex 1, down) exists from the start; bringing it up gives it 127.0.0.1/8
//!   and ::1;
//! - an IPv4 address on an up interface gives a local route (table local), a broadcast
//!   route for the subnet's broadcast address (prefixes shorter than /31) and a
//!   connected route (table main, metric 0, `src` = the address); on `lo` the prefix
//!   route is a local one (table local);
//! - an IPv6 address on an up interface gives a local route (table local, metric 0), a
//!   connected route (table main, metric 256) and, with forwarding on, the
//!   subnet-router anycast route (table local);
//! - taking an interface down removes its derived routes, the static routes through it
//!   and its IPv6 addresses (the kernel's `keep_addr_on_down` = 0).
//!
//! Not modelled: link-local (fe80::) addresses and routes, multicast routes, DAD
//! (addresses behave as with `nodad`), policy routing rules (`ip rule`), multipath
//! routes, nexthop objects, VRFs, VLAN devices and routes by TOS.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod script;

/// The kernel's routing table ids.
pub mod table {
    /// `RT_TABLE_DEFAULT`.
    pub const DEFAULT: u32 = 253;
    /// `RT_TABLE_MAIN`.
    pub const MAIN: u32 = 254;
    /// `RT_TABLE_LOCAL`.
    pub const LOCAL: u32 = 255;
}

/// Route types, as the kernel's `RTN_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteType {
    Unicast,
    Local,
    Broadcast,
    Anycast,
    Blackhole,
    Unreachable,
    Prohibit,
    Throw,
}

impl RouteType {
    /// `RTN_*` value.
    pub fn rtn(self) -> u8 {
        match self {
            RouteType::Unicast => 1,
            RouteType::Local => 2,
            RouteType::Broadcast => 3,
            RouteType::Anycast => 4,
            RouteType::Blackhole => 6,
            RouteType::Unreachable => 7,
            RouteType::Prohibit => 8,
            RouteType::Throw => 9,
        }
    }

    /// Types that end a lookup with an error instead of a next hop.
    pub fn is_reject(self) -> bool {
        matches!(
            self,
            RouteType::Blackhole | RouteType::Unreachable | RouteType::Prohibit | RouteType::Throw
        )
    }
}

/// Neighbour states (`NUD_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NudState {
    Incomplete,
    Reachable,
    Stale,
    Delay,
    Probe,
    Failed,
    NoArp,
    Permanent,
}

impl NudState {
    /// Whether the state is in `NUD_VALID` (a usable link-layer address).
    pub fn is_valid(self) -> bool {
        !matches!(self, NudState::Incomplete | NudState::Failed)
    }

    fn parse(s: &str) -> Option<NudState> {
        Some(match s {
            "incomplete" => NudState::Incomplete,
            "reachable" => NudState::Reachable,
            "stale" => NudState::Stale,
            "delay" => NudState::Delay,
            "probe" => NudState::Probe,
            "failed" => NudState::Failed,
            "noarp" => NudState::NoArp,
            "permanent" => NudState::Permanent,
            _ => return None,
        })
    }
}

/// Device kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfaceKind {
    Loopback,
    /// A veth; `peer` is the other end's ifindex.
    Veth {
        peer: u32,
    },
    Dummy,
}

/// An IPv4 address on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addr4 {
    pub addr: Ipv4Addr,
    pub plen: u8,
    /// In the subnet of an earlier address of the interface (`IFA_F_SECONDARY`).
    pub secondary: bool,
}

/// An IPv6 address on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addr6 {
    pub addr: Ipv6Addr,
    pub plen: u8,
}

/// One network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    pub ifindex: u32,
    pub name: String,
    pub kind: IfaceKind,
    pub mac: [u8; 6],
    pub mtu: u32,
    pub up: bool,
    pub addrs4: Vec<Addr4>,
    pub addrs6: Vec<Addr6>,
    /// `net.ipv4.conf.NAME.forwarding`.
    pub forwarding4: bool,
    /// `net.ipv6.conf.NAME.forwarding`.
    pub forwarding6: bool,
}

impl Iface {
    /// Whether the kernel keeps IPv6 state (an `inet6_dev`) for the device: its MTU is at
    /// least 1280.
    pub fn has_ipv6(&self) -> bool {
        self.mtu >= 1280
    }
}

/// One route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub table: u32,
    pub rtype: RouteType,
    /// The prefix (host bits zero); its family is the route's.
    pub dst: IpAddr,
    pub plen: u8,
    pub gateway: Option<IpAddr>,
    /// The output device (resolved through the gateway's connected route when the
    /// command named none). `None` for reject routes.
    pub dev: Option<u32>,
    /// `metric` (IPv4 `priority`).
    pub metric: u32,
    /// Route MTU (0: none); used by lookups only when locked (`mtu lock N`).
    pub mtu: u32,
    pub mtu_lock: bool,
    /// Preferred source (`src`).
    pub src: Option<IpAddr>,
    /// Added by the kernel (`proto kernel`), derived from addresses.
    pub kernel: bool,
}

impl Route {
    pub fn is_ipv4(&self) -> bool {
        self.dst.is_ipv4()
    }

    /// Whether the prefix covers `addr` (same family).
    pub fn covers(&self, addr: IpAddr) -> bool {
        match (self.dst, addr) {
            (IpAddr::V4(p), IpAddr::V4(a)) => mask4(a, self.plen) == p,
            (IpAddr::V6(p), IpAddr::V6(a)) => mask6(a, self.plen) == p,
            _ => false,
        }
    }
}

/// One neighbour entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neigh {
    pub ifindex: u32,
    pub addr: IpAddr,
    pub mac: Option<[u8; 6]>,
    pub state: NudState,
}

/// Why a FIB lookup found no next hop (the kernel's `fib_lookup` errors and types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupMiss {
    /// No route (or a table that does not exist).
    NoRoute,
    /// A reject route of this type.
    Reject(RouteType),
}

/// A network namespace's interfaces, routes and neighbours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Net {
    ifaces: Vec<Iface>,
    /// Routes added by commands (`kernel == false`).
    statics: Vec<Route>,
    /// `statics` plus the routes derived from addresses, rebuilt after every change.
    routes: Vec<Route>,
    neighs: Vec<Neigh>,
    /// `net.ipv4.conf.default.forwarding`, inherited by new devices.
    default_fwd4: bool,
    /// `net.ipv6.conf.default.forwarding`.
    default_fwd6: bool,
    /// Where the kernel's cyclic ifindex allocation continues.
    next_ifindex: u32,
}

impl Default for Net {
    fn default() -> Net {
        Net::new()
    }
}

fn mask4(a: Ipv4Addr, plen: u8) -> Ipv4Addr {
    let m = if plen == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(plen.min(32)))
    };
    Ipv4Addr::from(u32::from(a) & m)
}

fn mask6(a: Ipv6Addr, plen: u8) -> Ipv6Addr {
    let m = if plen == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(plen.min(128)))
    };
    Ipv6Addr::from(u128::from(a) & m)
}

fn mask(a: IpAddr, plen: u8) -> IpAddr {
    match a {
        IpAddr::V4(a) => IpAddr::V4(mask4(a, plen)),
        IpAddr::V6(a) => IpAddr::V6(mask6(a, plen)),
    }
}

fn is_loopback4(a: Ipv4Addr) -> bool {
    a.octets()[0] == 127
}

impl Net {
    /// A namespace as the kernel creates it: `lo` (ifindex 1) down, no addresses, no
    /// routes, forwarding off for IPv4 and IPv6. Every `bpf_fib_lookup` on it answers
    /// FWD_DISABLED for ifindex 1 and -ENODEV for any other.
    pub fn new() -> Net {
        Net {
            ifaces: vec![Iface {
                ifindex: 1,
                name: "lo".into(),
                kind: IfaceKind::Loopback,
                mac: [0; 6],
                mtu: 65536,
                up: false,
                addrs4: Vec::new(),
                addrs6: Vec::new(),
                forwarding4: false,
                forwarding6: false,
            }],
            statics: Vec::new(),
            routes: Vec::new(),
            neighs: Vec::new(),
            default_fwd4: false,
            default_fwd6: false,
            next_ifindex: 2,
        }
    }

    /// Every interface, by ifindex.
    pub fn ifaces(&self) -> &[Iface] {
        &self.ifaces
    }

    /// Every route (static and derived), in no particular order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Every neighbour entry.
    pub fn neighbours(&self) -> &[Neigh] {
        &self.neighs
    }

    /// The interface with `ifindex`.
    pub fn iface(&self, ifindex: u32) -> Option<&Iface> {
        self.ifaces
            .binary_search_by_key(&ifindex, |i| i.ifindex)
            .ok()
            .map(|i| &self.ifaces[i])
    }

    /// The interface called `name`.
    pub fn iface_by_name(&self, name: &str) -> Option<&Iface> {
        self.ifaces.iter().find(|i| i.name == name)
    }

    /// The usable link-layer address of neighbour `addr` on `ifindex`: an entry in a
    /// `NUD_VALID` state.
    pub fn neighbour(&self, ifindex: u32, addr: IpAddr) -> Option<[u8; 6]> {
        self.neighs
            .iter()
            .find(|n| n.ifindex == ifindex && n.addr == addr)
            .filter(|n| n.state.is_valid())
            .and_then(|n| n.mac)
    }

    /// The IPv4 FIB lookup (`fib_lookup` without policy rules, where the local and main
    /// tables share one trie; or `fib_table_lookup` of `table`): the longest matching
    /// prefix, the local table's route before main's for equal prefixes, then the lowest
    /// metric. A reject route ends the lookup; with `oif` non-zero, next hops through
    /// other devices are skipped (and shorter prefixes tried).
    pub fn lookup4(
        &self,
        table: Option<u32>,
        dst: Ipv4Addr,
        oif: u32,
    ) -> Result<&Route, LookupMiss> {
        let in_table = |t: u32| match table {
            None | Some(table::MAIN) | Some(table::LOCAL) => t == table::MAIN || t == table::LOCAL,
            Some(id) => t == id,
        };
        // The first route in (longest prefix, local table first, lowest metric) order
        // that is a reject route or has a next hop through `oif`.
        let best = self
            .routes
            .iter()
            .filter(|r| r.is_ipv4() && in_table(r.table) && r.covers(IpAddr::V4(dst)))
            .filter(|r| r.rtype.is_reject() || oif == 0 || r.dev == Some(oif))
            .min_by(|a, b| {
                b.plen
                    .cmp(&a.plen)
                    .then(b.table.cmp(&a.table))
                    .then(a.metric.cmp(&b.metric))
            });
        match best {
            Some(r) if r.rtype.is_reject() => Err(LookupMiss::Reject(r.rtype)),
            Some(r) => Ok(r),
            None => Err(LookupMiss::NoRoute),
        }
    }

    /// The IPv6 FIB lookup: without `table`, the local table, then main (`fib6_lookup`
    /// without policy rules); else that table alone. In a table: the longest matching
    /// prefix holding a route, its lowest metric, a route through `oif` first among equals.
    pub fn lookup6(
        &self,
        table: Option<u32>,
        dst: Ipv6Addr,
        oif: u32,
    ) -> Result<&Route, LookupMiss> {
        match table {
            Some(t) => self.lookup6_table(t, dst, oif),
            None => self
                .lookup6_table(table::LOCAL, dst, oif)
                .or_else(|_| self.lookup6_table(table::MAIN, dst, oif)),
        }
    }

    fn lookup6_table(&self, t: u32, dst: Ipv6Addr, oif: u32) -> Result<&Route, LookupMiss> {
        let best =
            self.routes
                .iter()
                .filter(|r| !r.is_ipv4() && r.table == t && r.covers(IpAddr::V6(dst)))
                .min_by(|a, b| {
                    b.plen.cmp(&a.plen).then(a.metric.cmp(&b.metric)).then(
                        (oif != 0 && a.dev != Some(oif)).cmp(&(oif != 0 && b.dev != Some(oif))),
                    )
                })
                .ok_or(LookupMiss::NoRoute)?;
        if best.rtype.is_reject() {
            return Err(LookupMiss::Reject(best.rtype));
        }
        Ok(best)
    }

    /// The kernel's `inet_select_addr(dev, dst, scope)`: the first primary address of
    /// `dev` within `scope` (the one in `dst`'s subnet if any), else the first primary
    /// non-link-scope address of any interface within `scope`; 0.0.0.0 if none.
    pub fn select_addr4(&self, dev: u32, dst: Option<Ipv4Addr>, scope: u8) -> Ipv4Addr {
        let ascope = |a: &Addr4| if is_loopback4(a.addr) { SCOPE_HOST } else { 0 };
        if let Some(i) = self.iface(dev) {
            let mut first = None;
            for a in i.addrs4.iter().filter(|a| !a.secondary) {
                if ascope(a) > scope {
                    continue;
                }
                match dst {
                    Some(d) if mask4(d, a.plen) != mask4(a.addr, a.plen) => {
                        first.get_or_insert(a.addr);
                    }
                    _ => return a.addr,
                }
            }
            if let Some(a) = first {
                return a;
            }
        }
        for i in &self.ifaces {
            for a in i.addrs4.iter().filter(|a| !a.secondary) {
                let s = ascope(a);
                if s != SCOPE_LINK && s <= scope {
                    return a.addr;
                }
            }
        }
        Ipv4Addr::UNSPECIFIED
    }

    /// IPv6 source address selection for `dst` out of `dev` (a subset of RFC 6724 as
    /// the kernel's `ipv6_dev_get_saddr`: same address, scope, outgoing interface,
    /// label, longest matching prefix), over the addresses of every interface that has
    /// IPv6. `None` when there is no candidate.
    pub fn select_addr6(&self, dev: u32, dst: Ipv6Addr) -> Option<Ipv6Addr> {
        let dscope = scope6(dst);
        let dlabel = label6(dst);
        let mut best: Option<([i64; 5], Ipv6Addr)> = None;
        for i in self.ifaces.iter().filter(|i| i.has_ipv6()) {
            for a in &i.addrs6 {
                let s = scope6(a.addr);
                let scope_score = if s >= dscope {
                    -i64::from(s)
                } else {
                    i64::from(s) - 128
                };
                let common = (u128::from(a.addr) ^ u128::from(dst)).leading_zeros();
                let score = [
                    i64::from(a.addr == dst),
                    scope_score,
                    i64::from(i.ifindex == dev),
                    i64::from(label6(a.addr) == dlabel),
                    i64::from(common.min(u32::from(a.plen))),
                ];
                if best.as_ref().is_none_or(|(b, _)| score > *b) {
                    best = Some((score, a.addr));
                }
            }
        }
        best.map(|(_, a)| a)
    }

    /// Whether `addr` is an address of one of the interfaces.
    pub fn is_local_addr(&self, addr: IpAddr) -> bool {
        self.ifaces.iter().any(|i| match addr {
            IpAddr::V4(a) => i.addrs4.iter().any(|x| x.addr == a),
            IpAddr::V6(a) => i.addrs6.iter().any(|x| x.addr == a),
        })
    }

    fn iface_index(&self, name: &str) -> Option<usize> {
        self.ifaces.iter().position(|i| i.name == name)
    }

    /// Rebuilds `routes`: the static routes plus those the kernel derives from the
    /// addresses of up interfaces.
    fn rebuild(&mut self) {
        let mut routes = self.statics.clone();
        let kroute = |table, rtype, dst: IpAddr, plen, dev, metric, src| Route {
            table,
            rtype,
            dst: mask(dst, plen),
            plen,
            gateway: None,
            dev: Some(dev),
            metric,
            mtu: 0,
            mtu_lock: false,
            src,
            kernel: true,
        };
        for i in self.ifaces.iter().filter(|i| i.up) {
            let lo = i.kind == IfaceKind::Loopback;
            for a in &i.addrs4 {
                let src = Some(IpAddr::V4(a.addr));
                let dev = i.ifindex;
                routes.push(kroute(
                    table::LOCAL,
                    RouteType::Local,
                    a.addr.into(),
                    32,
                    dev,
                    0,
                    src,
                ));
                if a.secondary {
                    continue;
                }
                if a.plen < 32 {
                    let (t, ty) = if lo {
                        (table::LOCAL, RouteType::Local)
                    } else {
                        (table::MAIN, RouteType::Unicast)
                    };
                    routes.push(kroute(t, ty, a.addr.into(), a.plen, dev, 0, src));
                }
                if a.plen < 31 {
                    let host = u32::MAX >> a.plen;
                    let bcast = Ipv4Addr::from(u32::from(a.addr) | host);
                    routes.push(kroute(
                        table::LOCAL,
                        RouteType::Broadcast,
                        bcast.into(),
                        32,
                        dev,
                        0,
                        src,
                    ));
                }
            }
            if !i.has_ipv6() {
                continue;
            }
            for a in &i.addrs6 {
                let dev = i.ifindex;
                routes.push(kroute(
                    table::LOCAL,
                    RouteType::Local,
                    a.addr.into(),
                    128,
                    dev,
                    0,
                    None,
                ));
                if a.plen < 128 && !lo {
                    routes.push(kroute(
                        table::MAIN,
                        RouteType::Unicast,
                        a.addr.into(),
                        a.plen,
                        dev,
                        256,
                        None,
                    ));
                }
                if i.forwarding6 && a.plen < 127 && !lo {
                    let net = mask6(a.addr, a.plen);
                    if !routes.iter().any(|r| {
                        r.table == table::LOCAL && r.dst == IpAddr::V6(net) && r.plen == 128
                    }) {
                        routes.push(kroute(
                            table::LOCAL,
                            RouteType::Anycast,
                            net.into(),
                            128,
                            dev,
                            0,
                            None,
                        ));
                    }
                }
            }
        }
        self.routes = routes;
    }
}

/// `RT_SCOPE_LINK`.
pub const SCOPE_LINK: u8 = 253;
/// `RT_SCOPE_HOST`.
pub const SCOPE_HOST: u8 = 254;

/// IPv6 address scope as the kernel's `__ipv6_addr_src_scope` (1 interface-local/
/// loopback, 2 link, 5 site, 14 global).
fn scope6(a: Ipv6Addr) -> u8 {
    let s = a.segments();
    if a.is_loopback() {
        1
    } else if s[0] & 0xff00 == 0xff00 {
        (s[0] & 0xf) as u8
    } else if s[0] & 0xffc0 == 0xfe80 {
        2
    } else if s[0] & 0xffc0 == 0xfec0 {
        5
    } else {
        14
    }
}

/// The default policy table's label (RFC 6724 section 2.1).
fn label6(a: Ipv6Addr) -> u8 {
    let x = u128::from(a);
    let pfx = |p: u128, len: u32| (x ^ p) >> (128 - len) == 0;
    if a.is_loopback() {
        0
    } else if pfx(0xffff_0000_0000u128, 96) {
        4
    } else if pfx(0x2002u128 << 112, 16) {
        2
    } else if pfx(0x2001u128 << 112, 32) {
        5
    } else if pfx(0xfc00u128 << 112, 7) {
        13
    } else if pfx(0, 96) {
        3
    } else if pfx(0xfec0u128 << 112, 10) {
        11
    } else if pfx(0x3ffeu128 << 112, 16) {
        12
    } else {
        1
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::NetError;

    /// The test namespace of the fib cases, shared with the helper's unit tests: the
    /// script the kernel's runs use, kept once in bpf-progs.
    pub(crate) const SETUP: &str = bpf_progs::FIB_NETNS_SETUP;

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn a_fresh_namespace_has_lo_down_and_nothing_else() {
        let n = Net::new();
        assert_eq!(n.ifaces().len(), 1);
        let lo = n.iface(1).unwrap();
        assert_eq!((lo.name.as_str(), lo.up, lo.mtu), ("lo", false, 65536));
        assert!(!lo.forwarding4 && !lo.forwarding6);
        assert!(n.routes().is_empty());
        assert_eq!(n.lookup4(None, v4("10.0.0.1"), 0), Err(LookupMiss::NoRoute));
        assert_eq!(Net::parse("# nothing\n\n").unwrap(), n);
    }

    /// The tables as `ip route show table all` lists them after the setup (asked of
    /// the kernel 6.18 in a scratch namespace).
    #[test]
    fn derived_routes_follow_the_kernel() {
        let n = Net::parse(SETUP).unwrap();
        let has = |table: u32, ty: RouteType, dst: &str, plen: u8, dev: Option<u32>| {
            n.routes().iter().any(|r| {
                r.table == table
                    && r.rtype == ty
                    && r.dst == dst.parse::<IpAddr>().unwrap()
                    && r.plen == plen
                    && r.dev == dev
            })
        };
        // 10.1.0.0/24 dev v0 proto kernel scope link src 10.1.0.1
        assert!(has(
            table::MAIN,
            RouteType::Unicast,
            "10.1.0.0",
            24,
            Some(10)
        ));
        // 10.2.0.0/16 via 10.1.0.2 dev v0
        assert!(has(
            table::MAIN,
            RouteType::Unicast,
            "10.2.0.0",
            16,
            Some(10)
        ));
        assert!(has(table::MAIN, RouteType::Blackhole, "10.3.0.0", 16, None));
        // local 10.1.0.1 dev v0 table local; broadcast 10.1.0.255 dev v0 table local
        assert!(has(
            table::LOCAL,
            RouteType::Local,
            "10.1.0.1",
            32,
            Some(10)
        ));
        assert!(has(
            table::LOCAL,
            RouteType::Broadcast,
            "10.1.0.255",
            32,
            Some(10)
        ));
        // local 127.0.0.0/8, local 127.0.0.1, broadcast 127.255.255.255 dev lo
        assert!(has(table::LOCAL, RouteType::Local, "127.0.0.0", 8, Some(1)));
        assert!(has(
            table::LOCAL,
            RouteType::Local,
            "127.0.0.1",
            32,
            Some(1)
        ));
        assert!(has(
            table::LOCAL,
            RouteType::Broadcast,
            "127.255.255.255",
            32,
            Some(1)
        ));
        // local ::1 dev lo table local
        assert!(has(table::LOCAL, RouteType::Local, "::1", 128, Some(1)));
        assert_eq!(n.routes().len(), 9);
        let v0 = n.iface_by_name("v0").unwrap();
        assert_eq!(v0.mac, [2, 0, 0, 0, 1, 1]);
        assert!(v0.forwarding4 && !v0.forwarding6);
        assert_eq!(n.iface(11).unwrap().kind, IfaceKind::Veth { peer: 10 });
        assert_eq!(
            n.neighbour(10, "10.1.0.2".parse().unwrap()),
            Some([2, 0, 0, 0, 1, 0xfe])
        );
        assert_eq!(n.neighbour(11, "10.1.0.2".parse().unwrap()), None);
    }

    #[test]
    fn ifindexes_are_allocated_as_the_kernel_does() {
        // Asked of the kernel: the veth peer is registered first; explicit indexes do
        // not move the allocator.
        let n = Net::parse(
            "ip link add v0 index 10 type veth peer name v1 index 11\nip link add a0 type veth peer name a1",
        )
        .unwrap();
        assert_eq!(n.iface_by_name("a1").unwrap().ifindex, 2);
        assert_eq!(n.iface_by_name("a0").unwrap().ifindex, 3);
    }

    #[test]
    fn lookups_pick_the_longest_prefix_then_local_then_metric() {
        let n = Net::parse(&format!(
            "{SETUP}\nip route add 10.2.3.0/24 via 10.1.0.2 metric 9\nip route add 10.2.3.0/24 via 10.1.0.3 metric 4\nip route add unreachable 10.4.0.0/16\nip route add 10.6.0.0/16 via 10.1.0.9 table 100"
        ))
        .unwrap();
        let r = n.lookup4(None, v4("10.2.3.4"), 0).unwrap();
        assert_eq!(
            (r.plen, r.metric, r.gateway),
            (24, 4, Some("10.1.0.3".parse().unwrap()))
        );
        assert_eq!(n.lookup4(None, v4("10.2.4.4"), 0).unwrap().plen, 16);
        assert_eq!(
            n.lookup4(None, v4("10.1.0.1"), 0).unwrap().rtype,
            RouteType::Local
        );
        assert_eq!(
            n.lookup4(None, v4("10.4.0.1"), 0),
            Err(LookupMiss::Reject(RouteType::Unreachable))
        );
        assert_eq!(n.lookup4(None, v4("10.6.0.1"), 0), Err(LookupMiss::NoRoute));
        assert_eq!(n.lookup4(Some(100), v4("10.6.0.1"), 0).unwrap().metric, 0);
        // With an output device, next hops through other devices are skipped.
        assert_eq!(
            n.lookup4(None, v4("10.2.3.4"), 11),
            Err(LookupMiss::NoRoute)
        );
    }

    #[test]
    fn taking_a_device_down_removes_its_routes() {
        let n = Net::parse(&format!("{SETUP}\nip link set v0 down")).unwrap();
        assert_eq!(n.lookup4(None, v4("10.2.0.1"), 0), Err(LookupMiss::NoRoute));
        assert_eq!(n.lookup4(None, v4("10.1.0.1"), 0), Err(LookupMiss::NoRoute));
        assert_eq!(
            n.lookup4(None, v4("10.3.0.1"), 0),
            Err(LookupMiss::Reject(RouteType::Blackhole))
        );
        assert_eq!(n.iface(10).unwrap().addrs4.len(), 1, "IPv4 addresses stay");
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("ip link set lo up\nip link set v9 up", 2, "v9"),
            ("\n# c\nip route add 10.0.0.0/8 via 10.1.0.1", 3, "invalid gateway"),
            ("ip link add v0 type veth", 1, "peer"),
            ("ip link add d0 type bridge", 1, "bridge"),
            ("iptables -F", 1, "iptables"),
            ("ip rule add from all table 5", 1, "rule"),
            ("sysctl -w net.ipv4.tcp_syncookies=1", 1, "unsupported key"),
            ("sysctl -w net.ipv4.ip_forward=2", 1, "value"),
            ("ip addr add 10.0.0.1/33 dev lo", 1, "prefix length"),
            ("ip neigh add 10.0.0.2 lladdr 02:00:00:00:00 dev lo", 1, "MAC"),
            ("ip link add v0 type veth peer name v1\nip addr add 10.0.0.1/24 dev v0\nip link set v0 up\nip route add 10.9.0.0/16 dev v0 src 10.0.0.7", 4, "prefsrc"),
            ("ip link add v0 type veth peer name v1\nip route add 10.9.0.0/16 dev v0", 2, "down"),
            ("ip link add v0 type veth peer name v1\nip link add v0 type veth peer name v2", 2, "exists"),
            ("ip route add 10.1.0.0/8 dev lo", 1, "host bits"),
            ("ip route add blackhole 10.0.0.0/8\nip route add blackhole 10.0.0.0/8", 2, "exists"),
        ];
        for (script, line, word) in cases {
            let e = Net::parse(script).expect_err(script);
            let (l, msg) = match &e {
                NetError::Command { line, .. } | NetError::NoDevice { line, .. } => {
                    (*line, e.to_string())
                }
            };
            assert_eq!(l, *line, "{script}: {e}");
            assert!(msg.contains(word), "{script}: {msg}");
            assert!(msg.contains(&format!("line {line}")), "{msg}");
        }
    }

    #[test]
    fn sysctls_set_forwarding_per_device_and_for_new_ones() {
        let n = Net::parse(
            "sysctl -w net.ipv6.conf.all.forwarding=1\nip link add v0 type veth peer name v1\nsysctl -qw net.ipv6.conf.v1.forwarding=0\nsysctl net/ipv4/conf/v0/forwarding=1",
        )
        .unwrap();
        let v0 = n.iface_by_name("v0").unwrap();
        let v1 = n.iface_by_name("v1").unwrap();
        assert!(v0.forwarding6 && !v1.forwarding6 && n.iface(1).unwrap().forwarding6);
        assert!(v0.forwarding4 && !v1.forwarding4);
    }

    #[test]
    fn source_selection() {
        let n = Net::parse(&format!(
            "{SETUP}\nip addr add 10.1.0.9/24 dev v0\nip addr add 192.168.5.1/24 dev v0\nip -6 addr add fd00:1::1/64 dev v0\nip -6 addr add 2001:db8::1/64 dev v1\nip link set v1 up"
        ))
        .unwrap();
        assert!(n.iface(10).unwrap().addrs4[1].secondary);
        assert_eq!(n.select_addr4(10, None, 0), v4("10.1.0.1"));
        assert_eq!(
            n.select_addr4(10, Some(v4("192.168.5.7")), 0),
            v4("192.168.5.1")
        );
        assert_eq!(n.select_addr4(11, None, 0), v4("10.1.0.1"));
        let a6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        assert_eq!(n.select_addr6(10, a6("fd00:2::5")), Some(a6("fd00:1::1")));
        assert_eq!(Net::new().select_addr6(1, a6("fd00::1")), None);
    }
}
