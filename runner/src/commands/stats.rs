//! `xdp-runner stats`: the per-worker counters of the data planes (`replay`,
//! `attach`) that use a store, read while they run.

use anyhow::{Context, Result};
use clap::Args;
use dataplane::{Counter, Counts, SharedCounters};
use serde_json::{json, Map as JsonMap, Value};

use super::map::{open_store, DEFAULT_STORE};

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The shared-memory store (/dev/shm/NAME) the data plane uses (its --store).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_STORE)]
    pub store: String,
    /// Also open a store owned by these users or groups (`uid:N`, `gid:N`).
    #[arg(long, value_name = "uid:N,gid:N")]
    pub store_trust: Option<String>,
    /// Only the data plane of this program.
    #[arg(long, value_name = "NAME")]
    pub prog: Option<String>,
    /// Print `{"dataplanes": [{"prog", "pin", "run_cnt", "run_time_ns", "total": {..},
    /// "workers": [{"worker", "packets", "bytes", "pass", "tx", "drop", "aborted",
    /// "redirect", "errors", "invalid_action", "runt", "oversize", "run_ns"}]}]}`.
    #[arg(long, short = 'j')]
    pub json: bool,
}

fn counts_json(c: &Counts) -> JsonMap<String, Value> {
    Counter::ALL
        .iter()
        .filter(|k| **k != Counter::Active)
        .map(|k| (k.name().to_string(), json!(c.get(*k))))
        .collect()
}

pub fn run(args: StatsArgs) -> Result<()> {
    let store = open_store(&args.store, args.store_trust.as_deref())?;
    let planes: Vec<SharedCounters> = SharedCounters::list(&store)
        .into_iter()
        .filter(|c| args.prog.as_deref().is_none_or(|p| c.program() == p))
        .collect();
    if planes.is_empty() && !args.json {
        match &args.prog {
            Some(p) => anyhow::bail!("no data plane of program {p:?} in store {:?}", args.store),
            None => anyhow::bail!(
                "no data plane has used store {:?} (run `xdp-runner replay --store {}`)",
                args.store,
                args.store
            ),
        }
    }
    let programs = store.programs();
    let mut docs = Vec::new();
    for plane in &planes {
        let workers = plane
            .read()
            .with_context(|| format!("cannot read the counters of {}", plane.pin()))?;
        let mut total = Counts::default();
        for (_, c) in &workers {
            total.add(c);
        }
        // The newest registration of the program (ids grow with each load).
        let prog = programs.iter().rev().find(|p| p.name == plane.program());
        if args.json {
            docs.push(json!({
                "prog": plane.program(),
                "pin": plane.pin(),
                "run_cnt": prog.map(|p| p.run_cnt),
                "run_time_ns": prog.map(|p| p.run_time_ns),
                "total": counts_json(&total),
                "workers": workers.iter().map(|(w, c)| {
                    let mut m = counts_json(c);
                    m.insert("worker".into(), json!(w));
                    Value::Object(m)
                }).collect::<Vec<_>>(),
            }));
            continue;
        }
        print!("{} ({})", plane.program(), plane.pin());
        if let Some(p) = prog {
            print!("  run_cnt {} run_time_ns {}", p.run_cnt, p.run_time_ns);
        }
        println!();
        println!(
            "  {:>6} {:>12} {:>12} {:>12} {:>12} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8}",
            "worker",
            "packets",
            "pass",
            "tx",
            "drop",
            "aborted",
            "redirect",
            "errors",
            "runt",
            "oversize",
            "ns/pkt"
        );
        let row = |label: String, c: &Counts| {
            let runs = c.get(Counter::Packets) - c.get(Counter::Runt) - c.get(Counter::Oversize);
            let ns = if runs == 0 {
                0.0
            } else {
                c.get(Counter::RunNs) as f64 / runs as f64
            };
            println!(
                "  {:>6} {:>12} {:>12} {:>12} {:>12} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8.1}",
                label,
                c.get(Counter::Packets),
                c.get(Counter::Pass),
                c.get(Counter::Tx),
                c.get(Counter::Drop),
                c.get(Counter::Aborted),
                c.get(Counter::Redirect),
                c.get(Counter::Errors),
                c.get(Counter::Runt),
                c.get(Counter::Oversize),
                ns
            );
        };
        for (w, c) in &workers {
            row(w.to_string(), c);
        }
        row("all".into(), &total);
    }
    if args.json {
        println!("{}", json!({ "dataplanes": docs }));
    }
    Ok(())
}
