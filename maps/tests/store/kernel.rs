//! Differential test: the same operations on a kernel map (bpf(2)) and on ours
//! must return the same errnos, the same values and the same get_next_key order
//! (BPF_F_ZERO_SEED makes the kernel's bucket order deterministic).

use maps::*;

/// A kernel map, through `kclient::map`.
struct KMap(kclient::map::RawMap);

impl KMap {
    fn create(d: &MapDef) -> Result<KMap, i32> {
        kclient::map::RawMap::create(&params(d, None)).map(KMap)
    }
    fn lookup(&self, key: &[u8], out: &mut [u8]) -> Result<(), i32> {
        self.0.lookup(key, out)
    }
    fn update(&self, key: &[u8], v: &[u8], flags: u64) -> Result<(), i32> {
        self.0.update(key, v, flags)
    }
    fn delete(&self, key: &[u8]) -> Result<(), i32> {
        self.0.delete(key)
    }
    fn next_key(&self, key: Option<&[u8]>, out: &mut [u8]) -> Result<(), i32> {
        self.0.next_key(key, out)
    }
    fn keys(&self) -> Vec<Vec<u8>> {
        self.0.keys()
    }
}

fn params(d: &MapDef, inner_map_fd: Option<i32>) -> kclient::map::MapParams<'_> {
    kclient::map::MapParams {
        map_type: d.map_type,
        key_size: d.key_size,
        value_size: d.value_size,
        max_entries: d.max_entries,
        map_flags: d.map_flags,
        inner_map_fd,
        name: "",
    }
}

