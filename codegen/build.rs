//! Fingerprint the compiler's own source for the source key: an artifact
//! cache must not hand back code compiled by a different compiler build
//! that happens to carry the same crate version (while the translator is
//! being changed, that is every build). The fingerprint covers this
//! crate's sources, the ABI crate's, and the lock file (the Cranelift
//! version); it is an FNV-1a hash, for change detection only.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let inputs = [
        manifest.join("src"),
        manifest.join("../abi/src"),
        manifest.join("../Cargo.lock"),
    ];
    let mut paths = Vec::new();
    for input in &inputs {
        println!("cargo:rerun-if-changed={}", input.display());
        if input.is_dir() {
            files(input, &mut paths);
        } else if input.exists() {
            paths.push(input.clone());
        }
    }
    paths.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for path in &paths {
        eat(path
            .strip_prefix(&manifest)
            .unwrap_or(path)
            .to_string_lossy()
            .as_bytes());
        eat(&std::fs::read(path).unwrap_or_default());
    }
    println!("cargo:rustc-env=MYRIAD_COMPILER_BUILD={h:016x}");
}
