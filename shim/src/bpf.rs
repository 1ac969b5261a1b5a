//! bpf(2) emulated against the store: one function per command, reading
//! `union bpf_attr` at the kernel's offsets.

use std::collections::HashMap;
use std::ffi::c_int;
use std::sync::Mutex;

use isa::uapi::BPF_PROG_TYPE_XDP as PROG_TYPE_XDP;

use crate::fds::{self, Obj};
use crate::state;
use crate::user::{self, u32_at, u64_at, Errno};

use isa::uapi::attr::{
    self, batch, btf_load, get_id, info, link_create, map_create, map_elem, obj,
};
use isa::uapi::{self as cmd, BPF_XDP};

/// sizeof(union bpf_attr) of the kernel this follows.
const ATTR_SIZE: usize = attr::SIZE;
pub const ENOTSUPP: Errno = 524;

/// Local BTF objects already recorded in the store, by memfd inode.
static BTF_IDS: Mutex<Option<HashMap<(u64, u64), u32>>> = Mutex::new(None);

/// Runs one bpf(2) command. Ok is the syscall's non-negative result.
pub fn bpf(command: i32, attr_ptr: u64, size: u32) -> Result<i64, Errno> {
    let size = size as usize;
    if size > 4096 {
        return Err(libc::E2BIG);
    }
    // bpf_check_uarg_tail_zero: bytes past the known union must be zero.
    let mut attr = vec![0u8; ATTR_SIZE.max(size)];
    user::read_into(attr_ptr, &mut attr[..size])?;
    if attr[ATTR_SIZE..].iter().any(|&b| b != 0) {
        return Err(libc::E2BIG);
    }
    attr.truncate(ATTR_SIZE);
    let a = &attr;
    // A negative command is no command.
    let c = u32::try_from(command).unwrap_or(u32::MAX);
    match c {
        cmd::BPF_MAP_CREATE => map_create(a),
        cmd::BPF_MAP_LOOKUP_ELEM => map_lookup(a, false),
        cmd::BPF_MAP_LOOKUP_AND_DELETE_ELEM => map_lookup(a, true),
        cmd::BPF_MAP_UPDATE_ELEM => map_update(a),
        cmd::BPF_MAP_DELETE_ELEM => map_delete(a),
        cmd::BPF_MAP_GET_NEXT_KEY => map_get_next_key(a),
        cmd::BPF_MAP_FREEZE => {
            let m = map_of(u32_at(a, map_elem::MAP_FD) as c_int)?;
            m.freeze().map_err(|e| e.errno())?;
            Ok(0)
        }
        cmd::BPF_MAP_LOOKUP_BATCH => map_batch_lookup(a, attr_ptr, false),
        cmd::BPF_MAP_LOOKUP_AND_DELETE_BATCH => map_batch_lookup(a, attr_ptr, true),
        cmd::BPF_MAP_UPDATE_BATCH | cmd::BPF_MAP_DELETE_BATCH => map_batch_write(a, attr_ptr, c),
        cmd::BPF_PROG_LOAD => crate::progload::prog_load(a),
        cmd::BPF_BTF_LOAD => btf_load(a),
        cmd::BPF_OBJ_PIN => obj_pin(a),
        cmd::BPF_OBJ_GET => obj_get(a),
        cmd::BPF_PROG_GET_NEXT_ID | cmd::BPF_MAP_GET_NEXT_ID | cmd::BPF_BTF_GET_NEXT_ID => {
            get_next_id(a, attr_ptr, c)
        }
        cmd::BPF_PROG_GET_FD_BY_ID | cmd::BPF_MAP_GET_FD_BY_ID | cmd::BPF_BTF_GET_FD_BY_ID => {
            get_fd_by_id(a, c)
        }
        cmd::BPF_OBJ_GET_INFO_BY_FD => {
            let fd = u32_at(a, info::BPF_FD) as c_int;
            let obj = match fds::lookup(fd).ok_or(libc::EBADF)? {
                Obj::LocalBtf => Obj::Btf(btf_id_of(fd)?),
                o => o,
            };
            let len = crate::info::get_info(obj, u64_at(a, info::INFO), u32_at(a, info::INFO_LEN))?;
            user::write(
                attr_ptr.wrapping_add(info::INFO_LEN as u64),
                &len.to_ne_bytes(),
            )?;
            Ok(0)
        }
        cmd::BPF_PROG_TEST_RUN => crate::testrun::test_run(a, attr_ptr),
        cmd::BPF_LINK_CREATE => link_create(a),
        // Links live in the creating process only and have no id, so the
        // store's id space of links is empty: the kernel's answer past the
        // last id (`bpftool link show` lists nothing, as on a kernel with no
        // links).
        cmd::BPF_LINK_GET_NEXT_ID | cmd::BPF_LINK_GET_FD_BY_ID => Err(libc::ENOENT),
        cmd::BPF_ENABLE_STATS => {
            if u32_at(a, attr::enable_stats::TYPE) != 0 {
                return Err(libc::EINVAL);
            }
            state::STATS.store(true, std::sync::atomic::Ordering::Relaxed);
            Ok(i64::from(fds::create(Obj::Stats, &[])?))
        }
        _ => {
            state::log_once(
                &format!("cmd{command}"),
                &format!("bpf command {command} is not supported (EINVAL)"),
            );
            Err(libc::EINVAL)
        }
    }
}

