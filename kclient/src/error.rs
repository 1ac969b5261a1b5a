//! The errors of the kernel clients.

/// Why the kernel refused.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("creating map {map} in the kernel: {source}")]
    MapCreate { map: String, source: std::io::Error },
    #[error("writing the initial data of map {map}: {source}")]
    MapInit { map: String, source: std::io::Error },
    #[error("the kernel rejected program {prog}: {source}\n{log}")]
    ProgLoad {
        prog: String,
        source: std::io::Error,
        log: String,
    },
    #[error("no XDP program named {name} was loaded into the kernel")]
    NoSuchProgram { name: String },
    #[error("BPF_PROG_TEST_RUN of {prog}: {source}")]
    TestRun {
        prog: String,
        source: std::io::Error,
    },
    #[error("no map named {name} was created in the kernel (maps: {available})")]
    NoSuchMap { name: String, available: String },
    #[error("writing key {key} of map {map} in the kernel: {source}")]
    MapUpdate {
        map: String,
        /// The key, as hex bytes in memory order.
        key: String,
        source: std::io::Error,
    },
    #[error("reading map {map} in the kernel: {source}")]
    MapLookup { map: String, source: std::io::Error },
    #[error("map {map}: {len}-byte {what}, the map's is {expected} bytes")]
    EntrySize {
        map: String,
        what: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("map {map} holds at most {max_entries} entries (with {key_size}-byte keys); cannot fill {n}")]
    FillTooLarge {
        map: String,
        n: u64,
        max_entries: u32,
        key_size: u32,
    },
}
