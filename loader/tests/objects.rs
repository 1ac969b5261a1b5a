//! The loader against the clang-built fixtures in bpf-progs/loader/.
//!
//! Expected values come from the C sources and from ELF semantics read with
//! the `object` crate directly, never from the loader itself; `libbpf.rs`
//! compares with libbpf (through bpftool) and the kernel where available.

use std::path::PathBuf;

use isa::RawInsn;
use loader::{
    LoadOptions, MapKind, Object, ParseError, ProgramType, RelocError, BPF_F_MMAPABLE,
    BPF_F_RDONLY_PROG,
};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget, SymbolKind};

#[path = "objects/core.rs"]
mod core_relo;
#[path = "objects/libbpf.rs"]
mod libbpf;
#[path = "objects/options.rs"]
mod options;

const CPUS: [&str; 3] = ["v1", "v2", "v3"];

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bpf-progs/loader")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn all_fixtures() -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".o"))
        .collect();
    names.sort();
    assert!(names.len() >= 24, "fixtures missing: {names:?}");
    names
        .into_iter()
        .map(|n| (n.clone(), fixture(&n)))
        .collect()
}

fn parse(name: &str) -> Object {
    Object::parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

// ---------------------------------------------------------------------------
// An independent reading of the ELF file with the `object` crate.

struct Elf<'a> {
    file: object::File<'a>,
}

struct ElfReloc {
    offset: u64,
    /// Name of the symbol, or of the section for a section symbol.
    name: String,
    target_section: String,
    sym_value: u64,
}

impl<'a> Elf<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Elf {
            file: object::File::parse(bytes).unwrap(),
        }
    }

    fn section_data(&self, name: &str) -> &'a [u8] {
        self.file.section_by_name(name).unwrap().data().unwrap()
    }

    fn insns(&self, section: &str) -> Vec<RawInsn> {
        self.section_data(section)
            .chunks_exact(8)
            .map(|c| RawInsn::from_bytes(c.try_into().unwrap()))
            .collect()
    }

    /// (section, byte offset) of a function symbol.
    fn func(&self, name: &str) -> (String, u64) {
        let sym = self
            .file
            .symbols()
            .find(|s| s.kind() == SymbolKind::Text && s.name() == Ok(name))
            .unwrap_or_else(|| panic!("no function {name}"));
        let sec = self
            .file
            .section_by_index(sym.section_index().unwrap())
            .unwrap();
        (sec.name().unwrap().to_string(), sym.address())
    }

    /// Name of the function starting at `offset` in `section`.
    fn func_at(&self, section: &str, offset: u64) -> String {
        let idx = self.file.section_by_name(section).unwrap().index();
        self.file
            .symbols()
            .find(|s| {
                s.kind() == SymbolKind::Text
                    && s.section_index() == Some(idx)
                    && s.address() == offset
            })
            .unwrap_or_else(|| panic!("no function at {section}+{offset}"))
            .name()
            .unwrap()
            .to_string()
    }

    fn relocs(&self, section: &str) -> Vec<ElfReloc> {
        let sec = self.file.section_by_name(section).unwrap();
        sec.relocations()
            .map(|(offset, r)| {
                let RelocationTarget::Symbol(idx) = r.target() else {
                    panic!("unexpected target")
                };
                let sym = self.file.symbol_by_index(idx).unwrap();
                let target_section = match sym.section_index() {
                    Some(i) => self
                        .file
                        .section_by_index(i)
                        .unwrap()
                        .name()
                        .unwrap()
                        .to_string(),
                    None => String::new(),
                };
                let name = if sym.kind() == SymbolKind::Section {
                    target_section.clone()
                } else {
                    sym.name().unwrap().to_string()
                };
                ElfReloc {
                    offset,
                    name,
                    target_section,
                    sym_value: sym.address(),
                }
            })
            .collect()
    }
}

fn is_global_data(section: &str) -> bool {
    [".data", ".rodata", ".bss"]
        .iter()
        .any(|b| section == *b || section.starts_with(&format!("{b}.")))
}

