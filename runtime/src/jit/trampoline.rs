//! The boundary between Rust and JIT code: the per-run context [`JitCtx`] that compiled
//! code receives as its first argument, the `extern "C"` entry points compiled code calls
//! (helpers, the slow memory check, tail calls), and the status codes with which compiled
//! code leaves a run that trapped.
//!
//! This module holds unsafe code: the shims rebuild references from the raw pointers in
//! the context. Compiled code never unwinds: a trap writes its details into the context
//! and every frame returns a non-zero status up to `JitObject::enter` (or the callback
//! trampoline).

use std::mem::offset_of;
use std::sync::atomic::AtomicBool;

use crate::error::{Trap, TrapKind};
use crate::helpers::{self, HelperCtx};
use crate::interp::MAX_TAIL_CALLS;
use crate::maptable::{types, BoundMap, MapTable};
use crate::memory::Regions;
use crate::verifier::Analysis;
use crate::xdp::Packet;

/// Status a compiled function returns beside r0.
pub(crate) mod status {
    /// `trap_addr` and `trap_info` (len | write << 8) describe the access.
    pub const OUT_OF_BOUNDS: i64 = 1;
    /// `trap_addr` and `trap_info` (len) describe the access.
    pub const MISALIGNED: i64 = 2;
    pub const CALL_DEPTH: i64 = 3;
    /// The helper shim stored the kind in `helper_trap`.
    pub const HELPER: i64 = 4;
    /// `trap_info` holds the opcode.
    pub const ILLEGAL: i64 = 5;
    /// `bpf_loop` was given a callback that is not a function of the program:
    /// `trap_addr` holds the value.
    pub const BAD_CALLBACK: i64 = 6;
    /// The run's step budget (`steps_left`) ran out.
    pub const STEP_BUDGET: i64 = 7;
    /// Not a trap: the interruption flag was raised after a run, which stopped the
    /// repeated run with `runs_left` runs not done.
    pub const INTERRUPTED: i64 = 8;
    /// An access the analysis proved trapped in audit mode (`JitOptions::audit`).
    pub const PROOF_VIOLATED: i64 = 9;
}

/// The state of one run, shared by Rust and compiled code. Compiled code reads and
/// writes only the fields whose offsets are exported below; the rest is for the shims.
#[repr(C)]
pub(crate) struct JitCtx {
    /// Lowest address of the stack (all frames).
    pub stack_lo: u64,
    /// Bottom of the current frame (its r10 - 512), stored by compiled code on entry
    /// to each function and after each call that entered another: the live stack the
    /// shims accept is `[frame_lo, regions.stack_hi)`.
    pub frame_lo: u64,
    /// Address of the run's `struct xdp_md`.
    pub md: u64,
    pub trap_pc: u64,
    pub trap_addr: u64,
    pub trap_info: u64,
    /// r0 of the last run (written by `JitObject::enter`).
    pub r0: u64,
    pub helper_trap: Option<TrapKind>,
    pub regions: *const Regions<'static>,
    pub pkt: *mut Packet,
    pub maps: *const MapTable,
    pub rng: *mut u64,
    /// Entry points of every program, by index; a prog_array value `n` is `entries[n - 1]`.
    pub entries: *const u64,
    pub n_entries: usize,
    pub cpu: u32,
    /// Tail calls made so far in this run; a `bpf_loop` callback invocation counts its
    /// own (as the interpreter does) and the caller's count is restored after the loop.
    pub tail_calls: u32,
    /// Steps left in the current run: counted down by compiled code at backward jumps,
    /// bpf-to-bpf calls, `bpf_loop` iterations and tail calls; reset to `max_steps`
    /// before each run.
    pub steps_left: u64,
    pub max_steps: u64,
    /// The interruption flag read after each run (never null).
    pub interrupt: *const AtomicBool,
    /// Runs not done when a repeated run stopped on the interruption flag.
    pub runs_left: u64,
    /// Audit mode: the facts of the function that made the last helper call, and
    /// that call's r1..r5, stored by compiled code before each helper call (null
    /// otherwise), so a helper trap that contradicts a proof becomes `ProofViolated`.
    pub audit_facts: *const Analysis,
    pub audit_args: [u64; 5],
    /// Store id of the running program (set at entry and by tail calls), for
    /// `bpf_timer_set_callback`.
    pub prog_id: u32,
    /// Store ids of the programs, by index (as `entries`).
    pub store_ids: *const u32,
    /// The timer whose callback this run is (map id, element slot), if any.
    pub timer_cb: Option<(u32, u32)>,
    /// The callback trampoline, through which `for_each_shim` calls callbacks.
    pub cb_trampoline: Option<CallbackTrampoline>,
}

