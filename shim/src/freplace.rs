//! What libxdp's multi-program dispatcher needs beyond plain XDP programs:
//! `BPF_PROG_BIND_MAP` (command 35), extension programs
//! (`BPF_PROG_TYPE_EXT`, loaded against a global function of a loaded
//! program: `attach_prog_fd` + `attach_btf_id`), and their attachment as
//! replacement links, by `BPF_RAW_TRACEPOINT_OPEN` (command 17, with no
//! name: the target given at load) or `BPF_LINK_CREATE` of the extension
//! (the load's target, or one given there; libbpf's attach type is the
//! program's expected one, 0). The links are kept in the
//! store (`maps::Replacement`); the runtime applies them whenever it builds the
//! target program (`runtime::freplace`), so test runs and the data plane run
//! the extension in place of the function.

use std::ffi::c_int;

use loader::btf::{Btf, BtfKind, BTF_LINKAGE_GLOBAL};

use isa::uapi::attr::{
    link_create, link_create_freplace, prog_bind_map, prog_load, raw_tracepoint,
};
use isa::uapi::{BPF_PROG_TYPE_EXT as PROG_TYPE_EXT, BPF_PROG_TYPE_XDP as PROG_TYPE_XDP};

use crate::fds::{self, Obj};
use crate::state;
use crate::user::{self, u32_at, u64_at, Errno};

/// The kernel's MIN_BPF_FUNCINFO_SIZE (`struct bpf_func_info`).
const FUNC_INFO_MIN: u32 = 8;
/// The largest func_info record the kernel accepts (MAX_FUNCINFO_REC_SIZE).
const FUNC_INFO_MAX: u32 = 252;

/// BPF_PROG_BIND_MAP: `flags` must be 0; the program and the map are
/// checked as the kernel's `bpf_prog_get`/`bpf_map_get` (EBADF for no
/// descriptor, EINVAL for one of another kind).
pub fn prog_bind_map(a: &[u8]) -> Result<i64, Errno> {
    if u32_at(a, prog_bind_map::FLAGS) != 0 {
        return Err(libc::EINVAL);
    }
    let prog = match fds::lookup(u32_at(a, prog_bind_map::PROG_FD) as c_int) {
        Some(Obj::Prog(id)) => Some(id),
        // A program of another type, verified and not recorded: nothing to hold.
        Some(Obj::LocalProg(_)) => None,
        Some(_) => return Err(libc::EINVAL),
        None => return Err(libc::EBADF),
    };
    let map = match fds::lookup(u32_at(a, prog_bind_map::MAP_FD) as c_int) {
        Some(Obj::Map(id)) => id,
        Some(_) => return Err(libc::EINVAL),
        None => return Err(libc::EBADF),
    };
    if let Some(prog) = prog {
        state::store()?.bind_map(prog, map).map_err(|e| e.errno())?;
    }
    Ok(0)
}

/// The `func_info` records of a BPF_PROG_LOAD: `(insn_off, type_id)` each,
/// checked as the kernel's `check_btf_func` checks their shape (record size,
/// first at 0, increasing offsets inside the program, FUNC types).
pub fn func_info(
    a: &[u8],
    btf: Option<&Btf>,
    insn_cnt: u32,
) -> Result<Vec<(u32, u32)>, (Errno, String)> {
    let cnt = u32_at(a, prog_load::FUNC_INFO_CNT);
    if cnt == 0 {
        return Ok(Vec::new());
    }
    let Some(btf) = btf else {
        return Err((libc::EINVAL, "func_info without prog_btf_fd".into()));
    };
    let rec = u32_at(a, prog_load::FUNC_INFO_REC_SIZE);
    if !(FUNC_INFO_MIN..=FUNC_INFO_MAX).contains(&rec) || !rec.is_multiple_of(4) {
        return Err((libc::EINVAL, format!("invalid func info rec size {rec}")));
    }
    if cnt > insn_cnt {
        return Err((
            libc::EINVAL,
            format!("func_info_cnt {cnt} > insn_cnt {insn_cnt}"),
        ));
    }
    let bytes = user::read(u64_at(a, prog_load::FUNC_INFO), cnt as usize * rec as usize)
        .map_err(|e| (e, "func_info".to_string()))?;
    let mut out = Vec::with_capacity(cnt as usize);
    for (i, r) in bytes.chunks_exact(rec as usize).enumerate() {
        let off = u32::from_ne_bytes([r[0], r[1], r[2], r[3]]);
        let tid = u32::from_ne_bytes([r[4], r[5], r[6], r[7]]);
        let prev = out.last().map(|&(o, _)| o);
        if i == 0 && off != 0 {
            return Err((
                libc::EINVAL,
                format!("nonzero insn_off {off} for the first func info record"),
            ));
        }
        if prev.is_some_and(|p| off <= p) || off >= insn_cnt {
            return Err((
                libc::EINVAL,
                format!("func_info BTF section doesn't match subprog layout in BPF program (insn_off {off})"),
            ));
        }
        match btf.type_by_id(tid).map(|t| &t.kind) {
            Ok(BtfKind::Func { .. }) => {}
            _ => return Err((libc::EINVAL, format!("invalid type id {tid} in func info"))),
        }
        out.push((off, tid));
    }
    Ok(out)
}

