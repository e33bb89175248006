//! State shared by the scheduler front end and all workers, and what any
//! thread does to it: the run queues' injector and stealers, the start
//! gate, idle workers, the id registry, deadlines and timers, and the end
//! of an instance ([`retire`]).
//!
//! # Shutdown protocol
//!
//! [`crate::Scheduler::shutdown`] (or dropping the scheduler) stops every
//! instance and every worker, and no handle's `join` waits forever:
//!
//! 1. The front end sets [`Shared::shutdown`], opens the start gate (a
//!    paused scheduler's workers must wake to drain) and wakes every idle
//!    worker.
//! 2. Each worker sees the flag at the top of its loop, before starting
//!    another slice, and *drains*: it retires its held task, its local
//!    queue and whatever is in the injector as `Cancelled`, then exits. A
//!    slice already running ends at its deadline first.
//! 3. Tasks that would leave a worker's hands re-check the flag where they
//!    are handed over, under the lock that publishes them: a task about to
//!    park or sleep is retired instead (`stop_requested`, under its
//!    handle's slot lock), and a task resumed or woken from another thread
//!    ([`requeue`]) is retired instead of queued. So after step 1 no task
//!    enters a queue or a slot that nobody will drain.
//! 4. After joining every worker, the front end retires what is left
//!    ([`cancel_stranded`]): tasks in the injector or a queue whose worker
//!    died or never started, and parked or sleeping tasks, found through
//!    the registry. Then it merges the metrics.
//!
//! [`retire`] tears the instance down (its slot back to the region) before
//! it publishes the result, so a joiner that wakes finds the slot free.

use crate::handle::{HandleShared, InstanceError, InstanceResult, InstanceState, MailboxLimits};
use crate::metrics::{Metrics, TscToNs};
use crate::sync::{lock, Registry};
use crate::timers::TimerQueue;
use crossbeam_deque::{Injector, Steal, Stealer};
use myriad_runtime::fuel::duration_to_tsc;
use myriad_runtime::{rdtsc, Instance, Limit, Region};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

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
    /// A worker was notified and has not woken yet ([`Shared::wake_one`]).
    pub(crate) waking: AtomicBool,
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
    /// Live instances by id.
    pub(crate) registry: Registry,
    /// Next instance id.
    pub(crate) next_id: AtomicU64,
    /// Parked instances with a deadline, for the deadline sweep.
    pub(crate) deadlines: Mutex<Vec<(Instant, Weak<HandleShared>)>>,
    /// Earliest entry of `deadlines`, in ns since `epoch` (`u64::MAX`: none).
    pub(crate) next_deadline: AtomicU64,
    /// Time origin for `next_deadline`.
    pub(crate) epoch: Instant,
    /// Registered names of live instances by tenant ([`crate::actors`]).
    pub(crate) names: Mutex<Names>,
    /// Next tenant of `Scheduler::new_tenant` (0 is the default one).
    pub(crate) next_tenant: AtomicU64,
    /// Modules the embedder registered by name, for `myriad.spawn_module`.
    pub(crate) modules: Mutex<Modules>,
    /// Most instances alive at once (the region's slots).
    pub(crate) capacity: usize,
    /// Memory limit of instances spawned without one
    /// (`SchedulerConfig::instance_memory_limit`).
    pub(crate) memory_limit: u64,
    /// Mailbox bounds per instance: messages, bytes.
    pub(crate) mailbox_limits: MailboxLimits,
    /// Sleeping instances by wake-up time (TSC). An entry whose instance
    /// has ended is skipped when due, or dropped earlier by the purge in
    /// [`Shared::add_timer`].
    /// Entries carry the handle's timer generation when they were made;
    /// only the newest entry of a handle is live.
    pub(crate) timers: TimerQueue<(Weak<HandleShared>, u64)>,
    /// Instances a link cascade killed, not yet retired: workers retire
    /// [`RETIRE_INLINE`] of them between two slices (see [`retire`]).
    pub(crate) killed: Mutex<Vec<Task>>,
    /// `killed.len()`, read without the lock.
    pub(crate) killed_len: AtomicUsize,
}

/// Instance ids by (tenant, name).
pub(crate) type Names = std::collections::HashMap<(u64, Box<[u8]>), u64>;

/// Registered modules by (tenant, or `None` for every tenant, name).
pub(crate) type Modules =
    std::collections::HashMap<(Option<u64>, Box<[u8]>), Arc<crate::actors::Origin>>;

