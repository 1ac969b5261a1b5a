//! XDP attachment by netlink, and the network devices XDP attaches to (as
//! seen from the calling process's network namespace).
//!
//! Only NETLINK_ROUTE sockets are looked at (marked when `socket(2)` makes
//! them, checked again with `SO_DOMAIN`/`SO_PROTOCOL` before use, since a
//! descriptor number may be reused):
//! - a datagram sent on one whose messages are all `RTM_SETLINK`/`RTM_NEWLINK`
//!   carrying `IFLA_XDP` (and at most the interface's name) never reaches the
//!   kernel: the shim attaches or detaches in the store (the kernel's
//!   `do_setlink` and `dev_change_xdp_fd` checks, `maps::Store::xdp_attach`)
//!   and queues the kernel's answer (ACK or error with its extack message);
//! - what is received on one is read from that queue first; a kernel datagram
//!   holding `RTM_NEWLINK` messages of interfaces with attachments in the store
//!   is rewritten so that their `IFLA_XDP` says the store's attachment (as
//!   `rtnl_xdp_fill`), which `ip link show` and `bpftool net show` print.
//!
//! A queued answer is not seen by poll(2): the tools read their answer
//! right after sending.

use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::user::{self, Errno};

const NLMSG_HDRLEN: usize = 16;
const IFINFO_LEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const RTM_NEWLINK: u16 = 16;
const RTM_SETLINK: u16 = 19;
const NLM_F_ACK: u16 = 4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
const IFLA_IFNAME: u16 = 3;
const IFLA_XDP: u16 = 43;
const IFLA_ALT_IFNAME: u16 = 53;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const IFLA_XDP_HW_PROG_ID: u16 = 7;
const IFLA_XDP_EXPECTED_FD: u16 = 8;
const XDP_ATTACHED_NONE: u8 = 0;
const XDP_ATTACHED_DRV: u8 = 1;
const XDP_ATTACHED_SKB: u8 = 2;
const XDP_ATTACHED_HW: u8 = 3;
const XDP_ATTACHED_MULTI: u8 = 4;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

/// The messages of a datagram, as (offset, length); None if one is malformed.
fn messages(d: &[u8]) -> Option<Vec<(usize, usize)>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + NLMSG_HDRLEN <= d.len() {
        let len = user::u32_at(d, off) as usize;
        if len < NLMSG_HDRLEN || off + len > d.len() {
            return None;
        }
        out.push((off, len));
        off += align4(len);
    }
    Some(out)
}

/// The attributes in `b`: (type without flags, offset of the attribute, its
/// length, aligned length); None if one is malformed.
fn attrs(b: &[u8]) -> Option<Vec<(u16, usize, usize)>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 4 <= b.len() {
        let len = u16_at(b, off) as usize;
        if len < 4 || off + len > b.len() {
            return None;
        }
        out.push((u16_at(b, off + 2) & NLA_TYPE_MASK, off, len));
        off += align4(len);
    }
    Some(out)
}

fn put_attr(out: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    out.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(align4(out.len()), 0);
}

