//! The hostile-program suite: raw XDP programs that attack the runtime (wild
//! pointers, every region's edges, helper arguments, tail calls, division edge
//! cases, atomics, malformed control flow, endless runs, forged entry calls),
//! each with what it must end in: a return value, a trap of a named kind at a
//! named instruction, or a load error naming the problem.
//!
//! The list is data; `runtime/tests/runtime/hostile.rs` runs every program in the
//! interpreter and the JIT (they must agree, and match the expectation) and
//! `shim/tests/shim/hostile.rs` loads and test-runs each through the shim's
//! bpf(2). Map references are `BPF_PSEUDO_MAP_IDX(_VALUE)` indexes into the
//! case's own map list (the runtime binds them in order; the shim passes them
//! through `fd_array`). Nothing here depends on the runtime: trap kinds are named
//! by their `TrapKind` variant names.

/// One 8-byte instruction slot (as `isa::RawInsn`, without depending on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

/// A map the case's programs refer to by its index in [`Hostile::maps`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapSpec {
    pub name: &'static str,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

/// What happens to the maps before each run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Setup {
    /// `map[key] = value`.
    Update {
        map: usize,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Slot `slot` of prog_array `map` holds the program itself.
    SelfInProgArray { map: usize, slot: u32 },
}

/// How a program must end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// It returns this r0 (the shim's test run reports its low 32 bits).
    Ret(u64),
    /// It stops with a trap of this `TrapKind` variant at this instruction slot.
    Trap { kind: &'static str, pc: usize },
    /// Loading it fails with a message containing this fragment (which names the
    /// instruction where there is one).
    LoadError(String),
}

/// The `TrapKind` variant that ends a run over its step budget (issue 11, item 6).
pub const BUDGET_TRAP: &str = "StepBudget";

/// The step budget the suite runs with (`Vm::with_max_steps`, the shim's
/// `XDPSHIM_MAX_STEPS`): the endless cases end after this many backward jumps, calls
/// and callback invocations instead of the default 2^30, which takes minutes in a
/// debug build. Even, so that `loop_through_a_call` (a call and a backward jump
/// taking turns, the call first) runs out at the call. No other case comes near it.
pub const SUITE_MAX_STEPS: u64 = 1 << 20;

/// One hostile program.
#[derive(Clone, Debug)]
pub struct Hostile {
    /// What it attacks.
    pub name: &'static str,
    pub maps: Vec<MapSpec>,
    pub setup: Vec<Setup>,
    pub insns: Vec<Insn>,
    /// The packet it runs on.
    pub packet: Vec<u8>,
    pub expect: Expect,
    /// Where the shim's bpf(2) ends differently (map references go through the
    /// application's `fd_array`), what it must end in there.
    pub shim_expect: Option<Expect>,
}

// Opcodes (the ones isa names, with the lddw pseudo sources, come from isa).
use isa::opcode::{
    BPF_PSEUDO_CALL as PSEUDO_CALL, BPF_PSEUDO_FUNC as PSEUDO_FUNC,
    BPF_PSEUDO_MAP_IDX as PSEUDO_MAP_IDX, BPF_PSEUDO_MAP_IDX_VALUE as PSEUDO_MAP_IDX_VALUE, CALL,
    EXIT, JA, LDDW,
};
const LDXW: u8 = 0x61;
const LDXB: u8 = 0x71;
const LDXDW: u8 = 0x79;
const STW: u8 = 0x62;
const STB: u8 = 0x72;
const STDW: u8 = 0x7a;
const STXW: u8 = 0x63;
const STXB: u8 = 0x73;
const ATOMIC_W: u8 = 0xc3;
const ATOMIC_DW: u8 = 0xdb;
const MOV: u8 = 0xb7;
const MOVR: u8 = 0xbf;
const ADD: u8 = 0x07;
const ADDR: u8 = 0x0f;
const AND: u8 = 0x57;
const LSH: u8 = 0x67;
const JEQ: u8 = 0x15;
const JNE: u8 = 0x55;
const JGTR: u8 = 0x2d;
const JLER: u8 = 0xbd;

// struct xdp_md offsets.
const DATA: i16 = 0;
const DATA_END: i16 = 4;
const DATA_META: i16 = 8;
const INGRESS_IFINDEX: i16 = 12;

// Helper ids.
use isa::helpers::func;
const MAP_LOOKUP: i32 = func::map_lookup_elem;
const MAP_UPDATE: i32 = func::map_update_elem;
const MAP_DELETE: i32 = func::map_delete_elem;
const TAIL_CALL: i32 = func::tail_call;
const PERF_EVENT_OUTPUT: i32 = func::perf_event_output;
const CSUM_DIFF: i32 = func::csum_diff;
const ADJUST_HEAD: i32 = func::xdp_adjust_head;
const ADJUST_META: i32 = func::xdp_adjust_meta;
const ADJUST_TAIL: i32 = func::xdp_adjust_tail;
const SPIN_LOCK: i32 = func::spin_lock;
const SPIN_UNLOCK: i32 = func::spin_unlock;
const PROBE_READ_KERNEL: i32 = func::probe_read_kernel;
const RINGBUF_OUTPUT: i32 = func::ringbuf_output;
const RINGBUF_RESERVE: i32 = func::ringbuf_reserve;
const RINGBUF_SUBMIT: i32 = func::ringbuf_submit;
const RINGBUF_DISCARD: i32 = func::ringbuf_discard;
const BPF_LOOP: i32 = func::r#loop;
const FOR_EACH: i32 = func::for_each_map_elem;
const XDP_LOAD_BYTES: i32 = func::xdp_load_bytes;
const XDP_STORE_BYTES: i32 = func::xdp_store_bytes;
const DYNPTR_READ: i32 = func::dynptr_read;
const DYNPTR_WRITE: i32 = func::dynptr_write;

// Map types.
use isa::uapi::{
    BPF_F_RDONLY_PROG as F_RDONLY_PROG, BPF_MAP_TYPE_ARRAY as ARRAY, BPF_MAP_TYPE_HASH as HASH,
    BPF_MAP_TYPE_PERF_EVENT_ARRAY as PERF_EVENT_ARRAY, BPF_MAP_TYPE_PROG_ARRAY as PROG_ARRAY,
    BPF_MAP_TYPE_RINGBUF as RINGBUF,
};

// Trap kinds.
const OOB: &str = "OutOfBounds";
const MISALIGNED: &str = "MisalignedAtomic";
const CALL_DEPTH: &str = "CallDepth";
const BAD_POINTER: &str = "HelperBadPointer";
const BAD_MAP: &str = "HelperBadMap";
const MAP_TYPE: &str = "HelperMapType";
const BAD_CALLBACK: &str = "HelperBadCallback";

/// r0 of a helper returning `-errno`.
pub const fn neg(errno: i64) -> u64 {
    (-errno) as u64
}
const EINVAL: i64 = 22;
const EFAULT: i64 = 14;
const EACCES: i64 = 13;
const E2BIG: i64 = 7;
const ENOENT: i64 = 2;
const ERANGE: i64 = 34;

/// An assembler for one program: each emitter returns the slot it wrote.
#[derive(Default)]
pub struct Asm {
    pub insns: Vec<Insn>,
}

