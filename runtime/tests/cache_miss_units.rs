//! A fuel unit of dependent loads that miss the cache costs thousands of
//! cycles, not the 16 or so the meter prices it at, so a guest that spends
//! cheap units (a tight loop, which makes the slow path size a large
//! grant) and then chases pointers through 64 MiB held the worker far past
//! a 20 µs time slice: 51–76 ms of CPU (review 12, 2026-12-06). No static
//! weight closes it (a miss costs hundreds of cycles, a tight loop's unit
//! a quarter of one). The deadline kick does (`signals`, "The deadline
//! kick"): a timer of the thread's CPU time marks the counter of a slice
//! overrun by more than 50 µs, and the next check ends it. The timer is
//! evaluated at the kernel's tick (4 ms at the common HZ=250), so the
//! bound is about one tick: this asserts 10 ms.

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
fn cache_missing_loads_after_cheap_units_do_not_overrun_a_time_slice() {
    check_overrun();
}

#[test]
fn a_thread_that_blocked_sigurg_before_is_kicked_too() {
    // Embedders often block every signal before they spawn threads; the
    // kick's signal must be opened again on a thread that runs guests.
    std::thread::spawn(|| {
        // SAFETY: changing this (fresh) thread's own signal mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGURG);
            assert_eq!(
                libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()),
                0
            );
        }
        check_overrun();
    })
    .join()
    .unwrap();
}

/// Run the pointer chase after cheap units in 20 µs slices on this
/// thread and check no slice held it past the bound.
fn check_overrun() {
    const QUANTUM_NS: u64 = 20_000;
    // One kernel tick (4 ms at HZ=250) after the margin, and room for a
    // loaded machine.
    const BOUND_NS: u64 = 10_000_000;
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
    assert!(inst.deadline_kicks() > 0, "no slice was kicked");
    assert!(
        worst < BOUND_NS,
        "a {QUANTUM_NS} ns slice held the thread for {worst} ns"
    );
}

/// `run(fast, heavy, rounds)`: `rounds` times a tight loop of `fast`
/// iterations, then `heavy` rounds of 32 dependent loads; returns the
/// pointer where the chase ended.
fn finite_wat() -> String {
    wat().replace(
        r#"(func (export "run") (param $fast i32) (param $heavy i32) (local $i i32) (local $p i32)
    (loop $outer"#,
        r#"(func (export "run") (param $fast i32) (param $heavy i32) (param $rounds i32) (result i32)
    (local $i i32) (local $p i32)
    (loop $outer"#,
    )
    .replace(
        "      (br $outer))))",
        "      (br_if $outer (local.tee $rounds (i32.sub (local.get $rounds) (i32.const 1)))))
    (local.get $p)))",
    )
}

#[test]
fn kicked_slices_charge_exactly_the_fuel_the_guest_spent() {
    // The kick marks the counter and the runtime takes the mark off
    // before it counts: a run whose time slices were kicked uses the
    // same fuel, to the unit, and computes the same result, as the same
    // run in fuel slices, which are never kicked.
    let m = compile_wat(&finite_wat(), &CompileConfig::default());
    let region = region_with(1, HEAP);
    let args = [Val::I32(2_000_000), Val::I32(3_000), Val::I32(4)];
    let mut results = Vec::new();
    for time_slices in [false, true] {
        let mut inst = Instance::new(&region, &m, "init", &[]).unwrap();
        assert_eq!(run(&mut inst), Outcome::Finished(vec![]));
        // (`init` itself may be kicked: it faults in 64 MiB.)
        let before = inst.fuel_used();
        let kicks = inst.deadline_kicks();
        inst.call("run", &args).unwrap();
        let outcome = loop {
            let o = if time_slices {
                inst.resume(rdtsc() + ns_to_tsc(20_000))
            } else {
                inst.resume_fuel(1 << 30)
            };
            if o != Outcome::Yielded {
                break o;
            }
        };
        if time_slices {
            assert!(inst.deadline_kicks() > kicks, "no slice was kicked");
        } else {
            assert_eq!(inst.deadline_kicks(), kicks);
        }
        results.push((outcome, inst.fuel_used() - before));
        drop(inst);
    }
    assert!(
        matches!(results[0].0, Outcome::Finished(_)),
        "{:?}",
        results[0].0
    );
    assert_eq!(results[0], results[1]);
}
