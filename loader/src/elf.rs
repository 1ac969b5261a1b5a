//! The ELF layer: checks the header and copies sections, symbols and `SHT_REL`
//! entries into plain structs, so the rest of the loader never touches the
//! `object` crate or raw offsets.

use object::elf::{self, FileHeader64};
use object::read::elf::{FileHeader as _, SectionHeader as _, Sym as _};
use object::Endianness;

use crate::error::ParseError;

/// `e_machine` of BPF objects.
pub const EM_BPF: u16 = 247;

pub(crate) struct Section<'a> {
    pub name: String,
    pub sh_type: u32,
    pub flags: u64,
    /// `sh_size`; for `SHT_NOBITS` the data is empty but the size is not.
    pub size: u64,
    pub data: &'a [u8],
    pub info: u32,
}

impl Section<'_> {
    pub fn is_exec(&self) -> bool {
        self.sh_type == elf::SHT_PROGBITS && self.flags & u64::from(elf::SHF_EXECINSTR) != 0
    }
}

pub(crate) struct Symbol {
    pub name: String,
    pub value: u64,
    pub size: u64,
    pub st_type: u8,
    pub bind: u8,
    /// `st_shndx`, with `SHN_XINDEX` resolved.
    pub shndx: u32,
}

impl Symbol {
    pub fn is_undefined(&self) -> bool {
        self.shndx == u32::from(elf::SHN_UNDEF)
    }
}

pub(crate) struct Rel {
    pub offset: u64,
    pub symbol: usize,
    pub r_type: u32,
}

pub(crate) struct Elf<'a> {
    /// Index = ELF section index.
    pub sections: Vec<Section<'a>>,
    /// Index = symbol index (0 is the null symbol).
    pub symbols: Vec<Symbol>,
}

impl<'a> Elf<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Elf<'a>, ParseError> {
        if bytes.len() < 16 || bytes[0..4] != elf::ELFMAG {
            return Err(ParseError::NotElf {
                reason: "missing ELF magic",
            });
        }
        if bytes[4] != elf::ELFCLASS64 {
            return Err(ParseError::Not64Bit { class: bytes[4] });
        }
        if bytes[5] != elf::ELFDATA2LSB {
            return Err(ParseError::NotLittleEndian { data: bytes[5] });
        }
        let corrupt = |what| {
            move |e: object::read::Error| ParseError::CorruptElf {
                what,
                reason: e.to_string(),
            }
        };
        let header = FileHeader64::<Endianness>::parse(bytes).map_err(corrupt("header"))?;
        let endian = header.endian().map_err(corrupt("header"))?;
        let machine = header.e_machine(endian);
        if machine != EM_BPF {
            return Err(ParseError::NotBpf { machine });
        }
        let table = header
            .sections(endian, bytes)
            .map_err(corrupt("section table"))?;
        let mut sections = Vec::with_capacity(table.len());
        for (index, sh) in table.iter().enumerate() {
            let name = table
                .section_name(endian, sh)
                .map_err(|_| ParseError::BadSection {
                    index,
                    reason: "name is outside the section name table",
                })?;
            let sh_type = sh.sh_type(endian);
            let data = if sh_type == elf::SHT_NOBITS {
                &[][..]
            } else {
                sh.data(endian, bytes).map_err(|_| ParseError::BadSection {
                    index,
                    reason: "data is outside the file",
                })?
            };
            sections.push(Section {
                name: String::from_utf8_lossy(name).into_owned(),
                sh_type,
                flags: sh.sh_flags(endian),
                size: sh.sh_size(endian),
                data,
                info: sh.sh_info(endian),
            });
        }

