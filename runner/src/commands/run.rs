//! `xdp-runner run`: one program, one packet, N repeats, like `bpftool prog run`.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use runtime::{LoadedObject, Packet, Vm};
use serde_json::{json, Map as JsonMap, Value};

use crate::hex;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The clang-compiled object file (.o).
    #[arg(required_unless_present = "id")]
    pub object: Option<PathBuf>,
    /// Run program N of the store instead of an object's: one loaded by
    /// `xdp-runner run --store`, or through the shim (libxdpshim.so) by bpftool or
    /// a libbpf loader. Uses --store (default xdp-runtime).
    #[arg(long, value_name = "N", conflicts_with_all = ["object", "prog", "pin_maps"])]
    pub id: Option<u32>,
    /// The input packet (raw bytes, starting at the Ethernet header).
    #[arg(long, value_name = "FILE")]
    pub data_in: PathBuf,
    /// The program to run, by function or section name (default: the first XDP program).
    #[arg(long, value_name = "NAME")]
    pub prog: Option<String>,
    /// Write the output packet (from data_meta to data_end) here; `-` prints it
    /// as a hex dump before the result, as bpftool's `data_out -`.
    #[arg(long, value_name = "FILE")]
    pub data_out: Option<PathBuf>,
    /// Run the program N times on the same buffer without resetting it, as the kernel does.
    /// SIGINT or SIGTERM stops the runs after the current one: the result of the runs
    /// done is printed with their count, and the exit status is 130 (SIGINT) or 143
    /// (SIGTERM).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub repeat: u64,
    /// The step budget of each run: backward jumps taken that close a loop, bpf-to-bpf calls, bpf_loop
    /// callback invocations and tail calls, counted together. A run that needs more
    /// stops with an error naming the instruction (a program that never ends).
    #[arg(long, default_value_t = runtime::DEFAULT_MAX_STEPS, value_name = "N")]
    pub max_steps: u64,
    /// Execution engine.
    #[arg(long, default_value = "interpreter", value_parser = engine_parser())]
    pub engine: Engine,
    /// Audit mode, in either engine: every memory access runs checked, also those the
    /// analysis proved safe (which otherwise run unchecked), and a proven access that
    /// fails its check ends the run with a "proof violated" error. Slower; for testing
    /// the analysis.
    #[arg(long)]
    pub audit: bool,
    /// Write one map entry before the run: MAP:KEYHEX=VALUEHEX, bytes in memory order.
    /// For a prog_array, VALUE may be @PROGNAME. For a per-CPU map, a single value is
    /// written to every CPU. Repeatable.
    #[arg(long = "set", value_name = "MAP:KEY=VALUE")]
    pub sets: Vec<String>,
    /// A test-run context (`struct xdp_md`, up to 24 bytes, as bpftool's ctx_in):
    /// data = metadata length at the start of --data-in, data_end = its length,
    /// ingress_ifindex, rx_queue_index; checked with the kernel's rules.
    #[arg(long, value_name = "FILE")]
    pub ctx_in: Option<PathBuf>,
    /// Write the context after the run here (`struct xdp_md`, offsets from
    /// data_meta); `-` prints it as a hex dump (with --json: a `ctx_out` hex string).
    #[arg(long, value_name = "FILE")]
    pub ctx_out: Option<PathBuf>,
    /// The worker index the run uses: bpf_get_smp_processor_id() and the per-CPU slot.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub cpu: u32,
    /// Write /tmp/perf-<pid>.map lines for the JIT's functions, so `perf report`
    /// names them (also on with XDP_RUNTIME_PERF_MAP=1).
    #[arg(long)]
    pub perf_map: bool,
    /// Report extra details on stderr, such as the JIT's compile time.
    #[arg(long, short)]
    pub verbose: bool,
    /// Print one JSON object: retval, duration_ns, repeat, data_out and every map.
    #[arg(long)]
    pub json: bool,
    /// Keep the maps in this named shared-memory store (/dev/shm/NAME, created if
    /// missing) instead of a private one: they persist after the run, and the
    /// program is registered there, for `xdp-runner map`/`prog` and other processes.
    #[arg(long, value_name = "NAME")]
    pub store: Option<String>,
    /// Also open a store owned by these users or groups (`uid:N`, `gid:N`,
    /// comma-separated): by default only one's own private store is opened.
    #[arg(long, value_name = "uid:N,gid:N")]
    pub store_trust: Option<String>,
    /// Create the --store shared with this group (mode 0660), for a control
    /// plane running as another member of it (which opens it with
    /// `--store-trust gid:N`).
    #[arg(long, value_name = "GID", requires = "store")]
    pub store_group: Option<u32>,
    /// Count the runs and their time in the program's statistics (run_cnt,
    /// run_time_ns, as the kernel's bpf_stats_enabled), print them, and keep them
    /// in the store for `xdp-runner prog show` (with --store or --id).
    #[arg(long)]
    pub stats: bool,
    /// The network bpf_fib_lookup sees: a script of `ip link|addr|neigh|route add`,
    /// `ip link set` and `sysctl -w net.ipv4.ip_forward=1`-style lines, as one would
    /// run in a fresh network namespace (lines: see runtime::net). Without it,
    /// lookups see a fresh namespace: only lo, down, forwarding off. With it,
    /// --ctx-in's ingress_ifindex names one of the script's interfaces.
    #[arg(long, value_name = "FILE")]
    pub net: Option<PathBuf>,
    /// With --store: pin every map of the object as PREFIX/<map name>.
    #[arg(long, value_name = "PREFIX", requires = "store")]
    pub pin_maps: Option<String>,
    /// Refuse programs whose memory accesses and helper arguments the analysis does
    /// not all prove safe, printing the unproven instructions with their register
    /// states (as the kernel's verifier would refuse them); without it they run with
    /// run-time checks.
    #[arg(long)]
    pub strict: bool,
    /// After the runs, keep firing the store's due bpf_timer callbacks for up to MS
    /// milliseconds (returning as soon as no timer is armed), then print the maps:
    /// what the callbacks did shows in them. Without it, timers the runs started
    /// stay pending in the store, where `xdp-runner timers` fires them.
    #[arg(long, value_name = "MS")]
    pub wait_timers: Option<u64>,
    #[command(flatten)]
    pub load: super::ObjectArgs,
}

