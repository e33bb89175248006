//! The slot region: one mapping holding every instance's stack, vmctx and
//! heap.
//!
//! A [`Region`] is ONE `mmap(PROT_READ|PROT_WRITE, MAP_PRIVATE |
//! MAP_ANONYMOUS | MAP_NORESERVE)` of `slots * stride` bytes plus a
//! leading `PROT_NONE` guard (two mappings in all in default mode), so the
//! mapping count stays constant however many instances run, and untouched
//! pages cost nothing. Transparent huge
//! pages are disabled on it (`MADV_NOHUGEPAGE`): one touched byte must cost
//! one 4 KiB page, not 2 MiB.
//!
//! Slot layout, low to high (every boundary page aligned except the vmctx):
//!
//! ```text
//! slot base                                                     slot base + stride
//! | stack (stack_size) ...grows down | ctx area (8 KiB) | heap (reservation) | guard |
//!                                    ^ colour: vmctx at ctx area + (slot % 64) * 64
//! ```
//!
//! The stack top is the vmctx address itself, so a small guest's stack top
//! and its vmctx share a page; the colour staggers the hot lines of
//! consecutive slots across cache sets (measured 1.3–1.6x on round robin
//! over 4,096 contexts).
//!
//! Default mode: the guard is only spacing (accessible bytes); compiled
//! code that relies on a faulting guard (`guard_bytes > 0`) is refused.
//! Guard mode: the leading guard, every heap page above the instance's
//! current length and every guard are `PROT_NONE`; `memory.grow` opens
//! pages. That costs about two mappings per slot, so [`Region::new`] checks
//! `vm.max_map_count` up front.
//!
//! Free slots live in a `Mutex<Vec<u32>>` (LIFO, so warm slots are reused
//! first). Good enough for a few workers; a per-worker cache in front of it
//! is the scheduler's business.
//!
//! Heap zeroing: every free slot's heap is all zero. Teardown remembers per
//! slot which of the first 64 heap pages are known dirty (memset them, no
//! system call). Other pages of small heaps (up to [`SCAN_MAX_PAGES`]) are
//! scanned for non-zero words: a never-touched page then maps the shared
//! zero page, which costs no memory, and is only written if the guest wrote
//! it (reading a swapped-out page brings its data back, so it is zeroed
//! too).
//!
//! Mid-sized heaps (more than [`SCAN_MAX_PAGES`] pages, up to
//! [`DONTNEED_THRESHOLD`] bytes) ask `mincore` which pages are resident.
//! Resident and known-dirty pages are scanned and zeroed as above. Runs of
//! the other pages, non-resident and not known dirty, are released with
//! `madvise(MADV_DONTNEED)`: such a page is either untouched (no page table
//! entry, so the call is nearly free) or was dirtied by the guest and then
//! swapped out (swap, zram), and would read back as the previous tenant's
//! data if skipped; `MADV_DONTNEED` drops the swap entry. If `mincore`
//! fails, its range is zeroed with a plain memset.
//!
//! Heaps above [`DONTNEED_THRESHOLD`] are dropped whole with
//! `madvise(MADV_DONTNEED)`. Whenever an `madvise` fails (e.g. `EINVAL` on
//! `mlock`ed memory), its range is zeroed with a memset instead.

use crate::sync::lock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Bytes between the stack area and the heap holding the (coloured) vmctx.
pub const CTX_AREA: usize = 8192;
/// Number of cache colours; the vmctx of slot `i` sits at `(i % COLOURS) * 64`.
pub const COLOURS: usize = 64;
/// Largest vmctx (header + globals) that fits the ctx area at any colour.
pub const MAX_VMCTX_BYTES: usize = CTX_AREA - (COLOURS - 1) * 64;
/// Heaps longer than this are released with `MADV_DONTNEED` on teardown
/// instead of being zeroed page by page.
pub const DONTNEED_THRESHOLD: u64 = 1 << 20;
/// Heaps of at most this many pages are zeroed by scanning pages not known
/// to be dirty; larger ones ask `mincore` which pages are resident.
pub const SCAN_MAX_PAGES: usize = 16;
/// Mappings kept in reserve beyond the region's own when checking
/// `vm.max_map_count` (libraries, thread stacks, the allocator...).
pub const MAP_COUNT_SLACK: usize = 4096;

