//! The JIT: every XDP program of a [`LoadedObject`] compiled to native code with
//! Cranelift, with the interpreter's semantics (`interp.rs` is the reference).
//!
//! ```no_run
//! use runtime::jit::{JitObject, JitOptions};
//! use runtime::{LoadedObject, Packet, Vm};
//! # let loaded: LoadedObject = todo!();
//! let jit = JitObject::compile(&loaded, &JitOptions::default()).unwrap();
//! let mut pkt = Packet::new(&[0u8; 64]).unwrap();
//! let r0 = jit.run(&mut Vm::new(0), 0, &mut pkt).unwrap();
//! ```
//!
//! - `compile.rs`: BPF → Cranelift IR, one native function per BPF function;
//! - `trampoline.rs`: the per-run context and the `extern "C"` shims compiled code calls
//!   (helpers, the slow memory check, tail calls);
//! - `perfmap.rs`: `/tmp/perf-<pid>.map` for `perf report`.
//!
//! Memory safety: every load, store and atomic is checked like `Regions::check` (the
//! stack and the packet inline, the rest in Rust), except r10-relative accesses at
//! constant offsets inside the current frame, which cannot leave it. A trap returns a
//! status through every frame (no unwinding, no signals) and becomes a [`Trap`].
//!
//! Checks that remain are an inline test (stack or packet, a handful of instructions)
//! with the rest (context, map values, traps) in a cold call to `Regions::check`.
//! `analysis.rs` proves more accesses safe: constant offsets inside the current frame
//! (also through copies of r10), context reads, and packet accesses dominated by a
//! `data + N > data_end` test with no call in between.
//!
//! Calls: helpers go through `helper_shim` (the interpreter's table), except
//! `bpf_map_lookup_elem` / `bpf_map_update_elem` on a map whose handle r1 got from an
//! `ld_imm64` in the same block, which call `map_lookup_shim` / `map_update_shim` with
//! the map resolved at compile time (same checks, traps and errors). `bpf_loop` is a
//! loop in generated code calling the compiled callback directly, each call in a frame
//! of its own (as in the interpreter's `Vm::bpf_loop`, the kernel's inlined loop).
//! `run_repeat` loops over the repeats in `JitObject::enter`, calling the entry
//! function directly, resetting the step budget (`JitCtx::steps_left`, counted down at
//! backward jumps on a cycle, calls, `bpf_loop` iterations and tail calls as in the
//! interpreter) before each and reading the interruption flag after each.
//!
//! Differences from the interpreter, for programs the kernel's verifier refuses only:
//! after a bpf-to-bpf call r1..r5 keep the caller's values (the interpreter shows the
//! callee's; the verifier forbids reading them), a callee or tail-call target starts
//! with r0 and r6..r9 zero, and a tail call whose first argument is not the context
//! falls through.
//!
//! perf: with `JitOptions::perf_map` (`xdp-runner`: `--perf-map` or
//! `XDP_RUNTIME_PERF_MAP=1`), every compiled
//! function is appended to `/tmp/perf-<pid>.map` as `bpf_prog_<program>` (entry) or
//! `bpf_prog_<program>_<first insn>` (subprogram; `bpf_prog_<program>_0` is the copy of
//! the entry function that bpf-to-bpf calls to pc 0 reach), so
//! `XDP_RUNTIME_PERF_MAP=1 perf record -g xdp-runner run --engine jit ...` then
//! `perf report` shows program names instead of bare addresses.
//!
//! This module holds unsafe code: entering compiled code, and the shims.
#![deny(unsafe_op_in_unsafe_fn)]

mod compile;
mod error;
pub mod perfmap;
mod trampoline;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cranelift_codegen::ir::UserFuncName;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};

pub use error::JitError;
pub use perfmap::Symbol;

use crate::error::{Trap, TrapKind};
use crate::interp::STACK_FRAME;
use crate::maptable::RingRecords;
use crate::memory::Regions;
use crate::xdp::Packet;
use crate::{LoadedObject, Repeated, Vm};
use trampoline::{CallbackTrampoline, JitCtx};

