//! Attack: native frames whose size the guest chooses (export wrappers and
//! host-import stubs grow with the signature, wasm frames with the number
//! of live values) try to write below their slot's stack, into the
//! previous slot's heap (default mode), a guard (guard mode: a crash) or
//! whatever lies below the region (slot 0).
//!
//! Must hold: every call either finishes with the right results, traps
//! with a stack overflow, or is refused up front with a stack-size error;
//! the neighbours' memories stay byte-identical; the process survives.
//! Run at the smallest stack a region accepts and at 8 and 16 KiB, in
//! default and guard mode, with the attacker in slot 0 and in a middle
//! slot.

use crate::harness::{compile, in_child, run, Arena, Position};
use myriad_codegen::abi::{FuncType, TrapKind, ValType};
use myriad_runtime::{HostAction, Instance, Linker, Outcome, Val};

/// Stack sizes: the smallest a region accepts (one page, holding the
/// 1 KiB reserve twice), 8 KiB (`stress`'s default) and 16 KiB.
const STACKS: [usize; 3] = [4096, 8192, 16384];

/// Value counts tried for parameters and results (wasm allows 1,000 of
/// each).
const COUNTS: [usize; 10] = [1, 8, 16, 17, 64, 200, 400, 520, 700, 1000];

fn i64s(n: usize) -> String {
    vec!["i64"; n].join(" ")
}

/// What an attack's call came to.
enum Ending {
    Finished(Vec<Val>),
    StackOverflow,
    Refused(String),
}

/// Arm `export` with `args` on `inst` and run it; anything but a result,
/// a stack overflow or a refusal mentioning the stack fails the test.
fn call(inst: &mut Instance, export: &str, args: &[Val], what: &str) -> Ending {
    if let Err(e) = inst.call(export, args) {
        let msg = e.to_string();
        assert!(
            msg.contains("stack"),
            "{what}: refused for another reason: {msg}"
        );
        return Ending::Refused(msg);
    }
    match run(inst) {
        Outcome::Finished(v) => Ending::Finished(v),
        Outcome::Trapped(TrapKind::StackOverflow) => Ending::StackOverflow,
        other => panic!("{what}: unexpected outcome {other:?}"),
    }
}

fn expect_results(ending: Ending, expected: &[Val], what: &str) {
    if let Ending::Finished(v) = ending {
        assert_eq!(v, expected, "{what}: wrong results");
    }
}

