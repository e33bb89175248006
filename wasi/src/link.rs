//! Binding the WASI preview1 functions on a runtime [`Linker`]: each one
//! reads the calling instance's [`WasiCtx`] from its embedder data
//! (`Linker::instantiate(.., Some(Box::new(ctx)))`) and its memory.
//!
//! A call that works in parts ([`WasiOutcome::Continue`]: a long
//! `random_get` or `fd_readdir`) runs part after part while the slice
//! lasts ([`Caller::slice_over`](myriad_runtime::Caller::slice_over)), at
//! most [`MAX_PARTS_PER_SLICE`] of them, then ends the slice with
//! [`HostAction::Continue`]; the runtime calls the host function again,
//! with the same argument cells, when the instance next runs. The
//! [`Continuation`] of the unfinished call is kept in the upper half of
//! the first argument cell (an `i32`, which the runtime hands over
//! zero-extended, so a call from the guest always has 0 there): only the
//! repeated call carries it, so a new call from the guest never picks up
//! another call's progress.

use crate::{Continuation, WasiCtx, WasiFunc, WasiOutcome};
use myriad_abi::ValType;
use myriad_runtime::{Caller, FuncType, HostAction, Linker};

/// Most parameters a WASI preview1 function takes.
const MAX_PARAMS: usize = 16;

/// Most parts of a call done in one slice (16, e.g. 256 KiB of
/// `random_get`, about 1 ms). In time slices [`Caller::slice_over`]
/// usually ends the slice first; in fuel slices the fuel does not move
/// during a host call, so this is what bounds the time one slice spends
/// in it.
///
/// [`Caller::slice_over`]: myriad_runtime::Caller::slice_over
pub const MAX_PARTS_PER_SLICE: u32 = 16;

/// Define every WASI preview1 function on `linker` (module
/// [`crate::MODULE`]). An instance without a [`WasiCtx`] as its embedder
/// data traps when it calls one.
pub fn add_to_linker(linker: &mut Linker) {
    for &f in WasiFunc::ALL {
        let ty = FuncType {
            params: f.params().to_vec(),
            results: f.results().to_vec(),
        };
        // Only a function whose first parameter is an i32 can keep a
        // continuation in its first cell (every one that works in parts).
        let can_continue = f.params().first() == Some(&ValType::I32);
        linker.func(crate::MODULE, f.name(), ty, move |caller, cells| {
            // Every WASI call is charged its time: see
            // `Caller::charge_time` (two TSC reads, about 50 ns, beside
            // calls that mostly make system calls).
            let t0 = myriad_runtime::rdtsc();
            let action = call(f, can_continue, caller, cells);
            caller.charge_time(myriad_runtime::rdtsc().saturating_sub(t0));
            action
        });
    }
}

/// One call of WASI function `f` from the guest (or its repetition, for
/// a call that works in parts): run it part after part while the slice
/// lasts, and hand its outcome to the runtime.
fn call(f: WasiFunc, can_continue: bool, caller: &mut Caller<'_>, cells: &mut [u64]) -> HostAction {
    let n = f.params().len().min(MAX_PARAMS);
    let mut args = [0u64; MAX_PARAMS];
    args[..n].copy_from_slice(&cells[..n]);
    let mut cont = None;
    if can_continue {
        cont = Continuation::from_raw((args[0] >> 32) as u32);
        args[0] &= u64::from(u32::MAX);
    }
    let mut parts = 0u32;
    loop {
        let (memory, ctx) = caller.memory_and_data::<WasiCtx>();
        let Some(ctx) = ctx else {
            return HostAction::Trap("the instance has no WASI context".into());
        };
        let outcome = match cont {
            Some(c) => ctx.call_again(f, memory, &args[..n], c),
            None => ctx.call(f, memory, &args[..n]),
        };
        let result = match outcome {
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
            WasiOutcome::Continue(c) => {
                if !can_continue {
                    return HostAction::Trap(format!("WASI {} cannot continue a call", f.name()));
                }
                parts += 1;
                if parts >= MAX_PARTS_PER_SLICE || caller.slice_over() {
                    // The low half (the argument) stays as it is.
                    cells[0] = (cells[0] & u64::from(u32::MAX)) | (u64::from(c.to_raw()) << 32);
                    return HostAction::Continue;
                }
                cont = Some(c);
                continue;
            }
        };
        return result;
    }
}
