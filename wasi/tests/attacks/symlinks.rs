//! `path_symlink` with an absolute target: the guest could never follow
//! such a link (every lookup is confined to its preopen), but a host tool
//! working on the preopened directory could, and be led anywhere. Now it
//! is refused with `ENOTCAPABLE`, like an absolute path, and nothing is
//! created. Relative targets stay allowed (they may climb out with `..`,
//! and any relative target can be made to by a later rename); following
//! one from the guest is confined.

use crate::common::*;
use myriad_wasi::{Errno, WasiCtx, WasiFunc};

#[test]
fn absolute_symlink_targets_are_refused() {
    let s = Scratch::new("attack-symlink");
    let mut g = Guest::new(
        WasiCtx::builder()
            .preopen_dir(s.sandbox(), ".")
            .unwrap()
            .build()
            .unwrap(),
    );
    let secret = s.root.join("secret.txt");
    for target in ["/etc/passwd", "/", "//etc", "/.", secret.to_str().unwrap()] {
        assert_eq!(
            g.symlink(target, 3, "link"),
            e(Errno::NOTCAPABLE),
            "target {target}"
        );
        assert!(
            std::fs::symlink_metadata(s.sandbox().join("link")).is_err(),
            "a link to {target} was made"
        );
    }
    // Relative targets are made; following them stays inside.
    assert_eq!(g.symlink("../secret.txt", 3, "up"), 0);
    assert_eq!(
        std::fs::read_link(s.sandbox().join("up")).unwrap(),
        std::path::Path::new("../secret.txt")
    );
    assert_eq!(g.open(3, FOLLOW, "up", 0, RO, 0), Err(e(Errno::NOTCAPABLE)));
    assert_eq!(g.symlink("x/../y", 3, "inside"), 0);
    assert_eq!(
        g.path_call(WasiFunc::PathUnlinkFile, 3, "inside"),
        0,
        "removable"
    );
}
