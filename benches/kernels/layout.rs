//! Code placements for the kernel comparisons, shared by Myriad's
//! `kernels` binary and `wasmtime-compare` (each includes this file).
//!
//! On the reference CPU (AMD Zen 5) the same machine code of a hot loop
//! runs up to 25 % slower or faster depending on where it lands relative
//! to 32- and 64-byte boundaries (the dense matmul kernel: 66 ms at most
//! offsets, 85 ms at one). That is luck in one build, not a property of
//! either compiler, so the comparisons run each kernel in several
//! placements and report the mean over them (the expected time at a
//! placement nobody chose; the times are often bimodal, which makes a
//! median flip between the modes): the same module with an
//! unused first function of a few multiply-adds, which both runtimes
//! compile and place before the kernel's functions, moving them by its
//! size (in Myriad about 14 bytes a step, so eight placements spread over
//! a 64-byte window; Wasmtime aligns functions to 32 bytes).

/// `wat`, a module, with a first function of `steps` multiply-adds that
/// nothing calls (`steps` 0: `wat` as it is). Every other function moves
/// by that function's compiled size.
pub fn with_padding(wat: &str, steps: usize) -> String {
    if steps == 0 {
        return wat.to_string();
    }
    let mut pad = String::from("(func $layout_padding (param i64) (result i64) (local.get 0)");
    for i in 0..steps {
        pad.push_str(&format!(
            " (i64.const {}) (i64.mul) (i64.const {}) (i64.add)",
            1_000_003 + 2 * i,
            i + 1
        ));
    }
    pad.push(')');
    wat.replacen("(module", &format!("(module {pad}"), 1)
}

/// The mean of `values`; `None` when empty.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The median of `values` (sorted in place); `None` when empty.
pub fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}
