//! `/tmp/perf-<pid>.map`: one line per compiled function (`START SIZE name`, hex), so
//! `perf report` names BPF programs and subprograms instead of showing bare addresses.
//! Off by default; on with [`super::JitOptions::perf_map`] or `XDP_RUNTIME_PERF_MAP=1`.

use std::io::Write;

/// One compiled function's code range and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub start: u64,
    pub size: u64,
    pub name: String,
}

/// The perf map line for `sym`.
pub fn line(sym: &Symbol) -> String {
    format!("{:x} {:x} {}\n", sym.start, sym.size, sym.name)
}

/// The path perf reads for this process.
pub fn path() -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/tmp/perf-{}.map", std::process::id()))
}

/// Appends `symbols` to this process's perf map.
pub fn append(symbols: &[Symbol]) -> std::io::Result<()> {
    let mut text = String::new();
    for s in symbols {
        text.push_str(&line(s));
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path())?;
    f.write_all(text.as_bytes())
}

/// Whether the environment asks for a perf map (`XDP_RUNTIME_PERF_MAP=1`).
pub fn wanted_by_env() -> bool {
    std::env::var("XDP_RUNTIME_PERF_MAP").is_ok_and(|v| v == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_perf_format() {
        let s = Symbol {
            start: 0x7f00_1234,
            size: 0x40,
            name: "bpf_prog_xdp_counter".into(),
        };
        assert_eq!(line(&s), "7f001234 40 bpf_prog_xdp_counter\n");
    }
}
