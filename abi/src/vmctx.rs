//! Byte offsets of the vmctx fields that compiled code touches.

/// exec: `i64` remaining fuel. Compiled code subtracts at every
/// function entry and loop header and calls the `fuel_exhausted`
/// builtin when it goes negative.
pub const FUEL: i32 = 0;
/// `u64`: the lowest stack pointer compiled code may use (Cranelift's
/// stack-limit check traps with `StackOverflow` below it), on the stack
/// that runs this vmctx's code now: its own, except while an instance
/// linked to it runs (then that instance's: see [`EXEC`]). Read through
/// the vmctx by wasm functions and import stubs, and through exec by
/// export wrappers: the two agree whenever code runs.
pub const STACK_LIMIT: i32 = 8;
/// `u64`: address of linear memory byte 0 (defined memory).
pub const HEAP_BASE: i32 = 16;
/// `u64`: current linear memory length in bytes (defined memory).
pub const HEAP_LEN: i32 = 24;
/// `fn(exec)` with Cranelift's `preserve_all` convention: called when
/// fuel goes negative. Stores the counter (`r15`) to [`FUEL`], may
/// refill it and return, or suspend the green thread and return when it
/// is resumed; `r15` comes back loaded from [`FUEL`].
pub const FN_FUEL_EXHAUSTED: i32 = 32;
/// `extern "C" fn(memory_vmctx, exec, delta_pages: u64) -> i64`:
/// `memory.grow` of the memory defined by `memory_vmctx`. Returns the
/// old size in pages, or -1 if the memory cannot grow.
pub const FN_MEMORY_GROW: i32 = 40;
/// `*const u32`: the module's canonical type ids, one per type index
/// (process-wide: equal ids mean structurally equal signatures).
pub const TYPE_IDS: i32 = 48;
/// `*const *mut TableDesc`: one pointer per table (imports first) to
/// a [`TABLE_DESC_SIZE`]-byte descriptor `{ base: *mut u64, len: u64 }`.
/// Elements are funcref pointers or externref handles, 0 is null.
pub const TABLES: i32 = 56;
/// `*const FuncRef`: the instance's [`FUNC_REF_SIZE`]-byte records
/// `{ code, vmctx, type_id: u64 }`, one per defined function;
/// `ref.func` of defined function `i` is `FUNC_REFS + FUNC_REF_SIZE * i`.
pub const FUNC_REFS: i32 = 64;
/// Table builtins: `extern "C" fn(vmctx, exec, args: *const u64) -> i64`,
/// arguments (each zero-extended to u64) in a buffer on the caller's
/// stack. `table.grow`: `[table, delta, init]` -> old size or -1.
pub const FN_TABLE_GROW: i32 = 72;
/// `table.fill`: `[table, dst, value, len]` -> a [`super::BULK_DONE`],
/// [`super::BULK_TRAP`] (`TableAccessOutOfBounds`) or
/// [`super::BULK_MORE`] chunk result.
pub const FN_TABLE_FILL: i32 = 80;
/// `table.copy`: `[dst_table, src_table, dst, src, len]` -> a chunk
/// result, as `table.fill`.
pub const FN_TABLE_COPY: i32 = 88;
/// `table.init`: `[table, segment, dst, src, len]` -> a chunk result,
/// as `table.fill`.
pub const FN_TABLE_INIT: i32 = 96;
/// `elem.drop`: `[segment]` -> 0.
pub const FN_ELEM_DROP: i32 = 104;
/// `memory.init`: `[segment, dst, src, len]` -> a chunk result, as
/// `table.fill` (the trap is `HeapOutOfBounds`).
pub const FN_MEMORY_INIT: i32 = 112;
/// `data.drop`: `[segment]` -> 0.
pub const FN_DATA_DROP: i32 = 120;
/// `extern "C" fn(vmctx, exec, import: u64, values: *mut u64)`: call
/// host function import `import` with its parameters in `values` and
/// its results written back there. May suspend the green thread
/// (park, yield) or end it (trap, exit) instead of returning.
pub const FN_HOST_CALL: i32 = 128;
/// `memory.fill`: `[dst, value, len]` -> `BULK_*`, like `table.fill`
/// (the trap is `HeapOutOfBounds`); called with the memory's vmctx.
pub const FN_MEMORY_FILL: i32 = 136;
/// `memory.copy`: `[dst, src, len]` -> `BULK_*` (overlap as `memmove`);
/// called with the memory's vmctx.
pub const FN_MEMORY_COPY: i32 = 144;
/// `*mut VmCtx`: exec, the execution context (fuel, slice, status) of
/// the green thread that runs this vmctx's code now. An instance's own
/// vmctx is its exec, so this points at the vmctx itself, except while
/// an instance linked to this one runs: then it points at that
/// instance's vmctx. The runtime sets it and [`STACK_LIMIT`] for every
/// member of a link group as a member's green thread is switched in,
/// and restores both as it is switched out. Compiled code reads both
/// and writes neither.
pub const EXEC: i32 = 152;
/// Size of the part of vmctx defined by this ABI.
pub const ABI_HEADER_SIZE: usize = 160;
/// Offset of defined global 0; defined global `i` is at
/// `GLOBALS + 8 * i`. Bytes `ABI_HEADER_SIZE..GLOBALS` are private to
/// the runtime.
pub const GLOBALS: i32 = 576;
/// Size of a table descriptor.
pub const TABLE_DESC_SIZE: i32 = 16;
/// Size of a `FuncRef` record; `code` at 0, `vmctx` at 8, `type_id` at 16.
pub const FUNC_REF_SIZE: i32 = 24;
/// Size of one global cell.
pub const GLOBAL_SIZE: i32 = 8;

/// Where a module's variable-length vmctx parts live. After the
/// defined globals come, 8-byte aligned:
///
/// * one [`FUNC_REF_SIZE`]-byte record `{ code, vmctx, type_id }` per
///   imported function (a call passes `record.vmctx` and the caller's
///   exec; `ref.func` of an imported function is the record's address);
/// * one pointer per imported global, to the exporter's 8-byte cell;
/// * if the memory is imported, a pointer to the vmctx of the instance
///   that defines it (its `HEAP_BASE`/`HEAP_LEN` describe the memory,
///   and `memory.grow` is called with it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Offset of the first imported-function record.
    pub func_imports: i32,
    /// Offset of the first imported-global pointer.
    pub global_imports: i32,
    /// Offset of the memory-owner pointer (meaningful only if the
    /// memory is imported).
    pub memory_import: i32,
    /// Total vmctx size in bytes.
    pub size: usize,
}

impl Layout {
    /// The layout for the given counts.
    pub const fn new(
        defined_globals: usize,
        func_imports: usize,
        global_imports: usize,
        memory_imported: bool,
    ) -> Layout {
        let fi = GLOBALS as usize + GLOBAL_SIZE as usize * defined_globals;
        let gi = fi + FUNC_REF_SIZE as usize * func_imports;
        let mi = gi + 8 * global_imports;
        let size = mi + if memory_imported { 8 } else { 0 };
        Layout {
            func_imports: fi as i32,
            global_imports: gi as i32,
            memory_import: mi as i32,
            size,
        }
    }

    /// Offset of imported function `i`'s record.
    pub const fn func_import(&self, i: u32) -> i32 {
        self.func_imports + FUNC_REF_SIZE * i as i32
    }

    /// Offset of imported global `i`'s cell pointer.
    pub const fn global_import(&self, i: u32) -> i32 {
        self.global_imports + 8 * i as i32
    }
}
