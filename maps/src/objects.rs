//! Programs, BTF objects and pins in the store's object table (the kernel's
//! prog and BTF ids, and bpffs pins).
//!
//! The table has `OBJ_TABLE_CAP` entries of 512 bytes, 64 `AtomicU64` words:
//! ```text
//! w0     state u32 (FREE/CREATING/LIVE) | kind u32 (1 program, 2 pin, 3 BTF, 4 XDP
//!        attachment: its words in `xdp.rs`, 5 replacement link, 6 program BTF info)
//! w1     id u32 (program or BTF id)      | target_kind u32 (pin: 1 map, 2 program, 3 dir,
//!        4 link: XDP or replacement, one id space; 5 symbolic link: its target in w32-63)
//! w2     target_id u32 (pin)             | prog_type u32
//! w3     insn_cnt u32                    | nr_map_ids u32
//! w4     tag (8 bytes, as the kernel's prog tag)
//! w5-6   name (16 bytes, NUL-padded)
//! w7-21  pin path (120 bytes, NUL-padded)
//! w22    offset of the blob in the store (program instructions, BTF data; 0: none)
//! w23    btf_id u32 (program)            | gpl_compatible u32
//! w24    loaded_at (CLOCK_BOOTTIME ns)
//! w25    uid u32                         | expected_attach_type u32
//! w26    run_cnt   (mutable: BPF_ENABLE_STATS accounting)
//! w27    run_time_ns (mutable)
//! w28    prog_flags u32 (program)        | holder_pid u32 (program, BTF)
//! w29-30 reserved
//!        (replacement links, kind 5: w1 link id | 0, w2 target program id | EXT
//!        program id, w3 start slot of the replaced function | its BTF id,
//!        w28 0 | holder_pid;
//!        a program's BTF info, kind 6: w1 program id | 0, w2 attach program id |
//!        attach_btf_id, w3 start slot of the attach function | 0, the blob its
//!        func_info records, (insn_off u32, type_id u32) each)
//! w31    length of the blob in bytes
//! w32-63 map ids (64 x u32)
//! ```
//! Entries are claimed, filled and published (state LIVE, Release) under the
//! header's `meta_lock`; after that they are immutable until removed (state
//! FREE, under `meta_lock`), except the run statistics, which are atomics.
//! Readers check `state` with Acquire first. A holder that dies leaves at worst
//! a CREATING entry, which the next holder of `meta_lock` reuses. Blobs are
//! bump-allocated from the map memory cursor, like maps.
//!
//! A program's instructions are kept runnable: map references are lddw with
//! src_reg BPF_PSEUDO_MAP_IDX (5) or BPF_PSEUDO_MAP_IDX_VALUE (6) whose imm
//! indexes the program's map id list.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::ObjectError;
use crate::layout::{
    self, ENTRY_CREATING, ENTRY_FREE, ENTRY_LIVE, OBJ_ENTRY_SIZE, OBJ_TABLE_CAP, OBJ_TABLE_OFF,
};
use crate::lock;
use crate::shm::{SharedPod, Shm};
use crate::store::Store;

const KIND_PROG: u32 = 1;
const KIND_PIN: u32 = 2;
const KIND_BTF: u32 = 3;
pub(crate) const KIND_XDP: u32 = 4;
/// A replacement link (freplace): see [`Replacement`].
const KIND_REPLACE: u32 = 5;
/// What BPF_PROG_LOAD said of a program beyond [`ProgramDef`]: see [`ProgramBtfInfo`].
const KIND_PROG_BTF: u32 = 6;
/// Longest pin path, in bytes.
pub const MAX_PIN_PATH: usize = 119;
/// Most map ids recorded per program (the kernel's MAX_USED_MAPS).
pub const MAX_PROG_MAPS: usize = 64;
/// Largest BTF object accepted, in bytes.
pub const MAX_BTF_SIZE: usize = 16 << 20;

#[repr(C)]
pub(crate) struct ObjEntry {
    pub(crate) w: [AtomicU64; 64],
}
const _: () = assert!(std::mem::size_of::<ObjEntry>() == OBJ_ENTRY_SIZE);
// SAFETY: repr(C), built only of atomics.
unsafe impl SharedPod for ObjEntry {}

fn obj(shm: &Shm, slot: u32) -> Option<&ObjEntry> {
    if slot >= OBJ_TABLE_CAP {
        return None;
    }
    shm.view::<ObjEntry>(OBJ_TABLE_OFF + slot as usize * OBJ_ENTRY_SIZE)
}

impl ObjEntry {
    pub(crate) fn lo(&self, w: usize) -> u32 {
        self.w[w].load(Ordering::Relaxed) as u32
    }
    pub(crate) fn hi(&self, w: usize) -> u32 {
        (self.w[w].load(Ordering::Relaxed) >> 32) as u32
    }
    pub(crate) fn set(&self, w: usize, lo: u32, hi: u32) {
        self.w[w].store(u64::from(lo) | (u64::from(hi) << 32), Ordering::Relaxed);
    }
    fn state(&self) -> u32 {
        self.w[0].load(Ordering::Acquire) as u32
    }
    fn bytes(&self, from: usize, words: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(words * 8);
        for i in 0..words {
            out.extend_from_slice(&self.w[from + i].load(Ordering::Relaxed).to_le_bytes());
        }
        let end = out.iter().position(|&b| b == 0).unwrap_or(out.len());
        out.truncate(end);
        out
    }
    fn set_bytes(&self, from: usize, words: usize, b: &[u8]) {
        for i in 0..words {
            let mut w = [0u8; 8];
            for (j, x) in w.iter_mut().enumerate() {
                *x = b.get(i * 8 + j).copied().unwrap_or(0);
            }
            self.w[from + i].store(u64::from_le_bytes(w), Ordering::Relaxed);
        }
    }
}

