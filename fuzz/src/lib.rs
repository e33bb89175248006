//! Differential fuzzing of Myriad, and fuzzing of its loaders.
//!
//! Random modules from [`wasm_smith`] (configured for the features Myriad
//! implements, see [`gen`]) run in Myriad and in an oracle, the [`wasmi`]
//! interpreter; after instantiation and after every call the two must
//! agree on results, trap kinds, the whole linear memory, every global and
//! every table element ([`diff`]). The loaders are fuzzed too: mutated
//! `.wasm` bytes go through the compiler and mutated artifacts through
//! `Module::from_artifact_bytes`; both must answer with `Ok` or `Err`,
//! never a panic or a crash ([`loaders`]).
//!
//! # Why wasmi as the oracle
//!
//! - It is an interpreter: it shares no code generator with Myriad (which
//!   is built on Cranelift, as Wasmtime is), so a Cranelift bug or a
//!   shared misreading of the spec cannot hide on both sides.
//! - It is pure Rust with a small dependency tree: it builds in well under
//!   a minute on two cores, where Wasmtime as a dev-dependency would
//!   compile a second copy of Cranelift plus its runtime.
//! - It is deterministic and meters fuel itself, runs the spec
//!   testsuite, and supports exactly the proposals Myriad implements
//!   (including custom page sizes), each of which can be switched on or
//!   off to match Myriad's feature set.
//!
//! Versions: `wasm-smith`, `wasm-shrink` and `wasmprinter` 0.263 (their
//! `wasm-encoder` and `wasmparser` are the workspace's); `wasmi` 1.1 (its
//! own `wasmparser` 0.239, independent of the workspace's 0.263 used by
//! Myriad). Not wasmi 2.0: version 2.0.0 returned a wrong result for a
//! `select` whose condition is an `i32.eqz` and whose first operand is a
//! constant, and overflowed the native stack on a loop of `table.grow`
//! (details in `fuzz/README.md`).
//!
//! # What is compared, what is skipped
//!
//! See `fuzz/README.md`. In short: resource limits (stack overflow, fuel,
//! memory limits) strike at engine-specific points, so when either side
//! hits one the module is no longer compared (counted); a module Myriad
//! refuses as unsupported is skipped (counted by reason); a module Myriad
//! refuses as invalid while the oracle accepts it is a divergence.
//!
//! # Entry points
//!
//! - [`campaign::Campaign`] runs seeds (module, wasm mutants, artifact
//!   mutants) and counts; the `myriad-fuzz` binary runs campaigns for a
//!   given time in child processes and writes regression files;
//! - [`diff::Runner::run`] compares one module;
//! - [`regressions`] reads and replays regression files.

pub mod campaign;
pub mod diff;
pub mod gen;
pub mod info;
pub mod loaders;
pub mod model;
pub mod myriad;
pub mod oracle;
pub mod regressions;
pub mod rng;
pub mod shrink;
pub mod stats;
