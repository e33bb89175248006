//! Tests of the embedding API: spawn_with (linker, data), handles,
//! limits, park/resume under concurrency, capacity, messages.

mod common;
use common::module;

use myriad_runtime::{Caller, HostAction, Linker, Module, Val};
use myriad_scheduler::{
    messaging, InstanceError, InstanceHandle, InstanceState, Limit, ResumeError, Scheduler,
    SchedulerConfig, SendError, SpawnError, SpawnOptions,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(workers: usize, capacity: usize) -> SchedulerConfig {
    SchedulerConfig {
        workers,
        capacity,
        quantum: Duration::from_micros(100),
        stack_size: 16 * 1024,
        heap_capacity: 128 * 1024,
        pin_workers: false,
        ..SchedulerConfig::default()
    }
}

const SPIN: &str = r#"(module (func (export "run") (loop $l (br $l))))"#;

/// Calls `env.park` `n` times and returns the sum of what it returned.
const PARKER: &str = r#"(module
  (import "env" "park" (func $park (result i32)))
  (func (export "run") (param $n i32) (result i32)
    (local $acc i32)
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $acc (i32.add (local.get $acc) (call $park)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $l)))
    (local.get $acc)))"#;

/// The ring guest of the token_ring example.
const RING: &str = r#"(module
  (import "myriad" "send" (func $send (param i64 i32 i32) (result i32)))
  (import "myriad" "recv" (func $recv (param i32 i32) (result i32)))
  (memory 64 64 (pagesize 1))
  (func (export "run") (param $rounds i32) (result i32)
    (local $next i64) (local $i i32)
    (drop (call $recv (i32.const 0) (i32.const 8)))
    (local.set $next (i64.load (i32.const 0)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $rounds)))
        (drop (call $recv (i32.const 8) (i32.const 4)))
        (i32.store (i32.const 8) (i32.add (i32.load (i32.const 8)) (i32.const 1)))
        (drop (call $send (local.get $next) (i32.const 8) (i32.const 4)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (i32.load (i32.const 8))))"#;

fn park_linker() -> Arc<Linker> {
    let mut l = Linker::new();
    l.func_wrap(
        "env",
        "park",
        |_: &mut Caller<'_>| -> Result<i32, HostAction> { Err(HostAction::Park) },
    );
    Arc::new(l)
}

/// Sleeps `n` times for `ms` milliseconds each through `env.sleep_ms`,
/// then returns 7.
const SLEEPER: &str = r#"(module
  (import "env" "sleep_ms" (func $sleep (param i64)))
  (func (export "run") (param $ms i64) (param $n i32) (result i32)
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get $n)))
        (call $sleep (local.get $ms))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $l)))
    (i32.const 7)))"#;

fn sleep_linker() -> Arc<Linker> {
    let mut l = Linker::new();
    l.func_wrap(
        "env",
        "sleep_ms",
        |_: &mut Caller<'_>, ms: i64| -> Result<(), HostAction> {
            Err(HostAction::Sleep(Duration::from_millis(ms as u64)))
        },
    );
    Arc::new(l)
}

fn spawn_sleeper(
    s: &Scheduler,
    l: &Arc<Linker>,
    ms: i64,
    n: i32,
    opts: SpawnOptions,
) -> InstanceHandle {
    static SLEEPER_MODULE: std::sync::OnceLock<Arc<Module>> = std::sync::OnceLock::new();
    s.spawn_with(
        SLEEPER_MODULE.get_or_init(|| module(SLEEPER)),
        "run",
        &[Val::I64(ms), Val::I32(n)],
        opts.linker(l),
    )
    .unwrap()
}

fn wait_state(h: &InstanceHandle, s: InstanceState) {
    let t = Instant::now();
    while h.state() != s {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "stuck in {:?}",
            h.state()
        );
        std::thread::yield_now();
    }
}

