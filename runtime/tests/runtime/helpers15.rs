//! The task and time helpers (`bpf-progs/src-c/xdp_task.c`) in both engines:
//! pid/tgid, uid/gid and comm of the thread running the program, NUMA node 0,
//! CLOCK_TAI, jiffies at the kernel's count, bpf_strncmp, bpf_snprintf and
//! bpf_trace_vprintk as the kernel's.

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
                (0..19).map(get).collect::<Vec<u64>>()
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
        if let Some(k) = &before {
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
