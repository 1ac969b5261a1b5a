//! bpf_timer at scale (issue 14), the runtime next to the kernel. Not a test: it
//! measures, and the machine's other load shows in it.
//!
//! Programs: `bpf-progs/src-c/xdp_timer_bench.c`. Rows:
//! - per packet (ns), each program run `--repeat` times on one frame: `bench_base`
//!   (a lookup and a store, no timer), `bench_rearm` (one pending timer re-armed per
//!   packet), `bench_arm_cancel` (one timer armed and cancelled per packet), and the
//!   httperf pattern `bench_flows` (packet n re-arms flow n % `--flows`'s watchdog:
//!   first a pass that inserts the flows and arms their timers, then the pass
//!   measured, where every packet re-arms a pending timer among `--flows` armed
//!   ones). The kernel's figure is BPF_PROG_TEST_RUN's average with the same repeat;
//!   the engines' the time of `LoadedObject::run_repeat` / `JitObject::run_repeat`
//!   divided by the runs. `cost` columns subtract `bench_base`'s figure.
//! - lateness: `--flows` timers armed by one `bench_flows` pass (timeout `--timeout-ms`
//!   plus up to `--spread-ms`), then waited for; each callback records how late it ran
//!   (its `bpf_ktime_get_ns()` minus its deadline) in a histogram of 10 us buckets: p50,
//!   p99, max and how many fired. The runtime's rows arm them in one process and fire
//!   them with `runtime::timers::TimerDriver::run_for` (what `xdp-runner run
//!   --wait-timers` does), in the engine that armed them.
//! - store bytes per element with a timer: the growth of `runtime::store_size_for`
//!   per element of `timer_flows` (its `max_entries` set to 2^16 and 2^20), and the
//!   timer state per element (`maps::Map::timer_bytes` over `timer_slots`).
//!
//! `cargo run --release -p bench --bin timers -- [--flows 1000000] [--repeat 1000000]
//! [--rounds 1]`

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use kclient::bpftool::{self as kernel, KernelRun, Step};
use runtime::jit::JitObject;
use runtime::{LoadedObject, Packet, Vm};

const OBJECT: &str = "xdp_timer_bench";
/// The histogram of `late`: buckets of LATE_NS, then the max, then the count.
const LATE_BUCKETS: usize = 4096;
const LATE_NS: u64 = 10_000;

#[derive(Parser, Debug)]
#[command(
    name = "timers",
    about = "bpf_timer at scale: the runtime next to the kernel"
)]
struct Args {
    /// Flows (armed timers) of the httperf pattern and of the lateness run.
    #[arg(long, default_value_t = 1_000_000)]
    flows: u32,
    /// Runs per per-packet measurement.
    #[arg(long, default_value_t = 1_000_000)]
    repeat: u32,
    /// The lateness run's timeout, in ms.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// The lateness run's spread of deadlines after the timeout, in ms.
    #[arg(long, default_value_t = 1000)]
    spread_ms: u64,
    /// Skip the lateness rows (the longest part).
    #[arg(long)]
    no_lateness: bool,
    /// Rounds of each per-packet row, the kernel and both engines taking turns; the
    /// fastest of each is shown (on a loaded machine one round's figure is noisy).
    #[arg(long, default_value_t = 1)]
    rounds: u32,
}

fn object_path() -> PathBuf {
    bpf_progs::object(OBJECT)
}

fn frame() -> Result<Vec<u8>> {
    std::fs::read(bpf_progs::packet("udp")).context("reading packets/udp.bin")
}

/// `cfg` entries: flows, timeout ns, spread ns.
fn cfg(flows: u32, timeout_ns: u64, spread_ns: u64) -> Vec<(u32, u64)> {
    vec![(0, u64::from(flows)), (1, timeout_ns), (2, spread_ns)]
}

fn kernel_sets(cfg: &[(u32, u64)]) -> Vec<kernel::MapSet> {
    cfg.iter()
        .map(|(k, v)| {
            (
                "cfg".to_string(),
                k.to_le_bytes().to_vec(),
                v.to_le_bytes().to_vec(),
            )
        })
        .collect()
}

