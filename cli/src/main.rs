//! `myriad`: compile WebAssembly to Myriad artifacts, inspect artifacts, and
//! run a module's export on the real scheduler.
//!
//! Exit status: 0 on success; 1 when something fails (I/O, compilation,
//! loading an artifact, the instance was cancelled); 2 when the command
//! line does not fit (unknown flag, unknown export, wrong argument count or
//! type); [`EXIT_TRAP`] (134) when the instance traps; a WASI program's
//! own status when it calls `proc_exit` (1 for a status outside 0..=255,
//! see [`exit_status`]).

mod cache;
mod inspect;
mod values;
mod wasi;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use myriad_codegen::CompileConfig;
use myriad_runtime::{InstantiateError, Module};
use myriad_scheduler::{InstanceError, Scheduler, SchedulerConfig, SpawnError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Exit status of `myriad run` when the instance traps (like a process
/// killed by SIGABRT: 128 + 6).
pub const EXIT_TRAP: u8 = 134;

/// Fuel slice of an instance `myriad run` runs alone (a WASI command, or
/// `--invoke` without `--quantum-us`): the most the runtime grants, 2^40
/// units, about 15 minutes of compute on the project's host. Nothing else
/// waits for the core, and a time slice ends at a fuel check by taking
/// its slow branch, after which a hot loop or call runs 5-10 % slower for
/// the rest of the process on the project's AMD host (docs/PERFORMANCE.md,
/// "The preemption branch, once taken"). Host calls that sleep or yield
/// still end a slice.
pub const ALONE_SLICE_FUEL: u64 = myriad_runtime::fuel::MAX_FUEL.unsigned_abs();
/// Exit status when the command line does not fit the program.
pub const EXIT_USAGE: u8 = 2;

/// The process exit status for a guest's `proc_exit(code)` (the wasm
/// `i32`, so a code of 2^31 or more shows as negative). 0..=255 is used as
/// it is. Anything else cannot be an exit status (a Unix status is 8
/// bits) and cutting it to its low byte could make a failing program look
/// successful (`proc_exit(256)` would exit 0), so it exits 1, the generic
/// failure, with a note on stderr.
pub fn exit_status(code: i32) -> ExitCode {
    match u8::try_from(code) {
        Ok(status) => ExitCode::from(status),
        Err(_) => {
            eprintln!(
                "error: the program exited with status {} (as unsigned {}), which is not \
                 in 0..=255; exiting with 1",
                code, code as u32
            );
            ExitCode::FAILURE
        }
    }
}

/// An error in how the command was invoked (exit status 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Fail with a [`UsageError`].
macro_rules! usage {
    ($($t:tt)*) => {
        return Err(anyhow::Error::new(crate::UsageError(format!($($t)*))))
    };
}
pub(crate) use usage;

#[derive(Parser)]
#[command(
    name = "myriad",
    version,
    about = "Compile, inspect and run WebAssembly modules with Myriad",
    after_help = "Exit status: 0 success, 1 failure, 2 bad command line or arguments, 134 the instance trapped; a WASI program exits with its proc_exit status (1 if that is outside 0..=255)."
)]
struct Cli {
    /// Say what happens (cache hits and misses, artifact paths) on stderr.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compile a module (.wasm or .wat) to a native artifact (.so).
    Compile {
        /// The module, binary or text format.
        input: PathBuf,
        /// Where to write the artifact.
        #[arg(short, long, value_name = "OUT.so")]
        output: PathBuf,
        /// How compiled code checks heap bounds: `dense` (complete checks,
        /// runs in any region: for many small instances) or `sparse` (no
        /// checks for small offsets; needs a 4 GiB reservation and a guard
        /// per instance: for a few big ones).
        #[arg(long, value_enum, default_value_t = Bounds::Dense)]
        bounds: Bounds,
        /// The guard after the heap, KiB: with `--bounds dense`, compile for
        /// a heap followed by this much faulting guard (shorter checks; the
        /// runtime then needs guard mode); with `--bounds sparse`, instead
        /// of its 32 MiB.
        #[arg(long, value_name = "G")]
        guard_kib: Option<u64>,
    },
    /// Verify an artifact as loading does and describe it.
    ///
    /// The checks show the file is intact and built for this ABI and CPU,
    /// not who produced it: run only artifacts you compiled or trust as you
    /// would a shared library.
    Inspect {
        /// The artifact.
        file: PathBuf,
        /// Also check that the artifact records the source key of this
        /// module (.wasm or .wat) compiled with the artifact's settings
        /// (exit status 1 if not).
        #[arg(long, value_name = "MODULE")]
        source: Option<PathBuf>,
    },
    /// Run a module's `_start`, or the export given by --invoke.
    ///
    /// Flags go before PROG; everything after PROG is an argument.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Call this export with ARGS and print its results, one per line.
    #[arg(long, value_name = "NAME")]
    invoke: Option<String>,
    /// With `--invoke`: run the instance in time slices of Q
    /// microseconds (from 1,000 up they end by asynchronous preemption,
    /// a timer's signal, not at fuel checks). Without it the instance,
    /// alone on its worker, runs in fuel slices of 2^40 units (a WASI
    /// command always does).
    #[arg(long, value_name = "Q",
          value_parser = clap::value_parser!(u64).range(1..))]
    quantum_us: Option<u64>,
    /// Native stack for wasm frames, KiB.
    #[arg(long, default_value_t = 1024, value_name = "K",
          value_parser = clap::value_parser!(u64).range(16..=1024 * 1024))]
    stack_kib: u64,
    /// When compiling a .wasm/.wat: how the code checks heap bounds (see
    /// `compile --bounds`). `sparse`, the default, is the fastest for one
    /// program. An artifact brings its own setting.
    #[arg(long, value_enum, default_value_t = Bounds::Sparse)]
    bounds: Bounds,
    /// When compiling a .wasm/.wat: the guard after the heap, KiB (see
    /// `compile --guard-kib`).
    #[arg(long, value_name = "G")]
    guard_kib: Option<u64>,
    /// Neither read nor write the compile cache.
    #[arg(long)]
    no_cache: bool,
    /// Preopen a host directory for a WASI program: `HOST` (seen under the
    /// same name) or `HOST::GUEST`. Repeatable.
    #[arg(long = "dir", value_name = "DIR")]
    dirs: Vec<String>,
    /// Set an environment variable for a WASI program. Repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    envs: Vec<String>,
    /// The program (.wasm, .wat or a compiled .so artifact), then its
    /// arguments: everything after the program is one, flags included
    /// (an export's: i32/i64 in decimal or 0x hex, f32/f64 in decimal,
    /// nan, inf, -inf; a WASI program's: its argv).
    #[arg(
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PROG [ARGS]"
    )]
    command: Vec<String>,
}

