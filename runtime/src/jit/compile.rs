//! Translation of one BPF function (the entry function of a program or one of its
//! subprograms) into Cranelift IR.
//!
//! Every compiled function has the signature
//! `(ctx, r1, r2, r3, r4, r5, r10) -> (r0, status)`. BPF registers are Cranelift
//! variables; a bpf-to-bpf call is a native call with `r10 - 512` as the callee's frame
//! pointer, so each call gets its own 512-byte frame in the `Vm`'s stack. The live stack
//! of a function is `[r10 - 512, stack_lo + STACK_SIZE)`, its frame and its callers'
//! (computed once at entry): the inline stack check accepts only that, and the depth
//! limit follows from its size (8 frames of 512 bytes leave no room for a callee). The
//! shims learn the current frame from `JitCtx::frame_lo`, stored on entry and after
//! each call that entered another compiled function. A non-zero status means a trap: the faulting function wrote the pc and details
//! into the context, and every caller returns the status unchanged.
//!
//! The semantics mirror `interp.rs` instruction by instruction: the interpreter runs
//! `program::Op`, this translates the same slots raised back to `isa::Insn`
//! (`Op::insn`), both with exhaustive matches.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I16, I32, I64, I8};
use cranelift_codegen::ir::{
    AbiParam, AtomicRmwOp, Block, BlockArg, FuncRef, Inst, InstBuilder, MemFlagsData, SigRef,
    Signature, Type, Value,
};
use cranelift_codegen::isa::{CallConv, TargetFrontendConfig};
use cranelift_frontend::{FunctionBuilder, Switch, Variable};
use cranelift_module::FuncId;
use isa::opcode::*;
use isa::{AluOp, AtomicOp, CallTarget, Endian, Insn, JmpCond, Operand, Width};

use super::error::JitError;
use super::trampoline::{self as tr, status};
use crate::helpers;
use crate::interp::{STACK_FRAME, STACK_SIZE};
use crate::maptable::{BoundMap, MapTable};
use crate::program::{Op, Prepared};
use crate::verifier::Analysis;
use crate::xdp::XdpMd;

/// The signatures compiled code uses.
pub(super) struct Sigs {
    pub func: Signature,
    /// The checked shims (`helper_shim`, `map_lookup_shim`, `map_update_shim`)
    /// return `tr::ShimRet`: r0 and the trap flag.
    pub helper: Signature,
    pub check: Signature,
    pub lookup: Signature,
    pub tail: Signature,
    pub update: Signature,
    /// A map's own lookup and update (`maps::LookupFn`, `maps::UpdateFn`).
    pub map_lookup: Signature,
    pub map_update: Signature,
    pub cb_trampoline: Signature,
}

impl Sigs {
    pub fn new(cc: CallConv) -> Sigs {
        let sig = |params: usize, returns: usize| {
            let mut s = Signature::new(cc);
            s.params.extend((0..params).map(|_| AbiParam::new(I64)));
            s.returns.extend((0..returns).map(|_| AbiParam::new(I64)));
            s
        };
        // The worker index, a u32, as the last parameter.
        let with_cpu = |mut s: Signature| {
            s.params.push(AbiParam::new(I32));
            s
        };
        Sigs {
            func: sig(7, 2),
            helper: sig(7, 2),
            check: sig(3, 1),
            lookup: sig(3, 2),
            tail: sig(4, 1),
            update: sig(5, 2),
            map_lookup: with_cpu(sig(2, 1)),
            map_update: with_cpu(sig(4, 1)),
            cb_trampoline: sig(7, 1),
        }
    }
}

/// Where one function lies and what it may call.
pub(super) struct FuncSpec<'a> {
    pub prog: &'a Prepared,
    /// First slot and one past the last slot of this function.
    pub start: usize,
    pub end: usize,
    /// The compiled ids that calls and `bpf_loop` reach, in the order of
    /// `prog.functions`; at index 0 the copy of the entry function (compiled with the
    /// facts of the analysis that assumes nothing about r1) when a call targets pc 0.
    pub ids: &'a [FuncId],
    pub memory_checks: bool,
    /// The object's maps: a constant map handle in r1 is resolved at compile time.
    pub maps: &'a MapTable,
    /// What the analysis proved of each slot, for the states this function is entered
    /// with (for the copy of the entry function: nothing assumed about r1).
    pub facts: &'a Analysis,
    /// Keep the checks of proven accesses, trapping with `ProofViolated` when one
    /// fails (`JitOptions::audit`).
    pub audit: bool,
}

/// The length in slots of the instruction at `pc`.
fn insn_len(op: &Op) -> usize {
    op.insn().map_or(1, |i| i.slots())
}

/// Whether `op` ends a basic block with no fall-through (`ja`, `exit`).
fn no_fallthrough(op: &Op) -> bool {
    op.insn().is_some_and(|i| !i.falls_through())
}

/// The jump target of the instruction at `pc`, if it is a jump (calls are not).
fn jump_target(pc: usize, op: &Op) -> Option<i64> {
    op.insn()
        .filter(Insn::is_branch)
        .and_then(|i| i.jump_target(pc))
}

/// The most iterations `bpf_loop` accepts (`BPF_MAX_LOOPS`).
const BPF_MAX_LOOPS: i64 = 1 << 23;

fn mflags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// Builds the body of one function into `b`, which holds a fresh function.
pub(super) fn translate(
    b: FunctionBuilder<'_>,
    spec: &FuncSpec<'_>,
    callee: &mut dyn FnMut(FuncId, &mut cranelift_codegen::ir::Function) -> FuncRef,
    sigs: &Sigs,
    cfg: TargetFrontendConfig,
) -> Result<(), JitError> {
    let prog = spec.prog;
    let ops = prog.ops();
    let (start, end) = (spec.start, spec.end);
    let name = || prog.name.clone();

    // Leaders: the function start, every jump target, and every instruction after a
    // jump or exit.
    let mut leader = vec![false; end - start];
    // Blocks entered by a backward jump are sealed only at the end.
    let mut back_target = vec![false; end - start];
    leader[0] = true;
    let mut pc = start;
    let mut insns = Vec::with_capacity(end - start);
    while pc < end {
        let op = &ops[pc];
        insns.push(pc);
        let next = pc + insn_len(op);
        if let Some(t) = jump_target(pc, op) {
            if t < start as i64 || t >= end as i64 {
                return Err(JitError::JumpOutsideFunction {
                    prog: name(),
                    pc,
                    target: t.max(0) as usize,
                    start,
                    end,
                });
            }
            leader[t as usize - start] = true;
            if t as usize <= pc {
                back_target[t as usize - start] = true;
            }
            if next < end {
                leader[next - start] = true;
            }
        } else if no_fallthrough(op) && next < end {
            leader[next - start] = true;
        }
        if next >= end && !no_fallthrough(op) {
            return Err(JitError::FallsThrough { prog: name(), pc });
        }
        pc = next;
    }

    let mut tx = Tx::new(b, spec, sigs);
    tx.frefs = spec.ids.iter().map(|&id| callee(id, tx.b.func)).collect();
    let blocks: Vec<Option<Block>> = leader
        .iter()
        .map(|&l| l.then(|| tx.b.create_block()))
        .collect();
    let block_at = |pc: usize| blocks[pc - start].expect("jump targets are leaders");

    // Entry: parameters into registers, run constants loaded once.
    let entry = tx.b.create_block();
    tx.b.append_block_params_for_function_params(entry);
    tx.b.switch_to_block(entry);
    tx.b.seal_block(entry);
    let params = tx.b.block_params(entry).to_vec();
    tx.ctx = params[0];
    for (i, &v) in params[1..6].iter().enumerate() {
        tx.b.def_var(tx.regs[i + 1], v);
    }
    tx.b.def_var(tx.regs[10], params[6]);
    let zero = tx.b.ins().iconst(I64, 0);
    for r in [0, 6, 7, 8, 9] {
        tx.b.def_var(tx.regs[r], zero);
    }
    // The live stack is [r10 - 512, stack_lo + STACK_SIZE): this frame and its callers'.
    // The run's constants are read-only loads, which code generation drops when
    // nothing uses them (every access of the function proven).
    let constant = MemFlagsData::trusted().with_readonly();
    let stack_lo = tx.b.ins().load(I64, constant, tx.ctx, tr::OFF_STACK_LO);
    tx.frame_lo = tx.b.ins().iadd_imm_s(params[6], -(STACK_FRAME as i64));
    let stack_hi = tx.b.ins().iadd_imm_s(stack_lo, STACK_SIZE as i64);
    let live = tx.b.ins().isub(stack_hi, tx.frame_lo);
    tx.live8 = tx.b.ins().iadd_imm_s(live, -8);
    let entry_store = tx.store_frame_lo();
    tx.md = tx.b.ins().load(I64, constant, tx.ctx, tr::OFF_MD);
    // The instructions computing `live8` and `md`, removed below when no check of
    // this function reads them (opt_level "none" keeps dead loads).
    let entry_consts = [stack_lo, stack_hi, live, tx.live8, tx.md]
        .map(|v| tx.b.func.dfg.value_def(v).unwrap_inst());
    tx.b.ins().jump(block_at(start), &[]);

    let mut open = false;
    for &pc in &insns {
        if leader[pc - start] {
            tx.known = [None; 16];
        }
        if let Some(blk) = blocks[pc - start] {
            if open {
                tx.b.ins().jump(blk, &[]);
            }
            tx.b.switch_to_block(blk);
            if !back_target[pc - start] {
                tx.b.seal_block(blk);
            }
        } else if !open {
            // Unreachable code after a trap: give it a block of its own.
            let blk = tx.b.create_block();
            tx.enter(blk);
        }
        open = tx.insn(pc, &ops[pc], &block_at)?;
        tx.track(&ops[pc]);
    }
    debug_assert!(!open, "the last instruction ends control flow");
    if !tx.frame_lo_used {
        // No shim of this function reads `JitCtx::frame_lo`: its entry store goes.
        tx.b.func.layout.remove_inst(entry_store);
    }
    if !tx.entry_consts_used {
        for inst in entry_consts {
            tx.b.func.layout.remove_inst(inst);
        }
    }
    tx.finish_shared();
    tx.b.seal_all_blocks();
    tx.b.finalize(cfg);
    Ok(())
}

