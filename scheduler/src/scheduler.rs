//! The Scheduler API: build workers over a slot region, spawn instances,
//! shut down and collect the report.

use crate::actors::ActorError;
use crate::config::SchedulerConfig;
use crate::handle::{deliver, HandleShared, InstanceHandle, Message, SendError};
use crate::metrics::{Metrics, TscToNs};
use crate::shared::{self, Shared, Task};
use crate::sync::lock;
use crate::sync::Registry;
use crate::worker::Worker;
use crossbeam_deque::{Injector, Worker as Queue};
use myriad_runtime::fuel::duration_to_tsc;
use myriad_runtime::{
    rdtsc, tsc_hz, Extern, Func, Instance, InstantiateError, LinkError, Linker, Module, Region,
    RegionConfig, RegionError, Val,
};
use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Why a scheduler could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The configuration is unusable.
    #[error("invalid scheduler configuration: {0}")]
    Config(String),
    /// The slot region could not be created.
    #[error(transparent)]
    Region(#[from] RegionError),
    /// A worker thread could not be started.
    #[error("cannot start worker thread: {0}")]
    Thread(std::io::Error),
}

/// Why a spawn failed. A failed spawn leaves the scheduler as it was.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// Every slot is in use.
    #[error("scheduler is at capacity ({capacity} instances alive)")]
    AtCapacity {
        /// The scheduler's capacity.
        capacity: usize,
    },
    /// The scheduler is shutting down.
    #[error("scheduler is shutting down")]
    ShuttingDown,
    /// The spawning instance cannot pay for the monitor or link it asked
    /// for (its memory limit, or [`crate::actors::MAX_RELATIONS`]).
    #[error("no room for the monitor or link of the spawn")]
    NoRoom,
    /// The instance that was to monitor or link the new one has ended.
    #[error("instance {0}, to monitor or link the new instance, has ended")]
    RelatedEnded(u64),
    /// The module, export or arguments do not fit.
    #[error(transparent)]
    Instantiate(InstantiateError),
    /// An import has no definition in the linker.
    #[error(transparent)]
    Link(LinkError),
    /// An import is state another instance or the host shares without
    /// synchronisation: a table, a memory, a mutable global, or anything
    /// exported by another instance (its functions run on its state, and
    /// even an immutable `funcref` global of it leads to its code).
    /// Instances on the scheduler run concurrently on several workers, so
    /// they may import only host functions, immutable host-made globals and
    /// tags; run linked instances with `myriad_runtime::Instance` on one
    /// thread instead.
    #[error(
        "import {module}.{name} is a {kind} shared with other instances or the host; \
         instances on the scheduler run concurrently and may import only host functions, \
         immutable host-made globals and tags"
    )]
    SharedImport {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
        /// What it is ("table", "memory", "mutable global", "wasm function",
        /// "global of another instance").
        kind: &'static str,
    },
}

/// Refuse imports that would let instances on different workers use the
/// same unsynchronised state at once (see [`SpawnError::SharedImport`]).
pub(crate) fn check_unshared(module: &Module, imports: &[Extern]) -> Result<(), SpawnError> {
    for (imp, ext) in module.imports().iter().zip(imports) {
        let kind = match ext {
            Extern::Table(_) => "table",
            Extern::Memory(_) => "memory",
            Extern::Global(g) if g.is_mutable() => "mutable global",
            Extern::Func(Func::Wasm(_)) => "wasm function",
            Extern::Global(_) if ext.is_from_instance() => "global of another instance",
            Extern::Global(_) | Extern::Func(Func::Host(_)) | Extern::Tag(_) => continue,
        };
        return Err(SpawnError::SharedImport {
            module: imp.module.clone(),
            name: imp.name.clone(),
            kind,
        });
    }
    Ok(())
}

