//! `xdp-runner map`: inspect and change the maps of a shared-memory store, like
//! `bpftool map`.
//!
//! Maps are named as bpftool names them: `id N`, `pinned PATH` or `name NAME`.
//! Keys and values are bytes in memory order: `key hex 0a 00 00 00`, `key hex
//! 0a000000`, or decimal bytes as bpftool takes them without `hex` (`key 10 0 0 0`).
//! Output is bpftool's plain text, or JSON with `--json` (keys and values as arrays of
//! `"0x0a"` strings like bpftool's, plus the same bytes as one hex string).
//!
//! Where the map has BTF (its object's `.BTF`, registered in the store by `xdp-runner
//! run --store` or by a libbpf loader through the shim), `dump`, `lookup` and
//! `getnext` also show keys and values formatted by type, as bpftool's `btf_dumper`
//! does ([`crate::btf_format`]): `"formatted"` in JSON, exactly as `bpftool -j map
//! dump` writes it, and in text, after each entry's bytes, the block bpftool prints
//! for a map with BTF. `show` prints `btf_id N`.

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use maps::{Map, MapError, MapInfo, Pinned, Store};
use serde_json::{json, Value};

use crate::btf_format::{self, Node, Values};
use crate::hex;

/// The store `--store` names by default: `/dev/shm/xdp-runtime`.
pub const DEFAULT_STORE: &str = "xdp-runtime";

#[derive(Args, Debug)]
pub struct MapArgs {
    /// The shared-memory store (/dev/shm/NAME) holding the maps.
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
    pub op: MapOp,
}

#[derive(Subcommand, Debug)]
pub enum MapOp {
    /// Every map of the store (same as `show` without a map).
    List,
    /// One map (`id N` | `pinned PATH` | `name NAME`), or every map.
    Show {
        #[arg(value_name = "MAP", num_args = 0..)]
        map: Vec<String>,
    },
    /// Every entry of a map: MAP.
    Dump {
        #[arg(value_name = "MAP", num_args = 1..)]
        map: Vec<String>,
    },
    /// One entry: MAP key [hex] BYTES.
    Lookup {
        #[arg(value_name = "ARGS", num_args = 1..)]
        args: Vec<String>,
    },
    /// Write one entry: MAP key [hex] BYTES value [hex] BYTES [any|noexist|exist].
    Update {
        #[arg(value_name = "ARGS", num_args = 1..)]
        args: Vec<String>,
    },
    /// Delete one entry: MAP key [hex] BYTES.
    Delete {
        #[arg(value_name = "ARGS", num_args = 1..)]
        args: Vec<String>,
    },
    /// The key after KEY, or the first key: MAP [key [hex] BYTES].
    Getnext {
        #[arg(value_name = "ARGS", num_args = 1..)]
        args: Vec<String>,
    },
    /// Read (consume) the records programs sent to a perf_event_array or ringbuf:
    /// MAP [--count N] [--timeout MS] [--index N] [--attach].
    #[command(visible_alias = "event_pipe")]
    Events(super::events::EventsArgs),
}

pub fn run(args: MapArgs) -> Result<()> {
    let store = open_store(&args.store, args.store_trust.as_deref())?;
    let json = args.json;
    match args.op {
        MapOp::List => show(&store, &[], json),
        MapOp::Show { map } => show(&store, &map, json),
        MapOp::Dump { map } => {
            let (m, rest) = select(&store, &map)?;
            no_more(rest)?;
            dump(&m, map_btf(&store, &m).as_ref(), json)
        }
        MapOp::Lookup { args } => {
            let (m, rest) = select(&store, &args)?;
            let (key, rest) = take_bytes(rest, "key")?;
            let key = key.ok_or_else(|| anyhow!("expected `key BYTES`"))?;
            no_more(rest)?;
            lookup(&m, map_btf(&store, &m).as_ref(), &key, json)
        }
        MapOp::Update { args } => {
            let (m, rest) = select(&store, &args)?;
            let (key, rest) = take_bytes(rest, "key")?;
            let key = key.ok_or_else(|| anyhow!("expected `key BYTES`"))?;
            let (value, rest) = take_bytes(rest, "value")?;
            let value = value.ok_or_else(|| anyhow!("expected `value BYTES`"))?;
            let flags = match rest {
                [] => maps::BPF_ANY,
                [f] => parse_flag(f)?,
                more => bail!("unexpected arguments: {}", more.join(" ")),
            };
            m.update(&key, &value, flags)
                .map_err(|e| op_error("update", &e))?;
            if json {
                println!("null");
            }
            Ok(())
        }
        MapOp::Delete { args } => {
            let (m, rest) = select(&store, &args)?;
            let (key, rest) = take_bytes(rest, "key")?;
            let key = key.ok_or_else(|| anyhow!("expected `key BYTES`"))?;
            no_more(rest)?;
            m.delete(&key).map_err(|e| op_error("delete", &e))?;
            if json {
                println!("null");
            }
            Ok(())
        }
        MapOp::Getnext { args } => {
            let (m, rest) = select(&store, &args)?;
            let (key, rest) = take_bytes(rest, "key")?;
            no_more(rest)?;
            getnext(&m, map_btf(&store, &m).as_ref(), key.as_deref(), json)
        }
        MapOp::Events(ev) => super::events::run(&store, ev, json),
    }
}

