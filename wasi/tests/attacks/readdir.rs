//! `fd_readdir`: the host read the whole directory into a host vector on
//! every call from cookie 0, whatever the guest's buffer (even an empty
//! one), and serialized it into another; a guest that made a large
//! directory could make each call read all of it again. Now nothing of the
//! directory is kept on the host, and a call reads at most
//! `ENTRIES_PER_PART` (256) entries per part straight into the guest's
//! buffer, continuing in further parts (`WasiOutcome::Continue`) while it
//! has room: the work of one part is bounded whatever the directory's
//! size, the cookie or the buffer length.

use crate::common::*;
use crate::{get_u32, timed};
use myriad_wasi::dir::ENTRIES_PER_PART;
use myriad_wasi::{WasiCtx, WasiFunc, WasiOutcome};
use std::time::Duration;

const FILES: usize = 3000;

fn big_dir(name: &str) -> (Scratch, Guest) {
    let s = Scratch::new(name);
    for i in 0..FILES {
        std::fs::write(s.sandbox().join(format!("f{i:04}")), b"").unwrap();
    }
    let mut g = Guest::new(
        WasiCtx::builder()
            .preopen_dir(s.sandbox(), ".")
            .unwrap()
            .build()
            .unwrap(),
    );
    g.mem.resize(4 << 20, 0);
    (s, g)
}

/// `fd_readdir(3, buf, len, cookie)` to the end: the bytes used, the
/// number of parts, and the longest part.
fn readdir(g: &mut Guest, buf: u32, len: u32, cookie: u64) -> (usize, usize, Duration) {
    let used = g.alloc(4);
    let args = [3, buf.into(), len.into(), cookie, used.into()];
    let (mut out, mut longest) = timed(|| g.ctx.call(WasiFunc::FdReaddir, &mut g.mem, &args));
    let mut parts = 1;
    while let WasiOutcome::Continue(c) = out {
        let (o, took) = timed(|| g.ctx.call_again(WasiFunc::FdReaddir, &mut g.mem, &args, c));
        longest = longest.max(took);
        out = o;
        parts += 1;
    }
    assert_eq!(out, WasiOutcome::Return(0));
    (get_u32(&g.mem, used as usize) as usize, parts, longest)
}

/// (cookie, name) of each whole dirent in `b`.
fn parse(b: &[u8]) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 24 <= b.len() {
        let next = u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        let len = get_u32(b, at + 16) as usize;
        if at + 24 + len > b.len() {
            break;
        }
        out.push((
            next,
            String::from_utf8(b[at + 24..at + 24 + len].to_vec()).unwrap(),
        ));
        at += 24 + len;
    }
    out
}

#[test]
fn a_big_directory_is_read_in_bounded_parts() {
    let (_s, mut g) = big_dir("attack-readdir");
    let len = 2u32 << 20;
    let buf = g.alloc(len);
    let (used, parts, longest) = readdir(&mut g, buf, len, 0);
    eprintln!(
        "fd_readdir of {} entries: {parts} parts, longest {longest:?}",
        FILES + 2
    );
    assert!(used < len as usize, "the whole directory fits");
    let ents = parse(g.bytes_at(buf, used));
    assert_eq!(ents.len(), FILES + 2, "every entry, . and .. included");
    let cookies: Vec<u64> = ents.iter().map(|e| e.0).collect();
    assert_eq!(cookies, (1..=(FILES as u64 + 2)).collect::<Vec<_>>());
    let mut names: Vec<&str> = ents.iter().map(|e| e.1.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), FILES + 2, "no entry twice");
    assert!(
        parts >= (FILES + 2).div_ceil(ENTRIES_PER_PART as usize),
        "{parts} parts"
    );
    assert!(
        longest < Duration::from_millis(20),
        "a part took {longest:?}"
    );

    // A cookie far ahead is reached by skipping, in parts too.
    let (used, parts, _) = readdir(&mut g, buf, len, 2500);
    let tail = parse(g.bytes_at(buf, used));
    assert_eq!(tail.len(), FILES + 2 - 2500);
    assert_eq!(tail[0].0, 2501);
    assert_eq!(tail[..], ents[2500..]);
    assert!(parts > 2500 / ENTRIES_PER_PART as usize, "{parts} parts");
}

#[test]
fn small_buffers_walk_the_directory_by_cookies() {
    let (_s, mut g) = big_dir("attack-readdir-walk");
    let buf = g.alloc(4096);
    let mut cookie = 0;
    let mut seen = Vec::new();
    loop {
        let (used, parts, _) = readdir(&mut g, buf, 4096, cookie);
        assert_eq!(parts, 1, "a 4 KiB buffer fills in one part");
        let ents = parse(g.bytes_at(buf, used));
        if let Some(last) = ents.last() {
            cookie = last.0;
        }
        seen.extend(ents.into_iter().map(|e| e.1));
        if used < 4096 {
            break;
        }
    }
    assert_eq!(seen.len(), FILES + 2);
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), FILES + 2);
    // An empty buffer reads nothing and is done at once.
    let (used, parts, _) = readdir(&mut g, buf, 0, 0);
    assert_eq!((used, parts), (0, 1));
}
