//! rbpf (crates.io) as a peer engine: its interpreter and its x86-64 JIT run the same
//! linked program the runtime runs, so the benchmarks compare engines on one bytecode.
//!
//! - **Linking.** The loader's output refers to maps as `BPF_PSEUDO_MAP_IDX(_VALUE)`
//!   indexes. [`RbpfProgram::link`] rewrites each into a plain `lddw` of the address of
//!   a [`PeerMap`] (or of a value inside it, for global data), a minimal preallocated
//!   table of this crate: array and per-CPU array (one slot, as worker 0 sees it), hash
//!   and per-CPU hash (open addressing, linear probing, tombstones), LPM trie (a linear
//!   longest-prefix scan). Instructions rbpf would run differently from the kernel, or
//!   not at all, are refused with the reason ([`RbpfError::Unsupported`]).
//! - **Helpers**, with rbpf's ABI (`fn(u64, u64, u64, u64, u64) -> u64`, the five
//!   argument registers in, r0 out): map_lookup_elem, map_update_elem,
//!   map_delete_elem, get_smp_processor_id (0). rbpf's JIT calls them with the stack
//!   8 bytes off the ABI's alignment, so it gets `global_asm!` stubs that realign it
//!   and call them through the C ABI; its interpreter calls them as Rust functions.
//! - **Memory layout.** rbpf's `EbpfVmMbuff` hands the program a metadata buffer in r1.
//!   Here it is a copy of the runtime's `struct xdp_md` for a [`runtime::Packet`]: the
//!   frame lies below 4 GiB, so `ldxw` of `ctx->data` and `ctx->data_end` yields the
//!   real addresses, as in the runtime. The frame and the maps' memory are registered
//!   as rbpf's allowed memory, which its interpreter checks every access against; its
//!   JIT checks nothing.
//!
//! The one module of the crate with unsafe code: helpers read keys and values through
//! the pointers a program passes, the JIT's entry point is `unsafe`, and the helper
//! stubs are assembly. The JIT runs
//! only programs vouched for by [`kernel_accepted`].
#![allow(unsafe_code)]

use isa::helpers::func;
use std::cell::Cell;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use isa::{AluOp, CallTarget, Endian, Insn, RawInsn};
use runtime::Packet;

use crate::error::RbpfError;

/// `BPF_MAP_TYPE_*` the peer's table holds.
use isa::uapi::{
    BPF_MAP_TYPE_ARRAY as ARRAY, BPF_MAP_TYPE_HASH as HASH, BPF_MAP_TYPE_LPM_TRIE as LPM_TRIE,
    BPF_MAP_TYPE_PERCPU_ARRAY as PERCPU_ARRAY, BPF_MAP_TYPE_PERCPU_HASH as PERCPU_HASH,
};

/// Helper ids (include/uapi/linux/bpf.h) the peer provides.
const MAP_LOOKUP_ELEM: i32 = func::map_lookup_elem;
const MAP_UPDATE_ELEM: i32 = func::map_update_elem;
const MAP_DELETE_ELEM: i32 = func::map_delete_elem;
const GET_SMP_PROCESSOR_ID: i32 = func::get_smp_processor_id;
const TAIL_CALL: i32 = func::tail_call;

use isa::uapi::{BPF_EXIST, BPF_NOEXIST};

const ENOENT: i32 = 2;
const E2BIG: i32 = 7;
const EEXIST: i32 = 17;
const EINVAL: i32 = 22;

/// Slot states of hash and LPM maps (the first word of each slot).
const EMPTY: u64 = 0;
const USED: u64 = 1;
const DELETED: u64 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Array,
    Hash,
    Lpm,
}

fn round8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// One map of the peer's table: preallocated words, never reallocated, so a value's
/// address stays valid while the map lives. Interior mutability through `Cell`: the
/// programs write values through the pointers lookups return, and nothing here is
/// shared between threads (`Cell` makes the type `!Sync`).
pub struct PeerMap {
    name: String,
    kind: Kind,
    key_size: usize,
    value_size: usize,
    max_entries: usize,
    /// Byte offsets inside a slot (hash and LPM: state word, key, value).
    key_off: usize,
    value_off: usize,
    stride: usize,
    slots: usize,
    len: Cell<usize>,
    mem: Box<[Cell<u64>]>,
}

impl PeerMap {
    fn new(spec: &loader::MapSpec) -> Option<PeerMap> {
        let kind = match spec.map_type {
            ARRAY | PERCPU_ARRAY => Kind::Array,
            HASH | PERCPU_HASH => Kind::Hash,
            LPM_TRIE => Kind::Lpm,
            _ => return None,
        };
        let (key_size, value_size) = (spec.key_size as usize, spec.value_size as usize);
        let max_entries = spec.max_entries.max(1) as usize;
        let (key_off, value_off, stride, slots) = match kind {
            Kind::Array => (0, 0, round8(value_size).max(8), max_entries),
            Kind::Hash | Kind::Lpm => {
                let value_off = 8 + round8(key_size);
                let slots = match kind {
                    Kind::Hash => (max_entries * 2).next_power_of_two(),
                    _ => max_entries,
                };
                (8, value_off, value_off + round8(value_size).max(8), slots)
            }
        };
        let map = PeerMap {
            name: spec.name.clone(),
            kind,
            key_size,
            value_size,
            max_entries,
            key_off,
            value_off,
            stride,
            slots,
            len: Cell::new(0),
            mem: (0..stride / 8 * slots).map(|_| Cell::new(0)).collect(),
        };
        if let (Kind::Array, Some(data)) = (kind, &spec.initial_data) {
            let n = data.len().min(value_size);
            map.write(0, &data[..n]);
        }
        Some(map)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address range of the map's memory (for rbpf's allowed memory).
    fn range(&self) -> Range<u64> {
        let start = self.mem.as_ptr() as u64;
        start..start + (self.mem.len() * 8) as u64
    }

    /// The address of byte `off` of the map's memory.
    fn ptr(&self, off: usize) -> *mut u8 {
        (self.mem.as_ptr() as *mut u8).wrapping_add(off)
    }

    fn state(&self, slot: usize) -> u64 {
        self.mem[slot * self.stride / 8].get()
    }

