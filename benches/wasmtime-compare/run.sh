#!/usr/bin/env bash
# Build the Wasmtime runner (once; Wasmtime takes several minutes to
# compile) and Myriad's, then run the kernels interleaved: Myriad dense,
# Myriad sparse, Wasmtime default, Wasmtime with explicit bounds checks, three rounds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
(cd "$here" && cargo build --release --quiet)
(cd "$here/../.." && cargo build --release --quiet -p myriad-benches --bin kernels)
myriad="$here/../../target/release/kernels"
wasmtime="$here/target/release/wasmtime-compare"
for round in 1 2 3; do
  echo "== round $round: Myriad (dense)"
  "$myriad" --runs 5 --bounds dense
  echo "== round $round: Myriad (sparse)"
  "$myriad" --runs 5 --bounds sparse
  echo "== round $round: Wasmtime (default)"
  "$wasmtime" --runs 5
  echo "== round $round: Wasmtime (explicit bounds checks)"
  "$wasmtime" --runs 5 --explicit-bounds-checks
done
