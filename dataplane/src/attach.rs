//! A data plane on a live interface: every frame arriving on it runs through the
//! program on one of the workers, and its verdict is carried out.
//!
//! Two modes:
//! - [`Mode::AfPacket`]: one TPACKET_V3 ring per worker, all in one hash fanout
//!   group (a flow stays on one worker). Needs CAP_NET_RAW only, works on any
//!   interface. AF_PACKET copies frames, it does not take them: the host's stack
//!   has received every frame too, so XDP_PASS does nothing and XDP_DROP cannot
//!   keep a frame from the host (use AF_XDP mode for that).
//! - [`Mode::AfXdp`]: the kernel program of [`crate::afxdp`] redirects every
//!   receive queue to an AF_XDP socket; worker `w` serves the queues `q` with
//!   `q % workers == w`. The frames are the data plane's alone: XDP_PASS hands
//!   them to the host's stack through a TAP device ([`crate::tap`]) that stands in
//!   for the interface (the host's addresses for the link go on it; what the host
//!   sends out of it is sent out of the interface), XDP_DROP drops them. Needs
//!   CAP_NET_RAW, CAP_NET_ADMIN and CAP_BPF (or root).
//!
//! In both modes XDP_TX sends the frame back out of the interface, XDP_REDIRECT
//! through a devmap or devmap_hash entry or `bpf_redirect(ifindex)` sends it out of
//! that interface (an AF_PACKET transmit socket per target, opened at its first
//! frame), a cpumap entry hands the frame to the worker of that index, which passes
//! it to the host as XDP_PASS would; XDP_ABORTED is counted as an error. What the
//! sockets could not send is counted per worker ([`LiveCounts`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::afpacket::{ifindex_exists, ifname, Fanout, RingConfig, RxRing, TxSocket};
use crate::afxdp::{rx_queues, XskProgram, XskSocket};
use crate::error::DataplaneError;
use crate::io::{FrameMeta, OutFrame, Recv, Sink, Source};
use crate::live_error::LiveError;
use crate::replay::Summary;
use crate::tap::{mac_address, Tap};
use crate::worker::{Dataplane, Verdict};

const BPF_MAP_TYPE_UNSPEC: u32 = 0;
const BPF_MAP_TYPE_DEVMAP: u32 = 14;
const BPF_MAP_TYPE_CPUMAP: u32 = 16;
const BPF_MAP_TYPE_DEVMAP_HASH: u32 = 25;
const BPF_F_BROADCAST: u64 = 1 << 3;

/// How a live interface is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    AfPacket,
    AfXdp,
}

/// How an attachment runs.
#[derive(Clone)]
pub struct AttachOptions<'o> {
    /// The interface.
    pub ifindex: u32,
    pub mode: Mode,
    /// Raised (by a signal handler, say): the workers stop within about
    /// [`AttachOptions::poll_ms`].
    pub stop: Option<&'o AtomicBool>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// The AF_PACKET rings' geometry.
    pub ring: RingConfig,
    /// How long a worker waits for frames before it checks the stop flag.
    pub poll_ms: i32,
    /// AF_XDP mode: the name of the TAP device for XDP_PASS (default
    /// `xdppass<ifindex>`).
    pub tap_name: Option<String>,
    /// Called once the interface is open, before the workers start.
    pub ready: Option<&'o (dyn Fn(&Ready) + Sync)>,
}

/// What [`AttachOptions::ready`] is told.
#[derive(Clone, Debug)]
pub struct Ready {
    pub iface: String,
    pub mode: Mode,
    pub workers: u32,
    /// AF_XDP mode: whether the kernel program runs in the driver.
    pub native: Option<bool>,
    /// AF_XDP mode: the TAP device for XDP_PASS.
    pub tap: Option<String>,
}

impl AttachOptions<'_> {
    /// Options for `ifindex` in `mode`, running until stopped.
    pub fn new(ifindex: u32, mode: Mode) -> AttachOptions<'static> {
        AttachOptions {
            ifindex,
            mode,
            stop: None,
            duration: None,
            ring: RingConfig::default(),
            poll_ms: 50,
            tap_name: None,
            ready: None,
        }
    }
}

