//! `stress`: spawn N instances up front, run them preemptively for a while,
//! and report spawn time, memory, mappings, slice rates and latency
//! histograms.

mod guests;
mod report;

use anyhow::{bail, Context, Result};
use clap::Parser;
use guests::{compute_reference, Guest};
use myriad_runtime::{CompileConfig, Module, Val};
use myriad_scheduler::{messaging, InstanceHandle, Scheduler, SchedulerConfig, SpawnOptions};
use report::StressReport;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Run a million tiny WebAssembly instances preemptively and report.
#[derive(Parser, Debug)]
#[command(name = "stress", version)]
struct Args {
    /// Instances spawned up front (all resident at once).
    #[arg(long, default_value_t = 10_000)]
    instances: usize,
    /// Time slice in microseconds.
    #[arg(long, default_value_t = 1)]
    quantum_us: u64,
    /// Fuel mode: deterministic slices of this many fuel units instead of
    /// time slices (`--quantum-us` is then unused; the overrun histogram
    /// stays empty).
    #[arg(long)]
    fuel_per_slice: Option<u64>,
    /// How long to run after spawning, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    /// Worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Built-in guest.
    #[arg(long, value_enum, default_value_t = Guest::Spin)]
    guest: Guest,
    /// Linear memory per instance, KiB.
    #[arg(long, default_value_t = 16)]
    heap_kib: u64,
    /// Native stack per instance, KiB.
    #[arg(long, default_value_t = 8)]
    stack_kib: usize,
    /// Guard after each heap, KiB. Non-zero turns on guard mode (mprotect,
    /// 2 mappings per instance) and lets compiled code elide part of each
    /// bounds check.
    #[arg(long, default_value_t = 0)]
    guard_kib: usize,
    /// Run this module (binary `.wasm` or text `.wat`) instead of a built-in guest.
    #[arg(long)]
    wasm: Option<PathBuf>,
    /// Export to run in `--wasm` (no parameters).
    #[arg(long, default_value = "run")]
    export: String,
    /// Rounds of the compute kernel per instance.
    #[arg(long, default_value_t = 4)]
    compute_rounds: i32,
    /// Sleep of the sleep guest between bursts of work, microseconds.
    #[arg(long, default_value_t = 1_000_000)]
    sleep_us: u64,
    /// Write summary.json and .hgrm files here.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    pages * page
}

fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.lines().count())
        .unwrap_or(0)
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.instances == 0 {
        bail!("--instances must be at least 1");
    }
    if args.quantum_us == 0 {
        bail!("--quantum-us must be at least 1");
    }
    if args.fuel_per_slice == Some(0) {
        bail!("--fuel-per-slice must be at least 1");
    }
    let workers = args.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let heap_bytes = args.heap_kib * 1024;
    let guard_bytes = args.guard_kib * 1024;

    let (wasm, guest_name) = match &args.wasm {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            // Binary modules pass through unchanged; text is assembled.
            let wasm = wat::parse_bytes(&bytes)
                .with_context(|| {
                    format!("{} is neither a wasm binary nor valid WAT", path.display())
                })?
                .into_owned();
            (wasm, path.display().to_string())
        }
        None => (
            wat::parse_str(args.guest.wat(heap_bytes)).context("assembling the built-in guest")?,
            args.guest.name().to_string(),
        ),
    };
    // The per-user cache shared with `myriad` (created 0700, refused if
    // another user could write to it).
    let cache = myriad_runtime::default_cache_dir();
    let t = Instant::now();
    let module = Arc::new(
        Module::compile(&wasm, &CompileConfig::guarded(guard_bytes as u64), &cache)
            .context("compiling the guest")?,
    );
    eprintln!(
        "compiled {guest_name} in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );

    let sched = Scheduler::new(SchedulerConfig {
        workers,
        quantum: Duration::from_micros(args.quantum_us),
        fuel_per_slice: args.fuel_per_slice,
        capacity: args.instances,
        stack_size: args.stack_kib * 1024,
        heap_capacity: heap_bytes as usize,
        guard_size: guard_bytes,
        guard_mode: guard_bytes > 0,
        // The default: the heap plus as much again (at least 64 KiB) for
        // tables and mailboxes, per instance.
        memory_limit: None,
        mailbox_messages: SchedulerConfig::default().mailbox_messages,
        mailbox_bytes: SchedulerConfig::default().mailbox_bytes,
        pin_workers: true,
        start_paused: true,
    })
    .context("building the scheduler")?;

    let compute = args.wasm.is_none() && args.guest == Guest::Compute;
    let sleeper = args.wasm.is_none() && args.guest == Guest::Sleep;
    // `myriad.*` (messages, sleep) for the sleep guest and `--wasm` modules.
    let mut linker = myriad_runtime::Linker::new();
    messaging::add_to_linker(&mut linker);
    let linker = Arc::new(linker);
    let sleep_ns = i64::try_from(args.sleep_us.saturating_mul(1000)).unwrap_or(i64::MAX);
    let rss_baseline = rss_bytes();
    let spawn_start = Instant::now();
    // Spawn from one thread per worker: the workers are paused, so the
    // cores are free, and most of a spawn is the first-touch fault on the
    // slot's stack/vmctx page, which overlaps across threads. Each thread
    // takes a contiguous range so instance i keeps its seed and position.
    let export = if args.wasm.is_some() {
        args.export.as_str()
    } else {
        "run"
    };
    let spawned = AtomicUsize::new(0);
    let threads = workers.clamp(1, args.instances);
    let chunk = args.instances.div_ceil(threads);
    let parts: Vec<Result<Vec<InstanceHandle>>> = std::thread::scope(|scope| {
        let joins: Vec<_> = (0..threads)
            .map(|t| {
                let (sched, module, spawned, linker) = (&sched, &module, &spawned, &linker);
                let range = t * chunk..((t + 1) * chunk).min(args.instances);
                let rounds = args.compute_rounds;
                scope.spawn(move || -> Result<Vec<InstanceHandle>> {
                    let mut out = Vec::with_capacity(range.len());
                    for i in range {
                        let params: Vec<Val> = if compute {
                            vec![Val::I64(i as i64), Val::I32(rounds)]
                        } else if sleeper {
                            vec![Val::I64(sleep_ns)]
                        } else {
                            Vec::new()
                        };
                        let h = sched
                            .spawn_with(module, export, &params, SpawnOptions::new().linker(linker))
                            .with_context(|| format!("spawning instance {i}"))?;
                        out.push(h);
                        spawned.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(out)
                })
            })
            .collect();
        // Progress while the spawners work.
        while joins.iter().any(|j| !j.is_finished()) {
            std::thread::sleep(Duration::from_millis(200));
            eprint!(
                "\rspawned {}/{}",
                spawned.load(Ordering::Relaxed),
                args.instances
            );
            let _ = std::io::stderr().flush();
        }
        joins
            .into_iter()
            .map(|j| {
                j.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a spawning thread panicked")))
            })
            .collect()
    });
    let mut handles: Vec<InstanceHandle> = Vec::with_capacity(args.instances);
    for part in parts {
        handles.extend(part?);
    }
    let spawn_s = spawn_start.elapsed().as_secs_f64();
    eprintln!("\rspawned {} instances in {:.3} s", args.instances, spawn_s);

    sched.start();
    let run_start = Instant::now();
    let duration = Duration::from_secs_f64(args.duration_s.max(0.0));
    // Sample memory and mappings while everything is resident, near the end.
    let mut rss = rss_bytes();
    let mut maps = mappings();
    while run_start.elapsed() < duration {
        std::thread::sleep(
            Duration::from_millis(50).min(duration.saturating_sub(run_start.elapsed())),
        );
        if sched.live() == 0 {
            break;
        }
        if run_start.elapsed() + Duration::from_millis(500) >= duration
            || sched.live() == args.instances
        {
            rss = rss.max(rss_bytes());
            maps = maps.max(mappings());
        }
    }
    let run_s = run_start.elapsed().as_secs_f64();
    eprintln!("ran {run_s:.2} s; stopping");
    let report = sched.shutdown();

    let mut per_instance: Vec<u64> = handles.iter().map(|h| h.stats().slices).collect();
    per_instance.sort_unstable();
    let instances_run = per_instance.iter().filter(|&&n| n > 0).count() as u64;
    let spi = (
        per_instance[0],
        per_instance[per_instance.len() / 2],
        per_instance[per_instance.len() - 1],
    );
    let (mut ok, mut bad) = (0u64, 0u64);
    if compute {
        // Check every finished instance against the native reference.
        for (i, h) in handles.iter().enumerate() {
            if let Some(Ok(vals)) = h.try_result() {
                let want = compute_reference(i as i64, args.compute_rounds, heap_bytes);
                if vals.first() == Some(&Val::I64(want)) {
                    ok += 1;
                } else {
                    bad += 1;
                }
            }
        }
    }
    let m = report.metrics;
    let wall_ns = run_s * 1e9 * report.workers as f64;
    let r = StressReport {
        instances: args.instances,
        workers: report.workers,
        quantum_ns: args.quantum_us * 1000,
        fuel_per_slice: args.fuel_per_slice,
        duration_s: run_s,
        guest: guest_name,
        spawn_s,
        rss_bytes: rss,
        rss_baseline_bytes: rss_baseline,
        rss_per_instance_bytes: rss.saturating_sub(rss_baseline) as f64 / args.instances as f64,
        mappings: maps,
        slices: m.slices,
        slices_per_sec: m.slices as f64 / run_s.max(1e-9),
        guest_cpu_share: (m.guest_ns as f64 / wall_ns.max(1.0)).min(1.0),
        slices_per_instance: spi,
        instances_run,
        finished: m.finished - m.trapped - m.cancelled,
        trapped: m.trapped,
        cancelled: m.cancelled,
        checked_ok: ok,
        checked_bad: bad,
        steals: m.steals,
        metrics: m,
    };
    print!("{}", r.text());
    if r.instances_run < args.instances as u64 {
        eprintln!(
            "warning: only {} of {} instances ran in {:.1} s; figures such as RSS per \
             instance describe a partial first pass (run longer with --duration-s)",
            r.instances_run, args.instances, run_s
        );
    }
    if let Some(dir) = &args.out {
        r.write(dir)
            .with_context(|| format!("writing the report to {}", dir.display()))?;
        println!("report written to {}", dir.display());
    }
    if bad > 0 {
        bail!("{bad} compute instances returned a wrong result");
    }
    Ok(())
}
