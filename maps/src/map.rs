//! The `Map` handle: type dispatch, argument and permission checks, and the
//! description of where program-visible values live.
//!
//! The per-type operations are in `array.rs` and `hash.rs`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::def::{self, Kind, MapInfo};
use crate::error::MapError;
use crate::layout::{self, EntrySnapshot};
use crate::lock::{self, PidLockGuard};
use crate::shm::Shm;

/// A handle on one map in a store. Cheap to clone; `Send + Sync`. Keeps the
/// store mapped while it lives.
#[derive(Clone)]
pub struct Map {
    pub(crate) shm: Arc<Shm>,
    pub(crate) meta: Arc<MapMeta>,
    pub(crate) kind: Kind,
    /// Start of the map's data region in this process's mapping.
    pub(crate) data: *mut u8,
    pub(crate) id: u32,
    pub(crate) key_size: u32,
    pub(crate) value_size: u32,
    pub(crate) max_entries: u32,
    pub(crate) map_flags: u32,
    pub(crate) ncpus: u32,
    /// round_up(value_size, 8) (4 for PROG_ARRAY).
    pub(crate) vstride: usize,
    // Hash maps only:
    pub(crate) bucket_mask: u32,
    pub(crate) nelems: u32,
    pub(crate) elem_size: usize,
    pub(crate) key_stride: usize,
    /// Hash: offsets of the key and the first value in an element.
    pub(crate) key_off: usize,
    pub(crate) value_off: usize,
    /// Hash: lock stripes - 1 (a power of two - 1, at most bucket_mask).
    pub(crate) stripe_mask: u32,
    pub(crate) stripes: *mut u8,
    pub(crate) buckets: *mut u8,
    pub(crate) elems: *mut u8,
    pub(crate) seed: u32,
    /// Hash maps: bucket by the kernel's jhash (BPF_F_ZERO_SEED maps, whose
    /// bucket order is the kernel's) rather than the store's `fast_hash`.
    pub(crate) jhash: bool,
    /// The program entry points for this kind and key size (`prog_ops`).
    pub(crate) ops: crate::progops::ProgOps,
    /// `prog_update` for this kind and key size.
    pub(crate) update_res: crate::progops::UpdateResFn,
    /// The map's timers, when its value holds a `bpf_timer` (`timer.rs`).
    pub(crate) timer: Option<crate::timer::TimerArea>,
}

// SAFETY: the raw pointers point into the shared mapping owned by `shm` (kept
// alive by the Arc). All access through them is atomic or guarded by the
// store's locks, and the map memory is designed for concurrent use by many
// threads and processes.
unsafe impl Send for Map {}
// SAFETY: as above.
unsafe impl Sync for Map {}

pub(crate) struct MapMeta {
    pub info: MapInfo,
    pub slot: u32,
    pub data_len: usize,
}

impl std::fmt::Debug for Map {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map")
            .field("info", &self.meta.info)
            .finish()
    }
}

/// Where program-visible values live. An access `[p, p+n)` is inside a value iff
/// `base <= p`, `p + n <= base + len`, and `(p - base) % stride` lies with its `n`
/// bytes inside `[value_offset, value_offset + value_len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueRegion {
    /// First byte of the region (an address in this process).
    pub base: usize,
    /// Bytes in the region (0 when programs may not access values, e.g. PROG_ARRAY).
    pub len: usize,
    /// Bytes from one element to the next.
    pub stride: usize,
    /// Offset of the value inside an element.
    pub value_offset: usize,
    /// Accessible bytes of the value.
    pub value_len: usize,
}

impl ValueRegion {
    /// Applies the rule in the type's documentation.
    #[inline]
    pub fn contains(&self, p: usize, n: usize) -> bool {
        if self.stride == 0 || p < self.base {
            return false;
        }
        let off = p - self.base;
        match off.checked_add(n) {
            Some(end) if end <= self.len => {}
            _ => return false,
        }
        let within = off % self.stride;
        within >= self.value_offset && within + n <= self.value_offset + self.value_len
    }
}

