//! The loader: clang-compiled BPF ELF objects in, programs, map specs, global
//! data and relocated instructions out.
//!
//! Bytes in, data out: no syscalls, no mmap, no unsafe code. [`Object::parse`]
//! follows libbpf's rules for what is a program, a map and a relocation, and
//! produces instructions that need no ELF knowledge to run:
//!
//! - `lddw` of a map: `src = BPF_PSEUDO_MAP_IDX`, `imm = map index`;
//! - `lddw` of global data: `src = BPF_PSEUDO_MAP_IDX_VALUE`, `imm = map index`,
//!   second slot `imm = offset in the value`;
//! - calls of `.text` functions and `BPF_PSEUDO_FUNC` addresses: `imm` is the
//!   offset relative to the next slot in the linked program, whose subprograms
//!   follow the entry function in libbpf's order.
#![forbid(unsafe_code)]

pub mod btf;
pub mod btf_ext;
mod elf;
pub mod error;
mod link;
mod maps;

pub use btf::Btf;
pub use btf_ext::BtfExt;
pub use elf::EM_BPF;
pub use error::{BtfError, ParseError, RelocError};
pub use maps::{BPF_F_MMAPABLE, BPF_F_RDONLY_PROG};

/// A parsed BPF object file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Contents of the `license` section up to the first NUL; "" when absent.
    pub license: String,
    pub programs: Vec<Program>,
    /// Index = the map index used in relocated `lddw` instructions.
    pub maps: Vec<MapSpec>,
    pub btf: Option<Btf>,
    pub btf_ext: Option<BtfExt>,
}

/// One entry program, linked with its subprograms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Function (symbol) name.
    pub name: String,
    /// ELF section name, e.g. "xdp", "xdp.frags", "xdp/foo", "tc".
    pub section: String,
    pub prog_type: ProgramType,
    /// Section `xdp.frags` or `xdp.frags/...`.
    pub frags: bool,
    /// The entry function followed by every subprogram it reaches, relocated.
    pub insns: Vec<isa::RawInsn>,
    /// Where each function sits in `insns`, entry first.
    pub subprogs: Vec<Subprog>,
}

/// A function inside a linked program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subprog {
    pub name: String,
    /// First slot in [`Program::insns`].
    pub start: usize,
    /// Length in slots.
    pub len: usize,
}

/// Program type, from the section name as libbpf maps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramType {
    /// `xdp`, `xdp.frags`, `xdp/...`, `xdp.frags/...`.
    Xdp,
    /// Another kind libbpf knows, by its libbpf name ("sched_cls", "kprobe", ...).
    Other(String),
    /// A section name libbpf does not recognise.
    Unknown,
}

/// What a map is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    /// A map defined in `maps` or `.maps`.
    Regular,
    /// `.bss`, `.bss.*`.
    Bss,
    /// `.data`, `.data.*`.
    Data,
    /// `.rodata`, `.rodata.*` (including string literals, `.rodata.str1.1`).
    Rodata,
}

/// A map to create before the programs run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSpec {
    /// Symbol name, or the section name for global data (".bss", ".rodata.str1.1", ...).
    pub name: String,
    /// Kernel `BPF_MAP_TYPE_*` value.
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    /// Global data: `BPF_F_MMAPABLE` when the section has a non-static variable,
    /// plus `BPF_F_RDONLY_PROG` for `.rodata*`, as libbpf sets them.
    pub map_flags: u32,
    pub kind: MapKind,
    /// Global data contents (zeros of the section size for `.bss`).
    pub initial_data: Option<Vec<u8>>,
    /// 0 when absent. For global data the value type is the section's DATASEC.
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    pub pinning: u32,
    /// Inner map definition of an array/hash of maps, when given with `__array(values, ...)`.
    pub inner: Option<Box<MapSpec>>,
    /// ELF section of the definition, and the symbol's byte offset in it.
    pub section: String,
    pub symbol_offset: u64,
}

impl Object {
    /// Parses an object file. No side effects; every malformed input gives an
    /// error, never a panic.
    pub fn parse(bytes: &[u8]) -> Result<Object, ParseError> {
        let elf = elf::Elf::parse(bytes)?;

        let license = match elf.section_by_name("license") {
            Some(i) => {
                let data = elf.sections[i].data;
                let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                String::from_utf8_lossy(&data[..end]).into_owned()
            }
            None => String::new(),
        };

        let btf = match elf.section_by_name(".BTF") {
            Some(i) => Some(Btf::parse(elf.sections[i].data)?),
            None => None,
        };
        let btf_ext = match (&btf, elf.section_by_name(".BTF.ext")) {
            (Some(btf), Some(i)) => Some(BtfExt::parse(elf.sections[i].data, btf)?),
            _ => None,
        };
        if let Some((section, relo)) = btf_ext.as_ref().and_then(|e| e.first_core_relo()) {
            return Err(RelocError::CoreRelocation {
                section: section.to_string(),
                insn_index: (relo.insn_off / 8) as usize,
                kind: relo.kind,
            }
            .into());
        }

        let (maps, sites) = maps::collect(&elf, btf.as_ref())?;
        let programs = link::build_programs(&elf, &maps, &sites)?;
        Ok(Object {
            license,
            programs,
            maps,
            btf,
            btf_ext,
        })
    }