impl RunArgs {
    /// The program: the first word of the command.
    fn prog(&self) -> PathBuf {
        PathBuf::from(self.command.first().map_or("", String::as_str))
    }

    /// The program's arguments: the rest of the command.
    fn prog_args(&self) -> &[String] {
        self.command.get(1..).unwrap_or(&[])
    }
}

fn main() -> ExitCode {
    // The first end of the TSC calibration (when the CPU does not state the
    // frequency): loading and compiling then overlap the rest of it.
    myriad_runtime::fuel::start_calibration();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Compile {
            input,
            output,
            bounds,
            guard_kib,
        } => {
            compile(&input, &output, &compile_config(bounds, guard_kib)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Inspect { file, source } => inspect::inspect(&file, source.as_deref()),
        Cmd::Run(args) => run(args, cli.verbose),
    }
}

/// The trap message of an instantiation the spec defines as trapping: an
/// active data or element segment out of bounds (`myriad run` exits with
/// [`EXIT_TRAP`], as for a trapping start function).
pub(crate) fn instantiation_trap(e: &InstantiateError) -> Option<String> {
    match e {
        InstantiateError::DataSegmentOutOfBounds { .. } => {
            Some(format!("out of bounds memory access: {e}"))
        }
        InstantiateError::ElemSegmentOutOfBounds { index } => Some(format!(
            "out of bounds table access: element segment {index} does not fit its table"
        )),
        _ => None,
    }
}

/// How compiled code checks heap bounds (`--bounds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Bounds {
    /// Complete bounds checks (or `index <= length` with `--guard-kib`).
    Dense,
    /// No checks for small offsets: a 4 GiB reservation and a guard.
    Sparse,
}

