//! Turning faults in compiled code into traps.
//!
//! One process-wide handler for SIGILL, SIGSEGV, SIGBUS and SIGFPE is
//! installed (once, `SA_SIGINFO | SA_ONSTACK`) by [`thread_init`], which also
//! gives the calling thread its own alternate signal stack (64 KiB from
//! `mmap`, kept for the thread's life): the kernel must never push a signal
//! frame onto a few-KiB instance stack.
//!
//! The worker sets the thread-local [`CURRENT`] to the vmctx before each
//! switch into a guest and clears it afterwards. The handler is
//! async-signal-safe (no allocation, no locks, no formatting): if `CURRENT`
//! is set, the fault was raised by an instruction (not sent by `kill`), and
//! the faulting pc is in the instance's trap table, it records the trap
//! kind, sets the status to `TRAPPED` and rewrites the saved register
//! context so that the normal return from the handler lands in the
//! `abandon` routine (`rip` = abandon, `rdi` = vmctx), which reloads the
//! worker's context from `vmctx.host_sp`. No signal mask is ever saved:
//! the kernel restores the pre-signal mask on the handler's return.
//!
//! Any other fault is not ours, and goes to whatever handled the signal
//! before Myriad (saved once, at install time): if that was `SIG_DFL` (or
//! `SIG_IGN`, which cannot ignore a synchronous fault), the handler resets
//! the signal to `SIG_DFL` and returns, so the instruction faults again and
//! the process dies as it would have without Myriad (a signal sent with
//! `kill` is re-raised instead). Otherwise the previous handler (a JVM's, a
//! GC's, Rust's stack-overflow reporter...) is called directly, with the
//! same arguments and its own `sa_mask` added to the blocked set, and its
//! return is ours; Myriad's handler stays installed for every thread. (Its
//! other flags, such as `SA_RESETHAND` or `SA_NODEFER`, are not emulated.)
//!
//! Asynchronous signals must not be delivered while a worker runs on a
//! guest stack: the kernel would push a signal frame (1–4 KiB of xsave
//! state + ucontext) and run the handler below the guest's stack-limit
//! reserve, into the neighbouring slot. [`thread_init`], which runs on
//! every thread before its first guest (workers call it at start,
//! `Instance::resume` lazily), therefore blocks them on that thread for
//! good with [`block_async_signals`]: only SIGILL, SIGSEGV, SIGBUS and
//! SIGFPE stay deliverable, and those run on the alternate stack, and the
//! deadline kick's [`KICK_SIGNAL`] (also on the alternate stack). Signals
//! sent to the process go to another thread; signals sent to that thread
//! stay pending.
//!
//! **The deadline kick.** A fuel unit's cost depends on the code: a loop
//! of loads that miss the cache spends a unit in thousands of cycles, so
//! a grant sized from cheap units ran 51–76 ms past a 20 µs slice
//! (docs/SECURITY.md, "Host time"). [`thread_init`] therefore gives each
//! thread that runs guests a timer of its own CPU time that sends it
//! [`KICK_SIGNAL`] every [`KICK_TICK_NS`]. The handler acts only when the
//! thread runs a time slice that is more than [`KICK_MARGIN_NS`] past its
//! deadline and the interrupted pc is in an artifact's function bodies
//! (where `r15` is always the fuel counter; not its wrappers and stubs:
//! see `traps::in_compiled_code` and `module::kickable_code`): it subtracts `fuel::KICK` from `r15`, so
//! the next fuel check takes the slow path, which undoes the mark
//! (`fuel::unkick`) and ends the slice. Compiled code that copied the
//! counter out before the kick writes its copy back over it; that kick is
//! lost and the next tick tries again. In the runtime's or the host's
//! code the handler changes nothing.
//!
//! **Asynchronous preemption.** A fuel check ends a slice by taking its
//! slow branch, and on some CPUs a branch that has been taken once costs
//! hot code up to 10 % from then on (docs/PERFORMANCE.md, "The preemption
//! branch, once taken"). A time slice at least
//! `fuel::set_async_preempt_min` long (1 ms by default) of a module with
//! compiled code is therefore *asynchronous*: the resumer makes sure this
//! thread's one-shot preemption timer (`arm_preempt_by`, monotonic clock,
//! [`KICK_SIGNAL`], tagged in `si_value`) fires by the deadline, and gives
//! the guest a counter that no check exhausts before it
//! (`fuel::begin_async_slice`: a backstop of several times what the slice
//! is worth, which still ends it if the signal never comes). When a
//! signal finds the slice due (deadline reached or a cancel asked for;
//! the deadline kick's ticks look too) and the thread in compiled code,
//! with its stack pointer at or above the stack limit, the handler makes
//! it enter
//! `arch::async_preempt` as if the interrupted instruction had called it
//! (`arch::inject_async_preempt` pushes the pc and exec on the guest
//! stack: two words, within the reserve). That routine saves the flags
//! and every register, counts the fuel spent
//! (`fuel::async_preempt_path`) and switches to the worker; resumed, it
//! restores them and returns to the instruction. Stopped inside a
//! counter window, the green thread is marked so (`async_suspended`) and
//! its next slice keeps its counter as it is (`arch::in_counter_window`
//! tells). Outside compiled code (a builtin, a host function, the
//! runtime) the handler does nothing: the host-call trampoline ends a due
//! slice on the way back to compiled code (`fuel::end_if_due`), and the
//! CPU-time tick looks again. A signal that finds its slice not yet due
//! (the timer was armed for an earlier slice, or came a little before the
//! TSC deadline) arms the timer for the rest. Counters are only ever lowered through
//! `fuel::set_counter`'s pending counter, which the handler re-marks
//! when a write back erased its mark. Every unit is counted once
//! (`tests/async_preempt.rs`).

