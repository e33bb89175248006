//! Re-entrant instances: several export calls on one instance, with memory
//! and globals persisting across calls and across traps.

mod compiled;
use compiled::*;
use myriad_codegen::CompileConfig;
use myriad_runtime::fuel::{ns_to_tsc, rdtsc};
use myriad_runtime::{Instance, InstantiateError, Module, Outcome, Region, TrapKind, Val};
use std::sync::Arc;

const WAT: &str = r#"
(module
  (memory 1)
  (global $g (mut i32) (i32.const 0))
  (global $starts (mut i32) (i32.const 0))
  (func $start global.get $starts i32.const 1 i32.add global.set $starts)
  (start $start)
  (func (export "inc") (result i32)
    global.get $g i32.const 1 i32.add global.set $g global.get $g)
  (func (export "starts") (result i32) global.get $starts)
  (func (export "store") (param i32 i32) local.get 0 local.get 1 i32.store)
  (func (export "load") (param i32) (result i32) local.get 0 i32.load)
  (func (export "inc_then_trap")
    global.get $g i32.const 100 i32.add global.set $g
    i32.const 8 i32.const 77 i32.store
    unreachable)
  (func $rec (export "rec") (param i32) (result i32)
    local.get 0 i32.const 1 i32.add call $rec)
  (func (export "inf") (loop $l br $l))
)
"#;

const TRAPPING_START: &str = r#"
(module
  (global $g (mut i32) (i32.const 0))
  (func $start global.get $g i32.const 1 i32.add global.set $g unreachable)
  (start $start)
  (func (export "get") (result i32) global.get $g)
)
"#;

fn module(wat: &str) -> Arc<Module> {
    compile_wat(wat, &CompileConfig::default())
}

fn region() -> Arc<Region> {
    region_with(4, 128 * 1024)
}

fn run(i: &mut Instance) -> Outcome {
    loop {
        match i.resume(rdtsc() + ns_to_tsc(50_000)) {
            Outcome::Yielded => continue,
            o => return o,
        }
    }
}

fn call(i: &mut Instance, export: &str, args: &[Val]) -> Outcome {
    i.call(export, args).expect("arm call");
    run(i)
}

#[test]
fn counter_global_persists_across_calls() {
    let (r, m) = (region(), module(WAT));
    let mut i = Instance::instantiate(&r, &m).unwrap();
    for n in 1..=5 {
        assert_eq!(
            call(&mut i, "inc", &[]),
            Outcome::Finished(vec![Val::I32(n)])
        );
    }
}

#[test]
fn memory_written_by_one_call_is_read_by_another() {
    let (r, m) = (region(), module(WAT));
    let mut i = Instance::instantiate(&r, &m).unwrap();
    assert_eq!(
        call(&mut i, "store", &[Val::I32(64), Val::I32(0x1234_5678)]),
        Outcome::Finished(vec![])
    );
    assert_eq!(
        call(&mut i, "load", &[Val::I32(64)]),
        Outcome::Finished(vec![Val::I32(0x1234_5678)])
    );
    assert_eq!(&i.memory()[64..68], &0x1234_5678u32.to_le_bytes());
}

#[test]
fn call_after_trap_works_and_sees_prior_state() {
    let (r, m) = (region(), module(WAT));
    let mut i = Instance::instantiate(&r, &m).unwrap();
    assert_eq!(
        call(&mut i, "inc", &[]),
        Outcome::Finished(vec![Val::I32(1)])
    );
    assert_eq!(
        call(&mut i, "inc_then_trap", &[]),
        Outcome::Trapped(TrapKind::Unreachable)
    );
    // The trapped call's side effects before the trap are kept.
    assert_eq!(
        call(&mut i, "inc", &[]),
        Outcome::Finished(vec![Val::I32(102)])
    );
    assert_eq!(
        call(&mut i, "load", &[Val::I32(8)]),
        Outcome::Finished(vec![Val::I32(77)])
    );
    // Out-of-bounds and stack-overflow traps leave the instance usable too.
    assert_eq!(
        call(&mut i, "load", &[Val::I32(65536)]),
        Outcome::Trapped(TrapKind::HeapOutOfBounds)
    );
    assert_eq!(
        call(&mut i, "rec", &[Val::I32(0)]),
        Outcome::Trapped(TrapKind::StackOverflow)
    );
    assert_eq!(
        call(&mut i, "inc", &[]),
        Outcome::Finished(vec![Val::I32(103)])
    );
}

