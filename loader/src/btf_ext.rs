//! A reader for `.BTF.ext`: enough to list `func_info` and CO-RE relocation
//! records per program section (line_info is only counted).
//!
//! Layout (kernel `tools/lib/bpf/libbpf_internal.h`): a header with magic,
//! version, flags, hdr_len and (offset, length) pairs of the func_info,
//! line_info and, when hdr_len >= 32, core_relo blocks, all relative to the
//! end of the header. Each block starts with a u32 record size, then for each
//! ELF section: the section name's offset in the `.BTF` string table, a record
//! count and the records.

use crate::btf::{read_preamble, sub_slice, Btf, Reader};
use crate::error::BtfError;

const SEC: &str = ".BTF.ext";

/// `bpf_core_relo.kind` values (libbpf `enum bpf_core_relo_kind`).
pub const BPF_CORE_FIELD_BYTE_OFFSET: u32 = 0;

/// A parsed `.BTF.ext` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BtfExt {
    pub func_info: Vec<InfoSection<FuncInfo>>,
    pub core_relos: Vec<InfoSection<CoreRelo>>,
    /// Number of line_info records over all sections.
    pub line_info_count: usize,
}

/// The records of one ELF section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoSection<T> {
    /// ELF section name, e.g. "xdp" or ".text".
    pub section: String,
    pub records: Vec<T>,
}

/// `bpf_func_info`: the function starting at `insn_off` (bytes) has BTF FUNC `type_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuncInfo {
    pub insn_off: u32,
    pub type_id: u32,
}

/// `bpf_core_relo`: a CO-RE relocation at instruction byte offset `insn_off`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreRelo {
    pub insn_off: u32,
    pub type_id: u32,
    /// Access string, e.g. "0:1".
    pub access: String,
    pub kind: u32,
}

impl BtfExt {
    /// Parses `.BTF.ext`; section names and access strings come from `btf`.
    pub fn parse(data: &[u8], btf: &Btf) -> Result<BtfExt, BtfError> {
        let mut r = Reader::new(data, SEC, 0);
        // The header up to the line_info pair is 24 bytes.
        let hdr_len = read_preamble(&mut r, data, SEC, 24)?;
        let func_off = r.u32()? as usize;
        let func_len = r.u32()? as usize;
        let line_off = r.u32()? as usize;
        let line_len = r.u32()? as usize;
        let (core_off, core_len) = if hdr_len >= 32 {
            (r.u32()? as usize, r.u32()? as usize)
        } else {
            (0, 0)
        };
        let body = &data[hdr_len..];

        let mut ext = BtfExt::default();
        let block = sub_slice(body, func_off, func_len, SEC, "func_info out of range")?;
        ext.func_info = parse_block(block, hdr_len + func_off, "func_info", 8, btf, |rec| {
            Ok(FuncInfo {
                insn_off: le32(&rec[0..4]),
                type_id: le32(&rec[4..8]),
            })
        })?;
        let block = sub_slice(body, line_off, line_len, SEC, "line_info out of range")?;
        let lines = parse_block(block, hdr_len + line_off, "line_info", 16, btf, |_| Ok(()))?;
        ext.line_info_count = lines.iter().map(|s| s.records.len()).sum();
        let block = sub_slice(body, core_off, core_len, SEC, "core_relo out of range")?;
        ext.core_relos = parse_block(block, hdr_len + core_off, "core_relo", 16, btf, |rec| {
            Ok(CoreRelo {
                insn_off: le32(&rec[0..4]),
                type_id: le32(&rec[4..8]),
                access: btf.string(le32(&rec[8..12]))?.to_string(),
                kind: le32(&rec[12..16]),
            })
        })?;
        Ok(ext)
    }

    /// The first CO-RE relocation record, with its section name.
    pub fn first_core_relo(&self) -> Option<(&str, &CoreRelo)> {
        self.core_relos
            .iter()
            .find_map(|s| s.records.first().map(|r| (s.section.as_str(), r)))
    }
}

