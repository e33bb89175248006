//! Host calls cost time the guest's fuel rate does not know about. The
//! time-slice slow path sizes a grant from the rate at which the guest
//! spent units just before; a guest that spent cheap units (a tight loop)
//! and then called host functions in a loop got a grant of thousands of
//! units, each now buying a host call 100 times dearer than the units the
//! grant was sized for. Every host call now charges the fuel counter a
//! fixed `HOST_CALL_CYCLES` worth of time (and host functions that take
//! longer charge what they took: `Caller::charge_time`), and a host call
//! that returns past the slice's deadline ends the grant, whether or not
//! the function charged itself.

mod compiled;

use compiled::{compile_wat, region_with, thread_cpu_ns};
use myriad_codegen::abi::{FuncType, ValType};
use myriad_codegen::CompileConfig;
use myriad_runtime::fuel::ns_to_tsc;
use myriad_runtime::{rdtsc, HostAction, Linker, Outcome, Val};

/// The guest of both tests: `run(fast, calls)` loops forever over a tight
/// loop of `fast` cheap iterations (which teaches the slow path a rate of
/// cheap units) and `calls` calls of the host function `env.work`.
const CHEAP_THEN_CALLS: &str = r#"(module
           (import "env" "work" (func $work (param i64) (result i64)))
           (func (export "run") (param $fast i32) (param $calls i32) (local $i i32) (local $x i64)
             (loop $outer
               (local.set $i (local.get $fast))
               (loop $f (br_if $f (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
               (local.set $i (local.get $calls))
               (loop $h
                 (local.set $x (call $work (local.get $x)))
                 (br_if $h (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
               (br $outer))))"#;

/// Run `slices` time slices of `quantum_ns` of `CHEAP_THEN_CALLS` with
/// `work` as its host function; the most CPU one slice took, in ns.
fn worst_slice(
    work: impl Fn(&mut myriad_runtime::Caller<'_>, &mut [u64]) -> HostAction + Send + Sync + 'static,
    fast: i32,
    calls: i32,
    quantum_ns: u64,
    slices: usize,
) -> u64 {
    let module = compile_wat(CHEAP_THEN_CALLS, &CompileConfig::default());
    let mut linker = Linker::new();
    linker.func(
        "env",
        "work",
        FuncType {
            params: vec![ValType::I64],
            results: vec![ValType::I64],
        },
        work,
    );
    let region = region_with(1, 1 << 16);
    let mut inst = linker.instantiate(&region, &module, None).unwrap();
    inst.call("run", &[Val::I32(fast), Val::I32(calls)])
        .unwrap();
    let quantum = ns_to_tsc(quantum_ns);
    let mut worst = 0;
    for _ in 0..slices {
        let t = thread_cpu_ns();
        assert_eq!(inst.resume(rdtsc() + quantum), Outcome::Yielded);
        worst = worst.max(thread_cpu_ns() - t);
    }
    worst
}

/// An embedder's host function of about 10 µs that does not charge
/// itself (`Caller::charge_time`): before the deadline check after every
/// host call, it was charged the fixed `HOST_CALL_CYCLES` only, and a
/// grant sized for the tight loop's units bought about 250 of its calls,
/// a 20 µs slice running for milliseconds.
#[test]
fn a_slow_host_function_that_does_not_charge_itself_ends_the_slice() {
    let spin = |_: &mut myriad_runtime::Caller<'_>, cells: &mut [u64]| {
        let until = rdtsc() + ns_to_tsc(10_000);
        while rdtsc() < until {
            std::hint::spin_loop();
        }
        cells[0] = cells[0].wrapping_add(1);
        HostAction::Return
    };
    let worst = worst_slice(spin, 2_000_000, 1_000, 20_000, 200);
    eprintln!("worst slice: {worst} ns of CPU for a 20 µs quantum of 10 µs host calls");
    // One call past the deadline, the code up to the next check and the
    // switch: well under 1 ms even on a loaded machine.
    assert!(worst < 1_000_000, "a 20 µs slice took {worst} ns");
}

/// A host function that charges itself far less than it takes (1 cycle
/// for 10 µs) is bounded the same way: the clock is read after every
/// host call, whatever it charged. (When functions that charged
/// themselves were trusted, this one ran 1.5 ms in a 20 µs slice.)
#[test]
fn a_host_function_that_undercharges_itself_still_ends_the_slice() {
    let spin = |caller: &mut myriad_runtime::Caller<'_>, cells: &mut [u64]| {
        let until = rdtsc() + ns_to_tsc(10_000);
        while rdtsc() < until {
            std::hint::spin_loop();
        }
        caller.charge_time(1);
        cells[0] = cells[0].wrapping_add(1);
        HostAction::Return
    };
    let worst = worst_slice(spin, 2_000_000, 1_000, 20_000, 200);
    eprintln!("worst slice: {worst} ns of CPU for a 20 µs quantum of undercharged calls");
    assert!(worst < 1_000_000, "a 20 µs slice took {worst} ns");
}

/// `memory.grow` in guard mode opens pages with `mprotect`, microseconds
/// a call that the guest's fuel rate does not know of: one-page grows in
/// a loop after cheap units held a 20 µs slice 5–18 ms before the
/// builtin charged the system call's time.
#[test]
fn memory_grow_in_guard_mode_is_charged_its_system_call() {
    let module = compile_wat(
        r#"(module
          (memory 1)
          (func (export "run") (param $fast i32) (local $i i32)
            (loop $outer
              (local.set $i (local.get $fast))
              (loop $f (br_if $f (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
              (loop $g
                (br_if $g (i32.ge_s (memory.grow (i32.const 1)) (i32.const 0))))
              (br $outer))))"#,
        &CompileConfig::default(),
    );
    let cap = 1usize << 30;
    let region = std::sync::Arc::new(
        myriad_runtime::Region::new(myriad_runtime::RegionConfig {
            slots: 1,
            stack_size: 16 * 1024,
            heap_capacity: cap,
            guard_size: 1 << 16,
            guard_mode: true,
            heap_reservation: 0,
        })
        .expect("region"),
    );
    let mut inst = myriad_runtime::Instance::instantiate(&region, &module).unwrap();
    inst.call("run", &[Val::I32(2_000_000)]).unwrap();
    let quantum = ns_to_tsc(20_000);
    let mut worst = 0;
    for _ in 0..2_000 {
        let t = thread_cpu_ns();
        assert_eq!(inst.resume(rdtsc() + quantum), Outcome::Yielded);
        worst = worst.max(thread_cpu_ns() - t);
        if inst.memory().len() >= cap {
            break;
        }
    }
    eprintln!("worst slice: {worst} ns of CPU for a 20 µs quantum of memory.grow");
    assert!(worst < 2_000_000, "a 20 µs slice took {worst} ns");
}

#[test]
fn host_calls_after_cheap_units_do_not_overrun_a_time_slice() {
    // About 100 ns of work that does not charge itself.
    let work = |_: &mut myriad_runtime::Caller<'_>, cells: &mut [u64]| {
        let mut x = cells[0];
        for i in 0..40u64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
        cells[0] = x;
        HostAction::Return
    };
    let worst = worst_slice(work, 2_000_000, 100_000, 20_000, 300);
    eprintln!("worst slice: {worst} ns of CPU for a 20 µs quantum");
    assert!(worst < 5_000_000, "a 20 µs slice took {worst} ns");
}