/// `--wait-timers`: drives the store's timers with `engine` for up to `ms`.
pub(crate) fn wait_timers(
    store: &maps::Store,
    ms: u64,
    vm: &mut Vm,
    engine: &dyn runtime::timers::CallbackEngine,
    stop: &std::sync::atomic::AtomicBool,
    verbose: bool,
) -> Result<()> {
    use std::sync::atomic::Ordering;
    let mut driver = runtime::timers::TimerDriver::new(store)
        .context("cannot drive the store's timers (--wait-timers)")?;
    let st = driver
        .run_for(
            std::time::Duration::from_millis(ms),
            std::time::Duration::from_millis(1),
            true,
            vm,
            engine,
            &|| stop.load(Ordering::Relaxed),
        )
        .context("driving the timers")?;
    if let Some(t) = &driver.last_trap {
        eprintln!(
            "warning: {} timer callbacks faulted, the last: {t}",
            st.traps
        );
    }
    if st.orphans > 0 {
        eprintln!(
            "warning: {} due timers have a callback of a program not loaded here",
            st.orphans
        );
    }
    if verbose {
        eprintln!(
            "timers: {} callbacks run, {} still armed",
            st.fired,
            driver.armed()
        );
    }
    Ok(())
}

pub use runtime::Engine;

/// `--engine`: the runtime's engines by name, listed in `--help`.
pub fn engine_parser() -> impl clap::builder::TypedValueParser<Value = Engine> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Engine::ALL.map(Engine::name))
        .map(|s| s.parse::<Engine>().expect("a listed engine"))
}

