//! The `ip`/`sysctl` script a [`Net`] is built from: one command per line, the subset
//! of iproute2's syntax that sets up interfaces, addresses, neighbours and routes.

use std::net::IpAddr;

use super::*;
use crate::error::NetError;

impl Net {
    /// Builds a namespace from a script of `ip` and `sysctl` commands, one per line
    /// (`#` comments and blank lines ignored), applied to [`Net::new`]. Errors name the
    /// line (1-based).
    pub fn parse(script: &str) -> Result<Net, NetError> {
        let mut net = Net::new();
        net.apply(script)?;
        Ok(net)
    }

    /// Applies more commands (see [`Net::parse`]); line numbers count from 1 in
    /// `script`. On error the commands before the failing line stay applied.
    pub fn apply(&mut self, script: &str) -> Result<(), NetError> {
        for (i, raw) in script.lines().enumerate() {
            let text = match raw.find('#') {
                Some(p) => &raw[..p],
                None => raw,
            };
            let words: Vec<&str> = text.split_whitespace().collect();
            if words.is_empty() {
                continue;
            }
            let mut cmd = Cmd {
                line: i + 1,
                text: text.trim().to_string(),
                words,
                pos: 0,
            };
            self.command(&mut cmd)?;
            self.rebuild();
        }
        Ok(())
    }

    fn command(&mut self, c: &mut Cmd<'_>) -> Result<(), NetError> {
        match c.next() {
            Some("ip") => self.ip(c),
            Some("sysctl") => self.sysctl(c),
            Some(other) => Err(c.err(format!("unknown command {other:?} (ip or sysctl)"))),
            None => Ok(()),
        }
    }

    fn ip(&mut self, c: &mut Cmd<'_>) -> Result<(), NetError> {
        let mut family = None;
        let obj = loop {
            match c.next() {
                Some("-4") => family = Some(4),
                Some("-6") => family = Some(6),
                Some(w) => break w,
                None => return Err(c.err("ip: missing object (link, addr, neigh, route)")),
            }
        };
        match obj {
            "link" | "l" => self.ip_link(c),
            "addr" | "address" | "a" => self.ip_addr(c, family),
            "neigh" | "neighbor" | "neighbour" | "n" => self.ip_neigh(c, family),
            "route" | "r" | "ro" => self.ip_route(c, family),
            other => Err(c.err(format!("ip: unsupported object {other:?}"))),
        }
    }

    fn alloc_ifindex(&mut self, want: Option<u32>, c: &Cmd<'_>) -> Result<u32, NetError> {
        if let Some(i) = want {
            if i == 0 || i > i32::MAX as u32 {
                return Err(c.err(format!("invalid index {i}")));
            }
            if self.iface(i).is_some() {
                return Err(c.err(format!("ifindex {i} is in use")));
            }
            return Ok(i);
        }
        let mut i = self.next_ifindex.max(1);
        while self.iface(i).is_some() {
            i = if i >= i32::MAX as u32 { 1 } else { i + 1 };
        }
        self.next_ifindex = i + 1;
        Ok(i)
    }

    fn add_iface(&mut self, spec: &LinkSpec, kind: IfaceKind, ifindex: u32) {
        let mut mac = spec.mac.unwrap_or([0x02, 0, 0, 0, 0, 0]);
        if spec.mac.is_none() {
            // The kernel picks a random address; this model a fixed one per ifindex.
            mac[2..6].copy_from_slice(&ifindex.to_be_bytes());
        }
        let iface = Iface {
            ifindex,
            name: spec.name.clone(),
            kind,
            mac,
            mtu: spec.mtu.unwrap_or(1500),
            up: false,
            addrs4: Vec::new(),
            addrs6: Vec::new(),
            forwarding4: self.default_fwd4,
            forwarding6: self.default_fwd6,
        };
        let pos = self.ifaces.partition_point(|i| i.ifindex < ifindex);
        self.ifaces.insert(pos, iface);
    }