impl Asm {
    /// The slot the next instruction goes to.
    pub fn pc(&self) -> usize {
        self.insns.len()
    }
    pub fn raw(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) -> usize {
        self.insns.push(Insn {
            code,
            dst,
            src,
            off,
            imm,
        });
        self.insns.len() - 1
    }
    pub fn mov(&mut self, dst: u8, imm: i32) -> usize {
        self.raw(MOV, dst, 0, 0, imm)
    }
    pub fn movr(&mut self, dst: u8, src: u8) -> usize {
        self.raw(MOVR, dst, src, 0, 0)
    }
    pub fn add(&mut self, dst: u8, imm: i32) -> usize {
        self.raw(ADD, dst, 0, 0, imm)
    }
    pub fn lddw(&mut self, dst: u8, v: u64) -> usize {
        let pc = self.raw(LDDW, dst, 0, 0, v as u32 as i32);
        self.raw(0, 0, 0, 0, (v >> 32) as u32 as i32);
        pc
    }
    /// `dst = &map index`.
    pub fn ld_map(&mut self, dst: u8, index: i32) -> usize {
        let pc = self.raw(LDDW, dst, PSEUDO_MAP_IDX, 0, index);
        self.raw(0, 0, 0, 0, 0);
        pc
    }
    /// `dst = &map index's value + off` (array maps).
    pub fn ld_map_value(&mut self, dst: u8, index: i32, off: i32) -> usize {
        let pc = self.raw(LDDW, dst, PSEUDO_MAP_IDX_VALUE, 0, index);
        self.raw(0, 0, 0, 0, off);
        pc
    }
    /// `dst = the function at slot target` (a callback for bpf_loop).
    pub fn ld_func(&mut self, dst: u8, target: usize) -> usize {
        let pc = self.pc();
        self.raw(LDDW, dst, PSEUDO_FUNC, 0, target as i32 - pc as i32 - 1);
        self.raw(0, 0, 0, 0, 0);
        pc
    }
    /// Aims the function load at `from` (an [`Asm::ld_func`]) at the next slot.
    pub fn aim_func(&mut self, from: usize) {
        self.insns[from].imm = self.pc() as i32 - from as i32 - 1;
    }
    pub fn ldx(&mut self, code: u8, dst: u8, src: u8, off: i16) -> usize {
        self.raw(code, dst, src, off, 0)
    }
    pub fn call(&mut self, helper: i32) -> usize {
        self.raw(CALL, 0, 0, 0, helper)
    }
    /// A bpf-to-bpf call to slot `target`.
    pub fn call_local(&mut self, target: usize) -> usize {
        let pc = self.pc();
        self.raw(CALL, 0, PSEUDO_CALL, 0, target as i32 - pc as i32 - 1)
    }
    pub fn exit(&mut self) -> usize {
        self.raw(EXIT, 0, 0, 0, 0)
    }
    /// `r0 = imm; exit`.
    pub fn ret(&mut self, imm: i32) -> usize {
        let pc = self.mov(0, imm);
        self.exit();
        pc
    }
    /// A jump whose target [`Asm::here`] sets later.
    pub fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32) -> usize {
        self.raw(code, dst, src, 0, imm)
    }
    /// Aims the jump at `from` at the next slot.
    pub fn here(&mut self, from: usize) {
        let off = self.pc() as i64 - from as i64 - 1;
        self.insns[from].off = off as i16;
    }
    /// `r2 = ctx->data; r3 = ctx->data_end` (r1 = ctx).
    pub fn pkt(&mut self) {
        self.ldx(LDXW, 2, 1, DATA);
        self.ldx(LDXW, 3, 1, DATA_END);
    }
    /// [`Asm::pkt`], then `if r2 + n > r3 return 1`: n bytes at r2 proven.
    pub fn pkt_checked(&mut self, n: i32) {
        self.pkt();
        self.movr(4, 2);
        self.add(4, n);
        let j = self.jump(JGTR, 4, 3, 0);
        let skip = self.jump(JA, 0, 0, 0);
        self.here(j);
        self.ret(1);
        self.here(skip);
    }
    /// `*(u32 *)(fp - 4) = key; r2 = fp - 4; r1 = &map index; call lookup`; r0 is
    /// the value or NULL.
    pub fn lookup(&mut self, map: i32, key: i32) -> usize {
        self.raw(STW, 10, 0, -4, key);
        self.movr(2, 10);
        self.add(2, -4);
        self.ld_map(1, map);
        self.call(MAP_LOOKUP)
    }
    /// [`Asm::lookup`], then `if r0 == 0 return 2`.
    pub fn lookup_checked(&mut self, map: i32, key: i32) {
        self.lookup(map, key);
        let j = self.jump(JNE, 0, 0, 0);
        self.ret(2);
        self.here(j);
    }
}

fn asm(build: impl FnOnce(&mut Asm)) -> Vec<Insn> {
    let mut a = Asm::default();
    build(&mut a);
    a.insns
}

/// The default packet: 64 bytes counting up from 0 (byte i is i).
pub fn default_packet() -> Vec<u8> {
    (0..64u8).collect()
}

fn array(name: &'static str, value_size: u32, max_entries: u32) -> MapSpec {
    MapSpec {
        name,
        map_type: ARRAY,
        key_size: 4,
        value_size,
        max_entries,
        flags: 0,
    }
}

fn hash(name: &'static str) -> MapSpec {
    MapSpec {
        name,
        map_type: HASH,
        key_size: 4,
        value_size: 8,
        max_entries: 4,
        flags: 0,
    }
}

fn prog_array(name: &'static str) -> MapSpec {
    MapSpec {
        name,
        map_type: PROG_ARRAY,
        key_size: 4,
        value_size: 4,
        max_entries: 2,
        flags: 0,
    }
}

fn ringbuf(name: &'static str) -> MapSpec {
    MapSpec {
        name,
        map_type: RINGBUF,
        key_size: 0,
        value_size: 0,
        max_entries: 4096,
        flags: 0,
    }
}

fn perf_array(name: &'static str) -> MapSpec {
    MapSpec {
        name,
        map_type: PERF_EVENT_ARRAY,
        key_size: 4,
        value_size: 4,
        max_entries: 4,
        flags: 0,
    }
}

struct Suite(Vec<Hostile>);

impl Suite {
    /// A case without maps on the default packet: `build` returns the expectation.
    fn add(&mut self, name: &'static str, build: impl FnOnce(&mut Asm) -> Expect) -> &mut Hostile {
        self.with(name, vec![], build)
    }
    fn with(
        &mut self,
        name: &'static str,
        maps: Vec<MapSpec>,
        build: impl FnOnce(&mut Asm) -> Expect,
    ) -> &mut Hostile {
        let mut a = Asm::default();
        let expect = build(&mut a);
        self.0.push(Hostile {
            name,
            maps,
            setup: vec![],
            insns: a.insns,
            packet: default_packet(),
            expect,
            shim_expect: None,
        });
        self.0.last_mut().expect("just pushed")
    }
}

fn trap(kind: &'static str, pc: usize) -> Expect {
    Expect::Trap { kind, pc }
}

/// Every hostile program.
pub fn suite() -> Vec<Hostile> {
    let mut s = Suite(Vec::new());
    wild_pointers(&mut s);
    stack(&mut s);
    packet(&mut s);
    map_values(&mut s);
    helpers(&mut s);
    tail_calls(&mut s);
    division(&mut s);
    atomics(&mut s);
    control_flow(&mut s);
    calls(&mut s);
    for_each(&mut s);
    endless(&mut s);
    s.0
}

/// The suite as the tests run it: `XDP_HOSTILE=name1,name2` keeps only the named
/// cases, `XDP_HOSTILE_SKIP=name1,...` drops those (to find the case that kills a
/// process).
pub fn selected() -> Vec<Hostile> {
    let list = |var: &str| {
        std::env::var(var)
            .ok()
            .map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>())
    };
    let (only, skip) = (list("XDP_HOSTILE"), list("XDP_HOSTILE_SKIP"));
    suite()
        .into_iter()
        .filter(|c| only.as_ref().is_none_or(|o| o.iter().any(|n| n == c.name)))
        .filter(|c| skip.as_ref().is_none_or(|s| !s.iter().any(|n| n == c.name)))
        .collect()
}

fn wild_pointers(s: &mut Suite) {
    for (name, addr, write) in [
        ("wild_read_null", 0u64, false),
        ("wild_write_null", 0, true),
        ("wild_read_low_page", 0x1000, false),
        ("wild_read_top_of_address_space", u64::MAX - 3, false),
        ("wild_write_top_of_address_space", u64::MAX, true),
        ("wild_read_kernel_half", 0xffff_8880_0000_0000, false),
        ("wild_write_non_canonical", 1 << 47, true),
        ("wild_read_sign_bit", 1 << 63, false),
    ] {
        s.add(name, |a| {
            a.lddw(1, addr);
            let pc = if write {
                a.raw(STDW, 1, 0, 0, 5)
            } else {
                a.ldx(LDXW, 0, 1, 0)
            };
            a.exit();
            trap(OOB, pc)
        });
    }
    s.add("scalar_ingress_ifindex_as_pointer", |a| {
        a.ldx(LDXW, 2, 1, INGRESS_IFINDEX);
        let pc = a.ldx(LDXB, 0, 2, 0);
        a.exit();
        trap(OOB, pc)
    });
    s.add("scalar_packet_bytes_as_pointer", |a| {
        a.pkt_checked(8);
        a.ldx(LDXDW, 4, 2, 0);
        let pc = a.ldx(LDXB, 0, 4, 0);
        a.exit();
        trap(OOB, pc)
    });
    s.add("scalar_sum_of_two_packet_pointers", |a| {
        a.pkt();
        a.raw(ADDR, 2, 3, 0, 0);
        let pc = a.ldx(LDXB, 0, 2, 0);
        a.exit();
        trap(OOB, pc)
    });
    s.add("scalar_packet_pointer_times_two", |a| {
        a.pkt();
        a.raw(0x27, 2, 0, 0, 2);
        let pc = a.ldx(LDXB, 0, 2, 0);
        a.exit();
        trap(OOB, pc)
    });
    s.add("scalar_negated_frame_pointer", |a| {
        a.movr(2, 10);
        a.raw(0x87, 2, 0, 0, 0);
        let pc = a.raw(STB, 2, 0, 0, 1);
        a.exit();
        trap(OOB, pc)
    });
    s.add("scalar_frame_pointer_plus_1m", |a| {
        a.movr(2, 10);
        a.add(2, 1 << 20);
        let pc = a.ldx(LDXDW, 0, 2, 0);
        a.exit();
        trap(OOB, pc)
    });
    s.add("ctx_read_past_the_end", |a| {
        let pc = a.ldx(LDXW, 0, 1, 24);
        a.exit();
        trap(OOB, pc)
    });
    s.add("ctx_read_straddling_the_end", |a| {
        let pc = a.ldx(LDXDW, 0, 1, 20);
        a.exit();
        trap(OOB, pc)
    });
    s.add("ctx_read_before_the_start", |a| {
        let pc = a.ldx(LDXW, 0, 1, -4);
        a.exit();
        trap(OOB, pc)
    });
    s.add("ctx_write_data", |a| {
        let pc = a.raw(STW, 1, 0, DATA, 0);
        a.ret(2);
        trap(OOB, pc)
    });
    s.add("ctx_write_data_end_through_a_copy", |a| {
        a.movr(4, 1);
        a.add(4, 4);
        a.mov(5, 0x7fff_ffff);
        let pc = a.raw(STXW, 4, 5, 0, 0);
        a.ret(2);
        trap(OOB, pc)
    });
}

