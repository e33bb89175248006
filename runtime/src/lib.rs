//! The Myriad runtime: artifact loading, the slot region, instances,
//! context switching, traps and host calls.
//!
//! x86_64 Linux only. The pieces:
//!
//! * [`region`]: one mapping holding every instance slot (stack, vmctx, heap).
//! * [`module`]: loading and checking compiled artifacts.
//! * [`instance`]: instantiate, resume in slices, tear down.
//! * [`switch`]: the register-only context switch and instance entry.
//! * [`host_call`]: builtins (fuel, memory.grow) run on the worker stack.
//! * [`fuel`]: the fuel-gated deadline check and TSC helpers.
//! * [`signals`]: turning faults in compiled code into traps.
//! * [`vmctx`]: the per-instance context block.

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!("myriad-runtime supports only x86_64 Linux");

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod fuel;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod host_call;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod instance;
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

pub use myriad_codegen::abi::{FuncType, TrapKind, ValType};
pub use myriad_codegen::CompileConfig;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub use {
    fuel::{rdtsc, tsc_hz},
    instance::{Instance, InstantiateError, Outcome, Val},
    module::{LoadError, Module},
    region::{Region, RegionConfig, RegionError},
    signals::thread_init,
};
