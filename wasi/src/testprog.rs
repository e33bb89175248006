//! The crate's C test programs (`wasi/tests/c/*.c`) and a helper that
//! compiles them to wasm with `clang --target=wasm32-wasi -O2` against
//! Debian's wasi-libc. Used by this crate's tests and meant for the
//! runtime's end-to-end tests; the expected output of each program is in
//! `wasi/tests/c/expected/` (see `wasi/tests/c/README.md`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Names of the C programs (`<name>.c` in [`source_dir`]).
pub const PROGRAMS: &[&str] = &["hello", "args_env", "copy", "compute", "trap", "sleep"];

/// The Debian packages that provide the wasm C toolchain.
pub const INSTALL_HINT: &str = "apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32";

/// Environment variable that, set to `1`, lets tests skip instead of fail
/// when clang or wasi-libc is missing.
pub const SKIP_ENV: &str = "MYRIAD_SKIP_C";

/// Why a C program could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// `clang` could not be run at all.
    #[error("clang not found ({0}); install the wasm C toolchain with `{INSTALL_HINT}` (or set {SKIP_ENV}=1 to skip these tests)")]
    ClangMissing(String),
    /// clang ran and failed.
    #[error("clang failed on {source_file}: {stderr}\n(if headers, crt1 or libclang_rt.builtins-wasm32.a are missing: `{INSTALL_HINT}`)")]
    Failed {
        /// The C file.
        source_file: PathBuf,
        /// clang's error output.
        stderr: String,
    },
    /// Writing the output failed.
    #[error("cannot write {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// Directory of the C sources.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("c")
}

/// The clang command: `$MYRIAD_CLANG` or `clang`.
fn clang() -> String {
    std::env::var("MYRIAD_CLANG").unwrap_or_else(|_| "clang".to_string())
}

/// True when `MYRIAD_SKIP_C=1`.
pub fn skip_requested() -> bool {
    std::env::var(SKIP_ENV).is_ok_and(|v| v == "1")
}

/// Compiles C file `source` to `<out_dir>/<stem>.wasm` and returns that
/// path. Safe to call concurrently for the same file (each build writes a
/// private temporary file, then renames it into place).
pub fn compile(source: &Path, out_dir: &Path) -> Result<PathBuf, CompileError> {
    std::fs::create_dir_all(out_dir).map_err(|e| CompileError::Io(out_dir.to_path_buf(), e))?;
    let stem = source
        .file_stem()
        .map_or_else(|| "prog".into(), |s| s.to_string_lossy().into_owned());
    let out = out_dir.join(format!("{stem}.wasm"));
    let tmp = out_dir.join(format!(
        "{stem}.{}.{:?}.tmp.wasm",
        std::process::id(),
        std::thread::current().id()
    ));
    let result = Command::new(clang())
        .args(["--target=wasm32-wasi", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&tmp)
        .arg(source)
        .output()
        .map_err(|e| CompileError::ClangMissing(e.to_string()))?;
    if !result.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(CompileError::Failed {
            source_file: source.to_path_buf(),
            stderr: String::from_utf8_lossy(&result.stderr).into_owned(),
        });
    }
    std::fs::rename(&tmp, &out).map_err(|e| CompileError::Io(out.clone(), e))?;
    Ok(out)
}

/// Compiles the program `name` (one of [`PROGRAMS`]) into `out_dir`.
pub fn compile_program(name: &str, out_dir: &Path) -> Result<PathBuf, CompileError> {
    compile(&source_dir().join(format!("{name}.c")), out_dir)
}
