//! Memory an instance holds outside its slot, charged to its memory limit.
//!
//! An instance's memory limit ([`crate::Instance::set_memory_limit`])
//! counts its linear memory and its table storage, which the runtime
//! knows. An embedder may hold more host memory on an instance's behalf —
//! a scheduler's mailbox, for one — and charge it to the same limit
//! through a [`MemoryAccount`] shared with the instance
//! ([`crate::Instance::set_memory_account`]):
//!
//! * the runtime publishes what the instance's memory and tables use
//!   ([`MemoryAccount::own`]) at instantiation and after every growth, and
//!   refuses growth past `limit - external`;
//! * the embedder charges its own bytes with [`MemoryAccount::try_charge`]
//!   (refused past `limit - own`) and gives them back with
//!   [`MemoryAccount::release`].
//!
//! Both sides may act at once from different threads (a send while the
//! instance grows its memory); each checks the other's last published
//! figure, so the total can pass the limit by at most one such step.

use std::sync::atomic::{AtomicU64, Ordering};

/// Shared bookkeeping of an instance's memory: what the runtime knows it
/// uses, what the embedder holds for it, and the limit. All figures are
/// bytes.
#[derive(Debug)]
#[repr(C)]
pub struct MemoryAccount {
    own: AtomicU64,
    external: AtomicU64,
    limit: AtomicU64,
}

impl Default for MemoryAccount {
    fn default() -> Self {
        MemoryAccount::new()
    }
}

impl MemoryAccount {
    /// An account with nothing charged and no limit.
    pub const fn new() -> MemoryAccount {
        MemoryAccount {
            own: AtomicU64::new(0),
            external: AtomicU64::new(0),
            limit: AtomicU64::new(u64::MAX),
        }
    }

    /// Bytes of linear memory and table storage the instance uses, as the
    /// runtime last published.
    pub fn own(&self) -> u64 {
        self.own.load(Ordering::Acquire)
    }

    /// Bytes the embedder holds for the instance.
    pub fn external(&self) -> u64 {
        self.external.load(Ordering::Acquire)
    }

    /// The instance's memory limit (`u64::MAX`: none).
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Acquire)
    }

    /// Charge `bytes` of embedder memory if the instance's use plus
    /// everything charged stays within the limit; returns whether it was
    /// charged.
    pub fn try_charge(&self, bytes: u64) -> bool {
        let room = self.limit().saturating_sub(self.own());
        self.external
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |e| {
                e.checked_add(bytes).filter(|t| *t <= room)
            })
            .is_ok()
    }

    /// Give back `bytes` charged earlier with [`Self::try_charge`].
    pub fn release(&self, bytes: u64) {
        let _ = self
            .external
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |e| {
                Some(e.saturating_sub(bytes))
            });
    }

    /// Runtime side: publish the instance's own use.
    pub(crate) fn set_own(&self, bytes: u64) {
        self.own.store(bytes, Ordering::Release);
    }

    /// Runtime side: publish the limit.
    pub(crate) fn set_limit(&self, bytes: u64) {
        self.limit.store(bytes, Ordering::Release);
    }
}

/// Something that holds a [`MemoryAccount`] (so an embedder can share the
/// account inside a structure it already reference-counts, without a
/// second allocation).
pub trait HasMemoryAccount: Send + Sync {
    /// The account.
    fn memory_account(&self) -> &MemoryAccount;
}

impl HasMemoryAccount for MemoryAccount {
    fn memory_account(&self) -> &MemoryAccount {
        self
    }
}
