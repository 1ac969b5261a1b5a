//! The shared mapping: creating, opening and unlinking `/dev/shm/<name>` files,
//! anonymous (memfd) stores, and typed access to the mapped bytes.
//!
//! Raw memory lives here. Everything else reaches the mapping through
//! [`Shm::view`] (bounds- and alignment-checked, for types made only of atomics)
//! or through raw pointers derived from [`Shm::base`] at offsets that
//! `layout.rs` validated.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::StoreError;

/// Directory holding named stores unless [`StoreAccess::dir`] names another.
pub(crate) const SHM_DIR: &str = "/dev/shm";
/// Longest accepted store name, in bytes.
pub const MAX_STORE_NAME: usize = 200;

/// Where a named store lives, how it is shared when created, and which stores
/// made by someone else an open accepts.
///
/// By default a store lives in /dev/shm, is created with mode 0600, and is
/// opened only if the caller's effective uid owns it and neither its group nor
/// other users may write it: a store decides which programs, maps and BTF the
/// opener runs and reads, so a store planted by another user must never be
/// taken for one's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreAccess {
    /// Directory of named stores (default /dev/shm). It should be one only
    /// trusted users may replace entries in (a sticky or private directory).
    pub dir: Option<PathBuf>,
    /// Share a store being created with this group: it gets the group and mode
    /// 0660, so a control plane running as a member of the group can open it
    /// (with `trust` naming the group). Creating fails if the caller may not
    /// give the file this group.
    pub group: Option<u32>,
    /// Owners besides the caller whose stores `open` accepts.
    pub trust: Trust,
}

impl StoreAccess {
    /// The directory named stores live in.
    pub fn dir(&self) -> &Path {
        self.dir.as_deref().unwrap_or(Path::new(SHM_DIR))
    }

    /// The path of the store `name`.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }
}

/// Explicitly trusted owners of stores the caller did not create.
///
/// A store is accepted when the caller owns it, when its owner uid is in
/// `uids`, or when its group is in `gids` (a group-shared store: every member
/// of the group may write it, so trusting the group trusts each of them). A
/// group-writable store needs its group in `gids` even when the caller owns
/// it; a store writable by every user is never accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    /// Trusted owner uids.
    pub uids: Vec<u32>,
    /// Trusted groups.
    pub gids: Vec<u32>,
}

impl Trust {
    /// Parses `uid:N` and `gid:N` items separated by commas (the syntax of
    /// `xdp-runner --store-trust` and `XDPSHIM_STORE_TRUST`).
    pub fn parse(spec: &str) -> Result<Trust, StoreError> {
        let bad = || StoreError::InvalidTrust {
            spec: spec.to_owned(),
        };
        let mut t = Trust::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kind, n) = part.split_once(':').ok_or_else(bad)?;
            let n: u32 = n.trim().parse().map_err(|_| bad())?;
            match kind.trim() {
                "uid" => t.uids.push(n),
                "gid" => t.gids.push(n),
                _ => return Err(bad()),
            }
        }
        if t.is_empty() {
            return Err(bad());
        }
        Ok(t)
    }

    /// Whether nothing beyond the caller's own stores is trusted.
    pub fn is_empty(&self) -> bool {
        self.uids.is_empty() && self.gids.is_empty()
    }
}

/// The effective uid of this process.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether a store file with this owner, group and mode may be opened by `uid`
/// trusting `trust` (see [`Trust`]).
pub(crate) fn check_owner(
    path: &str,
    owner: u32,
    group: u32,
    mode: u32,
    uid: u32,
    trust: &Trust,
) -> Result<(), StoreError> {
    let mode = mode & 0o7777;
    if mode & 0o002 != 0 {
        return Err(StoreError::Writable {
            path: path.to_owned(),
            mode,
            who: "every user".into(),
            hint: "a store writable by everyone is never trusted (chmod o-w, or create it again)"
                .into(),
        });
    }
    let group_trusted = trust.gids.contains(&group);
    if owner != uid && !trust.uids.contains(&owner) && !group_trusted {
        return Err(StoreError::NotOwner {
            path: path.to_owned(),
            owner,
            group,
            uid,
        });
    }
    if mode & 0o020 != 0 && !group_trusted {
        return Err(StoreError::Writable {
            path: path.to_owned(),
            mode,
            who: format!("group {group}"),
            hint: format!(
                "trust the group explicitly (gid:{group}) to share the store with it, or chmod g-w"
            ),
        });
    }
    Ok(())
}

