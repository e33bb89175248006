//! File and directory operations inside a preopened temporary directory.

mod common;

use common::*;
use myriad_wasi::{Errno, WasiCtx, WasiFunc, WasiOutcome};

fn sandboxed(s: &Scratch) -> Guest {
    Guest::new(
        WasiCtx::builder()
            .preopen_dir(s.sandbox(), ".")
            .unwrap()
            .build()
            .unwrap(),
    )
}

#[test]
fn preopen_is_described() {
    let s = Scratch::new("prestat");
    let mut g = Guest::new(
        WasiCtx::builder()
            .preopen_dir(s.sandbox(), "/data")
            .unwrap()
            .preopen_dir(s.root.join("outside"), ".")
            .unwrap()
            .build()
            .unwrap(),
    );
    let out = g.alloc(8);
    assert_eq!(g.errno(WasiFunc::FdPrestatGet, &[3, out.into()]), 0);
    assert_eq!(g.mem[out as usize], 0, "tag dir");
    assert_eq!(g.u32_at(out + 4), 5);
    let name = g.alloc(8);
    assert_eq!(g.errno(WasiFunc::FdPrestatDirName, &[3, name.into(), 5]), 0);
    assert_eq!(g.bytes_at(name, 5), b"/data");
    assert_eq!(
        g.errno(WasiFunc::FdPrestatDirName, &[3, name.into(), 4]),
        e(Errno::NAMETOOLONG)
    );
    assert_eq!(g.errno(WasiFunc::FdPrestatGet, &[4, out.into()]), 0);
    assert_eq!(g.u32_at(out + 4), 1);
    assert_eq!(
        g.errno(WasiFunc::FdPrestatGet, &[5, out.into()]),
        e(Errno::BADF)
    );
    // The preopen is a directory whose inheriting rights cover files.
    let st = g.alloc(24);
    assert_eq!(g.errno(WasiFunc::FdFdstatGet, &[3, st.into()]), 0);
    assert_eq!(g.mem[st as usize], 3);
    assert_ne!(g.u64_at(st + 8) & (1 << 13), 0, "PATH_OPEN");
    assert_eq!(
        g.u64_at(st + 16) & ((1 << 1) | (1 << 6)),
        (1 << 1) | (1 << 6)
    );
    // A regular file or a missing path cannot be preopened.
    std::fs::write(s.root.join("file"), b"x").unwrap();
    assert!(WasiCtx::builder()
        .preopen_dir(s.root.join("file"), "f")
        .is_err());
    assert!(WasiCtx::builder()
        .preopen_dir(s.root.join("missing"), "m")
        .is_err());
}

