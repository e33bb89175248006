//! The scheduler's adversarial suite: guests (and hosts acting for them)
//! trying to make the host allocate or work without bound. One file per
//! attack; add a file and a `mod` line to extend it.

#[path = "../common/mod.rs"]
mod common;
mod host_time;
mod link_cascade;
mod mailbox_flood;
mod table_growth;
mod tenants;

use myriad_runtime::{Linker, Module};
use std::sync::Arc;

/// Compile `wat` through the real code generator and load it.
pub fn module(wat: &str) -> Arc<Module> {
    common::compile_wat_in(wat, "attack-artifacts")
}

/// A linker with the scheduler's `myriad` functions.
pub fn linker() -> Arc<Linker> {
    let mut l = Linker::new();
    myriad_scheduler::messaging::add_to_linker(&mut l);
    Arc::new(l)
}
