//! iovec arrays: the host used to allocate a vector as long as the
//! guest's iovec count (`Vec::with_capacity(count)`) and walk all of it;
//! two `fd_write`s with 2^27 iovecs took 3.4 s and 1 GiB of host memory.
//! Now more than `MAX_IOVS` (1024, Linux's `IOV_MAX`) is `EINVAL`, before
//! anything is allocated or read.

use crate::common::*;
use crate::{lazy_memory, put_u32, timed, QUICK};
use myriad_wasi::memory::MAX_IOVS;
use myriad_wasi::{Errno, Output, Stdin, WasiCtx, WasiFunc, WasiOutcome};
use std::sync::{Arc, Mutex};

const EINVAL: WasiOutcome = WasiOutcome::Return(28);

#[test]
fn more_iovecs_than_iov_max_is_einval() {
    let out = Arc::new(Mutex::new(Vec::new()));
    let mut g = Guest::new(
        WasiCtx::builder()
            .stdin(Stdin::Bytes(vec![b'y'; 4096]))
            .stdout(Output::Capture(out.clone()))
            .build()
            .unwrap(),
    );
    assert_eq!(MAX_IOVS, 1024);
    let x = g.put(b"x");
    let arr = g.alloc(8 * 1025);
    for i in 0..1025 {
        put_u32(&mut g.mem, (arr + 8 * i) as usize, x);
        put_u32(&mut g.mem, (arr + 8 * i + 4) as usize, 1);
    }
    let n = g.alloc(4);
    let args = |count: u32, fd: u32| [fd.into(), arr.into(), count.into(), n.into()];
    assert_eq!(g.errno(WasiFunc::FdWrite, &args(1025, 1)), e(Errno::INVAL));
    assert!(out.lock().unwrap().is_empty(), "nothing written");
    assert_eq!(g.errno(WasiFunc::FdRead, &args(1025, 0)), e(Errno::INVAL));
    // IOV_MAX itself is fine.
    assert_eq!(g.errno(WasiFunc::FdWrite, &args(1024, 1)), 0);
    assert_eq!(g.u32_at(n), 1024);
    assert_eq!(*out.lock().unwrap(), vec![b'x'; 1024]);
    assert_eq!(g.errno(WasiFunc::FdRead, &args(1024, 0)), 0);
    assert_eq!(g.u32_at(n), 1024);
}

#[test]
fn a_hundred_million_iovecs_are_refused_at_once() {
    // 2^27 iovecs: a 1 GiB array inside a 1 GiB + 64 KiB memory.
    let count = 1u32 << 27;
    let mut mem = lazy_memory((count as usize) * 8 + 65536);
    let mut ctx = WasiCtx::builder()
        .stdin(Stdin::Bytes(b"input".to_vec()))
        .build()
        .unwrap();
    for (f, fd) in [(WasiFunc::FdWrite, 1u64), (WasiFunc::FdRead, 0)] {
        let (r, took) = timed(|| ctx.call(f, &mut mem, &[fd, 65536, count.into(), 0]));
        assert_eq!(r, EINVAL, "{f:?}");
        assert!(took < QUICK, "{f:?} took {took:?}");
    }
}

#[test]
fn positioned_io_has_the_same_bound() {
    let s = Scratch::new("attack-piov");
    let mut g = Guest::new(
        WasiCtx::builder()
            .preopen_dir(s.sandbox(), ".")
            .unwrap()
            .build()
            .unwrap(),
    );
    let fd = g.open(3, FOLLOW, "f", O_CREAT, RW, 0).unwrap();
    let count = 1u32 << 27;
    let mut mem = lazy_memory((count as usize) * 8 + 65536);
    for f in [WasiFunc::FdPwrite, WasiFunc::FdPread] {
        let (r, took) = timed(|| {
            g.ctx
                .call(f, &mut mem, &[fd.into(), 65536, count.into(), 0, 0])
        });
        assert_eq!(r, EINVAL, "{f:?}");
        assert!(took < QUICK, "{f:?} took {took:?}");
    }
}
