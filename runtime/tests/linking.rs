//! Imports and linking: host functions (typed and raw, memory access,
//! park/unpark, yield, exit, trap, panic), calls into another instance
//! (its memory, globals and tables, preemption and traps inside its code),
//! import type checks, exception tags (declared, exported, imported and
//! type-checked; inert), and the fuel and memory limits.

mod compiled;

use compiled::{call, compile_wat, region_with, run};
use myriad_codegen::CompileConfig;
use myriad_runtime::{
    Caller, Extern, FuncType, Global, HostAction, Instance, InstantiateError, Limit, LinkError,
    Linker, Outcome, Tag, TagError, TrapKind, Val, ValType,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[test]
fn typed_host_functions_read_and_write_guest_memory() {
    let m = compile_wat(
        r#"(module
             (import "env" "add" (func $add (param i32 i32) (result i32)))
             (import "env" "upper" (func $upper (param i32 i32) (result i32)))
             (memory (export "memory") 1)
             (data (i32.const 16) "hello")
             (func (export "run") (result i32 i32)
               (call $add (i32.const 40) (i32.const 2))
               (call $upper (i32.const 16) (i32.const 5))))"#,
        &CompileConfig::default(),
    );
    let seen = Arc::new(std::sync::Mutex::new(String::new()));
    let seen2 = seen.clone();
    let mut linker = Linker::new();
    linker.func_wrap("env", "add", |_: &mut Caller<'_>, a: i32, b: i32| a + b);
    linker.func_wrap(
        "env",
        "upper",
        move |c: &mut Caller<'_>, ptr: u32, len: u32| -> Result<i32, HostAction> {
            let mem = c.memory_mut();
            let range = ptr as usize..(ptr + len) as usize;
            let bytes = mem
                .get_mut(range)
                .ok_or_else(|| HostAction::Trap("bad pointer".into()))?;
            *seen2.lock().unwrap() = String::from_utf8_lossy(bytes).into_owned();
            bytes.make_ascii_uppercase();
            Ok(len as i32)
        },
    );
    let region = region_with(2, 64 * 1024);
    let mut inst = linker.instantiate(&region, &m, None).expect("instantiate");
    assert_eq!(
        call(&mut inst, "run", &[]),
        Outcome::Finished(vec![Val::I32(42), Val::I32(5)])
    );
    assert_eq!(&*seen.lock().unwrap(), "hello");
    assert_eq!(&inst.memory()[16..21], b"HELLO");
}

#[test]
fn park_unpark_yield_exit_trap_and_panic() {
    let m = compile_wat(
        r#"(module
             (import "env" "wait" (func $wait (param i32) (result i64)))
             (import "env" "yield" (func $yield))
             (import "env" "exit" (func $exit (param i32)))
             (import "env" "fail" (func $fail))
             (import "env" "boom" (func $boom))
             (func (export "park") (result i64)
               (i64.add (call $wait (i32.const 7)) (i64.const 1)))
             (func (export "yield") (result i32) (call $yield) (i32.const 3))
             (func (export "exit") (call $exit (i32.const 9)) unreachable)
             (func (export "fail") (call $fail))
             (func (export "boom") (call $boom)))"#,
        &CompileConfig::default(),
    );
    let parked_with = Arc::new(AtomicU64::new(0));
    let p2 = parked_with.clone();
    let mut linker = Linker::new();
    linker
        .func(
            "env",
            "wait",
            FuncType {
                params: vec![ValType::I32],
                results: vec![ValType::I64],
            },
            move |_, cells| {
                p2.store(cells[0], Ordering::Relaxed);
                HostAction::Park
            },
        )
        .func_wrap(
            "env",
            "yield",
            |_: &mut Caller<'_>| -> Result<(), HostAction> { Err(HostAction::Yield) },
        )
        .func_wrap(
            "env",
            "exit",
            |_: &mut Caller<'_>, code: i32| -> Result<(), HostAction> {
                Err(HostAction::Exit(code))
            },
        )
        .func_wrap(
            "env",
            "fail",
            |_: &mut Caller<'_>| -> Result<(), HostAction> {
                Err(HostAction::Trap("no such file".into()))
            },
        )
        .func_wrap("env", "boom", |_: &mut Caller<'_>| -> () {
            panic!("host bug")
        });
    let region = region_with(1, 0);
    let mut inst = linker.instantiate(&region, &m, None).expect("instantiate");

    inst.call("park", &[]).unwrap();
    assert_eq!(inst.resume(u64::MAX), Outcome::Parked);
    assert!(inst.is_parked());
    assert_eq!(parked_with.load(Ordering::Relaxed), 7);
    // Resuming a parked instance without unparking it runs nothing.
    assert_eq!(inst.resume(u64::MAX), Outcome::Parked);
    assert_eq!(
        inst.call("yield", &[]),
        Err(InstantiateError::CallInProgress)
    );
    inst.unpark(&[Val::I64(41)]).unwrap();
    assert_eq!(
        inst.unpark(&[Val::I64(1)]),
        Err(InstantiateError::NotParked)
    );
    assert_eq!(run(&mut inst), Outcome::Finished(vec![Val::I64(42)]));

    inst.call("yield", &[]).unwrap();
    assert_eq!(inst.resume(u64::MAX), Outcome::Yielded);
    assert_eq!(run(&mut inst), Outcome::Finished(vec![Val::I32(3)]));

    assert_eq!(call(&mut inst, "exit", &[]), Outcome::Exited(9));
    assert_eq!(
        call(&mut inst, "fail", &[]),
        Outcome::Trapped(TrapKind::HostTrap)
    );
    assert_eq!(inst.host_trap_message(), Some("no such file"));
    assert_eq!(
        call(&mut inst, "boom", &[]),
        Outcome::Trapped(TrapKind::HostTrap)
    );
    assert!(inst.host_trap_message().unwrap().contains("host bug"));
    // The instance is still usable after all of that.
    inst.call("park", &[]).unwrap();
    assert_eq!(inst.resume(u64::MAX), Outcome::Parked);
    inst.unpark(&[Val::I64(0)]).unwrap();
    assert_eq!(run(&mut inst), Outcome::Finished(vec![Val::I64(1)]));
}

