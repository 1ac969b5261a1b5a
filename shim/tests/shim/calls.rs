//! bpf(2) as the shim answers it, called in this process: errnos as the
//! kernel gives them, bad pointers, the verifier log, test runs, pins, and
//! random attributes that must never crash. (The C entry points stay
//! inactive in a program that links the crate, so this process's own mkdir
//! and friends are the real ones; the other tests drive them preloaded.)

use std::sync::Once;

static SETUP: Once = Once::new();

/// Every test of this file and of hostile.rs shares one store, private to this
/// process; its file is unlinked once open (the shim keeps its mapping and descriptor).
pub(super) fn setup() {
    SETUP.call_once(|| {
        let name = format!("xdpshim-calls-{}", std::process::id());
        std::env::set_var("XDPSHIM_STORE", &name);
        xdpshim::state::store().expect("store");
        xdpshim::state::store_file().expect("store file");
        let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
    });
}

/// bpf(cmd, attr): Ok(result) or Err(errno).
pub(super) fn bpf(cmd: i32, attr: &mut [u8]) -> Result<i64, i32> {
    setup();
    xdpshim::bpf::bpf(cmd, attr.as_mut_ptr() as u64, attr.len() as u32)
}

pub(super) fn put32(a: &mut [u8], off: usize, v: u32) {
    a[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}
pub(super) fn put64(a: &mut [u8], off: usize, v: u64) {
    a[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}
pub(super) fn get32(a: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(a[off..off + 4].try_into().unwrap())
}

fn map_create(map_type: u32, key: u32, value: u32, max: u32, name: &str) -> Result<i32, i32> {
    let mut a = [0u8; 128];
    put32(&mut a, 0, map_type);
    put32(&mut a, 4, key);
    put32(&mut a, 8, value);
    put32(&mut a, 12, max);
    a[28..28 + name.len()].copy_from_slice(name.as_bytes());
    bpf(0, &mut a).map(|fd| fd as i32)
}

fn elem(cmd: i32, fd: i32, key: *const u8, value: *const u8, flags: u64) -> Result<i64, i32> {
    let mut a = [0u8; 32];
    put32(&mut a, 0, fd as u32);
    put64(&mut a, 8, key as u64);
    put64(&mut a, 16, value as u64);
    put64(&mut a, 24, flags);
    bpf(cmd, &mut a)
}

pub(super) fn close(fd: i32) {
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
}

#[test]
fn map_commands_give_the_kernels_errnos() {
    let fd = map_create(1, 4, 8, 2, "calls_hash").expect("hash");
    let (k1, k2, k3) = (1u32.to_ne_bytes(), 2u32.to_ne_bytes(), 3u32.to_ne_bytes());
    let v = 7u64.to_ne_bytes();
    let mut out = [0u8; 8];
    assert_eq!(elem(2, fd, k1.as_ptr(), v.as_ptr(), 0), Ok(0));
    assert_eq!(elem(2, fd, k2.as_ptr(), v.as_ptr(), 0), Ok(0));
    assert_eq!(
        elem(2, fd, k3.as_ptr(), v.as_ptr(), 0),
        Err(libc::E2BIG),
        "full"
    );
    assert_eq!(
        elem(2, fd, k1.as_ptr(), v.as_ptr(), 1),
        Err(libc::EEXIST),
        "NOEXIST"
    );
    assert_eq!(
        elem(2, fd, k3.as_ptr(), v.as_ptr(), 2),
        Err(libc::ENOENT),
        "EXIST"
    );
    assert_eq!(
        elem(1, fd, k3.as_ptr(), out.as_mut_ptr(), 0),
        Err(libc::ENOENT)
    );
    assert_eq!(elem(1, fd, k1.as_ptr(), out.as_mut_ptr(), 0), Ok(0));
    assert_eq!(out, v);
    // Bad pointers: EFAULT, nothing written, nothing lost.
    assert_eq!(
        elem(1, fd, 8 as *const u8, out.as_mut_ptr(), 0),
        Err(libc::EFAULT)
    );
    assert_eq!(
        elem(1, fd, k1.as_ptr(), 16 as *const u8, 0),
        Err(libc::EFAULT)
    );
    assert_eq!(
        elem(2, fd, k1.as_ptr(), 24 as *const u8, 0),
        Err(libc::EFAULT)
    );
    // get_next_key walks both keys, then ENOENT.
    let mut next = [0u8; 4];
    let mut seen = Vec::new();
    let mut r = elem(4, fd, std::ptr::null(), next.as_mut_ptr(), 0);
    while r.is_ok() {
        seen.push(u32::from_ne_bytes(next));
        let cur = next;
        r = elem(4, fd, cur.as_ptr(), next.as_mut_ptr(), 0);
    }
    assert_eq!(r, Err(libc::ENOENT));
    seen.sort_unstable();
    assert_eq!(seen, vec![1, 2]);
    // lookup-and-delete, then delete of the missing key.
    assert_eq!(elem(21, fd, k2.as_ptr(), out.as_mut_ptr(), 0), Ok(0));
    assert_eq!(
        elem(3, fd, k2.as_ptr(), std::ptr::null(), 0),
        Err(libc::ENOENT)
    );
    // Freeze: user-space writes fail with EPERM, reads still work.
    let mut f = [0u8; 4];
    put32(&mut f, 0, fd as u32);
    assert_eq!(bpf(22, &mut f), Ok(0));
    assert_eq!(elem(2, fd, k1.as_ptr(), v.as_ptr(), 0), Err(libc::EPERM));
    assert_eq!(elem(1, fd, k1.as_ptr(), out.as_mut_ptr(), 0), Ok(0));
    // Descriptors that are not maps.
    let mut pipe = [0i32; 2];
    // SAFETY: pipe writes two descriptors.
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    assert_eq!(
        elem(1, pipe[0], k1.as_ptr(), out.as_mut_ptr(), 0),
        Err(libc::EBADF)
    );
    assert_eq!(
        elem(1, 999_999, k1.as_ptr(), out.as_mut_ptr(), 0),
        Err(libc::EBADF)
    );
    close(pipe[0]);
    close(pipe[1]);
    // dup'ed descriptors name the same map.
    // SAFETY: fd is ours.
    let d = unsafe { libc::dup(fd) };
    assert_eq!(elem(1, d, k1.as_ptr(), out.as_mut_ptr(), 0), Ok(0));
    close(d);
    close(fd);
}

#[test]
fn attributes_are_checked_like_the_kernels() {
    // A NULL attribute pointer, a non-zero tail past the union, an unknown command.
    setup();
    assert_eq!(xdpshim::bpf::bpf(1, 0, 32), Err(libc::EFAULT));
    let mut big = vec![0u8; 512];
    big[400] = 1;
    assert_eq!(bpf(0, &mut big), Err(libc::E2BIG));
    let mut a = [0u8; 64];
    assert_eq!(bpf(99, &mut a), Err(libc::EINVAL));
    // An invalid map definition: EINVAL, and a name with a bad character.
    assert_eq!(map_create(1, 0, 8, 2, "zero_key"), Err(libc::EINVAL));
    assert_eq!(map_create(1, 4, 8, 2, "bad-name"), Err(libc::EINVAL));
}

/// An XDP program: r0 = value of the array map at key 0 (or `fallback` if
/// the lookup fails), exit. lddw of the map descriptor as libbpf emits it.
fn array_prog(map_fd: i32, fallback: i32) -> Vec<u8> {
    let insn = |code: u8, regs: u8, off: i16, imm: i32| {
        let mut b = [0u8; 8];
        b[0] = code;
        b[1] = regs;
        b[2..4].copy_from_slice(&off.to_le_bytes());
        b[4..8].copy_from_slice(&imm.to_le_bytes());
        b
    };
    [
        insn(0x62, 0x0a, -4, 0),       // *(u32 *)(r10 - 4) = 0
        insn(0x18, 0x11, 0, map_fd),   // r1 = map fd (src_reg 1)
        insn(0, 0, 0, 0),              //
        insn(0xbf, 0xa2, 0, 0),        // r2 = r10
        insn(0x07, 0x02, 0, -4),       // r2 += -4
        insn(0x85, 0, 0, 1),           // call bpf_map_lookup_elem
        insn(0xb7, 0x01, 0, fallback), // r1 = fallback
        insn(0x15, 0x00, 1, 0),        // if r0 == 0 goto +1
        insn(0x61, 0x01, 0, 0),        // r1 = *(u32 *)(r0 + 0)
        insn(0xbf, 0x10, 0, 0),        // r0 = r1
        insn(0x95, 0, 0, 0),           // exit
    ]
    .concat()
}

fn prog_load(insns: &[u8], name: &str, log: &mut [u8]) -> Result<i32, i32> {
    let license = b"GPL\0";
    let mut a = [0u8; 144];
    put32(&mut a, 0, 6);
    put32(&mut a, 4, (insns.len() / 8) as u32);
    put64(&mut a, 8, insns.as_ptr() as u64);
    put64(&mut a, 16, license.as_ptr() as u64);
    if !log.is_empty() {
        put32(&mut a, 24, 1);
        put32(&mut a, 28, log.len() as u32);
        put64(&mut a, 32, log.as_mut_ptr() as u64);
    }
    a[48..48 + name.len()].copy_from_slice(name.as_bytes());
    bpf(5, &mut a).map(|fd| fd as i32)
}

#[test]
fn programs_load_run_pin_and_report_like_the_kernels() {
    let map = map_create(2, 4, 4, 1, "calls_arr").expect("array");
    let key = 0u32.to_ne_bytes();
    let val = 1u32.to_ne_bytes(); // XDP_DROP
    elem(2, map, key.as_ptr(), val.as_ptr(), 0).expect("update");
    let prog = prog_load(&array_prog(map, 2), "calls_prog", &mut []).expect("load");

    // Test run: retval from the map, packet unchanged, data_size_out and duration set.
    let pkt: Vec<u8> = (0..64u8).collect();
    let mut out = vec![0u8; 128];
    let mut a = [0u8; 80];
    put32(&mut a, 0, prog as u32);
    put32(&mut a, 8, pkt.len() as u32);
    put32(&mut a, 12, out.len() as u32);
    put64(&mut a, 16, pkt.as_ptr() as u64);
    put64(&mut a, 24, out.as_mut_ptr() as u64);
    put32(&mut a, 32, 3);
    assert_eq!(bpf(10, &mut a), Ok(0));
    assert_eq!(get32(&a, 4), 1, "retval");
    assert_eq!(get32(&a, 12), 64, "data_size_out");
    assert_eq!(&out[..64], &pkt[..]);
    // A data_out too small: the prefix, ENOSPC, and the full size reported.
    let mut small = [0u8; 10];
    put32(&mut a, 12, small.len() as u32);
    put64(&mut a, 24, small.as_mut_ptr() as u64);
    assert_eq!(bpf(10, &mut a), Err(libc::ENOSPC));
    assert_eq!(get32(&a, 12), 64);
    assert_eq!(&small[..], &pkt[..10]);
    // A packet shorter than an Ethernet header: EINVAL, as the kernel.
    put32(&mut a, 8, 10);
    assert_eq!(bpf(10, &mut a), Err(libc::EINVAL));

    // Info: name, type, map ids, xlated size.
    let mut ids = [0u32; 4];
    let mut info = [0u8; 232];
    put32(&mut info, 52, 4);
    put64(&mut info, 56, ids.as_mut_ptr() as u64);
    let mut g = [0u8; 16];
    put32(&mut g, 0, prog as u32);
    put32(&mut g, 4, info.len() as u32);
    put64(&mut g, 8, info.as_mut_ptr() as u64);
    assert_eq!(bpf(15, &mut g), Ok(0));
    assert_eq!(get32(&info, 0), 6, "type");
    assert_eq!(&info[64..74], b"calls_prog");
    assert_eq!(get32(&info, 20), 11 * 8, "xlated_prog_len");
    assert_eq!(get32(&info, 52), 1, "nr_map_ids");
    let mut minfo = [0u8; 88];
    put32(&mut g, 0, map as u32);
    put32(&mut g, 4, minfo.len() as u32);
    put64(&mut g, 8, minfo.as_mut_ptr() as u64);
    assert_eq!(bpf(15, &mut g), Ok(0));
    assert_eq!(ids[0], get32(&minfo, 4), "the program's map is the array");
    let prog_id = get32(&info, 4);

    // Pin on the virtual bpffs, get it back, and see it by id.
    let store = xdpshim::state::store().expect("store");
    let dir = format!("/sys/fs/bpf/calls{}", std::process::id());
    xdpshim::vfs::mkdir(store, &dir).expect("mkdir");
    let pin = std::ffi::CString::new(format!("{dir}/prog")).unwrap();
    let mut p = [0u8; 16];
    put64(&mut p, 0, pin.as_ptr() as u64);
    put32(&mut p, 8, prog as u32);
    assert_eq!(bpf(6, &mut p), Ok(0));
    assert_eq!(bpf(6, &mut p), Err(libc::EEXIST));
    let got = bpf(7, &mut p).expect("obj_get") as i32;
    put32(&mut g, 0, got as u32);
    put32(&mut g, 4, info.len() as u32);
    put64(&mut g, 8, info.as_mut_ptr() as u64);
    put32(&mut info, 52, 0);
    assert_eq!(bpf(15, &mut g), Ok(0));
    assert_eq!(get32(&info, 4), prog_id);
    // The directory cannot go while it holds the pin; unlink, then it can.
    assert_eq!(xdpshim::vfs::rmdir(store, &dir), Err(libc::ENOTEMPTY));
    xdpshim::vfs::unlink(store, &format!("{dir}/prog")).expect("unlink");
    xdpshim::vfs::rmdir(store, &dir).expect("rmdir");
    assert_eq!(bpf(7, &mut p), Err(libc::ENOENT));
    let mut n = [0u8; 12];
    let mut found = false;
    while bpf(11, &mut n).is_ok() {
        found |= get32(&n, 4) == prog_id;
        let next = get32(&n, 4);
        put32(&mut n, 0, next);
    }
    assert!(found, "PROG_GET_NEXT_ID lists the program");
    for fd in [got, prog, map] {
        close(fd);
    }
}

#[test]
fn a_rejected_program_fills_the_log_and_loses_nothing() {
    // A jump past the end: EINVAL and the reason in the log buffer.
    let mut insns = vec![0u8; 16];
    insns[0] = 0x05; // goto +5
    insns[2] = 5;
    insns[8] = 0x95;
    let mut log = vec![0u8; 256];
    assert_eq!(prog_load(&insns, "bad_jump", &mut log), Err(libc::EINVAL));
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("jump"), "{text}");
    // A map descriptor that is not a map in an lddw: EBADF.
    assert_eq!(
        prog_load(&array_prog(999_999, 0), "bad_map", &mut []),
        Err(libc::EBADF)
    );
    // A too-small log buffer is refused as the kernel does.
    let mut tiny = vec![0u8; 16];
    assert_eq!(
        prog_load(&array_prog(0, 0), "tiny_log", &mut tiny),
        Err(libc::EINVAL)
    );
}

#[test]
fn random_attributes_never_crash() {
    setup();
    let mut scratch = vec![0u8; 4096];
    let base = scratch.as_mut_ptr() as u64;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // A map to aim descriptors at.
    let map = map_create(1, 4, 8, 16, "calls_fuzz").expect("map");
    for _ in 0..20_000 {
        let cmd = (rnd() % 40) as i32;
        let mut a = [0u8; 160];
        for w in 0..20 {
            let v = match rnd() % 6 {
                0 => 0,
                1 => rnd() % 64,
                2 => base + rnd() % 2048,
                3 => map as u64 | ((rnd() % 64) << 32),
                4 => 0xffff_8000_0000_0000 | (rnd() % 4096),
                _ => rnd(),
            };
            put64(&mut a, w * 8, v);
        }
        // Called without the panic guard: a panic fails the test.
        let r = xdpshim::bpf::bpf(cmd, a.as_ptr() as u64, a.len() as u32);
        if let (Ok(fd), 0 | 5 | 7 | 13 | 14 | 18 | 19 | 28 | 32) = (r, cmd) {
            close(fd as i32);
        }
    }
    close(map);
}

/// One instruction as bpf(2) takes it.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = dst | src << 4;
    b[2..4].copy_from_slice(&off.to_le_bytes());
    b[4..8].copy_from_slice(&imm.to_le_bytes());
    b
}