fn stack(s: &mut Suite) {
    for (name, code, off) in [
        ("stack_read_below_the_frame", LDXDW, -520i16),
        ("stack_write_below_the_frame", STDW, -520),
        ("stack_read_at_the_frame_pointer", LDXB, 0),
        ("stack_write_above_the_frame", STDW, 8),
        ("stack_read_straddling_the_bottom", LDXDW, -516),
        ("stack_read_straddling_the_top", LDXDW, -4),
    ] {
        s.add(name, |a| {
            let pc = if code == STDW {
                a.raw(STDW, 10, 0, off, 1)
            } else {
                a.ldx(code, 0, 10, off)
            };
            a.exit();
            trap(OOB, pc)
        });
    }
    s.add("stack_bottom_slot_is_usable", |a| {
        a.raw(STDW, 10, 0, -512, 7);
        a.ldx(LDXDW, 0, 10, -512);
        a.exit();
        Expect::Ret(7)
    });
    s.add("stack_copy_4k_below", |a| {
        a.movr(1, 10);
        a.add(1, -4096);
        let pc = a.raw(STDW, 1, 0, 0, 1);
        a.exit();
        trap(OOB, pc)
    });
    s.add("stack_copy_4k_above", |a| {
        a.movr(1, 10);
        a.add(1, 4096);
        let pc = a.ldx(LDXDW, 0, 1, 0);
        a.exit();
        trap(OOB, pc)
    });
    s.add("stack_loose_scalar_offset", |a| {
        // fp - 256 + 4 * packet[0] (200) = fp + 544: above the frame.
        a.pkt_checked(1);
        a.ldx(LDXB, 4, 2, 0);
        a.raw(LSH, 4, 0, 0, 2);
        a.movr(5, 10);
        a.add(5, -256);
        a.raw(ADDR, 5, 4, 0, 0);
        let pc = a.raw(STDW, 5, 0, 0, 1);
        a.ret(2);
        trap(OOB, pc)
    })
    .packet[0] = 200;
    // Callees: frames are 512 bytes each, the callee's right below its caller's.
    s.add("callee_reads_above_the_callers_frame", |a| {
        a.call_local(2);
        a.exit();
        a.movr(1, 10);
        a.add(1, 512);
        let pc = a.ldx(LDXDW, 0, 1, 0);
        a.exit();
        trap(OOB, pc)
    });
    s.add("callee_writes_below_its_frame", |a| {
        a.call_local(2);
        a.exit();
        a.movr(1, 10);
        a.add(1, -520);
        let pc = a.raw(STDW, 1, 0, 0, 1);
        a.exit();
        trap(OOB, pc)
    });
    s.add("callee_writes_above_through_the_callers_fp", |a| {
        a.movr(1, 10);
        a.call_local(3);
        a.exit();
        let pc = a.raw(STDW, 1, 0, 0, 1);
        a.exit();
        trap(OOB, pc)
    });
    s.add("caller_writes_through_a_returned_callee_frame", |a| {
        a.call_local(4);
        let pc = a.raw(STDW, 0, 0, 0, 5);
        a.ldx(LDXDW, 0, 0, 0);
        a.exit();
        a.movr(0, 10);
        a.add(0, -8);
        a.exit();
        trap(OOB, pc)
    });
}

fn packet(s: &mut Suite) {
    s.add("packet_read_without_a_range_test", |a| {
        a.pkt();
        a.ldx(LDXB, 0, 2, 5);
        a.exit();
        Expect::Ret(5)
    });
    for (name, code, off) in [
        ("packet_read_one_past_data_end", LDXB, 64i16),
        ("packet_read_far_past_data_end", LDXW, 1000),
        ("packet_read_straddling_data_end", LDXW, 62),
        ("packet_write_one_past_data_end", STB, 64),
        ("packet_read_headroom_before_data", LDXB, -1),
        ("packet_write_at_the_frame_start", STDW, -256),
    ] {
        s.add(name, |a| {
            a.pkt();
            let pc = if code == STB || code == STDW {
                a.raw(code, 2, 0, off, 1)
            } else {
                a.ldx(code, 0, 2, off)
            };
            a.exit();
            trap(OOB, pc)
        });
    }
    s.add("packet_read_tailroom_at_data_end", |a| {
        a.pkt();
        let pc = a.ldx(LDXB, 0, 3, 0);
        a.exit();
        trap(OOB, pc)
    });
    s.add("packet_read_one_past_the_range_test", |a| {
        a.pkt_checked(14);
        let pc = a.ldx(LDXB, 0, 2, 14);
        a.exit();
        trap(OOB, pc)
    })
    .packet
    .truncate(14);
    s.add("packet_range_test_inverted", |a| {
        a.pkt();
        a.movr(4, 2);
        a.add(4, 64);
        let j = a.jump(JLER, 4, 3, 0);
        let pc = a.ldx(LDXB, 0, 2, 63);
        a.exit();
        a.here(j);
        a.ret(1);
        trap(OOB, pc)
    })
    .packet
    .truncate(14);
    s.add("packet_range_test_on_one_path_only", |a| {
        // packet[0] == 0 takes the path without the test.
        a.pkt_checked(1);
        a.ldx(LDXB, 5, 2, 0);
        let j = a.jump(JEQ, 5, 0, 0);
        a.movr(4, 2);
        a.add(4, 200);
        let k = a.jump(JGTR, 4, 3, 0);
        a.here(j);
        let pc = a.ldx(LDXB, 0, 2, 199);
        a.exit();
        a.here(k);
        a.ret(1);
        trap(OOB, pc)
    });
    s.add("packet_range_test_then_adjust_head", |a| {
        a.movr(6, 1);
        a.pkt_checked(40);
        a.movr(7, 2);
        a.movr(1, 6);
        a.mov(2, 32);
        a.call(ADJUST_HEAD);
        let pc = a.ldx(LDXB, 0, 7, 0);
        a.exit();
        trap(OOB, pc)
    });
    s.add("packet_range_test_then_adjust_tail", |a| {
        a.movr(6, 1);
        a.pkt_checked(60);
        a.movr(7, 2);
        a.movr(1, 6);
        a.mov(2, -32);
        a.call(ADJUST_TAIL);
        let pc = a.ldx(LDXB, 0, 7, 59);
        a.exit();
        trap(OOB, pc)
    });
    s.add("packet_meta_read_after_adjust_meta_shrinks_it", |a| {
        // meta grows by 8 (readable), then shrinks back: the old meta pointer is
        // outside again.
        a.movr(6, 1);
        a.mov(2, -8);
        a.call(ADJUST_META);
        a.ldx(LDXW, 7, 6, DATA_META);
        a.ldx(LDXDW, 8, 7, 0);
        a.movr(1, 6);
        a.mov(2, 8);
        a.call(ADJUST_META);
        let pc = a.ldx(LDXDW, 0, 7, 0);
        a.exit();
        trap(OOB, pc)
    });
    s.add("packet_adjust_head_grows_into_zeroed_headroom", |a| {
        a.movr(6, 1);
        a.mov(2, -16);
        a.call(ADJUST_HEAD);
        a.movr(1, 6);
        a.pkt_checked(16);
        a.ldx(LDXDW, 0, 2, 0);
        a.ldx(LDXDW, 5, 2, 8);
        a.raw(ADDR, 0, 5, 0, 0);
        a.ldx(LDXB, 5, 2, 17);
        a.raw(ADDR, 0, 5, 0, 0);
        a.exit();
        Expect::Ret(1)
    });
    for (name, helper, delta, errno) in [
        ("adjust_head_past_the_headroom", ADJUST_HEAD, -300, EINVAL),
        (
            "adjust_head_leaving_less_than_an_ethernet_header",
            ADJUST_HEAD,
            60,
            EINVAL,
        ),
        ("adjust_tail_grow_2g", ADJUST_TAIL, 0x7fff_ffff, EINVAL),
        ("adjust_tail_shrink_everything", ADJUST_TAIL, -64, EINVAL),
        ("adjust_meta_past_data", ADJUST_META, 4, EINVAL),
        ("adjust_meta_unaligned", ADJUST_META, -3, EACCES),
        ("adjust_meta_into_the_xdp_frame", ADJUST_META, -240, EINVAL),
        (
            "adjust_meta_below_the_frame",
            ADJUST_META,
            -0x7fff_ffff,
            EINVAL,
        ),
    ] {
        s.add(name, |a| {
            a.mov(2, delta);
            a.call(helper);
            a.exit();
            Expect::Ret(neg(errno))
        });
    }
    // Kernels since 5.19 take up to 255 bytes of metadata (the skb's u8 meta_len).
    s.add("adjust_meta_over_32_bytes", |a| {
        a.mov(2, -36);
        a.call(ADJUST_META);
        a.exit();
        Expect::Ret(0)
    });
    s.add("packet_loose_scalar_offset", |a| {
        a.pkt_checked(1);
        a.ldx(LDXB, 4, 2, 0);
        a.raw(ADDR, 2, 4, 0, 0);
        let pc = a.ldx(LDXB, 0, 2, 0);
        a.exit();
        trap(OOB, pc)
    })
    .packet[0] = 0xff;
    s.add("packet_masked_offset_straddling_the_end", |a| {
        a.pkt_checked(1);
        a.ldx(LDXB, 4, 2, 0);
        a.raw(AND, 4, 0, 0, 0x3f);
        a.raw(ADDR, 2, 4, 0, 0);
        let pc = a.ldx(LDXW, 0, 2, 0);
        a.exit();
        trap(OOB, pc)
    })
    .packet[0] = 63;
}

