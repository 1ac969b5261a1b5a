//! `bpf_loop` in both engines: its edge cases on hand-written programs (the JIT must
//! give the interpreter's result or trap, at the same pc), and the same edge cases
//! compiled by clang and run in the kernel too.

use std::path::Path;

use kclient::bpftool as kernel;
use runtime::jit::{JitObject, JitOptions};
use runtime::{LoadedObject, Packet, Trap, TrapKind, Vm};

use super::jit::Engine;
use super::raw;

/// The two slots of `ld_imm64 dst, v` (plain constant).
fn ld64(dst: u8, v: u64) -> [isa::RawInsn; 2] {
    [
        raw(0x18, dst, 0, 0, v as u32 as i32),
        raw(0, 0, 0, 0, (v >> 32) as u32 as i32),
    ]
}

/// The two slots of `dst = &function at slot target`, for `ld_imm64` at slot `pc`.
fn ld_func(pc: usize, dst: u8, target: usize) -> [isa::RawInsn; 2] {
    [
        raw(0x18, dst, 4, 0, target as i32 - pc as i32 - 1),
        raw(0, 0, 0, 0, 0),
    ]
}

const EXIT: (u8, u8, u8, i16, i32) = (0x95, 0, 0, 0, 0);

fn ops(list: &[(u8, u8, u8, i16, i32)]) -> Vec<isa::RawInsn> {
    list.iter()
        .map(|&(c, d, s, o, i)| raw(c, d, s, o, i))
        .collect()
}

/// Slot of the first callback: the main program below is 13 slots long.
const CB: usize = 13;

/// main: `*(u64 *)(r10 - 8) = 0; r0 = bpf_loop(nr, r2, r10 - 8, flags);
/// return r0 * 1000 + *(u64 *)(r10 - 8)`, where `callee` sets r2 (two slots at 3).
fn main_prog(nr: u64, callee: [isa::RawInsn; 2], flags: i32) -> Vec<isa::RawInsn> {
    let mut p = ops(&[(0x7a, 10, 0, -8, 0)]);
    p.extend(ld64(1, nr));
    p.extend(callee);
    p.extend(ops(&[
        (0xbf, 3, 10, 0, 0),
        (0x07, 3, 0, 0, -8),
        (0xb7, 4, 0, 0, flags),
        (0x85, 0, 0, 0, 181),
        (0x79, 1, 10, -8, 0),
        (0x27, 0, 0, 0, 1000),
        (0x0f, 0, 1, 0, 0),
        EXIT,
    ]));
    assert_eq!(p.len(), CB);
    p
}

/// Callback: counts its calls in `*(u64 *)r2` and returns 1 when r1 (the index) is 4.
fn cb_stop_at_4() -> Vec<isa::RawInsn> {
    ops(&[
        (0x79, 3, 2, 0, 0),
        (0x07, 3, 0, 0, 1),
        (0x7b, 2, 3, 0, 0),
        (0xb7, 0, 0, 0, 0),
        (0x55, 1, 0, 1, 4),
        (0xb7, 0, 0, 0, 1),
        EXIT,
    ])
}

/// Callback: counts its calls and returns 2 (the kernel's verifier would refuse it).
fn cb_ret2() -> Vec<isa::RawInsn> {
    ops(&[
        (0x79, 3, 2, 0, 0),
        (0x07, 3, 0, 0, 1),
        (0x7b, 2, 3, 0, 0),
        (0xb7, 0, 0, 0, 2),
        EXIT,
    ])
}

/// Slot of the faulting load in `cb_trap_at_2`.
const TRAP_PC: usize = CB + 5;

/// Callback: counts its calls; on index 2 it reads address 0 (slot `TRAP_PC`).
fn cb_trap_at_2() -> Vec<isa::RawInsn> {
    ops(&[
        (0x79, 3, 2, 0, 0),
        (0x07, 3, 0, 0, 1),
        (0x7b, 2, 3, 0, 0),
        (0xb7, 0, 0, 0, 0),
        (0x55, 1, 0, 1, 2),
        (0x79, 0, 0, 0, 0),
        EXIT,
    ])
}

