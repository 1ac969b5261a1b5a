//! Lifetime of the objects the shim creates, as in the kernel: a map or
//! program lives while a pin, a descriptor, or (for a map) a live program or
//! (for a program) a prog_array slot holds it; a BTF object while a
//! descriptor, a map or a program refers to it (so the BTF of a failed
//! program load goes with its loader). Descriptors are seen through
//! `/proc/PID/fd` of the processes this user may inspect, and an object is
//! held by the process that created it while that process lives. Each process
//! collects once, when it first opens the store, what exited processes left:
//! libbpf's probe maps, and the unpinned objects of a loader that is gone.
//! Objects made without the shim (`xdp-runner run --store`) have no holder
//! pid and stay until removed.

use std::collections::HashSet;

use maps::Pinned;

use crate::fds::Obj;

/// What a descriptor refers to, for [`held_by_descriptors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Held {
    Map(u32),
    Prog(u32),
    Btf(u32),
    Link(u32),
}

/// Maps, programs and BTF objects of the store tagged `tag` referenced by
/// descriptors of the processes we can see (descriptors of other stores hold
/// nothing here).
fn held_by_descriptors(tag: &str) -> HashSet<Held> {
    let mut held = HashSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return held;
    };
    for p in procs.flatten() {
        let name = p.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            match crate::fds::obj_of_link(&fd.path().to_string_lossy(), tag) {
                Some(Obj::Map(id)) => {
                    held.insert(Held::Map(id));
                }
                Some(Obj::Prog(id)) => {
                    held.insert(Held::Prog(id));
                }
                Some(Obj::Link(id)) => {
                    held.insert(Held::Link(id));
                }
                Some(Obj::Btf(id)) => {
                    held.insert(Held::Btf(id));
                }
                Some(Obj::Freplace(id)) => {
                    held.insert(Held::Link(id));
                }
                _ => {}
            }
        }
    }
    held
}

fn alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 only checks the process exists.
    let r = unsafe { libc::kill(pid as i32, 0) };
    r == 0 || crate::fds::errno() == libc::EPERM
}

/// How many objects of each kind [`collect`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Collected {
    pub maps: usize,
    pub progs: usize,
    pub btfs: usize,
    pub links: usize,
}

/// Removes the XDP links no descriptor or pin holds any more (a link goes
/// when its last descriptor closes, as in the kernel; its creator holds it
/// until its first descriptor exists). Returns how many went.
pub fn collect_links(store: &maps::Store) -> usize {
    if store.xdp_attachments().iter().all(|a| a.link_id == 0) {
        return 0;
    }
    let tag = crate::fds::store_tag(store);
    let mut held: Option<HashSet<Held>> = None;
    let mut held_by_fd = |key: Held| {
        held.get_or_insert_with(|| held_by_descriptors(&tag))
            .contains(&key)
    };
    collect_links_with(store, &mut held_by_fd)
}

fn collect_links_with(store: &maps::Store, held_by_fd: &mut impl FnMut(Held) -> bool) -> usize {
    store.xdp_collect_links(|a| alive(a.holder_pid) || held_by_fd(Held::Link(a.link_id)))
}

/// Removes the shim-made maps, programs and BTF objects nothing holds any
/// more. `/proc` is read only when some object is left without pin, slot,
/// live creator, program or map.
pub fn collect(store: &maps::Store) -> Collected {
    let tag = crate::fds::store_tag(store);
    let mut held: Option<HashSet<Held>> = None;
    let mut held_by_fd = |key: Held| {
        held.get_or_insert_with(|| held_by_descriptors(&tag))
            .contains(&key)
    };
    // XDP links first (they hold programs).
    let mut gone = Collected {
        links: collect_links_with(store, &mut held_by_fd),
        ..Collected::default()
    };
    loop {
        let pins = store.pins();
        let pinned = |w: Pinned| pins.iter().any(|(_, p)| *p == w);
        let maps: Vec<maps::Map> = store
            .map_ids()
            .into_iter()
            .filter_map(|id| store.map_by_id(id).ok())
            .collect();
        // Program ids in prog_array slots, map ids in maps of maps.
        let mut slot_progs = HashSet::new();
        let mut slot_maps = HashSet::new();
        for m in &maps {
            let t = m.info().map_type;
            let is_prog_array = t == maps::BPF_MAP_TYPE_PROG_ARRAY;
            let is_map_of_maps =
                t == maps::BPF_MAP_TYPE_ARRAY_OF_MAPS || t == maps::BPF_MAP_TYPE_HASH_OF_MAPS;
            if !is_prog_array && !is_map_of_maps {
                continue;
            }
            let Ok(entries) = m.dump() else {
                continue;
            };
            for e in entries {
                let v = e
                    .values
                    .first()
                    .and_then(|v| v.get(..4))
                    .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                if let Some(v) = v.filter(|&v| v != 0) {
                    if is_prog_array {
                        slot_progs.insert(v);
                    } else {
                        slot_maps.insert(v);
                    }
                }
            }
        }
        let mut changed = false;
        // Replacement links: held by a pin, a descriptor, or their live
        // creator; a link holds its extension program and its target.
        for r in store.replacements() {
            if r.holder_pid == 0
                || pinned(Pinned::Link(r.link_id))
                || alive(r.holder_pid)
                || held_by_fd(Held::Link(r.link_id))
            {
                continue;
            }
            if store.remove_replacement(r.link_id).is_ok() {
                gone.links += 1;
                changed = true;
            }
        }
        let linked: HashSet<u32> = store
            .replacements()
            .iter()
            .flat_map(|r| [r.ext, r.target])
            .collect();
        let attached: HashSet<u32> = store.xdp_attachments().iter().map(|a| a.prog_id).collect();
        for p in &store.programs() {
            if p.holder_pid == 0
                || linked.contains(&p.id)
                || pinned(Pinned::Prog(p.id))
                || attached.contains(&p.id)
                || slot_progs.contains(&p.id)
                || alive(p.holder_pid)
                || held_by_fd(Held::Prog(p.id))
            {
                continue;
            }
            if store.remove_program(p.id).is_ok() {
                gone.progs += 1;
                changed = true;
            }
        }
        let used: HashSet<u32> = store
            .programs()
            .iter()
            .flat_map(|p| p.map_ids.clone())
            .collect();
        for m in &maps {
            let info = m.info();
            if info.holder_pid == 0
                || pinned(Pinned::Map(info.id))
                || used.contains(&info.id)
                || slot_maps.contains(&info.id)
                || alive(info.holder_pid)
                || held_by_fd(Held::Map(info.id))
            {
                continue;
            }
            if store.remove_map(info.id).is_ok() {
                gone.maps += 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    // BTF last: the maps and programs referring to it are settled.
    let mut referenced: HashSet<u32> = store.programs().iter().map(|p| p.btf_id).collect();
    referenced.extend(
        store
            .map_ids()
            .into_iter()
            .filter_map(|id| store.map_by_id(id).ok())
            .map(|m| m.info().btf_id),
    );
    for (id, holder_pid) in store.btf_holders() {
        if holder_pid == 0
            || referenced.contains(&id)
            || alive(holder_pid)
            || held_by_fd(Held::Btf(id))
        {
            continue;
        }
        if store.remove_btf(id).is_ok() {
            gone.btfs += 1;
        }
    }
    gone
}
