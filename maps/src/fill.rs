//! The entries a benchmark fill writes: entry `i` has the key and the value `i` as
//! little-endian integers of the key's and value's size. `xdp-runner bench --fill`
//! writes them in the store's maps (`runtime::LoadedObject::fill`) and the kernel
//! column writes the same ones in the kernel's (`kclient::KernelObject::fill`).

/// The bytes of `index` as a little-endian integer, zero-padded or truncated to `size`.
pub fn fill_bytes(index: u64, size: usize) -> Vec<u8> {
    let mut out = vec![0u8; size];
    let le = index.to_le_bytes();
    let n = size.min(le.len());
    out[..n].copy_from_slice(&le[..n]);
    out
}

/// Whether `n` entries `0..n` fit a map: at most `max_entries`, and distinct keys
/// (a key narrower than 8 bytes holds at most 2^(8*key_size) values).
pub fn fill_fits(n: u64, key_size: u32, max_entries: u32) -> bool {
    let distinct = key_size >= 8 || n <= 1u64 << (8 * key_size);
    distinct && n <= max_entries as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_entries_are_little_endian_indices() {
        assert_eq!(fill_bytes(0x0102, 4), vec![2, 1, 0, 0]);
        assert_eq!(fill_bytes(0x0102, 8), vec![2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(fill_bytes(0x0102, 1), vec![2]);
        assert_eq!(fill_bytes(7, 10), vec![7, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(fill_fits(1 << 20, 4, 1 << 20));
        assert!(!fill_fits((1 << 20) + 1, 4, 1 << 20));
        assert!(fill_fits(256, 1, 1000));
        assert!(!fill_fits(257, 1, 1000), "1-byte keys repeat after 256");
        assert!(fill_fits(0, 4, 0));
    }
}