fn map_values(s: &mut Suite) {
    // One element: past its value is past the map (the runtime checks that an access
    // lies within one value of the map, so the next element's value would pass).
    let arr = || vec![array("hostile_arr", 8, 1)];
    for (name, code, off) in [
        ("map_value_read_one_past_the_end", LDXB, 8i16),
        ("map_value_read_one_before_the_start", LDXB, -1),
        ("map_value_write_one_past_the_end", STB, 8),
        ("map_value_write_one_before_the_start", STB, -1),
        ("map_value_read_straddling_the_end", LDXDW, 4),
    ] {
        s.with(name, arr(), |a| {
            a.lookup_checked(0, 0);
            let pc = if code == STB {
                a.raw(STB, 0, 0, off, 1)
            } else {
                a.ldx(code, 0, 0, off)
            };
            a.ret(3);
            trap(OOB, pc)
        });
    }
    s.with("map_value_last_byte_is_usable", arr(), |a| {
        a.lookup_checked(0, 0);
        a.raw(STB, 0, 0, 7, 5);
        a.ldx(LDXB, 0, 0, 7);
        a.exit();
        Expect::Ret(5)
    });
    s.with("map_value_null_without_a_test", arr(), |a| {
        a.lookup(0, 5);
        let pc = a.ldx(LDXDW, 0, 0, 0);
        a.exit();
        trap(OOB, pc)
    });
    s.with("map_value_loose_scalar_offset", arr(), |a| {
        a.pkt_checked(1);
        a.ldx(LDXB, 6, 2, 0);
        a.lookup_checked(0, 0);
        a.raw(ADDR, 0, 6, 0, 0);
        let pc = a.ldx(LDXB, 0, 0, 0);
        a.exit();
        trap(OOB, pc)
    })
    .packet[0] = 200;
    s.with(
        "map_value_read_after_the_element_was_deleted",
        vec![hash("hostile_hash")],
        |a| {
            // Values are preallocated, as the kernel's: the freed element still
            // holds its value.
            a.lookup_checked(0, 1);
            a.movr(6, 0);
            a.movr(2, 10);
            a.add(2, -4);
            a.ld_map(1, 0);
            a.call(MAP_DELETE);
            a.ldx(LDXDW, 0, 6, 0);
            a.exit();
            Expect::Ret(42)
        },
    )
    .setup = vec![Setup::Update {
        map: 0,
        key: 1u32.to_ne_bytes().to_vec(),
        value: 42u64.to_ne_bytes().to_vec(),
    }];
    let mut ro = array("hostile_ro", 8, 1);
    ro.flags = F_RDONLY_PROG;
    s.with("map_value_write_to_a_read_only_map", vec![ro], |a| {
        a.lookup_checked(0, 0);
        let pc = a.raw(STB, 0, 0, 0, 1);
        a.ret(3);
        trap(OOB, pc)
    });
    s.with("map_direct_value_past_the_end", arr(), |a| {
        a.ld_map_value(1, 0, 4);
        let pc = a.ldx(LDXW, 0, 1, 4);
        a.exit();
        trap(OOB, pc)
    });
    s.with("map_direct_value_offset_outside_the_value", arr(), |a| {
        a.ld_map_value(1, 0, 8);
        a.ret(0);
        Expect::LoadError("outside the value".into())
    });
    s.with("map_handle_dereferenced", arr(), |a| {
        a.ld_map(1, 0);
        let pc = a.ldx(LDXDW, 0, 1, 0);
        a.exit();
        trap(OOB, pc)
    });
    s.with("map_handle_written", arr(), |a| {
        a.ld_map(1, 0);
        let pc = a.raw(STDW, 1, 0, 8, 0);
        a.ret(0);
        trap(OOB, pc)
    });
    for (name, setup_r1) in [
        ("map_handle_plus_8", 0u8),
        ("map_handle_constant", 1),
        ("map_handle_frame_pointer", 2),
        ("map_handle_ctx", 3),
    ] {
        s.with(name, arr(), |a| {
            a.raw(STW, 10, 0, -4, 0);
            a.movr(2, 10);
            a.add(2, -4);
            match setup_r1 {
                0 => {
                    a.ld_map(1, 0);
                    a.add(1, 8);
                }
                1 => {
                    a.lddw(1, 0x1234);
                }
                2 => {
                    a.movr(1, 10);
                }
                _ => {}
            }
            let pc = a.call(MAP_LOOKUP);
            a.exit();
            trap(BAD_MAP, pc)
        });
    }
    s.with("map_lookup_key_wild", arr(), |a| {
        a.lddw(2, 0x1000);
        a.ld_map(1, 0);
        let pc = a.call(MAP_LOOKUP);
        a.exit();
        trap(BAD_POINTER, pc)
    });
    s.with("map_lookup_key_straddling_the_stack_top", arr(), |a| {
        a.movr(2, 10);
        a.add(2, -2);
        a.ld_map(1, 0);
        let pc = a.call(MAP_LOOKUP);
        a.exit();
        trap(BAD_POINTER, pc)
    });
    s.with("map_update_value_past_data_end", arr(), |a| {
        a.pkt();
        a.raw(STW, 10, 0, -4, 0);
        a.movr(2, 10);
        a.add(2, -4);
        a.movr(3, 3);
        a.add(3, -4);
        a.ld_map(1, 0);
        a.mov(4, 0);
        let pc = a.call(MAP_UPDATE);
        a.exit();
        trap(BAD_POINTER, pc)
    });
    for (name, key, flags, errno) in [
        ("map_update_array_index_out_of_range", 1, 0, E2BIG),
        ("map_update_unknown_flags", 0, 4, EINVAL),
    ] {
        s.with(name, arr(), |a| {
            a.raw(STW, 10, 0, -4, key);
            a.raw(STDW, 10, 0, -16, 9);
            a.movr(2, 10);
            a.add(2, -4);
            a.movr(3, 10);
            a.add(3, -16);
            a.ld_map(1, 0);
            a.mov(4, flags);
            a.call(MAP_UPDATE);
            a.exit();
            Expect::Ret(neg(errno))
        });
    }
    s.with("map_delete_from_an_array", arr(), |a| {
        a.raw(STW, 10, 0, -4, 0);
        a.movr(2, 10);
        a.add(2, -4);
        a.ld_map(1, 0);
        a.call(MAP_DELETE);
        a.exit();
        Expect::Ret(neg(EINVAL))
    });
    s.with(
        "map_lookup_in_a_prog_array",
        vec![prog_array("hostile_pa")],
        |a| {
            let pc = a.lookup(0, 0);
            a.exit();
            trap(MAP_TYPE, pc)
        },
    );
}

