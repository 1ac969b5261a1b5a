//! End-to-end tests of the `xdp-runner` binary: output formats, flags, errors and exit
//! statuses, with the kernel as the oracle where bpf(2) is permitted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bpf_progs::kernel;
use serde_json::Value;

fn runner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xdp-runner"))
}

fn run(args: &[&str]) -> Output {
    runner().args(args).output().expect("xdp-runner starts")
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

fn counter() -> String {
    path_str(&bpf_progs::object("xdp_counter"))
}

fn icmp() -> String {
    path_str(&bpf_progs::packet("icmp"))
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("xdp-runner-test-{}-{name}", std::process::id()))
}

#[test]
fn json_output_has_the_documented_shape() {
    let out = run(&["run", &counter(), "--data-in", &icmp(), "--json"]);
    let v = json_of(&out);
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["data_out", "duration_ns", "maps", "repeat", "retval"]
    );
    assert_eq!(v["retval"], 3, "XDP_TX");
    assert_eq!(v["repeat"], 1);
    assert!(v["duration_ns"].as_f64().unwrap() >= 0.0);
    // The counter swaps the Ethernet addresses: derive the expected frame from the input.
    let mut expected = std::fs::read(bpf_progs::packet("icmp")).unwrap();
    let (dst, src) = (expected[0..6].to_vec(), expected[6..12].to_vec());
    expected[0..6].copy_from_slice(&src);
    expected[6..12].copy_from_slice(&dst);
    assert_eq!(v["data_out"], bpf_progs::hex_encode(&expected));
    // One entry keyed by the frame length (little-endian u32), first seen: count 0.
    let len = (expected.len() as u32).to_le_bytes();
    let entries = v["maps"]["counter_map"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["key"], bpf_progs::hex_encode(&len));
    assert_eq!(entries[0]["value"], "00000000");
}