/// Opens a store that must exist, trusting its owner only if it is the caller
/// or named by `trust` (`--store-trust`).
pub fn open_store(name: &str, trust: Option<&str>) -> Result<Store> {
    let access = store_access(trust, None)?;
    Store::open_with(name, &access).context("cannot open the store")
}

/// The access `--store-trust` and `--store-group` ask for.
pub fn store_access(trust: Option<&str>, group: Option<u32>) -> Result<maps::StoreAccess> {
    Ok(maps::StoreAccess {
        trust: match trust {
            Some(spec) => maps::Trust::parse(spec)?,
            None => maps::Trust::default(),
        },
        group,
        ..maps::StoreAccess::default()
    })
}

pub(crate) fn op_error(op: &str, e: &MapError) -> anyhow::Error {
    anyhow!(
        "{op} failed: {} ({e})",
        std::io::Error::from_raw_os_error(e.errno())
    )
}

pub(crate) fn no_more<S: AsRef<str>>(rest: &[S]) -> Result<()> {
    if rest.is_empty() {
        Ok(())
    } else {
        let v: Vec<&str> = rest.iter().map(|s| s.as_ref()).collect();
        bail!("unexpected arguments: {}", v.join(" "))
    }
}

fn parse_flag(f: &str) -> Result<u64> {
    Ok(match f {
        "any" => maps::BPF_ANY,
        "noexist" => maps::BPF_NOEXIST,
        "exist" => maps::BPF_EXIST,
        other => bail!("unknown update flag {other:?} (any, noexist or exist)"),
    })
}

/// `id N`, `pinned PATH` or `name NAME` at the start of `args`; the map and the rest.
pub fn select<'a>(store: &Store, args: &'a [String]) -> Result<(Map, &'a [String])> {
    let (kw, what, rest) = match args {
        [kw, what, rest @ ..] => (kw.as_str(), what.as_str(), rest),
        _ => bail!("expected a map: `id N`, `pinned PATH` or `name NAME`"),
    };
    let map = match kw {
        "id" => {
            let id: u32 = what
                .parse()
                .with_context(|| format!("{what:?} is not a map id"))?;
            store.map_by_id(id)?
        }
        "pinned" => store.map_by_pin(what)?,
        // Several maps of that name (each `run --store` of an object adds a
        // set) are refused with their ids, as bpftool refuses an ambiguous handle.
        "name" => store.map_by_name(what)?,
        other => bail!("expected `id`, `pinned` or `name`, not {other:?}"),
    };
    Ok((map, rest))
}

/// Parses one byte token: a decimal, 0x-prefixed or 0-prefixed (octal) number up to
/// 255, as bpftool's strtoul(.., 0) does.
fn c_byte(t: &str) -> Option<u8> {
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()?
    } else if t.len() > 1 && t.starts_with('0') {
        u32::from_str_radix(&t[1..], 8).ok()?
    } else {
        t.parse::<u32>().ok()?
    };
    u8::try_from(v).ok()
}

fn is_keyword(t: &str) -> bool {
    matches!(t, "key" | "value" | "any" | "noexist" | "exist")
}