    /// The program with this function name, else the first one in this section.
    pub fn program(&self, name: &str) -> Option<&Program> {
        self.programs
            .iter()
            .find(|p| p.name == name)
            .or_else(|| self.programs.iter().find(|p| p.section == name))
    }

    /// Index of the map with this name (the index relocated `lddw`s carry).
    pub fn map_index(&self, name: &str) -> Option<usize> {
        self.maps.iter().position(|m| m.name == name)
    }
}

/// Program type and `frags` flag of a section name, by libbpf's section table.
pub fn program_type(section: &str) -> (ProgramType, bool) {
    let is = |base: &str| {
        section == base
            || section
                .strip_prefix(base)
                .is_some_and(|r| r.starts_with('/'))
    };
    if is("xdp.frags") {
        return (ProgramType::Xdp, true);
    }
    if is("xdp") {
        return (ProgramType::Xdp, false);
    }
    const TABLE: &[(&str, &str)] = &[
        ("tc", "sched_cls"),
        ("classifier", "sched_cls"),
        ("tcx/", "sched_cls"),
        ("tc/", "sched_cls"),
        ("action", "sched_act"),
        ("socket", "socket_filter"),
        ("kprobe/", "kprobe"),
        ("kretprobe/", "kprobe"),
        ("uprobe", "kprobe"),
        ("uretprobe", "kprobe"),
        ("tracepoint/", "tracepoint"),
        ("tp/", "tracepoint"),
        ("raw_tracepoint/", "raw_tracepoint"),
        ("raw_tp/", "raw_tracepoint"),
        ("tp_btf/", "tracing"),
        ("fentry/", "tracing"),
        ("fexit/", "tracing"),
        ("fmod_ret/", "tracing"),
        ("iter/", "tracing"),
        ("lsm/", "lsm"),
        ("perf_event", "perf_event"),
        ("cgroup_skb/", "cgroup_skb"),
        ("cgroup/", "cgroup"),
        ("sockops", "sock_ops"),
        ("sk_skb", "sk_skb"),
        ("sk_msg", "sk_msg"),
        ("lwt_in", "lwt_in"),
        ("lwt_out", "lwt_out"),
        ("lwt_xmit", "lwt_xmit"),
        ("flow_dissector", "flow_dissector"),
        ("sk_lookup", "sk_lookup"),
        ("struct_ops", "struct_ops"),
        ("syscall", "syscall"),
        ("netfilter", "netfilter"),
    ];
    for (prefix, name) in TABLE {
        let hit = if prefix.ends_with('/') {
            section.starts_with(prefix)
        } else {
            is(prefix) || section.starts_with(prefix)
        };
        if hit {
            return (ProgramType::Other((*name).to_string()), false);
        }
    }
    (ProgramType::Unknown, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_types_by_section() {
        assert_eq!(program_type("xdp"), (ProgramType::Xdp, false));
        assert_eq!(program_type("xdp/foo"), (ProgramType::Xdp, false));
        assert_eq!(program_type("xdp.frags"), (ProgramType::Xdp, true));
        assert_eq!(program_type("xdp.frags/devmap"), (ProgramType::Xdp, true));
        assert_eq!(program_type("xdpfoo"), (ProgramType::Unknown, false));
        assert_eq!(
            program_type("tc"),
            (ProgramType::Other("sched_cls".into()), false)
        );
        assert_eq!(
            program_type("classifier/x"),
            (ProgramType::Other("sched_cls".into()), false)
        );
        assert_eq!(
            program_type("kprobe/sys_open"),
            (ProgramType::Other("kprobe".into()), false)
        );
        assert_eq!(program_type("nothing_known"), (ProgramType::Unknown, false));
    }

    #[test]
    fn rejects_non_elf_inputs() {
        assert_eq!(
            Object::parse(b""),
            Err(ParseError::NotElf {
                reason: "missing ELF magic"
            })
        );
        assert_eq!(
            Object::parse(b"hello world, not elf"),
            Err(ParseError::NotElf {
                reason: "missing ELF magic"
            })
        );
        let mut hdr = [0u8; 64];
        hdr[..4].copy_from_slice(b"\x7fELF");
        hdr[4] = 1;
        hdr[5] = 1;
        assert_eq!(Object::parse(&hdr), Err(ParseError::Not64Bit { class: 1 }));
        hdr[4] = 2;
        hdr[5] = 2;
        assert_eq!(
            Object::parse(&hdr),
            Err(ParseError::NotLittleEndian { data: 2 })
        );
        hdr[5] = 1;
        // version 0 is unsupported by the object crate
        assert!(matches!(
            Object::parse(&hdr),
            Err(ParseError::CorruptElf { .. })
        ));
        hdr[6] = 1;
        hdr[18] = 62; // EM_X86_64
        assert_eq!(Object::parse(&hdr), Err(ParseError::NotBpf { machine: 62 }));
        hdr[18] = 247;
        // A bare header with no sections parses to an empty object.
        let obj = Object::parse(&hdr).unwrap();
        assert!(obj.programs.is_empty() && obj.maps.is_empty());
        assert_eq!(obj.license, "");
        // Truncated header
        assert!(Object::parse(&hdr[..40]).is_err());
    }
}