/// Bytes at the bottom of each instance stack kept below `stack_limit`.
///
/// Every compiled frame (wasm functions, export wrappers, import stubs)
/// passes Cranelift's prologue check before it writes below the return
/// address and saved frame pointer, and that check already covers the
/// return address and saved frame pointer of whatever the frame calls.
/// So after the last check only the runtime's assembly runs below the
/// limit, and the reserve must hold its largest frame:
///
/// * the host-call trampoline: `push rbp`, `push rbx`, then on a suspend
///   two pushes of the result, a `call` and the switch's six pushes:
///   16 + 16 + 8 + 48 = 88 bytes (the return address into it is the
///   caller's checked setup area);
/// * the fuel trampoline, which saves every caller-saved register (its
///   callers use the `preserve_all` convention): eleven pushes and sixteen
///   `xmm` registers, then on a yield a `call` and the switch's six
///   pushes: 88 + 256 + 8 + 48 = 400 bytes;
/// * asynchronous preemption (`arch::async_preempt`), entered at any
///   instruction of compiled code, where the stack pointer is at or above
///   the limit (the handler refuses otherwise): the handler pushes the
///   interrupted pc and exec, the routine the flags, eleven registers, up
///   to 8 bytes of alignment and sixteen `xmm` registers, then a `call`
///   and the switch's six pushes: 16 + 96 + 8 + 256 + 56 = 432 bytes
///   (`arch::ASYNC_PREEMPT_FRAME`);
/// * signal delivery: none. Synchronous faults run their handler on the
///   thread's alternate signal stack (`SA_ONSTACK`), and threads that run
///   guests block asynchronous signals (see [`crate::signals`]).
///
/// [`TRAMPOLINE_FRAME_MAX`] is that bound; a compile-time assertion keeps
/// the reserve above it, and the `attacks` test suite measures the deepest
/// byte written below the limit.
pub const STACK_RESERVE: usize = 1024;

/// The largest number of bytes the runtime's trampolines write below an
/// instance's `stack_limit` (see [`STACK_RESERVE`]).
pub const TRAMPOLINE_FRAME_MAX: usize = 432;

const _: () = assert!(TRAMPOLINE_FRAME_MAX < STACK_RESERVE);

/// The system page size (cached).
pub fn page_size() -> usize {
    static PAGE: AtomicU64 = AtomicU64::new(0);
    let p = PAGE.load(Ordering::Relaxed);
    if p != 0 {
        return p as usize;
    }
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    PAGE.store(p as u64, Ordering::Relaxed);
    p
}

fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

/// Shape of a [`Region`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionConfig {
    /// Number of slots (instances that can exist at once).
    pub slots: usize,
    /// Bytes of instance stack per slot (rounded up to pages; at least 8 KiB
    /// recommended). Only wasm frames and switch frames live there.
    pub stack_size: usize,
    /// Most bytes of linear memory per slot (rounded up to pages): no
    /// memory grows past it.
    pub heap_capacity: usize,
    /// Address space reserved for each heap, if more than `heap_capacity`
    /// (rounded up to pages; 0 or less means `heap_capacity`). The bytes
    /// past the capacity are never opened. Sparse-mode code relies on a
    /// reservation of 4 GiB in guard mode: then a slot's growth limit can
    /// stay small while every 32-bit index still lands in its own slot.
    pub heap_reservation: usize,
    /// Bytes after each heap (rounded up to pages). Inaccessible only in
    /// guard mode; otherwise just spacing.
    pub guard_size: usize,
    /// Make guards and unused heap pages inaccessible (`mprotect`).
    pub guard_mode: bool,
}

impl Default for RegionConfig {
    fn default() -> Self {
        RegionConfig {
            slots: 1024,
            stack_size: 16 * 1024,
            heap_capacity: 64 * 1024,
            heap_reservation: 0,
            guard_size: 0,
            guard_mode: false,
        }
    }
}

