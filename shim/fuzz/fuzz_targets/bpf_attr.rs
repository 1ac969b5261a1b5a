//! The shim's bpf(2) dispatcher (`xdpshim::bpf::bpf`) on fuzzed commands and
//! attributes: it must return Ok or an errno, never panic, hang or fault.
//!
//! Input layout (missing bytes read as zero):
//! - byte 0: the command (mod 40);
//! - byte 1: the attribute size passed (>= 200: 160, else the byte's value);
//! - bytes 2..42: one selector per 4-byte slot of the attribute (see `fix`):
//!   keep the fuzzed value, point into the buffer, point at a NULL-page,
//!   read-only, unmapped or kernel address, or put a prepared descriptor;
//! - bytes 42..202: `union bpf_attr`;
//! - the rest: the buffer the attribute's pointers may aim into.
//!
//! All memory the attribute may reach lies in one private arena framed by
//! PROT_NONE pages, so writes the shim makes for the program stay there:
//! fuzzed values that look like user addresses are folded into the arena.
//! The store is private to the fuzzing process (its name is unlinked once
//! open); the objects below are made once, through the dispatcher itself.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

const PAGE: usize = 4096;
/// Read-write pages of the arena.
const RW_PAGES: usize = 16;
const ATTR: usize = 160;

struct Env {
    /// First byte of the arena's read-only page; the read-write pages follow.
    ro: u64,
    rw: u64,
    /// Just past the read-write pages: a PROT_NONE page.
    none: u64,
    /// Descriptors to aim attributes at: hash, array, prog array, outer map,
    /// XDP program, BTF, stats.
    fds: Vec<i32>,
}

fn bpf(cmd: i32, attr: &mut [u8; ATTR]) -> Result<i64, i32> {
    xdpshim::bpf::bpf(cmd, attr.as_mut_ptr() as u64, ATTR as u32)
}