fn errno(r: Result<(), MapError>) -> Result<(), i32> {
    r.map_err(|e| e.errno())
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn kernel_available() -> bool {
    let d = MapDef {
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        ..MapDef::default()
    };
    KMap::create(&d).is_ok()
}

fn run_differential(d: &MapDef, ops: usize, key_space: u32, seed: u64) {
    let km = KMap::create(d).unwrap_or_else(|e| panic!("kernel map create {d:?}: errno {e}"));
    let store = Store::anonymous(StoreOptions {
        size: 16 << 20,
        ncpus: None, // possible CPUs, as the kernel
    })
    .expect("store");
    let m = store.create_map(d).expect("our map");
    let ks = d.key_size as usize;
    let uvs = m.user_value_size();
    let mut rng = Rng(seed);
    let key_of = |x: u32| -> Vec<u8> {
        let mut k = vec![0u8; ks];
        for (i, b) in k.iter_mut().enumerate() {
            *b = (x >> ((i % 4) * 8)) as u8 ^ (i as u8 / 4);
        }
        k
    };
    for step in 0..ops {
        let key = key_of((rng.next() % u64::from(key_space)) as u32);
        let what = rng.next() % 10;
        let mut val = vec![0u8; uvs];
        for b in val.iter_mut() {
            *b = rng.next() as u8;
        }
        // Per-CPU padding bytes: the kernel copies them as given; keep them
        // arbitrary to check we do too.
        let ctx = format!("{d:?} step {step} op {what} key {key:?}");
        match what {
            0..=4 => {
                let flags =
                    [BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_ANY, 3][(rng.next() % 5) as usize];
                assert_eq!(
                    errno(m.update(&key, &val, flags)),
                    km.update(&key, &val, flags),
                    "{ctx} update {flags}"
                );
            }
            5 | 6 => assert_eq!(errno(m.delete(&key)), km.delete(&key), "{ctx} delete"),
            _ => {
                let mut a = vec![0u8; uvs];
                let mut b = vec![0u8; uvs];
                assert_eq!(
                    errno(m.lookup(&key, &mut a)),
                    km.lookup(&key, &mut b),
                    "{ctx} lookup"
                );
                assert_eq!(a, b, "{ctx} lookup value");
            }
        }
    }
    // Same keys in the same order, same values.
    let ours: Vec<Vec<u8>> = m.iter().collect::<Result<_, _>>().expect("walk");
    let theirs = km.keys();
    assert!(ours.len() >= 2, "{d:?}: the run should leave several keys");
    assert_eq!(ours, theirs, "{d:?}: get_next_key order");
    for key in &ours {
        let mut a = vec![0u8; uvs];
        let mut b = vec![0u8; uvs];
        m.lookup(key, &mut a).expect("ours");
        km.lookup(key, &mut b).expect("kernel");
        assert_eq!(a, b, "{d:?}: value of {key:?}");
    }
    // get_next_key of a missing key restarts at the first key in both.
    let missing = key_of(key_space + 12345);
    let mut a = vec![0u8; ks];
    let mut b = vec![0u8; ks];
    assert_eq!(
        errno(m.get_next_key(Some(&missing), &mut a)),
        km.next_key(Some(&missing), &mut b)
    );
    assert_eq!(a, b);
}

#[test]
fn same_results_as_the_kernel() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !kernel_available() {
        kclient::skip(
            "kernel differential test of the maps",
            "bpf(2) BPF_MAP_CREATE not permitted here",
        );
        return;
    }
    let base = MapDef {
        key_size: 4,
        value_size: 12,
        max_entries: 8,
        name: String::new(),
        ..MapDef::default()
    };
    let defs = [
        MapDef {
            map_type: BPF_MAP_TYPE_HASH,
            map_flags: BPF_F_ZERO_SEED,
            ..base.clone()
        },
        MapDef {
            map_type: BPF_MAP_TYPE_HASH,
            map_flags: BPF_F_ZERO_SEED,
            key_size: 6,
            value_size: 3,
            max_entries: 16,
            ..base.clone()
        },
        MapDef {
            map_type: BPF_MAP_TYPE_PERCPU_HASH,
            map_flags: BPF_F_ZERO_SEED,
            ..base.clone()
        },
        MapDef {
            map_type: BPF_MAP_TYPE_ARRAY,
            ..base.clone()
        },
        MapDef {
            map_type: BPF_MAP_TYPE_PERCPU_ARRAY,
            value_size: 4,
            ..base.clone()
        },
    ];
    for (i, d) in defs.iter().enumerate() {
        run_differential(d, 3000, 20, 0x9E37_79B9_7F4A_7C15 ^ i as u64);
    }
    // Creation checks: the kernel and we accept or reject the same definitions.
    let probes = [
        (BPF_MAP_TYPE_ARRAY, 8, 4, 1, 0),
        (BPF_MAP_TYPE_ARRAY, 4, 0, 1, 0),
        (BPF_MAP_TYPE_ARRAY, 4, 4, 0, 0),
        (BPF_MAP_TYPE_ARRAY, 4, 4, 1, BPF_F_ZERO_SEED),
        (
            BPF_MAP_TYPE_ARRAY,
            4,
            4,
            1,
            BPF_F_MMAPABLE | BPF_F_RDONLY_PROG,
        ),
        (BPF_MAP_TYPE_PERCPU_ARRAY, 4, 4, 1, BPF_F_MMAPABLE),
        (BPF_MAP_TYPE_PERCPU_ARRAY, 4, 40000, 1, 0),
        (BPF_MAP_TYPE_HASH, 0, 4, 1, 0),
        (BPF_MAP_TYPE_HASH, 4, 4, 1, BPF_F_MMAPABLE),
        (BPF_MAP_TYPE_HASH, 4, 4, 1, BPF_F_NO_COMMON_LRU),
        (BPF_MAP_TYPE_HASH, 4, 4, 1, BPF_F_NO_PREALLOC),
        (BPF_MAP_TYPE_PERCPU_HASH, 4, 40000, 1, 0),
        (BPF_MAP_TYPE_PROG_ARRAY, 4, 8, 1, 0),
        (BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 1, BPF_F_RDONLY_PROG),
        (BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4, 0),
    ];
    let store = Store::anonymous(StoreOptions::default()).expect("store");
    for (t, k, v, max, flags) in probes {
        let d = MapDef {
            map_type: t,
            key_size: k,
            value_size: v,
            max_entries: max,
            map_flags: flags,
            ..MapDef::default()
        };
        let theirs = KMap::create(&d).map(|_| ());
        let ours = store.create_map(&d).map(|_| ()).map_err(|e| e.errno());
        assert_eq!(ours, theirs, "create {d:?}");
    }
}

/// BPF_MAP_CREATE with an inner map descriptor (maps of maps).
fn kernel_create_errno(d: &MapDef, inner_fd: i32) -> i32 {
    match kclient::map::RawMap::create(&params(d, Some(inner_fd))) {
        Ok(_) => 0,
        Err(e) => e,
    }
}

