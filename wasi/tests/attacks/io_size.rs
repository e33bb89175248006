//! Large reads and writes: `fd_read` allocated a zeroed host buffer as
//! large as the guest's iovecs (up to 16 MiB per call), and `fd_write`
//! gathered everything into a host vector first. Now one call moves at
//! most `MAX_IO` (256 KiB), straight between guest memory and the host
//! descriptor (a short read or write, which POSIX allows and libc loops
//! on), whatever the iovecs ask for, even 1024 iovecs naming the same
//! 64 MiB.

use crate::common::*;
use crate::{get_u32, put_u32, timed, QUICK};
use myriad_wasi::memory::MAX_IO;
use myriad_wasi::{Output, Stdin, WasiCtx, WasiFunc};
use std::sync::{Arc, Mutex};

const BIG: u32 = 64 << 20;

/// A guest with a sandbox preopened as fd 3 and a memory of `BIG` plus
/// 2 MiB; returns it with the address of a `BIG`-byte buffer.
fn big_guest(s: &Scratch, stdout: Output, stdin: Stdin) -> (Guest, u32) {
    let mut g = Guest::new(
        WasiCtx::builder()
            .preopen_dir(s.sandbox(), ".")
            .unwrap()
            .stdout(stdout)
            .stdin(stdin)
            .build()
            .unwrap(),
    );
    g.mem.resize((BIG as usize) + (2 << 20), 0);
    let buf = g.alloc(BIG);
    for (i, b) in g.mem[buf as usize..(buf + BIG) as usize]
        .iter_mut()
        .enumerate()
    {
        *b = (i % 251) as u8;
    }
    (g, buf)
}

/// `count` iovecs, each naming `len` bytes at `ptr`.
fn iovecs(g: &mut Guest, ptr: u32, len: u32, count: u32) -> u32 {
    let arr = g.alloc(8 * count);
    for i in 0..count {
        put_u32(&mut g.mem, (arr + 8 * i) as usize, ptr);
        put_u32(&mut g.mem, (arr + 8 * i + 4) as usize, len);
    }
    arr
}

#[test]
fn one_write_moves_at_most_max_io() {
    assert_eq!(MAX_IO, 256 << 10);
    let s = Scratch::new("attack-bigwrite");
    let out = Arc::new(Mutex::new(Vec::new()));
    let (mut g, buf) = big_guest(&s, Output::Capture(out.clone()), Stdin::Null);
    let fd = g.open(3, FOLLOW, "big", O_CREAT, RW, 0).unwrap();
    let n = g.alloc(4);
    let one = iovecs(&mut g, buf, BIG, 1);
    assert_eq!(
        g.errno(WasiFunc::FdWrite, &[fd.into(), one.into(), 1, n.into()]),
        0
    );
    assert_eq!(g.u32_at(n) as usize, MAX_IO, "a short write");
    let on_disk = std::fs::read(s.sandbox().join("big")).unwrap();
    assert_eq!(on_disk, g.mem[buf as usize..buf as usize + MAX_IO]);
    // 1024 iovecs naming the same 64 MiB ask for 64 GiB.
    let many = iovecs(&mut g, buf, BIG, 1024);
    let (e, took) = timed(|| g.errno(WasiFunc::FdWrite, &[fd.into(), many.into(), 1024, n.into()]));
    assert_eq!(e, 0);
    assert_eq!(g.u32_at(n) as usize, MAX_IO);
    assert!(took < QUICK, "took {took:?}");
    // Positioned, far out.
    assert_eq!(
        g.errno(
            WasiFunc::FdPwrite,
            &[fd.into(), many.into(), 1024, 1 << 30, n.into()]
        ),
        0
    );
    assert_eq!(g.u32_at(n) as usize, MAX_IO);
    // Captured stdout too.
    assert_eq!(
        g.errno(WasiFunc::FdWrite, &[1, many.into(), 1024, n.into()]),
        0
    );
    assert_eq!(g.u32_at(n) as usize, MAX_IO);
    assert_eq!(out.lock().unwrap().len(), MAX_IO);
}

