//! Helper prototypes: for every helper the runtime runs (`helpers::TABLE`, plus
//! `bpf_tail_call` and `bpf_loop`), what each argument register must hold, what r0
//! holds after the call, and whether the call moves or resizes the packet (the
//! kernel's `bpf_func_proto` and `bpf_helper_changes_pkt_data`).
//!
//! The pointer arguments are described as the runtime's helpers check them (the
//! length each one passes to `HelperCtx::bytes`), which is what a proof must cover.

/// Where an argument's byte count comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// The map's key_size (the map in r1).
    Key,
    /// The map's value_size (the map in r1).
    Value,
    /// A fixed number of bytes.
    Fixed(u32),
    /// The value of argument register `r` (1..=5), as the helper reads it: the low 32
    /// bits when `low32`.
    Reg { r: u8, low32: bool },
}

/// What an argument register must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Anything (numbers, flags, unchecked values).
    Any,
    /// A map handle of this program.
    Map,
    /// The context pointer, unmodified.
    Ctx,
    /// Memory the helper reads: `size` bytes (none when the size is 0).
    Read(Size),
    /// Memory the helper writes (and may read): `size` bytes.
    Write(Size),
    /// A reserved ring buffer record, which the helper releases.
    RingRecord,
    /// A function of the program (bpf_loop's callback).
    Callback,
}

/// What r0 holds after the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    Integer,
    /// bpf_map_lookup_elem: a value of the map in r1, or NULL.
    MapValueOrNull,
    /// bpf_ringbuf_reserve: a record of r2 bytes, or NULL.
    RingRecordOrNull,
}

#[derive(Clone, Copy, Debug)]
pub struct Proto {
    pub id: i32,
    pub args: [Arg; 5],
    pub ret: Ret,
    /// Moves or resizes the packet: every packet pointer of every frame is invalid
    /// after the call.
    pub changes_packet: bool,
}

const fn p(id: i32, args: [Arg; 5], ret: Ret, changes_packet: bool) -> Proto {
    Proto {
        id,
        args,
        ret,
        changes_packet,
    }
}

use isa::helpers::func;
use Arg::*;
const A: Arg = Any;
const I: Ret = Ret::Integer;
const fn r(r: u8) -> Size {
    Size::Reg { r, low32: false }
}
const fn r32(r: u8) -> Size {
    Size::Reg { r, low32: true }
}

/// `struct bpf_fib_lookup`'s size, which bpf_fib_lookup checks whatever `plen` says.
const FIB_PARAMS: u32 = crate::helpers::fib::PARAMS_LEN as u32;

/// The prototypes, by id.
pub const PROTOS: &[Proto] = &[
    p(
        func::map_lookup_elem,
        [Map, Read(Size::Key), A, A, A],
        Ret::MapValueOrNull,
        false,
    ),
    p(
        func::map_update_elem,
        [Map, Read(Size::Key), Read(Size::Value), A, A],
        I,
        false,
    ),
    p(
        func::map_delete_elem,
        [Map, Read(Size::Key), A, A, A],
        I,
        false,
    ),
    p(func::ktime_get_ns, [A; 5], I, false),
    p(func::trace_printk, [Read(r32(2)), A, A, A, A], I, false),
    p(func::get_prandom_u32, [A; 5], I, false),
    p(func::get_smp_processor_id, [A; 5], I, false),
    p(func::tail_call, [Ctx, Map, A, A, A], I, false),
    p(func::redirect, [A; 5], I, false),
    p(
        func::perf_event_output,
        [Ctx, Map, A, Read(r(5)), A],
        I,
        false,
    ),
    p(
        func::csum_diff,
        [Read(r32(2)), A, Read(r32(4)), A, A],
        I,
        false,
    ),
    p(func::xdp_adjust_head, [Ctx, A, A, A, A], I, true),
    p(func::redirect_map, [Map, A, A, A, A], I, false),
    p(func::xdp_adjust_meta, [Ctx, A, A, A, A], I, true),
    p(func::xdp_adjust_tail, [Ctx, A, A, A, A], I, true),
    p(
        func::fib_lookup,
        [Ctx, Write(Size::Fixed(FIB_PARAMS)), A, A, A],
        I,
        false,
    ),
    p(
        func::spin_lock,
        [Write(Size::Fixed(4)), A, A, A, A],
        I,
        false,
    ),
    p(
        func::spin_unlock,
        [Write(Size::Fixed(4)), A, A, A, A],
        I,
        false,
    ),
    p(
        func::probe_read_kernel,
        [Write(r32(2)), A, A, A, A],
        I,
        false,
    ),
    p(func::ktime_get_boot_ns, [A; 5], I, false),
    p(func::ringbuf_output, [Map, Read(r(3)), A, A, A], I, false),
    p(
        func::ringbuf_reserve,
        [Map, A, A, A, A],
        Ret::RingRecordOrNull,
        false,
    ),
    p(func::ringbuf_submit, [RingRecord, A, A, A, A], I, false),
    p(func::ringbuf_discard, [RingRecord, A, A, A, A], I, false),
    p(func::ringbuf_query, [Map, A, A, A, A], I, false),
    p(func::ktime_get_coarse_ns, [A; 5], I, false),
    p(func::r#loop, [A, Callback, A, A, A], I, false),
    p(func::xdp_get_buff_len, [Ctx, A, A, A, A], I, false),
    p(
        func::xdp_load_bytes,
        [Ctx, A, Write(r32(4)), A, A],
        I,
        false,
    ),
    p(
        func::xdp_store_bytes,
        [Ctx, A, Read(r32(4)), A, A],
        I,
        false,
    ),
    // The timer helpers never dereference the timer pointer: they look it up among
    // the timer fields of the table's maps (helpers/timer.rs), and trap otherwise.
    p(func::timer_init, [A, Map, A, A, A], I, false),
    p(func::timer_set_callback, [A, Callback, A, A, A], I, false),
    p(func::timer_start, [A; 5], I, false),
    p(func::timer_cancel, [A; 5], I, false),
];

/// The prototype of helper `id`.
pub fn proto(id: i32) -> Option<&'static Proto> {
    PROTOS.iter().find(|p| p.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prototypes_cover_exactly_the_supported_helpers() {
        let mut ids: Vec<i32> = PROTOS.iter().map(|p| p.id).collect();
        ids.sort_unstable();
        let mut want = crate::helpers::supported_ids();
        want.push(crate::helpers::BPF_LOOP as i32);
        want.sort_unstable();
        want.dedup();
        assert_eq!(ids, want);
    }

    #[test]
    fn packet_moving_helpers_are_marked() {
        for p in PROTOS {
            let names = isa::helpers::helper_name(p.id).unwrap_or("");
            let moves = names.contains("adjust_");
            assert_eq!(p.changes_packet, moves, "{} ({names})", p.id);
        }
    }
}
