//! README.md's table of what XDP programs may call and use: every helper the
//! kernel allows an XDP program, every map type, each with whether the runtime
//! runs it, how that is tested, and how it differs. The table is rendered here
//! from the runtime's own tables (`runtime::helpers::supported_ids`, the store's
//! map types) and the notes below; the test fails when README.md's copy differs
//! (`XDP_UPDATE_README=1` rewrites it) or, on the kernel the list was taken
//! from, when the kernel's list of XDP helpers is not this one.

use std::collections::BTreeSet;

/// The helpers Linux 6.18 lets an XDP program call (as root, so with the
/// CAP_PERFMON tracing helpers): every id whose one-call probe program the
/// verifier does not refuse with "unknown func", "invalid func" or "program of
/// this type cannot use helper".
const KERNEL_XDP_HELPERS: &[i32] = &[
    1, 2, 3, 5, 6, 7, 8, 12, 14, 15, 16, 17, 22, 23, 25, 28, 35, 37, 42, 44, 51, 54, 55, 65, 69,
    80, 84, 85, 86, 87, 88, 89, 93, 94, 99, 100, 105, 106, 109, 110, 112, 113, 114, 115, 117, 118,
    120, 123, 125, 130, 131, 132, 133, 134, 136, 137, 138, 139, 140, 141, 148, 149, 153, 154, 156,
    157, 158, 160, 163, 164, 165, 169, 170, 171, 172, 175, 176, 177, 178, 180, 181, 182, 188, 189,
    190, 191, 194, 195, 196, 197, 198, 199, 200, 201, 202, 203, 204, 205, 206, 207, 208, 209, 210,
    211,
];

/// The kernel release the list above was taken from.
const KERNEL_RELEASE: &str = "6.18";

const DIFF: &str = "every bpf-progs case, kernel vs both engines (`matches_the_kernel_*`)";

