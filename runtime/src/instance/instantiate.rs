//! Creating an instance.

use super::imports::{check_imports, keep_alive, link};
use super::{check_call, check_frame_fits, Core, Instance, InstantiateError};
use crate::arch;
use crate::externs::Imports;
use crate::externs::{Extern, Func, Memory, Tag};
use crate::group::{LinkRefused, Linking};
use crate::host::{HostFuncs, HostState};
use crate::module::Module;
use crate::region::Region;
use crate::region::STACK_RESERVE;
use crate::table::{FuncRef, Table, TableState, MAX_TABLE_ELEMENTS};
use crate::values::Val;
use crate::vmctx::{status, VmCtx, MAX_VALUES};
use myriad_abi::{self as abi, ElemItem, ElemMode, ImportKind};
use std::any::Any;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, OnceLock};

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
        Self::instantiate_inner(region, module, imports, None, data)
    }

    /// [`Instance::instantiate_with`] with imports prepared once for many
    /// instances: the instance shares the set's host-function table
    /// instead of building its own.
    pub fn instantiate_imports(
        region: &Arc<Region>,
        module: &Arc<Module>,
        imports: &Imports,
        data: Option<Box<dyn Any + Send>>,
    ) -> Result<Instance, InstantiateError> {
        Self::instantiate_inner(region, module, imports.externs(), Some(imports), data)
    }

    #[inline(always)]
    fn instantiate_inner(
        region: &Arc<Region>,
        module: &Arc<Module>,
        imports: &[Extern],
        prepared: Option<&Imports>,
        data: Option<Box<dyn Any + Send>>,
    ) -> Result<Instance, InstantiateError> {
        // Everything that can be refused is refused before a slot is taken.
        // A prepared set that passed the import check for this module
        // passes it again (see `Imports::checked_for`).
        let checked = prepared.is_some_and(|p| p.checked_for(module));
        let plan = Plan::check(region, module, imports, checked)?;
        if let Some(p) = prepared.filter(|_| !checked) {
            p.mark_checked(module);
        }
        let funcs = prepared.map(Imports::funcs);
        // From here on the Core owns the slot: an error drops it, which
        // zeroes what was written and releases the slot.
        let mut core = take_slot(region, module, imports, &plan)?;
        // Join the groups this instance links to before anything of it
        // can reach their code or theirs its own; no other thread runs
        // them until it is made (see `crate::group::link_new`).
        let linking = link(core.vm.as_ptr(), imports).map_err(|e| match e {
            LinkRefused::BothRunning => InstantiateError::LinkedGroupsRunning,
            LinkRefused::WouldDeadlock => InstantiateError::LinkWouldDeadlock,
        })?;
        bind_host_state(&mut core, imports, funcs, data);
        let (imported_tables, tags) = bind_imports(&mut core, imports);
        let cells = GlobalCells::new(&core);
        let mut tables = module
            .needs_table_state()
            .then(|| TableState::new(module, core.vm_addr() as usize));
        init_globals(&core, &cells, tables.as_deref());
        if let Some(t) = tables.as_mut() {
            build_tables(&core, &cells, t, imported_tables);
        }
        core.tables = tables;
        // Segments in order; if one fails, what earlier ones stored (also
        // in imported tables and memories) stays: spec semantics.
        let failed = apply_elem_segments(&mut core, &cells)
            .and_then(|()| apply_data_segments(&core, &cells))
            .err();
        finish(core, linking, imports, tags, failed)
    }
}

// The phases below are the steps of one function, split to be read one at a
// time; each is `#[inline(always)]` so instantiation stays one function in
// the binary. Out of line, the moves of the vmctx-sized values between them
// cost about 40 ns per instantiation (225 ns against 185 ns in
// `instance/instantiate_warm_16k`).

/// What instantiation needs to know before it takes a slot: the initial
/// memory and its bounds. Made by [`Plan::check`], which refuses whatever
/// cannot work.
struct Plan {
    /// Initial heap length in bytes (0 for an imported or no memory).
    heap_len: u64,
    /// Most bytes the heap may grow to in this slot.
    heap_max: u64,
    /// log2 of the memory's page size.
    page_log2: u32,
}

