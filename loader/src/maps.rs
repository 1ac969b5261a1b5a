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
use crate::{MapKind, MapSpec, SlotTarget};

pub use isa::uapi::{BPF_F_MMAPABLE, BPF_F_RDONLY_PROG};
use isa::uapi::{
    BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH_OF_MAPS,
    BPF_MAP_TYPE_PROG_ARRAY,
};

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

/// Where a BTF-defined map's definition lies in `.maps`, for its initial slots.
#[derive(Debug, Clone, Copy)]
struct Extent {
    /// Index of the map in the object's map list.
    map: usize,
    /// Byte offset and size of the definition (its DATASEC slot).
    offset: u64,
    size: u64,
    /// Byte offset of the last member inside the definition, when it is `values`.
    values_offset: Option<u64>,
}

/// All maps of the object in libbpf's order: legacy `maps`, `.maps`, then
/// global data sections in section order; BTF-defined maps carry their
/// initial slots (`.rel.maps`).
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
    let mut extents = Vec::new();
    let maps_idx = elf.section_by_name(".maps");
    if let Some(idx) = maps_idx {
        let btf = btf.ok_or(ParseError::MapsWithoutBtf)?;
        for (spec, site, mut extent) in btf_maps(elf, idx, btf)? {
            extent.map = out.len();
            extents.push(extent);
            out.push((spec, site));
        }
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
            map_extra: 0,
            kind,
            initial_data: Some(initial),
            btf_key_type_id: 0,
            btf_value_type_id: datasec.unwrap_or(0),
            pinning: 0,
            inner: None,
            init_slots: Vec::new(),
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
    if let Some(idx) = maps_idx {
        collect_init_slots(elf, idx, &extents, &mut out)?;
    }
    Ok(out.into_iter().unzip())
}

