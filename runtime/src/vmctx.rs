//! The per-instance context block (`vmctx`) as the runtime sees it.
//!
//! The first [`abi::vmctx::ABI_HEADER_SIZE`] bytes are the ABI header that
//! compiled code reads and writes (see `myriad_abi::vmctx`); the rest up
//! to [`abi::vmctx::GLOBALS`] is private to the runtime. Globals and import
//! records follow. A vmctx lives inside its instance's slot, right above
//! the stack top.
//!
//! A `VmCtx` is also its instance's execution context (`exec`): the fuel,
//! stack limit, saved stack pointers, slice deadline and status of the
//! green thread that runs the instance's calls. Code of another instance
//! called from it (through an import or a shared table) runs with this
//! `exec` and its own vmctx.

use crate::account::MemoryAccount;
use myriad_abi as abi;
use std::sync::atomic::AtomicU32;

/// Values the vmctx's own buffer ([`VmCtx::values`]) holds; a call with
/// more parameters or results uses a buffer its `Instance` allocates
/// (`VmCtx::values_ptr` points at the one in use).
pub const MAX_VALUES: usize = 12;

/// One entry of a module's trap table: an absolute code address and the
/// trap kind (`abi::TrapKind as u8`). Tables are sorted by `pc`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapEntry {
    /// Absolute address of the trapping instruction.
    pub pc: usize,
    /// `abi::TrapKind` code.
    pub kind: u8,
}

/// A table descriptor as compiled code reads it (`abi::vmctx::TABLES`).
#[repr(C)]
#[derive(Debug)]
pub struct TableDesc {
    /// Element 0.
    pub base: *mut u64,
    /// Current length in elements.
    pub len: u64,
}

/// A funcref target (`abi::vmctx::FUNC_REF_SIZE` bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FuncRef {
    /// Code address of the function (`fn(vmctx, params...) -> results`).
    pub code: usize,
    /// vmctx to pass.
    pub vmctx: usize,
    /// Canonical type id of its signature.
    pub type_id: u64,
}

const _: () = {
    assert!(std::mem::size_of::<FuncRef>() == abi::vmctx::FUNC_REF_SIZE as usize);
    assert!(std::mem::size_of::<TableDesc>() == abi::vmctx::TABLE_DESC_SIZE as usize);
};

/// Instance status codes stored in [`VmCtx::status`].
pub mod status {
    /// Currently executing guest code.
    pub const RUNNING: u32 = 0;
    /// Suspended at a preemption point; can be resumed.
    pub const YIELDED: u32 = 1;
    /// The entry function returned; results are in `*values_ptr`.
    pub const FINISHED: u32 = 2;
    /// A trap ended the instance; the kind is in `trap_kind`.
    pub const TRAPPED: u32 = 3;
    /// A host function parked the instance: it runs again only after
    /// `Instance::unpark` supplies the host function's results.
    pub const PARKED: u32 = 4;
    /// A host function ended the instance with an exit code
    /// (`exit_code`), as WASI `proc_exit` does.
    pub const EXITED: u32 = 5;
    /// A resource limit ended the instance; which one is in `trap_kind`
    /// (a `crate::Limit` code).
    pub const LIMITED: u32 = 6;
}