/// `WORD [hex] BYTES...` at the start of `args` (None if `args` does not start with
/// `word`); the bytes and the rest.
pub fn take_bytes<'a>(args: &'a [String], word: &str) -> Result<(Option<Vec<u8>>, &'a [String])> {
    let Some((first, mut rest)) = args.split_first() else {
        return Ok((None, args));
    };
    if first != word {
        return Ok((None, args));
    }
    let hex_mode = rest.first().is_some_and(|t| t == "hex");
    if hex_mode {
        rest = &rest[1..];
    }
    let mut out = Vec::new();
    let mut n = 0;
    for t in rest {
        if is_keyword(t) {
            break;
        }
        n += 1;
        if hex_mode {
            out.extend(hex::parse(t).with_context(|| format!("{word}: bad hex {t:?}"))?);
        } else if let Some(b) = c_byte(t) {
            out.push(b);
        } else if t.len() > 3 {
            // One packed hex string, e.g. 0a000000.
            out.extend(hex::parse(t).with_context(|| format!("{word}: bad bytes {t:?}"))?);
        } else {
            bail!("{word}: {t:?} is not a byte (use `{word} hex ...` for hex)");
        }
    }
    if n == 0 {
        bail!("{word}: expected bytes");
    }
    Ok((Some(out), &rest[n..]))
}

