//! perf_event_output and the ring buffer helpers (bpf-progs `xdp_events`): the
//! records a consumer reads, against the kernel's. The kernel side opens real
//! perf events (PERF_COUNT_SW_BPF_OUTPUT on CPU 0, PERF_SAMPLE_RAW), puts them in
//! the program's perf_event_array, runs BPF_PROG_TEST_RUN pinned to CPU 0 and
//! reads the samples from the perf mmap rings, and mmaps the ring buffer map to
//! read its records; the runtime's slots and ring must hold the same bytes.
//! Return codes and the other maps are compared for every case by
//! `compare_cases` (bpf_progs::cases()).
//!
//! Unsafe code: perf_event_open, mmap and sched_setaffinity for the kernel side.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use kclient::KernelObject;
use runtime::{LoadedObject, Packet, Vm};

const PROG: &str = "xdp_events";
const RUNS: u32 = 3;
const PAGE: usize = 4096;
/// Pages of each perf ring after its control page (as bpftool's event_pipe: 8).
const PERF_PAGES: usize = 8;

/// ev_rets as signed values, from the raw array values.
fn rets(values: &[Vec<u8>]) -> Vec<i64> {
    values
        .iter()
        .map(|v| i64::from_ne_bytes(v.as_slice().try_into().expect("8-byte value")))
        .collect()
}

/// The runtime: perf slots 0 and 1 live, RUNS runs of `packet`; the records of slot 0,
/// slot 1 and the ring buffer, and ev_rets.
type Records = (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<i64>);

fn runtime_records(packet: &[u8], jit: bool) -> Records {
    let bytes = std::fs::read(bpf_progs::object(PROG)).expect("object");
    let obj = loader::Object::parse(&bytes).expect("parse");
    let store = maps::Store::anonymous(maps::StoreOptions::default()).expect("store");
    let loaded = LoadedObject::load(&obj, &store).expect("load");
    for slot in 0u32..2 {
        loaded
            .update_entry("perf_events", &slot.to_ne_bytes(), &1u32.to_ne_bytes(), 0)
            .expect("attach slot");
    }
    let index = loaded.program_index(Some(PROG)).expect("program");
    let mut pkt = Packet::new(packet).expect("packet");
    let mut vm = Vm::new(0);
    let ret = if jit {
        let j = runtime::jit::JitObject::compile(&loaded, &Default::default()).expect("jit");
        j.run_repeat(&mut vm, index, &mut pkt, RUNS as u64)
    } else {
        loaded.run_repeat(&mut vm, index, &mut pkt, RUNS as u64)
    }
    .expect("run")
    .0;
    assert_eq!(ret, 2, "XDP_PASS");
    let perf = &loaded.maps.by_name("perf_events").expect("perf map").map;
    let mut slots = [Vec::new(), Vec::new()];
    for (i, s) in slots.iter_mut().enumerate() {
        perf.perf_consume(i as u32, usize::MAX, |r| s.push(r.to_vec()))
            .expect("consume");
    }
    let rb = &loaded.maps.by_name("rb_events").expect("ringbuf").map;
    let mut ring = Vec::new();
    rb.ringbuf_consume(usize::MAX, |r| ring.push(r.to_vec()))
        .expect("consume");
    let ev = loaded
        .maps
        .by_name("ev_rets")
        .expect("ev_rets")
        .map
        .dump()
        .expect("dump");
    let values: Vec<Vec<u8>> = ev.into_iter().map(|e| e.values[0].clone()).collect();
    let [s0, s1] = slots;
    (s0, s1, ring, rets(&values))
}

