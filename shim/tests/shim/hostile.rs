//! The hostile-program suite (`bpf_progs::hostile`) through the shim's bpf(2), in this
//! process: maps by MAP_CREATE, the program by PROG_LOAD (map references through
//! `fd_array`, as the case's indexes), the setup by MAP_UPDATE_ELEM, then
//! PROG_TEST_RUN. A return value comes back as `retval` (its low 32 bits); a trap as
//! EFAULT (the runtime's message goes to stderr); a load error as an errno with the
//! message in the verifier log.
//!
//! Each case's name is printed before it runs; `XDP_HOSTILE=name1,name2` runs only
//! those, `XDP_HOSTILE_SKIP=...` all but those.

use bpf_progs::hostile::{self, Expect, Hostile, Setup, BUDGET_TRAP};

use super::calls::{close, get32, put32, put64};

static BUDGET: std::sync::Once = std::sync::Once::new();

/// bpf(cmd, attr) on the process's store (calls.rs sets it up), with the suite's
/// small step budget for this process's test runs (read at each run), so that the
/// endless cases end fast; no other test of this binary runs a program near it.
fn bpf(cmd: i32, attr: &mut [u8]) -> Result<i64, i32> {
    BUDGET.call_once(|| {
        if std::env::var_os("XDPSHIM_MAX_STEPS").is_none() {
            std::env::set_var("XDPSHIM_MAX_STEPS", hostile::SUITE_MAX_STEPS.to_string());
        }
    });
    super::calls::bpf(cmd, attr)
}

fn map_create(m: &hostile::MapSpec) -> Result<i32, i32> {
    let mut a = [0u8; 128];
    put32(&mut a, 0, m.map_type);
    put32(&mut a, 4, m.key_size);
    put32(&mut a, 8, m.value_size);
    put32(&mut a, 12, m.max_entries);
    put32(&mut a, 16, m.flags);
    a[28..28 + m.name.len()].copy_from_slice(m.name.as_bytes());
    bpf(0, &mut a).map(|fd| fd as i32)
}

fn update(fd: i32, key: &[u8], value: &[u8]) -> Result<i64, i32> {
    let mut a = [0u8; 32];
    put32(&mut a, 0, fd as u32);
    put64(&mut a, 8, key.as_ptr() as u64);
    put64(&mut a, 16, value.as_ptr() as u64);
    bpf(2, &mut a)
}

/// PROG_LOAD of `insns` with `fds` as its fd_array: the descriptor, or the errno and
/// the log.
fn prog_load(insns: &[hostile::Insn], fds: &[i32]) -> Result<i32, (i32, String)> {
    let bytes: Vec<u8> = insns
        .iter()
        .flat_map(|i| {
            let mut b = [0u8; 8];
            b[0] = i.code;
            b[1] = i.dst | (i.src << 4);
            b[2..4].copy_from_slice(&i.off.to_le_bytes());
            b[4..8].copy_from_slice(&i.imm.to_le_bytes());
            b
        })
        .collect();
    let license = b"GPL\0";
    let mut log = vec![0u8; 4096];
    let mut a = [0u8; 144];
    put32(&mut a, 0, 6);
    put32(&mut a, 4, insns.len() as u32);
    put64(&mut a, 8, bytes.as_ptr() as u64);
    put64(&mut a, 16, license.as_ptr() as u64);
    put32(&mut a, 24, 1);
    put32(&mut a, 28, log.len() as u32);
    put64(&mut a, 32, log.as_mut_ptr() as u64);
    a[48..55].copy_from_slice(b"hostile");
    // The case's maps, then -1: 8 readable entries, whatever index a program names.
    let mut fd_array = [-1i32; 8];
    fd_array[..fds.len()].copy_from_slice(fds);
    put64(&mut a, 120, fd_array.as_ptr() as u64);
    bpf(5, &mut a).map(|fd| fd as i32).map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        (e, String::from_utf8_lossy(&log[..end]).into_owned())
    })
}

/// PROG_TEST_RUN once on `data`: (retval, data_out) or the errno.
fn test_run(prog: i32, data: &[u8]) -> Result<(u32, Vec<u8>), i32> {
    let mut out = vec![0u8; 4096];
    let mut a = [0u8; 80];
    put32(&mut a, 0, prog as u32);
    put32(&mut a, 8, data.len() as u32);
    put32(&mut a, 12, out.len() as u32);
    put64(&mut a, 16, data.as_ptr() as u64);
    put64(&mut a, 24, out.as_mut_ptr() as u64);
    put32(&mut a, 32, 1);
    bpf(10, &mut a)?;
    out.truncate(get32(&a, 12) as usize);
    Ok((get32(&a, 4), out))
}