use crate::arch;
use crate::traps;
use crate::vmctx::{status, VmCtx};
use std::cell::Cell;
use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::Once;

thread_local! {
    /// The vmctx of the guest this thread is running, or null.
    pub static CURRENT: Cell<*mut VmCtx> = const { Cell::new(std::ptr::null_mut()) };
    static ALT_READY: Cell<bool> = const { Cell::new(false) };
    static ALT_STACK: AltStack = const { AltStack { base: Cell::new(std::ptr::null_mut()) } };
    static KICK_TIMER: KickTimer = const { KickTimer { id: Cell::new(None) } };
    static PREEMPT_TIMER: KickTimer = const { KickTimer { id: Cell::new(None) } };
    /// When (TSC) the preemption timer was last armed to fire; 0: never.
    static PREEMPT_ARMED_AT: Cell<u64> = const { Cell::new(0) };
}

/// The deadline kick's signal: SIGURG, whose default action is to ignore
/// it, so a tick that found no handler would harm nothing.
pub const KICK_SIGNAL: libc::c_int = libc::SIGURG;

/// CPU time of a guest thread between two deadline-kick ticks. A tick
/// costs a signal delivery (about a microsecond) per millisecond of CPU;
/// a slice overrunning its deadline is stopped within about this much.
pub const KICK_TICK_NS: i64 = 1_000_000;

/// How far past its deadline a time slice must be before a tick kicks
/// it: an ordinary slice ends within a few microseconds of its deadline
/// by its own fuel checks, and is never kicked.
pub const KICK_MARGIN_NS: u64 = 50_000;

/// [`KICK_MARGIN_NS`] in TSC ticks, set by the first [`thread_init`]
/// (computing it needs the TSC frequency, which the handler must not
/// work out).
static KICK_MARGIN_TSC: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(u64::MAX);

/// The disposition of [`KICK_SIGNAL`] before ours (written once, before
/// ours is installed; see [`PrevActions`]).
struct PrevKick(UnsafeCell<MaybeUninit<libc::sigaction>>);
// SAFETY: as for PrevActions.
unsafe impl Sync for PrevKick {}
static PREV_KICK: PrevKick = PrevKick(UnsafeCell::new(MaybeUninit::uninit()));

/// This thread's deadline-kick timer; deleted at thread exit.
struct KickTimer {
    id: Cell<Option<libc::timer_t>>,
}

impl Drop for KickTimer {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            // SAFETY: a timer this thread created and nothing else uses.
            unsafe { libc::timer_delete(id) };
        }
    }
}

