//! The maps of a loaded object as programs see them.
//!
//! An `lddw` of a map leaves the address of that map's [`BoundMap`] in a register; helpers
//! get it back with [`MapTable::resolve`], which accepts only exact element addresses of
//! this table, so a forged value is an error, never a wild pointer.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, Ordering};

use maps::{Map, MapInfo};

use std::sync::{Arc, OnceLock};

use crate::memory::ValueArea;
use crate::net::Net;

/// Map types with program-visible values that the interpreter knows how to address:
/// short names for the `BPF_MAP_TYPE_*` of `isa::uapi`, which defines them.
pub mod types {
    pub use isa::uapi::{
        BPF_MAP_TYPE_ARRAY as ARRAY, BPF_MAP_TYPE_ARRAY_OF_MAPS as ARRAY_OF_MAPS,
        BPF_MAP_TYPE_HASH as HASH, BPF_MAP_TYPE_HASH_OF_MAPS as HASH_OF_MAPS,
        BPF_MAP_TYPE_LPM_TRIE as LPM_TRIE, BPF_MAP_TYPE_LRU_HASH as LRU_HASH,
        BPF_MAP_TYPE_LRU_PERCPU_HASH as LRU_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY as PERCPU_ARRAY,
        BPF_MAP_TYPE_PERCPU_HASH as PERCPU_HASH, BPF_MAP_TYPE_PERF_EVENT_ARRAY as PERF_EVENT_ARRAY,
        BPF_MAP_TYPE_PROG_ARRAY as PROG_ARRAY, BPF_MAP_TYPE_RINGBUF as RINGBUF,
    };
}

/// Where a RINGBUF map keeps its positions and records, relative to the start of
/// its data region (`maps::Map::value_region().base`), as `maps/src/ring.rs`
/// lays them out: `consumer_pos` at 0, `producer_pos` at 4096, the records at 8192.
mod ring_layout {
    pub const CONS_POS: usize = 0;
    pub const PROD_POS: usize = 4096;
    pub const DATA: usize = 8192;
}

/// One RINGBUF map of the table: the program may read and write its record area
/// (records it reserved with `bpf_ringbuf_reserve`).
#[derive(Clone, Copy, Debug)]
pub struct RingArea {
    /// Start of the map's data region (positions at fixed offsets from it).
    base: usize,
    /// Start and length of the record area.
    pub data: usize,
    pub size: usize,
    /// Index of the map in the table.
    index: usize,
}

/// `BPF_F_RDONLY_PROG`: the program may read but not write the map's values.
pub use isa::uapi::BPF_F_RDONLY_PROG;

/// One map of the object, bound to its storage.
#[derive(Debug)]
pub struct BoundMap {
    /// The object's name for the map (`.bss`, `.rodata`, or the map's own name).
    pub name: String,
    pub info: MapInfo,
    pub map: Map,
}

impl BoundMap {
    /// The value a program's `lddw` of this map yields.
    pub fn handle_addr(&self) -> u64 {
        self as *const BoundMap as u64
    }

    /// Address of byte `off` of the single value of an array map (global data), for
    /// `BPF_PSEUDO_MAP_IDX_VALUE`.
    pub fn direct_value_addr(&self, off: u32) -> Option<u64> {
        if self.info.map_type != types::ARRAY || off >= self.info.value_size {
            return None;
        }
        let key = 0u32.to_ne_bytes();
        // SAFETY: `key` is 4 readable bytes, the key size of an array map.
        let p = unsafe { self.map.prog_lookup(key.as_ptr(), 0) };
        (!p.is_null()).then(|| p as u64 + off as u64)
    }

    pub fn read_only(&self) -> bool {
        self.info.map_flags & BPF_F_RDONLY_PROG != 0
    }
}

/// The next [`MapTable::id`].
static NEXT_TABLE_ID: AtomicU64 = AtomicU64::new(1);

/// The maps of one object, at stable addresses for as long as the table lives.
///
/// After the object's own maps come the *inner* maps: other maps of the store that
/// a lookup in an array_of_maps or hash_of_maps may return. They are bound when the
/// table is built, so a map created in the store later is not found by such a
/// lookup (it returns NULL).
#[derive(Debug)]
pub struct MapTable {
    /// The object's maps (indices `0..nobj`, as `lddw` names them), then inner maps.
    maps: Box<[BoundMap]>,
    nobj: usize,
    /// (map id, index in `maps`), sorted by id.
    by_id: Box<[(u32, usize)]>,
    areas: Box<[ValueArea]>,
    /// The RINGBUF maps (object and inner), usually none.
    rings: Box<[RingArea]>,
    /// The network `bpf_fib_lookup` sees (`None`: a fresh namespace, [`Net::new`]).
    net: Option<Arc<Net>>,
    /// Unique in the process ([`MapTable::id`]).
    id: u64,
    /// The SYN cookie secret (`bpf_tcp_raw_gen/check_syncookie_*`): the store's
    /// (`maps::Store::syncookie_secret`) for tables bound to a store, else one of the
    /// table's own.
    syncookie_secret: [u64; 4],
    /// The store's connection table and pending table (`kfuncs::conntrack`), inner
    /// maps, if bound.
    conntrack: Option<(usize, usize)>,
}

