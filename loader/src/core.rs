//! CO-RE ("compile once, run everywhere") relocations, resolved the way
//! libbpf's `relo_core.c` does:
//!
//! 1. the access string of each `bpf_core_relo` record is parsed against the
//!    object's own BTF into a *spec*: the accessors (named fields and array
//!    indices) and the bit offset they reach ([`parse_spec`]);
//! 2. *candidates* are the target BTF's types of a compatible kind whose names
//!    are equal to the local name once a `___flavor` suffix is dropped
//!    ([`find_candidates`]);
//! 3. each candidate is matched field by field (anonymous structs and unions
//!    are searched through), checked for compatibility, and the relocated
//!    value computed; all matching candidates must agree ([`calc_relo`]);
//! 4. the instruction is patched: an ALU immediate, the offset (and, for
//!    unsigned integers and pointers, the size) of a load or store, or the
//!    64-bit immediate of an `lddw` ([`patch_insn`]).
//!
//! A relocation with no matching target is not an error, as in libbpf: field
//! and type existence checks get 0, type-based relocations 0, and the other
//! field and enum-value relocations *poison* their instruction, turning it
//! into `call 0xbad2310`, an invalid helper. The kernel's verifier accepts
//! such code only when it is dead (guarded by an existence check); the loader
//! records every poisoned instruction in [`crate::Program::core_poisoned`] so
//! that a runtime can name the relocation if it ever reaches one.

use std::collections::HashMap;

use isa::RawInsn;

use crate::btf::{Btf, BtfKind, BtfMember, BtfType, BTF_KIND_ENUM, BTF_KIND_ENUM64};
use crate::error::CoreError;

/// `bpf_core_relo.kind` values (libbpf `enum bpf_core_relo_kind`).
pub const BPF_CORE_FIELD_BYTE_OFFSET: u32 = 0;
pub const BPF_CORE_FIELD_BYTE_SIZE: u32 = 1;
pub const BPF_CORE_FIELD_EXISTS: u32 = 2;
pub const BPF_CORE_FIELD_SIGNED: u32 = 3;
pub const BPF_CORE_FIELD_LSHIFT_U64: u32 = 4;
pub const BPF_CORE_FIELD_RSHIFT_U64: u32 = 5;
pub const BPF_CORE_TYPE_ID_LOCAL: u32 = 6;
pub const BPF_CORE_TYPE_ID_TARGET: u32 = 7;
pub const BPF_CORE_TYPE_EXISTS: u32 = 8;
pub const BPF_CORE_TYPE_SIZE: u32 = 9;
pub const BPF_CORE_ENUMVAL_EXISTS: u32 = 10;
pub const BPF_CORE_ENUMVAL_VALUE: u32 = 11;
pub const BPF_CORE_TYPE_MATCHES: u32 = 12;

/// The immediate of libbpf's poison call: `call 0xbad2310` (195896080).
pub const POISON_HELPER_ID: i32 = 0x0bad_2310;

/// Maximum accessor string length (libbpf's `BPF_CORE_SPEC_MAX_LEN`).
const SPEC_MAX_LEN: usize = 64;
/// Recursion limit of the type comparisons (libbpf's depth and level of 32).
const MAX_DEPTH: i32 = 32;

/// A CO-RE relocation kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoreReloKind {
    FieldByteOffset,
    FieldByteSize,
    FieldExists,
    FieldSigned,
    FieldLShiftU64,
    FieldRShiftU64,
    TypeIdLocal,
    TypeIdTarget,
    TypeExists,
    TypeSize,
    EnumvalExists,
    EnumvalValue,
    TypeMatches,
}

impl CoreReloKind {
    /// The kind with this `bpf_core_relo.kind` number.
    pub fn from_u32(kind: u32) -> Option<CoreReloKind> {
        use CoreReloKind::*;
        Some(match kind {
            BPF_CORE_FIELD_BYTE_OFFSET => FieldByteOffset,
            BPF_CORE_FIELD_BYTE_SIZE => FieldByteSize,
            BPF_CORE_FIELD_EXISTS => FieldExists,
            BPF_CORE_FIELD_SIGNED => FieldSigned,
            BPF_CORE_FIELD_LSHIFT_U64 => FieldLShiftU64,
            BPF_CORE_FIELD_RSHIFT_U64 => FieldRShiftU64,
            BPF_CORE_TYPE_ID_LOCAL => TypeIdLocal,
            BPF_CORE_TYPE_ID_TARGET => TypeIdTarget,
            BPF_CORE_TYPE_EXISTS => TypeExists,
            BPF_CORE_TYPE_SIZE => TypeSize,
            BPF_CORE_ENUMVAL_EXISTS => EnumvalExists,
            BPF_CORE_ENUMVAL_VALUE => EnumvalValue,
            BPF_CORE_TYPE_MATCHES => TypeMatches,
            _ => return None,
        })
    }

    /// libbpf's name of the kind, as its debug log prints it.
    pub fn name(self) -> &'static str {
        use CoreReloKind::*;
        match self {
            FieldByteOffset => "byte_off",
            FieldByteSize => "byte_sz",
            FieldExists => "field_exists",
            FieldSigned => "signed",
            FieldLShiftU64 => "lshift_u64",
            FieldRShiftU64 => "rshift_u64",
            TypeIdLocal => "local_type_id",
            TypeIdTarget => "target_type_id",
            TypeExists => "type_exists",
            TypeSize => "type_size",
            EnumvalExists => "enumval_exists",
            EnumvalValue => "enumval_value",
            TypeMatches => "type_matches",
        }
    }

    pub fn is_field_based(self) -> bool {
        use CoreReloKind::*;
        matches!(
            self,
            FieldByteOffset
                | FieldByteSize
                | FieldExists
                | FieldSigned
                | FieldLShiftU64
                | FieldRShiftU64
        )
    }

    pub fn is_type_based(self) -> bool {
        use CoreReloKind::*;
        matches!(
            self,
            TypeIdLocal | TypeIdTarget | TypeExists | TypeSize | TypeMatches
        )
    }

    pub fn is_enumval_based(self) -> bool {
        matches!(
            self,
            CoreReloKind::EnumvalExists | CoreReloKind::EnumvalValue
        )
    }

    /// Whether resolving it needs a target BTF (all but `TYPE_ID_LOCAL`).
    pub fn needs_target(self) -> bool {
        self != CoreReloKind::TypeIdLocal
    }
}

/// The outcome of one relocation (libbpf's `struct bpf_core_relo_res`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CoreResolution {
    /// The value the compiler used (from the local BTF).
    pub orig_val: u64,
    /// The value for the target.
    pub new_val: u64,
    /// No target matched: the instruction becomes `call 0xbad2310`.
    pub poison: bool,
    /// Check that the instruction holds `orig_val` before patching.
    pub validate: bool,
    /// The access size differs and cannot be adjusted safely (poisons a load/store).
    pub fail_memsz_adjust: bool,
    /// Field sizes for load/store size adjustment (0: no adjustment).
    pub orig_sz: u32,
    pub new_sz: u32,
    /// The target type id the relocation resolved against (0: none).
    pub target_type_id: u32,
}

/// Candidate lists, per local type id, shared by all relocations of an object:
/// as in libbpf, a list shrinks to the candidates that matched the first
/// relocation using it.
pub type CandidateCache = HashMap<u32, Vec<u32>>;

// ---------------------------------------------------------------------------
// BTF helpers

type R<T> = Result<T, CoreError>;

fn ty(btf: &Btf, id: u32) -> R<&BtfType> {
    Ok(btf.type_by_id(id)?)
}

/// libbpf's `skip_mods_and_typedefs`.
fn skip(btf: &Btf, id: u32) -> R<(u32, &BtfType)> {
    Ok(btf.resolved_type(id)?)
}

fn name(btf: &Btf, off: u32) -> &str {
    btf.string(off).unwrap_or("")
}

fn type_size(btf: &Btf, id: u32) -> R<u64> {
    Ok(btf.type_size(id)?)
}

fn members(t: &BtfType) -> Option<&[BtfMember]> {
    match &t.kind {
        BtfKind::Struct { members, .. } | BtfKind::Union { members, .. } => Some(members),
        _ => None,
    }
}

fn is_any_enum(t: &BtfType) -> bool {
    matches!(t.kind, BtfKind::Enum { .. } | BtfKind::Enum64 { .. })
}

/// Number of members, enumerators or parameters.
fn vlen(t: &BtfType) -> usize {
    match &t.kind {
        BtfKind::Struct { members, .. } | BtfKind::Union { members, .. } => members.len(),
        BtfKind::Enum { values, .. } => values.len(),
        BtfKind::Enum64 { values, .. } => values.len(),
        BtfKind::FuncProto { params, .. } => params.len(),
        BtfKind::Datasec { vars, .. } => vars.len(),
        _ => 0,
    }
}

/// Name offset and value of enumerator `i` of an enum or enum64 (the 32-bit
/// value sign-extended, as libbpf stores it in a `__u64`).
fn enumerator(t: &BtfType, i: usize) -> Option<(u32, u64)> {
    match &t.kind {
        BtfKind::Enum { values, .. } => values.get(i).map(|v| (v.name_off, v.val as i64 as u64)),
        BtfKind::Enum64 { values, .. } => values.get(i).map(|v| (v.name_off, v.val)),
        _ => None,
    }
}

/// libbpf's `btf_kind_core_compat`: same kind, or enum vs enum64.
fn kinds_compat(a: &BtfType, b: &BtfType) -> bool {
    let (ka, kb) = (a.kind.number(), b.kind.number());
    ka == kb
        || (matches!(ka, BTF_KIND_ENUM | BTF_KIND_ENUM64)
            && matches!(kb, BTF_KIND_ENUM | BTF_KIND_ENUM64))
}

fn int_offset(t: &BtfType) -> u8 {
    match t.kind {
        BtfKind::Int { offset, .. } => offset,
        _ => 0,
    }
}

/// Length of `name` without its `___flavor` suffix (libbpf's
/// `bpf_core_essential_name_len`): the last `x___y` with x, y not `_` cuts.
pub fn essential_name_len(name: &str) -> usize {
    essential_bytes(name.as_bytes()).len()
}

