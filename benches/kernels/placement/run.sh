#!/usr/bin/env bash
# The sieve's hot loops in three shapes (sieve_loops.py) at eight offsets
# from a 64-byte boundary: how much of a kernel comparison is code
# placement. Prints one line per shape: best-of-7 ms at each offset.
# Needs gcc and python3. ROUNDS (default 1) repeats the whole table.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
for round in $(seq "${ROUNDS:-1}"); do
  for shape in wasmtime checked myriad; do
    line="$shape:"
    for pad in 0 8 16 24 32 40 48 56; do
      python3 "$here/sieve_loops.py" "$shape" "$pad" >"$dir/s.S"
      gcc -O2 "$here/main.c" "$dir/s.S" -o "$dir/t"
      line="$line $("$dir/t")"
    done
    echo "$line"
  done
done