/// What a pin names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pinned {
    /// A map, by id.
    Map(u32),
    /// A program, by id.
    Prog(u32),
    /// A directory (made by mkdir on the virtual bpffs).
    Dir,
    /// A link (an XDP link or a replacement link), by id.
    Link(u32),
    /// A symbolic link (made by symlink on the virtual bpffs); its target is
    /// [`Store::symlink_target`].
    Symlink,
}

/// A program to record in the store (`BPF_PROG_LOAD`'s metadata).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProgramDef {
    /// Program name (first 15 bytes kept).
    pub name: String,
    /// `BPF_PROG_TYPE_*` (XDP is 6).
    pub prog_type: u32,
    /// The kernel's program tag (first 8 bytes of the SHA-1 of the instructions).
    pub tag: [u8; 8],
    /// Instructions, 8 bytes each, as loaded (may be empty).
    pub insns: Vec<u8>,
    /// Ids of the maps the program uses (at most `MAX_PROG_MAPS`).
    pub map_ids: Vec<u32>,
    /// Id of the program's BTF object (0 if none).
    pub btf_id: u32,
    /// The license is GPL-compatible.
    pub gpl_compatible: bool,
    /// Loading user.
    pub uid: u32,
    /// `expected_attach_type` of BPF_PROG_LOAD.
    pub expected_attach_type: u32,
    /// `prog_flags` of BPF_PROG_LOAD (BPF_F_XDP_HAS_FRAGS...).
    pub prog_flags: u32,
    /// As [`crate::MapDef::holder_pid`]: 0 keeps the program until removed.
    pub holder_pid: u32,
}

/// A program recorded in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramInfo {
    /// Store-wide program id (from 1).
    pub id: u32,
    /// Program name.
    pub name: String,
    /// `BPF_PROG_TYPE_*`.
    pub prog_type: u32,
    /// Program tag.
    pub tag: [u8; 8],
    /// Number of 8-byte instruction slots.
    pub insn_cnt: u32,
    /// Maps the program uses.
    pub map_ids: Vec<u32>,
    /// Id of the program's BTF object (0 if none).
    pub btf_id: u32,
    /// The license is GPL-compatible.
    pub gpl_compatible: bool,
    /// When it was loaded (CLOCK_BOOTTIME, ns), as the kernel's `load_time`.
    pub load_time: u64,
    /// Loading user.
    pub uid: u32,
    /// `expected_attach_type` given at load.
    pub expected_attach_type: u32,
    /// `prog_flags` given at load.
    pub prog_flags: u32,
    /// See [`ProgramDef::holder_pid`].
    pub holder_pid: u32,
    /// Runs counted while statistics are enabled.
    pub run_cnt: u64,
    /// Nanoseconds spent in those runs.
    pub run_time_ns: u64,
}

/// CLOCK_BOOTTIME now, in ns (the kernel's clock for `load_time`).
pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

impl Store {
    /// Runs `f` holding the header's `meta_lock`.
    pub(crate) fn with_meta_lock<T>(
        &self,
        f: impl FnOnce(&layout::Header) -> Result<T, ObjectError>,
    ) -> Result<T, ObjectError> {
        let h = layout::header(self.shm()).map_err(|e| ObjectError::Store {
            what: e.to_string(),
        })?;
        let _meta = lock::lock(&h.meta_lock).map_err(|e| ObjectError::Store {
            what: e.to_map_error(0, "store meta_lock".into()).to_string(),
        })?;
        f(h)
    }

    /// Claims a free object slot under `meta_lock`, fills it with `fill` and publishes it.
    fn add_object(
        &self,
        fill: impl FnOnce(&ObjEntry, &layout::Header) -> Result<(), ObjectError>,
    ) -> Result<(), ObjectError> {
        self.with_meta_lock(|h| self.add_object_locked(h, fill))
    }

    /// As [`Store::add_object`], the caller holding `meta_lock`.
    pub(crate) fn add_object_locked(
        &self,
        h: &layout::Header,
        fill: impl FnOnce(&ObjEntry, &layout::Header) -> Result<(), ObjectError>,
    ) -> Result<(), ObjectError> {
        let shm = self.shm();
        let slot = (0..OBJ_TABLE_CAP)
            .find(|&s| obj(shm, s).is_some_and(|e| e.state() != ENTRY_LIVE))
            .ok_or(ObjectError::TableFull {
                capacity: OBJ_TABLE_CAP,
            })?;
        let e = obj(shm, slot).ok_or(ObjectError::TableFull {
            capacity: OBJ_TABLE_CAP,
        })?;
        e.w[0].store(u64::from(ENTRY_CREATING), Ordering::Release);
        for w in &e.w[1..] {
            w.store(0, Ordering::Relaxed);
        }
        match fill(e, h) {
            Ok(()) => {
                let kind = e.hi(0);
                e.w[0].store(
                    u64::from(ENTRY_LIVE) | (u64::from(kind) << 32),
                    Ordering::Release,
                );
                Ok(())
            }
            Err(err) => {
                e.w[0].store(u64::from(ENTRY_FREE), Ordering::Release);
                Err(err)
            }
        }
    }

