//! Shared pieces of the benchmarks in `benches/`: workloads loaded from bpf-progs
//! objects or assembled here with the isa encoders, and the tiny programs that call one
//! helper each through the same helper table real programs use.
//!
//! - `benches/engines.rs`: interpreter dispatch (straight-line ALU, branches, a loop),
//!   the seed workload (xdp_counter on an ICMP frame) and the map-heavy workload in
//!   the interpreter, the JIT and the kernel (`BPF_PROG_TEST_RUN`, where permitted).
//! - `benches/helpers.rs`: the hot helpers (map lookup/update on hash, array and
//!   per-CPU maps, xdp_adjust_head/tail, csum_diff, ktime_get_ns, redirect_map,
//!   tail_call), each from a program that does little else, in both engines.
//! - `perf-table.sh`: regenerates README.md's performance table with `xdp-runner bench`
//!   and callgrind.
//! - `rbpf_peer`: rbpf (crates.io), interpreter and x86-64 JIT, as a peer engine on the
//!   same linked programs, with a minimal preallocated map table; `src/bin/compare.rs`
//!   prints every engine side by side on the [`compare`] workloads.
//!
//! Nothing here measures time: the benches do, and the tests only check that every
//! workload runs and does what its name says.
//!
//! No unsafe code outside `rbpf_peer` (rbpf's JIT entry point and its helper ABI).
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod error;
pub mod rbpf_peer;

use isa::helpers::func;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use isa::{AluOp, CallTarget, Insn, JmpCond, Operand, RawInsn, Size, Width};
use runtime::{LoadedObject, Packet};

/// Map type ids (`BPF_MAP_TYPE_*`), short names for `isa::uapi`'s.
pub mod map_type {
    pub use isa::uapi::{
        BPF_MAP_TYPE_ARRAY as ARRAY, BPF_MAP_TYPE_DEVMAP as DEVMAP, BPF_MAP_TYPE_HASH as HASH,
        BPF_MAP_TYPE_PERCPU_ARRAY as PERCPU_ARRAY, BPF_MAP_TYPE_PERCPU_HASH as PERCPU_HASH,
        BPF_MAP_TYPE_PROG_ARRAY as PROG_ARRAY,
    };
}

/// The repository root (this crate's parent directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// `bpf-progs/obj/NAME.o`.
pub fn bpf_object(name: &str) -> PathBuf {
    repo_root().join("bpf-progs/obj").join(format!("{name}.o"))
}

/// `bpf-progs/packets/NAME.bin`.
pub fn bpf_packet(name: &str) -> PathBuf {
    repo_root()
        .join("bpf-progs/packets")
        .join(format!("{name}.bin"))
}

/// A few constructors for [`Insn`], enough for the benchmark programs.
pub mod asm {
    use super::*;

    pub fn mov(dst: u8, imm: i32) -> Insn {
        alu(AluOp::Mov, dst, imm)
    }

    pub fn mov_reg(dst: u8, src: u8) -> Insn {
        alu_reg(AluOp::Mov, dst, src)
    }

    /// 64-bit `dst op= imm`.
    pub fn alu(op: AluOp, dst: u8, imm: i32) -> Insn {
        Insn::Alu {
            width: Width::W64,
            op,
            dst,
            src: Operand::Imm(imm),
        }
    }

    /// 64-bit `dst op= src`.
    pub fn alu_reg(op: AluOp, dst: u8, src: u8) -> Insn {
        Insn::Alu {
            width: Width::W64,
            op,
            dst,
            src: Operand::Reg(src),
        }
    }

    /// 32-bit `dst op= imm`.
    pub fn alu32(op: AluOp, dst: u8, imm: i32) -> Insn {
        Insn::Alu {
            width: Width::W32,
            op,
            dst,
            src: Operand::Imm(imm),
        }
    }