/// Why a region could not be created.
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    /// The configuration cannot work.
    #[error("invalid region configuration: {0}")]
    InvalidConfig(String),
    /// The reservation failed.
    #[error("cannot reserve {bytes} bytes of address space for the region: {source}")]
    Mmap {
        /// Bytes requested.
        bytes: usize,
        /// The OS error.
        source: std::io::Error,
    },
    /// Guard mode needs more mappings than the kernel allows.
    #[error(
        "guard mode with {slots} slots needs about {needed} memory mappings but vm.max_map_count is {limit}; \
         raise it with `sysctl -w vm.max_map_count={needed}` (or use fewer slots, or no guard mode)"
    )]
    MapCount {
        /// Slots requested.
        slots: usize,
        /// Mappings needed including slack.
        needed: usize,
        /// Current `vm.max_map_count`.
        limit: usize,
    },
    /// `mprotect` of guard pages failed.
    #[error("mprotect of guard pages failed: {0}")]
    Mprotect(std::io::Error),
}

/// Per-slot bookkeeping beside the mapping.
struct SlotState {
    /// Bit `p` set: heap page `p` (< 64) is known to be resident.
    resident: AtomicU64,
    /// Guard mode: accessible heap bytes (page aligned).
    open: AtomicU64,
}

/// A region of instance slots. `Send + Sync`; share it as `Arc<Region>`.
pub struct Region {
    base: *mut u8,
    len: usize,
    lead: usize,
    stride: usize,
    stack_size: usize,
    heap_capacity: usize,
    heap_reservation: usize,
    guard_size: usize,
    guard_mode: bool,
    slots: usize,
    /// Slots never used yet, lowest on top.
    free: Mutex<Vec<u32>>,
    /// Slots released by threads, each thread into its own list
    /// ([`own_list`]), where its next `alloc` looks first: workers that
    /// spawn and end instances at once each reuse their own warm slots
    /// without meeting on one lock.
    released: Box<[PaddedList]>,
    state: Box<[SlotState]>,
}

/// Per-thread lists of released slots ([`Region::released`]).
const RELEASE_LISTS: usize = 8;

/// A list of free slots on a cache line pair of its own.
#[repr(align(128))]
#[derive(Default)]
struct PaddedList(Mutex<Vec<u32>>);

/// This thread's index into [`Region::released`]: threads are given the
/// lists round robin when they first release or allocate a slot.
fn own_list() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static OWN: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    OWN.with(|own| {
        if own.get() == usize::MAX {
            own.set(NEXT.fetch_add(1, Ordering::Relaxed) % RELEASE_LISTS);
        }
        own.get()
    })
}

// SAFETY: the raw base pointer refers to a mapping owned by the region for
// its whole life; slots are handed out exclusively through the mutex-guarded
// free list and per-slot state is atomic.
unsafe impl Send for Region {}
// SAFETY: as above; shared methods only touch the free list (locked) and
// atomics.
unsafe impl Sync for Region {}

/// Read `/proc/sys/vm/max_map_count`.
pub fn max_map_count() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Number of mappings of this process (lines of `/proc/self/maps`).
pub fn current_map_count() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