#[test]
fn embedder_data_is_visible_to_host_functions() {
    let m = compile_wat(
        r#"(module (import "env" "count" (func $c (result i32)))
             (func (export "run") (result i32) (drop (call $c)) (call $c)))"#,
        &CompileConfig::default(),
    );
    let mut linker = Linker::new();
    linker.func_wrap("env", "count", |c: &mut Caller<'_>| -> i32 {
        let n = c.data::<i32>().expect("data is an i32");
        *n += 1;
        *n
    });
    let region = region_with(1, 0);
    let mut inst = linker
        .instantiate(&region, &m, Some(Box::new(10i32)))
        .unwrap();
    assert_eq!(
        call(&mut inst, "run", &[]),
        Outcome::Finished(vec![Val::I32(12)])
    );
    assert_eq!(inst.data::<i32>(), Some(&mut 12));
}

const PROVIDER: &str = r#"(module
  (memory (export "mem") 1 4)
  (global $g (export "g") (mut i32) (i32.const 5))
  (global (export "c") i64 (i64.const 77))
  (table (export "tab") 2 funcref)
  (elem (i32.const 0) $double)
  (func $double (export "double") (param i32) (result i32)
    (i32.mul (local.get 0) (i32.const 2)))
  (func (export "store") (param i32 i32)
    (i32.store (local.get 0) (local.get 1))
    (global.set $g (i32.add (global.get $g) (i32.const 1))))
  (func (export "spin") (param i64) (result i64)
    (local $i i64)
    (loop $l
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $l (i64.lt_u (local.get $i) (local.get 0))))
    (local.get $i))
  (func (export "oob") (result i32) (i32.load (i32.const 0x7ffffff0)))
  (global (export "base") i32 (i32.const 5))
  (func $deep (export "deep") (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
      (else (i32.add (i32.const 1) (call $deep (i32.sub (local.get 0) (i32.const 1))))))))"#;

const CONSUMER: &str = r#"(module
  (import "p" "mem" (memory 1))
  (import "p" "g" (global $g (mut i32)))
  (import "p" "c" (global $c i64))
  (import "p" "tab" (table 2 funcref))
  (import "p" "double" (func $double (param i32) (result i32)))
  (import "p" "store" (func $store (param i32 i32)))
  (import "p" "spin" (func $spin (param i64) (result i64)))
  (import "p" "oob" (func $oob (result i32)))
  (import "p" "deep" (func $deep (param i32) (result i32)))
  (import "p" "base" (global $b i32))
  (global $base i32 (global.get $b))
  (type $t (func (param i32) (result i32)))
  (data (global.get $b) "\2a")
  (func (export "run") (result i32 i32 i64 i32 i32)
    (call $store (i32.const 100) (i32.const 1234))
    (i32.load (i32.const 100))
    (global.get $g)
    (global.get $c)
    (call $double (i32.const 21))
    (call_indirect (type $t) (i32.const 4) (i32.const 0)))
  (func (export "byte") (result i32) (i32.load8_u (global.get $base)))
  (func (export "spin") (param i64) (result i64) (call $spin (local.get 0)))
  (func (export "oob") (result i32) (call $oob))
  (func (export "deep") (param i32) (result i32) (call $deep (local.get 0))))"#;

