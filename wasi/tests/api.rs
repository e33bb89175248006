//! Arguments, environment, stdio, clocks, randomness, process control, and
//! the checks every call makes on pointers, descriptors and arguments.

mod common;

use common::{e, Guest};
use myriad_abi::ValType;
use myriad_wasi::{Errno, Output, Stdin, WasiCtx, WasiFunc, WasiOutcome, MODULE};
use std::sync::{Arc, Mutex};

fn guest() -> Guest {
    Guest::new(WasiCtx::builder().build().unwrap())
}

#[test]
fn function_table_is_consistent() {
    assert_eq!(MODULE, "wasi_snapshot_preview1");
    assert_eq!(WasiFunc::ALL.len(), 46);
    for &f in WasiFunc::ALL {
        assert_eq!(WasiFunc::lookup(f.name()), Some(f));
        assert!(f
            .params()
            .iter()
            .all(|t| matches!(t, ValType::I32 | ValType::I64)));
        let want: &[ValType] = if f == WasiFunc::ProcExit {
            &[]
        } else {
            &[ValType::I32]
        };
        assert_eq!(f.results(), want, "{}", f.name());
    }
    assert_eq!(WasiFunc::lookup("fd_write"), Some(WasiFunc::FdWrite));
    assert_eq!(WasiFunc::lookup("no_such_function"), None);
    assert_eq!(WasiFunc::PathOpen.params().len(), 9);
    assert_eq!(
        WasiFunc::FdSeek.params(),
        &[ValType::I32, ValType::I64, ValType::I32, ValType::I32]
    );
}

#[test]
fn args_layout_matches_preview1() {
    let mut g = Guest::new(
        WasiCtx::builder()
            .args(["prog", "a b", ""])
            .args(["last"])
            .build()
            .unwrap(),
    );
    let (count, size) = (g.alloc(4), g.alloc(4));
    assert_eq!(
        g.errno(WasiFunc::ArgsSizesGet, &[count.into(), size.into()]),
        0
    );
    assert_eq!(g.u32_at(count), 4);
    assert_eq!(g.u32_at(size), 5 + 4 + 1 + 5);
    let ptrs = g.alloc(16);
    let buf = g.alloc(15);
    assert_eq!(g.errno(WasiFunc::ArgsGet, &[ptrs.into(), buf.into()]), 0);
    assert_eq!(g.bytes_at(buf, 15), b"prog\0a b\0\0last\0");
    let offsets: Vec<u32> = (0..4).map(|i| g.u32_at(ptrs + 4 * i) - buf).collect();
    assert_eq!(offsets, [0, 5, 9, 10]);
}

#[test]
fn environ_layout_matches_preview1() {
    let mut g = Guest::new(
        WasiCtx::builder()
            .env("A", "1")
            .env("EMPTY", "")
            .env("A", "2")
            .build()
            .unwrap(),
    );
    let (count, size) = (g.alloc(4), g.alloc(4));
    assert_eq!(
        g.errno(WasiFunc::EnvironSizesGet, &[count.into(), size.into()]),
        0
    );
    assert_eq!((g.u32_at(count), g.u32_at(size)), (2, 4 + 7));
    let ptrs = g.alloc(8);
    let buf = g.alloc(11);
    assert_eq!(g.errno(WasiFunc::EnvironGet, &[ptrs.into(), buf.into()]), 0);
    assert_eq!(g.bytes_at(buf, 11), b"A=2\0EMPTY=\0");
    assert_eq!(g.u32_at(ptrs), buf);
    assert_eq!(g.u32_at(ptrs + 4), buf + 4);
}

#[test]
fn inherit_env_and_invalid_strings() {
    std::env::var("PATH").expect("PATH set in the test environment");
    let mut g = Guest::new(WasiCtx::builder().inherit_env().build().unwrap());
    let (count, size) = (g.alloc(4), g.alloc(4));
    assert_eq!(
        g.errno(WasiFunc::EnvironSizesGet, &[count.into(), size.into()]),
        0
    );
    assert!(g.u32_at(count) >= 1);
    assert!(WasiCtx::builder().args(["a\0b"]).build().is_err());
    assert!(WasiCtx::builder().env("K=V", "x").build().is_err());
    assert!(WasiCtx::builder().env("", "x").build().is_err());
    assert!(WasiCtx::builder().env("K", "a\0").build().is_err());
}