impl Shared {
    /// Wake one sleeping worker, if any, unless one is already being
    /// woken: a burst of spawns from the embedder then costs one futex
    /// wake, not one each. The woken worker clears `waking` and, if it
    /// leaves work in the injector, wakes the next (`Worker::steal_from_injector`).
    pub(crate) fn wake_one(&self) {
        if self.sleepers.load(Ordering::SeqCst) > 0 && !self.waking.swap(true, Ordering::AcqRel) {
            let _g = lock(&self.idle_lock);
            self.idle_cv.notify_one();
        }
    }

    /// The live instance with id `id`.
    pub(crate) fn lookup(&self, id: u64) -> Option<Arc<HandleShared>> {
        self.registry.get(id)
    }

    /// Retire a task from a thread that is not a worker (cancel of a parked
    /// instance, the deadline sweep, shutdown).
    pub(crate) fn retire_off_worker(&self, task: Task, result: InstanceResult) {
        let mut m = Metrics::default();
        retire(task, result, self, &mut m);
        lock(&self.spawn_metrics).merge(&m);
    }

    /// `at` in nanoseconds since `epoch` (0 for earlier instants,
    /// saturating).
    fn ns_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Remember that `handle` parked with deadline `at` (once: its slot's
    /// `deadline_watched`).
    pub(crate) fn watch_deadline(&self, at: Instant, handle: &Arc<HandleShared>) {
        let mut d = lock(&self.deadlines);
        // Entries of instances that ended before their deadline stay until
        // a sweep: purge them once they could outnumber the live
        // instances (100,000 short-lived instances with a deadline each
        // kept their handles' memory, 410 bytes each, alive through the
        // entries), so the list holds at most about one entry per live
        // instance.
        if d.len() >= 1024 && d.len() > 2 * self.live.load(Ordering::Relaxed) {
            d.retain(|(_, h)| h.upgrade().is_some_and(|h| !h.state().is_done()));
        }
        d.push((at, Arc::downgrade(handle)));
        let ns = self.ns_since_epoch(at);
        self.next_deadline.fetch_min(ns, Ordering::AcqRel);
    }

    /// End every parked instance whose deadline has passed, if one may have.
    pub(crate) fn sweep_deadlines(&self) {
        let now = Instant::now();
        let now_ns = self.ns_since_epoch(now);
        if now_ns < self.next_deadline.load(Ordering::Acquire) {
            return;
        }
        let mut expired = Vec::new();
        {
            let mut d = lock(&self.deadlines);
            let mut next = u64::MAX;
            d.retain(|(at, h)| {
                if *at <= now {
                    expired.push(h.clone());
                    false
                } else if h.strong_count() == 0 {
                    false
                } else {
                    next = next.min(self.ns_since_epoch(*at));
                    true
                }
            });
            self.next_deadline.store(next, Ordering::Release);
        }
        for h in expired.iter().filter_map(Weak::upgrade) {
            let task = {
                let mut slot = h.lock_slot();
                let task = slot.task.take();
                // Running now: its slices end at the deadline, and if it
                // parks first, that park watches the deadline again.
                slot.deadline_watched = task.is_some();
                task
            };
            if let Some(mut task) = task {
                task.instance.set_limited(Limit::Deadline);
                self.retire_off_worker(*task, Err(InstanceError::Limit(Limit::Deadline)));
            }
        }
    }

    /// Wake `handle`'s instance at TSC `at` (it sleeps in its slot).
    pub(crate) fn add_timer(&self, at: u64, handle: &Arc<HandleShared>) {
        // Entries of instances cancelled in their sleep, or of receives
        // with a timeout that a message ended early, stay until due: purge
        // them once they could outnumber the live instances, so a stream
        // of cancelled long sleeps or of long timeouts cut short cannot
        // grow the queue unboundedly. Only a handle's newest entry (its
        // generation) survives, so after a purge there is at most one
        // entry per live instance.
        let n = self.timers.len();
        if n >= 1024 && n > 2 * self.live.load(Ordering::Relaxed) {
            self.timers.retain(|(h, generation)| {
                h.upgrade().is_some_and(|h| {
                    !h.state().is_done()
                        && h.timer_generation.load(Ordering::Acquire) == *generation
                })
            });
        }
        let generation = handle.timer_generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.timers.insert(at, (Arc::downgrade(handle), generation));
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
        let current = |(h, generation): &(Weak<HandleShared>, u64)| {
            h.upgrade()
                .filter(|h| h.timer_generation.load(Ordering::Acquire) == *generation)
        };
        for h in due.iter().filter_map(current) {
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
                // A receive with a timeout: nothing came in time.
                crate::handle::time_out_recv(&mut slot, &mut task);
                h.set_state(InstanceState::Runnable);
                drop(slot);
                self.injector.push(task);
                woke = true;
            }
        }
        // Fired before its instant (TSC estimate): sleep the rest.
        for (left, h) in early {
            self.add_timer(rdtsc().saturating_add(duration_to_tsc(left)), &h);
        }
        if woke {
            self.wake_one();
        }
    }

