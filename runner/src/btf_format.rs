//! Map keys and values formatted by their BTF types, as bpftool's `btf_dumper`
//! formats them: the `"formatted"` member of `bpftool -j map dump`, and the
//! pretty-printed text of `bpftool map dump` for a map with BTF.
//!
//! bpftool's rules, checked against bpftool 7.1 by the kernel differential test
//! (`runner/tests/cli.rs`, `map_dump_formats_btf_like_bpftool`):
//! - integers of 8, 16, 32 and 64 bits are numbers, signed or unsigned by their
//!   encoding; `_Bool` is `true`/`false` (one byte, non-zero is true);
//! - bitfields, integers of other widths and 128-bit integers are hex strings
//!   (`"0x1abc"`; bare `0x1abc` in text), never sign-extended;
//! - an array of `char` (an int of one byte named `char`, or CHAR-encoded) is a
//!   string when it holds a NUL and only printable bytes before it, else an array
//!   of numbers like every other array;
//! - enums are the name of the matching enumerator, else the number;
//! - structs and unions are objects by member name (`""` for an anonymous
//!   member); typedef, const, volatile, restrict are looked through;
//! - pointers are numbers (`%p` in text: `0x...`, `(nil)`);
//! - a DATASEC (global data map) is `{"SECTION": [{"VAR": value}, ...]}`;
//! - per-CPU maps give `"values": [{"cpu": N, "value": ...}]`; `"key"` only when
//!   the map has a BTF key type.
//!
//! Where bpftool 7.1 prints no valid JSON, this module picks a value: floats
//! (bpftool: `(unsupported-kind`) are numbers, `void` is the string
//! `"(unknown)"`. JSON objects repeat no keys here, so a second anonymous member
//! replaces the first in `--json` output (bpftool writes both); the text form
//! keeps every member, in order.

use anyhow::{anyhow, bail, Result};
use loader::btf::{Btf, BtfKind, BtfType};
use serde_json::{Map as JsonMap, Value};

/// `BTF_INT_SIGNED`, `BTF_INT_CHAR`, `BTF_INT_BOOL` (`btf_type` int encoding bits).
const INT_SIGNED: u8 = 1;
const INT_CHAR: u8 = 2;
const INT_BOOL: u8 = 4;

/// How deep types may nest (typedef chains, nested structs and arrays).
const MAX_DEPTH: usize = 64;

/// Formatted fields a value may produce per byte (a byte holds at most eight
/// one-bit bitfields), plus a constant allowance for members that take no bytes
/// (empty structs, zero-length arrays, typedef hops, DATASEC wrappers).
const FIELDS_PER_BYTE: usize = 8;
const FIELDS_BASE: usize = 256;
/// Bytes of names and strings (member and enumerator names, char arrays) a
/// value may produce per field allowed: names from crafted BTF cannot make the
/// output large either.
const TEXT_PER_FIELD: usize = 128;

/// A formatted value: what bpftool's dumper writes, before it becomes JSON or text.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    UInt(u64),
    SInt(i64),
    Bool(bool),
    /// Bitfields, odd-width and 128-bit integers: `0x...`, a string in JSON.
    Hex(u128),
    /// A pointer: a number in JSON, `%p` in text.
    Ptr(u64),
    /// A CHAR-encoded one-byte integer: a one-character string.
    Char(u8),
    Float(f64),
    Str(String),
    /// A token bpftool prints bare (`(unknown)`); a string in JSON.
    Raw(&'static str),
    Array(Vec<Node>),
    /// Members in order; names may repeat (anonymous members are all `""`).
    Object(Vec<(String, Node)>),
}

