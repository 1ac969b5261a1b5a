//! The interpreter: runs pre-decoded [`Op`]s with the kernel's semantics.
//!
//! - division by zero gives 0; modulo by zero leaves the dividend (its low 32 bits,
//!   zero-extended, for ALU32); `INT_MIN / -1` wraps;
//! - shift amounts are masked to the operand width;
//! - every 32-bit operation zero-extends into the 64-bit register;
//! - jump immediates are sign-extended (JMP) or compared as 32 bits (JMP32);
//! - each bpf-to-bpf call gets its own 512-byte stack frame, at most 8 frames deep;
//!   the stack a run may touch is the live call chain, `[r10 - 512, top of the
//!   outermost frame)`: the current frame and its callers' (never the memory below the
//!   current frame, where returned callees' frames were);
//! - every load and store is checked against the run's regions (`memory.rs`); an access
//!   outside them stops the run with a [`Trap`];
//! - every run ends: a step budget ([`Vm::max_steps`]) is counted down at each backward
//!   jump taken that lies on a cycle of the control-flow graph ([`crate::cycles`]),
//!   bpf-to-bpf call, `bpf_loop` callback invocation and tail call (the only ways a
//!   run can repeat code, so straight-line code pays nothing); when it runs
//!   out the run stops with [`TrapKind::StepBudget`] at the instruction that would
//!   have taken the next step. Repeated runs stop between two runs when the flag set
//!   with [`Vm::set_interrupt`] is raised.
//!
//! A run allocates nothing: the stack lives in the [`Vm`], the registers on the host stack.
#![deny(unsafe_op_in_unsafe_fn)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use isa::AtomicOp;

use crate::error::{Trap, TrapKind};
use crate::helpers::{self, HelperCtx};
use crate::maptable::{types, MapTable, RingRecords};
use crate::memory::{self, Regions};
use crate::program::{Op, Prepared};
use crate::xdp::Packet;

/// Bytes of stack per function frame (`MAX_BPF_STACK`).
pub const STACK_FRAME: usize = 512;
/// Deepest call chain, the entry function included (`MAX_CALL_FRAMES`).
pub const MAX_CALL_FRAMES: usize = 8;
/// Most tail calls in one run (`MAX_TAIL_CALL_CNT`).
pub const MAX_TAIL_CALLS: u32 = 33;
pub(crate) const STACK_SIZE: usize = STACK_FRAME * MAX_CALL_FRAMES;
/// The most iterations one `bpf_loop` call makes (`BPF_MAX_LOOPS`, 8M).
pub const BPF_MAX_LOOPS: u64 = 1 << 23;
/// The default step budget of one run ([`Vm::max_steps`]): 2^30 = 128 × BPF_MAX_LOOPS.
///
/// The kernel bounds what a verified program may do: a loop it unrolls costs at least
/// one of the verifier's 1M processed instructions per iteration (at most 1M back-edges
/// in a run of a program without callbacks), one `bpf_loop` call makes at most
/// BPF_MAX_LOOPS (8M) callback invocations, and `may_goto` starts with a budget of
/// BPF_MAX_LOOPS too. 2^30 covers a full 8M-iteration `bpf_loop` whose callback takes
/// up to 127 steps (back-edges and calls) per iteration, or 128 such loops one after the
/// other, or a thousand times the back-edges an unrolled loop can verify. The kernel
/// also accepts nested `bpf_loop` calls at full counts (8M × 8M callbacks), which no
/// budget that ends in reasonable time can cover: such programs need a larger
/// `max_steps`. At the runtime's speed 2^30 steps take about a second in the JIT and a
/// few seconds in the interpreter, so a program that never ends stops quickly.
pub const DEFAULT_MAX_STEPS: u64 = 1 << 30;

/// What a run may use besides its packet: the object's maps and programs.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub maps: &'a MapTable,
    /// Tail-call targets: a prog_array value `n` (never 0: 0 is an empty slot) names
    /// `programs[n - 1]`.
    pub programs: &'a [Prepared],
}

