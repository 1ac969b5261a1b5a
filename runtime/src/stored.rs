//! Programs recorded in the store: the record `BPF_PROG_LOAD` makes (runnable
//! instructions, the ids of the maps they use, the kernel's tag), and the way
//! back from a program id to a [`LoadedObject`] any process can run.

use isa::RawInsn;

use crate::error::{LoadError, VerifyError};
use crate::maptable::{types, BoundMap, MapTable};
use crate::{program, LoadedObject};

use isa::opcode::{
    BPF_PSEUDO_CALL as PSEUDO_CALL, BPF_PSEUDO_FUNC as PSEUDO_FUNC,
    BPF_PSEUDO_MAP_FD as PSEUDO_MAP_FD, BPF_PSEUDO_MAP_IDX as PSEUDO_MAP_IDX,
    BPF_PSEUDO_MAP_IDX_VALUE as PSEUDO_MAP_IDX_VALUE, BPF_PSEUDO_MAP_VALUE as PSEUDO_MAP_VALUE,
    CALL, LDDW,
};
use isa::uapi::{
    BPF_F_XDP_HAS_FRAGS as F_XDP_HAS_FRAGS, BPF_PROG_TYPE_EXT as PROG_TYPE_EXT,
    BPF_PROG_TYPE_XDP as PROG_TYPE_XDP,
};

/// The store record of a program whose map references index `maps` (lddw with
/// src_reg 5/6): the same instructions with references renumbered to the
/// program's own map id list, the kernel's tag, and that list.
pub fn program_def(
    name: &str,
    prog_type: u32,
    insns: &[RawInsn],
    maps: &MapTable,
) -> maps::ProgramDef {
    let mut stored = insns.to_vec();
    let mut map_ids: Vec<u32> = Vec::new();
    let _ = for_each_map_load(&mut stored, |_, ld| -> Result<(), ()> {
        if !matches!(ld[0].src, PSEUDO_MAP_IDX | PSEUDO_MAP_IDX_VALUE) {
            return Ok(());
        }
        if let Some(m) = usize::try_from(ld[0].imm).ok().and_then(|ix| maps.get(ix)) {
            ld[0].imm = index_in(&mut map_ids, m.info.id) as i32;
        }
        Ok(())
    });
    maps::ProgramDef {
        name: name.to_string(),
        prog_type,
        tag: prog_tag(&stored),
        insns: stored.iter().flat_map(|x| x.to_bytes()).collect(),
        map_ids,
        gpl_compatible: true,
        // SAFETY: getuid cannot fail.
        uid: unsafe { libc::getuid() },
        ..maps::ProgramDef::default()
    }
}

/// The kernel's program tag (bpf_prog_calc_tag): the first 8 bytes of the
/// SHA-256 (the kernel's hash since 6.18; SHA-1 before) of the instructions
/// with both immediates of every map-referencing lddw zeroed and its src_reg
/// as user space gave it (fd or map-value form).
pub fn prog_tag(insns: &[RawInsn]) -> [u8; 8] {
    let mut v = insns.to_vec();
    let _ = for_each_map_load(&mut v, |_, ld| -> Result<(), ()> {
        ld[0].src = if matches!(ld[0].src, PSEUDO_MAP_FD | PSEUDO_MAP_IDX) {
            PSEUDO_MAP_FD
        } else {
            PSEUDO_MAP_VALUE
        };
        for half in ld.iter_mut() {
            half.imm = 0;
        }
        Ok(())
    });
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_bytes()).collect();
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&bytes);
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&digest[..8]);
    tag
}

/// Calls `f` on every lddw that references a map (src_reg 1, 2, 5 or 6) with
/// its pc and its slots (both, or the first alone if the program is cut short).
pub fn for_each_map_load<E>(
    insns: &mut [RawInsn],
    mut f: impl FnMut(usize, &mut [RawInsn]) -> Result<(), E>,
) -> Result<(), E> {
    let mut i = 0;
    while i < insns.len() {
        let x = insns[i];
        if x.code == LDDW
            && matches!(
                x.src,
                PSEUDO_MAP_FD | PSEUDO_MAP_VALUE | PSEUDO_MAP_IDX | PSEUDO_MAP_IDX_VALUE
            )
        {
            let end = (i + 2).min(insns.len());
            f(i, &mut insns[i..end])?;
        }
        i += if x.code == LDDW { 2 } else { 1 };
    }
    Ok(())
}

