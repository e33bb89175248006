//! Escape attempts from a preopened directory. The scratch tree has
//! `secret.txt` next to the sandbox and `outside/secret.txt` beside it;
//! none of them may be reached, created, changed or described from inside.

mod common;

use common::*;
use myriad_wasi::{Errno, WasiCtx, WasiFunc};
use std::os::unix::fs::symlink;

const CAP: u16 = 76;

fn sandboxed(s: &Scratch) -> Guest {
    Guest::new(
        WasiCtx::builder()
            .preopen_dir(s.sandbox(), ".")
            .unwrap()
            .build()
            .unwrap(),
    )
}

/// A sandbox with a subdirectory and symlinks planted by the host:
/// `out_abs` -> the outside secret (absolute), `out_rel` -> `../secret.txt`,
/// `up` -> `..`, `sub/upup` -> `../..`, `root` -> `/`, `in_rel` ->
/// `sub/inner.txt` (fine), `proc` -> `/proc/self/root` (magic link path).
fn planted(name: &str) -> Scratch {
    let s = Scratch::new(name);
    let sb = s.sandbox();
    std::fs::create_dir(sb.join("sub")).unwrap();
    std::fs::write(sb.join("sub/inner.txt"), b"inner").unwrap();
    symlink(s.root.join("outside/secret.txt"), sb.join("out_abs")).unwrap();
    symlink("../secret.txt", sb.join("out_rel")).unwrap();
    symlink("..", sb.join("up")).unwrap();
    symlink("../..", sb.join("sub/upup")).unwrap();
    symlink("/", sb.join("root")).unwrap();
    symlink("sub/inner.txt", sb.join("in_rel")).unwrap();
    symlink("/proc/self/root", sb.join("proc")).unwrap();
    s
}

const ESCAPES: &[&str] = &[
    "..",
    "../secret.txt",
    "../outside/secret.txt",
    "sub/../../secret.txt",
    "sub/../sub/../../secret.txt",
    "/etc/passwd",
    "/",
    "//etc/passwd",
    "out_abs",
    "out_rel",
    "up/secret.txt",
    "up",
    "sub/upup/outside/secret.txt",
    "root/etc/passwd",
    "proc/etc/passwd",
    "./../secret.txt",
];

#[test]
fn path_open_cannot_leave() {
    let s = planted("open");
    let mut g = sandboxed(&s);
    for path in ESCAPES {
        for lookup in [0, FOLLOW] {
            let r = g.open(3, lookup, path, 0, RO, 0);
            assert!(r.is_err(), "opened {path:?} (lookup {lookup})");
            let err = r.unwrap_err();
            // Without FOLLOW a final symlink is ELOOP, as with O_NOFOLLOW.
            assert!(
                err == CAP || (lookup == 0 && err == e(Errno::LOOP)),
                "{path:?} lookup {lookup}: errno {err}"
            );
        }
        // Creating through an escape fails too and creates nothing.
        assert!(g
            .open(3, FOLLOW, &format!("{path}/new.txt"), O_CREAT, RW, 0)
            .is_err());
    }
    assert_eq!(g.open(3, FOLLOW, "../made.txt", O_CREAT, RW, 0), Err(CAP));
    assert_eq!(g.open(3, FOLLOW, "up/made.txt", O_CREAT, RW, 0), Err(CAP));
    assert!(!s.root.join("made.txt").exists());
    // Inside links and ".." that stays inside work.
    let fd = g.open(3, FOLLOW, "in_rel", 0, RO, 0).unwrap();
    assert_eq!(g.read_fd(fd, 10).unwrap(), b"inner");
    let fd = g
        .open(3, FOLLOW, "sub/../sub/./inner.txt", 0, RO, 0)
        .unwrap();
    assert_eq!(g.read_fd(fd, 10).unwrap(), b"inner");
    assert_eq!(g.open(3, 0, "in_rel", 0, RO, 0), Err(e(Errno::LOOP)));
    // The sandbox root itself can be opened as "." and listed.
    assert!(g.open(3, FOLLOW, ".", O_DIRECTORY, DIR_RIGHTS, 0).is_ok());
}

#[test]
fn opened_subdirectory_is_its_own_sandbox() {
    let s = planted("subdir");
    let mut g = sandboxed(&s);
    let sub = g
        .open(
            3,
            FOLLOW,
            "sub",
            O_DIRECTORY,
            DIR_RIGHTS | (1 << 10) | (1 << 9),
            0,
        )
        .unwrap();
    // ".." from sub is the sandbox root, but a descriptor confines lookups
    // to what lies beneath it, as openat2 does.
    assert_eq!(g.open(sub, FOLLOW, "../in_rel", 0, RO, 0), Err(CAP));
    assert_eq!(g.open(sub, FOLLOW, "upup", 0, RO, 0), Err(CAP));
    assert!(g.open(sub, FOLLOW, "inner.txt", 0, RO, 0).is_ok());
}

