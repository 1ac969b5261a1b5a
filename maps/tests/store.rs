//! Integration tests of the maps crate: named stores shared between handles and
//! processes, validation of damaged files, store exhaustion, allocation-free hot
//! paths, and a differential check against the kernel's own maps.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use maps::*;

#[path = "store/access.rs"]
mod access;
#[path = "store/kernel.rs"]
mod kernel;
#[path = "store/recovery.rs"]
mod recovery;

// ---- a counting allocator: counts allocations made by threads that opted in ----

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note_alloc() {
    if COUNTING.try_with(|c| c.get()).unwrap_or(false) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator; the bookkeeping allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCS.load(Ordering::Relaxed) - before
}

// ---- helpers ----

/// A store name unique to this test and process; unlinked on drop.
struct Named(String);

impl Named {
    fn new(test: &str) -> Named {
        Named(format!("maps-test-{}-{}", test, std::process::id()))
    }
    fn path(&self) -> String {
        format!("/dev/shm/{}", self.0)
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = Store::unlink(&self.0);
    }
}

fn opts(size: usize) -> StoreOptions {
    StoreOptions {
        size,
        ncpus: Some(2),
    }
}

fn hash_def(max: u32) -> MapDef {
    MapDef {
        map_type: BPF_MAP_TYPE_HASH,
        key_size: 4,
        value_size: 8,
        max_entries: max,
        name: "counters".into(),
        ..MapDef::default()
    }
}

fn array_def(max: u32) -> MapDef {
    MapDef {
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: 8,
        max_entries: max,
        name: "arr".into(),
        ..MapDef::default()
    }
}

fn k(i: u32) -> [u8; 4] {
    i.to_ne_bytes()
}

fn read_u64(m: &Map, key: u32) -> Option<u64> {
    let mut out = [0u8; 8];
    m.lookup(&k(key), &mut out).ok()?;
    Some(u64::from_ne_bytes(out))
}

// ---- tests ----

#[test]
fn two_handles_share_a_named_store() {
    let n = Named::new("share");
    let a = Store::create(&n.0, opts(8 << 20)).expect("create");
    let meta = std::fs::metadata(n.path()).expect("file exists");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 8 << 20);
    assert!(matches!(
        Store::create(&n.0, opts(8 << 20)),
        Err(StoreError::AlreadyExists { .. })
    ));
    let b = Store::open(&n.0).expect("open");
    assert_eq!(b.name(), Some(n.0.as_str()));
    assert_eq!(b.ncpus(), 2);
    let ma = a.create_map(&hash_def(64)).expect("map");
    let id = ma.info().id;
    // Handle b finds a map created after it opened.
    assert_eq!(b.map_ids(), vec![id]);
    let mb = b.map_by_id(id).expect("by id");
    assert_eq!(mb.info(), ma.info());
    ma.update(&k(1), &7u64.to_ne_bytes(), BPF_ANY)
        .expect("update a");
    assert_eq!(read_u64(&mb, 1), Some(7));
    mb.update(&k(2), &8u64.to_ne_bytes(), BPF_NOEXIST)
        .expect("update b");
    assert_eq!(read_u64(&ma, 2), Some(8));
    mb.delete(&k(1)).expect("delete b");
    assert_eq!(read_u64(&ma, 1), None);
    // open_or_create opens the existing store rather than replacing it.
    let c = Store::open_or_create(&n.0, opts(1 << 20)).expect("open_or_create");
    assert_eq!(c.size(), 8 << 20);
    assert_eq!(c.map_ids(), vec![id]);
    // A third handle: a store created by open_or_create.
    let n2 = Named::new("share2");
    let d = Store::open_or_create(&n2.0, opts(1 << 20)).expect("create via open_or_create");
    assert_eq!(d.size(), 1 << 20);
    Store::unlink(&n.0).expect("unlink");
    assert!(matches!(
        Store::open(&n.0),
        Err(StoreError::NotFound { .. })
    ));
    // Existing handles keep working after unlink.
    assert_eq!(read_u64(&mb, 2), Some(8));
}