    /// How long an idle worker may wait before the next timer is due
    /// (at most `cap`).
    pub(crate) fn idle_timeout(&self, cap: Duration) -> Duration {
        let next = self.timers.next_due();
        if next == u64::MAX {
            return cap;
        }
        let ns = self.conv.ns(next.saturating_sub(rdtsc()));
        cap.min(Duration::from_nanos(ns))
    }

    /// Wake every sleeping worker.
    pub(crate) fn wake_all(&self) {
        let _g = lock(&self.idle_lock);
        self.idle_cv.notify_all();
    }
}

/// Queue a resumed task (from any thread) and wake a worker; cancel it if
/// the scheduler is shutting down.
pub(crate) fn requeue(task: Box<Task>) {
    // From a host function on one of this scheduler's workers: that
    // worker runs it next (no injector, no futex, no reference count
    // changed), or retires it in its drain if the scheduler is shutting
    // down.
    let Err(task) = crate::worker::queue_here(task) else {
        return;
    };
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
/// publish the result so a joiner sees the slot already free, then notify
/// its monitors and links ([`crate::actors::notify_end`]); linked
/// instances that end with it are retired in the same loop.
pub(crate) fn retire(task: Task, result: InstanceResult, shared: &Shared, m: &mut Metrics) {
    // Linked instances the end kills are retired in this loop, not by
    // recursion; the vector allocates only if there are some.
    let mut pending = Vec::new();
    retire_one(task, result, shared, m, &mut pending);
    let mut retired = 1;
    while let Some((task, result)) = pending.pop() {
        if retired >= RETIRE_INLINE && can_queue_killed(&task, shared) {
            queue_killed(task, shared);
            continue;
        }
        retire_one(task, result, shared, m, &mut pending);
        retired += 1;
    }
}

/// Retire up to [`RETIRE_INLINE`] instances of [`Shared::killed`] (each
/// with the reason its cancel carries); what their ends kill joins the
/// queue. Workers call this between slices.
pub(crate) fn retire_killed(shared: &Shared, m: &mut Metrics) {
    if shared.killed_len.load(Ordering::Acquire) == 0 {
        return;
    }
    let batch: Vec<Task> = {
        let mut k = lock(&shared.killed);
        let at = k.len().saturating_sub(RETIRE_INLINE);
        let batch = k.split_off(at);
        shared.killed_len.store(k.len(), Ordering::Release);
        batch
    };
    for task in batch {
        let error = task.handle.cancel_error();
        retire(task, Err(error), shared, m);
    }
}

/// Retire every instance of [`Shared::killed`] (at shutdown).
pub(crate) fn retire_all_killed(shared: &Shared, m: &mut Metrics) {
    while shared.killed_len.load(Ordering::Acquire) > 0 {
        retire_killed(shared, m);
    }
}

/// Most instances one [`retire`] ends in place: a linked instance that a
/// cascade kills past these is queued on [`Shared::killed`] (its cancel
/// is set), and workers retire that queue 8 at a time between slices. A
/// chain of 50,000 linked instances held one worker 488 ms in one retire
/// (a review, 2026-12-05), outside any slice. A retirement takes about
/// 9 µs, so 8 are as long as a slice or two: workers look at timers and
/// the injector every few dozen slices, and with 64 a sleeper waited
/// 35 ms for its wake-up during a cascade. (Queued on the injector
/// instead, the 4,000 leaves of one hub went ahead of every wake-up: a
/// sleeper waited 40 ms.)
pub(crate) const RETIRE_INLINE: usize = 8;

/// Whether killed `task` may be queued rather than retired now: on one
/// of this scheduler's workers (they drain the injector before they
/// exit, and shutdown drains it after them), not during shutdown.
fn can_queue_killed(task: &Task, shared: &Shared) -> bool {
    task.handle.cancel.load(Ordering::Acquire)
        && !shared.shutdown.load(Ordering::Acquire)
        && crate::worker::on_worker_of(shared)
}

/// Queue killed `task` on [`Shared::killed`] (see [`retire_killed`]).
fn queue_killed(task: Task, shared: &Shared) {
    let mut k = lock(&shared.killed);
    k.push(task);
    // SeqCst: an idle worker checks it after announcing itself a sleeper
    // (`Worker::idle_wait`), and `wake_one` reads the sleepers after it.
    shared.killed_len.store(k.len(), Ordering::SeqCst);
    drop(k);
    shared.wake_one();
}

/// [`retire`] one task; linked instances it ends are pushed on `more`.
fn retire_one(
    task: Task,
    result: InstanceResult,
    shared: &Shared,
    m: &mut Metrics,
    more: &mut Vec<(Task, InstanceResult)>,
) {
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
        Err(InstanceError::Cancelled | InstanceError::Killed(_)) => m.cancelled += 1,
        Err(_) | Ok(_) => {}
    }
    handle.publish_stats(slices, shared.conv.ns(cpu_cycles));
    // SAFETY: we hold the ended instance's task (taken apart above).
    unsafe { handle.send_cache.clear() };
    // From here on no monitor, link or name is added (they see `ended`).
    let (mut relations, mailbox) = {
        let mut slot = handle.lock_slot();
        slot.ended = true;
        slot.mailbox_bytes = 0;
        (
            std::mem::take(&mut slot.relations),
            std::mem::take(&mut slot.mailbox),
        )
    };
    // Nobody can receive these any more: free them now (and their
    // charges), not when the last reference to the handle goes (a
    // sender's cache may keep the handle a while).
    handle
        .account
        .release(mailbox.iter().map(|m| m.cost).sum::<u64>());
    drop(mailbox);
    crate::actors::free_names(shared, handle.id, handle.tenant, &mut relations.names);
    shared.registry.remove(handle.id);
    let notice = relations_nonempty(&relations).then(|| result.clone());
    handle.complete(result);
    if let Some(result) = notice {
        crate::actors::notify_end(&handle, &result, relations, shared, more);
    }
    if shared.live.fetch_sub(1, Ordering::AcqRel) == 1 {
        let _g = lock(&shared.all_done_lock);
        shared.all_done_cv.notify_all();
    }
}

