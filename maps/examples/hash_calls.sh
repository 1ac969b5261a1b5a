#!/bin/sh
# Instructions per hash-map call under callgrind (see hash_calls.rs).
# Usage: maps/examples/hash_calls.sh [TARGET_DIR]   (from the workspace root)
set -e
T=${1:-${CARGO_TARGET_DIR:-target}}
cargo build --release -q -p maps --example hash_calls
BIN=$T/release/examples/hash_calls
N=200000
OUT=$(mktemp -d)
ir() {
  valgrind --tool=callgrind --callgrind-out-file="$OUT/cg" --toggle-collect='hash_calls::op_*' \
    "$BIN" "$@" >/dev/null 2>&1
  callgrind_annotate "$OUT/cg" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}
for ks in 4 8; do
  for entries in 1 1024; do
    for op in lookup miss update user_lookup; do
      n=$(ir $op $ks $entries $N)
      echo "$op key=$ks entries=$entries: $(awk "BEGIN {printf \"%.1f\", $n / $N}") instr/call"
    done
  done
done
rm -rf "$OUT"
