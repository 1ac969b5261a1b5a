//! Error types of the store and of the maps.
//!
//! [`StoreError`] covers creating, opening and validating a store file.
//! [`MapError`] covers map creation and every map operation; [`MapError::errno`]
//! gives the positive errno the kernel's `bpf(2)` would have returned.

use std::io;

/// An error while creating, opening or validating a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named store does not exist in /dev/shm.
    #[error("store {name:?} not found")]
    NotFound {
        /// The store name.
        name: String,
    },
    /// `Store::create` on a name that already exists.
    #[error("store {name:?} already exists")]
    AlreadyExists {
        /// The store name.
        name: String,
    },
    /// The name is empty, holds a '/', a NUL, or is longer than 200 bytes.
    #[error("invalid store name {name:?}: {why}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The options cannot describe a store (size too small, ncpus out of range).
    #[error("invalid store options: {what}")]
    InvalidOptions {
        /// What is wrong.
        what: String,
    },
    /// The file is shorter than the header, or than the size its header records.
    #[error("store file truncated: {len} bytes, need {need}")]
    Truncated {
        /// The file length found.
        len: u64,
        /// The length required.
        need: u64,
    },
    /// The file does not start with the store magic.
    #[error("not a store file: magic {found:#018x}, expected {expected:#018x}")]
    BadMagic {
        /// The magic found.
        found: u64,
        /// The magic this build writes.
        expected: u64,
    },
    /// The store was written with another layout version.
    #[error("store layout version {found}, this build reads version {expected}")]
    Version {
        /// The version found in the header.
        found: u32,
        /// The version this build reads and writes.
        expected: u32,
    },
    /// A header or map-table field that this build would have to trust is inconsistent.
    #[error("store corrupt: {what}")]
    Corrupt {
        /// The inconsistency.
        what: String,
    },
    /// The store has no room left (bump allocator or a fixed table exhausted).
    #[error("store full: {what}")]
    Full {
        /// What ran out.
        what: String,
    },
    /// The filesystem holding the store has no room to reserve its memory
    /// (creating it, or backing a sparse store found at open). Nothing is left
    /// behind by a failed create.
    #[error("no room for store {path}: its {size} bytes could not be reserved")]
    NoRoom {
        /// The store's path.
        path: String,
        /// The bytes that had to be reserved.
        size: u64,
        /// The OS error (ENOSPC, ENOMEM).
        #[source]
        source: io::Error,
    },
    /// The store path is a symbolic link (never followed).
    #[error("store {path} is a symbolic link; stores are never opened through links")]
    Symlink {
        /// The store's path.
        path: String,
    },
    /// The store path is not a regular file.
    #[error("store {path} is not a regular file")]
    NotRegular {
        /// The store's path.
        path: String,
    },
    /// The store belongs to another user (or group) the caller did not trust.
    #[error("store {path} is owned by uid {owner} (gid {group}), not you (uid {uid}); trust it explicitly to open it (StoreAccess::trust, xdp-runner --store-trust uid:{owner} or gid:{group}, XDPSHIM_STORE_TRUST=uid:{owner})")]
    NotOwner {
        /// The store's path.
        path: String,
        /// Owner uid of the file.
        owner: u32,
        /// Group of the file.
        group: u32,
        /// The caller's effective uid.
        uid: u32,
    },
    /// The store's mode lets others write it: anyone could have changed what the
    /// opener would trust.
    #[error("store {path} has mode {mode:04o}: writable by {who}; {hint}")]
    Writable {
        /// The store's path.
        path: String,
        /// The file's permission bits.
        mode: u32,
        /// "every user" or "group N".
        who: String,
        /// What to do about it.
        hint: String,
    },
    /// A trust specification that cannot be parsed.
    #[error("invalid store trust {spec:?}: expected a comma-separated list of uid:N and gid:N")]
    InvalidTrust {
        /// The specification given.
        spec: String,
    },
    /// An operating-system call failed.
    #[error("{op}: {source}")]
    Io {
        /// The operation, e.g. "open /dev/shm/x".
        op: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    pub(crate) fn io(op: impl Into<String>, source: io::Error) -> Self {
        StoreError::Io {
            op: op.into(),
            source,
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        StoreError::Corrupt { what: what.into() }
    }
}

/// An error about programs and pins in the store's object table.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ObjectError {
    /// Every object-table slot is used (or the id space is exhausted).
    #[error("store object table full ({capacity} entries)")]
    TableFull {
        /// The table capacity.
        capacity: u32,
    },
    /// No pin at this path.
    #[error("no pin at {path:?}")]
    NoSuchPin {
        /// The path asked for.
        path: String,
    },
    /// The path is already pinned.
    #[error("{path:?} is already pinned")]
    Exists {
        /// The path.
        path: String,
    },
    /// The pin names a program where a map was wanted (or the reverse).
    #[error("{path:?} names another kind of object")]
    WrongKind {
        /// The path.
        path: String,
    },
    /// An empty path, one longer than 119 bytes, or one holding NUL.
    #[error("invalid pin path {path:?}")]
    InvalidPath {
        /// The path.
        path: String,
    },
    /// No live map with this id.
    #[error("no map with id {id}")]
    NoSuchMap {
        /// The id.
        id: u32,
    },
    /// No program with this id.
    #[error("no program with id {id}")]
    NoSuchProgram {
        /// The id.
        id: u32,
    },
    /// No BTF object with this id.
    #[error("no BTF object with id {id}")]
    NoSuchBtf {
        /// The id.
        id: u32,
    },
    /// The definition is invalid.
    #[error("invalid object: {what}")]
    Invalid {
        /// What is wrong.
        what: String,
    },
    /// The store is full, or a lock of it could not be taken.
    #[error("store: {what}")]
    Store {
        /// What went wrong.
        what: String,
    },
    /// A record of the object table or its data is inconsistent (written by a
    /// process that was not this runtime, or damaged).
    #[error("store corrupt: {what}")]
    Corrupt {
        /// The inconsistency.
        what: String,
    },
}

