//! An asynchronous slice whose preemption signal never comes (here: the
//! process ignores `SIGURG` after Myriad installed its handler, as another
//! runtime in the process might) still ends, by its fuel checks: the
//! counter holds a bounded multiple of what the slice is worth
//! (`fuel::ASYNC_BACKSTOP_FACTOR`), not the whole budget (review 15: a
//! 2 ms slice ran 407 ms). Its own binary: the disposition is
//! process-wide.

mod compiled;

use compiled::{compile_wat, region_with};
use myriad_codegen::CompileConfig;
use myriad_runtime::fuel::ns_to_tsc;
use myriad_runtime::{rdtsc, Instance, Outcome, Val};
use std::time::{Duration, Instant};

#[test]
fn a_slice_whose_signal_never_comes_ends_by_its_backstop() {
    let m = compile_wat(
        r#"(module (func (export "spin") (param $n i64) (result i64) (local $i i64)
            (loop $l (br_if $l (i64.lt_u (local.tee $i (i64.add (local.get $i) (i64.const 1)))
                                          (local.get $n))))
            (local.get $i)))"#,
        &CompileConfig::default(),
    );
    let region = region_with(1, 0);
    myriad_runtime::signals::thread_init().unwrap();
    // SAFETY: changing the process's disposition of SIGURG; nothing else
    // in this binary needs it.
    unsafe { libc::signal(libc::SIGURG, libc::SIG_IGN) };
    myriad_runtime::fuel::set_async_preempt_min(Some(Duration::from_micros(500)));
    let mut inst = Instance::new(&region, &m, "spin", &[Val::I64(1 << 40)]).unwrap();
    for k in 0..5 {
        let t = Instant::now();
        assert_eq!(
            inst.resume(rdtsc() + ns_to_tsc(2_000_000)),
            Outcome::Yielded
        );
        let took = t.elapsed();
        eprintln!("slice {k}: 2 ms slice ended after {took:?}");
        assert!(took < Duration::from_millis(100), "slice {k}: {took:?}");
    }
    assert_eq!(inst.async_preempts(), 0);
}