fn check(case: &Hostile) -> Result<(), String> {
    let name = case.name;
    let mut fds = Vec::new();
    for m in &case.maps {
        fds.push(map_create(m).map_err(|e| format!("{name}: map {}: errno {e}", m.name))?);
    }
    let expect = case.shim_expect.as_ref().unwrap_or(&case.expect);
    let result = (|| {
        let prog = match (prog_load(&case.insns, &fds), expect) {
            (Err((_, log)), Expect::LoadError(fragment)) => {
                return if log.contains(fragment.as_str()) {
                    Ok(())
                } else {
                    Err(format!("{name}: log {log:?} lacks {fragment:?}"))
                };
            }
            (Err((e, log)), _) => {
                return Err(format!(
                    "{name}: PROG_LOAD errno {e} ({log:?}), expected {expect:?}"
                ))
            }
            (Ok(prog), Expect::LoadError(fragment)) => {
                close(prog);
                return Err(format!(
                    "{name}: loaded, expected a load error {fragment:?}"
                ));
            }
            (Ok(prog), _) => prog,
        };
        for s in &case.setup {
            let r = match s {
                Setup::Update { map, key, value } => update(fds[*map], key, value),
                Setup::SelfInProgArray { map, slot } => {
                    update(fds[*map], &slot.to_ne_bytes(), &prog.to_ne_bytes())
                }
            };
            r.map_err(|e| format!("{name}: setup {s:?}: errno {e}"))?;
        }
        let run = test_run(prog, &case.packet);
        close(prog);
        match (expect, run) {
            (Expect::Ret(want), Ok((retval, _))) if retval == *want as u32 => Ok(()),
            (Expect::Trap { kind, .. }, Err(e)) if *kind == BUDGET_TRAP => {
                // Item 6 chooses the errno of a run over its budget; any error ends it.
                let _ = e;
                Ok(())
            }
            (Expect::Trap { .. }, Err(libc::EFAULT)) => Ok(()),
            (want, got) => Err(format!(
                "{name}: test run gave {:?}, expected {want:?}",
                got.map(|(r, _)| r)
            )),
        }
    })();
    for fd in fds {
        close(fd);
    }
    result
}

#[test]
fn hostile_programs_end_as_expected_through_the_shim() {
    let cases = hostile::selected();
    let mut failures = Vec::new();
    for case in &cases {
        println!("hostile: {}", case.name);
        if let Err(e) = check(case) {
            failures.push(e);
        }
    }
    println!(
        "{} hostile programs through the shim, {} failed",
        cases.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The kernel's limit, 1M instructions, loaded and run through the shim.
#[test]
fn hostile_program_of_one_million_instructions_through_the_shim() {
    let (insns, r0) = hostile::enormous_straight_line(1_000_000);
    let prog = prog_load(&insns, &[]).expect("PROG_LOAD");
    let run = test_run(prog, &hostile::default_packet());
    close(prog);
    assert_eq!(run.map(|(r, _)| r), Ok(r0 as u32));
}

/// A helper the runtime does not run is refused as the kernel's verifier
/// refuses one the program type may not call, and an id it does not know as
/// an unknown one: EINVAL and the log lines feature probes look for
/// (`unknown func ` / `invalid func `), as the kernel answered for
/// `call 9999; r0 = 2; exit` and, before Linux 6.5, for `call 26` in XDP.
#[test]
fn unsupported_helpers_are_refused_in_the_kernel_verifiers_words() {
    let call = |id: i32| {
        [
            hostile::Insn {
                code: 0x85,
                dst: 0,
                src: 0,
                off: 0,
                imm: id,
            },
            hostile::Insn {
                code: 0xb7,
                dst: 0,
                src: 0,
                off: 0,
                imm: 2,
            },
            hostile::Insn {
                code: 0x95,
                dst: 0,
                src: 0,
                off: 0,
                imm: 0,
            },
        ]
    };
    for (id, line) in [
        (26, "unknown func bpf_skb_load_bytes#26"),
        (9999, "invalid func unknown#9999"),
        (-1, "invalid func unknown#-1"),
    ] {
        let (errno, log) = prog_load(&call(id), &[]).expect_err("a refused helper");
        assert_eq!(errno, libc::EINVAL, "helper {id}: {log}");
        assert!(log.lines().any(|l| l == line), "helper {id}: {log:?}");
    }
    // A helper the runtime runs is not refused.
    let fd = prog_load(&call(5), &[]).expect("bpf_ktime_get_ns loads");
    close(fd);
}
