//! Instances: one slot, one module, export calls run in slices.
//!
//! [`Instance::instantiate`] takes a free slot, writes its vmctx (header,
//! runtime fields, initial globals) and copies the data segments into the
//! (already zero) heap. [`Instance::call`] arms an export call (arguments
//! into the vmctx, a fresh initial stack frame); nothing runs until
//! [`Instance::resume`], which switches into the guest and returns when
//! the guest yields at a preemption point, finishes, or traps. After a
//! call finishes or traps another can be armed on the same instance; memory
//! and globals persist. The start function runs once, before the first
//! export call (or alone, via [`Instance::call_start`]).
//! [`Instance::new`] = instantiate + call.
//! Dropping an instance (or [`Instance::teardown`]) zeroes the heap pages
//! the guest dirtied and returns the slot.
//!
//! The module is split by what happens to an instance:
//!
//! * `error`: why instantiation or a call is refused;
//! * `instantiate`: creation, in named phases (checks, slot and vmctx,
//!   imports, globals, tables, element segments, data segments, linking);
//! * `run`: arming calls, running slices, parking and unparking;
//! * `imports`: checking imports against the module and joining link
//!   groups;
//! * this file: the [`Instance`] and the core that owns its slot, its
//!   exports, limits and accessors.

mod error;
mod imports;
mod instantiate;
mod run;

pub use crate::region::{STACK_RESERVE, TRAMPOLINE_FRAME_MAX};
pub use error::InstantiateError;

use crate::arch;
use crate::externs::{Extern, Func, Global, GlobalOwner, KeepAlive, Memory, Tag, WasmFunc};
use crate::fuel;
use crate::group::GroupHandle;
use crate::host::HostState;
use crate::module::Module;
use crate::region::Region;
use crate::table::{FuncRef, TableState};
use crate::values::Val;
use crate::vmctx::{status, VmCtx};
use myriad_abi::{self as abi, ExportKind, ValType};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

/// A running (or runnable) instance. `Send`, not `Sync`: it may move
/// between worker threads between slices, but only one thread resumes it.
pub struct Instance {
    vm: NonNull<VmCtx>,
    core: Arc<Core>,
    /// Result types of the armed call: the export's signature in the
    /// module's own export table (`core.module` keeps it alive and never
    /// changes it), or an empty slice.
    results: *const [ValType],
    /// The start function has not been armed yet.
    start_pending: bool,
    /// Exception tags, imports first: the supplied ones, then one fresh
    /// identity per defined tag. Inert (nothing throws yet); kept for
    /// [`Instance::export`].
    tags: Box<[Tag]>,
    /// The value buffer of the armed call when its export has more than
    /// [`MAX_VALUES`] parameters or results (`vmctx.values_ptr` points
    /// here); `None` when the vmctx's own buffer is used.
    big_values: Option<Box<[u64]>>,
    /// Precise types of the globals supplied for the global imports (a
    /// re-export has the global's own type, not the import's declared
    /// one). Empty for modules without global imports.
    imported_global_types: Box<[Option<crate::types::CanonRef>]>,
    /// The instance's link group (`crate::group`): made when it links
    /// (imports through a channel that lets its function references flow
    /// out) or when an export is taken. Unlinked instances have none.
    group: OnceLock<GroupHandle>,
    /// The wake-up instant a host function's [`crate::HostAction::Sleep`]
    /// set in the last slice (reported as [`Outcome::Sleeping`]); `None`
    /// after any other slice.
    wake_at: Option<std::time::Instant>,
    /// Whether the armed call has been switched in at least once (a
    /// refused resume puts back the start function only of a call that
    /// never ran: see `run::refuse_deadlocked_call`).
    switched_in: bool,
}

/// Stack bytes above the saved register frame that
/// [`Instance::prefetch_host_return`] loads too (192 measured best: 128
/// and 384 both gave about 300 ns per ring hop).
const PREFETCH_ABOVE_FRAME: usize = 192;