/// (helper, how it is tested, differences or why it does not run). Helpers without
/// a note here are refused at load (the kernel's "unknown func" for the shim's
/// probes) for the reason of their group in `group_reason`.
const NOTES: &[(&str, &str, &str)] = &[
    ("map_lookup_elem", DIFF, ""),
    ("map_update_elem", DIFF, ""),
    ("map_delete_elem", DIFF, ""),
    ("ktime_get_ns", "xdp_counter cases", "CLOCK_MONOTONIC of the host"),
    ("trace_printk", "xdp_subprog cases; `misc.rs` unit tests", "to stderr in trace_pipe's layout, not to the kernel's trace buffer"),
    ("get_prandom_u32", "runtime unit tests", "a per-worker xorshift, not the kernel's generator"),
    ("get_smp_processor_id", DIFF, "the worker index (`--cpu`), not a CPU"),
    ("tail_call", "xdp_tailcall cases", ""),
    ("get_current_pid_tgid", "`helpers15.rs`", "the process and thread running the program (the kernel: the task the program interrupted, or the caller of BPF_PROG_TEST_RUN)"),
    ("get_current_uid_gid", "`helpers15.rs`", "as get_current_pid_tgid"),
    ("get_current_comm", "`helpers15.rs`", "the running thread's name"),
    ("redirect", "xdp_redirect cases", ""),
    ("perf_event_output", "xdp_events cases; `events.rs`", "to the store's perf slots (`xdp-runner map events`)"),
    ("csum_diff", DIFF, ""),
    ("get_numa_node_id", "`helpers15.rs`", "always node 0"),
    ("xdp_adjust_head", DIFF, ""),
    ("redirect_map", "xdp_redirect, xdp_redirector cases", ""),
    ("xdp_adjust_meta", "xdp_tail_meta cases", ""),
    ("xdp_adjust_tail", "xdp_adjust_tail, xdp_frags cases; `frags.rs`", ""),
    ("fib_lookup", "xdp_fib, xdp_fib_probe cases (in the kernel's namespace of `--net`)", "on the network of `--net`"),
    ("sk_lookup_tcp", "xdp_sock cases (a namespace without sockets)", "no sockets: always NULL, as a test run in an empty namespace"),
    ("sk_lookup_udp", "xdp_sock cases", "as sk_lookup_tcp"),
    ("sk_release", "xdp_sock cases", "no socket is ever handed out; returns 0"),
    ("map_push_elem", "xdp_queue cases; `maps` kernel differential", "queue, stack, bloom filter"),
    ("map_pop_elem", "xdp_queue cases; `maps` kernel differential", ""),
    ("map_peek_elem", "xdp_queue cases; `maps` kernel differential", "a bloom filter's bits are the kernel's with BPF_F_ZERO_SEED"),
    ("for_each_map_elem", "xdp_foreach cases; `foreach.rs`; hostile suite", "array, per-CPU array, hash, per-CPU hash, LRU hash; hashes in the store's get_next_key order; the key a read-only copy"),
    ("spin_lock", "xdp_spinlock cases", "pid spin locks in the store, bounded wait"),
    ("spin_unlock", "xdp_spinlock cases", ""),
    ("skc_lookup_tcp", "xdp_sock cases", "as sk_lookup_tcp"),
    ("tcp_check_syncookie", "-", "needs a socket, and none exists: -EINVAL"),
    ("tcp_gen_syncookie", "-", "needs a socket, and none exists: -EINVAL"),
    ("probe_read_kernel", "hostile suite", "reads only memory of the run; -EFAULT otherwise"),
    ("probe_read_kernel_str", "`helpers15.rs` against the kernel", "as probe_read_kernel"),
    ("jiffies64", "`helpers15.rs` (between the kernel's answers)", "CLOCK_MONOTONIC_COARSE at HZ 250 from the kernel's INITIAL_JIFFIES"),
    ("ktime_get_boot_ns", "runtime unit tests", "CLOCK_BOOTTIME of the host"),
    ("ringbuf_output", "xdp_events cases; `events.rs`", "records in the store's ring"),
    ("ringbuf_reserve", "xdp_events cases", ""),
    ("ringbuf_submit", "xdp_events cases", ""),
    ("ringbuf_discard", "xdp_events cases", ""),
    ("ringbuf_query", "xdp_events cases", ""),
    ("ktime_get_coarse_ns", "runtime unit tests", "CLOCK_MONOTONIC_COARSE of the host"),
    ("check_mtu", "xdp_sock cases", "the interfaces of `--net` (lo only without it)"),
    ("loop", "xdp_loop cases; `bpf_loop.rs`", ""),
    ("strncmp", "`helpers15.rs` against the kernel", ""),
    ("strtol", "`helpers15.rs` against the kernel", ""),
    ("strtoul", "`helpers15.rs` against the kernel", ""),
    ("xdp_get_buff_len", "xdp_frags cases; `frags.rs`", ""),
    ("xdp_load_bytes", "xdp_frags cases; `frags.rs`", ""),
    ("xdp_store_bytes", "xdp_frags cases; `frags.rs`", ""),
    ("map_lookup_percpu_elem", "xdp_queue cases", "CPUs are the store's per-CPU slots"),
    ("ktime_get_tai_ns", "`helpers15.rs`", "CLOCK_TAI of the host"),
    ("snprintf", "`helpers15.rs` against the kernel", "the formats `bpf_bprintf_prepare` takes; `%p` prints the value, not a hashed pointer; at most 1023 bytes written (the return value counts all)"),
    ("trace_vprintk", "`helpers15.rs` against the kernel", "to stderr in trace_pipe's layout, as trace_printk"),
    ("dynptr_from_mem", "xdp_ringbuf_dynptr cases", ""),
    ("ringbuf_reserve_dynptr", "xdp_ringbuf_dynptr cases", ""),
    ("ringbuf_submit_dynptr", "xdp_ringbuf_dynptr cases", ""),
    ("ringbuf_discard_dynptr", "xdp_ringbuf_dynptr cases", ""),
    ("dynptr_read", "xdp_dynptr, xdp_dynptr_frags, xdp_ringbuf_dynptr cases; `kfuncs.rs`, `frags.rs`", ""),
    ("dynptr_write", "xdp_dynptr, xdp_dynptr_frags, xdp_ringbuf_dynptr cases; `kfuncs.rs`, `frags.rs`", ""),
    ("dynptr_data", "xdp_ringbuf_dynptr cases; `helpers15.rs` (forged dynptrs)", "NULL for frame dynptrs, as the kernel; accesses through its pointer are checked at run time, not proven (strict mode refuses them)"),
    ("tcp_raw_gen_syncookie_ipv4", "xdp_synproxy (`kfuncs.rs`: structure and acceptance against the kernel)", "the kernel's cookie layout under the store's secret: cookies differ from the kernel's"),
    ("tcp_raw_gen_syncookie_ipv6", "`kfuncs.rs`", "as tcp_raw_gen_syncookie_ipv4"),
    ("tcp_raw_check_syncookie_ipv4", "xdp_synproxy (`kfuncs.rs`)", "accepts the runtime's own cookies"),
    ("tcp_raw_check_syncookie_ipv6", "`kfuncs.rs`", "as tcp_raw_check_syncookie_ipv4"),
    ("timer_init", "xdp_timer_cases, xdp_timer_watchdog, xdp_timer_users against the kernel (`timer_progs.rs`); `timer.rs`", "the timer's state beside its element in the store, driven by a timer wheel (README, Timers)"),
    ("timer_set_callback", "as timer_init", "the callback runs when a driver fires it (`--wait-timers`, `xdp-runner timers`, replay, attach)"),
    ("timer_start", "as timer_init", "expiry within one tick (1 ms unless set) of the deadline"),
    ("timer_cancel", "as timer_init", "does not wait for a callback running in another process"),
];