/// The compile settings of `--bounds` and `--guard-kib`.
fn compile_config(bounds: Bounds, guard_kib: Option<u64>) -> Result<CompileConfig> {
    let guard = match guard_kib {
        None => None,
        Some(kib) => match kib.checked_mul(1024) {
            Some(b) if b <= 1 << 32 => Some(b),
            _ => usage!("--guard-kib {kib} is too large (at most 4194304)"),
        },
    };
    Ok(match (bounds, guard) {
        (Bounds::Dense, None) => CompileConfig::dense(),
        (Bounds::Dense, Some(g)) => CompileConfig::guarded(g),
        (Bounds::Sparse, None) => CompileConfig::sparse(),
        (Bounds::Sparse, Some(0)) => usage!("--bounds sparse needs a guard (--guard-kib > 0)"),
        (Bounds::Sparse, Some(g)) => CompileConfig {
            guard_bytes: g,
            heap_reservation: myriad_codegen::SPARSE_RESERVATION,
        },
    })
}

/// Read a module file as a wasm binary (text format is assembled).
pub(crate) fn read_wasm(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let parsed = wat::parse_bytes(&bytes)
        .with_context(|| format!("{} is not a valid .wasm or .wat module", path.display()))?;
    // Binary wasm comes back borrowed: keep the bytes read rather than copy
    // them (a copy of a large module costs a page fault per 4 KiB).
    if let std::borrow::Cow::Owned(wasm) = parsed {
        return Ok(wasm);
    }
    Ok(bytes)
}

/// Compile `wasm` with `config`, naming `path` in errors.
pub(crate) fn compile_wasm(wasm: &[u8], config: &CompileConfig, path: &Path) -> Result<Vec<u8>> {
    myriad_codegen::compile(wasm, config).map_err(|e| compile_error(&e, path))
}

/// The error for a module at `path` that did not compile.
pub(crate) fn compile_error(e: &dyn std::fmt::Display, path: &Path) -> anyhow::Error {
    let msg = e.to_string();
    let msg = if msg.starts_with("unsupported:") && msg.contains("imports") {
        format!("{msg} (WASI and host imports are not implemented yet)")
    } else {
        msg
    };
    anyhow::anyhow!("cannot compile {}: {msg}", path.display())
}

/// Write `bytes` to `path` via a temporary file in the same directory and
/// a rename, so readers never see a partial file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.{}.{n}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

fn compile(input: &Path, output: &Path, config: &CompileConfig) -> Result<()> {
    let wasm = read_wasm(input)?;
    let so = compile_wasm(&wasm, config, input)?;
    write_atomic(output, &so)
}

/// `path` made absolute: `dlopen` searches the library path for a name
/// without a slash (`t.so`) instead of opening the file.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

fn is_artifact(path: &Path) -> Result<bool> {
    let mut head = [0u8; 4];
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let n = std::io::Read::read(&mut f, &mut head)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(n == 4 && head == *b"\x7fELF")
}

