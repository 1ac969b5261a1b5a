//! Live packets per second on a veth pair: the same object in the kernel's own XDP
//! (`ip link set dev X xdpdrv obj ...`) and in the runtime's data plane (AF_PACKET and
//! AF_XDP modes), under the same traffic.
//!
//! A network namespace holds a veth pair `lv0`/`lv1`. The traffic generator is an
//! AF_PACKET sender on `lv1` (one thread, `send(2)` per frame, qdisc bypassed) that
//! sends one 64-byte ICMP echo request as fast as it can for `--seconds`; the program
//! (default `xdp_stats`, which counts it per CPU and drops it) runs on `lv0`. Each row
//! gives the frames sent per second and the frames the program ran on per second
//! (kernel: its own per-CPU `action_stats`; runtime: the data plane's counters).
//!
//! On veth the kernel runs XDP in the sender's softirq, on the sender's CPU, so the
//! generator bounds the kernel's figure; the data plane's workers run on the other CPUs.
//!
//! `cargo run --release -p bench --bin live_veth -- [--seconds 5] [--workers 1]`
//! (root: network namespaces, raw sockets, bpf(2)).
#![forbid(unsafe_code)]

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use dataplane::afpacket::{ifindex, TxSocket};
use dataplane::{AttachOptions, Config, Counter, Dataplane, Mode};

#[derive(Parser, Debug)]
#[command(
    name = "live_veth",
    about = "Live veth packets per second: kernel XDP and the data plane"
)]
struct Args {
    /// Traffic seconds per row.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Data-plane workers.
    #[arg(long, default_value_t = 1)]
    workers: u32,
    /// The bpf-progs object to run (its first XDP program).
    #[arg(long, default_value = "xdp_stats")]
    object: String,
    /// Engine of the data plane.
    #[arg(long, value_enum, default_value_t = EngineArg::Jit)]
    engine: EngineArg,
    /// Internal: run one row inside the namespace.
    #[arg(long, hide = true, value_enum)]
    inner: Option<Row>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum EngineArg {
    Interpreter,
    Jit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Row {
    Kernel,
    Afpacket,
    Afxdp,
}

fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip").args(args).output().context("ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

/// A 64-byte Ethernet + IPv4 + ICMP echo request (with the FCS, 64 on the wire).
fn icmp_frame() -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14] = 0x45;
    f[16..18].copy_from_slice(&46u16.to_be_bytes());
    f[22] = 64;
    f[23] = 1;
    f[26..30].copy_from_slice(&[10, 0, 0, 2]);
    f[30..34].copy_from_slice(&[10, 0, 0, 1]);
    f[34] = 8;
    f
}

/// Sends frames out of `lv1` until `stop`; returns how many.
fn generate(stop: &AtomicBool, sent: &AtomicU64) -> Result<()> {
    let tx = TxSocket::open(ifindex("lv1")?)?;
    let frame = icmp_frame();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..64 {
            if tx.send(&frame).is_ok() {
                n += 1;
            }
        }
    }
    sent.store(n, Ordering::Relaxed);
    Ok(())
}