/// Checks every program of `obj` against the ELF file: each function's slots
/// are the original ones except where a relocation or a call applies, and
/// those carry exactly the values the relocation semantics give.
fn check_linking(name: &str, bytes: &[u8], obj: &Object) {
    let elf = Elf::new(bytes);
    for p in &obj.programs {
        let total: usize = p.subprogs.iter().map(|s| s.len).sum();
        assert_eq!(
            total,
            p.insns.len(),
            "{name}/{}: subprogs cover the program",
            p.name
        );
        assert_eq!(p.subprogs[0].name, p.name);
        let mut next = 0;
        for s in &p.subprogs {
            assert_eq!(s.start, next, "{name}/{}: subprogs are contiguous", p.name);
            next += s.len;
            assert_eq!(
                p.subprogs.iter().filter(|o| o.name == s.name).count(),
                1,
                "{} appears once",
                s.name
            );
        }
        let target_of = |at: usize, imm: i32| -> &str {
            let t = (at as i64 + 1 + i64::from(imm)) as usize;
            let s = p.subprogs.iter().find(|s| s.start == t);
            &s.unwrap_or_else(|| panic!("{name}/{}: slot {at} targets {t}, no subprog", p.name))
                .name
        };
        for s in &p.subprogs {
            let (section, start) = elf.func(&s.name);
            let orig = elf.insns(&section);
            let first = (start / 8) as usize;
            let relocs = elf.relocs(&section);
            let mut changed = vec![false; s.len];
            for r in relocs
                .iter()
                .filter(|r| r.offset >= start && r.offset < start + 8 * s.len as u64)
            {
                let slot = ((r.offset - start) / 8) as usize;
                let at = s.start + slot;
                let (insn, o) = (p.insns[at], orig[first + slot]);
                changed[slot] = true;
                if r.target_section == ".maps" || r.target_section == "maps" {
                    assert_eq!(insn.src, 5, "{name}: map lddw src");
                    assert_eq!(
                        Some(insn.imm as usize),
                        obj.map_index(&r.name),
                        "{name}: map {}",
                        r.name
                    );
                    assert_eq!(p.insns[at + 1].imm, 0);
                    changed[slot + 1] = true;
                } else if is_global_data(&r.target_section) {
                    assert_eq!(insn.src, 6, "{name}: data lddw src");
                    assert_eq!(Some(insn.imm as usize), obj.map_index(&r.target_section));
                    assert_eq!(
                        i64::from(p.insns[at + 1].imm),
                        i64::from(o.imm) + r.sym_value as i64
                    );
                    changed[slot + 1] = true;
                } else if r.target_section.is_empty() && o.code == 0x85 {
                    // A kfunc call (an undefined symbol): recorded by name.
                    assert_eq!((insn.src, insn.imm), (2, 0), "{name}: kfunc call");
                    assert!(p.kfuncs.iter().any(|k| k.insn == at && k.name == r.name));
                } else if r.target_section == ".text" {
                    let callee_off = if o.code == 0x85 {
                        assert_eq!(insn.src, 1);
                        r.sym_value as i64 + 8 * (i64::from(o.imm) + 1)
                    } else {
                        assert_eq!(o.code, 0x18);
                        assert_eq!(insn.src, 4, "{name}: function address lddw src");
                        r.sym_value as i64 + i64::from(o.imm)
                    };
                    assert_eq!(
                        target_of(at, insn.imm),
                        elf.func_at(".text", callee_off as u64)
                    );
                } else {
                    panic!("{name}: unexpected relocation against {}", r.target_section);
                }
            }
            for slot in 0..s.len {
                let (insn, o) = (p.insns[s.start + slot], orig[first + slot]);
                if changed[slot] {
                    continue;
                }
                if o.code == 0x85 && o.src == 1 {
                    // A call inside its own section: imm relative to the original position.
                    let callee = (first + slot) as i64 + 1 + i64::from(o.imm);
                    assert_eq!(
                        target_of(s.start + slot, insn.imm),
                        elf.func_at(&section, 8 * callee as u64)
                    );
                } else {
                    assert_eq!(insn, o, "{name}/{}: slot {slot} unchanged", s.name);
                }
            }
        }
    }
}

