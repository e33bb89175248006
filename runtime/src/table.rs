//! Tables, `FuncRef` records and element segments of one instance.
//!
//! Table storage is runtime-owned memory outside the slot (a million tiny
//! instances without tables pay nothing). The vmctx header points at the
//! [`TableState`]'s descriptor array (`abi::vmctx::TABLES`), its `FuncRef`
//! array (`FUNC_REFS`) and the module's canonical type ids (`TYPE_IDS`).
//! The builtins that operate on this state (`builtins::table`) run on the
//! worker stack through the host-call trampoline ([`crate::arch`]). The
//! same state tracks dropped data segments for `memory.init`/`data.drop`,
//! and a `table.grow` done in parts across slices.

use crate::fuel::{charge_fuel, slice_over};
use crate::module::Module;
use crate::vmctx::VmCtx;
use myriad_abi::ValType;
use std::cell::UnsafeCell;
use std::sync::Arc;

/// Most elements the tables an instance defines may hold together
/// (initial sizes, and after every `table.grow`): 80 MB of table storage.
/// A memory limit ([`crate::Instance::set_memory_limit`]) counts table
/// storage too, so an embedder can bound it per instance far below this.
pub const MAX_TABLE_ELEMENTS: u64 = 10_000_000;

/// Bytes of table storage per element (what a memory limit counts).
pub const TABLE_ELEMENT_BYTES: u64 = 8;

pub use crate::vmctx::{FuncRef, TableDesc};

/// One table: its descriptor (what compiled code reads) and its element
/// storage. Shared (`Arc`) between the instance that defines it and every
/// instance that imports it; like an instance's memory, it is used by one
/// green thread at a time (instances linked by imports are run from one
/// thread at a time), which is what makes the interior mutability sound.
pub struct Table {
    desc: UnsafeCell<TableDesc>,
    elems: UnsafeCell<Vec<u64>>,
    ty: ValType,
    /// The precise element type (typed function references).
    precise: crate::types::CanonRef,
    max: u64,
    declared_max: Option<u64>,
    /// The link group whose instances may have stored function references
    /// here (see `crate::group`); weak, so a table the host holds does
    /// not keep instances alive.
    group: std::sync::Mutex<std::sync::Weak<crate::group::Node>>,
    /// Elements that instances importing this table added with
    /// `table.grow`: charged to them, so not to the table's owner.
    grown_by_importers: std::sync::atomic::AtomicU64,
}

impl crate::group::Shared for Table {
    fn group_slot(&self) -> &std::sync::Mutex<std::sync::Weak<crate::group::Node>> {
        &self.group
    }

    fn scrub(&self) {
        if self.ty == ValType::FuncRef {
            self.elems_mut().fill(0);
        }
    }
}

// SAFETY: see the type's doc: access is confined to one green thread at a
// time by the linking contract; the raw pointer in `desc` points into
// `elems`, owned by the table.
unsafe impl Send for Table {}
// SAFETY: as above.
unsafe impl Sync for Table {}

impl Table {
    /// A host-made table of `ty` with `len` null elements, growable to
    /// `max` (clamped to [`MAX_TABLE_ELEMENTS`]), for instances to import.
    pub fn new(ty: ValType, len: u64, max: Option<u64>) -> Arc<Table> {
        Table::with_init(ty, len, max, 0, None)
    }

