//! Run the compute kernels of `benches/kernels/` in Myriad and print the
//! median wall time of each (the Wasmtime side is
//! `benches/wasmtime-compare/`).
//!
//! `cargo run --release -p myriad-benches --bin kernels [-- --runs N] [--layouts N] [--bounds dense|sparse] [--only NAME] [--fuel-slice UNITS] [--slice-us US] [--async-min-us US|off] [--print-runs]`
//!
//! Dense (the default) compiles complete bounds checks and runs in a plain
//! region, as a million instances do; sparse compiles with
//! [`CompileConfig::sparse`] and runs in a guard-mode region with a 4 GiB
//! heap reservation, as `myriad run` does.
//!
//! By default each run is time sliced (10 ms slices; `--slice-us US`
//! sets another length), as under the scheduler with `--quantum-us
//! 10000`. A slice of at least the asynchronous threshold (1 ms by
//! default; `--async-min-us US` sets it, `off` turns asynchronous slices
//! off) ends by a timer's signal and its fuel checks never take their
//! slow branch; a shorter one is paced by its fuel checks (the slow path
//! reads the clock every 25 µs or less; see docs/PERFORMANCE.md,
//! "Asynchronous preemption"). `--fuel-slice UNITS` runs fuel slices of
//! UNITS instead (no clock; with more units than the kernel spends, the
//! slow path is never called). `--print-runs`
//! prints every run's time, in order, before the median: a kernel's speed
//! can depend on whether an earlier run took the fuel slow path (see
//! docs/PERFORMANCE.md, "The sieve and the fuel check's slow branch").
//! `--layouts N` runs each kernel in N code placements (see
//! `kernels/layout.rs`) and prints the mean, min and max of their
//! medians.

#[path = "../../kernels/layout.rs"]
mod layout;

use anyhow::{bail, Context, Result};
use myriad_runtime::{CompileConfig, Instance, Module, Outcome, Region, RegionConfig, Val};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Each kernel with the argument that makes it run a few hundred ms.
pub const KERNELS: [(&str, i64); 5] = [
    ("sieve", 600),
    ("sieve_rotated", 600),
    ("matmul", 40),
    ("hash", 150_000_000),
    ("fib", 36),
];

fn main() -> Result<()> {
    let mut runs = 7usize;
    let mut sparse = false;
    let mut only: Option<String> = None;
    let mut fuel_slice: Option<u64> = None;
    let mut print_runs = false;
    let mut layouts = 1usize;
    let mut slice_us = 10_000u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().context("--runs N")?.parse()?,
            "--layouts" => layouts = args.next().context("--layouts N")?.parse()?,
            "--bounds" => {
                sparse = match args.next().as_deref() {
                    Some("dense") => false,
                    Some("sparse") => true,
                    other => bail!("--bounds dense|sparse, not {other:?}"),
                }
            }
            "--only" => only = Some(args.next().context("--only NAME")?),
            "--fuel-slice" => {
                fuel_slice = Some(args.next().context("--fuel-slice UNITS")?.parse()?)
            }
            "--slice-us" => slice_us = args.next().context("--slice-us US")?.parse()?,
            "--async-min-us" => match args.next().as_deref() {
                Some("off") => myriad_runtime::fuel::set_async_preempt_min(None),
                Some(us) => myriad_runtime::fuel::set_async_preempt_min(Some(
                    Duration::from_micros(us.parse().context("--async-min-us US|off")?),
                )),
                None => bail!("--async-min-us US|off"),
            },
            "--print-runs" => print_runs = true,
            other => bail!("unknown argument {other:?}"),
        }
    }
    let config = if sparse {
        CompileConfig::sparse()
    } else {
        CompileConfig::dense()
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let cache = myriad_runtime::default_cache_dir();
    myriad_runtime::thread_init()?;
    let region = Arc::new(Region::new(RegionConfig {
        slots: 1,
        stack_size: 1 << 20,
        heap_capacity: 1 << 20,
        guard_size: config.guard_bytes as usize,
        guard_mode: sparse,
        heap_reservation: config.heap_reservation as usize,
    })?);
    if runs == 0 || layouts == 0 {
        bail!("--runs and --layouts must be at least 1");
    }
    if let Some(name) = &only {
        if !KERNELS.iter().any(|(k, _)| k == name) {
            bail!("--only: no kernel {name:?}");
        }
    }
    for (name, arg) in KERNELS {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let wat = std::fs::read_to_string(dir.join(format!("{name}.wat")))?;
        let mut medians = Vec::new();
        let mut result = None;
        for steps in 0..layouts {
            let wasm = wat::parse_str(layout::with_padding(&wat, steps))?;
            let module = Arc::new(Module::compile(&wasm, &config, &cache)?);
            let mut times = Vec::new();
            for _ in 0..runs {
                let mut inst = Instance::new(&region, &module, "run", &[Val::I64(arg)])?;
                let t = Instant::now();
                let out = loop {
                    let outcome = match fuel_slice {
                        Some(units) => inst.resume_fuel(units),
                        None => inst.resume(
                            myriad_runtime::rdtsc()
                                + myriad_runtime::fuel::ns_to_tsc(slice_us * 1000),
                        ),
                    };
                    match outcome {
                        Outcome::Yielded => continue,
                        other => break other,
                    }
                };
                times.push(ms(t.elapsed()));
                match out {
                    Outcome::Finished(v) => result = v.first().copied(),
                    other => bail!("{name}: {other:?}"),
                }
            }
            if print_runs {
                let each: Vec<String> = times.iter().map(|t| format!("{t:.1}")).collect();
                println!("{name:7} runs (ms, in order): {}", each.join(" "));
            }
            if layouts == 1 {
                let median = layout::median(&mut times).context("no runs")?;
                println!(
                    "{name:7} run({arg}) = {:?}: median {median:.1} ms (min {:.1}, max {:.1})",
                    result,
                    times[0],
                    times[times.len() - 1]
                );
            }
            medians.push(layout::median(&mut times).context("no runs")?);
        }
        if layouts > 1 {
            let each: Vec<String> = medians.iter().map(|t| format!("{t:.1}")).collect();
            let mean = layout::mean(&medians).context("no layouts")?;
            medians.sort_by(f64::total_cmp);
            println!(
                "{name:7} run({arg}) = {:?}: mean {mean:.1} ms (min {:.1}, max {:.1}) over {layouts} layouts: {}",
                result,
                medians[0],
                medians[medians.len() - 1],
                each.join(" ")
            );
        }
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
