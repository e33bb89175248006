//! The trap tables of loaded modules, where the fault handler looks up a
//! faulting pc: each module's sorted table ([`lookup`]), and a process-wide
//! registry of them ([`register_trap_table`]) for faults in another
//! module's code (a call through an import or a shared table). Readable
//! from a signal handler: no locks, no allocation.

use crate::sync::lock;
use crate::vmctx::TrapEntry;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Most modules whose trap tables the registry holds at once.
pub const REGISTRY_SLOTS: usize = 8192;

/// One registered trap table, written under a sequence lock so the signal
/// handler (which cannot take locks) reads it consistently: `seq` is odd
/// while the slot is being written.
struct RegistrySlot {
    seq: AtomicU64,
    first_pc: AtomicUsize,
    last_pc: AtomicUsize,
    table: AtomicUsize,
    len: AtomicUsize,
    /// Start of the module's defined functions' code, where the deadline
    /// kick may act (0: none registered).
    code_start: AtomicUsize,
    /// End (exclusive) of that code.
    code_end: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_SLOT: RegistrySlot = RegistrySlot {
    seq: AtomicU64::new(0),
    first_pc: AtomicUsize::new(0),
    last_pc: AtomicUsize::new(0),
    table: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    code_start: AtomicUsize::new(0),
    code_end: AtomicUsize::new(0),
};

/// Trap tables of every loaded module, for faults in code another
/// instance's green thread runs (a call through an import or a shared
/// table): the running exec's own table does not cover that code.
static REGISTRY: [RegistrySlot; REGISTRY_SLOTS] = [EMPTY_SLOT; REGISTRY_SLOTS];
/// Slots in use are below this index.
static REGISTRY_HIGH: AtomicUsize = AtomicUsize::new(0);
/// Free slot indices and the writer lock (never taken by the handler).
static REGISTRY_FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// A trap table registered with [`register_trap_table`]; unregisters on drop.
#[derive(Debug)]
pub struct Registration(usize);

/// Make a module's sorted trap table visible to the handler for faults in
/// any green thread, and `code` (its defined functions' code, where `r15`
/// is always the fuel counter; empty for code that is not an artifact's)
/// to the deadline kick (`in_compiled_code`). `None` if every registry slot
/// is taken.
///
/// # Safety
///
/// `table` must stay valid (and unchanged) until the registration drops;
/// `code` must hold only code compiled by Myriad in which `r15` is always
/// the fuel counter (an artifact's defined functions, not its wrappers or
/// stubs) while it is registered.
pub unsafe fn register_trap_table(
    table: &[TrapEntry],
    code: std::ops::Range<usize>,
) -> Option<Registration> {
    let (Some(first), Some(last)) = (table.first(), table.last()) else {
        return Some(Registration(usize::MAX));
    };
    let mut free = lock(&REGISTRY_FREE);
    let index = match free.pop() {
        Some(i) => i,
        None => {
            let i = REGISTRY_HIGH.load(Ordering::Relaxed);
            if i >= REGISTRY_SLOTS {
                return None;
            }
            REGISTRY_HIGH.store(i + 1, Ordering::Release);
            i
        }
    };
    write_slot(
        index,
        first.pc,
        last.pc,
        table.as_ptr() as usize,
        table.len(),
        code,
    );
    Some(Registration(index))
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.0 == usize::MAX {
            return;
        }
        let mut free = lock(&REGISTRY_FREE);
        write_slot(self.0, 0, 0, 0, 0, 0..0);
        free.push(self.0);
    }
}

/// Write a slot under its sequence lock (callers hold `REGISTRY_FREE`).
fn write_slot(
    index: usize,
    first: usize,
    last: usize,
    table: usize,
    len: usize,
    code: std::ops::Range<usize>,
) {
    let slot = &REGISTRY[index];
    slot.seq.fetch_add(1, Ordering::AcqRel);
    std::sync::atomic::fence(Ordering::Release);
    slot.first_pc.store(first, Ordering::Relaxed);
    slot.last_pc.store(last, Ordering::Relaxed);
    slot.table.store(table, Ordering::Relaxed);
    slot.len.store(len, Ordering::Relaxed);
    slot.code_start.store(code.start, Ordering::Relaxed);
    slot.code_end.store(code.end, Ordering::Relaxed);
    slot.seq.fetch_add(1, Ordering::Release);
}

