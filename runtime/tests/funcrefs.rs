//! Function references the host hands to guests: call arguments, a host
//! function's results, a parked host function's results and host-made
//! tables. A non-null funcref is a code pointer to guest code; the host may
//! pass only null or a reference the instance itself produced, so safe
//! embedder code cannot forge one.

mod compiled;

use compiled::{call, compile_wat, region_with, run};
use myriad_codegen::CompileConfig;
use myriad_runtime::{
    FuncType, HostAction, Instance, InstantiateError, Linker, Outcome, Table, TrapKind, Val,
    ValType,
};
use std::sync::Arc;

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

// ---------------------------------------------------------------------------
// Lifetime of references that cross instances (link groups).

/// `A`: a table it exports and calls through, and a function that stores
/// a reference it is given into a private table.
const OWNER: &str = r#"(module
     (type $r (func (result i32)))
     (table $shared (export "t") 2 funcref)
     (table $private 1 funcref)
     (func (export "call0") (result i32)
       (call_indirect $shared (type $r) (i32.const 0)))
     (func (export "store") (param funcref)
       (table.set $private (i32.const 0) (local.get 0)))
     (func (export "call_stored") (result i32)
       (call_indirect $private (type $r) (i32.const 0)))
     (func (export "answer") (result i32) (i32.const 42)))"#;

fn linker_for(a: &Instance) -> Linker {
    let mut linker = Linker::new();
    linker.instance("a", a);
    linker
}

#[test]
fn an_instance_whose_reference_sits_in_an_imported_table_outlives_its_handle() {
    let region = region_with(2, 64 << 10);
    let owner = compile_wat(OWNER, &CompileConfig::default());
    let writer = compile_wat(
        r#"(module
             (type $r (func (result i32)))
             (import "a" "t" (table 2 funcref))
             (func $five (type $r) (i32.const 5))
             (elem (i32.const 0) func $five))"#,
        &CompileConfig::default(),
    );
    let mut a = Instance::instantiate(&region, &owner).expect("a");
    let b = linker_for(&a)
        .instantiate(&region, &writer, None)
        .expect("b");
    assert_eq!(region.free_slots(), 0);
    drop(b);
    // B's function is still in A's table: B stays (same group as A).
    assert_eq!(region.free_slots(), 0);
    assert_eq!(
        call(&mut a, "call0", &[]),
        Outcome::Finished(vec![Val::I32(5)])
    );
    drop(a);
    assert_eq!(
        region.free_slots(),
        2,
        "the group died with its last handle"
    );
}

#[test]
fn a_reference_passed_to_an_imported_function_keeps_its_instance() {
    let region = region_with(2, 64 << 10);
    let owner = compile_wat(OWNER, &CompileConfig::default());
    let caller = compile_wat(
        r#"(module
             (type $r (func (result i32)))
             (import "a" "store" (func $store (param funcref)))
             (func $six (type $r) (i32.const 6))
             (elem declare func $six)
             (func (export "give") (call $store (ref.func $six))))"#,
        &CompileConfig::default(),
    );
    let mut a = Instance::instantiate(&region, &owner).expect("a");
    let mut b = linker_for(&a)
        .instantiate(&region, &caller, None)
        .expect("b");
    assert_eq!(call(&mut b, "give", &[]), Outcome::Finished(vec![]));
    drop(b);
    assert_eq!(
        call(&mut a, "call_stored", &[]),
        Outcome::Finished(vec![Val::I32(6)])
    );
    drop(a);
    assert_eq!(region.free_slots(), 2);
}

