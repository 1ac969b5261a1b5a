//! Preparing a linked program for the interpreter: structural verification and
//! pre-decoding into [`Op`]s, with map references resolved to addresses.
//!
//! The checks here are what keeps the interpreter's unchecked instruction fetch sound:
//! every jump and call lands on an instruction start inside the program, and no path
//! runs off the end. The memory checks happen at run time (see `memory.rs`).

use isa::opcode::*;
use isa::{CallTarget, Insn, RawInsn};

use crate::error::VerifyError;
use crate::helpers;
use crate::maptable::MapTable;
use crate::verifier::{Analysis, MapDesc};
use std::sync::Arc;

/// One pre-decoded instruction slot.
///
/// `code`, `dst` and `src` are the raw fields. `off` is the jump offset (for `gotol`,
/// taken from imm) or the memory offset. `imm` is the sign-extended immediate; for
/// `lddw` the full 64-bit value with map references resolved to addresses; for a local
/// call the relative target; for a helper call the helper id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(16))]
pub struct Op {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub _pad: u8,
    pub off: i32,
    pub imm: i64,
}

/// A program ready to run.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub name: String,
    pub section: String,
    /// One `Op` per instruction slot (the second slot of an `lddw` is a placeholder).
    pub ops: Box<[Op]>,
    /// Start slots of the entry function and of every subprogram.
    pub functions: Vec<usize>,
    /// The program's id in the store it was registered in (0: none), where its
    /// run statistics go.
    pub store_id: u32,
    /// What the analysis proved about each slot (`verifier`).
    pub analysis: Arc<Analysis>,
}

/// Verifies `insns` and turns them into [`Op`]s, resolving map references through `maps`.
pub fn prepare(
    name: &str,
    section: &str,
    insns: &[RawInsn],
    subprog_starts: &[usize],
    maps: &MapTable,
) -> Result<Prepared, VerifyError> {
    let prog = || name.to_string();
    if insns.is_empty() {
        return Err(VerifyError::Empty { prog: prog() });
    }
    let decoded = isa::decode_all(insns).map_err(|source| VerifyError::Decode {
        prog: prog(),
        source,
    })?;
    let len = insns.len();
    // Which slots start an instruction (false for the second half of an lddw).
    let mut starts = vec![false; len];
    for (pc, _) in &decoded {
        starts[*pc] = true;
    }
    let mut functions: Vec<usize> = vec![0];
    functions.extend(subprog_starts.iter().copied().filter(|&s| s < len));
    let mut ops = vec![Op::default(); len];
    let target_ok = |pc: usize, rel: i64| -> Result<usize, VerifyError> {
        let t = pc as i64 + 1 + rel;
        if t < 0 || t >= len as i64 {
            return Err(VerifyError::JumpOutOfRange {
                prog: prog(),
                pc,
                target: t,
                len,
            });
        }
        if !starts[t as usize] {
            return Err(VerifyError::JumpIntoLdImm64 {
                prog: prog(),
                pc,
                target: t as usize - 1,
            });
        }
        Ok(t as usize)
    };
    for &(pc, insn) in &decoded {
        let raw = insns[pc];
        let mut op = Op {
            code: raw.code,
            dst: raw.dst,
            src: raw.src,
            _pad: 0,
            off: raw.off as i32,
            imm: raw.imm as i64,
        };
        match insn {
            Insn::Alu { dst, .. }
            | Insn::End { dst, .. }
            | Insn::Load { dst, .. }
            | Insn::LdImm64 { dst, .. }
                if dst == FRAME_POINTER =>
            {
                return Err(VerifyError::WriteToR10 { prog: prog(), pc });
            }
            Insn::Atomic {
                fetch: true, src, ..
            } if src == FRAME_POINTER => {
                return Err(VerifyError::WriteToR10 { prog: prog(), pc });
            }
            Insn::Atomic {
                op: isa::AtomicOp::CmpXchg,
                ..
            } => {}
            Insn::LdPacket { .. } => {
                return Err(VerifyError::NotAllowed {
                    prog: prog(),
                    pc,
                    what: "LD_ABS/LD_IND",
                });
            }
            Insn::Ja { off } => {
                target_ok(pc, off as i64)?;
                op.off = off;
            }
            Insn::Jmp { off, .. } => {
                target_ok(pc, off as i64)?;
            }
            Insn::Call(CallTarget::Helper(id)) => {
                helpers::check_supported(id).map_err(|e| e.at(name, pc))?;
            }
            Insn::Call(CallTarget::Local(rel)) => {
                let t = target_ok(pc, rel as i64).map_err(|_| VerifyError::BadCallTarget {
                    prog: prog(),
                    pc,
                    target: pc as i64 + 1 + rel as i64,
                })?;
                if !functions.contains(&t) {
                    functions.push(t);
                }
                op.off = rel;
            }
            Insn::Call(CallTarget::Kfunc(btf_id)) => {
                return Err(VerifyError::Kfunc {
                    prog: prog(),
                    pc,
                    btf_id,
                });
            }
            Insn::LdImm64 {
                src, imm, next_imm, ..
            } => {
                op.imm = resolve_ldimm64(name, pc, src, imm, next_imm, maps)?;
                if src == BPF_PSEUDO_FUNC {
                    // A callback (bpf_loop) is a function even when no symbol names it.
                    let t = target_ok(pc, imm as i64)?;
                    op.imm = t as i64;
                    if !functions.contains(&t) {
                        functions.push(t);
                    }
                }
            }
            _ => {}
        }
        ops[pc] = op;
    }
    // No path may run past the last instruction: the last one must end control flow.
    let (last_pc, last) = *decoded
        .last()
        .expect("non-empty program decodes to at least one insn");
    if !matches!(last, Insn::Exit | Insn::Ja { .. }) {
        return Err(VerifyError::FallsOffEnd {
            prog: prog(),
            pc: last_pc,
        });
    }
    functions.sort_unstable();
    functions.dedup();
    let analysis = Analysis::run(&decoded, len, &MapDesc::of_table(maps), true);
    Ok(Prepared {
        name: name.to_string(),
        section: section.to_string(),
        ops: ops.into(),
        functions,
        store_id: 0,
        analysis: Arc::new(analysis),
    })
}