/// Bytes as bpftool prints them: `0a 00 00 00`.
fn spaced(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Bytes as bpftool's JSON: `["0x0a", "0x00"]`.
fn json_bytes(b: &[u8]) -> Value {
    Value::Array(b.iter().map(|x| json!(format!("{x:#04x}"))).collect())
}

fn flags_of(info: &MapInfo) -> u32 {
    info.map_flags
}

fn pins_of(store: &Store, id: u32) -> Vec<String> {
    store
        .pins()
        .into_iter()
        .filter(|(_, p)| *p == Pinned::Map(id))
        .map(|(path, _)| path)
        .collect()
}

fn show(store: &Store, sel: &[String], json: bool) -> Result<()> {
    let maps: Vec<Map> = if sel.is_empty() {
        store
            .map_ids()
            .into_iter()
            .filter_map(|id| store.map_by_id(id).ok())
            .collect()
    } else {
        let (m, rest) = select(store, sel)?;
        no_more(rest)?;
        vec![m]
    };
    let mut docs = Vec::new();
    for m in &maps {
        let info = m.info();
        let pins = pins_of(store, info.id);
        if json {
            let mut d = json!({
                "id": info.id,
                "type": m.type_name(),
                "name": info.name,
                "flags": flags_of(&info),
                "bytes_key": info.key_size,
                "bytes_value": info.value_size,
                "max_entries": info.max_entries,
                "frozen": u32::from(m.is_frozen()),
            });
            if m.ncpus() > 0 && runtime::is_percpu(info.map_type) {
                d["ncpus"] = json!(m.ncpus());
            }
            if !pins.is_empty() {
                d["pinned"] = json!(pins);
            }
            if info.btf_id != 0 {
                d["btf_id"] = json!(info.btf_id);
            }
            docs.push(d);
        } else {
            println!(
                "{}: {}  name {}  flags {:#x}",
                info.id,
                m.type_name(),
                info.name,
                flags_of(&info)
            );
            print!(
                "\tkey {}B  value {}B  max_entries {}",
                info.key_size, info.value_size, info.max_entries
            );
            if m.is_frozen() {
                print!("  frozen");
            }
            println!();
            for p in pins {
                println!("\tpinned {p}");
            }
            if info.btf_id != 0 {
                println!("\tbtf_id {}", info.btf_id);
            }
        }
    }
    if json {
        if sel.is_empty() {
            println!("{}", Value::Array(docs));
        } else if let Some(d) = docs.pop() {
            println!("{d}");
        }
    }
    Ok(())
}

/// A value split per CPU (per-CPU maps) or whole.
fn split_values(m: &Map, value: &[u8]) -> Option<Vec<Vec<u8>>> {
    let info = m.info();
    if !runtime::is_percpu(info.map_type) {
        return None;
    }
    let stride = (info.value_size as usize).div_ceil(8) * 8;
    Some(
        value
            .chunks(stride)
            .map(|c| c[..(info.value_size as usize).min(c.len())].to_vec())
            .collect(),
    )
}

/// The BTF describing a map's key and value: the store's BTF object `btf_id`, when
/// the map has one and a value type. A BTF that cannot be read or parsed is reported
/// on stderr and the map is shown as bytes only.
fn map_btf(store: &Store, m: &Map) -> Option<loader::Btf> {
    let info = m.info();
    if info.btf_id == 0 || info.btf_value_type_id == 0 {
        return None;
    }
    let parsed = store
        .btf_data(info.btf_id)
        .map_err(|e| e.to_string())
        .and_then(|data| loader::Btf::parse(&data).map_err(|e| e.to_string()));
    match parsed {
        Ok(btf) => Some(btf),
        Err(e) => {
            eprintln!(
                "Warning: BTF {} of map {}: {e}; showing bytes only",
                info.btf_id, info.id
            );
            None
        }
    }
}

/// One entry formatted by the map's BTF (`None` without BTF; a value its BTF cannot
/// describe is reported on stderr).
fn formatted(m: &Map, btf: Option<&loader::Btf>, key: &[u8], value: &[u8]) -> Option<Node> {
    let btf = btf?;
    let info = m.info();
    let per_cpu = split_values(m, value);
    let values = match &per_cpu {
        Some(v) => Values::PerCpu(v),
        None => Values::One(value),
    };
    let r = btf_format::format_entry(
        btf,
        info.btf_key_type_id,
        info.btf_value_type_id,
        key,
        values,
    );
    match r {
        Ok(n) => Some(n),
        Err(e) => {
            eprintln!(
                "Warning: map {}: cannot format an entry by its BTF: {e:#}",
                info.id
            );
            None
        }
    }
}

/// A key alone formatted by the map's BTF key type.
fn formatted_key(m: &Map, btf: Option<&loader::Btf>, key: &[u8]) -> Option<Node> {
    let info = m.info();
    if info.btf_key_type_id == 0 {
        return None;
    }
    btf_format::format_type(btf?, info.btf_key_type_id, key).ok()
}

fn entry_json(m: &Map, btf: Option<&loader::Btf>, key: &[u8], value: &[u8]) -> Value {
    let mut doc = entry_json_bytes(m, key, value);
    if let Some(n) = formatted(m, btf, key, value) {
        doc["formatted"] = n.to_json();
    }
    doc
}

/// The entry in text: bytes as bpftool prints them without BTF, then (with BTF) the
/// block bpftool prints with it.
fn entry_text(m: &Map, btf: Option<&loader::Btf>, key: &[u8], value: &[u8]) -> String {
    let mut s = entry_text_bytes(m, key, value);
    if let Some(n) = formatted(m, btf, key, value) {
        s.push('\n');
        s.push_str(&n.plain());
    }
    s
}

fn entry_json_bytes(m: &Map, key: &[u8], value: &[u8]) -> Value {
    match split_values(m, value) {
        Some(per_cpu) => json!({
            "key": json_bytes(key),
            "key_hex": hex::encode(key),
            "values": per_cpu.iter().enumerate().map(|(cpu, v)| json!({
                "cpu": cpu,
                "value": json_bytes(v),
                "value_hex": hex::encode(v),
            })).collect::<Vec<_>>(),
        }),
        None => json!({
            "key": json_bytes(key),
            "key_hex": hex::encode(key),
            "value": json_bytes(value),
            "value_hex": hex::encode(value),
        }),
    }
}

fn entry_text_bytes(m: &Map, key: &[u8], value: &[u8]) -> String {
    match split_values(m, value) {
        Some(per_cpu) => {
            let mut s = format!("key:\n{}", spaced(key));
            for (cpu, v) in per_cpu.iter().enumerate() {
                s.push_str(&format!("\nvalue (CPU {cpu:02}): {}", spaced(v)));
            }
            s
        }
        None if key.len() + value.len() > 24 => {
            format!("key:\n{}\nvalue:\n{}", spaced(key), spaced(value))
        }
        None => format!("key: {}  value: {}", spaced(key), spaced(value)),
    }
}

fn dump(m: &Map, btf: Option<&loader::Btf>, json: bool) -> Result<()> {
    use std::io::Write;
    let info = m.info();
    let mut value = vec![0u8; m.user_value_size()];
    let mut docs = Vec::new();
    let mut n = 0usize;
    // Written, not printed: a closed pipe (`| head`) ends the dump with an error.
    let mut out = std::io::stdout().lock();
    // The walk yields at most max_entries keys and ends with an error on a
    // corrupt map (maps::MapKeys).
    for key in m.iter() {
        let key = key.map_err(|e| op_error("get_next_key", &e))?;
        match m.lookup(&key, &mut value) {
            Ok(()) => {}
            // Deleted meanwhile.
            Err(e) if e.errno() == ENOENT => continue,
            // A perf slot cannot be read back: bpftool lists each key with the
            // lookup's error and counts no element.
            Err(e) if info.map_type == PERF_EVENT_ARRAY => {
                let err = std::io::Error::from_raw_os_error(e.errno()).to_string();
                let err = err.split(" (os error").next().unwrap_or_default();
                if json {
                    docs.push(json!({"key": json_bytes(&key), "value": {"error": err}}));
                } else {
                    writeln!(out, "key:\n{}\nvalue:\n{err}", spaced(&key))?;
                }
                continue;
            }
            Err(e) => return Err(op_error("lookup", &e)),
        }
        n += 1;
        if json {
            docs.push(entry_json(m, btf, &key, &value));
        } else {
            writeln!(out, "{}", entry_text(m, btf, &key, &value))?;
        }
    }
    if json {
        writeln!(out, "{}", Value::Array(docs))?;
    } else {
        writeln!(out, "Found {n} element{}", if n == 1 { "" } else { "s" })?;
    }
    Ok(())
}

/// errno ENOENT (runner has no libc dependency).
const ENOENT: i32 = 2;
/// BPF_MAP_TYPE_PERF_EVENT_ARRAY.
const PERF_EVENT_ARRAY: u32 = 4;

fn lookup(m: &Map, btf: Option<&loader::Btf>, key: &[u8], json: bool) -> Result<()> {
    let mut value = vec![0u8; m.user_value_size()];
    m.lookup(key, &mut value)
        .map_err(|e| op_error("lookup", &e))?;
    if json {
        println!("{}", entry_json(m, btf, key, &value));
    } else {
        println!("{}", entry_text(m, btf, key, &value));
    }
    Ok(())
}

fn getnext(m: &Map, btf: Option<&loader::Btf>, key: Option<&[u8]>, json: bool) -> Result<()> {
    let mut next = vec![0u8; m.info().key_size as usize];
    m.get_next_key(key, &mut next)
        .map_err(|e| op_error("getnext", &e))?;
    // With a BTF key type: {"key": KEY or null, "next_key": NEXT}, formatted.
    let fmt = formatted_key(m, btf, &next).map(|n| {
        let k = key.and_then(|k| formatted_key(m, btf, k));
        Node::Object(vec![
            ("key".to_string(), k.unwrap_or(Node::Raw("null"))),
            ("next_key".to_string(), n),
        ])
    });
    if json {
        let k = key.map_or(Value::Null, json_bytes);
        let mut doc =
            json!({"key": k, "next_key": json_bytes(&next), "next_key_hex": hex::encode(&next)});
        if let Some(f) = &fmt {
            let mut f = f.to_json();
            if key.is_none() {
                f["key"] = Value::Null;
            }
            doc["formatted"] = f;
        }
        println!("{doc}");
    } else {
        match key {
            Some(k) => println!("key:\n{}", spaced(k)),
            None => println!("key: None"),
        }
        println!("next key:\n{}", spaced(&next));
        if let Some(f) = &fmt {
            println!("{}", f.plain());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn byte_arguments_take_bpftool_forms() {
        let a = strs(&["key", "hex", "0a", "00", "00", "00", "value", "1"]);
        let (k, rest) = take_bytes(&a, "key").expect("key");
        assert_eq!(k, Some(vec![10, 0, 0, 0]));
        let (v, rest) = take_bytes(rest, "value").expect("value");
        assert_eq!(v, Some(vec![1]));
        assert!(rest.is_empty());
        let a = strs(&["key", "hex", "0a000000", "any"]);
        let (k, rest) = take_bytes(&a, "key").expect("packed");
        assert_eq!((k, rest.len()), (Some(vec![10, 0, 0, 0]), 1));
        let a = strs(&["key", "10", "0x0b", "010", "0"]);
        assert_eq!(
            take_bytes(&a, "key").expect("dec").0,
            Some(vec![10, 11, 8, 0])
        );
        let a = strs(&["key", "0a000000"]);
        assert_eq!(
            take_bytes(&a, "key").expect("packed").0,
            Some(vec![10, 0, 0, 0])
        );
        assert!(take_bytes(&strs(&["key", "256"]), "key").is_err());
        assert!(take_bytes(&strs(&["key"]), "key").is_err());
        assert!(take_bytes(&strs(&["key", "hex", "zz"]), "key").is_err());
        assert_eq!(
            take_bytes(&strs(&["value", "1"]), "key").expect("none").0,
            None
        );
    }

    #[test]
    fn formats() {
        assert_eq!(spaced(&[10, 0, 255]), "0a 00 ff");
        assert_eq!(json_bytes(&[10, 0]), json!(["0x0a", "0x00"]));
        assert!(parse_flag("exist").is_ok_and(|f| f == maps::BPF_EXIST));
        assert!(parse_flag("bogus").is_err());
    }
}
