//! Map definitions: the legacy `maps` section (`struct bpf_map_def` and its
//! longer variants), BTF-defined maps in `.maps`, and global data sections
//! (`.data*`, `.rodata*`, `.bss*`) turned into single-element arrays as libbpf
//! does (`bpf_object__init_user_btf_maps`, `bpf_object__init_global_data_maps`).

use object::elf;

use crate::btf::{
    Btf, BtfKind, BtfMember, BTF_KIND_DATASEC, BTF_LINKAGE_GLOBAL, BTF_LINKAGE_STATIC,
};
use crate::elf::Elf;
use crate::error::ParseError;
use crate::{MapKind, MapSpec};

pub const BPF_MAP_TYPE_ARRAY: u32 = 2;
pub const BPF_MAP_TYPE_PROG_ARRAY: u32 = 3;
pub const BPF_MAP_TYPE_ARRAY_OF_MAPS: u32 = 12;
pub const BPF_MAP_TYPE_HASH_OF_MAPS: u32 = 13;
pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

/// Largest global data section accepted: the kernel refuses array values above
/// `KMALLOC_MAX_SIZE` (4 MiB on x86-64) with E2BIG.
pub const MAX_GLOBAL_DATA: u64 = 4 << 20;

/// Largest total of all global data sections, so that a crafted file with
/// thousands of `.bss` headers cannot make the loader allocate gigabytes.
pub const MAX_GLOBAL_DATA_TOTAL: u64 = 64 << 20;

/// Where a map is defined: the ELF section and the byte offset of its symbol.
/// Parallel to [`crate::Object::maps`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MapSite {
    pub section: usize,
    pub offset: u64,
}

/// All maps of the object in libbpf's order: legacy `maps`, `.maps`, then
/// global data sections in section order.
pub(crate) fn collect(
    elf: &Elf,
    btf: Option<&Btf>,
) -> Result<(Vec<MapSpec>, Vec<MapSite>), ParseError> {
    let mut out: Vec<(MapSpec, MapSite)> = Vec::new();
    for (idx, sec) in elf.sections.iter().enumerate() {
        if sec.name == "maps" {
            out.extend(legacy_maps(elf, idx)?);
        }
    }
    if let Some(idx) = elf.section_by_name(".maps") {
        let btf = btf.ok_or(ParseError::MapsWithoutBtf)?;
        out.extend(btf_maps(elf, idx, btf)?);
    }
    let mut total_data = 0u64;
    for (idx, sec) in elf.sections.iter().enumerate() {
        let kind = match global_data_kind(&sec.name, sec.sh_type, sec.flags) {
            Some(kind) if sec.size > 0 => kind,
            _ => continue,
        };
        let bad = |reason: &str| ParseError::BadMapDefinition {
            name: sec.name.clone(),
            section: sec.name.clone(),
            offset: 0,
            reason: reason.to_string(),
        };
        if sec.size > MAX_GLOBAL_DATA {
            return Err(bad(
                "global data section is larger than the kernel's 4 MiB value limit",
            ));
        }
        total_data += sec.size;
        if total_data > MAX_GLOBAL_DATA_TOTAL {
            return Err(bad("global data sections exceed 64 MiB in total"));
        }
        let size = sec.size as usize;
        let initial = if kind == MapKind::Bss {
            vec![0; size]
        } else {
            sec.data.to_vec()
        };
        if initial.len() != size {
            return Err(bad("section data does not match its size"));
        }
        let datasec = btf.and_then(|b| b.find_by_name_kind(&sec.name, BTF_KIND_DATASEC));
        let mut flags = if kind == MapKind::Rodata {
            BPF_F_RDONLY_PROG
        } else {
            0
        };
        if let (Some(btf), Some(id)) = (btf, datasec) {
            if has_global_var(btf, id) {
                flags |= BPF_F_MMAPABLE;
            }
        }
        let spec = MapSpec {
            name: sec.name.clone(),
            map_type: BPF_MAP_TYPE_ARRAY,
            key_size: 4,
            value_size: size as u32,
            max_entries: 1,
            map_flags: flags,
            kind,
            initial_data: Some(initial),
            btf_key_type_id: 0,
            btf_value_type_id: datasec.unwrap_or(0),
            pinning: 0,
            inner: None,
            section: sec.name.clone(),
            symbol_offset: 0,
        };
        out.push((
            spec,
            MapSite {
                section: idx,
                offset: 0,
            },
        ));
    }
    Ok(out.into_iter().unzip())
}

