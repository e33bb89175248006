//! Helpers for the cache attack tests: two modules with the same export
//! and different results (the victim's and the "attacker's"), fresh
//! directories, entry inspection, and another user to own things.
#![allow(dead_code)]

use myriad_runtime::{Instance, Module, Outcome, Region, RegionConfig, Val};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The module the victim compiles: `answer` returns 42.
pub const VICTIM: &str = r#"(module (func (export "answer") (result i64) (i64.const 42)))"#;
/// The planted module: same export, returns 666.
pub const ATTACKER: &str = r#"(module (func (export "answer") (result i64) (i64.const 666)))"#;

/// The other user that owns planted directories and links.
pub const OTHER_UID: u32 = 65534;

/// `wat` assembled.
pub fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).expect("test WAT assembles")
}

/// A path for one test under Cargo's scratch directory; removed first, not
/// created (the cache creates it).
pub fn fresh(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cache-attacks-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    if let Some(parent) = d.parent() {
        std::fs::create_dir_all(parent).expect("scratch dir");
    }
    d
}

/// Run `answer` of `m` and return its result.
pub fn answer(m: &Arc<Module>) -> i64 {
    let region = Region::new(RegionConfig {
        slots: 1,
        stack_size: 16 * 1024,
        heap_capacity: 64 * 1024,
        guard_size: 0,
        guard_mode: false,
        heap_reservation: 0,
    })
    .expect("region");
    let region = Arc::new(region);
    let mut i = Instance::new(&region, m, "answer", &[]).expect("instantiate");
    match i.resume(u64::MAX / 2) {
        Outcome::Finished(v) => match v.as_slice() {
            [Val::I64(x)] => *x,
            other => panic!("unexpected results {other:?}"),
        },
        other => panic!("unexpected outcome {other:?}"),
    }
}

/// The names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The single `.so` entry in `dir` (and nothing else there: no leftover
/// temporary files).
pub fn only_entry(dir: &Path) -> PathBuf {
    let names = names(dir);
    assert_eq!(
        names.len(),
        1,
        "want exactly one entry in {dir:?}: {names:?}"
    );
    assert!(names[0].ends_with(".so"), "{names:?}");
    dir.join(&names[0])
}

/// Replace `path` with `bytes` the way an attacker who can write the
/// directory would: a new file renamed over the name.
pub fn plant(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("planting");
    std::fs::write(&tmp, bytes).expect("write planted file");
    std::fs::rename(&tmp, path).expect("rename planted file");
}

/// Whether this process runs as root (so it can chown to another user).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").expect("/proc/self").uid() == 0
}

/// Set the permission bits of `path`.
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
