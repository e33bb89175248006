//! Replays every case in `fuzz/regressions/` (none: passes). Each case runs
//! in a child process (`myriad-fuzz replay`), so a case that crashes
//! fails this test instead of killing it. Cases named in
//! `fuzz/regressions/KNOWN.md` are known, unfixed issues: they are reported
//! and do not fail the test.

use myriad_fuzz::regressions::{cases, known};
use std::path::Path;
use std::process::Command;

#[test]
fn every_regression_case_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let cases = cases(&dir).unwrap_or_else(|e| panic!("fuzz/regressions: {e}"));
    let known = known(&dir);
    let mut failures = Vec::new();
    for case in &cases {
        let out = Command::new(env!("CARGO_BIN_EXE_myriad-fuzz"))
            .arg("replay")
            .arg(&case.txt)
            .output()
            .expect("run myriad-fuzz replay");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let is_known = known.contains(&case.name);
        match (out.status.success(), is_known) {
            (true, false) => println!("{}: passes", case.name),
            (true, true) => println!(
                "{}: passes, but KNOWN.md lists it as a known issue: remove it from there",
                case.name
            ),
            (false, true) => println!("{}: known issue, still fails ({})", case.name, out.status),
            (false, false) => failures.push(format!("{} ({}):\n{text}", case.name, out.status)),
        }
    }
    for name in &known {
        if !cases.iter().any(|c| &c.name == name) {
            failures.push(format!("KNOWN.md names {name}, which has no case files"));
        }
    }
    println!("{} regression case(s), {} known", cases.len(), known.len());
    assert!(
        failures.is_empty(),
        "regression cases fail (replay one with `cargo run --release -p myriad-fuzz -- replay \
         fuzz/regressions/<name>.txt`):\n{}",
        failures.join("\n")
    );
}
