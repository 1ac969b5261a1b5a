//! Maps in the kernel through bpf(2), element by element, with the kernel's errno
//! as the answer: the other side of the store's differential tests.

use std::os::fd::{AsRawFd, OwnedFd};

use isa::uapi::attr::{map_create, map_elem};
use isa::uapi::{
    BPF_MAP_CREATE, BPF_MAP_DELETE_ELEM, BPF_MAP_GET_NEXT_KEY, BPF_MAP_LOOKUP_AND_DELETE_ELEM,
    BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM,
};

use crate::sys::{bpf, take_fd, Attr};

/// What `BPF_MAP_CREATE` takes here.
#[derive(Clone, Copy, Debug, Default)]
pub struct MapParams<'a> {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    /// The inner map template of a map of maps.
    pub inner_map_fd: Option<i32>,
    pub name: &'a str,
}

/// A kernel map; dropping it closes the descriptor.
#[derive(Debug)]
pub struct RawMap {
    fd: OwnedFd,
    key_size: usize,
    /// Bytes of a value as user space passes it (every CPU's slot for per-CPU maps).
    value_len: usize,
}

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl RawMap {
    /// `BPF_MAP_CREATE`; `Err` is the kernel's errno.
    pub fn create(p: &MapParams<'_>) -> Result<RawMap, i32> {
        let mut a = Attr::default();
        a.set_u32(map_create::MAP_TYPE, p.map_type)
            .set_u32(map_create::KEY_SIZE, p.key_size)
            .set_u32(map_create::VALUE_SIZE, p.value_size)
            .set_u32(map_create::MAX_ENTRIES, p.max_entries)
            .set_u32(map_create::MAP_FLAGS, p.map_flags)
            .set_name(map_create::MAP_NAME, p.name);
        if let Some(fd) = p.inner_map_fd {
            a.set_u32(map_create::INNER_MAP_FD, fd as u32);
        }
        let fd = bpf(BPF_MAP_CREATE, &mut a).map_err(errno)?;
        Ok(RawMap {
            fd: take_fd(fd),
            key_size: p.key_size as usize,
            value_len: crate::user_value_size(p.map_type, p.value_size),
        })
    }

    /// The descriptor (e.g. as the inner map template of another map).
    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    fn elem(&self, cmd: u32, key: Option<&[u8]>, value: *const u8, flags: u64) -> Result<(), i32> {
        let mut a = Attr::default();
        a.set_u32(map_elem::MAP_FD, self.fd() as u32)
            // A map without keys (queue, stack, bloom filter) takes a NULL key
            // (any other pointer is EINVAL), as libbpf passes it.
            .set_ptr(
                map_elem::KEY,
                key.filter(|k| !k.is_empty())
                    .map_or(std::ptr::null(), <[u8]>::as_ptr),
            )
            .set_ptr(map_elem::VALUE, value)
            .set_u64(map_elem::FLAGS, flags);
        bpf(cmd, &mut a).map(|_| ()).map_err(errno)
    }

    /// `BPF_MAP_LOOKUP_ELEM` into `out`, which holds a whole value (every CPU's slot
    /// for a per-CPU map).
    pub fn lookup(&self, key: &[u8], out: &mut [u8]) -> Result<(), i32> {
        self.check_key(key)?;
        if out.len() < self.value_len {
            return Err(libc::EINVAL);
        }
        self.elem(BPF_MAP_LOOKUP_ELEM, Some(key), out.as_mut_ptr(), 0)
    }

    /// `BPF_MAP_LOOKUP_AND_DELETE_ELEM` into `out` (a queue's or stack's pop).
    pub fn lookup_and_delete(&self, key: &[u8], out: &mut [u8]) -> Result<(), i32> {
        self.check_key(key)?;
        if out.len() < self.value_len {
            return Err(libc::EINVAL);
        }
        self.elem(
            BPF_MAP_LOOKUP_AND_DELETE_ELEM,
            Some(key),
            out.as_mut_ptr(),
            0,
        )
    }

    /// `BPF_MAP_UPDATE_ELEM`.
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), i32> {
        self.check_key(key)?;
        if value.len() < self.value_len {
            return Err(libc::EINVAL);
        }
        self.elem(BPF_MAP_UPDATE_ELEM, Some(key), value.as_ptr(), flags)
    }

    /// `BPF_MAP_DELETE_ELEM`.
    pub fn delete(&self, key: &[u8]) -> Result<(), i32> {
        self.check_key(key)?;
        self.elem(BPF_MAP_DELETE_ELEM, Some(key), std::ptr::null(), 0)
    }

    /// `BPF_MAP_GET_NEXT_KEY` after `key` (the first key for `None`) into `out`.
    pub fn next_key(&self, key: Option<&[u8]>, out: &mut [u8]) -> Result<(), i32> {
        if let Some(k) = key {
            self.check_key(k)?;
        }
        if out.len() < self.key_size {
            return Err(libc::EINVAL);
        }
        self.elem(BPF_MAP_GET_NEXT_KEY, key, out.as_mut_ptr(), 0)
    }

    /// Every key, in the kernel's `get_next_key` order.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut cur: Option<Vec<u8>> = None;
        let mut next = vec![0u8; self.key_size];
        while self.next_key(cur.as_deref(), &mut next).is_ok() {
            out.push(next.clone());
            cur = Some(next.clone());
        }
        out
    }

    /// Bytes of a value as user space passes it.
    pub fn value_len(&self) -> usize {
        self.value_len
    }

    /// The kernel reads `key_size` bytes at the key pointer: a shorter slice is
    /// refused here rather than read past (as are short value buffers above).
    fn check_key(&self, key: &[u8]) -> Result<(), i32> {
        if key.len() < self.key_size {
            Err(libc::EINVAL)
        } else {
            Ok(())
        }
    }
}
