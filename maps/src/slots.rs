//! The "fd array" maps: DEVMAP, CPUMAP, XSKMAP, ARRAY_OF_MAPS and the slots of
//! PERF_EVENT_ARRAY, with the kernel's update/delete/lookup rules.
//!
//! Memory: `max_entries` slots of 16 bytes: `value: u64` (the value, at most 8
//! bytes: `struct bpf_devmap_val`, `struct bpf_cpumap_val`, a socket id, an
//! inner map id, a perf event id) then `present: u32`. A writer stores the
//! value word, then `present = 1` (Release); a reader loads `present`
//! (Acquire) then the value. Replacing a filled slot rewrites the value word
//! in one atomic store, so readers see the old or the new value, never a mix.
//! Slots are written by user space only (programs cannot update these maps),
//! with no lock: each update is one or two atomic stores.
//!
//! What the kernel resolves through an fd is kept as an id here: a devmap
//! holds `ifindex` (any non-zero index is accepted: there are no net devices
//! in a store) and a program id of 0, an xskmap holds the socket id given, an
//! array of maps holds the inner map's id in this store.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::def::{self, Kind, BPF_ANY, BPF_EXIST, BPF_NOEXIST};
use crate::error::MapError;
use crate::layout;
use crate::map::Map;

/// The kernel's cpumap queue size bound.
const CPUMAP_MAX_QSIZE: u32 = 16384;

impl Map {
    fn slot_words(&self, idx: u32) -> Option<(&AtomicU64, &AtomicU32)> {
        if idx >= self.max_entries || !self.kind.is_slots() {
            return None;
        }
        let p = self
            .data
            .wrapping_add(idx as usize * def::SLOT_SIZE as usize);
        // SAFETY: idx < max_entries: the 16-byte, 16-aligned slot lies inside the
        // map's data region (max_entries * 16 bytes first), alive as long as self.
        unsafe {
            Some((
                AtomicU64::from_ptr(p as *mut u64),
                AtomicU32::from_ptr(p.add(8) as *mut u32),
            ))
        }
    }

    /// The value word of slot `idx` if filled.
    #[inline]
    pub(crate) fn slot_get(&self, idx: u32) -> Option<u64> {
        let (v, present) = self.slot_words(idx)?;
        (present.load(Ordering::Acquire) != 0).then(|| v.load(Ordering::Relaxed))
    }

    /// Address of slot `idx`'s value if filled (for program lookups).
    pub(crate) fn slot_ptr(&self, idx: u32) -> *mut u8 {
        match self.slot_get(idx) {
            Some(_) => self
                .data
                .wrapping_add(idx as usize * def::SLOT_SIZE as usize),
            None => std::ptr::null_mut(),
        }
    }

    fn slot_set(&self, idx: u32, value: Option<u64>) -> bool {
        let Some((v, present)) = self.slot_words(idx) else {
            return false;
        };
        match value {
            Some(x) => {
                v.store(x, Ordering::Relaxed);
                present.swap(1, Ordering::AcqRel) != 0
            }
            None => present.swap(0, Ordering::AcqRel) != 0,
        }
    }

    fn e2big(&self) -> MapError {
        MapError::TooBig {
            id: self.id,
            max_entries: self.max_entries,
        }
    }

