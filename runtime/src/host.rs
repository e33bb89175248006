//! Host functions: Rust closures that guests call through function
//! imports.
//!
//! A function import bound to a host function points (in the importing
//! instance's vmctx) at the artifact's stub for that import; the stub stores
//! the arguments in a buffer on the guest stack and calls the `host_call`
//! builtin, which runs `host_import_impl` on the worker stack. That looks
//! up the instance's `HostState`, hands the closure a [`Caller`] (the
//! calling instance's memory and embedder data) and the value buffer, and
//! acts on the [`HostAction`] it returns: return to the guest, yield the
//! slice, sleep, continue in the next slice, park until
//! [`crate::Instance::unpark`], exit, or trap.
//!
//! A panicking host function traps its instance (the panic never unwinds
//! through guest frames).

use crate::vmctx::{status, VmCtx};
use myriad_abi::{FuncType, TrapKind};
use std::any::Any;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// What a host function asks of the runtime when it returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostAction {
    /// Return to the guest with the results written to the value buffer.
    Return,
    /// Return the results, but first end the slice: the instance goes back
    /// to its scheduler's queue (WASI `sched_yield`).
    Yield,
    /// Return the results, but first end the slice, and do not run the
    /// instance again for this long (WASI `poll_oneoff` on a clock). The
    /// slice ends in [`crate::Outcome::Sleeping`] with the wake-up instant;
    /// a scheduler keeps the instance off its queues until then, so a
    /// sleeping instance costs no CPU and blocks no worker.
    Sleep(std::time::Duration),
    /// End the slice without returning to the guest, and call this host
    /// function again, with the same arguments, when the instance next
    /// runs. For work too long for one slice: do a part, keep the progress
    /// in the host function's own state (e.g. the embedder data), and
    /// return `Continue` until the rest fits (check
    /// [`Caller::slice_over`] between parts). The guest sees one call.
    /// The results are read only from the call that returns something
    /// else.
    Continue,
    /// Suspend the instance until the embedder calls
    /// [`crate::Instance::unpark`] with the results. A parked instance uses
    /// no CPU and sits in no queue.
    Park,
    /// End the instance with this exit code (WASI `proc_exit`).
    Exit(i32),
    /// End the instance with a trap carrying this message.
    Trap(String),
}

/// The signature of a host function body: the caller's context and the
/// value buffer, which holds the arguments (raw 8-byte cells, i32/f32
/// zero-extended) on entry and must hold the results on return.
pub type HostFnBody = dyn Fn(&mut Caller<'_>, &mut [u64]) -> HostAction + Send + Sync;

/// A host function with its wasm signature. Cheap to clone: one reference
/// count (instantiation does not clone it at all when the imports are an
/// [`crate::Imports`] set).
#[derive(Clone)]
pub struct HostFunc {
    inner: Arc<HostFuncInner>,
}

/// What a [`HostFunc`] shares among its clones.
struct HostFuncInner {
    ty: FuncType,
    body: Box<HostFnBody>,
    /// Bit `i` set when result `i` is a `funcref`; `None` when a result
    /// past the 32nd is one (not supported: such a call traps, since the
    /// mask that lets `unpark` check the values has 32 bits).
    ref_results: Option<u32>,
}

impl HostFunc {
    /// A host function of type `ty` running `body`. The value buffer
    /// handed to `body` has `max(params, results)` cells.
    pub fn new(
        ty: FuncType,
        body: impl Fn(&mut Caller<'_>, &mut [u64]) -> HostAction + Send + Sync + 'static,
    ) -> HostFunc {
        HostFunc {
            inner: Arc::new(HostFuncInner {
                ref_results: crate::table::func_ref_mask(&ty.results),
                ty,
                body: Box::new(body),
            }),
        }
    }

    /// The function's wasm signature.
    pub fn ty(&self) -> &FuncType {
        &self.inner.ty
    }
}

impl std::fmt::Debug for HostFunc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostFunc")
            .field("ty", &self.inner.ty)
            .finish()
    }
}

/// The host function bound to each function import of a module (by
/// function-import index; `None` for a wasm function), shared by every
/// instance made from the same [`crate::Imports`].
pub(crate) type HostFuncs = Arc<[Option<HostFunc>]>;

