//! Attacks on the `myriad` compile cache: a planted entry, a cache
//! directory others can write to or own (directly or through a symbolic
//! link), and the shared temporary-directory fallback.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_myriad");
const VICTIM: &str = r#"(module (func (export "answer") (result i64) (i64.const 42)))"#;
const ATTACKER: &str = r#"(module (func (export "answer") (result i64) (i64.const 666)))"#;
const OTHER_UID: u32 = 65534;

/// A fresh scratch directory for one test, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cli-cache-attacks-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `myriad -v run --invoke answer PROG` with the cache in `cache`.
fn run_answer(prog: &Path, cache: &Path) -> Output {
    Command::new(BIN)
        .args(["-v", "run", "--invoke", "answer"])
        .arg(prog)
        .env("MYRIAD_CACHE_DIR", cache)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn answers(o: &Output, want: &str) {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{want}\n"),
        "stderr: {}",
        stderr(o)
    );
}

#[track_caller]
fn refused(o: &Output, wants: &[&str]) {
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        o.stdout.is_empty(),
        "it ran: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let e = stderr(o);
    for w in wants {
        assert!(e.contains(w), "{w:?} missing in: {e}");
    }
}

/// The `.so` entries of `cache`.
fn entries(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cache)
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "so"));
    v.sort();
    v
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn planted_entry_of_other_source_is_recompiled_not_run() {
    let s = Scratch::new("planted");
    let victim = s.write("victim.wat", VICTIM);
    let attacker = s.write("attacker.wat", ATTACKER);
    let cache = s.0.join("cache");
    answers(&run_answer(&victim, &cache), "42");
    let [entry] = entries(&cache).try_into().expect("one entry");
    // The attacker's artifact, from the same compiler in their own cache.
    let theirs = s.0.join("their-cache");
    answers(&run_answer(&attacker, &theirs), "666");
    let [evil] = entries(&theirs).try_into().expect("one entry");
    let tmp = s.0.join("evil.tmp");
    std::fs::copy(&evil, &tmp).unwrap();
    std::fs::rename(&tmp, &entry).unwrap();

    let o = run_answer(&victim, &cache);
    answers(&o, "42");
    let e = stderr(&o);
    assert!(
        e.contains("warning: discarding unusable cache entry"),
        "{e}"
    );
    assert!(
        e.contains("compiled from other wasm bytes or settings"),
        "{e}"
    );
    assert_ne!(
        std::fs::read(&entry).unwrap(),
        std::fs::read(&evil).unwrap()
    );
    // Now a plain hit.
    let o = run_answer(&victim, &cache);
    answers(&o, "42");
    assert!(stderr(&o).contains("cache hit"), "{}", stderr(&o));
}

#[test]
fn group_or_world_writable_cache_dir_is_refused() {
    let s = Scratch::new("writable");
    let victim = s.write("victim.wat", VICTIM);
    for mode in [0o777, 0o770] {
        let cache = s.0.join(format!("cache-{mode:o}"));
        std::fs::create_dir(&cache).unwrap();
        chmod(&cache, mode);
        let o = run_answer(&victim, &cache);
        refused(
            &o,
            &[
                "refusing cache directory",
                &cache.display().to_string(),
                &format!("{mode:04o}"),
                "--no-cache",
            ],
        );
        assert!(entries(&cache).is_empty());
        // --no-cache still runs.
        let o = Command::new(BIN)
            .args(["run", "--no-cache", "--invoke", "answer"])
            .arg(&victim)
            .env("MYRIAD_CACHE_DIR", &cache)
            .output()
            .unwrap();
        answers(&o, "42");
    }
}

