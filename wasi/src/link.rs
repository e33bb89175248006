//! Binding the WASI preview1 functions on a runtime [`Linker`]: each one
//! reads the calling instance's [`WasiCtx`] from its embedder data
//! (`Linker::instantiate(.., Some(Box::new(ctx)))`) and its memory.

use crate::{WasiCtx, WasiFunc, WasiOutcome};
use myriad_runtime::{FuncType, HostAction, Linker};

/// Most parameters a WASI preview1 function takes.
const MAX_PARAMS: usize = 16;

/// Define every WASI preview1 function on `linker` (module
/// [`crate::MODULE`]). An instance without a [`WasiCtx`] as its embedder
/// data traps when it calls one.
pub fn add_to_linker(linker: &mut Linker) {
    for &f in WasiFunc::ALL {
        let ty = FuncType {
            params: f.params().to_vec(),
            results: f.results().to_vec(),
        };
        linker.func(crate::MODULE, f.name(), ty, move |caller, cells| {
            let n = f.params().len().min(MAX_PARAMS);
            let mut args = [0u64; MAX_PARAMS];
            args[..n].copy_from_slice(&cells[..n]);
            let (memory, ctx) = caller.memory_and_data::<WasiCtx>();
            let Some(ctx) = ctx else {
                return HostAction::Trap("the instance has no WASI context".into());
            };
            match ctx.call(f, memory, &args[..n]) {
                WasiOutcome::Return(errno) => {
                    if let Some(c) = cells.first_mut() {
                        *c = u64::from(errno);
                    }
                    HostAction::Return
                }
                WasiOutcome::Exit(code) => HostAction::Exit(code as i32),
                WasiOutcome::Yield => {
                    if let Some(c) = cells.first_mut() {
                        *c = 0;
                    }
                    HostAction::Yield
                }
                WasiOutcome::Sleep(wait) => {
                    if let Some(c) = cells.first_mut() {
                        *c = 0;
                    }
                    HostAction::Sleep(wait)
                }
            }
        });
    }
}
