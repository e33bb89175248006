//! The instance ABI shared by compiled code and the runtime: `myriad-abi`.
//!
//! A crate of its own, so the runtime, the WASI layer and the command line
//! depend on the ABI without depending on the compiler, and an embedder can
//! load precompiled artifacts without linking Cranelift.
//!
//! Everything that both sides must agree on lives here and nowhere else:
//! the vmctx field offsets, the builtin table, trap kinds, the symbol names
//! in an artifact, and the artifact metadata format with its version.
//!
//! # vmctx and exec
//!
//! Every compiled function takes two context pointers before its wasm
//! parameters: `vmctx`, the instance whose code it is (memory, globals,
//! tables, imports), and `exec`, the execution context of the green thread
//! running it (fuel, stack limit, the host stack to run builtins on). When
//! an instance runs its own code, `exec == vmctx`: the execution fields are
//! the first bytes of every vmctx. A call into another instance (a function
//! import bound to another instance's export, or a `call_indirect` through
//! a shared table) passes the callee's vmctx and the caller's `exec`, so
//! fuel, the stack-limit check and preemption stay with the running green
//! thread.
//!
//! The first [`vmctx::ABI_HEADER_SIZE`] bytes of a vmctx are read and
//! written by compiled code at the offsets below; bytes up to
//! [`vmctx::GLOBALS`] belong to the runtime; defined globals follow, one
//! 8-byte cell each (i32 and f32 in the low 4 bytes, little endian), then
//! the import records (see [`vmctx::Layout`]).
//!
//! # Calling convention
//!
//! Functions use the platform C convention (System V on x86_64):
//! `fn(vmctx, params...) -> results`, the wasm parameters and results as
//! they are. The fuel counter is no parameter: it lives in Cranelift's
//! pinned register (`r15` on x86_64), which all compiled code reserves,
//! so it crosses calls, loops and merges without being passed, returned,
//! stored or loaded (ABI 14; it was a parameter and a result before). A
//! function takes one context pointer, its instance's vmctx, as
//! Wasmtime's do: the running green thread's exec (fuel, slice, status)
//! and stack limit are found through it ([`vmctx::EXEC`],
//! [`vmctx::STACK_LIMIT`]), which the runtime keeps pointed at the green
//! thread that runs the code. Each exported function (and the start
//! function) also gets an "array call" wrapper `fn(vmctx, exec, values:
//! *mut u64)` that reads its parameters from `values[..params]` and
//! writes its results to `values[..results]`, so the runtime calls every
//! export the same way. The wrapper keeps the caller's `r15` (callee-saved
//! in the host's convention), loads the fuel into it from `exec + FUEL`
//! before its call, stores it back after, and gives the caller its `r15`
//! back before it returns. Each function import gets a host stub with the
//! same signature as the import (symbol [`import_stub_symbol`]) that
//! stores the fuel register to `exec + FUEL` and its parameters in a
//! buffer, calls the `host_call` builtin and reloads the fuel register
//! from `exec`. The runtime points the import record at the stub for host
//! functions and at the exporter's code for wasm functions.
//!
//! # Builtins
//!
//! Compiled code calls out of wasm only through function pointers held in
//! vmctx. Before such a call it stores its fuel register to
//! `exec + FUEL` and reloads it afterwards; the `fuel_exhausted`
//! trampoline does both itself, so its call sites are only the call.
//!
//! # Modules
//!
//! * [`vmctx`]: the vmctx field offsets and the layout of globals and
//!   import records.
//! * [`types`]: value, function and reference types, trap kinds.
//! * [`decls`]: what a module declares (memory, tables, globals, segments,
//!   imports, exports, trap sites, compiler-made helpers).
//! * [`metadata`]: the artifact metadata as a whole, and its errors.
//! * [`encoding`]: the metadata's binary encoding.
//! * [`artifact`]: symbol names, markers and hashes of an artifact file.
//! * [`target`]: the CPU features compiled code may rely on.

pub mod artifact;
pub mod decls;
pub mod encoding;
pub mod metadata;
pub mod target;
pub mod types;
pub mod vmctx;

pub use artifact::*;
pub use decls::*;
pub use metadata::*;
pub use types::*;

/// Version of this ABI. Bump on any change to vmctx layout, builtin
/// signatures, symbol naming, trap kinds or the metadata encoding.
pub const ABI_VERSION: u32 = 14;

/// Result of a chunked bulk builtin (`table.fill/copy/init`,
/// `memory.init`): the whole operation is done.
pub const BULK_DONE: i64 = 0;
/// Result of a chunked bulk builtin: out of bounds, nothing was written;
/// compiled code traps.
pub const BULK_TRAP: i64 = 1;
/// Result of a chunked bulk builtin: one chunk is done and the argument
/// buffer now describes the rest; compiled code passes a fuel check (a
/// preemption point) and calls again with the same buffer.
pub const BULK_MORE: i64 = 2;

#[cfg(test)]
mod tests;
