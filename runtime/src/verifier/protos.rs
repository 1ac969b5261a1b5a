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
        1,
        [Map, Read(Size::Key), A, A, A],
        Ret::MapValueOrNull,
        false,
    ),
    p(2, [Map, Read(Size::Key), Read(Size::Value), A, A], I, false),
    p(3, [Map, Read(Size::Key), A, A, A], I, false),
    p(5, [A; 5], I, false),
    p(6, [Read(r32(2)), A, A, A, A], I, false),
    p(7, [A; 5], I, false),
    p(8, [A; 5], I, false),
    p(12, [Ctx, Map, A, A, A], I, false),
    p(23, [A; 5], I, false),
    p(25, [Ctx, Map, A, Read(r(5)), A], I, false),
    p(28, [Read(r32(2)), A, Read(r32(4)), A, A], I, false),
    p(44, [Ctx, A, A, A, A], I, true),
    p(51, [Map, A, A, A, A], I, false),
    p(54, [Ctx, A, A, A, A], I, true),
    p(65, [Ctx, A, A, A, A], I, true),
    p(69, [Ctx, Write(Size::Fixed(FIB_PARAMS)), A, A, A], I, false),
    p(93, [Write(Size::Fixed(4)), A, A, A, A], I, false),
    p(94, [Write(Size::Fixed(4)), A, A, A, A], I, false),
    p(113, [Write(r32(2)), A, A, A, A], I, false),
    p(125, [A; 5], I, false),
    p(130, [Map, Read(r(3)), A, A, A], I, false),
    p(131, [Map, A, A, A, A], Ret::RingRecordOrNull, false),
    p(132, [RingRecord, A, A, A, A], I, false),
    p(133, [RingRecord, A, A, A, A], I, false),
    p(134, [Map, A, A, A, A], I, false),
    p(160, [A; 5], I, false),
    p(181, [A, Callback, A, A, A], I, false),
    p(188, [Ctx, A, A, A, A], I, false),
    p(189, [Ctx, A, Write(r32(4)), A, A], I, false),
    p(190, [Ctx, A, Read(r32(4)), A, A], I, false),
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
