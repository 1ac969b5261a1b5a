//! BPF_PROG_TEST_RUN in the runtime's engines: the JIT when it compiles the
//! program, else the interpreter, with the kernel's repeat, duration,
//! data_out and ctx rules for XDP.
//!
//! Every run has the runtime's step budget (`XDPSHIM_MAX_STEPS`, default
//! `runtime::DEFAULT_MAX_STEPS`). A run that uses it up (a program that never
//! ends, which the kernel's verifier would have refused) fails with E2BIG, the
//! kernel's errno for going over its own bounds on program work (the verifier's
//! "BPF program is too large" at its 1M-instruction limit, bpf_loop beyond
//! BPF_MAX_LOOPS); not EINTR, which the kernel keeps for a test run a signal
//! interrupted and which callers may retry. Other faults give EFAULT. As in the
//! kernel, a failed run writes nothing back.

use isa::uapi::attr::test;
use std::ffi::c_int;

use runtime::{LoadedObject, Packet, Vm};

use crate::fds::{self, Obj};
use crate::state;
use crate::user::{self, put_u32, u32_at, u64_at, Errno};

/// BPF_F_TEST_RUN_ON_CPU.
const F_TEST_RUN_ON_CPU: u32 = 1;
/// BPF_F_TEST_XDP_LIVE_FRAMES.
const F_TEST_XDP_LIVE_FRAMES: u32 = 2;