impl Map {
    pub(crate) fn from_snapshot(
        shm: Arc<Shm>,
        snap: EntrySnapshot,
        ncpus: u32,
    ) -> Result<Map, MapError> {
        let g = snap.geometry;
        let id = snap.info.id;
        let corrupt = |what: &str| MapError::Corrupt {
            id,
            what: what.to_owned(),
        };
        let data_off = usize::try_from(snap.data_off).map_err(|_| corrupt("data offset"))?;
        let data_len = usize::try_from(g.data_len).map_err(|_| corrupt("data length"))?;
        match data_off.checked_add(data_len) {
            Some(end) if end <= shm.len() => {}
            _ => return Err(corrupt("data outside the mapping")),
        }
        let data = shm.base().wrapping_add(data_off);
        let conv = |x: u64| usize::try_from(x).map_err(|_| corrupt("geometry"));
        let buckets = data.wrapping_add(conv(g.buckets_off)?);
        let stripes = data.wrapping_add(conv(g.stripes_off)?);
        let stripe_mask =
            u32::try_from(g.n_stripes.saturating_sub(1)).map_err(|_| corrupt("stripes"))?;
        let elems = data.wrapping_add(conv(g.elems_off)?);
        let bucket_mask =
            u32::try_from(g.n_buckets.saturating_sub(1)).map_err(|_| corrupt("buckets"))?;
        let nelems = u32::try_from(g.nelems).map_err(|_| corrupt("elements"))?;
        let (ops, update_res) =
            crate::progops::select(g.kind, snap.info.key_size, snap.info.map_flags);
        Ok(Map {
            kind: g.kind,
            data,
            id,
            key_size: snap.info.key_size,
            value_size: snap.info.value_size,
            max_entries: snap.info.max_entries,
            map_flags: snap.info.map_flags,
            ncpus,
            vstride: conv(g.vstride)?,
            bucket_mask,
            nelems,
            elem_size: conv(g.elem_size)?,
            key_stride: conv(g.key_stride)?,
            key_off: conv(g.key_off)?,
            value_off: conv(g.value_off)?,
            stripe_mask,
            stripes,
            buckets,
            elems,
            seed: snap.hash_seed,
            jhash: snap.info.map_flags & def::BPF_F_ZERO_SEED != 0,
            ops,
            update_res,
            timer: snap.timer,
            meta: Arc::new(MapMeta {
                info: snap.info,
                slot: snap.slot,
                data_len,
            }),
            shm,
        })
    }

    /// For a BPF_F_MMAPABLE array: where its values start in the store file
    /// (page-aligned) and how many bytes they span, for `mmap` of the map.
    pub fn mmap_region(&self) -> Option<(u64, usize)> {
        if self.kind != Kind::Array || self.map_flags & crate::def::BPF_F_MMAPABLE == 0 {
            return None;
        }
        let off = self.data as u64 - self.shm.base() as u64;
        Some((off, self.meta.data_len))
    }

    /// The map's id and definition.
    pub fn info(&self) -> MapInfo {
        self.meta.info.clone()
    }

    /// The map id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Per-CPU slots of per-CPU maps (the store's ncpus).
    pub fn ncpus(&self) -> u32 {
        self.ncpus
    }

    fn is_percpu(&self) -> bool {
        self.kind.is_percpu()
    }

    /// Bytes of a value in the user-space API: value_size, or
    /// ncpus * round_up(value_size, 8) for per-CPU maps (the bpf(2) layout).
    pub fn user_value_size(&self) -> usize {
        if self.is_percpu() {
            self.ncpus as usize * self.vstride
        } else if self.kind == Kind::RingBuf {
            0
        } else {
            self.value_size as usize
        }
    }

    fn check_key(&self, key: &[u8]) -> Result<(), MapError> {
        if key.len() != self.key_size as usize {
            return Err(MapError::KeySize {
                id: self.id,
                expected: self.key_size as usize,
                got: key.len(),
            });
        }
        Ok(())
    }

    fn check_value(&self, v: usize) -> Result<(), MapError> {
        if v != self.user_value_size() {
            return Err(MapError::ValueSize {
                id: self.id,
                expected: self.user_value_size(),
                got: v,
            });
        }
        Ok(())
    }

    fn check_readable(&self, op: &'static str) -> Result<(), MapError> {
        if self.map_flags & def::BPF_F_WRONLY != 0 {
            return Err(MapError::PermissionDenied {
                id: self.id,
                op,
                why: "BPF_F_WRONLY",
            });
        }
        Ok(())
    }

