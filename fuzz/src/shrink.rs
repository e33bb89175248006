//! Minimising a diverging module with `wasm-shrink` (predicate-driven
//! reduction from wasm-tools): keep any smaller valid module that is still
//! interesting (for the fuzzer: still diverges with the same signature).

use std::time::{Duration, Instant};

/// Shrink `wasm`, for which `interesting` holds, for at most `budget`
/// (and at most `attempts` failed attempts in a row; `seed` picks the
/// mutations). Returns the smallest module found for which `interesting`
/// holds (`wasm` itself if none is smaller) and the number of candidates
/// tried.
pub fn shrink(
    wasm: &[u8],
    seed: u64,
    budget: Duration,
    attempts: u32,
    interesting: &mut dyn FnMut(&[u8]) -> bool,
) -> (Vec<u8>, u64) {
    let deadline = Instant::now() + budget;
    let mut runs = 0u64;
    let result = wasm_shrink::WasmShrink::default()
        .attempts(attempts)
        .seed(seed)
        .run(wasm.to_vec(), |candidate| {
            if Instant::now() > deadline {
                return Ok(false);
            }
            runs += 1;
            Ok(interesting(candidate))
        });
    match result {
        Ok(info) if info.output.len() <= wasm.len() => (info.output, runs),
        _ => (wasm.to_vec(), runs),
    }
}
