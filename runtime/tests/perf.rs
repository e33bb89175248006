//! Rough timings (ignored by default; run with
//! `cargo test -p myriad-runtime --release --test perf -- --ignored --nocapture`).

mod common;

use common::*;
use myriad_runtime::{Instance, Outcome, Val};
use std::time::Instant;

#[test]
#[ignore]
fn timings() {
    let region = test_region(64);
    let m = test_module(); // 16 KiB heap (4 x 4 KiB pages)
    let n = 20_000;
    // Warm the slot: a guest dirties one heap page.
    for _ in 0..10 {
        let mut i = Instance::new(&region, &m, "poke", &[Val::I64(100), Val::I64(1)]).unwrap();
        i.resume(u64::MAX / 2);
    }
    let (mut t_new, mut t_drop) = (0u128, 0u128);
    for _ in 0..n {
        let t0 = Instant::now();
        let mut i = Instance::new(&region, &m, "poke", &[Val::I64(100), Val::I64(1)]).unwrap();
        let t1 = Instant::now();
        i.resume(u64::MAX / 2);
        let t2 = Instant::now();
        drop(i);
        let t3 = Instant::now();
        t_new += (t1 - t0).as_nanos();
        t_drop += (t3 - t2).as_nanos();
    }
    eprintln!(
        "instantiate (16 KiB heap, warm slot): {} ns",
        t_new / n as u128
    );
    eprintln!(
        "teardown (1 dirty page of 4, warm): {} ns",
        t_drop / n as u128
    );
    // Teardown when the guest touched all 4 pages (all known resident: memset only).
    let mut t_drop = 0u128;
    for _ in 0..n {
        let mut i = Instance::new(&region, &m, "poke", &[Val::I64(3 * 4096), Val::I64(1)]).unwrap();
        i.resume(u64::MAX / 2);
        for p in 0..4 {
            i.memory_mut()[p * 4096] = 1;
        }
        let t2 = Instant::now();
        drop(i);
        t_drop += t2.elapsed().as_nanos();
    }
    eprintln!(
        "teardown (16 KiB all dirty, warm): {} ns",
        t_drop / n as u128
    );

    // Hot yield + resume round trip (includes the slow path's TSC read).
    let mut i = Instance::new(&region, &m, "spin", &[Val::I64(i64::MAX)]).unwrap();
    let k = 200_000;
    let t0 = Instant::now();
    for _ in 0..k {
        assert_eq!(i.resume_with_fuel(0, 0), Outcome::Yielded);
    }
    eprintln!(
        "yield+resume round trip (hot, incl. rdtsc): {:.1} ns",
        t0.elapsed().as_nanos() as f64 / k as f64
    );
    let heap = region.heap_base(0);
    let mut v = [0u8; 4];
    let t0 = Instant::now();
    for _ in 0..k {
        // SAFETY: our region's heap, page aligned.
        unsafe { libc::mincore(heap.cast(), 4 * 4096, v.as_mut_ptr()) };
    }
    eprintln!(
        "mincore 4 pages: {:.1} ns",
        t0.elapsed().as_nanos() as f64 / k as f64
    );
    let t0 = Instant::now();
    for _ in 0..k {
        // SAFETY: plain syscall.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
    eprintln!(
        "getppid syscall: {:.1} ns",
        t0.elapsed().as_nanos() as f64 / k as f64
    );
    let t0 = Instant::now();
    for _ in 0..k {
        std::hint::black_box(myriad_runtime::rdtsc());
    }
    eprintln!("rdtsc: {:.1} ns", t0.elapsed().as_nanos() as f64 / k as f64);
}