fn helpers(s: &mut Suite) {
    s.add("csum_diff_over_512_bytes", |a| {
        a.pkt_checked(1024);
        a.movr(1, 2);
        a.mov(2, 1024);
        a.mov(3, 0);
        a.mov(4, 0);
        a.mov(5, 0);
        a.call(CSUM_DIFF);
        a.exit();
        // ~csum_partial(1024 zero bytes, ~0), folded to 16 bits.
        Expect::Ret(0)
    });
    let h = s.0.last_mut().expect("just added");
    h.packet = vec![0; 1024];
    s.add("csum_diff_size_not_a_multiple_of_4", |a| {
        a.raw(STDW, 10, 0, -8, 0);
        a.movr(1, 10);
        a.add(1, -8);
        a.mov(2, 6);
        a.mov(3, 0);
        a.mov(4, 0);
        a.mov(5, 0);
        a.call(CSUM_DIFF);
        a.exit();
        Expect::Ret(0)
    });
    s.add("csum_diff_from_past_data_end", |a| {
        a.pkt();
        a.movr(1, 3);
        a.add(1, -4);
        a.mov(2, 8);
        a.mov(3, 0);
        a.mov(4, 0);
        a.mov(5, 0);
        let pc = a.call(CSUM_DIFF);
        a.exit();
        trap(BAD_POINTER, pc)
    });
    // A dynptr is program memory: one forged on the stack (data 0x1000) reaches
    // nothing. LOCAL (kind 1) and XDP (kind 4, whose data must be the context).
    for (name, kind, helper) in [
        ("dynptr_read_through_a_forged_local_dynptr", 1, DYNPTR_READ),
        (
            "dynptr_write_through_a_forged_local_dynptr",
            1,
            DYNPTR_WRITE,
        ),
        ("dynptr_read_through_a_forged_xdp_dynptr", 4, DYNPTR_READ),
        ("dynptr_write_through_a_forged_xdp_dynptr", 4, DYNPTR_WRITE),
    ] {
        s.add(name, move |a| {
            a.raw(STDW, 10, 0, -16, 0x1000);
            // Size 8, the kind in bits 28..31 (helpers/dynptr.rs).
            a.raw(0x62, 10, 0, -8, 8 | kind << 28);
            a.raw(0x62, 10, 0, -4, 0);
            a.raw(STDW, 10, 0, -24, 0);
            if helper == DYNPTR_READ {
                // bpf_dynptr_read(fp - 24, 8, fp - 16, 0, 0)
                a.movr(1, 10);
                a.add(1, -24);
                a.mov(2, 8);
                a.movr(3, 10);
                a.add(3, -16);
                a.mov(4, 0);
            } else {
                // bpf_dynptr_write(fp - 16, 0, fp - 24, 8, 0)
                a.movr(1, 10);
                a.add(1, -16);
                a.mov(2, 0);
                a.movr(3, 10);
                a.add(3, -24);
                a.mov(4, 8);
            }
            a.mov(5, 0);
            let pc = a.call(helper);
            a.exit();
            trap(BAD_POINTER, pc)
        });
    }
    s.add("csum_diff_to_wild", |a| {
        a.mov(1, 0);
        a.mov(2, 0);
        a.lddw(3, 0x1000);
        a.mov(4, 4);
        a.mov(5, 0);
        let pc = a.call(CSUM_DIFF);
        a.exit();
        trap(BAD_POINTER, pc)
    });
    s.add("csum_diff_negative_size", |a| {
        a.raw(STDW, 10, 0, -8, 0);
        a.movr(1, 10);
        a.add(1, -8);
        a.mov(2, -8);
        a.mov(3, 0);
        a.mov(4, 0);
        a.mov(5, 0);
        // The kernel's verifier refuses the size; with no size checks left in the
        // helper (6.13 on), 4 GiB - 8 bytes at fp - 8 are memory the program may
        // not read.
        let pc = a.call(CSUM_DIFF);
        a.exit();
        trap(BAD_POINTER, pc)
    });
    // bpf_xdp_load_bytes / store_bytes(ctx, offset, buf, len).
    for (name, helper, off, len, errno) in [
        ("xdp_load_bytes_past_the_end", XDP_LOAD_BYTES, 60, 8, EINVAL),
        (
            "xdp_load_bytes_offset_64k",
            XDP_LOAD_BYTES,
            0x10000,
            4,
            EFAULT,
        ),
        (
            "xdp_store_bytes_past_the_end",
            XDP_STORE_BYTES,
            62,
            4,
            EINVAL,
        ),
        (
            "xdp_store_bytes_offset_negative",
            XDP_STORE_BYTES,
            -4,
            4,
            EFAULT,
        ),
    ] {
        s.add(name, |a| {
            a.raw(STDW, 10, 0, -8, 0);
            a.mov(2, off);
            a.movr(3, 10);
            a.add(3, -8);
            a.mov(4, len);
            a.call(helper);
            a.exit();
            Expect::Ret(neg(errno))
        });
    }
    s.add("xdp_load_bytes_into_a_straddling_buffer", |a| {
        a.mov(2, 0);
        a.movr(3, 10);
        a.add(3, -4);
        a.mov(4, 8);
        let pc = a.call(XDP_LOAD_BYTES);
        a.exit();
        trap(BAD_POINTER, pc)
    });
    s.add("xdp_load_bytes_into_the_ctx", |a| {
        a.mov(2, 0);
        a.movr(3, 1);
        a.mov(4, 8);
        let pc = a.call(XDP_LOAD_BYTES);
        a.exit();
        trap(BAD_POINTER, pc)
    });
    s.add("xdp_load_bytes_negative_len", |a| {
        a.mov(2, 0);
        a.movr(3, 10);
        a.add(3, -8);
        a.mov(4, -1);
        let pc = a.call(XDP_LOAD_BYTES);
        a.exit();
        // The kernel's run-time check says -EFAULT (len > 0xffff), but its
        // verifier refuses the buffer first; the runtime checks the buffer first.
        trap(BAD_POINTER, pc)
    });
    s.add("xdp_store_bytes_from_wild", |a| {
        a.mov(2, 0);
        a.lddw(3, 0x1000);
        a.mov(4, 4);
        let pc = a.call(XDP_STORE_BYTES);
        a.exit();
        trap(BAD_POINTER, pc)
    });
    // bpf_probe_read_kernel(dst, size, src).
    s.add("probe_read_kernel_from_wild", |a| {
        a.raw(STDW, 10, 0, -8, -1);
        a.movr(1, 10);
        a.add(1, -8);
        a.mov(2, 8);
        a.lddw(3, 0x1000);
        a.call(PROBE_READ_KERNEL);
        a.ldx(LDXDW, 5, 10, -8);
        a.raw(ADDR, 0, 5, 0, 0);
        a.exit();
        Expect::Ret(neg(ERANGE))
    });
    // As the kernel (x86-64, 4-level paging): a non-canonical address and the
    // vsyscall page are refused with -ERANGE, dst zeroed; a kernel-half address the
    // runtime does not map is -EFAULT (not asked of the kernel, where it may be mapped).
    for (name, addr) in [
        ("probe_read_kernel_from_non_canonical", 1u64 << 63),
        (
            "probe_read_kernel_from_the_vsyscall_page",
            0xffff_ffff_ff60_0000,
        ),
    ] {
        s.add(name, |a| {
            a.raw(STDW, 10, 0, -8, -1);
            a.movr(1, 10);
            a.add(1, -8);
            a.mov(2, 8);
            a.lddw(3, addr);
            a.call(PROBE_READ_KERNEL);
            a.ldx(LDXDW, 5, 10, -8);
            a.raw(ADDR, 0, 5, 0, 0);
            a.exit();
            Expect::Ret(neg(ERANGE))
        });
    }
    s.with(
        "probe_read_kernel_from_a_map_handle",
        vec![array("hostile_arr", 8, 1)],
        |a| {
            a.movr(1, 10);
            a.add(1, -8);
            a.mov(2, 8);
            a.ld_map(3, 0);
            a.call(PROBE_READ_KERNEL);
            a.exit();
            Expect::Ret(neg(ERANGE))
        },
    );
    s.add("probe_read_kernel_from_the_packet", |a| {
        a.pkt();
        a.movr(3, 2);
        a.movr(1, 10);
        a.add(1, -8);
        a.mov(2, 8);
        a.call(PROBE_READ_KERNEL);
        a.ldx(LDXDW, 5, 10, -8);
        a.raw(ADDR, 0, 5, 0, 0);
        a.exit();
        Expect::Ret(0x0706_0504_0302_0100)
    });
    s.add("probe_read_kernel_into_wild", |a| {
        a.lddw(1, 0x1000);
        a.mov(2, 8);
        a.movr(3, 10);
        a.add(3, -8);
        let pc = a.call(PROBE_READ_KERNEL);
        a.exit();
        trap(BAD_POINTER, pc)
    });
    s.add("probe_read_kernel_size_64k", |a| {
        a.movr(1, 10);
        a.add(1, -8);
        a.mov(2, 0x10000);
        a.movr(3, 10);
        a.add(3, -8);
        let pc = a.call(PROBE_READ_KERNEL);
        a.exit();
        trap(BAD_POINTER, pc)
    });
    // bpf_perf_event_output(ctx, map, flags, data, size).
    let perf = || vec![perf_array("hostile_perf")];
    let peo = |a: &mut Asm, flags: u64, size: i32, map: Option<u64>| {
        a.raw(STDW, 10, 0, -8, 0);
        match map {
            None => {
                a.ld_map(2, 0);
            }
            Some(v) => {
                a.lddw(2, v);
            }
        }
        a.lddw(3, flags);
        a.movr(4, 10);
        a.add(4, -8);
        a.mov(5, size);
        a.call(PERF_EVENT_OUTPUT)
    };
    s.with("perf_event_output_size_64k", perf(), |a| {
        let pc = peo(a, 0xffff_ffff, 0x10000, None);
        a.exit();
        trap(BAD_POINTER, pc)
    });
    s.with("perf_event_output_unknown_flags", perf(), |a| {
        peo(a, 1 << 60, 8, None);
        a.exit();
        Expect::Ret(neg(EINVAL))
    });
    // BPF_F_CTXLEN_MASK: 256 bytes of a 64-byte packet.
    s.with("perf_event_output_ctx_len_past_the_packet", perf(), |a| {
        peo(a, 0x100_ffff_ffff, 8, None);
        a.exit();
        Expect::Ret(neg(EFAULT))
    });
    s.with("perf_event_output_index_out_of_range", perf(), |a| {
        peo(a, 100, 8, None);
        a.exit();
        Expect::Ret(neg(E2BIG))
    });
    s.with("perf_event_output_empty_slot", perf(), |a| {
        peo(a, 0, 8, None);
        a.exit();
        Expect::Ret(neg(ENOENT))
    });
    s.with("perf_event_output_forged_map", perf(), |a| {
        let pc = peo(a, 0, 8, Some(0x1234));
        a.exit();
        trap(BAD_MAP, pc)
    });
    s.with(
        "perf_event_output_to_an_array",
        vec![array("hostile_arr", 8, 1)],
        |a| {
            let pc = peo(a, 0, 8, None);
            a.exit();
            trap(MAP_TYPE, pc)
        },
    );
    // Ring buffers.
    let rb = || vec![ringbuf("hostile_rb")];
    s.with("ringbuf_output_size_64k", rb(), |a| {
        a.ld_map(1, 0);
        a.movr(2, 10);
        a.add(2, -8);
        a.mov(3, 0x10000);
        a.mov(4, 0);
        let pc = a.call(RINGBUF_OUTPUT);
        a.exit();
        trap(BAD_POINTER, pc)
    });
    for (name, size) in [
        ("ringbuf_reserve_64k", 0x10000),
        ("ringbuf_reserve_negative", -8),
    ] {
        s.with(name, rb(), |a| {
            a.ld_map(1, 0);
            a.mov(2, size);
            a.mov(3, 0);
            a.call(RINGBUF_RESERVE);
            a.exit();
            Expect::Ret(0)
        });
    }
    let reserved = |a: &mut Asm| {
        a.ld_map(1, 0);
        a.mov(2, 8);
        a.mov(3, 0);
        a.call(RINGBUF_RESERVE);
        let j = a.jump(JNE, 0, 0, 0);
        a.ret(2);
        a.here(j);
        a.movr(6, 0);
    };
    for (name, helper) in [
        ("ringbuf_write_after_submit", RINGBUF_SUBMIT),
        ("ringbuf_write_after_discard", RINGBUF_DISCARD),
    ] {
        s.with(name, rb(), |a| {
            reserved(a);
            a.movr(1, 6);
            a.mov(2, 0);
            a.call(helper);
            let pc = a.raw(STDW, 6, 0, 0, 1);
            a.ret(0);
            trap(OOB, pc)
        });
    }
    s.with("ringbuf_submit_twice", rb(), |a| {
        reserved(a);
        a.movr(1, 6);
        a.mov(2, 0);
        a.call(RINGBUF_SUBMIT);
        a.movr(1, 6);
        a.mov(2, 0);
        let pc = a.call(RINGBUF_SUBMIT);
        a.ret(0);
        trap(BAD_POINTER, pc)
    });
    s.with("ringbuf_submit_inside_a_record", rb(), |a| {
        reserved(a);
        a.movr(1, 6);
        a.add(1, 4);
        a.mov(2, 0);
        let pc = a.call(RINGBUF_SUBMIT);
        a.ret(0);
        trap(BAD_POINTER, pc)
    });
    s.with("ringbuf_submit_a_stack_pointer", rb(), |a| {
        a.movr(1, 10);
        a.add(1, -8);
        a.mov(2, 0);
        let pc = a.call(RINGBUF_SUBMIT);
        a.ret(0);
        trap(BAD_POINTER, pc)
    });
    s.with("ringbuf_record_read_past_its_end", rb(), |a| {
        reserved(a);
        let pc = a.ldx(LDXDW, 0, 6, 8);
        a.exit();
        trap(OOB, pc)
    });
    s.with(
        "ringbuf_reserve_on_an_array",
        vec![array("hostile_arr", 8, 1)],
        |a| {
            a.ld_map(1, 0);
            a.mov(2, 8);
            a.mov(3, 0);
            let pc = a.call(RINGBUF_RESERVE);
            a.exit();
            trap(MAP_TYPE, pc)
        },
    );
    // Spin locks (the lock word must be 4 writable, aligned bytes).
    s.add("spin_lock_wild", |a| {
        a.lddw(1, 0x1000);
        let pc = a.call(SPIN_LOCK);
        a.exit();
        trap(BAD_POINTER, pc)
    });
    s.add("spin_lock_misaligned", |a| {
        a.raw(STDW, 10, 0, -8, 0);
        a.movr(1, 10);
        a.add(1, -6);
        let pc = a.call(SPIN_LOCK);
        a.exit();
        trap(MISALIGNED, pc)
    });
    s.add("spin_lock_in_the_ctx", |a| {
        let pc = a.call(SPIN_LOCK);
        a.exit();
        trap(BAD_POINTER, pc)
    });
    s.add("spin_lock_taken_twice", |a| {
        a.raw(STDW, 10, 0, -8, 0);
        a.movr(1, 10);
        a.add(1, -8);
        a.call(SPIN_LOCK);
        a.movr(1, 10);
        a.add(1, -8);
        let pc = a.call(SPIN_LOCK);
        a.exit();
        // A lock this run already holds: the kernel's verifier refuses the program.
        trap("SpinLockRelocked", pc)
    });
    s.add("spin_unlock_never_locked", |a| {
        a.raw(STDW, 10, 0, -8, 0);
        a.movr(1, 10);
        a.add(1, -8);
        a.call(SPIN_UNLOCK);
        a.ldx(LDXDW, 0, 10, -8);
        a.exit();
        Expect::Ret(0)
    });
}

