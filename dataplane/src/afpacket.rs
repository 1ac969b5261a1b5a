//! AF_PACKET sockets: a TPACKET_V3 receive ring joined to a hash fanout group, and
//! transmission with `send(2)` on a socket bound to the interface.
//!
//! What the kernel does with such a socket, and what it means for XDP actions:
//! - AF_PACKET only *copies*: every frame the socket sees has also gone (or will go)
//!   up the host's stack. XDP_PASS therefore needs nothing, and XDP_DROP cannot stop
//!   the host from seeing the frame (use AF_XDP mode for that).
//! - A packet socket also sees the host's own outgoing frames (`PACKET_OUTGOING`),
//!   including those other sockets of the same process send: they are ignored
//!   (`PACKET_IGNORE_OUTGOING`, and the packet type is checked again per frame).
//! - The kernel strips a VLAN tag into the ring's header when the device offloads
//!   it; the tag is put back in front of the frame before the program sees it, as a
//!   driver's XDP hook would see it on the wire.
//! - PACKET_FANOUT_HASH spreads frames over the sockets of one group by the kernel's
//!   flow hash, so a flow stays on one socket (one worker).
//!
//! This module holds unsafe code: the socket calls and the mapped ring.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, Ordering};

use crate::live_error::LiveError;

/// `ETH_P_ALL` in network byte order, as `socket(2)` and `bind(2)` take it.
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();
/// `ETH_P_8021Q`: the TPID put back when the ring does not report one.
const ETH_P_8021Q: u16 = 0x8100;
/// `TP_STATUS_VLAN_TPID_VALID` (linux/if_packet.h).
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
/// `TPACKET_ALIGNMENT` (linux/if_packet.h).
const TPACKET_ALIGNMENT: usize = 16;
const PACKET_OUTGOING: u8 = 4;
const PACKET_LOOPBACK: u8 = 5;
/// Hash fanout with defragmentation, so the fragments of one datagram reach the
/// same socket.
const PACKET_FANOUT_FLAG_DEFRAG: u32 = 0x8000;
/// The kernel picks a group id no other group uses (Linux 4.18 and later).
const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;

/// Which hash fanout group a ring joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fanout {
    /// None: the socket receives every frame of the interface.
    None,
    /// A new group with an id the kernel picks, unused by any other process
    /// ([`RxRing::fanout_group`] tells it, for the next sockets to join).
    New,
    /// The group of this id.
    Join(u16),
}

/// Where `struct sockaddr_ll` follows `struct tpacket3_hdr` in a ring frame.
const SLL_OFFSET: usize =
    (std::mem::size_of::<libc::tpacket3_hdr>() + TPACKET_ALIGNMENT - 1) & !(TPACKET_ALIGNMENT - 1);

fn read_u32(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off + 4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_u16(b: &[u8], off: usize) -> Option<u16> {
    b.get(off..off + 2)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]))
}

/// The geometry of a receive ring.
#[derive(Debug, Clone, Copy)]
pub struct RingConfig {
    /// Bytes per block (a power of two, a multiple of the page size).
    pub block_size: u32,
    /// Number of blocks.
    pub block_count: u32,
    /// The kernel hands a block over after this many milliseconds even when it is
    /// not full, so a slow trickle of frames is not held back.
    pub retire_ms: u32,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            block_size: 1 << 18,
            block_count: 16,
            retire_ms: 2,
        }
    }
}

