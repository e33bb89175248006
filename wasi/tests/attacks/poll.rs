//! `poll_oneoff` with millions of subscriptions: the host read and
//! collected every one (22 M took 5.4 s and 1.6 GB). Now more than
//! `MAX_SUBSCRIPTIONS` (4096) is `EINVAL` before any is read, and a call
//! reads each clock and asks about each descriptor at most once.

use crate::common::*;
use crate::{lazy_memory, put_u32, timed, QUICK};
use myriad_wasi::{Errno, Stdin, WasiCtx, WasiFunc, WasiOutcome, MAX_SUBSCRIPTIONS};

const SUB: usize = 48;
const EVENT: usize = 32;

/// `n` fd_read subscriptions on `fds` (round robin) at `at`.
fn fd_subscriptions(mem: &mut [u8], at: usize, n: usize, fds: &[u32]) {
    for i in 0..n {
        let s = at + i * SUB;
        mem[s..s + 8].copy_from_slice(&(i as u64).to_le_bytes());
        mem[s + 8] = 1;
        put_u32(mem, s + 16, fds[i % fds.len()]);
    }
}

#[test]
fn more_than_4096_subscriptions_is_einval() {
    assert_eq!(MAX_SUBSCRIPTIONS, 4096);
    let mut g = Guest::new(
        WasiCtx::builder()
            .stdin(Stdin::Bytes(b"ready".to_vec()))
            .build()
            .unwrap(),
    );
    let n = 4097;
    let input = g.alloc((n * SUB) as u32);
    let out = g.alloc((n * EVENT) as u32);
    let nev = g.alloc(4);
    fd_subscriptions(&mut g.mem, input as usize, n, &[0]);
    let args = |n: usize| [input.into(), out.into(), n as u64, nev.into()];
    assert_eq!(g.errno(WasiFunc::PollOneoff, &args(4097)), e(Errno::INVAL));
    assert_eq!(g.errno(WasiFunc::PollOneoff, &args(4096)), 0);
    assert_eq!(g.u32_at(nev), 4096);
    // Each event reports stdin's 5 bytes.
    let last = out as usize + 4095 * EVENT;
    assert_eq!(g.u64_at(last as u32), 4095, "userdata");
    assert_eq!(g.u64_at(last as u32 + 16), 5, "nbytes");
}

#[test]
fn sixteen_million_subscriptions_are_refused_at_once() {
    let n = 1usize << 24;
    let (input, out) = (65536, 65536 + n * SUB);
    let mut mem = lazy_memory(out + n * EVENT + 65536);
    // All-zero subscriptions are relative realtime clocks due now: the old
    // code read the clock 16 M times and built 16 M events.
    let mut ctx = WasiCtx::builder().build().unwrap();
    let (r, took) = timed(|| {
        ctx.call(
            WasiFunc::PollOneoff,
            &mut mem,
            &[input as u64, out as u64, n as u64, 0],
        )
    });
    assert_eq!(r, WasiOutcome::Return(Errno::INVAL.raw().into()));
    assert!(took < QUICK, "took {took:?}");
}

#[test]
fn a_full_poll_of_every_descriptor_is_quick() {
    let s = Scratch::new("attack-poll");
    let mut g = Guest::new(
        WasiCtx::builder()
            .preopen_dir(s.sandbox(), ".")
            .unwrap()
            .build()
            .unwrap(),
    );
    g.mem.resize(4 << 20, 0);
    // As many open files as a guest may hold.
    let mut fds = Vec::new();
    while let Ok(fd) = g.open(3, FOLLOW, &format!("f{}", fds.len()), O_CREAT, RW, 0) {
        fds.push(fd);
    }
    assert!(fds.len() > 1000);
    let n = MAX_SUBSCRIPTIONS as usize;
    let input = g.alloc((n * SUB) as u32);
    let out = g.alloc((n * EVENT) as u32);
    let nev = g.alloc(4);
    fd_subscriptions(&mut g.mem, input as usize, n, &fds);
    let (errno, took) = timed(|| {
        g.errno(
            WasiFunc::PollOneoff,
            &[input.into(), out.into(), n as u64, nev.into()],
        )
    });
    assert_eq!(errno, 0);
    eprintln!(
        "poll_oneoff of {n} subscriptions on {} files: {took:?}",
        fds.len()
    );
    assert_eq!(g.u32_at(nev) as usize, n);
    assert!(took < QUICK, "took {took:?}");
}