fn put32(a: &mut [u8], off: usize, v: u32) {
    a[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(a: &mut [u8], off: usize, v: u64) {
    a[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

fn map(t: u32, k: u32, v: u32, max: u32, inner: i32, btf: Option<i32>) -> i32 {
    let mut a = [0u8; ATTR];
    put32(&mut a, 0, t);
    put32(&mut a, 4, k);
    put32(&mut a, 8, v);
    put32(&mut a, 12, max);
    put32(&mut a, 20, inner as u32);
    a[28..32].copy_from_slice(b"fuzz");
    if let Some(b) = btf {
        put32(&mut a, 48, b as u32);
        put32(&mut a, 52, 1);
        put32(&mut a, 56, 1);
    }
    bpf(0, &mut a).expect("map create") as i32
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let name = format!("xdpshim-fuzz-{}", std::process::id());
        std::env::set_var("XDPSHIM_STORE", &name);
        xdpshim::state::store().expect("store");
        let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
        let len = (RW_PAGES + 3) * PAGE;
        // SAFETY: a fresh private anonymous mapping; nothing else uses it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        let base = base as u64;
        let (ro, rw) = (base + PAGE as u64, base + 2 * PAGE as u64);
        // SAFETY: both ranges lie inside the mapping made above.
        unsafe {
            assert_eq!(libc::mprotect(ro as _, PAGE, libc::PROT_READ), 0);
            let p = libc::PROT_READ | libc::PROT_WRITE;
            assert_eq!(libc::mprotect(rw as _, RW_PAGES * PAGE, p), 0);
        }
        // BTF: one 32-bit int, type id 1.
        let mut btf = Vec::new();
        for w in [0x0001_eb9fu32, 24, 0, 16, 16, 5] {
            btf.extend_from_slice(&w.to_ne_bytes());
        }
        for w in [1u32, 1 << 24, 4, 32] {
            btf.extend_from_slice(&w.to_ne_bytes());
        }
        btf.extend_from_slice(b"\0int\0");
        let mut a = [0u8; ATTR];
        put64(&mut a, 0, btf.as_ptr() as u64);
        put32(&mut a, 16, btf.len() as u32);
        let btf_fd = bpf(18, &mut a).expect("btf load") as i32;
        let hash = map(1, 4, 4, 8, 0, Some(btf_fd));
        let array = map(2, 4, 8, 4, 0, None);
        let progs = map(3, 4, 4, 4, 0, None);
        let outer = map(12, 4, 4, 4, array, None);
        // r0 = XDP_PASS; exit
        let insns: [u8; 16] = [0xb7, 0, 0, 0, 2, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
        let mut a = [0u8; ATTR];
        put32(&mut a, 0, 6);
        put32(&mut a, 4, 2);
        put64(&mut a, 8, insns.as_ptr() as u64);
        put64(&mut a, 16, c"GPL".as_ptr() as u64);
        let prog = bpf(5, &mut a).expect("prog load") as i32;
        let mut a = [0u8; ATTR];
        let stats = bpf(32, &mut a).expect("stats") as i32;
        Env {
            ro,
            rw,
            none: rw + (RW_PAGES * PAGE) as u64,
            fds: vec![hash, array, progs, outer, prog, btf_fd, stats],
        }
    })
}

/// Applies selector `sel` to the u32 slot `i` of the attribute.
fn fix(e: &Env, a: &mut [u8], i: usize, sel: u8) {
    let word = i % 2 == 0 && i * 4 + 8 <= ATTR;
    let arg = u64::from(sel >> 4);
    match sel & 15 {
        // Pointers (slots starting a u64 only).
        3 if word => put64(a, i * 4, e.rw + arg * 97),
        4 if word => put64(a, i * 4, arg * 8),
        5 if word => put64(a, i * 4, e.ro + arg * 64),
        6 if word => put64(a, i * 4, e.none - arg * 3),
        7 if word => put64(a, i * 4, 0xffff_8880_0000_0000 + arg * PAGE as u64),
        8 if word => put64(a, i * 4, e.ro - 1 - arg),
        // A prepared descriptor, or one past them.
        9 | 10 => {
            let k = arg as usize;
            let fd = e.fds.get(k).copied().unwrap_or(e.fds[0] + k as i32);
            put32(a, i * 4, fd as u32);
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let e = env();
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let cmd = i32::from(byte(0) % 40);
    let size = match byte(1) {
        s if s >= 200 => ATTR as u32,
        s => u32::from(s),
    };
    let rw_len = RW_PAGES * PAGE;
    // SAFETY: the read-write pages are this target's own (see env()).
    let arena = unsafe { std::slice::from_raw_parts_mut(e.rw as *mut u8, rw_len) };
    arena.fill(0);
    let rest = data.get(202..).unwrap_or(&[]);
    let at = ATTR + 64;
    let n = rest.len().min(rw_len - at);
    arena[at..at + n].copy_from_slice(&rest[..n]);
    let mut attr = [0u8; ATTR];
    for (i, b) in attr.iter_mut().enumerate() {
        *b = byte(42 + i);
    }
    // Fuzzed values that look like user addresses go into the arena.
    for w in 0..ATTR / 8 {
        let v = u64::from_ne_bytes(attr[w * 8..w * 8 + 8].try_into().unwrap());
        if (0x10000..0x8000_0000_0000).contains(&v) {
            put64(&mut attr, w * 8, e.rw + v % rw_len as u64);
        }
    }
    for i in 0..ATTR / 4 {
        fix(e, &mut attr, i, byte(2 + i));
    }
    if cmd == 10 {
        // PROG_TEST_RUN's repeat: up to 2^32 runs take minutes by request,
        // in the kernel too; keep it short so that a real hang stands out.
        let repeat = u32::from_ne_bytes(attr[32..36].try_into().unwrap()) % 4096;
        put32(&mut attr, 32, repeat);
    }
    arena[..ATTR].copy_from_slice(&attr);
    let r = xdpshim::bpf::bpf(cmd, e.rw, size);
    if let Ok(fd) = r {
        if fd > 2
            && !e.fds.contains(&(fd as i32))
            && matches!(cmd, 0 | 5 | 7 | 13 | 14 | 18 | 19 | 28 | 32)
        {
            // SAFETY: a descriptor the dispatcher just made.
            unsafe { libc::close(fd as i32) };
        }
    }
});