/// The position of `id` in `list`, appending it if absent.
pub fn index_in(list: &mut Vec<u32>, id: u32) -> usize {
    match list.iter().position(|&x| x == id) {
        Some(p) => p,
        None => {
            list.push(id);
            list.len() - 1
        }
    }
}

/// The section name the verifier checks a stored program as.
fn section_of(prog_flags: u32) -> &'static str {
    if prog_flags & F_XDP_HAS_FRAGS != 0 {
        "xdp.frags"
    } else {
        "xdp"
    }
}

/// Start slots of the subprograms of `insns`, found as the kernel finds them:
/// targets of bpf-to-bpf calls and of callback (BPF_PSEUDO_FUNC) loads.
pub fn subprog_starts(insns: &[RawInsn]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i < insns.len() {
        let x = insns[i];
        let is_target =
            (x.code == CALL && x.src == PSEUDO_CALL) || (x.code == LDDW && x.src == PSEUDO_FUNC);
        let target = is_target.then(|| i as i64 + 1 + i64::from(x.imm));
        if let Some(t) = target.filter(|&t| t > 0 && (t as usize) < insns.len()) {
            starts.push(t as usize);
        }
        i += if x.code == LDDW { 2 } else { 1 };
    }
    starts.sort_unstable();
    starts.dedup();
    starts
}

/// Binds maps by id, in order (see [`with_store_maps`] for maps of maps).
pub fn bind_maps(store: &maps::Store, ids: &[u32]) -> Result<MapTable, LoadError> {
    let mut bound = Vec::with_capacity(ids.len());
    for &id in ids {
        let map = store.map_by_id(id).map_err(|source| LoadError::Map {
            name: format!("id {id}"),
            source,
        })?;
        let info = map.info();
        bound.push(BoundMap {
            name: info.name.clone(),
            info,
            map,
        });
    }
    Ok(with_store_maps(store, bound))
}

/// A map table of `bound`; when a map of maps is among them, every other map of
/// the store is bound as a possible inner map.
pub fn with_store_maps(store: &maps::Store, bound: Vec<BoundMap>) -> MapTable {
    let mut inner = Vec::new();
    if bound
        .iter()
        .any(|b| matches!(b.info.map_type, types::ARRAY_OF_MAPS | types::HASH_OF_MAPS))
    {
        for id in store.map_ids() {
            if bound.iter().any(|b| b.info.id == id) {
                continue;
            }
            // A map removed or corrupt meanwhile is simply not bound.
            if let Ok(map) = store.map_by_id(id) {
                let info = map.info();
                inner.push(BoundMap {
                    name: info.name.clone(),
                    info,
                    map,
                });
            }
        }
    }
    // The store's connection and pending tables, for conntrack kfuncs.
    let mut conntrack = [None, None];
    for (i, def) in crate::kfuncs::conntrack::table_defs().iter().enumerate() {
        let Ok(map) = store.map_by_name(&def.name) else {
            continue;
        };
        let info = map.info();
        if crate::kfuncs::conntrack::table_kind(&info) != Some(i) {
            continue;
        }
        conntrack[i] = Some(info.id);
        if !bound.iter().chain(&inner).any(|b| b.info.id == info.id) {
            inner.push(BoundMap {
                name: info.name.clone(),
                info,
                map,
            });
        }
    }
    let mut table = MapTable::with_inner(bound, inner);
    if let [Some(t), Some(p)] = conntrack {
        table.set_conntrack(t, p);
    }
    // A store whose header cannot be read has no maps to bind either; keep the
    // table's own secret then.
    if let Ok(secret) = store.syncookie_secret() {
        table.set_syncookie_secret(secret);
    }
    table
}