    /// A table of `ty` with `len` elements of value `init` (raw bits the
    /// instantiation computed: null or the instance's own funcref).
    /// `precise` is its precise element type (plain `ty` if `None`).
    pub(crate) fn with_init(
        ty: ValType,
        len: u64,
        max: Option<u64>,
        init: u64,
        precise: Option<crate::types::CanonRef>,
    ) -> Arc<Table> {
        // Element types are always references (checked at load).
        let plain = || {
            crate::types::CanonRef::plain(ty).unwrap_or(crate::types::CanonRef(
                myriad_abi::RefPrecise {
                    nullable: true,
                    heap: myriad_abi::RefHeap::Func,
                },
            ))
        };
        let precise = precise.unwrap_or_else(plain);
        let mut elems = vec![init; len as usize];
        let desc = TableDesc {
            base: elems.as_mut_ptr(),
            len,
        };
        Arc::new(Table {
            desc: UnsafeCell::new(desc),
            elems: UnsafeCell::new(elems),
            ty,
            precise,
            max: max.unwrap_or(u64::MAX).min(MAX_TABLE_ELEMENTS).max(len),
            declared_max: max,
            group: std::sync::Mutex::new(std::sync::Weak::new()),
            grown_by_importers: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Precise element type (for link-time matching).
    pub(crate) fn precise(&self) -> crate::types::CanonRef {
        self.precise
    }

    /// Element type.
    pub fn ty(&self) -> ValType {
        self.ty
    }

    /// Most elements it may grow to.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The maximum its type declares, if any.
    pub fn declared_max(&self) -> Option<u64> {
        self.declared_max
    }

    /// Current length.
    pub fn len(&self) -> u64 {
        // SAFETY: see the type's doc.
        unsafe { (*self.desc.get()).len }
    }

    /// Whether the table has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The descriptor compiled code reads.
    pub(crate) fn desc_ptr(&self) -> *mut TableDesc {
        self.desc.get()
    }

    /// Element `i` as raw bits.
    pub fn get(&self, i: u64) -> Option<u64> {
        // SAFETY: see the type's doc.
        unsafe { (&*self.elems.get()).get(i as usize).copied() }
    }

    /// Set element `i` to an `externref` handle (any bits; guests cannot
    /// dereference one) or, in a `funcref` table, to null (the host cannot
    /// make function references: arbitrary bits would be a forged code
    /// pointer). False if out of bounds or not allowed.
    pub fn set(&self, i: u64, v: u64) -> bool {
        if self.ty == ValType::FuncRef && v != 0 {
            return false;
        }
        // SAFETY: see the type's doc.
        match unsafe { (&mut *self.elems.get()).get_mut(i as usize) } {
            Some(e) => {
                *e = v;
                true
            }
            None => false,
        }
    }

    /// The elements (tests, embedders).
    ///
    /// # Safety
    ///
    /// No guest may be using the table meanwhile.
    pub unsafe fn elements(&self) -> &[u64] {
        // SAFETY: per the contract.
        unsafe { &*self.elems.get() }
    }

    #[allow(clippy::mut_from_ref)]
    pub(crate) fn elems_mut(&self) -> &mut Vec<u64> {
        // SAFETY: see the type's doc; callers hold no other borrow.
        unsafe { &mut *self.elems.get() }
    }

    pub(crate) fn sync(&self) {
        let v = self.elems_mut();
        // SAFETY: see the type's doc.
        unsafe {
            let d = &mut *self.desc.get();
            d.base = v.as_mut_ptr();
            d.len = v.len() as u64;
        }
    }

    /// Start a grow by `delta`: reserve the room (no element is written and
    /// the length does not change). False when the table's maximum or the
    /// allocator refuses.
    pub(crate) fn grow_reserve(&self, delta: u64) -> bool {
        let v = self.elems_mut();
        (v.len() as u64)
            .checked_add(delta)
            .is_some_and(|new| new <= self.max)
            && v.try_reserve_exact(delta as usize).is_ok()
    }

    /// Write `init` into elements `from..to` past the current length of a
    /// grow reserved with [`Table::grow_reserve`]; the length stays the
    /// same, so the part written is invisible until [`Table::grow_finish`].
    pub(crate) fn grow_fill(&self, from: u64, to: u64, init: u64) {
        let spare = self.elems_mut().spare_capacity_mut();
        for e in &mut spare[from as usize..to as usize] {
            e.write(init);
        }
    }

    /// End a grow by `delta` whose new elements are all written: the new
    /// length becomes visible at once. Returns the old length.
    pub(crate) fn grow_finish(&self, delta: u64) -> i64 {
        let v = self.elems_mut();
        let old = v.len();
        // SAFETY: `grow_reserve` reserved `delta` elements past `old` and
        // `grow_fill` initialised all of them.
        unsafe { v.set_len(old + delta as usize) };
        self.sync();
        old as i64
    }

    /// Check `n` elements from `d`, then set the first `k` of them to
    /// `val`. 0, or 1 for out of bounds (nothing written).
    pub(crate) fn fill(&self, d: u64, val: u64, k: u64, n: u64) -> u64 {
        let v = self.elems_mut();
        match range(d, n, v.len()) {
            Some(r) => {
                let k = k.min(n) as usize;
                v[r.start..r.start + k].fill(val);
                0
            }
            None => 1,
        }
    }

    /// Copy `vals` to `at`; false (nothing written) if out of bounds.
    pub(crate) fn write(&self, at: u64, vals: &[u64]) -> bool {
        let v = self.elems_mut();
        match range(at, vals.len() as u64, v.len()) {
            Some(r) => {
                v[r].copy_from_slice(vals);
                true
            }
            None => false,
        }
    }
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("ty", &self.ty)
            .field("len", &self.len())
            .field("max", &self.max)
            .finish()
    }
}

/// A `table.grow` that fills its new elements over several slices: the room
/// is reserved up front, the elements are written in chunks, and the new
/// length becomes visible when all are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PendingGrow {
    table: usize,
    delta: u64,
    init: u64,
    /// The table's length when the grow began.
    old_len: u64,
    /// New elements written so far.
    written: u64,
}

/// What one call of the `table.grow` builtin came to.
pub(crate) enum GrowStep {
    /// Done: the old length, or -1 (refused by the table or the runtime's
    /// element cap).
    Done(i64),
    /// Past the memory limit: the instance ends with `Limit::Memory`.
    Limit,
    /// The slice ended with elements left to write: call again.
    More,
}

/// Per-instance table state: the tables it uses (imports first), its
/// `FuncRef` records, its element segments' values and which segments are
/// dropped.
pub struct TableState {
    /// Tables, imports first. Crate-private: a table handed out must join
    /// the instance's link group (see `Instance::export`).
    pub(crate) tables: Vec<Arc<Table>>,
    /// Descriptor pointers (`abi::vmctx::TABLES`), parallel to `tables`.
    pub desc_ptrs: Box<[*mut TableDesc]>,
    /// One record per defined function.
    pub func_refs: Box<[FuncRef]>,
    /// Address of imported function 0's record in vmctx.
    import_refs: usize,
    imported_funcs: usize,
    /// Tables `imported_tables..` are the instance's own (counted against
    /// its memory limit and [`MAX_TABLE_ELEMENTS`]).
    imported_tables: usize,
    /// Elements this instance added to imported tables with `table.grow`:
    /// charged to it like its own tables.
    imported_growth: u64,
    /// A `table.grow` done in parts across slices, in progress.
    pending_grow: Option<PendingGrow>,
    /// Each element segment's values (evaluated at instantiation).
    pub(crate) elem_values: Vec<Box<[u64]>>,
    /// Element segments dropped so far (active and declarative ones are
    /// dropped at instantiation).
    dropped: Vec<bool>,
    /// Data segments dropped so far (active ones are dropped at
    /// instantiation).
    pub(crate) data_dropped: Vec<bool>,
    pub(crate) module: Arc<Module>,
}

/// Bytes of table storage charged to the instance whose vmctx is `vm`
/// (its own tables and its growth of imported ones: what its memory limit
/// counts besides linear memory).
///
/// # Safety
///
/// `vm` is a live vmctx whose `table_state` is null or its live state,
/// not borrowed mutably elsewhere.
pub(crate) unsafe fn vm_table_bytes(vm: *const VmCtx) -> u64 {
    // SAFETY: per the contract.
    let state = unsafe { (*vm).table_state.cast::<TableState>().as_ref() };
    state.map_or(0, |s| s.charged_elements() * TABLE_ELEMENT_BYTES)
}

/// Bytes of linear memory charged to the instance whose vmctx is `vm`: its
/// own memory's length, 0 for an imported memory (charged to its owner).
///
/// # Safety
///
/// `vm` is a live vmctx.
pub(crate) unsafe fn vm_own_heap_len(vm: *const VmCtx) -> u64 {
    // SAFETY: per the contract (plain field reads).
    unsafe {
        if (*vm).memory_vmctx.cast_const() == vm {
            (*vm).heap_len
        } else {
            0
        }
    }
}

/// [`TableState::owns_func_ref`] for the instance whose vmctx is `vm`
/// (only null when it has no table state).
///
/// # Safety
///
/// `vm` is a live vmctx whose `table_state` is null or its live state.
pub(crate) unsafe fn vm_owns_func_ref(vm: *const VmCtx, bits: u64) -> bool {
    // SAFETY: per the contract.
    let state = unsafe { (*vm).table_state.cast::<TableState>().as_ref() };
    bits == 0 || state.is_some_and(|s| s.owns_func_ref(bits))
}

/// Bit `i` set when `types[i]` is `funcref`; `None` if one past the 32nd
/// is.
pub(crate) fn func_ref_mask(types: &[ValType]) -> Option<u32> {
    types
        .iter()
        .enumerate()
        .filter(|(_, t)| **t == ValType::FuncRef)
        .try_fold(0u32, |m, (i, _)| (i < 32).then(|| m | 1 << i))
}

impl TableState {
    /// The state for an instance whose vmctx is at `vmctx`: function
    /// records only; tables and segments are added by the instantiation.
    pub(crate) fn new(module: &Arc<Module>, vmctx: usize) -> Box<TableState> {
        let md = module.metadata();
        let func_refs: Box<[FuncRef]> = module
            .func_addrs()
            .iter()
            .zip(&md.func_types)
            .map(|(code, t)| FuncRef {
                code: *code,
                vmctx,
                type_id: u64::from(module.type_ids()[*t as usize]),
            })
            .collect();
        Box::new(TableState {
            tables: Vec::new(),
            desc_ptrs: Box::new([]),
            func_refs,
            import_refs: vmctx + module.layout().func_imports as usize,
            imported_funcs: md.num_imported_funcs(),
            imported_tables: md
                .imports
                .iter()
                .filter(|i| matches!(i.kind, myriad_abi::ImportKind::Table(_)))
                .count(),
            imported_growth: 0,
            pending_grow: None,
            elem_values: Vec::new(),
            dropped: vec![false; md.elems.len()],
            data_dropped: md.data.iter().map(|d| !d.passive).collect(),
            module: module.clone(),
        })
    }