struct Tx<'a, 'b> {
    b: FunctionBuilder<'b>,
    spec: &'a FuncSpec<'a>,
    regs: [Variable; 16],
    ctx: Value,
    /// Bottom of this function's frame: r10 - 512.
    frame_lo: Value,
    /// Bytes of live stack from `frame_lo` up (512 per frame of the call chain), less
    /// 8: the highest offset from `frame_lo` at which any access (of at most 8 bytes)
    /// is surely inside.
    live8: Value,
    md: Value,
    func_sig: SigRef,
    helper_sig: SigRef,
    check_sig: SigRef,
    lookup_sig: SigRef,
    tail_sig: SigRef,
    update_sig: SigRef,
    map_lookup_sig: SigRef,
    map_update_sig: SigRef,
    trap_blk: Option<Block>,
    prop_blk: Option<Block>,
    frefs: Vec<FuncRef>,
    /// Registers holding an `ld_imm64` constant set earlier in the current block.
    known: [Option<i64>; 16],
    /// Code that reads `JitCtx::frame_lo` was emitted (a checked access's slow path,
    /// a shim checking pointers, a call, `bpf_loop`, a tail call).
    frame_lo_used: bool,
    /// Whether a check of this function reads `live8` or `md` (else the entry's
    /// loads of them are removed).
    entry_consts_used: bool,
}

impl<'a, 'b> Tx<'a, 'b> {
    fn new(mut b: FunctionBuilder<'b>, spec: &'a FuncSpec<'a>, sigs: &Sigs) -> Self {
        let regs = std::array::from_fn(|_| b.declare_var(I64));
        let func_sig = b.import_signature(sigs.func.clone());
        let helper_sig = b.import_signature(sigs.helper.clone());
        let check_sig = b.import_signature(sigs.check.clone());
        let lookup_sig = b.import_signature(sigs.lookup.clone());
        let tail_sig = b.import_signature(sigs.tail.clone());
        let update_sig = b.import_signature(sigs.update.clone());
        let map_lookup_sig = b.import_signature(sigs.map_lookup.clone());
        let map_update_sig = b.import_signature(sigs.map_update.clone());
        Tx {
            b,
            spec,
            regs,
            ctx: Value::from_u32(0),
            frame_lo: Value::from_u32(0),
            live8: Value::from_u32(0),
            md: Value::from_u32(0),
            func_sig,
            helper_sig,
            check_sig,
            lookup_sig,
            tail_sig,
            update_sig,
            map_lookup_sig,
            map_update_sig,
            trap_blk: None,
            prop_blk: None,
            frefs: Vec::new(),
            known: [None; 16],
            frame_lo_used: false,
            entry_consts_used: false,
        }
    }

    fn r(&mut self, i: u8) -> Value {
        self.b.use_var(self.regs[(i & 15) as usize])
    }

    fn set(&mut self, i: u8, v: Value) {
        self.b.def_var(self.regs[(i & 15) as usize], v);
    }

    /// Switches to `blk`, whose predecessors are all emitted, and seals it.
    fn enter(&mut self, blk: Block) {
        self.b.switch_to_block(blk);
        self.b.seal_block(blk);
    }

    fn k(&mut self, ty: Type, v: i64) -> Value {
        let v = if ty == I32 { v as u32 as i64 } else { v };
        self.b.ins().iconst(ty, v)
    }

    /// The shared block that records a trap and returns `(0, status)`:
    /// parameters `(status, pc, addr, info)`. Filled in by `finish_shared`.
    fn trap_block(&mut self) -> Block {
        if let Some(b) = self.trap_blk {
            return b;
        }
        let blk = self.b.create_block();
        for _ in 0..4 {
            self.b.append_block_param(blk, I64);
        }
        self.b.set_cold_block(blk);
        self.trap_blk = Some(blk);
        blk
    }

    /// The shared block that passes a callee's trap status up: parameter `(status)`.
    /// Filled in by `finish_shared`.
    fn prop_block(&mut self) -> Block {
        if let Some(b) = self.prop_blk {
            return b;
        }
        let blk = self.b.create_block();
        self.b.append_block_param(blk, I64);
        self.b.set_cold_block(blk);
        self.prop_blk = Some(blk);
        blk
    }

    /// Fills the shared trap and propagation blocks, once every instruction is done.
    fn finish_shared(&mut self) {
        if let Some(blk) = self.trap_blk {
            self.b.switch_to_block(blk);
            let p = self.b.block_params(blk).to_vec();
            let f = MemFlagsData::trusted();
            self.b.ins().store(f, p[1], self.ctx, tr::OFF_TRAP_PC);
            self.b.ins().store(f, p[2], self.ctx, tr::OFF_TRAP_ADDR);
            self.b.ins().store(f, p[3], self.ctx, tr::OFF_TRAP_INFO);
            let zero = self.b.ins().iconst(I64, 0);
            self.b.ins().return_(&[zero, p[0]]);
        }
        if let Some(blk) = self.prop_blk {
            self.b.switch_to_block(blk);
            let st = self.b.block_params(blk)[0];
            let zero = self.b.ins().iconst(I64, 0);
            self.b.ins().return_(&[zero, st]);
        }
    }

    /// Branches to the trap block with `(status, pc, addr, info)` when `cond` is set.
    fn trap_if(&mut self, cond: Value, status: i64, pc: usize, addr: Value, info: Value) {
        let trap = self.trap_block();
        let cont = self.b.create_block();
        let st = self.b.ins().iconst(I64, status);
        let pcv = self.b.ins().iconst(I64, pc as i64);
        let args = [
            BlockArg::Value(st),
            BlockArg::Value(pcv),
            BlockArg::Value(addr),
            BlockArg::Value(info),
        ];
        self.b.ins().brif(cond, trap, &args, cont, &[]);
        self.enter(cont);
    }

    /// Jumps to the trap block unconditionally; the current block ends.
    fn trap_now(&mut self, status: i64, pc: usize, info: i64) {
        let trap = self.trap_block();
        let st = self.b.ins().iconst(I64, status);
        let pcv = self.b.ins().iconst(I64, pc as i64);
        let zero = self.b.ins().iconst(I64, 0);
        let infov = self.b.ins().iconst(I64, info);
        let args = [
            BlockArg::Value(st),
            BlockArg::Value(pcv),
            BlockArg::Value(zero),
            BlockArg::Value(infov),
        ];
        self.b.ins().jump(trap, &args);
    }

    /// One step of the run's budget (`JitCtx::steps_left`), taken by the instruction
    /// at `pc`: traps with `STEP_BUDGET` when none is left, as the interpreter's
    /// `step!`. Emitted only at backward jumps, calls, `bpf_loop` iterations and tail
    /// calls.
    fn step(&mut self, pc: usize) {
        let f = MemFlagsData::trusted();
        let left = self.b.ins().load(I64, f, self.ctx, tr::OFF_STEPS_LEFT);
        let out = self.b.ins().icmp_imm_s(IntCC::Equal, left, 0);
        let zero = self.b.ins().iconst(I64, 0);
        self.trap_if(out, status::STEP_BUDGET, pc, zero, zero);
        let left = self.b.ins().iadd_imm_s(left, -1);
        self.b.ins().store(f, left, self.ctx, tr::OFF_STEPS_LEFT);
    }