/// [`essential_name_len`] on bytes.
pub fn essential_bytes(b: &[u8]) -> &[u8] {
    let n = b.len();
    if n < 5 {
        return b;
    }
    for i in (0..=n - 5).rev() {
        if b[i] != b'_'
            && b[i + 1] == b'_'
            && b[i + 2] == b'_'
            && b[i + 3] == b'_'
            && b[i + 4] != b'_'
        {
            return &b[..i + 1];
        }
    }
    b
}

/// `name` without its flavor suffix.
pub fn essential_name(name: &str) -> &[u8] {
    essential_bytes(name.as_bytes())
}

/// "struct foo", "enum bar", "typedef baz" for messages.
pub fn describe_type(btf: &Btf, id: u32) -> String {
    let Ok(t) = btf.type_by_id(id) else {
        return format!("[{id}] <invalid>");
    };
    let kind = match t.kind {
        BtfKind::Void => "void",
        BtfKind::Int { .. } => "int",
        BtfKind::Ptr { .. } => "ptr",
        BtfKind::Array { .. } => "array",
        BtfKind::Struct { .. } => "struct",
        BtfKind::Union { .. } => "union",
        BtfKind::Enum { .. } | BtfKind::Enum64 { .. } => "enum",
        BtfKind::Fwd => "fwd",
        BtfKind::Typedef { .. } => "typedef",
        BtfKind::Volatile { .. } => "volatile",
        BtfKind::Const { .. } => "const",
        BtfKind::Restrict { .. } => "restrict",
        BtfKind::Func { .. } => "func",
        BtfKind::FuncProto { .. } => "func_proto",
        BtfKind::Var { .. } => "var",
        BtfKind::Datasec { .. } => "datasec",
        BtfKind::Float { .. } => "float",
        BtfKind::DeclTag { .. } => "decl_tag",
        BtfKind::TypeTag { .. } => "type_tag",
    };
    let n = name(btf, t.name_off);
    if n.is_empty() {
        format!("{kind} <anon>")
    } else {
        format!("{kind} {n}")
    }
}

// ---------------------------------------------------------------------------
// Specs

/// A named field or an array index (libbpf's `bpf_core_accessor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Accessor<'b> {
    /// Struct/union holding the field, or the array element type.
    type_id: u32,
    idx: u32,
    /// Field (or enumerator) name; `None` for an array index.
    name: Option<&'b str>,
}

/// libbpf's `bpf_core_spec`.
#[derive(Debug, Clone)]
struct Spec<'b> {
    btf: &'b Btf,
    root_type_id: u32,
    spec: Vec<Accessor<'b>>,
    raw: Vec<u32>,
    bit_offset: u64,
}

impl<'b> Spec<'b> {
    fn new(btf: &'b Btf, root_type_id: u32) -> Self {
        Spec {
            btf,
            root_type_id,
            spec: Vec::new(),
            raw: Vec::new(),
            bit_offset: 0,
        }
    }
}

fn parse_access(access: &str) -> R<Vec<u32>> {
    if access.is_empty() || access.starts_with(':') {
        return Err(CoreError::InvalidAccess {
            access: access.to_string(),
        });
    }
    let mut raw = Vec::new();
    for part in access.split(':') {
        let ok = !part.is_empty() && part.bytes().all(|c| c.is_ascii_digit());
        let v = part
            .parse::<u32>()
            .ok()
            .filter(|&v| ok && v <= i32::MAX as u32)
            .ok_or_else(|| CoreError::InvalidAccess {
                access: access.to_string(),
            })?;
        if raw.len() == SPEC_MAX_LEN {
            return Err(CoreError::AccessTooLong {
                access: access.to_string(),
            });
        }
        raw.push(v);
    }
    Ok(raw)
}

/// libbpf's `is_flex_arr`: a zero-length array that is the last member of the
/// struct named by the previous accessor.
fn is_flex_arr(btf: &Btf, prev: Option<&Accessor>, nelems: u32) -> bool {
    let Some(acc) = prev else { return false };
    if acc.name.is_none() || nelems > 0 {
        return false;
    }
    btf.type_by_id(acc.type_id)
        .map(|t| vlen(t).checked_sub(1) == Some(acc.idx as usize))
        .unwrap_or(false)
}

fn mul_bits(idx: u32, size: u64) -> R<u64> {
    u64::from(idx)
        .checked_mul(size)
        .and_then(|v| v.checked_mul(8))
        .filter(|&v| v <= u64::from(u32::MAX))
        .ok_or(CoreError::OffsetOverflow)
}

/// libbpf's `bpf_core_parse_spec`.
fn parse_spec<'b>(btf: &'b Btf, type_id: u32, access: &str, kind: CoreReloKind) -> R<Spec<'b>> {
    if access.is_empty() || access.starts_with(':') {
        return Err(CoreError::InvalidAccess {
            access: access.to_string(),
        });
    }
    let mut spec = Spec::new(btf, type_id);
    if kind.is_type_based() {
        if access != "0" {
            return Err(CoreError::TypeAccess {
                access: access.to_string(),
            });
        }
        return Ok(spec);
    }
    spec.raw = parse_access(access)?;
    let (mut id, t) = skip(btf, type_id)?;
    let first = spec.raw[0];
    spec.spec.push(Accessor {
        type_id: id,
        idx: first,
        name: None,
    });

    if kind.is_enumval_based() {
        if !is_any_enum(t) || spec.raw.len() > 1 || first as usize >= vlen(t) {
            return Err(CoreError::EnumAccess {
                access: access.to_string(),
                type_name: describe_type(btf, id),
            });
        }
        let (name_off, _) = enumerator(t, first as usize).unwrap_or((0, 0));
        spec.spec[0].name = Some(name(btf, name_off));
        return Ok(spec);
    }
    if !kind.is_field_based() {
        return Err(CoreError::UnknownKind);
    }

    let sz = type_size(btf, id)?;
    spec.bit_offset = mul_bits(first, sz)?;
    for i in 1..spec.raw.len() {
        let (rid, t) = skip(btf, id)?;
        id = rid;
        let idx = spec.raw[i];
        if let Some(ms) = members(t) {
            let m = ms
                .get(idx as usize)
                .ok_or_else(|| CoreError::MemberOutOfRange {
                    access: access.to_string(),
                    idx,
                })?;
            spec.bit_offset += u64::from(m.bit_offset(t.kind_flag));
            if m.name_off != 0 {
                let n = name(btf, m.name_off);
                if n.is_empty() {
                    return Err(CoreError::MemberWithoutName {
                        access: access.to_string(),
                        idx,
                    });
                }
                spec.spec.push(Accessor {
                    type_id: id,
                    idx,
                    name: Some(n),
                });
            }
            id = m.type_id;
        } else if let BtfKind::Array {
            elem_type, nelems, ..
        } = t.kind
        {
            let (eid, _) = skip(btf, elem_type)?;
            let flex = is_flex_arr(btf, spec.spec.last(), nelems);
            if !flex && idx >= nelems {
                return Err(CoreError::IndexOutOfRange {
                    access: access.to_string(),
                    idx,
                });
            }
            spec.spec.push(Accessor {
                type_id: eid,
                idx,
                name: None,
            });
            let sz = type_size(btf, eid)?;
            spec.bit_offset += mul_bits(idx, sz)?;
            id = eid;
        } else {
            return Err(CoreError::AccessThrough {
                access: access.to_string(),
                at: i,
                type_name: describe_type(btf, id),
            });
        }
        if spec.bit_offset > u64::from(u32::MAX) {
            return Err(CoreError::OffsetOverflow);
        }
    }
    Ok(spec)
}

/// "struct xdp_md.data (0:0 @ offset 0)"-like description of a local spec.
fn describe_spec(spec: &Spec, kind: CoreReloKind, access: &str) -> String {
    let mut s = describe_type(spec.btf, spec.root_type_id);
    if kind.is_enumval_based() {
        if let Some(n) = spec.spec.first().and_then(|a| a.name) {
            s.push_str("::");
            s.push_str(n);
        }
    } else if kind.is_field_based() {
        for a in spec.spec.iter().skip(1) {
            match a.name {
                Some(n) => {
                    s.push('.');
                    s.push_str(n);
                }
                None => s.push_str(&format!("[{}]", a.idx)),
            }
        }
        s.push_str(&format!(" ({access} @ offset {})", spec.bit_offset / 8));
    }
    s
}

// ---------------------------------------------------------------------------
// Compatibility

/// libbpf's `bpf_core_fields_are_compat`.
fn fields_are_compat(lb: &Btf, lid: u32, tb: &Btf, tid: u32) -> R<bool> {
    let (mut lid, mut tid) = (lid, tid);
    for _ in 0..MAX_DEPTH {
        let (l, lt) = skip(lb, lid)?;
        let (t, tt) = skip(tb, tid)?;
        if members(lt).is_some() && members(tt).is_some() {
            return Ok(true);
        }
        if !kinds_compat(lt, tt) {
            return Ok(false);
        }
        match (&lt.kind, &tt.kind) {
            (BtfKind::Ptr { .. }, _) | (BtfKind::Float { .. }, _) => return Ok(true),
            (BtfKind::Fwd, _) | (BtfKind::Enum { .. }, _) | (BtfKind::Enum64 { .. }, _) => {
                let ln = essential_name(name(lb, lt.name_off));
                let tn = essential_name(name(tb, tt.name_off));
                return Ok(ln.is_empty() || tn.is_empty() || ln == tn);
            }
            (BtfKind::Int { .. }, _) => return Ok(int_offset(lt) == 0 && int_offset(tt) == 0),
            (BtfKind::Array { elem_type: le, .. }, BtfKind::Array { elem_type: te, .. }) => {
                lid = *le;
                tid = *te;
            }
            _ => {
                let _ = (l, t);
                return Ok(false);
            }
        }
    }
    Err(CoreError::TooDeep { what: "type chain" })
}

