//! End to end: WAT -> myriad-codegen -> artifact -> Module -> Instance.

mod compiled;
use compiled::*;
use myriad_codegen::CompileConfig;
use myriad_runtime::fuel::{ns_to_tsc, rdtsc};
use myriad_runtime::{
    Instance, InstantiateError, Module, Outcome, Region, RegionConfig, TrapKind, Val,
};
use std::sync::{Arc, OnceLock};

const WAT: &str = r#"
(module
  (memory 1 4)
  (global $g (mut i32) (i32.const 5))
  (data (i32.const 16) "hello")
  (func (export "add") (param i64 i64) (result i64)
    local.get 0 local.get 1 i64.add)
  ;; sum of 0..n-1 with a loop (preemption point per iteration)
  (func (export "sum") (param i64) (result i64) (local i64 i64)
    (block $done
      (loop $l
        local.get 1 local.get 0 i64.ge_u br_if $done
        local.get 2 local.get 1 i64.add local.set 2
        local.get 1 i64.const 1 i64.add local.set 1
        br $l))
    local.get 2)
  (func (export "inf") (loop $l br $l))
  (func (export "unreachable") unreachable)
  (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
  (func (export "load") (param i32) (result i32) local.get 0 i32.load)
  (func $rec (export "rec") (param i32) (result i32)
    local.get 0 i32.const 1 i32.add call $rec)
  (func (export "grow") (param i32) (result i32 i32)
    local.get 0 memory.grow memory.size)
  (func (export "inc_global") (result i32)
    global.get $g i32.const 1 i32.add global.set $g global.get $g)
  (func (export "data") (result i32) i32.const 16 i32.load8_u)
  (func (export "store") (param i32 i32) local.get 0 local.get 1 i32.store)
)
"#;

fn module_with(guard_bytes: u64) -> Arc<Module> {
    compile_wat(WAT, &CompileConfig::guarded(guard_bytes))
}

fn module() -> Arc<Module> {
    static M: OnceLock<Arc<Module>> = OnceLock::new();
    M.get_or_init(|| module_with(0)).clone()
}

fn region(slots: usize) -> Arc<Region> {
    region_with(slots, 256 * 1024)
}

fn run(i: &mut Instance) -> Outcome {
    loop {
        match i.resume(rdtsc() + ns_to_tsc(20_000)) {
            Outcome::Yielded => continue,
            o => return o,
        }
    }
}

fn call(r: &Arc<Region>, name: &str, args: &[Val]) -> Outcome {
    let mut i = Instance::new(r, &module(), name, args).unwrap();
    run(&mut i)
}

#[test]
fn results_globals_data_grow() {
    let r = region(4);
    assert_eq!(
        call(&r, "add", &[Val::I64(40), Val::I64(2)]),
        Outcome::Finished(vec![Val::I64(42)])
    );
    assert_eq!(
        call(&r, "sum", &[Val::I64(1000)]),
        Outcome::Finished(vec![Val::I64(499_500)])
    );
    assert_eq!(
        call(&r, "inc_global", &[]),
        Outcome::Finished(vec![Val::I32(6)])
    );
    // Globals are per instance: a new instance starts from the initial value.
    assert_eq!(
        call(&r, "inc_global", &[]),
        Outcome::Finished(vec![Val::I32(6)])
    );
    assert_eq!(
        call(&r, "data", &[]),
        Outcome::Finished(vec![Val::I32(b'h' as i32)])
    );
    assert_eq!(
        call(&r, "grow", &[Val::I32(2)]),
        Outcome::Finished(vec![Val::I32(1), Val::I32(3)])
    );
    assert_eq!(
        call(&r, "grow", &[Val::I32(4)]),
        Outcome::Finished(vec![Val::I32(-1), Val::I32(1)])
    );
}

#[test]
fn long_loop_is_preempted_and_finishes() {
    let r = region(1);
    let n = 20_000_000i64;
    let mut i = Instance::new(&r, &module(), "sum", &[Val::I64(n)]).unwrap();
    let mut slices = 0;
    let out = loop {
        match i.resume(rdtsc() + ns_to_tsc(1_000)) {
            Outcome::Yielded => slices += 1,
            o => break o,
        }
    };
    assert_eq!(out, Outcome::Finished(vec![Val::I64(n * (n - 1) / 2)]));
    assert!(slices > 10, "only {slices} slices");
    eprintln!(
        "sum({n}) took {slices} slices, {} slow-path calls",
        i.slow_path_calls()
    );
}

#[test]
fn infinite_loop_preempted_then_dropped() {
    let r = region(1);
    let mut i = Instance::new(&r, &module(), "inf", &[]).unwrap();
    assert_eq!(i.resume(0), Outcome::Yielded);
    for _ in 0..100 {
        assert_eq!(i.resume(rdtsc() + ns_to_tsc(1_000)), Outcome::Yielded);
    }
    drop(i);
    assert_eq!(r.free_slots(), 1);
}

#[test]
fn traps_while_another_instance_continues() {
    let r = region(4);
    let n = 2_000_000i64;
    let mut other = Instance::new(&r, &module(), "sum", &[Val::I64(n)]).unwrap();
    assert_eq!(other.resume(rdtsc() + ns_to_tsc(1_000)), Outcome::Yielded);
    let cases: &[(&str, Vec<Val>, TrapKind)] = &[
        ("unreachable", vec![], TrapKind::Unreachable),
        (
            "div",
            vec![Val::I32(1), Val::I32(0)],
            TrapKind::IntegerDivisionByZero,
        ),
        (
            "div",
            vec![Val::I32(i32::MIN), Val::I32(-1)],
            TrapKind::IntegerOverflow,
        ),
        (
            "load",
            vec![Val::I32(65536 - 4 + 1)],
            TrapKind::HeapOutOfBounds,
        ),
        ("load", vec![Val::I32(-1)], TrapKind::HeapOutOfBounds),
        ("rec", vec![Val::I32(0)], TrapKind::StackOverflow),
    ];
    for (name, args, kind) in cases {
        let mut t = Instance::new(&r, &module(), name, args).unwrap();
        assert_eq!(run(&mut t), Outcome::Trapped(*kind), "{name} {args:?}");
        assert_eq!(other.resume(rdtsc() + ns_to_tsc(1_000)), Outcome::Yielded);
    }
    assert_eq!(
        call(&r, "load", &[Val::I32(65536 - 4)]),
        Outcome::Finished(vec![Val::I32(0)])
    );
    assert_eq!(
        run(&mut other),
        Outcome::Finished(vec![Val::I64(n * (n - 1) / 2)])
    );
}

#[test]
fn heap_is_clean_for_the_next_instance() {
    let r = region(1);
    assert!(matches!(
        call(&r, "store", &[Val::I32(1000), Val::I32(77)]),
        Outcome::Finished(_)
    ));
    assert_eq!(
        call(&r, "load", &[Val::I32(1000)]),
        Outcome::Finished(vec![Val::I32(0)])
    );
}

#[test]
fn thousands_of_cycles() {
    let r = region(16);
    let m = module();
    let t0 = std::time::Instant::now();
    for k in 0..5000i64 {
        let mut i = Instance::new(&r, &m, "add", &[Val::I64(k), Val::I64(1)]).unwrap();
        assert_eq!(
            i.resume(u64::MAX / 2),
            Outcome::Finished(vec![Val::I64(k + 1)])
        );
    }
    eprintln!(
        "5000 compiled instantiate+run+teardown cycles: {:?}",
        t0.elapsed()
    );
    assert_eq!(r.free_slots(), 16);
}

#[test]
fn guard_bytes_need_guard_mode() {
    let m = module_with(65536);
    let r = region(1);
    assert!(matches!(
        Instance::new(&r, &m, "load", &[Val::I32(0)]).unwrap_err(),
        InstantiateError::GuardMismatch(_)
    ));
    let g = Arc::new(
        Region::new(RegionConfig {
            slots: 2,
            stack_size: 16 * 1024,
            heap_capacity: 256 * 1024,
            guard_size: 65536,
            guard_mode: true,
            heap_reservation: 0,
        })
        .unwrap(),
    );
    let mut i = Instance::new(&g, &m, "load", &[Val::I32(65536 - 4 + 1)]).unwrap();
    assert_eq!(run(&mut i), Outcome::Trapped(TrapKind::HeapOutOfBounds));
    let mut i = Instance::new(&g, &m, "load", &[Val::I32(65536 - 4)]).unwrap();
    assert_eq!(run(&mut i), Outcome::Finished(vec![Val::I32(0)]));
}

/// A guard-mode region whose heaps reserve 4 GiB (what sparse code needs)
/// while each may grow only to `heap_capacity`.
fn sparse_region(slots: usize) -> Arc<Region> {
    Arc::new(
        Region::new(RegionConfig {
            slots,
            stack_size: 16 * 1024,
            heap_capacity: 256 * 1024,
            heap_reservation: myriad_codegen::SPARSE_RESERVATION as usize,
            guard_size: myriad_codegen::SPARSE_GUARD as usize,
            guard_mode: true,
        })
        .unwrap(),
    )
}

#[test]
fn sparse_code_runs_only_in_a_sparse_region() {
    let m = compile_wat(WAT, &CompileConfig::sparse());
    assert!(m.metadata().heap_reservation >= myriad_codegen::SPARSE_RESERVATION);
    // A dense region and a guard region without the reservation refuse it.
    assert!(matches!(
        Instance::new(&region(1), &m, "load", &[Val::I32(0)]).unwrap_err(),
        InstantiateError::GuardMismatch(_)
    ));
    let small = Arc::new(
        Region::new(RegionConfig {
            slots: 1,
            stack_size: 16 * 1024,
            heap_capacity: 256 * 1024,
            heap_reservation: 0,
            guard_size: myriad_codegen::SPARSE_GUARD as usize,
            guard_mode: true,
        })
        .unwrap(),
    );
    assert!(matches!(
        Instance::new(&small, &m, "load", &[Val::I32(0)]).unwrap_err(),
        InstantiateError::GuardMismatch(_)
    ));

    let r = sparse_region(3);
    let run_at = |name: &str, args: &[Val]| {
        let mut i = Instance::new(&r, &m, name, args).unwrap();
        run(&mut i)
    };
    // In bounds, at the last word, one past it and far out: every
    // out-of-bounds index faults in the reservation or the guard.
    assert_eq!(
        run_at("data", &[]),
        Outcome::Finished(vec![Val::I32(i32::from(b'h'))])
    );
    assert_eq!(
        run_at("load", &[Val::I32(65536 - 4)]),
        Outcome::Finished(vec![Val::I32(0)])
    );
    for index in [65536 - 3, 65536, 256 * 1024, 1 << 31, -4, -1] {
        assert_eq!(
            run_at("load", &[Val::I32(index)]),
            Outcome::Trapped(TrapKind::HeapOutOfBounds),
            "index {index:#x}"
        );
        assert_eq!(
            run_at("store", &[Val::I32(index), Val::I32(7)]),
            Outcome::Trapped(TrapKind::HeapOutOfBounds),
            "index {index:#x}"
        );
    }
    // The module's own maximum (4 pages) holds within the region's growth
    // limit; the grown pages are usable and the rest still faults.
    assert_eq!(
        run_at("grow", &[Val::I32(3)]),
        Outcome::Finished(vec![Val::I32(1), Val::I32(4)])
    );
    assert_eq!(r.free_slots(), 3);
}

#[test]
fn sparse_growth_stops_at_the_region_capacity() {
    let wat = r#"(module (memory 1)
      (func (export "grow_store") (param i32 i32) (result i32)
        (drop (memory.grow (local.get 0)))
        (i32.store (local.get 1) (i32.const 9))
        (i32.load (local.get 1))))"#;
    let m = compile_wat(wat, &CompileConfig::sparse());
    let r = sparse_region(2);
    let go = |pages: i32, at: i32| {
        let mut i = Instance::new(&r, &m, "grow_store", &[Val::I32(pages), Val::I32(at)]).unwrap();
        run(&mut i)
    };
    // Grown to the 256 KiB capacity: its last word is writable.
    assert_eq!(go(3, 4 * 65536 - 4), Outcome::Finished(vec![Val::I32(9)]));
    // Growth past the capacity fails (-1) and the access past 64 KiB faults.
    assert_eq!(go(4, 65536), Outcome::Trapped(TrapKind::HeapOutOfBounds));
}
