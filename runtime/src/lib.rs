//! The Myriad runtime: artifact loading, the slot region, instances,
//! context switching, traps and host calls. x86_64 Linux only.
//!
//! The modules form layers, each using only those listed before it (a
//! test, `tests/layers.rs`, keeps it so):
//!
//! 1. Records and leaves: [`values`] (values, outcomes, limits),
//!    [`account`] (memory charged to an instance's limit), [`vmctx`] (the
//!    per-instance context block and the records it points to), [`types`]
//!    (canonical function types), [`region`] (one mapping holding every
//!    slot), [`cache`] (the checked, per-user artifact cache directory),
//!    `group` (lifetimes of linked instances), [`traps`] (trap tables of
//!    loaded modules), [`tsc`] (the time-stamp counter and its frequency),
//!    `elf` (what `dlopen` would do with a file, checked first).
//! 2. [`fuel`]: the fuel-gated deadline check, TSC conversions, and the fuel
//!    accounting of long builtins.
//! 3. [`module`]: loading, checking and (with the `compiler` feature)
//!    compiling artifacts.
//! 4. [`table`]: tables, function references and segment state.
//! 5. [`host`]: host functions guests call through imports.
//! 6. `builtins`: `memory.grow`, the memory-limit bookkeeping and the
//!    table and segment builtins, as Rust functions.
//! 7. [`arch`]: all the assembly: context switch, instance entry, the
//!    trampolines that run builtins and host functions on the worker stack,
//!    signal-context access.
//! 8. [`signals`]: turning faults in compiled code into traps; blocking
//!    asynchronous signals on threads that run guests.
//! 9. [`externs`]: what instances import and export.
//! 10. [`instance`]: instantiate, run in slices, park, tear down.
//! 11. [`linker`]: resolving a module's imports by name.

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!("myriad-runtime supports only x86_64 Linux");

pub mod account;
pub mod arch;
pub(crate) mod builtins;
pub mod cache;
/// The ELF structure of artifacts, checked before `dlopen`.
pub(crate) mod elf;
pub mod externs;
pub mod fuel;
/// Link groups: lifetime of instances that share function references.
pub(crate) mod group;
pub mod host;
pub mod instance;
pub mod linker;
pub mod module;
pub mod region;
pub mod signals;
mod sync;
pub mod table;
pub mod traps;
pub mod tsc;
pub mod types;
pub mod values;
pub mod vmctx;

pub use myriad_abi::{FuncType, TrapKind, ValType};
pub use values::{Limit, Outcome, Val};

pub use {
    account::{HasMemoryAccount, MemoryAccount},
    cache::{default_cache_dir, CacheDir, CacheError},
    externs::{Extern, ExternError, Func, Global, Imports, Memory, Tag, TagError, WasmFunc},
    fuel::{rdtsc, tsc_hz},
    host::{Caller, HostAction, HostFunc},
    instance::{Instance, InstantiateError},
    linker::{LinkError, Linker},
    module::{LoadError, Module},
    region::{Region, RegionConfig, RegionError},
    signals::thread_init,
    table::Table,
};
#[cfg(feature = "compiler")]
pub use {module::CacheOutcome, myriad_codegen::CompileConfig};
