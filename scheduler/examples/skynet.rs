//! Skynet (github.com/atemerev/skynet) as guests: a 10-ary tree of
//! 1,111,111 instances. Every inner instance spawns its ten children with
//! `myriad.spawn` (arguments: its first ordinal, the subtree size, its own
//! id), each leaf sends its ordinal to its parent, and each parent sums
//! what it receives and sends the sum up. The root's result is
//! 499,999,500,000.
//!
//! `cargo run --release -p myriad-scheduler --example skynet [LEAVES] [RUNS]`
//! (LEAVES a power of ten, 1,000,000 by default).

use myriad_runtime::{CompileConfig, Linker, Module, Val};
use myriad_scheduler::{messaging, Scheduler, SchedulerConfig, SpawnOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SKYNET: &str = r#"(module
  (import "myriad" "spawn" (func $spawn (param i32 i32 i32 i32 i32) (result i64)))
  (import "myriad" "send" (func $send (param i64 i32 i32) (result i32)))
  (import "myriad" "recv" (func $recv (param i32 i32) (result i32)))
  (import "myriad" "self" (func $self (result i64)))
  (import "myriad" "sleep" (func $sleep (param i64)))
  (memory 64 64 (pagesize 1))
  (data (i32.const 48) "skynet")
  ;; bytes 0..8: a received message; 8..32: the children's arguments
  (func (export "skynet") (param $num i64) (param $size i64) (param $parent i64) (result i64)
    (local $sum i64) (local $i i64) (local $div i64)
    (if (i64.eq (local.get $size) (i64.const 1))
      (then (local.set $sum (local.get $num)))
      (else
        (local.set $div (i64.div_u (local.get $size) (i64.const 10)))
        (i64.store (i32.const 16) (local.get $div))
        (i64.store (i32.const 24) (call $self))
        (loop $spawn
          (i64.store (i32.const 8)
            (i64.add (local.get $num) (i64.mul (local.get $i) (local.get $div))))
          ;; at capacity: wait a little and try again
          (block $spawned
            (loop $retry
              (br_if $spawned (i64.gt_s
                (call $spawn (i32.const 48) (i32.const 6) (i32.const 8) (i32.const 3) (i32.const 0))
                (i64.const 0)))
              (call $sleep (i64.const 10000))
              (br $retry)))
          (br_if $spawn (i64.lt_u
            (local.tee $i (i64.add (local.get $i) (i64.const 1))) (i64.const 10))))
        (local.set $i (i64.const 0))
        (loop $gather
          (drop (call $recv (i32.const 0) (i32.const 8)))
          (local.set $sum (i64.add (local.get $sum) (i64.load (i32.const 0))))
          (br_if $gather (i64.lt_u
            (local.tee $i (i64.add (local.get $i) (i64.const 1))) (i64.const 10))))))
    (if (i64.gt_s (local.get $parent) (i64.const 0))
      (then
        (i64.store (i32.const 0) (local.get $sum))
        ;; a full mailbox: yield and retry
        (block $sent
          (loop $retry
            (br_if $sent (i32.eqz (call $send (local.get $parent) (i32.const 0) (i32.const 8))))
            (call $sleep (i64.const 0))
            (br $retry)))))
    (local.get $sum)))"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let leaves: i64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let runs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let cache = myriad_runtime::default_cache_dir();
    let module = Arc::new(Module::compile(
        &wat::parse_str(SKYNET)?,
        &CompileConfig::default(),
        &cache,
    )?);
    let mut linker = Linker::new();
    messaging::add_to_linker(&mut linker);
    let linker = Arc::new(linker);
    let actors = (0..=leaves.ilog10()).map(|k| 10i64.pow(k)).sum::<i64>();
    let expected = leaves * (leaves - 1) / 2;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!("skynet: {actors} instances, {leaves} leaves, {workers} workers");
    for run in 1..=runs {
        // Room for every instance at once (the tree may be alive whole);
        // 8 KiB stacks and 4 KiB heaps: a slot is 20 KiB of address space.
        let sched = Scheduler::new(SchedulerConfig {
            workers,
            capacity: actors as usize + 1,
            heap_capacity: 4 * 1024,
            stack_size: 8 * 1024,
            quantum: Duration::from_micros(100),
            ..SchedulerConfig::default()
        })?;
        let t = Instant::now();
        let root = sched.spawn_with(
            &module,
            "skynet",
            &[Val::I64(0), Val::I64(leaves), Val::I64(-1)],
            SpawnOptions::new().linker(&linker),
        )?;
        let result = root.join()?;
        let elapsed = t.elapsed();
        let report = sched.shutdown();
        println!(
            "run {run}: result {:?} in {:.3} s ({:.0} lifecycles/s; {} slices, {} steals, peak RSS {} MiB)",
            result,
            elapsed.as_secs_f64(),
            actors as f64 / elapsed.as_secs_f64(),
            report.metrics.slices,
            report.metrics.steals,
            peak_rss_kib() / 1024
        );
        assert_eq!(result, vec![Val::I64(expected)]);
    }
    Ok(())
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
