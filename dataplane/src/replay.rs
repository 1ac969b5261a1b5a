//! Replaying a [`Source`] through a data plane's workers: each frame runs once, on
//! the worker its flow hash picks ([`crate::flow`]), in source order per worker, and
//! goes to the sink of its verdict.
//!
//! With one worker everything runs on the calling thread. With more, the calling
//! thread reads the source and hands each worker batches of its frames; each worker
//! runs on a thread of its own and writes a batch's frames to the sinks under one
//! lock, so a sink receives each worker's frames in source order, with the workers'
//! batches interleaved.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::capture::VerdictSinks;
use crate::counters::{Counter, Counts};
use crate::error::DataplaneError;
use crate::flow::worker_for;
use crate::io::{FrameMeta, OutFrame, Recv, Source};
use crate::worker::{Dataplane, Verdict};

/// How a replay runs.
#[derive(Clone, Copy)]
pub struct ReplayOptions<'o> {
    /// Frames per batch handed to a worker (more than one worker).
    pub batch: usize,
    /// Raised (by a signal handler, say): the replay stops after the frames read.
    pub stop: Option<&'o AtomicBool>,
    /// Called on the reading thread about four times a second.
    pub progress: Option<&'o (dyn Fn(&Progress) + Sync)>,
}

impl Default for ReplayOptions<'_> {
    fn default() -> Self {
        ReplayOptions {
            batch: 64,
            stop: None,
            progress: None,
        }
    }
}

impl std::fmt::Debug for ReplayOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayOptions")
            .field("batch", &self.batch)
            .field("stop", &self.stop)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// How far a replay is.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Frames read from the source.
    pub frames: u64,
    pub elapsed: Duration,
}

/// What a replay did.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Each worker's counts, by worker index.
    pub per_worker: Vec<(u32, Counts)>,
    /// Wall time from the first frame read to the last one run.
    pub elapsed: Duration,
    /// The stop flag ended the replay before the source's end.
    pub interrupted: bool,
}

impl Summary {
    /// The counts summed over the workers.
    pub fn total(&self) -> Counts {
        let mut t = Counts::default();
        for (_, c) in &self.per_worker {
            t.add(c);
        }
        t
    }

    /// Frames taken from the source (run or not).
    pub fn packets(&self) -> u64 {
        self.total().get(Counter::Packets)
    }

    /// Frames per second of wall time, all workers together.
    pub fn pps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.packets() as f64 / s
        } else {
            0.0
        }
    }

    /// The average time of one program run (the program's cost per frame, as the
    /// store's run_time_ns / run_cnt counts it).
    pub fn ns_per_packet(&self) -> f64 {
        let t = self.total();
        let runs = t.get(Counter::Packets) - t.get(Counter::Runt) - t.get(Counter::Oversize);
        if runs == 0 {
            0.0
        } else {
            t.get(Counter::RunNs) as f64 / runs as f64
        }
    }
}

/// Calls the progress callback about four times a second.
struct Ticker<'o> {
    start: Instant,
    last: Instant,
    progress: Option<&'o (dyn Fn(&Progress) + Sync)>,
}

impl Ticker<'_> {
    fn tick(&mut self, frames: u64) {
        if !frames.is_multiple_of(1024) {
            return;
        }
        if let Some(p) = self.progress {
            let now = Instant::now();
            if now - self.last >= Duration::from_millis(250) {
                self.last = now;
                p(&Progress {
                    frames,
                    elapsed: now - self.start,
                });
            }
        }
    }
}

/// Runs every frame of `source` once through `dp`'s workers and sends each to the
/// sink of its verdict.
pub fn replay(
    dp: &Dataplane<'_>,
    source: &mut dyn Source,
    sinks: Option<&mut VerdictSinks>,
    opts: &ReplayOptions<'_>,
) -> Result<Summary, DataplaneError> {
    // The store's timers fire while the frames run (`timers.rs`).
    std::thread::scope(|s| {
        let _timers = crate::timers::drive(s, dp);
        if dp.workers() == 1 {
            replay_one(dp, source, sinks, opts)
        } else {
            replay_many(dp, source, sinks, opts)
        }
    })
}

fn stopped(opts: &ReplayOptions<'_>) -> bool {
    opts.stop.is_some_and(|s| s.load(Ordering::Relaxed))
}

fn replay_one(
    dp: &Dataplane<'_>,
    source: &mut dyn Source,
    mut sinks: Option<&mut VerdictSinks>,
    opts: &ReplayOptions<'_>,
) -> Result<Summary, DataplaneError> {
    let mut worker = dp.worker(0)?;
    let mut buf = Vec::with_capacity(16 << 10);
    let start = Instant::now();
    let mut ticker = Ticker {
        start,
        last: start,
        progress: opts.progress,
    };
    let mut frames = 0u64;
    let mut interrupted = false;
    loop {
        if stopped(opts) {
            interrupted = true;
            break;
        }
        let meta = match source.recv(&mut buf)? {
            Recv::Frame(m) => m,
            Recv::Idle => continue,
            Recv::End => break,
        };
        let out = worker.run(&buf, &meta);
        if let Some(s) = sinks.as_deref_mut() {
            s.send(&OutFrame {
                data: out.data,
                meta: out.meta,
                frame: meta,
                verdict: out.verdict,
                redirect: out.redirect,
            })?;
        }
        frames += 1;
        ticker.tick(frames);
    }
    let elapsed = start.elapsed();
    if let Some(s) = sinks {
        s.flush()?;
    }
    let counts = worker.finish()?;
    Ok(Summary {
        per_worker: vec![(0, counts)],
        elapsed,
        interrupted,
    })
}

/// Frames for one worker, in one buffer.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    /// (start, length, metadata) of each frame in `data`.
    frames: Vec<(usize, usize, FrameMeta)>,
}