    pub(crate) fn live_objects(&self) -> impl Iterator<Item = &ObjEntry> + '_ {
        (0..OBJ_TABLE_CAP)
            .filter_map(|s| obj(self.shm(), s))
            .filter(|e| e.state() == ENTRY_LIVE)
    }

    /// Copies `data` into fresh store space (under `meta_lock`); returns its offset.
    fn alloc_blob(&self, h: &layout::Header, data: &[u8]) -> Result<u64, ObjectError> {
        if data.is_empty() {
            return Ok(0);
        }
        let cursor = h.alloc_cursor.load(Ordering::Acquire);
        // The cursor is shared memory: checked before any arithmetic on it.
        if cursor < layout::DATA_START as u64 || cursor > self.size() {
            return Err(ObjectError::Corrupt {
                what: format!("alloc_cursor {cursor} outside the store"),
            });
        }
        let off = crate::def::round_up(cursor, 8);
        let end = (data.len() as u64)
            .div_ceil(8)
            .checked_mul(8)
            .and_then(|n| off.checked_add(n))
            .filter(|&end| end <= self.size());
        let Some(end) = end else {
            return Err(ObjectError::Store {
                what: format!("no space for {} bytes", data.len()),
            });
        };
        // Advance first: a death after this leaks the space, never reuses it.
        h.alloc_cursor.store(end, Ordering::Release);
        let base = self.shm().base().wrapping_add(off as usize);
        // SAFETY: [off, end) is fresh space inside the store, just claimed
        // under meta_lock; nobody else reads it before the entry is LIVE.
        unsafe { crate::mem::store_words(base, data.as_ptr(), data.len()) };
        Ok(off)
    }

    /// The blob of entry `e`, bounds-checked against the store.
    fn blob(&self, e: &ObjEntry, what: &str) -> Result<Vec<u8>, ObjectError> {
        let off = e.w[22].load(Ordering::Relaxed);
        let len = e.w[31].load(Ordering::Relaxed);
        if off == 0 || len == 0 {
            return Ok(Vec::new());
        }
        match off.checked_add(len) {
            Some(end)
                if off >= layout::DATA_START as u64
                    && off.is_multiple_of(8)
                    && end <= self.size() => {}
            _ => {
                return Err(ObjectError::Corrupt {
                    what: format!("{what}: data outside the store"),
                })
            }
        }
        let mut out = vec![0u8; len as usize];
        // SAFETY: [off, off+len) lies inside the mapping (checked), 8-aligned;
        // written once before the entry was published.
        unsafe { crate::mem::load_words(&mut out, self.shm().base().add(off as usize)) };
        Ok(out)
    }

    pub(crate) fn next_id(counter: &std::sync::atomic::AtomicU32) -> Result<u32, ObjectError> {
        let next = counter.load(Ordering::Acquire).max(1);
        if next == u32::MAX {
            return Err(ObjectError::TableFull {
                capacity: OBJ_TABLE_CAP,
            });
        }
        counter.store(next + 1, Ordering::Release);
        Ok(next)
    }

    /// Records a program; returns its new id.
    pub fn register_program(&self, def: &ProgramDef) -> Result<u32, ObjectError> {
        if !def.insns.len().is_multiple_of(8) || def.insns.len() / 8 > u32::MAX as usize {
            return Err(ObjectError::Invalid {
                what: "instructions are not whole 8-byte slots".into(),
            });
        }
        if def.map_ids.len() > MAX_PROG_MAPS {
            return Err(ObjectError::Invalid {
                what: format!(
                    "{} maps used, at most {MAX_PROG_MAPS} per program",
                    def.map_ids.len()
                ),
            });
        }
        let mut id = 0;
        self.add_object(|e, h| {
            let insns_off = self.alloc_blob(h, &def.insns)?;
            id = Store::next_id(&h.next_obj_id)?;
            e.set(0, ENTRY_CREATING, KIND_PROG);
            e.set(1, id, 0);
            e.set(2, 0, def.prog_type);
            let n = def.map_ids.len();
            e.set(3, (def.insns.len() / 8) as u32, n as u32);
            e.w[4].store(u64::from_le_bytes(def.tag), Ordering::Relaxed);
            e.set_bytes(5, 2, crate::def::stored_name(&def.name).as_bytes());
            e.w[22].store(insns_off, Ordering::Relaxed);
            e.set(23, def.btf_id, u32::from(def.gpl_compatible));
            e.w[24].store(boottime_ns(), Ordering::Relaxed);
            e.set(25, def.uid, def.expected_attach_type);
            e.set(28, def.prog_flags, def.holder_pid);
            for (i, pair) in def.map_ids.chunks(2).enumerate() {
                e.set(32 + i, pair[0], pair.get(1).copied().unwrap_or(0));
            }
            e.w[31].store(def.insns.len() as u64, Ordering::Relaxed);
            Ok(())
        })?;
        Ok(id)
    }

    /// BPF_BTF_LOAD: keeps a BTF blob until removed; returns its new id.
    pub fn register_btf(&self, data: &[u8]) -> Result<u32, ObjectError> {
        self.register_btf_held(data, 0)
    }

    /// As [`Store::register_btf`], recording `holder_pid` (as
    /// [`crate::MapDef::holder_pid`]: the process whose life keeps it; 0
    /// keeps it until removed).
    pub fn register_btf_held(&self, data: &[u8], holder_pid: u32) -> Result<u32, ObjectError> {
        if data.is_empty() || data.len() > MAX_BTF_SIZE {
            return Err(ObjectError::Invalid {
                what: format!("BTF of {} bytes (1..={MAX_BTF_SIZE})", data.len()),
            });
        }
        let mut id = 0;
        self.add_object(|e, h| {
            let off = self.alloc_blob(h, data)?;
            id = Store::next_id(&h.next_btf_id)?;
            e.set(0, ENTRY_CREATING, KIND_BTF);
            e.set(1, id, 0);
            e.w[22].store(off, Ordering::Relaxed);
            e.set(28, 0, holder_pid);
            e.w[31].store(data.len() as u64, Ordering::Relaxed);
            Ok(())
        })?;
        Ok(id)
    }

    /// Ids of every BTF object, ascending.
    pub fn btf_ids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .live_objects()
            .filter(|e| e.hi(0) == KIND_BTF)
            .map(|e| e.lo(1))
            .collect();
        v.sort_unstable();
        v
    }

    /// Every BTF object as (id, holder pid), ascending by id.
    pub fn btf_holders(&self) -> Vec<(u32, u32)> {
        let mut v: Vec<(u32, u32)> = self
            .live_objects()
            .filter(|e| e.hi(0) == KIND_BTF)
            .map(|e| (e.lo(1), e.hi(28)))
            .collect();
        v.sort_unstable();
        v
    }

    /// Removes BTF object `id` (its blob stays allocated, as a removed
    /// program's instructions do).
    pub fn remove_btf(&self, id: u32) -> Result<(), ObjectError> {
        self.remove_where(|e| e.hi(0) == KIND_BTF && e.lo(1) == id)
            .then_some(())
            .ok_or(ObjectError::NoSuchBtf { id })
    }

    /// The data of BTF object `id`.
    pub fn btf_data(&self, id: u32) -> Result<Vec<u8>, ObjectError> {
        let e = self
            .live_objects()
            .find(|e| e.hi(0) == KIND_BTF && e.lo(1) == id)
            .ok_or(ObjectError::NoSuchBtf { id })?;
        self.blob(e, &format!("BTF {id}"))
    }

    /// Adds one accounted run (or `count` runs taking `ns` in all) to program `id`.
    pub fn add_program_runs(&self, id: u32, count: u64, ns: u64) -> Result<(), ObjectError> {
        let e = self
            .live_objects()
            .find(|e| e.hi(0) == KIND_PROG && e.lo(1) == id)
            .ok_or(ObjectError::NoSuchProgram { id })?;
        e.w[26].fetch_add(count, Ordering::Relaxed);
        e.w[27].fetch_add(ns, Ordering::Relaxed);
        Ok(())
    }

    fn prog_info(e: &ObjEntry) -> ProgramInfo {
        let n = (e.hi(3) as usize).min(MAX_PROG_MAPS);
        let map_ids = (0..n)
            .map(|i| {
                if i % 2 == 0 {
                    e.lo(32 + i / 2)
                } else {
                    e.hi(32 + i / 2)
                }
            })
            .collect();
        ProgramInfo {
            id: e.lo(1),
            name: String::from_utf8_lossy(&e.bytes(5, 2)).into_owned(),
            prog_type: e.hi(2),
            tag: e.w[4].load(Ordering::Relaxed).to_le_bytes(),
            insn_cnt: e.lo(3),
            map_ids,
            btf_id: e.lo(23),
            gpl_compatible: e.hi(23) != 0,
            load_time: e.w[24].load(Ordering::Relaxed),
            uid: e.lo(25),
            expected_attach_type: e.hi(25),
            prog_flags: e.lo(28),
            holder_pid: e.hi(28),
            run_cnt: e.w[26].load(Ordering::Relaxed),
            run_time_ns: e.w[27].load(Ordering::Relaxed),
        }
    }

    /// Every program recorded in the store, by id.
    pub fn programs(&self) -> Vec<ProgramInfo> {
        let mut v: Vec<ProgramInfo> = self
            .live_objects()
            .filter(|e| e.hi(0) == KIND_PROG)
            .map(Store::prog_info)
            .collect();
        v.sort_by_key(|p| p.id);
        v
    }

    /// The program with this id.
    pub fn program_by_id(&self, id: u32) -> Result<ProgramInfo, ObjectError> {
        self.programs()
            .into_iter()
            .find(|p| p.id == id)
            .ok_or(ObjectError::NoSuchProgram { id })
    }

    /// The instructions recorded for program `id` (8 bytes per slot).
    pub fn program_insns(&self, id: u32) -> Result<Vec<u8>, ObjectError> {
        let e = self
            .live_objects()
            .find(|e| e.hi(0) == KIND_PROG && e.lo(1) == id)
            .ok_or(ObjectError::NoSuchProgram { id })?;
        let insns = self.blob(e, &format!("program {id}"))?;
        // The count the listing shows and the instructions must agree.
        let cnt = u64::from(e.lo(3));
        if insns.len() as u64 != cnt * 8 {
            return Err(ObjectError::Corrupt {
                what: format!(
                    "program {id}: {} bytes of instructions for insn_cnt {cnt}",
                    insns.len()
                ),
            });
        }
        Ok(insns)
    }

    /// Removes program `id` from the table (its instruction space is not reused).
    pub fn remove_program(&self, id: u32) -> Result<(), ObjectError> {
        self.remove_where(|e| e.hi(0) == KIND_PROG && e.lo(1) == id)
            .then_some(())
            .ok_or(ObjectError::NoSuchProgram { id })?;
        // What belongs to the program goes with it: its BTF info, and the
        // replacement links it is the target or the extension of.
        while self.remove_where(|e| {
            (e.hi(0) == KIND_PROG_BTF && e.lo(1) == id)
                || (e.hi(0) == KIND_REPLACE && (e.lo(2) == id || e.hi(2) == id))
        }) {}
        Ok(())
    }

    fn remove_where(&self, f: impl Fn(&ObjEntry) -> bool) -> bool {
        let Ok(h) = layout::header(self.shm()) else {
            return false;
        };
        let Ok(_meta) = lock::lock(&h.meta_lock) else {
            return false;
        };
        match self.live_objects().find(|e| f(e)) {
            Some(e) => {
                e.w[0].store(u64::from(ENTRY_FREE), Ordering::Release);
                true
            }
            None => false,
        }
    }

    fn check_path(path: &str) -> Result<(), ObjectError> {
        if path.is_empty() || path.len() > MAX_PIN_PATH || path.contains('\0') {
            return Err(ObjectError::InvalidPath {
                path: path.to_owned(),
            });
        }
        Ok(())
    }

    /// BPF_OBJ_PIN: names a map or program by `path`. EEXIST if the path is taken.
    pub fn pin(&self, path: &str, what: Pinned) -> Result<(), ObjectError> {
        Store::check_path(path)?;
        match what {
            Pinned::Map(id) => {
                self.map_by_id(id)
                    .map_err(|_| ObjectError::NoSuchMap { id })?;
            }
            Pinned::Prog(id) => {
                self.program_by_id(id)?;
            }
            Pinned::Dir => {}
            Pinned::Link(id) => {
                if self.xdp_link(id).is_err()
                    && !self.replacements().iter().any(|r| r.link_id == id)
                {
                    return Err(ObjectError::NoSuchLink { id });
                }
            }
            Pinned::Symlink => {
                return Err(ObjectError::Invalid {
                    what: "a symbolic link is made by pin_symlink".into(),
                })
            }
        }
        self.add_pin(path, what, "")
    }

    /// symlink(2) on the virtual bpffs: `path` names `target` (at most 255
    /// bytes). EEXIST if the path is taken.
    pub fn pin_symlink(&self, path: &str, target: &str) -> Result<(), ObjectError> {
        Store::check_path(path)?;
        if target.is_empty() || target.len() > 255 || target.contains('\0') {
            return Err(ObjectError::InvalidPath {
                path: target.to_owned(),
            });
        }
        self.add_pin(path, Pinned::Symlink, target)
    }

    /// The target of the symbolic link at `path`.
    pub fn symlink_target(&self, path: &str) -> Result<String, ObjectError> {
        let e = self
            .live_objects()
            .find(|e| e.hi(0) == KIND_PIN && e.hi(1) == 5 && e.bytes(7, 15) == path.as_bytes())
            .ok_or_else(|| ObjectError::NoSuchPin {
                path: path.to_owned(),
            })?;
        String::from_utf8(e.bytes(32, 32)).map_err(|_| ObjectError::Corrupt {
            what: format!("symbolic link {path:?}: target not UTF-8"),
        })
    }

    fn add_pin(&self, path: &str, what: Pinned, target: &str) -> Result<(), ObjectError> {
        self.add_object(|e, _| {
            if self
                .live_objects()
                .any(|o| o.hi(0) == KIND_PIN && o.bytes(7, 15) == path.as_bytes())
            {
                return Err(ObjectError::Exists {
                    path: path.to_owned(),
                });
            }
            let (tk, tid) = match what {
                Pinned::Map(id) => (1, id),
                Pinned::Prog(id) => (2, id),
                Pinned::Dir => (3, 0),
                Pinned::Link(id) => (4, id),
                Pinned::Symlink => (5, 0),
            };
            e.set(0, ENTRY_CREATING, KIND_PIN);
            e.set(1, 0, tk);
            e.set(2, tid, 0);
            e.set_bytes(7, 15, path.as_bytes());
            e.set_bytes(32, 32, target.as_bytes());
            Ok(())
        })
    }

    /// BPF_OBJ_GET: what `path` names.
    pub fn pinned(&self, path: &str) -> Result<Pinned, ObjectError> {
        self.pins()
            .into_iter()
            .find(|(p, _)| p == path)
            .map(|(_, w)| w)
            .ok_or_else(|| ObjectError::NoSuchPin {
                path: path.to_owned(),
            })
    }

    /// Removes a pin (unlink on bpffs). The object stays.
    pub fn unpin(&self, path: &str) -> Result<(), ObjectError> {
        self.remove_where(|e| e.hi(0) == KIND_PIN && e.bytes(7, 15) == path.as_bytes())
            .then_some(())
            .ok_or_else(|| ObjectError::NoSuchPin {
                path: path.to_owned(),
            })
    }

    /// Every pin, sorted by path.
    pub fn pins(&self) -> Vec<(String, Pinned)> {
        let mut v: Vec<(String, Pinned)> = self
            .live_objects()
            .filter(|e| e.hi(0) == KIND_PIN)
            .filter_map(|e| {
                let p = String::from_utf8(e.bytes(7, 15)).ok()?;
                let w = match e.hi(1) {
                    1 => Pinned::Map(e.lo(2)),
                    2 => Pinned::Prog(e.lo(2)),
                    3 => Pinned::Dir,
                    4 => Pinned::Link(e.lo(2)),
                    5 => Pinned::Symlink,
                    _ => return None,
                };
                Some((p, w))
            })
            .collect();
        v.sort();
        v
    }

    /// The map pinned at `path`.
    pub fn map_by_pin(&self, path: &str) -> Result<crate::Map, ObjectError> {
        match self.pinned(path)? {
            Pinned::Map(id) => self
                .map_by_id(id)
                .map_err(|_| ObjectError::NoSuchMap { id }),
            Pinned::Prog(_) | Pinned::Dir | Pinned::Link(_) | Pinned::Symlink => {
                Err(ObjectError::WrongKind {
                    path: path.to_owned(),
                })
            }
        }
    }
}

