//! Compile a WAT module, spawn a few instances, join them, print results
//! and statistics.
//!
//! `cargo run --release -p myriad-scheduler --example spawn_and_join`

use myriad_runtime::{CompileConfig, Module, Val};
use myriad_scheduler::{Scheduler, SchedulerConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FIB: &str = r#"(module
  (func $fib (export "fib") (param $n i64) (result i64)
    (if (result i64) (i64.lt_u (local.get $n) (i64.const 2))
      (then (local.get $n))
      (else (i64.add (call $fib (i64.sub (local.get $n) (i64.const 1)))
                     (call $fib (i64.sub (local.get $n) (i64.const 2))))))))"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The per-user cache (created 0700; refused if others can write to it).
    let cache = myriad_runtime::default_cache_dir();
    let wasm = wat::parse_str(FIB)?;
    let t = Instant::now();
    let module = Arc::new(Module::compile(&wasm, &CompileConfig::default(), &cache)?);
    println!(
        "compiled fib in {:?} (cached in {})",
        t.elapsed(),
        cache.display()
    );

    let sched = Scheduler::new(SchedulerConfig {
        workers: 2,
        capacity: 64,
        quantum: Duration::from_micros(100),
        ..SchedulerConfig::default()
    })?;
    let handles: Vec<_> = (20..28)
        .map(|n| Ok((n, sched.spawn(&module, "fib", &[Val::I64(n)])?)))
        .collect::<Result<_, myriad_scheduler::SpawnError>>()?;
    for (n, h) in &handles {
        let r = h.join();
        let st = h.stats();
        println!(
            "id {:>2}  fib({n}) = {:?}  state {:?}  slices {:>4}  cpu {:>8.3} ms",
            h.id(),
            r?,
            h.state(),
            st.slices,
            st.cpu_ns as f64 / 1e6
        );
    }
    let report = sched.shutdown();
    let m = &report.metrics;
    println!(
        "scheduler: {} workers, {} slices, {} finished, {} steals, slice p50 {} ns, instantiate p50 {} ns, wall {:?}",
        report.workers,
        m.slices,
        m.finished,
        m.steals,
        m.slice.value_at_quantile(0.5),
        m.instantiate.value_at_quantile(0.5),
        report.wall
    );
    Ok(())
}