/// The index of interface `name`, or an error naming it.
pub fn ifindex(name: &str) -> Result<u32, LiveError> {
    let c = CString::new(name).map_err(|_| LiveError::NoInterface {
        name: name.to_string(),
        source: io::Error::from_raw_os_error(libc::EINVAL),
    })?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(LiveError::NoInterface {
            name: name.to_string(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(index)
}

/// Whether interface `ifindex` exists (in the calling thread's network namespace).
pub fn ifindex_exists(ifindex: u32) -> bool {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has room for IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    // Only ENXIO says the interface is not there; another failure (no socket for
    // the ioctl, say) does not.
    !p.is_null() || io::Error::last_os_error().raw_os_error() != Some(libc::ENXIO)
}

/// The name of interface `ifindex` (for messages), or `if<N>`.
pub fn ifname(ifindex: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has room for IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return format!("if{ifindex}");
    }
    // SAFETY: on success if_indextoname wrote a NUL-terminated name into `buf`.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn sys_err(op: &'static str, ifindex: u32) -> LiveError {
    LiveError::Socket {
        op,
        iface: ifname(ifindex),
        source: io::Error::last_os_error(),
    }
}

fn setsockopt<T>(fd: RawFd, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A raw AF_PACKET socket bound to one interface, receiving frames of `protocol`
/// (network byte order; 0 receives nothing).
fn bound_socket(ifindex: u32, protocol_be: u16) -> Result<OwnedFd, LiveError> {
    // SAFETY: plain socket(2) call; the result is checked.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(protocol_be),
        )
    };
    if raw < 0 {
        let source = io::Error::last_os_error();
        if source.raw_os_error() == Some(libc::EPERM) {
            return Err(LiveError::NotPermitted {
                what: "an AF_PACKET socket",
                needs: "CAP_NET_RAW",
                source,
            });
        }
        return Err(LiveError::Socket {
            op: "socket(AF_PACKET)",
            iface: ifname(ifindex),
            source,
        });
    }
    // SAFETY: `raw` is a descriptor just returned to us and owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol_be;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is a valid sockaddr_ll and its size is passed.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(sys_err("bind(AF_PACKET)", ifindex));
    }
    Ok(fd)
}

/// Sends whole frames out of one interface (`send(2)` on a packet socket that
/// receives nothing). Used for XDP_TX on the receiving socket's interface and for
/// redirects to other interfaces.
pub struct TxSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl TxSocket {
    /// A transmit-only socket on `ifindex`; frames skip the qdisc layer where the
    /// kernel allows it (`PACKET_QDISC_BYPASS`), as XDP_TX and XDP_REDIRECT do.
    /// Such frames are not seen by packet taps (tcpdump) on the interface, as
    /// XDP_TX frames are not.
    pub fn open(ifindex: u32) -> Result<TxSocket, LiveError> {
        TxSocket::open_with(ifindex, true)
    }

    /// A transmit-only socket on `ifindex`; with `bypass_qdisc` false its frames go
    /// through the qdisc layer and packet taps see them as the host's outgoing
    /// frames.
    pub fn open_with(ifindex: u32, bypass_qdisc: bool) -> Result<TxSocket, LiveError> {
        let fd = bound_socket(ifindex, 0)?;
        if bypass_qdisc {
            let _ = setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                &1i32,
            );
        }
        Ok(TxSocket { fd, ifindex })
    }

    /// The interface this socket sends on.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Sends one frame (starting at its Ethernet header).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        send_on(self.fd.as_raw_fd(), frame)
    }
}

fn send_on(fd: RawFd, frame: &[u8]) -> io::Result<()> {
    loop {
        // SAFETY: `frame` is a live slice of the length passed.
        let n = unsafe { libc::send(fd, frame.as_ptr().cast(), frame.len(), 0) };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            // The device queue is full: the frame is dropped, as the kernel drops
            // an XDP_TX frame its ring has no room for.
            _ => return Err(e),
        }
    }
}

/// What the ring says about one received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxInfo {
    /// The frame's length on the wire (after a VLAN tag is put back).
    pub wire_len: u32,
    /// True if the ring holds fewer bytes than the frame had.
    pub truncated: bool,
    /// The kernel's flow hash of the frame (0 if none was computed).
    pub rxhash: u32,
}

/// A TPACKET_V3 receive ring on one interface, joined to a hash fanout group.
pub struct RxRing {
    fd: OwnedFd,
    ifindex: u32,
    ring: NonNull<u8>,
    block_size: usize,
    block_count: usize,
    /// The block being read (or waited for).
    next_block: usize,
    /// Whether `next_block` is ours (handed over and not yet given back).
    in_block: bool,
    /// Frames of the block not read yet, and where the next one starts.
    left: u32,
    offset: usize,
}

// SAFETY: the ring mapping is owned by this value alone; the kernel is the only
// other party and synchronises through the block status words.
unsafe impl Send for RxRing {}

