//! The store: creating and opening it, and creating and finding maps in it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::def::{self, MapDef};
use crate::error::{MapError, StoreError};
use crate::layout::{self, HeaderFacts};
use crate::lock;
use crate::map::Map;
use crate::shm::{self, Shm, StoreAccess};

/// Options for a new store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Total bytes. A named store reserves them all when created (a full
    /// filesystem is an error then, never a fault later); an anonymous one
    /// pays only for what it uses.
    pub size: usize,
    /// Per-CPU slots of per-CPU maps; default: the number of possible CPUs
    /// (/sys/devices/system/cpu/possible), so dumps line up with the kernel's.
    pub ncpus: Option<u32>,
}

/// Default store size: 64 MiB.
pub const DEFAULT_STORE_SIZE: usize = 64 << 20;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            size: DEFAULT_STORE_SIZE,
            ncpus: None,
        }
    }
}

/// Parses a kernel CPU list such as "0-3,5,7-8" and counts its CPUs.
pub fn parse_cpu_list(s: &str) -> Option<u32> {
    let mut n: u32 = 0;
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?),
            None => {
                let x = part.trim().parse::<u32>().ok()?;
                (x, x)
            }
        };
        if hi < lo {
            return None;
        }
        n = n.checked_add(hi - lo + 1)?;
    }
    (n > 0).then_some(n)
}

/// The number of possible CPUs, as libbpf's libbpf_num_possible_cpus counts them.
pub fn possible_cpus() -> u32 {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|s| parse_cpu_list(&s))
        .or_else(|| {
            std::thread::available_parallelism()
                .ok()
                .map(|n| n.get() as u32)
        })
        .unwrap_or(1)
}

/// A shared-memory store of maps. Cheap to clone (shares the mapping).
#[derive(Clone)]
pub struct Store {
    shm: Arc<Shm>,
    name: Option<String>,
    ncpus: u32,
    total_size: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("name", &self.name)
            .field("ncpus", &self.ncpus)
            .field("size", &self.total_size)
            .finish()
    }
}

fn check_options(opts: &StoreOptions) -> Result<u32, StoreError> {
    if opts.size < layout::MIN_STORE_SIZE {
        return Err(StoreError::InvalidOptions {
            what: format!(
                "size {} below the minimum {}",
                opts.size,
                layout::MIN_STORE_SIZE
            ),
        });
    }
    let ncpus = opts.ncpus.unwrap_or_else(possible_cpus);
    if ncpus == 0 || ncpus > layout::MAX_NCPUS {
        return Err(StoreError::InvalidOptions {
            what: format!("ncpus {ncpus} outside 1..={}", layout::MAX_NCPUS),
        });
    }
    Ok(ncpus)
}

impl Store {
    fn from_shm(shm: Shm, name: Option<String>) -> Result<Store, StoreError> {
        lock::init();
        let facts: HeaderFacts = layout::validate_header(&shm)?;
        layout::validate_table(&shm, &facts)?;
        Ok(Store {
            shm: Arc::new(shm),
            name,
            ncpus: facts.ncpus,
            total_size: facts.total_size,
        })
    }

    /// Creates `/dev/shm/<name>` (mode 0600). Fails with `AlreadyExists` if it exists.
    pub fn create(name: &str, opts: StoreOptions) -> Result<Store, StoreError> {
        Store::create_with(name, opts, &StoreAccess::default())
    }

    /// Creates `<dir>/<name>` as `access` says (directory, group sharing),
    /// with all of its memory reserved: a filesystem without room for it is a
    /// [`StoreError::NoRoom`] here, and nothing is left behind.
    pub fn create_with(
        name: &str,
        opts: StoreOptions,
        access: &StoreAccess,
    ) -> Result<Store, StoreError> {
        let ncpus = check_options(&opts)?;
        let shm = Shm::create_named(name, opts.size, access, |s| layout::init_header(s, ncpus))?;
        Store::from_shm(shm, Some(name.to_owned()))
    }

    /// Opens an existing store of the caller's, validating everything it will trust.
    pub fn open(name: &str) -> Result<Store, StoreError> {
        Store::open_with(name, &StoreAccess::default())
    }

