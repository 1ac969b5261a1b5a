//! Every engine side by side on the compared workloads (`bench::compare::WORKLOADS`):
//! the kernel's BPF_PROG_TEST_RUN (where bpf(2) is permitted), the runtime's JIT and
//! interpreter, and rbpf's JIT and interpreter on the same linked bytecode. Engines
//! take turns within every round; each cell is the median over the rounds of the ns
//! per run of `--repeat` runs on one buffer (as the kernel's repeat), with its ratio to
//! the kernel. Then the bpf-progs programs rbpf cannot run, and why.
//!
//! `cargo run --release -p bench --bin compare -- [--rounds 5] [--repeat 200000]`

use anyhow::{anyhow, bail, Context, Result};
use bench::compare::{workload, WORKLOADS};
use bench::rbpf_peer::{RbpfProgram, RbpfVm};
use bench::Workload;
use clap::{Parser, ValueEnum};
use kclient::KernelObject;
use runtime::jit::JitObject;
use runtime::{Packet, Vm};

#[derive(Parser, Debug)]
#[command(
    name = "compare",
    about = "The engines side by side on the compared workloads"
)]
struct Args {
    /// Measurements per engine and workload; engines take turns in every round.
    #[arg(long, default_value_t = 5, value_name = "R")]
    rounds: u32,
    /// Runs per measurement, on the same buffer.
    #[arg(long, default_value_t = 200_000, value_name = "N")]
    repeat: u32,
    /// Engines, comma-separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    engines: Vec<Engine>,
    /// Workloads by object name (pure_parser, xdp_counter, ...), comma-separated
    /// (default: all).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    workloads: Vec<String>,
    /// Skip the list of bpf-progs programs rbpf cannot run.
    #[arg(long)]
    no_support: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Engine {
    Kernel,
    Jit,
    Interpreter,
    RbpfJit,
    RbpfInterpreter,
}

impl Engine {
    const ALL: [Engine; 5] = [
        Engine::Kernel,
        Engine::Jit,
        Engine::Interpreter,
        Engine::RbpfJit,
        Engine::RbpfInterpreter,
    ];

    fn title(self) -> &'static str {
        match self {
            Engine::Kernel => "kernel BPF_PROG_TEST_RUN",
            Engine::Jit => "runtime JIT",
            Engine::Interpreter => "runtime interpreter",
            Engine::RbpfJit => "rbpf x86-64 JIT (no memory checks)",
            Engine::RbpfInterpreter => "rbpf interpreter",
        }
    }
}

/// One engine ready to run one workload.
enum Runner<'w> {
    Kernel(KernelObject),
    Runtime {
        jit: Option<Box<JitObject<'w>>>,
        vm: Box<Vm>,
        pkt: Box<Packet>,
    },
    Rbpf(Box<RbpfVm<'w>>),
}

