#!/bin/sh
# Host instructions per program hot-path call of every map type (see hotpath.rs),
# counted by callgrind: each op_* function's inclusive cost in two runs of
# different lengths, whose difference divided by the difference in calls cancels
# first-call effects.
#
# Usage: maps/examples/hotpath.sh [TYPES...]   (from the workspace root)
#   TYPES default: hash percpu_hash lru_hash lru_percpu_hash array percpu_array lpm
# Environment: CARGO_TARGET_DIR, KEYS (key sizes, default "2 4 8 16"),
#   LO / HI (the two iteration counts, default 2000 / 22000).
# Prints one table row per type and key size: instructions per call of lookup
# (hit), lookup (miss), update of an existing key, update of a new key, delete
# (Map::prog_lookup / prog_update / prog_delete), then a lookup (hit), an update
# of an existing key, and the same with update_in_place, through Map::prog_ops.
set -eu
T=${CARGO_TARGET_DIR:-target}
KEYS=${KEYS:-"2 4 8 16"}
LO=${LO:-2000}
HI=${HI:-22000}
TYPES=${*:-hash percpu_hash lru_hash lru_percpu_hash array percpu_array lpm}
command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 2; }
cargo build --release -q -p maps --example hotpath
BIN=$T/release/examples/hotpath
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# Inclusive Ir of each op_* function, "name count" lines.
costs() {
  valgrind --tool=callgrind --callgrind-out-file="$OUT/cg" --toggle-collect='hotpath::op_*' \
    "$BIN" "$@" >/dev/null 2>"$OUT/err" || { cat "$OUT/err" >&2; exit 1; }
  callgrind_annotate --inclusive=yes --threshold=100 --tree=none "$OUT/cg" 2>/dev/null |
    sed -n 's/^ *\([0-9,]*\) ([^)]*) *[^ ]*hotpath::\(op_[a-z_]*\).*/\2 \1/p' | tr -d ,
}

printf '%-16s %4s %8s %8s %8s %8s %8s %8s %8s %8s\n' type key lookup miss upd_old upd_new delete \
  ops_lkp ops_upd inplace
for t in $TYPES; do
  case $t in array|percpu_array) ks_list=4 ;; *) ks_list=$KEYS ;; esac
  for ks in $ks_list; do
    costs "$t" "$ks" "$LO" >"$OUT/lo"
    costs "$t" "$ks" "$HI" >"$OUT/hi"
    row=""
    for op in op_lookup op_lookup_miss op_update_existing op_update_new op_delete \
      op_ops_lookup op_ops_update_existing op_in_place_update_existing; do
      lo=$(awk -v o=$op '$1 == o {print $2}' "$OUT/lo")
      hi=$(awk -v o=$op '$1 == o {print $2}' "$OUT/hi")
      if [ -n "$lo" ] && [ -n "$hi" ]; then
        row="$row $(awk -v a="$lo" -v b="$hi" -v n=$((HI - LO)) 'BEGIN {printf "%8.1f", (b - a) / n}')"
      else
        row="$row $(printf '%8s' -)"
      fi
    done
    printf '%-16s %4s%s\n' "$t" "$ks" "$row"
  done
done