/// The map behind a descriptor (EBADF if it is none).
pub fn map_of(fd: c_int) -> Result<maps::Map, Errno> {
    match fds::lookup(fd) {
        Some(Obj::Map(id)) => state::store()?.map_by_id(id).map_err(|e| e.errno()),
        Some(_) => Err(libc::EINVAL),
        None => Err(libc::EBADF),
    }
}

/// The store id of the BTF object behind `fd`, recording a local one.
pub fn btf_id_of(fd: c_int) -> Result<u32, Errno> {
    match fds::lookup(fd) {
        Some(Obj::Btf(id)) => Ok(id),
        Some(Obj::LocalBtf) => {
            // SAFETY: st is plain data filled by fstat.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: fd is open; st is writable.
            if unsafe { libc::fstat(fd, &mut st) } != 0 {
                return Err(fds::errno());
            }
            let key = (st.st_dev, st.st_ino);
            let mut g = BTF_IDS.lock().unwrap_or_else(|p| p.into_inner());
            let cache = g.get_or_insert_with(HashMap::new);
            if let Some(&id) = cache.get(&key) {
                return Ok(id);
            }
            let data = fds::contents(fd)?;
            // SAFETY: getpid cannot fail.
            let pid = unsafe { libc::getpid() } as u32;
            let id = state::store()?
                .register_btf_held(&data, pid)
                .map_err(|e| e.errno())?;
            cache.insert(key, id);
            Ok(id)
        }
        Some(_) => Err(libc::EINVAL),
        None => Err(libc::EBADF),
    }
}

