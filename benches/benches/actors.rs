//! Criterion benchmarks of the actor paths through the scheduler (two
//! workers): a message hop between two instances (ping-pong), a hop
//! around a ring of 100,000 instances, a spawn -> run -> exit lifecycle
//! with 10,000 requests in flight, and a Skynet tree of 111,111 guests.
//! The guests are the examples' (`scheduler/examples/guests/`); the
//! examples run the full-size versions (Skynet 1M) and print the figures
//! docs/PERFORMANCE.md compares with Go and BEAM.
//!
//! Run: `cargo bench -p myriad-benches --bench actors`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use myriad_runtime::{CompileConfig, Linker, Module, Val};
use myriad_scheduler::{
    messaging, InstanceHandle, InstanceState, Scheduler, SchedulerConfig, SpawnOptions,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RING: &str = include_str!("../../scheduler/examples/guests/token_ring.wat");
const LIFECYCLES: &str = include_str!("../../scheduler/examples/guests/lifecycles.wat");
const SKYNET: &str = include_str!("../../scheduler/examples/guests/skynet.wat");

const WORKERS: usize = 2;

fn module(wat: &str) -> Arc<Module> {
    let wasm = wat::parse_str(wat).expect("bench WAT assembles");
    let cache = myriad_runtime::default_cache_dir();
    Arc::new(Module::compile(&wasm, &CompileConfig::default(), &cache).expect("compiles"))
}

fn linker() -> Arc<Linker> {
    let mut l = Linker::new();
    messaging::add_to_linker(&mut l);
    Arc::new(l)
}

fn scheduler(capacity: usize, heap: usize) -> Scheduler {
    Scheduler::new(SchedulerConfig {
        workers: WORKERS,
        capacity,
        heap_capacity: heap,
        stack_size: 8 * 1024,
        mailbox_messages: capacity + 16,
        mailbox_bytes: (capacity as u64 + 16) * 64,
        quantum: Duration::from_micros(100),
        ..SchedulerConfig::default()
    })
    .expect("scheduler")
}

/// A ring of `n` members (the token-ring guest), each told its
/// successor's id and parked in its first receive of the token, warmed by
/// one round.
fn ring(s: &Scheduler, m: &Arc<Module>, l: &Arc<Linker>, n: usize) -> Vec<InstanceHandle> {
    let hs: Vec<_> = (0..n)
        .map(|_| {
            s.spawn_with(m, "member", &[], SpawnOptions::new().linker(l))
                .expect("spawn")
        })
        .collect();
    for (i, h) in hs.iter().enumerate() {
        h.send(hs[(i + 1) % n].id().to_le_bytes().to_vec())
            .expect("send");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while hs.iter().any(|h| h.state() != InstanceState::Parked) {
        assert!(Instant::now() < deadline, "ring did not settle");
        std::thread::sleep(Duration::from_millis(1));
    }
    hops(s, m, l, &hs[0], n as u64);
    hs
}

/// Time `hops` hops of a token sent into the ring at `first`: the member
/// that finds none left hands it to a waiter instance, whose end ends the
/// timing (so no ring member ends, as in the Go and Erlang rings).
fn hops(
    s: &Scheduler,
    m: &Arc<Module>,
    l: &Arc<Linker>,
    first: &InstanceHandle,
    hops: u64,
) -> Duration {
    let hops = u32::try_from(hops).expect("hops fit the token");
    let waiter = s
        .spawn_with(m, "waiter", &[], SpawnOptions::new().linker(l))
        .expect("spawn waiter");
    let mut token = hops.to_le_bytes().to_vec();
    token.extend_from_slice(&waiter.id().to_le_bytes());
    let t = Instant::now();
    first.send(token).expect("token");
    assert_eq!(waiter.join(), Ok(vec![Val::I32(12)]));
    t.elapsed()
}

fn ping_pong(c: &mut Criterion) {
    let (m, l) = (module(RING), linker());
    let s = scheduler(4, 16 * 1024);
    let pair = ring(&s, &m, &l, 2);
    let mut g = c.benchmark_group("actors");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ping_pong_hop", |b| {
        b.iter_custom(|n| hops(&s, &m, &l, &pair[0], n))
    });
    g.finish();
}