/// Verifies `def` (map references index `def.map_ids`; `def.tag` from
/// [`prog_tag`]) and records it in the store: `BPF_PROG_LOAD`. Returns the
/// program id.
///
/// `strict`: also refuse a program whose accesses the analysis did not all prove safe
/// (`VerifyError::Unproven`, see `LoadOptions::strict`).
pub fn register(
    store: &maps::Store,
    def: &maps::ProgramDef,
    strict: bool,
) -> Result<u32, LoadError> {
    let mut insns = raw_insns(&def.insns);
    // Kfunc calls arrive with the kernel's BTF ids; the store keeps the runtime's.
    let resolved;
    let def = if crate::kfuncs::resolve_kernel_ids(&def.name, &mut insns)? {
        resolved = maps::ProgramDef {
            insns: insns.iter().flat_map(|x| x.to_bytes()).collect(),
            ..def.clone()
        };
        &resolved
    } else {
        def
    };
    let uses_ct = insns.iter().any(|x| {
        x.code == isa::opcode::CALL
            && x.src == isa::opcode::BPF_PSEUDO_KFUNC_CALL
            && crate::kfuncs::name_of(x.imm).is_some_and(crate::kfuncs::uses_conntrack)
    });
    if uses_ct {
        crate::kfuncs::conntrack::ensure_tables(store)?;
    }
    let maps = bind_maps(store, &def.map_ids)?;
    let section = section_of(def.prog_flags);
    let p = program::prepare(&def.name, section, &insns, &subprog_starts(&insns), &maps)?;
    if strict {
        p.analysis().strict(&def.name)?;
    }
    store
        .register_program(def)
        .map_err(|source| LoadError::Object {
            what: format!("program {}", def.name),
            source,
        })
}

/// 8-byte instruction slots from their bytes (a trailing partial slot is dropped).
pub fn raw_insns(bytes: &[u8]) -> Vec<RawInsn> {
    bytes
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            RawInsn::from_bytes(b)
        })
        .collect()
}