    fn check_writable(&self, op: &'static str) -> Result<(), MapError> {
        if self.map_flags & def::BPF_F_RDONLY != 0 {
            return Err(MapError::PermissionDenied {
                id: self.id,
                op,
                why: "BPF_F_RDONLY",
            });
        }
        if self.is_frozen() {
            return Err(MapError::PermissionDenied {
                id: self.id,
                op,
                why: "map frozen",
            });
        }
        Ok(())
    }

    pub(crate) fn not_supported(&self, op: &'static str) -> MapError {
        MapError::NotSupported {
            id: self.id,
            map_type: self.meta.info.map_type,
            op,
        }
    }

    /// True once `freeze` has been called (by any process).
    pub fn is_frozen(&self) -> bool {
        layout::entry(&self.shm, self.meta.slot)
            .map(|e| e.frozen.load(Ordering::Acquire) != 0)
            .unwrap_or(false)
    }

    /// BPF_MAP_FREEZE: from now on user space may not update or delete
    /// (programs still may). EBUSY if already frozen.
    pub fn freeze(&self) -> Result<(), MapError> {
        let e = layout::entry(&self.shm, self.meta.slot).ok_or(MapError::Corrupt {
            id: self.id,
            what: "map table slot outside the mapping".into(),
        })?;
        match e
            .frozen
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(()),
            Err(_) => Err(MapError::Busy { id: self.id }),
        }
    }

    // ---- locks and crash recovery ----

    /// Takes one of this map's store locks (bounded, see `lock.rs`); `which`
    /// names it for the error (e.g. "stripe lock 3"). A takeover from a dead
    /// owner marks the map for repair.
    #[inline(always)]
    pub(crate) fn take_lock<'a>(
        &'a self,
        word: &'a AtomicU32,
        which: impl FnOnce() -> String,
    ) -> Result<PidLockGuard<'a>, MapError> {
        match lock::lock(word) {
            Ok(g) => {
                if g.took_over() {
                    self.mark_dirty();
                }
                Ok(g)
            }
            Err(h) => Err(self.lock_error(h, which)),
        }
    }

    #[cold]
    #[inline(never)]
    fn lock_error(&self, h: lock::LockHeld, which: impl FnOnce() -> String) -> MapError {
        h.to_map_error(self.id, self.lock_name(which()))
    }

    /// `map 3 "flows" <which>`.
    pub(crate) fn lock_name(&self, which: String) -> String {
        format!("map {} {:?} {which}", self.id, self.meta.info.name)
    }

    /// The word (offset 24 of the control block of hash maps and LPM tries,
    /// reserved and zero at creation) that says a writer died holding one of
    /// the map's locks, so the map may hold slack until repaired. Set by a
    /// takeover, cleared by [`Map::repair`]. None for kinds with nothing to repair.
    pub(crate) fn dirty_word(&self) -> Option<&AtomicU32> {
        if !(self.kind.is_hash() || self.kind == Kind::LpmTrie) {
            return None;
        }
        // SAFETY: offset 24 of the 64-byte control block at the start of the data
        // region of hash maps (after free_head, fresh, count, the LRU lock and
        // hand) and LPM tries (after root, lock, seq, n_entries, free_head,
        // fresh), 4-aligned; store memory is only accessed atomically.
        Some(unsafe { AtomicU32::from_ptr(self.data.wrapping_add(24) as *mut u32) })
    }

    #[cold]
    pub(crate) fn mark_dirty(&self) {
        if let Some(w) = self.dirty_word() {
            w.store(1, Ordering::Release);
        }
    }

    /// True when a writer may have died inside this map: marked by a takeover,
    /// or a lock word still names a dead process.
    pub fn needs_repair(&self) -> bool {
        if self.timer_lock_dead() {
            return true;
        }
        let Some(w) = self.dirty_word() else {
            return false;
        };
        if w.load(Ordering::Acquire) != 0 {
            return true;
        }
        if self.kind == Kind::LpmTrie {
            return lock::held_by_dead(self.lpm_lock());
        }
        (0..=self.stripe_mask).any(|s| lock::held_by_dead(self.stripe_lock(s)))
            || (self.kind.is_lru() && lock::held_by_dead(self.lru_lock()))
    }

    /// Repairs the map if [`Map::needs_repair`]; returns the elements reclaimed.
    pub fn recover(&self) -> Result<u32, MapError> {
        if self.needs_repair() {
            self.repair()
        } else {
            Ok(0)
        }
    }

    // ---- user-space API ----

    /// BPF_MAP_LOOKUP_ELEM. `value_out` is `user_value_size()` bytes.
    pub fn lookup(&self, key: &[u8], value_out: &mut [u8]) -> Result<(), MapError> {
        self.check_readable("lookup")?;
        self.check_key(key)?;
        self.check_value(value_out.len())?;
        match self.kind {
            Kind::Array | Kind::PercpuArray | Kind::ProgArray => {
                self.array_user_lookup(key, value_out)
            }
            k if k.is_hash() => self.hash_user_lookup(key, value_out),
            k if k.is_slots() => self.slots_user_lookup(key, value_out),
            Kind::LpmTrie => self.lpm_user_lookup(key, value_out),
            _ => Err(self.unsupported("lookup")),
        }
    }

    /// BPF_MAP_UPDATE_ELEM with `flags` (BPF_ANY, BPF_NOEXIST, BPF_EXIST).
    /// `value` is `user_value_size()` bytes.
    ///
    /// A map that looks full while a writer that died inside it may have left
    /// slack (see `lock.rs`) is repaired and the update tried once more.
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        match self.update_once(key, value, flags) {
            Err(
                MapError::TooBig { .. }
                | MapError::NoSpaceLeft { .. }
                | MapError::NoFreeElement { .. },
            ) if self.needs_repair() => {
                self.repair()?;
                self.update_once(key, value, flags)
            }
            r => r,
        }
    }

    fn update_once(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        self.check_writable("update")?;
        self.check_key(key)?;
        self.check_value(value.len())?;
        match self.kind {
            Kind::Array | Kind::PercpuArray | Kind::ProgArray => {
                self.array_user_update(key, value, flags)
            }
            Kind::DevMapHash => {
                // __dev_map_hash_update_elem
                if flags > def::BPF_EXIST || value.get(..4) == Some(&[0u8; 4][..]) {
                    return Err(MapError::InvalidFlags { id: self.id, flags });
                }
                if value.len() == 8
                    && i32::from_ne_bytes([value[4], value[5], value[6], value[7]]) > 0
                {
                    return Err(MapError::InvalidValue {
                        id: self.id,
                        what: "devmap programs are not supported",
                    });
                }
                let mut v = value.to_vec();
                if v.len() == 8 {
                    v[4..].fill(0);
                }
                self.hash_user_update(key, &v, flags)
            }
            Kind::HashOfMaps => {
                if flags > def::BPF_EXIST {
                    return Err(MapError::InvalidFlags { id: self.id, flags });
                }
                self.check_inner(value)?;
                self.hash_user_update(key, value, flags)
            }
            k if k.is_hash() => self.hash_user_update(key, value, flags),
            k if k.is_slots() => self.slots_user_update(key, value, flags),
            // SAFETY: key and value have the sizes checked above.
            Kind::LpmTrie => unsafe { self.lpm_update(key.as_ptr(), value.as_ptr(), flags) },
            _ => Err(self.unsupported("update")),
        }
    }

    /// BPF_MAP_DELETE_ELEM.
    pub fn delete(&self, key: &[u8]) -> Result<(), MapError> {
        self.check_writable("delete")?;
        self.check_key(key)?;
        match self.kind {
            Kind::Array | Kind::PercpuArray | Kind::ProgArray => self.array_delete(key),
            // SAFETY: key has key_size bytes (checked).
            k if k.is_hash() => unsafe { self.hash_delete(key.as_ptr()) },
            k if k.is_slots() => self.slots_delete(key),
            // SAFETY: key has key_size bytes (checked).
            Kind::LpmTrie => unsafe { self.lpm_delete(key.as_ptr()) },
            _ => Err(self.unsupported("delete")),
        }
    }

    /// BPF_MAP_GET_NEXT_KEY: `None` (or a key not in the map) gives the first key.
    /// `ENOENT` (`MapError::NotFound`) after the last key.
    pub fn get_next_key(
        &self,
        key: Option<&[u8]>,
        next_key_out: &mut [u8],
    ) -> Result<(), MapError> {
        self.check_readable("get_next_key")?;
        if let Some(k) = key {
            self.check_key(k)?;
        }
        self.check_key(next_key_out)?;
        match self.kind {
            Kind::Array | Kind::PercpuArray | Kind::ProgArray => {
                self.array_get_next_key(key, next_key_out)
            }
            k if k.is_slots() => self.array_get_next_key(key, next_key_out),
            k if k.is_hash() => self.hash_get_next_key(key, next_key_out),
            Kind::LpmTrie => self.lpm_get_next_key(key, next_key_out),
            // The kernel says ENOTSUPP; an empty walk keeps generic dumps working.
            _ => Err(MapError::NotFound { id: self.id }),
        }
    }

    /// All keys, in get_next_key order (control plane; allocates). Yields at
    /// most max_entries distinct keys; a walk that would give more, or does not
    /// end, yields a `MapError::Corrupt` and stops (see [`MapKeys`]).
    pub fn iter(&self) -> MapKeys {
        MapKeys {
            map: self.clone(),
            prev: None,
            seen: std::collections::HashSet::new(),
            steps: 0,
            done: false,
        }
    }

    // ---- program-facing API ----

    /// bpf_map_lookup_elem from a program running as worker `cpu`: a pointer to
    /// the value (this worker's slot for per-CPU maps), or null when absent.
    /// Always null for PROG_ARRAY, which programs may not look up.
    ///
    /// # Safety
    /// `key` points to `key_size` readable bytes.
    #[inline]
    pub unsafe fn prog_lookup(&self, key: *const u8, cpu: u32) -> *mut u8 {
        // Arrays inline; every other kind calls its entry point, chosen for its
        // kind and key size when the handle was made (`prog_ops`).
        match self.kind {
            // SAFETY: forwarded caller contract.
            Kind::Array => unsafe { self.array_lookup_ptr(key) },
            // SAFETY: forwarded caller contract.
            Kind::PercpuArray => unsafe { self.percpu_array_lookup_ptr(key, cpu) },
            // SAFETY: forwarded caller contract; `ops` was chosen for this map.
            _ => unsafe { (self.ops.lookup)(self, key, cpu) },
        }
    }

    /// The program entry points of this map: its lookup, update and delete as
    /// plain functions chosen for its type and key size, returning what the
    /// helpers return (a pointer or null; `0` or `-errno`). A compiled program
    /// that resolved the map when it was compiled calls them with no dispatch.
    /// See [`ProgOps`](crate::ProgOps) for `update_in_place` and the safety
    /// contract (the functions are only to be called with this map or a clone of
    /// its handle).
    pub fn prog_ops(&self) -> crate::progops::ProgOps {
        self.ops
    }

    /// `prog_lookup` of any kind, by a match on the kind (the fallback entry
    /// point of the kinds `prog_ops` has no specialised function for).
    ///
    /// # Safety
    /// As `prog_lookup`.
    #[inline(never)]
    pub(crate) unsafe fn prog_lookup_slow(&self, key: *const u8, cpu: u32) -> *mut u8 {
        match self.kind {
            // SAFETY: forwarded caller contract.
            Kind::Array => unsafe { self.array_lookup_ptr(key) },
            // SAFETY: forwarded caller contract.
            Kind::PercpuArray => unsafe { self.percpu_array_lookup_ptr(key, cpu) },
            // SAFETY: forwarded caller contract.
            k if k.is_hash() => unsafe { self.hash_lookup_ptr(key, cpu) },
            // SAFETY: forwarded caller contract.
            Kind::LpmTrie => unsafe { self.lpm_lookup_ptr(key) },
            Kind::DevMap | Kind::XskMap | Kind::ArrayOfMaps => {
                // SAFETY: forwarded caller contract (4-byte key).
                let idx = unsafe { std::ptr::read_unaligned(key as *const u32) };
                self.slot_ptr(idx)
            }
            _ => std::ptr::null_mut(),
        }
    }

    /// bpf_map_update_elem from a program running as worker `cpu`. For per-CPU
    /// maps only this worker's slot is written (a new per-CPU hash element gets
    /// zeroes in the other slots, as the kernel does).
    ///
    /// # Safety
    /// `key` and `value` point to `key_size` and `value_size` readable bytes.
    #[inline]
    pub unsafe fn prog_update(
        &self,
        key: *const u8,
        value: *const u8,
        flags: u64,
        cpu: u32,
    ) -> Result<(), MapError> {
        if self.map_flags & def::BPF_F_RDONLY_PROG != 0 {
            return Err(MapError::PermissionDenied {
                id: self.id,
                op: "update",
                why: "BPF_F_RDONLY_PROG",
            });
        }
        match self.kind {
            // SAFETY: forwarded caller contract.
            Kind::Array | Kind::PercpuArray => unsafe {
                self.array_prog_update(key, value, flags, cpu)
            },
            // SAFETY: forwarded caller contract; `update_res` was chosen for this map.
            _ => unsafe { (self.update_res)(self, key, value, flags, cpu) },
        }
    }

    /// `prog_update` by a match on the kind (the fallback of the kinds with no
    /// specialised update); the caller checked BPF_F_RDONLY_PROG.
    ///
    /// # Safety
    /// As `prog_update`.
    #[inline(never)]
    pub(crate) unsafe fn prog_update_slow(
        &self,
        key: *const u8,
        value: *const u8,
        flags: u64,
        cpu: u32,
    ) -> Result<(), MapError> {
        match self.kind {
            // SAFETY: forwarded caller contract.
            Kind::Hash => unsafe { self.hash_prog_update(Kind::Hash, key, value, flags, cpu) },
            // SAFETY: forwarded caller contract.
            Kind::PercpuHash => unsafe {
                self.hash_prog_update(Kind::PercpuHash, key, value, flags, cpu)
            },
            // SAFETY: forwarded caller contract.
            Kind::Array | Kind::PercpuArray => unsafe {
                self.array_prog_update(key, value, flags, cpu)
            },
            // SAFETY: forwarded caller contract.
            Kind::LruHash | Kind::LruPercpuHash => unsafe {
                self.hash_update(key, value, flags, Some(cpu))
            },
            // SAFETY: forwarded caller contract.
            Kind::LpmTrie => unsafe { self.lpm_update(key, value, flags) },
            _ => Err(self.not_supported("program update")),
        }
    }

    /// bpf_map_delete_elem from a program.
    ///
    /// # Safety
    /// `key` points to `key_size` readable bytes.
    #[inline]
    pub unsafe fn prog_delete(&self, key: *const u8) -> Result<(), MapError> {
        if self.map_flags & def::BPF_F_RDONLY_PROG != 0 {
            return Err(MapError::PermissionDenied {
                id: self.id,
                op: "delete",
                why: "BPF_F_RDONLY_PROG",
            });
        }
        match self.kind {
            Kind::Array | Kind::PercpuArray => Err(self.not_supported("delete")),
            // SAFETY: forwarded caller contract.
            Kind::Hash | Kind::PercpuHash | Kind::LruHash | Kind::LruPercpuHash => unsafe {
                self.hash_delete(key)
            },
            // SAFETY: forwarded caller contract.
            Kind::LpmTrie => unsafe { self.lpm_delete(key) },
            _ => Err(self.not_supported("program delete")),
        }
    }

    fn unsupported(&self, op: &'static str) -> MapError {
        MapError::Unsupported {
            id: self.id,
            op,
            errno: crate::error::ENOTSUPP,
        }
    }

    /// The map type's kernel name ("hash", "lpm_trie", ...).
    pub fn type_name(&self) -> &'static str {
        def::map_type_name(self.meta.info.map_type).unwrap_or("unknown")
    }

    /// Where program-visible values live (see [`ValueRegion`]).
    pub fn value_region(&self) -> ValueRegion {
        let base = self.data as usize;
        let vs = self.value_size as usize;
        match self.kind {
            Kind::Array | Kind::PercpuArray => ValueRegion {
                base,
                len: self.meta.data_len,
                stride: self.vstride,
                value_offset: 0,
                value_len: vs,
            },
            Kind::ProgArray => ValueRegion {
                base,
                len: 0,
                stride: self.vstride,
                value_offset: 0,
                value_len: 0,
            },
            Kind::DevMap => ValueRegion {
                base,
                len: self.max_entries as usize * crate::def::SLOT_SIZE as usize,
                stride: crate::def::SLOT_SIZE as usize,
                value_offset: 0,
                value_len: vs,
            },
            Kind::LpmTrie => ValueRegion {
                base: self.elems as usize,
                len: self.nelems as usize * self.elem_size,
                stride: self.elem_size,
                value_offset: 16 + self.key_stride,
                value_len: vs,
            },
            Kind::Hash
            | Kind::PercpuHash
            | Kind::LruHash
            | Kind::LruPercpuHash
            | Kind::DevMapHash => {
                let value_len = if self.kind.is_percpu() {
                    (self.ncpus as usize - 1) * self.vstride + vs
                } else {
                    vs
                };
                ValueRegion {
                    base: self.elems as usize,
                    len: self.nelems as usize * self.elem_size,
                    stride: self.elem_size,
                    value_offset: self.value_off,
                    value_len,
                }
            }
            // Values programs never get pointers they may dereference.
            _ => ValueRegion {
                base,
                len: 0,
                stride: 8,
                value_offset: 0,
                value_len: 0,
            },
        }
    }
}