    /// Set the tables (imports first) and their descriptor pointers.
    pub(crate) fn set_tables(&mut self, tables: Vec<Arc<Table>>) {
        self.desc_ptrs = tables.iter().map(|t| t.desc_ptr()).collect();
        self.tables = tables;
    }

    /// The funcref value of function `f` (imports first): the address of
    /// its record.
    pub fn func_ref_bits(&self, f: u32) -> u64 {
        let f = f as usize;
        match f.checked_sub(self.imported_funcs) {
            None => (self.import_refs + f * std::mem::size_of::<FuncRef>()) as u64,
            Some(d) => self
                .func_refs
                .get(d)
                .map_or(0, |r| r as *const FuncRef as u64),
        }
    }

    /// Whether `bits` is a funcref value this instance may be handed by
    /// the host: null, or the address of one of its own function records
    /// (an imported function's record in the vmctx or a defined
    /// function's in `func_refs`). Anything else would let safe embedder
    /// code forge a code pointer for `call_indirect`.
    pub fn owns_func_ref(&self, bits: u64) -> bool {
        const SIZE: usize = std::mem::size_of::<FuncRef>();
        let within = |base: usize, count: usize| {
            (bits as usize)
                .checked_sub(base)
                .is_some_and(|off| off % SIZE == 0 && off / SIZE < count)
        };
        bits == 0
            || within(self.import_refs, self.imported_funcs)
            || within(self.func_refs.as_ptr() as usize, self.func_refs.len())
    }

