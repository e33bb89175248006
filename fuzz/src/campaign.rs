//! A fuzzing campaign: per seed, a differential run of the seed's module,
//! mutated copies of it through the compiler (and, if both engines accept
//! one, through the differential run too) and, for every
//! [`ARTIFACT_EVERY`]-th seed, mutated copies of its artifact through the
//! loader. Counts everything and records findings.

use crate::diff::{Divergence, Runner, Side, Verdict};
use crate::gen::{module_for, RunParams};
use crate::loaders::{
    compile_checked, error_kind, load_checked, metadata_mutant, mutate_wasm, raw_artifact_mutant,
    LoadVerdict,
};
use crate::regressions::write_case;
use crate::rng::Rng;
use crate::stats::Counters;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Mutated wasm copies per seed.
pub const WASM_MUTANTS: u64 = 2;
/// Artifact mutations are made for one seed in this many.
pub const ARTIFACT_EVERY: u64 = 8;
/// Raw (unrepaired) artifact mutants per artifact seed.
pub const RAW_MUTANTS: u64 = 8;
/// Metadata mutants (checksum and hash repaired) per artifact seed.
pub const METADATA_MUTANTS: u64 = 24;

/// Salt of the mutation random streams.
const MUTATION_SALT: u64 = 0x6d75_7461;

/// Something worth a regression file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Stem of the regression files (or a description if none were
    /// written).
    pub name: String,
    /// What happened.
    pub summary: String,
}

/// Campaign settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where regression files go (`None`: nowhere, findings are only
    /// returned).
    pub out: Option<PathBuf>,
    /// Minimise diverging modules before writing them.
    pub shrink: bool,
    /// Time the minimiser may take per divergence.
    pub shrink_budget: Duration,
    /// Before each input that could crash the process, its kind and seed go
    /// to `<inflight>` and its bytes to `<inflight>.bin`.
    pub inflight: Option<PathBuf>,
    /// Run the loader mutations too.
    pub loaders: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            out: None,
            shrink: false,
            shrink_budget: Duration::from_secs(60),
            inflight: None,
            loaders: true,
        }
    }
}

/// A campaign in progress.
pub struct Campaign {
    runner: Runner,
    work: PathBuf,
    /// The module run last and its parameters.
    prev: Option<(Vec<u8>, RunParams)>,
    artifact_cache: PathBuf,
    settings: Settings,
    /// What happened so far.
    pub counters: Counters,
    /// What was found so far.
    pub findings: Vec<Finding>,
}

impl Campaign {
    /// A campaign using `work` (created 0700) for its cache directories.
    pub fn new(work: &Path, settings: Settings) -> anyhow::Result<Campaign> {
        crate::myriad::private_dir(work)?;
        let artifact_cache = work.join("artifacts");
        crate::myriad::private_dir(&artifact_cache)?;
        Ok(Campaign {
            runner: Runner::new(&work.join("modules"))?,
            work: work.to_owned(),
            prev: None,
            artifact_cache,
            settings,
            counters: Counters::default(),
            findings: Vec::new(),
        })
    }

    /// The differential runner.
    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    fn inflight(&self, what: &str, seed: u64, bytes: &[u8]) {
        if let Some(p) = &self.settings.inflight {
            write_inflight(p, what, seed, bytes);
        }
    }

    /// Change the time the minimiser may take per divergence.
    pub fn set_shrink_budget(&mut self, budget: Duration) {
        self.settings.shrink_budget = budget;
    }

    /// Everything for one seed.
    pub fn seed(&mut self, seed: u64) {
        let Some(wasm) = module_for(seed) else {
            self.counters.bump("seeds without a module");
            return;
        };
        self.differential(seed, &wasm, "");
        if self.settings.loaders {
            self.wasm_mutants(seed, &wasm);
            if seed.is_multiple_of(ARTIFACT_EVERY) {
                self.artifact_mutants(seed, &wasm);
            }
        }
    }

    /// Run `wasm` on both sides; `tag` is "" for generated modules and
    /// "mutant " for mutated ones (counted apart).
    pub fn differential(&mut self, seed: u64, wasm: &[u8], tag: &str) -> Verdict {
        let params = RunParams::from_seed(seed);
        self.inflight(&format!("{tag}module"), seed, wasm);
        let verdict = self.runner.run(wasm, &params);
        let group = if tag.is_empty() { "" } else { "mutant " };
        self.counters.bump(format!("{group}modules run"));
        match &verdict {
            Verdict::Agreed(s) => {
                self.counters.bump(format!("{group}modules compared"));
                self.counters
                    .bump(format!("{group}modules compared ({})", s.bounds.name()));
                self.counters.add(format!("{group}calls compared"), s.calls);
                self.counters.add("myriad slices", s.slices);
                for (t, n) in &s.traps {
                    self.counters.add(format!("{group}trapped calls/{t}"), *n);
                }
                if let Some(f) = &s.instantiation_failed {
                    self.counters
                        .bump(format!("{group}instantiation failed alike/{f}"));
                }
                self.counters
                    .add(format!("{group}instance pairs"), s.instances);
                for (side, r) in &s.stopped {
                    let side = match side {
                        Side::Myriad => "Myriad",
                        Side::Oracle => "oracle",
                    };
                    self.counters
                        .bump(format!("{group}stopped at a resource limit/{side} {r:?}"));
                }
            }
            Verdict::Skipped(why) => self.counters.bump(format!("{group}skipped/{why}")),
            Verdict::Diverged(d) => {
                self.counters
                    .bump(format!("{group}DIVERGED/{}", d.signature));
                self.divergence(seed, wasm, &params, d, tag);
            }
        }
        verdict
    }

