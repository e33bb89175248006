//! Locking that survives a panic elsewhere.

use std::sync::{Mutex, MutexGuard};

/// Lock `m`, recovering the data if a thread panicked while holding it.
/// The runtime's critical sections (the free-slot list, the type interner,
/// the trap-table registry, link groups) leave their data consistent at
/// every step, so it is still good, and one panic must not take every
/// later lock down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