/// How to compile.
#[derive(Clone, Debug)]
pub struct JitOptions {
    /// Write `/tmp/perf-<pid>.map` lines for every compiled function (`xdp-runner`
    /// also turns it on for `XDP_RUNTIME_PERF_MAP=1`).
    pub perf_map: bool,
    /// Emit the memory checks ([`MemoryChecks::On`], the default). Turning them off
    /// takes an `unsafe` call ([`MemoryChecks::off`]): programs then run unchecked and
    /// may read and write any host memory. Only to measure the checks' cost.
    pub memory_checks: MemoryChecks,
    /// Compile about twice as fast for code that runs 10–15% slower (Cranelift's
    /// single-pass register allocator instead of the backtracking one).
    pub fast_compile: bool,
    /// Cranelift's "speed" optimisation level instead of "none": measured
    /// (callgrind, host instructions), 15–25% more compile time for code at most 2%
    /// faster, so off by default.
    pub optimize: bool,
    /// Check proven accesses too, and trap with `TrapKind::ProofViolated` when one of
    /// them fails: the audit of the analysis's proofs (off by default).
    pub audit: bool,
}

impl Default for JitOptions {
    fn default() -> Self {
        JitOptions {
            perf_map: false,
            memory_checks: MemoryChecks::On,
            fast_compile: false,
            optimize: false,
            audit: false,
        }
    }
}

/// Whether compiled code checks its memory accesses (see [`JitOptions::memory_checks`]).
/// Only `unsafe` code turns them off:
///
/// ```compile_fail
/// let _ = runtime::jit::MemoryChecks::Off(runtime::jit::Unchecked(()));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MemoryChecks {
    /// Every access is proven safe or checked, as in the interpreter.
    #[default]
    On,
    /// Built only by [`MemoryChecks::off`].
    #[doc(hidden)]
    Off(Unchecked),
}

/// The proof that someone called the `unsafe` [`MemoryChecks::off`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unchecked(());

impl MemoryChecks {
    /// No memory checks in compiled code.
    ///
    /// # Safety
    /// Every program compiled with this must access only memory it may touch (its
    /// stack, the packet, the context, map values) on every run: nothing checks it,
    /// and any other access reads or writes host memory.
    pub unsafe fn off() -> MemoryChecks {
        MemoryChecks::Off(Unchecked(()))
    }

    fn on(self) -> bool {
        self == MemoryChecks::On
    }
}

/// Every XDP program of a [`LoadedObject`], compiled. The compiled code refers to the
/// object's maps, so it borrows the object.
pub struct JitObject<'a> {
    loaded: &'a LoadedObject,
    /// Owns the code; freed on drop.
    module: Option<JITModule>,
    /// Enters one compiled function with three arguments (`bpf_timer` callbacks).
    cb_trampoline: CallbackTrampoline,
    /// Address of each program's entry function, by program index.
    entries: Box<[u64]>,
    /// Store id of each program, by program index.
    store_ids: Box<[u32]>,
    /// (start slot, address) of every function of each program, by program index.
    functions: Vec<Vec<(usize, u64)>>,
    symbols: Vec<Symbol>,
    single_pass: Vec<String>,
    compile_time: Duration,
    /// Bytes of host stack a run may need at most (see [`host_stack_need`]).
    host_stack: usize,
    /// The facts of entry-function copies, which audit-mode code refers to.
    _facts: Vec<Arc<crate::verifier::Analysis>>,
}

