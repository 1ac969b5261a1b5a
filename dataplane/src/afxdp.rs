//! AF_XDP sockets on libc, and the small kernel XDP program that redirects an
//! interface's receive queues to them.
//!
//! Written on libc rather than with the `xsk-rs` crate: xsk-rs builds libxdp and
//! libbpf from C sources (a C toolchain and those libraries' build at every clean
//! build), for what is four single-producer/single-consumer rings and a five-
//! instruction program here. The kernel's Documentation/networking/af_xdp.rst is
//! the specification followed.
//!
//! - One socket per receive queue, each with its own UMEM of [`FRAMES`] chunks of
//!   [`CHUNK`] bytes: half of them circulate through the fill ring for reception,
//!   the other half are free for transmission and come back through the completion
//!   ring.
//! - The kernel program: `bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS)`,
//!   assembled here and loaded with bpf(2); a queue without a socket passes its
//!   frames to the host stack. It is attached with a BPF link (native mode, then
//!   generic mode), so it goes away with the process.
//!
//! This module holds unsafe code: the bpf(2) and socket calls, the UMEM and ring
//! mappings.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::afpacket::ifname;
use crate::live_error::LiveError;

/// Bytes per UMEM chunk: one frame (the runtime's frames hold at most 3520 bytes).
pub const CHUNK: u32 = 4096;
/// Chunks per socket.
pub const FRAMES: u32 = 4096;
/// Descriptors per ring.
const RING: u32 = 2048;

use isa::uapi::{
    BPF_LINK_CREATE, BPF_MAP_CREATE, BPF_MAP_TYPE_XSKMAP, BPF_MAP_UPDATE_ELEM, BPF_PROG_LOAD,
    BPF_PROG_TYPE_XDP, BPF_XDP,
};
// `XDP_FLAGS_*` of <linux/if_link.h> (not bpf.h, so not in isa::uapi).
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

fn bpf(cmd: u32, attr: &mut [u8]) -> io::Result<i32> {
    // SAFETY: `attr` is a live, writable buffer of the size passed, laid out as the
    // command's `union bpf_attr` member.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr.as_mut_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as i32)
    }
}

