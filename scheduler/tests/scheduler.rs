//! End-to-end scheduler tests: real compiled modules, real switches, real
//! preemption, at up to ten thousand instances.

mod common;
use common::module;

use myriad_runtime::{TrapKind, Val};
use myriad_scheduler::{
    InstanceError, InstanceHandle, InstanceState, Scheduler, SchedulerConfig, SpawnError,
};
use std::time::{Duration, Instant};

fn config(workers: usize, capacity: usize, quantum_us: u64) -> SchedulerConfig {
    SchedulerConfig {
        workers,
        capacity,
        quantum: Duration::from_micros(quantum_us),
        stack_size: 16 * 1024,
        heap_capacity: 64 * 1024,
        pin_workers: false,
        ..SchedulerConfig::default()
    }
}

const SPIN: &str = r#"(module (func (export "run") (loop $l (br $l))))"#;

const SUM: &str = r#"(module
  (func (export "sum") (param $n i64) (result i64)
    (local $acc i64)
    (block $done
      (loop $l
        (br_if $done (i64.eqz (local.get $n)))
        (local.set $acc (i64.add (local.get $acc) (local.get $n)))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $l)))
    (local.get $acc)))"#;

const TRAPS: &str = r#"(module
  (memory 1 1)
  (func (export "unreachable") unreachable)
  (func (export "div0") (result i32) (i32.div_s (i32.const 1) (i32.const 0)))
  (func (export "overflow") (result i32) (i32.div_s (i32.const 0x80000000) (i32.const -1)))
  (func (export "oob") (result i32) (i32.load (i32.const 65533)))
  (func (export "edge") (result i32) (i32.load (i32.const 65532)))
  (func $deep (export "deep") (param i32) (result i32)
    (i32.add (call $deep (i32.add (local.get 0) (i32.const 1))) (i32.const 1))))"#;

fn sum_to(n: i64) -> i64 {
    n * (n + 1) / 2
}

#[test]
fn spawn_and_join_return_results() {
    let m = module(SUM);
    let s = Scheduler::new(config(2, 64, 50)).unwrap();
    let handles: Vec<_> = (0..32)
        .map(|i| s.spawn(&m, "sum", &[Val::I64(1000 + i)]).unwrap())
        .collect();
    for (i, h) in handles.iter().enumerate() {
        let n = 1000 + i as i64;
        assert_eq!(h.join(), Ok(vec![Val::I64(sum_to(n))]));
        assert_eq!(h.state(), InstanceState::Finished);
        assert!(h.stats().slices >= 1);
    }
    assert!(s.wait_idle(Duration::from_secs(5)));
    assert_eq!(s.free_slots(), 64);
}

#[test]
fn each_trap_ends_only_its_instance_and_slots_are_reused() {
    let traps = module(TRAPS);
    let good = module(SUM);
    let capacity = 16;
    let s = Scheduler::new(config(2, capacity, 20)).unwrap();
    for round in 0..3 {
        let cases = [
            ("unreachable", vec![], TrapKind::Unreachable),
            ("div0", vec![], TrapKind::IntegerDivisionByZero),
            ("overflow", vec![], TrapKind::IntegerOverflow),
            ("oob", vec![], TrapKind::HeapOutOfBounds),
            ("deep", vec![Val::I32(0)], TrapKind::StackOverflow),
        ];
        let bad: Vec<_> = cases
            .iter()
            .map(|(name, args, kind)| (s.spawn(&traps, name, args).unwrap(), *kind))
            .collect();
        let ok: Vec<_> = (0..8)
            .map(|i| s.spawn(&good, "sum", &[Val::I64(20_000 + i)]).unwrap())
            .collect();
        let edge = s.spawn(&traps, "edge", &[]).unwrap();
        for (h, kind) in &bad {
            assert_eq!(h.join(), Err(InstanceError::Trap(*kind)), "round {round}");
            assert_eq!(h.state(), InstanceState::Trapped);
        }
        for (i, h) in ok.iter().enumerate() {
            assert_eq!(h.join(), Ok(vec![Val::I64(sum_to(20_000 + i as i64))]));
        }
        assert_eq!(edge.join(), Ok(vec![Val::I32(0)]));
        assert!(s.wait_idle(Duration::from_secs(5)));
        assert_eq!(
            s.free_slots(),
            capacity,
            "every slot returned after round {round}"
        );
    }
}