    fn index(key: &[u8]) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&key[..4]);
        u32::from_ne_bytes(b)
    }

    fn word(value: &[u8]) -> u64 {
        let mut b = [0u8; 8];
        let n = value.len().min(8);
        b[..n].copy_from_slice(&value[..n]);
        u64::from_ne_bytes(b)
    }

    /// The type of the live map with `id` in this store, if any.
    pub(crate) fn live_map_type(&self, id: u32) -> Option<u32> {
        (0..layout::MAP_TABLE_CAP)
            .filter_map(|s| layout::entry(&self.shm, s))
            .find(|e| {
                e.state.load(Ordering::Acquire) == layout::ENTRY_LIVE
                    && e.id.load(Ordering::Relaxed) == id
            })
            .map(|e| e.map_type.load(Ordering::Relaxed))
    }

    /// Checks a map-in-map value: a live map that is not itself a map of maps.
    pub(crate) fn check_inner(&self, value: &[u8]) -> Result<(), MapError> {
        let inner = Self::word(value) as u32;
        match self.live_map_type(inner) {
            None => Err(MapError::BadInnerMap { id: self.id, inner }),
            Some(def::BPF_MAP_TYPE_ARRAY_OF_MAPS | def::BPF_MAP_TYPE_HASH_OF_MAPS) => {
                Err(MapError::InvalidValue {
                    id: self.id,
                    what: "an inner map cannot be a map of maps",
                })
            }
            Some(_) => Ok(()),
        }
    }

    pub(crate) fn slots_user_lookup(&self, key: &[u8], out: &mut [u8]) -> Result<(), MapError> {
        match self.kind {
            Kind::XskMap => {
                return Err(MapError::Unsupported {
                    id: self.id,
                    op: "lookup",
                    errno: libc::EOPNOTSUPP,
                })
            }
            Kind::PerfEventArray => {
                return Err(MapError::Unsupported {
                    id: self.id,
                    op: "lookup",
                    errno: crate::error::ENOTSUPP,
                })
            }
            _ => {}
        }
        let v = self
            .slot_get(Self::index(key))
            .ok_or(MapError::NotFound { id: self.id })?;
        let b = v.to_ne_bytes();
        let n = out.len().min(8);
        out[..n].copy_from_slice(&b[..n]);
        Ok(())
    }

    pub(crate) fn slots_user_update(
        &self,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), MapError> {
        let idx = Self::index(key);
        let bad_flags = MapError::InvalidFlags { id: self.id, flags };
        match self.kind {
            Kind::ArrayOfMaps | Kind::PerfEventArray => {
                // bpf_fd_array_map_update_elem
                if flags != BPF_ANY {
                    return Err(bad_flags);
                }
                if idx >= self.max_entries {
                    return Err(self.e2big());
                }
                if self.kind == Kind::ArrayOfMaps {
                    self.check_inner(value)?;
                }
                self.slot_set(idx, Some(Self::word(value)));
                Ok(())
            }
            Kind::DevMap => {
                // dev_map_update_elem
                if flags > BPF_EXIST {
                    return Err(bad_flags);
                }
                if idx >= self.max_entries {
                    return Err(self.e2big());
                }
                if flags == BPF_NOEXIST {
                    return Err(MapError::Exists { id: self.id });
                }
                let w = Self::word(value);
                let ifindex = w as u32;
                let prog_fd = (w >> 32) as u32 as i32;
                if prog_fd > 0 {
                    return Err(MapError::InvalidValue {
                        id: self.id,
                        what: "devmap programs are not supported",
                    });
                }
                if ifindex == 0 {
                    self.slot_set(idx, None);
                } else {
                    self.slot_set(idx, Some(u64::from(ifindex)));
                }
                Ok(())
            }
            Kind::CpuMap => {
                // cpu_map_update_elem
                if flags > BPF_EXIST {
                    return Err(bad_flags);
                }
                if idx >= self.max_entries {
                    return Err(self.e2big());
                }
                if flags == BPF_NOEXIST {
                    return Err(MapError::Exists { id: self.id });
                }
                let w = Self::word(value);
                let qsize = w as u32;
                if qsize > CPUMAP_MAX_QSIZE {
                    return Err(MapError::Overflow {
                        id: self.id,
                        what: "cpumap qsize above 16384",
                    });
                }
                if idx >= self.ncpus {
                    return Err(MapError::NoDevice {
                        id: self.id,
                        what: "cpumap key is not a possible CPU",
                    });
                }
                if (w >> 32) as u32 as i32 > 0 {
                    return Err(MapError::InvalidValue {
                        id: self.id,
                        what: "cpumap programs are not supported",
                    });
                }
                if qsize == 0 {
                    self.slot_set(idx, None);
                } else {
                    self.slot_set(idx, Some(u64::from(qsize)));
                }
                Ok(())
            }
            Kind::XskMap => {
                // xsk_map_update_elem
                if flags > BPF_EXIST {
                    return Err(bad_flags);
                }
                if idx >= self.max_entries {
                    return Err(self.e2big());
                }
                let present = self.slot_get(idx).is_some();
                if present && flags == BPF_NOEXIST {
                    return Err(MapError::Exists { id: self.id });
                }
                if !present && flags == BPF_EXIST {
                    return Err(MapError::NotFound { id: self.id });
                }
                self.slot_set(idx, Some(Self::word(value)));
                Ok(())
            }
            _ => Err(self.not_supported("slot update")),
        }
    }

    pub(crate) fn slots_delete(&self, key: &[u8]) -> Result<(), MapError> {
        let idx = Self::index(key);
        match self.kind {
            Kind::ArrayOfMaps | Kind::PerfEventArray => {
                if idx >= self.max_entries {
                    return Err(self.e2big());
                }
                if self.slot_set(idx, None) {
                    Ok(())
                } else {
                    Err(MapError::NotFound { id: self.id })
                }
            }
            _ => {
                // dev_map_delete_elem, cpu_map_delete_elem, xsk_map_delete_elem
                if idx >= self.max_entries {
                    return Err(MapError::InvalidValue {
                        id: self.id,
                        what: "index >= max_entries",
                    });
                }
                self.slot_set(idx, None);
                Ok(())
            }
        }
    }

    /// What `bpf_redirect_map` finds at `key` in a DEVMAP, DEVMAP_HASH, CPUMAP or
    /// XSKMAP: the slot's value (ifindex, queue size, socket id), or `None` when
    /// empty or when this is not a redirect map.
    #[inline]
    pub fn redirect_lookup(&self, key: u32) -> Option<u64> {
        match self.kind {
            Kind::DevMap | Kind::CpuMap | Kind::XskMap => self.slot_get(key),
            Kind::DevMapHash => {
                let k = key.to_ne_bytes();
                // SAFETY: devmap_hash keys are 4 bytes.
                let p = unsafe { self.hash_lookup_ptr(k.as_ptr(), 0) };
                if p.is_null() {
                    return None;
                }
                // SAFETY: p is the 8-aligned value area (vstride >= 4 bytes) of a
                // live element; read as one atomic word of its first 4 bytes.
                Some(u64::from(
                    unsafe { AtomicU32::from_ptr(p as *mut u32) }.load(Ordering::Relaxed),
                ))
            }
            _ => None,
        }
    }

    /// The `bpf_redirect_map` flags this map type accepts beyond the action
    /// bits: BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS for devmaps, none
    /// otherwise. `None` if the type is not a redirect target.
    pub fn redirect_flag_mask(&self) -> Option<u64> {
        match self.kind {
            Kind::DevMap | Kind::DevMapHash => {
                Some(def::BPF_F_BROADCAST | def::BPF_F_EXCLUDE_INGRESS)
            }
            Kind::CpuMap | Kind::XskMap => Some(0),
            _ => None,
        }
    }

    /// The inner map id stored at `key` of an ARRAY_OF_MAPS or HASH_OF_MAPS, as a
    /// program's lookup would find it.
    ///
    /// # Safety
    /// `key` points to key_size readable bytes.
    pub unsafe fn inner_map_id(&self, key: *const u8) -> Option<u32> {
        match self.kind {
            Kind::ArrayOfMaps => {
                // SAFETY: caller contract (4-byte key).
                let idx = unsafe { std::ptr::read_unaligned(key as *const u32) };
                self.slot_get(idx).map(|v| v as u32)
            }
            Kind::HashOfMaps => {
                // SAFETY: caller contract.
                let p = unsafe { self.hash_lookup_ptr(key, 0) };
                // SAFETY: an 8-aligned value area of 4 bytes of a live element.
                (!p.is_null())
                    .then(|| unsafe { AtomicU32::from_ptr(p as *mut u32) }.load(Ordering::Relaxed))
            }
            _ => None,
        }
    }
}