fn tail_calls(s: &mut Suite) {
    let pa = || vec![prog_array("hostile_pa")];
    // r3 = index; tail call; r0 = 77.
    for (name, index) in [
        ("tail_call_index_out_of_range", 5u64),
        ("tail_call_index_minus_one", u64::MAX),
        ("tail_call_empty_slot", 1),
        ("tail_call_index_truncated_to_32_bits", 0x1_0000_0001),
    ] {
        s.with(name, pa(), |a| {
            a.ld_map(2, 0);
            a.lddw(3, index);
            a.call(TAIL_CALL);
            a.ret(77);
            Expect::Ret(77)
        })
        .setup = vec![Setup::SelfInProgArray { map: 0, slot: 0 }];
    }
    // A failed tail call continues with the next instruction, whatever the reason
    // (the other helpers trap on a forged map).
    s.with("tail_call_forged_map", pa(), |a| {
        a.lddw(2, 0x1234);
        a.mov(3, 0);
        a.call(TAIL_CALL);
        a.ret(77);
        Expect::Ret(77)
    });
    s.with(
        "tail_call_through_an_array",
        vec![array("hostile_arr", 4, 2)],
        |a| {
            a.ld_map(2, 0);
            a.mov(3, 0);
            a.call(TAIL_CALL);
            a.ret(77);
            Expect::Ret(77)
        },
    );
    s.with("tail_call_into_itself_33_times", pa(), |a| {
        // packet[0] += 1 each run; after the 33rd tail call the 34th fails and
        // the program returns packet[0].
        a.movr(6, 1);
        a.pkt_checked(1);
        a.ldx(LDXB, 7, 2, 0);
        a.add(7, 1);
        a.raw(STXB, 2, 7, 0, 0);
        a.movr(1, 6);
        a.ld_map(2, 0);
        a.mov(3, 0);
        a.call(TAIL_CALL);
        a.movr(0, 7);
        a.exit();
        Expect::Ret(34)
    });
    let h = s.0.last_mut().expect("just added");
    h.setup = vec![Setup::SelfInProgArray { map: 0, slot: 0 }];
}

fn division(s: &mut Suite) {
    // (name, code, off, dividend, divisor, expected): the ISA's rules.
    let min64 = i64::MIN as u64;
    for (name, code, off, a0, b, want) in [
        ("div64_by_zero", 0x3fu8, 0i16, 7u64, 0u64, 0u64),
        ("mod64_by_zero", 0x9f, 0, 7, 0, 7),
        ("sdiv64_by_zero", 0x3f, 1, neg(7), 0, 0),
        ("smod64_by_zero", 0x9f, 1, neg(7), 0, neg(7)),
        ("div32_by_zero", 0x3c, 0, 0x1_0000_0007, 0, 0),
        ("mod32_by_zero", 0x9c, 0, 0x1_2345_6789, 0, 0x2345_6789),
        ("sdiv32_by_zero", 0x3c, 1, neg(7), 0, 0),
        ("smod32_by_zero", 0x9c, 1, neg(7), 0, 0xffff_fff9),
        (
            "sdiv64_int_min_by_minus_one",
            0x3f,
            1,
            min64,
            u64::MAX,
            min64,
        ),
        ("smod64_int_min_by_minus_one", 0x9f, 1, min64, u64::MAX, 0),
        (
            "sdiv32_int_min_by_minus_one",
            0x3c,
            1,
            0xffff_ffff_8000_0000,
            u64::MAX,
            0x8000_0000,
        ),
        (
            "smod32_int_min_by_minus_one",
            0x9c,
            1,
            0x8000_0000,
            0xffff_ffff,
            0,
        ),
    ] {
        s.add(name, |a| {
            a.lddw(0, a0);
            a.lddw(1, b);
            a.raw(code, 0, 1, off, 0);
            a.exit();
            Expect::Ret(want)
        });
    }
    for (name, code, off, a0, imm, want) in [
        ("div64_by_immediate_zero", 0x37u8, 0i16, 9u64, 0i32, 0u64),
        (
            "mod32_by_immediate_zero",
            0x94,
            0,
            0xffff_ffff_0000_0009,
            0,
            9,
        ),
        (
            "sdiv64_int_min_by_immediate_minus_one",
            0x37,
            1,
            min64,
            -1,
            min64,
        ),
        (
            "smod32_int_min_by_immediate_minus_one",
            0x94,
            1,
            0x8000_0000,
            -1,
            0,
        ),
    ] {
        s.add(name, |a| {
            a.lddw(0, a0);
            a.raw(code, 0, 0, off, imm);
            a.exit();
            Expect::Ret(want)
        });
    }
}

