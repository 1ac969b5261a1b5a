//! Records the kernel's answers to every bpf-progs case into `recorded/NAME.json`
//! (`bpf_progs::recorded`). Needs root (or CAP_BPF), bpftool and a bpffs:
//!
//! ```sh
//! cargo run -p bpf-progs --bin record-kernel-answers [OBJECT...]
//! ```
//!
//! With object names, only those are recorded. Where the `-mcpu=v1`/`v3` builds
//! exist, the kernel's answers for them are checked to be the `v2` build's, since
//! tests without the kernel compare all three builds with the `v2` recording.

use std::collections::BTreeSet;
use std::process::ExitCode;

use bpf_progs::{recorded, Cpu};

fn main() -> ExitCode {
    if let Err(why) = kclient::available() {
        eprintln!("cannot use the kernel here: {why}");
        return ExitCode::FAILURE;
    }
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    let objects: BTreeSet<&str> = bpf_progs::cases()
        .iter()
        .map(|c| c.object)
        .filter(|o| wanted.is_empty() || wanted.iter().any(|w| w == o))
        .collect();
    let mut failed = false;
    for object in objects {
        let rec = match recorded::record(object) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{object}: {e}");
                failed = true;
                continue;
            }
        };
        // The other builds must get the same answers from the kernel.
        for case in bpf_progs::cases().iter().filter(|c| c.object == object) {
            for cpu in [Cpu::V1, Cpu::V3] {
                let Some(path) = bpf_progs::object_for(object, cpu) else {
                    continue;
                };
                for packet in case.packets {
                    let v2 = rec.runs.iter().find(|r| r.is_for(case, packet));
                    match (recorded::live(case, packet, &path), v2) {
                        (Ok(other), Some(v2))
                            if other.retval == v2.retval
                                && bpf_progs::hex_encode(&other.data_out) == v2.data_out => {}
                        (other, _) => {
                            let other =
                                other.map(|r| (r.retval, bpf_progs::hex_encode(&r.data_out)));
                            eprintln!(
                                "{} [-mcpu={}]: the kernel's answer differs from the v2 build's: {other:?}",
                                case.label(packet),
                                cpu.as_str()
                            );
                            failed = true;
                        }
                    }
                }
            }
        }
        let path = recorded::path(object);
        let text = serde_json::to_string_pretty(&rec).expect("json") + "\n";
        if let Err(e) = std::fs::create_dir_all(path.parent().expect("recorded/"))
            .and_then(|()| std::fs::write(&path, text))
        {
            eprintln!("{}: {e}", path.display());
            failed = true;
            continue;
        }
        println!("{}: {} runs", path.display(), rec.runs.len());
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