/// libbpf's `bpf_object__collect_map_relos`: each relocation of `.maps`
/// (clang emits them for `.values = { [i] = &x }`) fills slot
/// `(r_offset - definition offset - offset of 'values') / 8` of the map
/// whose definition covers it. The symbol must be a BTF-defined map for an
/// array/hash of maps (whose key must then be 4 bytes for a hash), an entry
/// program for a prog_array; any other map type is an error. A later
/// relocation of the same slot replaces the earlier one.
fn collect_init_slots(
    elf: &Elf,
    maps_idx: usize,
    extents: &[Extent],
    out: &mut [(MapSpec, MapSite)],
) -> Result<(), ParseError> {
    for (rel_idx, rel_sec) in elf.sections.iter().enumerate() {
        if rel_sec.sh_type != elf::SHT_REL || rel_sec.info as usize != maps_idx {
            continue;
        }
        for (index, rel) in elf.rels(rel_idx)?.into_iter().enumerate() {
            let sym = elf.symbols.get(rel.symbol).filter(|_| rel.symbol != 0);
            let bad = |reason: String| ParseError::BadMapSlot {
                section: rel_sec.name.clone(),
                index,
                offset: rel.offset,
                symbol: sym.map_or_else(|| format!("#{}", rel.symbol), |s| s.name.clone()),
                reason,
            };
            let Some(sym) = sym else {
                return Err(bad("the relocation names no symbol".into()));
            };
            let covers = |e: &&Extent| {
                e.offset <= rel.offset
                    && rel
                        .offset
                        .checked_add(8)
                        .is_some_and(|end| end <= e.offset + e.size)
            };
            let Some(ext) = extents.iter().find(covers) else {
                return Err(bad("no map definition in .maps covers this offset".into()));
            };
            let spec = &out[ext.map].0;
            let target = match spec.map_type {
                BPF_MAP_TYPE_ARRAY_OF_MAPS | BPF_MAP_TYPE_HASH_OF_MAPS => {
                    if sym.shndx as usize != maps_idx {
                        return Err(bad(format!(
                            "slot of map '{}' names a symbol that is not a BTF-defined map",
                            spec.name
                        )));
                    }
                    if spec.map_type == BPF_MAP_TYPE_HASH_OF_MAPS && spec.key_size != 4 {
                        return Err(bad(format!(
                            "hash of maps '{}' has key size {}, must be 4 for initial slots",
                            spec.name, spec.key_size
                        )));
                    }
                    let found = out.iter().position(|(m, site)| {
                        m.kind == MapKind::Regular && site.section == maps_idx && m.name == sym.name
                    });
                    let Some(found) = found else {
                        return Err(bad("symbol is not a valid map reference".into()));
                    };
                    SlotTarget::Map(found)
                }
                BPF_MAP_TYPE_PROG_ARRAY => {
                    let sec = elf.sections.get(sym.shndx as usize);
                    let entry = sym.st_type == elf::STT_FUNC
                        && sec.is_some_and(|s| s.is_exec() && s.name != ".text");
                    if !entry {
                        return Err(bad(format!(
                            "slot of prog_array '{}' names a symbol that is not an entry-point program",
                            spec.name
                        )));
                    }
                    SlotTarget::Program(sym.name.clone())
                }
                other => {
                    return Err(bad(format!(
                        "map '{}' of type {other} is neither a map of maps nor a prog_array",
                        spec.name
                    )))
                }
            };
            let Some(moff) = ext.values_offset else {
                return Err(bad(format!(
                    "map '{}' has no 'values' member as its last member",
                    spec.name
                )));
            };
            let within = rel.offset - ext.offset;
            let Some(within) = within.checked_sub(moff) else {
                return Err(bad(format!(
                    "offset is before the 'values' member of map '{}'",
                    spec.name
                )));
            };
            if within % 8 != 0 {
                return Err(bad(format!(
                    "offset is not on an 8-byte slot of 'values' in map '{}'",
                    spec.name
                )));
            }
            // The definition's size is a u32, so the slot fits one.
            let slot = (within / 8) as u32;
            let slots = &mut out[ext.map].0.init_slots;
            match slots.binary_search_by_key(&slot, |(s, _)| *s) {
                Ok(p) => slots[p].1 = target,
                Err(p) => slots.insert(p, (slot, target)),
            }
        }
    }
    Ok(())
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
    if !sec.size.is_multiple_of(count) || sec.size == 0 {
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
            map_extra: 0,
            kind: MapKind::Regular,
            initial_data: None,
            btf_key_type_id: 0,
            btf_value_type_id: 0,
            pinning: if def_size >= 28 { field(24) } else { 0 },
            inner: None,
            init_slots: Vec::new(),
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
fn btf_maps(
    elf: &Elf,
    idx: usize,
    btf: &Btf,
) -> Result<Vec<(MapSpec, MapSite, Extent)>, ParseError> {
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
        if end.is_none_or(|end| end > sec.size) {
            return Err(bad(
                name,
                offset,
                "definition extends past the end of .maps",
            ));
        }
        let spec = btf_map_def(btf, name, members, false, &sec.name, offset)?;
        let values_offset = match members.last() {
            Some(m) if btf.string(m.name_off)? == "values" => {
                Some(u64::from(m.bit_offset(def.kind_flag) / 8))
            }
            _ => None,
        };
        out.push((
            spec,
            MapSite {
                section: idx,
                offset,
            },
            Extent {
                map: 0,
                offset,
                size: u64::from(vi.size),
                values_offset,
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
        map_extra: 0,
        kind: MapKind::Regular,
        initial_data: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
        pinning: 0,
        inner: None,
        init_slots: Vec::new(),
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
            "map_extra" => spec.map_extra = u64::from(field_int(btf, m, &bad)?),
            "numa_node" => {
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

    /// bpf-progs' xdp_mim: initial slots of an array of maps, a hash of maps
    /// and a prog_array (see its C source).
    const MIM: &[u8] = include_bytes!("../../bpf-progs/obj/xdp_mim.o");

    fn slots(obj: &crate::Object, map: &str) -> Vec<(u32, SlotTarget)> {
        let i = obj.map_index(map).expect(map);
        obj.maps[i].init_slots.clone()
    }

    #[test]
    fn initial_slots_follow_the_values_initialisers() {
        let obj = crate::Object::parse(MIM).expect("xdp_mim parses");
        let m = |name: &str| SlotTarget::Map(obj.map_index(name).expect(name));
        // .values = { [0] = &arr_icmp, [1] = &arr_tcp, [3] = &arr_udp }
        assert_eq!(
            slots(&obj, "by_proto"),
            vec![(0, m("arr_icmp")), (1, m("arr_tcp")), (3, m("arr_udp"))]
        );
        // .values = { [IPPROTO_TCP] = &flows_tcp, [IPPROTO_UDP] = &flows_udp }
        assert_eq!(
            slots(&obj, "by_l4"),
            vec![(6, m("flows_tcp")), (17, m("flows_udp"))]
        );
        // .values = { [0] = (void *)&xdp_mim }
        assert_eq!(
            slots(&obj, "mim_jmp"),
            vec![(0, SlotTarget::Program("xdp_mim".into()))]
        );
        for other in ["arr_icmp", "flows_udp", "mim_stats"] {
            assert!(slots(&obj, other).is_empty(), "{other}");
        }
        let outer = &obj.maps[obj.map_index("by_proto").unwrap()];
        assert_eq!(
            (outer.map_type, outer.value_size),
            (BPF_MAP_TYPE_ARRAY_OF_MAPS, 4)
        );
        let inner = outer.inner.as_ref().expect("inner template");
        assert_eq!(
            (inner.map_type, inner.max_entries, inner.value_size),
            (2, 4, 8)
        );
    }

    /// xdp_mim with relocation `index` of `.rel.maps` rewritten by `edit`
    /// (given r_offset and the symbol index), parsed.
    fn patched(index: usize, edit: impl Fn(&mut u64, &mut u64)) -> ParseError {
        let elf = Elf::parse(MIM).expect("elf");
        let rel = elf.section_by_name(".rel.maps").expect(".rel.maps");
        let start = elf.sections[rel].data.as_ptr() as usize - MIM.as_ptr() as usize + 16 * index;
        let mut bytes = MIM.to_vec();
        let word = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        let mut offset = word(&bytes, start);
        let info = word(&bytes, start + 8);
        let mut sym = info >> 32;
        edit(&mut offset, &mut sym);
        bytes[start..start + 8].copy_from_slice(&offset.to_le_bytes());
        let info = sym << 32 | (info & 0xffff_ffff);
        bytes[start + 8..start + 16].copy_from_slice(&info.to_le_bytes());
        crate::Object::parse(&bytes).expect_err("patched object must not parse")
    }

    fn symbol(name: &str) -> u64 {
        let elf = Elf::parse(MIM).expect("elf");
        elf.symbols.iter().position(|s| s.name == name).expect(name) as u64
    }

    fn reason(err: ParseError) -> String {
        match err {
            ParseError::BadMapSlot {
                section, reason, ..
            } => {
                assert_eq!(section, ".rel.maps");
                reason
            }
            other => panic!("expected BadMapSlot, got {other:?}"),
        }
    }

    #[test]
    fn bad_initial_slots_are_errors() {
        // The relocations in order: arr_icmp, arr_tcp, arr_udp (by_proto),
        // flows_tcp, flows_udp (by_l4), xdp_mim (mim_jmp).
        let func = symbol("xdp_mim");
        let r = reason(patched(0, |_, s| *s = func));
        assert!(r.contains("not a BTF-defined map"), "{r}");
        let map = symbol("arr_icmp");
        let r = reason(patched(5, |_, s| *s = map));
        assert!(r.contains("not an entry-point program"), "{r}");
        // Into mim_stats, a plain array: slots belong to maps of maps and prog_arrays.
        let elf = Elf::parse(MIM).expect("elf");
        let stats = elf
            .symbols
            .iter()
            .find(|s| s.name == "mim_stats")
            .expect("mim_stats")
            .value;
        let r = reason(patched(0, |o, _| *o = stats + 8));
        assert!(r.contains("neither a map of maps nor a prog_array"), "{r}");
        let r = reason(patched(1, |o, _| *o += 4));
        assert!(r.contains("8-byte slot"), "{r}");
        let r = reason(patched(0, |o, _| *o = 1 << 20));
        assert!(r.contains("no map definition"), "{r}");
        let r = reason(patched(0, |_, s| *s = 0));
        assert!(r.contains("no symbol"), "{r}");
        // Before `values`: the first bytes of by_proto's definition (its `type`).
        let outer = elf
            .symbols
            .iter()
            .find(|s| s.name == "by_proto")
            .expect("by_proto")
            .value;
        let r = reason(patched(0, |o, _| *o = outer));
        assert!(r.contains("before the 'values' member"), "{r}");
    }

    #[test]
    fn read_u32_past_the_end_is_zero() {
        assert_eq!(read_u32(&[1, 0, 0, 0, 2], 0), 1);
        assert_eq!(read_u32(&[1, 0, 0, 0, 2], 2), 0);
    }
}