#[test]
fn create_write_seek_read_close() {
    let s = Scratch::new("rw");
    let mut g = sandboxed(&s);
    let fd = g
        .open(3, FOLLOW, "new.txt", O_CREAT | O_EXCL, RW, 0)
        .unwrap();
    assert_eq!(fd, 4);
    assert_eq!(g.write_fd(fd, b"hello, file"), Ok(11));
    let pos = g.alloc(8);
    assert_eq!(g.errno(WasiFunc::FdTell, &[fd.into(), pos.into()]), 0);
    assert_eq!(g.u64_at(pos), 11);
    assert_eq!(g.errno(WasiFunc::FdSeek, &[fd.into(), 7, 0, pos.into()]), 0);
    assert_eq!(g.u64_at(pos), 7);
    assert_eq!(g.read_fd(fd, 100).unwrap(), b"file");
    assert_eq!(
        g.errno(
            WasiFunc::FdSeek,
            &[fd.into(), (-4i64) as u64, 2, pos.into()]
        ),
        0
    );
    assert_eq!(g.u64_at(pos), 7);
    assert_eq!(
        g.errno(
            WasiFunc::FdSeek,
            &[fd.into(), (-1i64) as u64, 1, pos.into()]
        ),
        0
    );
    assert_eq!(g.u64_at(pos), 6);
    assert_eq!(
        g.errno(
            WasiFunc::FdSeek,
            &[fd.into(), (-100i64) as u64, 0, pos.into()]
        ),
        e(Errno::INVAL)
    );
    assert_eq!(
        g.errno(WasiFunc::FdSeek, &[fd.into(), 0, 3, pos.into()]),
        e(Errno::INVAL)
    );
    // fdstat of a file: regular file with the rights asked for.
    let st = g.alloc(24);
    assert_eq!(g.errno(WasiFunc::FdFdstatGet, &[fd.into(), st.into()]), 0);
    assert_eq!(g.mem[st as usize], 4);
    assert_eq!(g.u64_at(st + 8), RW);
    let fs = g.alloc(64);
    assert_eq!(g.errno(WasiFunc::FdFilestatGet, &[fd.into(), fs.into()]), 0);
    assert_eq!(size(g.bytes_at(fs, 64)), 11);
    assert_eq!(g.errno(WasiFunc::FdSync, &[fd.into()]), 0);
    assert_eq!(g.errno(WasiFunc::FdDatasync, &[fd.into()]), 0);
    assert_eq!(g.errno(WasiFunc::FdClose, &[fd.into()]), 0);
    assert_eq!(g.errno(WasiFunc::FdClose, &[fd.into()]), e(Errno::BADF));
    assert_eq!(
        std::fs::read(s.sandbox().join("new.txt")).unwrap(),
        b"hello, file"
    );
    // O_EXCL on an existing file.
    assert_eq!(
        g.open(3, FOLLOW, "new.txt", O_CREAT | O_EXCL, RW, 0),
        Err(e(Errno::EXIST))
    );
    // Missing without O_CREAT.
    assert_eq!(
        g.open(3, FOLLOW, "nope.txt", 0, RO, 0),
        Err(e(Errno::NOENT))
    );
    // O_TRUNC empties it; the fd number is reused (lowest free).
    let fd = g.open(3, FOLLOW, "new.txt", O_TRUNC, RW, 0).unwrap();
    assert_eq!(fd, 4);
    assert_eq!(g.errno(WasiFunc::FdFilestatGet, &[fd.into(), fs.into()]), 0);
    assert_eq!(size(g.bytes_at(fs, 64)), 0);
}

#[test]
fn rights_limit_what_an_fd_can_do() {
    let s = Scratch::new("rights");
    std::fs::write(s.sandbox().join("ro.txt"), b"read only").unwrap();
    let mut g = sandboxed(&s);
    let fd = g.open(3, FOLLOW, "ro.txt", 0, RO, 0).unwrap();
    assert_eq!(g.write_fd(fd, b"x"), Err(e(Errno::NOTCAPABLE)));
    assert_eq!(
        g.errno(WasiFunc::FdFilestatSetSize, &[fd.into(), 0]),
        e(Errno::NOTCAPABLE)
    );
    assert_eq!(g.read_fd(fd, 4).unwrap(), b"read");
    // Rights can be dropped, not regained.
    assert_eq!(
        g.errno(WasiFunc::FdFdstatSetRights, &[fd.into(), 1 << 21, 0]),
        0
    );
    assert_eq!(g.read_fd(fd, 4), Err(e(Errno::NOTCAPABLE)));
    assert_eq!(
        g.errno(WasiFunc::FdFdstatSetRights, &[fd.into(), RO, 0]),
        e(Errno::NOTCAPABLE)
    );
    // A write-only file opened with FD_WRITE only.
    let wo = g.open(3, FOLLOW, "wo.txt", O_CREAT, 1 << 6, 0).unwrap();
    assert_eq!(g.write_fd(wo, b"abc"), Ok(3));
    assert_eq!(g.read_fd(wo, 4), Err(e(Errno::NOTCAPABLE)));
    // path_* on a file fd is ENOTDIR.
    assert_eq!(g.open(fd, 0, "x", 0, RO, 0), Err(e(Errno::NOTDIR)));
    assert_eq!(
        g.path_call(WasiFunc::PathCreateDirectory, wo, "d"),
        e(Errno::NOTDIR)
    );
}

