//! `xdp-runner prog`: the programs registered in a shared-memory store, like
//! `bpftool prog list|show`.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use maps::{Pinned, ProgramInfo, Store};
use serde_json::{json, Value};

use crate::hex;

use super::map::{open_store, DEFAULT_STORE};

#[derive(Args, Debug)]
pub struct ProgArgs {
    /// The shared-memory store (/dev/shm/NAME) holding the programs.
    #[arg(long, global = true, value_name = "NAME", default_value = DEFAULT_STORE)]
    pub store: String,
    /// Also open a store owned by these users or groups (`uid:N`, `gid:N`,
    /// comma-separated): by default only one's own private store is opened.
    #[arg(long, global = true, value_name = "uid:N,gid:N")]
    pub store_trust: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, short = 'j', global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub op: ProgOp,
}

#[derive(Subcommand, Debug)]
pub enum ProgOp {
    /// Every program of the store (same as `show` without a program).
    List,
    /// One program (`id N` | `pinned PATH` | `name NAME` | `tag TAG`), or every program.
    Show {
        #[arg(value_name = "PROG", num_args = 0..)]
        prog: Vec<String>,
    },
}

pub fn run(args: ProgArgs) -> Result<()> {
    let store = open_store(&args.store, args.store_trust.as_deref())?;
    match args.op {
        ProgOp::List => show(&store, &[], args.json),
        ProgOp::Show { prog } => show(&store, &prog, args.json),
    }
}

/// The kernel's name of a `BPF_PROG_TYPE_*`, as bpftool prints it.
pub fn prog_type_name(t: u32) -> &'static str {
    match t {
        0 => "unspec",
        1 => "socket_filter",
        2 => "kprobe",
        3 => "sched_cls",
        4 => "sched_act",
        5 => "tracepoint",
        6 => "xdp",
        7 => "perf_event",
        8 => "cgroup_skb",
        _ => "unknown",
    }
}

fn select(store: &Store, sel: &[String]) -> Result<Vec<ProgramInfo>> {
    let all = store.programs();
    if sel.is_empty() {
        return Ok(all);
    }
    let [kw, what] = sel else {
        bail!("expected a program: `id N`, `pinned PATH`, `name NAME` or `tag TAG`");
    };
    let found: Vec<ProgramInfo> = match kw.as_str() {
        "id" => {
            let id: u32 = what
                .parse()
                .with_context(|| format!("{what:?} is not a program id"))?;
            vec![store.program_by_id(id)?]
        }
        "pinned" => match store.pinned(what)? {
            Pinned::Prog(id) => vec![store.program_by_id(id)?],
            Pinned::Map(_) => bail!("{what:?} is a map, not a program"),
            Pinned::Dir => bail!("{what:?} is a directory, not a program"),
            Pinned::Link(_) => bail!("{what:?} is a link, not a program"),
            Pinned::Symlink => bail!("{what:?} is a symbolic link, not a program"),
        },
        "name" => all.into_iter().filter(|p| &p.name == what).collect(),
        "tag" => {
            let tag = hex::parse(what).with_context(|| format!("bad tag {what:?}"))?;
            all.into_iter().filter(|p| p.tag[..] == tag[..]).collect()
        }
        other => bail!("expected `id`, `pinned`, `name` or `tag`, not {other:?}"),
    };
    if found.is_empty() {
        bail!("no program with {kw} {what} in the store");
    }
    Ok(found)
}

fn pins_of(store: &Store, id: u32) -> Vec<String> {
    store
        .pins()
        .into_iter()
        .filter(|(_, p)| *p == Pinned::Prog(id))
        .map(|(path, _)| path)
        .collect()
}

fn show(store: &Store, sel: &[String], json: bool) -> Result<()> {
    let progs = select(store, sel)?;
    let single = !sel.is_empty() && sel[0] != "name" && sel[0] != "tag";
    let mut docs = Vec::new();
    for p in &progs {
        let pins = pins_of(store, p.id);
        if json {
            let mut d = json!({
                "id": p.id,
                "type": prog_type_name(p.prog_type),
                "name": p.name,
                "tag": hex::encode(&p.tag),
                "insn_cnt": p.insn_cnt,
                "bytes_xlated": u64::from(p.insn_cnt) * 8,
                "map_ids": p.map_ids,
                "gpl_compatible": p.gpl_compatible,
                "uid": p.uid,
            });
            if p.btf_id != 0 {
                d["btf_id"] = json!(p.btf_id);
            }
            if p.run_cnt != 0 {
                d["run_time_ns"] = json!(p.run_time_ns);
                d["run_cnt"] = json!(p.run_cnt);
            }
            if !pins.is_empty() {
                d["pinned"] = json!(pins);
            }
            docs.push(d);
        } else {
            println!(
                "{}: {}  name {}  tag {}",
                p.id,
                prog_type_name(p.prog_type),
                p.name,
                hex::encode(&p.tag)
            );
            print!(
                "\txlated {}B  insns {}",
                u64::from(p.insn_cnt) * 8,
                p.insn_cnt
            );
            if !p.map_ids.is_empty() {
                let ids: Vec<String> = p.map_ids.iter().map(|i| i.to_string()).collect();
                print!("  map_ids {}", ids.join(","));
            }
            print!("  uid {}", p.uid);
            if p.btf_id != 0 {
                print!("  btf_id {}", p.btf_id);
            }
            if p.run_cnt != 0 {
                print!("  run_time_ns {} run_cnt {}", p.run_time_ns, p.run_cnt);
            }
            println!();
            for path in pins {
                println!("\tpinned {path}");
            }
        }
    }
    if json {
        if single {
            if let Some(d) = docs.pop() {
                println!("{d}");
            }
        } else {
            println!("{}", Value::Array(docs));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_follow_the_kernel() {
        assert_eq!(prog_type_name(6), "xdp");
        assert_eq!(prog_type_name(3), "sched_cls");
        assert_eq!(prog_type_name(999), "unknown");
    }
}