/// The interruption flag of runs that have none.
pub(crate) static NEVER_INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub(crate) const OFF_STACK_LO: i32 = offset_of!(JitCtx, stack_lo) as i32;
pub(crate) const OFF_FRAME_LO: i32 = offset_of!(JitCtx, frame_lo) as i32;
pub(crate) const OFF_MD: i32 = offset_of!(JitCtx, md) as i32;
pub(crate) const OFF_TRAP_PC: i32 = offset_of!(JitCtx, trap_pc) as i32;
pub(crate) const OFF_TRAP_ADDR: i32 = offset_of!(JitCtx, trap_addr) as i32;
pub(crate) const OFF_TRAP_INFO: i32 = offset_of!(JitCtx, trap_info) as i32;
pub(crate) const OFF_R0: i32 = offset_of!(JitCtx, r0) as i32;
pub(crate) const OFF_TAIL_CALLS: i32 = offset_of!(JitCtx, tail_calls) as i32;
pub(crate) const OFF_STEPS_LEFT: i32 = offset_of!(JitCtx, steps_left) as i32;
pub(crate) const OFF_MAX_STEPS: i32 = offset_of!(JitCtx, max_steps) as i32;
pub(crate) const OFF_CPU: i32 = offset_of!(JitCtx, cpu) as i32;
pub(crate) const OFF_AUDIT_FACTS: i32 = offset_of!(JitCtx, audit_facts) as i32;
pub(crate) const OFF_AUDIT_ARGS: i32 = offset_of!(JitCtx, audit_args) as i32;

impl JitCtx {
    /// The run's regions with the live stack of the calling frame (`frame_lo`).
    ///
    /// # Safety
    /// `regions` must point to the live regions of the current run.
    #[inline(always)]
    unsafe fn live_regions(&self) -> Regions<'static> {
        Regions {
            stack_lo: self.frame_lo as usize,
            // SAFETY: the caller's contract.
            ..unsafe { *self.regions }
        }
    }

    /// The trap a run that returned `status` (non-zero) stopped with.
    pub(crate) fn trap(&self, status: i64) -> Trap {
        let pc = self.trap_pc as usize;
        let info = self.trap_info;
        let kind = match status {
            status::OUT_OF_BOUNDS => TrapKind::OutOfBounds {
                addr: self.trap_addr,
                len: info as u8,
                write: info & 0x100 != 0,
            },
            status::MISALIGNED => TrapKind::MisalignedAtomic {
                addr: self.trap_addr,
                len: info as u8,
            },
            status::CALL_DEPTH => TrapKind::CallDepth,
            status::PROOF_VIOLATED => TrapKind::ProofViolated { pc },
            status::STEP_BUDGET => TrapKind::StepBudget {
                limit: self.max_steps,
            },
            status::BAD_CALLBACK => TrapKind::HelperBadCallback {
                // The helper's id (bpf_loop, bpf_for_each_map_elem).
                helper: info as i32,
                value: self.trap_addr,
            },
            status::HELPER => {
                let kind = self.helper_trap.unwrap_or(TrapKind::IllegalInstruction {
                    code: isa::opcode::CALL,
                });
                // SAFETY: compiled code stores only the address of a function's facts,
                // which the JitObject keeps alive while its code runs.
                match unsafe { self.audit_facts.as_ref() } {
                    Some(facts)
                        if facts.fact(pc).helper_trap_violates(
                            &kind,
                            &self.audit_args,
                            self.md,
                        ) =>
                    {
                        TrapKind::ProofViolated { pc }
                    }
                    _ => kind,
                }
            }
            _ => TrapKind::IllegalInstruction { code: info as u8 },
        };
        Trap { kind, pc }
    }
}

