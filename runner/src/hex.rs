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

/// `bytes` as bpftool's `data_out -` prints them (its `hex_print`): rows of 16
/// bytes, each the offset (`%07x`), a tab, the bytes in hex in pairs, `| `, and
/// the bytes as ASCII (`.` for what is not printable) with a space after the
/// eighth.
pub fn dump(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for (row, chunk) in bytes.chunks(16).enumerate() {
        let _ = write!(s, "{:07x}\t", row * 16);
        for j in 0..16 {
            let sep = if j % 2 == 1 { " " } else { "" };
            match chunk.get(j) {
                Some(b) => {
                    let _ = write!(s, "{b:02x}{sep}");
                }
                None => {
                    let _ = write!(s, "  {sep}");
                }
            }
        }
        s.push_str("| ");
        for (j, &b) in chunk.iter().enumerate() {
            s.push(if (b' '..=b'~').contains(&b) {
                b as char
            } else {
                '.'
            });
            if j == 7 {
                s.push(' ');
            }
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What bpftool 7.1 printed for `data_out -` with the kernel's
    /// BPF_PROG_TEST_RUN output of these bytes: a short row, a row of exactly
    /// eight ASCII characters, one of nine, a second full row.
    #[test]
    fn dump_is_bpftools_hex_print() {
        let out =
            parse("4a51585f666d20272e353c43747b82899097 9ea5acb3bac1c8cfd6dde4ebf2f900").unwrap();
        assert_eq!(
            dump(&out[..14]),
            "0000000\t4a51 585f 666d 2027 2e35 3c43 747b      | JQX_fm ' .5<Ct{\n"
        );
        let first = "0000000\t4a51 585f 666d 2027 2e35 3c43 747b 8289 | JQX_fm ' .5<Ct{..\n";
        assert_eq!(dump(&out[..16]), first);
        assert_eq!(
            dump(&out[..24]),
            format!("{first}0000010\t9097 9ea5 acb3 bac1                     | ........ \n")
        );
        assert_eq!(
            dump(&out[..25]),
            format!("{first}0000010\t9097 9ea5 acb3 bac1 c8                  | ........ .\n")
        );
        assert_eq!(
            dump(&out),
            format!(
                "{first}0000010\t9097 9ea5 acb3 bac1 c8cf d6dd e4eb f2f9 | ........ ........\n\
                 0000020\t00                                      | .\n"
            )
        );
        assert_eq!(dump(&[]), "");
    }

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
