//! Errors of the runtime: preparing a program (`LoadError`, `VerifyError`), setting up a
//! packet (`PacketError`), and faults inside a running program (`Trap`), which are values,
//! never panics.

use std::fmt;

/// A program that cannot be prepared for running.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("program {prog}: {source}")]
    Decode {
        prog: String,
        source: isa::DecodeError,
    },
    #[error("program {prog}: empty program")]
    Empty { prog: String },
    /// Strict mode: the analysis did not prove every memory access and helper
    /// argument of the program safe. `log` names each unproven instruction with the
    /// register states, in the spirit of the kernel's verifier log.
    #[error(
        "program {prog}: {unproven} memory accesses or helper calls are not proven safe (strict mode refuses the program)\n{log}"
    )]
    Unproven {
        prog: String,
        unproven: usize,
        log: String,
    },
    #[error(
        "program {prog}: insn {pc}: jump to {target} is out of range (program has {len} slots)"
    )]
    JumpOutOfRange {
        prog: String,
        pc: usize,
        target: i64,
        len: usize,
    },
    #[error("program {prog}: insn {pc}: jump into the middle of the lddw at {target}")]
    JumpIntoLdImm64 {
        prog: String,
        pc: usize,
        target: usize,
    },
    #[error("program {prog}: insn {pc}: execution falls off the end of the program")]
    FallsOffEnd { prog: String, pc: usize },
    #[error("program {prog}: insn {pc}: unknown helper {id} ({name})")]
    UnknownHelper {
        prog: String,
        pc: usize,
        id: i32,
        name: &'static str,
    },
    #[error("program {prog}: insn {pc}: helper {id} ({name}) is not supported by this runtime")]
    UnsupportedHelper {
        prog: String,
        pc: usize,
        id: i32,
        name: &'static str,
    },
    #[error("program {prog}: insn {pc}: kfunc call with id {btf_id}, which is no kfunc of this runtime (kfuncs are resolved by name when an object is loaded)")]
    Kfunc {
        prog: String,
        pc: usize,
        btf_id: i32,
    },
    #[error("program {prog}: insn {pc}: kfunc {name} is not implemented by this runtime")]
    UnsupportedKfunc {
        prog: String,
        pc: usize,
        name: String,
    },
    #[error("program {prog}: insn {pc}: call to {target}, which is not the start of a function")]
    BadCallTarget {
        prog: String,
        pc: usize,
        target: i64,
    },
    #[error("program {prog}: insn {pc}: write to the read-only frame pointer r10")]
    WriteToR10 { prog: String, pc: usize },
    #[error("program {prog}: insn {pc}: {what} is not allowed in XDP programs")]
    NotAllowed {
        prog: String,
        pc: usize,
        what: &'static str,
    },
    #[error("program {prog}: insn {pc}: lddw refers to map index {index}, but the object has {count} maps")]
    BadMapIndex {
        prog: String,
        pc: usize,
        index: i64,
        count: usize,
    },
    #[error("program {prog}: insn {pc}: lddw pseudo source {src} is not supported")]
    BadPseudo { prog: String, pc: usize, src: u8 },
    #[error("program {prog}: insn {pc}: offset {offset} is outside the value of map {map} ({value_size} bytes)")]
    BadMapValueOffset {
        prog: String,
        pc: usize,
        map: String,
        offset: i64,
        value_size: u32,
    },
}

/// A replacement (freplace) that cannot be applied to a program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FreplaceError {
    #[error("slot {func_start} does not start a function other than the entry")]
    NotAFunction { func_start: usize },
    #[error("the extension replacing the function at slot {func_start} has no instructions")]
    EmptyExtension { func_start: usize },
    #[error("call at {pc} cannot reach slot {target}")]
    TooFar { pc: usize, target: usize },
    #[error("program {ext} is of type {prog_type}, not an extension (BPF_PROG_TYPE_EXT)")]
    NotExtension { ext: u32, prog_type: u32 },
}