#[test]
fn pread_pwrite_append_truncate() {
    let s = Scratch::new("prw");
    let mut g = sandboxed(&s);
    let fd = g.open(3, FOLLOW, "p.txt", O_CREAT, RW, 0).unwrap();
    assert_eq!(g.write_fd(fd, b"0123456789"), Ok(10));
    let buf = g.put(b"AB");
    let iov = g.alloc(8);
    g.mem[iov as usize..iov as usize + 4].copy_from_slice(&buf.to_le_bytes());
    g.mem[iov as usize + 4..iov as usize + 8].copy_from_slice(&2u32.to_le_bytes());
    let n = g.alloc(4);
    assert_eq!(
        g.errno(WasiFunc::FdPwrite, &[fd.into(), iov.into(), 1, 3, n.into()]),
        0
    );
    assert_eq!(g.u32_at(n), 2);
    assert_eq!(
        g.errno(WasiFunc::FdPread, &[fd.into(), iov.into(), 1, 8, n.into()]),
        0
    );
    assert_eq!((g.u32_at(n), g.bytes_at(buf, 2)), (2, &b"89"[..]));
    let pos = g.alloc(8);
    assert_eq!(g.errno(WasiFunc::FdTell, &[fd.into(), pos.into()]), 0);
    assert_eq!(g.u64_at(pos), 10, "pread/pwrite keep the offset");
    assert_eq!(g.errno(WasiFunc::FdFilestatSetSize, &[fd.into(), 4]), 0);
    assert_eq!(std::fs::read(s.sandbox().join("p.txt")).unwrap(), b"012A");
    assert_eq!(g.errno(WasiFunc::FdAllocate, &[fd.into(), 0, 100]), 0);
    assert_eq!(
        std::fs::metadata(s.sandbox().join("p.txt")).unwrap().len(),
        100
    );
    // A long allocation works in parts (one call of 16 GiB held a worker
    // 16.6 ms): the guest sees one call. The file keeps its size until the
    // last part, so a call that fails part-way leaves it as it was.
    let big = 150u64 << 20;
    let args = [u64::from(fd), 0, big];
    let mut out = g.call(WasiFunc::FdAllocate, &args);
    let mut parts = 1;
    while let WasiOutcome::Continue(c) = out {
        assert_eq!(
            std::fs::metadata(s.sandbox().join("p.txt")).unwrap().len(),
            100,
            "the size moves at the last part only"
        );
        out = g.ctx.call_again(WasiFunc::FdAllocate, &mut g.mem, &args, c);
        parts += 1;
    }
    assert_eq!(out, WasiOutcome::Return(0));
    assert_eq!(parts, big.div_ceil(myriad_wasi::ALLOCATE_PART));
    assert_eq!(
        std::fs::metadata(s.sandbox().join("p.txt")).unwrap().len(),
        big
    );
    assert_eq!(g.errno(WasiFunc::FdFilestatSetSize, &[fd.into(), 100]), 0);
    // Advice is a hint; WILLNEED and DONTNEED (work in proportion to the
    // range) are taken and ignored.
    assert_eq!(g.errno(WasiFunc::FdAdvise, &[fd.into(), 0, 1 << 40, 3]), 0);
    assert_eq!(g.errno(WasiFunc::FdAdvise, &[fd.into(), 0, 1 << 40, 4]), 0);
    assert_eq!(g.errno(WasiFunc::FdAdvise, &[fd.into(), 0, 0, 1]), 0);
    assert_eq!(
        g.errno(WasiFunc::FdAdvise, &[fd.into(), 0, 0, 6]),
        e(Errno::INVAL)
    );
    // APPEND via fdflags at open and via fdstat_set_flags.
    let a = g.open(3, FOLLOW, "p.txt", O_TRUNC, RW, 1).unwrap();
    assert_eq!(g.write_fd(a, b"one"), Ok(3));
    assert_eq!(g.errno(WasiFunc::FdSeek, &[a.into(), 0, 0, pos.into()]), 0);
    assert_eq!(g.write_fd(a, b"two"), Ok(3));
    assert_eq!(std::fs::read(s.sandbox().join("p.txt")).unwrap(), b"onetwo");
    let st = g.alloc(24);
    assert_eq!(g.errno(WasiFunc::FdFdstatGet, &[a.into(), st.into()]), 0);
    assert_eq!(g.mem[st as usize + 2], 1);
    assert_eq!(g.errno(WasiFunc::FdFdstatSetFlags, &[a.into(), 0]), 0);
    assert_eq!(g.errno(WasiFunc::FdFdstatGet, &[a.into(), st.into()]), 0);
    assert_eq!(g.mem[st as usize + 2], 0);
    assert_eq!(
        g.errno(WasiFunc::FdFdstatSetFlags, &[a.into(), 1 << 4]),
        e(Errno::NOTSUP)
    );
    // pread on stdio has no offset.
    assert_eq!(
        g.errno(WasiFunc::FdPread, &[0, iov.into(), 1, 0, n.into()]),
        e(Errno::SPIPE)
    );
}