/// A refusal: the errno and the kernel's extack message.
type Refusal = (Errno, Option<&'static str>);

fn einval() -> Refusal {
    (libc::EINVAL, None)
}

/// The ifindex a link message names (`ifi_index`, else IFLA_IFNAME), as
/// `rtnl_setlink` finds the device.
fn target(msg: &[u8], a: &[(u16, usize, usize)], body: &[u8]) -> Result<u32, Refusal> {
    let index = user::u32_at(msg, NLMSG_HDRLEN + 4) as i32;
    if index > 0 {
        return ifname(index as u32)
            .map(|_| index as u32)
            .ok_or((libc::ENODEV, None));
    }
    let name = a
        .iter()
        .find(|(t, _, _)| *t == IFLA_IFNAME || *t == IFLA_ALT_IFNAME)
        .map(|&(_, off, len)| &body[off + 4..off + len])
        .ok_or_else(einval)?;
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    let name = std::ffi::CString::new(&name[..end]).map_err(|_| einval())?;
    // SAFETY: name is a C string.
    let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if i == 0 {
        return Err((libc::ENODEV, None));
    }
    Ok(i)
}

/// The program id of an `IFLA_XDP_FD`/`EXPECTED_FD` descriptor, as
/// `bpf_prog_get_type_dev(fd, BPF_PROG_TYPE_XDP)` answers.
fn prog_of_fd(fd: i32) -> Result<u32, Refusal> {
    crate::bpf::xdp_prog_of(fd).map_err(|e| (e, None))
}

/// `do_setlink`'s IFLA_XDP part for one message (`ifi_index` or the name
/// already found), then `dev_change_xdp_fd`.
fn setlink_xdp(msg: &[u8], flags: u16, ty: u16) -> Result<(), Refusal> {
    if msg.len() < NLMSG_HDRLEN + IFINFO_LEN {
        return Err(einval());
    }
    let body = &msg[NLMSG_HDRLEN + IFINFO_LEN..];
    let a = attrs(body).ok_or_else(einval)?;
    let ifindex = target(msg, &a, body)?;
    if ty == RTM_NEWLINK && flags & NLM_F_EXCL != 0 {
        return Err((libc::EEXIST, None));
    }
    let Some(&(_, off, len)) = a.iter().find(|(t, _, _)| *t == IFLA_XDP) else {
        return Ok(());
    };
    let nest = &body[off + 4..off + len];
    let x = attrs(nest).ok_or_else(einval)?;
    let get = |t: u16| {
        x.iter()
            .rev()
            .find(|(ty, _, l)| *ty == t && *l >= 8)
            .map(|&(_, o, _)| user::u32_at(nest, o + 4))
    };
    if get(IFLA_XDP_ATTACHED).is_some()
        || x.iter()
            .any(|(t, _, _)| *t == IFLA_XDP_ATTACHED || *t == IFLA_XDP_PROG_ID)
    {
        return Err(einval());
    }
    let xflags = get(IFLA_XDP_FLAGS).unwrap_or(0);
    if xflags & !maps::XDP_FLAGS_MASK != 0 || (xflags & maps::XDP_FLAGS_MODES).count_ones() > 1 {
        return Err(einval());
    }
    let Some(fd) = get(IFLA_XDP_FD) else {
        return Ok(());
    };
    let mut expected_fd = -1i32;
    if xflags & maps::XDP_FLAGS_REPLACE != 0 {
        expected_fd = get(IFLA_XDP_EXPECTED_FD).ok_or_else(einval)? as i32;
    }
    let fd = fd as i32;
    let prog_id = if fd >= 0 { prog_of_fd(fd)? } else { 0 };
    let expected = if expected_fd >= 0 {
        Some(prog_of_fd(expected_fd)?)
    } else {
        None
    };
    let native = native_xdp(ifindex).ok_or((libc::ENODEV, None))?;
    let store = crate::state::store().map_err(|e| (e, None))?;
    crate::gc::collect_links(store);
    store
        .xdp_attach(&maps::XdpRequest {
            ifindex,
            prog_id,
            flags: xflags,
            expected,
            link: false,
            native,
            holder_pid: 0,
            netns: netns(),
        })
        .map(|_| ())
        .map_err(|e| match e {
            maps::ObjectError::XdpRefused { what, errno, .. } => (errno, Some(what)),
            e => (e.errno(), None),
        })
}

/// The ACK or error the kernel's `netlink_ack` sends for `msg`.
fn ack(msg: &[u8], portid: u32, r: Result<(), Refusal>) -> Vec<u8> {
    let (err, text) = match r {
        Ok(()) => (0, None),
        Err((e, t)) => (-e, t),
    };
    let mut out = vec![0u8; NLMSG_HDRLEN];
    out.extend_from_slice(&err.to_ne_bytes());
    out.extend_from_slice(&msg[..NLMSG_HDRLEN]);
    let mut flags = NLM_F_CAPPED;
    if let Some(t) = text {
        let mut s = t.as_bytes().to_vec();
        s.push(0);
        put_attr(&mut out, NLMSGERR_ATTR_MSG, &s);
        flags |= NLM_F_ACK_TLVS;
    }
    let len = out.len() as u32;
    out[0..4].copy_from_slice(&len.to_ne_bytes());
    out[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
    out[6..8].copy_from_slice(&flags.to_ne_bytes());
    out[8..12].copy_from_slice(&msg[8..12]);
    out[12..16].copy_from_slice(&portid.to_ne_bytes());
    out
}

/// Whether the shim answers this datagram: every message a link change
/// carrying IFLA_XDP and, besides it, at most the interface's name.
fn ours(d: &[u8]) -> Option<Vec<(usize, usize)>> {
    let msgs = messages(d)?;
    if msgs.is_empty() {
        return None;
    }
    for &(off, len) in &msgs {
        let m = &d[off..off + len];
        let ty = u16_at(m, 4);
        if (ty != RTM_SETLINK && ty != RTM_NEWLINK) || m.len() < NLMSG_HDRLEN + IFINFO_LEN {
            return None;
        }
        // ifi_flags and ifi_change: no other change asked.
        if user::u32_at(m, NLMSG_HDRLEN + 12) != 0 {
            return None;
        }
        let a = attrs(&m[NLMSG_HDRLEN + IFINFO_LEN..])?;
        if !a.iter().any(|(t, _, _)| *t == IFLA_XDP)
            || a.iter()
                .any(|(t, _, _)| ![IFLA_XDP, IFLA_IFNAME, IFLA_ALT_IFNAME].contains(t))
        {
            return None;
        }
    }
    Some(msgs)
}

/// The answer datagram to a request datagram the shim answers (None: the
/// kernel's to answer). `portid` is the socket's.
pub fn answer(d: &[u8], portid: u32) -> Option<Vec<u8>> {
    let msgs = ours(d)?;
    let mut out = Vec::new();
    for (off, len) in msgs {
        let m = &d[off..off + len];
        let flags = u16_at(m, 6);
        let r = setlink_xdp(m, flags, u16_at(m, 4));
        if r.is_err() || flags & NLM_F_ACK != 0 {
            out.extend_from_slice(&ack(m, portid, r));
        }
    }
    Some(out)
}

/// The IFLA_XDP nest `rtnl_xdp_fill` makes for these attachments of one device.
fn xdp_nest(atts: &[&maps::XdpAttachment]) -> Vec<u8> {
    let mut inner = Vec::new();
    let mut mode = XDP_ATTACHED_NONE;
    let mut prog = 0;
    for (m, attached, attr) in [
        (
            maps::XDP_FLAGS_SKB_MODE,
            XDP_ATTACHED_SKB,
            IFLA_XDP_SKB_PROG_ID,
        ),
        (
            maps::XDP_FLAGS_DRV_MODE,
            XDP_ATTACHED_DRV,
            IFLA_XDP_DRV_PROG_ID,
        ),
        (
            maps::XDP_FLAGS_HW_MODE,
            XDP_ATTACHED_HW,
            IFLA_XDP_HW_PROG_ID,
        ),
    ] {
        if let Some(a) = atts.iter().find(|a| a.mode == m) {
            prog = a.prog_id;
            put_attr(&mut inner, attr, &a.prog_id.to_ne_bytes());
            mode = if mode == XDP_ATTACHED_NONE {
                attached
            } else {
                XDP_ATTACHED_MULTI
            };
        }
    }
    put_attr(&mut inner, IFLA_XDP_ATTACHED, &[mode]);
    if prog != 0 && mode != XDP_ATTACHED_MULTI {
        put_attr(&mut inner, IFLA_XDP_PROG_ID, &prog.to_ne_bytes());
    }
    let mut out = Vec::new();
    put_attr(&mut out, IFLA_XDP | NLA_F_NESTED, &inner);
    out
}

/// A kernel datagram with the RTM_NEWLINK messages of devices in `atts`
/// saying those attachments; None when no message is about one.
pub fn rewrite(d: &[u8], atts: &[maps::XdpAttachment]) -> Option<Vec<u8>> {
    let msgs = messages(d)?;
    let mut changed = false;
    let mut out = Vec::with_capacity(d.len() + 64);
    for (off, len) in msgs {
        let m = &d[off..off + len];
        let here: Vec<&maps::XdpAttachment> =
            if u16_at(m, 4) == RTM_NEWLINK && m.len() >= NLMSG_HDRLEN + IFINFO_LEN {
                let ifindex = user::u32_at(m, NLMSG_HDRLEN + 4);
                atts.iter().filter(|a| a.ifindex == ifindex).collect()
            } else {
                Vec::new()
            };
        let body = &m[NLMSG_HDRLEN.min(m.len())..];
        let a = if here.is_empty() {
            None
        } else {
            attrs(&body[IFINFO_LEN..])
        };
        let Some(a) = a else {
            out.extend_from_slice(m);
            out.resize(align4(out.len()), 0);
            continue;
        };
        changed = true;
        let start = out.len();
        out.extend_from_slice(&m[..NLMSG_HDRLEN + IFINFO_LEN]);
        let attrs_base = NLMSG_HDRLEN + IFINFO_LEN;
        for (t, o, l) in a {
            if t != IFLA_XDP {
                out.extend_from_slice(&m[attrs_base + o..attrs_base + o + l]);
                out.resize(align4(out.len()), 0);
            }
        }
        out.extend_from_slice(&xdp_nest(&here));
        let len = (out.len() - start) as u32;
        out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }
    changed.then_some(out)
}

/// NETLINK_ROUTE sockets made by `socket(2)`, one bit per descriptor below 65536.
static RTNL: [AtomicU64; 1024] = [const { AtomicU64::new(0) }; 1024];

/// Records that `fd` was made a NETLINK_ROUTE socket.
pub fn mark(fd: c_int) {
    if let Some(w) = usize::try_from(fd).ok().and_then(|f| RTNL.get(f / 64)) {
        w.fetch_or(1 << (fd % 64), Ordering::Relaxed);
    }
}

fn sockopt(fd: c_int, opt: c_int) -> Option<c_int> {
    let mut v: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: v and len are writable and sized for an int option.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            &mut v as *mut c_int as *mut c_void,
            &mut len,
        )
    };
    (r == 0).then_some(v)
}