    /// The address `reg + off` of an access of `size` bytes, after the region checks
    /// (`Regions::check`) have accepted it; otherwise the run traps with `pc`. An
    /// access the analysis proved (`Fact::proven`) has no check; in audit mode it keeps
    /// the check and a failure traps with `PROOF_VIOLATED` instead.
    fn checked_addr(&mut self, pc: usize, base: u8, off: i32, size: u32, write: bool) -> Value {
        let basev = self.r(base);
        let addr = self.b.ins().iadd_imm_s(basev, off as i64);
        // r10 is read-only and the current frame is [r10 - 512, r10): a constant offset
        // inside it needs no check.
        if base == FRAME_POINTER && off >= -(STACK_FRAME as i32) && off <= -(size as i32) {
            return addr;
        }
        let proven = self.spec.facts.proven(pc);
        if proven && !self.spec.audit {
            return addr;
        }
        if !self.spec.memory_checks {
            return addr;
        }
        let fail = if proven {
            status::PROOF_VIOLATED
        } else {
            status::OUT_OF_BOUNDS
        };
        let ok = self.b.create_block();
        let slow = self.b.create_block();
        self.b.set_cold_block(slow);
        // Inline: the live stack (this frame and its callers': frame_lo <= addr <=
        // stack_hi - 8; the few accesses of fewer bytes in the last 8 bytes of the
        // outermost frame go to the full check, which accepts them), or the packet
        // (data_meta .. data_end as the context says now).
        self.entry_consts_used = true;
        let rel = self.b.ins().isub(addr, self.frame_lo);
        let in_stack = self
            .b
            .ins()
            .icmp(IntCC::UnsignedLessThanOrEqual, rel, self.live8);
        let meta = self.b.ins().uload32(
            mflags(),
            self.md,
            std::mem::offset_of!(XdpMd, data_meta) as i32,
        );
        let dend = self.b.ins().uload32(
            mflags(),
            self.md,
            std::mem::offset_of!(XdpMd, data_end) as i32,
        );
        let lim = self.b.ins().iadd_imm_s(dend, -(size as i64));
        let c1 = self
            .b
            .ins()
            .icmp(IntCC::UnsignedGreaterThanOrEqual, addr, meta);
        let c2 = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, addr, lim);
        let in_pkt = self.b.ins().band(c1, c2);
        let inline_ok = self.b.ins().bor(in_stack, in_pkt);
        self.b.ins().brif(inline_ok, ok, &[], slow, &[]);
        self.enter(slow);
        // The context, map values and everything else: the full check in Rust.
        let info = self.b.ins().iconst(I64, size as i64 | (write as i64) << 8);
        let allowed = self.call_shim(
            tr::check_shim as *const (),
            self.check_sig,
            &[self.ctx, addr, info],
            true,
        );
        let bad = self.b.ins().icmp_imm_s(IntCC::Equal, allowed, 0);
        self.trap_if(bad, fail, pc, addr, info);
        self.b.ins().jump(ok, &[]);
        self.enter(ok);
        addr
    }

    fn load(&mut self, pc: usize, (dst, src, off): (u8, u8, i16), size: u32, signed: bool) {
        let a = self.checked_addr(pc, src, off as i32, size, false);
        let f = mflags();
        let ins = self.b.ins();
        let v = match (size, signed) {
            (1, false) => ins.uload8(I64, f, a, 0),
            (2, false) => ins.uload16(I64, f, a, 0),
            (4, false) => ins.uload32(f, a, 0),
            (1, true) => ins.sload8(I64, f, a, 0),
            (2, true) => ins.sload16(I64, f, a, 0),
            (4, true) => ins.sload32(f, a, 0),
            _ => ins.load(I64, f, a, 0),
        };
        self.set(dst, v);
    }

    fn store(&mut self, pc: usize, (dst, off): (u8, i16), size: u32, v: Value) {
        let a = self.checked_addr(pc, dst, off as i32, size, true);
        let f = mflags();
        let ins = self.b.ins();
        match size {
            1 => ins.istore8(f, v, a, 0),
            2 => ins.istore16(f, v, a, 0),
            4 => ins.istore32(f, v, a, 0),
            _ => ins.store(f, v, a, 0),
        };
    }

    fn atomic(
        &mut self,
        pc: usize,
        (aop, fetch): (AtomicOp, bool),
        (dst, src, off): (u8, u8, i16),
        size: u32,
    ) {
        let a = self.checked_addr(pc, dst, off as i32, size, true);
        let low = self.b.ins().band_imm_s(a, size as i64 - 1);
        let info = self.b.ins().iconst(I64, size as i64);
        self.trap_if(low, status::MISALIGNED, pc, a, info);
        let (rmw, fetch) = match aop {
            AtomicOp::Add => (Some(AtomicRmwOp::Add), fetch),
            AtomicOp::Or => (Some(AtomicRmwOp::Or), fetch),
            AtomicOp::And => (Some(AtomicRmwOp::And), fetch),
            AtomicOp::Xor => (Some(AtomicRmwOp::Xor), fetch),
            AtomicOp::Xchg => (Some(AtomicRmwOp::Xchg), true),
            AtomicOp::CmpXchg => (None, true),
        };
        let ty = if size == 4 { I32 } else { I64 };
        let narrow = |tx: &mut Self, v: Value| {
            if ty == I32 {
                tx.b.ins().ireduce(I32, v)
            } else {
                v
            }
        };
        let srcv = self.r(src);
        let srcv = narrow(self, srcv);
        let f = mflags();
        let old = match rmw {
            Some(rmw) => self.b.ins().atomic_rmw(ty, f, rmw, a, srcv),
            None => {
                let expected = self.r(0);
                let expected = narrow(self, expected);
                self.b.ins().atomic_cas(f, a, expected, srcv)
            }
        };
        let old = if ty == I32 {
            self.b.ins().uextend(I64, old)
        } else {
            old
        };
        if rmw.is_none() {
            self.set(0, old);
        } else if fetch {
            self.set(src, old);
        }
    }

    /// `d / s` or `d % s` in type `ty` with the BPF rules: x / 0 = 0, x % 0 = x,
    /// INT_MIN / -1 = INT_MIN, x % -1 = 0. `imm` is the divisor when it is a constant.
    fn divmod(
        &mut self,
        ty: Type,
        d: Value,
        s: Value,
        signed: bool,
        rem: bool,
        imm: Option<i64>,
    ) -> Value {
        if let Some(c) = imm {
            let c = if ty == I32 { c as i32 as i64 } else { c };
            if c == 0 {
                return if rem { d } else { self.k(ty, 0) };
            }
            if signed && c == -1 {
                return if rem {
                    self.k(ty, 0)
                } else {
                    self.b.ins().ineg(d)
                };
            }
            return match (signed, rem) {
                (false, false) => self.b.ins().udiv(d, s),
                (false, true) => self.b.ins().urem(d, s),
                (true, false) => self.b.ins().sdiv(d, s),
                (true, true) => self.b.ins().srem(d, s),
            };
        }
        let zero = self.k(ty, 0);
        let one = self.k(ty, 1);
        let is0 = self.b.ins().icmp(IntCC::Equal, s, zero);
        if !signed {
            let safe = self.b.ins().select(is0, one, s);
            return if rem {
                let r = self.b.ins().urem(d, safe);
                self.b.ins().select(is0, d, r)
            } else {
                let q = self.b.ins().udiv(d, safe);
                self.b.ins().select(is0, zero, q)
            };
        }
        let m1 = self.k(ty, -1);
        let ism1 = self.b.ins().icmp(IntCC::Equal, s, m1);
        let bad = self.b.ins().bor(is0, ism1);
        let safe = self.b.ins().select(bad, one, s);
        if rem {
            let r = self.b.ins().srem(d, safe);
            let t = self.b.ins().select(ism1, zero, r);
            self.b.ins().select(is0, d, t)
        } else {
            let q = self.b.ins().sdiv(d, safe);
            let n = self.b.ins().ineg(d);
            let t = self.b.ins().select(ism1, n, q);
            self.b.ins().select(is0, zero, t)
        }
    }

    /// The second operand: a register, or the immediate sign-extended to 64 bits.
    fn operand(&mut self, src: Operand) -> Value {
        match src {
            Operand::Reg(r) => self.r(r),
            Operand::Imm(imm) => self.k(I64, imm as i64),
        }
    }

    /// An ALU instruction in 64 bits (`wide`) or 32 (zero-extended into dst).
    fn binop(&mut self, aop: AluOp, wide: bool, dst: u8, src: Operand) {
        let ty = if wide { I64 } else { I32 };
        let d = self.r(dst);
        let s = self.operand(src);
        let (d, s) = if wide {
            (d, s)
        } else {
            (self.b.ins().ireduce(I32, d), self.b.ins().ireduce(I32, s))
        };
        let imm = match src {
            Operand::Imm(imm) => Some(imm as i64),
            Operand::Reg(_) => None,
        };
        let ins = self.b.ins();
        let v = match aop {
            AluOp::Add => ins.iadd(d, s),
            AluOp::Sub => ins.isub(d, s),
            AluOp::Mul => ins.imul(d, s),
            AluOp::Div => self.divmod(ty, d, s, false, false, imm),
            AluOp::SDiv => self.divmod(ty, d, s, true, false, imm),
            AluOp::Or => ins.bor(d, s),
            AluOp::And => ins.band(d, s),
            AluOp::Lsh => ins.ishl(d, s),
            AluOp::Rsh => ins.ushr(d, s),
            AluOp::Mod => self.divmod(ty, d, s, false, true, imm),
            AluOp::SMod => self.divmod(ty, d, s, true, true, imm),
            AluOp::Xor => ins.bxor(d, s),
            AluOp::Arsh => ins.sshr(d, s),
            AluOp::Neg => ins.ineg(d),
            AluOp::Mov => s,
            // Sign-extend the low 8, 16 or 32 bits of src to the operation's width.
            AluOp::MovSx(bits) => {
                let n = match bits {
                    8 => Some(I8),
                    16 => Some(I16),
                    32 if wide => Some(I32),
                    _ => None,
                };
                match n {
                    Some(n) => {
                        let low = ins.ireduce(n, s);
                        self.b.ins().sextend(ty, low)
                    }
                    None => s,
                }
            }
        };
        let v = if wide {
            v
        } else {
            self.b.ins().uextend(I64, v)
        };
        self.set(dst, v);
    }

    /// A conditional jump; `wide` selects JMP (64-bit) or JMP32. A `counted` jump (a
    /// backward jump on a cycle, `Prepared::counts_step`) takes a step of the budget
    /// on its taken edge.
    #[allow(clippy::too_many_arguments)]
    fn cond_jump(
        &mut self,
        pc: usize,
        (cond, dst, src): (JmpCond, u8, Operand),
        wide: bool,
        counted: bool,
        target: Block,
        fall: Block,
    ) {
        let d = self.r(dst);
        let s = self.operand(src);
        let (d, s) = if wide {
            (d, s)
        } else {
            (self.b.ins().ireduce(I32, d), self.b.ins().ireduce(I32, s))
        };
        let cc = match cond {
            JmpCond::Eq => Some(IntCC::Equal),
            JmpCond::Gt => Some(IntCC::UnsignedGreaterThan),
            JmpCond::Ge => Some(IntCC::UnsignedGreaterThanOrEqual),
            JmpCond::Set => None,
            JmpCond::Ne => Some(IntCC::NotEqual),
            JmpCond::Sgt => Some(IntCC::SignedGreaterThan),
            JmpCond::Sge => Some(IntCC::SignedGreaterThanOrEqual),
            JmpCond::Lt => Some(IntCC::UnsignedLessThan),
            JmpCond::Le => Some(IntCC::UnsignedLessThanOrEqual),
            JmpCond::Slt => Some(IntCC::SignedLessThan),
            JmpCond::Sle => Some(IntCC::SignedLessThanOrEqual),
        };
        let c = match cc {
            Some(cc) => self.b.ins().icmp(cc, d, s),
            None => {
                let a = self.b.ins().band(d, s);
                self.b.ins().icmp_imm_s(IntCC::NotEqual, a, 0)
            }
        };
        if counted {
            // A backward jump on a cycle: the taken edge takes a step.
            let edge = self.b.create_block();
            self.b.ins().brif(c, edge, &[], fall, &[]);
            self.enter(edge);
            self.step(pc);
            self.b.ins().jump(target, &[]);
        } else {
            self.b.ins().brif(c, target, &[], fall, &[]);
        }
    }

    /// A bpf-to-bpf call to the function at slot `target`.
    fn local_call(&mut self, pc: usize, target: i64) -> Result<(), JitError> {
        self.frame_lo_used = true;
        let prog = self.spec.prog;
        let idx = usize::try_from(target)
            .ok()
            .and_then(|t| prog.functions().binary_search(&t).ok())
            .ok_or_else(|| JitError::BadCall {
                prog: prog.name.clone(),
                pc,
                target,
            })?;
        let fref = self.frefs[idx];
        // Depth: the live stack tells how many frames are in use.
        let fp = self.r(FRAME_POINTER);
        let too_deep = self.too_deep();
        let zero = self.b.ins().iconst(I64, 0);
        self.trap_if(too_deep, status::CALL_DEPTH, pc, zero, zero);
        self.step(pc);
        let nfp = self.b.ins().iadd_imm_s(fp, -(STACK_FRAME as i64));
        let mut args = vec![self.ctx];
        for r in 1..=5 {
            args.push(self.r(r));
        }
        args.push(nfp);
        let call = self.b.ins().call(fref, &args);
        let res = self.b.inst_results(call).to_vec();
        let prop = self.prop_block();
        let cont = self.b.create_block();
        self.b
            .ins()
            .brif(res[1], prop, &[BlockArg::Value(res[1])], cont, &[]);
        self.enter(cont);
        // The callee told the shims its frame: this one is current again.
        self.store_frame_lo();
        self.set(0, res[0]);
        Ok(())
    }

    /// Follows which registers hold an `ld_imm64` constant after `op` (conservatively:
    /// any other write forgets it).
    fn track(&mut self, op: &Op) {
        let Some(insn) = op.insn() else {
            return;
        };
        let r = |i: u8| (i & 15) as usize;
        match insn {
            Insn::LdImm64 {
                dst, imm, next_imm, ..
            } => self.known[r(dst)] = Some(imm64(imm, next_imm)),
            Insn::Call(_) => self.known[..=5].fill(None),
            Insn::Atomic { src, .. } => {
                self.known[0] = None;
                self.known[r(src)] = None;
            }
            Insn::Alu { dst, .. } | Insn::End { dst, .. } | Insn::Load { dst, .. } => {
                self.known[r(dst)] = None
            }
            Insn::LdPacket { .. } => self.known[0] = None,
            Insn::Ja { .. } | Insn::Jmp { .. } | Insn::Exit | Insn::Store { .. } => {}
        }
    }

    /// Whether the call chain is 8 frames deep already (no room for a callee's frame).
    fn too_deep(&mut self) -> Value {
        self.entry_consts_used = true;
        self.b.ins().icmp_imm_s(
            IntCC::UnsignedGreaterThanOrEqual,
            self.live8,
            STACK_SIZE as i64 - 8,
        )
    }

    /// Tells the shims this function's frame (`JitCtx::frame_lo`): the live stack they
    /// accept in pointer arguments and region checks starts there. Stored on entry and
    /// again after each bpf-to-bpf call and `bpf_loop` (whose callees stored theirs);
    /// a tail call's target has the same frame.
    fn store_frame_lo(&mut self) -> Inst {
        self.b.ins().store(
            MemFlagsData::trusted(),
            self.frame_lo,
            self.ctx,
            tr::OFF_FRAME_LO,
        )
    }

    /// Calls the `extern "C"` shim at `f` with `args` (signature `sig`); its one result.
    /// `reads_frame_lo`: the shim checks pointers against the live stack, so this
    /// function must keep `JitCtx::frame_lo` current (see `frame_lo_used`).
    fn call_shim(
        &mut self,
        f: *const (),
        sig: SigRef,
        args: &[Value],
        reads_frame_lo: bool,
    ) -> Value {
        self.frame_lo_used |= reads_frame_lo;
        let fv = self.b.ins().iconst(I64, f as usize as i64);
        let call = self.b.ins().call_indirect(sig, fv, args);
        self.b.inst_results(call)[0]
    }

    /// A helper call: r0 = helper(r1..r5); a helper's trap stops the run at `pc`.
    ///
    /// Map lookups and updates on a known map (the analysis proved the same map in r1
    /// on every path, or r1 was loaded by `ld_imm64` in this block) of a plain type call
    /// their own shim with the map resolved now; with the key (and value) proven too,
    /// the shim checks nothing and cannot trap, and ARRAY / PERCPU_ARRAY lookups are
    /// inlined (the kernel's `map_gen_lookup`). In audit mode every call takes the
    /// checked path, with its facts and arguments stored for the trap's audit.
    fn helper_call(&mut self, pc: usize, id: i64) {
        let fact = self.spec.facts.fact(pc);
        let audit = self.spec.audit;
        let proven_map = fact
            .call_map
            .filter(|_| fact.proven_args & 1 != 0 && !audit)
            .and_then(|i| self.spec.maps.get(i as usize));
        let map = proven_map
            .or_else(|| self.known[1].and_then(|v| self.spec.maps.resolve(v as u64)))
            .filter(|m| tr::direct_map_helpers(m.info.map_type));
        // Bits of r1..r5 proven for this map (none in audit mode or without the map).
        let proven = if proven_map.is_some() && map.is_some() {
            fact.proven_args
        } else {
            0
        };
        if audit {
            let f = MemFlagsData::trusted();
            let facts = self.spec.facts as *const Analysis as usize as i64;
            let fv = self.b.ins().iconst(I64, facts);
            self.b.ins().store(f, fv, self.ctx, tr::OFF_AUDIT_FACTS);
            for r in 1..=5u8 {
                let v = self.r(r);
                let off = tr::OFF_AUDIT_ARGS + 8 * (r as i32 - 1);
                self.b.ins().store(f, v, self.ctx, off);
            }
        }
        // The shim, its signature and arguments, and whether it checks pointers (so
        // reads `JitCtx::frame_lo` and may trap): the proven shims do neither.
        let (f, sig, args, checked): (*const (), SigRef, Vec<Value>, bool) = match (id, map) {
            (helpers::MAP_LOOKUP_ELEM, Some(m)) if proven & 0b10 != 0 => {
                if let Some(l) = m.map.array_layout() {
                    let r0 = self.inline_array_lookup(l);
                    self.set(0, r0);
                    return;
                }
                if let Some(l) = m.map.hash_layout() {
                    let r0 = self.inline_hash_lookup(l, m);
                    self.set(0, r0);
                    return;
                }
                let key = self.r(2);
                let r0 = self.map_lookup_direct(m, key);
                self.set(0, r0);
                return;
            }
            (helpers::MAP_UPDATE_ELEM, Some(m)) if proven & 0b110 == 0b110 && !m.read_only() => {
                // The map's own update, called directly: `update_in_place` where the
                // analysis proved that no pointer into the map's values can be read
                // after the call (`Fact::update_in_place`), so an existing element of
                // a plain hash map with small values is written in place
                // (`maps::ProgOps::update_in_place`), which no program or process
                // can tell from the kernel's replacement.
                let ops = m.map.prog_ops();
                let f = if fact.update_in_place {
                    ops.update_in_place
                } else {
                    ops.update
                };
                let r0 = match m.map.hash_update_layout(fact.update_in_place) {
                    Some(u) if cfg!(target_arch = "x86_64") => self.inline_hash_update(u, m, f),
                    _ => self.map_update_direct(m, f),
                };
                self.set(0, r0);
                return;
            }
            (helpers::MAP_LOOKUP_ELEM, Some(m)) => {
                let mv = self.b.ins().iconst(I64, m as *const _ as usize as i64);
                let f = tr::map_lookup_shim as *const ();
                (f, self.lookup_sig, vec![self.ctx, mv, self.r(2)], true)
            }
            (helpers::MAP_UPDATE_ELEM, Some(m)) if !m.read_only() => {
                let mv = self.b.ins().iconst(I64, m as *const _ as usize as i64);
                let args = vec![self.ctx, mv, self.r(2), self.r(3), self.r(4)];
                (
                    tr::map_update_shim as *const (),
                    self.update_sig,
                    args,
                    true,
                )
            }
            (helpers::timer::START_ID, _) if !audit => {
                let zero = self.b.ins().iconst(I64, 0);
                let args = vec![self.ctx, self.r(1), self.r(2), self.r(3), zero];
                let f = tr::timer_start_shim as *const ();
                (f, self.update_sig, args, true)
            }
            _ => {
                let idv = self.b.ins().iconst(I64, id);
                let mut args = vec![self.ctx, idv];
                for r in 1..=5 {
                    args.push(self.r(r));
                }
                (tr::helper_shim as *const (), self.helper_sig, args, true)
            }
        };
        self.frame_lo_used |= checked;
        let fv = self.b.ins().iconst(I64, f as usize as i64);
        let call = self.b.ins().call_indirect(sig, fv, &args);
        let res = self.b.inst_results(call).to_vec();
        if checked {
            // The checked shims return the trap flag beside r0 (`tr::ShimRet`).
            let zero = self.b.ins().iconst(I64, 0);
            self.trap_if(res[1], status::HELPER, pc, zero, zero);
        }
        self.set(0, res[0]);
    }

    /// `bpf_map_lookup_elem` of an ARRAY or PERCPU_ARRAY map with a proven 4-byte key
    /// in r2, inline: the value's address when the index is below max_entries (and,
    /// per-CPU, the run's worker below the map's slots), else NULL.
    fn inline_array_lookup(&mut self, l: maps::ArrayLayout) -> Value {
        let key = self.r(2);
        let idx = self.b.ins().uload32(mflags(), key, 0);
        let mut ok = self
            .b
            .ins()
            .icmp_imm_s(IntCC::UnsignedLessThan, idx, l.max_entries as i64);
        let slot = if l.ncpus > 0 {
            let cpu = self
                .b
                .ins()
                .uload32(MemFlagsData::trusted(), self.ctx, tr::OFF_CPU);
            let cpu_ok = self
                .b
                .ins()
                .icmp_imm_s(IntCC::UnsignedLessThan, cpu, l.ncpus as i64);
            ok = self.b.ins().band(ok, cpu_ok);
            let row = self.b.ins().imul_imm_s(cpu, l.max_entries as i64);
            self.b.ins().iadd(row, idx)
        } else {
            idx
        };
        let off = self.b.ins().imul_imm_s(slot, l.vstride as i64);
        let addr = self.b.ins().iadd_imm_s(off, l.data as usize as i64);
        let zero = self.b.ins().iconst(I64, 0);
        self.b.ins().select(ok, addr, zero)
    }

    /// The run's worker index (`JitCtx::cpu`), a u32.
    fn cpu(&mut self) -> Value {
        self.b
            .ins()
            .load(I32, MemFlagsData::trusted(), self.ctx, tr::OFF_CPU)
    }

    /// `bpf_map_lookup_elem(m, key)` for a map resolved now and a key the analysis
    /// proved readable for the map's key size: a direct call of the map's own lookup
    /// (`maps::ProgOps::lookup`, the C ABI), which checks nothing and cannot trap.
    fn map_lookup_direct(&mut self, m: &BoundMap, key: Value) -> Value {
        let f = m.map.prog_ops().lookup;
        let mv = self.b.ins().iconst(I64, &m.map as *const maps::Map as i64);
        let cpu = self.cpu();
        self.call_shim(f as *const (), self.map_lookup_sig, &[mv, key, cpu], false)
    }

    /// The key words of the program's key in r2 as the store holds them
    /// (`HashLayout::key_loads`), and the key's bucket (`HashLayout` steps 1-2),
    /// as a u32 and zero-extended; `None` for a layout of another key size than
    /// the map's `key_size` (the bytes the analysis proved readable), without key
    /// words, with a load past the key, a word no load makes or more words than
    /// its hash takes (none the maps crate gives): the caller then calls the
    /// map's own function.
    fn hash_bucket(
        &mut self,
        l: &maps::HashLayout,
        key_size: u32,
    ) -> Option<(Vec<Value>, Value, Value)> {
        // The analysis proved the map's key_size bytes at r2 readable: a layout (or
        // a load) for another size gets the map's own function, as does any other
        // layout the maps crate does not give (a load past the key words, a word no
        // load makes, more words than the hash takes).
        if l.key_size != key_size
            || l.key_loads()
                .any(|ld| ld.off + ld.bytes > l.key_size || ld.word >= l.key_words)
        {
            return None;
        }
        let key = self.r(2);
        // The key words, as the store holds them (`HashLayout::key_loads`).
        let mut words: Vec<Option<Value>> = vec![None; l.key_words as usize];
        for ld in l.key_loads() {
            let off = ld.off as i32;
            let v = match ld.bytes {
                1 => self.b.ins().uload8(I32, mflags(), key, off),
                2 => self.b.ins().uload16(I32, mflags(), key, off),
                _ => self.b.ins().load(I32, mflags(), key, off),
            };
            let v = if ld.shift != 0 {
                self.b.ins().ishl_imm_u(v, ld.shift as i64)
            } else {
                v
            };
            let w = &mut words[ld.word as usize];
            *w = Some(match *w {
                None => v,
                Some(prev) => self.b.ins().bor(prev, v),
            });
        }
        // jhash hashes at most three words with its final mix alone.
        let most = match l.hash {
            maps::BucketHash::Fast => usize::MAX,
            maps::BucketHash::Jhash => 3,
        };
        let words = match words.into_iter().collect::<Option<Vec<Value>>>() {
            Some(w) if !w.is_empty() && w.len() <= most => w,
            _ => return None,
        };
        let h = match l.hash {
            maps::BucketHash::Fast => {
                use maps::fast_hash_consts as fh;
                let mut h = self.b.ins().iconst(I32, l.hash_init as i64);
                for &w in &words {
                    let x = self.b.ins().bxor(h, w);
                    let x = self.b.ins().imul_imm_u(x, fh::WORD_MUL as i64);
                    h = self.b.ins().rotl_imm_u(x, fh::WORD_ROT as i64);
                }
                for i in 0..2 {
                    let s = self.b.ins().ushr_imm_u(h, fh::FIN_SHIFT[i] as i64);
                    let x = self.b.ins().bxor(h, s);
                    h = self.b.ins().imul_imm_u(x, fh::FIN_MUL[i] as i64);
                }
                let s = self.b.ins().ushr_imm_u(h, fh::FIN_SHIFT[2] as i64);
                self.b.ins().bxor(h, s)
            }
            maps::BucketHash::Jhash => {
                // a = init + w0, b = init (+ w1), c = init; then __jhash_final.
                let init = self.b.ins().iconst(I32, l.hash_init as i64);
                let mut st = [init; 3];
                for (i, &w) in words.iter().enumerate() {
                    st[i] = self.b.ins().iadd(init, w);
                }
                for (x, y, r) in maps::jhash_consts::FINAL {
                    let t = self.b.ins().bxor(st[x], st[y]);
                    let rot = self.b.ins().rotl_imm_u(st[y], r as i64);
                    st[x] = self.b.ins().isub(t, rot);
                }
                st[2]
            }
        };
        let bkt = self.b.ins().band_imm_u(h, l.bucket_mask as i64);
        let bkt64 = self.b.ins().uextend(I64, bkt);
        Some((words, bkt, bkt64))
    }

    /// The offset of bucket `bkt64`'s stripe from `l.stripes`: `(b & stripe_mask)
    /// * STRIPE_SIZE`, without the mask when it keeps every bit a bucket can have.
    fn stripe_offset(&mut self, l: &maps::HashLayout, bkt64: Value) -> Value {
        let stripe = if l.stripe_mask & l.bucket_mask == l.bucket_mask {
            bkt64
        } else {
            self.b.ins().band_imm_u(bkt64, l.stripe_mask as i64)
        };
        self.b
            .ins()
            .imul_imm_u(stripe, maps::HashLayout::STRIPE_SIZE as i64)
    }

    /// The walk of bucket `bkt64`'s chain (`HashLayout` step 4), from its head link,
    /// loaded here after whatever the caller read first (the stripe's seq, or its
    /// lock): jumps to `end(link)` at a link that is not an element in range (the
    /// chain's end, or a corrupt link), to `hit(e)` at the element whose key words
    /// equal `words`, and to `over` after `nelems` elements. Every index read from the store is
    /// checked against `nelems` before it becomes an address.
    fn hash_walk(
        &mut self,
        l: &maps::HashLayout,
        words: &[Value],
        bkt64: Value,
        (end, hit, over): (Block, Block, Block),
    ) {
        let shared = MemFlagsData::new().with_notrap().with_aligned();
        // 4 bytes per head: a shift the address mode takes as its scale.
        let hoff = self.b.ins().ishl_imm_u(bkt64, 2);
        let head_addr = self.b.ins().iadd_imm_s(hoff, l.buckets as usize as i64);
        let head = self.b.ins().atomic_load(I32, shared, head_addr);
        let walk = self.b.create_block();
        let elem = self.b.create_block();
        let next = self.b.create_block();
        self.b.append_block_param(walk, I32); // link
        self.b.append_block_param(walk, I32); // elements passed
        let zero32 = self.b.ins().iconst(I32, 0);
        self.b
            .ins()
            .jump(walk, &[BlockArg::Value(head), BlockArg::Value(zero32)]);

        // walk(link, steps): an element link in range, or the end. The link's two
        // tag bits are rotated into the top of its 64-bit zero extension, so that
        // one unsigned compare with nelems stops at a non-element link (its rotated
        // value is at least 2^62), at link 0 (-1) and at an index out of range; for
        // an element link the value is `(link >> 2) - 1`, the element's index.
        self.b.switch_to_block(walk);
        let (link, steps) = (self.b.block_params(walk)[0], self.b.block_params(walk)[1]);
        debug_assert_eq!(maps::HashLayout::TAG_MASK, 3);
        let link64 = self.b.ins().uextend(I64, link);
        let rot = self.b.ins().rotr_imm_u(link64, 2);
        let idx64 = self.b.ins().iadd_imm_s(rot, -1);
        let stop =
            self.b
                .ins()
                .icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, idx64, l.nelems as i64);
        self.b
            .ins()
            .brif(stop, end, &[BlockArg::Value(link)], elem, &[]);

        // elem: idx < nelems; compare its key, word by word.
        self.enter(elem);
        let eoff = self.b.ins().imul_imm_u(idx64, l.elem_size as i64);
        let e = self.b.ins().iadd_imm_s(eoff, l.elems as usize as i64);
        for (i, &w) in words.iter().enumerate() {
            let ka = self.b.ins().iadd_imm_s(e, l.key_off as i64 + 4 * i as i64);
            let k = self.b.ins().atomic_load(I32, shared, ka);
            let same = self.b.ins().icmp(IntCC::Equal, k, w);
            if i + 1 == words.len() {
                self.b
                    .ins()
                    .brif(same, hit, &[BlockArg::Value(e)], next, &[]);
            } else {
                let more = self.b.create_block();
                self.b.ins().brif(same, more, &[], next, &[]);
                self.enter(more);
            }
        }

        // next: follow the element's link, at most nelems elements.
        self.enter(next);
        let link2 = self.b.ins().atomic_load(I32, shared, e);
        let steps2 = self.b.ins().iadd_imm_s(steps, 1);
        let stop_walk =
            self.b
                .ins()
                .icmp_imm_u(IntCC::UnsignedGreaterThan, steps2, l.nelems as i64);
        self.b.ins().brif(
            stop_walk,
            over,
            &[],
            walk,
            &[BlockArg::Value(link2), BlockArg::Value(steps2)],
        );
        self.b.seal_block(walk);
    }

    /// `bpf_map_lookup_elem` of a HASH or PERCPU_HASH map with a key of up to
    /// `maps::HashLayout::MAX_KEY` bytes and a proven key in r2, inline: the lock-free
    /// walk `maps::HashLayout` describes (the map's `walk_once`), the key words read
    /// by the layout's `key_loads`, bucketed by its `hash` (the store's `fast_hash`, constants from
    /// `maps::fast_hash_consts`, or the kernel's jhash of BPF_F_ZERO_SEED maps, from
    /// `maps::jhash_consts`). Everything read from the store is checked before it is
    /// used as an address: bucket and stripe come from the key's hash masked by the
    /// map's definition, every element index decoded from a link is compared with
    /// `nelems`, and the walk stops after `nelems` elements.
    /// A hit gives the value's address, a miss in a quiet bucket null; every other
    /// end (a writer changed the chain, a corrupt link, the step bound) asks the
    /// map's own lookup (`map_lookup_direct`), which restarts or reports the
    /// miss. The loads of store memory are atomic loads in program order, as the
    /// map's acquire loads and fence.
    fn inline_hash_lookup(&mut self, l: maps::HashLayout, m: &BoundMap) -> Value {
        let key = self.r(2);
        let shared = MemFlagsData::new().with_notrap().with_aligned();
        let Some((words, bkt, bkt64)) = self.hash_bucket(&l, m.info.key_size) else {
            return self.map_lookup_direct(m, key);
        };
        let soff = self.stripe_offset(&l, bkt64);
        let seq_base = l.stripes as usize as i64 + maps::HashLayout::STRIPE_SEQ as i64;
        let seq_addr = self.b.ins().iadd_imm_s(soff, seq_base);
        let seq = self.b.ins().atomic_load(I32, shared, seq_addr);

        let end = self.b.create_block();
        let hit = self.b.create_block();
        let slow = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(end, I32); // link
        self.b.append_block_param(hit, I64); // element address
        self.b.append_block_param(done, I64);
        self.b.set_cold_block(slow);
        self.hash_walk(&l, &words, bkt64, (end, hit, slow));

        // end(link): a true miss only at this bucket's end (link 0 or nulls(b)),
        // with its stripe quiet (seq even and unchanged).
        self.enter(end);
        let link = self.b.block_params(end)[0];
        let not_zero = self.b.create_block();
        let quiet = self.b.create_block();
        self.b.ins().brif(link, not_zero, &[], quiet, &[]);
        self.enter(not_zero);
        let nb = self.b.ins().ishl_imm_u(bkt, 2);
        let nulls = self.b.ins().bor_imm_u(nb, 1);
        // nulls(b), as `maps::HashLayout::nulls` computes it.
        debug_assert_eq!(
            maps::HashLayout::nulls(l.bucket_mask),
            (l.bucket_mask << 2) | 1
        );
        let is_nulls = self.b.ins().icmp(IntCC::Equal, link, nulls);
        self.b.ins().brif(is_nulls, quiet, &[], slow, &[]);
        self.enter(quiet);
        let seq2 = self.b.ins().atomic_load(I32, shared, seq_addr);
        let changed = self.b.ins().bxor(seq2, seq);
        let odd = self.b.ins().band_imm_u(seq, 1);
        let unquiet = self.b.ins().bor(changed, odd);
        let null = self.b.ins().iconst(I64, 0);
        self.b
            .ins()
            .brif(unquiet, slow, &[], done, &[BlockArg::Value(null)]);

        // hit(e): the value (per-CPU: the run's worker's slot, null without one).
        self.enter(hit);
        let e = self.b.block_params(hit)[0];
        let v = self.b.ins().iadd_imm_s(e, l.value_off as i64);
        let v = if l.ncpus > 0 {
            let cpu = self
                .b
                .ins()
                .uload32(MemFlagsData::trusted(), self.ctx, tr::OFF_CPU);
            let ok = self
                .b
                .ins()
                .icmp_imm_u(IntCC::UnsignedLessThan, cpu, l.ncpus as i64);
            let off = self.b.ins().imul_imm_u(cpu, l.vstride as i64);
            let vc = self.b.ins().iadd(v, off);
            let null = self.b.ins().iconst(I64, 0);
            self.b.ins().select(ok, vc, null)
        } else {
            v
        };
        self.b.ins().jump(done, &[BlockArg::Value(v)]);

        // slow: the map's own lookup.
        self.enter(slow);
        let r = self.map_lookup_direct(m, key);
        self.b.ins().jump(done, &[BlockArg::Value(r)]);

        self.enter(done);
        self.b.block_params(done)[0]
    }

    /// `bpf_map_update_elem` of a map that writes existing keys in place, with the
    /// key (r2) and value (r3) proven, inline (`maps::HashUpdateLayout`, which
    /// `hash_store_existing` implements in the maps crate): flags BPF_ANY or
    /// BPF_EXIST (and, per-CPU, the run's worker below the map's slots), the
    /// pid known, the stripe lock free at the first compare-and-swap, the key
    /// found under the lock: its value is written with one word store, the lock
    /// released, r0 = 0. Everything else (other flags, a lock not free, a miss:
    /// the insert, a corrupt chain) releases what it took and calls `slow`, the
    /// map's own update, which has the same semantics.
    ///
    /// x86-64 only: there a plain aligned store is an atomic release store (TSO),
    /// while Cranelift's `atomic_store` adds an `mfence`; `map_update_direct`
    /// elsewhere.
    fn inline_hash_update(
        &mut self,
        u: maps::HashUpdateLayout,
        m: &BoundMap,
        slow: maps::UpdateFn,
    ) -> Value {
        let l = u.lookup;
        let shared = MemFlagsData::new().with_notrap().with_aligned();
        let (value, flags) = (self.r(3), self.r(4));
        let Some((words, _bkt, bkt64)) = self.hash_bucket(&l, m.info.key_size) else {
            return self.map_update_direct(m, slow);
        };
        let slow_blk = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        self.b.set_cold_block(slow_blk);
        // BPF_ANY (0) or BPF_EXIST (2): `flags & !2 == 0`.
        let other = self.b.ins().band_imm_u(flags, !2i64);
        let flags_ok = self.b.create_block();
        self.b.ins().brif(other, slow_blk, &[], flags_ok, &[]);
        self.enter(flags_ok);
        let cpu = if l.ncpus > 0 {
            let cpu = self
                .b
                .ins()
                .uload32(MemFlagsData::trusted(), self.ctx, tr::OFF_CPU);
            let out =
                self.b
                    .ins()
                    .icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, cpu, l.ncpus as i64);
            let cpu_ok = self.b.create_block();
            self.b.ins().brif(out, slow_blk, &[], cpu_ok, &[]);
            self.enter(cpu_ok);
            Some(cpu)
        } else {
            None
        };
        // The pid (0 until this process's first lock: the map's own update fills it).
        let pid_addr = self.b.ins().iconst(I64, u.pid.as_ptr() as usize as i64);
        let pid = self.b.ins().atomic_load(I32, shared, pid_addr);
        let pid_ok = self.b.create_block();
        self.b.ins().brif(pid, pid_ok, &[], slow_blk, &[]);
        self.enter(pid_ok);
        let soff = self.stripe_offset(&l, bkt64);
        let lock = self.b.ins().iadd_imm_s(soff, l.stripes as usize as i64);
        let zero32 = self.b.ins().iconst(I32, 0);
        let was = self.b.ins().atomic_cas(shared, lock, zero32, pid);
        let locked = self.b.create_block();
        self.b.ins().brif(was, slow_blk, &[], locked, &[]);
        self.enter(locked);
        let end = self.b.create_block();
        let hit = self.b.create_block();
        let unlock_slow = self.b.create_block();
        self.b.append_block_param(end, I32);
        self.b.append_block_param(hit, I64);
        self.b.set_cold_block(unlock_slow);
        self.hash_walk(&l, &words, bkt64, (end, hit, unlock_slow));
        // end: not found (or a corrupt link): the map's own update decides.
        self.enter(end);
        self.b.ins().jump(unlock_slow, &[]);

        // hit(e): the value word (per-CPU: the worker's slot), then release.
        self.enter(hit);
        let e = self.b.block_params(hit)[0];
        let mut v = self.b.ins().iadd_imm_s(e, l.value_off as i64);
        if let Some(cpu) = cpu {
            // `uload32` gave the worker index zero-extended to 64 bits.
            let off = self.b.ins().imul_imm_u(cpu, l.vstride as i64);
            v = self.b.ins().iadd(v, off);
        }
        let ty = if u.value_size == 8 { I64 } else { I32 };
        let word = self.b.ins().load(ty, mflags(), value, 0);
        self.b.ins().store(shared, word, v, 0);
        self.unlock(lock, pid);
        let zero = self.b.ins().iconst(I64, 0);
        self.b.ins().jump(done, &[BlockArg::Value(zero)]);

        self.enter(unlock_slow);
        self.unlock(lock, pid);
        self.b.ins().jump(slow_blk, &[]);

        self.enter(slow_blk);
        let r = self.map_update_direct(m, slow);
        self.b.ins().jump(done, &[BlockArg::Value(r)]);
        self.enter(done);
        self.b.block_params(done)[0]
    }

    /// Releases the store lock at `lock` taken with `pid`, as
    /// `maps::lock::PidLockGuard` does: 0 stored (a release store on x86-64) when
    /// the word still holds `pid`.
    fn unlock(&mut self, lock: Value, pid: Value) {
        let shared = MemFlagsData::new().with_notrap().with_aligned();
        let cur = self.b.ins().atomic_load(I32, shared, lock);
        let ours = self.b.ins().icmp(IntCC::Equal, cur, pid);
        let release = self.b.create_block();
        let after = self.b.create_block();
        self.b.ins().brif(ours, release, &[], after, &[]);
        self.enter(release);
        let zero32 = self.b.ins().iconst(I32, 0);
        self.b.ins().store(shared, zero32, lock, 0);
        self.b.ins().jump(after, &[]);
        self.enter(after);
    }

    /// `bpf_map_update_elem` through the map's own update `f` (`maps::UpdateFn`),
    /// with the key, value and flags in r2-r4 proven: a direct call that checks
    /// nothing and cannot trap.
    fn map_update_direct(&mut self, m: &BoundMap, f: maps::UpdateFn) -> Value {
        let mv = self.b.ins().iconst(I64, &m.map as *const maps::Map as i64);
        let cpu = self.cpu();
        let args = [mv, self.r(2), self.r(3), self.r(4), cpu];
        self.call_shim(f as *const (), self.map_update_sig, &args, false)
    }

    /// `bpf_loop(nr_loops, callback, callback_ctx, flags)` as the interpreter runs it
    /// (the kernel's inlined loop, see `Vm::bpf_loop`): -EINVAL for flags != 0,
    /// 0xfffffff9 (-E2BIG in 32 bits) for nr_loops above 1 << 23 (64-bit compare), a
    /// trap for a callback that is not one of the program's subprograms or a call chain
    /// already 8 frames deep; then `callback(i, callback_ctx)` for i = 0.. in a frame
    /// below this one until it returns non-zero (r0 = the number of calls) or
    /// `nr_loops` calls were made. The loop is generated code calling the compiled
    /// callback directly. Each callback invocation counts its own tail calls and leaves
    /// this function's count alone, as the interpreter's (the kernel's verifier refuses
    /// tail calls in callbacks anyway).
    fn bpf_loop(&mut self, pc: usize) {
        self.frame_lo_used = true;
        let nr = self.r(1);
        let cb = self.r(2);
        let cb_ctx = self.r(3);
        let flags = self.r(4);
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);

        let einval = self.b.ins().iconst(I64, -(libc::EINVAL as i64));
        let flags_ok = self.b.create_block();
        self.b
            .ins()
            .brif(flags, done, &[BlockArg::Value(einval)], flags_ok, &[]);
        self.enter(flags_ok);
        // As the kernel's inlined loop: all 64 bits compared, -E2BIG as a 32-bit move.
        let n = nr;
        let big = self
            .b
            .ins()
            .icmp_imm_s(IntCC::UnsignedGreaterThan, n, BPF_MAX_LOOPS);
        let e2big = self.b.ins().iconst(I64, (-libc::E2BIG) as u32 as i64);
        let n_ok = self.b.create_block();
        self.b
            .ins()
            .brif(big, done, &[BlockArg::Value(e2big)], n_ok, &[]);
        self.enter(n_ok);

        let addr = self.callback_addr(pc, cb, helpers::BPF_LOOP);

        // Depth: the callback's frame must fit, as for a bpf-to-bpf call.
        let fp = self.r(FRAME_POINTER);
        let too_deep = self.too_deep();
        let zero = self.b.ins().iconst(I64, 0);
        self.trap_if(too_deep, status::CALL_DEPTH, pc, zero, zero);
        let nfp = self.b.ins().iadd_imm_s(fp, -(STACK_FRAME as i64));
        let f = MemFlagsData::trusted();
        let saved = self.b.ins().load(I32, f, self.ctx, tr::OFF_TAIL_CALLS);

        // for i in 0..n { if callback(i, cb_ctx) == 1 { break i + 1 } } else n
        let head = self.b.create_block();
        self.b.append_block_param(head, I64);
        let body = self.b.create_block();
        let next = self.b.create_block();
        let out = self.b.create_block();
        self.b.append_block_param(out, I64);
        self.b.ins().jump(head, &[BlockArg::Value(zero)]);
        self.b.switch_to_block(head);
        let i = self.b.block_params(head)[0];
        let fin = self.b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, i, n);
        self.b
            .ins()
            .brif(fin, out, &[BlockArg::Value(n)], body, &[]);
        self.enter(body);
        self.step(pc);
        let zero32 = self.b.ins().iconst(I32, 0);
        self.b.ins().store(f, zero32, self.ctx, tr::OFF_TAIL_CALLS);
        let args = [self.ctx, i, cb_ctx, zero, zero, zero, nfp];
        let call = self.b.ins().call_indirect(self.func_sig, addr, &args);
        let res = self.b.inst_results(call).to_vec();
        let prop = self.prop_block();
        self.b
            .ins()
            .brif(res[1], prop, &[BlockArg::Value(res[1])], next, &[]);
        self.enter(next);
        let i1 = self.b.ins().iadd_imm_s(i, 1);
        self.b.ins().brif(
            res[0],
            out,
            &[BlockArg::Value(i1)],
            head,
            &[BlockArg::Value(i1)],
        );
        self.b.seal_block(head);
        self.enter(out);
        let calls = self.b.block_params(out)[0];
        self.store_frame_lo();
        self.b.ins().store(f, saved, self.ctx, tr::OFF_TAIL_CALLS);
        self.b.ins().jump(done, &[BlockArg::Value(calls)]);
        self.enter(done);
        let r0 = self.b.block_params(done)[0];
        self.set(0, r0);
    }

    /// The compiled function a callback argument (a slot index, as the pseudo-func
    /// `ld_imm64` left it) names; a trap at `pc` (`BAD_CALLBACK`, the helper's id in
    /// `trap_info`) when it is not one of the program's subprograms.
    fn callback_addr(&mut self, pc: usize, cb: Value, helper: i64) -> Value {
        // The callback: one of the program's subprograms (a slot index, as the
        // pseudo-func `ld_imm64` left it), resolved to its compiled function.
        let found = self.b.create_block();
        self.b.append_block_param(found, I64);
        let bad = self.b.create_block();
        self.b.set_cold_block(bad);
        let mut sw = Switch::new();
        let mut arms = Vec::new();
        for (fi, &start) in self.spec.prog.functions().iter().enumerate().skip(1) {
            let blk = self.b.create_block();
            sw.set_entry(start as u128, blk);
            arms.push((blk, fi));
        }
        sw.emit(&mut self.b, cb, bad);
        for (blk, fi) in arms {
            self.enter(blk);
            let addr = self.b.ins().func_addr(I64, self.frefs[fi]);
            self.b.ins().jump(found, &[BlockArg::Value(addr)]);
        }
        self.enter(bad);
        let trap = self.trap_block();
        let st = self.b.ins().iconst(I64, status::BAD_CALLBACK);
        let pcv = self.b.ins().iconst(I64, pc as i64);
        let info = self.b.ins().iconst(I64, helper);
        let args = [
            BlockArg::Value(st),
            BlockArg::Value(pcv),
            BlockArg::Value(cb),
            BlockArg::Value(info),
        ];
        self.b.ins().jump(trap, &args);
        self.enter(found);
        self.b.block_params(found)[0]
    }

    /// `bpf_for_each_map_elem(map, callback, callback_ctx, flags)` as the interpreter
    /// runs it (`Vm::for_each`): -EINVAL for flags != 0, a trap for a callback that is
    /// not a subprogram or a call chain already 8 frames deep; then the walk, in
    /// `trampoline::for_each_shim`, which calls the compiled callback for each element
    /// in a frame below this one. A trap inside the callback comes back as its status
    /// (`tr::ShimRet::trapped`) and is passed up as a callee's.
    fn for_each(&mut self, pc: usize) {
        self.frame_lo_used = true;
        let (map, cb, cb_ctx, flags) = (self.r(1), self.r(2), self.r(3), self.r(4));
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        let einval = self.b.ins().iconst(I64, -(libc::EINVAL as i64));
        let flags_ok = self.b.create_block();
        self.b
            .ins()
            .brif(flags, done, &[BlockArg::Value(einval)], flags_ok, &[]);
        self.enter(flags_ok);
        let addr = self.callback_addr(pc, cb, helpers::FOR_EACH_MAP_ELEM);
        let too_deep = self.too_deep();
        let zero = self.b.ins().iconst(I64, 0);
        self.trap_if(too_deep, status::CALL_DEPTH, pc, zero, zero);
        let fp = self.r(FRAME_POINTER);
        let nfp = self.b.ins().iadd_imm_s(fp, -(STACK_FRAME as i64));
        let pcv = self.b.ins().iconst(I64, pc as i64);
        let args = [self.ctx, pcv, map, addr, cb_ctx, nfp, zero];
        self.frame_lo_used = true;
        let fv = self
            .b
            .ins()
            .iconst(I64, tr::for_each_shim as *const () as usize as i64);
        let call = self.b.ins().call_indirect(self.helper_sig, fv, &args);
        let res = self.b.inst_results(call).to_vec();
        let (r0, trapped) = (res[0], res[1]);
        self.store_frame_lo();
        let prop = self.prop_block();
        let ok = self.b.create_block();
        self.b
            .ins()
            .brif(trapped, prop, &[BlockArg::Value(trapped)], ok, &[]);
        self.enter(ok);
        self.b.ins().jump(done, &[BlockArg::Value(r0)]);
        self.enter(done);
        let r0 = self.b.block_params(done)[0];
        self.set(0, r0);
    }

    /// `bpf_tail_call(ctx, map, index)`: on success the target program runs in this
    /// frame and its result is this function's (a step of the budget, taken at `pc`);
    /// otherwise execution goes on.
    fn tail_call(&mut self, pc: usize) {
        let r1 = self.r(1);
        let r2 = self.r(2);
        let r3 = self.r(3);
        let target = self.call_shim(
            tr::tail_call_shim as *const (),
            self.tail_sig,
            &[self.ctx, r1, r2, r3],
            true,
        );
        let go = self.b.create_block();
        let cont = self.b.create_block();
        self.b.set_cold_block(go);
        self.b.ins().brif(target, go, &[], cont, &[]);
        self.enter(go);
        self.step(pc);
        let mut args = vec![self.ctx];
        for r in 1..=5 {
            args.push(self.r(r));
        }
        args.push(self.r(FRAME_POINTER));
        let call = self.b.ins().call_indirect(self.func_sig, target, &args);
        let res = self.b.inst_results(call).to_vec();
        self.b.ins().return_(&res);
        self.enter(cont);
    }

    /// Translates the instruction at `pc`. Returns whether the current block is still
    /// open (falls through to the next instruction).
    fn insn(
        &mut self,
        pc: usize,
        op: &Op,
        block_at: &dyn Fn(usize) -> Block,
    ) -> Result<bool, JitError> {
        let next = pc + insn_len(op);
        let Some(insn) = op.insn() else {
            // The second slot of an lddw: `prepare` lets no jump land there.
            self.trap_now(status::ILLEGAL, pc, 0);
            return Ok(false);
        };
        match insn {
            Insn::Alu {
                width,
                op: aop,
                dst,
                src,
            } => self.binop(aop, width == Width::W64, dst, src),
            // Byte swaps (a little-endian host: to_be swaps, to_le truncates).
            Insn::End { kind, bits, dst } => {
                let d = self.r(dst);
                let narrow = match bits {
                    16 => Some(I16),
                    32 => Some(I32),
                    _ => None,
                };
                let v = match (kind, narrow) {
                    (Endian::ToBe | Endian::Swap, Some(t)) => {
                        let n = self.b.ins().ireduce(t, d);
                        let sw = self.b.ins().bswap(n);
                        self.b.ins().uextend(I64, sw)
                    }
                    (Endian::ToBe | Endian::Swap, None) => self.b.ins().bswap(d),
                    (Endian::ToLe, Some(t)) => {
                        let n = self.b.ins().ireduce(t, d);
                        self.b.ins().uextend(I64, n)
                    }
                    (Endian::ToLe, None) => d,
                };
                self.set(dst, v);
            }
            // Jumps.
            Insn::Ja { off } => {
                let t = block_at((pc as i64 + 1 + off as i64) as usize);
                if off < 0 && self.spec.prog.counts_step(pc) {
                    self.step(pc);
                }
                self.b.ins().jump(t, &[]);
                return Ok(false);
            }
            Insn::Jmp {
                width,
                cond,
                dst,
                src,
                off,
            } => {
                let t = block_at((pc as i64 + 1 + off as i64) as usize);
                let f = block_at(next);
                let counted = off < 0 && self.spec.prog.counts_step(pc);
                self.cond_jump(pc, (cond, dst, src), width == Width::W64, counted, t, f);
                return Ok(false);
            }
            Insn::Call(CallTarget::Local(off)) => {
                self.local_call(pc, pc as i64 + 1 + off as i64)?;
            }
            Insn::Call(CallTarget::Helper(id)) => {
                if id as i64 == helpers::TAIL_CALL {
                    self.tail_call(pc);
                } else if id as i64 == helpers::BPF_LOOP {
                    self.bpf_loop(pc);
                } else if id as i64 == helpers::FOR_EACH_MAP_ELEM {
                    self.for_each(pc);
                } else {
                    self.helper_call(pc, id as i64);
                }
            }
            // `prepare` refuses both.
            Insn::Call(CallTarget::Kfunc(_)) => {
                self.trap_now(status::ILLEGAL, pc, CALL as i64);
                return Ok(false);
            }
            Insn::LdPacket { .. } => {
                self.trap_now(status::ILLEGAL, pc, 0);
                return Ok(false);
            }
            Insn::Exit => {
                let r0 = self.r(0);
                let zero = self.b.ins().iconst(I64, 0);
                self.b.ins().return_(&[r0, zero]);
                return Ok(false);
            }
            // Loads and stores.
            Insn::Load {
                size,
                sign_extend,
                dst,
                src,
                off,
            } => self.load(pc, (dst, src, off), size.bytes() as u32, sign_extend),
            Insn::Store {
                size,
                dst,
                off,
                src,
            } => {
                let v = self.operand(src);
                self.store(pc, (dst, off), size.bytes() as u32, v);
            }
            Insn::Atomic {
                size,
                op: aop,
                fetch,
                dst,
                src,
                off,
            } => self.atomic(pc, (aop, fetch), (dst, src, off), size.bytes() as u32),
            Insn::LdImm64 {
                dst, imm, next_imm, ..
            } => {
                let v = self.k(I64, imm64(imm, next_imm));
                self.set(dst, v);
            }
        }
        if next >= self.spec.end {
            // Unreachable: `translate` refused functions that fall off their end.
            return Err(JitError::FallsThrough {
                prog: self.spec.prog.name.clone(),
                pc,
            });
        }
        Ok(true)
    }
}

