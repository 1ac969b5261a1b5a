//! Programs: splitting executable sections into functions, recording the
//! relocations of their instructions, and linking each entry program with the
//! subprograms it reaches, as libbpf's `bpf_object__add_programs`,
//! `bpf_program__record_reloc`, `bpf_object__reloc_code` and
//! `bpf_object__relocate_data` do.

use std::collections::{BTreeMap, HashMap};

use isa::opcode::{
    BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC, BPF_PSEUDO_KFUNC_CALL, BPF_PSEUDO_MAP_IDX,
    BPF_PSEUDO_MAP_IDX_VALUE, CALL, LDDW,
};
use isa::RawInsn;
use object::elf;

use crate::btf::Btf;
use crate::btf_ext::BtfExt;
use crate::core::{self as co_re, CandidateCache, CoreReloKind, CoreReloRef};
use crate::elf::Elf;
use crate::error::{CoreError, OptionError, ParseError, RelocError};
use crate::maps::MapSite;
use crate::options::{LoadOptions, ProgramFilter, TargetSource};
use crate::{
    program_type, CoreRelocation, KfuncCall, MapKind, MapSpec, PoisonedInsn, Program, ProgramType,
    Subprog,
};

/// `R_BPF_64_64`: lddw of a map, global data or function address.
pub const R_BPF_64_64: u32 = 1;
/// `R_BPF_64_32`: call of a function.
pub const R_BPF_64_32: u32 = 10;

/// One function symbol of an executable section.
struct Func {
    name: String,
    section: usize,
    /// First slot, within the section.
    start: usize,
    /// Length in slots.
    len: usize,
}

#[derive(Clone, Copy)]
enum RelocKind {
    /// Call of a `.text` function at byte `sym_off` (plus the call's imm).
    Call { sym_off: u64 },
    /// Address of a `.text` function (`BPF_PSEUDO_FUNC` lddw).
    SubprogAddr { sym_off: u64 },
    /// Call of a kernel function (an undefined symbol, `extern ... __ksym`), by
    /// index in `Ctx::extern_names`.
    Kfunc { name: usize },
    /// Address of a map.
    Map { map: usize },
    /// Address inside a global data map.
    Data { map: usize, sym_off: u64 },
}

struct Ctx<'e, 'a> {
    elf: &'e Elf<'a>,
    /// Decoded slots of each non-empty executable section.
    insns: HashMap<usize, Vec<RawInsn>>,
    funcs: Vec<Func>,
    /// (section, start slot) -> index in `funcs`.
    by_start: HashMap<(usize, usize), usize>,
    /// (section, slot) -> relocation.
    relocs: BTreeMap<(usize, usize), RelocKind>,
    text: Option<usize>,
    /// Only some programs are loaded: errors tied to an instruction are kept
    /// here and reported only if a loaded program reaches that instruction.
    defer: bool,
    deferred: BTreeMap<(usize, usize), ParseError>,
    /// (section, slot) -> description of the CO-RE relocation that poisoned it.
    poisoned: BTreeMap<(usize, usize), String>,
    /// Names of the kernel functions called (`RelocKind::Kfunc`).
    extern_names: Vec<String>,
}

/// One entry program before linking.
struct Entry {
    fid: usize,
    prog_type: ProgramType,
    frags: bool,
}

pub(crate) fn build_programs(
    elf: &Elf,
    maps: &[MapSpec],
    sites: &[MapSite],
    btf: Option<&Btf>,
    btf_ext: Option<&BtfExt>,
    opts: &LoadOptions,
) -> Result<(Vec<Program>, Vec<CoreRelocation>), ParseError> {
    let mut ctx = Ctx {
        elf,
        insns: HashMap::new(),
        funcs: Vec::new(),
        by_start: HashMap::new(),
        relocs: BTreeMap::new(),
        text: None,
        defer: opts.programs != ProgramFilter::All,
        deferred: BTreeMap::new(),
        poisoned: BTreeMap::new(),
        extern_names: Vec::new(),
    };
    ctx.collect_functions()?;
    let entries = ctx.select_entries(opts)?;
    ctx.check_kfuncs()?;
    ctx.collect_relocs(maps, sites)?;
    let core = match (btf, btf_ext) {
        (Some(btf), Some(ext)) => ctx.apply_core(btf, ext, &entries, opts)?,
        _ => Vec::new(),
    };

    let mut programs = Vec::new();
    for e in entries {
        let f = &ctx.funcs[e.fid];
        let section = elf.sections[f.section].name.clone();
        let (insns, subprogs, core_poisoned, kfuncs) = ctx.link(e.fid)?;
        programs.push(Program {
            name: f.name.clone(),
            section,
            prog_type: e.prog_type,
            frags: e.frags,
            insns,
            subprogs,
            core_poisoned,
            kfuncs,
        });
    }
    Ok((programs, core))
}

