//! The scheduler's adversarial suite: guests (and hosts acting for them)
//! trying to make the host allocate or work without bound. One file per
//! attack; add a file and a `mod` line to extend it.

mod mailbox_flood;
mod table_growth;

use myriad_runtime::{CompileConfig, Module};
use std::sync::Arc;

/// Compile `wat` through the real code generator and load it.
pub fn module(wat: &str) -> Arc<Module> {
    let wasm = wat::parse_str(wat).expect("attack WAT assembles");
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("attack-artifacts");
    std::fs::create_dir_all(&cache).expect("cache dir");
    Arc::new(Module::compile(&wasm, &CompileConfig::default(), &cache).expect("compiles"))
}