#[test]
fn stat_cannot_look_outside() {
    let s = planted("stat");
    let mut g = sandboxed(&s);
    for path in ESCAPES {
        let r = g.stat(3, FOLLOW, path);
        assert_eq!(r.as_ref().map(|_| ()), Err(&CAP), "stat follow {path:?}");
    }
    // Without FOLLOW a planted link is described as a link (its own
    // metadata lives inside), but ".." paths are still refused.
    assert_eq!(filetype(&g.stat(3, 0, "out_abs").unwrap()), 7);
    assert_eq!(filetype(&g.stat(3, 0, "up").unwrap()), 7);
    for path in [
        "..",
        "../secret.txt",
        "sub/../..",
        "up/secret.txt",
        "/etc",
        "up/",
        "root/etc",
    ] {
        assert_eq!(
            g.stat(3, 0, path).map(|_| ()),
            Err(CAP),
            "stat nofollow {path:?}"
        );
    }
    // Readlink shows link text, which is harmless.
    let p = g.put(b"out_rel");
    let buf = g.alloc(64);
    let used = g.alloc(4);
    assert_eq!(
        g.errno(
            WasiFunc::PathReadlink,
            &[3, p.into(), 7, buf.into(), 64, used.into()]
        ),
        0
    );
    assert_eq!(g.bytes_at(buf, g.u32_at(used) as usize), b"../secret.txt");
    // Truncated to the buffer.
    assert_eq!(
        g.errno(
            WasiFunc::PathReadlink,
            &[3, p.into(), 7, buf.into(), 3, used.into()]
        ),
        0
    );
    assert_eq!(g.u32_at(used), 3);
    let p = g.put(b"up/out_rel");
    assert_eq!(
        g.errno(
            WasiFunc::PathReadlink,
            &[3, p.into(), 10, buf.into(), 64, used.into()]
        ),
        CAP
    );
    // Setting times outside.
    let p = g.put(b"../secret.txt");
    assert_eq!(
        g.errno(
            WasiFunc::PathFilestatSetTimes,
            &[3, 0, p.into(), 13, 0, 0, 2 | 8]
        ),
        CAP
    );
    let p = g.put(b"up");
    assert_eq!(
        g.errno(
            WasiFunc::PathFilestatSetTimes,
            &[3, 1, p.into(), 2, 0, 0, 2 | 8]
        ),
        CAP
    );
    let p = g.put(b"..");
    assert_eq!(
        g.errno(
            WasiFunc::PathFilestatSetTimes,
            &[3, 0, p.into(), 2, 0, 0, 2 | 8]
        ),
        CAP
    );
}