fn atomics(s: &mut Suite) {
    s.add("atomic_add64_misaligned_on_the_stack", |a| {
        a.mov(2, 1);
        let pc = a.raw(ATOMIC_DW, 10, 2, -12, 0);
        a.exit();
        trap(MISALIGNED, pc)
    });
    s.add("atomic_xchg32_misaligned_on_the_stack", |a| {
        a.mov(2, 1);
        let pc = a.raw(ATOMIC_W, 10, 2, -6, 0xe1);
        a.exit();
        trap(MISALIGNED, pc)
    });
    s.with(
        "atomic_cmpxchg_misaligned_in_a_map_value",
        vec![array("hostile_arr", 8, 1)],
        |a| {
            a.lookup_checked(0, 0);
            a.mov(2, 1);
            let pc = a.raw(ATOMIC_W, 0, 2, 2, 0xf1);
            a.exit();
            trap(MISALIGNED, pc)
        },
    );
    s.add("atomic_add_on_the_ctx", |a| {
        a.mov(2, 1);
        let pc = a.raw(ATOMIC_W, 1, 2, DATA, 0);
        a.exit();
        trap(OOB, pc)
    });
    s.add("atomic_add_on_the_packet", |a| {
        a.pkt_checked(8);
        a.mov(4, 0x10);
        a.raw(ATOMIC_W, 2, 4, 4, 0);
        a.ldx(LDXW, 0, 2, 4);
        a.exit();
        Expect::Ret(0x0706_0514)
    });
    s.add("atomic_fetch_add_past_data_end", |a| {
        a.pkt();
        a.mov(4, 1);
        let pc = a.raw(ATOMIC_DW, 3, 4, 0, 0x01);
        a.exit();
        trap(OOB, pc)
    });
    s.add("atomic_or_in_the_headroom", |a| {
        a.pkt();
        a.mov(4, 1);
        let pc = a.raw(ATOMIC_DW, 2, 4, -8, 0x40);
        a.exit();
        trap(OOB, pc)
    });
    s.add("atomic_xchg_wild", |a| {
        a.lddw(1, 0x1000);
        a.mov(2, 1);
        let pc = a.raw(ATOMIC_DW, 1, 2, 0, 0xe1);
        a.exit();
        trap(OOB, pc)
    });
    s.with(
        "atomic_cmpxchg_on_a_map_handle",
        vec![array("hostile_arr", 8, 1)],
        |a| {
            a.ld_map(1, 0);
            a.mov(2, 1);
            a.mov(0, 0);
            let pc = a.raw(ATOMIC_DW, 1, 2, 0, 0xf1);
            a.exit();
            trap(OOB, pc)
        },
    );
    let mut ro = array("hostile_ro", 8, 1);
    ro.flags = F_RDONLY_PROG;
    s.with("atomic_fetch_on_a_read_only_map", vec![ro], |a| {
        a.lookup_checked(0, 0);
        a.mov(2, 1);
        let pc = a.raw(ATOMIC_DW, 0, 2, 0, 0x01);
        a.exit();
        trap(OOB, pc)
    });
}

fn control_flow(s: &mut Suite) {
    let err = |f: &str| Expect::LoadError(f.to_string());
    s.add("jump_into_the_middle_of_an_lddw", |a| {
        a.raw(JA, 0, 0, 1, 0);
        a.lddw(0, 1);
        a.exit();
        err("insn 0: jump into the middle of the lddw at 1")
    });
    s.add("conditional_jump_into_the_middle_of_an_lddw", |a| {
        a.mov(0, 0);
        a.raw(JEQ, 0, 0, 1, 0);
        a.lddw(0, 1);
        a.exit();
        err("insn 1: jump into the middle of the lddw at 2")
    });
    s.add("jump_past_the_end", |a| {
        a.mov(0, 0);
        a.raw(JA, 0, 0, 100, 0);
        a.exit();
        err("insn 1: jump to 102 is out of range")
    });
    s.add("jump_to_one_past_the_end", |a| {
        a.mov(0, 0);
        a.raw(JEQ, 0, 0, 1, 0);
        a.exit();
        err("insn 1: jump to 3 is out of range")
    });
    s.add("jump_before_the_start", |a| {
        a.mov(0, 0);
        a.raw(JA, 0, 0, -100, 0);
        a.exit();
        err("insn 1: jump to -98 is out of range")
    });
    s.add("call_past_the_end", |a| {
        a.raw(CALL, 0, PSEUDO_CALL, 0, 100);
        a.exit();
        err("insn 0: call to 101, which is not the start of a function")
    });
    s.add("call_into_the_middle_of_an_lddw", |a| {
        a.raw(CALL, 0, PSEUDO_CALL, 0, 2);
        a.exit();
        a.lddw(0, 1);
        a.exit();
        err("insn 0: call to 3, which is not the start of a function")
    });
    s.add("no_exit", |a| {
        a.mov(0, 0);
        a.mov(0, 1);
        err("insn 1: execution falls off the end")
    });
    s.add("ends_with_a_conditional_jump", |a| {
        a.mov(0, 0);
        a.raw(JEQ, 0, 0, -2, 0);
        err("insn 1: execution falls off the end")
    });
    s.add("ends_with_half_an_lddw", |a| {
        a.mov(0, 0);
        a.raw(LDDW, 0, 0, 0, 1);
        err("insn 1: lddw is truncated")
    });
    for (name, insn, fragment) in [
        (
            "unknown_opcode_0xff",
            (0xffu8, 0u8, 0u8, 0i32),
            "unknown opcode 0xff",
        ),
        (
            "unknown_opcode_0x00",
            (0x00, 0, 0, 0),
            "unknown opcode 0x00",
        ),
        ("callx_opcode", (0x8d, 0, 1, 0), "unknown opcode 0x8d"),
        (
            "legacy_ld_abs",
            (0x20, 0, 0, 0),
            "LD_ABS/LD_IND is not allowed",
        ),
        (
            "legacy_ld_ind",
            (0x40, 0, 1, 0),
            "LD_ABS/LD_IND is not allowed",
        ),
        (
            "alu_immediate_with_a_source_register",
            (0x07, 0, 3, 1),
            "opcode 0x07 uses reserved field src = 3",
        ),
        (
            "byte_swap_of_7_bits",
            (0xdc, 0, 0, 7),
            "invalid byte-swap width 7",
        ),
        ("register_11", (0xb7, 11, 0, 0), "invalid register r11"),
        (
            "unknown_helper_9999",
            (CALL, 0, 0, 9999),
            "unknown helper 9999",
        ),
        (
            "unknown_helper_minus_one",
            (CALL, 0, 0, -1),
            "unknown helper -1",
        ),
        (
            "unsupported_helper_skb_load_bytes",
            (CALL, 0, 0, 26),
            "helper 26 (bpf_skb_load_bytes) is not supported",
        ),
        ("kfunc_call", (CALL, 0, 2, 1234), "kfunc with BTF id 1234"),
        // The helper-table slot of a kfunc (runtime kfunc 1, bpf_iter_num_new) is no
        // helper a program may call.
        (
            "kfunc_slot_as_a_helper",
            (CALL, 0, 0, 0x1_0001),
            "unknown helper 65537",
        ),
        (
            "call_with_an_unknown_source",
            (CALL, 0, 3, 1),
            "call with unknown src 3",
        ),
        (
            "write_to_the_frame_pointer",
            (0xb7, 10, 0, 0),
            "write to the read-only frame pointer r10",
        ),
        (
            "atomic_with_an_unknown_operation",
            (ATOMIC_DW, 10, 1, 0x33),
            "invalid atomic operation 0x33",
        ),
    ] {
        s.add(name, |a| {
            a.mov(0, 0);
            a.raw(insn.0, insn.1, insn.2, 0, insn.3);
            a.exit();
            err(&format!("insn 1: {fragment}"))
        });
    }
    // Through the shim the index reads the application's fd_array (8 entries there,
    // the unused ones -1).
    for (name, index, shim) in [
        (
            "lddw_map_index_5_of_1",
            5,
            "fd -1 is not pointing to valid bpf_map",
        ),
        ("lddw_map_index_minus_one", -1, "0: fd_array"),
    ] {
        s.with(name, vec![array("hostile_arr", 8, 1)], |a| {
            a.ld_map(1, index);
            a.ret(0);
            err(&format!("insn 0: lddw refers to map index {index}"))
        })
        .shim_expect = Some(err(shim));
    }
    s.add("lddw_unknown_pseudo_source", |a| {
        a.raw(LDDW, 1, 3, 0, 0);
        a.raw(0, 0, 0, 0, 0);
        a.ret(0);
        err("insn 0: lddw pseudo source 3")
    });
}