/// Size of each worker thread's alternate signal stack (plus a guard page).
pub const ALT_STACK_SIZE: usize = 64 * 1024;

const SIGNALS: [libc::c_int; 4] = [libc::SIGILL, libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE];

/// Dispositions that were installed before ours, indexed like `SIGNALS`.
///
/// Each entry is written exactly once, by `install_handlers` (inside
/// `INSTALL.call_once`, i.e. at the first [`thread_init`], before any guest
/// can run) and BEFORE our handler for that signal is installed; it is never
/// written again. The handler only reads it, which is async-signal-safe: a
/// plain load of memory that is immutable by the time the handler can run
/// (the `sigaction` system call that installs the handler orders the write
/// before any delivery on any thread).
struct PrevActions(UnsafeCell<[MaybeUninit<libc::sigaction>; 4]>);
// SAFETY: written once inside `INSTALL.call_once` before our handler can
// run for that signal, read-only afterwards.
unsafe impl Sync for PrevActions {}
static PREV: PrevActions = PrevActions(UnsafeCell::new([MaybeUninit::uninit(); 4]));
static INSTALL: Once = Once::new();

struct AltStack {
    base: Cell<*mut libc::c_void>,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let base = self.base.get();
        if base.is_null() {
            return;
        }
        let page = crate::region::page_size();
        // SAFETY: querying and disabling this thread's own alternate stack;
        // `base` is the mapping we created in `thread_init` and nothing uses
        // it once the stack is disabled (the thread is exiting).
        unsafe {
            let mut cur: libc::stack_t = std::mem::zeroed();
            libc::sigaltstack(std::ptr::null(), &mut cur);
            if cur.ss_sp == base.cast::<u8>().add(page).cast() {
                let disable = libc::stack_t {
                    ss_sp: std::ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: 0,
                };
                libc::sigaltstack(&disable, std::ptr::null_mut());
            }
            libc::munmap(base, ALT_STACK_SIZE + page);
        }
    }
}

