//! Hostile guests against the WASI host functions: each module is one
//! attack that made the host do unbounded work or allocate unbounded host
//! memory for a single call (holding a worker thread for seconds), or
//! leave something in a preopened directory that points outside it. Each
//! attack test failed before the bound it checks was added; a few others
//! (`scatter_and_gather_keep_the_order_of_the_iovecs`,
//! `a_full_poll_of_every_descriptor_is_quick`,
//! `small_buffers_walk_the_directory_by_cookies`) check that legitimate
//! use still works under the bounds.
//!
//! Guests are either the raw [`WasiCtx::call`](myriad_wasi::WasiCtx::call)
//! interface with a `Vec<u8>` as linear memory (large memories are
//! allocated zeroed and never touched, so they cost no RAM), or real
//! modules written in WAT and run on the runtime in short slices.

#[path = "../common/mod.rs"]
mod common;

mod host_time;
mod io_size;
mod iovecs;
mod paths;
mod poll;
mod random;
mod readdir;
mod symlinks;

use std::time::Duration;

/// The calling thread's CPU time. Host work is measured in it rather than
/// in wall time, so that a loaded machine (other processes taking the
/// cores) cannot make a bound fail.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// An instance of the WAT module `guest` linked with WASI (a default
/// context), in a one-slot region whose heap holds `heap` bytes.
pub fn wasi_instance(guest: &str, heap: usize) -> myriad_runtime::Instance {
    use myriad_runtime::{CompileConfig, Linker, Module, Region, RegionConfig};
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("wasi-attacks-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let wasm = wat::parse_str(guest).unwrap();
    let module =
        std::sync::Arc::new(Module::compile(&wasm, &CompileConfig::default(), &out).unwrap());
    let region = std::sync::Arc::new(
        Region::new(RegionConfig {
            slots: 1,
            stack_size: 64 << 10,
            heap_capacity: heap,
            guard_size: 0,
            guard_mode: false,
            heap_reservation: 0,
        })
        .unwrap(),
    );
    let mut linker = Linker::new();
    myriad_wasi::link::add_to_linker(&mut linker);
    let ctx = myriad_wasi::WasiCtx::builder().build().unwrap();
    linker
        .instantiate(&region, &module, Some(Box::new(ctx)))
        .unwrap()
}

/// Runs `f` and returns its result with the CPU time it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = thread_cpu();
    let r = f();
    (r, thread_cpu().saturating_sub(t))
}

/// How much CPU time a call refused up front may take: generous, and far
/// below what the unbounded versions took (seconds).
pub const QUICK: Duration = Duration::from_millis(100);

/// A zeroed memory of `len` bytes. The allocator maps it fresh, so none of
/// it is resident until touched.
pub fn lazy_memory(len: usize) -> Vec<u8> {
    vec![0u8; len]
}

/// Stores a little-endian `u32` at `at`.
pub fn put_u32(mem: &mut [u8], at: usize, v: u32) {
    mem[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// The little-endian `u32` at `at`.
pub fn get_u32(mem: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(mem[at..at + 4].try_into().unwrap())
}
