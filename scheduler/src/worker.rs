//! The worker loop: one thread per core running instances slice by slice.
//!
//! A [`Worker`] owns its FIFO run queue (round robin), the task it holds
//! next, and its metrics. New instances arrive through the shared
//! injector; a worker whose queue is empty takes a batch from the
//! injector, then steals from the other workers. A slice ends when the
//! guest's fuel-gated deadline check sees the deadline pass; the instance
//! then goes to the back of the queue.
//!
//! While one instance runs, the worker already holds the next one and has
//! prefetched its vmctx and saved context, so the cache misses of a cold
//! switch overlap guest work. What happens at shutdown is described in
//! [`crate::shared`].

use crate::handle::{complete_recv, HandleShared, InstanceError, InstanceResult, InstanceState};
use crate::metrics::Metrics;
use crate::shared::{cancel_all, retire, Shared, Task};
use crate::sync::lock;
use crossbeam_deque::{Steal, Worker as Queue};
use myriad_runtime::fuel::duration_to_tsc;
use myriad_runtime::{rdtsc, Limit, Outcome};
use std::cell::{Cell, RefCell};
use std::mem::ManuallyDrop;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

thread_local! {
    /// The handle of the instance this worker is running a slice of (null
    /// between slices). Host functions find "their" instance through it.
    static CURRENT: Cell<*const HandleShared> = const { Cell::new(std::ptr::null()) };
    /// The scheduler of the worker running a slice on this thread (null
    /// between slices); set and cleared with `CURRENT`.
    static CURRENT_SHARED: Cell<*const Shared> = const { Cell::new(std::ptr::null()) };
    /// Tasks made runnable by the running slice's host functions (spawned
    /// children, receivers woken by a send): the worker takes them onto
    /// its LIFO stack after the slice, so a wake-up or spawn on a worker
    /// costs no injector push and no futex, and the newest runs next on
    /// the warm core (Tokio's and Go's LIFO slot, widened to a stack).
    #[expect(clippy::vec_box, reason = "tasks move between queues as boxes; unboxing here would re-box them")]
    static MADE_RUNNABLE: RefCell<Vec<Box<Task>>> = const { RefCell::new(Vec::new()) };
    /// Instantiate times (ns) of the spawns the running slice's host
    /// functions made: the worker records them in its own metrics after
    /// the slice, so a spawn on a worker takes no shared lock.
    static SPAWN_TIMES: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    /// The scheduler this thread is a worker of (null on other threads).
    static WORKER_OF: Cell<*const Shared> = const { Cell::new(std::ptr::null()) };
}

/// Whether this thread is one of `shared`'s workers (which drain the
/// injector before they exit).
pub(crate) fn on_worker_of(shared: &Shared) -> bool {
    WORKER_OF.with(|w| std::ptr::eq(w.get(), shared))
}

/// Keep an instantiate time for this thread's worker, if this thread is
/// running a slice for `shared`'s scheduler; `false` (nothing kept)
/// otherwise.
pub(crate) fn record_instantiate_here(shared: &Shared, ns: u64) -> bool {
    if !std::ptr::eq(CURRENT_SHARED.with(|c| c.get()), shared) {
        return false;
    }
    SPAWN_TIMES.with(|t| t.borrow_mut().push(ns));
    true
}

/// Consecutive slices a worker may take from its LIFO stack before it
/// serves its queue again (so instances waking or spawning each other
/// cannot starve the preempted ones waiting there).
const LIFO_STREAK_MAX: u32 = 32;
/// Most tasks on a worker's LIFO stack; past it the oldest go to the
/// queue (where they are served in order and can be stolen).
const LIFO_STACK_MAX: usize = 256;

/// Hand `task` to the worker running on this thread, if this thread is
/// running a slice of an instance of the same scheduler; otherwise give it
/// back.
pub(crate) fn queue_here(task: Box<Task>) -> Result<(), Box<Task>> {
    let p = CURRENT.with(|c| c.get());
    if p.is_null() {
        return Err(task);
    }
    // SAFETY: CURRENT is only non-null while the worker holds the running
    // task, whose `handle` Arc keeps the HandleShared alive.
    let running = unsafe { &*p };
    if !std::sync::Weak::ptr_eq(&running.sched, &task.handle.sched) {
        return Err(task);
    }
    MADE_RUNNABLE.with(|m| m.borrow_mut().push(task));
    Ok(())
}