    fn set_state(&self, slot: usize, state: u64) {
        self.mem[slot * self.stride / 8].set(state)
    }

    /// `len` bytes at byte offset `off`.
    fn bytes(&self, off: usize, len: usize) -> &[u8] {
        assert!(off + len <= self.mem.len() * 8);
        // SAFETY: in bounds (checked above) of memory this map owns; `Cell` words
        // have the layout of `u64`; no write happens while the slice is alive (the
        // map is `!Sync` and no method writes while holding one).
        unsafe { std::slice::from_raw_parts(self.ptr(off), len) }
    }

    fn write(&self, off: usize, data: &[u8]) {
        assert!(off + data.len() <= self.mem.len() * 8);
        // SAFETY: in bounds (checked above); the words are `Cell`s, so writing through
        // a pointer derived from a shared reference is allowed; `data` is not map
        // memory borrowed as a slice of this map (callers copy keys and values from
        // the program's stack or from the caller).
        unsafe { std::ptr::copy(data.as_ptr(), self.ptr(off), data.len()) }
    }

    fn hash(key: &[u8]) -> usize {
        let mut h: u64 = 0;
        for chunk in key.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
        (h ^ (h >> 29)) as usize
    }

    /// The slot holding `key` (hash maps).
    fn find(&self, key: &[u8]) -> Option<usize> {
        let mask = self.slots - 1;
        let mut slot = Self::hash(key) & mask;
        // Keys of at most 8 bytes compare as one word (stored keys are zero-padded).
        let word = (key.len() <= 8).then(|| {
            let mut w = [0u8; 8];
            w[..key.len()].copy_from_slice(key);
            u64::from_ne_bytes(w)
        });
        for _ in 0..self.slots {
            let base = slot * self.stride;
            match self.mem[base / 8].get() {
                EMPTY => return None,
                USED => {
                    let found = match word {
                        Some(w) => self.mem[(base + self.key_off) / 8].get() == w,
                        None => self.bytes(base + self.key_off, self.key_size) == key,
                    };
                    if found {
                        return Some(slot);
                    }
                }
                _ => {}
            }
            slot = (slot + 1) & mask;
        }
        None
    }

    /// LPM: the slot of the longest stored prefix matching `key` (prefixlen, data).
    fn lpm_match(&self, key: &[u8], exact: bool) -> Option<usize> {
        let want = u32::from_ne_bytes(key[..4].try_into().ok()?) as usize;
        let data = &key[4..];
        let mut best: Option<(usize, usize)> = None;
        // LPM entries are packed in slots 0..len (see `update` and `delete`).
        for slot in 0..self.len.get() {
            let entry = self.bytes(slot * self.stride + self.key_off, self.key_size);
            let len = u32::from_ne_bytes(entry[..4].try_into().ok()?) as usize;
            let matches = if exact {
                len == want && prefix_eq(&entry[4..], data, len)
            } else {
                len <= want && prefix_eq(&entry[4..], data, len)
            };
            if matches && best.is_none_or(|(l, _)| len > l) {
                best = Some((len, slot));
            }
        }
        best.map(|(_, slot)| slot)
    }

    /// Byte offset of the value `key` selects, as bpf_map_lookup_elem finds it.
    fn lookup(&self, key: &[u8]) -> Option<usize> {
        match self.kind {
            Kind::Array => {
                let idx = u32::from_ne_bytes(key.get(..4)?.try_into().ok()?) as usize;
                (idx < self.max_entries).then(|| idx * self.stride)
            }
            Kind::Hash => self
                .find(key)
                .map(|slot| slot * self.stride + self.value_off),
            Kind::Lpm => self
                .lpm_match(key, false)
                .map(|slot| slot * self.stride + self.value_off),
        }
    }

    /// A copy of the value `key` selects.
    pub fn lookup_copy(&self, key: &[u8]) -> Option<Vec<u8>> {
        if key.len() != self.key_size {
            return None;
        }
        self.lookup(key)
            .map(|off| self.bytes(off, self.value_size).to_vec())
    }

    /// bpf_map_update_elem: `Err(errno)` as the kernel's.
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), i32> {
        if key.len() != self.key_size || value.len() != self.value_size || flags > BPF_EXIST {
            return Err(EINVAL);
        }
        let existing = match self.kind {
            Kind::Array => {
                let off = self.lookup(key).ok_or(E2BIG)?;
                if flags == BPF_NOEXIST {
                    return Err(EEXIST);
                }
                self.write(off, value);
                return Ok(());
            }
            Kind::Hash => self.find(key),
            Kind::Lpm => {
                let len = u32::from_ne_bytes(key[..4].try_into().map_err(|_| EINVAL)?);
                if len as usize > (self.key_size - 4) * 8 {
                    return Err(EINVAL);
                }
                self.lpm_match(key, true)
            }
        };
        match (existing, flags) {
            (Some(_), BPF_NOEXIST) => return Err(EEXIST),
            (None, BPF_EXIST) => return Err(ENOENT),
            (Some(slot), _) => {
                self.write(slot * self.stride + self.value_off, value);
                return Ok(());
            }
            (None, _) => {}
        }
        if self.len.get() >= self.max_entries {
            return Err(E2BIG);
        }
        let (mask, start) = match self.kind {
            Kind::Hash => (self.slots - 1, Self::hash(key) & (self.slots - 1)),
            // LPM: the next packed slot.
            _ => (usize::MAX, self.len.get()),
        };
        let mut slot = start;
        for _ in 0..self.slots {
            let s = slot % self.slots;
            if self.state(s) != USED {
                self.write(s * self.stride + self.key_off, key);
                self.write(s * self.stride + self.value_off, value);
                self.set_state(s, USED);
                self.len.set(self.len.get() + 1);
                return Ok(());
            }
            slot = (slot + 1) & mask;
        }
        Err(E2BIG)
    }

    /// bpf_map_delete_elem.
    pub fn delete(&self, key: &[u8]) -> Result<(), i32> {
        if key.len() != self.key_size {
            return Err(EINVAL);
        }
        let slot = match self.kind {
            Kind::Array => return Err(EINVAL),
            Kind::Hash => self.find(key),
            Kind::Lpm => self.lpm_match(key, true),
        }
        .ok_or(ENOENT)?;
        let last = self.len.get() - 1;
        if self.kind == Kind::Lpm {
            // Keep the entries packed: the last one moves into the hole.
            if slot != last {
                let entry = self.bytes(last * self.stride, self.stride).to_vec();
                self.write(slot * self.stride, &entry);
            }
            self.set_state(last, EMPTY);
        } else {
            self.set_state(slot, DELETED);
        }
        self.len.set(last);
        Ok(())
    }
}

