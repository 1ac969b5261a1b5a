//! Process-wide state: the store the shim works on, logging, statistics.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::user::Errno;

/// Store used when `XDPSHIM_STORE` is unset (the one `xdp-runner` opens by default).
pub const DEFAULT_STORE: &str = "xdp-runtime";

static STORE: OnceLock<Result<(maps::Store, std::fs::File), String>> = OnceLock::new();
static LOGGED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
/// Set while a BPF_ENABLE_STATS descriptor was handed out in this process.
pub static STATS: AtomicBool = AtomicBool::new(false);

/// The step budget of each test run: `XDPSHIM_MAX_STEPS` (a decimal number),
/// else the runtime's default.
pub fn max_steps() -> u64 {
    match std::env::var("XDPSHIM_MAX_STEPS") {
        Ok(v) if !v.is_empty() => v.trim().parse().unwrap_or_else(|_| {
            log_once(
                "max_steps",
                &format!("XDPSHIM_MAX_STEPS={v:?} is not a number: using the default"),
            );
            runtime::DEFAULT_MAX_STEPS
        }),
        _ => runtime::DEFAULT_MAX_STEPS,
    }
}

/// Strict mode for BPF_PROG_LOAD: `XDPSHIM_STRICT=1` refuses XDP programs whose
/// memory accesses and helper arguments the runtime's analysis did not all prove safe
/// (EACCES, the log in the verifier log buffer), as the kernel's verifier would;
/// otherwise they load and their unproven accesses run checked.
pub fn strict() -> bool {
    std::env::var("XDPSHIM_STRICT").is_ok_and(|v| v == "1")
}

/// The store's name.
pub fn store_name() -> String {
    std::env::var("XDPSHIM_STORE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_STORE.to_string())
}

/// What `XDPSHIM_STORE_TRUST` (`uid:N,gid:N`) trusts besides the caller's own
/// stores, and the group `XDPSHIM_STORE_GROUP` shares a created store with.
fn store_access() -> Result<maps::StoreAccess, String> {
    let trust = match std::env::var("XDPSHIM_STORE_TRUST") {
        Ok(spec) if !spec.is_empty() => {
            maps::Trust::parse(&spec).map_err(|e| format!("XDPSHIM_STORE_TRUST: {e}"))?
        }
        _ => maps::Trust::default(),
    };
    let group = match std::env::var("XDPSHIM_STORE_GROUP") {
        Ok(g) if !g.is_empty() => Some(
            g.parse::<u32>()
                .map_err(|_| format!("XDPSHIM_STORE_GROUP {g:?} is not a gid"))?,
        ),
        _ => None,
    };
    Ok(maps::StoreAccess {
        trust,
        group,
        ..maps::StoreAccess::default()
    })
}

/// An error and its sources, "a: b: c".
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The store, opened (or created) on first use. EPERM if it cannot be; why is
/// said once on stderr (a full /dev/shm, a store of another user), since every
/// later bpf(2) call fails for the same reason.
pub fn store() -> Result<&'static maps::Store, Errno> {
    let r = STORE.get_or_init(|| {
        let name = store_name();
        let access = store_access()?;
        let store = maps::Store::open_or_create_with(&name, maps::StoreOptions::default(), &access)
            .map_err(|e| format!("store {name:?}: {}", with_sources(&e)))?;
        // Kept open for mmap of map values: the very file mapped, whatever
        // later happens to the store's name.
        let file = store
            .file()
            .try_clone()
            .map_err(|e| format!("store {name:?}: {e}"))?;
        // What exited processes left behind (see gc.rs).
        crate::gc::collect(&store);
        Ok((store, file))
    });
    match r {
        Ok((s, _)) => Ok(s),
        Err(e) => {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| eprintln!("xdpshim: {e}"));
            Err(libc::EPERM)
        }
    }
}

/// The store if this process opened it or it exists: calls that only look
/// (netlink replies) do not create one.
pub fn store_if_exists() -> Option<&'static maps::Store> {
    if STORE.get().is_none() && !std::path::Path::new("/dev/shm").join(store_name()).exists() {
        return None;
    }
    store().ok()
}

/// The store's file, open read-write.
pub fn store_file() -> Result<&'static std::fs::File, Errno> {
    store()?;
    match STORE.get() {
        Some(Ok((_, f))) => Ok(f),
        _ => Err(libc::EPERM),
    }
}

/// True when `XDPSHIM_LOG` asks for messages.
pub fn logging() -> bool {
    std::env::var_os("XDPSHIM_LOG").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Prints `msg` on stderr once per `key`, when logging.
pub fn log_once(key: &str, msg: &str) {
    if !logging() {
        return;
    }
    let mut g = LOGGED.lock().unwrap_or_else(|p| p.into_inner());
    if g.get_or_insert_with(HashSet::new).insert(key.to_string()) {
        eprintln!("xdpshim: {msg}");
    }
}

/// Whether runs are accounted (BPF_ENABLE_STATS).
pub fn stats_enabled() -> bool {
    STATS.load(Ordering::Relaxed)
}
