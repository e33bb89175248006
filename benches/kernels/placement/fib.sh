#!/usr/bin/env bash
# The fib kernel's function in Wasmtime's and Myriad's shapes, with a
# fuel check at its entry, deferred past the base case, or none
# (fib_shapes.py), at four offsets from
# a 64-byte boundary; each line: best-of-5 ms of fib(36) at each offset.
# Run twice: with the check's slow branch never taken, and after a
# warm-up call took it once (WARM=3). Needs gcc and python3. ROUNDS
# (default 1) repeats the table.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
for round in $(seq "${ROUNDS:-1}"); do
  for warm in 0 3; do
    echo "slow branch taken before the runs: $([ "$warm" = 0 ] && echo never || echo once)"
    for shape in wasmtime myriad; do
      for check in none check deferred; do
        line="  $shape/$check:"
        for pad in 0 16 32 48; do
          python3 "$here/fib_shapes.py" "$shape" "$check" "$pad" >"$dir/f.S"
          gcc -O2 "$here/fib_main.c" "$dir/f.S" -o "$dir/t"
          line="$line $(WARM=$warm "$dir/t")"
        done
        echo "$line"
      done
    done
  done
done