    /// Opens an existing store in `access`'s directory, accepting the owners it
    /// trusts besides the caller (see [`Trust`](crate::Trust)).
    pub fn open_with(name: &str, access: &StoreAccess) -> Result<Store, StoreError> {
        let shm = Shm::open_named(name, access)?;
        let store = Store::from_shm(shm, Some(name.to_owned()))?;
        // What writers killed inside a map left behind (see `lock.rs`).
        store.recover();
        Ok(store)
    }

    /// Opens the store, creating it with `opts` if it does not exist.
    pub fn open_or_create(name: &str, opts: StoreOptions) -> Result<Store, StoreError> {
        Store::open_or_create_with(name, opts, &StoreAccess::default())
    }

    /// [`Store::open_or_create`] with an explicit [`StoreAccess`].
    pub fn open_or_create_with(
        name: &str,
        opts: StoreOptions,
        access: &StoreAccess,
    ) -> Result<Store, StoreError> {
        for _ in 0..16 {
            match Store::open_with(name, access) {
                Err(StoreError::NotFound { .. }) => {}
                other => return other,
            }
            match Store::create_with(name, opts.clone(), access) {
                Err(StoreError::AlreadyExists { .. }) => {} // lost a race: open it
                other => return other,
            }
        }
        Err(StoreError::NotFound {
            name: name.to_owned(),
        })
    }

    /// A store in an unnamed memfd mapping, for one-shot runs (shared with forked children).
    pub fn anonymous(opts: StoreOptions) -> Result<Store, StoreError> {
        let ncpus = check_options(&opts)?;
        let shm = Shm::anonymous(opts.size, |s| layout::init_header(s, ncpus))?;
        Store::from_shm(shm, None)
    }

    /// Removes `/dev/shm/<name>`. Open handles keep working.
    pub fn unlink(name: &str) -> Result<(), StoreError> {
        shm::unlink(name, &StoreAccess::default())
    }

    /// Removes `<dir>/<name>` of `access`'s directory.
    pub fn unlink_with(name: &str, access: &StoreAccess) -> Result<(), StoreError> {
        shm::unlink(name, access)
    }

    /// The store's file (the memfd of an anonymous store), open read-write:
    /// map parts of the store again through it, never through its name.
    pub fn file(&self) -> &std::fs::File {
        self.shm.file()
    }

    /// Checks that the store's file still covers the whole mapping.
    ///
    /// A process allowed to write the store (its owner, a trusted group
    /// member, root) can `ftruncate` it while others have it mapped; their
    /// next access past the new end faults with SIGBUS. Named stores cannot be
    /// sealed against this (seals are for memfds; anonymous stores are sealed),
    /// so the length is checked where it is cheap: on open, here, and before
    /// each map is handed out by id. The window between a check and an access
    /// remains; only processes already trusted with the store's contents can
    /// open it.
    pub fn check_size(&self) -> Result<(), StoreError> {
        self.shm.check_len()
    }

    /// What tells this store from every other one on the system while it
    /// exists: the device and inode of its file (a store removed and created
    /// again under the same name is another store).
    pub fn identity(&self) -> (u64, u64) {
        self.shm.ident()
    }

    /// The store's per-CPU slot count.
    pub fn ncpus(&self) -> u32 {
        self.ncpus
    }

    /// The store's name (None for anonymous stores).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Total size in bytes.
    pub fn size(&self) -> u64 {
        self.total_size
    }

    /// Bytes not yet handed out to maps.
    pub fn free_bytes(&self) -> u64 {
        layout::header(&self.shm)
            .map(|h| {
                self.total_size
                    .saturating_sub(h.alloc_cursor.load(Ordering::Acquire))
            })
            .unwrap_or(0)
    }

    pub(crate) fn shm(&self) -> &Shm {
        &self.shm
    }

    fn facts(&self) -> HeaderFacts {
        HeaderFacts {
            ncpus: self.ncpus,
            total_size: self.total_size,
        }
    }