#[test]
fn forked_child_updates_counters_with_parent() {
    let n = Named::new("fork");
    let store = Store::create(&n.0, opts(8 << 20)).expect("create");
    let arr = store.create_map(&array_def(4)).expect("array");
    let hash = store.create_map(&hash_def(4096)).expect("hash");
    let pcpu = store
        .create_map(&MapDef {
            map_type: BPF_MAP_TYPE_PERCPU_ARRAY,
            ..array_def(1)
        })
        .expect("percpu");
    const N: u64 = 20_000;
    let bump = |worker: u32, base: u32| {
        // SAFETY: 4-byte keys; array values are 8-aligned u64s that live as long as
        // the store; other processes only touch them atomically.
        let counter = unsafe { &*(arr.prog_lookup(k(0).as_ptr(), worker) as *const AtomicU64) };
        // SAFETY: as above, this worker's own per-CPU slot.
        let mine = unsafe { &*(pcpu.prog_lookup(k(0).as_ptr(), worker) as *const AtomicU64) };
        for i in 0..N {
            counter.fetch_add(1, Ordering::Relaxed);
            mine.fetch_add(1, Ordering::Relaxed);
            if i % 16 == 0 {
                let key = base + (i / 16) as u32;
                let v = u64::from(key).to_ne_bytes();
                // SAFETY: 4-byte key, 8-byte value.
                let r =
                    unsafe { hash.prog_update(k(key).as_ptr(), v.as_ptr(), BPF_NOEXIST, worker) };
                assert!(r.is_ok());
            }
        }
    };
    // SAFETY: the child only runs `bump` on the already-mapped store (atomics,
    // spinlocks, no allocation on these paths) and then calls _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bump(1, 100_000))).is_ok();
        // SAFETY: _exit ends the child without running the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    bump(0, 0);
    let mut status = 0;
    // SAFETY: waits for our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed: {status}"
    );
    assert_eq!(read_u64(&arr, 0), Some(2 * N));
    let mut slots = [0u8; 16];
    pcpu.lookup(&k(0), &mut slots).expect("percpu");
    assert_eq!(&slots[..8], &N.to_ne_bytes());
    assert_eq!(&slots[8..], &N.to_ne_bytes());
    let per_proc = (N / 16) as u32;
    assert_eq!(hash.len(), 2 * per_proc);
    for key in (0..per_proc).chain(100_000..100_000 + per_proc) {
        assert_eq!(read_u64(&hash, key), Some(u64::from(key)), "key {key}");
    }
    // The store still opens cleanly after a second process used it.
    Store::open(&n.0).expect("reopen");
}

