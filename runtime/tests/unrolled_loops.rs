//! Unrolled loops (`plan_loops` in myriad-codegen): a small innermost loop
//! is compiled as several copies of its body with one fuel check per round
//! of copies. Every shape must compute what the plain loop computes and
//! spend exactly the same fuel, whichever copy it leaves from, however it
//! leaves, and however small the fuel slices that run it.
//!
//! The reference for each loop is the same loop with 30 `nop`s at the top
//! of its body: too long a body to unroll, and `nop` compiles to nothing.

mod compiled;

use compiled::{compile_wat, region_with};
use myriad_codegen::CompileConfig;
use myriad_runtime::{Instance, Limit, Outcome, Val};

/// Loop shapes, each a function `(param $n i64) (result i64)` whose loop
/// body starts with the marker `PAD`, replaced by nothing (unrolled) or
/// by `nop`s (the reference).
const SHAPES: &str = r#"(module
  (memory 1)
  ;; while: the exit test at the top, one br back (fuel checked on the
  ;; last copy's back edge).
  (func (export "while") (param $n i64) (result i64) (local $i i64)
    (block $done
      (loop $l
        PAD
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $l)))
    (local.get $i))
  ;; do-while: br_if back at the bottom (checked at the first copy).
  (func (export "dowhile") (param $n i64) (result i64) (local $i i64)
    (loop $l
      PAD
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $l (i64.lt_u (local.get $i) (local.get $n))))
    (local.get $i))
  ;; Leaves with a value through an outer block, from the middle.
  (func (export "break_value") (param $n i64) (result i64) (local $i i64)
    (block $out (result i64)
      (loop $l
        PAD
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br_if $out (i64.mul (local.get $i) (i64.const 10))
                    (i64.ge_u (local.get $i) (local.get $n)))
        (i64.store (i32.const 8) (local.get $i))
        (br $l))
      (i64.const -1)))
  ;; Leaves by `return` from inside the loop.
  (func (export "return") (param $n i64) (result i64) (local $i i64)
    (loop $l
      PAD
      (if (i64.ge_u (local.get $i) (local.get $n))
        (then (return (i64.add (local.get $i) (i64.const 1000)))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $l))
    (i64.const -1))
  ;; br_table to the loop, an outer block and the function.
  (func (export "table") (param $n i64) (result i64) (local $i i64)
    (block $done
      (loop $l
        PAD
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br_table $l $l $done
          (i32.add
            (i64.ge_u (local.get $i) (local.get $n))
            (i32.wrap_i64 (i64.and (local.get $i) (i64.const 1)))))))
    (local.get $i))
  ;; A loop with a parameter and a result, its counter on the stack.
  (func (export "params") (param $n i64) (result i64)
    (local $c i64)
    (i64.const 0)
    (loop $l (param i64) (result i64)
      PAD
      (local.tee $c (i64.add (i64.const 1)))
      (br_if $l (i64.lt_u (local.get $c) (local.get $n)))
      (i64.mul (i64.const 3)))
    (local.get $n)
    (i64.add))
  ;; Two branches back, one in each arm of an if.
  (func (export "two_back") (param $n i64) (result i64) (local $i i64) (local $odd i64)
    (block $done
      (loop $l
        PAD
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (if (i64.eqz (i64.and (local.get $i) (i64.const 1)))
          (then (br $l))
          (else
            (local.set $odd (i64.add (local.get $odd) (i64.const 1)))
            (br $l)))))
    (i64.add (local.get $i) (i64.shl (local.get $odd) (i64.const 32))))
  ;; An inner loop (unrolled) that continues the outer one (not unrolled:
  ;; it holds a loop) from inside, and leaves it by falling through.
  (func (export "nested") (param $n i64) (result i64) (local $i i64) (local $j i64) (local $sum i64)
    (block $done
      (loop $outer
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (local.set $j (i64.const 0))
        (loop $inner
          PAD
          (local.set $j (i64.add (local.get $j) (i64.const 1)))
          (local.set $sum (i64.add (local.get $sum) (local.get $j)))
          (br_if $outer (i64.ge_u (local.get $j) (local.get $i)))
          (br_if $inner (i64.lt_u (local.get $j) (i64.const 3))))
        (local.set $sum (i64.add (local.get $sum) (i64.const 100)))
        (br $outer)))
    (local.get $sum))
  ;; Traps from inside the loop (the i-th store is out of bounds).
  (func (export "trap") (param $n i64) (result i64) (local $i i64)
    (loop $l
      PAD
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (i64.store8 (i32.wrap_i64 (i64.add (i64.const 65533) (local.get $i))) (i64.const 1))
      (br_if $l (i64.lt_u (local.get $i) (local.get $n))))
    (local.get $i)))"#;

const EXPORTS: [&str; 9] = [
    "while",
    "dowhile",
    "break_value",
    "return",
    "table",
    "params",
    "two_back",
    "nested",
    "trap",
];