/// For a BPF_PROG_LOAD of an extension program: the target program (from
/// `attach_prog_fd`) and the start slot of the replaced function, checked as
/// the kernel's `bpf_check_attach_target`: the target has BTF, the id names a
/// FUNC of it that starts one of its functions and is global, and the
/// extension's own function has the same prototype. Errors carry the
/// kernel's log line.
pub fn ext_target(
    a: &[u8],
    ext_btf: Option<&Btf>,
    ext_funcs: &[(u32, u32)],
) -> Result<maps::ProgramBtfInfo, (Errno, String)> {
    let btf_id = u32_at(a, prog_load::ATTACH_BTF_ID);
    let fd = u32_at(a, prog_load::ATTACH_PROG_FD) as c_int;
    if u32_at(a, prog_load::EXPECTED_ATTACH_TYPE) != 0 {
        return Err((libc::EINVAL, String::new()));
    }
    if btf_id == 0 {
        return Err((libc::EINVAL, "Tracing programs must provide btf_id".into()));
    }
    if fd == 0 {
        // The kernel looks the id up in vmlinux BTF (libbpf's feature probe of
        // the program type counts this answer as "supported").
        return Err((libc::EINVAL, "Cannot replace kernel functions".into()));
    }
    let target = match fds::lookup(fd) {
        Some(Obj::Prog(id)) => id,
        Some(_) => return Err((libc::EINVAL, String::new())),
        None => return Err((libc::EBADF, String::new())),
    };
    let store = state::store().map_err(|e| (e, String::new()))?;
    let tp = store
        .program_by_id(target)
        .map_err(|e| (e.errno(), String::new()))?;
    if tp.prog_type == PROG_TYPE_EXT {
        return Err((libc::EINVAL, "Cannot extend fentry/fexit\n".into()));
    }
    let tinfo = store
        .program_btf_info(target)
        .map_err(|e| (e.errno(), String::new()))?;
    let no_btf = || {
        (
            libc::EINVAL,
            "FENTRY/FEXIT program can only be attached to another program annotated with BTF"
                .to_string(),
        )
    };
    if tp.btf_id == 0 || tinfo.func_info.is_empty() {
        return Err(no_btf());
    }
    let tdata = store.btf_data(tp.btf_id).map_err(|_| no_btf())?;
    let tbtf = Btf::parse(&tdata).map_err(|_| no_btf())?;
    let t = tbtf
        .type_by_id(btf_id)
        .map_err(|_| (libc::EINVAL, format!("attach_btf_id {btf_id} is invalid")))?;
    let tname = tbtf.string(t.name_off).unwrap_or("").to_string();
    if tname.is_empty() {
        return Err((
            libc::EINVAL,
            format!("attach_btf_id {btf_id} doesn't have a name"),
        ));
    }
    let Some(&(start, _)) = tinfo.func_info.iter().find(|&&(_, tid)| tid == btf_id) else {
        return Err((libc::EINVAL, format!("Subprog {tname} doesn't exist")));
    };
    let BtfKind::Func {
        type_id: tproto,
        linkage,
    } = t.kind
    else {
        return Err((
            libc::EINVAL,
            format!("attach_btf_id {btf_id} is not a function"),
        ));
    };
    if linkage != BTF_LINKAGE_GLOBAL {
        // Static functions may have been inlined or changed by the compiler.
        return Err((libc::EINVAL, "Cannot replace static functions".into()));
    }
    // The extension's own function (its func_info[0]) against the target's.
    let ext = ext_btf.zip(ext_funcs.first());
    let Some((ebtf, &(_, etid))) = ext else {
        return Err((
            libc::EINVAL,
            "Extension programs should have BTF func_info".into(),
        ));
    };
    let (ename, eproto) = match ebtf.type_by_id(etid).map(|t| (t.name_off, &t.kind)) {
        Ok((n, BtfKind::Func { type_id, .. })) => {
            (ebtf.string(n).unwrap_or("").to_string(), *type_id)
        }
        _ => return Err((libc::EINVAL, format!("invalid type id {etid} in func info"))),
    };
    protos_match(ebtf, &ename, eproto, &tbtf, &tname, tproto).map_err(|m| (libc::EINVAL, m))?;
    if tp.prog_type != PROG_TYPE_XDP {
        return Err((libc::EINVAL, String::new()));
    }
    Ok(maps::ProgramBtfInfo {
        func_info: ext_funcs.to_vec(),
        attach_prog: target,
        attach_btf_id: btf_id,
        attach_func_start: start,
    })
}