#[test]
fn text_output_reads_like_bpftool() {
    let out = run(&["run", &counter(), "--data-in", &icmp(), "--repeat", "1000"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.trim();
    let rest = line
        .strip_prefix("Return value: 3, duration (average): ")
        .expect(line);
    let ns = rest.strip_suffix("ns").expect(line);
    assert!(ns.parse::<u64>().is_ok(), "{line}");
    let once = run(&["run", &counter(), "--data-in", &icmp()]);
    assert!(String::from_utf8(once.stdout)
        .unwrap()
        .starts_with("Return value: 3, duration: "));
}

#[test]
fn repeat_does_not_reset_the_packet_and_set_writes_entries() {
    // Two runs: the MACs are swapped back, and the count goes 0 then 1.
    let v = json_of(&run(&[
        "run",
        &counter(),
        "--data-in",
        &icmp(),
        "--repeat",
        "2",
        "--json",
    ]));
    let input = std::fs::read(bpf_progs::packet("icmp")).unwrap();
    assert_eq!(v["data_out"], bpf_progs::hex_encode(&input));
    assert_eq!(v["maps"]["counter_map"][0]["value"], "01000000");
    assert_eq!(v["repeat"], 2);
    // A preset count of 7 becomes 8.
    let key = bpf_progs::hex_encode(&(input.len() as u32).to_le_bytes());
    let set = format!("counter_map:{key}=07000000");
    let v = json_of(&run(&[
        "run",
        &counter(),
        "--data-in",
        &icmp(),
        "--set",
        &set,
        "--json",
    ]));
    assert_eq!(v["maps"]["counter_map"][0]["value"], "08000000");
}

#[test]
fn matches_the_kernel_on_every_case() {
    if let Err(why) = kernel::available() {
        println!("SKIP: kernel comparison of xdp-runner --json: {why}");
        return;
    }
    for case in bpf_progs::cases() {
        let object = bpf_progs::object(case.object);
        let sets = case.sets_bytes().unwrap();
        for packet in case.packets {
            let data = std::fs::read(bpf_progs::packet(packet)).unwrap();
            let mut args = vec![
                "run".to_string(),
                path_str(&object),
                "--data-in".into(),
                path_str(&bpf_progs::packet(packet)),
                "--prog".into(),
                case.prog.into(),
                "--repeat".into(),
                case.repeat.to_string(),
                "--json".into(),
            ];
            for (map, k, v) in case.sets {
                args.push("--set".into());
                args.push(format!("{map}:{k}={v}"));
            }
            for (map, slot, prog) in case.prog_sets {
                args.push("--set".into());
                args.push(format!(
                    "{map}:{}=@{prog}",
                    bpf_progs::hex_encode(&slot.to_ne_bytes())
                ));
            }
            let out = runner().args(&args).output().unwrap();
            let ours = json_of(&out);
            let theirs = kernel::run_with(
                &object,
                case.prog,
                &data,
                case.repeat,
                &sets,
                &case.prog_sets_owned(),
            )
            .expect("kernel run");
            let label = case.label(packet);
            assert_eq!(ours["retval"], theirs.retval, "{label}");
            assert_eq!(
                ours["data_out"],
                bpf_progs::hex_encode(&theirs.data_out),
                "{label}"
            );
            for (name, entries) in &theirs.maps {
                let mut want: Vec<(String, Vec<String>)> = entries
                    .iter()
                    .map(|e| {
                        (
                            bpf_progs::hex_encode(&e.key),
                            e.values.iter().map(|v| bpf_progs::hex_encode(v)).collect(),
                        )
                    })
                    .collect();
                want.sort();
                let mut got: Vec<(String, Vec<String>)> = ours["maps"][name]
                    .as_array()
                    .unwrap_or_else(|| panic!("{label}: map {name} missing in {ours}"))
                    .iter()
                    .map(|e| {
                        let values = match (e.get("values"), e.get("prog")) {
                            (Some(vs), _) => vs
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|v| v.as_str().unwrap().to_string())
                                .collect(),
                            // The kernel oracle names prog_array targets by their program name.
                            (None, Some(p)) => {
                                vec![bpf_progs::hex_encode(p.as_str().unwrap().as_bytes())]
                            }
                            (None, None) => vec![e["value"].as_str().unwrap().to_string()],
                        };
                        (e["key"].as_str().unwrap().to_string(), values)
                    })
                    .collect();
                got.sort();
                assert_eq!(got, want, "{label}: map {name}");
            }
        }
    }
}

#[test]
fn data_out_file_holds_the_output_packet() {
    let path = temp_path("data-out.bin");
    let v = json_of(&run(&[
        "run",
        &counter(),
        "--data-in",
        &icmp(),
        "--data-out",
        path.to_str().unwrap(),
        "--json",
    ]));
    let written = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(v["data_out"], bpf_progs::hex_encode(&written));
}

#[test]
fn a_fault_exits_with_status_1_and_names_the_pc() {
    let obj = path_str(&bpf_progs::object("xdp_oob"));
    for prog in bpf_progs::OOB_PROGRAMS {
        let mut data = std::fs::read(bpf_progs::packet("icmp")).unwrap();
        data[0] = 0xff; // xdp_oob_stack's index: past the top of the stack
        let input = temp_path(&format!("{prog}.bin"));
        std::fs::write(&input, &data).unwrap();
        let out = run(&[
            "run",
            &obj,
            "--data-in",
            input.to_str().unwrap(),
            "--prog",
            prog,
        ]);
        std::fs::remove_file(&input).ok();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{prog}: exit status, not a signal"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("out-of-bounds"), "{prog}: {err}");
        assert!(err.contains(" at insn "), "{prog}: {err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn bad_inputs_give_clear_errors() {
    let short = path_str(&bpf_progs::packet("short"));
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["run".into(), counter(), "--data-in".into(), short],
            "EINVAL",
        ),
        (
            vec![
                "run".into(),
                counter(),
                "--data-in".into(),
                icmp(),
                "--engine".into(),
                "jit".into(),
            ],
            "not built yet",
        ),
        (
            vec![
                "run".into(),
                counter(),
                "--data-in".into(),
                icmp(),
                "--prog".into(),
                "nope".into(),
            ],
            "xdp_counter",
        ),
        (
            vec!["run".into(), icmp(), "--data-in".into(), icmp()],
            "cannot load",
        ),
        (
            vec![
                "run".into(),
                counter(),
                "--data-in".into(),
                "/nonexistent/pkt".into(),
            ],
            "cannot read",
        ),
        (
            vec![
                "run".into(),
                counter(),
                "--data-in".into(),
                icmp(),
                "--set".into(),
                "nomap:00=00".into(),
            ],
            "counter_map",
        ),
        (
            vec![
                "run".into(),
                counter(),
                "--data-in".into(),
                icmp(),
                "--set".into(),
                "counter_map:00=00".into(),
            ],
            "key",
        ),
        (
            vec![
                "run".into(),
                counter(),
                "--data-in".into(),
                icmp(),
                "--set".into(),
                "counter_map:zz=00".into(),
            ],
            "hex",
        ),
    ];
    for (args, needle) in cases {
        let out = runner().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn disasm_prints_llvm_objdump_syntax() {
    let out = run(&["disasm", &counter()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("xdp_counter (section xdp):"), "{text}");
    assert!(text.contains("call 1"), "map_lookup_elem call: {text}");
    assert!(text.contains("exit"), "{text}");
}

#[test]
fn trace_printk_writes_trace_pipe_lines_to_stderr() {
    let obj = path_str(&bpf_progs::object("xdp_subprog"));
    let udp = path_str(&bpf_progs::packet("udp"));
    let out = run(&["run", &obj, "--data-in", &udp, "--repeat", "2"]);
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("bpf_trace_printk: "))
        .collect();
    assert_eq!(lines.len(), 2, "one line per run: {err}");
    for line in lines {
        // "<comm>-<pid> [<cpu>] <flags> <secs>.<usecs>: bpf_trace_printk: <message>"
        let (head, msg) = line.split_once(": bpf_trace_printk: ").unwrap();
        assert!(
            msg.starts_with("xdp_subprog: ") && msg.contains(" bytes, total "),
            "{line}"
        );
        let fields: Vec<&str> = head.split_whitespace().collect();
        assert!(fields[0].starts_with("xdp-runner-"), "{line}");
        assert_eq!(fields[1], "[000]", "{line}");
        let ts = fields.last().unwrap();
        let (secs, usecs) = ts.split_once('.').unwrap();
        assert!(secs.parse::<u64>().is_ok() && usecs.len() == 6, "{line}");
    }
}

/// A `struct xdp_md` as bpftool's ctx_in takes it.
fn xdp_md(
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress: u32,
    rxq: u32,
    egress: u32,
) -> Vec<u8> {
    [data, data_end, data_meta, ingress, rxq, egress]
        .iter()
        .flat_map(|f| f.to_ne_bytes())
        .collect()
}

#[test]
fn ctx_in_and_ctx_out_follow_the_kernel() {
    let kernel_ok = kernel::available();
    if let Err(why) = &kernel_ok {
        println!("SKIP: kernel comparison of --ctx-in: {why}");
    }
    let object = bpf_progs::object("xdp_tail_meta");
    let packet = std::fs::read(bpf_progs::packet("udp")).unwrap();
    // (metadata length, ingress_ifindex, rx_queue_index, egress_ifindex, data_meta, extra data_end)
    let contexts: &[(u32, u32, u32, u32, u32, u32)] = &[
        (8, 1, 0, 0, 0, 0),
        (0, 0, 0, 0, 0, 0),
        (216, 1, 0, 0, 0, 0),
        (6, 1, 0, 0, 0, 0),
        (220, 1, 0, 0, 0, 0),
        (0, 1, 1000, 0, 0, 0),
        (0, 0, 1, 0, 0, 0),
        (0, 1, 0, 5, 0, 0),
        (0, 1, 0, 0, 4, 0),
        (0, 0x0fff_ffff, 0, 0, 0, 0),
        (0, 1, 0, 0, 0, 1),
    ];
    for &(meta, ingress, rxq, egress, data_meta, extra) in contexts {
        let mut data: Vec<u8> = (0..meta as u8).collect();
        data.extend_from_slice(&packet);
        let ctx = xdp_md(
            meta,
            data.len() as u32 + extra,
            data_meta,
            ingress,
            rxq,
            egress,
        );
        let (data_path, ctx_path, out_path) = (
            temp_path("ctx-data"),
            temp_path("ctx-in"),
            temp_path("ctx-out"),
        );
        std::fs::write(&data_path, &data).unwrap();
        std::fs::write(&ctx_path, &ctx).unwrap();
        let out = runner()
            .args(["run", &path_str(&object), "--json", "--data-in"])
            .arg(&data_path)
            .arg("--ctx-in")
            .arg(&ctx_path)
            .arg("--ctx-out")
            .arg(&out_path)
            .output()
            .unwrap();
        let ctx_out = std::fs::read(&out_path).ok();
        for p in [&data_path, &ctx_path, &out_path] {
            std::fs::remove_file(p).ok();
        }
        let label = format!("ctx {meta}/{ingress}/{rxq}/{egress}/{data_meta}/+{extra}");
        if kernel_ok.is_err() {
            continue;
        }
        match kernel::run_full(&object, "xdp_tail_meta", &data, 1, &[], &[], Some(&ctx)) {
            Ok(k) => {
                let ours = json_of(&out);
                assert_eq!(ours["retval"], k.retval, "{label}");
                assert_eq!(
                    ours["data_out"],
                    bpf_progs::hex_encode(&k.data_out),
                    "{label}"
                );
                assert_eq!(ctx_out, k.ctx_out, "{label}: ctx_out");
            }
            Err(kernel_err) => {
                assert_eq!(
                    out.status.code(),
                    Some(1),
                    "{label}: the kernel refused: {kernel_err}"
                );
                let ours = String::from_utf8_lossy(&out.stderr);
                let errno = [
                    ("Invalid argument", "EINVAL"),
                    ("No such device", "ENODEV"),
                    ("Argument list too long", "E2BIG"),
                ]
                .iter()
                .find(|(k, _)| kernel_err.contains(k))
                .map(|(_, e)| *e)
                .unwrap_or("?");
                assert!(
                    ours.contains(errno) || (errno == "EINVAL" && ours.contains("fragments")),
                    "{label}: kernel {kernel_err}; ours {ours}"
                );
            }
        }
    }
}