/// A replacement link (the kernel's freplace tracing link): every call to
/// the global function starting at slot `func_start` of program `target` runs
/// program `ext` (a `BPF_PROG_TYPE_EXT` program, with its own maps) on the same
/// context, and returns its r0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replacement {
    /// Link id (one id space with XDP links).
    pub link_id: u32,
    /// The program whose function is replaced.
    pub target: u32,
    /// The start slot of the replaced function in `target`'s instructions.
    pub func_start: u32,
    /// The BTF id of the replaced function (`attach_btf_id`) in `target`'s BTF.
    pub btf_id: u32,
    /// The replacing program.
    pub ext: u32,
    /// As [`crate::MapDef::holder_pid`]: 0 keeps the link until removed.
    pub holder_pid: u32,
}

impl Store {
    /// BPF_PROG_BIND_MAP: adds map `map` to the maps program `prog` uses (so it
    /// lives as long as the program, and the program's info lists it). Ok(false)
    /// if it was already there. The program's instructions are unchanged: they
    /// index the list, which only grows at its end.
    pub fn bind_map(&self, prog: u32, map: u32) -> Result<bool, ObjectError> {
        self.map_by_id(map)
            .map_err(|_| ObjectError::NoSuchMap { id: map })?;
        let shm = self.shm();
        let h = layout::header(shm).map_err(|e| ObjectError::Store {
            what: e.to_string(),
        })?;
        let _meta = lock::lock(&h.meta_lock).map_err(|e| ObjectError::Store {
            what: e.to_map_error(0, "store meta_lock".into()).to_string(),
        })?;
        let e = self
            .live_objects()
            .find(|e| e.hi(0) == KIND_PROG && e.lo(1) == prog)
            .ok_or(ObjectError::NoSuchProgram { id: prog })?;
        let info = Store::prog_info(e);
        if info.map_ids.contains(&map) {
            return Ok(false);
        }
        let n = info.map_ids.len();
        if n >= MAX_PROG_MAPS {
            return Err(ObjectError::Invalid {
                what: format!("{n} maps used, at most {MAX_PROG_MAPS} per program"),
            });
        }
        // The id first, then the count (Release): a reader that sees the
        // count sees the id.
        let w = 32 + n / 2;
        if n.is_multiple_of(2) {
            e.set(w, map, 0);
        } else {
            e.set(w, e.lo(w), map);
        }
        let (cnt, _) = (e.lo(3), e.hi(3));
        e.w[3].store(
            u64::from(cnt) | (u64::from(n as u32 + 1) << 32),
            Ordering::Release,
        );
        Ok(true)
    }

