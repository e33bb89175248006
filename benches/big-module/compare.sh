#!/usr/bin/env bash
# Compile sqlite.wasm (see build.sh) with Myriad (`myriad compile`, dense
# and sparse bounds) and with Wasmtime 48 (`../wasmtime-compare compile`:
# its default configuration, explicit bounds checks, and both with fuel
# metering), interleaved, ROUNDS rounds (default 5). Prints, per
# configuration, the median wall and CPU (user + sys) seconds of the whole
# process and the size of the output's .text section.
#
# Usage: compare.sh [MODULE.wasm]   (default: sqlite.wasm beside this)
# TASKSET="taskset -c 0" compare.sh   compiles on one core.
# MYRIAD_BASE=/path/to/older/myriad compare.sh   adds that binary's dense
# and sparse compiles (base-dense, base-sparse): a before/after A/B.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
wasm="${1:-$here/sqlite.wasm}"
rounds="${ROUNDS:-5}"
test -f "$wasm" || { echo "$wasm not found: run build.sh first" >&2; exit 1; }
(cd "$here/../wasmtime-compare" && cargo build --release --quiet)
(cd "$here/../.." && cargo build --release --quiet -p myriad-cli)
myriad="${MYRIAD:-$here/../../target/release/myriad}"
wasmtime="$here/../wasmtime-compare/target/release/wasmtime-compare"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
configs=(myriad-dense myriad-sparse wasmtime-default wasmtime-explicit
  wasmtime-default+fuel wasmtime-explicit+fuel)
if [ -n "${MYRIAD_BASE:-}" ]; then
  configs=(base-dense base-sparse "${configs[@]}")
fi
command_of() {
  case "$1" in
  base-dense) echo "$MYRIAD_BASE compile $wasm -o $out/$1.so --bounds dense" ;;
  base-sparse) echo "$MYRIAD_BASE compile $wasm -o $out/$1.so --bounds sparse" ;;
  myriad-dense) echo "$myriad compile $wasm -o $out/$1.so --bounds dense" ;;
  myriad-sparse) echo "$myriad compile $wasm -o $out/$1.so --bounds sparse" ;;
  wasmtime-default) echo "$wasmtime compile $wasm -o $out/$1.so" ;;
  wasmtime-explicit) echo "$wasmtime --explicit-bounds-checks compile $wasm -o $out/$1.so" ;;
  wasmtime-default+fuel) echo "$wasmtime --fuel compile $wasm -o $out/$1.so" ;;
  wasmtime-explicit+fuel) echo "$wasmtime --explicit-bounds-checks --fuel compile $wasm -o $out/$1.so" ;;
  esac
}
TIMEFORMAT='%R %U %S'
for round in $(seq "$rounds"); do
  for c in "${configs[@]}"; do
    # shellcheck disable=SC2046
    t="$({ time ${TASKSET:-} $(command_of "$c") >/dev/null 2>&1; } 2>&1)"
    echo "$c $t" >>"$out/times"
    echo "round $round: $c $t" >&2
  done
done
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
printf '%-24s %8s %8s %10s\n' config wall_s cpu_s text_bytes
for c in "${configs[@]}"; do
  wall="$(awk -v c="$c" '$1 == c { print $2 }' "$out/times" | median)"
  cpu="$(awk -v c="$c" '$1 == c { print $3 + $4 }' "$out/times" | median)"
  text="$(size -A "$out/$c.so" | awk '$1 == ".text" { print $2 }')"
  printf '%-24s %8s %8s %10s\n' "$c" "$wall" "$cpu" "$text"
done
