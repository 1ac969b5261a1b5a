//! The bpf_timer programs (issue 14) and their differential cases.
//!
//! - `xdp_timer_watchdog`: a connection watchdog per flow (seed 001);
//! - `xdp_timer_users`: per-user typed timers (seed 000);
//! - `xdp_timer_cases`: one program per semantic case of the helpers.
//!
//! A [`TimerCase`] is a sequence of test runs on one load of its object (the maps
//! shared by every step), then a wait of [`TimerCase::wait_ms`] so the timers the
//! programs started fire, then a dump of every map. Each program's timeouts are
//! shorter than the wait and longer than the time a sequence of test runs takes
//! (the C sources say which), so what the dump shows does not depend on timing.
//!
//! The frames are built here ([`TimerFrame::bytes`]): IPv4 TCP with chosen flags,
//! or IPv4 UDP to a chosen port, from a chosen source address.

/// The timer objects (file stems in `src-c/` and `obj/`). They are not in
/// [`crate::PROGRAMS`]: a runtime without bpf_timer refuses them at load, and
/// their differential is [`timer_cases`] with a wait after the runs.
/// `xdp_timer_bench` is measured (bench/src/bin/timers.rs), not compared: what its
/// callbacks record is how late they ran.
pub const TIMER_PROGRAMS: &[&str] = &[
    "xdp_timer_watchdog",
    "xdp_timer_users",
    "xdp_timer_cases",
    "xdp_timer_bench",
];

/// TCP flag bits (the 13th byte of the TCP header).
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// `xdp_timer_users`: UDP to `USER_PORT_BASE + 2 * type` starts the user's timer of
/// that type, `+ 1` stops it.
pub const USER_PORT_BASE: u16 = 7000;
/// `xdp_timer_users`' timer types.
pub const T_LOGIN_FORGET: u16 = 0;
pub const T_SESSION_IDLE: u16 = 1;

/// A frame of a timer case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerFrame {
    /// IPv4 TCP from `src:sport` to 10.0.0.2:80 with these flags.
    Tcp { src: [u8; 4], sport: u16, flags: u8 },
    /// IPv4 UDP from `src:5000` to 10.0.0.2:`dport`.
    Udp { src: [u8; 4], dport: u16 },
}

impl TimerFrame {
    /// The frame: Ethernet, IPv4 (no options, checksum set), TCP or UDP, 8 bytes
    /// of payload.
    pub fn bytes(&self) -> Vec<u8> {
        let (proto, src, l4) = match *self {
            TimerFrame::Tcp { src, sport, flags } => {
                let mut t = vec![0u8; 20];
                t[0..2].copy_from_slice(&sport.to_be_bytes());
                t[2..4].copy_from_slice(&80u16.to_be_bytes());
                t[4..8].copy_from_slice(&1000u32.to_be_bytes());
                t[12] = 5 << 4;
                t[13] = flags;
                t[14..16].copy_from_slice(&8192u16.to_be_bytes());
                (6u8, src, t)
            }
            TimerFrame::Udp { src, dport } => {
                let mut u = vec![0u8; 8];
                u[0..2].copy_from_slice(&5000u16.to_be_bytes());
                u[2..4].copy_from_slice(&dport.to_be_bytes());
                u[4..6].copy_from_slice(&16u16.to_be_bytes());
                (17u8, src, u)
            }
        };
        let payload = *b"timers!\n";
        let total = 20 + l4.len() + payload.len();
        let mut ip = vec![0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let csum = ipv4_checksum(&ip);
        ip[10..12].copy_from_slice(&csum.to_be_bytes());
        let mut frame = Vec::with_capacity(14 + total);
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        frame.extend_from_slice(&0x0800u16.to_be_bytes());
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&l4);
        frame.extend_from_slice(&payload);
        frame
    }
}

fn ipv4_checksum(hdr: &[u8]) -> u16 {
    let mut sum: u32 = hdr
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One test run of a timer case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerStep {
    /// Program name inside the case's object.
    pub prog: &'static str,
    pub frame: TimerFrame,
    /// Runs on the same buffer (the kernel's `repeat`).
    pub repeat: u32,
}

/// A timer differential case: steps on one load, then a wait, then every map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerCase {
    /// Object name (see [`crate::object`], [`crate::object_for`]).
    pub object: &'static str,
    /// A name for messages.
    pub name: &'static str,
    pub steps: &'static [TimerStep],
    /// How long to let timers fire after the last step, in milliseconds.
    pub wait_ms: u32,
    /// The steps must all have run within this many milliseconds for the answer to
    /// hold (the timers the sequence relies on being pending at its last step are
    /// longer); 0 when nothing depends on it. A slower sequence is run again
    /// ([`kernel_run`]).
    pub valid_within_ms: u32,
}