#[test]
fn damaged_files_give_clear_errors() {
    let n = Named::new("damage");
    {
        let s = Store::create(&n.0, opts(MIN_STORE_SIZE + (1 << 20))).expect("create");
        s.create_map(&hash_def(16)).expect("map");
    }
    Store::open(&n.0).expect("intact store opens");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(n.path())
        .expect("file");
    let mut word = [0u8; 8];
    f.read_exact_at(&mut word, 0).expect("read magic");
    assert_eq!(u64::from_le_bytes(word), MAGIC);

    // Wrong version (offset 8).
    f.write_all_at(&(LAYOUT_VERSION + 1).to_ne_bytes(), 8)
        .expect("write");
    match Store::open(&n.0) {
        Err(StoreError::Version { found, expected }) => {
            assert_eq!((found, expected), (LAYOUT_VERSION + 1, LAYOUT_VERSION))
        }
        other => panic!("expected Version, got {other:?}"),
    }
    // Version 4 (before timers) and 3 (another hash): the first opens, its maps
    // without timers; the second is refused.
    f.write_all_at(&4u32.to_ne_bytes(), 8).expect("write");
    let old = Store::open(&n.0).expect("a version 4 store opens");
    assert_eq!(old.map_by_id(1).expect("its map").timer_slots(), 0);
    drop(old);
    f.write_all_at(&3u32.to_ne_bytes(), 8).expect("write");
    assert!(matches!(
        Store::open(&n.0),
        Err(StoreError::Version { found: 3, .. })
    ));
    f.write_all_at(&LAYOUT_VERSION.to_ne_bytes(), 8)
        .expect("write");

    // A corrupt map table entry: data_off (entry offset 64: twelve u32 fields
    // and the 16-byte name precede it) outside the file.
    let entry0 = 4096u64;
    let mut off = [0u8; 8];
    f.read_exact_at(&mut off, entry0 + 64)
        .expect("read data_off");
    f.write_all_at(&u64::MAX.to_ne_bytes(), entry0 + 64)
        .expect("write");
    assert!(matches!(Store::open(&n.0), Err(StoreError::Corrupt { .. })));
    f.write_all_at(&off, entry0 + 64).expect("restore");
    Store::open(&n.0).expect("restored store opens");

    // Truncated: shorter than the header says.
    let len = f.metadata().expect("meta").len();
    f.set_len(len - 4096).expect("truncate");
    assert!(matches!(
        Store::open(&n.0),
        Err(StoreError::Truncated { .. })
    ));
    // Shorter than a header.
    f.set_len(100).expect("truncate");
    assert!(matches!(
        Store::open(&n.0),
        Err(StoreError::Truncated { len: 100, .. })
    ));
    f.set_len(0).expect("truncate");
    assert!(matches!(
        Store::open(&n.0),
        Err(StoreError::Truncated { len: 0, .. })
    ));

    // A foreign file.
    f.set_len(MIN_STORE_SIZE as u64).expect("grow");
    f.write_all_at(b"#!/bin/sh\necho not a store\n", 0)
        .expect("write");
    assert!(matches!(
        Store::open(&n.0),
        Err(StoreError::BadMagic { .. })
    ));

    assert!(matches!(
        Store::open("no-such-store-xyz"),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        Store::open("a/b"),
        Err(StoreError::InvalidName { .. })
    ));
    assert!(matches!(
        Store::create("", opts(1 << 20)),
        Err(StoreError::InvalidName { .. })
    ));
}

#[test]
fn full_store_errors_and_stays_usable() {
    let n = Named::new("full");
    let s = Store::create(&n.0, opts(MIN_STORE_SIZE + (64 << 10))).expect("create");
    let mut made = Vec::new();
    let err = loop {
        match s.create_map(&array_def(1000)) {
            Ok(m) => made.push(m),
            Err(e) => break e,
        }
        assert!(made.len() < 100, "the store never filled up");
    };
    assert_eq!(err.errno(), libc::ENOMEM, "{err}");
    assert!(matches!(err, MapError::NoSpace { .. }));
    assert_eq!(s.map_ids().len(), made.len());
    // Still usable: existing maps work, a smaller map fits, a reopen validates.
    for m in &made {
        m.update(&k(999), &1u64.to_ne_bytes(), BPF_ANY)
            .expect("update");
    }
    let small = s.create_map(&array_def(4)).expect("small map still fits");
    small
        .update(&k(3), &5u64.to_ne_bytes(), BPF_ANY)
        .expect("update");
    let again = Store::open(&n.0).expect("reopen");
    assert_eq!(again.map_ids().len(), made.len() + 1);
    assert_eq!(
        read_u64(&again.map_by_id(small.info().id).expect("map"), 3),
        Some(5)
    );
}