/// The 64-bit value of an `lddw` from its two halves.
fn imm64(imm: i32, next_imm: i32) -> i64 {
    ((next_imm as i64) << 32) | imm as u32 as i64
}

/// The callback trampoline (`trampoline::CallbackTrampoline`): `(ctx, function, r1,
/// r2, r3, r4, r10) -> status`, one call of `function` with the step budget (from
/// `max_steps`) and tail calls reset, r0 stored in the context (a `bpf_timer`
/// callback, a `bpf_for_each_map_elem` callback).
pub(super) fn cb_trampoline(mut b: FunctionBuilder<'_>, sigs: &Sigs, cfg: TargetFrontendConfig) {
    let sig = b.import_signature(sigs.func.clone());
    let blk = b.create_block();
    b.append_block_params_for_function_params(blk);
    b.switch_to_block(blk);
    let p = b.block_params(blk).to_vec();
    let (ctx, entry, r1, r2, r3, r4, r10) = (p[0], p[1], p[2], p[3], p[4], p[5], p[6]);
    let zero = b.ins().iconst(I64, 0);
    let zero32 = b.ins().iconst(I32, 0);
    let f = MemFlagsData::trusted();
    b.ins().store(f, zero32, ctx, tr::OFF_TAIL_CALLS);
    let budget = b.ins().load(I64, f, ctx, tr::OFF_MAX_STEPS);
    b.ins().store(f, budget, ctx, tr::OFF_STEPS_LEFT);
    let call = b
        .ins()
        .call_indirect(sig, entry, &[ctx, r1, r2, r3, r4, zero, r10]);
    let res = b.inst_results(call).to_vec();
    b.ins().store(f, res[0], ctx, tr::OFF_R0);
    b.ins().return_(&[res[1]]);
    b.seal_all_blocks();
    b.finalize(cfg);
}