#[test]
fn spawn_with_linker_and_data() {
    let m = module(
        r#"(module
      (import "env" "bump" (func $bump (param i32) (result i32)))
      (import "env" "strlen" (func $strlen (param i32 i32) (result i32)))
      (memory 1)
      (data (i32.const 16) "hello")
      (func (export "run") (result i32)
        (i32.add (call $bump (i32.const 5)) (call $strlen (i32.const 16) (i32.const 5)))))"#,
    );
    let mut l = Linker::new();
    l.func_wrap("env", "bump", |c: &mut Caller<'_>, by: i32| -> i32 {
        let d = c.data::<i32>().expect("data is an i32");
        *d += by;
        *d
    });
    l.func_wrap(
        "env",
        "strlen",
        |c: &mut Caller<'_>, p: u32, n: u32| -> i32 {
            let s = &c.memory()[p as usize..(p + n) as usize];
            assert_eq!(s, b"hello");
            s.len() as i32
        },
    );
    let l = Arc::new(l);
    let s = Scheduler::new(config(2, 8)).unwrap();
    let h = s
        .spawn_with(&m, "run", &[], SpawnOptions::new().linker(&l).data(100i32))
        .unwrap();
    assert_eq!(h.join(), Ok(vec![Val::I32(110)]));
    assert_eq!(h.state(), InstanceState::Finished);
    assert!(h.stats().slices >= 1);
    assert_eq!(h.try_result(), Some(Ok(vec![Val::I32(110)])));
    // Without the linker the imports are missing.
    assert!(matches!(
        s.spawn(&m, "run", &[]),
        Err(SpawnError::Instantiate(_))
    ));
    let empty = Arc::new(Linker::new());
    assert!(matches!(
        s.spawn_with(&m, "run", &[], SpawnOptions::new().linker(&empty)),
        Err(SpawnError::Link(_))
    ));
    assert!(s.wait_idle(Duration::from_secs(5)));
    assert_eq!(s.free_slots(), 8);
}

#[test]
fn shared_state_imports_are_refused_with_a_clear_error() {
    use myriad_runtime::{Extern, Global, Instance, Region, RegionConfig, Table, ValType};
    // A library instance whose table, memory, mutable global and function
    // instances on several workers would use at once.
    let lib = module(
        r#"(module
             (table (export "t") 1 funcref)
             (memory (export "m") 1)
             (global (export "g") (mut i32) (i32.const 0))
             (global (export "c") i32 (i32.const 7))
             (func (export "f") (result i32) (i32.const 1)))"#,
    );
    let region = Arc::new(
        Region::new(RegionConfig {
            slots: 1,
            stack_size: 16 * 1024,
            heap_capacity: 128 * 1024,
            guard_size: 0,
            guard_mode: false,
            heap_reservation: 0,
        })
        .unwrap(),
    );
    let lib = Instance::instantiate(&region, &lib).unwrap();
    let s = Scheduler::new(config(2, 4)).unwrap();
    let cases = [
        ("(import \"lib\" \"t\" (table 1 funcref))", "table"),
        ("(import \"lib\" \"m\" (memory 1))", "memory"),
        (
            "(import \"lib\" \"g\" (global (mut i32)))",
            "mutable global",
        ),
        (
            "(import \"lib\" \"f\" (func (result i32)))",
            "wasm function",
        ),
        ("(import \"host\" \"t\" (table 1 funcref))", "table"),
        (
            "(import \"host\" \"g\" (global (mut i32)))",
            "mutable global",
        ),
        (
            "(import \"lib\" \"c\" (global i32))",
            "global of another instance",
        ),
    ];
    let mut l = Linker::new();
    l.instance("lib", &lib);
    l.define(
        "host",
        "t",
        Extern::Table(Table::new(ValType::FuncRef, 1, None)),
    );
    l.define(
        "host",
        "g",
        Extern::Global(Global::new(Val::I32(0), true).unwrap()),
    );
    l.define(
        "host",
        "c",
        Extern::Global(Global::new(Val::I32(7), false).unwrap()),
    );
    let l = Arc::new(l);
    for (import, kind) in cases {
        let m = module(&format!("(module {import} (func (export \"run\")))"));
        match s.spawn_with(&m, "run", &[], SpawnOptions::new().linker(&l)) {
            Err(SpawnError::SharedImport { kind: k, .. }) => assert_eq!(k, kind, "{import}"),
            other => panic!("{import}: expected SharedImport, got {other:?}"),
        }
    }
    // An immutable host-made global is fine: nothing can change it.
    let m = module(
        r#"(module (import "host" "c" (global i32))
             (func (export "run") (result i32) (global.get 0)))"#,
    );
    let h = s
        .spawn_with(&m, "run", &[], SpawnOptions::new().linker(&l))
        .unwrap();
    assert_eq!(h.join(), Ok(vec![Val::I32(7)]));
    assert!(s.wait_idle(Duration::from_secs(5)));
    assert_eq!(s.free_slots(), 4, "refused spawns took no slot");
}

