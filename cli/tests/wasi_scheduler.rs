//! WASI C programs under the `Scheduler`: a guest that sleeps
//! (`usleep`, i.e. `poll_oneoff` on a clock) sleeps off the run queues, so
//! its worker runs other instances meanwhile.

use myriad_runtime::{CompileConfig, Linker, Module};
use myriad_scheduler::{Scheduler, SchedulerConfig, SpawnOptions};
use myriad_wasi::{Output, WasiCtx};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The checked-in `wasi/tests/c/<name>.wasm`, compiled and loaded.
fn program(name: &str) -> Arc<Module> {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasi-sched");
    // Private (0700): a cache directory others could write to is refused.
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&out)
        .expect("create the artifact cache");
    let wasm = myriad_wasi::testprog::load(name).unwrap_or_else(|e| panic!("{e}"));
    Arc::new(Module::compile(&wasm, &CompileConfig::default(), &out).expect("compiles"))
}

#[test]
fn a_hundred_sleeping_programs_share_one_worker() {
    let module = program("sleep");
    let expected = std::fs::read(
        myriad_wasi::testprog::source_dir()
            .join("expected")
            .join("sleep.stdout"),
    )
    .unwrap();
    let mut linker = Linker::new();
    myriad_wasi::link::add_to_linker(&mut linker);
    let linker = Arc::new(linker);
    let sched = Scheduler::new(SchedulerConfig {
        workers: 1,
        capacity: 100,
        heap_capacity: 1 << 20,
        stack_size: 64 * 1024,
        pin_workers: false,
        ..SchedulerConfig::default()
    })
    .unwrap();
    let t = Instant::now();
    let runs: Vec<_> = (0..100)
        .map(|_| {
            let out = Arc::new(Mutex::new(Vec::new()));
            let ctx = WasiCtx::builder()
                .args(["sleep"])
                .stdout(Output::Capture(Arc::clone(&out)))
                .build()
                .unwrap();
            let h = sched
                .spawn_with(
                    &module,
                    "_start",
                    &[],
                    SpawnOptions::new().linker(&linker).data(ctx),
                )
                .unwrap();
            (h, out)
        })
        .collect();
    for (h, out) in &runs {
        // `_start` returns normally for exit status 0.
        assert_eq!(h.join(), Ok(vec![]));
        assert_eq!(*out.lock().unwrap(), expected);
    }
    // Each program sleeps 100 ms; one blocked worker would take 10 s.
    let e = t.elapsed();
    assert!(e >= Duration::from_millis(100), "{e:?}");
    assert!(
        e < Duration::from_secs(5),
        "the sleeps did not overlap: {e:?}"
    );
}
