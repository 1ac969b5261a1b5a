//! XDP programs in the kernel: `BPF_PROG_LOAD` of raw instructions,
//! `BPF_PROG_TEST_RUN`, and a loaded program's id.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use isa::uapi::attr::{info, prog_load, test};
use isa::uapi::{BPF_OBJ_GET_INFO_BY_FD, BPF_PROG_LOAD, BPF_PROG_TEST_RUN, BPF_PROG_TYPE_XDP};
use isa::RawInsn;

use crate::sys::{bpf, take_fd, Attr};

/// Why the kernel refused a program: its errno and the verifier log (empty when no
/// log was asked for).
#[derive(Debug)]
pub struct Refused {
    pub errno: std::io::Error,
    pub log: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.errno, self.log.trim_end())
    }
}

/// Loads `insns` as an XDP program named `name`. Map references as
/// `BPF_PSEUDO_MAP_IDX`/`_IDX_VALUE` index `fd_array`. With `log_level` above 0 the
/// verifier's log (at most `log_size` bytes) is returned with the descriptor, or with
/// the refusal. The verifier gives up with EAGAIN when a signal is pending; the load
/// is retried then, as libbpf does.
pub fn load(
    name: &str,
    insns: &[RawInsn],
    license: &CStr,
    fd_array: &[i32],
    log_level: u32,
    log_size: usize,
) -> Result<(OwnedFd, String), Refused> {
    let bytes: Vec<u8> = insns.iter().flat_map(|i| i.to_bytes()).collect();
    let mut log = vec![0u8; if log_level == 0 { 0 } else { log_size }];
    let mut a = Attr::default();
    a.set_u32(prog_load::PROG_TYPE, BPF_PROG_TYPE_XDP)
        .set_u32(prog_load::INSN_CNT, insns.len() as u32)
        .set_ptr(prog_load::INSNS, bytes.as_ptr())
        .set_ptr(prog_load::LICENSE, license.as_ptr())
        .set_name(prog_load::PROG_NAME, name);
    if !fd_array.is_empty() {
        a.set_ptr(prog_load::FD_ARRAY, fd_array.as_ptr());
    }
    if log_level != 0 {
        a.set_u32(prog_load::LOG_LEVEL, log_level)
            .set_u32(prog_load::LOG_SIZE, log.len() as u32)
            .set_ptr(prog_load::LOG_BUF, log.as_mut_ptr());
    }
    let mut r = bpf(BPF_PROG_LOAD, &mut a);
    for _ in 0..5 {
        match &r {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => r = bpf(BPF_PROG_LOAD, &mut a),
            _ => break,
        }
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]).into_owned();
    match r {
        Ok(fd) => Ok((take_fd(fd), text)),
        Err(errno) => Err(Refused { errno, log: text }),
    }
}

/// The kernel's answer to one `BPF_PROG_TEST_RUN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRun {
    pub retval: u32,
    /// Average time per run, as the kernel measures it (whole nanoseconds).
    pub duration: Duration,
    /// The frame after the run, from `data_meta` on.
    pub data_out: Vec<u8>,
}

/// Runs the program `repeat` times (0 is 1) on `data`, with an output buffer of
/// `out_size` bytes.
pub fn test_run(
    fd: &OwnedFd,
    data: &[u8],
    repeat: u32,
    out_size: usize,
) -> std::io::Result<TestRun> {
    let mut out = vec![0u8; out_size];
    let mut a = Attr::default();
    a.set_u32(test::PROG_FD, fd.as_raw_fd() as u32)
        .set_u32(test::DATA_SIZE_IN, data.len() as u32)
        .set_u32(test::DATA_SIZE_OUT, out.len() as u32)
        .set_ptr(test::DATA_IN, data.as_ptr())
        .set_ptr(test::DATA_OUT, out.as_mut_ptr())
        .set_u32(test::REPEAT, repeat.max(1));
    bpf(BPF_PROG_TEST_RUN, &mut a)?;
    out.truncate((a.u32(test::DATA_SIZE_OUT) as usize).min(out_size));
    Ok(TestRun {
        retval: a.u32(test::RETVAL),
        duration: Duration::from_nanos(u64::from(a.u32(test::DURATION))),
        data_out: out,
    })
}

/// The kernel's id of a loaded program (`struct bpf_prog_info`'s `id`).
pub fn prog_id(fd: &OwnedFd) -> std::io::Result<u32> {
    /// `offsetof(struct bpf_prog_info, id)`.
    const PROG_INFO_ID: usize = 4;
    let mut buf = [0u8; 256];
    let mut a = Attr::default();
    a.set_u32(info::BPF_FD, fd.as_raw_fd() as u32)
        .set_u32(info::INFO_LEN, buf.len() as u32)
        .set_ptr(info::INFO, buf.as_mut_ptr());
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a)?;
    let mut id = [0u8; 4];
    id.copy_from_slice(&buf[PROG_INFO_ID..PROG_INFO_ID + 4]);
    Ok(u32::from_ne_bytes(id))
}