/// Iterator over a map's keys, in get_next_key order.
///
/// A key is yielded once: a key seen again (get_next_key restarts from the
/// first key when the one it was given was deleted meanwhile, as the kernel's
/// does) is stepped over. The walk is bounded by the map's definition: more
/// than max_entries distinct keys, or more than `2 * max_entries + 16`
/// get_next_key steps, end it with a `MapError::Corrupt` item. Any other
/// error of get_next_key ends it with that error.
pub struct MapKeys {
    map: Map,
    prev: Option<Vec<u8>>,
    seen: std::collections::HashSet<Vec<u8>>,
    steps: u64,
    done: bool,
}

impl MapKeys {
    fn fail(&mut self, e: MapError) -> Option<Result<Vec<u8>, MapError>> {
        self.done = true;
        Some(Err(e))
    }
}

impl Iterator for MapKeys {
    type Item = Result<Vec<u8>, MapError>;

    fn next(&mut self) -> Option<Self::Item> {
        let max = self.map.max_entries;
        loop {
            if self.done {
                return None;
            }
            self.steps += 1;
            if self.steps > 2 * u64::from(max) + 16 {
                let what = format!(
                    "{:?}: get_next_key walk did not end after {} steps (max_entries {max})",
                    self.map.meta.info.name,
                    self.steps - 1
                );
                return self.fail(MapError::Corrupt {
                    id: self.map.id,
                    what,
                });
            }
            let mut out = vec![0u8; self.map.key_size as usize];
            match self.map.get_next_key(self.prev.as_deref(), &mut out) {
                Ok(()) => {
                    self.prev = Some(out.clone());
                    if self.seen.contains(&out) {
                        continue;
                    }
                    if self.seen.len() >= max as usize {
                        let what = format!(
                            "{:?}: get_next_key yields more than max_entries ({max}) keys",
                            self.map.meta.info.name
                        );
                        return self.fail(MapError::Corrupt {
                            id: self.map.id,
                            what,
                        });
                    }
                    self.seen.insert(out.clone());
                    return Some(Ok(out));
                }
                Err(MapError::NotFound { .. }) => {
                    self.done = true;
                    return None;
                }
                Err(e) => return self.fail(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_region_rule() {
        let r = ValueRegion {
            base: 1000,
            len: 3 * 32,
            stride: 32,
            value_offset: 24,
            value_len: 6,
        };
        assert!(r.contains(1024, 6));
        assert!(r.contains(1024 + 64, 4));
        assert!(r.contains(1026, 4));
        assert!(!r.contains(1024, 7));
        assert!(!r.contains(1023, 1));
        assert!(!r.contains(999, 1));
        assert!(!r.contains(1000 + 96 + 24, 1));
        assert!(!r.contains(usize::MAX, 2));
        let empty = ValueRegion {
            base: 1000,
            len: 0,
            stride: 4,
            value_offset: 0,
            value_len: 0,
        };
        assert!(!empty.contains(1000, 1));
    }
}
