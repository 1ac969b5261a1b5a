//! Store records checked before they are handed to an application. The kernel
//! verifies every BTF object, map and program before user space can query it,
//! and tools such as bpftool rely on that (they follow type ids without
//! checking them); a store is a file anyone who could write it may have
//! changed. So every id, size and count the shim answers from a store is
//! checked here first; a record that fails is refused with EUCLEAN and the
//! reason is logged (`XDPSHIM_LOG=1`).

use loader::btf::{Btf, BtfKind};

use crate::error::StoreDataError;
use crate::state;
use crate::user::Errno;

/// The kernel's BPF_COMPLEXITY_LIMIT_INSNS: no program holds more.
pub const MAX_INSNS: u32 = 1_000_000;

fn refuse(e: StoreDataError) -> Errno {
    state::log_once(&e.to_string(), &e.to_string());
    e.errno()
}

/// The data of BTF object `id`, checked as the kernel's BTF verifier would
/// have: it parses, every type id it refers to exists, every name is a
/// string of its string section, a FUNC names a FUNC_PROTO, and no type
/// contains itself by value (a loop a formatter would follow forever).
pub fn btf_data(store: &maps::Store, id: u32) -> Result<Vec<u8>, Errno> {
    let data = store.btf_data(id).map_err(|e| e.errno())?;
    check_btf(&data).map_err(|(_, what)| refuse(StoreDataError::Btf { id, what }))?;
    Ok(data)
}

/// [`btf_data`]'s checks on raw BTF bytes. The error carries the errno the
/// kernel's BPF_BTF_LOAD gives for the same fault (EEXIST for a loop, as its
/// "Loop detected", else EINVAL) and the reason.
pub fn check_btf(data: &[u8]) -> Result<Btf, (Errno, String)> {
    check_btf_inner(data).map_err(|what| {
        let errno = if what.contains("contains itself") {
            libc::EEXIST
        } else {
            libc::EINVAL
        };
        (errno, what)
    })
}

fn check_btf_inner(data: &[u8]) -> Result<Btf, String> {
    if data.is_empty() || data.len() > maps::MAX_BTF_SIZE {
        return Err(format!("{} bytes", data.len()));
    }
    let btf = Btf::parse(data).map_err(|e| e.to_string())?;
    let n = btf.len();
    let id_ok = |t: u32| (t as usize) < n;
    let name_ok = |off: u32| btf.string(off).is_ok();
    // By-value edges (what a value of the type contains), for the loop check.
    let mut edges: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (id, t) in btf.types() {
        let mut refs: Vec<u32> = Vec::new();
        let mut names: Vec<u32> = Vec::new();
        let mut by_value = true;
        match &t.kind {
            BtfKind::Void | BtfKind::Int { .. } | BtfKind::Fwd | BtfKind::Float { .. } => {}
            BtfKind::Ptr { type_id } => {
                refs.push(*type_id);
                by_value = false;
            }
            BtfKind::Array {
                elem_type,
                index_type,
                ..
            } => {
                refs.push(*elem_type);
                if !id_ok(*index_type) {
                    return Err(format!("type {id}: index type {index_type} out of range"));
                }
            }
            BtfKind::Struct { members, .. } | BtfKind::Union { members, .. } => {
                for m in members {
                    refs.push(m.type_id);
                    names.push(m.name_off);
                }
            }
            BtfKind::Enum { values, .. } => names.extend(values.iter().map(|v| v.name_off)),
            BtfKind::Enum64 { values, .. } => names.extend(values.iter().map(|v| v.name_off)),
            BtfKind::Typedef { type_id }
            | BtfKind::Volatile { type_id }
            | BtfKind::Const { type_id }
            | BtfKind::Restrict { type_id }
            | BtfKind::TypeTag { type_id }
            | BtfKind::Var { type_id, .. }
            | BtfKind::DeclTag { type_id, .. } => refs.push(*type_id),
            BtfKind::Func { type_id, .. } => {
                if !matches!(
                    btf.type_by_id(*type_id).map(|t| &t.kind),
                    Ok(BtfKind::FuncProto { .. })
                ) {
                    return Err(format!(
                        "type {id}: FUNC type {type_id} is not a FUNC_PROTO"
                    ));
                }
                by_value = false;
            }
            BtfKind::FuncProto {
                return_type,
                params,
            } => {
                refs.push(*return_type);
                for p in params {
                    refs.push(p.type_id);
                    names.push(p.name_off);
                }
                by_value = false;
            }
            BtfKind::Datasec { vars, .. } => refs.extend(vars.iter().map(|v| v.type_id)),
        }
        if let Some(bad) = refs.iter().find(|&&r| !id_ok(r)) {
            return Err(format!(
                "type {id} refers to type {bad}, beyond the last ({})",
                n - 1
            ));
        }
        if let Some(bad) = names.iter().find(|&&o| !name_ok(o)) {
            return Err(format!("type {id}: name offset {bad} outside the strings"));
        }
        if by_value {
            edges[id as usize] = refs;
        }
    }
    // Iterative DFS over by-value edges: 0 unvisited, 1 on the path, 2 done.
    let mut state = vec![0u8; n];
    for root in 0..n {
        if state[root] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        state[root] = 1;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if let Some(&w) = edges[v].get(*next) {
                *next += 1;
                let w = w as usize;
                match state[w] {
                    0 => {
                        state[w] = 1;
                        stack.push((w, 0));
                    }
                    1 => return Err(format!("type {w} contains itself")),
                    _ => {}
                }
            } else {
                state[v] = 2;
                stack.pop();
            }
        }
    }
    Ok(btf)
}

