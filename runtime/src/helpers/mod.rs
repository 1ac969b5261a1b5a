//! Helper functions, in one table indexed by helper id.
//!
//! Every helper receives the run's context ([`HelperCtx`]) and the five argument
//! registers, and returns r0 or a [`TrapKind`] when the program handed it memory it may
//! not touch. Errors a program can handle (a full map, a bad offset) are negative errno
//! values in r0, exactly as the kernel returns them; nothing here touches `errno`.
//!
//! Only the engines call helpers: [`HelperCtx`] and `call` are crate-private, since a
//! helper trusts the context's regions.
//!
//! ```compile_fail,E0603
//! fn forge(ctx: &mut runtime::helpers::HelperCtx<'_, '_>) {
//!     let _ = runtime::helpers::call(1, ctx, [0; 5]);
//! }
//! ```

pub(crate) mod dynptr;
mod event;
pub mod fib;
pub(crate) mod foreach;
mod map;
mod misc;
mod queue;
mod redirect;
mod sock;
mod syncookie;
mod task;
pub mod timer;
pub(crate) mod xdp;

pub use redirect::Redirect;
pub use task::JIFFIES_HZ;

use isa::helpers::func;

use crate::error::{TrapKind, VerifyError};
use crate::maptable::{BoundMap, MapTable};
use crate::memory::{self, Regions};
use crate::xdp::Packet;

/// `bpf_map_lookup_elem` and `bpf_map_update_elem`, which the JIT specialises.
pub const MAP_LOOKUP_ELEM: i64 = func::map_lookup_elem as i64;
pub const MAP_UPDATE_ELEM: i64 = func::map_update_elem as i64;
/// `bpf_tail_call`: executed by the interpreter itself, since it replaces the program.
pub const TAIL_CALL: i64 = func::tail_call as i64;
/// `bpf_loop`: executed by the interpreter itself, since it calls back into the program.
pub const BPF_LOOP: i64 = func::r#loop as i64;
/// bpf_for_each_map_elem, which the engines run themselves (they call its callback).
pub const FOR_EACH_MAP_ELEM: i64 = foreach::FOR_EACH_MAP_ELEM;

/// What a helper may use. Crate-private: helpers trust `regions` to describe memory
/// of the run, so only the engines build one.
pub(crate) struct HelperCtx<'a, 'r> {
    pub(crate) regions: &'a Regions<'r>,
    pub(crate) pkt: &'a mut Packet,
    pub(crate) maps: &'a MapTable,
    pub(crate) cpu: u32,
    pub(crate) rng: &'a mut u64,
    /// Store id of the running program (`Prepared::store_id`): the program a
    /// `bpf_timer_set_callback` names.
    pub(crate) prog_id: u32,
    /// The timer whose callback this run is (map id, element slot), if any.
    pub(crate) timer_cb: Option<(u32, u32)>,
}

impl HelperCtx<'_, '_> {
    /// `len` bytes at `addr` that the program may read, or a trap naming `helper`.
    pub(crate) fn bytes(&self, helper: i32, addr: u64, len: u64) -> Result<&[u8], TrapKind> {
        if len == 0 {
            return Ok(&[]);
        }
        if len > u32::MAX as u64 || !self.regions.check(self.pkt.md(), addr, len as usize, false) {
            return Err(TrapKind::HelperBadPointer { helper, addr, len });
        }
        // SAFETY: just checked to be readable memory of the run; the slice does not
        // outlive the helper call (it borrows `self`).
        Ok(unsafe { memory::slice(addr, len as usize) })
    }

    /// `len` bytes at `addr` that the program may write, or a trap naming `helper`.
    pub(crate) fn bytes_mut(
        &mut self,
        helper: i32,
        addr: u64,
        len: u64,
    ) -> Result<&mut [u8], TrapKind> {
        if len == 0 {
            return Ok(&mut []);
        }
        if len > u32::MAX as u64 || !self.regions.check(self.pkt.md(), addr, len as usize, true) {
            return Err(TrapKind::HelperBadPointer { helper, addr, len });
        }
        // SAFETY: just checked to be writable memory of the run; `&mut self` keeps
        // other views from this context away while the slice lives.
        Ok(unsafe { memory::slice_mut(addr, len as usize) })
    }

