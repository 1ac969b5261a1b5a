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
//!   follow the entry function in libbpf's order;
//! - CO-RE relocations resolved against a target BTF ([`core`]), with
//!   libbpf's poisoning of unsatisfiable ones (see [`Program::core_poisoned`]).
//!
//! [`Object::parse_with`] takes libbpf's pre-load options ([`LoadOptions`]):
//! the CO-RE target BTF, forced program types, which programs to load, map
//! sizes and `.rodata` values. [`Object::parse`] uses the defaults, so CO-RE
//! relocations resolve against `/sys/kernel/btf/vmlinux` when it is readable
//! (read lazily, only for objects that need it, and cached per process).
#![forbid(unsafe_code)]

pub mod btf;
pub mod btf_ext;
pub mod core;
mod elf;
pub mod error;
mod link;
mod maps;
pub mod options;

pub use crate::core::CoreReloKind;
pub use btf::Btf;
pub use btf_ext::BtfExt;
pub use elf::EM_BPF;
pub use error::{BtfError, CoreError, OptionError, ParseError, RelocError};
pub use maps::{BPF_F_MMAPABLE, BPF_F_RDONLY_PROG};
pub use options::{LoadOptions, ProgramFilter, SYSTEM_BTF_PATH};

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
    /// The `.BTF` section as libbpf hands it to the kernel: the file's bytes with
    /// the DATASEC size and variable offsets of each global data map filled in and
    /// its variables sorted by offset (libbpf's `btf_fixup_datasec`). For
    /// `BPF_BTF_LOAD`-style registration, e.g. in a store. `None` without BTF.
    pub btf_raw: Option<Vec<u8>>,
    /// Global variables of the global data maps (`.rodata`, `.data`, `.bss`),
    /// from the BTF DATASECs, or from ELF symbols when there is no BTF.
    pub globals: Vec<GlobalVar>,
    /// Every CO-RE relocation applied, in `.BTF.ext` order.
    pub core_relocations: Vec<CoreRelocation>,
}

/// A global variable: `size` bytes at `offset` in the value of map `map`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalVar {
    pub name: String,
    /// Index in [`Object::maps`].
    pub map: usize,
    pub offset: u32,
    pub size: u32,
}

/// One applied CO-RE relocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreRelocation {
    /// ELF section and instruction slot in it (before linking).
    pub section: String,
    pub insn_index: usize,
    pub kind: CoreReloKind,
    /// The local side, e.g. "struct iphdr.ttl (0:6 @ offset 8)".
    pub spec: String,
    /// The target type it resolved against; 0 when none matched.
    pub target_type_id: u32,
    /// The compiler's value and the target's.
    pub orig_val: u64,
    pub new_val: u64,
    /// The instruction became `call 0xbad2310` (see [`core::POISON_HELPER_ID`]).
    pub poisoned: bool,
}

/// An instruction poisoned by an unsatisfiable CO-RE relocation, as libbpf
/// does: `call 0xbad2310`. The kernel accepts the program only if the
/// instruction is dead code; a runtime reaching it should report `relocation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoisonedInsn {
    /// Index in [`Program::insns`].
    pub insn: usize,
    /// Which relocation, and why it failed.
    pub relocation: String,
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
    /// Instructions poisoned by CO-RE relocations that found no target.
    pub core_poisoned: Vec<PoisonedInsn>,
    /// Calls of kernel functions (`extern ... __ksym` functions), in slot order:
    /// each is a `call` with src = `BPF_PSEUDO_KFUNC_CALL` and imm 0, which whoever
    /// runs the program resolves by name (as libbpf resolves them against the
    /// kernel's BTF).
    pub kfuncs: Vec<KfuncCall>,
}

/// A call of a kernel function (kfunc) inside a linked program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KfuncCall {
    /// Slot of the `call` in [`Program::insns`].
    pub insn: usize,
    /// The function's name (its extern symbol).
    pub name: String,
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
    /// `BPF_MAP_CREATE`'s map_extra (`__uint(map_extra, N)` of a BTF definition: a
    /// bloom filter's number of hash functions); 0 when absent.
    pub map_extra: u64,
    pub kind: MapKind,
    /// Global data contents (zeros of the section size for `.bss`).
    pub initial_data: Option<Vec<u8>>,
    /// 0 when absent. For global data the value type is the section's DATASEC.
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    pub pinning: u32,
    /// Inner map definition of an array/hash of maps, when given with `__array(values, ...)`.
    pub inner: Option<Box<MapSpec>>,
    /// Initial slots of a BTF-defined array/hash of maps or prog_array, from
    /// `.values = { [i] = &x }` (libbpf's `init_slots`): `(slot, target)`,
    /// sorted by slot, one per slot. The slot is the key written (a hash of
    /// maps' key); empty slots are absent.
    pub init_slots: Vec<(u32, SlotTarget)>,
    /// ELF section of the definition, and the symbol's byte offset in it.
    pub section: String,
    pub symbol_offset: u64,
}

