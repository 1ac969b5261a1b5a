#!/usr/bin/env bash
# Host instructions per run of rbpf's JIT (and, with ENGINE=..., any engine of the
# compare binary) on the compared workloads, as bench/perf-table.sh counts them for the
# runtime's JIT: two callgrind runs of `compare --rounds 1` with different repeat
# counts, whose difference in total instructions (Ir) divided by the difference in runs
# cancels start-up, load and compile costs.
#
#   bench/rbpf-callgrind.sh            run from the repository root
#
# Environment: ENGINE (a `compare --engines` value, default rbpf-jit), WORKLOADS
# (default: pure_parser xdp_counter xdp_parser xdp_fw xdp_stats), IR_LO / IR_HI
# (default 1000 / 101000), CARGO_TARGET_DIR. Needs valgrind and python3.
set -euo pipefail

ENGINE=${ENGINE:-rbpf-jit}
WORKLOADS=${WORKLOADS:-pure_parser xdp_counter xdp_parser xdp_fw xdp_stats}
IR_LO=${IR_LO:-1000}
IR_HI=${IR_HI:-101000}
TARGET=${CARGO_TARGET_DIR:-target}

command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 2; }
cargo build --release -p bench --bin compare >&2
COMPARE="$TARGET/release/compare"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

ir() {
    valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" \
        "$COMPARE" --engines "$ENGINE" --workloads "$1" --rounds 1 --repeat "$2" --no-support \
        >/dev/null 2>"$TMP/cg.err" || { cat "$TMP/cg.err" >&2; return 1; }
    sed -n 's/^totals: \([0-9]*\).*/\1/p; s/^summary: \([0-9]*\).*/\1/p' "$TMP/cg.out" | head -n 1
}

echo "| workload | $ENGINE host instructions/run |"
echo "|---|---:|"
for w in $WORKLOADS; do
    lo=$(ir "$w" "$IR_LO")
    hi=$(ir "$w" "$IR_HI")
    echo "| $w | $(python3 -c "print(round(($hi - $lo) / ($IR_HI - $IR_LO)))") |"
done
