//! Fuel slices (`Instance::resume_fuel`): deterministic preemption by fuel
//! spent instead of time.

mod compiled;

use compiled::{compile_wat, region_with};
use myriad_codegen::CompileConfig;
use myriad_runtime::{Instance, Limit, Outcome, Val};

/// Counts to its argument in a loop: one fuel check per iteration plus
/// one at function entry.
const COUNT: &str = r#"(module
     (func (export "count") (param $n i64) (result i64) (local $i i64)
       (loop $l
         (local.set $i (i64.add (local.get $i) (i64.const 1)))
         (br_if $l (i64.lt_u (local.get $i) (local.get $n))))
       (local.get $i)))"#;

/// Run `count(n)` in fuel slices of `units`; the number of slices taken.
fn slices(units: u64, n: i64) -> u64 {
    let m = compile_wat(COUNT, &CompileConfig::default());
    let region = region_with(1, 64 << 10);
    let mut inst = Instance::new(&region, &m, "count", &[Val::I64(n)]).expect("instance");
    let mut slices = 0;
    loop {
        slices += 1;
        match inst.resume_fuel(units) {
            Outcome::Yielded => continue,
            Outcome::Finished(v) => {
                assert_eq!(v, vec![Val::I64(n)]);
                return slices;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn fuel_slices_are_deterministic() {
    let n = 1_000_000;
    let units = 10_000;
    let first = slices(units, n);
    // About one slice per `units + 1` checks (the check that runs out
    // ends it), whatever the machine's speed.
    let checks = n as u64 + 1;
    let expected = checks.div_ceil(units + 1);
    assert!(
        (expected..=expected + 1).contains(&first),
        "{first} slices, expected about {expected}"
    );
    for _ in 0..3 {
        assert_eq!(slices(units, n), first, "same guest, same slices");
    }
    // A budget larger than the work finishes in one slice.
    assert_eq!(slices(10 * n as u64, n), 1);
}

#[test]
fn fuel_limit_applies_in_fuel_slices() {
    let m = compile_wat(COUNT, &CompileConfig::default());
    let region = region_with(1, 64 << 10);
    let mut inst = Instance::new(&region, &m, "count", &[Val::I64(1_000_000)]).expect("instance");
    inst.set_fuel_limit(50_000);
    let mut slices = 0;
    let outcome = loop {
        slices += 1;
        match inst.resume_fuel(1_000) {
            Outcome::Yielded => continue,
            other => break other,
        }
    };
    assert_eq!(outcome, Outcome::Limited(Limit::Fuel));
    assert!((45..=55).contains(&slices), "{slices} slices of 1000 units");
}

#[test]
fn time_slices_after_fuel_slices_use_the_clock_again() {
    let m = compile_wat(COUNT, &CompileConfig::default());
    let region = region_with(1, 64 << 10);
    let mut inst = Instance::new(&region, &m, "count", &[Val::I64(50_000_000)]).expect("instance");
    assert_eq!(inst.resume_fuel(1_000), Outcome::Yielded);
    // A time slice with a far deadline is not cut short by the last fuel
    // slice's budget: it runs to the end.
    let far = myriad_runtime::rdtsc() + myriad_runtime::fuel::ns_to_tsc(60_000_000_000);
    assert_eq!(
        inst.resume(far),
        Outcome::Finished(vec![Val::I64(50_000_000)])
    );
}

#[test]
fn a_fuel_slice_never_grants_past_the_budget() {
    let m = compile_wat(COUNT, &CompileConfig::default());
    let region = region_with(1, 64 << 10);
    let mut inst = Instance::new(&region, &m, "count", &[Val::I64(1_000_000)]).expect("instance");
    inst.set_fuel_limit(1_000);
    assert_eq!(
        inst.resume_fuel(1_000_000_000),
        Outcome::Limited(Limit::Fuel)
    );
    assert!(inst.fuel_used() <= 1_002, "used {}", inst.fuel_used());
}

#[test]
fn fuel_spent_before_a_host_yield_counts_against_the_budget() {
    // Each iteration spends a few units and then yields through a host
    // function, so the slice never runs out of fuel on its own.
    let m = compile_wat(
        r#"(module
             (import "env" "yield" (func $yield))
             (func (export "run")
               (loop $l (call $yield) (br $l))))"#,
        &CompileConfig::default(),
    );
    let mut linker = myriad_runtime::Linker::new();
    linker.func(
        "env",
        "yield",
        myriad_runtime::FuncType {
            params: vec![],
            results: vec![],
        },
        |_, _| myriad_runtime::HostAction::Yield,
    );
    let region = region_with(1, 64 << 10);
    for time_slices in [false, true] {
        let mut inst = linker.instantiate(&region, &m, None).expect("instance");
        inst.call("run", &[]).expect("arm");
        inst.set_fuel_limit(500);
        let mut slices = 0;
        let outcome = loop {
            slices += 1;
            assert!(slices < 10_000, "the budget never ran out");
            let o = if time_slices {
                inst.resume(myriad_runtime::rdtsc() + 10_000_000)
            } else {
                inst.resume_fuel(100_000)
            };
            match o {
                Outcome::Yielded => continue,
                other => break other,
            }
        };
        assert_eq!(outcome, Outcome::Limited(Limit::Fuel));
    }
}

/// Bulk builtins cost fuel for their work: `fill(k, n)` runs `k`
/// `table.fill`s of `n` elements (one loop iteration each).
const FILLS: &str = r#"(module (table $t 100000 externref) (memory 1)
     (data $d "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
     (func (export "fill") (param $k i32) (param $n i32)
       (loop $l
         (table.fill $t (i32.const 0) (ref.null extern) (local.get $n))
         (local.set $k (i32.sub (local.get $k) (i32.const 1)))
         (br_if $l (local.get $k))))
     (func (export "init") (param $k i32)
       (loop $l
         (memory.init $d (i32.const 0) (i32.const 0) (i32.const 64))
         (local.set $k (i32.sub (local.get $k) (i32.const 1)))
         (br_if $l (local.get $k)))))"#;

#[test]
fn bulk_builtins_are_metered_by_fuel() {
    let m = compile_wat(FILLS, &CompileConfig::default());
    let region = region_with(1, 64 << 10);
    // Ten fills of 100,000 elements spend at least a million units.
    let mut inst = Instance::new(&region, &m, "fill", &[Val::I32(10), Val::I32(100_000)]).unwrap();
    assert_eq!(inst.resume_fuel(u64::MAX / 4), Outcome::Finished(vec![]));
    assert!(inst.fuel_used() >= 1_000_000, "{}", inst.fuel_used());
    drop(inst);
    // So a budget of 500,000 units ends the instance after the fifth fill
    // (it is not overdrawn by more than one fill).
    let mut inst =
        Instance::new(&region, &m, "fill", &[Val::I32(1000), Val::I32(100_000)]).unwrap();
    inst.set_fuel_limit(500_000);
    assert_eq!(
        inst.resume_fuel(u64::MAX / 4),
        Outcome::Limited(Limit::Fuel)
    );
    assert!(
        (500_000..700_000).contains(&inst.fuel_used()),
        "{}",
        inst.fuel_used()
    );
    drop(inst);
    // And a fuel slice of 150,000 units ends at the first chunk boundary
    // (4,096 elements) after it is spent, inside a fill: about a million
    // units in slices of 150,000 to 154,096 take 7 slices.
    let mut inst = Instance::new(&region, &m, "fill", &[Val::I32(10), Val::I32(100_000)]).unwrap();
    let mut slices = 1;
    while inst.resume_fuel(150_000) == Outcome::Yielded {
        slices += 1;
    }
    assert_eq!(inst.outcome(), Outcome::Finished(vec![]));
    assert_eq!(slices, 7, "slices end mid-fill, at chunk boundaries");
    drop(inst);
    // In time slices the work counts against the budget the same way.
    let mut inst = Instance::new(&region, &m, "fill", &[Val::I32(10), Val::I32(100_000)]).unwrap();
    assert_eq!(inst.resume(u64::MAX / 4), Outcome::Finished(vec![]));
    assert!(inst.fuel_used() >= 1_000_000, "{}", inst.fuel_used());
    drop(inst);
    let mut inst =
        Instance::new(&region, &m, "fill", &[Val::I32(1000), Val::I32(100_000)]).unwrap();
    inst.set_fuel_limit(500_000);
    assert_eq!(inst.resume(u64::MAX / 4), Outcome::Limited(Limit::Fuel));
    drop(inst);
    // memory.init: one unit per 8 bytes, so 10,000 inits of 64 bytes cost
    // 80,000 units besides the loop's own 10,000.
    let mut inst = Instance::new(&region, &m, "init", &[Val::I32(10_000)]).unwrap();
    assert_eq!(inst.resume_fuel(u64::MAX / 4), Outcome::Finished(vec![]));
    assert!(inst.fuel_used() >= 90_000, "{}", inst.fuel_used());
}

/// One loop of each shape the compiler checks fuel for differently (see
/// `plan_loops` in myriad-codegen): `while` ends in one `br`
/// back (checked on that edge); `dowhile` branches back with `br_if`,
/// `table` with `br_table` and `twice` with two `br`s (all checked at the
/// header). Each counts to its argument and returns the count.
const SHAPES: &str = r#"(module
     (func (export "while") (param $n i64) (result i64) (local $i i64)
       (block $done
         (loop $l
           (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
           (local.set $i (i64.add (local.get $i) (i64.const 1)))
           (br $l)))
       (local.get $i))
     (func (export "dowhile") (param $n i64) (result i64) (local $i i64)
       (loop $l
         (local.set $i (i64.add (local.get $i) (i64.const 1)))
         (br_if $l (i64.lt_u (local.get $i) (local.get $n))))
       (local.get $i))
     (func (export "table") (param $n i64) (result i64) (local $i i64)
       (block $done
         (loop $l
           (local.set $i (i64.add (local.get $i) (i64.const 1)))
           (br_table $l $done (i64.ge_u (local.get $i) (local.get $n)))))
       (local.get $i))
     (func (export "twice") (param $n i64) (result i64) (local $i i64)
       (block $done
         (loop $l
           (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
           (local.set $i (i64.add (local.get $i) (i64.const 1)))
           (if (i64.eqz (i64.and (local.get $i) (i64.const 1)))
             (then (br $l)))
           (br $l)))
       (local.get $i))
     (func (export "spin") (loop $l (br $l))))"#;

#[test]
fn every_loop_shape_pays_one_unit_per_iteration() {
    let n = 1_000_000i64;
    let units = 10_000u64;
    let m = compile_wat(SHAPES, &CompileConfig::default());
    let region = region_with(1, 64 << 10);
    for export in ["while", "dowhile", "table", "twice"] {
        let mut inst = Instance::new(&region, &m, export, &[Val::I64(n)]).expect("instance");
        let mut slices = 0u64;
        loop {
            slices += 1;
            match inst.resume_fuel(units) {
                Outcome::Yielded => continue,
                Outcome::Finished(v) => {
                    assert_eq!(v, vec![Val::I64(n)], "{export}");
                    break;
                }
                other => panic!("{export}: unexpected {other:?}"),
            }
        }
        // n iterations, one check each, plus the entry check (and one
        // more pass of the header for the shapes that test at the
        // top): n + 1 or n + 2 units, a slice per `units + 1`.
        let low = (n as u64 + 1).div_ceil(units + 1);
        assert!(
            (low..=low + 1).contains(&slices),
            "{export}: {slices} slices, expected about {low}"
        );
    }
}

#[test]
fn a_loop_closed_by_br_is_preempted() {
    let m = compile_wat(SHAPES, &CompileConfig::default());
    let region = region_with(1, 64 << 10);
    let mut inst = Instance::new(&region, &m, "spin", &[]).expect("instance");
    for _ in 0..3 {
        assert_eq!(inst.resume_fuel(1_000), Outcome::Yielded);
    }
    let soon = myriad_runtime::rdtsc() + myriad_runtime::fuel::ns_to_tsc(1_000_000);
    assert_eq!(inst.resume(soon), Outcome::Yielded);
    inst.set_fuel_limit(inst.fuel_used() + 5_000);
    let outcome = loop {
        match inst.resume_fuel(1_000) {
            Outcome::Yielded => continue,
            other => break other,
        }
    };
    assert_eq!(outcome, Outcome::Limited(Limit::Fuel));
}

/// Counts to its argument, then traps: by `unreachable` (a `ud2`), or by
/// a load past its memory (a fault on the guard in sparse mode, a
/// failed bounds check in dense mode).
const COUNT_THEN_TRAP: &str = r#"(module
     (memory 1)
     (func $count (param $n i64) (local $i i64)
       (loop $l
         (local.set $i (i64.add (local.get $i) (i64.const 1)))
         (br_if $l (i64.lt_u (local.get $i) (local.get $n)))))
     (func (export "unreachable") (param $n i64)
       (call $count (local.get $n))
       unreachable)
     (func (export "oob") (param $n i64)
       (call $count (local.get $n))
       (drop (i32.load (i32.const 0x7fff0000)))))"#;

#[test]
fn a_trap_charges_the_fuel_spent_before_it() {
    // The counter lives in r15 in compiled code (ABI 14); the trap
    // handler takes it from there. Before, a trapping call was charged
    // only up to the last store of the counter (here: nothing of the
    // loop), so a guest whose every call trapped ran past any budget.
    let n = 100_000i64;
    for config in [CompileConfig::dense(), CompileConfig::sparse()] {
        let m = compile_wat(COUNT_THEN_TRAP, &config);
        let region = if config.is_sparse() {
            std::sync::Arc::new(
                myriad_runtime::Region::new(myriad_runtime::RegionConfig {
                    slots: 1,
                    stack_size: 64 << 10,
                    heap_capacity: 64 << 10,
                    heap_reservation: myriad_codegen::SPARSE_RESERVATION as usize,
                    guard_size: myriad_codegen::SPARSE_GUARD as usize,
                    guard_mode: true,
                })
                .expect("region"),
            )
        } else {
            region_with(1, 64 << 10)
        };
        for export in ["unreachable", "oob"] {
            let mut inst = Instance::new(&region, &m, export, &[Val::I64(n)]).expect("instance");
            match inst.resume_fuel(1 << 30) {
                Outcome::Trapped(_) => {}
                other => panic!("{export}: unexpected {other:?}"),
            }
            let used = inst.fuel_used();
            assert!(
                (n as u64..n as u64 + 100).contains(&used),
                "{export} ({}): {used} units charged for {n} iterations",
                if config.is_sparse() {
                    "sparse"
                } else {
                    "dense"
                }
            );
        }
    }
}

/// A linked callee's fuel checks run the slow path of the green thread
/// that runs it, not its own instance's: its slow path finds exec through
/// its vmctx's `exec` field, which names the caller's exec while the
/// caller runs it. The callee spins `count(n)` in the provider's code, the
/// consumer's slices pay for it, and the fuel ends up on the consumer. (A
/// variant that handed the Rust slow path the callee's vmctx instead spun
/// in `Yielded` forever; this fails at once.)
#[test]
fn a_linked_callees_fuel_checks_charge_the_green_thread_that_runs_it() {
    let provider = compile_wat(COUNT, &CompileConfig::default());
    let consumer = compile_wat(
        r#"(module
             (import "p" "count" (func $count (param i64) (result i64)))
             (func (export "run") (param $n i64) (result i64)
               (call $count (local.get $n))))"#,
        &CompileConfig::default(),
    );
    let region = region_with(4, 64 << 10);
    let p = Instance::instantiate(&region, &provider).expect("provider");
    for time_slices in [false, true] {
        let mut linker = myriad_runtime::Linker::new();
        linker.instance("p", &p);
        let mut c = linker
            .instantiate(&region, &consumer, None)
            .expect("consumer");
        c.call("run", &[Val::I64(200_000)]).expect("arm");
        let mut slices = 0;
        let outcome = loop {
            slices += 1;
            assert!(slices < 100_000, "the callee never finished");
            let o = if time_slices {
                c.resume(myriad_runtime::rdtsc() + 200_000)
            } else {
                c.resume_fuel(1_000)
            };
            match o {
                Outcome::Yielded => continue,
                other => break other,
            }
        };
        assert_eq!(outcome, Outcome::Finished(vec![Val::I64(200_000)]));
        if !time_slices {
            // 200,000 iterations in 1,000-unit slices.
            assert!((200..=202).contains(&slices), "{slices} slices");
        }
        assert!(
            (200_000..=200_010).contains(&c.fuel_used()),
            "the consumer was charged {} units",
            c.fuel_used()
        );
        assert!(
            c.slow_path_calls() > 0,
            "the callee's checks ran no slow path"
        );
    }
}