#[test]
fn hot_paths_do_not_allocate() {
    let s = Store::anonymous(opts(8 << 20)).expect("store");
    let hash = s.create_map(&hash_def(64)).expect("hash");
    let pch = s
        .create_map(&MapDef {
            map_type: BPF_MAP_TYPE_PERCPU_HASH,
            ..hash_def(64)
        })
        .expect("percpu hash");
    let arr = s.create_map(&array_def(8)).expect("array");
    let pca = s
        .create_map(&MapDef {
            map_type: BPF_MAP_TYPE_PERCPU_ARRAY,
            ..array_def(8)
        })
        .expect("percpu array");
    let mut out = [0u8; 16];
    let n = allocations_in(|| {
        for i in 0..200u32 {
            let v = u64::from(i).to_ne_bytes();
            for m in [&hash, &pch, &arr, &pca] {
                // SAFETY: 4-byte keys, 8-byte values.
                unsafe {
                    let _ = m.prog_update(k(i % 80).as_ptr(), v.as_ptr(), BPF_ANY, 1);
                    let _ = m.prog_lookup(k(i % 80).as_ptr(), 1);
                    let _ = m.prog_update(k(i % 80).as_ptr(), v.as_ptr(), BPF_NOEXIST, 0);
                    if i % 3 == 0 {
                        let _ = m.prog_delete(k(i % 80).as_ptr());
                    }
                }
                let uv = m.user_value_size();
                let _ = m.update(&k(i % 70), &[1u8; 16][..uv], BPF_ANY);
                let _ = m.lookup(&k(i % 70), &mut out[..uv]);
                let _ = m.delete(&k(i % 90));
                let _ = m.get_next_key(Some(&k(i)), &mut [0u8; 4]);
            }
        }
    });
    assert_eq!(n, 0, "map operations allocated {n} times");
    // The counter works: an allocation is seen.
    assert!(allocations_in(|| drop(std::hint::black_box(vec![1u8; 10]))) >= 1);
}

#[test]
fn sanity_many_operations() {
    // A benchmark-free workout: many operations, results checked, no timing asserted.
    let s = Store::anonymous(opts(32 << 20)).expect("store");
    let m = s.create_map(&hash_def(10_000)).expect("hash");
    for i in 0..10_000u32 {
        let v = u64::from(i) * 3;
        // SAFETY: 4-byte key, 8-byte value.
        unsafe { m.prog_update(k(i).as_ptr(), v.to_ne_bytes().as_ptr(), BPF_NOEXIST, 0) }
            .expect("insert");
    }
    // SAFETY: 4-byte key, 8-byte value.
    let full = unsafe { m.prog_update(k(10_000).as_ptr(), [0u8; 8].as_ptr(), BPF_ANY, 0) };
    assert_eq!(full.map_err(|e| e.errno()), Err(libc::E2BIG));
    let mut sum = 0u64;
    for round in 0..10u32 {
        for i in 0..10_000u32 {
            // SAFETY: 4-byte key; result valid for 8 bytes.
            let p = unsafe { m.prog_lookup(k(i).as_ptr(), 0) };
            assert!(!p.is_null(), "round {round} key {i}");
            // SAFETY: p points to an 8-byte value.
            sum += unsafe { std::ptr::read_unaligned(p as *const u64) };
        }
    }
    assert_eq!(sum, 10 * 3 * (0..10_000u64).sum::<u64>());
    assert_eq!(m.iter().count(), 10_000);
    for i in (0..10_000u32).step_by(2) {
        m.delete(&k(i)).expect("delete");
    }
    assert_eq!(m.len(), 5_000);
    for i in 0..10_000u32 {
        assert_eq!(read_u64(&m, i).is_some(), i % 2 == 1);
    }
}

// ---- crash recovery and many writers (fork: the children allocate nothing) ----

/// Forks a child that runs `f` and then `_exit(0)`s; returns its pid.
fn fork_child(f: impl FnOnce()) -> libc::pid_t {
    // SAFETY: the child only runs `f`, which touches shared memory through
    // already-created handles and makes no allocation, then _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        f();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    pid
}

fn wait_child(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    status
}

