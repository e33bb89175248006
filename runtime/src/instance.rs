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

use crate::arch;
use crate::externs::{Extern, Func, Global, GlobalOwner, KeepAlive, Memory, Tag, WasmFunc};
use crate::fuel;
use crate::group::{GroupHandle, Shared};
use crate::host::HostState;
use crate::module::Module;
use crate::region::Region;
use crate::signals::{self, CURRENT};
use crate::table::{FuncRef, Table, TableState, MAX_TABLE_ELEMENTS};
use crate::values::{Outcome, Val};
use crate::vmctx::{status, VmCtx, MAX_VALUES};
use myriad_abi::{self as abi, ElemItem, ElemMode, ExportKind, ImportKind, TrapKind, ValType};
use std::any::Any;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

pub use crate::region::{STACK_RESERVE, TRAMPOLINE_FRAME_MAX};

/// Why an instance could not be created.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InstantiateError {
    /// The module exports no function of that name.
    #[error("the module has no exported function named {0:?}")]
    NoSuchExport(String),
    /// Wrong number of arguments.
    #[error("export {export:?} takes {expected} arguments, {given} given")]
    ArgumentCount {
        /// The export.
        export: String,
        /// Parameters declared.
        expected: usize,
        /// Arguments given.
        given: usize,
    },
    /// An argument has the wrong type.
    #[error("argument {index} of export {export:?} must be {expected:?}, got {given:?}")]
    ArgumentType {
        /// The export.
        export: String,
        /// Argument position.
        index: usize,
        /// Declared type.
        expected: ValType,
        /// Given type.
        given: ValType,
    },
    /// No free slot.
    #[error("the region is full (all slots in use)")]
    RegionFull,
    /// The module's initial memory does not fit a slot.
    #[error("the module needs {needed} bytes of initial memory; a slot holds {capacity}")]
    MemoryTooLarge {
        /// Initial memory bytes.
        needed: u64,
        /// Slot heap capacity.
        capacity: u64,
    },
    /// The module's guard assumptions do not hold in this region.
    #[error("{0}")]
    GuardMismatch(String),
    /// A data segment lies outside the initial memory.
    #[error("data segment {index} ({len} bytes at {offset}) does not fit the initial memory of {memory} bytes")]
    DataSegmentOutOfBounds {
        /// Segment index.
        index: usize,
        /// Offset in memory.
        offset: u64,
        /// Length.
        len: usize,
        /// Initial memory bytes.
        memory: u64,
    },
    /// An active element segment lies outside its table.
    #[error("element segment {index} does not fit its table (out of bounds table access)")]
    ElemSegmentOutOfBounds {
        /// Segment index.
        index: usize,
    },
    /// The module's tables together start with more elements than the
    /// runtime allows ([`crate::table::MAX_TABLE_ELEMENTS`]).
    #[error("tables of {0} elements in all are larger than the runtime allows (10,000,000)")]
    TableTooLarge(u64),
    /// Guard-mode protection change failed.
    #[error("cannot open heap pages: {0}")]
    Protect(String),
    /// [`Instance::call`] while the previous call is suspended (`Yielded`).
    #[error("a call is in progress (suspended); resume it to completion first")]
    CallInProgress,
    /// A non-null `funcref` the host passed in (a call argument or a parked
    /// host function's result) is not one of this instance's own function
    /// references. The host can pass null or a reference this instance
    /// produced; anything else would be a forged code pointer.
    #[error("value {index} is a function reference that does not belong to this instance")]
    ForeignFuncRef {
        /// Position of the value among the arguments or results.
        index: usize,
    },
    /// The number of import values differs from the module's imports.
    #[error("the module has {expected} imports, {given} values were given")]
    ImportCount {
        /// Imports declared.
        expected: usize,
        /// Values given.
        given: usize,
    },
    /// An import value does not match the import's type.
    #[error("incompatible import type for {module}.{name}: {reason}")]
    IncompatibleImport {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
        /// What differs.
        reason: String,
    },
    /// An export wrapper or a host-import stub has a frame (it grows with
    /// the function's parameters and results) that cannot fit the slot's
    /// stack even when nothing else is on it, so every call of it would
    /// overflow.
    #[error(
        "{what} needs {needed} bytes of stack for its parameters and results, but a slot's \
         stack has {available} usable bytes; use a larger stack size"
    )]
    StackTooSmall {
        /// The export or import.
        what: String,
        /// Bytes its frame needs.
        needed: usize,
        /// Usable bytes of the slot's stack (the stack size less
        /// [`STACK_RESERVE`]).
        available: usize,
    },
    /// [`Instance::unpark`] on an instance that is not parked.
    #[error("the instance is not parked")]
    NotParked,
    /// [`Instance::unpark`] with values that do not fit the parked host
    /// function's results.
    #[error("unpark: {0}")]
    UnparkValues(String),
}

