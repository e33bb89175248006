//! Host calls paid in time: a guest spent cheap fuel units (a tight
//! loop), so the time-slice slow path sized its next grant for them, and
//! then spent the grant calling a WASI function that takes microseconds
//! (a 16 KiB `random_get`, one part, no `slice_over` check inside) once
//! per loop iteration: one unit bought a host call thousands of times
//! dearer than the units the grant was sized for, and the slice overran
//! by milliseconds. Every WASI call now charges the fuel counter for its
//! time at the guest's measured rate (`Caller::charge_time`), as the
//! bulk builtins do, so the next check comes when the grant's time is
//! used up.

use crate::thread_cpu;
use myriad_runtime::{fuel::ns_to_tsc, Instance, Outcome, Val};
use std::time::Duration;

/// `run(fast, calls)`: for ever, a tight loop of `fast` iterations, then
/// `calls` calls of `random_get` of 16 KiB.
const GUEST: &str = r#"(module
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "run") (param $fast i32) (param $calls i32) (local $i i32)
    (loop $outer
      (local.set $i (local.get $fast))
      (loop $f (br_if $f (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
      (local.set $i (local.get $calls))
      (loop $h
        (drop (call $random (i32.const 0) (i32.const 16384)))
        (br_if $h (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
      (br $outer))))"#;

fn instance() -> Instance {
    let mut inst = crate::wasi_instance(GUEST, 1 << 16);
    inst.call("run", &[Val::I32(2_000_000), Val::I32(1_000)])
        .unwrap();
    inst
}

#[test]
fn host_calls_after_cheap_units_do_not_overrun_a_time_slice() {
    let mut inst = instance();
    let quantum = ns_to_tsc(20_000);
    let mut worst = Duration::ZERO;
    for _ in 0..300 {
        let t = thread_cpu();
        assert_eq!(
            inst.resume(myriad_runtime::rdtsc() + quantum),
            Outcome::Yielded
        );
        worst = worst.max(thread_cpu().saturating_sub(t));
    }
    eprintln!("worst slice: {worst:?} of CPU for a 20 µs quantum");
    // Measured: about 0.1 ms (a host call is far dearer than the units
    // the first grant was sized for, but the next check follows it).
    assert!(
        worst < Duration::from_millis(5),
        "a 20 µs slice took {worst:?}"
    );
}