#[test]
fn every_loadable_fixture_links_as_the_elf_says() {
    // Without a target BTF, so that CO-RE fixtures are refused and every
    // instruction of the others is the compiler's or a plain relocation.
    let mut checked = 0;
    for (name, bytes) in all_fixtures() {
        if let Ok(obj) = Object::parse_with(&bytes, &LoadOptions::without_target_btf()) {
            check_linking(&name, &bytes, &obj);
            checked += 1;
        }
    }
    assert_eq!(checked, 21, "seven fixtures per cpu version parse");
}

// ---------------------------------------------------------------------------
// BTF maps

#[test]
fn btf_maps_of_several_types() {
    for cpu in CPUS {
        let name = format!("maps.{cpu}.o");
        let bytes = fixture(&name);
        let obj = parse(&name);
        let elf = Elf::new(&bytes);
        assert_eq!(obj.license, "Dual MIT/GPL");
        let btf = obj.btf.as_ref().expect("BTF");
        let names: Vec<&str> = obj.maps.iter().map(|m| m.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            ["arr", "devs", "flows", "inner1", "jumps", "lru", "outer", "pcpu"]
        );
        let get = |n: &str| &obj.maps[obj.map_index(n).unwrap()];
        // (name, type, key, value, max_entries, flags) from maps.c
        let expect = [
            ("arr", 2, 4, 8, 16, 0),
            ("flows", 1, 8, 16, 1024, 1),
            ("pcpu", 6, 4, 32, 4, 0),
            ("lru", 9, 8, 4, 128, 0),
            ("devs", 14, 4, 4, 8, 0),
            ("inner1", 2, 4, 4, 2, 0),
            ("outer", 12, 4, 4, 4, 0),
            ("jumps", 3, 4, 4, 4, 0),
        ];
        for (n, t, k, v, max, flags) in expect {
            let m = get(n);
            assert_eq!(
                (
                    m.map_type,
                    m.key_size,
                    m.value_size,
                    m.max_entries,
                    m.map_flags
                ),
                (t, k, v, max, flags),
                "{n}"
            );
            assert_eq!(m.kind, MapKind::Regular);
            assert_eq!(m.initial_data, None);
            assert_eq!(m.section, ".maps");
            let sym = elf.file.symbols().find(|s| s.name() == Ok(n)).unwrap();
            assert_eq!(m.symbol_offset, sym.address(), "{n} offset");
            assert_eq!(m.pinning, 0);
        }
        // BTF type ids name the C types.
        assert_eq!(
            btf.type_name(get("arr").btf_value_type_id).unwrap(),
            "counter_t"
        );
        assert_eq!(btf.type_size(get("arr").btf_value_type_id).unwrap(), 8);
        assert_eq!(
            btf.type_name(get("flows").btf_key_type_id).unwrap(),
            "flow_key"
        );
        assert_eq!(
            btf.type_name(get("flows").btf_value_type_id).unwrap(),
            "flow_val"
        );
        assert_eq!(btf.type_name(get("lru").btf_key_type_id).unwrap(), "__u64");
        assert_eq!(
            get("pcpu").btf_key_type_id,
            0,
            "key_size given, no key type"
        );
        assert_eq!(get("devs").btf_value_type_id, 0);
        // Map in map: the inner definition.
        let inner = get("outer").inner.as_ref().expect("inner map");
        assert_eq!(inner.name, "outer.inner");
        assert_eq!(
            (
                inner.map_type,
                inner.key_size,
                inner.value_size,
                inner.max_entries
            ),
            (2, 4, 4, 2)
        );
        assert!(get("jumps").inner.is_none());
        // Two programs in one section; lookup by section gives the first.
        let progs: Vec<_> = obj
            .programs
            .iter()
            .map(|p| (p.name.as_str(), p.section.as_str()))
            .collect();
        assert_eq!(progs, [("tail", "xdp"), ("use_maps", "xdp")]);
        assert_eq!(obj.program("xdp").unwrap().name, "tail");
        assert_eq!(obj.program("use_maps").unwrap().section, "xdp");
        assert!(obj.program("nope").is_none());
        // Every map referenced by use_maps is relocated.
        let used: Vec<usize> = obj
            .program("use_maps")
            .unwrap()
            .insns
            .iter()
            .filter(|i| i.src == 5)
            .map(|i| i.imm as usize)
            .collect();
        let mut used_names: Vec<&str> = used.iter().map(|&i| obj.maps[i].name.as_str()).collect();
        used_names.sort();
        used_names.dedup();
        assert_eq!(
            used_names,
            ["arr", "devs", "flows", "jumps", "lru", "outer", "pcpu"]
        );
    }
}