fn ring_100k(c: &mut Criterion) {
    let (m, l) = (module(RING), linker());
    let n = 100_000;
    let s = scheduler(n + 2, 16 * 1024);
    let members = ring(&s, &m, &l, n);
    let mut g = c.benchmark_group("actors");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    g.bench_function("ring_100k_hop", |b| {
        b.iter_custom(|n| hops(&s, &m, &l, &members[0], n))
    });
    g.finish();
}

fn lifecycles(c: &mut Criterion) {
    let (m, l) = (module(LIFECYCLES), linker());
    let in_flight = 10_000u64;
    let s = scheduler(in_flight as usize + 16, 4 * 1024);
    let mut g = c.benchmark_group("actors");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    g.bench_function("lifecycle_10k_in_flight", |b| {
        b.iter_custom(|n| {
            let total = n.max(in_flight);
            let t = Instant::now();
            let driver = s
                .spawn_with(
                    &m,
                    "driver",
                    &[Val::I64(total as i64), Val::I64(in_flight as i64)],
                    SpawnOptions::new().linker(&l).memory(64 << 20),
                )
                .expect("spawn driver");
            driver.join().expect("driver ends");
            t.elapsed().div_f64(total as f64 / n as f64)
        })
    });
    g.finish();
}

/// A request that calls the host once (so it is linked like an actor).
const REQUEST: &str = r#"(module
  (import "myriad" "self" (func $self (result i64)))
  (func (export "request") (param $x i64) (result i64)
    (i64.add (i64.mul (local.get $x) (local.get $x)) (call $self))))"#;

/// Spawn -> run -> exit from the embedder: batches of 1,000 spawns of a
/// tiny linked request, then a join of each; per lifecycle.
fn embedder_lifecycles(c: &mut Criterion) {
    let (m, l) = (module(REQUEST), linker());
    let batch = 1_000u64;
    let s = scheduler(batch as usize, 4 * 1024);
    let mut g = c.benchmark_group("actors");
    g.throughput(Throughput::Elements(1));
    g.bench_function("embedder_spawn_join", |b| {
        b.iter_custom(|n| {
            let t = Instant::now();
            let mut left = n;
            while left > 0 {
                let k = left.min(batch);
                let hs: Vec<_> = (0..k)
                    .map(|i| {
                        s.spawn_with(
                            &m,
                            "request",
                            &[Val::I64(i as i64)],
                            SpawnOptions::new().linker(&l),
                        )
                        .expect("spawn")
                    })
                    .collect();
                for h in hs {
                    h.join().expect("request ends");
                }
                left -= k;
            }
            t.elapsed()
        })
    });
    g.finish();
}

fn skynet(c: &mut Criterion) {
    let (m, l) = (module(SKYNET), linker());
    let leaves = 100_000i64;
    let actors = 111_111u64;
    let s = scheduler(actors as usize + 1, 4 * 1024);
    let mut g = c.benchmark_group("actors");
    g.sample_size(10);
    g.throughput(Throughput::Elements(actors));
    g.bench_function("skynet_100k_tree", |b| {
        b.iter(|| {
            let root = s
                .spawn_with(
                    &m,
                    "skynet",
                    &[Val::I64(0), Val::I64(leaves), Val::I64(-1)],
                    SpawnOptions::new().linker(&l),
                )
                .expect("spawn root");
            let r = root.join().expect("root ends");
            assert_eq!(r, vec![Val::I64(leaves * (leaves - 1) / 2)]);
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = ping_pong, ring_100k, lifecycles, embedder_lifecycles, skynet
}
criterion_main!(benches);
