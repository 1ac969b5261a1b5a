//! Loading an object into the kernel and test-running it there, through bpf(2).
//!
//! This is the kernel column of `xdp-runner bench`: the same relocated instructions the
//! runtime runs (map references as `BPF_PSEUDO_MAP_IDX`/`_IDX_VALUE`, resolved by the
//! kernel through `fd_array`), its maps created with `BPF_MAP_CREATE` and filled with
//! the object's global data, and `BPF_PROG_TEST_RUN` for the runs. It needs root or
//! CAP_BPF; without them every call returns the kernel's errno.
//!
//! This module holds unsafe code: the bpf(2) system call with `#[repr(C)]` attribute
//! structs that mirror `union bpf_attr` in `include/uapi/linux/bpf.h`.
#![deny(unsafe_op_in_unsafe_fn)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_MAP_FREEZE: libc::c_long = 22;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_F_RDONLY_PROG: u32 = 1 << 7;
const BPF_F_MMAPABLE: u32 = 1 << 10;
const BPF_OBJ_NAME_LEN: usize = 16;
/// Entries per BPF_MAP_UPDATE_BATCH call in [`KernelObject::fill`].
const FILL_BATCH: usize = 1 << 16;

/// Why the kernel refused.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("creating map {map} in the kernel: {source}")]
    MapCreate { map: String, source: std::io::Error },
    #[error("writing the initial data of map {map}: {source}")]
    MapInit { map: String, source: std::io::Error },
    #[error("the kernel rejected program {prog}: {source}\n{log}")]
    ProgLoad {
        prog: String,
        source: std::io::Error,
        log: String,
    },
    #[error("no XDP program named {name} was loaded into the kernel")]
    NoSuchProgram { name: String },
    #[error("BPF_PROG_TEST_RUN of {prog}: {source}")]
    TestRun {
        prog: String,
        source: std::io::Error,
    },
    #[error("no map named {name} was created in the kernel (maps: {available})")]
    NoSuchMap { name: String, available: String },
    #[error("writing key {key} of map {map} in the kernel: {source}")]
    MapUpdate {
        map: String,
        /// The key, as hex bytes in memory order.
        key: String,
        source: std::io::Error,
    },
    #[error("reading map {map} in the kernel: {source}")]
    MapLookup { map: String, source: std::io::Error },
    #[error("map {map}: {len}-byte {what}, the map's is {expected} bytes")]
    EntrySize {
        map: String,
        what: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("map {map} holds at most {max_entries} entries (with {key_size}-byte keys); cannot fill {n}")]
    FillTooLarge {
        map: String,
        n: u64,
        max_entries: u32,
        key_size: u32,
    },
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; BPF_OBJ_NAME_LEN],
    map_ifindex: u32,
    btf_fd: u32,
    btf_key_type_id: u32,
    btf_value_type_id: u32,
    btf_vmlinux_value_type_id: u32,
    map_extra: u64,
}

#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `union bpf_attr`'s `batch` member (the BPF_MAP_*_BATCH commands).
#[repr(C)]
#[derive(Default)]
struct MapBatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; BPF_OBJ_NAME_LEN],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_prog_fd: u32,
    core_relo_cnt: u32,
    fd_array: u64,
}

#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// bpf(cmd, attr, sizeof attr): the new fd or 0, or the kernel's errno.
fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<i64> {
    // SAFETY: `attr` is a live, initialised #[repr(C)] struct laid out as the kernel's
    // union bpf_attr member for `cmd`; the kernel reads at most `size_of::<T>()` bytes
    // and writes only output fields inside it. Pointers inside it reference buffers
    // the caller keeps alive across the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn take_fd(fd: i64) -> OwnedFd {
    // SAFETY: `fd` was just returned by bpf(2) as a new descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// A kernel object name: at most 15 bytes of `[A-Za-z0-9_.]`.
fn obj_name(name: &str) -> [u8; BPF_OBJ_NAME_LEN] {
    let mut out = [0u8; BPF_OBJ_NAME_LEN];
    for (o, c) in out.iter_mut().zip(name.bytes().take(BPF_OBJ_NAME_LEN - 1)) {
        *o = if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' {
            c
        } else {
            b'_'
        };
    }
    out
}

