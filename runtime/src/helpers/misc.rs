//! Time, randomness, the worker id, checksums and trace_printk.

use isa::helpers::func;
use std::io::Write;

use super::{neg_errno, HelperCtx};
use crate::error::TrapKind;

const TRACE_PRINTK: i32 = func::trace_printk;
const CSUM_DIFF: i32 = func::csum_diff;

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; clock_gettime has no other effects.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub(super) fn ktime_get_ns(_: &mut HelperCtx<'_, '_>, _: [u64; 5]) -> Result<u64, TrapKind> {
    Ok(clock_ns(libc::CLOCK_MONOTONIC))
}

pub(super) fn ktime_get_boot_ns(_: &mut HelperCtx<'_, '_>, _: [u64; 5]) -> Result<u64, TrapKind> {
    Ok(clock_ns(libc::CLOCK_BOOTTIME))
}

pub(super) fn ktime_get_coarse_ns(_: &mut HelperCtx<'_, '_>, _: [u64; 5]) -> Result<u64, TrapKind> {
    Ok(clock_ns(libc::CLOCK_MONOTONIC_COARSE))
}

/// xorshift64*: fast, per worker, no shared state.
pub(super) fn get_prandom_u32(ctx: &mut HelperCtx<'_, '_>, _: [u64; 5]) -> Result<u64, TrapKind> {
    let mut x = *ctx.rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *ctx.rng = x;
    Ok((x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32 as u64)
}

pub(super) fn get_smp_processor_id(
    ctx: &mut HelperCtx<'_, '_>,
    _: [u64; 5],
) -> Result<u64, TrapKind> {
    Ok(ctx.cpu as u64)
}

/// The 32-bit one's-complement sum of `bytes` plus `seed`, as x86-64's `csum_partial`
/// computes it (arch/x86/lib/csum-partial_64.c): little-endian words, a tail shorter
/// than a word padded with zero bytes, carries added back in. Its value is 0 only
/// when `seed` and every byte are 0, else the one in `1..=u32::MAX` that the sum
/// modulo 2^32 - 1 names, whatever the word size of the accumulation.
pub(crate) fn csum_partial(bytes: &[u8], seed: u32) -> u32 {
    let mut sum = seed as u64;
    let words = bytes.chunks_exact(4);
    let tail = words.remainder();
    for w in words {
        sum += u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as u64;
    }
    let mut last = [0u8; 4];
    last[..tail.len()].copy_from_slice(tail);
    sum += u32::from_le_bytes(last) as u64;
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum as u32
}

/// bpf_csum_diff(from, from_size, to, to_size, seed): the checksum of `to` minus that of
/// `from`, on top of `seed`, for any sizes the program may read (0 included).
///
/// The kernel's formula since 6.13 (net/core/filter.c; no scratch buffer, so no
/// size checks: no -EINVAL for sizes over 512 or not multiples of 4), kept exactly
/// because the one's-complement results differ in their representation of zero
/// (0 vs 0xffff):
/// both sizes: `csum_sub(csum_partial(to, seed), csum_partial(from, 0))`; only `to`:
/// `csum_partial(to, seed)`; only `from`: `~csum_partial(from, ~seed)`; neither: `seed`;
/// the result folded to 16 bits (`csum_from32to16`). Older x86 kernels returned the
/// unfolded 32-bit sum of `~from ++ to`.
pub(super) fn csum_diff(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let (from_size, to_size) = (a[1] as u32, a[3] as u32);
    let from = ctx.bytes(CSUM_DIFF, a[0], from_size as u64)?;
    let to = ctx.bytes(CSUM_DIFF, a[2], to_size as u64)?;
    let seed = a[4] as u32;
    let sum = match (from_size != 0, to_size != 0) {
        (true, true) => csum_sub(csum_partial(to, seed), csum_partial(from, 0)),
        (false, true) => csum_partial(to, seed),
        (true, false) => !csum_partial(from, !seed),
        (false, false) => seed,
    };
    Ok(csum_from32to16(sum) as u64)
}

/// One's-complement addition with end-around carry (`csum_add`).
fn csum_add(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s.wrapping_add(carry as u32)
}

/// `csum_sub`: `a + ~b` in one's complement.
fn csum_sub(a: u32, b: u32) -> u32 {
    csum_add(a, !b)
}

/// Folds a 32-bit one's-complement sum to 16 bits, without complementing it.
pub(crate) fn csum_from32to16(sum: u32) -> u16 {
    let s = (sum & 0xffff) + (sum >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// A fixed-size buffer that formatting writes into without allocating.
struct LineBuf {
    buf: [u8; 1024],
    len: usize,
}

impl LineBuf {
    fn push(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }
}

impl std::fmt::Write for LineBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// One conversion of a trace_printk format: flags, width, length and kind.
struct Spec {
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    width: usize,
    long: u8,
    kind: u8,
}

/// Formats `fmt` with up to three arguments the way the kernel's `bpf_bprintf_prepare`
/// accepts them: `%[-+ 0][width][l|ll](d|i|u|x|X|c|s|p)` and `%%`. Returns the message,
/// or the kernel's EINVAL for an unsupported format.
fn format_printk(
    ctx: &HelperCtx<'_, '_>,
    fmt: &[u8],
    args: [u64; 3],
    out: &mut LineBuf,
) -> Result<(), i32> {
    use std::fmt::Write as _;
    let mut i = 0;
    let mut next_arg = 0;
    while i < fmt.len() && fmt[i] != 0 {
        let c = fmt[i];
        if c != b'%' {
            out.push(&[c]);
            i += 1;
            continue;
        }
        i += 1;
        if fmt.get(i) == Some(&b'%') {
            out.push(b"%");
            i += 1;
            continue;
        }
        let mut s = Spec {
            left: false,
            zero: false,
            plus: false,
            space: false,
            width: 0,
            long: 0,
            kind: 0,
        };
        while let Some(&f) = fmt.get(i) {
            match f {
                b'-' => s.left = true,
                b'0' => s.zero = true,
                b'+' => s.plus = true,
                b' ' => s.space = true,
                _ => break,
            }
            i += 1;
        }
        while let Some(&d) = fmt.get(i).filter(|d| d.is_ascii_digit()) {
            s.width = (s.width * 10 + (d - b'0') as usize).min(256);
            i += 1;
        }
        while fmt.get(i) == Some(&b'l') && s.long < 2 {
            s.long += 1;
            i += 1;
        }
        s.kind = *fmt.get(i).ok_or(libc::EINVAL)?;
        i += 1;
        if next_arg >= 3 {
            return Err(libc::EINVAL);
        }
        let arg = args[next_arg];
        next_arg += 1;
        let mut field = LineBuf {
            buf: [0; 1024],
            len: 0,
        };
        let r = match s.kind {
            b'd' | b'i' => {
                let v = if s.long == 0 {
                    arg as i32 as i64
                } else {
                    arg as i64
                };
                let sign = if v < 0 {
                    "-"
                } else if s.plus {
                    "+"
                } else if s.space {
                    " "
                } else {
                    ""
                };
                write!(field, "{sign}{}", v.unsigned_abs())
            }
            b'u' => write!(
                field,
                "{}",
                if s.long == 0 { arg as u32 as u64 } else { arg }
            ),
            b'x' => write!(
                field,
                "{:x}",
                if s.long == 0 { arg as u32 as u64 } else { arg }
            ),
            b'X' => write!(
                field,
                "{:X}",
                if s.long == 0 { arg as u32 as u64 } else { arg }
            ),
            b'c' if s.long == 0 => {
                field.push(&[arg as u8]);
                Ok(())
            }
            b'p' => {
                // %pK, %px, %pB and friends: the extension letters follow the 'p'.
                while fmt.get(i).is_some_and(|c| c.is_ascii_alphanumeric()) {
                    i += 1;
                }
                write!(field, "0x{arg:016x}")
            }
            b's' if s.long == 0 => {
                let mut a = arg;
                loop {
                    match ctx.bytes(TRACE_PRINTK, a, 1) {
                        Ok([0]) => break,
                        Ok(b) => field.push(b),
                        Err(_) => {
                            field.len = 0;
                            field.push(b"(efault)");
                            break;
                        }
                    }
                    if field.len >= 512 {
                        break;
                    }
                    a += 1;
                }
                Ok(())
            }
            _ => return Err(libc::EINVAL),
        };
        r.map_err(|_| libc::EINVAL)?;
        let body = &field.buf[..field.len];
        let pad = s.width.saturating_sub(body.len());
        let numeric = matches!(s.kind, b'd' | b'i' | b'u' | b'x' | b'X');
        if s.left {
            out.push(body);
            (0..pad).for_each(|_| out.push(b" "));
        } else if s.zero && numeric {
            let (sign, digits) = match body.first() {
                Some(b'-' | b'+' | b' ') => body.split_at(1),
                _ => (&body[..0], body),
            };
            out.push(sign);
            (0..pad).for_each(|_| out.push(b"0"));
            out.push(digits);
        } else {
            (0..pad).for_each(|_| out.push(b" "));
            out.push(body);
        }
    }
    Ok(())
}

/// bpf_trace_printk(fmt, fmt_size, arg1, arg2, arg3): formats like the kernel and writes
/// one line to stderr in the layout of the kernel's trace_pipe.
pub(super) fn trace_printk(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let size = a[1] as u32 as u64;
    let fmt = ctx.bytes(TRACE_PRINTK, a[0], size)?;
    if size == 0 || fmt[size as usize - 1] != 0 {
        return Ok(neg_errno(libc::EINVAL));
    }
    let mut msg = LineBuf {
        buf: [0; 1024],
        len: 0,
    };
    if let Err(e) = format_printk(ctx, fmt, [a[2], a[3], a[4]], &mut msg) {
        return Ok(neg_errno(e));
    }
    let written = msg.len;
    let mut line = LineBuf {
        buf: [0; 1024],
        len: 0,
    };
    let ns = clock_ns(libc::CLOCK_MONOTONIC);
    let _ = std::fmt::Write::write_fmt(
        &mut line,
        format_args!(
            "{:>16}-{:<7} [{:03}] ..... {}.{:06}: bpf_trace_printk: ",
            "xdp-runner",
            std::process::id(),
            ctx.cpu,
            ns / 1_000_000_000,
            ns % 1_000_000_000 / 1000
        ),
    );
    line.push(&msg.buf[..msg.len]);
    if line.buf[..line.len].last() != Some(&b'\n') {
        line.push(b"\n");
    }
    let _ = std::io::stderr().write_all(&line.buf[..line.len]);
    Ok(written as u64)
}

const SPIN_LOCK: i32 = func::spin_lock;
const PROBE_READ_KERNEL: i32 = func::probe_read_kernel;

/// How long bpf_spin_lock waits for a lock another live thread holds before it
/// traps. The kernel's verifier keeps these critical sections to a few
/// instructions (no calls, no loops, no exit while held), which take
/// microseconds here; a holder preempted by the host scheduler is off the CPU for
/// a time slice or a few. A lock still held after 100 ms was left held: a
/// program that exited without bpf_spin_unlock (the kernel refuses those; this
/// runtime runs what it cannot prove) on a thread that has not run since.
const SPIN_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Bumped in a fork's child so that threads re-read their thread id.
static FORK_GEN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
static ATFORK: std::sync::Once = std::sync::Once::new();

extern "C" fn bump_fork_gen() {
    // Only an atomic add: async-signal-safe, as fork's child handlers must be.
    FORK_GEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

thread_local! {
    /// (fork generation, thread id) of this thread.
    static TID: std::cell::Cell<(u32, u32)> = const { std::cell::Cell::new((0, 0)) };
}

/// The calling thread's id (what a program's lock word holds while it is
/// taken), cached per thread and re-read after fork.
fn my_tid() -> u32 {
    ATFORK.call_once(|| {
        // SAFETY: registers a plain extern "C" fn with no captured state; on
        // failure the cache is only not refreshed in children (see below).
        unsafe {
            libc::pthread_atfork(None, None, Some(bump_fork_gen));
        }
    });
    let gen = FORK_GEN.load(std::sync::atomic::Ordering::Relaxed);
    TID.with(|c| {
        let (g, t) = c.get();
        if g == gen && t != 0 {
            return t;
        }
        // SAFETY: gettid has no arguments and cannot fail.
        let t = unsafe { libc::gettid() } as u32;
        c.set((gen, t));
        t
    })
}

/// True when no thread has id `tid` any more (the holder of a lock word died).
fn thread_is_gone(tid: u32) -> bool {
    let Ok(t) = libc::pid_t::try_from(tid) else {
        return true;
    };
    // SAFETY: signal 0 sends nothing; Linux resolves a thread id here too.
    t > 0
        && unsafe { libc::kill(t, 0) } == -1
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// The lock word a program passed: 4 writable, aligned bytes inside its memory.
fn lock_word<'a>(
    ctx: &'a mut HelperCtx<'_, '_>,
    helper: i32,
    addr: u64,
) -> Result<&'a std::sync::atomic::AtomicU32, TrapKind> {
    let bytes = ctx.bytes_mut(helper, addr, 4)?;
    if !(bytes.as_ptr() as usize).is_multiple_of(4) {
        return Err(TrapKind::MisalignedAtomic { addr, len: 4 });
    }
    // SAFETY: the 4 bytes are writable memory of the run, aligned to 4; other
    // processes touch lock words only through atomics.
    Ok(unsafe { std::sync::atomic::AtomicU32::from_ptr(bytes.as_mut_ptr().cast()) })
}

/// bpf_spin_lock(lock): takes the `struct bpf_spin_lock` in a map value (0 free,
/// else the id of the thread holding it), shared with every thread and process
/// using the store.
///
/// Every wait is bounded: a lock this thread already holds (taken twice, or left
/// held by an earlier run on this thread: both refused by the kernel's verifier)
/// traps at once and is released, so later runs find it free; a lock whose
/// holder thread is gone is taken over; a lock another live thread holds for
/// more than [`SPIN_WAIT`] traps naming that thread.
pub(super) fn spin_lock(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
    let lock = lock_word(ctx, SPIN_LOCK, a[0])?;
    let me = my_tid();
    let mut spins = 0u32;
    let mut start = None;
    loop {
        let cur = match lock.compare_exchange_weak(0, me, Acquire, Relaxed) {
            Ok(_) => return Ok(0),
            Err(cur) => cur,
        };
        if cur == me {
            lock.store(0, Release);
            return Err(TrapKind::SpinLockRelocked { addr: a[0] });
        }
        spins = spins.wrapping_add(1);
        if cur != 0 && spins.is_multiple_of(256) {
            if thread_is_gone(cur) && lock.compare_exchange(cur, me, Acquire, Relaxed).is_ok() {
                return Ok(0);
            }
            let now = std::time::Instant::now();
            if now - *start.get_or_insert(now) >= SPIN_WAIT {
                return Err(TrapKind::SpinLockHeld {
                    addr: a[0],
                    holder: cur,
                });
            }
        }
        if spins < 1024 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// bpf_spin_unlock(lock).
pub(super) fn spin_unlock(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let lock = lock_word(ctx, SPIN_LOCK + 1, a[0])?;
    lock.store(0, std::sync::atomic::Ordering::Release);
    Ok(0)
}

/// Where x86-64's `copy_from_kernel_nofault` refuses a source with -ERANGE
/// (`copy_from_kernel_nofault_allowed`, 4-level paging): user-space addresses (below
/// `TASK_SIZE_MAX` plus a page, so NULL too), non-canonical ones, and the vsyscall
/// page. What it allows and cannot read is -EFAULT.
fn kernel_refuses(addr: u64) -> bool {
    // User space ends at 1 << 47; from there up to the kernel half's start the
    // addresses are not canonical.
    const KERNEL_START: u64 = 0xffff_8000_0000_0000;
    const VSYSCALL_PAGE: u64 = 0xffff_ffff_ff60_0000;
    addr < KERNEL_START || addr & !0xfff == VSYSCALL_PAGE
}

/// bpf_probe_read_kernel(dst, size, src): copies `size` bytes from `src` when they lie
/// in the program's memory (its stack, packet, context and map values, all kernel
/// memory to a program in the kernel); otherwise zeroes `dst` and returns what the
/// kernel returns for memory it does not let the program read: -ERANGE for an
/// address no kernel address can be (every other address of this process, such as a
/// map handle, is user space: the kernel refuses those), -EFAULT for a kernel-half
/// address, which nothing here maps.
pub(super) fn probe_read_kernel(ctx: &mut HelperCtx<'_, '_>, a: [u64; 5]) -> Result<u64, TrapKind> {
    let size = a[1] as u32 as u64;
    let readable = size == 0 || ctx.regions.check(ctx.pkt.md(), a[2], size as usize, false);
    let src = a[2] as usize as *const u8;
    let dst = ctx.bytes_mut(PROBE_READ_KERNEL, a[0], size)?;
    if !readable {
        dst.fill(0);
        let errno = if kernel_refuses(a[2]) {
            libc::ERANGE
        } else {
            libc::EFAULT
        };
        return Ok(neg_errno(errno));
    }
    // SAFETY: `src` was checked readable for `size` bytes; `copy` tolerates overlap.
    unsafe { std::ptr::copy(src, dst.as_mut_ptr(), size as usize) };
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csum_partial_folds_carries() {
        // 0xffffffff + 1 folds to 1 with an end-around carry.
        let bytes = [0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0];
        assert_eq!(csum_partial(&bytes, 0), 1);
        assert_eq!(csum_partial(&[], 0x1234), 0x1234);
        // RFC 1071's example words 0x0001 0xf203 0xf4f5 0xf6f7, as 16-bit one's
        // complement sum 0xddf2 once folded.
        let words = [0x00u8, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        let folded = csum_from32to16(csum_partial(&words, 0));
        assert_eq!(u16::from_be(folded), 0xddf2);
        assert_eq!(csum_from32to16(0xffff_ffff), 0xffff);
        assert_eq!(csum_from32to16(0x0001_ffff), 0x0001);
    }

    /// Runs `f` with a helper context whose stack (64 bytes, its address passed
    /// to `f`) holds lock words.
    fn with_stack<R>(f: impl FnOnce(&mut HelperCtx<'_, '_>, u64) -> R) -> R {
        let table = crate::maptable::MapTable::new(Vec::new());
        let mut pkt = crate::xdp::Packet::new(&[0u8; 64]).expect("packet");
        let mut stack = [0u64; 8];
        let lo = stack.as_mut_ptr() as usize;
        let records = crate::maptable::RingRecords::new(&table);
        let regions = crate::memory::Regions {
            stack_lo: lo,
            stack_hi: lo + 64,
            ctx: pkt.md_addr() as usize,
            values: table.value_areas(),
            records: &records,
        };
        let mut rng = 1;
        let mut ctx = HelperCtx {
            regions: &regions,
            pkt: &mut pkt,
            maps: &table,
            cpu: 0,
            rng: &mut rng,
            prog_id: 0,
            timer_cb: None,
        };
        f(&mut ctx, lo as u64)
    }

    fn word(addr: u64) -> &'static std::sync::atomic::AtomicU32 {
        // SAFETY: test: a 4-aligned word of the live stack array of with_stack.
        unsafe { std::sync::atomic::AtomicU32::from_ptr(addr as *mut u32) }
    }

    #[test]
    fn a_lock_left_held_by_this_thread_traps_at_once_and_is_released() {
        with_stack(|ctx, lock| {
            assert_eq!(spin_lock(ctx, [lock, 0, 0, 0, 0]), Ok(0));
            // A run that exits here leaves the lock held; the next run on this
            // thread traps at once instead of spinning, and frees it.
            assert_eq!(
                spin_lock(ctx, [lock, 0, 0, 0, 0]),
                Err(TrapKind::SpinLockRelocked { addr: lock })
            );
            assert_eq!(word(lock).load(std::sync::atomic::Ordering::Relaxed), 0);
            assert_eq!(spin_lock(ctx, [lock, 0, 0, 0, 0]), Ok(0));
            assert_eq!(spin_unlock(ctx, [lock, 0, 0, 0, 0]), Ok(0));
        });
    }

    #[test]
    fn a_lock_held_by_another_live_thread_traps_naming_it() {
        let (tx, rx) = std::sync::mpsc::channel::<u32>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            tx.send(my_tid()).expect("send");
            let _ = done_rx.recv();
        });
        let tid = rx.recv().expect("tid");
        with_stack(|ctx, lock| {
            word(lock).store(tid, std::sync::atomic::Ordering::Relaxed);
            assert_eq!(
                spin_lock(ctx, [lock, 0, 0, 0, 0]),
                Err(TrapKind::SpinLockHeld {
                    addr: lock,
                    holder: tid
                })
            );
        });
        let _ = done_tx.send(());
        holder.join().expect("join");
    }

    #[test]
    fn a_lock_whose_holder_is_gone_is_taken_over() {
        let Ok(mut child) = std::process::Command::new("true").spawn() else {
            println!("SKIP: cannot spawn `true`");
            return;
        };
        let pid = child.id();
        let _ = child.wait();
        with_stack(|ctx, lock| {
            word(lock).store(pid, std::sync::atomic::Ordering::Relaxed);
            assert_eq!(spin_lock(ctx, [lock, 0, 0, 0, 0]), Ok(0));
            assert_eq!(
                word(lock).load(std::sync::atomic::Ordering::Relaxed),
                my_tid()
            );
        });
    }
}