/// The type behind typedefs and qualifiers.
fn skip_mods(btf: &Btf, mut id: u32) -> Option<(u32, &BtfKind)> {
    for _ in 0..32 {
        let t = btf.type_by_id(id).ok()?;
        match &t.kind {
            BtfKind::Typedef { type_id }
            | BtfKind::Volatile { type_id }
            | BtfKind::Const { type_id }
            | BtfKind::Restrict { type_id }
            | BtfKind::TypeTag { type_id } => id = *type_id,
            k => return Some((id, k)),
        }
    }
    None
}

/// The kernel's `btf_check_func_type_match`: the same number of arguments,
/// integers (and enums) of the same size, pointers to structs of the same
/// name; the log line of the first difference.
fn protos_match(b1: &Btf, n1: &str, p1: u32, b2: &Btf, n2: &str, p2: u32) -> Result<(), String> {
    let proto = |b: &Btf, p: u32| match b.type_by_id(p).map(|t| &t.kind) {
        Ok(BtfKind::FuncProto {
            return_type,
            params,
        }) => Some((
            *return_type,
            params.iter().map(|x| x.type_id).collect::<Vec<u32>>(),
        )),
        _ => None,
    };
    let (Some((r1, a1)), Some((r2, a2))) = (proto(b1, p1), proto(b2, p2)) else {
        return Err(format!("{n1}() is not a function"));
    };
    if a1.len() != a2.len() {
        return Err(format!(
            "{n1}() has {} args while {n2}() has {} args",
            a1.len(),
            a2.len()
        ));
    }
    let scalar_size = |b: &Btf, id: u32| match skip_mods(b, id).map(|(_, k)| k) {
        Some(
            BtfKind::Int { size, .. } | BtfKind::Enum { size, .. } | BtfKind::Enum64 { size, .. },
        ) => Some(*size),
        _ => None,
    };
    match (scalar_size(b1, r1), scalar_size(b2, r2)) {
        (Some(x), Some(y)) if x == y => {}
        _ => return Err(format!("Return type of {n1}() doesn't match {n2}()")),
    }
    for (i, (&x, &y)) in a1.iter().zip(&a2).enumerate() {
        let (k1, k2) = (skip_mods(b1, x), skip_mods(b2, y));
        match (k1.map(|k| k.1), k2.map(|k| k.1)) {
            (Some(BtfKind::Ptr { type_id: t1 }), Some(BtfKind::Ptr { type_id: t2 })) => {
                let s = |b: &Btf, t: u32| match skip_mods(b, t) {
                    Some((id, BtfKind::Struct { .. })) => b.type_name(id).ok().map(str::to_string),
                    _ => None,
                };
                match (s(b1, *t1), s(b2, *t2)) {
                    (Some(x), Some(y)) if x == y => {}
                    (Some(x), Some(y)) => {
                        return Err(format!(
                            "arg{i} {n1}(struct {x} *) doesn't match {n2}(struct {y} *)"
                        ))
                    }
                    _ => return Err(format!("arg{i} in {n1}() is not a pointer to context")),
                }
            }
            _ => match (scalar_size(b1, x), scalar_size(b2, y)) {
                (Some(p), Some(q)) if p == q => {}
                _ => return Err(format!("arg{i} in {n1}() doesn't match {n2}()")),
            },
        }
    }
    Ok(())
}

