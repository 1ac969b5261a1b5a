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
    /// Run a program on every frame of a pcap or pcapng capture, on N workers.
    Replay(commands::replay::ReplayArgs),
    /// Per-worker packet and verdict counts of the data planes using a store.
    Stats(commands::stats::StatsArgs),
    /// Run a program on every frame arriving on a live interface (AF_PACKET or
    /// AF_XDP), on worker threads, until SIGINT/SIGTERM or --duration.
    Attach(commands::attach::AttachArgs),
    /// Fire a store's bpf_timer callbacks with no packets (the store's one timer
    /// driver), until SIGINT/SIGTERM or --duration.
    Timers(commands::timers::TimersArgs),
}

impl Command {
    /// Whether the command was asked for JSON output (`--json`, `-j`).
    fn json(&self) -> bool {
        match self {
            Command::Run(a) => a.json,
            Command::Disasm(_) => false,
            Command::Bench(a) => a.json,
            Command::Map(a) => a.json,
            Command::Prog(a) => a.json,
            Command::Replay(a) => a.json,
            Command::Stats(a) => a.json,
            Command::Attach(a) => a.json,
            Command::Timers(a) => a.json,
        }
    }
}

/// An error as bpftool prints it under `--json`: `{"error":"..."}` on stdout.
fn json_error(text: &str) -> String {
    serde_json::json!({ "error": text }).to_string()
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let json = cli.command.json();
    let result = match cli.command {
        Command::Run(args) => commands::run::run(args),
        Command::Disasm(args) => commands::disasm::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Map(args) => commands::map::run(args),
        Command::Prog(args) => commands::prog::run(args),
        Command::Replay(args) => commands::replay::run(args),
        Command::Stats(args) => commands::stats::run(args),
        Command::Attach(args) => commands::attach::run(args),
        Command::Timers(args) => commands::timers::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // 128 + the signal number, as a shell reports a process the signal ended.
            let signal = e
                .downcast_ref::<commands::Interrupted>()
                .map(|i| i.signal)
                .or_else(|| {
                    e.downcast_ref::<commands::replay::ReplayInterrupted>()
                        .map(|i| i.signal)
                });
            // An interrupted command has printed its JSON document (with
            // "interrupted"); the note goes to stderr so stdout stays one document.
            if json && signal.is_none() {
                println!("{}", json_error(&error_text(&e)));
            } else {
                eprintln!("Error: {}", error_text(&e));
            }
            match signal {
                Some(s) => std::process::ExitCode::from(128 + s.number as u8),
                None => std::process::ExitCode::FAILURE,
            }
        }
    }
}

/// The error and its causes joined by ": ", as anyhow's `{:#}`, except that a cause
/// whose text the message already ends with is left out: many errors (the runtime's
/// `map NAME: {source}`, the store's `{op}: {source}`) print their source in their own
/// message and also return it from `source()`.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("no space in store: need 8 bytes")]
        struct Full;
        #[derive(Debug, thiserror::Error)]
        #[error("map m: {source}")]
        struct Wrapped {
            source: Full,
        }
        let e = anyhow::Error::new(Wrapped { source: Full }).context("cannot load x.o");
        assert_eq!(
            super::error_text(&e),
            "cannot load x.o: map m: no space in store: need 8 bytes"
        );
        let plain = anyhow::Error::new(Full).context("cannot create the map store");
        assert_eq!(
            super::error_text(&plain),
            "cannot create the map store: no space in store: need 8 bytes"
        );
    }

    #[test]
    fn json_errors_are_objects_with_an_error_string() {
        let text = "no map named \"a\\b\" in the store";
        let v: serde_json::Value =
            serde_json::from_str(&super::json_error(text)).expect("valid JSON");
        assert_eq!(v, serde_json::json!({ "error": text }));
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
