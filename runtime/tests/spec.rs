//! The WebAssembly spec testsuite runner (issue #3).
//!
//! Runs the `.wast` scripts of the checked-in testsuite,
//! `tests/spec-testsuite/` at the workspace root (root files plus
//! `proposals/custom-page-sizes/`; see its `UPSTREAM.md`), through Myriad's
//! real path:
//! `myriad_codegen::compile` → `Module::from_artifact_bytes` →
//! `Linker::resolve` + `Instance::instantiate_with` → `Instance::call` +
//! `resume`. Every script starts with a `spectest` instance (compiled from
//! WAT here) registered in its linker; `register` adds an instance's
//! exports under a name.
//!
//! Scope: files listed in `tests/spec/skip.txt` are out of scope; their
//! directives count as skipped. Single modules of in-scope files that need
//! an out-of-scope feature are listed by line in
//! `tests/spec/skip-modules.txt`: such a module must be refused by the
//! compiler as `unsupported: …` (else the directive fails), and it, the
//! directives that use it and modules importing from a name it was
//! registered under count as skipped. Every other directive counts as
//! passed or failed. `tests/spec/expected-failures.txt` is a ratchet: the
//! test fails if a file has more failures than listed there.
//!
//! Environment: `MYRIAD_SPEC_FILE=i32.wast` runs only matching files
//! (comma-separated, matched against the path relative to the testsuite);
//! `MYRIAD_SPEC_VERBOSE=1` prints every failure and skip with its line;
//! `MYRIAD_SPEC_TRACE=1` prints each directive's line to stderr before
//! running it (to find a crash);
//! `MYRIAD_SPEC_BLESS=1` prints the lines of a new skip-modules list and a
//! new expected-failures list.
//! See docs/CONFORMANCE.md.

use myriad_codegen::{CompileConfig, CompileError};
use myriad_runtime::fuel::{ns_to_tsc, rdtsc};
use myriad_runtime::{
    Extern, Instance, InstantiateError, LinkError, Linker, Module, Outcome, Region, RegionConfig,
    Val, ValType,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wast::core::{NanPattern, WastArgCore, WastRetCore};
use wast::parser::{self, ParseBuffer};
use wast::{QuoteWat, Wast, WastArg, WastDirective, WastExecute, WastInvoke, WastRet, Wat};

/// Most linear memory a spec module's slot gets (its declared maximum, or
/// this if it has none or a larger one).
const HEAP_CAP: u64 = 64 << 20;
/// Instance stack per module (wasm frames only; `assert_exhaustion` needs
/// recursion to hit the limit, other tests need a few hundred frames).
const STACK_SIZE: usize = 512 << 10;
/// Wall-clock budget per file (override: `MYRIAD_SPEC_FILE_TIMEOUT` secs):
/// a hang guard only. The slowest file takes a few seconds; a loaded CI
/// machine must not turn slowness into counted failures.
const FILE_TIMEOUT: Duration = Duration::from_secs(600);

/// The failure of a listed module that the compiler accepts.
const LISTED_BUT_COMPILES: &str =
    "skip-modules.txt lists this module as out of scope but it compiles; remove the line";

/// The `spectest` module every script may import from (what the reference
/// interpreter provides; the `print*` functions do nothing here).
const SPECTEST_WAT: &str = r#"(module
  (global (export "global_i32") i32 (i32.const 666))
  (global (export "global_i64") i64 (i64.const 666))
  (global (export "global_f32") f32 (f32.const 666.6))
  (global (export "global_f64") f64 (f64.const 666.6))
  (table (export "table") 10 20 funcref)
  (memory (export "memory") 1 2)
  (func (export "print"))
  (func (export "print_i32") (param i32))
  (func (export "print_i64") (param i64))
  (func (export "print_f32") (param f32))
  (func (export "print_f64") (param f64))
  (func (export "print_i32_f32") (param i32 f32))
  (func (export "print_f64_f64") (param f64 f64))
)"#;

/// The checked-in spec testsuite: `tests/spec-testsuite/` at the
/// workspace root.
fn testsuite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/spec-testsuite")
}

fn spec_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/spec")
}

/// The non-empty, non-comment lines of a list in `tests/spec`.
fn list_lines(name: &str) -> Vec<String> {
    let path = spec_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// `skip.txt`: `<file> <reason>` lines.
fn read_skip_list() -> BTreeMap<String, String> {
    list_lines("skip.txt")
        .iter()
        .map(|l| {
            let (f, r) = l.split_once(' ').unwrap_or((l, ""));
            (f.to_owned(), r.trim().to_owned())
        })
        .collect()
}

/// `skip-modules.txt`: `<file>:<line> <reason>` lines, as file → line →
/// reason. Panics on a malformed or duplicate line or an empty reason.
fn read_module_skips() -> BTreeMap<String, BTreeMap<usize, String>> {
    let mut out: BTreeMap<String, BTreeMap<usize, String>> = BTreeMap::new();
    for l in list_lines("skip-modules.txt") {
        let (loc, reason) = l.split_once(char::is_whitespace).unwrap_or((&l, ""));
        let reason = reason.trim();
        if reason.is_empty() {
            bad_skip_line(&l, "no reason given");
        }
        let Some((file, line)) = loc.rsplit_once(':') else {
            bad_skip_line(&l, "expected <file>:<line> <reason>")
        };
        let Ok(line) = line.parse::<usize>() else {
            bad_skip_line(&l, "the line number is not a number")
        };
        if out
            .entry(file.to_owned())
            .or_default()
            .insert(line, reason.to_owned())
            .is_some()
        {
            bad_skip_line(&l, "listed twice");
        }
    }
    out
}

/// Reject a malformed line of skip-modules.txt.
fn bad_skip_line(line: &str, why: &str) -> ! {
    panic!("skip-modules.txt: {why}: {line:?}")
}

/// `expected-failures.txt`: `<file> <count> <reason>` lines.
fn read_expected() -> BTreeMap<String, usize> {
    list_lines("expected-failures.txt")
        .iter()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let f = it.next()?;
            let n = it.next()?.parse().ok()?;
            Some((f.to_owned(), n))
        })
        .collect()
}

