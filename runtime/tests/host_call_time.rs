//! Host calls cost time the guest's fuel rate does not know about. The
//! time-slice slow path sizes a grant from the rate at which the guest
//! spent units just before; a guest that spent cheap units (a tight loop)
//! and then called host functions in a loop got a grant of thousands of
//! units, each now buying a host call 100 times dearer than the units the
//! grant was sized for. Every host call now charges the fuel counter a
//! fixed `HOST_CALL_CYCLES` worth of time (and host functions that take
//! longer charge what they took: `Caller::charge_time`).

mod compiled;

use compiled::{compile_wat, region_with, thread_cpu_ns};
use myriad_codegen::abi::{FuncType, ValType};
use myriad_codegen::CompileConfig;
use myriad_runtime::fuel::ns_to_tsc;
use myriad_runtime::{rdtsc, HostAction, Linker, Outcome, Val};

#[test]
fn host_calls_after_cheap_units_do_not_overrun_a_time_slice() {
    let module = compile_wat(
        r#"(module
           (import "env" "work" (func $work (param i64) (result i64)))
           (func (export "run") (param $fast i32) (param $calls i32) (local $i i32) (local $x i64)
             (loop $outer
               (local.set $i (local.get $fast))
               (loop $f (br_if $f (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
               (local.set $i (local.get $calls))
               (loop $h
                 (local.set $x (call $work (local.get $x)))
                 (br_if $h (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
               (br $outer))))"#,
        &CompileConfig::default(),
    );
    let mut linker = Linker::new();
    // About 100 ns of work that does not charge itself.
    linker.func(
        "env",
        "work",
        FuncType {
            params: vec![ValType::I64],
            results: vec![ValType::I64],
        },
        |_, cells| {
            let mut x = cells[0];
            for i in 0..40u64 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
            }
            cells[0] = x;
            HostAction::Return
        },
    );
    let region = region_with(1, 1 << 16);
    let mut inst = linker.instantiate(&region, &module, None).unwrap();
    inst.call("run", &[Val::I32(2_000_000), Val::I32(100_000)])
        .unwrap();
    let quantum = ns_to_tsc(20_000);
    let mut worst = 0;
    for _ in 0..300 {
        let t = thread_cpu_ns();
        assert_eq!(inst.resume(rdtsc() + quantum), Outcome::Yielded);
        worst = worst.max(thread_cpu_ns() - t);
    }
    eprintln!("worst slice: {worst} ns of CPU for a 20 µs quantum");
    assert!(worst < 5_000_000, "a 20 µs slice took {worst} ns");
}
