//! A damaged cache entry (a flipped byte of its metadata, an initialiser
//! added to its dynamic section, a torn write, an empty file) is recompiled
//! and replaced atomically: readers see the old file or the new one, never
//! a partial one, and the result is right. A cache hit does not hash the
//! whole entry (docs/SECURITY.md, "What a cache hit checks"); a load by
//! path does, and refuses a flipped byte anywhere.

mod cache_util;

use cache_util::*;
use myriad_runtime::{CompileConfig, Module};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Offset of the first checksummed byte of the metadata in artifact `so`
/// (after the marker, the length and the 8-byte checksum).
fn metadata_payload(so: &[u8]) -> usize {
    myriad_abi::find_marker(so, &myriad_abi::METADATA_MARKER).expect("metadata marker") + 16 + 4 + 8
}

/// `so` with the first `DT_FLAGS` (30) entry of its dynamic section turned
/// into `DT_INIT` (12): loading it would run code.
fn with_dt_init(so: &[u8]) -> Vec<u8> {
    let u64_at = |at: usize| u64::from_le_bytes(so[at..at + 8].try_into().unwrap());
    let (phoff, phnum) = (
        u64_at(32) as usize,
        u16::from_le_bytes([so[56], so[57]]) as usize,
    );
    let dynamic = (0..phnum)
        .map(|i| phoff + i * 56)
        .find(|&p| u32::from_le_bytes(so[p..p + 4].try_into().unwrap()) == 2)
        .map(|p| u64_at(p + 8) as usize)
        .expect("dynamic segment");
    let mut out = so.to_vec();
    let entry = (dynamic..)
        .step_by(16)
        .find(|&e| u64_at(e) == 30 || u64_at(e) == 0)
        .expect("dynamic entry");
    assert_eq!(u64_at(entry), 30, "artifacts have DT_FLAGS");
    out[entry..entry + 8].copy_from_slice(&12u64.to_le_bytes());
    out
}

#[test]
fn damaged_entry_is_replaced_and_the_result_is_right() {
    let cfg = CompileConfig::default();
    let dir = fresh("damaged");
    drop(Module::compile(&wasm(VICTIM), &cfg, &dir).expect("compile"));
    let entry = only_entry(&dir);
    let good = std::fs::read(&entry).unwrap();
    let mut flipped = good.clone();
    flipped[metadata_payload(&good) + 5] ^= 0xff;
    let damaged: [(&str, Vec<u8>); 4] = [
        ("a flipped metadata byte", flipped),
        ("an initialiser", with_dt_init(&good)),
        ("a torn write", good[..good.len() / 3].to_vec()),
        ("an empty file", Vec::new()),
    ];
    for (what, bytes) in damaged {
        plant(&entry, &bytes);
        let m = Arc::new(
            Module::compile(&wasm(VICTIM), &cfg, &dir)
                .unwrap_or_else(|e| panic!("entry with {what} not replaced: {e}")),
        );
        assert_eq!(answer(&m), 42, "{what}");
        assert_eq!(only_entry(&dir), entry, "{what}");
        assert_eq!(std::fs::read(&entry).unwrap(), good, "{what}");
    }
}

/// While entries are replaced, a concurrent reader of the entry only ever
/// sees a complete file: the damaged one or the good one.
#[test]
fn replacement_is_atomic_for_concurrent_readers() {
    let cfg = CompileConfig::default();
    let dir = fresh("atomic");
    drop(Module::compile(&wasm(VICTIM), &cfg, &dir).expect("compile"));
    let entry = only_entry(&dir);
    let good = std::fs::read(&entry).unwrap();
    let mut bad = good.clone();
    bad[metadata_payload(&good) + 5] ^= 0xff;

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, entry, good, bad) = (stop.clone(), entry.clone(), good.clone(), bad.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(now) = std::fs::read(&entry) {
                    assert!(
                        now == good || now == bad,
                        "read a partial entry ({} bytes)",
                        now.len()
                    );
                    reads += 1;
                }
            }
            reads
        })
    };
    for _ in 0..5 {
        plant(&entry, &bad);
        let m = Arc::new(Module::compile(&wasm(VICTIM), &cfg, &dir).expect("compile"));
        assert_eq!(answer(&m), 42);
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("reader saw only whole files");
    assert!(reads > 0);
    assert_eq!(only_entry(&dir), entry);
    assert_eq!(std::fs::read(&entry).unwrap(), good);
}

/// A flipped byte anywhere (here: in the middle, in code) is refused by a
/// load by path, which verifies the whole-file hash.
#[test]
fn a_load_by_path_refuses_a_flipped_byte_anywhere() {
    let cfg = CompileConfig::default();
    let dir = fresh("by-path");
    drop(Module::compile(&wasm(VICTIM), &cfg, &dir).expect("compile"));
    let entry = only_entry(&dir);
    let mut bytes = std::fs::read(&entry).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let copy = dir.join("copy.so");
    std::fs::write(&copy, &bytes).unwrap();
    match Module::from_file(&copy) {
        Err(myriad_runtime::LoadError::Corrupt { .. }) => {}
        other => panic!("a flipped byte was not refused: {other:?}"),
    }
}