/// A tail call keeps r1 as the caller left it: when some program of `programs` may
/// tail-call with something other than the context in r1, none of them may be
/// analysed assuming r1 is the context at its entry (prog_array slots name programs of
/// the same object).
pub fn forget_entry_ctx_if_tail_calls_forge_it(programs: &mut [Prepared]) {
    if programs.iter().any(|p| p.analysis.tail_call_unproven_ctx) {
        for p in programs.iter_mut() {
            if p.analysis.entry_ctx {
                p.analysis = Arc::new(p.analysis.without_entry_ctx());
            }
        }
    }
}

fn resolve_ldimm64(
    prog: &str,
    pc: usize,
    src: u8,
    imm: i32,
    next_imm: i32,
    maps: &MapTable,
) -> Result<i64, VerifyError> {
    let map_at = |index: i32| {
        maps.get(index as usize)
            .filter(|_| index >= 0)
            .ok_or(VerifyError::BadMapIndex {
                prog: prog.to_string(),
                pc,
                index: index as i64,
                count: maps.len(),
            })
    };
    match src {
        0 => Ok(((next_imm as u32 as u64) << 32 | imm as u32 as u64) as i64),
        BPF_PSEUDO_MAP_IDX => Ok(map_at(imm)?.handle_addr() as i64),
        BPF_PSEUDO_MAP_IDX_VALUE => {
            let m = map_at(imm)?;
            let off = next_imm as u32;
            match m.direct_value_addr(off) {
                Some(addr) => Ok(addr as i64),
                None => Err(VerifyError::BadMapValueOffset {
                    prog: prog.to_string(),
                    pc,
                    map: m.name.clone(),
                    offset: off as i64,
                    value_size: m.info.value_size,
                }),
            }
        }
        BPF_PSEUDO_FUNC => Ok(0),
        other => Err(VerifyError::BadPseudo {
            prog: prog.to_string(),
            pc,
            src: other,
        }),
    }
}

#[cfg(test)]
mod tests {
    use isa::{AluOp, CallTarget, Insn, Operand, Width};

    use super::*;

    fn check(insns: &[Insn]) -> Result<Prepared, VerifyError> {
        let raw = isa::encode::encode_all(insns);
        prepare("p", "xdp", &raw, &[], &MapTable::new(Vec::new()))
    }