impl Node {
    /// The value in `bpftool -j` form.
    pub fn to_json(&self) -> Value {
        match self {
            Node::UInt(v) => Value::from(*v),
            Node::SInt(v) => Value::from(*v),
            Node::Bool(b) => Value::Bool(*b),
            Node::Hex(v) => Value::String(format!("{v:#x}")),
            Node::Ptr(v) => Value::from(*v),
            Node::Char(c) => Value::String(char::from(*c).to_string()),
            Node::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Node::Str(s) => Value::String(s.clone()),
            Node::Raw(s) => Value::String((*s).to_string()),
            Node::Array(v) => Value::Array(v.iter().map(Node::to_json).collect()),
            Node::Object(members) => {
                let mut m = JsonMap::new();
                for (k, v) in members {
                    m.insert(k.clone(), v.to_json());
                }
                Value::Object(m)
            }
        }
    }

    /// The value as bpftool's plain (pretty) text prints it, starting at `depth`.
    pub fn write_plain(&self, w: &mut PlainWriter) {
        match self {
            Node::UInt(v) => w.token(&v.to_string()),
            Node::SInt(v) => w.token(&v.to_string()),
            Node::Bool(b) => w.token(if *b { "true" } else { "false" }),
            Node::Hex(v) => w.token(&format!("{v:#x}")),
            Node::Ptr(0) => w.token("(nil)"),
            Node::Ptr(v) => w.token(&format!("{v:#x}")),
            Node::Char(c) if c.is_ascii_graphic() || *c == b' ' => {
                w.token(&format!("\"{}\"", char::from(*c)))
            }
            Node::Char(c) => w.token(&format!("{c:#x}")),
            Node::Float(f) => w.token(&f.to_string()),
            Node::Str(s) => w.string(s),
            Node::Raw(s) => w.token(s),
            Node::Array(v) => {
                w.begin('[');
                for n in v {
                    n.write_plain(w);
                }
                w.end(']');
            }
            Node::Object(members) => {
                w.begin('{');
                for (k, v) in members {
                    w.name(k);
                    v.write_plain(w);
                }
                w.end('}');
            }
        }
    }

    /// The value as one pretty-printed text block (bpftool's plain form).
    pub fn plain(&self) -> String {
        let mut w = PlainWriter::default();
        self.write_plain(&mut w);
        w.finish()
    }
}

/// bpftool's `json_writer` in pretty mode: a comma before each element after
/// the first, names on their own line indented four spaces per level, scalars of
/// an array on one line, the closing bracket on its own line.
#[derive(Default, Debug)]
pub struct PlainWriter {
    out: String,
    depth: usize,
    /// The separator owed before the next element (`None` at the start of a level).
    sep: Option<char>,
}

impl PlainWriter {
    fn eor(&mut self) {
        if let Some(c) = self.sep {
            self.out.push(c);
        }
        self.sep = Some(',');
    }

    fn eol(&mut self) {
        self.out.push('\n');
        for _ in 0..self.depth {
            self.out.push_str("    ");
        }
    }

    pub fn name(&mut self, name: &str) {
        self.eor();
        self.eol();
        self.sep = None;
        self.out.push_str(&quote(name));
        self.out.push_str(": ");
    }

    pub fn token(&mut self, s: &str) {
        self.eor();
        self.out.push_str(s);
    }

    pub fn string(&mut self, s: &str) {
        self.eor();
        self.out.push_str(&quote(s));
    }

    pub fn begin(&mut self, c: char) {
        self.eor();
        self.out.push(c);
        self.depth += 1;
        self.sep = None;
    }

