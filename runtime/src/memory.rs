//! The regions a running program may touch, and checked raw access to them.
//!
//! This module holds unsafe code. Every load and store of a program, and every pointer a
//! helper receives, goes through [`Regions::check`] first; only then does it touch memory,
//! with unaligned reads and writes (atomics must be aligned, as the kernel requires).
//!
//! The regions (DESIGN.md §4):
//! - the stack: every frame of the current call chain, `[r10 - 512, top of the outermost
//!   frame)` (a callee may use a pointer into its caller's frame; nothing may touch the
//!   memory below the current frame, where frames of returned callees were);
//! - the context (`struct xdp_md`): read-only, as for the kernel's XDP programs;
//! - the packet: `data_meta .. data_end`, read from the context at each check, so it
//!   follows `xdp_adjust_head`, `_tail` and `_meta`;
//! - the values of the program's maps, to the byte: an access must lie within one value.
//!   Values of maps the program may not write (`BPF_F_RDONLY_PROG`, e.g. `.rodata`)
//!   are read-only.
//!
//! Regions, their checks and the raw accesses are crate-private: a `Regions` forged by
//! safe code outside the runtime would let helpers touch any memory.
//!
//! ```compile_fail,E0603
//! fn forge(r: &mut runtime::memory::Regions<'_>) {
//!     r.stack_hi = usize::MAX;
//! }
//! ```
//!
//! ```compile_fail,E0603
//! let _ = unsafe { runtime::memory::load(0x1000, 8) };
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

use crate::maptable::RingRecords;
use crate::xdp::XdpMd;

/// Where one map's values live.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ValueArea {
    pub(crate) base: usize,
    pub(crate) len: usize,
    pub(crate) stride: usize,
    pub(crate) value_offset: usize,
    pub(crate) value_len: usize,
    pub(crate) writable: bool,
}

impl ValueArea {
    /// A read-only area over `bytes` (a callback's key copy): one element of its whole
    /// length, at least 1 so that the stride is never 0.
    pub(crate) fn read_only(bytes: &[u8]) -> ValueArea {
        let len = bytes.len().max(1);
        ValueArea {
            base: bytes.as_ptr() as usize,
            len,
            stride: len,
            value_offset: 0,
            value_len: len,
            writable: false,
        }
    }

    #[inline(always)]
    fn contains(&self, addr: usize, len: usize) -> bool {
        let Some(rel) = addr.checked_sub(self.base) else {
            return false;
        };
        if rel >= self.len || self.len - rel < len {
            return false;
        }
        let within = if self.stride == self.value_len && self.value_offset == 0 {
            rel % self.stride
        } else {
            match (rel % self.stride).checked_sub(self.value_offset) {
                Some(w) => w,
                None => return false,
            }
        };
        within + len <= self.value_len
    }
}

/// The regions of one run. Built once per program run set-up; no allocation per run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Regions<'a> {
    /// The live stack is `[stack_lo, stack_hi)`: `stack_lo` is the bottom of the
    /// current frame (its r10 - 512), `stack_hi` the top of the outermost frame. Memory
    /// below the current frame (frames of returned callees) is not the program's.
    pub(crate) stack_lo: usize,
    pub(crate) stack_hi: usize,
    pub(crate) ctx: usize,
    pub(crate) values: &'a [ValueArea],
    /// The ring buffer records the run holds (reserved, not yet submitted or
    /// discarded): program memory for exactly their reserved bytes.
    pub(crate) records: &'a RingRecords<'a>,
}

impl Regions<'_> {
    /// Whether `[addr, addr + len)` lies in one region the program may access this way.
    #[inline(always)]
    pub(crate) fn check(&self, md: &XdpMd, addr: u64, len: usize, write: bool) -> bool {
        self.check_from(self.stack_lo, md, addr, len, write)
    }

    /// [`Regions::check`] with the live stack starting at `stack_lo` instead (the
    /// bottom of the current frame, as compiled code reports it).
    #[inline(always)]
    pub(crate) fn check_from(
        &self,
        stack_lo: usize,
        md: &XdpMd,
        addr: u64,
        len: usize,
        write: bool,
    ) -> bool {
        let a = addr as usize;
        // Stack first: the most frequent target.
        if a >= stack_lo && a <= self.stack_hi.wrapping_sub(len) && self.stack_hi >= len {
            return true;
        }
        // Packet: data_meta .. data_end, as the context says now.
        // (`addr + len` may overflow for a wild pointer: no region reaches that high.)
        if addr >= md.data_meta as u64
            && addr
                .checked_add(len as u64)
                .is_some_and(|e| e <= md.data_end as u64)
        {
            return true;
        }
        for v in self.values.iter() {
            if v.contains(a, len) {
                return v.writable || !write;
            }
        }
        if self.records.contains(a, len) {
            return true;
        }
        // The context is read-only.
        !write
            && a >= self.ctx
            && a.checked_add(len)
                .is_some_and(|e| e <= self.ctx + XdpMd::SIZE)
    }
}

