//! The data plane's timer thread: while `replay` or `attach` runs, one thread drives
//! the store's `bpf_timer` wheels (`runtime::timers::TimerDriver`) in the data plane's
//! engine, so callbacks fire while frames flow.
//!
//! It runs only when a map of the program's object holds timers, and only if it gets
//! the store's timer lease: when another live process drives the store's timers
//! (`xdp-runner timers`, another data plane), that one fires them. Its callbacks run
//! with the worker index after the data plane's workers when the store has a
//! per-CPU slot left, else the last worker's (whose per-CPU values they then share).
//! Timers still armed when the data plane stops stay in the store for the next
//! driver.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::Scope;
use std::time::Duration;

use runtime::jit::{JitObject, JitOptions};
use runtime::timers::{CallbackEngine, TimerDriver};
use runtime::Vm;

use crate::worker::{Dataplane, Engine};

/// Stops the timer thread when dropped (before the scope joins it).
pub struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Whether the data plane's object has a map with timers.
pub fn has_timers(dp: &Dataplane<'_>) -> bool {
    dp.loaded()
        .maps
        .iter()
        .any(|m| m.map.timer_offset().is_some())
}

/// Starts the timer thread in `s` (when the object has timers); it stops when the
/// returned guard is dropped.
pub fn drive<'scope, 'env>(
    s: &'scope Scope<'scope, 'env>,
    dp: &'env Dataplane<'env>,
) -> StopOnDrop {
    let stop = Arc::new(AtomicBool::new(false));
    if !has_timers(dp) {
        return StopOnDrop(stop);
    }
    let Ok(mut driver) = TimerDriver::new(dp.store()) else {
        // Another live process drives the store's timers.
        return StopOnDrop(stop);
    };
    let flag = Arc::clone(&stop);
    let index = dp.workers().min(dp.store().ncpus() - 1);
    let _ = std::thread::Builder::new()
        .name("xdp-timers".into())
        .spawn_scoped(s, move || {
            let mut vm = Vm::new(index).with_max_steps(dp.config().max_steps);
            let jit;
            let engine: &dyn CallbackEngine = match dp.config().engine {
                Engine::Interpreter => dp.loaded(),
                Engine::Jit => match JitObject::compile(dp.loaded(), &JitOptions::default()) {
                    Ok(j) => {
                        jit = j;
                        &jit
                    }
                    Err(_) => dp.loaded(),
                },
            };
            let _ = driver.run_for(
                Duration::MAX,
                Duration::from_millis(1),
                false,
                &mut vm,
                engine,
                &|| flag.load(Ordering::Relaxed),
            );
        });
    StopOnDrop(stop)
}
