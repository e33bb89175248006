//! The compute kernels of `../kernels/` on Wasmtime, in two
//! configurations: its default (signals-based traps, a 4 GiB reservation
//! with guard pages, bounds checks elided) and with explicit bounds checks
//! (`memory_reservation(0)`, `signals_based_traps(false)`), the way Myriad
//! runs a million small instances. Prints the median wall time of each,
//! like Myriad's `kernels` binary.

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
    let engine = Engine::new(&config)?;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels");
    for (name, arg) in KERNELS {
        let wat = std::fs::read_to_string(dir.join(format!("{name}.wat")))?;
        let module = Module::new(&engine, &wat)?;
        let mut times = Vec::new();
        let mut result = 0;
        for _ in 0..runs {
            let mut store = Store::new(&engine, ());
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
