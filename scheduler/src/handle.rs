//! Handles to spawned instances: join, cancel, state and statistics.

use myriad_runtime::{Limit, TrapKind, Val};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
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
            _ => InstanceState::Limited,
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

/// State shared between a handle and the worker running the instance.
pub(crate) struct HandleShared {
    state: AtomicU8,
    pub(crate) cancel: AtomicBool,
    slices: AtomicU64,
    cpu_ns: AtomicU64,
    result: Mutex<Option<InstanceResult>>,
    done: Condvar,
}

impl HandleShared {
    pub(crate) fn new() -> Arc<HandleShared> {
        Arc::new(HandleShared {
            state: AtomicU8::new(InstanceState::Runnable as u8),
            cancel: AtomicBool::new(false),
            slices: AtomicU64::new(0),
            cpu_ns: AtomicU64::new(0),
            result: Mutex::new(None),
            done: Condvar::new(),
        })
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
        let mut slot = self.result.lock().unwrap_or_else(|e| e.into_inner());
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

impl InstanceHandle {
    /// Block until the instance ends and return its results or why it ended.
    pub fn join(&self) -> InstanceResult {
        let mut slot = self.shared.result.lock().unwrap_or_else(|e| e.into_inner());
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
        let mut slot = self.shared.result.lock().unwrap_or_else(|e| e.into_inner());
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
        self.shared
            .result
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Ask the scheduler to end the instance. It stops at its next time
    /// slice boundary (or before its first) and joins as `Cancelled`, unless
    /// it ended first.
    pub fn cancel(&self) {
        self.shared.cancel.store(true, Ordering::Release);
    }

    /// The instance's current state.
    pub fn state(&self) -> InstanceState {
        InstanceState::from_u8(self.shared.state.load(Ordering::Acquire))
    }

    /// Slices run and CPU time so far.
    pub fn stats(&self) -> InstanceStats {
        InstanceStats {
            slices: self.shared.slices.load(Ordering::Relaxed),
            cpu_ns: self.shared.cpu_ns.load(Ordering::Relaxed),
        }
    }
}