/// An object whose programs or maps cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("map {name}: {source}")]
    Map {
        name: String,
        source: maps::MapError,
    },
    #[error("program {name} cannot run: {reason}")]
    Rejected { name: String, reason: String },
    #[error("no program named {name} (the object has: {available})")]
    NoSuchProgram { name: String, available: String },
    #[error("the object has no XDP program (its programs: {available})")]
    NoXdpProgram { available: String },
    #[error("program {name} is of section {section}, which is not an XDP program")]
    NotXdp { name: String, section: String },
    /// A replacement link of the program cannot be applied.
    #[error("program {name}: replacement link {link_id}: {source}")]
    Freplace {
        name: String,
        link_id: u32,
        source: FreplaceError,
    },
    /// Registering or pinning a program or map in the store failed.
    #[error("{what}: {source}")]
    Object {
        what: String,
        source: maps::ObjectError,
    },
    /// An initial slot of a map of maps or prog_array (`.values = { [i] = &x }`)
    /// could not be written, as libbpf's `init_map_in_map_slots` /
    /// `init_prog_array_slots` would fail the load.
    #[error("map {map}: initial slot {slot} ({target}): {reason}")]
    InitSlot {
        map: String,
        slot: u32,
        /// "map NAME" or "program NAME".
        target: String,
        reason: String,
    },
}

/// A map entry that user space cannot write.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("no map named {name:?} (the object has: {available})")]
    NoSuchMap { name: String, available: String },
    #[error("map {map}: key is {len} bytes, the map's keys are {expected}")]
    KeySize {
        map: String,
        len: usize,
        expected: usize,
    },
    #[error("map {map}: value is {len} bytes, the map takes {expected}")]
    ValueSize {
        map: String,
        len: usize,
        expected: usize,
    },
    #[error("map {map}: {source}")]
    Map { map: String, source: maps::MapError },
    #[error("map {map}: cannot take entries 0..{n}: it holds at most {max_entries} entries (with {key_size}-byte keys)")]
    FillTooLarge {
        map: String,
        n: u64,
        max_entries: u32,
        key_size: u32,
    },
}

/// A network script line (`ip`/`sysctl`) that [`crate::net::Net::parse`] cannot apply.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("line {line}: {command:?}: {reason}")]
    Command {
        line: usize,
        command: String,
        reason: String,
    },
    #[error("line {line}: {command:?}: no device {name:?}")]
    NoDevice {
        line: usize,
        command: String,
        name: String,
    },
}

/// A packet that cannot be placed in a frame.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    #[error("packet of {len} bytes is shorter than an Ethernet header (14 bytes): EINVAL, as the kernel refuses it")]
    TooShort { len: usize },
    #[error("packet of {len} bytes does not fit a multi-buffer frame ({linear} bytes in the linear part and at most {max_frags} fragments of 4096 bytes: {max} bytes): ENOMEM, as the kernel's test run refuses it")]
    TooLong {
        len: usize,
        linear: usize,
        max_frags: usize,
        max: usize,
    },
    #[error("invalid test-run context: {reason} ({})", errno_name(*errno))]
    BadCtx { reason: &'static str, errno: i32 },
    #[error("cannot map packet memory: {errno}")]
    Map { errno: std::io::Error },
    #[error("packet memory at {addr:#x} is not below 4 GiB")]
    NotLow { addr: u64 },
}

impl PacketError {
    /// The errno the kernel's `BPF_PROG_TEST_RUN` answers for the same input.
    pub fn errno(&self) -> i32 {
        match self {
            PacketError::TooShort { .. } => libc::EINVAL,
            PacketError::TooLong { .. } | PacketError::Map { .. } | PacketError::NotLow { .. } => {
                libc::ENOMEM
            }
            PacketError::BadCtx { errno, .. } => *errno,
        }
    }
}

/// The symbolic name of an errno the runtime reports, as the kernel's test run would.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EINVAL => "EINVAL",
        libc::E2BIG => "E2BIG",
        libc::ENODEV => "ENODEV",
        libc::ENOSPC => "ENOSPC",
        libc::ENOMEM => "ENOMEM",
        _ => "error",
    }
}