/// Exports with many results and no parameters, then with as many
/// parameters as results (the identity).
fn wide_exports(arena: &Arena, what: &str) {
    for &n in &COUNTS {
        let consts: String = (0..n).map(|k| format!("(i64.const {})", k + 1)).collect();
        let gets: String = (0..n).map(|k| format!("(local.get {k})")).collect();
        let module = compile(&format!(
            "(module
               (func (export \"results\") (result {r}) {consts})
               (func (export \"identity\") (param {r}) (result {r}) {gets}))",
            r = i64s(n)
        ));
        let w = format!("{what}, {n} values");
        let mut inst = Instance::instantiate(&arena.region, &module).expect("instantiate");
        assert_eq!(inst.slot(), arena.slot);
        let expected: Vec<Val> = (0..n).map(|k| Val::I64(k as i64 + 1)).collect();
        let e = call(&mut inst, "results", &[], &format!("{w}: results"));
        expect_results(e, &expected, &w);
        arena.check(&format!("{w}: results"));
        let args: Vec<Val> = (0..n).map(|k| Val::I64(-(k as i64) * 7919)).collect();
        let e = call(&mut inst, "identity", &args, &format!("{w}: identity"));
        expect_results(e, &args, &w);
        arena.check(&format!("{w}: identity"));
    }
}

/// A host function with `p` parameters and `r` results: result `k` is the
/// sum of the parameters plus `k`.
fn wide_host(p: usize, r: usize) -> Linker {
    let mut linker = Linker::new();
    let ty = FuncType {
        params: vec![ValType::I64; p],
        results: vec![ValType::I64; r],
    };
    linker.func("env", "wide", ty, move |_, cells: &mut [u64]| {
        let sum = cells[..p].iter().fold(0u64, |a, c| a.wrapping_add(*c));
        for (k, c) in cells[..r].iter_mut().enumerate() {
            *c = sum.wrapping_add(k as u64);
        }
        HostAction::Return
    });
    linker
}

/// The guest side of [`wide_host`]: `run(depth)` recurses `depth` times,
/// then calls the import with parameters 1..=p and folds the results as
/// `acc = acc * 31 + result`.
fn wide_import_module(p: usize, r: usize) -> String {
    let args: String = (0..p).map(|k| format!("(i64.const {})", k + 1)).collect();
    // Results come off the stack last first: store them into locals
    // 1.. and fold them in order.
    let sets: String = (0..r)
        .rev()
        .map(|k| format!("(local.set {})", k + 1))
        .collect();
    let folds: String = (0..r)
        .map(|k| {
            format!(
                "(local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 31)) (local.get {})))",
                k + 1
            )
        })
        .collect();
    format!(
        "(module
           (import \"env\" \"wide\" (func $wide (param {p}) (result {r})))
           (func $call (result i64) (local $acc i64) (local {r})
             (call $wide {args}) {sets} {folds} (local.get $acc))
           (func $down (export \"run\") (param $n i64) (result i64)
             (if (result i64) (i64.eqz (local.get $n))
               (then (call $call))
               (else (i64.add (call $down (i64.sub (local.get $n) (i64.const 1))) (i64.const 1))))))",
        p = i64s(p),
        r = i64s(r),
    )
}

fn wide_import_expected(p: usize, r: usize, depth: u64) -> i64 {
    let sum: u64 = (1..=p as u64).sum();
    let mut acc = 0u64;
    for k in 0..r as u64 {
        acc = acc.wrapping_mul(31).wrapping_add(sum.wrapping_add(k));
    }
    acc.wrapping_add(depth) as i64
}

/// Host imports with many parameters and results, called from every
/// depth of the stack until the stack overflows: the stub's frame meets
/// the stack limit at every alignment.
fn wide_imports(arena: &Arena, what: &str) {
    for &(p, r) in &[(1, 1), (1, 1000), (1000, 1), (520, 520), (1000, 1000)] {
        let module = compile(&wide_import_module(p, r));
        let linker = wide_host(p, r);
        let w = format!("{what}, import ({p} params, {r} results)");
        let mut inst = match linker.instantiate(&arena.region, &module, None) {
            Ok(i) => i,
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("stack"),
                    "{w}: refused for another reason: {msg}"
                );
                arena.check(&w);
                continue;
            }
        };
        assert_eq!(inst.slot(), arena.slot);
        let mut depth = 0u64;
        loop {
            let e = call(&mut inst, "run", &[Val::I64(depth as i64)], &w);
            arena.check(&format!("{w} at depth {depth}"));
            match e {
                Ending::Finished(v) => {
                    assert_eq!(v, vec![Val::I64(wide_import_expected(p, r, depth))], "{w}");
                }
                Ending::StackOverflow => break,
                Ending::Refused(msg) => panic!("{w}: refused at call: {msg}"),
            }
            depth += 1;
            assert!(depth < 100_000, "{w}: never overflowed");
        }
    }
}

/// Unbounded recursion through frames holding many live values (spilled
/// across the call): must end in a stack overflow, neighbours intact.
fn deep_big_frames(arena: &Arena, what: &str) {
    for live in [0usize, 16, 64, 200] {
        let defs: String = (0..live)
            .map(|k| {
                format!(
                    "(local.set {} (i64.mul (local.get 0) (i64.const {})))",
                    k + 1,
                    k + 3
                )
            })
            .collect();
        let uses: String = (0..live)
            .map(|k| format!("(i64.xor (local.get {})) ", k + 1))
            .collect();
        let module = compile(&format!(
            "(module
               (func $f (export \"run\") (param i64) (result i64) (local {l})
                 {defs}
                 (call $f (i64.add (local.get 0) (i64.const 1)))
                 {uses}))",
            l = i64s(live.max(1)),
        ));
        let w = format!("{what}, recursion with {live} live values");
        let mut inst = Instance::instantiate(&arena.region, &module).expect("instantiate");
        match call(&mut inst, "run", &[Val::I64(1)], &w) {
            Ending::StackOverflow => {}
            Ending::Finished(v) => panic!("{w}: unbounded recursion finished with {v:?}"),
            Ending::Refused(m) => panic!("{w}: refused: {m}"),
        }
        arena.check(&w);
    }
}

fn all_attacks(guard_mode: bool, position: Position) {
    for stack in STACKS {
        let what = format!(
            "{} KiB stack, {} mode, attacker in {position:?} slot",
            stack / 1024,
            if guard_mode { "guard" } else { "default" }
        );
        let arena = Arena::new(stack, guard_mode, position);
        wide_exports(&arena, &what);
        wide_imports(&arena, &what);
        deep_big_frames(&arena, &what);
    }
}

#[test]
fn default_mode_middle_slot() {
    in_child("stack_frames::default_mode_middle_slot", || {
        all_attacks(false, Position::Middle)
    });
}

#[test]
fn default_mode_first_slot() {
    in_child("stack_frames::default_mode_first_slot", || {
        all_attacks(false, Position::First)
    });
}

#[test]
fn guard_mode_middle_slot() {
    in_child("stack_frames::guard_mode_middle_slot", || {
        all_attacks(true, Position::Middle)
    });
}

#[test]
fn guard_mode_first_slot() {
    in_child("stack_frames::guard_mode_first_slot", || {
        all_attacks(true, Position::First)
    });
}

/// The reserve below the stack limit must hold whatever runs there after
/// the last check: the host-call trampoline suspending for a yielding host
/// function, the fuel trampoline yielding, at every depth of the stack.
/// Fill the reserve with a canary, drive calls to every depth in 1-unit
/// fuel slices with a host function that yields, and measure the deepest
/// byte written below the limit.
#[test]
fn the_reserve_holds_every_frame_below_the_limit() {
    use myriad_runtime::instance::{STACK_RESERVE, TRAMPOLINE_FRAME_MAX};
    let region = std::sync::Arc::new(
        myriad_runtime::Region::new(myriad_runtime::RegionConfig {
            slots: 1,
            stack_size: 4096,
            heap_capacity: 0,
            guard_size: 0,
            guard_mode: false,
            heap_reservation: 0,
        })
        .expect("region"),
    );
    let module = compile(
        "(module
           (import \"env\" \"nap\" (func $nap (param i64) (result i64)))
           (func $down (export \"run\") (param $n i64) (result i64)
             (if (result i64) (i64.eqz (local.get $n))
               (then (call $nap (local.get $n)))
               (else (i64.add (call $down (i64.sub (local.get $n) (i64.const 1)))
                              (i64.const 1))))))",
    );
    // A host function that yields after returning its result.
    let mut linker = Linker::new();
    linker.func(
        "env",
        "nap",
        FuncType {
            params: vec![ValType::I64],
            results: vec![ValType::I64],
        },
        |_, cells: &mut [u64]| {
            cells[0] = cells[0].wrapping_add(1);
            HostAction::Yield
        },
    );
    let base = region.slot_base(0) as usize;
    let limit = base + STACK_RESERVE;
    let mut deepest = 0usize;
    let mut depth = 0i64;
    loop {
        let mut inst = linker
            .instantiate(&region, &module, None)
            .expect("instantiate");
        assert_eq!(inst.slot(), 0);
        // SAFETY: the reserve of our only slot, below its stack limit;
        // nothing runs on it now.
        unsafe { std::ptr::write_bytes(base as *mut u8, 0xC5, STACK_RESERVE) };
        inst.call("run", &[Val::I64(depth)]).expect("arm");
        // One fuel unit per slice: the fuel trampoline yields at every
        // function entry and loop header, at every depth.
        let end = loop {
            match inst.resume_fuel(1) {
                Outcome::Yielded => continue,
                other => break other,
            }
        };
        // SAFETY: as above; the instance is suspended or done.
        let reserve = unsafe { std::slice::from_raw_parts(base as *const u8, STACK_RESERVE) };
        if let Some(low) = reserve.iter().position(|b| *b != 0xC5) {
            deepest = deepest.max(limit - (base + low));
        }
        match end {
            Outcome::Finished(v) => assert_eq!(v, vec![Val::I64(depth + 1)]),
            Outcome::Trapped(TrapKind::StackOverflow) => break,
            other => panic!("depth {depth}: {other:?}"),
        }
        depth += 1;
    }
    assert!(depth > 10, "the stack overflowed at depth {depth}");
    assert!(
        deepest > 0 && deepest <= TRAMPOLINE_FRAME_MAX,
        "trampolines wrote {deepest} bytes below the stack limit; the bound is \
         {TRAMPOLINE_FRAME_MAX} and the reserve {STACK_RESERVE}"
    );
    println!("deepest write below the limit: {deepest} bytes (bound {TRAMPOLINE_FRAME_MAX})");
}