fn step(prog: &str, data: &[u8], repeat: u32) -> Step {
    Step {
        prog: prog.to_string(),
        data_in: data.to_vec(),
        repeat,
    }
}

/// A measurement: ns per run and the program's `bstats` (inits ok, ENOMEM, other
/// failures, failed starts).
type Measured = (f64, [u64; 4]);

fn bstats_of_kernel(run: &KernelRun) -> Result<[u64; 4]> {
    let mut out = [0u64; 4];
    for e in run
        .maps
        .get("bstats")
        .ok_or_else(|| anyhow!("no map bstats"))?
    {
        let k = u32::from_le_bytes(e.key.as_slice().try_into()?) as usize;
        *out.get_mut(k).ok_or_else(|| anyhow!("bstats slot {k}"))? =
            u64::from_le_bytes(e.values[0].as_slice().try_into()?);
    }
    Ok(out)
}

/// The kernel's average ns per run of the last of `steps`.
fn kernel_ns(steps: &[Step], cfg: &[(u32, u64)]) -> Result<Measured> {
    kclient::available().map_err(|why| anyhow!("kernel not available: {why}"))?;
    let run = kernel::run_steps_dumping(
        &object_path(),
        steps,
        &kernel_sets(cfg),
        Duration::ZERO,
        &["bstats"],
    )
    .map_err(|e| anyhow!("{e}"))?;
    Ok((run.duration_ns as f64, bstats_of_kernel(&run)?))
}

/// One engine's ns per run of the last of `steps` (program, repeat), on a fresh
/// load with `cfg` written.
fn engine_ns(jit: bool, steps: &[(&str, u32)], cfg: &[(u32, u64)]) -> Result<Measured> {
    let (_store, loaded) = load(cfg)?;
    let compiled = if jit {
        Some(JitObject::compile(&loaded, &Default::default())?)
    } else {
        None
    };
    let data = frame()?;
    let mut vm = Vm::new(0);
    let mut last = Duration::ZERO;
    let mut runs = 1;
    for (prog, repeat) in steps {
        let prog = loaded.program_index(Some(prog))?;
        let mut pkt = Packet::new(&data)?;
        let (_, elapsed) = match &compiled {
            Some(j) => j.run_repeat(&mut vm, prog, &mut pkt, u64::from(*repeat)),
            None => loaded.run_repeat(&mut vm, prog, &mut pkt, u64::from(*repeat)),
        }
        .map_err(|t| anyhow!("trap: {t:?}"))?;
        last = elapsed;
        runs = *repeat;
    }
    let stats = loaded.map::<u32, u64>("bstats")?;
    let mut bstats = [0u64; 4];
    for (k, slot) in bstats.iter_mut().enumerate() {
        *slot = stats.get(&(k as u32))?.unwrap_or(0);
    }
    Ok((last.as_nanos() as f64 / f64::from(runs.max(1)), bstats))
}

/// The fastest of `rounds` measurements taken in turn with the others of a row
/// (each `take()` gives the kernel's, the interpreter's and the JIT's).
fn fastest_of(rounds: u32, take: impl Fn() -> [Result<Measured>; 3]) -> [Result<Measured>; 3] {
    let mut best = take();
    for _ in 1..rounds {
        for (b, m) in best.iter_mut().zip(take()) {
            match (&*b, m) {
                (Ok((old, _)), Ok(new)) if new.0 < *old => *b = Ok(new),
                (Err(_), m @ Ok(_)) => *b = m,
                _ => {}
            }
        }
    }
    best
}

fn cell(r: &Result<Measured>) -> String {
    match r {
        Ok((ns, _)) => format!("{ns:>10.1}"),
        Err(_) => format!("{:>10}", "n/a"),
    }
}

fn ratio(ours: &Result<Measured>, theirs: &Result<Measured>) -> String {
    match (ours, theirs) {
        (Ok((a, _)), Ok((b, _))) if *b > 0.0 => format!("{:>6.2}x", a / b),
        _ => format!("{:>7}", "-"),
    }
}

