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
use std::os::fd::FromRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use memmap2::{MmapOptions, MmapRaw};

use crate::error::StoreError;

/// Directory holding named stores.
pub(crate) const SHM_DIR: &str = "/dev/shm";
/// Longest accepted store name, in bytes.
pub const MAX_STORE_NAME: usize = 200;

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

pub(crate) fn path_of(name: &str) -> PathBuf {
    PathBuf::from(SHM_DIR).join(name)
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

impl Shm {
    fn map(file: &File, len: usize, what: &str) -> Result<Shm, StoreError> {
        use std::os::unix::fs::MetadataExt;
        let meta = file
            .metadata()
            .map_err(|e| StoreError::io(format!("fstat {what}"), e))?;
        let raw = MmapOptions::new()
            .len(len)
            .map_raw(file)
            .map_err(|e| StoreError::io(format!("mmap {what}"), e))?;
        Ok(Shm {
            raw,
            ident: (meta.dev(), meta.ino()),
        })
    }

    /// Device and inode of the store's file.
    pub(crate) fn ident(&self) -> (u64, u64) {
        self.ident
    }

    /// Creates `/dev/shm/<name>` of `size` bytes (sparse), runs `init` on the mapping,
    /// then makes the file visible under its name. The file is built under a
    /// temporary name and `link(2)`ed into place, so no opener ever sees a
    /// half-initialised store, and an existing name is never overwritten.
    pub(crate) fn create_named(
        name: &str,
        size: usize,
        init: impl FnOnce(&Shm) -> Result<(), StoreError>,
    ) -> Result<Shm, StoreError> {
        validate_name(name)?;
        let final_path = path_of(name);
        if final_path.exists() {
            return Err(StoreError::AlreadyExists {
                name: name.to_owned(),
            });
        }
        let tmp_path = PathBuf::from(SHM_DIR).join(format!(
            ".xdpstore-tmp.{}.{}",
            std::process::id(),
            unique_suffix()
        ));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp_path)
            .map_err(|e| StoreError::io(format!("create {}", tmp_path.display()), e))?;
        let result = (|| {
            file.set_len(size as u64)
                .map_err(|e| StoreError::io(format!("ftruncate {}", tmp_path.display()), e))?;
            let shm = Shm::map(&file, size, &tmp_path.display().to_string())?;
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

    /// Opens and maps the whole of `/dev/shm/<name>`. Returns the mapping and the
    /// file length; the caller validates the contents.
    pub(crate) fn open_named(name: &str) -> Result<Shm, StoreError> {
        validate_name(name)?;
        let path = path_of(name);
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    name: name.to_owned(),
                })
            }
            Err(e) => return Err(StoreError::io(format!("open {}", path.display()), e)),
        };
        let len = file
            .metadata()
            .map_err(|e| StoreError::io(format!("fstat {}", path.display()), e))?
            .len();
        let min = crate::layout::HEADER_SIZE as u64;
        if len < min {
            return Err(StoreError::Truncated { len, need: min });
        }
        let len = usize::try_from(len)
            .map_err(|_| StoreError::corrupt("file larger than the address space"))?;
        Shm::map(&file, len, &path.display().to_string())
    }

    /// Creates an unnamed store in a memfd (shared with children across fork).
    pub(crate) fn anonymous(
        size: usize,
        init: impl FnOnce(&Shm) -> Result<(), StoreError>,
    ) -> Result<Shm, StoreError> {
        let cname = CString::new("xdp-store").map_err(|_| StoreError::corrupt("memfd name"))?;
        // SAFETY: memfd_create takes a valid NUL-terminated string and flags; it
        // returns a new fd or -1 and touches no memory of ours.
        let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(StoreError::io("memfd_create", io::Error::last_os_error()));
        }
        // SAFETY: fd was just returned by memfd_create and is owned by nobody else.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(size as u64)
            .map_err(|e| StoreError::io("ftruncate memfd", e))?;
        let shm = Shm::map(&file, size, "memfd")?;
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
        if end > self.len() || off % std::mem::align_of::<T>() != 0 {
            return None;
        }
        // SAFETY: [off, off+size) lies inside the live mapping (checked above),
        // the mapping base is page-aligned so `off` alignment is the pointer's,
        // and T: SharedPod is valid for any bytes and only accessed atomically.
        // The reference lives no longer than &self, which keeps the mapping.
        Some(unsafe { &*(self.base().add(off) as *const T) })
    }
}

/// Removes `/dev/shm/<name>`. Processes that have it mapped keep their mapping.
pub(crate) fn unlink(name: &str) -> Result<(), StoreError> {
    validate_name(name)?;
    let path = path_of(name);
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
