//! The timer wheel's costs at scale, with no program: N timers in one ARRAY map
//! (one per element), then ns per start, re-arm (start of an armed timer), cancel,
//! and the expiry lateness of N timers spread over a few seconds, fired by a driver
//! polling once per tick; bytes of store per timer. A measurement, not a test.
//!
//! ```text
//! cargo run --release -p maps --example timer_wheel -- 1000000
//! ```

use std::time::Instant;

use maps::timer::{monotonic_ns, ENTRY_BYTES};
use maps::{MapDef, Store, StoreOptions, BPF_MAP_TYPE_ARRAY};

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let store = Store::anonymous(StoreOptions {
        size: (n as usize) * 96 + (64 << 20),
        ncpus: Some(2),
    })
    .expect("store");
    let def = MapDef {
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: 24,
        max_entries: n,
        name: "timers".into(),
        ..MapDef::default()
    };
    let m = store.create_map_with_timer(&def, Some(8)).expect("map");
    let lease = store.timer_lease().expect("lease");
    let tick = m.timer_tick_ns();
    for t in 0..n {
        m.timer_init(t, 1).unwrap();
        m.timer_set_callback(t, 1, 1).unwrap();
    }
    let base = monotonic_ns() + 10_000_000_000;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let t0 = Instant::now();
    for t in 0..n {
        m.timer_start(t, base + rnd() % 60_000_000_000, false)
            .unwrap();
    }
    let start_ns = t0.elapsed().as_nanos() as f64 / f64::from(n);
    let t0 = Instant::now();
    for t in 0..n {
        m.timer_start(t, base + rnd() % 60_000_000_000, false)
            .unwrap();
    }
    let rearm_ns = t0.elapsed().as_nanos() as f64 / f64::from(n);
    println!(
        "{n} timers armed: start {start_ns:.1} ns, re-arm {rearm_ns:.1} ns; armed {}",
        m.timers_armed()
    );
    let t0 = Instant::now();
    for t in 0..n {
        m.timer_cancel(t).unwrap();
    }
    let cancel_ns = t0.elapsed().as_nanos() as f64 / f64::from(n);
    println!("cancel {cancel_ns:.1} ns");
    // Lateness: all N timers due over 3 s from now, the driver polling each tick.
    for t in 0..n {
        m.timer_set_callback(t, 1, 1).unwrap();
    }
    let now = monotonic_ns();
    let mut deadline = vec![0u64; n as usize];
    for t in 0..n {
        let d = now + 50_000_000 + rnd() % 3_000_000_000;
        deadline[t as usize] = d;
        m.timer_start(t, d, false).unwrap();
    }
    let mut late = Vec::with_capacity(n as usize);
    let t0 = Instant::now();
    let mut pops = 0u64;
    while m.timers_armed() > 0 {
        let now = monotonic_ns();
        while let Some(d) = m.timer_pop_due(&lease, now).unwrap() {
            late.push(monotonic_ns().saturating_sub(deadline[d.slot as usize]));
            lease.clear_inflight();
            pops += 1;
        }
        std::thread::sleep(std::time::Duration::from_nanos(tick));
    }
    let busy = t0.elapsed();
    late.sort_unstable();
    let p = |q: f64| late[((late.len() as f64 * q) as usize).min(late.len() - 1)] as f64 / 1e6;
    println!(
        "expiry lateness over {pops} timers (tick {} ms): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({:.2} s)",
        tick as f64 / 1e6,
        p(0.5),
        p(0.99),
        *late.last().unwrap() as f64 / 1e6,
        busy.as_secs_f64()
    );
    println!(
        "store per timer: {ENTRY_BYTES} bytes of timer state ({} bytes with the wheel, over {n} slots)",
        m.timer_bytes() as f64 / f64::from(n)
    );
}
