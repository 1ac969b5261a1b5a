//! A TAP device to hand frames to the host's stack: in AF_XDP mode the kernel no
//! longer sees a frame the socket received, so XDP_PASS writes it to a TAP device,
//! where the stack receives it as arriving on that device.
//!
//! The TAP device stands in for the interface on the host's side: it takes the
//! interface's MAC address, and the host's addresses for that link belong on it
//! (not on the interface, whose frames the host no longer receives). What the host
//! sends out of the TAP device goes out of the interface ([`crate::attach`] reads
//! it), so ARP, neighbour discovery and replies work as on the interface itself. It
//! exists while this value lives.
//!
//! This module holds unsafe code: the /dev/net/tun and interface ioctls.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::live_error::LiveError;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;
const SIOCGIFFLAGS: libc::c_ulong = 0x8913;
const SIOCSIFFLAGS: libc::c_ulong = 0x8914;
const SIOCGIFHWADDR: libc::c_ulong = 0x8927;
const SIOCSIFHWADDR: libc::c_ulong = 0x8924;
const ARPHRD_ETHER: u16 = 1;

/// `struct ifreq`: the name, then a 24-byte union (flags, or a sockaddr).
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    data: [u8; 24],
}

impl IfReq {
    fn new(name: &str) -> IfReq {
        let mut r = IfReq {
            name: [0; 16],
            data: [0; 24],
        };
        let n = name.len().min(15);
        r.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        r
    }
}

fn ioctl(fd: i32, req: libc::c_ulong, ifr: &mut IfReq) -> io::Result<()> {
    // SAFETY: `ifr` is a live `struct ifreq` (40 bytes) for the ioctls used here,
    // which read and write only within it.
    let r = unsafe { libc::ioctl(fd, req as _, ifr as *mut IfReq) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A datagram socket for interface ioctls.
fn ctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just returned and owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The MAC address of interface `name`.
pub fn mac_address(name: &str) -> Result<[u8; 6], LiveError> {
    let err = |source| LiveError::Socket {
        op: "ioctl(SIOCGIFHWADDR)",
        iface: name.to_string(),
        source,
    };
    let s = ctl_socket().map_err(err)?;
    let mut ifr = IfReq::new(name);
    ioctl(s.as_raw_fd(), SIOCGIFHWADDR, &mut ifr).map_err(err)?;
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&ifr.data[2..8]);
    Ok(mac)
}

/// A TAP device, up, removed when this value is dropped.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
}

impl Tap {
    /// Creates TAP device `name` (at most 15 bytes) with MAC address `mac`, and
    /// brings it up. Needs CAP_NET_ADMIN.
    pub fn create(name: &str, mac: [u8; 6]) -> Result<Tap, LiveError> {
        let err = |op: &'static str| {
            move |source: io::Error| {
                if source.raw_os_error() == Some(libc::EPERM) {
                    LiveError::NotPermitted {
                        what: "a TAP device for XDP_PASS",
                        needs: "CAP_NET_ADMIN",
                        source,
                    }
                } else {
                    LiveError::Socket {
                        op,
                        iface: name.to_string(),
                        source,
                    }
                }
            }
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map_err(err("open(/dev/net/tun)"))?;
        let mut ifr = IfReq::new(name);
        ifr.data[..2].copy_from_slice(&(IFF_TAP | IFF_NO_PI).to_ne_bytes());
        ioctl(file.as_raw_fd(), TUNSETIFF, &mut ifr).map_err(err("ioctl(TUNSETIFF)"))?;
        let real = String::from_utf8_lossy(&ifr.name)
            .trim_end_matches('\0')
            .to_string();
        let s = ctl_socket().map_err(err("socket(AF_INET)"))?;
        let mut ifr = IfReq::new(&real);
        ifr.data[..2].copy_from_slice(&ARPHRD_ETHER.to_ne_bytes());
        ifr.data[2..8].copy_from_slice(&mac);
        ioctl(s.as_raw_fd(), SIOCSIFHWADDR, &mut ifr).map_err(err("ioctl(SIOCSIFHWADDR)"))?;
        let mut ifr = IfReq::new(&real);
        ioctl(s.as_raw_fd(), SIOCGIFFLAGS, &mut ifr).map_err(err("ioctl(SIOCGIFFLAGS)"))?;
        let flags = i16::from_ne_bytes([ifr.data[0], ifr.data[1]]) | libc::IFF_UP as i16;
        ifr.data[..2].copy_from_slice(&flags.to_ne_bytes());
        ioctl(s.as_raw_fd(), SIOCSIFFLAGS, &mut ifr).map_err(err("ioctl(SIOCSIFFLAGS)"))?;
        Ok(Tap { file, name: real })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits up to `timeout_ms` for a frame the host sent out of the TAP device and
    /// reads it into `buf`; `Ok(false)` on timeout.
    pub fn recv(&self, buf: &mut Vec<u8>, timeout_ms: i32) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EINTR) {
                Ok(false)
            } else {
                Err(e)
            };
        }
        if r == 0 {
            return Ok(false);
        }
        buf.resize(65536, 0);
        match (&self.file).read(buf) {
            Ok(n) => {
                buf.truncate(n);
                Ok(n > 0)
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                buf.clear();
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Hands one frame (from its Ethernet header) to the host's stack.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        (&self.file).write_all(frame)
    }
}
