//! What xdp-tools (libxdp's multi-program dispatcher) need from bpf(2):
//! `BPF_PROG_BIND_MAP`, extension programs loaded against a global function
//! of a loaded XDP program, and their replacement links
//! (`BPF_RAW_TRACEPOINT_OPEN`, `BPF_LINK_CREATE`), called in this process
//! through the shim as in `calls.rs`. A test run of the target then runs the
//! extension in place of the function.

use isa::uapi::attr::{link_create, prog_bind_map, prog_load, raw_tracepoint, test};

use super::calls::{bpf, close, get32, put32, put64};

const BPF_PROG_LOAD: i32 = 5;
const BPF_OBJ_PIN: i32 = 6;
const BPF_OBJ_GET: i32 = 7;
const BPF_PROG_TEST_RUN: i32 = 10;
const BPF_BTF_LOAD: i32 = 18;
const BPF_RAW_TRACEPOINT_OPEN: i32 = 17;
const BPF_LINK_CREATE: i32 = 28;
const BPF_PROG_BIND_MAP: i32 = 35;

/// BTF of the test programs (type ids in comments):
/// 1 int; 2 struct xdp_md; 3 ptr -> 2; 4 proto int(struct xdp_md *ctx);
/// 5 FUNC main, 6 FUNC f, 7 FUNC g (static), 8 FUNC ext (global, proto 4);
/// 9 proto int(int); 10 FUNC bad (global, proto 9).
fn btf() -> Vec<u8> {
    let strings = b"\0int\0xdp_md\0ctx\0main\0f\0g\0ext\0bad\0x\0";
    let s = |name: &str| -> u32 {
        let needle = format!("\0{name}\0");
        strings
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .map(|p| p as u32 + 1)
            .expect("string")
    };
    let info = |kind: u32, vlen: u32| (kind << 24) | vlen;
    let words: Vec<u32> = vec![
        s("int"),
        info(1, 0),
        4,
        0x0100_0020, // 1 int
        s("xdp_md"),
        info(4, 0),
        24, // 2 struct xdp_md {}
        0,
        info(2, 0),
        2, // 3 ptr
        0,
        info(13, 1),
        1,
        s("ctx"),
        3, // 4 proto
        s("main"),
        info(12, 1),
        4, // 5
        s("f"),
        info(12, 1),
        4, // 6
        s("g"),
        info(12, 0),
        4, // 7 static
        s("ext"),
        info(12, 1),
        4, // 8
        0,
        info(13, 1),
        1,
        s("x"),
        1, // 9 proto int(int)
        s("bad"),
        info(12, 1),
        9, // 10
    ];
    let types: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut out = Vec::new();
    out.extend_from_slice(&0xeb9fu16.to_le_bytes());
    out.extend_from_slice(&[1, 0]);
    for w in [
        24u32,
        0,
        types.len() as u32,
        types.len() as u32,
        strings.len() as u32,
    ] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(&types);
    out.extend_from_slice(strings);
    out
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = dst | (src << 4);
    b[2..4].copy_from_slice(&off.to_le_bytes());
    b[4..8].copy_from_slice(&imm.to_le_bytes());
    b
}

/// The target: main calls g (static, returns 5) then f (global, returns 1)
/// with the context, and returns what f returns.
fn target() -> (Vec<u8>, Vec<(u32, u32)>) {
    let v = [
        insn(0xbf, 6, 1, 0, 0), // 0 r6 = r1
        insn(0x85, 0, 1, 0, 5), // 1 call g (7)
        insn(0xbf, 1, 6, 0, 0), // 2 r1 = r6
        insn(0x85, 0, 1, 0, 1), // 3 call f (5)
        insn(0x95, 0, 0, 0, 0), // 4 exit
        insn(0xb7, 0, 0, 0, 1), // 5 f: r0 = 1
        insn(0x95, 0, 0, 0, 0), // 6 exit
        insn(0xb7, 0, 0, 0, 5), // 7 g: r0 = 5
        insn(0x95, 0, 0, 0, 0), // 8 exit
    ];
    (v.concat(), vec![(0, 5), (5, 6), (7, 7)])
}

/// The extension: returns the frame's length, read from the context it gets.
fn extension() -> Vec<u8> {
    [
        insn(0x61, 2, 1, 4, 0), // r2 = ctx->data_end
        insn(0x61, 3, 1, 0, 0), // r3 = ctx->data
        insn(0x1f, 2, 3, 0, 0), // r2 -= r3
        insn(0xbf, 0, 2, 0, 0), // r0 = r2
        insn(0x95, 0, 0, 0, 0), // exit
    ]
    .concat()
}

fn btf_load(data: &[u8]) -> i32 {
    let mut a = [0u8; 32];
    put64(&mut a, 0, data.as_ptr() as u64);
    put32(&mut a, 16, data.len() as u32);
    bpf(BPF_BTF_LOAD, &mut a).expect("BTF_LOAD") as i32
}

/// The attach target of an extension load.
struct Attach {
    prog_fd: i32,
    btf_id: u32,
}

