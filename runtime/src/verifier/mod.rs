//! The analysis that proves programs' memory accesses and helper arguments safe, as
//! the kernel's verifier does (kernel/bpf/verifier.c): register and stack states with
//! types, scalar bounds, path-sensitive exploration with state pruning.
//!
//! - `scalar.rs`: the scalar domain (tnum plus signed/unsigned 32- and 64-bit bounds).
//! - `bounds.rs`: free functions on the scalar domain (folding, meets, joins, widening).
//! - `state.rs`: register and stack states of every frame; pruning inclusion.
//! - `protos.rs`: helper prototypes, beside the helper table.
//! - `analyze.rs`: the exploration and the facts it yields.
//!
//! What "proven" means: in every state that reaches the slot, the accessed bytes lie
//! inside one region `memory::Regions::check` accepts for that access (the stack of
//! the current or a caller's frame, the context for reads, the packet between
//! data_meta and the proven range, a map value within value_size, writable for
//! writes, a ring buffer record within its size). Alignment of atomics is not part of
//! the proof. Slots no state reaches are not proven; when the analysis gives up
//! (the complexity limit), nothing is.

pub mod analyze;
pub mod bounds;
pub mod protos;
pub mod scalar;
pub mod state;

use isa::Insn;

use crate::error::TrapKind;

use crate::maptable::{types, MapTable};

/// The region a proven access lies in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    Stack,
    Ctx,
    Packet,
    MapValue { map: u32 },
    Ring,
}

/// What the analysis proved about one instruction slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fact {
    /// A load, store or atomic: its bytes lie in `region` (None: proven, but in
    /// different regions on different paths) in every state reaching it. A helper
    /// call: every pointer argument is proven.
    pub proven: bool,
    pub region: Option<Region>,
    /// A helper call: the map in r1 when it is the same map in every state.
    pub call_map: Option<u32>,
    /// A helper call: bit i set when argument register r(i+1) is a pointer (map,
    /// context, memory, record, callback) proven valid for its size in every state.
    pub proven_args: u8,
    /// A helper call: bit i set when argument register r(i+1) is checked as a pointer.
    pub ptr_args: u8,
    /// A helper call: bit i set when argument register r(i+1) must be the context.
    pub ctx_args: u8,
    /// `bpf_map_update_elem` on `call_map`: no pointer into that map's values can be
    /// read after the call (none is in r6..r9 or a spill of any frame in any state,
    /// and none was ever stored where the analysis does not follow it), so writing an
    /// existing element in place is indistinguishable from the kernel's replacement.
    pub update_in_place: bool,
}

impl Fact {
    /// Whether the trap `kind` of a helper called at this slot contradicts the proof:
    /// the pointer or map it refused is a proven argument's (`args` are r1..r5 at the
    /// call, `ctx` the context's address; a proven context argument is refused only when
    /// it is not the context). The audit of both engines.
    pub fn helper_trap_violates(&self, kind: &TrapKind, args: &[u64; 5], ctx: u64) -> bool {
        let proven = |i: usize| self.proven_args & (1 << i) != 0;
        match *kind {
            TrapKind::OutOfBounds { .. } => self.proven,
            TrapKind::HelperBadPointer { addr, .. } => (0..5).any(|i| {
                proven(i) && args[i] == addr && (self.ctx_args & (1 << i) == 0 || addr != ctx)
            }),
            TrapKind::HelperBadMap { value, .. } => (0..5).any(|i| proven(i) && args[i] == value),
            _ => false,
        }
    }
}

/// What the analysis needs to know of a map.
#[derive(Clone, Copy, Debug)]
pub struct MapDesc {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    /// `BPF_F_RDONLY_PROG` (e.g. `.rodata`): programs may not write its values.
    pub read_only: bool,
    /// For a ring buffer: the bytes of its data area (records lie inside).
    pub ring_size: u32,
}

