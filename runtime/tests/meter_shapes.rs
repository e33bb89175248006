//! Loop and call shapes against the straight-line fuel meter
//! (`translate::meter` in myriad-codegen), from a review of it
//! (2026-12-05) that found unrolled loops escaping it: their copies were
//! not metered, so a sequence of unrolled `while` loops ran 56,000 of
//! weight without a check, one left from its first copy cost nothing,
//! and a body of weight exactly 16 cost 1 unit an iteration unrolled and
//! 2 plain. Copies are now metered as the plain loop's iterations.
//!
//! Measure of "weight between two checks": in fuel slices of 1 unit,
//! every check that finds the counter negative yields, so the number of
//! slices a run takes is at least its checks.

mod compiled;

use compiled::{compile_wat, region_with, thread_cpu_ns};
use myriad_codegen::CompileConfig;
use myriad_runtime::{Instance, Outcome, Region, RegionConfig, Val};
use std::sync::Arc;

/// Run to the end in 1-unit fuel slices: outcome, slices, most fuel any
/// one slice spent, most CPU ns any one slice took.
fn one_unit_slices(inst: &mut Instance) -> (Outcome, u64, u64, u64) {
    let mut slices = 0;
    let mut worst_fuel = 0;
    let mut worst_ns = 0;
    loop {
        slices += 1;
        let before = inst.fuel_used();
        let t = thread_cpu_ns();
        let o = inst.resume_fuel(1);
        worst_ns = worst_ns.max(thread_cpu_ns() - t);
        worst_fuel = worst_fuel.max(inst.fuel_used() - before);
        if o != Outcome::Yielded {
            return (o, slices, worst_fuel, worst_ns);
        }
        assert!(slices < 10_000_000);
    }
}

fn region_big_stack() -> Arc<Region> {
    Arc::new(
        Region::new(RegionConfig {
            slots: 1,
            stack_size: 1 << 20,
            heap_capacity: 1 << 16,
            guard_size: 0,
            guard_mode: false,
            heap_reservation: 0,
        })
        .expect("region"),
    )
}

fn sparse_region() -> Arc<Region> {
    Arc::new(
        Region::new(RegionConfig {
            slots: 1,
            stack_size: 1 << 20,
            heap_capacity: 256 * 1024,
            heap_reservation: myriad_codegen::SPARSE_RESERVATION as usize,
            guard_size: myriad_codegen::SPARSE_GUARD as usize,
            guard_mode: true,
        })
        .expect("region"),
    )
}

/// `n` unrolled `while` loops in a row, each run `k` times.
fn unrolled_whiles(n: usize, k: i32) -> String {
    // 12 operators: 4 copies (dense). Each pass: copies 1-3 run the body,
    // copy 4 leaves (charged 3 units for the 3 copies it passed).
    let one = r#"
    (local.set $k (i32.const K))
    (block $d (loop $l
      (br_if $d (i32.eqz (local.get $k)))
      (local.set $k (i32.sub (local.get $k) (i32.const 1)))
      (local.set $x (i64.mul (local.get $x) (local.get $x)))
      (br $l)))"#;
    format!(
        r#"(module (memory 1)
  (func (export "f") (param $x i64) (result i64) (local $k i32)
    {}
    (local.get $x)))"#,
        one.replace("K", &k.to_string()).repeat(n)
    )
}

#[test]
fn sequences_of_unrolled_while_loops_pass_checks() {
    const N: usize = 4_000;
    // Dense: 4 copies, left from the 4th; sparse: 2 copies, left from the
    // 2nd. About 56,000 of weight in all: a check at least every 1,024.
    for (name, config, region, k) in [
        ("dense", CompileConfig::dense(), region_with(1, 1 << 16), 3),
        ("sparse", CompileConfig::sparse(), sparse_region(), 1),
    ] {
        let m = compile_wat(&unrolled_whiles(N, k), &config);
        let mut inst = Instance::new(&region, &m, "f", &[Val::I64(3)]).unwrap();
        let (o, slices, worst, ns) = one_unit_slices(&mut inst);
        eprintln!(
            "[{name}] {N} unrolled whiles: {o:?}, fuel {} in {slices} slices, \
             worst 1-unit slice spent {worst} units ({ns} ns)",
            inst.fuel_used()
        );
        assert_eq!(o, Outcome::Finished(vec![Val::I64(1)]));
        assert!(
            slices >= 50,
            "[{name}] {slices} checks for 56,000 of weight"
        );
    }
}