#[test]
fn wasm_imports_share_memory_globals_tables_and_code() {
    let provider = compile_wat(PROVIDER, &CompileConfig::default());
    let consumer = compile_wat(CONSUMER, &CompileConfig::default());
    let region = region_with(4, 4 * 65536);
    let p = Instance::instantiate(&region, &provider).unwrap();
    let mut linker = Linker::new();
    linker.instance("p", &p);
    let mut c = linker.instantiate(&region, &consumer, None).unwrap();
    assert_eq!(
        call(&mut c, "run", &[]),
        Outcome::Finished(vec![
            Val::I32(1234),
            Val::I32(6),
            Val::I64(77),
            Val::I32(42),
            Val::I32(8)
        ])
    );
    // The data segment went to the provider's memory at the imported
    // global's value at instantiation (5).
    assert_eq!(p.memory()[5], 0x2a);
    assert_eq!(
        call(&mut c, "byte", &[]),
        Outcome::Finished(vec![Val::I32(42)])
    );
    assert_eq!(p.memory()[100..104], 1234u32.to_le_bytes());
    match p.export("g") {
        Some(Extern::Global(g)) => assert_eq!(g.get(), Val::I32(6)),
        other => panic!("{other:?}"),
    }
    // The provider's instance can go; the consumer keeps its slot alive.
    drop(p);
    assert_eq!(region.free_slots(), 2);
    assert_eq!(
        call(&mut c, "run", &[]),
        Outcome::Finished(vec![
            Val::I32(1234),
            Val::I32(7),
            Val::I64(77),
            Val::I32(42),
            Val::I32(8)
        ])
    );
    drop(c);
    drop(linker);
    assert_eq!(region.free_slots(), 4);
}

#[test]
fn calls_into_another_instance_are_preempted_and_trap_on_the_callers_thread() {
    let provider = compile_wat(PROVIDER, &CompileConfig::default());
    let consumer = compile_wat(CONSUMER, &CompileConfig::default());
    let region = region_with(2, 4 * 65536);
    let p = Instance::instantiate(&region, &provider).unwrap();
    let mut linker = Linker::new();
    linker.instance("p", &p);
    let mut c = linker.instantiate(&region, &consumer, None).unwrap();
    // A long loop in the provider's code yields at the consumer's slice
    // deadlines and finishes.
    c.call("spin", &[Val::I64(30_000_000)]).unwrap();
    let mut yields = 0;
    loop {
        let now = myriad_runtime::rdtsc();
        match c.resume(now + 20_000) {
            Outcome::Yielded => yields += 1,
            other => {
                assert_eq!(other, Outcome::Finished(vec![Val::I64(30_000_000)]));
                break;
            }
        }
    }
    assert!(yields > 5, "only {yields} yields");
    // A fault in the provider's code ends the consumer's call.
    assert_eq!(
        call(&mut c, "oob", &[]),
        Outcome::Trapped(TrapKind::HeapOutOfBounds)
    );
    // Recursion in the provider's code is bounded by the consumer's stack.
    assert_eq!(
        call(&mut c, "deep", &[Val::I32(100_000)]),
        Outcome::Trapped(TrapKind::StackOverflow)
    );
    assert_eq!(
        call(&mut c, "deep", &[Val::I32(10)]),
        Outcome::Finished(vec![Val::I32(10)])
    );
}