/// The handle of the instance whose slice is running on this thread, if
/// any (that is, when called from a host function under a scheduler).
pub(crate) fn current() -> Option<Arc<HandleShared>> {
    with_current(|me, _| Arc::clone(me))
}

/// Run `f` with the handle of the instance whose slice is running on this
/// thread and its scheduler, if any, without touching either reference
/// count (both are shared by every worker: a count changed per host call
/// moves its cache line between cores).
pub(crate) fn with_current<R>(f: impl FnOnce(&Arc<HandleShared>, &Arc<Shared>) -> R) -> Option<R> {
    let (h, s) = (CURRENT.with(|c| c.get()), CURRENT_SHARED.with(|c| c.get()));
    if h.is_null() || s.is_null() {
        return None;
    }
    // SAFETY: both are non-null only during a slice, while the worker holds
    // the running task (whose `handle` Arc keeps the handle alive) and its
    // own `Arc<Shared>`; both pointers came from `Arc::as_ptr`. The
    // `ManuallyDrop` wrappers borrow those strong counts for the call and
    // never release them, also if `f` panics.
    let (h, s) = unsafe {
        (
            ManuallyDrop::new(Arc::from_raw(h)),
            ManuallyDrop::new(Arc::from_raw(s)),
        )
    };
    Some(f(&h, &s))
}

/// How many slices a worker runs between looks at the injector while its own
/// queue has work (Tokio uses the same figure for the same reason).
const GLOBAL_CHECK_INTERVAL: u32 = 61;

/// One worker thread's state: its queue, the task it holds next, its
/// metrics. Only its own thread touches it; other threads reach its queue
/// through the shared stealers.
pub(crate) struct Worker {
    index: usize,
    local: Queue<Box<Task>>,
    shared: Arc<Shared>,
    /// The task to run after the current one (prefetched; invisible to
    /// thieves).
    next: Option<Box<Task>>,
    /// Tasks made runnable by this worker's slices (see [`queue_here`]),
    /// newest at the back: the newest runs before the queue, at most
    /// [`LIFO_STREAK_MAX`] times in a row. Spawns and wake-ups thus run
    /// depth first: a tree of actors (Skynet) keeps few instances alive
    /// at once and reuses warm slots, where a FIFO order would bring the
    /// whole tree to life. Not stealable; the oldest move to the queue
    /// when another worker is idle or the stack passes
    /// [`LIFO_STACK_MAX`].
    lifo: std::collections::VecDeque<Box<Task>>,
    lifo_streak: u32,
    /// Slices run, for the periodic look at the injector.
    tick: u32,
    metrics: Metrics,
}

impl Worker {
    /// Worker `index` with run queue `local`.
    pub(crate) fn new(index: usize, local: Queue<Box<Task>>, shared: Arc<Shared>) -> Worker {
        Worker {
            index,
            local,
            shared,
            next: None,
            lifo: std::collections::VecDeque::new(),
            lifo_streak: 0,
            tick: 0,
            metrics: Metrics::default(),
        }
    }

    /// Run until shutdown; returns the worker's metrics.
    pub(crate) fn run(mut self) -> Metrics {
        // Block asynchronous signals, install the fault handler and the
        // alternate signal stack: without them a trap could not be
        // contained, so refuse to run guests on this thread.
        if let Err(e) = myriad_runtime::thread_init() {
            eprintln!(
                "myriad worker {}: cannot initialise thread: {e}",
                self.index
            );
            return self.metrics;
        }
        WORKER_OF.with(|w| w.set(Arc::as_ptr(&self.shared)));
        self.wait_for_start();
        loop {
            if self.shared.shutdown.load(Ordering::Acquire) {
                self.drain();
                break;
            }
            // A link cascade's killed instances, a few between slices.
            crate::shared::retire_killed(&self.shared, &mut self.metrics);
            let Some(task) = self.next_task() else {
                continue;
            };
            // Hold the next task (to prefetch it) only when another one
            // stays in the queue: a held task is invisible to thieves, and
            // with few tasks an idle worker must be able to steal.
            if self.next.is_none() && self.local.len() >= 2 {
                self.next = self.local.pop();
                if let Some(n) = &self.next {
                    n.instance.prefetch();
                }
            }
            self.run_slice(task);
            self.take_made_runnable();
        }
        self.metrics
    }

