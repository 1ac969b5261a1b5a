//! The store's on-disk layout: header, map table, reserved object/pin table, and
//! the validation of everything a process trusts after opening a store.
//!
//! ```text
//! 0 .. 4096                  Header (versioned; room reserved for later fields)
//! MAP_TABLE_OFF              MAP_TABLE_CAP x MapEntry (128 bytes each)
//! OBJ_TABLE_OFF              OBJ_TABLE_CAP x 512 bytes: programs, BTF objects and
//!                            pins (see objects.rs)
//! DATA_START .. total_size   map memory, bump-allocated from `alloc_cursor`
//! ```
//! Every field is an atomic. The structs are only ever reached through
//! [`Shm::view`](crate::shm::Shm::view), which checks bounds and alignment.
//! Offsets, never pointers, so each process may map the store anywhere.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::def;
use crate::error::StoreError;
use crate::shm::{SharedPod, Shm};

/// "XDPSTORE" little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"XDPSTORE");
/// Layout version written and read by this build. 4: hash maps without
/// BPF_F_ZERO_SEED bucket their keys with the store's `fast_hash` (hash.rs),
/// no longer jhash, so a reader of version 3 would look in the wrong buckets.
/// 5: maps with a `bpf_timer` in their value have a timer area (`timer.rs`,
/// `MapEntry::timer_area`) and the header holds the timer lease. A version 4
/// store is opened too: its reserved words are zero, which reads as no timer
/// areas and no lease (an older build refuses a version 5 store).
pub const LAYOUT_VERSION: u32 = 5;
/// The oldest layout version this build opens.
pub const LAYOUT_VERSION_MIN: u32 = 4;
/// Bytes reserved for the header.
pub const HEADER_SIZE: usize = 4096;
/// Map table offset.
pub const MAP_TABLE_OFF: usize = HEADER_SIZE;
/// Map table capacity.
pub const MAP_TABLE_CAP: u32 = 1024;
/// Bytes per map table entry.
pub const MAP_ENTRY_SIZE: usize = 128;
/// Object/pin table offset (programs and pins, see objects.rs).
pub const OBJ_TABLE_OFF: usize = MAP_TABLE_OFF + MAP_TABLE_CAP as usize * MAP_ENTRY_SIZE;
/// Object/pin table capacity (reserved).
pub const OBJ_TABLE_CAP: u32 = 1024;
/// Bytes per object/pin table entry (reserved).
pub const OBJ_ENTRY_SIZE: usize = 512;
/// First byte of map memory.
pub const DATA_START: usize = OBJ_TABLE_OFF + OBJ_TABLE_CAP as usize * OBJ_ENTRY_SIZE;
/// Smallest store: the tables plus one page of map memory.
pub const MIN_STORE_SIZE: usize = DATA_START + 4096;
/// Largest per-CPU slot count accepted (the kernel's largest NR_CPUS).
pub const MAX_NCPUS: u32 = 8192;

/// Map table entry states.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const ENTRY_FREE: u32 = 0;
/// Being written by the holder of `meta_lock`; abandoned if seen by a later holder.
pub(crate) const ENTRY_CREATING: u32 = 1;
/// Published: every other field is immutable from now on (except `frozen`).
pub(crate) const ENTRY_LIVE: u32 = 2;

/// The store header at offset 0.
#[repr(C)]
pub(crate) struct Header {
    /// MAGIC. Immutable: written before the file is linked into /dev/shm.
    pub magic: AtomicU64,
    /// LAYOUT_VERSION. Immutable.
    pub version: AtomicU32,
    /// HEADER_SIZE. Immutable.
    pub header_size: AtomicU32,
    /// Total bytes of the store (= file length). Immutable.
    pub total_size: AtomicU64,
    /// Per-CPU slots in per-CPU maps. Immutable.
    pub ncpus: AtomicU32,
    /// MAP_TABLE_CAP. Immutable.
    pub map_table_cap: AtomicU32,
    /// MAP_TABLE_OFF. Immutable.
    pub map_table_off: AtomicU64,
    /// OBJ_TABLE_OFF (reserved for programs and pins). Immutable.
    pub obj_table_off: AtomicU64,
    /// OBJ_TABLE_CAP. Immutable.
    pub obj_table_cap: AtomicU32,
    /// Pid spinlock (see lock.rs) guarding map creation: map table slot choice,
    /// `alloc_cursor` advance, `next_map_id`.
    pub meta_lock: AtomicU32,
    /// DATA_START. Immutable.
    pub data_start: AtomicU64,
    /// Bump-allocation cursor: first free byte of map memory. Written only under
    /// `meta_lock` (Release); read atomically by anyone.
    pub alloc_cursor: AtomicU64,
    /// Next map id to hand out (from 1). Written only under `meta_lock`.
    pub next_map_id: AtomicU32,
    /// Next program id (from 1; under `meta_lock`).
    pub next_obj_id: AtomicU32,
    /// Pid of the creating process. Informational, immutable.
    pub creator_pid: AtomicU32,
    /// Next BTF object id (0 read as 1; under `meta_lock`): its own id space,
    /// as in the kernel.
    pub next_btf_id: AtomicU32,
    /// The timer lease (`timer::LeaseWords`, version 5; zero in version 4).
    pub timer_lease: [AtomicU64; 4],
    /// Reserved for later header fields (zero in version 1).
    pub reserved: [AtomicU64; 28],
}