/// Checks a store name: non-empty, no '/', no NUL, at most [`MAX_STORE_NAME`] bytes,
/// and not "." or "..".
pub(crate) fn validate_name(name: &str) -> Result<(), StoreError> {
    let bad = |why| {
        Err(StoreError::InvalidName {
            name: name.to_owned(),
            why,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_STORE_NAME {
        return bad("longer than 200 bytes");
    }
    if name.contains('/') {
        return bad("contains '/'");
    }
    if name.contains('\0') {
        return bad("contains NUL");
    }
    if name == "." || name == ".." {
        return bad("is a directory name");
    }
    Ok(())
}

/// Types that may be viewed in shared memory through a shared reference: every
/// bit pattern is valid and every field is an atomic (or a zero-sized marker),
/// so concurrent access from other processes is not a data race.
///
/// # Safety
/// Implementors must be `repr(C)` structs built only of `AtomicU8/16/32/64`
/// (or arrays of them), with no padding that Rust code reads.
pub(crate) unsafe trait SharedPod: Sized {}

// SAFETY: atomics are valid for every bit pattern and are accessed atomically.
unsafe impl SharedPod for std::sync::atomic::AtomicU32 {}
// SAFETY: as above.
unsafe impl SharedPod for std::sync::atomic::AtomicU64 {}

/// A shared, writable mapping of a whole store file.
#[derive(Debug)]
pub(crate) struct Shm {
    raw: MmapRaw,
    /// The mapped file, kept open: its length is re-checked against the mapping
    /// ([`Shm::check_len`]) and users that map parts of it again use this very
    /// file, never a path that may name another one by then.
    file: File,
    /// Device and inode of the mapped file: which store this is, whatever
    /// name it is opened by (a store removed and made again is another).
    ident: (u64, u64),
}

// SAFETY: the mapping is plain shared memory; all access from this crate goes
// through atomics (SharedPod views) or raw pointers whose users document their
// synchronisation. MmapRaw itself is Send + Sync.
unsafe impl Send for Shm {}
// SAFETY: as above.
unsafe impl Sync for Shm {}

/// Reserves the blocks of `[0, len)` of `file` (no hole is left to fault in
/// later). `create` asks for the file to be extended to `len` too.
fn reserve(file: &File, len: u64, path: &str, create: bool) -> Result<(), StoreError> {
    let Ok(len_i) = libc::off_t::try_from(len) else {
        return Err(StoreError::NoRoom {
            path: path.to_owned(),
            size: len,
            source: io::Error::from_raw_os_error(libc::EFBIG),
        });
    };
    let err = if create {
        // SAFETY: posix_fallocate works on our own descriptor; it returns an
        // error number and touches no memory of ours.
        unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len_i) }
    } else {
        // Mode 0 inside the file's length: allocates holes, keeps the size and
        // the data. Unlike posix_fallocate it never emulates by writing.
        // SAFETY: as above; fallocate returns -1 and sets errno on failure.
        let r = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len_i) };
        if r == 0 {
            0
        } else {
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO)
        }
    };
    match err {
        0 => Ok(()),
        // A filesystem that cannot reserve (not tmpfs): nothing better to do here.
        libc::EOPNOTSUPP | libc::ENOSYS if !create => Ok(()),
        e => Err(StoreError::NoRoom {
            path: path.to_owned(),
            size: len,
            source: io::Error::from_raw_os_error(e),
        }),
    }
}

/// Reads the immutable head of a store header from the file (not the mapping,
/// so a short or sparse file cannot fault): magic, version and total size,
/// checked against the file length before anything is mapped.
fn precheck_header(file: &File, len: u64) -> Result<(), StoreError> {
    let mut head = [0u8; 24];
    file.read_exact_at(&mut head, 0)
        .map_err(|e| StoreError::io("read store header", e))?;
    let word = |o: usize| u64::from_ne_bytes(head[o..o + 8].try_into().unwrap_or([0; 8]));
    let magic = word(0);
    if magic != crate::layout::MAGIC {
        return Err(StoreError::BadMagic {
            found: magic,
            expected: crate::layout::MAGIC,
        });
    }
    let version = u32::from_ne_bytes([head[8], head[9], head[10], head[11]]);
    if !(crate::layout::LAYOUT_VERSION_MIN..=crate::layout::LAYOUT_VERSION).contains(&version) {
        return Err(StoreError::Version {
            found: version,
            expected: crate::layout::LAYOUT_VERSION,
        });
    }
    let total = word(16);
    if total > len {
        return Err(StoreError::Truncated { len, need: total });
    }
    if total != len {
        return Err(StoreError::corrupt(format!(
            "header total_size {total} but file is {len} bytes"
        )));
    }
    Ok(())
}

