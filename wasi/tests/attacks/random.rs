//! `random_get` of a huge buffer: one call filled it all, 1 GiB in 9 s,
//! holding the worker thread the whole time (the scheduler's slices can be
//! 1 µs). Now it fills `RANDOM_PART` (16 KiB) per part and, under the
//! runtime, ends the slice with `HostAction::Continue` once the slice is
//! over, so the guest's one call spreads over many short slices. The
//! progress is kept in the context under a continuation that only the
//! repeated call carries, so no other call picks it up.

use crate::thread_cpu;
use myriad_runtime::{fuel::ns_to_tsc, Instance, Limit, Outcome, Val};
use myriad_wasi::link::MAX_PARTS_PER_SLICE;
use myriad_wasi::{Continuation, WasiCtx, WasiFunc, WasiOutcome, RANDOM_PART};
use std::time::{Duration, Instant};

/// `run(ptr, len)` calls `random_get(ptr, len)` and returns its errno;
/// 256 MiB + 64 KiB of memory.
const GUEST: &str = r#"(module
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (memory (export "memory") 4097)
  (func (export "run") (param i32 i32) (result i32)
    (call $random (local.get 0) (local.get 1))))"#;

const PTR: usize = 65536;

fn instance() -> Instance {
    crate::wasi_instance(GUEST, 4097 << 16)
}

/// What running a call in slices took.
struct Slices {
    outcome: Outcome,
    count: usize,
    /// The most CPU time one `resume` took.
    cpu: Duration,
    /// The most wall time one `resume` took.
    wall: Duration,
}

/// Runs the armed call in slices of `slice` to its end.
fn run_sliced(inst: &mut Instance, slice: Duration) -> Slices {
    let ticks = ns_to_tsc(slice.as_nanos() as u64);
    let (mut count, mut cpu, mut wall) = (0, Duration::ZERO, Duration::ZERO);
    loop {
        let (w, c) = (Instant::now(), thread_cpu());
        let o = inst.resume(myriad_runtime::rdtsc() + ticks);
        cpu = cpu.max(thread_cpu().saturating_sub(c));
        wall = wall.max(w.elapsed());
        count += 1;
        if o != Outcome::Yielded {
            return Slices {
                outcome: o,
                count,
                cpu,
                wall,
            };
        }
    }
}

/// Random-looking: no 4 KiB page without a non-zero byte, and about 1 in
/// 256 bytes zero (far under 1%).
fn assert_random(b: &[u8]) {
    for (i, page) in b.chunks(4096).enumerate() {
        assert!(page.iter().any(|&x| x != 0), "page {i} left zero");
    }
    let zeros = b.iter().filter(|&&x| x == 0).count();
    assert!(zeros < b.len() / 100, "{zeros} zero bytes of {}", b.len());
}

#[test]
fn a_256_mib_random_get_runs_in_many_short_slices() {
    let mut inst = instance();
    let len = 256usize << 20;
    inst.call("run", &[Val::I32(PTR as i32), Val::I32(len as i32)])
        .unwrap();
    let run = run_sliced(&mut inst, Duration::from_micros(100));
    assert_eq!(run.outcome, Outcome::Finished(vec![Val::I32(0)]));
    eprintln!(
        "random_get of {len} bytes: {} slices; longest resume {:?} CPU, {:?} wall",
        run.count, run.cpu, run.wall
    );
    let most_per_slice = MAX_PARTS_PER_SLICE as usize * RANDOM_PART;
    assert!(
        run.count >= len / most_per_slice,
        "{} slices for {len} bytes",
        run.count
    );
    // One unbounded call took the whole 256 MiB in one resume (about a
    // second); a slice now overshoots by one 16 KiB part at most (about
    // 50 µs). Both bounds allow for a loaded machine: a fresh page's
    // fault (a huge page's zeroing, or compaction, under memory pressure
    // from tests running beside this one) is CPU time of the resume too,
    // and once took over 5 ms; still 20x under the unbounded call.
    assert!(
        run.cpu < Duration::from_millis(50),
        "one resume took {:?}",
        run.cpu
    );
    assert!(
        run.wall < Duration::from_millis(250),
        "one resume took {:?}",
        run.wall
    );
    let mem = inst.memory();
    assert!(mem[..PTR].iter().all(|&b| b == 0), "below the buffer");
    assert!(mem[PTR + len..].iter().all(|&b| b == 0), "above the buffer");
    assert_random(&mem[PTR..PTR + len]);
}