/// Callback (slot 13) calling a subprogram (slot 28, adds 100) and then a nested
/// `bpf_loop(2, inner)` (slot 33, adds 1 per call); adds 10 × the nested result.
/// Each outer call adds 122.
fn cb_nested() -> Vec<isa::RawInsn> {
    let mut p = ops(&[(0xbf, 6, 2, 0, 0), (0xbf, 1, 2, 0, 0), (0x85, 0, 1, 0, 12)]);
    p.extend(ops(&[(0xb7, 1, 0, 0, 2)]));
    p.extend(ld_func(CB + 4, 2, 33));
    p.extend(ops(&[
        (0xbf, 3, 6, 0, 0),
        (0xb7, 4, 0, 0, 0),
        (0x85, 0, 0, 0, 181),
        (0x79, 3, 6, 0, 0),
        (0x27, 0, 0, 0, 10),
        (0x0f, 3, 0, 0, 0),
        (0x7b, 6, 3, 0, 0),
        (0xb7, 0, 0, 0, 0),
        EXIT,
        // 28: the subprogram.
        (0x79, 2, 1, 0, 0),
        (0x07, 2, 0, 0, 100),
        (0x7b, 1, 2, 0, 0),
        (0xb7, 0, 0, 0, 0),
        EXIT,
        // 33: the inner callback.
        (0x79, 3, 2, 0, 0),
        (0x07, 3, 0, 0, 1),
        (0x7b, 2, 3, 0, 0),
        (0xb7, 0, 0, 0, 0),
        EXIT,
    ]));
    assert_eq!(CB + p.len(), 38);
    p
}

/// Slot of the `bpf_loop` call in `cb_recurse`.
const RECURSE_CALL: usize = CB + 5;

/// Callback: `bpf_loop(1, itself, r2)` without end, until the call depth runs out.
fn cb_recurse() -> Vec<isa::RawInsn> {
    let mut p = ops(&[(0xbf, 3, 2, 0, 0), (0xb7, 1, 0, 0, 1)]);
    p.extend(ld_func(CB + 2, 2, CB));
    p.extend(ops(&[
        (0xb7, 4, 0, 0, 0),
        (0x85, 0, 0, 0, 181),
        (0xb7, 0, 0, 0, 0),
        EXIT,
    ]));
    p
}

/// main + callback code, with the subprogram starts the loader would report.
fn program(main: Vec<isa::RawInsn>, cb: Vec<isa::RawInsn>, starts: &[usize]) -> LoadedObject {
    let mut insns = main;
    insns.extend(cb);
    let maps = runtime::maptable::MapTable::new(Vec::new());
    let prepared = runtime::program::prepare("loop", "xdp", &insns, starts, &maps).unwrap();
    LoadedObject {
        maps,
        programs: vec![prepared],
        rejected: Vec::new(),
        all_programs: Vec::new(),
    }
}

/// Runs the program in both engines; they must agree. Returns the result.
fn both(loaded: &LoadedObject) -> Result<u64, Trap> {
    let run = |engine: Engine| {
        let mut pkt = Packet::new(&[0u8; 64]).unwrap();
        let mut vm = Vm::new(0);
        match engine {
            Engine::Interpreter | Engine::Audit => {
                vm.set_audit(engine == Engine::Audit);
                loaded.run_repeat(&mut vm, 0, &mut pkt, 1).map(|r| r.0)
            }
            Engine::Jit | Engine::JitAudit => {
                let opts = JitOptions {
                    audit: engine == Engine::JitAudit,
                    ..JitOptions::default()
                };
                JitObject::compile(loaded, &opts)
                    .unwrap()
                    .run(&mut vm, 0, &mut pkt)
            }
        }
    };
    let interp = run(Engine::Interpreter);
    let jit = run(Engine::Jit);
    assert_eq!(jit, interp, "the JIT differs from the interpreter");
    let audited = run(Engine::JitAudit);
    assert_eq!(
        audited, interp,
        "the JIT in audit mode differs from the interpreter"
    );
    interp
}