    fn ip_link(&mut self, c: &mut Cmd<'_>) -> Result<(), NetError> {
        match c.next() {
            Some("add") => {
                let spec = LinkSpec::parse(c, true)?;
                let kind = spec
                    .kind
                    .clone()
                    .ok_or_else(|| c.err("ip link add: missing type"))?;
                for n in std::iter::once(&spec.name).chain(spec.peer.as_ref().map(|p| &p.name)) {
                    if self.iface_index(n).is_some() {
                        return Err(c.err(format!("device {n:?} exists")));
                    }
                }
                match kind.as_str() {
                    "dummy" => {
                        if spec.peer.is_some() {
                            return Err(c.err("a dummy device has no peer"));
                        }
                        let idx = self.alloc_ifindex(spec.index, c)?;
                        self.add_iface(&spec, IfaceKind::Dummy, idx);
                    }
                    "veth" => {
                        let peer = spec.peer.clone().ok_or_else(|| {
                            c.err("ip link add ... type veth: give `peer name NAME`")
                        })?;
                        if peer.name == spec.name {
                            return Err(c.err("a veth and its peer need different names"));
                        }
                        // The kernel registers the peer first.
                        let pidx = self.alloc_ifindex(peer.index, c)?;
                        if spec.index == Some(pidx) {
                            return Err(c.err(format!("ifindex {pidx} is in use")));
                        }
                        self.add_iface(&peer, IfaceKind::Veth { peer: 0 }, pidx);
                        let idx = match self.alloc_ifindex(spec.index, c) {
                            Ok(i) => i,
                            Err(e) => {
                                self.ifaces.retain(|i| i.ifindex != pidx);
                                return Err(e);
                            }
                        };
                        self.add_iface(&spec, IfaceKind::Veth { peer: pidx }, idx);
                        if let Some(p) = self.ifaces.iter_mut().find(|i| i.ifindex == pidx) {
                            p.kind = IfaceKind::Veth { peer: idx };
                        }
                    }
                    other => {
                        return Err(c.err(format!("unsupported link type {other:?} (veth, dummy)")))
                    }
                }
                Ok(())
            }
            Some("set") => {
                let name = c.value("device name")?;
                let idx = self.iface_index(name).ok_or_else(|| c.no_dev(name))?;
                while let Some(w) = c.next() {
                    match w {
                        "up" => self.ifaces[idx].up = true,
                        "down" => {
                            self.ifaces[idx].up = false;
                            let ifindex = self.ifaces[idx].ifindex;
                            self.statics.retain(|r| r.dev != Some(ifindex));
                            self.ifaces[idx].addrs6.clear();
                        }
                        "mtu" => {
                            let m: u32 = c.number("mtu")?;
                            let min = if self.ifaces[idx].kind == IfaceKind::Loopback {
                                0
                            } else {
                                68
                            };
                            if m < min || m > 65535 && self.ifaces[idx].kind != IfaceKind::Loopback
                            {
                                return Err(c.err(format!("mtu {m} out of range")));
                            }
                            self.ifaces[idx].mtu = m;
                            if m < 1280 {
                                self.ifaces[idx].addrs6.clear();
                            }
                        }
                        "address" => {
                            let v = c.value("address")?;
                            self.ifaces[idx].mac =
                                parse_mac(v).ok_or_else(|| c.err(format!("bad MAC {v:?}")))?;
                        }
                        other => return Err(c.err(format!("ip link set: unsupported {other:?}"))),
                    }
                }
                if self.ifaces[idx].up && self.ifaces[idx].kind == IfaceKind::Loopback {
                    let lo = &mut self.ifaces[idx];
                    let l4 = Ipv4Addr::new(127, 0, 0, 1);
                    if !lo.addrs4.iter().any(|a| a.addr == l4) {
                        lo.addrs4.push(Addr4 {
                            addr: l4,
                            plen: 8,
                            secondary: false,
                        });
                    }
                    if lo.has_ipv6() && !lo.addrs6.iter().any(|a| a.addr == Ipv6Addr::LOCALHOST) {
                        lo.addrs6.push(Addr6 {
                            addr: Ipv6Addr::LOCALHOST,
                            plen: 128,
                        });
                    }
                }
                Ok(())
            }
            Some(other) => Err(c.err(format!("ip link: unsupported command {other:?} (add, set)"))),
            None => Err(c.err("ip link: missing command")),
        }
    }

