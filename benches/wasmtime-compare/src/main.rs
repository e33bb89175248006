//! The compute kernels of `../kernels/` on Wasmtime, in two
//! configurations: its default (signals-based traps, a 4 GiB reservation
//! with guard pages, bounds checks elided) and with explicit bounds checks
//! (`memory_reservation(0)`, `signals_based_traps(false)`), the way Myriad
//! runs a million small instances. Prints the median wall time of each,
//! like Myriad's `kernels` binary.
//!
//! Neither configuration can preempt the guest. `--fuel` adds Wasmtime's
//! fuel metering (`consume_fuel`, a counter checked at loop headers and
//! function entries, as Myriad's preemption is), and `--epochs` its epoch
//! interruption (a load and compare at the same points): the like-for-like
//! figures for a runtime that switches among guests. `--emit-dir DIR`
//! writes each compiled kernel (an ELF file) for `objdump -d`.

use std::time::{Duration, Instant};
use wasmtime::{Config, Engine, Instance, Module, OptLevel, Store};

const KERNELS: [(&str, i64); 4] = [
    ("sieve", 600),
    ("matmul", 40),
    ("hash", 150_000_000),
    ("fib", 36),
];

fn main() -> wasmtime::Result<()> {
    let mut runs = 7usize;
    let mut explicit = false;
    let mut fuel = false;
    let mut epochs = false;
    let mut emit: Option<std::path::PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| wasmtime::format_err!("--runs N"))?
            }
            "--explicit-bounds-checks" => explicit = true,
            "--fuel" => fuel = true,
            "--epochs" => epochs = true,
            "--emit-dir" => {
                emit = Some(
                    args.next()
                        .ok_or_else(|| wasmtime::format_err!("--emit-dir DIR"))?
                        .into(),
                )
            }
            other => return Err(wasmtime::format_err!("unknown argument {other:?}")),
        }
    }
    let mut config = Config::new();
    config.cranelift_opt_level(OptLevel::Speed);
    if explicit {
        config.memory_reservation(0);
        config.memory_guard_size(0);
        config.signals_based_traps(false);
    }
    config.consume_fuel(fuel);
    config.epoch_interruption(epochs);
    let engine = Engine::new(&config)?;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels");
    for (name, arg) in KERNELS {
        let wat = std::fs::read_to_string(dir.join(format!("{name}.wat")))?;
        let module = Module::new(&engine, &wat)?;
        if let Some(dir) = &emit {
            // The compiled ELF, for `objdump -d` beside Myriad's artifact.
            std::fs::write(dir.join(format!("{name}.cwasm")), module.serialize()?)?;
        }
        let mut times = Vec::new();
        let mut result = 0;
        for _ in 0..runs {
            let mut store = Store::new(&engine, ());
            if fuel {
                store.set_fuel(u64::MAX)?;
            }
            if epochs {
                store.set_epoch_deadline(u64::MAX);
            }
            let instance = Instance::new(&mut store, &module, &[])?;
            let run = instance.get_typed_func::<i64, i64>(&mut store, "run")?;
            let t = Instant::now();
            result = run.call(&mut store, arg)?;
            times.push(t.elapsed());
        }
        times.sort();
        let median = times[times.len() / 2];
        println!(
            "{name:7} run({arg}) = Some(I64({result})): median {:.1} ms (min {:.1}, max {:.1})",
            ms(median),
            ms(times[0]),
            ms(times[times.len() - 1])
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
