//! A reader for the `.BTF` section: header, string table and every type kind
//! the kernel defines (up to `BTF_KIND_ENUM64`), as laid out in the kernel's
//! `include/uapi/linux/btf.h` and `Documentation/bpf/btf.rst`.
//!
//! Type ids start at 1; id 0 is `void`. Only little-endian BTF is accepted
//! (the loader rejects big-endian objects before it gets here).

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::error::BtfError;

/// `btf_header.magic`.
pub const BTF_MAGIC: u16 = 0xeb9f;
/// Maximum length of a typedef/modifier chain followed by [`Btf::resolve`] and
/// [`Btf::type_size`] (libbpf's `MAX_RESOLVE_DEPTH`).
pub const MAX_RESOLVE_DEPTH: usize = 32;

const HEADER_LEN: usize = 24;

// Kind numbers of `btf_type.info` bits 24..28.
pub const BTF_KIND_UNKN: u32 = 0;
pub const BTF_KIND_INT: u32 = 1;
pub const BTF_KIND_PTR: u32 = 2;
pub const BTF_KIND_ARRAY: u32 = 3;
pub const BTF_KIND_STRUCT: u32 = 4;
pub const BTF_KIND_UNION: u32 = 5;
pub const BTF_KIND_ENUM: u32 = 6;
pub const BTF_KIND_FWD: u32 = 7;
pub const BTF_KIND_TYPEDEF: u32 = 8;
pub const BTF_KIND_VOLATILE: u32 = 9;
pub const BTF_KIND_CONST: u32 = 10;
pub const BTF_KIND_RESTRICT: u32 = 11;
pub const BTF_KIND_FUNC: u32 = 12;
pub const BTF_KIND_FUNC_PROTO: u32 = 13;
pub const BTF_KIND_VAR: u32 = 14;
pub const BTF_KIND_DATASEC: u32 = 15;
pub const BTF_KIND_FLOAT: u32 = 16;
pub const BTF_KIND_DECL_TAG: u32 = 17;
pub const BTF_KIND_TYPE_TAG: u32 = 18;
pub const BTF_KIND_ENUM64: u32 = 19;

/// `btf_var.linkage` / `btf_type.vlen` of a FUNC.
pub const BTF_LINKAGE_STATIC: u32 = 0;
pub const BTF_LINKAGE_GLOBAL: u32 = 1;
pub const BTF_LINKAGE_EXTERN: u32 = 2;

/// A parsed `.BTF` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Btf {
    /// Index = type id; index 0 is `void`.
    types: Vec<BtfType>,
    strings: Vec<u8>,
    /// Type ids by name without `___flavor` suffix, built on first use (CO-RE
    /// candidate search in a target BTF such as vmlinux's).
    by_essential_name: NameIndex,
}

/// A lazily built name index. It is derived data: clones start empty and it
/// takes no part in comparisons.
#[derive(Default)]
struct NameIndex(OnceLock<HashMap<u64, Vec<u32>>>);

impl Clone for NameIndex {
    fn clone(&self) -> Self {
        NameIndex::default()
    }
}

impl PartialEq for NameIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for NameIndex {}

impl std::fmt::Debug for NameIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NameIndex")
    }
}

