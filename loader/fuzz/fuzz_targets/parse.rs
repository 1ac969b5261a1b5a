//! `Object::parse` on arbitrary bytes: it must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(obj) = loader::Object::parse(data) {
        // Touch the results the way the runtime does.
        for p in &obj.programs {
            let _ = obj.program(&p.name);
            let total: usize = p.subprogs.iter().map(|s| s.len).sum();
            assert_eq!(total, p.insns.len());
        }
        for m in &obj.maps {
            let _ = obj.map_index(&m.name);
        }
    }
});