impl Shm {
    fn map(file: File, len: usize, what: &str) -> Result<Shm, StoreError> {
        let meta = file
            .metadata()
            .map_err(|e| StoreError::io(format!("fstat {what}"), e))?;
        let raw = MmapOptions::new()
            .len(len)
            .map_raw(&file)
            .map_err(|e| StoreError::io(format!("mmap {what}"), e))?;
        Ok(Shm {
            raw,
            file,
            ident: (meta.dev(), meta.ino()),
        })
    }

    /// Device and inode of the store's file.
    pub(crate) fn ident(&self) -> (u64, u64) {
        self.ident
    }

    /// The mapped file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Checks that the file still holds the whole mapping: a store another
    /// process shortened would fault (SIGBUS) on access past its new end. This
    /// narrows the window but cannot close it (see `Store::check_size`).
    pub(crate) fn check_len(&self) -> Result<(), StoreError> {
        let len = self
            .file
            .metadata()
            .map_err(|e| StoreError::io("fstat store", e))?
            .len();
        if len < self.len() as u64 {
            return Err(StoreError::Truncated {
                len,
                need: self.len() as u64,
            });
        }
        Ok(())
    }

    /// Creates `<dir>/<name>` of `size` bytes with its memory reserved, runs
    /// `init` on the mapping, then makes the file visible under its name. The
    /// file is built under a temporary name (O_CREAT|O_EXCL) and `link(2)`ed into
    /// place, so no opener ever sees a half-initialised store, an existing name
    /// (or a link planted there) is never overwritten or followed, and a failure
    /// (no room to reserve the memory) leaves nothing behind.
    pub(crate) fn create_named(
        name: &str,
        size: usize,
        access: &StoreAccess,
        init: impl FnOnce(&Shm) -> Result<(), StoreError>,
    ) -> Result<Shm, StoreError> {
        validate_name(name)?;
        let final_path = access.path_of(name);
        if std::fs::symlink_metadata(&final_path).is_ok() {
            return Err(StoreError::AlreadyExists {
                name: name.to_owned(),
            });
        }
        let tmp_path = access.dir().join(format!(
            ".xdpstore-tmp.{}.{}",
            std::process::id(),
            unique_suffix()
        ));
        let tmp_shown = tmp_path.display().to_string();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp_path)
            .map_err(|e| StoreError::io(format!("create {tmp_shown}"), e))?;
        let result = (|| {
            let fd = file.as_raw_fd();
            let mode = if let Some(gid) = access.group {
                // SAFETY: fchown on our own descriptor; uid -1 keeps the owner.
                if unsafe { libc::fchown(fd, u32::MAX, gid) } != 0 {
                    return Err(StoreError::io(
                        format!("give {tmp_shown} the group {gid}"),
                        io::Error::last_os_error(),
                    ));
                }
                0o660
            } else {
                0o600
            };
            // Explicit, whatever the umask left.
            // SAFETY: fchmod on our own descriptor.
            if unsafe { libc::fchmod(fd, mode) } != 0 {
                return Err(StoreError::io(
                    format!("chmod {tmp_shown}"),
                    io::Error::last_os_error(),
                ));
            }
            reserve(&file, size as u64, &final_path.display().to_string(), true)?;
            let file = file
                .try_clone()
                .map_err(|e| StoreError::io(format!("dup {tmp_shown}"), e))?;
            let shm = Shm::map(file, size, &tmp_shown)?;
            init(&shm)?;
            match std::fs::hard_link(&tmp_path, &final_path) {
                Ok(()) => Ok(shm),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    Err(StoreError::AlreadyExists {
                        name: name.to_owned(),
                    })
                }
                Err(e) => Err(StoreError::io(format!("link {}", final_path.display()), e)),
            }
        })();
        // The temporary name goes away whatever happened; the mapping keeps the data.
        let _ = std::fs::remove_file(&tmp_path);
        result
    }

    /// Opens and maps the whole of `<dir>/<name>`, after checking what it is
    /// (a regular file, not reached through a link, owned as `access` allows,
    /// its length the one its header records) and reserving its memory (a
    /// sparse store on a full filesystem is an error here, not SIGBUS later).
    /// The caller validates the rest of the contents.
    pub(crate) fn open_named(name: &str, access: &StoreAccess) -> Result<Shm, StoreError> {
        validate_name(name)?;
        let path = access.path_of(name);
        let shown = path.display().to_string();
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    name: name.to_owned(),
                })
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(StoreError::Symlink { path: shown })
            }
            Err(e) => return Err(StoreError::io(format!("open {shown}"), e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| StoreError::io(format!("fstat {shown}"), e))?;
        if !meta.file_type().is_file() {
            return Err(StoreError::NotRegular { path: shown });
        }
        check_owner(
            &shown,
            meta.uid(),
            meta.gid(),
            meta.mode(),
            euid(),
            &access.trust,
        )?;
        let len = meta.len();
        let min = crate::layout::HEADER_SIZE as u64;
        if len < min {
            return Err(StoreError::Truncated { len, need: min });
        }
        precheck_header(&file, len)?;
        let len_us = usize::try_from(len)
            .map_err(|_| StoreError::corrupt("file larger than the address space"))?;
        // Only a file with holes needs blocks (a store this build created has
        // them all); walking a reserved store would cost milliseconds per open.
        if meta.blocks().saturating_mul(512) < len {
            reserve(&file, len, &shown, false)?;
        }
        Shm::map(file, len_us, &shown)
    }

    /// Creates an unnamed store in a memfd (shared with children across fork).
    /// Its size is sealed: no process holding the descriptor can shrink it
    /// under a mapping. Its memory is not reserved: memfds are not bounded by a
    /// filesystem size, so only memory exhaustion (the OOM killer's business)
    /// could fail a first touch, and one-shot runs keep paying only for what
    /// they use.
    pub(crate) fn anonymous(
        size: usize,
        init: impl FnOnce(&Shm) -> Result<(), StoreError>,
    ) -> Result<Shm, StoreError> {
        let cname = CString::new("xdp-store").map_err(|_| StoreError::corrupt("memfd name"))?;
        // SAFETY: memfd_create takes a valid NUL-terminated string and flags; it
        // returns a new fd or -1 and touches no memory of ours.
        let fd = unsafe {
            libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        };
        if fd < 0 {
            return Err(StoreError::io("memfd_create", io::Error::last_os_error()));
        }
        // SAFETY: fd was just returned by memfd_create and is owned by nobody else.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(size as u64)
            .map_err(|e| StoreError::io("ftruncate memfd", e))?;
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: fcntl F_ADD_SEALS on our own memfd, an int argument.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(StoreError::io(
                "seal memfd size",
                io::Error::last_os_error(),
            ));
        }
        let shm = Shm::map(file, size, "memfd")?;
        init(&shm)?;
        Ok(shm)
    }

    /// Start of the mapping.
    #[inline]
    pub(crate) fn base(&self) -> *mut u8 {
        self.raw.as_mut_ptr()
    }

    /// Length of the mapping in bytes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.raw.len()
    }

    /// A checked view of a `T` at byte offset `off`: `None` if it would leave the
    /// mapping or is misaligned.
    pub(crate) fn view<T: SharedPod>(&self, off: usize) -> Option<&T> {
        let size = std::mem::size_of::<T>();
        let end = off.checked_add(size)?;
        if end > self.len() || !off.is_multiple_of(std::mem::align_of::<T>()) {
            return None;
        }
        // SAFETY: [off, off+size) lies inside the live mapping (checked above),
        // the mapping base is page-aligned so `off` alignment is the pointer's,
        // and T: SharedPod is valid for any bytes and only accessed atomically.
        // The reference lives no longer than &self, which keeps the mapping.
        Some(unsafe { &*(self.base().add(off) as *const T) })
    }
}