/// libbpf's `bpf_core_types_are_compat` (TYPE_EXISTS, TYPE_SIZE, TYPE_ID_TARGET).
pub fn types_are_compat(lb: &Btf, lid: u32, tb: &Btf, tid: u32) -> Result<bool, CoreError> {
    types_are_compat_level(lb, lid, tb, tid, MAX_DEPTH)
}

fn types_are_compat_level(lb: &Btf, lid: u32, tb: &Btf, tid: u32, level: i32) -> R<bool> {
    if !kinds_compat(ty(lb, lid)?, ty(tb, tid)?) {
        return Ok(false);
    }
    let (mut lid, mut tid) = (lid, tid);
    let mut depth = MAX_DEPTH;
    loop {
        depth -= 1;
        if depth < 0 {
            return Err(CoreError::TooDeep { what: "type chain" });
        }
        let (l, lt) = skip(lb, lid)?;
        let (t, tt) = skip(tb, tid)?;
        if !kinds_compat(lt, tt) {
            return Ok(false);
        }
        match (&lt.kind, &tt.kind) {
            (BtfKind::Void, _)
            | (BtfKind::Struct { .. }, _)
            | (BtfKind::Union { .. }, _)
            | (BtfKind::Enum { .. }, _)
            | (BtfKind::Enum64 { .. }, _)
            | (BtfKind::Fwd, _) => return Ok(true),
            (BtfKind::Int { .. }, _) => return Ok(int_offset(lt) == 0 && int_offset(tt) == 0),
            (BtfKind::Ptr { type_id: lp }, BtfKind::Ptr { type_id: tp }) => {
                lid = *lp;
                tid = *tp;
            }
            (BtfKind::Array { elem_type: le, .. }, BtfKind::Array { elem_type: te, .. }) => {
                lid = *le;
                tid = *te;
            }
            (
                BtfKind::FuncProto {
                    return_type: lr,
                    params: lp,
                },
                BtfKind::FuncProto {
                    return_type: tr,
                    params: tp,
                },
            ) => {
                if lp.len() != tp.len() {
                    return Ok(false);
                }
                for (a, b) in lp.iter().zip(tp) {
                    if level <= 0 {
                        return Err(CoreError::TooDeep { what: "type chain" });
                    }
                    let (a, _) = skip(lb, a.type_id)?;
                    let (b, _) = skip(tb, b.type_id)?;
                    if !types_are_compat_level(lb, a, tb, b, level - 1)? {
                        return Ok(false);
                    }
                }
                lid = skip(lb, *lr)?.0;
                tid = skip(tb, *tr)?.0;
            }
            _ => {
                let _ = (l, t);
                return Ok(false);
            }
        }
    }
}

/// libbpf's `bpf_core_names_match`: equal once flavors are dropped; an
/// anonymous target matches only an anonymous local.
fn names_match(lb: &Btf, loff: u32, tb: &Btf, toff: u32) -> bool {
    let (ln, tn) = (name(lb, loff), name(tb, toff));
    if tn.is_empty() {
        return ln.is_empty();
    }
    essential_name(ln) == essential_name(tn)
}

/// libbpf's `bpf_core_types_match` (TYPE_MATCHES).
pub fn types_match(lb: &Btf, lid: u32, tb: &Btf, tid: u32) -> Result<bool, CoreError> {
    types_match_level(lb, lid, tb, tid, false, MAX_DEPTH)
}

fn types_match_level(
    lb: &Btf,
    lid: u32,
    tb: &Btf,
    tid: u32,
    behind_ptr: bool,
    level: i32,
) -> R<bool> {
    if level <= 0 {
        return Err(CoreError::TooDeep { what: "type chain" });
    }
    let (mut lid, mut tid, mut behind_ptr) = (lid, tid, behind_ptr);
    let mut depth = MAX_DEPTH;
    loop {
        depth -= 1;
        if depth < 0 {
            return Err(CoreError::TooDeep { what: "type chain" });
        }
        let (l, lt) = skip(lb, lid)?;
        let (t, tt) = skip(tb, tid)?;
        let _ = (l, t);
        if !names_match(lb, lt.name_off, tb, tt.name_off) {
            return Ok(false);
        }
        let (lk, tk) = (lt.kind.number(), tt.kind.number());
        match &lt.kind {
            BtfKind::Void => return Ok(lk == tk),
            BtfKind::Fwd => {
                let lf = lt.kind_flag;
                if behind_ptr {
                    if lk == tk {
                        return Ok(lf == tt.kind_flag);
                    }
                    return Ok(matches!(tt.kind, BtfKind::Struct { .. }) && !lf
                        || matches!(tt.kind, BtfKind::Union { .. }) && lf);
                }
                return Ok(lk == tk && lf == tt.kind_flag);
            }
            BtfKind::Enum { .. } | BtfKind::Enum64 { .. } => {
                if !is_any_enum(tt) {
                    return Ok(false);
                }
                return Ok(enums_match(lb, lt, tb, tt));
            }
            BtfKind::Struct { .. } | BtfKind::Union { .. } => {
                if behind_ptr {
                    if lk == tk {
                        return Ok(true);
                    }
                    if !matches!(tt.kind, BtfKind::Fwd) {
                        return Ok(false);
                    }
                    return Ok(matches!(lt.kind, BtfKind::Union { .. }) == tt.kind_flag);
                }
                if lk != tk {
                    return Ok(false);
                }
                return composites_match(lb, lt, tb, tt, behind_ptr, level);
            }
            BtfKind::Int {
                size: ls,
                encoding: le,
                ..
            } => {
                let BtfKind::Int {
                    size: ts,
                    encoding: te,
                    ..
                } = tt.kind
                else {
                    return Ok(false);
                };
                return Ok(*ls == ts && (le & 1) == (te & 1));
            }
            BtfKind::Ptr { type_id: lp } => {
                let BtfKind::Ptr { type_id: tp } = tt.kind else {
                    return Ok(false);
                };
                behind_ptr = true;
                lid = *lp;
                tid = tp;
            }
            BtfKind::Array {
                elem_type: le,
                nelems: ln,
                ..
            } => {
                let BtfKind::Array {
                    elem_type: te,
                    nelems: tn,
                    ..
                } = tt.kind
                else {
                    return Ok(false);
                };
                if *ln != tn {
                    return Ok(false);
                }
                lid = *le;
                tid = te;
            }
            BtfKind::FuncProto {
                return_type: lr,
                params: lp,
            } => {
                let BtfKind::FuncProto {
                    return_type: tr,
                    params: tp,
                } = &tt.kind
                else {
                    return Ok(false);
                };
                if lp.len() != tp.len() {
                    return Ok(false);
                }
                for (a, b) in lp.iter().zip(tp) {
                    if !types_match_level(lb, a.type_id, tb, b.type_id, behind_ptr, level - 1)? {
                        return Ok(false);
                    }
                }
                lid = *lr;
                tid = *tr;
            }
            _ => return Ok(false),
        }
    }
}

fn enum_size(t: &BtfType) -> u32 {
    match t.kind {
        BtfKind::Enum { size, .. } | BtfKind::Enum64 { size, .. } => size,
        _ => 0,
    }
}

fn enums_match(lb: &Btf, lt: &BtfType, tb: &Btf, tt: &BtfType) -> bool {
    if enum_size(lt) != enum_size(tt) || vlen(lt) > vlen(tt) {
        return false;
    }
    (0..vlen(lt)).all(|i| {
        let (loff, _) = enumerator(lt, i).unwrap_or((0, 0));
        (0..vlen(tt)).any(|j| {
            let (toff, _) = enumerator(tt, j).unwrap_or((0, 0));
            names_match(lb, loff, tb, toff)
        })
    })
}

fn composites_match(
    lb: &Btf,
    lt: &BtfType,
    tb: &Btf,
    tt: &BtfType,
    behind_ptr: bool,
    level: i32,
) -> R<bool> {
    let (Some(lm), Some(tm)) = (members(lt), members(tt)) else {
        return Ok(false);
    };
    if lm.len() > tm.len() {
        return Ok(false);
    }
    for l in lm {
        let mut matched = false;
        for t in tm {
            if !names_match(lb, l.name_off, tb, t.name_off) {
                continue;
            }
            if types_match_level(lb, l.type_id, tb, t.type_id, behind_ptr, level - 1)? {
                matched = true;
                break;
            }
        }
        if !matched {
            return Ok(false);
        }
    }
    Ok(true)
}

// ---------------------------------------------------------------------------
// Matching a spec against a candidate

/// libbpf's `bpf_core_match_member`: finds the local accessor's field in target
/// type `tid`, searching anonymous members recursively. Returns the field's
/// type id when found and compatible.
fn match_member<'t>(
    lb: &Btf,
    lacc: &Accessor,
    tb: &'t Btf,
    tid: u32,
    spec: &mut Spec<'t>,
) -> R<Option<u32>> {
    let (tid, tt) = skip(tb, tid)?;
    let Some(tms) = members(tt) else {
        return Ok(None);
    };
    let lt = ty(lb, lacc.type_id)?;
    let lm = members(lt)
        .and_then(|m| m.get(lacc.idx as usize))
        .ok_or(CoreError::Unsupported {
            what: "local accessor is not a member",
        })?;
    let lname = name(lb, lm.name_off);
    for (i, m) in tms.iter().enumerate() {
        let bit_off = u64::from(m.bit_offset(tt.kind_flag));
        if spec.raw.len() == SPEC_MAX_LEN {
            return Err(CoreError::TooDeep {
                what: "struct/union/array nesting",
            });
        }
        spec.bit_offset += bit_off;
        spec.raw.push(i as u32);
        let tname = name(tb, m.name_off);
        if tname.is_empty() {
            let found = match_member(lb, lacc, tb, m.type_id, spec)?;
            if found.is_some() {
                return Ok(found);
            }
        } else if lname == tname {
            spec.spec.push(Accessor {
                type_id: tid,
                idx: i as u32,
                name: Some(tname),
            });
            if fields_are_compat(lb, lm.type_id, tb, m.type_id)? {
                return Ok(Some(m.type_id));
            }
            spec.spec.pop();
            return Ok(None);
        }
        spec.bit_offset -= bit_off;
        spec.raw.pop();
    }
    Ok(None)
}