    /// `if dst cond imm goto +off`.
    pub fn jmp(cond: JmpCond, dst: u8, imm: i32, off: i16) -> Insn {
        Insn::Jmp {
            width: Width::W64,
            cond,
            dst,
            src: Operand::Imm(imm),
            off,
        }
    }

    /// `if dst cond src goto +off`.
    pub fn jmp_reg(cond: JmpCond, dst: u8, src: u8, off: i16) -> Insn {
        Insn::Jmp {
            width: Width::W64,
            cond,
            dst,
            src: Operand::Reg(src),
            off,
        }
    }

    /// `dst = *(size *)(src + off)`.
    pub fn load(size: Size, dst: u8, src: u8, off: i16) -> Insn {
        Insn::Load {
            size,
            sign_extend: false,
            dst,
            src,
            off,
        }
    }

    /// `*(size *)(dst + off) = imm`.
    pub fn store_imm(size: Size, dst: u8, off: i16, imm: i32) -> Insn {
        Insn::Store {
            size,
            dst,
            off,
            src: Operand::Imm(imm),
        }
    }

    /// `dst = map #index` (as the loader relocates a map reference).
    pub fn ld_map(dst: u8, index: usize) -> Insn {
        Insn::LdImm64 {
            dst,
            src: isa::opcode::BPF_PSEUDO_MAP_IDX,
            imm: index as i32,
            next_imm: 0,
        }
    }

    /// `r2 = r10 + off`: a stack pointer argument.
    pub fn stack_ptr(dst: u8, off: i32) -> [Insn; 2] {
        [mov_reg(dst, 10), alu(AluOp::Add, dst, off)]
    }

    pub fn call(helper: i32) -> Insn {
        Insn::Call(CallTarget::Helper(helper))
    }

    pub fn exit() -> Insn {
        Insn::Exit
    }
}

/// A map of a hand-assembled object. Programs refer to it by its index in the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDecl {
    pub name: &'static str,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

/// The template the hand-assembled objects are shaped from: any parsed object has
/// every field the loader fills, so only programs and maps need replacing.
const TEMPLATE: &[u8] = include_bytes!("../../bpf-progs/obj/xdp_counter.o");

/// An object holding `progs` (name, instructions; each an XDP program in section
/// `xdp`) and `maps`, as if the loader had read it from an ELF file.
pub fn object_from_insns(maps: &[MapDecl], progs: &[(&str, Vec<Insn>)]) -> Result<loader::Object> {
    let mut object = loader::Object::parse(TEMPLATE).context("parsing the template object")?;
    let map_template = object
        .maps
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("the template object has no map"))?;
    let prog_template = object
        .programs
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("the template object has no program"))?;
    object.maps = maps
        .iter()
        .map(|d| {
            let mut m = map_template.clone();
            m.name = d.name.to_string();
            m.map_type = d.map_type;
            m.key_size = d.key_size;
            m.value_size = d.value_size;
            m.max_entries = d.max_entries;
            m.map_flags = 0;
            m.initial_data = None;
            m.btf_key_type_id = 0;
            m.btf_value_type_id = 0;
            m.inner = None;
            m
        })
        .collect();
    object.programs = progs
        .iter()
        .map(|(name, insns)| {
            let raw: Vec<RawInsn> = isa::encode_all(insns);
            let mut p = prog_template.clone();
            p.name = name.to_string();
            p.section = "xdp".into();
            p.subprogs = vec![loader::Subprog {
                name: name.to_string(),
                start: 0,
                len: raw.len(),
            }];
            p.insns = raw;
            p
        })
        .collect();
    object.btf = None;
    object.btf_ext = None;
    object.globals.clear();
    object.core_relocations.clear();
    Ok(object)
}

/// An anonymous store big enough for `object`'s maps at any size
/// ([`runtime::store_size_for`]).
pub fn store_for(object: &loader::Object) -> Result<maps::Store> {
    maps::Store::anonymous(maps::StoreOptions {
        size: runtime::store_size_for(object),
        ..Default::default()
    })
    .context("creating the map store")
}