/// One instruction with its registers as one byte: `regs` is dst | src << 4.
fn insn_r(code: u8, regs: u8, off: i16, imm: i32) -> [u8; 8] {
    insn(code, regs & 0x0f, regs >> 4, off, imm)
}

/// The entry function, entered with r2 != 0, takes r1 as the context and stores 8
/// bytes at its `data` when `data + 8 <= data_end` (r0 = 1).
fn entry_body() -> Vec<[u8; 8]> {
    vec![
        insn(0x61, 3, 1, 0, 0), // r3 = *(u32 *)(r1 + 0)
        insn(0x61, 4, 1, 4, 0), // r4 = *(u32 *)(r1 + 4)
        insn(0xbf, 5, 3, 0, 0), // r5 = r3
        insn(0x07, 5, 0, 0, 8), // r5 += 8
        insn(0xb7, 0, 0, 0, 0), // r0 = 0
        insn(0x2d, 5, 4, 2, 0), // if r5 > r4 goto exit
        insn(0x7b, 3, 5, 0, 0), // *(u64 *)(r3 + 0) = r5
        insn(0xb7, 0, 0, 0, 1), // r0 = 1
        insn(0x95, 0, 0, 0, 0), // exit
    ]
}

/// TEST_RUN of `prog` on a 64-byte packet: Ok(retval) or Err(errno).
fn test_run(prog: i32) -> Result<u32, i32> {
    let pkt = [9u8; 64];
    let mut a = [0u8; 80];
    put32(&mut a, 0, prog as u32);
    put32(&mut a, 8, pkt.len() as u32);
    put64(&mut a, 16, pkt.as_ptr() as u64);
    put32(&mut a, 32, 1);
    bpf(10, &mut a).map(|_| get32(&a, 4))
}

