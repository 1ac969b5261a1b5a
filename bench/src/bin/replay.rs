//! Replay throughput of the data plane: frames per second, in all and per worker,
//! for the counter, parser and load-balancer programs with 1 and 2 workers, in both
//! engines. Two measurements per case:
//!
//! - `workers`: the frames split by flow hash beforehand (as the replay dispatches
//!   them), each worker on its own thread running its share over and over; this is
//!   the workers' scaling, without the thread that reads the capture.
//! - `replay`: `dataplane::replay` of an in-memory capture (the same frames, cycled),
//!   with its reading thread, batches and dispatch: what `xdp-runner replay` does
//!   without the file.
//!
//! Each cell is the best of `--rounds` runs of about `--millis` each; not a test, and
//! the machine's other load shows in it. `on-CPU/worker` divides each worker's frames
//! by its own time on a CPU (/proc/thread-self/schedstat), averaged over the workers:
//! on a machine whose cores other work shares, it is the rate each worker would reach
//! with a core to itself, so N workers scale by N when it stays at the one-worker
//! figure.
//!
//! `cargo run --release -p bench --bin replay -- [--rounds 3] [--millis 1000] [--json]`

use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use dataplane::{
    Config, Dataplane, DataplaneError, Engine, FrameMeta, Recv, ReplayOptions, Source,
};

#[derive(Parser, Debug)]
#[command(
    name = "replay",
    about = "Replay throughput of the data plane, 1 and 2 workers"
)]
struct Args {
    /// Measurements per cell; the best is kept.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Roughly how long one measurement runs, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    millis: u64,
    /// Worker counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1u32, 2])]
    workers: Vec<u32>,
    /// Programs to measure (xdp_counter, xdp_parser, xdp_lb), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = ["xdp_counter".to_string(), "xdp_parser".to_string(), "xdp_lb".to_string()])]
    programs: Vec<String>,
    /// Engines to measure (jit, interpreter), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = ["jit".to_string(), "interpreter".to_string()])]
    engines: Vec<String>,
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

/// Control-plane entries written before a program runs: (map, key hex, value hex).
type Sets = &'static [(&'static str, &'static str, &'static str)];

/// 1024 frames of the bpf-progs packets, with TCP/UDP source ports varied over 64
/// flows per packet kind.
fn frames() -> Result<Vec<Vec<u8>>> {
    let names = [
        "icmp.bin",
        "udp.bin",
        "tcp_syn.bin",
        "ipv6.bin",
        "ipv6_icmp.bin",
        "vlan_udp.bin",
        "ipv4_opts.bin",
        "blocked_port.bin",
    ];
    let base: Vec<Vec<u8>> = names
        .iter()
        .map(|n| std::fs::read(bpf_progs::packet(n)).with_context(|| n.to_string()))
        .collect::<Result<_>>()?;
    let mut out = Vec::new();
    for i in 0..128u16 {
        for b in &base {
            let mut f = b.clone();
            if f.len() >= 38 && f[12..14] == [8, 0] && f[14] == 0x45 && matches!(f[23], 6 | 17) {
                f[34..36].copy_from_slice(&(30000 + i % 64).to_be_bytes());
            }
            out.push(f);
        }
    }
    Ok(out)
}

/// The frames, cycled until `total` have been read.
struct Cycle<'a> {
    frames: &'a [Vec<u8>],
    next: u64,
    total: u64,
}

impl Source for Cycle<'_> {
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Recv, DataplaneError> {
        if self.next == self.total {
            return Ok(Recv::End);
        }
        let f = &self.frames[(self.next % self.frames.len() as u64) as usize];
        self.next += 1;
        buf.clear();
        buf.extend_from_slice(f);
        Ok(Recv::Frame(FrameMeta::new(Duration::ZERO, f.len())))
    }
}

/// Nanoseconds the calling thread has run on a CPU (the first field of
/// /proc/thread-self/schedstat), or 0 when it cannot be read.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// What [`workers_pps`] measured.
#[derive(Clone, Copy, Default)]
struct Rates {
    /// Frames per second of wall time, all workers.
    wall: f64,
    /// Frames per second of each worker's own time on a CPU, averaged over the
    /// workers: what each would do with a core to itself.
    on_cpu: f64,
}

