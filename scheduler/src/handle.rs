//! Handles to spawned instances: join, cancel, state, statistics,
//! park/resume and mailboxes.

use crate::shared::{Shared, Task};
use crate::sync::lock;
use myriad_runtime::{HasMemoryAccount, Limit, MemoryAccount, TrapKind, Val};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// Where an instance is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceState {
    /// Waiting in a run queue.
    Runnable,
    /// Executing on a worker.
    Running,
    /// Its entry function returned.
    Finished,
    /// A trap ended it.
    Trapped,
    /// Cancelled before it finished.
    Cancelled,
    /// A host function ended it with an exit code.
    Exited,
    /// A resource limit ended it.
    Limited,
    /// A host function parked it; it waits for
    /// [`InstanceHandle::resume`] or a message, using no CPU and no queue
    /// slot.
    Parked,
    /// A host function put it to sleep ([`myriad_runtime::HostAction::Sleep`],
    /// WASI `poll_oneoff` on a clock); the scheduler's timer queues it
    /// again when the time comes. Like a parked instance it uses no CPU
    /// and no queue slot, but [`InstanceHandle::resume`] does not wake it.
    Sleeping,
}

impl InstanceState {
    fn from_u8(v: u8) -> InstanceState {
        match v {
            0 => InstanceState::Runnable,
            1 => InstanceState::Running,
            2 => InstanceState::Finished,
            3 => InstanceState::Trapped,
            4 => InstanceState::Cancelled,
            5 => InstanceState::Exited,
            6 => InstanceState::Limited,
            7 => InstanceState::Parked,
            _ => InstanceState::Sleeping,
        }
    }

    /// Whether the instance has ended (finished, trapped or cancelled).
    pub fn is_done(self) -> bool {
        matches!(
            self,
            InstanceState::Finished
                | InstanceState::Trapped
                | InstanceState::Cancelled
                | InstanceState::Exited
                | InstanceState::Limited
        )
    }
}

/// Why an instance produced no results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InstanceError {
    /// A trap ended the instance.
    #[error("instance trapped: {0}")]
    Trap(TrapKind),
    /// The instance was cancelled (by its handle or scheduler shutdown).
    #[error("instance was cancelled")]
    Cancelled,
    /// A host function ended the instance with this exit code.
    #[error("instance exited with code {0}")]
    Exited(i32),
    /// A resource limit ended the instance.
    #[error("instance stopped: {0}")]
    Limit(Limit),
    /// The instance was linked to instance `{0}`, which ended abnormally,
    /// and did not trap exits ([`crate::actors`]).
    #[error("instance was ended by the abnormal end of linked instance {0}")]
    Killed(u64),
}

/// What an instance's entry function returned, or why it did not.
pub type InstanceResult = Result<Vec<Val>, InstanceError>;

/// Per-instance counters, updated as it runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InstanceStats {
    /// Time slices it has run.
    pub slices: u64,
    /// Time spent in its slices, in nanoseconds.
    pub cpu_ns: u64,
}

/// Why [`InstanceHandle::resume`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// The instance is queued to run or sleeping, not parked.
    #[error("instance is not parked")]
    NotParked,
    /// The instance has ended.
    #[error("instance has ended")]
    Ended,
    /// A resume is already waiting for the instance to finish parking.
    #[error("a resume is already pending")]
    AlreadyPending,
    /// The values do not fit the parked host function's results.
    #[error("resume values do not fit the parked host function")]
    BadValues,
}

/// Why a message could not be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No live instance has this id (it never existed or has ended).
    #[error("no live instance with id {0}")]
    NoSuchInstance(u64),
    /// The receiver's mailbox holds as many messages or bytes as it may
    /// ([`crate::SchedulerConfig::mailbox_messages`],
    /// [`crate::SchedulerConfig::mailbox_bytes`]), or the message would
    /// take the receiver past its memory limit. Nothing was queued; the
    /// sender may retry after the receiver has read some.
    #[error("the mailbox of instance {0} is full")]
    MailboxFull(u64),
}

/// A message in an instance's mailbox: a byte string.
pub type Message = Vec<u8>;

/// What kind of message a mailbox entry is: one another instance or the
/// embedder sent, or a system message the scheduler made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MessageKind {
    /// An ordinary message (`send`).
    Data = 0,
    /// A monitored instance ended: a [`crate::SystemMessage`].
    Down = 1,
    /// A linked instance ended and this one traps exits: a
    /// [`crate::SystemMessage`].
    Exit = 2,
}