#[test]
fn one_read_moves_at_most_max_io() {
    let s = Scratch::new("attack-bigread");
    let data: Vec<u8> = (0..(4u32 << 20)).map(|i| (i % 253) as u8).collect();
    std::fs::write(s.sandbox().join("big"), &data).unwrap();
    let (mut g, buf) = big_guest(&s, Output::Null, Stdin::Bytes(data.clone()));
    let fd = g.open(3, FOLLOW, "big", 0, RO, 0).unwrap();
    let n = g.alloc(4);
    let one = iovecs(&mut g, buf, BIG, 1);
    for (f, fd) in [(WasiFunc::FdRead, fd), (WasiFunc::FdRead, 0)] {
        assert_eq!(g.errno(f, &[fd.into(), one.into(), 1, n.into()]), 0);
        assert_eq!(g.u32_at(n) as usize, MAX_IO, "a short read of fd {fd}");
        assert_eq!(g.mem[buf as usize..buf as usize + MAX_IO], data[..MAX_IO]);
    }
    assert_eq!(
        g.errno(
            WasiFunc::FdPread,
            &[fd.into(), one.into(), 1, 1 << 20, n.into()]
        ),
        0
    );
    assert_eq!(g.u32_at(n) as usize, MAX_IO);
    assert_eq!(
        g.mem[buf as usize..buf as usize + MAX_IO],
        data[1 << 20..(1 << 20) + MAX_IO]
    );
    // The file offset moved by what was read: the next read goes on.
    assert_eq!(
        g.errno(WasiFunc::FdRead, &[fd.into(), one.into(), 1, n.into()]),
        0
    );
    assert_eq!(
        g.mem[buf as usize..buf as usize + MAX_IO],
        data[MAX_IO..2 * MAX_IO]
    );
}

#[test]
fn scatter_and_gather_keep_the_order_of_the_iovecs() {
    let s = Scratch::new("attack-order");
    let mut g = Guest::new(
        WasiCtx::builder()
            .preopen_dir(s.sandbox(), ".")
            .unwrap()
            .build()
            .unwrap(),
    );
    let fd = g.open(3, FOLLOW, "f", O_CREAT, RW, 0).unwrap();
    let a = g.put(b"abc");
    let b = g.put(b"defgh");
    let arr = g.alloc(24);
    for (i, (p, l)) in [(a, 3u32), (a, 0), (b, 5)].into_iter().enumerate() {
        put_u32(&mut g.mem, arr as usize + 8 * i, p);
        put_u32(&mut g.mem, arr as usize + 8 * i + 4, l);
    }
    let n = g.alloc(4);
    assert_eq!(
        g.errno(WasiFunc::FdWrite, &[fd.into(), arr.into(), 3, n.into()]),
        0
    );
    assert_eq!(g.u32_at(n), 8);
    assert_eq!(std::fs::read(s.sandbox().join("f")).unwrap(), b"abcdefgh");
    // Read back into 2, 0 and 10 bytes.
    let x = g.alloc(2);
    let y = g.alloc(10);
    for (i, (p, l)) in [(x, 2u32), (x, 0), (y, 10)].into_iter().enumerate() {
        put_u32(&mut g.mem, arr as usize + 8 * i, p);
        put_u32(&mut g.mem, arr as usize + 8 * i + 4, l);
    }
    assert_eq!(
        g.errno(WasiFunc::FdPread, &[fd.into(), arr.into(), 3, 0, n.into()]),
        0
    );
    assert_eq!(get_u32(&g.mem, n as usize), 8);
    assert_eq!(g.bytes_at(x, 2), b"ab");
    assert_eq!(g.bytes_at(y, 6), b"cdefgh");
}
