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
        analyze::analyze(&at, maps, &analyze::Options { entry_ctx, limit })
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

    /// Marks the access at `pc` proven whatever the analysis found: for tests of the
    /// audit, which must then catch the forged proof. Test builds only.
    #[cfg(test)]
    pub fn forge_proven(&mut self, pc: usize) {
        if let Some(f) = self.facts.get_mut(pc) {
            f.proven = true;
        }
    }
}