/// Files to consider, relative to the testsuite root, sorted.
fn list_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (dir, prefix) in [
        (root.to_path_buf(), ""),
        (
            root.join("proposals/custom-page-sizes"),
            "proposals/custom-page-sizes/",
        ),
    ] {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".wast"))
            .map(|n| format!("{prefix}{n}"))
            .collect();
        names.sort();
        out.extend(names);
    }
    out
}

#[derive(Default, Debug)]
struct FileResult {
    passed: usize,
    failed: usize,
    skipped: usize,
    /// (line, reason) of each failure.
    failures: Vec<(usize, String)>,
    /// (line, reason) of each skipped directive (in-scope files only).
    skips: Vec<(usize, String)>,
    /// Lines of skip-modules.txt for this file that are not a directive's.
    stale: Vec<usize>,
    /// Candidate skip-modules.txt lines: listed lines still refused as
    /// unsupported (with their reason), and unlisted directives whose
    /// module the compiler refused as unsupported (with its message).
    unsupported: BTreeMap<usize, String>,
    note: Option<String>,
}

/// Rough directive count of a script wast cannot parse (or that is skipped
/// and need not be parsed): top-level forms.
fn count_forms(text: &str) -> usize {
    match ParseBuffer::new(text).and_then(|b| parser::parse::<Wast>(&b).map(|w| w.directives.len()))
    {
        Ok(n) => n,
        Err(_) => text
            .lines()
            .filter(|l| {
                let l = l.trim_start();
                ["(module", "(assert_", "(invoke", "(register"]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .count(),
    }
}

/// Why a directive did not pass.
#[derive(Debug)]
enum Miss {
    /// It failed, for this reason.
    Failed(String),
    /// It is out of scope (skip-modules.txt), for this reason.
    Skipped(String),
}

impl From<String> for Miss {
    fn from(reason: String) -> Self {
        Miss::Failed(reason)
    }
}

impl From<&str> for Miss {
    fn from(reason: &str) -> Self {
        Miss::Failed(reason.to_owned())
    }
}

/// A directive's result: `Ok` passed.
type Step<T = ()> = Result<T, Miss>;

/// What a module directive left for the directives that use it: an
/// instance handle, a module definition.
#[derive(Clone)]
enum Slot<T> {
    Ready(T),
    /// It failed (compile, link, instantiation): its users fail.
    Failed(String),
    /// It is out of scope: its users count as skipped.
    Skipped(String),
}

impl<T: Clone> Slot<T> {
    /// The defining directive's own result.
    fn outcome(&self) -> Step {
        match self {
            Slot::Ready(_) => Ok(()),
            Slot::Failed(e) => Err(Miss::Failed(e.clone())),
            Slot::Skipped(r) => Err(Miss::Skipped(r.clone())),
        }
    }

    /// The value, for a directive that uses it.
    fn get(&self) -> Step<T> {
        match self {
            Slot::Ready(t) => Ok(t.clone()),
            Slot::Failed(e) => Err(Miss::Failed(format!("module unavailable ({e})"))),
            Slot::Skipped(r) => Err(Miss::Skipped(r.clone())),
        }
    }
}

impl Slot<usize> {
    /// The slot an instantiation attempt leaves.
    fn from_inst(r: Result<usize, InstErr>) -> Self {
        match r {
            Ok(h) => Slot::Ready(h),
            Err(InstErr::Skipped(r)) => Slot::Skipped(r),
            Err(e) => Slot::Failed(e.describe()),
        }
    }
}

struct Runner {
    cache: PathBuf,
    /// How modules are compiled (dense or sparse bounds checks).
    config: CompileConfig,
    deadline: Instant,
    deadline_tsc: u64,
    timed_out: bool,
    /// Every instance created (index = handle).
    instances: Vec<Instance>,
    /// The most recent module instance.
    current: Slot<usize>,
    named: HashMap<String, Slot<usize>>,
    definitions: HashMap<String, Slot<Arc<Module>>>,
    /// `spectest` plus every `register`ed instance.
    linker: Linker,
    /// Names a skipped module was `register`ed under, with the reason.
    skipped_names: HashMap<String, String>,
    /// Line of the directive being run.
    line: usize,
    /// Lines whose module the compiler refused as unsupported, with the
    /// message.
    unsupported: BTreeMap<usize, String>,
}

/// Why a module could not be instantiated.
enum InstErr {
    /// The spec's instantiation trap (start function, segment out of
    /// bounds): `assert_trap (module ...)`.
    Trap(String),
    /// The spec's link error: `assert_unlinkable`.
    Unlinkable(String),
    /// It imports from a name a skipped module was registered under.
    Skipped(String),
    /// The runner or runtime could not try (resource limits, time, bugs).
    Other(String),
}

impl InstErr {
    /// As the reason of a failed module definition.
    fn describe(self) -> String {
        match self {
            InstErr::Trap(t) => format!("instantiation trapped: {t}"),
            InstErr::Unlinkable(e) => format!("unlinkable: {e}"),
            InstErr::Skipped(r) => format!("skipped: {r}"),
            InstErr::Other(e) => e,
        }
    }
}

enum Compiled {
    Ok(Arc<Module>),
    /// wast could not encode the text (malformed text format).
    Text(String),
    /// The compiler refused it as invalid/malformed.
    Invalid(String),
    /// The compiler refused it as using an unsupported feature
    /// (`CompileError::Unsupported`, "unsupported: …").
    Unsupported(String),
    /// Anything else: codegen bug, link error, load error.
    Other(String),
}

impl Compiled {
    /// The module, or why there is none (as a failure reason).
    fn module(self) -> Result<Arc<Module>, String> {
        match self {
            Compiled::Ok(m) => Ok(m),
            Compiled::Text(e) => Err(format!("text format: {e}")),
            Compiled::Invalid(e) | Compiled::Unsupported(e) | Compiled::Other(e) => {
                Err(normalize(&e))
            }
        }
    }

    /// For a module listed in skip-modules.txt: `None` if the compiler
    /// refused it as unsupported (it is out of scope, as listed), else the
    /// failure to report.
    fn listed_mismatch(&self) -> Option<String> {
        match self {
            Compiled::Unsupported(_) => None,
            Compiled::Ok(_) => Some(LISTED_BUT_COMPILES.into()),
            Compiled::Text(e) | Compiled::Invalid(e) | Compiled::Other(e) => Some(format!(
                "skip-modules.txt lists this module as out of scope but it is refused for \
                 another reason ({}); fix the line",
                normalize(e)
            )),
        }
    }
}

fn normalize(msg: &str) -> String {
    let msg = msg.split(" at offset").next().unwrap_or(msg);
    msg.chars().take(120).collect()
}

impl Runner {
    fn compile_bytes(&mut self, wasm: &[u8]) -> Compiled {
        match myriad_codegen::compile(wasm, &self.config) {
            Ok(bytes) => match Module::from_artifact_bytes(&bytes, &self.cache) {
                Ok(m) => Compiled::Ok(Arc::new(m)),
                Err(e) => Compiled::Other(format!("load: {e}")),
            },
            Err(CompileError::Invalid(m)) => Compiled::Invalid(m),
            Err(CompileError::Unsupported(m)) => {
                self.unsupported
                    .entry(self.line)
                    .or_insert_with(|| normalize(&m));
                Compiled::Unsupported(m)
            }
            Err(e) => Compiled::Other(e.to_string()),
        }
    }

    fn compile_quote(&mut self, module: &mut QuoteWat) -> Compiled {
        match module.encode() {
            Ok(wasm) => self.compile_bytes(&wasm),
            Err(e) => Compiled::Text(e.message()),
        }
    }

    fn compile_wat(&mut self, module: &mut Wat) -> Compiled {
        match module.encode() {
            Ok(wasm) => self.compile_bytes(&wasm),
            Err(e) => Compiled::Text(e.message()),
        }
    }

    /// Resolve a module's imports through the linker. An unknown import
    /// from a name a skipped module was registered under makes the module
    /// skipped too.
    fn resolve(&self, module: &Arc<Module>) -> Result<Vec<Extern>, InstErr> {
        match self.linker.resolve(module) {
            Ok(i) => Ok(i),
            Err(LinkError::UnknownImport { module: from, .. })
                if self.skipped_names.contains_key(&from) =>
            {
                Err(InstErr::Skipped(format!(
                    "imports from {from:?}, registered by a skipped module: {}",
                    self.skipped_names[&from]
                )))
            }
            Err(e @ LinkError::UnknownImport { .. }) => {
                Err(InstErr::Unlinkable(format!("unknown import ({e})")))
            }
            Err(e) => Err(InstErr::Other(format!("link: {e}"))),
        }
    }

    /// Fresh region sized for the module, imports resolved through the
    /// linker, instance, start function run.
    fn instantiate(&mut self, module: &Arc<Module>) -> Result<usize, InstErr> {
        let imports = self.resolve(module)?;
        let md = module.metadata();
        let (needed, cap) = match &md.memory {
            None => (0, 64 << 10),
            Some(m) => {
                let ps = m.page_size_log2 as u32;
                let bytes = |p: u64| {
                    p.checked_shl(ps)
                        .filter(|b| b >> ps == p)
                        .unwrap_or(u64::MAX)
                };
                let needed = bytes(m.min_pages);
                let max = m.max_pages.map_or(HEAP_CAP, bytes).min(HEAP_CAP);
                (needed, max.max(needed).max(64 << 10))
            }
        };
        if needed > HEAP_CAP {
            return Err(InstErr::Other(format!(
                "module needs {needed} bytes of initial memory; the runner caps slots at {HEAP_CAP}"
            )));
        }
        // Sparse code gets the reservation and guard it relies on; the
        // growth limit (`cap`) is the same in both modes.
        let md_bounds = (md.guard_bytes, md.heap_reservation);
        let region = Region::new(RegionConfig {
            slots: 1,
            stack_size: STACK_SIZE,
            heap_capacity: cap as usize,
            heap_reservation: md_bounds.1 as usize,
            guard_size: md_bounds.0 as usize,
            guard_mode: md_bounds.0 > 0,
        })
        .map_err(|e| InstErr::Other(format!("region: {e}")))?;
        let mut inst = match Instance::instantiate_with(&Arc::new(region), module, &imports, None) {
            Ok(i) => i,
            Err(e @ InstantiateError::DataSegmentOutOfBounds { .. }) => {
                return Err(InstErr::Trap(format!("out of bounds memory access ({e})")))
            }
            Err(e @ InstantiateError::ElemSegmentOutOfBounds { .. }) => {
                return Err(InstErr::Trap(format!("out of bounds table access ({e})")))
            }
            Err(e @ InstantiateError::IncompatibleImport { .. }) => {
                return Err(InstErr::Unlinkable(e.to_string()))
            }
            Err(e) => return Err(InstErr::Other(format!("instantiate: {e}"))),
        };
        let started = inst
            .call_start()
            .map_err(|e| InstErr::Other(e.to_string()))?;
        // Keep the instance even if its start function traps: what it
        // wrote to imported tables stays and may refer to its functions.
        self.instances.push(inst);
        let handle = self.instances.len() - 1;
        if started {
            let inst = &mut self.instances[handle];
            match run_inst(inst, self.deadline_tsc, &mut self.timed_out) {
                Ok(Outcome::Finished(_)) => {}
                Ok(Outcome::Trapped(k)) => return Err(InstErr::Trap(k.message().to_owned())),
                Ok(other) => return Err(InstErr::Other(format!("start function: {other:?}"))),
                Err(e) => return Err(InstErr::Other(e)),
            }
        }
        Ok(handle)
    }

    /// Make `slot` the current module instance (and `$name`'s).
    fn bind(&mut self, name: Option<String>, slot: Slot<usize>) -> Step {
        let out = slot.outcome();
        if let Some(n) = name {
            self.named.insert(n, slot.clone());
        }
        self.current = slot;
        out
    }

    /// `(module …)`: compile, instantiate, make it current.
    fn define(&mut self, mut module: QuoteWat) -> Step {
        let name = module.name().map(|id| id.name().to_owned());
        let slot = match self.compile_quote(&mut module).module() {
            Ok(m) => Slot::from_inst(self.instantiate(&m)),
            Err(e) => Slot::Failed(e),
        };
        self.bind(name, slot)
    }

    /// `(module definition …)`: compile and keep it under its name.
    fn define_only(&mut self, mut module: QuoteWat) -> Step {
        let name = module.name().map(|id| id.name().to_owned());
        let slot = match self.compile_quote(&mut module).module() {
            Ok(m) => Slot::Ready(m),
            Err(e) => Slot::Failed(e),
        };
        let out = slot.outcome();
        if let Some(n) = name {
            self.definitions.insert(n, slot);
        }
        out
    }

    /// Instantiate the `spectest` module and register it.
    fn add_spectest(&mut self) -> Result<(), String> {
        let wasm = wat::parse_str(SPECTEST_WAT).map_err(|e| e.to_string())?;
        let m = self.compile_bytes(&wasm).module()?;
        let h = self.instantiate(&m).map_err(InstErr::describe)?;
        self.linker.instance("spectest", &self.instances[h]);
        Ok(())
    }

    fn instance_for(&self, module: Option<wast::token::Id>) -> Step<usize> {
        match module {
            None => self.current.get(),
            Some(id) => self
                .named
                .get(id.name())
                .ok_or_else(|| Miss::Failed(format!("no module named ${}", id.name())))?
                .get(),
        }
    }

    /// `register "name" $M`: add `$M`'s exports to the linker under
    /// `name`. Registering a skipped module records `name` as skipped.
    fn register(&mut self, name: &str, module: Option<wast::token::Id>) -> Step {
        match self.instance_for(module) {
            Ok(handle) => {
                self.linker.instance(name, &self.instances[handle]);
                self.skipped_names.remove(name);
                Ok(())
            }
            Err(Miss::Skipped(reason)) => {
                self.skipped_names.insert(name.to_owned(), reason.clone());
                Err(Miss::Skipped(reason))
            }
            Err(e) => Err(e),
        }
    }

    fn invoke(&mut self, inv: &WastInvoke) -> Step<Outcome> {
        let handle = self.instance_for(inv.module)?;
        let params = self.instances[handle]
            .module()
            .export_type(inv.name)
            .map(|t| t.params.clone())
            .unwrap_or_default();
        let mut args = Vec::new();
        for (i, a) in inv.args.iter().enumerate() {
            args.push(match a {
                // Externref handle N is passed as N + 1 (0 is null).
                WastArg::Core(WastArgCore::RefExtern(n)) => Val::ExternRef(u64::from(*n) + 1),
                WastArg::Core(WastArgCore::RefNull(_)) => match params.get(i) {
                    Some(ValType::FuncRef) => Val::FuncRef(0),
                    _ => Val::ExternRef(0),
                },
                WastArg::Core(WastArgCore::I32(v)) => Val::I32(*v),
                WastArg::Core(WastArgCore::I64(v)) => Val::I64(*v),
                WastArg::Core(WastArgCore::F32(v)) => Val::F32(f32::from_bits(v.bits)),
                WastArg::Core(WastArgCore::F64(v)) => Val::F64(f64::from_bits(v.bits)),
                WastArg::Core(WastArgCore::V128(_)) => {
                    return Err("v128 argument unsupported".into())
                }
                WastArg::Core(_) => return Err("reference-typed argument unsupported".into()),
                _ => return Err("component argument unsupported".into()),
            });
        }
        // The call runs on this instance's stack (its green thread); calls
        // into instances it imports from run there too, with its fuel and
        // stack limit. The runner resumes one instance at a time, which is
        // what linked instances require.
        let inst = &mut self.instances[handle];
        inst.call(inv.name, &args)
            .map_err(|e| format!("call: {e}"))?;
        Ok(run_inst(inst, self.deadline_tsc, &mut self.timed_out)?)
    }

    fn execute(&mut self, exec: WastExecute) -> Step<Outcome> {
        match exec {
            WastExecute::Invoke(inv) => self.invoke(&inv),
            WastExecute::Get { module, global, .. } => {
                let handle = self.instance_for(module)?;
                match self.instances[handle].export(global) {
                    Some(Extern::Global(g)) => Ok(Outcome::Finished(vec![g.get()])),
                    Some(other) => {
                        Err(format!("get {global:?}: export is a {}", other.kind_name()).into())
                    }
                    None => Err(format!("get {global:?}: no such export").into()),
                }
            }
            WastExecute::Wat(mut w) => {
                let m = self.compile_wat(&mut w).module()?;
                match self.instantiate(&m) {
                    Ok(_) => Ok(Outcome::Finished(vec![])),
                    Err(InstErr::Trap(trap)) => Err(format!("TRAP:{trap}").into()),
                    Err(InstErr::Skipped(r)) => Err(Miss::Skipped(r)),
                    Err(e) => Err(e.describe().into()),
                }
            }
        }
    }

    /// Run a directive listed in skip-modules.txt: it counts as skipped.
    /// A module it defines must be refused as unsupported (else it fails
    /// and the module is used as usual); a skipped `module` leaves a
    /// skipped current instance, a skipped `module definition` a skipped
    /// definition. Inline modules of `assert_invalid`/`assert_malformed`
    /// are not checked (a refusal is what they test).
    fn skip_listed(&mut self, d: WastDirective, reason: &str) -> Step {
        let skipped = || -> Step { Err(Miss::Skipped(reason.to_owned())) };
        match d {
            WastDirective::Module(mut m) => {
                let name = m.name().map(|id| id.name().to_owned());
                let compiled = self.compile_quote(&mut m);
                let Some(mismatch) = compiled.listed_mismatch() else {
                    return self.bind(name, Slot::Skipped(reason.to_owned()));
                };
                let slot = match compiled.module() {
                    Ok(m) => Slot::from_inst(self.instantiate(&m)),
                    Err(e) => Slot::Failed(e),
                };
                let _ = self.bind(name, slot);
                Err(mismatch.into())
            }
            WastDirective::ModuleDefinition(mut m) => {
                let name = m.name().map(|id| id.name().to_owned());
                let compiled = self.compile_quote(&mut m);
                let mismatch = compiled.listed_mismatch();
                let slot = match (&mismatch, compiled.module()) {
                    (None, _) => Slot::Skipped(reason.to_owned()),
                    (Some(_), Ok(m)) => Slot::Ready(m),
                    (Some(_), Err(e)) => Slot::Failed(e),
                };
                if let Some(n) = name {
                    self.definitions.insert(n, slot);
                }
                mismatch.map_or_else(skipped, |e| Err(e.into()))
            }
            WastDirective::AssertTrap {
                exec: WastExecute::Wat(mut m),
                ..
            }
            | WastDirective::AssertUnlinkable { module: mut m, .. } => {
                match self.compile_wat(&mut m).listed_mismatch() {
                    None => skipped(),
                    Some(e) => Err(e.into()),
                }
            }
            WastDirective::AssertInvalid { .. } | WastDirective::AssertMalformed { .. } => {
                skipped()
            }
            _ => Err(
                "skip-modules.txt lists a directive that defines no module; list the \
                      module it uses instead"
                    .into(),
            ),
        }
    }

    /// Run one directive: Ok(()) passed.
    fn directive(&mut self, d: WastDirective) -> Step {
        match d {
            WastDirective::Module(m) => self.define(m),
            WastDirective::ModuleDefinition(m) => self.define_only(m),
            WastDirective::ModuleInstance {
                instance, module, ..
            } => {
                let def = module
                    .and_then(|id| self.definitions.get(id.name()).cloned())
                    .unwrap_or_else(|| Slot::Failed("unknown module definition".into()));
                let slot = match def {
                    Slot::Ready(m) => Slot::from_inst(self.instantiate(&m)),
                    Slot::Failed(e) => Slot::Failed(e),
                    Slot::Skipped(r) => Slot::Skipped(r),
                };
                self.bind(instance.map(|id| id.name().to_owned()), slot)
            }
            WastDirective::Register { name, module, .. } => self.register(name, module),
            WastDirective::Invoke(inv) => match self.invoke(&inv)? {
                Outcome::Finished(_) => Ok(()),
                o => Err(format!("invoke {:?}: {o:?}", inv.name).into()),
            },
            WastDirective::AssertReturn { exec, results, .. } => {
                let got = match self.execute(exec)? {
                    Outcome::Finished(v) => v,
                    o => return Err(format!("expected results, got {o:?}").into()),
                };
                if got.len() != results.len() {
                    return Err(format!("expected {} results, got {got:?}", results.len()).into());
                }
                for (g, e) in got.iter().zip(&results) {
                    match e {
                        WastRet::Core(c) => match_ret(g, c)?,
                        _ => return Err("component result unsupported".into()),
                    }
                }
                Ok(())
            }
            WastDirective::AssertTrap { exec, message, .. } => {
                let is_module = matches!(exec, WastExecute::Wat(_));
                match self.execute(exec) {
                    Ok(Outcome::Trapped(k)) => Ok(msg_match(k.message(), message)?),
                    Ok(o) => Err(format!("expected trap {message:?}, got {o:?}").into()),
                    Err(Miss::Failed(e)) if is_module && e.starts_with("TRAP:") => {
                        Ok(msg_match(&e[5..], message)?)
                    }
                    Err(e) => Err(e),
                }
            }
            WastDirective::AssertExhaustion { call, message, .. } => match self.invoke(&call)? {
                Outcome::Trapped(k) => Ok(msg_match(k.message(), message)?),
                o => Err(format!("expected exhaustion, got {o:?}").into()),
            },
            WastDirective::AssertMalformed { mut module, .. }
            | WastDirective::AssertInvalid { mut module, .. } => {
                match self.compile_quote(&mut module) {
                    Compiled::Text(_) | Compiled::Invalid(_) => Ok(()),
                    Compiled::Ok(_) => Err("module accepted, expected it to be refused".into()),
                    Compiled::Unsupported(e) | Compiled::Other(e) => {
                        Err(format!("refused for another reason: {}", normalize(&e)).into())
                    }
                }
            }
            WastDirective::AssertUnlinkable {
                mut module,
                message,
                ..
            } => {
                let m = self.compile_wat(&mut module).module()?;
                match self.instantiate(&m) {
                    Ok(_) => Err("module linked, expected unlinkable".into()),
                    Err(InstErr::Unlinkable(e)) => msg_match(&e, message)
                        .map_err(|_| format!("link error {e:?}, expected {message:?}").into()),
                    Err(InstErr::Skipped(r)) => Err(Miss::Skipped(r)),
                    Err(e) => Err(format!("expected unlinkable, got {}", e.describe()).into()),
                }
            }
            other => Err(format!("unsupported directive at {:?}", other.span()).into()),
        }
    }
}

/// Run the armed call to completion or until the file's deadline.
fn run_inst(
    inst: &mut Instance,
    deadline_tsc: u64,
    timed_out: &mut bool,
) -> Result<Outcome, String> {
    if *timed_out {
        return Err("file time limit exceeded".into());
    }
    match inst.resume(deadline_tsc) {
        Outcome::Yielded => {
            *timed_out = true;
            Err("file time limit exceeded (guest still running)".into())
        }
        o => Ok(o),
    }
}

fn msg_match(got: &str, expected: &str) -> Result<(), String> {
    if expected.starts_with(got) || got.starts_with(expected) || expected.contains(got) {
        Ok(())
    } else {
        Err(format!("trap {got:?}, expected {expected:?}"))
    }
}

fn match_ret(got: &Val, exp: &WastRetCore) -> Result<(), String> {
    let ok = match (got, exp) {
        (Val::I32(g), WastRetCore::I32(e)) => g == e,
        (Val::I64(g), WastRetCore::I64(e)) => g == e,
        (Val::F32(g), WastRetCore::F32(p)) => {
            let b = g.to_bits();
            match p {
                NanPattern::CanonicalNan => b & 0x7fff_ffff == 0x7fc0_0000,
                NanPattern::ArithmeticNan => g.is_nan() && b & 0x0040_0000 != 0,
                NanPattern::Value(v) => b == v.bits,
            }
        }
        (Val::F64(g), WastRetCore::F64(p)) => {
            let b = g.to_bits();
            match p {
                NanPattern::CanonicalNan => b & 0x7fff_ffff_ffff_ffff == 0x7ff8_0000_0000_0000,
                NanPattern::ArithmeticNan => g.is_nan() && b & 0x0008_0000_0000_0000 != 0,
                NanPattern::Value(v) => b == v.bits,
            }
        }
        (Val::FuncRef(g) | Val::ExternRef(g), WastRetCore::RefNull(_)) => *g == 0,
        (Val::ExternRef(g), WastRetCore::RefExtern(Some(n))) => *g == u64::from(*n) + 1,
        (Val::ExternRef(g), WastRetCore::RefExtern(None)) => *g != 0,
        (Val::FuncRef(g), WastRetCore::RefFunc(_)) => *g != 0,
        (_, WastRetCore::Either(alts)) => alts.iter().any(|a| match_ret(got, a).is_ok()),
        (_, WastRetCore::V128(_)) => return Err("v128 result unsupported".into()),
        (
            _,
            WastRetCore::I32(_)
            | WastRetCore::I64(_)
            | WastRetCore::F32(_)
            | WastRetCore::F64(_)
            | WastRetCore::RefNull(_)
            | WastRetCore::RefExtern(_)
            | WastRetCore::RefFunc(_),
        ) => false,
        _ => return Err("reference-typed result unsupported".into()),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("got {got:?}, expected {exp:?}"))
    }
}

/// Run one in-scope file. `listed` holds its skip-modules.txt lines.
fn run_file(
    root: &Path,
    rel: &str,
    config: &CompileConfig,
    cache: &Path,
    timeout: Duration,
    listed: &BTreeMap<usize, String>,
) -> FileResult {
    let mut res = FileResult::default();
    let text = match std::fs::read_to_string(root.join(rel)) {
        Ok(t) => t,
        Err(e) => {
            res.failed = 1;
            res.failures.push((0, format!("cannot read: {e}")));
            res.stale = listed.keys().copied().collect();
            return res;
        }
    };
    let mut lexer = wast::lexer::Lexer::new(&text);
    // names.wast deliberately uses bidi control characters in names.
    lexer.allow_confusing_unicode(true);
    let parsed = ParseBuffer::new_with_lexer(lexer)
        .map_err(|e| format!("wast lexer: {}", e.message()))
        .and_then(|buf| run_script(&buf, &text, rel, config, cache, timeout, listed));
    match parsed {
        Ok(r) => r,
        Err(e) => {
            res.failed = count_forms(&text).max(1);
            res.failures.push((0, e));
            res.stale = listed.keys().copied().collect();
            res
        }
    }
}

/// Parse and run a script; `Err` if it does not parse.
fn run_script(
    buf: &ParseBuffer,
    text: &str,
    rel: &str,
    config: &CompileConfig,
    cache: &Path,
    timeout: Duration,
    listed: &BTreeMap<usize, String>,
) -> Result<FileResult, String> {
    let wast = parser::parse::<Wast>(buf).map_err(|e| format!("wast parse: {}", e.message()))?;
    let mut res = FileResult::default();
    let start = Instant::now();
    let mut r = Runner {
        cache: cache.to_path_buf(),
        config: config.clone(),
        deadline: start + timeout,
        deadline_tsc: rdtsc() + ns_to_tsc(timeout.as_nanos() as u64),
        timed_out: false,
        instances: Vec::new(),
        current: Slot::Failed("no module defined yet".into()),
        named: HashMap::new(),
        definitions: HashMap::new(),
        linker: Linker::new(),
        skipped_names: HashMap::new(),
        line: 0,
        unsupported: BTreeMap::new(),
    };
    if let Err(e) = r.add_spectest() {
        res.failed = wast.directives.len().max(1);
        res.failures.push((0, format!("spectest: {e}")));
        res.stale = listed.keys().copied().collect();
        return Ok(res);
    }
    let trace = std::env::var("MYRIAD_SPEC_TRACE").is_ok_and(|v| v != "0");
    let mut reached = BTreeSet::new();
    for d in wast.directives {
        let line = d.span().linecol_in(text).0 + 1;
        r.line = line;
        if trace {
            eprintln!("{rel}:{line}");
        }
        let skip_reason = listed.get(&line);
        if skip_reason.is_some() {
            reached.insert(line);
        }
        let out = if r.timed_out || Instant::now() > r.deadline {
            r.timed_out = true;
            Err("file time limit exceeded".into())
        } else {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match skip_reason {
                Some(reason) => r.skip_listed(d, reason),
                None => r.directive(d),
            }))
            .unwrap_or_else(|p| {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(format!("runner panic: {msg}").into())
            })
        };
        // A listed line stays a bless candidate (with its reason) only
        // while it is still out of scope.
        match (skip_reason, &out) {
            (Some(reason), Err(Miss::Skipped(_))) => {
                r.unsupported.insert(line, reason.clone());
            }
            (Some(_), _) => {
                r.unsupported.remove(&line);
            }
            (None, _) => {}
        }
        match out {
            Ok(()) => res.passed += 1,
            Err(Miss::Failed(e)) => {
                res.failed += 1;
                res.failures.push((line, e));
            }
            Err(Miss::Skipped(reason)) => {
                res.skipped += 1;
                res.skips.push((line, reason));
            }
        }
    }
    res.stale = listed
        .keys()
        .filter(|l| !reached.contains(l))
        .copied()
        .collect();
    res.unsupported = r.unsupported;
    Ok(res)
}