impl<'a> JitObject<'a> {
    /// Compiles every program of `loaded.programs`.
    pub fn compile(loaded: &'a LoadedObject, opts: &JitOptions) -> Result<JitObject<'a>, JitError> {
        let t0 = Instant::now();
        let opt = if opts.optimize { "speed" } else { "none" };
        let alg = if opts.fast_compile {
            "single_pass"
        } else {
            "backtracking"
        };
        let isa = make_isa(opt, alg)?;
        // The backtracking allocator's time grows with the square of a function's size
        // (0.6 s at 10k instructions, 18.7 s at 50k); the single-pass one stays linear.
        // Functions above `SINGLE_PASS_ABOVE` slots are compiled with it.
        let big_isa = make_isa(opt, "single_pass")?;
        let sigs = compile::Sigs::new(isa.default_call_conv());
        let mut module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
        let merr = |e: cranelift_module::ModuleError| JitError::Module {
            message: e.to_string(),
        };

        // The proofs and map references of each program are about the table it was
        // prepared with; compiled code resolves maps in `loaded.maps`.
        if let Some(p) = loaded
            .programs
            .iter()
            .find(|p| p.maps_id() != loaded.maps.id())
        {
            return Err(JitError::OtherMapTable {
                prog: p.name.clone(),
            });
        }
        // Declare every function first, so calls can refer to any of them.
        let mut ids: Vec<Vec<FuncId>> = Vec::with_capacity(loaded.programs.len());
        let mut names: Vec<Vec<String>> = Vec::with_capacity(loaded.programs.len());
        for (pi, prog) in loaded.programs.iter().enumerate() {
            let mut pids = Vec::new();
            let mut pnames = Vec::new();
            for (fi, &start) in prog.functions().iter().enumerate() {
                let name = if fi == 0 {
                    format!("bpf_prog_{}", prog.name)
                } else {
                    format!("bpf_prog_{}_{}", prog.name, start)
                };
                let id = module
                    .declare_function(&format!("{pi}_{name}"), Linkage::Local, &sigs.func)
                    .map_err(merr)?;
                pids.push(id);
                pnames.push(name);
            }
            // A bpf-to-bpf call may target pc 0 with any r1: such calls go to a copy of
            // the entry function compiled without the entry's assumption (r1 = the
            // context), appended after the program's functions.
            if calls_entry(prog) {
                let name = format!("bpf_prog_{}_0", prog.name);
                let id = module
                    .declare_function(&format!("{pi}_{name}"), Linkage::Local, &sigs.func)
                    .map_err(merr)?;
                pids.push(id);
                pnames.push(name);
            }
            ids.push(pids);
            names.push(pnames);
        }
        let cb_tramp_id = module
            .declare_function("bpf_cb_trampoline", Linkage::Local, &sigs.cb_trampoline)
            .map_err(merr)?;

        let cfg = module.target_config();
        let mut ctx = module.make_context();
        let mut fctx = FunctionBuilderContext::new();
        let mut sizes: Vec<(FuncId, String, u64)> = Vec::new();
        let mut single_pass = Vec::new();
        let mut max_frame = 0usize;
        // Facts compiled code may point to in audit mode, beyond the programs' own.
        let mut kept_facts: Vec<Arc<crate::verifier::Analysis>> = Vec::new();
        for (pi, prog) in loaded.programs.iter().enumerate() {
            let n = prog.functions().len();
            // The copy of the entry function (slot `n`) may be entered with any r1: its
            // facts come from the analysis that assumes nothing about r1.
            let copy_facts =
                (ids[pi].len() > n).then(|| Arc::new(prog.analysis().without_entry_ctx()));
            // The functions that calls and bpf_loop reach: the copy of the entry, if any,
            // in place of the entry itself.
            let mut callees = ids[pi][..n].to_vec();
            if let Some(&copy) = ids[pi].get(n) {
                callees[0] = copy;
            }
            for fi in 0..ids[pi].len() {
                // Slot `n` is the entry's copy: the entry's code, no entry assumption.
                let start = prog.functions()[fi % n];
                let end = prog
                    .functions()
                    .get(fi % n + 1)
                    .copied()
                    .unwrap_or(prog.ops().len());
                let spec = compile::FuncSpec {
                    prog,
                    start,
                    end,
                    ids: &callees,
                    memory_checks: opts.memory_checks.on(),
                    maps: &loaded.maps,
                    facts: if fi < n {
                        prog.analysis()
                    } else {
                        copy_facts.as_deref().unwrap_or(prog.analysis())
                    },
                    audit: opts.audit,
                };
                let id = ids[pi][fi];
                ctx.func.signature = sigs.func.clone();
                ctx.func.name = UserFuncName::user(0, id.as_u32());
                {
                    let b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
                    let mut declare = |callee: FuncId, f: &mut cranelift_codegen::ir::Function| {
                        module.declare_func_in_func(callee, f)
                    };
                    compile::translate(b, &spec, &mut declare, &sigs, cfg)?;
                }
                let cerr = |message: String| JitError::Codegen {
                    prog: prog.name.clone(),
                    start,
                    message,
                };
                if end - start > SINGLE_PASS_ABOVE {
                    define_with(&mut module, &*big_isa, id, &mut ctx).map_err(cerr)?;
                    single_pass.push(names[pi][fi].clone());
                } else {
                    module
                        .define_function(id, &mut ctx)
                        .map_err(|e| cerr(format!("{e:?}")))?;
                }
                sizes.push((id, names[pi][fi].clone(), code_size(&ctx)));
                max_frame = max_frame.max(frame_size(&ctx));
                module.clear_context(&mut ctx);
            }
            kept_facts.extend(copy_facts);
        }
        ctx.func.signature = sigs.cb_trampoline.clone();
        ctx.func.name = UserFuncName::user(0, cb_tramp_id.as_u32());
        compile::cb_trampoline(
            FunctionBuilder::new(&mut ctx.func, &mut fctx),
            &sigs,
            module.target_config(),
        );
        module
            .define_function(cb_tramp_id, &mut ctx)
            .map_err(|e| JitError::Module {
                message: format!("callback trampoline: {e:?}"),
            })?;
        sizes.push((cb_tramp_id, "bpf_cb_trampoline".into(), code_size(&ctx)));
        let host_stack = host_stack_need(&loaded.programs, max_frame, frame_size(&ctx));
        module.clear_context(&mut ctx);
        module.finalize_definitions().map_err(merr)?;

        let entries: Box<[u64]> = ids
            .iter()
            .map(|p| module.get_finalized_function(p[0]) as u64)
            .collect();
        let functions: Vec<Vec<(usize, u64)>> = loaded
            .programs
            .iter()
            .zip(&ids)
            .map(|(prog, pids)| {
                prog.functions()
                    .iter()
                    .zip(pids)
                    .map(|(&start, &id)| (start, module.get_finalized_function(id) as u64))
                    .collect()
            })
            .collect();
        let store_ids: Box<[u32]> = loaded.programs.iter().map(|p| p.store_id).collect();
        let cb_ptr = module.get_finalized_function(cb_tramp_id);
        // SAFETY: compiled with the signature `CallbackTrampoline` describes (seven i64
        // parameters, one i64 result, the platform's C calling convention).
        let cb_trampoline: CallbackTrampoline = unsafe { std::mem::transmute(cb_ptr) };
        let symbols: Vec<Symbol> = sizes
            .into_iter()
            .map(|(id, name, size)| Symbol {
                start: module.get_finalized_function(id) as u64,
                size,
                name,
            })
            .collect();
        let compile_time = t0.elapsed();
        if opts.perf_map {
            // A missing perf map only costs symbol names in profiles.
            if let Err(e) = perfmap::append(&symbols) {
                eprintln!("warning: cannot write {}: {e}", perfmap::path().display());
            }
        }
        Ok(JitObject {
            loaded,
            module: Some(module),
            cb_trampoline,
            entries,
            store_ids,
            functions,
            symbols,
            single_pass,
            compile_time,
            host_stack,
            _facts: kept_facts,
        })
    }

    /// The object this was compiled from.
    pub fn loaded_object(&self) -> &'a LoadedObject {
        self.loaded
    }