#[test]
fn btf_map_pinning() {
    for cpu in CPUS {
        let obj = parse(&format!("btf_pin.{cpu}.o"));
        let m = &obj.maps[obj.map_index("pinned_counts").unwrap()];
        assert_eq!(m.pinning, 1, "LIBBPF_PIN_BY_NAME");
        assert_eq!(
            (m.map_type, m.key_size, m.value_size, m.max_entries),
            (1, 4, 8, 32)
        );
    }
}

// ---------------------------------------------------------------------------
// Legacy maps

#[test]
fn legacy_bpf_map_def() {
    for cpu in CPUS {
        let obj = parse(&format!("legacy.{cpu}.o"));
        assert_eq!(obj.license, "GPL");
        let c = &obj.maps[0];
        assert_eq!(
            (
                c.name.as_str(),
                c.map_type,
                c.key_size,
                c.value_size,
                c.max_entries,
                c.map_flags
            ),
            ("counters", 2, 4, 8, 4, 0)
        );
        assert_eq!((c.section.as_str(), c.symbol_offset), ("maps", 0));
        let s = &obj.maps[1];
        assert_eq!(
            (
                s.name.as_str(),
                s.map_type,
                s.key_size,
                s.value_size,
                s.max_entries,
                s.map_flags
            ),
            ("sessions", 1, 8, 16, 64, 1)
        );
        assert_eq!(s.symbol_offset, 20);
        assert!(obj.maps[..2]
            .iter()
            .all(|m| m.kind == MapKind::Regular && m.pinning == 0));
        assert_eq!(obj.program("xdp").unwrap().name, "legacy_prog");
    }
}

#[test]
fn legacy_iproute2_bpf_elf_map_with_pinning_and_no_license() {
    for cpu in CPUS {
        let obj = parse(&format!("legacy_long.{cpu}.o"));
        assert_eq!(obj.license, "", "no license section");
        assert_eq!(obj.maps.len(), 2);
        let s = &obj.maps[0];
        assert_eq!(
            (
                s.name.as_str(),
                s.map_type,
                s.key_size,
                s.value_size,
                s.max_entries,
                s.pinning
            ),
            ("stats", 6, 4, 8, 2, 2)
        );
        let a = &obj.maps[1];
        assert_eq!(
            (
                a.name.as_str(),
                a.map_type,
                a.key_size,
                a.value_size,
                a.max_entries,
                a.pinning
            ),
            ("acl", 1, 4, 1, 256, 0)
        );
        assert_eq!(a.symbol_offset, 36);
        let p = obj.program("xdp/acl").unwrap();
        assert_eq!(
            (p.name.as_str(), p.prog_type.clone(), p.frags),
            ("acl_prog", ProgramType::Xdp, false)
        );
    }
}

// ---------------------------------------------------------------------------
// Global data