/// One program-path increment of `key`'s u64 counter in a hash map: look up,
/// insert 0 if missing (NOEXIST, so racing inserters agree), atomic add.
fn hash_bump(m: &Map, key: u32) {
    let k = key.to_ne_bytes();
    loop {
        // SAFETY: 4-byte key; the value is 8 bytes, 8-aligned in the store.
        let p = unsafe { m.prog_lookup(k.as_ptr(), 0) };
        if !p.is_null() {
            // SAFETY: p points to the live 8-byte value (as a program's pointer).
            unsafe { AtomicU64::from_ptr(p as *mut u64) }.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let zero = 0u64.to_ne_bytes();
        // SAFETY: 4-byte key, 8-byte value.
        let _ = unsafe { m.prog_update(k.as_ptr(), zero.as_ptr(), BPF_NOEXIST, 0) };
    }
}

fn array_bump(m: &Map) {
    let k = 0u32.to_ne_bytes();
    // SAFETY: 4-byte key; slot 0 exists.
    let p = unsafe { m.prog_lookup(k.as_ptr(), 0) };
    assert!(!p.is_null());
    // SAFETY: an 8-byte, 8-aligned array value.
    unsafe { AtomicU64::from_ptr(p as *mut u64) }.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn many_writers_lose_nothing() {
    let n = Named::new("writers");
    let s = Store::create(&n.0, opts(16 << 20)).expect("create");
    let h = s.create_map(&hash_def(64)).expect("hash");
    let a = s.create_map(&array_def(1)).expect("array");
    const OPS: u64 = 200_000;
    const KEYS: u32 = 37;
    let work = |h: Map, a: Map, seed: u32| {
        for i in 0..OPS {
            hash_bump(&h, (i as u32).wrapping_mul(7).wrapping_add(seed) % KEYS);
            array_bump(&a);
        }
    };
    let pids: Vec<_> = (0..2)
        .map(|p| {
            let (h, a) = (h.clone(), a.clone());
            fork_child(move || work(h, a, p))
        })
        .collect();
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let (h, a) = (h.clone(), a.clone());
            std::thread::spawn(move || work(h, a, 10 + t))
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    for p in pids {
        assert_eq!(wait_child(p), 0);
    }
    let total: u64 = (0..KEYS).map(|k| read_u64(&h, k).unwrap_or(0)).sum();
    assert_eq!(total, 4 * OPS, "hash counts");
    assert_eq!(read_u64(&a, 0), Some(4 * OPS), "array counter");
    assert_eq!(h.len(), KEYS);
    h.check().expect("consistent");
}

#[test]
fn sigkill_mid_update_leaves_a_usable_store() {
    let n = Named::new("crash");
    let s = Store::create(&n.0, opts(16 << 20)).expect("create");
    let h = s.create_map(&hash_def(32)).expect("hash");
    let lru = s
        .create_map(&MapDef {
            map_type: BPF_MAP_TYPE_LRU_HASH,
            ..hash_def(16)
        })
        .expect("lru");
    let lpm = s
        .create_map(&MapDef {
            map_type: BPF_MAP_TYPE_LPM_TRIE,
            key_size: 8,
            value_size: 8,
            max_entries: 16,
            map_flags: BPF_F_NO_PREALLOC,
            name: "lpm".into(),
            ..MapDef::default()
        })
        .expect("lpm");
    for round in 0..40u32 {
        let (h2, l2, t2) = (h.clone(), lru.clone(), lpm.clone());
        let pid = fork_child(move || {
            let mut i = round;
            loop {
                let k = (i % 40).to_ne_bytes();
                let v = u64::from(i).to_ne_bytes();
                let mut lk = [0u8; 8];
                lk[..4].copy_from_slice(&(8 + i % 25).to_ne_bytes());
                lk[4..].copy_from_slice(&i.to_be_bytes());
                // SAFETY: key/value sizes match the maps.
                unsafe {
                    let _ = h2.prog_update(k.as_ptr(), v.as_ptr(), BPF_ANY, 0);
                    let _ = l2.prog_update(k.as_ptr(), v.as_ptr(), BPF_ANY, 0);
                    let _ = t2.prog_update(lk.as_ptr(), v.as_ptr(), BPF_ANY, 0);
                    if i % 3 == 0 {
                        let _ = h2.prog_delete(k.as_ptr());
                        let _ = t2.prog_delete(lk.as_ptr());
                    }
                }
                i = i.wrapping_add(1);
            }
        });
        std::thread::sleep(std::time::Duration::from_micros(
            500 + u64::from(round % 7) * 300,
        ));
        // SAFETY: kills our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        wait_child(pid);
    }
    // A fresh handle on the store: it opens, repairs, passes the checks.
    let s2 = Store::open(&n.0).expect("store opens after the kills");
    s2.repair().expect("repair");
    s2.check().expect("every map consistent");
    for id in s2.map_ids() {
        let m = s2.map_by_id(id).expect("map");
        assert!(
            m.len() <= m.info().max_entries,
            "map {id} holds {} keys after the kills, max_entries {}",
            m.len(),
            m.info().max_entries
        );
        let (key, value) = if m.info().map_type == BPF_MAP_TYPE_LPM_TRIE {
            let mut k = [0u8; 8];
            k[..4].copy_from_slice(&32u32.to_ne_bytes());
            (k.to_vec(), 9u64.to_ne_bytes().to_vec())
        } else {
            (k(1000).to_vec(), 9u64.to_ne_bytes().to_vec())
        };
        // Room for a new key: drop one if full (the kernel's hash would say E2BIG).
        if m.update(&key, &value, BPF_ANY).is_err() {
            let first = m.iter().next().expect("a key").expect("walk");
            m.delete(&first).expect("delete");
            m.update(&key, &value, BPF_ANY)
                .expect("update after recovery");
        }
        let mut out = [0u8; 8];
        m.lookup(&key, &mut out).expect("lookup");
        assert_eq!(u64::from_ne_bytes(out), 9);
    }
    s2.check().expect("still consistent");
}

/// The allocation cursor is shared memory another process may have damaged
/// after this one opened the store: every allocation checks it before any
/// arithmetic (no overflow panic, no write outside the store).
#[test]
fn a_damaged_alloc_cursor_is_an_error_for_every_allocation() {
    let n = Named::new("cursor");
    let s = Store::create(&n.0, opts(MIN_STORE_SIZE + (64 << 10))).expect("create");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(n.path())
        .expect("file");
    // Header: alloc_cursor at byte 64 (after magic, version, header_size,
    // total_size, ncpus, map_table_cap, map_table_off, obj_table_off,
    // obj_table_cap, meta_lock, data_start).
    let mut cur = [0u8; 8];
    f.read_exact_at(&mut cur, 64).expect("read cursor");
    assert_eq!(u64::from_ne_bytes(cur), (MIN_STORE_SIZE - 4096) as u64);
    for bad in [u64::MAX - 3, u64::MAX, 1, s.size() + 1] {
        f.write_all_at(&bad.to_ne_bytes(), 64).expect("damage");
        let e = s
            .register_btf(&[1, 2, 3])
            .expect_err("btf with a bad cursor");
        assert!(e.to_string().contains("alloc_cursor"), "{e}");
        assert!(s
            .register_program(&ProgramDef {
                name: "p".into(),
                insns: vec![0; 16],
                ..ProgramDef::default()
            })
            .is_err());
        assert!(s.create_map(&array_def(1)).is_err());
    }
    f.write_all_at(&cur, 64).expect("restore");
    s.register_btf(&[1, 2, 3])
        .expect("btf with the cursor restored");
}

/// A program's recorded instruction count and its instructions must agree:
/// listings show the count, runs use the instructions.
#[test]
fn program_instructions_must_match_their_count() {
    let n = Named::new("insncnt");
    let s = Store::create(&n.0, opts(MIN_STORE_SIZE + (64 << 10))).expect("create");
    let id = s
        .register_program(&ProgramDef {
            name: "p".into(),
            insns: vec![0; 16],
            ..ProgramDef::default()
        })
        .expect("program");
    assert_eq!(s.program_insns(id).expect("insns").len(), 16);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(n.path())
        .expect("file");
    // Object table at 4096 + 1024 * 128; slot 0; insn_cnt is the low half of word 3.
    let at = (4096 + 1024 * 128 + 3 * 8) as u64;
    let mut cnt = [0u8; 4];
    f.read_exact_at(&mut cnt, at).expect("read");
    assert_eq!(u32::from_ne_bytes(cnt), 2);
    f.write_all_at(&100u32.to_ne_bytes(), at).expect("damage");
    let e = s
        .program_insns(id)
        .expect_err("count and instructions disagree");
    assert!(e.to_string().contains("insn_cnt 100"), "{e}");
}