/// Where [`Vm::exec`] starts: pc, r1..r3, the frame pointer, the call depth.
#[derive(Clone, Copy)]
struct Start {
    pc: usize,
    /// r1..r4.
    args: [u64; 4],
    fp: u64,
    depth: usize,
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
    /// The step budget of each run (each repeat of a repeated run): backward jumps
    /// taken that lie on a cycle ([`crate::cycles`]), bpf-to-bpf calls, `bpf_loop`
    /// callback invocations and tail calls, counted together. A run that would take step `max_steps + 1` stops with
    /// [`TrapKind::StepBudget`]. [`DEFAULT_MAX_STEPS`] unless set; both engines.
    pub max_steps: u64,
    /// Steps left in the current run (the interpreter's count; the JIT keeps its own).
    steps_left: u64,
    /// Raised (by a signal handler, another thread) to stop repeated runs between two
    /// runs.
    interrupt: Option<Arc<AtomicBool>>,
    /// The audit ([`Vm::set_audit`]): proven accesses are checked too.
    audit: bool,
    /// The timer whose callback runs (map id, element slot), for -EDEADLK.
    pub(crate) timer_cb: Option<(u32, u32)>,
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
            frames: [CallFrame {
                ret_pc: 0,
                prog: std::ptr::null(),
                saved: [0; 4],
                fp: 0,
            }; MAX_CALL_FRAMES - 1],
            cpu,
            rng: seed | 1,
            max_steps: DEFAULT_MAX_STEPS,
            steps_left: DEFAULT_MAX_STEPS,
            interrupt: None,
            audit: false,
            timer_cb: None,
        }
    }

    /// The audit mode (off by default): the interpreter checks every access, also those
    /// the analysis proved and otherwise runs unchecked, and a proven access that
    /// fails its check ends the run with [`TrapKind::ProofViolated`] at its pc instead
    /// of touching memory. What tests of the proofs run; slower.
    pub fn set_audit(&mut self, on: bool) {
        self.audit = on;
    }

    /// Whether the audit mode is on.
    pub fn audit(&self) -> bool {
        self.audit
    }

    /// Sets the step budget of each run (see [`Vm::max_steps`]).
    pub fn with_max_steps(mut self, max_steps: u64) -> Vm {
        self.max_steps = max_steps;
        self
    }

    /// Repeated runs ([`crate::LoadedObject::run_repeated`], its JIT twin) check `flag`
    /// after each run and stop when it is set, reporting the runs done. Checked between
    /// runs only: a run in progress ends by itself (or by its step budget).
    pub fn set_interrupt(&mut self, flag: Arc<AtomicBool>) {
        self.interrupt = Some(flag);
    }

    /// The flag [`Vm::set_interrupt`] set, if any.
    pub(crate) fn interrupt_flag(&self) -> Option<&Arc<AtomicBool>> {
        self.interrupt.as_ref()
    }

    /// Whether the interruption flag is raised.
    pub fn interrupted(&self) -> bool {
        self.interrupt
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// The stack memory as `(lowest address, one past the highest)`, for the JIT,
    /// which runs its frames in the same memory.
    pub(crate) fn stack_bounds(&mut self) -> (usize, usize) {
        let lo = self.stack.as_mut_ptr() as usize;
        (lo, lo + STACK_SIZE)
    }

    /// Runs `env.programs[entry]` once on `pkt` and returns r0.
    pub fn run(&mut self, env: &Env<'_>, entry: usize, pkt: &mut Packet) -> Result<u64, Trap> {
        let stack_lo = self.stack.as_ptr() as usize;
        let stack_hi = stack_lo + STACK_SIZE;
        let records = RingRecords::new(env.maps);
        let regions = Regions {
            stack_lo: stack_hi - STACK_FRAME,
            stack_hi,
            ctx: pkt.md_addr() as usize,
            values: env.maps.value_areas(),
            records: &records,
        };
        let Some(first) = env.programs.get(entry) else {
            return Err(Trap {
                kind: TrapKind::NoSuchProgram { index: entry },
                pc: 0,
            });
        };
        // The program's map addresses and proofs are about the table it was prepared
        // with: never run it with another.
        if first.maps_id() != env.maps.id() {
            return Err(Trap {
                kind: TrapKind::OtherMapTable { index: entry },
                pc: 0,
            });
        }
        let start = Start {
            pc: 0,
            args: [pkt.md_addr(), 0, 0, 0],
            fp: stack_hi as u64,
            depth: 0,
        };
        self.steps_left = self.max_steps;
        if self.audit {
            self.exec::<true>(env, first, &regions, pkt, start)
        } else {
            self.exec::<false>(env, first, &regions, pkt, start)
        }
    }

    /// Runs the `bpf_timer` callback at slot `pc` (a function of `env.programs[entry]`)
    /// with r1 = the map's handle, r2 = the key, r3 = the value, in a frame of its own
    /// at depth 0, with `extra` readable besides the table's values (the key's copy).
    /// `timer` is the timer whose callback this is: `bpf_timer_cancel` of it returns
    /// -EDEADLK. The callback has no packet: `pkt` is an empty frame.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run_timer_callback(
        &mut self,
        env: &Env<'_>,
        entry: usize,
        pc: usize,
        args: [u64; 3],
        extra: crate::memory::ValueArea,
        pkt: &mut Packet,
        timer: (u32, u32),
    ) -> Result<u64, Trap> {
        let Some(prog) = env.programs.get(entry) else {
            return Err(Trap {
                kind: TrapKind::NoSuchProgram { index: entry },
                pc: 0,
            });
        };
        if prog.maps_id() != env.maps.id() {
            return Err(Trap {
                kind: TrapKind::OtherMapTable { index: entry },
                pc: 0,
            });
        }
        if pc == 0 || prog.functions().binary_search(&pc).is_err() {
            return Err(Trap {
                kind: TrapKind::HelperBadCallback {
                    helper: isa::helpers::func::timer_set_callback,
                    value: pc as u64,
                },
                pc: 0,
            });
        }
        let stack_lo = self.stack.as_ptr() as usize;
        let stack_hi = stack_lo + STACK_SIZE;
        let records = RingRecords::new(env.maps);
        let mut values = env.maps.value_areas().to_vec();
        values.push(extra);
        let regions = Regions {
            stack_lo: stack_hi - STACK_FRAME,
            stack_hi,
            ctx: pkt.md_addr() as usize,
            values: &values,
            records: &records,
        };
        let start = Start {
            pc,
            args: [args[0], args[1], args[2], 0],
            fp: stack_hi as u64,
            depth: 0,
        };
        self.steps_left = self.max_steps;
        self.timer_cb = Some(timer);
        let r = if self.audit {
            self.exec::<true>(env, prog, &regions, pkt, start)
        } else {
            self.exec::<false>(env, prog, &regions, pkt, start)
        };
        self.timer_cb = None;
        r
    }

    /// Runs `first` from `start.pc` until the function entered there returns. A run
    /// starts at pc 0 with depth 0; a `bpf_loop` callback starts at its function with
    /// a frame of its own below the caller's. `AUDIT`: proven accesses are checked too
    /// (see [`Vm::set_audit`]).
    fn exec<const AUDIT: bool>(
        &mut self,
        env: &Env<'_>,
        first: &Prepared,
        regions: &Regions<'_>,
        pkt: &mut Packet,
        start: Start,
    ) -> Result<u64, Trap> {
        // The live stack follows the current frame: `[r10 - 512, stack_hi)`.
        let mut regions = Regions {
            stack_lo: (start.fp as usize).wrapping_sub(STACK_FRAME),
            ..*regions
        };
        let mut prog: *const Prepared = first;
        let mut ops: &[Op] = first.ops();
        let mut reg = [0u64; 16];
        [reg[1], reg[2], reg[3], reg[4]] = start.args;
        reg[10] = start.fp;
        let mut pc = start.pc;
        let base_depth = start.depth;
        let mut depth = base_depth;
        let mut tail_calls = 0u32;

        macro_rules! trap {
            ($kind:expr) => {
                return Err(Trap {
                    kind: $kind,
                    pc: pc - 1,
                })
            };
        }
        // A trap where the analysis proved the access safe ends the run with
        // ProofViolated (the audit): the trap path looks at the facts.
        macro_rules! mem_trap {
            ($kind:expr) => {{
                // SAFETY: `prog` points into `env.programs` (or `first`), which outlive
                // this run.
                let facts = unsafe { (*prog).analysis() };
                let kind = audit(facts, pc - 1, $kind, &reg, pkt.md_addr());
                trap!(kind)
            }};
        }
        // One step of the budget, taken by the instruction at `pc - 1`.
        macro_rules! step {
            () => {
                if self.steps_left == 0 {
                    trap!(TrapKind::StepBudget {
                        limit: self.max_steps
                    });
                }
                self.steps_left -= 1;
            };
        }
        macro_rules! r {
            ($i:expr) => {
                reg[($i as usize) & 15]
            };
        }
        macro_rules! addr {
            ($base:expr, $off:expr) => {
                r!($base).wrapping_add($off as i64 as u64)
            };
        }
        // The region check of a checked access (and, in the audit, of a proven one).
        macro_rules! check {
            ($a:expr, $size:expr, $write:expr) => {
                if !regions.check(pkt.md(), $a, $size, $write) {
                    mem_trap!(TrapKind::OutOfBounds {
                        addr: $a,
                        len: $size as u8,
                        write: $write
                    });
                }
            };
        }
        macro_rules! load {
            ($src:expr, $off:expr, $size:expr) => {{
                let a = addr!($src, $off);
                check!(a, $size, false);
                // SAFETY: the range was just checked to be readable memory of the run.
                unsafe { memory::load(a, $size) }
            }};
        }
        macro_rules! load_proven {
            ($src:expr, $off:expr, $size:expr) => {{
                let a = addr!($src, $off);
                if AUDIT {
                    check!(a, $size, false);
                }
                // SAFETY: a `Proven` load: the analysis proved the range readable in
                // every state reaching this slot, for this run (`memory::load_proven`).
                unsafe { memory::load_proven(a, $size) }
            }};
        }
        macro_rules! store {
            ($dst:expr, $off:expr, $size:expr, $val:expr) => {{
                let a = addr!($dst, $off);
                let v = $val;
                check!(a, $size, true);
                // SAFETY: the range was just checked to be writable memory of the run.
                unsafe { memory::store(a, $size, v) }
            }};
        }
        macro_rules! store_proven {
            ($dst:expr, $off:expr, $size:expr, $val:expr) => {{
                let a = addr!($dst, $off);
                let v = $val;
                if AUDIT {
                    check!(a, $size, true);
                }
                // SAFETY: a `Proven` store: the analysis proved the range writable in
                // every state reaching this slot, for this run (`memory::store_proven`).
                unsafe { memory::store_proven(a, $size, v) }
            }};
        }
        macro_rules! atomic {
            ($proven:expr, $size:expr, $aop:expr, $fetch:expr, $dst:expr, $src:expr, $off:expr) => {{
                let a = addr!($dst, $off);
                if !$proven || AUDIT {
                    check!(a, $size, true);
                }
                // Alignment is not part of the proof: always checked.
                if a % $size != 0 {
                    trap!(TrapKind::MisalignedAtomic {
                        addr: a,
                        len: $size as u8
                    });
                }
                let aop: AtomicOp = $aop;
                let src = r!($src);
                let old = if $proven {
                    // SAFETY: a `Proven` atomic: the analysis proved the range writable
                    // (`memory::atomic_rmw_proven`); aligned, checked just above.
                    unsafe { memory::atomic_rmw_proven(a, $size, aop, src, r!(0)) }
                } else {
                    // SAFETY: checked writable and aligned just above.
                    unsafe { memory::atomic_rmw(a, $size, aop, src, r!(0)) }
                };
                let old = if $size == 4 { old as u32 as u64 } else { old };
                if aop == AtomicOp::CmpXchg {
                    r!(0) = old;
                } else if $fetch || aop == AtomicOp::Xchg {
                    r!($src) = old;
                }
            }};
        }
        // dst = f(dst, operand) in 64 bits; the immediate is sign-extended.
        macro_rules! alu64 {
            ($dst:expr, $s:expr, $f:expr) => {{
                let s: u64 = $s;
                let d = r!($dst);
                r!($dst) = $f(d, s);
            }};
        }
        // dst = f(dst, operand) on the low 32 bits, zero-extended.
        macro_rules! alu32 {
            ($dst:expr, $s:expr, $f:expr) => {{
                let s = $s as u32;
                let d = r!($dst) as u32;
                r!($dst) = $f(d, s) as u64;
            }};
        }
        macro_rules! jump {
            ($off:expr) => {{
                // SAFETY: `prog` points into `env.programs` (or `first`), which
                // outlive this run.
                if $off < 0 && unsafe { (*prog).counts_step(pc - 1) } {
                    step!();
                }
                pc = (pc as i64 + $off as i64) as usize;
            }};
        }
        macro_rules! jmp64 {
            ($dst:expr, $s:expr, $off:expr, $f:expr) => {{
                let s: u64 = $s;
                if $f(r!($dst), s) {
                    jump!($off);
                }
            }};
        }
        macro_rules! jmp32 {
            ($dst:expr, $s:expr, $off:expr, $f:expr) => {{
                let s = $s as u32;
                if $f(r!($dst) as u32, s) {
                    jump!($off);
                }
            }};
        }
        let div64 = |d: u64, s: u64| d.checked_div(s).unwrap_or(0);
        let sdiv64 = |d: u64, s: u64| {
            if s == 0 {
                0
            } else {
                (d as i64).wrapping_div(s as i64) as u64
            }
        };
        let mod64 = |d: u64, s: u64| if s == 0 { d } else { d % s };
        let smod64 = |d: u64, s: u64| {
            if s == 0 {
                d
            } else {
                (d as i64).wrapping_rem(s as i64) as u64
            }
        };
        let div32 = |d: u32, s: u32| d.checked_div(s).unwrap_or(0);
        let sdiv32 = |d: u32, s: u32| {
            if s == 0 {
                0
            } else {
                (d as i32).wrapping_div(s as i32) as u32
            }
        };
        let mod32 = |d: u32, s: u32| if s == 0 { d } else { d % s };
        let smod32 = |d: u32, s: u32| {
            if s == 0 {
                d
            } else {
                (d as i32).wrapping_rem(s as i32) as u32
            }
        };

        loop {
            // SAFETY: `prepare` proved every jump and call target is an instruction start
            // inside `ops`, and that the last instruction ends control flow, so `pc` is
            // always in bounds here; tail calls and returns switch `ops` with `pc` = a
            // valid start of the new program. `Prepared` is made only by `prepare`.
            let op = unsafe { *ops.get_unchecked(pc) };
            pc += 1;
            match op {
                // ALU64
                Op::Add64Imm { dst, imm } => alu64!(dst, imm as u64, u64::wrapping_add),
                Op::Add64Reg { dst, src } => alu64!(dst, r!(src), u64::wrapping_add),
                Op::Sub64Imm { dst, imm } => alu64!(dst, imm as u64, u64::wrapping_sub),
                Op::Sub64Reg { dst, src } => alu64!(dst, r!(src), u64::wrapping_sub),
                Op::Mul64Imm { dst, imm } => alu64!(dst, imm as u64, u64::wrapping_mul),
                Op::Mul64Reg { dst, src } => alu64!(dst, r!(src), u64::wrapping_mul),
                Op::Div64Imm { dst, imm } => alu64!(dst, imm as u64, div64),
                Op::Div64Reg { dst, src } => alu64!(dst, r!(src), div64),
                Op::SDiv64Imm { dst, imm } => alu64!(dst, imm as u64, sdiv64),
                Op::SDiv64Reg { dst, src } => alu64!(dst, r!(src), sdiv64),
                Op::Or64Imm { dst, imm } => alu64!(dst, imm as u64, |d: u64, s: u64| d | s),
                Op::Or64Reg { dst, src } => alu64!(dst, r!(src), |d: u64, s: u64| d | s),
                Op::And64Imm { dst, imm } => alu64!(dst, imm as u64, |d: u64, s: u64| d & s),
                Op::And64Reg { dst, src } => alu64!(dst, r!(src), |d: u64, s: u64| d & s),
                Op::Lsh64Imm { dst, imm } => {
                    alu64!(dst, imm as u64, |d: u64, s: u64| d << (s & 63))
                }
                Op::Lsh64Reg { dst, src } => alu64!(dst, r!(src), |d: u64, s: u64| d << (s & 63)),
                Op::Rsh64Imm { dst, imm } => {
                    alu64!(dst, imm as u64, |d: u64, s: u64| d >> (s & 63))
                }
                Op::Rsh64Reg { dst, src } => alu64!(dst, r!(src), |d: u64, s: u64| d >> (s & 63)),
                Op::Mod64Imm { dst, imm } => alu64!(dst, imm as u64, mod64),
                Op::Mod64Reg { dst, src } => alu64!(dst, r!(src), mod64),
                Op::SMod64Imm { dst, imm } => alu64!(dst, imm as u64, smod64),
                Op::SMod64Reg { dst, src } => alu64!(dst, r!(src), smod64),
                Op::Xor64Imm { dst, imm } => alu64!(dst, imm as u64, |d: u64, s: u64| d ^ s),
                Op::Xor64Reg { dst, src } => alu64!(dst, r!(src), |d: u64, s: u64| d ^ s),
                Op::Arsh64Imm { dst, imm } => {
                    alu64!(dst, imm as u64, |d: u64, s: u64| ((d as i64) >> (s & 63))
                        as u64)
                }
                Op::Arsh64Reg { dst, src } => {
                    alu64!(dst, r!(src), |d: u64, s: u64| ((d as i64) >> (s & 63))
                        as u64)
                }
                Op::Mov64Imm { dst, imm } => r!(dst) = imm as u64,
                Op::Mov64Reg { dst, src } => r!(dst) = r!(src),
                Op::MovSx64B { dst, src } => r!(dst) = r!(src) as i8 as i64 as u64,
                Op::MovSx64H { dst, src } => r!(dst) = r!(src) as i16 as i64 as u64,
                Op::MovSx64W { dst, src } => r!(dst) = r!(src) as i32 as i64 as u64,
                Op::Neg64 { dst } => r!(dst) = r!(dst).wrapping_neg(),
                // ALU32
                Op::Add32Imm { dst, imm } => alu32!(dst, imm, u32::wrapping_add),
                Op::Add32Reg { dst, src } => alu32!(dst, r!(src), u32::wrapping_add),
                Op::Sub32Imm { dst, imm } => alu32!(dst, imm, u32::wrapping_sub),
                Op::Sub32Reg { dst, src } => alu32!(dst, r!(src), u32::wrapping_sub),
                Op::Mul32Imm { dst, imm } => alu32!(dst, imm, u32::wrapping_mul),
                Op::Mul32Reg { dst, src } => alu32!(dst, r!(src), u32::wrapping_mul),
                Op::Div32Imm { dst, imm } => alu32!(dst, imm, div32),
                Op::Div32Reg { dst, src } => alu32!(dst, r!(src), div32),
                Op::SDiv32Imm { dst, imm } => alu32!(dst, imm, sdiv32),
                Op::SDiv32Reg { dst, src } => alu32!(dst, r!(src), sdiv32),
                Op::Or32Imm { dst, imm } => alu32!(dst, imm, |d: u32, s: u32| d | s),
                Op::Or32Reg { dst, src } => alu32!(dst, r!(src), |d: u32, s: u32| d | s),
                Op::And32Imm { dst, imm } => alu32!(dst, imm, |d: u32, s: u32| d & s),
                Op::And32Reg { dst, src } => alu32!(dst, r!(src), |d: u32, s: u32| d & s),
                Op::Lsh32Imm { dst, imm } => alu32!(dst, imm, |d: u32, s: u32| d << (s & 31)),
                Op::Lsh32Reg { dst, src } => alu32!(dst, r!(src), |d: u32, s: u32| d << (s & 31)),
                Op::Rsh32Imm { dst, imm } => alu32!(dst, imm, |d: u32, s: u32| d >> (s & 31)),
                Op::Rsh32Reg { dst, src } => alu32!(dst, r!(src), |d: u32, s: u32| d >> (s & 31)),
                Op::Mod32Imm { dst, imm } => alu32!(dst, imm, mod32),
                Op::Mod32Reg { dst, src } => alu32!(dst, r!(src), mod32),
                Op::SMod32Imm { dst, imm } => alu32!(dst, imm, smod32),
                Op::SMod32Reg { dst, src } => alu32!(dst, r!(src), smod32),
                Op::Xor32Imm { dst, imm } => alu32!(dst, imm, |d: u32, s: u32| d ^ s),
                Op::Xor32Reg { dst, src } => alu32!(dst, r!(src), |d: u32, s: u32| d ^ s),
                Op::Arsh32Imm { dst, imm } => {
                    alu32!(dst, imm, |d: u32, s: u32| ((d as i32) >> (s & 31)) as u32)
                }
                Op::Arsh32Reg { dst, src } => {
                    alu32!(dst, r!(src), |d: u32, s: u32| ((d as i32) >> (s & 31))
                        as u32)
                }
                Op::Mov32Imm { dst, imm } => r!(dst) = imm as u32 as u64,
                Op::Mov32Reg { dst, src } => r!(dst) = r!(src) as u32 as u64,
                Op::MovSx32B { dst, src } => r!(dst) = r!(src) as i8 as i32 as u32 as u64,
                Op::MovSx32H { dst, src } => r!(dst) = r!(src) as i16 as i32 as u32 as u64,
                Op::Neg32 { dst } => r!(dst) = (r!(dst) as u32).wrapping_neg() as u64,
                // Byte order (a little-endian host: to_le truncates, to_be swaps).
                Op::Le16 { dst } => r!(dst) = r!(dst) as u16 as u64,
                Op::Le32 { dst } => r!(dst) = r!(dst) as u32 as u64,
                Op::Le64 { dst: _ } => {}
                Op::Be16 { dst } => r!(dst) = (r!(dst) as u16).to_be() as u64,
                Op::Be32 { dst } => r!(dst) = (r!(dst) as u32).to_be() as u64,
                Op::Be64 { dst } => r!(dst) = r!(dst).to_be(),
                Op::Swap16 { dst } => r!(dst) = (r!(dst) as u16).swap_bytes() as u64,
                Op::Swap32 { dst } => r!(dst) = (r!(dst) as u32).swap_bytes() as u64,
                Op::Swap64 { dst } => r!(dst) = r!(dst).swap_bytes(),
                // JMP
                Op::Ja { off } => jump!(off),
                Op::Jeq64Imm { dst, imm, off } => {
                    jmp64!(dst, imm as u64, off, |d: u64, s: u64| d == s)
                }
                Op::Jeq64Reg { dst, src, off } => {
                    jmp64!(dst, r!(src), off, |d: u64, s: u64| d == s)
                }
                Op::Jgt64Imm { dst, imm, off } => {
                    jmp64!(dst, imm as u64, off, |d: u64, s: u64| d > s)
                }
                Op::Jgt64Reg { dst, src, off } => jmp64!(dst, r!(src), off, |d: u64, s: u64| d > s),
                Op::Jge64Imm { dst, imm, off } => {
                    jmp64!(dst, imm as u64, off, |d: u64, s: u64| d >= s)
                }
                Op::Jge64Reg { dst, src, off } => {
                    jmp64!(dst, r!(src), off, |d: u64, s: u64| d >= s)
                }
                Op::Jset64Imm { dst, imm, off } => {
                    jmp64!(dst, imm as u64, off, |d: u64, s: u64| d & s != 0)
                }
                Op::Jset64Reg { dst, src, off } => {
                    jmp64!(dst, r!(src), off, |d: u64, s: u64| d & s != 0)
                }
                Op::Jne64Imm { dst, imm, off } => {
                    jmp64!(dst, imm as u64, off, |d: u64, s: u64| d != s)
                }
                Op::Jne64Reg { dst, src, off } => {
                    jmp64!(dst, r!(src), off, |d: u64, s: u64| d != s)
                }
                Op::Jsgt64Imm { dst, imm, off } => {
                    jmp64!(dst, imm as u64, off, |d: u64, s: u64| (d as i64)
                        > (s as i64))
                }
                Op::Jsgt64Reg { dst, src, off } => {
                    jmp64!(dst, r!(src), off, |d: u64, s: u64| (d as i64) > (s as i64))
                }
                Op::Jsge64Imm { dst, imm, off } => {
                    jmp64!(dst, imm as u64, off, |d: u64, s: u64| (d as i64)
                        >= (s as i64))
                }
                Op::Jsge64Reg { dst, src, off } => {
                    jmp64!(dst, r!(src), off, |d: u64, s: u64| (d as i64) >= (s as i64))
                }
                Op::Jlt64Imm { dst, imm, off } => {
                    jmp64!(dst, imm as u64, off, |d: u64, s: u64| d < s)
                }
                Op::Jlt64Reg { dst, src, off } => jmp64!(dst, r!(src), off, |d: u64, s: u64| d < s),
                Op::Jle64Imm { dst, imm, off } => {
                    jmp64!(dst, imm as u64, off, |d: u64, s: u64| d <= s)
                }
                Op::Jle64Reg { dst, src, off } => {
                    jmp64!(dst, r!(src), off, |d: u64, s: u64| d <= s)
                }
                Op::Jslt64Imm { dst, imm, off } => {
                    jmp64!(dst, imm as u64, off, |d: u64, s: u64| (d as i64)
                        < (s as i64))
                }
                Op::Jslt64Reg { dst, src, off } => {
                    jmp64!(dst, r!(src), off, |d: u64, s: u64| (d as i64) < (s as i64))
                }
                Op::Jsle64Imm { dst, imm, off } => {
                    jmp64!(dst, imm as u64, off, |d: u64, s: u64| (d as i64)
                        <= (s as i64))
                }
                Op::Jsle64Reg { dst, src, off } => {
                    jmp64!(dst, r!(src), off, |d: u64, s: u64| (d as i64) <= (s as i64))
                }
                // JMP32
                Op::Jeq32Imm { dst, imm, off } => jmp32!(dst, imm, off, |d: u32, s: u32| d == s),
                Op::Jeq32Reg { dst, src, off } => {
                    jmp32!(dst, r!(src), off, |d: u32, s: u32| d == s)
                }
                Op::Jgt32Imm { dst, imm, off } => jmp32!(dst, imm, off, |d: u32, s: u32| d > s),
                Op::Jgt32Reg { dst, src, off } => jmp32!(dst, r!(src), off, |d: u32, s: u32| d > s),
                Op::Jge32Imm { dst, imm, off } => jmp32!(dst, imm, off, |d: u32, s: u32| d >= s),
                Op::Jge32Reg { dst, src, off } => {
                    jmp32!(dst, r!(src), off, |d: u32, s: u32| d >= s)
                }
                Op::Jset32Imm { dst, imm, off } => {
                    jmp32!(dst, imm, off, |d: u32, s: u32| d & s != 0)
                }
                Op::Jset32Reg { dst, src, off } => {
                    jmp32!(dst, r!(src), off, |d: u32, s: u32| d & s != 0)
                }
                Op::Jne32Imm { dst, imm, off } => jmp32!(dst, imm, off, |d: u32, s: u32| d != s),
                Op::Jne32Reg { dst, src, off } => {
                    jmp32!(dst, r!(src), off, |d: u32, s: u32| d != s)
                }
                Op::Jsgt32Imm { dst, imm, off } => {
                    jmp32!(dst, imm, off, |d: u32, s: u32| (d as i32) > (s as i32))
                }
                Op::Jsgt32Reg { dst, src, off } => {
                    jmp32!(dst, r!(src), off, |d: u32, s: u32| (d as i32) > (s as i32))
                }
                Op::Jsge32Imm { dst, imm, off } => {
                    jmp32!(dst, imm, off, |d: u32, s: u32| (d as i32) >= (s as i32))
                }
                Op::Jsge32Reg { dst, src, off } => {
                    jmp32!(dst, r!(src), off, |d: u32, s: u32| (d as i32) >= (s as i32))
                }
                Op::Jlt32Imm { dst, imm, off } => jmp32!(dst, imm, off, |d: u32, s: u32| d < s),
                Op::Jlt32Reg { dst, src, off } => jmp32!(dst, r!(src), off, |d: u32, s: u32| d < s),
                Op::Jle32Imm { dst, imm, off } => jmp32!(dst, imm, off, |d: u32, s: u32| d <= s),
                Op::Jle32Reg { dst, src, off } => {
                    jmp32!(dst, r!(src), off, |d: u32, s: u32| d <= s)
                }
                Op::Jslt32Imm { dst, imm, off } => {
                    jmp32!(dst, imm, off, |d: u32, s: u32| (d as i32) < (s as i32))
                }
                Op::Jslt32Reg { dst, src, off } => {
                    jmp32!(dst, r!(src), off, |d: u32, s: u32| (d as i32) < (s as i32))
                }
                Op::Jsle32Imm { dst, imm, off } => {
                    jmp32!(dst, imm, off, |d: u32, s: u32| (d as i32) <= (s as i32))
                }
                Op::Jsle32Reg { dst, src, off } => {
                    jmp32!(dst, r!(src), off, |d: u32, s: u32| (d as i32) <= (s as i32))
                }
                // Calls and exit.
                Op::CallLocal { off } => {
                    if depth >= MAX_CALL_FRAMES - 1 {
                        trap!(TrapKind::CallDepth);
                    }
                    step!();
                    self.frames[depth] = CallFrame {
                        ret_pc: pc,
                        prog,
                        saved: [reg[6], reg[7], reg[8], reg[9]],
                        fp: reg[10],
                    };
                    depth += 1;
                    reg[10] -= STACK_FRAME as u64;
                    regions.stack_lo = reg[10] as usize - STACK_FRAME;
                    pc = (pc as i64 + off as i64) as usize;
                }
                Op::Loop => {
                    // SAFETY: `prog` points into `env.programs` (or `first`), which
                    // outlive this run.
                    let current = unsafe { &*prog };
                    let args = [reg[1], reg[2], reg[3], reg[4]];
                    reg[0] = self.bpf_loop::<AUDIT>(
                        env,
                        current,
                        &regions,
                        pkt,
                        args,
                        (reg[10], depth, pc - 1),
                    )?;
                }
                Op::ForEach => {
                    // SAFETY: `prog` points into `env.programs` (or `first`), which
                    // outlive this run.
                    let current = unsafe { &*prog };
                    let args = [reg[1], reg[2], reg[3], reg[4]];
                    reg[0] = self.for_each::<AUDIT>(
                        env,
                        current,
                        &regions,
                        pkt,
                        args,
                        (reg[10], depth, pc - 1),
                    )?;
                }
                Op::TailCall => {
                    if let Some(target) =
                        self.tail_call_target(env, pkt, [reg[1], reg[2], reg[3]], &mut tail_calls)
                    {
                        step!();
                        prog = target;
                        ops = target.ops();
                        pc = 0;
                    }
                }
                Op::Call { id } => {
                    let mut ctx = HelperCtx {
                        regions: &regions,
                        pkt: &mut *pkt,
                        maps: env.maps,
                        cpu: self.cpu,
                        rng: &mut self.rng,
                        // SAFETY: `prog` points into `env.programs` (or `first`),
                        // which outlive this run.
                        prog_id: unsafe { (*prog).store_id },
                        timer_cb: self.timer_cb,
                    };
                    match helpers::call(id, &mut ctx, [reg[1], reg[2], reg[3], reg[4], reg[5]]) {
                        Ok(v) => reg[0] = v,
                        Err(kind) => mem_trap!(kind),
                    }
                }
                Op::Exit => {
                    if depth == base_depth {
                        return Ok(reg[0]);
                    }
                    depth -= 1;
                    let f = self.frames[depth];
                    pc = f.ret_pc;
                    [reg[6], reg[7], reg[8], reg[9]] = f.saved;
                    reg[10] = f.fp;
                    regions.stack_lo = f.fp as usize - STACK_FRAME;
                    if f.prog != prog {
                        prog = f.prog;
                        // SAFETY: frame programs point into `env.programs` (or `first`),
                        // which outlive this run.
                        ops = unsafe { (*prog).ops() };
                    }
                }
                Op::LdImm64 { dst, imm } => {
                    r!(dst) = imm as u64;
                    pc += 1;
                }
                // `prepare` never lets control reach the second slot of an lddw.
                Op::Hole => trap!(TrapKind::IllegalInstruction { code: 0 }),
                // Loads.
                Op::LdxB { dst, src, off } => r!(dst) = load!(src, off, 1),
                Op::LdxH { dst, src, off } => r!(dst) = load!(src, off, 2),
                Op::LdxW { dst, src, off } => r!(dst) = load!(src, off, 4),
                Op::LdxDW { dst, src, off } => r!(dst) = load!(src, off, 8),
                Op::LdxSB { dst, src, off } => r!(dst) = load!(src, off, 1) as i8 as i64 as u64,
                Op::LdxSH { dst, src, off } => r!(dst) = load!(src, off, 2) as i16 as i64 as u64,
                Op::LdxSW { dst, src, off } => r!(dst) = load!(src, off, 4) as i32 as i64 as u64,
                Op::ProvenLdxB { dst, src, off } => r!(dst) = load_proven!(src, off, 1),
                Op::ProvenLdxH { dst, src, off } => r!(dst) = load_proven!(src, off, 2),
                Op::ProvenLdxW { dst, src, off } => r!(dst) = load_proven!(src, off, 4),
                Op::ProvenLdxDW { dst, src, off } => r!(dst) = load_proven!(src, off, 8),
                Op::ProvenLdxSB { dst, src, off } => {
                    r!(dst) = load_proven!(src, off, 1) as i8 as i64 as u64
                }
                Op::ProvenLdxSH { dst, src, off } => {
                    r!(dst) = load_proven!(src, off, 2) as i16 as i64 as u64
                }
                Op::ProvenLdxSW { dst, src, off } => {
                    r!(dst) = load_proven!(src, off, 4) as i32 as i64 as u64
                }
                // Stores.
                Op::StB { dst, off, imm } => store!(dst, off, 1, imm as u64),
                Op::StH { dst, off, imm } => store!(dst, off, 2, imm as u64),
                Op::StW { dst, off, imm } => store!(dst, off, 4, imm as u64),
                Op::StDW { dst, off, imm } => store!(dst, off, 8, imm as u64),
                Op::StxB { dst, src, off } => store!(dst, off, 1, r!(src)),
                Op::StxH { dst, src, off } => store!(dst, off, 2, r!(src)),
                Op::StxW { dst, src, off } => store!(dst, off, 4, r!(src)),
                Op::StxDW { dst, src, off } => store!(dst, off, 8, r!(src)),
                Op::ProvenStB { dst, off, imm } => store_proven!(dst, off, 1, imm as u64),
                Op::ProvenStH { dst, off, imm } => store_proven!(dst, off, 2, imm as u64),
                Op::ProvenStW { dst, off, imm } => store_proven!(dst, off, 4, imm as u64),
                Op::ProvenStDW { dst, off, imm } => store_proven!(dst, off, 8, imm as u64),
                Op::ProvenStxB { dst, src, off } => store_proven!(dst, off, 1, r!(src)),
                Op::ProvenStxH { dst, src, off } => store_proven!(dst, off, 2, r!(src)),
                Op::ProvenStxW { dst, src, off } => store_proven!(dst, off, 4, r!(src)),
                Op::ProvenStxDW { dst, src, off } => store_proven!(dst, off, 8, r!(src)),
                // Atomics.
                Op::AtomicW {
                    op,
                    fetch,
                    dst,
                    src,
                    off,
                } => atomic!(false, 4, op, fetch, dst, src, off),
                Op::AtomicDW {
                    op,
                    fetch,
                    dst,
                    src,
                    off,
                } => atomic!(false, 8, op, fetch, dst, src, off),
                Op::ProvenAtomicW {
                    op,
                    fetch,
                    dst,
                    src,
                    off,
                } => atomic!(true, 4, op, fetch, dst, src, off),
                Op::ProvenAtomicDW {
                    op,
                    fetch,
                    dst,
                    src,
                    off,
                } => atomic!(true, 8, op, fetch, dst, src, off),
            }
        }
    }

    /// bpf_loop(nr_loops, callback, callback_ctx, flags): calls `callback(i, ctx)` for
    /// i = 0.. until it returns non-zero or nr_loops calls were made; returns the number
    /// of calls, or -EINVAL (flags) / -E2BIG (more than 1 << 23 loops), as the kernel
    /// does. The callback runs in a frame of its own below the caller's. Each
    /// invocation takes a step of the run's budget, charged to the call instruction.
    ///
    /// With flags 0 the kernel's verifier inlines the call (`inline_bpf_loop`, whenever
    /// flags is a known 0, as clang emits it), and the inlined loop compares all 64
    /// bits of nr_loops with 1 << 23 and sets -E2BIG with a 32-bit move (r0 =
    /// 0xfffffff9); the helper itself, reached with flags != 0, returns -EINVAL first.
    /// Both are followed here: the flags value at run time stands for the verifier's
    /// knowledge of it. The JIT (`jit/compile.rs`) does the same.
    fn bpf_loop<const AUDIT: bool>(
        &mut self,
        env: &Env<'_>,
        prog: &Prepared,
        regions: &Regions<'_>,
        pkt: &mut Packet,
        [nr_loops, callback, ctx, flags]: [u64; 4],
        (fp, depth, call_pc): (u64, usize, usize),
    ) -> Result<u64, Trap> {
        if flags != 0 {
            return Ok((-(libc::EINVAL as i64)) as u64);
        }
        if nr_loops > BPF_MAX_LOOPS {
            return Ok((-libc::E2BIG) as u32 as u64);
        }
        let cb = callback as usize;
        if cb == 0 || prog.functions().binary_search(&cb).is_err() {
            let kind = TrapKind::HelperBadCallback {
                helper: helpers::BPF_LOOP as i32,
                value: callback,
            };
            return Err(Trap { kind, pc: call_pc });
        }
        if depth + 1 >= MAX_CALL_FRAMES {
            return Err(Trap {
                kind: TrapKind::CallDepth,
                pc: call_pc,
            });
        }
        for i in 0..nr_loops {
            if self.steps_left == 0 {
                return Err(Trap {
                    kind: TrapKind::StepBudget {
                        limit: self.max_steps,
                    },
                    pc: call_pc,
                });
            }
            self.steps_left -= 1;
            let start = Start {
                pc: cb,
                args: [i, ctx, 0, 0],
                fp: fp - STACK_FRAME as u64,
                depth: depth + 1,
            };
            if self.exec::<AUDIT>(env, prog, regions, pkt, start)? != 0 {
                return Ok(i + 1);
            }
        }
        Ok(nr_loops)
    }

    /// bpf_for_each_map_elem(map, callback, callback_ctx, flags): calls
    /// `callback(map, &key, value, callback_ctx)` for each element of the map
    /// (`helpers::foreach`) until it returns non-zero; returns the number of calls, or
    /// -EINVAL for flags != 0. As `bpf_loop`: the callback runs in a frame of its own
    /// below the caller's, each call takes a step of the run's budget (charged to the
    /// call instruction). The key is a copy in a read-only region of its own.
    fn for_each<const AUDIT: bool>(
        &mut self,
        env: &Env<'_>,
        prog: &Prepared,
        regions: &Regions<'_>,
        pkt: &mut Packet,
        [map, callback, ctx, flags]: [u64; 4],
        (fp, depth, call_pc): (u64, usize, usize),
    ) -> Result<u64, Trap> {
        let at = |kind| Trap { kind, pc: call_pc };
        if flags != 0 {
            return Ok((-(libc::EINVAL as i64)) as u64);
        }
        let cb = callback as usize;
        if cb == 0 || prog.functions().binary_search(&cb).is_err() {
            return Err(at(TrapKind::HelperBadCallback {
                helper: helpers::FOR_EACH_MAP_ELEM as i32,
                value: callback,
            }));
        }
        if depth + 1 >= MAX_CALL_FRAMES {
            return Err(at(TrapKind::CallDepth));
        }
        let mut walk = helpers::foreach::ForEach::new(env.maps, map, self.cpu).map_err(at)?;
        let mut values = regions.values.to_vec();
        values.push(walk.key_area());
        let cb_regions = Regions {
            values: &values,
            ..*regions
        };
        let mut calls = 0u64;
        while let Some((key, value)) = walk.next() {
            if self.steps_left == 0 {
                return Err(at(TrapKind::StepBudget {
                    limit: self.max_steps,
                }));
            }
            self.steps_left -= 1;
            calls += 1;
            let start = Start {
                pc: cb,
                args: [map, key, value, ctx],
                fp: fp - STACK_FRAME as u64,
                depth: depth + 1,
            };
            if self.exec::<AUDIT>(env, prog, &cb_regions, pkt, start)? != 0 {
                break;
            }
        }
        Ok(calls)
    }

    /// The program `bpf_tail_call(r1, map, index)` enters, if any. As the JIT's
    /// `tail_call_shim`: r1 must be the context (the target's proofs assume it), the
    /// map a prog_array of this run's table, the slot filled, fewer than
    /// [`MAX_TAIL_CALLS`] done; and the target must be prepared with this table.
    fn tail_call_target<'e>(
        &self,
        env: &Env<'e>,
        pkt: &Packet,
        [r1, map, index]: [u64; 3],
        count: &mut u32,
    ) -> Option<&'e Prepared> {
        if r1 != pkt.md_addr() {
            return None;
        }
        let m = env.maps.resolve(map)?;
        if m.info.map_type != types::PROG_ARRAY || *count >= MAX_TAIL_CALLS {
            return None;
        }
        let id = m.map.prog_array_get(index as u32)?;
        let target = env.programs.get(id.checked_sub(1)? as usize)?;
        if target.maps_id() != env.maps.id() {
            return None;
        }
        *count += 1;
        Some(target)
    }
}