/// One frame a worker ran, kept for the sinks.
struct Done {
    data: (usize, usize),
    meta: (usize, usize),
    frame: FrameMeta,
    verdict: Verdict,
    redirect: Option<runtime::helpers::Redirect>,
}

fn replay_many(
    dp: &Dataplane<'_>,
    source: &mut dyn Source,
    sinks: Option<&mut VerdictSinks>,
    opts: &ReplayOptions<'_>,
) -> Result<Summary, DataplaneError> {
    let n = dp.workers();
    let batch_len = opts.batch.max(1);
    let sinks = sinks.map(Mutex::new);
    let sinks = sinks.as_ref();
    // Each worker says when it is set up (compiled, with its buffer), so that the
    // clock starts with the first frame rather than with the JIT's compilation.
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let failed = AtomicBool::new(false);
    let (free_tx, free_rx) = mpsc::channel::<Batch>();
    let mut summary = Summary {
        per_worker: Vec::new(),
        elapsed: Duration::ZERO,
        interrupted: false,
    };
    let result = std::thread::scope(|s| -> Result<(), DataplaneError> {
        let mut to_worker = Vec::new();
        let mut handles = Vec::new();
        for index in 0..n {
            let (tx, rx) = mpsc::sync_channel::<Batch>(4);
            to_worker.push(tx);
            let free_tx = free_tx.clone();
            let (ready_tx, failed) = (ready_tx.clone(), &failed);
            let spawned = std::thread::Builder::new()
                .name(format!("xdp-worker-{index}"))
                .spawn_scoped(s, move || {
                    let worker = dp.worker(index);
                    let _ = ready_tx.send(());
                    let mut worker = match worker {
                        Ok(w) => w,
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    };
                    let mut out = Vec::<u8>::new();
                    let mut done = Vec::<Done>::new();
                    while let Ok(mut batch) = rx.recv() {
                        out.clear();
                        done.clear();
                        for &(at, len, meta) in &batch.frames {
                            let frame = &batch.data[at..at + len];
                            let o = worker.run(frame, &meta);
                            if sinks.is_some() {
                                let m = out.len();
                                out.extend_from_slice(o.meta);
                                let d = out.len();
                                out.extend_from_slice(o.data);
                                done.push(Done {
                                    data: (d, o.data.len()),
                                    meta: (m, o.meta.len()),
                                    frame: meta,
                                    verdict: o.verdict,
                                    redirect: o.redirect,
                                });
                            }
                        }
                        if let Some(sinks) = sinks {
                            let mut sinks = sinks.lock().unwrap_or_else(|e| e.into_inner());
                            for d in &done {
                                let r = sinks.send(&OutFrame {
                                    data: &out[d.data.0..d.data.0 + d.data.1],
                                    meta: &out[d.meta.0..d.meta.0 + d.meta.1],
                                    frame: d.frame,
                                    verdict: d.verdict,
                                    redirect: d.redirect,
                                });
                                if let Err(e) = r {
                                    failed.store(true, Ordering::Relaxed);
                                    return Err(e);
                                }
                            }
                        }
                        batch.data.clear();
                        batch.frames.clear();
                        let _ = free_tx.send(batch);
                    }
                    worker.finish().map(|c| (index, c))
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // The threads started end when their queues close.
                    failed.store(true, Ordering::Relaxed);
                    drop(to_worker);
                    for h in handles {
                        let _ = h.join();
                    }
                    return Err(DataplaneError::WorkerFailed {
                        worker: index,
                        reason: format!("cannot start its thread: {e}"),
                    });
                }
            }
        }
        drop(ready_tx);
        for _ in 0..n {
            let _ = ready_rx.recv();
        }
        let start = Instant::now();
        let mut ticker = Ticker {
            start,
            last: start,
            progress: opts.progress,
        };
        let mut pending: Vec<Batch> = (0..n).map(|_| Batch::default()).collect();
        let mut buf = Vec::with_capacity(16 << 10);
        let mut frames = 0u64;
        let mut read_result = Ok(());
        'read: loop {
            if failed.load(Ordering::Relaxed) {
                break;
            }
            if stopped(opts) {
                summary.interrupted = true;
                break;
            }
            let meta = match source.recv(&mut buf) {
                Ok(Recv::Frame(m)) => m,
                Ok(Recv::Idle) => continue,
                Ok(Recv::End) => break,
                Err(e) => {
                    read_result = Err(e);
                    break;
                }
            };
            let w = worker_for(&buf, n) as usize;
            let b = &mut pending[w];
            b.frames.push((b.data.len(), buf.len(), meta));
            b.data.extend_from_slice(&buf);
            if b.frames.len() >= batch_len {
                let fresh = free_rx.try_recv().unwrap_or_default();
                let full = std::mem::replace(b, fresh);
                if to_worker[w].send(full).is_err() {
                    break 'read;
                }
            }
            frames += 1;
            ticker.tick(frames);
        }
        for (w, b) in pending.into_iter().enumerate() {
            if !b.frames.is_empty() && !failed.load(Ordering::Relaxed) {
                let _ = to_worker[w].send(b);
            }
        }
        drop(to_worker);
        let mut first_err = read_result.err();
        for (index, h) in handles.into_iter().enumerate() {
            match h.join() {
                Ok(Ok(c)) => summary.per_worker.push(c),
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(DataplaneError::WorkerFailed {
                        worker: index as u32,
                        reason: "its thread panicked".into(),
                    });
                }
            }
        }
        summary.elapsed = start.elapsed();
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    });
    result?;
    if let Some(s) = sinks {
        s.lock().unwrap_or_else(|e| e.into_inner()).flush()?;
    }
    Ok(summary)
}