/// Options for [`Scheduler::spawn_with`]: imports, embedder data and
/// resource limits. `SpawnOptions::default()` is what
/// [`Scheduler::spawn`] uses.
#[derive(Default)]
pub struct SpawnOptions {
    /// Resolves the module's imports (none without it).
    pub linker: Option<Arc<Linker>>,
    /// What host functions see through `Caller::data::<T>()`.
    pub data: Option<Box<dyn Any + Send>>,
    /// Fuel budget (about one unit per call and loop iteration, and one per
    /// 16 of operator weight beyond: a division weighs 16); ends the
    /// instance with `Limit::Fuel`.
    pub fuel: Option<u64>,
    /// CPU-time budget (sum of its slices), checked after each slice; ends
    /// it with `Limit::CpuTime`.
    pub cpu_time: Option<Duration>,
    /// Wall-clock deadline, checked at slice boundaries and, while parked,
    /// by the workers' deadline sweep; ends it with `Limit::Deadline`.
    pub deadline: Option<Instant>,
    /// Most bytes of linear memory, table storage (8 bytes per element of
    /// the tables the module defines) and waiting messages together;
    /// `memory.grow` or `table.grow` past it ends the instance with
    /// `Limit::Memory`, and a message that would pass it is refused
    /// ([`crate::SendError::MailboxFull`]). `None`: the scheduler's
    /// [`crate::SchedulerConfig::memory_limit`].
    pub memory: Option<u64>,
    /// An instance that monitors the new one from before it runs, so even
    /// an immediate end is reported with its real reason (charged to that
    /// instance; see [`crate::actors`]).
    pub monitored_by: Option<InstanceHandle>,
    /// An instance linked to the new one from before it runs.
    pub linked_to: Option<InstanceHandle>,
    /// The tenant the instance belongs to (`None`: [`Tenant::DEFAULT`]).
    /// Guests reach (send to, link to, monitor, find by name) only
    /// instances of their own tenant; what a guest spawns joins its
    /// tenant.
    pub tenant: Option<Tenant>,
}

/// A set of instances that may reach each other: a guest sends to, links
/// to, monitors and finds by name only instances of its own tenant, and
/// an id of another tenant's instance answers as an ended one does. The
/// embedder's own calls (through [`InstanceHandle`]s) are not limited.
/// Instances spawned without a tenant share [`Tenant::DEFAULT`]: give
/// guests that must not reach each other tenants of their own
/// ([`Scheduler::new_tenant`], [`SpawnOptions::tenant`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tenant(pub(crate) u64);

impl Tenant {
    /// The tenant of instances spawned without one.
    pub const DEFAULT: Tenant = Tenant(0);
}

impl SpawnOptions {
    /// Default options: no imports, no data, no limits.
    pub fn new() -> SpawnOptions {
        SpawnOptions::default()
    }

    /// Resolve imports with `linker`.
    pub fn linker(mut self, linker: &Arc<Linker>) -> Self {
        self.linker = Some(Arc::clone(linker));
        self
    }

    /// Give host functions `data`.
    pub fn data<T: Any + Send>(mut self, data: T) -> Self {
        self.data = Some(Box::new(data));
        self
    }

    /// Set a fuel budget.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.fuel = Some(fuel);
        self
    }

    /// Set a CPU-time budget.
    pub fn cpu_time(mut self, budget: Duration) -> Self {
        self.cpu_time = Some(budget);
        self
    }

    /// Set a deadline `after` from now.
    pub fn timeout(mut self, after: Duration) -> Self {
        self.deadline = Some(Instant::now() + after);
        self
    }

    /// Set a wall-clock deadline.
    pub fn deadline(mut self, at: Instant) -> Self {
        self.deadline = Some(at);
        self
    }

    /// Set a memory limit in bytes (linear memory plus table storage).
    pub fn memory(mut self, bytes: u64) -> Self {
        self.memory = Some(bytes);
        self
    }

    /// Have `watcher` monitor the new instance from before it runs.
    pub fn monitored_by(mut self, watcher: &InstanceHandle) -> Self {
        self.monitored_by = Some(watcher.clone());
        self
    }

    /// Link the new instance to `other` from before it runs.
    pub fn linked_to(mut self, other: &InstanceHandle) -> Self {
        self.linked_to = Some(other.clone());
        self
    }

    /// Spawn the instance into `tenant` (see [`Tenant`]).
    pub fn tenant(mut self, tenant: Tenant) -> Self {
        self.tenant = Some(tenant);
        self
    }
}