/// Map `id`, its BTF references checked: a BTF object that passes
/// [`check_btf`], type ids inside it whose sizes are the map's key and value
/// sizes, and no type id without a BTF object.
pub fn map(store: &maps::Store, id: u32) -> Result<maps::Map, Errno> {
    let m = store.map_by_id(id).map_err(|e| e.errno())?;
    let i = m.info();
    let bad = |what: String| refuse(StoreDataError::Map { id, what });
    if i.btf_id == 0 {
        if i.btf_key_type_id != 0 || i.btf_value_type_id != 0 {
            return Err(bad("BTF type ids without a BTF object".into()));
        }
        return Ok(m);
    }
    let data = btf_data(store, i.btf_id)?;
    let btf = check_btf(&data).map_err(|(_, what)| bad(format!("BTF {}: {what}", i.btf_id)))?;
    for (what, tid, size) in [
        ("key", i.btf_key_type_id, i.key_size),
        ("value", i.btf_value_type_id, i.value_size),
    ] {
        if tid == 0 {
            continue;
        }
        match btf.type_size(tid) {
            Ok(s) if s == u64::from(size) => {}
            Ok(s) => {
                return Err(bad(format!(
                    "{what} type {tid} is {s} bytes, the {what} {size}"
                )))
            }
            Err(e) => return Err(bad(format!("{what} type {tid}: {e}"))),
        }
    }
    Ok(m)
}

/// Program `id` with its record checked: an instruction count within the
/// kernel's limit matching its stored instructions, a name the kernel would
/// have taken, and a BTF object that exists and passes [`check_btf`].
/// Returns the record and its instructions.
pub fn program(store: &maps::Store, id: u32) -> Result<(maps::ProgramInfo, Vec<u8>), Errno> {
    let p = store.program_by_id(id).map_err(|e| e.errno())?;
    let bad = |what: String| refuse(StoreDataError::Program { id, what });
    if p.insn_cnt == 0 || p.insn_cnt > MAX_INSNS {
        return Err(bad(format!("{} instructions", p.insn_cnt)));
    }
    let insns = match store.program_insns(id) {
        Ok(insns) => insns,
        // The store's own check of the count against the stored instructions.
        Err(maps::ObjectError::Corrupt { .. }) => {
            return Err(bad(format!("{} instructions recorded", p.insn_cnt)))
        }
        Err(e) => return Err(e.errno()),
    };
    if insns.len() as u64 != u64::from(p.insn_cnt) * 8 {
        return Err(bad(format!(
            "{} instructions recorded, {} bytes stored",
            p.insn_cnt,
            insns.len()
        )));
    }
    if p.name.len() > 15
        || !p
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    {
        return Err(bad(format!("name {:?}", p.name)));
    }
    if p.btf_id != 0 {
        btf_data(store, p.btf_id)?;
    }
    Ok((p, insns))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF object of `types` (each a list of u32 words) and strings "\0a\0".
    fn btf(types: &[&[u32]]) -> Vec<u8> {
        let words: Vec<u32> = types.iter().flat_map(|t| t.iter().copied()).collect();
        let tlen = (words.len() * 4) as u32;
        let mut out = Vec::new();
        for w in [0x0001_eb9fu32, 24, 0, tlen, tlen, 3] {
            out.extend_from_slice(&w.to_ne_bytes());
        }
        for w in words {
            out.extend_from_slice(&w.to_ne_bytes());
        }
        out.extend_from_slice(b"\0a\0");
        out
    }

    const INT: &[u32] = &[1, 1 << 24, 4, 32];

    #[test]
    fn btf_references_are_checked() {
        // [1] int, [2] typedef a -> 1
        assert!(check_btf_inner(&btf(&[INT, &[1, 8 << 24, 1]])).is_ok());
        // typedef -> 7: out of range.
        let e = check_btf_inner(&btf(&[INT, &[1, 8 << 24, 7]])).unwrap_err();
        assert!(e.contains("refers to type 7"), "{e}");
        // struct a { int a; } with a member of type 9.
        let e = check_btf_inner(&btf(&[INT, &[1, (4 << 24) | 1, 4, 1, 9, 0]])).unwrap_err();
        assert!(e.contains("type 9"), "{e}");
        // Member name offset outside the strings.
        let e = check_btf_inner(&btf(&[INT, &[1, (4 << 24) | 1, 4, 99, 1, 0]])).unwrap_err();
        assert!(e.contains("name offset 99"), "{e}");
        // typedef 2 -> 3, typedef 3 -> 2: a loop.
        let e = check_btf_inner(&btf(&[INT, &[1, 8 << 24, 3], &[1, 8 << 24, 2]])).unwrap_err();
        assert!(e.contains("contains itself"), "{e}");
        // A struct holding a pointer to itself is fine: struct a { a *a; }.
        assert!(
            check_btf_inner(&btf(&[&[1, (4 << 24) | 1, 8, 1, 2, 0], &[0, 2 << 24, 1]])).is_ok()
        );
        // FUNC naming an INT.
        let e = check_btf_inner(&btf(&[INT, &[1, 12 << 24, 1]])).unwrap_err();
        assert!(e.contains("not a FUNC_PROTO"), "{e}");
    }
}