/// Bucket a failure reason for the summary.
fn cause(reason: &str) -> String {
    let r = reason
        .strip_prefix("module unavailable (")
        .unwrap_or(reason);
    let r = r.split(" at ").next().unwrap_or(r);
    let r: String = r.chars().take(90).collect();
    if r.starts_with("got ") {
        return "wrong result".into();
    }
    if r.starts_with("trap ") {
        return "wrong trap kind".into();
    }
    if r.starts_with("link error \"unknown import") || r.starts_with("unlinkable: unknown import") {
        return "unknown import (the exporting module is unavailable)".into();
    }
    if r.starts_with("expected trap") || r.starts_with("expected exhaustion") {
        return "expected trap did not happen".into();
    }
    r.trim_end_matches(')').to_owned()
}

/// Check that the two skip lists name testsuite files and do not overlap.
fn check_lists(
    all: &[String],
    skip: &BTreeMap<String, String>,
    module_skips: &BTreeMap<String, BTreeMap<usize, String>>,
) {
    for s in skip.keys() {
        assert!(
            all.contains(s),
            "skip.txt names {s}, which is not a testsuite file"
        );
    }
    for s in module_skips.keys() {
        assert!(
            all.contains(s),
            "skip-modules.txt names {s}, which is not a testsuite file"
        );
        assert!(
            !skip.contains_key(s),
            "skip-modules.txt names {s}, which skip.txt skips as a whole; remove its lines"
        );
    }
}

