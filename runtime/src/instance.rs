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

use crate::fuel;
use crate::host_call;
use crate::module::Module;
use crate::region::Region;
use crate::signals::{self, CURRENT};
use crate::switch;
use crate::vmctx::{status, VmCtx, MAX_VALUES};
use myriad_codegen::abi::{TrapKind, ValType};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Bytes at the bottom of each instance stack kept below `stack_limit` for
/// the frames of builtin trampolines and context switches (and the
/// overshoot of a frame-less leaf function past the limit check).
pub const STACK_RESERVE: usize = 1024;

/// A WebAssembly value passed to or returned from an export.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Val {
    /// `i32`
    I32(i32),
    /// `i64`
    I64(i64),
    /// `f32`
    F32(f32),
    /// `f64`
    F64(f64),
    /// `funcref`: raw pointer bits of a `FuncRef` record of this instance
    /// (0 is null).
    FuncRef(u64),
    /// `externref`: opaque host handle (0 is null).
    ExternRef(u64),
}

impl Val {
    /// The value's type.
    pub fn ty(&self) -> ValType {
        match self {
            Val::I32(_) => ValType::I32,
            Val::I64(_) => ValType::I64,
            Val::F32(_) => ValType::F32,
            Val::F64(_) => ValType::F64,
            Val::FuncRef(_) => ValType::FuncRef,
            Val::ExternRef(_) => ValType::ExternRef,
        }
    }

    fn to_bits(self) -> u64 {
        match self {
            Val::I32(v) => v as u32 as u64,
            Val::I64(v) => v as u64,
            Val::F32(v) => v.to_bits() as u64,
            Val::F64(v) => v.to_bits(),
            Val::FuncRef(v) | Val::ExternRef(v) => v,
        }
    }

    fn from_bits(ty: ValType, bits: u64) -> Val {
        match ty {
            ValType::I32 => Val::I32(bits as u32 as i32),
            ValType::I64 => Val::I64(bits as i64),
            ValType::F32 => Val::F32(f32::from_bits(bits as u32)),
            ValType::F64 => Val::F64(f64::from_bits(bits)),
            ValType::FuncRef => Val::FuncRef(bits),
            ValType::ExternRef => Val::ExternRef(bits),
        }
    }
}

/// How a [`Instance::resume`] call ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Suspended at a preemption point (deadline reached or cancel
    /// requested); resume again to continue.
    Yielded,
    /// The export returned these results. Further resumes return this again.
    Finished(Vec<Val>),
    /// A trap ended the instance. Further resumes return this again.
    Trapped(TrapKind),
}

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
    /// The export passes more values than the vmctx value area holds.
    #[error("export {export:?} has {count} parameters or results; at most {max} are supported")]
    TooManyValues {
        /// The export.
        export: String,
        /// Parameters or results.
        count: usize,
        /// [`MAX_VALUES`].
        max: usize,
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
    /// A table's initial size is larger than the runtime allows.
    #[error("a table of {0} elements is larger than the runtime allows")]
    TableTooLarge(u64),
    /// Guard-mode protection change failed.
    #[error("cannot open heap pages: {0}")]
    Protect(String),
    /// [`Instance::call`] while the previous call is suspended (`Yielded`).
    #[error("a call is in progress (suspended); resume it to completion first")]
    CallInProgress,
}

