//! Tables, `FuncRef` records and element segments of one instance.
//!
//! Table storage is runtime-owned memory outside the slot (a million tiny
//! instances without tables pay nothing). The vmctx header points at the
//! [`TableState`]'s descriptor array (`abi::vmctx::TABLES`), its `FuncRef`
//! array (`FUNC_REFS`) and the module's canonical type ids (`TYPE_IDS`).
//! The table builtins below run on the worker stack through the host-call
//! trampoline (see [`crate::host_call`]); they take their arguments from a
//! `u64` buffer on the guest stack. The same state tracks dropped data
//! segments for `memory.init`/`data.drop`.

use crate::module::Module;
use crate::vmctx::VmCtx;
use myriad_codegen::abi::{ElemMode, ValType};
use std::sync::Arc;

/// Most elements a table may hold (initial size or after `table.grow`).
pub const MAX_TABLE_ELEMENTS: u64 = 10_000_000;

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
    assert!(std::mem::size_of::<FuncRef>() == myriad_codegen::abi::vmctx::FUNC_REF_SIZE as usize);
    assert!(
        std::mem::size_of::<TableDesc>() == myriad_codegen::abi::vmctx::TABLE_DESC_SIZE as usize
    );
};

/// Per-instance table state.
pub struct TableState {
    /// Descriptors, kept in sync with `tables`.
    pub descs: Box<[TableDesc]>,
    /// Element storage.
    tables: Vec<Vec<u64>>,
    /// Most elements each table may grow to.
    max: Vec<u64>,
    /// One record per defined function.
    pub func_refs: Box<[FuncRef]>,
    /// Element segments dropped so far (active and declarative ones are
    /// dropped at instantiation).
    dropped: Vec<bool>,
    /// Data segments dropped so far (active ones are dropped at
    /// instantiation).
    data_dropped: Vec<bool>,
    module: Arc<Module>,
}

/// Why the tables could not be set up.
#[derive(Debug)]
pub(crate) enum TableInitError {
    /// A table's initial size exceeds [`MAX_TABLE_ELEMENTS`].
    TooLarge(u64),
    /// Active element segment `index` does not fit its table.
    SegmentOutOfBounds(usize),
}

/// Check the active segments against the initial table sizes (before a
/// slot is taken).
pub(crate) fn check_module(module: &Module) -> Result<(), TableInitError> {
    let md = module.metadata();
    for t in &md.tables {
        if t.min > MAX_TABLE_ELEMENTS {
            return Err(TableInitError::TooLarge(t.min));
        }
    }
    for (i, e) in md.elems.iter().enumerate() {
        if let ElemMode::Active { table, offset } = e.mode {
            let len = md.tables.get(table as usize).map_or(0, |t| t.min);
            if u64::from(offset) + e.items.len() as u64 > len {
                return Err(TableInitError::SegmentOutOfBounds(i));
            }
        }
    }
    Ok(())
}

/// Whether instances of `module` need a [`TableState`].
pub(crate) fn needed(module: &Module) -> bool {
    let md = module.metadata();
    md.func_refs
        || !md.tables.is_empty()
        || !md.elems.is_empty()
        || md.data.iter().any(|d| d.passive)
}