/// libbpf's `bpf_core_spec_match`: `Some(target spec)` when candidate `tid` matches.
fn spec_match<'t>(local: &Spec, kind: CoreReloKind, tb: &'t Btf, tid: u32) -> R<Option<Spec<'t>>> {
    let mut targ = Spec::new(tb, tid);
    if kind.is_type_based() {
        let ok = if kind == CoreReloKind::TypeMatches {
            types_match(local.btf, local.root_type_id, tb, tid)?
        } else {
            types_are_compat(local.btf, local.root_type_id, tb, tid)?
        };
        return Ok(ok.then_some(targ));
    }
    if kind.is_enumval_based() {
        let (tid, tt) = skip(tb, tid)?;
        if !is_any_enum(tt) {
            return Ok(None);
        }
        let lname = local.spec.first().and_then(|a| a.name).unwrap_or("");
        let lessent = essential_name(lname);
        for i in 0..vlen(tt) {
            let (off, _) = enumerator(tt, i).unwrap_or((0, 0));
            let tname = name(tb, off);
            if essential_name(tname) == lessent {
                targ.spec.push(Accessor {
                    type_id: tid,
                    idx: i as u32,
                    name: Some(tname),
                });
                targ.raw.push(i as u32);
                return Ok(Some(targ));
            }
        }
        return Ok(None);
    }
    if !kind.is_field_based() {
        return Err(CoreError::UnknownKind);
    }
    let mut tid = tid;
    for (i, lacc) in local.spec.iter().enumerate() {
        let (rid, tt) = skip(tb, tid)?;
        tid = rid;
        if lacc.name.is_some() {
            match match_member(local.btf, lacc, tb, tid, &mut targ)? {
                Some(next) => tid = next,
                None => return Ok(None),
            }
        } else {
            if i > 0 {
                let BtfKind::Array {
                    elem_type, nelems, ..
                } = tt.kind
                else {
                    return Ok(None);
                };
                let flex = is_flex_arr(tb, targ.spec.last(), nelems);
                if !flex && lacc.idx >= nelems {
                    return Ok(None);
                }
                tid = skip(tb, elem_type)?.0;
            }
            if targ.raw.len() == SPEC_MAX_LEN {
                return Err(CoreError::TooDeep {
                    what: "struct/union/array nesting",
                });
            }
            targ.spec.push(Accessor {
                type_id: tid,
                idx: lacc.idx,
                name: None,
            });
            targ.raw.push(lacc.idx);
            let sz = type_size(tb, tid)?;
            targ.bit_offset += mul_bits(lacc.idx, sz)?;
        }
        if targ.bit_offset > u64::from(u32::MAX) {
            return Err(CoreError::OffsetOverflow);
        }
    }
    Ok(Some(targ))
}

// ---------------------------------------------------------------------------
// Computing values

enum CalcError {
    /// libbpf's -EUCLEAN: poison the instruction.
    Poison,
    Fail(CoreError),
}

impl From<CoreError> for CalcError {
    fn from(e: CoreError) -> Self {
        CalcError::Fail(e)
    }
}

struct FieldVal {
    val: u64,
    sz: u32,
    type_id: u32,
    validate: bool,
}

/// libbpf's `bpf_core_calc_field_relo`.
fn calc_field(kind: CoreReloKind, spec: Option<&Spec>) -> Result<FieldVal, CalcError> {
    let mut out = FieldVal {
        val: 0,
        sz: 0,
        type_id: 0,
        validate: true,
    };
    if kind == CoreReloKind::FieldExists {
        out.val = u64::from(spec.is_some());
        return Ok(out);
    }
    let spec = spec.ok_or(CalcError::Poison)?;
    let btf = spec.btf;
    let acc = spec
        .spec
        .last()
        .ok_or(CoreError::Unsupported { what: "empty spec" })?;
    let Some(_) = acc.name else {
        // An array element: only its offset and size make sense.
        let sz = type_size(btf, acc.type_id)?;
        let sz = u32::try_from(sz).map_err(|_| CoreError::Unsupported {
            what: "field too large",
        })?;
        match kind {
            CoreReloKind::FieldByteOffset => {
                out.val = spec.bit_offset / 8;
                out.sz = sz;
                out.type_id = acc.type_id;
            }
            CoreReloKind::FieldByteSize => out.val = u64::from(sz),
            _ => {
                return Err(CalcError::Fail(CoreError::ArrayElement {
                    kind: kind.name(),
                }))
            }
        }
        return Ok(out);
    };
    let t = ty(btf, acc.type_id)?;
    let m = members(t)
        .and_then(|m| m.get(acc.idx as usize))
        .ok_or(CoreError::Unsupported {
            what: "accessor is not a member",
        })?;
    let (field_type_id, mt) = skip(btf, m.type_id)?;
    let bit_off = spec.bit_offset;
    let mut bit_sz = u64::from(m.bitfield_size(t.kind_flag));
    let bitfield = bit_sz > 0;
    let (byte_off, byte_sz);
    if bitfield {
        let mut sz = match mt.kind {
            BtfKind::Int { size, .. }
            | BtfKind::Enum { size, .. }
            | BtfKind::Enum64 { size, .. } => u64::from(size),
            _ => {
                return Err(CalcError::Fail(CoreError::Unsupported {
                    what: "bitfield of a non-integer type",
                }))
            }
        };
        if sz == 0 {
            return Err(CalcError::Fail(CoreError::Unsupported {
                what: "bitfield of a zero-sized type",
            }));
        }
        let mut off = bit_off / 8 / sz * sz;
        while bit_off + bit_sz - off * 8 > sz * 8 {
            if sz >= 8 {
                return Err(CalcError::Fail(CoreError::Unsupported {
                    what: "bitfield cannot be read with a 64-bit load",
                }));
            }
            sz *= 2;
            off = bit_off / 8 / sz * sz;
        }
        byte_off = off;
        byte_sz = sz;
    } else {
        byte_sz = type_size(btf, field_type_id)?;
        byte_off = bit_off / 8;
        bit_sz = byte_sz * 8;
    }
    out.validate = !bitfield;
    match kind {
        CoreReloKind::FieldByteOffset => {
            out.val = byte_off;
            if !bitfield {
                out.sz = u32::try_from(byte_sz).map_err(|_| CoreError::Unsupported {
                    what: "field too large",
                })?;
                out.type_id = field_type_id;
            }
        }
        CoreReloKind::FieldByteSize => out.val = byte_sz,
        CoreReloKind::FieldSigned => {
            out.val = u64::from(
                (is_any_enum(mt) && mt.kind_flag)
                    || matches!(mt.kind, BtfKind::Int { encoding, .. } if encoding & 1 != 0),
            );
            out.validate = true;
        }
        CoreReloKind::FieldLShiftU64 => {
            out.val = 64u64.wrapping_sub(bit_off + bit_sz - byte_off * 8);
        }
        CoreReloKind::FieldRShiftU64 => {
            out.val = 64u64.wrapping_sub(bit_sz);
            out.validate = true;
        }
        _ => {
            return Err(CalcError::Fail(CoreError::Unsupported {
                what: "unsupported field relocation",
            }))
        }
    }
    Ok(out)
}

/// libbpf's `bpf_core_calc_type_relo`.
fn calc_type(kind: CoreReloKind, spec: Option<&Spec>) -> Result<(u64, bool), CalcError> {
    let Some(spec) = spec else {
        return Ok((0, true));
    };
    Ok(match kind {
        CoreReloKind::TypeIdTarget => (u64::from(spec.root_type_id), false),
        CoreReloKind::TypeExists | CoreReloKind::TypeMatches => (1, true),
        CoreReloKind::TypeSize => (type_size(spec.btf, spec.root_type_id)?, true),
        _ => {
            return Err(CalcError::Fail(CoreError::Unsupported {
                what: "unsupported type relocation",
            }))
        }
    })
}

/// libbpf's `bpf_core_calc_enumval_relo`.
fn calc_enumval(kind: CoreReloKind, spec: Option<&Spec>) -> Result<u64, CalcError> {
    match kind {
        CoreReloKind::EnumvalExists => Ok(u64::from(spec.is_some())),
        CoreReloKind::EnumvalValue => {
            let spec = spec.ok_or(CalcError::Poison)?;
            let acc = spec
                .spec
                .first()
                .ok_or(CoreError::Unsupported { what: "empty spec" })?;
            let t = ty(spec.btf, acc.type_id)?;
            enumerator(t, acc.idx as usize)
                .map(|(_, v)| v)
                .ok_or(CalcError::Fail(CoreError::Unsupported {
                    what: "enumerator out of range",
                }))
        }
        _ => Err(CalcError::Fail(CoreError::Unsupported {
            what: "unsupported enum relocation",
        })),
    }
}

/// libbpf's `bpf_core_calc_relo`: the local and target values of one relocation.
fn calc(kind: CoreReloKind, local: &Spec, targ: Option<&Spec>) -> R<CoreResolution> {
    let mut res = CoreResolution {
        validate: true,
        target_type_id: targ.map_or(0, |t| t.root_type_id),
        ..CoreResolution::default()
    };
    let r: Result<(), CalcError> = (|| {
        if kind.is_field_based() {
            let l = calc_field(kind, Some(local))?;
            res.orig_val = l.val;
            res.orig_sz = l.sz;
            res.validate = l.validate;
            let t = calc_field(kind, targ)?;
            res.new_val = t.val;
            res.new_sz = t.sz;
            if res.orig_sz != res.new_sz {
                let Some(targ) = targ else {
                    return Ok(());
                };
                let ot = ty(local.btf, l.type_id)?;
                let nt = ty(targ.btf, t.type_id)?;
                let both_ptr = matches!(ot.kind, BtfKind::Ptr { .. })
                    && matches!(nt.kind, BtfKind::Ptr { .. });
                let both_unsigned = matches!(ot.kind, BtfKind::Int { encoding, .. } if encoding & 1 == 0)
                    && matches!(nt.kind, BtfKind::Int { encoding, .. } if encoding & 1 == 0);
                res.fail_memsz_adjust = !(both_ptr || both_unsigned);
            }
        } else if kind.is_type_based() {
            let (v, validate) = calc_type(kind, Some(local))?;
            res.orig_val = v;
            res.validate = validate;
            res.new_val = calc_type(kind, targ)?.0;
        } else if kind.is_enumval_based() {
            res.orig_val = calc_enumval(kind, Some(local))?;
            res.new_val = calc_enumval(kind, targ)?;
        }
        Ok(())
    })();
    match r {
        Ok(()) => Ok(res),
        Err(CalcError::Poison) => {
            res.poison = true;
            Ok(res)
        }
        Err(CalcError::Fail(e)) => Err(e),
    }
}