/// Whether `fd` is a NETLINK_ROUTE socket made while the shim ran.
pub fn is_rtnl(fd: c_int) -> bool {
    let Some(w) = usize::try_from(fd).ok().and_then(|f| RTNL.get(f / 64)) else {
        return false;
    };
    let bit = 1u64 << (fd % 64);
    if w.load(Ordering::Relaxed) & bit == 0 {
        return false;
    }
    let yes = sockopt(fd, libc::SO_DOMAIN) == Some(libc::AF_NETLINK)
        && sockopt(fd, libc::SO_PROTOCOL) == Some(libc::NETLINK_ROUTE);
    if !yes {
        w.fetch_and(!bit, Ordering::Relaxed);
    }
    yes
}

/// The socket's netlink port id (0 if unbound).
fn portid(fd: c_int) -> u32 {
    // SAFETY: sockaddr_nl is plain data.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    // SAFETY: sa and len are writable, len its size.
    let r = unsafe { libc::getsockname(fd, &mut sa as *mut _ as *mut libc::sockaddr, &mut len) };
    if r == 0 {
        sa.nl_pid
    } else {
        0
    }
}

/// Datagrams the application receives before the kernel's, per descriptor.
static QUEUE: Mutex<Vec<(c_int, VecDeque<Vec<u8>>)>> = Mutex::new(Vec::new());