/// A named store whose memory could not be reserved: say what the object needs and
/// the ways out.
fn no_room_hint(e: maps::StoreError, size: usize) -> anyhow::Error {
    if !matches!(e, maps::StoreError::NoRoom { .. }) {
        return e.into();
    }
    anyhow::Error::new(e).context(format!(
        "the object's maps need a store of {size} bytes, reserved in full when it is \
         created, more than /dev/shm has free: enlarge /dev/shm (mount -o remount,size=... /dev/shm, docker \
         --shm-size), or run without --store (an anonymous store backs only the pages \
         the maps touch)"
    ))
}

pub fn run(args: RunArgs) -> Result<()> {
    let data = super::read_packet(&args.data_in)?;
    let access = super::map::store_access(args.store_trust.as_deref(), args.store_group)?;
    // The object is read first: a new store is sized for its maps, as bench sizes one.
    let object = match (args.id, &args.object) {
        (Some(_), _) => None,
        (None, Some(path)) => Some((args.load.load(path, true)?, path)),
        (None, None) => bail!("give an object file or --id"),
    };
    let size = object.as_ref().map_or(maps::DEFAULT_STORE_SIZE, |(o, _)| {
        runtime::store_size_for(o)
    });
    let opts = maps::StoreOptions {
        size,
        ..Default::default()
    };
    let store = match (&args.store, args.id) {
        (name, Some(_)) => {
            let name = name.as_deref().unwrap_or(super::map::DEFAULT_STORE);
            maps::Store::open_with(name, &access).context("cannot open the store")?
        }
        (Some(name), None) => maps::Store::open_or_create_with(name, opts, &access)
            .map_err(|e| no_room_hint(e, size))
            .with_context(|| format!("cannot open or create the store {name:?}"))?,
        // Anonymous: a memfd of `size` bytes whose pages are backed when first
        // touched, so only the memory the maps use counts.
        (None, None) => maps::Store::anonymous(opts).context("cannot create the map store")?,
    };
    if args.cpu >= store.ncpus() {
        bail!(
            "--cpu {} is out of range: the store has {} CPUs",
            args.cpu,
            store.ncpus()
        );
    }
    let (mut loaded, prog) = match (args.id, object) {
        (Some(id), _) => {
            let (loaded, prog) = LoadedObject::from_store(&store, id)
                .with_context(|| format!("cannot prepare program {id} of the store"))?;
            if args.strict {
                let p = &loaded.programs[prog];
                p.analysis().strict(&p.name)?;
            }
            (loaded, prog)
        }
        (None, Some((object, path))) => {
            let load_opts = runtime::LoadOptions {
                pin_maps: args.pin_maps.clone(),
                strict: args.strict,
                ..Default::default()
            };
            let loaded = LoadedObject::load_with(&object, &store, &load_opts)
                .with_context(|| format!("cannot load {}", path.display()))?;
            let prog = loaded.program_index(args.prog.as_deref())?;
            (loaded, prog)
        }
        (None, None) => bail!("give an object file or --id"),
    };
    for set in &args.sets {
        apply_set(&loaded, set)?;
    }
    let mut net = None;
    if let Some(path) = &args.net {
        let script = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let parsed = runtime::Net::parse(&script)
            .with_context(|| format!("bad network script {}", path.display()))?;
        let parsed = std::sync::Arc::new(parsed);
        loaded.set_net(parsed.clone());
        net = Some(parsed);
    }
    let mut pkt = match (&args.ctx_in, &net) {
        (Some(path), net) => {
            let ctx =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            match net {
                // ingress_ifindex names an interface of the given network.
                Some(net) => Packet::with_ctx_in(&data, &ctx, net)?,
                None => Packet::with_ctx(&data, &ctx)?,
            }
        }
        (None, _) => Packet::new(&data)?,
    };
    let mut vm = Vm::new(args.cpu).with_max_steps(args.max_steps);
    vm.set_audit(args.audit);
    let repeat = args.repeat.max(1);
    let fault =
        |trap: runtime::Trap| anyhow!("program {} faulted: {trap}", loaded.programs[prog].name);
    let stop = super::Interruption::install()?;
    vm.set_interrupt(stop.flag.clone());
    let name = &loaded.programs[prog].name;
    let runs_started = |engine: &str| {
        if args.verbose {
            eprintln!("run: {repeat} runs of {name} ({engine}); SIGINT or SIGTERM stops them");
        }
    };
    let done = match args.engine {
        Engine::Interpreter => {
            runs_started("interpreter");
            let done = loaded
                .run_repeated(&mut vm, prog, &mut pkt, repeat)
                .map_err(fault)?;
            if let Some(ms) = args.wait_timers {
                wait_timers(&store, ms, &mut vm, &loaded, &stop.flag, args.verbose)?;
            }
            done
        }
        Engine::Jit => {
            let env = super::jit_options_from_env();
            let opts = runtime::jit::JitOptions {
                perf_map: args.perf_map || env.perf_map,
                audit: args.audit,
                ..env
            };
            let jit = runtime::jit::JitObject::compile(&loaded, &opts)
                .context("JIT compilation failed")?;
            if args.verbose {
                let insns: usize = loaded.programs.iter().map(|p| p.ops().len()).sum();
                eprintln!(
                    "jit: compiled {} programs ({insns} instructions) in {:?}",
                    loaded.programs.len(),
                    jit.compile_time()
                );
            }
            runs_started("jit");
            let done = jit
                .run_repeated(&mut vm, prog, &mut pkt, repeat)
                .map_err(fault)?;
            if let Some(ms) = args.wait_timers {
                wait_timers(&store, ms, &mut vm, &jit, &stop.flag, args.verbose)?;
            }
            done
        }
    };
    let (retval, elapsed, runs) = (done.retval, done.elapsed, done.runs);
    let interrupted = done.interrupted.then(|| stop.signal());
    let ns = elapsed.as_nanos() as f64 / runs as f64;
    // The entry program's statistics (tail-called programs count none, as in the
    // kernel): the sum of the runs' durations is the loop's time.
    let stats = if args.stats {
        let id = loaded.programs[prog].store_id;
        let run_ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        store
            .add_program_runs(id, runs, run_ns)
            .with_context(|| format!("cannot add run statistics to program {id}"))?;
        let info = store
            .program_by_id(id)
            .with_context(|| format!("cannot read program {id}"))?;
        Some((info.run_cnt, info.run_time_ns))
    } else {
        None
    };
    // The linear part, then the fragments, as the kernel's test run returns them.
    let out = pkt.data_out();
    let out = &out[..];
    let ctx_out = pkt.ctx_out().to_bytes();
    // `-` is stdout, as bpftool's `data_out -` and `ctx_out -`: a hex dump
    // before the result line (under --json, the JSON document carries them).
    let mut dumps = String::new();
    for (path, bytes) in [(&args.data_out, out), (&args.ctx_out, &ctx_out[..])] {
        match path {
            Some(p) if is_stdout(p) && !args.json => dumps.push_str(&hex::dump(bytes)),
            Some(p) if is_stdout(p) => {}
            Some(p) => {
                std::fs::write(p, bytes).with_context(|| format!("cannot write {}", p.display()))?
            }
            None => {}
        }
    }
    let retval = retval as u32;
    if args.json {
        let mut doc = json!({
            "retval": retval,
            "duration_ns": (ns * 10.0).round() / 10.0,
            "repeat": repeat,
            "runs": runs,
            "data_out": hex::encode(out),
            "maps": maps_json(&loaded)?,
        });
        if let Some(sig) = &interrupted {
            doc["interrupted"] = json!(sig.name);
        }
        if let Some((cnt, ns)) = stats {
            doc["run_cnt"] = json!(cnt);
            doc["run_time_ns"] = json!(ns);
        }
        if args.ctx_out.as_deref().is_some_and(is_stdout) {
            doc["ctx_out"] = json!(hex::encode(&ctx_out));
        }
        println!("{doc}");
    } else {
        print!("{dumps}");
        let avg = if runs > 1 { " (average)" } else { "" };
        println!(
            "Return value: {retval}, duration{avg}: {}ns",
            ns.round() as u64
        );
        if let Some((cnt, ns)) = stats {
            println!("run_time_ns {ns} run_cnt {cnt}");
        }
    }
    match interrupted {
        Some(sig) => Err(super::Interrupted {
            signal: sig,
            runs,
            repeat,
        }
        .into()),
        None => Ok(()),
    }
}