/// Removes `<dir>/<name>` (a link there is removed, never followed).
/// Processes that have the store mapped keep their mapping.
pub(crate) fn unlink(name: &str, access: &StoreAccess) -> Result<(), StoreError> {
    validate_name(name)?;
    let path = access.path_of(name);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NotFound {
            name: name.to_owned(),
        }),
        Err(e) => Err(StoreError::io(format!("unlink {}", path.display()), e)),
    }
}

fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(48)
}

/// A random-ish 32-bit seed (hash seeds); not cryptographic.
pub(crate) fn random_u32() -> u32 {
    let mut buf = [0u8; 4];
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) };
    if n == 4 {
        u32::from_ne_bytes(buf)
    } else {
        let x = unique_suffix();
        (x ^ (x >> 32)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(validate_name("ok-name_1.x").is_ok());
        for bad in ["", "a/b", "..", ".", "nul\0x"] {
            assert!(
                matches!(validate_name(bad), Err(StoreError::InvalidName { .. })),
                "{bad:?}"
            );
        }
        assert!(validate_name(&"x".repeat(200)).is_ok());
        assert!(validate_name(&"x".repeat(201)).is_err());
    }

    #[test]
    fn trust_specs_parse() {
        let t = Trust::parse("uid:1000, gid:100,uid:7").expect("valid");
        assert_eq!((t.uids, t.gids), (vec![1000, 7], vec![100]));
        for bad in [
            "",
            ",",
            "1000",
            "uid:",
            "uid:-1",
            "user:1000",
            "uid:1000,gid:x",
        ] {
            assert!(
                matches!(Trust::parse(bad), Err(StoreError::InvalidTrust { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn owners_modes_and_trust() {
        let none = Trust::default();
        let ok = |owner, group, mode, uid, t: &Trust| check_owner("/s", owner, group, mode, uid, t);
        assert!(ok(0, 0, 0o100600, 0, &none).is_ok());
        assert!(ok(1000, 1000, 0o600, 1000, &none).is_ok());
        assert!(ok(0, 0, 0o640, 0, &none).is_ok(), "group-readable is fine");
        assert!(matches!(
            ok(1000, 1000, 0o600, 0, &none),
            Err(StoreError::NotOwner {
                owner: 1000,
                uid: 0,
                ..
            })
        ));
        assert!(matches!(
            ok(0, 0, 0o620, 0, &none),
            Err(StoreError::Writable { .. })
        ));
        assert!(matches!(
            ok(0, 0, 0o602, 0, &none),
            Err(StoreError::Writable { .. })
        ));
        let uid = Trust::parse("uid:1000").expect("trust");
        let gid = Trust::parse("gid:50").expect("trust");
        assert!(ok(1000, 1000, 0o600, 0, &uid).is_ok());
        assert!(matches!(
            ok(1000, 50, 0o660, 0, &uid),
            Err(StoreError::Writable { .. })
        ));
        assert!(ok(1000, 50, 0o660, 0, &gid).is_ok());
        assert!(ok(1000, 50, 0o600, 0, &gid).is_ok());
        assert!(matches!(
            ok(1000, 51, 0o660, 0, &gid),
            Err(StoreError::NotOwner { .. })
        ));
        let all = Trust::parse("uid:1000,gid:50").expect("trust");
        assert!(matches!(
            ok(1000, 50, 0o666, 0, &all),
            Err(StoreError::Writable { .. })
        ));
    }

    #[test]
    fn anonymous_stores_cannot_be_resized() {
        let shm = Shm::anonymous(8192, |_| Ok(())).expect("memfd");
        assert!(shm.file().set_len(4096).is_err(), "shrinking is sealed");
        assert!(shm.file().set_len(16384).is_err(), "growing is sealed");
        shm.check_len().expect("whole");
    }

    #[test]
    fn view_is_bounds_and_alignment_checked() {
        let shm = Shm::anonymous(8192, |_| Ok(())).expect("memfd");
        use std::sync::atomic::AtomicU64;
        assert!(shm.view::<AtomicU64>(0).is_some());
        assert!(shm.view::<AtomicU64>(8184).is_some());
        assert!(shm.view::<AtomicU64>(8185).is_none());
        assert!(shm.view::<AtomicU64>(8192).is_none());
        assert!(shm.view::<AtomicU64>(4).is_none());
        assert!(shm.view::<AtomicU64>(usize::MAX - 3).is_none());
    }
}
