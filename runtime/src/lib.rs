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
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod cache;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod externs;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod fuel;
/// Link groups: lifetime of instances that share function references.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub(crate) mod group;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod host;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod host_call;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod instance;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod linker;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod module;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod region;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod signals;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod switch;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod table;
pub mod vmctx;

pub use myriad_abi::{FuncType, TrapKind, ValType};

/// A resource limit that ended an instance.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Its fuel budget was spent.
    Fuel = 1,
    /// It tried to grow its memory past its memory limit.
    Memory = 2,
    /// Its CPU-time budget was spent (enforced by the scheduler).
    CpuTime = 3,
    /// Its wall-clock deadline passed (enforced by the scheduler).
    Deadline = 4,
}

impl Limit {
    /// The limit with numeric code `code`.
    pub fn from_code(code: u32) -> Option<Limit> {
        [Limit::Fuel, Limit::Memory, Limit::CpuTime, Limit::Deadline]
            .into_iter()
            .find(|l| *l as u32 == code)
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::Fuel => "fuel budget spent",
            Limit::Memory => "memory limit exceeded",
            Limit::CpuTime => "CPU-time budget spent",
            Limit::Deadline => "deadline passed",
        })
    }
}
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub use {
    account::{HasMemoryAccount, MemoryAccount},
    cache::{default_cache_dir, CacheDir, CacheError},
    externs::{Extern, ExternError, Func, Global, Memory, Tag, TagError, WasmFunc},
    fuel::{rdtsc, tsc_hz},
    host::{Caller, HostAction, HostFunc},
    instance::{Instance, InstantiateError, Outcome, Val},
    linker::{LinkError, Linker},
    module::{LoadError, Module},
    region::{Region, RegionConfig, RegionError},
    signals::thread_init,
    table::Table,
};
#[cfg(feature = "compiler")]
pub use {module::CacheOutcome, myriad_codegen::CompileConfig};