/// The first `bits` bits of `a` and `b` are equal.
fn prefix_eq(a: &[u8], b: &[u8], bits: usize) -> bool {
    let (bytes, rest) = (bits / 8, bits % 8);
    if a.len() < bytes + (rest > 0) as usize || b.len() < bytes + (rest > 0) as usize {
        return false;
    }
    if a[..bytes] != b[..bytes] {
        return false;
    }
    rest == 0 || (a[bytes] ^ b[bytes]) >> (8 - rest) == 0
}

/// The map a handle (as `link` wrote it into an `lddw`) designates, or `None` for 0.
///
/// # Safety
/// `handle` is 0 or the address of a `PeerMap` that outlives the call.
unsafe fn map_of<'m>(handle: u64) -> Option<&'m PeerMap> {
    // SAFETY: by the caller's contract.
    unsafe { (handle as *const PeerMap).as_ref() }
}

/// `len` bytes of program memory at `addr`, or `None` for a null pointer.
///
/// # Safety
/// `addr` is 0 or points to `len` readable bytes not written during the borrow.
unsafe fn program_bytes<'m>(addr: u64, len: usize) -> Option<&'m [u8]> {
    // SAFETY: by the caller's contract.
    (addr != 0).then(|| unsafe { std::slice::from_raw_parts(addr as *const u8, len) })
}

// The helpers trust their pointer arguments as rbpf's own helpers do: the map handle is
// an address `link` wrote (r1 of a map helper comes from such an `lddw` in the programs
// the peer runs), the key and value point into the program's stack or a map value. rbpf
// checks neither (its interpreter checks only the program's own loads and stores).

fn helper_lookup(map: u64, key: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: see above: a handle from `link` of a map the running program's
    // `RbpfProgram` owns, and a key of the map's key size on the program's stack.
    let (Some(map), Some(key)) = (unsafe { map_of(map) }, unsafe {
        program_bytes(key, map_of(map).map_or(0, |m| m.key_size))
    }) else {
        return 0;
    };
    map.lookup(key).map_or(0, |off| map.ptr(off) as u64)
}

fn helper_update(map: u64, key: u64, value: u64, flags: u64, _: u64) -> u64 {
    // SAFETY: as in `helper_lookup`; the value has the map's value size.
    let Some(map) = (unsafe { map_of(map) }) else {
        return -(EINVAL as i64) as u64;
    };
    // The key and value may point into map memory the update writes, so they are
    // copied first: on the stack when small (no allocation on the hot path).
    let (mut kbuf, mut vbuf) = ([0u8; 32], [0u8; 128]);
    let (mut kvec, mut vvec) = (Vec::new(), Vec::new());
    // SAFETY: as above; the slices end before the map is written.
    let (Some(k), Some(v)) = (unsafe { program_bytes(key, map.key_size) }, unsafe {
        program_bytes(value, map.value_size)
    }) else {
        return -(EINVAL as i64) as u64;
    };
    let key = copy_into(k, &mut kbuf, &mut kvec);
    let value = copy_into(v, &mut vbuf, &mut vvec);
    match map.update(key, value, flags) {
        Ok(()) => 0,
        Err(e) => -(e as i64) as u64,
    }
}

/// `src` copied into `buf` when it fits, else into `spill`.
fn copy_into<'b>(src: &[u8], buf: &'b mut [u8], spill: &'b mut Vec<u8>) -> &'b [u8] {
    if let Some(dst) = buf.get_mut(..src.len()) {
        dst.copy_from_slice(src);
        dst
    } else {
        spill.extend_from_slice(src);
        spill
    }
}

fn helper_delete(map: u64, key: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: as in `helper_lookup`.
    let Some(map) = (unsafe { map_of(map) }) else {
        return -(EINVAL as i64) as u64;
    };
    // SAFETY: as in `helper_lookup`.
    let Some(key) = (unsafe { program_bytes(key, map.key_size) }) else {
        return -(EINVAL as i64) as u64;
    };
    match map.delete(key) {
        Ok(()) => 0,
        Err(e) => -(e as i64) as u64,
    }
}

fn helper_cpu(_: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    0
}

/// The helpers for rbpf's interpreter, which calls them as Rust functions.
const HELPERS: &[(i32, rbpf::Helper)] = &[
    (MAP_LOOKUP_ELEM, helper_lookup),
    (MAP_UPDATE_ELEM, helper_update),
    (MAP_DELETE_ELEM, helper_delete),
    (GET_SMP_PROCESSOR_ID, helper_cpu),
];

// rbpf's x86-64 JIT calls helpers with the stack 8 bytes off the ABI's 16-byte
// alignment (its prologue pushes five registers, reserves 512 bytes and then `call`s
// into the program), so a Rust function that keeps 16-byte values on its stack faults.
// Its JIT therefore calls these stubs, which realign the stack and call the same
// helpers through the C ABI (argument registers untouched, r0 in rax).
#[cfg(target_arch = "x86_64")]
macro_rules! c_helper {
    ($c:ident, $f:ident) => {
        extern "C" fn $c(a: u64, b: u64, c: u64, d: u64, e: u64) -> u64 {
            $f(a, b, c, d, e)
        }
    };
}
#[cfg(target_arch = "x86_64")]
c_helper!(c_lookup, helper_lookup);
#[cfg(target_arch = "x86_64")]
c_helper!(c_update, helper_update);
#[cfg(target_arch = "x86_64")]
c_helper!(c_delete, helper_delete);
#[cfg(target_arch = "x86_64")]
c_helper!(c_cpu, helper_cpu);

