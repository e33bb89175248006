//! The fuel-gated deadline check.
//!
//! Reading the TSC costs ~23 ns on the (virtualised) reference machine, so
//! compiled code never reads it on its own. Instead it decrements a fuel
//! counter by one at every function entry and loop header and calls the
//! `fuel_exhausted` builtin when the counter goes negative. The builtin's
//! slow path (`fuel_slow_path`) reads the TSC once and either
//!
//! * yields, when the slice's deadline is at most [`EARLY_YIELD_CYCLES`]
//!   away (or already past) or a cancel was requested, recording the TSC in
//!   `vmctx.yield_tsc`; or
//! * refills fuel sized from the rate it just observed: fuel units consumed
//!   since the last refill divided by TSC cycles elapsed, smoothed, kept in
//!   `vmctx.fuel_rate` (16.16 fixed point, per instance, across slices).
//!   While the deadline is far it aims at 3/4 of the remaining time, so the
//!   checks close in geometrically; within [`CLOSE_CYCLES`] it aims at the
//!   deadline itself. A 1 µs slice typically sees 2–4 slow-path calls.
//!
//! A *fuel slice* (`Instance::resume_fuel`, `vmctx.fuel_sliced`) skips the
//! clock: the slow path yields as soon as the slice's fuel is spent.
//! Whatever ends a slice, the fuel spent counts against the instance's
//! fuel budget (`settle`).
//!
//! The resumer picks the first refill of a slice with [`begin_slice`]
//! (from the instance's rate, or a conservative default for an instance
//! that has never run) or sets it explicitly.
//!
//! A time slice at least [`set_async_preempt_min`] long (1 ms by default)
//! is *asynchronous* instead ([`begin_async_slice`]): the counter holds
//! a backstop of several times what the slice is worth, so the checks
//! only count and a timer's signal ends the slice (`crate::signals`, "Asynchronous preemption").
//! The checks' slow branches then stay untaken, which keeps hot code at
//! its full speed on CPUs where a once-taken branch costs it.

use crate::vmctx::{status, VmCtx};
use std::sync::atomic::{AtomicU64, Ordering};

/// Fixed-point shift of `vmctx.fuel_rate` (fuel units per TSC cycle).
pub const RATE_SHIFT: u32 = 16;
/// Rate assumed for an instance that has never been measured: 1/64 unit
/// per cycle. Deliberately low: a low rate hands out little fuel, so the
/// first check comes early and measures the real rate.
pub const DEFAULT_RATE: u64 = 1 << (RATE_SHIFT - 6);
/// Lowest rate the estimator will believe (1/4096 unit per cycle).
pub const MIN_RATE: u64 = 1 << (RATE_SHIFT - 12);
/// Highest rate the estimator will believe (64 units per cycle).
pub const MAX_RATE: u64 = 64 << RATE_SHIFT;
/// Most fuel handed out by one refill.
pub const MAX_FUEL: i64 = 1 << 40;
/// Yield instead of refilling when the deadline is this close (about one
/// TSC read plus a slow path).
pub const EARLY_YIELD_CYCLES: u64 = 48;
/// Longest stretch between slow-path checks a refill aims at (25 µs at
/// 2.6 GHz), so a cancel request is seen soon even with a far deadline,
/// and so a guest whose fuel units turn expensive (see `translate::meter`
/// in myriad-codegen) overruns a long slice by at most the units' cost
/// ratio times this (about 0.25 ms measured), not times the slice. A slow path
/// every 25 µs costs about 0.2 %.
pub const MAX_AIM_CYCLES: u64 = 1 << 16;
/// Time charged to the fuel counter for every host function call in a
/// time slice (about 100 ns at 2.6 GHz: the call path and a short host
/// function), on top of what the function charges itself
/// (`Caller::charge_time`). Without it a guest that spent cheap units got
/// a grant of thousands of units, each then buying a host call: a 20 µs
/// slice of calls to a 100 ns host function ran 1.8 ms.
pub const HOST_CALL_CYCLES: u64 = 256;
/// Below this many cycles to the deadline, aim at the deadline itself.
pub const CLOSE_CYCLES: u64 = 600;

pub use crate::tsc::{rdtsc, start_calibration, tsc_hz};

