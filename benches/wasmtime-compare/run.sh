#!/usr/bin/env bash
# Build the Wasmtime runner (once; Wasmtime takes several minutes to
# compile) and Myriad's, then run the kernels interleaved, ROUNDS rounds
# (default 3) of: Myriad dense, Myriad sparse (both in 10 ms time slices,
# as the scheduler runs them), Myriad sparse alone (fuel slices of 2^40
# units, as `myriad run` runs one WASI program: the fuel check's slow
# branch is never taken; see docs/PERFORMANCE.md, "The preemption branch,
# once taken"), Wasmtime default, Wasmtime
# with explicit bounds checks, and both again with epoch interruption and
# with fuel metering (Wasmtime's two ways to preempt a guest: the
# like-for-like configurations, since Myriad's code always can be). Each kernel runs in LAYOUTS
# code placements (default 16; see ../kernels/layout.rs), RUNS runs each
# (default 3), and counts as the mean over its placements. Ends with the
# median of the per-round figures of every kernel and configuration.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rounds="${ROUNDS:-3}"
layouts="${LAYOUTS:-16}"
runs="${RUNS:-3}"
(cd "$here" && cargo build --release --quiet)
(cd "$here/../.." && cargo build --release --quiet -p myriad-benches --bin kernels)
myriad="$here/../../target/release/kernels"
wasmtime="$here/target/release/wasmtime-compare"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
run() {
  local label="$1"
  shift
  echo "== $label"
  "$@" --runs "$runs" --layouts "$layouts" | tee /dev/stderr | sed "s/^/$label|/" >>"$log"
}
for round in $(seq "$rounds"); do
  echo "#### round $round"
  run "myriad-dense" "$myriad" --bounds dense
  run "myriad-sparse" "$myriad" --bounds sparse
  run "myriad-sparse-alone" "$myriad" --bounds sparse --fuel-slice 1099511627776
  run "wasmtime-default" "$wasmtime"
  run "wasmtime-explicit" "$wasmtime" --explicit-bounds-checks
  run "wasmtime-default+epochs" "$wasmtime" --epochs
  run "wasmtime-explicit+epochs" "$wasmtime" --explicit-bounds-checks --epochs
  run "wasmtime-default+fuel" "$wasmtime" --fuel
  run "wasmtime-explicit+fuel" "$wasmtime" --explicit-bounds-checks --fuel
done 2>/dev/null
echo
echo "median over $rounds rounds (ms):"
# "config kernel value" lines, sorted, then the middle value of each group.
awk -F'|' '{ split($2, w, " "); match($2, /(median|mean) [0-9.]+/);
             v = substr($2, RSTART, RLENGTH); sub(/^[a-z]+ /, "", v);
             print $1, w[1], v }' "$log" |
  sort -k1,1 -k2,2 -k3,3n |
  awk '{ key = $1 " " $2; v[key, ++n[key]] = $3; if (!(key in seen)) { seen[key] = 1; order[++k] = key } }
       END { for (i = 1; i <= k; i++) { key = order[i]; printf "%-24s %-7s %8s\n", substr(key, 1, index(key, " ") - 1), substr(key, index(key, " ") + 1), v[key, int((n[key] + 1) / 2)] } }'