/// The trap to report for `kind` at `pc`: `ProofViolated` when the analysis proved
/// the access, or the helper argument that was refused, safe.
#[cold]
#[inline(never)]
fn audit(
    analysis: &crate::verifier::Analysis,
    pc: usize,
    kind: TrapKind,
    reg: &[u64; 16],
    ctx: u64,
) -> TrapKind {
    let args = [reg[1], reg[2], reg[3], reg[4], reg[5]];
    let violated = analysis.fact(pc).helper_trap_violates(&kind, &args, ctx);
    if violated {
        TrapKind::ProofViolated { pc }
    } else {
        kind
    }
}

#[cfg(test)]
mod tests {
    //! Instruction semantics, from the kernel's instruction-set document, on hand-built
    //! programs (clang 14 cannot emit the v4 instructions).
    use isa::{AluOp, AtomicOp, CallTarget, Endian, Insn, JmpCond, Operand, Size, Width};

    use super::*;
    use crate::maptable::MapTable;
    use crate::program::prepare;

    const W64: Width = Width::W64;
    const W32: Width = Width::W32;

    fn alu(width: Width, op: AluOp, dst: u8, src: Operand) -> Insn {
        Insn::Alu {
            width,
            op,
            dst,
            src,
        }
    }
    fn mov(dst: u8, v: i32) -> Insn {
        alu(W64, AluOp::Mov, dst, Operand::Imm(v))
    }
    fn ld64(dst: u8, v: u64) -> Insn {
        Insn::LdImm64 {
            dst,
            src: 0,
            imm: v as u32 as i32,
            next_imm: (v >> 32) as u32 as i32,
        }
    }