    /// Does `wasm` diverge with `signature` on a fresh runner (fresh slots,
    /// nothing left by earlier modules), optionally right after `before`?
    fn reproduces(
        &self,
        before: Option<&(Vec<u8>, RunParams)>,
        wasm: &[u8],
        params: &RunParams,
        signature: &str,
    ) -> bool {
        let Ok(fresh) = Runner::new(&self.work.join("fresh")) else {
            return false;
        };
        if let Some((b, bp)) = before {
            fresh.run(b, bp);
        }
        matches!(fresh.run(wasm, params), Verdict::Diverged(d) if d.signature == signature)
    }

    fn divergence(
        &mut self,
        seed: u64,
        wasm: &[u8],
        params: &RunParams,
        d: &Divergence,
        tag: &str,
    ) {
        let mut module = wasm.to_vec();
        let mut detail = d.detail.clone();
        // A divergence may depend on what an earlier module left in the
        // slot: check whether it shows alone, or right after the previous
        // module, on fresh slots.
        self.inflight("reproducing", seed, wasm);
        let prev = self.prev.clone();
        let before = if self.reproduces(None, wasm, params, &d.signature) {
            None
        } else if prev.is_some() && self.reproduces(prev.as_ref(), wasm, params, &d.signature) {
            detail.push_str(&format!(
                "\n\nIt shows only right after the module of seed {:#x} ran in the same \
                 slot (the case's .before.wasm); replay runs that one first.",
                prev.as_ref().map_or(0, |p| p.1.seed)
            ));
            prev.clone()
        } else {
            detail.push_str(
                "\n\nIt did not show again on fresh slots, alone or after the previous \
                 module: it depends on more of the run's history.",
            );
            None
        };
        if self.settings.shrink && d.signature != "panic" {
            let inflight = self.settings.inflight.clone();
            let before_ref = before.as_ref();
            let mut interesting = |candidate: &[u8]| {
                if let Some(p) = &inflight {
                    write_inflight(p, "shrink-candidate", seed, candidate);
                }
                self.reproduces(before_ref, candidate, params, &d.signature)
            };
            let (small, runs) = crate::shrink::shrink(
                wasm,
                seed,
                self.settings.shrink_budget,
                300,
                &mut interesting,
            );
            if small.len() < wasm.len() {
                let fresh = Runner::new(&self.work.join("fresh"));
                if let Ok(fresh) = fresh {
                    if let Some((b, bp)) = &before {
                        fresh.run(b, bp);
                    }
                    if let Verdict::Diverged(d2) = fresh.run(&small, params) {
                        detail = format!(
                            "{}\n\nMinimised from {} to {} bytes in {runs} runs; the original said:\n{}",
                            d2.detail,
                            wasm.len(),
                            small.len(),
                            detail
                        );
                        module = small;
                    }
                }
            }
        }
        let name = format!(
            "{}div-{seed:016x}-{}",
            if tag.is_empty() { "" } else { "mutant-" },
            slug(&d.signature)
        );
        let mut extra = Vec::new();
        if let Some((b, bp)) = &before {
            if let Some(out) = &self.settings.out {
                let _ = std::fs::create_dir_all(out);
                let _ = std::fs::write(out.join(format!("{name}.before.wasm")), b);
            }
            extra.push(("before", format!("{name}.before.wasm")));
            extra.push(("before_seed", format!("{:#x}", bp.seed)));
        }
        self.record(
            &name,
            "wasm",
            &module,
            seed,
            ("divergence", &d.signature),
            &detail,
            &extra,
        );
    }