/// Per-instance host state, pointed to by `vmctx.host_state`: the host
/// function bound to each function import (by import index), the
/// embedder's data, and the message of the last host trap.
pub(crate) struct HostState {
    pub funcs: HostFuncs,
    pub data: Option<Box<dyn Any + Send>>,
    pub message: Option<String>,
}

thread_local! {
    /// The wake-up instant of a [`HostAction::Sleep`] returned on this
    /// thread since the running green thread was switched in. Kept per
    /// thread rather than in a host state because the sleeping host
    /// function may belong to a linked instance that the resumed one
    /// called: the request belongs to the green thread, which runs on this
    /// thread until it switches back.
    static SLEEP_REQUEST: std::cell::Cell<Option<std::time::Instant>> =
        const { std::cell::Cell::new(None) };
}

/// Take (and clear) this thread's pending sleep request.
pub(crate) fn take_sleep_request() -> Option<std::time::Instant> {
    SLEEP_REQUEST.with(|c| c.take())
}

/// What a host function sees of the instance that called it.
pub struct Caller<'a> {
    vmctx: *mut VmCtx,
    exec: *const VmCtx,
    state: *mut HostState,
    /// Set by [`Caller::charge_all_time`]: the function charged all its
    /// time, and the runtime skips its clock read after the call.
    charged_all: bool,
    _life: PhantomData<&'a mut VmCtx>,
}

impl Caller<'_> {
    /// Whether the running slice is over: its deadline is near, a cancel
    /// is pending, or (in a fuel slice) its fuel is spent. A host function
    /// doing long work checks this between parts and returns
    /// [`HostAction::Continue`] when it is true, so it never holds a
    /// worker much past the slice.
    pub fn slice_over(&self) -> bool {
        // SAFETY: exec is the running green thread's live context.
        let ex = unsafe { &*self.exec };
        if ex.fuel_sliced != 0 {
            return ex.fuel <= 0;
        }
        crate::fuel::slice_due(ex)
    }

    /// Charge the running slice for `cycles` (TSC) of host work done for
    /// the guest. In a time slice the fuel counter loses what those
    /// cycles are worth at the guest's measured rate, so the next fuel
    /// check comes when the grant's time is used up, however much of it
    /// went to host calls: the slow path sizes grants from the rate at
    /// which the guest spent units, and a host call costs far more than a
    /// unit of guest code (a 16 KiB `random_get` after a tight loop: one
    /// slice of 20 µs ran 26 ms of host calls). The fuel budget is not
    /// charged. In a fuel slice nothing happens: fuel does not move
    /// during host calls there, so fuel slices stay deterministic. Host
    /// functions that can take microseconds (system calls, copies) call
    /// this with the time they took, as WASI's do. Whatever a function
    /// charges here, the runtime reads the clock after it returns, and a
    /// call that returned past the slice's deadline ends the grant (the
    /// guest's next fuel check yields): charging keeps the grants that
    /// follow sized right, the clock bounds the slice (see
    /// [`Caller::charge_all_time`] for hot, bounded functions).
    pub fn charge_time(&mut self, cycles: u64) {
        let exec = self.exec.cast_mut();
        // SAFETY: exec is the running green thread's live context; its
        // guest is suspended in this host call, and compiled code reloads
        // the fuel counter from it when the call returns.
        unsafe {
            if crate::fuel::time_sliced(exec) {
                crate::fuel::charge_time(exec, cycles);
            }
        }
    }

    /// Like [`Caller::charge_time`], for a function whose work is small
    /// and bounded and which charges all of it here: the runtime then
    /// skips the clock read it makes after every other host call (one
    /// TSC read, about 8 ns: 10 % of an actor message hop). The
    /// scheduler's `send` and `recv` use it; their work is a copy bounded
    /// by the mailbox limits and charged by its length. A function that
    /// takes much longer than it charges here holds a worker for the
    /// difference times the calls a grant buys: `myriad.spawn`, charged
    /// a flat 4,096 cycles while copying the guest's data segments,
    /// overran 20 µs slices by 2.6 ms when it was trusted so. Use
    /// `charge_time` unless the call is hot and its work bounded.
    pub fn charge_all_time(&mut self, cycles: u64) {
        self.charged_all = true;
        self.charge_time(cycles);
    }

    /// The calling instance's linear memory (empty without one).
    pub fn memory(&self) -> &[u8] {
        // SAFETY: vmctx is the live vmctx of the calling instance, whose
        // guest is suspended in this host call; memory_vmctx describes its
        // accessible heap (heap_base..heap_base+heap_len).
        unsafe {
            let m = &*(*self.vmctx).memory_vmctx;
            if m.heap_len == 0 {
                return &[];
            }
            std::slice::from_raw_parts(m.heap_base, m.heap_len as usize)
        }
    }

    /// The calling instance's linear memory, writable.
    pub fn memory_mut(&mut self) -> &mut [u8] {
        self.memory_and_data::<()>().0
    }

    /// The embedder data given at instantiation, if it is a `T`.
    pub fn data<T: 'static>(&mut self) -> Option<&mut T> {
        self.memory_and_data::<T>().1
    }

    /// The memory and the embedder data at once (both mutable), for host
    /// functions such as WASI's that move bytes between the two.
    pub fn memory_and_data<T: 'static>(&mut self) -> (&mut [u8], Option<&mut T>) {
        // SAFETY: as in `memory`; the heap and the host state are disjoint
        // allocations, and &mut self makes this the only borrow of either.
        unsafe {
            let m = &*(*self.vmctx).memory_vmctx;
            let mem: &mut [u8] = if m.heap_len == 0 {
                &mut []
            } else {
                std::slice::from_raw_parts_mut(m.heap_base, m.heap_len as usize)
            };
            let data = self
                .state
                .as_mut()
                .and_then(|s| s.data.as_mut())
                .and_then(|d| d.downcast_mut::<T>());
            (mem, data)
        }
    }
}