#[test]
fn start_function_runs_once() {
    let (r, m) = (region(), module(WAT));
    let mut i = Instance::instantiate(&r, &m).unwrap();
    assert!(i.start_pending());
    assert_eq!(
        call(&mut i, "starts", &[]),
        Outcome::Finished(vec![Val::I32(1)])
    );
    assert!(!i.start_pending());
    assert_eq!(
        call(&mut i, "inc", &[]),
        Outcome::Finished(vec![Val::I32(1)])
    );
    assert_eq!(
        call(&mut i, "starts", &[]),
        Outcome::Finished(vec![Val::I32(1)])
    );

    // Run on its own first: still exactly once.
    let mut j = Instance::instantiate(&r, &m).unwrap();
    assert!(j.call_start().unwrap());
    assert_eq!(run(&mut j), Outcome::Finished(vec![]));
    assert!(!j.call_start().unwrap());
    assert_eq!(
        call(&mut j, "starts", &[]),
        Outcome::Finished(vec![Val::I32(1)])
    );

    // Instance::new behaves as before (start, then the export).
    let mut k = Instance::new(&r, &m, "starts", &[]).unwrap();
    assert_eq!(run(&mut k), Outcome::Finished(vec![Val::I32(1)]));
    assert_eq!(
        call(&mut k, "starts", &[]),
        Outcome::Finished(vec![Val::I32(1)])
    );
}

#[test]
fn trapping_start_function_is_reported_and_not_rerun() {
    let (r, m) = (region(), module(TRAPPING_START));
    let mut i = Instance::instantiate(&r, &m).unwrap();
    assert!(i.call_start().unwrap());
    assert_eq!(run(&mut i), Outcome::Trapped(TrapKind::Unreachable));
    assert_eq!(
        call(&mut i, "get", &[]),
        Outcome::Finished(vec![Val::I32(1)])
    );
}

#[test]
fn fresh_instance_has_no_call_and_suspended_call_blocks_new_calls() {
    let (r, m) = (region(), module(WAT));
    let mut i = Instance::instantiate(&r, &m).unwrap();
    assert_eq!(i.outcome(), Outcome::Finished(vec![]));
    assert_eq!(i.resume(u64::MAX), Outcome::Finished(vec![]));
    assert_eq!(
        i.call("nope", &[]),
        Err(InstantiateError::NoSuchExport("nope".into()))
    );
    assert!(matches!(
        i.call("load", &[]),
        Err(InstantiateError::ArgumentCount { .. })
    ));
    i.call("inf", &[]).unwrap();
    assert_eq!(i.resume(rdtsc() + ns_to_tsc(200_000)), Outcome::Yielded);
    assert_eq!(i.call("inc", &[]), Err(InstantiateError::CallInProgress));
    // Cancel the loop by dropping; a new instance in the same slot starts clean.
    drop(i);
    let mut j = Instance::instantiate(&r, &m).unwrap();
    assert_eq!(
        call(&mut j, "inc", &[]),
        Outcome::Finished(vec![Val::I32(1)])
    );
}

#[test]
fn exports_with_more_values_than_the_vmctx_buffer_holds() {
    // 20 parameters in, 20 results out (reversed): past MAX_VALUES (12),
    // so the call uses a buffer the instance owns; a small call after it
    // goes back to the vmctx's own.
    let n = 20;
    let params = " i64".repeat(n);
    let gets: String = (0..n).rev().map(|i| format!("(local.get {i}) ")).collect();
    let wat = format!(
        r#"(module
             (func (export "rev") (param{params}) (result{params}) {gets})
             (func (export "one") (param i64) (result i64) (local.get 0)))"#
    );
    let (r, m) = (region(), module(&wat));
    let mut i = Instance::instantiate(&r, &m).unwrap();
    let args: Vec<Val> = (0..n as i64).map(Val::I64).collect();
    let expected: Vec<Val> = (0..n as i64).rev().map(Val::I64).collect();
    assert_eq!(
        call(&mut i, "rev", &args),
        Outcome::Finished(expected.clone())
    );
    assert_eq!(
        call(&mut i, "one", &[Val::I64(7)]),
        Outcome::Finished(vec![Val::I64(7)])
    );
    assert_eq!(call(&mut i, "rev", &args), Outcome::Finished(expected));
    // Through Instance::new too (the scheduler's spawn path).
    let mut j = Instance::new(&r, &m, "rev", &args).unwrap();
    assert!(matches!(run(&mut j), Outcome::Finished(v) if v.len() == n));
}