/// Prepare the calling thread to run guests: install the process-wide
/// fault handler (once), block asynchronous signals on this thread
/// ([`block_async_signals`]) and give it an alternate signal stack. Call on
/// every worker thread before it runs guests; [`crate::Instance`] calls it
/// lazily the first time a thread resumes a guest, so no thread ever runs
/// one with asynchronous signals open. Idempotent. Fails only if the mask
/// or the signal stack cannot be set (a missing kick timer is no failure:
/// see [`kick_ready`]).
pub fn thread_init() -> std::io::Result<()> {
    if ALT_READY.with(|r| r.get()) {
        return Ok(());
    }
    INSTALL.call_once(install_handlers);
    block_async_signals()?;
    let page = crate::region::page_size();
    // SAFETY: a fresh private anonymous mapping; the lowest page is made
    // inaccessible as a guard; the rest becomes this thread's signal stack
    // and stays mapped until the thread-local is destroyed at thread exit.
    unsafe {
        let base = libc::mmap(
            std::ptr::null_mut(),
            ALT_STACK_SIZE + page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        libc::mprotect(base, page, libc::PROT_NONE);
        let st = libc::stack_t {
            ss_sp: base.cast::<u8>().add(page).cast(),
            ss_flags: 0,
            ss_size: ALT_STACK_SIZE,
        };
        if libc::sigaltstack(&st, std::ptr::null_mut()) != 0 {
            let e = std::io::Error::last_os_error();
            libc::munmap(base, ALT_STACK_SIZE + page);
            return Err(e);
        }
        ALT_STACK.with(|a| a.base.set(base));
    }
    ALT_READY.with(|r| r.set(true));
    // Without its timer (each counts against RLIMIT_SIGPENDING) the thread
    // still runs guests, without the kick: slices then end by fuel alone,
    // as before it (see `kick_ready`).
    if start_kick_timer().is_err() {
        KICKLESS_THREADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    // Without it the thread's slices are all paced by fuel checks.
    let _ = create_preempt_timer();
    crate::fuel::init_async_preempt_min();
    Ok(())
}

/// Give the calling thread its preemption timer: a one-shot timer of the
/// monotonic clock that sends [`KICK_SIGNAL`] to this thread, armed for
/// the deadline of each asynchronous slice ([`arm_preempt_by`]).
fn create_preempt_timer() -> std::io::Result<()> {
    if PREEMPT_TIMER.with(|t| t.id.get().is_some()) {
        return Ok(());
    }
    // SAFETY: as in `start_kick_timer`; the timer is this thread's and is
    // deleted by KickTimer's drop at thread exit.
    unsafe {
        let mut sev: libc::sigevent = std::mem::zeroed();
        sev.sigev_notify = libc::SIGEV_THREAD_ID;
        sev.sigev_signo = KICK_SIGNAL;
        sev.sigev_notify_thread_id = libc::gettid();
        // Tells its signals from the CPU-time ticks (`si_value`).
        sev.sigev_value.sival_ptr = PREEMPT_TAG as *mut libc::c_void;
        let mut id: libc::timer_t = std::mem::zeroed();
        if libc::timer_create(libc::CLOCK_MONOTONIC, &mut sev, &mut id) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        PREEMPT_TIMER.with(|t| t.id.set(Some(id)));
    }
    Ok(())
}

/// The `si_value` of the preemption timer's signals.
const PREEMPT_TAG: usize = 1;

/// Make sure the calling thread's preemption timer fires by `deadline`
/// (TSC; `now` is the TSC now). Returns false when the thread has no such
/// timer or arming failed: the slice must then be paced by fuel checks.
///
/// Arming costs a system call (about 0.6 µs), more than a whole short
/// slice of a guest that soon blocks, so a timer already set to fire
/// after `now` but by `deadline` is left alone: its signal comes first,
/// finds this slice not yet due and arms the timer for the rest (see
/// `preempt`). A scheduler with a long quantum thus arms about once per
/// quantum, however many slices end early in between.
pub(crate) fn arm_preempt_by(now: u64, deadline: u64) -> bool {
    let armed = PREEMPT_ARMED_AT.with(|a| a.get());
    if armed > now && armed <= deadline && PREEMPT_TIMER.with(|t| t.id.get().is_some()) {
        return true;
    }
    arm_preempt(
        crate::fuel::tsc_to_ns(deadline.saturating_sub(now)),
        now,
        deadline,
    )
}

/// After a nested run (a host function of `outer` resumed another
/// instance on this thread, whose slice may have armed the one timer for
/// its own deadline): make sure the timer fires by `outer`'s deadline if
/// its slice is asynchronous.
///
/// # Safety
///
/// `outer` is the live exec of the green thread this thread ran before
/// the nested run, suspended in a host call.
pub(crate) unsafe fn rearm_outer(outer: *mut VmCtx) {
    // SAFETY: per the contract.
    unsafe {
        if (*outer).async_slice != 0 && (*outer).status == status::RUNNING {
            arm_preempt_by(crate::fuel::rdtsc(), (*outer).deadline_tsc);
        }
    }
}

/// Arm the calling thread's preemption timer to fire once, `ns`
/// nanoseconds from now, recording `at` (the TSC it should fire at;
/// `now` is the TSC now) for [`arm_preempt_by`]. Async-signal-safe.
fn arm_preempt(ns: u64, now: u64, at: u64) -> bool {
    let Some(id) = PREEMPT_TIMER.with(|t| t.id.get()) else {
        return false;
    };
    let ns = ns.clamp(1, 1 << 40);
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: (ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (ns % 1_000_000_000) as libc::c_long,
        },
    };
    // SAFETY: a timer of this thread's, a valid spec; timer_settime is
    // async-signal-safe.
    let armed = unsafe { libc::timer_settime(id, 0, &spec, std::ptr::null_mut()) == 0 };
    PREEMPT_ARMED_AT.with(|a| a.set(if armed { at.max(now + 1) } else { 0 }));
    armed
}

/// Give the calling thread its deadline-kick timer: [`KICK_SIGNAL`] to
/// this thread every [`KICK_TICK_NS`] of its CPU time (a thread blocked in
/// a system call uses none, so its calls are not interrupted).
fn start_kick_timer() -> std::io::Result<()> {
    if KICK_TIMER.with(|t| t.id.get().is_some()) {
        return Ok(());
    }
    KICK_MARGIN_TSC.store(
        crate::fuel::ns_to_tsc(KICK_MARGIN_NS),
        std::sync::atomic::Ordering::Relaxed,
    );
    // SAFETY: a zeroed sigevent is valid (its private padding included);
    // the fields set are those SIGEV_THREAD_ID reads. The timer is this
    // thread's, deleted by KickTimer's drop at thread exit.
    unsafe {
        let mut sev: libc::sigevent = std::mem::zeroed();
        sev.sigev_notify = libc::SIGEV_THREAD_ID;
        sev.sigev_signo = KICK_SIGNAL;
        sev.sigev_notify_thread_id = libc::gettid();
        let mut id: libc::timer_t = std::mem::zeroed();
        if libc::timer_create(libc::CLOCK_THREAD_CPUTIME_ID, &mut sev, &mut id) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let tick = libc::timespec {
            tv_sec: 0,
            tv_nsec: KICK_TICK_NS,
        };
        let spec = libc::itimerspec {
            it_interval: tick,
            it_value: tick,
        };
        if libc::timer_settime(id, 0, &spec, std::ptr::null_mut()) != 0 {
            let e = std::io::Error::last_os_error();
            libc::timer_delete(id);
            return Err(e);
        }
        KICK_TIMER.with(|t| t.id.set(Some(id)));
    }
    Ok(())
}

/// Threads that could not get a kick timer (see [`kick_ready`]).
static KICKLESS_THREADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Whether the calling thread has its deadline-kick timer (after
/// [`thread_init`]). Creating one fails only when the user's
/// `RLIMIT_SIGPENDING` is spent; such a thread runs guests without the
/// kick, and [`kickless_threads`] counts it.
pub fn kick_ready() -> bool {
    KICK_TIMER.with(|t| t.id.get().is_some())
}

/// Threads of this process that run guests without a kick timer.
pub fn kickless_threads() -> u64 {
    KICKLESS_THREADS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether [`thread_init`] has run on this thread.
#[inline]
pub fn thread_ready() -> bool {
    ALT_READY.with(|r| r.get())
}

fn install_handlers() {
    // SAFETY: PREV_KICK is only written here, before our handler exists.
    // Ours runs on the alternate stack with every signal blocked, and
    // restarts interrupted system calls.
    unsafe {
        install(
            KICK_SIGNAL,
            (*PREV_KICK.0.get()).as_mut_ptr(),
            kick_handler as *const () as usize,
            libc::SA_RESTART,
            true,
        );
    }
    for (i, &sig) in SIGNALS.iter().enumerate() {
        // SAFETY: PREV[i] is only written here, before our handler for
        // `sig` exists.
        unsafe {
            install(
                sig,
                (*PREV.0.get())[i].as_mut_ptr(),
                handler as *const () as usize,
                0,
                false,
            );
        }
    }
}

/// Save the disposition of `sig` to `prev`, then install `handler` with
/// `SA_SIGINFO | SA_ONSTACK | flags`, blocking every signal while it runs
/// if `mask_all` (else none). Panics if `sigaction` fails.
///
/// # Safety
///
/// `prev` is valid for writes and read only once our handler exists:
/// glibc copies the old action out only after the installing system call
/// returns, so the old action is queried first, then ours installed.
unsafe fn install(
    sig: libc::c_int,
    prev: *mut libc::sigaction,
    handler: usize,
    flags: libc::c_int,
    mask_all: bool,
) {
    let check = |rc: libc::c_int| {
        assert_eq!(
            rc,
            0,
            "sigaction failed: {}",
            std::io::Error::last_os_error()
        );
    };
    // SAFETY: per the contract; a zeroed sigaction is valid, and we fill
    // its handler, flags and mask.
    unsafe {
        check(libc::sigaction(sig, std::ptr::null(), prev));
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | flags;
        if mask_all {
            libc::sigfillset(&mut sa.sa_mask);
        } else {
            libc::sigemptyset(&mut sa.sa_mask);
        }
        check(libc::sigaction(sig, &sa, std::ptr::null_mut()));
    }
}

/// Run `prev`, a previous disposition's handler, as the kernel would
/// have: with its mask added (the kernel restores the pre-signal mask when
/// we return).
///
/// # Safety
///
/// `prev` holds a handler function (not `SIG_DFL` or `SIG_IGN`); the
/// arguments are those the kernel passed to ours.
unsafe fn chain(
    prev: &libc::sigaction,
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    // SAFETY: per the contract.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &prev.sa_mask, std::ptr::null_mut());
        if prev.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(prev.sa_sigaction);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev.sa_sigaction);
            f(sig);
        }
    }
}

