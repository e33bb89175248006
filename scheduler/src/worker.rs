//! The worker loop: one thread per core running instances slice by slice.
//!
//! Each worker owns a FIFO run queue (round robin). New instances arrive
//! through the shared injector; a worker whose queue is empty takes a batch
//! from the injector, then steals from the other workers. A slice ends when
//! the guest's fuel-gated deadline check sees the deadline pass; the
//! instance then goes to the back of the queue.
//!
//! While one instance runs, the worker already holds the next one and has
//! prefetched its vmctx and saved context, so the cache misses of a cold
//! switch overlap guest work.

use crate::handle::{complete_recv, HandleShared, InstanceError, InstanceResult, InstanceState};
use crate::metrics::{Metrics, TscToNs};
use crate::timers::TimerQueue;
use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use myriad_runtime::{rdtsc, Instance, Limit, Outcome, Region};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

/// Shards of the id -> instance registry.
pub(crate) const REGISTRY_SHARDS: usize = 64;

thread_local! {
    /// The handle of the instance this worker is running a slice of (null
    /// between slices). Host functions find "their" instance through it.
    static CURRENT: Cell<*const HandleShared> = const { Cell::new(std::ptr::null()) };
}

/// The handle of the instance whose slice is running on this thread, if
/// any (that is, when called from a host function under a scheduler).
pub(crate) fn current() -> Option<Arc<HandleShared>> {
    let p = CURRENT.with(|c| c.get());
    if p.is_null() {
        return None;
    }
    // SAFETY: CURRENT is only non-null while the worker holds the task,
    // whose `handle` Arc keeps the HandleShared alive; we add a strong
    // count before returning it.
    unsafe {
        Arc::increment_strong_count(p);
        Some(Arc::from_raw(p))
    }
}

/// How many slices a worker runs between looks at the injector while its own
/// queue has work (Tokio uses the same figure for the same reason).
const GLOBAL_CHECK_INTERVAL: u32 = 61;

/// A runnable instance and its bookkeeping, boxed so queue entries stay one
/// pointer wide.
pub(crate) struct Task {
    pub(crate) instance: Instance,
    pub(crate) handle: Arc<HandleShared>,
    /// TSC at the end of the last slice (0 before the first).
    pub(crate) last_end: u64,
    pub(crate) slices: u64,
    pub(crate) cpu_cycles: u64,
    /// CPU-time budget in TSC cycles (`u64::MAX`: none).
    pub(crate) cpu_budget: u64,
    /// Wall-clock deadline.
    pub(crate) deadline: Option<Instant>,
    /// While sleeping (and only then: `ParkSlot::is_sleeping`): when it
    /// may run again. The timer queue works in TSC ticks; this is checked
    /// when it fires, so a TSC rate estimate that is slightly off can make
    /// a sleep late, never early.
    pub(crate) wake_at: Option<Instant>,
}

/// State shared by the scheduler front end and all workers.
pub(crate) struct Shared {
    pub(crate) region: Arc<Region>,
    pub(crate) injector: Injector<Box<Task>>,
    pub(crate) stealers: Vec<Stealer<Box<Task>>>,
    pub(crate) shutdown: AtomicBool,
    /// Start gate: workers wait until this is true.
    pub(crate) started: Mutex<bool>,
    pub(crate) start_cv: Condvar,
    /// Idle workers sleep here; spawn wakes one.
    pub(crate) sleepers: AtomicUsize,
    pub(crate) idle_lock: Mutex<()>,
    pub(crate) idle_cv: Condvar,
    /// Instances spawned and not yet ended.
    pub(crate) live: AtomicUsize,
    pub(crate) all_done_lock: Mutex<()>,
    pub(crate) all_done_cv: Condvar,
    pub(crate) quantum_tsc: u64,
    /// `SchedulerConfig::fuel_per_slice`.
    pub(crate) fuel_per_slice: Option<u64>,
    pub(crate) conv: TscToNs,
    /// Instantiate times recorded by spawning threads (and retirements
    /// done off the workers).
    pub(crate) spawn_metrics: Mutex<Metrics>,
    /// Live instances by id, sharded by `id % REGISTRY_SHARDS`.
    pub(crate) registry: Vec<Mutex<HashMap<u64, Arc<HandleShared>>>>,
    /// Next instance id.
    pub(crate) next_id: AtomicU64,
    /// Parked instances with a deadline, for the deadline sweep.
    pub(crate) deadlines: Mutex<Vec<(Instant, Weak<HandleShared>)>>,
    /// Earliest entry of `deadlines`, in ns since `epoch` (`u64::MAX`: none).
    pub(crate) next_deadline: AtomicU64,
    /// Time origin for `next_deadline`.
    pub(crate) epoch: Instant,
    /// Memory limit of instances spawned without one
    /// (`SchedulerConfig::instance_memory_limit`).
    pub(crate) memory_limit: u64,
    /// Mailbox bounds per instance: messages, bytes.
    pub(crate) mailbox_limits: crate::handle::MailboxLimits,
    /// Sleeping instances by wake-up time (TSC). An entry whose instance
    /// has ended is skipped when due, or dropped earlier by the purge in
    /// [`Shared::add_timer`].
    pub(crate) timers: TimerQueue<Weak<HandleShared>>,
}

