//! XDP attachments of interfaces, as the kernel keeps them per device and mode
//! (`dev->xdp_state[mode]`: a program or a link), in the store's object table.
//! The rules of `net/core/dev.c` `dev_xdp_attach` are applied under the header's
//! `meta_lock`, so two processes attaching at once see one after the other.
//!
//! An attachment entry (kind 4) uses these words (the rest as in `objects.rs`):
//! ```text
//! w1   ifindex u32 (0: a link detached from its device) | mode u32 (XDP_FLAGS_*_MODE)
//! w2   prog_id u32                                       | link_id u32 (0: no link)
//! w3   flags u32 (as given at attachment)                | netns u32 (inode of the
//!      network namespace the ifindex is in, 0 if unknown)
//! w28  0                                                 | holder_pid u32
//! ```
//! w1 and w2 change under `meta_lock` after publication (detach, link update);
//! readers load each word once. `holder_pid` is the creating process while a
//! link's first descriptor is being made; then 0. The next link id is the
//! header's reserved word `NEXT_LINK_ID_WORD` (0 read as 1), under `meta_lock`.

use std::sync::atomic::Ordering;

use crate::error::ObjectError;
use crate::layout::{ENTRY_CREATING, ENTRY_FREE};
use crate::objects::{ObjEntry, KIND_XDP};
use crate::store::Store;

/// `XDP_FLAGS_UPDATE_IF_NOEXIST`: fail with EBUSY if a program is attached.
pub const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1;
/// `XDP_FLAGS_SKB_MODE`: generic XDP.
pub const XDP_FLAGS_SKB_MODE: u32 = 2;
/// `XDP_FLAGS_DRV_MODE`: native XDP.
pub const XDP_FLAGS_DRV_MODE: u32 = 4;
/// `XDP_FLAGS_HW_MODE`: offloaded XDP.
pub const XDP_FLAGS_HW_MODE: u32 = 8;
/// `XDP_FLAGS_REPLACE`: replace the expected program only.
pub const XDP_FLAGS_REPLACE: u32 = 16;
/// `XDP_FLAGS_MODES`.
pub const XDP_FLAGS_MODES: u32 = XDP_FLAGS_SKB_MODE | XDP_FLAGS_DRV_MODE | XDP_FLAGS_HW_MODE;
/// Every flag the kernel knows (`XDP_FLAGS_MASK`).
pub const XDP_FLAGS_MASK: u32 = XDP_FLAGS_UPDATE_IF_NOEXIST | XDP_FLAGS_MODES | XDP_FLAGS_REPLACE;

/// One XDP attachment (or a detached link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XdpAttachment {
    /// The interface (0: a link whose device detached it).
    pub ifindex: u32,
    /// `XDP_FLAGS_SKB_MODE`, `_DRV_MODE` or `_HW_MODE`.
    pub mode: u32,
    /// The attached program.
    pub prog_id: u32,
    /// The link's id, 0 for an attachment made by netlink.
    pub link_id: u32,
    /// The flags given at attachment.
    pub flags: u32,
    /// The network namespace of `ifindex` (the inode of `/proc/self/ns/net`, low 32 bits).
    pub netns: u32,
    /// The process making the link's first descriptor (0 once it exists).
    pub holder_pid: u32,
}

/// An attachment request: `BPF_LINK_CREATE` (link) or netlink's `IFLA_XDP`
/// (program, or detach with `prog_id` 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XdpRequest {
    /// The interface.
    pub ifindex: u32,
    /// The program to attach; 0 detaches (netlink only).
    pub prog_id: u32,
    /// `XDP_FLAGS_*`.
    pub flags: u32,
    /// With `XDP_FLAGS_REPLACE`: the program expected attached (0: none).
    pub expected: Option<u32>,
    /// A link attachment (`BPF_LINK_CREATE`).
    pub link: bool,
    /// Whether the device has native XDP (the kernel: the driver has `ndo_bpf`);
    /// with no mode flag, native mode is taken where it has.
    pub native: bool,
    /// The calling process (kept while the link's first descriptor is made).
    pub holder_pid: u32,
    /// The caller's network namespace (see [`XdpAttachment::netns`]).
    pub netns: u32,
}