    /// Runs `insns` on a 64-byte zero packet and returns r0 or the trap, the same with
    /// and without the audit (proven accesses checked or not).
    fn exec(insns: &[Insn]) -> Result<u64, Trap> {
        let raw = isa::encode::encode_all(insns);
        let maps = MapTable::new(Vec::new());
        let prog = prepare("test", "xdp", &raw, &[], &maps).expect("verifies");
        let programs = [prog];
        let env = Env {
            maps: &maps,
            programs: &programs,
        };
        // One frame for both runs, so trap addresses compare equal.
        let mut pkt = Packet::new(&[0u8; 64]).unwrap();
        let [plain, audited] = [false, true].map(|audit| {
            pkt.reset(&[0u8; 64]).unwrap();
            let mut vm = Vm::new(0);
            vm.set_audit(audit);
            vm.run(&env, 0, &mut pkt)
        });
        assert_eq!(plain, audited);
        plain
    }

    /// r0 = a OP b, with both operands loaded as 64-bit constants.
    fn binop(width: Width, op: AluOp, a: u64, b: u64) -> u64 {
        exec(&[
            ld64(0, a),
            ld64(1, b),
            alu(width, op, 0, Operand::Reg(1)),
            Insn::Exit,
        ])
        .unwrap()
    }

    #[test]
    fn division_and_modulo_by_zero() {
        assert_eq!(binop(W64, AluOp::Div, 7, 0), 0);
        assert_eq!(binop(W64, AluOp::Mod, 7, 0), 7);
        assert_eq!(binop(W32, AluOp::Div, 7, 0), 0);
        // ALU32 modulo by zero keeps the low 32 bits of the dividend, zero-extended.
        assert_eq!(binop(W32, AluOp::Mod, 0xffff_ffff_0000_0007, 0), 7);
        assert_eq!(binop(W64, AluOp::SDiv, (-7i64) as u64, 0), 0);
        assert_eq!(binop(W64, AluOp::SMod, (-7i64) as u64, 0), (-7i64) as u64);
        assert_eq!(binop(W32, AluOp::SMod, 0x1_ffff_fff9, 0), 0xffff_fff9);
    }

