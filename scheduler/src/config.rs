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
    /// slice's fuel is spent, `table.grow` included).
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
    /// Memory limit of an instance spawned without
    /// [`crate::SpawnOptions::memory`]: bytes of linear memory, table
    /// storage and mailbox together. `None` (the default) means
    /// [`SchedulerConfig::default_memory_limit`] of `heap_capacity`, which
    /// bounds the host memory a guest can make the host allocate (tables
    /// grow outside the slot; messages wait in host memory) in proportion
    /// to its slot; `Some(u64::MAX)` sets no limit.
    pub memory_limit: Option<u64>,
    /// Most messages waiting in one instance's mailbox; a send to a full
    /// mailbox is refused ([`crate::SendError::MailboxFull`], `-3` from
    /// `myriad.send`).
    pub mailbox_messages: usize,
    /// Most bytes waiting in one instance's mailbox, counting
    /// [`crate::MESSAGE_OVERHEAD`] per message besides its bytes. The
    /// mailbox is also charged to the receiver's memory limit.
    pub mailbox_bytes: u64,
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
            memory_limit: None,
            mailbox_messages: 1024,
            mailbox_bytes: 64 * 1024,
            pin_workers: true,
            start_paused: false,
        }
    }
}

impl SchedulerConfig {
    /// The memory limit instances get unless spawned with their own.
    pub fn instance_memory_limit(&self) -> u64 {
        self.memory_limit
            .unwrap_or_else(|| SchedulerConfig::default_memory_limit(self.heap_capacity))
    }

    /// The default memory limit for instances with `heap_capacity` bytes
    /// of linear memory: the whole heap, plus as much again (at least
    /// 64 KiB) for tables and the mailbox. A slot's heap cannot pass its
    /// capacity anyway; the rest bounds what a guest makes the host
    /// allocate outside the slot (8 bytes per table element, messages
    /// waiting for it) in proportion to the slot.
    pub fn default_memory_limit(heap_capacity: usize) -> u64 {
        let heap = heap_capacity as u64;
        heap.saturating_add(heap.max(64 << 10))
    }
}