fn put32(a: &mut [u8], off: usize, v: u32) {
    a[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(a: &mut [u8], off: usize, v: u64) {
    a[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

fn owned(fd: i32) -> OwnedFd {
    // SAFETY: `fd` was just returned by the kernel and is owned by nothing else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn not_permitted(what: &'static str, needs: &'static str, e: io::Error) -> LiveError {
    LiveError::NotPermitted {
        what,
        needs,
        source: e,
    }
}

/// One instruction slot.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = (src << 4) | (dst & 0xf);
    b[2..4].copy_from_slice(&off.to_le_bytes());
    b[4..8].copy_from_slice(&imm.to_le_bytes());
    b
}

/// The kernel program redirecting an interface's queues to AF_XDP sockets, held
/// attached while this value lives.
pub struct XskProgram {
    map: OwnedFd,
    _prog: OwnedFd,
    _link: OwnedFd,
    ifindex: u32,
    native: bool,
}

impl XskProgram {
    /// Creates an XSKMAP of `queues` entries, loads the redirecting program and
    /// attaches it to `ifindex` (native mode where the driver has it, else generic).
    pub fn attach(ifindex: u32, queues: u32) -> Result<XskProgram, LiveError> {
        let sys = |op: &'static str| {
            move |e: io::Error| {
                if e.raw_os_error() == Some(libc::EPERM) {
                    not_permitted(
                        "loading the AF_XDP redirect program",
                        "CAP_BPF and CAP_NET_ADMIN (or root)",
                        e,
                    )
                } else {
                    LiveError::Socket {
                        op,
                        iface: ifname(ifindex),
                        source: e,
                    }
                }
            }
        };
        let mut attr = [0u8; 64];
        put32(&mut attr, 0, BPF_MAP_TYPE_XSKMAP);
        put32(&mut attr, 4, 4);
        put32(&mut attr, 8, 4);
        put32(&mut attr, 12, queues.max(1));
        attr[28..28 + 8].copy_from_slice(b"xdp_xsks");
        let map =
            owned(bpf(BPF_MAP_CREATE, &mut attr).map_err(sys("bpf(BPF_MAP_CREATE, XSKMAP)"))?);

        // r2 = ctx->rx_queue_index; r1 = &xsks; r3 = XDP_PASS;
        // return bpf_redirect_map(r1, r2, r3).
        let mut code = Vec::with_capacity(6 * 8);
        code.extend_from_slice(&insn(0x61, 2, 1, 16, 0));
        code.extend_from_slice(&insn(0x18, 1, 1, 0, map.as_raw_fd()));
        code.extend_from_slice(&insn(0, 0, 0, 0, 0));
        code.extend_from_slice(&insn(0xb7, 3, 0, 0, 2));
        code.extend_from_slice(&insn(0x85, 0, 0, 0, 51));
        code.extend_from_slice(&insn(0x95, 0, 0, 0, 0));
        let license = b"GPL\0";
        let mut log = vec![0u8; 4096];
        let mut attr = [0u8; 128];
        put32(&mut attr, 0, BPF_PROG_TYPE_XDP);
        put32(&mut attr, 4, (code.len() / 8) as u32);
        put64(&mut attr, 8, code.as_ptr() as u64);
        put64(&mut attr, 16, license.as_ptr() as u64);
        put32(&mut attr, 24, 1);
        put32(&mut attr, 28, log.len() as u32);
        put64(&mut attr, 32, log.as_mut_ptr() as u64);
        attr[48..48 + 8].copy_from_slice(b"xdp_xsk\0");
        put32(&mut attr, 68, BPF_XDP);
        let prog = owned(bpf(BPF_PROG_LOAD, &mut attr).map_err(|e| {
            if e.raw_os_error() == Some(libc::EPERM) {
                return not_permitted(
                    "loading the AF_XDP redirect program",
                    "CAP_BPF and CAP_NET_ADMIN (or root)",
                    e,
                );
            }
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            LiveError::KernelProgram {
                iface: ifname(ifindex),
                source: e,
                log: String::from_utf8_lossy(&log[..end]).into_owned(),
            }
        })?);

        let mut last = None;
        for (flags, native) in [(XDP_FLAGS_DRV_MODE, true), (XDP_FLAGS_SKB_MODE, false)] {
            let mut attr = [0u8; 64];
            put32(&mut attr, 0, prog.as_raw_fd() as u32);
            put32(&mut attr, 4, ifindex);
            put32(&mut attr, 8, BPF_XDP);
            put32(&mut attr, 12, flags);
            match bpf(BPF_LINK_CREATE, &mut attr) {
                Ok(fd) => {
                    return Ok(XskProgram {
                        map,
                        _prog: prog,
                        _link: owned(fd),
                        ifindex,
                        native,
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        Err(sys("bpf(BPF_LINK_CREATE, BPF_XDP)")(last.unwrap_or_else(
            || io::Error::from_raw_os_error(libc::EINVAL),
        )))
    }

    /// True if the program runs in the driver (native XDP), false in generic mode.
    pub fn native(&self) -> bool {
        self.native
    }

    /// Sends the frames of receive queue `queue` to `sock`.
    pub fn register(&self, queue: u32, sock: &XskSocket) -> Result<(), LiveError> {
        let key = queue;
        let value = sock.fd.as_raw_fd() as u32;
        let mut attr = [0u8; 32];
        put32(&mut attr, 0, self.map.as_raw_fd() as u32);
        put64(&mut attr, 8, &key as *const u32 as u64);
        put64(&mut attr, 16, &value as *const u32 as u64);
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map_err(|e| LiveError::Socket {
            op: "bpf(BPF_MAP_UPDATE_ELEM, XSKMAP)",
            iface: ifname(self.ifindex),
            source: e,
        })?;
        Ok(())
    }
}

/// One mapped ring shared with the kernel: single producer, single consumer.
struct Ring {
    map: NonNull<u8>,
    map_len: usize,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    desc: *mut u8,
    /// Entries (a power of two) and entry size in bytes.
    size: u32,
    entry: usize,
}

impl Ring {
    /// Maps the ring of `size` entries of `entry` bytes at page offset `pgoff`.
    fn map(
        fd: RawFd,
        off: &libc::xdp_ring_offset,
        size: u32,
        entry: usize,
        pgoff: u64,
    ) -> io::Result<Ring> {
        let map_len = off.desc as usize + size as usize * entry;
        // SAFETY: mapping a ring the kernel set up on this socket; checked below and
        // unmapped in Drop.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = p.cast::<u8>();
        // SAFETY: the kernel's offsets lie inside the mapping of `map_len` bytes
        // (they precede `desc`, and the descriptors end at `map_len`); the producer,
        // consumer and flags words are 4-byte aligned u32s.
        unsafe {
            Ok(Ring {
                map: NonNull::new_unchecked(base),
                map_len,
                producer: base.add(off.producer as usize).cast(),
                consumer: base.add(off.consumer as usize).cast(),
                flags: base.add(off.flags as usize).cast(),
                desc: base.add(off.desc as usize),
                size,
                entry,
            })
        }
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping (see `map`); shared with the kernel,
        // hence atomic.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as `producer`.
        unsafe { &*self.consumer }
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: as `producer`.
        unsafe { &*self.flags }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Entry `idx` (taken modulo the ring size).
    fn slot(&self, idx: u32) -> *mut u8 {
        let i = (idx & (self.size - 1)) as usize;
        // SAFETY: i < size, so the entry lies inside the descriptor array.
        unsafe { self.desc.add(i * self.entry) }
    }

    /// Producer side: room for one more entry? Then writes it and publishes it.
    fn push(&self, write: impl FnOnce(*mut u8)) -> bool {
        let prod = self.producer().load(Ordering::Relaxed);
        let cons = self.consumer().load(Ordering::Acquire);
        if prod.wrapping_sub(cons) >= self.size {
            return false;
        }
        write(self.slot(prod));
        self.producer()
            .store(prod.wrapping_add(1), Ordering::Release);
        true
    }

    /// Consumer side: the next entry, if the kernel produced one; `read` sees it
    /// before it is handed back.
    fn pop<T>(&self, read: impl FnOnce(*const u8) -> T) -> Option<T> {
        let cons = self.consumer().load(Ordering::Relaxed);
        let prod = self.producer().load(Ordering::Acquire);
        if cons == prod {
            return None;
        }
        let v = read(self.slot(cons));
        self.consumer()
            .store(cons.wrapping_add(1), Ordering::Release);
        Some(v)
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, with its length; nothing points into it
        // after the ring is gone.
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.map_len) };
    }
}

/// An AF_XDP socket bound to one queue of one interface, with its own UMEM.
pub struct XskSocket {
    // Rings before the socket: they are unmapped before it is closed.
    rx: Ring,
    tx: Ring,
    fill: Ring,
    comp: Ring,
    fd: OwnedFd,
    umem: NonNull<u8>,
    umem_len: usize,
    /// Chunks free for transmission.
    free: Vec<u64>,
    ifindex: u32,
    queue: u32,
}

// SAFETY: the UMEM and rings are owned by this value alone; the kernel is the only
// other party and synchronises through the rings' producer and consumer words.
unsafe impl Send for XskSocket {}

impl XskSocket {
    /// A socket on queue `queue` of `ifindex`, in copy or zero-copy mode as the
    /// driver allows, with half of its chunks given to the fill ring.
    pub fn open(ifindex: u32, queue: u32) -> Result<XskSocket, LiveError> {
        let sys = |op: &'static str| {
            move |e: io::Error| LiveError::Socket {
                op,
                iface: format!("{} queue {queue}", ifname(ifindex)),
                source: e,
            }
        };
        // SAFETY: plain socket(2); checked.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EPERM) {
                return Err(not_permitted("an AF_XDP socket", "CAP_NET_RAW", e));
            }
            return Err(sys("socket(AF_XDP)")(e));
        }
        let fd = owned(raw);
        let umem_len = (CHUNK * FRAMES) as usize;
        // SAFETY: an anonymous private mapping; checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                umem_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(sys("mmap(UMEM)")(io::Error::last_os_error()));
        }
        let umem = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| sys("mmap(UMEM)")(io::Error::from_raw_os_error(libc::ENOMEM)))?;
        let unmap = |e: LiveError| {
            // SAFETY: the UMEM mapped above; nothing refers to it yet.
            unsafe { libc::munmap(umem.as_ptr().cast(), umem_len) };
            e
        };
        let reg = libc::xdp_umem_reg {
            addr: umem.as_ptr() as u64,
            len: umem_len as u64,
            chunk_size: CHUNK,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        let setup = || -> Result<(Ring, Ring, Ring, Ring), LiveError> {
            let raw = fd.as_raw_fd();
            set(raw, libc::XDP_UMEM_REG, &reg).map_err(sys("setsockopt(XDP_UMEM_REG)"))?;
            set(raw, libc::XDP_UMEM_FILL_RING, &RING)
                .map_err(sys("setsockopt(XDP_UMEM_FILL_RING)"))?;
            set(raw, libc::XDP_UMEM_COMPLETION_RING, &RING)
                .map_err(sys("setsockopt(XDP_UMEM_COMPLETION_RING)"))?;
            set(raw, libc::XDP_RX_RING, &RING).map_err(sys("setsockopt(XDP_RX_RING)"))?;
            set(raw, libc::XDP_TX_RING, &RING).map_err(sys("setsockopt(XDP_TX_RING)"))?;
            // SAFETY: xdp_mmap_offsets is plain data; zero is valid.
            let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
            // SAFETY: `off` and `len` are valid for getsockopt's output.
            let r = unsafe {
                libc::getsockopt(
                    raw,
                    libc::SOL_XDP,
                    libc::XDP_MMAP_OFFSETS,
                    (&mut off as *mut libc::xdp_mmap_offsets).cast(),
                    &mut len,
                )
            };
            if r < 0 || len as usize != std::mem::size_of::<libc::xdp_mmap_offsets>() {
                return Err(sys("getsockopt(XDP_MMAP_OFFSETS)")(
                    io::Error::last_os_error(),
                ));
            }
            let desc = std::mem::size_of::<libc::xdp_desc>();
            let rx = Ring::map(raw, &off.rx, RING, desc, libc::XDP_PGOFF_RX_RING as u64)
                .map_err(sys("mmap(XDP_RX_RING)"))?;
            let tx = Ring::map(
                raw,
                &off.tx,
                RING,
                desc,
                libc::XDP_PGOFF_TX_RING as u32 as u64,
            )
            .map_err(sys("mmap(XDP_TX_RING)"))?;
            let fill = Ring::map(raw, &off.fr, RING, 8, libc::XDP_UMEM_PGOFF_FILL_RING)
                .map_err(sys("mmap(XDP_UMEM_FILL_RING)"))?;
            let comp = Ring::map(raw, &off.cr, RING, 8, libc::XDP_UMEM_PGOFF_COMPLETION_RING)
                .map_err(sys("mmap(XDP_UMEM_COMPLETION_RING)"))?;
            // SAFETY: sockaddr_xdp is plain data; zero is valid.
            let mut sxdp: libc::sockaddr_xdp = unsafe { std::mem::zeroed() };
            sxdp.sxdp_family = libc::AF_XDP as u16;
            sxdp.sxdp_flags = libc::XDP_USE_NEED_WAKEUP;
            sxdp.sxdp_ifindex = ifindex;
            sxdp.sxdp_queue_id = queue;
            // SAFETY: a valid sockaddr_xdp and its size.
            let r = unsafe {
                libc::bind(
                    raw,
                    (&sxdp as *const libc::sockaddr_xdp).cast(),
                    std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
                )
            };
            if r < 0 {
                return Err(sys("bind(AF_XDP)")(io::Error::last_os_error()));
            }
            Ok((rx, tx, fill, comp))
        };
        let (rx, tx, fill, comp) = setup().map_err(unmap)?;
        let half = FRAMES / 2;
        let sock = XskSocket {
            rx,
            tx,
            fill,
            comp,
            fd,
            umem,
            umem_len,
            free: (half..FRAMES).map(|i| u64::from(i * CHUNK)).collect(),
            ifindex,
            queue,
        };
        for i in 0..half.min(RING) {
            let addr = u64::from(i * CHUNK);
            sock.fill.push(|p| {
                // SAFETY: the slot is an 8-byte fill ring entry.
                unsafe { p.cast::<u64>().write_unaligned(addr) }
            });
        }
        Ok(sock)
    }

    /// The interface and queue this socket is bound to.
    pub fn queue(&self) -> (u32, u32) {
        (self.ifindex, self.queue)
    }

    fn wake(&self) {
        // SAFETY: a zero-length non-blocking receive on our socket only kicks the
        // kernel's processing; no buffer is touched.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    }

    /// Copies the next received frame into `buf` and gives its chunk back to the
    /// fill ring; returns its length, or `None` if nothing has arrived.
    pub fn next_frame(&mut self, buf: &mut Vec<u8>) -> Option<usize> {
        let desc = self.rx.pop(|p| {
            // SAFETY: the slot is a 16-byte xdp_desc the kernel produced.
            unsafe { p.cast::<libc::xdp_desc>().read_unaligned() }
        })?;
        let addr = desc.addr as usize;
        let len = desc.len as usize;
        buf.clear();
        if addr
            .checked_add(len)
            .is_some_and(|end| end <= self.umem_len)
        {
            // SAFETY: [addr, addr + len) lies inside the UMEM (checked), and the
            // kernel does not write this chunk until it is back in the fill ring.
            let data = unsafe { std::slice::from_raw_parts(self.umem.as_ptr().add(addr), len) };
            buf.extend_from_slice(data);
        }
        let chunk = desc.addr & !u64::from(CHUNK - 1);
        // The fill ring has room: it holds at most the chunks not in flight.
        self.fill.push(|p| {
            // SAFETY: the slot is an 8-byte fill ring entry.
            unsafe { p.cast::<u64>().write_unaligned(chunk) }
        });
        if self.fill.needs_wakeup() {
            self.wake();
        }
        Some(buf.len())
    }

    /// Waits up to `timeout_ms` for a frame; true if one is ready.
    pub fn wait(&self, timeout_ms: i32) -> Result<bool, LiveError> {
        let ready =
            |r: &Ring| r.producer().load(Ordering::Acquire) != r.consumer().load(Ordering::Relaxed);
        if ready(&self.rx) {
            return Ok(true);
        }
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        let fail = |source| LiveError::Socket {
            op: "poll(AF_XDP)",
            iface: format!("{} queue {}", ifname(self.ifindex), self.queue),
            source,
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(fail(e));
            }
        }
        if r > 0 && pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            // The kernel unbinds the socket when its interface goes away (ENETDOWN).
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
            if err != 0 || pfd.revents & libc::POLLNVAL != 0 {
                return Err(fail(io::Error::from_raw_os_error(if err != 0 {
                    err
                } else {
                    libc::EBADF
                })));
            }
        }
        Ok(ready(&self.rx))
    }

    /// Takes back the chunks the kernel finished sending.
    fn reap(&mut self) {
        while let Some(addr) = self.comp.pop(|p| {
            // SAFETY: the slot is an 8-byte completion ring entry.
            unsafe { p.cast::<u64>().read_unaligned() }
        }) {
            self.free.push(addr & !u64::from(CHUNK - 1));
        }
    }

    /// Sends `frame` out of the socket's interface. A full transmit ring drops the
    /// frame (`ENOBUFS`), as a full XDP_TX queue does in the kernel.
    pub fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        if frame.len() > CHUNK as usize {
            return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
        }
        self.reap();
        let Some(addr) = self.free.pop() else {
            self.kick();
            return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
        };
        // SAFETY: the chunk is free (not in any ring), inside the UMEM, and at least
        // `frame.len()` bytes long (checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(
                frame.as_ptr(),
                self.umem.as_ptr().add(addr as usize),
                frame.len(),
            )
        };
        let desc = libc::xdp_desc {
            addr,
            len: frame.len() as u32,
            options: 0,
        };
        if !self.tx.push(|p| {
            // SAFETY: the slot is a 16-byte xdp_desc entry.
            unsafe { p.cast::<libc::xdp_desc>().write_unaligned(desc) }
        }) {
            self.free.push(addr);
            self.kick();
            return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
        }
        self.kick();
        Ok(())
    }

    /// Asks the kernel to process the transmit ring.
    fn kick(&self) {
        if !self.tx.needs_wakeup() {
            return;
        }
        // SAFETY: a zero-length non-blocking send on our socket only kicks the
        // kernel's transmit processing.
        unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
    }
}

impl Drop for XskSocket {
    fn drop(&mut self) {
        // The rings and the socket are closed after this body (fields drop later);
        // unmapping the UMEM first is sound: the kernel pinned its pages when it
        // was registered and keeps its own references until the socket is closed.
        // SAFETY: the mapping made in `open`, with its length; no slice of it
        // outlives `self`.
        unsafe { libc::munmap(self.umem.as_ptr().cast(), self.umem_len) };
    }
}

fn set<T>(fd: RawFd, name: i32, v: &T) -> io::Result<()> {
    // SAFETY: `v` points to a live `T` of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The receive queues of `ifindex` (from /sys/class/net; 1 if unknown).
pub fn rx_queues(ifindex: u32) -> u32 {
    let name = ifname(ifindex);
    std::fs::read_dir(format!("/sys/class/net/{name}/queues"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count() as u32
        })
        .unwrap_or(1)
        .max(1)
}