/// One program of a loaded object and the packet it runs on.
pub struct Workload {
    /// The object as loaded, for the kernel column ([`kclient::KernelObject`]).
    pub object: loader::Object,
    pub loaded: LoadedObject,
    /// Index in `loaded.programs`.
    pub prog: usize,
    pub packet: Vec<u8>,
    // The maps live here; dropped last.
    _store: maps::Store,
}

impl Workload {
    /// Loads `object` into a private store and picks program `prog` (default: the first).
    pub fn new(object: loader::Object, prog: Option<&str>, packet: &[u8]) -> Result<Workload> {
        let store = store_for(&object)?;
        let loaded = LoadedObject::load(&object, &store)?;
        let prog = loaded.program_index(prog)?;
        Packet::new(packet)?;
        Ok(Workload {
            object,
            loaded,
            prog,
            packet: packet.to_vec(),
            _store: store,
        })
    }

    /// A bpf-progs object and packet by name (`xdp_counter`, `icmp`).
    pub fn from_bpf_progs(object: &str, prog: Option<&str>, packet: &str) -> Result<Workload> {
        let path = bpf_object(object);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let object =
            loader::Object::parse(&bytes).with_context(|| format!("parsing {}", path.display()))?;
        let path = bpf_packet(packet);
        let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        Workload::new(object, prog, &data)
    }

    /// The program's name.
    pub fn prog_name(&self) -> &str {
        &self.loaded.programs[self.prog].name
    }

    /// A fresh buffer holding the packet.
    pub fn fresh_packet(&self) -> Result<Packet> {
        Ok(Packet::new(&self.packet)?)
    }

    /// Writes one entry (per-CPU maps: the value goes to every CPU).
    pub fn set(&self, map: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.loaded
            .update_entry(map, key, value, 0)
            .with_context(|| format!("writing map {map}"))
    }

    /// Writes entries `0..n` of `map` as `xdp-runner bench --fill MAP=N` does: key and
    /// value are the index as little-endian integers of the key's and value's size.
    pub fn fill(&self, map: &str, n: u64) -> Result<()> {
        Ok(self.loaded.fill(map, n)?)
    }

    /// The kernel's copy of this workload, with the same entries `fills` writes, or why
    /// not (no bpf(2) permission, the verifier's refusal).
    pub fn kernel(&self, fills: &[(&str, u64)]) -> Result<kclient::KernelObject> {
        kclient::available().map_err(|why| anyhow!("kernel not available: {why}"))?;
        let k = kclient::KernelObject::load(&self.object)?;
        for (map, n) in fills {
            k.fill(map, *n)?;
        }
        Ok(k)
    }
}

/// Dispatch workloads: programs that exercise the interpreter's loop and the JIT's
/// code rather than helpers.
pub mod dispatch {
    use super::asm::*;
    use super::*;

    /// `n` dependent 64-bit ALU instructions (add, xor, shift, multiply) over r0..r4,
    /// then `r0 = XDP_PASS`.
    pub fn alu_straight(n: usize) -> Vec<Insn> {
        let mut v = vec![mov(0, 1), mov(2, 3), mov(3, 5), mov(4, 7)];
        let ops = [
            alu_reg(AluOp::Add, 0, 2),
            alu(AluOp::Xor, 2, 0x5a5a),
            alu_reg(AluOp::Mul, 3, 0),
            alu(AluOp::Rsh, 3, 3),
            alu_reg(AluOp::Sub, 4, 3),
            alu32(AluOp::Add, 2, 17),
            alu(AluOp::Lsh, 4, 1),
            alu_reg(AluOp::Or, 0, 4),
        ];
        v.extend(ops.iter().cycle().take(n).copied());
        v.extend([mov(0, 2), exit()]);
        v
    }