    /// Bytes of host stack a run of this object may need at most: its deepest chain of
    /// compiled frames (bpf-to-bpf calls, `bpf_loop` callbacks and tail calls) plus a
    /// margin for helpers. A run on a thread with less stack left runs on a thread of
    /// its own with enough.
    pub fn host_stack_need(&self) -> usize {
        self.host_stack
    }

    /// The functions compiled with Cranelift's single-pass register allocator because
    /// they are longer than [`SINGLE_PASS_ABOVE`] slots (names as in [`Self::symbols`]).
    pub fn single_pass_functions(&self) -> &[String] {
        &self.single_pass
    }

    /// How long [`JitObject::compile`] took.
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    /// Every compiled function: address, size, and name (as in the perf map).
    pub fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }

    /// Runs program `prog` once on `pkt` and returns r0, like [`LoadedObject::run`].
    pub fn run(&self, vm: &mut Vm, prog: usize, pkt: &mut Packet) -> Result<u64, Trap> {
        self.run_repeat(vm, prog, pkt, 1).map(|(r0, _)| r0)
    }

    /// Runs program `prog` `repeat` times on the same packet without resetting it, as
    /// the kernel's test run does, and returns the last r0 and the total time. Each run
    /// has the step budget `vm.max_steps`.
    pub fn run_repeat(
        &self,
        vm: &mut Vm,
        prog: usize,
        pkt: &mut Packet,
        repeat: u64,
    ) -> Result<(u64, Duration), Trap> {
        self.run_repeated(vm, prog, pkt, repeat)
            .map(|r| (r.retval, r.elapsed))
    }

    /// [`JitObject::run_repeat`] that also reports how many runs were done, as
    /// [`LoadedObject::run_repeated`]: the flag of [`Vm::set_interrupt`] is read after
    /// each run.
    pub fn run_repeated(
        &self,
        vm: &mut Vm,
        prog: usize,
        pkt: &mut Packet,
        repeat: u64,
    ) -> Result<Repeated, Trap> {
        let Some(&entry) = self.entries.get(prog) else {
            return Err(Trap {
                kind: TrapKind::NoSuchProgram { index: prog },
                pc: 0,
            });
        };
        let (stack_lo, stack_hi) = vm.stack_bounds();
        let records = RingRecords::new(&self.loaded.maps);
        let regions = Regions {
            stack_lo,
            stack_hi,
            ctx: pkt.md_addr() as usize,
            values: self.loaded.maps.value_areas(),
            records: &records,
        };
        let flag = vm.interrupt_flag().cloned();
        let mut ctx = self.context(vm, pkt, &regions, stack_lo);
        ctx.prog_id = self.store_ids.get(prog).copied().unwrap_or(0);
        if let Some(f) = &flag {
            ctx.interrupt = Arc::as_ptr(f);
        }
        let repeat = repeat.max(1);
        let start = Instant::now();
        let here = &ctx as *const JitCtx as usize;
        let (retval, runs) = if stack_left(here) >= self.host_stack {
            // SAFETY: the context was just built for this run from live objects that
            // stay borrowed (and otherwise unused) until `enter` returns; `flag` keeps
            // the interruption flag alive.
            unsafe { self.enter(&mut ctx, entry, stack_hi, repeat) }?
        } else {
            self.enter_on_big_stack(&mut ctx, entry, stack_hi, repeat)?
        };
        Ok(Repeated {
            retval,
            elapsed: start.elapsed(),
            runs,
            interrupted: runs < repeat,
        })
    }

    /// Runs the compiled `bpf_timer` callback at slot `pc` of program `prog` with
    /// r1..r3 = `args` (map handle, key, value), as `Vm::run_timer_callback` does:
    /// a frame of its own at depth 0, `extra` readable besides the table's values,
    /// -EDEADLK for a cancel of `timer` from inside.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run_timer_callback(
        &self,
        vm: &mut Vm,
        prog: usize,
        pc: usize,
        args: [u64; 3],
        extra: crate::memory::ValueArea,
        pkt: &mut Packet,
        timer: (u32, u32),
    ) -> Result<u64, Trap> {
        let bad = |kind| Err(Trap { kind, pc: 0 });
        let Some(funcs) = self.functions.get(prog) else {
            return bad(TrapKind::NoSuchProgram { index: prog });
        };
        let Some(&(_, func)) = funcs.iter().skip(1).find(|(start, _)| *start == pc) else {
            return bad(TrapKind::HelperBadCallback {
                helper: isa::helpers::func::timer_set_callback,
                value: pc as u64,
            });
        };
        let (stack_lo, stack_hi) = vm.stack_bounds();
        let records = RingRecords::new(&self.loaded.maps);
        let mut values = self.loaded.maps.value_areas().to_vec();
        values.push(extra);
        let regions = Regions {
            stack_lo,
            stack_hi,
            ctx: pkt.md_addr() as usize,
            values: &values,
            records: &records,
        };
        let mut ctx = self.context(vm, pkt, &regions, stack_lo);
        ctx.prog_id = self.store_ids.get(prog).copied().unwrap_or(0);
        ctx.timer_cb = Some(timer);
        let here = &ctx as *const JitCtx as usize;
        if stack_left(here) < self.host_stack {
            return bad(TrapKind::HostStack {
                need: self.host_stack as u64,
            });
        }
        let [r1, r2, r3] = args;
        // SAFETY: the context was just built for this call from live objects that stay
        // borrowed until the call returns; `cb_trampoline` and `func` are compiled code
        // owned by `self.module`, which checks its accesses (or they are proven) and
        // returns normally on every path; the thread has the host stack it needs.
        let status =
            unsafe { (self.cb_trampoline)(&mut ctx, func, r1, r2, r3, 0, stack_hi as u64) };
        if status == 0 {
            Ok(ctx.r0)
        } else {
            Err(ctx.trap(status))
        }
    }

    fn context(
        &self,
        vm: &mut Vm,
        pkt: &mut Packet,
        regions: &Regions<'_>,
        stack_lo: usize,
    ) -> JitCtx {
        JitCtx {
            stack_lo: stack_lo as u64,
            frame_lo: (regions.stack_hi - STACK_FRAME) as u64,
            md: pkt.md_addr(),
            trap_pc: 0,
            trap_addr: 0,
            trap_info: 0,
            r0: 0,
            helper_trap: None,
            regions: (regions as *const Regions<'_>).cast(),
            pkt: pkt as *mut Packet,
            maps: &self.loaded.maps,
            rng: &mut vm.rng,
            entries: self.entries.as_ptr(),
            n_entries: self.entries.len(),
            cpu: vm.cpu,
            tail_calls: 0,
            steps_left: vm.max_steps,
            max_steps: vm.max_steps,
            interrupt: &trampoline::NEVER_INTERRUPTED,
            runs_left: 0,
            audit_facts: std::ptr::null(),
            audit_args: [0; 5],
            prog_id: 0,
            store_ids: self.store_ids.as_ptr(),
            timer_cb: None,
            cb_trampoline: Some(self.cb_trampoline),
        }
    }

    /// Runs the compiled program at `entry` `repeat` times with r1 = ctx and r10 =
    /// `stack_hi`, stopping at the first trap or when interrupted; returns the last r0
    /// and the number of runs done.
    ///
    /// Runs as `enter` does, on a thread of its own with the host stack the compiled
    /// code may need (more than the calling thread has left); the caller waits.
    fn enter_on_big_stack(
        &self,
        ctx: &mut JitCtx,
        entry: u64,
        stack_hi: usize,
        repeat: u64,
    ) -> Result<(u64, u64), Trap> {
        /// The run's context, moved to the thread that runs it.
        struct Sendable<'c>(&'c mut JitCtx);
        // SAFETY: the context and the objects it points to are used only by the
        // spawned thread until it is joined (the caller waits in the scope), and
        // nothing in them is tied to the calling thread.
        unsafe impl Send for Sendable<'_> {}
        struct Code<'j, 'a>(&'j JitObject<'a>);
        // SAFETY: the compiled code and the object are only read during a run.
        unsafe impl Send for Code<'_, '_> {}
        let need = self.host_stack;
        let boxed = Sendable(ctx);
        let code = Code(self);
        std::thread::scope(|s| {
            let spawned = std::thread::Builder::new()
                .name("xdp-jit-run".into())
                .stack_size(need + (64 << 10))
                .spawn_scoped(s, move || {
                    let (c, code) = (boxed, code);
                    // SAFETY: as for `enter`: the caller built the context for this
                    // run, and the thread has the stack the code needs.
                    unsafe { code.0.enter(c.0, entry, stack_hi, repeat) }
                });
            match spawned {
                Ok(h) => h.join().unwrap_or(Err(Trap {
                    kind: TrapKind::HostStack { need: need as u64 },
                    pc: 0,
                })),
                Err(_) => Err(Trap {
                    kind: TrapKind::HostStack { need: need as u64 },
                    pc: 0,
                }),
            }
        })
    }

    /// # Safety
    /// `ctx` must have been built by `context` for this run: its regions, packet, maps,
    /// rng and stack pointers valid and not otherwise used until this returns.
    unsafe fn enter(
        &self,
        ctx: &mut JitCtx,
        entry: u64,
        stack_hi: usize,
        repeat: u64,
    ) -> Result<(u64, u64), Trap> {
        // SAFETY: `entry` is the address of a compiled entry function, compiled with
        // the signature `Entry` describes, owned by `self.module` and alive as long as
        // `self`.
        let f: trampoline::Entry = unsafe { std::mem::transmute(entry as usize) };
        // Constant for the whole call: read once, not once per run.
        let (md, budget, flag) = (ctx.md, ctx.max_steps, ctx.interrupt);
        let r10 = stack_hi as u64;
        let c: *mut JitCtx = ctx;
        let mut left = repeat.max(1);
        let status = loop {
            // SAFETY: `c` is the caller's context for this run (see `# Safety`); the
            // compiled code touches only memory the region checks allow (or proved),
            // and returns normally on every path; `flag` points to a live AtomicBool
            // (`JitCtx::interrupt` is never null).
            unsafe {
                (*c).tail_calls = 0;
                (*c).steps_left = budget;
                let ret = f(c, md, 0, 0, 0, 0, r10);
                (*c).r0 = ret.r0;
                if ret.status != 0 {
                    break ret.status as i64;
                }
                left -= 1;
                if left == 0 {
                    break 0;
                }
                if (*flag).load(std::sync::atomic::Ordering::Relaxed) {
                    (*c).runs_left = left;
                    break trampoline::status::INTERRUPTED;
                }
            }
        };
        if status == 0 {
            Ok((ctx.r0, repeat))
        } else if status == trampoline::status::INTERRUPTED {
            Ok((ctx.r0, repeat - ctx.runs_left))
        } else {
            let t = ctx.trap(status);
            ctx.helper_trap = None;
            Err(t)
        }
    }
}