/// Block every signal except the synchronous faults (SIGILL, SIGSEGV,
/// SIGBUS, SIGFPE; SIGKILL and SIGSTOP cannot be blocked anyway) on the
/// calling thread, with `pthread_sigmask(SIG_BLOCK)`.
///
/// Why: an asynchronous signal (SIGPROF, SIGINT handlers, SIGCHLD,
/// SIGURG...) that arrives while this thread runs a guest would be handled
/// on the guest's tiny stack: the kernel pushes a signal frame (1–4 KiB of
/// xsave state + ucontext) and runs the handler's code there, below the
/// stack-limit reserve and into the neighbouring slot. Blocked signals stay
/// pending for (or are delivered to) other threads. The four fault signals
/// stay open; Myriad's handler for them runs on the alternate stack.
///
/// [`thread_init`] calls this on every thread that runs guests. glibc keeps its internal
/// signals (thread cancellation, `setxid`) deliverable whatever the mask.
pub fn block_async_signals() -> std::io::Result<()> {
    // SAFETY: `set` is a valid sigset_t, initialised by sigfillset before
    // use; pthread_sigmask only changes this thread's mask.
    unsafe {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        if libc::sigfillset(set.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut set = set.assume_init();
        for sig in SIGNALS
            .iter()
            .chain(&[libc::SIGKILL, libc::SIGSTOP, KICK_SIGNAL])
        {
            libc::sigdelset(&mut set, *sig);
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        // SIG_BLOCK only adds to the mask: a thread that had the kick's
        // signal blocked already (an embedder that blocks everything
        // before spawning threads) would never be kicked.
        let mut kick = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(kick.as_mut_ptr());
        let mut kick = kick.assume_init();
        libc::sigaddset(&mut kick, KICK_SIGNAL);
        let rc = libc::pthread_sigmask(libc::SIG_UNBLOCK, &kick, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
    }
    Ok(())
}

/// Most a fuel counter may be below zero in compiled code: one charge
/// before its check (a charge is a few units; this is far above any).
const FUEL_FLOOR: i64 = -(1 << 32);

/// At a trap in compiled code, store the fuel counter the code held in
/// `r15` (ABI 14) to `vm.fuel`, so what the guest spent since the last
/// store (the last builtin, host call or fuel check) is charged to it:
/// without this, a guest whose calls each ended in a trap was charged
/// almost nothing, and an embedder calling it again and again never saw
/// its fuel budget run out. A trap in an export wrapper's prologue (its
/// stack check, before it loads the counter) finds its caller's `r15`
/// instead: only a value the counter can have since the last grant is
/// taken (at most the grant, at least [`FUEL_FLOOR`]), so a stray value
/// charges at most that grant, never refills.
///
/// # Safety
///
/// `vm` is the live vmctx of the guest that trapped on this thread.
unsafe fn record_fuel(vm: *mut VmCtx, r15: i64) {
    // SAFETY: per the contract; the guest is stopped in this handler.
    unsafe {
        let r15 = crate::fuel::unkick(r15);
        if (FUEL_FLOOR..=(*vm).fuel_granted).contains(&r15) {
            (*vm).fuel = r15;
        }
    }
}

/// The deadline kick (see the module documentation): async-signal-safe,
/// atomics and plain loads only.
unsafe extern "C" fn kick_handler(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    // SAFETY: the kernel hands us valid siginfo and ucontext pointers;
    // `vm`, when non-null, is the live exec of the green thread this
    // thread runs (set by `Instance::run` around the switch into it).
    unsafe {
        if (*info).si_code == libc::SI_TIMER {
            // A tick of a kick timer (a process that sends itself SIGURG
            // from a timer of its own loses those).
            let preempt_timer = (*info).si_value().sival_ptr as usize == PREEMPT_TAG;
            if preempt_timer {
                // Fired: nothing is pending now (see `arm_preempt_by`).
                PREEMPT_ARMED_AT.with(|a| a.set(0));
            }
            let vm = CURRENT.with(|c| c.get());
            if !vm.is_null() {
                kick(vm, ctx.cast::<libc::ucontext_t>(), preempt_timer);
            }
            return;
        }
        // Any other SIGURG (out-of-band data, `kill`) goes to whoever had
        // the signal before us (by default it is ignored).
        let prev = &*(*PREV_KICK.0.get()).as_ptr();
        let prev_handler = prev.sa_sigaction;
        if prev_handler == libc::SIG_DFL
            || prev_handler == libc::SIG_IGN
            || prev_handler == kick_handler as *const () as usize
        {
            return;
        }
        chain(prev, sig, info, ctx);
    }
}

/// Kick the green thread of `vm` if its time slice is over by more than
/// the margin and the thread was interrupted in compiled code: mark its
/// counter (`r15`) so the next fuel check takes the slow path.
///
/// # Safety
///
/// `vm` is the live exec of the green thread running on this thread, `uc`
/// the context the kernel passed to the handler.
unsafe fn kick(vm: *mut VmCtx, uc: *mut libc::ucontext_t, preempt_timer: bool) {
    // SAFETY: per the contract; the guest is stopped in this handler, and
    // these fields change only on this thread.
    unsafe {
        if (*vm).status != status::RUNNING {
            return;
        }
        if (*vm).fuel_pending != 0 {
            // A counter waits to be applied and the mark that sends the
            // next check to the slow path was written over (see
            // `fuel::set_counter`): mark the counter again.
            mark_counter(vm, uc);
        }
        if (*vm).async_slice != 0 {
            preempt(vm, uc, preempt_timer);
            return;
        }
        if (*vm).fuel_sliced != 0 {
            return;
        }
        let margin = KICK_MARGIN_TSC.load(std::sync::atomic::Ordering::Relaxed);
        if crate::fuel::rdtsc() < (*vm).deadline_tsc.saturating_add(margin) {
            return;
        }
        if mark_counter(vm, uc) {
            (*vm).deadline_kicks += 1;
        }
    }
}

/// If the thread was interrupted in compiled code, mark its counter
/// (`r15`) so that the next fuel check takes the slow path. Returns
/// whether it did (not when the counter is marked already).
///
/// # Safety
///
/// As for [`kick`].
unsafe fn mark_counter(vm: *mut VmCtx, uc: *mut libc::ucontext_t) -> bool {
    // SAFETY: per the contract.
    unsafe {
        if !traps::in_compiled_code(arch::fault_pc(uc)) {
            return false;
        }
        let r15 = arch::fault_r15(uc);
        // Only a value the counter can hold (not yet kicked).
        if (FUEL_FLOOR..=(*vm).fuel_granted.max(0)).contains(&r15) {
            arch::set_fault_r15(uc, r15 - crate::fuel::KICK);
            return true;
        }
        false
    }
}

/// End the asynchronous slice of `vm` if it is due (its deadline is
/// reached or a cancel is asked for): if the thread was interrupted in
/// compiled code, make it enter `arch::async_preempt` when the handler
/// returns (noting whether it stopped inside a counter window); outside
/// compiled code do nothing (the host-call trampoline ends a due slice on
/// its way back: `fuel::end_if_due`). A preemption
/// signal that finds the slice not yet due (the timer was armed for an
/// earlier slice that ended early, or it runs on the monotonic clock and
/// came a little before the TSC deadline) arms the timer again for the
/// rest.
///
/// # Safety
///
/// As for [`kick`].
unsafe fn preempt(vm: *mut VmCtx, uc: *mut libc::ucontext_t, preempt_timer: bool) {
    // SAFETY: per the contract.
    unsafe {
        if !crate::fuel::slice_due(&*vm) {
            if preempt_timer && (*vm).cancel.load(std::sync::atomic::Ordering::Relaxed) == 0 {
                // The frequency is known: the slice's resumer converted
                // with it (`tsc_to_ns` only reads it here).
                let now = crate::fuel::rdtsc();
                let left = (*vm).deadline_tsc.saturating_sub(now);
                arm_preempt(
                    crate::fuel::tsc_to_ns(left).saturating_add(1_000),
                    now,
                    (*vm).deadline_tsc,
                );
            }
            return;
        }
        let pc = arch::fault_pc(uc);
        let Some(code_end) = traps::compiled_code_end(pc) else {
            // In a builtin, a host function, a wrapper or the runtime: the
            // host-call trampoline ends a due slice on its way back to
            // compiled code (`fuel::end_if_due`), and the CPU-time tick
            // looks again. No retry on the wall clock: a host function
            // blocked in a system call would be interrupted every few
            // microseconds (review 15).
            return;
        };
        // Between a copy of the counter and its write back, the next slice
        // must keep the counter as it is (`fuel::set_counter`): say so.
        // (Waiting for the thread to leave the window did not work: the
        // signal lands at a few favoured instructions, which in a loop whose
        // check was not rewritten to one `add` are often the window's; the
        // retries held a hash kernel's slices up to 8 ms past their deadline.)
        // SAFETY (of the call): `pc..code_end` is the registered artifact's
        // mapped code.
        let in_window = arch::in_counter_window(pc, code_end);
        if arch::inject_async_preempt(uc, vm) {
            if in_window {
                (*vm).async_suspended = crate::fuel::SUSPENDED_IN_WINDOW;
            }
            return;
        }
        // The stack pointer below the limit, where compiled code never
        // keeps it: end the slice at the next check instead.
        mark_counter(vm, uc);
    }
}

unsafe extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let vm = CURRENT.with(|c| c.get());
    // SAFETY: the kernel hands us valid siginfo and ucontext pointers; `vm`,
    // when non-null, is the live vmctx of the guest running on this thread
    // (set by the worker just before switching in).
    unsafe {
        let from_instruction = (*info).si_code > 0;
        if !vm.is_null() && from_instruction {
            let uc = ctx.cast::<libc::ucontext_t>();
            let pc = arch::fault_pc(uc);
            let kind = traps::lookup((*vm).trap_table, (*vm).trap_table_len, pc)
                .or_else(|| traps::registry_lookup(pc));
            if let Some(kind) = kind {
                record_fuel(vm, arch::fault_r15(uc));
                (*vm).trap_kind = kind as u32;
                (*vm).status = status::TRAPPED;
                arch::resume_in_abandon(uc, vm);
                return;
            }
        }
        // Not ours: hand it to whoever had the signal before us.
        let Some(idx) = SIGNALS.iter().position(|&s| s == sig) else {
            return;
        };
        // PREV[idx] was fully written before this handler was installed
        // and is never written again (see `PrevActions`).
        let prev = &*(*PREV.0.get())[idx].as_ptr();
        let prev_handler = prev.sa_sigaction;
        if prev_handler == libc::SIG_DFL
            || prev_handler == libc::SIG_IGN
            || prev_handler == handler as *const () as usize
        {
            // A real crash: default action, then let it happen again.
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
            if !from_instruction {
                libc::raise(sig);
            }
            return;
        }
        // Chain: run the previous handler as the kernel would have.
        chain(prev, sig, info, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_async_signals_blocks_all_but_faults() {
        // A fresh thread, so no other test's thread mask changes.
        std::thread::spawn(|| {
            block_async_signals().unwrap();
            // SAFETY: querying this thread's mask into a local set.
            unsafe {
                let mut cur: libc::sigset_t = std::mem::zeroed();
                assert_eq!(
                    libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut cur),
                    0
                );
                for sig in [libc::SIGUSR1, libc::SIGPROF, libc::SIGINT, libc::SIGCHLD] {
                    assert_eq!(libc::sigismember(&cur, sig), 1, "signal {sig}");
                }
                for sig in SIGNALS {
                    assert_eq!(libc::sigismember(&cur, sig), 0, "signal {sig}");
                }
            }
        })
        .join()
        .unwrap();
    }
}
