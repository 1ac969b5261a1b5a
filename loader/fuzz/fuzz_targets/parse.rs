//! `Object::parse_with` on arbitrary bytes: it must return, never panic.
//!
//! Two option sets: CO-RE against a small fixed target BTF (the `.BTF` of the
//! core_xdp fixture, which holds the kernel structs it uses), and an XDP-only
//! load with a forced section type, a map size and a `.rodata` value. Neither
//! reads /sys/kernel/btf/vmlinux, so runs do not depend on the host kernel.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use loader::{LoadOptions, Object, ProgramFilter, ProgramType};

fn options() -> &'static [LoadOptions; 2] {
    static OPTS: OnceLock<[LoadOptions; 2]> = OnceLock::new();
    OPTS.get_or_init(|| {
        let target = loader::options::target_btf_from_bytes(include_bytes!(
            "../../../bpf-progs/loader/core_xdp.v2.o"
        ))
        .expect("fixture BTF");
        [
            LoadOptions {
                system_btf: None,
                ..LoadOptions::with_target_btf(target)
            },
            LoadOptions {
                program_types: vec![("xdp_legacy".into(), ProgramType::Xdp)],
                programs: ProgramFilter::Types(vec![ProgramType::Xdp]),
                max_entries: vec![("sized_later".into(), 16)],
                rodata: vec![("cfg_verdict".into(), vec![1, 0, 0, 0])],
                ..LoadOptions::without_target_btf()
            },
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    for opts in options() {
        if let Ok(mut obj) = Object::parse_with(data, opts) {
            // Touch the results the way the runtime does.
            for p in &obj.programs {
                let _ = obj.program(&p.name);
                let total: usize = p.subprogs.iter().map(|s| s.len).sum();
                assert_eq!(total, p.insns.len());
                for poisoned in &p.core_poisoned {
                    assert!(poisoned.insn < p.insns.len());
                }
            }
            for m in &obj.maps {
                let _ = obj.map_index(&m.name);
            }
            // The first variable of each name is the one set by name.
            let globals = obj.globals.clone();
            for (i, g) in globals.iter().enumerate() {
                if globals[..i].iter().any(|o| o.name == g.name) {
                    continue;
                }
                let size = g.size as usize;
                obj.set_global(&g.name, &vec![0x5a; size]).expect("a listed global can be set");
            }
        }
    }
});