    /// Records a replacement link; returns its id. EBUSY (`Busy`) if the
    /// function already has one, as the kernel's trampoline allows one
    /// extension program per function.
    pub fn add_replacement(&self, r: &Replacement) -> Result<u32, ObjectError> {
        self.program_by_id(r.target)?;
        self.program_by_id(r.ext)?;
        let mut id = 0;
        self.add_object(|e, h| {
            if self
                .replacements()
                .iter()
                .any(|o| o.target == r.target && o.func_start == r.func_start)
            {
                return Err(ObjectError::Busy {
                    what: format!(
                        "function at slot {} of program {} is already replaced",
                        r.func_start, r.target
                    ),
                });
            }
            // The link id space XDP links take theirs from (`xdp.rs`: the
            // header's NEXT_LINK_ID_WORD, under meta_lock), as the kernel's
            // one link idr.
            let slot = &h.reserved[layout::NEXT_LINK_ID_WORD];
            id = (slot.load(Ordering::Acquire) as u32).max(1);
            if id == u32::MAX {
                return Err(ObjectError::TableFull {
                    capacity: OBJ_TABLE_CAP,
                });
            }
            slot.store(u64::from(id) + 1, Ordering::Release);
            e.set(0, ENTRY_CREATING, KIND_REPLACE);
            e.set(1, id, 0);
            e.set(2, r.target, r.ext);
            e.set(3, r.func_start, r.btf_id);
            e.set(28, 0, r.holder_pid);
            Ok(())
        })?;
        Ok(id)
    }