fn load(
    prog_type: u32,
    insns: &[u8],
    btf_fd: i32,
    funcs: &[(u32, u32)],
    attach: Option<Attach>,
    log: &mut [u8],
) -> Result<i32, i32> {
    let license = b"GPL\0";
    let fi: Vec<u8> = funcs
        .iter()
        .flat_map(|&(o, t)| [o.to_ne_bytes(), t.to_ne_bytes()].concat())
        .collect();
    let mut a = [0u8; 144];
    put32(&mut a, prog_load::PROG_TYPE, prog_type);
    put32(&mut a, prog_load::INSN_CNT, (insns.len() / 8) as u32);
    put64(&mut a, prog_load::INSNS, insns.as_ptr() as u64);
    put64(&mut a, prog_load::LICENSE, license.as_ptr() as u64);
    put32(&mut a, prog_load::LOG_LEVEL, 1);
    put32(&mut a, prog_load::LOG_SIZE, log.len() as u32);
    put64(&mut a, prog_load::LOG_BUF, log.as_mut_ptr() as u64);
    a[prog_load::PROG_NAME..prog_load::PROG_NAME + 4].copy_from_slice(b"xfr\0");
    put32(&mut a, prog_load::PROG_BTF_FD, btf_fd as u32);
    put32(&mut a, prog_load::FUNC_INFO_REC_SIZE, 8);
    put64(&mut a, prog_load::FUNC_INFO, fi.as_ptr() as u64);
    put32(&mut a, prog_load::FUNC_INFO_CNT, funcs.len() as u32);
    if let Some(at) = attach {
        put32(&mut a, prog_load::ATTACH_PROG_FD, at.prog_fd as u32);
        put32(&mut a, prog_load::ATTACH_BTF_ID, at.btf_id);
    }
    bpf(BPF_PROG_LOAD, &mut a).map(|fd| fd as i32)
}

fn log_text(log: &[u8]) -> String {
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    String::from_utf8_lossy(&log[..end]).into_owned()
}

/// TEST_RUN of `prog` on a frame of `len` bytes: Ok(retval) or Err(errno).
fn test_run(prog: i32, len: usize) -> Result<u32, i32> {
    let pkt = vec![7u8; len];
    let mut a = [0u8; 80];
    put32(&mut a, test::PROG_FD, prog as u32);
    put32(&mut a, test::DATA_SIZE_IN, pkt.len() as u32);
    put64(&mut a, test::DATA_IN, pkt.as_ptr() as u64);
    put32(&mut a, test::REPEAT, 1);
    bpf(BPF_PROG_TEST_RUN, &mut a).map(|_| get32(&a, test::RETVAL))
}

fn raw_tp_open(prog: i32) -> Result<i32, i32> {
    let mut a = [0u8; 24];
    put32(&mut a, raw_tracepoint::PROG_FD, prog as u32);
    bpf(BPF_RAW_TRACEPOINT_OPEN, &mut a).map(|fd| fd as i32)
}

fn link_create(prog: i32, target_fd: i32, btf_id: u32) -> Result<i32, i32> {
    let mut a = [0u8; 48];
    put32(&mut a, link_create::PROG_FD, prog as u32);
    put32(&mut a, link_create::TARGET_FD, target_fd as u32);
    put32(&mut a, link_create::ATTACH_TYPE, 0);
    put32(&mut a, 16, btf_id);
    bpf(BPF_LINK_CREATE, &mut a).map(|fd| fd as i32)
}

