#!/usr/bin/env bash
# Myriad beside Go and Erlang/BEAM on the actor benchmarks of issue 12:
# ping-pong, a ring of 100,000, Skynet 1M and spawn -> run -> exit
# lifecycles, each restricted to 2 OS threads running actors (Myriad's 2
# workers, GOMAXPROCS=2, erl +S 2:2).
#
# Installs nothing: needs `cargo` (Myriad's examples) and `go`, `erl` and
# `erlc` on PATH (on Debian: apt-get install golang-go erlang-base); LANGS
# picks which of them run. Builds into $BUILD, runs every benchmark $RUNS
# times (the languages interleaved: myriad, go, erlang, myriad, ...)
# and prints the median, min and max of each. The machine may be shared:
# for every run the script also records how many CPUs' worth of time the
# rest of the machine used meanwhile ("others": busy time from /proc/stat
# less the run's own user+sys, over its wall time; 0 = an idle machine,
# 2 = another job that could take both CPUs), and prints its median with
# the figures. Every run is logged to $BUILD/runs.tsv.
#
# Environment (defaults in brackets):
#   RUNS [5]  BUILD [benches/actors/build]  BENCHES [pingpong ring skynet lifecycles]
#   LANGS [myriad go erlang]
#   PINGPONG_N [1000000]  RING_N [100000]  RING_M [10]  SKYNET_LEAVES [1000000]
#   LIFECYCLES_TOTAL [2000000]  LIFECYCLES_IN_FLIGHT [10000]
#   ERL_FLAGS: read by erl itself, added to every Erlang run (e.g. "+hms 100").
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
RUNS=${RUNS:-5}
BUILD=${BUILD:-$HERE/build}
BENCHES=${BENCHES:-pingpong ring skynet lifecycles}
LANGS=${LANGS:-myriad go erlang}
ROOT=$(cd "$HERE/../.." && pwd)
EXAMPLES=$ROOT/target/release/examples
PINGPONG_N=${PINGPONG_N:-1000000}
RING_N=${RING_N:-100000}
RING_M=${RING_M:-10}
SKYNET_LEAVES=${SKYNET_LEAVES:-1000000}
LIFECYCLES_TOTAL=${LIFECYCLES_TOTAL:-2000000}
LIFECYCLES_IN_FLIGHT=${LIFECYCLES_IN_FLIGHT:-10000}

need=()
case " $LANGS " in *" myriad "*) need+=(cargo) ;; esac
case " $LANGS " in *" go "*) need+=(go) ;; esac
case " $LANGS " in *" erlang "*) need+=(erl erlc) ;; esac
missing=0
for tool in "${need[@]}"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "run.sh: '$tool' not found on PATH (Debian: apt-get install golang-go erlang-base)" >&2
        missing=1
    fi
done
[ "$missing" = 0 ] || exit 2