fn map_create(a: &[u8]) -> Result<i64, Errno> {
    let name_raw = &a[map_create::MAP_NAME..map_create::MAP_NAME + isa::uapi::BPF_OBJ_NAME_LEN];
    let end = name_raw.iter().position(|&b| b == 0).ok_or(libc::EINVAL)?;
    let name = std::str::from_utf8(&name_raw[..end]).map_err(|_| libc::EINVAL)?;
    let btf_fd = u32_at(a, map_create::BTF_FD) as c_int;
    let (key_tid, value_tid) = (
        u32_at(a, map_create::BTF_KEY_TYPE_ID),
        u32_at(a, map_create::BTF_VALUE_TYPE_ID),
    );
    // As the kernel: btf_fd is read only when a type id names something in it.
    let btf_id = if key_tid != 0 || value_tid != 0 {
        btf_id_of(btf_fd)?
    } else {
        0
    };
    if u32_at(a, map_create::BTF_VMLINUX_VALUE_TYPE_ID) != 0 {
        // btf_vmlinux_value_type_id: struct_ops maps.
        return Err(libc::EINVAL);
    }
    let map_type = u32_at(a, map_create::MAP_TYPE);
    if matches!(
        map_type,
        maps::BPF_MAP_TYPE_ARRAY_OF_MAPS | maps::BPF_MAP_TYPE_HASH_OF_MAPS
    ) {
        // bpf_map_meta_alloc: the inner map template must be a map, and not a
        // map of maps itself.
        match fds::lookup(u32_at(a, map_create::INNER_MAP_FD) as c_int) {
            Some(Obj::Map(id)) => {
                let inner = state::store()?.map_by_id(id).map_err(|e| e.errno())?;
                if matches!(
                    inner.info().map_type,
                    maps::BPF_MAP_TYPE_ARRAY_OF_MAPS | maps::BPF_MAP_TYPE_HASH_OF_MAPS
                ) {
                    return Err(libc::EINVAL);
                }
            }
            Some(_) => return Err(libc::EINVAL),
            None => return Err(libc::EBADF),
        }
    }
    let def = maps::MapDef {
        map_type,
        key_size: u32_at(a, map_create::KEY_SIZE),
        value_size: u32_at(a, map_create::VALUE_SIZE),
        max_entries: u32_at(a, map_create::MAX_ENTRIES),
        map_flags: u32_at(a, map_create::MAP_FLAGS),
        name: name.to_string(),
        btf_key_type_id: key_tid,
        btf_value_type_id: value_tid,
        btf_id,
        // SAFETY: getpid cannot fail.
        holder_pid: unsafe { libc::getpid() } as u32,
    };
    let mut timer_off = None;
    if btf_id != 0 {
        let data = state::store()?.btf_data(btf_id).map_err(|e| e.errno())?;
        crate::mapbtf::check(&def, &data)?;
        // A `struct bpf_timer` in the value: the map gets its timer area (EOPNOTSUPP
        // for map types that cannot hold one, as the kernel's map_check_btf).
        if let Ok(btf) = loader::btf::Btf::parse(&data) {
            timer_off = runtime::helpers::timer::btf_timer_offset(&btf, value_tid);
        }
    }
    let m = state::store()?
        .create_map_with_timer(&def, timer_off)
        .map_err(|e| {
            state::log_once(&format!("mapcreate{name}"), &format!("map {name:?}: {e}"));
            e.errno()
        })?;
    Ok(i64::from(fds::create(Obj::Map(m.id()), &[])?))
}

fn map_lookup(a: &[u8], delete: bool) -> Result<i64, Errno> {
    let m = map_of(u32_at(a, map_elem::MAP_FD) as c_int)?;
    let info = m.info();
    let key = user::read(u64_at(a, map_elem::KEY), info.key_size as usize)?;
    let mut value = vec![0u8; m.user_value_size()];
    if delete {
        if !matches!(
            info.map_type,
            maps::BPF_MAP_TYPE_HASH
                | maps::BPF_MAP_TYPE_PERCPU_HASH
                | maps::BPF_MAP_TYPE_LRU_HASH
                | maps::BPF_MAP_TYPE_LRU_PERCPU_HASH
        ) {
            return Err(ENOTSUPP);
        }
        if u64_at(a, map_elem::FLAGS) != 0 {
            return Err(libc::EINVAL);
        }
    }
    m.lookup(&key, &mut value).map_err(|e| e.errno())?;
    if delete {
        m.delete(&key).map_err(|e| e.errno())?;
    }
    user::write(u64_at(a, map_elem::VALUE), &value)?;
    Ok(0)
}

fn map_update(a: &[u8]) -> Result<i64, Errno> {
    let m = map_of(u32_at(a, map_elem::MAP_FD) as c_int)?;
    let key = user::read(u64_at(a, map_elem::KEY), m.info().key_size as usize)?;
    let value = stored_value(
        &m,
        user::read(u64_at(a, map_elem::VALUE), m.user_value_size())?,
    )?;
    m.update(&key, &value, u64_at(a, map_elem::FLAGS))
        .map_err(|e| e.errno())?;
    Ok(0)
}

