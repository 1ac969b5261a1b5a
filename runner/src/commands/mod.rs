//! One module per subcommand.
pub mod disasm;
pub mod run;

use anyhow::{Context, Result};

/// Reads and parses an object file.
pub fn read_object(path: &std::path::Path) -> Result<loader::Object> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    loader::Object::parse(&bytes).with_context(|| format!("cannot load {}", path.display()))
}
