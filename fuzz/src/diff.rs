//! The differential run of one module: compile, instantiate and call in
//! both engines, compare after every step.

use crate::gen::{Bounds, RunParams};
use crate::info::{ModuleInfo, Sig, Ty};
use crate::loaders::panic_message;
use crate::model::{state_difference, Outcome, Resource, Value};
use crate::myriad::{CompileFailure, Instantiated, MyriadInstance, MyriadSide};
use crate::oracle::Oracle;
use crate::oracle::OracleInstance;
use crate::rng::Rng;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

/// Which engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// Myriad.
    Myriad,
    /// The wasmi oracle.
    Oracle,
}

/// Two engines disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The kind of disagreement without values (`call/Trapped/Returned`,
    /// `state/memory`, ...): what the minimiser keeps constant.
    pub signature: String,
    /// Where it happened and what each side said.
    pub detail: String,
}

/// What one module's run showed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleStats {
    /// Calls whose outcomes and following states were compared.
    pub calls: u64,
    /// Of those, calls that trapped (on both sides, alike), by trap.
    pub traps: BTreeMap<String, u64>,
    /// The instantiation failed alike on both sides (segment out of
    /// bounds, start function trapped).
    pub instantiation_failed: Option<String>,
    /// Resource limits hit (by which side), each ending the comparison of
    /// one instance pair; the other exports then run on a fresh pair.
    pub stopped: Vec<(Side, Resource)>,
    /// Instance pairs made (one, plus one per limit hit).
    pub instances: u64,
    /// How Myriad's code checked bounds (and the region it ran in).
    pub bounds: Bounds,
    /// Myriad slices run.
    pub slices: u64,
}

/// The verdict on one module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Both sides agreed on everything compared.
    Agreed(ModuleStats),
    /// Not compared, for this reason.
    Skipped(String),
    /// The sides disagree.
    Diverged(Divergence),
}

fn outcome_name(o: &Outcome) -> String {
    match o {
        Outcome::Returned(_) => "Returned".into(),
        Outcome::Trapped(t) => format!("Trapped({t:?})"),
        Outcome::Limited(r) => format!("Limited({r:?})"),
        Outcome::Odd(_) => "Odd".into(),
    }
}

fn diverged(stage: &str, what: &str, myriad: String, oracle: String) -> Verdict {
    Verdict::Diverged(Divergence {
        signature: format!("{stage}/{what}"),
        detail: format!("{stage}: Myriad: {myriad}\n{stage}: oracle: {oracle}"),
    })
}

/// Runs modules on both sides.
pub struct Runner {
    myriad: MyriadSide,
    oracle: Oracle,
}

/// Interesting argument values.
const I32S: &[i32] = &[
    0,
    1,
    -1,
    2,
    7,
    8,
    16,
    31,
    32,
    255,
    256,
    4096,
    65535,
    65536,
    i32::MIN,
    i32::MAX,
];
const I64S: &[i64] = &[
    0,
    1,
    -1,
    2,
    63,
    64,
    65536,
    1 << 32,
    i64::MIN,
    i64::MAX,
    i32::MIN as i64,
    u32::MAX as i64,
];
const F32S: &[u32] = &[
    0,
    0x8000_0000,
    0x3f80_0000,
    0xbfc0_0000,
    0x7fc0_0000,
    0x7f80_0000,
    0xff80_0000,
    0x4f00_0000,
    0x4f80_0000,
    0xcf00_0001,
    0x0000_0001,
];
const F64S: &[u64] = &[
    0,
    0x8000_0000_0000_0000,
    0x3ff0_0000_0000_0000,
    0x7ff8_0000_0000_0000,
    0x7ff0_0000_0000_0000,
    0xfff0_0000_0000_0000,
    0x41e0_0000_0000_0000,
    0x43e0_0000_0000_0000,
    0xc3e0_0000_0000_0001,
    1,
];

/// Deterministic arguments for call `k` of round `round` of `seed`.
pub fn args_for(seed: u64, round: u32, k: usize, params: &[Ty]) -> Vec<Value> {
    let mut r = Rng::derive(seed, 0x1000 + u64::from(round) * 0x10000 + k as u64);
    params
        .iter()
        .map(|t| {
            // A third small (table indices, addresses near 0), a third
            // boundary values, a third random.
            let kind = r.below(3);
            match t {
                Ty::I32 => Value::I32(match kind {
                    0 => r.below(17) as i32,
                    1 => *r.pick(I32S),
                    _ => r.next_u64() as i32 >> r.below(32),
                }),
                Ty::I64 => Value::I64(match kind {
                    0 => r.below(17) as i64,
                    1 => *r.pick(I64S),
                    _ => r.next_u64() as i64 >> r.below(64),
                }),
                Ty::F32 => Value::F32(if kind == 2 {
                    r.next_u64() as u32
                } else {
                    *r.pick(F32S)
                }),
                Ty::F64 => Value::F64(if kind == 2 {
                    r.next_u64()
                } else {
                    *r.pick(F64S)
                }),
                Ty::FuncRef => Value::FuncRef(None),
                Ty::ExternRef => Value::ExternRef(r.chance(2, 3).then(|| r.range(1, 1000))),
            }
        })
        .collect()
}