impl Drop for JitObject<'_> {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: the code is used only through `self`, which is going away; no run
            // is in progress (runs borrow `self`).
            unsafe { m.free_memory() };
        }
    }
}

impl std::fmt::Debug for JitObject<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitObject")
            .field("symbols", &self.symbols)
            .field("compile_time", &self.compile_time)
            .finish_non_exhaustive()
    }
}

/// Functions longer than this many slots get Cranelift's single-pass register
/// allocator: the backtracking one takes time quadratic in a function's size, measured
/// (`cargo run --release -p runtime --example jit_compile_time`) at 0.06 s for 2k
/// instructions, 0.6 s for 10k, 2.8 s for 20k and 18.7 s for 50k; single-pass stays near
/// 20 us per instruction, for code 10–15% slower.
pub const SINGLE_PASS_ABOVE: usize = 8192;

/// The target ISA with optimisation level `opt` and register allocator `alg`.
fn make_isa(
    opt: &str,
    alg: &str,
) -> Result<std::sync::Arc<dyn cranelift_codegen::isa::TargetIsa>, JitError> {
    let mut flags = settings::builder();
    let set = |f: &mut settings::Builder, k: &str, v: &str| {
        f.set(k, v).map_err(|e| JitError::Isa {
            message: format!("{k}={v}: {e}"),
        })
    };
    set(&mut flags, "opt_level", opt)?;
    set(&mut flags, "regalloc_algorithm", alg)?;
    set(&mut flags, "is_pic", "false")?;
    // A function's frame larger than a page (spill slots of a huge function) is probed
    // page by page on entry, so it can never step over the thread's guard page into
    // other memory; `host_stack` makes sure a run has the room in the first place.
    set(&mut flags, "enable_probestack", "true")?;
    set(&mut flags, "probestack_strategy", "inline")?;
    let verify = if cfg!(debug_assertions) {
        "true"
    } else {
        "false"
    };
    set(&mut flags, "enable_verifier", verify)?;
    cranelift_native::builder()
        .map_err(|m| JitError::Isa {
            message: m.to_string(),
        })?
        .finish(settings::Flags::new(flags))
        .map_err(|e| JitError::Isa {
            message: e.to_string(),
        })
}