#[test]
fn handle_api_on_parked_instance() {
    let m = module(PARKER);
    let l = park_linker();
    let s = Scheduler::new(config(1, 8)).unwrap();
    let h = s
        .spawn_with(&m, "run", &[Val::I32(2)], SpawnOptions::new().linker(&l))
        .unwrap();
    wait_state(&h, InstanceState::Parked);
    assert_eq!(h.try_result(), None);
    assert_eq!(h.join_timeout(Duration::from_millis(20)), None);
    h.resume(&[Val::I32(40)]).unwrap();
    wait_state(&h, InstanceState::Parked);
    h.resume(&[Val::I32(2)]).unwrap();
    assert_eq!(
        h.join_timeout(Duration::from_secs(5)),
        Some(Ok(vec![Val::I32(42)]))
    );
    assert_eq!(h.resume(&[Val::I32(1)]), Err(ResumeError::Ended));
    assert_eq!(s.handle(h.id()).map(|x| x.id()), None);
    assert!(h.stats().slices >= 3);
    let report = s.shutdown();
    assert!(report.metrics.slices >= 3);
}

#[test]
fn resume_of_queued_instance_fails() {
    let m = module(PARKER);
    let l = park_linker();
    let s = Scheduler::new(SchedulerConfig {
        start_paused: true,
        ..config(1, 4)
    })
    .unwrap();
    let h = s
        .spawn_with(&m, "run", &[Val::I32(1)], SpawnOptions::new().linker(&l))
        .unwrap();
    assert_eq!(h.state(), InstanceState::Runnable);
    assert_eq!(h.resume(&[Val::I32(1)]), Err(ResumeError::NotParked));
    s.start();
    wait_state(&h, InstanceState::Parked);
    h.resume(&[Val::I32(7)]).unwrap();
    assert_eq!(h.join(), Ok(vec![Val::I32(7)]));
}

#[test]
fn cancel_parked_frees_slot() {
    let m = module(PARKER);
    let l = park_linker();
    let s = Scheduler::new(config(2, 4)).unwrap();
    let hs: Vec<_> = (0..4)
        .map(|_| {
            s.spawn_with(&m, "run", &[Val::I32(1)], SpawnOptions::new().linker(&l))
                .unwrap()
        })
        .collect();
    for h in &hs {
        wait_state(h, InstanceState::Parked);
    }
    // Parked instances hold their slots: the scheduler is full, and a
    // spawn fails at once rather than blocking.
    let spin_module = module(SPIN);
    let t = Instant::now();
    assert!(matches!(
        s.spawn(&spin_module, "run", &[]),
        Err(SpawnError::AtCapacity { capacity: 4 })
    ));
    assert!(t.elapsed() < Duration::from_secs(1));
    hs[0].cancel();
    assert_eq!(hs[0].join(), Err(InstanceError::Cancelled));
    assert_eq!(hs[0].state(), InstanceState::Cancelled);
    assert_eq!(s.free_slots(), 1);
    let spin = s.spawn(&module(SPIN), "run", &[]).unwrap();
    spin.cancel();
    assert_eq!(spin.join(), Err(InstanceError::Cancelled));
    // Shutdown cancels the parked rest.
    drop(s);
    for h in &hs[1..] {
        assert_eq!(h.join(), Err(InstanceError::Cancelled));
    }
}