/// `f(n, x, d)`: recursion `n` deep, `DIVS` after each call.
const RECURSE: &str = r#"(module (memory 1)
  (func $f (export "f") (param $n i32) (param $x i64) (param $d i64) (result i64) (local $p i32)
    (if (local.get $n)
      (then (local.set $x (call $f (i32.sub (local.get $n) (i32.const 1)) (local.get $x) (local.get $d)))))
    DIVS
    (local.get $x)))"#;

/// Run `RECURSE` with `after` after each call, `DEPTH` deep, on 1-unit
/// fuel slices; check its result is `want` and return the most units
/// one slice spent.
fn recurse_on_one_unit_slices(after: &str, config: &CompileConfig, want: i64) -> u64 {
    let m = compile_wat(&RECURSE.replace("DIVS", after), config);
    let region = region_big_stack();
    let mut inst = Instance::new(
        &region,
        &m,
        "f",
        &[Val::I32(DEPTH), Val::I64(77), Val::I64(1)],
    )
    .unwrap();
    let (o, slices, worst, ns) = one_unit_slices(&mut inst);
    eprintln!(
        "recursion depth {DEPTH}: {o:?}, fuel {} in {slices} slices, \
         worst 1-unit slice spent {worst} units ({ns} ns)",
        inst.fuel_used()
    );
    assert_eq!(o, Outcome::Finished(vec![Val::I64(want)]));
    worst
}

/// Depth of the recursion of the return-chain tests.
const DEPTH: i32 = 2_000;

#[test]
fn unwinding_a_call_chain_is_checked_at_every_heavy_return() {
    // A return is not a check: each frame's code after its call ran
    // with the callers' after theirs, up to a segment (512 of weight)
    // each, so a chain of returns ran unchecked for as long as the stack
    // was deep (here 960,000 of weight, 60,031 units on one 1-unit slice,
    // 0.22 ms). A function that calls now checks before it returns when
    // 64 of weight or more ran since its last check
    // (`RETURN_CHECK_WEIGHT`): a slice runs one frame's 30 divisions
    // (480 of weight, 30 units), which the check charges.
    let divs = "(local.set $x (i64.div_u (local.get $x) (local.get $d)))\n".repeat(30);
    for config in [CompileConfig::dense(), CompileConfig::default()] {
        let worst = recurse_on_one_unit_slices(&divs, &config, 77);
        assert!(worst <= 64, "a 1-unit slice spent {worst} units");
    }
}

/// A load weighs 2, but one that misses the cache takes 100 ns: frames
/// of 30 dependent loads after their call (60 of weight, under the
/// threshold) through a large table ran 171 ms on one unit, 30,000 deep
/// (a review). A function that calls checks before it returns when a
/// load or store ran since its last call: a slice runs one frame's loads.
#[test]
fn unwinding_frames_that_load_is_checked_at_every_return() {
    // A pointer chase of 30 loads, 60 of weight (each reads the zero at
    // address 0 here, so it hits the cache: slices are counted in units).
    let loads = "(local.set $p (i32.load (local.get $p)))\n".repeat(30);
    let worst = recurse_on_one_unit_slices(&loads, &CompileConfig::dense(), 77);
    assert!(worst <= 16, "a 1-unit slice spent {worst} units");
}