    /// `n` conditional branches on the packet length (from the context), each
    /// skipping or taking one add: `if len > k goto +1; r0 += 1`.
    pub fn branchy(n: usize) -> Vec<Insn> {
        let mut v = vec![
            load(Size::W, 2, 1, 0),
            load(Size::W, 3, 1, 4),
            alu_reg(AluOp::Sub, 3, 2),
            mov(0, 0),
        ];
        for i in 0..n {
            // Thresholds around typical frame lengths, so both directions happen.
            let k = 40 + (i as i32 * 37) % 120;
            v.push(jmp(JmpCond::Gt, 3, k, 1));
            v.push(alu(AluOp::Add, 0, 1));
        }
        v.extend([mov(0, 2), exit()]);
        v
    }

    /// A counted loop of `iters` iterations, three instructions each (a bounded loop
    /// as clang emits them: add, decrement, branch back).
    pub fn counted_loop(iters: i32) -> Vec<Insn> {
        vec![
            mov(0, 0),
            mov(3, iters),
            alu_reg(AluOp::Add, 0, 3),
            alu(AluOp::Sub, 3, 1),
            jmp(JmpCond::Ne, 3, 0, -3),
            mov(0, 2),
            exit(),
        ]
    }

    /// A workload running `insns` on an ICMP frame.
    pub fn workload(name: &str, insns: Vec<Insn>) -> Result<Workload> {
        let object = object_from_insns(&[], &[(name, insns)])?;
        let data = std::fs::read(bpf_packet("icmp"))?;
        Workload::new(object, Some(name), &data)
    }
}

/// A parser with no maps and no helpers: Ethernet, IPv4 (honouring IHL), then the
/// TCP or UDP destination port. XDP_ABORTED when a header is truncated or IHL < 5,
/// XDP_DROP for destination port 53, XDP_PASS otherwise (also for non-IPv4 frames and
/// other L4 protocols). The "pure parser" column of the engine comparison.
pub mod pure_parser {
    use super::asm::*;
    use super::*;

    pub const NAME: &str = "pure_parser";

    pub fn insns() -> Vec<Insn> {
        const OUT: usize = 28;
        const PASS: usize = 27;
        const PORTS: usize = 24;
        // The offset of a jump at `pc` to `target`.
        let to = |pc: usize, target: usize| (target - pc - 1) as i16;
        vec![
            load(Size::W, 2, 1, 0), // data
            load(Size::W, 3, 1, 4), // data_end
            mov(0, 0),              // XDP_ABORTED
            mov_reg(4, 2),
            alu(AluOp::Add, 4, 14),
            jmp_reg(JmpCond::Gt, 4, 3, to(5, OUT)),
            load(Size::H, 5, 2, 12),                  // h_proto
            jmp(JmpCond::Ne, 5, 0x0008, to(7, PASS)), // ETH_P_IP, network order
            mov_reg(4, 2),
            alu(AluOp::Add, 4, 34),
            jmp_reg(JmpCond::Gt, 4, 3, to(10, OUT)),
            load(Size::B, 5, 2, 14), // version, IHL
            alu(AluOp::And, 5, 0xf),
            jmp(JmpCond::Lt, 5, 5, to(13, OUT)),
            alu(AluOp::Lsh, 5, 2),
            load(Size::B, 6, 2, 23), // protocol
            mov_reg(4, 2),
            alu(AluOp::Add, 4, 14),
            alu_reg(AluOp::Add, 4, 5), // the L4 header
            mov_reg(7, 4),
            alu(AluOp::Add, 7, 8),
            jmp_reg(JmpCond::Gt, 7, 3, to(21, OUT)),
            jmp(JmpCond::Eq, 6, 17, to(22, PORTS)),   // UDP
            jmp(JmpCond::Ne, 6, 6, to(23, PASS)),     // TCP
            load(Size::H, 5, 4, 2),                   // PORTS: destination port
            mov(0, 1),                                // XDP_DROP
            jmp(JmpCond::Eq, 5, 0x3500, to(26, OUT)), // port 53, network order
            mov(0, 2),                                // PASS: XDP_PASS
            exit(),                                   // OUT
        ]
    }