#[test]
fn many_parked_resumed_from_several_threads() {
    const N: usize = 200;
    const PARKS: i32 = 10;
    let m = module(PARKER);
    let l = park_linker();
    let s = Scheduler::new(config(2, N)).unwrap();
    let hs: Arc<Vec<_>> = Arc::new(
        (0..N)
            .map(|_| {
                s.spawn_with(
                    &m,
                    "run",
                    &[Val::I32(PARKS)],
                    SpawnOptions::new().linker(&l),
                )
                .unwrap()
            })
            .collect(),
    );
    let resumed = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let hs = Arc::clone(&hs);
            let resumed = Arc::clone(&resumed);
            std::thread::spawn(move || {
                let start = Instant::now();
                while resumed.load(Ordering::SeqCst) < N * PARKS as usize {
                    assert!(start.elapsed() < Duration::from_secs(20));
                    for h in hs.iter().skip(t).step_by(4) {
                        if h.state() == InstanceState::Parked && h.resume(&[Val::I32(3)]).is_ok() {
                            resumed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for h in hs.iter() {
        assert_eq!(h.join(), Ok(vec![Val::I32(3 * PARKS)]));
    }
    assert_eq!(s.free_slots(), N);
    // `join` returns once the result is published; the live count drops
    // just after.
    assert!(s.wait_idle(Duration::from_secs(10)));
    assert_eq!(s.live(), 0);
}

#[test]
fn resume_before_park_is_published_is_not_lost() {
    // The host function hands its own handle to another thread, which
    // resumes it while the worker may still be parking it.
    const N: usize = 300;
    let m = module(PARKER);
    let mut l = Linker::new();
    l.func_wrap(
        "env",
        "park",
        |_: &mut Caller<'_>| -> Result<i32, HostAction> {
            let me = messaging::current().expect("runs under a scheduler");
            std::thread::spawn(move || loop {
                match me.resume(&[Val::I32(5)]) {
                    Ok(()) => break,
                    Err(ResumeError::NotParked) => std::thread::yield_now(),
                    Err(e) => panic!("resume failed: {e}"),
                }
            });
            Err(HostAction::Park)
        },
    );
    let l = Arc::new(l);
    let s = Scheduler::new(config(2, N)).unwrap();
    let hs: Vec<_> = (0..N)
        .map(|_| {
            s.spawn_with(&m, "run", &[Val::I32(2)], SpawnOptions::new().linker(&l))
                .unwrap()
        })
        .collect();
    for h in &hs {
        assert_eq!(
            h.join_timeout(Duration::from_secs(10)),
            Some(Ok(vec![Val::I32(10)]))
        );
    }
    assert_eq!(s.free_slots(), N);
}

#[test]
fn resume_racing_with_cancel_loses_no_slot() {
    let m = module(PARKER);
    let l = park_linker();
    let s = Arc::new(Scheduler::new(config(2, 16)).unwrap());
    let (mut ok, mut cancelled) = (0, 0);
    for _ in 0..300 {
        let h = s
            .spawn_with(&m, "run", &[Val::I32(1)], SpawnOptions::new().linker(&l))
            .unwrap();
        wait_state(&h, InstanceState::Parked);
        let h2 = h.clone();
        let a = std::thread::spawn(move || {
            let _ = h2.resume(&[Val::I32(1)]);
        });
        h.cancel();
        a.join().unwrap();
        match h.join_timeout(Duration::from_secs(5)).expect("ends") {
            Ok(v) => {
                assert_eq!(v, vec![Val::I32(1)]);
                ok += 1
            }
            Err(InstanceError::Cancelled) => cancelled += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(ok + cancelled, 300);
    assert!(s.wait_idle(Duration::from_secs(5)));
    assert_eq!(s.free_slots(), 16);
}

#[test]
fn fuel_limit() {
    let s = Scheduler::new(config(1, 4)).unwrap();
    let h = s
        .spawn_with(&module(SPIN), "run", &[], SpawnOptions::new().fuel(100_000))
        .unwrap();
    assert_eq!(
        h.join_timeout(Duration::from_secs(10)),
        Some(Err(InstanceError::Limit(Limit::Fuel)))
    );
    assert_eq!(h.state(), InstanceState::Limited);
}

#[test]
fn cpu_time_limit() {
    let s = Scheduler::new(config(1, 4)).unwrap();
    let h = s
        .spawn_with(
            &module(SPIN),
            "run",
            &[],
            SpawnOptions::new().cpu_time(Duration::from_millis(20)),
        )
        .unwrap();
    assert_eq!(
        h.join_timeout(Duration::from_secs(10)),
        Some(Err(InstanceError::Limit(Limit::CpuTime)))
    );
    let cpu = h.stats().cpu_ns;
    // At least the budget; at most about a quantum over it, plus whatever
    // the OS took from the worker inside a slice (slice time is wall time
    // on the worker), so the upper bound is loose.
    assert!((20_000_000..2_000_000_000).contains(&cpu), "cpu {cpu} ns");
}

#[test]
fn deadline_limit_running_and_parked() {
    let s = Scheduler::new(config(2, 4)).unwrap();
    let (spin_module, parker) = (module(SPIN), module(PARKER));
    let t = Instant::now();
    let spin = s
        .spawn_with(
            &spin_module,
            "run",
            &[],
            SpawnOptions::new().timeout(Duration::from_millis(30)),
        )
        .unwrap();
    let l = park_linker();
    let parked = s
        .spawn_with(
            &parker,
            "run",
            &[Val::I32(1)],
            SpawnOptions::new()
                .linker(&l)
                .timeout(Duration::from_millis(50)),
        )
        .unwrap();
    assert_eq!(spin.join(), Err(InstanceError::Limit(Limit::Deadline)));
    assert_eq!(parked.join(), Err(InstanceError::Limit(Limit::Deadline)));
    let e = t.elapsed();
    assert!(
        e >= Duration::from_millis(50) && e < Duration::from_secs(2),
        "{e:?}"
    );
    assert!(s.wait_idle(Duration::from_secs(1)));
    assert_eq!(s.free_slots(), 4);
}

#[test]
fn memory_limit() {
    let m = module(
        r#"(module (memory 1 2)
      (func (export "run") (result i32) (memory.grow (i32.const 1))))"#,
    );
    let s = Scheduler::new(config(1, 4)).unwrap();
    let h = s
        .spawn_with(&m, "run", &[], SpawnOptions::new().memory(65536))
        .unwrap();
    assert_eq!(h.join(), Err(InstanceError::Limit(Limit::Memory)));
    let ok = s
        .spawn_with(&m, "run", &[], SpawnOptions::new().memory(2 * 65536))
        .unwrap();
    assert_eq!(ok.join(), Ok(vec![Val::I32(1)]));
    // Table storage counts too: a guest cannot dodge the limit by growing
    // a table instead of its memory.
    let t = module(
        r#"(module (table 0 externref)
      (func (export "run") (result i32) (table.grow (ref.null extern) (i32.const 100000))))"#,
    );
    let h = s
        .spawn_with(&t, "run", &[], SpawnOptions::new().memory(64 * 1024))
        .unwrap();
    assert_eq!(h.join(), Err(InstanceError::Limit(Limit::Memory)));
    let ok = s
        .spawn_with(&t, "run", &[], SpawnOptions::new().memory(1 << 20))
        .unwrap();
    assert_eq!(ok.join(), Ok(vec![Val::I32(0)]));
    // A module whose initial table is already past the limit ends before
    // it runs.
    let big = module(
        r#"(module (table 1000000 externref)
      (func (export "run") (result i32) (table.size)))"#,
    );
    let h = s
        .spawn_with(&big, "run", &[], SpawnOptions::new().memory(64 * 1024))
        .unwrap();
    assert_eq!(h.join(), Err(InstanceError::Limit(Limit::Memory)));
    assert_eq!(h.stats().slices, 1);
}

#[test]
fn embedder_messages() {
    let m = module(
        r#"(module
      (import "myriad" "recv" (func $recv (param i32 i32) (result i32)))
      (import "myriad" "self" (func $self (result i64)))
      (memory 1)
      (func (export "run") (result i32 i64)
        (drop (call $recv (i32.const 0) (i32.const 2)))
        (call $recv (i32.const 0) (i32.const 16))
        (call $self)))"#,
    );
    let mut l = Linker::new();
    messaging::add_to_linker(&mut l);
    let l = Arc::new(l);
    let s = Scheduler::new(config(1, 4)).unwrap();
    let h = s
        .spawn_with(&m, "run", &[], SpawnOptions::new().linker(&l))
        .unwrap();
    h.send(b"ab".to_vec()).unwrap();
    wait_state(&h, InstanceState::Parked);
    // A second message, addressed by id through the scheduler.
    s.send(h.id(), b"hello world".to_vec()).unwrap();
    assert_eq!(h.join(), Ok(vec![Val::I32(11), Val::I64(h.id() as i64)]));
    assert_eq!(
        s.send(h.id(), vec![1]),
        Err(SendError::NoSuchInstance(h.id()))
    );
    assert!(h.send(vec![1]).is_err());
}

fn run_ring(s: &Scheduler, n: usize, rounds: i32) -> Vec<InstanceHandle> {
    let m = module(RING);
    let mut l = Linker::new();
    messaging::add_to_linker(&mut l);
    let l = Arc::new(l);
    let hs: Vec<_> = (0..n)
        .map(|_| {
            s.spawn_with(
                &m,
                "run",
                &[Val::I32(rounds)],
                SpawnOptions::new().linker(&l),
            )
            .unwrap()
        })
        .collect();
    for (i, h) in hs.iter().enumerate() {
        h.send(hs[(i + 1) % n].id().to_le_bytes().to_vec()).unwrap();
    }
    hs[0].send(0u32.to_le_bytes().to_vec()).unwrap();
    hs
}

#[test]
fn message_ring_of_1000() {
    let n = 1000;
    let rounds = 5;
    let s = Scheduler::new(SchedulerConfig {
        heap_capacity: 16 * 1024,
        ..config(2, n)
    })
    .unwrap();
    let hs = run_ring(&s, n, rounds);
    for (i, h) in hs.iter().enumerate() {
        let want = (rounds as usize - 1) * n + i + 1;
        assert_eq!(
            h.join_timeout(Duration::from_secs(20)),
            Some(Ok(vec![Val::I32(want as i32)])),
            "instance {i}"
        );
    }
    assert_eq!(s.free_slots(), n);
}

#[test]
fn scheduler_and_handles_are_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<Scheduler>();
    check::<InstanceHandle>();
    fn send<T: Send>() {}
    send::<SpawnOptions>();
}

#[test]
fn a_sleeping_instance_frees_its_worker_and_is_not_resumable() {
    // One worker: if a sleep blocked it, the spinner could not finish.
    let s = Scheduler::new(config(1, 4)).unwrap();
    let l = sleep_linker();
    let long = spawn_sleeper(&s, &l, 3_600_000, 1, SpawnOptions::new());
    wait_state(&long, InstanceState::Sleeping);
    let busy = s
        .spawn(
            &module(
                r#"(module (func (export "run") (result i32) (local $i i32)
                (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
                  (br_if $l (i32.lt_u (local.get $i) (i32.const 10000000))))
                (local.get $i)))"#,
            ),
            "run",
            &[],
        )
        .unwrap();
    assert_eq!(busy.join(), Ok(vec![Val::I32(10_000_000)]));
    assert_eq!(long.state(), InstanceState::Sleeping);
    // It waits for the clock, not for values or messages.
    assert_eq!(long.resume(&[]), Err(ResumeError::NotParked));
    long.send(b"hi".to_vec()).unwrap();
    assert_eq!(long.state(), InstanceState::Sleeping);
    // Cancel ends the hour-long sleep now and frees the slot.
    long.cancel();
    assert_eq!(
        long.join_timeout(Duration::from_secs(10)),
        Some(Err(InstanceError::Cancelled))
    );
    assert!(s.wait_idle(Duration::from_secs(10)));
    assert_eq!(s.free_slots(), 4);
}