impl MapTable {
    /// A table of the object's maps only.
    pub fn new(maps: Vec<BoundMap>) -> MapTable {
        MapTable::with_inner(maps, Vec::new())
    }

    /// A table of the object's maps followed by `inner`, the maps that lookups in
    /// maps of maps may yield. Programs name only the object's maps (`get`, `iter`,
    /// `by_name`, `len`); `resolve` and `by_id` see both.
    pub fn with_inner(maps: Vec<BoundMap>, inner: Vec<BoundMap>) -> MapTable {
        let nobj = maps.len();
        let mut maps = maps;
        maps.extend(inner);
        let mut by_id: Vec<(u32, usize)> = maps
            .iter()
            .enumerate()
            .map(|(i, m)| (m.info.id, i))
            .collect();
        by_id.sort_unstable();
        by_id.dedup_by_key(|e| e.0);
        let areas = maps
            .iter()
            .filter(|m| m.info.map_type != types::PROG_ARRAY)
            .map(|m| {
                let r = m.map.value_region();
                ValueArea {
                    base: r.base,
                    len: r.len,
                    stride: r.stride,
                    value_offset: r.value_offset,
                    value_len: r.value_len,
                    writable: !m.read_only(),
                }
            })
            .filter(|a| a.len > 0 && a.stride > 0);
        let rings: Vec<RingArea> = maps
            .iter()
            .enumerate()
            .filter(|(_, m)| m.info.map_type == types::RINGBUF)
            .map(|(index, m)| {
                let base = m.map.value_region().base;
                RingArea {
                    base,
                    data: base + ring_layout::DATA,
                    size: m.info.max_entries as usize,
                    index,
                }
            })
            .collect();
        // A ring's record area is not a value area: the program may touch only the
        // records it reserved in this run and has not yet submitted or discarded
        // (`RingRecords`, one per run).
        let areas = areas.collect();
        MapTable {
            maps: maps.into(),
            nobj,
            by_id: by_id.into(),
            areas,
            rings: rings.into(),
            net: None,
            id: NEXT_TABLE_ID.fetch_add(1, Ordering::Relaxed),
            syncookie_secret: random_secret(),
            conntrack: None,
        }
    }

    /// This table's identity, unique in the process: programs prepared with it
    /// (`program::prepare`) hold addresses of its maps and proofs about them, and run
    /// only with it.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Makes the bound maps with store ids `table` and `pending` the connection table
    /// and pending table of the conntrack kfuncs (`kfuncs::conntrack`).
    pub fn set_conntrack(&mut self, table: u32, pending: u32) {
        let at = |id: u32| {
            let i = self.by_id.binary_search_by_key(&id, |e| e.0).ok()?;
            Some(self.by_id[i].1)
        };
        self.conntrack = at(table).zip(at(pending));
    }

    /// The connection table and the pending table, if bound.
    pub fn conntrack(&self) -> Option<(&BoundMap, &BoundMap)> {
        let (t, p) = self.conntrack?;
        Some((self.maps.get(t)?, self.maps.get(p)?))
    }

    /// Sets the SYN cookie secret (the store's, so that every process of the store
    /// makes and accepts the same cookies).
    pub fn set_syncookie_secret(&mut self, secret: [u64; 4]) {
        self.syncookie_secret = secret;
    }

    /// The SYN cookie secret of runs on this table.
    pub fn syncookie_secret(&self) -> &[u64; 4] {
        &self.syncookie_secret
    }

    /// Sets the network that `bpf_fib_lookup` sees in runs on this table.
    pub fn set_net(&mut self, net: Arc<Net>) {
        self.net = Some(net);
    }

    /// The network `bpf_fib_lookup` sees: the one set, else a fresh namespace (only
    /// `lo`, down).
    pub fn net(&self) -> &Net {
        match &self.net {
            Some(n) => n,
            None => default_net(),
        }
    }