fn queue<T>(f: impl FnOnce(&mut Vec<(c_int, VecDeque<Vec<u8>>)>) -> T) -> T {
    let mut q = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
    let r = f(&mut q);
    q.retain(|(_, d)| !d.is_empty());
    r
}

fn push(fd: c_int, d: Vec<u8>, front: bool) {
    queue(|q| {
        let i = match q.iter().position(|(f, _)| *f == fd) {
            Some(i) => i,
            None => {
                q.push((fd, VecDeque::new()));
                q.len() - 1
            }
        };
        if front {
            q[i].1.push_front(d)
        } else {
            q[i].1.push_back(d)
        }
    })
}

fn front(fd: c_int) -> Option<Vec<u8>> {
    queue(|q| q.iter().find(|(f, _)| *f == fd)?.1.front().cloned())
}

fn pop(fd: c_int) {
    queue(|q| {
        if let Some((_, d)) = q.iter_mut().find(|(f, _)| *f == fd) {
            d.pop_front();
        }
    })
}

/// A request datagram sent on `fd` (a NETLINK_ROUTE socket): Some(len) when
/// the shim answered it (its answer is queued), None when it goes to the kernel.
pub fn send(fd: c_int, d: &[u8]) -> Option<usize> {
    let reply = answer(d, portid(fd))?;
    if !reply.is_empty() {
        push(fd, reply, false);
    }
    Some(d.len())
}

