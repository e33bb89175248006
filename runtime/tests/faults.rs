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
