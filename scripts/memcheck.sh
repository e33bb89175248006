#!/usr/bin/env bash
# Run the test binaries whose unsafe code valgrind's memcheck can follow
# (see docs/ARCHITECTURE.md, "Checking the unsafe code"), and fail on any
# memcheck error. Not part of the CI test command: valgrind makes these
# runs 20-50x slower, and a developer runs it after touching the region,
# the timer queue or the WASI descriptor code.
#
#   bash scripts/memcheck.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install -y valgrind" >&2; exit 2; }

# Build the test binaries and collect their paths from cargo's JSON output.
build() {
  cargo test --release --no-run --message-format=json "$@" 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["executable"])'
}
bins="$(build -p myriad-runtime --lib --test region)
$(build -p myriad-scheduler --lib)
$(build -p myriad-wasi --lib --test api)"
[ -n "$(echo "$bins" | tr -d '[:space:]')" ] || { echo "no test binaries built" >&2; exit 2; }

status=0
for b in $bins; do
  echo "== memcheck $(basename "$b")"
  # Tests run one at a time so errors are attributed to one test.
  if ! valgrind -q --error-exitcode=9 "$b" --test-threads=1 >/dev/null; then
    echo "memcheck failed: $b" >&2
    status=1
  fi
done
exit $status