impl Plan {
    /// Check imports (types, host-import stub frames), the initial memory
    /// against the slot, guard assumptions and the tables' initial sizes.
    #[inline(always)]
    fn check(
        region: &Region,
        module: &Module,
        imports: &[Extern],
        imports_checked: bool,
    ) -> Result<Plan, InstantiateError> {
        let md = module.metadata();
        if !imports_checked {
            check_imports(module, imports)?;
        }
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
        if md.guard_bytes > 0 || md.heap_reservation > 0 {
            check_guard(region, module, page_log2)?;
        }
        let table_elements = md
            .tables
            .iter()
            .fold(0u64, |sum, t| sum.saturating_add(t.min));
        if table_elements > MAX_TABLE_ELEMENTS {
            return Err(InstantiateError::TableTooLarge(table_elements));
        }
        Ok(Plan {
            heap_len,
            heap_max,
            page_log2,
        })
    }
}

/// Code that relies on faulting guard bytes needs a guard-mode region with
/// guards at least that large (and, in sparse mode, heaps at least as
/// large as the reservation it relies on), its own memory, and pages of at
/// least 4 KiB (so the heap end is page aligned).
fn check_guard(region: &Region, module: &Module, page_log2: u32) -> Result<(), InstantiateError> {
    let md = module.metadata();
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
    if (region.heap_reservation() as u64) < md.heap_reservation {
        return Err(InstantiateError::GuardMismatch(format!(
            "the module relies on a heap reservation of {} bytes (sparse mode) but the region reserves {} bytes per heap",
            md.heap_reservation,
            region.heap_reservation()
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
    Ok(())
}

/// Phase "slot and vmctx": take a free slot, open its initial heap (guard
/// mode), write the whole vmctx, and hand the slot to a [`Core`].
#[inline(always)]
fn take_slot(
    region: &Arc<Region>,
    module: &Arc<Module>,
    imports: &[Extern],
    plan: &Plan,
) -> Result<Core, InstantiateError> {
    let slot = region.alloc().ok_or(InstantiateError::RegionFull)?;
    let heap_open = if region.guard_mode() {
        match region.set_heap_open(slot, plan.heap_len) {
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
            heap_base: region.heap_base(slot),
            heap_len: plan.heap_len,
            fn_fuel_exhausted: arch::fuel_exhausted_addr(),
            fn_memory_grow: arch::memory_grow_addr(),
            type_ids: module.type_ids().as_ptr(),
            tables: std::ptr::null(),
            func_refs: std::ptr::null(),
            fn_table: arch::table_builtin_addrs(),
            fn_host_call: arch::host_import_addr(),
            fn_memory_fill: arch::memory_builtin_addrs()[0],
            fn_memory_copy: arch::memory_builtin_addrs()[1],
            exec: vm,
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
            page_size_log2: plan.page_log2 as u8,
            heap_capacity: plan.heap_max,
            heap_limit: u64::MAX,
            own_stack_limit: (stack_bottom + STACK_RESERVE) as u64,
            heap_open,
            fuel_rate: 0,
            slow_path_calls: 0,
            deadline_kicks: 0,
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
            host_funcs: std::ptr::null(),
            host_funcs_len: 0,
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
            async_slice: 0,
            async_suspended: 0,
            fuel_pending: 0,
            pending_fuel: 0,
            async_preempts: 0,
        });
    }
    Ok(Core {
        vm: NonNull::new(vm).ok_or(InstantiateError::RegionFull)?,
        slot,
        region: region.clone(),
        module: module.clone(),
        tables: None,
        host: None,
        memory_import,
        _imports: imports.iter().filter_map(keep_alive).collect(),
        account: None,
    })
}

/// Phase "host state": instances that import host functions or carry
/// embedder data get a [`HostState`] the vmctx points to.
#[inline(always)]
fn bind_host_state(
    core: &mut Core,
    imports: &[Extern],
    funcs: Option<&HostFuncs>,
    data: Option<Box<dyn Any + Send>>,
) {
    let needs_host = imports
        .iter()
        .any(|e| matches!(e, Extern::Func(Func::Host(_))))
        || data.is_some();
    if !needs_host {
        return;
    }
    // The table is indexed by function import; `Plan::check` matched
    // `imports` to the module's imports, so it has one entry for each.
    let funcs = funcs.map_or_else(|| crate::externs::host_funcs(imports), Arc::clone);
    let mut host = Box::new(HostState {
        funcs,
        data,
        message: None,
    });
    // SAFETY: we own the vmctx; the box (and the table it holds) lives in
    // the Core as long as the vmctx.
    unsafe {
        let vm = core.vm.as_ptr();
        (*vm).host_state = (&mut *host as *mut HostState).cast();
        (*vm).host_funcs = host.funcs.as_ptr().cast();
        (*vm).host_funcs_len = host.funcs.len();
    }
    core.host = Some(host);
}

/// Phase "imports": write the import records into the vmctx (function
/// records, global cell pointers, the memory's vmctx); returns the
/// imported tables and tags, in import order.
#[inline(always)]
fn bind_imports(core: &mut Core, imports: &[Extern]) -> (Vec<Arc<Table>>, Vec<Tag>) {
    let vm_addr = core.vm_addr();
    let module = &core.module;
    let md = module.metadata();
    let layout = module.layout();
    let (mut fi, mut gi) = (0u32, 0u32);
    let mut imported_tables: Vec<Arc<Table>> = Vec::new();
    let mut tags: Vec<Tag> = Vec::new();
    for (imp, ext) in md.imports.iter().zip(imports) {
        match (&imp.kind, ext) {
            (ImportKind::Func(t), Extern::Func(f)) => {
                let type_id = u64::from(module.type_ids()[*t as usize]);
                let rec = match f {
                    Func::Host(_) => FuncRef {
                        code: module.stub(fi as usize),
                        vmctx: vm_addr as usize,
                        type_id,
                    },
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
                // SAFETY: as above, the cell pointer of global import `gi`.
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
    (imported_tables, tags)
}

/// The global cells of a new instance: its defined globals in the vmctx
/// and its imported ones through their cell pointers, for constant
/// expressions to read.
struct GlobalCells {
    vm_addr: *mut u8,
    /// Defined global 0 (`vmctx + abi::vmctx::GLOBALS`).
    defined: *mut u64,
    imported: usize,
    layout: abi::vmctx::Layout,
}

impl GlobalCells {
    #[inline(always)]
    fn new(core: &Core) -> GlobalCells {
        let vm_addr = core.vm_addr();
        GlobalCells {
            vm_addr,
            // SAFETY: global cells follow the header inside the vmctx area.
            defined: unsafe { vm_addr.add(abi::vmctx::GLOBALS as usize).cast::<u64>() },
            imported: core.module.metadata().num_imported_globals(),
            layout: core.module.layout(),
        }
    }

    /// The current value of global `g` (imports first).
    fn read(&self, g: u32) -> u64 {
        // SAFETY: indices were checked at load; imported cells are live
        // (their owners are kept alive by the Core).
        unsafe {
            match (g as usize).checked_sub(self.imported) {
                None => self
                    .vm_addr
                    .add(self.layout.global_import(g) as usize)
                    .cast::<*const u64>()
                    .read()
                    .read(),
                Some(d) => self.defined.add(d).read(),
            }
        }
    }
}

/// Phase "globals": the plain template, then initialisers that read
/// imports or take function references, in order.
#[inline(always)]
fn init_globals(core: &Core, cells: &GlobalCells, tables: Option<&TableState>) {
    let module = &core.module;
    let md = module.metadata();
    let init = module.globals_init();
    // SAFETY: init.len() == defined globals, all inside the vmctx area.
    unsafe { std::ptr::copy_nonoverlapping(init.as_ptr(), cells.defined, init.len()) };
    for &i in module.globals_dynamic() {
        let v = md.globals[i as usize]
            .init
            .eval(
                |g| cells.read(g),
                |f| tables.map_or(0, |t| t.func_ref_bits(f)),
            )
            .unwrap_or(0);
        // SAFETY: i < defined globals.
        unsafe { cells.defined.add(i as usize).write(v) };
    }
}

/// Phase "tables": the imported tables, then one per defined table filled
/// with its initial value; element segments' values evaluated; the vmctx
/// pointed at the descriptors and function records.
#[inline(always)]
fn build_tables(core: &Core, cells: &GlobalCells, t: &mut TableState, imported: Vec<Arc<Table>>) {
    let module = &core.module;
    let md = module.metadata();
    let mut all = imported;
    let n_imported = all.len();
    for (i, decl) in md.tables.iter().enumerate() {
        let init = decl
            .init
            .eval(|g| cells.read(g), |f| t.func_ref_bits(f))
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
                    ElemItem::Global(g) => cells.read(g),
                })
                .collect()
        })
        .collect();
    let vm = core.vm.as_ptr();
    // SAFETY: we own the vmctx; the boxed state lives in the Core.
    unsafe {
        (*vm).tables = t.desc_ptrs.as_ptr().cast();
        (*vm).func_refs = t.func_refs.as_ptr();
        (*vm).table_state = (t as *mut TableState).cast();
    }
}

/// Phase "element segments": active ones written into their tables in
/// module order (and dropped), declarative ones dropped.
#[inline(always)]
fn apply_elem_segments(core: &mut Core, cells: &GlobalCells) -> Result<(), InstantiateError> {
    let Core { module, tables, .. } = core;
    let Some(t) = tables.as_mut() else {
        return Ok(());
    };
    for (i, e) in module.metadata().elems.iter().enumerate() {
        match &e.mode {
            ElemMode::Passive => {}
            ElemMode::Declared => t.drop_elem(i),
            ElemMode::Active { table, offset } => {
                let at = offset.eval(|g| cells.read(g), |_| 0).unwrap_or(u64::MAX) & 0xffff_ffff;
                let ok = t
                    .tables
                    .get(*table as usize)
                    .is_some_and(|tab| tab.write(at, &t.elem_values[i]));
                if !ok {
                    return Err(InstantiateError::ElemSegmentOutOfBounds { index: i });
                }
                t.drop_elem(i);
            }
        }
    }
    Ok(())
}

/// Phase "data segments": active ones copied in module order into this
/// instance's memory or the imported one.
#[inline(always)]
fn apply_data_segments(core: &Core, cells: &GlobalCells) -> Result<(), InstantiateError> {
    // SAFETY: memory_vmctx is our vmctx or the live exporter's.
    let mem = unsafe { &*(*core.vm.as_ptr()).memory_vmctx };
    for (index, d) in core.module.metadata().data.iter().enumerate() {
        if d.passive {
            continue;
        }
        let offset = d.offset.eval(|g| cells.read(g), |_| 0).unwrap_or(u64::MAX) & 0xffff_ffff;
        if offset
            .checked_add(d.bytes.len() as u64)
            .is_none_or(|end| end > mem.heap_len)
        {
            return Err(InstantiateError::DataSegmentOutOfBounds {
                index,
                offset,
                len: d.bytes.len(),
                memory: mem.heap_len,
            });
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
    Ok(())
}

/// Phase "linking": make the instance's core a member of the link group
/// it joined (see [`link`]), give the defined tags fresh identities, and
/// make the [`Instance`] — or report the segment that failed.
#[inline(always)]
fn finish(
    core: Core,
    linking: Option<Linking>,
    imports: &[Extern],
    mut tags: Vec<Tag>,
    failed: Option<InstantiateError>,
) -> Result<Instance, InstantiateError> {
    let core = Arc::new(core);
    // On failure, element segments may already have stored this instance's
    // function references in imported tables (spec semantics: they stay),
    // so the group keeps the failed instance alive as long as it needs to.
    let group = linking.map(|l| l.finish(core.clone()));
    if let Some(e) = failed {
        drop(group);
        return Err(e);
    }
    let md = core.module.metadata();
    // Defined tags: a fresh identity each, per instance. Their types were
    // checked at load (in range, no results).
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
        results: &[],
        start_pending: core.module.start_addr() != 0,
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
        switched_in: false,
        core,
    })
}
