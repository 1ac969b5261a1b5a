//! An object loaded into the kernel: the same relocated instructions the runtime runs
//! (map references as `BPF_PSEUDO_MAP_IDX`/`_IDX_VALUE`, resolved by the kernel
//! through `fd_array`), its maps created with `BPF_MAP_CREATE` and filled with the
//! object's global data, and `BPF_PROG_TEST_RUN` for the runs. This is the kernel
//! column of `xdp-runner bench` and of the bench crate, with its `--fill`.

use std::os::fd::{AsRawFd, OwnedFd};

use isa::uapi::attr::{batch, map_create, map_elem};
use isa::uapi::{
    is_percpu_map_type, BPF_F_MMAPABLE, BPF_F_RDONLY_PROG, BPF_MAP_CREATE, BPF_MAP_FREEZE,
    BPF_MAP_GET_NEXT_KEY, BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_BATCH, BPF_MAP_UPDATE_ELEM,
};

use crate::error::KernelError;
use crate::prog::{self, TestRun};
use crate::sys::{bpf, take_fd, Attr};

/// Entries per BPF_MAP_UPDATE_BATCH call in [`KernelObject::fill`].
const FILL_BATCH: usize = 1 << 16;

/// The output buffer of a test run: the largest frame with fragments.
const TEST_RUN_OUT: usize = 4096 * 20;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        crate::user_value_size(self.map_type, self.value_size)
    }
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
            let mut attr = Attr::default();
            attr.set_u32(map_create::MAP_TYPE, spec.map_type)
                .set_u32(map_create::KEY_SIZE, spec.key_size)
                .set_u32(map_create::VALUE_SIZE, spec.value_size)
                .set_u32(map_create::MAX_ENTRIES, spec.max_entries)
                .set_u32(map_create::MAP_FLAGS, spec.map_flags)
                .set_name(map_create::MAP_NAME, &spec.name);
            let fd = match bpf(BPF_MAP_CREATE, &mut attr) {
                Ok(fd) => take_fd(fd),
                // Kernels without mmapable arrays: retry without the flag.
                Err(_) if spec.map_flags & BPF_F_MMAPABLE != 0 => {
                    attr.set_u32(map_create::MAP_FLAGS, spec.map_flags & !BPF_F_MMAPABLE);
                    let fd = bpf(BPF_MAP_CREATE, &mut attr).map_err(|source| {
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
                let mut elem = Attr::default();
                elem.set_u32(map_elem::MAP_FD, fd.as_raw_fd() as u32)
                    .set_ptr(map_elem::KEY, &key)
                    .set_ptr(map_elem::VALUE, data.as_ptr());
                bpf(BPF_MAP_UPDATE_ELEM, &mut elem).map_err(|source| KernelError::MapInit {
                    map: spec.name.clone(),
                    source,
                })?;
                if spec.map_flags & BPF_F_RDONLY_PROG != 0 {
                    let mut freeze = Attr::default();
                    freeze.set_u32(map_elem::MAP_FD, fd.as_raw_fd() as u32);
                    bpf(BPF_MAP_FREEZE, &mut freeze).map_err(|source| KernelError::MapInit {
                        map: spec.name.clone(),
                        source,
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
                load_prog(&p.name, &p.insns, &license, &fd_array)?,
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
        let mut attr = Attr::default();
        attr.set_u32(map_elem::MAP_FD, m.fd.as_raw_fd() as u32)
            .set_ptr(map_elem::KEY, key.as_ptr())
            .set_ptr(map_elem::VALUE, value.as_ptr())
            .set_u64(map_elem::FLAGS, flags);
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
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
        let mut attr = Attr::default();
        attr.set_u32(map_elem::MAP_FD, m.fd.as_raw_fd() as u32)
            .set_ptr(map_elem::KEY, key.as_ptr())
            .set_ptr(map_elem::VALUE, value.as_mut_ptr());
        match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
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
            let mut attr = Attr::default();
            attr.set_u32(map_elem::MAP_FD, m.fd.as_raw_fd() as u32)
                .set_ptr(map_elem::VALUE, next.as_mut_ptr());
            if let Some(k) = out.last() {
                attr.set_ptr(map_elem::KEY, k.as_ptr());
            }
            match bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
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

    /// Writes entries `0..n` of map `name`: key [`maps::fill_bytes`]`(i, key_size)`, value
    /// `maps::fill_bytes(i, value_size)` (in every CPU's slot of a per-CPU map), with
    /// BPF_MAP_UPDATE_BATCH in chunks, and BPF_MAP_UPDATE_ELEM from where a batch
    /// stopped (kernels or map types without batch updates).
    pub fn fill(&self, name: &str, n: u64) -> Result<(), KernelError> {
        let m = self.map(name)?;
        if !maps::fill_fits(n, m.key_size, m.max_entries) {
            return Err(KernelError::FillTooLarge {
                map: name.to_string(),
                n,
                max_entries: m.max_entries,
                key_size: m.key_size,
            });
        }
        let (ks, vs) = (m.key_size as usize, m.user_value_size());
        let slot = if is_percpu_map_type(m.map_type) {
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
                keys.extend_from_slice(&maps::fill_bytes(i, ks));
                let v = maps::fill_bytes(i, m.value_size as usize);
                for _ in 0..vs / slot {
                    values.extend_from_slice(&v);
                    values.resize(values.len() + slot - v.len(), 0);
                }
            }
            let mut done = 0usize;
            if batch_ok {
                let mut attr = Attr::default();
                attr.set_ptr(batch::KEYS, keys.as_ptr())
                    .set_ptr(batch::VALUES, values.as_ptr())
                    .set_u32(batch::COUNT, count as u32)
                    .set_u32(batch::MAP_FD, m.fd.as_raw_fd() as u32);
                match bpf(BPF_MAP_UPDATE_BATCH, &mut attr) {
                    Ok(_) => done = count,
                    Err(_) => {
                        // The kernel reports how many it wrote; go on one by one.
                        done = (attr.u32(batch::COUNT) as usize).min(count);
                        batch_ok = false;
                    }
                }
            }
            for j in done..count {
                let mut attr = Attr::default();
                attr.set_u32(map_elem::MAP_FD, m.fd.as_raw_fd() as u32)
                    .set_ptr(map_elem::KEY, keys[j * ks..].as_ptr())
                    .set_ptr(map_elem::VALUE, values[j * vs..].as_ptr());
                bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map_err(|source| KernelError::MapUpdate {
                    map: name.to_string(),
                    key: hex(&keys[j * ks..(j + 1) * ks]),
                    source,
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
    pub fn test_run(&self, name: &str, data: &[u8], repeat: u32) -> Result<TestRun, KernelError> {
        let fd = self
            .progs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, fd)| fd)
            .ok_or_else(|| KernelError::NoSuchProgram {
                name: name.to_string(),
            })?;
        prog::test_run(fd, data, repeat, TEST_RUN_OUT).map_err(|source| KernelError::TestRun {
            prog: name.to_string(),
            source,
        })
    }
}

/// Loads one XDP program; on failure the error carries the verifier log's tail.
fn load_prog(
    name: &str,
    insns: &[isa::RawInsn],
    license: &std::ffi::CStr,
    fd_array: &[i32],
) -> Result<OwnedFd, KernelError> {
    match prog::load(name, insns, license, fd_array, 0, 0) {
        Ok((fd, _)) => Ok(fd),
        Err(refused) => {
            // Load again with a log for the error message.
            let log = match prog::load(name, insns, license, fd_array, 1, 1 << 20) {
                Err(r) => r.log,
                Ok(_) => String::new(),
            };
            let tail: Vec<&str> = log.lines().rev().take(12).collect();
            Err(KernelError::ProgLoad {
                prog: name.to_string(),
                source: refused.errno,
                log: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::available;

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
            crate::skip("kernel map fill", &why);
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
            crate::skip("kernel per-CPU map fill", &why);
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
            // Entry 9: the value 9 as a 16-byte little-endian integer, in every slot.
            assert_eq!(slot, &[9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]);
        }
        // action_stats: PERCPU_ARRAY of 5; every slot is present, filled ones hold i.
        k.fill("action_stats", 5).unwrap();
        let v = k
            .lookup_elem("action_stats", &4u32.to_le_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(
            &v[..16],
            &[4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]
        );
        // Every CPU's slot, not only the first.
        for slot in v.chunks(16) {
            assert_eq!(slot, &v[..16]);
        }
        assert!(matches!(
            k.fill("action_stats", 6),
            Err(KernelError::FillTooLarge { .. })
        ));
    }

    #[test]
    fn a_tiny_program_runs_in_the_kernel() {
        if let Err(why) = available() {
            crate::skip("kernel test run", &why);
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