/// One row, inside the namespace: prints "sent processed seconds".
fn inner(args: &Args, row: Row) -> Result<()> {
    let object = bpf_progs::object(&args.object);
    let secs = Duration::from_secs_f64(args.seconds);
    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let (processed, elapsed) = match row {
        Row::Kernel => {
            let obj = object.to_str().context("object path")?;
            ip(&[
                "link", "set", "dev", "lv0", "xdpdrv", "obj", obj, "sec", "xdp",
            ])?;
            let start = Instant::now();
            std::thread::scope(|s| -> Result<()> {
                let g = s.spawn(|| generate(&stop, &sent));
                std::thread::sleep(secs);
                stop.store(true, Ordering::Relaxed);
                g.join()
                    .map_err(|_| anyhow::anyhow!("generator panicked"))?
            })?;
            let elapsed = start.elapsed();
            let processed = kernel_runs()?;
            ip(&["link", "set", "dev", "lv0", "xdp", "off"])?;
            (processed, elapsed)
        }
        Row::Afpacket | Row::Afxdp => {
            let bytes = std::fs::read(&object).context("object")?;
            let obj = loader::Object::parse(&bytes)?;
            let store = maps::Store::anonymous(maps::StoreOptions {
                ncpus: Some(args.workers.max(2)),
                ..Default::default()
            })?;
            let loaded = runtime::LoadedObject::load(&obj, &store)?;
            let prog = loaded.program_index(None)?;
            let config = Config {
                workers: args.workers,
                engine: match args.engine {
                    EngineArg::Interpreter => dataplane::Engine::Interpreter,
                    EngineArg::Jit => dataplane::Engine::Jit,
                },
                ..Default::default()
            };
            let dp = Dataplane::new(&store, &loaded, prog, config)?;
            let mode = if row == Row::Afpacket {
                Mode::AfPacket
            } else {
                Mode::AfXdp
            };
            let gen_stop = AtomicBool::new(false);
            let dp_stop = AtomicBool::new(false);
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let ready = move |_: &dataplane::Ready| {
                let _ = ready_tx.send(());
            };
            let ready: &(dyn Fn(&dataplane::Ready) + Sync) = &ready;
            let mut opts = AttachOptions::new(ifindex("lv0")?, mode);
            opts.stop = Some(&dp_stop);
            opts.ready = Some(ready);
            let mut elapsed = Duration::ZERO;
            let done = std::thread::scope(|s| {
                let (gen_stop, dp_stop, sent, elapsed) = (&gen_stop, &dp_stop, &sent, &mut elapsed);
                s.spawn(move || {
                    if ready_rx.recv_timeout(Duration::from_secs(60)).is_ok() {
                        let start = Instant::now();
                        std::thread::scope(|s2| {
                            let g = s2.spawn(|| generate(gen_stop, sent));
                            std::thread::sleep(secs);
                            gen_stop.store(true, Ordering::Relaxed);
                            let _ = g.join();
                        });
                        *elapsed = start.elapsed();
                        // Let the workers drain what is queued.
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    dp_stop.store(true, Ordering::Relaxed);
                });
                dataplane::attach(&dp, &opts)
            })?;
            let t = done.summary.total();
            let runs = t.get(Counter::Packets) - t.get(Counter::Runt) - t.get(Counter::Oversize);
            (runs, elapsed)
        }
    };
    println!(
        "{} {} {}",
        sent.load(Ordering::Relaxed),
        processed,
        elapsed.as_secs_f64()
    );
    Ok(())
}

/// The kernel program's runs: action_stats summed over verdicts and CPUs (bpftool).
fn kernel_runs() -> Result<u64> {
    let out = Command::new("bpftool")
        .args(["map", "dump", "name", "action_stats", "-j"])
        .output()
        .context("bpftool")?;
    if !out.status.success() {
        bail!("bpftool map dump: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut total = 0;
    for e in v.as_array().into_iter().flatten() {
        for cpu in e["formatted"]["values"].as_array().into_iter().flatten() {
            total += cpu["value"]["packets"].as_u64().unwrap_or(0);
        }
    }
    Ok(total)
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(row) = args.inner {
        return inner(&args, row);
    }
    let ns = Netns(format!("live-veth-{}", std::process::id()));
    ip(&["netns", "add", &ns.0])?;
    // As many queues as workers, so AF_XDP mode can feed each worker.
    let q = args.workers.max(1).to_string();
    ip(&[
        "-n",
        &ns.0,
        "link",
        "add",
        "name",
        "lv0",
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "type",
        "veth",
        "peer",
        "name",
        "lv1",
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
    ])?;
    for d in ["lo", "lv0", "lv1"] {
        ip(&["-n", &ns.0, "link", "set", d, "up"])?;
    }
    let exe = std::env::current_exe()?;
    println!(
        "{} on veth, {} s per row, 64-byte ICMP frames from one AF_PACKET sender; data plane: {} worker(s), {:?}",
        args.object, args.seconds, args.workers, args.engine
    );
    println!(
        "{:<22} {:>12} {:>14} {:>10}",
        "", "sent pps", "program pps", "share"
    );
    for (row, name) in [
        (Row::Kernel, "kernel XDP (native)"),
        (Row::Afpacket, "runtime, AF_PACKET"),
        (Row::Afxdp, "runtime, AF_XDP"),
    ] {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns.0])
            .arg(&exe)
            .args(["--seconds", &args.seconds.to_string()])
            .args(["--workers", &args.workers.to_string()])
            .args(["--object", &args.object])
            .args(["--engine", &format!("{:?}", args.engine).to_lowercase()])
            .args(["--inner", &format!("{row:?}").to_lowercase()])
            .output()?;
        if !out.status.success() {
            println!(
                "{name:<22} failed: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .next()
                    .unwrap_or("")
            );
            continue;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let f: Vec<f64> = text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let [sent, done, secs] = f[..] else {
            bail!("bad row output: {text}");
        };
        println!(
            "{name:<22} {:>12.0} {:>14.0} {:>9.1}%",
            sent / secs,
            done / secs,
            100.0 * done / sent.max(1.0)
        );
    }
    Ok(())
}
