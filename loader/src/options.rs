//! Load options, as libbpf offers them between open and load: the target BTF
//! for CO-RE, program types for section names libbpf does not know, which
//! programs to load, map sizes and `.rodata` values.
//!
//! The target BTF is, in order: [`LoadOptions::target_btf`] when given, else
//! the file at [`LoadOptions::system_btf`] (by default
//! `/sys/kernel/btf/vmlinux`), read and parsed only when the object has a CO-RE
//! relocation that needs a target, and then cached for the process. An
//! unreadable system file counts as absent; a CO-RE relocation then fails with
//! [`crate::RelocError::CoreNoTarget`] naming it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use object::{Object as _, ObjectSection as _};

use crate::btf::{Btf, BTF_MAGIC};
use crate::error::ParseError;
use crate::ProgramType;

/// Where the running kernel publishes its BTF.
pub const SYSTEM_BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

/// Options for [`crate::Object::parse_with`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Target BTF for CO-RE relocations (`--btf FILE`, see [`target_btf_from_bytes`]).
    pub target_btf: Option<Btf>,
    /// Used when `target_btf` is `None`: a BTF file read lazily, only when a
    /// CO-RE relocation needs it. Default: `Some("/sys/kernel/btf/vmlinux")`.
    pub system_btf: Option<PathBuf>,
    /// Program types forced by program (function) name or section name, for
    /// sections libbpf does not recognise (`SEC("foo")` loaded as XDP).
    pub program_types: Vec<(String, ProgramType)>,
    /// Which programs to load; the others are left out of
    /// [`crate::Object::programs`] and their errors (unsupported relocations,
    /// kfuncs, CO-RE) are ignored unless a loaded program reaches the code.
    pub programs: ProgramFilter,
    /// `max_entries` of maps by name, set before creation (`--map-size NAME=N`).
    pub max_entries: Vec<(String, u32)>,
    /// `.rodata` variables by name, set before load (`--rodata SYM=HEX`); the
    /// value must have the variable's exact size.
    pub rodata: Vec<(String, Vec<u8>)>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            target_btf: None,
            system_btf: Some(PathBuf::from(SYSTEM_BTF_PATH)),
            program_types: Vec::new(),
            programs: ProgramFilter::All,
            max_entries: Vec::new(),
            rodata: Vec::new(),
        }
    }
}

impl LoadOptions {
    /// Defaults, but no target BTF at all: CO-RE relocations other than
    /// `TYPE_ID_LOCAL` fail with [`crate::RelocError::CoreNoTarget`].
    pub fn without_target_btf() -> Self {
        LoadOptions {
            system_btf: None,
            ..LoadOptions::default()
        }
    }

    /// Defaults with this target BTF.
    pub fn with_target_btf(btf: Btf) -> Self {
        LoadOptions {
            target_btf: Some(btf),
            ..LoadOptions::default()
        }
    }
}

/// Which programs of an object to load (libbpf's `bpf_program__set_autoload`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProgramFilter {
    /// Every program (libbpf's default).
    #[default]
    All,
    /// Only these programs, by function name or section name.
    Named(Vec<String>),
    /// Only programs of these types (after [`LoadOptions::program_types`]).
    Types(Vec<ProgramType>),
}

impl ProgramType {
    /// The type for a `--type` name: "xdp" is [`ProgramType::Xdp`], any other
    /// name is [`ProgramType::Other`] (libbpf's names, e.g. "sched_cls").
    pub fn from_name(name: &str) -> ProgramType {
        match name {
            "xdp" => ProgramType::Xdp,
            other => ProgramType::Other(other.to_string()),
        }
    }
}

/// A target BTF from a file's bytes: raw BTF (as `/sys/kernel/btf/vmlinux`)
/// or an ELF file with a `.BTF` section (a vmlinux image, a `.o`).
pub fn target_btf_from_bytes(bytes: &[u8]) -> Result<Btf, String> {
    if bytes.len() >= 2 && u16::from_le_bytes([bytes[0], bytes[1]]) == BTF_MAGIC {
        return Btf::parse(bytes).map_err(|e| e.to_string());
    }
    if bytes.starts_with(b"\x7fELF") {
        let file = object::File::parse(bytes).map_err(|e| format!("ELF: {e}"))?;
        let sec = file
            .section_by_name(".BTF")
            .ok_or("ELF file has no .BTF section")?;
        let data = sec.data().map_err(|e| format!("ELF .BTF: {e}"))?;
        return Btf::parse(data).map_err(|e| e.to_string());
    }
    Err("neither raw BTF nor an ELF file".into())
}