/// Applies one `--set MAP:KEY=VALUE`.
pub(crate) fn apply_set(loaded: &LoadedObject, set: &str) -> Result<()> {
    let bad = || anyhow!("--set {set:?}: expected MAP:KEYHEX=VALUEHEX");
    let (name, rest) = set.split_once(':').ok_or_else(bad)?;
    let (key, value) = rest.split_once('=').ok_or_else(bad)?;
    let key = hex::parse(key).with_context(|| format!("--set {set:?}: bad key"))?;
    let value = match value.strip_prefix('@') {
        Some(prog) => loaded
            .program_id(prog)
            .ok_or_else(|| anyhow!("--set {set:?}: no XDP program named {prog:?} in the object"))?
            .to_ne_bytes()
            .to_vec(),
        None => hex::parse(value).with_context(|| format!("--set {set:?}: bad value"))?,
    };
    loaded
        .update_entry(name, &key, &value, 0)
        .with_context(|| format!("--set {set:?}"))?;
    Ok(())
}

/// Every map of the object as `{"name": [{"key": hex, "value": hex} | {"key", "values"}]}`.
pub(crate) fn maps_json(loaded: &LoadedObject) -> Result<Value> {
    let mut out = JsonMap::new();
    for m in loaded.maps.iter() {
        let entries = m
            .map
            .dump()
            .with_context(|| format!("cannot dump map {}", m.name))?;
        let percpu = runtime::is_percpu(m.info.map_type);
        let list: Vec<Value> = entries
            .iter()
            .map(|e| {
                if percpu {
                    json!({"key": hex::encode(&e.key), "values": e.values.iter().map(|v| hex::encode(v)).collect::<Vec<_>>()})
                } else if m.info.map_type == runtime::maptable::types::PROG_ARRAY {
                    // The value is a program id of this run; name the program too.
                    let id = e.values[0].as_slice().try_into().map(u32::from_ne_bytes).unwrap_or(0);
                    let prog = id.checked_sub(1).and_then(|i| loaded.programs.get(i as usize)).map(|p| p.name.as_str());
                    json!({"key": hex::encode(&e.key), "value": hex::encode(&e.values[0]), "prog": prog})
                } else if matches!(
                    m.info.map_type,
                    runtime::maptable::types::ARRAY_OF_MAPS | runtime::maptable::types::HASH_OF_MAPS
                ) {
                    // The value is an inner map's store id; name the map too.
                    let id = e.values[0].as_slice().try_into().map(u32::from_ne_bytes).unwrap_or(0);
                    let inner = loaded.maps.by_id(id).map(|m| m.name.as_str());
                    json!({"key": hex::encode(&e.key), "value": hex::encode(&e.values[0]), "map": inner})
                } else {
                    json!({"key": hex::encode(&e.key), "value": hex::encode(&e.values[0])})
                }
            })
            .collect();
        out.insert(m.name.clone(), Value::Array(list));
    }
    Ok(Value::Object(out))
}

/// Whether an output file argument is `-`, stdout.
fn is_stdout(p: &std::path::Path) -> bool {
    p.as_os_str() == "-"
}