#[test]
fn a_call_to_the_entry_with_a_forged_context_faults() {
    // Another packet's frame (below 4 GiB, as every frame) is the target of the writes.
    let victim_data = [0x33u8; 64];
    let victim = runtime::Packet::new(&victim_data).expect("packet");
    let va = victim.data().as_ptr() as u64;
    assert!(va < 1 << 32);
    // (a) r1 = host memory holding { data, data_end } around the other packet, and an
    // unmapped r1; (b) a fake context on the stack with data_end = 0xffffffff. Each
    // program calls pc 0 with the forged r1 (r2 = 1 marks the inner entry).
    let host: Box<[u32; 6]> = Box::new([va as u32, va as u32 + 64, 0, 0, 0, 0]);
    let mut programs = Vec::new();
    for addr in [host.as_ptr() as u64, 0x10] {
        let mut p = vec![
            insn(0x55, 2, 0, 5, 0), // if r2 != 0 goto 6
            insn(0x18, 1, 0, 0, addr as u32 as i32),
            insn(0, 0, 0, 0, (addr >> 32) as u32 as i32),
            insn(0xb7, 2, 0, 0, 1),
            insn(0x85, 0, 1, 0, -5), // call pc 0
            insn(0x95, 0, 0, 0, 0),
        ];
        p.extend(entry_body());
        programs.push(p);
    }
    let mut p = vec![
        insn(0x55, 2, 0, 7, 0),                  // if r2 != 0 goto 8
        insn(0x62, 10, 0, -8, va as u32 as i32), // *(u32 *)(r10 - 8) = other packet
        insn(0x62, 10, 0, -4, -1),               // *(u32 *)(r10 - 4) = 0xffffffff
        insn(0xbf, 1, 10, 0, 0),                 // r1 = r10
        insn(0x07, 1, 0, 0, -8),                 // r1 += -8
        insn(0xb7, 2, 0, 0, 1),                  // r2 = 1
        insn(0x85, 0, 1, 0, -7),                 // call pc 0
        insn(0x95, 0, 0, 0, 0),
    ];
    p.extend(entry_body());
    programs.push(p);
    for (i, p) in programs.iter().enumerate() {
        let fd = prog_load(&p.concat(), &format!("forged_ctx{i}"), &mut []).expect("load");
        // The run faults (a trap at the load or the store: EFAULT), nothing is written.
        assert_eq!(test_run(fd), Err(libc::EFAULT), "program {i}");
        assert_eq!(victim.data(), &victim_data[..], "program {i}");
        close(fd);
    }
}

