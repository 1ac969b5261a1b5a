//! Integration tests of the isa crate against LLVM: C programs compiled by
//! clang for cpu v1, v2 and v3 are disassembled both by `llvm-objdump -d` and by
//! [`isa::disassemble`], and the lines must agree; their bytes must also
//! round-trip through decode and encode.
//!
//! Needs clang, llvm-objdump and llvm-objcopy; prints `SKIP: ...` without them.

use std::path::{Path, PathBuf};
use std::process::Command;

use isa::{decode_all, disassemble, encode_all, parse_slots, slots_to_bytes};

/// Common declarations, written out so that no kernel or libbpf header is needed.
const PRELUDE: &str = r#"
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
struct xdp_md { __u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };
#define SEC(n) __attribute__((section(n), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;
static long (*bpf_xdp_adjust_head)(struct xdp_md *ctx, int delta) = (void *)44;
struct { __uint(type, 2); __uint(max_entries, 16); __type(key, __u32); __type(value, __u64); } counters SEC(".maps");
struct { __uint(type, 1); __uint(max_entries, 64); __type(key, __u64); __type(value, __u64); } flows SEC(".maps");
struct { __uint(type, 14); __uint(max_entries, 8); __type(key, __u32); __type(value, __u32); } ports SEC(".maps");
char _license[] SEC("license") = "GPL";
"#;

/// Plain C: ALU64/ALU32, loads and stores of every size, helpers, map lddw,
/// global data, local calls, loops, byte swaps, signed compares.
const PROG_BASIC: &str = r#"
__u64 total;
__u32 last_len = 7;
static __attribute__((noinline)) __u32 mix(__u32 a, __u32 b) {
    a ^= b << 5; a += b >> 3; a *= 2654435761u; return a ^ (a >> 16);
}
static __attribute__((noinline)) __s64 scale(__s64 x, __s32 s) {
    if (x < -1000) return x / 3 - s; return (x << 2) + (s >> 1);
}
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    __u8 *p = data;
    if (data + 64 > end) return 1;
    __u16 proto = __builtin_bswap16(*(__u16 *)(p + 12));
    __u32 addr = __builtin_bswap32(*(__u32 *)(p + 26));
    __u64 big = __builtin_bswap64(*(__u64 *)(p + 30));
    __s8 sb = (__s8)p[20];
    __s16 sh = *(__s16 *)(p + 22);
    __u32 key = mix(addr, proto) & 15;
    __u64 *cnt = bpf_map_lookup_elem(&counters, &key);
    if (cnt) { *cnt += 1; total += *cnt; }
    __u64 fk = big ^ 0x1234567890abcdefULL;
    __u64 one = 1;
    if (!bpf_map_lookup_elem(&flows, &fk)) bpf_map_update_elem(&flows, &fk, &one, 0);
    __u32 h = 0;
    for (int i = 0; i < 32; i++) { h = h * 31 + p[i]; if (h & 0x80000000u) h ^= 0x5bd1e995; }
    __u32 len = (__u32)(end - data);
    last_len = len / (ctx->rx_queue_index + 1) + len % 7;
    *(__u8 *)(p + 1) = (__u8)h; *(__u16 *)(p + 2) = (__u16)sb; *(__u32 *)(p + 4) = (__u32)sh;
    __s64 v = scale((__s64)sb * sh, (__s32)h);
    if (v > 100000 || (__s32)h < -5) return bpf_redirect_map(&ports, key, 0);
    if ((__u64)v >= 0xfffffffff0ULL) bpf_xdp_adjust_head(ctx, 14);
    return (int)((h + v + bpf_ktime_get_ns()) & 3);
}
"#;

/// Atomics (cpu v3): every fetch/non-fetch operation at 32 and 64 bits.
const PROG_ATOMICS: &str = r#"
__u64 g64; __u32 g32;
SEC("xdp") int atomics(struct xdp_md *ctx) {
    __u32 k = 0;
    __u64 *v = bpf_map_lookup_elem(&counters, &k);
    if (!v) return 0;
    __u64 r = 0;
    __sync_fetch_and_add(v, 1); r += __sync_fetch_and_add(v, 5);
    __sync_fetch_and_or(v, 2); r += __sync_fetch_and_or(v, 3);
    __sync_fetch_and_and(v, 6); r += __sync_fetch_and_and(v, 7);
    __sync_fetch_and_xor(v, 8); r += __sync_fetch_and_xor(v, 9);
    r += __sync_lock_test_and_set(v, r);
    r += __sync_val_compare_and_swap(v, 3, r);
    __sync_fetch_and_add(&g32, 1); r += __sync_fetch_and_add(&g32, 2);
    __sync_fetch_and_or(&g32, 4); r += __sync_fetch_and_xor(&g32, 5);
    r += __sync_fetch_and_and(&g32, 6);
    r += __sync_lock_test_and_set(&g32, (__u32)r);
    r += __sync_val_compare_and_swap(&g32, 1, (__u32)r);
    __sync_fetch_and_add(&g64, r);
    return r & 3;
}
"#;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("isa-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn compile(dir: &Path, name: &str, src: &str, cpu: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, format!("{PRELUDE}\n{src}")).expect("write C source");
    let o = dir.join(format!("{name}-{cpu}.o"));
    run(Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", &format!("-mcpu={cpu}"), "-c"])
        .arg(&c)
        .arg("-o")
        .arg(&o));
    o
}

/// One instruction line of llvm-objdump: (pc, bytes column, text without the
/// ` <label>` branch annotation).
#[derive(Debug, Clone)]
struct Line {
    pc: usize,
    bytes: String,
    text: String,
}

