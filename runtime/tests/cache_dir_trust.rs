//! Attack: the cache directory is one another user can write to (its mode,
//! its owner, or a symbolic link to such a directory). It must be refused
//! with a clear error before anything is read from or written to it.

mod cache_util;

use cache_util::*;
use myriad_runtime::{CompileConfig, Module};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

/// Compile the victim module into `dir`, which must be refused; returns
/// the message.
fn refused(dir: &Path) -> String {
    match Module::compile(&wasm(VICTIM), &CompileConfig::default(), dir) {
        Ok(_) => panic!("cache directory {dir:?} was used"),
        Err(e) => e.to_string(),
    }
}

#[track_caller]
fn assert_mentions(msg: &str, wants: &[&str]) {
    for w in wants {
        assert!(msg.contains(w), "{w:?} missing in: {msg}");
    }
}

#[test]
fn group_or_world_writable_cache_dir_is_refused() {
    for mode in [0o777, 0o770, 0o1777, 0o720, 0o702] {
        let dir = fresh(&format!("mode-{mode:o}"));
        std::fs::create_dir(&dir).unwrap();
        chmod(&dir, mode);
        let msg = refused(&dir);
        assert_mentions(
            &msg,
            &[
                "refusing cache directory",
                &dir.display().to_string(),
                &format!("{mode:04o}"),
                "other users",
            ],
        );
        assert!(names(&dir).is_empty(), "wrote into {dir:?}");
        // Loading artifact bytes through it is refused the same way.
        let so = myriad_codegen::compile(&wasm(VICTIM), &CompileConfig::default()).unwrap();
        let e = Module::from_artifact_bytes(&so, &dir).expect_err("used a writable dir");
        assert_mentions(&e.to_string(), &["refusing cache directory"]);
        assert!(names(&dir).is_empty(), "wrote into {dir:?}");
    }
}

#[test]
fn cache_dir_owned_by_another_user_is_refused() {
    if !is_root() {
        // Without root we cannot chown; "/" is someone else's directory.
        eprintln!("note: not root, so no chown: checking with / (owned by root) instead");
        let msg = refused(Path::new("/"));
        assert_mentions(&msg, &["refusing cache directory /", "owned by uid 0"]);
        return;
    }
    let dir = fresh("other-owner");
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o700);
    std::os::unix::fs::chown(&dir, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
    let msg = refused(&dir);
    assert_mentions(
        &msg,
        &[
            "refusing cache directory",
            &dir.display().to_string(),
            &format!("owned by uid {OTHER_UID}"),
        ],
    );
    assert!(names(&dir).is_empty(), "wrote into {dir:?}");
}

#[test]
fn symlink_to_a_dir_of_another_user_is_refused() {
    let link = fresh("link-to-other");
    let target = if is_root() {
        let t = fresh("link-to-other-target");
        std::fs::create_dir(&t).unwrap();
        chmod(&t, 0o700);
        std::os::unix::fs::chown(&t, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
        t
    } else {
        eprintln!("note: not root, so no chown: the link points to / (owned by root) instead");
        "/".into()
    };
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let owner = std::fs::metadata(&target).unwrap().uid();
    let msg = refused(&link);
    assert_mentions(
        &msg,
        &[
            "refusing cache directory",
            &link.display().to_string(),
            &format!("owned by uid {owner}"),
        ],
    );
    if is_root() {
        assert!(names(&target).is_empty(), "wrote into {target:?}");
    }
}

#[test]
fn symlink_owned_by_another_user_is_refused() {
    if !is_root() {
        eprintln!("note: not root, so no lchown: skipping the foreign-symlink check");
        return;
    }
    // The target is ours and private; the link is someone else's, who
    // could repoint it at will.
    let target = fresh("foreign-link-target");
    std::fs::create_dir(&target).unwrap();
    chmod(&target, 0o700);
    let link = fresh("foreign-link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
    let msg = refused(&link);
    assert_mentions(
        &msg,
        &[
            "refusing cache directory",
            "symbolic link",
            &format!("owned by uid {OTHER_UID}"),
        ],
    );
    assert!(names(&target).is_empty(), "wrote into {target:?}");
}

#[test]
fn own_symlink_to_own_private_dir_is_used() {
    let target = fresh("own-link-target");
    let link = fresh("own-link");
    std::fs::create_dir(&target).unwrap();
    chmod(&target, 0o700);
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let m = Arc::new(Module::compile(&wasm(VICTIM), &CompileConfig::default(), &link).unwrap());
    assert_eq!(answer(&m), 42);
    only_entry(&target);
}

#[test]
fn missing_cache_dir_is_created_private() {
    let base = fresh("created");
    let dir = base.join("a").join("b");
    let m = Arc::new(Module::compile(&wasm(VICTIM), &CompileConfig::default(), &dir).unwrap());
    assert_eq!(answer(&m), 42);
    for d in [&base, &base.join("a"), &dir] {
        let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{d:?} has mode {mode:o}");
    }
    let entry = only_entry(&dir);
    let mode = std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o022, 0, "entry mode {mode:o}");
}

#[test]
fn a_file_in_place_of_the_cache_dir_is_refused() {
    let path = fresh("not-a-dir");
    std::fs::write(&path, b"x").unwrap();
    let msg = refused(&path);
    assert_mentions(&msg, &[&path.display().to_string()]);
}
