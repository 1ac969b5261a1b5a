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
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_MAP_FREEZE: libc::c_long = 22;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_F_RDONLY_PROG: u32 = 1 << 7;
const BPF_F_MMAPABLE: u32 = 1 << 10;
const BPF_OBJ_NAME_LEN: usize = 16;

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

/// An object's maps and XDP programs, loaded into the kernel. Dropping it closes the
/// descriptors, which unloads everything.
#[derive(Debug)]
pub struct KernelObject {
    _maps: Vec<OwnedFd>,
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
            maps.push(fd);
        }
        let fd_array: Vec<i32> = maps.iter().map(|fd| fd.as_raw_fd()).collect();
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
        Ok(KernelObject { _maps: maps, progs })
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