/// What an initial slot of a map ([`MapSpec::init_slots`]) holds once the
/// maps and programs exist: libbpf writes the inner map's or the program's fd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotTarget {
    /// An array/hash of maps slot: the inner map, by index in [`Object::maps`].
    Map(usize),
    /// A prog_array slot: the entry program (tail-call target), by function name.
    Program(String),
}

impl Object {
    /// Parses an object file with the default [`LoadOptions`]: every program,
    /// CO-RE relocations against `/sys/kernel/btf/vmlinux` when readable.
    /// Every malformed input gives an error, never a panic.
    pub fn parse(bytes: &[u8]) -> Result<Object, ParseError> {
        Object::parse_with(bytes, &LoadOptions::default())
    }

    /// Parses an object file, applying `opts` as libbpf applies its options
    /// between open and load. The only side effect is reading the system BTF
    /// file when a CO-RE relocation needs it and no target BTF is given.
    pub fn parse_with(bytes: &[u8], opts: &LoadOptions) -> Result<Object, ParseError> {
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

        let (maps, sites) = maps::collect(&elf, btf.as_ref())?;
        let (programs, core_relocations) =
            link::build_programs(&elf, &maps, &sites, btf.as_ref(), btf_ext.as_ref(), opts)?;
        let globals = global_vars(&elf, btf.as_ref(), &maps, &sites);
        let btf_raw = match (elf.section_by_name(".BTF"), &btf) {
            (Some(i), Some(b)) => Some(fixup_datasecs(elf.sections[i].data, b, &maps, &globals)),
            _ => None,
        };
        let mut obj = Object {
            license,
            programs,
            maps,
            btf,
            btf_ext,
            btf_raw,
            globals,
            core_relocations,
        };
        for (name, n) in &opts.max_entries {
            obj.set_max_entries(name, *n)?;
        }
        for (sym, value) in &opts.rodata {
            obj.set_rodata(sym, value)?;
        }
        Ok(obj)
    }

    /// Sets a map's `max_entries` before it is created (libbpf's
    /// `bpf_map__set_max_entries`). Global data maps always hold one entry.
    pub fn set_max_entries(&mut self, map: &str, n: u32) -> Result<(), OptionError> {
        let available = || {
            let names: Vec<&str> = self.maps.iter().map(|m| m.name.as_str()).collect();
            names.join(", ")
        };
        let Some(i) = self.map_index(map) else {
            return Err(OptionError::NoSuchMap {
                name: map.to_string(),
                available: available(),
            });
        };
        let spec = &mut self.maps[i];
        if spec.kind != MapKind::Regular {
            return Err(OptionError::NotRegularMap {
                name: map.to_string(),
            });
        }
        spec.max_entries = n;
        Ok(())
    }

    /// Sets a `.rodata` variable before load, as a libbpf skeleton does
    /// through `skel->rodata->sym`; `bytes` must have the variable's size.
    /// When several variables share the name (statics in different
    /// sections), the first in [`Object::globals`] order is set.
    pub fn set_rodata(&mut self, sym: &str, bytes: &[u8]) -> Result<(), OptionError> {
        self.set_global_in(sym, bytes, true)
    }

    /// Sets the initial value of any global variable (`.rodata`, `.data`,
    /// `.bss`): the first of that name in [`Object::globals`] order.
    pub fn set_global(&mut self, sym: &str, bytes: &[u8]) -> Result<(), OptionError> {
        self.set_global_in(sym, bytes, false)
    }