    #[test]
    fn signed_division_rounds_toward_zero_and_wraps() {
        assert_eq!(binop(W64, AluOp::SDiv, (-7i64) as u64, 2) as i64, -3);
        assert_eq!(binop(W64, AluOp::SMod, (-7i64) as u64, 2) as i64, -1);
        assert_eq!(
            binop(W64, AluOp::SDiv, i64::MIN as u64, u64::MAX),
            i64::MIN as u64
        );
        assert_eq!(binop(W64, AluOp::SMod, i64::MIN as u64, u64::MAX), 0);
        assert_eq!(
            binop(W32, AluOp::SDiv, i32::MIN as u32 as u64, u32::MAX as u64),
            0x8000_0000
        );
        assert_eq!(
            binop(W32, AluOp::SDiv, (-8i32) as u32 as u64, 2),
            (-4i32) as u32 as u64
        );
        // Unsigned division sees the same bits as huge numbers.
        assert_eq!(
            binop(W64, AluOp::Div, (-8i64) as u64, 2),
            ((-8i64) as u64) / 2
        );
    }

    #[test]
    fn shifts_are_masked() {
        assert_eq!(binop(W64, AluOp::Lsh, 1, 65), 2);
        assert_eq!(binop(W32, AluOp::Lsh, 1, 33), 2);
        assert_eq!(binop(W64, AluOp::Rsh, 0x8000_0000_0000_0000, 127), 1);
        assert_eq!(binop(W64, AluOp::Arsh, 0x8000_0000_0000_0000, 63), u64::MAX);
        assert_eq!(binop(W32, AluOp::Arsh, 0x8000_0000, 31), 0xffff_ffff);
    }

