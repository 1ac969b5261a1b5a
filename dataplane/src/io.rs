//! The interface between the workers and where frames come from and go to: a
//! [`Source`] hands out frames, a [`Sink`] takes them with what the program decided.
//! Capture files ([`crate::capture`]) are the first implementations; live sockets
//! are others.

use std::time::Duration;

use crate::error::DataplaneError;
use crate::worker::Verdict;

/// What a source knows about one frame besides its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameMeta {
    /// When the frame was captured or received (since the Unix epoch).
    pub timestamp: Duration,
    /// The frame's length on the wire (a capture may hold fewer bytes).
    pub orig_len: u32,
    /// `ctx->ingress_ifindex` the program sees (1, loopback, as in the kernel's
    /// test run, for frames from a capture).
    pub ingress_ifindex: u32,
    /// `ctx->rx_queue_index` the program sees.
    pub rx_queue_index: u32,
}

impl FrameMeta {
    /// A frame of `len` bytes captured at `timestamp`, seen as arriving on loopback
    /// queue 0 (the kernel test run's context).
    pub fn new(timestamp: Duration, len: usize) -> FrameMeta {
        FrameMeta {
            timestamp,
            orig_len: u32::try_from(len).unwrap_or(u32::MAX),
            ingress_ifindex: 1,
            rx_queue_index: 0,
        }
    }
}

/// What [`Source::recv`] got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recv {
    /// A frame, now in the buffer passed.
    Frame(FrameMeta),
    /// Nothing for now (a live source's poll timed out); call again.
    Idle,
    /// The source has no more frames (the end of a capture).
    End,
}

/// Where frames come from.
pub trait Source {
    /// Reads the next frame into `buf`, replacing what it held. The buffer keeps its
    /// capacity, so a source reading into the same buffer allocates nothing per frame.
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Recv, DataplaneError>;
}

/// One frame leaving a worker: its bytes as the program left them, and what the
/// program decided.
#[derive(Clone, Copy, Debug)]
pub struct OutFrame<'a> {
    /// The frame, `data .. data_end` (for frames that did not run: as received).
    pub data: &'a [u8],
    /// The metadata area the program left (`data_meta .. data`), usually empty.
    pub meta: &'a [u8],
    /// The frame's metadata as the source gave it.
    pub frame: FrameMeta,
    pub verdict: Verdict,
    /// For [`Verdict::Redirect`]: the target the program chose.
    pub redirect: Option<runtime::helpers::Redirect>,
}

/// Where frames go.
pub trait Sink {
    /// Takes one frame.
    fn send(&mut self, frame: &OutFrame<'_>) -> Result<(), DataplaneError>;
    /// Writes out what is buffered.
    fn flush(&mut self) -> Result<(), DataplaneError>;
}
