//! The loaders on mutated input: mutated `.wasm` through the compiler,
//! mutated artifacts through `Module::from_artifact_bytes`. Raw artifact
//! mutations must be refused; metadata mutations (checksum and artifact
//! hash repaired) may load or be refused, and nothing may panic.

use myriad_fuzz::campaign::{Campaign, Settings};
use myriad_fuzz::gen::module_for;
use std::path::PathBuf;
use std::time::Instant;

const FIRST: u64 = 0x10ad_0000;

fn work_dir(tag: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{tag}-{}", std::process::id()))
}

fn findings(c: &Campaign) -> String {
    c.findings
        .iter()
        .map(|f| format!("{} ({})", f.summary, f.name))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn mutated_wasm_is_refused_or_runs_alike() {
    let t0 = Instant::now();
    let work = work_dir("wasm-mutants");
    let mut c = Campaign::new(&work, Settings::default()).expect("campaign");
    for seed in FIRST..FIRST + 300 {
        if let Some(wasm) = module_for(seed) {
            c.wasm_mutants(seed, &wasm);
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    println!(
        "wasm mutants in {:.1} s\n{}",
        t0.elapsed().as_secs_f64(),
        c.counters.report()
    );
    assert!(c.findings.is_empty(), "{}", findings(&c));
    assert!(c.counters.get("wasm mutants") >= 500);
    assert!(c.counters.sum_under("wasm mutant compiles") >= 500);
}

#[test]
fn mutated_artifacts_are_refused_or_load() {
    let t0 = Instant::now();
    let work = work_dir("artifact-mutants");
    let mut c = Campaign::new(&work, Settings::default()).expect("campaign");
    for seed in FIRST..FIRST + 40 {
        if let Some(wasm) = module_for(seed) {
            c.artifact_mutants(seed, &wasm);
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    println!(
        "artifact mutants in {:.1} s\n{}",
        t0.elapsed().as_secs_f64(),
        c.counters.report()
    );
    assert!(c.findings.is_empty(), "{}", findings(&c));
    assert!(c.counters.sum_under("raw artifact mutants refused") >= 200);
    assert!(c.counters.sum_under("metadata mutants") >= 600);
    assert_eq!(
        c.counters.get("raw artifact mutants refused/NOT REFUSED"),
        0
    );
}