#[test]
fn import_mismatches_are_refused_by_name() {
    let consumer = compile_wat(CONSUMER, &CompileConfig::default());
    let region = region_with(2, 4 * 65536);
    let linker = Linker::new();
    match linker.instantiate(&region, &consumer, None) {
        Err(LinkError::UnknownImport { module, name, kind }) => {
            assert_eq!(
                (module.as_str(), name.as_str(), kind),
                ("p", "mem", "memory")
            )
        }
        other => panic!("{other:?}"),
    }
    let provider = compile_wat(PROVIDER, &CompileConfig::default());
    let p = Instance::instantiate(&region, &provider).unwrap();
    let mut linker = Linker::new();
    linker.instance("p", &p);
    // An immutable host global where a mutable one is imported.
    linker.define(
        "p",
        "g",
        Extern::Global(Global::new(Val::I32(1), false).expect("i32 global")),
    );
    match linker.instantiate(&region, &consumer, None) {
        Err(LinkError::Instantiate(InstantiateError::IncompatibleImport { name, .. })) => {
            assert_eq!(name, "g")
        }
        other => panic!("{other:?}"),
    }
    // A function of the wrong type.
    let mut linker2 = Linker::new();
    linker2.instance("p", &p);
    linker2.func_wrap("p", "double", |_: &mut Caller<'_>, x: i64| x);
    assert!(matches!(
        linker2.instantiate(&region, &consumer, None),
        Err(LinkError::Instantiate(
            InstantiateError::IncompatibleImport { .. }
        ))
    ));
    assert_eq!(
        region.free_slots(),
        1,
        "failed instantiations free their slots"
    );
}

#[test]
fn fuel_and_memory_limits_end_the_instance() {
    let m = compile_wat(
        r#"(module (memory 1)
             (func (export "spin") (loop $l (br $l)))
             (func (export "grow") (result i32)
               (drop (memory.grow (i32.const 1)))
               (memory.grow (i32.const 1))))"#,
        &CompileConfig::default(),
    );
    let region = region_with(1, 4 * 65536);
    let mut inst = Instance::instantiate(&region, &m).unwrap();
    inst.set_fuel_limit(1_000_000);
    assert_eq!(call(&mut inst, "spin", &[]), Outcome::Limited(Limit::Fuel));
    assert!(inst.fuel_used() >= 1_000_000);
    drop(inst);
    let mut inst = Instance::instantiate(&region, &m).unwrap();
    inst.set_memory_limit(2 * 65536);
    assert_eq!(
        call(&mut inst, "grow", &[]),
        Outcome::Limited(Limit::Memory)
    );
    assert_eq!(inst.memory().len(), 2 * 65536);
}

#[test]
fn the_memory_limit_counts_table_storage() {
    let m = compile_wat(
        r#"(module (memory 1) (table $t 10 funcref) (table $u 0 externref)
             (func (export "grow_t") (param i32) (result i32)
               (table.grow $t (ref.null func) (local.get 0)))
             (func (export "grow_u") (param i32) (result i32)
               (table.grow $u (ref.null extern) (local.get 0)))
             (func (export "grow_mem") (param i32) (result i32)
               (memory.grow (local.get 0))))"#,
        &CompileConfig::default(),
    );
    let region = region_with(1, 4 * 65536);
    // 1 page of memory (65,536 bytes) + 10 elements (80 bytes) in use;
    // the limit leaves room for 1,000 more elements in all.
    let limit = 65536 + 8 * 1010;
    let mut inst = Instance::instantiate(&region, &m).unwrap();
    inst.set_memory_limit(limit);
    assert_eq!(
        call(&mut inst, "grow_t", &[Val::I32(600)]),
        Outcome::Finished(vec![Val::I32(10)])
    );
    // Both tables count: 400 more fit, 401 do not.
    assert_eq!(
        call(&mut inst, "grow_u", &[Val::I32(400)]),
        Outcome::Finished(vec![Val::I32(0)])
    );
    assert_eq!(
        call(&mut inst, "grow_u", &[Val::I32(1)]),
        Outcome::Limited(Limit::Memory)
    );
    drop(inst);
    // memory.grow counts the tables too: with the 10 initial elements a
    // second page just fits; it no longer does once the tables hold 8 KiB.
    let mut inst = Instance::instantiate(&region, &m).unwrap();
    inst.set_memory_limit(2 * 65536 + 80);
    assert_eq!(
        call(&mut inst, "grow_mem", &[Val::I32(1)]),
        Outcome::Finished(vec![Val::I32(1)])
    );
    drop(inst);
    let mut inst = Instance::instantiate(&region, &m).unwrap();
    inst.set_memory_limit(2 * 65536 + 80);
    assert_eq!(
        call(&mut inst, "grow_t", &[Val::I32(1024)]),
        Outcome::Finished(vec![Val::I32(10)])
    );
    assert_eq!(
        call(&mut inst, "grow_mem", &[Val::I32(1)]),
        Outcome::Limited(Limit::Memory)
    );
    drop(inst);
    // Without a limit, the tables' total is capped: -1 past 10 million.
    let mut inst = Instance::instantiate(&region, &m).unwrap();
    assert_eq!(
        call(&mut inst, "grow_t", &[Val::I32(6_000_000)]),
        Outcome::Finished(vec![Val::I32(10)])
    );
    assert_eq!(
        call(&mut inst, "grow_u", &[Val::I32(4_000_000)]),
        Outcome::Finished(vec![Val::I32(-1)])
    );
    assert_eq!(
        call(&mut inst, "grow_u", &[Val::I32(3_999_990)]),
        Outcome::Finished(vec![Val::I32(0)])
    );
}

