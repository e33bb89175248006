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
//! `--layouts N` runs each kernel in N code placements (see
//! `../kernels/layout.rs`) and prints the mean, min and max of their
//! medians, as Myriad's `kernels` does.
//!
//! `compile FILE.wasm [-o OUT]` instead precompiles one module
//! (`Engine::precompile_module`, in the configuration the flags above
//! select; `--serial` compiles on one thread), and prints the wall time and the size of the produced ELF
//! file and of its `.text` section: the other side of `myriad compile`.

#[path = "../../kernels/layout.rs"]
mod layout;

use std::time::{Duration, Instant};
use wasmtime::{Config, Engine, Instance, Module, OptLevel, Store};

const KERNELS: [(&str, i64); 5] = [
    ("sieve", 600),
    ("sieve_rotated", 600),
    ("matmul", 40),
    ("hash", 150_000_000),
    ("fib", 36),
];

fn main() -> wasmtime::Result<()> {
    let mut runs = 7usize;
    let mut layouts = 1usize;
    let mut explicit = false;
    let mut fuel = false;
    let mut epochs = false;
    let mut serial = false;
    let mut emit: Option<std::path::PathBuf> = None;
    let mut only: Option<String> = None;
    let mut compile: Option<std::path::PathBuf> = None;
    let mut output: Option<std::path::PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "compile" => {
                compile = Some(
                    args.next()
                        .ok_or_else(|| wasmtime::format_err!("compile FILE.wasm"))?
                        .into(),
                )
            }
            "-o" => {
                output = Some(
                    args.next()
                        .ok_or_else(|| wasmtime::format_err!("-o OUT"))?
                        .into(),
                )
            }
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| wasmtime::format_err!("--runs N"))?
            }
            "--layouts" => {
                layouts = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| wasmtime::format_err!("--layouts N (at least 1)"))?
            }
            "--only" => {
                only = Some(
                    args.next()
                        .ok_or_else(|| wasmtime::format_err!("--only NAME"))?,
                )
            }
            "--explicit-bounds-checks" => explicit = true,
            "--fuel" => fuel = true,
            "--serial" => serial = true,
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
    config.parallel_compilation(!serial);
    let engine = Engine::new(&config)?;
    if let Some(path) = compile {
        return precompile(&engine, &path, output.as_deref());
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels");
    for (name, arg) in KERNELS {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let wat = std::fs::read_to_string(dir.join(format!("{name}.wat")))?;
        let mut medians = Vec::new();
        let mut result = 0;
        for steps in 0..layouts {
            let module = Module::new(&engine, layout::with_padding(&wat, steps))?;
            if let Some(dir) = &emit {
                // The compiled ELF, for `objdump -d` beside Myriad's
                // artifact (`NAME.cwasm`, then `NAME-L.cwasm` for
                // placement L).
                let file = match steps {
                    0 => format!("{name}.cwasm"),
                    l => format!("{name}-{l}.cwasm"),
                };
                std::fs::write(dir.join(file), module.serialize()?)?;
            }
            let mut times = Vec::new();
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
                times.push(ms(t.elapsed()));
            }
            let median =
                layout::median(&mut times).ok_or_else(|| wasmtime::format_err!("no runs"))?;
            if layouts == 1 {
                println!(
                    "{name:7} run({arg}) = Some(I64({result})): median {median:.1} ms (min {:.1}, max {:.1})",
                    times[0],
                    times[times.len() - 1]
                );
            }
            medians.push(median);
        }
        if layouts > 1 {
            let each: Vec<String> = medians.iter().map(|t| format!("{t:.1}")).collect();
            let mean = layout::mean(&medians).ok_or_else(|| wasmtime::format_err!("no layouts"))?;
            medians.sort_by(f64::total_cmp);
            println!(
                "{name:7} run({arg}) = Some(I64({result})): mean {mean:.1} ms (min {:.1}, max {:.1}) over {layouts} layouts: {}",
                medians[0],
                medians[medians.len() - 1],
                each.join(" ")
            );
        }
    }
    Ok(())
}

/// Precompile the module at `path` once, timing the wall clock from the
/// read of the file to the ELF bytes in memory (what `myriad compile`
/// does, less its write), and print the time and the sizes.
fn precompile(
    engine: &Engine,
    path: &std::path::Path,
    output: Option<&std::path::Path>,
) -> wasmtime::Result<()> {
    let t = Instant::now();
    let wasm = std::fs::read(path)?;
    let elf = engine.precompile_module(&wasm)?;
    let wall = t.elapsed();
    if let Some(out) = output {
        std::fs::write(out, &elf)?;
    }
    let text = text_size(&elf).ok_or_else(|| wasmtime::format_err!("no .text in the ELF"))?;
    println!(
        "compile {}: wall {:.1} ms, elf {} bytes, .text {} bytes",
        path.display(),
        ms(wall),
        elf.len(),
        text
    );
    Ok(())
}

/// The size of the `.text` section of a 64-bit little-endian ELF file.
fn text_size(elf: &[u8]) -> Option<u64> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let shentsize = usize::from(u16_at(0x3a)?);
    let shnum = usize::from(u16_at(0x3c)?);
    let strtab = shoff + shentsize * usize::from(u16_at(0x3e)?);
    let names = usize::try_from(u64_at(strtab + 0x18)?).ok()?;
    (0..shnum).find_map(|i| {
        let sh = shoff + shentsize * i;
        let name = names + usize::try_from(u32_at(sh)?).ok()?;
        let end = name + elf.get(name..)?.iter().position(|&b| b == 0)?;
        (elf.get(name..end)? == b".text").then(|| u64_at(sh + 0x20))?
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
