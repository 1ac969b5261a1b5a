//! The XDP context (`struct xdp_md`) and packet buffers in the kernel's geometry.
//!
//! This module holds unsafe code: it maps the frame memory below 4 GiB and hands
//! out raw views of it. Layout of one frame, as in the kernel's `BPF_PROG_TEST_RUN`:
//!
//! ```text
//! hard_start                data_meta/data          data_end            hard_end      frame end
//! |<-- 256 bytes headroom -->|<------ packet ------->|<-- free tailroom -->|<- 320 reserved ->|
//! ```
//!
//! `hard_end` is where the kernel keeps `struct skb_shared_info`; the packet may grow up
//! to it. The frame is 4096 bytes, so a packet holds at most 4096 - 256 - 320 = 3520 bytes.
#![deny(unsafe_op_in_unsafe_fn)]

use std::ptr::NonNull;

use crate::error::PacketError;

/// Bytes of headroom before the packet (`XDP_PACKET_HEADROOM`).
pub const HEADROOM: usize = 256;
/// Size of one frame (a page, as in the kernel's test run).
pub const FRAME_SIZE: usize = 4096;
/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))` on x86-64: reserved at the frame's end.
pub const TAILROOM: usize = 320;
/// The largest packet one frame holds.
pub const MAX_PACKET: usize = FRAME_SIZE - HEADROOM - TAILROOM;
/// `sizeof(struct xdp_frame)`: the kernel keeps this much of the headroom for itself, so
/// `xdp_adjust_head` and `xdp_adjust_meta` cannot move data below `hard_start + 40`.
pub const XDP_FRAME_RESERVED: usize = 40;
/// `ETH_HLEN`: the shortest packet the kernel's test run and the adjust helpers allow.
pub const ETH_HLEN: usize = 14;
/// The longest metadata area (`xdp_metalen_invalid`: the largest value of
/// `skb_shared_info.meta_len`, a u8). It must also be a multiple of 4.
pub const MAX_META: usize = 255;

/// XDP return codes.
pub mod action {
    pub const ABORTED: u32 = 0;
    pub const DROP: u32 = 1;
    pub const PASS: u32 = 2;
    pub const TX: u32 = 3;
    pub const REDIRECT: u32 = 4;

    /// The kernel's name for an XDP action, or `None` for an unknown value.
    pub fn name(code: u32) -> Option<&'static str> {
        Some(match code {
            ABORTED => "XDP_ABORTED",
            DROP => "XDP_DROP",
            PASS => "XDP_PASS",
            TX => "XDP_TX",
            REDIRECT => "XDP_REDIRECT",
            _ => return None,
        })
    }
}

/// `struct xdp_md`, the context a program receives in r1, in the kernel's layout.
///
/// `data`, `data_end` and `data_meta` hold the real (below 4 GiB) addresses of the
/// packet, so an unmodified program's `ldxw` of `ctx->data` yields a usable pointer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpMd {
    pub data: u32,
    pub data_end: u32,
    pub data_meta: u32,
    pub ingress_ifindex: u32,
    pub rx_queue_index: u32,
    pub egress_ifindex: u32,
}

impl XdpMd {
    pub const SIZE: usize = std::mem::size_of::<XdpMd>();
}

/// One frame of packet memory below 4 GiB, with its context.
///
/// The context's pointers always lie inside the frame: every method that moves them
/// checks the kernel's limits first.
pub struct Packet {
    frame: NonNull<u8>,
    md: Box<XdpMd>,
}

// SAFETY: the frame is owned exclusively by this value; nothing else aliases it.
unsafe impl Send for Packet {}

impl Packet {
    /// A new frame holding `data`, with `data_meta == data`, ingress_ifindex 1 and
    /// rx_queue_index 0, as the kernel's test run sets them.
    pub fn new(data: &[u8]) -> Result<Packet, PacketError> {
        if data.len() < ETH_HLEN {
            return Err(PacketError::TooShort { len: data.len() });
        }
        if data.len() > MAX_PACKET {
            return Err(PacketError::TooLong {
                len: data.len(),
                max: MAX_PACKET,
            });
        }
        let frame = map_low_frame()?;
        let mut pkt = Packet {
            frame,
            md: Box::default(),
        };
        pkt.reset(data)?;
        Ok(pkt)
    }

    /// Refills the frame with `data`: zeroed headroom and tailroom, default context.
    pub fn reset(&mut self, data: &[u8]) -> Result<(), PacketError> {
        if data.len() < ETH_HLEN {
            return Err(PacketError::TooShort { len: data.len() });
        }
        if data.len() > MAX_PACKET {
            return Err(PacketError::TooLong {
                len: data.len(),
                max: MAX_PACKET,
            });
        }
        let frame = self.frame_mut();
        frame.fill(0);
        frame[HEADROOM..HEADROOM + data.len()].copy_from_slice(data);
        let start = self.hard_start() as u32 + HEADROOM as u32;
        *self.md = XdpMd {
            data: start,
            data_end: start + data.len() as u32,
            data_meta: start,
            ingress_ifindex: 1,
            rx_queue_index: 0,
            egress_ifindex: 0,
        };
        Ok(())
    }

    /// Sets the metadata length, interface and queue from a test-run context
    /// (`ctx_in`), after the kernel's checks.
    pub fn set_meta_len(&mut self, len: usize) -> Result<(), PacketError> {
        if len > MAX_META || len % 4 != 0 {
            return Err(PacketError::BadMeta { len });
        }
        let room = self.md.data as usize - self.hard_start() as usize - XDP_FRAME_RESERVED;
        if len > room {
            return Err(PacketError::BadMeta { len });
        }
        self.md.data_meta = self.md.data - len as u32;
        Ok(())
    }

    pub fn md(&self) -> &XdpMd {
        &self.md
    }

    pub fn md_mut(&mut self) -> &mut XdpMd {
        &mut self.md
    }

    /// Address of the context, as a program sees it in r1.
    pub fn md_addr(&self) -> u64 {
        &*self.md as *const XdpMd as u64
    }

    /// Address of the frame's first byte (`data_hard_start`).
    pub fn hard_start(&self) -> u64 {
        self.frame.as_ptr() as u64
    }

    /// The highest address `data_end` may reach (`xdp_data_hard_end`).
    pub fn hard_end(&self) -> u64 {
        self.hard_start() + (FRAME_SIZE - TAILROOM) as u64
    }

    /// The packet bytes, `data .. data_end`.
    pub fn data(&self) -> &[u8] {
        let off = (self.md.data as u64 - self.hard_start()) as usize;
        let end = (self.md.data_end as u64 - self.hard_start()) as usize;
        &self.frame()[off..end]
    }

    /// The metadata and packet bytes, `data_meta .. data_end`, as the kernel's test run
    /// returns them in `data_out`.
    pub fn data_with_meta(&self) -> &[u8] {
        let off = (self.md.data_meta as u64 - self.hard_start()) as usize;
        let end = (self.md.data_end as u64 - self.hard_start()) as usize;
        &self.frame()[off..end]
    }

    /// Length of the metadata area.
    pub fn meta_len(&self) -> usize {
        (self.md.data - self.md.data_meta) as usize
    }

    /// The whole frame.
    pub fn frame(&self) -> &[u8] {
        // SAFETY: `frame` points to FRAME_SIZE bytes mapped for this value's lifetime,
        // and `&self` excludes writes through `frame_mut`.
        unsafe { std::slice::from_raw_parts(self.frame.as_ptr(), FRAME_SIZE) }
    }

    /// The whole frame, writable.
    pub fn frame_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `frame`, and `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.frame.as_ptr(), FRAME_SIZE) }
    }
}