/// What a worker's sockets did with the frames, besides the verdict counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveCounts {
    /// XDP_TX frames sent, and those the interface refused (a full queue).
    pub tx_sent: u64,
    pub tx_failed: u64,
    /// Redirected frames sent out of their target interface, and those that could
    /// not be (no such interface, a full queue, an xskmap or broadcast redirect).
    pub redirect_sent: u64,
    pub redirect_failed: u64,
    /// Frames this worker handed to another through a cpumap entry, and frames it
    /// received that way.
    pub cpumap_out: u64,
    pub cpumap_in: u64,
    /// AF_XDP mode: frames handed to the host's stack through the TAP device, and
    /// those it refused.
    pub pass_injected: u64,
    pub pass_failed: u64,
    /// AF_PACKET mode: frames the kernel dropped because the worker's ring was full.
    pub ring_drops: u64,
}

impl LiveCounts {
    /// Adds `o` to these counts.
    pub fn add(&mut self, o: &LiveCounts) {
        self.tx_sent += o.tx_sent;
        self.tx_failed += o.tx_failed;
        self.redirect_sent += o.redirect_sent;
        self.redirect_failed += o.redirect_failed;
        self.cpumap_out += o.cpumap_out;
        self.cpumap_in += o.cpumap_in;
        self.pass_injected += o.pass_injected;
        self.pass_failed += o.pass_failed;
        self.ring_drops += o.ring_drops;
    }

    /// (name, value) pairs, as `--json` keys.
    pub fn fields(&self) -> [(&'static str, u64); 9] {
        [
            ("tx_sent", self.tx_sent),
            ("tx_failed", self.tx_failed),
            ("redirect_sent", self.redirect_sent),
            ("redirect_failed", self.redirect_failed),
            ("cpumap_out", self.cpumap_out),
            ("cpumap_in", self.cpumap_in),
            ("pass_injected", self.pass_injected),
            ("pass_failed", self.pass_failed),
            ("ring_drops", self.ring_drops),
        ]
    }
}

/// What an attachment did.
#[derive(Clone, Debug)]
pub struct AttachSummary {
    /// The verdict counts per worker, as a replay reports them.
    pub summary: Summary,
    /// The sockets' counts per worker.
    pub live: Vec<(u32, LiveCounts)>,
    /// AF_XDP mode: whether the kernel program ran in the driver (native) or in
    /// generic mode.
    pub native: Option<bool>,
    /// AF_XDP mode: the TAP device XDP_PASS frames went to.
    pub tap: Option<String>,
    /// AF_XDP mode: frames the host sent out of the TAP device, sent out of the
    /// interface, and those the interface refused.
    pub host_sent: u64,
    pub host_failed: u64,
}

impl AttachSummary {
    /// The sockets' counts summed over the workers.
    pub fn live_total(&self) -> LiveCounts {
        let mut t = LiveCounts::default();
        for (_, c) in &self.live {
            t.add(c);
        }
        t
    }
}

/// A frame handed from one worker to another (a cpumap redirect).
struct Handoff {
    data: Vec<u8>,
}

/// Where a worker's frames come from.
enum Rx {
    Packet(RxRing),
    /// The worker's AF_XDP sockets (with their queue numbers) and the next to read.
    Xsk(Vec<(u32, XskSocket)>, usize),
}

/// A worker's end of a live interface: the source of its frames and the sink that
/// carries out their verdicts.
pub struct LivePort {
    rx: Rx,
    ifindex: u32,
    /// AF_PACKET mode: XDP_TX goes out through this socket.
    tx: Option<TxSocket>,
    /// Transmit sockets of redirect targets, opened at their first frame (`None`
    /// once opening failed, so it is not retried per frame).
    out: HashMap<u32, Option<TxSocket>>,
    tap: Option<Arc<Tap>>,
    peers: Arc<Vec<SyncSender<Handoff>>>,
    inbox: Receiver<Handoff>,
    poll_ms: i32,
    counts: LiveCounts,
    index: u32,
    /// The interface's name, and the idle polls since its existence was checked.
    iface: String,
    idle: u32,
}

impl LivePort {
    /// The sockets' counts so far.
    pub fn counts(&self) -> LiveCounts {
        self.counts
    }

    /// Hands a frame to the host's stack (XDP_PASS).
    fn pass(&mut self, data: &[u8]) {
        // AF_PACKET: the host has the frame already.
        if let Some(tap) = &self.tap {
            match tap.send(data) {
                Ok(()) => self.counts.pass_injected += 1,
                Err(_) => self.counts.pass_failed += 1,
            }
        }
    }