/// Loads then a call of a host import, which is no fuel check, return
/// unchecked no more than loads alone do (28 loads then a cheap import
/// call per frame ran 60,004 units on one 1-unit slice, 20,000 deep).
#[test]
fn loads_then_an_import_call_are_checked_at_the_return() {
    const M: &str = r#"(module (import "env" "nop" (func $imp)) (memory 1)
      (table 2 funcref)
      (elem (i32.const 0) $imp $leaf)
      (type $v (func))
      (func $leaf)
      (func $f (export "f") (param $n i32) (param $x i64) (result i64) (local $p i32)
        (if (local.get $n)
          (then (local.set $x (call $f (i32.sub (local.get $n) (i32.const 1)) (local.get $x)))))
        AFTER
        (local.get $x)))"#;
    let loads = "(local.set $p (i32.load (local.get $p)))\n".repeat(28);
    let mut linker = myriad_runtime::Linker::new();
    linker.func(
        "env",
        "nop",
        myriad_codegen::abi::FuncType {
            params: vec![],
            results: vec![],
        },
        |_, _| myriad_runtime::HostAction::Return,
    );
    for tail in ["(call $imp)", "(call_indirect (type $v) (i32.const 0))"] {
        let m = compile_wat(
            &M.replace("AFTER", &format!("{loads}{tail}")),
            &CompileConfig::dense(),
        );
        let region = region_big_stack();
        let mut inst = linker.instantiate(&region, &m, None).unwrap();
        inst.call("f", &[Val::I32(DEPTH), Val::I64(77)]).unwrap();
        let (o, slices, worst, ns) = one_unit_slices(&mut inst);
        eprintln!("{tail}: {o:?} in {slices} slices, worst {worst} units ({ns} ns)");
        assert_eq!(o, Outcome::Finished(vec![Val::I64(77)]));
        assert!(worst <= 16, "{tail}: a 1-unit slice spent {worst} units");
    }
}

/// Frames whose code after the call weighs just under
/// `RETURN_CHECK_WEIGHT`, with no load or store, return unchecked: the
/// chain's bound is that weight of register work a frame (here 2,000
/// frames of 60, 120,000 of weight, about 7,500 units), charged in full.
#[test]
fn a_chain_of_light_returns_is_bounded_by_its_depth() {
    // 60 additions of weight 1 (`local.get` and `local.set` weigh 0).
    let adds = "(local.set $x (i64.add (local.get $x) (local.get $d)))\n".repeat(60);
    let want = 77 + 60 * (i64::from(DEPTH) + 1);
    let worst = recurse_on_one_unit_slices(&adds, &CompileConfig::dense(), want);
    // The whole chain on one slice, but no more than its weight.
    assert!(worst <= (DEPTH as u64 + 1) * 64 / 16 + 64, "{worst} units");
}

/// A body of weight exactly 16, a unit's worth: dense unrolls this
/// 23-operator body, sparse (budget 24 / 2 = 12) does not, and the plain
/// loop (padded with nops, which weigh nothing) is not unrolled either.
const W16: &str = r#"(module (memory 1)
  (func (export "f") (param $n i32) (result i64) (local $x f64) (local $z i64)
    (local.set $x (f64.const 1e300))
    (local.set $z (i64.const 3))
    (loop $l
      PAD
      (local.set $x (f64.div (local.get $x) (f64.const 1.0000001)))
      (local.set $z
        (i64.add (i64.add (i64.add (i64.add (i64.add (i64.add
          (local.get $z) (local.get $z)) (local.get $z)) (local.get $z))
          (local.get $z)) (local.get $z)) (local.get $z)))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (i64.add (local.get $z) (i64.reinterpret_f64 (local.get $x)))))"#;

#[test]
fn unrolled_and_plain_loops_of_weight_16_spend_the_same_fuel() {
    const N: i32 = 1_000;
    let region = region_with(1, 1 << 16);
    let mut fuels = vec![];
    for (name, pad) in [("unrolled", String::new()), ("plain", "nop ".repeat(30))] {
        let m = compile_wat(&W16.replace("PAD", &pad), &CompileConfig::dense());
        let mut inst = Instance::new(&region, &m, "f", &[Val::I32(N)]).unwrap();
        let (o, _, _, _) = one_unit_slices(&mut inst);
        eprintln!("dense {name}: {o:?} fuel {}", inst.fuel_used());
        fuels.push(inst.fuel_used());
    }
    let m = compile_wat(&W16.replace("PAD", ""), &CompileConfig::sparse());
    let sregion = sparse_region();
    let mut inst = Instance::new(&sregion, &m, "f", &[Val::I32(N)]).unwrap();
    let (o, _, _, _) = one_unit_slices(&mut inst);
    eprintln!("sparse (not unrolled): {o:?} fuel {}", inst.fuel_used());
    fuels.push(inst.fuel_used());
    assert!(
        fuels.iter().all(|f| *f == fuels[0]),
        "the same loop spent {fuels:?} (dense unrolled, dense plain, sparse)"
    );
}