    /// The pure parser on packet `packet` (a bpf-progs packet name).
    pub fn workload(packet: &str) -> Result<Workload> {
        let object = object_from_insns(&[], &[(NAME, insns())])?;
        let data = std::fs::read(bpf_packet(packet))?;
        Workload::new(object, Some(NAME), &data)
    }
}

/// The workloads every engine runs side by side (`src/bin/compare.rs`, the criterion
/// groups, the peer tests): `(label, object or pure parser, packet)`.
pub mod compare {
    use super::*;

    pub const WORKLOADS: &[(&str, &str, &str)] = &[
        ("pure parser/udp", pure_parser::NAME, "udp"),
        ("xdp_counter/icmp", "xdp_counter", "icmp"),
        ("xdp_parser/udp", "xdp_parser", "udp"),
        ("xdp_fw/tcp_syn", "xdp_fw", "tcp_syn"),
        ("xdp_stats/udp", "xdp_stats", "udp"),
    ];

    /// The workload of one entry of [`WORKLOADS`].
    pub fn workload(object: &str, packet: &str) -> Result<Workload> {
        if object == pure_parser::NAME {
            pure_parser::workload(packet)
        } else {
            Workload::from_bpf_progs(object, None, packet)
        }
    }
}

/// The helper workloads: one program per helper, doing little besides the call.
pub mod helpers {
    use super::asm::*;
    use super::*;

    /// The maps the helper programs use, by index: 0 hash, 1 array, 2 percpu_array,
    /// 3 percpu_hash (u32 -> u64, key 0 present in each), 4 devmap (slot 0 -> ifindex
    /// 1), 5 prog_array (slot 0 -> `tail_target`).
    pub const MAPS: &[MapDecl] = &[
        decl("hash", map_type::HASH, 1024),
        decl("array", map_type::ARRAY, 1024),
        decl("percpu_array", map_type::PERCPU_ARRAY, 1024),
        decl("percpu_hash", map_type::PERCPU_HASH, 1024),
        MapDecl {
            name: "devmap",
            map_type: map_type::DEVMAP,
            key_size: 4,
            value_size: 4,
            max_entries: 4,
        },
        MapDecl {
            name: "jmp",
            map_type: map_type::PROG_ARRAY,
            key_size: 4,
            value_size: 4,
            max_entries: 1,
        },
    ];

    const fn decl(name: &'static str, map_type: u32, max_entries: u32) -> MapDecl {
        MapDecl {
            name,
            map_type,
            key_size: 4,
            value_size: 8,
            max_entries,
        }
    }