fn calls(s: &mut Suite) {
    s.add("recursion_without_end", |a| {
        let pc = a.call_local(0);
        a.exit();
        trap(CALL_DEPTH, pc)
    });
    // f(r1): if r1 == 0 return 0; return f(r1 - 1) + 1. Main calls f(n): n + 2
    // frames in all.
    for (name, n, ok) in [
        ("recursion_to_exactly_8_frames", 6, true),
        ("recursion_to_9_frames", 7, false),
    ] {
        s.add(name, |a| {
            a.mov(1, n);
            a.call_local(3);
            a.exit();
            let j = a.jump(JNE, 1, 0, 0); // f
            a.ret(0);
            a.here(j);
            a.add(1, -1);
            let pc = a.call_local(3);
            a.add(0, 1);
            a.exit();
            if ok {
                Expect::Ret(n as u64)
            } else {
                trap(CALL_DEPTH, pc)
            }
        });
    }
    s.add("mutual_recursion", |a| {
        a.call_local(2);
        a.exit();
        let f = a.call_local(4); // f calls g
        a.exit();
        a.call_local(2); // g calls f
        a.exit();
        // main(1) f(2) g(3) f(4) g(5) f(6) g(7) f(8): f's call to g is the 9th frame.
        trap(CALL_DEPTH, f)
    });
    // The entry function reached by a call with a forged r1. It tells the two
    // entries apart by ctx->egress_ifindex (0 in a test run, 0xdead in the fake).
    s.add("entry_called_with_r1_at_a_low_address", |a| {
        let pc = a.ldx(LDXW, 9, 1, 20);
        let j = a.jump(JEQ, 9, 0, 0);
        a.ldx(LDXW, 2, 1, DATA);
        a.ldx(LDXB, 0, 2, 0);
        a.exit();
        a.here(j);
        a.lddw(1, 0x1000);
        a.call_local(0);
        a.exit();
        trap(OOB, pc)
    });
    // Fake contexts on the entry's stack: (data, data_end) as given.
    let fake_ctx = |a: &mut Asm, data: &dyn Fn(&mut Asm), end: &dyn Fn(&mut Asm), n: i32| {
        // r5 = data, r4 = data_end (the real ctx in r1), fake ctx at fp-24.
        a.ldx(LDXW, 9, 1, 20);
        let j = a.jump(JNE, 9, 0, 0);
        a.pkt();
        data(a);
        end(a);
        a.raw(STXW, 10, 5, -24, 0);
        a.raw(STXW, 10, 4, -20, 0);
        a.raw(STXW, 10, 5, -16, 0);
        a.raw(STW, 10, 0, -12, 0);
        a.raw(STW, 10, 0, -8, 0);
        a.raw(STW, 10, 0, -4, 0xdead);
        a.movr(1, 10);
        a.add(1, -24);
        a.call_local(0);
        a.exit();
        a.here(j);
        // The forged entry: data/data_end from the fake, a range test, an access.
        a.ldx(LDXW, 2, 1, DATA);
        a.ldx(LDXW, 3, 1, DATA_END);
        a.movr(4, 2);
        a.add(4, n);
        a.jump(JGTR, 4, 3, 0)
    };
    s.add(
        "entry_called_with_a_fake_ctx_on_the_stack_at_low_memory",
        |a| {
            let k = fake_ctx(
                a,
                &|a| {
                    a.mov(5, 0x1000);
                },
                &|a| {
                    a.mov(4, 0x2000);
                },
                8,
            );
            let pc = a.ldx(LDXDW, 0, 2, 0);
            a.exit();
            a.here(k);
            a.ret(1);
            trap(OOB, pc)
        },
    );
    s.add(
        "entry_called_with_a_fake_ctx_writing_below_the_packet",
        |a| {
            let k = fake_ctx(
                a,
                &|a| {
                    a.movr(5, 2);
                    a.add(5, -64);
                },
                &|a| {
                    a.movr(4, 3);
                },
                8,
            );
            let pc = a.raw(STDW, 2, 0, 0, 0x41);
            a.ret(2);
            a.here(k);
            a.ret(1);
            trap(OOB, pc)
        },
    );
    s.add("entry_called_with_a_fake_ctx_reading_past_the_frame", |a| {
        let k = fake_ctx(
            a,
            &|a| {
                a.movr(5, 2);
            },
            &|a| {
                a.movr(4, 2);
                a.add(4, 0x10000);
            },
            0x4008,
        );
        let pc = a.ldx(LDXDW, 0, 2, 0x4000);
        a.exit();
        a.here(k);
        a.ret(1);
        trap(OOB, pc)
    });
    s.add("bpf_loop_callback_is_the_entry_function", |a| {
        a.mov(1, 4);
        a.ld_func(2, 0);
        a.mov(3, 0);
        a.mov(4, 0);
        let pc = a.call(BPF_LOOP);
        a.exit();
        trap(BAD_CALLBACK, pc)
    });
}

/// bpf_for_each_map_elem: the key a callback gets is a read-only copy of key_size
/// bytes (the kernel's PTR_TO_MAP_KEY); the callback must be a subprogram; the map
/// must have elements to walk.
fn for_each(s: &mut Suite) {
    let arr = || vec![array("hostile_arr", 8, 2)];
    // main: bpf_for_each_map_elem(&hostile_arr, callback, 0, 0); return r0.
    // `callback` is the code `body` emits at the next function; its expectation.
    fn walk(a: &mut Asm, body: impl FnOnce(&mut Asm) -> Expect) -> Expect {
        a.ld_map(1, 0);
        let to_cb = a.ld_func(2, 0);
        a.mov(3, 0);
        a.mov(4, 0);
        a.call(FOR_EACH);
        a.exit();
        a.aim_func(to_cb);
        body(a)
    }
    s.with("for_each_callback_reads_the_key", arr(), |a| {
        walk(a, |a| {
            a.ldx(LDXW, 0, 2, 0);
            a.ret(0);
            // Both elements visited.
            Expect::Ret(2)
        })
    });
    s.with("for_each_callback_writes_the_key", arr(), |a| {
        walk(a, |a| {
            let pc = a.raw(STW, 2, 0, 0, 7);
            a.ret(0);
            trap(OOB, pc)
        })
    });
    s.with("for_each_callback_reads_past_the_key", arr(), |a| {
        walk(a, |a| {
            let pc = a.ldx(LDXW, 0, 2, 4);
            a.ret(0);
            trap(OOB, pc)
        })
    });
    s.with("for_each_nested_in_a_callback", arr(), |a| {
        // The outer callback walks the map again (2 calls of the inner one) and
        // returns that count: non-zero, so the outer walk stops after 1 call.
        walk(a, |a| {
            a.ld_map(1, 0);
            let to_inner = a.ld_func(2, 0);
            a.mov(3, 0);
            a.mov(4, 0);
            a.call(FOR_EACH);
            a.exit();
            a.aim_func(to_inner);
            a.ret(0);
            Expect::Ret(1)
        })
    });
    s.with("for_each_callback_is_the_entry_function", arr(), |a| {
        a.ld_map(1, 0);
        a.ld_func(2, 0);
        a.mov(3, 0);
        a.mov(4, 0);
        let pc = a.call(FOR_EACH);
        a.exit();
        trap(BAD_CALLBACK, pc)
    });
    s.with(
        "for_each_over_a_prog_array",
        vec![prog_array("hostile_progs")],
        |a| {
            a.ld_map(1, 0);
            let to_cb = a.ld_func(2, 0);
            a.mov(3, 0);
            a.mov(4, 0);
            let pc = a.call(FOR_EACH);
            a.exit();
            a.aim_func(to_cb);
            a.ret(0);
            trap(MAP_TYPE, pc)
        },
    );
}

fn endless(s: &mut Suite) {
    s.add("loop_ja_minus_one", |a| {
        let pc = a.raw(JA, 0, 0, -1, 0);
        a.exit();
        trap(BUDGET_TRAP, pc)
    });
    s.add("loop_conditional_always_taken", |a| {
        a.mov(0, 0);
        let pc = a.raw(JEQ, 0, 0, -1, 0);
        a.exit();
        trap(BUDGET_TRAP, pc)
    });
    s.add("loop_through_a_call", |a| {
        // The call (a step) and the backward jump (a step) take turns, the call
        // first: an even budget runs out at the call.
        let pc = a.call_local(3);
        a.raw(JA, 0, 0, -2, 0);
        a.exit();
        a.ret(0);
        trap(BUDGET_TRAP, pc)
    });
    s.add("loop_inside_a_callee", |a| {
        a.call_local(2);
        a.exit();
        let pc = a.raw(JA, 0, 0, -1, 0);
        a.exit();
        trap(BUDGET_TRAP, pc)
    });
    s.add("loop_nested_bpf_loop", |a| {
        // main: bpf_loop(1 << 23, cb1); cb1: bpf_loop(1 << 23, cb2); cb2: return 0.
        a.mov(1, 1 << 23);
        let to_cb1 = a.ld_func(2, 0);
        a.mov(3, 0);
        a.mov(4, 0);
        a.call(BPF_LOOP);
        a.exit();
        a.aim_func(to_cb1);
        a.mov(1, 1 << 23);
        let to_cb2 = a.ld_func(2, 0);
        a.mov(3, 0);
        a.mov(4, 0);
        let pc = a.call(BPF_LOOP);
        a.ret(0);
        a.aim_func(to_cb2);
        a.ret(0);
        trap(BUDGET_TRAP, pc)
    });
    s.add("loop_in_a_bpf_loop_callback", |a| {
        a.mov(1, 1);
        let to_cb = a.ld_func(2, 0);
        a.mov(3, 0);
        a.mov(4, 0);
        a.call(BPF_LOOP);
        a.exit();
        a.aim_func(to_cb);
        let pc = a.raw(JA, 0, 0, -1, 0);
        a.ret(0);
        trap(BUDGET_TRAP, pc)
    });
}

/// A straight-line program of `n` instructions (ALU on r0..r3, then exit) and the
/// r0 it returns (the number of `r0 += 1` in it).
pub fn enormous_straight_line(n: usize) -> (Vec<Insn>, u64) {
    asm_enormous(n, false)
}

/// `n` instructions of branch pairs (`if r2 > k goto +1; r0 += 1`) then exit: the
/// shape that makes register allocation expensive. Returns the program and r0.
pub fn enormous_branch_pairs(n: usize) -> (Vec<Insn>, u64) {
    asm_enormous(n, true)
}

fn asm_enormous(n: usize, branches: bool) -> (Vec<Insn>, u64) {
    let mut r0 = 0u64;
    let insns = asm(|a| {
        a.mov(0, 0);
        a.mov(2, 100);
        while a.pc() + 3 <= n {
            if branches {
                // r2 = 100: taken when k < 100, skipping the add.
                let k = (a.pc() % 200) as i32;
                a.raw(0x25, 2, 0, 1, k);
                if k >= 100 {
                    r0 += 1;
                }
            } else {
                a.raw(0xa7, 2, 0, 0, 0x55);
                r0 += 1;
            }
            a.add(0, 1);
        }
        while a.pc() + 1 < n {
            a.mov(3, 0);
        }
        a.exit();
    });
    (insns, r0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_there_are_at_least_100() {
        let all = suite();
        assert!(all.len() >= 100, "{} programs", all.len());
        let mut names: Vec<_> = all.iter().map(|h| h.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate names");
    }

    #[test]
    fn enormous_programs_have_the_asked_length() {
        for n in [3, 10, 1001] {
            assert_eq!(enormous_straight_line(n).0.len(), n);
            assert_eq!(enormous_branch_pairs(n).0.len(), n);
        }
        assert_eq!(enormous_straight_line(10).1, 3);
    }
}