#[test]
fn an_extension_replaces_a_global_function_through_its_link() {
    let btf = btf_load(&btf());
    let (t, t_funcs) = target();
    let mut log = vec![0u8; 4096];
    let tgt = load(6, &t, btf, &t_funcs, None, &mut log).expect("target");
    assert_eq!(test_run(tgt, 64), Ok(1), "f itself");

    let ext = extension();
    let ext_load = |btf_id: u32, funcs: &[(u32, u32)], log: &mut [u8]| {
        load(
            28,
            &ext,
            btf,
            funcs,
            Some(Attach {
                prog_fd: tgt,
                btf_id,
            }),
            log,
        )
    };
    // What the kernel's bpf_check_attach_target refuses, with its log line.
    for (btf_id, funcs, want) in [
        (7, &[(0u32, 8u32)][..], "Cannot replace static functions"),
        (6, &[(0, 10)][..], "doesn't match"),
        (8, &[(0, 8)][..], "Subprog ext doesn't exist"),
        (4, &[(0, 8)][..], "attach_btf_id 4 doesn't have a name"),
        (99, &[(0, 8)][..], "attach_btf_id 99 is invalid"),
        (6, &[][..], "Extension programs should have BTF func_info"),
    ] {
        log.fill(0);
        let r = ext_load(btf_id, funcs, &mut log);
        let text = log_text(&log);
        assert_eq!(r, Err(libc::EINVAL), "btf id {btf_id}: {text}");
        assert!(
            text.contains(want),
            "btf id {btf_id}: {text:?}, want {want:?}"
        );
    }
    // No target, or one that is not a program.
    assert_eq!(
        load(
            28,
            &ext,
            btf,
            &[(0, 8)],
            Some(Attach {
                prog_fd: btf,
                btf_id: 6
            }),
            &mut log
        ),
        Err(libc::EINVAL)
    );
    log.fill(0);
    assert_eq!(
        load(
            28,
            &ext,
            btf,
            &[(0, 8)],
            Some(Attach {
                prog_fd: 0,
                btf_id: 6
            }),
            &mut log
        ),
        Err(libc::EINVAL)
    );
    assert!(log_text(&log).contains("Cannot replace kernel functions"));

    let e = ext_load(6, &[(0, 8)], &mut log).expect("extension of f");
    // Loading changes nothing; the link does.
    assert_eq!(test_run(tgt, 64), Ok(1));
    let link = raw_tp_open(e).expect("link");
    assert_eq!(
        test_run(tgt, 64),
        Ok(64),
        "the extension's r0, same context"
    );
    assert_eq!(test_run(tgt, 100), Ok(100));
    // The load's target goes to the first attachment only.
    assert_eq!(raw_tp_open(e), Err(libc::EINVAL));
    // An XDP program has no tracepoint.
    assert_eq!(raw_tp_open(tgt), Err(libc::EINVAL));

    // A link outlives its descriptor while pinned, and is got back from the pin.
    let path = format!("/sys/fs/bpf/xdptools-{}-link\0", std::process::id());
    let mut a = [0u8; 16];
    put64(&mut a, 0, path.as_ptr() as u64);
    put32(&mut a, 8, link as u32);
    assert_eq!(bpf(BPF_OBJ_PIN, &mut a), Ok(0));
    let mut a = [0u8; 16];
    put64(&mut a, 0, path.as_ptr() as u64);
    let again = bpf(BPF_OBJ_GET, &mut a).expect("get pinned link") as i32;
    close(again);

    // Another extension of the same function: busy; of another one through
    // LINK_CREATE with a target of its own: fine, and the entry too.
    let e2 = ext_load(6, &[(0, 8)], &mut log).expect("second extension of f");
    assert_eq!(raw_tp_open(e2), Err(libc::EBUSY));
    assert_eq!(link_create(e2, tgt, 7), Err(libc::EINVAL), "static g");
    assert_eq!(link_create(e2, tgt, 0), Err(libc::EINVAL), "no btf id");
    let l2 = link_create(e2, tgt, 5).expect("link to main");
    assert_eq!(test_run(tgt, 80), Ok(80));
    close(l2);
    close(e2);
    close(link);
    close(e);
    close(tgt);
    close(btf);
}

/// BPF_PROG_BIND_MAP's answers through `call` (the shim or the kernel).
fn bind_map_answers(call: fn(i32, &mut [u8]) -> Result<i64, i32>) -> Vec<Result<i64, i32>> {
    let map = {
        let mut a = [0u8; 72];
        put32(&mut a, 0, 2); // BPF_MAP_TYPE_ARRAY
        put32(&mut a, 4, 4);
        put32(&mut a, 8, 4);
        put32(&mut a, 12, 1);
        call(0, &mut a).expect("map") as i32
    };
    let insns = [insn(0xb7, 0, 0, 0, 1), insn(0x95, 0, 0, 0, 0)].concat();
    let license = b"GPL\0";
    let mut a = [0u8; 144];
    put32(&mut a, prog_load::PROG_TYPE, 6);
    put32(&mut a, prog_load::INSN_CNT, 2);
    put64(&mut a, prog_load::INSNS, insns.as_ptr() as u64);
    put64(&mut a, prog_load::LICENSE, license.as_ptr() as u64);
    let prog = call(BPF_PROG_LOAD, &mut a).expect("program") as i32;
    let bind = |p: i32, m: i32, flags: u32| {
        let mut a = [0u8; 16];
        put32(&mut a, prog_bind_map::PROG_FD, p as u32);
        put32(&mut a, prog_bind_map::MAP_FD, m as u32);
        put32(&mut a, prog_bind_map::FLAGS, flags);
        call(BPF_PROG_BIND_MAP, &mut a)
    };
    let out = vec![
        bind(prog, map, 1),
        bind(-1, map, 0),
        bind(prog, -1, 0),
        bind(map, map, 0),
        bind(prog, prog, 0),
        bind(prog, map, 0),
        bind(prog, map, 0),
    ];
    close(prog);
    close(map);
    out
}

#[test]
fn bind_map_answers_as_the_kernel() {
    let shim = bind_map_answers(bpf);
    let want = vec![
        Err(libc::EINVAL), // flags
        Err(libc::EBADF),
        Err(libc::EBADF),
        Err(libc::EINVAL), // a map is no program
        Err(libc::EINVAL), // a program is no map
        Ok(0),
        Ok(0), // twice
    ];
    assert_eq!(shim, want);
    if let Err(why) = kclient::available() {
        kclient::skip(
            "bind_map_answers_as_the_kernel (the kernel's answers)",
            &why,
        );
        return;
    }
    assert_eq!(
        bind_map_answers(super::calls::kernel_bpf),
        shim,
        "kernel vs shim"
    );
}