impl Drop for Packet {
    fn drop(&mut self) {
        // SAFETY: `frame` was returned by mmap with length FRAME_SIZE and is unmapped once.
        unsafe {
            libc::munmap(self.frame.as_ptr().cast(), FRAME_SIZE);
        }
    }
}

/// Maps one zeroed, private frame whose every address fits in 32 bits.
fn map_low_frame() -> Result<NonNull<u8>, PacketError> {
    #[cfg(target_arch = "x86_64")]
    let (hint, extra) = (std::ptr::null_mut(), libc::MAP_32BIT);
    #[cfg(not(target_arch = "x86_64"))]
    let (hint, extra) = (0x4000_0000usize as *mut libc::c_void, 0);
    // SAFETY: an anonymous private mapping with no fixed address touches no existing memory.
    let p = unsafe {
        libc::mmap(
            hint,
            FRAME_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(PacketError::Map {
            errno: std::io::Error::last_os_error(),
        });
    }
    if (p as u64) + FRAME_SIZE as u64 > u32::MAX as u64 {
        // SAFETY: `p` is the mapping just made, of FRAME_SIZE bytes.
        unsafe { libc::munmap(p, FRAME_SIZE) };
        return Err(PacketError::NotLow { addr: p as u64 });
    }
    NonNull::new(p.cast()).ok_or(PacketError::NotLow { addr: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_matches_the_kernel_test_run() {
        let data: Vec<u8> = (0..60u8).collect();
        let pkt = Packet::new(&data).unwrap();
        let md = *pkt.md();
        assert_eq!(md.data as u64, pkt.hard_start() + 256);
        assert_eq!(md.data_end - md.data, 60);
        assert_eq!(md.data_meta, md.data);
        assert_eq!((md.ingress_ifindex, md.rx_queue_index), (1, 0));
        assert_eq!(pkt.data(), &data[..]);
        assert!(pkt.frame()[..256].iter().all(|&b| b == 0));
        assert!(pkt.frame()[256 + 60..].iter().all(|&b| b == 0));
        assert!(pkt.hard_start() + FRAME_SIZE as u64 <= u32::MAX as u64);
        assert_eq!(MAX_PACKET, 3520);
    }

    #[test]
    fn short_and_long_packets_are_refused() {
        assert!(matches!(
            Packet::new(&[0; 13]),
            Err(PacketError::TooShort { len: 13 })
        ));
        assert!(Packet::new(&[0; 14]).is_ok());
        assert!(Packet::new(&[0; 3520]).is_ok());
        assert!(matches!(
            Packet::new(&[0; 3521]),
            Err(PacketError::TooLong { .. })
        ));
    }

    #[test]
    fn metadata_length_rules() {
        let mut pkt = Packet::new(&[0; 64]).unwrap();
        assert!(pkt.set_meta_len(3).is_err());
        assert!(pkt.set_meta_len(256).is_err());
        assert!(
            pkt.set_meta_len(220).is_err(),
            "below hard_start + sizeof(xdp_frame)"
        );
        pkt.set_meta_len(8).unwrap();
        assert_eq!(pkt.meta_len(), 8);
        assert_eq!(pkt.data_with_meta().len(), 72);
    }
}