/// Key and value size limits of every map type at their boundaries: the store
/// must refuse what the kernel refuses, with the same errno, and accept the rest.
#[test]
fn size_limits_are_the_kernels() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !kernel_available() {
        kclient::skip(
            "kernel size limit test of the maps",
            "bpf(2) BPF_MAP_CREATE not permitted here",
        );
        return;
    }
    let inner = KMap::create(&MapDef {
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        ..MapDef::default()
    })
    .expect("inner map");
    const K: u32 = 1 << 10;
    const M: u32 = 1 << 20;
    let big = [
        1,
        8,
        256,
        512,
        513,
        4 * K,
        32 * K,
        32 * K + 1,
        64 * K,
        M,
        4 * M - 64,
        4 * M - 48,
        4 * M - 40,
        4 * M,
        4 * M + 1,
        8 * M,
        i32::MAX as u32,
        i32::MAX as u32 + 1,
        u32::MAX,
    ];
    let mut cases: Vec<(u32, u32, u32, u32, u32)> = Vec::new();
    for t in [
        BPF_MAP_TYPE_HASH,
        BPF_MAP_TYPE_PERCPU_HASH,
        BPF_MAP_TYPE_LRU_HASH,
        BPF_MAP_TYPE_LRU_PERCPU_HASH,
        BPF_MAP_TYPE_HASH_OF_MAPS,
    ] {
        for &n in &big {
            cases.push((t, n, 4, 1, 0));
            if t != BPF_MAP_TYPE_HASH_OF_MAPS {
                cases.push((t, 4, n, 1, 0));
                cases.push((t, n, n, 1, 0));
                cases.push((t, 2 * M, n, 1, 0));
            }
        }
    }
    for t in [
        BPF_MAP_TYPE_ARRAY,
        BPF_MAP_TYPE_PERCPU_ARRAY,
        BPF_MAP_TYPE_PROG_ARRAY,
        BPF_MAP_TYPE_ARRAY_OF_MAPS,
        BPF_MAP_TYPE_DEVMAP,
        BPF_MAP_TYPE_DEVMAP_HASH,
        BPF_MAP_TYPE_CPUMAP,
        BPF_MAP_TYPE_XSKMAP,
        BPF_MAP_TYPE_PERF_EVENT_ARRAY,
    ] {
        for &n in &big {
            cases.push((t, 4, n, 1, 0));
            cases.push((t, n, 4, 1, 0));
        }
        for v in [0, 2, 4, 8, 12, 16] {
            cases.push((t, 4, v, 1, 0));
        }
    }
    for &n in &big {
        cases.push((BPF_MAP_TYPE_LPM_TRIE, n, 4, 1, BPF_F_NO_PREALLOC));
        cases.push((BPF_MAP_TYPE_LPM_TRIE, 8, n, 1, BPF_F_NO_PREALLOC));
        cases.push((BPF_MAP_TYPE_RINGBUF, n, 0, 4096, 0));
        cases.push((BPF_MAP_TYPE_RINGBUF, 0, n, 4096, 0));
    }
    for k in [4, 5, 260, 261] {
        cases.push((BPF_MAP_TYPE_LPM_TRIE, k, 4, 1, BPF_F_NO_PREALLOC));
    }
    let mut wrong = Vec::new();
    let (mut compared, mut refused, mut skipped) = (0, 0, Vec::new());
    for (map_type, key_size, value_size, max_entries, map_flags) in cases {
        let d = MapDef {
            map_type,
            key_size,
            value_size,
            max_entries,
            map_flags,
            ..MapDef::default()
        };
        let kernel = kernel_create_errno(&d, inner.0.fd());
        // The kernel may fail to find memory for what it accepts; the store's
        // own ENOMEM is its size. Neither says anything about the limits.
        // A fresh sparse store per case (removed maps keep their memory).
        let store = Store::anonymous(StoreOptions {
            size: 64 << 20,
            ncpus: Some(2),
        })
        .expect("store");
        let ours = store.create_map(&d).err().map_or(0, |e| e.errno());
        if kernel == libc::ENOMEM || ours == libc::ENOMEM {
            skipped.push(format!(
                "{map_type}/{key_size}/{value_size}: {kernel} {ours}"
            ));
            continue;
        }
        compared += 1;
        if kernel != 0 {
            refused += 1;
        }
        if kernel != ours {
            wrong.push(format!(
                "{} key {key_size} value {value_size}: kernel errno {kernel}, store {ours}",
                map_type_name(map_type).unwrap_or("?")
            ));
        }
    }
    println!(
        "{compared} cases compared, {refused} refused by the kernel; not comparable (ENOMEM): {skipped:?}"
    );
    assert!(compared > 300 && refused > 100, "too few cases compared");
    assert!(
        wrong.is_empty(),
        "size limits differ from the kernel's:\n{}",
        wrong.join("\n")
    );
}

