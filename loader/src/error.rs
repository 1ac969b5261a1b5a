//! Errors of the loader: [`ParseError`] for the object as a whole, [`RelocError`]
//! for instruction relocations, CO-RE and linking, [`BtfError`] for `.BTF` /
//! `.BTF.ext`, [`OptionError`] for load options.
//!
//! Every variant names the place of the problem: the ELF section, the byte
//! offset inside it, and for instructions the slot index inside the section.

use thiserror::Error;

/// Why an object file could not be turned into an [`crate::Object`].
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    #[error("not an ELF file: {reason}")]
    NotElf { reason: &'static str },

    #[error("not a 64-bit ELF file (EI_CLASS = {class})")]
    Not64Bit { class: u8 },

    #[error("not a little-endian ELF file (EI_DATA = {data})")]
    NotLittleEndian { data: u8 },

    #[error("not a BPF object: e_machine = {machine}, expected EM_BPF (247)")]
    NotBpf { machine: u16 },

    #[error("corrupt ELF {what}: {reason}")]
    CorruptElf { what: &'static str, reason: String },

    #[error("section #{index}: {reason}")]
    BadSection { index: usize, reason: &'static str },

    #[error("section '{section}': size {size} is not a multiple of 8 bytes")]
    TruncatedInstructions { section: String, size: u64 },

    #[error("section '{section}': function '{name}' at byte offset {offset} with size {size} is outside the section or not instruction-aligned")]
    BadFunction {
        section: String,
        name: String,
        offset: u64,
        size: u64,
    },

    #[error("section '{section}': program '{name}' is static; only global functions may be programs outside .text")]
    StaticProgram { section: String, name: String },

    #[error("section '{section}': instructions at slot {insn_index} belong to no function symbol")]
    NoFunction { section: String, insn_index: usize },

    #[error("symbol #{index}: {reason}")]
    BadSymbol { index: usize, reason: &'static str },

    #[error("map '{name}' (section '{section}', byte offset {offset}): {reason}")]
    BadMapDefinition {
        name: String,
        section: String,
        offset: u64,
        reason: String,
    },

    #[error("section '{section}': map definitions of {size} bytes cannot be split between {count} symbols")]
    BadLegacyMapSection {
        section: String,
        size: u64,
        count: usize,
    },

    #[error("section '.maps' present but the object has no .BTF section")]
    MapsWithoutBtf,

    /// A relocation of `.rel.maps` (an initial slot, `.values = { [i] = &x }`)
    /// that libbpf would refuse.
    #[error("section '{section}': relocation #{index} at byte offset {offset} (symbol '{symbol}'): {reason}")]
    BadMapSlot {
        /// The relocation section, e.g. ".rel.maps".
        section: String,
        /// Index of the relocation entry in it.
        index: usize,
        /// `r_offset`: the byte offset in `.maps`.
        offset: u64,
        symbol: String,
        reason: String,
    },

    #[error(transparent)]
    Reloc(#[from] RelocError),

    #[error(transparent)]
    Btf(#[from] BtfError),

    #[error("target BTF {path}: {reason}")]
    TargetBtf { path: String, reason: String },

    #[error(transparent)]
    Option(#[from] OptionError),
}

/// A load option ([`crate::LoadOptions`], `Object::set_*`) that cannot be applied.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum OptionError {
    #[error("no program or section named '{name}' (programs: {available})")]
    NoSuchProgram { name: String, available: String },

    #[error("no map named '{name}' (maps: {available})")]
    NoSuchMap { name: String, available: String },

    #[error("map '{name}' holds global data; its max_entries is always 1")]
    NotRegularMap { name: String },

    #[error("no global variable named '{name}'")]
    NoSuchVariable { name: String },

    #[error("variable '{name}' lives in '{section}', not in .rodata")]
    NotRodata { name: String, section: String },

    #[error("variable '{name}' is {expected} bytes, but {got} bytes were given")]
    SizeMismatch {
        name: String,
        expected: u32,
        got: usize,
    },
}

/// A relocation or call that cannot be resolved.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RelocError {
    #[error("section '{section}': CO-RE relocation at slot {insn_index} has unknown kind {kind}")]
    CoreUnknownKind {
        section: String,
        insn_index: usize,
        kind: u32,
    },

    #[error("section '{section}': CO-RE relocation at slot {insn_index} ({kind} of {type_name}, access \"{access}\") needs a target BTF, but {why}; give one (e.g. xdp-runner --btf FILE)")]
    CoreNoTarget {
        section: String,
        insn_index: usize,
        /// libbpf's kind name, e.g. "byte_off".
        kind: &'static str,
        /// e.g. "struct iphdr".
        type_name: String,
        access: String,
        /// Why no target was available.
        why: String,
    },

    #[error(
        "section '{section}': CO-RE relocation at slot {insn_index} ({kind} {spec}): {reason}"
    )]
    Core {
        section: String,
        insn_index: usize,
        kind: &'static str,
        /// The local side, e.g. "struct iphdr.ttl (0:6 @ offset 8)".
        spec: String,
        /// Boxed: the error stays small on the happy path's `Result`s.
        #[source]
        reason: Box<CoreError>,
    },

    #[error("section '{section}': kfunc call at slot {insn_index} is not supported")]
    Kfunc { section: String, insn_index: usize },

    #[error("section '{section}': slot {insn_index} refers to extern symbol '{name}' (.kconfig/.ksyms externs are not supported)")]
    Extern {
        section: String,
        insn_index: usize,
        name: String,
    },

    #[error("section '{section}': relocation at byte offset {offset} has unknown type {r_type}")]
    UnknownType {
        section: String,
        offset: u64,
        r_type: u32,
    },

    #[error("section '{section}': relocation at byte offset {offset} is outside the section or not instruction-aligned")]
    OutOfBounds { section: String, offset: u64 },

    #[error("section '{section}': relocation at byte offset {offset} names symbol #{symbol}, which does not exist")]
    BadSymbol {
        section: String,
        offset: u64,
        symbol: usize,
    },

    #[error("section '{section}': relocation at slot {insn_index} is on opcode {code:#04x}, which is neither a call nor an lddw")]
    NotLddw {
        section: String,
        insn_index: usize,
        code: u8,
    },

    #[error("section '{section}': call relocation at slot {insn_index} has src {src}, expected BPF_PSEUDO_CALL (1)")]
    BadCall {
        section: String,
        insn_index: usize,
        src: u8,
    },

    #[error("section '{section}': relocation at slot {insn_index} targets symbol '{symbol}' in section '{target}', which holds no map, global data or subprogram")]
    BadTarget {
        section: String,
        insn_index: usize,
        symbol: String,
        target: String,
    },

    #[error("section '{section}': relocation at slot {insn_index} targets byte offset {offset} of section '{target}', where no map is defined")]
    MapNotFound {
        section: String,
        insn_index: usize,
        target: String,
        offset: u64,
    },

    #[error("section '{section}': call or function address at slot {insn_index} targets slot {target} of section '{target_section}', where no function starts")]
    BadCallTarget {
        section: String,
        insn_index: usize,
        target_section: String,
        target: i64,
    },

    #[error("section '{section}': BPF_PSEUDO_FUNC lddw at slot {insn_index} has no relocation")]
    MissingRelocation { section: String, insn_index: usize },

    #[error(
        "section '{section}': lddw at slot {insn_index} is cut off by the end of its function"
    )]
    TruncatedLddw { section: String, insn_index: usize },

    #[error("program '{program}': linked program is too large ({len} slots)")]
    TooLarge { program: String, len: usize },
}