#[test]
fn growing_imported_tables_is_charged_to_the_grower() {
    let owner = compile_wat(
        r#"(module (memory 1) (table (export "a") 0 externref) (table (export "b") 0 externref)
             (func (export "grow_mem") (param i32) (result i32) (memory.grow (local.get 0))))"#,
        &CompileConfig::default(),
    );
    let grower = compile_wat(
        r#"(module
             (import "o" "a" (table $a 0 externref))
             (import "o" "b" (table $b 0 externref))
             (func (export "grow") (param i32 i32) (result i32 i32)
               (table.grow $a (ref.null extern) (local.get 0))
               (table.grow $b (ref.null extern) (local.get 1))))"#,
        &CompileConfig::default(),
    );
    let region = region_with(4, 2 * 65536);
    let mut o = Instance::instantiate(&region, &owner).unwrap();
    let mut linker = Linker::new();
    linker.instance("o", &o);
    // Without a limit, what one instance grows is capped in all: two
    // 6-million-element grows do not both succeed.
    let mut g = linker.instantiate(&region, &grower, None).unwrap();
    assert_eq!(
        call(&mut g, "grow", &[Val::I32(6_000_000), Val::I32(6_000_000)]),
        Outcome::Finished(vec![Val::I32(0), Val::I32(-1)])
    );
    drop(g);
    // With a limit, the grower pays for the imported tables it grows.
    let mut g = linker.instantiate(&region, &grower, None).unwrap();
    g.set_memory_limit(64 * 1024);
    assert_eq!(
        call(&mut g, "grow", &[Val::I32(1000), Val::I32(10_000)]),
        Outcome::Limited(Limit::Memory)
    );
    // ...and the owner does not pay again: the 6,001,000 elements the
    // growers added do not count against its own limit.
    o.set_memory_limit(65536 + 1024);
    assert_eq!(
        call(&mut o, "grow_mem", &[Val::I32(0)]),
        Outcome::Finished(vec![Val::I32(1)])
    );
}

#[test]
fn a_grow_the_table_refuses_fails_with_minus_one_even_under_a_limit() {
    let m = compile_wat(
        r#"(module (table $t 0 10 externref) (memory 1 2)
             (func (export "grow_t") (param i32) (result i32)
               (table.grow $t (ref.null extern) (local.get 0)))
             (func (export "grow_mem") (param i32) (result i32)
               (memory.grow (local.get 0))))"#,
        &CompileConfig::default(),
    );
    let region = region_with(1, 4 * 65536);
    let mut inst = Instance::instantiate(&region, &m).unwrap();
    inst.set_memory_limit(65536 + 64);
    assert_eq!(
        call(&mut inst, "grow_t", &[Val::I32(100_000)]),
        Outcome::Finished(vec![Val::I32(-1)])
    );
    assert_eq!(
        call(&mut inst, "grow_mem", &[Val::I32(5)]),
        Outcome::Finished(vec![Val::I32(-1)])
    );
    // Within the table's maximum but past the limit: the limit ends it.
    assert_eq!(
        call(&mut inst, "grow_t", &[Val::I32(10)]),
        Outcome::Limited(Limit::Memory)
    );
}

#[test]
fn an_instance_already_past_its_memory_limit_ends_at_once() {
    let m = compile_wat(
        r#"(module (table 100000 externref) (func (export "run") (result i32) (i32.const 1)))"#,
        &CompileConfig::default(),
    );
    let region = region_with(1, 0);
    let mut inst = Instance::instantiate(&region, &m).unwrap();
    inst.call("run", &[]).unwrap();
    inst.set_memory_limit(64 * 1024);
    // The armed call ends before it runs.
    assert_eq!(inst.resume(u64::MAX), Outcome::Limited(Limit::Memory));
    let mut inst2 = {
        drop(inst);
        Instance::instantiate(&region, &m).unwrap()
    };
    inst2.set_memory_limit(1 << 20);
    assert_eq!(
        call(&mut inst2, "run", &[]),
        Outcome::Finished(vec![Val::I32(1)])
    );
}

#[test]
fn many_tables_cannot_multiply_the_table_cap() {
    let m = compile_wat(
        r#"(module (table 6000000 funcref) (table 6000000 funcref))"#,
        &CompileConfig::default(),
    );
    let region = region_with(1, 0);
    assert_eq!(
        Instance::instantiate(&region, &m).err(),
        Some(InstantiateError::TableTooLarge(12_000_000))
    );
}

/// Defines three tags (one exported twice) and re-exports an imported one
/// in [`TAG_USER`].
const TAG_OWNER: &str = r#"(module
  (tag $t (export "t") (param i32))
  (tag (export "u") (param i32))
  (tag (export "none"))
  (export "t-again" (tag $t)))"#;

/// Imports a tag, re-exports it and defines its own of the same type.
const TAG_USER: &str = r#"(module
  (import "a" "t" (tag $i (param i32)))
  (tag (export "own") (param i32))
  (export "re" (tag $i))
  (func (export "f") (result i32) (i32.const 7)))"#;