/// Why a helper the runtime refuses does not run, by name.
fn group_reason(name: &str) -> &'static str {
    let n = name.trim_start_matches("bpf_");
    match n {
        "user_ringbuf_drain" => "no user ring buffer map in the store",
        "kptr_xchg" => "kptrs are kernel objects",
        _ if n.starts_with("skc_to_") => "socket casts: there are no sockets",
        _ if n.contains("storage") => "task/cgroup storage: kernel objects",
        _ if n.contains("cgroup") || n.contains("classid") => "cgroups: kernel objects",
        _ if n.starts_with("perf_event_read") || n == "get_branch_snapshot" => {
            "perf counters: kernel objects"
        }
        _ if n.starts_with("send_signal") => "signals to the interrupted task",
        _ if n.contains("user") => "reads user memory of the interrupted task",
        _ => "kernel objects (tasks, stacks, per-CPU kernel data): no user-space meaning",
    }
}

/// Why a map type the store lacks is not there.
fn map_reason(name: &str) -> &'static str {
    match name {
        "stack_trace" => "kernel stacks: no user-space meaning",
        "cgroup_array" | "cgroup_storage" | "percpu_cgroup_storage" => "cgroups: kernel objects",
        "sockmap" | "sockhash" | "reuseport_sockarray" | "sk_storage" => "sockets: none exist",
        "struct_ops" => "kernel function tables",
        "inode_storage" | "task_storage" => "kernel objects",
        "user_ringbuf" => "not yet",
        _ => "",
    }
}

fn map_tested(name: &str) -> &'static str {
    match name {
        "queue" | "stack" => "xdp_queue cases; `maps` kernel differential",
        "bloom_filter" => {
            "xdp_queue, xdp_bloom_extra (map_extra) cases; `maps` kernel differential"
        }
        "ringbuf" | "perf_event_array" => "xdp_events cases",
        "prog_array" => "xdp_tailcall cases",
        "array_of_maps" | "hash_of_maps" => "xdp_mim cases",
        "devmap" | "devmap_hash" | "cpumap" | "xskmap" => "xdp_redirect(or) cases; attach tests",
        "lpm_trie" => "xdp_fw cases; `maps` kernel differential",
        _ => "bpf-progs cases; `maps` kernel differential",
    }
}