#[test]
fn directories_stat_rename_unlink() {
    let s = Scratch::new("dirs");
    let mut g = sandboxed(&s);
    assert_eq!(g.path_call(WasiFunc::PathCreateDirectory, 3, "d"), 0);
    assert_eq!(
        g.path_call(WasiFunc::PathCreateDirectory, 3, "d"),
        e(Errno::EXIST)
    );
    assert_eq!(g.path_call(WasiFunc::PathCreateDirectory, 3, "d/e/"), 0);
    assert!(s.sandbox().join("d/e").is_dir());
    let fd = g.open(3, FOLLOW, "d/f.txt", O_CREAT, RW, 0).unwrap();
    assert_eq!(g.write_fd(fd, b"12345"), Ok(5));
    let st = g.stat(3, FOLLOW, "d/f.txt").unwrap();
    assert_eq!((filetype(&st), size(&st)), (4, 5));
    assert_eq!(filetype(&g.stat(3, 0, "d").unwrap()), 3);
    assert_eq!(filetype(&g.stat(3, 0, "d/e/..").unwrap()), 3);
    assert_eq!(filetype(&g.stat(3, 0, ".").unwrap()), 3);
    assert_eq!(g.stat(3, 0, "d/f.txt/"), Err(e(Errno::NOTDIR)));
    assert_eq!(g.stat(3, 0, ""), Err(e(Errno::NOENT)));
    // Rename a file, then a directory.
    assert_eq!(g.rename(3, "d/f.txt", "g.txt"), 0);
    assert_eq!(g.stat(3, 0, "d/f.txt"), Err(e(Errno::NOENT)));
    assert_eq!(size(&g.stat(3, 0, "g.txt").unwrap()), 5);
    assert_eq!(g.rename(3, "d/e", "e2"), 0);
    assert_eq!(g.rename(3, "missing", "x"), e(Errno::NOENT));
    assert_eq!(g.rename(3, "g.txt/", "x"), e(Errno::NOTDIR));
    // The open fd still works after its file moved.
    assert_eq!(g.write_fd(fd, b"6"), Ok(1));
    // Unlink and rmdir, with the errors POSIX gives.
    assert_eq!(
        g.path_call(WasiFunc::PathUnlinkFile, 3, "e2"),
        e(Errno::ISDIR)
    );
    assert_eq!(
        g.path_call(WasiFunc::PathUnlinkFile, 3, "g.txt/"),
        e(Errno::NOTDIR)
    );
    assert_eq!(
        g.path_call(WasiFunc::PathRemoveDirectory, 3, "g.txt"),
        e(Errno::NOTDIR)
    );
    assert_eq!(g.path_call(WasiFunc::PathUnlinkFile, 3, "g.txt"), 0);
    assert_eq!(
        g.path_call(WasiFunc::PathUnlinkFile, 3, "g.txt"),
        e(Errno::NOENT)
    );
    assert_eq!(g.path_call(WasiFunc::PathCreateDirectory, 3, "e2/inner"), 0);
    assert_eq!(
        g.path_call(WasiFunc::PathRemoveDirectory, 3, "e2"),
        e(Errno::NOTEMPTY)
    );
    assert_eq!(g.path_call(WasiFunc::PathRemoveDirectory, 3, "e2/inner"), 0);
    assert_eq!(g.path_call(WasiFunc::PathRemoveDirectory, 3, "e2/"), 0);
    assert_eq!(
        g.path_call(WasiFunc::PathRemoveDirectory, 3, "."),
        e(Errno::INVAL)
    );
    assert_eq!(
        g.path_call(WasiFunc::PathUnlinkFile, 3, "."),
        e(Errno::ISDIR)
    );
    assert!(s.sandbox().is_dir());
    // Hard links.
    std::fs::write(s.sandbox().join("src.txt"), b"link me").unwrap();
    let a = g.put(b"src.txt");
    let b = g.put(b"d/dst.txt");
    assert_eq!(
        g.errno(WasiFunc::PathLink, &[3, 0, a.into(), 7, 3, b.into(), 9]),
        0
    );
    assert_eq!(
        std::fs::read(s.sandbox().join("d/dst.txt")).unwrap(),
        b"link me"
    );
    assert_eq!(
        g.errno(WasiFunc::PathLink, &[3, 1, a.into(), 7, 3, b.into(), 9]),
        e(Errno::NOTSUP)
    );
}

