//! `HostAction::Continue`: a host function that does long work in parts,
//! one part per slice, is seen by the guest as one call.

mod compiled;

use compiled::{compile_wat, region_with};
use myriad_codegen::abi::{FuncType, ValType};
use myriad_codegen::CompileConfig;
use myriad_runtime::{HostAction, Linker, Outcome, Val};

/// Progress of the host function, kept in the embedder data.
#[derive(Default)]
struct Progress {
    parts: u64,
    sum: u64,
}

#[test]
fn a_host_function_continues_across_slices_and_returns_once() {
    let module = compile_wat(
        "(module
           (import \"env\" \"sum_to\" (func $sum (param i64 i64) (result i64)))
           (func (export \"run\") (param i64) (result i64)
             (i64.add (call $sum (local.get 0) (i64.const 1000)) (i64.const 1))))",
        &CompileConfig::default(),
    );
    let mut linker = Linker::new();
    linker.func(
        "env",
        "sum_to",
        FuncType {
            params: vec![ValType::I64, ValType::I64],
            results: vec![ValType::I64],
        },
        |caller, cells| {
            let (n, marker) = (cells[0], cells[1]);
            // The arguments are the same on every repeated call.
            assert_eq!(marker, 1000);
            let p = caller.data::<Progress>().expect("progress");
            p.parts += 1;
            p.sum += p.parts;
            if p.parts < n {
                return HostAction::Continue;
            }
            cells[0] = p.sum;
            HostAction::Return
        },
    );
    let region = region_with(2, 0);
    let mut inst = linker
        .instantiate(&region, &module, Some(Box::new(Progress::default())))
        .expect("instantiate");
    inst.call("run", &[Val::I64(50)]).expect("arm");
    let mut yields = 0;
    let end = loop {
        match inst.resume(myriad_runtime::rdtsc() + 10_000_000) {
            Outcome::Yielded => yields += 1,
            other => break other,
        }
    };
    assert_eq!(end, Outcome::Finished(vec![Val::I64(50 * 51 / 2 + 1)]));
    assert_eq!(yields, 49, "one slice per part but the last");
    assert_eq!(inst.data::<Progress>().expect("progress").parts, 50);
}

#[test]
fn slice_over_tells_a_long_host_function_when_to_stop() {
    let module = compile_wat(
        "(module
           (import \"env\" \"work\" (func $work (result i64)))
           (func (export \"run\") (result i64) (call $work)))",
        &CompileConfig::default(),
    );
    let mut linker = Linker::new();
    linker.func(
        "env",
        "work",
        FuncType {
            params: vec![],
            results: vec![ValType::I64],
        },
        |caller, cells| {
            // "Work" until the slice is over, 5 slices in all.
            let mut spins = 0u64;
            while !caller.slice_over() {
                spins += 1;
                std::hint::spin_loop();
            }
            let p = caller.data::<Progress>().expect("progress");
            p.parts += 1;
            p.sum += spins.min(1);
            if p.parts < 5 {
                return HostAction::Continue;
            }
            cells[0] = p.sum;
            HostAction::Return
        },
    );
    let region = region_with(2, 0);
    let mut inst = linker
        .instantiate(&region, &module, Some(Box::new(Progress::default())))
        .expect("instantiate");
    inst.call("run", &[]).expect("arm");
    let mut slices = 0;
    let end = loop {
        slices += 1;
        // 200 µs at a few GHz.
        match inst.resume(myriad_runtime::rdtsc() + 400_000) {
            Outcome::Yielded => continue,
            other => break other,
        }
    };
    assert_eq!(slices, 5);
    assert!(matches!(end, Outcome::Finished(_)), "{end:?}");
}

/// A call ended from outside while a host function was continuing
/// (`set_limited` between slices) must not leave that repeated call
/// pending: the next armed call's first yield would otherwise resume into
/// the stale host function, with arguments from the dead call's stack.
#[test]
fn an_abandoned_continue_is_not_repeated_by_the_next_call() {
    let module = compile_wat(
        "(module
           (import \"env\" \"slow\" (func $slow (result i64)))
           (import \"env\" \"pause\" (func $pause (result i64)))
           (func (export \"slow\") (result i64) (call $slow))
           (func (export \"pause\") (result i64) (call $pause)))",
        &CompileConfig::default(),
    );
    let mut linker = Linker::new();
    let ty = FuncType {
        params: vec![],
        results: vec![ValType::I64],
    };
    linker.func("env", "slow", ty.clone(), |caller, cells| {
        let p = caller.data::<Progress>().expect("progress");
        p.parts += 1;
        if p.parts < 1000 {
            return HostAction::Continue;
        }
        cells[0] = 1;
        HostAction::Return
    });
    linker.func("env", "pause", ty, |_, cells| {
        cells[0] = 7;
        HostAction::Yield
    });
    let region = region_with(2, 0);
    let mut inst = linker
        .instantiate(&region, &module, Some(Box::new(Progress::default())))
        .expect("instantiate");
    inst.call("slow", &[]).expect("arm");
    let deadline = || myriad_runtime::rdtsc() + 10_000_000;
    assert_eq!(inst.resume(deadline()), Outcome::Yielded);
    assert_eq!(inst.resume(deadline()), Outcome::Yielded);
    inst.set_limited(myriad_runtime::Limit::CpuTime);
    let parts = inst.data::<Progress>().expect("progress").parts;
    assert_eq!(parts, 2);
    inst.call("pause", &[]).expect("arm");
    assert_eq!(inst.resume(deadline()), Outcome::Yielded);
    assert_eq!(
        inst.resume(deadline()),
        Outcome::Finished(vec![Val::I64(7)])
    );
    assert_eq!(
        inst.data::<Progress>().expect("progress").parts,
        parts,
        "the abandoned host call ran again"
    );
}