impl Runner<'_> {
    /// `repeat` runs: the last r0 and the ns per run.
    fn measure(&mut self, w: &Workload, repeat: u32) -> Result<(u64, f64)> {
        let (r0, total) = match self {
            Runner::Kernel(k) => {
                let run = k.test_run(w.prog_name(), &w.packet, repeat)?;
                (run.retval as u64, run.duration * repeat)
            }
            Runner::Runtime { jit, vm, pkt } => match jit {
                Some(jit) => jit.run_repeat(vm, w.prog, pkt, repeat as u64)?,
                None => w.loaded.run_repeat(vm, w.prog, pkt, repeat as u64)?,
            },
            Runner::Rbpf(vm) => vm.run_repeat(repeat as u64)?,
        };
        Ok((r0, total.as_secs_f64() * 1e9 / repeat.max(1) as f64))
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Whether `bpf(2)` may load programs here, or why not.
fn kernel_note() -> Option<String> {
    kclient::available().err()
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.rounds == 0 || args.repeat == 0 {
        bail!("--rounds and --repeat must be at least 1");
    }
    let engines = if args.engines.is_empty() {
        Engine::ALL.to_vec()
    } else {
        args.engines.clone()
    };
    let chosen: Vec<_> = WORKLOADS
        .iter()
        .filter(|(_, object, _)| {
            args.workloads.is_empty() || args.workloads.iter().any(|w| w == object)
        })
        .collect();
    if chosen.is_empty() {
        let names: Vec<_> = WORKLOADS.iter().map(|(_, o, _)| *o).collect();
        bail!("no such workload; the workloads are {}", names.join(", "));
    }
    let kernel_refused = engines
        .contains(&Engine::Kernel)
        .then(kernel_note)
        .flatten();
    if let Some(why) = &kernel_refused {
        eprintln!("kernel: not available ({why}): no kernel column");
    }

    let workloads: Vec<Workload> = chosen
        .iter()
        .map(|(label, object, packet)| workload(object, packet).with_context(|| label.to_string()))
        .collect::<Result<_>>()?;
    let programs: Vec<RbpfProgram> = workloads
        .iter()
        .map(|w| RbpfProgram::link(&w.object, w.prog_name()).map_err(|e| anyhow!(e)))
        .collect::<Result<_>>()?;

    // runners[w][e]: None where the engine cannot run the workload (said on stderr).
    let mut runners: Vec<Vec<Option<Runner>>> = Vec::new();
    for (w, program) in workloads.iter().zip(&programs) {
        let mut row = Vec::new();
        for &e in &engines {
            let runner = match e {
                Engine::Kernel if kernel_refused.is_some() => None,
                Engine::Kernel => Some(Runner::Kernel(w.kernel(&[])?)),
                Engine::Jit | Engine::Interpreter => Some(Runner::Runtime {
                    jit: (e == Engine::Jit)
                        .then(|| JitObject::compile(&w.loaded, &Default::default()).map(Box::new))
                        .transpose()?,
                    vm: Box::new(Vm::new(0)),
                    pkt: Box::new(w.fresh_packet()?),
                }),
                Engine::RbpfJit => Some(Runner::Rbpf(Box::new(program.jit(&w.packet)?))),
                Engine::RbpfInterpreter => {
                    Some(Runner::Rbpf(Box::new(program.interpreter(&w.packet)?)))
                }
            };
            row.push(runner);
        }
        runners.push(row);
    }

    // ns[w][e]: one figure per round.
    let mut ns = vec![vec![Vec::new(); engines.len()]; workloads.len()];
    let mut retvals = vec![vec![None; engines.len()]; workloads.len()];
    for round in 0..args.rounds as usize {
        for (wi, w) in workloads.iter().enumerate() {
            // Rotate the order each round, so no engine always runs first.
            for k in 0..engines.len() {
                let ei = (k + round) % engines.len();
                let Some(runner) = runners[wi][ei].as_mut() else {
                    continue;
                };
                let (r0, t) = runner
                    .measure(w, args.repeat)
                    .with_context(|| format!("{} in {}", chosen[wi].0, engines[ei].title()))?;
                ns[wi][ei].push(t);
                retvals[wi][ei] = Some(r0);
            }
        }
    }
    for (wi, row) in retvals.iter().enumerate() {
        let seen: Vec<_> = row.iter().flatten().collect();
        if seen.windows(2).any(|p| p[0] != p[1]) {
            eprintln!(
                "warning: {}: the engines' last return values differ: {row:?}",
                chosen[wi].0
            );
        }
    }

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "ns per run, median of {} interleaved rounds of {} runs ({cpu}, {cores} cores); in parentheses the ratio to the kernel.",
        args.rounds, args.repeat
    );
    if let Some(why) = &kernel_refused {
        println!("No kernel column: {why}.");
    }
    println!();
    let header: Vec<_> = chosen.iter().map(|(label, _, _)| *label).collect();
    println!("| engine | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(header.len()));
    let kernel_idx = engines.iter().position(|&e| e == Engine::Kernel);
    let medians: Vec<Vec<Option<f64>>> = ns
        .iter_mut()
        .map(|row| {
            row.iter_mut()
                .map(|v| (!v.is_empty()).then(|| median(v)))
                .collect()
        })
        .collect();
    for (ei, e) in engines.iter().enumerate() {
        let cells: Vec<String> = (0..workloads.len())
            .map(|wi| match medians[wi][ei] {
                None => "n/a".into(),
                Some(t) => {
                    let kernel = kernel_idx.and_then(|k| medians[wi][k]);
                    match kernel {
                        Some(k) if *e != Engine::Kernel && k > 0.0 => {
                            format!("{t:.1} ({:.2}x)", t / k)
                        }
                        _ => format!("{t:.1}"),
                    }
                }
            })
            .collect();
        println!("| {} | {} |", e.title(), cells.join(" | "));
    }

    if !args.no_support {
        println!();
        println!(
            "bpf-progs programs rbpf cannot run (the peer's link step, rbpf's verifier, its JIT):"
        );
        println!();
        for line in support()? {
            println!("{line}");
        }
    }
    Ok(())
}

/// One line per bpf-progs program rbpf refuses, with the reason, then a count.
fn support() -> Result<Vec<String>> {
    let dir = bench::repo_root().join("bpf-progs/obj");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    paths.sort();
    let (mut lines, mut runs, mut total) = (Vec::new(), 0, 0);
    for path in paths {
        let file = path
            .file_name()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
        let bytes = std::fs::read(&path)?;
        let object = match loader::Object::parse(&bytes) {
            Ok(o) => o,
            Err(e) => {
                lines.push(format!("- {file}: the loader refuses it: {e}"));
                continue;
            }
        };
        for prog in &object.programs {
            total += 1;
            let verdict = RbpfProgram::link(&object, &prog.name).and_then(|p| p.jit_compiles());
            match verdict {
                Ok(()) => runs += 1,
                Err(e) => lines.push(format!("- {file}: {e}")),
            }
        }
    }
    lines.push(String::new());
    lines.push(format!(
        "rbpf links and JIT-compiles {runs} of {total} bpf-progs programs (its JIT runs only the compared ones: it checks no memory access)."
    ));
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