impl Ctx<'_, '_> {
    fn sec_name(&self, idx: usize) -> String {
        self.elf.sections[idx].name.clone()
    }

    /// An error tied to instruction `slot` of section `sec`: returned at once,
    /// or kept for [`Ctx::link`] when only some programs are loaded.
    fn fail_at(&mut self, sec: usize, slot: usize, err: ParseError) -> Result<(), ParseError> {
        if self.defer {
            self.deferred.entry((sec, slot)).or_insert(err);
            Ok(())
        } else {
            Err(err)
        }
    }

    /// The function holding `slot` of section `sec`.
    fn func_at(&self, sec: usize, slot: usize) -> Option<usize> {
        self.funcs
            .iter()
            .position(|f| f.section == sec && slot >= f.start && slot < f.start + f.len)
    }

    /// Entry programs with their types (forced ones applied), filtered by
    /// `opts.programs`, in section then address order.
    fn select_entries(&self, opts: &LoadOptions) -> Result<Vec<Entry>, ParseError> {
        let all: Vec<usize> = (0..self.funcs.len())
            .filter(|&fid| Some(self.funcs[fid].section) != self.text)
            .collect();
        let names = |fid: usize| {
            let f = &self.funcs[fid];
            (f.name.as_str(), self.elf.sections[f.section].name.as_str())
        };
        let no_such = |name: &str| {
            let available: Vec<&str> = all.iter().map(|&f| names(f).0).collect();
            ParseError::from(OptionError::NoSuchProgram {
                name: name.to_string(),
                available: available.join(", "),
            })
        };
        let mut entries = Vec::new();
        for &fid in &all {
            let (name, section) = names(fid);
            let (mut prog_type, mut frags) = program_type(section);
            if let Some((_, t)) = opts
                .program_types
                .iter()
                .rev()
                .find(|(n, _)| n == name || n == section)
            {
                if *t != ProgramType::Xdp {
                    frags = false;
                }
                prog_type = t.clone();
            }
            entries.push(Entry {
                fid,
                prog_type,
                frags,
            });
        }
        for (n, _) in &opts.program_types {
            if !all.iter().any(|&f| names(f).0 == n || names(f).1 == n) {
                return Err(no_such(n));
            }
        }
        match &opts.programs {
            ProgramFilter::All => {}
            ProgramFilter::Named(wanted) => {
                for w in wanted {
                    if !all.iter().any(|&f| names(f).0 == w || names(f).1 == w) {
                        return Err(no_such(w));
                    }
                }
                entries.retain(|e| {
                    let (n, s) = names(e.fid);
                    wanted.iter().any(|w| w == n || w == s)
                });
            }
            ProgramFilter::Types(types) => entries.retain(|e| types.contains(&e.prog_type)),
        }
        Ok(entries)
    }