impl Region {
    /// Reserve a region. In guard mode, checks `vm.max_map_count` first and
    /// protects all guards and heaps.
    pub fn new(config: RegionConfig) -> Result<Region, RegionError> {
        let page = page_size();
        if config.slots == 0 || config.slots > u32::MAX as usize {
            return Err(RegionError::InvalidConfig(format!(
                "slots must be 1..=2^32-1, got {}",
                config.slots
            )));
        }
        let stack_size = round_up(config.stack_size.max(1), page);
        if stack_size < 2 * STACK_RESERVE {
            return Err(RegionError::InvalidConfig(format!(
                "stack_size {} is too small: at least {} bytes",
                config.stack_size,
                2 * STACK_RESERVE
            )));
        }
        let heap_capacity = round_up(config.heap_capacity, page);
        let heap_reservation = round_up(config.heap_reservation, page).max(heap_capacity);
        let guard_size = round_up(config.guard_size, page);
        let stride = stack_size
            .checked_add(CTX_AREA + heap_reservation)
            .and_then(|s| s.checked_add(guard_size))
            .ok_or_else(|| RegionError::InvalidConfig("slot size overflows".into()))?;
        // A leading guard below slot 0's stack in both modes: compiled
        // frames never write below their stack limit, and if that ever
        // failed, slot 0 would fault instead of writing into whatever is
        // mapped below the region. One extra mapping.
        let lead = if config.guard_mode {
            guard_size.max(page)
        } else {
            page
        };
        let len = stride
            .checked_mul(config.slots)
            .and_then(|l| l.checked_add(lead))
            .filter(|l| *l < (1usize << 46))
            .ok_or_else(|| {
                RegionError::InvalidConfig(format!(
                    "{} slots of {} bytes do not fit in the address space",
                    config.slots, stride
                ))
            })?;
        if config.guard_mode {
            // [RW stack+ctx+open heap][NONE rest of heap + guard] per slot.
            let needed = config.slots * 2 + 1 + current_map_count() + MAP_COUNT_SLACK;
            if let Some(limit) = max_map_count() {
                if needed > limit {
                    return Err(RegionError::MapCount {
                        slots: config.slots,
                        needed,
                        limit,
                    });
                }
            }
        }
        // SAFETY: a fresh anonymous private mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(RegionError::Mmap {
                bytes: len,
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: advice on our own fresh mapping; failure is harmless.
        unsafe { libc::madvise(base, len, libc::MADV_NOHUGEPAGE) };
        let base = base.cast::<u8>();
        let state: Box<[SlotState]> = (0..config.slots)
            .map(|_| SlotState {
                resident: AtomicU64::new(0),
                open: AtomicU64::new(0),
            })
            .collect();
        let region = Region {
            base,
            len,
            lead,
            stride,
            stack_size,
            heap_capacity,
            heap_reservation,
            guard_size,
            guard_mode: config.guard_mode,
            slots: config.slots,
            free: Mutex::new((0..config.slots as u32).rev().collect()),
            released: (0..RELEASE_LISTS).map(|_| PaddedList::default()).collect(),
            state,
        };
        region.protect(base, lead)?;
        if config.guard_mode {
            for slot in 0..config.slots as u32 {
                let heap = region.heap_base(slot);
                region.protect(heap, heap_reservation + guard_size)?;
            }
        }
        Ok(region)
    }