/// One map of a [`KernelObject`].
#[derive(Debug)]
struct KernelMap {
    name: String,
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    fd: OwnedFd,
}

impl KernelMap {
    /// Bytes of a value as user space passes it: per-CPU maps take one 8-byte aligned
    /// slot per possible CPU.
    fn user_value_size(&self) -> usize {
        if is_percpu_type(self.map_type) {
            (self.value_size as usize).div_ceil(8) * 8 * maps::possible_cpus() as usize
        } else {
            self.value_size as usize
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// BPF_MAP_TYPE_PERCPU_HASH, _PERCPU_ARRAY, _LRU_PERCPU_HASH.
fn is_percpu_type(t: u32) -> bool {
    matches!(t, 5 | 6 | 10)
}

/// The bytes of `index` as a little-endian integer, zero-padded or truncated to `size`:
/// the key and the value of entry `index` that [`KernelObject::fill`] writes (and
/// `xdp-runner bench --fill` writes in the runtime's maps).
pub fn fill_bytes(index: u64, size: usize) -> Vec<u8> {
    let mut out = vec![0u8; size];
    let le = index.to_le_bytes();
    let n = size.min(le.len());
    out[..n].copy_from_slice(&le[..n]);
    out
}

/// Whether `n` entries `0..n` fit a map: at most `max_entries`, and distinct keys
/// (a key narrower than 8 bytes holds at most 2^(8*key_size) values).
pub fn fill_fits(n: u64, key_size: u32, max_entries: u32) -> bool {
    let distinct = key_size >= 8 || n <= 1u64 << (8 * key_size);
    distinct && n <= max_entries as u64
}

/// An object's maps and XDP programs, loaded into the kernel. Dropping it closes the
/// descriptors, which unloads everything.
#[derive(Debug)]
pub struct KernelObject {
    maps: Vec<KernelMap>,
    progs: Vec<(String, OwnedFd)>,
}

impl KernelObject {
    /// Creates the object's maps and loads its XDP programs (programs of other types
    /// are skipped).
    pub fn load(object: &loader::Object) -> Result<KernelObject, KernelError> {
        let mut maps = Vec::with_capacity(object.maps.len());
        for spec in &object.maps {
            let mut attr = MapCreateAttr {
                map_type: spec.map_type,
                key_size: spec.key_size,
                value_size: spec.value_size,
                max_entries: spec.max_entries,
                map_flags: spec.map_flags,
                map_name: obj_name(&spec.name),
                ..Default::default()
            };
            let fd = match sys_bpf(BPF_MAP_CREATE, &mut attr) {
                Ok(fd) => take_fd(fd),
                // Kernels without mmapable arrays: retry without the flag.
                Err(_) if attr.map_flags & BPF_F_MMAPABLE != 0 => {
                    attr.map_flags &= !BPF_F_MMAPABLE;
                    let fd = sys_bpf(BPF_MAP_CREATE, &mut attr).map_err(|source| {
                        KernelError::MapCreate {
                            map: spec.name.clone(),
                            source,
                        }
                    })?;
                    take_fd(fd)
                }
                Err(source) => {
                    return Err(KernelError::MapCreate {
                        map: spec.name.clone(),
                        source,
                    })
                }
            };
            if let Some(data) = &spec.initial_data {
                let key = 0u32;
                let mut elem = MapElemAttr {
                    map_fd: fd.as_raw_fd() as u32,
                    key: &key as *const u32 as u64,
                    value: data.as_ptr() as u64,
                    ..Default::default()
                };
                sys_bpf(BPF_MAP_UPDATE_ELEM, &mut elem).map_err(|source| KernelError::MapInit {
                    map: spec.name.clone(),
                    source,
                })?;
                if spec.map_flags & BPF_F_RDONLY_PROG != 0 {
                    let mut freeze = MapElemAttr {
                        map_fd: fd.as_raw_fd() as u32,
                        ..Default::default()
                    };
                    sys_bpf(BPF_MAP_FREEZE, &mut freeze).map_err(|source| {
                        KernelError::MapInit {
                            map: spec.name.clone(),
                            source,
                        }
                    })?;
                }
            }
            maps.push(KernelMap {
                name: spec.name.clone(),
                map_type: spec.map_type,
                key_size: spec.key_size,
                value_size: spec.value_size,
                max_entries: spec.max_entries,
                fd,
            });
        }
        let fd_array: Vec<i32> = maps.iter().map(|m| m.fd.as_raw_fd()).collect();
        let license = std::ffi::CString::new(object.license.as_bytes()).unwrap_or_default();
        let mut progs = Vec::new();
        for p in object
            .programs
            .iter()
            .filter(|p| matches!(p.prog_type, loader::ProgramType::Xdp))
        {
            progs.push((
                p.name.clone(),
                prog_load(&p.name, &p.insns, &license, &fd_array)?,
            ));
        }
        Ok(KernelObject { maps, progs })
    }

    /// The object's maps, by name, in the object's order.
    pub fn map_names(&self) -> impl Iterator<Item = &str> {
        self.maps.iter().map(|m| m.name.as_str())
    }

    /// The descriptor of map `name`, e.g. to mmap a ring buffer's records.
    pub fn map_fd(&self, name: &str) -> Result<std::os::fd::BorrowedFd<'_>, KernelError> {
        use std::os::fd::AsFd;
        Ok(self.map(name)?.fd.as_fd())
    }

    fn map(&self, name: &str) -> Result<&KernelMap, KernelError> {
        self.maps
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| KernelError::NoSuchMap {
                name: name.to_string(),
                available: self
                    .maps
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    fn check_sizes(m: &KernelMap, key: &[u8], value: Option<&[u8]>) -> Result<(), KernelError> {
        let size_err = |what, len, expected| KernelError::EntrySize {
            map: m.name.clone(),
            what,
            len,
            expected,
        };
        if key.len() != m.key_size as usize {
            return Err(size_err("key", key.len(), m.key_size as usize));
        }
        match value {
            Some(v) if v.len() != m.user_value_size() => {
                Err(size_err("value", v.len(), m.user_value_size()))
            }
            _ => Ok(()),
        }
    }

    /// BPF_MAP_UPDATE_ELEM on map `name`. For a per-CPU map `value` holds one 8-byte
    /// aligned slot per possible CPU, as the kernel takes it.
    pub fn update_elem(
        &self,
        name: &str,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), KernelError> {
        let m = self.map(name)?;
        KernelObject::check_sizes(m, key, Some(value))?;
        let mut attr = MapElemAttr {
            map_fd: m.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            flags,
            ..Default::default()
        };
        sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
            .map(|_| ())
            .map_err(|source| KernelError::MapUpdate {
                map: name.to_string(),
                key: hex(key),
                source,
            })
    }

    /// BPF_MAP_LOOKUP_ELEM on map `name`: the value (every CPU's slot for a per-CPU
    /// map), or `None` when the key is absent.
    pub fn lookup_elem(&self, name: &str, key: &[u8]) -> Result<Option<Vec<u8>>, KernelError> {
        let m = self.map(name)?;
        KernelObject::check_sizes(m, key, None)?;
        let mut value = vec![0u8; m.user_value_size()];
        let mut attr = MapElemAttr {
            map_fd: m.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            ..Default::default()
        };
        match sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
            Ok(_) => Ok(Some(value)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(source) => Err(KernelError::MapLookup {
                map: name.to_string(),
                source,
            }),
        }
    }

    /// Every key of map `name`, in the kernel's order (BPF_MAP_GET_NEXT_KEY from no
    /// key on), at most `max_entries` of them.
    pub fn keys(&self, name: &str) -> Result<Vec<Vec<u8>>, KernelError> {
        let m = self.map(name)?;
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut next = vec![0u8; m.key_size as usize];
        while out.len() < m.max_entries as usize {
            let mut attr = MapElemAttr {
                map_fd: m.fd.as_raw_fd() as u32,
                key: out.last().map_or(0, |k| k.as_ptr() as u64),
                value: next.as_mut_ptr() as u64,
                ..Default::default()
            };
            match sys_bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
                Ok(_) => out.push(next.clone()),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
                Err(source) => {
                    return Err(KernelError::MapLookup {
                        map: name.to_string(),
                        source,
                    })
                }
            }
        }
        Ok(out)
    }

    /// Writes entries `0..n` of map `name`: key [`fill_bytes`]`(i, key_size)`, value
    /// `fill_bytes(i, value_size)` (in every CPU's slot of a per-CPU map), with
    /// BPF_MAP_UPDATE_BATCH in chunks, and BPF_MAP_UPDATE_ELEM from where a batch
    /// stopped (kernels or map types without batch updates).
    pub fn fill(&self, name: &str, n: u64) -> Result<(), KernelError> {
        let m = self.map(name)?;
        if !fill_fits(n, m.key_size, m.max_entries) {
            return Err(KernelError::FillTooLarge {
                map: name.to_string(),
                n,
                max_entries: m.max_entries,
                key_size: m.key_size,
            });
        }
        let (ks, vs) = (m.key_size as usize, m.user_value_size());
        let slot = if is_percpu_type(m.map_type) {
            (m.value_size as usize).div_ceil(8) * 8
        } else {
            vs
        };
        let mut keys = Vec::with_capacity(FILL_BATCH * ks);
        let mut values = Vec::with_capacity(FILL_BATCH * vs);
        let mut start = 0u64;
        let mut batch_ok = true;
        while start < n {
            let count = (n - start).min(FILL_BATCH as u64) as usize;
            keys.clear();
            values.clear();
            for i in start..start + count as u64 {
                keys.extend_from_slice(&fill_bytes(i, ks));
                let v = fill_bytes(i, m.value_size as usize);
                for _ in 0..vs / slot {
                    values.extend_from_slice(&v);
                    values.resize(values.len() + slot - v.len(), 0);
                }
            }
            let mut done = 0usize;
            if batch_ok {
                let mut attr = MapBatchAttr {
                    keys: keys.as_ptr() as u64,
                    values: values.as_ptr() as u64,
                    count: count as u32,
                    map_fd: m.fd.as_raw_fd() as u32,
                    ..Default::default()
                };
                match sys_bpf(BPF_MAP_UPDATE_BATCH, &mut attr) {
                    Ok(_) => done = count,
                    Err(_) => {
                        // The kernel reports how many it wrote; go on one by one.
                        done = (attr.count as usize).min(count);
                        batch_ok = false;
                    }
                }
            }
            for j in done..count {
                let mut attr = MapElemAttr {
                    map_fd: m.fd.as_raw_fd() as u32,
                    key: keys[j * ks..].as_ptr() as u64,
                    value: values[j * vs..].as_ptr() as u64,
                    ..Default::default()
                };
                sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map_err(|source| {
                    KernelError::MapUpdate {
                        map: name.to_string(),
                        key: hex(&keys[j * ks..(j + 1) * ks]),
                        source,
                    }
                })?;
            }
            start += count as u64;
        }
        Ok(())
    }

    /// The loaded XDP programs, by name.
    pub fn program_names(&self) -> impl Iterator<Item = &str> {
        self.progs.iter().map(|(n, _)| n.as_str())
    }

    /// Runs program `name` `repeat` times on `data` with BPF_PROG_TEST_RUN and returns
    /// the return value, the kernel's average duration per run, and the output packet.
    pub fn test_run(&self, name: &str, data: &[u8], repeat: u32) -> Result<KernelRun, KernelError> {
        let fd = self
            .progs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, fd)| fd)
            .ok_or_else(|| KernelError::NoSuchProgram {
                name: name.to_string(),
            })?;
        test_run_fd(fd, name, data, repeat)
    }
}

/// Loads one XDP program; on failure the error carries the verifier log's tail.
fn prog_load(
    name: &str,
    insns: &[isa::RawInsn],
    license: &std::ffi::CStr,
    fd_array: &[i32],
) -> Result<OwnedFd, KernelError> {
    let bytes: Vec<u8> = insns.iter().flat_map(|i| i.to_bytes()).collect();
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: bytes.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: obj_name(name),
        fd_array: if fd_array.is_empty() {
            0
        } else {
            fd_array.as_ptr() as u64
        },
        ..Default::default()
    };
    match sys_bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(take_fd(fd)),
        Err(source) => {
            // Load again with a log for the error message.
            let mut log = vec![0u8; 1 << 20];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let _ = sys_bpf(BPF_PROG_LOAD, &mut attr);
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let tail: Vec<&str> = text.lines().rev().take(12).collect();
            let log = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
            Err(KernelError::ProgLoad {
                prog: name.to_string(),
                source,
                log,
            })
        }
    }
}