    /// Applies the CO-RE relocations of `.BTF.ext` to the section
    /// instructions, before linking, as libbpf's `bpf_object__relocate_core`
    /// does. Relocations in programs that are not loaded are skipped.
    fn apply_core(
        &mut self,
        btf: &Btf,
        ext: &BtfExt,
        entries: &[Entry],
        opts: &LoadOptions,
    ) -> Result<Vec<CoreRelocation>, ParseError> {
        let mut target = TargetSource::new(opts);
        let mut cache = CandidateCache::new();
        let mut applied = Vec::new();
        for sec_relos in &ext.core_relos {
            let Some(sec) = self.elf.section_by_name(&sec_relos.section) else {
                continue;
            };
            if !self.insns.contains_key(&sec) {
                continue;
            }
            for relo in &sec_relos.records {
                let section = sec_relos.section.clone();
                let insn_index = (relo.insn_off / 8) as usize;
                if relo.insn_off % 8 != 0 {
                    let err = RelocError::Core {
                        section,
                        insn_index,
                        kind: CoreReloKind::from_u32(relo.kind).map_or("unknown", |k| k.name()),
                        spec: co_re::describe_type(btf, relo.type_id),
                        reason: Box::new(CoreError::MisalignedOffset {
                            offset: relo.insn_off,
                        }),
                    };
                    return Err(err.into());
                }
                // Relocations outside any function (an overridden weak
                // function) or in programs not loaded are ignored, as in libbpf.
                let Some(fid) = self.func_at(sec, insn_index) else {
                    continue;
                };
                if Some(sec) != self.text && !entries.iter().any(|e| e.fid == fid) {
                    continue;
                }
                let Some(kind) = CoreReloKind::from_u32(relo.kind) else {
                    let err = RelocError::CoreUnknownKind {
                        section,
                        insn_index,
                        kind: relo.kind,
                    };
                    self.fail_at(sec, insn_index, err.into())?;
                    continue;
                };
                let tgt = if kind.needs_target() {
                    match target.get()? {
                        Ok(t) => Some(t),
                        Err(why) => {
                            let err = RelocError::CoreNoTarget {
                                section,
                                insn_index,
                                kind: kind.name(),
                                type_name: co_re::describe_type(btf, relo.type_id),
                                access: relo.access.clone(),
                                why,
                            };
                            self.fail_at(sec, insn_index, err.into())?;
                            continue;
                        }
                    }
                } else {
                    None
                };
                let r = CoreReloRef {
                    type_id: relo.type_id,
                    access: &relo.access,
                    kind,
                };
                let fail = |spec: String, reason: CoreError| RelocError::Core {
                    section: section.clone(),
                    insn_index,
                    kind: kind.name(),
                    spec,
                    reason: Box::new(reason),
                };
                let (res, spec) = match co_re::calc_relo(btf, r, tgt, &mut cache) {
                    Ok(x) => x,
                    Err(reason) => {
                        let err = fail(co_re::describe_type(btf, relo.type_id), reason);
                        self.fail_at(sec, insn_index, err.into())?;
                        continue;
                    }
                };
                let insns = self
                    .insns
                    .get_mut(&sec)
                    .map(|v| v.as_mut_slice())
                    .unwrap_or(&mut []);
                let poisoned = match co_re::patch_insn(insns, insn_index, &res) {
                    Ok(p) => p,
                    Err(reason) => {
                        self.fail_at(sec, insn_index, fail(spec, reason).into())?;
                        continue;
                    }
                };
                if poisoned {
                    let why = if res.poison {
                        "no match in the target BTF"
                    } else {
                        "the field changed size and is not an unsigned integer or pointer"
                    };
                    self.poisoned.insert(
                        (sec, insn_index),
                        format!(
                            "section '{section}' slot {insn_index}: CO-RE {} {spec}: {why}",
                            kind.name()
                        ),
                    );
                }
                applied.push(CoreRelocation {
                    section,
                    insn_index,
                    kind,
                    spec,
                    target_type_id: res.target_type_id,
                    orig_val: res.orig_val,
                    new_val: res.new_val,
                    poisoned,
                });
            }
        }
        Ok(applied)
    }