/// A running (or runnable) instance. `Send`, not `Sync`: it may move
/// between worker threads between slices, but only one thread resumes it.
pub struct Instance {
    vm: NonNull<VmCtx>,
    slot: u32,
    results: Box<[ValType]>,
    region: Arc<Region>,
    module: Arc<Module>,
    /// The start function has not been armed yet.
    start_pending: bool,
    /// Tables and FuncRef records (pointed to by the vmctx), if the module
    /// needs them.
    tables: Option<Box<crate::table::TableState>>,
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
    for count in [ty.params.len(), ty.results.len()] {
        if count > MAX_VALUES {
            return Err(InstantiateError::TooManyValues {
                export: export.to_owned(),
                count,
                max: MAX_VALUES,
            });
        }
    }
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
        check_call(module, export, args)?;
        let mut inst = Instance::instantiate(region, module)?;
        inst.call(export, args)?;
        Ok(inst)
    }

    /// Create an instance of `module` in a free slot of `region` with no
    /// call armed: the vmctx is written (header, runtime fields, initial
    /// globals) and the data segments are copied into the heap. Arm calls
    /// with [`Instance::call`]; the instance's memory and globals persist
    /// across calls (and across traps) until it is dropped.
    ///
    /// The module's start function, if any, is still pending: it runs
    /// exactly once, on the guest stack, right before the first armed
    /// export call (inside the same armed call, so a trap in it is reported
    /// as that call's trap), or on its own via [`Instance::call_start`].
    /// Until a call is armed, [`Instance::outcome`] is `Finished([])` and
    /// resuming does nothing.
    pub fn instantiate(
        region: &Arc<Region>,
        module: &Arc<Module>,
    ) -> Result<Instance, InstantiateError> {
        let md = module.metadata();
        let capacity = region.heap_capacity() as u64;
        let (heap_len, heap_max, page_log2) = match &md.memory {
            None => (0, 0, 16),
            Some(m) => {
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
            if md.memory.is_some() && page_log2 < 12 {
                return Err(InstantiateError::GuardMismatch(
                    "guard-relying code needs a memory page size of at least 4 KiB (the heap end must be page aligned)".into(),
                ));
            }
        }
        crate::table::check_module(module).map_err(|e| match e {
            crate::table::TableInitError::TooLarge(n) => InstantiateError::TableTooLarge(n),
            crate::table::TableInitError::SegmentOutOfBounds(index) => {
                InstantiateError::ElemSegmentOutOfBounds { index }
            }
        })?;
        for (index, d) in md.data.iter().enumerate() {
            if d.passive {
                continue;
            }
            if d.offset
                .checked_add(d.bytes.len() as u64)
                .is_none_or(|end| end > heap_len)
            {
                return Err(InstantiateError::DataSegmentOutOfBounds {
                    index,
                    offset: d.offset,
                    len: d.bytes.len(),
                    memory: heap_len,
                });
            }
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
        let mut tables = crate::table::needed(module)
            .then(|| crate::table::TableState::new(module, vm_addr as usize));
        let table_state: *mut std::ffi::c_void = match &mut tables {
            Some(t) => (&mut **t as *mut crate::table::TableState).cast(),
            None => std::ptr::null_mut(),
        };
        // SAFETY: the slot is ours alone until released; its vmctx area is
        // inside the region mapping, 64-byte aligned, and large enough for
        // the header plus globals (checked when the module was loaded).
        unsafe {
            vm.write(VmCtx {
                fuel: 0,
                stack_limit: (stack_bottom + STACK_RESERVE) as u64,
                heap_base,
                heap_len,
                fn_fuel_exhausted: host_call::fuel_exhausted_addr(),
                fn_memory_grow: host_call::memory_grow_addr(),
                type_ids: module.type_ids().as_ptr(),
                tables: tables
                    .as_ref()
                    .map_or(std::ptr::null(), |t| t.descs.as_ptr()),
                func_refs: tables
                    .as_ref()
                    .map_or(std::ptr::null(), |t| t.func_refs.as_ptr()),
                fn_table: host_call::table_builtin_addrs(),
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
                heap_open,
                fuel_rate: 0,
                slow_path_calls: 0,
                trap_table: trap_table.as_ptr(),
                trap_table_len: trap_table.len(),
                entry: 0,
                start: 0,
                guard_mode: region.guard_mode() as u32,
                _pad: 0,
                table_state,
                values: [0u64; MAX_VALUES],
            });
            let globals = vm_addr
                .add(myriad_codegen::abi::vmctx::GLOBALS as usize)
                .cast::<u64>();
            let init = module.globals_init();
            std::ptr::copy_nonoverlapping(init.as_ptr(), globals, init.len());
            if let Some(t) = &tables {
                for (i, g) in md.globals.iter().enumerate() {
                    if g.ty == ValType::FuncRef {
                        globals.add(i).write(t.global_bits(g.ty, g.init));
                    }
                }
            }
            for d in md.data.iter().filter(|d| !d.passive) {
                std::ptr::copy_nonoverlapping(
                    d.bytes.as_ptr(),
                    heap_base.add(d.offset as usize),
                    d.bytes.len(),
                );
            }
        }
        Ok(Instance {
            // SAFETY: vm_addr is inside the mapping, never null.
            vm: unsafe { NonNull::new_unchecked(vm) },
            slot,
            results: Box::new([]),
            region: region.clone(),
            module: module.clone(),
            start_pending: module.start_addr() != 0,
            tables,
        })
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
        let module = self.module.clone();
        let info = check_call(&module, export, args)?;
        self.ensure_idle()?;
        let mut values = [0u64; MAX_VALUES];
        for (v, a) in values.iter_mut().zip(args) {
            *v = a.to_bits();
        }
        self.results = info.ty.results.clone().into_boxed_slice();
        let start = self.take_start();
        self.arm(info.wrapper, start, values);
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
        self.arm(0, start, [0u64; MAX_VALUES]);
        Ok(true)
    }

    /// Whether the start function has yet to be armed.
    pub fn start_pending(&self) -> bool {
        self.start_pending
    }

    fn ensure_idle(&self) -> Result<(), InstantiateError> {
        // SAFETY: read of our own vmctx while the guest is not running.
        let st = unsafe { (*self.vm.as_ptr()).status };
        if st == status::FINISHED || st == status::TRAPPED {
            Ok(())
        } else {
            Err(InstantiateError::CallInProgress)
        }
    }

    fn take_start(&mut self) -> usize {
        if std::mem::take(&mut self.start_pending) {
            self.module.start_addr()
        } else {
            0
        }
    }

    fn arm(&mut self, entry: usize, start: usize, values: [u64; MAX_VALUES]) {
        let vm = self.vm.as_ptr();
        let vm_addr = vm as usize;
        // SAFETY: we own the vmctx and the slot's stack (&mut self); no call
        // is in progress, so nothing on the stack is live.
        unsafe {
            (*vm).entry = entry;
            (*vm).start = start;
            (*vm).values = values;
            (*vm).trap_kind = 0;
            (*vm).host_sp = 0;
            (*vm).status = status::YIELDED;
            (*vm).guest_sp = switch::init_frame(vm_addr, vm);
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
                switch::myriad_switch(&raw mut (*vm).host_sp, (*vm).guest_sp);
            }
            CURRENT.with(|c| c.set(prev));
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
                    .zip(vm.values.iter())
                    .map(|(t, b)| Val::from_bits(*t, *b))
                    .collect(),
            ),
            status::TRAPPED => Outcome::Trapped(
                TrapKind::from_code(vm.trap_kind as u8).unwrap_or(TrapKind::Unreachable),
            ),
            _ => Outcome::Yielded,
        }
    }

    /// Whether the instance finished or trapped.
    pub fn is_done(&self) -> bool {
        // SAFETY: read of our own vmctx while the guest is not running.
        let st = unsafe { (*self.vm.as_ptr()).status };
        st == status::FINISHED || st == status::TRAPPED
    }

    /// TSC value read by the slow path when the instance last yielded.
    pub fn yield_tsc(&self) -> u64 {
        // SAFETY: read of our own vmctx while the guest is not running.
        unsafe { (*self.vm.as_ptr()).yield_tsc }
    }

    /// The deadline of the last slice.
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
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = self.vm.as_ptr().cast::<i8>();
        // SAFETY: prefetch never faults; the addresses are ours anyway.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.add(64));
            _mm_prefetch::<_MM_HINT_T0>(p.add(128));
            let sp = (*self.vm.as_ptr()).guest_sp as *const i8;
            _mm_prefetch::<_MM_HINT_T0>(sp);
            _mm_prefetch::<_MM_HINT_T0>(sp.add(switch::FRAME_BYTES - 1));
        }
    }

    /// The slot index.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The module.
    pub fn module(&self) -> &Arc<Module> {
        &self.module
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
            let vm = &*self.vm.as_ptr();
            std::slice::from_raw_parts(vm.heap_base, vm.heap_len as usize)
        }
    }

    /// Linear memory, writable.
    pub fn memory_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for memory(), and we hold &mut self.
        unsafe {
            let vm = &*self.vm.as_ptr();
            std::slice::from_raw_parts_mut(vm.heap_base, vm.heap_len as usize)
        }
    }

    /// Global `index` as raw bits.
    pub fn global_bits(&self, index: usize) -> Option<u64> {
        if index >= self.module.metadata().globals.len() {
            return None;
        }
        // SAFETY: global cells follow the header inside the ctx area.
        unsafe {
            Some(
                self.vm
                    .as_ptr()
                    .cast::<u8>()
                    .add(myriad_codegen::abi::vmctx::GLOBALS as usize + 8 * index)
                    .cast::<u64>()
                    .read(),
            )
        }
    }

    /// The instance's table state (tables, FuncRef records), if any.
    pub fn table_state(&self) -> Option<&crate::table::TableState> {
        self.tables.as_deref()
    }

    /// Tear down now (same as dropping).
    pub fn teardown(self) {
        drop(self)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let vm = self.vm.as_ptr();
        // SAFETY: the guest is not running (we are on the host side with
        // the Instance in hand); the slot is ours until released.
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

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("slot", &self.slot)
            .field("outcome", &self.outcome())
            .finish()
    }
}
