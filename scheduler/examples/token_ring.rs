//! 100,000 instances in a ring pass a token with `myriad.send` /
//! `myriad.recv` for a few rounds. Each instance blocks (parks) in `recv`;
//! a `send` to it delivers the message into its memory and resumes it.
//!
//! `cargo run --release -p myriad-scheduler --example token_ring [N] [ROUNDS] [WORKERS]`

use myriad_runtime::{CompileConfig, Linker, Module, Val};
use myriad_scheduler::{messaging, Scheduler, SchedulerConfig, SpawnOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RING: &str = r#"(module
  (import "myriad" "send" (func $send (param i64 i32 i32) (result i32)))
  (import "myriad" "recv" (func $recv (param i32 i32) (result i32)))
  (memory 64 64 (pagesize 1))
  (func (export "run") (param $rounds i32) (result i32)
    (local $next i64) (local $i i32)
    ;; first message: the id of the next instance in the ring
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let rounds: i32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10);
    let workers: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(std::thread::available_parallelism().map_or(2, |n| n.get()));
    // The per-user cache (created 0700; refused if others can write to it).
    let cache = myriad_runtime::default_cache_dir();
    let module = Arc::new(Module::compile(
        &wat::parse_str(RING)?,
        &CompileConfig::default(),
        &cache,
    )?);
    let mut linker = Linker::new();
    messaging::add_to_linker(&mut linker);
    let linker = Arc::new(linker);

    // 16 KiB heaps and 8 KiB stacks: a slot is 32 KiB of address space.
    let sched = Scheduler::new(SchedulerConfig {
        workers,
        capacity: n,
        heap_capacity: 16 * 1024,
        stack_size: 8 * 1024,
        quantum: Duration::from_micros(100),
        ..SchedulerConfig::default()
    })?;
    let t = Instant::now();
    let handles = (0..n)
        .map(|_| {
            sched.spawn_with(
                &module,
                "run",
                &[Val::I32(rounds)],
                SpawnOptions::new().linker(&linker),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let spawned = t.elapsed();
    for (i, h) in handles.iter().enumerate() {
        h.send(handles[(i + 1) % n].id().to_le_bytes().to_vec())?;
    }
    // Let every instance reach its first recv and park.
    while handles
        .iter()
        .any(|h| h.state() != myriad_scheduler::InstanceState::Parked)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "{n} instances spawned in {spawned:?}, all parked in recv; {} KiB RSS",
        rss_kib()
    );
    let t = Instant::now();
    handles[0].send(0u32.to_le_bytes().to_vec())?;
    let results: Vec<_> = handles.iter().map(|h| h.join()).collect();
    let elapsed = t.elapsed();
    let last = results.last().cloned().unwrap_or(Ok(vec![]))?;
    let messages = n as u64 * rounds as u64;
    println!(
        "{rounds} rounds: {messages} messages in {elapsed:?} = {:.0} messages/s; last instance saw token {last:?}",
        messages as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(last, vec![Val::I32((n as u64 * rounds as u64) as i32)]);
    assert!(results.iter().all(|r| r.is_ok()));
    let report = sched.shutdown();
    println!(
        "{} slices on {} workers, {} steals",
        report.metrics.slices, report.workers, report.metrics.steals
    );
    Ok(())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