impl TableState {
    /// Build the state for an instance whose vmctx is at `vmctx`: function
    /// records, tables at their initial size, active segments applied.
    /// [`check_module`] must have passed.
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
        let mut st = Box::new(TableState {
            descs: Box::new([]),
            tables: Vec::with_capacity(md.tables.len()),
            max: Vec::with_capacity(md.tables.len()),
            func_refs,
            dropped: vec![false; md.elems.len()],
            data_dropped: md.data.iter().map(|d| !d.passive).collect(),
            module: module.clone(),
        });
        for t in &md.tables {
            let init = st.ref_bits(t.init);
            st.tables.push(vec![init; t.min as usize]);
            let max = t.max.unwrap_or(u64::MAX).min(MAX_TABLE_ELEMENTS);
            st.max.push(max.max(t.min));
        }
        st.descs = st
            .tables
            .iter_mut()
            .map(|t| TableDesc {
                base: t.as_mut_ptr(),
                len: t.len() as u64,
            })
            .collect();
        for (i, e) in md.elems.iter().enumerate() {
            match e.mode {
                ElemMode::Passive => {}
                ElemMode::Declared => st.dropped[i] = true,
                ElemMode::Active { table, offset } => {
                    let vals: Vec<u64> = e.items.iter().map(|f| st.ref_bits(*f)).collect();
                    if let Some(t) = st.tables.get_mut(table as usize) {
                        let at = offset as usize;
                        if let Some(dst) = t.get_mut(at..at + vals.len()) {
                            dst.copy_from_slice(&vals);
                        }
                    }
                    st.dropped[i] = true;
                }
            }
        }
        st
    }

    /// The funcref value of defined function `f` (0 for `None`).
    pub fn ref_bits(&self, f: Option<u32>) -> u64 {
        match f.and_then(|f| self.func_refs.get(f as usize)) {
            Some(r) => r as *const FuncRef as u64,
            None => 0,
        }
    }

    /// The value a global cell holds initially, given its declared type and
    /// compile-time init bits (`function index + 1` for funcrefs).
    pub(crate) fn global_bits(&self, ty: ValType, init: u64) -> u64 {
        match ty {
            ValType::FuncRef => self.ref_bits(init.checked_sub(1).map(|f| f as u32)),
            _ => init,
        }
    }

    /// Table `t`'s elements (tests, embedders).
    pub fn table(&self, t: usize) -> Option<&[u64]> {
        self.tables.get(t).map(|v| v.as_slice())
    }

    fn sync(&mut self, t: usize) {
        if let (Some(d), Some(v)) = (self.descs.get_mut(t), self.tables.get_mut(t)) {
            d.base = v.as_mut_ptr();
            d.len = v.len() as u64;
        }
    }

    fn grow(&mut self, t: usize, delta: u64, init: u64) -> i64 {
        let (Some(v), Some(max)) = (self.tables.get_mut(t), self.max.get(t)) else {
            return -1;
        };
        let old = v.len() as u64;
        match old.checked_add(delta) {
            Some(new) if new <= *max => {
                if v.try_reserve_exact(delta as usize).is_err() {
                    return -1;
                }
                v.resize(new as usize, init);
            }
            _ => return -1,
        }
        self.sync(t);
        old as i64
    }

    fn fill(&mut self, t: usize, d: u64, val: u64, n: u64) -> u64 {
        let Some(v) = self.tables.get_mut(t) else {
            return 1;
        };
        match range(d, n, v.len()) {
            Some(r) => {
                v[r].fill(val);
                0
            }
            None => 1,
        }
    }

    fn copy(&mut self, dt: usize, st: usize, d: u64, s: u64, n: u64) -> u64 {
        let (Some(dl), Some(sl)) = (self.tables.get(dt), self.tables.get(st)) else {
            return 1;
        };
        let (Some(dr), Some(sr)) = (range(d, n, dl.len()), range(s, n, sl.len())) else {
            return 1;
        };
        if dt == st {
            self.tables[dt].copy_within(sr, dr.start);
        } else {
            let src: Vec<u64> = self.tables[st][sr].to_vec();
            self.tables[dt][dr].copy_from_slice(&src);
        }
        0
    }

    fn init(&mut self, t: usize, e: usize, d: u64, s: u64, n: u64) -> u64 {
        let module = self.module.clone();
        let Some(seg) = module.metadata().elems.get(e) else {
            return 1;
        };
        let seg_len = if self.dropped.get(e).copied().unwrap_or(true) {
            0
        } else {
            seg.items.len()
        };
        let Some(sr) = range(s, n, seg_len) else {
            return 1;
        };
        let vals: Vec<u64> = seg.items[sr].iter().map(|f| self.ref_bits(*f)).collect();
        let Some(v) = self.tables.get_mut(t) else {
            return 1;
        };
        let Some(dr) = range(d, n, v.len()) else {
            return 1;
        };
        v[dr].copy_from_slice(&vals);
        0
    }

    fn drop_elem(&mut self, e: usize) {
        if let Some(d) = self.dropped.get_mut(e) {
            *d = true;
        }
    }
}

/// `memory.init`: copy `n` bytes of data segment `seg` from `s` to heap
/// offset `d`. Without a table state every segment is active, hence
/// dropped (length 0). Returns 0, or 1 for out of bounds.
fn memory_init(vm: &mut VmCtx, st: Option<&TableState>, seg: u64, d: u64, s: u64, n: u64) -> u64 {
    let bytes: &[u8] = match st {
        Some(st) => match (
            st.module.metadata().data.get(seg as usize),
            st.data_dropped.get(seg as usize),
        ) {
            (Some(seg), Some(false)) => &seg.bytes,
            _ => &[],
        },
        None => &[],
    };
    let (Some(sr), Some(dr)) = (range(s, n, bytes.len()), range(d, n, vm.heap_len as usize)) else {
        return 1;
    };
    // SAFETY: heap_base..heap_base+heap_len is this instance's accessible
    // heap (dr lies within it); the guest is suspended in this builtin.
    let heap = unsafe { std::slice::from_raw_parts_mut(vm.heap_base, vm.heap_len as usize) };
    heap[dr].copy_from_slice(&bytes[sr]);
    0
}