    /// Block until the scheduler's start gate opens.
    fn wait_for_start(&self) {
        let mut started = lock(&self.shared.started);
        while !*started {
            started = self
                .shared
                .start_cv
                .wait(started)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The task to run now, or `None` after an idle wait (the loop then
    /// looks at the shutdown flag again).
    fn next_task(&mut self) -> Option<Box<Task>> {
        self.tick = self.tick.wrapping_add(1);
        // Every GLOBAL_CHECK_INTERVAL slices look at the injector first, so
        // newly spawned instances do not wait behind a long local queue.
        if self.tick.is_multiple_of(GLOBAL_CHECK_INTERVAL) {
            self.shared.sweep_deadlines();
            self.shared.sweep_timers();
            if let Some(t) = self.steal_from_injector() {
                return Some(t);
            }
        }
        if self.lifo_streak < LIFO_STREAK_MAX {
            if let Some(t) = self.lifo.pop_back() {
                self.lifo_streak += 1;
                return Some(t);
            }
        }
        self.lifo_streak = 0;
        if let Some(t) = self.next.take() {
            return Some(t);
        }
        if let Some(t) = self.find_task() {
            return Some(t);
        }
        // The streak was over but nothing else waits.
        if let Some(t) = self.lifo.pop_back() {
            return Some(t);
        }
        self.shared.sweep_deadlines();
        self.shared.sweep_timers();
        // Killed instances wait to be retired: no idle wait.
        if self.shared.killed_len.load(Ordering::Acquire) == 0 {
            self.idle_wait();
        }
        None
    }

    /// Take the next task: own queue, then a batch from the injector, then
    /// a batch stolen from another worker.
    fn find_task(&mut self) -> Option<Box<Task>> {
        if let Some(t) = self.local.pop() {
            return Some(t);
        }
        if let Some(t) = self.steal_from_injector() {
            return Some(t);
        }
        let n = self.shared.stealers.len();
        for k in 1..n {
            let victim = &self.shared.stealers[(self.index + k) % n];
            loop {
                match victim.steal_batch_and_pop(&self.local) {
                    Steal::Success(t) => {
                        self.metrics.steals += 1;
                        return Some(t);
                    }
                    Steal::Retry => continue,
                    Steal::Empty => break,
                }
            }
        }
        None
    }

    /// Take a batch of newly spawned tasks from the injector into the
    /// local queue, returning one of them.
    fn steal_from_injector(&self) -> Option<Box<Task>> {
        loop {
            match self.shared.injector.steal_batch_and_pop(&self.local) {
                Steal::Success(t) => {
                    // More waiting there: another sleeping worker may take
                    // it (spawns woke only one).
                    if !self.shared.injector.is_empty() {
                        self.shared.wake_one();
                    }
                    return Some(t);
                }
                Steal::Retry => continue,
                Steal::Empty => return None,
            }
        }
    }

    /// Sleep briefly when there is nothing to run. Spawn wakes a sleeper;
    /// the timeout bounds how long work sitting in another worker's queue
    /// waits to be stolen, and how late a timer fires.
    fn idle_wait(&self) {
        let shared = &self.shared;
        shared.sleepers.fetch_add(1, Ordering::SeqCst);
        let guard = lock(&shared.idle_lock);
        // A stale `waking` (its notify found nobody waiting) must not keep
        // spawns from waking this worker: clear it under the lock, before
        // the check, so a push after the check notifies.
        // SeqCst: the store must not pass the injector check below.
        shared.waking.store(false, Ordering::SeqCst);
        if shared.injector.is_empty()
            && shared.killed_len.load(Ordering::SeqCst) == 0
            && !shared.shutdown.load(Ordering::SeqCst)
        {
            let _ = shared
                .idle_cv
                .wait_timeout(guard, shared.idle_timeout(Duration::from_micros(500)))
                .unwrap_or_else(|e| e.into_inner());
        }
        shared.sleepers.fetch_sub(1, Ordering::SeqCst);
        // Awake: the next wake_one may notify another sleeper.
        shared.waking.store(false, Ordering::Release);
    }

    /// End `task` with `result` (see [`retire`]).
    fn retire(&mut self, task: Task, result: InstanceResult) {
        retire(task, result, &self.shared, &mut self.metrics);
    }

    /// Run one slice of `task`, then requeue, park, sleep or retire it.
    fn run_slice(&mut self, mut task: Box<Task>) {
        if task.handle.cancel.load(Ordering::Acquire) {
            let error = task.handle.cancel_error();
            self.retire(*task, Err(error));
            return;
        }
        if let Some(at) = task.deadline {
            if Instant::now() >= at {
                task.instance.set_limited(Limit::Deadline);
                self.retire(*task, Err(InstanceError::Limit(Limit::Deadline)));
                return;
            }
        }
        let shared = &*self.shared;
        let conv = shared.conv;
        let m = &mut self.metrics;
        task.handle.set_state(InstanceState::Running);
        CURRENT.with(|c| c.set(Arc::as_ptr(&task.handle)));
        CURRENT_SHARED.with(|c| c.set(Arc::as_ptr(&self.shared)));
        let t0 = rdtsc();
        if task.slices > 0 {
            m.gap
                .saturating_record(conv.ns(t0.saturating_sub(task.last_end)));
        }
        // Time slices have a deadline (its overrun is recorded); fuel
        // slices end when their fuel does.
        let (deadline, outcome) = match shared.fuel_per_slice {
            None => {
                let deadline = t0.saturating_add(shared.quantum_tsc);
                (Some(deadline), task.instance.resume_from(t0, deadline))
            }
            Some(units) => (None, task.instance.resume_fuel(units)),
        };
        let t1 = rdtsc();
        CURRENT.with(|c| c.set(std::ptr::null()));
        CURRENT_SHARED.with(|c| c.set(std::ptr::null()));
        if t1 >= shared.timers.next_due() {
            shared.sweep_timers();
        }
        let slice = t1.saturating_sub(t0);
        m.slices += 1;
        m.slice.saturating_record(conv.ns(slice));
        task.slices += 1;
        task.cpu_cycles += slice;
        task.last_end = t1;
        if !matches!(outcome, Outcome::Yielded) {
            m.guest_ns += conv.ns(slice);
        }
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
                    self.retire(*task, Err(InstanceError::Limit(limit)));
                    return;
                }
                task.handle.set_state(InstanceState::Runnable);
                self.local.push(task);
            }
            Outcome::Finished(values) => self.retire(*task, Ok(values)),
            Outcome::Trapped(kind) => self.retire(*task, Err(InstanceError::Trap(kind))),
            Outcome::Exited(code) => self.retire(*task, Err(InstanceError::Exited(code))),
            Outcome::Limited(limit) => self.retire(*task, Err(InstanceError::Limit(limit))),
            Outcome::Sleeping(at) => {
                if let Some(task) = self.within_budget(task) {
                    self.sleep(task, at);
                }
            }
            Outcome::Parked => {
                if let Some(task) = self.within_budget(task) {
                    self.park(task);
                }
            }
        }
    }