impl TimerCase {
    /// `object:name`.
    pub fn label(&self) -> String {
        format!("{}:{}", self.object, self.name)
    }

    /// Whether steps that took `span` from the first run to the last give this case's
    /// answer (see [`TimerCase::valid_within_ms`]).
    pub fn valid(&self, span: std::time::Duration) -> bool {
        self.valid_within_ms == 0 || span.as_millis() < u128::from(self.valid_within_ms)
    }

    /// The steps in the form [`kclient::bpftool::run_steps`] takes.
    pub fn kernel_steps(&self) -> Vec<kclient::bpftool::Step> {
        self.steps
            .iter()
            .map(|s| kclient::bpftool::Step {
                prog: s.prog.to_string(),
                data_in: s.frame.bytes(),
                repeat: s.repeat,
            })
            .collect()
    }
}

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 3];

const fn tcp(src: [u8; 4], sport: u16, flags: u8) -> TimerFrame {
    TimerFrame::Tcp { src, sport, flags }
}

const fn udp(src: [u8; 4], dport: u16) -> TimerFrame {
    TimerFrame::Udp { src, dport }
}

const fn step(prog: &'static str, frame: TimerFrame, repeat: u32) -> TimerStep {
    TimerStep {
        prog,
        frame,
        repeat,
    }
}

/// The frame `xdp_timer_cases`' programs run on (they do not read it).
const ANY: TimerFrame = udp(A, 9);

const WD: &str = "xdp_timer_watchdog";
const USERS: &str = "xdp_timer_users";

const fn start(src: [u8; 4], ty: u16) -> TimerStep {
    step(USERS, udp(src, USER_PORT_BASE + 2 * ty), 1)
}

const fn stop(src: [u8; 4], ty: u16) -> TimerStep {
    step(USERS, udp(src, USER_PORT_BASE + 2 * ty + 1), 1)
}

macro_rules! single {
    ($prog:literal) => {
        TimerCase {
            object: "xdp_timer_cases",
            name: $prog,
            steps: &[step($prog, ANY, 1)],
            // Every timer is due within 2 ms; the wait only needs to outlast a loaded
            // machine's delays (runtimes return as soon as nothing is pending; on a
            // 2-core machine running 30 such processes, 100 ms was too short).
            wait_ms: 3000,
            valid_within_ms: 0,
        }
    };
}

/// Waits for the sequences of `xdp_timer_watchdog` (2 s watchdog) and
/// `xdp_timer_users` (2 s and 2.5 s timers).
const LONG_WAIT_MS: u32 = 3500;
/// Their steps must run within this, well under their shortest timeout.
const LONG_VALID_MS: u32 = 1500;