fn tag(e: Option<Extern>) -> Tag {
    match e {
        Some(Extern::Tag(t)) => t,
        other => panic!("expected a tag, got {other:?}"),
    }
}

fn i32_tag_type() -> FuncType {
    FuncType {
        params: vec![ValType::I32],
        results: vec![],
    }
}

#[test]
fn defined_tags_get_a_fresh_identity_per_instance() {
    let owner = compile_wat(TAG_OWNER, &CompileConfig::default());
    let region = region_with(2, 65536);
    let a1 = Instance::instantiate(&region, &owner).unwrap();
    let a2 = Instance::instantiate(&region, &owner).unwrap();
    let t1 = tag(a1.export("t"));
    assert_eq!(t1.ty(), &i32_tag_type());
    assert_eq!(tag(a1.export("none")).ty(), &FuncType::default());
    // The same declaration in the same instance is the same tag, under
    // any export name and on every lookup.
    assert!(t1.same(&tag(a1.export("t"))));
    assert_eq!(t1, tag(a1.export("t-again")));
    // Another declaration of the same type, or the same declaration in
    // another instance, is another tag.
    assert_ne!(t1, tag(a1.export("u")));
    assert_ne!(t1, tag(a2.export("t")));
    assert_eq!(Extern::Tag(t1.clone()).kind_name(), "tag");
    assert!(a1.export("missing").is_none());
}

#[test]
fn tag_imports_keep_the_supplied_identity() {
    let owner = compile_wat(TAG_OWNER, &CompileConfig::default());
    let user = compile_wat(TAG_USER, &CompileConfig::default());
    let region = region_with(4, 65536);
    let a = Instance::instantiate(&region, &owner).unwrap();
    let mut linker = Linker::new();
    linker.instance("a", &a);
    let mut b = linker.instantiate(&region, &user, None).unwrap();
    let re = tag(b.export("re"));
    assert_eq!(re, tag(a.export("t")));
    assert_ne!(re, tag(b.export("own")));
    // Instances linked through tags still run.
    assert_eq!(call(&mut b, "f", &[]), Outcome::Finished(vec![Val::I32(7)]));

    // A host tag satisfies the import and is passed through as itself.
    let host = Tag::new(i32_tag_type()).unwrap();
    let mut linker = Linker::new();
    linker.define("a", "t", Extern::Tag(host.clone()));
    let c = linker.instantiate(&region, &user, None).unwrap();
    assert_eq!(tag(c.export("re")), host);
    assert_ne!(host, Tag::new(i32_tag_type()).unwrap());
    // Tag types have no results.
    assert_eq!(
        Tag::new(FuncType {
            params: vec![],
            results: vec![ValType::I64],
        }),
        Err(TagError::HasResults(vec![ValType::I64]))
    );
}

#[test]
fn tag_type_mismatches_are_incompatible_imports() {
    let user = compile_wat(TAG_USER, &CompileConfig::default());
    let region = region_with(2, 65536);
    match Linker::new().instantiate(&region, &user, None) {
        Err(LinkError::UnknownImport { module, name, kind }) => {
            assert_eq!((module.as_str(), name.as_str(), kind), ("a", "t", "tag"))
        }
        other => panic!("{other:?}"),
    }
    for ty in [
        FuncType::default(),
        FuncType {
            params: vec![ValType::F32],
            results: vec![],
        },
        FuncType {
            params: vec![ValType::I32, ValType::I32],
            results: vec![],
        },
    ] {
        let mut linker = Linker::new();
        linker.define("a", "t", Extern::Tag(Tag::new(ty.clone()).unwrap()));
        match linker.instantiate(&region, &user, None) {
            Err(LinkError::Instantiate(e @ InstantiateError::IncompatibleImport { .. })) => {
                assert!(
                    e.to_string()
                        .starts_with("incompatible import type for a.t"),
                    "{e}"
                )
            }
            other => panic!("{ty:?}: {other:?}"),
        }
    }
    assert_eq!(
        region.free_slots(),
        2,
        "failed instantiations free their slots"
    );
}