    /// Every `STT_FUNC` symbol of every non-empty executable section, in
    /// section order then address order.
    fn collect_functions(&mut self) -> Result<(), ParseError> {
        for (idx, sec) in self.elf.sections.iter().enumerate() {
            if !sec.is_exec() || sec.size == 0 {
                continue;
            }
            if sec.size % 8 != 0 || sec.data.len() as u64 != sec.size {
                return Err(ParseError::TruncatedInstructions {
                    section: sec.name.clone(),
                    size: sec.size,
                });
            }
            if sec.name == ".text" {
                self.text = Some(idx);
            }
            let insns = sec
                .data
                .chunks_exact(8)
                .map(|c| RawInsn::from_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            self.insns.insert(idx, insns);
            let mut syms: Vec<_> = self
                .elf
                .symbols
                .iter()
                .filter(|s| s.shndx as usize == idx && s.st_type == elf::STT_FUNC)
                .collect();
            syms.sort_by_key(|s| s.value);
            for sym in syms {
                let in_range = sym
                    .value
                    .checked_add(sym.size)
                    .is_some_and(|end| end <= sec.size);
                if sym.value % 8 != 0 || sym.size % 8 != 0 || sym.size == 0 || !in_range {
                    return Err(ParseError::BadFunction {
                        section: sec.name.clone(),
                        name: sym.name.clone(),
                        offset: sym.value,
                        size: sym.size,
                    });
                }
                if sec.name != ".text" && sym.bind == elf::STB_LOCAL {
                    return Err(ParseError::StaticProgram {
                        section: sec.name.clone(),
                        name: sym.name.clone(),
                    });
                }
                let start = (sym.value / 8) as usize;
                if self.by_start.contains_key(&(idx, start)) {
                    continue; // an alias of a function already listed: keep the first name
                }
                self.by_start.insert((idx, start), self.funcs.len());
                self.funcs.push(Func {
                    name: sym.name.clone(),
                    section: idx,
                    start,
                    len: (sym.size / 8) as usize,
                });
            }
        }
        Ok(())
    }

    /// Any `call` with src = BPF_PSEUDO_KFUNC_CALL is refused.
    fn check_kfuncs(&mut self) -> Result<(), ParseError> {
        let mut secs: Vec<_> = self.insns.keys().copied().collect();
        secs.sort_unstable();
        for sec in secs {
            let mut i = 0;
            while let Some(&insn) = self.insns[&sec].get(i) {
                if insn.code == CALL && insn.src == BPF_PSEUDO_KFUNC_CALL {
                    let err = RelocError::Kfunc {
                        section: self.sec_name(sec),
                        insn_index: i,
                    };
                    self.fail_at(sec, i, err.into())?;
                }
                i += if insn.code == LDDW { 2 } else { 1 };
            }
        }
        Ok(())
    }

    fn covered(&self, sec: usize, slot: usize) -> bool {
        self.funcs
            .iter()
            .any(|f| f.section == sec && slot >= f.start && slot < f.start + f.len)
    }

    /// Reads every `SHT_REL` section that applies to an executable section.
    fn collect_relocs(&mut self, maps: &[MapSpec], sites: &[MapSite]) -> Result<(), ParseError> {
        for (rel_idx, rel_sec) in self.elf.sections.iter().enumerate() {
            if rel_sec.sh_type == elf::SHT_RELA && self.insns.contains_key(&(rel_sec.info as usize))
            {
                return Err(ParseError::BadSection {
                    index: rel_idx,
                    reason: "SHT_RELA relocations of BPF code",
                });
            }
            if rel_sec.sh_type != elf::SHT_REL {
                continue;
            }
            let target = rel_sec.info as usize;
            if !self.insns.contains_key(&target) {
                continue; // .rel.BTF, .rel.debug_*, .rel.maps: not instruction relocations
            }
            for rel in self.elf.rels(rel_idx)? {
                let kind = match self.record(target, &rel, maps, sites) {
                    Ok(kind) => kind,
                    Err(err) => {
                        // Errors about one instruction may be deferred; those
                        // about the relocation entry itself may not.
                        let slot = (rel.offset / 8) as usize;
                        let len = self.insns.get(&target).map_or(0, |v| v.len());
                        if rel.offset % 8 == 0 && slot < len && self.covered(target, slot) {
                            self.fail_at(target, slot, err)?;
                            continue;
                        }
                        return Err(err);
                    }
                };
                if let Some((slot, mut kind)) = kind {
                    if let RelocKind::Kfunc { name } = &mut kind {
                        let sym = &self.elf.symbols[rel.symbol].name;
                        *name = match self.extern_names.iter().position(|n| n == sym) {
                            Some(i) => i,
                            None => {
                                self.extern_names.push(sym.clone());
                                self.extern_names.len() - 1
                            }
                        };
                    }
                    if let RelocKind::SubprogAddr { .. } = kind {
                        // clang emits src = 0; libbpf marks the lddw as BPF_PSEUDO_FUNC
                        // before linking (bpf_object__relocate).
                        if let Some(insn) =
                            self.insns.get_mut(&target).and_then(|v| v.get_mut(slot))
                        {
                            insn.src = BPF_PSEUDO_FUNC;
                        }
                    }
                    self.relocs.insert((target, slot), kind);
                }
            }
        }
        Ok(())
    }

    /// libbpf's `bpf_program__record_reloc`: classifies one relocation.
    fn record(
        &self,
        sec: usize,
        rel: &crate::elf::Rel,
        maps: &[MapSpec],
        sites: &[MapSite],
    ) -> Result<Option<(usize, RelocKind)>, ParseError> {
        let section = self.sec_name(sec);
        let insns = &self.insns[&sec];
        if rel.r_type != R_BPF_64_64 && rel.r_type != R_BPF_64_32 {
            return Err(RelocError::UnknownType {
                section,
                offset: rel.offset,
                r_type: rel.r_type,
            }
            .into());
        }
        if !rel.offset.is_multiple_of(8) || rel.offset / 8 >= insns.len() as u64 {
            return Err(RelocError::OutOfBounds {
                section,
                offset: rel.offset,
            }
            .into());
        }
        let slot = (rel.offset / 8) as usize;
        if !self.covered(sec, slot) {
            // libbpf skips these too (an overridden weak function).
            return Ok(None);
        }
        let sym = match self.elf.symbols.get(rel.symbol) {
            Some(sym) if rel.symbol != 0 => sym,
            _ => {
                return Err(RelocError::BadSymbol {
                    section,
                    offset: rel.offset,
                    symbol: rel.symbol,
                }
                .into())
            }
        };
        let insn = insns[slot];
        let is_call = insn.code == CALL;
        if sym.is_undefined() {
            if is_call && insn.src == BPF_PSEUDO_CALL {
                // libbpf's RELO_EXTERN_CALL: a kfunc, resolved by name when the
                // program is loaded.
                return Ok(Some((slot, RelocKind::Kfunc { name: usize::MAX })));
            }
            return Err(if is_call {
                RelocError::Kfunc {
                    section,
                    insn_index: slot,
                }
            } else {
                RelocError::Extern {
                    section,
                    insn_index: slot,
                    name: sym.name.clone(),
                }
            }
            .into());
        }
        let target_name = self.elf.section_name(sym.shndx);
        let bad_target = |section: String| RelocError::BadTarget {
            section,
            insn_index: slot,
            symbol: sym.name.clone(),
            target: target_name.clone(),
        };
        let in_text = self.text.is_some_and(|t| t == sym.shndx as usize);
        if is_call {
            if insn.src != BPF_PSEUDO_CALL {
                return Err(RelocError::BadCall {
                    section,
                    insn_index: slot,
                    src: insn.src,
                }
                .into());
            }
            if !in_text || sym.value % 8 != 0 {
                return Err(bad_target(section).into());
            }
            return Ok(Some((slot, RelocKind::Call { sym_off: sym.value })));
        }
        if insn.code != LDDW {
            return Err(RelocError::NotLddw {
                section,
                insn_index: slot,
                code: insn.code,
            }
            .into());
        }
        if slot + 1 >= insns.len() {
            return Err(RelocError::TruncatedLddw {
                section,
                insn_index: slot,
            }
            .into());
        }
        if in_text && (sym.st_type == elf::STT_SECTION || sym.st_type == elf::STT_FUNC) {
            if sym.value % 8 != 0 || insn.imm % 8 != 0 {
                return Err(bad_target(section).into());
            }
            return Ok(Some((slot, RelocKind::SubprogAddr { sym_off: sym.value })));
        }
        let shndx = sym.shndx as usize;
        let target_sec = self.elf.sections.get(shndx);
        let is_map_section = target_sec.is_some_and(|s| s.name == "maps" || s.name == ".maps");
        if is_map_section {
            let found = sites.iter().zip(maps).position(|(site, m)| {
                m.kind == MapKind::Regular && site.section == shndx && site.offset == sym.value
            });
            return match found {
                Some(map) => Ok(Some((slot, RelocKind::Map { map }))),
                None => Err(RelocError::MapNotFound {
                    section,
                    insn_index: slot,
                    target: target_name.clone(),
                    offset: sym.value,
                }
                .into()),
            };
        }
        let found = sites
            .iter()
            .zip(maps)
            .position(|(site, m)| m.kind != MapKind::Regular && site.section == shndx);
        match found {
            Some(map) => Ok(Some((
                slot,
                RelocKind::Data {
                    map,
                    sym_off: sym.value,
                },
            ))),
            None => Err(bad_target(section).into()),
        }
    }

    /// Links entry function `entry`: its slots, then every function it reaches
    /// appended depth-first in order of first reference (libbpf's
    /// `bpf_object__reloc_code`), then map and global data relocations.
    #[allow(clippy::type_complexity)]
    fn link(
        &self,
        entry: usize,
    ) -> Result<
        (
            Vec<RawInsn>,
            Vec<Subprog>,
            Vec<PoisonedInsn>,
            Vec<KfuncCall>,
        ),
        ParseError,
    > {
        let mut out: Vec<RawInsn> = Vec::new();
        let mut placed: HashMap<usize, usize> = HashMap::new();
        let mut subprogs = Vec::new();
        self.append(entry, &mut out, &mut placed, &mut subprogs);

        // (function, base in `out`, next slot to look at)
        let mut stack: Vec<(usize, usize, usize)> = vec![(entry, 0, 0)];
        while let Some(top) = stack.last_mut() {
            let (fid, base, i) = *top;
            let f = &self.funcs[fid];
            if i >= f.len {
                stack.pop();
                continue;
            }
            top.2 += 1;
            let insn = out[base + i];
            let is_call = insn.code == CALL && insn.src == BPF_PSEUDO_CALL;
            let is_func_addr = insn.code == LDDW && insn.src == BPF_PSEUDO_FUNC;
            if !is_call && !is_func_addr {
                continue;
            }
            let sec_slot = f.start + i;
            let section = || self.sec_name(f.section);
            let imm = i64::from(insn.imm);
            let (target_sec, target) = match self.relocs.get(&(f.section, sec_slot)) {
                Some(RelocKind::Kfunc { .. }) if is_call => continue,
                Some(RelocKind::Call { sym_off }) if is_call => {
                    (self.text, (*sym_off / 8) as i64 + imm + 1)
                }
                Some(RelocKind::SubprogAddr { sym_off }) if is_func_addr => {
                    (self.text, (*sym_off as i64).wrapping_add(imm) / 8)
                }
                Some(_) => {
                    return Err(RelocError::BadCallTarget {
                        section: section(),
                        insn_index: sec_slot,
                        target_section: section(),
                        target: imm,
                    }
                    .into())
                }
                None if is_func_addr => {
                    return Err(RelocError::MissingRelocation {
                        section: section(),
                        insn_index: sec_slot,
                    }
                    .into())
                }
                // A call inside one section needs no relocation: imm is relative.
                None => (Some(f.section), sec_slot as i64 + imm + 1),
            };
            let callee = target_sec.and_then(|ts| {
                let t = usize::try_from(target).ok()?;
                self.by_start.get(&(ts, t)).copied()
            });
            let Some(callee) = callee else {
                return Err(RelocError::BadCallTarget {
                    section: section(),
                    insn_index: sec_slot,
                    target_section: target_sec
                        .map(|t| self.sec_name(t))
                        .unwrap_or_else(|| ".text".into()),
                    target,
                }
                .into());
            };
            let callee_base = match placed.get(&callee) {
                Some(&b) => b,
                None => {
                    let b = self.append(callee, &mut out, &mut placed, &mut subprogs);
                    stack.push((callee, b, 0));
                    b
                }
            };
            let rel = callee_base as i64 - (base + i) as i64 - 1;
            out[base + i].imm = i32::try_from(rel).map_err(|_| RelocError::TooLarge {
                program: self.funcs[entry].name.clone(),
                len: out.len(),
            })?;
        }

        // Maps and global data, in every placed function (in placement order,
        // so that the first error reported does not depend on hashing).
        let mut order: Vec<(usize, usize)> = placed.into_iter().collect();
        order.sort_by_key(|&(_, base)| base);
        for &(fid, _) in &order {
            let f = &self.funcs[fid];
            let range = (f.section, f.start)..(f.section, f.start + f.len);
            if let Some((_, err)) = self.deferred.range(range).next() {
                return Err(err.clone());
            }
        }
        let mut core_poisoned = Vec::new();
        let mut kfuncs = Vec::new();
        for &(fid, base) in &order {
            let f = &self.funcs[fid];
            let range = (f.section, f.start)..(f.section, f.start + f.len);
            for (&(_, slot), why) in self.poisoned.range(range) {
                core_poisoned.push(PoisonedInsn {
                    insn: base + slot - f.start,
                    relocation: why.clone(),
                });
            }
        }
        for (fid, base) in order {
            let f = &self.funcs[fid];
            for (&(_, slot), kind) in self
                .relocs
                .range((f.section, f.start)..(f.section, f.start + f.len))
            {
                let at = base + slot - f.start;
                let (src, imm, next_imm) = match *kind {
                    RelocKind::Map { map } => (BPF_PSEUDO_MAP_IDX, map as i32, 0),
                    RelocKind::Data { map, sym_off } => (
                        BPF_PSEUDO_MAP_IDX_VALUE,
                        map as i32,
                        out[at].imm.wrapping_add(sym_off as i32),
                    ),
                    RelocKind::Kfunc { name } => {
                        out[at].src = BPF_PSEUDO_KFUNC_CALL;
                        out[at].imm = 0;
                        kfuncs.push(KfuncCall {
                            insn: at,
                            name: self.extern_names[name].clone(),
                        });
                        continue;
                    }
                    RelocKind::Call { .. } | RelocKind::SubprogAddr { .. } => continue,
                };
                if slot + 1 >= f.start + f.len {
                    return Err(RelocError::TruncatedLddw {
                        section: self.sec_name(f.section),
                        insn_index: slot,
                    }
                    .into());
                }
                out[at].src = src;
                out[at].imm = imm;
                out[at + 1].imm = next_imm;
            }
        }
        kfuncs.sort_by_key(|k| k.insn);
        Ok((out, subprogs, core_poisoned, kfuncs))
    }

    fn append(
        &self,
        fid: usize,
        out: &mut Vec<RawInsn>,
        placed: &mut HashMap<usize, usize>,
        subprogs: &mut Vec<Subprog>,
    ) -> usize {
        let f = &self.funcs[fid];
        let base = out.len();
        out.extend_from_slice(&self.insns[&f.section][f.start..f.start + f.len]);
        placed.insert(fid, base);
        subprogs.push(Subprog {
            name: f.name.clone(),
            start: base,
            len: f.len,
        });
        base
    }
}

#[cfg(test)]
mod tests {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