impl Runner {
    /// A runner whose Myriad side compiles into `cache` (created 0700).
    pub fn new(cache: &Path) -> anyhow::Result<Runner> {
        Ok(Runner {
            myriad: MyriadSide::new(cache)?,
            oracle: Oracle::new(),
        })
    }

    /// Run `wasm` with `params` on both sides and compare. A panic on
    /// either side is a divergence (signature `panic`).
    pub fn run(&self, wasm: &[u8], params: &RunParams) -> Verdict {
        let v =
            catch_unwind(AssertUnwindSafe(|| self.run_inner(wasm, params))).unwrap_or_else(|p| {
                Verdict::Diverged(Divergence {
                    signature: "panic".into(),
                    detail: format!("panic: {}", panic_message(&*p)),
                })
            });
        self.myriad.clean_cache();
        v
    }

    fn run_inner(&self, wasm: &[u8], params: &RunParams) -> Verdict {
        let info = ModuleInfo::parse(wasm);
        // Guard-relying code needs pages of at least 4 KiB: run modules
        // with smaller pages with complete bounds checks instead.
        let mut params = params.clone();
        if info.as_ref().is_ok_and(|i| i.page_size_log2 < 12) {
            params.bounds = Bounds::Dense;
        }
        let params = &params;
        let mine = self.myriad.compile(wasm, params.bounds);
        let theirs = self.oracle.compile(wasm);
        let (module, omodule) = match (mine, theirs) {
            (Ok(m), Ok(o)) => (m, o),
            (Err(CompileFailure::Other(e)), _) => {
                return diverged("compile", "error", format!("failed: {e}"), "-".into())
            }
            (Err(CompileFailure::Invalid(e)), Ok(_)) => {
                return diverged(
                    "compile",
                    "invalid/valid",
                    format!("refused: {e}"),
                    "accepted".into(),
                )
            }
            (Err(CompileFailure::Unsupported(e)), Ok(_)) => {
                return Verdict::Skipped(format!("Myriad: {}", short(&e)))
            }
            (Ok(_), Err(e)) => return Verdict::Skipped(format!("oracle refused: {}", short(&e))),
            (Err(_), Err(_)) => return Verdict::Skipped("both refuse".into()),
        };
        let info = match info {
            Ok(i) => i,
            Err(e) => return Verdict::Skipped(format!("unreadable: {}", short(&e))),
        };
        if info.imports > 0 {
            return Verdict::Skipped("imports".into());
        }
        let mut stats = ModuleStats {
            bounds: params.bounds,
            ..ModuleStats::default()
        };
        let (mut mi, mut oi) = match self.instantiate(&module, &omodule, &info, params, &mut stats)
        {
            Ok(pair) => pair,
            Err(v) => return v,
        };
        // Exports that ran into a resource limit are not called again.
        let mut exhausting = vec![false; info.func_exports.len()];
        for round in 0..params.rounds {
            for (k, (name, index)) in info.func_exports.iter().enumerate() {
                if exhausting[k] {
                    continue;
                }
                let Some(Sig {
                    params: ps,
                    results,
                }) = info.funcs.get(*index as usize)
                else {
                    return Verdict::Skipped("export of an imported function".into());
                };
                let args = args_for(params.seed, round, k, ps);
                let a = mi.call(name, &args);
                let b = oi.call(name, &args, results);
                stats.slices += mi.take_slices();
                let stage = format!(
                    "call {} (round {round}, export {name:?} = func {index}, args {})",
                    stats.calls,
                    crate::model::show_values(&args)
                );
                if let Some(stop) = limit_of(&a, &b) {
                    // Where a limit strikes is engine-specific: the states
                    // are no longer comparable. Start both afresh and go on
                    // with the other exports.
                    stats.stopped.push(stop);
                    exhausting[k] = true;
                    drop((mi, oi));
                    (mi, oi) = match self.instantiate(&module, &omodule, &info, params, &mut stats)
                    {
                        Ok(pair) => pair,
                        Err(v) => return v,
                    };
                    continue;
                }
                if a != b || matches!(a, Outcome::Odd(_)) {
                    let what = format!("{}/{}", outcome_name(&a), outcome_name(&b));
                    let mut v = diverged(&stage, &what, a.to_string(), b.to_string());
                    if let Verdict::Diverged(d) = &mut v {
                        d.signature = format!("call/{what}");
                    }
                    return v;
                }
                stats.calls += 1;
                if let Outcome::Trapped(t) = a {
                    *stats.traps.entry(format!("{t:?}")).or_insert(0) += 1;
                }
                if let Some((x, y)) = state_difference(&mi.state(&info), &oi.state(&info)) {
                    let kind = state_kind(&x);
                    let mut v = diverged(&format!("after {stage}"), kind, x, y);
                    if let Verdict::Diverged(d) = &mut v {
                        d.signature = format!("state/{kind}");
                    }
                    return v;
                }
            }
        }
        Verdict::Agreed(stats)
    }