/// What an update from user space stores: for a prog_array the value is a
/// program descriptor and the slot holds the program's id; for a map of maps a
/// map descriptor, stored as the inner map's id (as the kernel's fd maps do).
fn stored_value(m: &maps::Map, value: Vec<u8>) -> Result<Vec<u8>, Errno> {
    let map_type = m.info().map_type;
    let is_outer = matches!(
        map_type,
        maps::BPF_MAP_TYPE_ARRAY_OF_MAPS | maps::BPF_MAP_TYPE_HASH_OF_MAPS
    );
    if map_type != maps::BPF_MAP_TYPE_PROG_ARRAY && !is_outer {
        return Ok(value);
    }
    let fd = match value.get(..4) {
        Some(b) => i32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        None => return Err(libc::EINVAL),
    };
    match (fds::lookup(fd), is_outer) {
        (Some(Obj::Prog(id)), false) | (Some(Obj::Map(id)), true) => Ok(id.to_ne_bytes().to_vec()),
        (Some(_), _) => Err(libc::EINVAL),
        (None, _) => Err(libc::EBADF),
    }
}

fn map_delete(a: &[u8]) -> Result<i64, Errno> {
    let m = map_of(u32_at(a, map_elem::MAP_FD) as c_int)?;
    let key = user::read(u64_at(a, map_elem::KEY), m.info().key_size as usize)?;
    m.delete(&key).map_err(|e| e.errno())?;
    Ok(0)
}

fn map_get_next_key(a: &[u8]) -> Result<i64, Errno> {
    let m = map_of(u32_at(a, map_elem::MAP_FD) as c_int)?;
    let ks = m.info().key_size as usize;
    let kp = u64_at(a, map_elem::KEY);
    let key = if kp == 0 {
        None
    } else {
        Some(user::read(kp, ks)?)
    };
    let mut next = vec![0u8; ks];
    m.get_next_key(key.as_deref(), &mut next)
        .map_err(|e| e.errno())?;
    user::write(u64_at(a, map_elem::NEXT_KEY), &next)?;
    Ok(0)
}

/// Batch lookups. The batch token is a u32 count of keys already returned
/// (after a lookup-and-delete those keys are gone, so it stays 0).
fn map_batch_lookup(a: &[u8], attr_ptr: u64, delete: bool) -> Result<i64, Errno> {
    let (in_b, out_b, keys, values) = (
        u64_at(a, batch::IN_BATCH),
        u64_at(a, batch::OUT_BATCH),
        u64_at(a, batch::KEYS),
        u64_at(a, batch::VALUES),
    );
    let count = u32_at(a, batch::COUNT) as usize;
    let m = map_of(u32_at(a, batch::MAP_FD) as c_int)?;
    if u64_at(a, batch::FLAGS) != 0 || out_b == 0 {
        return Err(libc::EINVAL);
    }
    if count == 0 {
        return Err(libc::EINVAL);
    }
    let ks = m.info().key_size as usize;
    let vs = m.user_value_size();
    let skip = if in_b == 0 {
        0
    } else {
        u32::from_ne_bytes(user::read(in_b, 4)?.try_into().map_err(|_| libc::EFAULT)?) as usize
    };
    let mut cur: Option<Vec<u8>> = None;
    let mut next = vec![0u8; ks];
    let mut seen = 0usize;
    let mut got: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut end = false;
    while got.len() < count {
        match m.get_next_key(cur.as_deref(), &mut next) {
            Ok(()) => {}
            Err(e) if e.errno() == libc::ENOENT => {
                end = true;
                break;
            }
            Err(e) => return Err(e.errno()),
        }
        cur = Some(next.clone());
        seen += 1;
        if seen <= skip {
            continue;
        }
        let mut v = vec![0u8; vs];
        match m.lookup(&next, &mut v) {
            Ok(()) => got.push((next.clone(), v)),
            Err(e) if e.errno() == libc::ENOENT => continue,
            Err(e) => return Err(e.errno()),
        }
    }
    if !end && got.len() == count {
        // Peek: is there anything after the last key?
        if let Some(c) = &cur {
            end = m.get_next_key(Some(c), &mut next).is_err();
        }
    }
    for (i, (k, v)) in got.iter().enumerate() {
        user::write(keys.wrapping_add((i * ks) as u64), k)?;
        user::write(values.wrapping_add((i * vs) as u64), v)?;
        if delete {
            m.delete(k).map_err(|e| e.errno())?;
        }
    }
    let token = if delete { 0 } else { (skip + got.len()) as u32 };
    user::write(out_b, &token.to_ne_bytes())?;
    user::write(
        attr_ptr.wrapping_add(batch::COUNT as u64),
        &(got.len() as u32).to_ne_bytes(),
    )?;
    if end {
        return Err(libc::ENOENT);
    }
    Ok(0)
}