/// The testsuite with dense code (complete bounds checks) in plain
/// regions: the mode of a million small instances.
#[test]
fn spec_testsuite() {
    run_suite("dense", &CompileConfig::dense());
}

/// The testsuite with sparse code (no checks for small offsets; a 4 GiB
/// reservation and a guard per heap): the mode of `myriad run`. Modules
/// without a memory of their own with 4 KiB pages compile dense either
/// way.
#[test]
fn spec_testsuite_sparse() {
    run_suite("sparse", &CompileConfig::sparse());
}

fn run_suite(mode: &str, config: &CompileConfig) {
    let root = testsuite_dir();
    // The testsuite is part of the repository: a missing one is a broken
    // checkout, never a reason to skip.
    assert!(
        root.join("LICENSE").is_file() && root.join("i32.wast").is_file(),
        "spec testsuite not found at {} (it is checked in under tests/spec-testsuite/; \
         is the checkout complete?)",
        root.display()
    );
    let skip = read_skip_list();
    let module_skips = read_module_skips();
    let expected = read_expected();
    let filter: Option<Vec<String>> = std::env::var("MYRIAD_SPEC_FILE")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| s.split(',').map(|p| p.trim().to_owned()).collect());
    let verbose = std::env::var("MYRIAD_SPEC_VERBOSE").is_ok_and(|v| v != "0");
    let bless = std::env::var("MYRIAD_SPEC_BLESS").is_ok_and(|v| v != "0");
    let timeout = std::env::var("MYRIAD_SPEC_FILE_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(FILE_TIMEOUT, Duration::from_secs);

    let all = list_files(&root);
    check_lists(&all, &skip, &module_skips);
    let files: Vec<String> = all
        .into_iter()
        .filter(|f| {
            filter
                .as_ref()
                .is_none_or(|fl| fl.iter().any(|p| f == p || f.ends_with(&format!("/{p}"))))
        })
        .collect();
    assert!(
        !files.is_empty(),
        "MYRIAD_SPEC_FILE matches no testsuite file"
    );

    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("spec-{}-{mode}", std::process::id()));
    // Private (0700): a cache directory others could write to is refused.
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&cache)
        .expect("create the artifact cache");

    let no_lines = BTreeMap::new();
    let queue = Mutex::new(files.clone());
    let results: Mutex<BTreeMap<String, FileResult>> = Mutex::new(BTreeMap::new());
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let Some(f) = queue.lock().expect("queue lock").pop() else {
                    break;
                };
                let r = if skip.contains_key(&f) {
                    let text = std::fs::read_to_string(root.join(&f)).unwrap_or_default();
                    FileResult {
                        skipped: count_forms(&text),
                        ..Default::default()
                    }
                } else {
                    let t0 = Instant::now();
                    let listed = module_skips.get(&f).unwrap_or(&no_lines);
                    let mut r = run_file(&root, &f, config, &cache, timeout, listed);
                    if t0.elapsed() > Duration::from_secs(10) {
                        r.note = Some(format!("took {:.1}s", t0.elapsed().as_secs_f64()));
                    }
                    r
                };
                results.lock().expect("results lock").insert(f, r);
            });
        }
    });
    let _ = std::fs::remove_dir_all(&cache);
    let results = results.into_inner().expect("results lock");

    let (mut p, mut f, mut sk) = (0, 0, 0);
    let mut causes: BTreeMap<String, usize> = BTreeMap::new();
    let mut regressions = Vec::new();
    let mut improvements = Vec::new();
    let mut stale = Vec::new();
    let mut bless_lines = Vec::new();
    let mut bless_skips = Vec::new();
    for (name, r) in &results {
        p += r.passed;
        f += r.failed;
        sk += r.skipped;
        let tag = match (skip.get(name), module_skips.get(name)) {
            (Some(reason), _) => format!("  (skipped: {reason})"),
            (None, Some(lines)) => format!("  ({} listed in skip-modules.txt)", lines.len()),
            (None, None) => String::new(),
        };
        println!(
            "  {name:<48} passed {:>5}  failed {:>5}  skipped {:>5}{tag}{}",
            r.passed,
            r.failed,
            r.skipped,
            r.note
                .as_ref()
                .map(|n| format!("  [{n}]"))
                .unwrap_or_default()
        );
        let mut file_causes: BTreeMap<String, usize> = BTreeMap::new();
        for (line, reason) in &r.failures {
            if verbose {
                println!("    {name}:{line}: {reason}");
            }
            *causes.entry(cause(reason)).or_default() += 1;
            *file_causes.entry(cause(reason)).or_default() += 1;
        }
        if verbose {
            for (line, reason) in &r.skips {
                println!("    {name}:{line}: skipped: {reason}");
            }
        }
        for line in &r.stale {
            stale.push(format!(
                "skip-modules.txt lists {name}:{line}, which is not the line of a directive \
                 the runner reached; remove or fix it"
            ));
        }
        for (line, reason) in &r.unsupported {
            bless_skips.push(format!("{name}:{line} {reason}"));
        }
        if skip.contains_key(name) {
            continue;
        }
        let allowed = expected.get(name).copied().unwrap_or(0);
        if r.failed > allowed {
            regressions.push(format!(
                "{name}: {} failures, expected-failures.txt allows {allowed}",
                r.failed
            ));
        } else if r.failed < allowed {
            improvements.push(format!(
                "{name}: {} failures, expected-failures.txt allows {allowed}; please lower it",
                r.failed
            ));
        }
        if r.failed > 0 {
            let top = file_causes
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(c, _)| c.as_str())
                .unwrap_or("");
            bless_lines.push(format!("{name} {} {top}", r.failed));
        }
    }
    if !causes.is_empty() {
        println!("failure causes (count, cause):");
        let mut cv: Vec<_> = causes.into_iter().collect();
        cv.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
        for (c, n) in cv.iter().take(30) {
            println!("  {n:>6}  {c}");
        }
    }
    if bless {
        println!("--- skip-modules.txt (candidates: check each reason) ---");
        for l in &bless_skips {
            println!("{l}");
        }
        println!("--- expected-failures.txt ---");
        for l in &bless_lines {
            println!("{l}");
        }
        println!("--- end ---");
    }
    for i in &improvements {
        println!("note: {i}");
    }
    for r in &regressions {
        println!("REGRESSION: {r}");
    }
    for s in &stale {
        println!("STALE: {s}");
    }
    println!("spec ({mode}): {p} passed, {f} failed, {sk} skipped");
    assert!(
        stale.is_empty(),
        "{} stale line(s) in tests/spec/skip-modules.txt:\n{}",
        stale.len(),
        stale.join("\n")
    );
    assert!(
        regressions.is_empty(),
        "{} file(s) have more spec failures than tests/spec/expected-failures.txt allows:\n{}",
        regressions.len(),
        regressions.join("\n")
    );
}
