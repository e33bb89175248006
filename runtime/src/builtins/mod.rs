//! The builtins compiled code calls through the vmctx's function pointers,
//! as Rust functions run on the worker stack by the host-call trampoline
//! (see [`crate::arch`]): `memory.grow` and the memory-limit bookkeeping
//! ([`memory`]), and the table and segment operations ([`table`]). Host
//! functions, the other callee of the trampoline, are in [`crate::host`];
//! the fuel slow path in [`crate::fuel`].

pub(crate) mod memory;
pub(crate) mod table;