#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".text",
    ".p2align 4",
    "bench_rbpf_peer_lookup_stub:",
    "push rbp",
    "mov rbp, rsp",
    "and rsp, -16",
    "call {lookup}",
    "mov rsp, rbp",
    "pop rbp",
    "ret",
    ".p2align 4",
    "bench_rbpf_peer_update_stub:",
    "push rbp",
    "mov rbp, rsp",
    "and rsp, -16",
    "call {update}",
    "mov rsp, rbp",
    "pop rbp",
    "ret",
    ".p2align 4",
    "bench_rbpf_peer_delete_stub:",
    "push rbp",
    "mov rbp, rsp",
    "and rsp, -16",
    "call {delete}",
    "mov rsp, rbp",
    "pop rbp",
    "ret",
    ".p2align 4",
    "bench_rbpf_peer_cpu_stub:",
    "push rbp",
    "mov rbp, rsp",
    "and rsp, -16",
    "call {cpu}",
    "mov rsp, rbp",
    "pop rbp",
    "ret",
    lookup = sym c_lookup,
    update = sym c_update,
    delete = sym c_delete,
    cpu = sym c_cpu,
);

/// The address of a stub above.
#[cfg(target_arch = "x86_64")]
macro_rules! stub_addr {
    ($name:literal) => {{
        let addr: usize;
        // SAFETY: only computes the address of a local label of this object (no
        // memory access, no stack use, flags untouched).
        unsafe {
            std::arch::asm!(
                concat!("lea {0}, [rip + ", $name, "]"),
                out(reg) addr,
                options(nomem, nostack, preserves_flags, pure)
            )
        };
        addr
    }};
}

#[cfg(not(target_arch = "x86_64"))]
fn jit_helpers() -> [(i32, rbpf::Helper); 4] {
    // Never used: `jit_compile` refuses before (rbpf's JIT emits x86-64 code only).
    [
        (MAP_LOOKUP_ELEM, helper_lookup),
        (MAP_UPDATE_ELEM, helper_update),
        (MAP_DELETE_ELEM, helper_delete),
        (GET_SMP_PROCESSOR_ID, helper_cpu),
    ]
}

/// The helpers for rbpf's JIT: the stubs, as `rbpf::Helper` values (the JIT takes
/// only their addresses and calls them with the C ABI; nothing calls them as Rust
/// functions).
#[cfg(target_arch = "x86_64")]
fn jit_helpers() -> [(i32, rbpf::Helper); 4] {
    let stubs = [
        (MAP_LOOKUP_ELEM, stub_addr!("bench_rbpf_peer_lookup_stub")),
        (MAP_UPDATE_ELEM, stub_addr!("bench_rbpf_peer_update_stub")),
        (MAP_DELETE_ELEM, stub_addr!("bench_rbpf_peer_delete_stub")),
        (GET_SMP_PROCESSOR_ID, stub_addr!("bench_rbpf_peer_cpu_stub")),
    ];
    stubs.map(|(id, addr)| {
        // SAFETY: `addr` is the entry of a stub above, code that follows the C ABI for
        // five u64 arguments and a u64 result; rbpf's JIT emits a C-ABI call to the
        // address. The value is never called from Rust.
        (id, unsafe {
            std::mem::transmute::<usize, rbpf::Helper>(addr)
        })
    })
}

/// Why rbpf cannot run `insn` as the kernel does, if it cannot.
fn unsupported(insn: &Insn, raw: RawInsn, pc: usize) -> Option<(String, &'static str)> {
    let why = match *insn {
        Insn::Atomic { op, fetch, .. } => {
            return Some((
                format!("atomic {op:?}{}", if fetch { " fetch" } else { "" }),
                "rbpf's verifier refuses atomic instructions (XADD included)",
            ))
        }
        Insn::Alu {
            op: AluOp::SDiv | AluOp::SMod,
            ..
        } => "signed division (v4): rbpf runs it as unsigned division, with no error",
        Insn::Alu {
            op: AluOp::MovSx(_),
            ..
        } => "sign-extending move (v4): rbpf runs it as a plain move",
        Insn::End {
            kind: Endian::Swap, ..
        } => "bswap (v4): rbpf does not know it",
        Insn::Load {
            sign_extend: true, ..
        } => "sign-extending load (v4): rbpf does not know it",
        Insn::Ja { .. } if raw.code == isa::opcode::BPF_JMP32 | isa::opcode::BPF_JA => {
            "gotol (v4): rbpf has no 32-bit jump offsets"
        }
        Insn::LdPacket { .. } => {
            "legacy packet load (ld_abs/ld_ind): rbpf reads its own mem buffer, not the packet"
        }
        Insn::Call(CallTarget::Kfunc(_)) => "kfunc call: rbpf has none",
        Insn::Call(CallTarget::Helper(TAIL_CALL)) => "bpf_tail_call: rbpf has no tail calls",
        Insn::Call(CallTarget::Helper(id)) if !HELPERS.iter().any(|(h, _)| *h == id) => {
            return Some((
                format!(
                    "call {}",
                    isa::helper_name(id).map_or_else(|| format!("helper {id}"), str::to_string)
                ),
                "no peer helper: the peer provides map_lookup/update/delete_elem and get_smp_processor_id (rbpf's helpers receive r1-r5 only, no run context)",
            ));
        }
        Insn::LdImm64 {
            src: isa::opcode::BPF_PSEUDO_FUNC,
            ..
        } => "the address of a function (a callback, as bpf_loop takes): rbpf has none",
        Insn::LdImm64 { src, .. }
            if src != 0
                && src != isa::opcode::BPF_PSEUDO_MAP_IDX
                && src != isa::opcode::BPF_PSEUDO_MAP_IDX_VALUE =>
        {
            "lddw of a pseudo source other than a map or a map value"
        }
        _ => return None,
    };
    Some((isa::format_insn(insn, pc), why))
}

/// A program linked for rbpf: its bytecode with map handles, and the maps.
pub struct RbpfProgram {
    name: String,
    code: Vec<u8>,
    /// Parallel to the object's maps; `None` where the program refers to none.
    maps: Vec<Option<Box<PeerMap>>>,
    vouched: bool,
}

