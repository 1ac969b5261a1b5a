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
    p(func::for_each_map_elem, [Map, Callback, A, A, A], I, false),
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
    // A dynptr is 16 bytes (helpers/dynptr.rs).
    p(
        func::dynptr_read,
        [Write(r32(2)), A, Read(DYNPTR), A, A],
        I,
        false,
    ),
    p(
        func::dynptr_write,
        [Read(DYNPTR), A, Read(r32(4)), A, A],
        I,
        false,
    ),
    // A pointer into the dynptr's memory or NULL (left unproven: a scalar).
    p(func::dynptr_data, [Read(DYNPTR), A, A, A, A], I, false),
    // struct iphdr (20 bytes) / ipv6hdr (40), the TCP header with its options.
    p(
        func::tcp_raw_gen_syncookie_ipv4,
        [Read(Size::Fixed(20)), Read(r32(3)), A, A, A],
        I,
        false,
    ),
    p(
        func::tcp_raw_gen_syncookie_ipv6,
        [Read(Size::Fixed(40)), Read(r32(3)), A, A, A],
        I,
        false,
    ),
    p(
        func::tcp_raw_check_syncookie_ipv4,
        [Read(Size::Fixed(20)), Read(Size::Fixed(20)), A, A, A],
        I,
        false,
    ),
    p(
        func::tcp_raw_check_syncookie_ipv6,
        [Read(Size::Fixed(40)), Read(Size::Fixed(20)), A, A, A],
        I,
        false,
    ),
    p(
        func::map_push_elem,
        [Map, Read(Size::Value), A, A, A],
        I,
        false,
    ),
    // Pop and peek write the value (a bloom filter's peek only reads it, and a
    // writable buffer covers that too).
    p(
        func::map_pop_elem,
        [Map, Write(Size::Value), A, A, A],
        I,
        false,
    ),
    p(
        func::map_peek_elem,
        [Map, Write(Size::Value), A, A, A],
        I,
        false,
    ),
    p(
        func::map_lookup_percpu_elem,
        [Map, Read(Size::Key), A, A, A],
        Ret::MapValueOrNull,
        false,
    ),
    p(func::get_current_pid_tgid, [A; 5], I, false),
    p(func::get_current_uid_gid, [A; 5], I, false),
    p(
        func::get_current_comm,
        [Write(r32(2)), A, A, A, A],
        I,
        false,
    ),
    p(func::get_numa_node_id, [A; 5], I, false),
    p(func::ktime_get_tai_ns, [A; 5], I, false),
    p(func::jiffies64, [A; 5], I, false),
    // s2 is read byte by byte with a check each, up to its NUL.
    p(func::strncmp, [Read(r32(2)), A, A, A, A], I, false),
    p(
        func::probe_read_kernel_str,
        [Write(r32(2)), A, A, A, A],
        I,
        false,
    ),
    p(
        func::strtol,
        [Read(r32(2)), A, A, Write(Size::Fixed(8)), A],
        I,
        false,
    ),
    p(
        func::strtoul,
        [Read(r32(2)), A, A, Write(Size::Fixed(8)), A],
        I,
        false,
    ),
    // The socket helpers of the runtime's no-socket model (`helpers/sock.rs`): the
    // lookups return NULL, so r0 is an integer.
    p(func::sk_lookup_tcp, [Ctx, Read(r32(3)), A, A, A], I, false),
    p(func::sk_lookup_udp, [Ctx, Read(r32(3)), A, A, A], I, false),
    p(func::skc_lookup_tcp, [Ctx, Read(r32(3)), A, A, A], I, false),
    p(func::sk_release, [A; 5], I, false),
    p(
        func::tcp_check_syncookie,
        [A, Read(r32(3)), A, Read(r32(5)), A],
        I,
        false,
    ),
    p(
        func::tcp_gen_syncookie,
        [A, Read(r32(3)), A, Read(r32(5)), A],
        I,
        false,
    ),
    p(
        func::check_mtu,
        [Ctx, A, Write(Size::Fixed(4)), A, A],
        I,
        false,
    ),
    // The format is read byte by byte up to its NUL, each byte checked.
    p(
        func::snprintf,
        [Write(r32(2)), A, A, Read(r32(5)), A],
        I,
        false,
    ),
    p(
        func::trace_vprintk,
        [Read(r32(2)), A, Read(r32(4)), A, A],
        I,
        false,
    ),
    // Dynptrs (`helpers/dynptr.rs`): 16 bytes of the program's stack; what they point
    // to is checked at each access, so r0 of bpf_dynptr_data is an integer.
    p(
        func::dynptr_from_mem,
        [Read(r32(2)), A, A, Write(DYNPTR), A],
        I,
        false,
    ),
    p(
        func::ringbuf_reserve_dynptr,
        [Map, A, A, Write(DYNPTR), A],
        I,
        false,
    ),
    p(
        func::ringbuf_submit_dynptr,
        [Write(DYNPTR), A, A, A, A],
        I,
        false,
    ),
    p(
        func::ringbuf_discard_dynptr,
        [Write(DYNPTR), A, A, A, A],
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

const DYNPTR: Size = Size::Fixed(crate::helpers::dynptr::SIZE as u32);

/// The kfuncs' prototypes, by helper-table slot (`kfuncs::KFUNC_BASE` + the runtime's
/// kfunc id), as the kernel's BTF prototypes and KF_* flags describe them.
pub const KFUNC_PROTOS: &[Proto] = &[
    // struct bpf_iter_num: 8 bytes the kfunc writes.
    p(
        k(kf::BPF_ITER_NUM_NEW),
        [Write(Size::Fixed(8)), A, A, A, A],
        I,
        false,
    ),
    // Returns a pointer to the iterator's `cur` or NULL (left unproven: a scalar).
    p(
        k(kf::BPF_ITER_NUM_NEXT),
        [Write(Size::Fixed(8)), A, A, A, A],
        I,
        false,
    ),
    p(
        k(kf::BPF_ITER_NUM_DESTROY),
        [Write(Size::Fixed(8)), A, A, A, A],
        I,
        false,
    ),
    p(
        k(kf::BPF_DYNPTR_FROM_XDP),
        [Ctx, A, Write(DYNPTR), A, A],
        I,
        false,
    ),
    // A pointer into the frame or the buffer, or NULL (left unproven: a scalar). The
    // buffer may be NULL (`buffer__opt`), so it is not a memory argument.
    p(
        k(kf::BPF_DYNPTR_SLICE),
        [Read(DYNPTR), A, A, A, A],
        I,
        false,
    ),
    p(
        k(kf::BPF_DYNPTR_SLICE_RDWR),
        [Read(DYNPTR), A, A, A, A],
        I,
        false,
    ),
    p(k(kf::BPF_DYNPTR_SIZE), [Read(DYNPTR), A, A, A, A], I, false),
    p(
        k(kf::BPF_DYNPTR_ADJUST),
        [Write(DYNPTR), A, A, A, A],
        I,
        false,
    ),
    p(
        k(kf::BPF_DYNPTR_IS_NULL),
        [Read(DYNPTR), A, A, A, A],
        I,
        false,
    ),
    p(
        k(kf::BPF_DYNPTR_IS_RDONLY),
        [Read(DYNPTR), A, A, A, A],
        I,
        false,
    ),
    p(
        k(kf::BPF_DYNPTR_CLONE),
        [Read(DYNPTR), Write(DYNPTR), A, A, A],
        I,
        false,
    ),
    // The outputs are never written (the generic versions).
    p(
        k(kf::BPF_XDP_METADATA_RX_TIMESTAMP),
        [Ctx, A, A, A, A],
        I,
        false,
    ),
    p(k(kf::BPF_XDP_METADATA_RX_HASH), [Ctx, A, A, A, A], I, false),
    p(
        k(kf::BPF_XDP_METADATA_RX_VLAN_TAG),
        [Ctx, A, A, A, A],
        I,
        false,
    ),
    // The tuple and opts are checked by the kfuncs (their sizes are arguments they
    // validate first); an entry returned is a value of the store's tables, or NULL
    // (left unproven: a scalar). Entries passed back are checked to be values of the
    // tables, and a kfunc writing one (status, timeout) writes only its own bytes.
    p(k(kf::BPF_XDP_CT_LOOKUP), [Ctx, A, A, A, A], I, false),
    p(k(kf::BPF_CT_RELEASE), [A; 5], I, false),
    p(k(kf::BPF_XDP_CT_ALLOC), [Ctx, A, A, A, A], I, false),
    p(k(kf::BPF_CT_INSERT_ENTRY), [A; 5], I, false),
    p(k(kf::BPF_CT_SET_TIMEOUT), [A; 5], I, false),
    p(k(kf::BPF_CT_CHANGE_TIMEOUT), [A; 5], I, false),
    p(k(kf::BPF_CT_SET_STATUS), [A; 5], I, false),
    p(k(kf::BPF_CT_CHANGE_STATUS), [A; 5], I, false),
];

use crate::kfuncs::id as kf;
const fn k(id: i32) -> i32 {
    crate::kfuncs::KFUNC_BASE + id
}

/// The prototype of helper `id` (or of the kfunc in helper-table slot `id`).
pub fn proto(id: i32) -> Option<&'static Proto> {
    if id >= crate::kfuncs::KFUNC_BASE {
        return KFUNC_PROTOS.iter().find(|p| p.id == id);
    }
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
        want.push(crate::helpers::FOR_EACH_MAP_ELEM as i32);
        want.sort_unstable();
        want.dedup();
        assert_eq!(ids, want);
    }

    #[test]
    fn prototypes_cover_exactly_the_kfuncs() {
        let mut ids: Vec<i32> = KFUNC_PROTOS.iter().map(|p| p.id).collect();
        ids.sort_unstable();
        let mut want: Vec<i32> = crate::kfuncs::names()
            .filter_map(|n| crate::kfuncs::slot(crate::kfuncs::id_of(n)?))
            .collect();
        want.sort_unstable();
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
