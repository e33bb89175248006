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
//! Any other fault is a real crash: the handler reinstates the disposition
//! that was there before ours (`SIG_DFL` if none/ignored) and returns, so
//! the instruction faults again and the process dies as it would have
//! without Myriad (a signal sent with `kill` is re-raised instead).

use crate::switch;
use crate::vmctx::{status, TrapEntry, VmCtx};
use std::cell::Cell;
use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::Once;

thread_local! {
    /// The vmctx of the guest this thread is running, or null.
    pub static CURRENT: Cell<*mut VmCtx> = const { Cell::new(std::ptr::null_mut()) };
    static ALT_READY: Cell<bool> = const { Cell::new(false) };
    static ALT_STACK: AltStack = const { AltStack { base: Cell::new(std::ptr::null_mut()) } };
}

/// Size of each worker thread's alternate signal stack (plus a guard page).
pub const ALT_STACK_SIZE: usize = 64 * 1024;

const SIGNALS: [libc::c_int; 4] = [libc::SIGILL, libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE];

/// Dispositions that were installed before ours, indexed like `SIGNALS`.
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

/// Install the process-wide fault handler (once) and give the calling
/// thread an alternate signal stack. Call on every worker thread before it
/// runs guests; [`crate::Instance`] calls it lazily too. Idempotent.
/// Fails only if the signal stack cannot be mapped or installed.
pub fn thread_init() -> std::io::Result<()> {
    if ALT_READY.with(|r| r.get()) {
        return Ok(());
    }
    INSTALL.call_once(install_handlers);
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
    Ok(())
}

/// Whether [`thread_init`] has run on this thread.
#[inline]
pub fn thread_ready() -> bool {
    ALT_READY.with(|r| r.get())
}

fn install_handlers() {
    for (i, &sig) in SIGNALS.iter().enumerate() {
        // SAFETY: a zeroed sigaction is valid; we fill handler, flags and an
        // empty mask. PREV is only written here, before our handler for
        // `sig` exists.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            let prev = (*PREV.0.get())[i].as_mut_ptr();
            let rc = libc::sigaction(sig, &sa, prev);
            assert_eq!(
                rc,
                0,
                "sigaction failed: {}",
                std::io::Error::last_os_error()
            );
        }
    }
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

unsafe extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let vm = CURRENT.with(|c| c.get());
    // SAFETY: the kernel hands us valid siginfo and ucontext pointers; `vm`,
    // when non-null, is the live vmctx of the guest running on this thread
    // (set by the worker just before switching in).
    unsafe {
        let from_instruction = (*info).si_code > 0;
        if !vm.is_null() && from_instruction {
            let uc = ctx.cast::<libc::ucontext_t>();
            let gregs = &mut (*uc).uc_mcontext.gregs;
            let pc = gregs[libc::REG_RIP as usize] as usize;
            if let Some(kind) = lookup((*vm).trap_table, (*vm).trap_table_len, pc) {
                (*vm).trap_kind = kind as u32;
                (*vm).status = status::TRAPPED;
                gregs[libc::REG_RIP as usize] = switch::abandon_addr() as i64;
                gregs[libc::REG_RDI as usize] = vm as i64;
                // abandon loads rsp from host_sp itself; point rsp at a valid,
                // aligned spot on the worker stack meanwhile.
                gregs[libc::REG_RSP as usize] = (((*vm).host_sp - 256) & !15) as i64;
                return;
            }
        }
        // Not ours: put back the previous disposition and let it happen again.
        let idx = SIGNALS.iter().position(|&s| s == sig).unwrap_or(0);
        let prev = (*PREV.0.get())[idx].as_ptr();
        let prev_handler = (*prev).sa_sigaction;
        if prev_handler == libc::SIG_IGN || prev_handler == handler as *const () as usize {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        } else {
            libc::sigaction(sig, prev, std::ptr::null_mut());
        }
        if !from_instruction {
            libc::raise(sig);
        }
    }
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
