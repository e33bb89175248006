//! A host function parks its instance; another thread resumes it with a
//! value. While parked the instance uses no CPU and sits in no run queue.
//!
//! `cargo run --release -p myriad-scheduler --example park_resume`

use myriad_runtime::{Caller, CompileConfig, HostAction, Linker, Module, Val};
use myriad_scheduler::{current, InstanceState, Scheduler, SchedulerConfig, SpawnOptions};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const GUEST: &str = r#"(module
  (import "env" "ask" (func $ask (param i32) (result i32)))
  (func (export "run") (result i32)
    ;; ask the embedder twice and add the answers
    (i32.add (call $ask (i32.const 1)) (call $ask (i32.const 2)))))"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The per-user cache (created 0700; refused if others can write to it).
    let cache = myriad_runtime::default_cache_dir();
    let module = Arc::new(Module::compile(
        &wat::parse_str(GUEST)?,
        &CompileConfig::default(),
        &cache,
    )?);

    // The host function sends the question and its instance's handle to an
    // "oracle" thread, then parks.
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let mut linker = Linker::new();
    linker.func_wrap(
        "env",
        "ask",
        move |_: &mut Caller<'_>, q: i32| -> Result<i32, HostAction> {
            let me = current().expect("called under a scheduler");
            println!("guest {} asks question {q} and parks", me.id());
            tx.lock().unwrap().send((q, me)).unwrap();
            Err(HostAction::Park)
        },
    );
    let linker = Arc::new(linker);

    let oracle = std::thread::spawn(move || {
        for (q, handle) in rx {
            std::thread::sleep(Duration::from_millis(100));
            println!(
                "oracle: instance {} is {:?} (slices so far {}); answering {}",
                handle.id(),
                handle.state(),
                handle.stats().slices,
                q * 20
            );
            assert_eq!(handle.state(), InstanceState::Parked);
            handle.resume(&[Val::I32(q * 20)]).expect("resume");
        }
    });

    let sched = Scheduler::new(SchedulerConfig {
        workers: 2,
        capacity: 16,
        ..SchedulerConfig::default()
    })?;
    let t = Instant::now();
    let h = sched.spawn_with(&module, "run", &[], SpawnOptions::new().linker(&linker))?;
    let r = h.join()?;
    println!(
        "result {r:?} after {:?}; guest CPU time {} us over {} slices (parked ~200 ms without running)",
        t.elapsed(),
        h.stats().cpu_ns / 1000,
        h.stats().slices
    );
    drop(linker);
    drop(sched);
    oracle.join().unwrap();
    Ok(())
}