#[test]
fn cache_dir_owned_by_another_user_is_refused() {
    if !is_root() {
        eprintln!("note: not root: cannot chown, skipping the foreign-owner check");
        return;
    }
    let s = Scratch::new("owner");
    let victim = s.write("victim.wat", VICTIM);
    let cache = s.0.join("cache");
    std::fs::create_dir(&cache).unwrap();
    chmod(&cache, 0o700);
    std::os::unix::fs::chown(&cache, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
    refused(
        &run_answer(&victim, &cache),
        &[
            "refusing cache directory",
            &format!("owned by uid {OTHER_UID}"),
        ],
    );
    assert!(entries(&cache).is_empty());
}

#[test]
fn symlinked_cache_dir_of_another_user_is_refused() {
    if !is_root() {
        eprintln!("note: not root: cannot chown, skipping the foreign-symlink checks");
        return;
    }
    let s = Scratch::new("symlink");
    let victim = s.write("victim.wat", VICTIM);
    // A link (ours) to a directory owned by someone else.
    let theirs = s.0.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    chmod(&theirs, 0o755);
    std::os::unix::fs::chown(&theirs, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
    let link = s.0.join("cache");
    std::os::unix::fs::symlink(&theirs, &link).unwrap();
    refused(
        &run_answer(&victim, &link),
        &[
            "refusing cache directory",
            &format!("owned by uid {OTHER_UID}"),
        ],
    );
    assert!(entries(&theirs).is_empty());
    // A link owned by someone else, to a directory of ours.
    let ours = s.0.join("ours");
    std::fs::create_dir(&ours).unwrap();
    chmod(&ours, 0o700);
    let link2 = s.0.join("cache2");
    std::os::unix::fs::symlink(&ours, &link2).unwrap();
    std::os::unix::fs::lchown(&link2, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
    refused(
        &run_answer(&victim, &link2),
        &[
            "refusing cache directory",
            "symbolic link",
            &format!("uid {OTHER_UID}"),
        ],
    );
    assert!(entries(&ours).is_empty());
}

/// Without HOME the cache is `$TMPDIR/myriad-<uid>`, private, and one
/// planted there by another user is refused.
#[test]
fn temp_dir_fallback_is_per_user_and_private() {
    let s = Scratch::new("fallback");
    let victim = s.write("victim.wat", VICTIM);
    let tmp = s.0.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    chmod(&tmp, 0o1777);
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    let run = || {
        Command::new(BIN)
            .args(["-v", "run", "--invoke", "answer"])
            .arg(&victim)
            .env_remove("MYRIAD_CACHE_DIR")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("HOME")
            .env("TMPDIR", &tmp)
            .output()
            .unwrap()
    };
    let o = run();
    answers(&o, "42");
    let cache = tmp.join(format!("myriad-{uid}"));
    assert!(
        stderr(&o).contains(&cache.display().to_string()),
        "{}",
        stderr(&o)
    );
    let meta = std::fs::symlink_metadata(&cache).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.uid(), uid);
    assert_eq!(meta.mode() & 0o777, 0o700);
    assert_eq!(entries(&cache).len(), 1);

    if !is_root() {
        eprintln!("note: not root: cannot chown, skipping the planted-fallback check");
        return;
    }
    // Another user got there first.
    std::fs::remove_dir_all(&cache).unwrap();
    std::fs::create_dir(&cache).unwrap();
    chmod(&cache, 0o700);
    std::os::unix::fs::chown(&cache, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
    refused(
        &run(),
        &[
            "refusing cache directory",
            &format!("owned by uid {OTHER_UID}"),
        ],
    );
}

#[test]
fn inspect_says_what_it_verified_and_what_it_cannot() {
    let s = Scratch::new("inspect");
    let victim = s.write("victim.wat", VICTIM);
    let attacker = s.write("attacker.wat", ATTACKER);
    let so = s.0.join("victim.so");
    let o = Command::new(BIN)
        .arg("compile")
        .arg(&victim)
        .arg("-o")
        .arg(&so)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = Command::new(BIN)
        .arg("inspect")
        .arg(&so)
        .arg("--source")
        .arg(&victim)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let key_line = out
        .lines()
        .find(|l| l.starts_with("source key:"))
        .expect("source key line");
    let key = key_line.split_whitespace().nth(2).unwrap();
    assert_eq!(key.len(), 64, "{key_line}");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()), "{key_line}");
    for want in [
        "verified:      integrity",
        "not verified:  authenticity",
        "source:        matches",
    ] {
        assert!(out.contains(want), "{want:?} missing in:\n{out}");
    }
    // The wrong source is named as such (exit status 1).
    let o = Command::new(BIN)
        .arg("inspect")
        .arg(&so)
        .arg("--source")
        .arg(&attacker)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("DOES NOT MATCH"));
}