/// The vmctx block. Field order and offsets of the header are fixed by the
/// ABI (checked at compile time below).
#[repr(C)]
pub struct VmCtx {
    // ---- ABI header: read and written by compiled code ----
    /// Remaining fuel (`abi::vmctx::FUEL`).
    pub fuel: i64,
    /// Lowest stack pointer the guest may use (`abi::vmctx::STACK_LIMIT`).
    pub stack_limit: u64,
    /// Linear memory base (`abi::vmctx::HEAP_BASE`).
    pub heap_base: *mut u8,
    /// Current linear memory length in bytes (`abi::vmctx::HEAP_LEN`).
    pub heap_len: u64,
    /// Builtin: fuel exhausted (`abi::vmctx::FN_FUEL_EXHAUSTED`).
    pub fn_fuel_exhausted: usize,
    /// Builtin: memory.grow (`abi::vmctx::FN_MEMORY_GROW`).
    pub fn_memory_grow: usize,
    /// Canonical type ids of the module's types (`abi::vmctx::TYPE_IDS`).
    pub type_ids: *const u32,
    /// Table descriptors (`abi::vmctx::TABLES`), or null.
    pub tables: *const TableDesc,
    /// FuncRef records (`abi::vmctx::FUNC_REFS`), or null.
    pub func_refs: *const FuncRef,
    /// Builtins `table.grow`, `table.fill`, `table.copy`, `table.init`,
    /// `elem.drop`, `memory.init`, `data.drop`
    /// (`abi::vmctx::FN_TABLE_GROW` ..= `FN_DATA_DROP`).
    pub fn_table: [usize; 7],
    /// Builtin: call a host function import (`abi::vmctx::FN_HOST_CALL`).
    pub fn_host_call: usize,
    /// Builtin: `memory.fill` (`abi::vmctx::FN_MEMORY_FILL`).
    pub fn_memory_fill: usize,
    /// Builtin: `memory.copy` (`abi::vmctx::FN_MEMORY_COPY`).
    pub fn_memory_copy: usize,
    /// The exec of the green thread running this instance's code
    /// (`abi::vmctx::EXEC`): this vmctx itself, or, while a linked
    /// instance runs, that instance's vmctx (see `crate::group`).
    /// Compiled code relies on it as on `stack_limit`: only the group's
    /// entry and exit write it.
    pub exec: *mut VmCtx,