    /// Mark element segment `e` dropped.
    pub(crate) fn drop_elem(&mut self, e: usize) {
        if let Some(d) = self.dropped.get_mut(e) {
            *d = true;
        }
    }

    /// A copy of table `t`'s elements (tests, embedders). A copy, not a
    /// borrow: a shared table may be grown (reallocated) by another
    /// instance while the caller holds the result.
    pub fn table(&self, t: usize) -> Option<Vec<u64>> {
        // SAFETY: under the linking contract no instance using the table
        // runs while this (brief) copy is taken.
        self.tables.get(t).map(|t| unsafe { t.elements() }.to_vec())
    }

    /// Table elements charged to the instance: its own tables' and what
    /// it grew imported tables by.
    pub(crate) fn charged_elements(&self) -> u64 {
        self.defined_elements().saturating_add(self.imported_growth)
    }

    /// Elements of the tables the instance defines (not imports), less
    /// what importers grew them by (charged to those importers).
    pub(crate) fn defined_elements(&self) -> u64 {
        self.tables
            .iter()
            .skip(self.imported_tables)
            .map(|t| {
                t.len().saturating_sub(
                    t.grown_by_importers
                        .load(std::sync::atomic::Ordering::Relaxed),
                )
            })
            .sum()
    }

    /// `table.grow` of table `t` by `delta`: the old length or -1. The
    /// growth is charged to this instance, whoever owns the table: against
    /// [`MAX_TABLE_ELEMENTS`] (-1 past it) and against the memory limit
    /// together with the linear memory's `heap_bytes` (`Err(())` past it:
    /// the instance ends with `Limit::Memory`, as for `memory.grow`).
    /// One call of `table.grow` of table `t` by `delta`, in parts: checks
    /// and reserves on the first call, then writes [`TABLE_CHUNK`]
    /// elements at a time, charging their fuel, until all are written
    /// (`Done` with the old length) or the slice is over (`More`: the
    /// builtin is called again with the same arguments, and the guest
    /// sees one `table.grow`). The growth is charged to this instance,
    /// whoever owns the table: against [`MAX_TABLE_ELEMENTS`] (-1 past it)
    /// and against the memory limit together with the linear memory's
    /// `heap_bytes` (`Limit` past it: the instance ends with
    /// `Limit::Memory`, as for `memory.grow`).
    ///
    /// # Safety
    ///
    /// `exec` is the running green thread's live context.
    pub(crate) unsafe fn grow_step(
        &mut self,
        t: usize,
        delta: u64,
        init: u64,
        heap_bytes: u64,
        limit: u64,
        exec: *mut VmCtx,
    ) -> GrowStep {
        let Some(table) = self.tables.get(t).cloned() else {
            return GrowStep::Done(-1);
        };
        let resuming = self.pending_grow.filter(|p| {
            p.table == t && p.delta == delta && p.init == init && p.old_len == table.len()
        });
        let mut pending = match resuming {
            Some(p) => p,
            None => {
                // A grow the table itself refuses fails as the spec says
                // (-1), whatever the limits.
                if table.len().checked_add(delta).is_none_or(|n| n > table.max) {
                    return GrowStep::Done(-1);
                }
                // The instance that grows a table pays for it: its own
                // tables count fully, and growth it made of imported tables
                // counts too, so linking cannot multiply what one instance
                // may allocate.
                let Some(total) = self.charged_elements().checked_add(delta) else {
                    return GrowStep::Done(-1);
                };
                if total > MAX_TABLE_ELEMENTS {
                    return GrowStep::Done(-1);
                }
                if total
                    .saturating_mul(TABLE_ELEMENT_BYTES)
                    .saturating_add(heap_bytes)
                    > limit
                {
                    return GrowStep::Limit;
                }
                if !table.grow_reserve(delta) {
                    return GrowStep::Done(-1);
                }
                PendingGrow {
                    table: t,
                    delta,
                    init,
                    old_len: table.len(),
                    written: 0,
                }
            }
        };
        while pending.written < delta {
            let to = pending.written.saturating_add(TABLE_CHUNK).min(delta);
            table.grow_fill(pending.written, to, init);
            // SAFETY: per the contract.
            unsafe { charge_fuel(exec, to - pending.written) };
            pending.written = to;
            // SAFETY: per the contract.
            if pending.written < delta && unsafe { slice_over(exec) } {
                self.pending_grow = Some(pending);
                return GrowStep::More;
            }
        }
        self.pending_grow = None;
        let old = table.grow_finish(delta);
        if t < self.imported_tables {
            self.imported_growth += delta;
            table
                .grown_by_importers
                .fetch_add(delta, std::sync::atomic::Ordering::Relaxed);
        }
        GrowStep::Done(old)
    }

