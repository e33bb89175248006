//! Everything architecture-specific in assembly: the context switch, the
//! entry of a fresh instance, the trampolines that run builtins and host
//! functions on the worker stack, and the signal-context fields the fault
//! handler reads and rewrites. One module per architecture; x86-64 Linux is
//! the only one (the crate refuses to build elsewhere).
//!
//! The trampolines name their Rust callees (the fuel slow path, the
//! builtins, the host-import dispatcher) directly, so this module sits
//! above those in the crate's layers and below the instance code that
//! switches into guests.

mod x86_64;

pub use x86_64::*;