const EXIT: [u8; 8] = [0x95, 0, 0, 0, 0, 0, 0, 0];

/// TEST_RUN of `prog` once on a 64-byte packet: the retval, or the errno. The
/// retval field starts as 0xdead, so a failed run that wrote it back shows.
fn test_run_once(prog: i32) -> Result<u32, i32> {
    let pkt = [0u8; 64];
    let mut a = [0u8; 80];
    put32(&mut a, 0, prog as u32);
    put32(&mut a, 4, 0xdead);
    put32(&mut a, 8, pkt.len() as u32);
    put64(&mut a, 16, pkt.as_ptr() as u64);
    put32(&mut a, 32, 1);
    match bpf(10, &mut a) {
        Ok(_) => Ok(get32(&a, 4)),
        Err(e) => {
            assert_eq!(get32(&a, 4), 0xdead, "a failed run writes nothing back");
            Err(e)
        }
    }
}

/// The mutually recursive A (slot `at`) and B (`at + 7`): `if r1 == 0 return;
/// r1 -= 1; call other(r1) twice`.
fn call_tree_at(at: usize) -> Vec<[u8; 8]> {
    let f = |me: usize, other: usize| {
        let call = |pc: usize| insn_r(0x85, 0x10, 0, other as i32 - pc as i32 - 1);
        vec![
            insn_r(0x15, 0x01, 5, 0),
            insn_r(0x07, 0x01, 0, -1),
            insn_r(0xbf, 0x16, 0, 0),
            call(me + 3),
            insn_r(0xbf, 0x61, 0, 0),
            call(me + 5),
            EXIT,
        ]
    };
    let mut p = f(at, at + 7);
    p.extend(f(at + 7, at));
    p
}