impl MapDesc {
    pub fn of_table(maps: &MapTable) -> Vec<MapDesc> {
        (0..maps.len())
            .filter_map(|i| maps.get(i))
            .map(|m| MapDesc {
                map_type: m.info.map_type,
                key_size: m.info.key_size,
                value_size: m.info.value_size,
                read_only: m.read_only(),
                ring_size: if m.info.map_type == types::RINGBUF {
                    m.info.max_entries
                } else {
                    0
                },
            })
            .collect()
    }
}

/// The facts of one program.
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    facts: Box<[Fact]>,
    accesses: Vec<usize>,
    unproven: Vec<(usize, String)>,
    /// Instructions processed (at most the complexity limit).
    pub processed: u64,
    /// The complexity limit was reached: nothing is proven.
    pub gave_up: bool,
    /// Some `bpf_tail_call` may pass something other than the context in r1: the
    /// programs it reaches must not assume r1 is the context.
    pub tail_call_unproven_ctx: bool,
    /// Whether the analysis assumed r1 holds the context at the entry.
    pub entry_ctx: bool,
    /// What it ran on, to run it again without that assumption.
    insns: std::sync::Arc<[Option<Insn>]>,
    maps: std::sync::Arc<[MapDesc]>,
}

impl Analysis {
    /// Analyses `insns` (as decoded by `isa::decode_all`, `len` slots) with the
    /// program's maps. `entry_ctx`: r1 holds the context at pc 0.
    pub fn run(decoded: &[(usize, Insn)], len: usize, maps: &[MapDesc], entry_ctx: bool) -> Self {
        Self::run_with_limit(decoded, len, maps, entry_ctx, analyze::COMPLEXITY_LIMIT)
    }

    pub fn run_with_limit(
        decoded: &[(usize, Insn)],
        len: usize,
        maps: &[MapDesc],
        entry_ctx: bool,
        limit: u64,
    ) -> Self {
        let mut at = vec![None; len];
        for (pc, insn) in decoded {
            if *pc < len {
                at[*pc] = Some(*insn);
            }
        }
        let mut a = analyze::analyze(&at, maps, &analyze::Options { entry_ctx, limit });
        a.entry_ctx = entry_ctx;
        a.insns = at.into();
        a.maps = maps.into();
        a
    }

    /// The same program analysed with nothing assumed about r1 at the entry (it may be
    /// reached by a tail call that passes something else).
    pub fn without_entry_ctx(&self) -> Analysis {
        if !self.entry_ctx {
            return self.clone();
        }
        let mut a = analyze::analyze(
            &self.insns,
            &self.maps,
            &analyze::Options {
                entry_ctx: false,
                limit: analyze::COMPLEXITY_LIMIT,
            },
        );
        a.insns = self.insns.clone();
        a.maps = self.maps.clone();
        a
    }

    /// The fact of slot `pc` (the default, nothing proven, outside the program).
    #[inline]
    pub fn fact(&self, pc: usize) -> Fact {
        self.facts.get(pc).copied().unwrap_or_default()
    }

    /// Whether the load, store or atomic at `pc` is proven.
    #[inline]
    pub fn proven(&self, pc: usize) -> bool {
        self.fact(pc).proven
    }

    /// `(proven, total)` memory-access instructions.
    pub fn coverage(&self) -> (usize, usize) {
        let proven = self.accesses.iter().filter(|&&pc| self.proven(pc)).count();
        (proven, self.accesses.len())
    }

    /// The unproven accesses, first ones first, each with a log text in the spirit
    /// of the kernel's verifier log: the instruction, why, and the register states
    /// of the first state that failed.
    pub fn unproven(&self) -> &[(usize, String)] {
        &self.unproven
    }