/// What owns an instance's slot: held by the [`Instance`] and, once it is
/// linked, by its link group, so the slot is torn down (heap zeroed, slot
/// returned) only when the instance and its group are gone.
pub(crate) struct Core {
    vm: NonNull<VmCtx>,
    slot: u32,
    region: Arc<Region>,
    module: Arc<Module>,
    /// Tables, FuncRef records and segment state (pointed to by the
    /// vmctx), if the module needs them.
    tables: Option<Box<TableState>>,
    /// Host functions and embedder data (pointed to by the vmctx).
    host: Option<Box<HostState>>,
    /// The imported memory, if any (without an owner handle: the
    /// defining instance is in this instance's link group).
    memory_import: Option<Memory>,
    /// Host-made global cells and tags it imports, kept alive as long as
    /// this instance. (Tables are held by `tables`; what comes from other
    /// instances is kept alive by the link group both belong to.)
    _imports: Vec<KeepAlive>,
    /// The memory account the vmctx points to, if one was set
    /// ([`Instance::set_memory_account`]): kept as long as the vmctx.
    account: Option<Arc<dyn crate::account::HasMemoryAccount>>,
}

// SAFETY: the Core only hands out raw pointers; the vmctx is mutated only
// by the thread holding the Instance (or running a linked instance under
// the linking contract).
unsafe impl Send for Core {}
// SAFETY: as above.
unsafe impl Sync for Core {}

/// Refuse a compiled helper (export wrapper, import stub) whose frame of
/// `frame_bytes` cannot fit `region`'s stacks: it needs its frame plus the
/// return address and saved frame pointer of its callee above the stack
/// limit, and the smallest stack top (colour 0) is `stack_size` above the
/// slot base, `STACK_RESERVE` below the limit.
fn check_frame_fits(
    region: &Region,
    frame_bytes: u32,
    what: impl FnOnce() -> String,
) -> Result<(), InstantiateError> {
    let needed = frame_bytes as usize + 16;
    let available = region.stack_size().saturating_sub(STACK_RESERVE);
    if needed > available {
        return Err(InstantiateError::StackTooSmall {
            what: what(),
            needed,
            available,
        });
    }
    Ok(())
}

/// Look up `export` and check `args` against its signature.
fn check_call<'m>(
    module: &'m Module,
    export: &str,
    args: &[Val],
) -> Result<&'m crate::module::ExportInfo, InstantiateError> {
    let info = module
        .export(export)
        .ok_or_else(|| InstantiateError::NoSuchExport(export.to_owned()))?;
    let ty = &info.ty;
    if args.len() != ty.params.len() {
        return Err(InstantiateError::ArgumentCount {
            export: export.to_owned(),
            expected: ty.params.len(),
            given: args.len(),
        });
    }
    for (index, (a, p)) in args.iter().zip(&ty.params).enumerate() {
        if a.ty() != *p {
            return Err(InstantiateError::ArgumentType {
                export: export.to_owned(),
                index,
                expected: *p,
                given: a.ty(),
            });
        }
    }
    Ok(info)
}

// SAFETY: the instance exclusively owns its slot; the vmctx and stack are
// only touched by the thread that currently holds the Instance (resume
// takes &mut self). A suspended guest holds no thread-affine state: the
// signal stack and CURRENT are per thread and set on each resume.
unsafe impl Send for Instance {}

