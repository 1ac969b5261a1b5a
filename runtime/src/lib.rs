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
//! `interp` (instruction fetch), `helpers` (raw copies after checks), `maptable`.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod error;
pub mod helpers;
pub mod interp;
pub mod jit;
pub mod kernel;
pub mod maptable;
pub mod memory;
pub mod program;
pub mod stored;
pub mod xdp;

use std::time::{Duration, Instant};

pub use error::{EntryError, LoadError, PacketError, Trap, TrapKind, VerifyError};
pub use interp::{Env, Vm};
pub use maptable::{BoundMap, MapTable};
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

/// What [`LoadedObject::load_with`] records in the store besides the maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Pin every map of the object as `<prefix>/<map name>`, as
    /// `bpftool prog loadall OBJ DIR pinmaps PREFIX` does.
    pub pin_maps: Option<String>,
    /// Pin every registered XDP program as `<prefix>/<program name>`.
    pub pin_programs: Option<String>,
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
                btf_id: 0,
                holder_pid: 0,
            };
            let map = store.create_map(&def).map_err(map_err)?;
            if let Some(data) = &spec.initial_data {
                map.update(&0u32.to_ne_bytes(), data, 0).map_err(map_err)?;
            }
            bound.push(BoundMap {
                name: spec.name.clone(),
                info: map.info(),
                map,
            });
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
            match program::prepare(&p.name, &p.section, &p.insns, &starts, &maps) {
                Ok(prepared) => {
                    let def = stored::program_def(&p.name, 6, &p.insns, &maps);
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
                    programs.push(prepared)
                }
                Err(e) => rejected.push((p.name.clone(), e)),
            }
        }
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

    /// Writes one map entry from user space, by the object's map name. For a per-CPU
    /// map, a value of `value_size` bytes is written to every CPU; a value of
    /// `ncpus * round_up(value_size, 8)` bytes gives each CPU its own.
    pub fn update_entry(
        &self,
        map: &str,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), EntryError> {
        let m = self
            .maps
            .by_name(map)
            .ok_or_else(|| EntryError::NoSuchMap {
                name: map.to_string(),
                available: self
                    .maps
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let info = &m.info;
        if key.len() != info.key_size as usize {
            return Err(EntryError::KeySize {
                map: map.to_string(),
                len: key.len(),
                expected: info.key_size as usize,
            });
        }
        let full = m.map.user_value_size();
        let value: std::borrow::Cow<'_, [u8]> = if is_percpu(info.map_type)
            && value.len() == info.value_size as usize
            && full != value.len()
        {
            let stride = (info.value_size as usize).div_ceil(8) * 8;
            let mut spread = vec![0u8; full];
            for chunk in spread.chunks_mut(stride) {
                chunk[..value.len()].copy_from_slice(value);
            }
            spread.into()
        } else {
            value.into()
        };
        if value.len() != full {
            return Err(EntryError::ValueSize {
                map: map.to_string(),
                len: value.len(),
                expected: full,
            });
        }
        m.map
            .update(key, &value, flags)
            .map_err(|source| EntryError::Map {
                map: map.to_string(),
                source,
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
    /// the kernel's test run does, and returns the last r0 and the total time.
    pub fn run_repeat(
        &self,
        vm: &mut Vm,
        prog: usize,
        pkt: &mut Packet,
        repeat: u64,
    ) -> Result<(u64, Duration), Trap> {
        let env = self.env();
        let start = Instant::now();
        let mut ret = 0;
        for _ in 0..repeat.max(1) {
            ret = vm.run(&env, prog, pkt)?;
        }
        Ok((ret, start.elapsed()))
    }
}

/// One entry of a map dump: the key and one value, or one per CPU for per-CPU maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub values: Vec<Vec<u8>>,
}

/// Whether values of this map type are per CPU.
pub fn is_percpu(map_type: u32) -> bool {
    matches!(
        map_type,
        maptable::types::PERCPU_ARRAY
            | maptable::types::PERCPU_HASH
            | maptable::types::LRU_PERCPU_HASH
    )
}

/// Every entry of `map`, in iteration order, with per-CPU values split per CPU.
pub fn dump(map: &maps::Map) -> Result<Vec<Entry>, maps::MapError> {
    let info = map.info();
    let mut out = Vec::new();
    let mut key = vec![0u8; info.key_size as usize];
    let mut next = vec![0u8; info.key_size as usize];
    let mut value = vec![0u8; map.user_value_size()];
    let mut first = true;
    loop {
        let r = map.get_next_key(if first { None } else { Some(&key) }, &mut next);
        match r {
            Ok(()) => {}
            Err(e) if e.errno() == libc::ENOENT => break,
            Err(e) => return Err(e),
        }
        first = false;
        std::mem::swap(&mut key, &mut next);
        match map.lookup(&key, &mut value) {
            Ok(()) => {}
            Err(e) if e.errno() == libc::ENOENT => continue,
            Err(e) => return Err(e),
        }
        let values = if is_percpu(info.map_type) {
            let stride = (info.value_size as usize).div_ceil(8) * 8;
            value
                .chunks(stride)
                .map(|c| c[..info.value_size as usize].to_vec())
                .collect()
        } else {
            vec![value.clone()]
        };
        out.push(Entry {
            key: key.clone(),
            values,
        });
        if out.len() > info.max_entries as usize {
            break;
        }
    }
    Ok(out)
}
