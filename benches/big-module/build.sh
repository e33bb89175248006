#!/usr/bin/env bash
# Build benches/big-module/sqlite.wasm: the SQLite amalgamation (as bundled
# in the `libsqlite3-sys` crate, pinned below) with its common extensions,
# plus main.c, for wasm32-wasi at -O2. About 2,100 functions, 1.6 MB of
# code. Needs clang, lld, wasi-libc and libclang-rt-14-dev-wasm32 (Debian
# package names) and cargo (to fetch the crate from crates.io).
#
# Usage: build.sh [OUT.wasm]   (default: sqlite.wasm beside this script)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/sqlite.wasm}"
version="0.40.0" # libsqlite3-sys; bundles SQLite 3.54.1

# A scratch cargo project whose only dependency is the crate: `cargo fetch`
# unpacks its sources into the cargo registry, `cargo metadata` says where.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/src"
cat >"$scratch/Cargo.toml" <<TOML
[package]
name = "fetch-sqlite"
version = "0.0.0"
edition = "2021"
publish = false

[workspace]

[dependencies]
libsqlite3-sys = { version = "=$version", features = ["bundled"] }
TOML
: >"$scratch/src/lib.rs"
(cd "$scratch" && cargo fetch --quiet)
manifest="$(cd "$scratch" && cargo metadata --format-version 1 --quiet |
  grep -o "\"manifest_path\":\"[^\"]*libsqlite3-sys-$version/Cargo.toml\"" |
  head -n 1 | sed 's/^"manifest_path":"//; s/"$//')"
src="$(dirname "$manifest")/sqlite3"
test -f "$src/sqlite3.c" || { echo "sqlite3.c not found under $src" >&2; exit 1; }

# No threads, no dynamic loading, no WAL (it needs shared memory); WASI's
# emulated mman/signal/clock/getpid stand in for what SQLite's Unix VFS
# calls. The ENABLE flags add the usual extensions (full-text search,
# R-tree, math functions, virtual tables, sessions): more code, as a
# large real program has.
flags=(
  -DSQLITE_THREADSAFE=0 -DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_OMIT_WAL
  -DSQLITE_ENABLE_FTS5 -DSQLITE_ENABLE_FTS3 -DSQLITE_ENABLE_FTS3_PARENTHESIS
  -DSQLITE_ENABLE_RTREE -DSQLITE_ENABLE_GEOPOLY -DSQLITE_ENABLE_MATH_FUNCTIONS
  -DSQLITE_ENABLE_DBSTAT_VTAB -DSQLITE_ENABLE_STAT4 -DSQLITE_ENABLE_BYTECODE_VTAB
  -DSQLITE_ENABLE_EXPLAIN_COMMENTS -DSQLITE_ENABLE_COLUMN_METADATA
  -DSQLITE_ENABLE_SESSION -DSQLITE_ENABLE_PREUPDATE_HOOK -DSQLITE_ENABLE_STMTVTAB
  -DSQLITE_ENABLE_DBPAGE_VTAB -DSQLITE_ENABLE_CARRAY -DSQLITE_ENABLE_PERCENTILE
  -D_WASI_EMULATED_MMAN -D_WASI_EMULATED_SIGNAL
  -D_WASI_EMULATED_PROCESS_CLOCKS -D_WASI_EMULATED_GETPID
)
libs=(-lwasi-emulated-mman -lwasi-emulated-signal
  -lwasi-emulated-process-clocks -lwasi-emulated-getpid)
clang --target=wasm32-wasi -O2 -I"$src" "${flags[@]}" \
  "$src/sqlite3.c" "$here/main.c" "${libs[@]}" -o "$out"
echo "$out: $(wc -c <"$out") bytes"