    /// Strict mode: `Ok` when every memory access and pointer-taking helper call of
    /// the program is proven, else `VerifyError::Unproven` with the log of the
    /// unproven ones (at most 20 entries, then a count).
    pub fn strict(&self, prog: &str) -> Result<(), crate::error::VerifyError> {
        if self.unproven.is_empty() && !self.gave_up {
            return Ok(());
        }
        const SHOWN: usize = 20;
        let mut log = String::new();
        for (_, text) in self.unproven.iter().take(SHOWN) {
            log.push_str(text);
            log.push('\n');
        }
        if self.unproven.len() > SHOWN {
            log.push_str(&format!("... and {} more\n", self.unproven.len() - SHOWN));
        }
        Err(crate::error::VerifyError::Unproven {
            prog: prog.to_string(),
            unproven: self.unproven.len().max(1),
            log,
        })
    }

    /// Marks the access at `pc` proven whatever the analysis found: for tests of the
    /// audit, which must then catch the forged proof. Test builds only.
    #[cfg(test)]
    pub fn forge_proven(&mut self, pc: usize) {
        if let Some(f) = self.facts.get_mut(pc) {
            f.proven = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use isa::opcode::{BPF_PSEUDO_CALL, BPF_PSEUDO_MAP_IDX};
    use isa::RawInsn;

    use super::*;
    use crate::error::TrapKind;
    use crate::interp::{Env, Vm};
    use crate::maptable::MapTable;
    use crate::program::prepare;
    use crate::xdp::Packet;

    const fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> RawInsn {
        RawInsn::new(code, dst, src, off, imm)
    }
    const EXIT: RawInsn = ins(0x95, 0, 0, 0, 0);
    const R0_0: RawInsn = ins(0xb7, 0, 0, 0, 0);

    /// A hash map with 4-byte keys and 16-byte values, index 0.
    const MAPS: &[MapDesc] = &[MapDesc {
        map_type: types::HASH,
        key_size: 4,
        value_size: 16,
        read_only: false,
        ring_size: 0,
    }];

    fn analyse(raw: &[RawInsn]) -> Analysis {
        let decoded = isa::decode_all(raw).expect("decodes");
        Analysis::run(&decoded, raw.len(), MAPS, true)
    }

    /// r2 = data, r3 = data_end (slots 0 and 1).
    const PKT: [RawInsn; 2] = [ins(0x61, 2, 1, 0, 0), ins(0x61, 3, 1, 4, 0)];

    #[test]
    fn packet_accesses_need_a_range_test() {
        // No test: the load at 2 is not proven.
        let a = analyse(&[PKT[0], PKT[1], ins(0x71, 0, 2, 0, 0), EXIT]);
        assert!(a.proven(0) && a.proven(1));
        assert!(!a.proven(2));
        assert!(
            a.unproven()[0].1.contains("r0 = *(u8 *)(r2 + 0)"),
            "{:?}",
            a.unproven()
        );
        // data + 14 > data_end -> exit; then bytes 0..14 are proven, byte 14 is not.
        let prog = [
            PKT[0],
            PKT[1],
            ins(0xbf, 4, 2, 0, 0),
            ins(0x07, 4, 0, 0, 14),
            R0_0,
            ins(0x2d, 4, 3, 3, 0), // if r4 > r3 goto exit
            ins(0x69, 0, 2, 12, 0),
            ins(0x71, 5, 2, 13, 0),
            ins(0x71, 5, 2, 14, 0),
            EXIT,
        ];
        let a = analyse(&prog);
        assert!(a.proven(6) && a.proven(7));
        assert!(!a.proven(8));
        assert_eq!(a.fact(6).region, Some(Region::Packet));
    }

    #[test]
    fn map_values_need_bounded_offsets() {
        // key on the stack, lookup, null test, then r0 + (scalar & mask).
        let with_mask = |mask: i32| {
            vec![
                ins(0x62, 10, 0, -4, 0), // *(u32 *)(r10 - 4) = 0
                ins(0xbf, 2, 10, 0, 0),
                ins(0x07, 2, 0, 0, -4),
                ins(0x18, 1, BPF_PSEUDO_MAP_IDX, 0, 0),
                ins(0, 0, 0, 0, 0),
                ins(0x85, 0, 0, 0, 1), // lookup
                ins(0x15, 0, 0, 5, 0), // if r0 == 0 goto exit
                ins(0x79, 1, 0, 0, 0), // r1 = *(u64 *)(r0 + 0): a scalar
                ins(0x57, 1, 0, 0, mask),
                ins(0x0f, 0, 1, 0, 0), // r0 += r1
                ins(0x71, 3, 0, 0, 0), // r3 = *(u8 *)(r0 + 0)
                R0_0,
                EXIT,
            ]
        };
        let a = analyse(&with_mask(15));
        assert!(
            a.proven(0) && a.proven(7) && a.proven(10),
            "{:?}",
            a.unproven()
        );
        assert_eq!(a.fact(5).call_map, Some(0));
        assert_eq!(a.fact(5).proven_args, 0b11);
        assert_eq!(a.fact(10).region, Some(Region::MapValue { map: 0 }));
        let a = analyse(&with_mask(16));
        assert!(!a.proven(10));
        // Without the null test the value is not proven either.
        let mut p = with_mask(15);
        p[6] = ins(0xb7, 4, 0, 0, 0);
        assert!(!analyse(&p).proven(7));
    }

    #[test]
    fn the_stack_is_one_frame() {
        let a = analyse(&[
            ins(0x7a, 10, 0, -512, 1),
            ins(0x7a, 10, 0, -520, 1),
            ins(0x7a, 10, 0, 0, 1),
            ins(0x79, 0, 10, -8, 0),
            EXIT,
        ]);
        assert!(a.proven(0) && a.proven(3));
        assert!(!a.proven(1) && !a.proven(2));
    }

    #[test]
    fn spilled_pointers_survive_only_intact_slots() {
        // Spill data, data_end; test; overwrite one byte of the data spill; reload.
        let prog = [
            PKT[0],
            PKT[1],
            ins(0x7b, 10, 2, -8, 0),
            ins(0xbf, 4, 2, 0, 0),
            ins(0x07, 4, 0, 0, 8),
            R0_0,
            ins(0x2d, 4, 3, 4, 0),
            ins(0x79, 5, 10, -8, 0),
            ins(0x71, 0, 5, 0, 0), // proven: the spill is intact
            ins(0x72, 10, 0, -7, 1),
            ins(0x79, 5, 10, -8, 0),
            ins(0x71, 0, 5, 0, 0), // not: byte 1 of the spill was overwritten
            EXIT,
        ];
        let a = analyse(&prog);
        assert!(a.proven(8), "{:?}", a.unproven());
        assert!(!a.proven(11));
    }

    #[test]
    fn calls_into_the_entry_function_assume_nothing_of_r1() {
        // 0: r2 = *(u32 *)(r1 + 0); if r1 == 0x1234 exit; r1 = 0x1234; call 0.
        let prog = [
            ins(0x61, 2, 1, 0, 0),
            R0_0,
            ins(0x15, 1, 0, 2, 0x1234),
            ins(0xb7, 1, 0, 0, 0x1234),
            ins(0x85, 0, BPF_PSEUDO_CALL, 0, -5),
            EXIT,
        ];
        let a = analyse(&prog);
        assert!(!a.proven(0));
        // And the interpreter ends with the ordinary trap at slot 0.
        let maps = MapTable::new(Vec::new());
        let p = prepare("t", "xdp", &prog, &[], &maps).unwrap();
        let t = run(&maps, p).unwrap_err();
        assert_eq!(t.pc, 0);
        assert!(matches!(t.kind, TrapKind::OutOfBounds { .. }), "{t}");
    }

    fn run(maps: &MapTable, p: crate::program::Prepared) -> Result<u64, crate::error::Trap> {
        run_audited(maps, p, false)
    }

    fn run_audited(
        maps: &MapTable,
        p: crate::program::Prepared,
        audit: bool,
    ) -> Result<u64, crate::error::Trap> {
        let mut pkt = Packet::new(&[0u8; 64]).unwrap();
        let programs = [p];
        let mut vm = Vm::new(0);
        vm.set_audit(audit);
        vm.run(
            &Env {
                maps,
                programs: &programs,
            },
            0,
            &mut pkt,
        )
    }

    #[test]
    fn the_audit_catches_a_forged_proof() {
        // r1 = 0x1234; r0 = *(u64 *)(r1 + 0): a wild read, not proven.
        let prog = [ins(0xb7, 1, 0, 0, 0x1234), ins(0x79, 0, 1, 0, 0), EXIT];
        let maps = MapTable::new(Vec::new());
        let mut p = prepare("t", "xdp", &prog, &[], &maps).unwrap();
        assert!(!p.analysis().proven(1));
        assert!(!p.ops()[1].is_proven());
        for audit in [false, true] {
            let t = run_audited(&maps, p.clone(), audit).unwrap_err();
            assert!(matches!(t.kind, TrapKind::OutOfBounds { .. }), "{t}");
        }
        // The forged proof makes the load unchecked; the audit checks it anyway and
        // reports the broken proof instead of reading 0x1234. (Without the audit the
        // read would go to that address: only the audit may run a forged proof.)
        p.forge_proven(1);
        assert!(p.ops()[1].is_proven());
        let t = run_audited(&maps, p, true).unwrap_err();
        assert_eq!(t.kind, TrapKind::ProofViolated { pc: 1 });
        assert_eq!(t.pc, 1);
        // The same for a store of an immediate, a store of a register and an atomic.
        for access in [
            ins(0x7a, 1, 0, 0, 7),    // *(u64 *)(r1 + 0) = 7
            ins(0x63, 1, 0, 0, 0),    // *(u32 *)(r1 + 0) = w0
            ins(0xdb, 1, 0, 0, 0),    // lock *(u64 *)(r1 + 0) += r0
            ins(0xc3, 1, 0, 0, 0xe1), // w0 = xchg(r1 + 0, w0)
        ] {
            let prog = [ins(0xb7, 1, 0, 0, 0x1238), R0_0, access, EXIT];
            let mut p = prepare("t", "xdp", &prog, &[], &maps).unwrap();
            assert!(!p.ops()[2].is_proven());
            p.forge_proven(2);
            assert!(p.ops()[2].is_proven(), "{:?}", p.ops()[2]);
            let t = run_audited(&maps, p, true).unwrap_err();
            assert_eq!(t.kind, TrapKind::ProofViolated { pc: 2 }, "{access:?}");
        }
    }

    /// key at fp-4 = 0, value at fp-24; r0 = lookup(map 0, &key); `between` runs with
    /// r0 checked non-null; then update(map 0, &key, &value, 0) at the returned slot.
    fn lookup_then_update(between: &[RawInsn]) -> (Vec<RawInsn>, usize) {
        let mut p = vec![
            ins(0x62, 10, 0, -4, 0),  // *(u32 *)(r10 - 4) = 0
            ins(0x7a, 10, 0, -24, 0), // *(u64 *)(r10 - 24) = 0
            ins(0x7a, 10, 0, -16, 0), // *(u64 *)(r10 - 16) = 0
            ins(0xbf, 2, 10, 0, 0),
            ins(0x07, 2, 0, 0, -4),
            ins(0x18, 1, BPF_PSEUDO_MAP_IDX, 0, 0),
            ins(0, 0, 0, 0, 0),
            ins(0x85, 0, 0, 0, 1), // lookup
        ];
        // if r0 == 0 skip `between` and a read of the value.
        p.push(ins(0x15, 0, 0, between.len() as i16 + 1, 0));
        p.extend_from_slice(between);
        p.push(ins(0x79, 1, 0, 0, 0)); // r1 = *(u64 *)(r0 + 0)
        p.extend_from_slice(&[
            ins(0xbf, 2, 10, 0, 0),
            ins(0x07, 2, 0, 0, -4),
            ins(0xbf, 3, 10, 0, 0),
            ins(0x07, 3, 0, 0, -24),
            ins(0xb7, 4, 0, 0, 0),
            ins(0x18, 1, BPF_PSEUDO_MAP_IDX, 0, 0),
            ins(0, 0, 0, 0, 0),
        ]);
        let call = p.len();
        p.push(ins(0x85, 0, 0, 0, 2)); // update
        p.push(ins(0xbf, 0, 6, 0, 0)); // r0 = r6
        p.push(ins(0x15, 0, 0, 1, 0)); // if r0 == 0 goto exit
        p.push(ins(0x79, 0, 0, 0, 0)); // r0 = *(u64 *)(r0 + 0): reads through r6
        p.push(R0_0);
        p.push(EXIT);
        (p, call)
    }

    #[test]
    fn updates_write_in_place_only_when_no_value_pointer_survives() {
        // r6 = 0 before: nothing survives the update.
        let (mut p, call) = lookup_then_update(&[]);
        p.insert(0, ins(0xb7, 6, 0, 0, 0));
        let a = analyse(&p);
        let f = a.fact(call + 1);
        assert_eq!(f.call_map, Some(0), "{:?}", a.unproven());
        assert!(f.update_in_place);
        // r6 = r0 (the value pointer) survives the update and is read after it.
        let (mut p, call) = lookup_then_update(&[ins(0xbf, 6, 0, 0, 0)]);
        p.insert(0, ins(0xb7, 6, 0, 0, 0));
        let a = analyse(&p);
        assert_eq!(a.fact(call + 1).call_map, Some(0));
        assert!(!a.fact(call + 1).update_in_place);
        // The pointer spilled to the stack survives too.
        let (mut p, call) = lookup_then_update(&[ins(0x7b, 10, 0, -32, 0)]);
        p.insert(0, ins(0xb7, 6, 0, 0, 0));
        assert!(!analyse(&p).fact(call + 1).update_in_place);
        // Stored where the analysis does not follow it (4 bytes of it, unaligned):
        // it escaped, so no update of that map writes in place.
        let (mut p, call) = lookup_then_update(&[ins(0x63, 10, 0, -36, 0)]);
        p.insert(0, ins(0xb7, 6, 0, 0, 0));
        assert!(!analyse(&p).fact(call + 1).update_in_place);
    }

    #[test]
    fn packet_pointers_die_when_the_packet_moves() {
        let prog = [
            ins(0xbf, 6, 1, 0, 0),
            PKT[0],
            PKT[1],
            ins(0xbf, 4, 2, 0, 0),
            ins(0x07, 4, 0, 0, 8),
            R0_0,
            ins(0x2d, 4, 3, 6, 0),
            ins(0xbf, 7, 2, 0, 0),
            ins(0xbf, 1, 6, 0, 0),
            ins(0xb7, 2, 0, 0, 4),
            ins(0x85, 0, 0, 0, 44), // bpf_xdp_adjust_head(ctx, 4)
            ins(0x71, 0, 7, 0, 0),  // stale packet pointer
            R0_0,
            EXIT,
        ];
        let a = analyse(&prog);
        assert!(!a.proven(11));
        assert!(a.fact(10).proven);
    }

    #[test]
    fn the_complexity_limit_proves_nothing() {
        let prog = [ins(0x7a, 10, 0, -8, 1), R0_0, EXIT];
        let decoded = isa::decode_all(&prog).unwrap();
        let a = Analysis::run_with_limit(&decoded, prog.len(), MAPS, true, 2);
        assert!(a.gave_up);
        assert!(!a.proven(0));
        assert!(analyse(&prog).proven(0));
    }

    #[test]
    fn a_tail_call_with_a_forged_ctx_drops_the_entry_assumption() {
        // 0: r2 = *(u32 *)(r1 + 0); r1 = r6 (not the ctx); tail call; exit.
        let prog = |forged: bool| {
            let mut v = vec![
                ins(0x61, 2, 1, 0, 0),
                ins(0xb7, 2, 0, 0, 0),
                ins(0xb7, 3, 0, 0, 0),
                ins(0x85, 0, 0, 0, 12),
                R0_0,
                EXIT,
            ];
            if forged {
                v.insert(1, ins(0xb7, 1, 0, 0, 0x1234));
            }
            v
        };
        let maps = MapTable::new(Vec::new());
        let prepared = |forged| prepare("t", "xdp", &prog(forged), &[], &maps).unwrap();
        let mut honest = [prepared(false)];
        crate::program::forget_entry_ctx_if_tail_calls_forge_it(&mut honest);
        assert!(!honest[0].analysis().tail_call_unproven_ctx);
        assert!(honest[0].analysis().proven(0));
        let mut forged = [prepared(false), prepared(true)];
        assert!(forged[0].analysis().proven(0) && forged[1].analysis().proven(0));
        crate::program::forget_entry_ctx_if_tail_calls_forge_it(&mut forged);
        assert!(!forged[0].analysis().proven(0));
        assert!(!forged[1].analysis().proven(0));
    }

    #[test]
    fn helper_arguments_are_proven_or_listed() {
        // bpf_map_lookup_elem(map, r10 - 2): a 4-byte key that crosses the frame top.
        let prog = |key_off: i32| {
            [
                ins(0x18, 1, BPF_PSEUDO_MAP_IDX, 0, 0),
                ins(0, 0, 0, 0, 0),
                ins(0xbf, 2, 10, 0, 0),
                ins(0x07, 2, 0, 0, key_off),
                ins(0x85, 0, 0, 0, 1),
                R0_0,
                EXIT,
            ]
        };
        let a = analyse(&prog(-2));
        let f = a.fact(4);
        assert_eq!(
            (f.ptr_args, f.proven_args, f.call_map),
            (0b11, 0b01, Some(0))
        );
        assert!(!f.proven);
        let (pc, text) = &a.unproven()[0];
        assert_eq!(*pc, 4);
        assert!(text.contains("call") && text.contains("R2=fp-2"), "{text}");
        let a = analyse(&prog(-4));
        assert!(a.fact(4).proven && a.unproven().is_empty());
    }

    #[test]
    fn helper_writes_clobber_spilled_pointers() {
        // Spill r10 - 16 (a stack pointer) at fp-8; bpf_probe_read_kernel(r10 - 8, 8,
        // r6) may overwrite it with anything; then store through the reloaded value.
        let prog = |helper_dst: i32| {
            [
                ins(0xbf, 6, 10, 0, 0),
                ins(0x07, 6, 0, 0, -16),
                ins(0x7b, 10, 6, -8, 0),
                ins(0xbf, 1, 10, 0, 0),
                ins(0x07, 1, 0, 0, helper_dst),
                ins(0xb7, 2, 0, 0, 8),
                ins(0xbf, 3, 6, 0, 0),
                ins(0x85, 0, 0, 0, 113),
                ins(0x79, 7, 10, -8, 0),
                ins(0x7a, 7, 0, 0, 1),
                R0_0,
                EXIT,
            ]
        };
        // The helper writes fp-24..-16: the spill at fp-8 stays.
        let a = analyse(&prog(-24));
        assert!(a.fact(7).proven && a.proven(9), "{:?}", a.unproven());
        // It writes fp-8..0, over the spill.
        let a = analyse(&prog(-8));
        assert!(a.fact(7).proven);
        assert!(!a.proven(9));
        // It writes where the analysis cannot place (an unproven pointer): every spill
        // may be gone.
        let mut p = prog(-24);
        p[3] = ins(0xbf, 1, 7, 0, 0);
        assert!(!analyse(&p).proven(9));
    }
}