/// Every timer case.
pub fn timer_cases() -> &'static [TimerCase] {
    const CASES: &[TimerCase] = &[
        single!("timer_init_twice"),
        single!("timer_start_before_cb"),
        single!("timer_cancel_inactive"),
        single!("timer_cancel_in_cb"),
        single!("timer_rearm_in_cb"),
        single!("timer_abs"),
        single!("timer_update_pending"),
        single!("timer_delete_pending"),
        single!("timer_lru_evict"),
        single!("timer_inner_map"),
        single!("timer_restart_after_cancel"),
        single!("timer_huge_timeout"),
        // A SYN seen three times re-arms the flow's watchdog three times; it fires
        // once and the callback deletes the flow.
        TimerCase {
            object: WD,
            name: "silent_flow_times_out",
            steps: &[step(WD, tcp(A, 40001, TCP_SYN), 3)],
            wait_ms: LONG_WAIT_MS,
            valid_within_ms: LONG_VALID_MS,
        },
        // SYN, ACK, FIN: the FIN cancels the pending watchdog (1) and deletes the
        // flow; nothing fires.
        TimerCase {
            object: WD,
            name: "fin_cancels",
            steps: &[
                step(WD, tcp(A, 40002, TCP_SYN), 1),
                step(WD, tcp(A, 40002, TCP_ACK), 1),
                step(WD, tcp(A, 40002, TCP_FIN | TCP_ACK), 1),
            ],
            wait_ms: LONG_WAIT_MS,
            valid_within_ms: LONG_VALID_MS,
        },
        // Two flows, one reset: the other times out.
        TimerCase {
            object: WD,
            name: "rst_closes_one_of_two",
            steps: &[
                step(WD, tcp(A, 40003, TCP_SYN), 1),
                step(WD, tcp(B, 40004, TCP_SYN), 1),
                step(WD, udp(B, 53), 2),
                step(WD, tcp(A, 40003, TCP_RST), 1),
            ],
            wait_ms: LONG_WAIT_MS,
            valid_within_ms: LONG_VALID_MS,
        },
        // A FIN of a flow never seen: nothing to cancel.
        TimerCase {
            object: WD,
            name: "fin_of_unknown_flow",
            steps: &[step(WD, tcp(A, 40005, TCP_FIN), 1)],
            wait_ms: 1000,
            valid_within_ms: 0,
        },
        // User A starts both timer types (login twice: re-armed, 2 attempts); user
        // B starts a login and stops it. A's two timers expire with their contexts.
        TimerCase {
            object: USERS,
            name: "typed_timers_per_user",
            steps: &[
                start(A, T_LOGIN_FORGET),
                start(A, T_LOGIN_FORGET),
                start(B, T_LOGIN_FORGET),
                start(A, T_SESSION_IDLE),
                stop(B, T_LOGIN_FORGET),
            ],
            wait_ms: LONG_WAIT_MS,
            valid_within_ms: LONG_VALID_MS,
        },
        // Stop by type: A's login stopped, its session left to expire; stopping
        // what was never started answers -ENOENT.
        TimerCase {
            object: USERS,
            name: "stop_by_type",
            steps: &[
                start(A, T_LOGIN_FORGET),
                start(A, T_SESSION_IDLE),
                stop(A, T_LOGIN_FORGET),
                stop(B, T_SESSION_IDLE),
            ],
            wait_ms: LONG_WAIT_MS,
            valid_within_ms: LONG_VALID_MS,
        },
    ];
    CASES
}

/// How many times a sequence slower than [`TimerCase::valid_within_ms`] is run.
pub const ATTEMPTS: u32 = 4;

/// The kernel's answer to `case`: its steps on one load, the wait, every map
/// ([`kclient::bpftool::run_steps_timed`]); run again, up to [`ATTEMPTS`] times, while
/// the steps took too long for the answer to hold.
pub fn kernel_run(case: &TimerCase) -> Result<kclient::bpftool::KernelRun, String> {
    let mut spans = Vec::new();
    for _ in 0..ATTEMPTS {
        let (run, span) = kclient::bpftool::run_steps_timed(
            &crate::object(case.object),
            &case.kernel_steps(),
            &[],
            std::time::Duration::from_millis(case.wait_ms.into()),
        )?;
        if case.valid(span) {
            return Ok(run);
        }
        spans.push(span);
    }
    Err(format!(
        "{}: the steps took {spans:?}, never under {} ms: the machine is too loaded for \
         the answer to hold",
        case.label(),
        case.valid_within_ms
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_what_the_programs_parse() {
        let f = tcp([1, 2, 3, 4], 0x1234, TCP_FIN | TCP_ACK).bytes();
        assert_eq!(f.len(), 14 + 20 + 20 + 8);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(f[14], 0x45);
        assert_eq!(f[23], 6);
        assert_eq!(&f[26..30], &[1, 2, 3, 4]);
        assert_eq!(&f[34..36], &[0x12, 0x34]);
        assert_eq!(f[34 + 13], 0x11);
        // A correct header checksum sums to 0xffff.
        assert_eq!(ipv4_checksum(&f[14..34]), 0);
        let u = udp([5, 6, 7, 8], 7001).bytes();
        assert_eq!(u[23], 17);
        assert_eq!(&u[36..38], &7001u16.to_be_bytes());
        assert_eq!(u16::from_be_bytes([u[16], u[17]]) as usize, u.len() - 14);
    }

    #[test]
    fn timer_cases_are_well_formed() {
        for c in timer_cases() {
            assert!(TIMER_PROGRAMS.contains(&c.object), "{c:?}");
            assert!(crate::object(c.object).is_file(), "{c:?}");
            assert!(!c.steps.is_empty() && c.wait_ms > 0, "{c:?}");
            assert!(c.steps.iter().all(|s| s.repeat >= 1), "{c:?}");
        }
        for p in TIMER_PROGRAMS {
            assert!(!crate::PROGRAMS.contains(p));
            assert!(crate::root().join("src-c").join(format!("{p}.c")).is_file());
            if *p != "xdp_timer_bench" {
                assert!(timer_cases().iter().any(|c| c.object == *p), "{p}");
            }
        }
    }
}
