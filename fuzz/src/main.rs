//! `myriad-fuzz`: run the differential and loader fuzzer for a given time.
//!
//! ```sh
//! cargo run --release -p myriad-fuzz -- --seconds 60 [--seed S] [--out DIR] [--jobs J]
//! cargo run --release -p myriad-fuzz -- replay fuzz/regressions   # or single case files
//! cargo run --release -p myriad-fuzz -- seed 0x1234               # one seed, verbose
//! ```
//!
//! The work runs in child processes (`myriad-fuzz worker ...`), so a crash
//! or a hang in Myriad ends only the child: the supervisor saves the input
//! that was running (each worker notes it before running it), records it
//! as a regression and starts a new worker at the next seed.

use clap::{Parser, Subcommand};
use myriad_fuzz::campaign::{inflight_bin, Campaign, Settings};
use myriad_fuzz::diff::Verdict;
use myriad_fuzz::gen::{module_for, RunParams};
use myriad_fuzz::regressions::{self, parse_u64, write_case, Replay};
use myriad_fuzz::stats::Counters;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A worker whose in-flight input has not changed for this long is hung.
const HANG_AFTER: Duration = Duration::from_secs(60);

#[derive(Parser)]
#[command(
    name = "myriad-fuzz",
    about = "Differential fuzzing of Myriad against wasmi, and loader fuzzing"
)]
struct Cli {
    /// How long to run.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// First seed (decimal or 0x hex); default: from the clock (printed).
    #[arg(long, value_parser = seed_arg)]
    seed: Option<u64>,
    /// Where regression files go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/regressions"))]
    out: PathBuf,
    /// Worker processes run in parallel.
    #[arg(long, default_value_t = 1)]
    jobs: u64,
    /// Do not minimise diverging modules.
    #[arg(long)]
    no_shrink: bool,
    /// Only the differential runs (no wasm or artifact mutations).
    #[arg(long)]
    no_loaders: bool,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Replay regression cases (files of a case, or directories of cases).
    Replay {
        /// Case files or directories.
        paths: Vec<PathBuf>,
    },
    /// Compare one module file (`.wasm` or `.wat`) with the run parameters
    /// of a seed.
    Run {
        /// The module.
        file: PathBuf,
        /// The seed whose run parameters (and call arguments) to use.
        #[arg(long, default_value_t = 0, value_parser = seed_arg)]
        seed: u64,
    },
    /// Run one seed and print what happened.
    Seed {
        /// The seed.
        #[arg(value_parser = seed_arg)]
        seed: u64,
    },
    /// Internal: run seeds `start, start + step, ...` until `until_ms`
    /// (milliseconds since the epoch).
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        start: u64,
        #[arg(long)]
        step: u64,
        #[arg(long)]
        until_ms: u64,
        #[arg(long)]
        inflight: PathBuf,
        /// Scratch directory (the supervisor removes it).
        #[arg(long)]
        work: PathBuf,
    },
}

fn seed_arg(s: &str) -> Result<u64, String> {
    parse_u64(s).ok_or_else(|| format!("not a number: {s}"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A private scratch directory for this process (removed by the caller).
fn work_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "myriad-fuzz-{tag}-{}-{}",
        std::process::id(),
        now_ms()
    ))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Worker {
            start,
            step,
            until_ms,
            ref inflight,
            ref work,
        }) => worker(&cli, start, step, until_ms, inflight, work),
        Some(Cmd::Replay { ref paths }) => replay(paths),
        Some(Cmd::Seed { seed }) => one_seed(seed),
        Some(Cmd::Run { ref file, seed }) => run_file(file, seed),
        None => supervise(&cli),
    }
}

fn settings(cli: &Cli, inflight: Option<PathBuf>) -> Settings {
    Settings {
        out: Some(cli.out.clone()),
        shrink: !cli.no_shrink,
        inflight,
        loaders: !cli.no_loaders,
        ..Settings::default()
    }
}