    fn ip_addr(&mut self, c: &mut Cmd<'_>, family: Option<u8>) -> Result<(), NetError> {
        match c.next() {
            Some("add") => {}
            Some(other) => {
                return Err(c.err(format!("ip addr: unsupported command {other:?} (add)")))
            }
            None => return Err(c.err("ip addr: missing command")),
        }
        let mut prefix = None;
        let mut dev = None;
        while let Some(w) = c.next() {
            match w {
                "dev" => dev = Some(c.value("device")?),
                "nodad" => {}
                "local" => prefix = Some(c.value("address")?),
                w if prefix.is_none() => prefix = Some(w),
                other => return Err(c.err(format!("ip addr add: unsupported {other:?}"))),
            }
        }
        let prefix = prefix.ok_or_else(|| c.err("ip addr add: missing address"))?;
        let (addr, plen) = parse_prefix(prefix, family, c)?;
        let name = dev.ok_or_else(|| c.err("ip addr add: missing `dev NAME`"))?;
        let idx = self.iface_index(name).ok_or_else(|| c.no_dev(name))?;
        let iface = &mut self.ifaces[idx];
        match addr {
            IpAddr::V4(a) => {
                if iface.addrs4.iter().any(|x| x.addr == a) {
                    return Err(c.err(format!("address {a} exists on {name}")));
                }
                let secondary = iface.addrs4.iter().any(|x| {
                    !x.secondary && x.plen == plen && mask4(x.addr, plen) == mask4(a, plen)
                });
                iface.addrs4.push(Addr4 {
                    addr: a,
                    plen,
                    secondary,
                });
            }
            IpAddr::V6(a) => {
                if !iface.has_ipv6() {
                    return Err(c.err(format!("{name} has no IPv6 (mtu below 1280)")));
                }
                if iface.addrs6.iter().any(|x| x.addr == a) {
                    return Err(c.err(format!("address {a} exists on {name}")));
                }
                iface.addrs6.push(Addr6 { addr: a, plen });
            }
        }
        Ok(())
    }

    fn ip_neigh(&mut self, c: &mut Cmd<'_>, family: Option<u8>) -> Result<(), NetError> {
        let replace = match c.next() {
            Some("add") => false,
            Some("replace") | Some("change") => true,
            Some(other) => {
                return Err(c.err(format!(
                    "ip neigh: unsupported command {other:?} (add, replace)"
                )))
            }
            None => return Err(c.err("ip neigh: missing command")),
        };
        let (mut addr, mut mac, mut dev, mut state) = (None, None, None, NudState::Permanent);
        while let Some(w) = c.next() {
            match w {
                "lladdr" => {
                    let v = c.value("lladdr")?;
                    mac = Some(parse_mac(v).ok_or_else(|| c.err(format!("bad MAC {v:?}")))?);
                }
                "dev" => dev = Some(c.value("device")?),
                "nud" => {
                    let v = c.value("nud state")?;
                    state = NudState::parse(v)
                        .ok_or_else(|| c.err(format!("unknown nud state {v:?}")))?;
                }
                "to" => addr = Some(c.value("address")?),
                w if addr.is_none() => addr = Some(w),
                other => return Err(c.err(format!("ip neigh: unsupported {other:?}"))),
            }
        }
        let addr = addr.ok_or_else(|| c.err("ip neigh: missing address"))?;
        let addr = parse_addr(addr, family, c)?;
        let name = dev.ok_or_else(|| c.err("ip neigh: missing `dev NAME`"))?;
        let ifindex = self
            .iface_by_name(name)
            .ok_or_else(|| c.no_dev(name))?
            .ifindex;
        if mac.is_none() && state.is_valid() && state != NudState::NoArp {
            return Err(c.err("ip neigh: a valid state needs `lladdr MAC`"));
        }
        let n = Neigh {
            ifindex,
            addr,
            mac,
            state,
        };
        match self
            .neighs
            .iter_mut()
            .find(|x| x.ifindex == ifindex && x.addr == addr)
        {
            Some(_) if !replace => Err(c.err(format!("neighbour {addr} on {name} exists"))),
            Some(x) => {
                *x = n;
                Ok(())
            }
            None => {
                self.neighs.push(n);
                Ok(())
            }
        }
    }