/// Whether `pc` lies in a registered artifact's defined functions, the
/// code the deadline kick may mark (async-signal-safe: atomics only). The interrupted pc of a running
/// thread belongs to a loaded module if it is compiled code at all, so
/// its slot is stable; a slot being rewritten is skipped (a missed kick
/// is retried at the next tick).
pub(crate) fn in_compiled_code(pc: usize) -> bool {
    compiled_code_end(pc).is_some()
}

/// Like [`in_compiled_code`], and where the defined functions that
/// contain `pc` end (exclusive): the bytes from `pc` to there are mapped
/// code.
pub(crate) fn compiled_code_end(pc: usize) -> Option<usize> {
    let high = REGISTRY_HIGH.load(Ordering::Acquire).min(REGISTRY_SLOTS);
    for slot in &REGISTRY[..high] {
        let s1 = slot.seq.load(Ordering::Acquire);
        if s1 & 1 == 1 {
            continue;
        }
        let start = slot.code_start.load(Ordering::Relaxed);
        let end = slot.code_end.load(Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Acquire);
        if slot.seq.load(Ordering::Relaxed) != s1 {
            continue;
        }
        if (start..end).contains(&pc) {
            return Some(end);
        }
    }
    None
}

/// Find `pc` in any registered trap table (async-signal-safe: atomics
/// only). A faulting pc belongs to a module that is running, hence
/// loaded, so its slot is stable; a slot being rewritten concurrently is
/// skipped or re-read.
pub(crate) fn registry_lookup(pc: usize) -> Option<u8> {
    let high = REGISTRY_HIGH.load(Ordering::Acquire).min(REGISTRY_SLOTS);
    for slot in &REGISTRY[..high] {
        for _ in 0..4 {
            let s1 = slot.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let first = slot.first_pc.load(Ordering::Relaxed);
            let last = slot.last_pc.load(Ordering::Relaxed);
            let table = slot.table.load(Ordering::Relaxed);
            let len = slot.len.load(Ordering::Relaxed);
            std::sync::atomic::fence(Ordering::Acquire);
            if slot.seq.load(Ordering::Relaxed) != s1 {
                continue;
            }
            if pc >= first && pc <= last {
                // SAFETY: a consistent snapshot of a registered table,
                // which stays valid while its module is loaded.
                if let Some(k) = unsafe { lookup(table as *const TrapEntry, len, pc) } {
                    return Some(k);
                }
            }
            break;
        }
    }
    None
}

/// Binary search a sorted trap table for `pc`.
///
/// # Safety
///
/// `table` must point to `len` initialised entries (or `len == 0`).
#[inline]
pub unsafe fn lookup(table: *const TrapEntry, len: usize, pc: usize) -> Option<u8> {
    if len == 0 || table.is_null() {
        return None;
    }
    // Hand-rolled so the handler calls no library code.
    let (mut lo, mut hi) = (0usize, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        // SAFETY: mid < len.
        let e = unsafe { &*table.add(mid) };
        if e.pc == pc {
            return Some(e.kind);
        }
        if e.pc < pc {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_exact_pcs_only() {
        let t: Vec<TrapEntry> = [10usize, 20, 30, 40, 50]
            .iter()
            .enumerate()
            .map(|(i, &pc)| TrapEntry {
                pc,
                kind: i as u8 + 1,
            })
            .collect();
        // SAFETY: t has t.len() entries.
        unsafe {
            for (i, e) in t.iter().enumerate() {
                assert_eq!(lookup(t.as_ptr(), t.len(), e.pc), Some(i as u8 + 1));
            }
            for pc in [0, 9, 11, 25, 49, 51, usize::MAX] {
                assert_eq!(lookup(t.as_ptr(), t.len(), pc), None);
            }
            assert_eq!(lookup(std::ptr::null(), 0, 10), None);
        }
    }
}