#[test]
fn fd_write_gathers_into_captured_stdout_and_stderr() {
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let mut g = Guest::new(
        WasiCtx::builder()
            .stdout(Output::Capture(out.clone()))
            .stderr(Output::Capture(err.clone()))
            .build()
            .unwrap(),
    );
    let a = g.put(b"hello ");
    let b = g.put(b"");
    let c = g.put(b"world\n");
    let iovs = g.alloc(24);
    for (i, (ptr, len)) in [(a, 6u32), (b, 0), (c, 6)].into_iter().enumerate() {
        let at = iovs as usize + 8 * i;
        g.mem[at..at + 4].copy_from_slice(&ptr.to_le_bytes());
        g.mem[at + 4..at + 8].copy_from_slice(&len.to_le_bytes());
    }
    let n = g.alloc(4);
    assert_eq!(
        g.errno(WasiFunc::FdWrite, &[1, iovs.into(), 3, n.into()]),
        0
    );
    assert_eq!(g.u32_at(n), 12);
    assert_eq!(g.write_fd(2, b"oops"), Ok(4));
    assert_eq!(&*out.lock().unwrap(), b"hello world\n");
    assert_eq!(&*err.lock().unwrap(), b"oops");
    // Zero iovecs: nothing written, success.
    assert_eq!(
        g.errno(WasiFunc::FdWrite, &[1, iovs.into(), 0, n.into()]),
        0
    );
    assert_eq!(g.u32_at(n), 0);
    // stdin is not writable, stdout not readable.
    assert_eq!(g.write_fd(0, b"x"), Err(e(Errno::BADF)));
    assert_eq!(g.read_fd(1, 4), Err(e(Errno::BADF)));
}

#[test]
fn null_output_discards_but_succeeds() {
    let mut g = guest();
    assert_eq!(g.write_fd(1, b"gone"), Ok(4));
}

#[test]
fn fd_read_scatters_from_stdin_bytes() {
    let mut g = Guest::new(
        WasiCtx::builder()
            .stdin(Stdin::Bytes(b"abcdefgh".to_vec()))
            .build()
            .unwrap(),
    );
    let b1 = g.alloc(3);
    let b2 = g.alloc(4);
    let iovs = g.alloc(16);
    for (i, (ptr, len)) in [(b1, 3u32), (b2, 4)].into_iter().enumerate() {
        let at = iovs as usize + 8 * i;
        g.mem[at..at + 4].copy_from_slice(&ptr.to_le_bytes());
        g.mem[at + 4..at + 8].copy_from_slice(&len.to_le_bytes());
    }
    let n = g.alloc(4);
    assert_eq!(g.errno(WasiFunc::FdRead, &[0, iovs.into(), 2, n.into()]), 0);
    assert_eq!(g.u32_at(n), 7);
    assert_eq!(g.bytes_at(b1, 3), b"abc");
    assert_eq!(g.bytes_at(b2, 4), b"defg");
    assert_eq!(g.read_fd(0, 10).unwrap(), b"h");
    assert_eq!(g.read_fd(0, 10).unwrap(), b"");
    let mut null = guest();
    assert_eq!(null.read_fd(0, 10).unwrap(), b"");
}

#[test]
fn stdio_fdstat_and_filestat() {
    let mut g = guest();
    let out = g.alloc(24);
    assert_eq!(g.errno(WasiFunc::FdFdstatGet, &[1, out.into()]), 0);
    assert_eq!(g.mem[out as usize], 2, "character device");
    let rights = g.u64_at(out + 8);
    assert_ne!(rights & (1 << 6), 0, "FD_WRITE");
    assert_eq!(
        rights & ((1 << 2) | (1 << 5)),
        0,
        "no seek/tell: a tty to wasi-libc"
    );
    let st = g.alloc(64);
    assert_eq!(g.errno(WasiFunc::FdFilestatGet, &[0, st.into()]), 0);
    assert_eq!(g.mem[st as usize + 16], 2);
    let pos = g.alloc(8);
    assert_eq!(
        g.errno(WasiFunc::FdSeek, &[1, 0, 0, pos.into()]),
        e(Errno::SPIPE)
    );
    assert_eq!(g.errno(WasiFunc::FdTell, &[1, pos.into()]), e(Errno::SPIPE));
    assert_eq!(g.errno(WasiFunc::FdFdstatSetFlags, &[1, 1]), 0);
    assert_eq!(g.errno(WasiFunc::FdFdstatGet, &[1, out.into()]), 0);
    assert_eq!(g.mem[out as usize + 2], 1, "APPEND recorded");
    // No preopens: fd 3 is not a preopen, which ends wasi-libc's scan.
    assert_eq!(
        g.errno(WasiFunc::FdPrestatGet, &[3, out.into()]),
        e(Errno::BADF)
    );
}