/// Convert nanoseconds to TSC ticks (saturating).
pub fn ns_to_tsc(ns: u64) -> u64 {
    u64::try_from(ns as u128 * tsc_hz() as u128 / 1_000_000_000).unwrap_or(u64::MAX)
}

/// Convert a duration to TSC ticks (saturating).
pub fn duration_to_tsc(d: std::time::Duration) -> u64 {
    ns_to_tsc(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Convert TSC ticks to nanoseconds (saturating).
pub fn tsc_to_ns(ticks: u64) -> u64 {
    u64::try_from(ticks as u128 * 1_000_000_000 / tsc_hz() as u128).unwrap_or(u64::MAX)
}

/// Fuel to hand out for `remaining` cycles at `rate` (16.16 units/cycle).
#[inline]
pub fn fuel_for(rate: u64, remaining: u64) -> i64 {
    let aim = if remaining <= CLOSE_CYCLES {
        remaining
    } else {
        (remaining - remaining / 4).min(MAX_AIM_CYCLES)
    };
    let fuel = (rate as u128 * aim as u128) >> RATE_SHIFT;
    (fuel as i64).clamp(1, MAX_FUEL)
}

/// Prepare `vm` for a slice starting at `now` and ending at `deadline`:
/// set the first refill from the instance's measured rate (or
/// [`DEFAULT_RATE`]), and the bookkeeping the slow path uses.
#[inline]
pub fn begin_slice(vm: &mut VmCtx, now: u64, deadline: u64) {
    let rate = if vm.fuel_rate == 0 {
        DEFAULT_RATE
    } else {
        vm.fuel_rate
    };
    let fuel = fuel_for(rate, deadline.saturating_sub(now));
    begin_slice_with_fuel(vm, now, deadline, fuel);
}

/// What the deadline kick (`crate::signals`) subtracts from a guest's
/// counter in `r15` to send its next fuel check to the slow path: so
/// large that a kicked counter (its value was at least
/// `signals::FUEL_FLOOR`, -2^32, and at most [`MAX_FUEL`]) lies below
/// anything the counter holds otherwise (at least -2^62, the overdraft
/// floor of the bulk charges, less a few units of compiled charges), and
/// [`unkick`] can tell and undo it. A kick that compiled code overwrites
/// (it copies the counter out, decrements and copies it back) is lost
/// without a trace, and the next kick tries again.
pub(crate) const KICK: i64 = (1 << 62) + (1 << 61);

/// A counter below this was kicked (see [`KICK`]).
const KICKED_BELOW: i64 = -(1 << 62) - (1 << 60);

/// `fuel` with a deadline kick undone (see [`KICK`]).
#[inline]
pub(crate) fn unkick(fuel: i64) -> i64 {
    if fuel < KICKED_BELOW {
        fuel.wrapping_add(KICK)
    } else {
        fuel
    }
}

/// Undo a deadline kick of `vm.fuel`. Called where the runtime reads a
/// counter compiled code stored: at each entry from compiled code that
/// reads it (the slow path, the bulk and host-call charges) and in
/// `Instance::run` when the guest switches back, so code that runs
/// between slices (`settle`, `Instance::fuel_used`) never sees a mark.
///
/// It also applies a pending counter (`vm.fuel_pending`, see
/// [`set_counter`]): what the guest spent of the old counter counts as
/// used, and the slice's own counter takes its place. Returns whether it
/// did.
#[inline]
pub(crate) fn unkick_vm(vm: &mut VmCtx) -> bool {
    vm.fuel = unkick(vm.fuel);
    if vm.fuel_pending == 0 {
        return false;
    }
    apply_pending(vm);
    true
}

#[cold]
fn apply_pending(vm: &mut VmCtx) {
    vm.fuel_pending = 0;
    let spent = vm.fuel_granted.saturating_sub(vm.fuel).max(0) as u64;
    vm.fuel_used = vm.fuel_used.saturating_add(spent);
    vm.fuel = vm.pending_fuel;
    vm.fuel_granted = vm.pending_fuel;
}

/// Give the slice that starts the counter `want` (after [`settle`]).
///
/// A green thread suspended by asynchronous preemption
/// (`vm.async_suspended`) stopped at an arbitrary instruction. Compiled
/// code changes `r15` through copies (`mov %r15,%rA; add $-k,%rA; mov
/// %rA,%r15`), and a guest stopped between the copy and the write back
/// would write the old counter's copy over a new one. The preemption
/// signal tells whether it stopped the guest inside such a window
/// (`arch::in_counter_window`; `vm.async_suspended` is then
/// [`SUSPENDED_IN_WINDOW`]), and in case it missed one, the counter is
/// only ever lowered safely:
///
/// * a lower counter (a fuel slice, a short time slice, a smaller budget)
///   is not installed at once: the old one is kept, marked as kicked (see
///   [`KICK`]) so that the next fuel check takes the slow path, and
///   `want` waits in `vm.pending_fuel` until [`unkick_vm`] applies it
///   there (or at any earlier entry from compiled code, where the counter
///   is spilled and no copy is live), counting what the old one spent.
///   If a write back erases the mark, the deadline kick's tick marks it
///   again (`signals::kick`). A copy written back can thus never hand the
///   guest units that are not counted;
/// * a higher one (the next asynchronous slice's backstop) is installed
///   at once, unless the guest stopped inside a window: then the counter
///   stays as it is (the backstop is refreshed at a later stop, or by the
///   slow path if it runs out). A copy written back over a raised counter
///   in a window the scan missed could only lower it, and the guest would
///   be charged the difference, never given it.
#[inline]
fn set_counter(vm: &mut VmCtx, want: i64) {
    if vm.async_suspended != 0 {
        let in_window = vm.async_suspended == SUSPENDED_IN_WINDOW;
        vm.async_suspended = 0;
        if want < vm.fuel {
            set_pending(vm, want);
            return;
        }
        if in_window {
            return;
        }
    }
    vm.fuel = want;
    vm.fuel_granted = want;
}

/// `vm.async_suspended` of a green thread that the preemption signal
/// stopped between compiled code's copy of its counter and the copy's
/// write back (1: elsewhere).
pub(crate) const SUSPENDED_IN_WINDOW: u8 = 2;

#[cold]
fn set_pending(vm: &mut VmCtx, want: i64) {
    // After `settle`, fuel_granted == fuel: the old counter's spending
    // from here on is counted when the pending counter is applied.
    vm.pending_fuel = want;
    vm.fuel_pending = 1;
    if vm.fuel >= 0 {
        // (A negative counter sends the next check to the slow path as
        // it is, and may lie below what a kick can mark.)
        vm.fuel -= KICK;
    }
}

/// Count the fuel spent since the last grant into `fuel_used` and close the
/// grant. The slow path does this when fuel runs out; a slice can also end
/// without it (the guest finished, or a host function yielded or parked),
/// and that fuel must count against the budget too.
#[inline]
pub(crate) fn settle(vm: &mut VmCtx) {
    let spent = vm.fuel_granted.saturating_sub(vm.fuel).max(0) as u64;
    vm.fuel_used = vm.fuel_used.saturating_add(spent);
    vm.fuel_granted = vm.fuel;
}

/// Like [`begin_slice`] but with an explicit first refill. If the fuel
/// budget is already spent (by a slice that ended in a host function), the
/// instance ends here with `Limit::Fuel` (status `LIMITED`) instead.
#[inline]
pub fn begin_slice_with_fuel(vm: &mut VmCtx, now: u64, deadline: u64, fuel: i64) {
    if start_slice(vm, now, deadline, 0) {
        set_counter(vm, fuel);
    }
}

/// What every slice start does before its counter: count the last
/// slice's fuel (`settle`), end the instance with `Limit::Fuel` if the
/// budget is spent (returns false), and set the deadline, the slice's
/// kind (`asynchronous`: 0 or 1) and the rate sample's start.
#[inline]
fn start_slice(vm: &mut VmCtx, now: u64, deadline: u64, asynchronous: u8) -> bool {
    settle(vm);
    if vm.fuel_used >= vm.fuel_limit {
        vm.trap_kind = crate::Limit::Fuel as u32;
        vm.status = status::LIMITED;
        return false;
    }
    vm.fuel_sliced = 0;
    vm.async_slice = asynchronous;
    vm.deadline_tsc = deadline;
    vm.last_check_tsc = now;
    true
}

/// The counter of an asynchronous slice: the whole fuel budget left, at
/// most [`MAX_FUEL`] (at least 1).
#[inline]
fn async_grant(vm: &VmCtx) -> i64 {
    vm.fuel_limit
        .saturating_sub(vm.fuel_used)
        .clamp(1, MAX_FUEL as u64) as i64
}

/// How many times the units the guest is expected to spend in an
/// asynchronous slice its counter holds (`async_backstop`).
pub const ASYNC_BACKSTOP_FACTOR: u64 = 8;

/// The counter of an asynchronous slice of `span` TSC cycles: enough that
/// no check fires before the deadline, bounded so that the checks still
/// end the slice if the signal never comes (an embedder that ignores or
/// blocks `SIGURG`, a guest the signal never finds in compiled code):
/// [`ASYNC_BACKSTOP_FACTOR`] times what `span` is worth at the guest's
/// measured rate, or at one unit per cycle if that is more (a guest's
/// rate can rise with its phase; one unit per loop iteration or call
/// rarely comes faster than a cycle).
#[inline]
fn async_backstop(vm: &VmCtx, span: u64) -> i64 {
    let rate = vm.fuel_rate.max(1 << RATE_SHIFT) as u128;
    let units = (rate * u128::from(span) * u128::from(ASYNC_BACKSTOP_FACTOR)) >> RATE_SHIFT;
    units.clamp(1, MAX_FUEL as u128) as i64
}

/// Prepare `vm` for an *asynchronous* time slice from `now` to `deadline`
/// (see `signals`, "Asynchronous preemption"; the caller has armed the
/// thread's preemption timer). The counter holds `async_backstop`
/// units (never past the fuel budget), so no fuel check ends the slice
/// and the checks' slow branches stay untaken: the timer's signal ends
/// it. A green thread that an earlier asynchronous slice suspended keeps
/// a larger counter when its budget allows (lowering it would take a
/// slow path: see `set_counter`). As [`begin_slice_with_fuel`], a spent
/// budget ends the instance here.
pub fn begin_async_slice(vm: &mut VmCtx, now: u64, deadline: u64) {
    if !start_slice(vm, now, deadline, 1) {
        return;
    }
    let left = async_grant(vm);
    let want = async_backstop(vm, deadline.saturating_sub(now)).min(left);
    if vm.async_suspended != 0 && vm.fuel > want && vm.fuel <= left {
        vm.async_suspended = 0;
        return;
    }
    set_counter(vm, want);
}

/// Slices at least this long (nanoseconds) are asynchronous when the
/// thread has a preemption timer; `u64::MAX` turns them off. See
/// [`set_async_preempt_min`].
pub const DEFAULT_ASYNC_PREEMPT_MIN_NS: u64 = 1_000_000;

static ASYNC_MIN_NS: AtomicU64 = AtomicU64::new(DEFAULT_ASYNC_PREEMPT_MIN_NS);
/// [`ASYNC_MIN_NS`] in TSC ticks; 0 until computed (by the first
/// `signals::thread_init` or [`set_async_preempt_min`]).
static ASYNC_MIN_TSC: AtomicU64 = AtomicU64::new(0);

/// Set, for the whole process, the shortest time slice that ends by
/// asynchronous preemption instead of fuel checks (`None`: none does).
///
/// An asynchronous slice costs a timer arm (about 0.6 µs) and a signal
/// with a full register save at its end (about 8 µs in all under the
/// project's hypervisor); a slice paced by
/// fuel checks costs a slow-path call every 25 µs or less, and leaves the
/// checks' slow branches taken, which slows hot code by up to 10 % on
/// some CPUs (docs/PERFORMANCE.md). The default,
/// [`DEFAULT_ASYNC_PREEMPT_MIN_NS`], keeps 1 µs–100 µs quanta on fuel
/// checks and makes long ones asynchronous.
pub fn set_async_preempt_min(min: Option<std::time::Duration>) {
    let ns = min.map_or(u64::MAX, |d| {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    });
    ASYNC_MIN_NS.store(ns, Ordering::Relaxed);
    ASYNC_MIN_TSC.store(ns_to_tsc(ns).max(1), Ordering::Relaxed);
}

/// Compute the threshold in TSC ticks if nothing has (called by
/// `signals::thread_init`, which has the TSC frequency at hand).
pub(crate) fn init_async_preempt_min() {
    let tsc = ns_to_tsc(ASYNC_MIN_NS.load(Ordering::Relaxed)).max(1);
    let _ = ASYNC_MIN_TSC.compare_exchange(0, tsc, Ordering::Relaxed, Ordering::Relaxed);
}

/// Whether a slice of `span` TSC ticks should be asynchronous.
#[inline]
pub(crate) fn wants_async(span: u64) -> bool {
    let min = ASYNC_MIN_TSC.load(Ordering::Relaxed);
    min != 0 && span >= min
}

/// The slow path of `fuel_exhausted`, run on the worker stack by the
/// trampoline. Returns 0 after refilling `exec.fuel`, or 1 when the green
/// thread must stop: status set to `YIELDED` (`yield_tsc` recorded) at the
/// end of its slice or on a cancel request, or to `LIMITED` when its fuel
/// budget (`fuel_limit`) is spent.
pub(crate) extern "C" fn fuel_slow_path(exec: *mut VmCtx) -> u32 {
    // SAFETY: called only by the fuel trampoline with the running green
    // thread's exec; nothing else accesses it mutably while the guest runs
    // (other threads touch only the atomic `cancel`).
    let vm = unsafe { &mut *exec };
    vm.slow_path_calls += 1;
    if unkick_vm(vm) {
        // The check that applied a pending counter (see `set_counter`):
        // the old counter's spending is counted; run on the new one.
        if vm.fuel_used >= vm.fuel_limit {
            vm.trap_kind = crate::Limit::Fuel as u32;
            vm.status = status::LIMITED;
            return 1;
        }
        return 0;
    }
    let consumed = (vm.fuel_granted.saturating_sub(vm.fuel)).max(1) as u64;
    vm.fuel_used = vm.fuel_used.saturating_add(consumed);
    // Counted: a slice that ends here must not count it again (`settle`).
    vm.fuel_granted = vm.fuel;
    if vm.fuel_used >= vm.fuel_limit {
        vm.trap_kind = crate::Limit::Fuel as u32;
        vm.status = status::LIMITED;
        return 1;
    }
    if vm.fuel_sliced != 0 {
        if vm.fuel >= 0 {
            // Fuel left: the check of an unrolled loop that wants room
            // for a round of copies (at most 3 copies' worth more, 15
            // units: see `Unroll` and `LoopPlan::units` in
            // myriad-codegen). Run the round on what is left; its
            // overdraft ends the slice at the next check and counts as
            // used there.
            return 0;
        }
        // A fuel slice ends when its fuel does; no clock involved.
        vm.yield_tsc = rdtsc();
        vm.status = status::YIELDED;
        return 1;
    }
    let now = rdtsc();
    let rate = update_rate(vm, consumed, now);
    if now.saturating_add(EARLY_YIELD_CYCLES) >= vm.deadline_tsc
        || vm.cancel.load(Ordering::Relaxed) != 0
    {
        vm.yield_tsc = now;
        vm.status = status::YIELDED;
        return 1;
    }
    if vm.async_slice != 0 {
        // An asynchronous slice's counter ran out before its deadline
        // (the guest's units came faster than its backstop allows, or a
        // host call's time charge emptied it): a backstop for the rest.
        let fuel = async_backstop(vm, vm.deadline_tsc - now).min(async_grant(vm));
        vm.fuel = fuel;
        vm.fuel_granted = fuel;
        vm.last_check_tsc = now;
        return 0;
    }
    let fuel = fuel_for(rate, vm.deadline_tsc - now);
    vm.fuel = fuel;
    vm.fuel_granted = fuel;
    vm.last_check_tsc = now;
    0
}

/// Update `vm.fuel_rate` from `consumed` units spent since
/// `vm.last_check_tsc`; returns the new rate.
#[inline]
fn update_rate(vm: &mut VmCtx, consumed: u64, now: u64) -> u64 {
    let elapsed = now.saturating_sub(vm.last_check_tsc).max(1);
    let sample = ((consumed as u128) << RATE_SHIFT) / elapsed as u128;
    let sample = (sample.min(MAX_RATE as u128) as u64).max(MIN_RATE);
    let rate = if vm.fuel_rate == 0 {
        sample
    } else {
        // Weight the new sample 3:1; the rate of a guest changes with its phase.
        (3 * sample + vm.fuel_rate) / 4
    };
    vm.fuel_rate = rate;
    rate
}

/// The Rust side of an asynchronous preemption (`arch::async_preempt`,
/// run on the worker stack with the guest's counter stored to
/// `exec.fuel`): count what the slice spent, learn the guest's rate from
/// it, and end the slice: status `YIELDED`, or `LIMITED` when the fuel
/// budget is spent (bulk builtins charge it without touching the counter
/// in a time slice). Returns 1: the trampoline always switches out.
pub(crate) extern "C" fn async_preempt_path(exec: *mut VmCtx) -> u32 {
    // SAFETY: called only by the preemption trampoline with the running
    // green thread's exec, as for `fuel_slow_path`.
    let vm = unsafe { &mut *exec };
    unkick_vm(vm);
    vm.async_preempts += 1;
    let now = rdtsc();
    let consumed = vm.fuel_granted.saturating_sub(vm.fuel).max(0) as u64;
    vm.fuel_used = vm.fuel_used.saturating_add(consumed);
    vm.fuel_granted = vm.fuel;
    if consumed > 0 {
        update_rate(vm, consumed, now);
    }
    vm.last_check_tsc = now;
    // The signal handler set it to SUSPENDED_IN_WINDOW already if so.
    vm.async_suspended = vm.async_suspended.max(1);
    if vm.fuel_used >= vm.fuel_limit {
        vm.trap_kind = crate::Limit::Fuel as u32;
        vm.status = status::LIMITED;
        return 1;
    }
    vm.yield_tsc = now;
    vm.status = status::YIELDED;
    1
}

// ---- Fuel accounting of bulk builtins and long host functions ----

/// Charge the running green thread `units` of fuel for a bulk builtin's
/// work: one unit per table element, one per 8 bytes (rounded up) for
/// `memory.init` (the rate of the compiled `memory.fill`/`memory.copy`
/// loops). Fuel budgets and fuel slices thereby meter bulk operations like
/// any loop: in a fuel slice the counter is overdrawn, so the next check
/// ends the slice and counts the overdraft as used (see `fuel::settle`);
/// in a time slice the units go straight to `fuel_used`, and the budget is
/// checked at the next slow path or slice start.
///
/// # Safety
///
/// `exec` is the running green thread's live context.
pub(crate) unsafe fn charge_fuel(exec: *mut VmCtx, units: u64) {
    // SAFETY: per the contract.
    let ex = unsafe { &mut *exec };
    unkick_vm(ex);
    if ex.fuel_sliced != 0 {
        // A fuel slice must end after this work: overdraw the counter
        // (bounded well above i64::MIN, so compiled code's decrement never
        // wraps it).
        let units = i64::try_from(units).unwrap_or(i64::MAX).min(1 << 61);
        ex.fuel = ex.fuel.saturating_sub(units).max(-(1 << 62));
    } else {
        // A time slice: count it against the budget only. Taking these
        // units from the counter would put bulk work into the slow path's
        // rate sample, which would then believe the guest's ordinary code
        // runs as fast as a memcpy and grant far too much fuel per check
        // (slices overran by about 7x in a review's measurement). The
        // counter is charged for the work's *time* instead (`charge_time`).
        ex.fuel_used = ex.fuel_used.saturating_add(units);
        if ex.async_slice != 0 {
            // An asynchronous slice's counter may hold all the budget
            // that was left at its start: keep it within what is left
            // now, or the guest could spend the builtin's units twice
            // (review 15 ran 3.8 M units on a budget of 2 M).
            let left = ex
                .fuel_limit
                .saturating_sub(ex.fuel_used)
                .min(MAX_FUEL as u64) as i64;
            if ex.fuel > left {
                ex.fuel_granted = ex.fuel_granted.saturating_sub(ex.fuel - left);
                ex.fuel = left;
            }
        }
        if ex.fuel_used >= ex.fuel_limit && ex.fuel > 0 {
            // Budget spent: send the next check to the slow path, which
            // ends the instance.
            end_at_next_check(ex);
        }
    }
}

/// Whether the running green thread is in a time slice (not a fuel
/// slice).
///
/// # Safety
///
/// `exec` is the running green thread's live context.
pub(crate) unsafe fn time_sliced(exec: *const VmCtx) -> bool {
    // SAFETY: per the contract.
    unsafe { (*exec).fuel_sliced == 0 }
}

/// In a time slice, take from the fuel counter what `cycles` of bulk work
/// are worth at the rate the slow path measured for this guest, so the
/// next fuel check comes when the grant's time is used up, however much
/// of it went to builtins. The grant shrinks by as much: these units are
/// not fuel the guest spent (its budget was charged by the element), and
/// the rate sample does not take them for guest code either.
///
/// # Safety
///
/// `exec` is the running green thread's live context.
pub(crate) unsafe fn charge_time(exec: *mut VmCtx, cycles: u64) {
    // SAFETY: per the contract.
    let ex = unsafe { &mut *exec };
    unkick_vm(ex);
    let rate = if ex.fuel_rate == 0 {
        crate::fuel::DEFAULT_RATE
    } else {
        ex.fuel_rate
    };
    let units =
        ((u128::from(cycles) * u128::from(rate)) >> crate::fuel::RATE_SHIFT).min(1 << 61) as i64;
    ex.fuel = ex.fuel.saturating_sub(units).max(-(1 << 62));
    ex.fuel_granted = ex.fuel_granted.saturating_sub(units);
}

/// Zero a positive counter so that the guest's next check takes the slow
/// path; the grant shrinks by what was left, which keeps its accounting
/// exact (the unspent units are not counted).
#[inline]
fn end_at_next_check(ex: &mut VmCtx) {
    if ex.fuel > 0 {
        ex.fuel_granted = ex.fuel_granted.saturating_sub(ex.fuel);
        ex.fuel = 0;
    }
}

/// Called by the host-call trampoline after every builtin and host call
/// in an asynchronous slice: if the slice is due, zero the counter (the
/// grant shrinks by what was left) so that the guest's next check takes
/// the slow path, which yields. The preemption signal leaves a thread in
/// host code alone, and a guest that lived in a builtin that does not
/// read the clock (`memory.grow`, `data.drop`) held its thread for tens
/// of slices (review 15).
pub(crate) extern "C" fn end_if_due(exec: *mut VmCtx) {
    // SAFETY: called by the host-call trampoline with the running green
    // thread's exec, whose counter compiled code stored before the call
    // and reloads after it.
    let ex = unsafe { &mut *exec };
    unkick_vm(ex);
    if ex.async_slice != 0 && slice_due(ex) {
        end_at_next_check(ex);
    }
}

/// Whether the running time slice should end now: its deadline is as
/// near as the slow path yields at, or a cancel is asked for.
#[inline]
pub(crate) fn slice_due(ex: &VmCtx) -> bool {
    rdtsc().saturating_add(EARLY_YIELD_CYCLES) >= ex.deadline_tsc
        || ex.cancel.load(Ordering::Relaxed) != 0
}

/// Between two chunks of a bulk builtin: must the builtin stop here and
/// let compiled code pass a fuel check (`BULK_MORE`)? In a fuel slice,
/// when the chunk's charge spent the counter (the check then ends the
/// slice); in a time slice, when the deadline is as near as the slow path
/// would yield at, a cancel is asked for, or the fuel budget is spent. In
/// a time slice the counter is then zeroed (shrinking the grant by what
/// was left keeps its accounting exact) so the check takes the slow path,
/// which yields or ends the instance. Otherwise the builtin goes on with
/// the next chunk: one call does as many chunks as the slice allows.
///
/// # Safety
///
/// `exec` is the running green thread's live context.
pub(crate) unsafe fn slice_over(exec: *mut VmCtx) -> bool {
    // SAFETY: per the contract.
    let ex = unsafe { &mut *exec };
    unkick_vm(ex);
    if ex.fuel_sliced != 0 {
        return ex.fuel <= 0;
    }
    let over = ex.fuel <= 0 || slice_due(ex);
    if over {
        end_at_next_check(ex);
    }
    over
}

#[cfg(test)]
mod tests {
    use super::{unkick, KICK, MAX_FUEL};

    #[test]
    fn a_kicked_counter_is_told_apart_and_restored() {
        // Every counter the kick may take, and a few units charged after.
        for fuel in [-(1i64 << 32), -5, 0, 1, 12_345, MAX_FUEL] {
            for charged in [0i64, 1, 17] {
                let kicked = fuel - KICK - charged;
                assert_eq!(unkick(kicked), fuel - charged);
            }
        }
        // Anything the counter holds otherwise is left alone, down to the
        // bulk charges' overdraft floor and a few units below it.
        for fuel in [-(1i64 << 62) - 100, -(1 << 62), -(1 << 40), -1, 0, MAX_FUEL] {
            assert_eq!(unkick(fuel), fuel);
        }
    }
}