#[test]
fn tag_kind_mismatches_are_incompatible_imports() {
    let user = compile_wat(TAG_USER, &CompileConfig::default());
    let wants_func = compile_wat(
        r#"(module (import "a" "t" (func (param i32))))"#,
        &CompileConfig::default(),
    );
    let owner = compile_wat(TAG_OWNER, &CompileConfig::default());
    let region = region_with(2, 65536);
    // A function where a tag is imported.
    let mut linker = Linker::new();
    linker.func_wrap("a", "t", |_: &mut Caller<'_>, _: i32| {});
    match linker.instantiate(&region, &user, None) {
        Err(LinkError::Instantiate(e @ InstantiateError::IncompatibleImport { .. })) => {
            assert!(
                e.to_string().contains("expected a tag, got a function"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
    // A tag where a function is imported (same signature, wrong kind).
    let a = Instance::instantiate(&region, &owner).unwrap();
    let mut linker = Linker::new();
    linker.instance("a", &a);
    match linker.instantiate(&region, &wants_func, None) {
        Err(LinkError::Instantiate(e @ InstantiateError::IncompatibleImport { .. })) => {
            assert!(
                e.to_string().contains("expected a function, got a tag"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
    // A global where a tag is imported.
    let mut linker = Linker::new();
    linker.define(
        "a",
        "t",
        Extern::Global(Global::new(Val::I32(0), false).expect("i32 global")),
    );
    assert!(matches!(
        linker.instantiate(&region, &user, None),
        Err(LinkError::Instantiate(
            InstantiateError::IncompatibleImport { .. }
        ))
    ));
}

#[test]
fn typed_reference_globals_and_tables_link_by_subtyping() {
    let exporter = compile_wat(
        r#"(module
             (type $t (func))
             (func $f (type $t))
             (global (export "g") (ref $t) (ref.func $f))
             (table (export "tab") 1 (ref null $t)))"#,
        &CompileConfig::default(),
    );
    // Every instance linked to `e` lives as long as its group (the linker
    // holds `e`'s exports), so give each one a slot.
    let region = region_with(10, 64 << 10);
    let e = Instance::instantiate(&region, &exporter).expect("exporter");
    let mut linker = Linker::new();
    linker.instance("e", &e);
    let links = |linker: &Linker, wat: &str| {
        let m = compile_wat(wat, &CompileConfig::default());
        match linker.instantiate(&region, &m, None) {
            Ok(_) => Ok(()),
            Err(LinkError::Instantiate(InstantiateError::IncompatibleImport { .. })) => {
                Err("incompatible")
            }
            Err(other) => panic!("{wat}: {other}"),
        }
    };
    // An immutable global may be imported at a supertype...
    assert_eq!(
        links(
            &linker,
            r#"(module (global (import "e" "g") (ref null func)))"#
        ),
        Ok(())
    );
    assert_eq!(
        links(
            &linker,
            r#"(module (type $u (func)) (global (import "e" "g") (ref $u)))"#
        ),
        Ok(()),
        "structurally equal function types are the same type"
    );
    // ...but not at an unrelated one.
    assert_eq!(
        links(
            &linker,
            r#"(module (type $u (func (param i32))) (global (import "e" "g") (ref $u)))"#
        ),
        Err("incompatible")
    );
    // Table element types are invariant.
    assert_eq!(
        links(
            &linker,
            r#"(module (type $t (func)) (table (import "e" "tab") 1 (ref null $t)))"#
        ),
        Ok(())
    );
    assert_eq!(
        links(&linker, r#"(module (table (import "e" "tab") 1 funcref))"#),
        Err("incompatible")
    );
    // A re-exported global keeps its own type, not the one its importer
    // declared.
    let reexporter = compile_wat(
        r#"(module (global (import "e" "g") funcref) (export "g2" (global 0)))"#,
        &CompileConfig::default(),
    );
    let b = linker
        .instantiate(&region, &reexporter, None)
        .expect("re-exporter");
    linker.instance("b", &b);
    assert_eq!(
        links(
            &linker,
            r#"(module (type $t (func)) (global (import "b" "g2") (ref null $t)))"#
        ),
        Ok(())
    );
}

#[test]
fn sleep_ends_the_slice_with_its_wake_up_time_even_through_a_linked_call() {
    let sleeper = compile_wat(
        r#"(module
             (import "env" "sleep_ms" (func $sleep (param i64)))
             (func (export "nap") (param i64) (result i32)
               (call $sleep (local.get 0))
               (i32.const 5)))"#,
        &CompileConfig::default(),
    );
    let caller = compile_wat(
        r#"(module
             (import "s" "nap" (func $nap (param i64) (result i32)))
             (func (export "run") (result i32)
               (i32.add (call $nap (i64.const 30)) (i32.const 1))))"#,
        &CompileConfig::default(),
    );
    let mut linker = Linker::new();
    linker.func_wrap(
        "env",
        "sleep_ms",
        |_: &mut Caller<'_>, ms: i64| -> Result<(), HostAction> {
            Err(HostAction::Sleep(std::time::Duration::from_millis(
                ms as u64,
            )))
        },
    );
    let region = region_with(2, 0);
    let mut s = linker.instantiate(&region, &sleeper, None).unwrap();

    s.call("nap", &[Val::I64(20)]).unwrap();
    let before = std::time::Instant::now();
    let Outcome::Sleeping(at) = s.resume(u64::MAX) else {
        panic!("expected Sleeping, got {:?}", s.outcome());
    };
    assert!(at >= before + std::time::Duration::from_millis(20));
    assert!(at <= std::time::Instant::now() + std::time::Duration::from_millis(20));
    // The outcome stays until the next slice; that slice (here, early:
    // the runtime leaves timing to the driver) returns the results.
    assert_eq!(s.outcome(), Outcome::Sleeping(at));
    assert_eq!(s.resume(u64::MAX), Outcome::Finished(vec![Val::I32(5)]));

    // The sleep belongs to the resumed instance, not to the linked one
    // whose host import asked for it.
    let mut l2 = Linker::new();
    l2.instance("s", &s);
    let mut c = l2.instantiate(&region, &caller, None).unwrap();
    c.call("run", &[]).unwrap();
    assert!(matches!(c.resume(u64::MAX), Outcome::Sleeping(_)));
    assert_eq!(c.resume(u64::MAX), Outcome::Finished(vec![Val::I32(6)]));
    // The linked instance's own outcome is untouched.
    assert_eq!(s.outcome(), Outcome::Finished(vec![Val::I32(5)]));
}

#[test]
fn a_prepared_import_set_serves_many_instances_and_checks_each_new_module() {
    let counter = r#"(module
         (import "env" "bump" (func $bump (param i64) (result i64)))
         (func (export "run") (param i64) (result i64) (call $bump (local.get 0))))"#;
    let m = compile_wat(counter, &CompileConfig::default());
    let calls = Arc::new(AtomicU64::new(0));
    let seen = calls.clone();
    let mut linker = Linker::new();
    linker.func_wrap("env", "bump", move |_: &mut Caller<'_>, x: i64| -> i64 {
        seen.fetch_add(1, Ordering::Relaxed);
        x + 1
    });
    let imports = myriad_runtime::Imports::new(linker.resolve(&m).expect("resolves"));
    let region = region_with(4, 64 * 1024);
    // Many instances of the module share the set (the second and later
    // skip the import check); each runs the host function.
    for i in 0..3i64 {
        let mut inst =
            Instance::instantiate_imports(&region, &m, &imports, None).expect("instantiates");
        assert_eq!(
            call(&mut inst, "run", &[Val::I64(i)]),
            Outcome::Finished(vec![Val::I64(i + 1)])
        );
    }
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    // Another module whose import has another type is still checked: the
    // set passed for `m`, not for it.
    let other = compile_wat(
        r#"(module
             (import "env" "bump" (func $bump (param i32) (result i32)))
             (func (export "run") (param i32) (result i32) (call $bump (local.get 0))))"#,
        &CompileConfig::default(),
    );
    assert!(matches!(
        Instance::instantiate_imports(&region, &other, &imports, None),
        Err(InstantiateError::IncompatibleImport { .. })
    ));
    // A module with the same source is a different module: checked too,
    // and it passes.
    let again = compile_wat(counter, &CompileConfig::default());
    let mut inst =
        Instance::instantiate_imports(&region, &again, &imports, None).expect("instantiates");
    assert_eq!(
        call(&mut inst, "run", &[Val::I64(41)]),
        Outcome::Finished(vec![Val::I64(42)])
    );
    drop(inst);
    assert_eq!(region.free_slots(), 4);
}

#[test]
fn an_imported_function_s_own_reference_comes_back_as_its_own() {
    // No tables, no funcref globals, no ref.func of a defined function:
    // only a reference to an imported function, handed out and back.
    let m = compile_wat(
        r#"(module
      (import "env" "f" (func $f))
      (export "f" (func $f))
      (func (export "get") (result funcref) (ref.func $f))
      (func (export "take") (param funcref) (result i32) (ref.is_null (local.get 0))))"#,
        &CompileConfig::default(),
    );
    let mut l = Linker::new();
    l.func_wrap("env", "f", |_: &mut Caller<'_>| {});
    let region = region_with(1, 64 * 1024);
    let mut inst = l.instantiate(&region, &m, None).expect("instantiates");
    let bits = match call(&mut inst, "get", &[]) {
        Outcome::Finished(v) => match v[..] {
            [Val::FuncRef(b)] => b,
            _ => panic!("one funcref result, got {v:?}"),
        },
        o => panic!("{o:?}"),
    };
    assert_ne!(bits, 0);
    assert_eq!(
        call(&mut inst, "take", &[Val::FuncRef(bits)]),
        Outcome::Finished(vec![Val::I32(0)])
    );
}