    pub fn end(&mut self, c: char) {
        self.depth = self.depth.saturating_sub(1);
        if self.sep.is_some() {
            self.eol();
        }
        self.out.push(c);
        self.sep = Some(',');
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// Formats `data` as type `type_id` of `btf` (bpftool's `btf_dumper_type`).
///
/// The work and the output are bounded by the value's size, whatever the BTF
/// says: at most `8 * len + 256` fields (nodes, including look-through hops)
/// and 128 bytes of names and strings per field allowed, and types nested at
/// most 64 deep. BTF that would format into more (a struct of billions of
/// zero-size elements, unions fanning out at every level) is an error.
pub fn format_type(btf: &Btf, type_id: u32, data: &[u8]) -> Result<Node> {
    let fields = data
        .len()
        .saturating_mul(FIELDS_PER_BYTE)
        .saturating_add(FIELDS_BASE);
    Dumper {
        btf,
        value_len: data.len(),
        fields_left: std::cell::Cell::new(fields),
        text_left: std::cell::Cell::new(fields.saturating_mul(TEXT_PER_FIELD)),
    }
    .do_type(type_id, 0, data, 0)
}

/// Where a map's values are: one, or one per CPU (per-CPU maps).
pub enum Values<'a> {
    One(&'a [u8]),
    PerCpu(&'a [Vec<u8>]),
}

/// One map entry as bpftool's `do_dump_btf` writes it: `key` (when the map has a
/// BTF key type) and `value`, or `values` per CPU.
pub fn format_entry(
    btf: &Btf,
    key_type: u32,
    value_type: u32,
    key: &[u8],
    values: Values<'_>,
) -> Result<Node> {
    let mut members = Vec::new();
    if key_type != 0 {
        members.push(("key".to_string(), format_type(btf, key_type, key)?));
    }
    match values {
        Values::One(v) => members.push(("value".to_string(), format_type(btf, value_type, v)?)),
        Values::PerCpu(per_cpu) => {
            let mut cpus = Vec::with_capacity(per_cpu.len());
            for (cpu, v) in per_cpu.iter().enumerate() {
                cpus.push(Node::Object(vec![
                    ("cpu".to_string(), Node::UInt(cpu as u64)),
                    ("value".to_string(), format_type(btf, value_type, v)?),
                ]));
            }
            members.push(("values".to_string(), Node::Array(cpus)));
        }
    }
    Ok(Node::Object(members))
}

struct Dumper<'a> {
    btf: &'a Btf,
    /// The size of the value being formatted (for errors).
    value_len: usize,
    /// Fields that may still be produced (see `format_type`).
    fields_left: std::cell::Cell<usize>,
    /// Bytes of names and strings that may still be produced.
    text_left: std::cell::Cell<usize>,
}

/// `n` bytes of `data` from `at`, or an error naming what was being read.
fn bytes(data: &[u8], at: usize, n: usize) -> Result<&[u8]> {
    at.checked_add(n)
        .and_then(|end| data.get(at..end))
        .ok_or_else(|| {
            anyhow!(
                "BTF type needs bytes {at}..{} of a {}-byte buffer",
                at.saturating_add(n),
                data.len()
            )
        })
}

/// Little-endian unsigned integer of `data[..n]` (n <= 16).
fn le(data: &[u8]) -> u128 {
    data.iter()
        .rev()
        .fold(0u128, |acc, &b| (acc << 8) | u128::from(b))
}

/// bpftool's `btf_dumper_bitfield`: `nr_bits` bits starting `bit_offset` bits
/// into `data`, zero-extended.
fn bitfield(nr_bits: u32, bit_offset: u32, data: &[u8]) -> Result<Node> {
    let total = bit_offset + nr_bits;
    if nr_bits == 0 || total > 128 {
        bail!("bitfield of {nr_bits} bits at bit {bit_offset}: more than 128 bits");
    }
    let v = le(bytes(data, 0, total.div_ceil(8) as usize)?) >> bit_offset;
    let mask = if nr_bits == 128 {
        u128::MAX
    } else {
        (1u128 << nr_bits) - 1
    };
    Ok(Node::Hex(v & mask))
}

impl Dumper<'_> {
    fn ty(&self, id: u32) -> Result<&BtfType> {
        self.btf
            .type_by_id(id)
            .map_err(|e| anyhow!("BTF type {id}: {e}"))
    }

    /// Takes one field and `text` bytes of names or strings from the budget.
    fn spend(&self, id: u32, text: usize) -> Result<()> {
        let (f, t) = (self.fields_left.get(), self.text_left.get());
        if f == 0 || t < text {
            return Err(self.over_budget(id));
        }
        self.fields_left.set(f - 1);
        self.text_left.set(t - text);
        Ok(())
    }

    fn over_budget(&self, id: u32) -> anyhow::Error {
        anyhow!(
            "BTF type {id} formats into more fields or text than a {}-byte value can \
             hold (at most {} fields): crafted or corrupt BTF",
            self.value_len,
            self.value_len
                .saturating_mul(FIELDS_PER_BYTE)
                .saturating_add(FIELDS_BASE)
        )
    }

    /// A name or string from the BTF (or the value), counted against the budget.
    fn text(&self, id: u32, s: &str) -> Result<String> {
        self.spend(id, s.len())?;
        Ok(s.to_string())
    }

    fn do_type(&self, id: u32, bit_offset: u32, data: &[u8], depth: usize) -> Result<Node> {
        if depth > MAX_DEPTH {
            bail!("BTF type {id} nests more than {MAX_DEPTH} levels");
        }
        self.spend(id, 0)?;
        let t = self.ty(id)?;
        match &t.kind {
            BtfKind::Int {
                size: _,
                encoding,
                offset,
                bits,
            } => self.int(
                *encoding,
                u32::from(*offset),
                u32::from(*bits),
                bit_offset,
                data,
            ),
            BtfKind::Struct { members, .. } | BtfKind::Union { members, .. } => {
                let mut out = Vec::with_capacity(members.len());
                for m in members {
                    let name = self.text(id, self.btf.string(m.name_off).unwrap_or(""))?;
                    let off = m.bit_offset(t.kind_flag);
                    let size = m.bitfield_size(t.kind_flag);
                    let at = (off / 8) as usize;
                    let sub = data.get(at..).ok_or_else(|| {
                        anyhow!(
                            "member {name:?} at byte {at} of a {}-byte value",
                            data.len()
                        )
                    })?;
                    let v = if size != 0 {
                        self.spend(id, 0)?;
                        bitfield(size, off % 8, sub)?
                    } else {
                        self.do_type(m.type_id, off % 8, sub, depth + 1)?
                    };
                    out.push((name, v));
                }
                Ok(Node::Object(out))
            }
            BtfKind::Array {
                elem_type, nelems, ..
            } => self.array(*elem_type, *nelems, data, depth),
            BtfKind::Enum { size, values } => {
                let raw = bytes(data, 0, *size as usize)?;
                let v = match size {
                    1 => i64::from(raw[0] as i8),
                    2 => i64::from(i16::from_le_bytes([raw[0], raw[1]])),
                    4 => i64::from(i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])),
                    8 => le(raw) as u64 as i64,
                    other => bail!("enum of {other} bytes"),
                };
                Ok(match values.iter().find(|e| i64::from(e.val) == v) {
                    Some(e) => Node::Str(self.text(id, self.btf.string(e.name_off).unwrap_or(""))?),
                    None => Node::SInt(v),
                })
            }
            BtfKind::Enum64 { size, values } => {
                if *size != 8 {
                    bail!("enum64 of {size} bytes");
                }
                let v = le(bytes(data, 0, 8)?) as u64;
                Ok(match values.iter().find(|e| e.val == v) {
                    Some(e) => Node::Str(self.text(id, self.btf.string(e.name_off).unwrap_or(""))?),
                    None => Node::SInt(v as i64),
                })
            }
            BtfKind::Ptr { .. } => Ok(Node::Ptr(le(bytes(data, 0, 8)?) as u64)),
            BtfKind::Void => Ok(Node::Raw("(unknown)")),
            BtfKind::Typedef { type_id }
            | BtfKind::Volatile { type_id }
            | BtfKind::Const { type_id }
            | BtfKind::Restrict { type_id }
            | BtfKind::TypeTag { type_id } => self.do_type(*type_id, bit_offset, data, depth + 1),
            BtfKind::Var { type_id, .. } => {
                let name = self.text(id, self.btf.string(t.name_off).unwrap_or(""))?;
                let v = self.do_type(*type_id, bit_offset, data, depth + 1)?;
                Ok(Node::Object(vec![(name, v)]))
            }
            BtfKind::Datasec { vars, .. } => {
                let name = self.text(id, self.btf.string(t.name_off).unwrap_or(""))?;
                let mut out = Vec::with_capacity(vars.len());
                for v in vars {
                    let sub = data.get(v.offset as usize..).ok_or_else(|| {
                        anyhow!(
                            "variable at byte {} of a {}-byte value",
                            v.offset,
                            data.len()
                        )
                    })?;
                    out.push(self.do_type(v.type_id, 0, sub, depth + 1)?);
                }
                Ok(Node::Object(vec![(name, Node::Array(out))]))
            }
            BtfKind::Float { size } => match size {
                4 => {
                    let b = bytes(data, 0, 4)?;
                    Ok(Node::Float(f64::from(f32::from_le_bytes([
                        b[0], b[1], b[2], b[3],
                    ]))))
                }
                8 => Ok(Node::Float(f64::from_bits(le(bytes(data, 0, 8)?) as u64))),
                other => bail!("float of {other} bytes"),
            },
            other => bail!(
                "BTF type {id} (kind {}) cannot be a map key or value",
                other.number()
            ),
        }
    }

    fn int(
        &self,
        encoding: u8,
        int_offset: u32,
        bits: u32,
        bit_offset: u32,
        data: &[u8],
    ) -> Result<Node> {
        let as_bits = || {
            let total = bit_offset + int_offset;
            bitfield(
                bits,
                total % 8,
                data.get((total / 8) as usize..).unwrap_or(&[]),
            )
        };
        if bit_offset != 0 || int_offset != 0 || !bits.is_multiple_of(8) {
            return as_bits();
        }
        if bits == 128 {
            return Ok(Node::Hex(le(bytes(data, 0, 16)?)));
        }
        let n = (bits / 8) as usize;
        match encoding {
            0 if matches!(bits, 8 | 16 | 32 | 64) => Ok(Node::UInt(le(bytes(data, 0, n)?) as u64)),
            INT_SIGNED if matches!(bits, 8 | 16 | 32 | 64) => {
                let v = le(bytes(data, 0, n)?) as u64;
                let shift = 64 - bits;
                Ok(Node::SInt(((v << shift) as i64) >> shift))
            }
            0 | INT_SIGNED => as_bits(),
            INT_CHAR => Ok(Node::Char(bytes(data, 0, 1)?[0])),
            INT_BOOL => Ok(Node::Bool(bytes(data, 0, 1)?[0] != 0)),
            other => bail!("int encoding {other:#x}"),
        }
    }

    fn array(&self, elem: u32, nelems: u32, data: &[u8], depth: usize) -> Result<Node> {
        if let Some(s) = self.char_string(elem, nelems, data) {
            return Ok(Node::Str(self.text(elem, &s)?));
        }
        // Each element takes at least one field: refuse at once what cannot fit
        // (rather than looping through billions of zero-size elements first).
        if nelems as usize > self.fields_left.get() {
            return Err(self.over_budget(elem));
        }
        let size = self
            .btf
            .type_size(elem)
            .map_err(|e| anyhow!("size of BTF type {elem}: {e}"))?;
        let size = usize::try_from(size)?;
        let mut out = Vec::with_capacity(nelems.min(4096) as usize);
        for i in 0..nelems as usize {
            let at = i
                .checked_mul(size)
                .filter(|&at| at <= data.len())
                .ok_or_else(|| anyhow!("array element {i} past a {}-byte value", data.len()))?;
            out.push(self.do_type(elem, 0, &data[at..], depth + 1)?);
        }
        Ok(Node::Array(out))
    }

    /// bpftool's `is_str_array`: the string when `elem` is a one-byte `char` (or
    /// CHAR-encoded int; modifiers but not typedefs looked through) and `data`
    /// holds printable bytes up to a NUL within `nelems`.
    fn char_string(&self, mut elem: u32, nelems: u32, data: &[u8]) -> Option<String> {
        if nelems == 0 {
            return None;
        }
        for _ in 0..MAX_DEPTH {
            let t = self.btf.type_by_id(elem).ok()?;
            match &t.kind {
                BtfKind::Const { type_id }
                | BtfKind::Volatile { type_id }
                | BtfKind::Restrict { type_id }
                | BtfKind::TypeTag { type_id } => elem = *type_id,
                BtfKind::Int {
                    size: 1, encoding, ..
                } => {
                    if *encoding != INT_CHAR && self.btf.string(t.name_off).ok()? != "char" {
                        return None;
                    }
                    let s = data.get(..nelems as usize).unwrap_or(data);
                    let end = s.iter().position(|&b| b == 0)?;
                    if s[..end].iter().all(|&b| (0x20..0x7f).contains(&b)) {
                        return Some(s[..end].iter().map(|&b| char::from(b)).collect());
                    }
                    return None;
                }
                _ => return None,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A BTF blob from type records (u32 words) and a string table.
    fn blob(types: &[u32], strings: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        let type_len = (types.len() * 4) as u32;
        // magic 0xeb9f, version 1, flags 0; hdr_len; type off/len; string off/len.
        for w in [
            0x0001_eb9fu32,
            24,
            0,
            type_len,
            type_len,
            strings.len() as u32,
        ] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        for w in types {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(strings);
        b
    }

    fn info(kind: u32, vlen: u32, kflag: bool) -> u32 {
        (u32::from(kflag) << 31) | (kind << 24) | vlen
    }

    /// The types of `struct k` of the differential test's program, by hand:
    /// 1 u32, 2 u16, 3 u8, 4 u8[2], 5 enum color {RED=1, BLUE=-3}, 6 struct k,
    /// 7 char, 8 char[4], 9 s16, 10 _Bool, 11 struct v {s16 x; char name[4];
    /// _Bool flag; u8 z}, 12 typedef u32 __u32, 13 const __u32, 14 ptr, 15 __int128.
    fn sample() -> Btf {
        // Strings: offsets noted beside each name.
        let strings = b"\0u32\0u16\0u8\0color\0RED\0BLUE\0k\0a\0b\0c\0f1\0f2\0col\0char\0short\0_Bool\0v\0x\0name\0flag\0z\0__u32\0__int128\0";
        let off = |s: &str| -> u32 {
            let needle = format!("\0{s}\0");
            strings
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .map(|p| p as u32 + 1)
                .expect("string present")
        };
        let types = vec![
            // 1 u32
            off("u32"),
            info(1, 0, false),
            4,
            32,
            // 2 u16
            off("u16"),
            info(1, 0, false),
            2,
            16,
            // 3 u8
            off("u8"),
            info(1, 0, false),
            1,
            8,
            // 4 u8[2]
            0,
            info(3, 0, false),
            0,
            3,
            1,
            2,
            // 5 enum color (4 bytes)
            off("color"),
            info(6, 2, false),
            4,
            off("RED"),
            1,
            off("BLUE"),
            (-3i32) as u32,
            // 6 struct k (kind_flag: bitfields), 16 bytes
            off("k"),
            info(4, 6, true),
            16,
            off("a"),
            1,
            0,
            off("b"),
            2,
            32,
            off("c"),
            4,
            48,
            off("f1"),
            1,
            (3 << 24) | 64,
            off("f2"),
            1,
            (13 << 24) | 67,
            off("col"),
            5,
            96,
            // 7 char (signed, as clang encodes it)
            off("char"),
            info(1, 0, false),
            1,
            (1 << 24) | 8,
            // 8 char[4]
            0,
            info(3, 0, false),
            0,
            7,
            1,
            4,
            // 9 short
            off("short"),
            info(1, 0, false),
            2,
            (1 << 24) | 16,
            // 10 _Bool
            off("_Bool"),
            info(1, 0, false),
            1,
            (4 << 24) | 8,
            // 11 struct v, 8 bytes, with an anonymous member (name 0)
            off("v"),
            info(4, 4, false),
            8,
            off("x"),
            9,
            0,
            off("name"),
            8,
            16,
            off("flag"),
            10,
            48,
            0,
            3,
            56,
            // 12 typedef __u32
            off("__u32"),
            info(8, 0, false),
            1,
            // 13 const __u32
            0,
            info(10, 0, false),
            12,
            // 14 ptr to void
            0,
            info(2, 0, false),
            0,
            // 15 __int128
            off("__int128"),
            info(1, 0, false),
            16,
            (1 << 24) | 128,
        ];
        Btf::parse(&blob(&types, strings)).expect("hand-built BTF parses")
    }

    #[test]
    fn struct_key_with_bitfields_and_enum() {
        let btf = sample();
        // a=1, b=2, c=[3,4], f1=5, f2=0x1abc, f3 bits = 0xffff (not a member), col=BLUE.
        let word = 5u32 | (0x1abc << 3) | (0xffff << 16);
        let mut key = vec![1, 0, 0, 0, 2, 0, 3, 4];
        key.extend_from_slice(&word.to_le_bytes());
        key.extend_from_slice(&(-3i32).to_le_bytes());
        let n = format_type(&btf, 6, &key).expect("formats");
        // bpftool 7.1 printed exactly this for the same bytes (see the module doc).
        assert_eq!(
            n.to_json(),
            json!({"a": 1, "b": 2, "c": [3, 4], "f1": "0x5", "f2": "0x1abc", "col": "BLUE"})
        );
        key[12..16].copy_from_slice(&7i32.to_le_bytes());
        let n = format_type(&btf, 6, &key).expect("formats");
        assert_eq!(
            n.to_json()["col"],
            json!(7),
            "an unknown enumerator is its number"
        );
        assert_eq!(
            n.plain(),
            "{\n    \"a\": 1,\n    \"b\": 2,\n    \"c\": [3,4\n    ],\n    \"f1\": 0x5,\n    \"f2\": 0x1abc,\n    \"col\": 7\n}"
        );
    }

    #[test]
    fn char_arrays_bools_signed_and_anonymous_members() {
        let btf = sample();
        // x=-2, name "hi\0z", flag=0, anonymous u8 = 200.
        let v = [0xfe, 0xff, b'h', b'i', 0, b'z', 0, 200];
        assert_eq!(
            format_type(&btf, 11, &v).expect("formats").to_json(),
            json!({"x": -2, "name": "hi", "flag": false, "": 200})
        );
        // No NUL, or a non-printable byte before it: an array of signed numbers.
        let v = [1, 0, b'a', b'b', b'c', b'd', 2, 0];
        assert_eq!(
            format_type(&btf, 11, &v).expect("formats").to_json(),
            json!({"x": 1, "name": [97, 98, 99, 100], "flag": true, "": 0})
        );
        let v = [1, 0, 1, b'i', 0, 0x80, 1, 0];
        assert_eq!(
            format_type(&btf, 11, &v).expect("formats").to_json()["name"],
            json!([1, 105, 0, -128])
        );
        // An empty string.
        let v = [0, 0, 0, b'x', 0, 0, 0, 0];
        assert_eq!(
            format_type(&btf, 11, &v).expect("formats").to_json()["name"],
            json!("")
        );
    }

    #[test]
    fn modifiers_pointers_and_wide_ints() {
        let btf = sample();
        let d = 0xdead_beefu32.to_le_bytes();
        assert_eq!(
            format_type(&btf, 13, &d).expect("const typedef").to_json(),
            json!(3735928559u32)
        );
        let p = 0xffff_8888_1234_5678u64.to_le_bytes();
        let n = format_type(&btf, 14, &p).expect("pointer");
        assert_eq!(n.to_json(), json!(0xffff_8888_1234_5678u64));
        assert_eq!(n.plain(), "0xffff888812345678");
        assert_eq!(
            format_type(&btf, 14, &[0; 8]).expect("null").plain(),
            "(nil)"
        );
        let mut w = [0u8; 16];
        w[0] = 5;
        w[8] = 1;
        let n = format_type(&btf, 15, &w).expect("int128");
        assert_eq!(n.to_json(), json!("0x10000000000000005"));
        assert_eq!(
            format_type(&btf, 15, &[0; 16]).expect("zero").to_json(),
            json!("0x0")
        );
    }

    #[test]
    fn per_cpu_entries_and_short_buffers() {
        let btf = sample();
        let per_cpu = vec![
            vec![0, 0, 0, 0, 0, 0, 0, 0],
            vec![0xfb, 0xff, 0, 0, 0, 0, 0, 0],
        ];
        let e = format_entry(&btf, 1, 11, &[0, 0, 0, 0], Values::PerCpu(&per_cpu)).expect("entry");
        assert_eq!(
            e.to_json(),
            json!({"key": 0, "values": [
                {"cpu": 0, "value": {"x": 0, "name": "", "flag": false, "": 0}},
                {"cpu": 1, "value": {"x": -5, "name": "", "flag": false, "": 0}},
            ]})
        );
        let e = format_entry(&btf, 0, 1, &[], Values::One(&[7, 0, 0, 0])).expect("no key type");
        assert_eq!(e.to_json(), json!({"value": 7}));
        // Bytes missing: an error, never a panic.
        assert!(format_type(&btf, 6, &[0; 5]).is_err());
        assert!(format_type(&btf, 15, &[0; 8]).is_err());
        assert!(format_type(&btf, 99, &[0; 8]).is_err());
    }

    #[test]
    fn plain_writer_follows_bpftool_layout() {
        let n = Node::Array(vec![Node::Object(vec![
            ("key".into(), Node::UInt(1)),
            (
                "value".into(),
                Node::Object(vec![(
                    "arr".into(),
                    Node::Array(vec![Node::SInt(-1), Node::UInt(2)]),
                )]),
            ),
        ])]);
        // As `bpftool map dump` prints a map with BTF.
        assert_eq!(
            n.plain(),
            "[{\n        \"key\": 1,\n        \"value\": {\n            \"arr\": [-1,2\n            ]\n        }\n    }\n]"
        );
        assert_eq!(Node::Object(vec![]).plain(), "{}");
    }

    #[test]
    fn crafted_btf_cannot_make_formatting_unbounded() {
        // 1 struct e {} (0 bytes); 2 e[4e9]; 3 struct s { e many[4e9]; } (8 bytes).
        let strings = b"\0e\0s\0many\0u32\0m\0";
        let types = vec![
            1,
            info(4, 0, false),
            0,
            0,
            info(3, 0, false),
            0,
            1,
            1,
            4_000_000_000,
            3,
            info(4, 1, false),
            8,
            5,
            2,
            0,
        ];
        let btf = Btf::parse(&blob(&types, strings)).expect("parses");
        let e = format_type(&btf, 3, &[0; 8]).expect_err("bounded");
        assert!(e.to_string().contains("8-byte value"), "{e}");

        // 1 u32; 2..=21 unions of 4 bytes, each with four members of the one
        // below: 4^20 leaves for a 4-byte value.
        let mut types = vec![12, info(1, 0, false), 4, 32];
        for level in 2..=21u32 {
            types.extend([0, info(5, 4, false), 4]);
            for _ in 0..4 {
                types.extend([14, level - 1, 0]);
            }
        }
        let btf = Btf::parse(&blob(&types, strings)).expect("parses");
        let e = format_type(&btf, 21, &[1, 0, 0, 0]).expect_err("bounded");
        assert!(e.to_string().contains("crafted or corrupt BTF"), "{e}");
        // The same shape, three levels deep, fits the budget of a 4-byte value.
        let n = format_type(&btf, 4, &[1, 0, 0, 0]).expect("64 leaves fit");
        assert_eq!(n.to_json()["m"]["m"]["m"], json!(1));
    }
}