/// Offset of the timer lease words in the header.
pub(crate) const HEADER_LEASE_OFF: usize = std::mem::offset_of!(Header, timer_lease);

/// One map table entry.
#[repr(C)]
pub(crate) struct MapEntry {
    /// ENTRY_FREE / ENTRY_CREATING / ENTRY_LIVE. Set to CREATING and LIVE only under
    /// the header's `meta_lock`; LIVE is stored with Release after every other field.
    pub state: AtomicU32,
    /// Map id. Immutable once LIVE (so are all fields below except `frozen`).
    pub id: AtomicU32,
    pub map_type: AtomicU32,
    pub key_size: AtomicU32,
    pub value_size: AtomicU32,
    pub max_entries: AtomicU32,
    pub map_flags: AtomicU32,
    /// 1 once frozen (BPF_MAP_FREEZE): user-space writes fail. Atomic, set once.
    pub frozen: AtomicU32,
    pub btf_key_type_id: AtomicU32,
    pub btf_value_type_id: AtomicU32,
    /// Hash seed (0 with BPF_F_ZERO_SEED).
    pub hash_seed: AtomicU32,
    pub _pad: AtomicU32,
    /// Name, NUL-padded, BPF_OBJ_NAME_LEN bytes.
    pub name: [AtomicU64; 2],
    /// Offset of the map's memory from the start of the store.
    pub data_off: AtomicU64,
    /// Length of the map's memory.
    pub data_len: AtomicU64,
    /// Id of the BTF object (store-wide, see objects.rs) describing key and value.
    pub btf_id: AtomicU32,
    /// MapDef::holder_pid.
    pub holder_pid: AtomicU32,
    /// Offset of the map's timer area (`timer.rs`), 0 when its value has no
    /// `bpf_timer` (version 5; zero in version 4).
    pub timer_area: AtomicU64,
    /// Offset of `struct bpf_timer` in the value (low 32 bits) and timer slots
    /// (high 32 bits), when `timer_area` is set.
    pub timer_info: AtomicU64,
    /// Reserved for later (inner map template, pin refs, generation): zero.
    pub reserved: [AtomicU64; 3],
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_SIZE);
const _: () = assert!(std::mem::size_of::<MapEntry>() == MAP_ENTRY_SIZE);
const _: () = assert!(DATA_START.is_multiple_of(4096));

// SAFETY: repr(C), built only of atomics.
unsafe impl SharedPod for Header {}
// SAFETY: repr(C), built only of atomics.
unsafe impl SharedPod for MapEntry {}

pub(crate) fn header(shm: &Shm) -> Result<&Header, StoreError> {
    shm.view::<Header>(0).ok_or(StoreError::Truncated {
        len: shm.len() as u64,
        need: HEADER_SIZE as u64,
    })
}

pub(crate) fn entry(shm: &Shm, slot: u32) -> Option<&MapEntry> {
    if slot >= MAP_TABLE_CAP {
        return None;
    }
    shm.view::<MapEntry>(MAP_TABLE_OFF + slot as usize * MAP_ENTRY_SIZE)
}

/// Writes a fresh header into a zeroed mapping of `shm.len()` bytes.
pub(crate) fn init_header(shm: &Shm, ncpus: u32) -> Result<(), StoreError> {
    let h = header(shm)?;
    let r = Ordering::Relaxed;
    h.version.store(LAYOUT_VERSION, r);
    h.header_size.store(HEADER_SIZE as u32, r);
    h.total_size.store(shm.len() as u64, r);
    h.ncpus.store(ncpus, r);
    h.map_table_cap.store(MAP_TABLE_CAP, r);
    h.map_table_off.store(MAP_TABLE_OFF as u64, r);
    h.obj_table_off.store(OBJ_TABLE_OFF as u64, r);
    h.obj_table_cap.store(OBJ_TABLE_CAP, r);
    h.data_start.store(DATA_START as u64, r);
    h.alloc_cursor.store(DATA_START as u64, r);
    h.next_map_id.store(1, r);
    h.next_obj_id.store(1, r);
    h.creator_pid.store(std::process::id(), r);
    // Magic last: a store without it is not a store.
    h.magic.store(MAGIC, Ordering::Release);
    Ok(())
}