#[test]
fn an_abandoned_call_leaves_nothing_for_the_next() {
    let mut inst = instance();
    let len = 64usize << 20;
    let args = [Val::I32(PTR as i32), Val::I32(len as i32)];
    inst.call("run", &args).unwrap();
    let ticks = ns_to_tsc(50_000);
    for _ in 0..3 {
        assert_eq!(
            inst.resume(myriad_runtime::rdtsc() + ticks),
            Outcome::Yielded
        );
    }
    // The embedder ends the call half way, then calls again with the same
    // arguments after the guest's buffer was cleared.
    inst.set_limited(Limit::CpuTime);
    assert_eq!(inst.outcome(), Outcome::Limited(Limit::CpuTime));
    inst.memory_mut()[PTR..PTR + len].fill(0);
    inst.call("run", &args).unwrap();
    let run = run_sliced(&mut inst, Duration::from_millis(1));
    assert_eq!(run.outcome, Outcome::Finished(vec![Val::I32(0)]));
    // All of it is filled again, from the start: the new call did not
    // take over the old one's progress.
    assert_random(&inst.memory()[PTR..PTR + len]);
}

/// Drives `ctx.call_again` from `first` until the call returns; the
/// number of parts.
fn finish(ctx: &mut WasiCtx, mem: &mut [u8], args: &[u64], first: WasiOutcome) -> usize {
    let mut parts = 1;
    let mut out = first;
    while let WasiOutcome::Continue(c) = out {
        out = ctx.call_again(WasiFunc::RandomGet, mem, args, c);
        parts += 1;
    }
    assert_eq!(out, WasiOutcome::Return(0));
    parts
}

#[test]
fn progress_belongs_to_the_call_that_made_it() {
    let mut ctx = WasiCtx::builder().build().unwrap();
    let mut mem = vec![0u8; 1 << 20];
    let (ptr, len) = (4096usize, 256usize << 10);
    let args = [ptr as u64, len as u64];
    let part = ptr..ptr + RANDOM_PART;

    // A continued call goes on where it stopped: the first part is left
    // as it is (marked here), the rest filled.
    let first = ctx.call(WasiFunc::RandomGet, &mut mem, &args);
    assert!(matches!(first, WasiOutcome::Continue(_)), "{first:?}");
    assert!(mem[ptr + RANDOM_PART..ptr + len].iter().all(|&b| b == 0));
    mem[part.clone()].fill(0xAA);
    assert_eq!(finish(&mut ctx, &mut mem, &args, first), len / RANDOM_PART);
    assert!(mem[part.clone()].iter().all(|&b| b == 0xAA));
    assert_random(&mem[ptr + RANDOM_PART..ptr + len]);

    // Another call in between: the old continuation starts afresh.
    mem.fill(0);
    let WasiOutcome::Continue(stale) = ctx.call(WasiFunc::RandomGet, &mut mem, &args) else {
        panic!("a 256 KiB random_get is done in parts");
    };
    mem[part.clone()].fill(0);
    let t = 8192u64;
    assert_eq!(
        ctx.call(WasiFunc::ClockTimeGet, &mut mem, &[1, 0, t]),
        WasiOutcome::Return(0)
    );
    mem[t as usize..t as usize + 8].fill(0);
    let again = ctx.call_again(WasiFunc::RandomGet, &mut mem, &args, stale);
    finish(&mut ctx, &mut mem, &args, again);
    assert_random(&mem[ptr..ptr + len]);

    // So does a continuation of a different call, or a made-up one.
    for other in [[ptr as u64 + 1, len as u64], args] {
        mem.fill(0);
        let WasiOutcome::Continue(c) = ctx.call(WasiFunc::RandomGet, &mut mem, &other) else {
            panic!("done in parts");
        };
        mem.fill(0);
        let wrong = Continuation::from_raw(c.to_raw().wrapping_add(1)).unwrap();
        let c = if other == args { wrong } else { c };
        let again = ctx.call_again(WasiFunc::RandomGet, &mut mem, &args, c);
        finish(&mut ctx, &mut mem, &args, again);
        assert_random(&mem[ptr..ptr + len]);
    }
}
