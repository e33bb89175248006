//! The crate's C test programs (`wasi/tests/c/*.c`) and their checked-in
//! WebAssembly builds (`wasi/tests/c/*.wasm`, next to each source). Used by
//! this crate's tests and the runtime's end-to-end tests; the expected output
//! of each program is in `wasi/tests/c/expected/` (see
//! `wasi/tests/c/README.md`).
//!
//! The tests load the checked-in `.wasm` files and need no wasm toolchain.
//! [`REBUILD_SCRIPT`] rebuilds them from the sources with
//! `clang --target=wasm32-wasi -O2` against Debian's wasi-libc (the packages
//! in [`INSTALL_HINT`]); run it after changing a `.c` file and commit both.
//! `.ci/run` rebuilds them into a temporary directory and compares bytes, so
//! a stale build fails CI.

use std::path::{Path, PathBuf};

/// Names of the C programs the tests run (`<name>.c` in [`source_dir`]).
/// `imports.c` is built too but not run (see `wasi/tests/c/README.md`).
pub const PROGRAMS: &[&str] = &[
    "hello", "args_env", "copy", "compute", "trap", "sleep", "bigio",
];

/// The script, relative to the workspace root, that rebuilds every
/// `wasi/tests/c/<name>.wasm` from its `<name>.c`.
pub const REBUILD_SCRIPT: &str = "scripts/build-test-guests.sh";

/// The Debian packages that provide the wasm C toolchain (needed only to
/// rebuild the programs, never to run the tests).
pub const INSTALL_HINT: &str = "apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32";

/// Why a checked-in test program could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The `.wasm` file could not be read.
    #[error(
        "cannot read the checked-in test program {path}: {source} (it is committed next to \
         its .c source; rebuild it with {REBUILD_SCRIPT}, which needs `{INSTALL_HINT}`)"
    )]
    Read {
        /// The `.wasm` file.
        path: PathBuf,
        /// Why reading it failed.
        source: std::io::Error,
    },
}

/// Directory of the C sources and their `.wasm` builds.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("c")
}

/// Path of the checked-in build of program `name`:
/// `<source_dir>/<name>.wasm`.
pub fn wasm_path(name: &str) -> PathBuf {
    source_dir().join(format!("{name}.wasm"))
}

/// The bytes of the checked-in build of program `name` (one of
/// [`PROGRAMS`], or `imports`).
pub fn load(name: &str) -> Result<Vec<u8>, LoadError> {
    let path = wasm_path(name);
    std::fs::read(&path).map_err(|source| LoadError::Read { path, source })
}