/// The runtime's records, checked against the program's own layout (not against
/// the kernel): header fields and the captured packet bytes.
#[test]
fn perf_and_ring_records_carry_the_header_and_packet_bytes() {
    let packet = std::fs::read(bpf_progs::packet("icmp")).expect("packet");
    for jit in [false, true] {
        let (s0, s1, ring, rets) = runtime_records(&packet, jit);
        assert_eq!(s0.len(), RUNS as usize);
        assert_eq!(s1.len(), RUNS as usize);
        for (run, rec) in s0.iter().enumerate() {
            assert_eq!(rec.len(), 16 + 64, "header + 64 packet bytes");
            assert_eq!(&rec[0..4], &0x4556_4e54u32.to_ne_bytes());
            assert_eq!(u16::from_ne_bytes([rec[4], rec[5]]) as usize, packet.len());
            assert_eq!(u16::from_ne_bytes([rec[6], rec[7]]), 64);
            assert_eq!(
                u32::from_ne_bytes(rec[8..12].try_into().unwrap()),
                run as u32 + 1
            );
            assert_eq!(&rec[16..], &packet[..64]);
            assert_eq!(rec, &s1[run], "slot 1 gets the same record");
        }
        // Per run: the 16-byte header (ringbuf_output), then the 64-byte sample;
        // the discarded 16-byte record is not read.
        assert_eq!(ring.len(), 2 * RUNS as usize);
        for run in 0..RUNS as usize {
            assert_eq!(ring[2 * run], s0[run][..16]);
            assert_eq!(ring[2 * run + 1][..16], s0[run][..16]);
            assert_eq!(ring[2 * run + 1][16..], packet[..48]);
        }
        // Both perf outputs succeeded, the error cases are the kernel's errnos, and
        // the ring holds 3 * 120 bytes (24 + 72 + 24 per run, discards included).
        assert_eq!(&rets[..10], &[0, 0, -7, -22, -14, 0, -22, 1, 1, 0]);
        assert_eq!(&rets[10..], &[360, 4096, 0, 360, 0, 3]);
    }
}

/// Lost records: a full perf ring drops the record, counts it, and the helper
/// returns -ENOSPC (perf_output_begin's error).
#[test]
fn a_full_perf_ring_loses_records_with_enospc() {
    let bytes = std::fs::read(bpf_progs::object(PROG)).expect("object");
    let obj = loader::Object::parse(&bytes).expect("parse");
    let store = maps::Store::anonymous(maps::StoreOptions::default()).expect("store");
    let loaded = LoadedObject::load(&obj, &store).expect("load");
    loaded
        .update_entry("perf_events", &0u32.to_ne_bytes(), &1u32.to_ne_bytes(), 0)
        .expect("attach slot 0");
    let index = loaded.program_index(Some(PROG)).expect("program");
    let mut pkt = Packet::new(&std::fs::read(bpf_progs::packet("icmp")).unwrap()).unwrap();
    let mut vm = Vm::new(0);
    // 88 bytes per record (8 of header + 80): 372 fit in the 32 KiB ring.
    let fit = maps::PERF_RING_SIZE / 88;
    loaded
        .run_repeat(&mut vm, index, &mut pkt, fit + 5)
        .expect("runs");
    let perf = &loaded.maps.by_name("perf_events").unwrap().map;
    assert_eq!(perf.perf_lost(0), 5);
    let ev = loaded.maps.by_name("ev_rets").unwrap().map.dump().unwrap();
    let values: Vec<Vec<u8>> = ev.into_iter().map(|e| e.values[0].clone()).collect();
    assert_eq!(rets(&values)[0], -(libc::ENOSPC as i64));
    assert_eq!(perf.perf_consume(0, usize::MAX, |_| {}), Ok(fit as usize));
}

/// A perf_event_attr (PERF_ATTR_SIZE_VER5 = 112 bytes) for a BPF output event.
fn bpf_output_attr() -> [u64; 14] {
    let mut a = [0u64; 14];
    // type = PERF_TYPE_SOFTWARE (1), size = 112.
    a[0] = 1 | (112u64 << 32);
    a[1] = 10; // config = PERF_COUNT_SW_BPF_OUTPUT
    a[2] = 1; // sample_period
    a[3] = 1 << 10; // sample_type = PERF_SAMPLE_RAW
    a[6] = 1; // wakeup_events
    a
}