/// Signature of every compiled function: `(ctx, r1, r2, r3, r4, r5, r10) -> (r0,
/// status)`, the platform's C calling convention; the two results come back in two
/// registers (rax:rdx on x86-64, x0:x1 on aarch64), as a `#[repr(C)]` pair of u64.
/// `JitObject::enter` calls a program's entry function through it.
pub(crate) type Entry = unsafe extern "C" fn(*mut JitCtx, u64, u64, u64, u64, u64, u64) -> FuncRet;

/// What a compiled function returns: r0, and the status (0, or a trap's
/// `status::*`).
#[repr(C)]
pub(crate) struct FuncRet {
    pub r0: u64,
    pub status: u64,
}

/// Signature of the callback trampoline: `(ctx, function, r1, r2, r3, r4, r10) ->
/// status`: one call of a compiled function with four arguments (a `bpf_timer`
/// callback, a `bpf_for_each_map_elem` callback), the step budget set from
/// `max_steps`; its r0 lands in `ctx.r0`.
pub(crate) type CallbackTrampoline =
    unsafe extern "C" fn(*mut JitCtx, u64, u64, u64, u64, u64, u64) -> i64;

/// What the checked shims return, in two registers (rax:rdx on x86-64, x0:x1 on
/// aarch64), so that compiled code tests the trap without reading the context: r0,
/// and non-zero when the call trapped (its kind is then in `JitCtx::helper_trap`).
#[repr(C)]
pub(crate) struct ShimRet {
    pub r0: u64,
    pub trapped: u64,
}

impl ShimRet {
    const TRAPPED: ShimRet = ShimRet { r0: 0, trapped: 1 };

    fn ok(r0: u64) -> ShimRet {
        ShimRet { r0, trapped: 0 }
    }
}

