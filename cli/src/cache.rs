//! The compile cache: running a `.wasm`/`.wat` again loads the artifact
//! compiled the first time.
//!
//! Key: `abi::hash64` over the wasm binary followed by the guard bytes (u64
//! LE), `abi::ABI_VERSION` (u32 LE) and `host_fingerprint()` (u64 LE); the
//! entry is `<cache>/<key:016x>.so`. A new ABI version or another CPU gets
//! new keys, so stale entries are never loaded. An entry that fails to load
//! (corrupt, truncated, ...) is removed and recompiled with a warning.
//! Entries are written to a temporary name and renamed, so a concurrent
//! run never sees a partial file.

use crate::{compile_wasm, read_wasm, write_atomic};
use anyhow::{Context, Result};
use myriad_codegen::abi;
use myriad_runtime::Module;
use std::path::{Path, PathBuf};

/// How `load_wasm` compiles and caches.
pub struct Options {
    /// Guard bytes to compile for.
    pub guard_bytes: u64,
    /// Read and write the cache.
    pub use_cache: bool,
    /// Report hits and misses on stderr.
    pub verbose: bool,
}

/// The cache directory: `$MYRIAD_CACHE_DIR`, else `$XDG_CACHE_HOME/myriad`,
/// else `$HOME/.cache/myriad`, else `<temp>/myriad-cache`.
pub fn cache_dir() -> PathBuf {
    crate::absolute(&cache_dir_setting())
}

fn cache_dir_setting() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(d) = var("MYRIAD_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = var("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("myriad");
    }
    if let Some(h) = var("HOME") {
        return PathBuf::from(h).join(".cache").join("myriad");
    }
    std::env::temp_dir().join("myriad-cache")
}

/// The cache key of `wasm` compiled with `guard_bytes` on this host.
pub fn key(wasm: &[u8], guard_bytes: u64) -> u64 {
    let mut buf = Vec::with_capacity(wasm.len() + 20);
    buf.extend_from_slice(wasm);
    buf.extend_from_slice(&guard_bytes.to_le_bytes());
    buf.extend_from_slice(&abi::ABI_VERSION.to_le_bytes());
    buf.extend_from_slice(&myriad_codegen::host_fingerprint().to_le_bytes());
    abi::hash64(&buf)
}

/// Load the module at `path` (.wasm or .wat), compiling it unless the cache
/// holds it.
pub fn load_wasm(path: &Path, opts: &Options) -> Result<Module> {
    let wasm = read_wasm(path)?;
    if !opts.use_cache {
        return load_uncached(&wasm, path, opts);
    }
    let dir = cache_dir();
    let entry = dir.join(format!("{:016x}.so", key(&wasm, opts.guard_bytes)));
    if entry.exists() {
        match Module::from_file(&entry) {
            Ok(m) => {
                if opts.verbose {
                    eprintln!("myriad: cache hit: {}", entry.display());
                }
                return Ok(m);
            }
            Err(e) => {
                eprintln!("warning: discarding unusable cache entry: {e}; recompiling");
                if let Err(e) = std::fs::remove_file(&entry) {
                    eprintln!("warning: cannot remove {}: {e}", entry.display());
                }
            }
        }
    }
    if opts.verbose {
        eprintln!(
            "myriad: cache miss: compiling {} to {}",
            path.display(),
            entry.display()
        );
    }
    let so = compile_wasm(&wasm, opts.guard_bytes, path)?;
    let stored = std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create cache directory {}", dir.display()))
        .and_then(|()| write_atomic(&entry, &so));
    match stored {
        Ok(()) => Module::from_file(&entry).map_err(anyhow::Error::new),
        Err(e) => {
            eprintln!("warning: not caching the compiled module: {e:#}");
            load_artifact_bytes(&so)
        }
    }
}

fn load_uncached(wasm: &[u8], path: &Path, opts: &Options) -> Result<Module> {
    if opts.verbose {
        eprintln!("myriad: compiling {} (cache bypassed)", path.display());
    }
    let so = compile_wasm(wasm, opts.guard_bytes, path)?;
    load_artifact_bytes(&so)
}

/// Load artifact bytes through a private temporary directory that is
/// removed once the library is mapped.
fn load_artifact_bytes(so: &[u8]) -> Result<Module> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = crate::absolute(&std::env::temp_dir())
        .join(format!("myriad-run-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir)
        .with_context(|| format!("cannot create temporary directory {}", dir.display()))?;
    let loaded = Module::from_artifact_bytes(so, &dir).map_err(anyhow::Error::new);
    // The mapping outlives the file: remove it whether or not loading worked.
    let _ = std::fs::remove_dir_all(&dir);
    loaded
}