        let symtab = table
            .symbols(endian, bytes, elf::SHT_SYMTAB)
            .map_err(corrupt("symbol table"))?;
        let mut symbols = Vec::with_capacity(symtab.len());
        for (index, sym) in symtab.iter().enumerate() {
            let name = symtab
                .symbol_name(endian, sym)
                .map_err(|_| ParseError::BadSymbol {
                    index,
                    reason: "name is outside the string table",
                })?;
            let mut shndx = u32::from(sym.st_shndx(endian));
            if shndx == u32::from(elf::SHN_XINDEX) {
                shndx = symtab.shndx(endian, object::SymbolIndex(index)).ok_or(
                    ParseError::BadSymbol {
                        index,
                        reason: "missing SHT_SYMTAB_SHNDX entry",
                    },
                )?;
            }
            symbols.push(Symbol {
                name: String::from_utf8_lossy(name).into_owned(),
                value: sym.st_value(endian),
                size: sym.st_size(endian),
                st_type: sym.st_type(),
                bind: sym.st_bind(),
                shndx,
            });
        }
        Ok(Elf { sections, symbols })
    }

    /// Index of the first section with this name.
    pub fn section_by_name(&self, name: &str) -> Option<usize> {
        self.sections.iter().position(|s| s.name == name)
    }

    /// Name of section `index`, or "<#index>" when there is none.
    pub fn section_name(&self, index: u32) -> String {
        match self.sections.get(index as usize) {
            Some(s) => s.name.clone(),
            None => format!("<#{index}>"),
        }
    }

    /// The `SHT_REL` entries of relocation section `index`.
    pub fn rels(&self, index: usize) -> Result<Vec<Rel>, ParseError> {
        let data = self.sections[index].data;
        if !data.len().is_multiple_of(16) {
            return Err(ParseError::BadSection {
                index,
                reason: "SHT_REL size is not a multiple of 16",
            });
        }
        Ok(data
            .chunks_exact(16)
            .map(|c| {
                let offset = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
                let info =
                    u64::from_le_bytes([c[8], c[9], c[10], c[11], c[12], c[13], c[14], c[15]]);
                Rel {
                    offset,
                    symbol: (info >> 32) as usize,
                    r_type: (info & 0xffff_ffff) as u32,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBPROGS: &[u8] = include_bytes!("../../bpf-progs/loader/subprogs.v3.o");

    #[test]
    fn reads_sections_symbols_and_rels() {
        let elf = Elf::parse(SUBPROGS).unwrap();
        let text = elf.section_by_name(".text").unwrap();
        assert!(elf.sections[text].is_exec());
        assert_eq!(
            elf.sections[text].data.len() as u64,
            elf.sections[text].size
        );
        let bss = elf.section_by_name(".bss").unwrap();
        assert_eq!(elf.sections[bss].sh_type, elf::SHT_NOBITS);
        assert!(elf.sections[bss].data.is_empty() && elf.sections[bss].size == 8);
        let prog_b = elf.symbols.iter().find(|s| s.name == "prog_b").unwrap();
        assert_eq!(
            (prog_b.st_type, prog_b.bind),
            (elf::STT_FUNC, elf::STB_GLOBAL)
        );
        assert_eq!(prog_b.shndx as usize, elf.section_by_name("xdp").unwrap());
        let rel = elf.section_by_name(".relxdp").unwrap();
        let rels = elf.rels(rel).unwrap();
        // prog_a: global_len, loop_cb, hits, middle; prog_b: leaf (see objdump -r)
        let offsets: Vec<u64> = rels.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [0x10, 0x38, 0x58, 0x90, 0xc8]);
        let types: Vec<u32> = rels.iter().map(|r| r.r_type).collect();
        assert_eq!(types, [10, 1, 1, 10, 10]);
        assert_eq!(elf.symbols[rels[2].symbol].name, "hits");
        assert_eq!(elf.section_name(9999), "<#9999>");
    }

    #[test]
    fn symbol_name_outside_string_table_is_an_error() {
        let mut b = SUBPROGS.to_vec();
        let file = object::read::elf::ElfFile64::<Endianness>::parse(SUBPROGS).unwrap();
        let symtab = file.elf_symbol_table();
        let (off, _) = object::ObjectSection::file_range(
            &object::Object::section_by_index(&file, symtab.section()).unwrap(),
        )
        .unwrap();
        // st_name of symbol #1
        let at = off as usize + 24;
        b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Elf::parse(&b),
            Err(ParseError::BadSymbol { index: 1, .. })
        ));
    }
}