    /// BPF_MAP_CREATE: validates `def` as the kernel does, allocates and
    /// zero-initialises the map's memory, and publishes it in the map table.
    /// A failure leaves the store unchanged (and usable).
    pub fn create_map(&self, def: &MapDef) -> Result<Map, MapError> {
        self.create_map_with_timer(def, None)
    }

    /// [`Store::create_map`] for a map whose value holds a `struct bpf_timer` at
    /// byte `timer_off` (found in the value's BTF, as the kernel's `map_check_btf`):
    /// the map gets its timer area (`timer.rs`). The kernel's errors: EOPNOTSUPP for
    /// a map type other than HASH, LRU_HASH and ARRAY, EINVAL for a timer not
    /// 8-aligned or not inside the value.
    pub fn create_map_with_timer(
        &self,
        def: &MapDef,
        timer_off: Option<u32>,
    ) -> Result<Map, MapError> {
        let name = def::stored_name(&def.name);
        def::check_name(name)?;
        let g = def::geometry(
            def.map_type,
            def.key_size,
            def.value_size,
            def.max_entries,
            def.map_flags,
            name,
            self.ncpus,
        )?;
        let timer = match timer_off {
            None => None,
            Some(off) => {
                let bad = |what: &str, errno: i32| MapError::BadTimer {
                    name: name.to_owned(),
                    what: what.to_owned(),
                    errno,
                };
                let slots = def::timer_slots(&g, def.max_entries).ok_or_else(|| {
                    bad(
                        "bpf_timer only in HASH, LRU_HASH and ARRAY values",
                        libc::EOPNOTSUPP,
                    )
                })?;
                if !off.is_multiple_of(8) || u64::from(off) + 16 > u64::from(def.value_size) {
                    return Err(bad(
                        "bpf_timer misaligned or outside the value",
                        libc::EINVAL,
                    ));
                }
                Some((off, slots))
            }
        };
        let corrupt = |what: String| MapError::Corrupt { id: 0, what };
        let h = layout::header(&self.shm).map_err(|e| corrupt(e.to_string()))?;
        let snap = {
            let _meta = lock::lock(&h.meta_lock)
                .map_err(|e| e.to_map_error(0, "store meta_lock".into()))?;
            // Under meta_lock, a CREATING entry was abandoned by a holder that died.
            let slot = (0..layout::MAP_TABLE_CAP)
                .find(|&s| {
                    layout::entry(&self.shm, s)
                        .is_some_and(|e| e.state.load(Ordering::Acquire) != layout::ENTRY_LIVE)
                })
                .ok_or(MapError::TableFull {
                    capacity: layout::MAP_TABLE_CAP,
                })?;
            let e =
                layout::entry(&self.shm, slot).ok_or_else(|| corrupt("map table slot".into()))?;
            let cursor = h.alloc_cursor.load(Ordering::Acquire);
            if cursor < layout::DATA_START as u64 || cursor > self.total_size {
                return Err(corrupt(format!("alloc_cursor {cursor} out of range")));
            }
            let off = def::round_up(cursor, g.align);
            let available = self.total_size - cursor;
            let timer_at = off.checked_add(g.data_len).map(|e| def::round_up(e, 64));
            let need = match timer {
                Some((_, slots)) => timer_at
                    .map(|t| t - off + crate::timer::area_len(slots))
                    .unwrap_or(u64::MAX),
                None => g.data_len,
            };
            let end = off.checked_add(need).filter(|&end| end <= self.total_size);
            let Some(end) = end else {
                return Err(MapError::NoSpace {
                    name: name.to_owned(),
                    needed: need,
                    available,
                });
            };
            let id = h.next_map_id.load(Ordering::Acquire);
            if id == 0 || id == u32::MAX {
                return Err(MapError::TableFull {
                    capacity: layout::MAP_TABLE_CAP,
                });
            }
            let r = Ordering::Relaxed;
            e.state.store(layout::ENTRY_CREATING, Ordering::Release);
            e.id.store(id, r);
            e.map_type.store(def.map_type, r);
            e.key_size.store(def.key_size, r);
            e.value_size.store(def.value_size, r);
            e.max_entries.store(def.max_entries, r);
            e.map_flags
                .store(def.map_flags | def::implied_flags(def.map_type), r);
            e.frozen.store(0, r);
            e.btf_key_type_id.store(def.btf_key_type_id, r);
            e.btf_value_type_id.store(def.btf_value_type_id, r);
            e.btf_id.store(def.btf_id, r);
            e.holder_pid.store(def.holder_pid, r);
            let seed = if def.map_flags & def::BPF_F_ZERO_SEED != 0 {
                0
            } else {
                shm::random_u32()
            };
            e.hash_seed.store(seed, r);
            layout::store_name(e, name);
            e.data_off.store(off, r);
            e.data_len.store(g.data_len, r);
            for w in &e.reserved {
                w.store(0, r);
            }
            match (timer, timer_at) {
                (Some((toff, slots)), Some(at)) => {
                    e.timer_area.store(at, r);
                    e.timer_info.store(u64::from(toff) | (slots << 32), r);
                }
                _ => {
                    e.timer_area.store(0, r);
                    e.timer_info.store(0, r);
                }
            }
            // Advance the cursor before the memory is used: if we die from here on,
            // the space leaks but is never handed out twice. Memory past the cursor
            // has never been written (bump allocation only), so it is still zero.
            h.alloc_cursor.store(end, Ordering::Release);
            h.next_map_id.store(id + 1, Ordering::Release);
            e.state.store(layout::ENTRY_LIVE, Ordering::Release);
            layout::read_entry(&self.shm, slot, &self.facts())
                .map_err(|err| corrupt(err.to_string()))?
                .ok_or_else(|| corrupt("entry vanished".into()))?
        };
        Map::from_snapshot(Arc::clone(&self.shm), snap, self.ncpus)
    }