impl Instance {
    /// The export `name` as a value another instance can import: it keeps
    /// this instance's slot alive. `None` if there is no such export.
    pub fn export(&self, name: &str) -> Option<Extern> {
        let module = &self.core.module;
        let md = module.metadata();
        let e = md.exports.iter().find(|e| e.name == name)?;
        let vm_addr = self.vm.as_ptr().cast::<u8>();
        let layout = module.layout();
        let group = self.group();
        match e.kind {
            ExportKind::Func => {
                let ty = md.func_type(e.index)?.clone();
                let nif = md.num_imported_funcs() as u32;
                let (code, vmctx, type_id) = match e.index.checked_sub(nif) {
                    Some(d) => {
                        let t = md.func_types[d as usize];
                        (
                            module.func_addrs()[d as usize],
                            vm_addr as usize,
                            u64::from(module.type_ids()[t as usize]),
                        )
                    }
                    None => {
                        // SAFETY: the record was written at instantiation.
                        let rec = unsafe {
                            vm_addr
                                .add(layout.func_import(e.index) as usize)
                                .cast::<FuncRef>()
                                .read()
                        };
                        (rec.code, rec.vmctx, rec.type_id)
                    }
                };
                Some(Extern::Func(Func::Wasm(WasmFunc {
                    code,
                    vmctx,
                    type_id,
                    ty,
                    owner: group.clone(),
                })))
            }
            ExportKind::Global => {
                let (ty, mutable) = md.global_type(e.index)?;
                let nig = md.num_imported_globals() as u32;
                // SAFETY: offsets from the layout, inside the vmctx area.
                let cell = unsafe {
                    match e.index.checked_sub(nig) {
                        Some(d) => vm_addr
                            .add(abi::vmctx::GLOBALS as usize + 8 * d as usize)
                            .cast::<u64>(),
                        None => vm_addr
                            .add(layout.global_import(e.index) as usize)
                            .cast::<*mut u64>()
                            .read(),
                    }
                };
                let precise = match self.imported_global_types.get(e.index as usize) {
                    Some(own) => *own,
                    None => md
                        .global_refs
                        .get(e.index as usize)
                        .copied()
                        .flatten()
                        .map(|r| module.canon_ref(r)),
                };
                Some(Extern::Global(Global {
                    cell,
                    ty,
                    precise,
                    mutable,
                    owner: GlobalOwner::Instance(group.clone()),
                }))
            }
            ExportKind::Memory => match (&self.core.memory_import, md.memory) {
                // Re-exported: this instance's group keeps its link to
                // the defining instance's.
                (Some(m), _) => Some(Extern::Memory(Memory {
                    vmctx: m.vmctx,
                    decl: m.decl,
                    owner: Some(group.clone()),
                })),
                (None, Some(decl)) => Some(Extern::Memory(Memory {
                    vmctx: self.vm.as_ptr(),
                    decl,
                    owner: Some(group.clone()),
                })),
                (None, None) => None,
            },
            ExportKind::Table => {
                let t = self.core.tables.as_ref()?.tables.get(e.index as usize)?;
                // It may outlive this instance in the host's hands: it
                // belongs to this group, which scrubs it when it dies.
                // Its own table belongs to no other group (only
                // instances of this group store into it), so the join
                // merges nothing and cannot be refused.
                group.join(t.clone()).ok()?;
                Some(Extern::Table(t.clone()))
            }
            ExportKind::Tag => self.tags.get(e.index as usize).cloned().map(Extern::Tag),
        }
    }

    /// This instance's link group, made (with the instance as its only
    /// member) on first use.
    fn group(&self) -> &GroupHandle {
        self.group
            .get_or_init(|| GroupHandle::new(self.core.clone(), self.vm.as_ptr()))
    }

    /// Whether a host function parked the instance.
    pub fn is_parked(&self) -> bool {
        // SAFETY: read of our own vmctx while the guest is not running.
        unsafe { (*self.vm.as_ptr()).status == status::PARKED }
    }

    /// The message of the host trap that ended the last call, if any.
    pub fn host_trap_message(&self) -> Option<&str> {
        self.core.host.as_ref().and_then(|h| h.message.as_deref())
    }