/// A mailbox entry: the bytes, their kind and what they are charged.
pub(crate) struct Envelope {
    pub(crate) kind: MessageKind,
    pub(crate) bytes: Vec<u8>,
    /// Bytes charged to the receiver's account while it waits.
    pub(crate) cost: u64,
}

/// What a `recv` parked in the mailbox waits with: the guest buffer,
/// whether the caller wants the kind in the result (`recv_msg`) and when
/// it gives up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecvWait {
    pub(crate) ptr: u32,
    pub(crate) cap: u32,
    /// `recv_msg`: the result is an i64 carrying the kind.
    pub(crate) tagged: bool,
    /// Give up at this instant (`recv_msg` with a timeout).
    pub(crate) until: Option<Instant>,
}

/// The low half of `recv_msg`'s result when the timeout passed first.
pub const RECV_TIMEOUT: i32 = i32::MIN + 1;

/// Bytes a waiting message is charged besides its contents (its queue
/// entry and allocation header), so a flood of empty messages is bounded
/// too.
pub const MESSAGE_OVERHEAD: u64 = 32;

/// What one instance's mailbox may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MailboxLimits {
    /// Most messages.
    pub(crate) messages: usize,
    /// Most bytes, counting [`MESSAGE_OVERHEAD`] per message.
    pub(crate) bytes: u64,
}

/// The bytes `message` is charged while it waits.
fn message_cost(message: &[u8]) -> u64 {
    message.len() as u64 + MESSAGE_OVERHEAD
}

/// Links, monitors and registered names of one instance (under its slot
/// lock). Each monitor or link entry was charged to an instance's memory
/// account when it was made (see [`crate::actors`]).
#[derive(Default)]
pub(crate) struct Relations {
    /// Ids of instances that monitor this one (one entry per monitor).
    pub(crate) watchers: Vec<u64>,
    /// Ids of instances this one monitors (one entry per monitor).
    pub(crate) monitoring: Vec<u64>,
    /// Ids of instances linked to this one.
    pub(crate) links: Vec<u64>,
    /// Names registered for this instance.
    pub(crate) names: Vec<Box<[u8]>>,
}

/// What a parked instance's slot holds, guarded by one mutex per instance.
#[derive(Default)]
pub(crate) struct ParkSlot {
    /// The parked or sleeping task (Some only while state is `Parked` or
    /// `Sleeping`).
    pub(crate) task: Option<Box<Task>>,
    /// Results of a resume that arrived while the instance ran; consumed by
    /// its next park.
    pub(crate) pending: Option<Vec<Val>>,
    /// Messages not yet received (what they are charged is the handle's
    /// `account.external()`).
    pub(crate) mailbox: VecDeque<Envelope>,
    /// Bytes the ordinary messages in `mailbox` are charged (what the
    /// mailbox byte bound counts; system messages are prepaid and
    /// bounded by the relations that make them).
    pub(crate) mailbox_bytes: u64,
    /// The `myriad.recv`/`recv_msg` the instance is blocked in.
    pub(crate) recv_wait: Option<RecvWait>,
    /// Set, under this lock, when the instance ends: no monitor, link or
    /// name is added after it (they get the "already ended" answer).
    pub(crate) ended: bool,
    /// Monitors, links and names.
    pub(crate) relations: Relations,
    /// Whether `Shared::deadlines` holds an entry for this instance: a
    /// handle has one deadline for its life, so one entry is enough
    /// however often it parks (an entry per park grew the list by
    /// 95 MiB a second for two instances in ping-pong). Set by the park
    /// or sleep that adds the entry; cleared by the sweep that finds the
    /// instance running when its deadline passes, so its next park adds
    /// one again (and the next sweep ends it).
    pub(crate) deadline_watched: bool,
}

impl ParkSlot {
    /// Whether the task in the slot sleeps until the timer wakes it (its
    /// `wake_at` is set): it waits for no values, so `resume` and messages
    /// leave it where it is.
    pub(crate) fn is_sleeping(&self) -> bool {
        self.task.as_ref().is_some_and(|t| t.wake_at.is_some())
    }
}