fn test_run_fd(
    fd: &OwnedFd,
    name: &str,
    data: &[u8],
    repeat: u32,
) -> Result<KernelRun, KernelError> {
    let mut out = vec![0u8; 4096 * 20];
    let mut attr = TestRunAttr {
        prog_fd: fd.as_raw_fd() as u32,
        data_size_in: data.len() as u32,
        data_size_out: out.len() as u32,
        data_in: data.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat: repeat.max(1),
        ..Default::default()
    };
    sys_bpf(BPF_PROG_TEST_RUN, &mut attr).map_err(|source| KernelError::TestRun {
        prog: name.to_string(),
        source,
    })?;
    out.truncate(attr.data_size_out as usize);
    Ok(KernelRun {
        retval: attr.retval,
        duration: Duration::from_nanos(attr.duration as u64),
        data_out: out,
    })
}

/// The kernel's answer to one BPF_PROG_TEST_RUN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelRun {
    pub retval: u32,
    /// Average time per run, as the kernel measures it (whole nanoseconds).
    pub duration: Duration,
    pub data_out: Vec<u8>,
}

/// Whether this process may load programs into the kernel: `Err` says why not.
pub fn available() -> Result<(), String> {
    // The smallest valid XDP program: r0 = 2 (XDP_PASS); exit.
    let insns = [
        isa::RawInsn::new(0xb7, 0, 0, 0, 2),
        isa::RawInsn::new(0x95, 0, 0, 0, 0),
    ];
    let fd = prog_load("probe", &insns, c"GPL", &[]).map_err(|e| e.to_string())?;
    test_run_fd(&fd, "probe", &[0u8; 64], 1)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_truncated_and_sanitised() {
        assert_eq!(&obj_name("abc")[..4], b"abc\0");
        assert_eq!(
            &obj_name("a-very-long-program-name")[..],
            b"a_very_long_pro\0"
        );
    }

    #[test]
    fn attribute_layouts_match_the_uapi_header() {
        // Offsets of the last fields used, from include/uapi/linux/bpf.h.
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, fd_array), 120);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(std::mem::offset_of!(TestRunAttr, repeat), 32);
        assert_eq!(std::mem::offset_of!(TestRunAttr, ctx_in), 48);
        assert_eq!(std::mem::offset_of!(MapCreateAttr, map_name), 28);
        assert_eq!(std::mem::offset_of!(MapCreateAttr, map_extra), 64);
        assert_eq!(std::mem::offset_of!(MapBatchAttr, count), 32);
        assert_eq!(std::mem::offset_of!(MapBatchAttr, map_fd), 36);
        assert_eq!(std::mem::offset_of!(MapBatchAttr, flags), 48);
    }

    #[test]
    fn fill_entries_are_little_endian_indices() {
        assert_eq!(fill_bytes(0x0102, 4), vec![2, 1, 0, 0]);
        assert_eq!(fill_bytes(0x0102, 8), vec![2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(fill_bytes(0x0102, 1), vec![2]);
        assert_eq!(fill_bytes(7, 10), vec![7, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(fill_fits(1 << 20, 4, 1 << 20));
        assert!(!fill_fits((1 << 20) + 1, 4, 1 << 20));
        assert!(fill_fits(256, 1, 1000));
        assert!(!fill_fits(257, 1, 1000), "1-byte keys repeat after 256");
        assert!(fill_fits(0, 4, 0));
    }

    fn load_prog(name: &str) -> KernelObject {
        let bytes = std::fs::read(format!(
            "{}/../bpf-progs/obj/{name}.o",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let object = loader::Object::parse(&bytes).unwrap();
        KernelObject::load(&object).unwrap()
    }

    #[test]
    fn fill_writes_every_key_in_the_kernel() {
        if let Err(why) = available() {
            println!("SKIP: kernel map fill: {why}");
            return;
        }
        // 150,000 entries: two full batches and a partial one.
        let k = load_prog("xdp_map_heavy");
        assert!(k.map_names().any(|m| m == "big_map"));
        let n = 150_000u64;
        k.fill("big_map", n).unwrap();
        for i in [0u64, 1, 65_535, 65_536, 149_999] {
            let key = (i as u32).to_le_bytes();
            let v = k.lookup_elem("big_map", &key).unwrap();
            assert_eq!(v, Some(i.to_le_bytes().to_vec()), "key {i}");
        }
        let absent = (n as u32).to_le_bytes();
        assert_eq!(k.lookup_elem("big_map", &absent).unwrap(), None);
        // The probe program sees key 2^20 - 1 only once it is filled with its number.
        let frame = std::fs::read(format!(
            "{}/../bpf-progs/packets/icmp.bin",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert_eq!(k.test_run("xdp_map_probe", &frame, 1).unwrap().retval, 1);
        k.fill("big_map", 1 << 20).unwrap();
        assert_eq!(k.test_run("xdp_map_probe", &frame, 1).unwrap().retval, 2);
        assert!(matches!(
            k.fill("big_map", (1 << 20) + 1),
            Err(KernelError::FillTooLarge { .. })
        ));
        assert!(matches!(
            k.fill("stats", 3),
            Err(KernelError::FillTooLarge { max_entries: 2, .. })
        ));
        assert!(matches!(
            k.fill("nope", 1),
            Err(KernelError::NoSuchMap { .. })
        ));
        k.update_elem("big_map", &absent, &[9, 0, 0, 0, 0, 0, 0, 0], 0)
            .unwrap();
        assert!(matches!(
            k.update_elem("big_map", &absent, &[9], 0),
            Err(KernelError::EntrySize { what: "value", .. })
        ));
    }

    #[test]
    fn fill_spreads_per_cpu_values() {
        if let Err(why) = available() {
            println!("SKIP: kernel per-CPU map fill: {why}");
            return;
        }
        let k = load_prog("xdp_stats");
        // proto_stats: PERCPU_HASH, u32 -> 16-byte struct datarec.
        k.fill("proto_stats", 10).unwrap();
        let v = k
            .lookup_elem("proto_stats", &9u32.to_le_bytes())
            .unwrap()
            .unwrap();
        let ncpus = maps::possible_cpus() as usize;
        assert_eq!(v.len(), 16 * ncpus);
        for slot in v.chunks(16) {
            assert_eq!(slot, &fill_bytes(9, 16)[..]);
        }
        // action_stats: PERCPU_ARRAY of 5; every slot is present, filled ones hold i.
        k.fill("action_stats", 5).unwrap();
        let v = k
            .lookup_elem("action_stats", &4u32.to_le_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(&v[..16], &fill_bytes(4, 16)[..]);
        assert!(matches!(
            k.fill("action_stats", 6),
            Err(KernelError::FillTooLarge { .. })
        ));
    }

    #[test]
    fn a_tiny_program_runs_in_the_kernel() {
        if let Err(why) = available() {
            println!("SKIP: kernel test run: {why}");
            return;
        }
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../bpf-progs/obj/xdp_counter.o"
        ))
        .unwrap();
        let object = loader::Object::parse(&bytes).unwrap();
        let k = KernelObject::load(&object).unwrap();
        let mut frame = vec![0u8; 60];
        frame[..6].copy_from_slice(&[1, 1, 1, 1, 1, 1]);
        frame[6..12].copy_from_slice(&[2, 2, 2, 2, 2, 2]);
        let run = k.test_run("xdp_counter", &frame, 1).unwrap();
        assert_eq!(run.retval, 3, "XDP_TX");
        assert_eq!(&run.data_out[..12], &[2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1]);
        assert!(matches!(
            k.test_run("nope", &frame, 1),
            Err(KernelError::NoSuchProgram { .. })
        ));
    }
}
