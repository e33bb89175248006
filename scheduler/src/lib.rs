//! Myriad's scheduler: per-core worker threads that switch preemptively
//! among WebAssembly instances living in one slot region.
//!
//! ```no_run
//! use myriad_scheduler::{Scheduler, SchedulerConfig};
//! use myriad_runtime::{Module, Val};
//! use std::sync::Arc;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let wasm = std::fs::read("fib.wasm")?;
//! // A per-user cache directory; Module::compile creates it 0700 and refuses
//! // one that another user owns or could write to (such as /tmp itself).
//! let cache = myriad_runtime::default_cache_dir();
//! let module = Arc::new(Module::compile(&wasm, &Default::default(), &cache)?);
//! let sched = Scheduler::new(SchedulerConfig::default())?;
//! let h = sched.spawn(&module, "fib", &[Val::I32(20)])?;
//! println!("{:?}", h.join());
//! # Ok(()) }
//! ```

pub mod actors;
mod config;
mod handle;
pub mod messaging;
pub mod metrics;
mod scheduler;
mod send_cache;
mod shared;
mod sync;
mod timers;
mod worker;

pub use actors::{ActorError, ExitReason, SystemMessage};
pub use config::SchedulerConfig;
pub use handle::{
    InstanceError, InstanceHandle, InstanceResult, InstanceState, InstanceStats, Message,
    MessageKind, ResumeError, SendError, MESSAGE_OVERHEAD, RECV_TIMEOUT,
};
pub use messaging::current;
pub use metrics::{Metrics, Summary};
pub use myriad_runtime::Limit;
pub use scheduler::{Report, Scheduler, SchedulerError, SpawnError, SpawnOptions, Tenant};