/// What a finished run measured.
pub struct Report {
    /// All workers' metrics merged, plus the instantiate times of spawns
    /// made off the workers.
    pub metrics: Metrics,
    /// Each worker's own metrics (instantiate times only of the spawns its
    /// instances made).
    pub per_worker: Vec<Metrics>,
    /// Wall time from start to shutdown.
    pub wall: Duration,
    /// Worker threads.
    pub workers: usize,
}

/// A set of worker threads that preemptively run instances from a shared
/// slot region. Dropping it shuts it down (cancelling what still runs).
pub struct Scheduler {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<Metrics>>,
    started_at: Mutex<Option<Instant>>,
    capacity: usize,
    /// The origin of the last `spawn_with`, reused by the next one with
    /// the same module, linker and memory limit (both are immutable
    /// behind their `Arc`s): a stream of spawns of one module resolves
    /// and prepares its imports once. Keeps that module alive until
    /// another replaces it.
    last_origin: Mutex<Option<Arc<crate::actors::Origin>>>,
}

impl Scheduler {
    /// Build a scheduler: map the slot region and start the workers (they
    /// wait for [`start`](Self::start) if `config.start_paused`).
    pub fn new(config: SchedulerConfig) -> Result<Scheduler, SchedulerError> {
        if config.workers == 0 {
            return Err(SchedulerError::Config("workers must be at least 1".into()));
        }
        if config.fuel_per_slice == Some(0) {
            return Err(SchedulerError::Config(
                "fuel_per_slice must be at least 1".into(),
            ));
        }
        if config.quantum.is_zero() {
            return Err(SchedulerError::Config("quantum must be positive".into()));
        }
        let region = Arc::new(Region::new(RegionConfig {
            slots: config.capacity,
            stack_size: config.stack_size,
            heap_capacity: config.heap_capacity,
            guard_size: config.guard_size,
            guard_mode: config.guard_mode,
            heap_reservation: 0,
        })?);
        let hz = tsc_hz();
        // Clamp so `start + quantum` cannot overflow: a huge quantum means
        // "practically never preempt", not a deadline in the past.
        let quantum_tsc = duration_to_tsc(config.quantum).clamp(1, u64::MAX / 4);
        let locals: Vec<Queue<Box<Task>>> =
            (0..config.workers).map(|_| Queue::new_fifo()).collect();
        let shared = Arc::new(Shared {
            region,
            injector: Injector::new(),
            stealers: locals.iter().map(|w| w.stealer()).collect(),
            shutdown: AtomicBool::new(false),
            started: Mutex::new(false),
            start_cv: Condvar::new(),
            sleepers: AtomicUsize::new(0),
            waking: AtomicBool::new(false),
            idle_lock: Mutex::new(()),
            idle_cv: Condvar::new(),
            live: AtomicUsize::new(0),
            all_done_lock: Mutex::new(()),
            all_done_cv: Condvar::new(),
            quantum_tsc,
            fuel_per_slice: config.fuel_per_slice,
            conv: TscToNs::new(hz),
            spawn_metrics: Mutex::new(Metrics::default()),
            registry: Registry::new(),
            next_id: AtomicU64::new(1),
            deadlines: Mutex::new(Vec::new()),
            next_deadline: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
            memory_limit: config.instance_memory_limit(),
            mailbox_limits: crate::handle::MailboxLimits {
                messages: config.mailbox_messages,
                bytes: config.mailbox_bytes,
            },
            timers: crate::timers::TimerQueue::new(),
            killed: Mutex::new(Vec::new()),
            killed_len: AtomicUsize::new(0),
            names: Mutex::new(std::collections::HashMap::new()),
            next_tenant: AtomicU64::new(1),
            modules: Mutex::new(std::collections::HashMap::new()),
            capacity: config.capacity,
        });
        let cores = if config.pin_workers {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut threads = Vec::with_capacity(config.workers);
        for (index, local) in locals.into_iter().enumerate() {
            let shared2 = Arc::clone(&shared);
            let core = (!cores.is_empty()).then(|| cores[index % cores.len()]);
            let spawned = std::thread::Builder::new()
                .name(format!("myriad-worker-{index}"))
                .spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    Worker::new(index, local, shared2).run()
                });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    let partial = Scheduler {
                        shared,
                        threads,
                        started_at: Mutex::new(None),
                        capacity: config.capacity,
                        last_origin: Mutex::new(None),
                    };
                    drop(partial);
                    return Err(SchedulerError::Thread(e));
                }
            }
        }
        let s = Scheduler {
            shared,
            threads,
            started_at: Mutex::new(None),
            capacity: config.capacity,
            last_origin: Mutex::new(None),
        };
        if !config.start_paused {
            s.start();
        }
        Ok(s)
    }

    /// Let the workers run (no-op if they already do).
    pub fn start(&self) {
        let mut at = lock(&self.started_at);
        if at.is_none() {
            *at = Some(Instant::now());
        }
        let mut started = lock(&self.shared.started);
        *started = true;
        self.shared.start_cv.notify_all();
    }

    /// Instantiate `export` of `module` with `args` in a free slot and queue
    /// it to run. Fails without side effects when the scheduler is full,
    /// shutting down, or the export or arguments do not match.
    pub fn spawn(
        &self,
        module: &Arc<Module>,
        export: &str,
        args: &[Val],
    ) -> Result<InstanceHandle, SpawnError> {
        self.spawn_with(module, export, args, SpawnOptions::default())
    }

    /// [`spawn`](Self::spawn) with imports resolved by `options.linker`,
    /// embedder data and limits. Never blocks: a full scheduler fails with
    /// [`SpawnError::AtCapacity`].
    pub fn spawn_with(
        &self,
        module: &Arc<Module>,
        export: &str,
        args: &[Val],
        options: SpawnOptions,
    ) -> Result<InstanceHandle, SpawnError> {
        let SpawnOptions {
            linker,
            data,
            fuel,
            cpu_time,
            deadline,
            memory,
            monitored_by,
            linked_to,
            tenant,
        } = options;
        let origin = self.origin_for(module, linker, memory)?;
        let run = RunOptions {
            data,
            fuel,
            cpu_time,
            deadline,
            tenant: tenant.unwrap_or(Tenant::DEFAULT),
        };
        let mut related = Vec::new();
        if let Some(w) = &monitored_by {
            related.push((
                &w.shared,
                Relate {
                    monitor: true,
                    link: false,
                },
            ));
        }
        if let Some(l) = &linked_to {
            related.push((
                &l.shared,
                Relate {
                    monitor: false,
                    link: true,
                },
            ));
        }
        spawn_task(&self.shared, &origin, export, args, run, &related)
            .map(|shared| InstanceHandle { shared })
    }

    /// The origin for spawning `module` with `linker` and `memory`: the
    /// last one if it matches, else a new one (which becomes the last).
    fn origin_for(
        &self,
        module: &Arc<Module>,
        linker: Option<Arc<Linker>>,
        memory: Option<u64>,
    ) -> Result<Arc<crate::actors::Origin>, SpawnError> {
        let mut last = lock(&self.last_origin);
        if let Some(o) = last.as_ref() {
            let same_linker = match (&o.linker, &linker) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            };
            if Arc::ptr_eq(&o.module, module) && same_linker && o.memory == memory {
                return Ok(Arc::clone(o));
            }
        }
        let origin = Arc::new(crate::actors::Origin::new(module, linker, memory)?);
        *last = Some(Arc::clone(&origin));
        Ok(origin)
    }

    /// Register `module` (with `linker` for its imports) under `name`, so
    /// guests of every tenant can spawn it with `myriad.spawn_module`
    /// ([`crate::actors`]); a tenant's own module of that name
    /// ([`Scheduler::register_module_in`]) goes first for its guests.
    /// Replaces an earlier module of that name.
    /// Fails if `linker` cannot resolve the module's imports, or resolves
    /// them to state instances would share ([`SpawnError::SharedImport`]).
    pub fn register_module(
        &self,
        name: &str,
        module: &Arc<Module>,
        linker: Option<&Arc<Linker>>,
    ) -> Result<(), SpawnError> {
        self.register_module_as(None, name, module, linker)
    }

    /// [`Scheduler::register_module`] for the guests of `tenant` only.
    pub fn register_module_in(
        &self,
        tenant: Tenant,
        name: &str,
        module: &Arc<Module>,
        linker: Option<&Arc<Linker>>,
    ) -> Result<(), SpawnError> {
        self.register_module_as(Some(tenant.0), name, module, linker)
    }

    fn register_module_as(
        &self,
        tenant: Option<u64>,
        name: &str,
        module: &Arc<Module>,
        linker: Option<&Arc<Linker>>,
    ) -> Result<(), SpawnError> {
        let origin = crate::actors::Origin::new(module, linker.cloned(), None)?;
        lock(&self.shared.modules).insert((tenant, name.as_bytes().into()), Arc::new(origin));
        Ok(())
    }

    /// Register `name` for the live instance `handle` (see
    /// [`crate::actors`]: at most 8 names per instance, each 1 to 64
    /// bytes; freed when it ends).
    pub fn register(&self, name: &str, handle: &InstanceHandle) -> Result<(), ActorError> {
        crate::actors::register(&handle.shared, name.as_bytes())
    }

    /// Remove `handle`'s registration of `name`.
    pub fn unregister(&self, name: &str, handle: &InstanceHandle) -> Result<(), ActorError> {
        crate::actors::unregister(&handle.shared, name.as_bytes())
    }

    /// The live instance of [`Tenant::DEFAULT`] registered as `name`.
    pub fn whereis(&self, name: &str) -> Option<InstanceHandle> {
        self.whereis_in(Tenant::DEFAULT, name)
    }

    /// The live instance of `tenant` registered as `name`.
    pub fn whereis_in(&self, tenant: Tenant, name: &str) -> Option<InstanceHandle> {
        let id = crate::actors::whereis(&self.shared, tenant.0, name.as_bytes()).ok()??;
        self.handle(id)
    }

    /// A new tenant, shared by no instance yet (see [`Tenant`]).
    pub fn new_tenant(&self) -> Tenant {
        Tenant(self.shared.next_tenant.fetch_add(1, Ordering::Relaxed))
    }

    /// A handle to the live instance with id `id`.
    pub fn handle(&self, id: u64) -> Option<InstanceHandle> {
        self.shared
            .lookup(id)
            .map(|shared| InstanceHandle { shared })
    }

    /// Send `message` to the instance with id `id` (see
    /// [`InstanceHandle::send`]).
    pub fn send(&self, id: u64, message: impl Into<Message>) -> Result<(), SendError> {
        let target = self
            .shared
            .lookup(id)
            .ok_or(SendError::NoSuchInstance(id))?;
        deliver(
            &target,
            std::borrow::Cow::Owned(message.into()),
            self.shared.mailbox_limits,
        )
    }

    /// Entries in the timer queue (sleeps and receive timeouts), stale
    /// ones not yet purged included: a diagnostic that stays within about
    /// twice the live instances (and at least 1,024).
    pub fn pending_timers(&self) -> usize {
        self.shared.timers.len()
    }

    /// Most instances alive at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Instances spawned and not yet ended.
    pub fn live(&self) -> usize {
        self.shared.live.load(Ordering::Acquire)
    }

    /// Slots free for new instances right now.
    pub fn free_slots(&self) -> usize {
        self.shared.region.free_slots()
    }

    /// The slot region instances live in.
    pub fn region(&self) -> &Arc<Region> {
        &self.shared.region
    }

    /// Block until no instance is alive, or `timeout` passes; returns
    /// whether everything ended.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = lock(&self.shared.all_done_lock);
        while self.live() > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = self
                .shared
                .all_done_cv
                .wait_timeout(g, (deadline - now).min(Duration::from_millis(10)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Stop: cancel every instance still alive (each is torn down and its
    /// handle joins as `Cancelled`), stop the workers and merge their metrics.
    pub fn shutdown(mut self) -> Report {
        self.stop()
    }

    fn stop(&mut self) -> Report {
        self.shared.shutdown.store(true, Ordering::Release);
        self.start(); // paused workers must wake to drain
        self.shared.wake_all();
        let wall = lock(&self.started_at)
            .map(|t| t.elapsed())
            .unwrap_or_default();
        let mut per_worker = Vec::new();
        for t in self.threads.drain(..) {
            match t.join() {
                Ok(m) => per_worker.push(m),
                Err(_) => per_worker.push(Metrics::default()),
            }
        }
        let stranded = shared::cancel_stranded(&self.shared);
        let mut metrics = lock(&self.shared.spawn_metrics).clone();
        for m in &per_worker {
            metrics.merge(m);
        }
        metrics.merge(&stranded);
        Report {
            metrics,
            workers: per_worker.len(),
            per_worker,
            wall,
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop();
        }
    }
}

/// How a new instance relates to the instance that spawns it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Relate {
    /// The parent monitors the child.
    pub(crate) monitor: bool,
    /// Parent and child are linked.
    pub(crate) link: bool,
}

/// What a spawn adds to its [`crate::actors::Origin`]: the embedder data
/// and the limits that are not inherited.
#[derive(Default)]
pub(crate) struct RunOptions {
    pub(crate) data: Option<Box<dyn Any + Send>>,
    pub(crate) fuel: Option<u64>,
    pub(crate) cpu_time: Option<Duration>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) tenant: Tenant,
}

