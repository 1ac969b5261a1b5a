//! BPF_PROG_LOAD: the program is checked and prepared by the runtime, and
//! recorded in the store; the verifier log buffer gets the runtime's message.

use isa::uapi::attr::prog_load;
use std::ffi::c_int;

use isa::opcode::{
    BPF_PSEUDO_MAP_FD as PSEUDO_MAP_FD, BPF_PSEUDO_MAP_IDX as PSEUDO_MAP_IDX,
    BPF_PSEUDO_MAP_IDX_VALUE as PSEUDO_MAP_IDX_VALUE,
};
use isa::uapi::{BPF_PROG_TYPE_EXT as PROG_TYPE_EXT, BPF_PROG_TYPE_XDP as PROG_TYPE_XDP};
use isa::RawInsn;

use crate::fds::{self, Obj};
use crate::state;
use crate::user::{self, u32_at, u64_at, Errno};

/// BPF_MAXINSNS for unprivileged loads; the kernel takes 1M when privileged.
const MAX_INSNS: u32 = 1_000_000;

/// The kernel's license_is_gpl_compatible.
fn gpl_compatible(license: &str) -> bool {
    matches!(
        license,
        "GPL"
            | "GPL v2"
            | "GPL and additional rights"
            | "Dual BSD/GPL"
            | "Dual MIT/GPL"
            | "Dual MPL/GPL"
    )
}

/// Writes `msg` into a verifier/BTF log buffer (truncated, NUL-terminated) when
/// the caller gave one.
pub fn write_log(buf: u64, size: u32, level: u32, msg: &str) -> Result<(), Errno> {
    if buf == 0 || size == 0 || level == 0 {
        return Ok(());
    }
    let n = msg.len().min(size as usize - 1);
    let mut out = msg.as_bytes()[..n].to_vec();
    out.push(0);
    user::write(buf, &out)
}

pub fn prog_load(a: &[u8]) -> Result<i64, Errno> {
    let prog_type = u32_at(a, prog_load::PROG_TYPE);
    let insn_cnt = u32_at(a, prog_load::INSN_CNT);
    let (log_level, log_size, log_buf) = (
        u32_at(a, prog_load::LOG_LEVEL),
        u32_at(a, prog_load::LOG_SIZE),
        u64_at(a, prog_load::LOG_BUF),
    );
    let prog_flags = u32_at(a, prog_load::PROG_FLAGS);
    if insn_cnt == 0 || insn_cnt > MAX_INSNS {
        return Err(libc::E2BIG);
    }
    if log_buf != 0 && (log_size < 128 || log_level == 0) || (log_buf == 0 && log_level != 0) {
        return Err(libc::EINVAL);
    }
    let name_raw = &a[prog_load::PROG_NAME..prog_load::PROG_NAME + isa::uapi::BPF_OBJ_NAME_LEN];
    let end = name_raw.iter().position(|&b| b == 0).ok_or(libc::EINVAL)?;
    let name = std::str::from_utf8(&name_raw[..end]).map_err(|_| libc::EINVAL)?;
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    {
        return Err(libc::EINVAL);
    }
    let bytes = user::read(u64_at(a, prog_load::INSNS), insn_cnt as usize * 8)?;
    // The kernel copies at most 127 bytes of the license, after the
    // instructions: unreadable is EFAULT (NULL too); a longer or non-UTF-8
    // one is no GPL-compatible name.
    let license = match user::read_cstr(u64_at(a, prog_load::LICENSE), 126) {
        Ok(l) => l,
        Err(libc::EFAULT) => return Err(libc::EFAULT),
        Err(_) => String::new(),
    };
    let mut insns = runtime::stored::raw_insns(&bytes);
    let fail = |errno: Errno, msg: String| -> Result<i64, Errno> {
        state::log_once(
            &format!("load{name}{msg}"),
            &format!("program {name:?}: {msg}"),
        );
        write_log(log_buf, log_size, log_level, &format!("{msg}\n"))?;
        Err(errno)
    };
    let map_ids = match resolve_maps(&mut insns, u64_at(a, prog_load::FD_ARRAY)) {
        Ok(ids) => ids,
        Err((e, msg)) => return fail(e, msg),
    };
    let btf_fd = u32_at(a, prog_load::PROG_BTF_FD) as c_int;
    let btf_id = if btf_fd > 0 {
        crate::bpf::btf_id_of(btf_fd)?
    } else {
        0
    };
    let store = state::store()?;
    // The program's BTF and func_info (the functions replacement links name),
    // and for an extension program the function it replaces.
    let btf = if btf_id != 0 {
        let data = store.btf_data(btf_id).map_err(|e| e.errno())?;
        loader::btf::Btf::parse(&data).ok()
    } else {
        None
    };
    let funcs = match crate::freplace::func_info(a, btf.as_ref(), insn_cnt) {
        Ok(f) => f,
        Err((e, msg)) => return fail(e, msg),
    };
    let btf_info = if prog_type == PROG_TYPE_EXT {
        match crate::freplace::ext_target(a, btf.as_ref(), &funcs) {
            Ok(info) => info,
            Err((e, msg)) => return fail(e, msg),
        }
    } else {
        maps::ProgramBtfInfo {
            func_info: funcs,
            ..maps::ProgramBtfInfo::default()
        }
    };
    let def = maps::ProgramDef {
        name: name.to_string(),
        prog_type,
        tag: runtime::stored::prog_tag(&insns),
        insns: insns.iter().flat_map(|x| x.to_bytes()).collect(),
        map_ids,
        btf_id,
        gpl_compatible: gpl_compatible(&license),
        // SAFETY: getuid cannot fail.
        uid: unsafe { libc::getuid() },
        expected_attach_type: u32_at(a, prog_load::EXPECTED_ATTACH_TYPE),
        prog_flags,
        // SAFETY: getpid cannot fail.
        holder_pid: unsafe { libc::getpid() } as u32,
    };
    if prog_type != PROG_TYPE_XDP && prog_type != PROG_TYPE_EXT {
        // Other types are checked (libbpf's feature probes load them) but
        // cannot run here, so they are not recorded.
        let maps = runtime::stored::bind_maps(store, &def.map_ids).map_err(|_| libc::EBADF)?;
        let starts = runtime::stored::subprog_starts(&insns);
        return match runtime::program::prepare(name, "probe", &insns, &starts, &maps) {
            Ok(_) => Ok(i64::from(fds::create(Obj::LocalProg(prog_type), &[])?)),
            Err(e) => fail(libc::EINVAL, verifier_message(&e)),
        };
    }
    match runtime::stored::register(store, &def, state::strict()) {
        Ok(id) => {
            if btf_info != maps::ProgramBtfInfo::default() {
                if let Err(e) = store.set_program_btf_info(id, &btf_info) {
                    let _ = store.remove_program(id);
                    return Err(e.errno());
                }
            }
            Ok(i64::from(fds::create(Obj::Prog(id), &[])?))
        }
        // As the kernel's verifier refuses an access it cannot prove: EACCES.
        Err(runtime::LoadError::Verify(e @ runtime::VerifyError::Unproven { .. })) => {
            fail(libc::EACCES, e.to_string())
        }
        Err(runtime::LoadError::Object { source, .. }) => fail(source.errno(), source.to_string()),
        Err(runtime::LoadError::Verify(e)) => fail(libc::EINVAL, verifier_message(&e)),
        Err(e) => fail(libc::EINVAL, e.to_string()),
    }
}

