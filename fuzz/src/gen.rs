//! Random modules from `wasm-smith`, configured for what Myriad
//! implements, and the per-seed run parameters.
//!
//! Every seed picks its own configuration within the supported feature
//! set (swarm testing: some modules have no floats, some no reference
//! types, some avoid traps so execution gets further), then generates a
//! module from random bytes of the same seed. Always on:
//!
//! - `export_everything`: every function, global, table and memory is
//!   exported, so the oracle can read every global and table and call
//!   every function;
//! - `canonicalize_nans`: every float result that could be a NaN is
//!   replaced by the canonical NaN, because NaN payloads are
//!   nondeterministic in WebAssembly and would otherwise reach memory,
//!   globals and integers through stores and reinterpretations;
//! - no imports (nothing to supply identically to both engines).
//!
//! Always off: SIMD and relaxed SIMD, threads and shared memory, memory64,
//! multi-memory, exceptions, tail calls, GC and typed function references,
//! wide arithmetic, custom descriptors.

use crate::rng::Rng;
use arbitrary::Unstructured;

/// Largest initial or maximum memory wasm-smith may declare (4 pages of
/// 64 KiB). Growth without a declared maximum is bounded by
/// [`HEAP_CAPACITY`] on both sides.
pub const MAX_DECLARED_MEMORY: u64 = 4 * 65536;

/// Heap capacity of the slots the Myriad side runs in, and the memory
/// size the oracle's resource limiter allows (16 pages of 64 KiB): a
/// `memory.grow` past it returns -1 on both sides.
pub const HEAP_CAPACITY: usize = 16 * 65536;

/// Guard size of the guard-mode region (and `guard_bytes` of the code
/// compiled for it).
pub const GUARD_BYTES: u64 = 65536;

/// How Myriad's code checks heap bounds for one seed (see
/// `myriad_codegen::CompileConfig`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Bounds {
    /// Complete checks, a plain region.
    #[default]
    Dense,
    /// [`GUARD_BYTES`] of faulting guard, a guard-mode region.
    Guarded,
    /// No checks for small offsets: a guard-mode region with a 4 GiB
    /// reservation per heap and a 32 MiB guard.
    Sparse,
}

impl Bounds {
    /// The compile settings of this mode.
    pub fn config(self) -> myriad_codegen::CompileConfig {
        match self {
            Bounds::Dense => myriad_codegen::CompileConfig::dense(),
            Bounds::Guarded => myriad_codegen::CompileConfig::guarded(GUARD_BYTES),
            Bounds::Sparse => myriad_codegen::CompileConfig::sparse(),
        }
    }

    /// The mode's name in case headers and counters.
    pub fn name(self) -> &'static str {
        match self {
            Bounds::Dense => "dense",
            Bounds::Guarded => "guarded",
            Bounds::Sparse => "sparse",
        }
    }
}

/// Salts that keep the random streams of one seed apart.
mod salt {
    pub const CONFIG: u64 = 1;
    pub const MODULE: u64 = 2;
    pub const PARAMS: u64 = 3;
}

/// How one seed's module is run (see [`RunParams::from_seed`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunParams {
    /// The seed.
    pub seed: u64,
    /// How Myriad's code checks heap bounds (and the region it runs in).
    pub bounds: Bounds,
    /// Fuel units per Myriad slice (`Instance::resume_fuel`); small values
    /// preempt the guest often.
    pub slice_units: u64,
    /// How many times every exported function is called (in export
    /// order each round).
    pub rounds: u32,
}

impl RunParams {
    /// The parameters of `seed`: a third each dense, guarded and sparse,
    /// slices from 1 to 100,000 fuel units, two rounds of calls.
    pub fn from_seed(seed: u64) -> RunParams {
        let mut r = Rng::derive(seed, salt::PARAMS);
        let bounds = *r.pick(&[Bounds::Dense, Bounds::Guarded, Bounds::Sparse]);
        let slice_units = *r.pick(&[1, 3, 17, 100, 1000, 100_000, 100_000]);
        RunParams {
            seed,
            bounds,
            slice_units,
            rounds: 2,
        }
    }
}