impl RbpfProgram {
    /// Links program `name` of `object` for rbpf, or says why rbpf cannot run it.
    pub fn link(object: &loader::Object, name: &str) -> Result<RbpfProgram, RbpfError> {
        let prog = object
            .programs
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| RbpfError::NoProgram {
                name: name.to_string(),
            })?;
        let program = || name.to_string();
        let mut insns = prog.insns.clone();
        let mut maps: Vec<Option<Box<PeerMap>>> = object.maps.iter().map(|_| None).collect();
        // Instructions first (what rbpf cannot run), then the maps they refer to.
        let mut decoded = Vec::with_capacity(insns.len());
        let mut pc = 0;
        while pc < insns.len() {
            let insn = isa::decode(&insns, pc).map_err(|e| RbpfError::Decode {
                program: program(),
                pc,
                message: e.to_string(),
            })?;
            if let Some((what, why)) = unsupported(&insn, insns[pc], pc) {
                return Err(RbpfError::Unsupported {
                    program: program(),
                    pc,
                    what,
                    why,
                });
            }
            decoded.push((pc, insn));
            pc += if matches!(insn, Insn::LdImm64 { .. }) {
                2
            } else {
                1
            };
        }
        for (pc, insn) in decoded {
            if let Insn::LdImm64 {
                src, imm, next_imm, ..
            } = insn
            {
                if src != 0 {
                    let index = usize::try_from(imm)
                        .ok()
                        .filter(|&i| i < object.maps.len())
                        .ok_or(RbpfError::BadMapRef {
                            program: program(),
                            pc,
                            index: imm,
                        })?;
                    if maps[index].is_none() {
                        let spec = &object.maps[index];
                        let map = PeerMap::new(spec).ok_or_else(|| RbpfError::UnsupportedMap {
                            program: program(),
                            map: spec.name.clone(),
                            map_type: spec.map_type,
                        })?;
                        maps[index] = Some(Box::new(map));
                    }
                    let map = maps[index].as_deref().ok_or(RbpfError::BadMapRef {
                        program: program(),
                        pc,
                        index: imm,
                    })?;
                    let addr = if src == isa::opcode::BPF_PSEUDO_MAP_IDX {
                        map as *const PeerMap as u64
                    } else {
                        // Global data: the address of byte `next_imm` of the value.
                        if map.kind != Kind::Array || next_imm as u32 as usize >= map.value_size {
                            return Err(RbpfError::BadMapRef {
                                program: program(),
                                pc,
                                index: imm,
                            });
                        }
                        map.ptr(next_imm as u32 as usize) as u64
                    };
                    insns[pc].src = 0;
                    insns[pc].imm = addr as u32 as i32;
                    insns[pc + 1].imm = (addr >> 32) as u32 as i32;
                }
            }
        }
        let code: Vec<u8> = insns.iter().flat_map(|i| i.to_bytes()).collect();
        rbpf::EbpfVmMbuff::new(Some(&code)).map_err(|e| RbpfError::Rejected {
            program: program(),
            message: e.to_string(),
        })?;
        Ok(RbpfProgram {
            name: name.to_string(),
            vouched: kernel_accepted(&prog.insns),
            code,
            maps,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The peer map named `name`, if the program refers to it.
    pub fn map(&self, name: &str) -> Option<&PeerMap> {
        self.maps
            .iter()
            .flatten()
            .map(|m| &**m)
            .find(|m| m.name == name)
    }

    fn vm(&self, packet: &Packet, jit: bool) -> Result<rbpf::EbpfVmMbuff<'_>, RbpfError> {
        let mut vm = rbpf::EbpfVmMbuff::new(Some(&self.code)).map_err(|e| RbpfError::Rejected {
            program: self.name.clone(),
            message: e.to_string(),
        })?;
        let helpers = if jit {
            jit_helpers().to_vec()
        } else {
            HELPERS.to_vec()
        };
        for (id, f) in helpers {
            vm.register_helper(id as u32, f)
                .map_err(|e| RbpfError::Rejected {
                    program: self.name.clone(),
                    message: e.to_string(),
                })?;
        }
        let frame = packet.hard_start();
        vm.register_allowed_memory(frame..frame + runtime::xdp::FRAME_SIZE as u64);
        for map in self.maps.iter().flatten() {
            vm.register_allowed_memory(map.range());
        }
        Ok(vm)
    }

    /// Whether rbpf's JIT compiles the program (nothing runs).
    pub fn jit_compiles(&self) -> Result<(), RbpfError> {
        let packet = Packet::new(&[0; 64]).map_err(|e| self.packet_error(e))?;
        let mut vm = self.vm(&packet, true)?;
        self.jit_compile(&mut vm)
    }

    fn jit_compile(&self, vm: &mut rbpf::EbpfVmMbuff<'_>) -> Result<(), RbpfError> {
        if cfg!(not(target_arch = "x86_64")) {
            return Err(RbpfError::JitFailed {
                program: self.name.clone(),
                message: "rbpf's JIT emits x86-64 code only".into(),
            });
        }
        // rbpf's JIT asserts when the code outgrows its one-page buffer: a panic here
        // is its refusal, reported as an error.
        match catch_unwind(AssertUnwindSafe(|| vm.jit_compile())) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(RbpfError::JitFailed {
                program: self.name.clone(),
                message: e.to_string(),
            }),
            Err(panic) => Err(RbpfError::JitFailed {
                program: self.name.clone(),
                message: format!(
                    "its code generator panicked ({}); it writes the code of one program into one 4 KiB page",
                    panic_message(&*panic)
                ),
            }),
        }
    }

    fn packet_error(&self, e: runtime::PacketError) -> RbpfError {
        RbpfError::Packet {
            program: self.name.clone(),
            message: e.to_string(),
        }
    }

    /// rbpf's interpreter on a frame holding `packet`.
    pub fn interpreter(&self, packet: &[u8]) -> Result<RbpfVm<'_>, RbpfError> {
        let pkt = Packet::new(packet).map_err(|e| self.packet_error(e))?;
        let vm = self.vm(&pkt, false)?;
        Ok(RbpfVm::new(self, vm, pkt, false))
    }

    /// rbpf's JIT on a frame holding `packet`; only for the programs
    /// [`kernel_accepted`] vouches for, since the JIT checks no memory access.
    pub fn jit(&self, packet: &[u8]) -> Result<RbpfVm<'_>, RbpfError> {
        if !self.vouched {
            return Err(RbpfError::NotVouched {
                program: self.name.clone(),
            });
        }
        let pkt = Packet::new(packet).map_err(|e| self.packet_error(e))?;
        let mut vm = self.vm(&pkt, true)?;
        self.jit_compile(&mut vm)?;
        Ok(RbpfVm::new(self, vm, pkt, true))
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// The bpf-progs objects whose programs the JIT may run (see [`kernel_accepted`]).
const VOUCHED_OBJECTS: &[&str] = &["xdp_counter", "xdp_parser", "xdp_fw", "xdp_stats"];