/// The log line for a refused program. A helper the runtime does not run is
/// refused in the kernel verifier's words, which feature probes look for
/// (libbpf's `libbpf_probe_bpf_helper` counts a helper missing when the log
/// has "invalid func " or "unknown func "): an id the kernel does not know
/// is `invalid func unknown#N`, a known helper the program type may not call
/// is `unknown func bpf_NAME#N` (kernels since 6.5 say "program of this type
/// cannot use helper" instead, which libbpf before 1.3 does not recognise),
/// each followed by the runtime's own message, which any other refusal keeps.
fn verifier_message(e: &runtime::VerifyError) -> String {
    match e {
        runtime::VerifyError::UnknownHelper { pc, id, .. } => {
            format!("{pc}: (85) call unknown#{id}\ninvalid func unknown#{id}\n{e}")
        }
        runtime::VerifyError::UnsupportedHelper { pc, id, name, .. } => {
            format!("{pc}: (85) call {name}#{id}\nunknown func {name}#{id}\n{e}")
        }
        e => e.to_string(),
    }
}

/// Rewrites the map references of `insns` (lddw with a map fd, or an index
/// into `fd_array`) to indexes into the returned list of map ids.
fn resolve_maps(insns: &mut [RawInsn], fd_array: u64) -> Result<Vec<u32>, (Errno, String)> {
    let mut ids: Vec<u32> = Vec::new();
    runtime::stored::for_each_map_load(insns, |pc, ld| {
        let x = ld[0];
        let fd = if matches!(x.src, PSEUDO_MAP_IDX | PSEUDO_MAP_IDX_VALUE) {
            if fd_array == 0 {
                return Err((libc::EINVAL, format!("{pc}: map index without fd_array")));
            }
            let b = user::read(fd_array.wrapping_add(4 * u64::from(x.imm as u32)), 4)
                .map_err(|e| (e, format!("{pc}: fd_array")))?;
            i32::from_ne_bytes([b[0], b[1], b[2], b[3]])
        } else {
            x.imm
        };
        let Some(Obj::Map(id)) = fds::lookup(fd) else {
            return Err((
                libc::EBADF,
                format!("fd {fd} is not pointing to valid bpf_map"),
            ));
        };
        ld[0].src = if matches!(x.src, PSEUDO_MAP_FD | PSEUDO_MAP_IDX) {
            PSEUDO_MAP_IDX
        } else {
            PSEUDO_MAP_IDX_VALUE
        };
        ld[0].imm = runtime::stored::index_in(&mut ids, id) as i32;
        Ok(())
    })?;
    Ok(ids)
}