    /// `table.fill` bounds check of `n` elements from `d`, then fill the
    /// first `k` of them. 0, or 1 for out of bounds (nothing written);
    /// the same shape for `copy` and `init`.
    pub(crate) fn fill(&mut self, t: usize, d: u64, val: u64, k: u64, n: u64) -> u64 {
        match self.tables.get(t) {
            Some(t) => t.fill(d, val, k, n),
            None => 1,
        }
    }

    pub(crate) fn copy(&mut self, dt: usize, st: usize, d: u64, s: u64, k: u64, n: u64) -> u64 {
        let (Some(dtab), Some(stab)) = (self.tables.get(dt), self.tables.get(st)) else {
            return 1;
        };
        let (Some(dr), Some(sr)) = (
            range(d, n, dtab.len() as usize),
            range(s, n, stab.len() as usize),
        ) else {
            return 1;
        };
        let k = k.min(n) as usize;
        let sr = sr.start..sr.start + k;
        if Arc::ptr_eq(dtab, stab) {
            dtab.elems_mut().copy_within(sr, dr.start);
        } else {
            // Distinct tables: their element vectors do not overlap.
            let src = stab.elems_mut()[sr].as_ptr();
            let dst = &mut dtab.elems_mut()[dr.start..dr.start + k];
            // SAFETY: `src` points at k initialised elements of another
            // table, alive and not written while this copy runs.
            dst.copy_from_slice(unsafe { std::slice::from_raw_parts(src, k) });
        }
        0
    }

