//! End-to-end tests of the `xdp-runner` binary: output formats, flags, errors and exit
//! statuses, with the kernel as the oracle where bpf(2) is permitted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kclient::bpftool as kernel;
use serde_json::Value;

#[path = "cli/attach.rs"]
mod attach;
#[path = "cli/store_size.rs"]
mod store_size;
#[path = "cli/timer_progs.rs"]
mod timer_progs;
#[path = "cli/timers.rs"]
mod timers;

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

/// The IPv4 header checksum (RFC 1071) of `hdr` with its checksum field zeroed.
fn ipv4_checksum(hdr: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for (i, pair) in hdr.chunks(2).enumerate() {
        if i != 5 {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[test]
fn run_with_a_network_forwards_through_fib_lookup() {
    // FIB_NETNS_SETUP: 10.2.0.0/16 via 10.1.0.2 (02:00:00:00:01:fe) on v0 (ifindex 10,
    // 02:00:00:00:01:01), forwarding on. fib_fwd.bin goes to 10.2.0.5.
    let net = temp_path("fib.net");
    std::fs::write(&net, bpf_progs::FIB_NETNS_SETUP).unwrap();
    let fib = path_str(&bpf_progs::object("xdp_fib"));
    let pkt = path_str(&bpf_progs::packet("fib_fwd"));
    let input = std::fs::read(bpf_progs::packet("fib_fwd")).unwrap();
    assert_eq!(&input[30..34], &[10, 2, 0, 5]);
    let mut expected = input.clone();
    expected[0..6].copy_from_slice(&[2, 0, 0, 0, 1, 0xfe]);
    expected[6..12].copy_from_slice(&[2, 0, 0, 0, 1, 1]);
    expected[22] -= 1;
    let check = ipv4_checksum(&expected[14..34]);
    expected[24..26].copy_from_slice(&check.to_be_bytes());
    for engine in ["interpreter", "jit"] {
        let v = json_of(&run(&[
            "run",
            &fib,
            "--data-in",
            &pkt,
            "--net",
            &path_str(&net),
            "--engine",
            engine,
            "--json",
        ]));
        assert_eq!(v["retval"], 4, "{engine}: XDP_REDIRECT");
        assert_eq!(
            v["data_out"],
            bpf_progs::hex_encode(&expected),
            "{engine}: MACs from the neighbour table, TTL - 1"
        );
        // fib_last = { rc SUCCESS, ifindex 10, verdict XDP_REDIRECT, 1 lookup }.
        assert_eq!(
            v["maps"]["fib_last"][0]["value"],
            "00000000".to_owned() + "0a000000" + "04000000" + "01000000",
            "{engine}"
        );
    }
    // With --net, --ctx-in's ingress_ifindex names the script's interfaces: from v1
    // (11) the route still leads out of v0 (10); ifindex 42 is no interface there.
    let ctx = temp_path("fib-ctx");
    for (ingress, ok) in [(11u32, true), (42, false)] {
        std::fs::write(&ctx, xdp_md(0, input.len() as u32, 0, ingress, 0, 0)).unwrap();
        let out = run(&[
            "run",
            &fib,
            "--data-in",
            &pkt,
            "--net",
            &path_str(&net),
            "--ctx-in",
            &path_str(&ctx),
            "--json",
        ]);
        if ok {
            let v = json_of(&out);
            assert_eq!(v["retval"], 4, "from ifindex {ingress}");
            assert_eq!(v["data_out"], bpf_progs::hex_encode(&expected));
        } else {
            let err = failure_text(&out);
            assert!(err.contains("ingress_ifindex"), "{err}");
        }
    }
    let _ = std::fs::remove_file(&ctx);
    // Without a network: lo down, forwarding off -> FWD_DISABLED (5), XDP_PASS.
    let v = json_of(&run(&["run", &fib, "--data-in", &pkt, "--json"]));
    assert_eq!(v["retval"], 2);
    assert_eq!(v["data_out"], bpf_progs::hex_encode(&input));
    assert_eq!(
        &v["maps"]["fib_last"][0]["value"].as_str().unwrap()[..8],
        "05000000"
    );
    // A script error names its line.
    std::fs::write(
        &net,
        "ip link set lo up\nip route add 10.0.0.0/8 via 10.9.9.9\n",
    )
    .unwrap();
    let out = run(&["run", &fib, "--data-in", &pkt, "--net", &path_str(&net)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("gateway"), "{err}");
    let _ = std::fs::remove_file(&net);
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
        [
            "data_out",
            "duration_ns",
            "maps",
            "repeat",
            "retval",
            "runs"
        ]
    );
    assert_eq!(v["retval"], 3, "XDP_TX");
    assert_eq!(v["repeat"], 1);
    assert_eq!(v["runs"], 1);
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
fn audit_runs_every_access_checked_with_the_same_result() {
    let plain = json_of(&run(&["run", &counter(), "--data-in", &icmp(), "--json"]));
    let audited = json_of(&run(&[
        "run",
        &counter(),
        "--data-in",
        &icmp(),
        "--json",
        "--audit",
    ]));
    for key in ["retval", "data_out", "maps"] {
        assert_eq!(plain[key], audited[key], "{key}");
    }
    // The JIT's audit mode gives the same results too.
    let jit_audited = json_of(&run(&[
        "run",
        &counter(),
        "--data-in",
        &icmp(),
        "--json",
        "--audit",
        "--engine",
        "jit",
    ]));
    for key in ["retval", "data_out", "maps"] {
        assert_eq!(plain[key], jit_audited[key], "{key}");
    }
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
    // The live kernel where it may be used, else its recorded answers.
    for case in bpf_progs::cases() {
        let object = bpf_progs::object(case.object);
        for packet in case.packets {
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
            // Cases whose kernel runs happen in a prepared namespace: the same script.
            let setup = bpf_progs::netns_setup(case.object);
            let net_file = temp_path(&format!("{}.net", case.object));
            if let Some(setup) = setup {
                std::fs::write(&net_file, setup).unwrap();
                args.push("--net".into());
                args.push(path_str(&net_file));
            }
            let out = runner().args(&args).output().unwrap();
            let ours = json_of(&out);
            let (theirs, _) = bpf_progs::recorded::kernel_answer(case, packet, &object)
                .unwrap_or_else(|e| panic!("{}: {e}", case.label(packet)));
            let _ = std::fs::remove_file(&net_file);
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
                        let named = e.get("prog").or(e.get("map"));
                        let values = match (e.get("values"), named) {
                            (Some(vs), _) => vs
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|v| v.as_str().unwrap().to_string())
                                .collect(),
                            // The kernel oracle names prog_array targets by their program
                            // name, maps of maps their inner maps by the map name.
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
                "--cpu".into(),
                "4096".into(),
            ],
            "out of range",
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
fn errors_do_not_repeat_their_causes() {
    // A map too large for the store: the store's error is also the load error's source.
    // `run` sizes a new store for the object, so the store is one made for the object
    // with its own map sizes.
    let name = format!("cli-nospace-{}", std::process::id());
    let made = run(&["run", &counter(), "--data-in", &icmp(), "--store", &name]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let out = run(&[
        "run",
        &counter(),
        "--data-in",
        &icmp(),
        "--store",
        &name,
        "--map-size",
        "counter_map=100000000",
    ]);
    let _ = maps::Store::unlink(&name);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("no space in store").count(), 1, "{err}");
    assert!(err.contains("counter_map"), "{err}");
}

#[test]
fn a_capture_given_as_a_frame_is_refused() {
    // Two ICMP frames in a classic pcap file, as tcpdump -w writes them.
    let frame = std::fs::read(bpf_progs::packet("icmp")).unwrap();
    let mut pcap: Vec<u8> = Vec::new();
    for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 0xffff, 1] {
        pcap.extend(w.to_le_bytes());
    }
    for ts in 0..2u32 {
        for w in [ts, 0, frame.len() as u32, frame.len() as u32] {
            pcap.extend(w.to_le_bytes());
        }
        pcap.extend(&frame);
    }
    let path = temp_path("two-frames.pcap");
    std::fs::write(&path, &pcap).unwrap();
    for cmd in ["run", "bench"] {
        let out = run(&[
            cmd,
            &counter(),
            "--data-in",
            &path_str(&path),
            "--repeat",
            "1",
        ]);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("is a pcap capture, not a frame"),
            "{cmd}: {err}"
        );
    }
    std::fs::remove_file(&path).unwrap();
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
    let kernel_ok = kclient::available();
    if let Err(why) = &kernel_ok {
        kclient::skip("kernel comparison of --ctx-in", why);
    }
    let object = bpf_progs::object("xdp_tail_meta");
    let packet = std::fs::read(bpf_progs::packet("udp")).unwrap();
    // (metadata length, ingress_ifindex, rx_queue_index, egress_ifindex, data_meta, extra data_end)
    let n = packet.len() as i32;
    let contexts: &[(u32, u32, u32, u32, u32, i32)] = &[
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
        // data_end short of the input: the rest in fragments ("data_end one byte
        // short"), a linear part shorter than an Ethernet header, an empty one.
        (0, 1, 0, 0, 0, -1),
        (0, 1, 0, 0, 0, 13 - n),
        (8, 1, 0, 0, 0, 5 - n),
        (8, 1, 0, 0, 0, -n),
    ];
    for &(meta, ingress, rxq, egress, data_meta, extra) in contexts {
        let mut data: Vec<u8> = (0..meta as u8).collect();
        data.extend_from_slice(&packet);
        let ctx = xdp_md(
            meta,
            (data.len() as i32 + extra) as u32,
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
        let label = format!("ctx {meta}/{ingress}/{rxq}/{egress}/{data_meta}/{extra:+}");
        if extra < 0 {
            // The kernel runs these for every program (fragments).
            assert!(out.status.success(), "{label}: {}", error_text(&out));
        }
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
                let ours = error_text(&out);
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
                    ours.contains(errno),
                    "{label}: kernel {kernel_err}; ours {ours}"
                );
            }
        }
    }
}

#[test]
fn bench_reports_every_engine_and_ratios_to_the_kernel_row() {
    let out = run(&[
        "bench",
        &counter(),
        "--data-in",
        &icmp(),
        "--repeat",
        "2000",
        "--rounds",
        "3",
        "--engines",
        "interpreter,kernel",
        "--json",
    ]);
    let v = json_of(&out);
    let results = v["results"].as_array().unwrap();
    let engines: Vec<&str> = results
        .iter()
        .map(|r| r["engine"].as_str().unwrap())
        .collect();
    let kernel_row = results.iter().find(|r| r["engine"] == "kernel");
    match kclient::available() {
        Ok(()) => {
            assert_eq!(engines, ["interpreter", "kernel"]);
            let k = kernel_row.unwrap()["ns_per_run"].as_f64().unwrap();
            for r in results {
                let (ns, min, max) = (
                    r["ns_per_run"].as_f64().unwrap(),
                    r["min"].as_f64().unwrap(),
                    r["max"].as_f64().unwrap(),
                );
                assert!(min <= ns && ns <= max, "{r}");
                if k > 0.0 {
                    let ratio = r["ratio_to_kernel"].as_f64().unwrap();
                    assert!((ratio - ns / k).abs() < 1e-9, "{r}");
                }
            }
        }
        Err(why) => {
            kclient::skip("bench kernel column", &why);
            assert_eq!(engines, ["interpreter"], "the kernel column is left out");
            assert!(String::from_utf8_lossy(&out.stderr).contains("kernel: not available"));
            assert!(results[0]["ratio_to_kernel"].is_null());
        }
    }
    // Only the engines asked for, and no ratio without a kernel row.
    let v = json_of(&run(&[
        "bench",
        &counter(),
        "--data-in",
        &icmp(),
        "--repeat",
        "100",
        "--rounds",
        "1",
        "--engines",
        "interpreter",
        "--json",
    ]));
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["engine"], "interpreter");
    assert!(results[0]["ratio_to_kernel"].is_null());
    // Text output has a header and one row per engine.
    let out = run(&[
        "bench",
        &counter(),
        "--data-in",
        &icmp(),
        "--repeat",
        "100",
        "--rounds",
        "2",
        "--engines",
        "interpreter",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().any(|l| l.starts_with("engine")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("interpreter")), "{text}");
}

// ---- `run --store`, `map` and `prog` against a named shared-memory store ----

/// A store name no other test or process uses; the file is removed on drop.
struct TestStore(String);

impl TestStore {
    fn new(tag: &str) -> TestStore {
        let name = format!("xdp-runner-test-{}-{tag}", std::process::id());
        let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
        TestStore(name)
    }
    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/dev/shm/{}", self.0))
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
    }
}

fn store_cmd(store: &TestStore, args: &[&str]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--store", store.0.as_str()]);
    run(&all)
}

/// The error a failed command printed: on stderr, or under `--json` the
/// `{"error": ...}` document on stdout.
fn failure_text(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure: {out:?}");
    error_text(out)
}

fn error_text(out: &Output) -> String {
    let json: Option<Value> = serde_json::from_slice(&out.stdout).ok();
    match json.as_ref().and_then(|v| v["error"].as_str()) {
        Some(e) => {
            assert!(out.stderr.is_empty(), "a JSON error and stderr: {out:?}");
            e.to_string()
        }
        None => String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn run_with_store_keeps_maps_for_map_and_prog_commands() {
    let store = TestStore::new("maps");
    let ran = json_of(&store_cmd(
        &store,
        &[
            "run",
            &counter(),
            "--data-in",
            &icmp(),
            "--repeat",
            "3",
            "--json",
            "--pin-maps",
            "/sys/fs/bpf/t",
        ],
    ));
    assert!(
        store.path().exists(),
        "the store file persists after the run"
    );
    let run_entries = ran["maps"]["counter_map"]
        .as_array()
        .expect("run dump")
        .clone();
    assert!(!run_entries.is_empty(), "{ran}");

    // map list / show
    let list = json_of(&store_cmd(&store, &["map", "list", "--json"]));
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 1, "{list:?}");
    let id = list[0]["id"].as_u64().expect("id");
    assert_eq!(list[0]["name"], "counter_map");
    assert_eq!(list[0]["type"], "hash");
    assert_eq!(list[0]["bytes_key"], 4);
    assert_eq!(list[0]["pinned"][0], "/sys/fs/bpf/t/counter_map");
    let ids = id.to_string();
    let show = store_cmd(&store, &["map", "show", "id", &ids]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.starts_with(&format!("{id}: hash  name counter_map")),
        "{text}"
    );
    assert!(
        text.contains("key 4B  value 4B  max_entries 1024"),
        "{text}"
    );

    // Another process sees what the run left: the same entries as the run's own dump.
    let dump = json_of(&store_cmd(&store, &["map", "dump", "id", &ids, "--json"]));
    let dumped: Vec<(String, String)> = dump
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            (
                e["key_hex"].as_str().unwrap().to_string(),
                e["value_hex"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = run_entries
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(dumped, expected);
    let (k0, v0) = &expected[0];
    // bpftool's byte-array form of the same key.
    let k0_bytes: Vec<String> = (0..k0.len())
        .step_by(2)
        .map(|i| format!("0x{}", &k0[i..i + 2]))
        .collect();
    assert_eq!(dump[0]["key"], serde_json::json!(k0_bytes));

    // lookup by pin, with the key as one hex string; text form like bpftool's.
    let look = json_of(&store_cmd(
        &store,
        &[
            "map",
            "lookup",
            "pinned",
            "/sys/fs/bpf/t/counter_map",
            "key",
            "hex",
            k0,
            "--json",
        ],
    ));
    assert_eq!(look["value_hex"].as_str(), Some(v0.as_str()));
    let spaced_key: Vec<&str> = (0..k0.len()).step_by(2).map(|i| &k0[i..i + 2]).collect();
    let mut args = vec!["map", "lookup", "name", "counter_map", "key", "hex"];
    args.extend(spaced_key.iter().copied());
    let look = store_cmd(&store, &args);
    assert!(look.status.success());
    let text = String::from_utf8_lossy(&look.stdout);
    assert!(
        text.starts_with(&format!("key: {}  value: ", spaced_key.join(" "))),
        "{text}"
    );

    // update with flags, then read back; errors carry the kernel's errno text.
    let key = ["key", "hex", "aa", "bb", "cc", "dd"];
    let mut upd = vec!["map", "update", "id", &ids];
    upd.extend(key);
    upd.extend(["value", "7", "0", "0", "0", "noexist"]);
    assert!(store_cmd(&store, &upd).status.success());
    let again = failure_text(&store_cmd(&store, &upd));
    assert!(again.contains("File exists"), "{again}");
    let mut upd_exist = upd.clone();
    *upd_exist.last_mut().unwrap() = "exist";
    let vi = upd_exist.len() - 5;
    upd_exist[vi] = "9";
    assert!(store_cmd(&store, &upd_exist).status.success());
    let mut lk = vec!["map", "lookup", "id", &ids];
    lk.extend(key);
    lk.push("--json");
    let v = json_of(&store_cmd(&store, &lk));
    assert_eq!(v["value_hex"], "09000000");
    assert_eq!(
        v["value"],
        serde_json::json!(["0x09", "0x00", "0x00", "0x00"])
    );

    // getnext: from nothing gives the first key of the dump (hash order depends on the
    // map's seed); after the last, ENOENT.
    let all = json_of(&store_cmd(&store, &["map", "dump", "id", &ids, "--json"]));
    let all = all.as_array().expect("array");
    assert_eq!(all.len(), expected.len() + 1);
    let first = json_of(&store_cmd(
        &store,
        &["map", "getnext", "id", &ids, "--json"],
    ));
    assert_eq!(first["key"], Value::Null);
    assert_eq!(first["next_key_hex"], all[0]["key_hex"]);
    let last = all.last().unwrap()["key_hex"].as_str().unwrap().to_string();
    let end = failure_text(&store_cmd(
        &store,
        &["map", "getnext", "id", &ids, "key", "hex", &last],
    ));
    assert!(end.contains("No such file or directory"), "{end}");

    // delete, twice.
    let mut del = vec!["map", "delete", "id", &ids];
    del.extend(key);
    assert!(store_cmd(&store, &del).status.success());
    let gone = failure_text(&store_cmd(&store, &del));
    assert!(gone.contains("No such file or directory"), "{gone}");
    let gone = failure_text(&store_cmd(&store, &lk));
    assert!(gone.contains("No such file or directory"), "{gone}");

    // prog list / show: the run registered its program with its map.
    let progs = json_of(&store_cmd(&store, &["prog", "list", "--json"]));
    let progs = progs.as_array().expect("array");
    assert_eq!(progs.len(), 1, "{progs:?}");
    assert_eq!(progs[0]["name"], "xdp_counter");
    assert_eq!(progs[0]["type"], "xdp");
    assert_eq!(progs[0]["map_ids"], serde_json::json!([id]));
    let n = progs[0]["insn_cnt"].as_u64().expect("insn_cnt");
    let obj = loader::Object::parse(&std::fs::read(counter()).unwrap()).unwrap();
    let want = obj
        .programs
        .iter()
        .find(|p| p.name == "xdp_counter")
        .unwrap()
        .insns
        .len();
    assert_eq!(n as usize, want);
    assert_eq!(progs[0]["tag"].as_str().map(str::len), Some(16));
    let pid = progs[0]["id"].as_u64().unwrap().to_string();
    let one = json_of(&store_cmd(&store, &["prog", "show", "id", &pid, "--json"]));
    assert_eq!(one["name"], "xdp_counter");
    let text = String::from_utf8_lossy(&store_cmd(&store, &["prog", "show", "id", &pid]).stdout)
        .into_owned();
    assert!(
        text.starts_with(&format!("{pid}: xdp  name xdp_counter  tag ")),
        "{text}"
    );
    assert!(text.contains(&format!("map_ids {id}")), "{text}");

    // A second run in the same store adds its own maps and program.
    assert!(
        store_cmd(&store, &["run", &counter(), "--data-in", &icmp()])
            .status
            .success()
    );
    assert_eq!(
        json_of(&store_cmd(&store, &["map", "list", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        json_of(&store_cmd(&store, &["prog", "list", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn map_and_prog_commands_report_errors() {
    let missing = TestStore::new("missing");
    let e = failure_text(&store_cmd(&missing, &["map", "list"]));
    assert!(e.contains("not found") && e.contains(&missing.0), "{e}");
    assert_eq!(e.matches(&missing.0).count(), 1, "{e}");
    let e = failure_text(&store_cmd(&missing, &["prog", "list"]));
    assert!(e.contains("not found"), "{e}");
    assert!(!missing.path().exists(), "map/prog never create a store");

    let store = TestStore::new("errors");
    assert!(
        store_cmd(&store, &["run", &counter(), "--data-in", &icmp()])
            .status
            .success()
    );
    let e = failure_text(&store_cmd(&store, &["map", "dump", "id", "999"]));
    assert_eq!(e.matches("no map with id 999").count(), 1, "{e}");
    let e = failure_text(&store_cmd(&store, &["prog", "show", "id", "7"]));
    assert_eq!(e.matches("no program with id 7").count(), 1, "{e}");
    let e = failure_text(&store_cmd(&store, &["map", "show", "name", "nope"]));
    assert!(e.contains("no map named \"nope\""), "{e}");
    let e = failure_text(&store_cmd(
        &store,
        &["map", "dump", "pinned", "/sys/fs/bpf/none"],
    ));
    assert_eq!(
        e.matches("no pin at \"/sys/fs/bpf/none\"").count(),
        1,
        "{e}"
    );
    let e = failure_text(&store_cmd(
        &store,
        &["map", "lookup", "id", "1", "key", "hex", "01", "02"],
    ));
    assert!(
        e.contains("Invalid argument") && e.contains("key is 2 bytes"),
        "{e}"
    );
    let e = failure_text(&store_cmd(
        &store,
        &[
            "map", "update", "id", "1", "key", "1", "0", "0", "0", "value", "1", "bogus",
        ],
    ));
    assert!(e.contains("bogus"), "{e}");
    let e = failure_text(&store_cmd(
        &store,
        &["map", "lookup", "id", "1", "key", "hex", "zz"],
    ));
    assert!(e.contains("hex"), "{e}");
    let e = failure_text(&store_cmd(&store, &["map", "lookup", "id", "1"]));
    assert!(e.contains("key"), "{e}");
    let e = failure_text(&store_cmd(&store, &["prog", "show", "id", "42"]));
    assert!(e.contains("no program with id 42"), "{e}");
    // The store file goes away with its owner's cleanup.
    let path = store.path();
    drop(store);
    assert!(!path.exists());
}

#[test]
fn loader_options_set_types_sizes_and_rodata_before_load() {
    let obj = path_str(&bpf_progs::root().join("loader").join("options.v2.o"));
    let udp = std::fs::read(bpf_progs::packet("udp")).unwrap();
    let mac = bpf_progs::hex_encode(&udp[..6]);
    // Without a size, the map with max_entries 0 cannot be created.
    let out = run(&["run", &obj, "--data-in", &icmp(), "--type", "opt_xdp=xdp"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sized_later"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The section `xdp_legacy` is unknown: without --type there is no XDP program.
    let out = run(&[
        "run",
        &obj,
        "--data-in",
        &icmp(),
        "--map-size",
        "sized_later=16",
    ]);
    assert_eq!(out.status.code(), Some(1));
    // With the options, the program runs: cfg_mac matches the frame's destination, so
    // it returns cfg_verdict (XDP_TX here) and counts the frame in sized_later.
    let args = [
        "run",
        &obj,
        "--data-in",
        &path_str(&bpf_progs::packet("udp")),
        "--type",
        "opt_xdp=xdp",
        "--map-size",
        "sized_later=16",
        "--rodata",
        &format!("cfg_mac={mac}"),
        "--rodata",
        "cfg_verdict=03000000",
        "--repeat",
        "3",
        "--json",
    ];
    let v = json_of(&run(&args));
    assert_eq!(v["retval"], 3);
    let entries = v["maps"]["sized_later"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0]["value"], "0300000000000000",
        "created at 1, then two increments"
    );
    // A different MAC is dropped; a value of the wrong size is refused.
    let v = json_of(&run(&[
        "run",
        &obj,
        "--data-in",
        &icmp(),
        "--type",
        "opt_xdp=xdp",
        "--map-size",
        "sized_later=16",
        "--rodata",
        "cfg_mac=aabbccddeeff",
        "--json",
    ]));
    assert_eq!(v["retval"], 1, "XDP_DROP");
    let out = run(&[
        "run",
        &obj,
        "--data-in",
        &icmp(),
        "--type",
        "opt_xdp=xdp",
        "--map-size",
        "sized_later=16",
        "--rodata",
        "cfg_verdict=03",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cfg_verdict"));
}

#[test]
fn run_by_id_runs_a_program_of_the_store_on_its_maps() {
    let store = TestStore::new("byid");
    let first = json_of(&store_cmd(
        &store,
        &["run", &counter(), "--data-in", &icmp(), "--json"],
    ));
    let progs = json_of(&store_cmd(&store, &["prog", "list", "--json"]));
    let id = progs[0]["id"].as_u64().expect("program id").to_string();
    assert_eq!(progs[0]["name"], "xdp_counter");
    // A second process runs the recorded program by id, twice: it counts on the
    // same map the first run filled, and returns what the object's run returned.
    let again = json_of(&store_cmd(
        &store,
        &[
            "run",
            "--id",
            &id,
            "--data-in",
            &icmp(),
            "--repeat",
            "2",
            "--engine",
            "jit",
            "--json",
        ],
    ));
    assert_eq!(again["retval"], first["retval"]);
    let count = |doc: &serde_json::Value| {
        let v = doc["maps"]["counter_map"][0]["value"]
            .as_str()
            .expect("value");
        u32::from_str_radix(&v[..2], 16).expect("hex")
    };
    assert_eq!(count(&again), count(&first) + 2, "{first} {again}");
    let missing = store_cmd(&store, &["run", "--id", "999", "--data-in", &icmp()]);
    assert!(failure_text(&missing).contains("999"), "{missing:?}");
}

#[test]
fn run_by_id_refuses_prog_array_slots_written_by_an_object_run() {
    let store = TestStore::new("byid-tail");
    let obj = format!(
        "{}/../bpf-progs/obj/xdp_tailcall.o",
        env!("CARGO_MANIFEST_DIR")
    );
    let first = store_cmd(
        &store,
        &[
            "run",
            &obj,
            "--prog",
            "tc_entry",
            "--data-in",
            &icmp(),
            "--set",
            "jmp_table:00000000=@tc_ipv4",
        ],
    );
    assert!(first.status.success(), "{first:?}");
    let progs = json_of(&store_cmd(&store, &["prog", "list", "--json"]));
    let id = progs
        .as_array()
        .expect("array")
        .iter()
        .find(|p| p["name"] == "tc_entry")
        .and_then(|p| p["id"].as_u64())
        .expect("tc_entry id")
        .to_string();
    // The slot holds the object's program number, not a store id: refused
    // rather than tail-calling whatever store program has that id.
    let again = store_cmd(&store, &["run", "--id", &id, "--data-in", &icmp()]);
    let err = failure_text(&again);
    assert!(err.contains("jmp_table"), "{err}");
}

#[test]
fn stats_count_runs_in_the_store_for_prog_show() {
    let store = TestStore::new("stats");
    let first = json_of(&store_cmd(
        &store,
        &[
            "run",
            &counter(),
            "--data-in",
            &icmp(),
            "--repeat",
            "3",
            "--stats",
            "--json",
        ],
    ));
    assert_eq!(first["run_cnt"], 3, "{first}");
    let t1 = first["run_time_ns"].as_u64().expect("run_time_ns");
    assert!(t1 > 0, "{first}");
    let id = json_of(&store_cmd(&store, &["prog", "list", "--json"]))[0]["id"]
        .as_u64()
        .expect("program id")
        .to_string();
    // Another process adds its runs to the same program's statistics.
    let again = store_cmd(
        &store,
        &[
            "run",
            "--id",
            &id,
            "--data-in",
            &icmp(),
            "--repeat",
            "2",
            "--engine",
            "jit",
            "--stats",
        ],
    );
    let text = String::from_utf8_lossy(&again.stdout).to_string();
    assert!(again.status.success(), "{again:?}");
    let line = text
        .lines()
        .find(|l| l.starts_with("run_time_ns "))
        .unwrap_or_else(|| panic!("no statistics line in {text:?}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!((words[2], words[3]), ("run_cnt", "5"), "{line}");
    let t2: u64 = words[1].parse().expect("run_time_ns");
    assert!(t2 > t1, "{line} after {t1}");
    let show = json_of(&store_cmd(&store, &["prog", "show", "id", &id, "--json"]));
    assert_eq!(show["run_cnt"], 5, "{show}");
    assert_eq!(show["run_time_ns"], t2, "{show}");
    // Without --stats, runs are not counted and no statistics are printed.
    let quiet = json_of(&store_cmd(
        &store,
        &["run", "--id", &id, "--data-in", &icmp(), "--json"],
    ));
    assert!(quiet.get("run_cnt").is_none(), "{quiet}");
    let show = json_of(&store_cmd(&store, &["prog", "show", "id", &id, "--json"]));
    assert_eq!(show["run_cnt"], 5, "{show}");
}

// ---- BTF-formatted map entries (`map dump|lookup|getnext` with BTF) ----

/// The packets `xdp_btf_types` runs on, in order, in both runtimes.
const BTF_PACKETS: &[&str] = &["udp", "tcp_syn", "icmp", "ipv6", "ipip", "bad_ihl", "udp"];

/// Runs `xdp_btf_types` on every packet of [`BTF_PACKETS`] with `--store`.
fn btf_types_in_store(store: &TestStore) {
    let obj = path_str(&bpf_progs::object("xdp_btf_types"));
    let first = path_str(&bpf_progs::packet(BTF_PACKETS[0]));
    json_of(&store_cmd(
        store,
        &["run", &obj, "--data-in", &first, "--json"],
    ));
    let progs = json_of(&store_cmd(store, &["prog", "list", "--json"]));
    let id = progs[0]["id"].as_u64().expect("program id").to_string();
    for p in &BTF_PACKETS[1..] {
        let pkt = path_str(&bpf_progs::packet(p));
        json_of(&store_cmd(
            store,
            &["run", "--id", &id, "--data-in", &pkt, "--json"],
        ));
    }
}

/// `"formatted"` of every entry of a `map dump --json` array, by the key bytes.
fn formatted_by_key(dump: &Value) -> std::collections::BTreeMap<String, Value> {
    dump.as_array()
        .expect("a JSON array of entries")
        .iter()
        .map(|e| (e["key"].to_string(), e["formatted"].clone()))
        .collect()
}

#[test]
fn map_commands_format_entries_by_btf() {
    let store = TestStore::new("btf");
    btf_types_in_store(&store);
    let udp = std::fs::read(bpf_progs::packet("udp")).expect("udp.bin");
    // IPv4 after a 14-byte Ethernet header: protocol 17 at 14 + 9.
    assert_eq!(udp[14 + 9], 17, "udp.bin is IPv4/UDP");

    let show = json_of(&store_cmd(
        &store,
        &["map", "show", "name", "info", "--json"],
    ));
    assert!(show["btf_id"].as_u64().is_some_and(|id| id > 0), "{show}");
    let text = store_cmd(&store, &["map", "show", "name", "info"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("\tbtf_id "));

    // info[2] is the UDP slot, written by the two runs on udp.bin.
    let look = json_of(&store_cmd(
        &store,
        &[
            "map", "lookup", "name", "info", "key", "2", "0", "0", "0", "--json",
        ],
    ));
    let f = &look["formatted"];
    assert_eq!(f["key"], 2, "{look}");
    let v = &f["value"];
    assert_eq!(v["cnt"]["packets"], 2, "{v}");
    assert_eq!(v["cnt"]["bytes"], 2 * udp.len() as u64, "{v}");
    assert_eq!(v["deltas"][1], -(udp.len() as i64), "signed: {v}");
    assert_eq!(v["neg_ttl"], -i64::from(udp[14 + 8]), "{v}");
    assert_eq!(v["label"], "p17", "a NUL-terminated char array is a string");
    assert_eq!(v["raw"][1], 17, "non-printable char array: numbers: {v}");
    assert_eq!(v["seen"], true);
    assert_eq!(v["cls"], "PC_UDP", "enums by name");
    assert_eq!(
        v[""]["id"],
        u16::from_be_bytes([udp[18], udp[19]]),
        "anonymous member"
    );
    // The bytes are still there.
    assert_eq!(look["value"].as_array().map(Vec::len), Some(72));

    // Bitfields as hex strings, in the hash key.
    let flows = json_of(&store_cmd(
        &store,
        &["map", "dump", "name", "flows", "--json"],
    ));
    let keys: Vec<&Value> = flows
        .as_array()
        .expect("array")
        .iter()
        .map(|e| &e["formatted"]["key"])
        .collect();
    assert!(keys.iter().all(|k| k["version"] == "0x4"), "{flows}");
    assert!(
        keys.iter().any(|k| k["cls"] == 4),
        "IPIP: no enumerator: {flows}"
    );

    // Per-CPU values and the .bss DATASEC.
    let pcpu = json_of(&store_cmd(
        &store,
        &["map", "dump", "name", "pcpu", "--json"],
    ));
    let per_cpu = &pcpu[0]["formatted"]["values"];
    assert_eq!(per_cpu[0]["cpu"], 0);
    assert_eq!(per_cpu[0]["value"]["packets"], BTF_PACKETS.len() as u64);
    let bss = json_of(&store_cmd(
        &store,
        &["map", "dump", "name", ".bss", "--json"],
    ));
    assert_eq!(
        bss[0]["formatted"]["value"][".bss"][0]["last_len"],
        udp.len() as u64,
        "{bss}"
    );
    assert!(bss[0]["formatted"].get("key").is_none(), "no BTF key type");

    // Text: the bytes, then bpftool's block.
    let out = store_cmd(
        &store,
        &["map", "lookup", "name", "info", "key", "2", "0", "0", "0"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("key:\n02 00 00 00\nvalue:\n"), "{text}");
    assert!(
        text.contains("\n{\n    \"key\": 2,\n    \"value\": {\n"),
        "{text}"
    );
    assert!(text.contains("\"label\": \"p17\""), "{text}");
    let out = store_cmd(&store, &["map", "dump", "name", "flows"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"version\": 0x4,"),
        "bare hex in text: {text}"
    );
    assert!(text.ends_with("Found 5 elements\n"), "{text}");

    // getnext: both keys formatted.
    let next = json_of(&store_cmd(
        &store,
        &[
            "map", "getnext", "name", "info", "key", "1", "0", "0", "0", "--json",
        ],
    ));
    assert_eq!(
        next["formatted"],
        serde_json::json!({"key": 1, "next_key": 2})
    );
}

/// bpftool's `-j map dump` of one pinned map.
fn bpftool_json(args: &[&str]) -> Result<Value, String> {
    let out = Command::new("bpftool")
        .arg("-j")
        .args(args)
        .output()
        .map_err(|e| format!("bpftool: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "bpftool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("bpftool {args:?} JSON: {e}"))
}

/// A pin directory in /sys/fs/bpf, removed on drop.
struct BtfPins(PathBuf);

impl Drop for BtfPins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn map_dump_formats_btf_like_bpftool() {
    if let Err(why) = kclient::available() {
        kclient::skip("kernel comparison of BTF-formatted map dumps", &why);
        return;
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if !mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf") && l.contains(" bpf "))
    {
        kclient::skip(
            "kernel comparison of BTF-formatted map dumps",
            "/sys/fs/bpf is no bpffs",
        );
        return;
    }
    let obj = bpf_progs::object("xdp_btf_types");
    let pins = BtfPins(PathBuf::from(format!(
        "/sys/fs/bpf/xdp-runner-test-{}-btf",
        std::process::id()
    )));
    let _ = std::fs::remove_dir_all(&pins.0);
    std::fs::create_dir_all(&pins.0).expect("pin dir");
    let (progs, maps) = (pins.0.join("p"), pins.0.join("m"));
    let out = Command::new("bpftool")
        .args(["prog", "loadall"])
        .arg(&obj)
        .arg(&progs)
        .arg("pinmaps")
        .arg(&maps)
        .output()
        .expect("bpftool runs");
    assert!(out.status.success(), "loadall: {out:?}");
    for p in BTF_PACKETS {
        let out = Command::new("taskset")
            .args(["-c", "0", "bpftool", "prog", "run", "pinned"])
            .arg(progs.join("xdp_btf_types"))
            .arg("data_in")
            .arg(bpf_progs::packet(p))
            .output()
            .expect("taskset/bpftool run");
        assert!(out.status.success(), "prog run {p}: {out:?}");
    }

    let store = TestStore::new("btf-kernel");
    btf_types_in_store(&store);

    let mut compared = Vec::new();
    for entry in std::fs::read_dir(&maps).expect("pinned maps") {
        let pin = entry.expect("dir entry").path();
        let pin_s = path_str(&pin);
        let show = bpftool_json(&["map", "show", "pinned", &pin_s]).expect("map show");
        let kname = show["name"].as_str().unwrap_or_default();
        let pin_name = pin.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        let name = kernel::normalise_map_name("xdp_btf_types", pin_name, kname);
        let theirs = bpftool_json(&["map", "dump", "pinned", &pin_s]).expect("map dump");
        let ours = json_of(&store_cmd(
            &store,
            &["map", "dump", "name", &name, "--json"],
        ));
        let (theirs, ours) = (formatted_by_key(&theirs), formatted_by_key(&ours));
        assert!(!theirs.is_empty(), "{name}: the kernel's map is empty");
        assert!(
            theirs.values().all(|f| !f.is_null()),
            "{name}: bpftool formatted no entry: {theirs:?}"
        );
        assert_eq!(
            ours, theirs,
            "{name}: formatted entries differ from bpftool's"
        );

        // Text: our lookup of the first key ends with bpftool's block for it.
        let key_json: Value = serde_json::from_str(theirs.keys().next().expect("a key")).unwrap();
        let key_hex: Vec<String> = key_json
            .as_array()
            .expect("key bytes")
            .iter()
            .map(|b| {
                b.as_str()
                    .expect("0x..")
                    .trim_start_matches("0x")
                    .to_string()
            })
            .collect();
        let mut args = vec!["map", "lookup", "pinned", &pin_s, "key", "hex"];
        args.extend(key_hex.iter().map(String::as_str));
        let out = Command::new("bpftool")
            .args(&args)
            .output()
            .expect("bpftool");
        assert!(out.status.success(), "{out:?}");
        let theirs_text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut args = vec!["map", "lookup", "name", &name, "key", "hex"];
        args.extend(key_hex.iter().map(String::as_str));
        let out = store_cmd(&store, &args);
        let ours_text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            ours_text.ends_with(&theirs_text),
            "{name}: text differs\nours:\n{ours_text}\nbpftool:\n{theirs_text}"
        );
        compared.push(name);
    }
    compared.sort();
    assert_eq!(compared, [".bss", "flows", "info", "pcpu"]);
}

// ---- `bench --fill` ----

fn map_heavy() -> String {
    path_str(&bpf_progs::object("xdp_map_heavy"))
}

/// `bench` of xdp_map_probe (XDP_PASS once key 2^20-1 holds its own number, XDP_DROP
/// while it is absent) with `extra` arguments: every engine's (name, retval).
fn probe_bench(extra: &[&str]) -> (Value, Vec<(String, u64)>) {
    let (obj, pkt) = (map_heavy(), icmp());
    let mut args = vec![
        "bench",
        &obj,
        "--data-in",
        &pkt,
        "--prog",
        "xdp_map_probe",
        "--repeat",
        "10",
        "--rounds",
        "1",
        "--json",
    ];
    args.extend_from_slice(extra);
    let v = json_of(&run(&args));
    let rows = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["engine"].as_str().unwrap().to_string(),
                r["retval"].as_u64().unwrap(),
            )
        })
        .collect();
    (v, rows)
}

#[test]
fn bench_fill_writes_the_maps_of_every_engine() {
    let expect_engines: &[&str] = match kclient::available() {
        Ok(()) => &["interpreter", "jit", "kernel"],
        Err(why) => {
            kclient::skip("bench --fill kernel column", &why);
            &["interpreter", "jit"]
        }
    };
    // Filled: key 2^20-1 holds 2^20-1 in every engine's map.
    let (v, rows) = probe_bench(&["--fill", "big_map=1048576"]);
    let engines: Vec<&str> = rows.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(engines, expect_engines);
    for (engine, retval) in &rows {
        assert_eq!(*retval, 2, "{engine}: XDP_PASS after the fill");
    }
    assert_eq!(v["prog"], "xdp_map_probe");
    assert_eq!(v["repeat"], 10);
    assert_eq!(v["rounds"], 1);
    assert_eq!(v["fill"]["big_map"], 1_048_576);
    assert_eq!(
        v["packet_bytes"].as_u64().unwrap() as usize,
        std::fs::read(bpf_progs::packet("icmp")).unwrap().len()
    );
    // Not filled: the key is absent everywhere.
    let (v, rows) = probe_bench(&[]);
    assert_eq!(rows.len(), expect_engines.len());
    for (engine, retval) in &rows {
        assert_eq!(*retval, 1, "{engine}: XDP_DROP without the fill");
    }
    assert_eq!(v["fill"], serde_json::json!({}));
}

#[test]
fn bench_fill_refuses_what_the_map_cannot_hold() {
    for (fill, needle) in [
        ("stats=3", "at most 2 entries"),
        ("big_map=1048577", "at most 1048576 entries"),
        ("no_such_map=1", "big_map"),
        ("big_map", "MAP=N"),
        ("big_map=many", "bad number"),
    ] {
        let out = run(&[
            "bench",
            &map_heavy(),
            "--data-in",
            &icmp(),
            "--repeat",
            "1",
            "--rounds",
            "1",
            "--fill",
            fill,
        ]);
        assert!(!out.status.success(), "--fill {fill} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "--fill {fill}: {err}");
    }
}

// ---- `map events`: perf and ring buffer records read by another process ----

fn events_obj() -> String {
    path_str(&bpf_progs::object("xdp_events"))
}

/// The JSON objects `map events --json` printed, one per line.
fn event_lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// xdp_events' perf record for run `seq` of `packet`: its header (magic "EVNT",
/// length, captured length, sequence number, ingress ifindex 1) and 64 packet bytes.
fn expected_perf_record(packet: &[u8], seq: u32) -> String {
    let mut r = 0x4556_4e54u32.to_le_bytes().to_vec();
    r.extend((packet.len() as u16).to_le_bytes());
    r.extend(64u16.to_le_bytes());
    r.extend(seq.to_le_bytes());
    r.extend(1u32.to_le_bytes());
    r.extend(&packet[..64]);
    bpf_progs::hex_encode(&r)
}

#[test]
fn map_events_reads_perf_and_ring_records_of_a_run() {
    let store = TestStore::new("events");
    let packet = std::fs::read(bpf_progs::packet("icmp")).unwrap();
    let ran = json_of(&store_cmd(
        &store,
        &[
            "run",
            &events_obj(),
            "--data-in",
            &icmp(),
            "--repeat",
            "3",
            "--set",
            "perf_events:00000000=01000000",
            "--set",
            "perf_events:01000000=01000000",
            "--json",
        ],
    ));
    assert_eq!(ran["retval"], 2);
    // Another process reads the perf slots: 3 records each, round-robin.
    let perf = event_lines(&store_cmd(
        &store,
        &["map", "events", "name", "perf_events", "--json"],
    ));
    assert_eq!(perf.len(), 6, "{perf:?}");
    for (i, e) in perf.iter().enumerate() {
        assert_eq!(e["index"], (i % 2) as u64);
        assert_eq!(e["size"], 80);
        let seq = (i / 2) as u32 + 1;
        assert_eq!(
            e["data_hex"],
            expected_perf_record(&packet, seq),
            "record {i}"
        );
    }
    // Consumed: nothing is left.
    let again = store_cmd(&store, &["map", "events", "name", "perf_events"]);
    assert!(event_lines(&again).is_empty());
    // The ring buffer, under bpftool's name for the command, two records at a time:
    // per run the 16-byte header, then the 64-byte sample (header + 48 packet bytes).
    let first = event_lines(&store_cmd(
        &store,
        &[
            "map",
            "event_pipe",
            "name",
            "rb_events",
            "--count",
            "2",
            "--json",
        ],
    ));
    let rest = event_lines(&store_cmd(
        &store,
        &["map", "events", "name", "rb_events", "--json"],
    ));
    let ring: Vec<&Value> = first.iter().chain(&rest).collect();
    assert_eq!((first.len(), ring.len()), (2, 6));
    for (i, e) in ring.iter().enumerate() {
        let header = &expected_perf_record(&packet, (i / 2) as u32 + 1)[..32];
        let want = if i % 2 == 0 {
            header.to_string()
        } else {
            format!("{header}{}", bpf_progs::hex_encode(&packet[..48]))
        };
        assert_eq!(e["data_hex"], want, "ring record {i}");
        assert!(e.get("index").is_none());
    }
    // Text: bpftool's event_pipe layout, after a run of the stored program (on the
    // same maps, whose slots stay live).
    let progs = json_of(&store_cmd(&store, &["prog", "list", "--json"]));
    let id = progs[0]["id"].as_u64().expect("program id").to_string();
    let again = store_cmd(&store, &["run", "--id", &id, "--data-in", &icmp()]);
    assert!(again.status.success());
    let text = store_cmd(&store, &["map", "events", "name", "perf_events"]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.starts_with("== CPU: 0 index: 0 size: 80 ==\n0000: 54 4e 56 45"),
        "{text}"
    );
}

#[test]
fn map_events_waits_for_records_of_a_concurrent_run() {
    let store = TestStore::new("events-wait");
    json_of(&store_cmd(
        &store,
        &["run", &events_obj(), "--data-in", &icmp(), "--json"],
    ));
    let progs = json_of(&store_cmd(&store, &["prog", "list", "--json"]));
    let id = progs[0]["id"].as_u64().expect("program id").to_string();
    // The reader makes the slots live itself (--attach) and waits for two records.
    let mut reader = runner()
        .args([
            "map",
            "events",
            "name",
            "perf_events",
            "--attach",
            "--count",
            "2",
        ])
        .args(["--timeout", "20000", "--json", "--store", &store.0])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("reader starts");
    // Run the stored program until the reader has its records (runs before it
    // attached get -ENOENT and write nothing).
    let mut runs = 0;
    while reader.try_wait().expect("wait").is_none() && runs < 200 {
        let out = store_cmd(&store, &["run", "--id", &id, "--data-in", &icmp()]);
        assert!(out.status.success());
        runs += 1;
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = reader.wait_with_output().expect("reader ends");
    let lines = event_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    // One run wrote both: BPF_F_CURRENT_CPU (worker 0) and slot 1.
    assert_eq!(
        (lines[0]["index"].as_u64(), lines[1]["index"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(lines[0]["data_hex"], lines[1]["data_hex"]);
    // The reader cleared the slots it attached: later runs get -ENOENT again.
    let after = json_of(&store_cmd(
        &store,
        &["run", "--id", &id, "--data-in", &icmp(), "--json"],
    ));
    assert_eq!(&after["maps"]["ev_rets"][0]["value"], "feffffffffffffff");
}

#[test]
fn map_events_reports_lost_records_of_a_full_perf_ring() {
    let store = TestStore::new("events-lost");
    // 88 bytes per record in a 32 KiB ring: 372 fit, the last 8 of 380 are lost.
    json_of(&store_cmd(
        &store,
        &[
            "run",
            &events_obj(),
            "--data-in",
            &icmp(),
            "--repeat",
            "380",
            "--set",
            "perf_events:00000000=01000000",
            "--json",
        ],
    ));
    let lines = event_lines(&store_cmd(
        &store,
        &[
            "map",
            "events",
            "name",
            "perf_events",
            "--index",
            "0",
            "--json",
        ],
    ));
    assert_eq!(
        lines[0],
        serde_json::json!({"cpu": 0, "index": 0, "lost": 8})
    );
    assert_eq!(lines.len(), 1 + 372);
    assert!(lines[1..].iter().all(|l| l["size"] == 80));
    let text = store_cmd(
        &store,
        &["map", "events", "name", "perf_events", "--cpu", "0"],
    );
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("lost 8 events"), "{text}");
    // Not an event map; a slot past the end.
    let bad = store_cmd(&store, &["map", "events", "name", "ev_rets"]);
    assert!(failure_text(&bad).contains("not a perf_event_array or a ringbuf"));
    let bad = store_cmd(
        &store,
        &["map", "events", "name", "perf_events", "--index", "4"],
    );
    assert!(failure_text(&bad).contains("out of range"));
}

/// A store of another user is refused with the reason and the way out, and
/// opened with `--store-trust`; a store shared with a group at creation is 0660.
#[test]
fn stores_of_other_users_need_store_trust() {
    use std::os::unix::fs::MetadataExt;
    let store = TestStore::new("trust");
    json_of(&store_cmd(
        &store,
        &[
            "run",
            &counter(),
            "--data-in",
            &icmp(),
            "--json",
            "--store-group",
            "65534",
        ],
    ));
    let meta = std::fs::metadata(store.path()).expect("store file");
    assert_eq!(meta.mode() & 0o777, 0o660, "shared with the group");
    // Group-writable: refused until the group is trusted.
    let text = failure_text(&store_cmd(&store, &["map", "list"]));
    assert!(text.contains("writable by group"), "{text}");
    json_of(&store_cmd(
        &store,
        &["map", "list", "--json", "--store-trust", "gid:65534"],
    ));
    // The store was created by this user.
    if meta.uid() != 0 {
        println!("SKIP: not root; a store owned by another uid not tested");
        return;
    }
    let status = Command::new("chown")
        .arg("65534:65534")
        .arg(store.path())
        .status()
        .expect("chown");
    assert!(status.success());
    std::fs::set_permissions(
        store.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    for args in [
        &["map", "list"][..],
        &["prog", "list"][..],
        &["run", &counter(), "--data-in", &icmp()][..],
    ] {
        let text = failure_text(&store_cmd(&store, args));
        assert!(
            text.contains("owned by uid 65534") && text.contains("--store-trust uid:65534"),
            "{args:?}: {text}"
        );
    }
    json_of(&store_cmd(
        &store,
        &["map", "list", "--json", "--store-trust", "uid:65534"],
    ));
    json_of(&store_cmd(
        &store,
        &["prog", "list", "--json", "--store-trust", "uid:65534"],
    ));
    let text = failure_text(&store_cmd(
        &store,
        &["map", "list", "--store-trust", "uid:x"],
    ));
    assert!(text.contains("invalid store trust"), "{text}");
}

/// The slot of the first `call bpf_loop` of program `prog` in bpf-progs object `obj`.
fn bpf_loop_slot(obj: &str, prog: &str) -> usize {
    let bytes = std::fs::read(bpf_progs::object(obj)).unwrap();
    let object = loader::Object::parse(&bytes).unwrap();
    let p = object.programs.iter().find(|p| p.name == prog).unwrap();
    p.insns
        .iter()
        .position(|i| i.code == 0x85 && i.src == 0 && i.imm == 181)
        .expect("a bpf_loop call")
}

#[test]
fn a_run_over_its_step_budget_exits_with_status_1_and_names_the_pc() {
    // xdp_loop walks tcp_syn's 5 TCP options with bpf_loop: 6 callback calls, one
    // step each, plus the backward jumps the callback takes. A budget of 2 stops the
    // run at the bpf_loop call.
    let obj = path_str(&bpf_progs::object("xdp_loop"));
    let syn = path_str(&bpf_progs::packet("tcp_syn"));
    let slot = bpf_loop_slot("xdp_loop", "xdp_loop");
    for engine in ["interpreter", "jit"] {
        let base = ["run", &obj, "--data-in", &syn, "--engine", engine];
        let out = run(&[&base[..], &["--max-steps", "2"]].concat());
        assert_eq!(out.status.code(), Some(1), "{engine}: exit status");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("step budget of 2 exhausted"),
            "{engine}: {err}"
        );
        assert!(
            err.contains(&format!(" at insn {slot}\n")),
            "{engine}: {err}"
        );
        assert!(out.stdout.is_empty());
        // The default budget and a sufficient one: the program's verdict, XDP_PASS.
        for extra in [&[][..], &["--max-steps", "1000"][..]] {
            let out = run(&[&base[..], extra, &["--json"]].concat());
            assert_eq!(json_of(&out)["retval"], 2, "{engine} {extra:?}");
        }
    }
}

/// Starts `xdp-runner run --repeat <huge>` on xdp_counter, waits until it says the
/// runs started, sends `signal`, and returns its exit status, JSON output and stderr.
fn interrupt_a_long_repeat(engine: &str, signal: &str) -> (Option<i32>, Value, String) {
    use std::io::{BufRead, Read};
    let repeat = "1000000000000000";
    let mut child = runner()
        .args(["run", &counter(), "--data-in", &icmp(), "--repeat", repeat])
        .args(["--engine", engine, "--verbose", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("xdp-runner starts");
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = stderr.read_line(&mut line).unwrap();
        assert!(n > 0, "{engine}: exited before the runs started: {seen}");
        seen.push_str(&line);
        if line.starts_with("run: ") {
            break;
        }
    }
    let kill = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    // A guard against a hang only: the runs stop right after the signal.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            child.kill().ok();
            panic!("{engine}: {signal} did not stop the runs");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    stderr.read_to_string(&mut seen).unwrap();
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let doc: Value = serde_json::from_slice(&out).expect("one JSON object on stdout");
    (status.code(), doc, seen)
}

#[test]
fn sigint_and_sigterm_end_a_long_repeat_with_the_runs_done() {
    for (engine, signal, name, code) in [
        ("interpreter", "-INT", "SIGINT", 130),
        ("jit", "-INT", "SIGINT", 130),
        ("jit", "-TERM", "SIGTERM", 143),
    ] {
        let (status, doc, err) = interrupt_a_long_repeat(engine, signal);
        assert_eq!(status, Some(code), "{engine} {name}: {err}");
        let runs = doc["runs"].as_u64().expect("runs");
        assert!(runs >= 1, "{engine}: {doc}");
        assert_eq!(doc["repeat"], 1_000_000_000_000_000u64);
        assert_eq!(doc["interrupted"], name);
        assert!(
            err.contains(&format!(
                "interrupted by {name} after {runs} of 1000000000000000 runs"
            )),
            "{engine}: {err}"
        );
        // xdp_counter inserts 0 on the first run and adds 1 on every later one: the
        // map holds exactly the runs done.
        let entry = &doc["maps"]["counter_map"][0];
        let value = u32::from_str_radix(entry["value"].as_str().unwrap(), 16)
            .unwrap()
            .swap_bytes();
        assert_eq!(u64::from(value), runs - 1, "{engine}: {doc}");
        assert_eq!(doc["retval"], 3, "XDP_TX");
    }
}

/// `run --strict` refuses a program with unproven accesses (exit status 1, the log of
/// each unproven instruction with its register states) and runs a proven one.
#[test]
fn strict_run_refuses_unproven_programs() {
    let mim = path_str(&bpf_progs::root().join("obj/xdp_mim.o"));
    let out = run(&["run", &mim, "--data-in", &icmp(), "--strict"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("strict mode refuses the program"), "{err}");
    assert!(
        err.contains("; not proven:") && err.contains("R10=fp"),
        "{err}"
    );
    // Without --strict it runs.
    let out = run(&["run", &mim, "--data-in", &icmp()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["run", &counter(), "--data-in", &icmp(), "--strict"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- `replay` and `stats` ----

fn example_pcap() -> String {
    path_str(&bpf_progs::root().join("packets").join("example.pcap"))
}

/// Frames in a classic pcap file (the files `replay --out` writes).
fn pcap_frames(path: &Path) -> usize {
    let data = std::fs::read(path).expect("pcap");
    let mut at = 24;
    let mut n = 0;
    while at + 16 <= data.len() {
        let incl = u32::from_ne_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + incl;
        n += 1;
    }
    assert_eq!(at, data.len(), "{} ends at a record", path.display());
    n
}

#[test]
fn replay_prints_the_issue_keys_and_stats_reads_the_store() {
    let store = TestStore::new("replay");
    let workers = if maps::possible_cpus() >= 2 { "2" } else { "1" };
    let out_dir = temp_path("replay-out");
    let _ = std::fs::remove_dir_all(&out_dir);
    let doc = json_of(&store_cmd(
        &store,
        &[
            "replay",
            &counter(),
            "--pcap",
            &example_pcap(),
            "--workers",
            workers,
            "--engine",
            "jit",
            "--out",
            &path_str(&out_dir),
            "--json",
        ],
    ));
    for key in [
        "packets",
        "pass",
        "tx",
        "drop",
        "aborted",
        "redirect",
        "ns_per_packet",
        "pps",
        "workers",
    ] {
        assert!(doc.get(key).is_some(), "missing {key}: {doc}");
    }
    let n = |k: &str| doc[k].as_u64().unwrap_or_else(|| panic!("{k}: {doc}"));
    // example.pcap: 48 frames, one runt and one of 4000 bytes; xdp_counter bounces
    // every frame it runs (XDP_TX).
    assert_eq!(n("packets"), 48);
    assert_eq!((n("tx"), n("runt"), n("oversize")), (46, 1, 1), "{doc}");
    let verdicts: u64 = [
        "pass", "tx", "drop", "aborted", "redirect", "runt", "oversize",
    ]
    .iter()
    .map(|k| n(k))
    .sum();
    assert_eq!(verdicts, 48);
    assert_eq!(n("workers"), workers.parse::<u64>().unwrap());
    assert_eq!(n("run_cnt"), 46);
    assert!(doc["ns_per_packet"].as_f64().unwrap() > 0.0, "{doc}");
    assert_eq!(pcap_frames(&out_dir.join("tx.pcap")), 46);
    assert_eq!(pcap_frames(&out_dir.join("skipped.pcap")), 2);
    for f in ["pass", "drop", "aborted", "redirect"] {
        assert_eq!(pcap_frames(&out_dir.join(format!("{f}.pcap"))), 0, "{f}");
    }
    // The counter's map and the workers' counters stay in the store for others.
    let stats = json_of(&store_cmd(&store, &["stats", "--json"]));
    let planes = stats["dataplanes"].as_array().expect("dataplanes");
    assert_eq!(planes.len(), 1, "{stats}");
    assert_eq!(planes[0]["prog"], "xdp_counter");
    assert_eq!(planes[0]["total"]["packets"], 48);
    assert_eq!(planes[0]["total"]["tx"], 46);
    assert_eq!(planes[0]["run_cnt"], 46);
    let per = planes[0]["workers"].as_array().expect("workers");
    assert_eq!(per.len() as u64, n("workers"));
    assert_eq!(
        per.iter()
            .map(|w| w["packets"].as_u64().unwrap())
            .sum::<u64>(),
        48
    );
    let text = store_cmd(&store, &["stats"]);
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("xdp_counter") && text.lines().any(|l| l.trim_start().starts_with("all")),
        "{text}"
    );
    let text = String::from_utf8(store_cmd(&store, &["map", "dump", "name", "counter_map"]).stdout)
        .unwrap();
    assert!(!text.trim().is_empty(), "counter_map is in the store");
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[test]
fn replay_errors_are_clear() {
    let slots = maps::possible_cpus();
    let too_many = (slots + 1).to_string();
    let err = failure_text(&run(&[
        "replay",
        &counter(),
        "--pcap",
        &example_pcap(),
        "--workers",
        &too_many,
    ]));
    assert!(err.contains("per-CPU slots"), "{err}");
    let err = failure_text(&run(&["replay", &counter(), "--pcap", &icmp()]));
    assert!(err.contains("neither a pcap nor a pcapng"), "{err}");
    let err = failure_text(&run(&["replay", &counter(), "--pcap", "/nonexistent.pcap"]));
    assert!(err.contains("cannot open /nonexistent.pcap"), "{err}");
    let store = TestStore::new("nostats");
    let _ = store_cmd(&store, &["run", &counter(), "--data-in", &icmp()]);
    let err = failure_text(&store_cmd(&store, &["stats"]));
    assert!(err.contains("no data plane"), "{err}");
}

#[test]
fn ambiguous_map_names_are_refused_with_their_ids() {
    let store = TestStore::new("ambiguous");
    let run_once = || {
        let out = store_cmd(&store, &["run", &counter(), "--data-in", &icmp()]);
        assert!(out.status.success(), "{out:?}");
    };
    run_once();
    // One map of that name: the name is a handle.
    let out = store_cmd(&store, &["map", "dump", "name", "counter_map"]);
    assert!(out.status.success(), "{out:?}");
    run_once();
    let list = json_of(&store_cmd(&store, &["map", "list", "--json"]));
    let ids: Vec<u64> = list
        .as_array()
        .expect("array")
        .iter()
        .filter(|m| m["name"] == "counter_map")
        .map(|m| m["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    let e = failure_text(&store_cmd(&store, &["map", "dump", "name", "counter_map"]));
    assert!(e.contains(&format!("{ids:?}")), "ids {ids:?} not in {e}");
    assert!(e.contains("open one by id"), "{e}");
    // Each is still reached by id.
    for id in &ids {
        let id = id.to_string();
        let out = store_cmd(&store, &["map", "dump", "id", &id]);
        assert!(out.status.success(), "{out:?}");
    }
}

#[test]
fn errors_under_json_are_json_objects_on_stdout() {
    let store = TestStore::new("jsonerr");
    let out = store_cmd(&store, &["run", &counter(), "--data-in", &icmp()]);
    assert!(out.status.success(), "{out:?}");
    for args in [
        &["map", "dump", "id", "999", "--json"][..],
        &["prog", "show", "id", "42", "--json"][..],
    ] {
        let out = store_cmd(&store, args);
        assert!(!out.status.success(), "{args:?}: {out:?}");
        assert!(out.stderr.is_empty(), "{args:?}: stderr {:?}", out.stderr);
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {:?}", out.stdout));
        let msg = v["error"].as_str().expect("an error string");
        assert!(msg.contains("999") || msg.contains("42"), "{v}");
        assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
    }
    let out = run(&["run", "/nonexistent.o", "--data-in", &icmp(), "--json"]);
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON error of run");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|m| m.contains("/nonexistent.o")),
        "{v}"
    );
    // Without --json, errors stay on stderr.
    let out = run(&["run", "/nonexistent.o", "--data-in", &icmp()]);
    assert!(out.stdout.is_empty() && !out.stderr.is_empty(), "{out:?}");
}

/// The lines of a `data_out -` hex dump (what precedes "Return value").
fn dump_lines(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .take_while(|l| !l.starts_with("Return value"))
        .map(str::to_string)
        .collect()
}

#[test]
fn data_out_dash_prints_a_hex_dump_as_bpftool_does() {
    let dir = temp_path("dash-cwd");
    std::fs::create_dir_all(&dir).unwrap();
    let out = runner()
        .current_dir(&dir)
        .args(["run", &counter(), "--data-in", &icmp(), "--data-out", "-"])
        .output()
        .expect("xdp-runner starts");
    let written_dash = dir.join("-").exists();
    // Under --json the document carries the packet (and ctx_out when asked).
    let json_out = runner()
        .current_dir(&dir)
        .args(["run", &counter(), "--data-in", &icmp(), "--json"])
        .args(["--data-out", "-", "--ctx-out", "-"])
        .output()
        .expect("xdp-runner starts");
    let written_dash_json = dir.join("-").exists();
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.status.success(), "{out:?}");
    assert!(!written_dash, "--data-out - wrote a file named -");
    assert!(
        !written_dash_json,
        "--json --data-out - wrote a file named -"
    );
    let doc = json_of(&json_out);
    assert!(
        doc["data_out"].is_string() && doc["ctx_out"].is_string(),
        "{doc}"
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.lines()
            .last()
            .unwrap_or("")
            .starts_with("Return value: "),
        "{text}"
    );
    let lines = dump_lines(&out.stdout);
    // The dump holds the output packet, 16 bytes a row, offsets in hex.
    let v = json_of(&run(&["run", &counter(), "--data-in", &icmp(), "--json"]));
    let packet = bpf_progs::hex_decode(v["data_out"].as_str().unwrap()).unwrap();
    assert_eq!(lines.len(), packet.len().div_ceil(16), "{text}");
    let mut hex = String::new();
    for (i, l) in lines.iter().enumerate() {
        let (off, rest) = l.split_once('\t').expect("offset and tab");
        assert_eq!(off, format!("{:07x}", i * 16));
        let (h, _) = rest.split_once("| ").expect("hex | ascii");
        hex.extend(h.chars().filter(|c| !c.is_whitespace()));
    }
    assert_eq!(hex, bpf_progs::hex_encode(&packet));

    // The kernel's bpftool prints the same lines for the same run.
    if let Err(why) = kclient::available() {
        kclient::skip("data_out - against bpftool", &why);
        return;
    }
    let pin = format!("/sys/fs/bpf/xdp-runner-test-dash-{}", std::process::id());
    let load = Command::new("bpftool")
        .args(["prog", "load", &counter(), &pin])
        .output()
        .expect("bpftool");
    assert!(load.status.success(), "{load:?}");
    let k = Command::new("bpftool")
        .args([
            "prog",
            "run",
            "pinned",
            &pin,
            "data_in",
            &icmp(),
            "data_out",
            "-",
        ])
        .output()
        .expect("bpftool");
    std::fs::remove_file(&pin).ok();
    assert!(k.status.success(), "{k:?}");
    assert_eq!(dump_lines(&k.stdout), lines);
}