#[test]
fn a_loop_that_never_yields_is_preempted_and_cancelled() {
    let spin = module(SPIN);
    let sum = module(SUM);
    // One worker: the finite instance can only finish if the spinner is
    // preempted.
    let s = Scheduler::new(config(1, 8, 100)).unwrap();
    let spinner = s.spawn(&spin, "run", &[]).unwrap();
    let h = s.spawn(&sum, "sum", &[Val::I64(3_000_000)]).unwrap();
    assert_eq!(
        h.join_timeout(Duration::from_secs(20)),
        Some(Ok(vec![Val::I64(sum_to(3_000_000))]))
    );
    assert!(spinner.try_result().is_none());
    assert!(spinner.stats().slices > 1, "spinner was sliced");
    spinner.cancel();
    assert_eq!(
        spinner.join_timeout(Duration::from_secs(5)),
        Some(Err(InstanceError::Cancelled))
    );
    assert_eq!(spinner.state(), InstanceState::Cancelled);
    assert!(s.wait_idle(Duration::from_secs(5)));
    assert_eq!(s.free_slots(), 8);
}

/// The slice counts of `hs`, read while the worker ran at most one slice
/// (the sample is retried until two passes agree to within a slice, so a
/// test thread descheduled mid-read cannot skew it).
fn consistent_slices(hs: &[InstanceHandle]) -> Vec<u64> {
    let t = Instant::now();
    loop {
        let a: Vec<u64> = hs.iter().map(|h| h.stats().slices).collect();
        let b: Vec<u64> = hs.iter().map(|h| h.stats().slices).collect();
        if b.iter().sum::<u64>() - a.iter().sum::<u64>() <= 1 {
            return a;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no consistent sample"
        );
    }
}

