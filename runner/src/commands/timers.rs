//! `xdp-runner timers`: drives a store's `bpf_timer`s with no packets, for a control
//! plane that only loads programs (through `xdp-runner run --store`, or the shim).
//! The callbacks' programs are loaded from the store the first time one is due
//! (interpreter). One driver per store at a time: a live one makes this fail, a
//! dead one's lease is taken over (and the callback it had in flight runs again).

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use runtime::timers::{StoredPrograms, TimerDriver};
use runtime::Vm;

use super::map::{open_store, DEFAULT_STORE};

#[derive(Args, Debug)]
pub struct TimersArgs {
    /// The shared-memory store (/dev/shm/NAME) whose timers to drive.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_STORE)]
    pub store: String,
    /// Also open a store owned by these users or groups (`uid:N`, `gid:N`).
    #[arg(long, value_name = "uid:N,gid:N")]
    pub store_trust: Option<String>,
    /// Stop after SECS seconds (default: until SIGINT or SIGTERM).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// The wheels' tick in microseconds: timers fire at most one tick late (default
    /// 1000). Changing it rebuilds each wheel.
    #[arg(long, value_name = "N")]
    pub tick_us: Option<u64>,
    /// Stop as soon as no timer is armed.
    #[arg(long)]
    pub until_idle: bool,
    /// The worker index callbacks run with (bpf_get_smp_processor_id()).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub cpu: u32,
    /// Print `{"fired", "traps", "orphans", "inherited", "armed", "took_over"}`.
    #[arg(long, short = 'j')]
    pub json: bool,
}

pub fn run(args: TimersArgs) -> Result<()> {
    let store = open_store(&args.store, args.store_trust.as_deref())?;
    if args.cpu >= store.ncpus() {
        anyhow::bail!(
            "--cpu {} is out of range: the store has {} CPUs",
            args.cpu,
            store.ncpus()
        );
    }
    let mut driver = TimerDriver::new(&store)
        .with_context(|| format!("cannot drive the timers of store {:?}", args.store))?;
    if let Some(us) = args.tick_us {
        if us == 0 {
            anyhow::bail!("--tick-us must be at least 1");
        }
        driver
            .set_tick(us.saturating_mul(1000))
            .context("cannot set the tick")?;
    }
    let stop = super::Interruption::install()?;
    let engine = StoredPrograms::new(&store);
    let mut vm = Vm::new(args.cpu);
    let max = match args.duration {
        Some(s) if s.is_finite() && s >= 0.0 => Duration::from_secs_f64(s),
        Some(s) => anyhow::bail!("--duration {s}: expected a number of seconds"),
        None => Duration::MAX,
    };
    let poll = Duration::from_micros(args.tick_us.unwrap_or(1000).clamp(1, 100_000));
    let st = driver
        .run_for(max, poll, args.until_idle, &mut vm, &engine, &|| {
            stop.flag.load(Ordering::Relaxed)
        })
        .context("driving the timers")?;
    if let Some(t) = &driver.last_trap {
        eprintln!(
            "warning: {} timer callbacks faulted, the last: {t}",
            st.traps
        );
    }
    let armed = driver.armed();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "fired": st.fired,
                "traps": st.traps,
                "orphans": st.orphans,
                "inherited": st.inherited,
                "armed": armed,
                "took_over": driver.took_over(),
            })
        );
    } else {
        println!(
            "timers: {} callbacks run ({} faulted, {} without their program), {} armed",
            st.fired, st.traps, st.orphans, armed
        );
    }
    Ok(())
}
