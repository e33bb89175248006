//! Small synchronisation helpers the scheduler's modules share.

use crate::handle::HandleShared;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Lock `m`, recovering the data if a thread panicked while holding it.
/// Every critical section in the scheduler leaves its data consistent at
/// each step (a panic inside one can only come from a host function or an
/// embedder callback run elsewhere), so the data is still good and one
/// panic must not take every later lock down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Shards of the id -> instance registry: lookups by id (sends, handles)
/// and insertions (spawns) from many threads rarely meet on one lock.
const SHARDS: usize = 64;

/// One shard: live instances whose `id % SHARDS` is its index.
type Shard = HashMap<u64, Arc<HandleShared>>;

/// The live instances by id, in [`SHARDS`] mutex-guarded maps.
pub(crate) struct Registry {
    shards: Box<[Mutex<Shard>]>,
}

impl Registry {
    /// An empty registry.
    pub(crate) fn new() -> Registry {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, id: u64) -> MutexGuard<'_, Shard> {
        lock(&self.shards[(id % SHARDS as u64) as usize])
    }

    /// Record the live instance `handle` under its id.
    pub(crate) fn insert(&self, handle: &Arc<HandleShared>) {
        self.shard(handle.id).insert(handle.id, Arc::clone(handle));
    }

    /// Forget instance `id` (it has ended).
    pub(crate) fn remove(&self, id: u64) {
        self.shard(id).remove(&id);
    }

    /// The live instance with id `id`.
    pub(crate) fn get(&self, id: u64) -> Option<Arc<HandleShared>> {
        self.shard(id).get(&id).cloned()
    }

    /// Every live instance (at shutdown).
    pub(crate) fn all(&self) -> Vec<Arc<HandleShared>> {
        self.shards
            .iter()
            .flat_map(|s| lock(s).values().cloned().collect::<Vec<_>>())
            .collect()
    }
}