/// `n` unrolled `while` loops in a row, each left from its first copy
/// (15 of weight each: an f64 division and 7 dependent multiplications;
/// 23 operators, 2 copies dense). Before copies were metered, the
/// function ran on its entry's unit alone.
fn free_whiles(n: usize) -> String {
    let one = r#"
    (block $d (loop $l
      (local.set $x (f64.div (local.get $x) (local.get $y)))
      (local.set $z (i64.mul (i64.mul (i64.mul (i64.mul (i64.mul (i64.mul (i64.mul
        (local.get $z) (local.get $z)) (local.get $z)) (local.get $z)) (local.get $z))
        (local.get $z)) (local.get $z)) (local.get $z)))
      (br_if $d (local.get $k))
      (br $l)))"#;
    format!(
        r#"(module (memory 1)
  (func (export "f") (param $k i32) (result i64) (local $x f64) (local $y f64) (local $z i64)
    (local.set $x (f64.const 1e300)) (local.set $y (f64.const 1.0000001)) (local.set $z (i64.const 3))
    {}
    (i64.add (local.get $z) (i64.reinterpret_f64 (local.get $x)))))"#,
        one.repeat(n)
    )
}

#[test]
fn unrolled_while_loops_left_from_the_first_copy_pay_as_plain_ones() {
    const N: usize = 4_000;
    let mut used = vec![];
    for (name, wat) in [
        ("unrolled", free_whiles(N)),
        // The reference: the same loops too long to unroll (nops weigh 0).
        (
            "plain",
            free_whiles(N).replace("(loop $l", &format!("(loop $l {}", "nop ".repeat(30))),
        ),
    ] {
        let m = compile_wat(&wat, &CompileConfig::dense());
        let region = region_with(1, 1 << 16);
        let mut inst = Instance::new(&region, &m, "f", &[Val::I32(1)]).unwrap();
        let (o, slices, worst, ns) = one_unit_slices(&mut inst);
        eprintln!(
            "{name}: {N} whiles of 15 weight: {o:?}, fuel {} in {slices} slices, \
             worst 1-unit slice {worst} units, {ns} ns",
            inst.fuel_used()
        );
        used.push(inst.fuel_used());
    }
    assert!(
        used[0] == used[1] && used[0] > N as u64,
        "{N} x 15 of weight cost {} units unrolled, {} plain",
        used[0],
        used[1]
    );
}

/// The same shapes in time slices: the worst CPU time one 20 µs slice
/// held the thread, over 200 slices, with each shape run for ever.
fn worst_time_slice(wat: &str, args: &[Val]) -> u64 {
    use myriad_runtime::fuel::ns_to_tsc;
    use myriad_runtime::rdtsc;
    let m = compile_wat(wat, &CompileConfig::dense());
    let region = region_big_stack();
    let mut inst = Instance::new(&region, &m, "forever", args).unwrap();
    let mut worst = 0;
    for _ in 0..200 {
        let cpu = thread_cpu_ns();
        assert_eq!(inst.resume(rdtsc() + ns_to_tsc(20_000)), Outcome::Yielded);
        worst = worst.max(thread_cpu_ns() - cpu);
    }
    worst
}

