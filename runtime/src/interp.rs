//! The interpreter: runs pre-decoded [`Op`]s with the kernel's semantics.
//!
//! - division by zero gives 0; modulo by zero leaves the dividend (its low 32 bits,
//!   zero-extended, for ALU32); `INT_MIN / -1` wraps;
//! - shift amounts are masked to the operand width;
//! - every 32-bit operation zero-extends into the 64-bit register;
//! - jump immediates are sign-extended (JMP) or compared as 32 bits (JMP32);
//! - each bpf-to-bpf call gets its own 512-byte stack frame, at most 8 frames deep;
//! - every load and store is checked against the run's regions (`memory.rs`); an access
//!   outside them stops the run with a [`Trap`].
//!
//! A run allocates nothing: the stack lives in the [`Vm`], the registers on the host stack.
#![deny(unsafe_op_in_unsafe_fn)]

use isa::opcode::*;
use isa::AtomicOp;

use crate::error::{Trap, TrapKind};
use crate::helpers::{self, HelperCtx};
use crate::maptable::{types, MapTable};
use crate::memory::{self, Regions};
use crate::program::{Op, Prepared};
use crate::xdp::Packet;

/// Bytes of stack per function frame (`MAX_BPF_STACK`).
pub const STACK_FRAME: usize = 512;
/// Deepest call chain, the entry function included (`MAX_CALL_FRAMES`).
pub const MAX_CALL_FRAMES: usize = 8;
/// Most tail calls in one run (`MAX_TAIL_CALL_CNT`).
pub const MAX_TAIL_CALLS: u32 = 33;
const STACK_SIZE: usize = STACK_FRAME * MAX_CALL_FRAMES;

/// What a run may use besides its packet: the object's maps and programs.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub maps: &'a MapTable,
    /// Tail-call targets: a prog_array value `n` (never 0: 0 is an empty slot) names
    /// `programs[n - 1]`.
    pub programs: &'a [Prepared],
}

#[derive(Clone, Copy)]
struct CallFrame {
    ret_pc: usize,
    prog: *const Prepared,
    saved: [u64; 4],
    fp: u64,
}

/// Per-worker execution state, reused across runs.
pub struct Vm {
    stack: Box<[u64]>,
    frames: [CallFrame; MAX_CALL_FRAMES - 1],
    /// The worker index: `bpf_get_smp_processor_id()` and the per-CPU slot. Fixed for a run.
    pub cpu: u32,
    pub(crate) rng: u64,
}