impl RxRing {
    /// A ring receiving every frame arriving on `ifindex` (not the host's outgoing
    /// ones). In a hash fanout group ([`Fanout`]), each frame goes to one socket of
    /// the group, chosen by its flow hash.
    pub fn open(ifindex: u32, cfg: RingConfig, fanout: Fanout) -> Result<RxRing, LiveError> {
        let page = 4096u32;
        if cfg.block_size < page
            || !cfg.block_size.is_power_of_two()
            || cfg.block_count == 0
            || cfg.block_count > 1 << 16
        {
            return Err(LiveError::BadRing {
                block_size: cfg.block_size,
                block_count: cfg.block_count,
            });
        }
        let fd = bound_socket(ifindex, ETH_P_ALL_BE)?;
        let raw = fd.as_raw_fd();
        let version = libc::tpacket_versions::TPACKET_V3 as i32;
        setsockopt(raw, libc::SOL_PACKET, libc::PACKET_VERSION, &version)
            .map_err(|_| sys_err("setsockopt(PACKET_VERSION, TPACKET_V3)", ifindex))?;
        // Older kernels lack it; the per-frame packet type check below still applies.
        let _ = setsockopt(raw, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32);
        let frame_size = 2048u32;
        let req = libc::tpacket_req3 {
            tp_block_size: cfg.block_size,
            tp_block_nr: cfg.block_count,
            tp_frame_size: frame_size,
            tp_frame_nr: cfg.block_size / frame_size * cfg.block_count,
            tp_retire_blk_tov: cfg.retire_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(raw, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
            .map_err(|_| sys_err("setsockopt(PACKET_RX_RING)", ifindex))?;
        let len = cfg.block_size as usize * cfg.block_count as usize;
        // SAFETY: mapping the ring the kernel just set up on this socket; the result
        // is checked and unmapped in Drop.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED | libc::MAP_POPULATE,
                raw,
                0,
            )
        };
        let p = if p == libc::MAP_FAILED {
            // MAP_LOCKED needs RLIMIT_MEMLOCK room; without it the ring still works.
            // SAFETY: as above, without MAP_LOCKED.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_POPULATE,
                    raw,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(sys_err("mmap(PACKET_RX_RING)", ifindex));
            }
            p
        } else {
            p
        };
        let ring = NonNull::new(p.cast::<u8>()).ok_or_else(|| sys_err("mmap", ifindex))?;
        let rx = RxRing {
            fd,
            ifindex,
            ring,
            block_size: cfg.block_size as usize,
            block_count: cfg.block_count as usize,
            next_block: 0,
            in_block: false,
            left: 0,
            offset: 0,
        };
        let mode = (libc::PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16;
        let arg = match fanout {
            Fanout::None => None,
            Fanout::New => Some(mode | (PACKET_FANOUT_FLAG_UNIQUEID << 16)),
            Fanout::Join(group) => Some(mode | u32::from(group)),
        };
        if let Some(arg) = arg {
            setsockopt(raw, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg)
                .map_err(|_| sys_err("setsockopt(PACKET_FANOUT)", ifindex))?;
        }
        Ok(rx)
    }