impl ObjectError {
    /// The errno the kernel's bpf(2) gives for this error.
    pub fn errno(&self) -> i32 {
        match self {
            ObjectError::TableFull { .. } | ObjectError::Store { .. } => libc::ENOSPC,
            ObjectError::Corrupt { .. } => libc::EUCLEAN,
            ObjectError::NoSuchPin { .. }
            | ObjectError::NoSuchMap { .. }
            | ObjectError::NoSuchProgram { .. }
            | ObjectError::NoSuchBtf { .. } => libc::ENOENT,
            ObjectError::Exists { .. } => libc::EEXIST,
            ObjectError::WrongKind { .. } | ObjectError::InvalidPath { .. } => libc::EINVAL,
            ObjectError::Invalid { .. } => libc::EINVAL,
        }
    }
}

/// An error from map creation or a map operation.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MapError {
    /// The map definition is rejected (the kernel's map_alloc_check returning EINVAL).
    #[error("invalid map definition for map {name:?}: {what}")]
    InvalidDef {
        /// The map name from the definition.
        name: String,
        /// What is wrong.
        what: String,
    },
    /// The map definition asks for more than the kernel allows (E2BIG at creation).
    #[error("map {name:?} too big: {what}")]
    DefTooBig {
        /// The map name from the definition.
        name: String,
        /// What is too big.
        what: String,
    },
    /// The store has not enough free space for the map's memory (ENOMEM).
    #[error("no space in store for map {name:?}: need {needed} bytes, {available} free")]
    NoSpace {
        /// The map name.
        name: String,
        /// Bytes requested.
        needed: u64,
        /// Bytes left in the store.
        available: u64,
    },
    /// Every map-table slot is used (ENOSPC, as the kernel's id allocator).
    #[error("store map table full ({capacity} maps)")]
    TableFull {
        /// The table capacity.
        capacity: u32,
    },
    /// No live map has this id (ENOENT).
    #[error("no map with id {id}")]
    NoSuchMap {
        /// The id asked for.
        id: u32,
    },
    /// No live map has this name (ENOENT).
    #[error("no map named {name:?}")]
    NoSuchName {
        /// The name asked for.
        name: String,
    },
    /// Several live maps have this name (EINVAL): open one by id.
    #[error("{} maps are named {name:?} (ids {ids:?}); open one by id", ids.len())]
    AmbiguousName {
        /// The name asked for.
        name: String,
        /// The maps carrying it.
        ids: Vec<u32>,
    },
    /// The map table entry or the map's memory failed validation (EUCLEAN).
    #[error("map {id} corrupt: {what}")]
    Corrupt {
        /// The map id.
        id: u32,
        /// The inconsistency.
        what: String,
    },
    /// Update flags not accepted for this map (EINVAL).
    #[error("map {id}: invalid flags {flags:#x}")]
    InvalidFlags {
        /// The map id.
        id: u32,
        /// The flags passed.
        flags: u64,
    },
    /// A key slice of the wrong length (EINVAL).
    #[error("map {id}: key is {got} bytes, map key_size is {expected}")]
    KeySize {
        /// The map id.
        id: u32,
        /// The map's key size.
        expected: usize,
        /// The slice length passed.
        got: usize,
    },
    /// A value slice of the wrong length (EINVAL).
    #[error("map {id}: value buffer is {got} bytes, expected {expected}")]
    ValueSize {
        /// The map id.
        id: u32,
        /// The size expected (see `Map::user_value_size`).
        expected: usize,
        /// The slice length passed.
        got: usize,
    },
    /// The key is not in the map (ENOENT); also the end of a get_next_key walk.
    #[error("map {id}: no such key")]
    NotFound {
        /// The map id.
        id: u32,
    },
    /// BPF_NOEXIST on a key that exists (EEXIST).
    #[error("map {id}: key exists")]
    Exists {
        /// The map id.
        id: u32,
    },
    /// A new key on a full map, or an array index >= max_entries on update (E2BIG).
    #[error("map {id}: full or index out of range (max_entries {max_entries})")]
    TooBig {
        /// The map id.
        id: u32,
        /// The map's max_entries.
        max_entries: u32,
    },
    /// The operation does not exist for this map type (EINVAL), e.g. delete on an array.
    #[error("map {id}: {op} not supported on map type {map_type}")]
    NotSupported {
        /// The map id.
        id: u32,
        /// The map type.
        map_type: u32,
        /// The operation.
        op: &'static str,
    },
    /// The map's access flags (BPF_F_RDONLY, BPF_F_WRONLY, BPF_F_RDONLY_PROG, frozen)
    /// forbid the operation (EPERM).
    #[error("map {id}: {op} not permitted ({why})")]
    PermissionDenied {
        /// The map id.
        id: u32,
        /// The operation.
        op: &'static str,
        /// Which flag forbids it.
        why: &'static str,
    },
    /// The definition asks for something the kernel does not support (ENOTSUPP,
    /// 524), e.g. an LRU map with BPF_F_NO_PREALLOC.
    #[error("map {name:?} not supported: {what}")]
    DefNotSupported {
        /// The map name from the definition.
        name: String,
        /// What is not supported.
        what: String,
    },
    /// An LPM trie holds max_entries prefixes and a new one is added (ENOSPC).
    #[error("map {id}: no space for a new entry (max_entries {max_entries})")]
    NoSpaceLeft {
        /// The map id.
        id: u32,
        /// The map's max_entries.
        max_entries: u32,
    },
    /// A map-in-map value names no live map (EBADF, as a bad inner map fd).
    #[error("map {id}: no map with id {inner} to store as an inner map")]
    BadInnerMap {
        /// The outer map id.
        id: u32,
        /// The inner map id given.
        inner: u32,
    },
    /// A value is out of range for the map (EOVERFLOW), e.g. a cpumap qsize above 16384.
    #[error("map {id}: value out of range: {what}")]
    Overflow {
        /// The map id.
        id: u32,
        /// What is out of range.
        what: &'static str,
    },
    /// A ring has no room for a record (the helper's -EAGAIN / a dropped sample).
    #[error("map {id}: ring full ({need} bytes needed)")]
    RingFull {
        /// The map id.
        id: u32,
        /// Bytes the record needs.
        need: u64,
    },
    /// The operation exists but this map type refuses it with a specific errno
    /// (e.g. EOPNOTSUPP for a user lookup in an XSKMAP, ENOTSUPP for a ringbuf).
    #[error("map {id}: {op} not supported (errno {errno})")]
    Unsupported {
        /// The map id.
        id: u32,
        /// The operation.
        op: &'static str,
        /// The errno the kernel returns.
        errno: i32,
    },
    /// The key names no possible CPU (ENODEV), as cpumap updates check.
    #[error("map {id}: no such device: {what}")]
    NoDevice {
        /// The map id.
        id: u32,
        /// What is missing.
        what: &'static str,
    },
    /// The map is already frozen (EBUSY).
    #[error("map {id}: already frozen")]
    Busy {
        /// The map id.
        id: u32,
    },
    /// A lock in the store stayed held by a live process for the whole wait
    /// bound (`lock::STORE_LOCK_WAIT`): the holder is stopped or stuck (EDEADLK).
    #[error("{lock} held by live pid {pid} for {waited_ms} ms (no operation holds it that long: is pid {pid} stopped or stuck?)")]
    LockHeld {
        /// The map id (0 for a store-wide lock).
        id: u32,
        /// Which lock, e.g. `map 3 "flows" stripe lock 7` or `store meta_lock`.
        lock: String,
        /// The pid in the lock word.
        pid: u32,
        /// How long the caller waited.
        waited_ms: u64,
    },
    /// A map has no free element or node left although it holds fewer than
    /// max_entries entries (ENOMEM, the kernel's allocation failure).
    #[error("map {id}: no free {what} left ({why})")]
    NoFreeElement {
        /// The map id.
        id: u32,
        /// "element" or "node".
        what: &'static str,
        /// Why none is free.
        why: &'static str,
    },
    /// A `bpf_timer` in the value the kernel's `map_check_btf` refuses: EOPNOTSUPP
    /// for a map type that cannot hold timers, EINVAL for a misplaced one, E2BIG
    /// for more than one.
    #[error("map {name:?}: {what}")]
    BadTimer {
        /// The map's name.
        name: String,
        /// What is wrong.
        what: String,
        /// The kernel's errno.
        errno: i32,
    },
    /// Another live process drives the store's timers (EBUSY).
    #[error("the store's timers are driven by live pid {pid}")]
    TimerLeaseHeld {
        /// The driver's pid.
        pid: u32,
    },
    /// A value argument is invalid for this map (EINVAL), e.g. program id 0 in a PROG_ARRAY.
    #[error("map {id}: invalid value: {what}")]
    InvalidValue {
        /// The map id.
        id: u32,
        /// What is wrong.
        what: &'static str,
    },
}