#[test]
fn the_shapes_stay_near_a_time_slice() {
    // 4,000 unrolled whiles left from their first copy, for ever.
    let w = free_whiles(4_000).replace(
        "(func (export \"f\")",
        "(func (export \"forever\") (param $k i32) (loop $o (drop (call $f (local.get $k))) (br $o)))\n  (func $f",
    );
    let free = worst_time_slice(&w, &[Val::I32(1)]);
    // Recursion 2,000 deep, 30 divisions after each call, for ever.
    let divs = "(local.set $x (i64.div_u (local.get $x) (local.get $d)))\n".repeat(30);
    let r = RECURSE.replace("DIVS", &divs).replace(
        "(func $f (export \"f\")",
        "(func (export \"forever\") (loop $o (drop (call $f (i32.const 2000) (i64.const 77) (i64.const 1))) (br $o)))\n  (func $f",
    );
    let unwind = worst_time_slice(&r, &[]);
    eprintln!("20 us slices: unrolled whiles worst {free} ns, unwinding worst {unwind} ns");
    // Measured 45 µs and 176 µs (the unwinding runs unchecked: see
    // `unwinding_a_call_chain_is_charged_in_full`); the bound leaves room
    // for a loaded machine.
    assert!(free < 5_000_000 && unwind < 5_000_000);
}

#[test]
fn odd_shapes_agree_across_configs_and_unrolling() {
    let nest = 200;
    let deep = format!(
        "(func (export \"deep\") (param $n i32) (result i32) (local $x i32) {} (local.set $x (i32.add (local.get $x) (i32.const 1))) (br_table {} (local.get $n)) {} (local.get $x))",
        "(block ".repeat(nest),
        (0..nest).map(|i| i.to_string()).collect::<Vec<_>>().join(" "),
        ") (local.set $x (i32.mul (local.get $x) (i32.const 3)))".repeat(nest)
    );
    let wat = format!(
        r#"(module (memory 1)
  (func (export "params") (param $n i32) (result i32)
    (block $o (result i32)
      (i32.const 0)
      (loop $l (param i32) (result i32)
        (i32.add (i32.const 1))
        (if (param i32) (result i32) (i32.and (local.get $n) (i32.const 1))
          (then (i32.add (i32.const 2))))
        (local.tee $n (i32.sub (local.get $n) (i32.const 1)))
        (br_table $l $o (i32.eqz (local.get $n))))))
  (func (export "dead_back") (param $n i32) (result i32)
    (loop $l (return (i32.const 5)) (br $l)) (i32.const 0))
  (func (export "unreach") (param $n i32) (result i32)
    (block $d (loop $l
      (br_if $d (i32.eqz (local.get $n)))
      (if (i32.eq (local.get $n) (i32.const -1)) (then unreachable) (else nop))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $n))
  (func (export "if_noelse") (param $n i32) (result i32) (local $s i32)
    (loop $l
      (if (i32.and (local.get $n) (i32.const 1)) (then (local.set $s (i32.add (local.get $s) (i32.const 1)))))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (local.get $s))
  {deep})"#
    );
    let dense = compile_wat(&wat, &CompileConfig::dense());
    let sparse = compile_wat(&wat, &CompileConfig::sparse());
    let plain = compile_wat(
        &wat.replace(
            "(loop $l (param i32) (result i32)",
            "(loop $L (param i32) (result i32) PADNOPS",
        )
        .replace("(loop $l", "(loop $l PADNOPS")
        .replace("(loop $L", "(loop $l")
        .replace("PADNOPS", &"nop ".repeat(30)),
        &CompileConfig::dense(),
    );
    let r1 = region_with(1, 1 << 16);
    let r2 = sparse_region();
    for (e, n) in [
        ("params", 13),
        ("dead_back", 3),
        ("unreach", 9),
        ("if_noelse", 11),
        ("deep", 7),
        ("deep", 199),
        ("deep", 1000),
    ] {
        let mut got = vec![];
        for (m, r) in [(&dense, &r1), (&sparse, &r2), (&plain, &r1)] {
            let mut inst = Instance::new(r, m, e, &[Val::I32(n)]).unwrap();
            let (o, slices, worst, _) = one_unit_slices(&mut inst);
            got.push((format!("{o:?}"), inst.fuel_used(), slices, worst));
        }
        eprintln!("{e}({n}): dense/sparse/plain {got:?}");
        // The same result and the same fuel (slices differ: a round of
        // copies runs between two checks).
        assert!(
            got.iter().all(|g| g.0 == got[0].0 && g.1 == got[0].1),
            "{e}({n}): {got:?}"
        );
    }
}