    fn mov(dst: u8, v: i32) -> Insn {
        Insn::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst,
            src: Operand::Imm(v),
        }
    }

    #[test]
    fn unknown_and_unsupported_helpers_are_named() {
        let e = check(&[Insn::Call(CallTarget::Helper(9999)), Insn::Exit]).unwrap_err();
        assert!(
            matches!(
                e,
                VerifyError::UnknownHelper {
                    id: 9999,
                    pc: 0,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("9999"), "{e}");
        // bpf_sk_lookup_tcp (84) exists in the kernel (also for XDP) but not here.
        let e = check(&[
            mov(1, 1),
            mov(2, 0),
            Insn::Call(CallTarget::Helper(84)),
            Insn::Exit,
        ])
        .unwrap_err();
        assert!(
            matches!(e, VerifyError::UnsupportedHelper { id: 84, pc: 2, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("sk_lookup_tcp"), "{e}");
        // bpf_fib_lookup (69) is supported.
        assert!(check(&[Insn::Call(CallTarget::Helper(69)), Insn::Exit]).is_ok());
        assert!(check(&[Insn::Call(CallTarget::Helper(1)), Insn::Exit]).is_ok());
    }

    #[test]
    fn control_flow_stays_inside_the_program() {
        let e = check(&[Insn::Ja { off: 5 }, Insn::Exit]).unwrap_err();
        assert!(
            matches!(
                e,
                VerifyError::JumpOutOfRange {
                    pc: 0,
                    target: 6,
                    ..
                }
            ),
            "{e}"
        );
        let e = check(&[Insn::Ja { off: -2 }, Insn::Exit]).unwrap_err();
        assert!(
            matches!(e, VerifyError::JumpOutOfRange { target: -1, .. }),
            "{e}"
        );
        let e = check(&[mov(0, 0)]).unwrap_err();
        assert!(matches!(e, VerifyError::FallsOffEnd { pc: 0, .. }), "{e}");
        // A jump into the second slot of an lddw.
        let e = check(&[
            Insn::Ja { off: 1 },
            Insn::LdImm64 {
                dst: 0,
                src: 0,
                imm: 1,
                next_imm: 0,
            },
            Insn::Exit,
        ])
        .unwrap_err();
        assert!(
            matches!(
                e,
                VerifyError::JumpIntoLdImm64 {
                    pc: 0,
                    target: 1,
                    ..
                }
            ),
            "{e}"
        );
        let e = check(&[Insn::Call(CallTarget::Local(7)), Insn::Exit]).unwrap_err();
        assert!(matches!(e, VerifyError::BadCallTarget { pc: 0, .. }), "{e}");
    }

    #[test]
    fn forbidden_instructions() {
        let e = check(&[mov(10, 0), Insn::Exit]).unwrap_err();
        assert!(matches!(e, VerifyError::WriteToR10 { pc: 0, .. }), "{e}");
        let e = check(&[Insn::Call(CallTarget::Kfunc(77)), Insn::Exit]).unwrap_err();
        assert!(matches!(e, VerifyError::Kfunc { btf_id: 77, .. }), "{e}");
        let e = check(&[
            Insn::LdImm64 {
                dst: 1,
                src: BPF_PSEUDO_MAP_IDX,
                imm: 3,
                next_imm: 0,
            },
            Insn::Exit,
        ])
        .unwrap_err();
        assert!(
            matches!(
                e,
                VerifyError::BadMapIndex {
                    index: 3,
                    count: 0,
                    ..
                }
            ),
            "{e}"
        );
        let e = check(&[
            Insn::LdPacket {
                size: isa::Size::W,
                indirect: false,
                src: 0,
                imm: 0,
            },
            Insn::Exit,
        ])
        .unwrap_err();
        assert!(matches!(e, VerifyError::NotAllowed { .. }), "{e}");
        assert!(matches!(check(&[]).unwrap_err(), VerifyError::Empty { .. }));
    }

    #[test]
    fn lddw_constants_are_pre_decoded() {
        let p = check(&[
            Insn::LdImm64 {
                dst: 0,
                src: 0,
                imm: -1,
                next_imm: 0x1234,
            },
            Insn::Exit,
        ])
        .unwrap();
        assert_eq!(p.ops[0].imm as u64, 0x1234_ffff_ffff);
        assert_eq!(p.functions, vec![0]);
    }
}