mkdir -p "$BUILD/ebin"
echo "== build"
has() { case " $LANGS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
if has myriad; then
    (cd "$ROOT" && cargo build --release -q -p myriad-scheduler --example token_ring --example skynet --example lifecycles)
fi
if has go; then
    (cd "$HERE/go" && for b in pingpong ring skynet lifecycles; do go build -o "$BUILD/go-$b" "./$b"; done)
fi
if has erlang; then
    erlc -o "$BUILD/ebin" "$HERE"/erlang/*.erl
fi

echo "date:   $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "host:   $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
if has myriad; then
    echo "myriad: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?') (2 workers)"
fi
if has go; then
    echo "go:     $(go version | awk '{print $3}') (GOMAXPROCS=2)"
fi
if has erlang; then
    OTP_VERSION=$(erl -noshell -eval 'io:format("OTP ~s, erts ~s, ~p", [erlang:system_info(otp_release), erlang:system_info(version), erlang:system_info(emu_flavor)]), halt().')
    echo "erlang: $OTP_VERSION (+S 2:2${ERL_FLAGS:+, ERL_FLAGS=$ERL_FLAGS})"
fi

export GOMAXPROCS=2
ERL=(erl -noshell +S 2:2 -pa "$BUILD/ebin")

cmd_for() { # bench lang -> command line
    case "$1:$2" in
        pingpong:myriad) echo "$EXAMPLES/token_ring 2 $PINGPONG_N 2" ;;
        ring:myriad)     echo "$EXAMPLES/token_ring $RING_N $RING_M 2" ;;
        skynet:myriad)   echo "$EXAMPLES/skynet $SKYNET_LEAVES 1" ;;
        lifecycles:myriad) echo "$EXAMPLES/lifecycles $LIFECYCLES_TOTAL $LIFECYCLES_IN_FLIGHT 1" ;;
        pingpong:go)     echo "$BUILD/go-pingpong $PINGPONG_N" ;;
        pingpong:erlang) echo "${ERL[*]} -run pingpong main $PINGPONG_N" ;;
        ring:go)         echo "$BUILD/go-ring $RING_N $RING_M" ;;
        ring:erlang)     echo "${ERL[*]} -run ring main $RING_N $RING_M" ;;
        skynet:go)       echo "$BUILD/go-skynet $SKYNET_LEAVES" ;;
        skynet:erlang)   echo "${ERL[*]} +P 2097152 -run skynet main $SKYNET_LEAVES" ;;
        lifecycles:go)     echo "$BUILD/go-lifecycles $LIFECYCLES_TOTAL $LIFECYCLES_IN_FLIGHT" ;;
        lifecycles:erlang) echo "${ERL[*]} -run lifecycles main $LIFECYCLES_TOTAL $LIFECYCLES_IN_FLIGHT" ;;
        *) echo "unknown benchmark $1" >&2; exit 2 ;;
    esac
}

busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
CLK_TCK=$(getconf CLK_TCK)

LOG="$BUILD/runs.tsv"
printf 'bench\tlang\trun\tvalue\tunit\twall_s\tuser_s\tsys_s\tothers_cpus\tload1\n' >"$LOG"
out=$(mktemp); tim=$(mktemp)
trap 'rm -f "$out" "$tim"' EXIT
TIMEFORMAT='%R %U %S'

for bench in $BENCHES; do
    for run in $(seq 1 "$RUNS"); do
        for lang in $LANGS; do
            cmd=$(cmd_for "$bench" "$lang")
            load=$(cut -d' ' -f1 /proc/loadavg)
            b0=$(busy_ticks)
            if ! { time $cmd >"$out" 2>&1; } 2>"$tim"; then
                echo "run.sh: $bench/$lang failed:" >&2; cat "$out" >&2; exit 1
            fi
            line=$(grep '^RESULT ' "$out") || { echo "run.sh: no RESULT line from $cmd" >&2; cat "$out" >&2; exit 1; }
            value=$(sed -n 's/.* value=\([^ ]*\).*/\1/p' <<<"$line")
            unit=$(sed -n 's/.* unit=\([^ ]*\).*/\1/p' <<<"$line")
            b1=$(busy_ticks)
            read -r wall user sys <"$tim"
            others=$(awk -v b="$((b1 - b0))" -v t="$CLK_TCK" -v u="$user" -v s="$sys" -v w="$wall" \
                'BEGIN {o = (b / t - u - s) / w; if (o < 0) o = 0; printf "%.2f", o}')
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$bench" "$lang" "$run" "$value" "$unit" "$wall" "$user" "$sys" "$others" "$load" >>"$LOG"
            echo "  $line  [wall ${wall}s user ${user}s sys ${sys}s; others ${others} CPUs, load $load]"
        done
    done
done

echo
echo "== medians of $RUNS runs (min - max); others = median CPUs used by other processes during a run"
"$HERE/summarize.sh" "$LOG"
echo "(per-run log: $LOG; pool several passes with: summarize.sh A/runs.tsv B/runs.tsv ...)"
