//! The runtime: verifier checks, the interpreter, helpers, the XDP context and packet
//! buffers, and the binding of an object's maps to a shared-memory store.
//!
//! ```no_run
//! use runtime::{LoadedObject, Packet, Vm};
//! let bytes = std::fs::read("prog.o").unwrap();
//! let object = loader::Object::parse(&bytes).unwrap();
//! let store = maps::Store::anonymous(Default::default()).unwrap();
//! let loaded = LoadedObject::load(&object, &store).unwrap();
//! let prog = loaded.program_index(None).unwrap();
//! let mut pkt = Packet::new(&[0u8; 64]).unwrap();
//! let mut vm = Vm::new(0);
//! let retval = loaded.run(&mut vm, prog, &mut pkt).unwrap();
//! ```
//!
//! Modules holding unsafe code: `memory` (checked raw access), `xdp` (low frames),
//! `interp` (instruction fetch), `helpers` (raw copies after checks), `maptable`,
//! `kfuncs::conntrack` (connection table entries by address).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod cycles;
pub mod error;
pub mod freplace;
pub mod helpers;
pub mod interp;
pub mod jit;
pub mod kfuncs;
pub mod maptable;
pub mod memory;
pub mod net;
pub mod program;
pub mod stored;
pub mod timers;
pub mod verifier;
pub mod xdp;

use std::time::{Duration, Instant};

pub use error::{EntryError, LoadError, NetError, PacketError, Trap, TrapKind, VerifyError};
pub use interp::{Env, Vm, DEFAULT_MAX_STEPS};
pub use maptable::{BoundMap, MapTable};
pub use net::Net;
pub use program::Prepared;
pub use xdp::{action, Packet, XdpMd};

/// An object whose maps live in a store and whose XDP programs are ready to run.
#[derive(Debug)]
pub struct LoadedObject {
    pub maps: MapTable,
    /// The XDP programs that prepared cleanly. A prog_array value `n` is `programs[n - 1]`.
    pub programs: Vec<Prepared>,
    /// XDP programs that did not prepare, with why. Selecting one reports its error.
    pub rejected: Vec<(String, VerifyError)>,
    /// Every program of the object, XDP or not, with its section.
    pub all_programs: Vec<(String, String)>,
}

/// What a repeated run did ([`LoadedObject::run_repeated`], `JitObject::run_repeated`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repeated {
    /// r0 of the last run.
    pub retval: u64,
    /// The time of the runs done.
    pub elapsed: Duration,
    /// How many runs were done: the repeat asked for, or fewer when interrupted.
    pub runs: u64,
    /// The interruption flag ([`Vm::set_interrupt`]) stopped the runs before `repeat`.
    pub interrupted: bool,
}

/// What [`LoadedObject::load_with`] records in the store besides the maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Pin every map of the object as `<prefix>/<map name>`, as
    /// `bpftool prog loadall OBJ DIR pinmaps PREFIX` does.
    pub pin_maps: Option<String>,
    /// Pin every registered XDP program as `<prefix>/<program name>`.
    pub pin_programs: Option<String>,
    /// Strict mode: refuse the object (`VerifyError::Unproven`) when the analysis did
    /// not prove every memory access and helper argument of one of its XDP programs
    /// safe, as the kernel's verifier refuses it; the error carries the log. Otherwise
    /// unproven accesses run checked.
    pub strict: bool,
}

impl LoadedObject {
    /// Creates the object's maps in `store` (global data filled with its initial
    /// contents), prepares every XDP program and registers the prepared ones in the
    /// store (`maps::Store::register_program`), as `bpf(BPF_PROG_LOAD)` would.
    pub fn load(object: &loader::Object, store: &maps::Store) -> Result<LoadedObject, LoadError> {
        LoadedObject::load_with(object, store, &LoadOptions::default())
    }