    pub(crate) fn init(&mut self, t: usize, e: usize, d: u64, s: u64, k: u64, n: u64) -> u64 {
        let Some(seg) = self.elem_values.get(e) else {
            return 1;
        };
        let seg_len = if self.dropped.get(e).copied().unwrap_or(true) {
            0
        } else {
            seg.len()
        };
        let Some(sr) = range(s, n, seg_len) else {
            return 1;
        };
        let Some(tab) = self.tables.get(t) else {
            return 1;
        };
        let Some(dr) = range(d, n, tab.len() as usize) else {
            return 1;
        };
        let k = k.min(n) as usize;
        tab.elems_mut()[dr.start..dr.start + k].copy_from_slice(&seg[sr.start..sr.start + k]);
        0
    }
}

/// `start..start+n` if it lies within `0..len`.
pub(crate) fn range(start: u64, n: u64, len: usize) -> Option<std::ops::Range<usize>> {
    let end = start.checked_add(n)?;
    if end > len as u64 {
        return None;
    }
    Some(start as usize..end as usize)
}

/// Elements a chunked table builtin (`table.fill/copy/init`) handles
/// between two looks at the slice (about a microsecond of work), so these
/// operations are preemptible at the quantum's granularity.
pub const TABLE_CHUNK: u64 = 4096;
