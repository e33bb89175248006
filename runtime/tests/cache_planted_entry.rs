//! Attack: an artifact compiled from other wasm is planted under the cache
//! name of the module we ask for. It must not run: the entry is checked
//! against the request, and recompiled and replaced when it does not match.

mod cache_util;

use cache_util::*;
use myriad_runtime::{CompileConfig, Module};
use std::sync::Arc;

#[test]
fn planted_artifact_of_other_source_is_recompiled_not_run() {
    let cfg = CompileConfig::default();
    let dir = fresh("planted-compile");
    // The victim's entry name: compile it once.
    let m = Arc::new(Module::compile(&wasm(VICTIM), &cfg, &dir).expect("compile"));
    assert_eq!(answer(&m), 42);
    drop(m); // unloaded: the next load really opens the file again
    let entry = only_entry(&dir);
    let good = std::fs::read(&entry).unwrap();

    // The attacker's module, compiled by the same compiler elsewhere: a
    // valid artifact for this host and ABI, just of other source.
    let elsewhere = fresh("planted-compile-src");
    let m = Arc::new(Module::compile(&wasm(ATTACKER), &cfg, &elsewhere).expect("compile"));
    assert_eq!(answer(&m), 666);
    drop(m);
    let evil = std::fs::read(only_entry(&elsewhere)).unwrap();
    plant(&entry, &evil);

    let m = Arc::new(Module::compile(&wasm(VICTIM), &cfg, &dir).expect("compile"));
    assert_eq!(answer(&m), 42, "the planted artifact ran instead of ours");
    // The entry was replaced with ours, atomically (no temporary left).
    assert_eq!(only_entry(&dir), entry);
    let now = std::fs::read(&entry).unwrap();
    assert_ne!(now, evil, "the planted entry is still there");
    assert_eq!(now, good, "the entry holds what we compile");
}

/// An artifact compiled with other settings (here: for a 64 KiB guard)
/// from the same wasm is another source too.
#[test]
fn planted_artifact_of_other_settings_is_recompiled() {
    let dir = fresh("planted-settings");
    let plain = CompileConfig::default();
    let guarded = CompileConfig::guarded(64 * 1024);
    drop(Module::compile(&wasm(VICTIM), &plain, &dir).expect("compile"));
    let entry = only_entry(&dir);
    let elsewhere = fresh("planted-settings-src");
    drop(Module::compile(&wasm(VICTIM), &guarded, &elsewhere).expect("compile"));
    plant(&entry, &std::fs::read(only_entry(&elsewhere)).unwrap());

    let m = Module::compile(&wasm(VICTIM), &plain, &dir).expect("compile");
    assert_eq!(
        m.metadata().requested_guard_bytes,
        0,
        "loaded the guard-relying artifact"
    );
}

#[test]
fn planted_artifact_under_a_content_hash_name_is_replaced() {
    let cfg = CompileConfig::default();
    let ours = myriad_codegen::compile(&wasm(VICTIM), &cfg).expect("compile");
    let evil = myriad_codegen::compile(&wasm(ATTACKER), &cfg).expect("compile");
    let dir = fresh("planted-bytes");
    drop(Module::from_artifact_bytes(&ours, &dir).expect("load"));
    let entry = only_entry(&dir);
    plant(&entry, &evil);

    let m = Arc::new(Module::from_artifact_bytes(&ours, &dir).expect("load"));
    assert_eq!(answer(&m), 42, "the planted artifact ran instead of ours");
    assert_eq!(only_entry(&dir), entry);
    assert_eq!(std::fs::read(&entry).unwrap(), ours);
}

/// A symbolic link planted under the entry name is not followed.
#[test]
fn planted_symlink_entry_is_not_followed() {
    let cfg = CompileConfig::default();
    let dir = fresh("planted-link");
    drop(Module::compile(&wasm(VICTIM), &cfg, &dir).expect("compile"));
    let entry = only_entry(&dir);
    let elsewhere = fresh("planted-link-src");
    drop(Module::compile(&wasm(ATTACKER), &cfg, &elsewhere).expect("compile"));
    let evil = only_entry(&elsewhere);
    std::fs::remove_file(&entry).unwrap();
    std::os::unix::fs::symlink(&evil, &entry).unwrap();

    let m = Arc::new(Module::compile(&wasm(VICTIM), &cfg, &dir).expect("compile"));
    assert_eq!(answer(&m), 42, "followed the planted link");
    let meta = std::fs::symlink_metadata(&entry).unwrap();
    assert!(meta.file_type().is_file(), "the link was not replaced");
}
