//! Straight-line code pays fuel for its length (see `translate::meter` in
//! myriad-codegen). Before, one unit paid for any amount of code between
//! two checks: a call of a function of 20,000 divisions and no loop cost
//! one unit and ran 72 µs, and a guest that spent cheap units (a tight
//! loop) before expensive ones made the time-slice slow path hand out
//! fuel for the cheap rate, holding a worker 65 ms to 1.5 s past a 20 µs
//! slice.

mod compiled;

use compiled::{compile_wat, region_with, thread_cpu_ns};
use myriad_codegen::CompileConfig;
use myriad_runtime::fuel::ns_to_tsc;
use myriad_runtime::{rdtsc, Instance, Limit, Outcome, Val};

/// `heavy(x, d)`: `n` dependent 64-bit divisions, no loop, no call.
/// `heavy_loop(x, d, k)`: a loop of `k` iterations whose body is the same
/// divisions. `run(fast, heavy)`: for ever, a tight loop of `fast`
/// iterations, then `heavy` calls of `heavy`. `run_merges(fast, heavy)`:
/// the same with a loop whose iterations skip 60 adds by a `br_if` to the
/// end of a block instead of the tight loop.
fn wat(n: usize) -> String {
    let divs = "(local.set $x (i64.div_u (local.get $x) (local.get $d)))\n".repeat(n);
    let adds = "(local.set $y (i64.add (local.get $y) (i64.const 3)))\n".repeat(60);
    format!(
        r#"(module
  (func $heavy (export "heavy") (param $x i64) (param $d i64) (result i64)
    {divs}
    (local.get $x))
  (func (export "heavy_loop") (param $x i64) (param $d i64) (param $k i32) (result i64)
    (loop $l
      {divs}
      (br_if $l (local.tee $k (i32.sub (local.get $k) (i32.const 1)))))
    (local.get $x))
  (func $merges (param $k i32) (param $skip i32) (local $y i64)
    (loop $l
      (block $b
        (br_if $b (local.get $skip))
        {adds})
      (br_if $l (local.tee $k (i32.sub (local.get $k) (i32.const 1))))))
  (func (export "run_merges") (param $fast i32) (param $heavy i32) (local $i i32) (local $x i64)
    (local.set $x (i64.const 0x123456789))
    (loop $outer
      (call $merges (local.get $fast) (i32.const 1))
      (local.set $i (local.get $heavy))
      (loop $h
        (local.set $x (call $heavy (local.get $x) (i64.const 1)))
        (br_if $h (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
      (br $outer)))
  (func (export "run") (param $fast i32) (param $heavy i32) (local $i i32) (local $x i64)
    (local.set $x (i64.const 0x123456789))
    (loop $outer
      (local.set $i (local.get $fast))
      (loop $f (br_if $f (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
      (local.set $i (local.get $heavy))
      (loop $h
        (local.set $x (call $heavy (local.get $x) (i64.const 1)))
        (br_if $h (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
      (br $outer))))"#
    )
}

/// Run to the end in fuel slices of `slice` units: the outcome and the
/// slices it took.
fn run_in_fuel_slices(inst: &mut Instance, slice: u64) -> (Outcome, u64) {
    let mut slices = 1;
    loop {
        match inst.resume_fuel(slice) {
            Outcome::Yielded => slices += 1,
            o => return (o, slices),
        }
    }
}

#[test]
fn a_long_straight_line_function_pays_for_its_length_and_yields_inside() {
    const N: usize = 2_000;
    for config in [CompileConfig::default(), CompileConfig::sparse()] {
        let m = compile_wat(&wat(N), &config);
        let region = region_with(1, 1 << 16);

        // A division weighs one unit; a check falls every 32 of them.
        let mut inst = Instance::new(&region, &m, "heavy", &[Val::I64(77), Val::I64(1)]).unwrap();
        let (o, slices) = run_in_fuel_slices(&mut inst, 1);
        assert_eq!(o, Outcome::Finished(vec![Val::I64(77)]));
        let used = inst.fuel_used();
        assert!(used >= N as u64, "{N} divisions cost {used} units");
        assert!(
            used <= N as u64 + N as u64 / 32 + 2,
            "{N} divisions cost {used} units"
        );
        assert!(
            slices >= N as u64 / 32,
            "{N} divisions yielded {slices} times in 1-unit slices"
        );
        drop(inst);

        // A budget below the function's cost ends it.
        let mut inst = Instance::new(&region, &m, "heavy", &[Val::I64(77), Val::I64(1)]).unwrap();
        inst.set_fuel_limit(N as u64 / 2);
        let (o, _) = run_in_fuel_slices(&mut inst, 1_000_000);
        assert_eq!(o, Outcome::Limited(Limit::Fuel));
        drop(inst);

        // The same in a loop body: every iteration pays for it.
        let args = [Val::I64(77), Val::I64(1), Val::I32(3)];
        let mut inst = Instance::new(&region, &m, "heavy_loop", &args).unwrap();
        let (o, slices) = run_in_fuel_slices(&mut inst, 1);
        assert_eq!(o, Outcome::Finished(vec![Val::I64(77)]));
        let used = inst.fuel_used();
        assert!(used >= 3 * N as u64, "3 x {N} divisions cost {used} units");
        assert!(slices >= 3 * N as u64 / 32, "yielded {slices} times");
    }
}

/// The worst CPU time one `resume` of `export(fast, heavy)` held the
/// thread, over 300 slices of `quantum_ns`.
fn worst_slice(export: &str, fast: i32, heavy: i32, quantum_ns: u64) -> u64 {
    let m = compile_wat(&wat(2_000), &CompileConfig::default());
    let region = region_with(1, 1 << 16);
    let args = [Val::I32(fast), Val::I32(heavy)];
    let mut inst = Instance::new(&region, &m, export, &args).unwrap();
    let mut worst = 0;
    for _ in 0..300 {
        let cpu = thread_cpu_ns();
        assert_eq!(
            inst.resume(rdtsc() + ns_to_tsc(quantum_ns)),
            Outcome::Yielded
        );
        worst = worst.max(thread_cpu_ns() - cpu);
    }
    eprintln!("{export}: worst slice {worst} ns of CPU for a {quantum_ns} ns quantum");
    worst
}

#[test]
fn cheap_units_then_expensive_units_do_not_overrun_a_time_slice() {
    // Before the weights, this guest held the thread 65 ms past a 20 µs
    // slice; now about 0.2 ms. A unit still costs between about a
    // quarter of a cycle (an iteration of an unrolled tight loop) and
    // about 16 cycles (16 of weight), and the grant after the switch from
    // cheap to expensive
    // units was sized for the cheap ones: the overrun is bounded by that
    // ratio times the grant's aim (at most 3/4 of the slice and
    // `fuel::MAX_AIM_CYCLES`). The bound leaves room for a loaded machine.
    const QUANTUM_NS: u64 = 20_000;
    const BOUND_NS: u64 = 5_000_000;
    // A tight loop, then divisions.
    let worst = worst_slice("run", 2_000_000, 100, QUANTUM_NS);
    assert!(
        worst < BOUND_NS,
        "a {QUANTUM_NS} ns slice held the thread for {worst} ns"
    );
    // A loop whose short path skips 60 adds: a forward branch pays the
    // debt before it once 64 of weight is due (`MERGE_WEIGHT` in
    // myriad-codegen's meter), so the short path is charged at most 3
    // units it did not run. With 400 adds charged at the merge this
    // overran by 0.5 ms; now the adds pay before the branch.
    let worst = worst_slice("run_merges", 2_000_000, 100, QUANTUM_NS);
    assert!(
        worst < BOUND_NS,
        "a {QUANTUM_NS} ns slice held the thread for {worst} ns"
    );
}