/// Compiles the function in `ctx` with `isa` (the module's settings but for the
/// register allocator) and defines it in `module` as `id`, as `define_function` does
/// with the module's own ISA.
fn define_with(
    module: &mut JITModule,
    isa: &dyn cranelift_codegen::isa::TargetIsa,
    id: FuncId,
    ctx: &mut Context,
) -> Result<(), String> {
    let mut plane = cranelift_codegen::control::ControlPlane::default();
    let align = ctx
        .compile(isa, &mut plane)
        .map_err(|e| format!("{:?}", e.inner))?
        .buffer
        .alignment as u64;
    let code = ctx.compiled_code().ok_or("no compiled code")?;
    let relocs: Vec<cranelift_module::ModuleReloc> = code
        .buffer
        .relocs()
        .iter()
        .map(|r| cranelift_module::ModuleReloc::from_mach_reloc(r, &ctx.func, id))
        .collect();
    let bytes = code.code_buffer();
    module
        .define_function_bytes(id, align, bytes, &relocs)
        .map_err(|e| format!("{e:?}"))
}

/// Whether a bpf-to-bpf call in `prog` targets its entry function (pc 0).
fn calls_entry(prog: &crate::program::Prepared) -> bool {
    prog.ops()
        .iter()
        .enumerate()
        .any(|(pc, op)| matches!(op, crate::program::Op::CallLocal { off } if pc as i64 + 1 + *off as i64 == 0))
}

