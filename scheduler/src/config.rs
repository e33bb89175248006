//! Scheduler configuration.

use std::time::Duration;

/// How a [`crate::Scheduler`] is built: worker count, time slice, capacity
/// and the per-instance memory geometry of its slot region.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Worker threads, one per core by default.
    pub workers: usize,
    /// Length of a time slice. The guest's fuel-gated deadline check ends
    /// the slice soon after it passes.
    pub quantum: Duration,
    /// Fuel mode. `None` (the default): time slices of `quantum`, fuel only
    /// gates the clock check. `Some(n)`: deterministic *fuel slices*: a
    /// slice ends after the guest spends `n` units of fuel (one per
    /// function entry and loop iteration), whatever the time, so a guest
    /// takes the same number of slices on any machine; `quantum` is then
    /// unused. See `myriad_runtime::Instance::resume_fuel`. Cancels,
    /// deadlines, CPU-time limits and shutdown act at slice boundaries, so
    /// in fuel mode they wait for the slice's fuel to run out: choose `n`
    /// small enough for the latency you need (bulk builtins are charged by
    /// the element and stop at the next 4,096-element chunk once the
    /// slice's fuel is spent; only a `table.grow` runs whole, up to about
    /// 15 ms for 10 million elements).
    pub fuel_per_slice: Option<u64>,
    /// Most instances alive at once (slots in the region).
    pub capacity: usize,
    /// Bytes of native stack per instance (wasm frames only; host code runs
    /// on the worker's stack).
    pub stack_size: usize,
    /// Most bytes of linear memory per instance.
    pub heap_capacity: usize,
    /// Guard bytes after each heap.
    pub guard_size: usize,
    /// Make guard bytes inaccessible with `mprotect` (costs 2 mappings per
    /// slot; needs a raised `vm.max_map_count` for large capacities).
    pub guard_mode: bool,
    /// Pin worker `i` to core `i % cores`.
    pub pin_workers: bool,
    /// Build with workers waiting until [`crate::Scheduler::start`]; lets a
    /// caller spawn many instances before any runs.
    pub start_paused: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            quantum: Duration::from_micros(100),
            fuel_per_slice: None,
            capacity: 1024,
            stack_size: 16 * 1024,
            heap_capacity: 64 * 1024,
            guard_size: 0,
            guard_mode: false,
            pin_workers: true,
            start_paused: false,
        }
    }
}
