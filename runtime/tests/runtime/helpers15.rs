//! The task and time helpers (`bpf-progs/src-c/xdp_task.c`) in both engines:
//! pid/tgid, uid/gid and comm of the thread running the program, NUMA node 0,
//! CLOCK_TAI, jiffies at the kernel's count, bpf_strncmp, bpf_snprintf,
//! bpf_trace_vprintk, bpf_strtol and bpf_strtoul as the kernel's.

use kclient::bpftool as kernel;

use super::jit::{run_engine, Engine};

fn slot(out: &super::Outcome, i: u32) -> u64 {
    let entries = &out.maps["out"];
    let (_, v) = entries
        .iter()
        .find(|(k, _)| k.as_slice() == i.to_ne_bytes())
        .unwrap_or_else(|| panic!("no slot {i}"));
    u64::from_ne_bytes(v[0].as_slice().try_into().expect("u64 value"))
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[test]
fn task_and_time_helpers() {
    let object = bpf_progs::object("xdp_task");
    let data = std::fs::read(bpf_progs::packet("udp.bin")).expect("packet");
    let kernel_run = || {
        kernel::run(&object, "xdp_task", &data, 1, &[])
            .map(|r| {
                let get = |i: u32| {
                    r.maps["out"]
                        .iter()
                        .find(|e| e.key == i.to_ne_bytes())
                        .map(|e| u64::from_ne_bytes(e.values[0].as_slice().try_into().unwrap()))
                        .expect("kernel slot")
                };
                (0..52).map(get).collect::<Vec<u64>>()
            })
            .ok()
    };
    let oracle = kclient::available().is_ok();
    let before = if oracle { kernel_run() } else { None };
    for engine in [Engine::Interpreter, Engine::Jit] {
        let tai0 = clock_ns(libc::CLOCK_TAI);
        let out = run_engine(engine, &object, "xdp_task", &data, 1, &[], &[])
            .unwrap_or_else(|e| panic!("{}: {e}", engine.name()));
        let tai1 = clock_ns(libc::CLOCK_TAI);
        let name = engine.name();
        // SAFETY: no preconditions.
        let (pid, tid, uid, gid) = unsafe {
            (
                libc::getpid(),
                libc::gettid(),
                libc::getuid(),
                libc::getgid(),
            )
        };
        assert_eq!(slot(&out, 0), ((pid as u64) << 32) | tid as u64, "{name}");
        assert_eq!(slot(&out, 1), ((gid as u64) << 32) | uid as u64, "{name}");
        let mut comm = [0u8; 16];
        // SAFETY: PR_GET_NAME writes 16 bytes.
        unsafe { libc::prctl(libc::PR_GET_NAME, comm.as_mut_ptr()) };
        let mut got = slot(&out, 2).to_ne_bytes().to_vec();
        got.extend(slot(&out, 3).to_ne_bytes());
        comm[15] = 0;
        assert_eq!(got, comm, "{name}: comm");
        assert_eq!(slot(&out, 4), 0, "{name}: numa node");
        let tai = slot(&out, 5);
        assert!(
            tai0 <= tai && tai <= tai1,
            "{name}: tai {tai} not in [{tai0}, {tai1}]"
        );
        // strncmp: equal, less, greater, equal within 2 bytes (the kernel's -1/0/1).
        let cmp: Vec<u64> = (7..11).map(|i| slot(&out, i)).collect();
        assert_eq!(cmp, [0, -1i64 as u64, 1, 0], "{name}: strncmp");
        // snprintf: the whole output's length + 1, the output cut to the buffer.
        let text = |from: u32, n: u32| -> Vec<u8> {
            (from..from + n)
                .flat_map(|i| slot(&out, i).to_ne_bytes())
                .collect()
        };
        let want = b"-42|    7|ab  |abc|Z|-1";
        assert_eq!(slot(&out, 11), want.len() as u64 + 1, "{name}: snprintf");
        assert_eq!(
            &text(12, 4)[..want.len() + 1],
            &[&want[..], b"\0"].concat()[..],
            "{name}"
        );
        assert_eq!(
            slot(&out, 16),
            b"12345|ff".len() as u64 + 1,
            "{name}: cut snprintf"
        );
        assert_eq!(text(17, 1), b"123\0\0\0\0\0", "{name}: cut snprintf");
        assert_eq!(
            slot(&out, 18),
            b"xdp_task 1 2 3 4".len() as u64,
            "{name}: trace_vprintk"
        );
        // strtol/strtoul: (characters consumed or -errno, result).
        let neg = |e: i32| (-(e as i64)) as u64;
        let strtox: Vec<(u64, u64)> = (0..13)
            .map(|i| (slot(&out, 20 + 2 * i), slot(&out, 21 + 2 * i)))
            .collect();
        assert_eq!(
            strtox,
            [
                (6, -123i64 as u64),
                (4, 31),
                (4, 0o777),
                (2, 255),
                (neg(libc::ERANGE), 0),
                (neg(libc::EINVAL), 0),
                (neg(libc::EINVAL), 0),
                (neg(libc::EINVAL), 0),
                (neg(libc::ERANGE), 0),
                (20, i64::MIN as u64),
                (20, u64::MAX),
                (1, 0),
                (neg(libc::EINVAL), 0),
            ],
            "{name}: strtol/strtoul"
        );
        // probe_read_kernel_str: "hello" whole, cut to 4 bytes ("hel" and a NUL,
        // the rest of dst untouched), and NULL (-ERANGE, dst zeroed).
        let bytes = |i: u32| slot(&out, i).to_ne_bytes();
        assert_eq!((slot(&out, 46), bytes(47)), (6, *b"hello\0UU"), "{name}");
        assert_eq!((slot(&out, 48), bytes(49)), (4, *b"hel\0UUUU"), "{name}");
        assert_eq!(
            (slot(&out, 50), slot(&out, 51)),
            (neg(libc::ERANGE), 0),
            "{name}"
        );
        if let Some(k) = &before {
            let ours: Vec<u64> = (46..52).map(|i| slot(&out, i)).collect();
            assert_eq!(
                ours,
                k[46..52],
                "{name}: probe_read_kernel_str against the kernel"
            );
            let ours: Vec<u64> = (20..46).map(|i| slot(&out, i)).collect();
            assert_eq!(ours, k[20..46], "{name}: strtol/strtoul against the kernel");
            let ours: Vec<u64> = (11..19).map(|i| slot(&out, i)).collect();
            assert_eq!(
                ours,
                k[11..19],
                "{name}: snprintf and trace_vprintk against the kernel"
            );
            assert_eq!(cmp, k[7..11], "{name}: strncmp against the kernel");
            assert_eq!(slot(&out, 4), k[4], "{name}: numa node against the kernel");
            // Jiffies count at the kernel's rate from the kernel's start: between
            // the kernel's answers before and after, give or take 2 s of ticks
            // (the coarse clock, and runs in between).
            let after = kernel_run().expect("kernel run");
            let j = slot(&out, 6);
            let slack = 2 * runtime::helpers::JIFFIES_HZ;
            assert!(
                k[6] - slack <= j && j <= after[6] + slack,
                "{name}: jiffies64 {j} outside the kernel's [{}, {}] (HZ {})",
                k[6],
                after[6],
                runtime::helpers::JIFFIES_HZ
            );
        }
    }
    if before.is_none() {
        kclient::skip(
            "task_and_time_helpers against the kernel (strncmp, jiffies64)",
            "no kernel oracle",
        );
    }
}

/// A dynptr is 16 bytes of the program's stack, which a program can forge: one
/// pointing at memory outside the run (here address 0x10000, 256 bytes) must stop
/// the run with a helper trap in both engines, for bpf_dynptr_read, _write and
/// bpf_ringbuf_submit_dynptr (a record this run does not hold), and bpf_dynptr_data
/// gives an address whose every use is checked.
#[test]
fn forged_dynptrs_trap() {
    use isa::helpers::func;
    use runtime::{LoadedObject, Packet, TrapKind, Vm};

    let raw = |c: u8, d: u8, s: u8, o: i16, i: i32| isa::RawInsn::new(c, d, s, o, i);
    // fp-16: data = 0x10000, size = 256 | LOCAL << 28, offset 0.
    let forge = [
        raw(0xb7, 1, 0, 0, 0x10000),
        raw(0x7b, 10, 1, -16, 0),
        raw(0xb7, 1, 0, 0, 256 | 1 << 28),
        raw(0x63, 10, 1, -8, 0),
        raw(0xb7, 1, 0, 0, 0),
        raw(0x63, 10, 1, -4, 0),
    ];
    let calls: [(i32, Vec<isa::RawInsn>); 4] = [
        // bpf_dynptr_read(fp-48, 8, fp-16, 0, 0)
        (
            func::dynptr_read,
            vec![
                raw(0xbf, 1, 10, 0, 0),
                raw(0x07, 1, 0, 0, -48),
                raw(0xb7, 2, 0, 0, 8),
                raw(0xbf, 3, 10, 0, 0),
                raw(0x07, 3, 0, 0, -16),
                raw(0xb7, 4, 0, 0, 0),
                raw(0xb7, 5, 0, 0, 0),
                raw(0x85, 0, 0, 0, func::dynptr_read),
            ],
        ),
        // bpf_dynptr_write(fp-16, 0, fp-48, 8, 0)
        (
            func::dynptr_write,
            vec![
                raw(0xbf, 1, 10, 0, 0),
                raw(0x07, 1, 0, 0, -16),
                raw(0xb7, 2, 0, 0, 0),
                raw(0xbf, 3, 10, 0, 0),
                raw(0x07, 3, 0, 0, -48),
                raw(0xb7, 4, 0, 0, 8),
                raw(0xb7, 5, 0, 0, 0),
                raw(0x85, 0, 0, 0, func::dynptr_write),
            ],
        ),
        // bpf_ringbuf_submit_dynptr(fp-16, 0) of a dynptr forged as a ring record.
        (
            func::ringbuf_submit_dynptr,
            vec![
                raw(0xb7, 1, 0, 0, 256 | 2 << 28),
                raw(0x63, 10, 1, -8, 0),
                raw(0xbf, 1, 10, 0, 0),
                raw(0x07, 1, 0, 0, -16),
                raw(0xb7, 2, 0, 0, 0),
                raw(0x85, 0, 0, 0, func::ringbuf_submit_dynptr),
            ],
        ),
        // r0 = bpf_dynptr_data(fp-16, 0, 8); r0 = *(u64 *)r0
        (
            func::dynptr_data,
            vec![
                raw(0xbf, 1, 10, 0, 0),
                raw(0x07, 1, 0, 0, -16),
                raw(0xb7, 2, 0, 0, 0),
                raw(0xb7, 3, 0, 0, 8),
                raw(0x85, 0, 0, 0, func::dynptr_data),
                raw(0x79, 0, 0, 0, 0),
            ],
        ),
    ];
    for (helper, call) in calls {
        let mut insns = vec![raw(0x7a, 10, 0, -48, 0)];
        insns.extend(forge.iter().copied());
        insns.extend(call);
        insns.push(raw(0x95, 0, 0, 0, 0));
        let maps = runtime::maptable::MapTable::new(Vec::new());
        let prepared = runtime::program::prepare("forge", "xdp", &insns, &[0], &maps)
            .unwrap_or_else(|e| panic!("helper {helper}: {e}"));
        let loaded = LoadedObject {
            maps,
            programs: vec![prepared],
            rejected: Vec::new(),
            all_programs: Vec::new(),
        };
        let mut results = Vec::new();
        for engine in [Engine::Interpreter, Engine::Jit] {
            let mut pkt = Packet::new(&[0u8; 64]).expect("packet");
            let mut vm = Vm::new(0);
            let r = match engine {
                Engine::Jit => runtime::jit::JitObject::compile(&loaded, &Default::default())
                    .expect("compile")
                    .run(&mut vm, 0, &mut pkt),
                _ => loaded.run_repeat(&mut vm, 0, &mut pkt, 1).map(|r| r.0),
            };
            let trap = r.expect_err("a forged dynptr must not be followed");
            let ok = match trap.kind {
                TrapKind::HelperBadPointer { helper: h, .. } => h == helper,
                // bpf_dynptr_data's address is checked where it is used.
                _ => helper == func::dynptr_data,
            };
            assert!(ok, "helper {helper}, {}: {trap:?}", engine.name());
            results.push(trap);
        }
        assert_eq!(results[0], results[1], "helper {helper}: engines differ");
    }
}
