//! Helpers for tests that run real compiled modules: WAT compiled through
//! the code generator into a per-process artifact cache, and small regions.
#![allow(dead_code)]

use myriad_codegen::CompileConfig;
use myriad_runtime::{Instance, Module, Outcome, Region, RegionConfig, Val};
use std::path::PathBuf;
use std::sync::Arc;

/// This test process's artifact cache (artifacts are named by content
/// hash, so test binaries running in parallel may share nothing but names).
pub fn cache_dir() -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("runtime-tests-{}", std::process::id()));
    // Private (0700): a cache directory others could write to is refused.
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&d)
        .expect("create the artifact cache");
    d
}

/// Compile `wat` with `config` and load it.
pub fn compile_wat(wat: &str, config: &CompileConfig) -> Arc<Module> {
    let wasm = wat::parse_str(wat).expect("test WAT assembles");
    Arc::new(Module::compile(&wasm, config, &cache_dir()).expect("compile+load"))
}

/// A default-mode region of `slots` slots with 16 KiB stacks and
/// `heap_capacity` bytes of heap each.
pub fn region_with(slots: usize, heap_capacity: usize) -> Arc<Region> {
    Arc::new(
        Region::new(RegionConfig {
            slots,
            stack_size: 16 * 1024,
            heap_capacity,
            guard_size: 0,
            guard_mode: false,
            heap_reservation: 0,
        })
        .expect("region"),
    )
}

/// Resume `inst` in 2 ms slices until it is no longer merely `Yielded`.
pub fn run(inst: &mut Instance) -> Outcome {
    loop {
        let now = myriad_runtime::rdtsc();
        match inst.resume(now + 2_000_000) {
            Outcome::Yielded => continue,
            other => return other,
        }
    }
}

/// Arm a call of `name` with `args` on `inst` and [`run`] it.
pub fn call(inst: &mut Instance, name: &str, args: &[Val]) -> Outcome {
    inst.call(name, args).expect("arm call");
    run(inst)
}

/// CPU time of the calling thread, in nanoseconds: not counting time it
/// spent descheduled, so a loaded test machine does not fail a bound on
/// how long a slice held the thread.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
