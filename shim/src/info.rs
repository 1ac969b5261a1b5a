//! BPF_OBJ_GET_INFO_BY_FD answers and `/proc/self/fdinfo/N` texts, laid out as
//! the kernel's uapi structs (bpf_map_info, bpf_prog_info, bpf_btf_info,
//! bpf_link_info) and fdinfo show functions fill them.

use crate::fds::Obj;
use crate::user::{self, put_u32, put_u64, u32_at, u64_at, Errno};
use isa::uapi::info::{btf, link, map, prog, PROG_GPL_COMPATIBLE_WORD};
use isa::uapi::{BPF_LINK_TYPE_TRACING, BPF_LINK_TYPE_XDP};

/// sizeof(struct bpf_map_info).
pub const MAP_INFO_SIZE: usize = 88;
/// sizeof(struct bpf_prog_info).
pub const PROG_INFO_SIZE: usize = 232;
/// sizeof(struct bpf_btf_info).
pub const BTF_INFO_SIZE: usize = 32;
/// sizeof(struct bpf_link_info) (xdp member: ifindex).
pub const LINK_INFO_SIZE: usize = 64;

fn name16(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let b = name.as_bytes();
    let n = b.len().min(15);
    out[..n].copy_from_slice(&b[..n]);
    out
}

/// Memory a map holds in the store, the shim's `memlock`.
pub fn map_memlock(m: &maps::Map) -> u64 {
    let i = m.info();
    let vs = u64::from(i.value_size).div_ceil(8) * 8;
    let per = u64::from(i.key_size).div_ceil(8) * 8 + vs * u64::from(m.ncpus().max(1));
    (u64::from(i.max_entries) * per).div_ceil(4096) * 4096
}

/// Fills the info for `obj` into the user's `info_len` bytes at `info_ptr`,
/// following bpf_obj_get_info_by_fd: the user's struct may be shorter (the
/// prefix is filled) or longer (the tail must be zero, else E2BIG). Returns
/// the length written back to `info_len`.
pub fn get_info(obj: Obj, info_ptr: u64, info_len: u32) -> Result<u32, Errno> {
    let store = crate::state::store()?;
    let size = match obj {
        Obj::Map(_) => MAP_INFO_SIZE,
        Obj::Prog(_) | Obj::LocalProg(_) => PROG_INFO_SIZE,
        Obj::Btf(_) | Obj::LocalBtf => BTF_INFO_SIZE,
        Obj::Link(_) | Obj::Freplace(_) => LINK_INFO_SIZE,
        Obj::Stats => return Err(libc::EINVAL),
    };
    let ulen = info_len as usize;
    if ulen > size {
        user::check_zero(info_ptr.wrapping_add(size as u64), ulen - size)?;
    }
    let n = ulen.min(size);
    let mut uinfo = vec![0u8; size];
    user::read_into(info_ptr, &mut uinfo[..n])?;
    let mut out = vec![0u8; size];
    match obj {
        Obj::Map(id) => {
            let m = crate::checked::map(store, id)?;
            let i = m.info();
            put_u32(&mut out, map::TYPE, i.map_type);
            put_u32(&mut out, map::ID, i.id);
            put_u32(&mut out, map::KEY_SIZE, i.key_size);
            put_u32(&mut out, map::VALUE_SIZE, i.value_size);
            put_u32(&mut out, map::MAX_ENTRIES, i.max_entries);
            put_u32(&mut out, map::MAP_FLAGS, i.map_flags);
            out[map::NAME..map::NAME + 16].copy_from_slice(&name16(&i.name));
            put_u32(&mut out, map::BTF_ID, i.btf_id);
            put_u32(&mut out, map::BTF_KEY_TYPE_ID, i.btf_key_type_id);
            put_u32(&mut out, map::BTF_VALUE_TYPE_ID, i.btf_value_type_id);
        }
        Obj::Prog(id) => {
            let (p, insns) = crate::checked::program(store, id)?;
            put_u32(&mut out, prog::TYPE, p.prog_type);
            put_u32(&mut out, prog::ID, p.id);
            out[prog::TAG..prog::TAG + 8].copy_from_slice(&p.tag);
            // jited_prog_len 0: the kernel JIT's image is not ours to show.
            put_u32(&mut out, prog::XLATED_PROG_LEN, p.insn_cnt * 8);
            put_u64(&mut out, prog::LOAD_TIME, p.load_time);
            put_u32(&mut out, prog::CREATED_BY_UID, p.uid);
            put_u32(&mut out, prog::NR_MAP_IDS, p.map_ids.len() as u32);
            out[prog::NAME..prog::NAME + 16].copy_from_slice(&name16(&p.name));
            put_u32(
                &mut out,
                PROG_GPL_COMPATIBLE_WORD,
                u32::from(p.gpl_compatible),
            );
            put_u32(&mut out, prog::BTF_ID, p.btf_id);
            put_u64(&mut out, prog::RUN_TIME_NS, p.run_time_ns);
            put_u64(&mut out, prog::RUN_CNT, p.run_cnt);
            put_u32(&mut out, prog::VERIFIED_INSNS, p.insn_cnt);
            // Arrays the user asked for: map ids and the instructions.
            if n >= prog::MAP_IDS + 8 {
                let want = u32_at(&uinfo, prog::NR_MAP_IDS) as usize;
                let ptr = u64_at(&uinfo, prog::MAP_IDS);
                if want > 0 && ptr != 0 {
                    let ids: Vec<u8> = p
                        .map_ids
                        .iter()
                        .take(want)
                        .flat_map(|x| x.to_ne_bytes())
                        .collect();
                    user::write(ptr, &ids)?;
                }
                put_u64(&mut out, prog::MAP_IDS, ptr);
                let xlen = u32_at(&uinfo, prog::XLATED_PROG_LEN) as usize;
                let xptr = u64_at(&uinfo, prog::XLATED_PROG_INSNS);
                if xlen > 0 && xptr != 0 {
                    user::write(xptr, &insns[..xlen.min(insns.len())])?;
                }
                put_u64(&mut out, prog::XLATED_PROG_INSNS, xptr);
            }
        }
        Obj::LocalProg(t) => {
            put_u32(&mut out, prog::TYPE, t);
        }
        Obj::Btf(_) | Obj::LocalBtf => {
            let (id, data) = match obj {
                Obj::Btf(id) => (id, crate::checked::btf_data(store, id)?),
                _ => return Err(libc::EINVAL),
            };
            let ptr = u64_at(&uinfo, btf::BTF);
            let want = u32_at(&uinfo, btf::BTF_SIZE) as usize;
            if ptr != 0 && want > 0 {
                user::write(ptr, &data[..want.min(data.len())])?;
            }
            put_u64(&mut out, btf::BTF, ptr);
            put_u32(&mut out, btf::BTF_SIZE, data.len() as u32);
            put_u32(&mut out, btf::ID, id);
            // An object's BTF has no name: leave name and name_len as given, zero.
            let nptr = u64_at(&uinfo, btf::NAME);
            let nlen = u32_at(&uinfo, btf::NAME_LEN);
            if nptr != 0 && nlen > 0 {
                user::write(nptr, &[0])?;
            }
            put_u64(&mut out, btf::NAME, nptr);
            put_u32(&mut out, btf::NAME_LEN, 0);
        }
        Obj::Link(id) => {
            let l = store.xdp_link(id).map_err(|e| e.errno())?;
            put_u32(&mut out, link::TYPE, BPF_LINK_TYPE_XDP);
            put_u32(&mut out, link::ID, id);
            put_u32(&mut out, link::PROG_ID, l.prog_id);
            put_u32(&mut out, link::XDP_IFINDEX, l.ifindex);
        }
        Obj::Freplace(id) => {
            let r = store
                .replacements()
                .into_iter()
                .find(|r| r.link_id == id)
                .ok_or(libc::ENOENT)?;
            put_u32(&mut out, link::TYPE, BPF_LINK_TYPE_TRACING);
            put_u32(&mut out, link::ID, id);
            put_u32(&mut out, link::PROG_ID, r.ext);
            // The `tracing` member of the union: attach_type (the
            // extension's expected_attach_type, 0), target_obj_id,
            // target_btf_id.
            put_u32(&mut out, link::XDP_IFINDEX, 0);
            put_u32(&mut out, link::XDP_IFINDEX + 4, r.target);
            put_u32(&mut out, link::XDP_IFINDEX + 8, r.btf_id);
        }
        Obj::Stats => return Err(libc::EINVAL),
    }
    user::write(info_ptr, &out[..n])?;
    Ok(n as u32)
}

