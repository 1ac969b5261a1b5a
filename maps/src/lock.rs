//! Word-sized spinlocks that live in the store and hold their owner's pid.
//!
//! # The lock rule
//! A lock word is an `AtomicU32`: `0` means free, any other value is the pid
//! (thread-group id) of the process holding it. Acquire is a CAS `0 -> pid`
//! (Acquire ordering); release is a store of `0` (Release ordering), made
//! only when the word still holds the holder's pid, as the kernel's
//! `spin_unlock` is a plain release store. (A CAS there costs a second locked
//! instruction per critical section, about half of an uncontended hash
//! update. The load-then-store leaves one window: a waiter that wrongly takes
//! the lock over from a live holder between the load and the store has its
//! lock released. Such a takeover breaks mutual exclusion by itself, and
//! cannot happen between processes that share a pid namespace, which is the
//! caveat below.)
//!
//! A process can die while holding a lock. So a waiter that has spun for a
//! while checks the owner with `kill(owner, 0)`: if that fails with `ESRCH`
//! the owner is gone, and the waiter takes the lock over with a CAS from the
//! dead pid to its own. Every structure guarded by one of these locks must
//! therefore be consistent (or at worst leak memory) after any single store
//! its holder makes: a holder may die between any two stores.
//!
//! # Every wait is bounded
//! A waiter gives up after [`STORE_LOCK_WAIT`] with [`LockHeld`] naming the
//! holder's pid (the callers turn it into `MapError::LockHeld`, which names the
//! lock). Store locks guard bounded operations: a hash or LPM update touches
//! one chain or one trie path (microseconds); the longest holds are
//! `Map::repair` / `Map::check`, which walk a whole map (about 10 ms per
//! million elements), and map creation under `meta_lock`. Five seconds is
//! hundreds of times the longest legitimate hold, so a holder still there after
//! it is stopped (SIGSTOP, a debugger) or stuck, and the caller gets an error
//! instead of a hang. Waiting costs no CPU after the first millisecond (the
//! waiter sleeps between checks).
//!
//! A pid can be reused: the lock word may name a live process that is not the
//! one that took the lock. A holder must have the store mapped, so after the
//! owner has been alive for [`REUSE_CHECK_AFTER`] the waiter looks for the
//! store's file (device and inode of the mapping holding the lock word) in
//! `/proc/<pid>/maps`; a live process that does not map it cannot hold the
//! lock, and the waiter takes it over as from a dead owner. (When the maps
//! cannot be read, the owner is assumed to be a real holder.)
//!
//! # Crash recovery: the rule
//! 1. **Locks.** A lock whose owner died (or whose pid now names a process
//!    that does not map the store) is taken over by the next process that
//!    wants it. No lock is ever held forever by a dead process. A takeover is
//!    reported to the caller ([`PidLockGuard::took_over`]), which marks the
//!    map for repair.
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
//!    every free-list pop and push happens under. It runs by itself: when a
//!    store is opened, for every map marked by a takeover or with a lock word
//!    naming a dead process, and when a user-space update finds a marked map
//!    full. It is bounded by the map's size (one walk of the chains and the
//!    free list, each capped by the element count).
//!
//! Caveat: all processes sharing a store must share a pid namespace.
//!
//! The pid is cached per process (no syscall on the uncontended path) and the
//! cache is reset in the child by a `pthread_atfork` handler.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

/// How long a waiter waits for a store lock held by a live process (see the
/// module documentation for why this bound).
pub const STORE_LOCK_WAIT: Duration = Duration::from_secs(5);

/// How long the owner must have been seen alive before the waiter checks
/// whether its pid was reused by a process that does not map the store.
pub(crate) const REUSE_CHECK_AFTER: Duration = Duration::from_millis(20);

/// A lock stayed held by a live process for the whole wait bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LockHeld {
    /// The pid in the lock word.
    pub pid: u32,
    /// How long the waiter waited.
    pub waited: Duration,
}