    /// `(program name, instructions, XDP action it returns)`. `baseline` only returns;
    /// subtract it to get a helper's own cost. The adjust programs grow the packet (the
    /// head by 8 bytes, the tail by 8) and shrink it back, two calls, so repeated runs
    /// see the same frame.
    pub fn programs() -> Vec<(&'static str, Vec<Insn>, u32)> {
        let ret = |v: &mut Vec<Insn>, action: i32| v.extend([mov(0, action), exit()]);
        let key0 = store_imm(Size::W, 10, -4, 0);
        let lookup = |map: usize| {
            let mut v = vec![key0, ld_map(1, map)];
            v.extend(stack_ptr(2, -4));
            v.push(call(func::map_lookup_elem));
            ret(&mut v, 2);
            v
        };
        let update = |map: usize| {
            let mut v = vec![key0, store_imm(Size::DW, 10, -16, 7), ld_map(1, map)];
            v.extend(stack_ptr(2, -4));
            v.extend(stack_ptr(3, -16));
            v.extend([mov(4, 0), call(func::map_update_elem)]);
            ret(&mut v, 2);
            v
        };
        let adjust = |helper: i32, first: i32| {
            let mut v = vec![mov_reg(6, 1), mov(2, first), call(helper)];
            v.extend([mov_reg(1, 6), mov(2, -first), call(helper)]);
            ret(&mut v, 2);
            v
        };
        let mut out = Vec::new();
        let mut baseline = Vec::new();
        ret(&mut baseline, 2);
        out.push(("baseline", baseline, 2));
        out.push(("lookup_hash", lookup(0), 2));
        out.push(("lookup_array", lookup(1), 2));
        out.push(("lookup_percpu_array", lookup(2), 2));
        out.push(("lookup_percpu_hash", lookup(3), 2));
        out.push(("update_hash", update(0), 2));
        out.push(("update_array", update(1), 2));
        out.push(("update_percpu_array", update(2), 2));
        out.push(("update_percpu_hash", update(3), 2));
        out.push(("xdp_adjust_head", adjust(func::xdp_adjust_head, -8), 2));
        out.push(("xdp_adjust_tail", adjust(func::xdp_adjust_tail, 8), 2));
        // csum_diff(NULL, 0, fp-16, 16, 0): the checksum of 16 bytes.
        let mut csum = vec![
            store_imm(Size::DW, 10, -16, 0x1234_5678),
            store_imm(Size::DW, 10, -8, 0x0bad_cafe),
            mov(1, 0),
            mov(2, 0),
        ];
        csum.extend(stack_ptr(3, -16));
        csum.extend([mov(4, 16), mov(5, 0), call(func::csum_diff)]);
        ret(&mut csum, 2);
        out.push(("csum_diff", csum, 2));
        let mut ktime = vec![call(func::ktime_get_ns)];
        ret(&mut ktime, 2);
        out.push(("ktime_get_ns", ktime, 2));
        // redirect_map(devmap, 0, 0): the filled slot, XDP_REDIRECT.
        out.push((
            "redirect_map",
            vec![
                ld_map(1, 4),
                mov(2, 0),
                mov(3, 0),
                call(func::redirect_map),
                exit(),
            ],
            4,
        ));
        // tail_call(ctx, jmp, 0): tail_target returns XDP_TX; falling through, PASS.
        let mut tail = vec![ld_map(2, 5), mov(3, 0), call(func::tail_call)];
        ret(&mut tail, 2);
        out.push(("tail_call", tail, 3));
        let mut target = Vec::new();
        ret(&mut target, 3);
        out.push(("tail_target", target, 3));
        out
    }