/// What `validate_header` establishes, cached by the Store.
pub(crate) struct HeaderFacts {
    pub ncpus: u32,
    pub total_size: u64,
}

/// Checks everything in the header that later code trusts.
pub(crate) fn validate_header(shm: &Shm) -> Result<HeaderFacts, StoreError> {
    let h = header(shm)?;
    let a = Ordering::Acquire;
    let magic = h.magic.load(a);
    if magic != MAGIC {
        return Err(StoreError::BadMagic {
            found: magic,
            expected: MAGIC,
        });
    }
    let version = h.version.load(a);
    if !(LAYOUT_VERSION_MIN..=LAYOUT_VERSION).contains(&version) {
        return Err(StoreError::Version {
            found: version,
            expected: LAYOUT_VERSION,
        });
    }
    let len = shm.len() as u64;
    let total = h.total_size.load(a);
    if total > len {
        return Err(StoreError::Truncated { len, need: total });
    }
    if total != len {
        return Err(StoreError::corrupt(format!(
            "header total_size {total} but file is {len} bytes"
        )));
    }
    if total < MIN_STORE_SIZE as u64 {
        return Err(StoreError::corrupt(format!(
            "total_size {total} below minimum"
        )));
    }
    let fixed: [(&str, u64, u64); 6] = [
        (
            "header_size",
            h.header_size.load(a).into(),
            HEADER_SIZE as u64,
        ),
        (
            "map_table_cap",
            h.map_table_cap.load(a).into(),
            MAP_TABLE_CAP.into(),
        ),
        (
            "map_table_off",
            h.map_table_off.load(a),
            MAP_TABLE_OFF as u64,
        ),
        (
            "obj_table_off",
            h.obj_table_off.load(a),
            OBJ_TABLE_OFF as u64,
        ),
        (
            "obj_table_cap",
            h.obj_table_cap.load(a).into(),
            OBJ_TABLE_CAP.into(),
        ),
        ("data_start", h.data_start.load(a), DATA_START as u64),
    ];
    for (what, found, expected) in fixed {
        if found != expected {
            return Err(StoreError::corrupt(format!(
                "header {what} is {found}, expected {expected}"
            )));
        }
    }
    let ncpus = h.ncpus.load(a);
    if ncpus == 0 || ncpus > MAX_NCPUS {
        return Err(StoreError::corrupt(format!("ncpus {ncpus} out of range")));
    }
    let cursor = h.alloc_cursor.load(a);
    if cursor < DATA_START as u64 || cursor > total {
        return Err(StoreError::corrupt(format!(
            "alloc_cursor {cursor} outside [{DATA_START}, {total}]"
        )));
    }
    if h.next_map_id.load(a) == 0 {
        return Err(StoreError::corrupt("next_map_id is 0"));
    }
    Ok(HeaderFacts {
        ncpus,
        total_size: total,
    })
}

/// A validated snapshot of a LIVE map table entry.
#[derive(Debug, Clone)]
pub(crate) struct EntrySnapshot {
    pub slot: u32,
    pub info: def::MapInfo,
    pub hash_seed: u32,
    pub data_off: u64,
    pub geometry: def::Geometry,
    /// The timer area, when the map's value has a `bpf_timer`.
    pub timer: Option<crate::timer::TimerArea>,
}

pub(crate) fn name_bytes(e: &MapEntry) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&e.name[0].load(Ordering::Relaxed).to_le_bytes());
    out[8..].copy_from_slice(&e.name[1].load(Ordering::Relaxed).to_le_bytes());
    out
}

pub(crate) fn store_name(e: &MapEntry, name: &str) {
    let mut b = [0u8; 16];
    let n = name.len().min(15);
    b[..n].copy_from_slice(&name.as_bytes()[..n]);
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&b[..8]);
    hi.copy_from_slice(&b[8..]);
    e.name[0].store(u64::from_le_bytes(lo), Ordering::Relaxed);
    e.name[1].store(u64::from_le_bytes(hi), Ordering::Relaxed);
}