impl LockHeld {
    /// The map error naming the lock: `lock` says which one (e.g. `map 3
    /// "flows" stripe lock 7`), `id` is the map id (0 for store-wide locks).
    pub(crate) fn to_map_error(self, id: u32, lock: String) -> crate::error::MapError {
        crate::error::MapError::LockHeld {
            id,
            lock,
            pid: self.pid,
            waited_ms: u64::try_from(self.waited.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

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

/// The word holding this process's cached pid, for generated code that takes a
/// store lock itself (the JIT's inline hash update): it reads the word at each
/// use, takes the lock with a compare-and-swap `0 -> pid` only when the word is
/// not 0, and otherwise calls into this crate, whose [`my_pid`] fills it. The
/// word is 0 before the first lock this process takes and in a forked child
/// until it takes one, so a child never takes a lock under its parent's pid.
pub(crate) fn pid_word() -> &'static AtomicU32 {
    &PID
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
    took_over: bool,
}

impl PidLockGuard<'_> {
    /// True when the lock was taken over from a dead (or reused) owner: the
    /// structure it guards may hold a dead writer's slack (see the rule above).
    pub(crate) fn took_over(&self) -> bool {
        self.took_over
    }
}

impl<'a> PidLockGuard<'a> {
    /// Ends the guard without releasing the lock, which stays held by this
    /// process for [`PidLockGuard::adopt`] to take up.
    pub(crate) fn hand_on(self) {
        std::mem::forget(self);
    }

    /// The guard of a lock this process holds, handed on by
    /// [`PidLockGuard::hand_on`].
    ///
    /// # Safety
    /// This process took the lock in `word` and ended its guard with `hand_on`,
    /// and no other guard of it exists.
    pub(crate) unsafe fn adopt(word: &'a AtomicU32) -> Self {
        PidLockGuard {
            word,
            me: my_pid(),
            took_over: false,
        }
    }
}

impl Drop for PidLockGuard<'_> {
    fn drop(&mut self) {
        // Release only if we still own it (a takeover by a confused waiter must not
        // be undone by us; see the module documentation for the window this leaves).
        if self.word.load(Ordering::Relaxed) == self.me {
            self.word.store(0, Ordering::Release);
        }
    }
}

/// Takes the lock in `word`, waiting at most [`STORE_LOCK_WAIT`]; takes it over
/// if its owner died.
#[inline(always)]
pub(crate) fn lock(word: &AtomicU32) -> Result<PidLockGuard<'_>, LockHeld> {
    lock_within(word, STORE_LOCK_WAIT)
}

/// [`lock`] with an explicit wait bound.
#[inline(always)]
pub(crate) fn lock_within(word: &AtomicU32, limit: Duration) -> Result<PidLockGuard<'_>, LockHeld> {
    let me = my_pid();
    if word
        .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        return Ok(PidLockGuard {
            word,
            me,
            took_over: false,
        });
    }
    lock_slow(word, me, limit)
}

/// Takes the lock in `word` if it is free, with one compare-and-swap; `None`
/// when it is held (by anyone, dead or alive): the caller then goes the way of
/// [`lock`], which waits and takes over dead owners.
#[inline(always)]
pub(crate) fn try_lock_free(word: &AtomicU32) -> Option<PidLockGuard<'_>> {
    let me = my_pid();
    word.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
        .ok()
        .map(|_| PidLockGuard {
            word,
            me,
            took_over: false,
        })
}

/// Takes the lock in `word` if it is free or its owner is dead; never waits.
#[inline]
pub(crate) fn try_lock(word: &AtomicU32) -> Option<PidLockGuard<'_>> {
    let me = my_pid();
    match word.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
        Ok(_) => Some(PidLockGuard {
            word,
            me,
            took_over: false,
        }),
        Err(cur)
            if cur != me
                && owner_is_dead(cur)
                && word
                    .compare_exchange(cur, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok() =>
        {
            Some(PidLockGuard {
                word,
                me,
                took_over: true,
            })
        }
        Err(_) => None,
    }
}