/// Bytes of host stack the frame of the function just compiled in `ctx` takes: its
/// frame below the frame pointer, plus the saved frame pointer and return address.
fn frame_size(ctx: &Context) -> usize {
    ctx.compiled_code()
        .and_then(|c| c.buffer.frame_layout())
        .map_or(0, |l| l.frame_to_fp_offset as usize)
        + 16
}

/// Host stack a run of `programs` may need: compiled functions nest one native frame
/// per bpf-to-bpf call or `bpf_loop` callback (at most 8 deep, when some program makes
/// such calls) and one per tail call (at most 33 in each frame's run, when some program
/// makes them), below a frame of `trampoline` bytes (the callback trampoline's);
/// helpers, shims and `JitObject::enter`'s loop get a fixed margin.
fn host_stack_need(
    programs: &[crate::program::Prepared],
    max_frame: usize,
    trampoline: usize,
) -> usize {
    use crate::program::Op;
    let calls = |f: &dyn Fn(&Op) -> bool| programs.iter().any(|p| p.ops().iter().any(f));
    let nested = calls(&|op| matches!(op, Op::CallLocal { .. } | Op::Loop | Op::ForEach));
    // A bpf_for_each_map_elem callback is entered from Rust (the walk's shim and the
    // callback trampoline) in each frame it nests in.
    let walk = if calls(&|op| matches!(op, Op::ForEach)) {
        crate::interp::MAX_CALL_FRAMES * FOR_EACH_HOST_FRAME
    } else {
        0
    };
    let tail = calls(&|op| matches!(op, Op::TailCall));
    let depth = if nested {
        crate::interp::MAX_CALL_FRAMES
    } else {
        1
    };
    let per_frame = if tail {
        crate::interp::MAX_TAIL_CALLS as usize + 1
    } else {
        1
    };
    trampoline + depth * per_frame * max_frame + walk + HOST_STACK_MARGIN
}

