//! Helpers about the running task and time that XDP programs may call:
//! bpf_get_current_pid_tgid, _uid_gid, _comm (the process and thread running the
//! program, as the kernel's test run answers for the process that called
//! BPF_PROG_TEST_RUN), bpf_get_numa_node_id, bpf_ktime_get_tai_ns, bpf_jiffies64,
//! and bpf_strncmp.

use super::{neg_errno, HelperCtx};
use crate::error::TrapKind;

use isa::helpers::func::{get_current_comm as GET_COMM, strncmp as STRNCMP};

/// The kernel's HZ that `bpf_jiffies64` counts at: 250, the default of the
/// common distribution kernels (CONFIG_HZ_250).
pub const JIFFIES_HZ: u64 = 250;

/// The kernel's INITIAL_JIFFIES for [`JIFFIES_HZ`]: jiffies start 5 minutes
/// before the 32-bit counter wraps, `(u32)(-300 * HZ)`.
const INITIAL_JIFFIES: u64 = (-(300 * JIFFIES_HZ as i64)) as u32 as u64;

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; clock_gettime has no other effects.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `(tgid << 32) | pid` of the thread running the program.
pub(super) fn get_current_pid_tgid(
    _: &mut HelperCtx<'_, '_>,
    _: [u64; 5],
) -> Result<u64, TrapKind> {
    // SAFETY: getpid and gettid have no preconditions.
    let (tgid, tid) = unsafe { (libc::getpid(), libc::gettid()) };
    Ok(((tgid as u32 as u64) << 32) | tid as u32 as u64)
}

/// `(gid << 32) | uid` of the process running the program.
pub(super) fn get_current_uid_gid(_: &mut HelperCtx<'_, '_>, _: [u64; 5]) -> Result<u64, TrapKind> {
    // SAFETY: getuid and getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    Ok((u64::from(gid) << 32) | u64::from(uid))
}

/// `bpf_get_current_comm(buf, size)`: the thread's name, NUL-terminated and
/// zero-padded to `size` bytes (`strscpy_pad`), 0.
pub(super) fn get_current_comm(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let size = a[1] as u32 as u64;
    let mut comm = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes (TASK_COMM_LEN) to `comm`.
    unsafe { libc::prctl(libc::PR_GET_NAME, comm.as_mut_ptr()) };
    let buf = ctx.bytes_mut(GET_COMM, a[0], size)?;
    if buf.is_empty() {
        return Ok(neg_errno(libc::EINVAL));
    }
    let name_len = comm.iter().position(|&b| b == 0).unwrap_or(15).min(15);
    let n = name_len.min(buf.len() - 1);
    buf.fill(0);
    buf[..n].copy_from_slice(&comm[..n]);
    Ok(0)
}

/// The runtime presents one NUMA node.
pub(super) fn get_numa_node_id(_: &mut HelperCtx<'_, '_>, _: [u64; 5]) -> Result<u64, TrapKind> {
    Ok(0)
}

/// CLOCK_TAI in nanoseconds.
pub(super) fn ktime_get_tai_ns(_: &mut HelperCtx<'_, '_>, _: [u64; 5]) -> Result<u64, TrapKind> {
    Ok(clock_ns(libc::CLOCK_TAI))
}

/// The kernel's jiffies_64 at [`JIFFIES_HZ`]: INITIAL_JIFFIES plus the ticks of
/// CLOCK_MONOTONIC (which, like jiffies, stops in suspend).
pub(super) fn jiffies64(_: &mut HelperCtx<'_, '_>, _: [u64; 5]) -> Result<u64, TrapKind> {
    let ticks = clock_ns(libc::CLOCK_MONOTONIC_COARSE) / (1_000_000_000 / JIFFIES_HZ);
    Ok(INITIAL_JIFFIES.wrapping_add(ticks))
}

/// `bpf_strncmp(s1, s1_sz, s2)`: the kernel's strncmp over at most `s1_sz` bytes,
/// -1, 0 or 1. `s2` is read byte by byte up to its NUL (each byte checked).
pub(super) fn strncmp(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let n = a[1] as u32 as u64;
    let s1 = ctx.bytes(STRNCMP, a[0], n)?;
    for (i, &c1) in s1.iter().enumerate() {
        let c2 = ctx.bytes(STRNCMP, a[2].wrapping_add(i as u64), 1)?[0];
        if c1 != c2 {
            return Ok(if c1 < c2 { -1i64 as u64 } else { 1 });
        }
        if c1 == 0 {
            break;
        }
    }
    Ok(0)
}