    /// [`LoadedObject::load`], then pins maps and programs as `opts` asks.
    pub fn load_with(
        object: &loader::Object,
        store: &maps::Store,
        opts: &LoadOptions,
    ) -> Result<LoadedObject, LoadError> {
        let mut bound = Vec::with_capacity(object.maps.len());
        // The object's BTF, registered once for the maps that name BTF types (as
        // libbpf loads it before creating them), so dumps can format their entries.
        let mut btf_id = None;
        for spec in &object.maps {
            let map_err = |source| LoadError::Map {
                name: spec.name.clone(),
                source,
            };
            let def = maps::MapDef {
                map_type: spec.map_type,
                key_size: spec.key_size,
                value_size: spec.value_size,
                max_entries: spec.max_entries,
                map_flags: spec.map_flags,
                name: spec.name.clone(),
                btf_key_type_id: spec.btf_key_type_id,
                btf_value_type_id: spec.btf_value_type_id,
                btf_id: match (&object.btf_raw, spec.btf_value_type_id) {
                    (Some(raw), 1..) => match btf_id {
                        Some(id) => id,
                        None => *btf_id.insert(store.register_btf(raw).map_err(|source| {
                            LoadError::Object {
                                what: "the object's BTF".to_string(),
                                source,
                            }
                        })?),
                    },
                    _ => 0,
                },
                holder_pid: 0,
            };
            // A `struct bpf_timer` in the value gets the map a timer area (where the
            // kernel refuses one, libbpf creates the map without BTF).
            let timer_off = match (&object.btf, spec.btf_value_type_id) {
                (Some(btf), 1..) if helpers::timer::map_type_holds_timers(spec.map_type) => {
                    helpers::timer::btf_timer_offset(btf, spec.btf_value_type_id)
                }
                _ => None,
            };
            let map = store
                .create_map_with(&def, spec.map_extra, timer_off)
                .map_err(map_err)?;
            if let Some(data) = &spec.initial_data {
                map.update(&0u32.to_ne_bytes(), data, 0).map_err(map_err)?;
            }
            bound.push(BoundMap {
                name: spec.name.clone(),
                info: map.info(),
                map,
            });
        }
        fill_map_slots(object, &bound)?;
        // Conntrack kfuncs keep their connections in a table of the store.
        let uses_ct = object
            .programs
            .iter()
            .flat_map(|p| &p.kfuncs)
            .any(|k| kfuncs::uses_conntrack(&k.name));
        if uses_ct {
            kfuncs::conntrack::ensure_tables(store)?;
        }
        // Maps of maps hand programs other maps of the store: bind those too.
        let maps = stored::with_store_maps(store, bound);
        let mut programs = Vec::new();
        let mut rejected = Vec::new();
        let mut all_programs = Vec::new();
        for p in &object.programs {
            all_programs.push((p.name.clone(), p.section.clone()));
            if !matches!(p.prog_type, loader::ProgramType::Xdp) {
                continue;
            }
            let starts: Vec<usize> = p.subprogs.iter().map(|s| s.start).collect();
            let mut insns = p.insns.clone();
            let prepared = kfuncs::resolve(&p.name, &mut insns, &p.kfuncs)
                .and_then(|()| program::prepare(&p.name, &p.section, &insns, &starts, &maps));
            match prepared {
                Ok(mut prepared) => {
                    let def = stored::program_def(&p.name, 6, &insns, &maps);
                    let id = store
                        .register_program(&def)
                        .map_err(|source| LoadError::Object {
                            what: format!("program {}", p.name),
                            source,
                        })?;
                    if let Some(prefix) = &opts.pin_programs {
                        let path = format!("{}/{}", prefix.trim_end_matches('/'), p.name);
                        store
                            .pin(&path, maps::Pinned::Prog(id))
                            .map_err(|source| LoadError::Object { what: path, source })?;
                    }
                    prepared.store_id = id;
                    programs.push(prepared)
                }
                Err(e) => rejected.push((p.name.clone(), e)),
            }
        }
        program::forget_entry_ctx_if_tail_calls_forge_it(&mut programs);
        if opts.strict {
            for p in &programs {
                p.analysis().strict(&p.name)?;
            }
        }
        fill_prog_slots(object, &maps, &programs)?;
        if let Some(prefix) = &opts.pin_maps {
            for m in maps.iter() {
                let path = format!("{}/{}", prefix.trim_end_matches('/'), m.name);
                store
                    .pin(&path, maps::Pinned::Map(m.info.id))
                    .map_err(|source| LoadError::Object { what: path, source })?;
            }
        }
        Ok(LoadedObject {
            maps,
            programs,
            rejected,
            all_programs,
        })
    }