    /// Every replacement link, by link id.
    pub fn replacements(&self) -> Vec<Replacement> {
        let mut v: Vec<Replacement> = self
            .live_objects()
            .filter(|e| e.hi(0) == KIND_REPLACE)
            .map(|e| Replacement {
                link_id: e.lo(1),
                target: e.lo(2),
                ext: e.hi(2),
                func_start: e.lo(3),
                btf_id: e.hi(3),
                holder_pid: e.hi(28),
            })
            .collect();
        v.sort_by_key(|r| r.link_id);
        v
    }

    /// The replacement links of program `target`.
    pub fn replacements_of(&self, target: u32) -> Vec<Replacement> {
        let mut v = self.replacements();
        v.retain(|r| r.target == target);
        v
    }

    /// Removes replacement link `link_id` (the kernel's link release).
    pub fn remove_replacement(&self, link_id: u32) -> Result<(), ObjectError> {
        self.remove_where(|e| e.hi(0) == KIND_REPLACE && e.lo(1) == link_id)
            .then_some(())
            .ok_or(ObjectError::NoSuchLink { id: link_id })
    }
}

/// A program's BTF facts from BPF_PROG_LOAD: its `func_info` (the BTF `FUNC`
/// of each function, by start slot, which replacement links are made against),
/// and for an extension program the function it was loaded to replace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProgramBtfInfo {
    /// `(insn_off, type_id)` of each function, as `bpf_func_info`.
    pub func_info: Vec<(u32, u32)>,
    /// The program whose function an extension replaces (`attach_prog_fd`'s), or 0.
    pub attach_prog: u32,
    /// That function's BTF id in the target's BTF (`attach_btf_id`).
    pub attach_btf_id: u32,
    /// That function's start slot in the target.
    pub attach_func_start: u32,
}

impl Store {
    /// Records `info` for program `prog` (once, right after it is registered).
    pub fn set_program_btf_info(
        &self,
        prog: u32,
        info: &ProgramBtfInfo,
    ) -> Result<(), ObjectError> {
        self.program_by_id(prog)?;
        let blob: Vec<u8> = info
            .func_info
            .iter()
            .flat_map(|&(off, tid)| {
                let mut b = off.to_le_bytes().to_vec();
                b.extend_from_slice(&tid.to_le_bytes());
                b
            })
            .collect();
        self.add_object(|e, h| {
            let off = self.alloc_blob(h, &blob)?;
            e.set(0, ENTRY_CREATING, KIND_PROG_BTF);
            e.set(1, prog, 0);
            e.set(2, info.attach_prog, info.attach_btf_id);
            e.set(3, info.attach_func_start, 0);
            e.w[22].store(off, Ordering::Relaxed);
            e.w[31].store(blob.len() as u64, Ordering::Relaxed);
            Ok(())
        })
    }