    /// Every helper program in one object, its maps filled (key 0 of each map, slot 0
    /// of the devmap and of the prog_array).
    pub fn workload() -> Result<Workload> {
        let progs: Vec<(&str, Vec<Insn>)> = programs()
            .into_iter()
            .map(|(name, insns, _)| (name, insns))
            .collect();
        let object = object_from_insns(MAPS, &progs)?;
        let data = std::fs::read(bpf_packet("icmp"))?;
        let w = Workload::new(object, Some("baseline"), &data)?;
        for m in ["hash", "array", "percpu_array", "percpu_hash"] {
            w.set(m, &0u32.to_ne_bytes(), &1u64.to_ne_bytes())?;
        }
        w.set("devmap", &0u32.to_ne_bytes(), &1u32.to_ne_bytes())?;
        let target = w
            .loaded
            .program_id("tail_target")
            .ok_or_else(|| anyhow!("tail_target was not prepared"))?;
        w.set("jmp", &0u32.to_ne_bytes(), &target.to_ne_bytes())?;
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::jit::JitObject;
    use runtime::Vm;

    /// Runs program `name` of `w` three times on one buffer in both engines; returns
    /// the interpreter's and the JIT's last return values and output frames.
    fn run_both(w: &Workload, name: &str) -> [(u64, Vec<u8>); 2] {
        let prog = w.loaded.program_index(Some(name)).unwrap();
        let jit = JitObject::compile(&w.loaded, &Default::default()).unwrap();
        let mut vm = Vm::new(0);
        let mut out = Vec::new();
        for engine in 0..2 {
            let mut pkt = w.fresh_packet().unwrap();
            let mut r = 0;
            for _ in 0..3 {
                r = if engine == 0 {
                    w.loaded.run(&mut vm, prog, &mut pkt)
                } else {
                    jit.run(&mut vm, prog, &mut pkt)
                }
                .unwrap_or_else(|t| panic!("{name}: {t}"));
            }
            out.push((r, pkt.data().to_vec()));
        }
        [out[0].clone(), out[1].clone()]
    }

    #[test]
    fn helper_programs_return_their_action_and_keep_the_frame() {
        let w = helpers::workload().unwrap();
        for (name, _, action) in helpers::programs() {
            for (r, frame) in run_both(&w, name) {
                assert_eq!(r, action as u64, "{name}");
                assert_eq!(frame, w.packet, "{name}: the frame is unchanged");
            }
        }
        // The updates wrote 7 at key 0 of every map (per-CPU: on CPU 0).
        for m in ["hash", "array", "percpu_array", "percpu_hash"] {
            let bound = w.loaded.maps.by_name(m).unwrap();
            let entries = bound.map.dump().unwrap();
            let e = entries.iter().find(|e| e.key == [0, 0, 0, 0]).unwrap();
            assert_eq!(e.values[0], 7u64.to_ne_bytes(), "{m}");
        }
    }

    #[test]
    fn helper_programs_match_the_kernel() {
        if let Err(why) = kclient::available() {
            kclient::skip("helper programs in the kernel", &why);
            return;
        }
        let w = helpers::workload().unwrap();
        let k = kclient::KernelObject::load(&w.object).unwrap();
        let key0 = 0u32.to_ne_bytes();
        for m in ["hash", "array"] {
            k.update_elem(m, &key0, &1u64.to_ne_bytes(), 0).unwrap();
        }
        k.update_elem("devmap", &key0, &1u32.to_ne_bytes(), 0)
            .unwrap();
        for (name, _, action) in helpers::programs() {
            if name == "tail_call" {
                continue; // the kernel's prog_array takes program fds
            }
            let run = k.test_run(name, &w.packet, 3).unwrap();
            assert_eq!(run.retval, action, "{name}");
            assert_eq!(run.data_out, w.packet, "{name}");
        }
    }

    #[test]
    fn dispatch_programs_run_to_the_end() {
        for (name, insns) in [
            ("alu", dispatch::alu_straight(64)),
            ("branchy", dispatch::branchy(32)),
            ("loop", dispatch::counted_loop(100)),
        ] {
            let w = dispatch::workload(name, insns).unwrap();
            for (r, _) in run_both(&w, name) {
                assert_eq!(r, 2, "{name}");
            }
        }
        assert_eq!(dispatch::alu_straight(64).len(), 64 + 6);
    }

    #[test]
    fn bpf_progs_workloads_load() {
        let w = Workload::from_bpf_progs("xdp_counter", None, "icmp").unwrap();
        assert_eq!(w.prog_name(), "xdp_counter");
        for (r, _) in run_both(&w, "xdp_counter") {
            assert_eq!(r, 3, "XDP_TX");
        }
        let w = Workload::from_bpf_progs("xdp_map_heavy", Some("xdp_map_probe"), "icmp").unwrap();
        assert_eq!(run_both(&w, "xdp_map_probe")[0].0, 1, "XDP_DROP: empty");
        w.fill("big_map", 1 << 20).unwrap();
        for (r, _) in run_both(&w, "xdp_map_probe") {
            assert_eq!(r, 2, "XDP_PASS: filled");
        }
        assert!(w.fill("big_map", (1 << 20) + 1).is_err());
    }
}