    fn ip_route(&mut self, c: &mut Cmd<'_>, family: Option<u8>) -> Result<(), NetError> {
        let replace = match c.next() {
            Some("add") => false,
            Some("replace") => true,
            Some(other) => {
                return Err(c.err(format!(
                    "ip route: unsupported command {other:?} (add, replace)"
                )))
            }
            None => return Err(c.err("ip route: missing command")),
        };
        let mut rtype = None;
        let mut prefix = None;
        let (mut via, mut dev, mut metric, mut mtu, mut mtu_lock, mut src, mut tbl) =
            (None, None, None, 0u32, false, None, None);
        while let Some(w) = c.next() {
            match w {
                "unicast" | "local" | "blackhole" | "unreachable" | "prohibit" | "throw"
                    if rtype.is_none() && prefix.is_none() =>
                {
                    rtype = Some(match w {
                        "unicast" => RouteType::Unicast,
                        "local" => RouteType::Local,
                        "blackhole" => RouteType::Blackhole,
                        "unreachable" => RouteType::Unreachable,
                        "prohibit" => RouteType::Prohibit,
                        _ => RouteType::Throw,
                    })
                }
                "via" => via = Some(c.value("gateway")?),
                "dev" | "oif" => dev = Some(c.value("device")?),
                "metric" | "priority" | "preference" => metric = Some(c.number("metric")?),
                "mtu" => {
                    let v = c.value("mtu")?;
                    if v == "lock" {
                        mtu_lock = true;
                        mtu = c.number("mtu")?;
                    } else {
                        mtu = v.parse().map_err(|_| c.err(format!("bad mtu {v:?}")))?;
                    }
                }
                "src" => src = Some(c.value("source address")?),
                "table" => {
                    let v = c.value("table")?;
                    tbl = Some(match v {
                        "main" => table::MAIN,
                        "local" => table::LOCAL,
                        "default" => table::DEFAULT,
                        n => n
                            .parse::<u32>()
                            .ok()
                            .filter(|t| *t != 0)
                            .ok_or_else(|| c.err(format!("bad table {n:?}")))?,
                    })
                }
                "to" if prefix.is_none() => prefix = Some(c.value("prefix")?),
                w if prefix.is_none() => prefix = Some(w),
                other => return Err(c.err(format!("ip route: unsupported {other:?}"))),
            }
        }
        let prefix = prefix.ok_or_else(|| c.err("ip route: missing prefix"))?;
        let (dst, plen) = if prefix == "default" {
            let guess = via.map(|v| v.contains(':')).unwrap_or(false);
            match family {
                Some(6) => (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
                Some(_) => (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
                None if guess => (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
                None => (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            }
        } else {
            parse_prefix(prefix, family, c)?
        };
        let v4 = dst.is_ipv4();
        if mask(dst, plen) != dst {
            return Err(c.err(format!("invalid prefix {prefix} (host bits set)")));
        }
        let rtype = rtype.unwrap_or(RouteType::Unicast);
        let table_id = tbl.unwrap_or(if rtype == RouteType::Local {
            table::LOCAL
        } else {
            table::MAIN
        });
        let metric = metric.unwrap_or(if v4 { 0 } else { 1024 });
        let gateway = match via {
            Some(v) => {
                let g = parse_addr(v, Some(if v4 { 4 } else { 6 }), c)?;
                if g.is_ipv4() != v4 {
                    return Err(c.err("the gateway's family differs from the prefix's"));
                }
                Some(g)
            }
            None => None,
        };
        let mut dev_idx = match dev {
            Some(n) => {
                let i = self.iface_by_name(n).ok_or_else(|| c.no_dev(n))?;
                if rtype == RouteType::Unicast && !i.up {
                    return Err(c.err(format!("device {n} is down (Network is down)")));
                }
                Some(i.ifindex)
            }
            None => None,
        };
        if rtype.is_reject() {
            if gateway.is_some() {
                return Err(c.err("a reject route takes no gateway"));
            }
            // IPv6 reject routes go through lo.
            dev_idx = if v4 { None } else { Some(1) };
        } else if let Some(g) = gateway {
            // The gateway must be on a link: a connected route (no gateway) covers it.
            let on_link = self
                .routes
                .iter()
                .filter(|r| {
                    r.dst.is_ipv4() == v4
                        && (r.table == table::MAIN || r.table == table::LOCAL)
                        && matches!(r.rtype, RouteType::Unicast | RouteType::Local)
                        && r.gateway.is_none()
                        && r.covers(g)
                        && (dev_idx.is_none() || r.dev == dev_idx)
                })
                .max_by_key(|r| r.plen);
            match on_link {
                Some(r) => dev_idx = r.dev,
                None => return Err(c.err(format!("Nexthop has invalid gateway {g}"))),
            }
        } else if dev_idx.is_none() {
            return Err(c.err("ip route: give `via GATEWAY` or `dev NAME`"));
        }
        let src = match src {
            Some(s) => {
                let a = parse_addr(s, Some(if v4 { 4 } else { 6 }), c)?;
                if !self.is_local_addr(a) {
                    return Err(c.err(format!("Invalid prefsrc address {a}")));
                }
                Some(a)
            }
            None => None,
        };
        let route = Route {
            table: table_id,
            rtype,
            dst,
            plen,
            gateway,
            dev: dev_idx,
            metric,
            mtu,
            mtu_lock,
            src,
            kernel: false,
        };
        let same =
            |r: &Route| r.table == table_id && r.dst == dst && r.plen == plen && r.metric == metric;
        if let Some(pos) = self.statics.iter().position(same) {
            if !replace {
                return Err(c.err(format!(
                    "route {prefix} metric {metric} exists (File exists)"
                )));
            }
            self.statics[pos] = route;
        } else if self.routes.iter().any(same) && !replace {
            return Err(c.err(format!(
                "route {prefix} metric {metric} exists (File exists)"
            )));
        } else {
            self.statics.push(route);
        }
        Ok(())
    }

    fn sysctl(&mut self, c: &mut Cmd<'_>) -> Result<(), NetError> {
        let mut setting = None;
        while let Some(w) = c.next() {
            if let Some(opts) = w.strip_prefix('-') {
                if opts.is_empty() || !opts.chars().all(|ch| ch == 'w' || ch == 'q') {
                    return Err(c.err(format!("sysctl: unsupported option {w:?} (-w, -q)")));
                }
            } else if setting.is_none() {
                setting = Some(w);
            } else {
                return Err(c.err("sysctl: one KEY=VALUE per line"));
            }
        }
        let setting = setting.ok_or_else(|| c.err("sysctl: missing KEY=VALUE"))?;
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| c.err(format!("sysctl: {setting:?} is not KEY=VALUE")))?;
        let on = match value {
            "0" => false,
            "1" => true,
            v => return Err(c.err(format!("sysctl {key}: unsupported value {v:?} (0 or 1)"))),
        };
        let key = key.replace('/', ".");
        let (v6, which) = match key.as_str() {
            "net.ipv4.ip_forward" => (false, "all"),
            k => {
                let (v6, rest) = if let Some(r) = k.strip_prefix("net.ipv4.conf.") {
                    (false, r)
                } else if let Some(r) = k.strip_prefix("net.ipv6.conf.") {
                    (true, r)
                } else {
                    return Err(c.err(format!("sysctl: unsupported key {k:?}")));
                };
                let dev = rest.strip_suffix(".forwarding").ok_or_else(|| {
                    c.err(format!("sysctl: unsupported key {k:?} (only forwarding)"))
                })?;
                (v6, dev)
            }
        };
        let set = |i: &mut Iface| {
            if v6 {
                i.forwarding6 = on
            } else {
                i.forwarding4 = on
            }
        };
        match which {
            "all" => {
                self.ifaces.iter_mut().for_each(set);
                if v6 {
                    self.default_fwd6 = on;
                } else {
                    self.default_fwd4 = on;
                }
            }
            "default" => {
                if v6 {
                    self.default_fwd6 = on;
                } else {
                    self.default_fwd4 = on;
                }
            }
            name => {
                let idx = self.iface_index(name).ok_or_else(|| c.no_dev(name))?;
                set(&mut self.ifaces[idx]);
            }
        }
        Ok(())
    }
}

/// One command line being parsed.
struct Cmd<'a> {
    line: usize,
    text: String,
    words: Vec<&'a str>,
    pos: usize,
}

impl<'a> Cmd<'a> {
    fn next(&mut self) -> Option<&'a str> {
        let w = self.words.get(self.pos).copied();
        self.pos += 1;
        w
    }

    fn value(&mut self, what: &str) -> Result<&'a str, NetError> {
        self.next()
            .ok_or_else(|| self.err(format!("missing {what}")))
    }

