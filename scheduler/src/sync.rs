//! Small synchronisation helpers the scheduler's modules share.

use crate::handle::HandleShared;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
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
type Shard = HashMap<u64, Arc<HandleShared>, BuildHasherDefault<IdHasher>>;

/// Hashes an instance id with one multiplication. Ids are the scheduler's
/// own sequence numbers, never chosen by a guest's input in a way that
/// could flood a bucket (a guest can only look ids up), so SipHash's
/// protection buys nothing here and costs about 20 ns per lookup.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // The high half of the product depends on every bit of the id;
        // rotating it down makes it the bucket index (ids in one shard
        // share their low bits).
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }
}

/// The live instances by id, in [`SHARDS`] mutex-guarded maps.
pub(crate) struct Registry {
    shards: Box<[Mutex<Shard>]>,
}

impl Registry {
    /// An empty registry.
    pub(crate) fn new() -> Registry {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
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