#[test]
fn test_runs_that_never_end_fail_with_e2big() {
    let load = |insns: Vec<[u8; 8]>, name: &str| {
        let mut log = vec![0u8; 4096];
        prog_load(&insns.concat(), name, &mut log)
            .unwrap_or_else(|e| panic!("{name}: errno {e}: {}", String::from_utf8_lossy(&log)))
    };
    // ja -1.
    let ja = load(
        vec![insn_r(0xb7, 0, 0, 0), insn_r(0x05, 0, -1, 0), EXIT],
        "budget_ja",
    );
    // A loop through a call: 0: call f; 1: if r0 != 0 goto 0; 2: exit; f: r0 = 1.
    let through_call = load(
        vec![
            insn_r(0x85, 0x10, 0, 2),
            insn_r(0x55, 0, -2, 0),
            EXIT,
            insn_r(0xb7, 0, 0, 1),
            EXIT,
        ],
        "budget_call",
    );
    // Mutual recursion, 127 calls deep-first: it ends by itself...
    let mut tree = vec![insn_r(0xb7, 0x01, 0, 6), insn_r(0x85, 0x10, 0, 1), EXIT];
    tree.extend(call_tree_at(3));
    let tree = load(tree, "budget_tree");
    // ... but not in a loop: 0: r1 = 6; 1: call A; 2: goto 0.
    let mut tree_loop = vec![
        insn_r(0xb7, 0x01, 0, 6),
        insn_r(0x85, 0x10, 0, 1),
        insn_r(0x05, 0, -3, 0),
    ];
    tree_loop.extend(call_tree_at(3));
    let tree_loop = load(tree_loop, "budget_treeloop");
    // Without a base case the call depth stops it: a fault, EFAULT.
    let endless = load(
        vec![
            insn_r(0x85, 0x10, 0, 1),
            EXIT,
            insn_r(0x85, 0x10, 0, 1),
            EXIT,
            insn_r(0x85, 0x10, 0, -3),
            EXIT,
        ],
        "budget_deep",
    );
    // Nested bpf_loop: main: bpf_loop(1 << 23, outer); outer (slot 8):
    // bpf_loop(1 << 23, inner); inner (slot 16): return 0.
    let lp = |at: i32, target: i32| {
        vec![
            insn_r(0xb7, 0x01, 0, 1 << 23),
            insn_r(0x18, 0x42, 0, target - at - 2),
            insn_r(0, 0, 0, 0),
            insn_r(0xb7, 0x03, 0, 0),
            insn_r(0xb7, 0x04, 0, 0),
            insn_r(0x85, 0, 0, 181),
        ]
    };
    let mut nested = lp(0, 8);
    nested.extend([insn_r(0xb7, 0, 0, 2), EXIT]);
    nested.extend(lp(8, 16));
    nested.extend([insn_r(0xb7, 0, 0, 0), EXIT]);
    nested.extend([insn_r(0xb7, 0, 0, 0), EXIT]);
    let nested = load(nested, "budget_nested");

    assert_eq!(test_run_once(ja), Err(libc::E2BIG));
    assert_eq!(test_run_once(through_call), Err(libc::E2BIG));
    assert_eq!(test_run_once(tree), Ok(0));
    assert_eq!(test_run_once(tree_loop), Err(libc::E2BIG));
    assert_eq!(test_run_once(endless), Err(libc::EFAULT));
    assert_eq!(test_run_once(nested), Err(libc::E2BIG));
    for fd in [ja, through_call, tree, tree_loop, endless, nested] {
        close(fd);
    }
}

#[test]
fn tail_call_loops_end_under_test_run() {
    let jmp = map_create(3, 4, 4, 1, "budget_jmp").expect("prog_array");
    // 0: r6 = r1; 1: r1 = r6; 2: r2 = jmp; 4: r3 = 0; 5: tail call slot 0; then
    // 6: r0 = 7; exit (`again` false) or 6: goto 6 (the runtime's tests also loop
    // back to the tail call, with small budgets: here each of the default budget's
    // 2^30 steps would call the unoptimised debug build's tail-call entry).
    let prog = |again: bool, name: &str| {
        let mut p = vec![
            insn_r(0xbf, 0x16, 0, 0),
            insn_r(0xbf, 0x61, 0, 0),
            insn_r(0x18, 0x12, 0, jmp),
            insn_r(0, 0, 0, 0),
            insn_r(0xb7, 0x03, 0, 0),
            insn_r(0x85, 0, 0, 12),
        ];
        if again {
            p.push(insn_r(0x05, 0, -1, 0));
        } else {
            p.extend([insn_r(0xb7, 0, 0, 7), EXIT]);
        }
        prog_load(&p.concat(), name, &mut []).expect(name)
    };
    let key = 0u32.to_ne_bytes();
    // Tail-calling itself: 33 tail calls, then the call falls through.
    let once = prog(false, "budget_tail");
    let fd = (once as u32).to_ne_bytes();
    elem(2, jmp, key.as_ptr(), fd.as_ptr(), 0).expect("update");
    assert_eq!(test_run_once(once), Ok(7));
    // An endless loop once the tail calls are spent: the budget ends it.
    let again = prog(true, "budget_tailloop");
    let fd = (again as u32).to_ne_bytes();
    elem(2, jmp, key.as_ptr(), fd.as_ptr(), 0).expect("update");
    assert_eq!(test_run_once(again), Err(libc::E2BIG));
    for fd in [once, again, jmp] {
        close(fd);
    }
}

/// Two pages: the first read-write, the second PROT_NONE. Unmapped on drop.
struct Edge(*mut u8);