impl Vm {
    /// A worker with index `cpu`.
    pub fn new(cpu: u32) -> Vm {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15)
            ^ (cpu as u64).rotate_left(32);
        Vm {
            stack: vec![0u64; STACK_SIZE / 8].into_boxed_slice(),
            frames: [CallFrame { ret_pc: 0, prog: std::ptr::null(), saved: [0; 4], fp: 0 }; MAX_CALL_FRAMES - 1],
            cpu,
            rng: seed | 1,
        }
    }

    /// Runs `env.programs[entry]` once on `pkt` and returns r0.
    pub fn run(&mut self, env: &Env<'_>, entry: usize, pkt: &mut Packet) -> Result<u64, Trap> {
        let stack_lo = self.stack.as_ptr() as usize;
        let stack_hi = stack_lo + STACK_SIZE;
        let regions = Regions { stack_lo, stack_hi, ctx: pkt.md_addr() as usize, values: env.maps.value_areas() };
        let Some(first) = env.programs.get(entry) else {
            return Err(Trap { kind: TrapKind::CallDepth, pc: 0 });
        };
        self.exec(env, first, &regions, pkt, stack_hi as u64)
    }

    fn exec(
        &mut self,
        env: &Env<'_>,
        first: &Prepared,
        regions: &Regions<'_>,
        pkt: &mut Packet,
        stack_top: u64,
    ) -> Result<u64, Trap> {
        let mut prog: *const Prepared = first;
        let mut ops: &[Op] = &first.ops;
        let mut reg = [0u64; 16];
        reg[1] = pkt.md_addr();
        reg[10] = stack_top;
        let mut pc = 0usize;
        let mut depth = 0usize;
        let mut tail_calls = 0u32;

        macro_rules! trap {
            ($kind:expr) => {
                return Err(Trap { kind: $kind, pc: pc - 1 })
            };
        }
        macro_rules! r {
            ($i:expr) => {
                reg[($i as usize) & 15]
            };
        }
        macro_rules! addr {
            ($base:expr, $op:expr) => {
                r!($base).wrapping_add($op.off as i64 as u64)
            };
        }
        macro_rules! load {
            ($op:expr, $size:expr) => {{
                let a = addr!($op.src, $op);
                if !regions.check(pkt.md(), a, $size, false) {
                    trap!(TrapKind::OutOfBounds { addr: a, len: $size as u8, write: false });
                }
                // SAFETY: the range was just checked to be readable memory of the run.
                unsafe { memory::load(a, $size) }
            }};
        }
        macro_rules! store {
            ($op:expr, $size:expr, $val:expr) => {{
                let a = addr!($op.dst, $op);
                let v = $val;
                if !regions.check(pkt.md(), a, $size, true) {
                    trap!(TrapKind::OutOfBounds { addr: a, len: $size as u8, write: true });
                }
                // SAFETY: the range was just checked to be writable memory of the run.
                unsafe { memory::store(a, $size, v) }
            }};
        }
        macro_rules! atomic {
            ($op:expr, $size:expr) => {{
                let a = addr!($op.dst, $op);
                if !regions.check(pkt.md(), a, $size, true) {
                    trap!(TrapKind::OutOfBounds { addr: a, len: $size as u8, write: true });
                }
                if a % $size != 0 {
                    trap!(TrapKind::MisalignedAtomic { addr: a, len: $size as u8 });
                }
                let imm = $op.imm as i32;
                let (aop, fetch) = match imm & !BPF_FETCH {
                    BPF_ATOMIC_ADD => (AtomicOp::Add, imm & BPF_FETCH != 0),
                    BPF_ATOMIC_OR => (AtomicOp::Or, imm & BPF_FETCH != 0),
                    BPF_ATOMIC_AND => (AtomicOp::And, imm & BPF_FETCH != 0),
                    BPF_ATOMIC_XOR => (AtomicOp::Xor, imm & BPF_FETCH != 0),
                    0xe0 => (AtomicOp::Xchg, true),
                    _ => (AtomicOp::CmpXchg, true),
                };
                let src = r!($op.src);
                // SAFETY: checked writable and aligned just above.
                let old = unsafe { memory::atomic_rmw(a, $size, aop, src, r!(0)) };
                let old = if $size == 4 { old as u32 as u64 } else { old };
                if aop == AtomicOp::CmpXchg {
                    r!(0) = old;
                } else if fetch {
                    r!($op.src) = old;
                }
            }};
        }
        macro_rules! alu64 {
            ($op:expr, $f:expr) => {{
                let s = if $op.code & BPF_X != 0 { r!($op.src) } else { $op.imm as u64 };
                let d = r!($op.dst);
                r!($op.dst) = $f(d, s);
            }};
        }
        macro_rules! alu32 {
            ($op:expr, $f:expr) => {{
                let s = if $op.code & BPF_X != 0 { r!($op.src) as u32 } else { $op.imm as u32 };
                let d = r!($op.dst) as u32;
                r!($op.dst) = $f(d, s) as u64;
            }};
        }
        macro_rules! jmp64 {
            ($op:expr, $f:expr) => {{
                let s = if $op.code & BPF_X != 0 { r!($op.src) } else { $op.imm as u64 };
                if $f(r!($op.dst), s) {
                    pc = (pc as i64 + $op.off as i64) as usize;
                }
            }};
        }
        macro_rules! jmp32 {
            ($op:expr, $f:expr) => {{
                let s = if $op.code & BPF_X != 0 { r!($op.src) as u32 } else { $op.imm as u32 };
                if $f(r!($op.dst) as u32, s) {
                    pc = (pc as i64 + $op.off as i64) as usize;
                }
            }};
        }

        loop {
            // SAFETY: `prepare` proved every jump and call target is an instruction start
            // inside `ops`, and that the last instruction ends control flow, so `pc` is
            // always in bounds here; tail calls and returns switch `ops` with `pc` = a
            // valid start of the new program.
            let op = unsafe { *ops.get_unchecked(pc) };
            pc += 1;
            match op.code {
                // ALU64
                0x07 | 0x0f => alu64!(op, |d: u64, s: u64| d.wrapping_add(s)),
                0x17 | 0x1f => alu64!(op, |d: u64, s: u64| d.wrapping_sub(s)),
                0x27 | 0x2f => alu64!(op, |d: u64, s: u64| d.wrapping_mul(s)),
                0x37 | 0x3f => {
                    if op.off == 0 {
                        alu64!(op, |d: u64, s: u64| if s == 0 { 0 } else { d / s })
                    } else {
                        alu64!(op, |d: u64, s: u64| if s == 0 { 0 } else { (d as i64).wrapping_div(s as i64) as u64 })
                    }
                }
                0x47 | 0x4f => alu64!(op, |d: u64, s: u64| d | s),
                0x57 | 0x5f => alu64!(op, |d: u64, s: u64| d & s),
                0x67 | 0x6f => alu64!(op, |d: u64, s: u64| d << (s & 63)),
                0x77 | 0x7f => alu64!(op, |d: u64, s: u64| d >> (s & 63)),
                0x87 => r!(op.dst) = r!(op.dst).wrapping_neg(),
                0x97 | 0x9f => {
                    if op.off == 0 {
                        alu64!(op, |d: u64, s: u64| if s == 0 { d } else { d % s })
                    } else {
                        alu64!(op, |d: u64, s: u64| if s == 0 { d } else { (d as i64).wrapping_rem(s as i64) as u64 })
                    }
                }
                0xa7 | 0xaf => alu64!(op, |d: u64, s: u64| d ^ s),
                0xb7 => r!(op.dst) = op.imm as u64,
                0xbf => {
                    let s = r!(op.src);
                    r!(op.dst) = match op.off {
                        8 => s as i8 as i64 as u64,
                        16 => s as i16 as i64 as u64,
                        32 => s as i32 as i64 as u64,
                        _ => s,
                    }
                }
                0xc7 | 0xcf => alu64!(op, |d: u64, s: u64| ((d as i64) >> (s & 63)) as u64),
                0xd7 => {
                    let d = r!(op.dst);
                    r!(op.dst) = match op.imm {
                        16 => (d as u16).swap_bytes() as u64,
                        32 => (d as u32).swap_bytes() as u64,
                        _ => d.swap_bytes(),
                    }
                }
                // ALU32
                0x04 | 0x0c => alu32!(op, |d: u32, s: u32| d.wrapping_add(s)),
                0x14 | 0x1c => alu32!(op, |d: u32, s: u32| d.wrapping_sub(s)),
                0x24 | 0x2c => alu32!(op, |d: u32, s: u32| d.wrapping_mul(s)),
                0x34 | 0x3c => {
                    if op.off == 0 {
                        alu32!(op, |d: u32, s: u32| if s == 0 { 0 } else { d / s })
                    } else {
                        alu32!(op, |d: u32, s: u32| if s == 0 { 0 } else { (d as i32).wrapping_div(s as i32) as u32 })
                    }
                }
                0x44 | 0x4c => alu32!(op, |d: u32, s: u32| d | s),
                0x54 | 0x5c => alu32!(op, |d: u32, s: u32| d & s),
                0x64 | 0x6c => alu32!(op, |d: u32, s: u32| d << (s & 31)),
                0x74 | 0x7c => alu32!(op, |d: u32, s: u32| d >> (s & 31)),
                0x84 => r!(op.dst) = (r!(op.dst) as u32).wrapping_neg() as u64,
                0x94 | 0x9c => {
                    if op.off == 0 {
                        alu32!(op, |d: u32, s: u32| if s == 0 { d } else { d % s })
                    } else {
                        alu32!(op, |d: u32, s: u32| if s == 0 { d } else { (d as i32).wrapping_rem(s as i32) as u32 })
                    }
                }
                0xa4 | 0xac => alu32!(op, |d: u32, s: u32| d ^ s),
                0xb4 => r!(op.dst) = op.imm as u32 as u64,
                0xbc => {
                    let s = r!(op.src);
                    r!(op.dst) = match op.off {
                        8 => s as i8 as i32 as u32 as u64,
                        16 => s as i16 as i32 as u32 as u64,
                        _ => s as u32 as u64,
                    }
                }
                0xc4 | 0xcc => alu32!(op, |d: u32, s: u32| ((d as i32) >> (s & 31)) as u32),
                0xd4 => {
                    // to_le on a little-endian host: truncate.
                    let d = r!(op.dst);
                    r!(op.dst) = match op.imm {
                        16 => d as u16 as u64,
                        32 => d as u32 as u64,
                        _ => d,
                    }
                }
                0xdc => {
                    let d = r!(op.dst);
                    r!(op.dst) = match op.imm {
                        16 => (d as u16).to_be() as u64,
                        32 => (d as u32).to_be() as u64,
                        _ => d.to_be(),
                    }
                }
                // JMP
                0x05 => pc = (pc as i64 + op.off as i64) as usize,
                0x15 | 0x1d => jmp64!(op, |d: u64, s: u64| d == s),
                0x25 | 0x2d => jmp64!(op, |d: u64, s: u64| d > s),
                0x35 | 0x3d => jmp64!(op, |d: u64, s: u64| d >= s),
                0x45 | 0x4d => jmp64!(op, |d: u64, s: u64| d & s != 0),
                0x55 | 0x5d => jmp64!(op, |d: u64, s: u64| d != s),
                0x65 | 0x6d => jmp64!(op, |d: u64, s: u64| (d as i64) > (s as i64)),
                0x75 | 0x7d => jmp64!(op, |d: u64, s: u64| (d as i64) >= (s as i64)),
                0xa5 | 0xad => jmp64!(op, |d: u64, s: u64| d < s),
                0xb5 | 0xbd => jmp64!(op, |d: u64, s: u64| d <= s),
                0xc5 | 0xcd => jmp64!(op, |d: u64, s: u64| (d as i64) < (s as i64)),
                0xd5 | 0xdd => jmp64!(op, |d: u64, s: u64| (d as i64) <= (s as i64)),
                // JMP32
                0x06 => pc = (pc as i64 + op.off as i64) as usize,
                0x16 | 0x1e => jmp32!(op, |d: u32, s: u32| d == s),
                0x26 | 0x2e => jmp32!(op, |d: u32, s: u32| d > s),
                0x36 | 0x3e => jmp32!(op, |d: u32, s: u32| d >= s),
                0x46 | 0x4e => jmp32!(op, |d: u32, s: u32| d & s != 0),
                0x56 | 0x5e => jmp32!(op, |d: u32, s: u32| d != s),
                0x66 | 0x6e => jmp32!(op, |d: u32, s: u32| (d as i32) > (s as i32)),
                0x76 | 0x7e => jmp32!(op, |d: u32, s: u32| (d as i32) >= (s as i32)),
                0xa6 | 0xae => jmp32!(op, |d: u32, s: u32| d < s),
                0xb6 | 0xbe => jmp32!(op, |d: u32, s: u32| d <= s),
                0xc6 | 0xce => jmp32!(op, |d: u32, s: u32| (d as i32) < (s as i32)),
                0xd6 | 0xde => jmp32!(op, |d: u32, s: u32| (d as i32) <= (s as i32)),
                // Calls and exit.
                0x85 => {
                    if op.src == BPF_PSEUDO_CALL {
                        if depth >= MAX_CALL_FRAMES - 1 {
                            trap!(TrapKind::CallDepth);
                        }
                        self.frames[depth] =
                            CallFrame { ret_pc: pc, prog, saved: [reg[6], reg[7], reg[8], reg[9]], fp: reg[10] };
                        depth += 1;
                        reg[10] -= STACK_FRAME as u64;
                        pc = (pc as i64 + op.off as i64) as usize;
                    } else if op.imm == helpers::TAIL_CALL {
                        if let Some(target) = self.tail_call_target(env, reg[2], reg[3], &mut tail_calls) {
                            prog = target;
                            ops = &target.ops;
                            pc = 0;
                        }
                    } else {
                        let mut ctx = HelperCtx { regions, pkt: &mut *pkt, maps: env.maps, cpu: self.cpu, rng: &mut self.rng };
                        match helpers::call(op.imm as i32, &mut ctx, [reg[1], reg[2], reg[3], reg[4], reg[5]]) {
                            Ok(v) => reg[0] = v,
                            Err(kind) => trap!(kind),
                        }
                    }
                }
                0x95 => {
                    if depth == 0 {
                        return Ok(reg[0]);
                    }
                    depth -= 1;
                    let f = self.frames[depth];
                    pc = f.ret_pc;
                    [reg[6], reg[7], reg[8], reg[9]] = f.saved;
                    reg[10] = f.fp;
                    if f.prog != prog {
                        prog = f.prog;
                        // SAFETY: frame programs point into `env.programs` (or `first`),
                        // which outlive this run.
                        ops = unsafe { &(*prog).ops };
                    }
                }
                // Loads and stores.
                0x61 => r!(op.dst) = load!(op, 4),
                0x69 => r!(op.dst) = load!(op, 2),
                0x71 => r!(op.dst) = load!(op, 1),
                0x79 => r!(op.dst) = load!(op, 8),
                0x81 => r!(op.dst) = load!(op, 4) as u32 as i32 as i64 as u64,
                0x89 => r!(op.dst) = load!(op, 2) as u16 as i16 as i64 as u64,
                0x91 => r!(op.dst) = load!(op, 1) as u8 as i8 as i64 as u64,
                0x62 => store!(op, 4, op.imm as u64),
                0x6a => store!(op, 2, op.imm as u64),
                0x72 => store!(op, 1, op.imm as u64),
                0x7a => store!(op, 8, op.imm as u64),
                0x63 => store!(op, 4, r!(op.src)),
                0x6b => store!(op, 2, r!(op.src)),
                0x73 => store!(op, 1, r!(op.src)),
                0x7b => store!(op, 8, r!(op.src)),
                0xc3 => atomic!(op, 4),
                0xdb => atomic!(op, 8),
                0x18 => {
                    r!(op.dst) = op.imm as u64;
                    pc += 1;
                }
                // `prepare` accepts only the opcodes above; anything else stops the run.
                code => trap!(TrapKind::IllegalInstruction { code }),
            }
        }
    }

    fn tail_call_target<'e>(&self, env: &Env<'e>, map: u64, index: u64, count: &mut u32) -> Option<&'e Prepared> {
        let m = env.maps.resolve(map)?;
        if m.info.map_type != types::PROG_ARRAY || *count >= MAX_TAIL_CALLS {
            return None;
        }
        let id = m.map.prog_array_get(index as u32)?;
        let target = env.programs.get(id.checked_sub(1)? as usize)?;
        *count += 1;
        Some(target)
    }
}