    /// The map a program passed in a register.
    pub(crate) fn map(&self, helper: i32, value: u64) -> Result<&'_ BoundMap, TrapKind> {
        self.maps
            .resolve(value)
            .ok_or(TrapKind::HelperBadMap { helper, value })
    }
}

type HelperFn = fn(&mut HelperCtx<'_, '_>, [u64; 5]) -> Result<u64, TrapKind>;

/// The helpers this runtime implements, by id.
const TABLE: &[(i32, HelperFn)] = &[
    (func::map_lookup_elem, map::lookup_elem),
    (func::map_update_elem, map::update_elem),
    (func::map_delete_elem, map::delete_elem),
    (func::ktime_get_ns, misc::ktime_get_ns),
    (func::trace_printk, misc::trace_printk),
    (func::get_prandom_u32, misc::get_prandom_u32),
    (func::get_smp_processor_id, misc::get_smp_processor_id),
    (func::redirect, redirect::redirect),
    (func::perf_event_output, event::perf_event_output),
    (func::csum_diff, misc::csum_diff),
    (func::xdp_adjust_head, xdp::adjust_head),
    (func::redirect_map, redirect::redirect_map),
    (func::xdp_adjust_meta, xdp::adjust_meta),
    (func::xdp_adjust_tail, xdp::adjust_tail),
    (func::fib_lookup, fib::fib_lookup),
    (func::spin_lock, misc::spin_lock),
    (func::spin_unlock, misc::spin_unlock),
    (func::probe_read_kernel, misc::probe_read_kernel),
    (func::ktime_get_boot_ns, misc::ktime_get_boot_ns),
    (func::ringbuf_output, event::ringbuf_output),
    (func::ringbuf_reserve, event::ringbuf_reserve),
    (func::ringbuf_submit, event::ringbuf_submit),
    (func::ringbuf_discard, event::ringbuf_discard),
    (func::ringbuf_query, event::ringbuf_query),
    (func::ktime_get_coarse_ns, misc::ktime_get_coarse_ns),
    (func::xdp_get_buff_len, xdp::get_buff_len),
    (func::xdp_load_bytes, xdp::load_bytes),
    (func::xdp_store_bytes, xdp::store_bytes),
    (func::dynptr_read, dynptr::read),
    (func::dynptr_write, dynptr::write),
    (func::dynptr_data, dynptr::data),
    (func::tcp_raw_gen_syncookie_ipv4, syncookie::gen_ipv4),
    (func::tcp_raw_gen_syncookie_ipv6, syncookie::gen_ipv6),
    (func::tcp_raw_check_syncookie_ipv4, syncookie::check_ipv4),
    (func::tcp_raw_check_syncookie_ipv6, syncookie::check_ipv6),
    (func::map_push_elem, queue::push_elem),
    (func::map_pop_elem, queue::pop_elem),
    (func::map_peek_elem, queue::peek_elem),
    (func::map_lookup_percpu_elem, queue::lookup_percpu_elem),
    (func::get_current_pid_tgid, task::get_current_pid_tgid),
    (func::get_current_uid_gid, task::get_current_uid_gid),
    (func::get_current_comm, task::get_current_comm),
    (func::get_numa_node_id, task::get_numa_node_id),
    (func::ktime_get_tai_ns, task::ktime_get_tai_ns),
    (func::jiffies64, task::jiffies64),
    (func::strncmp, task::strncmp),
    (func::strtol, task::strtol),
    (func::strtoul, task::strtoul),
    (func::probe_read_kernel_str, misc::probe_read_kernel_str),
    (func::sk_lookup_tcp, sock::sk_lookup_tcp),
    (func::sk_lookup_udp, sock::sk_lookup_udp),
    (func::skc_lookup_tcp, sock::skc_lookup_tcp),
    (func::sk_release, sock::sk_release),
    (func::tcp_check_syncookie, sock::tcp_check_syncookie),
    (func::tcp_gen_syncookie, sock::tcp_gen_syncookie),
    (func::check_mtu, sock::check_mtu),
    (func::snprintf, misc::snprintf),
    (func::trace_vprintk, misc::trace_vprintk),
    (func::dynptr_from_mem, dynptr::from_mem),
    (func::ringbuf_reserve_dynptr, dynptr::ringbuf_reserve_dynptr),
    (func::ringbuf_submit_dynptr, dynptr::ringbuf_submit_dynptr),
    (func::ringbuf_discard_dynptr, dynptr::ringbuf_discard_dynptr),
    (func::timer_init, timer::init),
    (func::timer_set_callback, timer::set_callback),
    (func::timer_start, timer::start),
    (func::timer_cancel, timer::cancel),
];

