//! ARRAY, PERCPU_ARRAY (and global-data arrays) and PROG_ARRAY, with the kernel's
//! arraymap.c semantics.
//!
//! Memory: ARRAY values at stride round_up(value_size, 8), zero-initialised.
//! PERCPU_ARRAY is CPU-major, `[cpu][index]`, so that workers bumping the same
//! counter write different cache lines. PROG_ARRAY holds one `AtomicU32` program
//! id per slot (0 = empty). Values are read and written with word-sized atomics
//! from user space (see mem.rs); programs get raw pointers.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::def::{Kind, BPF_ANY, BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST};
use crate::error::MapError;
use crate::map::Map;
use crate::mem;

/// Where an ARRAY or PERCPU_ARRAY map keeps its values, for code generators that
/// inline lookups: the value of index `i < max_entries` is at `data + i * vstride`
/// (ARRAY), or worker `cpu < ncpus`'s at `data + (cpu * max_entries + i) * vstride`
/// (PERCPU_ARRAY). The addresses stay valid as long as the `Map`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArrayLayout {
    /// The first value.
    pub data: *mut u8,
    /// Bytes from one value to the next: round_up(value_size, 8).
    pub vstride: usize,
    /// Values per CPU.
    pub max_entries: u32,
    /// Per-CPU slots (0 for a plain ARRAY).
    pub ncpus: u32,
}

impl Map {
    /// The kernel's flag check for array updates. BPF_F_LOCK needs a bpf_spin_lock
    /// in the value, which this store does not track yet, so it is refused (EINVAL)
    /// as the kernel refuses it for values without one.
    #[inline]
    fn array_check_flags(&self, flags: u64) -> Result<(), MapError> {
        if (flags & !BPF_F_LOCK) > BPF_EXIST || flags & BPF_F_LOCK != 0 {
            return Err(MapError::InvalidFlags { id: self.id, flags });
        }
        Ok(())
    }