/// A running (or runnable) instance. `Send`, not `Sync`: it may move
/// between worker threads between slices, but only one thread resumes it.
pub struct Instance {
    vm: NonNull<VmCtx>,
    core: Arc<Core>,
    results: Box<[ValType]>,
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
}

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
    /// Create an instance of `module` in a free slot of `region` that will
    /// run export `export` with `args`: [`Instance::instantiate`] followed
    /// by [`Instance::call`].
    pub fn new(
        region: &Arc<Region>,
        module: &Arc<Module>,
        export: &str,
        args: &[Val],
    ) -> Result<Instance, InstantiateError> {
        // Check the export and arguments before taking a slot, so a bad
        // request fails without touching the region.
        let info = check_call(module, export, args)?;
        check_frame_fits(region, info.wrapper_frame, || format!("export {export:?}"))?;
        let mut inst = Instance::instantiate(region, module)?;
        inst.call(export, args)?;
        Ok(inst)
    }

    /// Create an instance of a module without imports in a free slot of
    /// `region` with no call armed: [`Instance::instantiate_with`] with no
    /// imports and no embedder data.
    pub fn instantiate(
        region: &Arc<Region>,
        module: &Arc<Module>,
    ) -> Result<Instance, InstantiateError> {
        Self::instantiate_with(region, module, &[], None)
    }

    /// Create an instance of `module` in a free slot of `region` with no
    /// call armed: imports are checked against their types and bound
    /// (`imports[i]` for the module's import `i`), the vmctx is written
    /// (header, runtime fields, import records, initial globals), tables
    /// are built, and the active element and data segments are applied in
    /// order (a segment out of bounds fails the instantiation; writes of
    /// earlier segments to imported tables and memories stay, as the spec
    /// says; the failed instance stays alive in its link group as long as
    /// those references can be used). `data` is what host functions see through
    /// [`crate::Caller::data`]. Arm calls with [`Instance::call`]; the
    /// instance's memory and globals persist across calls (and across
    /// traps) until it is dropped.
    ///
    /// The module's start function, if any, is still pending: it runs
    /// exactly once, on the guest stack, right before the first armed
    /// export call (inside the same armed call, so a trap in it is reported
    /// as that call's trap), or on its own via [`Instance::call_start`].
    /// Until a call is armed, [`Instance::outcome`] is `Finished([])` and
    /// resuming does nothing.
    pub fn instantiate_with(
        region: &Arc<Region>,
        module: &Arc<Module>,
        imports: &[Extern],
        data: Option<Box<dyn Any + Send>>,
    ) -> Result<Instance, InstantiateError> {
        let md = module.metadata();
        check_imports(module, imports)?;
        // A host function runs behind its import's stub, whose frame holds
        // the parameters and results.
        let func_imports = md
            .imports
            .iter()
            .zip(imports)
            .filter(|(imp, _)| matches!(imp.kind, ImportKind::Func(_)));
        for ((imp, ext), stub) in func_imports.zip(&md.stubs) {
            if matches!(ext, Extern::Func(Func::Host(_))) {
                check_frame_fits(region, stub.frame_bytes, || {
                    format!("import {}.{}", imp.module, imp.name)
                })?;
            }
        }
        let capacity = region.heap_capacity() as u64;
        let (heap_len, heap_max, page_log2) = match (&md.memory, md.imported_memory()) {
            (None, Some(m)) => (0, 0, m.page_size_log2 as u32),
            (None, None) => (0, 0, 16),
            (Some(m), _) => {
                let ps = m.page_size_log2 as u32;
                let needed = m
                    .min_pages
                    .checked_shl(ps)
                    .filter(|b| b >> ps == m.min_pages)
                    .unwrap_or(u64::MAX);
                if needed > capacity {
                    return Err(InstantiateError::MemoryTooLarge { needed, capacity });
                }
                let max = m
                    .max_pages
                    .and_then(|p| p.checked_shl(ps).filter(|b| b >> ps == p))
                    .unwrap_or(u64::MAX)
                    .min(capacity);
                (needed, max, ps)
            }
        };
        if md.guard_bytes > 0 {
            if !region.guard_mode() {
                return Err(InstantiateError::GuardMismatch(format!(
                    "the module was compiled to rely on {} faulting guard bytes, but the region is not in guard mode",
                    md.guard_bytes
                )));
            }
            if (region.guard_size() as u64) < md.guard_bytes {
                return Err(InstantiateError::GuardMismatch(format!(
                    "the module relies on {} guard bytes but the region's guards are {} bytes",
                    md.guard_bytes,
                    region.guard_size()
                )));
            }
            if md.imported_memory().is_some() {
                return Err(InstantiateError::GuardMismatch(
                    "guard-relying code cannot use an imported memory (its guard is another slot's)".into(),
                ));
            }
            if md.memory.is_some() && page_log2 < 12 {
                return Err(InstantiateError::GuardMismatch(
                    "guard-relying code needs a memory page size of at least 4 KiB (the heap end must be page aligned)".into(),
                ));
            }
        }
        let table_elements = md
            .tables
            .iter()
            .fold(0u64, |sum, t| sum.saturating_add(t.min));
        if table_elements > MAX_TABLE_ELEMENTS {
            return Err(InstantiateError::TableTooLarge(table_elements));
        }
        let slot = region.alloc().ok_or(InstantiateError::RegionFull)?;
        let heap_base = region.heap_base(slot);
        let heap_open = if region.guard_mode() {
            match region.set_heap_open(slot, heap_len) {
                Ok(open) => open,
                Err(e) => {
                    region.release(slot);
                    return Err(InstantiateError::Protect(e.to_string()));
                }
            }
        } else {
            0
        };
        let vm_addr = region.vmctx_addr(slot);
        let vm = vm_addr.cast::<VmCtx>();
        let stack_bottom = region.slot_base(slot) as usize;
        let trap_table = module.trap_table();
        let memory_import = imports.iter().find_map(|e| match e {
            Extern::Memory(m) => Some(Memory {
                vmctx: m.vmctx,
                decl: m.decl,
                owner: None,
            }),
            _ => None,
        });
        // SAFETY: the slot is ours alone until released; its vmctx area is
        // inside the region mapping, 64-byte aligned, and large enough for
        // the header, globals and import records (checked at load).
        unsafe {
            vm.write(VmCtx {
                fuel: 0,
                stack_limit: (stack_bottom + STACK_RESERVE) as u64,
                heap_base,
                heap_len,
                fn_fuel_exhausted: arch::fuel_exhausted_addr(),
                fn_memory_grow: arch::memory_grow_addr(),
                type_ids: module.type_ids().as_ptr(),
                tables: std::ptr::null(),
                func_refs: std::ptr::null(),
                fn_table: arch::table_builtin_addrs(),
                fn_host_call: arch::host_import_addr(),
                guest_sp: 0,
                host_sp: 0,
                deadline_tsc: 0,
                yield_tsc: 0,
                last_check_tsc: 0,
                fuel_granted: 0,
                // No call armed: resume does nothing, outcome is Finished([]).
                status: status::FINISHED,
                trap_kind: 0,
                cancel: AtomicU32::new(0),
                page_size_log2: page_log2,
                heap_capacity: heap_max,
                heap_limit: u64::MAX,
                heap_open,
                fuel_rate: 0,
                slow_path_calls: 0,
                trap_table: trap_table.as_ptr(),
                trap_table_len: trap_table.len(),
                entry: 0,
                start: 0,
                guard_mode: region.guard_mode() as u32,
                host_ref_results: 0,
                table_state: std::ptr::null_mut(),
                memory_vmctx: match &memory_import {
                    Some(m) => m.vmctx,
                    None => vm,
                },
                host_state: std::ptr::null_mut(),
                host_values: std::ptr::null_mut(),
                exit_code: 0,
                host_results: 0,
                fuel_used: 0,
                fuel_limit: u64::MAX,
                values: [0u64; MAX_VALUES],
                fuel_sliced: 0,
                sleep_requested: 0,
                again_fn: 0,
                again_vmctx: std::ptr::null_mut(),
                again_arg: 0,
                again_arg2: 0,
                account: std::ptr::null(),
                values_ptr: vm_addr
                    .add(std::mem::offset_of!(VmCtx, values))
                    .cast::<u64>(),
            });
        }
        // From here on the Core owns the slot: an error drops it, which
        // zeroes what was written and releases the slot.
        let mut core = Core {
            vm: NonNull::new(vm).ok_or(InstantiateError::RegionFull)?,
            slot,
            region: region.clone(),
            module: module.clone(),
            tables: None,
            host: None,
            memory_import,
            _imports: imports.iter().filter_map(keep_alive).collect(),
            account: None,
        };
        let needs_host = imports
            .iter()
            .any(|e| matches!(e, Extern::Func(Func::Host(_))))
            || data.is_some();
        if needs_host {
            let mut host = Box::new(HostState {
                funcs: vec![None; md.num_imported_funcs()],
                data,
                message: None,
            });
            // SAFETY: we own the vmctx; the box lives in the Core.
            unsafe { (*vm).host_state = (&mut *host as *mut HostState).cast() };
            core.host = Some(host);
        }
        let layout = module.layout();
        // Import records.
        let (mut fi, mut gi) = (0u32, 0u32);
        let mut imported_tables: Vec<Arc<Table>> = Vec::new();
        let mut tags: Vec<Tag> = Vec::new();
        for (imp, ext) in md.imports.iter().zip(imports) {
            // SAFETY (all writes below): the record offsets come from the
            // module's layout, inside the vmctx area checked at load.
            match (&imp.kind, ext) {
                (ImportKind::Func(t), Extern::Func(f)) => {
                    let type_id = u64::from(module.type_ids()[*t as usize]);
                    let rec = match f {
                        Func::Host(h) => {
                            if let Some(host) = core.host.as_mut() {
                                host.funcs[fi as usize] = Some(h.clone());
                            }
                            FuncRef {
                                code: module.stub(fi as usize),
                                vmctx: vm_addr as usize,
                                type_id,
                            }
                        }
                        Func::Wasm(w) => FuncRef {
                            code: w.code,
                            vmctx: w.vmctx,
                            type_id: w.type_id,
                        },
                    };
                    // SAFETY: the record lies in the vmctx area at the
                    // layout's offset for import `fi` (checked at load).
                    unsafe {
                        vm_addr
                            .add(layout.func_import(fi) as usize)
                            .cast::<FuncRef>()
                            .write(rec)
                    };
                    fi += 1;
                }
                (ImportKind::Global { .. }, Extern::Global(g)) => {
                    // SAFETY: as above, the cell pointer of global import
                    // `gi`.
                    unsafe {
                        vm_addr
                            .add(layout.global_import(gi) as usize)
                            .cast::<*mut u64>()
                            .write(g.cell)
                    };
                    gi += 1;
                }
                // SAFETY: as above, the memory import's vmctx pointer.
                (ImportKind::Memory(_), Extern::Memory(m)) => unsafe {
                    vm_addr
                        .add(layout.memory_import as usize)
                        .cast::<*mut VmCtx>()
                        .write(m.vmctx)
                },
                (ImportKind::Table(_), Extern::Table(t)) => imported_tables.push(t.clone()),
                (ImportKind::Tag(_), Extern::Tag(t)) => tags.push(t.clone()),
                _ => unreachable!("check_imports matched kinds"),
            }
        }
        let mut tables =
            crate::table::needed(module).then(|| TableState::new(module, vm_addr as usize));
        // Globals: the plain template, then initialisers that read imports
        // or take function references, in order.
        // SAFETY: global cells follow the header inside the vmctx area.
        let globals = unsafe { vm_addr.add(abi::vmctx::GLOBALS as usize).cast::<u64>() };
        let init = module.globals_init();
        // SAFETY: init.len() == defined globals, all inside the vmctx area.
        unsafe { std::ptr::copy_nonoverlapping(init.as_ptr(), globals, init.len()) };
        let nig = md.num_imported_globals();
        let read_global = |g: u32| -> u64 {
            // SAFETY: indices were checked at load; imported cells are live
            // (their owners are kept alive by the Core).
            unsafe {
                match (g as usize).checked_sub(nig) {
                    None => vm_addr
                        .add(layout.global_import(g) as usize)
                        .cast::<*const u64>()
                        .read()
                        .read(),
                    Some(d) => globals.add(d).read(),
                }
            }
        };
        let func_bits = |t: &Option<Box<TableState>>, f: u32| -> u64 {
            t.as_ref().map_or(0, |t| t.func_ref_bits(f))
        };
        for &i in module.globals_dynamic() {
            let v = md.globals[i as usize]
                .init
                .eval(read_global, |f| func_bits(&tables, f))
                .unwrap_or(0);
            // SAFETY: i < defined globals.
            unsafe { globals.add(i as usize).write(v) };
        }
        if let Some(t) = tables.as_mut() {
            let mut all = imported_tables;
            let n_imported = all.len();
            for (i, decl) in md.tables.iter().enumerate() {
                let init = decl
                    .init
                    .eval(read_global, |f| t.func_ref_bits(f))
                    .unwrap_or(0);
                let precise = md
                    .table_refs
                    .get(n_imported + i)
                    .map(|r| module.canon_ref(*r));
                all.push(Table::with_init(decl.ty, decl.min, decl.max, init, precise));
            }
            t.set_tables(all);
            t.elem_values = md
                .elems
                .iter()
                .map(|e| {
                    e.items
                        .iter()
                        .map(|item| match *item {
                            ElemItem::Null => 0,
                            ElemItem::Func(f) => t.func_ref_bits(f),
                            ElemItem::Global(g) => read_global(g),
                        })
                        .collect()
                })
                .collect();
            // SAFETY: we own the vmctx; the boxed state lives in the Core.
            unsafe {
                (*vm).tables = t.desc_ptrs.as_ptr().cast();
                (*vm).func_refs = t.func_refs.as_ptr();
                (*vm).table_state = (&mut **t as *mut TableState).cast();
            }
        }
        core.tables = tables;
        // Active element segments, in order. If one fails, what earlier
        // ones stored (also in imported tables) stays: spec semantics.
        let mut failed = None;
        if let Some(t) = core.tables.as_mut() {
            for (i, e) in md.elems.iter().enumerate() {
                match &e.mode {
                    ElemMode::Passive => {}
                    ElemMode::Declared => t.drop_elem(i),
                    ElemMode::Active { table, offset } => {
                        let at = offset.eval(read_global, |_| 0).unwrap_or(u64::MAX) & 0xffff_ffff;
                        let ok = t
                            .tables
                            .get(*table as usize)
                            .is_some_and(|tab| tab.write(at, &t.elem_values[i]));
                        if !ok {
                            failed = Some(InstantiateError::ElemSegmentOutOfBounds { index: i });
                            break;
                        }
                        t.drop_elem(i);
                    }
                }
            }
        }
        // Active data segments, in order, into this or the imported memory.
        // SAFETY: memory_vmctx is our vmctx or the live exporter's.
        let mem = unsafe { &*(*vm).memory_vmctx };
        for (index, d) in md.data.iter().enumerate() {
            if failed.is_some() {
                break;
            }
            if d.passive {
                continue;
            }
            let offset = d.offset.eval(read_global, |_| 0).unwrap_or(u64::MAX) & 0xffff_ffff;
            if offset
                .checked_add(d.bytes.len() as u64)
                .is_none_or(|end| end > mem.heap_len)
            {
                failed = Some(InstantiateError::DataSegmentOutOfBounds {
                    index,
                    offset,
                    len: d.bytes.len(),
                    memory: mem.heap_len,
                });
                break;
            }
            // SAFETY: offset + len <= heap_len of that memory.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    d.bytes.as_ptr(),
                    mem.heap_base.add(offset as usize),
                    d.bytes.len(),
                )
            };
        }
        let core = Arc::new(core);
        // Join the groups this instance's function references can flow
        // into. On failure, element segments may already have stored them
        // in imported tables (spec semantics: they stay), so the group
        // keeps the failed instance alive as long as it needs to.
        let group = link_group(&core, imports);
        if let Some(e) = failed {
            drop(group);
            return Err(e);
        }
        // Defined tags: a fresh identity each, per instance. Their types
        // were checked at load (in range, no results).
        tags.extend(
            md.tags
                .iter()
                .map(|&t| Tag::fresh(md.types[t as usize].clone())),
        );
        let cell = OnceLock::new();
        if let Some(g) = group {
            // Fresh: nothing else can have set it.
            let _ = cell.set(g);
        }
        Ok(Instance {
            vm: core.vm,
            results: Box::new([]),
            start_pending: module.start_addr() != 0,
            core,
            tags: tags.into_boxed_slice(),
            big_values: None,
            imported_global_types: imports
                .iter()
                .filter_map(|e| match e {
                    Extern::Global(g) => Some(g.precise),
                    _ => None,
                })
                .collect(),
            group: cell,
            wake_at: None,
        })
    }

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
                group.join(t.clone());
                Some(Extern::Table(t.clone()))
            }
            ExportKind::Tag => self.tags.get(e.index as usize).cloned().map(Extern::Tag),
        }
    }

    /// Supply the results of the host function that parked this instance
    /// and make it runnable again (the next resume continues the guest).
    /// `results` must match the host function's result types.
    pub fn unpark(&mut self, results: &[Val]) -> Result<(), InstantiateError> {
        self.unpark_with(results.len(), results.iter().map(|v| v.to_bits()))
    }

    /// Like [`Instance::unpark`] with raw cell bits (the count is checked,
    /// and `funcref` results must be null or this instance's own).
    pub fn unpark_bits(&mut self, results: &[u64]) -> Result<(), InstantiateError> {
        self.unpark_with(results.len(), results.iter().copied())
    }

    fn unpark_with(
        &mut self,
        count: usize,
        bits: impl Iterator<Item = u64> + Clone,
    ) -> Result<(), InstantiateError> {
        let vm = self.vm.as_ptr();
        // SAFETY: we own the vmctx (&mut self); the guest is suspended, and
        // while it is parked `host_values` is the stub's buffer of at least
        // `host_results` cells.
        unsafe {
            if (*vm).status != status::PARKED {
                return Err(InstantiateError::NotParked);
            }
            let want = (*vm).host_results as usize;
            if count != want {
                return Err(InstantiateError::UnparkValues(format!(
                    "the parked host function returns {want} values, {count} given"
                )));
            }
            // Check first (a refusal leaves the instance parked), then write.
            let refs = (*vm).host_ref_results;
            self.check_func_refs(bits.clone().enumerate().map(|(i, b)| {
                if i < 32 && refs >> i & 1 == 1 {
                    b
                } else {
                    0
                }
            }))?;
            let buf = (*vm).host_values;
            for (i, r) in bits.take(want).enumerate() {
                buf.add(i).write(r);
            }
            (*vm).status = status::YIELDED;
        }
        Ok(())
    }

    /// Refuse any non-zero value in `refs` (funcref bits the host passes
    /// in, 0 for other values) that is not this instance's own.
    fn check_func_refs(&self, refs: impl Iterator<Item = u64>) -> Result<(), InstantiateError> {
        for (index, bits) in refs.enumerate() {
            let own = self
                .core
                .tables
                .as_deref()
                .is_some_and(|t| t.owns_func_ref(bits));
            if bits != 0 && !own {
                return Err(InstantiateError::ForeignFuncRef { index });
            }
        }
        Ok(())
    }

    /// This instance's link group, made (with the instance as its only
    /// member) on first use.
    fn group(&self) -> &GroupHandle {
        self.group
            .get_or_init(|| GroupHandle::new(self.core.clone()))
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

    /// Arm a call of export `export` with `args`; [`Instance::resume`] then
    /// runs it and returns `Finished(results)`, `Trapped(kind)` or
    /// `Yielded` as usual. Allowed whenever no call is in progress: on a
    /// fresh instance and after the previous call finished or trapped
    /// (a trap ends the call, not the instance: memory and globals keep
    /// the values they had when it trapped). Refused with
    /// [`InstantiateError::CallInProgress`] while a call is suspended
    /// (`Yielded`). The previous call's stack is dead by then; the initial
    /// frame is rebuilt at the stack top. The first armed call also runs
    /// the pending start function (see [`Instance::instantiate`]).
    pub fn call(&mut self, export: &str, args: &[Val]) -> Result<(), InstantiateError> {
        let module = self.core.module.clone();
        let info = check_call(&module, export, args)?;
        check_frame_fits(&self.core.region, info.wrapper_frame, || {
            format!("export {export:?}")
        })?;
        self.check_func_refs(args.iter().map(|a| match a {
            Val::FuncRef(bits) => *bits,
            _ => 0,
        }))?;
        self.ensure_idle()?;
        let cells = info.ty.params.len().max(info.ty.results.len());
        self.results = info.ty.results.clone().into_boxed_slice();
        let start = self.take_start();
        self.arm(info.wrapper, start, args, cells);
        Ok(())
    }

    /// Arm a call that runs only the pending start function (no export);
    /// it finishes with no results. Returns `Ok(false)` (nothing armed) if
    /// the module has no start function or it has already run or been
    /// armed. Lets an embedder tell a trapping start function
    /// (instantiation failure, the spec's `assert_uninstantiable`) from a
    /// trapping export.
    pub fn call_start(&mut self) -> Result<bool, InstantiateError> {
        self.ensure_idle()?;
        let start = self.take_start();
        if start == 0 {
            return Ok(false);
        }
        self.results = Box::new([]);
        self.arm(0, start, &[], 0);
        Ok(true)
    }

    /// Whether the start function has yet to be armed.
    pub fn start_pending(&self) -> bool {
        self.start_pending
    }

    fn ensure_idle(&self) -> Result<(), InstantiateError> {
        // SAFETY: read of our own vmctx while the guest is not running.
        let st = unsafe { (*self.vm.as_ptr()).status };
        if is_done_status(st) {
            Ok(())
        } else {
            Err(InstantiateError::CallInProgress)
        }
    }

    fn take_start(&mut self) -> usize {
        if std::mem::take(&mut self.start_pending) {
            self.core.module.start_addr()
        } else {
            0
        }
    }

    /// Arm `entry` (a wrapper, or 0) after `start` (or 0) with `args` in a
    /// value buffer of `cells` cells: the vmctx's own, or a larger one this
    /// instance owns for an export with more than [`MAX_VALUES`] values.
    fn arm(&mut self, entry: usize, start: usize, args: &[Val], cells: usize) {
        self.wake_at = None;
        let vm = self.vm.as_ptr();
        let vm_addr = vm as usize;
        let buf: *mut u64 = if cells > MAX_VALUES {
            self.big_values
                .insert(vec![0u64; cells].into_boxed_slice())
                .as_mut_ptr()
        } else {
            self.big_values = None;
            // SAFETY: a field of our own vmctx.
            unsafe { (&raw mut (*vm).values).cast::<u64>() }
        };
        // SAFETY: we own the vmctx and the slot's stack (&mut self); no call
        // is in progress, so nothing on the stack is live; `buf` holds
        // max(MAX_VALUES, cells) >= args.len() cells and lives until the
        // next arm (results are read from it until then).
        unsafe {
            for (i, a) in args.iter().enumerate() {
                buf.add(i).write(a.to_bits());
            }
            (*vm).values_ptr = buf;
            (*vm).entry = entry;
            (*vm).start = start;
            (*vm).trap_kind = 0;
            (*vm).host_sp = 0;
            // A host call the previous call left continuing
            // (`HostAction::Continue`, then ended from outside) is dead
            // with it: the trampoline must not repeat it at this call's
            // first resume after a yield.
            (*vm).again_fn = 0;
            (*vm).status = status::YIELDED;
            (*vm).guest_sp = arch::init_frame(vm_addr, vm);
        }
    }

    /// Run the guest until its slice ends at `deadline_tsc` (TSC ticks, see
    /// [`fuel::rdtsc`]), it finishes, or it traps. The first fuel refill is
    /// sized from the instance's measured rate.
    #[inline]
    pub fn resume(&mut self, deadline_tsc: u64) -> Outcome {
        self.resume_from(fuel::rdtsc(), deadline_tsc)
    }

    /// [`Instance::resume`] for a caller that has just read the TSC
    /// (`now_tsc`), saving a TSC read.
    #[inline]
    pub fn resume_from(&mut self, now_tsc: u64, deadline_tsc: u64) -> Outcome {
        // SAFETY: we own the vmctx (&mut self).
        let vm = unsafe { &mut *self.vm.as_ptr() };
        if vm.status == status::YIELDED {
            fuel::begin_slice(vm, now_tsc, deadline_tsc);
        }
        self.run()
    }

    /// Run one *fuel slice*: the guest runs until it has spent `units` of
    /// fuel (one unit per function entry and loop iteration), then yields,
    /// whatever the time. The deterministic alternative to a time slice:
    /// the same guest takes the same slices on any machine. A cancel
    /// request is seen at the end of the slice. Fuel limits apply as usual.
    pub fn resume_fuel(&mut self, units: u64) -> Outcome {
        // SAFETY: we own the vmctx (&mut self).
        let vm = unsafe { &mut *self.vm.as_ptr() };
        if vm.status == status::YIELDED {
            // Never grant past the fuel budget: a limit ends the instance
            // where it would in small slices, whatever `units` is.
            fuel::settle(vm);
            let left = vm.fuel_limit.saturating_sub(vm.fuel_used);
            let units = units.min(left).clamp(1, fuel::MAX_FUEL as u64) as i64;
            fuel::begin_slice_with_fuel(vm, fuel::rdtsc(), u64::MAX, units);
            vm.fuel_sliced = 1;
        }
        self.run()
    }

    /// Run with an explicit first fuel refill.
    pub fn resume_with_fuel(&mut self, deadline_tsc: u64, fuel: i64) -> Outcome {
        // SAFETY: we own the vmctx (&mut self).
        let vm = unsafe { &mut *self.vm.as_ptr() };
        if vm.status == status::YIELDED {
            fuel::begin_slice_with_fuel(vm, fuel::rdtsc(), deadline_tsc, fuel);
        }
        self.run()
    }

    fn run(&mut self) -> Outcome {
        let vm = self.vm.as_ptr();
        // SAFETY: we own the vmctx; status is only changed by the guest side
        // while we are switched in.
        let st = unsafe { (*vm).status };
        if st == status::YIELDED {
            if !signals::thread_ready() {
                // Without an alternate signal stack a fault would push the
                // kernel's signal frame onto the small instance stack.
                signals::thread_init().expect("cannot set up the signal stack for this thread");
            }
            let prev = CURRENT.with(|c| c.replace(vm));
            // SAFETY: guest_sp is a context saved by the guest's last yield
            // or built by init_frame; host_sp is written by the switch
            // before the guest can read it. The guest switches back exactly
            // once (yield, finish, or trap via abandon).
            unsafe {
                (*vm).status = status::RUNNING;
                arch::myriad_switch(&raw mut (*vm).host_sp, (*vm).guest_sp);
            }
            CURRENT.with(|c| c.set(prev));
            // A slice whose host call asked for a sleep takes the wake-up
            // instant it left on this thread (dropped with the instance if
            // that call then ended it some other way).
            // SAFETY: the guest has switched back; we own the vmctx.
            self.wake_at = unsafe {
                if (*vm).sleep_requested != 0 {
                    (*vm).sleep_requested = 0;
                    crate::host::take_sleep_request()
                } else {
                    None
                }
            };
        }
        self.outcome()
    }

    /// The outcome as of now (`Yielded` for a fresh instance).
    pub fn outcome(&self) -> Outcome {
        // SAFETY: the guest is not running (we hold &self outside run).
        let vm = unsafe { &*self.vm.as_ptr() };
        match vm.status {
            status::FINISHED => Outcome::Finished(
                self.results
                    .iter()
                    .enumerate()
                    // SAFETY: the armed buffer holds at least one cell per
                    // result and lives until the next arm.
                    .map(|(i, t)| Val::from_bits(*t, unsafe { vm.values_ptr.add(i).read() }))
                    .collect(),
            ),
            status::TRAPPED => Outcome::Trapped(
                TrapKind::from_code(vm.trap_kind as u8).unwrap_or(TrapKind::Unreachable),
            ),
            status::PARKED => Outcome::Parked,
            status::EXITED => Outcome::Exited(vm.exit_code),
            status::LIMITED => Outcome::Limited(
                crate::Limit::from_code(vm.trap_kind).unwrap_or(crate::Limit::CpuTime),
            ),
            _ => match self.wake_at {
                Some(at) => Outcome::Sleeping(at),
                None => Outcome::Yielded,
            },
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
        let p = self.vm.as_ptr().cast::<u8>();
        arch::prefetch(p);
        arch::prefetch(p.wrapping_add(64));
        arch::prefetch(p.wrapping_add(128));
        // SAFETY: a read of our own vmctx's field.
        let sp = unsafe { (*self.vm.as_ptr()).guest_sp } as *const u8;
        arch::prefetch(sp);
        arch::prefetch(sp.wrapping_add(arch::FRAME_BYTES - 1));
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

/// What an importer keeps of a host-made import (host functions live in
/// its host state, tables in its table state; imports from instances are
/// kept alive by the link group).
fn keep_alive(e: &Extern) -> Option<KeepAlive> {
    match e {
        Extern::Global(Global {
            owner: GlobalOwner::Host(cell),
            ..
        }) => Some(cell.clone()),
        Extern::Tag(t) => Some(t.keep_alive()),
        _ => None,
    }
}

/// The link group of a new instance: it joins the groups of every
/// instance it imports from, of every table it imports, and of every
/// mutable host `funcref` global it imports (see `crate::group` for why
/// every link counts). `None`, and no cost, for an instance that imports
/// only host functions, immutable host globals, tags or nothing.
fn link_group(core: &Arc<Core>, imports: &[Extern]) -> Option<GroupHandle> {
    let host_ref_cell = |g: &Global| match &g.owner {
        GlobalOwner::Host(cell) if g.mutable && g.ty == ValType::FuncRef => Some(cell.clone()),
        _ => None,
    };
    let links = |e: &Extern| match e {
        Extern::Table(_) => true,
        Extern::Global(g) => host_ref_cell(g).is_some() || e.group().is_some(),
        _ => e.group().is_some(),
    };
    if !imports.iter().any(links) {
        return None;
    }
    let group = GroupHandle::new(core.clone());
    for e in imports {
        if let Some(h) = e.group() {
            group.merge(h);
        }
        match e {
            Extern::Table(t) => group.join(t.clone() as Arc<dyn Shared>),
            Extern::Global(g) => {
                if let Some(cell) = host_ref_cell(g) {
                    group.join(cell as Arc<dyn Shared>);
                }
            }
            _ => {}
        }
    }
    Some(group)
}

/// Check `imports` against `module`'s import types (the spec's import
/// matching, with limits subtyping for memories and tables).
fn check_imports(module: &Module, imports: &[Extern]) -> Result<(), InstantiateError> {
    let md = module.metadata();
    if imports.len() != md.imports.len() {
        return Err(InstantiateError::ImportCount {
            expected: md.imports.len(),
            given: imports.len(),
        });
    }
    // Global and table indices of the imports seen so far.
    let (mut gi, mut ti) = (0usize, 0usize);
    for (imp, ext) in md.imports.iter().zip(imports) {
        let bad = |reason: String| InstantiateError::IncompatibleImport {
            module: imp.module.clone(),
            name: imp.name.clone(),
            reason,
        };
        let limits_ok = |cur: u64, max: Option<u64>, want_min: u64, want_max: Option<u64>| {
            cur >= want_min
                && match want_max {
                    None => true,
                    Some(wm) => max.is_some_and(|m| m <= wm),
                }
        };
        match (&imp.kind, ext) {
            (ImportKind::Func(t), Extern::Func(f)) => {
                let want = &md.types[*t as usize];
                if f.ty() != want {
                    return Err(bad(format!(
                        "expected a function {want:?}, got {:?}",
                        f.ty()
                    )));
                }
            }
            (ImportKind::Global { ty, mutable }, Extern::Global(g)) => {
                let want = md.global_refs.get(gi).copied().flatten();
                gi += 1;
                // Typed references: a mutable global's type must equal the
                // import's, an immutable one's must be a subtype of it.
                let refs_ok = match (g.precise, want.map(|w| module.canon_ref(w))) {
                    (Some(have), Some(want)) if *mutable => have == want,
                    (Some(have), Some(want)) => have.is_subtype_of(want),
                    _ => true,
                };
                if !refs_ok {
                    return Err(bad(format!(
                        "expected a global of reference type {:?}, got one of {:?}",
                        want, g.precise
                    )));
                }
                if g.ty != *ty || g.mutable != *mutable {
                    return Err(bad(format!(
                        "expected a {}global of type {ty:?}, got a {}global of type {:?}",
                        if *mutable { "mutable " } else { "" },
                        if g.mutable { "mutable " } else { "" },
                        g.ty
                    )));
                }
            }
            (ImportKind::Memory(want), Extern::Memory(m)) => {
                if m.decl.page_size_log2 != want.page_size_log2
                    || !limits_ok(m.pages(), m.decl.max_pages, want.min_pages, want.max_pages)
                {
                    return Err(bad(format!(
                        "expected a memory {want:?}, got one of {} pages declared {:?}",
                        m.pages(),
                        m.decl
                    )));
                }
            }
            (ImportKind::Table(want), Extern::Table(t)) => {
                let want_ref = md.table_refs.get(ti).map(|w| module.canon_ref(*w));
                ti += 1;
                // Table element types are invariant.
                if want_ref.is_some_and(|w| w != t.precise()) {
                    return Err(bad(format!(
                        "expected a table of {want_ref:?}, got one of {:?}",
                        t.precise()
                    )));
                }
                if t.ty() != want.ty || !limits_ok(t.len(), t.declared_max(), want.min, want.max) {
                    return Err(bad(format!(
                        "expected a table of {:?} (min {}, max {:?}), got one of {} elements (max {:?})",
                        want.ty,
                        want.min,
                        want.max,
                        t.len(),
                        t.declared_max()
                    )));
                }
            }
            (ImportKind::Tag(t), Extern::Tag(tag)) => {
                // Tag types match exactly (params and results).
                let want = &md.types[*t as usize];
                if tag.ty() != want {
                    return Err(bad(format!(
                        "expected a tag {want:?}, got one of {:?}",
                        tag.ty()
                    )));
                }
            }
            (kind, ext) => {
                let want = match kind {
                    ImportKind::Func(_) => "function",
                    ImportKind::Global { .. } => "global",
                    ImportKind::Memory(_) => "memory",
                    ImportKind::Table(_) => "table",
                    ImportKind::Tag(_) => "tag",
                };
                return Err(bad(format!("expected a {want}, got a {}", ext.kind_name())));
            }
        }
    }
    Ok(())
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("slot", &self.core.slot)
            .field("outcome", &self.outcome())
            .finish()
    }
}