#[test]
fn linked_instances_live_and_die_together() {
    let region = region_with(2, 64 << 10);
    let owner = compile_wat(OWNER, &CompileConfig::default());
    let user = compile_wat(
        r#"(module
             (import "a" "answer" (func $answer (result i32)))
             (func (export "ask") (result i32) (call $answer)))"#,
        &CompileConfig::default(),
    );
    let a = Instance::instantiate(&region, &owner).expect("a");
    let linker = linker_for(&a);
    let mut b = linker.instantiate(&region, &user, None).expect("b");
    // The exporter lives as long as an importer needs it...
    drop(linker);
    drop(a);
    assert_eq!(region.free_slots(), 0);
    assert_eq!(
        call(&mut b, "ask", &[]),
        Outcome::Finished(vec![Val::I32(42)])
    );
    // ...and both go with the group's last handle.
    drop(b);
    assert_eq!(region.free_slots(), 2);
    // An instance that links to nothing has no group: it goes at once.
    let solo = Instance::instantiate(&region, &owner).expect("solo");
    assert_eq!(region.free_slots(), 1);
    drop(solo);
    assert_eq!(region.free_slots(), 2);
}

#[test]
fn a_reference_to_a_storing_function_reached_through_a_global_keeps_the_caller() {
    // P hands out (through an immutable global) a reference to a function
    // that stores its argument; Q calls it with its own reference.
    let region = region_with(2, 64 << 10);
    let p = compile_wat(
        r#"(module
             (type $v (func (result i32)))
             (type $s (func (param funcref)))
             (table $pt 1 funcref)
             (func $store (type $s) (table.set $pt (i32.const 0) (local.get 0)))
             (elem declare func $store)
             (global (export "store") funcref (ref.func $store))
             (func (export "call0") (result i32)
               (call_indirect $pt (type $v) (i32.const 0))))"#,
        &CompileConfig::default(),
    );
    let q = compile_wat(
        r#"(module
             (type $v (func (result i32)))
             (type $s (func (param funcref)))
             (import "p" "store" (global $g funcref))
             (table $qt 1 funcref)
             (func $mine (type $v) (i32.const 11))
             (elem declare func $mine)
             (func (export "go")
               (table.set $qt (i32.const 0) (global.get $g))
               (call_indirect $qt (type $s) (ref.func $mine) (i32.const 0))))"#,
        &CompileConfig::default(),
    );
    let mut pi = Instance::instantiate(&region, &p).expect("p");
    let mut linker = Linker::new();
    linker.instance("p", &pi);
    let mut qi = linker.instantiate(&region, &q, None).expect("q");
    drop(linker);
    assert_eq!(call(&mut qi, "go", &[]), Outcome::Finished(vec![]));
    drop(qi);
    assert_eq!(
        call(&mut pi, "call0", &[]),
        Outcome::Finished(vec![Val::I32(11)])
    );
    drop(pi);
    assert_eq!(region.free_slots(), 2);
}

#[test]
fn groups_joined_through_a_third_instance_are_freed() {
    // Y imports Z's function; X imports Y's function and Z's table: all
    // three end up in one group, and it dies with the last handle.
    let region = region_with(3, 64 << 10);
    let z = compile_wat(
        r#"(module (table (export "t") 1 funcref)
             (func (export "f") (result i32) (i32.const 1)))"#,
        &CompileConfig::default(),
    );
    let y = compile_wat(
        r#"(module (import "z" "f" (func $f (result i32)))
             (func (export "g") (result i32) (call $f)))"#,
        &CompileConfig::default(),
    );
    let x = compile_wat(
        r#"(module (import "y" "g" (func (result i32)))
             (import "z" "t" (table 1 funcref)))"#,
        &CompileConfig::default(),
    );
    let zi = Instance::instantiate(&region, &z).expect("z");
    let mut linker = Linker::new();
    linker.instance("z", &zi);
    let yi = linker.instantiate(&region, &y, None).expect("y");
    linker.instance("y", &yi);
    let xi = linker.instantiate(&region, &x, None).expect("x");
    assert_eq!(region.free_slots(), 0);
    drop((zi, yi, xi, linker));
    assert_eq!(region.free_slots(), 3);
}

