//! Function references the host hands to guests: call arguments, a host
//! function's results, a parked host function's results and host-made
//! tables. A non-null funcref is a code pointer to guest code; the host may
//! pass only null or a reference the instance itself produced, so safe
//! embedder code cannot forge one.

mod compiled;

use compiled::{compile_wat, region_with};
use myriad_codegen::CompileConfig;
use myriad_runtime::{
    FuncType, HostAction, Instance, InstantiateError, Linker, Outcome, Table, TrapKind, Val,
    ValType,
};
use std::sync::Arc;

fn run(inst: &mut Instance) -> Outcome {
    loop {
        let now = myriad_runtime::rdtsc();
        match inst.resume(now + 2_000_000) {
            Outcome::Yielded => continue,
            other => return other,
        }
    }
}

fn call(inst: &mut Instance, name: &str, args: &[Val]) -> Outcome {
    inst.call(name, args).expect("arm call");
    run(inst)
}

/// `get` returns a reference to `$seven` or `$eight`; `call` stores its
/// argument in a table and calls it through `call_indirect`.
const GUEST: &str = r#"(module
     (type $r (func (result i32)))
     (table $t 1 funcref)
     (func $seven (type $r) (i32.const 7))
     (func $eight (type $r) (i32.const 8))
     (elem declare func $seven $eight)
     (func (export "get") (param i32) (result funcref)
       (if (result funcref) (local.get 0)
         (then (ref.func $eight)) (else (ref.func $seven))))
     (func (export "call") (param funcref) (result i32)
       (table.set $t (i32.const 0) (local.get 0))
       (call_indirect $t (type $r) (i32.const 0))))"#;

fn func_ref(outcome: Outcome) -> u64 {
    match outcome {
        Outcome::Finished(v) => match v.as_slice() {
            [Val::FuncRef(bits)] => *bits,
            other => panic!("expected one funcref, got {other:?}"),
        },
        other => panic!("expected results, got {other:?}"),
    }
}

#[test]
fn own_function_references_round_trip_through_the_host() {
    let m = compile_wat(GUEST, &CompileConfig::default());
    let region = region_with(1, 64 << 10);
    let mut inst = Instance::instantiate(&region, &m).expect("instantiate");
    let eight = func_ref(call(&mut inst, "get", &[Val::I32(1)]));
    assert_ne!(eight, 0);
    assert_eq!(
        call(&mut inst, "call", &[Val::FuncRef(eight)]),
        Outcome::Finished(vec![Val::I32(8)])
    );
    // Null is always allowed; calling through it traps.
    assert_eq!(
        call(&mut inst, "call", &[Val::FuncRef(0)]),
        Outcome::Trapped(TrapKind::NullReference)
    );
}

#[test]
fn forged_or_foreign_function_references_are_refused() {
    let m = compile_wat(GUEST, &CompileConfig::default());
    let region = region_with(2, 64 << 10);
    let mut a = Instance::instantiate(&region, &m).expect("instantiate a");
    let mut b = Instance::instantiate(&region, &m).expect("instantiate b");
    let seven = func_ref(call(&mut a, "get", &[Val::I32(0)]));
    // Forged bits: near a real record, misaligned, and arbitrary.
    for bits in [seven + 1, seven + 4096, 0xdead_beef] {
        assert!(matches!(
            a.call("call", &[Val::FuncRef(bits)]),
            Err(InstantiateError::ForeignFuncRef { index: 0 })
        ));
    }
    // Another instance's reference (it could be dropped while `b` keeps
    // the bits).
    assert!(matches!(
        b.call("call", &[Val::FuncRef(seven)]),
        Err(InstantiateError::ForeignFuncRef { index: 0 })
    ));
    // The refused calls left both instances usable.
    assert_eq!(
        call(&mut a, "call", &[Val::FuncRef(seven)]),
        Outcome::Finished(vec![Val::I32(7)])
    );
    let b_seven = func_ref(call(&mut b, "get", &[Val::I32(0)]));
    assert_eq!(
        call(&mut b, "call", &[Val::FuncRef(b_seven)]),
        Outcome::Finished(vec![Val::I32(7)])
    );
}

#[test]
fn host_function_results_and_unpark_values_are_checked() {
    let m = compile_wat(
        r#"(module
             (type $r (func (result i32)))
             (import "env" "give" (func $give (param i32) (result funcref)))
             (import "env" "wait" (func $wait (result funcref)))
             (table $t 1 funcref)
             (func $nine (type $r) (i32.const 9))
             (elem declare func $nine)
             (func (export "nine") (result funcref) (ref.func $nine))
             (func $through (param funcref) (result i32)
               (table.set $t (i32.const 0) (local.get 0))
               (call_indirect $t (type $r) (i32.const 0)))
             (func (export "given") (param i32) (result i32)
               (call $through (call $give (local.get 0))))
             (func (export "waited") (result i32)
               (call $through (call $wait))))"#,
        &CompileConfig::default(),
    );
    let sig = |params: Vec<ValType>| FuncType {
        params,
        results: vec![ValType::FuncRef],
    };
    let mut linker = Linker::new();
    // The host returns whatever bits it is given: the guest's own
    // reference, or forged ones.
    linker.func(
        "env",
        "give",
        sig(vec![ValType::I32]),
        |_, cells: &mut [u64]| {
            cells[0] = u64::from(cells[0] as u32) | 0x7f00_0000_0000;
            HostAction::Return
        },
    );
    linker.func("env", "wait", sig(vec![]), |_, _| HostAction::Park);
    let region = region_with(1, 64 << 10);
    let mut inst = linker.instantiate(&region, &m, None).expect("instantiate");

    // A forged result traps the instance with a host trap, not a jump.
    assert_eq!(
        call(&mut inst, "given", &[Val::I32(0x1000)]),
        Outcome::Trapped(TrapKind::HostTrap)
    );
    assert!(inst
        .host_trap_message()
        .is_some_and(|m| m.contains("does not belong")));

    // A parked host function: forged results are refused, the instance
    // stays parked, and its own reference is accepted.
    let nine = func_ref(call(&mut inst, "nine", &[]));
    assert_eq!(call(&mut inst, "waited", &[]), Outcome::Parked);
    assert!(matches!(
        inst.unpark(&[Val::FuncRef(nine + 8)]),
        Err(InstantiateError::ForeignFuncRef { index: 0 })
    ));
    assert!(matches!(
        inst.unpark_bits(&[0x4141_4141]),
        Err(InstantiateError::ForeignFuncRef { index: 0 })
    ));
    assert!(inst.is_parked());
    inst.unpark(&[Val::FuncRef(nine)]).expect("own reference");
    assert_eq!(run(&mut inst), Outcome::Finished(vec![Val::I32(9)]));
}

#[test]
fn host_made_tables_take_only_null_function_references() {
    let funcs = Table::new(ValType::FuncRef, 2, None);
    assert!(funcs.set(0, 0));
    assert!(!funcs.set(1, 0x1234_5678));
    assert_eq!(funcs.get(1), Some(0));
    assert!(!funcs.set(2, 0), "out of bounds");
    let externs: Arc<Table> = Table::new(ValType::ExternRef, 1, Some(4));
    assert!(externs.set(0, 0x1234_5678), "externrefs are opaque handles");
    assert_eq!(externs.get(0), Some(0x1234_5678));
}