fn parse_block<T>(
    block: &[u8],
    base: usize,
    what: &'static str,
    min_rec: u32,
    btf: &Btf,
    mut rec: impl FnMut(&[u8]) -> Result<T, BtfError>,
) -> Result<Vec<InfoSection<T>>, BtfError> {
    let mut out = Vec::new();
    if block.is_empty() {
        return Ok(out);
    }
    let mut r = Reader::new(block, SEC, base);
    let rec_size = r.u32()?;
    if rec_size < min_rec {
        return Err(BtfError::BadRecordSize {
            what,
            size: rec_size,
        });
    }
    while r.remaining() > 0 {
        let name_off = r.u32()?;
        let count = r.u32()? as usize;
        let section = btf.string(name_off)?.to_string();
        let total = count
            .checked_mul(rec_size as usize)
            .ok_or(BtfError::BadHeader {
                section: SEC,
                reason: "record count overflows",
            })?;
        let raw = r.bytes(total)?;
        let records = raw
            .chunks_exact(rec_size as usize)
            .map(&mut rec)
            .collect::<Result<Vec<T>, BtfError>>()?;
        out.push(InfoSection { section, records });
    }
    Ok(out)
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::tests::blob;

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn ext(func: &[u32], line: &[u32], core: &[u32]) -> Vec<u8> {
        let (f, l, c) = (words(func), words(line), words(core));
        let mut out = Vec::new();
        out.extend_from_slice(&crate::btf::BTF_MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        let hdr = [
            32u32,
            0,
            f.len() as u32,
            f.len() as u32,
            l.len() as u32,
            (f.len() + l.len()) as u32,
            c.len() as u32,
        ];
        out.extend_from_slice(&words(&hdr));
        out.extend_from_slice(&f);
        out.extend_from_slice(&l);
        out.extend_from_slice(&c);
        out
    }

    // strings: 1 "xdp", 5 ".text", 11 "0:1"
    const STRS: &[u8] = b"\0xdp\0.text\x000:1\0";

    #[test]
    fn parses_func_line_and_core_records() {
        let btf = Btf::parse(&blob(&[], STRS)).unwrap();
        let data = ext(
            &[8, 1, 2, 0, 7, 40, 9, 5, 1, 0, 11],
            &[16, 1, 1, 0, 0, 0, 0],
            &[16, 1, 1, 24, 3, 11, 0],
        );
        let e = BtfExt::parse(&data, &btf).unwrap();
        assert_eq!(e.func_info.len(), 2);
        assert_eq!(e.func_info[0].section, "xdp");
        assert_eq!(
            e.func_info[0].records,
            vec![
                FuncInfo {
                    insn_off: 0,
                    type_id: 7
                },
                FuncInfo {
                    insn_off: 40,
                    type_id: 9
                }
            ]
        );
        assert_eq!(e.func_info[1].section, ".text");
        assert_eq!(e.line_info_count, 1);
        let (sec, relo) = e.first_core_relo().unwrap();
        assert_eq!(sec, "xdp");
        assert_eq!(
            relo,
            &CoreRelo {
                insn_off: 24,
                type_id: 3,
                access: "0:1".into(),
                kind: 0
            }
        );
    }

    #[test]
    fn old_header_without_core_block() {
        let btf = Btf::parse(&blob(&[], STRS)).unwrap();
        let mut data = Vec::new();
        data.extend_from_slice(&crate::btf::BTF_MAGIC.to_le_bytes());
        data.extend_from_slice(&[1, 0]);
        data.extend_from_slice(&words(&[24, 0, 20, 20, 0, 8, 1, 1, 0, 4]));
        let e = BtfExt::parse(&data, &btf).unwrap();
        assert_eq!(
            e.func_info[0].records,
            vec![FuncInfo {
                insn_off: 0,
                type_id: 4
            }]
        );
        assert!(e.core_relos.is_empty());
    }

    #[test]
    fn rejects_corrupt_blocks() {
        let btf = Btf::parse(&blob(&[], STRS)).unwrap();
        let good = ext(&[8, 1, 1, 0, 7], &[], &[16, 1, 1, 24, 3, 11, 0]);
        for len in 0..good.len() {
            assert!(BtfExt::parse(&good[..len], &btf).is_err(), "len {len}");
        }
        // Record size below the minimum.
        let small = ext(&[4, 1, 1, 0], &[], &[]);
        assert_eq!(
            BtfExt::parse(&small, &btf),
            Err(BtfError::BadRecordSize {
                what: "func_info",
                size: 4
            })
        );
        // A huge record count.
        let huge = ext(&[8, 1, u32::MAX, 0, 7], &[], &[]);
        assert!(BtfExt::parse(&huge, &btf).is_err());
        // Bad section name offset.
        let bad_name = ext(&[8, 999, 1, 0, 7], &[], &[]);
        assert_eq!(
            BtfExt::parse(&bad_name, &btf),
            Err(BtfError::BadString { offset: 999 })
        );
    }
}