/// Instruction lines of `llvm-objdump -d`, per section, in order.
fn objdump(obj: &Path, extra: &[&str]) -> Vec<(String, Vec<Line>)> {
    let out = run(Command::new("llvm-objdump").arg("-d").args(extra).arg(obj));
    let mut sections: Vec<(String, Vec<Line>)> = vec![];
    for l in out.lines() {
        if let Some(name) = l.strip_prefix("Disassembly of section ") {
            sections.push((name.trim_end_matches(':').to_string(), vec![]));
            continue;
        }
        let mut parts = l.splitn(3, '\t');
        let (Some(pc), Some(bytes), Some(text)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pc) = pc.trim().trim_end_matches(':').parse::<usize>() else {
            continue;
        };
        let text = match text.rfind(" <") {
            Some(i) if text.ends_with('>') && text != "<unknown>" => &text[..i],
            _ => text,
        };
        let sec = sections
            .last_mut()
            .expect("instruction line before a section header");
        sec.1.push(Line {
            pc,
            bytes: bytes.trim().to_string(),
            text: text.to_string(),
        });
    }
    sections
}

fn section_bytes(dir: &Path, obj: &Path, section: &str) -> Vec<u8> {
    let file = dir.join(format!("{}.bin", section.replace('/', "_")));
    run(Command::new("llvm-objcopy")
        .arg(format!("--dump-section={section}={}", file.display()))
        .arg(obj)
        .arg(dir.join("scratch.o")));
    std::fs::read(&file).expect("read dumped section")
}

/// Compares our disassembly of every code section of `obj` with llvm-objdump's.
/// Returns the number of instructions compared.
fn compare_with_objdump(dir: &Path, obj: &Path) -> usize {
    let plain = objdump(obj, &[]);
    // LLVM 14 decodes the 32-bit atomics other than `lock +=` only in its alu32
    // table (and its default table shows a 32-bit fetch-add as `lock +=`).
    let alu32 = objdump(obj, &["--mattr=+alu32"]);
    let mut compared = 0;
    assert_eq!(
        plain.len(),
        alu32.len(),
        "{}: sections in the two objdump listings",
        obj.display()
    );
    for ((name, lines), (name32, lines32)) in plain.iter().zip(&alu32) {
        assert_eq!(name, name32);
        let bytes = section_bytes(dir, obj, name);
        let slots = parse_slots(&bytes).expect("section is whole slots");

        // Round trip: decode + encode gives back the section's bytes.
        let insns: Vec<_> = decode_all(&slots)
            .expect("decodes")
            .into_iter()
            .map(|(_, i)| i)
            .collect();
        assert_eq!(
            slots_to_bytes(&encode_all(&insns)),
            bytes,
            "round trip of {name}"
        );

        let ours = disassemble(&slots).expect("disassembles");
        let ours: Vec<&str> = ours.lines().collect();
        assert_eq!(
            ours.len(),
            lines.len(),
            "instruction count of section {name}"
        );
        for ((mine, theirs), theirs32) in ours.iter().zip(lines).zip(lines32) {
            assert_eq!(theirs.pc, theirs32.pc);
            let code = u8::from_str_radix(&theirs.bytes[..2], 16).unwrap_or(0);
            let imm_nonzero = theirs
                .bytes
                .get(12..)
                .is_some_and(|s| s.chars().any(|c| c != '0' && c != ' '));
            let expected = if theirs.text == "<unknown>" || (code == 0xc3 && imm_nonzero) {
                &theirs32.text
            } else {
                &theirs.text
            };
            assert_ne!(
                expected, "<unknown>",
                "LLVM cannot decode {name}:{} {}",
                theirs.pc, theirs.bytes
            );
            let want = format!("{:>8}:\t{}\t{}", theirs.pc, theirs.bytes, expected);
            assert_eq!(*mine, want, "section {name}");
            compared += 1;
        }
    }
    compared
}

#[test]
fn disassembly_matches_llvm_objdump() {
    for tool in ["clang", "llvm-objdump", "llvm-objcopy"] {
        if !have(tool) {
            println!("SKIP: {tool} not found; llvm-objdump comparison not run");
            return;
        }
    }
    let dir = TempDir::new("objdump");
    let mut total = 0;
    for cpu in ["v1", "v2", "v3"] {
        let obj = compile(&dir.0, "basic", PROG_BASIC, cpu);
        let n = compare_with_objdump(&dir.0, &obj);
        assert!(n > 100, "only {n} instructions for cpu {cpu}");
        total += n;
    }
    let obj = compile(&dir.0, "atomics", PROG_ATOMICS, "v3");
    let n = compare_with_objdump(&dir.0, &obj);
    assert!(n > 30, "only {n} atomic-program instructions");
    total += n;
    println!("compared {total} instructions with llvm-objdump");
}

/// Every committed object of the workspace's bpf-progs decodes, disassembles
/// and round-trips (the objects come from another crate; skipped if absent).
#[test]
fn workspace_objects_round_trip() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bpf-progs/obj");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!("SKIP: no {} directory", dir.display());
        return;
    };
    if !have("llvm-objdump") || !have("llvm-objcopy") {
        println!("SKIP: llvm-objdump/llvm-objcopy not found");
        return;
    }
    let tmp = TempDir::new("objs");
    let mut n = 0;
    let mut objects = 0;
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "o") {
            // Every object holds code: one that compares nothing means the listing
            // was not understood, not that it agreed.
            let c = compare_with_objdump(&tmp.0, &path);
            assert!(c > 0, "{}: no instruction compared", path.display());
            n += c;
            objects += 1;
        }
    }
    assert!(
        objects >= 20,
        "only {objects} objects in {} (the committed bpf-progs objects)",
        dir.display()
    );
    println!(
        "compared {n} instructions of {objects} objects in {}",
        dir.display()
    );
}

#[path = "isa/uapi.rs"]
mod uapi;