/// The kernel's internal ENOTSUPP (524), which bpf(2) passes to user space.
pub const ENOTSUPP: i32 = 524;

impl MapError {
    /// The positive errno the kernel's `bpf(2)` returns for the same failure.
    pub fn errno(&self) -> i32 {
        match self {
            MapError::InvalidDef { .. }
            | MapError::InvalidFlags { .. }
            | MapError::KeySize { .. }
            | MapError::ValueSize { .. }
            | MapError::NotSupported { .. }
            | MapError::InvalidValue { .. } => libc::EINVAL,
            MapError::DefTooBig { .. } | MapError::TooBig { .. } => libc::E2BIG,
            MapError::NoSpace { .. } => libc::ENOMEM,
            MapError::TableFull { .. } => libc::ENOSPC,
            MapError::NoSuchMap { .. }
            | MapError::NotFound { .. }
            | MapError::NoSuchName { .. } => libc::ENOENT,
            MapError::AmbiguousName { .. } => libc::EINVAL,
            MapError::Corrupt { .. } => libc::EUCLEAN,
            MapError::Exists { .. } => libc::EEXIST,
            MapError::PermissionDenied { .. } => libc::EPERM,
            MapError::Busy { .. } => libc::EBUSY,
            MapError::DefNotSupported { .. } => ENOTSUPP,
            MapError::NoSpaceLeft { .. } => libc::ENOSPC,
            MapError::BadInnerMap { .. } => libc::EBADF,
            MapError::Overflow { .. } => libc::EOVERFLOW,
            MapError::RingFull { .. } => libc::EAGAIN,
            MapError::Unsupported { errno, .. } => *errno,
            MapError::NoDevice { .. } => libc::ENODEV,
            MapError::LockHeld { .. } => libc::EDEADLK,
            MapError::NoFreeElement { .. } => libc::ENOMEM,
            MapError::BadTimer { errno, .. } => *errno,
            MapError::TimerLeaseHeld { .. } => libc::EBUSY,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_values_match_linux() {
        // Linux errno numbers (asm-generic/errno-base.h, errno.h).
        assert_eq!(MapError::NotFound { id: 1 }.errno(), 2);
        assert_eq!(
            MapError::TooBig {
                id: 1,
                max_entries: 1
            }
            .errno(),
            7
        );
        assert_eq!(MapError::Exists { id: 1 }.errno(), 17);
        assert_eq!(MapError::InvalidFlags { id: 1, flags: 9 }.errno(), 22);
        assert_eq!(
            MapError::NoSpace {
                name: "m".into(),
                needed: 1,
                available: 0
            }
            .errno(),
            12
        );
        assert_eq!(
            MapError::NotSupported {
                id: 1,
                map_type: 2,
                op: "delete"
            }
            .errno(),
            22
        );
    }

    #[test]
    fn store_error_messages_carry_context() {
        let e = StoreError::Version {
            found: 9,
            expected: 1,
        };
        assert!(e.to_string().contains('9'));
        let e = StoreError::corrupt("map table entry 3: data outside file");
        assert!(e.to_string().contains("entry 3"));
    }
}