/// The README section, from the tables.
pub(crate) fn render() -> String {
    let supported: BTreeSet<i32> = runtime::helpers::supported_ids().into_iter().collect();
    let mut s = String::new();
    s.push_str(&format!(
        "Helpers Linux {KERNEL_RELEASE} allows an XDP program ({} of them; `runtime/tests/runtime/support_table.rs` \
         renders this table from the runtime's helper table and checks it against the kernel). \
         A helper that does not run is refused at load as the kernel refuses an unknown one \
         (`unknown func bpf_NAME#N`, EINVAL under the shim), so `bpftool feature probe` lists \
         exactly these.\n\n",
        KERNEL_XDP_HELPERS.len()
    ));
    s.push_str(
        "| id | helper | runs | tested by | differences, or why not |\n|---:|---|---|---|---|\n",
    );
    for &id in KERNEL_XDP_HELPERS {
        let full = isa::helpers::helper_name(id).expect("kernel helper name");
        let name = full.trim_start_matches("bpf_");
        let runs = supported.contains(&id);
        let note = NOTES.iter().find(|n| n.0 == name);
        let (tested, diff) = match (runs, note) {
            (true, Some(&(_, t, d))) => (t, if d.is_empty() { "-" } else { d }),
            (true, None) => panic!("{full} runs but has no note in NOTES"),
            (false, Some(&(_, _, d))) if !d.is_empty() => ("-", d),
            (false, _) => ("-", group_reason(full)),
        };
        let runs = if runs { "yes" } else { "no" };
        s.push_str(&format!(
            "| {id} | `{full}` | {runs} | {tested} | {diff} |\n"
        ));
    }
    s.push_str(
        "\nMap types (every type Linux's bpftool knows; XDP programs may use each one the kernel \
         lets their helpers take):\n\n| map type | runs | tested by | why not |\n|---|---|---|---|\n",
    );
    for t in 1..=31u32 {
        let name = isa::uapi::map_type_name(t).expect("map type name");
        if maps::map_type_name(t).is_some() {
            s.push_str(&format!("| `{name}` | yes | {} | - |\n", map_tested(name)));
        } else {
            s.push_str(&format!("| `{name}` | no | - | {} |\n", map_reason(name)));
        }
    }
    s.push_str(
        "\nKfuncs an XDP program may call (the runtime's kfunc table, `runtime/src/kfuncs/`; \
         calls of `extern ... __ksym` functions are resolved by name, and one the runtime \
         does not implement is refused at load naming it):\n\n\
         | kfunc | runs | tested by | differences, or why not |\n|---|---|---|---|\n",
    );
    let runtime: BTreeSet<&str> = runtime::kfuncs::names().collect();
    for &(name, tested, diff) in KFUNC_NOTES {
        let runs = runtime.contains(name);
        let (runs, tested) = if runs { ("yes", tested) } else { ("no", "-") };
        s.push_str(&format!("| `{name}` | {runs} | {tested} | {diff} |\n"));
    }
    s
}

/// XDP-relevant kfuncs of Linux 6.18: (name, how it is tested, differences or why not).
const KFUNC_NOTES: &[(&str, &str, &str)] = &[
    ("bpf_iter_num_new", "xdp_iter cases; `kfuncs.rs`", "-"),
    ("bpf_iter_num_next", "xdp_iter cases; `kfuncs.rs`", "-"),
    ("bpf_iter_num_destroy", "xdp_iter cases; `kfuncs.rs`", "-"),
    ("bpf_dynptr_from_xdp", "xdp_dynptr, xdp_dynptr_frags cases; `kfuncs.rs`, `frags.rs`", "-"),
    ("bpf_dynptr_slice", "xdp_dynptr, xdp_dynptr_frags cases; `kfuncs.rs`, `frags.rs`", "copies into the buffer when the range is not in the linear part; the kernel returns a pointer into a fragment that holds the whole range (fragments are not program memory here)"),
    ("bpf_dynptr_slice_rdwr", "`kfuncs.rs` (runtime only)", "Linux 6.18 refuses it in test-run XDP programs; a range in a fragment is a copy, so writes through it do not reach the frame"),
    ("bpf_dynptr_size", "xdp_dynptr cases", "-"),
    ("bpf_dynptr_adjust", "xdp_dynptr cases", "-"),
    ("bpf_dynptr_is_null", "xdp_dynptr cases", "-"),
    ("bpf_dynptr_is_rdonly", "xdp_dynptr cases", "-"),
    ("bpf_dynptr_clone", "xdp_dynptr cases", "-"),
    ("bpf_xdp_metadata_rx_timestamp", "`kfuncs.rs` (and the kernel's refusal)", "-EOPNOTSUPP, as a device without RX metadata; the kernel loads callers only bound to a device and cannot test-run them"),
    ("bpf_xdp_metadata_rx_hash", "`kfuncs.rs`", "as bpf_xdp_metadata_rx_timestamp"),
    ("bpf_xdp_metadata_rx_vlan_tag", "`kfuncs.rs`", "as bpf_xdp_metadata_rx_timestamp"),
    ("bpf_xdp_ct_lookup", "xdp_conntrack cases; xdp_synproxy", "a connection table in the store (ARCHITECTURE.md, Conntrack), not netfilter's"),
    ("bpf_xdp_ct_alloc", "xdp_conntrack cases", "as bpf_xdp_ct_lookup"),
    ("bpf_ct_insert_entry", "xdp_conntrack cases", "as bpf_xdp_ct_lookup"),
    ("bpf_ct_release", "xdp_conntrack cases", "-"),
    ("bpf_ct_set_timeout", "xdp_conntrack cases", "-"),
    ("bpf_ct_change_timeout", "xdp_conntrack cases", "-"),
    ("bpf_ct_set_status", "xdp_conntrack cases", "-"),
    ("bpf_ct_change_status", "xdp_conntrack cases", "-"),
    ("bpf_ct_set_nat_info", "-", "no NAT model"),
    ("bpf_xdp_get_xfrm_state", "-", "xfrm states are kernel objects"),
    ("bpf_rcu_read_lock", "-", "no kernel objects to protect; not yet"),
    ("bpf_rcu_read_unlock", "-", "as bpf_rcu_read_lock"),
    ("bpf_obj_new_impl", "-", "allocated objects (kptrs, lists, rbtrees): not yet"),
    ("bpf_obj_drop_impl", "-", "as bpf_obj_new_impl"),
    ("bpf_cast_to_kern_ctx", "-", "the kernel's xdp_buff: no user-space meaning"),
];