struct Row {
    name: String,
    kernel: Result<Measured>,
    interp: Result<Measured>,
    jit: Result<Measured>,
}

fn per_packet(args: &Args) -> Result<Vec<Row>> {
    let data = frame()?;
    // Timers re-armed per packet never fire during the measurement.
    let quiet = cfg(args.flows, 60_000_000_000, 0);
    let r = args.repeat;
    let single = |prog: &str| -> Row {
        let [kernel, interp, jit] = fastest_of(args.rounds, || {
            [
                kernel_ns(&[step(prog, &data, r)], &quiet),
                engine_ns(false, &[(prog, r)], &quiet),
                engine_ns(true, &[(prog, r)], &quiet),
            ]
        });
        Row {
            name: prog.to_string(),
            kernel,
            interp,
            jit,
        }
    };
    let mut rows = vec![
        single("bench_base"),
        single("bench_rearm"),
        single("bench_arm_cancel"),
    ];
    // The httperf pattern: a pass inserting the flows and arming their timers, then
    // the pass measured. 128 flows: the kernel initialises every timer in its first
    // test run (a burst of inits beyond its allocation cache's ~150 fails with
    // ENOMEM, and the failed inits are retried by the next packets of the flow).
    for f in [128, args.flows] {
        let quiet = cfg(f, 60_000_000_000, 0);
        let flows_steps = [("bench_flows", f), ("bench_flows", f)];
        let [kernel, interp, jit] = fastest_of(args.rounds, || {
            [
                kernel_ns(
                    &[step("bench_flows", &data, f), step("bench_flows", &data, f)],
                    &quiet,
                ),
                engine_ns(false, &flows_steps, &quiet),
                engine_ns(true, &flows_steps, &quiet),
            ]
        });
        rows.push(Row {
            name: format!("bench_flows ({f} flows)"),
            kernel,
            interp,
            jit,
        });
    }
    Ok(rows)
}

/// p50, p99, max (ns) and the count of a `late` histogram (values by slot).
fn percentiles(late: &[u64]) -> Result<(u64, u64, u64, u64)> {
    if late.len() != LATE_BUCKETS + 2 {
        bail!("late has {} slots", late.len());
    }
    let (buckets, tail) = late.split_at(LATE_BUCKETS);
    let (max, count) = (tail[0], tail[1]);
    let total: u64 = buckets.iter().sum();
    let at = |q: f64| -> u64 {
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                // The bucket's upper bound.
                return (i as u64 + 1) * LATE_NS;
            }
        }
        max
    };
    Ok((at(0.50), at(0.99), max, count))
}

fn late_of_kernel(run: &KernelRun) -> Result<Vec<u64>> {
    let entries = run.maps.get("late").ok_or_else(|| anyhow!("no map late"))?;
    let mut out = vec![0u64; LATE_BUCKETS + 2];
    for e in entries {
        let k = u32::from_le_bytes(e.key.as_slice().try_into()?) as usize;
        let v = u64::from_le_bytes(e.values[0].as_slice().try_into()?);
        *out.get_mut(k).ok_or_else(|| anyhow!("late slot {k}"))? = v;
    }
    Ok(out)
}

/// Lateness percentiles (upper bounds of their 10 us buckets), the largest, how many
/// callbacks ran, and how many timers were armed (initialised) where known.
struct Late {
    p50: u64,
    p99: u64,
    max: u64,
    fired: u64,
    armed: Option<u64>,
}

fn lateness_kernel(args: &Args) -> Result<Late> {
    kclient::available().map_err(|why| anyhow!("kernel not available: {why}"))?;
    let c = cfg(
        args.flows,
        args.timeout_ms * 1_000_000,
        args.spread_ms * 1_000_000,
    );
    let wait = Duration::from_millis(args.timeout_ms + args.spread_ms + 1000);
    let run = kernel::run_steps_dumping(
        &object_path(),
        &[step("bench_flows", &frame()?, args.flows)],
        &kernel_sets(&c),
        wait,
        &["late", "bstats"],
    )
    .map_err(|e| anyhow!("{e}"))?;
    let (p50, p99, max, fired) = percentiles(&late_of_kernel(&run)?)?;
    Ok(Late {
        p50,
        p99,
        max,
        fired,
        armed: Some(bstats_of_kernel(&run)?[0]),
    })
}

