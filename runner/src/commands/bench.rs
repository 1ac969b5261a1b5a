//! `xdp-runner bench`: the engines side by side on one program and packet, interleaved
//! over several rounds, with each engine's ratio to the kernel's BPF_PROG_TEST_RUN.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use kclient::KernelObject;
use runtime::{LoadedObject, Packet, Vm};
use serde_json::json;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The clang-compiled object file (.o).
    pub object: PathBuf,
    /// The input packet.
    #[arg(long, value_name = "FILE")]
    pub data_in: PathBuf,
    /// The program, by function or section name (default: the first XDP program).
    #[arg(long, value_name = "NAME")]
    pub prog: Option<String>,
    /// Runs per measurement, on the same buffer (as the kernel's repeat).
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub repeat: u32,
    /// Measurements per engine; engines take turns in every round.
    #[arg(long, default_value_t = 5, value_name = "R")]
    pub rounds: u32,
    /// Engines to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "interpreter,jit,kernel", value_parser = column_parser())]
    pub engines: Vec<Column>,
    /// Fill a map before measuring: MAP=N writes entries 0..N-1 (key = the index as a
    /// little-endian integer of the key's size, value = the index as a little-endian
    /// u64, zero-padded or cut to the value's size; every CPU's slot of a per-CPU map),
    /// in the runtime's maps and the kernel's. Repeatable.
    #[arg(long = "fill", value_name = "MAP=N")]
    pub fills: Vec<String>,
    /// Print `{"prog", "packet_bytes", "repeat", "rounds", "fill", "results": [{"engine",
    /// "ns_per_run", "min", "max", "ratio_to_kernel", "retval"}]}`.
    #[arg(long)]
    pub json: bool,
    /// The step budget of each run, as `xdp-runner run --max-steps`.
    #[arg(long, default_value_t = runtime::DEFAULT_MAX_STEPS, value_name = "N")]
    pub max_steps: u64,
    #[command(flatten)]
    pub load: super::ObjectArgs,
}

/// A column of the bench table: one of the runtime's engines, or the kernel's
/// `BPF_PROG_TEST_RUN` (through kclient).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Engine(runtime::Engine),
    Kernel,
}

impl Column {
    fn name(self) -> &'static str {
        match self {
            Column::Engine(e) => e.name(),
            Column::Kernel => "kernel",
        }
    }
}

/// `--engines`: the runtime's engines and the kernel, by name.
fn column_parser() -> impl clap::builder::TypedValueParser<Value = Column> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["interpreter", "jit", "kernel"]).map(|s| {
        match s.as_str() {
            "kernel" => Column::Kernel,
            e => Column::Engine(e.parse().expect("a listed engine")),
        }
    })
}

/// One engine's figures, in ns per run.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub engine: &'static str,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub ratio_to_kernel: Option<f64>,
}

/// Median, minimum and maximum of `samples` (not empty).
pub fn stats(samples: &[f64]) -> (f64, f64, f64) {
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    (median, s[0], s[n - 1])
}

/// Summaries with each engine's median divided by the kernel's, when the kernel ran.
pub fn summarise(samples: &[(Column, Vec<f64>)]) -> Vec<Summary> {
    let kernel = samples
        .iter()
        .find(|(e, _)| *e == Column::Kernel)
        .map(|(_, s)| stats(s).0);
    samples
        .iter()
        .map(|(engine, s)| {
            let (median, min, max) = stats(s);
            Summary {
                engine: engine.name(),
                median,
                min,
                max,
                ratio_to_kernel: kernel.filter(|k| *k > 0.0).map(|k| median / k),
            }
        })
        .collect()
}

/// Parses one `--fill MAP=N`.
pub fn parse_fill(fill: &str) -> Result<(String, u64)> {
    let (name, n) = fill
        .split_once('=')
        .ok_or_else(|| anyhow!("--fill {fill:?}: expected MAP=N"))?;
    let n: u64 = n
        .trim()
        .parse()
        .with_context(|| format!("--fill {fill:?}: bad number"))?;
    if name.is_empty() {
        bail!("--fill {fill:?}: expected MAP=N");
    }
    Ok((name.to_string(), n))
}

