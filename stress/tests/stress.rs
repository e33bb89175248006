//! The stress job's code paths at a few thousand instances: each built-in
//! guest, fuel mode, and a report written to disk. (The million-instance
//! runs are the stress job's own work, not the test suite's.)

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_stress");

/// Run `stress` with `args`; its stdout (the report). Panics on failure.
fn stress(args: &[&str]) -> String {
    let o = Command::new(BIN).args(args).output().expect("run stress");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "stress {args:?} failed: {}\n{out}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// The number after `label` in the report line starting with it.
fn figure(report: &str, label: &str) -> u64 {
    let line = report
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in\n{report}"));
    line[label.len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no figure in {line:?}"))
}

#[test]
fn spin_guests_are_all_sliced() {
    let r = stress(&[
        "--instances",
        "3000",
        "--duration-s",
        "0.5",
        "--quantum-us",
        "10",
    ]);
    assert!(figure(&r, "slices") >= 3000, "{r}");
    assert!(r.contains("3000 of 3000 instances ran"), "{r}");
    assert!(r.contains("3000 cancelled"), "{r}");
}

#[test]
fn compute_results_are_checked() {
    let r = stress(&[
        "--guest",
        "compute",
        "--instances",
        "2000",
        "--duration-s",
        "3",
        "--compute-rounds",
        "1",
    ]);
    assert!(r.contains("results checked: 2000 ok, 0 wrong"), "{r}");
}

#[test]
fn sleepers_wake_and_sleep_again() {
    // 2,000 instances sleeping 2 ms between bursts for 0.5 s: each wakes
    // many times, and the worker never blocks on a sleep.
    let r = stress(&[
        "--guest",
        "sleep",
        "--instances",
        "2000",
        "--sleep-us",
        "2000",
        "--duration-s",
        "0.5",
    ]);
    assert!(r.contains("2000 of 2000 instances ran"), "{r}");
    assert!(figure(&r, "slices") >= 4 * 2000, "{r}");
}

#[test]
fn fuel_mode_and_report_files() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("stress-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let r = stress(&[
        "--instances",
        "2000",
        "--duration-s",
        "0.3",
        "--fuel-per-slice",
        "1000",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(r.contains("fuel slices of 1000 units"), "{r}");
    let summary = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    assert!(
        summary.contains("\"fuel_per_slice\": 1000") || summary.contains("\"fuel_per_slice\":1000"),
        "{summary}"
    );
}
