#!/usr/bin/env bash
# Wall time of `BIN run PROG` on a warm compile cache: one run of each
# binary first (fills the cache), then N rounds in which every binary runs
# once, interleaved; prints the median, min and max per binary.
#
#   scripts/startup-bench.sh [-n N] PROG BIN...
#
# Times come from bash's $EPOCHREALTIME around each run (fork, exec, the
# run, wait); output goes to /dev/null. The cache is whatever the binaries
# use ($MYRIAD_CACHE_DIR, else the default).
set -euo pipefail

n=40
if [ "${1:-}" = "-n" ]; then
  n="$2"
  shift 2
fi
if [ $# -lt 2 ]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
prog="$1"
shift

declare -A times
for bin in "$@"; do
  "$bin" run "$prog" >/dev/null
done
for _ in $(seq "$n"); do
  for bin in "$@"; do
    t0=$EPOCHREALTIME
    "$bin" run "$prog" >/dev/null
    t1=$EPOCHREALTIME
    times[$bin]+="$(( (${t1/./} - ${t0/./}) )) "
  done
done
for bin in "$@"; do
  # Microseconds, sorted; print milliseconds.
  read -r -a v <<<"$(tr ' ' '\n' <<<"${times[$bin]}" | grep -v '^$' | sort -n | tr '\n' ' ')"
  count=${#v[@]}
  if [ $((count % 2)) -eq 1 ]; then
    med=${v[$((count / 2))]}
  else
    med=$(( (v[count / 2 - 1] + v[count / 2]) / 2 ))
  fi
  ms() { printf '%d.%02d' $(($1 / 1000)) $((($1 % 1000) / 10)); }
  echo "$bin: median $(ms "$med") ms, min $(ms "${v[0]}"), max $(ms "${v[count - 1]}") ms over $count runs of: run $prog"
done