/// Reads `N` bytes at `addr` as a little-endian integer of up to 8 bytes.
///
/// # Safety
/// `[addr, addr + N)` must be readable memory (checked by [`Regions::check`]).
#[inline(always)]
pub(crate) unsafe fn load(addr: u64, size: usize) -> u64 {
    let p = addr as usize as *const u8;
    // SAFETY: the caller checked the range is readable; unaligned reads are allowed.
    unsafe {
        match size {
            1 => p.read() as u64,
            2 => (p as *const u16).read_unaligned() as u64,
            4 => (p as *const u32).read_unaligned() as u64,
            _ => (p as *const u64).read_unaligned(),
        }
    }
}

/// Writes the low `size` bytes of `value` at `addr`.
///
/// # Safety
/// `[addr, addr + size)` must be writable memory (checked by [`Regions::check`]).
#[inline(always)]
pub(crate) unsafe fn store(addr: u64, size: usize, value: u64) {
    let p = addr as usize as *mut u8;
    // SAFETY: the caller checked the range is writable; unaligned writes are allowed.
    unsafe {
        match size {
            1 => p.write(value as u8),
            2 => (p as *mut u16).write_unaligned(value as u16),
            4 => (p as *mut u32).write_unaligned(value as u32),
            _ => (p as *mut u64).write_unaligned(value),
        }
    }
}

/// An atomic read-modify-write, as `BPF_STX | BPF_ATOMIC` performs it. Returns the old value.
///
/// # Safety
/// `[addr, addr + size)` must be writable memory, aligned to `size` (4 or 8).
#[inline]
pub(crate) unsafe fn atomic_rmw(
    addr: u64,
    size: usize,
    op: isa::AtomicOp,
    operand: u64,
    expected: u64,
) -> u64 {
    use isa::AtomicOp::*;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
    if size == 8 {
        // SAFETY: the caller guarantees an aligned, writable 8-byte location; other
        // processes touch it only through atomics too (map values in the store).
        let a = unsafe { AtomicU64::from_ptr(addr as usize as *mut u64) };
        match op {
            Add => a.fetch_add(operand, SeqCst),
            Or => a.fetch_or(operand, SeqCst),
            And => a.fetch_and(operand, SeqCst),
            Xor => a.fetch_xor(operand, SeqCst),
            Xchg => a.swap(operand, SeqCst),
            CmpXchg => match a.compare_exchange(expected, operand, SeqCst, SeqCst) {
                Ok(v) | Err(v) => v,
            },
        }
    } else {
        // SAFETY: as above, for an aligned 4-byte location.
        let a = unsafe { AtomicU32::from_ptr(addr as usize as *mut u32) };
        let operand = operand as u32;
        (match op {
            Add => a.fetch_add(operand, SeqCst),
            Or => a.fetch_or(operand, SeqCst),
            And => a.fetch_and(operand, SeqCst),
            Xor => a.fetch_xor(operand, SeqCst),
            Xchg => a.swap(operand, SeqCst),
            CmpXchg => match a.compare_exchange(expected as u32, operand, SeqCst, SeqCst) {
                Ok(v) | Err(v) => v,
            },
        }) as u64
    }
}

/// What a proven access may rely on, for the `*_proven` functions below.
///
/// An `Op::Proven*` instruction is made only by `program::prepare` (and by
/// `Prepared::set_analysis`, from the same analysis), for a slot the analysis
/// (`verifier`) proved: in every state that reaches it, the accessed bytes lie inside
/// one region `Regions::check` accepts for that access. That proof is about the run
/// the interpreter performs: the program runs with the map table it was prepared with
/// (`Vm::run` and tail calls compare `MapTable::id`), with r1 the context at its entry
/// (`Vm::run` passes it, and a tail call with any other r1 is refused), on a `Packet`
/// whose bounds only the runtime moves, inside the `Vm`'s stack. The audit mode
/// (`Vm::set_audit`) runs these accesses checked instead, to test the proofs.
///
/// Reads `size` bytes at `addr` that the analysis proved readable.
///
/// # Safety
/// The access must be one the analysis proved for the current run (see above).
#[inline(always)]
pub(crate) unsafe fn load_proven(addr: u64, size: usize) -> u64 {
    // SAFETY: the analysis proved `[addr, addr + size)` readable memory of the run (the
    // caller's contract); `load` reads it unaligned.
    unsafe { load(addr, size) }
}

/// Writes the low `size` bytes of `value` at `addr`, proven writable.
///
/// # Safety
/// As for [`load_proven`], with the access a proven write.
#[inline(always)]
pub(crate) unsafe fn store_proven(addr: u64, size: usize, value: u64) {
    // SAFETY: the analysis proved `[addr, addr + size)` writable memory of the run.
    unsafe { store(addr, size, value) }
}

