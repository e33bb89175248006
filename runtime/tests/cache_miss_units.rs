//! A known gap (docs/SECURITY.md, "Host time", "What remains"): a fuel
//! unit of dependent loads that miss the cache costs thousands of cycles,
//! not the 16 or so the meter prices it at, so a guest that spends cheap
//! units (a tight loop, which makes the slow path size a large grant) and
//! then chases pointers through 64 MiB holds the worker far past a 20 µs
//! time slice: 51–70 ms of CPU in a review on 2026-12-06 (review 12).
//! No static weight closes it (a miss costs hundreds of cycles, a tight
//! loop's unit a quarter of one); an asynchronous interrupt of the guest
//! at its deadline would. The test is ignored until then: it fails today,
//! and it is the acceptance test of that fix
//! (`cargo test --release -p myriad-runtime --test cache_miss_units -- --ignored`).

mod compiled;

use compiled::{compile_wat, region_with, run, thread_cpu_ns};
use myriad_codegen::CompileConfig;
use myriad_runtime::fuel::ns_to_tsc;
use myriad_runtime::{rdtsc, Instance, Outcome, Val};

const HEAP: usize = 64 << 20;

fn wat() -> String {
    let loads = "(local.set $p (i32.load (local.get $p)))\n".repeat(32);
    format!(
        r#"(module
  (memory 1024 1024)
  ;; mem[i] = 4 * ((i * 1103515245 + 12345) mod 2^24): one full cycle over
  ;; 16 Mi words in pseudo-random order.
  (func (export "init") (local $i i32)
    (loop $l
      (i32.store (i32.shl (local.get $i) (i32.const 2))
        (i32.shl
          (i32.and (i32.add (i32.mul (local.get $i) (i32.const 1103515245)) (i32.const 12345))
                   (i32.const 0xffffff))
          (i32.const 2)))
      (br_if $l (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                        (i32.const 0x1000000)))))
  (func (export "run") (param $fast i32) (param $heavy i32) (local $i i32) (local $p i32)
    (loop $outer
      (local.set $i (local.get $fast))
      (loop $f (br_if $f (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
      (local.set $i (local.get $heavy))
      (loop $h
        {loads}
        (br_if $h (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
      (br $outer))))"#
    )
}

#[test]
#[ignore = "known gap: cache-missing loads overrun a time slice (docs/SECURITY.md, \"Host time\")"]
fn cache_missing_loads_after_cheap_units_do_not_overrun_a_time_slice() {
    const QUANTUM_NS: u64 = 20_000;
    // The documented bound is about 0.25 ms; leave room for a loaded machine.
    const BOUND_NS: u64 = 5_000_000;
    let m = compile_wat(&wat(), &CompileConfig::default());
    let region = region_with(1, HEAP);
    let mut inst = Instance::new(&region, &m, "init", &[]).unwrap();
    assert_eq!(run(&mut inst), Outcome::Finished(vec![]));
    inst.call("run", &[Val::I32(2_000_000), Val::I32(20_000)])
        .unwrap();
    let mut worst = 0;
    let start = thread_cpu_ns();
    for _ in 0..300 {
        let cpu = thread_cpu_ns();
        assert_eq!(
            inst.resume(rdtsc() + ns_to_tsc(QUANTUM_NS)),
            Outcome::Yielded
        );
        worst = worst.max(thread_cpu_ns() - cpu);
        if thread_cpu_ns() - start > 3_000_000_000 {
            break;
        }
    }
    eprintln!("worst slice {worst} ns of CPU for a {QUANTUM_NS} ns quantum");
    assert!(
        worst < BOUND_NS,
        "a {QUANTUM_NS} ns slice held the thread for {worst} ns"
    );
}