/// Kind of a global data section, by libbpf's naming rules.
pub(crate) fn global_data_kind(name: &str, sh_type: u32, flags: u64) -> Option<MapKind> {
    let is =
        |base: &str| name == base || name.strip_prefix(base).is_some_and(|r| r.starts_with('.'));
    if sh_type == elf::SHT_PROGBITS && flags & u64::from(elf::SHF_EXECINSTR) == 0 {
        if is(".data") {
            return Some(MapKind::Data);
        }
        if is(".rodata") {
            return Some(MapKind::Rodata);
        }
    }
    if sh_type == elf::SHT_NOBITS && is(".bss") {
        return Some(MapKind::Bss);
    }
    None
}

/// libbpf's `map_is_mmapable`: the DATASEC holds at least one non-static var.
fn has_global_var(btf: &Btf, datasec: u32) -> bool {
    let Ok(t) = btf.type_by_id(datasec) else {
        return false;
    };
    let BtfKind::Datasec { vars, .. } = &t.kind else {
        return false;
    };
    vars.iter().any(|v| {
        matches!(btf.type_by_id(v.type_id), Ok(t) if matches!(t.kind, BtfKind::Var { linkage, .. } if linkage != BTF_LINKAGE_STATIC))
    })
}

fn read_u32(data: &[u8], off: usize) -> u32 {
    match data.get(off..off + 4) {
        Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

/// The legacy `maps` section: one definition per symbol, all the same size
/// (section size / number of symbols), read as `struct bpf_map_def`
/// (type, key_size, value_size, max_entries, map_flags) and, for definitions of
/// 28 bytes or more (iproute2's `struct bpf_elf_map`), `pinning` at byte 24.
fn legacy_maps(elf: &Elf, idx: usize) -> Result<Vec<(MapSpec, MapSite)>, ParseError> {
    let sec = &elf.sections[idx];
    let mut syms: Vec<_> = elf
        .symbols
        .iter()
        .filter(|s| {
            s.shndx as usize == idx && s.st_type != elf::STT_SECTION && s.st_type != elf::STT_FILE
        })
        .collect();
    if syms.is_empty() && sec.size == 0 {
        return Ok(Vec::new());
    }
    if syms.is_empty() {
        return Err(ParseError::BadLegacyMapSection {
            section: sec.name.clone(),
            size: sec.size,
            count: 0,
        });
    }
    let count = syms.len() as u64;
    if sec.size % count != 0 || sec.size == 0 {
        return Err(ParseError::BadLegacyMapSection {
            section: sec.name.clone(),
            size: sec.size,
            count: syms.len(),
        });
    }
    let def_size = sec.size / count;
    syms.sort_by_key(|s| s.value);
    let mut out = Vec::with_capacity(syms.len());
    for sym in syms {
        let end = sym.value.checked_add(def_size).filter(|&e| e <= sec.size);
        if end.is_none() {
            return Err(ParseError::BadMapDefinition {
                name: sym.name.clone(),
                section: sec.name.clone(),
                offset: sym.value,
                reason: format!("{def_size}-byte definition extends past the end of the section"),
            });
        }
        // The bounds check above keeps both casts in range of the section data.
        let start = sym.value as usize;
        let def = sec
            .data
            .get(start..start + def_size as usize)
            .unwrap_or(&[]);
        let field = |i: usize| {
            if i + 4 <= def.len() {
                read_u32(def, i)
            } else {
                0
            }
        };
        let spec = MapSpec {
            name: sym.name.clone(),
            map_type: field(0),
            key_size: field(4),
            value_size: field(8),
            max_entries: field(12),
            map_flags: field(16),
            kind: MapKind::Regular,
            initial_data: None,
            btf_key_type_id: 0,
            btf_value_type_id: 0,
            pinning: if def_size >= 28 { field(24) } else { 0 },
            inner: None,
            section: sec.name.clone(),
            symbol_offset: sym.value,
        };
        out.push((
            spec,
            MapSite {
                section: idx,
                offset: sym.value,
            },
        ));
    }
    Ok(out)
}

/// BTF-defined maps: the vars of DATASEC `.maps`, each a struct whose members
/// are `__uint(name, N)` (pointer to an array of N), `__type(name, T)`
/// (pointer to T) or `__array(values, ...)` (zero-sized array of pointers).
fn btf_maps(elf: &Elf, idx: usize, btf: &Btf) -> Result<Vec<(MapSpec, MapSite)>, ParseError> {
    let sec = &elf.sections[idx];
    let bad = |name: &str, offset: u64, reason: &str| ParseError::BadMapDefinition {
        name: name.to_string(),
        section: sec.name.clone(),
        offset,
        reason: reason.to_string(),
    };
    let Some(datasec) = btf.find_by_name_kind(".maps", BTF_KIND_DATASEC) else {
        if sec.size == 0 {
            return Ok(Vec::new());
        }
        return Err(bad(".maps", 0, "no DATASEC '.maps' in .BTF"));
    };
    let BtfKind::Datasec { vars, .. } = &btf.type_by_id(datasec)?.kind else {
        return Err(bad(".maps", 0, "DATASEC '.maps' vanished"));
    };
    let mut out = Vec::with_capacity(vars.len());
    for vi in vars {
        let var = btf.type_by_id(vi.type_id)?;
        let name = btf.string(var.name_off)?;
        // clang leaves DATASEC offsets at 0; like libbpf's btf_fixup_datasec,
        // take each map's offset from its ELF symbol.
        let sym = elf.symbols.iter().find(|s| {
            s.shndx as usize == idx
                && s.name == name
                && matches!(s.st_type, elf::STT_OBJECT | elf::STT_NOTYPE)
        });
        let Some(sym) = sym else {
            return Err(bad(
                name,
                u64::from(vi.offset),
                "no ELF symbol for the map in .maps",
            ));
        };
        let offset = sym.value;
        let BtfKind::Var { type_id, linkage } = var.kind else {
            return Err(bad(name, offset, "DATASEC entry is not a VAR"));
        };
        if linkage != BTF_LINKAGE_STATIC && linkage != BTF_LINKAGE_GLOBAL {
            return Err(bad(name, offset, "unsupported map linkage"));
        }
        let (_, def) = btf.resolved_type(type_id)?;
        let BtfKind::Struct { size, members } = &def.kind else {
            return Err(bad(name, offset, "map definition is not a struct"));
        };
        if *size > vi.size {
            return Err(bad(name, offset, "struct is larger than its DATASEC slot"));
        }
        let end = offset.checked_add(u64::from(vi.size));
        if !end.is_some_and(|end| end <= sec.size) {
            return Err(bad(
                name,
                offset,
                "definition extends past the end of .maps",
            ));
        }
        let spec = btf_map_def(btf, name, members, false, &sec.name, offset)?;
        out.push((
            spec,
            MapSite {
                section: idx,
                offset,
            },
        ));
    }
    Ok(out)
}

/// libbpf's `parse_btf_map_def`.
fn btf_map_def(
    btf: &Btf,
    name: &str,
    members: &[BtfMember],
    is_inner: bool,
    section: &str,
    offset: u64,
) -> Result<MapSpec, ParseError> {
    let bad = |reason: String| ParseError::BadMapDefinition {
        name: name.to_string(),
        section: section.to_string(),
        offset,
        reason,
    };
    let mut spec = MapSpec {
        name: name.to_string(),
        map_type: 0,
        key_size: 0,
        value_size: 0,
        max_entries: 0,
        map_flags: 0,
        kind: MapKind::Regular,
        initial_data: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
        pinning: 0,
        inner: None,
        section: section.to_string(),
        symbol_offset: offset,
    };
    for (i, m) in members.iter().enumerate() {
        let field = btf.string(m.name_off)?;
        match field {
            "type" => spec.map_type = field_int(btf, m, &bad)?,
            "max_entries" => spec.max_entries = field_int(btf, m, &bad)?,
            "map_flags" => spec.map_flags = field_int(btf, m, &bad)?,
            "pinning" => spec.pinning = field_int(btf, m, &bad)?,
            "numa_node" | "map_extra" => {
                field_int(btf, m, &bad)?;
            }
            "key_size" | "value_size" => {
                let sz = field_int(btf, m, &bad)?;
                let slot = if field == "key_size" {
                    &mut spec.key_size
                } else {
                    &mut spec.value_size
                };
                if *slot != 0 && *slot != sz {
                    return Err(bad(format!("conflicting {field} {} != {sz}", *slot)));
                }
                *slot = sz;
            }
            "key" | "value" => {
                let BtfKind::Ptr { type_id } = btf.type_by_id(m.type_id)?.kind else {
                    return Err(bad(format!("{field} spec is not a pointer")));
                };
                let sz = btf.type_size(type_id)?;
                let sz = u32::try_from(sz)
                    .map_err(|_| bad(format!("{field} size {sz} is too large")))?;
                let (slot, id) = if field == "key" {
                    (&mut spec.key_size, &mut spec.btf_key_type_id)
                } else {
                    (&mut spec.value_size, &mut spec.btf_value_type_id)
                };
                if *slot != 0 && *slot != sz {
                    return Err(bad(format!("conflicting {field} size {} != {sz}", *slot)));
                }
                *slot = sz;
                *id = type_id;
            }
            "values" => {
                let is_map_in_map = spec.map_type == BPF_MAP_TYPE_ARRAY_OF_MAPS
                    || spec.map_type == BPF_MAP_TYPE_HASH_OF_MAPS;
                let is_prog_array = spec.map_type == BPF_MAP_TYPE_PROG_ARRAY;
                if is_inner {
                    return Err(bad("multi-level inner maps are not supported".into()));
                }
                if i != members.len() - 1 {
                    return Err(bad("'values' must be the last member".into()));
                }
                if !is_map_in_map && !is_prog_array {
                    return Err(bad("'values' needs a map-in-map or prog-array type".into()));
                }
                if spec.value_size != 0 && spec.value_size != 4 {
                    return Err(bad(format!(
                        "conflicting value size {} != 4",
                        spec.value_size
                    )));
                }
                spec.value_size = 4;
                let BtfKind::Array {
                    elem_type,
                    nelems: 0,
                    ..
                } = btf.type_by_id(m.type_id)?.kind
                else {
                    return Err(bad("'values' is not a zero-sized array".into()));
                };
                let (_, ptr) = btf.resolved_type(elem_type)?;
                let BtfKind::Ptr { type_id: target } = ptr.kind else {
                    return Err(bad("'values' elements are not pointers".into()));
                };
                let (_, target) = btf.resolved_type(target)?;
                if is_prog_array {
                    if !matches!(target.kind, BtfKind::FuncProto { .. }) {
                        return Err(bad("prog-array 'values' do not point to functions".into()));
                    }
                    continue;
                }
                let BtfKind::Struct {
                    members: inner_members,
                    ..
                } = &target.kind
                else {
                    return Err(bad("map-in-map inner definition is not a struct".into()));
                };
                let inner_name = format!("{name}.inner");
                let inner = btf_map_def(btf, &inner_name, inner_members, true, section, offset)?;
                spec.inner = Some(Box::new(inner));
            }
            _ => {} // libbpf ignores unknown fields outside strict mode
        }
    }
    Ok(spec)
}

/// `__uint(name, N)` is `int (*name)[N]`: N is the array's element count.
fn field_int(
    btf: &Btf,
    m: &BtfMember,
    bad: &dyn Fn(String) -> ParseError,
) -> Result<u32, ParseError> {
    let field = btf.string(m.name_off)?;
    let (_, t) = btf.resolved_type(m.type_id)?;
    let BtfKind::Ptr { type_id } = t.kind else {
        return Err(bad(format!("'{field}' is not a pointer")));
    };
    let BtfKind::Array { nelems, .. } = btf.type_by_id(type_id)?.kind else {
        return Err(bad(format!("'{field}' does not point to an array")));
    };
    Ok(nelems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_data_section_names() {
        let p = elf::SHT_PROGBITS;
        let n = elf::SHT_NOBITS;
        assert_eq!(global_data_kind(".data", p, 3), Some(MapKind::Data));
        assert_eq!(global_data_kind(".data.custom", p, 3), Some(MapKind::Data));
        assert_eq!(global_data_kind(".rodata", p, 2), Some(MapKind::Rodata));
        assert_eq!(
            global_data_kind(".rodata.str1.1", p, 0x32),
            Some(MapKind::Rodata)
        );
        assert_eq!(global_data_kind(".bss", n, 3), Some(MapKind::Bss));
        assert_eq!(global_data_kind(".bss.extra", n, 3), Some(MapKind::Bss));
        assert_eq!(global_data_kind(".datax", p, 3), None);
        assert_eq!(global_data_kind(".rodatafoo", p, 2), None);
        assert_eq!(global_data_kind(".bss", p, 3), None); // .bss must be NOBITS
        assert_eq!(global_data_kind(".data", n, 3), None);
        assert_eq!(global_data_kind(".data", p, 6), None); // executable
    }

    #[test]
    fn read_u32_past_the_end_is_zero() {
        assert_eq!(read_u32(&[1, 0, 0, 0, 2], 0), 1);
        assert_eq!(read_u32(&[1, 0, 0, 0, 2], 2), 0);
    }
}