/// One type record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtfType {
    /// Offset of the name in the string table (0: anonymous).
    pub name_off: u32,
    /// `btf_type.info` bit 31: bitfield members (struct/union), union forward
    /// declaration (fwd), signedness (enum/enum64).
    pub kind_flag: bool,
    pub kind: BtfKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BtfKind {
    /// Type id 0.
    Void,
    Int {
        size: u32,
        encoding: u8,
        offset: u8,
        bits: u8,
    },
    Ptr {
        type_id: u32,
    },
    Array {
        elem_type: u32,
        index_type: u32,
        nelems: u32,
    },
    Struct {
        size: u32,
        members: Vec<BtfMember>,
    },
    Union {
        size: u32,
        members: Vec<BtfMember>,
    },
    Enum {
        size: u32,
        values: Vec<BtfEnumValue>,
    },
    Fwd,
    Typedef {
        type_id: u32,
    },
    Volatile {
        type_id: u32,
    },
    Const {
        type_id: u32,
    },
    Restrict {
        type_id: u32,
    },
    /// `linkage` is one of the `BTF_LINKAGE_*` values.
    Func {
        type_id: u32,
        linkage: u32,
    },
    FuncProto {
        return_type: u32,
        params: Vec<BtfParam>,
    },
    Var {
        type_id: u32,
        linkage: u32,
    },
    Datasec {
        size: u32,
        vars: Vec<BtfVarSecinfo>,
    },
    Float {
        size: u32,
    },
    DeclTag {
        type_id: u32,
        component_idx: i32,
    },
    TypeTag {
        type_id: u32,
    },
    Enum64 {
        size: u32,
        values: Vec<BtfEnum64Value>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtfMember {
    pub name_off: u32,
    pub type_id: u32,
    /// Raw `offset` field: the bit offset, or with `kind_flag` set
    /// `bitfield_size << 24 | bit_offset`.
    pub offset: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtfEnumValue {
    pub name_off: u32,
    pub val: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtfEnum64Value {
    pub name_off: u32,
    pub val: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtfParam {
    pub name_off: u32,
    pub type_id: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtfVarSecinfo {
    pub type_id: u32,
    pub offset: u32,
    pub size: u32,
}

impl BtfMember {
    /// Bit offset of the member inside its struct/union.
    pub fn bit_offset(&self, kind_flag: bool) -> u32 {
        if kind_flag {
            self.offset & 0x00ff_ffff
        } else {
            self.offset
        }
    }

    /// Bitfield width in bits, or 0 for a normal member.
    pub fn bitfield_size(&self, kind_flag: bool) -> u32 {
        if kind_flag {
            self.offset >> 24
        } else {
            0
        }
    }
}

impl BtfKind {
    /// The `BTF_KIND_*` number of this kind (0 for void).
    pub fn number(&self) -> u32 {
        match self {
            BtfKind::Void => BTF_KIND_UNKN,
            BtfKind::Int { .. } => BTF_KIND_INT,
            BtfKind::Ptr { .. } => BTF_KIND_PTR,
            BtfKind::Array { .. } => BTF_KIND_ARRAY,
            BtfKind::Struct { .. } => BTF_KIND_STRUCT,
            BtfKind::Union { .. } => BTF_KIND_UNION,
            BtfKind::Enum { .. } => BTF_KIND_ENUM,
            BtfKind::Fwd => BTF_KIND_FWD,
            BtfKind::Typedef { .. } => BTF_KIND_TYPEDEF,
            BtfKind::Volatile { .. } => BTF_KIND_VOLATILE,
            BtfKind::Const { .. } => BTF_KIND_CONST,
            BtfKind::Restrict { .. } => BTF_KIND_RESTRICT,
            BtfKind::Func { .. } => BTF_KIND_FUNC,
            BtfKind::FuncProto { .. } => BTF_KIND_FUNC_PROTO,
            BtfKind::Var { .. } => BTF_KIND_VAR,
            BtfKind::Datasec { .. } => BTF_KIND_DATASEC,
            BtfKind::Float { .. } => BTF_KIND_FLOAT,
            BtfKind::DeclTag { .. } => BTF_KIND_DECL_TAG,
            BtfKind::TypeTag { .. } => BTF_KIND_TYPE_TAG,
            BtfKind::Enum64 { .. } => BTF_KIND_ENUM64,
        }
    }

    /// The type a modifier, typedef, pointer, var, func, decl_tag or type_tag refers to.
    pub fn referenced_type(&self) -> Option<u32> {
        match *self {
            BtfKind::Ptr { type_id }
            | BtfKind::Typedef { type_id }
            | BtfKind::Volatile { type_id }
            | BtfKind::Const { type_id }
            | BtfKind::Restrict { type_id }
            | BtfKind::Func { type_id, .. }
            | BtfKind::Var { type_id, .. }
            | BtfKind::DeclTag { type_id, .. }
            | BtfKind::TypeTag { type_id } => Some(type_id),
            _ => None,
        }
    }
}

/// Little-endian cursor over a byte slice that reports the absolute offset of
/// a short read.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    section: &'static str,
    /// Offset of `data[0]` in the section, for error messages.
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8], section: &'static str, base: usize) -> Self {
        Reader {
            data,
            pos: 0,
            section,
            base,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], BtfError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(BtfError::Truncated {
                section: self.section,
                offset: self.base.saturating_add(self.pos),
                needed: n,
            }),
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, BtfError> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, BtfError> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, BtfError> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Returns `data[off..off+len]` or a [`BtfError::BadHeader`].
pub(crate) fn sub_slice<'a>(
    data: &'a [u8],
    off: usize,
    len: usize,
    section: &'static str,
    reason: &'static str,
) -> Result<&'a [u8], BtfError> {
    off.checked_add(len)
        .and_then(|end| data.get(off..end))
        .ok_or(BtfError::BadHeader { section, reason })
}

/// The part of the header `.BTF` and `.BTF.ext` share (`struct btf_header`,
/// `struct btf_ext_header`): magic, version 1, flags and `hdr_len`, which must be
/// at least `min_len` and inside `data`. Returns `hdr_len`; `r` is left at the first
/// field after it.
pub(crate) fn read_preamble(
    r: &mut Reader<'_>,
    data: &[u8],
    section: &'static str,
    min_len: usize,
) -> Result<usize, BtfError> {
    let magic = r.u16()?;
    if magic != BTF_MAGIC {
        return Err(BtfError::BadMagic { section, magic });
    }
    let version = r.u8()?;
    if version != 1 {
        return Err(BtfError::BadVersion { section, version });
    }
    let _flags = r.u8()?;
    let hdr_len = r.u32()? as usize;
    if hdr_len < min_len || hdr_len > data.len() {
        return Err(BtfError::BadHeader {
            section,
            reason: "hdr_len out of range",
        });
    }
    Ok(hdr_len)
}

impl Btf {
    /// Parses a `.BTF` section.
    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        const SEC: &str = ".BTF";
        let mut r = Reader::new(data, SEC, 0);
        let hdr_len = read_preamble(&mut r, data, SEC, HEADER_LEN)?;
        let type_off = r.u32()? as usize;
        let type_len = r.u32()? as usize;
        let str_off = r.u32()? as usize;
        let str_len = r.u32()? as usize;
        let body = &data[hdr_len..];
        let type_data = sub_slice(body, type_off, type_len, SEC, "type section out of range")?;
        let strings = sub_slice(body, str_off, str_len, SEC, "string section out of range")?;
        if !type_off.is_multiple_of(4) {
            return Err(BtfError::BadHeader {
                section: SEC,
                reason: "type section misaligned",
            });
        }
        if let Some(&last) = strings.last() {
            if last != 0 {
                return Err(BtfError::BadHeader {
                    section: SEC,
                    reason: "string section is not NUL-terminated",
                });
            }
        }

        let mut types = vec![BtfType {
            name_off: 0,
            kind_flag: false,
            kind: BtfKind::Void,
        }];
        let base = hdr_len.saturating_add(type_off);
        let mut r = Reader::new(type_data, SEC, base);
        while r.remaining() > 0 {
            let offset = base + r.pos();
            let type_id = u32::try_from(types.len()).unwrap_or(u32::MAX);
            let name_off = r.u32()?;
            let info = r.u32()?;
            let size_or_type = r.u32()?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let parsed = match kind {
                BTF_KIND_INT => {
                    let v = r.u32()?;
                    BtfKind::Int {
                        size: size_or_type,
                        encoding: ((v >> 24) & 0x0f) as u8,
                        offset: ((v >> 16) & 0xff) as u8,
                        bits: (v & 0xff) as u8,
                    }
                }
                BTF_KIND_PTR => BtfKind::Ptr {
                    type_id: size_or_type,
                },
                BTF_KIND_ARRAY => BtfKind::Array {
                    elem_type: r.u32()?,
                    index_type: r.u32()?,
                    nelems: r.u32()?,
                },
                BTF_KIND_STRUCT | BTF_KIND_UNION => {
                    let raw = r.bytes(vlen * 12)?;
                    let members = raw
                        .chunks_exact(12)
                        .map(|c| BtfMember {
                            name_off: le32(&c[0..4]),
                            type_id: le32(&c[4..8]),
                            offset: le32(&c[8..12]),
                        })
                        .collect();
                    if kind == BTF_KIND_STRUCT {
                        BtfKind::Struct {
                            size: size_or_type,
                            members,
                        }
                    } else {
                        BtfKind::Union {
                            size: size_or_type,
                            members,
                        }
                    }
                }
                BTF_KIND_ENUM => {
                    let raw = r.bytes(vlen * 8)?;
                    let values = raw
                        .chunks_exact(8)
                        .map(|c| BtfEnumValue {
                            name_off: le32(&c[0..4]),
                            val: le32(&c[4..8]) as i32,
                        })
                        .collect();
                    BtfKind::Enum {
                        size: size_or_type,
                        values,
                    }
                }
                BTF_KIND_FWD => BtfKind::Fwd,
                BTF_KIND_TYPEDEF => BtfKind::Typedef {
                    type_id: size_or_type,
                },
                BTF_KIND_VOLATILE => BtfKind::Volatile {
                    type_id: size_or_type,
                },
                BTF_KIND_CONST => BtfKind::Const {
                    type_id: size_or_type,
                },
                BTF_KIND_RESTRICT => BtfKind::Restrict {
                    type_id: size_or_type,
                },
                BTF_KIND_FUNC => BtfKind::Func {
                    type_id: size_or_type,
                    linkage: vlen as u32,
                },
                BTF_KIND_FUNC_PROTO => {
                    let raw = r.bytes(vlen * 8)?;
                    let params = raw
                        .chunks_exact(8)
                        .map(|c| BtfParam {
                            name_off: le32(&c[0..4]),
                            type_id: le32(&c[4..8]),
                        })
                        .collect();
                    BtfKind::FuncProto {
                        return_type: size_or_type,
                        params,
                    }
                }
                BTF_KIND_VAR => BtfKind::Var {
                    type_id: size_or_type,
                    linkage: r.u32()?,
                },
                BTF_KIND_DATASEC => {
                    let raw = r.bytes(vlen * 12)?;
                    let vars = raw
                        .chunks_exact(12)
                        .map(|c| BtfVarSecinfo {
                            type_id: le32(&c[0..4]),
                            offset: le32(&c[4..8]),
                            size: le32(&c[8..12]),
                        })
                        .collect();
                    BtfKind::Datasec {
                        size: size_or_type,
                        vars,
                    }
                }
                BTF_KIND_FLOAT => BtfKind::Float { size: size_or_type },
                BTF_KIND_DECL_TAG => BtfKind::DeclTag {
                    type_id: size_or_type,
                    component_idx: r.u32()? as i32,
                },
                BTF_KIND_TYPE_TAG => BtfKind::TypeTag {
                    type_id: size_or_type,
                },
                BTF_KIND_ENUM64 => {
                    let raw = r.bytes(vlen * 12)?;
                    let values = raw
                        .chunks_exact(12)
                        .map(|c| BtfEnum64Value {
                            name_off: le32(&c[0..4]),
                            val: u64::from(le32(&c[4..8])) | (u64::from(le32(&c[8..12])) << 32),
                        })
                        .collect();
                    BtfKind::Enum64 {
                        size: size_or_type,
                        values,
                    }
                }
                _ => {
                    return Err(BtfError::UnknownKind {
                        type_id,
                        offset,
                        kind,
                    })
                }
            };
            types.push(BtfType {
                name_off,
                kind_flag,
                kind: parsed,
            });
        }
        let btf = Btf {
            types,
            strings: strings.to_vec(),
            by_essential_name: NameIndex::default(),
        };
        // Every name must be a valid string, so that lookups by name never fail later.
        for t in &btf.types {
            btf.string(t.name_off)?;
        }
        Ok(btf)
    }

    /// Number of type ids, including id 0 (`void`).
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// True when the section holds no type besides `void`.
    pub fn is_empty(&self) -> bool {
        self.types.len() <= 1
    }

    /// All types with their ids, `void` (id 0) first.
    pub fn types(&self) -> impl Iterator<Item = (u32, &BtfType)> {
        self.types.iter().enumerate().map(|(i, t)| (i as u32, t))
    }

    /// The type with id `type_id`.
    pub fn type_by_id(&self, type_id: u32) -> Result<&BtfType, BtfError> {
        self.types
            .get(type_id as usize)
            .ok_or(BtfError::BadTypeId { type_id })
    }

    /// The NUL-terminated string at `offset` in the string table.
    pub fn string(&self, offset: u32) -> Result<&str, BtfError> {
        let bad = BtfError::BadString { offset };
        if offset == 0 && self.strings.is_empty() {
            return Ok("");
        }
        let tail = self.strings.get(offset as usize..).ok_or(bad.clone())?;
        let end = tail.iter().position(|&b| b == 0).ok_or(bad.clone())?;
        std::str::from_utf8(&tail[..end]).map_err(|_| bad)
    }

    /// The name of type `type_id` ("" for anonymous types and `void`).
    pub fn type_name(&self, type_id: u32) -> Result<&str, BtfError> {
        let t = self.type_by_id(type_id)?;
        self.string(t.name_off)
    }

    /// The first type id with this name and kind number (`BTF_KIND_*`).
    pub fn find_by_name_kind(&self, name: &str, kind: u32) -> Option<u32> {
        self.types()
            .skip(1)
            .find(|(_, t)| t.kind.number() == kind && self.string(t.name_off) == Ok(name))
            .map(|(id, _)| id)
    }

    /// Ids of named types that may have `essential` as their name without a
    /// `___flavor` suffix (see [`crate::core::essential_name`]), in id order.
    /// The index is keyed by a hash: callers compare the names themselves.
    pub fn ids_by_essential_name(&self, essential: &[u8]) -> &[u32] {
        let index = self.by_essential_name.0.get_or_init(|| {
            let mut map: HashMap<u64, Vec<u32>> = HashMap::new();
            for (id, t) in self.types().skip(1) {
                let Some(tail) = self.strings.get(t.name_off as usize..) else {
                    continue;
                };
                let name = &tail[..tail.iter().position(|&b| b == 0).unwrap_or(tail.len())];
                if !name.is_empty() {
                    let key = fnv1a(crate::core::essential_bytes(name));
                    map.entry(key).or_default().push(id);
                }
            }
            map
        });
        index.get(&fnv1a(essential)).map_or(&[], |v| v.as_slice())
    }

    /// Follows typedef, const, volatile, restrict and type_tag links from
    /// `type_id` and returns the first other type's id.
    pub fn resolve(&self, type_id: u32) -> Result<u32, BtfError> {
        let mut id = type_id;
        for _ in 0..MAX_RESOLVE_DEPTH {
            match self.type_by_id(id)?.kind {
                BtfKind::Typedef { type_id: next }
                | BtfKind::Const { type_id: next }
                | BtfKind::Volatile { type_id: next }
                | BtfKind::Restrict { type_id: next }
                | BtfKind::TypeTag { type_id: next } => id = next,
                _ => return Ok(id),
            }
        }
        Err(BtfError::TooDeep { type_id })
    }

    /// [`Btf::resolve`], then the resolved type.
    pub fn resolved_type(&self, type_id: u32) -> Result<(u32, &BtfType), BtfError> {
        let id = self.resolve(type_id)?;
        Ok((id, self.type_by_id(id)?))
    }

    /// Size in bytes of a value of type `type_id`, as libbpf's `btf__resolve_size`
    /// computes it: pointers are 8 bytes, arrays multiply their element count.
    pub fn type_size(&self, type_id: u32) -> Result<u64, BtfError> {
        let mut id = type_id;
        let mut nelems: u64 = 1;
        for _ in 0..MAX_RESOLVE_DEPTH {
            let t = self.type_by_id(id)?;
            let size = match t.kind {
                BtfKind::Int { size, .. }
                | BtfKind::Struct { size, .. }
                | BtfKind::Union { size, .. }
                | BtfKind::Enum { size, .. }
                | BtfKind::Enum64 { size, .. }
                | BtfKind::Datasec { size, .. }
                | BtfKind::Float { size } => u64::from(size),
                BtfKind::Ptr { .. } => 8,
                BtfKind::Typedef { type_id: next }
                | BtfKind::Volatile { type_id: next }
                | BtfKind::Const { type_id: next }
                | BtfKind::Restrict { type_id: next }
                | BtfKind::TypeTag { type_id: next }
                | BtfKind::Var { type_id: next, .. }
                | BtfKind::DeclTag { type_id: next, .. } => {
                    id = next;
                    continue;
                }
                BtfKind::Array {
                    elem_type,
                    nelems: n,
                    ..
                } => {
                    nelems = nelems.checked_mul(u64::from(n)).ok_or(BtfError::BadType {
                        type_id: id,
                        reason: "array size overflows",
                    })?;
                    id = elem_type;
                    continue;
                }
                BtfKind::Void | BtfKind::Fwd | BtfKind::Func { .. } | BtfKind::FuncProto { .. } => {
                    return Err(BtfError::BadType {
                        type_id: id,
                        reason: "type has no size",
                    })
                }
            };
            return nelems.checked_mul(size).ok_or(BtfError::BadType {
                type_id: id,
                reason: "array size overflows",
            });
        }
        Err(BtfError::TooDeep { type_id })
    }
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// FNV-1a, for the name index.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a BTF blob from raw type words and a string table.
    pub(crate) fn blob(type_words: &[u32], strings: &[u8]) -> Vec<u8> {
        let types: Vec<u8> = type_words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut out = Vec::new();
        out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        out.push(1);
        out.push(0);
        out.extend_from_slice(&24u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(types.len() as u32).to_le_bytes());
        out.extend_from_slice(&(types.len() as u32).to_le_bytes());
        out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        out.extend_from_slice(&types);
        out.extend_from_slice(strings);
        out
    }

    fn info(kind: u32, vlen: u32, kflag: bool) -> u32 {
        (kind << 24) | vlen | if kflag { 1 << 31 } else { 0 }
    }

    // strings: 0 "", 1 "int", 5 "u32t", 10 "s", 12 "a", 14 "b", 16 "E", 18 "X", 20 "tag", 24 "f"
    const STRS: &[u8] = b"\0int\0u32t\0s\0a\0b\0E\0X\0tag\0f\0";

    #[rustfmt::skip]
    fn sample() -> Vec<u32> {
        vec![
            // 1: int, 4 bytes, signed, 32 bits
            1, info(BTF_KIND_INT, 0, false), 4, (1 << 24) | 32,
            // 2: typedef u32t -> 1
            5, info(BTF_KIND_TYPEDEF, 0, false), 1,
            // 3: const -> 2
            0, info(BTF_KIND_CONST, 0, false), 2,
            // 4: array of 5 x (3), index type 1
            0, info(BTF_KIND_ARRAY, 0, false), 0, 3, 1, 5,
            // 5: struct s { int a; int b:3 } size 8, kind_flag (bitfields)
            10, info(BTF_KIND_STRUCT, 2, true), 8, 12, 1, 0, 14, 1, (3 << 24) | 32,
            // 6: ptr -> 5
            0, info(BTF_KIND_PTR, 0, false), 5,
            // 7: enum E { X = -1 }, size 4, signed
            16, info(BTF_KIND_ENUM, 1, true), 4, 18, 0xffff_ffff,
            // 8: enum64 E { X = 1<<40 }
            16, info(BTF_KIND_ENUM64, 1, false), 8, 18, 0, 1 << 8,
            // 9: float f, 8 bytes
            24, info(BTF_KIND_FLOAT, 0, false), 8,
            // 10: decl_tag "tag" on member 1 of struct 5
            20, info(BTF_KIND_DECL_TAG, 0, false), 5, 1,
            // 11: type_tag "tag" -> 6
            20, info(BTF_KIND_TYPE_TAG, 0, false), 6,
            // 12: func_proto int (int a)
            0, info(BTF_KIND_FUNC_PROTO, 1, false), 1, 12, 1,
            // 13: func f, global
            24, info(BTF_KIND_FUNC, BTF_LINKAGE_GLOBAL, false), 12,
            // 14: var a : array 4, global allocated
            12, info(BTF_KIND_VAR, 0, false), 4, 1,
            // 15: datasec "s" size 20 { var 14 at 0 size 20 }
            10, info(BTF_KIND_DATASEC, 1, false), 20, 14, 0, 20,
            // 16: fwd union X
            18, info(BTF_KIND_FWD, 0, true), 0,
            // 17: volatile -> 3, 18: restrict -> 6
            0, info(BTF_KIND_VOLATILE, 0, false), 3,
            0, info(BTF_KIND_RESTRICT, 0, false), 6,
            // 19: union of { int a }, size 4
            0, info(BTF_KIND_UNION, 1, false), 4, 12, 1, 0,
        ]
    }

    #[test]
    fn parses_every_kind() {
        let btf = Btf::parse(&blob(&sample(), STRS)).unwrap();
        assert_eq!(btf.len(), 20);
        assert_eq!(btf.type_by_id(0).unwrap().kind, BtfKind::Void);
        assert_eq!(
            btf.type_by_id(1).unwrap().kind,
            BtfKind::Int {
                size: 4,
                encoding: 1,
                offset: 0,
                bits: 32
            }
        );
        assert_eq!(btf.type_name(1).unwrap(), "int");
        assert_eq!(btf.type_name(2).unwrap(), "u32t");
        assert_eq!(
            btf.type_by_id(4).unwrap().kind,
            BtfKind::Array {
                elem_type: 3,
                index_type: 1,
                nelems: 5
            }
        );
        let s = btf.type_by_id(5).unwrap();
        let BtfKind::Struct { size: 8, members } = &s.kind else {
            panic!("{s:?}")
        };
        assert_eq!(members.len(), 2);
        assert_eq!(members[1].bit_offset(s.kind_flag), 32);
        assert_eq!(members[1].bitfield_size(s.kind_flag), 3);
        assert_eq!(btf.string(members[1].name_off).unwrap(), "b");
        let e = btf.type_by_id(7).unwrap();
        assert!(e.kind_flag);
        assert_eq!(
            e.kind,
            BtfKind::Enum {
                size: 4,
                values: vec![BtfEnumValue {
                    name_off: 18,
                    val: -1
                }]
            }
        );
        assert_eq!(
            btf.type_by_id(8).unwrap().kind,
            BtfKind::Enum64 {
                size: 8,
                values: vec![BtfEnum64Value {
                    name_off: 18,
                    val: 1 << 40
                }]
            }
        );
        assert_eq!(btf.type_by_id(9).unwrap().kind, BtfKind::Float { size: 8 });
        assert_eq!(
            btf.type_by_id(10).unwrap().kind,
            BtfKind::DeclTag {
                type_id: 5,
                component_idx: 1
            }
        );
        assert_eq!(
            btf.type_by_id(11).unwrap().kind,
            BtfKind::TypeTag { type_id: 6 }
        );
        assert_eq!(
            btf.type_by_id(12).unwrap().kind,
            BtfKind::FuncProto {
                return_type: 1,
                params: vec![BtfParam {
                    name_off: 12,
                    type_id: 1
                }]
            }
        );
        assert_eq!(
            btf.type_by_id(13).unwrap().kind,
            BtfKind::Func {
                type_id: 12,
                linkage: 1
            }
        );
        assert_eq!(
            btf.type_by_id(14).unwrap().kind,
            BtfKind::Var {
                type_id: 4,
                linkage: 1
            }
        );
        assert_eq!(
            btf.type_by_id(15).unwrap().kind,
            BtfKind::Datasec {
                size: 20,
                vars: vec![BtfVarSecinfo {
                    type_id: 14,
                    offset: 0,
                    size: 20
                }]
            }
        );
        assert!(btf.type_by_id(16).unwrap().kind_flag);
        assert_eq!(btf.type_by_id(16).unwrap().kind, BtfKind::Fwd);
        assert_eq!(btf.type_by_id(19).unwrap().kind.number(), BTF_KIND_UNION);
        assert!(btf.type_by_id(20).is_err());
    }

    #[test]
    fn resolve_and_sizes() {
        let btf = Btf::parse(&blob(&sample(), STRS)).unwrap();
        assert_eq!(btf.resolve(17).unwrap(), 1); // volatile -> const -> typedef -> int
        assert_eq!(btf.resolve(11).unwrap(), 6); // type_tag -> ptr
        assert_eq!(btf.resolve(6).unwrap(), 6);
        assert_eq!(btf.type_size(3).unwrap(), 4);
        assert_eq!(btf.type_size(4).unwrap(), 20); // 5 x int
        assert_eq!(btf.type_size(14).unwrap(), 20); // var -> array
        assert_eq!(btf.type_size(6).unwrap(), 8); // pointer
        assert_eq!(btf.type_size(8).unwrap(), 8);
        assert_eq!(btf.type_size(15).unwrap(), 20);
        assert!(btf.type_size(12).is_err()); // func_proto has no size
        assert!(btf.type_size(16).is_err()); // fwd has no size
        assert_eq!(btf.find_by_name_kind("s", BTF_KIND_DATASEC), Some(15));
        assert_eq!(btf.find_by_name_kind("s", BTF_KIND_STRUCT), Some(5));
        assert_eq!(btf.find_by_name_kind("nope", BTF_KIND_STRUCT), None);
    }

    #[test]
    #[rustfmt::skip]
    fn typedef_loop_is_an_error() {
        let words = vec![0, info(BTF_KIND_TYPEDEF, 0, false), 2, 0, info(BTF_KIND_CONST, 0, false), 1];
        let btf = Btf::parse(&blob(&words, b"\0")).unwrap();
        assert_eq!(btf.resolve(1), Err(BtfError::TooDeep { type_id: 1 }));
        assert_eq!(btf.type_size(2), Err(BtfError::TooDeep { type_id: 2 }));
    }

    #[test]
    #[rustfmt::skip]
    fn array_size_overflow_is_an_error() {
        let words = vec![
            0, info(BTF_KIND_INT, 0, false), 8, 64,
            0, info(BTF_KIND_ARRAY, 0, false), 0, 1, 1, u32::MAX,
            0, info(BTF_KIND_ARRAY, 0, false), 0, 2, 1, u32::MAX,
            0, info(BTF_KIND_ARRAY, 0, false), 0, 3, 1, u32::MAX,
        ];
        let btf = Btf::parse(&blob(&words, b"\0")).unwrap();
        assert!(matches!(btf.type_size(4), Err(BtfError::BadType { .. })));
    }

    #[test]
    fn rejects_corrupt_sections() {
        let good = blob(&sample(), STRS);
        // Every truncation is an error, never a panic.
        for len in 0..good.len() {
            assert!(Btf::parse(&good[..len]).is_err(), "len {len}");
        }
        let mut bad_magic = good.clone();
        bad_magic[0] = 0xeb; // big-endian BTF
        bad_magic[1] = 0x9f;
        assert_eq!(
            Btf::parse(&bad_magic),
            Err(BtfError::BadMagic {
                section: ".BTF",
                magic: 0x9feb
            })
        );
        let mut bad_version = good.clone();
        bad_version[2] = 2;
        assert_eq!(
            Btf::parse(&bad_version),
            Err(BtfError::BadVersion {
                section: ".BTF",
                version: 2
            })
        );
        let mut bad_kind = good.clone();
        bad_kind[24 + 7] = 25; // type #1 kind byte
        assert!(matches!(
            Btf::parse(&bad_kind),
            Err(BtfError::UnknownKind {
                type_id: 1,
                offset: 24,
                kind: 25
            })
        ));
        let mut bad_name = good;
        bad_name[24] = 0xff; // name_off of type #1
        assert!(matches!(
            Btf::parse(&bad_name),
            Err(BtfError::BadString { .. })
        ));
        // A huge vlen with no data behind it.
        let words = vec![0, info(BTF_KIND_STRUCT, 0xffff, false), 0];
        assert!(matches!(
            Btf::parse(&blob(&words, b"\0")),
            Err(BtfError::Truncated { .. })
        ));
    }
}