/// The fdinfo text the kernel shows for `obj` (after the generic lines).
pub fn fdinfo(obj: Obj) -> Result<String, Errno> {
    let store = crate::state::store()?;
    let mut s = String::from("pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1\n");
    match obj {
        Obj::Map(id) => {
            let m = crate::checked::map(store, id)?;
            let i = m.info();
            s += &format!(
                "map_type:\t{}\nkey_size:\t{}\nvalue_size:\t{}\nmax_entries:\t{}\nmap_flags:\t{:#x}\nmap_extra:\t{:#x}\nmemlock:\t{}\nmap_id:\t{}\nfrozen:\t{}\n",
                i.map_type,
                i.key_size,
                i.value_size,
                i.max_entries,
                i.map_flags,
                m.map_extra(),
                map_memlock(&m),
                i.id,
                u32::from(m.is_frozen())
            );
        }
        Obj::Prog(id) => {
            let (p, _) = crate::checked::program(store, id)?;
            let tag: String = p.tag.iter().map(|b| format!("{b:02x}")).collect();
            s += &format!(
                "prog_type:\t{}\nprog_jited:\t0\nprog_tag:\t{tag}\nmemlock:\t{}\nprog_id:\t{}\nrun_time_ns:\t{}\nrun_cnt:\t{}\nrecursion_misses:\t0\nverified_insns:\t{}\n",
                p.prog_type,
                (u64::from(p.insn_cnt) * 8).div_ceil(4096) * 4096,
                p.id,
                p.run_time_ns,
                p.run_cnt,
                p.insn_cnt
            );
        }
        Obj::LocalProg(t) => s += &format!("prog_type:\t{t}\nprog_jited:\t0\n"),
        Obj::Btf(id) => s += &format!("btf_id:\t{id}\n"),
        Obj::LocalBtf => {}
        Obj::Link(id) => {
            // bpf_link_show_fdinfo, then bpf_xdp_link_show_fdinfo.
            let l = store.xdp_link(id).map_err(|e| e.errno())?;
            let (p, _) = crate::checked::program(store, l.prog_id)?;
            let tag: String = p.tag.iter().map(|b| format!("{b:02x}")).collect();
            s += &format!(
                "link_type:\txdp\nlink_id:\t{id}\nprog_tag:\t{tag}\nprog_id:\t{}\nifindex:\t{}\n",
                l.prog_id, l.ifindex
            )
        }
        Obj::Freplace(id) => {
            if let Some(r) = store.replacements().into_iter().find(|r| r.link_id == id) {
                s += &format!(
                    "link_type:\ttracing\nlink_id:\t{id}\nprog_tag:\t\nprog_id:\t{}\nattach_type:\t0\ntarget_obj_id:\t{}\ntarget_btf_id:\t{}\n",
                    r.ext, r.target, r.btf_id
                );
            }
        }
        Obj::Stats => {}
    }
    Ok(s)
}