    /// Sends a frame out of the port's own interface (XDP_TX).
    fn transmit(&mut self, data: &[u8]) -> bool {
        match (&mut self.rx, &self.tx) {
            (_, Some(tx)) => tx.send(data).is_ok(),
            (Rx::Xsk(socks, next), None) => {
                // The socket of the queue last read from.
                let i = next.checked_sub(1).unwrap_or(socks.len() - 1);
                socks[i].1.send(data).is_ok()
            }
            (Rx::Packet(ring), None) => ring.send(data).is_ok(),
        }
    }

    /// Sends a frame out of interface `ifindex` (XDP_REDIRECT).
    fn redirect_to(&mut self, ifindex: u32, data: &[u8]) -> bool {
        if ifindex == self.ifindex {
            return self.transmit(data);
        }
        let sock = self
            .out
            .entry(ifindex)
            .or_insert_with(|| TxSocket::open(ifindex).ok());
        sock.as_ref().is_some_and(|s| s.send(data).is_ok())
    }

    /// Carries out XDP_REDIRECT.
    fn redirect(&mut self, f: &OutFrame<'_>) {
        let Some(r) = f.redirect.filter(|r| r.flags & BPF_F_BROADCAST == 0) else {
            // No target, or a broadcast: not carried out.
            self.counts.redirect_failed += 1;
            return;
        };
        match (r.map_type, r.target) {
            (BPF_MAP_TYPE_UNSPEC | BPF_MAP_TYPE_DEVMAP | BPF_MAP_TYPE_DEVMAP_HASH, Some(t)) => {
                if self.redirect_to(t as u32, f.data) {
                    self.counts.redirect_sent += 1;
                } else {
                    self.counts.redirect_failed += 1;
                }
            }
            (BPF_MAP_TYPE_CPUMAP, Some(_)) => {
                let to = r.key as usize % self.peers.len();
                if to == self.index as usize {
                    self.counts.cpumap_out += 1;
                    self.counts.cpumap_in += 1;
                    self.pass(f.data);
                } else if self.peers[to]
                    .try_send(Handoff {
                        data: f.data.to_vec(),
                    })
                    .is_ok()
                {
                    self.counts.cpumap_out += 1;
                } else {
                    self.counts.redirect_failed += 1;
                }
            }
            // An xskmap entry names a socket of the kernel's, not one of ours.
            _ => self.counts.redirect_failed += 1,
        }
    }

    /// Frames other workers handed to this one: they go to the host's stack.
    fn drain_inbox(&mut self) {
        while let Ok(h) = self.inbox.try_recv() {
            self.counts.cpumap_in += 1;
            self.pass(&h.data);
        }
    }
}

impl Source for LivePort {
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Recv, DataplaneError> {
        let r = self.recv_frame(buf)?;
        if r == Recv::Idle {
            // A deleted interface is not always reported to its sockets (an AF_XDP
            // socket just receives nothing more): check about once a second.
            self.idle += 1;
            if self.idle as i64 * self.poll_ms as i64 >= 1000 {
                self.idle = 0;
                if !ifindex_exists(self.ifindex) {
                    return Err(LiveError::InterfaceGone {
                        iface: self.iface.clone(),
                    }
                    .into());
                }
            }
        } else {
            self.idle = 0;
        }
        Ok(r)
    }
}

impl LivePort {
    fn recv_frame(&mut self, buf: &mut Vec<u8>) -> Result<Recv, DataplaneError> {
        self.drain_inbox();
        let now = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
        };
        match &mut self.rx {
            Rx::Packet(ring) => {
                if ring.next_frame(buf).is_none() {
                    ring.wait(self.poll_ms)?;
                    match ring.next_frame(buf) {
                        Some(_) => {}
                        None => return Ok(Recv::Idle),
                    }
                }
                let mut meta = FrameMeta::new(now(), buf.len());
                meta.ingress_ifindex = self.ifindex;
                meta.rx_queue_index = 0;
                Ok(Recv::Frame(meta))
            }
            Rx::Xsk(socks, next) => {
                for _ in 0..2 {
                    for k in 0..socks.len() {
                        let i = (*next + k) % socks.len();
                        if socks[i].1.next_frame(buf).is_some() {
                            *next = i + 1;
                            let mut meta = FrameMeta::new(now(), buf.len());
                            meta.ingress_ifindex = self.ifindex;
                            meta.rx_queue_index = socks[i].0;
                            return Ok(Recv::Frame(meta));
                        }
                    }
                    // Nothing ready: wait on the first socket (its queue), or spread
                    // the wait over several.
                    let per = (self.poll_ms / socks.len() as i32).max(1);
                    for (_, s) in socks.iter() {
                        if s.wait(per)? {
                            break;
                        }
                    }
                }
                Ok(Recv::Idle)
            }
        }
    }
}