/// Linear memory each instance may reach: the declared maximum (or 4 GiB
/// when there is none), at least the initial size. The region is one
/// `MAP_NORESERVE` mapping, so reserving much costs nothing until touched.
fn heap_capacity(module: &Module) -> usize {
    const CAP: u64 = 4 << 30;
    const MIN: u64 = 64 << 10;
    let bytes = match module.metadata().memory {
        None => MIN,
        Some(m) => {
            let page = m.page_size();
            let max = m.max_pages.map_or(CAP, |p| p.saturating_mul(page)).min(CAP);
            max.max(m.min_pages.saturating_mul(page)).max(MIN)
        }
    };
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

fn run(args: RunArgs, verbose: bool) -> Result<ExitCode> {
    let prog = args.prog();
    // Known flags before the program are parsed as flags; an unknown one
    // is taken as the first word of the command (the words after the
    // program may look like flags).
    if let Some(flag) = prog.to_str().filter(|p| p.starts_with('-')) {
        usage!(
            "unexpected argument {flag:?} before the program \
             (flags go before it: see `myriad run --help`; a program whose \
             name starts with '-' is ./{flag})"
        );
    }
    let module = if is_artifact(&prog)? {
        if args.guard_kib.is_some() || args.bounds != Bounds::Sparse {
            eprintln!("warning: --bounds and --guard-kib are ignored for a compiled artifact");
        }
        Module::from_file(&absolute(&prog)).map_err(anyhow::Error::new)?
    } else {
        let opts = cache::Options {
            config: compile_config(args.bounds, args.guard_kib)?,
            use_cache: !args.no_cache,
            verbose,
        };
        cache::load_wasm(&prog, &opts)?
    };
    let module = Arc::new(module);

    let name = match &args.invoke {
        Some(n) => n.clone(),
        None => {
            if module.export_type("_start").is_none() {
                usage!("no _start export; use --invoke NAME");
            }
            // A command: WASI imports, program arguments, exit status.
            let cmd = wasi::Command {
                argv0: prog
                    .file_name()
                    .map_or_else(|| "prog".into(), |n| n.to_string_lossy().into_owned()),
                args: args.prog_args(),
                env: &args.envs,
                dirs: &args.dirs,
                stack_size: (args.stack_kib * 1024) as usize,
                heap_capacity: heap_capacity(&module),
            };
            return wasi::run_command(&module, &cmd);
        }
    };
    let Some(ty) = module.export_type(&name).cloned() else {
        let mut names: Vec<&str> = module.export_names().collect();
        names.sort_unstable();
        let list = if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        };
        usage!("the module has no exported function named {name:?} (exports: {list})");
    };
    let vals = values::parse_args(&name, &ty, args.prog_args())?;

    let md = module.metadata();
    // One instance alone on its worker: time slices only if asked for.
    let (quantum, fuel_per_slice) = match args.quantum_us {
        Some(q) => (Duration::from_micros(q), None),
        None => (SchedulerConfig::default().quantum, Some(ALONE_SLICE_FUEL)),
    };
    let config = SchedulerConfig {
        workers: 1,
        quantum,
        fuel_per_slice,
        capacity: 1,
        stack_size: (args.stack_kib * 1024) as usize,
        // Sparse code relies on a reservation of 4 GiB: the slot's heap
        // capacity is that large; growth stays within the declared maximum
        // (which `heap_capacity` already is), and the memory limit is the
        // one of the module's own capacity.
        heap_capacity: heap_capacity(&module).max(md.heap_reservation as usize),
        guard_size: md.guard_bytes as usize,
        guard_mode: md.guard_bytes > 0,
        // The default for the module's capacity: the heap plus as much
        // again for tables.
        memory_limit: Some(SchedulerConfig::default_memory_limit(heap_capacity(
            &module,
        ))),
        mailbox_messages: SchedulerConfig::default().mailbox_messages,
        mailbox_bytes: SchedulerConfig::default().mailbox_bytes,
        pin_workers: false,
        start_paused: false,
    };
    // `--invoke` calls the export with no imports bound: a WASI program
    // runs through `_start`, where the WASI functions are.
    if let Some(i) = md.imports.iter().find(|i| i.module == myriad_wasi::MODULE) {
        usage!(
            "--invoke calls an export without WASI, and this module imports {}.{}: \
             run it without --invoke (its _start gets WASI)",
            i.module,
            i.name
        );
    }
    // Every import needs a definition; name the first that has none.
    myriad_runtime::Linker::new()
        .resolve(&module)
        .map_err(anyhow::Error::new)?;
    let sched = Scheduler::new(config).context("cannot start the scheduler")?;
    let handle = match sched.spawn(&module, &name, &vals) {
        Ok(h) => h,
        Err(SpawnError::Instantiate(
            e @ (InstantiateError::NoSuchExport(_)
            | InstantiateError::ArgumentCount { .. }
            | InstantiateError::ArgumentType { .. }),
        )) => usage!("{e}"),
        Err(SpawnError::Instantiate(e)) if instantiation_trap(&e).is_some() => {
            eprintln!(
                "error: trap: {}",
                instantiation_trap(&e).unwrap_or_default()
            );
            return Ok(ExitCode::from(EXIT_TRAP));
        }
        Err(e) => return Err(e).context(format!("cannot instantiate {}", prog.display())),
    };
    let result = handle.join();
    drop(sched.shutdown());
    match result {
        Ok(results) => {
            let mut out = std::io::stdout().lock();
            for v in results {
                writeln!(out, "{}", values::format_val(v))?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(InstanceError::Trap(kind)) => {
            eprintln!("error: trap: {kind}");
            Ok(ExitCode::from(EXIT_TRAP))
        }
        Err(InstanceError::Exited(code)) => Ok(exit_status(code)),
        Err(InstanceError::Limit(l)) => bail!("the instance stopped: {l}"),
        Err(InstanceError::Cancelled) => bail!("the instance was cancelled"),
        Err(InstanceError::Killed(by)) => {
            bail!("the instance was ended by the abnormal end of linked instance {by}")
        }
    }
}
