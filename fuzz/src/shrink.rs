//! Minimising a diverging module with `wasm-shrink` (predicate-driven
//! reduction from wasm-tools): keep any smaller valid module that still
//! diverges with the same signature.

use crate::diff::{Runner, Verdict};
use crate::gen::RunParams;
use std::time::{Duration, Instant};

/// Shrink `wasm`, which diverges with `signature` under `params`, for at
/// most `budget` (and at most `attempts` failed attempts in a row).
/// Returns the smallest module found (`wasm` itself if nothing smaller
/// still diverges alike) and the number of predicate runs. `on_candidate`
/// sees every candidate before it runs.
pub fn shrink(
    runner: &Runner,
    wasm: &[u8],
    params: &RunParams,
    signature: &str,
    budget: Duration,
    attempts: u32,
    on_candidate: &mut dyn FnMut(&[u8]),
) -> (Vec<u8>, u64) {
    let deadline = Instant::now() + budget;
    let mut runs = 0u64;
    let result = wasm_shrink::WasmShrink::default()
        .attempts(attempts)
        .seed(params.seed)
        .run(wasm.to_vec(), |candidate| {
            if Instant::now() > deadline {
                return Ok(false);
            }
            runs += 1;
            on_candidate(candidate);
            Ok(matches!(
                runner.run(candidate, params),
                Verdict::Diverged(d) if d.signature == signature
            ))
        });
    match result {
        Ok(info) if info.output.len() <= wasm.len() => (info.output, runs),
        _ => (wasm.to_vec(), runs),
    }
}