    fn number<T: std::str::FromStr>(&mut self, what: &str) -> Result<T, NetError> {
        let v = self.value(what)?;
        v.parse().map_err(|_| self.err(format!("bad {what} {v:?}")))
    }

    fn err(&self, reason: impl Into<String>) -> NetError {
        NetError::Command {
            line: self.line,
            command: self.text.clone(),
            reason: reason.into(),
        }
    }

    fn no_dev(&self, name: &str) -> NetError {
        NetError::NoDevice {
            line: self.line,
            command: self.text.clone(),
            name: name.to_string(),
        }
    }
}

/// `NAME [index N] [address MAC] [mtu N] [type T] [peer name P [index N] ...]`.
#[derive(Clone)]
struct LinkSpec {
    name: String,
    index: Option<u32>,
    mac: Option<[u8; 6]>,
    mtu: Option<u32>,
    kind: Option<String>,
    peer: Option<Box<LinkSpec>>,
}

impl LinkSpec {
    fn parse(c: &mut Cmd<'_>, top: bool) -> Result<LinkSpec, NetError> {
        let mut spec = LinkSpec {
            name: String::new(),
            index: None,
            mac: None,
            mtu: None,
            kind: None,
            peer: None,
        };
        while let Some(w) = c.next() {
            match w {
                "name" | "dev" => spec.name = c.value("name")?.to_string(),
                "index" => spec.index = Some(c.number("index")?),
                "address" => {
                    let v = c.value("address")?;
                    spec.mac = Some(parse_mac(v).ok_or_else(|| c.err(format!("bad MAC {v:?}")))?);
                }
                "mtu" => spec.mtu = Some(c.number("mtu")?),
                "type" if top => {
                    spec.kind = Some(c.value("type")?.to_string());
                    if c.words.get(c.pos) == Some(&"peer") {
                        c.pos += 1;
                        spec.peer = Some(Box::new(LinkSpec::parse(c, false)?));
                    }
                }
                w if spec.name.is_empty() && top => spec.name = w.to_string(),
                other => return Err(c.err(format!("ip link add: unsupported {other:?}"))),
            }
        }
        if spec.name.is_empty() {
            return Err(c.err(if top {
                "ip link add: missing name"
            } else {
                "peer: missing `name NAME`"
            }));
        }
        if spec.name.len() > 15 {
            return Err(c.err(format!("name {:?} is longer than 15 bytes", spec.name)));
        }
        Ok(spec)
    }
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn parse_addr(s: &str, family: Option<u8>, c: &Cmd<'_>) -> Result<IpAddr, NetError> {
    let a: IpAddr = s.parse().map_err(|_| c.err(format!("bad address {s:?}")))?;
    match (family, a) {
        (Some(4), IpAddr::V6(_)) | (Some(6), IpAddr::V4(_)) => {
            Err(c.err(format!("address {s} is not of the family asked (-4/-6)")))
        }
        _ => Ok(a),
    }
}

fn parse_prefix(s: &str, family: Option<u8>, c: &Cmd<'_>) -> Result<(IpAddr, u8), NetError> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr = parse_addr(a, family, c)?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let plen = match len {
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| c.err(format!("bad prefix length in {s:?}")))?,
        None => max,
    };
    Ok((addr, plen))
}