    #[test]
    fn alu32_zero_extends() {
        assert_eq!(binop(W32, AluOp::Add, 0xffff_ffff_ffff_ffff, 1), 0);
        assert_eq!(binop(W32, AluOp::Sub, 0, 1), 0xffff_ffff);
        assert_eq!(
            binop(W32, AluOp::Mov, 5, 0xdead_beef_1234_5678),
            0x1234_5678
        );
        assert_eq!(
            exec(&[
                ld64(0, u64::MAX),
                alu(W32, AluOp::Neg, 0, Operand::Imm(0)),
                Insn::Exit
            ])
            .unwrap(),
            1
        );
        // A 32-bit move of an immediate does not sign-extend; a 64-bit one does.
        assert_eq!(
            exec(&[alu(W32, AluOp::Mov, 0, Operand::Imm(-1)), Insn::Exit]).unwrap(),
            0xffff_ffff
        );
        assert_eq!(exec(&[mov(0, -1), Insn::Exit]).unwrap(), u64::MAX);
    }

    #[test]
    fn sign_extending_moves_and_byte_swaps() {
        let movsx = |width, bits: u8, v: u64| {
            exec(&[
                ld64(1, v),
                alu(width, AluOp::MovSx(bits), 0, Operand::Reg(1)),
                Insn::Exit,
            ])
            .unwrap()
        };
        assert_eq!(movsx(W64, 8, 0x80), 0xffff_ffff_ffff_ff80);
        assert_eq!(movsx(W64, 16, 0x1_7fff), 0x7fff);
        assert_eq!(movsx(W64, 32, 0x8000_0000), 0xffff_ffff_8000_0000);
        assert_eq!(movsx(W32, 8, 0xff), 0xffff_ffff);
        assert_eq!(movsx(W32, 16, 0x8000), 0xffff_8000);
        let end = |kind, bits, v: u64| {
            exec(&[ld64(0, v), Insn::End { kind, bits, dst: 0 }, Insn::Exit]).unwrap()
        };
        assert_eq!(end(Endian::Swap, 16, 0x1122_3344_5566_7788), 0x8877);
        assert_eq!(end(Endian::Swap, 32, 0x1122_3344_5566_7788), 0x8877_6655);
        assert_eq!(
            end(Endian::Swap, 64, 0x1122_3344_5566_7788),
            0x8877_6655_4433_2211
        );
        assert_eq!(end(Endian::ToBe, 16, 0x1122_3344_5566_7788), 0x8877);
        assert_eq!(end(Endian::ToLe, 32, 0x1122_3344_5566_7788), 0x5566_7788);
        assert_eq!(
            end(Endian::ToLe, 64, 0x1122_3344_5566_7788),
            0x1122_3344_5566_7788
        );
    }