    /// Instantiate on both sides and compare the outcome and the initial
    /// state. `Err` is the verdict when they cannot go on (they disagree,
    /// or failed alike, or hit a limit).
    fn instantiate(
        &self,
        module: &Arc<myriad_runtime::Module>,
        omodule: &wasmi::Module,
        info: &ModuleInfo,
        params: &RunParams,
        stats: &mut ModuleStats,
    ) -> Result<(MyriadInstance, OracleInstance), Verdict> {
        stats.instances += 1;
        let mine = self
            .myriad
            .instantiate(module, info, params.bounds, params.slice_units);
        let theirs = self.oracle.instantiate(omodule, info);
        let ok = Outcome::Returned(vec![]);
        let (mut mi, oi) = match (mine, theirs) {
            (Instantiated::Skip(s), _) | (_, Instantiated::Skip(s)) => {
                return Err(Verdict::Skipped(format!("instantiate: {}", short(&s))))
            }
            (Instantiated::Ok(m), Instantiated::Ok(o)) => (m, o),
            (Instantiated::Failed(a), Instantiated::Failed(b)) => {
                if let Some(stop) = limit_of(&a, &b) {
                    stats.stopped.push(stop);
                    return Err(Verdict::Agreed(stats.clone()));
                }
                if a == b && !matches!(a, Outcome::Odd(_)) {
                    stats.instantiation_failed = Some(outcome_name(&a));
                    return Err(Verdict::Agreed(stats.clone()));
                }
                return Err(diverged(
                    "instantiate",
                    &format!("{}/{}", outcome_name(&a), outcome_name(&b)),
                    a.to_string(),
                    b.to_string(),
                ));
            }
            (Instantiated::Failed(a), Instantiated::Ok(_)) => {
                if let Some(stop) = limit_of(&a, &ok) {
                    stats.stopped.push(stop);
                    return Err(Verdict::Agreed(stats.clone()));
                }
                return Err(diverged(
                    "instantiate",
                    &format!("{}/ok", outcome_name(&a)),
                    a.to_string(),
                    "instantiated".into(),
                ));
            }
            (Instantiated::Ok(_), Instantiated::Failed(b)) => {
                if let Some(stop) = limit_of(&ok, &b) {
                    stats.stopped.push(stop);
                    return Err(Verdict::Agreed(stats.clone()));
                }
                return Err(diverged(
                    "instantiate",
                    &format!("ok/{}", outcome_name(&b)),
                    "instantiated".into(),
                    b.to_string(),
                ));
            }
        };
        stats.slices += mi.take_slices();
        if let Some((a, b)) = state_difference(&mi.state(info), &oi.state(info)) {
            let kind = state_kind(&a);
            let mut v = diverged("after instantiation", kind, a, b);
            if let Verdict::Diverged(d) = &mut v {
                d.signature = format!("state after instantiation/{kind}");
            }
            return Err(v);
        }
        Ok((mi, oi))
    }
}

/// The resource limit either side hit, if any (Myriad's first).
fn limit_of(a: &Outcome, b: &Outcome) -> Option<(Side, Resource)> {
    match (a, b) {
        (Outcome::Limited(r), _) => Some((Side::Myriad, *r)),
        (_, Outcome::Limited(r)) => Some((Side::Oracle, *r)),
        _ => None,
    }
}

fn state_kind(s: &str) -> &'static str {
    if s.contains("memory") {
        "memory"
    } else if s.contains("global") {
        "global"
    } else {
        "table"
    }
}

/// The first 60 characters of the first line of `s`, without offsets.
fn short(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    let line = line.split(" at offset").next().unwrap_or(line);
    line.chars().take(60).collect()
}
