//! `xdp-runner disasm`: a program's linked instructions in llvm-objdump's syntax.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use clap::Args;

#[derive(Args, Debug)]
pub struct DisasmArgs {
    /// The object file (.o).
    pub object: PathBuf,
    /// The program, by function or section name (default: every program).
    #[arg(long, value_name = "NAME")]
    pub prog: Option<String>,
}

pub fn run(args: DisasmArgs) -> Result<()> {
    let object = super::read_object(&args.object)?;
    let progs: Vec<&loader::Program> = match &args.prog {
        Some(name) => vec![object
            .program(name)
            .ok_or_else(|| anyhow!("no program named {name:?}"))?],
        None => object.programs.iter().collect(),
    };
    for p in progs {
        println!("{} (section {}):", p.name, p.section);
        let text = isa::disasm::disassemble(&p.insns).map_err(|e| anyhow!("{}: {e}", p.name))?;
        for line in text.lines() {
            let start = p
                .subprogs
                .iter()
                .find(|s| line.trim_start().starts_with(&format!("{}:", s.start)));
            if let Some(s) = start {
                println!("\n{:016x} <{}>:", s.start * 8, s.name);
            }
            println!("{line}");
        }
        println!();
    }
    Ok(())
}