    /// Record a finding (`what` is its kind and signature) and write its
    /// case, with `extra` header lines.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        name: &str,
        ext: &str,
        input: &[u8],
        seed: u64,
        (kind, signature): (&str, &str),
        detail: &str,
        extra: &[(&str, String)],
    ) {
        let params = RunParams::from_seed(seed);
        let mut header = vec![
            ("seed", format!("{seed:#x}")),
            ("kind", kind.to_string()),
            ("signature", signature.to_string()),
            ("bounds", params.bounds.name().to_string()),
            ("slice_units", params.slice_units.to_string()),
        ];
        header.extend(extra.iter().cloned());
        if let Some(out) = &self.settings.out {
            if let Err(e) = write_case(out, name, ext, input, &header, detail) {
                eprintln!("cannot write regression {name}: {e}");
            }
        }
        self.findings.push(Finding {
            name: name.to_string(),
            summary: format!(
                "{kind}: {signature}: {}",
                detail.lines().next().unwrap_or("")
            ),
        });
    }

    /// Mutated copies of `wasm` through the compiler (a panic is a
    /// finding) and, when both engines accept one, the differential run.
    pub fn wasm_mutants(&mut self, seed: u64, wasm: &[u8]) {
        let mut r = Rng::derive(seed, MUTATION_SALT);
        for i in 0..WASM_MUTANTS {
            let mutant = mutate_wasm(wasm, &mut r);
            self.counters.bump("wasm mutants");
            self.inflight(&format!("wasm-mutant {i}"), seed, &mutant);
            let params = RunParams::from_seed(seed);
            match compile_checked(&mutant, params.bounds) {
                (LoadVerdict::Panic(p), _) => {
                    self.counters.bump("wasm mutant compiles/PANIC");
                    let name = format!("wasm-panic-{seed:016x}-{i}");
                    self.record(
                        &name,
                        "wasm",
                        &mutant,
                        seed,
                        ("compiler panic", "panic"),
                        &p,
                        &[],
                    );
                }
                (LoadVerdict::Err(e), _) => {
                    self.counters.bump(format!(
                        "wasm mutant compiles/refused: {}",
                        compile_error_kind(&e)
                    ));
                }
                (LoadVerdict::Ok, _) => {
                    self.counters.bump("wasm mutant compiles/compiled");
                    self.differential(seed, &mutant, "mutant ");
                }
            }
        }
    }

    /// Mutated copies of `wasm`'s artifact through the loader: raw ones
    /// must be refused, metadata ones must not panic.
    pub fn artifact_mutants(&mut self, seed: u64, wasm: &[u8]) {
        let params = RunParams::from_seed(seed);
        let (LoadVerdict::Ok, Some(art)) = compile_checked(wasm, params.bounds) else {
            return;
        };
        self.counters.bump("artifacts mutated");
        let mut r = Rng::derive(seed, MUTATION_SALT + 1);
        for i in 0..RAW_MUTANTS {
            let Some(m) = raw_artifact_mutant(&art, &mut r) else {
                continue;
            };
            self.inflight(&format!("artifact-raw {i}"), seed, &m);
            match load_checked(&m, &self.artifact_cache) {
                LoadVerdict::Err(e) => self
                    .counters
                    .bump(format!("raw artifact mutants refused/{}", error_kind(&e))),
                v => {
                    self.counters
                        .bump("raw artifact mutants refused/NOT REFUSED");
                    let name = format!("artifact-raw-{seed:016x}-{i}");
                    self.record(
                        &name,
                        "so",
                        &m,
                        seed,
                        ("raw artifact mutant not refused", "artifact"),
                        &format!("{v:?}"),
                        &[],
                    );
                }
            }
        }
        for i in 0..METADATA_MUTANTS {
            let Some((m, what)) = metadata_mutant(&art, &mut r) else {
                continue;
            };
            self.inflight(&format!("artifact-metadata {i}"), seed, &m);
            match load_checked(&m, &self.artifact_cache) {
                LoadVerdict::Ok => self.counters.bump("metadata mutants/loaded"),
                LoadVerdict::Err(e) => self
                    .counters
                    .bump(format!("metadata mutants/refused: {}", error_kind(&e))),
                LoadVerdict::Panic(p) => {
                    self.counters.bump("metadata mutants/PANIC");
                    let name = format!("artifact-panic-{seed:016x}-{i}");
                    self.record(
                        &name,
                        "so",
                        &m,
                        seed,
                        ("loader panic", "panic"),
                        &format!("{what}: {p}"),
                        &[],
                    );
                }
            }
        }
    }
}

/// Note the input about to run: `<path>` gets `<what> <seed>`, and
/// `<path>.bin` the bytes.
pub fn write_inflight(path: &Path, what: &str, seed: u64, bytes: &[u8]) {
    let _ = std::fs::write(inflight_bin(path), bytes);
    let _ = std::fs::write(path, format!("{what} {seed:#x}\n"));
}

/// The bytes file beside an in-flight note.
pub fn inflight_bin(path: &Path) -> PathBuf {
    let mut bin = path.to_path_buf().into_os_string();
    bin.push(".bin");
    PathBuf::from(bin)
}

/// A compile error's kind: "invalid module" (whatever the reason), or
/// the kind of any other error.
fn compile_error_kind(msg: &str) -> String {
    if msg.starts_with("invalid module") {
        "invalid module".into()
    } else {
        error_kind(msg)
    }
}

/// A file-name-friendly form of a signature.
pub fn slug(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    out.trim_matches('-').chars().take(60).collect()
}