#[test]
fn sleeps_last_at_least_their_time_and_end_with_results() {
    let s = Scheduler::new(config(2, 8)).unwrap();
    let l = sleep_linker();
    let t = Instant::now();
    let h = spawn_sleeper(&s, &l, 15, 3, SpawnOptions::new());
    assert_eq!(h.join(), Ok(vec![Val::I32(7)]));
    assert!(
        t.elapsed() >= Duration::from_millis(45),
        "{:?}",
        t.elapsed()
    );
    // A zero sleep is a yield.
    let h = spawn_sleeper(&s, &l, 0, 100, SpawnOptions::new());
    assert_eq!(h.join(), Ok(vec![Val::I32(7)]));
    assert_eq!(h.stats().slices, 101);
}

#[test]
fn deadline_and_shutdown_end_sleepers() {
    let s = Scheduler::new(config(2, 8)).unwrap();
    let l = sleep_linker();
    let t = Instant::now();
    let limited = spawn_sleeper(
        &s,
        &l,
        3_600_000,
        1,
        SpawnOptions::new().timeout(Duration::from_millis(30)),
    );
    assert_eq!(
        limited.join_timeout(Duration::from_secs(30)),
        Some(Err(InstanceError::Limit(Limit::Deadline)))
    );
    assert!(t.elapsed() >= Duration::from_millis(30));
    // A deadline after the wake-up is checked when it wakes.
    let woke = spawn_sleeper(
        &s,
        &l,
        10,
        1,
        SpawnOptions::new().timeout(Duration::from_secs(3600)),
    );
    assert_eq!(woke.join(), Ok(vec![Val::I32(7)]));
    let stranded = spawn_sleeper(&s, &l, 3_600_000, 1, SpawnOptions::new());
    wait_state(&stranded, InstanceState::Sleeping);
    drop(s.shutdown());
    assert_eq!(
        stranded.join_timeout(Duration::from_secs(10)),
        Some(Err(InstanceError::Cancelled))
    );
}