    #[test]
    fn jump_immediates_are_sign_extended() {
        // r1 = 0xffffffff_ffffffff; "if r1 == -1" is taken in 64 bits.
        let prog = |width| {
            exec(&[
                ld64(1, u64::MAX),
                mov(0, 0),
                Insn::Jmp {
                    width,
                    cond: JmpCond::Eq,
                    dst: 1,
                    src: Operand::Imm(-1),
                    off: 1,
                },
                Insn::Exit,
                mov(0, 1),
                Insn::Exit,
            ])
            .unwrap()
        };
        assert_eq!(prog(W64), 1);
        assert_eq!(prog(W32), 1);
        // 0x00000000_ffffffff equals -1 only in 32 bits.
        let prog = |width| {
            exec(&[
                ld64(1, 0xffff_ffff),
                mov(0, 0),
                Insn::Jmp {
                    width,
                    cond: JmpCond::Eq,
                    dst: 1,
                    src: Operand::Imm(-1),
                    off: 1,
                },
                Insn::Exit,
                mov(0, 1),
                Insn::Exit,
            ])
            .unwrap()
        };
        assert_eq!(prog(W64), 0);
        assert_eq!(prog(W32), 1);
        // Signed and unsigned comparisons differ on negative values.
        let cmp = |cond| {
            exec(&[
                mov(1, -5),
                mov(0, 0),
                Insn::Jmp {
                    width: W64,
                    cond,
                    dst: 1,
                    src: Operand::Imm(3),
                    off: 1,
                },
                Insn::Exit,
                mov(0, 1),
                Insn::Exit,
            ])
            .unwrap()
        };
        assert_eq!(cmp(JmpCond::Slt), 1);
        assert_eq!(cmp(JmpCond::Lt), 0);
        assert_eq!(cmp(JmpCond::Gt), 1);
        assert_eq!(cmp(JmpCond::Sgt), 0);
    }

    #[test]
    fn gotol_and_backward_loops() {
        // r0 counts to 10 in a loop closed by a backward conditional jump; then gotol.
        let r = exec(&[
            mov(0, 0),
            alu(W64, AluOp::Add, 0, Operand::Imm(1)),
            Insn::Jmp {
                width: W64,
                cond: JmpCond::Lt,
                dst: 0,
                src: Operand::Imm(10),
                off: -2,
            },
            Insn::Ja { off: 1 },
            mov(0, 99),
            Insn::Exit,
        ]);
        assert_eq!(r.unwrap(), 10);
    }

    #[test]
    fn sign_extending_loads() {
        // Store 0x80 0xff.. on the stack and read it back sign-extended.
        let r = exec(&[
            ld64(1, 0x8000_80ff_ff80),
            Insn::Store {
                size: Size::DW,
                dst: 10,
                off: -8,
                src: Operand::Reg(1),
            },
            Insn::Load {
                size: Size::B,
                sign_extend: true,
                dst: 0,
                src: 10,
                off: -8,
            },
            Insn::Exit,
        ]);
        assert_eq!(r.unwrap(), 0xffff_ffff_ffff_ff80);
        let r = exec(&[
            ld64(1, 0x8000_80ff_ff80),
            Insn::Store {
                size: Size::DW,
                dst: 10,
                off: -8,
                src: Operand::Reg(1),
            },
            Insn::Load {
                size: Size::W,
                sign_extend: true,
                dst: 0,
                src: 10,
                off: -6,
            },
            Insn::Exit,
        ]);
        assert_eq!(r.unwrap(), 0xffff_ffff_8000_80ff);
        // A store of an immediate sign-extends it to the access size (DW here).
        let r = exec(&[
            Insn::Store {
                size: Size::DW,
                dst: 10,
                off: -8,
                src: Operand::Imm(-2),
            },
            Insn::Load {
                size: Size::DW,
                sign_extend: false,
                dst: 0,
                src: 10,
                off: -8,
            },
            Insn::Exit,
        ]);
        assert_eq!(r.unwrap(), (-2i64) as u64);
    }