    /// The program to run: by function or section name, or the first XDP program.
    pub fn program_index(&self, name: Option<&str>) -> Result<usize, LoadError> {
        let available = || {
            self.all_programs
                .iter()
                .map(|(n, s)| format!("{n} ({s})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(name) = name else {
            if !self.programs.is_empty() {
                return Ok(0);
            }
            if let Some((n, e)) = self.rejected.first() {
                return Err(LoadError::Rejected {
                    name: n.clone(),
                    reason: e.to_string(),
                });
            }
            return Err(LoadError::NoXdpProgram {
                available: available(),
            });
        };
        if let Some(i) = self.programs.iter().position(|p| p.name == name) {
            return Ok(i);
        }
        if let Some((n, e)) = self.rejected.iter().find(|(n, _)| n == name) {
            return Err(LoadError::Rejected {
                name: n.clone(),
                reason: e.to_string(),
            });
        }
        if let Some(i) = self.programs.iter().position(|p| p.section == name) {
            return Ok(i);
        }
        if let Some((n, s)) = self
            .all_programs
            .iter()
            .find(|(n, s)| n == name || s == name)
        {
            return Err(LoadError::NotXdp {
                name: n.clone(),
                section: s.clone(),
            });
        }
        Err(LoadError::NoSuchProgram {
            name: name.to_string(),
            available: available(),
        })
    }

    /// The object's map `name`, or an error listing the maps it has.
    fn map_named(&self, name: &str) -> Result<&BoundMap, EntryError> {
        self.maps
            .by_name(name)
            .ok_or_else(|| EntryError::NoSuchMap {
                name: name.to_string(),
                available: self
                    .maps
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The object's map `name` through a typed handle (keys `K`, values `V`):
    /// `EntryError::Map` when the sizes differ or the map is per CPU (see
    /// [`LoadedObject::percpu_map`]).
    pub fn map<K: maps::Pod, V: maps::Pod>(
        &self,
        name: &str,
    ) -> Result<maps::TypedMap<K, V>, EntryError> {
        let m = self.map_named(name)?;
        maps::TypedMap::new(m.map.clone()).map_err(|source| EntryError::Map {
            map: name.to_string(),
            source,
        })
    }

    /// The object's per-CPU map `name` through a typed handle returning every
    /// worker's value.
    pub fn percpu_map<K: maps::Pod, V: maps::Pod>(
        &self,
        name: &str,
    ) -> Result<maps::PerCpuMap<K, V>, EntryError> {
        let m = self.map_named(name)?;
        maps::PerCpuMap::new(m.map.clone()).map_err(|source| EntryError::Map {
            map: name.to_string(),
            source,
        })
    }

    /// Writes entries `0..n` of map `name` as `xdp-runner bench --fill` does (and
    /// `kclient::KernelObject::fill` in the kernel): key and value are the index as
    /// little-endian integers of the key's and value's size ([`maps::fill_bytes`]).
    pub fn fill(&self, name: &str, n: u64) -> Result<(), EntryError> {
        let info = &self.map_named(name)?.info;
        let (ks, vs, max) = (info.key_size, info.value_size, info.max_entries);
        if !maps::fill_fits(n, ks, max) {
            return Err(EntryError::FillTooLarge {
                map: name.to_string(),
                n,
                max_entries: max,
                key_size: ks,
            });
        }
        for i in 0..n {
            let key = maps::fill_bytes(i, ks as usize);
            let value = maps::fill_bytes(i, vs as usize);
            self.update_entry(name, &key, &value, 0)?;
        }
        Ok(())
    }

    /// Writes one map entry from user space, by the object's map name. For a per-CPU
    /// map, a value of `value_size` bytes is written to every CPU; a value of
    /// `ncpus * round_up(value_size, 8)` bytes gives each CPU its own
    /// ([`maps::Map::update_spread`]).
    pub fn update_entry(
        &self,
        map: &str,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), EntryError> {
        let m = self.map_named(map)?;
        m.map
            .update_spread(key, value, flags)
            .map_err(|source| match source {
                maps::MapError::KeySize { expected, got, .. } => EntryError::KeySize {
                    map: map.to_string(),
                    len: got,
                    expected,
                },
                maps::MapError::ValueSize { expected, got, .. } => EntryError::ValueSize {
                    map: map.to_string(),
                    len: got,
                    expected,
                },
                source => EntryError::Map {
                    map: map.to_string(),
                    source,
                },
            })
    }

    /// The id a prog_array value uses for the XDP program `name`: its index in
    /// `programs` plus one, since 0 marks an empty slot.
    pub fn program_id(&self, name: &str) -> Option<u32> {
        self.programs
            .iter()
            .position(|p| p.name == name)
            .map(|i| i as u32 + 1)
    }

    /// Sets the network (interfaces, routes, neighbours) that `bpf_fib_lookup` sees in
    /// this object's runs, in both engines; without one it sees a fresh namespace
    /// ([`Net::new`]). A JIT compiled from this object before the call sees the old one.
    pub fn set_net(&mut self, net: std::sync::Arc<Net>) {
        self.maps.set_net(net);
    }

    /// The network `bpf_fib_lookup` sees.
    pub fn net(&self) -> &Net {
        self.maps.net()
    }

    pub fn env(&self) -> Env<'_> {
        Env {
            maps: &self.maps,
            programs: &self.programs,
        }
    }

    /// Runs program `prog` once.
    pub fn run(&self, vm: &mut Vm, prog: usize, pkt: &mut Packet) -> Result<u64, Trap> {
        vm.run(&self.env(), prog, pkt)
    }

    /// Runs program `prog` `repeat` times on the same packet without resetting it, as
    /// the kernel's test run does, and returns the last r0 and the total time. Each run
    /// has the step budget `vm.max_steps`; see [`LoadedObject::run_repeated`] for runs
    /// that an interruption may stop early.
    pub fn run_repeat(
        &self,
        vm: &mut Vm,
        prog: usize,
        pkt: &mut Packet,
        repeat: u64,
    ) -> Result<(u64, Duration), Trap> {
        self.run_repeated(vm, prog, pkt, repeat)
            .map(|r| (r.retval, r.elapsed))
    }

    /// [`LoadedObject::run_repeat`] that also reports how many runs were done: at
    /// least one, and fewer than `repeat` when the flag of [`Vm::set_interrupt`] was
    /// raised (checked after each run).
    pub fn run_repeated(
        &self,
        vm: &mut Vm,
        prog: usize,
        pkt: &mut Packet,
        repeat: u64,
    ) -> Result<Repeated, Trap> {
        let env = self.env();
        let repeat = repeat.max(1);
        let flag = vm.interrupt_flag().cloned();
        let start = Instant::now();
        let mut retval = 0;
        let mut runs = 0;
        while runs < repeat {
            retval = vm.run(&env, prog, pkt)?;
            runs += 1;
            if runs < repeat
                && flag
                    .as_ref()
                    .is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed))
            {
                break;
            }
        }
        Ok(Repeated {
            retval,
            elapsed: start.elapsed(),
            runs,
            interrupted: runs < repeat,
        })
    }
}

/// Writes the initial slots of the object's maps of maps (`.values = { [i] = &inner }`):
/// key `i` gets the inner map's store id, as libbpf's `init_map_in_map_slots` writes
/// its fd once the maps exist. `bound` is parallel to `object.maps`.
fn fill_map_slots(object: &loader::Object, bound: &[BoundMap]) -> Result<(), LoadError> {
    for (spec, outer) in object.maps.iter().zip(bound) {
        for (slot, target) in &spec.init_slots {
            let loader::SlotTarget::Map(inner) = target else {
                continue;
            };
            let fail = |target: String, reason: String| LoadError::InitSlot {
                map: spec.name.clone(),
                slot: *slot,
                target,
                reason,
            };
            let Some(inner) = bound.get(*inner) else {
                return Err(fail(
                    format!("map #{inner}"),
                    "the object has no such map".into(),
                ));
            };
            outer
                .map
                .update(&slot.to_ne_bytes(), &inner.info.id.to_ne_bytes(), 0)
                .map_err(|e| fail(format!("map {}", inner.name), e.to_string()))?;
        }
    }
    Ok(())
}

/// Writes the initial slots of the object's prog_arrays (`.values = { [i] = &prog }`)
/// once the programs are prepared, as libbpf's `init_prog_array_slots` does after
/// loading them: slot `i` gets the program's number (see [`LoadedObject::program_id`]).
fn fill_prog_slots(
    object: &loader::Object,
    maps: &MapTable,
    programs: &[Prepared],
) -> Result<(), LoadError> {
    for (i, spec) in object.maps.iter().enumerate() {
        for (slot, target) in &spec.init_slots {
            let loader::SlotTarget::Program(name) = target else {
                continue;
            };
            let fail = |reason: String| LoadError::InitSlot {
                map: spec.name.clone(),
                slot: *slot,
                target: format!("program {name}"),
                reason,
            };
            let Some(id) = programs.iter().position(|p| &p.name == name) else {
                return Err(fail(
                    "not a loaded XDP program of the object (rejected, filtered out or of another type)"
                        .into(),
                ));
            };
            let Some(m) = maps.get(i) else {
                return Err(fail("the map is not bound".into()));
            };
            m.map
                .update(&slot.to_ne_bytes(), &(id as u32 + 1).to_ne_bytes(), 0)
                .map_err(|e| fail(e.to_string()))?;
        }
    }
    Ok(())
}

/// One entry of a map dump ([`maps::Map::dump`]).
pub use maps::Entry;

/// A store size that holds `object`'s maps, each as the store lays it out
/// ([`maps::map_store_bytes`]: the memory `create_map` preallocates, so a map filled
/// to the brim needs no more), plus the default size for the programs, BTF and maps
/// created later (inner maps, the shim's). A map definition the store refuses counts
/// with a generous estimate (keys and values rounded to 8 bytes, per-CPU values once
/// per possible CPU, 64 bytes per entry); its load fails anyway. Used by
/// `xdp-runner run` and `bench` and the bench crate.
pub fn store_size_for(object: &loader::Object) -> usize {
    let ncpus = maps::possible_cpus();
    let maps: u64 = object
        .maps
        .iter()
        .map(|m| {
            // A bloom filter's bits grow with its hash count (map_extra, 5 by
            // default): count it as a filter of 5 hashes and proportionally more
            // entries.
            let entries = if m.map_type == isa::uapi::BPF_MAP_TYPE_BLOOM_FILTER && m.map_extra > 5 {
                u32::try_from((u64::from(m.max_entries) * m.map_extra).div_ceil(5))
                    .unwrap_or(u32::MAX)
            } else {
                m.max_entries
            };
            maps::map_store_bytes(
                m.map_type,
                m.key_size,
                m.value_size,
                entries,
                m.map_flags,
                ncpus,
            )
            .unwrap_or_else(|_| {
                let mut value = u64::from(m.value_size).div_ceil(8) * 8;
                if is_percpu(m.map_type) {
                    value *= u64::from(ncpus);
                }
                u64::from(m.max_entries) * (u64::from(m.key_size).div_ceil(8) * 8 + value + 64)
            })
        })
        .fold(0u64, u64::saturating_add);
    let size = (maps::DEFAULT_STORE_SIZE as u64).saturating_add(maps);
    usize::try_from(size).unwrap_or(usize::MAX)
}

/// The runtime's two engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Engine {
    /// [`Vm::run`] on the pre-decoded program.
    Interpreter,
    /// [`jit::JitObject`], Cranelift-compiled.
    Jit,
}

impl Engine {
    /// Both engines.
    pub const ALL: [Engine; 2] = [Engine::Interpreter, Engine::Jit];