pub(crate) extern "C" fn memory_init_impl(vmctx: *mut VmCtx, args: u64) -> u64 {
    // SAFETY: called by compiled code through the trampoline with a
    // 4-value buffer on its stack; vmctx is the running guest's, and its
    // table state (if any) is owned by the instance and not otherwise
    // accessed while the guest runs.
    unsafe {
        let [seg, d, s, n] = (args as *const [u64; 4]).read_unaligned();
        let vm = &mut *vmctx;
        let st = vm.table_state.cast::<TableState>();
        let st = if st.is_null() { None } else { Some(&*st) };
        memory_init(vm, st, seg, d, s, n)
    }
}

pub(crate) extern "C" fn data_drop_impl(vmctx: *mut VmCtx, args: u64) -> u64 {
    // SAFETY: as above, 1 value. Without a table state every segment is
    // already dropped.
    unsafe {
        let [seg] = (args as *const [u64; 1]).read_unaligned();
        let st = (*vmctx).table_state.cast::<TableState>();
        if let Some(st) = st.as_mut() {
            if let Some(d) = st.data_dropped.get_mut(seg as usize) {
                *d = true;
            }
        }
        0
    }
}

/// `start..start+n` if it lies within `0..len`.
fn range(start: u64, n: u64, len: usize) -> Option<std::ops::Range<usize>> {
    let end = start.checked_add(n)?;
    if end > len as u64 {
        return None;
    }
    Some(start as usize..end as usize)
}

/// Run `f` on the instance's table state with `N` builtin arguments.
///
/// # Safety
///
/// `vmctx` is the live vmctx of the running guest; `args` points to `N`
/// readable u64 values on its stack.
unsafe fn with_state<const N: usize>(
    vmctx: *mut VmCtx,
    args: u64,
    f: impl FnOnce(&mut TableState, [u64; N]) -> u64,
) -> u64 {
    // SAFETY: per the contract, args points at N u64 written by compiled
    // code just before the call; vmctx is live and its table state (if
    // any) is owned by the instance, which is running (not accessed
    // elsewhere).
    unsafe {
        let a = (args as *const [u64; N]).read_unaligned();
        let st = (*vmctx).table_state.cast::<TableState>();
        if st.is_null() {
            return 1;
        }
        f(&mut *st, a)
    }
}

pub(crate) extern "C" fn table_grow_impl(vmctx: *mut VmCtx, args: u64) -> u64 {
    // SAFETY: called by compiled code through the trampoline with a
    // 3-value buffer.
    unsafe {
        with_state(vmctx, args, |st, [t, d, init]| {
            st.grow(t as usize, d, init) as u64
        })
    }
}

pub(crate) extern "C" fn table_fill_impl(vmctx: *mut VmCtx, args: u64) -> u64 {
    // SAFETY: as above, 4 values.
    unsafe { with_state(vmctx, args, |st, [t, d, v, n]| st.fill(t as usize, d, v, n)) }
}

pub(crate) extern "C" fn table_copy_impl(vmctx: *mut VmCtx, args: u64) -> u64 {
    // SAFETY: as above, 5 values.
    unsafe {
        with_state(vmctx, args, |st, [dt, stb, d, s, n]| {
            st.copy(dt as usize, stb as usize, d, s, n)
        })
    }
}

pub(crate) extern "C" fn table_init_impl(vmctx: *mut VmCtx, args: u64) -> u64 {
    // SAFETY: as above, 5 values.
    unsafe {
        with_state(vmctx, args, |st, [t, e, d, s, n]| {
            st.init(t as usize, e as usize, d, s, n)
        })
    }
}

pub(crate) extern "C" fn elem_drop_impl(vmctx: *mut VmCtx, args: u64) -> u64 {
    // SAFETY: as above, 1 value.
    unsafe {
        with_state(vmctx, args, |st, [e]| {
            st.drop_elem(e as usize);
            0
        })
    }
}