    #[test]
    fn atomics_with_and_without_fetch() {
        let atomic = |size, op, fetch, init: u64, operand: u64, r0: u64| {
            exec(&[
                ld64(1, init),
                Insn::Store {
                    size: Size::DW,
                    dst: 10,
                    off: -8,
                    src: Operand::Reg(1),
                },
                ld64(2, operand),
                ld64(0, r0),
                Insn::Atomic {
                    size,
                    op,
                    fetch,
                    dst: 10,
                    src: 2,
                    off: -8,
                },
                // r3 = memory afterwards; return (memory, fetched r2, r0) packed by the caller.
                Insn::Load {
                    size: Size::DW,
                    sign_extend: false,
                    dst: 3,
                    src: 10,
                    off: -8,
                },
                Insn::Store {
                    size: Size::DW,
                    dst: 10,
                    off: -16,
                    src: Operand::Reg(2),
                },
                Insn::Store {
                    size: Size::DW,
                    dst: 10,
                    off: -24,
                    src: Operand::Reg(0),
                },
                alu(W64, AluOp::Mov, 0, Operand::Reg(3)),
                Insn::Exit,
            ])
            .unwrap()
        };
        assert_eq!(atomic(Size::DW, AtomicOp::Add, false, 40, 2, 0), 42);
        assert_eq!(atomic(Size::DW, AtomicOp::Or, true, 0xf0, 0x0f, 0), 0xff);
        assert_eq!(atomic(Size::DW, AtomicOp::And, true, 0xf0, 0x3c, 0), 0x30);
        assert_eq!(atomic(Size::DW, AtomicOp::Xor, false, 0xff, 0x0f, 0), 0xf0);
        assert_eq!(atomic(Size::DW, AtomicOp::Xchg, true, 1, 2, 0), 2);
        // cmpxchg writes only when memory equals r0.
        assert_eq!(atomic(Size::DW, AtomicOp::CmpXchg, true, 5, 9, 5), 9);
        assert_eq!(atomic(Size::DW, AtomicOp::CmpXchg, true, 5, 9, 4), 5);
        // 32-bit atomics touch only the low word.
        assert_eq!(
            atomic(Size::W, AtomicOp::Add, false, 0x1_ffff_ffff, 1, 0),
            0x1_0000_0000
        );
        // Fetched values land in src (zero-extended for W); cmpxchg's in r0.
        let fetched = exec(&[
            ld64(1, 0x1_0000_0007),
            Insn::Store {
                size: Size::DW,
                dst: 10,
                off: -8,
                src: Operand::Reg(1),
            },
            mov(2, 1),
            Insn::Atomic {
                size: Size::W,
                op: AtomicOp::Add,
                fetch: true,
                dst: 10,
                src: 2,
                off: -8,
            },
            alu(W64, AluOp::Mov, 0, Operand::Reg(2)),
            Insn::Exit,
        ]);
        assert_eq!(fetched.unwrap(), 7);
        let old = exec(&[
            mov(1, 7),
            Insn::Store {
                size: Size::DW,
                dst: 10,
                off: -8,
                src: Operand::Reg(1),
            },
            mov(2, 1),
            mov(0, 3),
            Insn::Atomic {
                size: Size::DW,
                op: AtomicOp::CmpXchg,
                fetch: true,
                dst: 10,
                src: 2,
                off: -8,
            },
            Insn::Exit,
        ]);
        assert_eq!(old.unwrap(), 7);
    }

    #[test]
    fn misaligned_atomics_trap() {
        let r = exec(&[
            mov(2, 1),
            Insn::Atomic {
                size: Size::DW,
                op: AtomicOp::Add,
                fetch: false,
                dst: 10,
                src: 2,
                off: -12,
            },
            mov(0, 0),
            Insn::Exit,
        ]);
        let trap = r.unwrap_err();
        assert!(
            matches!(trap.kind, TrapKind::MisalignedAtomic { len: 8, addr } if addr % 8 == 4),
            "{trap}"
        );
        assert_eq!(trap.pc, 1);
    }

    #[test]
    fn each_call_gets_its_own_frame() {
        // main: stores 11 at fp-8, calls f, returns fp-8 + r0.
        // f: stores 22 at its own fp-8 (a different frame), returns 5.
        let r = exec(&[
            mov(1, 11),
            Insn::Store {
                size: Size::DW,
                dst: 10,
                off: -8,
                src: Operand::Reg(1),
            },
            mov(6, 100),
            Insn::Call(CallTarget::Local(4)),
            Insn::Load {
                size: Size::DW,
                sign_extend: false,
                dst: 1,
                src: 10,
                off: -8,
            },
            alu(W64, AluOp::Add, 0, Operand::Reg(1)),
            alu(W64, AluOp::Add, 0, Operand::Reg(6)),
            Insn::Exit,
            // f:
            mov(1, 22),
            Insn::Store {
                size: Size::DW,
                dst: 10,
                off: -8,
                src: Operand::Reg(1),
            },
            mov(6, 1000),
            mov(0, 5),
            Insn::Exit,
        ]);
        // r6 is callee-saved: restored to 100 on return.
        assert_eq!(r.unwrap(), 11 + 5 + 100);
    }

    #[test]
    fn programs_run_only_with_their_map_table() {
        // The program's lddw addresses and proofs are about the table it was prepared
        // with; a run with another table is refused before the first instruction.
        let raw = isa::encode::encode_all(&[mov(0, 7), Insn::Exit]);
        let (mine, other) = (MapTable::new(Vec::new()), MapTable::new(Vec::new()));
        assert_ne!(mine.id(), other.id());
        let programs = [prepare("t", "xdp", &raw, &[], &mine).unwrap()];
        let mut pkt = Packet::new(&[0u8; 64]).unwrap();
        let run = |maps, pkt: &mut Packet| {
            let env = Env {
                maps,
                programs: &programs,
            };
            Vm::new(0).run(&env, 0, pkt)
        };
        assert_eq!(run(&mine, &mut pkt), Ok(7));
        assert_eq!(
            run(&other, &mut pkt),
            Err(Trap {
                kind: TrapKind::OtherMapTable { index: 0 },
                pc: 0
            })
        );
    }

    #[test]
    fn recursion_deeper_than_eight_frames_traps() {
        let r = exec(&[Insn::Call(CallTarget::Local(-1)), Insn::Exit]);
        assert_eq!(r.unwrap_err().kind, TrapKind::CallDepth);
    }

    #[test]
    fn out_of_bounds_accesses_trap_with_the_pc() {
        let r = exec(&[
            mov(1, 0),
            Insn::Load {
                size: Size::W,
                sign_extend: false,
                dst: 0,
                src: 1,
                off: 0,
            },
            Insn::Exit,
        ]);
        assert_eq!(
            r.unwrap_err(),
            Trap {
                kind: TrapKind::OutOfBounds {
                    addr: 0,
                    len: 4,
                    write: false
                },
                pc: 1
            }
        );
        // Writing the context is refused; reading past the stack top too.
        let r = exec(&[
            Insn::Store {
                size: Size::W,
                dst: 1,
                off: 0,
                src: Operand::Imm(0),
            },
            mov(0, 0),
            Insn::Exit,
        ]);
        assert!(matches!(
            r.unwrap_err().kind,
            TrapKind::OutOfBounds { write: true, .. }
        ));
        let r = exec(&[
            Insn::Load {
                size: Size::B,
                sign_extend: false,
                dst: 0,
                src: 10,
                off: 0,
            },
            Insn::Exit,
        ]);
        assert!(matches!(
            r.unwrap_err().kind,
            TrapKind::OutOfBounds { write: false, .. }
        ));
        // The packet is readable up to data_end and no further.
        let r = exec(&[
            Insn::Load {
                size: Size::W,
                sign_extend: false,
                dst: 2,
                src: 1,
                off: 0,
            },
            Insn::Load {
                size: Size::B,
                sign_extend: false,
                dst: 0,
                src: 2,
                off: 63,
            },
            Insn::Load {
                size: Size::B,
                sign_extend: false,
                dst: 0,
                src: 2,
                off: 64,
            },
            Insn::Exit,
        ]);
        assert_eq!(r.unwrap_err().pc, 2);
    }
}