    /// Takes the store's timer lease: this process then drives its timers (see
    /// `timer.rs`). `MapError::TimerLeaseHeld` when a live process holds it; a dead
    /// holder's lease is taken over.
    pub fn timer_lease(&self) -> Result<crate::timer::TimerLease, MapError> {
        crate::timer::TimerLease::take(Arc::clone(&self.shm))
    }

    /// The live map with this id (ENOENT if none), its table entry validated.
    pub fn map_by_id(&self, id: u32) -> Result<Map, MapError> {
        if id == 0 {
            return Err(MapError::NoSuchMap { id });
        }
        self.check_size().map_err(|e| MapError::Corrupt {
            id,
            what: e.to_string(),
        })?;
        let facts = self.facts();
        for slot in 0..layout::MAP_TABLE_CAP {
            let Some(e) = layout::entry(&self.shm, slot) else {
                break;
            };
            if e.state.load(Ordering::Acquire) != layout::ENTRY_LIVE
                || e.id.load(Ordering::Relaxed) != id
            {
                continue;
            }
            let snap = layout::read_entry(&self.shm, slot, &facts)
                .map_err(|err| MapError::Corrupt {
                    id,
                    what: err.to_string(),
                })?
                .ok_or(MapError::NoSuchMap { id })?;
            return Map::from_snapshot(Arc::clone(&self.shm), snap, self.ncpus);
        }
        Err(MapError::NoSuchMap { id })
    }

    /// The live map named `name` (a map's name as bpftool shows it, e.g. `.bss`
    /// maps as the object named them): `NoSuchName` if none, `AmbiguousName` with
    /// their ids if several maps carry it (open those by id).
    pub fn map_by_name(&self, name: &str) -> Result<Map, MapError> {
        let mut found = Vec::new();
        for id in self.map_ids() {
            let m = match self.map_by_id(id) {
                Ok(m) => m,
                // Removed since map_ids: not a candidate.
                Err(MapError::NoSuchMap { .. }) => continue,
                Err(e) => return Err(e),
            };
            if m.info().name == name {
                found.push(m);
            }
        }
        match found.len() {
            0 => Err(MapError::NoSuchName {
                name: name.to_string(),
            }),
            1 => Ok(found.remove(0)),
            _ => Err(MapError::AmbiguousName {
                name: name.to_string(),
                ids: found.iter().map(|m| m.id()).collect(),
            }),
        }
    }