/// State shared between a handle and the worker running the instance.
pub(crate) struct HandleShared {
    pub(crate) id: u64,
    pub(crate) sched: Weak<Shared>,
    /// The instance's memory account: its mailbox is charged there, and
    /// nothing else, so `account.external()` is what the mailbox holds.
    pub(crate) account: MemoryAccount,
    pub(crate) slot: Mutex<ParkSlot>,
    /// The last instance this one sent to (see [`crate::send_cache`]).
    pub(crate) send_cache: crate::send_cache::SendCache,
    state: AtomicU8,
    pub(crate) cancel: AtomicBool,
    /// Id of the linked instance whose abnormal end killed this one (0:
    /// none); read when a pending cancel is carried out.
    pub(crate) killed_by: AtomicU64,
    /// Whether exits of linked instances arrive as messages instead of
    /// ending this one (Erlang's `trap_exit`).
    pub(crate) trap_exit: AtomicBool,
    /// Generation of the handle's newest timer entry (see
    /// `Shared::add_timer`); older entries are stale.
    pub(crate) timer_generation: AtomicU64,
    /// What this instance was spawned from, for `myriad.spawn` of its own
    /// module.
    pub(crate) origin: Option<Arc<crate::actors::Origin>>,
    /// Its tenant (`crate::Tenant`): the instances its guest may reach.
    pub(crate) tenant: u64,
    slices: AtomicU64,
    cpu_ns: AtomicU64,
    result: Mutex<ResultSlot>,
    /// Signalled when the result is set, if anyone waits.
    done: Condvar,
}

/// The final result of an instance and how many threads wait for it.
#[derive(Default)]
struct ResultSlot {
    result: Option<InstanceResult>,
    /// Threads blocked in `join`/`join_timeout`: the end notifies the
    /// condvar only when there are some (a notify is a system call, and
    /// most instances, e.g. those guests spawn, are never joined).
    waiters: u32,
}

impl HandleShared {
    pub(crate) fn new(
        id: u64,
        sched: Weak<Shared>,
        origin: Option<Arc<crate::actors::Origin>>,
        tenant: u64,
    ) -> Arc<HandleShared> {
        Arc::new(HandleShared {
            id,
            sched,
            account: MemoryAccount::new(),
            slot: Mutex::new(ParkSlot::default()),
            send_cache: Default::default(),
            state: AtomicU8::new(InstanceState::Runnable as u8),
            cancel: AtomicBool::new(false),
            killed_by: AtomicU64::new(0),
            trap_exit: AtomicBool::new(false),
            timer_generation: AtomicU64::new(0),
            origin,
            tenant,
            slices: AtomicU64::new(0),
            cpu_ns: AtomicU64::new(0),
            result: Mutex::new(ResultSlot::default()),
            done: Condvar::new(),
        })
    }

    pub(crate) fn lock_slot(&self) -> MutexGuard<'_, ParkSlot> {
        lock(&self.slot)
    }

    /// Why a pending cancel ends the instance: killed by a link, or
    /// cancelled.
    pub(crate) fn cancel_error(&self) -> InstanceError {
        match self.killed_by.load(Ordering::Acquire) {
            0 => InstanceError::Cancelled,
            by => InstanceError::Killed(by),
        }
    }

    pub(crate) fn state(&self) -> InstanceState {
        InstanceState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn set_state(&self, s: InstanceState) {
        self.state.store(s as u8, Ordering::Release);
    }

    /// Publish the counters of a task (one relaxed store each).
    pub(crate) fn publish_stats(&self, slices: u64, cpu_ns: u64) {
        self.slices.store(slices, Ordering::Relaxed);
        self.cpu_ns.store(cpu_ns, Ordering::Relaxed);
    }

    /// Record the final result and wake joiners. Called exactly once.
    pub(crate) fn complete(&self, result: InstanceResult) {
        let state = match &result {
            Ok(_) => InstanceState::Finished,
            Err(InstanceError::Trap(_)) => InstanceState::Trapped,
            Err(InstanceError::Cancelled | InstanceError::Killed(_)) => InstanceState::Cancelled,
            Err(InstanceError::Exited(_)) => InstanceState::Exited,
            Err(InstanceError::Limit(_)) => InstanceState::Limited,
        };
        let mut slot = lock(&self.result);
        slot.result = Some(result);
        self.set_state(state);
        // Read under the lock: a joiner counts itself under it before it
        // waits, so either it sees the result or it is counted here.
        let waiters = slot.waiters;
        drop(slot);
        if waiters > 0 {
            self.done.notify_all();
        }
    }
}

