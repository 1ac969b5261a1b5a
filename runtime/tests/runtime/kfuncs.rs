//! Kfuncs (issue 15): the bpf-progs programs calling them, in both engines, against
//! the kernel (live where bpf(2) is permitted, else its recorded answers); loader
//! errors naming a kfunc the runtime does not implement.

use super::jit::Engine;
use bpf_progs::Cpu;

fn compare_object(object: &str) {
    let cases: Vec<bpf_progs::Case> = bpf_progs::cases()
        .iter()
        .filter(|c| c.object == object)
        .copied()
        .collect();
    assert!(!cases.is_empty(), "no cases for {object}");
    for cpu in [Cpu::V2, Cpu::V3] {
        let failures = super::compare_cases(&cases, cpu, &[Engine::Interpreter, Engine::Jit]);
        assert!(
            failures.is_empty(),
            "{} mismatches:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

#[test]
fn open_coded_iterators_match_the_kernel() {
    compare_object("xdp_iter");
}

#[test]
fn conntrack_matches_the_kernel() {
    // The kernel's conntrack kfuncs need nf_conntrack (built in or loaded).
    if kclient::available().is_ok() && !std::path::Path::new("/sys/module/nf_conntrack").exists() {
        kclient::skip(
            "xdp_conntrack in the kernel",
            "nf_conntrack is not loaded (modprobe nf_conntrack)",
        );
        let case = bpf_progs::cases()
            .iter()
            .find(|c| c.object == "xdp_conntrack")
            .unwrap();
        let object = bpf_progs::object("xdp_conntrack");
        for packet in case.packets {
            let data = std::fs::read(bpf_progs::packet(packet)).unwrap();
            let run =
                |e| super::jit::run_engine(e, &object, case.prog, &data, 1, &[], &[]).unwrap();
            let (i, j) = (run(Engine::Interpreter), run(Engine::Jit));
            assert!(super::diff(packet, ("jit", &j), ("interpreter", &i)).is_empty());
        }
        return;
    }
    compare_object("xdp_conntrack");
}

#[test]
fn dynptrs_over_the_frame_match_the_kernel() {
    compare_object("xdp_dynptr");
}

/// A kfunc the runtime does not implement: the program is refused with an error naming
/// it (the kernel's would load it), at the call's slot.
#[test]
fn unimplemented_kfunc_is_named() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bpf-progs/loader/kfunc.v2.o");
    let object = loader::Object::parse(&std::fs::read(&path).unwrap()).unwrap();
    let store = maps::Store::anonymous(Default::default()).unwrap();
    let loaded = runtime::LoadedObject::load(&object, &store).unwrap();
    let err = loaded
        .program_index(Some("kfunc_prog"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("kfunc bpf_rcu_read_lock is not implemented") && err.contains("insn 0"),
        "{err}"
    );
}

/// The XDP metadata kfuncs: the kernel loads their callers only bound to a device, and
/// cannot test-run those; the runtime answers as a device without RX metadata (the
/// kernel's generic versions: -EOPNOTSUPP, outputs untouched), in both engines.
#[test]
fn xdp_metadata_kfuncs_answer_eopnotsupp() {
    let object = bpf_progs::object("xdp_metadata");
    let data = std::fs::read(bpf_progs::packet("udp.bin")).unwrap();
    const EOPNOTSUPP: i64 = -95;
    // (return, preset output(s)) as the program lays them out in meta_out.
    let want: [i64; 8] = [
        EOPNOTSUPP, 0x1111, EOPNOTSUPP, 0x2222, 0x3333, EOPNOTSUPP, 0x4444, 0x5555,
    ];
    for engine in [Engine::Interpreter, Engine::Jit] {
        let out = super::jit::run_engine(engine, &object, "xdp_metadata", &data, 1, &[], &[])
            .unwrap_or_else(|e| panic!("{}: {e}", engine.name()));
        assert_eq!(out.retval, 2, "{}", engine.name());
        let got: Vec<i64> = out.maps["meta_out"]
            .iter()
            .map(|(_, v)| i64::from_ne_bytes(v[0][..8].try_into().unwrap()))
            .collect();
        assert_eq!(got, want, "{}", engine.name());
    }
    // What the kernel says of the same object in a test run.
    if !kclient::require("xdp_metadata in the kernel") {
        return;
    }
    let pin = format!("/sys/fs/bpf/xdp_kfunc_md_{}", std::process::id());
    let out = std::process::Command::new("bpftool")
        .args(["-d", "prog", "load"])
        .arg(&object)
        .arg(&pin)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&pin);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the kernel loaded xdp_metadata unbound"
    );
    assert!(
        log.contains("metadata kfuncs require device-bound program"),
        "{log}"
    );
}

/// The frame to run `i`-th, given the frame the previous run left (None: stop).
type NextFrame<'a> = &'a mut dyn FnMut(usize, Option<&[u8]>) -> Option<Vec<u8>>;

/// Runs `frames` in order through one load of `object` (one store, so one SYN cookie
/// secret) in `engine`, after `sets`; returns each return value and frame.
fn run_in_one_store(
    engine: Engine,
    object: &std::path::Path,
    prog: &str,
    sets: &[(&str, &[u8], &[u8])],
    frames: NextFrame<'_>,
) -> Vec<(u64, Vec<u8>)> {
    use runtime::jit::{JitObject, JitOptions};
    let obj = loader::Object::parse(&std::fs::read(object).unwrap()).unwrap();
    let store = maps::Store::anonymous(maps::StoreOptions::default()).unwrap();
    let loaded = runtime::LoadedObject::load(&obj, &store).unwrap();
    for (map, k, v) in sets {
        loaded.update_entry(map, k, v, 0).unwrap();
    }
    let index = loaded.program_index(Some(prog)).unwrap();
    let jit = (engine == Engine::Jit)
        .then(|| JitObject::compile(&loaded, &JitOptions::default()).unwrap());
    let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut i = 0;
    while let Some(frame) = frames(i, out.last().map(|(_, f)| f.as_slice())) {
        let mut pkt = runtime::Packet::new(&frame).unwrap();
        let mut vm = runtime::Vm::new(0);
        let ret = match &jit {
            Some(j) => j.run_repeat(&mut vm, index, &mut pkt, 1),
            None => loaded.run_repeat(&mut vm, index, &mut pkt, 1),
        }
        .unwrap_or_else(|t| panic!("{}: trap {t}", engine.name()))
        .0;
        out.push((ret, pkt.data_with_meta().to_vec()));
        i += 1;
    }
    out
}

/// The client's ACK answering `synack` (the SYN-ACK of tcp_syn.bin): seq = ISN + 1,
/// ack = cookie + 1 (+ `skew`), no options; checksums are not checked by the checker.
fn ack_for(synack: &[u8], skew: u32) -> Vec<u8> {
    let mut f = synack[..54].to_vec();
    // Ethernet and IPv4 addresses, TCP ports back to the client's direction.
    let (a, b) = (synack[0..6].to_vec(), synack[6..12].to_vec());
    f[0..6].copy_from_slice(&b);
    f[6..12].copy_from_slice(&a);
    f[16..18].copy_from_slice(&40u16.to_be_bytes());
    let (s, d) = (synack[26..30].to_vec(), synack[30..34].to_vec());
    f[26..30].copy_from_slice(&d);
    f[30..34].copy_from_slice(&s);
    let (sp, dp) = (synack[34..36].to_vec(), synack[36..38].to_vec());
    f[34..36].copy_from_slice(&dp);
    f[36..38].copy_from_slice(&sp);
    let cookie = u32::from_be_bytes(synack[38..42].try_into().unwrap());
    let ack = u32::from_be_bytes(synack[42..46].try_into().unwrap());
    f[38..42].copy_from_slice(&ack.to_be_bytes());
    f[42..46].copy_from_slice(&cookie.wrapping_add(1).wrapping_add(skew).to_be_bytes());
    f[46] = 5 << 4;
    f[47] = 0x10; // ACK
    f
}

/// The SYN-ACK with what depends on the secret and the clock masked: the cookie
/// (sequence number), the TCP checksum, and the timestamp's clock bits (its low 6
/// bits encode the options and stay).
fn synack_structure(f: &[u8]) -> Vec<u8> {
    let mut s = f.to_vec();
    if s.len() >= 66 {
        s[38..42].fill(0);
        s[50..52].fill(0);
        s[62..65].fill(0);
        s[65] &= 0x3f;
    }
    s
}

/// Linux's xdp_synproxy_kern (adapted, bpf-progs/src-c/xdp_synproxy.c): a SYN gets the
/// kernel's SYN-ACK layout (74 bytes: lengths, flags, options, addresses equal; the
/// cookie differs by secret), the ACK carrying the runtime's own cookie passes, one
/// carrying another number is dropped, as the kernel does with its cookies.
#[test]
fn synproxy_answers_syn_and_accepts_its_cookie() {
    let object = bpf_progs::object("xdp_synproxy");
    let syn = std::fs::read(bpf_progs::packet("tcp_syn.bin")).unwrap();
    let port80: &[u8] = &80u16.to_ne_bytes();
    let key0: &[u8] = &0u32.to_ne_bytes();
    let sets = [("allowed_ports", key0, port80)];
    let mut ours = Vec::new();
    for engine in [Engine::Interpreter, Engine::Jit] {
        let runs = run_in_one_store(
            engine,
            &object,
            "syncookie_xdp",
            &sets,
            &mut |i, prev| match i {
                0 => Some(syn.clone()),
                1 => Some(ack_for(prev.unwrap(), 0)),
                2 => None,
                _ => None,
            },
        );
        let (ret, synack) = &runs[0];
        assert_eq!(*ret, 3, "{}: XDP_TX", engine.name());
        assert_eq!(synack.len(), 74, "{}", engine.name());
        assert_eq!(
            runs[1].0,
            2,
            "{}: the ACK with our cookie passes",
            engine.name()
        );
        let bad = run_in_one_store(
            engine,
            &object,
            "syncookie_xdp",
            &sets,
            &mut |i, prev| match i {
                0 => Some(syn.clone()),
                1 => Some(ack_for(prev.unwrap(), 1)),
                _ => None,
            },
        );
        assert_eq!(bad[1].0, 1, "{}: another cookie is dropped", engine.name());
        ours.push(synack.clone());
    }
    assert_eq!(synack_structure(&ours[0]), synack_structure(&ours[1]));
    if !kclient::require("xdp_synproxy in the kernel") {
        return;
    }
    let ksets = vec![("allowed_ports".to_string(), key0.to_vec(), port80.to_vec())];
    let k = kclient::bpftool::run(&object, "syncookie_xdp", &syn, 1, &ksets).unwrap();
    assert_eq!(k.retval, 3);
    assert_eq!(
        bpf_progs::hex_encode(&synack_structure(&ours[0])),
        bpf_progs::hex_encode(&synack_structure(&k.data_out)),
        "SYN-ACK structure (cookie, TCP checksum, timestamp clock masked)"
    );
    // The kernel accepts its own cookie and drops another, as the runtime does.
    let ack = kclient::bpftool::run(
        &object,
        "syncookie_xdp",
        &ack_for(&k.data_out, 0),
        1,
        &ksets,
    )
    .unwrap();
    assert_eq!(ack.retval, 2, "the kernel's ACK with its cookie");
    let bad = kclient::bpftool::run(
        &object,
        "syncookie_xdp",
        &ack_for(&k.data_out, 1),
        1,
        &ksets,
    )
    .unwrap();
    assert_eq!(bad.retval, 1, "the kernel's ACK with another cookie");
}

/// A program in the kernel's format, as `BPF_PROG_LOAD` gets it under the shim: its
/// kfunc calls carry BTF ids of the running kernel. `stored::register` resolves them
/// by name, the store keeps the runtime's ids, and the program runs from the store in
/// both engines: bpf_for over [0, 3) counts 3.
#[test]
fn kernel_format_kfunc_calls_resolve_through_the_kernels_btf() {
    use isa::opcode::{BPF_PSEUDO_KFUNC_CALL, CALL};
    let Ok(bytes) = std::fs::read(loader::options::SYSTEM_BTF_PATH) else {
        println!("SKIP: {} is not readable", loader::options::SYSTEM_BTF_PATH);
        return;
    };
    let btf = loader::btf::Btf::parse(&bytes).unwrap();
    let id = |name: &str| {
        btf.find_by_name_kind(name, loader::btf::BTF_KIND_FUNC)
            .unwrap() as i32
    };
    let kcall = |name: &str| isa::RawInsn::new(CALL, 0, BPF_PSEUDO_KFUNC_CALL, 0, id(name));
    let r = |code, dst, src, off, imm| isa::RawInsn::new(code, dst, src, off, imm);
    const MOV_X: u8 = 0xbf;
    const MOV_K: u8 = 0xb7;
    const ADD_K: u8 = 0x07;
    const JEQ_K: u8 = 0x15;
    const JA: u8 = 0x05;
    let insns = vec![
        r(MOV_X, 1, 10, 0, 0),
        r(ADD_K, 1, 0, 0, -8),
        r(MOV_K, 2, 0, 0, 0),
        r(MOV_K, 3, 0, 0, 3),
        kcall("bpf_iter_num_new"),
        r(MOV_K, 6, 0, 0, 0),
        // loop: r0 = next(&it); if !r0 goto end; r6++; goto loop
        r(MOV_X, 1, 10, 0, 0),
        r(ADD_K, 1, 0, 0, -8),
        kcall("bpf_iter_num_next"),
        r(JEQ_K, 0, 0, 2, 0),
        r(ADD_K, 6, 0, 0, 1),
        r(JA, 0, 0, -6, 0),
        r(MOV_X, 1, 10, 0, 0),
        r(ADD_K, 1, 0, 0, -8),
        kcall("bpf_iter_num_destroy"),
        r(MOV_X, 0, 6, 0, 0),
        r(0x95, 0, 0, 0, 0),
    ];
    let store = maps::Store::anonymous(maps::StoreOptions::default()).unwrap();
    let empty = runtime::MapTable::new(Vec::new());
    let def = runtime::stored::program_def("iter_raw", 6, &insns, &empty);
    let prog_id = runtime::stored::register(&store, &def, false).unwrap();
    let stored = runtime::stored::raw_insns(&store.program_insns(prog_id).unwrap());
    assert_eq!(
        stored[4].imm,
        runtime::kfuncs::id_of("bpf_iter_num_new").unwrap()
    );
    let (loaded, index) = runtime::LoadedObject::from_store(&store, prog_id).unwrap();
    let data = std::fs::read(bpf_progs::packet("udp.bin")).unwrap();
    for engine in [Engine::Interpreter, Engine::Jit] {
        let mut pkt = runtime::Packet::new(&data).unwrap();
        let mut vm = runtime::Vm::new(0);
        let ret = match engine {
            Engine::Jit => {
                let jit = runtime::jit::JitObject::compile(&loaded, &Default::default()).unwrap();
                jit.run_repeat(&mut vm, index, &mut pkt, 1)
            }
            _ => loaded.run_repeat(&mut vm, index, &mut pkt, 1),
        };
        assert_eq!(ret.unwrap().0, 3, "{}", engine.name());
    }
    // A kernel function the runtime does not implement is named.
    let mut bad = insns.clone();
    bad[4] = kcall("bpf_rcu_read_lock");
    let def = runtime::stored::program_def("rcu_raw", 6, &bad, &empty);
    let err = runtime::stored::register(&store, &def, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("kfunc bpf_rcu_read_lock is not implemented"),
        "{err}"
    );
}

/// bpf_dynptr_slice_rdwr, which Linux 6.18 does not let an XDP program loaded for a
/// test run call ("bpf_dynptr_slice_rdwr() is not allowed"): over the linear part it
/// returns a pointer into the frame (writes through it change the frame), past the end
/// NULL, as the kernel's kfunc does. A program in the kernel's format, in both engines.
#[test]
fn dynptr_slice_rdwr_points_into_the_frame() {
    use isa::opcode::{BPF_PSEUDO_KFUNC_CALL, CALL};
    let Ok(bytes) = std::fs::read(loader::options::SYSTEM_BTF_PATH) else {
        println!("SKIP: {} is not readable", loader::options::SYSTEM_BTF_PATH);
        return;
    };
    let btf = loader::btf::Btf::parse(&bytes).unwrap();
    let id = |name: &str| {
        btf.find_by_name_kind(name, loader::btf::BTF_KIND_FUNC)
            .unwrap() as i32
    };
    let kcall = |name: &str| isa::RawInsn::new(CALL, 0, BPF_PSEUDO_KFUNC_CALL, 0, id(name));
    let r = |code, dst, src, off, imm| isa::RawInsn::new(code, dst, src, off, imm);
    const MOV_X: u8 = 0xbf;
    const MOV_K: u8 = 0xb7;
    const ADD_K: u8 = 0x07;
    const JEQ_K: u8 = 0x15;
    const JNE_K: u8 = 0x55;
    const STB: u8 = 0x72;
    let insns = vec![
        r(MOV_X, 6, 1, 0, 0),
        // bpf_dynptr_from_xdp(ctx, 0, fp - 16)
        r(MOV_X, 1, 6, 0, 0),
        r(MOV_K, 2, 0, 0, 0),
        r(MOV_X, 3, 10, 0, 0),
        r(ADD_K, 3, 0, 0, -16),
        kcall("bpf_dynptr_from_xdp"),
        // p = bpf_dynptr_slice_rdwr(fp - 16, 6, NULL, 6); if !p return 0
        r(MOV_X, 1, 10, 0, 0),
        r(ADD_K, 1, 0, 0, -16),
        r(MOV_K, 2, 0, 0, 6),
        r(MOV_K, 3, 0, 0, 0),
        r(MOV_K, 4, 0, 0, 6),
        kcall("bpf_dynptr_slice_rdwr"),
        r(JNE_K, 0, 0, 2, 0),
        r(MOV_K, 0, 0, 0, 0),
        r(0x95, 0, 0, 0, 0),
        // p[5] = 0xbb
        r(STB, 0, 0, 5, 0xbb),
        // bpf_dynptr_slice_rdwr(fp - 16, 1 << 12, NULL, 6) past the end: NULL -> 2, else 3
        r(MOV_X, 1, 10, 0, 0),
        r(ADD_K, 1, 0, 0, -16),
        r(MOV_K, 2, 0, 0, 1 << 12),
        r(MOV_K, 3, 0, 0, 0),
        r(MOV_K, 4, 0, 0, 6),
        kcall("bpf_dynptr_slice_rdwr"),
        r(JEQ_K, 0, 0, 2, 0),
        r(MOV_K, 0, 0, 0, 3),
        r(0x95, 0, 0, 0, 0),
        r(MOV_K, 0, 0, 0, 2),
        r(0x95, 0, 0, 0, 0),
    ];
    let store = maps::Store::anonymous(maps::StoreOptions::default()).unwrap();
    let empty = runtime::MapTable::new(Vec::new());
    let def = runtime::stored::program_def("slice_rdwr", 6, &insns, &empty);
    let prog_id = runtime::stored::register(&store, &def, false).unwrap();
    let (loaded, index) = runtime::LoadedObject::from_store(&store, prog_id).unwrap();
    let data = std::fs::read(bpf_progs::packet("udp.bin")).unwrap();
    for engine in [Engine::Interpreter, Engine::Jit] {
        let mut pkt = runtime::Packet::new(&data).unwrap();
        let mut vm = runtime::Vm::new(0);
        let ret = match engine {
            Engine::Jit => {
                let jit = runtime::jit::JitObject::compile(&loaded, &Default::default()).unwrap();
                jit.run_repeat(&mut vm, index, &mut pkt, 1)
            }
            _ => loaded.run_repeat(&mut vm, index, &mut pkt, 1),
        };
        assert_eq!(ret.unwrap().0, 2, "{}", engine.name());
        let out = pkt.data_with_meta();
        let mut want = data.clone();
        want[11] = 0xbb;
        assert_eq!(
            out,
            &want[..],
            "{}: the source MAC's last byte",
            engine.name()
        );
    }
}