const MAX_ID: usize = 256;

/// The table as a direct index, built at compile time.
static BY_ID: [Option<HelperFn>; MAX_ID] = {
    let mut t: [Option<HelperFn>; MAX_ID] = [None; MAX_ID];
    let mut i = 0;
    while i < TABLE.len() {
        t[TABLE[i].0 as usize] = Some(TABLE[i].1);
        i += 1;
    }
    t
};

/// Calls helper `id`. `check_supported` has accepted `id` at load time.
#[inline]
pub(crate) fn call(id: i32, ctx: &mut HelperCtx<'_, '_>, args: [u64; 5]) -> Result<u64, TrapKind> {
    match BY_ID.get(id as usize).copied().flatten() {
        Some(f) => f(ctx, args),
        None if id == loader::core::POISON_HELPER_ID => Err(TrapKind::PoisonedCoreRelocation),
        None if id >= crate::kfuncs::KFUNC_BASE => match crate::kfuncs::call(id, ctx, args) {
            Some(r) => r,
            None => Err(TrapKind::IllegalInstruction {
                code: isa::opcode::CALL,
            }),
        },
        // Engines run bpf_loop themselves; one that does not reaches this.
        None if id as i64 == BPF_LOOP || id as i64 == FOR_EACH_MAP_ELEM => {
            Err(TrapKind::HelperBadCallback {
                helper: id,
                value: 0,
            })
        }
        None => Err(TrapKind::IllegalInstruction {
            code: isa::opcode::CALL,
        }),
    }
}

/// Whether helper `id` can run here; the error names it.
pub fn check_supported(id: i32) -> Result<(), UnsupportedHelper> {
    // A CO-RE relocation that could not be satisfied leaves libbpf's poison call; like
    // the kernel, accept it at load and stop the run if it is ever reached.
    if id as i64 == TAIL_CALL
        || id as i64 == BPF_LOOP
        || id as i64 == FOR_EACH_MAP_ELEM
        || id == loader::core::POISON_HELPER_ID
        || BY_ID.get(id as usize).copied().flatten().is_some()
    {
        return Ok(());
    }
    Err(UnsupportedHelper { id })
}

/// A helper id the runtime cannot run, to be placed at a program and pc.
pub struct UnsupportedHelper {
    id: i32,
}

impl UnsupportedHelper {
    pub fn at(self, prog: &str, pc: usize) -> VerifyError {
        match isa::helpers::helper_name(self.id) {
            Some(name) => VerifyError::UnsupportedHelper {
                prog: prog.to_string(),
                pc,
                id: self.id,
                name,
            },
            None => VerifyError::UnknownHelper {
                prog: prog.to_string(),
                pc,
                id: self.id,
                name: "no such helper",
            },
        }
    }
}

/// The ids of every helper this runtime implements (tail_call and bpf_loop,
/// which the engines run themselves, included): those `check_supported` takes.
pub fn supported_ids() -> Vec<i32> {
    let mut v: Vec<i32> = TABLE.iter().map(|(id, _)| *id).collect();
    v.push(TAIL_CALL as i32);
    v.push(BPF_LOOP as i32);
    v.push(FOR_EACH_MAP_ELEM as i32);
    v.sort_unstable();
    v
}

/// `clock_gettime(clock)` in nanoseconds, as the time helpers read it.
pub(crate) fn misc_clock_ns(clock: libc::clockid_t) -> u64 {
    misc::clock_ns(clock)
}

/// A negative errno as the kernel's helpers return it in r0.
pub(crate) fn neg_errno(errno: i32) -> u64 {
    (-(errno as i64)) as u64
}
