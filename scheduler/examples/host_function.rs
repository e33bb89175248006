//! Typed host functions: one reads a string from guest memory, one writes
//! a string into it; embedder data counts the calls.
//!
//! `cargo run --release -p myriad-scheduler --example host_function`

use myriad_runtime::{Caller, CompileConfig, Linker, Module, Val};
use myriad_scheduler::{Scheduler, SchedulerConfig, SpawnOptions};
use std::sync::Arc;

const GUEST: &str = r#"(module
  (import "env" "log" (func $log (param i32 i32)))
  (import "env" "greeting" (func $greeting (param i32 i32) (result i32)))
  (memory 1)
  (data (i32.const 0) "hello from the guest")
  (func (export "run") (result i32)
    (local $n i32)
    (call $log (i32.const 0) (i32.const 20))
    ;; ask the host to write its greeting at 64, then log it back
    (local.set $n (call $greeting (i32.const 64) (i32.const 100)))
    (call $log (i32.const 64) (local.get $n))
    (local.get $n)))"#;

/// Embedder data: a name and a call counter.
struct Ctx {
    name: String,
    calls: u32,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The per-user cache (created 0700; refused if others can write to it).
    let cache = myriad_runtime::default_cache_dir();
    let module = Arc::new(Module::compile(
        &wat::parse_str(GUEST)?,
        &CompileConfig::default(),
        &cache,
    )?);

    let mut linker = Linker::new();
    // Reads `len` bytes at `ptr` from the caller's memory.
    linker.func_wrap("env", "log", |c: &mut Caller<'_>, ptr: u32, len: u32| {
        let (mem, ctx) = c.memory_and_data::<Ctx>();
        let ctx = ctx.expect("spawned with a Ctx");
        ctx.calls += 1;
        let text = mem
            .get(ptr as usize..ptr as usize + len as usize)
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        println!("[{}] guest says: {text:?}", ctx.name);
    });
    // Writes a greeting into the caller's memory; returns its length.
    linker.func_wrap(
        "env",
        "greeting",
        |c: &mut Caller<'_>, ptr: u32, cap: u32| -> i32 {
            let (mem, ctx) = c.memory_and_data::<Ctx>();
            let ctx = ctx.expect("spawned with a Ctx");
            ctx.calls += 1;
            let msg = format!("hello, {}, from the host", ctx.name);
            let n = msg.len().min(cap as usize);
            match mem.get_mut(ptr as usize..ptr as usize + n) {
                Some(dst) => {
                    dst.copy_from_slice(&msg.as_bytes()[..n]);
                    n as i32
                }
                None => -1,
            }
        },
    );
    let linker = Arc::new(linker);

    let sched = Scheduler::new(SchedulerConfig {
        workers: 2,
        capacity: 16,
        ..SchedulerConfig::default()
    })?;
    for name in ["alice", "bob"] {
        let h = sched.spawn_with(
            &module,
            "run",
            &[],
            SpawnOptions::new().linker(&linker).data(Ctx {
                name: name.into(),
                calls: 0,
            }),
        )?;
        let r = h.join()?;
        println!("[{name}] run returned {r:?} (bytes written by the host)");
        assert!(matches!(r[..], [Val::I32(n)] if n > 0));
    }
    Ok(())
}