fn map_batch_write(a: &[u8], attr_ptr: u64, command: u32) -> Result<i64, Errno> {
    let (keys, values) = (u64_at(a, batch::KEYS), u64_at(a, batch::VALUES));
    let count = u32_at(a, batch::COUNT) as usize;
    let m = map_of(u32_at(a, batch::MAP_FD) as c_int)?;
    let elem_flags = u64_at(a, batch::ELEM_FLAGS);
    if u64_at(a, batch::FLAGS) != 0 {
        return Err(libc::EINVAL);
    }
    let ks = m.info().key_size as usize;
    let vs = m.user_value_size();
    let mut done = 0u32;
    let mut result = Ok(0);
    for i in 0..count {
        let r = (|| {
            let k = user::read(keys.wrapping_add((i * ks) as u64), ks)?;
            if command == cmd::BPF_MAP_UPDATE_BATCH {
                let v = stored_value(&m, user::read(values.wrapping_add((i * vs) as u64), vs)?)?;
                m.update(&k, &v, elem_flags).map_err(|e| e.errno())
            } else {
                m.delete(&k).map_err(|e| e.errno())
            }
        })();
        if let Err(e) = r {
            result = Err(e);
            break;
        }
        done += 1;
    }
    user::write(
        attr_ptr.wrapping_add(batch::COUNT as u64),
        &done.to_ne_bytes(),
    )?;
    result
}

fn btf_load(a: &[u8]) -> Result<i64, Errno> {
    let size = u32_at(a, btf_load::BTF_SIZE) as usize;
    if size == 0 || size > maps::MAX_BTF_SIZE {
        return Err(libc::E2BIG);
    }
    let data = user::read(u64_at(a, btf_load::BTF), size)?;
    // As the kernel's BTF verifier: type ids, names and loops are checked
    // here, so the store never records BTF that tools could not follow.
    if let Err((errno, e)) = crate::checked::check_btf(&data) {
        let msg = format!("{e}\n");
        crate::progload::write_log(
            u64_at(a, btf_load::BTF_LOG_BUF),
            u32_at(a, btf_load::BTF_LOG_SIZE),
            u32_at(a, btf_load::BTF_LOG_LEVEL),
            &msg,
        )?;
        return Err(errno);
    }
    Ok(i64::from(fds::create(Obj::LocalBtf, &data)?))
}

fn obj_pin(a: &[u8]) -> Result<i64, Errno> {
    if u32_at(a, obj::FILE_FLAGS) != 0 {
        return Err(libc::EINVAL);
    }
    let path = user::read_cstr(u64_at(a, obj::PATHNAME), 4096)?;
    let Some(path) = crate::vfs::virtual_path(&path) else {
        state::log_once(
            &format!("pin{path}"),
            &format!("pin path {path:?} is outside /sys/fs/bpf (EPERM)"),
        );
        return Err(libc::EPERM);
    };
    let store = state::store()?;
    let fd = u32_at(a, obj::BPF_FD) as c_int;
    let what = match fds::lookup(fd) {
        Some(Obj::Map(id)) => maps::Pinned::Map(id),
        Some(Obj::Prog(id)) => maps::Pinned::Prog(id),
        Some(_) => return Err(libc::EINVAL),
        None => return Err(libc::EBADF),
    };
    if crate::vfs::node(store, &path).is_some() {
        return Err(libc::EEXIST);
    }
    crate::vfs::check_parent(store, &path)?;
    store.pin(&path, what).map_err(|e| e.errno())?;
    Ok(0)
}

