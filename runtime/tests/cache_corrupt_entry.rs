//! A damaged cache entry (a flipped byte, a torn write, an empty file) is
//! recompiled and replaced atomically: readers see the old file or the
//! new one, never a partial one, and the result is right.

mod cache_util;

use cache_util::*;
use myriad_runtime::{CompileConfig, Module};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[test]
fn damaged_entry_is_replaced_and_the_result_is_right() {
    let cfg = CompileConfig::default();
    let dir = fresh("damaged");
    drop(Module::compile(&wasm(VICTIM), &cfg, &dir).expect("compile"));
    let entry = only_entry(&dir);
    let good = std::fs::read(&entry).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0xff;
    let damaged: [(&str, Vec<u8>); 3] = [
        ("a flipped byte", flipped),
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
    bad[good.len() / 2] ^= 0xff;

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