/// Whether an ended instance has anyone or anything to notify.
fn relations_nonempty(r: &crate::handle::Relations) -> bool {
    !(r.watchers.is_empty() && r.monitoring.is_empty() && r.links.is_empty() && r.names.is_empty())
}

/// After every worker has stopped: cancel tasks nobody drained (a worker
/// that could not initialise or that panicked leaves its queue behind), so
/// no handle's `join` waits forever.
pub(crate) fn cancel_stranded(shared: &Shared) -> Metrics {
    let mut m = Metrics::default();
    retire_all_killed(shared, &mut m);
    cancel_all(|| shared.injector.steal(), shared, &mut m);
    for stealer in &shared.stealers {
        cancel_all(|| stealer.steal(), shared, &mut m);
    }
    // Parked instances sit in no queue: find them through the registry.
    for h in shared.registry.all() {
        let task = h.lock_slot().task.take();
        if let Some(t) = task {
            retire(*t, Err(InstanceError::Cancelled), shared, &mut m);
        }
    }
    m
}

/// Retire `task` at shutdown: cancelled, unless a link had killed it
/// already (its pending cancel says by whom).
pub(crate) fn retire_at_shutdown(task: Task, shared: &Shared, m: &mut Metrics) {
    let error = if task.handle.cancel.load(Ordering::Acquire) {
        task.handle.cancel_error()
    } else {
        InstanceError::Cancelled
    };
    retire(task, Err(error), shared, m);
}

/// Retire as cancelled every task `steal` yields until it is empty.
pub(crate) fn cancel_all(steal: impl Fn() -> Steal<Box<Task>>, shared: &Shared, m: &mut Metrics) {
    loop {
        match steal() {
            Steal::Success(t) => retire_at_shutdown(*t, shared, m),
            Steal::Retry => continue,
            Steal::Empty => break,
        }
    }
}