    /// `"interpreter"` or `"jit"`, as `xdp-runner --engine` takes them.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Interpreter => "interpreter",
            Engine::Jit => "jit",
        }
    }
}

impl std::str::FromStr for Engine {
    type Err = String;

    fn from_str(s: &str) -> Result<Engine, String> {
        Engine::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| format!("unknown engine {s:?} (interpreter or jit)"))
    }
}

/// Whether values of this map type are per CPU.
pub use isa::uapi::is_percpu_map_type as is_percpu;

#[cfg(test)]
mod tests {
    use super::*;

    /// bpf-progs' xdp_mim: by_proto (array of maps) slots 0, 1, 3 = arr_icmp,
    /// arr_tcp, arr_udp; by_l4 (hash of maps) keys 6, 17 = flows_tcp, flows_udp;
    /// mim_jmp (prog_array) slot 0 = xdp_mim.
    const MIM: &[u8] = include_bytes!("../../bpf-progs/obj/xdp_mim.o");

    fn u32_at(v: &[u8]) -> u32 {
        u32::from_ne_bytes(v[..4].try_into().expect("4 bytes"))
    }

    #[test]
    fn maps_are_reached_by_name_through_typed_handles() {
        let bytes = std::fs::read(bpf_progs::object("xdp_stats")).unwrap();
        let obj = loader::Object::parse(&bytes).unwrap();
        let store = maps::Store::anonymous(maps::StoreOptions {
            size: 8 << 20,
            ncpus: Some(2),
        })
        .unwrap();
        let loaded = LoadedObject::load(&obj, &store).unwrap();
        // proto_stats: PERCPU_HASH u32 -> struct datarec { u64 packets, bytes; }.
        assert!(matches!(
            loaded.map::<u32, [u64; 2]>("proto_stats"),
            Err(EntryError::Map { .. })
        ));
        let stats = loaded.percpu_map::<u32, [u64; 2]>("proto_stats").unwrap();
        stats
            .insert(&6, &[[1, 60], [2, 120]], maps::BPF_ANY)
            .unwrap();
        assert_eq!(stats.get(&6).unwrap(), Some(vec![[1, 60], [2, 120]]));
        assert!(matches!(
            loaded.percpu_map::<u64, [u64; 2]>("proto_stats"),
            Err(EntryError::Map { .. })
        ));
        assert!(matches!(
            loaded.map::<u32, u64>("nope"),
            Err(EntryError::NoSuchMap { .. })
        ));
    }