/// Reads and parses a target BTF file (see [`target_btf_from_bytes`]).
pub fn read_target_btf(path: &Path) -> Result<Btf, ParseError> {
    let bad = |reason: String| ParseError::TargetBtf {
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    target_btf_from_bytes(&bytes).map_err(bad)
}

type Cache = Mutex<HashMap<PathBuf, Arc<Btf>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The system BTF at `path`, parsed once per process. `Ok(None)` when the
/// file cannot be read (absent, no permission); an error when it is read but
/// does not parse.
pub fn system_btf(path: &Path) -> Result<Option<Arc<Btf>>, ParseError> {
    if let Some(btf) = cache().lock().ok().and_then(|c| c.get(path).cloned()) {
        return Ok(Some(btf));
    }
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(None);
    };
    let btf = target_btf_from_bytes(&bytes).map_err(|reason| ParseError::TargetBtf {
        path: path.display().to_string(),
        reason,
    })?;
    let btf = Arc::new(btf);
    if let Ok(mut c) = cache().lock() {
        c.insert(path.to_path_buf(), btf.clone());
    }
    Ok(Some(btf))
}

/// The target BTF of one parse, loaded on first use.
pub(crate) struct TargetSource<'o> {
    opts: &'o LoadOptions,
    loaded: Option<Option<Arc<Btf>>>,
}

impl<'o> TargetSource<'o> {
    pub(crate) fn new(opts: &'o LoadOptions) -> Self {
        TargetSource { opts, loaded: None }
    }

    /// The target BTF, or `Err(why)` naming why there is none.
    pub(crate) fn get(&mut self) -> Result<Result<&Btf, String>, ParseError> {
        if let Some(btf) = &self.opts.target_btf {
            return Ok(Ok(btf));
        }
        let Some(path) = &self.opts.system_btf else {
            return Ok(Err("no BTF file was given".into()));
        };
        if self.loaded.is_none() {
            self.loaded = Some(system_btf(path)?);
        }
        match self.loaded.as_ref().and_then(|b| b.as_deref()) {
            Some(btf) => Ok(Ok(btf)),
            None => Ok(Err(format!(
                "{} is not readable and no BTF file was given",
                path.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::tests::blob;

    #[test]
    fn target_btf_from_raw_elf_and_garbage() {
        let raw = blob(&[], b"\0");
        assert!(target_btf_from_bytes(&raw).is_ok());
        let elf = include_bytes!("../../bpf-progs/loader/maps.v2.o");
        let from_elf = target_btf_from_bytes(elf).unwrap();
        assert!(from_elf.len() > 1);
        assert!(target_btf_from_bytes(b"hello").is_err());
        assert!(target_btf_from_bytes(&raw[..10]).is_err());
        let legacy = include_bytes!("../../bpf-progs/loader/legacy.v2.o");
        // legacy.c is built with -g, so it has .BTF too; cut the magic to
        // check an ELF without one is refused.
        let mut no_btf = legacy.to_vec();
        let file = object::File::parse(&legacy[..]).unwrap();
        let (off, _) = file.section_by_name(".BTF").unwrap().file_range().unwrap();
        no_btf[off as usize] ^= 0xff;
        assert!(target_btf_from_bytes(&no_btf).is_err());
    }

    #[test]
    fn missing_system_btf_is_absent_not_an_error() {
        let opts = LoadOptions {
            system_btf: Some(PathBuf::from("/nonexistent/vmlinux")),
            ..LoadOptions::default()
        };
        let mut src = TargetSource::new(&opts);
        let why = src.get().unwrap().unwrap_err();
        assert!(why.contains("/nonexistent/vmlinux"), "{why}");
        let none = LoadOptions::without_target_btf();
        let mut src = TargetSource::new(&none);
        assert!(src.get().unwrap().is_err());
    }

    #[test]
    fn unparsable_system_btf_is_an_error() {
        let path = std::env::temp_dir().join(format!("loader-bad-btf-{}", std::process::id()));
        std::fs::write(&path, b"not btf").unwrap();
        let r = system_btf(&path);
        let _ = std::fs::remove_file(&path);
        assert!(matches!(r, Err(ParseError::TargetBtf { .. })));
    }

    #[test]
    fn type_names() {
        assert_eq!(ProgramType::from_name("xdp"), ProgramType::Xdp);
        assert_eq!(
            ProgramType::from_name("sched_cls"),
            ProgramType::Other("sched_cls".into())
        );
    }
}