#[test]
fn global_data_of_every_kind() {
    for cpu in CPUS {
        let name = format!("globals.{cpu}.o");
        let bytes = fixture(&name);
        let obj = parse(&name);
        let elf = Elf::new(&bytes);
        let btf = obj.btf.as_ref().unwrap();
        let get = |n: &str| &obj.maps[obj.map_index(n).unwrap_or_else(|| panic!("no map {n}"))];
        assert_eq!(obj.maps.len(), 6);
        // Global data maps come in section order.
        let mut by_section: Vec<_> = obj
            .maps
            .iter()
            .map(|m| elf.file.section_by_name(&m.name).unwrap().index().0)
            .collect();
        let sorted = {
            let mut s = by_section.clone();
            s.sort();
            s
        };
        assert_eq!(by_section, sorted);
        by_section.clear();

        let data: Vec<u8> = [
            0x11223344u32.to_le_bytes().to_vec(),
            0u32.to_le_bytes().to_vec(),
            5u64.to_le_bytes().to_vec(),
            6u64.to_le_bytes().to_vec(),
        ]
        .concat();
        let rodata: Vec<u8> = [
            1500u32.to_le_bytes().to_vec(),
            vec![0xde, 0xad, 0xbe, 0xef, 0x00, 0x01],
        ]
        .concat();
        let expect: [(&str, MapKind, Vec<u8>, u32); 6] = [
            (".data", MapKind::Data, data, BPF_F_MMAPABLE),
            (
                ".rodata",
                MapKind::Rodata,
                rodata,
                BPF_F_MMAPABLE | BPF_F_RDONLY_PROG,
            ),
            (
                ".data.custom",
                MapKind::Data,
                vec![1, 2, 3, 4, 5],
                BPF_F_MMAPABLE,
            ),
            (
                ".rodata.custom",
                MapKind::Rodata,
                0x0102030405060708u64.to_le_bytes().to_vec(),
                BPF_F_MMAPABLE | BPF_F_RDONLY_PROG,
            ),
            (".bss", MapKind::Bss, vec![0; 8 + 32 + 4], BPF_F_MMAPABLE),
            (
                ".rodata.str1.1",
                MapKind::Rodata,
                b"short frame %d\n\0odd frame\n\0".to_vec(),
                BPF_F_RDONLY_PROG,
            ),
        ];
        for (n, kind, init, flags) in expect {
            let m = get(n);
            assert_eq!(m.kind, kind, "{n}");
            assert_eq!((m.map_type, m.key_size, m.max_entries), (2, 4, 1), "{n}");
            assert_eq!(m.value_size as usize, init.len(), "{n}");
            assert_eq!(m.initial_data.as_deref(), Some(&init[..]), "{n}");
            assert_eq!(m.map_flags, flags, "{n}");
            assert_eq!((m.section.as_str(), m.symbol_offset), (n, 0));
            if n == ".rodata.str1.1" {
                assert_eq!(m.btf_value_type_id, 0, "no DATASEC for string literals");
            } else {
                assert_eq!(btf.type_name(m.btf_value_type_id).unwrap(), n, "DATASEC");
            }
        }
        // The lddw offsets into the values: .bss holds bss_counter at 0,
        // bss_array at 8 and the static at 40 (a section-symbol relocation with
        // its addend in imm); the strings sit at 0 and 16.
        let p = obj.program("globals_prog").unwrap();
        let offsets = |map: &str| {
            let idx = obj.map_index(map).unwrap() as i32;
            let mut v: Vec<i32> = (0..p.insns.len() - 1)
                .filter(|&i| {
                    p.insns[i].code == 0x18 && p.insns[i].src == 6 && p.insns[i].imm == idx
                })
                .map(|i| p.insns[i + 1].imm)
                .collect();
            v.sort();
            v.dedup();
            v
        };
        assert_eq!(offsets(".bss"), [0, 8, 40]);
        assert_eq!(offsets(".rodata.str1.1"), [0, 16]);
        assert_eq!(offsets(".rodata"), [0, 4]);
        assert_eq!(offsets(".data"), [0, 8]);
        let strings = get(".rodata.str1.1").initial_data.as_ref().unwrap();
        assert!(strings[16..].starts_with(b"odd frame\n"));
    }
}