/// A perf event on CPU 0 with its ring mapped; unmapped and closed on drop.
struct PerfRing {
    fd: OwnedFd,
    base: *mut u8,
    len: usize,
}

impl PerfRing {
    fn open() -> Result<PerfRing, String> {
        let attr = bpf_output_attr();
        // SAFETY: `attr` is a perf_event_attr of the size it declares; the kernel
        // only reads it.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                attr.as_ptr(),
                -1 as libc::pid_t,
                0 as libc::c_int,
                -1 as libc::c_int,
                8 as libc::c_ulong, // PERF_FLAG_FD_CLOEXEC
            )
        };
        if fd < 0 {
            return Err(format!(
                "perf_event_open: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: a descriptor perf_event_open just returned, owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let len = PAGE * (1 + PERF_PAGES);
        // SAFETY: a fresh shared mapping of the event's ring; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!(
                "mmap perf ring: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(PerfRing {
            fd,
            base: base as *mut u8,
            len,
        })
    }

    fn word(&self, off: usize) -> u64 {
        // SAFETY: `off` is a field of the control page (perf_event_mmap_page), mapped.
        unsafe { std::ptr::read_volatile(self.base.add(off) as *const u64) }
    }

    /// The raw data of every PERF_RECORD_SAMPLE (and the count of PERF_RECORD_LOST).
    fn samples(&self) -> (Vec<Vec<u8>>, u64) {
        let head = self.word(1024); // data_head
        let (off, size) = (self.word(1040) as usize, self.word(1048) as usize);
        let data = self.base.wrapping_add(off);
        let byte = |pos: u64| {
            // SAFETY: inside the data pages (pos modulo their size).
            unsafe { *data.add(pos as usize % size) }
        };
        let read = |pos: u64, n: usize| (0..n).map(|i| byte(pos + i as u64)).collect::<Vec<u8>>();
        let (mut pos, mut out, mut lost) = (0u64, Vec::new(), 0);
        while pos < head {
            let h = read(pos, 8);
            let ty = u32::from_ne_bytes(h[0..4].try_into().unwrap());
            let len = u16::from_ne_bytes([h[6], h[7]]) as u64;
            if ty == 9 {
                // PERF_RECORD_SAMPLE with PERF_SAMPLE_RAW: u32 size, then the data.
                let n = u32::from_ne_bytes(read(pos + 8, 4).try_into().unwrap()) as usize;
                out.push(read(pos + 12, n));
            } else if ty == 2 {
                lost += u64::from_ne_bytes(read(pos + 16, 8).try_into().unwrap());
            }
            if len == 0 {
                break;
            }
            pos += len;
        }
        (out, lost)
    }
}

impl Drop for PerfRing {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, no longer used.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

/// The committed records of the kernel's ring buffer map, read through its mmap.
fn kernel_ring_records(
    fd: std::os::fd::BorrowedFd<'_>,
    size: usize,
) -> Result<Vec<Vec<u8>>, String> {
    let len = PAGE + 2 * size;
    // SAFETY: the producer page and the (doubly mapped) data, read-only, as
    // libbpf's ring_buffer__add maps them.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            PAGE as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!("mmap ringbuf: {}", std::io::Error::last_os_error()));
    }
    let base = p as *const u8;
    // SAFETY: the producer position is the first word of the mapping.
    let prod = unsafe { std::ptr::read_volatile(base as *const u64) };
    let data = base.wrapping_add(PAGE);
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < prod {
        let at = (pos as usize) & (size - 1);
        // SAFETY: `at + 8 + record` stays inside the double mapping of the data.
        let hdr = unsafe { std::ptr::read_volatile(data.add(at) as *const u32) };
        let n = (hdr & 0x3fff_ffff) as usize;
        if hdr & (1 << 31) != 0 {
            break; // busy
        }
        if hdr & (1 << 30) == 0 {
            // SAFETY: as above.
            out.push(unsafe { std::slice::from_raw_parts(data.add(at + 8), n) }.to_vec());
        }
        pos += ((n + 8 + 7) & !7) as u64;
    }
    // SAFETY: the mapping made above.
    unsafe { libc::munmap(p, len) };
    Ok(out)
}