impl Edge {
    fn new() -> Edge {
        // SAFETY: a fresh private anonymous mapping of two pages.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        // SAFETY: the second page of the mapping made above.
        let r = unsafe { libc::mprotect(p.cast::<u8>().add(4096).cast(), 4096, 0) };
        assert_eq!(r, 0);
        Edge(p.cast())
    }
    /// Address `back` bytes before the unmapped page.
    fn before_end(&self, back: usize) -> u64 {
        self.0 as u64 + 4096 - back as u64
    }
    fn set(&self, addr: u64, v: u8) {
        // SAFETY: callers pass addresses inside the read-write page.
        unsafe { *(addr as *mut u8) = v };
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        // SAFETY: the mapping made in new().
        unsafe { libc::munmap(self.0.cast(), 8192) };
    }
}

/// The kernel's answer to the same call, when this process may use bpf(2).
pub(super) fn kernel_bpf(cmd: i32, attr: &mut [u8]) -> Result<i64, i32> {
    // SAFETY: attr is a live buffer of attr.len() bytes.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

/// Sizes far beyond what the memory behind a pointer holds: the kernel checks
/// the zero tail of an oversized struct page by page (E2BIG at a non-zero
/// tail byte even if an unmapped page follows) and copies at most one frame
/// of a test run's packet (EFAULT here: less than a frame is mapped); so must
/// the shim, without buffers of the sizes given.
#[test]
fn oversized_lengths_are_checked_before_copying() {
    type Call = fn(i32, &mut [u8]) -> Result<i64, i32>;
    let xdp_pass: Vec<u8> = [[0xb7u8, 0, 0, 0, 2, 0, 0, 0], [0x95, 0, 0, 0, 0, 0, 0, 0]].concat();
    let load = |call: Call| {
        let mut a = [0u8; 160];
        put32(&mut a, 0, 2);
        put32(&mut a, 4, 4);
        put32(&mut a, 8, 4);
        put32(&mut a, 12, 1);
        let map = call(0, &mut a).expect("map") as i32;
        let license = b"GPL\0";
        let mut a = [0u8; 160];
        put32(&mut a, 0, 6);
        put32(&mut a, 4, 2);
        put64(&mut a, 8, xdp_pass.as_ptr() as u64);
        put64(&mut a, 16, license.as_ptr() as u64);
        let prog = call(5, &mut a).expect("prog") as i32;
        (map, prog)
    };
    let answers = |call: Call| -> Vec<Result<i64, i32>> {
        let (map, prog) = load(call);
        let edge = Edge::new();
        let mut out = Vec::new();
        // bpf_map_info with a 4096-byte tail: a non-zero byte 4000 bytes past
        // the struct, then the unmapped page.
        let info = edge.before_end(88 + 4008);
        edge.set(info + 88 + 4000, 1);
        let mut a = [0u8; 160];
        put32(&mut a, 0, map as u32);
        put32(&mut a, 4, 88 + 4008 + 4096);
        put64(&mut a, 8, info);
        out.push(call(15, &mut a));
        edge.set(info + 88 + 4000, 0);
        // A test run of a 1 MiB packet of which 64 bytes are mapped.
        let pkt = edge.before_end(64);
        let mut a = [0u8; 160];
        put32(&mut a, 0, prog as u32);
        put32(&mut a, 8, 1 << 20);
        put64(&mut a, 16, pkt);
        out.push(call(10, &mut a));
        // The same with a 64-byte packet and an oversized xdp_md whose tail
        // holds a non-zero byte before the unmapped page.
        let data = [0u8; 64];
        let ctx = edge.before_end(24 + 4008);
        edge.set(ctx + 24 + 4000, 1);
        put32(&mut a, 8, 64);
        put64(&mut a, 16, data.as_ptr() as u64);
        put32(&mut a, 40, 24 + 4008 + 4096);
        put64(&mut a, 48, ctx);
        out.push(call(10, &mut a));
        close(prog);
        close(map);
        out
    };
    let expected = vec![Err(libc::E2BIG), Err(libc::EFAULT), Err(libc::E2BIG)];
    assert_eq!(answers(bpf), expected, "shim");
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIP: oversized lengths against the kernel: not root");
        return;
    }
    assert_eq!(answers(kernel_bpf), expected, "kernel");
}

/// BPF_BTF_LOAD of `types` (u32 words) with strings "\0a\0".
fn btf_load_with(call: fn(i32, &mut [u8]) -> Result<i64, i32>, types: &[u32]) -> Result<i64, i32> {
    let tlen = (types.len() * 4) as u32;
    let mut b = Vec::new();
    for w in [0x0001_eb9fu32, 24, 0, tlen, tlen, 3] {
        b.extend_from_slice(&w.to_ne_bytes());
    }
    for w in types {
        b.extend_from_slice(&w.to_ne_bytes());
    }
    b.extend_from_slice(b"\0a\0");
    let mut a = [0u8; 160];
    put64(&mut a, 0, b.as_ptr() as u64);
    put32(&mut a, 16, b.len() as u32);
    let r = call(18, &mut a);
    if let Ok(fd) = r {
        close(fd as i32);
    }
    r
}