/// True when the lock word `word` names a dead owner (or one that cannot hold
/// it: see [`holder_maps`]). Used to find a dead writer's traces when a store
/// is opened.
pub(crate) fn held_by_dead(word: &AtomicU32) -> bool {
    let cur = word.load(Ordering::Relaxed);
    cur != 0 && cur != my_pid() && owner_is_dead(cur)
}

#[cold]
fn lock_slow(word: &AtomicU32, me: u32, limit: Duration) -> Result<PidLockGuard<'_>, LockHeld> {
    let mut spins: u32 = 0;
    let mut start: Option<Instant> = None;
    // The owner whose /proc maps were already read (once per owner).
    let mut maps_checked: u32 = 0;
    loop {
        let cur = word.load(Ordering::Relaxed);
        if cur == 0 {
            if word
                .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(PidLockGuard {
                    word,
                    me,
                    took_over: false,
                });
            }
        } else if spins % 64 == 63 {
            let take_over = |cur: u32| {
                word.compare_exchange(cur, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            };
            if cur != me && owner_is_dead(cur) && take_over(cur) {
                return Ok(PidLockGuard {
                    word,
                    me,
                    took_over: true,
                });
            }
            let now = Instant::now();
            let waited = now - *start.get_or_insert(now);
            if cur != me && maps_checked != cur && waited >= REUSE_CHECK_AFTER.min(limit) {
                maps_checked = cur;
                if holder_maps(cur, word) == Some(false) && take_over(cur) {
                    return Ok(PidLockGuard {
                        word,
                        me,
                        took_over: true,
                    });
                }
            }
            if waited >= limit {
                return Err(LockHeld { pid: cur, waited });
            }
        }
        spins = spins.wrapping_add(1);
        if spins < 128 {
            std::hint::spin_loop();
        } else if spins < 2048 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

/// Whether process `pid` maps the file (or shared memory object) that holds
/// `word` in this process: `Some(false)` when it surely does not, `None` when
/// this cannot be told (no /proc, maps unreadable, an anonymous private mapping).
pub(crate) fn holder_maps(pid: u32, word: &AtomicU32) -> Option<bool> {
    let addr = word as *const AtomicU32 as usize;
    let own = std::fs::read_to_string("/proc/self/maps").ok()?;
    let (dev, ino) = own.lines().find_map(|l| {
        let m = MapsLine::parse(l)?;
        (m.start <= addr && addr < m.end).then_some((m.dev, m.ino))
    })?;
    if ino == 0 {
        return None;
    }
    let theirs = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    Some(
        theirs
            .lines()
            .any(|l| MapsLine::parse(l).is_some_and(|m| m.dev == dev && m.ino == ino)),
    )
}

/// One line of /proc/PID/maps: `start-end perms offset dev inode [path]`.
struct MapsLine<'a> {
    start: usize,
    end: usize,
    dev: &'a str,
    ino: u64,
}

