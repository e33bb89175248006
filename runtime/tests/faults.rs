//! Faults that are not traps must not be swallowed: checked in a child
//! process (this test binary re-executed with an environment variable).

mod common;

use common::*;
use myriad_runtime::{Instance, Outcome, Val};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

const CHILD: &str = "MYRIAD_FAULT_CHILD";

fn run_child(test: &str, mode: &str) -> std::process::ExitStatus {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, mode)
        .output()
        .unwrap()
        .status
}

/// In the child: what the parent asked for. Returns false in the parent.
fn child_mode() -> Option<String> {
    std::env::var(CHILD).ok()
}

#[test]
fn stray_fault_in_guest_kills_the_process() {
    if let Some(mode) = child_mode() {
        let region = test_region(2);
        let m = test_module();
        // A real trap first, so the handler is installed and has worked.
        let mut t = Instance::new(&region, &m, "ud2", &[]).unwrap();
        assert!(matches!(t.resume(u64::MAX), Outcome::Trapped(_)));
        match mode.as_str() {
            "guest" => {
                // ud2 at an address outside any trap table.
                let mut i = Instance::new(&region, &m, "stray", &[]).unwrap();
                let _ = i.resume(u64::MAX);
            }
            "host" => {
                // A host-side segfault with no guest running.
                // SAFETY: deliberately faulting.
                unsafe { std::ptr::read_volatile(16 as *const u64) };
            }
            _ => {}
        }
        // Must not get here.
        std::process::exit(0);
    }
    let st = run_child("stray_fault_in_guest_kills_the_process", "guest");
    assert_eq!(st.signal(), Some(libc::SIGILL), "child status {st:?}");
    let st = run_child("stray_fault_in_guest_kills_the_process", "host");
    assert_eq!(st.signal(), Some(libc::SIGSEGV), "child status {st:?}");
}

#[test]
fn trap_then_normal_work_on_same_thread() {
    if child_mode().is_some() {
        return;
    }
    let region = test_region(2);
    let m = test_module();
    for _ in 0..100 {
        let mut t = Instance::new(&region, &m, "segv", &[]).unwrap();
        assert!(matches!(t.resume(u64::MAX), Outcome::Trapped(_)));
        let mut a = Instance::new(&region, &m, "add", &[Val::I64(1), Val::I64(2)]).unwrap();
        assert_eq!(a.resume(u64::MAX), Outcome::Finished(vec![Val::I64(3)]));
    }
}

/// The page the test's own SIGSEGV handler opens up, and how often it ran.
static CHAINED_PAGE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static CHAINED_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Another runtime's handler (think JVM or GC write barrier): it owns
/// faults on `CHAINED_PAGE` and fixes them by making the page writable.
extern "C" fn foreign_handler(
    _sig: libc::c_int,
    info: *mut libc::siginfo_t,
    _ctx: *mut libc::c_void,
) {
    use std::sync::atomic::Ordering::SeqCst;
    let page = CHAINED_PAGE.load(SeqCst);
    // SAFETY: the kernel passes a valid siginfo; mprotect of our own page
    // and sigaction are async-signal-safe.
    unsafe {
        let addr = (*info).si_addr() as usize;
        if page != 0 && addr >= page && addr < page + 4096 {
            CHAINED_CALLS.fetch_add(1, SeqCst);
            libc::mprotect(page as *mut _, 4096, libc::PROT_READ | libc::PROT_WRITE);
            return;
        }
        // Not its fault either: crash.
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(libc::SIGSEGV, &dfl, std::ptr::null_mut());
    }
}

const CHAINED_OK: i32 = 42;

#[test]
fn foreign_handler_is_chained_and_ours_stays_installed() {
    use std::sync::atomic::Ordering::SeqCst;
    if child_mode().as_deref() == Some("chain") {
        // SAFETY: installing a handler and mapping a page in this child
        // process, before Myriad's handler exists.
        let page = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = foreign_handler as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGSEGV, &sa, std::ptr::null_mut()), 0);
            let p = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            p as usize
        };
        CHAINED_PAGE.store(page, SeqCst);
        // Myriad's handler goes in on top, saving the foreign one.
        myriad_runtime::thread_init().unwrap();
        let region = test_region(2);
        let m = test_module();
        for round in 1..=3usize {
            // A host fault that belongs to the foreign handler.
            // SAFETY: the page is ours; the first write faults and the
            // foreign handler makes it writable, then the write completes.
            unsafe {
                std::ptr::write_volatile(page as *mut u64, round as u64);
                assert_eq!(std::ptr::read_volatile(page as *const u64), round as u64);
                libc::mprotect(page as *mut _, 4096, libc::PROT_NONE);
            }
            assert_eq!(CHAINED_CALLS.load(SeqCst), round);
            // Myriad still maps guest faults on this thread to traps.
            let mut t = Instance::new(&region, &m, "segv", &[]).unwrap();
            assert_eq!(
                t.resume(u64::MAX),
                Outcome::Trapped(myriad_runtime::TrapKind::HeapOutOfBounds)
            );
            let mut t = Instance::new(&region, &m, "ud2", &[]).unwrap();
            assert_eq!(
                t.resume(u64::MAX),
                Outcome::Trapped(myriad_runtime::TrapKind::Unreachable)
            );
        }
        std::process::exit(CHAINED_OK);
    }
    if child_mode().is_some() {
        return;
    }
    let st = run_child(
        "foreign_handler_is_chained_and_ours_stays_installed",
        "chain",
    );
    assert_eq!(st.code(), Some(CHAINED_OK), "child status {st:?}");
}
