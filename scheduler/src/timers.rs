//! Wake-up times of sleeping instances.
//!
//! A sleeping instance waits in its handle's slot; this queue only says
//! when to requeue it. Entries are grouped in buckets of one *tick*
//! (2^[`TICK_SHIFT`] TSC cycles, about 5 µs at 3 GHz) keyed by the tick in
//! which they fall due, rounded up: a bucket is taken whole once its tick
//! has begun, so no entry is returned early, and at most one tick late.
//! Inserting appends to a bucket and taking the due ones drains whole
//! buckets, so the per-entry cost is a `Vec` push and a sequential read;
//! the ordered map only holds distinct ticks (a few thousand for sleeps
//! spread over tens of milliseconds). A binary heap of entries, the first
//! version, spent most of a wake-up in cache misses while sifting a
//! 100,000-entry heap (see docs/PERFORMANCE.md).
//!
//! One mutex guards the map; the earliest due time is mirrored in an
//! atomic so workers can check after every slice, with one relaxed load,
//! whether anything is due.

use crate::sync::lock;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// log2 of the tick, in TSC cycles.
pub(crate) const TICK_SHIFT: u32 = 14;

/// Entries of type `T` keyed by the TSC value at which they fall due.
pub(crate) struct TimerQueue<T> {
    buckets: Mutex<BTreeMap<u64, Vec<T>>>,
    /// Start (TSC) of the earliest bucket's tick; `u64::MAX` when empty.
    /// Written only under the lock, so it never runs ahead of the map.
    next_due: AtomicU64,
    /// Entries in the map.
    len: AtomicUsize,
}

impl<T> TimerQueue<T> {
    /// An empty queue.
    pub(crate) fn new() -> TimerQueue<T> {
        TimerQueue {
            buckets: Mutex::new(BTreeMap::new()),
            next_due: AtomicU64::new(u64::MAX),
            len: AtomicUsize::new(0),
        }
    }

    /// TSC value from which [`TimerQueue::take_due`] returns something
    /// (`u64::MAX`: nothing queued).
    pub(crate) fn next_due(&self) -> u64 {
        self.next_due.load(Ordering::Relaxed)
    }

    /// Entries queued.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Queue `item` to fall due at TSC `at` (returned by the first
    /// `take_due(now)` with `now >= at`, at most one tick later).
    pub(crate) fn insert(&self, at: u64, item: T) {
        let tick = at.div_ceil(1 << TICK_SHIFT);
        let mut b = lock(&self.buckets);
        b.entry(tick).or_default().push(item);
        self.len.fetch_add(1, Ordering::Relaxed);
        self.next_due
            .fetch_min(tick.saturating_mul(1 << TICK_SHIFT), Ordering::Release);
    }

    /// Move every entry due at TSC `now` into `out`.
    pub(crate) fn take_due(&self, now: u64, out: &mut Vec<T>) {
        if now < self.next_due() {
            return;
        }
        let now_tick = now >> TICK_SHIFT;
        let mut b = lock(&self.buckets);
        while let Some(e) = b.first_entry() {
            if *e.key() > now_tick {
                break;
            }
            let items = e.remove();
            self.len.fetch_sub(items.len(), Ordering::Relaxed);
            out.extend(items);
        }
        let next = b
            .first_key_value()
            .map_or(u64::MAX, |(tick, _)| tick.saturating_mul(1 << TICK_SHIFT));
        self.next_due.store(next, Ordering::Release);
    }

    /// Drop the entries for which `keep` is false (a purge of entries
    /// whose instances have ended).
    pub(crate) fn retain(&self, mut keep: impl FnMut(&T) -> bool) {
        let mut b = lock(&self.buckets);
        b.retain(|_, items| {
            let before = items.len();
            items.retain(&mut keep);
            self.len.fetch_sub(before - items.len(), Ordering::Relaxed);
            !items.is_empty()
        });
        let next = b
            .first_key_value()
            .map_or(u64::MAX, |(tick, _)| tick.saturating_mul(1 << TICK_SHIFT));
        self.next_due.store(next, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: u64 = 1 << TICK_SHIFT;

    #[test]
    fn entries_come_out_once_due_never_early_at_most_a_tick_late() {
        let q = TimerQueue::new();
        assert_eq!(q.next_due(), u64::MAX);
        q.insert(10 * TICK + 1, "a"); // due in tick 11
        q.insert(10 * TICK, "b"); // exactly tick 10
        q.insert(3 * TICK + 5, "c");
        assert_eq!(q.len(), 3);
        assert_eq!(q.next_due(), 4 * TICK);
        let mut out = Vec::new();
        q.take_due(4 * TICK - 1, &mut out);
        assert!(out.is_empty(), "nothing before its time");
        q.take_due(4 * TICK, &mut out);
        assert_eq!(out, ["c"]);
        assert_eq!(q.next_due(), 10 * TICK);
        out.clear();
        q.take_due(10 * TICK, &mut out);
        assert_eq!(out, ["b"]);
        out.clear();
        q.take_due(10 * TICK + 1, &mut out);
        assert!(out.is_empty(), "a is due in tick 11");
        q.take_due(u64::MAX, &mut out);
        assert_eq!(out, ["a"]);
        assert_eq!(q.len(), 0);
        assert_eq!(q.next_due(), u64::MAX);
    }

    #[test]
    fn retain_purges_and_keeps_the_earliest_due_time_exact() {
        let q = TimerQueue::new();
        for i in 0..100u64 {
            q.insert(i * TICK, i);
        }
        q.retain(|i| *i >= 50);
        assert_eq!(q.len(), 50);
        assert_eq!(q.next_due(), 50 * TICK);
        let mut out = Vec::new();
        q.take_due(u64::MAX, &mut out);
        assert_eq!(out, (50..100).collect::<Vec<_>>());
    }

    #[test]
    fn concurrent_inserts_and_takes_lose_nothing() {
        let q = std::sync::Arc::new(TimerQueue::new());
        let inserters: Vec<_> = (0..4u64)
            .map(|t| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        q.insert(i * 37 % 5000, t * 10_000 + i);
                    }
                })
            })
            .collect();
        let mut got = Vec::new();
        let taker = {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for now in 0..20_000u64 {
                    q.take_due(now, &mut mine);
                }
                mine
            })
        };
        for h in inserters {
            h.join().unwrap();
        }
        got.extend(taker.join().unwrap());
        q.take_due(u64::MAX, &mut got);
        got.sort_unstable();
        assert_eq!(got, (0..40_000).collect::<Vec<_>>());
        assert_eq!(q.len(), 0);
    }
}