/// Wait (up to 60 s) until `done(slices)` holds for a consistent sample.
fn wait_slices(hs: &[InstanceHandle], done: impl Fn(&[u64]) -> bool) -> Vec<u64> {
    let t = Instant::now();
    loop {
        let v = consistent_slices(hs);
        if done(&v) {
            return v;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "stuck at {v:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn instances_alternate_fairly() {
    let spin = module(SPIN);
    let s = Scheduler::new(config(1, 8, 50)).unwrap();
    let hs: Vec<_> = (0..4)
        .map(|_| s.spawn(&spin, "run", &[]).unwrap())
        .collect();
    // Judge the slices each got between two samples taken once all run
    // (the later spawns wait a few slices to be taken from the injector).
    let first = wait_slices(&hs, |v| v.iter().all(|&n| n > 0));
    let last = wait_slices(&hs, |v| v.iter().zip(&first).all(|(n, f)| n - f > 200));
    let slices: Vec<u64> = last.iter().zip(&first).map(|(n, f)| n - f).collect();
    let report = s.shutdown();
    let min = *slices.iter().min().unwrap();
    let max = *slices.iter().max().unwrap();
    // Round robin: counts differ by at most a slice or two per sample
    // (each sample may fall anywhere in a rotation).
    assert!(max - min <= 4, "unfair: {slices:?} (min {min})");
    for h in &hs {
        assert_eq!(h.join(), Err(InstanceError::Cancelled));
    }
    // Slices of 50 µs end close to their deadline.
    let p50 = report.metrics.slice.value_at_quantile(0.5);
    assert!((40_000..200_000).contains(&p50), "slice p50 {p50} ns");
}

#[test]
fn idle_workers_steal() {
    let sum = module(SUM);
    // Whether a steal happens depends on timing: both workers take
    // batches from the injector, and a worker that runs dry finds
    // something to steal only if the other still has two or more tasks
    // queued (one running and one held are invisible to thieves). With
    // the two ending within one round of each other, or one worker kept
    // off the CPU by tests running beside this one, a run can end without
    // a steal (seen about once in ten runs of this file under load). So
    // the scenario is run up to five times; stealing must happen in one.
    let mut last = None;
    for _ in 0..5 {
        let s = Scheduler::new(SchedulerConfig {
            start_paused: true,
            ..config(2, 256, 20)
        })
        .unwrap();
        // Uneven work: long and short instances alternate.
        let hs: Vec<_> = (0..200)
            .map(|i| {
                let n = if i % 2 == 0 { 10_000_000 } else { 1_000 };
                s.spawn(&sum, "sum", &[Val::I64(n)]).unwrap()
            })
            .collect();
        s.start();
        for h in &hs {
            assert!(h.join().is_ok());
        }
        let report = s.shutdown();
        let ran: Vec<u64> = report.per_worker.iter().map(|w| w.slices).collect();
        if report.metrics.steals > 0 && ran.iter().all(|&n| n > 0) {
            return;
        }
        last = Some((report.metrics.steals, ran));
    }
    panic!("no run of five stole work (steals, slices per worker of the last: {last:?})");
}

#[test]
fn ten_thousand_instances_run_to_completion() {
    let sum = module(SUM);
    let n = 10_000;
    let s = Scheduler::new(SchedulerConfig {
        start_paused: true,
        ..config(2, n, 5)
    })
    .unwrap();
    let t = Instant::now();
    let hs: Vec<_> = (0..n)
        .map(|i| {
            s.spawn(&sum, "sum", &[Val::I64(10_000 + i as i64)])
                .unwrap()
        })
        .collect();
    assert_eq!(s.live(), n);
    s.start();
    for (i, h) in hs.iter().enumerate() {
        assert_eq!(h.join(), Ok(vec![Val::I64(sum_to(10_000 + i as i64))]));
    }
    assert!(s.wait_idle(Duration::from_secs(10)));
    assert_eq!(s.free_slots(), n);
    let report = s.shutdown();
    assert_eq!(report.metrics.finished, n as u64);
    assert_eq!(report.metrics.instantiate.len(), n as u64);
    assert!(t.elapsed() < Duration::from_secs(60));
}

#[test]
fn spawn_past_capacity_is_an_error_not_a_hang() {
    let spin = module(SPIN);
    let s = Scheduler::new(config(1, 3, 50)).unwrap();
    let hs: Vec<_> = (0..3)
        .map(|_| s.spawn(&spin, "run", &[]).unwrap())
        .collect();
    match s.spawn(&spin, "run", &[]) {
        Err(SpawnError::AtCapacity { capacity: 3 }) => {}
        other => panic!("expected AtCapacity, got {:?}", other.map(|_| ())),
    }
    hs[0].cancel();
    assert_eq!(hs[0].join(), Err(InstanceError::Cancelled));
    let again = s
        .spawn(&spin, "run", &[])
        .expect("a freed slot is reusable");
    drop(again);
    drop(s); // shutdown cancels the rest
    for h in &hs[1..] {
        assert_eq!(h.join(), Err(InstanceError::Cancelled));
    }
}

#[test]
fn bad_spawns_are_refused_cleanly() {
    let sum = module(SUM);
    let s = Scheduler::new(config(1, 4, 50)).unwrap();
    assert!(matches!(
        s.spawn(&sum, "nope", &[]),
        Err(SpawnError::Instantiate(_))
    ));
    assert!(matches!(
        s.spawn(&sum, "sum", &[]),
        Err(SpawnError::Instantiate(_))
    ));
    assert!(matches!(
        s.spawn(&sum, "sum", &[Val::I32(1)]),
        Err(SpawnError::Instantiate(_))
    ));
    assert_eq!(s.free_slots(), 4);
}

#[test]
fn two_instances_use_both_workers() {
    // The worker's held (prefetched) next task is invisible to thieves, so
    // it must not hold one when that would leave nothing to steal.
    let spin = module(SPIN);
    let s = Scheduler::new(config(2, 4, 50)).unwrap();
    let hs: Vec<_> = (0..2)
        .map(|_| s.spawn(&spin, "run", &[]).unwrap())
        .collect();
    // Both run many slices (how the OS shares two busy cores with the
    // rest of the machine decides the ratio, so it is not judged).
    wait_slices(&hs, |v| v.iter().all(|&n| n > 500));
    let report = s.shutdown();
    let per: Vec<u64> = report.per_worker.iter().map(|w| w.slices).collect();
    assert!(per.iter().all(|&n| n > 0), "a worker idled: {per:?}");
}

#[test]
fn a_huge_quantum_is_harmless() {
    let sum = module(SUM);
    let s = Scheduler::new(SchedulerConfig {
        quantum: Duration::MAX,
        ..config(1, 2, 1)
    })
    .unwrap();
    let h = s.spawn(&sum, "sum", &[Val::I64(100_000)]).unwrap();
    assert_eq!(h.join(), Ok(vec![Val::I64(sum_to(100_000))]));
}

#[test]
fn fuel_mode_gives_every_run_the_same_slices() {
    let m = module(SUM);
    let run = || {
        let s = Scheduler::new(SchedulerConfig {
            fuel_per_slice: Some(10_000),
            ..config(2, 8, 1)
        })
        .unwrap();
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(&m, "sum", &[Val::I64(200_000)]).unwrap())
            .collect();
        handles
            .iter()
            .map(|h| {
                assert_eq!(h.join(), Ok(vec![Val::I64(sum_to(200_000))]));
                h.stats().slices
            })
            .collect::<Vec<u64>>()
    };
    let first = run();
    // 200,001 loop iterations + entry, one slice per 10,001 checks.
    assert!(first.iter().all(|&n| (20..=22).contains(&n)), "{first:?}");
    assert!(first.iter().all(|&n| n == first[0]), "{first:?}");
    assert_eq!(run(), first, "same slices on every run");
}