#[test]
fn set_times() {
    let s = Scratch::new("times");
    std::fs::write(s.sandbox().join("t.txt"), b"x").unwrap();
    let mut g = sandboxed(&s);
    let p = g.put(b"t.txt");
    let t = 1_000_000_000u64 * 1_600_000_000 + 123;
    // ATIM | MTIM with explicit values.
    assert_eq!(
        g.errno(
            WasiFunc::PathFilestatSetTimes,
            &[3, 0, p.into(), 5, t, t + 1, 1 | 4]
        ),
        0
    );
    let st = g.stat(3, 0, "t.txt").unwrap();
    assert_eq!(u64::from_le_bytes(st[40..48].try_into().unwrap()), t);
    assert_eq!(u64::from_le_bytes(st[48..56].try_into().unwrap()), t + 1);
    // Following variant, and via an fd.
    assert_eq!(
        g.errno(
            WasiFunc::PathFilestatSetTimes,
            &[3, 1, p.into(), 5, 0, t + 5, 4]
        ),
        0
    );
    assert_eq!(
        u64::from_le_bytes(g.stat(3, 0, "t.txt").unwrap()[48..56].try_into().unwrap()),
        t + 5
    );
    let fd = g.open(3, FOLLOW, "t.txt", 0, RW | (1 << 23), 0).unwrap();
    assert_eq!(
        g.errno(WasiFunc::FdFilestatSetTimes, &[fd.into(), 0, t + 9, 4]),
        0
    );
    assert_eq!(
        u64::from_le_bytes(g.stat(3, 0, "t.txt").unwrap()[48..56].try_into().unwrap()),
        t + 9
    );
    assert_eq!(
        g.errno(WasiFunc::FdFilestatSetTimes, &[fd.into(), 0, 0, 4 | 8]),
        e(Errno::INVAL)
    );
    assert_eq!(
        g.errno(WasiFunc::FdFilestatSetTimes, &[fd.into(), 0, 0, 8]),
        0
    );
}

/// Parses `fd_readdir` output into (next cookie, name, type).
fn parse_dirents(buf: &[u8]) -> Vec<(u64, String, u8)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 24 <= buf.len() {
        let next = u64::from_le_bytes(buf[at..at + 8].try_into().unwrap());
        let len = u32::from_le_bytes(buf[at + 16..at + 20].try_into().unwrap()) as usize;
        let ty = buf[at + 20];
        if at + 24 + len > buf.len() {
            break;
        }
        out.push((
            next,
            String::from_utf8(buf[at + 24..at + 24 + len].to_vec()).unwrap(),
            ty,
        ));
        at += 24 + len;
    }
    out
}

