//! A guest that spends most of its time inside a builtin that does not
//! read the clock (`memory.grow`, `data.drop`) is almost never found in
//! compiled code by the preemption signal, which leaves host code alone.
//! Review 15 (second round) measured 2 ms asynchronous slices of such a
//! guest holding the thread 8–147 ms; the host-call trampoline now ends a
//! due asynchronous slice on every return to compiled code
//! (`fuel::end_if_due`). Fuel-paced slices of the same guest (threshold
//! off) are the reference.

mod compiled;

use compiled::{compile_wat, region_with, thread_cpu_ns};
use myriad_codegen::CompileConfig;
use myriad_runtime::fuel::ns_to_tsc;
use myriad_runtime::{rdtsc, Instance, Outcome, Val};
use std::time::Duration;

fn slices(asynchronous: bool, body: &str) -> Vec<u64> {
    myriad_runtime::fuel::set_async_preempt_min(if asynchronous {
        Some(Duration::from_millis(1))
    } else {
        None
    });
    let m = compile_wat(
        &format!(
            r#"(module (memory 1) (data $d "x")
             (func (export "run") (result i64) (local $acc i64)
               (loop $l {body} (br $l))
               (local.get $acc)))"#
        ),
        &CompileConfig::default(),
    );
    let region = region_with(1, 64 * 1024);
    let mut inst = Instance::new(&region, &m, "run", &[]).unwrap();
    // The first slice of a thread sets up its timers.
    assert_eq!(inst.resume_fuel(1000), Outcome::Yielded);
    let mut held = Vec::new();
    for _ in 0..5 {
        let cpu = thread_cpu_ns();
        assert_eq!(
            inst.resume(rdtsc() + ns_to_tsc(2_000_000)),
            Outcome::Yielded
        );
        held.push((thread_cpu_ns() - cpu) / 1000);
    }
    eprintln!(
        "{body}\n  asynchronous {asynchronous}: 2 ms slices held the thread {held:?} us of CPU \
         ({} preemptions, {} slow paths)",
        inst.async_preempts(),
        inst.slow_path_calls()
    );
    let _ = Val::I64(0);
    held
}

const GROW: &str = "(local.set $acc (i64.add (local.get $acc)
    (i64.extend_i32_u (memory.grow (i32.const 0)))))";
const DROP: &str = "(data.drop $d)";

#[test]
fn a_guest_living_in_memory_grow_ends_its_asynchronous_slice_on_time() {
    check(GROW);
}

#[test]
fn a_guest_living_in_data_drop_ends_its_asynchronous_slice_on_time() {
    check(DROP);
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn check(body: &str) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fuel_paced = slices(false, body);
    let asynchronous = slices(true, body);
    // Fuel-paced slices end within a few microseconds of the deadline.
    assert!(fuel_paced.iter().all(|&us| us < 7_000), "{fuel_paced:?}");
    // Asynchronous slices too.
    assert!(
        asynchronous.iter().all(|&us| us < 7_000),
        "{asynchronous:?}"
    );
}