fn neg(errno: i32) -> u64 {
    (-(errno as i64)) as u64
}

#[test]
fn bpf_loop_return_values_match_the_interpreter() {
    let stop = |nr: u64, flags: i32| {
        both(&program(
            main_prog(nr, ld_func(3, 2, CB), flags),
            cb_stop_at_4(),
            &[CB],
        ))
    };
    // Stops after the call with index 4: five calls.
    assert_eq!(stop(10, 0), Ok(5 * 1000 + 5));
    // Fewer loops than that: every one runs.
    assert_eq!(stop(3, 0), Ok(3 * 1000 + 3));
    assert_eq!(stop(0, 0), Ok(0));
    // Flags must be 0; the callback is not called.
    assert_eq!(stop(10, 1), Ok(neg(libc::EINVAL).wrapping_mul(1000)));
    // BPF_MAX_LOOPS (1 << 23) is accepted, one more is not. With flags 0 the kernel
    // inlines the loop, which sets -E2BIG with a 32-bit move and compares all 64 bits.
    let e2big32 = (-libc::E2BIG) as u32 as u64;
    assert_eq!(stop(1 << 23, 0), Ok(5005));
    assert_eq!(stop((1 << 23) + 1, 0), Ok(e2big32 * 1000));
    assert_eq!(stop((1 << 32) | 3, 0), Ok(e2big32 * 1000));
    // Any non-zero return stops the loop (the verifier allows only 0 and 1).
    let r = both(&program(
        main_prog(7, ld_func(3, 2, CB), 0),
        cb_ret2(),
        &[CB],
    ));
    assert_eq!(r, Ok(1001));
}

#[test]
fn bpf_loop_callbacks_call_subprograms_and_nest() {
    let r = both(&program(
        main_prog(3, ld_func(3, 2, CB), 0),
        cb_nested(),
        &[CB, 28, 33],
    ));
    assert_eq!(r, Ok(3 * 1000 + 3 * 122));
}

#[test]
fn bpf_loop_traps_report_the_callback_pc() {
    let r = both(&program(
        main_prog(10, ld_func(3, 2, CB), 0),
        cb_trap_at_2(),
        &[CB],
    ));
    assert_eq!(
        r,
        Err(Trap {
            kind: TrapKind::OutOfBounds {
                addr: 0,
                len: 8,
                write: false
            },
            pc: TRAP_PC
        })
    );
    // A callback that loops into itself: the 8th frame cannot be made.
    let r = both(&program(
        main_prog(1, ld_func(3, 2, CB), 0),
        cb_recurse(),
        &[CB],
    ));
    assert_eq!(
        r,
        Err(Trap {
            kind: TrapKind::CallDepth,
            pc: RECURSE_CALL
        })
    );
}

#[test]
fn bpf_loop_refuses_callbacks_that_are_not_subprograms() {
    for value in [0u64, 12345, CB as u64 + 1, u64::MAX] {
        let r = both(&program(main_prog(3, ld64(2, value), 0), cb_ret2(), &[CB]));
        assert_eq!(
            r,
            Err(Trap {
                kind: TrapKind::HelperBadCallback { helper: 181, value },
                pc: 8
            }),
            "callback {value:#x}"
        );
    }
    // flags and nr_loops are checked first, as in the kernel.
    let r = both(&program(main_prog(3, ld64(2, 12345), 1), cb_ret2(), &[CB]));
    assert_eq!(r, Ok(neg(libc::EINVAL).wrapping_mul(1000)));
}

/// The same edge cases in C: stop, flags, BPF_MAX_LOOPS, zero and packet-length loop
/// counts, a callback calling a subprogram and a nested bpf_loop. Results go to `out`.
const EDGES_C: &str = r#"
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 12);
	__type(key, __u32);
	__type(value, __u64);
} out SEC(".maps");

struct st {
	__u64 calls;
	__u64 sum;
	__u32 stop;
};

static __attribute__((noinline)) __u64 mix(__u64 a, __u64 b)
{
	return a * 31 + b;
}

