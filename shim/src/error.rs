//! Errors the shim reports for store data it will not hand to an application.

use crate::user::Errno;

/// A store record that fails the checks the kernel's own objects always pass
/// (the kernel verifies BTF, map and program records before any application
/// sees them; a store may have been written by anyone who could write its
/// file). Answered with EUCLEAN, as the maps crate answers corrupt maps.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreDataError {
    /// A BTF object's data.
    #[error("store corrupt: BTF {id}: {what}")]
    Btf {
        /// The BTF object's id.
        id: u32,
        /// The inconsistency.
        what: String,
    },
    /// A map's BTF references.
    #[error("store corrupt: map {id}: {what}")]
    Map {
        /// The map's id.
        id: u32,
        /// The inconsistency.
        what: String,
    },
    /// A program's record.
    #[error("store corrupt: program {id}: {what}")]
    Program {
        /// The program's id.
        id: u32,
        /// The inconsistency.
        what: String,
    },
}

impl StoreDataError {
    /// The errno the application sees.
    pub fn errno(&self) -> Errno {
        libc::EUCLEAN
    }
}