impl<'a> MapsLine<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let mut f = line.split_ascii_whitespace();
        let (s, e) = f.next()?.split_once('-')?;
        let _perms = f.next()?;
        let _off = f.next()?;
        let dev = f.next()?;
        let ino = f.next()?.parse().ok()?;
        Some(MapsLine {
            start: usize::from_str_radix(s, 16).ok()?,
            end: usize::from_str_radix(e, 16).ok()?,
            dev,
            ino,
        })
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
            let _g = lock(&w).expect("free lock");
            assert_eq!(w.load(Ordering::Relaxed), std::process::id());
        }
        assert_eq!(w.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_guard_releases_only_its_own_lock() {
        let w = AtomicU32::new(0);
        let g = lock(&w).expect("free lock");
        // Another owner's pid in the word (a takeover) is left there.
        w.store(7, Ordering::Relaxed);
        drop(g);
        assert_eq!(w.load(Ordering::Relaxed), 7);
        // A lock handed on stays held until the adopted guard drops.
        w.store(0, Ordering::Relaxed);
        let g = try_lock_free(&w).expect("free lock");
        g.hand_on();
        assert_eq!(w.load(Ordering::Relaxed), my_pid());
        assert!(try_lock_free(&w).is_none(), "held");
        // SAFETY: this thread took the lock and handed it on just above.
        drop(unsafe { PidLockGuard::adopt(&w) });
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
                        let _g = lock(&w.0).expect("lock");
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
        let g = lock(&w).expect("dead owner taken over");
        assert!(g.took_over());
        assert_eq!(w.load(Ordering::Relaxed), my_pid());
        drop(g);
        assert_eq!(w.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn live_or_bogus_owner_checks() {
        assert!(!owner_is_dead(std::process::id()));
        assert!(owner_is_dead(u32::MAX));
    }

    /// A word inside a shared mapping of a store (memfd), as store locks are.
    fn store_word() -> (crate::Store, crate::Map) {
        let s = crate::Store::anonymous(crate::StoreOptions {
            size: 1 << 20,
            ncpus: Some(1),
        })
        .expect("store");
        let m = s
            .create_map(&crate::MapDef {
                map_type: crate::def::BPF_MAP_TYPE_ARRAY,
                key_size: 4,
                value_size: 4,
                max_entries: 1,
                ..Default::default()
            })
            .expect("map");
        (s, m)
    }

    fn word_of(m: &crate::Map) -> &AtomicU32 {
        // SAFETY: the first 4 bytes of the array's value area, 8-aligned, inside
        // the mapping the Map keeps alive; only accessed atomically.
        unsafe { AtomicU32::from_ptr(m.data as *mut u32) }
    }

    #[test]
    fn a_live_holder_makes_the_wait_end_with_its_pid() {
        // The holder is this process (as another thread of it would be).
        let w = AtomicU32::new(my_pid());
        let e = lock_within(&w, Duration::from_millis(50))
            .err()
            .expect("bounded");
        assert_eq!(e.pid, my_pid());
        assert!(e.waited >= Duration::from_millis(50));
        assert_eq!(w.load(Ordering::Relaxed), my_pid(), "not taken");
    }

    #[test]
    fn a_live_child_mapping_the_store_is_a_holder_and_the_wait_is_bounded() {
        let (_s, m) = store_word();
        // SAFETY: the child only sleeps and exits (async-signal-safe calls).
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork");
        if child == 0 {
            // SAFETY: as above.
            unsafe {
                libc::sleep(30);
                libc::_exit(0);
            }
        }
        let w = word_of(&m);
        w.store(child as u32, Ordering::Relaxed);
        let r = lock_within(w, Duration::from_millis(300)).map(|g| g.took_over());
        // SAFETY: our own child.
        unsafe {
            libc::kill(child, libc::SIGKILL);
            libc::waitpid(child, std::ptr::null_mut(), 0);
        }
        assert_eq!(r.err().map(|e| e.pid), Some(child as u32));
        w.store(0, Ordering::Relaxed);
    }

    #[test]
    fn a_reused_pid_that_does_not_map_the_store_is_taken_over() {
        let (_s, m) = store_word();
        // A live process that never mapped the store: the lock word names it as
        // a dead owner's pid reused by an unrelated process would.
        let Ok(mut child) = std::process::Command::new("sleep").arg("30").spawn() else {
            println!("SKIP: cannot spawn `sleep`");
            return;
        };
        let pid = child.id();
        let w = word_of(&m);
        w.store(pid, Ordering::Relaxed);
        assert_eq!(holder_maps(pid, w), Some(false));
        let r = lock_within(w, Duration::from_secs(5)).map(|g| g.took_over());
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(r, Ok(true));
        assert_eq!(w.load(Ordering::Relaxed), 0, "released");
        assert_eq!(holder_maps(my_pid(), w), Some(true));
    }
}