/// Pins the calling thread to CPU 0 (the perf events' CPU).
fn pin_to_cpu0() -> Result<(), String> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU 0 is inside the set, which is a valid cpu_set_t.
    unsafe { libc::CPU_SET(0, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size given; 0 is this thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r != 0 {
        return Err(format!(
            "sched_setaffinity: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

#[test]
fn perf_samples_and_ring_records_match_the_kernel() {
    if let Err(why) = kclient::available() {
        kclient::skip("kernel perf/ringbuf record comparison", &why);
        return;
    }
    let bytes = std::fs::read(bpf_progs::object(PROG)).expect("object");
    let obj = loader::Object::parse(&bytes).expect("parse");
    let kobj = KernelObject::load(&obj).expect("kernel load");
    let rings = match (PerfRing::open(), PerfRing::open(), pin_to_cpu0()) {
        (Ok(a), Ok(b), Ok(())) => [a, b],
        (a, b, p) => {
            let why = [a.err(), b.err(), p.err()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>();
            println!(
                "SKIP: perf events for the kernel comparison: {}",
                why.join("; ")
            );
            return;
        }
    };
    for (slot, r) in rings.iter().enumerate() {
        kobj.update_elem(
            "perf_events",
            &(slot as u32).to_ne_bytes(),
            &(r.fd.as_raw_fd() as u32).to_ne_bytes(),
            0,
        )
        .expect("perf fd into the kernel's perf_event_array");
    }
    // icmp.bin: longer than the 64 captured bytes.
    let data = std::fs::read(bpf_progs::packet("icmp.bin")).expect("packet");
    let run = kobj.test_run(PROG, &data, RUNS).expect("kernel test run");
    assert_eq!(run.retval, 2);
    let mut kernel_rets = Vec::new();
    for i in 0u32..16 {
        let v = kobj
            .lookup_elem("ev_rets", &i.to_ne_bytes())
            .expect("lookup")
            .expect("array entry");
        kernel_rets.push(v);
    }
    let kernel_rets = rets(&kernel_rets);
    assert_eq!(
        &kernel_rets[..2],
        &[0, 0],
        "the kernel wrote into both perf events"
    );
    let kernel_ring =
        kernel_ring_records(kobj.map_fd("rb_events").expect("fd"), 4096).expect("ring records");
    assert_eq!(kernel_ring.len(), 2 * RUNS as usize);
    let kernel_samples: Vec<_> = rings.iter().map(|r| r.samples()).collect();
    for jit in [false, true] {
        let (s0, s1, ring, ours) = runtime_records(&data, jit);
        assert_eq!(ours, kernel_rets, "ev_rets (jit: {jit})");
        for (slot, (mine, (samples, lost))) in [s0, s1].iter().zip(&kernel_samples).enumerate() {
            assert_eq!(*lost, 0);
            assert_eq!(samples.len(), RUNS as usize, "slot {slot}: kernel samples");
            assert_eq!(samples.len(), mine.len(), "slot {slot}: number of records");
            for (k, m) in samples.iter().zip(mine) {
                // The kernel pads the raw data with zeros so that its u32 size plus
                // the data end on 8 bytes.
                assert_eq!(k.len(), (m.len() + 4).div_ceil(8) * 8 - 4, "slot {slot}");
                assert_eq!(&k[..m.len()], m.as_slice(), "slot {slot}: record bytes");
                assert!(k[m.len()..].iter().all(|&b| b == 0), "zero padding");
            }
        }
        assert_eq!(ring, kernel_ring, "ring buffer records (jit: {jit})");
    }
}
