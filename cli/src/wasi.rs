//! Running a WASI command (`_start`) under `myriad run`: the context built
//! from `--dir`, `--env` and the program arguments, the WASI functions bound
//! with `myriad_wasi::link`, and the instance run to its exit status.

use anyhow::{bail, Context, Result};
use myriad_runtime::{Instance, LinkError, Linker, Module, Outcome, Region, RegionConfig};
use myriad_wasi::{Output, Stdin, WasiCtx};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// How the run thread ended.
enum Ran {
    /// The instance ran to this outcome (with a host trap's message).
    Ended(Outcome, Option<String>),
    /// Instantiation trapped (an out-of-bounds segment): the message.
    InstantiationTrap(String),
}

/// What `myriad run` needs to run a command.
pub struct Command<'a> {
    /// The program's name as `argv[0]`.
    pub argv0: String,
    /// Program arguments after `argv[0]`.
    pub args: &'a [String],
    /// `KEY=VALUE` pairs.
    pub env: &'a [String],
    /// `HOST[::GUEST]` directories to preopen.
    pub dirs: &'a [String],
    /// Instance stack bytes.
    pub stack_size: usize,
    /// Instance heap capacity bytes.
    pub heap_capacity: usize,
}

/// Run `module`'s `_start` as a WASI command; the exit status is the
/// program's (`proc_exit` code, 0 when `_start` returns, 134 on a trap;
/// a `proc_exit` code outside 0..=255 exits 1, see
/// [`crate::exit_status`]).
pub fn run_command(module: &Arc<Module>, cmd: &Command<'_>) -> Result<ExitCode> {
    let mut b = WasiCtx::builder()
        .args(std::iter::once(cmd.argv0.clone()).chain(cmd.args.iter().cloned()))
        .stdin(Stdin::Inherit)
        .stdout(Output::Inherit)
        .stderr(Output::Inherit);
    for kv in cmd.env {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("--env {kv:?}: expected KEY=VALUE");
        };
        b = b.env(k, v);
    }
    for d in cmd.dirs {
        let (host, guest) = d.split_once("::").unwrap_or((d.as_str(), d.as_str()));
        b = b
            .preopen_dir(Path::new(host), guest)
            .with_context(|| format!("--dir {d}"))?;
    }
    let ctx = b.build().context("cannot set up WASI")?;
    let md = module.metadata();
    let region = Arc::new(
        Region::new(RegionConfig {
            slots: 1,
            stack_size: cmd.stack_size,
            heap_capacity: cmd.heap_capacity,
            // Sparse code relies on this much address space per heap.
            heap_reservation: md.heap_reservation as usize,
            guard_size: md.guard_bytes as usize,
            guard_mode: md.guard_bytes > 0,
        })
        .context("cannot map the instance region")?,
    );
    let mut linker = Linker::new();
    myriad_wasi::link::add_to_linker(&mut linker);
    let module = module.clone();
    let heap_capacity = cmd.heap_capacity;
    // Guests run on a thread that blocks asynchronous signals (a signal
    // frame must never land on a guest stack).
    let worker = std::thread::Builder::new()
        .name("myriad-run".into())
        .spawn(move || -> Result<Ran> {
            myriad_runtime::signals::block_async_signals()
                .context("cannot block asynchronous signals")?;
            let mut inst: Instance = match linker.instantiate(&region, &module, Some(Box::new(ctx)))
            {
                Ok(i) => i,
                Err(LinkError::Instantiate(e)) => match crate::instantiation_trap(&e) {
                    Some(msg) => return Ok(Ran::InstantiationTrap(msg)),
                    None => return Err(anyhow::Error::new(e)),
                },
                Err(e) => return Err(anyhow::Error::new(e)),
            };
            // The scheduler's default bound on memory and table storage.
            inst.set_memory_limit(myriad_scheduler::SchedulerConfig::default_memory_limit(
                heap_capacity,
            ));
            inst.call("_start", &[]).map_err(anyhow::Error::new)?;
            // One program with a thread of its own: fuel slices, not
            // time slices (see `ALONE_SLICE_FUEL`).
            loop {
                match inst.resume_fuel(crate::ALONE_SLICE_FUEL) {
                    Outcome::Yielded => continue,
                    // One program on its own thread: sleeping the thread
                    // is the sleep.
                    Outcome::Sleeping(at) => {
                        std::thread::sleep(at.saturating_duration_since(std::time::Instant::now()));
                        continue;
                    }
                    other => {
                        let msg = inst.host_trap_message().map(str::to_owned);
                        return Ok(Ran::Ended(other, msg));
                    }
                }
            }
        })
        .context("cannot start the run thread")?;
    let (outcome, msg) = match worker
        .join()
        .map_err(|_| anyhow::anyhow!("the run thread panicked"))??
    {
        Ran::Ended(outcome, msg) => (outcome, msg),
        Ran::InstantiationTrap(msg) => {
            eprintln!("error: trap: {msg}");
            return Ok(ExitCode::from(crate::EXIT_TRAP));
        }
    };
    match outcome {
        Outcome::Finished(_) => Ok(ExitCode::SUCCESS),
        Outcome::Exited(code) => Ok(crate::exit_status(code)),
        Outcome::Trapped(kind) => {
            match msg {
                Some(m) if kind == myriad_runtime::TrapKind::HostTrap => {
                    eprintln!("error: trap: {kind}: {m}")
                }
                _ => eprintln!("error: trap: {kind}"),
            }
            Ok(ExitCode::from(crate::EXIT_TRAP))
        }
        Outcome::Limited(l) => bail!("the program stopped: {l}"),
        Outcome::Parked | Outcome::Yielded | Outcome::Sleeping(_) => {
            bail!("the program parked with nothing to resume it")
        }
    }
}