/// The wasm-smith configuration of `seed`.
pub fn config_for(seed: u64) -> wasm_smith::Config {
    let mut r = Rng::derive(seed, salt::CONFIG);
    let mut c = wasm_smith::Config::default();
    // Module shape: small, so a module compiles in milliseconds.
    // wasm-smith adds items past the minimum with probability 1/2 each,
    // so the minimums set the size.
    c.max_types = r.range(1, 12) as usize;
    c.min_types = r.range(1, c.max_types as u64) as usize;
    c.max_funcs = r.range(1, 12) as usize;
    c.min_funcs = r.range(1, c.max_funcs as u64) as usize;
    c.max_instructions = r.range(5, 120) as usize;
    c.max_globals = r.range(0, 12) as usize;
    c.min_globals = r.range(0, c.max_globals as u64) as usize;
    c.max_data_segments = r.range(0, 6) as usize;
    c.min_data_segments = r.range(0, c.max_data_segments as u64 / 2) as usize;
    c.max_element_segments = r.range(0, 6) as usize;
    c.min_element_segments = r.range(0, c.max_element_segments as u64 / 2) as usize;
    c.max_elements = r.range(0, 16) as usize;
    c.max_memories = r.range(0, 1) as usize;
    c.max_memory32_bytes = MAX_DECLARED_MEMORY;
    c.memory_max_size_required = r.chance(1, 3);
    c.max_table_elements = *r.pick(&[0, 4, 16, 100]);
    c.table_max_size_required = r.chance(1, 3);
    c.max_exports = 100;
    c.export_everything = true;
    c.canonicalize_nans = true;
    c.allow_start_export = true;
    c.max_imports = 0;
    c.min_imports = 0;
    c.max_tags = 0;
    c.generate_custom_sections = false;
    c.allow_invalid_funcs = false;
    // Features Myriad implements, each on in most seeds.
    c.allow_floats = r.chance(4, 5);
    c.bulk_memory_enabled = r.chance(9, 10);
    c.reference_types_enabled = r.chance(4, 5);
    c.max_tables = if c.reference_types_enabled {
        r.range(0, 4) as usize
    } else {
        r.range(0, 1) as usize
    };
    c.multi_value_enabled = r.chance(4, 5);
    c.saturating_float_to_int_enabled = r.chance(4, 5);
    c.sign_extension_ops_enabled = r.chance(4, 5);
    c.extended_const_enabled = r.chance(1, 2);
    c.custom_page_sizes_enabled = r.chance(1, 4);
    // Avoid traps in some modules, so execution goes further.
    c.disallow_traps = r.chance(1, 4);
    // Features Myriad does not implement: off.
    c.simd_enabled = false;
    c.relaxed_simd_enabled = false;
    c.threads_enabled = false;
    c.shared_everything_threads_enabled = false;
    c.memory64_enabled = false;
    c.exceptions_enabled = false;
    c.tail_call_enabled = false;
    c.gc_enabled = false;
    c.custom_descriptors_enabled = false;
    c.wide_arithmetic_enabled = false;
    c.acquire_release_atomics_enabled = false;
    c.multibyte_array_access_enabled = false;
    c.compact_imports_enabled = false;
    c
}

/// The module of `seed`: wasm-smith with [`config_for`] on random bytes of
/// the same seed. If wasm-smith cannot meet the configuration's minimums
/// with those bytes, it tries again without them; `None` if that fails
/// too.
pub fn module_for(seed: u64) -> Option<Vec<u8>> {
    let mut config = config_for(seed);
    let mut r = Rng::derive(seed, salt::MODULE);
    let len = r.range(1024, 16 * 1024) as usize;
    let data = r.bytes(len);
    if let Ok(m) = wasm_smith::Module::new(config.clone(), &mut Unstructured::new(&data)) {
        return Some(m.to_bytes());
    }
    config.min_funcs = 0;
    config.min_types = 0;
    config.min_globals = 0;
    config.min_data_segments = 0;
    config.min_element_segments = 0;
    wasm_smith::Module::new(config, &mut Unstructured::new(&data))
        .ok()
        .map(|m| m.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_valid() {
        for seed in 0..20 {
            let a = module_for(seed);
            assert_eq!(a, module_for(seed));
            if let Some(wasm) = a {
                wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
                    .validate_all(&wasm)
                    .expect("wasm-smith makes valid modules");
            }
        }
    }
}
