//! Errors of the JIT: a program it cannot compile, or a failure inside Cranelift.

/// Why an object's programs could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    #[error("jit: the host ISA is not supported by Cranelift: {message}")]
    Isa { message: String },
    #[error(
        "jit: program {prog}: insn {pc}: jump to {target} leaves its function ({start}..{end})"
    )]
    JumpOutsideFunction {
        prog: String,
        pc: usize,
        target: usize,
        start: usize,
        end: usize,
    },
    #[error("jit: program {prog}: insn {pc}: execution falls through into the next function")]
    FallsThrough { prog: String, pc: usize },
    #[error("jit: program {prog}: insn {pc}: call to {target}, which is not a function start")]
    BadCall {
        prog: String,
        pc: usize,
        target: i64,
    },
    #[error("jit: program {prog}, function at insn {start}: {message}")]
    Codegen {
        prog: String,
        start: usize,
        message: String,
    },
    #[error("jit: {message}")]
    Module { message: String },
    /// A program was prepared with another object's map table: its proofs and map
    /// references are about those maps, not the ones it would run with.
    #[error("jit: program {prog} was prepared with another map table than the object's")]
    OtherMapTable { prog: String },
}
