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

/// The kernel's `__bpf_strtoull` over `buf`: the characters consumed, the value
/// and its sign, or an errno (EINVAL for flags, an empty or digitless string,
/// ERANGE for an overflow).
fn strtoull(buf: &[u8], flags: u64) -> Result<(u64, u64, bool), i32> {
    let mut base = (flags & 0x1f) as u32;
    if buf.is_empty() || !matches!(base, 0 | 8 | 10 | 16) || flags & !0x1f != 0 {
        return Err(libc::EINVAL);
    }
    let isspace = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let mut i = buf.iter().take_while(|&&c| isspace(c)).count();
    let negative = buf.get(i) == Some(&b'-');
    if negative {
        i += 1;
    }
    let consumed = i;
    if consumed == buf.len() {
        return Err(libc::EINVAL);
    }
    // The kernel copies at most 63 bytes into a NUL-terminated buffer.
    let mut s = [0u8; 64];
    let n = (buf.len() - consumed).min(63);
    s[..n].copy_from_slice(&buf[consumed..consumed + n]);
    let mut p = 0;
    let lower = |c: u8| c.to_ascii_lowercase();
    if base == 0 {
        base = if s[0] == b'0' {
            if lower(s[1]) == b'x' && s[2].is_ascii_hexdigit() {
                16
            } else {
                8
            }
        } else {
            10
        };
    }
    if base == 16 && s[0] == b'0' && lower(s[1]) == b'x' {
        p = 2;
    }
    // _parse_integer: digits below the base; an overflow is remembered.
    let (mut v, mut overflow, start) = (0u64, false, p);
    while p < s.len() {
        let d = match s[p] {
            c @ b'0'..=b'9' => u32::from(c - b'0'),
            c @ (b'a'..=b'f' | b'A'..=b'F') => u32::from(lower(c) - b'a') + 10,
            _ => break,
        };
        if d >= base {
            break;
        }
        match v
            .checked_mul(u64::from(base))
            .and_then(|x| x.checked_add(u64::from(d)))
        {
            Some(x) => v = x,
            None => overflow = true,
        }
        p += 1;
    }
    if overflow {
        return Err(libc::ERANGE);
    }
    if p == start {
        return Err(libc::EINVAL);
    }
    Ok(((consumed + p) as u64, v, negative))
}

/// `bpf_strtol(buf, buf_len, flags, res)`: the characters consumed, `*res` the
/// signed value (0 on an error); -ERANGE when it does not fit an s64.
pub(super) fn strtol(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    const ID: i32 = isa::helpers::func::strtol;
    let len = a[1] as u32 as u64;
    let parsed = strtoull(ctx.bytes(ID, a[0], len)?, a[2]);
    let (ret, res) = match parsed {
        Err(e) => (neg_errno(e), 0u64),
        Ok((n, v, neg)) => {
            let r = if neg { v.wrapping_neg() } else { v };
            if (neg && (r as i64) > 0) || (!neg && (r as i64) < 0) {
                (neg_errno(libc::ERANGE), 0)
            } else {
                (n, r)
            }
        }
    };
    ctx.bytes_mut(ID, a[3], 8)?
        .copy_from_slice(&res.to_ne_bytes());
    Ok(ret)
}

/// `bpf_strtoul(buf, buf_len, flags, res)`: as strtol, unsigned; -EINVAL for a
/// negative number.
pub(super) fn strtoul(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    const ID: i32 = isa::helpers::func::strtoul;
    let len = a[1] as u32 as u64;
    let parsed = strtoull(ctx.bytes(ID, a[0], len)?, a[2]);
    let (ret, res) = match parsed {
        Err(e) => (neg_errno(e), 0),
        Ok((_, _, true)) => (neg_errno(libc::EINVAL), 0),
        Ok((n, v, false)) => (n, v),
    };
    ctx.bytes_mut(ID, a[3], 8)?
        .copy_from_slice(&res.to_ne_bytes());
    Ok(ret)
}
