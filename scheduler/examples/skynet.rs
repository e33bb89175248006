//! Skynet (github.com/atemerev/skynet) as guests: a 10-ary tree of
//! 1,111,111 instances. Every inner instance spawns its ten children with
//! `myriad.spawn` (arguments: its first ordinal, the subtree size, its own
//! id), each leaf sends its ordinal to its parent, and each parent sums
//! what it receives and sends the sum up. The root's result is
//! 499,999,500,000.
//!
//! `cargo run --release -p myriad-scheduler --example skynet [LEAVES] [RUNS]`
//! (LEAVES a power of ten, 1,000,000 by default).

use myriad_runtime::Val;
use myriad_scheduler::{Scheduler, SchedulerConfig, SpawnOptions};
use std::time::{Duration, Instant};

mod common;

/// The guest (also used by `benches/benches/actors.rs`).
const SKYNET: &str = include_str!("guests/skynet.wat");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let leaves: i64 = common::arg(&mut args, 1_000_000)?;
    let runs: usize = common::arg(&mut args, 3)?;
    let (module, linker) = common::actor_module(SKYNET)?;
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
            common::status_kib("VmHWM:") / 1024
        );
        assert_eq!(result, vec![Val::I64(expected)]);
        // The line benches/actors/run.sh reads.
        println!(
            "RESULT bench=skynet lang=myriad value={:.1} unit=ms result={expected} workers={workers}",
            elapsed.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
