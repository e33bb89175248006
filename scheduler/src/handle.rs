//! Handles to spawned instances: join, cancel, state, statistics,
//! park/resume and mailboxes.

use crate::shared::{Shared, Task};
use crate::sync::lock;
use myriad_runtime::{HasMemoryAccount, Limit, MemoryAccount, TrapKind, Val};
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
fn message_cost(message: &Message) -> u64 {
    message.len() as u64 + MESSAGE_OVERHEAD
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
    pub(crate) mailbox: VecDeque<Message>,
    /// `(ptr, cap)` of the `myriad.recv` the instance is blocked in.
    pub(crate) recv_wait: Option<(u32, u32)>,
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
    state: AtomicU8,
    pub(crate) cancel: AtomicBool,
    slices: AtomicU64,
    cpu_ns: AtomicU64,
    result: Mutex<Option<InstanceResult>>,
    done: Condvar,
}

impl HandleShared {
    pub(crate) fn new(id: u64, sched: Weak<Shared>) -> Arc<HandleShared> {
        Arc::new(HandleShared {
            id,
            sched,
            account: MemoryAccount::new(),
            slot: Mutex::new(ParkSlot::default()),
            state: AtomicU8::new(InstanceState::Runnable as u8),
            cancel: AtomicBool::new(false),
            slices: AtomicU64::new(0),
            cpu_ns: AtomicU64::new(0),
            result: Mutex::new(None),
            done: Condvar::new(),
        })
    }

    pub(crate) fn lock_slot(&self) -> MutexGuard<'_, ParkSlot> {
        lock(&self.slot)
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
            Err(InstanceError::Cancelled) => InstanceState::Cancelled,
            Err(InstanceError::Exited(_)) => InstanceState::Exited,
            Err(InstanceError::Limit(_)) => InstanceState::Limited,
        };
        let mut slot = lock(&self.result);
        *slot = Some(result);
        self.set_state(state);
        drop(slot);
        self.done.notify_all();
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
            if let Some(r) = slot.as_ref() {
                return r.clone();
            }
            slot = self
                .shared
                .done
                .wait(slot)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Like [`join`](Self::join) but gives up after `timeout`, returning `None`.
    pub fn join_timeout(&self, timeout: Duration) -> Option<InstanceResult> {
        let deadline = Instant::now() + timeout;
        let mut slot = lock(&self.shared.result);
        loop {
            if let Some(r) = slot.as_ref() {
                return Some(r.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            slot = self
                .shared
                .done
                .wait_timeout(slot, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The result if the instance has ended, without blocking.
    pub fn try_result(&self) -> Option<InstanceResult> {
        lock(&self.shared.result).clone()
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
        deliver(&self.shared, message.into(), sched.mailbox_limits)
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
    message: Message,
    limits: MailboxLimits,
) -> Result<(), SendError> {
    if target.state().is_done() {
        return Err(SendError::NoSuchInstance(target.id));
    }
    let cost = message_cost(&message);
    let mut slot = target.lock_slot();
    if slot.mailbox.len() >= limits.messages
        || target.account.external().saturating_add(cost) > limits.bytes
        || !target.account.try_charge(cost)
    {
        return Err(SendError::MailboxFull(target.id));
    }
    slot.mailbox.push_back(message);
    if slot.recv_wait.is_some() {
        if let Some(mut task) = slot.task.take() {
            complete_recv(&mut slot, &mut task);
            target.set_state(InstanceState::Runnable);
            drop(slot);
            crate::shared::requeue(task);
        }
    }
    Ok(())
}

/// Finish the `myriad.recv` that `task` is parked in with the first message
/// of `slot`'s mailbox (which must not be empty): copy it to the guest's
/// buffer and unpark with its length (or `-len` if it does not fit, leaving
/// it queued).
pub(crate) fn complete_recv(slot: &mut ParkSlot, task: &mut Task) {
    let Some((ptr, cap)) = slot.recv_wait.take() else {
        return;
    };
    let result = recv_into(
        slot,
        &task.handle.account,
        task.instance.memory_mut(),
        ptr,
        cap,
    );
    // The parked host function has one i32 result, so this cannot fail.
    let _ = task.instance.unpark(&[Val::I32(result)]);
}

/// Move the first message of `slot`'s mailbox to `memory[ptr..ptr+cap]`
/// and give its charge back to `account`; returns its length, `-len` if it
/// is longer than `cap` (it stays queued), or `i32::MIN` if the buffer is
/// out of bounds. The mailbox must not be empty.
pub(crate) fn recv_into(
    slot: &mut ParkSlot,
    account: &MemoryAccount,
    memory: &mut [u8],
    ptr: u32,
    cap: u32,
) -> i32 {
    let mailbox = &mut slot.mailbox;
    let Some(len) = mailbox.front().map(|m| m.len()) else {
        return -1;
    };
    if len > cap as usize {
        return -(len.min(i32::MAX as usize) as i32);
    }
    let start = ptr as usize;
    let Some(dst) = memory.get_mut(start..start + len) else {
        return i32::MIN;
    };
    let msg = mailbox.pop_front().unwrap_or_default();
    dst.copy_from_slice(&msg);
    account.release(message_cost(&msg));
    len as i32
}