#[test]
fn a_host_function_with_a_funcref_result_past_the_32nd_traps() {
    let mut results = vec![ValType::I32; 32];
    results.push(ValType::FuncRef);
    let text: String = results
        .iter()
        .map(|t| {
            if *t == ValType::I32 {
                " i32"
            } else {
                " funcref"
            }
        })
        .collect();
    let m = compile_wat(
        &format!(
            r#"(module
                 (import "env" "many" (func $many (result{text})))
                 (func (export "run") (call $many) (drop) (drop)
                   {drops}))"#,
            drops = "(drop) ".repeat(31)
        ),
        &CompileConfig::default(),
    );
    let mut linker = Linker::new();
    linker.func(
        "env",
        "many",
        FuncType {
            params: vec![],
            results,
        },
        |_, cells: &mut [u64]| {
            cells[32] = 0x4141_4141;
            HostAction::Return
        },
    );
    let region = region_with(1, 64 << 10);
    let mut inst = linker.instantiate(&region, &m, None).expect("instantiate");
    assert_eq!(
        call(&mut inst, "run", &[]),
        Outcome::Trapped(TrapKind::HostTrap)
    );
    assert!(inst
        .host_trap_message()
        .is_some_and(|m| m.contains("past the 32nd")));
}

#[test]
fn a_table_the_host_keeps_is_scrubbed_when_its_instances_are_gone() {
    let region = region_with(2, 64 << 10);
    let writer = compile_wat(
        r#"(module
             (type $r (func (result i32)))
             (import "host" "t" (table 2 funcref))
             (import "host" "g" (global (mut funcref)))
             (func $five (type $r) (i32.const 5))
             (elem (i32.const 1) func $five)
             (func (export "fill")
               (global.set 0 (ref.func $five))))"#,
        &CompileConfig::default(),
    );
    let table = Table::new(ValType::FuncRef, 2, None);
    let global = myriad_runtime::Global::new(Val::FuncRef(0), true).expect("null funcref");
    assert!(myriad_runtime::Global::new(Val::FuncRef(0x1000), true).is_err());
    let mut linker = Linker::new();
    linker.define("host", "t", myriad_runtime::Extern::Table(table.clone()));
    linker.define("host", "g", myriad_runtime::Extern::Global(global.clone()));
    let mut b = linker.instantiate(&region, &writer, None).expect("b");
    assert_eq!(call(&mut b, "fill", &[]), Outcome::Finished(vec![]));
    assert_ne!(table.get(1), Some(0));
    assert_ne!(global.get(), Val::FuncRef(0));
    // The host's table and global do not keep B alive; B's references
    // in them die with it.
    drop(b);
    assert_eq!(region.free_slots(), 2);
    assert_eq!(table.get(1), Some(0));
    assert_eq!(global.get(), Val::FuncRef(0));
    // They can be used again by a new instance.
    let mut c = linker.instantiate(&region, &writer, None).expect("c");
    assert_ne!(table.get(1), Some(0));
    assert_eq!(call(&mut c, "fill", &[]), Outcome::Finished(vec![]));
}

#[test]
fn a_failed_instantiation_leaves_its_references_alive_and_loses_no_slot() {
    let region = region_with(2, 64 << 10);
    let owner = compile_wat(OWNER, &CompileConfig::default());
    let failing = compile_wat(
        r#"(module
             (type $r (func (result i32)))
             (import "a" "t" (table 2 funcref))
             (func $seven (type $r) (i32.const 7))
             (elem (i32.const 0) func $seven)
             (elem (i32.const 5) func $seven))"#,
        &CompileConfig::default(),
    );
    let mut a = Instance::instantiate(&region, &owner).expect("a");
    let linker = linker_for(&a);
    assert!(linker.instantiate(&region, &failing, None).is_err());
    // The first segment's reference stays in A's table, and works.
    assert_eq!(
        call(&mut a, "call0", &[]),
        Outcome::Finished(vec![Val::I32(7)])
    );
    drop(linker);
    drop(a);
    assert_eq!(region.free_slots(), 2);
}