    /// Runs [`Map::repair`] on every map (see the recovery rule in `lock.rs`);
    /// returns the elements reclaimed in total.
    pub fn repair(&self) -> Result<u32, MapError> {
        let mut total = 0;
        for id in self.map_ids() {
            total += self.map_by_id(id)?.repair()?;
        }
        Ok(total)
    }

    /// Runs [`Map::check`] on every map.
    pub fn check(&self) -> Result<(), MapError> {
        self.check_size().map_err(|e| MapError::Corrupt {
            id: 0,
            what: e.to_string(),
        })?;
        for id in self.map_ids() {
            self.map_by_id(id)?.check()?;
        }
        Ok(())
    }

    /// Ids of all live maps, ascending.
    pub fn map_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = (0..layout::MAP_TABLE_CAP)
            .filter_map(|s| layout::entry(&self.shm, s))
            .filter(|e| e.state.load(Ordering::Acquire) == layout::ENTRY_LIVE)
            .map(|e| e.id.load(Ordering::Relaxed))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Removes map `id` from the table (ENOENT if absent). Its memory is not
    /// reused: handles other processes still hold keep working on it.
    pub fn remove_map(&self, id: u32) -> Result<(), MapError> {
        // Its timers go with it (the kernel cancels them when a map is freed).
        if let Ok(m) = self.map_by_id(id) {
            m.timer_cancel_all()?;
        }
        let corrupt = |what: String| MapError::Corrupt { id, what };
        let h = layout::header(&self.shm).map_err(|e| corrupt(e.to_string()))?;
        let _meta =
            lock::lock(&h.meta_lock).map_err(|e| e.to_map_error(0, "store meta_lock".into()))?;
        let e = (0..layout::MAP_TABLE_CAP)
            .filter_map(|s| layout::entry(&self.shm, s))
            .find(|e| {
                e.state.load(Ordering::Acquire) == layout::ENTRY_LIVE
                    && e.id.load(Ordering::Relaxed) == id
            })
            .ok_or(MapError::NoSuchMap { id })?;
        e.state.store(layout::ENTRY_FREE, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn maps_are_found_by_name_unless_ambiguous() {
        let store = Store::anonymous(StoreOptions {
            size: 1 << 20,
            ncpus: Some(1),
        })
        .unwrap();
        let def = |name: &str| MapDef {
            map_type: crate::BPF_MAP_TYPE_ARRAY,
            key_size: 4,
            value_size: 4,
            max_entries: 1,
            name: name.into(),
            ..MapDef::default()
        };
        let a = store.create_map(&def("a")).unwrap();
        let b1 = store.create_map(&def("b")).unwrap();
        let b2 = store.create_map(&def("b")).unwrap();
        assert_eq!(store.map_by_name("a").unwrap().id(), a.id());
        assert_eq!(
            store.map_by_name("b").unwrap_err(),
            MapError::AmbiguousName {
                name: "b".into(),
                ids: vec![b1.id(), b2.id()]
            }
        );
        assert_eq!(
            store.map_by_name("c").unwrap_err(),
            MapError::NoSuchName { name: "c".into() }
        );
        store.remove_map(b1.id()).unwrap();
        assert_eq!(store.map_by_name("b").unwrap().id(), b2.id());
    }

    use super::*;

    #[test]
    fn removed_maps_leave_the_table_and_handles_keep_working() {
        let s = Store::anonymous(StoreOptions {
            size: 1 << 20,
            ncpus: Some(1),
        })
        .expect("store");
        let m = s
            .create_map(&MapDef {
                map_type: def::BPF_MAP_TYPE_ARRAY,
                key_size: 4,
                value_size: 4,
                max_entries: 1,
                name: "gone".into(),
                holder_pid: 42,
                ..MapDef::default()
            })
            .expect("map");
        assert_eq!(m.info().holder_pid, 42);
        s.remove_map(m.id()).expect("remove");
        assert!(s.map_ids().is_empty());
        assert!(s.map_by_id(m.id()).is_err());
        assert_eq!(
            s.remove_map(m.id()).map_err(|e| e.errno()),
            Err(libc::ENOENT)
        );
        m.update(&0u32.to_ne_bytes(), &[1, 2, 3, 4], 0)
            .expect("an old handle still works");
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(2));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-3,5,7-8"), Some(7));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert!(possible_cpus() >= 1);
    }

    #[test]
    fn anonymous_store_defaults() {
        let s = Store::anonymous(StoreOptions {
            size: 1 << 20,
            ncpus: None,
        })
        .expect("store");
        assert_eq!(s.ncpus(), possible_cpus());
        assert_eq!(s.name(), None);
        assert!(s.map_ids().is_empty());
        assert_eq!(s.size(), 1 << 20);
    }

    #[test]
    fn options_are_checked() {
        let small = StoreOptions {
            size: 4096,
            ncpus: Some(1),
        };
        assert!(matches!(
            Store::anonymous(small),
            Err(StoreError::InvalidOptions { .. })
        ));
        let zero = StoreOptions {
            size: 1 << 20,
            ncpus: Some(0),
        };
        assert!(matches!(
            Store::anonymous(zero),
            Err(StoreError::InvalidOptions { .. })
        ));
    }

    #[test]
    fn maps_get_ids_and_are_found() {
        let s = Store::anonymous(StoreOptions {
            size: 1 << 20,
            ncpus: Some(2),
        })
        .expect("store");
        let d = MapDef {
            map_type: def::BPF_MAP_TYPE_HASH,
            key_size: 4,
            value_size: 8,
            max_entries: 16,
            name: "h".into(),
            btf_key_type_id: 3,
            btf_value_type_id: 4,
            ..MapDef::default()
        };
        let a = s.create_map(&d).expect("a");
        let b = s.create_map(&d).expect("b");
        assert_eq!((a.info().id, b.info().id), (1, 2));
        assert_eq!(s.map_ids(), vec![1, 2]);
        let b2 = s.map_by_id(2).expect("by id");
        let info = b2.info();
        assert_eq!(
            (
                info.btf_key_type_id,
                info.btf_value_type_id,
                info.name.as_str()
            ),
            (3, 4, "h")
        );
        assert_eq!(
            s.map_by_id(3).map_err(|e| e.errno()).err(),
            Some(libc::ENOENT)
        );
        assert_eq!(
            s.map_by_id(0).map_err(|e| e.errno()).err(),
            Some(libc::ENOENT)
        );
        // Bad definitions are rejected without consuming anything.
        let before = s.free_bytes();
        let bad = MapDef {
            key_size: 0,
            ..d.clone()
        };
        assert_eq!(
            s.create_map(&bad).map_err(|e| e.errno()).err(),
            Some(libc::EINVAL)
        );
        let bad_name = MapDef {
            name: "bad name".into(),
            ..d.clone()
        };
        assert_eq!(
            s.create_map(&bad_name).map_err(|e| e.errno()).err(),
            Some(libc::EINVAL)
        );
        assert_eq!(s.free_bytes(), before);
        assert_eq!(s.map_ids(), vec![1, 2]);
        let long = MapDef {
            name: "a_very_long_map_name_indeed".into(),
            ..d.clone()
        };
        let m = s.create_map(&long).expect("long names are truncated");
        assert_eq!(m.info().name, "a_very_long_map");
        assert_eq!(s.map_ids(), vec![1, 2, 3]);
    }

    #[test]
    fn out_of_space_leaves_store_usable() {
        let s = Store::anonymous(StoreOptions {
            size: layout::MIN_STORE_SIZE + 8192,
            ncpus: Some(1),
        })
        .expect("store");
        let big = MapDef {
            map_type: def::BPF_MAP_TYPE_ARRAY,
            key_size: 4,
            value_size: 8,
            max_entries: 100_000,
            name: "big".into(),
            ..MapDef::default()
        };
        let err = s.create_map(&big).expect_err("too big");
        assert_eq!(err.errno(), libc::ENOMEM);
        assert!(s.map_ids().is_empty());
        let small = MapDef {
            max_entries: 10,
            ..big
        };
        let m = s.create_map(&small).expect("fits");
        m.update(&1u32.to_ne_bytes(), &5u64.to_ne_bytes(), 0)
            .expect("usable");
        assert_eq!(s.map_ids(), vec![m.info().id]);
    }
}