fn worker(
    cli: &Cli,
    start: u64,
    step: u64,
    until_ms: u64,
    inflight: &Path,
    work: &Path,
) -> ExitCode {
    let _ = std::fs::remove_dir_all(work);
    let mut c = match Campaign::new(work, settings(cli, Some(inflight.to_owned()))) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("myriad-fuzz worker: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut seed = start;
    let mut reported = 0;
    while now_ms() < until_ms {
        let left = Duration::from_millis(until_ms.saturating_sub(now_ms()));
        c.set_shrink_budget(left.clamp(Duration::from_secs(5), Duration::from_secs(60)));
        c.seed(seed);
        for f in &c.findings[reported..] {
            println!("FINDING {}: {}", f.name, f.summary);
        }
        reported = c.findings.len();
        println!("STATS {}", c.counters.encode());
        seed = seed.wrapping_add(step);
    }
    let _ = std::fs::remove_dir_all(work);
    let _ = std::fs::remove_file(inflight);
    let _ = std::fs::remove_file(inflight_bin(inflight));
    ExitCode::SUCCESS
}

/// What a worker left when it died: record it as a regression.
fn record_death(out: &Path, inflight: &Path, why: &str) -> Option<(String, u64)> {
    let note = std::fs::read_to_string(inflight).ok()?;
    let bytes = std::fs::read(inflight_bin(inflight)).ok()?;
    let (what, seed) = note.trim().rsplit_once(' ')?;
    let seed = parse_u64(seed)?;
    let ext = if what.starts_with("artifact") {
        "so"
    } else {
        "wasm"
    };
    let name = format!(
        "{}-{seed:016x}-{}",
        if why.starts_with("hang") {
            "hang"
        } else {
            "crash"
        },
        myriad_fuzz::campaign::slug(what)
    );
    let params = RunParams::from_seed(seed);
    let header = [
        ("seed", format!("{seed:#x}")),
        ("kind", why.to_string()),
        ("signature", what.to_string()),
        ("bounds", params.bounds.name().to_string()),
        ("slice_units", params.slice_units.to_string()),
    ];
    let detail =
        format!("The worker process {why} while running this input ({what} of seed {seed:#x}).");
    write_case(out, &name, ext, &bytes, &header, &detail).ok()?;
    Some((name, seed))
}

fn supervise(cli: &Cli) -> ExitCode {
    let start = cli.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let jobs = cli.jobs.max(1);
    let t0 = Instant::now();
    let until_ms = now_ms() + cli.seconds * 1000;
    println!(
        "myriad-fuzz: first seed {start:#x}, {jobs} worker(s), {} s, regressions to {}",
        cli.seconds,
        cli.out.display()
    );
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("myriad-fuzz: cannot find my own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let scratch = work_dir("supervisor");
    if let Err(e) = myriad_fuzz::myriad::private_dir(&scratch) {
        eprintln!("myriad-fuzz: cannot create {}: {e}", scratch.display());
        return ExitCode::FAILURE;
    }
    let totals = Arc::new(Mutex::new(Counters::default()));
    let deaths = Arc::new(Mutex::new(Vec::<String>::new()));
    std::thread::scope(|s| {
        for j in 0..jobs {
            let (exe, scratch, totals, deaths) = (&exe, &scratch, &totals, &deaths);
            s.spawn(move || {
                let inflight = scratch.join(format!("inflight-{j}"));
                let mut next = start.wrapping_add(j);
                while now_ms() < until_ms {
                    let mut cmd = Command::new(exe);
                    cmd.arg("--out").arg(&cli.out);
                    if cli.no_shrink {
                        cmd.arg("--no-shrink");
                    }
                    if cli.no_loaders {
                        cmd.arg("--no-loaders");
                    }
                    cmd.args(["worker", "--start", &next.to_string(), "--step"])
                        .arg(jobs.to_string())
                        .arg("--until-ms")
                        .arg(until_ms.to_string())
                        .arg("--inflight")
                        .arg(&inflight)
                        .arg("--work")
                        .arg(scratch.join(format!("work-{j}")))
                        .stdout(Stdio::piped());
                    let mut child = match cmd.spawn() {
                        Ok(c) => c,
                        Err(e) => {
                            eprintln!("myriad-fuzz: cannot start a worker: {e}");
                            return;
                        }
                    };
                    let last = Arc::new(Mutex::new(Counters::default()));
                    let reader = child.stdout.take().map(|out| {
                        let last = last.clone();
                        std::thread::spawn(move || {
                            for line in BufReader::new(out).lines().map_while(Result::ok) {
                                if let Some(s) = line.strip_prefix("STATS ") {
                                    *last.lock().unwrap_or_else(|e| e.into_inner()) =
                                        Counters::decode(s);
                                } else {
                                    println!("{line}");
                                }
                            }
                        })
                    });
                    // Watch for a hang: the in-flight note unchanged too long.
                    let mut seen = (String::new(), Instant::now());
                    let status = loop {
                        match child.try_wait() {
                            Ok(Some(st)) => break Some(st),
                            Ok(None) => {}
                            Err(_) => break None,
                        }
                        let note = std::fs::read_to_string(&inflight).unwrap_or_default();
                        if note != seen.0 {
                            seen = (note, Instant::now());
                        } else if seen.1.elapsed() > HANG_AFTER && !seen.0.starts_with("shrink") {
                            let _ = child.kill();
                            let _ = child.wait();
                            break None;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    };
                    if let Some(h) = reader {
                        let _ = h.join();
                    }
                    totals
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .merge(&last.lock().unwrap_or_else(|e| e.into_inner()));
                    match status {
                        Some(st) if st.success() => break,
                        other => {
                            let why = match other {
                                Some(st) => format!("died ({st})"),
                                None => {
                                    format!("hung (no progress for {} s)", HANG_AFTER.as_secs())
                                }
                            };
                            match record_death(&cli.out, &inflight, &why) {
                                Some((name, seed)) => {
                                    println!("FINDING {name}: worker {why}");
                                    deaths.lock().unwrap_or_else(|e| e.into_inner()).push(name);
                                    next = seed.wrapping_add(jobs);
                                }
                                None => {
                                    eprintln!(
                                        "myriad-fuzz: a worker {why} before noting any input"
                                    );
                                    return;
                                }
                            }
                        }
                    }
                }
            });
        }
    });
    let _ = std::fs::remove_dir_all(&scratch);
    let totals = totals.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let deaths = deaths.lock().unwrap_or_else(|e| e.into_inner()).clone();
    println!(
        "myriad-fuzz: {:.0} s, first seed {start:#x}, {jobs} worker(s)\n{}",
        t0.elapsed().as_secs_f64(),
        totals.report()
    );
    let diverged = totals.sum_under("DIVERGED")
        + totals.sum_under("mutant DIVERGED")
        + totals.get("wasm mutant compiles/PANIC")
        + totals.get("metadata mutants/PANIC")
        + totals.get("raw artifact mutants refused/NOT REFUSED");
    println!(
        "myriad-fuzz: {} divergence(s) or loader failure(s), {} crash(es) or hang(s)",
        diverged,
        deaths.len()
    );
    let refused: u64 = totals
        .0
        .iter()
        .filter(|(k, _)| k.starts_with("skipped/Myriad:"))
        .map(|(_, v)| v)
        .sum();
    if refused > 0 {
        println!(
            "note: Myriad refused {refused} generated module(s) as unsupported \
             (they use only what it implements: see skipped/ above)"
        );
    }
    if diverged > 0 || !deaths.is_empty() {
        println!("regression files are in {}", cli.out.display());
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn replay(paths: &[PathBuf]) -> ExitCode {
    let work = work_dir("replay");
    let mut cases = Vec::new();
    for p in paths {
        let dir = if p.is_dir() {
            p.clone()
        } else {
            p.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        let all = match regressions::cases(&dir) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("myriad-fuzz replay: {e}");
                return ExitCode::FAILURE;
            }
        };
        let stem = p.file_stem().and_then(|s| s.to_str()).map(str::to_string);
        cases.extend(
            all.into_iter()
                .filter(|c| p.is_dir() || Some(&c.name) == stem.as_ref()),
        );
    }
    if cases.is_empty() && paths.iter().any(|p| !p.is_dir()) {
        eprintln!("myriad-fuzz replay: no such case");
        return ExitCode::FAILURE;
    }
    let campaign = match Campaign::new(&work, Settings::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("myriad-fuzz replay: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let artifacts = work.join("artifacts");
    let mut failed = 0;
    for case in &cases {
        match regressions::replay(case, campaign.runner(), &artifacts) {
            Replay::Passes(why) => println!("{}: passes ({why})", case.name),
            Replay::Fails(why) => {
                failed += 1;
                println!("{}: FAILS\n{why}", case.name);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn run_file(file: &Path, seed: u64) -> ExitCode {
    let wasm = match std::fs::read(file)
        .map_err(|e| e.to_string())
        .and_then(|b| {
            wat::parse_bytes(&b)
                .map(|w| w.into_owned())
                .map_err(|e| e.to_string())
        }) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("myriad-fuzz run: {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let work = work_dir("run");
    let c = match Campaign::new(&work, Settings::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("myriad-fuzz run: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let verdict = c.runner().run(&wasm, &RunParams::from_seed(seed));
    let _ = std::fs::remove_dir_all(&work);
    match verdict {
        Verdict::Agreed(s) => {
            println!("agreed: {s:?}");
            ExitCode::SUCCESS
        }
        Verdict::Skipped(why) => {
            println!("skipped: {why}");
            ExitCode::SUCCESS
        }
        Verdict::Diverged(d) => {
            println!("DIVERGED: {}\n{}", d.signature, d.detail);
            ExitCode::from(1)
        }
    }
}

fn one_seed(seed: u64) -> ExitCode {
    let work = work_dir("seed");
    let mut c = match Campaign::new(&work, Settings::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("myriad-fuzz seed: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let params = RunParams::from_seed(seed);
    println!("seed {seed:#x}: {params:?}");
    match module_for(seed) {
        Some(wasm) => {
            println!("module: {} bytes", wasm.len());
            if std::env::var_os("MYRIAD_FUZZ_PRINT").is_some() {
                println!("{}", wasmprinter::print_bytes(&wasm).unwrap_or_default());
            }
            match c.runner().run(&wasm, &params) {
                Verdict::Agreed(s) => println!("agreed: {s:?}"),
                Verdict::Skipped(why) => println!("skipped: {why}"),
                Verdict::Diverged(d) => println!("DIVERGED: {}\n{}", d.signature, d.detail),
            }
        }
        None => println!("wasm-smith made no module"),
    }
    c.seed(seed);
    println!("{}", c.counters.report());
    let _ = std::fs::remove_dir_all(&work);
    if c.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