    #[inline]
    fn index_of(key: &[u8]) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&key[..4]);
        u32::from_ne_bytes(b)
    }

    /// The layout of an ARRAY or PERCPU_ARRAY map's values (None for other kinds).
    pub fn array_layout(&self) -> Option<ArrayLayout> {
        let ncpus = match self.kind {
            Kind::Array => 0,
            Kind::PercpuArray => self.ncpus,
            _ => return None,
        };
        Some(ArrayLayout {
            data: self.data,
            vstride: self.vstride,
            max_entries: self.max_entries,
            ncpus,
        })
    }

    /// ARRAY lookup: bounds check plus a multiply-add.
    ///
    /// # Safety
    /// `key` points to 4 readable bytes.
    #[inline]
    pub(crate) unsafe fn array_lookup_ptr(&self, key: *const u8) -> *mut u8 {
        // SAFETY: caller contract: 4 readable bytes.
        let idx = unsafe { std::ptr::read_unaligned(key as *const u32) };
        if idx >= self.max_entries {
            return std::ptr::null_mut();
        }
        self.data.wrapping_add(idx as usize * self.vstride)
    }

    /// PERCPU_ARRAY lookup of worker `cpu`'s slot.
    ///
    /// # Safety
    /// `key` points to 4 readable bytes.
    #[inline]
    pub(crate) unsafe fn percpu_array_lookup_ptr(&self, key: *const u8, cpu: u32) -> *mut u8 {
        // SAFETY: caller contract: 4 readable bytes.
        let idx = unsafe { std::ptr::read_unaligned(key as *const u32) };
        if idx >= self.max_entries || cpu >= self.ncpus {
            return std::ptr::null_mut();
        }
        self.percpu_slot(idx, cpu)
    }

    #[inline]
    fn percpu_slot(&self, idx: u32, cpu: u32) -> *mut u8 {
        let slot = cpu as usize * self.max_entries as usize + idx as usize;
        self.data.wrapping_add(slot * self.vstride)
    }

    fn prog_slot(&self, idx: u32) -> Option<&AtomicU32> {
        if idx >= self.max_entries || self.kind != Kind::ProgArray {
            return None;
        }
        let p = self.data.wrapping_add(idx as usize * 4);
        // SAFETY: idx < max_entries, so the 4-aligned word lies inside the map's
        // data region (data_len = max_entries * 4), which lives as long as self.
        Some(unsafe { AtomicU32::from_ptr(p as *mut u32) })
    }

    /// The program id in PROG_ARRAY slot `index` (for bpf_tail_call), or None when
    /// the slot is empty, out of range, or this is not a PROG_ARRAY.
    #[inline]
    pub fn prog_array_get(&self, index: u32) -> Option<u32> {
        match self.prog_slot(index)?.load(Ordering::Acquire) {
            0 => None,
            id => Some(id),
        }
    }

    pub(crate) fn array_user_lookup(&self, key: &[u8], out: &mut [u8]) -> Result<(), MapError> {
        let idx = Self::index_of(key);
        if idx >= self.max_entries {
            return Err(MapError::NotFound { id: self.id });
        }
        match self.kind {
            Kind::Array => {
                let p = self.data.wrapping_add(idx as usize * self.vstride);
                // SAFETY: idx < max_entries: the value lies inside the data region,
                // 8-aligned, with vstride >= round_up(out.len(), 8) bytes.
                unsafe { mem::load_words(out, p) };
            }
            Kind::PercpuArray => {
                for (cpu, chunk) in out.chunks_mut(self.vstride).enumerate() {
                    let p = self.percpu_slot(idx, cpu as u32);
                    // SAFETY: idx < max_entries, cpu < ncpus (out has ncpus chunks):
                    // the slot is inside the data region, 8-aligned, vstride bytes.
                    unsafe { mem::load_words(chunk, p) };
                }
            }
            Kind::ProgArray => match self.prog_array_get(idx) {
                Some(id) => out.copy_from_slice(&id.to_ne_bytes()),
                None => return Err(MapError::NotFound { id: self.id }),
            },
            _ => return Err(self.not_supported("array lookup")),
        }
        Ok(())
    }

    pub(crate) fn array_user_update(
        &self,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), MapError> {
        let idx = Self::index_of(key);
        if self.kind == Kind::ProgArray {
            // fd_array_map_update_elem
            if flags != BPF_ANY {
                return Err(MapError::InvalidFlags { id: self.id, flags });
            }
            let slot = self.prog_slot(idx).ok_or(MapError::TooBig {
                id: self.id,
                max_entries: self.max_entries,
            })?;
            let mut b = [0u8; 4];
            b.copy_from_slice(value);
            let prog_id = u32::from_ne_bytes(b);
            if prog_id == 0 {
                return Err(MapError::InvalidValue {
                    id: self.id,
                    what: "program id 0",
                });
            }
            slot.store(prog_id, Ordering::Release);
            return Ok(());
        }
        self.array_check_flags(flags)?;
        if idx >= self.max_entries {
            return Err(MapError::TooBig {
                id: self.id,
                max_entries: self.max_entries,
            });
        }
        if flags == BPF_NOEXIST {
            return Err(MapError::Exists { id: self.id });
        }
        match self.kind {
            Kind::Array => {
                let p = self.data.wrapping_add(idx as usize * self.vstride);
                // SAFETY: idx < max_entries; value has value_size bytes (checked by
                // the caller); the slot is 8-aligned with vstride bytes.
                unsafe { mem::store_words(p, value.as_ptr(), value.len()) };
                // An update cancels and forgets the value's timer (the kernel's
                // bpf_obj_free_fields after copy_map_value).
                self.timer_reset(idx);
            }
            Kind::PercpuArray => {
                // The kernel copies round_up(value_size, 8) bytes per CPU.
                for (cpu, chunk) in value.chunks(self.vstride).enumerate() {
                    let p = self.percpu_slot(idx, cpu as u32);
                    // SAFETY: cpu < ncpus; the slot has vstride bytes; chunk is
                    // vstride bytes of the caller's buffer.
                    unsafe { mem::store_words(p, chunk.as_ptr(), chunk.len()) };
                }
            }
            _ => return Err(self.not_supported("array update")),
        }
        Ok(())
    }

    /// bpf_map_update_elem of an ARRAY or PERCPU_ARRAY from a program on worker
    /// `cpu`: one test for every error, then the store (4- and 8-byte values as
    /// one word); the errors are worked out in the cold `array_update_error`.
    ///
    /// # Safety
    /// `key`/`value` point to key_size/value_size readable bytes.
    #[inline]
    pub(crate) unsafe fn array_prog_update(
        &self,
        key: *const u8,
        value: *const u8,
        flags: u64,
        cpu: u32,
    ) -> Result<(), MapError> {
        // SAFETY: caller contract: 4 readable key bytes.
        let idx = unsafe { std::ptr::read_unaligned(key as *const u32) };
        let percpu = self.kind == Kind::PercpuArray;
        // BPF_F_LOCK (4) needs a bpf_spin_lock in the value, not tracked yet:
        // EINVAL like any flag above BPF_EXIST.
        if flags > BPF_EXIST
            || flags == BPF_NOEXIST
            || idx >= self.max_entries
            || (percpu && cpu >= self.ncpus)
            || !(percpu || self.kind == Kind::Array)
        {
            return Err(self.array_update_error(idx, flags));
        }
        let p = if percpu {
            self.percpu_slot(idx, cpu)
        } else {
            self.data.wrapping_add(idx as usize * self.vstride)
        };
        // SAFETY: idx < max_entries (and cpu < ncpus): p is an in-bounds,
        // 8-aligned slot of vstride bytes; value has value_size readable bytes
        // (caller contract).
        unsafe { self.store_value(p, value) };
        self.timer_reset(idx);
        Ok(())
    }

    /// The error of an `array_prog_update` that failed its test, in the kernel's
    /// order: flags, index, BPF_NOEXIST, then the worker index.
    #[cold]
    #[inline(never)]
    fn array_update_error(&self, idx: u32, flags: u64) -> MapError {
        if let Err(e) = self.array_check_flags(flags) {
            return e;
        }
        if !matches!(self.kind, Kind::Array | Kind::PercpuArray) {
            return self.not_supported("program update");
        }
        if idx >= self.max_entries {
            return MapError::TooBig {
                id: self.id,
                max_entries: self.max_entries,
            };
        }
        if flags == BPF_NOEXIST {
            return MapError::Exists { id: self.id };
        }
        MapError::InvalidValue {
            id: self.id,
            what: "worker index >= ncpus",
        }
    }

    pub(crate) fn array_delete(&self, key: &[u8]) -> Result<(), MapError> {
        if self.kind != Kind::ProgArray {
            return Err(self.not_supported("delete"));
        }
        let idx = Self::index_of(key);
        let slot = self.prog_slot(idx).ok_or(MapError::TooBig {
            id: self.id,
            max_entries: self.max_entries,
        })?;
        match slot.swap(0, Ordering::AcqRel) {
            0 => Err(MapError::NotFound { id: self.id }),
            _ => Ok(()),
        }
    }

    pub(crate) fn array_get_next_key(
        &self,
        key: Option<&[u8]>,
        out: &mut [u8],
    ) -> Result<(), MapError> {
        let next = match key.map(Self::index_of) {
            None => 0,
            Some(i) if i >= self.max_entries => 0,
            Some(i) if i == self.max_entries - 1 => return Err(MapError::NotFound { id: self.id }),
            Some(i) => i + 1,
        };
        out.copy_from_slice(&next.to_ne_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::def::*;
    use crate::{MapDef, Store, StoreOptions};

    fn store() -> Store {
        Store::anonymous(StoreOptions {
            size: 4 << 20,
            ncpus: Some(3),
        })
        .expect("store")
    }

    fn def(t: u32, v: u32, max: u32, flags: u32) -> MapDef {
        MapDef {
            map_type: t,
            key_size: 4,
            value_size: v,
            max_entries: max,
            map_flags: flags,
            name: "arr".into(),
            ..MapDef::default()
        }
    }

    fn k(i: u32) -> [u8; 4] {
        i.to_ne_bytes()
    }

    #[test]
    fn array_flags_existing_and_out_of_range() {
        let s = store();
        let m = s
            .create_map(&def(BPF_MAP_TYPE_ARRAY, 6, 4, 0))
            .expect("map");
        let mut out = [0xffu8; 6];
        m.lookup(&k(3), &mut out).expect("present");
        assert_eq!(out, [0; 6], "zero-initialised");
        let e = |r: Result<(), crate::MapError>| r.err().map(|e| e.errno()).unwrap_or(0);
        assert_eq!(e(m.update(&k(1), b"abcdef", BPF_ANY)), 0);
        assert_eq!(e(m.update(&k(1), b"ABCDEF", BPF_EXIST)), 0);
        assert_eq!(e(m.update(&k(1), b"zzzzzz", BPF_NOEXIST)), libc::EEXIST);
        assert_eq!(e(m.update(&k(4), b"zzzzzz", BPF_ANY)), libc::E2BIG);
        assert_eq!(e(m.update(&k(4), b"zzzzzz", BPF_NOEXIST)), libc::E2BIG);
        assert_eq!(e(m.update(&k(0), b"zzzzzz", 3)), libc::EINVAL);
        assert_eq!(e(m.update(&k(0), b"zzzzzz", BPF_F_LOCK)), libc::EINVAL);
        assert_eq!(e(m.lookup(&k(4), &mut out)), libc::ENOENT);
        assert_eq!(e(m.delete(&k(1))), libc::EINVAL);
        assert_eq!(e(m.lookup(&k(1)[..3], &mut out)), libc::EINVAL);
        m.lookup(&k(1), &mut out).expect("present");
        assert_eq!(&out, b"ABCDEF");
        // The program sees the same bytes through its pointer.
        // SAFETY: key is 4 bytes; the returned pointer is valid for value_size bytes.
        let p = unsafe { m.prog_lookup(k(1).as_ptr(), 0) };
        assert!(!p.is_null());
        // SAFETY: p points to 6 readable value bytes.
        assert_eq!(unsafe { std::slice::from_raw_parts(p, 6) }, b"ABCDEF");
        // SAFETY: key is 4 bytes.
        assert!(unsafe { m.prog_lookup(k(4).as_ptr(), 0) }.is_null());
        let r = m.value_region();
        assert!(r.contains(p as usize, 6));
        assert!(!r.contains(p as usize, 7));
        // SAFETY: key/value sizes are right.
        let rc = unsafe { m.prog_update(k(2).as_ptr(), b"123456".as_ptr(), BPF_ANY, 0) };
        assert_eq!(rc, Ok(()));
        // SAFETY: key is 4 bytes.
        let rc = unsafe { m.prog_delete(k(2).as_ptr()) };
        assert_eq!(rc.map_err(|e| e.errno()), Err(libc::EINVAL));
        m.lookup(&k(2), &mut out).expect("present");
        assert_eq!(&out, b"123456");
    }

    #[test]
    fn array_get_next_key_like_the_kernel() {
        let s = store();
        let m = s
            .create_map(&def(BPF_MAP_TYPE_ARRAY, 4, 3, 0))
            .expect("map");
        let mut out = [0u8; 4];
        m.get_next_key(None, &mut out).expect("first");
        assert_eq!(out, k(0));
        m.get_next_key(Some(&k(0)), &mut out).expect("next");
        assert_eq!(out, k(1));
        m.get_next_key(Some(&k(99)), &mut out)
            .expect("out of range restarts");
        assert_eq!(out, k(0));
        assert_eq!(
            m.get_next_key(Some(&k(2)), &mut out).map_err(|e| e.errno()),
            Err(libc::ENOENT)
        );
        let keys: Vec<_> = m.iter().collect::<Result<_, _>>().expect("walk");
        assert_eq!(keys, vec![k(0).to_vec(), k(1).to_vec(), k(2).to_vec()]);
    }

    #[test]
    fn percpu_array_layout() {
        let s = store();
        let m = s
            .create_map(&def(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 2, 0))
            .expect("map");
        assert_eq!(m.user_value_size(), 3 * 8);
        let mut v = Vec::new();
        for cpu in 0..3u32 {
            v.extend_from_slice(&(100 + cpu).to_ne_bytes());
            v.extend_from_slice(&[0; 4]);
        }
        m.update(&k(1), &v, BPF_ANY).expect("update all slots");
        for cpu in 0..3u32 {
            // SAFETY: 4-byte key; the pointer is valid for 4 bytes.
            let p = unsafe { m.prog_lookup(k(1).as_ptr(), cpu) };
            assert!(!p.is_null());
            // SAFETY: p points to this worker's 4-byte value.
            let got = unsafe { std::ptr::read_unaligned(p as *const u32) };
            assert_eq!(got, 100 + cpu);
        }
        // SAFETY: 4-byte key.
        assert!(unsafe { m.prog_lookup(k(1).as_ptr(), 3) }.is_null());
        // Program update writes only its own slot.
        let seven = 7u32.to_ne_bytes();
        // SAFETY: 4-byte key and value.
        unsafe { m.prog_update(k(1).as_ptr(), seven.as_ptr(), BPF_ANY, 2) }.expect("update");
        let mut out = vec![0u8; 24];
        m.lookup(&k(1), &mut out).expect("lookup");
        assert_eq!(&out[0..4], &100u32.to_ne_bytes());
        assert_eq!(&out[8..12], &101u32.to_ne_bytes());
        assert_eq!(&out[16..20], &7u32.to_ne_bytes());
        assert_eq!(&out[20..24], &[0; 4]);
        // Slot 0 untouched.
        m.lookup(&k(0), &mut out).expect("lookup");
        assert_eq!(out, vec![0; 24]);
        // Wrong-size user buffers are EINVAL.
        assert_eq!(
            m.lookup(&k(0), &mut [0u8; 4]).map_err(|e| e.errno()),
            Err(libc::EINVAL)
        );
    }

    #[test]
    fn prog_array_semantics() {
        let s = store();
        let m = s
            .create_map(&def(BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 0))
            .expect("map");
        let e = |r: Result<(), crate::MapError>| r.err().map(|e| e.errno()).unwrap_or(0);
        let mut out = [0u8; 4];
        assert_eq!(e(m.lookup(&k(0), &mut out)), libc::ENOENT);
        assert_eq!(m.prog_array_get(0), None);
        assert_eq!(
            e(m.update(&k(0), &42u32.to_ne_bytes(), BPF_NOEXIST)),
            libc::EINVAL
        );
        assert_eq!(
            e(m.update(&k(4), &42u32.to_ne_bytes(), BPF_ANY)),
            libc::E2BIG
        );
        assert_eq!(
            e(m.update(&k(0), &0u32.to_ne_bytes(), BPF_ANY)),
            libc::EINVAL
        );
        assert_eq!(e(m.update(&k(0), &42u32.to_ne_bytes(), BPF_ANY)), 0);
        assert_eq!(m.prog_array_get(0), Some(42));
        assert_eq!(m.prog_array_get(4), None);
        m.lookup(&k(0), &mut out).expect("present");
        assert_eq!(u32::from_ne_bytes(out), 42);
        // SAFETY: 4-byte key.
        assert!(unsafe { m.prog_lookup(k(0).as_ptr(), 0) }.is_null());
        // SAFETY: 4-byte key/value.
        let rc = unsafe { m.prog_update(k(0).as_ptr(), out.as_ptr(), 0, 0) };
        assert_eq!(e(rc), libc::EINVAL);
        assert_eq!(m.value_region().len, 0);
        assert_eq!(e(m.delete(&k(0))), 0);
        assert_eq!(e(m.delete(&k(0))), libc::ENOENT);
        assert_eq!(e(m.delete(&k(9))), libc::E2BIG);
    }

    #[test]
    fn global_data_arrays() {
        let s = store();
        let bss = s
            .create_map(&def(BPF_MAP_TYPE_ARRAY, 20, 1, BPF_F_MMAPABLE))
            .expect("bss");
        let r = bss.value_region();
        assert_eq!(r.base % 4096, 0, "mmapable data is page aligned");
        assert_eq!(r.value_len, 20);
        let ro = s
            .create_map(&def(
                BPF_MAP_TYPE_ARRAY,
                8,
                1,
                BPF_F_MMAPABLE | BPF_F_RDONLY_PROG,
            ))
            .expect("rodata");
        ro.update(&k(0), b"rodata!!", BPF_ANY)
            .expect("user space may initialise");
        // SAFETY: 4-byte key, 8-byte value.
        let rc = unsafe { ro.prog_update(k(0).as_ptr(), b"xxxxxxxx".as_ptr(), BPF_ANY, 0) };
        assert_eq!(rc.map_err(|e| e.errno()), Err(libc::EPERM));
        ro.freeze().expect("freeze");
        assert_eq!(ro.freeze().map_err(|e| e.errno()), Err(libc::EBUSY));
        assert_eq!(
            ro.update(&k(0), b"yyyyyyyy", BPF_ANY)
                .map_err(|e| e.errno()),
            Err(libc::EPERM)
        );
        let mut out = [0u8; 8];
        ro.lookup(&k(0), &mut out).expect("still readable");
        assert_eq!(&out, b"rodata!!");
        // SAFETY: 4-byte key.
        let p = unsafe { ro.prog_lookup(k(0).as_ptr(), 0) };
        assert!(!p.is_null());
    }
}
