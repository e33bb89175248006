#!/usr/bin/env bash
# Medians of the runs logged by run.sh: summarize.sh RUNS.TSV...
# With several logs (several passes of run.sh) it pools their runs.
# MAX_OTHERS=X keeps only the runs during which other processes used at
# most X CPUs (column others_cpus), e.g. MAX_OTHERS=0.25 for quiet runs.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 runs.tsv..." >&2; exit 2; }
median() { sort -g | awk '{v[NR]=$1} END {m = NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; if (m == int(m)) printf "%d\n", m; else printf "%.2f\n", m}'; }
all=$(awk -F'\t' -v m="${MAX_OTHERS:-}" 'FNR > 1 && (m == "" || $9 <= m + 0)' "$@")
printf '%-11s %-7s %5s %14s %27s  %-14s %6s\n' bench lang runs median "min - max" unit others
for bench in $(cut -f1 <<<"$all" | awk '!seen[$0]++'); do
    for lang in myriad go erlang; do
        rows=$(awk -F'\t' -v b="$bench" -v l="$lang" '$1==b && $2==l' <<<"$all")
        [ -n "$rows" ] || continue
        n=$(wc -l <<<"$rows")
        med=$(cut -f4 <<<"$rows" | median)
        min=$(cut -f4 <<<"$rows" | sort -g | head -1)
        max=$(cut -f4 <<<"$rows" | sort -g | tail -1)
        unit=$(cut -f5 <<<"$rows" | head -1)
        others=$(cut -f9 <<<"$rows" | median)
        printf '%-11s %-7s %5s %14s %27s  %-14s %6s\n' "$bench" "$lang" "$n" "$med" "$min - $max" "$unit" "$others"
    done
done