    /// After a slice that ended in a host function (park, sleep): publish
    /// the task's counters, and retire it if it went past a limit (`None`).
    fn within_budget(&mut self, mut task: Box<Task>) -> Option<Box<Task>> {
        task.handle
            .publish_stats(task.slices, self.shared.conv.ns(task.cpu_cycles));
        match over_budget(&task) {
            Some(limit) => {
                task.instance.set_limited(limit);
                self.retire(*task, Err(InstanceError::Limit(limit)));
                None
            }
            None => Some(task),
        }
    }

    /// Whether the instance was cancelled or the scheduler is shutting
    /// down: a task about to park or sleep is retired instead.
    fn stop_requested(&self, handle: &HandleShared) -> bool {
        handle.cancel.load(Ordering::Acquire) || self.shared.shutdown.load(Ordering::Acquire)
    }

    /// Park a task whose slice ended in `Outcome::Parked`: publish it in
    /// its handle's slot, unless a cancel, a pending resume or a message
    /// for its `recv` arrived while it was parking, which are applied at
    /// once.
    fn park(&mut self, mut task: Box<Task>) {
        let handle = Arc::clone(&task.handle);
        let mut slot = handle.lock_slot();
        if self.stop_requested(&handle) {
            drop(slot);
            self.retire(*task, Err(handle.cancel_error()));
            return;
        }
        if slot.recv_wait.is_some() && !slot.mailbox.is_empty() {
            complete_recv(&mut slot, &mut task);
        } else if let Some(values) = slot.pending.take() {
            slot.recv_wait = None;
            if task.instance.unpark(&values).is_err() {
                drop(slot);
                self.retire(*task, Err(InstanceError::Cancelled));
                return;
            }
        } else {
            let deadline = task.deadline.filter(|_| !slot.deadline_watched);
            slot.deadline_watched |= deadline.is_some();
            // A `recv_msg` with a timeout waits on the timer queue as a
            // sleep does; the timer ends the receive (`time_out_recv`).
            let until = slot.recv_wait.and_then(|w| w.until);
            task.wake_at = until;
            slot.task = Some(task);
            handle.set_state(InstanceState::Parked);
            drop(slot);
            if let Some(at) = until {
                let left = at.saturating_duration_since(Instant::now());
                self.shared
                    .add_timer(rdtsc().saturating_add(duration_to_tsc(left)), &handle);
            }
            if let Some(at) = deadline {
                self.shared.watch_deadline(at, &handle);
            }
            return;
        }
        drop(slot);
        handle.set_state(InstanceState::Runnable);
        self.local.push(task);
    }

