//! `xdp-runner replay`: every frame of a pcap or pcapng capture through a program,
//! once, on N workers (the data plane crate), with the frames written per verdict.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use dataplane::capture::{CaptureSource, VerdictSinks};
use dataplane::{Config, Counter, Counts, Dataplane, ReplayOptions};
use runtime::LoadedObject;
use serde_json::{json, Map as JsonMap, Value};

use super::run::Engine;

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The clang-compiled object file (.o).
    pub object: PathBuf,
    /// The capture to replay: pcap or pcapng, Ethernet link type.
    #[arg(long, value_name = "FILE")]
    pub pcap: PathBuf,
    /// The program to run, by function or section name (default: the first XDP program).
    #[arg(long, value_name = "NAME")]
    pub prog: Option<String>,
    /// Write the frames as the program left them to DIR/pass.pcap, tx.pcap,
    /// drop.pcap, aborted.pcap and redirect.pcap (classic pcap, nanosecond
    /// timestamps; the redirect target is not recorded), and the frames that did not
    /// run (shorter than 14 bytes or longer than 3520) unchanged to DIR/skipped.pcap.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Worker threads, each with a fixed worker index (bpf_get_smp_processor_id()
    /// and per-CPU slot); at most the store's CPUs. A flow hash (the 5-tuple) picks
    /// each frame's worker, so a flow's frames run in capture order on one worker.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub workers: u32,
    /// Execution engine.
    #[arg(long, default_value = "interpreter", value_parser = super::run::engine_parser())]
    pub engine: Engine,
    /// Keep the maps in this named shared-memory store (/dev/shm/NAME, created if
    /// missing), where other processes can watch them, the program's run_cnt and
    /// run_time_ns, and the workers' counters (`xdp-runner stats`) while the capture
    /// plays.
    #[arg(long, value_name = "NAME")]
    pub store: Option<String>,
    /// Also open a store owned by these users or groups (`uid:N`, `gid:N`).
    #[arg(long, value_name = "uid:N,gid:N")]
    pub store_trust: Option<String>,
    /// Create the --store shared with this group (mode 0660).
    #[arg(long, value_name = "GID", requires = "store")]
    pub store_group: Option<u32>,
    /// With --store: pin every map of the object as PREFIX/<map name>.
    #[arg(long, value_name = "PREFIX", requires = "store")]
    pub pin_maps: Option<String>,
    /// Write one map entry before the replay: MAP:KEYHEX=VALUEHEX, as `run --set`.
    #[arg(long = "set", value_name = "MAP:KEY=VALUE")]
    pub sets: Vec<String>,
    /// The network bpf_fib_lookup sees, as `run --net`.
    #[arg(long, value_name = "FILE")]
    pub net: Option<PathBuf>,
    /// The step budget of each run, as `run --max-steps`.
    #[arg(long, default_value_t = runtime::DEFAULT_MAX_STEPS, value_name = "N")]
    pub max_steps: u64,
    /// Print one JSON object: packets, pass, tx, drop, aborted, redirect,
    /// ns_per_packet (the average program run), pps (frames per second of wall
    /// time), workers; and runt, oversize, errors, invalid_action, bytes, elapsed_ns,
    /// per_worker, run_cnt, run_time_ns, maps.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub load: super::ObjectArgs,
}

/// The replay stopped by a signal: the error that makes the exit status 128 + its
/// number, after the counts of the frames done are printed.
#[derive(Debug)]
pub struct ReplayInterrupted {
    pub signal: super::Signal,
    pub packets: u64,
}

impl std::fmt::Display for ReplayInterrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "interrupted by {} after {} packets",
            self.signal.name, self.packets
        )
    }
}

impl std::error::Error for ReplayInterrupted {}

fn counts_json(c: &Counts) -> JsonMap<String, Value> {
    Counter::ALL
        .iter()
        .filter(|k| **k != Counter::Active)
        .map(|k| (k.name().to_string(), json!(c.get(*k))))
        .collect()
}