    fn set_global_in(&mut self, sym: &str, bytes: &[u8], rodata: bool) -> Result<(), OptionError> {
        let is_rodata = |g: &GlobalVar| self.maps[g.map].kind == MapKind::Rodata;
        let found = self
            .globals
            .iter()
            .filter(|g| g.name == sym)
            .find(|g| !rodata || is_rodata(g))
            .or_else(|| self.globals.iter().find(|g| g.name == sym));
        let Some(var) = found.cloned() else {
            return Err(OptionError::NoSuchVariable {
                name: sym.to_string(),
            });
        };
        if rodata && !is_rodata(&var) {
            return Err(OptionError::NotRodata {
                name: sym.to_string(),
                section: self.maps[var.map].name.clone(),
            });
        }
        if bytes.len() != var.size as usize {
            return Err(OptionError::SizeMismatch {
                name: sym.to_string(),
                expected: var.size,
                got: bytes.len(),
            });
        }
        let start = var.offset as usize;
        let dst = self.maps[var.map]
            .initial_data
            .as_mut()
            .and_then(|d| d.get_mut(start..start + bytes.len()))
            .ok_or_else(|| OptionError::NoSuchVariable {
                name: sym.to_string(),
            })?;
        dst.copy_from_slice(bytes);
        Ok(())
    }