#[test]
fn string_literals_in_legacy_object() {
    // legacy.c's stack initialiser lands in .rodata.cst16: a .rodata.* map without DATASEC.
    let obj = parse("legacy.v3.o");
    let m = &obj.maps[obj.map_index(".rodata.cst16").unwrap()];
    assert_eq!(
        (m.kind, m.value_size, m.map_flags),
        (MapKind::Rodata, 16, BPF_F_RDONLY_PROG)
    );
    let init = m.initial_data.as_ref().unwrap();
    assert_eq!(init[..8], 1u64.to_le_bytes());
    assert_eq!(init[8..], 2u64.to_le_bytes());
}

// ---------------------------------------------------------------------------
// Subprograms

#[test]
fn subprograms_callbacks_and_program_kinds() {
    for cpu in CPUS {
        let obj = parse(&format!("subprogs.{cpu}.o"));
        let summary: Vec<_> = obj
            .programs
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.section.as_str(),
                    p.prog_type.clone(),
                    p.frags,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("prog_a", "xdp", ProgramType::Xdp, false),
                ("prog_b", "xdp", ProgramType::Xdp, false),
                ("prog_frags", "xdp.frags", ProgramType::Xdp, true),
                (
                    "prog_tc",
                    "tc",
                    ProgramType::Other("sched_cls".into()),
                    false
                ),
            ]
        );
        let order = |n: &str| {
            obj.program(n)
                .unwrap()
                .subprogs
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
        };
        // Depth-first, in order of first reference (libbpf's order).
        assert_eq!(
            order("prog_a"),
            ["prog_a", "global_len", "loop_cb", "middle", "leaf"]
        );
        assert_eq!(order("prog_b"), ["prog_b", "leaf"]);
        assert_eq!(order("prog_frags"), ["prog_frags", "global_len"]);
        assert_eq!(order("prog_tc"), ["prog_tc", "middle", "leaf"]);
        // The bpf_loop callback is a BPF_PSEUDO_FUNC lddw pointing at loop_cb.
        let a = obj.program("prog_a").unwrap();
        let loop_cb = a.subprogs.iter().find(|s| s.name == "loop_cb").unwrap();
        let pf: Vec<usize> = (0..a.insns.len())
            .filter(|&i| a.insns[i].code == 0x18 && a.insns[i].src == 4)
            .collect();
        assert_eq!(pf.len(), 1);
        assert_eq!(
            pf[0] as i64 + 1 + i64::from(a.insns[pf[0]].imm),
            loop_cb.start as i64
        );
        // hits is in .bss.
        assert_eq!(obj.maps.len(), 1);
        assert_eq!(obj.maps[0].name, ".bss");
    }
}

// ---------------------------------------------------------------------------
// Refused objects

#[test]
fn kconfig_extern_is_refused() {
    for cpu in CPUS {
        let name = format!("kconfig.{cpu}.o");
        let bytes = fixture(&name);
        let err = Object::parse(&bytes).unwrap_err();
        let ParseError::Reloc(RelocError::Extern {
            section,
            insn_index,
            name: sym,
        }) = err
        else {
            panic!("{name}: {err}")
        };
        assert_eq!((section.as_str(), sym.as_str()), ("xdp", "CONFIG_HZ"));
        let reloc = &Elf::new(&bytes).relocs("xdp")[0];
        assert_eq!(reloc.offset, 8 * insn_index as u64);
    }
}

