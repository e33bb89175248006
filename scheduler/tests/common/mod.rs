//! What the scheduler's test files share.

use myriad_runtime::{CompileConfig, Module};
use std::sync::Arc;

/// Compile `wat` through the real code generator into the private cache
/// directory `dir` under the test target directory, and load it.
pub fn compile_wat_in(wat: &str, dir: &str) -> Arc<Module> {
    let wasm = wat::parse_str(wat).expect("test WAT assembles");
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(dir);
    // Private (0700): a cache directory others could write to is refused.
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&cache)
        .expect("create the artifact cache");
    Arc::new(Module::compile(&wasm, &CompileConfig::default(), &cache).expect("compiles"))
}

/// [`compile_wat_in`] the shared `artifacts` directory.
#[allow(dead_code, reason = "not every test file uses both")]
pub fn module(wat: &str) -> Arc<Module> {
    compile_wat_in(wat, "artifacts")
}