/// Host stack of one `bpf_for_each_map_elem` shim frame with its callback trampoline.
const FOR_EACH_HOST_FRAME: usize = 16 << 10;

/// Host stack kept for helpers, shims and the Rust code around a run.
const HOST_STACK_MARGIN: usize = 128 << 10;

/// Bytes of stack the calling thread has left below `here` (an address on its stack),
/// from its stack bounds (cached per thread); 0 when they cannot be found.
fn stack_left(here: usize) -> usize {
    use std::cell::Cell;
    thread_local! {
        static STACK_LO: Cell<usize> = const { Cell::new(0) };
    }
    let lo = STACK_LO.with(|c| {
        if c.get() == 0 {
            c.set(thread_stack_lo().unwrap_or(usize::MAX));
        }
        c.get()
    });
    here.saturating_sub(lo)
}

/// The lowest usable address of the calling thread's stack.
fn thread_stack_lo() -> Option<usize> {
    // SAFETY: `attr` is initialised by pthread_getattr_np before it is read and
    // destroyed once; the out-pointers point to live locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let mut guard: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0
            && libc::pthread_attr_getguardsize(&attr, &mut guard) == 0;
        libc::pthread_attr_destroy(&mut attr);
        // The guard area lies inside the reported stack for threads glibc created.
        ok.then(|| addr as usize + guard)
    }
}

fn code_size(ctx: &Context) -> u64 {
    ctx.compiled_code()
        .map(|c| c.code_buffer().len() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use isa::RawInsn;

    use super::*;
    use crate::maptable::MapTable;
    use crate::program::prepare;

    /// A wild read (r1 = 0x1234; r0 = *(u64 *)(r1 + 0)) whose proof is forged: in audit
    /// mode the JIT keeps the check and reports the unsound proof.
    #[test]
    fn the_audit_catches_a_forged_proof() {
        let prog = [
            RawInsn::new(0xb7, 1, 0, 0, 0x1234),
            RawInsn::new(0x79, 0, 1, 0, 0),
            RawInsn::new(0x95, 0, 0, 0, 0),
        ];
        let loaded = |forge: bool| {
            let maps = MapTable::new(Vec::new());
            let mut p = prepare("t", "xdp", &prog, &[], &maps).unwrap();
            assert!(!p.analysis().proven(1));
            if forge {
                p.forge_proven(1);
            }
            LoadedObject {
                maps,
                programs: vec![p],
                rejected: Vec::new(),
                all_programs: Vec::new(),
            }
        };
        let run = |l: &LoadedObject| {
            let opts = JitOptions {
                audit: true,
                ..JitOptions::default()
            };
            let jit = JitObject::compile(l, &opts).unwrap();
            let mut pkt = Packet::new(&[0u8; 64]).unwrap();
            jit.run(&mut Vm::new(0), 0, &mut pkt).unwrap_err()
        };
        let t = run(&loaded(false));
        assert!(matches!(t.kind, TrapKind::OutOfBounds { .. }), "{t}");
        let t = run(&loaded(true));
        assert_eq!(t.kind, TrapKind::ProofViolated { pc: 1 });
        assert_eq!(t.pc, 1);
    }

    /// A program prepared with another map table is refused at compile time: its proofs
    /// (value sizes, the map of each call) are about that table's maps.
    #[test]
    fn programs_compile_only_with_their_map_table() {
        let prog = [
            RawInsn::new(0xb7, 0, 0, 0, 7),
            RawInsn::new(0x95, 0, 0, 0, 0),
        ];
        let object = |maps: MapTable, other: bool| {
            let prepared = if other {
                prepare("t", "xdp", &prog, &[], &MapTable::new(Vec::new()))
            } else {
                prepare("t", "xdp", &prog, &[], &maps)
            };
            LoadedObject {
                programs: vec![prepared.unwrap()],
                maps,
                rejected: Vec::new(),
                all_programs: Vec::new(),
            }
        };
        let foreign = object(MapTable::new(Vec::new()), true);
        assert!(matches!(
            JitObject::compile(&foreign, &JitOptions::default()),
            Err(JitError::OtherMapTable { .. })
        ));
        let own = object(MapTable::new(Vec::new()), false);
        let jit = JitObject::compile(&own, &JitOptions::default()).unwrap();
        let mut pkt = Packet::new(&[0u8; 64]).unwrap();
        assert_eq!(jit.run(&mut Vm::new(0), 0, &mut pkt), Ok(7));
    }
}