    /// The interface this ring receives from.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The id of the fanout group the socket is in, if any.
    pub fn fanout_group(&self) -> Option<u16> {
        let mut v: u32 = 0;
        let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
        // SAFETY: `v` and `len` are valid for getsockopt's output.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_FANOUT,
                (&mut v as *mut u32).cast(),
                &mut len,
            )
        };
        // The kernel answers 0 for a socket in no group.
        (r == 0 && v != 0).then_some(v as u16)
    }

    /// Sends one frame out of the ring's interface (XDP_TX).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        send_on(self.fd.as_raw_fd(), frame)
    }

    /// The status word of block `i`, shared with the kernel.
    fn block_status(&self, i: usize) -> &AtomicU32 {
        debug_assert!(i < self.block_count);
        // SAFETY: block `i` lies inside the mapping (i < block_count); its header
        // starts with `version`, `offset_to_priv`, then `tpacket_hdr_v1` whose first
        // field, `block_status`, is a 4-byte-aligned u32 at offset 8. The kernel
        // and this process both access it; the atomic makes those accesses sound.
        unsafe {
            &*self
                .ring
                .as_ptr()
                .add(i * self.block_size + 8)
                .cast::<AtomicU32>()
        }
    }

    /// Waits up to `timeout_ms` for the next block to be handed over (call it when
    /// [`RxRing::next_frame`] returned `None`). Returns whether one is ready (false
    /// on timeout or a signal).
    pub fn wait(&self, timeout_ms: i32) -> Result<bool, LiveError> {
        if self.in_block
            || self.block_status(self.next_block).load(Ordering::Acquire) & TP_STATUS_USER != 0
        {
            return Ok(true);
        }
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN | libc::POLLERR,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                return Ok(false);
            }
            return Err(LiveError::Socket {
                op: "poll",
                iface: ifname(self.ifindex),
                source: e,
            });
        }
        if pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            // The kernel reports ENETDOWN once when the interface goes down (reading
            // SO_ERROR clears it); the socket stays bound and receives again once the
            // interface is up, so that is no reason to stop. ENODEV: the interface is
            // gone.
            let mut err: i32 = 0;
            let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
            // SAFETY: `err` and `len` are valid for getsockopt's output.
            unsafe {
                libc::getsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    (&mut err as *mut i32).cast(),
                    &mut len,
                )
            };
            if err != 0 && err != libc::ENETDOWN {
                return Err(LiveError::Socket {
                    op: "poll",
                    iface: ifname(self.ifindex),
                    source: io::Error::from_raw_os_error(err),
                });
            }
        }
        Ok(self.block_status(self.next_block).load(Ordering::Acquire) & TP_STATUS_USER != 0)
    }

    /// Copies the next received frame (from its Ethernet header) into `buf`,
    /// skipping outgoing and looped-back frames, and returns what the ring says
    /// about it; `None` when no frame is ready (see [`RxRing::wait`]). A block is
    /// handed back to the kernel once its last frame was read.
    pub fn next_frame(&mut self, buf: &mut Vec<u8>) -> Option<RxInfo> {
        loop {
            if self.left == 0 {
                if self.in_block {
                    // Every frame of the block was read: hand it back.
                    fence(Ordering::Release);
                    self.block_status(self.next_block)
                        .store(TP_STATUS_KERNEL, Ordering::Release);
                    self.next_block = (self.next_block + 1) % self.block_count;
                    self.in_block = false;
                }
                let status = self.block_status(self.next_block).load(Ordering::Acquire);
                if status & TP_STATUS_USER == 0 {
                    return None;
                }
                let block = self.block();
                // tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1
                // { block_status, num_pkts, offset_to_first_pkt, blk_len, ... }.
                let (left, first) = (read_u32(block, 12), read_u32(block, 16));
                self.left = left.unwrap_or(0);
                self.offset = first.unwrap_or(0) as usize;
                self.in_block = true;
                continue;
            }
            self.left -= 1;
            let off = self.offset;
            let block = self.block();
            // tpacket3_hdr: next_offset 0, sec 4, nsec 8, snaplen 12, len 16,
            // status 20, mac 24 (u16), net 26, hv1 { rxhash 28, vlan_tci 32,
            // vlan_tpid 36 }; sockaddr_ll at SLL_OFFSET, its sll_pkttype at +10.
            let header = (
                read_u32(block, off),
                read_u32(block, off + 12),
                read_u32(block, off + 16),
                read_u32(block, off + 20),
                read_u16(block, off + 24),
            );
            let rxhash = read_u32(block, off + 28).unwrap_or(0);
            let tci = read_u32(block, off + 32).unwrap_or(0) as u16;
            let tpid = read_u16(block, off + 36).unwrap_or(0);
            let pkttype = block.get(off + SLL_OFFSET + 10).copied().unwrap_or(0);
            let (Some(next), Some(snaplen), Some(len), Some(st), Some(mac)) = header else {
                // A header outside the block: stop reading this block.
                self.left = 0;
                continue;
            };
            if next == 0 {
                self.left = 0;
            } else {
                self.offset = off + next as usize;
            }
            let block = self.block();
            let start = off + mac as usize;
            let Some(data) = block.get(start..start + snaplen as usize) else {
                continue;
            };
            if pkttype == PACKET_OUTGOING || pkttype == PACKET_LOOPBACK {
                continue;
            }
            let truncated = snaplen < len;
            buf.clear();
            if st & TP_STATUS_VLAN_VALID != 0 && data.len() >= 12 {
                let tpid = if st & TP_STATUS_VLAN_TPID_VALID != 0 && tpid != 0 {
                    tpid
                } else {
                    ETH_P_8021Q
                };
                buf.extend_from_slice(&data[..12]);
                buf.extend_from_slice(&tpid.to_be_bytes());
                buf.extend_from_slice(&tci.to_be_bytes());
                buf.extend_from_slice(&data[12..]);
                return Some(RxInfo {
                    wire_len: len + 4,
                    truncated,
                    rxhash,
                });
            }
            buf.extend_from_slice(data);
            return Some(RxInfo {
                wire_len: len,
                truncated,
                rxhash,
            });
        }
    }

    /// The block being read, while the kernel has handed it over.
    fn block(&self) -> &[u8] {
        let base = self.next_block * self.block_size;
        // SAFETY: the block lies inside the mapping, and it is ours until its status
        // is set back to TP_STATUS_KERNEL (the Acquire load of TP_STATUS_USER pairs
        // with the kernel's release); the kernel does not write it meanwhile.
        unsafe { std::slice::from_raw_parts(self.ring.as_ptr().add(base), self.block_size) }
    }

    /// Frames the kernel received for this socket and frames it dropped for want of
    /// ring room, since the last call (`PACKET_STATISTICS`, which resets them).
    pub fn kernel_stats(&self) -> Option<(u32, u32)> {
        let mut st = libc::tpacket_stats_v3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `st` and `len` are valid for getsockopt's output.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        (r == 0).then_some((st.tp_packets, st.tp_drops))
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `open` with this length and nothing
        // borrowed from it outlives `self`.
        unsafe {
            libc::munmap(
                self.ring.as_ptr().cast(),
                self.block_size * self.block_count,
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_interface_is_an_error_naming_it() {
        let e = ifindex("no-such-if0").unwrap_err();
        assert!(e.to_string().contains("no-such-if0"), "{e}");
    }

    #[test]
    fn bad_ring_geometry_is_refused() {
        let cfg = RingConfig {
            block_size: 1000,
            block_count: 4,
            retire_ms: 1,
        };
        match RxRing::open(1, cfg, Fanout::None) {
            Err(LiveError::BadRing {
                block_size: 1000, ..
            }) => {}
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a 1000-byte block was accepted"),
        }
    }

    #[test]
    fn loopback_frames_arrive_through_the_ring() {
        // Sends a frame on lo with a transmit socket and reads it back from a ring:
        // lo delivers its outgoing frames as incoming ones.
        let lo = match ifindex("lo") {
            Ok(i) => i,
            Err(e) => return println!("SKIP: no lo: {e}"),
        };
        let mut rx = match RxRing::open(lo, RingConfig::default(), Fanout::None) {
            Ok(r) => r,
            Err(LiveError::NotPermitted { .. }) => {
                return println!("SKIP: AF_PACKET needs CAP_NET_RAW")
            }
            Err(e) => panic!("{e}"),
        };
        let tx = TxSocket::open(lo).unwrap();
        let mut frame = vec![0u8; 60];
        frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes()); // local experimental
        frame[14..22].copy_from_slice(b"afpacket");
        let marker = std::process::id().to_be_bytes();
        frame[22..26].copy_from_slice(&marker);
        tx.send(&frame).unwrap();
        let mut seen = 0;
        let mut buf = Vec::new();
        for _ in 0..50 {
            rx.wait(20).unwrap();
            while let Some(info) = rx.next_frame(&mut buf) {
                if buf.len() >= 26 && buf[14..22] == *b"afpacket" && buf[22..26] == marker {
                    assert_eq!(buf, frame);
                    assert_eq!(info.wire_len, 60);
                    assert!(!info.truncated);
                    seen += 1;
                }
            }
        }
        // lo shows the frame once as outgoing (skipped) and once as incoming.
        assert_eq!(seen, 1);
    }
}