#[test]
fn readdir_lists_with_cookies() {
    let s = Scratch::new("readdir");
    let mut names: Vec<String> = (0..20).map(|i| format!("file{i:02}.txt")).collect();
    for n in &names {
        std::fs::write(s.sandbox().join(n), b"").unwrap();
    }
    std::fs::create_dir(s.sandbox().join("sub")).unwrap();
    names.push("sub".into());
    let mut g = sandboxed(&s);
    // Read the preopen with a small buffer, continuing from cookies.
    let buf = g.alloc(100);
    let used = g.alloc(4);
    let mut cookie = 0u64;
    let mut seen = Vec::new();
    loop {
        assert_eq!(
            g.errno(
                WasiFunc::FdReaddir,
                &[3, buf.into(), 100, cookie, used.into()]
            ),
            0
        );
        let n = g.u32_at(used) as usize;
        let ents = parse_dirents(g.bytes_at(buf, n));
        if n < 100 && ents.is_empty() {
            break;
        }
        assert!(
            !ents.is_empty(),
            "a 100-byte buffer holds at least one entry"
        );
        for (next, name, ty) in ents {
            cookie = next;
            seen.push((name, ty));
        }
        if n < 100 {
            break;
        }
    }
    let mut got: Vec<String> = seen
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| n != "." && n != "..")
        .collect();
    got.sort();
    names.sort();
    assert_eq!(got, names);
    assert!(seen.iter().any(|(n, t)| n == "sub" && *t == 3));
    assert!(seen.iter().any(|(n, t)| n == "file00.txt" && *t == 4));
    // A directory opened with path_open lists too; a file does not.
    let d = g
        .open(3, FOLLOW, "sub", O_DIRECTORY, DIR_RIGHTS, 0)
        .unwrap();
    assert_eq!(
        g.errno(
            WasiFunc::FdReaddir,
            &[d.into(), buf.into(), 100, 0, used.into()]
        ),
        0
    );
    let ents = parse_dirents(g.bytes_at(buf, g.u32_at(used) as usize));
    let mut sub: Vec<_> = ents.iter().map(|(_, n, _)| n.as_str()).collect();
    sub.sort();
    assert_eq!(sub, [".", ".."]);
    let st = g.alloc(24);
    assert_eq!(g.errno(WasiFunc::FdFdstatGet, &[d.into(), st.into()]), 0);
    assert_eq!(g.mem[st as usize], 3);
    let f = g
        .open(3, FOLLOW, "file00.txt", 0, RO | (1 << 14), 0)
        .unwrap();
    assert_eq!(
        g.errno(
            WasiFunc::FdReaddir,
            &[f.into(), buf.into(), 100, 0, used.into()]
        ),
        e(Errno::NOTCAPABLE)
    );
    assert_eq!(
        g.open(3, FOLLOW, "file00.txt", O_DIRECTORY, DIR_RIGHTS, 0),
        Err(e(Errno::NOTDIR))
    );
    // A cookie past the end gives nothing.
    assert_eq!(
        g.errno(
            WasiFunc::FdReaddir,
            &[3, buf.into(), 100, 1000, used.into()]
        ),
        0
    );
    assert_eq!(g.u32_at(used), 0);
    // Reading a directory fd as a file fails.
    assert_eq!(g.read_fd(d, 10), Err(e(Errno::NOTCAPABLE)));
}

#[test]
fn renumber_moves_and_closes() {
    let s = Scratch::new("renumber");
    let mut g = sandboxed(&s);
    let a = g.open(3, FOLLOW, "a.txt", O_CREAT, RW, 0).unwrap();
    let b = g.open(3, FOLLOW, "b.txt", O_CREAT, RW, 0).unwrap();
    assert_eq!((a, b), (4, 5));
    assert_eq!(g.errno(WasiFunc::FdRenumber, &[a.into(), b.into()]), 0);
    assert_eq!(g.write_fd(b, b"to a"), Ok(4));
    assert_eq!(g.write_fd(a, b"x"), Err(e(Errno::BADF)));
    assert_eq!(std::fs::read(s.sandbox().join("a.txt")).unwrap(), b"to a");
    assert_eq!(std::fs::read(s.sandbox().join("b.txt")).unwrap(), b"");
    assert_eq!(g.errno(WasiFunc::FdRenumber, &[b.into(), b.into()]), 0);
    assert_eq!(g.ctx.open_fds(), 5);
}

#[test]
fn too_many_open_files_is_emfile() {
    let s = Scratch::new("emfile");
    std::fs::write(s.sandbox().join("f"), b"").unwrap();
    let mut g = sandboxed(&s);
    let mut last = Ok(0);
    for _ in 0..myriad_wasi::MAX_FDS {
        last = g.open(3, FOLLOW, "f", 0, RO, 0);
        if last.is_err() {
            break;
        }
    }
    assert_eq!(last, Err(e(Errno::MFILE)));
    assert_eq!(g.ctx.open_fds(), myriad_wasi::MAX_FDS);
}