#[test]
fn mutations_cannot_reach_outside() {
    let s = planted("mutate");
    let mut g = sandboxed(&s);
    let outside_before: Vec<_> = std::fs::read_dir(&s.root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    for dir in [
        "..",
        "up",
        "sub/upup",
        "root/tmp",
        "out_abs",
        "/tmp",
        "sub/../..",
    ] {
        let p = format!("{dir}/x");
        assert_eq!(
            g.path_call(WasiFunc::PathCreateDirectory, 3, &p),
            CAP,
            "mkdir {p}"
        );
        assert_eq!(g.symlink("sub", 3, &p), CAP, "symlink {p}");
    }
    for victim in [
        "../secret.txt",
        "up/secret.txt",
        "sub/upup/secret.txt",
        "/etc/passwd",
        "../outside/secret.txt",
    ] {
        assert_eq!(
            g.path_call(WasiFunc::PathUnlinkFile, 3, victim),
            CAP,
            "unlink {victim}"
        );
        assert_eq!(
            g.path_call(WasiFunc::PathRemoveDirectory, 3, victim),
            CAP,
            "rmdir {victim}"
        );
        // Rename out of and into the sandbox.
        assert_eq!(g.rename(3, victim, "stolen.txt"), CAP, "rename {victim} in");
        assert_eq!(
            g.rename(3, "sub/inner.txt", victim),
            CAP,
            "rename out to {victim}"
        );
        let a = g.put(victim.as_bytes());
        let b = g.put(b"hard.txt");
        assert_eq!(
            g.errno(
                WasiFunc::PathLink,
                &[3, 0, a.into(), victim.len() as u64, 3, b.into(), 8]
            ),
            CAP,
            "link {victim}"
        );
    }
    assert_eq!(g.path_call(WasiFunc::PathRemoveDirectory, 3, ".."), CAP);
    assert_eq!(
        g.path_call(WasiFunc::PathRemoveDirectory, 3, "../outside"),
        CAP
    );
    assert_eq!(g.path_call(WasiFunc::PathCreateDirectory, 3, ".."), CAP);
    assert_eq!(g.path_call(WasiFunc::PathUnlinkFile, 3, "up/.."), CAP);
    // A link may be removed or renamed itself (its target is untouched).
    assert_eq!(g.path_call(WasiFunc::PathUnlinkFile, 3, "out_abs"), 0);
    assert_eq!(g.rename(3, "up", "up2"), 0);
    let outside_after: Vec<_> = std::fs::read_dir(&s.root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside_before, outside_after);
    assert_eq!(std::fs::read(s.root.join("secret.txt")).unwrap(), b"secret");
    assert_eq!(
        std::fs::read(s.root.join("outside/secret.txt")).unwrap(),
        b"secret"
    );
    assert_eq!(
        std::fs::read_dir(s.root.join("outside")).unwrap().count(),
        1
    );
}

#[test]
fn guest_made_symlinks_are_confined() {
    let s = Scratch::new("guestlinks");
    let mut g = sandboxed(&s);
    let secret = s.root.join("secret.txt");
    let abs = secret.to_str().unwrap();
    // An absolute target is refused outright (and nothing is created).
    assert_eq!(g.symlink(abs, 3, "a"), CAP);
    assert!(std::fs::symlink_metadata(s.sandbox().join("a")).is_err());
    assert_eq!(g.symlink("../secret.txt", 3, "b"), 0);
    assert_eq!(g.symlink("..", 3, "c"), 0);
    assert_eq!(g.symlink("c/sandbox/c/secret.txt", 3, "d"), 0);
    assert_eq!(g.symlink("loop", 3, "loop"), 0);
    assert_eq!(g.symlink("", 3, "empty"), e(Errno::NOENT));
    for path in ["b", "c/secret.txt", "d"] {
        assert_eq!(g.open(3, FOLLOW, path, 0, RO, 0), Err(CAP), "open {path}");
        assert_eq!(
            g.open(3, FOLLOW, path, O_CREAT | O_TRUNC, RW, 0),
            Err(CAP),
            "create {path}"
        );
    }
    assert_eq!(g.open(3, FOLLOW, "loop", 0, RO, 0), Err(e(Errno::LOOP)));
    assert_eq!(std::fs::read(&secret).unwrap(), b"secret");
}

#[test]
fn symlink_swap_race_stays_inside() {
    // A host thread keeps swapping `sub/target` between a directory inside
    // and a symlink to the outside while the guest opens through it.
    let s = Scratch::new("race");
    let sb = s.sandbox();
    std::fs::create_dir(sb.join("sub")).unwrap();
    std::fs::create_dir(sb.join("real")).unwrap();
    std::fs::write(sb.join("real/secret.txt"), b"inside").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let racer = {
        let stop = stop.clone();
        let sb = sb.clone();
        let outside = s.root.join("outside");
        std::thread::spawn(move || {
            let link = sb.join("sub/target");
            let tmp_in = sb.join("sub/tmp_in");
            let tmp_out = sb.join("sub/tmp_out");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_file(&tmp_in);
                let _ = symlink("../real", &tmp_in);
                let _ = std::fs::rename(&tmp_in, &link);
                let _ = std::fs::remove_file(&tmp_out);
                let _ = symlink(&outside, &tmp_out);
                let _ = std::fs::rename(&tmp_out, &link);
            }
        })
    };
    let mut g = sandboxed(&s);
    let (mut inside, mut refused) = (0, 0);
    for _ in 0..3000 {
        match g.open(3, FOLLOW, "sub/target/secret.txt", 0, RO, 0) {
            Ok(fd) => {
                assert_eq!(
                    g.read_fd(fd, 16).unwrap(),
                    b"inside",
                    "read the outside file"
                );
                assert_eq!(g.errno(WasiFunc::FdClose, &[fd.into()]), 0);
                inside += 1;
            }
            Err(err) => {
                assert!([CAP, e(Errno::NOENT)].contains(&err), "errno {err}");
                refused += 1;
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    racer.join().unwrap();
    assert_eq!(inside + refused, 3000);
}
