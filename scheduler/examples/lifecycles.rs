//! Spawn -> run -> exit lifecycles through the scheduler, driven by a
//! guest: a driver instance keeps IN_FLIGHT tiny request instances alive
//! at once (each computes `x * x + 1`, sends it to the driver and ends),
//! spawning a new one for every answer until TOTAL have run. Every
//! lifecycle is a guest `myriad.spawn`, an instantiation, a slice, a
//! message and a teardown.
//!
//! `cargo run --release -p myriad-scheduler --example lifecycles [TOTAL] [IN_FLIGHT] [RUNS]`

use myriad_runtime::Val;
use myriad_scheduler::{Scheduler, SchedulerConfig, SpawnOptions};
use std::time::{Duration, Instant};

mod common;

/// The guest (also used by `benches/benches/actors.rs`).
const GUEST: &str = include_str!("guests/lifecycles.wat");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let total: u64 = common::arg(&mut args, 1_000_000)?;
    let in_flight: u64 = common::arg(&mut args, 10_000)?;
    let runs: usize = common::arg(&mut args, 3)?;
    let (module, linker) = common::actor_module(GUEST)?;
    let expected = (0..total).fold(0u64, |s, x| {
        s.wrapping_add(x.wrapping_mul(x).wrapping_add(1))
    });
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!("lifecycles: {total} requests, {in_flight} in flight, {workers} workers");
    let sched = Scheduler::new(SchedulerConfig {
        workers,
        capacity: in_flight as usize + 16,
        heap_capacity: 4 * 1024,
        stack_size: 8 * 1024,
        mailbox_messages: in_flight as usize + 16,
        mailbox_bytes: (in_flight + 16) * 64,
        quantum: Duration::from_micros(100),
        ..SchedulerConfig::default()
    })?;
    for run in 1..=runs {
        let t = Instant::now();
        let driver = sched.spawn_with(
            &module,
            "driver",
            &[Val::I64(total as i64), Val::I64(in_flight as i64)],
            // Room for every answer in flight in the driver's mailbox
            // (charged to its memory limit; requests retry a full one).
            SpawnOptions::new().linker(&linker).memory(64 << 20),
        )?;
        let result = driver.join()?;
        let elapsed = t.elapsed();
        println!(
            "run {run}: {total} lifecycles in {:.3} s = {:.0} lifecycles/s ({:.2} us each)",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e6 / total as f64
        );
        assert_eq!(result, vec![Val::I64(expected as i64)]);
        // The line benches/actors/run.sh reads.
        println!(
            "RESULT bench=lifecycles lang=myriad value={:.0} unit=lifecycles/s total={total} in_flight={in_flight} workers={workers}",
            total as f64 / elapsed.as_secs_f64()
        );
    }
    let report = sched.shutdown();
    println!(
        "{} slices, {} steals",
        report.metrics.slices, report.metrics.steals
    );
    Ok(())
}
