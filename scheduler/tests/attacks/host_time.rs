//! Attack: make a messaging host call do long work for a small charge.
//! The time-slice slow path sizes a grant from the rate at which the guest
//! spent fuel units; a guest that spent cheap units and then looped over a
//! dear host call got a grant of many calls.
//!
//! * `myriad.spawn` of the guest's own module copies that module's data
//!   segments, which the guest chooses: with a 1 MiB segment a spawn took
//!   0.57 ms while charging a flat 4,096 cycles, and slices of 20 µs
//!   overran by 3.1–3.3 ms at p99.
//! * `myriad.send` of a message no mailbox could take (32 MiB to a 64 KiB
//!   mailbox) copied it before refusing it: 5 ms a send.
//!
//! Must hold: every host call that returns to the guest past the slice's
//! deadline ends the grant (the guest yields at its next check), whatever
//! it charged, and a send the mailbox bounds refuse copies nothing. The
//! figures asserted are overruns at p90: they are wall time, and on a
//! loaded machine (tests run in parallel on two cores) the worker thread
//! is descheduled inside a slice often enough to reach p99, rarely p90.

use super::{linker, module};
use myriad_runtime::Val;
use myriad_scheduler::{metrics::Summary, Scheduler, SchedulerConfig, SpawnOptions};
use std::time::Duration;

fn config(heap: usize) -> SchedulerConfig {
    SchedulerConfig {
        workers: 1,
        capacity: 128,
        heap_capacity: heap,
        quantum: Duration::from_micros(20),
        pin_workers: false,
        ..SchedulerConfig::default()
    }
}

/// Run the scheduler for `ms`, then cancel `handles` and return the
/// overrun p90 in ns.
fn overrun_p90(s: Scheduler, handles: &[myriad_scheduler::InstanceHandle], ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    for h in handles {
        h.cancel();
    }
    let report = s.shutdown();
    let o = Summary::of(&report.metrics.overrun);
    eprintln!("overrun {o:?} over {} slices", report.metrics.slices);
    assert!(report.metrics.slices > 100, "too few slices to judge");
    o.p90
}

/// The guest's loop: a tight loop of 2,000,000 iterations (cheap units),
/// then `calls` times `call`.
fn cheap_then(call: &str, calls: u32) -> String {
    format!(
        r#"(func (export "run") (param $dest i64) (local $i i32)
    (loop $outer
      (local.set $i (i32.const 2000000))
      (loop $f (br_if $f (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
      (local.set $i (i32.const {calls}))
      (loop $h
        {call}
        (br_if $h (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
      (br $outer)))"#
    )
}

#[test]
fn spawning_a_module_with_a_large_data_segment_does_not_hold_the_worker() {
    let wat = format!(
        r#"(module
  (import "myriad" "spawn" (func $spawn (param i32 i32 i32 i32 i32) (result i64)))
  (memory 32)
  (data (i32.const 0) "child")
  (data (i32.const 1024) "{}")
  (func (export "child"))
  {})"#,
        "a".repeat((1 << 20) - 1024),
        cheap_then(
            "(drop (call $spawn (i32.const 0) (i32.const 5) (i32.const 0) (i32.const 0) (i32.const 0)))",
            64
        )
    );
    let s = Scheduler::new(config(2 << 20)).expect("scheduler");
    let h = s
        .spawn_with(
            &module(&wat),
            "run",
            &[Val::I64(0)],
            SpawnOptions::new().linker(&linker()),
        )
        .expect("spawn");
    let p90 = overrun_p90(s, &[h], 1_500);
    // One spawn past the deadline is about 0.3–0.6 ms; the grant bought
    // 2.6 ms of them at p90.
    assert!(p90 < 1_500_000, "overrun p90 {p90} ns");
}

#[test]
fn a_send_no_mailbox_can_take_is_refused_before_it_is_copied() {
    const DEAF: &str = r#"(module
  (import "myriad" "sleep" (func $sleep (param i64)))
  (func (export "run") (call $sleep (i64.const 60000000000))))"#;
    let wat = format!(
        r#"(module
  (import "myriad" "send" (func $send (param i64 i32 i32) (result i32)))
  (memory 512)
  {})"#,
        cheap_then(
            "(drop (call $send (local.get $dest) (i32.const 0) (i32.const 0x2000000)))",
            64
        )
    );
    let s = Scheduler::new(config(32 << 20)).expect("scheduler");
    let l = linker();
    let deaf = s
        .spawn_with(&module(DEAF), "run", &[], SpawnOptions::new().linker(&l))
        .expect("spawn");
    let h = s
        .spawn_with(
            &module(&wat),
            "run",
            &[Val::I64(deaf.id() as i64)],
            SpawnOptions::new().linker(&l),
        )
        .expect("spawn");
    let p90 = overrun_p90(s, &[h, deaf], 1_500);
    // A refused send copies nothing; copying 32 MiB took milliseconds.
    assert!(p90 < 1_000_000, "overrun p90 {p90} ns");
}