/// Whether `insns` (a linked program, before map handles) is one of the programs the
/// JIT may run: a program of the bpf-progs benchmark objects, byte for byte as the
/// loader links it from the committed object (the kernel's verifier accepts these: the
/// oracle tests load every one), or the hand-assembled pure parser (accepted by the
/// kernel in this crate's tests). The kernel's proofs assume the kernel's semantics;
/// rbpf differs on some (DESIGN.md decision 1), and the tests check that the peer's
/// results equal the runtime's on the benchmark workloads.
pub fn kernel_accepted(insns: &[RawInsn]) -> bool {
    if insns == isa::encode_all(&crate::pure_parser::insns()).as_slice() {
        return true;
    }
    VOUCHED_OBJECTS.iter().any(|name| {
        let path = crate::bpf_object(name);
        let Some(object) = std::fs::read(Path::new(&path))
            .ok()
            .and_then(|b| loader::Object::parse(&b).ok())
        else {
            return false;
        };
        object.programs.iter().any(|p| p.insns == insns)
    })
}

/// One rbpf engine (interpreter or JIT) with its packet frame.
pub struct RbpfVm<'a> {
    program: &'a RbpfProgram,
    vm: rbpf::EbpfVmMbuff<'a>,
    jit: bool,
    packet: Packet,
    /// The metadata buffer rbpf hands the program in r1: `struct xdp_md`.
    mbuff: Box<[u8; runtime::XdpMd::SIZE]>,
}