#[test]
fn kfunc_calls_are_recorded_by_name() {
    for cpu in CPUS {
        let name = format!("kfunc.{cpu}.o");
        let bytes = fixture(&name);
        let obj = Object::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let p = &obj.programs[0];
        let calls: Vec<(usize, &str)> =
            p.kfuncs.iter().map(|k| (k.insn, k.name.as_str())).collect();
        assert_eq!(
            calls,
            [(0, "bpf_rcu_read_lock"), (1, "bpf_rcu_read_unlock")],
            "{name}"
        );
        for k in &p.kfuncs {
            let insn = p.insns[k.insn];
            // libbpf's RELO_EXTERN_CALL: src BPF_PSEUDO_KFUNC_CALL, imm to resolve.
            assert_eq!((insn.code, insn.src, insn.imm), (0x85, 2, 0), "{name}");
        }
    }
}

// ---------------------------------------------------------------------------
// Corrupted objects: errors, never panics.

/// File offset of a section's data.
fn section_offset(bytes: &[u8], name: &str) -> usize {
    let file = object::File::parse(bytes).unwrap();
    file.section_by_name(name).unwrap().file_range().unwrap().0 as usize
}

#[test]
fn header_mutations() {
    let good = fixture("subprogs.v3.o");
    let mut b = good.clone();
    b[18] = 62; // e_machine = EM_X86_64
    assert_eq!(Object::parse(&b), Err(ParseError::NotBpf { machine: 62 }));
    let mut b = good.clone();
    b[5] = 2; // ELFDATA2MSB
    assert_eq!(
        Object::parse(&b),
        Err(ParseError::NotLittleEndian { data: 2 })
    );
    let mut b = good.clone();
    b[4] = 1; // ELFCLASS32
    assert_eq!(Object::parse(&b), Err(ParseError::Not64Bit { class: 1 }));
    let mut b = good;
    b[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes()); // e_shoff
    assert!(matches!(
        Object::parse(&b),
        Err(ParseError::CorruptElf { .. })
    ));
}

#[test]
fn truncated_and_bit_flipped_fixtures_never_panic() {
    for (name, bytes) in all_fixtures() {
        for len in (0..bytes.len()).step_by(97) {
            let _ = Object::parse(&bytes[..len]);
        }
        let mut b = bytes.clone();
        for i in (0..b.len()).step_by(13) {
            b[i] ^= 0x5a;
            let _ = Object::parse(&b);
            b[i] ^= 0x5a;
        }
        assert!(
            Object::parse(&bytes[..bytes.len() / 2]).is_err(),
            "{name} cut in half"
        );
    }
}

#[test]
fn kfunc_src_in_instruction_is_refused() {
    let mut b = fixture("subprogs.v3.o");
    let xdp = section_offset(&b, "xdp");
    // prog_b's call of leaf sits at slot 25 of section xdp (see subprogs.c / objdump).
    let insn = RawInsn::from_bytes(b[xdp + 25 * 8..xdp + 26 * 8].try_into().unwrap());
    assert_eq!((insn.code, insn.src), (0x85, 1));
    b[xdp + 25 * 8 + 1] = (b[xdp + 25 * 8 + 1] & 0x0f) | (2 << 4);
    assert_eq!(
        Object::parse(&b),
        Err(ParseError::Reloc(RelocError::Kfunc {
            section: "xdp".into(),
            insn_index: 25
        }))
    );
}

/// Rewrites the first relocation of `.rel<section>`.
fn patch_first_reloc(
    bytes: &mut [u8],
    section: &str,
    offset: Option<u64>,
    r_type: Option<u32>,
) -> u64 {
    let rel = section_offset(bytes, &format!(".rel{section}"));
    let old = u64::from_le_bytes(bytes[rel..rel + 8].try_into().unwrap());
    if let Some(o) = offset {
        bytes[rel..rel + 8].copy_from_slice(&o.to_le_bytes());
    }
    if let Some(t) = r_type {
        bytes[rel + 8..rel + 12].copy_from_slice(&t.to_le_bytes());
    }
    old
}