#[test]
fn thousands_of_sleepers_overlap_on_two_workers() {
    // 2,000 instances sleeping 3 x 20 ms: blocking sleeps would take
    // 2000 * 60 ms / 2 workers = 60 s; timer sleeps overlap.
    let s = Scheduler::new(config(2, 2000)).unwrap();
    let l = sleep_linker();
    let t = Instant::now();
    let hs: Vec<_> = (0..2000)
        .map(|_| spawn_sleeper(&s, &l, 20, 3, SpawnOptions::new()))
        .collect();
    for h in &hs {
        assert_eq!(h.join(), Ok(vec![Val::I32(7)]));
    }
    let e = t.elapsed();
    assert!(e >= Duration::from_millis(60), "{e:?}");
    assert!(e < Duration::from_secs(30), "sleeps did not overlap: {e:?}");
    assert!(s.wait_idle(Duration::from_secs(10)));
    assert_eq!(s.free_slots(), 2000);
}

#[test]
fn a_receiver_waiting_in_recv_gets_a_guest_message_directly_unless_it_does_not_fit() {
    // The receiver parks in a recv whose buffer is too small for the
    // 8-byte message: it learns the length (-8) and the message stays
    // queued for the next recv; a second message then finds it parked with
    // room and is copied straight into its buffer (the direct hand-over).
    let receiver = module(
        r#"(module
      (import "myriad" "recv" (func $recv (param i32 i32) (result i32)))
      (memory 1)
      (func (export "run") (result i32 i32 i64 i32 i64)
        (local $a i32) (local $b i32) (local $x i64) (local $c i32)
        (local.set $a (call $recv (i32.const 0) (i32.const 4)))
        (local.set $b (call $recv (i32.const 0) (i32.const 16)))
        (local.set $x (i64.load (i32.const 0)))
        (local.set $c (call $recv (i32.const 64) (i32.const 16)))
        (local.get $a) (local.get $b) (local.get $x) (local.get $c)
        (i64.load (i32.const 64))))"#,
    );
    let sender = module(
        r#"(module
      (import "myriad" "send" (func $send (param i64 i32 i32) (result i32)))
      (memory 1)
      (func (export "run") (param $to i64) (param $v i64) (result i32)
        (i64.store (i32.const 0) (local.get $v))
        (call $send (local.get $to) (i32.const 0) (i32.const 8))))"#,
    );
    let mut l = Linker::new();
    messaging::add_to_linker(&mut l);
    let l = Arc::new(l);
    let s = Scheduler::new(config(2, 4)).unwrap();
    let r = s
        .spawn_with(&receiver, "run", &[], SpawnOptions::new().linker(&l))
        .unwrap();
    let send = |v: i64| {
        let h = s
            .spawn_with(
                &sender,
                "run",
                &[Val::I64(r.id() as i64), Val::I64(v)],
                SpawnOptions::new().linker(&l),
            )
            .unwrap();
        assert_eq!(h.join(), Ok(vec![Val::I32(0)]));
    };
    wait_state(&r, InstanceState::Parked);
    send(0x1122_3344_5566_7788);
    // The second recv takes the queued message at once; the third parks.
    wait_state(&r, InstanceState::Parked);
    send(42);
    assert_eq!(
        r.join_timeout(Duration::from_secs(10)),
        Some(Ok(vec![
            Val::I32(-8),
            Val::I32(8),
            Val::I64(0x1122_3344_5566_7788),
            Val::I32(8),
            Val::I64(42),
        ]))
    );
    assert!(s.wait_idle(Duration::from_secs(10)));
    assert_eq!(s.free_slots(), 4);
}

