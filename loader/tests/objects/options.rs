//! Load options on the `options` fixture: a program in section "xdp_legacy"
//! (unknown to libbpf 1.x), a hash map declared with max_entries 0, `.rodata`
//! configuration, and a TC program with a `.kconfig` extern and a kfunc call.
//! Expected offsets and sizes of variables come from the ELF symbol table.

use loader::{
    LoadOptions, MapKind, Object, OptionError, ParseError, ProgramFilter, ProgramType, RelocError,
};
use object::{Object as _, ObjectSymbol as _};

use super::{fixture, CPUS};

/// (offset, size) of a symbol, from the ELF symbol table.
fn symbol(bytes: &[u8], name: &str) -> (usize, usize) {
    let file = object::File::parse(bytes).unwrap();
    let s = file.symbols().find(|s| s.name() == Ok(name)).unwrap();
    (s.address() as usize, s.size() as usize)
}

fn xdp_only() -> LoadOptions {
    LoadOptions {
        program_types: vec![("xdp_legacy".into(), ProgramType::Xdp)],
        programs: ProgramFilter::Types(vec![ProgramType::Xdp]),
        ..LoadOptions::without_target_btf()
    }
}

#[test]
fn by_default_the_tc_program_fails_the_object() {
    for cpu in CPUS {
        let name = format!("options.{cpu}.o");
        let err = Object::parse(&fixture(&name)).unwrap_err();
        assert!(
            matches!(&err, ParseError::Reloc(RelocError::Extern { section, name, .. }) if section == "tc" && name == "CONFIG_HZ"),
            "{name}: {err}"
        );
    }
}

#[test]
fn forced_type_and_other_types_ignored() {
    for cpu in CPUS {
        let name = format!("options.{cpu}.o");
        let obj = Object::parse_with(&fixture(&name), &xdp_only())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(obj.programs.len(), 1, "{name}");
        let p = &obj.programs[0];
        assert_eq!(
            (p.name.as_str(), p.section.as_str()),
            ("opt_xdp", "xdp_legacy")
        );
        assert_eq!(p.prog_type, ProgramType::Xdp);
        assert!(!p.frags);

        // Without the forced type the section is unknown, so no XDP program.
        let opts = LoadOptions {
            programs: ProgramFilter::Types(vec![ProgramType::Xdp]),
            ..LoadOptions::without_target_btf()
        };
        let obj = Object::parse_with(&fixture(&name), &opts).unwrap();
        assert!(obj.programs.is_empty());

        // By name; the type is forced afterwards.
        let opts = LoadOptions {
            programs: ProgramFilter::Named(vec!["opt_xdp".into()]),
            ..LoadOptions::without_target_btf()
        };
        let mut obj = Object::parse_with(&fixture(&name), &opts).unwrap();
        assert_eq!(obj.programs[0].prog_type, ProgramType::Unknown);
        obj.set_program_type("opt_xdp", ProgramType::Xdp).unwrap();
        assert_eq!(obj.programs[0].prog_type, ProgramType::Xdp);
        assert!(matches!(
            obj.set_program_type("nope", ProgramType::Xdp),
            Err(OptionError::NoSuchProgram { .. })
        ));

        // Selecting the TC program brings its errors back.
        let opts = LoadOptions {
            programs: ProgramFilter::Named(vec!["tc".into()]),
            ..LoadOptions::without_target_btf()
        };
        let err = Object::parse_with(&fixture(&name), &opts).unwrap_err();
        assert!(
            matches!(err, ParseError::Reloc(RelocError::Extern { .. })),
            "{err}"
        );

        // Unknown names are errors.
        for opts in [
            LoadOptions {
                programs: ProgramFilter::Named(vec!["nope".into()]),
                ..LoadOptions::without_target_btf()
            },
            LoadOptions {
                program_types: vec![("nope".into(), ProgramType::Xdp)],
                ..xdp_only()
            },
        ] {
            let err = Object::parse_with(&fixture(&name), &opts).unwrap_err();
            let ParseError::Option(OptionError::NoSuchProgram { name: n, available }) = err else {
                panic!("{err}")
            };
            assert_eq!(n, "nope");
            assert!(available.contains("opt_xdp") && available.contains("opt_tc"));
        }
    }
}

