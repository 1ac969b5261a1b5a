//! One module per subcommand.
pub mod attach;
pub mod bench;
pub mod disasm;
pub mod events;
pub mod map;
pub mod prog;
pub mod replay;
pub mod run;
pub mod stats;
pub mod timers;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use clap::Args;

/// The JIT's options as the environment sets them, for measurements: `XDP_JIT_OPT_LEVEL=speed`
/// (Cranelift's optimiser), `XDP_JIT_REGALLOC=single_pass` (the fast register allocator),
/// `XDP_RUNTIME_PERF_MAP=1` (a perf map, as `--perf-map`). The library reads none of them.
pub fn jit_options_from_env() -> runtime::jit::JitOptions {
    let is = |var: &str, value: &str| std::env::var(var).is_ok_and(|v| v == value);
    runtime::jit::JitOptions {
        optimize: is("XDP_JIT_OPT_LEVEL", "speed"),
        fast_compile: is("XDP_JIT_REGALLOC", "single_pass"),
        perf_map: is("XDP_RUNTIME_PERF_MAP", "1"),
        ..Default::default()
    }
}

/// Reads and parses an object file with the default options.
pub fn read_object(path: &Path) -> Result<loader::Object> {
    ObjectArgs::default().load(path, false)
}

/// Reads the one raw frame `--data-in` names. A pcap or pcapng capture is refused with
/// a message saying so: its file header would otherwise run as the start of one large
/// packet, silently.
pub fn read_packet(path: &Path) -> Result<Vec<u8>> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if let Some(kind) = capture_kind(&data) {
        anyhow::bail!(
            "{} is a {kind} capture, not a frame: --data-in takes the raw bytes of one \
             frame, from its Ethernet header on (extract one frame's bytes from the capture)",
            path.display()
        );
    }
    Ok(data)
}

/// "pcap" or "pcapng" when `data` starts with that format's file header: the magic
/// number and a version (pcap 2.x) or byte-order magic (pcapng) in the same byte order,
/// which a real frame (a destination MAC and a source MAC) is most unlikely to carry.
fn capture_kind(data: &[u8]) -> Option<&'static str> {
    let word = |at: usize| -> Option<[u8; 4]> { data.get(at..at + 4)?.try_into().ok() };
    let magic = word(0)?;
    let pcap_le = [[0xd4, 0xc3, 0xb2, 0xa1], [0x4d, 0x3c, 0xb2, 0xa1]];
    let pcap_be = [[0xa1, 0xb2, 0xc3, 0xd4], [0xa1, 0xb2, 0x3c, 0x4d]];
    if data.len() >= 24 {
        let major = word(4)?;
        if pcap_le.contains(&magic) && major[..2] == [2, 0] {
            return Some("pcap");
        }
        if pcap_be.contains(&magic) && major[..2] == [0, 2] {
            return Some("pcap");
        }
    }
    if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
        let bom = word(8)?;
        if bom == [0x4d, 0x3c, 0x2b, 0x1a] || bom == [0x1a, 0x2b, 0x3c, 0x4d] {
            return Some("pcapng");
        }
    }
    None
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

/// SIGINT and SIGTERM, caught while programs run so that long `--repeat`s end cleanly.
///
/// signal-hook's `flag` handlers only store to atomics (async-signal-safe, no thread,
/// no unsafe code here); the engines read the flag between two runs. A second signal
/// while the first is pending ends the process at once with 128 + its number, for a
/// single run that takes long (its step budget ends it anyway).
pub struct Interruption {
    /// Raised by either signal.
    pub flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The number of the last signal caught.
    caught: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// A signal that stopped the runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signal {
    pub number: i32,
    pub name: &'static str,
}

impl Interruption {
    /// Installs the handlers for SIGINT and SIGTERM.
    pub fn install() -> Result<Interruption> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        let stop = Interruption {
            flag: Default::default(),
            caught: Default::default(),
        };
        for sig in [SIGINT, SIGTERM] {
            let failed = || format!("cannot catch signal {sig}");
            flag::register_conditional_shutdown(sig, 128 + sig, stop.flag.clone())
                .with_context(failed)?;
            flag::register(sig, stop.flag.clone()).with_context(failed)?;
            flag::register_usize(sig, stop.caught.clone(), sig as usize).with_context(failed)?;
        }
        Ok(stop)
    }

    /// The signal caught (SIGINT unless SIGTERM was).
    pub fn signal(&self) -> Signal {
        use signal_hook::consts::{SIGINT, SIGTERM};
        match self.caught.load(std::sync::atomic::Ordering::Relaxed) as i32 {
            SIGTERM => Signal {
                number: SIGTERM,
                name: "SIGTERM",
            },
            _ => Signal {
                number: SIGINT,
                name: "SIGINT",
            },
        }
    }
}

/// `xdp-runner run` stopped by a signal before all its runs: the error that makes
/// the exit status 128 + the signal number.
#[derive(Debug)]
pub struct Interrupted {
    pub signal: Signal,
    pub runs: u64,
    pub repeat: u64,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "interrupted by {} after {} of {} runs",
            self.signal.name, self.runs, self.repeat
        )
    }
}

impl std::error::Error for Interrupted {}

#[cfg(test)]
mod tests {
    use super::capture_kind;

    #[test]
    fn captures_are_told_from_frames() {
        // A classic pcap header (microseconds, little-endian) as tcpdump writes it.
        let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        pcap.extend([0; 8]);
        pcap.extend([0xff, 0xff, 0, 0, 1, 0, 0, 0]);
        assert_eq!(capture_kind(&pcap), Some("pcap"));
        // Big-endian, nanoseconds.
        let mut be = vec![0xa1, 0xb2, 0x3c, 0x4d, 0, 2, 0, 4];
        be.extend([0; 16]);
        assert_eq!(capture_kind(&be), Some("pcap"));
        // pcapng: a section header block with its byte-order magic.
        let ng = [
            0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0,
        ];
        assert_eq!(capture_kind(&ng), Some("pcapng"));
        // A frame whose destination MAC happens to start like the magic, but whose
        // next bytes are a MAC rather than a version, is a frame.
        let mut frame = vec![0xd4, 0xc3, 0xb2, 0xa1, 0x00, 0x01, 0x02, 0x03];
        frame.extend([0u8; 60]);
        assert_eq!(capture_kind(&frame), None);
        assert_eq!(capture_kind(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0]), None);
    }
}
