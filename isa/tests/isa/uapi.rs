//! `isa::uapi` and `isa::helpers` against the system's kernel headers: a C file
//! printing the header's value of every constant, the offset of every `union
//! bpf_attr` member and every helper of `__BPF_FUNC_MAPPER`, compiled with `cc`.
//! Without `cc` or `<linux/bpf.h>` the test prints `SKIP:` (and fails when
//! `XDP_REQUIRE_ORACLE=1`, as in CI).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use isa::uapi;

/// The C member for a `FIELDS` name: lower case; `XDP_IFINDEX` of the link info is the
/// `xdp.ifindex` of its union.
fn c_member(prefix: &str, name: &str) -> String {
    match name {
        "XDP_IFINDEX" => "xdp.ifindex".to_string(),
        _ => format!("{prefix}{}", name.to_lowercase()),
    }
}

/// The name of an offset in the C program's output (no spaces).
fn offset_key(ctype: &str, member: &str) -> String {
    format!("{}.{member}", ctype.replace(' ', "_"))
}

/// The C program: one line per value, `kind name value`.
fn c_source() -> String {
    let mut c = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <linux/bpf.h>\n\
         static int helper(const char *name, int id) { return printf(\"helper %s %d\\n\", name, id); }\n\
         int main(void) {\n\
         #ifdef ___BPF_FUNC_MAPPER\n\
         #define FN(x, id, ...) helper(#x, id);\n\
         ___BPF_FUNC_MAPPER(FN)\n\
         #else\n\
         #define FN(x) helper(#x, BPF_FUNC_##x)\n\
         int printed[] = { __BPF_FUNC_MAPPER(FN) };\n(void)printed;\n\
         #endif\n",
    );
    for (_, list) in uapi::all_constants() {
        for (name, _) in list {
            writeln!(
                c,
                "printf(\"const {name} %llu\\n\", (unsigned long long)({name}));"
            )
            .unwrap();
        }
    }
    for &(ctype, prefix, fields) in uapi::attr::ALL.iter().chain(uapi::info::ALL) {
        for &(name, _) in fields {
            let member = c_member(prefix, name);
            let key = offset_key(ctype, &member);
            writeln!(
                c,
                "printf(\"offset {key} %zu\\n\", offsetof({ctype}, {member}));"
            )
            .unwrap();
        }
    }
    // The word holding prog_info's gpl_compatible bitfield ends where the next
    // 8-byte member, netns_dev, starts.
    writeln!(
        c,
        "printf(\"offset gpl_word_end %zu\\n\", offsetof(struct bpf_prog_info, netns_dev));"
    )
    .unwrap();
    writeln!(
        c,
        "printf(\"offset sizeof %zu\\n\", sizeof(union bpf_attr));\nreturn 0;\n}}"
    )
    .unwrap();
    c
}

fn skip(why: &str) {
    assert!(
        std::env::var_os("XDP_REQUIRE_ORACLE").is_none(),
        "XDP_REQUIRE_ORACLE is set but the uapi header check cannot run: {why}"
    );
    println!("SKIP: uapi header check: {why}");
}

/// Runs the C program; `None` (after a SKIP line) when it cannot be built here.
fn header_values() -> Option<String> {
    if !std::path::Path::new("/usr/include/linux/bpf.h").exists() {
        skip("no /usr/include/linux/bpf.h (linux-libc-dev)");
        return None;
    }
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("uapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("uapi.c");
    let exe = dir.join("uapi");
    std::fs::write(&src, c_source()).unwrap();
    let built = Command::new("cc").arg("-o").arg(&exe).arg(&src).output();
    let out = match built {
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            skip(&format!("cannot run cc: {e}"));
            return None;
        }
        Ok(o) if !o.status.success() => {
            panic!(
                "the uapi names do not compile against <linux/bpf.h>:\n{}",
                String::from_utf8_lossy(&o.stderr)
            )
        }
        Ok(_) => Command::new(&exe).output().unwrap(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success());
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn uapi_matches_the_kernel_headers() {
    let Some(text) = header_values() else { return };
    let mut header: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut helpers = Vec::new();
    for line in text.lines() {
        let mut it = line.split(' ');
        let (kind, name, value) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        if kind == "helper" {
            helpers.push((name, value.parse::<i32>().unwrap()));
        } else {
            header.insert((kind, name), value.parse().unwrap());
        }
    }
    let mut wrong = Vec::new();
    for (group, list) in uapi::all_constants() {
        for (name, value) in list {
            let h = header[&("const", name)];
            if h != value {
                wrong.push(format!("{group} {name}: ours {value}, header {h}"));
            }
        }
    }
    for &(ctype, prefix, fields) in uapi::attr::ALL.iter().chain(uapi::info::ALL) {
        for &(name, off) in fields {
            let member = c_member(prefix, name);
            let h = header[&("offset", offset_key(ctype, &member).as_str())];
            if h != off as u64 {
                wrong.push(format!(
                    "offsetof({ctype}, {member}): ours {off}, header {h}"
                ));
            }
        }
    }
    let gpl_end = header[&("offset", "gpl_word_end")];
    if gpl_end != (uapi::info::PROG_GPL_COMPATIBLE_WORD + 4).next_multiple_of(8) as u64 {
        wrong.push(format!(
            "bpf_prog_info: gpl_compatible word at {}, netns_dev at {gpl_end}",
            uapi::info::PROG_GPL_COMPATIBLE_WORD
        ));
    }
    // The size differs between kernels (it grows with new members); the runtime
    // reads the members above, whose offsets never move.
    let size = header[&("offset", "sizeof")];
    println!("uapi: union bpf_attr is {size} bytes in this header");
    // The helper list: every helper of the header has its id and name here. A
    // header older than the list lacks its last helpers; a newer one names helpers
    // the list should gain (said, not failed: their calls are refused by id anyway).
    assert!(
        helpers.len() > 200,
        "{} helpers in the header",
        helpers.len()
    );
    for (id, &(_, header_id)) in helpers.iter().enumerate() {
        assert_eq!(
            header_id as usize, id,
            "the header's mapper lists helpers by id"
        );
    }
    if helpers.len() != isa::helpers::HELPER_NAMES.len() {
        println!(
            "uapi: the header lists {} helpers, isa::helpers {}",
            helpers.len(),
            isa::helpers::HELPER_NAMES.len()
        );
    }
    for &(name, id) in &helpers {
        let ours = isa::helper_name(id).map(|n| n.strip_prefix("bpf_").unwrap());
        if id != 0 && ours != Some(name) {
            wrong.push(format!("helper {id}: ours {ours:?}, header {name}"));
        }
        if id != 0 && isa::helper_id(name) != Some(id) {
            wrong.push(format!(
                "helper_id({name}): {:?}, header {id}",
                isa::helper_id(name)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "uapi differs from <linux/bpf.h>:\n{}",
        wrong.join("\n")
    );
    let checked: usize = uapi::all_constants()
        .iter()
        .map(|(_, l)| l.len())
        .sum::<usize>()
        + uapi::attr::ALL
            .iter()
            .chain(uapi::info::ALL)
            .map(|(_, _, f)| f.len())
            .sum::<usize>()
        + helpers.len();
    println!("uapi: {checked} values compared with <linux/bpf.h>");
}

#[test]
fn helper_ids_are_their_names() {
    use isa::helpers::func;
    // Spot checks by hand from include/uapi/linux/bpf.h, independent of the header
    // on this machine.
    assert_eq!(func::map_lookup_elem, 1);
    assert_eq!(func::tail_call, 12);
    assert_eq!(func::redirect_map, 51);
    assert_eq!(func::xdp_adjust_tail, 65);
    assert_eq!(func::r#loop, 181);
    assert_eq!(isa::helper_name(func::fib_lookup), Some("bpf_fib_lookup"));
}