/// A handle to a spawned instance. Cloning gives another handle to the same
/// instance; dropping every handle detaches the instance (it still runs).
#[derive(Clone)]
pub struct InstanceHandle {
    pub(crate) shared: Arc<HandleShared>,
}

impl std::fmt::Debug for InstanceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceHandle")
            .field("id", &self.id())
            .field("state", &self.state())
            .finish()
    }
}

impl InstanceHandle {
    /// Block until the instance ends and return its results or why it ended.
    pub fn join(&self) -> InstanceResult {
        let mut slot = lock(&self.shared.result);
        loop {
            if let Some(r) = slot.result.as_ref() {
                return r.clone();
            }
            slot.waiters += 1;
            slot = self
                .shared
                .done
                .wait(slot)
                .unwrap_or_else(|e| e.into_inner());
            slot.waiters -= 1;
        }
    }

    /// Like [`join`](Self::join) but gives up after `timeout`, returning `None`.
    pub fn join_timeout(&self, timeout: Duration) -> Option<InstanceResult> {
        let deadline = Instant::now() + timeout;
        let mut slot = lock(&self.shared.result);
        loop {
            if let Some(r) = slot.result.as_ref() {
                return Some(r.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            slot.waiters += 1;
            slot = self
                .shared
                .done
                .wait_timeout(slot, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            slot.waiters -= 1;
        }
    }

    /// The result if the instance has ended, without blocking.
    pub fn try_result(&self) -> Option<InstanceResult> {
        lock(&self.shared.result).result.clone()
    }

    /// Ask the scheduler to end the instance. It stops at its next time
    /// slice boundary (or before its first) and joins as `Cancelled`, unless
    /// it ended first. A parked instance is retired at once (its slot is
    /// free when this returns).
    pub fn cancel(&self) {
        self.shared.cancel.store(true, Ordering::Release);
        let task = self.shared.lock_slot().task.take();
        if let Some(task) = task {
            match self.shared.sched.upgrade() {
                Some(sched) => sched.retire_off_worker(*task, Err(InstanceError::Cancelled)),
                None => drop(task),
            }
        }
    }

    /// The instance's current state.
    pub fn state(&self) -> InstanceState {
        self.shared.state()
    }

    /// The instance's id, unique within its scheduler (the address for
    /// messages).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Make a parked instance runnable again: `values` become the results
    /// of the host function that parked it. Callable from any thread,
    /// including a host function of another instance.
    ///
    /// If the instance is running (a host function may be about to park
    /// it), the resume is remembered and applied when it parks (at most one
    /// such pending resume). Fails if the instance is queued to run or
    /// sleeping ([`ResumeError::NotParked`]) or has ended.
    pub fn resume(&self, values: &[Val]) -> Result<(), ResumeError> {
        let mut slot = self.shared.lock_slot();
        if slot.is_sleeping() {
            return Err(ResumeError::NotParked);
        }
        if let Some(mut task) = slot.task.take() {
            if task.instance.unpark(values).is_err() {
                slot.task = Some(task);
                return Err(ResumeError::BadValues);
            }
            slot.recv_wait = None;
            self.shared.set_state(InstanceState::Runnable);
            drop(slot);
            crate::shared::requeue(task);
            return Ok(());
        }
        match self.shared.state() {
            InstanceState::Running => {
                if slot.pending.is_some() {
                    return Err(ResumeError::AlreadyPending);
                }
                slot.pending = Some(values.to_vec());
                Ok(())
            }
            s if s.is_done() => Err(ResumeError::Ended),
            _ => Err(ResumeError::NotParked),
        }
    }

    /// Put `message` in the instance's mailbox; if it is blocked in
    /// `myriad.recv`, the message is copied into its memory and it resumes.
    pub fn send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        let Some(sched) = self.shared.sched.upgrade() else {
            return Err(SendError::NoSuchInstance(self.shared.id));
        };
        deliver(
            &self.shared,
            Cow::Owned(message.into()),
            sched.mailbox_limits,
        )
    }

    /// Make `watcher` receive a [`MessageKind::Down`] message when this
    /// instance ends (at once if it already has). The entry is charged to
    /// the watcher's memory limit. See [`crate::actors`].
    pub fn monitor_by(&self, watcher: &InstanceHandle) -> Result<(), crate::ActorError> {
        crate::actors::monitor(&watcher.shared, self.shared.id, Some(&self.shared))
    }

    /// Link this instance and `other`: when one ends abnormally, the other
    /// ends too, unless it traps exits (then it receives a
    /// [`MessageKind::Exit`] message). See [`crate::actors`].
    pub fn link(&self, other: &InstanceHandle) -> Result<(), crate::ActorError> {
        crate::actors::link(&self.shared, other.shared.id, Some(&other.shared))
    }

    /// Receive exits of linked instances as messages (`true`) or be ended
    /// by their abnormal ends (`false`, the default); returns the previous
    /// setting.
    pub fn set_trap_exit(&self, on: bool) -> bool {
        self.shared.trap_exit.swap(on, Ordering::AcqRel)
    }

    /// Messages waiting in the instance's mailbox.
    pub fn mailbox_len(&self) -> usize {
        self.shared.lock_slot().mailbox.len()
    }

    /// Slices run and CPU time so far.
    pub fn stats(&self) -> InstanceStats {
        InstanceStats {
            slices: self.shared.slices.load(Ordering::Relaxed),
            cpu_ns: self.shared.cpu_ns.load(Ordering::Relaxed),
        }
    }
}

impl HasMemoryAccount for HandleShared {
    fn memory_account(&self) -> &MemoryAccount {
        &self.account
    }
}

/// Queue `message` for `target`, waking it if it is parked in `recv`.
/// Refused when the mailbox is full (`limits`) or the message would take
/// the receiver past its memory limit.
pub(crate) fn deliver(
    target: &HandleShared,
    message: Cow<'_, [u8]>,
    limits: MailboxLimits,
) -> Result<(), SendError> {
    if target.state().is_done() {
        return Err(SendError::NoSuchInstance(target.id));
    }
    let cost = message_cost(&message);
    let mut slot = target.lock_slot();
    if slot.ended {
        return Err(SendError::NoSuchInstance(target.id));
    }
    // The receiver waits in `recv` with nothing queued before this
    // message: copy it straight into its buffer. The message is never
    // held, so it is neither allocated nor charged; but only a message the
    // mailbox bounds would take is handed over, so whether a send is
    // accepted does not depend on whether the receiver waits yet.
    if slot.mailbox.is_empty() && limits.messages > 0 && cost <= limits.bytes {
        if let Some(task) = hand_over(&mut slot, &message) {
            target.set_state(InstanceState::Runnable);
            drop(slot);
            crate::shared::requeue(task);
            return Ok(());
        }
    }
    // Refused before the copy: a message the mailbox can never take (a
    // 32 MiB send to a 64 KiB mailbox) was copied on every attempt, 12 ms
    // a slice.
    if slot.mailbox.len() >= limits.messages
        || slot.mailbox_bytes.saturating_add(cost) > limits.bytes
        || !target.account.try_charge(cost)
    {
        return Err(SendError::MailboxFull(target.id));
    }
    let message = message.into_owned();
    slot.mailbox_bytes += cost;
    let envelope = Envelope {
        kind: MessageKind::Data,
        bytes: message,
        cost,
    };
    push_and_wake(target, slot, envelope);
    Ok(())
}

/// Queue a system message whose cost the receiver already carries (the
/// charge of the monitor or link it comes from): never refused, so no
/// down or exit notice is lost. A receiver that has ended drops it and
/// its charge with its account.
pub(crate) fn deliver_prepaid(target: &HandleShared, kind: MessageKind, bytes: Vec<u8>, cost: u64) {
    let slot = target.lock_slot();
    if slot.ended {
        target.account.release(cost);
        return;
    }
    push_and_wake(target, slot, Envelope { kind, bytes, cost });
}

/// Append `envelope` to the mailbox in `slot` (the lock of `target`) and
/// complete a `recv` the instance is parked in.
fn push_and_wake(target: &HandleShared, mut slot: MutexGuard<'_, ParkSlot>, envelope: Envelope) {
    slot.mailbox.push_back(envelope);
    if slot.recv_wait.is_some() {
        if let Some(mut task) = slot.task.take() {
            complete_recv(&mut slot, &mut task);
            target.set_state(InstanceState::Runnable);
            drop(slot);
            crate::shared::requeue(task);
        }
    }
}

/// Finish the `myriad.recv` or `recv_msg` that `task` is parked in with
/// the first message of `slot`'s mailbox (which must not be empty): copy
/// it to the guest's buffer and unpark with its length (or `-len` if it
/// does not fit, leaving it queued), tagged with its kind for `recv_msg`.
pub(crate) fn complete_recv(slot: &mut ParkSlot, task: &mut Task) {
    let Some(wait) = slot.recv_wait.take() else {
        return;
    };
    task.wake_at = None;
    let (result, kind) = recv_into(
        slot,
        &task.handle.account,
        task.instance.memory_mut(),
        wait.ptr,
        wait.cap,
    );
    // The parked host function has one result of this type, so this
    // cannot fail.
    let _ = task
        .instance
        .unpark(&[recv_result(wait.tagged, result, kind)]);
}

/// If the instance of `slot` is parked in `recv`/`recv_msg` with a buffer
/// that `message` fits, copy the message there, unpark it with the length
/// and return its task (to be queued once the lock is dropped); otherwise
/// change nothing. For an empty mailbox only: it is what
/// [`complete_recv`] would do with `message` queued alone.
fn hand_over(slot: &mut ParkSlot, message: &[u8]) -> Option<Box<Task>> {
    let wait = slot.recv_wait?;
    let task = slot.task.as_mut()?;
    let len = message.len();
    // (`cap` is a u32 the guest chose; the length must also fit the i32
    // result.)
    if len > wait.cap as usize || i32::try_from(len).is_err() {
        return None;
    }
    let start = wait.ptr as usize;
    let dst = task.instance.memory_mut().get_mut(start..start + len)?;
    dst.copy_from_slice(message);
    slot.recv_wait = None;
    let mut task = slot.task.take()?;
    task.wake_at = None;
    // The parked host function has one result of this type, so this
    // cannot fail.
    let _ = task
        .instance
        .unpark(&[recv_result(wait.tagged, len as i32, MessageKind::Data)]);
    // It runs soon (next, on this worker's LIFO stack): start loading the
    // lines its resume reads while the sender finishes its slice.
    task.instance.prefetch_host_return();
    Some(task)
}

/// End the `recv_msg` `task` is parked in with [`RECV_TIMEOUT`].
pub(crate) fn time_out_recv(slot: &mut ParkSlot, task: &mut Task) {
    let Some(wait) = slot.recv_wait.take() else {
        return;
    };
    task.wake_at = None;
    let _ = task
        .instance
        .unpark(&[recv_result(wait.tagged, RECV_TIMEOUT, MessageKind::Data)]);
}

/// The result value of `recv` (`i32`) or `recv_msg` (`i64`: the kind in
/// the high half, the `recv` result in the low half).
pub(crate) fn recv_result(tagged: bool, result: i32, kind: MessageKind) -> Val {
    if tagged {
        Val::I64(((kind as u64) << 32 | u64::from(result as u32)) as i64)
    } else {
        Val::I32(result)
    }
}

/// Move the first message of `slot`'s mailbox to `memory[ptr..ptr+cap]`
/// and give its charge back to `account`; returns its length (`-len` if it
/// is longer than `cap`, and it stays queued; `i32::MIN` if the buffer is
/// out of bounds) and its kind. The mailbox must not be empty.
pub(crate) fn recv_into(
    slot: &mut ParkSlot,
    account: &MemoryAccount,
    memory: &mut [u8],
    ptr: u32,
    cap: u32,
) -> (i32, MessageKind) {
    let mailbox = &mut slot.mailbox;
    let Some((len, kind)) = mailbox.front().map(|m| (m.bytes.len(), m.kind)) else {
        return (-1, MessageKind::Data);
    };
    if len > cap as usize {
        return (-(len.min(i32::MAX as usize) as i32), kind);
    }
    let start = ptr as usize;
    let Some(dst) = memory.get_mut(start..start + len) else {
        return (i32::MIN, kind);
    };
    let Some(msg) = mailbox.pop_front() else {
        return (-1, kind);
    };
    dst.copy_from_slice(&msg.bytes);
    account.release(msg.cost);
    if msg.kind == MessageKind::Data {
        slot.mailbox_bytes = slot.mailbox_bytes.saturating_sub(msg.cost);
    }
    (len as i32, kind)
}
