//! `xdp-runner attach`: a program on every frame arriving on a live interface, on N
//! workers, until SIGINT/SIGTERM or `--duration`; then the counters, as `replay`
//! prints them. `attach --follow --store NAME`: a daemon running every XDP
//! attachment of the store (made under the shim by libbpf, bpftool or `ip link`)
//! on its interface, starting and stopping as attachments come and go.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use dataplane::{AttachOptions, Counter, Dataplane, Mode};
use runtime::LoadedObject;
use serde_json::{json, Map as JsonMap, Value};

use super::run::Engine;

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// The clang-compiled object file (.o).
    #[arg(required_unless_present = "follow")]
    pub object: Option<PathBuf>,
    /// The interface whose incoming frames the program runs on.
    #[arg(long, value_name = "IFACE", required_unless_present = "follow")]
    pub iface: Option<String>,
    /// Run the --store's XDP attachments instead (those made under the shim by
    /// BPF_LINK_CREATE or netlink), each on its interface in this network
    /// namespace, starting and stopping them as they come and go, until SIGINT or
    /// SIGTERM. One line per start, stop and failure (JSON with --json).
    #[arg(long, requires = "store", conflicts_with_all = ["object", "iface", "prog", "sets", "pin_maps", "duration"])]
    pub follow: bool,
    /// afpacket: a copy of every frame through TPACKET_V3 rings (CAP_NET_RAW; the
    /// host's stack still receives every frame, so XDP_DROP cannot hide one from it).
    /// afxdp: the frames themselves, through AF_XDP sockets fed by a small kernel
    /// program (CAP_NET_RAW, CAP_NET_ADMIN and CAP_BPF, or root); XDP_PASS hands a
    /// frame to the host through a TAP device named xdppass<ifindex>, which stands in
    /// for IFACE on the host's side (give it IFACE's addresses; what the host sends
    /// out of it goes out of IFACE).
    #[arg(long, value_enum, default_value_t = AttachMode::Afpacket)]
    pub mode: AttachMode,
    /// Worker threads, each with a fixed worker index (bpf_get_smp_processor_id()
    /// and per-CPU slot). afpacket: frames are spread by flow hash (PACKET_FANOUT);
    /// afxdp: worker w serves the receive queues q with q % N == w.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub workers: u32,
    /// Stop after this many seconds (default: run until SIGINT or SIGTERM).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// The program to run, by function or section name (default: the first XDP program).
    #[arg(long, value_name = "NAME")]
    pub prog: Option<String>,
    /// Execution engine.
    #[arg(long, default_value = "interpreter", value_parser = super::run::engine_parser())]
    pub engine: Engine,
    /// The step budget of each run (see `run --max-steps`).
    #[arg(long, default_value_t = runtime::DEFAULT_MAX_STEPS, value_name = "N")]
    pub max_steps: u64,
    /// Write one map entry before the program starts: MAP:KEYHEX=VALUEHEX, bytes in
    /// memory order (a devmap entry: the target ifindex, little-endian). Repeatable.
    #[arg(long = "set", value_name = "MAP:KEY=VALUE")]
    pub sets: Vec<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Keep the maps in this named shared-memory store (/dev/shm/NAME, created if
    /// missing), so other processes read and change them while frames flow.
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
    #[command(flatten)]
    pub load: super::ObjectArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AttachMode {
    Afpacket,
    Afxdp,
}

pub fn run(args: AttachArgs) -> Result<()> {
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    if args.follow {
        return follow(&args);
    }
    let (Some(object_path), Some(iface)) = (args.object.clone(), args.iface.clone()) else {
        bail!("an object and --iface are needed without --follow");
    };
    let duration = match args.duration {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            bail!("--duration must be a positive number of seconds, not {s}")
        }
        Some(s) => Some(Duration::from_secs_f64(s)),
        None => None,
    };
    let ifindex = dataplane::afpacket::ifindex(&iface)?;
    let access = super::map::store_access(args.store_trust.as_deref(), args.store_group)?;
    // Each worker owns a per-CPU slot: a private store gets as many as needed.
    let default_cpus = maps::StoreOptions::default();
    let store = match &args.store {
        Some(name) => maps::Store::open_or_create_with(name, default_cpus, &access)
            .with_context(|| format!("cannot open or create the store {name:?}"))?,
        None => {
            let possible = maps::Store::anonymous(maps::StoreOptions {
                size: 1 << 20,
                ncpus: None,
            })
            .map(|s| s.ncpus())
            .unwrap_or(1);
            maps::Store::anonymous(maps::StoreOptions {
                ncpus: Some(possible.max(args.workers)),
                ..Default::default()
            })
            .context("cannot create the map store")?
        }
    };
    let object = args.load.load(&object_path, true)?;
    let load_opts = runtime::LoadOptions {
        pin_maps: args.pin_maps.clone(),
        ..Default::default()
    };
    let loaded = LoadedObject::load_with(&object, &store, &load_opts)
        .with_context(|| format!("cannot load {}", object_path.display()))?;
    let prog = loaded.program_index(args.prog.as_deref())?;
    for set in &args.sets {
        super::run::apply_set(&loaded, set)?;
    }
    let config = dataplane::Config {
        engine: args.engine,
        workers: args.workers,
        max_steps: args.max_steps,
    };
    let dp = Dataplane::new(&store, &loaded, prog, config)?;
    let stop = super::Interruption::install()?;
    let mode = match args.mode {
        AttachMode::Afpacket => Mode::AfPacket,
        AttachMode::Afxdp => Mode::AfXdp,
    };
    let ready = |r: &dataplane::Ready| {
        let mut extra = String::new();
        if let Some(native) = r.native {
            extra.push_str(if native {
                ", kernel program in native mode"
            } else {
                ", kernel program in generic mode"
            });
        }
        if let Some(tap) = &r.tap {
            extra.push_str(&format!(", XDP_PASS to {tap}"));
        }
        eprintln!(
            "attached {} to {} ({}, {} worker{}{extra}); SIGINT or SIGTERM stops",
            dp.program_name(),
            r.iface,
            args.mode
                .to_possible_value()
                .map(|v| v.get_name().to_string())
                .unwrap_or_default(),
            r.workers,
            if r.workers == 1 { "" } else { "s" },
        );
    };
    let mut opts = AttachOptions::new(ifindex, mode);
    opts.stop = Some(&stop.flag);
    opts.duration = duration;
    opts.ready = Some(&ready);
    let done =
        dataplane::attach(&dp, &opts).with_context(|| format!("cannot attach to {iface}"))?;
    let total = done.summary.total();
    let live = done.live_total();
    let secs = done.summary.elapsed.as_secs_f64();
    if args.json {
        let mut doc = JsonMap::new();
        for c in [
            Counter::Packets,
            Counter::Pass,
            Counter::Tx,
            Counter::Drop,
            Counter::Aborted,
            Counter::Redirect,
            Counter::Errors,
            Counter::Runt,
            Counter::Oversize,
        ] {
            doc.insert(c.name().into(), json!(total.get(c)));
        }
        doc.insert("ns_per_packet".into(), json!(done.summary.ns_per_packet()));
        doc.insert("pps".into(), json!(done.summary.pps()));
        doc.insert("workers".into(), json!(args.workers));
        doc.insert("seconds".into(), json!(secs));
        doc.insert("iface".into(), json!(iface));
        doc.insert(
            "mode".into(),
            json!(match mode {
                Mode::AfPacket => "afpacket",
                Mode::AfXdp => "afxdp",
            }),
        );
        for (k, v) in live.fields() {
            doc.insert(k.into(), json!(v));
        }
        if let Some(tap) = &done.tap {
            doc.insert("tap".into(), json!(tap));
            doc.insert("host_sent".into(), json!(done.host_sent));
            doc.insert("host_failed".into(), json!(done.host_failed));
        }
        let per: Vec<Value> = done
            .summary
            .per_worker
            .iter()
            .map(|(i, c)| {
                let mut w = JsonMap::new();
                w.insert("worker".into(), json!(i));
                for k in Counter::ALL {
                    if k != Counter::Active {
                        w.insert(k.name().into(), json!(c.get(k)));
                    }
                }
                Value::Object(w)
            })
            .collect();
        doc.insert("per_worker".into(), Value::Array(per));
        if done.summary.interrupted {
            doc.insert("interrupted".into(), json!(stop.signal().name));
        }
        println!("{}", Value::Object(doc));
    } else {
        println!(
            "{} packets in {secs:.3} s on {} ({} worker{}): {:.0} pps, {:.1} ns per packet",
            total.get(Counter::Packets),
            iface,
            args.workers,
            if args.workers == 1 { "" } else { "s" },
            done.summary.pps(),
            done.summary.ns_per_packet()
        );
        let verdicts: Vec<String> = [
            Counter::Pass,
            Counter::Tx,
            Counter::Drop,
            Counter::Aborted,
            Counter::Redirect,
        ]
        .iter()
        .map(|&c| format!("{} {}", c.name(), total.get(c)))
        .collect();
        println!("{}", verdicts.join(", "));
        let errors = total.get(Counter::Errors);
        if errors > 0 {
            println!("errors {errors} (runs that trapped, counted as aborted)");
        }
        let sockets: Vec<String> = live
            .fields()
            .iter()
            .filter(|(_, v)| *v > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if !sockets.is_empty() {
            println!("{}", sockets.join(", "));
        }
        if let Some(tap) = &done.tap {
            println!(
                "host frames from {tap} sent out of {}: {} ({} refused)",
                iface, done.host_sent, done.host_failed
            );
        }
        if done.summary.per_worker.len() > 1 {
            for (i, c) in &done.summary.per_worker {
                println!(
                    "worker {i}: {} packets, pass {}, tx {}, drop {}, aborted {}, redirect {}",
                    c.get(Counter::Packets),
                    c.get(Counter::Pass),
                    c.get(Counter::Tx),
                    c.get(Counter::Drop),
                    c.get(Counter::Aborted),
                    c.get(Counter::Redirect)
                );
            }
        }
        if done.summary.interrupted {
            eprintln!("stopped by {}", stop.signal().name);
        }
    }
    Ok(())
}

/// `attach --follow`: the store's attachments, until SIGINT or SIGTERM.
fn follow(args: &AttachArgs) -> Result<()> {
    let Some(name) = &args.store else {
        bail!("--follow needs --store");
    };
    let access = super::map::store_access(args.store_trust.as_deref(), args.store_group)?;
    let store = maps::Store::open_with(name, &access)
        .with_context(|| format!("cannot open the store {name:?}"))?;
    let stop = super::Interruption::install()?;
    let json = args.json;
    let mode_name = match args.mode {
        AttachMode::Afpacket => "afpacket",
        AttachMode::Afxdp => "afxdp",
    };
    let say = |e: &dataplane::FollowEvent<'_>| {
        use dataplane::FollowEvent as E;
        let line = match (e, json) {
            (
                E::Started {
                    ifindex,
                    prog_id,
                    link_id,
                    name,
                },
                true,
            ) => json!({"event": "started", "ifindex": ifindex, "iface": dataplane::afpacket::ifname(*ifindex),
                "prog_id": prog_id, "link_id": link_id, "name": name, "mode": mode_name})
            .to_string(),
            (
                E::Started {
                    ifindex,
                    prog_id,
                    link_id,
                    name,
                },
                false,
            ) => format!(
                "started {name} (program {prog_id}{}) on {} ({mode_name})",
                if *link_id != 0 {
                    format!(", link {link_id}")
                } else {
                    String::new()
                },
                dataplane::afpacket::ifname(*ifindex)
            ),
            (
                E::Stopped {
                    ifindex,
                    prog_id,
                    summary,
                },
                _,
            ) => {
                let t = summary.summary.total();
                if json {
                    let mut doc = JsonMap::new();
                    doc.insert("event".into(), json!("stopped"));
                    doc.insert("ifindex".into(), json!(ifindex));
                    doc.insert("prog_id".into(), json!(prog_id));
                    for c in [
                        Counter::Packets,
                        Counter::Pass,
                        Counter::Tx,
                        Counter::Drop,
                        Counter::Aborted,
                        Counter::Redirect,
                        Counter::Errors,
                    ] {
                        doc.insert(c.name().into(), json!(t.get(c)));
                    }
                    Value::Object(doc).to_string()
                } else {
                    format!(
                        "stopped program {prog_id} on {}: {} packets, pass {}, tx {}, drop {}, aborted {}, redirect {}",
                        dataplane::afpacket::ifname(*ifindex),
                        t.get(Counter::Packets),
                        t.get(Counter::Pass),
                        t.get(Counter::Tx),
                        t.get(Counter::Drop),
                        t.get(Counter::Aborted),
                        t.get(Counter::Redirect)
                    )
                }
            }
            (
                E::Failed {
                    ifindex,
                    prog_id,
                    error,
                },
                true,
            ) => json!({"event": "failed", "ifindex": ifindex, "prog_id": prog_id, "error": error.to_string()})
            .to_string(),
            (
                E::Failed {
                    ifindex,
                    prog_id,
                    error,
                },
                false,
            ) => format!(
                "cannot run program {prog_id} on {}: {error}",
                dataplane::afpacket::ifname(*ifindex)
            ),
        };
        // A closed stdout (its reader went away) loses the event lines, never the
        // daemon: the attachments keep running.
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    };
    let mut opts = dataplane::FollowOptions::new(match args.mode {
        AttachMode::Afpacket => Mode::AfPacket,
        AttachMode::Afxdp => Mode::AfXdp,
    });
    opts.config = dataplane::Config {
        engine: args.engine,
        workers: args.workers,
        max_steps: args.max_steps,
    };
    opts.stop = Some(&stop.flag);
    opts.event = Some(&say);
    eprintln!("following the XDP attachments of store {name}; SIGINT or SIGTERM stops");
    dataplane::follow(&store, &opts).context("following the store's attachments")?;
    Ok(())
}