/// An atomic read-modify-write at `addr`, whose range the analysis proved writable.
///
/// # Safety
/// As for [`load_proven`], and `addr` aligned to `size` (4 or 8), which the proof does
/// not cover: the caller checks it.
#[inline(always)]
pub(crate) unsafe fn atomic_rmw_proven(
    addr: u64,
    size: usize,
    op: isa::AtomicOp,
    operand: u64,
    expected: u64,
) -> u64 {
    // SAFETY: the analysis proved the range writable memory of the run, and the caller
    // checked the alignment.
    unsafe { atomic_rmw(addr, size, op, operand, expected) }
}

/// A checked view of `len` bytes at `addr` for a helper.
///
/// # Safety
/// The caller must have checked the range with [`Regions::check`], and must not keep the
/// slice past the helper call.
#[inline]
pub(crate) unsafe fn slice<'a>(addr: u64, len: usize) -> &'a [u8] {
    // SAFETY: checked by the caller.
    unsafe { std::slice::from_raw_parts(addr as usize as *const u8, len) }
}

/// A checked mutable view of `len` bytes at `addr` for a helper.
///
/// # Safety
/// As for [`slice`], with the range writable and not aliased by another live view.
#[inline]
pub(crate) unsafe fn slice_mut<'a>(addr: u64, len: usize) -> &'a mut [u8] {
    // SAFETY: checked by the caller.
    unsafe { std::slice::from_raw_parts_mut(addr as usize as *mut u8, len) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions(values: &[ValueArea]) -> Regions<'_> {
        Regions {
            stack_lo: 1000,
            stack_hi: 1512,
            ctx: 5000,
            values,
            records: no_records(),
        }
    }

    /// A run's records over an empty table, for the lifetime of the test process.
    fn no_records() -> &'static RingRecords<'static> {
        let table = Box::leak(Box::new(crate::maptable::MapTable::new(Vec::new())));
        Box::leak(Box::new(RingRecords::new(table)))
    }

    fn md() -> XdpMd {
        XdpMd {
            data: 2000,
            data_end: 2060,
            data_meta: 1992,
            ..Default::default()
        }
    }

    #[test]
    fn stack_bounds() {
        let r = regions(&[]);
        assert!(r.check(&md(), 1000, 8, true));
        assert!(r.check(&md(), 1504, 8, true));
        assert!(!r.check(&md(), 1505, 8, true));
        assert!(!r.check(&md(), 999, 1, false));
    }

    #[test]
    fn packet_follows_the_context() {
        let r = regions(&[]);
        assert!(r.check(&md(), 1992, 8, false), "metadata is readable");
        assert!(r.check(&md(), 2052, 8, true));
        assert!(!r.check(&md(), 2053, 8, false));
        assert!(!r.check(&md(), 1991, 1, false));
        let mut m = md();
        m.data_end = 2100;
        assert!(r.check(&m, 2092, 8, false));
    }

    #[test]
    fn context_is_read_only() {
        let r = regions(&[]);
        assert!(r.check(&md(), 5000, 4, false));
        assert!(r.check(&md(), 5020, 4, false));
        assert!(!r.check(&md(), 5021, 4, false));
        assert!(!r.check(&md(), 5000, 4, true));
    }

    #[test]
    fn map_values_to_the_byte() {
        // Elements of 24 bytes: 8 of key, then a 12-byte value, then padding.
        let area = ValueArea {
            base: 10_000,
            len: 240,
            stride: 24,
            value_offset: 8,
            value_len: 12,
            writable: true,
        };
        let ro = ValueArea {
            base: 20_000,
            len: 16,
            stride: 16,
            value_offset: 0,
            value_len: 16,
            writable: false,
        };
        let areas = [area, ro];
        let r = regions(&areas);
        assert!(r.check(&md(), 10_008, 12, true));
        assert!(r.check(&md(), 10_008 + 24 * 9 + 4, 8, true));
        assert!(
            !r.check(&md(), 10_000, 4, false),
            "key bytes are not the value"
        );
        assert!(!r.check(&md(), 10_016, 8, false), "crosses the value's end");
        assert!(!r.check(&md(), 10_240, 1, false), "past the last element");
        assert!(r.check(&md(), 20_000, 16, false));
        assert!(!r.check(&md(), 20_000, 1, true), "read-only value");
    }

    #[test]
    fn raw_access_round_trips() {
        let mut buf = [0u64; 2];
        let a = buf.as_mut_ptr() as u64;
        // SAFETY: `buf` is 16 writable bytes, and the accesses stay inside it.
        unsafe {
            store(a + 1, 4, 0x1122_3344_5566);
            assert_eq!(load(a + 1, 4), 0x3344_5566);
            assert_eq!(load(a + 1, 2), 0x5566);
            store(a + 8, 8, u64::MAX);
            assert_eq!(atomic_rmw(a + 8, 8, isa::AtomicOp::Add, 2, 0), u64::MAX);
            assert_eq!(load(a + 8, 8), 1);
        }
        assert_eq!(buf[0].to_le_bytes()[1], 0x66);
    }
}