#[test]
fn an_ended_receiver_frees_its_mailbox_and_oversized_messages_are_refused_even_when_it_waits() {
    let mut l = Linker::new();
    messaging::add_to_linker(&mut l);
    let l = Arc::new(l);
    let s = Scheduler::new(SchedulerConfig {
        mailbox_bytes: 1024,
        ..config(1, 8)
    })
    .unwrap();
    // A spinner that never receives; a guest fills its mailbox (the
    // sender caches it as its last receiver), then the spinner is
    // cancelled: what was queued for it is freed at its end, not when
    // the last reference to its handle goes.
    let spinner = module(
        r#"(module (import "myriad" "self" (func (result i64)))
      (func (export "run") (loop $l (br $l))))"#,
    );
    let sender = module(
        r#"(module
      (import "myriad" "send" (func $send (param i64 i32 i32) (result i32)))
      (import "myriad" "recv" (func $recv (param i32 i32) (result i32)))
      (memory 1)
      (func (export "run") (param $to i64) (param $n i32) (result i32)
        (block $d (loop $l
          (br_if $d (i32.eqz (local.get $n)))
          (drop (call $send (local.get $to) (i32.const 0) (i32.const 100)))
          (local.set $n (i32.sub (local.get $n) (i32.const 1)))
          (br $l)))
        (call $recv (i32.const 0) (i32.const 8))))"#,
    );
    let v = s
        .spawn_with(&spinner, "run", &[], SpawnOptions::new().linker(&l))
        .unwrap();
    let p = s
        .spawn_with(
            &sender,
            "run",
            &[Val::I64(v.id() as i64), Val::I32(5)],
            SpawnOptions::new().linker(&l),
        )
        .unwrap();
    wait_state(&p, InstanceState::Parked);
    assert_eq!(v.mailbox_len(), 5);
    v.cancel();
    assert_eq!(v.join(), Err(InstanceError::Cancelled));
    assert_eq!(v.mailbox_len(), 0, "the ended instance's mailbox is freed");
    p.cancel();
    assert_eq!(p.join(), Err(InstanceError::Cancelled));

    // A message past the byte bound is refused whether or not the
    // receiver already waits in recv (a waiting receiver takes messages
    // straight into its buffer, but not ones its mailbox would refuse).
    let receiver = module(
        r#"(module
      (import "myriad" "recv" (func $recv (param i32 i32) (result i32)))
      (memory 1)
      (func (export "run") (result i32) (call $recv (i32.const 0) (i32.const 8192))))"#,
    );
    let r = s
        .spawn_with(&receiver, "run", &[], SpawnOptions::new().linker(&l))
        .unwrap();
    wait_state(&r, InstanceState::Parked);
    assert_eq!(r.send(vec![7u8; 4000]), Err(SendError::MailboxFull(r.id())));
    r.send(vec![7u8; 100]).unwrap();
    assert_eq!(r.join(), Ok(vec![Val::I32(100)]));
    assert!(s.wait_idle(Duration::from_secs(10)));
    assert_eq!(s.free_slots(), 8);
}