/// BTF the kernel's verifier refuses (a type id beyond the last type, a name
/// outside the strings, a typedef loop, a FUNC of an INT) is refused by the
/// shim's BPF_BTF_LOAD too, so no such BTF reaches the store and the tools
/// that follow its ids.
#[test]
fn btf_the_kernel_refuses_is_refused() {
    setup();
    const INT: [u32; 4] = [1, 1 << 24, 4, 32];
    let cases: Vec<(&str, Vec<u32>)> = vec![
        ("valid", [&INT[..], &[1, 8 << 24, 1]].concat()),
        ("typedef to type 77", [&INT[..], &[1, 8 << 24, 77]].concat()),
        (
            "member of type 9",
            [&INT[..], &[1, (4 << 24) | 1, 4, 1, 9, 0]].concat(),
        ),
        (
            "member name at 99",
            [&INT[..], &[1, (4 << 24) | 1, 4, 99, 1, 0]].concat(),
        ),
        (
            "typedef loop",
            [&INT[..], &[1, 8 << 24, 3, 1, 8 << 24, 2]].concat(),
        ),
        ("FUNC of an INT", [&INT[..], &[1, 12 << 24, 1]].concat()),
    ];
    // SAFETY: geteuid cannot fail.
    let kernel = unsafe { libc::geteuid() } == 0;
    for (what, types) in &cases {
        let shim = btf_load_with(bpf, types).map(|_| ());
        let want = match *what {
            "valid" => Ok(()),
            // The kernel's "Loop detected".
            "typedef loop" => Err(libc::EEXIST),
            _ => Err(libc::EINVAL),
        };
        assert_eq!(shim, want, "shim: {what}");
        if kernel {
            let k = btf_load_with(kernel_bpf, types).map(|_| ());
            assert_eq!(k, want, "kernel: {what}");
        }
    }
    if !kernel {
        println!("SKIP: BTF refusals against the kernel: not root");
    }
}

/// PROG_LOAD with a NULL or unmapped license pointer: EFAULT, as the kernel
/// (strncpy_from_user of the license fails), never a load.
#[test]
fn an_unreadable_license_is_efault() {
    setup();
    type Call = fn(i32, &mut [u8]) -> Result<i64, i32>;
    let xdp_pass: Vec<u8> = [[0xb7u8, 0, 0, 0, 2, 0, 0, 0], [0x95, 0, 0, 0, 0, 0, 0, 0]].concat();
    let edge = Edge::new();
    let load = |call: Call, license: u64| {
        let mut a = [0u8; 160];
        put32(&mut a, 0, 6);
        put32(&mut a, 4, 2);
        put64(&mut a, 8, xdp_pass.as_ptr() as u64);
        put64(&mut a, 16, license);
        let r = call(5, &mut a);
        if let Ok(fd) = r {
            close(fd as i32);
        }
        r.map(|_| ())
    };
    let unmapped = edge.before_end(0);
    // SAFETY: geteuid cannot fail.
    let kernel = unsafe { libc::geteuid() } == 0;
    for (what, ptr) in [("NULL", 0), ("unmapped", unmapped)] {
        assert_eq!(load(bpf, ptr), Err(libc::EFAULT), "shim: {what}");
        if kernel {
            assert_eq!(load(kernel_bpf, ptr), Err(libc::EFAULT), "kernel: {what}");
        }
    }
    if !kernel {
        println!("SKIP: license pointers against the kernel: not root");
    }
}

/// `r0 = linear length << 17 | bpf_xdp_get_buff_len(ctx)`: where a test run put the
/// frame's bytes. The linear length is found bit by bit, comparing `data + n` with
/// `data_end` (a program may not subtract packet pointers).
fn frame_layout_prog() -> Vec<u8> {
    let mut p = vec![
        insn(0xbf, 6, 1, 0, 0),   // r6 = r1
        insn(0x85, 0, 0, 0, 188), // r0 = bpf_xdp_get_buff_len(ctx)
        insn(0x61, 3, 6, 0, 0),   // r3 = ctx->data
        insn(0x61, 4, 6, 4, 0),   // r4 = ctx->data_end
        insn(0xb7, 5, 0, 0, 0),   // r5 = 0
    ];
    for bit in (0..12).rev() {
        p.extend([
            insn(0xbf, 7, 5, 0, 0),        // r7 = r5
            insn(0x47, 7, 0, 0, 1 << bit), // r7 |= 1 << bit
            insn(0xbf, 8, 3, 0, 0),        // r8 = data
            insn(0x0f, 8, 7, 0, 0),        // r8 += r7
            insn(0x2d, 8, 4, 1, 0),        // if r8 > data_end skip
            insn(0xbf, 5, 7, 0, 0),        // r5 = r7
        ]);
    }
    p.extend([
        insn(0x67, 5, 0, 0, 17), // r5 <<= 17
        insn(0x4f, 0, 5, 0, 0),  // r0 |= r5
        insn(0x95, 0, 0, 0, 0),
    ]);
    p.concat()
}

/// One TEST_RUN with the fields the frags rules depend on; the retval field starts
/// as 0xdead and data_size_out as `size_out`.
struct FragRun {
    result: Result<i64, i32>,
    retval: u32,
    size_out: u32,
    out: Vec<u8>,
    ctx_out: [u8; 24],
}

fn frag_run(
    prog: i32,
    data: &[u8],
    size_out: usize,
    ctx_in: Option<&[u8]>,
    ctx_out: bool,
) -> FragRun {
    let mut out = vec![0xeeu8; 80_000];
    let mut ctx_buf = [0x55u8; 24];
    let mut a = [0u8; 80];
    put32(&mut a, 0, prog as u32);
    put32(&mut a, 4, 0xdead);
    put32(&mut a, 8, data.len() as u32);
    put32(&mut a, 12, size_out as u32);
    put64(&mut a, 16, data.as_ptr() as u64);
    put64(&mut a, 24, out.as_mut_ptr() as u64);
    put32(&mut a, 32, 1);
    if let Some(c) = ctx_in {
        put32(&mut a, 40, c.len() as u32);
        put64(&mut a, 48, c.as_ptr() as u64);
    }
    if ctx_out {
        put32(&mut a, 44, 24);
        put64(&mut a, 56, ctx_buf.as_mut_ptr() as u64);
    }
    let result = bpf(10, &mut a);
    FragRun {
        result,
        retval: get32(&a, 4),
        size_out: get32(&a, 12),
        out,
        ctx_out: ctx_buf,
    }
}

