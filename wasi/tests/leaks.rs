//! Host descriptors are closed on fd_close and when a context is dropped.
//! Alone in its test binary so that no other test's files disturb the count.

mod common;

use common::*;
use myriad_wasi::{WasiCtx, WasiFunc};

fn sandboxed(s: &Scratch) -> Guest {
    Guest::new(
        WasiCtx::builder()
            .preopen_dir(s.sandbox(), ".")
            .unwrap()
            .build()
            .unwrap(),
    )
}

/// Counts this process's open host descriptors.
fn host_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn no_host_descriptor_leaks() {
    let s = Scratch::new("leaks");
    std::fs::create_dir(s.sandbox().join("d")).unwrap();
    // This is the only test in its binary, so the count is exact but for
    // the test harness's own threads.
    let before = host_fds();
    for _ in 0..200 {
        let mut g = sandboxed(&s);
        for i in 0..5 {
            g.open(3, FOLLOW, &format!("d/f{i}"), O_CREAT, RW, 0)
                .unwrap();
        }
        let d = g.open(3, FOLLOW, "d", O_DIRECTORY, DIR_RIGHTS, 0).unwrap();
        let buf = g.alloc(256);
        let used = g.alloc(4);
        assert_eq!(
            g.errno(
                WasiFunc::FdReaddir,
                &[d.into(), buf.into(), 256, 0, used.into()]
            ),
            0
        );
        assert_eq!(g.errno(WasiFunc::FdClose, &[d.into()]), 0);
        assert_eq!(g.stat(3, 0, "d/f1").map(|s| filetype(&s)), Ok(4));
        assert_eq!(g.path_call(WasiFunc::PathUnlinkFile, 3, "d/f0"), 0);
        // Dropping the guest closes the rest.
    }
    let after = host_fds();
    assert!(
        after <= before + 2,
        "host descriptors leaked: {before} -> {after}"
    );
}