#[test]
fn clocks() {
    let mut g = guest();
    let t = g.alloc(8);
    let mut last = 0;
    for _ in 0..100 {
        assert_eq!(g.errno(WasiFunc::ClockTimeGet, &[1, 1, t.into()]), 0);
        let now = g.u64_at(t);
        assert!(now >= last, "monotonic clock went back");
        last = now;
    }
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert_eq!(g.errno(WasiFunc::ClockTimeGet, &[1, 1, t.into()]), 0);
    assert!(g.u64_at(t) >= last + 1_000_000);
    assert_eq!(g.errno(WasiFunc::ClockTimeGet, &[0, 1, t.into()]), 0);
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(
        g.u64_at(t).abs_diff(wall) < 10_000_000_000,
        "realtime is the epoch clock"
    );
    for id in 0..4u64 {
        assert_eq!(g.errno(WasiFunc::ClockTimeGet, &[id, 0, t.into()]), 0);
        assert_eq!(g.errno(WasiFunc::ClockResGet, &[id, t.into()]), 0);
        assert!(g.u64_at(t) >= 1);
    }
    assert_eq!(
        g.errno(WasiFunc::ClockTimeGet, &[4, 0, t.into()]),
        e(Errno::INVAL)
    );
    assert_eq!(
        g.errno(WasiFunc::ClockResGet, &[99, t.into()]),
        e(Errno::INVAL)
    );
}

#[test]
fn random_get_fills() {
    let mut g = guest();
    let buf = g.alloc(256);
    assert_eq!(g.errno(WasiFunc::RandomGet, &[buf.into(), 256]), 0);
    let a = g.bytes_at(buf, 256).to_vec();
    assert!(
        a.iter().filter(|&&b| b == 0).count() < 32,
        "random bytes, not zeroes"
    );
    assert_eq!(g.errno(WasiFunc::RandomGet, &[buf.into(), 256]), 0);
    assert_ne!(g.bytes_at(buf, 256), &a[..]);
    assert_eq!(g.errno(WasiFunc::RandomGet, &[buf.into(), 0]), 0);
}

#[test]
fn proc_exit_yield_and_enosys() {
    let mut g = guest();
    assert_eq!(g.call(WasiFunc::ProcExit, &[7]), WasiOutcome::Exit(7));
    assert_eq!(g.call(WasiFunc::ProcExit, &[0]), WasiOutcome::Exit(0));
    assert_eq!(g.call(WasiFunc::SchedYield, &[]), WasiOutcome::Yield);
    assert_eq!(g.errno(WasiFunc::ProcRaise, &[9]), 52);
    assert_eq!(g.errno(WasiFunc::SockAccept, &[3, 0, 0]), 52);
    assert_eq!(g.errno(WasiFunc::SockRecv, &[3, 0, 0, 0, 0, 0]), 52);
    assert_eq!(g.errno(WasiFunc::SockSend, &[3, 0, 0, 0, 0]), 52);
    assert_eq!(g.errno(WasiFunc::SockShutdown, &[3, 0]), 52);
    // Wrong argument count is the runtime's bug, reported as EINVAL.
    assert_eq!(g.errno(WasiFunc::FdClose, &[]), e(Errno::INVAL));
}

