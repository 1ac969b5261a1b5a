//! The kernel's `map_check_btf` for BPF_MAP_CREATE with BTF type ids: which
//! map types take BTF, and the sizes the types must have. libbpf relies on the
//! refusals (it retries without BTF and says so), so they are answered as the
//! kernel answers them (checked against it with raw bpf(2) calls).

use loader::btf::{Btf, BtfKind};

use crate::bpf::ENOTSUPP;
use crate::user::Errno;

/// Checks a map definition's BTF key and value types against the BTF object
/// whose bytes are `btf`. Called only when a type id is given.
pub fn check(def: &maps::MapDef, btf: &[u8]) -> Result<(), Errno> {
    let einval = Err(libc::EINVAL);
    if def.btf_value_type_id == 0 {
        return einval;
    }
    let Ok(btf) = Btf::parse(btf) else {
        return einval;
    };
    let size = |id: u32| btf.type_size(id).ok();
    let t = def.map_type;
    // Map types with a map_check_btf operation (the others need a key type).
    let no_btf = matches!(
        t,
        maps::BPF_MAP_TYPE_ARRAY_OF_MAPS
            | maps::BPF_MAP_TYPE_HASH_OF_MAPS
            | maps::BPF_MAP_TYPE_DEVMAP
            | maps::BPF_MAP_TYPE_DEVMAP_HASH
            | maps::BPF_MAP_TYPE_CPUMAP
            | maps::BPF_MAP_TYPE_XSKMAP
            | maps::BPF_MAP_TYPE_PERF_EVENT_ARRAY
    );
    let is_array = matches!(
        t,
        maps::BPF_MAP_TYPE_ARRAY | maps::BPF_MAP_TYPE_PERCPU_ARRAY
    );
    // bloom_map_check_btf: no key (void), any value.
    let bloom = t == maps::BPF_MAP_TYPE_BLOOM_FILTER;
    let has_check = no_btf || is_array || bloom || t == maps::BPF_MAP_TYPE_LPM_TRIE;
    if def.btf_key_type_id != 0 {
        if size(def.btf_key_type_id) != Some(u64::from(def.key_size)) {
            return einval;
        }
    } else if !has_check {
        return einval;
    }
    if size(def.btf_value_type_id) != Some(u64::from(def.value_size)) {
        return einval;
    }
    if no_btf {
        return Err(ENOTSUPP);
    }
    if bloom {
        return if def.btf_key_type_id == 0 {
            Ok(())
        } else {
            einval
        };
    }
    let key = (def.btf_key_type_id != 0)
        .then(|| {
            btf.resolved_type(def.btf_key_type_id)
                .ok()
                .map(|(_, k)| &k.kind)
        })
        .flatten();
    if is_array {
        // array_map_check_btf: a u32 key, or no key for a one-element ARRAY
        // (global data).
        return match key {
            None if t == maps::BPF_MAP_TYPE_ARRAY && def.max_entries == 1 => Ok(()),
            Some(BtfKind::Int {
                bits: 32,
                offset: 0,
                ..
            }) => Ok(()),
            _ => einval,
        };
    }
    if t == maps::BPF_MAP_TYPE_LPM_TRIE && !matches!(key, Some(BtfKind::Struct { .. })) {
        // trie_check_btf: the key is a struct.
        return einval;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BTF with one type: [1] `int`, 4 bytes, signed, 32 bits.
    fn int_btf() -> Vec<u8> {
        let strs = b"\0int\0";
        let mut types = Vec::new();
        for w in [1u32, 1 << 24, 4, (1 << 24) | 32] {
            types.extend_from_slice(&w.to_le_bytes());
        }
        let mut b = Vec::new();
        b.extend_from_slice(&0xeb9fu16.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strs.len() as u32,
        ] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(&types);
        b.extend_from_slice(strs);
        b
    }

    fn def(map_type: u32, key: u32, value: u32, max: u32, tids: (u32, u32)) -> maps::MapDef {
        maps::MapDef {
            map_type,
            key_size: key,
            value_size: value,
            max_entries: max,
            btf_key_type_id: tids.0,
            btf_value_type_id: tids.1,
            name: "m".into(),
            ..maps::MapDef::default()
        }
    }

    /// The kernel's answers (6.18, raw BPF_MAP_CREATE with an `int` BTF) for
    /// 4-byte keys and values, 4 entries, and type ids (key, value).
    #[test]
    fn answers_as_the_kernel() {
        let btf = int_btf();
        let e = |t, tids| check(&def(t, 4, 4, 4, tids), &btf).err();
        for t in [
            maps::BPF_MAP_TYPE_PROG_ARRAY,
            maps::BPF_MAP_TYPE_ARRAY,
            maps::BPF_MAP_TYPE_HASH,
            maps::BPF_MAP_TYPE_LRU_HASH,
        ] {
            assert_eq!(e(t, (1, 1)), None, "type {t}");
            assert_eq!(e(t, (1, 0)), Some(libc::EINVAL), "type {t}");
            assert_eq!(e(t, (0, 1)), Some(libc::EINVAL), "type {t}");
        }
        for t in [
            maps::BPF_MAP_TYPE_ARRAY_OF_MAPS,
            maps::BPF_MAP_TYPE_HASH_OF_MAPS,
            maps::BPF_MAP_TYPE_DEVMAP,
            maps::BPF_MAP_TYPE_DEVMAP_HASH,
            maps::BPF_MAP_TYPE_CPUMAP,
            maps::BPF_MAP_TYPE_XSKMAP,
            maps::BPF_MAP_TYPE_PERF_EVENT_ARRAY,
        ] {
            assert_eq!(e(t, (1, 1)), Some(ENOTSUPP), "type {t}");
            assert_eq!(e(t, (1, 0)), Some(libc::EINVAL), "type {t}");
            assert_eq!(e(t, (0, 1)), Some(ENOTSUPP), "type {t}");
        }
        // A value type of the wrong size (ringbuf values are 0 bytes).
        let rb = def(maps::BPF_MAP_TYPE_RINGBUF, 0, 0, 4096, (0, 1));
        assert_eq!(check(&rb, &btf).err(), Some(libc::EINVAL));
        // Global data: a one-element array without a key type.
        let data = def(maps::BPF_MAP_TYPE_ARRAY, 4, 4, 1, (0, 1));
        assert_eq!(check(&data, &btf).err(), None);
        // Unparsable BTF.
        assert_eq!(
            check(&def(maps::BPF_MAP_TYPE_HASH, 4, 4, 4, (1, 1)), b"junk").err(),
            Some(libc::EINVAL)
        );
    }
}