/// A fresh load of the bench object in a private store sized for it plus its timer
/// state, with `cfg` written.
fn load(cfg: &[(u32, u64)]) -> Result<(maps::Store, LoadedObject)> {
    let bytes = std::fs::read(object_path())?;
    let object = loader::Object::parse(&bytes)?;
    // Timer state: one entry per element plus the wheel (maps::timer::ENTRY_BYTES).
    let timers: usize = object
        .maps
        .iter()
        .map(|m| m.max_entries as usize * (maps::timer::ENTRY_BYTES + 8) + 16384)
        .sum();
    let store = maps::Store::anonymous(maps::StoreOptions {
        size: runtime::store_size_for(&object) + timers,
        ..Default::default()
    })
    .context("creating the map store")?;
    let loaded = LoadedObject::load(&object, &store)?;
    for (k, v) in cfg {
        loaded.update_entry("cfg", &k.to_le_bytes(), &v.to_le_bytes(), 0)?;
    }
    Ok((store, loaded))
}

/// The runtime's lateness: one `bench_flows` pass arms `--flows` timers, then a
/// `TimerDriver` fires them all (the library's loop, as `xdp-runner run --wait-timers`
/// and `xdp-runner timers` drive a store), in the engine that ran the program.
fn lateness_runtime(args: &Args, jit: bool) -> Result<Late> {
    let c = cfg(
        args.flows,
        args.timeout_ms * 1_000_000,
        args.spread_ms * 1_000_000,
    );
    let (store, loaded) = load(&c)?;
    let compiled = if jit {
        Some(JitObject::compile(&loaded, &Default::default())?)
    } else {
        None
    };
    let engine: &dyn runtime::timers::CallbackEngine = match &compiled {
        Some(j) => j,
        None => &loaded,
    };
    let mut driver = runtime::timers::TimerDriver::new(&store)?;
    let mut vm = Vm::new(0);
    let prog = loaded.program_index(Some("bench_flows"))?;
    let mut pkt = Packet::new(&frame()?)?;
    match &compiled {
        Some(j) => j.run_repeat(&mut vm, prog, &mut pkt, u64::from(args.flows)),
        None => loaded.run_repeat(&mut vm, prog, &mut pkt, u64::from(args.flows)),
    }
    .map_err(|t| anyhow!("trap: {t:?}"))?;
    let armed = driver.armed();
    let stats = driver.run_for(
        Duration::from_millis(args.timeout_ms + args.spread_ms + 5000),
        Duration::from_millis(1),
        true,
        &mut vm,
        engine,
        &|| false,
    )?;
    if stats.traps > 0 {
        bail!("{} callbacks trapped: {:?}", stats.traps, driver.last_trap);
    }
    let late_map = loaded.map::<u32, u64>("late")?;
    let mut late = vec![0u64; LATE_BUCKETS + 2];
    for (k, slot) in late.iter_mut().enumerate() {
        *slot = late_map.get(&(k as u32))?.unwrap_or(0);
    }
    let (p50, p99, max, fired) = percentiles(&late)?;
    Ok(Late {
        p50,
        p99,
        max,
        fired,
        armed: Some(armed),
    })
}

/// Bytes of timer state per `timer_flows` element (the map's timer area over its
/// slots), as the runtime lays it out.
fn timer_bytes_per_element() -> Result<f64> {
    let (_store, loaded) = load(&cfg(1, 0, 0))?;
    let m = &loaded
        .maps
        .by_name("timer_flows")
        .ok_or_else(|| anyhow!("no map timer_flows"))?
        .map;
    Ok(m.timer_bytes() as f64 / f64::from(m.timer_slots().max(1)))
}