    fn protect(&self, at: *mut u8, len: usize) -> Result<(), RegionError> {
        if len == 0 {
            return Ok(());
        }
        // SAFETY: `at..at+len` lies inside our mapping (callers compute it
        // from the slot layout).
        let rc = unsafe { libc::mprotect(at.cast(), len, libc::PROT_NONE) };
        if rc != 0 {
            return Err(RegionError::Mprotect(std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots
    }

    /// Slots currently free.
    pub fn free_slots(&self) -> usize {
        lock(&self.free).len()
            + self
                .released
                .iter()
                .map(|l| lock(&l.0).len())
                .sum::<usize>()
    }

    /// Bytes per slot.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Heap capacity per slot (page rounded).
    pub fn heap_capacity(&self) -> usize {
        self.heap_capacity
    }

    /// Address space reserved per heap (page rounded, at least
    /// [`Region::heap_capacity`]).
    pub fn heap_reservation(&self) -> usize {
        self.heap_reservation
    }

    /// Guard bytes after each heap (page rounded).
    pub fn guard_size(&self) -> usize {
        self.guard_size
    }

    /// Whether guards really fault.
    pub fn guard_mode(&self) -> bool {
        self.guard_mode
    }

    /// Stack bytes per slot (page rounded, not counting the colour).
    pub fn stack_size(&self) -> usize {
        self.stack_size
    }

    /// Start and length of the whole mapping.
    pub fn mapping(&self) -> (usize, usize) {
        (self.base as usize, self.len)
    }

    /// Take a free slot, or `None` when the region is full: the one this
    /// thread released last, else one another thread released (warm
    /// slots first: a never-used one costs page faults), else the lowest
    /// never-used one, else the released lists once more.
    pub fn alloc(&self) -> Option<u32> {
        let own = own_list();
        let released = || {
            (0..RELEASE_LISTS).find_map(|k| lock(&self.released[(own + k) % RELEASE_LISTS].0).pop())
        };
        released().or_else(|| {
            let mut free = lock(&self.free);
            // Nothing never used left: look at the released lists once
            // more, so a slot released to a list already passed while
            // another thread took the last one is still found.
            free.pop().or_else(released)
        })
    }

    /// Return a slot whose heap is all zero again (to this thread's list).
    pub(crate) fn release(&self, slot: u32) {
        lock(&self.released[own_list()].0).push(slot);
    }

    /// Lowest address of `slot` (its stack bottom).
    pub fn slot_base(&self, slot: u32) -> *mut u8 {
        debug_assert!((slot as usize) < self.slots);
        // SAFETY: slot < slots, so the offset is inside the mapping.
        unsafe { self.base.add(self.lead + slot as usize * self.stride) }
    }

    /// Address of `slot`'s vmctx (also its stack top): coloured.
    pub fn vmctx_addr(&self, slot: u32) -> *mut u8 {
        // SAFETY: within the slot's ctx area.
        unsafe {
            self.slot_base(slot)
                .add(self.stack_size + (slot as usize % COLOURS) * 64)
        }
    }

    /// Address of `slot`'s heap byte 0.
    pub fn heap_base(&self, slot: u32) -> *mut u8 {
        // SAFETY: within the slot.
        unsafe { self.slot_base(slot).add(self.stack_size + CTX_AREA) }
    }

    /// Guard mode: make exactly the first `want` bytes (rounded up to pages)
    /// of `slot`'s heap accessible and the rest inaccessible. Returns the
    /// accessible length.
    pub(crate) fn set_heap_open(&self, slot: u32, want: u64) -> std::io::Result<u64> {
        let page = page_size() as u64;
        let want = want.div_ceil(page) * page;
        let st = &self.state[slot as usize];
        let open = st.open.load(Ordering::Relaxed);
        let heap = self.heap_base(slot);
        if want > open {
            // SAFETY: inside this slot's heap capacity.
            let rc = unsafe {
                libc::mprotect(
                    heap.add(open as usize).cast(),
                    (want - open) as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
        } else if want < open {
            // SAFETY: inside this slot's heap capacity.
            let rc = unsafe {
                libc::mprotect(
                    heap.add(want as usize).cast(),
                    (open - want) as usize,
                    libc::PROT_NONE,
                )
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        st.open.store(want, Ordering::Relaxed);
        Ok(want)
    }

    /// Guard mode: record that `slot`'s heap is open up to `open` bytes
    /// (after `memory.grow` opened pages).
    pub(crate) fn note_heap_open(&self, slot: u32, open: u64) {
        self.state[slot as usize]
            .open
            .store(open, Ordering::Relaxed);
    }

    /// Zero the first `len` bytes of `slot`'s heap without faulting in
    /// pages that were never touched.
    pub(crate) fn zero_heap(&self, slot: u32, len: u64) {
        if len == 0 {
            return;
        }
        let page = page_size();
        let heap = self.heap_base(slot);
        let len = len as usize;
        let pages = len.div_ceil(page);
        let st = &self.state[slot as usize];
        if len as u64 > DONTNEED_THRESHOLD {
            // SAFETY: the heap range of this slot, which we own exclusively
            // (its instance is gone; the capacity is page rounded).
            unsafe { release_or_zero(heap, pages * page, len) };
            st.resident.store(0, Ordering::Relaxed);
            return;
        }
        let known = st.resident.load(Ordering::Relaxed);
        let need = if pages >= 64 {
            u64::MAX
        } else {
            (1u64 << pages) - 1
        };
        if pages <= 64 && known & need == need {
            // Warm: every page is resident; plain memset, no system call.
            // SAFETY: the first `len` bytes of this slot's heap, owned by us.
            unsafe { std::ptr::write_bytes(heap, 0, len) };
            return;
        }
        if pages <= SCAN_MAX_PAGES {
            // Small heap: look at each page not known to be dirty instead
            // of asking the kernel (mincore costs ~1.1 µs here). Reading a
            // never-touched page maps the shared zero page (no RSS), and
            // later scans of it hit that one cached page. Only pages that
            // really hold data are written.
            let mut new_known = known;
            for p in 0..pages {
                let start = p * page;
                let end = ((p + 1) * page).min(len);
                // SAFETY: inside the first `len` bytes of our heap, which
                // this slot owns exclusively (its instance is gone).
                let bytes = unsafe { std::slice::from_raw_parts_mut(heap.add(start), end - start) };
                if known & (1 << p) != 0 || !is_zero(bytes) {
                    bytes.fill(0);
                    new_known |= 1 << p;
                }
            }
            st.resident.store(new_known, Ordering::Relaxed);
            return;
        }
        let mincore = |addr: *mut u8, bytes: usize, vec: &mut [u8]| {
            // SAFETY: `addr..addr + bytes` is inside the heap; `vec` has one
            // entry per page of it.
            unsafe { libc::mincore(addr.cast(), bytes, vec.as_mut_ptr()) }
        };
        // SAFETY: `heap..heap + len` is this slot's heap, owned by us (its
        // instance is gone), and `pages * page` bytes of it are mapped.
        let new_known = unsafe { zero_by_residency(heap, len, known, mincore) };
        st.resident.store(new_known, Ordering::Relaxed);
    }
}

/// `madvise(MADV_DONTNEED)` the whole pages `at..at + bytes`; if that fails,
/// zero the first `len` (≤ `bytes`) of them with a memset instead. Bytes
/// past `len` in the last page are already zero (heap invariant).
///
/// # Safety
///
/// `at..at + bytes` must be page aligned, inside a private anonymous
/// mapping, writable, and owned exclusively by the caller.
unsafe fn release_or_zero(at: *mut u8, bytes: usize, len: usize) {
    debug_assert!(len <= bytes);
    // SAFETY: per the contract; anonymous private pages read back as zero
    // after DONTNEED.
    let rc = unsafe { libc::madvise(at.cast(), bytes, libc::MADV_DONTNEED) };
    if rc != 0 {
        // SAFETY: per the contract, the range is ours and writable.
        unsafe { std::ptr::write_bytes(at, 0, len) };
    }
}

/// The mid-sized heap path of [`Region::zero_heap`]: zero the first `len`
/// bytes at `heap`, asking `mincore` (passed in so tests can fake the
/// kernel's answer) which pages are resident. `known` has bit `p` set for
/// heap pages `p < 64` known to be dirty. Returns the new known bits.
///
/// Resident or known pages are scanned and written only if non-zero; runs
/// of non-resident, unknown pages are dropped with `MADV_DONTNEED` (a
/// swapped-out page would otherwise keep the old tenant's data); a failed
/// `mincore` zeroes its range with a memset.
///
/// # Safety
///
/// `heap` must be page aligned and `heap..heap + len.div_ceil(page) * page`
/// a writable range of a private anonymous mapping owned by the caller.
unsafe fn zero_by_residency(
    heap: *mut u8,
    len: usize,
    known: u64,
    mut mincore: impl FnMut(*mut u8, usize, &mut [u8]) -> libc::c_int,
) -> u64 {
    let page = page_size();
    let pages = len.div_ceil(page);
    // Byte range `[p * page, min(q * page, len))` of pages `p..q`.
    let span = |p: usize, q: usize| (p * page, (q * page).min(len));
    let mut vec = [0u8; 256];
    let mut first = 0usize;
    let mut new_known = known;
    while first < pages {
        let n = (pages - first).min(vec.len());
        // SAFETY: pages `first..first + n` are inside the heap.
        let at = unsafe { heap.add(first * page) };
        if mincore(at, n * page, &mut vec[..n]) != 0 {
            // No residency information: zero the whole range (allocates
            // what was untouched, but this is not expected to happen).
            let (start, end) = span(first, first + n);
            // SAFETY: inside the first `len` bytes of our heap.
            unsafe { std::ptr::write_bytes(heap.add(start), 0, end - start) };
            for p in first..(first + n).min(64) {
                new_known |= 1 << p;
            }
            first += n;
            continue;
        }
        // Start of the current run of non-resident, unknown pages.
        let mut run: Option<usize> = None;
        for (i, v) in vec.iter().enumerate().take(n) {
            let p = first + i;
            let known_page = p < 64 && known & (1 << p) != 0;
            if !known_page && v & 1 == 0 {
                run.get_or_insert(p);
                continue;
            }
            if let Some(r) = run.take() {
                let (start, end) = span(r, p);
                // SAFETY: whole pages `r..p` of our heap; `end - start`
                // bytes of them lie below `len`.
                unsafe { release_or_zero(heap.add(start), (p - r) * page, end - start) };
            }
            let (start, end) = span(p, p + 1);
            // SAFETY: inside the first `len` bytes of our heap.
            let bytes = unsafe { std::slice::from_raw_parts_mut(heap.add(start), end - start) };
            // A page that was only read maps the shared zero page: writing
            // it would allocate. Leave all-zero pages alone.
            if known_page || !is_zero(bytes) {
                bytes.fill(0);
                if p < 64 {
                    new_known |= 1 << p;
                }
            }
        }
        if let Some(r) = run {
            let q = first + n;
            let (start, end) = span(r, q);
            // SAFETY: whole pages `r..q` of our heap; `end - start` bytes of
            // them lie below `len`.
            unsafe { release_or_zero(heap.add(start), (q - r) * page, end - start) };
        }
        first += n;
    }
    new_known
}

/// Whether every byte of `bytes` is zero, a machine word at a time.
fn is_zero(bytes: &[u8]) -> bool {
    // SAFETY: u64 has no invalid bit patterns; align_to splits correctly.
    let (head, words, tail) = unsafe { bytes.align_to::<u64>() };
    head.iter().all(|b| *b == 0)
        && tail.iter().all(|b| *b == 0)
        && words.iter().fold(0u64, |acc, w| acc | w) == 0
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping we created; instances hold an Arc<Region>, so
        // none is alive when the region drops.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(heap_capacity: usize) -> Region {
        Region::new(RegionConfig {
            slots: 1,
            stack_size: 16 * 1024,
            heap_capacity,
            guard_size: 0,
            guard_mode: false,
            heap_reservation: 0,
        })
        .expect("region")
    }

    fn resident(at: *mut u8, pages: usize) -> Vec<bool> {
        let mut v = vec![0u8; pages];
        // SAFETY: `at` is page aligned and the range is inside our region.
        let rc = unsafe { libc::mincore(at.cast(), pages * page_size(), v.as_mut_ptr()) };
        assert_eq!(rc, 0);
        v.iter().map(|b| b & 1 != 0).collect()
    }

    /// # Safety
    ///
    /// `at..at + len` must be inside a live region, and the test must own it.
    unsafe fn slice<'a>(at: *mut u8, len: usize) -> &'a mut [u8] {
        // SAFETY: per the contract.
        unsafe { std::slice::from_raw_parts_mut(at, len) }
    }

    /// Pretend the kernel says every page is non-resident: what a guest's
    /// dirty page looks like after it was swapped out. The page still holds
    /// data here, so only `MADV_DONTNEED` makes it zero.
    #[test]
    fn non_resident_unknown_pages_are_dropped() {
        let page = page_size();
        let pages = 128;
        let r = region(pages * page);
        // SAFETY: slot 0's heap of a region this test owns.
        let heap = unsafe { slice(r.heap_base(0), pages * page) };
        for p in [3usize, 20, 70, 71, 127] {
            heap[p * page + 5] = 0xa5;
        }
        // SAFETY: slot 0's heap, owned by this test.
        let known = unsafe {
            zero_by_residency(r.heap_base(0), pages * page, 0, |_, _, vec| {
                vec.fill(0);
                0
            })
        };
        assert_eq!(known, 0);
        // The pages were dropped, not written (checked before reading them,
        // which maps the shared zero page).
        assert!(resident(r.heap_base(0), pages).iter().all(|r| !r));
        assert!(is_zero(heap), "non-resident pages kept data");
    }

    #[test]
    fn resident_pages_beyond_bit_64_are_zeroed_in_place() {
        let page = page_size();
        let pages = 100;
        let r = region(pages * page);
        // SAFETY: slot 0's heap of a region this test owns.
        let heap = unsafe { slice(r.heap_base(0), pages * page) };
        heap[2 * page] = 1;
        heap[80 * page + 9] = 2;
        // Odd length: the last page is partial.
        let len = 90 * page + 17;
        // SAFETY: slot 0's heap, owned by this test.
        let known = unsafe {
            zero_by_residency(r.heap_base(0), len, 0, |a, b, v| {
                libc::mincore(a.cast(), b, v.as_mut_ptr())
            })
        };
        assert_eq!(known, 1 << 2);
        assert!(is_zero(heap));
        let res = resident(r.heap_base(0), pages);
        assert!(res[2] && res[80], "dirty resident pages are kept warm");
    }

    #[test]
    fn mincore_failure_zeroes_with_memset() {
        let page = page_size();
        let pages = 70;
        let r = region(pages * page);
        // SAFETY: slot 0's heap of a region this test owns.
        let heap = unsafe { slice(r.heap_base(0), pages * page) };
        heap[10] = 1;
        heap[66 * page] = 1;
        // SAFETY: slot 0's heap, owned by this test.
        let known = unsafe { zero_by_residency(r.heap_base(0), pages * page, 0, |_, _, _| -1) };
        assert_eq!(known, u64::MAX);
        assert!(is_zero(heap));
    }

    /// `mlock`ed pages refuse `MADV_DONTNEED` (`EINVAL`): the range must be
    /// zeroed by memset instead, on both madvise paths.
    #[test]
    fn failed_madvise_falls_back_to_memset() {
        let page = page_size();
        // Mid-size path, with a faked "non-resident" answer.
        let pages = 100;
        let r = region(pages * page);
        // SAFETY: slot 0's heap of a region this test owns.
        let heap = unsafe { slice(r.heap_base(0), pages * page) };
        heap[70 * page + 1] = 7;
        // SAFETY: locking one page of our own mapping.
        if unsafe { libc::mlock(r.heap_base(0).add(70 * page).cast(), page) } != 0 {
            eprintln!(
                "mlock refused ({}); skipped",
                std::io::Error::last_os_error()
            );
            return;
        }
        // SAFETY: slot 0's heap, owned by this test.
        unsafe {
            zero_by_residency(r.heap_base(0), pages * page, 0, |_, _, vec| {
                vec.fill(0);
                0
            })
        };
        assert!(is_zero(heap), "locked page kept data");
        // Large path.
        let big = (DONTNEED_THRESHOLD as usize) * 2;
        let r2 = region(big);
        // SAFETY: slot 0's heap of a region this test owns.
        let heap2 = unsafe { slice(r2.heap_base(0), big) };
        heap2[3] = 1;
        heap2[big - 1] = 9;
        // SAFETY: locking one page of our own mapping.
        let rc = unsafe { libc::mlock(r2.heap_base(0).add(big - page).cast(), page) };
        assert_eq!(rc, 0);
        r2.zero_heap(0, big as u64);
        assert!(is_zero(heap2), "large heap with a locked page kept data");
        // SAFETY: unlocking what we locked.
        unsafe {
            libc::munlock(r.heap_base(0).add(70 * page).cast(), page);
            libc::munlock(r2.heap_base(0).add(big - page).cast(), page);
        }
    }

    #[test]
    fn mid_size_heap_is_zero_after_zero_heap() {
        let page = page_size();
        for pages in [32usize, 128] {
            let r = region(pages * page);
            // SAFETY: slot 0's heap of a region this test owns.
            let heap = unsafe { slice(r.heap_base(0), pages * page) };
            for p in (0..pages).step_by(7) {
                heap[p * page + p] = p as u8 | 1;
            }
            r.zero_heap(0, (pages * page) as u64);
            assert!(is_zero(heap), "{pages} pages");
            // Again, now with known-dirty bits set.
            heap[pages * page - 1] = 1;
            heap[page] = 1;
            r.zero_heap(0, (pages * page) as u64);
            assert!(is_zero(heap), "{pages} pages, second round");
        }
    }
}