impl Shared {
    /// Wake one sleeping worker, if any.
    pub(crate) fn wake_one(&self) {
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = self.idle_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.idle_cv.notify_one();
        }
    }

    /// The live instance with id `id`.
    pub(crate) fn lookup(&self, id: u64) -> Option<Arc<HandleShared>> {
        self.registry[(id % REGISTRY_SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// Retire a task from a thread that is not a worker (cancel of a parked
    /// instance, the deadline sweep, shutdown).
    pub(crate) fn retire_off_worker(&self, task: Task, result: InstanceResult) {
        let mut m = Metrics::default();
        retire(task, result, self, &mut m);
        self.spawn_metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .merge(&m);
    }

    /// Remember that `handle` parked with deadline `at`.
    fn watch_deadline(&self, at: Instant, handle: &Arc<HandleShared>) {
        let mut d = self.deadlines.lock().unwrap_or_else(|e| e.into_inner());
        d.push((at, Arc::downgrade(handle)));
        let ns = at.saturating_duration_since(self.epoch).as_nanos() as u64;
        self.next_deadline.fetch_min(ns, Ordering::AcqRel);
    }

    /// End every parked instance whose deadline has passed, if one may have.
    pub(crate) fn sweep_deadlines(&self) {
        let now = Instant::now();
        let now_ns = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        if now_ns < self.next_deadline.load(Ordering::Acquire) {
            return;
        }
        let mut expired = Vec::new();
        {
            let mut d = self.deadlines.lock().unwrap_or_else(|e| e.into_inner());
            let mut next = u64::MAX;
            d.retain(|(at, h)| {
                if *at <= now {
                    expired.push(h.clone());
                    false
                } else if h.strong_count() == 0 {
                    false
                } else {
                    next = next.min(at.saturating_duration_since(self.epoch).as_nanos() as u64);
                    true
                }
            });
            self.next_deadline.store(next, Ordering::Release);
        }
        for h in expired.iter().filter_map(Weak::upgrade) {
            let task = h.lock_slot().task.take();
            if let Some(mut task) = task {
                task.instance.set_limited(Limit::Deadline);
                self.retire_off_worker(*task, Err(InstanceError::Limit(Limit::Deadline)));
            }
        }
    }

    /// Wake `handle`'s instance at TSC `at` (it sleeps in its slot).
    fn add_timer(&self, at: u64, handle: &Arc<HandleShared>) {
        // Entries of instances cancelled in their sleep stay until due:
        // purge them once they could outnumber the live instances, so a
        // stream of cancelled long sleeps cannot grow the queue unboundedly.
        let n = self.timers.len();
        if n >= 1024 && n > 2 * self.live.load(Ordering::Relaxed) {
            self.timers
                .retain(|h| h.upgrade().is_some_and(|h| !h.state().is_done()));
        }
        self.timers.insert(at, Arc::downgrade(handle));
    }

    /// Queue every sleeping instance whose wake-up time has come.
    pub(crate) fn sweep_timers(&self) {
        let mut due = Vec::new();
        self.timers.take_due(rdtsc(), &mut due);
        if due.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut woke = false;
        let mut early = Vec::new();
        for h in due.iter().filter_map(Weak::upgrade) {
            let mut slot = h.lock_slot();
            // Not sleeping any more: ended (cancel, deadline, shutdown).
            let Some(at) = slot.task.as_ref().and_then(|t| t.wake_at) else {
                continue;
            };
            let left = at.saturating_duration_since(now);
            if !left.is_zero() {
                drop(slot);
                early.push((left, h));
                continue;
            }
            if let Some(mut task) = slot.task.take() {
                task.wake_at = None;
                h.set_state(InstanceState::Runnable);
                drop(slot);
                self.injector.push(task);
                woke = true;
            }
        }
        // Fired before its instant (TSC estimate): sleep the rest.
        for (left, h) in early {
            self.add_timer(rdtsc().saturating_add(ns_to_tsc(left)), &h);
        }
        if woke {
            self.wake_one();
        }
    }

    /// How long an idle worker may wait before the next timer is due
    /// (at most `cap`).
    fn idle_timeout(&self, cap: Duration) -> Duration {
        let next = self.timers.next_due();
        if next == u64::MAX {
            return cap;
        }
        let ns = self.conv.ns(next.saturating_sub(rdtsc()));
        cap.min(Duration::from_nanos(ns))
    }

    /// Wake every sleeping worker.
    pub(crate) fn wake_all(&self) {
        let _g = self.idle_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.idle_cv.notify_all();
    }
}

/// Run worker `index` until shutdown; returns its metrics.
pub(crate) fn run(index: usize, local: Worker<Box<Task>>, shared: Arc<Shared>) -> Metrics {
    let mut m = Metrics::default();
    // Asynchronous signals must never be delivered while this thread runs
    // on a guest's small stack; only the fault signals stay unblocked.
    if let Err(e) = myriad_runtime::signals::block_async_signals() {
        eprintln!("myriad worker {index}: cannot block asynchronous signals: {e}");
        return m;
    }
    if let Err(e) = myriad_runtime::thread_init() {
        // Without the fault handler's alternate stack a trap could not be
        // contained; refuse to run guests on this thread.
        eprintln!("myriad worker {index}: cannot initialise thread: {e}");
        return m;
    }
    {
        let mut started = shared.started.lock().unwrap_or_else(|e| e.into_inner());
        while !*started {
            started = shared
                .start_cv
                .wait(started)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
    let mut next: Option<Box<Task>> = None;
    let mut tick: u32 = 0;
    loop {
        if shared.shutdown.load(Ordering::Acquire) {
            drain(next.take(), &local, &shared, &mut m);
            break;
        }
        tick = tick.wrapping_add(1);
        // Every GLOBAL_CHECK_INTERVAL slices look at the injector first, so
        // newly spawned instances do not wait behind a long local queue.
        let from_global = if tick.is_multiple_of(GLOBAL_CHECK_INTERVAL) {
            shared.sweep_deadlines();
            shared.sweep_timers();
            steal_from_injector(&local, &shared)
        } else {
            None
        };
        let task = match from_global.or_else(|| next.take()) {
            Some(t) => t,
            None => match find_task(index, &local, &shared, &mut m) {
                Some(t) => t,
                None => {
                    shared.sweep_deadlines();
                    shared.sweep_timers();
                    idle_wait(&shared);
                    continue;
                }
            },
        };
        // Hold the next task (to prefetch it) only when another one stays
        // in the queue: a held task is invisible to thieves, and with few
        // tasks an idle worker must be able to steal.
        if next.is_none() && local.len() >= 2 {
            next = local.pop();
            if let Some(n) = &next {
                n.instance.prefetch();
            }
        }
        run_slice(task, &local, &shared, &mut m);
    }
    m
}

/// Take the next task: own queue, then a batch from the injector, then a
/// batch stolen from another worker.
fn find_task(
    index: usize,
    local: &Worker<Box<Task>>,
    shared: &Shared,
    m: &mut Metrics,
) -> Option<Box<Task>> {
    if let Some(t) = local.pop() {
        return Some(t);
    }
    if let Some(t) = steal_from_injector(local, shared) {
        return Some(t);
    }
    let n = shared.stealers.len();
    for k in 1..n {
        let victim = &shared.stealers[(index + k) % n];
        loop {
            match victim.steal_batch_and_pop(local) {
                Steal::Success(t) => {
                    m.steals += 1;
                    return Some(t);
                }
                Steal::Retry => continue,
                Steal::Empty => break,
            }
        }
    }
    None
}

/// Take a batch of newly spawned tasks from the injector into `local`,
/// returning one of them.
fn steal_from_injector(local: &Worker<Box<Task>>, shared: &Shared) -> Option<Box<Task>> {
    loop {
        match shared.injector.steal_batch_and_pop(local) {
            Steal::Success(t) => return Some(t),
            Steal::Retry => continue,
            Steal::Empty => return None,
        }
    }
}

/// Sleep briefly when there is nothing to run. Spawn wakes a sleeper; the
/// timeout bounds how long work sitting in another worker's queue waits to
/// be stolen.
fn idle_wait(shared: &Shared) {
    shared.sleepers.fetch_add(1, Ordering::SeqCst);
    let guard = shared.idle_lock.lock().unwrap_or_else(|e| e.into_inner());
    if shared.injector.is_empty() && !shared.shutdown.load(Ordering::SeqCst) {
        let _ = shared
            .idle_cv
            .wait_timeout(guard, shared.idle_timeout(Duration::from_micros(500)))
            .unwrap_or_else(|e| e.into_inner());
    }
    shared.sleepers.fetch_sub(1, Ordering::SeqCst);
}

/// Run one slice of `task`, then requeue or retire it.
fn run_slice(mut task: Box<Task>, local: &Worker<Box<Task>>, shared: &Shared, m: &mut Metrics) {
    if task.handle.cancel.load(Ordering::Acquire) {
        retire(*task, Err(InstanceError::Cancelled), shared, m);
        return;
    }
    if let Some(at) = task.deadline {
        if Instant::now() >= at {
            task.instance.set_limited(Limit::Deadline);
            retire(*task, Err(InstanceError::Limit(Limit::Deadline)), shared, m);
            return;
        }
    }
    let conv = shared.conv;
    task.handle.set_state(InstanceState::Running);
    CURRENT.with(|c| c.set(Arc::as_ptr(&task.handle)));
    let t0 = rdtsc();
    if task.slices > 0 {
        m.gap
            .saturating_record(conv.ns(t0.saturating_sub(task.last_end)));
    }
    // Time slices have a deadline (its overrun is recorded); fuel slices
    // end when their fuel does.
    let (deadline, outcome) = match shared.fuel_per_slice {
        None => {
            let deadline = t0.saturating_add(shared.quantum_tsc);
            (Some(deadline), task.instance.resume_from(t0, deadline))
        }
        Some(units) => (None, task.instance.resume_fuel(units)),
    };
    let t1 = rdtsc();
    CURRENT.with(|c| c.set(std::ptr::null()));
    if t1 >= shared.timers.next_due() {
        shared.sweep_timers();
    }
    let slice = t1.saturating_sub(t0);
    m.slices += 1;
    m.slice.saturating_record(conv.ns(slice));
    task.slices += 1;
    task.cpu_cycles += slice;
    task.last_end = t1;
    match outcome {
        Outcome::Yielded => {
            let decided = task.instance.yield_tsc();
            if let Some(deadline) = deadline {
                m.overrun
                    .saturating_record(conv.ns(t1.saturating_sub(deadline)));
            }
            m.switch
                .saturating_record(conv.ns(t1.saturating_sub(decided)));
            m.guest_ns += conv.ns(decided.saturating_sub(t0));
            task.handle
                .publish_stats(task.slices, conv.ns(task.cpu_cycles));
            if let Some(limit) = over_budget(&task) {
                task.instance.set_limited(limit);
                retire(*task, Err(InstanceError::Limit(limit)), shared, m);
                return;
            }
            task.handle.set_state(InstanceState::Runnable);
            local.push(task);
        }
        Outcome::Finished(values) => {
            m.guest_ns += conv.ns(slice);
            retire(*task, Ok(values), shared, m);
        }
        Outcome::Trapped(kind) => {
            m.guest_ns += conv.ns(slice);
            retire(*task, Err(InstanceError::Trap(kind)), shared, m);
        }
        Outcome::Exited(code) => {
            m.guest_ns += conv.ns(slice);
            retire(*task, Err(InstanceError::Exited(code)), shared, m);
        }
        Outcome::Limited(limit) => {
            m.guest_ns += conv.ns(slice);
            retire(*task, Err(InstanceError::Limit(limit)), shared, m);
        }
        Outcome::Sleeping(at) => {
            m.guest_ns += conv.ns(slice);
            if let Some(task) = within_budget(task, shared, m) {
                sleep(task, at, local, shared, m);
            }
        }
        Outcome::Parked => {
            m.guest_ns += conv.ns(slice);
            if let Some(task) = within_budget(task, shared, m) {
                park(task, local, shared, m);
            }
        }
    }
}

/// After a slice that ended in a host function (park, sleep): publish the
/// task's counters, and retire it if it went past a limit (`None`).
fn within_budget(mut task: Box<Task>, shared: &Shared, m: &mut Metrics) -> Option<Box<Task>> {
    task.handle
        .publish_stats(task.slices, shared.conv.ns(task.cpu_cycles));
    match over_budget(&task) {
        Some(limit) => {
            task.instance.set_limited(limit);
            retire(*task, Err(InstanceError::Limit(limit)), shared, m);
            None
        }
        None => Some(task),
    }
}

/// The limit a task has gone past after a slice, if any.
fn over_budget(task: &Task) -> Option<Limit> {
    if task.cpu_cycles >= task.cpu_budget {
        return Some(Limit::CpuTime);
    }
    match task.deadline {
        Some(at) if Instant::now() >= at => Some(Limit::Deadline),
        _ => None,
    }
}

/// Whether the instance was cancelled or the scheduler is shutting down:
/// a task about to park or sleep is retired instead.
fn stop_requested(handle: &HandleShared, shared: &Shared) -> bool {
    handle.cancel.load(Ordering::Acquire) || shared.shutdown.load(Ordering::Acquire)
}

/// Park a task whose slice ended in `Outcome::Parked`: publish it in its
/// handle's slot, unless a cancel, a pending resume or a message for its
/// `recv` arrived while it was parking, which are applied at once.
fn park(mut task: Box<Task>, local: &Worker<Box<Task>>, shared: &Shared, m: &mut Metrics) {
    let handle = Arc::clone(&task.handle);
    let mut slot = handle.lock_slot();
    if stop_requested(&handle, shared) {
        drop(slot);
        retire(*task, Err(InstanceError::Cancelled), shared, m);
        return;
    }
    if slot.recv_wait.is_some() && !slot.mailbox.is_empty() {
        complete_recv(&mut slot, &mut task);
    } else if let Some(values) = slot.pending.take() {
        slot.recv_wait = None;
        if task.instance.unpark(&values).is_err() {
            drop(slot);
            retire(*task, Err(InstanceError::Cancelled), shared, m);
            return;
        }
    } else {
        let deadline = task.deadline;
        slot.task = Some(task);
        handle.set_state(InstanceState::Parked);
        drop(slot);
        if let Some(at) = deadline {
            shared.watch_deadline(at, &handle);
        }
        return;
    }
    drop(slot);
    handle.set_state(InstanceState::Runnable);
    local.push(task);
}

/// Put a task whose slice ended in `Outcome::Sleeping(at)` to sleep in its
/// handle's slot until the timer wakes it (or run it again at once if `at`
/// has passed), unless it was cancelled meanwhile. A wall-clock deadline
/// that comes first is watched as for a parked instance.
fn sleep(
    mut task: Box<Task>,
    at: Instant,
    local: &Worker<Box<Task>>,
    shared: &Shared,
    m: &mut Metrics,
) {
    let left = at.saturating_duration_since(Instant::now());
    if left.is_zero() {
        task.handle.set_state(InstanceState::Runnable);
        local.push(task);
        return;
    }
    let at_tsc = rdtsc().saturating_add(ns_to_tsc(left));
    let handle = Arc::clone(&task.handle);
    let mut slot = handle.lock_slot();
    if stop_requested(&handle, shared) {
        drop(slot);
        retire(*task, Err(InstanceError::Cancelled), shared, m);
        return;
    }
    let deadline = task.deadline;
    task.wake_at = Some(at);
    slot.task = Some(task);
    handle.set_state(InstanceState::Sleeping);
    drop(slot);
    shared.add_timer(at_tsc, &handle);
    if let Some(d) = deadline.filter(|d| *d < at) {
        shared.watch_deadline(d, &handle);
    }
}

/// `d` in TSC ticks (saturating).
fn ns_to_tsc(d: Duration) -> u64 {
    myriad_runtime::fuel::ns_to_tsc(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Queue a resumed task (from any thread) and wake a worker; cancel it if
/// the scheduler is shutting down.
pub(crate) fn requeue(task: Box<Task>) {
    let Some(shared) = task.handle.sched.upgrade() else {
        return;
    };
    if shared.shutdown.load(Ordering::Acquire) {
        shared.retire_off_worker(*task, Err(InstanceError::Cancelled));
        return;
    }
    shared.injector.push(task);
    shared.wake_one();
}

/// End a task: tear the instance down (slot back to the region), then
/// publish the result so a joiner sees the slot already free.
fn retire(task: Task, result: InstanceResult, shared: &Shared, m: &mut Metrics) {
    let Task {
        instance,
        handle,
        slices,
        cpu_cycles,
        ..
    } = task;
    let t = rdtsc();
    drop(instance);
    m.teardown
        .saturating_record(shared.conv.ns(rdtsc().saturating_sub(t)));
    m.finished += 1;
    match &result {
        Err(InstanceError::Trap(_)) => m.trapped += 1,
        Err(InstanceError::Cancelled) => m.cancelled += 1,
        Err(_) | Ok(_) => {}
    }
    handle.publish_stats(slices, shared.conv.ns(cpu_cycles));
    shared.registry[(handle.id % REGISTRY_SHARDS as u64) as usize]
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&handle.id);
    handle.complete(result);
    if shared.live.fetch_sub(1, Ordering::AcqRel) == 1 {
        let _g = shared
            .all_done_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        shared.all_done_cv.notify_all();
    }
}

/// After every worker has stopped: cancel tasks nobody drained (a worker
/// that could not initialise or that panicked leaves its queue behind), so
/// no handle's `join` waits forever.
pub(crate) fn cancel_stranded(shared: &Shared) -> Metrics {
    let mut m = Metrics::default();
    cancel_all(|| shared.injector.steal(), shared, &mut m);
    for stealer in &shared.stealers {
        cancel_all(|| stealer.steal(), shared, &mut m);
    }
    // Parked instances sit in no queue: find them through the registry.
    let live: Vec<Arc<HandleShared>> = shared
        .registry
        .iter()
        .flat_map(|r| {
            r.lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    for h in live {
        let task = h.lock_slot().task.take();
        if let Some(t) = task {
            retire(*t, Err(InstanceError::Cancelled), shared, &mut m);
        }
    }
    m
}

/// Retire as cancelled every task `steal` yields until it is empty.
fn cancel_all(steal: impl Fn() -> Steal<Box<Task>>, shared: &Shared, m: &mut Metrics) {
    loop {
        match steal() {
            Steal::Success(t) => retire(*t, Err(InstanceError::Cancelled), shared, m),
            Steal::Retry => continue,
            Steal::Empty => break,
        }
    }
}

/// At shutdown: cancel everything this worker holds and whatever is left
/// in the injector.
fn drain(next: Option<Box<Task>>, local: &Worker<Box<Task>>, shared: &Shared, m: &mut Metrics) {
    if let Some(t) = next {
        retire(*t, Err(InstanceError::Cancelled), shared, m);
    }
    while let Some(t) = local.pop() {
        retire(*t, Err(InstanceError::Cancelled), shared, m);
    }
    cancel_all(|| shared.injector.steal(), shared, m);
}
