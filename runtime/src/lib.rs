//! The Myriad runtime: artifact loading, the slot region, instances,
//! context switching, traps and host calls.
//!
//! x86_64 Linux only. The pieces:
//!
//! * [`region`]: one mapping holding every instance slot (stack, vmctx, heap).
//! * [`module`]: loading and checking compiled artifacts.
//! * [`cache`]: the checked, per-user artifact cache directory.
//! * [`instance`]: instantiate, resume in slices, tear down.
//! * [`switch`]: the register-only context switch and instance entry.
//! * [`host_call`]: builtins (fuel, memory.grow) run on the worker stack.
//! * [`host`]: host functions guests call through imports.
//! * [`linker`]: resolving a module's imports by name.
//! * [`fuel`]: the fuel-gated deadline check and TSC helpers.
//! * [`signals`]: turning faults in compiled code into traps.
//! * [`vmctx`]: the per-instance context block.

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!("myriad-runtime supports only x86_64 Linux");

pub mod account;
pub mod arch;
pub(crate) mod builtins;
pub mod cache;
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
pub mod table;
pub mod traps;
pub mod types;
pub mod values;
pub mod vmctx;

pub use myriad_abi::{FuncType, TrapKind, ValType};
pub use values::{Limit, Outcome, Val};

pub use {
    account::{HasMemoryAccount, MemoryAccount},
    cache::{default_cache_dir, CacheDir, CacheError},
    externs::{Extern, ExternError, Func, Global, Memory, Tag, TagError, WasmFunc},
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