    /// What [`Store::set_program_btf_info`] recorded for `prog` (empty if nothing).
    pub fn program_btf_info(&self, prog: u32) -> Result<ProgramBtfInfo, ObjectError> {
        let Some(e) = self
            .live_objects()
            .find(|e| e.hi(0) == KIND_PROG_BTF && e.lo(1) == prog)
        else {
            return Ok(ProgramBtfInfo::default());
        };
        let blob = self.blob(e, &format!("program {prog} func_info"))?;
        Ok(ProgramBtfInfo {
            func_info: blob
                .chunks_exact(8)
                .map(|c| {
                    (
                        u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                        u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
                    )
                })
                .collect(),
            attach_prog: e.lo(2),
            attach_btf_id: e.hi(2),
            attach_func_start: e.lo(3),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MapDef, StoreOptions, BPF_MAP_TYPE_ARRAY};

    #[test]
    fn bound_maps_and_replacement_links() {
        let s = Store::anonymous(StoreOptions {
            size: 1 << 20,
            ncpus: Some(1),
        })
        .expect("store");
        let map = |name: &str| {
            s.create_map(&MapDef {
                map_type: BPF_MAP_TYPE_ARRAY,
                key_size: 4,
                value_size: 4,
                max_entries: 1,
                name: name.into(),
                ..MapDef::default()
            })
            .expect("map")
            .id()
        };
        let (a, b) = (map("a"), map("b"));
        let prog = |map_ids: Vec<u32>| {
            s.register_program(&ProgramDef {
                name: "p".into(),
                prog_type: 6,
                insns: vec![0; 16],
                map_ids,
                ..ProgramDef::default()
            })
            .expect("prog")
        };
        let target = prog(vec![a]);
        assert_eq!(s.bind_map(target, b), Ok(true));
        assert_eq!(s.bind_map(target, b), Ok(false), "bound once");
        assert_eq!(s.bind_map(target, a), Ok(false), "used already");
        assert_eq!(s.program_by_id(target).expect("p").map_ids, vec![a, b]);
        assert_eq!(
            s.bind_map(target, 999).map_err(|e| e.errno()),
            Err(libc::ENOENT)
        );
        assert_eq!(s.bind_map(999, a).map_err(|e| e.errno()), Err(libc::ENOENT));

        let ext = prog(vec![]);
        let r = Replacement {
            link_id: 0,
            target,
            func_start: 1,
            btf_id: 9,
            ext,
            holder_pid: 4242,
        };
        let id = s.add_replacement(&r).expect("link");
        assert_eq!(
            s.replacements_of(target),
            vec![Replacement { link_id: id, ..r }]
        );
        assert!(s.replacements_of(ext).is_empty());
        // One extension per function, as the kernel's trampoline.
        assert_eq!(
            s.add_replacement(&r).map_err(|e| e.errno()),
            Err(libc::EBUSY)
        );
        let other = s
            .add_replacement(&Replacement { func_start: 2, ..r })
            .expect("another function");
        assert_ne!(other, id);
        s.remove_replacement(id).expect("remove");
        assert_eq!(s.replacements_of(target).len(), 1);
        assert_eq!(
            s.remove_replacement(id).map_err(|e| e.errno()),
            Err(libc::ENOENT)
        );
        assert_eq!(
            s.add_replacement(&Replacement { ext: 999, ..r })
                .map_err(|e| e.errno()),
            Err(libc::ENOENT)
        );

        assert_eq!(s.program_btf_info(ext), Ok(ProgramBtfInfo::default()));
        let info = ProgramBtfInfo {
            func_info: vec![(0, 3), (6, 5)],
            attach_prog: target,
            attach_btf_id: 5,
            attach_func_start: 6,
        };
        s.set_program_btf_info(ext, &info).expect("btf info");
        assert_eq!(s.program_btf_info(ext), Ok(info));
        // A removed extension or target takes its links along; a removed
        // program its BTF info.
        let ext2 = prog(vec![]);
        s.add_replacement(&Replacement {
            ext: ext2,
            func_start: 3,
            ..r
        })
        .expect("link");
        s.remove_program(ext2).expect("remove");
        assert_eq!(
            s.replacements_of(target).len(),
            1,
            "the extension's link went"
        );
        s.remove_program(target).expect("remove");
        assert!(s.replacements().is_empty());
        s.remove_program(ext).expect("remove");
        assert_eq!(s.program_btf_info(ext), Ok(ProgramBtfInfo::default()));
    }

    #[test]
    fn programs_and_pins() {
        let s = Store::anonymous(StoreOptions {
            size: 1 << 20,
            ncpus: Some(1),
        })
        .expect("store");
        let m = s
            .create_map(&MapDef {
                map_type: BPF_MAP_TYPE_ARRAY,
                key_size: 4,
                value_size: 4,
                max_entries: 1,
                name: "a".into(),
                ..MapDef::default()
            })
            .expect("map");
        let insns: Vec<u8> = (0..16).collect();
        let def = ProgramDef {
            name: "xdp_prog_with_a_long_name".into(),
            prog_type: 6,
            tag: *b"\x01\x02\x03\x04\x05\x06\x07\x08",
            insns: insns.clone(),
            map_ids: vec![m.id()],
            btf_id: 7,
            gpl_compatible: true,
            uid: 65534,
            ..ProgramDef::default()
        };
        let a = s.register_program(&def).expect("a");
        let b = s
            .register_program(&ProgramDef {
                insns: vec![],
                ..def.clone()
            })
            .expect("b");
        assert_eq!((a, b), (1, 2));
        let p = s.program_by_id(a).expect("info");
        assert_eq!(p.name, "xdp_prog_with_a");
        assert_eq!(
            (p.insn_cnt, p.prog_type, p.map_ids.clone()),
            (2, 6, vec![m.id()])
        );
        assert_eq!((p.btf_id, p.gpl_compatible, p.uid), (7, true, 65534));
        assert!(p.load_time > 0 && p.load_time <= boottime_ns());
        assert_eq!((p.run_cnt, p.run_time_ns), (0, 0));
        s.add_program_runs(a, 3, 300).expect("stats");
        s.add_program_runs(a, 1, 50).expect("stats");
        let p = s.program_by_id(a).expect("info");
        assert_eq!((p.run_cnt, p.run_time_ns), (4, 350));
        assert!(s.add_program_runs(99, 1, 1).is_err());
        assert_eq!(s.program_insns(a).expect("insns"), insns);
        assert!(s.program_insns(b).expect("none").is_empty());
        assert!(s
            .register_program(&ProgramDef {
                insns: vec![1],
                ..def
            })
            .is_err());

        s.pin("/sys/fs/bpf/a", Pinned::Map(m.id()))
            .expect("pin map");
        s.pin("/sys/fs/bpf/p", Pinned::Prog(a)).expect("pin prog");
        assert!(matches!(
            s.pin("/sys/fs/bpf/a", Pinned::Prog(a)),
            Err(ObjectError::Exists { .. })
        ));
        assert!(matches!(
            s.pin("x", Pinned::Map(99)),
            Err(ObjectError::NoSuchMap { id: 99 })
        ));
        assert_eq!(s.map_by_pin("/sys/fs/bpf/a").expect("map").id(), m.id());
        assert!(matches!(
            s.map_by_pin("/sys/fs/bpf/p"),
            Err(ObjectError::WrongKind { .. })
        ));
        assert_eq!(s.pins().len(), 2);
        s.unpin("/sys/fs/bpf/a").expect("unpin");
        assert!(matches!(
            s.pinned("/sys/fs/bpf/a"),
            Err(ObjectError::NoSuchPin { .. })
        ));
        s.pin("/sys/fs/bpf/d", Pinned::Dir).expect("dir");
        assert_eq!(s.pinned("/sys/fs/bpf/d").expect("dir"), Pinned::Dir);
        assert!(matches!(
            s.map_by_pin("/sys/fs/bpf/d"),
            Err(ObjectError::WrongKind { .. })
        ));
        s.pin_symlink("/sys/fs/bpf/xdp", "/sys/fs/bpf/tc/")
            .expect("symlink");
        assert_eq!(s.pinned("/sys/fs/bpf/xdp").expect("link"), Pinned::Symlink);
        assert_eq!(
            s.symlink_target("/sys/fs/bpf/xdp").expect("target"),
            "/sys/fs/bpf/tc/"
        );
        assert!(s.symlink_target("/sys/fs/bpf/d").is_err());
        assert!(matches!(
            s.pin_symlink("/sys/fs/bpf/xdp", "x"),
            Err(ObjectError::Exists { .. })
        ));
        assert!(s.pin("/sys/fs/bpf/y", Pinned::Symlink).is_err());
        s.remove_program(b).expect("remove");
        assert_eq!(s.programs().len(), 1);
        assert!(Store::check_path(&"x".repeat(120)).is_err());
    }

    #[test]
    fn btf_objects_keep_their_bytes() {
        let s = Store::anonymous(StoreOptions {
            size: 1 << 20,
            ncpus: Some(1),
        })
        .expect("store");
        let a: Vec<u8> = (0..45u8).collect();
        let b = vec![0x9f, 0xeb, 1, 0];
        let ia = s.register_btf(&a).expect("a");
        let ib = s.register_btf(&b).expect("b");
        // BTF ids are their own space, from 1, as in the kernel.
        assert_eq!((ia, ib), (1, 2));
        assert_eq!(s.btf_ids(), vec![ia, ib]);
        assert_eq!(s.btf_data(ia).expect("a"), a);
        assert_eq!(s.btf_data(ib).expect("b"), b);
        assert!(matches!(
            s.btf_data(999),
            Err(ObjectError::NoSuchBtf { id: 999 })
        ));
        assert_eq!(
            s.register_btf(&[]).map_err(|e| e.errno()),
            Err(libc::EINVAL)
        );
        // BTF objects are not programs.
        assert!(s.programs().is_empty());
    }

    #[test]
    fn btf_objects_record_their_holder_and_can_be_removed() {
        let s = Store::anonymous(StoreOptions {
            size: 1 << 20,
            ncpus: Some(1),
        })
        .expect("store");
        let kept = s.register_btf(&[1, 2, 3]).expect("kept");
        let held = s.register_btf_held(&[4, 5], 4242).expect("held");
        assert_eq!(s.btf_holders(), vec![(kept, 0), (held, 4242)]);
        s.remove_btf(held).expect("remove");
        assert_eq!(s.btf_ids(), vec![kept]);
        assert!(matches!(
            s.btf_data(held),
            Err(ObjectError::NoSuchBtf { .. })
        ));
        assert!(matches!(
            s.remove_btf(held),
            Err(ObjectError::NoSuchBtf { .. })
        ));
        // The freed entry is reused without the old holder.
        let again = s.register_btf(&[6]).expect("again");
        assert_eq!(s.btf_holders(), vec![(kept, 0), (again, 0)]);
    }
}