/// Reads and validates the entry in `slot`. `Ok(None)` if it is not LIVE.
pub(crate) fn read_entry(
    shm: &Shm,
    slot: u32,
    facts: &HeaderFacts,
) -> Result<Option<EntrySnapshot>, StoreError> {
    let Some(e) = entry(shm, slot) else {
        return Err(StoreError::corrupt(format!(
            "map table slot {slot} outside the file"
        )));
    };
    if e.state.load(Ordering::Acquire) != ENTRY_LIVE {
        return Ok(None);
    }
    let r = Ordering::Relaxed;
    let bad = |what: String| StoreError::corrupt(format!("map table slot {slot}: {what}"));
    let raw_name = name_bytes(e);
    let nlen = raw_name.iter().position(|&b| b == 0).unwrap_or(16);
    if nlen >= 16 {
        return Err(bad("name not NUL-terminated".into()));
    }
    let name = std::str::from_utf8(&raw_name[..nlen])
        .map_err(|_| bad("name not UTF-8".into()))?
        .to_owned();
    let info = def::MapInfo {
        id: e.id.load(r),
        map_type: e.map_type.load(r),
        key_size: e.key_size.load(r),
        value_size: e.value_size.load(r),
        max_entries: e.max_entries.load(r),
        map_flags: e.map_flags.load(r),
        name,
        btf_key_type_id: e.btf_key_type_id.load(r),
        btf_value_type_id: e.btf_value_type_id.load(r),
        btf_id: e.btf_id.load(r),
        holder_pid: e.holder_pid.load(r),
    };
    if info.id == 0 {
        return Err(bad("id 0".into()));
    }
    let g = def::geometry(
        info.map_type,
        info.key_size,
        info.value_size,
        info.max_entries,
        info.map_flags & !def::implied_flags(info.map_type),
        &info.name,
        facts.ncpus,
    )
    .map_err(|err| bad(format!("definition invalid: {err}")))?;
    let data_off = e.data_off.load(r);
    let data_len = e.data_len.load(r);
    if data_len != g.data_len {
        return Err(bad(format!(
            "data_len {data_len}, definition needs {}",
            g.data_len
        )));
    }
    if data_off < DATA_START as u64 || data_off % g.align != 0 {
        return Err(bad(format!("data_off {data_off} misplaced")));
    }
    match data_off.checked_add(data_len) {
        Some(end) if end <= facts.total_size => {}
        _ => {
            return Err(bad(format!(
                "data [{data_off}, +{data_len}) outside the file"
            )))
        }
    }
    let hash_seed = e.hash_seed.load(r);
    if info.map_flags & def::BPF_F_ZERO_SEED != 0 && hash_seed != 0 {
        return Err(bad("ZERO_SEED map with non-zero seed".into()));
    }
    let timer = read_timer(e, &info, &g, data_off + data_len, facts).map_err(bad)?;
    Ok(Some(EntrySnapshot {
        slot,
        info,
        hash_seed,
        data_off,
        geometry: g,
        timer,
    }))
}

/// The timer area of an entry, checked: after the map's data, inside the file, as
/// many slots as the map has elements, the timer inside the value and 8-aligned.
fn read_timer(
    e: &MapEntry,
    info: &def::MapInfo,
    g: &def::Geometry,
    data_end: u64,
    facts: &HeaderFacts,
) -> Result<Option<crate::timer::TimerArea>, String> {
    let r = Ordering::Relaxed;
    let off = e.timer_area.load(r);
    let ti = e.timer_info.load(r);
    if off == 0 {
        return if ti == 0 {
            Ok(None)
        } else {
            Err("timer info without a timer area".into())
        };
    }
    let value_off = ti as u32;
    let nslots = (ti >> 32) as u32;
    let want = def::timer_slots(g, info.max_entries)
        .ok_or("timer area on a map that cannot hold timers")?;
    if u64::from(nslots) != want {
        return Err(format!("{nslots} timer slots, the map has {want} elements"));
    }
    if !value_off.is_multiple_of(8) || u64::from(value_off) + 16 > u64::from(info.value_size) {
        return Err(format!("timer offset {value_off} outside the value"));
    }
    let len = crate::timer::area_len(u64::from(nslots));
    if off < data_end
        || !off.is_multiple_of(64)
        || off
            .checked_add(len)
            .is_none_or(|end| end > facts.total_size)
    {
        return Err(format!("timer area at {off} misplaced"));
    }
    Ok(Some(crate::timer::TimerArea {
        off: usize::try_from(off).map_err(|_| "timer area offset")?,
        nslots,
        value_off,
    }))
}