#[test]
fn bad_relocations_are_refused() {
    let good = fixture("globals.v3.o");
    let xdp_len = object::File::parse(&*good)
        .unwrap()
        .section_by_name("xdp")
        .unwrap()
        .size();

    let mut b = good.clone();
    patch_first_reloc(&mut b, "xdp", Some(xdp_len), None);
    assert_eq!(
        Object::parse(&b),
        Err(ParseError::Reloc(RelocError::OutOfBounds {
            section: "xdp".into(),
            offset: xdp_len
        }))
    );
    let mut b = good.clone();
    patch_first_reloc(&mut b, "xdp", Some(3), None);
    assert_eq!(
        Object::parse(&b),
        Err(ParseError::Reloc(RelocError::OutOfBounds {
            section: "xdp".into(),
            offset: 3
        }))
    );

    let mut b = good.clone();
    let off = patch_first_reloc(&mut b, "xdp", None, Some(7));
    assert_eq!(
        Object::parse(&b),
        Err(ParseError::Reloc(RelocError::UnknownType {
            section: "xdp".into(),
            offset: off,
            r_type: 7
        }))
    );

    // Point the first relocation (an lddw at slot 2) at slot 0, a plain ALU instruction.
    let mut b = good.clone();
    let insn0 = Elf::new(&good).insns("xdp")[0];
    assert!(insn0.code != 0x18 && insn0.code != 0x85);
    patch_first_reloc(&mut b, "xdp", Some(0), None);
    assert_eq!(
        Object::parse(&b),
        Err(ParseError::Reloc(RelocError::NotLddw {
            section: "xdp".into(),
            insn_index: 0,
            code: insn0.code
        }))
    );
}

#[test]
fn bad_legacy_map_section_is_refused() {
    let mut b = fixture("legacy.v3.o");
    // Grow the `maps` section by 1 byte: 41 bytes cannot be split between 2 maps.
    let file = object::File::parse(&*b).unwrap();
    let idx = file.section_by_name("maps").unwrap().index().0;
    let shoff = u64::from_le_bytes(b[0x28..0x30].try_into().unwrap()) as usize;
    let size_at = shoff + idx * 64 + 32;
    let size = u64::from_le_bytes(b[size_at..size_at + 8].try_into().unwrap());
    assert_eq!(size, 40);
    b[size_at..size_at + 8].copy_from_slice(&41u64.to_le_bytes());
    assert_eq!(
        Object::parse(&b),
        Err(ParseError::BadLegacyMapSection {
            section: "maps".into(),
            size: 41,
            count: 2
        })
    );
}

/// Sets `sh_size` of a section.
fn set_section_size(bytes: &mut [u8], name: &str, size: u64) {
    let file = object::File::parse(&*bytes).unwrap();
    let idx = file.section_by_name(name).unwrap().index().0;
    let shoff = u64::from_le_bytes(bytes[0x28..0x30].try_into().unwrap()) as usize;
    let at = shoff + idx * 64 + 32;
    bytes[at..at + 8].copy_from_slice(&size.to_le_bytes());
}

#[test]
fn oversized_bss_is_refused_without_allocating_it() {
    let mut b = fixture("globals.v3.o");
    set_section_size(&mut b, ".bss", 1 << 40);
    let err = Object::parse(&b).unwrap_err();
    assert!(
        matches!(&err, ParseError::BadMapDefinition { name, .. } if name == ".bss"),
        "{err}"
    );
    // Just under the kernel's limit is fine.
    set_section_size(&mut b, ".bss", 4 << 20);
    let obj = Object::parse(&b).unwrap();
    let bss = &obj.maps[obj.map_index(".bss").unwrap()];
    assert_eq!(bss.value_size, 4 << 20);
}

#[test]
fn parses_from_an_unaligned_slice() {
    let bytes = fixture("subprogs.v3.o");
    let mut buf = vec![0u8; bytes.len() + 1];
    buf[1..].copy_from_slice(&bytes);
    assert_eq!(
        Object::parse(&buf[1..]).unwrap(),
        Object::parse(&bytes).unwrap()
    );
}