/// `bpf_for_each_map_elem` from compiled code, which checked flags, the callback
/// (`func`, its compiled function) and the call depth: the walk of
/// `helpers::foreach`, calling `func(map, &key, value, cb_ctx)` with r10 = `fp` for
/// each element through the callback trampoline until it returns non-zero; returns
/// the number of calls. Each call takes a step of the run's budget; the key is a copy
/// in a read-only region added to the run's regions while the callback runs. A trap
/// (here, at `pc`, or in the callback, where its details already are) returns its
/// status in [`ShimRet::trapped`], which compiled code passes up.
///
/// # Safety
/// As [`helper_shim`]; `func` is a compiled function of the run's code and `fp` the
/// bottom of the caller's frame minus nothing (the callback's r10), inside the stack.
pub(crate) unsafe extern "C" fn for_each_shim(
    ctx: *mut JitCtx,
    pc: u64,
    map: u64,
    func: u64,
    cb_ctx: u64,
    fp: u64,
    _: u64,
) -> ShimRet {
    // No reference into the context lives across a callback call: the compiled code
    // writes it through `ctx`.
    // SAFETY: the caller guarantees `ctx` and its pointers are valid for this run.
    let (maps, cpu, outer, tramp, saved_tail, saved_max) = unsafe {
        let c = &*ctx;
        (
            &*c.maps,
            c.cpu,
            c.regions,
            c.cb_trampoline,
            c.tail_calls,
            c.max_steps,
        )
    };
    let fail = |kind: TrapKind, st: i64| {
        // SAFETY: as above; no other reference to the context is live.
        let c = unsafe { &mut *ctx };
        c.helper_trap = Some(kind);
        c.trap_pc = pc;
        c.audit_facts = std::ptr::null();
        ShimRet {
            r0: 0,
            trapped: st as u64,
        }
    };
    let mut walk = match crate::helpers::foreach::ForEach::new(maps, map, cpu) {
        Ok(w) => w,
        Err(kind) => return fail(kind, status::HELPER),
    };
    let Some(tramp) = tramp else {
        let kind = TrapKind::HelperBadCallback {
            helper: helpers::FOR_EACH_MAP_ELEM as i32,
            value: func,
        };
        return fail(kind, status::HELPER);
    };
    // SAFETY: `regions` points to the live regions of the run (caller contract).
    let base = unsafe { *outer };
    let mut values = base.values.to_vec();
    values.push(walk.key_area());
    let regions = Regions {
        values: &values,
        ..base
    };
    // SAFETY: as above; `regions` outlives every callback call below, and the
    // run's own regions are put back before returning.
    unsafe { (*ctx).regions = (&regions as *const Regions<'_>).cast() };
    let mut calls = 0u64;
    let mut st = 0i64;
    while let Some((key, value)) = walk.next() {
        // SAFETY: as above.
        let left = unsafe { (*ctx).steps_left };
        if left == 0 {
            st = status::STEP_BUDGET;
            // SAFETY: as above.
            unsafe { (*ctx).trap_pc = pc };
            break;
        }
        calls += 1;
        // SAFETY: as above. The trampoline starts the callback with `max_steps`
        // steps: the run's remaining budget, restored to the run's limit below.
        unsafe { (*ctx).max_steps = left - 1 };
        // SAFETY: the trampoline and `func` are compiled code of this run, which
        // checks its accesses (or they are proven) and returns normally on every
        // path; `fp` is the callback's frame (the caller checked the depth).
        st = unsafe { tramp(ctx, func, map, key, value, cb_ctx, fp) };
        // SAFETY: as above.
        let r0 = unsafe {
            (*ctx).max_steps = saved_max;
            (*ctx).r0
        };
        if st != 0 || r0 != 0 {
            break;
        }
    }
    // SAFETY: as above.
    unsafe {
        let c = &mut *ctx;
        c.regions = outer;
        c.tail_calls = saved_tail;
        c.max_steps = saved_max;
    }
    ShimRet {
        r0: calls,
        trapped: st as u64,
    }
}

/// Calls helper `id` with r1..r5, as the interpreter does. A helper's trap is stored in
/// the context (`helper_trap`) and reported in [`ShimRet::trapped`].
///
/// # Safety
/// `ctx` must be the live context of the current run, with valid `regions`, `pkt`,
/// `maps` and `rng` pointers, and no other reference to those objects in use.
pub(crate) unsafe extern "C" fn helper_shim(
    ctx: *mut JitCtx,
    id: u64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
) -> ShimRet {
    // SAFETY: the caller guarantees `ctx` and its pointers are valid for this run and
    // unaliased while the helper runs (compiled code is suspended in this call).
    let c = unsafe { &mut *ctx };
    // SAFETY: as above.
    let regions = unsafe { c.live_regions() };
    let mut hctx = HelperCtx {
        regions: &regions,
        // SAFETY: as above.
        pkt: unsafe { &mut *c.pkt },
        // SAFETY: as above.
        maps: unsafe { &*c.maps },
        cpu: c.cpu,
        // SAFETY: as above.
        rng: unsafe { &mut *c.rng },
        prog_id: c.prog_id,
        timer_cb: c.timer_cb,
    };
    match helpers::call(id as i32, &mut hctx, [a1, a2, a3, a4, a5]) {
        Ok(v) => ShimRet::ok(v),
        Err(kind) => {
            c.helper_trap = Some(kind);
            ShimRet::TRAPPED
        }
    }
}

/// `bpf_timer_start(timer, nsecs, flags)` called directly by compiled code (the
/// update signature, its last argument unused; r0 and the trap flag as [`ShimRet`]): `helpers::timer::start_in`, without
/// the helper table's dispatch and context. A timer pointer that is no map's timer
/// traps as in the helper.
///
/// # Safety
/// `ctx` must be the live context of the current run, with a valid `maps` pointer.
pub(crate) unsafe extern "C" fn timer_start_shim(
    ctx: *mut JitCtx,
    timer: u64,
    nsecs: u64,
    flags: u64,
    _unused: u64,
) -> ShimRet {
    // SAFETY: the caller guarantees `ctx` and its map table are valid for this run.
    let c = unsafe { &mut *ctx };
    // SAFETY: as above.
    let maps = unsafe { &*c.maps };
    match helpers::timer::start_in(maps, [timer, nsecs, flags]) {
        Ok(v) => ShimRet::ok(v),
        Err(kind) => {
            c.helper_trap = Some(kind);
            ShimRet::TRAPPED
        }
    }
}

/// Map types whose `bpf_map_lookup_elem` and `bpf_map_update_elem` are exactly
/// `prog_lookup` / `prog_update` after the helper's argument checks (`helpers/map.rs`),
/// so compiled code may call [`map_lookup_shim`] and [`map_update_shim`] for them when
/// r1 is a constant map handle.
pub(crate) fn direct_map_helpers(map_type: u32) -> bool {
    matches!(
        map_type,
        types::HASH
            | types::LPM_TRIE
            | types::ARRAY
            | types::PERCPU_HASH
            | types::PERCPU_ARRAY
            | types::LRU_HASH
            | types::LRU_PERCPU_HASH
    )
}

/// Whether the program may read (`write` false) or write `len` bytes at `addr`, as
/// `HelperCtx::bytes` checks a helper's memory argument; otherwise records the trap
/// `HelperBadPointer` for helper `helper` in the context.
#[inline(always)]
fn helper_arg_ok(c: &mut JitCtx, helper: i32, addr: u64, len: u64, write: bool) -> bool {
    if len == 0 {
        return true;
    }
    // SAFETY: the callers' contract: `regions` and `pkt` are valid for this run.
    let (regions, pkt) = unsafe { (&*c.regions, &*c.pkt) };
    let stack_lo = c.frame_lo as usize;
    if len <= u32::MAX as u64 && regions.check_from(stack_lo, pkt.md(), addr, len as usize, write) {
        return true;
    }
    c.helper_trap = Some(TrapKind::HelperBadPointer { helper, addr, len });
    false
}

/// `bpf_map_lookup_elem(map, key)` for a map the compiler resolved from a constant r1,
/// of a type [`direct_map_helpers`] accepts: the helper without the dispatch and the
/// map-handle lookup. A bad key pointer traps as in the helper.
///
/// # Safety
/// `ctx` must be the live context of the current run; `map` a map of its object.
pub(crate) unsafe extern "C" fn map_lookup_shim(
    ctx: *mut JitCtx,
    map: *const BoundMap,
    key: u64,
) -> ShimRet {
    // SAFETY: the caller guarantees `ctx` and `map` are valid for this run.
    let (c, m) = unsafe { (&mut *ctx, &*map) };
    if !helper_arg_ok(c, LOOKUP, key, m.info.key_size as u64, false) {
        return ShimRet::TRAPPED;
    }
    // SAFETY: `key` holds key_size readable bytes (just checked).
    ShimRet::ok(unsafe { m.map.prog_lookup(key as usize as *const u8, c.cpu) as u64 })
}

/// `bpf_map_update_elem(map, key, value, flags)` for a map the compiler resolved from a
/// constant r1, of a type [`direct_map_helpers`] accepts and not read-only for
/// programs. Bad pointers trap; map errors are negative errno values, as in the helper.
///
/// # Safety
/// `ctx` must be the live context of the current run; `map` a map of its object.
pub(crate) unsafe extern "C" fn map_update_shim(
    ctx: *mut JitCtx,
    map: *const BoundMap,
    key: u64,
    value: u64,
    flags: u64,
) -> ShimRet {
    // SAFETY: the caller guarantees `ctx` and `map` are valid for this run.
    let (c, m) = unsafe { (&mut *ctx, &*map) };
    if !helper_arg_ok(c, UPDATE, key, m.info.key_size as u64, false)
        || !helper_arg_ok(c, UPDATE, value, m.info.value_size as u64, false)
    {
        return ShimRet::TRAPPED;
    }
    let (key, value) = (key as usize as *const u8, value as usize as *const u8);
    // SAFETY: `key` and `value` hold key_size and value_size readable bytes.
    ShimRet::ok(
        match unsafe { m.map.prog_update(key, value, flags, c.cpu) } {
            Ok(()) => 0,
            Err(e) => (-(e.errno() as i64)) as u64,
        },
    )
}

const LOOKUP: i32 = helpers::MAP_LOOKUP_ELEM as i32;
const UPDATE: i32 = helpers::MAP_UPDATE_ELEM as i32;

/// The full region check (`Regions::check`) for accesses the inline checks did not
/// accept: map values, the context, and everything that is out of bounds. `info` is
/// `len | write << 8`. Returns 1 when the access is allowed.
///
/// # Safety
/// `ctx` must be the live context of the current run.
pub(crate) unsafe extern "C" fn check_shim(ctx: *mut JitCtx, addr: u64, info: u64) -> u64 {
    // SAFETY: the caller guarantees `ctx`, its regions and its packet are valid.
    let c = unsafe { &*ctx };
    // SAFETY: as above.
    let (regions, pkt) = unsafe { (&*c.regions, &*c.pkt) };
    let (len, write) = ((info & 0xff) as usize, info & 0x100 != 0);
    regions.check_from(c.frame_lo as usize, pkt.md(), addr, len, write) as u64
}

/// `bpf_tail_call(ctx, map, index)`: the entry point of the target program, or 0 when
/// the call falls through (no such map or slot, or 33 tail calls made), as the
/// interpreter's `tail_call_target`. One difference, for programs the kernel would
/// refuse: the first argument must be the context (the kernel's verifier demands it),
/// since compiled entry functions rely on r1 holding it; otherwise the call falls
/// through.
///
/// # Safety
/// `ctx` must be the live context of the current run.
pub(crate) unsafe extern "C" fn tail_call_shim(
    ctx: *mut JitCtx,
    r1: u64,
    map: u64,
    index: u64,
) -> u64 {
    // SAFETY: the caller guarantees `ctx` and its pointers are valid.
    let c = unsafe { &mut *ctx };
    if r1 != c.md {
        return 0;
    }
    // SAFETY: as above.
    let maps = unsafe { &*c.maps };
    let Some(m) = maps.resolve(map) else {
        return 0;
    };
    if m.info.map_type != types::PROG_ARRAY || c.tail_calls >= MAX_TAIL_CALLS {
        return 0;
    }
    let Some(id) = m.map.prog_array_get(index as u32) else {
        return 0;
    };
    let Some(slot) = (id as usize).checked_sub(1).filter(|&i| i < c.n_entries) else {
        return 0;
    };
    c.tail_calls += 1;
    if !c.store_ids.is_null() {
        // SAFETY: `store_ids`, when set, points to `n_entries` ids, as `entries`.
        c.prog_id = unsafe { *c.store_ids.add(slot) };
    }
    // SAFETY: `entries` points to `n_entries` entry addresses and `slot` is below that.
    unsafe { *c.entries.add(slot) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_become_traps() {
        let mut c = JitCtx {
            stack_lo: 0,
            frame_lo: 0,
            md: 0,
            trap_pc: 7,
            trap_addr: 0x1234,
            trap_info: 4 | 0x100,
            r0: 0,
            helper_trap: None,
            regions: std::ptr::null(),
            pkt: std::ptr::null_mut(),
            maps: std::ptr::null(),
            rng: std::ptr::null_mut(),
            entries: std::ptr::null(),
            n_entries: 0,
            cpu: 0,
            tail_calls: 0,
            steps_left: 0,
            max_steps: 99,
            interrupt: &NEVER_INTERRUPTED,
            runs_left: 0,
            audit_facts: std::ptr::null(),
            audit_args: [0; 5],
            prog_id: 0,
            store_ids: std::ptr::null(),
            timer_cb: None,
            cb_trampoline: None,
        };
        assert_eq!(
            c.trap(status::OUT_OF_BOUNDS),
            Trap {
                kind: TrapKind::OutOfBounds {
                    addr: 0x1234,
                    len: 4,
                    write: true
                },
                pc: 7
            }
        );
        c.trap_info = 8;
        assert_eq!(
            c.trap(status::MISALIGNED).kind,
            TrapKind::MisalignedAtomic {
                addr: 0x1234,
                len: 8
            }
        );
        assert_eq!(c.trap(status::CALL_DEPTH).kind, TrapKind::CallDepth);
        assert_eq!(
            c.trap(status::STEP_BUDGET).kind,
            TrapKind::StepBudget { limit: 99 }
        );
        c.trap_info = 181;
        assert_eq!(
            c.trap(status::BAD_CALLBACK).kind,
            TrapKind::HelperBadCallback {
                helper: 181,
                value: 0x1234
            }
        );
        c.helper_trap = Some(TrapKind::HelperBadMap {
            helper: 1,
            value: 9,
        });
        assert_eq!(
            c.trap(status::HELPER).kind,
            TrapKind::HelperBadMap {
                helper: 1,
                value: 9
            }
        );
    }
}