impl LoadedObject {
    /// Program `id` of the store, with its maps, ready to run; returns the
    /// object and the index of program `id` in it. When the program reaches
    /// prog_arrays, every program their slots name (transitively) is loaded
    /// too, each at index `id - 1` so the slots' store ids are the engines'
    /// tail-call targets; indexes no slot names hold a program returning
    /// XDP_ABORTED (a slot changed to such an id during the run would reach it).
    pub fn from_store(store: &maps::Store, id: u32) -> Result<(LoadedObject, usize), LoadError> {
        let obj_err = |pid: u32| {
            move |source| LoadError::Object {
                what: format!("program {pid}"),
                source,
            }
        };
        // The programs to load: `id` and what prog_array slots reach from it.
        let mut order: Vec<u32> = vec![id];
        // Whether the programs use a prog_array: then store ids are tail-call targets
        // (slots may be filled after this load, the program itself included), and
        // every program sits at `id - 1`.
        let mut tail_calls = false;
        let mut infos = Vec::new();
        let mut i = 0;
        while i < order.len() {
            let pid = order[i];
            i += 1;
            let info = store.program_by_id(pid).map_err(obj_err(pid))?;
            if info.prog_type != PROG_TYPE_XDP {
                return Err(LoadError::NotXdp {
                    name: info.name,
                    section: format!("program type {}", info.prog_type),
                });
            }
            for &mid in &info.map_ids {
                let m = store.map_by_id(mid).map_err(|source| LoadError::Map {
                    name: format!("id {mid}"),
                    source,
                })?;
                if m.info().map_type != types::PROG_ARRAY {
                    continue;
                }
                tail_calls = true;
                for slot in 0..m.info().max_entries {
                    if let Some(t) = m.prog_array_get(slot).filter(|&t| t != 0) {
                        if info.holder_pid == 0 {
                            // Recorded by `xdp-runner run --store`: its slots hold
                            // the object's own program numbers, not store ids.
                            return Err(LoadError::Rejected {
                                name: info.name,
                                reason: format!(
                                    "prog_array {} holds the loading object's program numbers; run the object itself",
                                    m.info().name
                                ),
                            });
                        }
                        if !order.contains(&t) {
                            order.push(t);
                        }
                    }
                }
            }
            infos.push(info);
        }
        // The extension programs replacing their functions (freplace links).
        let mut exts: Vec<(u32, maps::Replacement, maps::ProgramInfo)> = Vec::new();
        for info in &infos {
            for r in store.replacements_of(info.id) {
                let ext = store.program_by_id(r.ext).map_err(obj_err(r.ext))?;
                if ext.prog_type != PROG_TYPE_EXT {
                    return Err(LoadError::Freplace {
                        name: info.name.clone(),
                        link_id: r.link_id,
                        source: crate::error::FreplaceError::NotExtension {
                            ext: r.ext,
                            prog_type: ext.prog_type,
                        },
                    });
                }
                exts.push((info.id, r, ext));
            }
        }
        // One map table for all of them; each program's references renumbered into it.
        let mut union: Vec<u32> = Vec::new();
        for info in infos.iter().chain(exts.iter().map(|(_, _, e)| e)) {
            for &m in &info.map_ids {
                index_in(&mut union, m);
            }
        }
        let maps = bind_maps(store, &union)?;
        let renumber = |info: &maps::ProgramInfo, insns: &mut [RawInsn]| {
            let _ = for_each_map_load(insns, |_, ld| -> Result<(), ()> {
                let own = usize::try_from(ld[0].imm).ok();
                let mid = own.and_then(|o| info.map_ids.get(o)).copied();
                if let Some(pos) = mid.and_then(|m| union.iter().position(|&u| u == m)) {
                    ld[0].imm = pos as i32;
                }
                Ok(())
            });
        };
        let mut prepared: Vec<(u32, crate::Prepared)> = Vec::new();
        for info in &infos {
            let bytes = store.program_insns(info.id).map_err(obj_err(info.id))?;
            let mut insns = raw_insns(&bytes);
            renumber(info, &mut insns);
            let mut starts = subprog_starts(&insns);
            let mine: Vec<&(u32, maps::Replacement, maps::ProgramInfo)> =
                exts.iter().filter(|(t, _, _)| *t == info.id).collect();
            if !mine.is_empty() {
                let mut ext_insns = Vec::with_capacity(mine.len());
                for (_, _, ext) in &mine {
                    let mut e = raw_insns(&store.program_insns(ext.id).map_err(obj_err(ext.id))?);
                    renumber(ext, &mut e);
                    ext_insns.push(e);
                }
                let splices: Vec<crate::freplace::Splice<'_>> = mine
                    .iter()
                    .zip(&ext_insns)
                    .map(|((_, r, _), e)| crate::freplace::Splice {
                        func_start: r.func_start as usize,
                        ext: e,
                    })
                    .collect();
                (insns, starts) =
                    crate::freplace::splice(&insns, &starts, &splices).map_err(|source| {
                        LoadError::Freplace {
                            name: info.name.clone(),
                            link_id: mine[0].1.link_id,
                            source,
                        }
                    })?;
            }
            let section = section_of(info.prog_flags);
            let p = program::prepare(&info.name, section, &insns, &starts, &maps).map_err(
                |e: VerifyError| LoadError::Rejected {
                    name: info.name.clone(),
                    reason: e.to_string(),
                },
            )?;
            let mut p = p;
            p.store_id = info.id;
            prepared.push((info.id, p));
        }
        if !tail_calls {
            let (_, mut p) = prepared.swap_remove(0);
            program::forget_entry_ctx_if_tail_calls_forge_it(std::slice::from_mut(&mut p));
            return Ok((
                LoadedObject {
                    maps,
                    all_programs: vec![(p.name.clone(), p.section.clone())],
                    programs: vec![p],
                    rejected: Vec::new(),
                },
                0,
            ));
        }
        let top = prepared.iter().map(|(pid, _)| *pid).max().unwrap_or(id) as usize;
        let aborted = [
            RawInsn::from_bytes([0xb7, 0, 0, 0, 0, 0, 0, 0]),
            RawInsn::from_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),
        ];
        let filler = program::prepare("absent", "xdp", &aborted, &[], &maps)?;
        let mut programs = vec![filler; top];
        let mut all_programs = Vec::new();
        for (pid, p) in prepared {
            all_programs.push((p.name.clone(), p.section.clone()));
            programs[pid as usize - 1] = p;
        }
        program::forget_entry_ctx_if_tail_calls_forge_it(&mut programs);
        Ok((
            LoadedObject {
                maps,
                programs,
                rejected: Vec::new(),
                all_programs,
            },
            id as usize - 1,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maptable::MapTable;

    fn lddw(src: u8, imm: i32) -> [RawInsn; 2] {
        [
            RawInsn {
                code: LDDW,
                dst: 1,
                src,
                off: 0,
                imm,
            },
            RawInsn {
                code: 0,
                dst: 0,
                src: 0,
                off: 0,
                imm: 0,
            },
        ]
    }

    #[test]
    fn subprograms_are_call_and_callback_targets() {
        let exit = RawInsn {
            code: 0x95,
            dst: 0,
            src: 0,
            off: 0,
            imm: 0,
        };
        let call = |imm| RawInsn {
            code: CALL,
            dst: 0,
            src: PSEUDO_CALL,
            off: 0,
            imm,
        };
        let helper = RawInsn {
            code: CALL,
            dst: 0,
            src: 0,
            off: 0,
            imm: 1,
        };
        let [l0, l1] = lddw(PSEUDO_FUNC, 4);
        // 0 call +3 -> 4; 1 helper; 2-3 lddw func +4 -> 7; 4 exit...
        let insns = [call(3), helper, l0, l1, exit, exit, exit, exit];
        assert_eq!(subprog_starts(&insns), vec![4, 7]);
    }

    #[test]
    fn the_tag_ignores_which_map_an_instruction_names() {
        let exit = RawInsn {
            code: 0x95,
            dst: 0,
            src: 0,
            off: 0,
            imm: 0,
        };
        let a: Vec<RawInsn> = lddw(PSEUDO_MAP_FD, 3).into_iter().chain([exit]).collect();
        let b: Vec<RawInsn> = lddw(PSEUDO_MAP_IDX, 0).into_iter().chain([exit]).collect();
        let c: Vec<RawInsn> = lddw(PSEUDO_MAP_VALUE, 3)
            .into_iter()
            .chain([exit])
            .collect();
        assert_eq!(prog_tag(&a), prog_tag(&b));
        assert_ne!(prog_tag(&a), prog_tag(&c));
        // program_def renumbers references to the program's own map list.
        let store = maps::Store::anonymous(maps::StoreOptions {
            size: 1 << 20,
            ncpus: Some(1),
        })
        .expect("store");
        let mk = |name: &str| {
            let map = store
                .create_map(&maps::MapDef {
                    map_type: maps::BPF_MAP_TYPE_ARRAY,
                    key_size: 4,
                    value_size: 4,
                    max_entries: 1,
                    name: name.into(),
                    ..maps::MapDef::default()
                })
                .expect("map");
            let info = map.info();
            BoundMap {
                name: name.into(),
                info,
                map,
            }
        };
        let (m0, m1) = (mk("a"), mk("b"));
        let ids = (m0.info.id, m1.info.id);
        let table = MapTable::with_inner(vec![m0, m1], Vec::new());
        let insns: Vec<RawInsn> = lddw(PSEUDO_MAP_IDX, 1).into_iter().chain([exit]).collect();
        let def = program_def("p", PROG_TYPE_XDP, &insns, &table);
        assert_eq!(def.map_ids, vec![ids.1]);
        assert_eq!(def.insns[4..8], 0i32.to_le_bytes());
        let id = register(&store, &def, false).expect("register");
        let (loaded, entry) = LoadedObject::from_store(&store, id).expect("from store");
        assert_eq!(entry, 0);
        assert_eq!(loaded.maps.get(0).map(|m| m.info.id), Some(ids.1));
        assert_eq!(loaded.programs.len(), 1);
    }
}
