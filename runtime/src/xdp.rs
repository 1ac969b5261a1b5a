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
//! to it. The frame is 4096 bytes, so its linear part holds at most 4096 - 256 - 320 =
//! 3520 bytes.
//!
//! Multi-buffer frames: as the kernel's test run lays them out, the bytes past the linear
//! part go to fragments of one page each (at most [`MAX_SKB_FRAGS`]), which programs
//! reach only through helpers. The bytes of a frame, linear part and fragments, are
//! read and written by offset through [`Packet::buff_len`], [`Packet::load_bytes`],
//! [`Packet::store_bytes`] and [`Packet::linear_ptr`] (the functions the
//! `bpf_xdp_load_bytes`/`store_bytes` helpers use); [`Packet::data_out`] is the frame
//! as the test run returns it (linear part, then fragments). The kernel's test run
//! gives fragments to every program, `xdp.frags` or not.
#![deny(unsafe_op_in_unsafe_fn)]

use std::ptr::NonNull;

use crate::error::PacketError;

/// Bytes of headroom before the packet (`XDP_PACKET_HEADROOM`).
pub const HEADROOM: usize = 256;
/// Size of one frame (a page, as in the kernel's test run).
pub const FRAME_SIZE: usize = 4096;
/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))` on x86-64: reserved at the frame's end.
pub const TAILROOM: usize = 320;
/// The largest packet one frame holds: the linear part of a multi-buffer frame.
pub const MAX_PACKET: usize = FRAME_SIZE - HEADROOM - TAILROOM;
/// The size of one fragment of a multi-buffer frame (a page).
pub const FRAG_SIZE: usize = 4096;
/// The most fragments a frame has (`MAX_SKB_FRAGS`, `/proc/sys/net/core/max_skb_frags`).
pub const MAX_SKB_FRAGS: usize = 17;
/// The largest frame the kernel's test run takes without metadata: a full linear part
/// and [`MAX_SKB_FRAGS`] full fragments (3520 + 17 * 4096 = 73152 bytes).
pub const MAX_FRAME: usize = MAX_PACKET + MAX_SKB_FRAGS * FRAG_SIZE;
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

    /// The struct's bytes, as `ctx_out` holds them.
    pub fn to_bytes(&self) -> [u8; XdpMd::SIZE] {
        let mut out = [0u8; XdpMd::SIZE];
        let fields = [
            self.data,
            self.data_end,
            self.data_meta,
            self.ingress_ifindex,
            self.rx_queue_index,
            self.egress_ifindex,
        ];
        for (chunk, f) in out.chunks_mut(4).zip(fields) {
            chunk.copy_from_slice(&f.to_ne_bytes());
        }
        out
    }
}

/// The number of receive queues of this host's interface `ifindex`, from sysfs, or
/// `None` when there is no such interface.
fn host_rx_queues(ifindex: u32) -> Option<u32> {
    let dir = std::fs::read_dir("/sys/class/net").ok()?;
    for entry in dir.flatten() {
        let path = entry.path();
        let Ok(index) = std::fs::read_to_string(path.join("ifindex")) else {
            continue;
        };
        if index.trim().parse::<u32>().ok() != Some(ifindex) {
            continue;
        }
        let queues = std::fs::read_dir(path.join("queues"))
            .map(|q| {
                q.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                    .count() as u32
            })
            .unwrap_or(1);
        return Some(queues.max(1));
    }
    None
}

/// One frame of packet memory below 4 GiB, with its context.
///
/// The context's pointers always lie inside the frame: every method that moves them
/// checks the kernel's limits first.
pub struct Packet {
    frame: NonNull<u8>,
    md: Box<XdpMd>,
    /// The interface and queue a test-run context gave, reported back in `ctx_out`.
    ctx_in: Option<(u32, u32)>,
    /// The last `bpf_redirect_map` target (see helpers/redirect.rs).
    redirect: Option<crate::helpers::Redirect>,
    /// The fragments past the linear part (`skb_shared_info.frags`).
    frags: Frags,
}

/// The fragments of a multi-buffer frame: `sizes[..nr]` bytes of `pages[..nr]`. Pages
/// freed by `bpf_xdp_adjust_tail` stay allocated for the next frame, so a run never
/// allocates; every fragment holds at least one byte, as in the kernel (a fragment
/// shrunk to nothing is freed).
#[derive(Default)]
struct Frags {
    pages: Vec<Box<[u8]>>,
    sizes: [usize; MAX_SKB_FRAGS],
    nr: usize,
}

impl Frags {
    /// Fragments holding `rest`, in pages of [`FRAG_SIZE`] bytes.
    fn fill(&mut self, rest: &[u8]) {
        self.nr = 0;
        for chunk in rest.chunks(FRAG_SIZE) {
            if self.pages.len() == self.nr {
                self.pages.push(vec![0u8; FRAG_SIZE].into_boxed_slice());
            }
            self.pages[self.nr][..chunk.len()].copy_from_slice(chunk);
            self.sizes[self.nr] = chunk.len();
            self.nr += 1;
        }
    }

    /// `sinfo->xdp_frags_size`.
    fn total(&self) -> usize {
        self.sizes[..self.nr].iter().sum()
    }
}

// SAFETY: the frame is owned exclusively by this value; nothing else aliases it.
unsafe impl Send for Packet {}

impl Packet {
    /// A new frame holding `data`, with `data_meta == data`, ingress_ifindex 1 and
    /// rx_queue_index 0, as the kernel's test run sets them. Bytes past
    /// [`MAX_PACKET`] go to fragments; at most [`MAX_FRAME`] bytes fit.
    pub fn new(data: &[u8]) -> Result<Packet, PacketError> {
        let mut pkt = Packet::empty()?;
        pkt.reset(data)?;
        Ok(pkt)
    }

    fn empty() -> Result<Packet, PacketError> {
        Ok(Packet {
            frame: map_low_frame()?,
            md: Box::default(),
            ctx_in: None,
            redirect: None,
            frags: Frags::default(),
        })
    }

    /// Where the last successful `bpf_redirect_map` on this packet sends it; a
    /// failed lookup clears it, as does [`Packet::reset`].
    pub fn redirect(&self) -> Option<crate::helpers::Redirect> {
        self.redirect
    }

    pub(crate) fn set_redirect(&mut self, r: Option<crate::helpers::Redirect>) {
        self.redirect = r;
    }

    /// Refills the frame with `data`: zeroed headroom and tailroom, default context, and
    /// the bytes past [`MAX_PACKET`] in fragments (whose pages are kept from earlier
    /// frames: refilling with a frame no longer than the longest so far allocates
    /// nothing).
    pub fn reset(&mut self, data: &[u8]) -> Result<(), PacketError> {
        if data.len() < ETH_HLEN {
            return Err(PacketError::TooShort { len: data.len() });
        }
        self.fill(&[], data, MAX_PACKET)
    }

    /// The kernel's test-run layout: `meta` then the first `linear` bytes of `data` in
    /// the frame, the rest of `data` in fragments; the context set to the defaults.
    fn fill(&mut self, meta: &[u8], data: &[u8], linear: usize) -> Result<(), PacketError> {
        let linear = linear.min(data.len());
        let frags = (data.len() - linear).div_ceil(FRAG_SIZE);
        if frags > MAX_SKB_FRAGS {
            return Err(PacketError::TooLong {
                len: data.len(),
                linear,
                max_frags: MAX_SKB_FRAGS,
                max: linear + MAX_SKB_FRAGS * FRAG_SIZE,
            });
        }
        self.redirect = None;
        let frame = self.frame_mut();
        frame.fill(0);
        let start = HEADROOM - meta.len();
        frame[start..HEADROOM].copy_from_slice(meta);
        frame[HEADROOM..HEADROOM + linear].copy_from_slice(&data[..linear]);
        self.frags.fill(&data[linear..]);
        let data_at = self.hard_start() as u32 + HEADROOM as u32;
        *self.md = XdpMd {
            data: data_at,
            data_end: data_at + linear as u32,
            data_meta: data_at - meta.len() as u32,
            ingress_ifindex: 1,
            rx_queue_index: 0,
            egress_ifindex: 0,
        };
        Ok(())
    }

    /// A frame set up from a test-run context (`ctx_in`, a `struct xdp_md` of at most
    /// 24 bytes, shorter ones zero-filled) and the input bytes, with the kernel's
    /// `BPF_PROG_TEST_RUN` rules: `data_meta` must be 0; `data` is the length of the
    /// metadata at the start of `data_in` (a multiple of 4, at most 255, and it must fit
    /// the headroom above `struct xdp_frame`); `data_end` must not exceed the input, and
    /// ends the linear part (at most [`MAX_PACKET`] bytes past the metadata; even an
    /// empty one), the rest of the input going to fragments (at most
    /// [`MAX_SKB_FRAGS`], else ENOMEM); the input past the metadata must hold an
    /// Ethernet header; `egress_ifindex` must be 0; `ingress_ifindex` must name an interface of this host
    /// and `rx_queue_index` one of its receive queues (a queue without an interface is
    /// refused). With `ingress_ifindex` 0 the program sees the loopback device (1), as in
    /// the kernel.
    pub fn with_ctx(data_in: &[u8], ctx_in: &[u8]) -> Result<Packet, PacketError> {
        Packet::with_ctx_queues(data_in, ctx_in, host_rx_queues)
    }

    /// [`Packet::with_ctx`] in the namespace `net` (the one `bpf_fib_lookup` sees):
    /// `ingress_ifindex` must name one of its interfaces, each with one receive
    /// queue (as veth and lo have by default).
    pub fn with_ctx_in(
        data_in: &[u8],
        ctx_in: &[u8],
        net: &crate::net::Net,
    ) -> Result<Packet, PacketError> {
        Packet::with_ctx_queues(data_in, ctx_in, |i| net.iface(i).map(|_| 1))
    }

    fn with_ctx_queues(
        data_in: &[u8],
        ctx_in: &[u8],
        rx_queues: impl Fn(u32) -> Option<u32>,
    ) -> Result<Packet, PacketError> {
        let invalid = |reason: &'static str| PacketError::BadCtx {
            reason,
            errno: libc::EINVAL,
        };
        if ctx_in.len() > XdpMd::SIZE && ctx_in[XdpMd::SIZE..].iter().any(|&b| b != 0) {
            return Err(PacketError::BadCtx {
                reason: "bytes past struct xdp_md are not zero",
                errno: libc::E2BIG,
            });
        }
        let mut raw = [0u8; XdpMd::SIZE];
        let n = ctx_in.len().min(XdpMd::SIZE);
        raw[..n].copy_from_slice(&ctx_in[..n]);
        let field = |i: usize| {
            u32::from_ne_bytes([raw[4 * i], raw[4 * i + 1], raw[4 * i + 2], raw[4 * i + 3]])
        };
        let (data, data_end, data_meta) = (field(0) as usize, field(1) as usize, field(2));
        let (ingress, rxq, egress) = (field(3), field(4), field(5));
        if data_meta != 0 {
            return Err(invalid(
                "data_meta must be 0: no data may precede the metadata",
            ));
        }
        if data_end > data_in.len() {
            return Err(invalid("data_end is past the end of data_in"));
        }
        if data > data_end {
            return Err(invalid("data is past data_end"));
        }
        if data % 4 != 0 || data > MAX_META {
            return Err(invalid(
                "metadata length (data) must be a multiple of 4 and at most 255",
            ));
        }
        if data > HEADROOM - XDP_FRAME_RESERVED {
            return Err(invalid("metadata does not fit the headroom"));
        }
        if data_in.len() - data < ETH_HLEN {
            return Err(PacketError::TooShort {
                len: data_in.len() - data,
            });
        }
        if egress != 0 {
            return Err(invalid("egress_ifindex must be 0"));
        }
        if ingress == 0 && rxq != 0 {
            return Err(invalid("rx_queue_index needs an ingress_ifindex"));
        }
        if ingress != 0 {
            match rx_queues(ingress) {
                None => {
                    return Err(PacketError::BadCtx {
                        reason: "no interface with that ingress_ifindex",
                        errno: libc::ENODEV,
                    })
                }
                Some(queues) if rxq >= queues => {
                    return Err(invalid("rx_queue_index is not a queue of the interface"))
                }
                Some(_) => {}
            }
        }
        let mut pkt = Packet::empty()?;
        // The linear part ends at data_end, or where the page ends (the metadata
        // comes out of the headroom, so the packet part is at most MAX_PACKET).
        let linear = (data_end - data).min(MAX_PACKET);
        pkt.fill(&data_in[..data], &data_in[data..], linear)?;
        let md = pkt.md_mut();
        md.ingress_ifindex = if ingress == 0 { 1 } else { ingress };
        md.rx_queue_index = rxq;
        pkt.ctx_in = Some((ingress, rxq));
        Ok(pkt)
    }

    /// The context the kernel's test run writes back (`ctx_out`): offsets relative to
    /// `data_meta`, and the interface and queue as they were given.
    pub fn ctx_out(&self) -> XdpMd {
        let (ingress_ifindex, rx_queue_index) = self
            .ctx_in
            .unwrap_or((self.md.ingress_ifindex, self.md.rx_queue_index));
        XdpMd {
            data: self.md.data - self.md.data_meta,
            data_end: self.md.data_end - self.md.data_meta,
            data_meta: 0,
            ingress_ifindex,
            rx_queue_index,
            egress_ifindex: 0,
        }
    }

    pub fn md(&self) -> &XdpMd {
        &self.md
    }

    /// The context, writable: only the runtime moves the packet's bounds (the proofs
    /// of packet accesses rely on them lying inside the frame).
    ///
    /// ```compile_fail,E0624
    /// let mut pkt = runtime::Packet::new(&[0u8; 64]).unwrap();
    /// pkt.md_mut().data_end = u32::MAX;
    /// ```
    /// Sets the interface and receive queue the frame arrived on (`ingress_ifindex`,
    /// `rx_queue_index`), as a driver does: the fields that carry no address.
    pub fn set_rx_info(&mut self, ingress_ifindex: u32, rx_queue_index: u32) {
        let md = self.md_mut();
        md.ingress_ifindex = ingress_ifindex;
        md.rx_queue_index = rx_queue_index;
    }

    pub(crate) fn md_mut(&mut self) -> &mut XdpMd {
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

    /// The linear part's bytes, `data .. data_end`.
    pub fn data(&self) -> &[u8] {
        let off = (self.md.data as u64 - self.hard_start()) as usize;
        let end = (self.md.data_end as u64 - self.hard_start()) as usize;
        &self.frame()[off..end]
    }

    /// The metadata and the linear part, `data_meta .. data_end`: the kernel's test run's
    /// `data_out` for a frame without fragments ([`Packet::data_out`] adds them).
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

/// The bytes of a frame by offset from `data`, across the linear part and the
/// fragments: what `bpf_xdp_get_buff_len`, `bpf_xdp_load_bytes` and
/// `bpf_xdp_store_bytes` (and dynptrs over the frame) see.
impl Packet {
    /// Whether the frame has fragments (`xdp_buff_has_frags`).
    pub fn has_frags(&self) -> bool {
        self.frags.nr > 0
    }

    /// The number of fragments (`skb_shared_info.nr_frags`).
    pub fn nr_frags(&self) -> usize {
        self.frags.nr
    }

    /// The sizes of the fragments, in order.
    pub fn frag_sizes(&self) -> &[usize] {
        &self.frags.sizes[..self.frags.nr]
    }

    /// The length of the frame past the metadata, linear part and fragments
    /// (`xdp_get_buff_len`).
    pub fn buff_len(&self) -> usize {
        (self.md.data_end - self.md.data) as usize + self.frags.total()
    }

    /// The address of `len` bytes at `offset` from `data` when they lie within the
    /// linear part, else `None`.
    pub fn linear_ptr(&self, offset: usize, len: usize) -> Option<u64> {
        let linear = (self.md.data_end - self.md.data) as usize;
        (offset.checked_add(len)? <= linear).then(|| u64::from(self.md.data) + offset as u64)
    }

    /// The pieces of the frame's bytes `offset .. offset + len`: (address, length) in
    /// the linear part, then in each fragment, in order, `f` called on each. The caller
    /// checked `offset + len <= buff_len()`.
    fn pieces(&self, mut offset: usize, mut len: usize, mut f: impl FnMut(*mut u8, usize)) {
        let linear = (self.md.data_end - self.md.data) as usize;
        let mut chunks = std::iter::once((self.md.data as usize as *mut u8, linear)).chain(
            self.frags.pages[..self.frags.nr]
                .iter()
                .zip(&self.frags.sizes)
                .map(|(p, &n)| (p.as_ptr().cast_mut(), n)),
        );
        while len > 0 {
            let Some((base, size)) = chunks.next() else {
                return;
            };
            if offset >= size {
                offset -= size;
                continue;
            }
            let n = len.min(size - offset);
            // The pointer stays inside the chunk: offset + n <= size.
            f(base.wrapping_add(offset), n);
            offset = 0;
            len -= n;
        }
    }

    /// Copies the frame's bytes `offset .. offset + len` to `dst`, across the linear part
    /// and the fragments (`bpf_xdp_copy_buf`). Returns false, copying nothing, when the
    /// range is not inside [`Packet::buff_len`].
    ///
    /// # Safety
    /// `dst` must be valid for writes of `len` bytes; it may overlap the linear part.
    pub unsafe fn load_bytes(&self, offset: usize, dst: *mut u8, len: usize) -> bool {
        if offset.checked_add(len).is_none_or(|e| e > self.buff_len()) {
            return false;
        }
        let mut done = 0;
        self.pieces(offset, len, |src, n| {
            // SAFETY: `src .. src + n` lies in the linear part or a fragment (`pieces`),
            // `dst + done .. + n` within the caller's `len` bytes; `copy` allows overlap.
            unsafe { std::ptr::copy(src, dst.add(done), n) };
            done += n;
        });
        true
    }

    /// Copies `len` bytes from `src` into the frame at `offset`, across the linear part
    /// and the fragments. Returns false, copying nothing, when the range is not inside
    /// [`Packet::buff_len`].
    ///
    /// # Safety
    /// `src` must be valid for reads of `len` bytes; it may overlap the linear part.
    pub unsafe fn store_bytes(&mut self, offset: usize, src: *const u8, len: usize) -> bool {
        if offset.checked_add(len).is_none_or(|e| e > self.buff_len()) {
            return false;
        }
        let mut done = 0;
        self.pieces(offset, len, |dst, n| {
            // SAFETY: as in `load_bytes`, the other way round; `&mut self` makes this the
            // only writer of the frame and its fragments.
            unsafe { std::ptr::copy(src.add(done), dst, n) };
            done += n;
        });
        true
    }

    /// [`Packet::load_bytes`] into a slice.
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> bool {
        // SAFETY: `dst` is writable for its length and, a `&mut` borrow, cannot overlap
        // the packet borrowed by `&self`.
        unsafe { self.load_bytes(offset, dst.as_mut_ptr(), dst.len()) }
    }

    /// [`Packet::store_bytes`] from a slice.
    pub fn write_at(&mut self, offset: usize, src: &[u8]) -> bool {
        // SAFETY: `src` is readable for its length.
        unsafe { self.store_bytes(offset, src.as_ptr(), src.len()) }
    }

    /// Shrinks the fragments by `shrink` bytes from the end, freeing those emptied
    /// (`bpf_xdp_frags_shrink_tail` past its checks); what is left when every fragment
    /// is gone comes off the linear part.
    pub(crate) fn shrink_frags(&mut self, mut shrink: usize) {
        while shrink > 0 && self.frags.nr > 0 {
            let last = self.frags.nr - 1;
            let cut = shrink.min(self.frags.sizes[last]);
            self.frags.sizes[last] -= cut;
            shrink -= cut;
            if self.frags.sizes[last] == 0 {
                self.frags.nr -= 1;
            }
        }
        if self.frags.nr == 0 && shrink > 0 {
            // The helper's check leaves 14 bytes; never below `data` in any case.
            let linear = self.md.data_end - self.md.data;
            self.md.data_end -= (shrink as u32).min(linear);
        }
    }

    /// The room left in the last fragment's page (`bpf_xdp_frags_increase_tail`'s
    /// tailroom), or `None` without fragments.
    pub(crate) fn frag_tailroom(&self) -> Option<usize> {
        let last = self.frags.nr.checked_sub(1)?;
        Some(FRAG_SIZE - self.frags.sizes[last])
    }

    /// Grows the last fragment by `grow` zeroed bytes; the caller checked
    /// [`Packet::frag_tailroom`].
    pub(crate) fn grow_frags(&mut self, grow: usize) {
        let last = self.frags.nr - 1;
        let size = self.frags.sizes[last];
        self.frags.pages[last][size..size + grow].fill(0);
        self.frags.sizes[last] += grow;
    }

    /// [`Packet::data_out`] into `out` (cleared first): no allocation once `out` has
    /// held a frame as long.
    pub fn data_out_into(&self, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(self.meta_len() + self.buff_len());
        out.extend_from_slice(self.data_with_meta());
        for (page, &n) in self.frags.pages.iter().zip(self.frag_sizes()) {
            out.extend_from_slice(&page[..n]);
        }
    }

    /// The frame as the kernel's test run returns it in `data_out`: metadata and linear
    /// part, then every fragment's bytes. Borrowed when there are no fragments.
    pub fn data_out(&self) -> std::borrow::Cow<'_, [u8]> {
        if self.frags.nr == 0 {
            return std::borrow::Cow::Borrowed(self.data_with_meta());
        }
        let mut out = Vec::new();
        self.data_out_into(&mut out);
        std::borrow::Cow::Owned(out)
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
        // The kernel's limit: 3520 + 17 * 4096 bytes, then ENOMEM.
        assert_eq!(MAX_FRAME, 73152);
        assert!(Packet::new(&vec![0; MAX_FRAME]).is_ok());
        let long = Packet::new(&vec![0; MAX_FRAME + 1]);
        assert!(matches!(long, Err(PacketError::TooLong { .. })));
        assert_eq!(long.err().unwrap().errno(), libc::ENOMEM);
    }

    /// Frames past 3520 bytes in the kernel's layout: the linear part full, then pages
    /// of 4096 bytes, the last one partial; the output is the input.
    #[test]
    fn long_frames_go_to_page_fragments() {
        let data: Vec<u8> = (0..9000u32).map(|i| (i * 7 + 1) as u8).collect();
        let mut pkt = Packet::new(&data).unwrap();
        assert_eq!(pkt.data(), &data[..3520]);
        assert_eq!(pkt.frag_sizes(), &[4096, 1384]);
        assert_eq!(pkt.buff_len(), 9000);
        assert_eq!(&*pkt.data_out(), &data[..]);
        // Reads and writes across the linear part and both fragments.
        let mut buf = [0u8; 16];
        for off in [0, 3510, 3520, 7606, 8984] {
            assert!(pkt.read_at(off, &mut buf));
            assert_eq!(buf, data[off..off + 16], "{off}");
        }
        assert!(!pkt.read_at(8985, &mut buf));
        assert!(pkt.write_at(7606, &[0xbb; 16]));
        let mut want = data.clone();
        want[7606..7622].fill(0xbb);
        assert_eq!(&*pkt.data_out(), &want[..]);
        assert_eq!(pkt.linear_ptr(3504, 16), Some(pkt.md().data as u64 + 3504));
        assert_eq!(pkt.linear_ptr(3505, 16), None);
        // A shorter frame after a longer one keeps the pages and drops the fragments.
        pkt.reset(&data[..60]).unwrap();
        assert!(!pkt.has_frags());
        assert_eq!(pkt.buff_len(), 60);
        assert_eq!(&*pkt.data_out(), &data[..60]);
        // Fragments are freed from the end; a frame without any shrinks its linear part.
        pkt.reset(&data).unwrap();
        pkt.shrink_frags(1384 + 96);
        assert_eq!(pkt.frag_sizes(), &[4000]);
        pkt.shrink_frags(4000 + 20);
        assert!(!pkt.has_frags());
        assert_eq!(pkt.data(), &data[..3500]);
    }

    fn ctx(
        data: u32,
        data_end: u32,
        data_meta: u32,
        ingress: u32,
        rxq: u32,
        egress: u32,
    ) -> Vec<u8> {
        let md = XdpMd {
            data,
            data_end,
            data_meta,
            ingress_ifindex: ingress,
            rx_queue_index: rxq,
            egress_ifindex: egress,
        };
        md.to_bytes().to_vec()
    }

    fn errno(r: Result<Packet, PacketError>) -> i32 {
        match r {
            Err(PacketError::BadCtx { errno, .. }) => errno,
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => 0,
        }
    }

    /// The kernel's answers, probed with `bpftool prog run ... ctx_in` on Linux 6.18.
    #[test]
    fn test_run_context_rules() {
        let data: Vec<u8> = (0..72u8).collect();
        let n = data.len() as u32;
        let pkt = Packet::with_ctx(&data, &ctx(8, n, 0, 1, 0, 0)).unwrap();
        assert_eq!(pkt.meta_len(), 8);
        assert_eq!(pkt.data_with_meta(), &data[..]);
        assert_eq!(pkt.data(), &data[8..]);
        assert_eq!(pkt.md().ingress_ifindex, 1);
        let out = XdpMd {
            data: 8,
            data_end: n,
            ingress_ifindex: 1,
            ..Default::default()
        };
        assert_eq!(pkt.ctx_out(), out);
        // No interface: the program sees loopback, ctx_out keeps 0.
        let pkt = Packet::with_ctx(&data, &ctx(0, n, 0, 0, 0, 0)).unwrap();
        assert_eq!(
            (pkt.md().ingress_ifindex, pkt.ctx_out().ingress_ifindex),
            (1, 0)
        );
        // A short context is zero-filled (here data_end 0 < data); a long one must be
        // zero past the struct.
        assert_eq!(
            errno(Packet::with_ctx(&data, &ctx(8, n, 0, 0, 0, 0)[..4])),
            libc::EINVAL
        );
        assert!(Packet::with_ctx(&data, &ctx(8, n, 0, 0, 0, 0)[..8]).is_ok());
        let mut long = ctx(0, n, 0, 1, 0, 0);
        long.extend([0, 0, 0, 0]);
        assert!(Packet::with_ctx(&data, &long).is_ok());
        long[24] = 1;
        assert_eq!(errno(Packet::with_ctx(&data, &long)), libc::E2BIG);
        for bad in [
            ctx(6, n, 0, 1, 0, 0),   // misaligned metadata
            ctx(220, n, 0, 1, 0, 0), // metadata past the room above struct xdp_frame
            ctx(0, n, 4, 1, 0, 0),   // data_meta set
            ctx(0, n + 1, 0, 1, 0, 0),
            ctx(0, n, 0, 1, 0, 5), // egress_ifindex
            ctx(0, n, 0, 0, 1, 0), // a queue without an interface
            ctx(0, n, 0, 1, 1000, 0),
        ] {
            assert_eq!(
                errno(Packet::with_ctx(&data, &bad)),
                libc::EINVAL,
                "{bad:?}"
            );
        }
        let no_dev = Packet::with_ctx(&data, &ctx(0, n, 0, 0xfff_ffff, 0, 0));
        assert_eq!(errno(no_dev), libc::ENODEV);
        let pkt = Packet::with_ctx(&[0; 216 + 14], &ctx(216, 230, 0, 1, 0, 0)).unwrap();
        assert_eq!(pkt.meta_len(), 216);
    }

    /// data_end short of the input: the linear part ends there, the rest goes to
    /// fragments, for every program (probed with BPF_PROG_TEST_RUN on Linux 6.18, a
    /// program with and one without BPF_F_XDP_HAS_FRAGS answering alike).
    #[test]
    fn test_run_context_with_fragments() {
        let data: Vec<u8> = (0..60u8).collect();
        // "data_end one byte short": 59 linear bytes, one fragment of 1.
        let pkt = Packet::with_ctx(&data, &ctx(0, 59, 0, 0, 0, 0)).unwrap();
        assert_eq!((pkt.data().len(), pkt.frag_sizes()), (59, &[1][..]));
        assert_eq!(pkt.ctx_out().data_end, 59);
        assert_eq!(&*pkt.data_out(), &data[..]);
        // A linear part shorter than an Ethernet header, even an empty one, runs; the
        // input past the metadata must still hold one.
        for (d, e) in [(0, 13), (8, 13), (16, 16), (0, 0), (4, 4)] {
            let pkt = Packet::with_ctx(&data, &ctx(d, e, 0, 0, 0, 0)).unwrap();
            assert_eq!(pkt.meta_len(), d as usize);
            assert_eq!(pkt.data().len(), (e - d) as usize);
            assert_eq!(pkt.buff_len(), 60 - d as usize);
            assert_eq!(&*pkt.data_out(), &data[..]);
        }
        assert!(matches!(
            Packet::with_ctx(&data[..21], &ctx(8, 21, 0, 0, 0, 0)),
            Err(PacketError::TooShort { len: 13 })
        ));
        assert!(Packet::with_ctx(&data[..22], &ctx(8, 22, 0, 0, 0, 0)).is_ok());
        // data_end past the page: the linear part stops at 3520 bytes past the metadata.
        let big: Vec<u8> = (0..9000u32).map(|i| i as u8).collect();
        let pkt = Packet::with_ctx(&big, &ctx(8, 9000, 0, 0, 0, 0)).unwrap();
        assert_eq!(pkt.ctx_out().data_end, 3528);
        assert_eq!(pkt.frag_sizes(), &[4096, 1376]);
        // At most 17 fragments after the linear part, whatever its length: ENOMEM.
        let n = 100 + 17 * 4096;
        let long = vec![0u8; n + 1];
        assert!(Packet::with_ctx(&long[..n], &ctx(0, 100, 0, 0, 0, 0)).is_ok());
        let e = Packet::with_ctx(&long, &ctx(0, 100, 0, 0, 0, 0))
            .err()
            .unwrap();
        assert_eq!(e.errno(), libc::ENOMEM);
        let e = Packet::with_ctx(&long[..17 * 4096 + 1], &ctx(0, 0, 0, 0, 0, 0));
        assert_eq!(e.err().unwrap().errno(), libc::ENOMEM);
        // The context's own errors come first.
        assert_eq!(
            errno(Packet::with_ctx(&long, &ctx(0, 0, 0, 0, 0, 1))),
            libc::EINVAL
        );
        assert_eq!(
            errno(Packet::with_ctx(&long, &ctx(0, 0, 0, 0xfff_ffff, 0, 0))),
            libc::ENODEV
        );
    }
}