/// libbpf's candidate search (`bpf_core_find_cands` on one target BTF): types
/// of a compatible kind whose names agree once `___flavor` suffixes are dropped.
pub fn find_candidates(local: &Btf, local_id: u32, target: &Btf) -> Result<Vec<u32>, CoreError> {
    let lt = ty(local, local_id)?;
    let lname = name(local, lt.name_off);
    if lname.is_empty() {
        return Err(CoreError::AnonymousCandidate {
            type_name: describe_type(local, local_id),
        });
    }
    let lessent = essential_name(lname);
    Ok(target
        .ids_by_essential_name(lessent)
        .iter()
        .copied()
        .filter(|&id| {
            target.type_by_id(id).is_ok_and(|t| {
                kinds_compat(t, lt) && essential_name(name(target, t.name_off)) == lessent
            })
        })
        .collect())
}

/// A relocation record, as `.BTF.ext` gives it.
#[derive(Debug, Clone, Copy)]
pub struct CoreReloRef<'a> {
    pub type_id: u32,
    pub access: &'a str,
    pub kind: CoreReloKind,
}

/// Resolves one relocation (libbpf's `bpf_core_calc_relo_insn`). `target` may
/// be `None` only for `TYPE_ID_LOCAL`. Returns the resolution and a
/// description of the local spec for messages.
pub fn calc_relo(
    local: &Btf,
    relo: CoreReloRef,
    target: Option<&Btf>,
    cache: &mut CandidateCache,
) -> Result<(CoreResolution, String), CoreError> {
    let lt = ty(local, relo.type_id)?;
    let lname = name(local, lt.name_off);
    let lspec = parse_spec(local, relo.type_id, relo.access, relo.kind)?;
    let desc = describe_spec(&lspec, relo.kind, relo.access);
    if relo.kind == CoreReloKind::TypeIdLocal {
        let id = u64::from(lspec.root_type_id);
        let res = CoreResolution {
            orig_val: id,
            new_val: id,
            validate: false,
            ..CoreResolution::default()
        };
        return Ok((res, desc));
    }
    if lname.is_empty() {
        return Err(CoreError::AnonymousType { spec: desc });
    }
    let target = target.ok_or(CoreError::NoTarget)?;
    let cands = match cache.entry(relo.type_id) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(find_candidates(local, relo.type_id, target)?)
        }
    };
    let mut kept: Vec<u32> = Vec::new();
    let mut chosen: Option<(CoreResolution, u64)> = None;
    for &cand in cands.iter() {
        let Some(cspec) = spec_match(&lspec, relo.kind, target, cand)? else {
            continue;
        };
        let cres = calc(relo.kind, &lspec, Some(&cspec))?;
        match &chosen {
            None => chosen = Some((cres, cspec.bit_offset)),
            Some((tres, tbits)) => {
                if cspec.bit_offset != *tbits {
                    return Err(CoreError::OffsetAmbiguity {
                        spec: desc,
                        first: tbits / 8,
                        second: cspec.bit_offset / 8,
                        first_type: describe_type(target, tres.target_type_id),
                        second_type: describe_type(target, cand),
                    });
                }
                if cres.poison != tres.poison || cres.new_val != tres.new_val {
                    let decision = |r: &CoreResolution| {
                        let what = if r.poison { "failure" } else { "success" };
                        format!("{what} {}", r.new_val)
                    };
                    return Err(CoreError::DecisionAmbiguity {
                        spec: desc,
                        first: decision(tres),
                        second: decision(&cres),
                        first_type: describe_type(target, tres.target_type_id),
                        second_type: describe_type(target, cand),
                    });
                }
            }
        }
        kept.push(cand);
    }
    if !kept.is_empty() {
        *cands = kept;
    }
    let res = match chosen {
        Some((res, _)) => res,
        None => calc(relo.kind, &lspec, None)?,
    };
    Ok((res, desc))
}

fn size_bytes(code: u8) -> u32 {
    match code & 0x18 {
        0x00 => 4,
        0x08 => 2,
        0x10 => 1,
        _ => 8,
    }
}

fn size_code(bytes: u32) -> Option<u8> {
    match bytes {
        1 => Some(0x10),
        2 => Some(0x08),
        4 => Some(0x00),
        8 => Some(0x18),
        _ => None,
    }
}

fn poison(insn: &mut RawInsn) {
    *insn = RawInsn {
        code: isa::opcode::CALL,
        dst: 0,
        src: 0,
        off: 0,
        imm: POISON_HELPER_ID,
    };
}

