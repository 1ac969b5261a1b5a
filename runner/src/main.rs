//! `xdp-runner`: runs unmodified XDP objects in user space.
#![forbid(unsafe_code)]

mod btf_format;
mod commands;
mod hex;

use clap::{Parser, Subcommand};

/// Run clang-compiled XDP programs in user space, with the kernel's results.
#[derive(Parser, Debug)]
#[command(name = "xdp-runner", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a program on a packet, like `bpftool prog run`.
    Run(commands::run::RunArgs),
    /// Print a program's instructions in llvm-objdump's syntax.
    Disasm(commands::disasm::DisasmArgs),
    /// Time the engines side by side, with their ratio to the kernel.
    Bench(commands::bench::BenchArgs),
    /// Inspect and change the maps of a shared-memory store, like `bpftool map`
    /// (default store: /dev/shm/xdp-runtime).
    Map(commands::map::MapArgs),
    /// List the programs registered in a shared-memory store, like `bpftool prog`.
    Prog(commands::prog::ProgArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => commands::run::run(args),
        Command::Disasm(args) => commands::disasm::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Map(args) => commands::map::run(args),
        Command::Prog(args) => commands::prog::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            match e.downcast_ref::<commands::Interrupted>() {
                // 128 + the signal number, as a shell reports a process the signal ended.
                Some(i) => std::process::ExitCode::from(128 + i.signal.number as u8),
                None => std::process::ExitCode::FAILURE,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