fn obj_get(a: &[u8]) -> Result<i64, Errno> {
    let path = user::read_cstr(u64_at(a, obj::PATHNAME), 4096)?;
    let flags = u32_at(a, obj::FILE_FLAGS);
    if flags & !(isa::uapi::BPF_F_RDONLY | isa::uapi::BPF_F_WRONLY) != 0 {
        return Err(libc::EINVAL);
    }
    let Some(path) = crate::vfs::virtual_path(&path) else {
        return Err(libc::EPERM);
    };
    let obj = match crate::vfs::node(state::store()?, &path) {
        Some(crate::vfs::Node::Map(id)) => Obj::Map(id),
        Some(crate::vfs::Node::Prog(id)) => Obj::Prog(id),
        Some(crate::vfs::Node::Dir) => return Err(libc::EPERM),
        None => return Err(libc::ENOENT),
    };
    Ok(i64::from(fds::create(obj, &[])?))
}

fn get_next_id(a: &[u8], attr_ptr: u64, command: u32) -> Result<i64, Errno> {
    let start = u32_at(a, get_id::START_ID);
    let store = state::store()?;
    let ids: Vec<u32> = match command {
        cmd::BPF_PROG_GET_NEXT_ID => store
            .programs()
            .iter()
            .filter(|p| p.prog_type != 0)
            .map(|p| p.id)
            .collect(),
        cmd::BPF_MAP_GET_NEXT_ID => store.map_ids(),
        _ => store.btf_ids(),
    };
    let next = ids
        .into_iter()
        .filter(|&id| id > start)
        .min()
        .ok_or(libc::ENOENT)?;
    user::write(
        attr_ptr.wrapping_add(get_id::NEXT_ID as u64),
        &next.to_ne_bytes(),
    )?;
    Ok(0)
}

fn get_fd_by_id(a: &[u8], command: u32) -> Result<i64, Errno> {
    let id = u32_at(a, get_id::START_ID);
    let store = state::store()?;
    let obj = match command {
        cmd::BPF_PROG_GET_FD_BY_ID => {
            crate::checked::program(store, id)?;
            Obj::Prog(id)
        }
        cmd::BPF_MAP_GET_FD_BY_ID => {
            crate::checked::map(store, id)?;
            Obj::Map(id)
        }
        _ => {
            crate::checked::btf_data(store, id)?;
            Obj::Btf(id)
        }
    };
    Ok(i64::from(fds::create(obj, &[])?))
}

fn link_create(a: &[u8]) -> Result<i64, Errno> {
    let prog_fd = u32_at(a, link_create::PROG_FD) as c_int;
    let ifindex = u32_at(a, link_create::TARGET_IFINDEX);
    if u32_at(a, link_create::ATTACH_TYPE) != BPF_XDP {
        state::log_once(
            "linktype",
            "LINK_CREATE supports XDP attachments only (EINVAL)",
        );
        return Err(libc::EINVAL);
    }
    let id = match fds::lookup(prog_fd) {
        Some(Obj::Prog(id)) => id,
        Some(_) => return Err(libc::EINVAL),
        None => return Err(libc::EBADF),
    };
    let p = state::store()?.program_by_id(id).map_err(|e| e.errno())?;
    if p.prog_type != PROG_TYPE_XDP || ifindex == 0 {
        return Err(libc::EINVAL);
    }
    Ok(i64::from(fds::create(Obj::Link(id, ifindex), &[])?))
}