#[test]
fn every_runtime_kfunc_is_in_the_table() {
    for name in runtime::kfuncs::names() {
        assert!(
            KFUNC_NOTES.iter().any(|n| n.0 == name),
            "kfunc {name} runs but has no row in KFUNC_NOTES"
        );
    }
}

const BEGIN: &str = "<!-- xdp-support:begin -->\n";
const END: &str = "<!-- xdp-support:end -->";

#[test]
fn readme_support_table_is_the_runtimes() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let want = render();
    let (Some(b), Some(e)) = (readme.find(BEGIN), readme.find(END)) else {
        panic!("README.md has no {BEGIN:?} ... {END:?} section");
    };
    let have = &readme[b + BEGIN.len()..e];
    if have != want {
        if std::env::var_os("XDP_UPDATE_README").is_some() {
            let new = format!("{}{want}{}", &readme[..b + BEGIN.len()], &readme[e..]);
            std::fs::write(&path, new).expect("write README.md");
            return;
        }
        panic!(
            "README.md's support table differs from the runtime's tables; \
             rerun with XDP_UPDATE_README=1 to rewrite it. Wanted:\n{want}"
        );
    }
}

#[test]
fn every_supported_helper_is_one_the_kernel_allows_for_xdp() {
    for id in runtime::helpers::supported_ids() {
        assert!(
            KERNEL_XDP_HELPERS.contains(&id),
            "helper {id} ({:?}) runs but the kernel does not allow it for XDP",
            isa::helpers::helper_name(id)
        );
    }
}

/// The kernel's own answer: a program of one call to each helper id.
#[test]
fn kernel_xdp_helpers_are_the_listed_ones() {
    if let Err(why) = kclient::available() {
        kclient::skip("the kernel's list of XDP helpers", &why);
        return;
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    if !release.starts_with(KERNEL_RELEASE) {
        println!(
            "SKIP: the kernel's list of XDP helpers: the table is Linux {KERNEL_RELEASE}'s, this is {}",
            release.trim()
        );
        return;
    }
    let raw = |code: u8, imm: i32| isa::RawInsn::new(code, 0, 0, 0, imm);
    let mut allowed = Vec::new();
    for id in 1..isa::helpers::HELPER_NAMES.len() as i32 {
        let insns = [raw(0x85, id), raw(0xb7, 0), raw(0x95, 0)];
        let log = match kclient::prog::load("probe", &insns, c"GPL", &[], 1, 1 << 16) {
            Ok((_, log)) => log,
            Err(r) => r.log,
        };
        let refused = ["unknown func", "invalid func", "cannot use helper"]
            .iter()
            .any(|m| log.contains(m));
        if !refused {
            allowed.push(id);
        }
    }
    assert_eq!(allowed, KERNEL_XDP_HELPERS, "the kernel's XDP helpers");
}