    /// The object's own maps.
    fn own(&self) -> &[BoundMap] {
        &self.maps[..self.nobj]
    }

    /// Number of the object's maps (inner maps not counted).
    pub fn len(&self) -> usize {
        self.nobj
    }

    pub fn is_empty(&self) -> bool {
        self.nobj == 0
    }

    /// The object's map number `index`.
    pub fn get(&self, index: usize) -> Option<&BoundMap> {
        self.own().get(index)
    }

    /// The object's maps.
    pub fn iter(&self) -> impl Iterator<Item = &BoundMap> {
        self.own().iter()
    }

    /// The inner maps bound after the object's maps.
    pub fn inner_maps(&self) -> impl Iterator<Item = &BoundMap> {
        self.maps[self.nobj..].iter()
    }

    pub fn by_name(&self, name: &str) -> Option<&BoundMap> {
        self.own().iter().find(|m| m.name == name)
    }

    /// The bound map (object or inner) with store id `id`.
    pub fn by_id(&self, id: u32) -> Option<&BoundMap> {
        let i = self.by_id.binary_search_by_key(&id, |e| e.0).ok()?;
        self.maps.get(self.by_id[i].1)
    }

    /// The map whose handle a program passed to a helper, if `value` is one (an
    /// object map, or an inner map a lookup in a map of maps returned).
    #[inline(always)]
    pub fn resolve(&self, value: u64) -> Option<&BoundMap> {
        let base = self.maps.as_ptr() as u64;
        let size = std::mem::size_of::<BoundMap>() as u64;
        let rel = value.checked_sub(base)?;
        if rel % size != 0 {
            return None;
        }
        self.maps.get((rel / size) as usize)
    }

    /// The value areas of every map, for the memory checks.
    pub(crate) fn value_areas(&self) -> &[ValueArea] {
        &self.areas
    }

    /// `(consumer_pos, producer_pos)` of a RINGBUF map of this table, as
    /// `bpf_ringbuf_query` reports them; `None` for other maps.
    pub fn ring_positions(&self, map: &BoundMap) -> Option<(u64, u64)> {
        let r = self
            .rings
            .iter()
            .find(|r| std::ptr::eq(&self.maps[r.index], map))?;
        let load = |off: usize| {
            // SAFETY: `base + off` is an 8-aligned position word inside the ring
            // map's data region (ring_layout), which the map keeps mapped while
            // this table (holding the map) lives; producers and consumers in
            // every process update it atomically.
            unsafe { AtomicU64::from_ptr((r.base + off) as *mut u64) }.load(Ordering::Acquire)
        };
        Some((load(ring_layout::CONS_POS), load(ring_layout::PROD_POS)))
    }
}

fn default_net() -> &'static Net {
    static NET: OnceLock<Net> = OnceLock::new();
    NET.get_or_init(Net::new)
}

/// How many ring buffer records one run may hold reserved at once; a
/// `bpf_ringbuf_reserve` beyond them returns NULL, as for a full ring.
pub const MAX_RING_RECORDS: usize = 32;

/// One reserved record: its address, length and the index of its ring in the table.
#[derive(Clone, Copy, Debug, Default)]
struct Record {
    addr: usize,
    len: usize,
    ring: usize,
}

/// The ring buffer records a run holds: reserved by `bpf_ringbuf_reserve`, not yet
/// submitted or discarded. Exactly these bytes are program memory in a ring
/// (`memory::Regions::check`), and only these addresses may be submitted or
/// discarded. Fixed capacity on the run's own stack: a run allocates nothing.
/// Dropping it (the run ended, by `exit` or a trap) discards what is still held, so a
/// program the kernel's verifier would refuse for an unreleased record leaves no
/// busy record behind to stop the ring's consumers.
///
/// Every run makes one, so the slots start uninitialised (no 768-byte clear per run):
/// slots below `count` hold records, the others are never read.
pub(crate) struct RingRecords<'t> {
    table: &'t MapTable,
    live: [Cell<MaybeUninit<Record>>; MAX_RING_RECORDS],
    count: Cell<usize>,
}

impl<'t> RingRecords<'t> {
    /// No records yet, for a run over `table`.
    #[inline]
    pub(crate) fn new(table: &'t MapTable) -> RingRecords<'t> {
        RingRecords {
            table,
            live: [const { Cell::new(MaybeUninit::uninit()) }; MAX_RING_RECORDS],
            count: Cell::new(0),
        }
    }

    /// The held records: slots `0..count`.
    fn held(&self) -> impl Iterator<Item = Record> + '_ {
        self.live[..self.count.get()].iter().map(|r| {
            // SAFETY: slots below `count` were written (`hold` writes slot `count`
            // before raising it, `release` moves a written slot down before lowering
            // it), so this one holds a record.
            unsafe { r.get().assume_init() }
        })
    }