/// Frames per second of the workers alone: `total` frames split by flow.
fn workers_pps(dp: &Dataplane<'_>, frames: &[Vec<u8>], total: u64) -> Result<Rates> {
    let n = dp.workers();
    let mut share: Vec<Vec<&[u8]>> = vec![Vec::new(); n as usize];
    for f in frames {
        share[dataplane::flow::worker_for(f, n) as usize].push(f);
    }
    let per_round = total / frames.len() as u64;
    let ready = Barrier::new(n as usize + 1);
    let meta = FrameMeta::new(Duration::ZERO, 0);
    let (elapsed, on_cpu) = std::thread::scope(|s| -> Result<(Duration, f64)> {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (mine, ready) = (&share[i as usize], &ready);
                s.spawn(move || -> Result<f64> {
                    // Wait at the barrier even when the worker cannot be made, so
                    // that the others and the caller go on; report it after.
                    let w = dp.worker(i);
                    ready.wait();
                    let mut w = w?;
                    let cpu0 = thread_cpu_ns();
                    for _ in 0..per_round {
                        for f in mine {
                            std::hint::black_box(w.run(f, &meta).verdict);
                        }
                    }
                    let cpu = (thread_cpu_ns() - cpu0).max(1) as f64 / 1e9;
                    Ok((per_round * mine.len() as u64) as f64 / cpu)
                })
            })
            .collect();
        ready.wait();
        let start = Instant::now();
        let mut on_cpu = 0.0;
        for h in handles {
            on_cpu += h.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
        }
        Ok((start.elapsed(), on_cpu / n as f64))
    })?;
    Ok(Rates {
        wall: (per_round * frames.len() as u64) as f64 / elapsed.as_secs_f64(),
        on_cpu,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let frames = frames()?;
    let programs: [(&str, Sets); 3] = [
        ("xdp_counter", &[]),
        ("xdp_parser", &[("port_blocklist", "1a0a", "01")]),
        ("xdp_lb", bpf_progs::LB_SETS),
    ];
    if !args.json {
        println!(
            "{:<12} {:<12} {:>7} {:>14} {:>14} {:>16} {:>14} {:>14}",
            "program",
            "engine",
            "workers",
            "workers pps",
            "per worker",
            "on-CPU/worker",
            "replay pps",
            "per worker"
        );
    }
    for (name, sets) in programs {
        if !args.programs.iter().any(|p| p == name) {
            continue;
        }
        let bytes = std::fs::read(bpf_progs::object(name))?;
        let object = loader::Object::parse(&bytes)?;
        for engine in [Engine::Jit, Engine::Interpreter] {
            let engine_name = if engine == Engine::Jit {
                "jit"
            } else {
                "interpreter"
            };
            if !args.engines.iter().any(|e| e == engine_name) {
                continue;
            }
            // Frames per measurement, from a short calibration with one worker.
            let mut total = 0u64;
            for &workers in &args.workers {
                let store = maps::Store::anonymous(maps::StoreOptions::default())?;
                let loaded = runtime::LoadedObject::load(&object, &store)?;
                for (m, k, v) in sets {
                    loaded.update_entry(
                        m,
                        &bpf_progs::hex_decode(k).map_err(anyhow::Error::msg)?,
                        &bpf_progs::hex_decode(v).map_err(anyhow::Error::msg)?,
                        0,
                    )?;
                }
                let prog = loaded.program_index(Some(name))?;
                let config = Config {
                    engine,
                    workers,
                    ..Default::default()
                };
                let dp = Dataplane::new(&store, &loaded, prog, config)?;
                if total == 0 {
                    let probe = workers_pps(&dp, &frames, frames.len() as u64 * 20)?.wall;
                    total = ((probe * args.millis as f64 / 1e3) as u64).max(frames.len() as u64);
                }
                let mut best_w = Rates::default();
                let mut best_r = 0f64;
                for _ in 0..args.rounds {
                    let r = workers_pps(&dp, &frames, total)?;
                    best_w.wall = best_w.wall.max(r.wall);
                    best_w.on_cpu = best_w.on_cpu.max(r.on_cpu);
                    let mut src = Cycle {
                        frames: &frames,
                        next: 0,
                        total,
                    };
                    let s = dataplane::replay(&dp, &mut src, None, &ReplayOptions::default())?;
                    best_r = best_r.max(s.pps());
                }
                let engine_name = if engine == Engine::Jit {
                    "jit"
                } else {
                    "interpreter"
                };
                if args.json {
                    println!(
                        "{{\"prog\":\"{name}\",\"engine\":\"{engine_name}\",\"workers\":{workers},\"workers_pps\":{:.0},\"on_cpu_pps_per_worker\":{:.0},\"replay_pps\":{best_r:.0}}}",
                        best_w.wall, best_w.on_cpu
                    );
                } else {
                    println!(
                        "{:<12} {:<12} {:>7} {:>14.0} {:>14.0} {:>16.0} {:>14.0} {:>14.0}",
                        name,
                        engine_name,
                        workers,
                        best_w.wall,
                        best_w.wall / workers as f64,
                        best_w.on_cpu,
                        best_r,
                        best_r / workers as f64
                    );
                }
            }
        }
    }
    Ok(())
}