    #[test]
    fn initial_slots_are_filled_at_load() {
        let obj = loader::Object::parse(MIM).expect("parse");
        let store = maps::Store::anonymous(maps::StoreOptions {
            size: 4 << 20,
            ncpus: Some(1),
        })
        .expect("store");
        let loaded = LoadedObject::load(&obj, &store).expect("load");
        let id = |name: &str| loaded.maps.by_name(name).expect(name).info.id;
        let lookup = |map: &str, key: u32| -> Option<u32> {
            let m = loaded.maps.by_name(map).expect(map);
            let mut v = vec![0u8; m.map.user_value_size()];
            m.map
                .lookup(&key.to_ne_bytes(), &mut v)
                .ok()
                .map(|_| u32_at(&v))
        };
        assert_eq!(lookup("by_proto", 0), Some(id("arr_icmp")));
        assert_eq!(lookup("by_proto", 1), Some(id("arr_tcp")));
        assert_eq!(lookup("by_proto", 2), None, "slot 2 is left empty");
        assert_eq!(lookup("by_proto", 3), Some(id("arr_udp")));
        assert_eq!(lookup("by_l4", 6), Some(id("flows_tcp")));
        assert_eq!(lookup("by_l4", 17), Some(id("flows_udp")));
        assert_eq!(lookup("by_l4", 1), None);
        assert_eq!(lookup("mim_jmp", 0), loaded.program_id("xdp_mim"));
        assert_eq!(lookup("mim_jmp", 1), None);

        // A TCP frame (TTL 64, 74 bytes, to 10.0.0.2) through the tail call: the
        // inner array of slot 1 counts its bytes at key 64 & 3 = 0, the inner hash
        // of key 6 its destination; both found: XDP_TX.
        let frame = [
            "020000000002020000000001", // MACs
            "0800",                     // IPv4
            "4500003c1234400040061486", // ... TTL 64, TCP
            "0a0000010a000002",         // 10.0.0.1 -> 10.0.0.2
        ]
        .concat();
        let mut frame: Vec<u8> = (0..frame.len() / 2)
            .map(|i| u8::from_str_radix(&frame[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        frame.resize(74, 0);
        let jump = loaded.program_index(Some("xdp_mim_jump")).expect("jump");
        let mut pkt = Packet::new(&frame).expect("packet");
        let ret = loaded.run(&mut Vm::new(0), jump, &mut pkt).expect("run");
        assert_eq!(ret, u64::from(action::TX));
        let read = |map: &str, key: u32| -> u64 {
            let m = loaded.maps.by_name(map).expect(map);
            let mut v = [0u8; 8];
            m.map.lookup(&key.to_ne_bytes(), &mut v).expect("entry");
            u64::from_ne_bytes(v)
        };
        assert_eq!(read("arr_tcp", 0), 74);
        assert_eq!(read("arr_udp", 0), 0);
        assert_eq!(read("flows_tcp", u32::from_ne_bytes([10, 0, 0, 2])), 1);
        assert_eq!(read("mim_stats", 0), 1, "one packet");
        assert_eq!(read("mim_stats", 3), 1, "one new flow");
    }

    #[test]
    fn a_slot_past_max_entries_fails_the_load() {
        let mut obj = loader::Object::parse(MIM).expect("parse");
        let outer = obj.map_index("by_proto").expect("by_proto");
        let inner = obj.map_index("arr_icmp").expect("arr_icmp");
        // by_proto has 4 entries: the kernel refuses key 4 with E2BIG, and libbpf
        // fails the load.
        obj.maps[outer]
            .init_slots
            .push((4, loader::SlotTarget::Map(inner)));
        let store = maps::Store::anonymous(maps::StoreOptions {
            size: 4 << 20,
            ncpus: Some(1),
        })
        .expect("store");
        let err = LoadedObject::load(&obj, &store).expect_err("slot 4 of 4");
        assert!(
            matches!(&err, LoadError::InitSlot { map, slot: 4, .. } if map == "by_proto"),
            "{err}"
        );
        // A prog_array slot naming no XDP program of the object.
        let mut obj = loader::Object::parse(MIM).expect("parse");
        let jmp = obj.map_index("mim_jmp").expect("mim_jmp");
        obj.maps[jmp].init_slots = vec![(1, loader::SlotTarget::Program("nope".into()))];
        let err = LoadedObject::load(&obj, &store).expect_err("no program nope");
        assert!(
            matches!(&err, LoadError::InitSlot { target, .. } if target == "program nope"),
            "{err}"
        );
    }
}