/// BPF_RAW_TRACEPOINT_OPEN: for an extension program with no name, links it
/// to the function it was loaded against (once: the kernel hands the load's
/// target to the first attachment only). Other programs: EINVAL, the
/// runtime has no tracepoints.
pub fn raw_tracepoint_open(a: &[u8]) -> Result<i64, Errno> {
    let prog = match fds::lookup(u32_at(a, raw_tracepoint::PROG_FD) as c_int) {
        Some(Obj::Prog(id)) => id,
        Some(_) => return Err(libc::EINVAL),
        None => return Err(libc::EBADF),
    };
    let store = state::store()?;
    let p = store.program_by_id(prog).map_err(|e| e.errno())?;
    if p.prog_type != PROG_TYPE_EXT || u64_at(a, raw_tracepoint::NAME) != 0 {
        state::log_once(
            "rawtp",
            "BPF_RAW_TRACEPOINT_OPEN: only extension programs, without a name (EINVAL)",
        );
        return Err(libc::EINVAL);
    }
    let info = store.program_btf_info(prog).map_err(|e| e.errno())?;
    if info.attach_prog == 0 || store.replacements().iter().any(|r| r.ext == prog) {
        return Err(libc::EINVAL);
    }
    link(prog, &info)
}

/// Whether `fd` is an extension program's descriptor.
pub fn is_extension(fd: c_int) -> bool {
    let Some(Obj::Prog(id)) = fds::lookup(fd) else {
        return false;
    };
    state::store()
        .ok()
        .and_then(|s| s.program_by_id(id).ok())
        .is_some_and(|p| p.prog_type == PROG_TYPE_EXT)
}

/// BPF_LINK_CREATE of an extension program (any attach type, as the kernel,
/// which dispatches on the program's type): `target_fd` and `target_btf_id`
/// both given (a target of the caller's choice, checked as at load), or
/// neither (the load's target).
pub fn link_create(a: &[u8]) -> Result<i64, Errno> {
    let prog = match fds::lookup(u32_at(a, link_create::PROG_FD) as c_int) {
        Some(Obj::Prog(id)) => id,
        Some(_) => return Err(libc::EINVAL),
        None => return Err(libc::EBADF),
    };
    let store = state::store()?;
    let p = store.program_by_id(prog).map_err(|e| e.errno())?;
    if p.prog_type != PROG_TYPE_EXT || u32_at(a, link_create::FLAGS) != 0 {
        return Err(libc::EINVAL);
    }
    let mut info = store.program_btf_info(prog).map_err(|e| e.errno())?;
    let (tfd, tbtf) = (
        u32_at(a, link_create::TARGET_FD) as c_int,
        u32_at(a, link_create_freplace::TARGET_BTF_ID),
    );
    match (tfd, tbtf) {
        (0, 0) => {
            if info.attach_prog == 0 || store.replacements().iter().any(|r| r.ext == prog) {
                return Err(libc::EINVAL);
            }
        }
        (0, _) | (_, 0) => return Err(libc::EINVAL),
        (fd, btf_id) => {
            // The same checks as at load, against this target.
            let mut attr = vec![0u8; isa::uapi::attr::SIZE];
            attr[prog_load::ATTACH_PROG_FD..prog_load::ATTACH_PROG_FD + 4]
                .copy_from_slice(&(fd as u32).to_ne_bytes());
            attr[prog_load::ATTACH_BTF_ID..prog_load::ATTACH_BTF_ID + 4]
                .copy_from_slice(&btf_id.to_ne_bytes());
            let ebtf = if p.btf_id != 0 {
                store
                    .btf_data(p.btf_id)
                    .ok()
                    .and_then(|d| Btf::parse(&d).ok())
            } else {
                None
            };
            info = ext_target(&attr, ebtf.as_ref(), &info.func_info).map_err(|(e, m)| {
                if !m.is_empty() {
                    state::log_once(&format!("freplace{m}"), &m);
                }
                e
            })?;
        }
    }
    link(prog, &info)
}

fn link(ext: u32, info: &maps::ProgramBtfInfo) -> Result<i64, Errno> {
    let store = state::store()?;
    let id = store
        .add_replacement(&maps::Replacement {
            link_id: 0,
            target: info.attach_prog,
            func_start: info.attach_func_start,
            btf_id: info.attach_btf_id,
            ext,
            // SAFETY: getpid cannot fail.
            holder_pid: unsafe { libc::getpid() } as u32,
        })
        .map_err(|e| e.errno())?;
    match fds::create(Obj::Freplace(id), &[]) {
        Ok(fd) => Ok(i64::from(fd)),
        Err(e) => {
            let _ = store.remove_replacement(id);
            Err(e)
        }
    }
}
