//! 100,000 instances in a ring pass a token with `myriad.send` /
//! `myriad.recv` for a few rounds (with N = 2: ping-pong). Each instance
//! blocks (parks) in `recv`; a `send` to it delivers the message into its
//! memory and resumes it. Timed like the Go and Erlang rings of
//! `benches/actors/`: spawning and one warm-up round are not counted, and
//! the token carries the hops left, so no instance ends inside the timed
//! part.
//!
//! `cargo run --release -p myriad-scheduler --example token_ring [N] [ROUNDS] [WORKERS]`

use myriad_runtime::Val;
use myriad_scheduler::{InstanceState, Scheduler, SchedulerConfig, SpawnOptions};
use std::time::{Duration, Instant};

mod common;

/// The guest (also used by `benches/benches/actors.rs`).
const RING: &str = include_str!("guests/token_ring.wat");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = common::arg(&mut args, 100_000)?;
    let rounds: u32 = common::arg(&mut args, 10)?;
    let workers: usize = common::arg(
        &mut args,
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    )?;
    let hops = u32::try_from(n as u64 * u64::from(rounds))
        .map_err(|_| "N x ROUNDS must fit in 32 bits")?;
    let (module, linker) = common::actor_module(RING)?;

    // 16 KiB heaps and 8 KiB stacks: a slot is 32 KiB of address space.
    let sched = Scheduler::new(SchedulerConfig {
        workers,
        capacity: n + 2,
        heap_capacity: 16 * 1024,
        stack_size: 8 * 1024,
        quantum: Duration::from_micros(100),
        ..SchedulerConfig::default()
    })?;
    let opts = || SpawnOptions::new().linker(&linker);
    let t = Instant::now();
    let members = (0..n)
        .map(|_| sched.spawn_with(&module, "member", &[], opts()))
        .collect::<Result<Vec<_>, _>>()?;
    let spawned = t.elapsed();
    for (i, h) in members.iter().enumerate() {
        h.send(members[(i + 1) % n].id().to_le_bytes().to_vec())?;
    }
    // Let every member reach its first recv of the token and park.
    while members.iter().any(|h| h.state() != InstanceState::Parked) {
        std::thread::sleep(Duration::from_millis(1));
    }
    println!(
        "{n} instances spawned in {spawned:?}, all parked in recv; {} KiB RSS",
        common::status_kib("VmRSS:")
    );
    // One untimed round warms every member (as the Go and Erlang
    // programs do), then ROUNDS timed ones; the member that finds no hops
    // left hands the token to a waiter, whose end is the end of the run.
    let mut elapsed = Duration::ZERO;
    for (round, hops) in [(0, n as u32), (1, hops)] {
        let waiter = sched.spawn_with(&module, "waiter", &[], opts())?;
        let mut token = hops.to_le_bytes().to_vec();
        token.extend_from_slice(&waiter.id().to_le_bytes());
        let t = Instant::now();
        members[0].send(token)?;
        let result = waiter.join()?;
        elapsed = t.elapsed();
        assert_eq!(result, vec![Val::I32(12)], "round {round}");
    }
    println!(
        "{rounds} rounds: {hops} hops in {elapsed:?} = {:.1} ns per hop ({:.0} messages/s)",
        elapsed.as_nanos() as f64 / f64::from(hops),
        f64::from(hops) / elapsed.as_secs_f64()
    );
    // The line benches/actors/run.sh reads (as from the Go and Erlang
    // programs): a ring of 2 is ping-pong.
    println!(
        "RESULT bench={} lang=myriad value={:.1} unit=ns/hop hops={hops} actors={n} workers={workers}",
        if n == 2 { "pingpong" } else { "ring" },
        elapsed.as_nanos() as f64 / f64::from(hops)
    );
    let report = sched.shutdown();
    println!(
        "{} slices on {} workers, {} steals",
        report.metrics.slices, report.workers, report.metrics.steals
    );
    Ok(())
}