/// Bytes of store per `timer_flows` element: the growth of the store the runtime
/// sizes for the object between two sizes of the map.
fn store_bytes_per_element() -> Result<f64> {
    let bytes = std::fs::read(object_path())?;
    let size = |n: u32| -> Result<usize> {
        let opts = loader::LoadOptions {
            max_entries: vec![("timer_flows".to_string(), n)],
            ..Default::default()
        };
        let object = loader::Object::parse_with(&bytes, &opts)?;
        Ok(runtime::store_size_for(&object))
    };
    let (small, big) = (1u32 << 16, 1u32 << 20);
    Ok((size(big)? - size(small)?) as f64 / f64::from(big - small))
}

fn us(ns: u64) -> String {
    format!("{:.0} us", ns as f64 / 1000.0)
}

fn main() -> Result<()> {
    let args = Args::parse();
    println!(
        "bpf_timer per packet (ns; {} runs each, fastest of {} rounds; cost = minus bench_base)",
        args.repeat,
        args.rounds.max(1)
    );
    println!(
        "{:<28}{:>10}{:>10}{:>10}  {:>7} {:>7}  {:>9} {:>9} {:>9}",
        "program", "kernel", "interp", "jit", "int/k", "jit/k", "cost k", "cost int", "cost jit"
    );
    let rows = per_packet(&args)?;
    let base = &rows[0];
    let minus = |a: &Result<Measured>, b: &Result<Measured>| -> String {
        match (a, b) {
            (Ok((a, _)), Ok((b, _))) => format!("{:>9.1}", a - b),
            _ => format!("{:>9}", "-"),
        }
    };
    for r in &rows {
        println!(
            "{:<28}{}{}{}  {} {}  {} {} {}",
            r.name,
            cell(&r.kernel),
            cell(&r.interp),
            cell(&r.jit),
            ratio(&r.interp, &r.kernel),
            ratio(&r.jit, &r.kernel),
            minus(&r.kernel, &base.kernel),
            minus(&r.interp, &base.interp),
            minus(&r.jit, &base.jit),
        );
    }
    for r in &rows {
        for (what, e) in [
            ("kernel", &r.kernel),
            ("interp", &r.interp),
            ("jit", &r.jit),
        ] {
            match e {
                Err(e) => println!("  {} {what}: {e:#}", r.name),
                Ok((_, [ok, enomem, other, failed_starts])) => println!(
                    "  {} {what}: inits {ok} ok, {enomem} ENOMEM, {other} other errors; {failed_starts} failed starts",
                    r.name
                ),
            }
        }
    }

    if !args.no_lateness {
        println!();
        println!(
            "expiry lateness, {} timers armed at once (timeout {} ms + up to {} ms)",
            args.flows, args.timeout_ms, args.spread_ms
        );
        let rows: Vec<(&str, Result<Late>)> = vec![
            ("kernel", lateness_kernel(&args)),
            ("interp", lateness_runtime(&args, false)),
            ("jit", lateness_runtime(&args, true)),
        ];
        for (who, r) in rows {
            match r {
                Ok(l) => println!(
                    "{who:<8} p50 <= {}  p99 <= {}  max {}  fired {} of {} armed",
                    us(l.p50),
                    us(l.p99),
                    us(l.max),
                    l.fired,
                    l.armed.map_or("?".to_string(), |a| a.to_string())
                ),
                Err(e) => println!("{who:<8} n/a: {e:#}"),
            }
        }
    }

    println!();
    match store_bytes_per_element() {
        Ok(b) => println!(
            "store bytes per timer_flows element (runtime::store_size_for's growth; key 4, value 40 bytes with its bpf_timer): {b:.1}"
        ),
        Err(e) => println!("store bytes per element: n/a: {e:#}"),
    }
    match timer_bytes_per_element() {
        Ok(b) => {
            println!("timer state bytes per element (entry and its share of the wheel): {b:.1}")
        }
        Err(e) => println!("timer state bytes per element: n/a: {e:#}"),
    }
    Ok(())
}