pub fn test_run(a: &[u8], attr_ptr: u64) -> Result<i64, Errno> {
    let fd = u32_at(a, test::PROG_FD) as c_int;
    let id = match fds::lookup(fd) {
        // Extension programs have no test run of their own in the kernel
        // (ENOTSUPP): they run in place of the function they replace.
        Some(Obj::Prog(_)) if crate::freplace::is_extension(fd) => return Err(524),
        Some(Obj::Prog(id)) => id,
        Some(Obj::LocalProg(_)) => return Err(524),
        Some(_) => return Err(libc::EINVAL),
        None => return Err(libc::EBADF),
    };
    let (size_in, size_out) = (
        u32_at(a, test::DATA_SIZE_IN) as usize,
        u32_at(a, test::DATA_SIZE_OUT) as usize,
    );
    let (data_in, data_out) = (u64_at(a, test::DATA_IN), u64_at(a, test::DATA_OUT));
    let repeat = u64::from(u32_at(a, test::REPEAT)).max(1);
    let (ctx_size_in, ctx_size_out) = (
        u32_at(a, test::CTX_SIZE_IN) as usize,
        u32_at(a, test::CTX_SIZE_OUT) as usize,
    );
    let (ctx_in, ctx_out) = (u64_at(a, test::CTX_IN), u64_at(a, test::CTX_OUT));
    let flags = u32_at(a, test::FLAGS);
    let cpu = u32_at(a, test::CPU);
    if flags & !(F_TEST_RUN_ON_CPU | F_TEST_XDP_LIVE_FRAMES) != 0 {
        return Err(libc::EINVAL);
    }
    if flags & F_TEST_XDP_LIVE_FRAMES != 0 {
        state::log_once(
            "live",
            "BPF_F_TEST_XDP_LIVE_FRAMES is not supported (EINVAL)",
        );
        return Err(libc::EINVAL);
    }
    if flags & F_TEST_RUN_ON_CPU == 0 && cpu != 0 {
        return Err(libc::EINVAL);
    }
    let store = state::store()?;
    if cpu >= store.ncpus() {
        return Err(libc::ENXIO);
    }
    // Sizes are checked as the kernel checks them, in its order (the context
    // first), so a huge size costs no huge buffer: a context beyond xdp_md
    // needs a zero tail.
    // bpf_ctx_init: a context exists when ctx_in or ctx_out is given, zeroed, then
    // filled from ctx_in. A zeroed one has data_end 0: every byte of the frame goes
    // to fragments (a ctx_out without ctx_in does that, as in the kernel).
    let ctx = if ctx_in != 0 || ctx_out != 0 {
        let size = runtime::XdpMd::SIZE;
        if ctx_in == 0 {
            Some(Vec::new())
        } else {
            if ctx_size_in > size {
                user::check_zero(ctx_in.wrapping_add(size as u64), ctx_size_in - size)?;
            }
            Some(user::read(ctx_in, ctx_size_in.min(size))?)
        }
    } else {
        None
    };
    // Past the linear part the kernel copies the input page by page into at most
    // MAX_SKB_FRAGS fragments, then fails with ENOMEM: more than the largest frame
    // plus metadata is never read (a huge size costs no huge buffer), and a context's
    // data_end past what is read is brought down to it (the linear part ends well
    // before either), so the fragment count still decides.
    let cap = runtime::xdp::MAX_META + 1 + runtime::xdp::MAX_FRAME;
    let data = user::read(data_in, size_in.min(cap))?;
    let ctx = ctx.map(|mut c| {
        if size_in > cap && c.len() >= 8 {
            let data_end = u32::from_ne_bytes([c[4], c[5], c[6], c[7]]) as usize;
            if data_end <= size_in {
                c[4..8].copy_from_slice(&(data_end.min(cap) as u32).to_ne_bytes());
            }
        }
        c
    });
    let mut pkt = match &ctx {
        Some(ctx) => Packet::with_ctx(&data, ctx),
        None => Packet::new(&data),
    }
    .map_err(|e| e.errno())?;
    let (loaded, entry) = LoadedObject::from_store(store, id).map_err(|e| {
        state::log_once(&format!("run{id}"), &format!("program {id}: {e}"));
        libc::EINVAL
    })?;
    let mut vm = Vm::new(cpu).with_max_steps(state::max_steps());
    let jit = runtime::jit::JitObject::compile(&loaded, &Default::default());
    let run = match &jit {
        Ok(j) => j.run_repeat(&mut vm, entry, &mut pkt, repeat),
        Err(e) => {
            state::log_once(
                &format!("jit{id}"),
                &format!("program {id}: JIT: {e}; interpreting"),
            );
            loaded.run_repeat(&mut vm, entry, &mut pkt, repeat)
        }
    };
    let (retval, elapsed) = run.map_err(|trap| {
        state::log_once(
            &format!("trap{id}"),
            &format!("program {id} faulted: {trap}"),
        );
        match trap.kind {
            runtime::TrapKind::StepBudget { .. } => libc::E2BIG,
            _ => libc::EFAULT,
        }
    })?;
    let ns = elapsed.as_nanos() as u64;
    if state::stats_enabled() {
        let _ = store.add_program_runs(id, repeat, ns);
    }
    // bpf_test_finish: data_size_out (when not 0) bounds the copy, with ENOSPC;
    // the fragments are copied whole after as much of the linear part as the bound
    // leaves (none at all, and nothing else written back, when they alone exceed it).
    let out = pkt.data_out();
    let frags: usize = pkt.frag_sizes().iter().sum();
    let mut result = Ok(0);
    let mut copy = out.len();
    if size_out > 0 && copy > size_out {
        copy = size_out;
        result = Err(libc::ENOSPC);
    }
    if data_out != 0 {
        let Some(linear) = copy.checked_sub(frags) else {
            return Err(libc::ENOSPC);
        };
        user::write(data_out, &out[..linear])?;
        let tail = &out[out.len() - frags..];
        user::write(data_out.wrapping_add(linear as u64), tail)?;
    }
    let mut back = [0u8; 8];
    put_u32(&mut back, 0, retval as u32);
    put_u32(&mut back, 4, out.len() as u32);
    user::write(attr_ptr.wrapping_add(test::RETVAL as u64), &back[..4])?;
    user::write(
        attr_ptr.wrapping_add(test::DATA_SIZE_OUT as u64),
        &back[4..],
    )?;
    let duration = (ns / repeat).min(u64::from(u32::MAX)) as u32;
    user::write(
        attr_ptr.wrapping_add(test::DURATION as u64),
        &duration.to_ne_bytes(),
    )?;
    // bpf_ctx_finish, only after a data_out without ENOSPC.
    if result.is_ok() && ctx.is_some() && ctx_out != 0 {
        let bytes = pkt.ctx_out().to_bytes();
        let n = bytes.len().min(ctx_size_out);
        user::write(ctx_out, &bytes[..n])?;
        let len = runtime::XdpMd::SIZE as u32;
        user::write(
            attr_ptr.wrapping_add(test::CTX_SIZE_OUT as u64),
            &len.to_ne_bytes(),
        )?;
        if n < bytes.len() {
            result = Err(libc::ENOSPC);
        }
    }
    result
}