#[test]
fn bad_pointers_are_efault_and_never_panic() {
    let mut g = Guest::new(
        WasiCtx::builder()
            .args(["prog"])
            .env("K", "V")
            .build()
            .unwrap(),
    );
    let end = g.mem.len() as u64;
    let near = end - 2;
    let huge = u32::MAX as u64;
    for ptr in [end, near, huge] {
        assert_eq!(g.errno(WasiFunc::ArgsSizesGet, &[ptr, 0]), e(Errno::FAULT));
        assert_eq!(g.errno(WasiFunc::ArgsGet, &[0, ptr]), e(Errno::FAULT));
        assert_eq!(g.errno(WasiFunc::EnvironGet, &[ptr, 0]), e(Errno::FAULT));
        assert_eq!(
            g.errno(WasiFunc::ClockTimeGet, &[1, 0, ptr]),
            e(Errno::FAULT)
        );
        assert_eq!(g.errno(WasiFunc::RandomGet, &[ptr, 16]), e(Errno::FAULT));
        assert_eq!(g.errno(WasiFunc::FdFdstatGet, &[1, ptr]), e(Errno::FAULT));
        assert_eq!(g.errno(WasiFunc::FdWrite, &[1, ptr, 1, 0]), e(Errno::FAULT));
        assert_eq!(g.errno(WasiFunc::FdRead, &[0, 0, 1, ptr]), e(Errno::FAULT));
        assert_eq!(
            g.errno(WasiFunc::PollOneoff, &[ptr, 0, 1, 0]),
            e(Errno::FAULT)
        );
        assert_eq!(
            g.errno(WasiFunc::PathOpen, &[3, 0, ptr, 4, 0, 0, 0, 0, 0]),
            e(Errno::FAULT)
        );
    }
    // An iovec whose buffer runs past the end; a huge iovec count.
    let iov = g.alloc(8);
    g.mem[iov as usize..iov as usize + 4].copy_from_slice(&(near as u32).to_le_bytes());
    g.mem[iov as usize + 4..iov as usize + 8].copy_from_slice(&16u32.to_le_bytes());
    let n = g.alloc(4);
    assert_eq!(
        g.errno(WasiFunc::FdWrite, &[1, iov.into(), 1, n.into()]),
        e(Errno::FAULT)
    );
    assert_eq!(
        g.errno(WasiFunc::FdWrite, &[1, iov.into(), huge, n.into()]),
        e(Errno::FAULT)
    );
    // Length wrap-around: ptr + len past 4 GiB.
    assert_eq!(g.errno(WasiFunc::RandomGet, &[16, huge]), e(Errno::FAULT));
    // Upper bits of an i32 cell are ignored (only the low 32 bits count).
    let t = g.alloc(8);
    assert_eq!(
        g.errno(
            WasiFunc::ClockTimeGet,
            &[1 | (1 << 40), 0, u64::from(t) | (7 << 32)]
        ),
        0
    );
    // Zero-length memory.
    let mut ctx = WasiCtx::builder().build().unwrap();
    assert_eq!(
        ctx.call(WasiFunc::ArgsSizesGet, &mut [], &[0, 0]),
        WasiOutcome::Return(21)
    );
}

#[test]
fn bad_descriptors_are_ebadf() {
    let mut g = guest();
    let out = g.alloc(64);
    for fd in [3u64, 4, 1000, u32::MAX as u64] {
        assert_eq!(g.errno(WasiFunc::FdClose, &[fd]), e(Errno::BADF));
        assert_eq!(
            g.errno(WasiFunc::FdFdstatGet, &[fd, out.into()]),
            e(Errno::BADF)
        );
        assert_eq!(
            g.errno(WasiFunc::FdFilestatGet, &[fd, out.into()]),
            e(Errno::BADF)
        );
        assert_eq!(
            g.errno(WasiFunc::FdSeek, &[fd, 0, 0, out.into()]),
            e(Errno::BADF)
        );
        assert_eq!(g.errno(WasiFunc::FdSync, &[fd]), e(Errno::BADF));
        assert_eq!(
            g.errno(WasiFunc::FdPrestatGet, &[fd, out.into()]),
            e(Errno::BADF)
        );
        assert_eq!(g.errno(WasiFunc::FdRenumber, &[fd, 1]), e(Errno::BADF));
        assert_eq!(
            g.errno(WasiFunc::FdReaddir, &[fd, out.into(), 64, 0, out.into()]),
            e(Errno::BADF)
        );
        assert_eq!(g.write_fd(fd as u32, b"x"), Err(e(Errno::BADF)));
        assert_eq!(g.read_fd(fd as u32, 1), Err(e(Errno::BADF)));
        assert_eq!(g.open(fd as u32, 0, "x", 0, 0, 0), Err(e(Errno::BADF)));
    }
    // A stdio stream is not a directory.
    assert_eq!(g.open(1, 0, "x", 0, 0, 0), Err(e(Errno::NOTDIR)));
    // Closing works once; renumbering onto a closed number fails.
    assert_eq!(g.errno(WasiFunc::FdClose, &[2]), 0);
    assert_eq!(g.errno(WasiFunc::FdClose, &[2]), e(Errno::BADF));
    assert_eq!(g.errno(WasiFunc::FdRenumber, &[1, 2]), e(Errno::BADF));
    assert_eq!(g.ctx.open_fds(), 2);
}