/// The `host_call` builtin, run on the worker stack by the host-call
/// trampoline: call host import `import` of the instance at `vmctx` with
/// the value buffer at `values`, on behalf of the green thread `exec`.
/// Leaves `exec.status` at `RUNNING` to return to the guest, or sets it to
/// suspend (yield, park) or end (exit, trap) the green thread.
pub(crate) extern "C" fn host_import_impl(
    vmctx: *mut VmCtx,
    exec: *mut VmCtx,
    import: u64,
    values: u64,
) -> u64 {
    // SAFETY: compiled code passes the calling instance's live vmctx and
    // the running green thread's exec; the host state (if any) is owned by
    // that instance and outlives the call; `values` is the stub's buffer of
    // max(params, results) cells for this import's signature (the stub and
    // the binding were built from the same metadata).
    unsafe {
        let ex = &mut *exec;
        let state = (*vmctx).host_state.cast::<HostState>();
        // The host state's table, through the vmctx (see `host_funcs`).
        let funcs = (*vmctx).host_funcs.cast::<Option<HostFunc>>();
        let func = if funcs.is_null() {
            None
        } else {
            std::slice::from_raw_parts(funcs, (*vmctx).host_funcs_len)
                .get(import as usize)
                .and_then(|f| f.as_ref())
        };
        let Some(func) = func else {
            trap(
                ex,
                state,
                format!("function import {import} has no host function"),
            );
            return 0;
        };
        let func = &*func.inner;
        let ty = &func.ty;
        let cells = ty.params.len().max(ty.results.len()).max(1);
        let vals = std::slice::from_raw_parts_mut(values as *mut u64, cells);
        // The buffer is on the instance stack: cells past the parameters
        // hold whatever an earlier frame (or the slot's previous tenant)
        // left there. A host function that does not write a result must
        // hand the guest zero, not that.
        vals[ty.params.len()..].fill(0);
        let body: *const HostFnBody = &*func.body;
        ex.host_values = values as *mut u64;
        ex.host_results = ty.results.len() as u32;
        let Some(ref_results) = func.ref_results else {
            trap(
                ex,
                state,
                "host functions with a funcref result past the 32nd are not supported".into(),
            );
            return 0;
        };
        ex.host_ref_results = ref_results;
        let mut caller = Caller {
            vmctx,
            exec,
            state,
            charged_all: false,
            _life: PhantomData,
        };
        // `body` stays valid: the function table is not changed while the
        // instance lives.
        let action = catch_unwind(AssertUnwindSafe(|| (*body)(&mut caller, vals)));
        let charged_all = caller.charged_all;
        // Every call costs time the guest's fuel rate does not know of
        // (see `fuel::HOST_CALL_CYCLES`).
        caller.charge_time(crate::fuel::HOST_CALL_CYCLES);
        // A function may have taken any amount of time, whatever it
        // charged: when it returns to the guest past the slice's deadline
        // (or with a cancel pending), the fuel counter is zeroed, so the
        // guest's next check takes the slow path, which yields. Without
        // this an embedder's host function of microseconds that did not
        // call `Caller::charge_time` was charged only the fixed cycles
        // above, and a grant sized for cheap guest units bought hundreds
        // of its calls (a 20 µs slice of 10 µs calls ran 1.5 ms); and
        // trusting the functions that charged themselves let
        // `myriad.spawn`, charged a flat 4,096 cycles, copy megabytes of
        // data segments per call (a 20 µs slice ran 3 ms). One TSC read,
        // skipped only for functions that say they charged all their
        // time (`Caller::charge_all_time`). (`exec` is live, as the
        // block's SAFETY says, and no reference to it is held here.)
        if !charged_all && matches!(action, Ok(HostAction::Return)) {
            crate::fuel::slice_over(exec);
        }
        // Taken again: the host function may have written exec through
        // `caller` (`Caller::charge_time`), as did the line above, which
        // ends the borrow taken before the call.
        let ex = &mut *exec;
        // A funcref result must be null or the calling instance's own
        // function reference: anything else is a forged code pointer.
        let returns = matches!(
            action,
            Ok(HostAction::Return | HostAction::Yield | HostAction::Sleep(_))
        );
        if returns && ref_results != 0 {
            let forged = vals.iter().enumerate().any(|(i, b)| {
                i < 32 && ref_results >> i & 1 == 1 && !crate::table::vm_owns_func_ref(vmctx, *b)
            });
            if forged {
                trap(
                    ex,
                    state,
                    "host function returned a function reference that does not belong to \
                     the calling instance"
                        .into(),
                );
                return 0;
            }
        }
        match action {
            Ok(HostAction::Return) => {}
            Ok(HostAction::Yield) => {
                ex.yield_tsc = crate::fuel::rdtsc();
                ex.status = status::YIELDED;
            }
            Ok(HostAction::Sleep(d)) => {
                let now = std::time::Instant::now();
                // A duration past what `Instant` can hold sleeps "forever"
                // (a century).
                let at = now
                    .checked_add(d)
                    .or_else(|| now.checked_add(std::time::Duration::from_secs(100 * 365 * 86_400)))
                    .unwrap_or(now);
                SLEEP_REQUEST.with(|c| c.set(Some(at)));
                ex.sleep_requested = 1;
                ex.yield_tsc = crate::fuel::rdtsc();
                ex.status = status::YIELDED;
            }
            Ok(HostAction::Continue) => {
                ex.again_fn = host_import_impl as *const () as usize;
                ex.again_vmctx = vmctx;
                ex.again_arg = import;
                ex.again_arg2 = values;
                ex.yield_tsc = crate::fuel::rdtsc();
                ex.status = status::YIELDED;
            }
            Ok(HostAction::Park) => ex.status = status::PARKED,
            Ok(HostAction::Exit(code)) => {
                ex.exit_code = code;
                ex.status = status::EXITED;
            }
            Ok(HostAction::Trap(msg)) => trap(ex, state, msg),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string payload".into());
                trap(ex, state, format!("host function panicked: {what}"));
            }
        }
        0
    }
}

/// End the green thread with a host trap, keeping the message on the
/// calling instance's host state.
///
/// # Safety
///
/// `state` is null or the calling instance's live host state.
unsafe fn trap(ex: &mut VmCtx, state: *mut HostState, msg: String) {
    ex.trap_kind = TrapKind::HostTrap as u32;
    ex.status = status::TRAPPED;
    // SAFETY: per the contract.
    if let Some(s) = unsafe { state.as_mut() } {
        s.message = Some(msg);
    }
}