    use crate::error::{ParseError, RelocError};
    use crate::Object;

    const SUBPROGS: &[u8] = include_bytes!("../../bpf-progs/loader/subprogs.v3.o");

    /// File offset of the symbol table entry of `name`.
    fn sym_entry(bytes: &[u8], name: &str) -> usize {
        let file = object::File::parse(bytes).unwrap();
        let sym = file.symbols().find(|s| s.name() == Ok(name)).unwrap();
        let symtab = file.section_by_name(".symtab").unwrap();
        symtab.file_range().unwrap().0 as usize + 24 * sym.index().0
    }

    #[test]
    fn static_entry_program_is_refused() {
        let mut b = SUBPROGS.to_vec();
        let at = sym_entry(&b, "prog_b") + 4; // st_info
        b[at] = (object::elf::STB_LOCAL << 4) | object::elf::STT_FUNC;
        assert_eq!(
            Object::parse(&b),
            Err(ParseError::StaticProgram {
                section: "xdp".into(),
                name: "prog_b".into()
            })
        );
    }

    #[test]
    fn misaligned_or_oversized_function_is_refused() {
        let mut b = SUBPROGS.to_vec();
        let at = sym_entry(&b, "prog_b") + 16; // st_size
        b[at..at + 8].copy_from_slice(&57u64.to_le_bytes());
        assert!(
            matches!(Object::parse(&b), Err(ParseError::BadFunction { name, .. }) if name == "prog_b")
        );
        b[at..at + 8].copy_from_slice(&(1u64 << 62).to_le_bytes());
        assert!(
            matches!(Object::parse(&b), Err(ParseError::BadFunction { name, .. }) if name == "prog_b")
        );
    }

    #[test]
    fn call_to_nowhere_is_refused() {
        // leaf's call site in prog_b (slot 25 of xdp) is relocated against .text
        // with imm 19 (leaf at .text slot 20); make it point past every function.
        let mut b = SUBPROGS.to_vec();
        let file = object::File::parse(SUBPROGS).unwrap();
        let xdp = file.section_by_name("xdp").unwrap().file_range().unwrap().0 as usize;
        let at = xdp + 25 * 8 + 4;
        assert_eq!(i32::from_le_bytes(b[at..at + 4].try_into().unwrap()), 19);
        b[at..at + 4].copy_from_slice(&1000i32.to_le_bytes());
        assert_eq!(
            Object::parse(&b),
            Err(ParseError::Reloc(RelocError::BadCallTarget {
                section: "xdp".into(),
                insn_index: 25,
                target_section: ".text".into(),
                target: 1001,
            }))
        );
    }
}