// ---- what a program sees through a value pointer after updating the same key ----

/// One eBPF instruction: opcode, dst and src registers, offset, immediate.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | u64::from(dst & 0xf) << 8
        | u64::from(src & 0xf) << 12
        | u64::from(off as u16) << 16
        | u64::from(imm as u32) << 32
}

/// `r1 = map fd` (ld_imm64 with BPF_PSEUDO_MAP_FD): two slots.
fn ld_map(fd: i32) -> [u64; 2] {
    [insn(0x18, 1, 1, 0, fd), 0]
}

/// The program: looks up key 1, keeps the value pointer, updates key 1 to 7
/// (BPF_ANY), reads through the old pointer (A), updates key 1 to 9, reads
/// through it again (B), and returns `A << 8 | B` (0xffff when the lookup
/// missed).
fn held_pointer_program(map_fd: i32) -> Vec<u64> {
    let mut p = vec![insn(0x62, 10, 0, -4, 1)]; // *(u32 *)(r10 - 4) = 1
    p.extend(ld_map(map_fd));
    p.push(insn(0xbf, 2, 10, 0, 0)); // r2 = r10
    p.push(insn(0x07, 2, 0, 0, -4)); // r2 += -4
    p.push(insn(0x85, 0, 0, 0, 1)); // call bpf_map_lookup_elem
    let null_check = p.len();
    p.push(0); // if r0 == 0 goto miss (patched below)
    p.push(insn(0xbf, 6, 0, 0, 0)); // r6 = r0
    for (value, dst) in [(7, 7u8), (9, 8u8)] {
        p.push(insn(0x7a, 10, 0, -16, value)); // *(u64 *)(r10 - 16) = value
        p.extend(ld_map(map_fd));
        p.push(insn(0xbf, 2, 10, 0, 0)); // r2 = r10
        p.push(insn(0x07, 2, 0, 0, -4)); // r2 += -4
        p.push(insn(0xbf, 3, 10, 0, 0)); // r3 = r10
        p.push(insn(0x07, 3, 0, 0, -16)); // r3 += -16
        p.push(insn(0xb7, 4, 0, 0, 0)); // r4 = BPF_ANY
        p.push(insn(0x85, 0, 0, 0, 2)); // call bpf_map_update_elem
        p.push(insn(0x79, dst, 6, 0, 0)); // dst = *(u64 *)(r6 + 0)
    }
    p.push(insn(0xbf, 0, 7, 0, 0)); // r0 = r7
    p.push(insn(0x67, 0, 0, 0, 8)); // r0 <<= 8
    p.push(insn(0x4f, 0, 8, 0, 0)); // r0 |= r8
    p.push(insn(0x95, 0, 0, 0, 0)); // exit
    let miss = p.len();
    p[null_check] = insn(0x15, 0, 0, (miss - null_check - 1) as i16, 0);
    p.push(insn(0xb7, 0, 0, 0, 0xffff)); // r0 = 0xffff
    p.push(insn(0x95, 0, 0, 0, 0)); // exit
    p
}

/// Loads `insns` as an XDP program and runs it once on a 64-byte frame: its
/// return value (the errno of a refused load or run).
fn kernel_run_xdp(insns: &[u64]) -> Result<u32, i32> {
    let raw: Vec<isa::RawInsn> = insns
        .iter()
        .map(|w| isa::RawInsn::from_bytes(w.to_le_bytes()))
        .collect();
    let (fd, _) = kclient::prog::load("held_ptr", &raw, c"GPL", &[], 1, 1 << 16).map_err(|r| {
        eprintln!("{}", r.log);
        r.errno.raw_os_error().unwrap_or(libc::EINVAL)
    })?;
    kclient::prog::test_run(&fd, &[0u8; 64], 1, 128)
        .map(|t| t.retval)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EINVAL))
}