/// Where a receive call puts a datagram.
pub enum Dest {
    /// recvmsg: the application's `struct msghdr`.
    Msg(u64),
    /// recv/recvfrom: a buffer, and the source address and its length (0: none).
    Buf {
        buf: u64,
        len: usize,
        addr: u64,
        addrlen: u64,
    },
}

static RECVFROM: crate::real::Next = crate::real::Next::new(b"recvfrom\0");

fn real_recv(fd: c_int, buf: &mut [u8], flags: c_int) -> isize {
    let f = RECVFROM.get();
    if f == 0 {
        crate::set_errno(libc::ENOSYS);
        return -1;
    }
    // SAFETY: f is libc's recvfrom; buf is writable for its length; no address asked.
    unsafe {
        let f: unsafe extern "C" fn(
            c_int,
            *mut c_void,
            usize,
            c_int,
            *mut libc::sockaddr,
            *mut libc::socklen_t,
        ) -> isize = std::mem::transmute(f);
        f(
            fd,
            buf.as_mut_ptr() as *mut c_void,
            buf.len(),
            flags,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    }
}

/// The kernel's address of a netlink datagram (`sockaddr_nl`, port 0).
fn kernel_addr() -> [u8; 12] {
    let mut a = [0u8; 12];
    a[..2].copy_from_slice(&(libc::AF_NETLINK as u16).to_ne_bytes());
    a
}

fn serve(fd: c_int, d: &[u8], dest: &Dest, flags: c_int) -> Result<isize, Errno> {
    let mut copied = 0usize;
    match *dest {
        Dest::Msg(m) => {
            let h = user::read(m, 56)?;
            let (name, namelen) = (user::u64_at(&h, 0), user::u32_at(&h, 8));
            let (iov, iovlen) = (user::u64_at(&h, 16), user::u64_at(&h, 24) as usize);
            if iovlen > 1024 {
                return Err(libc::EMSGSIZE);
            }
            let v = user::read(iov, iovlen * 16)?;
            for i in 0..iovlen {
                let (base, len) = (
                    user::u64_at(&v, i * 16),
                    user::u64_at(&v, i * 16 + 8) as usize,
                );
                let n = len.min(d.len() - copied);
                if n > 0 {
                    user::write(base, &d[copied..copied + n])?;
                    copied += n;
                }
            }
            if name != 0 && namelen as usize >= 12 {
                user::write(name, &kernel_addr())?;
                user::write(m + 8, &12u32.to_ne_bytes())?;
            }
            user::write(m + 40, &0u64.to_ne_bytes())?;
            let mf = if copied < d.len() { libc::MSG_TRUNC } else { 0 };
            user::write(m + 48, &mf.to_ne_bytes())?;
        }
        Dest::Buf {
            buf,
            len,
            addr,
            addrlen,
        } => {
            copied = len.min(d.len());
            user::write(buf, &d[..copied])?;
            if addr != 0 && addrlen != 0 {
                let have = user::u32_at(&user::read(addrlen, 4)?, 0) as usize;
                let a = kernel_addr();
                user::write(addr, &a[..have.min(12)])?;
                user::write(addrlen, &12u32.to_ne_bytes())?;
            }
        }
    }
    if flags & libc::MSG_PEEK == 0 {
        pop(fd);
    }
    Ok(if flags & libc::MSG_TRUNC != 0 {
        d.len() as isize
    } else {
        copied as isize
    })
}

/// A receive on `fd` (a NETLINK_ROUTE socket): Some(result) when the shim
/// answers it, None when the application's call goes to the kernel as made.
pub fn recv(fd: c_int, dest: Dest, flags: c_int) -> Option<Result<isize, Errno>> {
    if let Some(d) = front(fd) {
        return Some(serve(fd, &d, &dest, flags));
    }
    let store = crate::state::store_if_exists()?;
    // Links whose last descriptor closed are not reported.
    crate::gc::collect_links(store);
    let ns = netns();
    let atts: Vec<maps::XdpAttachment> = store
        .xdp_attachments()
        .into_iter()
        .filter(|a| a.ifindex != 0 && a.netns == ns)
        .collect();
    if atts.is_empty() {
        return None;
    }
    let wait = flags & libc::MSG_DONTWAIT;
    let mut buf = vec![0u8; 65536];
    let n = loop {
        let n = real_recv(fd, &mut buf, libc::MSG_PEEK | libc::MSG_TRUNC | wait);
        if n < 0 {
            return Some(Err(crate::fds::errno()));
        }
        if n as usize > buf.len() {
            buf.resize(n as usize, 0);
            continue;
        }
        break n as usize;
    };
    let new = rewrite(&buf[..n], &atts)?;
    if real_recv(fd, &mut buf, wait) < 0 {
        return Some(Err(crate::fds::errno()));
    }
    push(fd, new.clone(), true);
    Some(serve(fd, &new, &dest, flags))
}

/// Drivers whose devices have native XDP (`ndo_bpf`), by ethtool driver name.
const NATIVE_DRIVERS: &[&str] = &[
    "veth",
    "tun",
    "virtio_net",
    "netdevsim",
    "ixgbe",
    "ixgbevf",
    "i40e",
    "ice",
    "igb",
    "igc",
    "mlx4_en",
    "mlx5_core",
    "bnxt_en",
    "nfp",
    "ena",
    "qede",
    "sfc",
    "thunder-nicvf",
    "hv_netvsc",
    "vif",
    "dpaa2-eth",
    "mvneta",
    "mvpp2",
    "stmmaceth",
    "fec",
    "gve",
    "bond",
];

/// `ETHTOOL_GDRVINFO`.
const ETHTOOL_GDRVINFO: u32 = 3;
/// sizeof(struct ethtool_drvinfo).
const DRVINFO_SIZE: usize = 196;

/// The calling process's network namespace, as the store records it (the low
/// 32 bits of the inode of `/proc/self/ns/net`; 0 if unknown).
pub fn netns() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/net").map_or(0, |m| m.ino() as u32)
}