#[test]
fn poll_oneoff_sleeps_on_clocks() {
    let mut g = Guest::new(
        WasiCtx::builder()
            .stdin(Stdin::Bytes(b"xy".to_vec()))
            .build()
            .unwrap(),
    );
    let subs = g.alloc(48 * 2);
    let events = g.alloc(32 * 2);
    let n = g.alloc(4);
    let put_clock = |g: &mut Guest, at: u32, userdata: u64, id: u32, timeout: u64, flags: u16| {
        let a = at as usize;
        g.mem[a..a + 48].fill(0);
        g.mem[a..a + 8].copy_from_slice(&userdata.to_le_bytes());
        g.mem[a + 8] = 0;
        g.mem[a + 16..a + 20].copy_from_slice(&id.to_le_bytes());
        g.mem[a + 24..a + 32].copy_from_slice(&timeout.to_le_bytes());
        g.mem[a + 40..a + 42].copy_from_slice(&flags.to_le_bytes());
    };
    // Relative 20 ms on the monotonic clock: the call does not block, it
    // asks its caller to sleep that long.
    put_clock(&mut g, subs, 42, 1, 20_000_000, 0);
    assert_eq!(
        g.call(
            WasiFunc::PollOneoff,
            &[subs.into(), events.into(), 1, n.into()]
        ),
        WasiOutcome::Sleep(std::time::Duration::from_millis(20))
    );
    assert_eq!(g.u32_at(n), 1);
    assert_eq!(g.u64_at(events), 42);
    assert_eq!(g.bytes_at(events + 8, 3), &[0, 0, 0]);

    // Absolute deadline in the past: immediate; two clocks, the earlier
    // one fires.
    put_clock(&mut g, subs, 1, 1, 5, 1);
    put_clock(&mut g, subs + 48, 2, 1, 10_000_000_000, 0);
    assert_eq!(
        g.errno(
            WasiFunc::PollOneoff,
            &[subs.into(), events.into(), 2, n.into()]
        ),
        0
    );
    assert_eq!(g.u32_at(n), 1);
    assert_eq!(g.u64_at(events), 1);

    // A read subscription on stdin is ready at once with 2 bytes.
    put_clock(&mut g, subs, 3, 1, 10_000_000_000, 0);
    let a = (subs + 48) as usize;
    g.mem[a..a + 48].fill(0);
    g.mem[a..a + 8].copy_from_slice(&4u64.to_le_bytes());
    g.mem[a + 8] = 1;
    assert_eq!(
        g.errno(
            WasiFunc::PollOneoff,
            &[subs.into(), events.into(), 2, n.into()]
        ),
        0
    );
    assert_eq!(g.u32_at(n), 1);
    assert_eq!(g.u64_at(events), 4);
    assert_eq!(g.mem[events as usize + 10], 1);
    assert_eq!(g.u64_at(events + 16), 2);

    // No subscriptions; an unknown tag.
    assert_eq!(
        g.errno(
            WasiFunc::PollOneoff,
            &[subs.into(), events.into(), 0, n.into()]
        ),
        e(Errno::INVAL)
    );
    g.mem[subs as usize + 8] = 9;
    assert_eq!(
        g.errno(
            WasiFunc::PollOneoff,
            &[subs.into(), events.into(), 1, n.into()]
        ),
        e(Errno::INVAL)
    );
}

#[test]
fn contexts_are_send_and_builders_reusable() {
    fn is_send<T: Send>(_: &T) {}
    let b = WasiCtx::builder()
        .args(["x"])
        .stdin(Stdin::Bytes(b"in".to_vec()));
    let c1 = b.build().unwrap();
    let c2 = b.clone().build().unwrap();
    is_send(&c1);
    let h = std::thread::spawn(move || {
        let mut g = Guest::new(c2);
        g.read_fd(0, 8).unwrap()
    });
    assert_eq!(h.join().unwrap(), b"in");
    let mut g = Guest::new(c1);
    assert_eq!(
        g.read_fd(0, 8).unwrap(),
        b"in",
        "each context has its own stdin copy"
    );
}
