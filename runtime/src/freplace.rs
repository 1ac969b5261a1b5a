//! Function replacement (the kernel's freplace, `BPF_PROG_TYPE_EXT`): a
//! program whose global function has a replacement link runs the extension
//! program in place of that function, on the same context, and the call
//! returns the extension's r0.
//!
//! The kernel patches the function's entry with a jump to the extension. Here
//! the replacement is made when a program is built from the store
//! ([`crate::LoadedObject::from_store`]): the extension's instructions are
//! appended to the target's as one more function, and every call to the
//! replaced function (and every callback reference to it) is pointed at the
//! appended copy; an extension replacing the entry function is put first,
//! before the whole target. Both engines and the data plane then run the same
//! instructions. The replaced body stays in place, unreachable, so every
//! other offset of the program is unchanged. A program built before a link
//! was made (or removed) keeps what it was built with: a data plane picks up
//! a new link when it rebuilds its program.
//!
//! The extension's map references must already index the target's map table
//! (see `stored.rs`), so the extension uses its own maps.

use isa::opcode::{BPF_PSEUDO_CALL as PSEUDO_CALL, BPF_PSEUDO_FUNC as PSEUDO_FUNC, CALL, LDDW};
use isa::RawInsn;

use crate::error::FreplaceError;

/// One function to replace: the start slot of the function in the target,
/// and the extension program's instructions.
#[derive(Debug, Clone)]
pub struct Splice<'a> {
    /// Start slot of the replaced function (0: the entry).
    pub func_start: usize,
    /// The extension's instructions (their map references into the target's table).
    pub ext: &'a [RawInsn],
}

/// The target's instructions with every replacement applied, and the start
/// slots of its functions (`starts` the target's own, which stay valid, plus
/// each appended extension and its own subprograms).
pub fn splice(
    target: &[RawInsn],
    starts: &[usize],
    replacements: &[Splice<'_>],
) -> Result<(Vec<RawInsn>, Vec<usize>), FreplaceError> {
    let mut insns = target.to_vec();
    let mut all_starts = starts.to_vec();
    let mut entry: Option<&[RawInsn]> = None;
    for r in replacements {
        if r.func_start != 0 && !starts.contains(&r.func_start) {
            return Err(FreplaceError::NotAFunction {
                func_start: r.func_start,
            });
        }
        if r.ext.is_empty() {
            return Err(FreplaceError::EmptyExtension {
                func_start: r.func_start,
            });
        }
        if r.func_start == 0 {
            entry = Some(r.ext);
            continue;
        }
        let base = insns.len();
        // Calls and callback references in the target (not in appended
        // extensions, whose own offsets are relative to themselves).
        redirect(&mut insns[..target.len()], r.func_start, base)?;
        insns.extend_from_slice(r.ext);
        all_starts.push(base);
        all_starts.extend(
            crate::stored::subprog_starts(r.ext)
                .into_iter()
                .map(|s| base + s),
        );
    }
    if let Some(ext) = entry {
        // The entry replaced: the extension comes first and runs in its
        // place; the target follows whole (its offsets are all relative),
        // unreachable from the new entry, as the replaced body of any function.
        let n = ext.len();
        let mut out = ext.to_vec();
        out.extend_from_slice(&insns);
        let mut s: Vec<usize> = crate::stored::subprog_starts(ext);
        s.push(n);
        s.extend(all_starts.iter().map(|&x| x + n));
        insns = out;
        all_starts = s;
    }
    all_starts.sort_unstable();
    all_starts.dedup();
    Ok((insns, all_starts))
}

/// Points every bpf-to-bpf call and callback load of `insns` that targets
/// slot `from` at slot `to`.
fn redirect(insns: &mut [RawInsn], from: usize, to: usize) -> Result<(), FreplaceError> {
    let mut pc = 0;
    while pc < insns.len() {
        let x = insns[pc];
        let is_ref =
            (x.code == CALL && x.src == PSEUDO_CALL) || (x.code == LDDW && x.src == PSEUDO_FUNC);
        if is_ref && pc as i64 + 1 + i64::from(x.imm) == from as i64 {
            let rel = to as i64 - pc as i64 - 1;
            insns[pc].imm =
                i32::try_from(rel).map_err(|_| FreplaceError::TooFar { pc, target: to })?;
        }
        pc += if x.code == LDDW { 2 } else { 1 };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> RawInsn {
        RawInsn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }
    const MOV_K: u8 = 0xb7;
    const EXIT: u8 = 0x95;

    #[test]
    fn calls_to_the_replaced_function_reach_the_extension() {
        // 0 call +2 -> 3; 1 call +1 -> 3; 2 exit; 3 mov r0, 1; 4 exit
        let target = [
            i(CALL, 0, PSEUDO_CALL, 0, 2),
            i(CALL, 0, PSEUDO_CALL, 0, 1),
            i(EXIT, 0, 0, 0, 0),
            i(MOV_K, 0, 0, 0, 1),
            i(EXIT, 0, 0, 0, 0),
        ];
        // The extension calls its own subprogram: 0 call +1 -> 2; 1 exit; 2 mov; 3 exit.
        let ext = [
            i(CALL, 0, PSEUDO_CALL, 0, 1),
            i(EXIT, 0, 0, 0, 0),
            i(MOV_K, 0, 0, 0, 7),
            i(EXIT, 0, 0, 0, 0),
        ];
        let (out, starts) = splice(
            &target,
            &[3],
            &[Splice {
                func_start: 3,
                ext: &ext,
            }],
        )
        .expect("splice");
        assert_eq!(out.len(), 9);
        assert_eq!(out[0].imm, 4, "0 -> 5");
        assert_eq!(out[1].imm, 3, "1 -> 5");
        assert_eq!(&out[5..], &ext, "the extension is unchanged");
        assert_eq!(&out[3..5], &target[3..5], "the replaced body stays");
        assert_eq!(starts, vec![3, 5, 7]);
    }

    #[test]
    fn only_functions_can_be_replaced() {
        let target = [i(MOV_K, 0, 0, 0, 1), i(EXIT, 0, 0, 0, 0)];
        let ext = [i(EXIT, 0, 0, 0, 0)];
        for func_start in [1, 9] {
            let r = splice(
                &target,
                &[],
                &[Splice {
                    func_start,
                    ext: &ext,
                }],
            );
            assert_eq!(r, Err(FreplaceError::NotAFunction { func_start }));
        }
        assert_eq!(
            splice(
                &target,
                &[1],
                &[Splice {
                    func_start: 1,
                    ext: &[]
                }]
            ),
            Err(FreplaceError::EmptyExtension { func_start: 1 })
        );
    }

    #[test]
    fn a_replaced_entry_puts_the_extension_first() {
        // 0 call +1 -> 2; 1 exit; 2 mov r0, 1; 3 exit
        let target = [
            i(CALL, 0, PSEUDO_CALL, 0, 1),
            i(EXIT, 0, 0, 0, 0),
            i(MOV_K, 0, 0, 0, 1),
            i(EXIT, 0, 0, 0, 0),
        ];
        let ext = [i(MOV_K, 0, 0, 0, 2), i(EXIT, 0, 0, 0, 0)];
        let (out, starts) = splice(
            &target,
            &[2],
            &[Splice {
                func_start: 0,
                ext: &ext,
            }],
        )
        .expect("splice");
        assert_eq!(&out[..2], &ext);
        assert_eq!(&out[2..], &target, "the target follows, unchanged");
        assert_eq!(starts, vec![2, 4]);
    }
}