/// libbpf's `bpf_core_patch_insn`: applies `res` to the instruction at `at`.
/// Returns true when the instruction was poisoned.
pub fn patch_insn(
    insns: &mut [RawInsn],
    at: usize,
    res: &CoreResolution,
) -> Result<bool, CoreError> {
    let insn = *insns.get(at).ok_or(CoreError::NoInstruction { at })?;
    let is_lddw = insn.code == isa::opcode::LDDW;
    let do_poison = |insns: &mut [RawInsn]| {
        if is_lddw {
            if let Some(next) = insns.get_mut(at + 1) {
                poison(next);
            }
        }
        poison(&mut insns[at]);
        Ok(true)
    };
    if res.poison {
        return do_poison(insns);
    }
    let (orig, new) = (res.orig_val, res.new_val);
    match insn.code & 0x07 {
        // BPF_ALU, BPF_ALU64
        0x04 | 0x07 => {
            if insn.code & 0x08 != 0 {
                return Err(CoreError::RegisterSource { at });
            }
            if res.validate && insn.imm as i64 as u64 != orig {
                return Err(CoreError::UnexpectedValue {
                    at,
                    class: "ALU/ALU64",
                    got: u64::from(insn.imm as u32),
                    expected: orig,
                    new,
                });
            }
            insns[at].imm = new as i32;
        }
        // BPF_LDX, BPF_ST, BPF_STX
        0x01..=0x03 => {
            if res.validate && insn.off as i64 as u64 != orig {
                return Err(CoreError::UnexpectedValue {
                    at,
                    class: "LDX/ST/STX",
                    got: u64::from(insn.off as u16),
                    expected: orig,
                    new,
                });
            }
            if new > i16::MAX as u64 {
                return Err(CoreError::OffsetTooBig { at, new });
            }
            if res.fail_memsz_adjust {
                // The field changed size and is neither a pointer nor an
                // unsigned integer: libbpf poisons the access.
                return do_poison(insns);
            }
            insns[at].off = new as i16;
            if res.new_sz != res.orig_sz {
                let have = size_bytes(insn.code);
                if have != res.orig_sz {
                    return Err(CoreError::MemSize {
                        at,
                        got: have,
                        expected: res.orig_sz,
                    });
                }
                let sz = size_code(res.new_sz).ok_or(CoreError::NewMemSize {
                    at,
                    size: res.new_sz,
                })?;
                insns[at].code = (insn.code & 0xe7) | sz;
            }
        }
        // BPF_LD
        0x00 => {
            let next = insns.get(at + 1).copied();
            let ok = is_lddw
                && insn.src == 0
                && insn.off == 0
                && next.is_some_and(|n| n.code == 0 && n.dst == 0 && n.src == 0 && n.off == 0);
            let Some(next) = next.filter(|_| ok) else {
                return Err(CoreError::LdImm64Form { at });
            };
            let imm = u64::from(insn.imm as u32) | (u64::from(next.imm as u32) << 32);
            if res.validate && imm != orig {
                return Err(CoreError::UnexpectedValue {
                    at,
                    class: "LDIMM64",
                    got: imm,
                    expected: orig,
                    new,
                });
            }
            insns[at].imm = new as u32 as i32;
            insns[at + 1].imm = (new >> 32) as u32 as i32;
        }
        _ => {
            return Err(CoreError::UnknownInstruction {
                at,
                code: insn.code,
            })
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::tests::blob;
    use crate::btf::*;
    use isa::opcode::{CALL, LDDW};

    /// A hand-built BTF: types get ids in the order they are added.
    struct B {
        words: Vec<u32>,
        strs: Vec<u8>,
        next: u32,
    }

    fn info(kind: u32, vlen: usize, kflag: bool) -> u32 {
        (kind << 24) | vlen as u32 | if kflag { 1 << 31 } else { 0 }
    }

    impl B {
        fn new() -> B {
            B {
                words: Vec::new(),
                strs: vec![0],
                next: 1,
            }
        }
        fn s(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let off = self.strs.len() as u32;
            self.strs.extend_from_slice(name.as_bytes());
            self.strs.push(0);
            off
        }
        fn push(&mut self, w: &[u32]) -> u32 {
            self.words.extend_from_slice(w);
            self.next += 1;
            self.next - 1
        }
        fn int(&mut self, name: &str, size: u32, signed: bool) -> u32 {
            let n = self.s(name);
            let enc = if signed { 1 << 24 } else { 0 };
            self.push(&[n, info(BTF_KIND_INT, 0, false), size, enc | (size * 8)])
        }
        fn ptr(&mut self, to: u32) -> u32 {
            self.push(&[0, info(BTF_KIND_PTR, 0, false), to])
        }
        fn typedef(&mut self, name: &str, to: u32) -> u32 {
            let n = self.s(name);
            self.push(&[n, info(BTF_KIND_TYPEDEF, 0, false), to])
        }
        fn array(&mut self, elem: u32, nelems: u32, index: u32) -> u32 {
            self.push(&[0, info(BTF_KIND_ARRAY, 0, false), 0, elem, index, nelems])
        }
        /// Members: (name, type, bit offset, bitfield size).
        fn composite(
            &mut self,
            kind: u32,
            name: &str,
            size: u32,
            m: &[(&str, u32, u32, u32)],
        ) -> u32 {
            let n = self.s(name);
            let kflag = m.iter().any(|x| x.3 != 0);
            let mut w = vec![n, info(kind, m.len(), kflag), size];
            for &(mn, t, off, bits) in m {
                let mn = self.s(mn);
                w.extend_from_slice(&[mn, t, if kflag { (bits << 24) | off } else { off }]);
            }
            self.push(&w)
        }
        fn strukt(&mut self, name: &str, size: u32, m: &[(&str, u32, u32, u32)]) -> u32 {
            self.composite(BTF_KIND_STRUCT, name, size, m)
        }
        fn union(&mut self, name: &str, size: u32, m: &[(&str, u32, u32, u32)]) -> u32 {
            self.composite(BTF_KIND_UNION, name, size, m)
        }
        fn enum32(&mut self, name: &str, signed: bool, vals: &[(&str, i32)]) -> u32 {
            let n = self.s(name);
            let mut w = vec![n, info(BTF_KIND_ENUM, vals.len(), signed), 4];
            for &(vn, v) in vals {
                let vn = self.s(vn);
                w.extend_from_slice(&[vn, v as u32]);
            }
            self.push(&w)
        }
        fn enum64(&mut self, name: &str, vals: &[(&str, u64)]) -> u32 {
            let n = self.s(name);
            let mut w = vec![n, info(BTF_KIND_ENUM64, vals.len(), false), 8];
            for &(vn, v) in vals {
                let vn = self.s(vn);
                w.extend_from_slice(&[vn, v as u32, (v >> 32) as u32]);
            }
            self.push(&w)
        }
        fn build(&self) -> Btf {
            Btf::parse(&blob(&self.words, &self.strs)).unwrap()
        }
    }

    fn relo(type_id: u32, access: &str, kind: CoreReloKind) -> CoreReloRef<'_> {
        CoreReloRef {
            type_id,
            access,
            kind,
        }
    }

    fn calc1(local: &Btf, r: CoreReloRef, target: &Btf) -> Result<CoreResolution, CoreError> {
        calc_relo(local, r, Some(target), &mut CandidateCache::new()).map(|(res, _)| res)
    }

    fn ldx_w(off: i16) -> RawInsn {
        RawInsn {
            code: 0x61,
            dst: 1,
            src: 2,
            off,
            imm: 0,
        }
    }

    fn mov_imm(imm: i32) -> RawInsn {
        RawInsn {
            code: 0xb7,
            dst: 1,
            src: 0,
            off: 0,
            imm,
        }
    }

    fn lddw(v: u64) -> [RawInsn; 2] {
        [
            RawInsn {
                code: LDDW,
                dst: 1,
                src: 0,
                off: 0,
                imm: v as u32 as i32,
            },
            RawInsn {
                code: 0,
                dst: 0,
                src: 0,
                off: 0,
                imm: (v >> 32) as u32 as i32,
            },
        ]
    }

    fn is_poison(i: RawInsn) -> bool {
        i.code == CALL && i.imm == 0x0bad_2310 && i.src == 0 && i.dst == 0 && i.off == 0
    }

    #[test]
    fn essential_names() {
        assert_eq!(essential_name_len("foo___bar"), 3);
        assert_eq!(essential_name_len("foo"), 3);
        assert_eq!(essential_name_len("foo____bar"), 10);
        assert_eq!(essential_name_len("a___b___c"), 5);
        assert_eq!(essential_name_len("___x"), 4);
        assert_eq!(essential_name_len("x___"), 4);
        assert_eq!(essential_name_len("x___y"), 1);
        assert_eq!(essential_name_len(""), 0);
        assert_eq!(essential_name("task_struct___v59"), b"task_struct");
    }

    /// Local `struct s___v1 { int b; unsigned char a; }` against target
    /// `struct s { unsigned char a; int pad; int b; }`.
    fn reordered() -> (Btf, u32, Btf) {
        let mut l = B::new();
        let int = l.int("int", 4, true);
        let uc = l.int("unsigned char", 1, false);
        let s = l.strukt("s___v1", 8, &[("b", int, 0, 0), ("a", uc, 32, 0)]);
        let mut t = B::new();
        let uc2 = t.int("unsigned char", 1, false);
        let int2 = t.int("int", 4, true);
        t.strukt(
            "s",
            12,
            &[("a", uc2, 0, 0), ("pad", int2, 32, 0), ("b", int2, 64, 0)],
        );
        (l.build(), s, t.build())
    }

    #[test]
    fn field_byte_offset_follows_the_target_layout() {
        let (l, s, t) = reordered();
        let res = calc1(&l, relo(s, "0:0", CoreReloKind::FieldByteOffset), &t).unwrap();
        assert_eq!((res.orig_val, res.new_val, res.poison), (0, 8, false));
        let mut insns = [ldx_w(0)];
        assert!(!patch_insn(&mut insns, 0, &res).unwrap());
        assert_eq!(insns[0], ldx_w(8));
        let res = calc1(&l, relo(s, "0:1", CoreReloKind::FieldByteOffset), &t).unwrap();
        assert_eq!((res.orig_val, res.new_val), (4, 0));
        // An ALU add of the offset (as BPF_CORE_READ computes addresses).
        let mut insns = [mov_imm(4)];
        patch_insn(&mut insns, 0, &res).unwrap();
        assert_eq!(insns[0].imm, 0);
        // Sizes and signedness.
        let res = calc1(&l, relo(s, "0:1", CoreReloKind::FieldByteSize), &t).unwrap();
        assert_eq!((res.orig_val, res.new_val), (1, 1));
        let res = calc1(&l, relo(s, "0:0", CoreReloKind::FieldSigned), &t).unwrap();
        assert_eq!((res.orig_val, res.new_val), (1, 1));
        let res = calc1(&l, relo(s, "0:1", CoreReloKind::FieldSigned), &t).unwrap();
        assert_eq!(res.new_val, 0);
        // The second element of an array of s: offset 12 + 8.
        let res = calc1(&l, relo(s, "1:0", CoreReloKind::FieldByteOffset), &t).unwrap();
        assert_eq!((res.orig_val, res.new_val), (8, 20));
    }

    #[test]
    fn a_validated_instruction_must_hold_the_local_value() {
        let (l, s, t) = reordered();
        let res = calc1(&l, relo(s, "0:0", CoreReloKind::FieldByteOffset), &t).unwrap();
        let mut insns = [ldx_w(4)];
        let err = patch_insn(&mut insns, 0, &res).unwrap_err();
        assert_eq!(
            err,
            CoreError::UnexpectedValue {
                at: 0,
                class: "LDX/ST/STX",
                got: 4,
                expected: 0,
                new: 8
            }
        );
        assert_eq!(
            err.to_string(),
            "unexpected insn #0 (LDX/ST/STX) value: got 4, exp 0 -> 8"
        );
        let mut insns = [mov_imm(3)];
        assert!(matches!(
            patch_insn(&mut insns, 0, &res),
            Err(CoreError::UnexpectedValue {
                class: "ALU/ALU64",
                ..
            })
        ));
        let mut alu_x = [RawInsn {
            code: 0x0f,
            dst: 1,
            src: 2,
            off: 0,
            imm: 0,
        }];
        assert!(patch_insn(&mut alu_x, 0, &res).is_err());
        let mut jmp = [RawInsn {
            code: 0x05,
            dst: 0,
            src: 0,
            off: 0,
            imm: 0,
        }];
        assert!(matches!(
            patch_insn(&mut jmp, 0, &res),
            Err(CoreError::UnknownInstruction { at: 0, .. })
        ));
        let mut ld_abs = [RawInsn {
            code: 0x20,
            dst: 0,
            src: 0,
            off: 0,
            imm: 0,
        }];
        assert_eq!(
            patch_insn(&mut ld_abs, 0, &res),
            Err(CoreError::LdImm64Form { at: 0 })
        );
        assert_eq!(
            patch_insn(&mut [], 0, &res),
            Err(CoreError::NoInstruction { at: 0 })
        );
        let big = CoreResolution {
            new_val: 40000,
            validate: false,
            ..res
        };
        assert_eq!(
            patch_insn(&mut [ldx_w(0)], 0, &big),
            Err(CoreError::OffsetTooBig { at: 0, new: 40000 })
        );
    }

    #[test]
    fn load_size_shrinks_only_for_unsigned_and_pointers() {
        // local { unsigned int x; int y; }  target { unsigned short x; short y; }
        let mut l = B::new();
        let u32t = l.int("unsigned int", 4, false);
        let i32t = l.int("int", 4, true);
        let s = l.strukt("w", 8, &[("x", u32t, 0, 0), ("y", i32t, 32, 0)]);
        let l = l.build();
        let mut t = B::new();
        let u16t = t.int("unsigned short", 2, false);
        let i16t = t.int("short", 2, true);
        t.strukt("w", 4, &[("y", i16t, 0, 0), ("x", u16t, 16, 0)]);
        let t = t.build();
        let res = calc1(&l, relo(s, "0:0", CoreReloKind::FieldByteOffset), &t).unwrap();
        assert_eq!(
            (res.orig_sz, res.new_sz, res.fail_memsz_adjust),
            (4, 2, false)
        );
        let mut insns = [ldx_w(0)];
        patch_insn(&mut insns, 0, &res).unwrap();
        assert_eq!(
            insns[0],
            RawInsn {
                code: 0x69,
                dst: 1,
                src: 2,
                off: 2,
                imm: 0
            }
        ); // ldxh
           // A store keeps its class and mode.
        let mut st = [RawInsn {
            code: 0x63,
            dst: 1,
            src: 2,
            off: 0,
            imm: 0,
        }];
        patch_insn(&mut st, 0, &res).unwrap();
        assert_eq!(st[0].code, 0x6b); // stxh
                                      // The insn's own size must be the local field's size.
        let mut wrong = [ldx_w(0)];
        wrong[0].code = 0x79; // ldxdw
        assert!(matches!(
            patch_insn(&mut wrong, 0, &res),
            Err(CoreError::MemSize { at: 0, got: 8, .. })
        ));
        // Signed: poisoned.
        let res = calc1(&l, relo(s, "0:1", CoreReloKind::FieldByteOffset), &t).unwrap();
        assert!(res.fail_memsz_adjust && !res.poison);
        let mut insns = [RawInsn {
            code: 0x61,
            dst: 1,
            src: 2,
            off: 4,
            imm: 0,
        }];
        assert!(patch_insn(&mut insns, 0, &res).unwrap());
        assert!(is_poison(insns[0]));
    }

    #[test]
    fn missing_fields_exist_as_zero_and_poison_accesses() {
        let mut l = B::new();
        let int = l.int("int", 4, true);
        let s = l.strukt("m___new", 8, &[("old", int, 0, 0), ("gone", int, 32, 0)]);
        let l = l.build();
        let mut t = B::new();
        let int2 = t.int("int", 4, true);
        t.strukt("m", 4, &[("old", int2, 0, 0)]);
        let t = t.build();
        let ex = calc1(&l, relo(s, "0:1", CoreReloKind::FieldExists), &t).unwrap();
        assert_eq!((ex.orig_val, ex.new_val, ex.poison), (1, 0, false));
        let mut insns = [mov_imm(1)];
        patch_insn(&mut insns, 0, &ex).unwrap();
        assert_eq!(insns[0], mov_imm(0));
        let ex = calc1(&l, relo(s, "0:0", CoreReloKind::FieldExists), &t).unwrap();
        assert_eq!(ex.new_val, 1);
        for kind in [
            CoreReloKind::FieldByteOffset,
            CoreReloKind::FieldByteSize,
            CoreReloKind::FieldSigned,
            CoreReloKind::FieldLShiftU64,
            CoreReloKind::FieldRShiftU64,
        ] {
            let res = calc1(&l, relo(s, "0:1", kind), &t).unwrap();
            assert!(res.poison, "{kind:?}");
        }
        let res = calc1(&l, relo(s, "0:1", CoreReloKind::FieldByteOffset), &t).unwrap();
        let mut insns = lddw(4);
        assert!(patch_insn(&mut insns, 0, &res).unwrap());
        assert!(
            is_poison(insns[0]) && is_poison(insns[1]),
            "both lddw slots"
        );
        // No candidate at all (a type the target lacks) is the same.
        let empty = B::new().build();
        let res = calc1(&l, relo(s, "0:0", CoreReloKind::FieldByteOffset), &empty).unwrap();
        assert!(res.poison);
        let res = calc1(&l, relo(s, "0:0", CoreReloKind::FieldExists), &empty).unwrap();
        assert_eq!(res.new_val, 0);
    }

    #[test]
    fn incompatible_field_types_do_not_match() {
        // local field is an int, target field a struct: not compatible.
        let mut l = B::new();
        let int = l.int("int", 4, true);
        let s = l.strukt("c", 4, &[("f", int, 0, 0)]);
        let l = l.build();
        let mut t = B::new();
        let int2 = t.int("int", 4, true);
        let inner = t.strukt("inner", 4, &[("z", int2, 0, 0)]);
        t.strukt("c", 4, &[("f", inner, 0, 0)]);
        let t = t.build();
        let res = calc1(&l, relo(s, "0:0", CoreReloKind::FieldExists), &t).unwrap();
        assert_eq!(res.new_val, 0);
    }

    #[test]
    fn anonymous_members_are_searched() {
        // target: struct t { int a; union { int b; struct { int c; int d; }; }; }
        let mut t = B::new();
        let int = t.int("int", 4, true);
        let inner = t.strukt("", 8, &[("c", int, 0, 0), ("d", int, 32, 0)]);
        let un = t.union("", 8, &[("b", int, 0, 0), ("", inner, 0, 0)]);
        t.strukt("t", 12, &[("a", int, 0, 0), ("", un, 32, 0)]);
        let t = t.build();
        let mut l = B::new();
        let int = l.int("int", 4, true);
        let s = l.strukt("t", 8, &[("d", int, 0, 0), ("a", int, 32, 0)]);
        let l = l.build();
        let res = calc1(&l, relo(s, "0:0", CoreReloKind::FieldByteOffset), &t).unwrap();
        assert_eq!((res.orig_val, res.new_val), (0, 8));
        let res = calc1(&l, relo(s, "0:1", CoreReloKind::FieldByteOffset), &t).unwrap();
        assert_eq!((res.orig_val, res.new_val), (4, 0));
    }

    #[test]
    fn array_elements_and_flexible_arrays() {
        // local: struct arr { int n; int x[4]; }   target: { long pad; int n; int x[8]; }
        let mut l = B::new();
        let int = l.int("int", 4, true);
        let a4 = l.array(int, 4, int);
        let a0 = l.array(int, 0, int);
        let s = l.strukt(
            "arr",
            20,
            &[("n", int, 0, 0), ("x", a4, 32, 0), ("flex", a0, 160, 0)],
        );
        let l = l.build();
        let mut t = B::new();
        let int2 = t.int("int", 4, true);
        let long = t.int("long", 8, true);
        let a8 = t.array(int2, 8, int2);
        let t0 = t.array(int2, 0, int2);
        t.strukt(
            "arr",
            48,
            &[
                ("pad", long, 0, 0),
                ("n", int2, 64, 0),
                ("x", a8, 96, 0),
                ("flex", t0, 352, 0),
            ],
        );
        let t = t.build();
        let res = calc1(&l, relo(s, "0:1:2", CoreReloKind::FieldByteOffset), &t).unwrap();
        assert_eq!((res.orig_val, res.new_val, res.new_sz), (12, 20, 4));
        let res = calc1(&l, relo(s, "0:1:2", CoreReloKind::FieldByteSize), &t).unwrap();
        assert_eq!(res.new_val, 4);
        // Index 3 is valid locally; on a target with 8 elements too.
        assert_eq!(
            calc1(&l, relo(s, "0:1:3", CoreReloKind::FieldByteOffset), &t)
                .unwrap()
                .new_val,
            24
        );
        // Past the local array: a bad spec.
        assert!(calc1(&l, relo(s, "0:1:4", CoreReloKind::FieldByteOffset), &t).is_err());
        // A flexible array (last member, 0 elements) takes any index.
        let res = calc1(&l, relo(s, "0:2:5", CoreReloKind::FieldByteOffset), &t).unwrap();
        assert_eq!((res.orig_val, res.new_val), (40, 64));
        // Only offset and size apply to an array element.
        assert!(calc1(&l, relo(s, "0:1:2", CoreReloKind::FieldSigned), &t).is_err());
    }

    #[test]
    fn bitfields_give_libbpf_shifts() {
        // struct bf { unsigned int a:3, b:5; int s:4; } in both, and a target
        // where b straddles a 4-byte boundary (bits 30..35).
        let mut l = B::new();
        let u = l.int("unsigned int", 4, false);
        let i = l.int("int", 4, true);
        let s = l.strukt("bf", 4, &[("a", u, 0, 3), ("b", u, 3, 5), ("s", i, 8, 4)]);
        let l = l.build();
        let same = {
            let mut t = B::new();
            let u = t.int("unsigned int", 4, false);
            let i = t.int("int", 4, true);
            t.strukt("bf", 4, &[("a", u, 0, 3), ("b", u, 3, 5), ("s", i, 8, 4)]);
            t.build()
        };
        let v = |k, acc: &str, t: &Btf| calc1(&l, relo(s, acc, k), t).unwrap().new_val;
        use CoreReloKind::*;
        assert_eq!(v(FieldByteOffset, "0:1", &same), 0);
        assert_eq!(v(FieldByteSize, "0:1", &same), 4);
        assert_eq!(v(FieldLShiftU64, "0:1", &same), 64 - 8);
        assert_eq!(v(FieldRShiftU64, "0:1", &same), 64 - 5);
        assert_eq!(v(FieldSigned, "0:1", &same), 0);
        assert_eq!(v(FieldSigned, "0:2", &same), 1);
        assert_eq!(v(FieldLShiftU64, "0:2", &same), 64 - 12);
        let straddle = {
            let mut t = B::new();
            let u = t.int("unsigned int", 4, false);
            t.strukt("bf", 8, &[("a", u, 0, 3), ("b", u, 30, 5)]);
            t.build()
        };
        assert_eq!(v(FieldByteOffset, "0:1", &straddle), 0);
        assert_eq!(v(FieldByteSize, "0:1", &straddle), 8);
        assert_eq!(v(FieldLShiftU64, "0:1", &straddle), 64 - 35);
        assert_eq!(v(FieldRShiftU64, "0:1", &straddle), 59);
        // Bitfield values are not validated (the compiler may disagree).
        let res = calc1(&l, relo(s, "0:1", FieldByteSize), &straddle).unwrap();
        assert!(!res.validate);
        let mut insns = [mov_imm(1)];
        patch_insn(&mut insns, 0, &res).unwrap();
        assert_eq!(insns[0].imm, 8);
        // A bitfield that no 8-byte load can hold.
        let wide = {
            let mut t = B::new();
            let u = t.int("unsigned long", 8, false);
            t.strukt("bf", 16, &[("a", u, 0, 3), ("b", u, 62, 5)]);
            t.build()
        };
        assert!(calc1(&l, relo(s, "0:1", FieldByteOffset), &wide).is_err());
    }

    #[test]
    fn enum_signedness() {
        let mut l = B::new();
        let e = l.enum32("e", true, &[("A", -1)]);
        let s = l.strukt("hold", 4, &[("v", e, 0, 0)]);
        let l = l.build();
        let mut t = B::new();
        let e2 = t.enum32("e", false, &[("A", 1)]);
        t.strukt("hold", 4, &[("v", e2, 0, 0)]);
        let t = t.build();
        let res = calc1(&l, relo(s, "0:0", CoreReloKind::FieldSigned), &t).unwrap();
        assert_eq!((res.orig_val, res.new_val), (1, 0));
    }

    #[test]
    fn type_relocations() {
        let mut l = B::new();
        let int = l.int("int", 4, true);
        let s = l.strukt("ty", 4, &[("x", int, 0, 0)]);
        let missing = l.strukt("nope", 4, &[("x", int, 0, 0)]);
        let td = l.typedef("ty_t", int);
        let un = l.union("u", 4, &[("x", int, 0, 0)]);
        let anon = l.strukt("", 4, &[("x", int, 0, 0)]);
        let l = l.build();
        let mut t = B::new();
        let int2 = t.int("int", 4, true);
        let p = t.ptr(int2);
        t.strukt("other", 4, &[]);
        let ts = t.strukt("ty___v2", 16, &[("x", int2, 0, 0)]);
        t.typedef("ty_t", p); // same name, incompatible target
        t.strukt("u", 4, &[]); // a struct named like the local union
        let t = t.build();
        use CoreReloKind::*;
        let v = |id, k| calc1(&l, relo(id, "0", k), &t).unwrap();
        assert_eq!(v(s, TypeExists).new_val, 1);
        assert_eq!(v(s, TypeSize).new_val, 16);
        assert_eq!(v(s, TypeIdTarget).new_val, u64::from(ts));
        assert!(!v(s, TypeIdTarget).validate);
        assert_eq!(v(missing, TypeExists).new_val, 0);
        assert_eq!(v(missing, TypeSize).new_val, 0);
        assert_eq!(v(missing, TypeIdTarget).new_val, 0);
        assert_eq!(
            v(td, TypeExists).new_val,
            0,
            "typedef to int vs typedef to ptr"
        );
        assert_eq!(v(un, TypeExists).new_val, 0, "union vs struct");
        // TYPE_ID_LOCAL needs no target.
        let (res, _) = calc_relo(
            &l,
            relo(s, "0", TypeIdLocal),
            None,
            &mut CandidateCache::new(),
        )
        .unwrap();
        assert_eq!(
            (res.orig_val, res.new_val, res.validate),
            (u64::from(s), u64::from(s), false)
        );
        let mut insns = lddw(99);
        patch_insn(&mut insns, 0, &res).unwrap();
        assert_eq!(insns, lddw(u64::from(s)));
        // Type-based access strings must be "0"; anonymous types are refused.
        assert!(calc1(&l, relo(s, "1", TypeExists), &t).is_err());
        assert!(calc1(&l, relo(anon, "0", TypeExists), &t).is_err());
        assert!(calc_relo(
            &l,
            relo(s, "0", TypeExists),
            None,
            &mut CandidateCache::new()
        )
        .is_err());
    }

    #[test]
    fn type_matches() {
        let mut l = B::new();
        let int = l.int("int", 4, true);
        let s = l.strukt("tm", 4, &[("a", int, 0, 0)]);
        let l = l.build();
        let good = {
            let mut t = B::new();
            let int = t.int("int", 4, true);
            t.strukt("tm", 8, &[("b", int, 0, 0), ("a", int, 32, 0)]);
            t.build()
        };
        let unsigned = {
            let mut t = B::new();
            let u = t.int("unsigned int", 4, false);
            t.strukt("tm", 4, &[("a", u, 0, 0)]);
            t.build()
        };
        let v = |t: &Btf| {
            calc1(&l, relo(s, "0", CoreReloKind::TypeMatches), t)
                .unwrap()
                .new_val
        };
        assert_eq!(v(&good), 1);
        assert_eq!(v(&unsigned), 0);
    }

    #[test]
    fn enum_values() {
        let mut l = B::new();
        let e = l.enum32(
            "color___old",
            false,
            &[("RED___old", 0), ("BLUE___old", 1), ("GONE", 7)],
        );
        let l = l.build();
        let mut t = B::new();
        t.enum64("color", &[("BLUE", 1 << 40), ("RED", 5)]);
        let t = t.build();
        use CoreReloKind::*;
        let res = calc1(&l, relo(e, "1", EnumvalValue), &t).unwrap();
        assert_eq!((res.orig_val, res.new_val), (1, 1 << 40));
        let mut insns = lddw(1);
        patch_insn(&mut insns, 0, &res).unwrap();
        assert_eq!(insns, lddw(1 << 40));
        assert_eq!(
            calc1(&l, relo(e, "0", EnumvalValue), &t).unwrap().new_val,
            5
        );
        assert_eq!(
            calc1(&l, relo(e, "2", EnumvalExists), &t).unwrap().new_val,
            0
        );
        assert!(calc1(&l, relo(e, "2", EnumvalValue), &t).unwrap().poison);
        assert_eq!(
            calc1(&l, relo(e, "0", EnumvalExists), &t).unwrap().new_val,
            1
        );
        // Out of range, or more than one index.
        assert!(calc1(&l, relo(e, "3", EnumvalValue), &t).is_err());
        assert!(calc1(&l, relo(e, "0:0", EnumvalValue), &t).is_err());
        // A negative 32-bit value is sign-extended, as libbpf does.
        let mut t = B::new();
        t.enum32("color", true, &[("RED", -2)]);
        let t = t.build();
        assert_eq!(
            calc1(&l, relo(e, "0", EnumvalValue), &t).unwrap().new_val,
            (-2i64) as u64
        );
        // A malformed lddw is refused.
        let mut bad = lddw(0);
        bad[1].code = 0x05;
        let res = calc1(&l, relo(e, "0", EnumvalValue), &t).unwrap();
        assert!(patch_insn(&mut bad, 0, &res).is_err());
    }

    #[test]
    fn ambiguous_candidates_are_errors() {
        let mut l = B::new();
        let int = l.int("int", 4, true);
        let s = l.strukt("amb", 8, &[("x", int, 0, 0), ("y", int, 32, 0)]);
        let l = l.build();
        let mut t = B::new();
        let int = t.int("int", 4, true);
        t.strukt("amb___a", 8, &[("x", int, 0, 0), ("y", int, 32, 0)]);
        t.strukt("amb___b", 8, &[("y", int, 0, 0), ("x", int, 32, 0)]);
        let t = t.build();
        let err = calc1(&l, relo(s, "0:0", CoreReloKind::FieldByteOffset), &t).unwrap_err();
        assert!(matches!(err, CoreError::OffsetAmbiguity { .. }), "{err}");
        // Same offset everywhere: fine.
        let mut t2 = B::new();
        let int = t2.int("int", 4, true);
        t2.strukt("amb___a", 8, &[("x", int, 0, 0)]);
        t2.strukt("amb___b", 8, &[("x", int, 0, 0), ("y", int, 32, 0)]);
        let t2 = t2.build();
        assert_eq!(
            calc1(&l, relo(s, "0:0", CoreReloKind::FieldByteOffset), &t2)
                .unwrap()
                .new_val,
            0
        );
        // Existence that differs between candidates is not ambiguous for the
        // candidates that match; exists=1.
        assert_eq!(
            calc1(&l, relo(s, "0:1", CoreReloKind::FieldExists), &t2)
                .unwrap()
                .new_val,
            1
        );
    }

    #[test]
    fn candidate_lists_shrink_to_the_first_match() {
        // x exists only in amb___a; once a relocation of x picked it, y
        // (at different offsets in the two) resolves against amb___a alone.
        let mut l = B::new();
        let int = l.int("int", 4, true);
        let s = l.strukt("amb", 8, &[("x", int, 0, 0), ("y", int, 32, 0)]);
        let l = l.build();
        let mut t = B::new();
        let int = t.int("int", 4, true);
        let a = t.strukt("amb___a", 8, &[("x", int, 0, 0), ("y", int, 32, 0)]);
        t.strukt("amb___b", 8, &[("y", int, 0, 0)]);
        let t = t.build();
        let mut cache = CandidateCache::new();
        let (r, _) = calc_relo(
            &l,
            relo(s, "0:0", CoreReloKind::FieldByteOffset),
            Some(&t),
            &mut cache,
        )
        .unwrap();
        assert_eq!((r.new_val, r.target_type_id), (0, a));
        assert_eq!(cache[&s], vec![a]);
        let (r, _) = calc_relo(
            &l,
            relo(s, "0:1", CoreReloKind::FieldByteOffset),
            Some(&t),
            &mut cache,
        )
        .unwrap();
        assert_eq!(r.new_val, 4);
        // Without the first relocation, y is ambiguous.
        let err = calc1(&l, relo(s, "0:1", CoreReloKind::FieldByteOffset), &t).unwrap_err();
        assert!(
            matches!(
                err,
                CoreError::OffsetAmbiguity { .. } | CoreError::DecisionAmbiguity { .. }
            ),
            "{err}"
        );
    }

    #[test]
    fn malformed_access_strings_are_errors() {
        let (l, s, t) = reordered();
        for access in [
            "",
            ":0",
            "0:",
            "0::1",
            "0:x",
            "0:-1",
            "0:2",
            "0:0:0",
            "99999999999",
        ] {
            let r = calc1(&l, relo(s, access, CoreReloKind::FieldByteOffset), &t);
            assert!(r.is_err(), "{access:?}: {r:?}");
        }
        let long = vec!["0"; 65].join(":");
        assert!(calc1(&l, relo(s, &long, CoreReloKind::FieldByteOffset), &t).is_err());
        // A relocation on a bad type id.
        assert!(calc1(&l, relo(999, "0", CoreReloKind::TypeExists), &t).is_err());
    }

    #[test]
    fn kinds_round_trip() {
        for k in 0..13 {
            let kind = CoreReloKind::from_u32(k).unwrap();
            assert!(kind.is_field_based() ^ kind.is_type_based() ^ kind.is_enumval_based());
            assert!(!kind.name().is_empty());
        }
        assert_eq!(CoreReloKind::from_u32(13), None);
        assert!(!CoreReloKind::TypeIdLocal.needs_target());
    }

    #[test]
    fn load_store_sizes() {
        assert_eq!(size_bytes(0x69), 2);
        assert_eq!(size_bytes(0x79), 8);
        assert_eq!(size_code(3), None);
    }
}