impl Sink for LivePort {
    fn send(&mut self, f: &OutFrame<'_>) -> Result<(), DataplaneError> {
        match f.verdict {
            Verdict::Pass => self.pass(f.data),
            Verdict::Tx => {
                if self.transmit(f.data) {
                    self.counts.tx_sent += 1;
                } else {
                    self.counts.tx_failed += 1;
                }
            }
            Verdict::Redirect => self.redirect(f),
            // Dropped (AF_XDP) or left to the host (AF_PACKET: it has the frame).
            Verdict::Drop | Verdict::Aborted | Verdict::Runt | Verdict::Oversize => {}
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DataplaneError> {
        Ok(())
    }
}

/// Opens the interface in `opts.mode` for `dp`'s workers, runs them until the stop
/// flag is raised or the duration ends, and returns their counts.
pub fn attach(
    dp: &Dataplane<'_>,
    opts: &AttachOptions<'_>,
) -> Result<AttachSummary, DataplaneError> {
    let n = dp.workers();
    let ifindex = opts.ifindex;
    let name = ifname(ifindex);
    let mut rxs: Vec<Rx> = Vec::with_capacity(n as usize);
    let mut txs: Vec<Option<TxSocket>> = Vec::with_capacity(n as usize);
    let mut program = None;
    let mut tap = None;
    match opts.mode {
        Mode::AfPacket => {
            // The first ring makes a group of its own; the others join it.
            let mut fanout = Fanout::New;
            for _ in 0..n {
                let ring = RxRing::open(ifindex, opts.ring, fanout)?;
                if fanout == Fanout::New {
                    fanout =
                        ring.fanout_group()
                            .map(Fanout::Join)
                            .ok_or_else(|| LiveError::Socket {
                                op: "getsockopt(PACKET_FANOUT)",
                                iface: name.clone(),
                                source: std::io::Error::from_raw_os_error(libc::EINVAL),
                            })?;
                }
                rxs.push(Rx::Packet(ring));
                txs.push(Some(TxSocket::open(ifindex)?));
            }
        }
        Mode::AfXdp => {
            let queues = rx_queues(ifindex);
            if n > queues {
                return Err(LiveError::TooFewQueues {
                    iface: name,
                    queues,
                    workers: n,
                }
                .into());
            }
            let mac = mac_address(&name)?;
            let tap_name = opts
                .tap_name
                .clone()
                .unwrap_or_else(|| format!("xdppass{ifindex}"));
            tap = Some(Arc::new(Tap::create(&tap_name, mac)?));
            let mut socks: Vec<Vec<(u32, XskSocket)>> = (0..n).map(|_| Vec::new()).collect();
            for q in 0..queues {
                socks[(q % n) as usize].push((q, XskSocket::open(ifindex, q)?));
            }
            let prog = XskProgram::attach(ifindex, queues)?;
            for s in socks.iter().flatten() {
                prog.register(s.0, &s.1)?;
            }
            program = Some(prog);
            for s in socks {
                rxs.push(Rx::Xsk(s, 0));
                txs.push(None);
            }
        }
    }
    let mut senders = Vec::with_capacity(n as usize);
    let mut inboxes = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (tx, rx) = mpsc::sync_channel::<Handoff>(1024);
        senders.push(tx);
        inboxes.push(rx);
    }
    let peers = Arc::new(senders);
    let mut ports: Vec<LivePort> = Vec::with_capacity(n as usize);
    for (index, ((rx, tx), inbox)) in rxs.into_iter().zip(txs).zip(inboxes).enumerate() {
        ports.push(LivePort {
            rx,
            ifindex,
            tx,
            out: HashMap::new(),
            tap: tap.clone(),
            peers: Arc::clone(&peers),
            inbox,
            poll_ms: opts.poll_ms.max(1),
            counts: LiveCounts::default(),
            index: index as u32,
            iface: name.clone(),
            idle: 0,
        });
    }
    drop(peers);
    if let Some(ready) = opts.ready {
        ready(&Ready {
            iface: name,
            mode: opts.mode,
            workers: n,
            native: program.as_ref().map(XskProgram::native),
            tap: tap.as_ref().map(|t| t.name().to_string()),
        });
    }

    let start = Instant::now();
    let deadline = opts.duration.map(|d| start + d);
    let stop_all = AtomicBool::new(false);
    let should_stop = || {
        stop_all.load(Ordering::Relaxed)
            || opts.stop.is_some_and(|s| s.load(Ordering::Relaxed))
            || deadline.is_some_and(|d| Instant::now() >= d)
    };
    let host_tx = match &tap {
        Some(_) => Some(TxSocket::open(ifindex)?),
        None => None,
    };
    let mut host = (0u64, 0u64);
    let results = std::thread::scope(|s| {
        // The store's timers fire while the frames run (`timers.rs`).
        let _timers = crate::timers::drive(s, dp);
        if let (Some(tap), Some(tx)) = (&tap, &host_tx) {
            let (should_stop, host) = (&should_stop, &mut host);
            let poll_ms = opts.poll_ms.max(1);
            // The host's frames out of the TAP device go out of the interface.
            s.spawn(move || {
                let mut buf = Vec::with_capacity(65536);
                while !should_stop() {
                    match tap.recv(&mut buf, poll_ms) {
                        Ok(true) => match tx.send(&buf) {
                            Ok(()) => host.0 += 1,
                            Err(_) => host.1 += 1,
                        },
                        Ok(false) => {}
                        Err(_) => break,
                    }
                }
            });
        }
        let handles: Vec<_> = ports
            .into_iter()
            .enumerate()
            .map(|(index, mut port)| {
                let should_stop = &should_stop;
                let stop_all = &stop_all;
                std::thread::Builder::new()
                    .name(format!("xdp-attach-{index}"))
                    .spawn_scoped(s, move || {
                        let r = run_worker(dp, index as u32, &mut port, should_stop);
                        if r.is_err() {
                            stop_all.store(true, Ordering::Relaxed);
                        }
                        r
                    })
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(index, h)| match h {
                Ok(h) => h.join().unwrap_or_else(|_| {
                    Err(DataplaneError::WorkerFailed {
                        worker: index as u32,
                        reason: "its thread panicked".into(),
                    })
                }),
                Err(e) => Err(DataplaneError::WorkerFailed {
                    worker: index as u32,
                    reason: format!("cannot start its thread: {e}"),
                }),
            })
            .collect::<Vec<_>>()
    });
    let elapsed = start.elapsed();
    let mut per_worker = Vec::new();
    let mut live = Vec::new();
    for r in results {
        let (index, counts, lc) = r?;
        per_worker.push((index, counts));
        live.push((index, lc));
    }
    let interrupted = opts.stop.is_some_and(|s| s.load(Ordering::Relaxed));
    Ok(AttachSummary {
        summary: Summary {
            per_worker,
            elapsed,
            interrupted,
        },
        live,
        native: program.as_ref().map(XskProgram::native),
        tap: tap.map(|t| t.name().to_string()),
        host_sent: host.0,
        host_failed: host.1,
    })
}

fn run_worker(
    dp: &Dataplane<'_>,
    index: u32,
    port: &mut LivePort,
    should_stop: &dyn Fn() -> bool,
) -> Result<(u32, crate::counters::Counts, LiveCounts), DataplaneError> {
    let mut worker = dp.worker(index)?;
    let mut buf = Vec::with_capacity(16 << 10);
    while !should_stop() {
        let meta = match port.recv(&mut buf)? {
            Recv::Frame(m) => m,
            Recv::Idle => continue,
            Recv::End => break,
        };
        let out = worker.run(&buf, &meta);
        port.send(&OutFrame {
            data: out.data,
            meta: out.meta,
            frame: meta,
            verdict: out.verdict,
            redirect: out.redirect,
        })?;
    }
    port.drain_inbox();
    if let Rx::Packet(ring) = &port.rx {
        if let Some((_, drops)) = ring.kernel_stats() {
            port.counts.ring_drops += u64::from(drops);
        }
    }
    let counts = worker.finish()?;
    Ok((index, counts, port.counts))
}
