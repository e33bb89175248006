//! The fixed-seed differential batch: modules from a fixed range of seeds
//! run in Myriad and in the wasmi oracle, which must agree on every result,
//! trap, memory byte, global and table element. `myriad-fuzz --seconds N`
//! runs the same comparison for as long as asked.

use myriad_fuzz::campaign::{Campaign, Settings};
use myriad_fuzz::stats::Counters;
use std::path::PathBuf;
use std::time::Instant;

/// Seeds of the batch (a fixed range: the same modules every run).
const SEEDS: u64 = 1000;
/// First seed.
const FIRST: u64 = 0x5eed_0000;

fn work_dir(tag: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{tag}-{}", std::process::id()))
}

#[test]
fn fixed_seed_batch_agrees() {
    let t0 = Instant::now();
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 2) as u64;
    let results: Vec<(Counters, Vec<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let work = work_dir(&format!("diff-{t}"));
                    let settings = Settings {
                        loaders: false,
                        ..Settings::default()
                    };
                    let mut c = Campaign::new(&work, settings).expect("campaign");
                    let mut seed = FIRST + t;
                    while seed < FIRST + SEEDS {
                        c.seed(seed);
                        seed += threads;
                    }
                    let _ = std::fs::remove_dir_all(&work);
                    let found = c
                        .findings
                        .iter()
                        .map(|f| format!("{} ({})", f.summary, f.name))
                        .collect();
                    (c.counters, found)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread"))
            .collect()
    });
    let mut totals = Counters::default();
    let mut found = Vec::new();
    for (c, f) in results {
        totals.merge(&c);
        found.extend(f);
    }
    println!(
        "differential batch: {SEEDS} seeds in {:.1} s on {threads} thread(s)\n{}",
        t0.elapsed().as_secs_f64(),
        totals.report()
    );
    assert!(
        found.is_empty(),
        "Myriad and the oracle disagree ({} case(s)); reproduce with \
         `cargo run --release -p myriad-fuzz -- seed <seed>`:\n{}",
        found.len(),
        found.join("\n")
    );
    // Generated modules use only what Myriad implements: a refusal (or any
    // other skip) is worth a look.
    assert_eq!(
        totals.sum_under("skipped"),
        0,
        "generated modules were skipped (Myriad refused a supported shape?)"
    );
    // The batch must really compare something.
    assert!(
        totals.get("modules compared") >= SEEDS * 9 / 10,
        "too few modules compared"
    );
    assert!(
        totals.get("calls compared") >= SEEDS,
        "too few calls compared"
    );
    assert!(
        totals.sum_under("trapped calls") >= SEEDS / 10,
        "too few traps compared"
    );
}
