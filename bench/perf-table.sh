#!/usr/bin/env bash
# Regenerates the performance table in README.md (between the
# <!-- perf-table:begin --> and <!-- perf-table:end --> markers) from one run.
#
#   bench/perf-table.sh            run from the repository root
#
# For each workload it runs `xdp-runner bench --json` (the release binary: the
# interpreter, the JIT and the kernel's BPF_PROG_TEST_RUN in interleaved rounds) and
# counts the JIT's host instructions per run with callgrind: two runs of
# `xdp-runner bench --engines jit --rounds 1` with different repeat counts, whose
# difference in total instructions (Ir) divided by the difference in runs cancels the
# start-up, load, fill and compile costs.
#
# Environment: REPEAT (runs per measurement, default 200000), ROUNDS (default 5),
# IR_LO / IR_HI (the two callgrind repeat counts, default 1000 / 101000),
# NO_CALLGRIND=1 to skip the instruction counts, README (default README.md),
# CARGO_TARGET_DIR (where the release build goes).
#
# Needs cargo, python3 and valgrind (installed with apt-get when missing and root).
# The kernel column needs root (or CAP_BPF); without it the script says so and the
# kernel columns read n/a. Not part of the tests: timing belongs here, not in CI.
set -euo pipefail

REPEAT=${REPEAT:-200000}
ROUNDS=${ROUNDS:-5}
IR_LO=${IR_LO:-1000}
IR_HI=${IR_HI:-101000}
README=${README:-README.md}
TARGET=${CARGO_TARGET_DIR:-target}

if [ ! -f bench/perf-table.sh ] || [ ! -f "$README" ]; then
    echo "run from the repository root (bench/perf-table.sh and $README not found)" >&2
    exit 2
fi
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 2; }

if [ -z "${NO_CALLGRIND:-}" ] && ! command -v valgrind >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "valgrind not found: installing it with apt-get" >&2
        if ! apt-get install -y valgrind >/dev/null 2>&1; then
            apt-get update >/dev/null 2>&1 && apt-get install -y valgrind >/dev/null 2>&1 || true
        fi
    fi
    command -v valgrind >/dev/null || { echo "valgrind not found: the instruction column will read n/a" >&2; NO_CALLGRIND=1; }
fi

echo "building: cargo build --release -p runner" >&2
cargo build --release -p runner >&2
RUNNER="$TARGET/release/xdp-runner"

# name | object | packet | extra bench arguments
WORKLOADS=(
    "xdp_counter (seed: length counter, MAC swap)|bpf-progs/obj/xdp_counter.o|bpf-progs/packets/icmp.bin|"
    "xdp_parser (parser, port blocklist)|bpf-progs/obj/xdp_parser.o|bpf-progs/packets/udp.bin|"
    "xdp_fw (LPM firewall)|bpf-progs/obj/xdp_fw.o|bpf-progs/packets/tcp_syn.bin|"
    "xdp_encap (IPIP encapsulator)¹|bpf-progs/obj/xdp_encap.o|bpf-progs/packets/udp.bin|"
    "xdp_stats (per-CPU array and hash counters)|bpf-progs/obj/xdp_stats.o|bpf-progs/packets/udp.bin|"
    "xdp_map_heavy (8 lookups + 2 updates, 1M-entry hash)²|bpf-progs/obj/xdp_map_heavy.o|bpf-progs/packets/icmp.bin|--prog xdp_map_heavy --fill big_map=1048576"
)

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

KERNEL_NOTE=""
COMMANDS=()
ROWS="$TMP/rows"
: >"$ROWS"

# Total instructions (Ir) of one callgrind run of the JIT.
callgrind_ir() {
    local out="$TMP/cg.out"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >/dev/null 2>"$TMP/cg.err" || {
        cat "$TMP/cg.err" >&2
        return 1
    }
    sed -n 's/^totals: \([0-9]*\).*/\1/p; s/^summary: \([0-9]*\).*/\1/p' "$out" | head -n 1
}

