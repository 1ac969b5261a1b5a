//! One module per subcommand.
pub mod bench;
pub mod disasm;
pub mod events;
pub mod map;
pub mod prog;
pub mod run;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use clap::Args;

/// Reads and parses an object file with the default options.
pub fn read_object(path: &Path) -> Result<loader::Object> {
    ObjectArgs::default().load(path, false)
}

/// How to load an object, as libbpf loaders and skeletons set it before load.
#[derive(Args, Debug, Default, Clone)]
pub struct ObjectArgs {
    /// Target BTF for CO-RE relocations (raw BTF or an ELF with .BTF); by default the
    /// running kernel's /sys/kernel/btf/vmlinux, when an object needs it.
    #[arg(long, value_name = "FILE")]
    pub btf: Option<PathBuf>,
    /// Load a program whose section name is unknown with this type:
    /// PROG=TYPE (by function or section name), e.g. `--type xdp_legacy=xdp`.
    #[arg(long = "type", value_name = "PROG=TYPE")]
    pub types: Vec<String>,
    /// Set a map's max_entries before it is created: NAME=N. Repeatable.
    #[arg(long = "map-size", value_name = "NAME=N")]
    pub map_sizes: Vec<String>,
    /// Set a `.rodata` variable before load: SYM=HEX (bytes in memory order, exactly
    /// the variable's size). Repeatable.
    #[arg(long, value_name = "SYM=HEX")]
    pub rodata: Vec<String>,
}

impl ObjectArgs {
    /// Reads and parses `path` with these options. With `xdp_only`, programs of other
    /// types are left out, and what they use that the loader cannot handle (kfuncs,
    /// externs, CO-RE) does not stop the load, as libbpf's autoload does.
    pub fn load(&self, path: &Path, xdp_only: bool) -> Result<loader::Object> {
        let mut opts = loader::LoadOptions::default();
        if xdp_only {
            opts.programs = loader::ProgramFilter::Types(vec![loader::ProgramType::Xdp]);
        }
        if let Some(btf) = &self.btf {
            opts.target_btf = Some(
                loader::options::read_target_btf(btf)
                    .with_context(|| format!("--btf {}", btf.display()))?,
            );
        }
        for t in &self.types {
            let (prog, ty) = t
                .split_once('=')
                .ok_or_else(|| anyhow!("--type {t:?}: expected PROG=TYPE"))?;
            opts.program_types
                .push((prog.to_string(), loader::ProgramType::from_name(ty)));
        }
        for m in &self.map_sizes {
            let (name, n) = m
                .split_once('=')
                .ok_or_else(|| anyhow!("--map-size {m:?}: expected NAME=N"))?;
            let n: u32 = n
                .parse()
                .with_context(|| format!("--map-size {m:?}: bad number"))?;
            opts.max_entries.push((name.to_string(), n));
        }
        for r in &self.rodata {
            let (sym, hex) = r
                .split_once('=')
                .ok_or_else(|| anyhow!("--rodata {r:?}: expected SYM=HEX"))?;
            let bytes =
                crate::hex::parse(hex).with_context(|| format!("--rodata {r:?}: bad value"))?;
            opts.rodata.push((sym.to_string(), bytes));
        }
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        loader::Object::parse_with(&bytes, &opts)
            .with_context(|| format!("cannot load {}", path.display()))
    }
}
