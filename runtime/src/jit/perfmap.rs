//! `/tmp/perf-<pid>.map`: one line per compiled function (`START SIZE name`, hex), so
//! `perf report` names BPF programs and subprograms instead of showing bare addresses.
//! Off by default; on with [`super::JitOptions::perf_map`] or `XDP_RUNTIME_PERF_MAP=1`.

use std::io::Write;

/// One compiled function's code range and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub start: u64,
    pub size: u64,
    pub name: String,
}

/// The perf map line for `sym`. The name is escaped so that one symbol is always one
/// line: a program or function name comes from the object, which may put newlines or
/// other control bytes in it; those, and backslashes, are written as `\xNN`.
pub fn line(sym: &Symbol) -> String {
    format!("{:x} {:x} {}\n", sym.start, sym.size, escape(&sym.name))
}

fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_control() || c == '\\' {
            for b in c.to_string().bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The effective user id, which owns the files this process creates.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The path perf reads for this process.
pub fn path() -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/tmp/perf-{}.map", std::process::id()))
}

/// Appends `symbols` to this process's perf map.
///
/// `/tmp` is writable by every user and the file's name is predictable, so another
/// user may have put a link or a file of their own there first: the file is opened
/// without following a symbolic link, and an existing file is written only if it is a
/// regular file of this process's user with no other name (a hard link would let the
/// lines land in another file).
pub fn append(symbols: &[Symbol]) -> std::io::Result<()> {
    append_to(&path(), symbols)
}

fn append_to(path: &std::path::Path, symbols: &[Symbol]) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let mut text = String::new();
    for s in symbols {
        text.push_str(&line(s));
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                std::io::Error::other(format!(
                    "{} is a symbolic link; the perf map is not written through links",
                    path.display()
                ))
            } else {
                e
            }
        })?;
    let meta = f.metadata()?;
    let uid = euid();
    if !meta.file_type().is_file() || meta.uid() != uid || meta.nlink() != 1 {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file of uid {uid} with a single name (uid {}, {} links); \
             the perf map is not written there",
            path.display(),
            meta.uid(),
            meta.nlink()
        )));
    }
    f.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_perf_format() {
        let s = Symbol {
            start: 0x7f00_1234,
            size: 0x40,
            name: "bpf_prog_xdp_counter".into(),
        };
        assert_eq!(line(&s), "7f001234 40 bpf_prog_xdp_counter\n");
    }

    #[test]
    fn names_with_control_bytes_stay_on_one_line() {
        let s = Symbol {
            start: 0x10,
            size: 0x8,
            name: "evil\n7f000000 1000 forged\\x".into(),
        };
        assert_eq!(line(&s), "10 8 evil\\x0a7f000000 1000 forged\\x5cx\n");
    }

    fn sym() -> Vec<Symbol> {
        vec![Symbol {
            start: 1,
            size: 2,
            name: "f".into(),
        }]
    }

    #[test]
    fn links_are_not_followed() {
        let dir = std::env::temp_dir().join(format!("perfmap-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let target = dir.join("target");
        std::fs::write(&target, b"keep\n").unwrap();
        let link = dir.join("perf.map");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = append_to(&link, &sym()).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep\n");

        // A second name of another file (a hard link) is refused too.
        let hard = dir.join("hard.map");
        std::fs::hard_link(&target, &hard).unwrap();
        let e = append_to(&hard, &sym()).unwrap_err();
        assert!(e.to_string().contains("2 links"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep\n");

        // A fresh file of our own is written.
        let own = dir.join("own.map");
        append_to(&own, &sym()).unwrap();
        append_to(&own, &sym()).unwrap();
        assert_eq!(std::fs::read_to_string(&own).unwrap(), "1 2 f\n1 2 f\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_of_other_users_are_refused() {
        if euid() != 0 {
            println!("SKIP: files_of_other_users_are_refused needs root to chown a file");
            return;
        }
        let p = std::env::temp_dir().join(format!("perfmap-other-{}.map", std::process::id()));
        std::fs::write(&p, b"").unwrap();
        std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
        let e = append_to(&p, &sym()).unwrap_err();
        assert!(e.to_string().contains("uid 65534"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"");
        std::fs::remove_file(&p).unwrap();
    }
}