/// Why one CO-RE relocation cannot be resolved or applied (after libbpf's
/// relo_core.c; aya-obj's `RelocationError` in the same role). [`RelocError::Core`]
/// says which relocation.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CoreError {
    #[error(transparent)]
    Btf(#[from] BtfError),
    #[error("invalid access string {access:?}")]
    InvalidAccess { access: String },
    #[error("access string {access:?} is too long")]
    AccessTooLong { access: String },
    #[error("type-based relocation has access string {access:?}, expected \"0\"")]
    TypeAccess { access: String },
    #[error("enum value relocation {access:?} on {type_name}")]
    EnumAccess { access: String, type_name: String },
    #[error("unknown relocation kind")]
    UnknownKind,
    #[error("access {access:?}: member {idx} out of range")]
    MemberOutOfRange { access: String, idx: u32 },
    #[error("access {access:?}: member {idx} has no name")]
    MemberWithoutName { access: String, idx: u32 },
    #[error("access {access:?}: index {idx} out of range")]
    IndexOutOfRange { access: String, idx: u32 },
    #[error("access {access:?} (at idx {at}) goes through {type_name}")]
    AccessThrough {
        access: String,
        at: usize,
        type_name: String,
    },
    #[error("field offset overflows")]
    OffsetOverflow,
    /// Type chains or nesting deeper than libbpf follows.
    #[error("{what} too deep")]
    TooDeep { what: &'static str },
    /// A relocation this resolver (as libbpf's) does not compute.
    #[error("{what}")]
    Unsupported { what: &'static str },
    #[error("{kind} relocation cannot be applied to an array element")]
    ArrayElement { kind: &'static str },
    #[error("{type_name}: candidate search for anonymous types is not supported")]
    AnonymousCandidate { type_name: String },
    #[error("{spec}: relocations against anonymous types are not supported")]
    AnonymousType { spec: String },
    #[error("no target BTF")]
    NoTarget,
    #[error("{spec}: field offset ambiguity: {first} != {second} ({first_type} vs {second_type})")]
    OffsetAmbiguity {
        spec: String,
        first: u64,
        second: u64,
        first_type: String,
        second_type: String,
    },
    #[error("{spec}: relocation decision ambiguity: {first} != {second} ({first_type} vs {second_type})")]
    DecisionAmbiguity {
        spec: String,
        /// "success VALUE" or "failure VALUE".
        first: String,
        second: String,
        first_type: String,
        second_type: String,
    },
    #[error("instruction #{at} does not exist")]
    NoInstruction { at: usize },
    #[error("instruction offset {offset} is not a multiple of 8")]
    MisalignedOffset { offset: u32 },
    #[error("insn #{at} (ALU/ALU64) has a register source; expected an immediate")]
    RegisterSource { at: usize },
    #[error("unexpected insn #{at} ({class}) value: got {got}, exp {expected} -> {new}")]
    UnexpectedValue {
        at: usize,
        class: &'static str,
        got: u64,
        expected: u64,
        new: u64,
    },
    #[error("insn #{at} (LDX/ST/STX) value too big: {new}")]
    OffsetTooBig { at: usize, new: u64 },
    #[error("insn #{at} (LDX/ST/STX) unexpected mem size: got {got}, exp {expected}")]
    MemSize { at: usize, got: u32, expected: u32 },
    #[error("insn #{at} (LDX/ST/STX) invalid new mem size: {size}")]
    NewMemSize { at: usize, size: u32 },
    #[error("insn #{at} (LDIMM64) has unexpected form")]
    LdImm64Form { at: usize },
    #[error("trying to relocate unrecognized insn #{at}, code: {code:#04x}")]
    UnknownInstruction { at: usize, code: u8 },
}

/// A `.BTF` or `.BTF.ext` section that cannot be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BtfError {
    #[error("{section}: truncated at byte offset {offset} (needed {needed} bytes)")]
    Truncated {
        section: &'static str,
        offset: usize,
        needed: usize,
    },

    #[error("{section}: bad magic {magic:#06x}")]
    BadMagic { section: &'static str, magic: u16 },

    #[error("{section}: unsupported version {version}")]
    BadVersion { section: &'static str, version: u8 },

    #[error("{section}: bad header: {reason}")]
    BadHeader {
        section: &'static str,
        reason: &'static str,
    },

    #[error(".BTF: type #{type_id} at byte offset {offset} has unknown kind {kind}")]
    UnknownKind {
        type_id: u32,
        offset: usize,
        kind: u32,
    },

    #[error(".BTF: string offset {offset} is outside the string table or not NUL-terminated")]
    BadString { offset: u32 },

    #[error(".BTF: type #{type_id} does not exist")]
    BadTypeId { type_id: u32 },

    #[error(".BTF: type #{type_id}: {reason}")]
    BadType { type_id: u32, reason: &'static str },

    #[error(".BTF: type chain starting at #{type_id} is too deep or loops")]
    TooDeep { type_id: u32 },

    #[error(".BTF.ext: {what} record size {size} is too small")]
    BadRecordSize { what: &'static str, size: u32 },
}
