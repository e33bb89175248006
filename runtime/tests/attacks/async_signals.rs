//! Attack: an asynchronous signal delivered to a thread while it runs a
//! guest. The kernel would push its signal frame (1–4 KiB of register
//! state) and run the handler on the guest's small stack, below the stack
//! limit and into the neighbouring slot, whatever the compiled code
//! checks. Here a host-side handler without `SA_ONSTACK` (as a profiler or
//! an embedder might install) records the stack it runs on while another
//! thread keeps signalling the thread that runs a spinning guest, which
//! never asked for anything (no `block_async_signals` of its own).
//!
//! Must hold: the handler never runs on a stack inside the region.

use crate::harness::{compile, in_child};
use myriad_runtime::{Instance, Outcome, Region, RegionConfig, Val};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

static REGION_LO: AtomicUsize = AtomicUsize::new(0);
static REGION_HI: AtomicUsize = AtomicUsize::new(0);
static ON_GUEST_STACK: AtomicUsize = AtomicUsize::new(0);
static DELIVERED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn record(_: libc::c_int) {
    let probe = 0u8;
    let sp = &probe as *const u8 as usize;
    if sp >= REGION_LO.load(Ordering::Relaxed) && sp < REGION_HI.load(Ordering::Relaxed) {
        ON_GUEST_STACK.fetch_add(1, Ordering::Relaxed);
    }
    DELIVERED.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn signals_never_run_on_a_guest_stack() {
    in_child("async_signals::signals_never_run_on_a_guest_stack", || {
        let region = Arc::new(
            Region::new(RegionConfig {
                slots: 1,
                stack_size: 16 * 1024,
                heap_capacity: 0,
                guard_size: 0,
                guard_mode: false,
                heap_reservation: 0,
            })
            .expect("region"),
        );
        let (lo, len) = region.mapping();
        REGION_LO.store(lo, Ordering::Relaxed);
        REGION_HI.store(lo + len, Ordering::Relaxed);
        // SAFETY: a plain handler for SIGUSR1 (no SA_ONSTACK) that only
        // touches atomics.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = record as *const () as usize;
            sa.sa_flags = 0;
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
        }
        let spin = compile(
            "(module (func (export \"run\") (param $n i64) (result i64)
               (loop $l (local.set $n (i64.sub (local.get $n) (i64.const 1)))
                        (br_if $l (i64.ne (local.get $n) (i64.const 0))))
               (local.get $n)))",
        );
        let running = Arc::new(AtomicBool::new(true));
        let (tx, rx) = std::sync::mpsc::channel();
        let guest_thread = {
            let region = region.clone();
            let running = running.clone();
            std::thread::spawn(move || {
                // SAFETY: pthread_self has no preconditions.
                tx.send(unsafe { libc::pthread_self() })
                    .expect("send thread id");
                let mut inst =
                    Instance::new(&region, &spin, "run", &[Val::I64(400_000_000)]).expect("spin");
                let end = loop {
                    match inst.resume(myriad_runtime::rdtsc() + 1_000_000) {
                        Outcome::Yielded => continue,
                        other => break other,
                    }
                };
                running.store(false, Ordering::Relaxed);
                end
            })
        };
        let target = rx.recv().expect("thread id");
        let mut sent = 0;
        while running.load(Ordering::Relaxed) {
            // SAFETY: the thread is alive until `running` turns false
            // (joined below).
            unsafe { libc::pthread_kill(target, libc::SIGUSR1) };
            sent += 1;
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let end = guest_thread.join().expect("guest thread");
        assert_eq!(end, Outcome::Finished(vec![Val::I64(0)]));
        assert!(
            sent > 10,
            "the guest ended before the attack ({sent} signals)"
        );
        assert_eq!(
            ON_GUEST_STACK.load(Ordering::Relaxed),
            0,
            "a signal handler ran on a guest stack ({} of {} deliveries, {sent} sent)",
            ON_GUEST_STACK.load(Ordering::Relaxed),
            DELIVERED.load(Ordering::Relaxed)
        );
    });
}