impl Default for Tenant {
    fn default() -> Tenant {
        Tenant::DEFAULT
    }
}

/// Instantiate `export` of `origin`'s module with `args` in a free slot and
/// queue it (on this worker if called from one of this scheduler's host
/// functions); with `parent`, set up the monitor or link before the child
/// can run (so a child that ends at once is still reported), for each of
/// the `related` instances. Fails without side effects.
pub(crate) fn spawn_task(
    shared: &Arc<Shared>,
    origin: &Arc<crate::actors::Origin>,
    export: &str,
    args: &[Val],
    options: RunOptions,
    related: &[(&Arc<HandleShared>, Relate)],
) -> Result<Arc<HandleShared>, SpawnError> {
    if shared.shutdown.load(Ordering::Acquire) {
        return Err(SpawnError::ShuttingDown);
    }
    let RunOptions {
        data,
        fuel,
        cpu_time,
        deadline,
        tenant,
    } = options;
    let map = |e: InstantiateError| {
        if matches!(e, InstantiateError::RegionFull) {
            SpawnError::AtCapacity {
                capacity: shared.capacity,
            }
        } else {
            SpawnError::Instantiate(e)
        }
    };
    let module = &origin.module;
    let t = rdtsc();
    let mut instance = if origin.linker.is_none() && data.is_none() {
        Instance::new(&shared.region, module, export, args).map_err(map)?
    } else {
        let mut inst = Instance::instantiate_imports(&shared.region, module, &origin.imports, data)
            .map_err(map)?;
        inst.call(export, args).map_err(map)?;
        inst
    };
    if let Some(f) = fuel {
        instance.set_fuel_limit(f);
    }
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let handle = HandleShared::new(
        id,
        Arc::downgrade(shared),
        Some(Arc::clone(origin)),
        tenant.0,
    );
    // The mailbox is charged to the instance's memory limit: the
    // handle holds the account the instance publishes its use to.
    let memory = origin.memory.unwrap_or(shared.memory_limit);
    if memory != u64::MAX {
        instance.set_memory_account(handle.clone());
        instance.set_memory_limit(memory);
    }
    let cpu_budget = cpu_time.map_or(u64::MAX, duration_to_tsc);
    if related.is_empty() {
        let ns = shared.conv.ns(rdtsc().saturating_sub(t));
        if !crate::worker::record_instantiate_here(shared, ns) {
            lock(&shared.spawn_metrics)
                .instantiate
                .saturating_record(ns);
        }
    }
    shared.registry.insert(&handle);
    shared.live.fetch_add(1, Ordering::AcqRel);
    let task = Box::new(Task {
        instance,
        handle: Arc::clone(&handle),
        last_end: 0,
        slices: 0,
        cpu_cycles: 0,
        cpu_budget,
        deadline,
        wake_at: None,
    });
    // The child has not run: no relation can miss its end. If an
    // instance cannot pay for what was asked, the child is undone (its
    // retirement removes the relations already made, silently: nobody
    // was told of a child that never was).
    for (p, relate) in related {
        let made = if relate.monitor {
            crate::actors::monitor(p, id, Some(&handle))
        } else {
            Ok(())
        }
        .and_then(|()| {
            if relate.link {
                crate::actors::link(p, id, Some(&handle))
            } else {
                Ok(())
            }
        });
        if let Err(e) = made {
            for (q, _) in related {
                let _ = crate::actors::demonitor(q, id);
                let _ = crate::actors::unlink(q, id);
            }
            shared.retire_off_worker(*task, Err(crate::InstanceError::Cancelled));
            return Err(match e {
                crate::ActorError::Ended(who) if who == p.id => SpawnError::RelatedEnded(who),
                _ => SpawnError::NoRoom,
            });
        }
    }
    if let Err(task) = crate::worker::queue_here(task) {
        shared.injector.push(task);
        shared.wake_one();
    }
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use myriad_runtime::{CompileConfig, Linker};

    /// Compile `wat` into a private (0700) cache directory under the
    /// system's temporary directory, and load it.
    fn module(wat: &str) -> Arc<Module> {
        let wasm = wat::parse_str(wat).expect("test WAT assembles");
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let cache = std::env::temp_dir().join(format!(
            "myriad-scheduler-unit-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(&cache)
            .expect("create the artifact cache");
        let m = Module::compile(&wasm, &CompileConfig::default(), &cache).expect("compiles");
        let _ = std::fs::remove_dir_all(&cache);
        Arc::new(m)
    }

    fn linker() -> Arc<Linker> {
        let mut l = Linker::new();
        crate::messaging::add_to_linker(&mut l);
        Arc::new(l)
    }

    /// `wait(n)`: `n` receives of at most 1 µs each (every one parks
    /// with a timer), then the end.
    const PARKER: &str = r#"(module
      (import "myriad" "recv_msg" (func $recv_msg (param i32 i32 i64) (result i64)))
      (memory 1)
      (func (export "wait") (param $n i32)
        (loop $l
          (drop (call $recv_msg (i32.const 0) (i32.const 64) (i64.const 1000)))
          (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))"#;

    fn config() -> SchedulerConfig {
        SchedulerConfig {
            workers: 2,
            capacity: 64,
            pin_workers: false,
            ..SchedulerConfig::default()
        }
    }

    #[test]
    fn an_instance_with_a_deadline_is_watched_once_however_often_it_parks() {
        let s = Scheduler::new(config()).expect("scheduler");
        let m = module(PARKER);
        let opts = || {
            SpawnOptions::new()
                .linker(&linker())
                .timeout(Duration::from_secs(3600))
        };
        let a = s
            .spawn_with(&m, "wait", &[Val::I32(2_000)], opts())
            .expect("spawn");
        let b = s
            .spawn_with(&m, "wait", &[Val::I32(2_000)], opts())
            .expect("spawn");
        assert!(a.join().is_ok() && b.join().is_ok());
        // An entry per park was 4,000 entries here (and 95 MiB a second
        // for two instances in ping-pong).
        let entries = lock(&s.shared.deadlines).len();
        assert!(entries <= 2, "{entries} deadline entries for 2 instances");
        s.shutdown();
    }

    #[test]
    fn deadline_entries_of_ended_instances_are_purged() {
        let s = Scheduler::new(config()).expect("scheduler");
        let m = module(PARKER);
        let l = linker();
        let mut spawned = 0;
        while spawned < 4_000 {
            let opts = SpawnOptions::new()
                .linker(&l)
                .timeout(Duration::from_secs(3600));
            match s.spawn_with(&m, "wait", &[Val::I32(1)], opts) {
                Ok(_) => spawned += 1,
                Err(_) => std::thread::sleep(Duration::from_micros(100)),
            }
        }
        assert!(s.wait_idle(Duration::from_secs(60)));
        // Each kept its handle's memory alive until the first deadline
        // passed (an hour); now at most about one entry per live instance,
        // or the purge's floor.
        let entries = lock(&s.shared.deadlines).len();
        assert!(
            entries <= 1_025,
            "{entries} deadline entries, 0 instances live"
        );
        s.shutdown();
    }
}