    /// Forces the type of a program (by function or section name) after
    /// parsing; [`LoadOptions::program_types`] does it before linking.
    pub fn set_program_type(&mut self, prog: &str, ty: ProgramType) -> Result<(), OptionError> {
        let idx = self
            .programs
            .iter()
            .position(|p| p.name == prog)
            .or_else(|| self.programs.iter().position(|p| p.section == prog));
        let Some(i) = idx else {
            let names: Vec<&str> = self.programs.iter().map(|p| p.name.as_str()).collect();
            return Err(OptionError::NoSuchProgram {
                name: prog.to_string(),
                available: names.join(", "),
            });
        };
        let p = &mut self.programs[i];
        if ty != ProgramType::Xdp {
            p.frags = false;
        }
        p.prog_type = ty;
        Ok(())
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

/// The variables of each global data map: from its DATASEC when the object
/// has BTF (what libbpf skeletons use), else from the ELF symbols.
fn global_vars(
    elf: &elf::Elf,
    btf: Option<&Btf>,
    maps: &[MapSpec],
    sites: &[maps::MapSite],
) -> Vec<GlobalVar> {
    let mut out = Vec::new();
    for (i, (m, site)) in maps.iter().zip(sites).enumerate() {
        if m.kind == MapKind::Regular {
            continue;
        }
        let datasec = btf.and_then(|b| Some((b, b.type_by_id(m.btf_value_type_id).ok()?)));
        if let (true, Some((b, t))) = (m.btf_value_type_id != 0, datasec) {
            if let btf::BtfKind::Datasec { vars, .. } = &t.kind {
                for v in vars {
                    let name = b.type_name(v.type_id).unwrap_or("");
                    if name.is_empty() {
                        continue;
                    }
                    // clang leaves DATASEC offsets for the loader to fill in
                    // from the symbol table (libbpf's btf_fixup_datasec).
                    let offset = elf
                        .symbols
                        .iter()
                        .find(|s| s.shndx as usize == site.section && s.name == name)
                        .map_or(u64::from(v.offset), |s| s.value);
                    let fits = offset
                        .checked_add(u64::from(v.size))
                        .is_some_and(|end| end <= u64::from(m.value_size));
                    if fits {
                        out.push(GlobalVar {
                            name: name.to_string(),
                            map: i,
                            offset: offset as u32,
                            size: v.size,
                        });
                    }
                }
                continue;
            }
        }
        for sym in &elf.symbols {
            let fits = sym
                .value
                .checked_add(sym.size)
                .is_some_and(|end| end <= u64::from(m.value_size));
            if sym.shndx as usize == site.section
                && sym.st_type == object::elf::STT_OBJECT
                && sym.size > 0
                && fits
                && !sym.name.is_empty()
            {
                out.push(GlobalVar {
                    name: sym.name.clone(),
                    map: i,
                    offset: sym.value as u32,
                    size: sym.size as u32,
                });
            }
        }
    }
    out
}

/// `raw` (a `.BTF` section that parsed as `btf`) with the DATASEC of every global
/// data map fixed as libbpf's `btf_fixup_datasec` fixes it: size = the map's value
/// size, each variable's offset from [`Object::globals`], variables sorted by offset.
fn fixup_datasecs(raw: &[u8], btf: &Btf, maps: &[MapSpec], globals: &[GlobalVar]) -> Vec<u8> {
    let mut out = raw.to_vec();
    let word = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            b.get(at..at.checked_add(4)?)?.try_into().ok()?,
        ))
    };
    // Byte offset of each type record (index = type id - 1), walking the type section.
    let (Some(hdr_len), Some(type_off), Some(type_len)) =
        (word(raw, 4), word(raw, 8), word(raw, 12))
    else {
        return out;
    };
    let start = hdr_len as usize + type_off as usize;
    let end = start.saturating_add(type_len as usize).min(raw.len());
    let mut records = Vec::with_capacity(btf.len());
    let mut at = start;
    while at + 12 <= end {
        let Some(info) = word(raw, at + 4) else { break };
        let vlen = (info & 0xffff) as usize;
        let extra = match (info >> 24) & 0x1f {
            btf::BTF_KIND_INT | btf::BTF_KIND_VAR | btf::BTF_KIND_DECL_TAG => 4,
            btf::BTF_KIND_ARRAY => 12,
            btf::BTF_KIND_STRUCT | btf::BTF_KIND_UNION | btf::BTF_KIND_DATASEC => 12 * vlen,
            btf::BTF_KIND_ENUM | btf::BTF_KIND_FUNC_PROTO => 8 * vlen,
            btf::BTF_KIND_ENUM64 => 12 * vlen,
            _ => 0,
        };
        records.push(at);
        at += 12 + extra;
    }
    for (i, m) in maps.iter().enumerate() {
        if m.kind == MapKind::Regular || m.btf_value_type_id == 0 {
            continue;
        }
        let Some(&rec) = records.get(m.btf_value_type_id as usize - 1) else {
            continue;
        };
        let Ok(btf::BtfType {
            kind: btf::BtfKind::Datasec { vars, .. },
            ..
        }) = btf.type_by_id(m.btf_value_type_id)
        else {
            continue;
        };
        let mut infos: Vec<btf::BtfVarSecinfo> = vars.clone();
        for v in &mut infos {
            let name = btf.type_name(v.type_id).unwrap_or("");
            if let Some(g) = globals.iter().find(|g| g.map == i && g.name == name) {
                v.offset = g.offset;
            }
        }
        infos.sort_by_key(|v| v.offset);
        let mut bytes = m.value_size.to_le_bytes().to_vec();
        for v in &infos {
            for w in [v.type_id, v.offset, v.size] {
                bytes.extend_from_slice(&w.to_le_bytes());
            }
        }
        if let Some(dst) = out.get_mut(rec + 8..rec + 12 + 12 * infos.len()) {
            dst.copy_from_slice(&bytes);
        }
    }
    out
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
    fn btf_raw_has_datasecs_fixed_like_libbpf() {
        let obj = Object::parse(include_bytes!("../../bpf-progs/loader/globals.v2.o"))
            .expect("globals parses");
        let raw = obj.btf_raw.as_deref().expect("the object has BTF");
        let fixed = Btf::parse(raw).expect("the fixed section still parses");
        let secinfo = |name: &str| -> (u32, Vec<(String, u32, u32)>) {
            let id = fixed
                .find_by_name_kind(name, btf::BTF_KIND_DATASEC)
                .expect("datasec");
            let Ok(btf::BtfType {
                kind: btf::BtfKind::Datasec { size, vars },
                ..
            }) = fixed.type_by_id(id)
            else {
                panic!("{name} is no DATASEC")
            };
            let vars = vars
                .iter()
                .map(|v| {
                    (
                        fixed.type_name(v.type_id).unwrap_or("").to_string(),
                        v.offset,
                        v.size,
                    )
                })
                .collect();
            (*size, vars)
        };
        // Sizes and offsets as llvm-readelf shows the sections and symbols
        // (.bss: 0x2c bytes; bss_counter at 0, bss_array at 8, static_bss at 0x28).
        let (size, vars) = secinfo(".bss");
        assert_eq!(size, 0x2c);
        assert_eq!(
            vars,
            [
                ("bss_counter".to_string(), 0, 8),
                ("bss_array".to_string(), 8, 32),
                ("static_bss".to_string(), 0x28, 4)
            ]
        );
        let (size, vars) = secinfo(".data");
        assert_eq!(size, 0x18);
        assert_eq!(
            vars,
            [
                ("data_word".to_string(), 0, 4),
                ("data_pair".to_string(), 8, 16)
            ]
        );
        // Everything else is the file's section, byte for byte.
        let original = obj.btf.as_ref().expect("btf");
        assert_eq!(fixed.len(), original.len());
        assert_eq!(fixed.type_by_id(1), original.type_by_id(1));
    }

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
