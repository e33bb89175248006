//! Where preemption safety lives (ABI 12's fuel result, fuel
//! checks on loop back edges, unrolled loops): every loop shape, every
//! call path and every bulk builtin must spend fuel, so a fuel budget ends
//! it after about as many iterations as units, and a fuel slice yields
//! after about as many iterations as the slice has units.
//!
//! Every loop increments global 0 (`$c`, an i64) once per iteration, so
//! the iterations run are read back after the instance stops.

mod compiled;

use compiled::{compile_wat, region_with};
use myriad_codegen::CompileConfig;
use myriad_runtime::{
    FuncType, HostAction, Instance, Limit, Linker, Module, Outcome, Region, RegionConfig, TrapKind,
    Val, ValType,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Abort the whole test process if a test body runs longer than `secs`
/// (a guest that is never preempted would hang the test otherwise).
struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    fn new(what: &str, secs: u64) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let what = what.to_string();
        std::thread::spawn(move || {
            let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
            while std::time::Instant::now() < end {
                if d.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            eprintln!("WATCHDOG: {what} did not stop within {secs} s: never preempted");
            std::process::abort();
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

const INC: &str = "(global.set $c (i64.add (global.get $c) (i64.const 1)))";

/// Infinite (or practically infinite) loops of every shape. Each export
/// takes an i32 `$k` (0 unless the shape says otherwise: values the
/// compiler cannot fold).
const LOOPS: &str = r#"(module
  (type $v (func))
  (type $ri64 (func (result i64)))
  (global $c (mut i64) (i64.const 0))
  (memory 1)
  (table $t 4 funcref)
  (table $x 4 externref)
  (elem (table $t) (i32.const 0) func $leaf $leaf_i64)
  (elem $pe funcref (ref.func $leaf))
  (data $pd "abcdefgh")
  (func $leaf)
  (func $leaf_i64 (result i64) (i64.const 0x7ffffffffffffff0))

  ;; One br back: checked on that edge.
  (func (export "br") (param $k i32) (loop $l INC (br $l)))
  ;; br_if back: header check.
  (func (export "br_if") (param $k i32) (loop $l INC (br_if $l (i32.eqz (local.get $k)))))
  ;; br_if back with a constant condition.
  (func (export "br_if_const") (param $k i32) (loop $l INC (br_if $l (i32.const 1))))
  ;; br_table back from three blocks deep, as the default.
  (func (export "br_table_deep") (param $k i32)
    (loop $l
      (block $a (block $b (block $d
        INC
        (br_table $d $b $a $l (i32.add (local.get $k) (i32.const 7))))))))
  ;; br_table back as one of several targets, the others falling through
  ;; to an unconditional br back (the loop has two ways back).
  (func (export "br_table_fall") (param $k i32)
    (loop $l
      (block $a (block $b
        INC
        (br_table $b $a $l (local.get $k))))
      (br $l)))
  ;; The only br back sits in a nested block after br_table to blocks:
  ;; edge check; every path reaches it.
  (func (export "edge_after_table") (param $k i32)
    (loop $l
      (block $a (block $b
        INC
        (br_table $b $a (local.get $k))))
      (br $l)))
  ;; Loops in both arms of an if.
  (func (export "if_else") (param $k i32)
    (if (i32.eqz (local.get $k))
      (then (loop $l INC (br $l)))
      (else (loop $m INC (br_if $m (i32.const 1))))))
  (func (export "if_else2") (param $k i32)
    (if (i32.eqz (local.get $k))
      (then (loop $m INC (br_if $m (i32.const 1))))
      (else (loop $l INC (br $l)))))
  ;; The back branch in an if arm, in an if without else.
  (func (export "if_back") (param $k i32)
    (loop $l INC (if (i32.eqz (local.get $k)) (then (br $l)))))
  ;; A dead br back after the live one.
  (func (export "dead_after") (param $k i32) (loop $l INC (br $l) (br $l)))
  ;; A dead br_if back after an exit; the live way back is a br.
  (func (export "dead_br_if") (param $k i32)
    (loop $l
      INC
      (block $b (br $b) (br_if $l (i32.const 1)))
      (br $l)))
  ;; A dead br back in a dead block after `unreachable`, the live one a br.
  (func (export "dead_block") (param $k i32)
    (loop $l
      INC
      (if (local.get $k) (then unreachable (block (br 2)) (loop (br 3))))
      (br $l)))
  ;; A return inside, never taken.
  (func (export "return") (param $k i32)
    (loop $l INC (if (local.get $k) (then (return))) (br $l)))
  ;; Loop parameters (multi-value) carried around a br and a br_if.
  (func (export "params") (param $k i32)
    (i64.const 0) (i32.const 0)
    (loop $l (param i64 i32)
      INC
      (drop) (i64.add (i64.const 1)) (local.get $k)
      (br $l))
    (unreachable))
  (func (export "params_if") (param $k i32)
    (i64.const 0) (i32.const 0)
    (loop $l (param i64 i32) (result i64 i32)
      INC
      (drop) (i64.add (i64.const 1)) (local.get $k)
      (br_if $l (i32.eqz (local.get $k))))
    (drop) (drop))
  ;; An outer loop closed by one br that sits in an inner (unrolled) loop.
  (func (export "outer_from_inner") (param $k i32)
    (loop $o
      INC
      (loop $i
        (br_if $i (local.get $k))
        (br $o))))
  ;; An inner unrolled loop that is left by br_if to the outer loop from
  ;; a nested block, the outer closed by one br.
  (func (export "inner_exits") (param $k i32) (local $j i32)
    (loop $o
      (local.set $j (i32.const 0))
      (loop $i
        INC
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (block $b (br_if $o (i32.ge_u (local.get $j) (i32.const 3))))
        (br $i))))
  ;; Calls: direct, recursion that unwinds, call_indirect, two results.
  (func (export "call") (param $k i32) (loop $l INC (call $leaf) (br $l)))
  (func (export "call_indirect") (param $k i32)
    (loop $l INC (call_indirect (type $v) (local.get $k)) (br $l)))
  (func (export "call_indirect_i64") (param $k i32) (local $s i64)
    (loop $l INC
      (local.set $s (i64.add (local.get $s) (call_indirect (type $ri64) (i32.const 1))))
      (br $l)))
  ;; Bulk builtins with nothing to do.
  (func (export "fill0") (param $k i32)
    (loop $l INC (memory.fill (i32.const 0) (i32.const 0) (local.get $k)) (br $l)))
  (func (export "copy0") (param $k i32)
    (loop $l INC (memory.copy (i32.const 0) (i32.const 0) (local.get $k)) (br_if $l (i32.const 1))))
  (func (export "grow0") (param $k i32)
    (loop $l INC (drop (memory.grow (local.get $k))) (br $l)))
  (func (export "table_ops") (param $k i32)
    (loop $l INC
      (drop (table.grow $x (ref.null extern) (local.get $k)))
      (table.fill $x (i32.const 0) (ref.null extern) (local.get $k))
      (table.copy $t $t (i32.const 0) (i32.const 0) (local.get $k))
      (table.init $t $pe (i32.const 0) (i32.const 0) (local.get $k))
      (memory.init $pd (i32.const 0) (i32.const 0) (local.get $k))
      (table.set $x (i32.const 0) (table.get $x (i32.const 1)))
      (br $l)))
  (func (export "drops") (param $k i32)
    (loop $l INC (data.drop $pd) (elem.drop $pe) (br $l))))"#;

/// Run `export(k)` under a fuel budget of `limit` in fuel slices of
/// `slice` units; the outcome, the iterations run (global 0), the fuel used
/// and the most iterations any one slice ran.
fn run_limited(
    region: &Arc<Region>,
    m: &Arc<Module>,
    export: &str,
    k: i32,
    limit: u64,
    slice: u64,
) -> (Outcome, u64, u64, u64) {
    let mut inst = Instance::new(region, m, export, &[Val::I32(k)]).expect("instance");
    inst.set_fuel_limit(limit);
    let mut before = 0;
    let mut most = 0;
    let outcome = loop {
        let o = inst.resume_fuel(slice);
        let now = inst.global_bits(0).unwrap();
        most = most.max(now - before);
        before = now;
        if o != Outcome::Yielded {
            break o;
        }
    };
    (
        outcome,
        inst.global_bits(0).unwrap(),
        inst.fuel_used(),
        most,
    )
}

/// (export, k, fuel units per iteration at least, at most)
const SHAPES: &[(&str, i32, u64, u64)] = &[
    ("br", 0, 1, 1),
    ("br_if", 0, 1, 1),
    ("br_if_const", 0, 1, 1),
    ("br_table_deep", 0, 1, 2),
    ("br_table_fall", 0, 1, 1),
    ("br_table_fall", 1, 1, 1),
    ("br_table_fall", 2, 1, 1),
    ("edge_after_table", 0, 1, 1),
    ("edge_after_table", 1, 1, 1),
    ("if_else", 0, 1, 1),
    ("if_else", 1, 1, 1),
    ("if_else2", 0, 1, 1),
    ("if_else2", 1, 1, 1),
    ("if_back", 0, 1, 1),
    ("dead_after", 0, 1, 1),
    ("dead_br_if", 0, 1, 1),
    ("dead_block", 0, 1, 1),
    ("return", 0, 1, 1),
    ("params", 0, 1, 1),
    ("params_if", 0, 1, 1),
    ("outer_from_inner", 0, 1, 2),
    ("inner_exits", 0, 1, 2),
    ("call", 0, 2, 2),
    ("call_indirect", 0, 2, 2),
    ("call_indirect_i64", 0, 2, 3),
    ("fill0", 0, 2, 2),
    ("copy0", 0, 2, 2),
    ("grow0", 0, 1, 1),
    ("table_ops", 0, 5, 6),
    ("drops", 0, 1, 1),
];

fn configs() -> Vec<(&'static str, CompileConfig)> {
    vec![
        ("dense", CompileConfig::dense()),
        ("sparse", CompileConfig::sparse()),
        ("guarded", CompileConfig::guarded(65536)),
    ]
}

/// A region of `slots` slots that runs code compiled with `config`.
fn region_for(config: &CompileConfig, slots: usize) -> Arc<Region> {
    if config.guard_bytes == 0 {
        return region_with(slots, 4 << 16);
    }
    Arc::new(
        Region::new(RegionConfig {
            slots,
            stack_size: 16 * 1024,
            heap_capacity: 4 << 16,
            guard_size: config.guard_bytes as usize,
            guard_mode: true,
            heap_reservation: config.heap_reservation as usize,
        })
        .expect("region"),
    )
}

/// Run every `(export, k, lo, hi)` of `shapes` in `module` (INC filled
/// in), in every configuration, under a fuel budget of `limit` in fuel
/// slices of `slice` units, and name the runs where the budget did not
/// end it, or the fuel used was not between `lo` and `hi` units per
/// iteration, or a slice ran more iterations than it had units (each
/// with `slack` units of tolerance).
fn metering_failures(
    module: &str,
    shapes: &[(&str, i32, u64, u64)],
    limit: u64,
    slice: u64,
    slack: u64,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (cname, config) in configs() {
        let m = compile_wat(&module.replace("INC", INC), &config);
        let region = region_for(&config, 1);
        for &(export, k, lo, hi) in shapes {
            let (outcome, iters, used, most) = run_limited(&region, &m, export, k, limit, slice);
            let ok = outcome == Outcome::Limited(Limit::Fuel)
                && iters * lo <= used + slack
                && used <= iters * hi + slack
                && used <= limit + slack
                && most * lo <= slice + slack;
            eprintln!(
                "{cname:8} {export:18} k={k}: {outcome:?} iterations {iters} fuel used {used} \
                 most per slice {most}"
            );
            if !ok {
                failures.push(format!("{cname} {export} k={k}"));
            }
        }
    }
    failures
}

/// Every loop shape is stopped by a fuel budget after as many iterations
/// as its per-iteration cost allows, and no fuel slice runs more
/// iterations than it has units (plus the round of an unrolled loop).
#[test]
fn every_loop_shape_is_metered_and_preempted() {
    let _w = Watchdog::new("every_loop_shape_is_metered_and_preempted", 300);
    let failures = metering_failures(LOOPS, SHAPES, 100_000, 1_000, 8);
    assert!(failures.is_empty(), "{failures:?}");
}

/// Recursion without loops, where the only fuel checks are the functions'
/// entry checks, with base cases and calls in different arms (written
/// against deferring the entry check to a function's first call, a
/// change that was reverted: see docs/PERFORMANCE.md, "Deferred entry
/// checks"). Each export recurses for ever (`$k` = 0); each level runs
/// INC once.
const RECURSION: &str = r#"(module
  (type $i (func (param i32)))
  (global $c (mut i64) (i64.const 0))
  (table 2 funcref)
  (elem (i32.const 0) $indirect $base)
  ;; One call, after a base case that returns first (never taken).
  (func $plain (export "plain") (param $k i32)
    (if (i32.eq (local.get $k) (i32.const 7)) (then (return)))
    INC
    (call $plain (local.get $k)))
  ;; fib's shape: the base case in one arm, two calls in the other.
  (func $fib (export "fib") (param $k i32)
    (if (i32.eq (local.get $k) (i32.const 7))
      (then)
      (else INC (call $fib (local.get $k)) (call $fib (local.get $k)))))
  ;; A call in each arm of an if: a check in each.
  (func $arms (export "arms") (param $k i32)
    INC
    (if (i32.wrap_i64 (i64.and (global.get $c) (i64.const 1)))
      (then (call $arms (local.get $k)))
      (else (call $arms (local.get $k)))))
  ;; Mutual recursion, each with one call.
  (func $ping (export "ping") (param $k i32) INC (call $pong (local.get $k)))
  (func $pong (param $k i32) (call $ping (local.get $k)))
  ;; Through the table: a base case is element 1, never chosen.
  (func $indirect (export "indirect") (param $k i32)
    INC
    (call_indirect (type $i) (local.get $k) (local.get $k)))
  (func $base (param $k i32))
  ;; A loop checked on its back edge, left at once, before the call.
  (func $after_loop (export "after_loop") (param $k i32)
    (block $out (loop $l (br_if $out (i32.eqz (local.get $k))) (br $l)))
    INC
    (call $after_loop (local.get $k))))"#;

/// (export, k, fuel units per level at least, at most): `fib`'s levels
/// make two calls, the second never reached.
const RECURSION_SHAPES: &[(&str, i32, u64, u64)] = &[
    ("plain", 0, 1, 1),
    ("fib", 0, 1, 1),
    ("arms", 0, 1, 1),
    ("ping", 0, 2, 2),
    ("indirect", 0, 1, 2),
    ("after_loop", 0, 1, 2),
];

/// Recursion is metered and preempted: a fuel budget ends it (before the
/// stack does) after as many levels as units, and no fuel slice runs
/// more levels than it has units.
#[test]
fn recursion_is_metered_and_preempted() {
    let _w = Watchdog::new("recursion_is_metered_and_preempted", 120);
    let failures = metering_failures(RECURSION, RECURSION_SHAPES, 100, 10, 2);
    assert!(failures.is_empty(), "{failures:?}");
}

/// Many calls of a function that makes no call, in one straight stretch
/// of the caller (a review's attack on deferring the entry check of such
/// functions, 2026-12-05): each call must pass a check, so a 1-unit fuel
/// slice runs one call, not the whole stretch of 200.
#[test]
fn a_stretch_of_leaf_calls_is_checked_at_every_call() {
    let _w = Watchdog::new("a_stretch_of_leaf_calls_is_checked_at_every_call", 120);
    let calls = "(call $leaf) ".repeat(200);
    let wat = format!(
        r#"(module
          (global $c (mut i64) (i64.const 0))
          (func $leaf {INC})
          (func (export "run") (param $k i32) (loop $l {calls} (br $l))))"#
    );
    for (cname, config) in configs() {
        let m = compile_wat(&wat, &config);
        let region = region_for(&config, 1);
        let (outcome, leaves, used, most) = run_limited(&region, &m, "run", 0, 1_000, 1);
        eprintln!("{cname}: {outcome:?} leaves {leaves} fuel used {used} most per slice {most}");
        assert_eq!(outcome, Outcome::Limited(Limit::Fuel), "{cname}");
        assert!(most <= 2, "{cname}: {most} leaf calls in one 1-unit slice");
        assert!(used <= 1_000 + 2, "{cname}: {used}");
    }
}

/// Every shape in time slices: each 20 µs slice yields (nothing hangs).
#[test]
fn every_loop_shape_yields_in_time_slices() {
    let _w = Watchdog::new("every_loop_shape_yields_in_time_slices", 300);
    let m = compile_wat(&LOOPS.replace("INC", INC), &CompileConfig::default());
    let region = region_with(1, 4 << 16);
    for &(export, k, _, _) in SHAPES {
        let mut inst = Instance::new(&region, &m, export, &[Val::I32(k)]).expect("instance");
        for _ in 0..50 {
            let deadline = myriad_runtime::rdtsc() + myriad_runtime::fuel::ns_to_tsc(20_000);
            assert_eq!(inst.resume(deadline), Outcome::Yielded, "{export}");
        }
    }
}

/// Functions with many results of mixed types: the fuel counter's native
/// position (second result, or first without results) must be the same on
/// every path. The results are large i64s, so that a result taken for
/// the counter would leave the guest with fuel for ever.
const MANY: &str = r#"(module
  (type $many (func (param i64) (result f64 i64 i32 i64 f32 i64 i64 i64 i64 i64 i64 i64)))
  (type $one (func (result i64)))
  (type $none (func))
  (global $c (mut i64) (i64.const 0))
  (table $t 3 funcref)
  (elem (table $t) (i32.const 0) func $many $one $none)
  (func $many (export "many") (type $many)
    (f64.const 1.5) (local.get 0) (i32.const 7) (i64.const 0x7fffffffffffff00)
    (f32.const 2.5) (i64.const 0x7fffffffffffff01) (i64.const 0x7fffffffffffff02)
    (i64.const 0x7fffffffffffff03) (i64.const 0x7fffffffffffff04)
    (i64.const 0x7fffffffffffff05) (i64.const 0x7fffffffffffff06)
    (i64.const 0x7fffffffffffff07))
  (func $one (export "one") (type $one) (i64.const 0x7fffffffffffffff))
  (func $none (export "none") (type $none))
  ;; Sum of the many results but the ones that change, less the constants:
  ;; exactly $x + 3 when everything arrived where it should.
  (func $check (param $x i64)
     (param f64 i64 i32 i64 f32 i64 i64 i64 i64 i64 i64 i64)
     (if (f64.ne (local.get 1) (f64.const 1.5)) (then unreachable))
     (if (i64.ne (local.get 2) (local.get $x)) (then unreachable))
     (if (i32.ne (local.get 3) (i32.const 7)) (then unreachable))
     (if (i64.ne (local.get 4) (i64.const 0x7fffffffffffff00)) (then unreachable))
     (if (f32.ne (local.get 5) (f32.const 2.5)) (then unreachable))
     (if (i64.ne (local.get 12) (i64.const 0x7fffffffffffff07)) (then unreachable)))
  (func (export "direct") (param $k i32) (local $i i64)
    (loop $l
      (global.set $c (i64.add (global.get $c) (i64.const 1)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (call $check (local.get $i) (call $many (local.get $i)))
      (br $l)))
  (func (export "indirect") (param $k i32) (local $i i64)
    (loop $l
      (global.set $c (i64.add (global.get $c) (i64.const 1)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (call $check (local.get $i) (call_indirect (type $many) (local.get $i) (local.get $k)))
      (br $l)))
  (func (export "one_none") (param $k i32) (local $s i64)
    (loop $l
      (global.set $c (i64.add (global.get $c) (i64.const 1)))
      (local.set $s (i64.add (local.get $s) (call $one)))
      (call $none)
      (local.set $s (i64.add (local.get $s) (call_indirect (type $one) (i32.const 1))))
      (call_indirect (type $none) (i32.const 2))
      (br $l)))
  ;; The wrong type for the element: trapped before anything is called.
  (func (export "mismatch_none_as_one") (result i64) (call_indirect (type $one) (i32.const 2)))
  (func (export "mismatch_one_as_none") (call_indirect (type $none) (i32.const 1)))
  (func (export "mismatch_many_as_one") (result i64) (call_indirect (type $one) (i32.const 0))))"#;

/// The same calls into another instance (wasm imports) and into the host.
const MANY_IMPORTER: &str = r#"(module
  (type $many (func (param i64) (result f64 i64 i32 i64 f32 i64 i64 i64 i64 i64 i64 i64)))
  (import "p" "many" (func $many (type $many)))
  (import "p" "one" (func $one (result i64)))
  (import "p" "none" (func $none))
  (import "h" "many" (func $hmany (type $many)))
  (import "h" "one" (func $hone (result i64)))
  (import "h" "none" (func $hnone))
  (global $c (mut i64) (i64.const 0))
  (table $t 6 funcref)
  (elem (table $t) (i32.const 0) func $many $one $none $hmany $hone $hnone)
  (func $check (param $x i64)
     (param f64 i64 i32 i64 f32 i64 i64 i64 i64 i64 i64 i64)
     (if (f64.ne (local.get 1) (f64.const 1.5)) (then unreachable))
     (if (i64.ne (local.get 2) (local.get $x)) (then unreachable))
     (if (i32.ne (local.get 3) (i32.const 7)) (then unreachable))
     (if (i64.ne (local.get 4) (i64.const 0x7fffffffffffff00)) (then unreachable))
     (if (f32.ne (local.get 5) (f32.const 2.5)) (then unreachable))
     (if (i64.ne (local.get 12) (i64.const 0x7fffffffffffff07)) (then unreachable)))
  (func (export "wasm") (param $k i32) (local $i i64) (local $s i64)
    (loop $l
      (global.set $c (i64.add (global.get $c) (i64.const 1)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (call $check (local.get $i) (call $many (local.get $i)))
      (local.set $s (i64.add (local.get $s) (call $one)))
      (call $none)
      (br $l)))
  (func (export "wasm_indirect") (param $k i32) (local $i i64) (local $s i64)
    (loop $l
      (global.set $c (i64.add (global.get $c) (i64.const 1)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (call $check (local.get $i) (call_indirect (type $many) (local.get $i) (i32.const 0)))
      (local.set $s (i64.add (local.get $s) (call_indirect (result i64) (i32.const 1))))
      (call_indirect (i32.const 2))
      (br $l)))
  (func (export "host") (param $k i32) (local $i i64) (local $s i64)
    (loop $l
      (global.set $c (i64.add (global.get $c) (i64.const 1)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (call $check (local.get $i) (call $hmany (local.get $i)))
      (local.set $s (i64.add (local.get $s) (call $hone)))
      (call $hnone)
      (br $l)))
  (func (export "host_indirect") (param $k i32) (local $i i64) (local $s i64)
    (loop $l
      (global.set $c (i64.add (global.get $c) (i64.const 1)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (call $check (local.get $i) (call_indirect (type $many) (local.get $i) (i32.const 3)))
      (local.set $s (i64.add (local.get $s) (call_indirect (result i64) (i32.const 4))))
      (call_indirect (i32.const 5))
      (br $l)))
  (func (export "mismatch_import") (result i64) (call_indirect (result i64) (i32.const 2)))
  (func (export "mismatch_host") (result i64) (call_indirect (result i64) (i32.const 5))))"#;

fn many_type() -> FuncType {
    use ValType::*;
    FuncType {
        params: vec![I64],
        results: vec![F64, I64, I32, I64, F32, I64, I64, I64, I64, I64, I64, I64],
    }
}

fn host_linker(p: &Instance) -> Linker {
    let mut linker = Linker::new();
    linker.instance("p", p);
    linker.func("h", "many", many_type(), |_, v| {
        let x = v[0];
        let r: [u64; 12] = [
            1.5f64.to_bits(),
            x,
            7,
            0x7fffffffffffff00,
            u64::from(2.5f32.to_bits()),
            0x7fffffffffffff01,
            0x7fffffffffffff02,
            0x7fffffffffffff03,
            0x7fffffffffffff04,
            0x7fffffffffffff05,
            0x7fffffffffffff06,
            0x7fffffffffffff07,
        ];
        v[..12].copy_from_slice(&r);
        HostAction::Return
    });
    linker.func(
        "h",
        "one",
        FuncType {
            params: vec![],
            results: vec![ValType::I64],
        },
        |_, v| {
            v[0] = 0x7fffffffffffffff;
            HostAction::Return
        },
    );
    linker.func(
        "h",
        "none",
        FuncType {
            params: vec![],
            results: vec![],
        },
        |_, _| HostAction::Return,
    );
    linker
}

/// Run armed `inst` under a budget in fuel slices; (outcome, iterations,
/// fuel used).
fn limited(inst: &mut Instance, limit: u64, slice: u64) -> (Outcome, u64, u64) {
    inst.set_fuel_limit(inst.fuel_used() + limit);
    let start = inst.fuel_used();
    let c0 = inst.global_bits(0).unwrap();
    let outcome = loop {
        match inst.resume_fuel(slice) {
            Outcome::Yielded => continue,
            o => break o,
        }
    };
    (
        outcome,
        inst.global_bits(0).unwrap() - c0,
        inst.fuel_used() - start,
    )
}

/// Many results, one result and none, through direct calls, call_indirect,
/// wasm imports from another instance and host imports: the results
/// arrive intact and the counter keeps counting (about `calls + 1` units
/// an iteration, and one per 16 of the body's weight), so a budget still
/// ends the loop.
#[test]
fn the_fuel_result_is_right_on_every_call_path() {
    let _w = Watchdog::new("the_fuel_result_is_right_on_every_call_path", 300);
    for (cname, config) in configs() {
        let m = compile_wat(MANY, &config);
        let imp = compile_wat(MANY_IMPORTER, &config);
        let region = region_for(&config, 16);
        // From the host: the export wrapper reads the results and the
        // counter.
        let mut p = Instance::instantiate(&region, &m).unwrap();
        p.call("many", &[Val::I64(42)]).unwrap();
        let o = loop {
            match p.resume_fuel(1000) {
                Outcome::Yielded => continue,
                o => break o,
            }
        };
        match o {
            Outcome::Finished(v) => {
                assert_eq!(v.len(), 12);
                assert_eq!(v[1], Val::I64(42));
                assert_eq!(v[2], Val::I32(7));
                assert_eq!(v[11], Val::I64(0x7fffffffffffff07));
            }
            other => panic!("{cname}: {other:?}"),
        }
        // Plus a unit for every 16 of the loop body's weight (see
        // `myriad_codegen`'s `translate::meter`): these bodies weigh less
        // than 32.
        for (export, lo, hi) in [("direct", 3, 6), ("indirect", 3, 6), ("one_none", 5, 8)] {
            let mut inst = Instance::new(&region, &m, export, &[Val::I32(0)]).unwrap();
            let (o, iters, used) = limited(&mut inst, 90_000, 1000);
            eprintln!("{cname:8} {export:14}: {o:?} iterations {iters} fuel {used}");
            assert_eq!(o, Outcome::Limited(Limit::Fuel), "{cname} {export}");
            assert!(
                iters * lo <= used + 8 && used <= iters * hi + 8,
                "{cname} {export}"
            );
        }
        for (export, trap) in [
            ("mismatch_none_as_one", TrapKind::IndirectCallTypeMismatch),
            ("mismatch_one_as_none", TrapKind::IndirectCallTypeMismatch),
            ("mismatch_many_as_one", TrapKind::IndirectCallTypeMismatch),
        ] {
            let mut inst = Instance::new(&region, &m, export, &[]).unwrap();
            assert_eq!(
                inst.resume_fuel(1000),
                Outcome::Trapped(trap),
                "{cname} {export}"
            );
        }
        let linker = host_linker(&p);
        // Wasm imports: the callee's entry check and the loop's; host
        // imports: the loop's only (a host function spends no fuel).
        for (export, lo, hi) in [
            ("wasm", 5, 8),
            ("wasm_indirect", 5, 8),
            ("host", 2, 5),
            ("host_indirect", 2, 5),
        ] {
            let mut inst = linker.instantiate(&region, &imp, None).unwrap();
            inst.call(export, &[Val::I32(0)]).unwrap();
            let (o, iters, used) = limited(&mut inst, 90_000, 1000);
            eprintln!("{cname:8} {export:14}: {o:?} iterations {iters} fuel {used}");
            assert_eq!(o, Outcome::Limited(Limit::Fuel), "{cname} {export}");
            assert!(
                iters * lo <= used + 8 && used <= iters * hi + 8,
                "{cname} {export}"
            );
        }
        for export in ["mismatch_import", "mismatch_host"] {
            let mut inst = linker.instantiate(&region, &imp, None).unwrap();
            inst.call(export, &[]).unwrap();
            assert_eq!(
                inst.resume_fuel(1000),
                Outcome::Trapped(TrapKind::IndirectCallTypeMismatch),
                "{cname} {export}"
            );
        }
    }
}
