//! Path arguments: the host copied the whole guest-given length into a
//! host vector (and then a C string) before the kernel said
//! `ENAMETOOLONG`, so a 1 GiB "path" cost 2 GiB of host memory. Now a
//! path longer than `MAX_PATH` (4096, Linux's `PATH_MAX`) is
//! `ENAMETOOLONG` before anything is copied or scanned.

use crate::common::*;
use crate::{timed, QUICK};
use myriad_wasi::memory::MAX_PATH;
use myriad_wasi::{Errno, WasiCtx, WasiFunc};

/// Every `path_*` function with `path`/`len` in each of its path
/// arguments in turn (the others a valid "x").
fn calls(path: u64, len: u64, x: u64) -> Vec<(WasiFunc, Vec<u64>)> {
    use WasiFunc as F;
    let out = 64u64;
    let mut v = vec![
        (F::PathCreateDirectory, vec![3, path, len]),
        (F::PathRemoveDirectory, vec![3, path, len]),
        (F::PathUnlinkFile, vec![3, path, len]),
        (F::PathFilestatGet, vec![3, 1, path, len, out]),
        (F::PathFilestatSetTimes, vec![3, 1, path, len, 0, 0, 0]),
        (F::PathOpen, vec![3, 1, path, len, 0, RO, RO, 0, out]),
        (F::PathReadlink, vec![3, path, len, out, 16, out]),
        (F::PathSymlink, vec![path, len, 3, x, 1]),
        (F::PathSymlink, vec![x, 1, 3, path, len]),
    ];
    for (a, b) in [((path, len), (x, 1)), ((x, 1), (path, len))] {
        v.push((F::PathRename, vec![3, a.0, a.1, 3, b.0, b.1]));
        v.push((F::PathLink, vec![3, 0, a.0, a.1, 3, b.0, b.1]));
    }
    v
}

#[test]
fn paths_longer_than_path_max_are_refused_before_any_copy() {
    assert_eq!(MAX_PATH, 4096);
    let s = Scratch::new("attack-paths");
    std::fs::write(s.sandbox().join("x"), b"x").unwrap();
    let mut g = Guest::new(
        WasiCtx::builder()
            .preopen_dir(s.sandbox(), ".")
            .unwrap()
            .build()
            .unwrap(),
    );
    // 1 GiB of memory, untouched but for "x" at 128 and 8 KiB of 'a' at
    // 64 KiB: the old code took the 1 GiB "path" (and said EILSEQ at the
    // first zero).
    g.mem = vec![0u8; 1 << 30];
    let x_at = 128;
    g.mem[x_at as usize] = b'x';
    g.mem[65536..65536 + 8192].fill(b'a');
    for len in [MAX_PATH as u64 + 1, 8192, (1 << 30) - 65536] {
        for (f, args) in calls(65536, len, x_at) {
            let (r, took) = timed(|| g.errno(f, &args));
            assert_eq!(r, e(Errno::NAMETOOLONG), "{f:?} with {len} bytes");
            assert!(took < QUICK, "{f:?} took {took:?}");
        }
    }
    // A path within the bound reaches the kernel as before.
    let long = format!("{}/y", "d/".repeat(1000));
    g.mem[65536..65536 + long.len()].copy_from_slice(long.as_bytes());
    assert!(long.len() <= MAX_PATH);
    assert_eq!(
        g.errno(
            WasiFunc::PathCreateDirectory,
            &[3, 65536, long.len() as u64]
        ),
        e(Errno::NOENT)
    );
    // Nothing was made in the sandbox.
    let names: Vec<_> = std::fs::read_dir(s.sandbox())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["x"]);
}