pub fn run(args: ReplayArgs) -> Result<()> {
    let mut source = CaptureSource::open(&args.pcap)?;
    let access = super::map::store_access(args.store_trust.as_deref(), args.store_group)?;
    let store = match &args.store {
        Some(name) => {
            maps::Store::open_or_create_with(name, maps::StoreOptions::default(), &access)
                .with_context(|| format!("cannot open or create the store {name:?}"))?
        }
        None => maps::Store::anonymous(maps::StoreOptions::default())
            .context("cannot create the map store")?,
    };
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    if args.workers > store.ncpus() {
        bail!(
            "--workers {} is more than the store's {} per-CPU slots: each worker owns one \
             slot of every per-CPU map (use at most {} workers)",
            args.workers,
            store.ncpus(),
            store.ncpus()
        );
    }
    let object = args.load.load(&args.object, true)?;
    let load_opts = runtime::LoadOptions {
        pin_maps: args.pin_maps.clone(),
        ..Default::default()
    };
    let mut loaded = LoadedObject::load_with(&object, &store, &load_opts)
        .with_context(|| format!("cannot load {}", args.object.display()))?;
    let prog = loaded.program_index(args.prog.as_deref())?;
    for set in &args.sets {
        super::run::apply_set(&loaded, set)?;
    }
    if let Some(path) = &args.net {
        let script = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let parsed = runtime::Net::parse(&script)
            .with_context(|| format!("bad network script {}", path.display()))?;
        loaded.set_net(std::sync::Arc::new(parsed));
    }
    let config = Config {
        engine: args.engine,
        workers: args.workers,
        max_steps: args.max_steps,
    };
    let dp = Dataplane::new(&store, &loaded, prog, config)?;
    let mut sinks = match &args.out {
        Some(dir) => Some(VerdictSinks::pcap_dir(dir)?),
        None => None,
    };
    let stop = super::Interruption::install()?;
    let tty = std::io::stderr().is_terminal();
    let progress = |p: &dataplane::Progress| {
        let secs = p.elapsed.as_secs_f64().max(1e-9);
        eprint!(
            "\r{} packets, {:.0} packets/s   ",
            p.frames,
            p.frames as f64 / secs
        );
        let _ = std::io::stderr().flush();
    };
    let opts = ReplayOptions {
        stop: Some(&stop.flag),
        progress: if tty { Some(&progress) } else { None },
        ..Default::default()
    };
    let summary = dataplane::replay(&dp, &mut source, sinks.as_mut(), &opts)?;
    if tty && summary.elapsed.as_millis() >= 250 {
        eprint!("\r{:60}\r", "");
    }
    let t = summary.total();
    let id = loaded.programs[prog].store_id;
    let info = store
        .program_by_id(id)
        .with_context(|| format!("cannot read program {id}"))?;
    let name = &loaded.programs[prog].name;
    if args.json {
        let mut doc = json!({
            "packets": t.get(Counter::Packets),
            "pass": t.get(Counter::Pass),
            "tx": t.get(Counter::Tx),
            "drop": t.get(Counter::Drop),
            "aborted": t.get(Counter::Aborted),
            "redirect": t.get(Counter::Redirect),
            "ns_per_packet": (summary.ns_per_packet() * 10.0).round() / 10.0,
            "pps": summary.pps().round(),
            "workers": args.workers,
            "runt": t.get(Counter::Runt),
            "oversize": t.get(Counter::Oversize),
            "errors": t.get(Counter::Errors),
            "invalid_action": t.get(Counter::InvalidAction),
            "bytes": t.get(Counter::Bytes),
            "elapsed_ns": summary.elapsed.as_nanos() as u64,
            "prog": name,
            "engine": if args.engine == Engine::Jit { "jit" } else { "interpreter" },
            "run_cnt": info.run_cnt,
            "run_time_ns": info.run_time_ns,
            "per_worker": summary.per_worker.iter().map(|(w, c)| {
                let mut m = counts_json(c);
                m.insert("worker".into(), json!(w));
                Value::Object(m)
            }).collect::<Vec<_>>(),
            "maps": super::run::maps_json(&loaded)?,
        });
        if summary.interrupted {
            doc["interrupted"] = json!(stop.signal().name);
        }
        println!("{doc}");
    } else {
        println!(
            "{} packets of {} through {name} on {} worker{} ({}) in {:.3} ms",
            t.get(Counter::Packets),
            args.pcap.display(),
            args.workers,
            if args.workers == 1 { "" } else { "s" },
            if args.engine == Engine::Jit {
                "jit"
            } else {
                "interpreter"
            },
            summary.elapsed.as_secs_f64() * 1e3
        );
        println!(
            "pass {}  tx {}  drop {}  aborted {}  redirect {}",
            t.get(Counter::Pass),
            t.get(Counter::Tx),
            t.get(Counter::Drop),
            t.get(Counter::Aborted),
            t.get(Counter::Redirect)
        );
        println!(
            "not run: runt {}  oversize {};  of the aborted: errors {}  invalid action {}",
            t.get(Counter::Runt),
            t.get(Counter::Oversize),
            t.get(Counter::Errors),
            t.get(Counter::InvalidAction)
        );
        println!(
            "{:.0} packets/s, {:.1} ns per packet",
            summary.pps(),
            summary.ns_per_packet()
        );
    }
    if summary.interrupted {
        return Err(ReplayInterrupted {
            signal: stop.signal(),
            packets: t.get(Counter::Packets),
        }
        .into());
    }
    Ok(())
}