/// Why a program stopped abnormally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrapKind {
    /// A load or store outside every region the program may touch.
    OutOfBounds { addr: u64, len: u8, write: bool },
    /// An atomic operation on an address not aligned to its size.
    MisalignedAtomic { addr: u64, len: u8 },
    /// More than 8 nested bpf-to-bpf calls.
    CallDepth,
    /// A run was asked for a program index the object does not have.
    NoSuchProgram { index: usize },
    /// A run was asked for a program prepared with another map table than the run's
    /// (its map addresses and proofs are about that table).
    OtherMapTable { index: usize },
    /// A helper was given a pointer outside the program's regions.
    HelperBadPointer { helper: i32, addr: u64, len: u64 },
    /// A helper was given something that is not a map of this program.
    HelperBadMap { helper: i32, value: u64 },
    /// A helper that may not be used on this kind of map.
    HelperMapType { helper: i32, map_type: u32 },
    /// A callback helper (bpf_loop) was given something that is not a function of the
    /// program, or the engine does not run callbacks.
    HelperBadCallback { helper: i32, value: u64 },
    /// bpf_spin_lock found the lock held by another live thread (`holder`, its
    /// thread id) for longer than any critical section takes.
    SpinLockHeld { addr: u64, holder: u32 },
    /// bpf_spin_lock on a lock this thread already holds: taken twice, or left
    /// held by an earlier run that exited without bpf_spin_unlock (the kernel's
    /// verifier refuses both). The lock is released.
    SpinLockRelocked { addr: u64 },
    /// The program reached an instruction whose CO-RE relocation could not be
    /// satisfied (libbpf's poison call, helper id 0xbad2310).
    PoisonedCoreRelocation,
    /// An opcode the interpreter does not execute.
    IllegalInstruction { code: u8 },
    /// The run used up its step budget (`Vm::max_steps`): `limit` backward jumps
    /// taken, bpf-to-bpf calls, `bpf_loop` callback invocations and tail calls, all
    /// counted together; the pc is the instruction that would have taken one more.
    StepBudget { limit: u64 },
    /// The JIT's compiled code needs `need` bytes of host stack for its deepest call
    /// chain, more than the calling thread has left, and no thread with that much
    /// stack could be started to run it.
    HostStack { need: u64 },
    /// An access (or a helper's pointer argument) the analysis proved safe trapped:
    /// the proof was wrong. Only the trap path looks for this, so it costs nothing.
    ProofViolated { pc: usize },
}

/// A fault inside a running program: what happened and at which instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trap {
    pub kind: TrapKind,
    /// Slot index of the faulting instruction in the program's linked instruction stream.
    pub pc: usize,
}

impl fmt::Display for Trap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TrapKind::OutOfBounds { addr, len, write } => write!(
                f,
                "out-of-bounds {} of {len} bytes at {addr:#x}",
                if write { "write" } else { "read" }
            )?,
            TrapKind::MisalignedAtomic { addr, len } => {
                write!(f, "misaligned {len}-byte atomic operation at {addr:#x}")?
            }
            TrapKind::CallDepth => write!(f, "bpf-to-bpf calls nested deeper than 8 frames")?,
            TrapKind::NoSuchProgram { index } => write!(f, "no program with index {index}")?,
            TrapKind::OtherMapTable { index } => write!(
                f,
                "program {index} was prepared with another map table than the run's"
            )?,
            TrapKind::HelperBadPointer { helper, addr, len } => write!(
                f,
                "helper {helper} ({}) was given {len} bytes at {addr:#x}, outside the program's memory",
                isa::helpers::helper_name(helper).unwrap_or("unknown")
            )?,
            TrapKind::HelperBadMap { helper, value } => write!(
                f,
                "helper {helper} ({}) was given {value:#x}, which is not a map",
                isa::helpers::helper_name(helper).unwrap_or("unknown")
            )?,
            TrapKind::HelperMapType { helper, map_type } => write!(
                f,
                "helper {helper} ({}) cannot be used on a map of type {map_type}",
                isa::helpers::helper_name(helper).unwrap_or("unknown")
            )?,
            TrapKind::HelperBadCallback { helper, value } => write!(
                f,
                "helper {helper} ({}) cannot call back {value:#x}: not a function of the program, or not supported by this engine",
                isa::helpers::helper_name(helper).unwrap_or("unknown")
            )?,
            TrapKind::SpinLockHeld { addr, holder } => write!(
                f,
                "bpf_spin_lock at {addr:#x} held by thread {holder} for over 100 ms (a run that exited without bpf_spin_unlock?)"
            )?,
            TrapKind::SpinLockRelocked { addr } => write!(
                f,
                "bpf_spin_lock at {addr:#x} is already held by this thread: taken twice, or an earlier run exited without bpf_spin_unlock (the kernel's verifier refuses both); released"
            )?,
            TrapKind::PoisonedCoreRelocation => {
                write!(f, "reached an instruction whose CO-RE relocation failed")?
            }
            TrapKind::IllegalInstruction { code } => write!(f, "illegal instruction {code:#04x}")?,
            TrapKind::StepBudget { limit } => write!(
                f,
                "step budget of {limit} exhausted (backward jumps, calls, bpf_loop iterations and tail calls; an endless loop?)"
            )?,
            TrapKind::HostStack { need } => write!(
                f,
                "the compiled program needs {need} bytes of host stack, more than this thread has, and no thread with that stack could be started"
            )?,
            TrapKind::ProofViolated { pc } => write!(
                f,
                "the access at {pc} was proven safe by the analysis but trapped (unsound proof)"
            )?,
        }
        write!(f, " at insn {}", self.pc)
    }
}

impl std::error::Error for Trap {}