    /// Whether another record can be held.
    pub(crate) fn has_room(&self) -> bool {
        self.count.get() < MAX_RING_RECORDS
    }

    /// Holds the record of `len` bytes at `addr` in the ring `map` (a map of this
    /// table); false (and nothing held) when it is not a ring of the table or
    /// there is no room.
    pub(crate) fn hold(&self, map: &BoundMap, addr: u64, len: u64) -> bool {
        let n = self.count.get();
        let ring = self
            .table
            .rings
            .iter()
            .find(|r| std::ptr::eq(&self.table.maps[r.index], map));
        let (Some(r), Ok(addr), Ok(len)) = (ring, usize::try_from(addr), usize::try_from(len))
        else {
            return false;
        };
        if n >= MAX_RING_RECORDS {
            return false;
        }
        self.live[n].set(MaybeUninit::new(Record {
            addr,
            len,
            ring: r.index,
        }));
        self.count.set(n + 1);
        true
    }

    /// Stops holding the record that starts at `addr`: its ring, or `None` when no
    /// held record starts there.
    pub(crate) fn release(&self, addr: u64) -> Option<&'t BoundMap> {
        let n = self.count.get();
        let (i, rec) = self
            .held()
            .enumerate()
            .find(|(_, r)| r.addr as u64 == addr)?;
        // The last held record (written, as `i` is) takes the freed slot.
        self.live[i].set(self.live[n - 1].get());
        self.count.set(n - 1);
        self.table.maps.get(rec.ring)
    }

    /// Whether `[addr, addr + len)` lies in one held record.
    #[inline]
    pub(crate) fn contains(&self, addr: usize, len: usize) -> bool {
        self.held()
            .any(|r| addr >= r.addr && addr - r.addr <= r.len && r.len - (addr - r.addr) >= len)
    }
}

impl std::fmt::Debug for RingRecords<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held: Vec<Record> = self.held().collect();
        f.debug_struct("RingRecords").field("held", &held).finish()
    }
}

impl Drop for RingRecords<'_> {
    fn drop(&mut self) {
        while let Some(last) = self.held().last() {
            let addr = last.addr;
            if let Some(m) = self.release(addr as u64) {
                m.map.ringbuf_commit(addr as *mut u8, true);
            }
        }
    }
}

/// A random secret for a table bound to no store (from getrandom(2); the clock and
/// the table counter if it fails).
fn random_secret() -> [u64; 4] {
    let mut buf = [0u8; 32];
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) };
    let mut out = [0u64; 4];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u64::from_ne_bytes(buf[8 * i..8 * i + 8].try_into().unwrap_or([0; 8]));
    }
    if n != buf.len() as isize {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let c = NEXT_TABLE_ID.load(Ordering::Relaxed);
        out = [
            t,
            c.rotate_left(17) ^ t,
            t.rotate_left(31),
            c ^ 0x9e37_79b9_7f4a_7c15,
        ];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_maps_resolve_but_stay_out_of_the_object_view() {
        let store = maps::Store::anonymous(maps::StoreOptions {
            size: 1 << 20,
            ncpus: Some(1),
        })
        .expect("store");
        let def = |name: &str| maps::MapDef {
            map_type: types::ARRAY,
            key_size: 4,
            value_size: 4,
            max_entries: 2,
            name: name.into(),
            ..maps::MapDef::default()
        };
        let bind = |m: Map| BoundMap {
            name: m.info().name,
            info: m.info(),
            map: m,
        };
        let own = store.create_map(&def("own")).expect("own");
        let inner = store.create_map(&def("inner")).expect("inner");
        let (own_id, inner_id) = (own.id(), inner.id());
        let t = MapTable::with_inner(vec![bind(own)], vec![bind(inner)]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.iter().count(), 1);
        assert!(t.get(1).is_none());
        assert!(t.by_name("inner").is_none());
        assert_eq!(t.inner_maps().count(), 1);
        let h = t.by_id(inner_id).expect("inner by id").handle_addr();
        assert_eq!(t.resolve(h).map(|m| m.info.id), Some(inner_id));
        assert_eq!(t.by_id(own_id).map(|m| m.name.as_str()), Some("own"));
        assert!(t.by_id(0).is_none());
        assert!(t.resolve(h + 1).is_none());
        assert_eq!(t.value_areas().len(), 2);
    }
}