    // ---- runtime-private ----
    /// Guest stack pointer saved while the instance is suspended.
    pub guest_sp: usize,
    /// Worker (host) stack pointer saved while the guest runs. Host code
    /// called from the guest runs below this address.
    pub host_sp: usize,
    /// TSC value at which the current slice ends.
    pub deadline_tsc: u64,
    /// TSC read by the fuel slow path that decided to yield.
    pub yield_tsc: u64,
    /// TSC at the last fuel slow-path check (or slice start).
    pub last_check_tsc: u64,
    /// Fuel handed out at the last refill.
    pub fuel_granted: i64,
    /// One of [`status`]'s codes.
    pub status: u32,
    /// `abi::TrapKind` code when `status == TRAPPED`.
    pub trap_kind: u32,
    /// Set to non-zero by another thread to ask the instance to stop at its
    /// next preemption point.
    pub cancel: AtomicU32,
    /// log2 of the memory's page size.
    pub page_size_log2: u8,
    // The three flags of asynchronous preemption sit here, beside
    // `status` and `cancel`, on a line every slice touches anyway (at the
    // struct's end they cost the million-instance paths a cache line per
    // slice).
    /// Non-zero while the slice is an *asynchronous* time slice
    /// (`fuel::begin_async_slice`): the fuel counter holds a backstop of
    /// several times what the slice is worth, so no fuel check ends the
    /// slice; the thread's preemption timer does, by a signal (`signals`,
    /// "Asynchronous preemption").
    pub async_slice: u8,
    /// Non-zero while the green thread is suspended where a preemption
    /// signal stopped it (`arch::async_preempt`): at an arbitrary
    /// instruction, where compiled code may hold a copy of the fuel
    /// counter that it will write back over `r15` (the signal avoids such
    /// places, `arch::in_counter_window`). The next slice lowers the
    /// counter only through `pending_fuel` (`fuel::set_counter`).
    pub async_suspended: u8,
    /// Non-zero when `pending_fuel` waits to become the counter: set when
    /// a slice that wants a counter of its own resumes an asynchronously
    /// suspended green thread. Applied (and the old counter's spending
    /// counted) by `fuel::unkick_vm` at the next entry from compiled code.
    pub fuel_pending: u8,
    /// Most bytes the heap may grow to in this instance:
    /// `min(declared maximum, slot heap capacity)`.
    pub heap_capacity: u64,
    /// Memory limit in bytes: growing past it ends the instance with
    /// `Limit::Memory` (`u64::MAX`: none).
    pub heap_limit: u64,
    /// The stack limit of this instance's own stack (its slot's). The
    /// ABI field `stack_limit` holds it too, except while an instance
    /// linked to this one runs (see `crate::group`).
    pub own_stack_limit: u64,
    /// Guard mode only: bytes from `heap_base` that are currently
    /// accessible (page aligned, `>= heap_len`). 0 outside guard mode.
    pub heap_open: u64,
    /// Fuel units per TSC cycle observed by the fuel slow path, 16.16 fixed
    /// point (0: not measured yet). Kept across slices.
    pub fuel_rate: u64,
    /// Fuel slow-path calls since instantiation (diagnostics).
    pub slow_path_calls: u64,
    /// Deadline kicks of this green thread that marked its counter
    /// (diagnostics; see `signals`, "The deadline kick").
    pub deadline_kicks: u64,
    /// The module's sorted trap table (for the signal handler).
    pub trap_table: *const TrapEntry,
    /// Entries in `trap_table`.
    pub trap_table_len: usize,
    /// Array-call wrapper of the entry export.
    pub entry: usize,
    /// Array-call wrapper of the start function, run before the entry
    /// (called like `entry`: `(vmctx, vmctx, values_ptr)`), or 0.
    pub start: usize,
    /// Non-zero when the slot lives in a guard-mode region (memory.grow
    /// must open the new pages).
    pub guard_mode: u32,
    /// While a host function call is in progress or parked: bit `i` set
    /// when its result `i` is a `funcref` (checked by `Instance::unpark`).
    /// Also keeps `values` 8-byte aligned.
    pub host_ref_results: u32,
    /// The instance's `table::TableState` (owned by the `Instance`), or null.
    pub table_state: *mut std::ffi::c_void,
    /// The vmctx whose heap fields describe this instance's memory: this
    /// one, or the exporter's for an imported memory.
    pub memory_vmctx: *mut VmCtx,
    /// The instance's `host::HostState` (host functions bound to its
    /// imports, embedder data), or null.
    pub host_state: *mut std::ffi::c_void,
    /// The host state's function table (`host::HostFuncs`: an
    /// `Option<HostFunc>` per function import), or null; here so a host
    /// call reads it from the vmctx lines it touches anyway instead of
    /// missing the cache on the host state.
    pub host_funcs: *const std::ffi::c_void,
    /// Entries in `host_funcs`.
    pub host_funcs_len: usize,
    /// While parked or inside a host call: the stub's value buffer, where
    /// the host function's results go.
    pub host_values: *mut u64,
    /// Exit code when `status == EXITED`.
    pub exit_code: i32,
    /// While parked: how many result cells the parked host function
    /// returns (what `Instance::unpark` must supply).
    pub host_results: u32,
    /// Fuel units consumed by completed refills (for fuel budgets): the
    /// slow path adds what each refill's grant used.
    pub fuel_used: u64,
    /// Fuel budget: when `fuel_used` passes it the instance ends with
    /// `Limit::Fuel` (`u64::MAX`: none).
    pub fuel_limit: u64,
    /// Arguments in, results out, for an entry export of at most
    /// [`MAX_VALUES`] values (see `values_ptr`).
    pub values: [u64; MAX_VALUES],
    /// Non-zero while the slice is a fuel slice ([`crate::Instance::resume_fuel`]):
    /// running out of fuel ends the slice instead of refilling, and the TSC
    /// deadline is not consulted.
    pub fuel_sliced: u32,
    /// Non-zero when a host function of the running green thread returned
    /// `HostAction::Sleep` (its wake-up instant waits in the thread's sleep
    /// request, `host::take_sleep_request`). Lets the end of every slice
    /// skip the thread-local unless a sleep was asked for.
    pub sleep_requested: u32,
    /// A host function asked to be called again ([`crate::HostAction::Continue`]):
    /// the function the host-call trampoline calls again, with the
    /// arguments below, when the green thread is next resumed; 0 when
    /// nothing is pending.
    pub again_fn: usize,
    /// First argument (`vmctx`) of the pending repeated call.
    pub again_vmctx: *mut VmCtx,
    /// Third argument of the pending repeated call.
    pub again_arg: u64,
    /// Fifth argument of the pending repeated call.
    pub again_arg2: u64,
    /// The instance's [`crate::MemoryAccount`], or null: memory the
    /// embedder holds for the instance counts against `heap_limit`, and
    /// growth publishes the instance's own use there. Kept alive by the
    /// instance's core.
    pub account: *const MemoryAccount,
    /// The value buffer the entry routine hands the export's wrapper:
    /// `values` above, or a larger buffer the `Instance` owns for an
    /// export with more than [`MAX_VALUES`] parameters or results.
    pub values_ptr: *mut u64,
    /// The counter the resumed slice wants (see `fuel_pending`).
    pub pending_fuel: i64,
    /// Slices ended by asynchronous preemption (diagnostics).
    pub async_preempts: u64,
}