impl<'a> RbpfVm<'a> {
    fn new(
        program: &'a RbpfProgram,
        vm: rbpf::EbpfVmMbuff<'a>,
        packet: Packet,
        jit: bool,
    ) -> RbpfVm<'a> {
        let mbuff = Box::new(packet.md().to_bytes());
        RbpfVm {
            program,
            vm,
            jit,
            packet,
            mbuff,
        }
    }

    pub fn engine(&self) -> &'static str {
        if self.jit {
            "JIT"
        } else {
            "interpreter"
        }
    }

    /// The frame the program runs on.
    pub fn packet(&self) -> &Packet {
        &self.packet
    }

    /// Refills the frame with `data` (and the context with its addresses).
    pub fn reset(&mut self, data: &[u8]) -> Result<(), RbpfError> {
        self.packet
            .reset(data)
            .map_err(|e| self.program.packet_error(e))?;
        *self.mbuff = self.packet.md().to_bytes();
        Ok(())
    }

    /// Runs the program once on the frame (not reset between runs, as the kernel's
    /// repeat) and returns r0.
    pub fn run(&mut self) -> Result<u64, RbpfError> {
        let result = if self.jit {
            let len = self.mbuff.len();
            // SAFETY: rbpf asks for the buffer for the VM's whole lifetime but only
            // passes its address to the code for this call; the Box lives as long as
            // `self` and nothing else refers to it during the call.
            let mbuff: &'a mut [u8] =
                unsafe { std::slice::from_raw_parts_mut(self.mbuff.as_mut_ptr(), len) };
            // SAFETY: the JIT checks no memory access; the program is one the kernel's
            // verifier accepts (`RbpfProgram::jit` runs only those), so its accesses
            // stay inside the context (the mbuff), the packet frame (below 4 GiB, owned
            // by `self.packet`, not borrowed during the call), its stack and the values
            // the helpers return (maps owned by `self.program`). The helpers' handles
            // are the addresses `link` wrote.
            unsafe { self.vm.execute_program_jit(&mut [], mbuff) }
        } else {
            let (vm, mbuff) = (&self.vm, &self.mbuff[..]);
            match catch_unwind(AssertUnwindSafe(|| vm.execute_program(&[], mbuff))) {
                Ok(r) => r,
                Err(panic) => {
                    return Err(RbpfError::Run {
                        program: self.program.name.clone(),
                        engine: self.engine(),
                        message: format!("rbpf panicked: {}", panic_message(&*panic)),
                    })
                }
            }
        };
        result.map_err(|e| RbpfError::Run {
            program: self.program.name.clone(),
            engine: self.engine(),
            message: e.to_string(),
        })
    }

    /// `repeat` runs (at least one); the last r0 and the time they took.
    pub fn run_repeat(&mut self, repeat: u64) -> Result<(u64, std::time::Duration), RbpfError> {
        let start = std::time::Instant::now();
        let mut ret = 0;
        for _ in 0..repeat.max(1) {
            ret = self.run()?;
        }
        Ok((ret, start.elapsed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(map_type: u32, key_size: u32, value_size: u32, max_entries: u32) -> loader::MapSpec {
        let object = loader::Object::parse(include_bytes!("../../bpf-progs/obj/xdp_counter.o"))
            .expect("template");
        let mut m = object.maps[0].clone();
        m.map_type = map_type;
        m.key_size = key_size;
        m.value_size = value_size;
        m.max_entries = max_entries;
        m.initial_data = None;
        m
    }

    #[test]
    fn hash_follows_the_kernels_flags_and_limits() {
        let m = PeerMap::new(&spec(HASH, 4, 8, 3)).unwrap();
        let k = |i: u32| i.to_ne_bytes();
        let v = |i: u64| i.to_ne_bytes();
        assert_eq!(m.update(&k(1), &v(10), BPF_EXIST), Err(ENOENT));
        assert_eq!(m.update(&k(1), &v(10), 0), Ok(()));
        assert_eq!(m.update(&k(1), &v(11), BPF_NOEXIST), Err(EEXIST));
        assert_eq!(m.update(&k(1), &v(12), BPF_EXIST), Ok(()));
        assert_eq!(m.lookup_copy(&k(1)), Some(v(12).to_vec()));
        assert_eq!(m.update(&k(2), &v(2), 0), Ok(()));
        assert_eq!(m.update(&k(3), &v(3), 0), Ok(()));
        assert_eq!(m.update(&k(4), &v(4), 0), Err(E2BIG), "full");
        assert_eq!(m.delete(&k(2)), Ok(()));
        assert_eq!(m.delete(&k(2)), Err(ENOENT));
        assert_eq!(m.lookup_copy(&k(2)), None);
        assert_eq!(
            m.update(&k(4), &v(4), 0),
            Ok(()),
            "a deleted slot is reused"
        );
        for (key, val) in [(1, 12), (3, 3), (4, 4)] {
            assert_eq!(m.lookup_copy(&k(key)), Some(v(val).to_vec()), "key {key}");
        }
        assert_eq!(m.update(&k(5), &v(5), 4), Err(EINVAL), "unknown flag");
    }

    #[test]
    fn array_is_always_present_and_bounded() {
        let m = PeerMap::new(&spec(ARRAY, 4, 4, 4)).unwrap();
        assert_eq!(m.lookup_copy(&3u32.to_ne_bytes()), Some(vec![0; 4]));
        assert_eq!(m.lookup_copy(&4u32.to_ne_bytes()), None);
        assert_eq!(
            m.update(&3u32.to_ne_bytes(), &[1, 2, 3, 4], BPF_NOEXIST),
            Err(EEXIST)
        );
        assert_eq!(m.update(&3u32.to_ne_bytes(), &[1, 2, 3, 4], 0), Ok(()));
        assert_eq!(m.lookup_copy(&3u32.to_ne_bytes()), Some(vec![1, 2, 3, 4]));
        assert_eq!(m.delete(&3u32.to_ne_bytes()), Err(EINVAL));
    }

    #[test]
    fn lpm_picks_the_longest_matching_prefix() {
        let m = PeerMap::new(&spec(LPM_TRIE, 8, 4, 8)).unwrap();
        let key = |len: u32, addr: [u8; 4]| {
            let mut k = len.to_ne_bytes().to_vec();
            k.extend(addr);
            k
        };
        m.update(&key(8, [10, 0, 0, 0]), &1u32.to_ne_bytes(), 0)
            .unwrap();
        m.update(&key(24, [10, 1, 2, 0]), &2u32.to_ne_bytes(), 0)
            .unwrap();
        m.update(&key(20, [10, 1, 0, 0]), &3u32.to_ne_bytes(), 0)
            .unwrap();
        let hit = |addr| m.lookup_copy(&key(32, addr)).map(|v| v[0]);
        assert_eq!(hit([10, 1, 2, 3]), Some(2));
        assert_eq!(hit([10, 1, 15, 3]), Some(3), "10.1.0.0/20 holds 10.1.15.x");
        assert_eq!(hit([10, 1, 16, 3]), Some(1), "but not 10.1.16.x");
        assert_eq!(hit([11, 1, 2, 3]), None);
        assert_eq!(m.delete(&key(24, [10, 1, 2, 0])), Ok(()));
        assert_eq!(hit([10, 1, 2, 3]), Some(3), "the /20 after the /24 is gone");
        assert_eq!(m.delete(&key(8, [10, 0, 0, 0])), Ok(()));
        assert_eq!(hit([10, 1, 15, 3]), Some(3), "the /20 moved into the hole");
        assert_eq!(hit([10, 1, 16, 3]), None);
        assert_eq!(
            m.update(&key(33, [0; 4]), &0u32.to_ne_bytes(), 0),
            Err(EINVAL)
        );
    }
}

#[cfg(test)]
mod peer_tests {
    use super::*;
    use crate::compare;
    use runtime::jit::JitObject;
    use runtime::Vm;

    const RUNS: usize = 3;

    /// The runtime's interpreter and JIT, `RUNS` runs on one frame: last r0 and frame.
    fn runtime_runs(w: &crate::Workload) -> [(u64, Vec<u8>); 2] {
        let jit = JitObject::compile(&w.loaded, &Default::default()).unwrap();
        let mut vm = Vm::new(0);
        let mut out = Vec::new();
        for engine in 0..2 {
            let mut pkt = w.fresh_packet().unwrap();
            let mut r = 0;
            for _ in 0..RUNS {
                r = if engine == 0 {
                    w.loaded.run(&mut vm, w.prog, &mut pkt)
                } else {
                    jit.run(&mut vm, w.prog, &mut pkt)
                }
                .unwrap();
            }
            out.push((r, pkt.data().to_vec()));
        }
        [out[0].clone(), out[1].clone()]
    }

    #[test]
    fn rbpf_matches_the_runtime_on_the_compared_workloads() {
        for &(label, object, packet) in compare::WORKLOADS {
            let w = compare::workload(object, packet).unwrap();
            let expected = runtime_runs(&w);
            assert_eq!(
                expected[0], expected[1],
                "{label}: the runtime's engines agree"
            );
            for jit in [false, true] {
                let program = RbpfProgram::link(&w.object, w.prog_name()).unwrap();
                let mut vm = if jit {
                    program.jit(&w.packet)
                } else {
                    program.interpreter(&w.packet)
                }
                .unwrap_or_else(|e| panic!("{label}: {e}"));
                let mut r = 0;
                for _ in 0..RUNS {
                    r = vm.run().unwrap_or_else(|e| panic!("{label}: {e}"));
                }
                let got = (r, vm.packet().data().to_vec());
                assert_eq!(got, expected[0], "{label}: rbpf {}", vm.engine());
            }
        }
    }

    /// Every engine's r0 for the pure parser on one packet (one run each).
    fn pure_parser_verdicts(packet: &str) -> Vec<(&'static str, u64)> {
        let w = crate::pure_parser::workload(packet).unwrap();
        let [interp, jit] = runtime_runs(&w);
        let program = RbpfProgram::link(&w.object, crate::pure_parser::NAME).unwrap();
        let rbpf_interp = program.interpreter(&w.packet).unwrap().run().unwrap();
        let rbpf_jit = program.jit(&w.packet).unwrap().run().unwrap();
        let mut out = vec![
            ("runtime interpreter", interp.0),
            ("runtime JIT", jit.0),
            ("rbpf interpreter", rbpf_interp),
            ("rbpf JIT", rbpf_jit),
        ];
        match w.kernel(&[]) {
            Ok(k) => out.push((
                "kernel",
                k.test_run(crate::pure_parser::NAME, &w.packet, 1)
                    .unwrap()
                    .retval as u64,
            )),
            Err(why) => println!("SKIP: pure parser in the kernel: {why}"),
        }
        out
    }

    #[test]
    fn the_pure_parser_parses_as_its_packets_say() {
        // gen.py: UDP to port 53 (dropped), TCP to port 80, IPv6, two VLAN tags before
        // IPv4, IHL 15 in a 54-byte frame (truncated), IHL 6 with TCP.
        for (packet, action) in [
            ("udp", 1),
            ("tcp_syn", 2),
            ("icmp", 2),
            ("ipv6", 2),
            ("vlan_udp", 2),
            ("bad_ihl", 0),
            ("ipv4_opts", 2),
        ] {
            for (engine, r0) in pure_parser_verdicts(packet) {
                assert_eq!(r0, action, "{packet} in the {engine}");
            }
        }
    }

    #[test]
    fn the_counter_map_counts_in_the_peer_table_as_in_the_runtime() {
        let w = compare::workload("xdp_counter", "icmp").unwrap();
        let len = (w.packet.len() as u32).to_ne_bytes();
        runtime_runs(&w);
        let bound = w.loaded.maps.by_name("counter_map").unwrap();
        let entries = bound.map.dump().unwrap();
        let runtime_value = &entries.iter().find(|e| e.key == len).unwrap().values[0];
        // Two engines ran RUNS times each: first store 0, then old + 1.
        assert_eq!(runtime_value, &((2 * RUNS - 1) as u32).to_ne_bytes());
        for jit in [false, true] {
            let program = RbpfProgram::link(&w.object, "xdp_counter").unwrap();
            let mut vm = if jit {
                program.jit(&w.packet)
            } else {
                program.interpreter(&w.packet)
            }
            .unwrap();
            for _ in 0..RUNS {
                assert_eq!(vm.run().unwrap(), 3, "XDP_TX");
            }
            let value = program.map("counter_map").unwrap().lookup_copy(&len);
            assert_eq!(
                value,
                Some(((RUNS - 1) as u32).to_ne_bytes().to_vec()),
                "{}",
                vm.engine()
            );
        }
    }

    fn refusal(insns: Vec<Insn>, maps: &[crate::MapDecl]) -> RbpfError {
        let object = crate::object_from_insns(maps, &[("p", insns)]).unwrap();
        match RbpfProgram::link(&object, "p") {
            Ok(_) => panic!("linked"),
            Err(e) => e,
        }
    }

    #[test]
    fn programs_rbpf_cannot_run_are_refused_with_the_reason() {
        use crate::asm::*;
        let ret = [mov(0, 2), exit()];
        let atomic = Insn::Atomic {
            size: isa::Size::DW,
            op: isa::AtomicOp::Add,
            fetch: false,
            dst: 10,
            src: 1,
            off: -8,
        };
        let e = refusal(
            vec![
                store_imm(isa::Size::DW, 10, -8, 0),
                mov(1, 1),
                atomic,
                ret[0],
                ret[1],
            ],
            &[],
        );
        assert!(
            matches!(e, RbpfError::Unsupported { pc: 2, why, .. } if why.contains("atomic")),
            "{e}"
        );
        let sdiv = Insn::Alu {
            width: isa::Width::W64,
            op: AluOp::SDiv,
            dst: 0,
            src: isa::Operand::Imm(-2),
        };
        let e = refusal(vec![mov(0, 7), sdiv, exit()], &[]);
        assert!(
            matches!(e, RbpfError::Unsupported { pc: 1, why, .. } if why.contains("unsigned")),
            "{e}"
        );
        let jmp_map = crate::MapDecl {
            name: "jmp",
            map_type: 3,
            key_size: 4,
            value_size: 4,
            max_entries: 1,
        };
        let e = refusal(
            vec![ld_map(2, 0), mov(3, 0), call(TAIL_CALL), ret[0], ret[1]],
            std::slice::from_ref(&jmp_map),
        );
        assert!(
            matches!(e, RbpfError::Unsupported { pc: 3, why, .. } if why.contains("tail call")),
            "{e}"
        );
        // The map comes first: a prog_array has no peer map.
        let e = refusal(vec![ld_map(1, 0), ret[0], ret[1]], &[jmp_map]);
        assert!(
            matches!(e, RbpfError::UnsupportedMap { map_type: 3, .. }),
            "{e}"
        );
        let e = refusal(
            vec![call(isa::helpers::func::xdp_adjust_head), ret[0], ret[1]],
            &[],
        );
        assert!(e.to_string().contains("bpf_xdp_adjust_head"), "{e}");
        // rbpf's own verifier: a jump to itself.
        let e = refusal(
            vec![mov(0, 2), jmp(isa::JmpCond::Eq, 0, 1, -1), exit()],
            &[],
        );
        assert!(matches!(e, RbpfError::Rejected { .. }), "{e}");
    }

    #[test]
    fn the_jit_runs_only_vouched_programs() {
        use crate::asm::*;
        // Reads 8 bytes far outside every region: rbpf's interpreter refuses the access,
        // and its JIT (no checks) is not offered.
        let wild = vec![mov(1, 0x1000), load(isa::Size::DW, 0, 1, 0), exit()];
        let object = crate::object_from_insns(&[], &[("wild", wild)]).unwrap();
        let program = RbpfProgram::link(&object, "wild").unwrap();
        let packet = std::fs::read(crate::bpf_packet("udp")).unwrap();
        assert!(matches!(
            program.jit(&packet),
            Err(RbpfError::NotVouched { .. })
        ));
        let err = program.interpreter(&packet).unwrap().run().unwrap_err();
        assert!(
            matches!(
                err,
                RbpfError::Run {
                    engine: "interpreter",
                    ..
                }
            ),
            "{err}"
        );
        // The benchmark programs are vouched for.
        let w = compare::workload("xdp_fw", "tcp_syn").unwrap();
        assert!(kernel_accepted(&w.object.programs[w.prog].insns));
        assert!(!kernel_accepted(&object.programs[0].insns));
    }
}