/// The name of interface `ifindex`, None if there is none.
pub fn ifname(ifindex: u32) -> Option<String> {
    if ifindex == 0 {
        return None;
    }
    let mut buf = [0 as c_char; libc::IF_NAMESIZE];
    // SAFETY: buf holds IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into buf.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// The ethtool driver name of interface `name`, if it says one.
fn driver(name: &str) -> Option<String> {
    let mut info = [0u8; DRVINFO_SIZE];
    info[..4].copy_from_slice(&ETHTOOL_GDRVINFO.to_ne_bytes());
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IF_NAMESIZE - 1))
    {
        *d = s as c_char;
    }
    ifr.ifr_ifru.ifru_data = info.as_mut_ptr() as *mut c_char;
    // SAFETY: plain socket creation; the descriptor is closed below.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return None;
    }
    // SAFETY: ifr names the interface and points at a drvinfo buffer of the
    // kernel's size, alive across the call.
    let r = unsafe { libc::ioctl(s, libc::SIOCETHTOOL, &mut ifr) };
    // SAFETY: s is ours.
    unsafe { libc::close(s) };
    if r != 0 {
        return None;
    }
    let d = &info[4..36];
    let end = d.iter().position(|&b| b == 0).unwrap_or(d.len());
    Some(String::from_utf8_lossy(&d[..end]).into_owned())
}