    /// The embedder data given at instantiation, if it is a `T`.
    pub fn data<T: 'static>(&mut self) -> Option<&mut T> {
        let host = self.core.host.as_ref()?;
        let p = &**host as *const HostState as *mut HostState;
        // SAFETY: the host state is only touched by host functions while
        // the guest runs; we hold &mut self, so it does not.
        unsafe { (*p).data.as_mut()?.downcast_mut::<T>() }
    }

    /// End the instance with a fuel budget: once it has consumed `fuel`
    /// units (about one per function call and loop iteration) it stops
    /// with [`crate::Limit::Fuel`]. Accounting is per refill, so it may run
    /// a little past the budget.
    pub fn set_fuel_limit(&mut self, fuel: u64) {
        // SAFETY: we own the vmctx.
        unsafe { (*self.vm.as_ptr()).fuel_limit = fuel }
    }

    /// Fuel consumed so far, including what the last slice spent of its
    /// current grant.
    pub fn fuel_used(&self) -> u64 {
        // SAFETY: read of our own vmctx while the guest is not running.
        let vm = unsafe { &*self.vm.as_ptr() };
        let open = vm.fuel_granted.saturating_sub(vm.fuel).max(0) as u64;
        vm.fuel_used.saturating_add(open)
    }

    /// End the instance with [`crate::Limit::Memory`] if it grows its
    /// linear memory plus the table storage charged to it (8 bytes per
    /// element of its own tables and of its growth of imported ones) past
    /// `bytes`.
    /// An instance already past it (a large initial memory or table) ends
    /// its armed call at once, with `Limited(Memory)` as the outcome (a
    /// scheduler's instance has one call, so it ends; a later
    /// [`Instance::call`] on a bare instance runs, with the limit in
    /// force for every grow).
    pub fn set_memory_limit(&mut self, bytes: u64) {
        let vm = self.vm.as_ptr();
        // SAFETY: we own the vmctx and the guest is not running (&mut
        // self), so its table state is not borrowed.
        let in_use = unsafe {
            (*vm).heap_limit = bytes;
            crate::builtins::memory::vm_publish(vm);
            crate::table::vm_own_heap_len(vm)
                .saturating_add(crate::table::vm_table_bytes(vm))
                .saturating_add(crate::builtins::memory::vm_external(vm))
        };
        if in_use > bytes && !self.is_done() {
            self.set_limited(crate::Limit::Memory);
        }
    }

    /// Share `account` with the embedder: from now on the memory limit
    /// also counts the bytes the embedder charges to it (a mailbox, say),
    /// and the instance's own use (memory and tables) is published there
    /// at every growth. Set once, before the instance links to others; a
    /// second account, or one for an instance already in a link group, is
    /// refused (returns `false`).
    pub fn set_memory_account(
        &mut self,
        account: Arc<dyn crate::account::HasMemoryAccount>,
    ) -> bool {
        let ptr: *const crate::account::MemoryAccount = account.memory_account();
        match Arc::get_mut(&mut self.core) {
            Some(core) if core.account.is_none() => core.account = Some(account),
            _ => return false,
        }
        let vm = self.vm.as_ptr();
        // SAFETY: we own the vmctx and the guest is not running; the
        // account is kept alive by the core as long as the vmctx.
        unsafe {
            (*vm).account = ptr;
            crate::builtins::memory::vm_publish(vm);
        }
        true
    }

    /// End the instance now with `limit` (for limits the embedder
    /// enforces, such as CPU time or a deadline). Refused while it runs,
    /// which it cannot while we hold `&mut self`.
    pub fn set_limited(&mut self, limit: crate::Limit) {
        // SAFETY: we own the vmctx; the guest is not running.
        unsafe {
            (*self.vm.as_ptr()).trap_kind = limit as u32;
            (*self.vm.as_ptr()).status = status::LIMITED;
        }
    }

    /// Whether the instance finished or trapped.
    pub fn is_done(&self) -> bool {
        // SAFETY: read of our own vmctx while the guest is not running.
        let st = unsafe { (*self.vm.as_ptr()).status };
        is_done_status(st)
    }

    /// TSC value read by the slow path when the instance last yielded.
    pub fn yield_tsc(&self) -> u64 {
        // SAFETY: read of our own vmctx while the guest is not running.
        unsafe { (*self.vm.as_ptr()).yield_tsc }
    }

    /// The deadline of the last slice (`u64::MAX` after a fuel slice).
    pub fn deadline_tsc(&self) -> u64 {
        // SAFETY: as above.
        unsafe { (*self.vm.as_ptr()).deadline_tsc }
    }

    /// The instance's measured fuel rate (16.16 units per TSC cycle; 0 if
    /// never measured).
    pub fn fuel_rate(&self) -> u64 {
        // SAFETY: as above.
        unsafe { (*self.vm.as_ptr()).fuel_rate }
    }

    /// Fuel slow-path calls since instantiation.
    pub fn slow_path_calls(&self) -> u64 {
        // SAFETY: as above.
        unsafe { (*self.vm.as_ptr()).slow_path_calls }
    }

    /// Deadline kicks that marked this instance's fuel counter: time
    /// slices it overran by more than `signals::KICK_MARGIN_NS` in
    /// compiled code, stopped by the kick (diagnostics).
    pub fn deadline_kicks(&self) -> u64 {
        // SAFETY: as above.
        unsafe { (*self.vm.as_ptr()).deadline_kicks }
    }

    /// Time slices of this instance that ended by asynchronous preemption
    /// (see [`crate::fuel::set_async_preempt_min`]; diagnostics).
    pub fn async_preempts(&self) -> u64 {
        // SAFETY: as above.
        unsafe { (*self.vm.as_ptr()).async_preempts }
    }

    /// Seed the fuel rate (e.g. from other instances of the same module).
    pub fn set_fuel_rate(&mut self, rate: u64) {
        // SAFETY: we own the vmctx.
        unsafe { (*self.vm.as_ptr()).fuel_rate = rate.clamp(fuel::MIN_RATE, fuel::MAX_RATE) }
    }

    /// Ask the guest to stop at its next fuel slow-path check (it then
    /// yields as if its deadline had passed).
    pub fn request_cancel(&self) {
        self.cancel_flag().store(1, Ordering::Relaxed);
    }

    /// The vmctx cancel flag (non-zero: yield at the next slow-path check).
    pub fn cancel_flag(&self) -> &AtomicU32 {
        // SAFETY: the atomic lives in our vmctx, valid while &self is.
        unsafe { &(*self.vm.as_ptr()).cancel }
    }

    /// Prefetch the lines the next resume touches: the vmctx header and
    /// the saved register frame at `guest_sp`.
    #[inline]
    pub fn prefetch(&self) {
        self.prefetch_stack(0);
    }

    /// [`Instance::prefetch`] for an instance about to return from a host
    /// call it parked in (a receive a message just completed): also the
    /// stack just above the saved frame, where the host-call stub's frame
    /// and the calling guest function's frame are. (Measured on a ring of
    /// 100,000 instances: 380 -> 230 ns per hop; a preempted instance
    /// gains nothing from those lines, so [`Instance::prefetch`] leaves
    /// them.)
    #[inline]
    pub fn prefetch_host_return(&self) {
        self.prefetch_stack(PREFETCH_ABOVE_FRAME);
    }

    #[inline(always)]
    fn prefetch_stack(&self, above: usize) {
        let p = self.vm.as_ptr().cast::<u8>();
        arch::prefetch(p);
        arch::prefetch(p.wrapping_add(64));
        arch::prefetch(p.wrapping_add(128));
        // SAFETY: a read of our own vmctx's field.
        let sp = unsafe { (*self.vm.as_ptr()).guest_sp } as *const u8;
        for off in (0..arch::FRAME_BYTES + above).step_by(64) {
            arch::prefetch(sp.wrapping_add(off));
        }
        arch::prefetch(sp.wrapping_add(arch::FRAME_BYTES + above - 1));
    }

    /// The slot index.
    pub fn slot(&self) -> u32 {
        self.core.slot
    }

    /// The module.
    pub fn module(&self) -> &Arc<Module> {
        &self.core.module
    }

    /// Raw vmctx pointer (for host functions and diagnostics).
    pub fn vmctx_ptr(&self) -> *mut VmCtx {
        self.vm.as_ptr()
    }

    /// Linear memory as it is now.
    pub fn memory(&self) -> &[u8] {
        // SAFETY: heap_base..heap_base+heap_len is this slot's accessible
        // heap; the guest is not running while we hold &self.
        unsafe {
            let vm = &*(*self.vm.as_ptr()).memory_vmctx;
            if vm.heap_len == 0 {
                return &[];
            }
            std::slice::from_raw_parts(vm.heap_base, vm.heap_len as usize)
        }
    }

    /// Linear memory, writable.
    pub fn memory_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for memory(), and we hold &mut self.
        unsafe {
            let vm = &*(*self.vm.as_ptr()).memory_vmctx;
            if vm.heap_len == 0 {
                return &mut [];
            }
            std::slice::from_raw_parts_mut(vm.heap_base, vm.heap_len as usize)
        }
    }

    /// Global `index` as raw bits.
    pub fn global_bits(&self, index: usize) -> Option<u64> {
        if index >= self.core.module.metadata().globals.len() {
            return None;
        }
        // SAFETY: global cells follow the header inside the ctx area.
        unsafe {
            Some(
                self.vm
                    .as_ptr()
                    .cast::<u8>()
                    .add(myriad_abi::vmctx::GLOBALS as usize + 8 * index)
                    .cast::<u64>()
                    .read(),
            )
        }
    }

    /// The instance's table state (tables, FuncRef records), if any.
    pub fn table_state(&self) -> Option<&TableState> {
        self.core.tables.as_deref()
    }

    /// Tear down now (same as dropping).
    pub fn teardown(self) {
        drop(self)
    }
}

impl Core {
    /// The vmctx's address.
    fn vm_addr(&self) -> *mut u8 {
        self.vm.as_ptr().cast()
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        let vm = self.vm.as_ptr();
        // SAFETY: no guest runs this instance's code any more (the Instance
        // is gone and so is its link group, with every export and every
        // instance linked to it); the slot is ours until released.
        unsafe {
            let len = (*vm).heap_len;
            if (*vm).guard_mode != 0 {
                self.region.note_heap_open(self.slot, (*vm).heap_open);
            }
            self.region.zero_heap(self.slot, len);
            (*vm).status = status::FINISHED;
            (*vm).heap_len = 0;
        }
        self.region.release(self.slot);
    }
}

fn is_done_status(st: u32) -> bool {
    matches!(
        st,
        status::FINISHED | status::TRAPPED | status::EXITED | status::LIMITED
    )
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("slot", &self.core.slot)
            .field("outcome", &self.outcome())
            .finish()
    }
}