// The header must match the ABI exactly; the private part must fit below
// the globals.
const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(VmCtx, fuel) == abi::vmctx::FUEL as usize);
    assert!(offset_of!(VmCtx, stack_limit) == abi::vmctx::STACK_LIMIT as usize);
    assert!(offset_of!(VmCtx, heap_base) == abi::vmctx::HEAP_BASE as usize);
    assert!(offset_of!(VmCtx, heap_len) == abi::vmctx::HEAP_LEN as usize);
    assert!(offset_of!(VmCtx, fn_fuel_exhausted) == abi::vmctx::FN_FUEL_EXHAUSTED as usize);
    assert!(offset_of!(VmCtx, fn_memory_grow) == abi::vmctx::FN_MEMORY_GROW as usize);
    assert!(offset_of!(VmCtx, type_ids) == abi::vmctx::TYPE_IDS as usize);
    assert!(offset_of!(VmCtx, tables) == abi::vmctx::TABLES as usize);
    assert!(offset_of!(VmCtx, func_refs) == abi::vmctx::FUNC_REFS as usize);
    assert!(offset_of!(VmCtx, fn_table) == abi::vmctx::FN_TABLE_GROW as usize);
    assert!(offset_of!(VmCtx, fn_table) + 8 == abi::vmctx::FN_TABLE_FILL as usize);
    assert!(offset_of!(VmCtx, fn_table) + 16 == abi::vmctx::FN_TABLE_COPY as usize);
    assert!(offset_of!(VmCtx, fn_table) + 24 == abi::vmctx::FN_TABLE_INIT as usize);
    assert!(offset_of!(VmCtx, fn_table) + 32 == abi::vmctx::FN_ELEM_DROP as usize);
    assert!(offset_of!(VmCtx, fn_table) + 40 == abi::vmctx::FN_MEMORY_INIT as usize);
    assert!(offset_of!(VmCtx, fn_table) + 48 == abi::vmctx::FN_DATA_DROP as usize);
    assert!(offset_of!(VmCtx, fn_host_call) == abi::vmctx::FN_HOST_CALL as usize);
    assert!(offset_of!(VmCtx, fn_memory_fill) == abi::vmctx::FN_MEMORY_FILL as usize);
    assert!(offset_of!(VmCtx, fn_memory_copy) == abi::vmctx::FN_MEMORY_COPY as usize);
    assert!(offset_of!(VmCtx, exec) == abi::vmctx::EXEC as usize);
    assert!(offset_of!(VmCtx, guest_sp) == abi::vmctx::ABI_HEADER_SIZE);
    assert!(std::mem::size_of::<VmCtx>() <= abi::vmctx::GLOBALS as usize);
};