/// Whether interface `ifindex` has native XDP (its driver has `ndo_bpf`);
/// None if there is no such interface.
pub fn native_xdp(ifindex: u32) -> Option<bool> {
    let name = ifname(ifindex)?;
    Some(driver(&name).is_some_and(|d| NATIVE_DRIVERS.contains(&d.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link_msg(ty: u16, flags: u16, ifindex: u32, attrs: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; NLMSG_HDRLEN + IFINFO_LEN];
        m.extend_from_slice(attrs);
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        m[4..6].copy_from_slice(&ty.to_ne_bytes());
        m[6..8].copy_from_slice(&flags.to_ne_bytes());
        m[8..12].copy_from_slice(&7u32.to_ne_bytes());
        m[NLMSG_HDRLEN + 4..NLMSG_HDRLEN + 8].copy_from_slice(&ifindex.to_ne_bytes());
        m
    }

    fn att(ifindex: u32, mode: u32, prog_id: u32) -> maps::XdpAttachment {
        maps::XdpAttachment {
            ifindex,
            mode,
            prog_id,
            link_id: 0,
            flags: 0,
            netns: 0,
            holder_pid: 0,
        }
    }

    #[test]
    fn getlink_replies_say_the_stores_attachment() {
        // A kernel RTM_NEWLINK of ifindex 3: IFLA_IFNAME "va", IFLA_XDP {ATTACHED 0}.
        let mut a = Vec::new();
        put_attr(&mut a, IFLA_IFNAME, b"va\0");
        let mut nest = Vec::new();
        put_attr(&mut nest, IFLA_XDP_ATTACHED, &[0]);
        put_attr(&mut a, IFLA_XDP | NLA_F_NESTED, &nest);
        let m = link_msg(RTM_NEWLINK, 0, 3, &a);
        let other = link_msg(RTM_NEWLINK, 0, 4, &a);
        let mut d = m.clone();
        d.extend_from_slice(&other);
        assert_eq!(rewrite(&d, &[att(9, maps::XDP_FLAGS_SKB_MODE, 5)]), None);
        let out = rewrite(&d, &[att(3, maps::XDP_FLAGS_SKB_MODE, 5)]).expect("rewritten");
        let msgs = messages(&out).expect("well formed");
        assert_eq!(msgs.len(), 2);
        let (o, l) = msgs[0];
        let first = &out[o..o + l];
        let a = attrs(&first[NLMSG_HDRLEN + IFINFO_LEN..]).expect("attrs");
        let (_, xo, xl) = *a.iter().find(|(t, _, _)| *t == IFLA_XDP).expect("IFLA_XDP");
        let nest = &first[NLMSG_HDRLEN + IFINFO_LEN + xo + 4..NLMSG_HDRLEN + IFINFO_LEN + xo + xl];
        let x = attrs(nest).expect("nest");
        let kinds: Vec<u16> = x.iter().map(|(t, _, _)| *t).collect();
        // rtnl_xdp_fill's order: the mode's prog id, ATTACHED, PROG_ID.
        assert_eq!(
            kinds,
            vec![IFLA_XDP_SKB_PROG_ID, IFLA_XDP_ATTACHED, IFLA_XDP_PROG_ID]
        );
        assert_eq!(nest[x[1].1 + 4], XDP_ATTACHED_SKB);
        assert_eq!(user::u32_at(nest, x[2].1 + 4), 5);
        // The other device's message is untouched.
        assert_eq!(&out[msgs[1].0..msgs[1].0 + msgs[1].1], &other[..]);
        // Two modes: MULTI, and no PROG_ID.
        let both = [
            att(3, maps::XDP_FLAGS_SKB_MODE, 5),
            att(3, maps::XDP_FLAGS_HW_MODE, 6),
        ];
        let refs: Vec<&maps::XdpAttachment> = both.iter().collect();
        let n = xdp_nest(&refs);
        let x = attrs(&n[4..]).expect("nest");
        assert_eq!(x.len(), 3);
        assert_eq!(n[4 + x[2].1 + 4], XDP_ATTACHED_MULTI);
    }

    #[test]
    fn malformed_datagrams_are_left_to_the_kernel() {
        // Every prefix and every one-byte corruption of a request and of a
        // reply: no panic, and a truncated message is never answered.
        let mut x = Vec::new();
        put_attr(&mut x, IFLA_XDP_FD, &(-1i32).to_ne_bytes());
        put_attr(&mut x, IFLA_XDP_FLAGS, &2u32.to_ne_bytes());
        let mut a = Vec::new();
        put_attr(&mut a, IFLA_IFNAME, b"lo\0");
        put_attr(&mut a, IFLA_XDP | NLA_F_NESTED, &x);
        let req = link_msg(RTM_SETLINK, NLM_F_ACK, 0, &a);
        let reply = link_msg(RTM_NEWLINK, 0, 1, &a);
        let atts = [att(1, maps::XDP_FLAGS_SKB_MODE, 3)];
        for d in [&req, &reply] {
            for n in 0..d.len() {
                assert!(ours(&d[..n]).is_none() || n == d.len());
                let _ = rewrite(&d[..n], &atts);
            }
            let mut seed = 0x2545_f491_4f6c_dd1du64;
            for i in 0..4 * d.len() {
                let mut c = d.to_vec();
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                c[i % d.len()] = seed as u8;
                let _ = ours(&c);
                let _ = rewrite(&c, &atts);
                if let Some(m) = messages(&c) {
                    for (o, l) in m {
                        if l >= NLMSG_HDRLEN + IFINFO_LEN {
                            let body = &c[o + NLMSG_HDRLEN + IFINFO_LEN..o + l];
                            let _ = attrs(body);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn only_xdp_link_changes_are_answered() {
        let mut x = Vec::new();
        put_attr(&mut x, IFLA_XDP_FD, &(-1i32).to_ne_bytes());
        let mut a = Vec::new();
        put_attr(&mut a, IFLA_XDP | NLA_F_NESTED, &x);
        assert!(ours(&link_msg(RTM_SETLINK, NLM_F_ACK, 1, &a)).is_some());
        assert!(ours(&link_msg(RTM_NEWLINK, NLM_F_ACK, 1, &a)).is_some());
        // Another change in the same message, or another message type: the kernel's.
        let mut mtu = a.clone();
        put_attr(&mut mtu, 4, &1400u32.to_ne_bytes());
        assert!(ours(&link_msg(RTM_SETLINK, NLM_F_ACK, 1, &mtu)).is_none());
        assert!(ours(&link_msg(18, NLM_F_ACK, 1, &a)).is_none());
        assert!(ours(&link_msg(RTM_SETLINK, NLM_F_ACK, 1, &[])).is_none());
        // An error ACK echoes the header and carries the extack message.
        let m = link_msg(RTM_SETLINK, NLM_F_ACK, 1, &a);
        let e = ack(&m, 42, Err((libc::EBUSY, Some("busy"))));
        assert_eq!(u16_at(&e, 4), NLMSG_ERROR);
        assert_eq!(u16_at(&e, 6), NLM_F_CAPPED | NLM_F_ACK_TLVS);
        assert_eq!(user::u32_at(&e, 8), 7);
        assert_eq!(user::u32_at(&e, 12), 42);
        assert_eq!(user::u32_at(&e, 16) as i32, -libc::EBUSY);
        assert_eq!(&e[20..36], &m[..16]);
        assert_eq!(&e[40..45], b"busy\0");
    }

    #[test]
    fn loopback_has_no_native_xdp() {
        assert_eq!(native_xdp(1), Some(false));
        assert_eq!(ifname(1).as_deref(), Some("lo"));
        assert_eq!(native_xdp(0), None);
        assert_eq!(native_xdp(0x7fff_fff0), None);
    }
}
