//! Hex strings in memory order, as keys and values are written on the command line.

use anyhow::{bail, Result};

/// Parses hex bytes: `0a0b0c`, `0x0a0b0c`, or separated by spaces, commas or colons.
pub fn parse(s: &str) -> Result<Vec<u8>> {
    let t = s.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let digits: Vec<u8> = t
        .bytes()
        .filter(|c| !matches!(c, b' ' | b',' | b':' | b'_'))
        .collect();
    if !digits.len().is_multiple_of(2) {
        bail!("hex string {s:?} has an odd number of digits");
    }
    digits
        .chunks(2)
        .map(|p| {
            let hi = (p[0] as char).to_digit(16);
            let lo = (p[1] as char).to_digit(16);
            match (hi, lo) {
                (Some(h), Some(l)) => Ok((h * 16 + l) as u8),
                _ => bail!("{s:?} is not a hex string"),
            }
        })
        .collect()
}

/// Lower-case hex of `bytes`, no separators.
pub fn encode(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse("0a0B").unwrap(), vec![10, 11]);
        assert_eq!(parse("0x01 02:03,04").unwrap(), vec![1, 2, 3, 4]);
        assert_eq!(parse("").unwrap(), Vec::<u8>::new());
        assert!(parse("abc").is_err());
        assert!(parse("zz").is_err());
        assert_eq!(encode(&[0, 255, 16]), "00ff10");
    }
}
