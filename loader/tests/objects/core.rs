//! CO-RE relocations of the `core_xdp` and `core` fixtures.
//!
//! The oracle is libbpf itself: `bpftool -d prog loadall` logs every
//! instruction it patches ("relo #N: patched insn #I (LDX/ST/STX) off A -> B",
//! "... mem_sz A -> B", "(ALU/ALU64) imm A -> B", "(LDIMM64) imm64 A -> B",
//! "substituting insn #I w/ invalid insn"), and the kernel verifies the result.
//! Without root the same relocations are checked against layout facts of the
//! kernel's UAPI structs (offsets of `struct xdp_md`, `ethhdr`, `iphdr`), which
//! hold on every kernel, when /sys/kernel/btf/vmlinux is readable.

use std::path::Path;
use std::time::Instant;

use isa::RawInsn;
use loader::core::POISON_HELPER_ID;
use loader::{Btf, LoadOptions, Object, ParseError, RelocError};

use super::libbpf::{loadall, BpfFs};
use super::{fixture, fixture_dir, CPUS};

fn vmlinux() -> Option<Btf> {
    let bytes = std::fs::read(loader::SYSTEM_BTF_PATH).ok()?;
    let t = Instant::now();
    let btf = Btf::parse(&bytes).expect("the kernel's BTF parses");
    println!(
        "vmlinux BTF: {} bytes, {} types, parsed in {:?}",
        bytes.len(),
        btf.len(),
        t.elapsed()
    );
    Some(btf)
}

fn is_poison(insn: RawInsn) -> bool {
    insn.code == isa::opcode::CALL && insn.src == 0 && insn.imm == POISON_HELPER_ID
}

fn mem_size(insn: RawInsn) -> u64 {
    match insn.code & 0x18 {
        0x00 => 4,
        0x08 => 2,
        0x10 => 1,
        _ => 8,
    }
}

/// One patch from libbpf's log: program (function) name, insn index inside
/// that function, what changed.
#[derive(Debug)]
enum Patch {
    Off(u64),
    MemSz(u64),
    Imm(u64),
    Imm64(u64),
    Poison,
}

fn libbpf_patches(log: &str) -> Vec<(String, usize, Patch)> {
    let mut out = Vec::new();
    for line in log.lines() {
        let Some(rest) = line.strip_prefix("libbpf: prog '") else {
            continue;
        };
        let Some((prog, rest)) = rest.split_once("': relo #") else {
            continue;
        };
        let Some((_, rest)) = rest.split_once(": ") else {
            continue;
        };
        if let Some(r) = rest.strip_prefix("substituting insn #") {
            let idx = r.split_whitespace().next().unwrap().parse().unwrap();
            out.push((prog.to_string(), idx, Patch::Poison));
            continue;
        }
        let Some(r) = rest.strip_prefix("patched insn #") else {
            continue;
        };
        let (idx, r) = r.split_once(' ').unwrap();
        let idx: usize = idx.parse().unwrap();
        let new: u64 = r.rsplit(' ').next().unwrap().parse().unwrap();
        let patch = if r.starts_with("(LDX/ST/STX) off ") {
            Patch::Off(new)
        } else if r.starts_with("(LDX/ST/STX) mem_sz ") {
            Patch::MemSz(new)
        } else if r.starts_with("(ALU/ALU64) imm ") {
            Patch::Imm(new)
        } else if r.starts_with("(LDIMM64) imm64 ") {
            Patch::Imm64(new)
        } else {
            panic!("unknown libbpf patch line: {line}")
        };
        out.push((prog.to_string(), idx, patch));
    }
    out
}