/// Multi-buffer test runs, with the kernel's answers (probed with BPF_PROG_TEST_RUN on
/// Linux 6.18, programs with and without BPF_F_XDP_HAS_FRAGS alike): 3520 linear
/// bytes then page fragments, up to 17; a data_size_out too small for the fragments
/// writes nothing back; one too small for the linear part cuts it and the fragments
/// follow; a ctx_out without ctx_in puts the whole frame in fragments.
#[test]
fn multi_buffer_test_runs_follow_the_kernel() {
    let mut log = vec![0u8; 4096];
    let prog = prog_load(&frame_layout_prog(), "frag_layout", &mut log)
        .unwrap_or_else(|e| panic!("load: {e}: {}", String::from_utf8_lossy(&log)));
    let data: Vec<u8> = (0..80_000u32).map(|i| (i * 7 + 1) as u8).collect();
    let layout = |linear: u32, len: u32| linear << 17 | len;

    let r = frag_run(prog, &data[..9000], 0, None, false);
    assert_eq!(r.result, Ok(0));
    assert_eq!((r.retval, r.size_out), (layout(3520, 9000), 9000));
    assert_eq!(&r.out[..9000], &data[..9000]);
    assert_eq!(r.out[9000], 0xee);
    let r = frag_run(prog, &data[..73152], 80_000, None, false);
    assert_eq!((r.result, r.retval), (Ok(0), layout(3520, 73152)));
    assert_eq!(&r.out[..73152], &data[..73152]);
    let r = frag_run(prog, &data[..73153], 80_000, None, false);
    assert_eq!((r.result, r.retval), (Err(libc::ENOMEM), 0xdead));
    // Fragments (5480 bytes) larger than data_size_out: ENOSPC, nothing written.
    let r = frag_run(prog, &data[..9000], 3600, None, false);
    assert_eq!(
        (r.result, r.retval, r.size_out),
        (Err(libc::ENOSPC), 0xdead, 3600)
    );
    assert!(r.out.iter().all(|&b| b == 0xee));
    // Room for 2520 linear bytes: those, then the fragments; the whole size reported.
    let r = frag_run(prog, &data[..9000], 8000, None, false);
    assert_eq!(r.result, Err(libc::ENOSPC));
    assert_eq!((r.retval, r.size_out), (layout(3520, 9000), 9000));
    assert_eq!(&r.out[..2520], &data[..2520]);
    assert_eq!(&r.out[2520..8000], &data[3520..9000]);
    assert_eq!(r.out[8000], 0xee);
    // data_end one byte short: 59 linear bytes, one in a fragment.
    let ctx = |d: u32, e: u32| {
        [
            d.to_ne_bytes(),
            e.to_ne_bytes(),
            [0; 4],
            [0; 4],
            [0; 4],
            [0; 4],
        ]
        .concat()
    };
    let r = frag_run(prog, &data[..60], 0, Some(&ctx(0, 59)), true);
    assert_eq!((r.result, r.retval), (Ok(0), layout(59, 60)));
    assert_eq!(&r.out[..60], &data[..60]);
    assert_eq!(get32(&r.ctx_out, 4), 59);
    // A ctx_out alone: a zeroed context, data_end 0, every byte in a fragment.
    let r = frag_run(prog, &data[..60], 0, None, true);
    assert_eq!((r.result, r.retval), (Ok(0), layout(0, 60)));
    assert_eq!(&r.out[..60], &data[..60]);
    assert_eq!(&r.ctx_out[..], &[0u8; 24][..]);
    // ENOSPC from data_out leaves ctx_out unwritten.
    let r = frag_run(prog, &data[..9000], 100, Some(&ctx(0, 9000)), true);
    assert_eq!(r.result, Err(libc::ENOSPC));
    assert_eq!(r.ctx_out, [0x55u8; 24]);
    // Metadata and a linear part clamped to 3520 bytes past it.
    let r = frag_run(prog, &data[..9000], 0, Some(&ctx(8, 9000)), true);
    assert_eq!((r.result, r.retval), (Ok(0), layout(3520, 8992)));
    assert_eq!((get32(&r.ctx_out, 0), get32(&r.ctx_out, 4)), (8, 3528));
    assert_eq!(&r.out[..9000], &data[..9000]);
    // The same program in the kernel, where it may be used.
    if kclient::require("kernel comparison of multi-buffer test runs") {
        let insns: Vec<isa::RawInsn> = frame_layout_prog()
            .chunks(8)
            .map(|c| isa::RawInsn::from_bytes(c.try_into().unwrap()))
            .collect();
        let (fd, _) = kclient::prog::load("frag_layout", &insns, c"GPL", &[], 0, 0)
            .unwrap_or_else(|e| panic!("kernel load: {}: {}", e.errno, e.log));
        for len in [60, 3520, 3521, 9000, 73152, 73153] {
            let ours = frag_run(prog, &data[..len], 80_000, None, false);
            match kclient::prog::test_run(&fd, &data[..len], 1, 80_000) {
                Ok(k) => {
                    assert_eq!((ours.result, ours.retval), (Ok(0), k.retval), "{len}");
                    assert_eq!(&ours.out[..k.data_out.len()], &k.data_out[..], "{len}");
                }
                Err(e) => assert_eq!(ours.result, Err(e.raw_os_error().unwrap()), "{len}"),
            }
        }
    }
    close(prog);
}
