//! `xdp-runner map events MAP`: reads the records that programs sent to a
//! PERF_EVENT_ARRAY (`bpf_perf_event_output`) or a RINGBUF (`bpf_ringbuf_output`,
//! `_reserve`/`_submit`) of a store, from any process, as `bpftool map
//! event_pipe` does for the kernel's perf event arrays (`event_pipe` is accepted
//! as an alias).
//!
//! Records are consumed: a second reader does not see them again. Perf slots are
//! read round-robin, each in order; a slot whose ring was full when a program
//! wrote counts the record as lost, and the reader prints the count when it grows.
//!
//! A program's `bpf_perf_event_output` into a slot that holds no event fails with
//! -ENOENT. In the kernel user space puts a perf event fd in the slot (`bpftool map
//! event_pipe` opens one per CPU); in a store any value written into the slot
//! (`xdp-runner map update`, `xdp-runner run --set`, a libbpf loader through the
//! shim) makes it live. `--attach` does that for the slots this reader reads and
//! clears them again when it stops, as the kernel drops the event_pipe's slots when
//! bpftool exits.
//!
//! Without `--count` or `--timeout` the reader takes what is there and stops; with
//! `--count N` it waits for N records; `--timeout MS` bounds the wait.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use maps::{Map, MapError, Store};
use serde_json::{json, Value};

use super::map::{no_more, op_error, select};
use crate::hex;

/// Map types with records to read.
const PERF_EVENT_ARRAY: u32 = 4;
const RINGBUF: u32 = 27;

/// How long the reader sleeps when a wait finds no record.
const POLL: Duration = Duration::from_millis(2);

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// The map: `id N`, `pinned PATH` or `name NAME`.
    #[arg(value_name = "MAP", num_args = 1..)]
    pub map: Vec<String>,
    /// Stop after N records (waiting for them; see --timeout).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Wait at most MS milliseconds for records (default: without --count, no
    /// waiting; with --count, no limit).
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,
    /// Perf event arrays: read only slot N (default: every slot). `--cpu` is the
    /// same (slot N is CPU N's for BPF_F_CURRENT_CPU).
    #[arg(long, alias = "cpu", value_name = "N")]
    pub index: Option<u32>,
    /// Perf event arrays: make the slots read live while reading (write this
    /// process's pid into them) and clear them at the end.
    #[arg(long)]
    pub attach: bool,
}

/// One thing the reader reports.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    /// A record of a perf slot.
    Perf { index: u32, data: Vec<u8> },
    /// Records of a perf slot lost so far (since the map was created).
    Lost { index: u32, lost: u64 },
    /// A record of a ring buffer.
    Ring { data: Vec<u8> },
}

impl Event {
    fn to_json(&self) -> Value {
        match self {
            Event::Perf { index, data } => json!({
                "cpu": index,
                "index": index,
                "size": data.len(),
                "data": data.iter().map(|b| format!("{b:#04x}")).collect::<Vec<_>>(),
                "data_hex": hex::encode(data),
            }),
            Event::Lost { index, lost } => json!({
                "cpu": index,
                "index": index,
                "lost": lost,
            }),
            Event::Ring { data } => json!({
                "size": data.len(),
                "data": data.iter().map(|b| format!("{b:#04x}")).collect::<Vec<_>>(),
                "data_hex": hex::encode(data),
            }),
        }
    }

    fn to_text(&self) -> String {
        match self {
            Event::Perf { index, data } => format!(
                "== CPU: {index} index: {index} size: {} ==\n{}",
                data.len(),
                hexdump(data)
            ),
            Event::Lost { index, lost } => {
                format!("== CPU: {index} index: {index} ==\nlost {lost} events")
            }
            Event::Ring { data } => {
                format!("== ringbuf size: {} ==\n{}", data.len(), hexdump(data))
            }
        }
    }
}

