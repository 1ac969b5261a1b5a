//! The XDP buffer helpers on multi-buffer frames, in both engines, against the kernel
//! (`BPF_PROG_TEST_RUN` on the same frame, live where bpf(2) may be used) and against
//! its answers probed on Linux 6.18: `bpf_xdp_adjust_tail` growing the last fragment
//! up to its page and shrinking across fragments (freeing emptied ones, then the
//! linear part), its `i32::MIN` case, `bpf_xdp_load_bytes`/`store_bytes` bounds and
//! ranges across the linear part and the fragments.

use isa::RawInsn;
use runtime::jit::{JitObject, JitOptions};
use runtime::maptable::MapTable;
use runtime::{LoadedObject, Packet, Vm};

use super::fuzz::kernel;

const ADJUST_TAIL: i32 = 65;
const GET_BUFF_LEN: i32 = 188;
const LOAD_BYTES: i32 = 189;
const STORE_BYTES: i32 = 190;

fn i(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> RawInsn {
    RawInsn::new(code, dst, src, off, imm)
}

/// A helper call on the frame, then `r0 = (helper's r0 & 0xffff) << 17 |
/// bpf_xdp_get_buff_len(ctx)`. The call's arguments are set by `args` (r1 is the
/// context; r3 may point at a 32-byte stack buffer holding 0x11 bytes).
fn call_prog(helper: i32, args: &[RawInsn]) -> Vec<RawInsn> {
    let mut p = vec![
        i(0xbf, 6, 1, 0, 0), // r6 = ctx
        // A 32-byte buffer at r10 - 32, filled with 0x11.
        i(0x18, 1, 0, 0, 0x1111_1111),
        i(0, 0, 0, 0, 0x1111_1111),
        i(0x7b, 10, 1, -32, 0),
        i(0x7b, 10, 1, -24, 0),
        i(0x7b, 10, 1, -16, 0),
        i(0x7b, 10, 1, -8, 0),
        i(0xbf, 1, 6, 0, 0), // r1 = ctx
        i(0xbf, 3, 10, 0, 0),
        i(0x07, 3, 0, 0, -32), // r3 = buffer
    ];
    p.extend_from_slice(args);
    p.extend([
        i(0x85, 0, 0, 0, helper),
        i(0xbf, 7, 0, 0, 0),      // r7 = r0
        i(0x57, 7, 0, 0, 0xffff), // r7 &= 0xffff
        i(0x67, 7, 0, 0, 17),     // r7 <<= 17
        i(0xbf, 1, 6, 0, 0),
        i(0x85, 0, 0, 0, GET_BUFF_LEN),
        i(0x4f, 0, 7, 0, 0), // r0 |= r7
        i(0x95, 0, 0, 0, 0),
    ]);
    p
}

fn tail(offset: i32) -> Vec<RawInsn> {
    call_prog(ADJUST_TAIL, &[i(0xb7, 2, 0, 0, offset)])
}

fn bytes(helper: i32, offset: i32, len: i32) -> Vec<RawInsn> {
    call_prog(helper, &[i(0xb7, 2, 0, 0, offset), i(0xb7, 4, 0, 0, len)])
}

/// (retval, output frame) in the interpreter and the JIT, which must agree.
fn ours(insns: &[RawInsn], data: &[u8]) -> (u32, Vec<u8>) {
    let maps = MapTable::new(Vec::new());
    let prepared = runtime::program::prepare("frags", "xdp.frags", insns, &[0], &maps)
        .unwrap_or_else(|e| panic!("prepare: {e}"));
    let loaded = LoadedObject {
        maps,
        programs: vec![prepared],
        rejected: Vec::new(),
        all_programs: Vec::new(),
    };
    let jit = JitObject::compile(&loaded, &JitOptions::default()).expect("jit");
    let mut vm = Vm::new(0);
    let mut pkt = Packet::new(data).expect("frame");
    let r = loaded.run(&mut vm, 0, &mut pkt).expect("interpreter run") as u32;
    let interp = (r, pkt.data_out().into_owned());
    let mut pkt = Packet::new(data).expect("frame");
    let r = jit.run(&mut vm, 0, &mut pkt).expect("jit run") as u32;
    assert_eq!(
        interp,
        (r, pkt.data_out().into_owned()),
        "interpreter vs JIT"
    );
    interp
}

fn expect(err: i32, len: u32) -> u32 {
    ((err as u32) & 0xffff) << 17 | len
}

#[test]
fn frags_helpers_match_the_kernel() {
    let live = kernel::available();
    if let Err(why) = &live {
        kclient::skip("kernel side of frags_helpers_match_the_kernel", why);
    }
    let frame: Vec<u8> = (0..9000u32).map(|n| (n * 13 + 5) as u8).collect();
    let (einval, efault) = (-libc::EINVAL, -libc::EFAULT);
    // (program, frame length, the kernel's retval (probed), its output length).
    let cases: Vec<(&str, Vec<RawInsn>, usize, u32, usize)> = vec![
        // The last fragment (1384 bytes) grows to its page (4096): 2712 more.
        (
            "grow to the page",
            tail(2712),
            9000,
            expect(0, 11712),
            11712,
        ),
        (
            "grow past the page",
            tail(2713),
            9000,
            expect(einval, 9000),
            9000,
        ),
        ("grow by 0", tail(0), 9000, expect(0, 9000), 9000),
        ("shrink within", tail(-10), 9000, expect(0, 8990), 8990),
        ("shrink frees one", tail(-1384), 9000, expect(0, 7616), 7616),
        ("shrink across", tail(-4100), 9000, expect(0, 4900), 4900),
        ("shrink into linear", tail(-8200), 9000, expect(0, 800), 800),
        ("shrink to 14", tail(-8986), 9000, expect(0, 14), 14),
        (
            "shrink past 14",
            tail(-8987),
            9000,
            expect(einval, 9000),
            9000,
        ),
        ("i32::MIN", tail(i32::MIN), 9000, expect(0, 9000), 9000),
        // Without fragments, the linear rules.
        (
            "linear grow",
            tail(3520 - 3000),
            3000,
            expect(0, 3520),
            3520,
        ),
        (
            "linear grow past",
            tail(3521 - 3000),
            3000,
            expect(einval, 3000),
            3000,
        ),
        (
            "load across",
            bytes(LOAD_BYTES, 3510, 32),
            9000,
            expect(0, 9000),
            9000,
        ),
        (
            "load last byte",
            bytes(LOAD_BYTES, 8999, 1),
            9000,
            expect(0, 9000),
            9000,
        ),
        (
            "load past",
            bytes(LOAD_BYTES, 8999, 2),
            9000,
            expect(einval, 9000),
            9000,
        ),
        (
            "load offset > 0xffff",
            bytes(LOAD_BYTES, 0x10000, 1),
            9000,
            expect(efault, 9000),
            9000,
        ),
        (
            "store across frags",
            bytes(STORE_BYTES, 7600, 32),
            9000,
            expect(0, 9000),
            9000,
        ),
        (
            "store across linear",
            bytes(STORE_BYTES, 3500, 32),
            9000,
            expect(0, 9000),
            9000,
        ),
        (
            "store past",
            bytes(STORE_BYTES, 8990, 11),
            9000,
            expect(einval, 9000),
            9000,
        ),
    ];
    let mut failures = Vec::new();
    for (what, insns, len, want, out_len) in &cases {
        let data = &frame[..*len];
        let (r, out) = ours(insns, data);
        if (r, out.len()) != (*want, *out_len) {
            failures.push(format!(
                "{what}: ours {:#x} with {} bytes out, the kernel's {want:#x} with {out_len}",
                r,
                out.len()
            ));
        }
        if live.is_ok() {
            let fd = kernel::load(insns, false).unwrap_or_else(|e| panic!("{what}: {e}"));
            let k = kclient::prog::test_run(&fd, data, 1, 80_000)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let (kr, kout) = (k.retval, k.data_out);
            if (kr, &kout) != (r, &out) {
                failures.push(format!("{what}: ours {r:#x}, the kernel's {kr:#x} (live)"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Dynptrs reach the fragments (`bpf-progs/src-c/xdp_dynptr_frags.c`): on 9000-byte
/// frames, reads, writes and slices within a fragment and across the boundaries at
/// 3520 and 7616 in both engines against the kernel (or its recorded answers), and
/// what the program's layout implies: the 0xaa marker at 3525 read across the first
/// boundary, both straddling writes read back, a slice across a boundary copied into
/// its buffer. (A slice inside a fragment is copied too, where the kernel returns a
/// pointer into the fragment: fragments are not program memory here.)
#[test]
fn dynptrs_reach_fragments_as_in_the_kernel() {
    use super::jit::{run_engine, Engine};
    let cases: Vec<bpf_progs::Case> = bpf_progs::cases()
        .iter()
        .filter(|c| c.object == "xdp_dynptr_frags")
        .cloned()
        .collect();
    assert!(!cases.is_empty());
    let failures = super::compare_cases(
        &cases,
        bpf_progs::Cpu::V2,
        &[Engine::Interpreter, Engine::Jit],
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let object = bpf_progs::object("xdp_dynptr_frags");
    let data = std::fs::read(bpf_progs::packet("frag_upd_9000_3510.bin")).expect("packet");
    for engine in [Engine::Interpreter, Engine::Jit] {
        let name = engine.name();
        let out = run_engine(engine, &object, "xdp_dynptr_frags", &data, 1, &[], &[])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let slot = |i: u32| {
            let (_, v) = out.maps["out"]
                .iter()
                .find(|(k, _)| k.as_slice() == i.to_ne_bytes())
                .expect("slot");
            u64::from_ne_bytes(v[0].as_slice().try_into().expect("s64"))
        };
        assert_eq!(slot(1), 9000, "{name}: size");
        assert_eq!((slot(4), slot(5), slot(6)), (0, 0, 0xaa << 40), "{name}");
        assert_eq!(slot(15), 0x1122_3344_5566_7788, "{name}");
        assert_eq!(slot(16), 0x99aa_bbcc_ddee_ff00, "{name}");
        assert_eq!((slot(17), slot(19), slot(21)), (1, 1, 1), "{name}: slices");
        assert_eq!(out.retval, 3, "{name}: XDP_TX");
        assert_eq!(
            &out.data_out[3516..3524],
            &0x1122_3344_5566_7788u64.to_ne_bytes()
        );
        assert_eq!(
            &out.data_out[7612..7620],
            &0x99aa_bbcc_ddee_ff00u64.to_ne_bytes()
        );
    }
}