/// Validates every LIVE entry; ids must be unique and below `next_map_id`.
pub(crate) fn validate_table(shm: &Shm, facts: &HeaderFacts) -> Result<(), StoreError> {
    let next_id = header(shm)?.next_map_id.load(Ordering::Acquire);
    let mut ids = Vec::new();
    for slot in 0..MAP_TABLE_CAP {
        if let Some(s) = read_entry(shm, slot, facts)? {
            if s.info.id >= next_id {
                return Err(StoreError::corrupt(format!(
                    "map table slot {slot}: id {} >= next_map_id {next_id}",
                    s.info.id
                )));
            }
            ids.push(s.info.id);
        }
    }
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(StoreError::corrupt("duplicate map ids"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(size: usize) -> Shm {
        Shm::anonymous(size, |s| init_header(s, 2)).expect("memfd store")
    }

    #[test]
    fn fresh_header_validates() {
        let shm = fresh(MIN_STORE_SIZE);
        let f = validate_header(&shm).expect("valid");
        assert_eq!(f.ncpus, 2);
        assert_eq!(f.total_size, MIN_STORE_SIZE as u64);
        validate_table(&shm, &f).expect("empty table valid");
    }

    #[test]
    fn corrupt_headers_are_rejected() {
        let shm = fresh(MIN_STORE_SIZE);
        let h = header(&shm).expect("header");
        h.magic.store(1, Ordering::Relaxed);
        assert!(matches!(
            validate_header(&shm),
            Err(StoreError::BadMagic { found: 1, .. })
        ));
        h.magic.store(MAGIC, Ordering::Relaxed);
        h.version.store(7, Ordering::Relaxed);
        assert!(matches!(
            validate_header(&shm),
            Err(StoreError::Version {
                found: 7,
                expected: LAYOUT_VERSION
            })
        ));
        h.version.store(LAYOUT_VERSION, Ordering::Relaxed);
        h.total_size
            .store(MIN_STORE_SIZE as u64 * 2, Ordering::Relaxed);
        assert!(matches!(
            validate_header(&shm),
            Err(StoreError::Truncated { .. })
        ));
        h.total_size.store(MIN_STORE_SIZE as u64, Ordering::Relaxed);
        h.alloc_cursor.store(3, Ordering::Relaxed);
        assert!(matches!(
            validate_header(&shm),
            Err(StoreError::Corrupt { .. })
        ));
        h.alloc_cursor.store(DATA_START as u64, Ordering::Relaxed);
        h.ncpus.store(0, Ordering::Relaxed);
        assert!(matches!(
            validate_header(&shm),
            Err(StoreError::Corrupt { .. })
        ));
        h.ncpus.store(2, Ordering::Relaxed);
        validate_header(&shm).expect("restored");
    }

    #[test]
    fn corrupt_entries_are_rejected() {
        let shm = fresh(MIN_STORE_SIZE);
        let f = validate_header(&shm).expect("valid");
        let e = entry(&shm, 5).expect("slot");
        assert_eq!(e.state.load(Ordering::Relaxed), ENTRY_FREE);
        let r = Ordering::Relaxed;
        e.id.store(1, r);
        e.map_type.store(def::BPF_MAP_TYPE_ARRAY, r);
        e.key_size.store(4, r);
        e.value_size.store(8, r);
        e.max_entries.store(4, r);
        e.data_off.store(DATA_START as u64, r);
        e.data_len.store(32, r);
        store_name(e, "arr");
        header(&shm).expect("h").next_map_id.store(2, r);
        // Not LIVE yet: ignored.
        assert!(read_entry(&shm, 5, &f).expect("ok").is_none());
        e.state.store(ENTRY_LIVE, Ordering::Release);
        let s = read_entry(&shm, 5, &f).expect("ok").expect("live");
        assert_eq!(s.info.name, "arr");
        assert_eq!(s.info.max_entries, 4);
        // Data outside the file.
        e.data_off.store(MIN_STORE_SIZE as u64 - 16, r);
        assert!(read_entry(&shm, 5, &f).is_err());
        // Length inconsistent with the definition.
        e.data_off.store(DATA_START as u64, r);
        e.data_len.store(31, r);
        assert!(read_entry(&shm, 5, &f).is_err());
        e.data_len.store(32, r);
        // Unknown type.
        e.map_type.store(77, r);
        assert!(validate_table(&shm, &f).is_err());
        e.map_type.store(def::BPF_MAP_TYPE_ARRAY, r);
        validate_table(&shm, &f).expect("valid again");
        assert!(entry(&shm, MAP_TABLE_CAP).is_none());
    }
}