static long count(__u32 i, void *arg)
{
	struct st *s = arg;

	s->calls++;
	s->sum = mix(s->sum, i);
	if (i + 1 >= s->stop)
		return 1;
	return 0;
}

static long inner(__u32 i, void *arg)
{
	struct st *s = arg;

	s->sum += i + 1;
	return 0;
}

static long outer(__u32 i, void *arg)
{
	struct st *s = arg;

	s->calls += bpf_loop(i + 1, inner, s, 0);
	return 0;
}

static __always_inline void put(__u32 k, __u64 v)
{
	bpf_map_update_elem(&out, &k, &v, BPF_ANY);
}

SEC("xdp")
int xdp_loop_edges(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	volatile __u32 big = (1 << 23) + 1, max = 1 << 23;
	struct st s = { .stop = 1000 };

	put(0, bpf_loop(big, count, &s, 0));
	put(1, bpf_loop(3, count, &s, 1));
	s.stop = 4;
	put(2, bpf_loop(10, count, &s, 0));
	put(3, bpf_loop(0, count, &s, 0));
	s.stop = 2;
	put(4, bpf_loop(max, count, &s, 0));
	s.stop = 1000;
	put(5, bpf_loop((__u32)(data_end - data), count, &s, 0));
	put(6, bpf_loop(4, outer, &s, 0));
	put(7, s.calls);
	put(8, s.sum);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
"#;

/// Builds `EDGES_C` with clang into `dir`, or says why not.
fn build_edges(dir: &Path) -> Result<std::path::PathBuf, String> {
    let src = dir.join("loop_edges.c");
    let obj = dir.join("loop_edges.o");
    std::fs::write(&src, EDGES_C).map_err(|e| e.to_string())?;
    let arch_inc = format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let out = std::process::Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", "-mcpu=v2", "-Wall", "-I"])
        .arg(&arch_inc)
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .map_err(|e| format!("clang: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "clang failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(obj)
}

#[test]
fn bpf_loop_edge_cases_match_the_kernel() {
    let dir = std::env::temp_dir().join(format!("bpf_loop_edges_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let obj = match build_edges(&dir) {
        Ok(o) => o,
        Err(why) => {
            kclient::skip("bpf_loop edge cases: cannot build the program", &why);
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
    };
    let data = std::fs::read(bpf_progs::packet("icmp")).unwrap();
    let prog = "xdp_loop_edges";
    let interp = super::jit::run_engine(Engine::Interpreter, &obj, prog, &data, 1, &[], &[])
        .expect("interpreter run");
    let jit = super::jit::run_engine(Engine::Jit, &obj, prog, &data, 1, &[], &[]).expect("jit run");
    assert_eq!(jit, interp, "the JIT differs from the interpreter");
    // The values the kernel's bpf_loop documents, independent of any engine.
    let out = &interp.maps["out"];
    let val = |k: u32| {
        let e = out
            .iter()
            .find(|(key, _)| key[..] == k.to_ne_bytes())
            .expect("key present");
        u64::from_ne_bytes(e.1[0][..8].try_into().unwrap())
    };
    // flags 0: the kernel's inlined loop sets -E2BIG with a 32-bit move.
    assert_eq!(val(0), (-libc::E2BIG) as u32 as u64);
    assert_eq!(val(1), neg(libc::EINVAL));
    assert_eq!(val(2), 4);
    assert_eq!(val(3), 0);
    assert_eq!(val(4), 2);
    assert_eq!(val(5), data.len() as u64);
    assert_eq!(val(6), 4);
    // count ran 4 + 2 + 98 times; outer's nested loops made 1 + 2 + 3 + 4 calls.
    assert_eq!(val(7), 4 + 2 + data.len() as u64 + 10);
    match kclient::available() {
        Err(why) => kclient::skip("bpf_loop edge cases in the kernel", &why),
        Ok(()) => {
            let theirs = super::kernel_outcome(kernel::run(&obj, prog, &data, 1, &[]).unwrap());
            assert_eq!(interp, theirs, "the engines differ from the kernel");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