/// The same steps on one of our maps, through `prog_lookup` and `update`
/// (`Map::prog_update`, `ProgOps::update` or `ProgOps::update_in_place`).
fn ours_held_pointer(map_type: u32, update: &str) -> u32 {
    let store = Store::anonymous(StoreOptions {
        size: 1 << 20,
        ncpus: Some(2),
    })
    .expect("store");
    let m = store
        .create_map(&MapDef {
            map_type,
            key_size: 4,
            value_size: 8,
            max_entries: 16,
            ..MapDef::default()
        })
        .expect("map");
    let init: Vec<u8> = (0..m.user_value_size() / 8)
        .flat_map(|_| 5u64.to_ne_bytes())
        .collect();
    m.update(&1u32.to_ne_bytes(), &init, BPF_ANY).expect("init");
    let key = 1u32.to_ne_bytes();
    let ops = m.prog_ops();
    // SAFETY: 4-byte key, 8-byte values; the entry points are this map's; p points
    // at an 8-byte value of the store, which stays mapped while `store` lives.
    unsafe {
        let p = m.prog_lookup(key.as_ptr(), 0) as *const u64;
        assert!(!p.is_null());
        let mut seen = 0u32;
        for v in [7u64, 9] {
            let val = v.to_ne_bytes();
            let r = match update {
                "prog_update" => m
                    .prog_update(key.as_ptr(), val.as_ptr(), BPF_ANY, 0)
                    .map_or(-1, |()| 0),
                "ops.update" => (ops.update)(&m, key.as_ptr(), val.as_ptr(), BPF_ANY, 0),
                _ => (ops.update_in_place)(&m, key.as_ptr(), val.as_ptr(), BPF_ANY, 0),
            };
            assert_eq!(r, 0, "{update}");
            seen = seen << 8 | std::ptr::read_volatile(p) as u32;
        }
        seen
    }
}

/// A program that looks a key up, updates the same key and reads through the
/// pointer it got: the kernel's plain hash replaces the element (the old one
/// still holds 5; the second update reuses it, so it then reads 9), its per-CPU
/// hash updates in place (7, then 9). `prog_update` and `ProgOps::update` must
/// do the same; `update_in_place` is the documented exception (7, then 9 for a
/// plain hash too).
#[test]
fn value_pointer_after_update_is_the_kernels() {
    let cases = [
        (BPF_MAP_TYPE_HASH, 0x0509),
        (BPF_MAP_TYPE_PERCPU_HASH, 0x0709),
    ];
    for (t, want) in cases {
        for how in ["prog_update", "ops.update"] {
            assert_eq!(ours_held_pointer(t, how), want, "type {t} via {how}");
        }
        assert_eq!(
            ours_held_pointer(t, "ops.update_in_place"),
            0x0709,
            "type {t} in place"
        );
    }
    if !kernel_available() {
        println!(
            "SKIP: value_pointer_after_update_is_the_kernels: no bpf(2) (needs root or CAP_BPF)"
        );
        return;
    }
    for (t, want) in cases {
        let d = MapDef {
            map_type: t,
            key_size: 4,
            value_size: 8,
            max_entries: 16,
            ..MapDef::default()
        };
        let km = KMap::create(&d).expect("kernel map");
        let ncpus = maps::possible_cpus();
        let init: Vec<u8> = if t == BPF_MAP_TYPE_PERCPU_HASH {
            (0..ncpus).flat_map(|_| 5u64.to_ne_bytes()).collect()
        } else {
            5u64.to_ne_bytes().to_vec()
        };
        km.update(&1u32.to_ne_bytes(), &init, BPF_ANY)
            .expect("kernel init");
        let got = kernel_run_xdp(&held_pointer_program(km.0.fd())).expect("kernel test run");
        assert_eq!(got, want, "kernel, type {t}: {got:#x}");
        assert_eq!(ours_held_pointer(t, "prog_update"), got, "type {t}");
    }
}

