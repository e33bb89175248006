//! The compile cache: running a `.wasm`/`.wat` again loads the artifact
//! compiled the first time.
//!
//! The cache is the runtime's ([`myriad_runtime::cache`]): the directory is
//! [`myriad_runtime::default_cache_dir`] (`$MYRIAD_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/myriad`, else `$HOME/.cache/myriad`, else
//! `<temp>/myriad-<uid>`), created `0700` and refused when another user
//! owns it or group or others may write to it. An entry is
//! `<source key>.so`, the key being the SHA-256 of the wasm bytes, the
//! compile settings, the ABI version and this CPU's fingerprint; an entry is
//! used only when it passes the load-time checks of a cache hit (ELF
//! structure, metadata checksum, ABI, target, CPU features; see
//! `Module::compile_cached`) and records that key.
//! Anything else (corrupt, planted, stale) is reported with a warning,
//! recompiled and replaced atomically.

use crate::compile_error;
use anyhow::{Context, Result};
use myriad_codegen::CompileConfig;
use myriad_runtime::{CacheDir, CacheOutcome, LoadError, Module};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// How `load_wasm` compiles and caches.
pub struct Options {
    /// The compile settings (bounds-check mode).
    pub config: CompileConfig,
    /// Read and write the cache.
    pub use_cache: bool,
    /// Report hits and misses on stderr.
    pub verbose: bool,
}

/// The cache directory (see the module docs).
pub fn cache_dir() -> PathBuf {
    myriad_runtime::default_cache_dir()
}

/// Load the module at `path` (.wasm or .wat), compiling it unless the cache
/// holds it.
pub fn load_wasm(path: &Path, opts: &Options) -> Result<Module> {
    let wasm = crate::read_wasm(path)?;
    let config = opts.config.clone();
    if !opts.use_cache {
        return load_uncached(&wasm, &config, path, opts);
    }
    let dir = cache_dir();
    let cache = CacheDir::open(&dir).map_err(anyhow::Error::new).context(
        "the compile cache is unusable (fix it, set MYRIAD_CACHE_DIR, or pass --no-cache)",
    )?;
    let (module, outcome) =
        Module::compile_cached(&wasm, &config, &cache).map_err(|e| load_error(e, path))?;
    match outcome {
        CacheOutcome::Hit => {
            if opts.verbose {
                eprintln!("myriad: cache hit: {}", module.path().display());
            }
        }
        CacheOutcome::Miss => {
            if opts.verbose {
                eprintln!(
                    "myriad: cache miss: compiled {} to {}",
                    path.display(),
                    module.path().display()
                );
            }
        }
        CacheOutcome::Replaced(why) => {
            eprintln!("warning: discarding unusable cache entry: {why}; recompiled");
            if opts.verbose {
                eprintln!(
                    "myriad: cache miss: compiled {} to {}",
                    path.display(),
                    module.path().display()
                );
            }
        }
    }
    Ok(module)
}

/// A compile error named after the module file; other load errors as they
/// are.
fn load_error(e: LoadError, path: &Path) -> anyhow::Error {
    match e {
        LoadError::Compile(e) => compile_error(&*e, path),
        e => anyhow::Error::new(e),
    }
}

fn load_uncached(
    wasm: &[u8],
    config: &CompileConfig,
    path: &Path,
    opts: &Options,
) -> Result<Module> {
    if opts.verbose {
        eprintln!("myriad: compiling {} (cache bypassed)", path.display());
    }
    let so = myriad_codegen::compile(wasm, config).map_err(|e| compile_error(&e, path))?;
    load_artifact_bytes(&so)
}

/// Load artifact bytes through a private (`0700`) temporary directory that
/// is removed once the library is mapped.
fn load_artifact_bytes(so: &[u8]) -> Result<Module> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = crate::absolute(&std::env::temp_dir())
        .join(format!("myriad-run-{}-{nanos}", std::process::id()));
    // `create` (not `create_all`) fails on a name someone else planted.
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create temporary directory {}", dir.display()))?;
    let loaded = Module::from_artifact_bytes(so, &dir).map_err(anyhow::Error::new);
    // The mapping outlives the file: remove it whether or not loading worked.
    let _ = std::fs::remove_dir_all(&dir);
    loaded
}
