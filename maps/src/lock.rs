//! Word-sized spinlocks that live in the store and hold their owner's pid.
//!
//! # The lock rule
//! A lock word is an `AtomicU32`: `0` means free, any other value is the pid
//! (thread-group id) of the process holding it. Acquire is a CAS `0 -> pid`
//! (Acquire ordering); release is a CAS `pid -> 0` (Release ordering).
//!
//! A process can die while holding a lock. So a waiter that has spun for a
//! while checks the owner with `kill(owner, 0)`: if that fails with `ESRCH`
//! the owner is gone, and the waiter takes the lock over with a CAS from the
//! dead pid to its own. Every structure guarded by one of these locks must
//! therefore be consistent (or at worst leak memory) after any single store
//! its holder makes: a holder may die between any two stores.
//!
//! # Crash recovery: the rule
//! 1. **Locks.** A lock whose owner died is taken over by the next process
//!    that wants it (after ~1024 spins, `kill(owner, 0)` says ESRCH). No lock
//!    is ever held forever by a dead process.
//! 2. **Structures.** Every writer orders its stores so that a death between
//!    any two of them leaves every chain, tree and list *valid*: lookups and
//!    updates keep working and return correct answers. What a death can leave
//!    behind is only *slack*: an element or LPM node popped from a free list
//!    but never linked (a leak), a hash `count` one too high (capacity lost),
//!    or a bucket `seq` left odd (misses on that bucket retry until its next
//!    write).
//! 3. **Repair.** [`Map::repair`](crate::Map::repair) (and
//!    [`Store::repair`](crate::Store::repair) for every map) takes every lock
//!    of the map (taking over dead owners), recomputes the counts from the
//!    chains, returns leaked elements to the free list and evens every `seq`.
//!    After it, [`Map::check`](crate::Map::check) holds exactly. Repair is
//!    safe to run while other processes use the map: it holds the locks that
//!    every free-list pop and push happens under.
//!
//! Caveats: all processes sharing a store must share a pid namespace, and a
//! dead owner whose pid was reused by a live process keeps the lock held until
//! that process exits.
//!
//! The pid is cached per process (no syscall on the uncontended path) and the
//! cache is reset in the child by a `pthread_atfork` handler.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

static PID: AtomicU32 = AtomicU32::new(0);
static ATFORK: Once = Once::new();

extern "C" fn reset_pid_in_child() {
    // Only an atomic store: async-signal-safe, as fork's child handlers must be.
    PID.store(0, Ordering::Relaxed);
}

/// Registers the fork handler that keeps the cached pid right. Called when a
/// store is created or opened.
pub(crate) fn init() {
    ATFORK.call_once(|| {
        // SAFETY: registers a plain extern "C" fn with no captured state.
        // A failure (ENOMEM) only means the pid cache is refreshed less eagerly;
        // `my_pid` still works because it re-reads the pid when the cache is 0.
        unsafe {
            libc::pthread_atfork(None, None, Some(reset_pid_in_child));
        }
    });
}

/// This process's pid, cached.
#[inline]
pub(crate) fn my_pid() -> u32 {
    let p = PID.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    let p = std::process::id();
    PID.store(p, Ordering::Relaxed);
    p
}

/// True when `pid` names no live process (or could not be a pid at all).
fn owner_is_dead(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return true;
    };
    if p <= 0 {
        return true;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
    let r = unsafe { libc::kill(p, 0) };
    r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// A held lock; released on drop.
#[must_use]
pub(crate) struct PidLockGuard<'a> {
    word: &'a AtomicU32,
    me: u32,
}

impl Drop for PidLockGuard<'_> {
    fn drop(&mut self) {
        // Release only if we still own it (a takeover by a confused waiter must not
        // be undone by us).
        let _ = self
            .word
            .compare_exchange(self.me, 0, Ordering::Release, Ordering::Relaxed);
    }
}

/// Takes the lock in `word`, spinning; takes it over if its owner died.
#[inline]
pub(crate) fn lock(word: &AtomicU32) -> PidLockGuard<'_> {
    let me = my_pid();
    if word
        .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        return PidLockGuard { word, me };
    }
    lock_slow(word, me)
}

/// Takes the lock in `word` if it is free or its owner is dead; never waits.
#[inline]
pub(crate) fn try_lock(word: &AtomicU32) -> Option<PidLockGuard<'_>> {
    let me = my_pid();
    match word.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
        Ok(_) => Some(PidLockGuard { word, me }),
        Err(cur)
            if cur != me
                && owner_is_dead(cur)
                && word
                    .compare_exchange(cur, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok() =>
        {
            Some(PidLockGuard { word, me })
        }
        Err(_) => None,
    }
}

#[cold]
fn lock_slow(word: &AtomicU32, me: u32) -> PidLockGuard<'_> {
    let mut spins: u32 = 0;
    loop {
        let cur = word.load(Ordering::Relaxed);
        if cur == 0 {
            if word
                .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return PidLockGuard { word, me };
            }
        } else if cur != me
            && spins % 1024 == 1023
            && owner_is_dead(cur)
            && word
                .compare_exchange(cur, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return PidLockGuard { word, me };
        }
        spins = spins.wrapping_add(1);
        if spins < 128 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn lock_excludes_and_releases() {
        let w = AtomicU32::new(0);
        {
            let _g = lock(&w);
            assert_eq!(w.load(Ordering::Relaxed), std::process::id());
        }
        assert_eq!(w.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn threads_increment_under_lock() {
        let w = Arc::new((AtomicU32::new(0), AtomicU32::new(0)));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let w = Arc::clone(&w);
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let _g = lock(&w.0);
                        // Non-atomic read-modify-write made safe by the lock.
                        let v = w.1.load(Ordering::Relaxed);
                        w.1.store(v + 1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().expect("thread");
        }
        assert_eq!(w.1.load(Ordering::Relaxed), 40_000);
    }

    #[test]
    fn dead_owner_is_taken_over() {
        // Find a pid that surely is not running: a child that has exited and been reaped.
        let child = std::process::Command::new("true").spawn();
        let Ok(mut child) = child else {
            println!("SKIP: cannot spawn `true`");
            return;
        };
        let pid = child.id();
        let _ = child.wait();
        assert!(owner_is_dead(pid) || pid == 0);
        let w = AtomicU32::new(pid);
        let g = lock(&w);
        assert_eq!(w.load(Ordering::Relaxed), my_pid());
        drop(g);
        assert_eq!(w.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn live_or_bogus_owner_checks() {
        assert!(!owner_is_dead(std::process::id()));
        assert!(owner_is_dead(u32::MAX));
    }
}