fn refuse(ifindex: u32, what: &'static str, errno: i32) -> ObjectError {
    ObjectError::XdpRefused {
        ifindex,
        what,
        errno,
    }
}

fn read(e: &ObjEntry) -> XdpAttachment {
    XdpAttachment {
        ifindex: e.lo(1),
        mode: e.hi(1),
        prog_id: e.lo(2),
        link_id: e.hi(2),
        flags: e.lo(3),
        netns: e.hi(3),
        holder_pid: e.hi(28),
    }
}

impl Store {
    fn xdp_entries(&self) -> impl Iterator<Item = &ObjEntry> + '_ {
        self.live_objects().filter(|e| e.hi(0) == KIND_XDP)
    }

    /// Every XDP attachment and link, by interface, mode and link id.
    pub fn xdp_attachments(&self) -> Vec<XdpAttachment> {
        let mut v: Vec<XdpAttachment> = self.xdp_entries().map(read).collect();
        v.sort_by_key(|a| (a.ifindex, a.mode, a.link_id));
        v
    }

    /// The XDP link with this id (attached or detached).
    pub fn xdp_link(&self, id: u32) -> Result<XdpAttachment, ObjectError> {
        self.xdp_entries()
            .map(read)
            .find(|a| a.link_id == id && id != 0)
            .ok_or(ObjectError::NoSuchLink { id })
    }

    /// Attaches (or with `prog_id` 0 and no link, detaches) as the kernel's
    /// `dev_xdp_attach`: returns the new link's id (0 for a netlink attachment).
    /// The caller checks the program (type XDP, not a devmap/cpumap program).
    pub fn xdp_attach(&self, r: &XdpRequest) -> Result<u32, ObjectError> {
        let ifx = r.ifindex;
        if r.flags & !XDP_FLAGS_MASK != 0 {
            return Err(refuse(ifx, "Invalid XDP flags", libc::EINVAL));
        }
        if r.link && r.flags & !XDP_FLAGS_MODES != 0 {
            return Err(refuse(
                ifx,
                "Invalid XDP flags for BPF link attachment",
                libc::EINVAL,
            ));
        }
        if (r.flags & XDP_FLAGS_MODES).count_ones() > 1 {
            return Err(refuse(
                ifx,
                "Only one XDP mode flag can be set",
                libc::EINVAL,
            ));
        }
        if !r.link && r.expected.is_some() && r.flags & XDP_FLAGS_REPLACE == 0 {
            return Err(refuse(
                ifx,
                "XDP_FLAGS_REPLACE is not specified",
                libc::EINVAL,
            ));
        }
        self.with_meta_lock(|h| {
            let here: Vec<(&ObjEntry, XdpAttachment)> = self
                .xdp_entries()
                .map(|e| (e, read(e)))
                .filter(|(_, a)| a.ifindex == ifx && ifx != 0 && a.netns == r.netns)
                .collect();
            if r.flags & XDP_FLAGS_MODES == 0 && here.len() > 1 {
                return Err(refuse(
                    ifx,
                    "More than one program loaded, unset mode is ambiguous",
                    libc::EINVAL,
                ));
            }
            let mode = match r.flags & XDP_FLAGS_MODES {
                0 if r.native => XDP_FLAGS_DRV_MODE,
                0 => XDP_FLAGS_SKB_MODE,
                m => m,
            };
            let cur = here.iter().find(|(_, a)| a.mode == mode);
            if cur.is_some_and(|(_, a)| a.link_id != 0) {
                return Err(refuse(
                    ifx,
                    "Can't replace active BPF XDP link",
                    libc::EBUSY,
                ));
            }
            let cur_prog = cur.map_or(0, |(_, a)| a.prog_id);
            if r.link && cur_prog != 0 {
                return Err(refuse(
                    ifx,
                    "Can't replace active XDP program with BPF link",
                    libc::EBUSY,
                ));
            }
            if r.flags & XDP_FLAGS_REPLACE != 0 && Some(cur_prog) != r.expected.or(Some(0)) {
                return Err(refuse(
                    ifx,
                    "Active program does not match expected",
                    libc::EEXIST,
                ));
            }
            if r.prog_id != 0 {
                if r.flags & XDP_FLAGS_UPDATE_IF_NOEXIST != 0 && cur_prog != 0 {
                    return Err(refuse(ifx, "XDP program already attached", libc::EBUSY));
                }
                let other = match mode {
                    XDP_FLAGS_SKB_MODE => Some(XDP_FLAGS_DRV_MODE),
                    XDP_FLAGS_DRV_MODE => Some(XDP_FLAGS_SKB_MODE),
                    _ => None,
                };
                if other.is_some_and(|o| here.iter().any(|(_, a)| a.mode == o)) {
                    return Err(refuse(
                        ifx,
                        "Native and generic XDP can't be active at the same time",
                        libc::EEXIST,
                    ));
                }
            }
            // The driver is asked only when the program changes: a device
            // without ndo_bpf refuses both modes; one with it has no offload
            // here (the runtime runs no offloaded programs) and refuses it as
            // veth's ndo_bpf refuses XDP_SETUP_PROG_HW.
            if r.prog_id != cur_prog {
                if (mode == XDP_FLAGS_HW_MODE || mode == XDP_FLAGS_DRV_MODE) && !r.native {
                    return Err(refuse(
                        ifx,
                        "Underlying driver does not support XDP in native mode",
                        libc::EOPNOTSUPP,
                    ));
                }
                if mode == XDP_FLAGS_HW_MODE {
                    return Err(refuse(ifx, "no XDP offload on this device", libc::EINVAL));
                }
            }
            if r.link {
                let slot = &h.reserved[crate::layout::NEXT_LINK_ID_WORD];
                let id = (slot.load(Ordering::Acquire) as u32).max(1);
                if id == u32::MAX {
                    return Err(ObjectError::TableFull {
                        capacity: crate::layout::OBJ_TABLE_CAP,
                    });
                }
                self.add_object_locked(h, |e, _| {
                    e.set(0, ENTRY_CREATING, KIND_XDP);
                    e.set(1, ifx, mode);
                    e.set(2, r.prog_id, id);
                    e.set(3, r.flags, r.netns);
                    e.set(28, 0, r.holder_pid);
                    Ok(())
                })?;
                slot.store(u64::from(id) + 1, Ordering::Release);
                return Ok(id);
            }
            match (cur, r.prog_id) {
                (Some((e, _)), 0) => e.w[0].store(u64::from(ENTRY_FREE), Ordering::Release),
                (Some((e, _)), p) => {
                    e.set(2, p, 0);
                    e.set(3, r.flags, r.netns);
                }
                (None, 0) => {}
                (None, p) => self.add_object_locked(h, |e, _| {
                    e.set(0, ENTRY_CREATING, KIND_XDP);
                    e.set(1, ifx, mode);
                    e.set(2, p, 0);
                    e.set(3, r.flags, r.netns);
                    Ok(())
                })?,
            }
            Ok(0)
        })
    }

    /// The link's first descriptor exists: its creator no longer holds it.
    pub fn xdp_link_made(&self, id: u32) -> Result<(), ObjectError> {
        self.with_meta_lock(|_| {
            let e = self
                .xdp_entries()
                .find(|e| e.hi(2) == id && id != 0)
                .ok_or(ObjectError::NoSuchLink { id })?;
            e.set(28, 0, 0);
            Ok(())
        })
    }

    /// `BPF_LINK_DETACH`: the link stays, its device lets it go (ifindex 0).
    pub fn xdp_link_detach(&self, id: u32) -> Result<(), ObjectError> {
        self.with_meta_lock(|_| {
            let e = self
                .xdp_entries()
                .find(|e| e.hi(2) == id && id != 0)
                .ok_or(ObjectError::NoSuchLink { id })?;
            let mode = e.hi(1);
            e.set(1, 0, mode);
            Ok(())
        })
    }

    /// `BPF_LINK_UPDATE`, as the kernel's `bpf_xdp_link_update`: EPERM when
    /// `expected` is not the link's program, ENOLINK when the link is detached.
    pub fn xdp_link_update(
        &self,
        id: u32,
        prog_id: u32,
        expected: Option<u32>,
    ) -> Result<(), ObjectError> {
        self.with_meta_lock(|_| {
            let e = self
                .xdp_entries()
                .find(|e| e.hi(2) == id && id != 0)
                .ok_or(ObjectError::NoSuchLink { id })?;
            let a = read(e);
            if expected.is_some_and(|p| p != a.prog_id) {
                return Err(refuse(a.ifindex, "not the expected program", libc::EPERM));
            }
            if a.ifindex == 0 {
                return Err(refuse(0, "link detached", libc::ENOLINK));
            }
            e.set(2, prog_id, id);
            Ok(())
        })
    }

    /// The part of a shim descriptor's name that says which store it belongs
    /// to (`xdpshim:<tag>:link:5`): the store file's device and inode in hex.
    pub fn descriptor_tag(&self) -> String {
        let (dev, ino) = self.identity();
        format!("{dev:x}.{ino:x}")
    }

    /// Removes the links that no pin holds and `held` does not keep (the
    /// caller knows the descriptors and processes); returns how many went.
    pub fn xdp_collect_links(&self, mut held: impl FnMut(&XdpAttachment) -> bool) -> usize {
        let links: Vec<XdpAttachment> = self
            .xdp_attachments()
            .into_iter()
            .filter(|a| a.link_id != 0)
            .collect();
        if links.is_empty() {
            return 0;
        }
        let pins = self.pins();
        let mut gone = 0;
        for a in links {
            if pins
                .iter()
                .any(|(_, p)| *p == crate::Pinned::Link(a.link_id))
                || held(&a)
            {
                continue;
            }
            if self.xdp_link_remove(a.link_id).is_ok() {
                gone += 1;
            }
        }
        gone
    }

    /// Removes link `id` (its last descriptor closed, and no pin holds it).
    pub fn xdp_link_remove(&self, id: u32) -> Result<(), ObjectError> {
        self.with_meta_lock(|_| {
            let e = self
                .xdp_entries()
                .find(|e| e.hi(2) == id && id != 0)
                .ok_or(ObjectError::NoSuchLink { id })?;
            e.w[0].store(u64::from(ENTRY_FREE), Ordering::Release);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreOptions;

    fn store() -> Store {
        Store::anonymous(StoreOptions {
            size: 1 << 20,
            ncpus: Some(1),
        })
        .expect("store")
    }

    fn errno(r: Result<u32, ObjectError>) -> i32 {
        r.map_err(|e| e.errno()).err().unwrap_or(0)
    }

    #[test]
    fn netlink_attachments_follow_dev_xdp_attach() {
        let s = store();
        let req = |prog_id, flags| XdpRequest {
            ifindex: 3,
            prog_id,
            flags,
            native: true,
            ..XdpRequest::default()
        };
        assert_eq!(s.xdp_attach(&req(7, 0)), Ok(0));
        let a = s.xdp_attachments();
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].ifindex, a[0].mode, a[0].prog_id, a[0].link_id),
            (3, 4, 7, 0)
        );
        // Replacing is allowed, except with UPDATE_IF_NOEXIST.
        assert_eq!(
            errno(s.xdp_attach(&req(8, XDP_FLAGS_UPDATE_IF_NOEXIST))),
            libc::EBUSY
        );
        assert_eq!(s.xdp_attach(&req(8, 0)), Ok(0));
        // REPLACE: the expected program must be the attached one.
        let mut r = req(9, XDP_FLAGS_REPLACE);
        r.expected = Some(7);
        assert_eq!(errno(s.xdp_attach(&r)), libc::EEXIST);
        r.expected = Some(8);
        assert_eq!(s.xdp_attach(&r), Ok(0));
        assert_eq!(s.xdp_attachments()[0].prog_id, 9);
        // Generic beside native is refused.
        assert_eq!(
            errno(s.xdp_attach(&req(9, XDP_FLAGS_SKB_MODE))),
            libc::EEXIST
        );
        assert_eq!(errno(s.xdp_attach(&req(9, 6))), libc::EINVAL);
        assert_eq!(
            errno(s.xdp_attach(&req(9, XDP_FLAGS_HW_MODE))),
            libc::EINVAL
        );
        // A link cannot replace a program.
        let mut l = req(9, 0);
        l.link = true;
        assert_eq!(errno(s.xdp_attach(&l)), libc::EBUSY);
        // Detach, then the link takes the device; netlink cannot touch it.
        assert_eq!(s.xdp_attach(&req(0, 0)), Ok(0));
        assert!(s.xdp_attachments().is_empty());
        let id = s.xdp_attach(&l).expect("link");
        assert!(id > 0);
        assert_eq!(errno(s.xdp_attach(&req(0, 0))), libc::EBUSY);
        assert_eq!(errno(s.xdp_attach(&req(5, 0))), libc::EBUSY);
        assert_eq!(s.xdp_link(id).map(|a| a.prog_id), Ok(9));
        assert_eq!(
            s.xdp_link_update(id, 5, Some(4)).map_err(|e| e.errno()),
            Err(libc::EPERM)
        );
        s.xdp_link_update(id, 5, Some(9)).expect("update");
        s.xdp_link_detach(id).expect("detach");
        assert_eq!(s.xdp_link(id).map(|a| (a.ifindex, a.prog_id)), Ok((0, 5)));
        assert_eq!(
            s.xdp_link_update(id, 6, None).map_err(|e| e.errno()),
            Err(libc::ENOLINK)
        );
        // The device is free again.
        assert_eq!(s.xdp_attach(&req(5, 0)), Ok(0));
        // A pin keeps a link that nothing else holds.
        s.pin("/sys/fs/bpf/l", crate::Pinned::Link(id))
            .expect("pin");
        assert_eq!(s.xdp_collect_links(|_| false), 0);
        s.unpin("/sys/fs/bpf/l").expect("unpin");
        assert_eq!(s.xdp_collect_links(|a| a.link_id == id), 0);
        assert_eq!(s.xdp_collect_links(|_| false), 1);
        assert_eq!(s.xdp_link(id).map_err(|e| e.errno()), Err(libc::ENOENT));
        // A device without native XDP takes generic mode by default.
        let mut lo = req(5, 0);
        lo.ifindex = 1;
        lo.native = false;
        assert_eq!(s.xdp_attach(&lo), Ok(0));
        assert_eq!(s.xdp_attachments()[0].mode, XDP_FLAGS_SKB_MODE);
        lo.flags = XDP_FLAGS_DRV_MODE;
        assert_eq!(errno(s.xdp_attach(&lo)), libc::EEXIST);
        // The same ifindex in another network namespace is another device.
        lo.netns = 77;
        lo.native = true;
        assert_eq!(s.xdp_attach(&lo), Ok(0));
        let other: Vec<_> = s
            .xdp_attachments()
            .into_iter()
            .filter(|a| a.netns == 77)
            .collect();
        assert_eq!((other.len(), other[0].mode), (1, XDP_FLAGS_DRV_MODE));
    }
}