#[test]
fn core_xdp_relocates_like_libbpf_and_the_kernel_accepts_it() {
    let fs = match BpfFs::mount("core") {
        Ok(fs) => fs,
        Err(reason) => {
            println!("SKIP: CO-RE libbpf cross-check: {reason}");
            return;
        }
    };
    if !Path::new(loader::SYSTEM_BTF_PATH).exists() {
        println!("SKIP: CO-RE libbpf cross-check: no /sys/kernel/btf/vmlinux");
        return;
    }
    for cpu in CPUS {
        let name = format!("core_xdp.{cpu}.o");
        let obj = Object::parse(&fixture(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (ok, log) = loadall(
            &fixture_dir().join(&name),
            &fs.dir.join(format!("core_{cpu}")),
        );
        assert!(ok, "{name}: the kernel refused libbpf's relocation:\n{log}");
        let patches = libbpf_patches(&log);
        let prog = obj.program("core_xdp").unwrap();
        let mut relos = std::collections::BTreeSet::new();
        for (func, idx, patch) in &patches {
            let sub = prog
                .subprogs
                .iter()
                .find(|s| &s.name == func)
                .unwrap_or_else(|| panic!("{name}: no function {func}"));
            let at = sub.start + idx;
            let insn = prog.insns[at];
            let next = prog.insns.get(at + 1).copied();
            match *patch {
                Patch::Off(v) => assert_eq!(insn.off as u64, v, "{name}: {func} insn #{idx}"),
                Patch::MemSz(v) => assert_eq!(mem_size(insn), v, "{name}: {func} insn #{idx}"),
                Patch::Imm(v) => {
                    assert_eq!(
                        insn.imm as u32 as u64,
                        v & 0xffff_ffff,
                        "{name}: {func} #{idx}"
                    )
                }
                Patch::Imm64(v) => {
                    let imm =
                        u64::from(insn.imm as u32) | (u64::from(next.unwrap().imm as u32) << 32);
                    assert_eq!(imm, v, "{name}: {func} insn #{idx}");
                }
                Patch::Poison => {
                    assert!(is_poison(insn), "{name}: {func} insn #{idx}: {insn:?}");
                    assert!(
                        prog.core_poisoned.iter().any(|p| p.insn == at),
                        "{name}: poisoned insn #{at} listed"
                    );
                }
            }
            relos.insert((func.clone(), *idx));
        }
        assert_eq!(
            relos.len(),
            obj.core_relocations.len(),
            "{name}: as many relocated instructions as libbpf"
        );
        assert!(relos.len() >= 30, "{name}: {} relocations", relos.len());
        assert_eq!(prog.core_poisoned.len(), 1, "{name}: one poisoned access");
    }
}

#[test]
fn core_xdp_against_the_kernel_uapi_layout() {
    let Some(vmlinux) = vmlinux() else {
        println!("SKIP: CO-RE layout check: /sys/kernel/btf/vmlinux not readable");
        return;
    };
    let iphdr = vmlinux
        .find_by_name_kind("iphdr", loader::btf::BTF_KIND_STRUCT)
        .unwrap();
    for cpu in CPUS {
        let name = format!("core_xdp.{cpu}.o");
        let obj = Object::parse_with(
            &fixture(&name),
            &LoadOptions::with_target_btf(vmlinux.clone()),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let find = |spec: &str, kind: loader::CoreReloKind| {
            obj.core_relocations
                .iter()
                .find(|r| r.spec.starts_with(spec) && r.kind == kind)
                .unwrap_or_else(|| panic!("{name}: no {kind:?} relocation of {spec}"))
        };
        use loader::CoreReloKind::*;
        // struct xdp_md is UAPI: rx_queue_index at 16.
        let r = find("struct xdp_md___future.rx_queue_index", FieldByteOffset);
        assert_eq!((r.orig_val, r.new_val), (0, 16));
        let r = find("struct xdp_md___future.no_such_field", FieldExists);
        assert_eq!(r.new_val, 0);
        let r = find("struct xdp_md___future.no_such_field", FieldByteOffset);
        assert!(r.poisoned);
        let r = find("struct xdp_md.egress_ifindex", FieldExists);
        assert_eq!(r.new_val, 1);
        // ethhdr.h_proto: 2 bytes at 12, read through a 4-byte local field.
        let r = find("struct ethhdr___wide.h_proto", FieldByteOffset);
        assert_eq!((r.orig_val, r.new_val), (0, 12));
        let prog = obj.program("core_xdp").unwrap();
        let at = prog.subprogs[0].start + r.insn_index; // entry function: same slots
        assert_eq!(prog.insns[at].off, 12);
        assert_eq!(mem_size(prog.insns[at]), 2, "ldxw became ldxh");
        // iphdr: ttl 8, protocol 9, saddr 12 (inside an anonymous union).
        assert_eq!(find("struct iphdr___mini.ttl", FieldByteOffset).new_val, 8);
        assert_eq!(
            find("struct iphdr___mini.protocol", FieldByteOffset).new_val,
            9
        );
        assert_eq!(
            find("struct iphdr___mini.saddr", FieldByteOffset).new_val,
            12
        );
        assert_eq!(find("struct iphdr.frag_off", FieldByteSize).new_val, 2);
        assert_eq!(find("struct iphdr.ttl", FieldSigned).new_val, 0);
        // Bitfields ihl:4 and version:4 in the first byte (little endian).
        assert_eq!(find("struct iphdr.ihl", FieldByteSize).new_val, 1);
        assert_eq!(find("struct iphdr.ihl", FieldLShiftU64).new_val, 60);
        assert_eq!(find("struct iphdr.ihl", FieldRShiftU64).new_val, 60);
        assert_eq!(find("struct iphdr.version", FieldLShiftU64).new_val, 56);
        // Types and enums.
        assert_eq!(find("struct iphdr", TypeIdTarget).new_val, u64::from(iphdr));
        assert_eq!(find("struct iphdr", TypeExists).new_val, 1);
        assert_eq!(find("struct not_in_kernel", TypeExists).new_val, 0);
        assert_eq!(find("struct ipv6hdr", TypeSize).new_val, 40);
        assert_eq!(find("enum xdp_action::XDP_PASS", EnumvalValue).new_val, 2);
        assert_eq!(
            find("enum xdp_action___old::XDP_TX___old", EnumvalValue).new_val,
            3
        );
        assert_eq!(
            find("enum xdp_action::XDP_REDIRECT", EnumvalExists).new_val,
            1
        );
        let local = find("struct iphdr", TypeIdLocal);
        assert_eq!(local.orig_val, local.new_val);
        assert_eq!(
            obj.btf
                .as_ref()
                .unwrap()
                .type_name(local.new_val as u32)
                .unwrap(),
            "iphdr"
        );
        // The .text subprogram's access was relocated too, and linked.
        let sub = prog.subprogs.iter().find(|s| s.name == "read_ttl").unwrap();
        let text = obj
            .core_relocations
            .iter()
            .find(|r| r.section == ".text")
            .expect("a .text relocation");
        assert_eq!(prog.insns[sub.start + text.insn_index].off, 8);
    }
}

#[test]
fn core_without_a_target_names_the_relocation() {
    for cpu in CPUS {
        let name = format!("core_xdp.{cpu}.o");
        let err =
            Object::parse_with(&fixture(&name), &LoadOptions::without_target_btf()).unwrap_err();
        let ParseError::Reloc(RelocError::CoreNoTarget {
            section,
            insn_index,
            kind,
            type_name,
            access,
            ..
        }) = &err
        else {
            panic!("{name}: {err}")
        };
        // ctx->data_end, the first access, is field 1 of struct xdp_md.
        assert_eq!(section, "xdp");
        assert_eq!(*insn_index, 0);
        assert_eq!(*kind, "byte_off");
        assert_eq!(type_name, "struct xdp_md");
        assert_eq!(access, "0:1");
        let msg = err.to_string();
        assert!(
            msg.contains("struct xdp_md") && msg.contains("0:1"),
            "{msg}"
        );
        // A system BTF path that does not exist counts as no target.
        let opts = LoadOptions {
            system_btf: Some("/nonexistent/vmlinux".into()),
            ..LoadOptions::default()
        };
        let err = Object::parse_with(&fixture(&name), &opts).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/vmlinux"), "{err}");
    }
}

#[test]
fn unsatisfiable_field_relocation_is_poisoned_like_libbpf() {
    // core.c reads `struct hdr`, which no kernel has.
    let Some(vmlinux) = vmlinux() else {
        println!("SKIP: poisoning check: /sys/kernel/btf/vmlinux not readable");
        return;
    };
    for cpu in CPUS {
        let name = format!("core.{cpu}.o");
        let bytes = fixture(&name);
        let obj = Object::parse_with(&bytes, &LoadOptions::with_target_btf(vmlinux.clone()))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let prog = &obj.programs[0];
        assert_eq!(obj.core_relocations.len(), 1);
        let r = &obj.core_relocations[0];
        assert!(r.poisoned && r.target_type_id == 0);
        assert_eq!(r.kind, loader::CoreReloKind::FieldByteOffset);
        // The compiler's instruction used `second`'s offset, 4.
        let orig = super::Elf::new(&bytes).insns("xdp")[r.insn_index];
        assert!(orig.off == 4 || orig.imm == 4, "{name}: {orig:?}");
        assert!(is_poison(prog.insns[r.insn_index]));
        assert_eq!(prog.core_poisoned.len(), 1);
        assert_eq!(prog.core_poisoned[0].insn, r.insn_index);
        assert!(prog.core_poisoned[0]
            .relocation
            .contains("struct hdr.second"));
        // Every other instruction is the compiler's.
        let elf = super::Elf::new(&bytes).insns("xdp");
        for (i, (a, b)) in prog.insns.iter().zip(&elf).enumerate() {
            if i != r.insn_index {
                assert_eq!(a, b, "{name}: slot {i}");
            }
        }
    }
    // The kernel refuses libbpf's poisoned program the same way.
    let Ok(fs) = BpfFs::mount("poison") else {
        println!("SKIP: poisoning kernel check: no root/bpftool/bpffs");
        return;
    };
    let (ok, log) = loadall(&fixture_dir().join("core.v2.o"), &fs.dir.join("p"));
    assert!(!ok, "the kernel accepted a reachable poisoned call");
    assert!(log.contains("substituting insn"), "{log}");
}

#[test]
fn target_btf_from_an_elf_file() {
    // A BPF object's own .BTF serves as a target: core.c's `struct hdr` is
    // then found (in itself), and the relocation is the identity.
    for cpu in CPUS {
        let name = format!("core.{cpu}.o");
        let bytes = fixture(&name);
        let target = loader::options::target_btf_from_bytes(&bytes).unwrap();
        let obj = Object::parse_with(&bytes, &LoadOptions::with_target_btf(target)).unwrap();
        let r = &obj.core_relocations[0];
        assert!(!r.poisoned);
        assert_eq!((r.orig_val, r.new_val), (4, 4));
        let elf = super::Elf::new(&bytes).insns("xdp");
        assert_eq!(obj.programs[0].insns, elf, "{name}: unchanged");
    }
}

#[test]
fn vmlinux_parse_time() {
    // Measured, not asserted (tests never assert on wall-clock time).
    let Some(btf) = vmlinux() else {
        println!("SKIP: vmlinux parse time: not readable");
        return;
    };
    let t = Instant::now();
    let obj = Object::parse_with(
        &fixture("core_xdp.v3.o"),
        &LoadOptions::with_target_btf(btf),
    );
    println!(
        "core_xdp.v3.o relocated against vmlinux in {:?}",
        t.elapsed()
    );
    assert!(obj.is_ok());
}
