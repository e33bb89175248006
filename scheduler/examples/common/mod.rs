//! What the actor examples (`token_ring`, `skynet`, `lifecycles`) share:
//! positional arguments, compiling a guest with the messaging API linked,
//! and reading the process's memory use.

// Each example compiles its own copy and uses only some of these.
#![allow(dead_code)]

use myriad_runtime::{CompileConfig, Linker, Module};
use myriad_scheduler::messaging;
use std::str::FromStr;
use std::sync::Arc;

/// The next positional argument parsed as a `T`, or `default` if there
/// is none.
pub fn arg<T: FromStr>(
    args: &mut impl Iterator<Item = String>,
    default: T,
) -> Result<T, Box<dyn std::error::Error>>
where
    T::Err: std::error::Error + 'static,
{
    Ok(args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(default))
}

/// `wat` compiled through the per-user cache (created 0700; refused if
/// others can write to it), and a linker with the `myriad` messaging API.
pub fn actor_module(wat: &str) -> Result<(Arc<Module>, Arc<Linker>), Box<dyn std::error::Error>> {
    let cache = myriad_runtime::default_cache_dir();
    let module = Module::compile(&wat::parse_str(wat)?, &CompileConfig::default(), &cache)?;
    let mut linker = Linker::new();
    messaging::add_to_linker(&mut linker);
    Ok((Arc::new(module), Arc::new(linker)))
}

/// A `/proc/self/status` figure in KiB (`VmRSS:`, `VmHWM:`), 0 if absent.
pub fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
