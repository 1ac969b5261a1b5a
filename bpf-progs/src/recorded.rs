//! Recorded kernel answers: what the kernel returned for every case × packet of
//! [`cases`](crate::cases), kept in `recorded/NAME.json` beside the committed
//! objects, so that a machine without bpf(2) still compares the runtime with the
//! kernel.
//!
//! A root run records them (`cargo run -p bpf-progs --bin record-kernel-answers`):
//! each case runs on the committed `-mcpu=v2` object through the bpftool oracle
//! (`kclient::bpftool`) and the return value, the output frame and every map are
//! written, with the SHA-256 of the object and of the packet. [`answer`] refuses a
//! recording whose object or packet changed since (a stale recording is an error,
//! never a silent pass), and one made for other map writes or another repeat count.
//!
//! [`kernel_answer`] is what the differential tests call: the live kernel where
//! [`kclient::available`] says it may be used, the recording elsewhere. The `-mcpu=v1`
//! and `-mcpu=v3` builds (made by the local clang, so their bytes vary between
//! machines) return the same values and frames as the `v2` build, so without the
//! kernel their return value and output frame are compared with the `v2` recording
//! (the recorder checks that the kernel agrees on all three builds); their maps are
//! not, since a build may lay out global data or struct padding differently
//! ([`Source::RecordedOtherBuild`]).
//!
//! Per-CPU values: the kernel runs on CPU 0, so every other CPU's slot holds what the
//! case's sets wrote (or zeros). A recording made on a machine with another number of
//! possible CPUs is adapted to this machine's by repeating the value of CPU 1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kclient::bpftool::{KernelEntry, KernelRun};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{hex_decode, hex_encode, root, Case};

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The running kernel, through `kclient::bpftool`.
    Live,
    /// `recorded/NAME.json`, for the committed build it was recorded on.
    Recorded,
    /// `recorded/NAME.json` of the committed `v2` build, for another build of the
    /// same program: only the return value and the output frame apply.
    RecordedOtherBuild,
}

/// One object's recorded answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Recording {
    /// The object's file stem.
    pub object: String,
    /// SHA-256 of `obj/NAME.o` when the answers were recorded.
    pub object_sha256: String,
    /// `uname -r` of the kernel that answered.
    pub kernel: String,
    pub runs: Vec<RecordedRun>,
}

/// The kernel's answer to one case × packet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordedRun {
    pub prog: String,
    pub packet: String,
    pub packet_sha256: String,
    pub repeat: u32,
    /// The case's `(map, key hex, value hex)` writes.
    pub sets: Vec<(String, String, String)>,
    /// The case's `(prog_array, slot, program)` fills.
    pub prog_sets: Vec<(String, u32, String)>,
    pub retval: u32,
    /// Hex of the frame after the run, from `data_meta` on.
    pub data_out: String,
    /// Every map: entries as `(key hex, [value hex per CPU])`, in the kernel's dump
    /// order.
    pub maps: BTreeMap<String, Vec<(String, Vec<String>)>>,
}