#[test]
fn max_entries_before_creation() {
    for cpu in CPUS {
        let name = format!("options.{cpu}.o");
        let obj = Object::parse_with(&fixture(&name), &xdp_only()).unwrap();
        let i = obj.map_index("sized_later").unwrap();
        assert_eq!(obj.maps[i].max_entries, 0, "as declared in options.c");

        let opts = LoadOptions {
            max_entries: vec![("sized_later".into(), 1024)],
            ..xdp_only()
        };
        let mut obj = Object::parse_with(&fixture(&name), &opts).unwrap();
        assert_eq!(obj.maps[i].max_entries, 1024);
        obj.set_max_entries("sized_later", 7).unwrap();
        assert_eq!(obj.maps[i].max_entries, 7);
        assert!(matches!(
            obj.set_max_entries("nope", 1),
            Err(OptionError::NoSuchMap { .. })
        ));
        assert_eq!(
            obj.set_max_entries(".rodata", 2),
            Err(OptionError::NotRegularMap {
                name: ".rodata".into()
            })
        );
        let opts = LoadOptions {
            max_entries: vec![("nope".into(), 1)],
            ..xdp_only()
        };
        assert!(matches!(
            Object::parse_with(&fixture(&name), &opts),
            Err(ParseError::Option(OptionError::NoSuchMap { .. }))
        ));
    }
}

#[test]
fn rodata_before_load() {
    for cpu in CPUS {
        let name = format!("options.{cpu}.o");
        let bytes = fixture(&name);
        let (verdict_off, verdict_size) = symbol(&bytes, "cfg_verdict");
        let (mac_off, mac_size) = symbol(&bytes, "cfg_mac");
        let (limit_off, _) = symbol(&bytes, "cfg_limit");
        assert_eq!((verdict_size, mac_size), (4, 6));

        let opts = LoadOptions {
            rodata: vec![
                ("cfg_verdict".into(), 1u32.to_le_bytes().to_vec()),
                ("cfg_mac".into(), vec![2, 0, 0, 0, 0, 1]),
            ],
            ..xdp_only()
        };
        let mut obj = Object::parse_with(&bytes, &opts).unwrap();
        let ro = obj.map_index(".rodata").unwrap();
        assert_eq!(obj.maps[ro].kind, MapKind::Rodata);
        let data = obj.maps[ro].initial_data.clone().unwrap();
        assert_eq!(&data[verdict_off..verdict_off + 4], &[1, 0, 0, 0]);
        assert_eq!(&data[mac_off..mac_off + 6], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&data[limit_off..limit_off + 8], &100u64.to_le_bytes());

        obj.set_rodata("cfg_limit", &5u64.to_le_bytes()).unwrap();
        let data = obj.maps[ro].initial_data.as_ref().unwrap();
        assert_eq!(&data[limit_off..limit_off + 8], &5u64.to_le_bytes());

        assert_eq!(
            obj.set_rodata("cfg_mac", &[1, 2, 3, 4]),
            Err(OptionError::SizeMismatch {
                name: "cfg_mac".into(),
                expected: 6,
                got: 4
            })
        );
        assert_eq!(
            obj.set_rodata("nope", &[1]),
            Err(OptionError::NoSuchVariable {
                name: "nope".into()
            })
        );
        let opts = LoadOptions {
            rodata: vec![("cfg_verdict".into(), vec![1])],
            ..xdp_only()
        };
        assert!(matches!(
            Object::parse_with(&bytes, &opts),
            Err(ParseError::Option(OptionError::SizeMismatch { .. }))
        ));
    }
}

#[test]
fn globals_match_the_elf_symbols() {
    // BTF DATASEC offsets and sizes agree with the ELF symbol table.
    for cpu in CPUS {
        let name = format!("globals.{cpu}.o");
        let bytes = fixture(&name);
        let obj = Object::parse(&bytes).unwrap();
        for g in &obj.globals {
            let (off, size) = symbol(&bytes, &g.name);
            assert_eq!(
                (g.offset as usize, g.size as usize),
                (off, size),
                "{name}: {}",
                g.name
            );
        }
        assert!(!obj.globals.is_empty());
        // A .data/.bss variable is not .rodata.
        if let Some(g) = obj
            .globals
            .iter()
            .find(|g| obj.maps[g.map].kind != MapKind::Rodata)
        {
            let mut obj = obj.clone();
            let err = obj.set_rodata(&g.name.clone(), &vec![0; g.size as usize]);
            assert!(matches!(err, Err(OptionError::NotRodata { .. })), "{err:?}");
            obj.set_global(&g.name.clone(), &vec![0xab; g.size as usize])
                .unwrap();
        }
    }
}