    /// Put a task whose slice ended in `Outcome::Sleeping(at)` to sleep in
    /// its handle's slot until the timer wakes it (or run it again at once
    /// if `at` has passed), unless it was cancelled meanwhile. A
    /// wall-clock deadline that comes first is watched as for a parked
    /// instance.
    fn sleep(&mut self, mut task: Box<Task>, at: Instant) {
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            task.handle.set_state(InstanceState::Runnable);
            self.local.push(task);
            return;
        }
        let at_tsc = rdtsc().saturating_add(duration_to_tsc(left));
        let handle = Arc::clone(&task.handle);
        let mut slot = handle.lock_slot();
        if self.stop_requested(&handle) {
            drop(slot);
            self.retire(*task, Err(handle.cancel_error()));
            return;
        }
        let deadline = task.deadline.filter(|d| *d < at && !slot.deadline_watched);
        slot.deadline_watched |= deadline.is_some();
        task.wake_at = Some(at);
        slot.task = Some(task);
        handle.set_state(InstanceState::Sleeping);
        drop(slot);
        self.shared.add_timer(at_tsc, &handle);
        if let Some(d) = deadline {
            self.shared.watch_deadline(d, &handle);
        }
    }

    /// At shutdown: cancel everything this worker holds and whatever is
    /// left in the injector.
    /// Take the tasks the last slice made runnable ([`queue_here`]) onto
    /// the LIFO stack, spilling its oldest to the queue when it is too
    /// deep or another worker idles with nothing to steal.
    fn take_made_runnable(&mut self) {
        MADE_RUNNABLE.with(|m| self.lifo.extend(m.borrow_mut().drain(..)));
        SPAWN_TIMES.with(|t| {
            for ns in t.borrow_mut().drain(..) {
                self.metrics.instantiate.saturating_record(ns);
            }
        });
        while self.lifo.len() > LIFO_STACK_MAX {
            if let Some(t) = self.lifo.pop_front() {
                self.local.push(t);
            }
        }
        if self.lifo.len() > 1
            && self.local.is_empty()
            && self.shared.sleepers.load(Ordering::Relaxed) > 0
        {
            if let Some(t) = self.lifo.pop_front() {
                self.local.push(t);
                self.shared.wake_one();
            }
        }
    }

    fn drain(&mut self) {
        crate::shared::retire_all_killed(&self.shared, &mut self.metrics);
        let held = std::iter::from_fn(|| self.lifo.pop_back())
            .chain(self.next.take())
            .chain(std::iter::from_fn(|| self.local.pop()))
            .collect::<Vec<_>>();
        for t in held {
            crate::shared::retire_at_shutdown(*t, &self.shared, &mut self.metrics);
        }
        cancel_all(
            || self.shared.injector.steal(),
            &self.shared,
            &mut self.metrics,
        );
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