/// `recorded/NAME.json`.
pub fn path(object: &str) -> PathBuf {
    root().join("recorded").join(format!("{object}.json"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex_encode(&Sha256::digest(bytes))
}

fn file_sha256(path: &Path) -> Result<String, String> {
    std::fs::read(path)
        .map(|b| sha256_hex(&b))
        .map_err(|e| format!("{}: {e}", path.display()))
}

impl RecordedRun {
    /// Whether this run is the one `case` makes on `packet`.
    pub fn is_for(&self, case: &Case, packet: &str) -> bool {
        self.prog == case.prog
            && self.packet == packet
            && self.repeat == case.repeat
            && self.sets == sets_of(case)
            && self.prog_sets == prog_sets_of(case)
    }

    /// The answer as the oracle gives it, per-CPU values adapted to `ncpus` CPUs.
    fn to_kernel_run(&self, ncpus: usize) -> Result<KernelRun, String> {
        let mut maps = BTreeMap::new();
        for (name, entries) in &self.maps {
            let mut out = Vec::with_capacity(entries.len());
            for (key, values) in entries {
                let mut values = values
                    .iter()
                    .map(|v| hex_decode(v))
                    .collect::<Result<Vec<_>, _>>()?;
                if values.len() > 1 {
                    values = adapt_percpu(values, ncpus);
                }
                out.push(KernelEntry {
                    key: hex_decode(key)?,
                    values,
                });
            }
            maps.insert(name.clone(), out);
        }
        Ok(KernelRun {
            retval: self.retval,
            duration_ns: 0,
            data_out: hex_decode(&self.data_out)?,
            maps,
            ctx_out: None,
        })
    }
}

/// Per-CPU values recorded on another machine, for `ncpus` CPUs: CPU 0's value, then
/// the value of CPU 1 (all CPUs but 0 hold the same, since only CPU 0 runs) repeated.
/// Values whose CPUs beyond 0 differ are returned as recorded.
fn adapt_percpu(values: Vec<Vec<u8>>, ncpus: usize) -> Vec<Vec<u8>> {
    if values.len() == ncpus || values[1..].windows(2).any(|w| w[0] != w[1]) || ncpus == 0 {
        return values;
    }
    let mut out = vec![values[0].clone()];
    out.extend(std::iter::repeat_n(values[1].clone(), ncpus - 1));
    out
}

fn sets_of(case: &Case) -> Vec<(String, String, String)> {
    case.sets
        .iter()
        .map(|(m, k, v)| (m.to_string(), k.to_string(), v.to_string()))
        .collect()
}

fn prog_sets_of(case: &Case) -> Vec<(String, u32, String)> {
    case.prog_sets
        .iter()
        .map(|(m, s, p)| (m.to_string(), *s, p.to_string()))
        .collect()
}

/// Reads `recorded/NAME.json`.
pub fn load(object: &str) -> Result<Recording, String> {
    let p = path(object);
    let text = std::fs::read_to_string(&p).map_err(|e| {
        format!(
            "no recorded kernel answers for {object} ({}: {e}); record them as root with \
             `cargo run -p bpf-progs --bin record-kernel-answers`",
            p.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
}

/// The recorded answer of `case` on `packet`, checked against the committed object
/// and the packet: `Err` when there is none or when it is stale.
pub fn answer(case: &Case, packet: &str) -> Result<KernelRun, String> {
    let rec = load(case.object)?;
    let object_sha = file_sha256(&crate::object(case.object))?;
    let packet_sha = file_sha256(&crate::packet(packet))?;
    find(&rec, case, packet, &object_sha, &packet_sha)?
        .to_kernel_run(kclient::possible_cpus() as usize)
}

/// The run of `rec` for `case` on `packet`, if the object and packet hashes are the
/// recorded ones.
fn find<'a>(
    rec: &'a Recording,
    case: &Case,
    packet: &str,
    object_sha: &str,
    packet_sha: &str,
) -> Result<&'a RecordedRun, String> {
    let stale =
        "record them again as root with `cargo run -p bpf-progs --bin record-kernel-answers`";
    if rec.object_sha256 != object_sha {
        return Err(format!(
            "stale recording {}: obj/{}.o changed since its answers were recorded; {stale}",
            path(case.object).display(),
            case.object
        ));
    }
    let run = rec
        .runs
        .iter()
        .find(|r| r.is_for(case, packet))
        .ok_or_else(|| {
            format!(
                "{} has no answer for {} with these sets; {stale}",
                path(case.object).display(),
                case.label(packet)
            )
        })?;
    if run.packet_sha256 != packet_sha {
        return Err(format!(
            "stale recording {}: packets/{packet} changed since {} was recorded; {stale}",
            path(case.object).display(),
            case.label(packet)
        ));
    }
    Ok(run)
}

/// Runs `case` on `packet` in the live kernel, on `object` (the case's object built
/// for some `-mcpu`), in the case's network namespace if it has one.
pub fn live(case: &Case, packet: &str, object: &Path) -> Result<KernelRun, String> {
    let data = std::fs::read(crate::packet(packet)).map_err(|e| format!("{packet}: {e}"))?;
    let sets = case.sets_bytes()?;
    let prog_sets = case.prog_sets_owned();
    match crate::netns_setup(case.object) {
        Some(setup) => kclient::bpftool::run_in_netns(
            object,
            case.prog,
            &data,
            case.repeat,
            &sets,
            &prog_sets,
            None,
            setup,
        ),
        None => {
            kclient::bpftool::run_with(object, case.prog, &data, case.repeat, &sets, &prog_sets)
        }
    }
}

/// The kernel's answer to `case` on `packet` for `object` (the case's object built for
/// some `-mcpu`): live where the kernel may be used, else the recording of the
/// committed build.
pub fn kernel_answer(
    case: &Case,
    packet: &str,
    object: &Path,
) -> Result<(KernelRun, Source), String> {
    if kclient::available().is_ok() {
        live(case, packet, object).map(|r| (r, Source::Live))
    } else if object == crate::object(case.object) {
        answer(case, packet).map(|r| (r, Source::Recorded))
    } else {
        answer(case, packet).map(|r| (r, Source::RecordedOtherBuild))
    }
}

/// The recording of one object's cases from the live kernel.
pub fn record(object: &str) -> Result<Recording, String> {
    kclient::available()?;
    let obj = crate::object(object);
    let mut runs = Vec::new();
    for case in crate::cases().iter().filter(|c| c.object == object) {
        for packet in case.packets {
            let r = live(case, packet, &obj).map_err(|e| format!("{}: {e}", case.label(packet)))?;
            runs.push(RecordedRun {
                prog: case.prog.to_string(),
                packet: packet.to_string(),
                packet_sha256: file_sha256(&crate::packet(packet))?,
                repeat: case.repeat,
                sets: sets_of(case),
                prog_sets: prog_sets_of(case),
                retval: r.retval,
                data_out: hex_encode(&r.data_out),
                maps: r
                    .maps
                    .into_iter()
                    .map(|(name, entries)| {
                        // In the kernel's dump order (an LPM trie's is postorder).
                        let e: Vec<(String, Vec<String>)> = entries
                            .into_iter()
                            .map(|e| {
                                (
                                    hex_encode(&e.key),
                                    e.values.iter().map(|v| hex_encode(v)).collect(),
                                )
                            })
                            .collect();
                        (name, e)
                    })
                    .collect(),
            });
        }
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    Ok(Recording {
        object: object.to_string(),
        object_sha256: file_sha256(&obj)?,
        kernel,
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_case() -> (&'static Case, &'static str) {
        let case = &crate::cases()[0];
        (case, case.packets[0])
    }

    #[test]
    fn every_case_has_a_current_recording() {
        let mut missing = Vec::new();
        let mut n = 0;
        for case in crate::cases() {
            for packet in case.packets {
                match answer(case, packet) {
                    Ok(_) => n += 1,
                    Err(e) => missing.push(e),
                }
            }
        }
        assert!(missing.is_empty(), "{}", missing.join("\n"));
        assert!(n > 0);
    }

    #[test]
    fn a_changed_object_makes_the_recording_stale() {
        let (case, packet) = first_case();
        let rec = load(case.object).unwrap();
        let object_sha = file_sha256(&crate::object(case.object)).unwrap();
        let packet_sha = file_sha256(&crate::packet(packet)).unwrap();
        assert!(find(&rec, case, packet, &object_sha, &packet_sha).is_ok());
        // The object as if rebuilt: one byte more.
        let mut bytes = std::fs::read(crate::object(case.object)).unwrap();
        bytes.push(0);
        let err = find(&rec, case, packet, &sha256_hex(&bytes), &packet_sha).unwrap_err();
        assert!(err.contains("stale recording"), "{err}");
        let err = find(&rec, case, packet, &object_sha, &sha256_hex(b"other")).unwrap_err();
        assert!(err.contains("stale recording"), "{err}");
        // Another repeat count than the recorded ones: no answer.
        let mut other = *case;
        other.repeat = 12_345;
        assert!(find(&rec, &other, packet, &object_sha, &packet_sha).is_err());
    }

    #[test]
    fn per_cpu_values_follow_this_machines_cpus() {
        let v = |b: u8| vec![b; 4];
        assert_eq!(adapt_percpu(vec![v(1), v(0), v(0)], 2), vec![v(1), v(0)]);
        assert_eq!(
            adapt_percpu(vec![v(1), v(7)], 4),
            vec![v(1), v(7), v(7), v(7)]
        );
        assert_eq!(adapt_percpu(vec![v(1), v(7)], 1), vec![v(1)]);
        // CPUs beyond 0 that differ are not guessed at.
        assert_eq!(
            adapt_percpu(vec![v(1), v(2), v(3)], 2),
            vec![v(1), v(2), v(3)]
        );
    }
}
