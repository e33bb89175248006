#!/usr/bin/env bash
# Rebuild the checked-in WebAssembly test guests from their C sources: every
# wasi/tests/c/<name>.c becomes wasi/tests/c/<name>.wasm, which the tests
# load (they need no wasm toolchain themselves).
#
#   scripts/build-test-guests.sh            rebuild in place; commit the .wasm files
#   scripts/build-test-guests.sh --check    rebuild into a temporary directory and
#                                           compare byte for byte with the checked-in
#                                           files (exit 1 if any differs or is missing)
#   scripts/build-test-guests.sh --out DIR  rebuild into DIR
#
# Needs the Debian packages clang lld wasi-libc libclang-rt-14-dev-wasm32
# ($CLANG overrides the clang command). The build is reproducible: the same
# toolchain gives the same bytes wherever the checkout lives. No -g, and
# --strip-debug drops the DWARF that wasi-libc's objects carry (it embeds
# /usr/lib/llvm-14/... paths); what remains is code, the name section and
# the producers section ("Debian clang version 14.0.6").
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/wasi/tests/c"
clang="${CLANG:-clang}"
flags=(--target=wasm32-wasi -O2 -Wall -Werror "-Wl,--strip-debug")

usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

mode="write"
out="$src"
case "${1:-}" in
  "") ;;
  --check)
    mode=check
    [ $# -eq 1 ] || usage
    ;;
  --out)
    [ $# -eq 2 ] || usage
    out="$2"
    ;;
  *) usage ;;
esac

if ! command -v "$clang" >/dev/null 2>&1; then
  echo "build-test-guests: $clang not found; apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [ "$mode" = check ]; then
  out="$tmp/out"
fi
mkdir -p "$out"

# The clang a .wasm was built with, from its producers section (where the
# name, e.g. "Debian clang", and the version are length-prefixed strings).
built_with() {
  LC_ALL=C grep -a -o '[A-Za-z ]*clang.[0-9][0-9.]*' "$1" | head -n 1 |
    LC_ALL=C tr -c 'A-Za-z0-9.\n' ' ' || true
}

cd "$src"
shopt -s nullglob
sources=(*.c)
if [ ${#sources[@]} -eq 0 ]; then
  echo "build-test-guests: no C sources in $src" >&2
  exit 1
fi

echo "build-test-guests: $("$clang" --version | head -n 1)" >&2
for c in "${sources[@]}"; do
  name="${c%.c}"
  # Relative source name, private temporary output, then rename into place.
  "$clang" "${flags[@]}" -o "$tmp/$name.wasm" "$c"
  chmod 0644 "$tmp/$name.wasm"
  mv "$tmp/$name.wasm" "$out/$name.wasm"
done

if [ "$mode" = write ]; then
  echo "build-test-guests: wrote ${#sources[@]} files to $out" >&2
  exit 0
fi

status=0
for c in "${sources[@]}"; do
  name="${c%.c}"
  if [ ! -f "$src/$name.wasm" ]; then
    echo "build-test-guests: wasi/tests/c/$name.wasm is missing (not checked in)" >&2
    status=1
  elif ! cmp -s "$out/$name.wasm" "$src/$name.wasm"; then
    echo "build-test-guests: wasi/tests/c/$name.wasm does not match $name.c" \
      "(checked in: $(built_with "$src/$name.wasm"); this rebuild: $(built_with "$out/$name.wasm"))" >&2
    status=1
  fi
done
for w in *.wasm; do
  if [ ! -f "${w%.wasm}.c" ]; then
    echo "build-test-guests: wasi/tests/c/$w has no source ${w%.wasm}.c" >&2
    status=1
  fi
done
if [ $status -ne 0 ]; then
  echo "build-test-guests: run scripts/build-test-guests.sh and commit the .wasm files" >&2
  exit 1
fi
echo "build-test-guests: all ${#sources[@]} checked-in .wasm files match their sources" >&2