/// The result (or trap) of `export(n)` run in fuel slices of `units`, and
/// the fuel it used.
fn run(
    m: &std::sync::Arc<myriad_runtime::Module>,
    export: &str,
    n: i64,
    units: u64,
) -> (String, u64) {
    let region = region_with(1, 64 << 10);
    let mut inst = Instance::new(&region, m, export, &[Val::I64(n)]).expect("instance");
    let mut slices = 0u64;
    let outcome = loop {
        slices += 1;
        assert!(slices < 1_000_000, "{export}({n}) never finished");
        match inst.resume_fuel(units) {
            Outcome::Yielded => continue,
            other => break other,
        }
    };
    (format!("{outcome:?}"), inst.fuel_used())
}

#[test]
fn unrolled_loops_compute_and_spend_exactly_what_plain_loops_do() {
    let unrolled = compile_wat(&SHAPES.replace("PAD", ""), &CompileConfig::default());
    let plain = compile_wat(
        &SHAPES.replace("PAD", &"nop ".repeat(30)),
        &CompileConfig::default(),
    );
    for export in EXPORTS {
        // Every count of iterations modulo the copies (at most 4), so the
        // loop is left from every copy, and more than one round.
        for n in 0..=13 {
            let (want, want_fuel) = run(&plain, export, n, 1 << 40);
            for units in [1 << 40, 1, 2, 3, 5] {
                let (got, fuel) = run(&unrolled, export, n, units);
                assert_eq!(got, want, "{export}({n}) in slices of {units}");
                // (A trapped instance's fuel count is not settled.)
                if !got.starts_with("Trapped") {
                    assert_eq!(
                        fuel, want_fuel,
                        "{export}({n}) in slices of {units}: fuel used"
                    );
                }
            }
        }
    }
}

#[test]
fn unrolled_loops_have_the_results_the_shapes_promise() {
    let m = compile_wat(&SHAPES.replace("PAD", ""), &CompileConfig::default());
    let finished = |export: &str, n: i64| {
        let region = region_with(1, 64 << 10);
        let mut inst = Instance::new(&region, &m, export, &[Val::I64(n)]).expect("instance");
        inst.resume_fuel(1 << 40)
    };
    assert_eq!(finished("while", 7), Outcome::Finished(vec![Val::I64(7)]));
    assert_eq!(finished("dowhile", 7), Outcome::Finished(vec![Val::I64(7)]));
    assert_eq!(
        finished("break_value", 7),
        Outcome::Finished(vec![Val::I64(70)])
    );
    assert_eq!(
        finished("return", 7),
        Outcome::Finished(vec![Val::I64(1007)])
    );
    assert_eq!(finished("table", 7), Outcome::Finished(vec![Val::I64(7)]));
    // (7 * 3) + 7: the loop counts to 7, then the result is tripled.
    assert_eq!(finished("params", 7), Outcome::Finished(vec![Val::I64(28)]));
    assert_eq!(
        finished("two_back", 7),
        Outcome::Finished(vec![Val::I64(7 + (4 << 32))])
    );
    // i = 1..=3: the inner loop continues the outer one at j = i (sums 1,
    // 1 + 2, 1 + 2 + 3); i = 4, 5: it runs j = 1..=3 and falls through
    // (6 + 100 each).
    assert_eq!(
        finished("nested", 5),
        Outcome::Finished(vec![Val::I64(1 + 3 + 6 + 2 * 106)])
    );
    assert!(matches!(finished("trap", 7), Outcome::Trapped(_)));
    assert_eq!(finished("trap", 2), Outcome::Finished(vec![Val::I64(2)]));
}

#[test]
fn unrolled_spinning_loops_are_preempted_and_limited() {
    // Both places an unrolled loop checks fuel: the last copy's back edge
    // (a `br` loop) and the first copy's header (a `br_if` loop).
    let m = compile_wat(
        r#"(module
             (func (export "br") (param i64) (result i64) (loop $l (br $l)) (i64.const 0))
             (func (export "br_if") (param i64) (result i64)
               (loop $l (br_if $l (i32.const 1))) (i64.const 0)))"#,
        &CompileConfig::default(),
    );
    for export in ["br", "br_if"] {
        let region = region_with(1, 64 << 10);
        let mut inst = Instance::new(&region, &m, export, &[Val::I64(0)]).expect("instance");
        for _ in 0..3 {
            assert_eq!(inst.resume_fuel(1_000), Outcome::Yielded, "{export}");
        }
        let soon = myriad_runtime::rdtsc() + myriad_runtime::fuel::ns_to_tsc(1_000_000);
        assert_eq!(inst.resume(soon), Outcome::Yielded, "{export}");
        let used = inst.fuel_used();
        inst.set_fuel_limit(used + 5_000);
        let outcome = loop {
            match inst.resume_fuel(1_000) {
                Outcome::Yielded => continue,
                other => break other,
            }
        };
        assert_eq!(outcome, Outcome::Limited(Limit::Fuel), "{export}");
        // A round is at most 4 copies: never far past the budget.
        assert!(
            inst.fuel_used() <= used + 5_000 + 4,
            "{export}: {}",
            inst.fuel_used()
        );
    }
}
