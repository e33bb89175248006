//! The last instance an instance sent to, kept by the sender so a stream
//! of sends to one receiver (a ring neighbour, a ping-pong partner, a
//! parent) skips the id registry: no shard lock, no hash-table miss, no
//! reference count changed per send.
//!
//! Instance ids are never reused, so a cached `(id, handle)` is always the
//! right instance; if it has ended, delivery sees that in its state, as it
//! would through the registry, and the entry is dropped. The cache holds
//! a `Weak`: it never keeps an ended instance's handle (its origin, its
//! relations) alive, and two instances caching each other make no cycle.
//! A send upgrades it: one atomic on the receiver's handle, which the
//! delivery touches anyway.
//!
//! # Ownership
//!
//! The cache lives in the sender's `HandleShared` but belongs to whoever
//! holds the sender's task: the worker running its slice (the `send` host
//! function) or the thread retiring it ([`SendCache::clear`]). A task is held by one thread at a time and handed between
//! threads through queues and locks that order those accesses, so the
//! cell is never touched by two threads at once.

use crate::handle::HandleShared;
use std::cell::UnsafeCell;
use std::sync::{Arc, Weak};

/// See the module documentation.
#[derive(Default)]
pub(crate) struct SendCache(UnsafeCell<Option<(u64, Weak<HandleShared>)>>);

// SAFETY: the cell is only accessed by the thread holding the owning
// instance's task (see the module documentation), so shared references
// on other threads never touch it.
unsafe impl Sync for SendCache {}

impl SendCache {
    /// Run `f` on the instance with id `id`: the cached one, or the one
    /// `lookup` finds (which is then cached). `None` if there is none.
    ///
    /// # Safety
    ///
    /// The caller holds the task of the instance this cache belongs to
    /// (it runs that instance's slice), and `f` does not use this cache.
    pub(crate) unsafe fn with<R>(
        &self,
        id: u64,
        lookup: impl FnOnce() -> Option<Arc<HandleShared>>,
        f: impl FnOnce(&HandleShared) -> R,
    ) -> Option<R> {
        // SAFETY: per the contract, no other reference to the cell exists
        // for the duration of this call.
        let cell = unsafe { &mut *self.0.get() };
        let cached = cell
            .as_ref()
            .filter(|(cached, _)| *cached == id)
            .and_then(|(_, w)| w.upgrade());
        let target = match cached {
            Some(t) => t,
            None => {
                *cell = None;
                let t = lookup()?;
                *cell = Some((id, Arc::downgrade(&t)));
                t
            }
        };
        let r = f(&target);
        if target.state().is_done() {
            *cell = None;
        }
        Some(r)
    }

    /// Drop the cached handle.
    ///
    /// # Safety
    ///
    /// As for [`SendCache::with`]: the caller holds the owning task.
    pub(crate) unsafe fn clear(&self) {
        // SAFETY: per the contract.
        let old = unsafe { (*self.0.get()).take() };
        drop(old);
    }
}