/// Writes entries `0..n` of map `name` in the runtime's store, as
/// [`kclient::KernelObject::fill`] does in the kernel's.
pub fn fill_runtime(loaded: &LoadedObject, name: &str, n: u64) -> Result<()> {
    loaded
        .fill(name, n)
        .map_err(|e| anyhow!("--fill {name}={n}: {e}"))
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.rounds == 0 || args.repeat == 0 {
        bail!("--rounds and --repeat must be at least 1");
    }
    let mut engines = args.engines.clone();
    engines.dedup();
    let fills = args
        .fills
        .iter()
        .map(|f| parse_fill(f))
        .collect::<Result<Vec<_>>>()?;
    let object = args.load.load(&args.object, true)?;
    let data = super::read_packet(&args.data_in)?;
    let store = maps::Store::anonymous(maps::StoreOptions {
        size: runtime::store_size_for(&object),
        ..Default::default()
    })
    .context("cannot create the map store")?;
    let loaded = LoadedObject::load(&object, &store)
        .with_context(|| format!("cannot load {}", args.object.display()))?;
    let prog = loaded.program_index(args.prog.as_deref())?;
    let prog_name = loaded.programs[prog].name.clone();
    Packet::new(&data)?;
    if engines.iter().any(|e| *e != Column::Kernel) {
        for (name, n) in &fills {
            fill_runtime(&loaded, name, *n)?;
        }
    }
    let jit = if engines.contains(&Column::Engine(runtime::Engine::Jit)) {
        Some(
            runtime::jit::JitObject::compile(&loaded, &super::jit_options_from_env())
                .context("JIT compilation failed")?,
        )
    } else {
        None
    };

    let mut kernel = None;
    if engines.contains(&Column::Kernel) {
        match kclient::available()
            .and_then(|()| KernelObject::load(&object).map_err(|e| e.to_string()))
        {
            Ok(k) => {
                for (name, n) in &fills {
                    k.fill(name, *n)
                        .with_context(|| format!("--fill {name}={n} in the kernel"))?;
                }
                kernel = Some(k)
            }
            Err(why) => {
                eprintln!("kernel: not available ({why}); the kernel column is left out");
                engines.retain(|e| *e != Column::Kernel);
            }
        }
    }
    if engines.is_empty() {
        bail!("no engine to run");
    }

    let progress = std::io::stderr().is_terminal();
    let mut vm = Vm::new(0).with_max_steps(args.max_steps);
    let mut samples: Vec<(Column, Vec<f64>)> = engines.iter().map(|e| (*e, Vec::new())).collect();
    let mut retvals: Vec<(Column, u32)> = Vec::new();
    for round in 0..args.rounds {
        for (engine, s) in samples.iter_mut() {
            if progress {
                eprint!(
                    "\rround {}/{}: {:<12}",
                    round + 1,
                    args.rounds,
                    engine.name()
                );
                let _ = std::io::stderr().flush();
            }
            let (retval, ns) = match engine {
                Column::Engine(runtime::Engine::Interpreter) => {
                    let mut pkt = Packet::new(&data)?;
                    let (ret, elapsed) = loaded
                        .run_repeat(&mut vm, prog, &mut pkt, args.repeat as u64)
                        .map_err(|trap| anyhow!("program {prog_name} faulted: {trap}"))?;
                    (ret as u32, elapsed.as_nanos() as f64 / args.repeat as f64)
                }
                Column::Kernel => {
                    let k = kernel.as_ref().expect("kernel engine has an object");
                    let run = k.test_run(&prog_name, &data, args.repeat)?;
                    (run.retval, run.duration.as_nanos() as f64)
                }
                Column::Engine(runtime::Engine::Jit) => {
                    let jit = jit.as_ref().expect("jit engine is compiled");
                    let mut pkt = Packet::new(&data)?;
                    let (ret, elapsed) = jit
                        .run_repeat(&mut vm, prog, &mut pkt, args.repeat as u64)
                        .map_err(|trap| anyhow!("program {prog_name} faulted: {trap}"))?;
                    (ret as u32, elapsed.as_nanos() as f64 / args.repeat as f64)
                }
            };
            s.push(ns);
            if round == 0 {
                retvals.push((*engine, retval));
            }
        }
    }
    if progress {
        eprint!("\r{:40}\r", "");
    }
    if let Some((first, r0)) = retvals.first() {
        for (engine, r) in &retvals {
            if r != r0 {
                bail!(
                    "engines disagree: {} returned {r0}, {} returned {r}",
                    first.name(),
                    engine.name()
                );
            }
        }
    }
    let summary = summarise(&samples);
    if args.json {
        let results: Vec<_> = summary
            .iter()
            .zip(&retvals)
            .map(|(s, (_, retval))| {
                json!({"engine": s.engine, "ns_per_run": s.median, "min": s.min, "max": s.max,
                       "ratio_to_kernel": s.ratio_to_kernel, "retval": retval})
            })
            .collect();
        let fill: serde_json::Map<String, serde_json::Value> =
            fills.iter().map(|(m, n)| (m.clone(), json!(n))).collect();
        println!(
            "{}",
            json!({
                "prog": prog_name,
                "packet_bytes": data.len(),
                "repeat": args.repeat,
                "rounds": args.rounds,
                "fill": fill,
                "results": results,
            })
        );
    } else {
        println!(
            "{} on {} bytes, {} rounds of {} runs",
            prog_name,
            data.len(),
            args.rounds,
            args.repeat
        );
        for (name, n) in &fills {
            println!("{name} filled with {n} entries");
        }
        println!(
            "{:<12} {:>12} {:>10} {:>10} {:>10}",
            "engine", "ns/run", "min", "max", "vs kernel"
        );
        for s in &summary {
            let ratio = s
                .ratio_to_kernel
                .map(|r| format!("{r:.2}x"))
                .unwrap_or_else(|| "-".into());
            println!(
                "{:<12} {:>12.1} {:>10.1} {:>10.1} {:>10}",
                s.engine, s.median, s.min, s.max, ratio
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max() {
        assert_eq!(stats(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(stats(&[4.0, 1.0, 2.0, 3.0]), (2.5, 1.0, 4.0));
        assert_eq!(stats(&[7.0]), (7.0, 7.0, 7.0));
    }

    #[test]
    fn ratios_are_taken_against_the_kernel_median() {
        let s = summarise(&[
            (
                Column::Engine(runtime::Engine::Interpreter),
                vec![30.0, 10.0, 20.0],
            ),
            (Column::Kernel, vec![5.0, 4.0, 6.0]),
        ]);
        assert_eq!(s[0].ratio_to_kernel, Some(4.0));
        assert_eq!(s[1].ratio_to_kernel, Some(1.0));
        let s = summarise(&[(Column::Engine(runtime::Engine::Interpreter), vec![1.0])]);
        assert_eq!(s[0].ratio_to_kernel, None);
    }

    #[test]
    fn fill_arguments() {
        assert_eq!(
            parse_fill("big_map=1048576").unwrap(),
            ("big_map".into(), 1 << 20)
        );
        assert_eq!(parse_fill("a.b=0").unwrap(), ("a.b".into(), 0));
        assert!(parse_fill("big_map").is_err());
        assert!(parse_fill("=3").is_err());
        assert!(parse_fill("m=-1").is_err());
        assert!(parse_fill("m=x").is_err());
    }

    fn map_heavy() -> LoadedObject {
        let object = super::super::read_object(&bpf_progs::object("xdp_map_heavy")).unwrap();
        let store = maps::Store::anonymous(maps::StoreOptions {
            size: runtime::store_size_for(&object),
            ..Default::default()
        })
        .unwrap();
        LoadedObject::load(&object, &store).unwrap()
    }

    #[test]
    fn fill_writes_index_keys_and_values_in_the_runtime() {
        let loaded = map_heavy();
        fill_runtime(&loaded, "big_map", 1000).unwrap();
        let m = loaded.maps.by_name("big_map").unwrap();
        let entries = m.map.dump().unwrap();
        assert_eq!(entries.len(), 1000);
        for e in &entries {
            let k = u32::from_le_bytes(e.key[..].try_into().unwrap());
            assert!(k < 1000);
            assert_eq!(e.values, vec![(k as u64).to_le_bytes().to_vec()]);
        }
        // stats is an array of 2: 2 fits, 3 does not.
        fill_runtime(&loaded, "stats", 2).unwrap();
        let err = fill_runtime(&loaded, "stats", 3).unwrap_err().to_string();
        assert!(err.contains("at most 2 entries"), "{err}");
        let err = fill_runtime(&loaded, "nope", 1).unwrap_err().to_string();
        assert!(err.contains("big_map") && err.contains("stats"), "{err}");
    }

    #[test]
    fn a_million_entry_map_fits_the_bench_store() {
        let loaded = map_heavy();
        fill_runtime(&loaded, "big_map", 1 << 20).unwrap();
        let prog = loaded.program_index(Some("xdp_map_probe")).unwrap();
        let data = std::fs::read(bpf_progs::packet("icmp")).unwrap();
        let mut pkt = Packet::new(&data).unwrap();
        let mut vm = Vm::new(0);
        assert_eq!(loaded.run(&mut vm, prog, &mut pkt).unwrap(), 2, "XDP_PASS");
    }
}