for w in "${WORKLOADS[@]}"; do
    IFS='|' read -r name obj pkt extra <<<"$w"
    # shellcheck disable=SC2206
    extra_args=($extra)
    cmd=("$RUNNER" bench "$obj" --data-in "$pkt" --repeat "$REPEAT" --rounds "$ROUNDS" "${extra_args[@]}" --json)
    echo "running: ${cmd[*]}" >&2
    COMMANDS+=("xdp-runner bench $obj --data-in $pkt --repeat $REPEAT --rounds $ROUNDS${extra:+ $extra} --json")
    "${cmd[@]}" >"$TMP/bench.json" 2>"$TMP/bench.err" || { cat "$TMP/bench.err" >&2; exit 1; }
    if grep -q "kernel: not available" "$TMP/bench.err"; then
        KERNEL_NOTE=$(grep "kernel: not available" "$TMP/bench.err" | head -n 1)
        echo "$KERNEL_NOTE" >&2
    fi
    ir="n/a"
    if [ -z "${NO_CALLGRIND:-}" ]; then
        base=("$RUNNER" bench "$obj" --data-in "$pkt" --engines jit --rounds 1 "${extra_args[@]}")
        echo "callgrind: ${base[*]} --repeat $IR_LO / $IR_HI" >&2
        lo=$(callgrind_ir "${base[@]}" --repeat "$IR_LO")
        hi=$(callgrind_ir "${base[@]}" --repeat "$IR_HI")
        ir=$(python3 -c "print(round(($hi - $lo) / ($IR_HI - $IR_LO)))")
    fi
    python3 - "$TMP/bench.json" "$name" "$pkt" "$ir" >>"$ROWS" <<'EOF'
import json, os, sys
doc = json.load(open(sys.argv[1]))
name, pkt, ir = sys.argv[2], os.path.basename(sys.argv[3]), sys.argv[4]
by = {r["engine"]: r for r in doc["results"]}
def ns(e):
    return f'{by[e]["ns_per_run"]:.1f}' if e in by else "n/a"
def ratio(e):
    r = by.get(e, {}).get("ratio_to_kernel")
    return f"{r:.2f}x" if r is not None else "n/a"
print(f"| {name} | {pkt} ({doc['packet_bytes']} B) | {ns('interpreter')} | {ns('jit')} | {ns('kernel')} "
      f"| {ratio('interpreter')} | {ratio('jit')} | {ir} |")
EOF
done

CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
CORES=$(grep -c '^processor' /proc/cpuinfo)
DATE=$(date -u +%Y-%m-%d)
KERNEL=$(uname -r)

TABLE="$TMP/table"
{
    echo "Measured $DATE on $CPU, $CORES cores, Linux $KERNEL, by \`bench/perf-table.sh\`"
    echo "(median ns per run over $ROUNDS interleaved rounds of $REPEAT runs; host"
    echo "instructions per JIT run from callgrind, $IR_HI minus $IR_LO runs)."
    if [ -n "$KERNEL_NOTE" ]; then
        echo "The kernel column is n/a: $KERNEL_NOTE."
    fi
    echo
    echo "| program | packet | interpreter ns | JIT ns | kernel ns | interp/kernel | JIT/kernel | JIT host instructions/run |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    cat "$ROWS"
    echo
    echo "¹ The kernel's repeat does not reset the packet: after 10 runs (20 bytes each) the headroom"
    echo "is used up, so \`bpf_xdp_adjust_head\` fails and the steady state is its XDP_ABORTED"
    echo "path, in every engine."
    echo "² \`--fill big_map=1048576\` writes keys 0..2^20-1 first (in the runtime's store and"
    echo "the kernel's map), so every lookup hits and every update replaces."
    echo
    echo "Commands (from the repository root; \`xdp-runner\` is the release build of \`cargo build --release -p runner\`):"
    echo
    echo '```sh'
    for c in "${COMMANDS[@]}"; do echo "$c"; done
    echo "valgrind --tool=callgrind xdp-runner bench OBJECT --data-in PACKET --engines jit --rounds 1 --repeat $IR_LO  # and --repeat $IR_HI"
    echo '```'
} >"$TABLE"

python3 - "$README" "$TABLE" <<'EOF'
import sys
readme, table = sys.argv[1], open(sys.argv[2]).read()
text = open(readme).read()
begin, end = "<!-- perf-table:begin -->", "<!-- perf-table:end -->"
if begin not in text or end not in text:
    sys.exit(f"{readme}: the {begin} / {end} markers are missing")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(readme, "w").write(head + begin + "\n" + table + end + tail)
EOF

echo >&2
cat "$TABLE"
echo >&2
echo "README table updated ($README)" >&2