/// bpftool's event_pipe dump: 16 bytes per line after a 4-digit offset.
fn hexdump(data: &[u8]) -> String {
    if data.is_empty() {
        return "(empty)".to_string();
    }
    data.chunks(16)
        .enumerate()
        .map(|(i, c)| {
            let bytes: Vec<String> = c.iter().map(|b| format!("{b:02x}")).collect();
            format!("{:04x}: {}", i * 16, bytes.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads the events of one map.
struct Reader {
    map: Map,
    slots: Vec<u32>,
    /// Lost counts already reported, per slot of `slots`.
    lost_seen: Vec<u64>,
    /// Slots this reader made live (cleared on drop).
    attached: Vec<u32>,
}

impl Reader {
    fn new(map: Map, index: Option<u32>, attach: bool) -> Result<Reader> {
        let info = map.info();
        let slots: Vec<u32> = match (info.map_type, index) {
            (PERF_EVENT_ARRAY, Some(i)) if i >= info.max_entries => bail!(
                "index {i} is out of range: map {} has {} slots",
                info.id,
                info.max_entries
            ),
            (PERF_EVENT_ARRAY, Some(i)) => vec![i],
            (PERF_EVENT_ARRAY, None) => (0..info.max_entries).collect(),
            (RINGBUF, None) if !attach => Vec::new(),
            (RINGBUF, _) => bail!("--index and --attach are for perf event arrays"),
            _ => bail!(
                "map {} ({}) is not a perf_event_array or a ringbuf",
                info.id,
                map.type_name()
            ),
        };
        let mut r = Reader {
            lost_seen: vec![0; slots.len()],
            map,
            slots,
            attached: Vec::new(),
        };
        if attach {
            let pid = std::process::id().to_ne_bytes();
            for &i in &r.slots {
                r.map
                    .update(&i.to_ne_bytes(), &pid, maps::BPF_ANY)
                    .map_err(|e| op_error("attach", &e))?;
                r.attached.push(i);
            }
        }
        Ok(r)
    }

    /// Takes up to `max` records (and lost counts that grew); calls `f` on each.
    /// A corrupt ring is an error.
    fn poll(&mut self, max: u64, f: &mut dyn FnMut(Event)) -> Result<u64, MapError> {
        let mut n = 0u64;
        if self.map.info().map_type == RINGBUF {
            let take = usize::try_from(max).unwrap_or(usize::MAX);
            return self
                .map
                .ringbuf_consume(take, |d| {
                    f(Event::Ring { data: d.to_vec() });
                })
                .map(|n| n as u64);
        }
        // Round-robin, one record per slot per pass, so no slot starves the others.
        loop {
            let mut progress = false;
            for (k, &index) in self.slots.iter().enumerate() {
                let lost = self.map.perf_lost(index);
                if lost > self.lost_seen[k] {
                    self.lost_seen[k] = lost;
                    f(Event::Lost { index, lost });
                }
                if n >= max {
                    continue;
                }
                let got = self.map.perf_consume(index, 1, |d| {
                    f(Event::Perf {
                        index,
                        data: d.to_vec(),
                    })
                })?;
                if got > 0 {
                    n += got as u64;
                    progress = true;
                }
            }
            if !progress || n >= max {
                return Ok(n);
            }
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        for i in &self.attached {
            let _ = self.map.delete(&i.to_ne_bytes());
        }
    }
}

pub fn run(store: &Store, args: EventsArgs, json: bool) -> Result<()> {
    let (map, rest) = select(store, &args.map)?;
    no_more(rest)?;
    let mut reader = Reader::new(map, args.index, args.attach)?;
    let deadline = match (args.count, args.timeout) {
        (_, Some(ms)) => Some(Instant::now() + Duration::from_millis(ms)),
        (Some(_), None) => None,
        (None, None) => Some(Instant::now()),
    };
    let want = args.count.unwrap_or(u64::MAX);
    let mut out = std::io::stdout().lock();
    let mut got = 0u64;
    let mut failed = None;
    loop {
        let n = reader.poll(want - got, &mut |e| {
            let line = if json {
                e.to_json().to_string()
            } else {
                e.to_text()
            };
            // A closed pipe (`| head`) ends the reader.
            if failed.is_none() {
                if let Err(err) = writeln!(out, "{line}") {
                    failed = Some(err);
                }
            }
        });
        let n = n.map_err(|e| op_error("read events", &e))?;
        got += n;
        if let Some(e) = failed.take() {
            return Err(e.into());
        }
        if got >= want || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if n == 0 {
            out.flush()?;
            std::thread::sleep(POLL);
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::anonymous(maps::StoreOptions {
            size: 4 << 20,
            ncpus: Some(2),
        })
        .expect("store")
    }

    fn perf_map(s: &Store) -> Map {
        s.create_map(&maps::MapDef {
            map_type: PERF_EVENT_ARRAY,
            key_size: 4,
            value_size: 4,
            max_entries: 2,
            name: "ev".into(),
            ..maps::MapDef::default()
        })
        .expect("perf map")
    }

    #[test]
    fn perf_slots_round_robin_with_lost_counts() {
        let s = store();
        let m = perf_map(&s);
        let mut r = Reader::new(m.clone(), None, true).expect("reader");
        m.perf_output(0, 0, &[b"a0"]).expect("slot 0");
        m.perf_output(0, 0, &[b"a1"]).expect("slot 0");
        m.perf_output(1, 0, &[b"b0", b"!"]).expect("slot 1");
        let mut got = Vec::new();
        assert_eq!(r.poll(u64::MAX, &mut |e| got.push(e)), Ok(3));
        let perf = |index, d: &[u8]| Event::Perf {
            index,
            data: d.to_vec(),
        };
        assert_eq!(
            got,
            vec![perf(0, b"a0"), perf(1, b"b0!"), perf(0, b"a1")],
            "one record per slot per pass"
        );
        // Fill slot 1's ring: the next record is lost, and reported once.
        let big = vec![7u8; 4000];
        while m.perf_output(1, 0, &[&big]).is_ok() {}
        let mut got = Vec::new();
        let n = r.poll(2, &mut |e| got.push(e)).expect("poll");
        assert_eq!(n, 2);
        assert_eq!(got[0], Event::Lost { index: 1, lost: 1 });
        assert!(matches!(&got[1], Event::Perf { index: 1, data } if data.len() == 4000));
        drop(r);
        // Detached: the slots are empty again.
        assert_eq!(
            m.perf_output(0, 0, &[b"x"]).map_err(|e| e.errno()),
            Err(2),
            "ENOENT after the reader left"
        );
    }

    #[test]
    fn ring_records_and_refusals() {
        let s = store();
        let rb = s
            .create_map(&maps::MapDef {
                map_type: RINGBUF,
                max_entries: 4096,
                name: "rb".into(),
                ..maps::MapDef::default()
            })
            .expect("ringbuf");
        rb.ringbuf_output(&[b"hello"]).expect("output");
        let p = rb.ringbuf_reserve(3);
        assert!(rb.ringbuf_commit(p, true), "discarded: not read");
        rb.ringbuf_output(&[b"world"]).expect("output");
        let mut r = Reader::new(rb.clone(), None, false).expect("reader");
        let mut got = Vec::new();
        assert_eq!(r.poll(u64::MAX, &mut |e| got.push(e)), Ok(2));
        assert_eq!(
            got,
            vec![
                Event::Ring {
                    data: b"hello".to_vec()
                },
                Event::Ring {
                    data: b"world".to_vec()
                }
            ]
        );
        assert!(Reader::new(rb, Some(0), false).is_err());
        let arr = s
            .create_map(&maps::MapDef {
                map_type: 2,
                key_size: 4,
                value_size: 4,
                max_entries: 1,
                name: "a".into(),
                ..maps::MapDef::default()
            })
            .expect("array");
        assert!(Reader::new(arr, None, false).is_err());
        assert!(Reader::new(perf_map(&s), Some(2), false).is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(hexdump(&[0u8; 17]).lines().count(), 2);
        assert!(hexdump(&[1, 2]).starts_with("0000: 01 02"));
        let e = Event::Perf {
            index: 1,
            data: vec![0xab],
        };
        assert_eq!(
            e.to_json(),
            json!({"cpu": 1, "index": 1, "size": 1, "data": ["0xab"], "data_hex": "ab"})
        );
        assert_eq!(
            Event::Lost { index: 0, lost: 3 }.to_json(),
            json!({"cpu": 0, "index": 0, "lost": 3})
        );
        assert!(e.to_text().starts_with("== CPU: 1 index: 1 size: 1 =="));
    }
}