/// Queue and stack maps: a random sequence of pushes (every flag), pops, peeks
/// and deletes gives the kernel's errnos and values, in both directions of wrap.
#[test]
fn queue_and_stack_are_the_kernels() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !kernel_available() {
        kclient::skip(
            "kernel differential test of queue and stack maps",
            "bpf(2) BPF_MAP_CREATE not permitted here",
        );
        return;
    }
    let store = Store::anonymous(StoreOptions {
        size: 4 << 20,
        ncpus: Some(2),
    })
    .expect("store");
    for (t, seed) in [(BPF_MAP_TYPE_QUEUE, 7u64), (BPF_MAP_TYPE_STACK, 11)] {
        let d = MapDef {
            map_type: t,
            key_size: 0,
            value_size: 6,
            max_entries: 5,
            ..MapDef::default()
        };
        let km = KMap::create(&d).unwrap_or_else(|e| panic!("kernel create: errno {e}"));
        let ours = store.create_map(&d).expect("create");
        let mut rng = Rng(seed);
        for step in 0..2000 {
            let r = rng.next();
            let v: Vec<u8> = (0..6).map(|i| (r >> (8 + i * 8)) as u8).collect();
            match r % 7 {
                0..=2 => {
                    let flags = [BPF_ANY, BPF_EXIST, BPF_NOEXIST, 4][(r >> 4) as usize % 4];
                    let k = km.update(&[], &v, flags);
                    let o = errno(ours.update(&[], &v, flags));
                    assert_eq!(o, k, "type {t} step {step}: push flags {flags}");
                }
                3 | 4 => {
                    let (mut kv, mut ov) = ([0x55u8; 6], [0x55u8; 6]);
                    let k = km.0.lookup_and_delete(&[], &mut kv);
                    let o = errno(ours.pop(&mut ov));
                    assert_eq!((o, ov), (k, kv), "type {t} step {step}: pop");
                }
                5 => {
                    let (mut kv, mut ov) = ([0x55u8; 6], [0x55u8; 6]);
                    let k = km.lookup(&[], &mut kv);
                    let o = errno(ours.lookup(&[], &mut ov));
                    assert_eq!((o, ov), (k, kv), "type {t} step {step}: peek");
                }
                _ => {
                    let k = km.delete(&[]);
                    let o = errno(ours.delete(&[]));
                    assert_eq!(o, k, "type {t} step {step}: delete");
                }
            }
        }
    }
}

/// A BPF_F_ZERO_SEED bloom filter hashes as the kernel's: after the same pushes,
/// every check (false positives included) answers as the kernel's, for values
/// hashed with jhash2 (4-byte multiples) and with jhash.
#[test]
fn zero_seed_bloom_filter_is_the_kernels() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !kernel_available() {
        kclient::skip(
            "kernel differential test of bloom filters",
            "bpf(2) BPF_MAP_CREATE not permitted here",
        );
        return;
    }
    let store = Store::anonymous(StoreOptions {
        size: 4 << 20,
        ncpus: Some(2),
    })
    .expect("store");
    for value_size in [4u32, 7, 12] {
        let d = MapDef {
            map_type: BPF_MAP_TYPE_BLOOM_FILTER,
            key_size: 0,
            value_size,
            max_entries: 16,
            map_flags: BPF_F_ZERO_SEED,
            ..MapDef::default()
        };
        let km = KMap::create(&d).unwrap_or_else(|e| panic!("kernel create: errno {e}"));
        let ours = store.create_map(&d).expect("create");
        let val = |i: u32| -> Vec<u8> {
            (0..value_size)
                .map(|j| (i.wrapping_mul(2654435761) >> (j % 4 * 8)) as u8 ^ j as u8)
                .collect()
        };
        for i in 0..16 {
            assert_eq!(
                errno(ours.update(&[], &val(i), BPF_ANY)),
                km.update(&[], &val(i), BPF_ANY)
            );
        }
        assert_eq!(
            errno(ours.update(&[], &val(0), BPF_EXIST)),
            km.update(&[], &val(0), BPF_EXIST)
        );
        let mut false_pos = 0;
        for i in 0..3000 {
            let mut v = val(i);
            let k = km.lookup(&[], &mut v);
            let o = errno(ours.lookup(&[], &mut val(i)));
            assert_eq!(o, k, "value_size {value_size}, value {i}");
            false_pos += usize::from(i >= 16 && k.is_ok());
        }
        // The comparison covers both answers: 16 values in 128 bits give some.
        assert!(
            false_pos > 0,
            "value_size {value_size}: no false positive to compare"
        );
    }
}
