//! The instance ABI shared by compiled code and the runtime.
//!
//! Everything that both sides must agree on lives here and nowhere else:
//! the vmctx field offsets, the builtin table, trap kinds, the symbol names
//! in an artifact, and the artifact metadata format with its version.
//!
//! # vmctx and exec
//!
//! Every compiled function takes two context pointers before its wasm
//! parameters: `vmctx`, the instance whose code it is (memory, globals,
//! tables, imports), and `exec`, the execution context of the green thread
//! running it (fuel, stack limit, the host stack to run builtins on). When
//! an instance runs its own code, `exec == vmctx`: the execution fields are
//! the first bytes of every vmctx. A call into another instance (a function
//! import bound to another instance's export, or a `call_indirect` through
//! a shared table) passes the callee's vmctx and the caller's `exec`, so
//! fuel, the stack-limit check and preemption stay with the running green
//! thread.
//!
//! The first [`vmctx::ABI_HEADER_SIZE`] bytes of a vmctx are read and
//! written by compiled code at the offsets below; bytes up to
//! [`vmctx::GLOBALS`] belong to the runtime; defined globals follow, one
//! 8-byte cell each (i32 and f32 in the low 4 bytes, little endian), then
//! the import records (see [`vmctx::Layout`]).
//!
//! # Calling convention
//!
//! Functions use the platform C convention (System V on x86_64):
//! `fn(vmctx, exec, params...) -> results`. Each exported function (and
//! the start function) also gets an "array call" wrapper
//! `fn(vmctx, exec, values: *mut u64)` that reads its parameters from
//! `values[..params]` and writes its results to `values[..results]`, so the
//! runtime calls every export the same way. Each function import gets a
//! host stub `fn(vmctx, exec, params...) -> results` (symbol
//! [`import_stub_symbol`]) that stores its parameters in a buffer and calls
//! the `host_call` builtin; the runtime points the import record at the
//! stub for host functions and at the exporter's code for wasm functions.
//!
//! # Builtins
//!
//! Compiled code calls out of wasm only through function pointers held in
//! vmctx. Before such a call it stores its fuel counter to
//! `exec + FUEL` and reloads it afterwards.

use std::fmt;

/// Version of this ABI. Bump on any change to vmctx layout, builtin
/// signatures, symbol naming, trap kinds or the metadata encoding.
pub const ABI_VERSION: u32 = 7;

/// Result of a chunked bulk builtin (`table.fill/copy/init`,
/// `memory.init`): the whole operation is done.
pub const BULK_DONE: i64 = 0;
/// Result of a chunked bulk builtin: out of bounds, nothing was written;
/// compiled code traps.
pub const BULK_TRAP: i64 = 1;
/// Result of a chunked bulk builtin: one chunk is done and the argument
/// buffer now describes the rest; compiled code passes a fuel check (a
/// preemption point) and calls again with the same buffer.
pub const BULK_MORE: i64 = 2;

/// Byte offsets of the vmctx fields that compiled code touches.
pub mod vmctx {
    /// exec: `i64` remaining fuel. Compiled code subtracts at every
    /// function entry and loop header and calls the `fuel_exhausted`
    /// builtin when it goes negative.
    pub const FUEL: i32 = 0;
    /// exec: `u64` lowest stack pointer compiled code may use (Cranelift's
    /// stack-limit check traps with `StackOverflow` below it).
    pub const STACK_LIMIT: i32 = 8;
    /// `u64`: address of linear memory byte 0 (defined memory).
    pub const HEAP_BASE: i32 = 16;
    /// `u64`: current linear memory length in bytes (defined memory).
    pub const HEAP_LEN: i32 = 24;
    /// `extern "C" fn(exec)`: called when fuel goes negative. May refill
    /// [`FUEL`] and return, or suspend the green thread and return when it
    /// is resumed.
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
    /// Size of the part of vmctx defined by this ABI.
    pub const ABI_HEADER_SIZE: usize = 136;
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
}

/// Symbol name of the host stub of function import `index` (index among
/// function imports).
pub fn import_stub_symbol(index: u32) -> String {
    format!("myriad_import_{index}")
}

/// Symbol name of defined function `index` (index among defined
/// functions, i.e. not counting imports).
pub fn func_symbol(index: u32) -> String {
    format!("myriad_func_{index}")
}

/// Symbol name of the array-call wrapper for function `index` (in the
/// function index space: imports first).
pub fn export_wrapper_symbol(index: u32) -> String {
    format!("myriad_export_{index}")
}

/// Marker that starts the metadata blob inside an artifact file.
pub const METADATA_MARKER: [u8; 16] = *b"MYRIAD-METADATA\0";
/// Marker that starts the artifact hash cell (marker, then [`HASH_LEN`]
/// hash bytes).
pub const HASH_MARKER: [u8; 16] = *b"MYRIAD-ART-HASH\0";
/// Length of the artifact hash (SHA-256) stored after [`HASH_MARKER`].
pub const HASH_LEN: usize = 32;
/// Symbol naming the metadata data object (marker + u32 length + blob).
pub const METADATA_SYMBOL: &str = "myriad_metadata";
/// Symbol naming the hash cell (marker + [`HASH_LEN`] hash bytes).
pub const HASH_SYMBOL: &str = "myriad_artifact_hash";

/// Why an instance stopped with a trap. Values are stable within an ABI
/// version and are what trap tables in artifacts record.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrapKind {
    /// The stack-limit check failed: recursion too deep for the instance stack.
    StackOverflow = 1,
    /// A linear memory access outside the memory's current length.
    HeapOutOfBounds = 2,
    /// Signed division overflow (`INT_MIN / -1`).
    IntegerOverflow = 3,
    /// Integer division or remainder by zero.
    IntegerDivisionByZero = 4,
    /// A float-to-int conversion of NaN or an out-of-range value.
    BadConversionToInteger = 5,
    /// The `unreachable` instruction.
    Unreachable = 6,
    /// `call_indirect` to a function of the wrong type.
    IndirectCallTypeMismatch = 7,
    /// A table access out of bounds.
    TableOutOfBounds = 8,
    /// Call through a null table entry or null reference.
    NullReference = 9,
    /// `table.get/set/fill/copy/init` or an active element segment out of
    /// bounds.
    TableAccessOutOfBounds = 10,
    /// A host function ended the instance with a trap (never in a trap
    /// table; reported by the runtime).
    HostTrap = 11,
}

impl TrapKind {
    /// All trap kinds, in code order.
    pub const ALL: [TrapKind; 11] = [
        TrapKind::StackOverflow,
        TrapKind::HeapOutOfBounds,
        TrapKind::IntegerOverflow,
        TrapKind::IntegerDivisionByZero,
        TrapKind::BadConversionToInteger,
        TrapKind::Unreachable,
        TrapKind::IndirectCallTypeMismatch,
        TrapKind::TableOutOfBounds,
        TrapKind::NullReference,
        TrapKind::TableAccessOutOfBounds,
        TrapKind::HostTrap,
    ];

    /// The kind with numeric code `code`, if any.
    pub fn from_code(code: u8) -> Option<TrapKind> {
        TrapKind::ALL.into_iter().find(|k| *k as u8 == code)
    }

    /// Short human description, as the WebAssembly spec words it where it can.
    pub fn message(self) -> &'static str {
        match self {
            TrapKind::StackOverflow => "call stack exhausted",
            TrapKind::HeapOutOfBounds => "out of bounds memory access",
            TrapKind::IntegerOverflow => "integer overflow",
            TrapKind::IntegerDivisionByZero => "integer divide by zero",
            TrapKind::BadConversionToInteger => "invalid conversion to integer",
            TrapKind::Unreachable => "unreachable",
            TrapKind::IndirectCallTypeMismatch => "indirect call type mismatch",
            TrapKind::TableOutOfBounds => "undefined element",
            TrapKind::NullReference => "uninitialized element",
            TrapKind::TableAccessOutOfBounds => "out of bounds table access",
            TrapKind::HostTrap => "host function trapped",
        }
    }
}

impl fmt::Display for TrapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// A WebAssembly value type as far as this ABI passes values.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValType {
    /// 32-bit integer.
    I32 = 0,
    /// 64-bit integer.
    I64 = 1,
    /// 32-bit IEEE float.
    F32 = 2,
    /// 64-bit IEEE float.
    F64 = 3,
    /// `funcref`: pointer to a `FuncRef` record, 0 is null (passed as i64).
    FuncRef = 4,
    /// `externref`: opaque host handle, 0 is null (passed as i64).
    ExternRef = 5,
}

impl ValType {
    fn from_code(code: u8) -> Option<ValType> {
        match code {
            0 => Some(ValType::I32),
            1 => Some(ValType::I64),
            2 => Some(ValType::F32),
            3 => Some(ValType::F64),
            4 => Some(ValType::FuncRef),
            5 => Some(ValType::ExternRef),
            _ => None,
        }
    }
}

/// A function signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct FuncType {
    /// Parameter types, in order.
    pub params: Vec<ValType>,
    /// Result types, in order.
    pub results: Vec<ValType>,
}

/// A linear memory's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryDecl {
    /// Initial size in pages.
    pub min_pages: u64,
    /// Declared maximum in pages, if any.
    pub max_pages: Option<u64>,
    /// log2 of the page size: 16 for 64 KiB pages, 0 for custom page size 1.
    pub page_size_log2: u8,
}

impl MemoryDecl {
    /// Page size in bytes.
    pub fn page_size(&self) -> u64 {
        1u64 << self.page_size_log2
    }
}

/// One operator of a constant expression (the wasm 2.0 constant
/// instructions plus the extended-const integer arithmetic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConstOp {
    /// `i32.const` (bits).
    I32(u32),
    /// `i64.const`.
    I64(u64),
    /// `f32.const` (bits).
    F32(u32),
    /// `f64.const` (bits).
    F64(u64),
    /// `ref.null` of any type.
    RefNull,
    /// `ref.func` of a function index (imports first).
    RefFunc(u32),
    /// `global.get` of a global index (imports first).
    GlobalGet(u32),
    /// `i32.add`.
    I32Add,
    /// `i32.sub`.
    I32Sub,
    /// `i32.mul`.
    I32Mul,
    /// `i64.add`.
    I64Add,
    /// `i64.sub`.
    I64Sub,
    /// `i64.mul`.
    I64Mul,
}

/// A constant expression, evaluated at instantiation to the raw bits of an
/// 8-byte cell (i32/f32 zero-extended; references as the runtime represents
/// them).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConstExpr(pub Vec<ConstOp>);

impl ConstExpr {
    /// The expression `ref.null`.
    pub fn null() -> ConstExpr {
        ConstExpr(vec![ConstOp::RefNull])
    }

    /// The expression `i32.const v` (or `i64.const` for a larger value).
    pub fn i32(v: u32) -> ConstExpr {
        ConstExpr(vec![ConstOp::I32(v)])
    }

    /// Evaluate with `global(i)` giving global `i`'s bits and `func(i)`
    /// the reference bits of function `i`. `None` if the expression is
    /// malformed (validation rules that out for compiled modules).
    pub fn eval(
        &self,
        mut global: impl FnMut(u32) -> u64,
        mut func: impl FnMut(u32) -> u64,
    ) -> Option<u64> {
        let mut stack: Vec<u64> = Vec::with_capacity(2);
        for op in &self.0 {
            let v = match *op {
                ConstOp::I32(v) | ConstOp::F32(v) => u64::from(v),
                ConstOp::I64(v) | ConstOp::F64(v) => v,
                ConstOp::RefNull => 0,
                ConstOp::RefFunc(f) => func(f),
                ConstOp::GlobalGet(g) => global(g),
                arith => {
                    let b = stack.pop()?;
                    let a = stack.pop()?;
                    match arith {
                        ConstOp::I32Add => u64::from((a as u32).wrapping_add(b as u32)),
                        ConstOp::I32Sub => u64::from((a as u32).wrapping_sub(b as u32)),
                        ConstOp::I32Mul => u64::from((a as u32).wrapping_mul(b as u32)),
                        ConstOp::I64Add => a.wrapping_add(b),
                        ConstOp::I64Sub => a.wrapping_sub(b),
                        _ => a.wrapping_mul(b),
                    }
                }
            };
            stack.push(v);
        }
        match stack.as_slice() {
            [v] => Some(*v),
            _ => None,
        }
    }

    /// The value if it needs neither globals nor function references.
    pub fn as_plain(&self) -> Option<u64> {
        if self
            .0
            .iter()
            .any(|op| matches!(op, ConstOp::GlobalGet(_) | ConstOp::RefFunc(_)))
        {
            return None;
        }
        self.eval(|_| 0, |_| 0)
    }
}

/// A table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableDecl {
    /// Element type: [`ValType::FuncRef`] or [`ValType::ExternRef`].
    pub ty: ValType,
    /// Initial length in elements.
    pub min: u64,
    /// Declared maximum length, if any.
    pub max: Option<u64>,
    /// Initial element value (`ref.null` unless given; ignored for imports).
    pub init: ConstExpr,
}

/// How an element segment is used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElemMode {
    /// Available to `table.init` until dropped.
    Passive,
    /// Copied into `table` at `offset` at instantiation, then dropped.
    Active {
        /// Table index (imports first).
        table: u32,
        /// Element offset.
        offset: ConstExpr,
    },
    /// Only declares functions for `ref.func`; dropped at instantiation.
    Declared,
}

/// One element of an element segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElemItem {
    /// A null reference.
    Null,
    /// A reference to function `index` (imports first).
    Func(u32),
    /// The value of global `index` (imports first).
    Global(u32),
}

/// An element segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElemSegment {
    /// How it is used.
    pub mode: ElemMode,
    /// Items.
    pub items: Vec<ElemItem>,
}

/// The precise type of a reference-typed global or table. Code uses only
/// [`ValType::FuncRef`]/[`ValType::ExternRef`]; linking needs more, since
/// typed function references (Wasm 3.0: `(ref $t)`, `(ref null func)`, ...)
/// match by subtyping: an immutable global's export type must be a
/// subtype of the import's, a mutable global's and a table's must equal it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefPrecise {
    /// Whether null is a value of the type.
    pub nullable: bool,
    /// The heap type.
    pub heap: RefHeap,
}

/// The heap type of a [`RefPrecise`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefHeap {
    /// Any function.
    Func,
    /// Any external reference.
    Extern,
    /// The bottom of functions (only null).
    NoFunc,
    /// The bottom of external references (only null).
    NoExtern,
    /// Functions of this module's type index.
    Concrete(u32),
}

impl RefPrecise {
    /// `funcref`/`externref`: nullable, abstract.
    pub fn plain(ty: ValType) -> Option<RefPrecise> {
        let heap = match ty {
            ValType::FuncRef => RefHeap::Func,
            ValType::ExternRef => RefHeap::Extern,
            _ => return None,
        };
        Some(RefPrecise {
            nullable: true,
            heap,
        })
    }

    fn code(self) -> (u8, u32) {
        let h = match self.heap {
            RefHeap::Func => (0, 0),
            RefHeap::Extern => (1, 0),
            RefHeap::NoFunc => (2, 0),
            RefHeap::NoExtern => (3, 0),
            RefHeap::Concrete(t) => (4, t),
        };
        (h.0 | (self.nullable as u8) << 7, h.1)
    }

    fn from_code(tag: u8, index: u32) -> Option<RefPrecise> {
        let heap = match tag & 0x7f {
            0 => RefHeap::Func,
            1 => RefHeap::Extern,
            2 => RefHeap::NoFunc,
            3 => RefHeap::NoExtern,
            4 => RefHeap::Concrete(index),
            _ => return None,
        };
        Some(RefPrecise {
            nullable: tag & 0x80 != 0,
            heap,
        })
    }
}

/// A defined global: type, mutability and initial value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalDecl {
    /// Value type.
    pub ty: ValType,
    /// Whether `global.set` may change it.
    pub mutable: bool,
    /// Initial value.
    pub init: ConstExpr,
}

/// A data segment. Active ones are copied into memory at instantiation
/// (and then count as dropped); passive ones serve `memory.init`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSegment {
    /// Passive (no offset, not copied at instantiation).
    pub passive: bool,
    /// Byte offset in linear memory (active segments; an i32 expression
    /// whose bits are read as unsigned).
    pub offset: ConstExpr,
    /// Bytes to copy.
    pub bytes: Vec<u8>,
}

/// What an import brings in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportKind {
    /// A function of type index `.0`.
    Func(u32),
    /// A global of this type.
    Global {
        /// Value type.
        ty: ValType,
        /// Whether it is mutable.
        mutable: bool,
    },
    /// A linear memory of at least this type.
    Memory(MemoryDecl),
    /// A table of at least this type (`init` unused).
    Table(TableDecl),
    /// An exception tag whose signature is type index `.0` (no results).
    /// Tags are inert: nothing in compiled code refers to them yet.
    Tag(u32),
}

/// One import, in module order. Each kind's imports take the first
/// indices of that kind's index space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Import {
    /// Module name.
    pub module: String,
    /// Field name.
    pub name: String,
    /// What is imported.
    pub kind: ImportKind,
}

/// The kind of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExportKind {
    /// A function (index in the function index space).
    Func,
    /// A table.
    Table,
    /// The memory.
    Memory,
    /// A global.
    Global,
    /// An exception tag (index in the tag index space).
    Tag,
}

/// An export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    /// Export name.
    pub name: String,
    /// What kind of item.
    pub kind: ExportKind,
    /// Index in that kind's index space (imports first).
    pub index: u32,
}

/// A place in compiled code that traps, recorded so a fault there can be
/// mapped back to its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapSite {
    /// Defined function containing the site.
    pub func_index: u32,
    /// Byte offset of the trapping instruction from the function's start.
    pub offset: u32,
    /// What the trap means.
    pub kind: TrapKind,
}

/// What the runtime must know of a compiler-made function that runs on an
/// instance stack besides the defined functions: an export wrapper or an
/// import stub. Their frames grow with the signature.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HelperCode {
    /// Bytes of its frame on the instance stack: return address, saved
    /// frame pointer, saved registers, spill slots and outgoing arguments
    /// (the callee's stack-returned results included).
    pub frame_bytes: u32,
    /// Its trap sites, `(byte offset from the helper's start, kind)`: the
    /// prologue's stack-limit check.
    pub traps: Vec<(u32, TrapKind)>,
}

/// Everything the runtime needs to know about an artifact besides its code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// [`ABI_VERSION`] the artifact was built for.
    pub abi_version: u32,
    /// Fingerprint of target and CPU features the code was compiled for.
    pub fingerprint: u64,
    /// The source key the compiler recorded: [`crate::source_key`] of the
    /// wasm bytes and compile settings it compiled (the key covers the ABI
    /// version and fingerprint too). All zero when no wasm source is
    /// recorded (e.g. hand-built artifacts). A cache uses an entry only when this equals
    /// the key of the request; it proves nothing about who wrote the file.
    pub source_key: [u8; 32],
    /// Guard bytes after the heap that compiled code relies on to elide the
    /// constant part of bounds checks (0: every check is complete).
    pub guard_bytes: u64,
    /// Function signatures; `func_types` and function imports index into
    /// this.
    pub types: Vec<FuncType>,
    /// Imports in module order.
    pub imports: Vec<Import>,
    /// Type index of each defined function.
    pub func_types: Vec<u32>,
    /// The defined linear memory, if the module defines one.
    pub memory: Option<MemoryDecl>,
    /// Defined globals in index order (after the imported ones).
    pub globals: Vec<GlobalDecl>,
    /// Data segments (active and passive) in module order.
    pub data: Vec<DataSegment>,
    /// Defined tables in index order (after the imported ones).
    pub tables: Vec<TableDecl>,
    /// Element segments in module order.
    pub elems: Vec<ElemSegment>,
    /// Type index of each defined exception tag, in index order (after
    /// the imported ones). Each type has no results.
    pub tags: Vec<u32>,
    /// Precise reference type of each global (imports first); `None` for
    /// numeric globals. See [`RefPrecise`].
    pub global_refs: Vec<Option<RefPrecise>>,
    /// Precise element type of each table (imports first).
    pub table_refs: Vec<RefPrecise>,
    /// Whether compiled code or globals use `FUNC_REFS` (`ref.func`), so
    /// instances need the `FuncRef` array even without tables.
    pub func_refs: bool,
    /// Exports.
    pub exports: Vec<Export>,
    /// Start function (function index), if any.
    pub start: Option<u32>,
    /// Trap sites, sorted by (func_index, offset).
    pub traps: Vec<TrapSite>,
    /// The export wrappers, one per function of [`Metadata::wrapped_funcs`]
    /// in that order.
    pub wrappers: Vec<HelperCode>,
    /// The host stubs, one per function import in import order.
    pub stubs: Vec<HelperCode>,
}

impl Metadata {
    /// Imported functions' type indices, in import order.
    pub fn imported_funcs(&self) -> impl Iterator<Item = u32> + '_ {
        self.imports.iter().filter_map(|i| match i.kind {
            ImportKind::Func(t) => Some(t),
            _ => None,
        })
    }

    /// Number of imported functions (the first function indices).
    pub fn num_imported_funcs(&self) -> usize {
        self.imported_funcs().count()
    }

    /// Imported globals' types, in import order.
    pub fn imported_globals(&self) -> impl Iterator<Item = (ValType, bool)> + '_ {
        self.imports.iter().filter_map(|i| match i.kind {
            ImportKind::Global { ty, mutable } => Some((ty, mutable)),
            _ => None,
        })
    }

    /// Number of imported globals.
    pub fn num_imported_globals(&self) -> usize {
        self.imported_globals().count()
    }

    /// Imported tables, in import order.
    pub fn imported_tables(&self) -> impl Iterator<Item = &TableDecl> + '_ {
        self.imports.iter().filter_map(|i| match &i.kind {
            ImportKind::Table(t) => Some(t),
            _ => None,
        })
    }

    /// The imported memory's type, if the memory is imported.
    pub fn imported_memory(&self) -> Option<MemoryDecl> {
        self.imports.iter().find_map(|i| match i.kind {
            ImportKind::Memory(m) => Some(m),
            _ => None,
        })
    }

    /// Imported tags' type indices, in import order.
    pub fn imported_tags(&self) -> impl Iterator<Item = u32> + '_ {
        self.imports.iter().filter_map(|i| match i.kind {
            ImportKind::Tag(t) => Some(t),
            _ => None,
        })
    }

    /// Number of imported tags (the first tag indices).
    pub fn num_imported_tags(&self) -> usize {
        self.imported_tags().count()
    }

    /// Type index of tag `index` (imports first).
    pub fn tag_type_index(&self, index: u32) -> Option<u32> {
        let imported = self.num_imported_tags();
        match (index as usize).checked_sub(imported) {
            None => self.imported_tags().nth(index as usize),
            Some(d) => self.tags.get(d).copied(),
        }
    }

    /// Signature of tag `index` (imports first).
    pub fn tag_type(&self, index: u32) -> Option<&FuncType> {
        self.types.get(self.tag_type_index(index)? as usize)
    }

    /// Type index of function `index` (imports first).
    pub fn func_type_index(&self, index: u32) -> Option<u32> {
        let imported = self.num_imported_funcs();
        match (index as usize).checked_sub(imported) {
            None => self.imported_funcs().nth(index as usize),
            Some(d) => self.func_types.get(d).copied(),
        }
    }

    /// Signature of function `index` (imports first).
    pub fn func_type(&self, index: u32) -> Option<&FuncType> {
        self.types.get(self.func_type_index(index)? as usize)
    }

    /// Type and mutability of global `index` (imports first).
    pub fn global_type(&self, index: u32) -> Option<(ValType, bool)> {
        let imported = self.num_imported_globals();
        match (index as usize).checked_sub(imported) {
            None => self.imported_globals().nth(index as usize),
            Some(d) => self.globals.get(d).map(|g| (g.ty, g.mutable)),
        }
    }

    /// The vmctx layout of instances of this module.
    pub fn vmctx_layout(&self) -> vmctx::Layout {
        vmctx::Layout::new(
            self.globals.len(),
            self.num_imported_funcs(),
            self.num_imported_globals(),
            self.imported_memory().is_some(),
        )
    }

    /// Functions that get an array-call wrapper (`export_wrapper_symbol`):
    /// every exported function and the start function, sorted, unique.
    pub fn wrapped_funcs(&self) -> Vec<u32> {
        let mut wrapped: Vec<u32> = self
            .exports
            .iter()
            .filter(|e| e.kind == ExportKind::Func)
            .map(|e| e.index)
            .collect();
        wrapped.extend(self.start);
        wrapped.sort_unstable();
        wrapped.dedup();
        wrapped
    }
}

/// Why a metadata blob or artifact was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetadataError {
    /// The blob ended before a field was complete.
    #[error("artifact metadata is truncated")]
    Truncated,
    /// The blob's checksum does not match its contents.
    #[error("artifact metadata checksum mismatch: the artifact is corrupt")]
    Checksum,
    /// A field holds a value this ABI does not define.
    #[error("artifact metadata is malformed: {0}")]
    Malformed(&'static str),
    /// Built for another ABI version.
    #[error("artifact was built for Myriad ABI version {found}, this runtime needs {expected}")]
    AbiVersion {
        /// Version found in the artifact.
        found: u32,
        /// Version this build understands.
        expected: u32,
    },
}

/// 64-bit FNV-1a hash. Used for the metadata checksum and the target
/// fingerprint (it detects corruption, not deliberate forgery).
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Metadata {
    /// Serialize to a self-checking blob: `[u64 checksum][payload]`, where
    /// the payload starts with the ABI version.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(256));
        w.u32(self.abi_version);
        w.u64(self.fingerprint);
        w.0.extend_from_slice(&self.source_key);
        w.u64(self.guard_bytes);
        w.u32(self.types.len() as u32);
        for t in &self.types {
            w.u32(t.params.len() as u32);
            for p in &t.params {
                w.u8(*p as u8);
            }
            w.u32(t.results.len() as u32);
            for r in &t.results {
                w.u8(*r as u8);
            }
        }
        w.u32(self.imports.len() as u32);
        for i in &self.imports {
            w.bytes(i.module.as_bytes());
            w.bytes(i.name.as_bytes());
            match &i.kind {
                ImportKind::Func(t) => {
                    w.u8(0);
                    w.u32(*t);
                }
                ImportKind::Global { ty, mutable } => {
                    w.u8(1);
                    w.u8(*ty as u8);
                    w.u8(*mutable as u8);
                }
                ImportKind::Memory(m) => {
                    w.u8(2);
                    w.memory(m);
                }
                ImportKind::Table(t) => {
                    w.u8(3);
                    w.table(t);
                }
                ImportKind::Tag(t) => {
                    w.u8(4);
                    w.u32(*t);
                }
            }
        }
        w.u32(self.func_types.len() as u32);
        for t in &self.func_types {
            w.u32(*t);
        }
        match &self.memory {
            None => w.u8(0),
            Some(m) => {
                w.u8(1);
                w.memory(m);
            }
        }
        w.u32(self.globals.len() as u32);
        for g in &self.globals {
            w.u8(g.ty as u8);
            w.u8(g.mutable as u8);
            w.expr(&g.init);
        }
        w.u32(self.data.len() as u32);
        for d in &self.data {
            w.u8(d.passive as u8);
            w.expr(&d.offset);
            w.bytes(&d.bytes);
        }
        w.u32(self.tables.len() as u32);
        for t in &self.tables {
            w.table(t);
        }
        w.u32(self.elems.len() as u32);
        for e in &self.elems {
            match &e.mode {
                ElemMode::Passive => w.u8(0),
                ElemMode::Active { table, offset } => {
                    w.u8(1);
                    w.u32(*table);
                    w.expr(offset);
                }
                ElemMode::Declared => w.u8(2),
            }
            w.u32(e.items.len() as u32);
            for i in &e.items {
                match i {
                    ElemItem::Null => w.u8(0),
                    ElemItem::Func(f) => {
                        w.u8(1);
                        w.u32(*f);
                    }
                    ElemItem::Global(g) => {
                        w.u8(2);
                        w.u32(*g);
                    }
                }
            }
        }
        w.u32(self.tags.len() as u32);
        for t in &self.tags {
            w.u32(*t);
        }
        w.u8(self.func_refs as u8);
        w.u32(self.exports.len() as u32);
        for e in &self.exports {
            w.bytes(e.name.as_bytes());
            w.u8(match e.kind {
                ExportKind::Func => 0,
                ExportKind::Table => 1,
                ExportKind::Memory => 2,
                ExportKind::Global => 3,
                ExportKind::Tag => 4,
            });
            w.u32(e.index);
        }
        match self.start {
            None => w.u8(0),
            Some(s) => {
                w.u8(1);
                w.u32(s);
            }
        }
        w.u32(self.traps.len() as u32);
        for t in &self.traps {
            w.u32(t.func_index);
            w.u32(t.offset);
            w.u8(t.kind as u8);
        }
        w.u32(self.global_refs.len() as u32);
        for g in &self.global_refs {
            match g {
                None => w.u8(0x7f),
                Some(r) => {
                    let (tag, index) = r.code();
                    w.u8(tag);
                    w.u32(index);
                }
            }
        }
        w.u32(self.table_refs.len() as u32);
        for t in &self.table_refs {
            let (tag, index) = t.code();
            w.u8(tag);
            w.u32(index);
        }
        for list in [&self.wrappers, &self.stubs] {
            w.u32(list.len() as u32);
            for h in list {
                w.u32(h.frame_bytes);
                w.u32(h.traps.len() as u32);
                for (offset, kind) in &h.traps {
                    w.u32(*offset);
                    w.u8(*kind as u8);
                }
            }
        }
        let payload = w.0;
        let mut out = Vec::with_capacity(payload.len() + 8);
        out.extend_from_slice(&hash64(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// Parse and check a blob written by [`Metadata::encode`]. Refuses a
    /// blob whose checksum fails, whose ABI version differs, or whose
    /// indices are out of range.
    pub fn decode(blob: &[u8]) -> Result<Metadata, MetadataError> {
        if blob.len() < 12 {
            return Err(MetadataError::Truncated);
        }
        let (sum, payload) = blob.split_at(8);
        let sum = u64::from_le_bytes(sum.try_into().map_err(|_| MetadataError::Truncated)?);
        if sum != hash64(payload) {
            return Err(MetadataError::Checksum);
        }
        let mut r = Reader(payload);
        let abi_version = r.u32()?;
        if abi_version != ABI_VERSION {
            return Err(MetadataError::AbiVersion {
                found: abi_version,
                expected: ABI_VERSION,
            });
        }
        let fingerprint = r.u64()?;
        let mut source_key = [0u8; 32];
        source_key.copy_from_slice(r.take(32)?);
        let guard_bytes = r.u64()?;
        let mut types = Vec::new();
        for _ in 0..r.count()? {
            let mut params = Vec::new();
            for _ in 0..r.count()? {
                params.push(r.val_type()?);
            }
            let mut results = Vec::new();
            for _ in 0..r.count()? {
                results.push(r.val_type()?);
            }
            types.push(FuncType { params, results });
        }
        let type_index = |t: u32| -> Result<u32, MetadataError> {
            if (t as usize) < types.len() {
                Ok(t)
            } else {
                Err(MetadataError::Malformed("type index out of range"))
            }
        };
        let mut imports = Vec::new();
        for _ in 0..r.count()? {
            let module = r.string()?;
            let name = r.string()?;
            let kind = match r.u8()? {
                0 => ImportKind::Func(type_index(r.u32()?)?),
                1 => ImportKind::Global {
                    ty: r.val_type()?,
                    mutable: r.flag()?,
                },
                2 => ImportKind::Memory(r.memory()?),
                3 => ImportKind::Table(r.table()?),
                4 => ImportKind::Tag(type_index(r.u32()?)?),
                _ => return Err(MetadataError::Malformed("import kind")),
            };
            imports.push(Import { module, name, kind });
        }
        let mut func_types = Vec::new();
        for _ in 0..r.count()? {
            func_types.push(type_index(r.u32()?)?);
        }
        let memory = match r.u8()? {
            0 => None,
            1 => Some(r.memory()?),
            _ => return Err(MetadataError::Malformed("memory flag")),
        };
        let mut globals = Vec::new();
        for _ in 0..r.count()? {
            let ty = r.val_type()?;
            let mutable = r.flag()?;
            let init = r.expr()?;
            globals.push(GlobalDecl { ty, mutable, init });
        }
        let mut data = Vec::new();
        for _ in 0..r.count()? {
            let passive = r.flag()?;
            let offset = r.expr()?;
            let bytes = r.bytes()?.to_vec();
            data.push(DataSegment {
                passive,
                offset,
                bytes,
            });
        }
        let mut tables = Vec::new();
        for _ in 0..r.count()? {
            tables.push(r.table()?);
        }
        let mut elems = Vec::new();
        for _ in 0..r.count()? {
            let mode = match r.u8()? {
                0 => ElemMode::Passive,
                1 => ElemMode::Active {
                    table: r.u32()?,
                    offset: r.expr()?,
                },
                2 => ElemMode::Declared,
                _ => return Err(MetadataError::Malformed("element mode")),
            };
            let mut items = Vec::new();
            for _ in 0..r.count()? {
                items.push(match r.u8()? {
                    0 => ElemItem::Null,
                    1 => ElemItem::Func(r.u32()?),
                    2 => ElemItem::Global(r.u32()?),
                    _ => return Err(MetadataError::Malformed("element item")),
                });
            }
            elems.push(ElemSegment { mode, items });
        }
        let mut tags = Vec::new();
        for _ in 0..r.count()? {
            tags.push(type_index(r.u32()?)?);
        }
        let func_refs = r.flag()?;
        let mut exports = Vec::new();
        for _ in 0..r.count()? {
            let name = r.string()?;
            let kind = match r.u8()? {
                0 => ExportKind::Func,
                1 => ExportKind::Table,
                2 => ExportKind::Memory,
                3 => ExportKind::Global,
                4 => ExportKind::Tag,
                _ => return Err(MetadataError::Malformed("export kind")),
            };
            let index = r.u32()?;
            exports.push(Export { name, kind, index });
        }
        let start = match r.u8()? {
            0 => None,
            1 => Some(r.u32()?),
            _ => return Err(MetadataError::Malformed("start flag")),
        };
        let mut traps = Vec::new();
        for _ in 0..r.count()? {
            let func_index = r.u32()?;
            let offset = r.u32()?;
            let kind = TrapKind::from_code(r.u8()?).ok_or(MetadataError::Malformed("trap kind"))?;
            traps.push(TrapSite {
                func_index,
                offset,
                kind,
            });
        }
        let mut global_refs = Vec::new();
        for _ in 0..r.count()? {
            global_refs.push(match r.u8()? {
                0x7f => None,
                tag => Some(
                    RefPrecise::from_code(tag, r.u32()?)
                        .ok_or(MetadataError::Malformed("global reference type"))?,
                ),
            });
        }
        let mut table_refs = Vec::new();
        for _ in 0..r.count()? {
            let tag = r.u8()?;
            table_refs.push(
                RefPrecise::from_code(tag, r.u32()?)
                    .ok_or(MetadataError::Malformed("table reference type"))?,
            );
        }
        let mut helpers = [Vec::new(), Vec::new()];
        for list in &mut helpers {
            for _ in 0..r.count()? {
                let frame_bytes = r.u32()?;
                let mut traps = Vec::new();
                for _ in 0..r.count()? {
                    let offset = r.u32()?;
                    let kind = TrapKind::from_code(r.u8()?)
                        .ok_or(MetadataError::Malformed("helper trap kind"))?;
                    traps.push((offset, kind));
                }
                list.push(HelperCode { frame_bytes, traps });
            }
        }
        let [wrappers, stubs] = helpers;
        if !r.0.is_empty() {
            return Err(MetadataError::Malformed("trailing bytes"));
        }
        let m = Metadata {
            abi_version,
            fingerprint,
            source_key,
            guard_bytes,
            types,
            imports,
            func_types,
            memory,
            globals,
            data,
            tables,
            elems,
            tags,
            global_refs,
            table_refs,
            func_refs,
            exports,
            start,
            traps,
            wrappers,
            stubs,
        };
        m.check_indices()?;
        Ok(m)
    }

    /// Check that every index the metadata holds is in range, so the
    /// runtime can index without further checks.
    fn check_indices(&self) -> Result<(), MetadataError> {
        let funcs = self.num_imported_funcs() + self.func_types.len();
        let globals = self.num_imported_globals() + self.globals.len();
        let tables = self.imported_tables().count() + self.tables.len();
        let tags = self.num_imported_tags() + self.tags.len();
        let has_memory = self.memory.is_some() || self.imported_memory().is_some();
        if self.memory.is_some() && self.imported_memory().is_some() {
            return Err(MetadataError::Malformed("more than one memory"));
        }
        let expr_ok = |e: &ConstExpr| {
            e.0.iter().all(|op| match op {
                ConstOp::RefFunc(f) => (*f as usize) < funcs,
                ConstOp::GlobalGet(g) => (*g as usize) < globals,
                _ => true,
            })
        };
        let bad = |what| Err(MetadataError::Malformed(what));
        // Precise reference types: one per global and table, a reference
        // exactly for reference-typed ones, concrete types in range.
        let ref_ok = |r: &RefPrecise, ty: ValType| match r.heap {
            RefHeap::Func | RefHeap::NoFunc => ty == ValType::FuncRef,
            RefHeap::Extern | RefHeap::NoExtern => ty == ValType::ExternRef,
            RefHeap::Concrete(t) => ty == ValType::FuncRef && (t as usize) < self.types.len(),
        };
        let global_types = self
            .imported_globals()
            .map(|(t, _)| t)
            .chain(self.globals.iter().map(|g| g.ty));
        if self.global_refs.len() != globals
            || !global_types.zip(&self.global_refs).all(|(ty, r)| match r {
                None => !matches!(ty, ValType::FuncRef | ValType::ExternRef),
                Some(r) => ref_ok(r, ty),
            })
        {
            return bad("global reference types");
        }
        let table_types = self
            .imported_tables()
            .map(|t| t.ty)
            .chain(self.tables.iter().map(|t| t.ty));
        if self.table_refs.len() != tables
            || !table_types
                .zip(&self.table_refs)
                .all(|(ty, r)| ref_ok(r, ty))
        {
            return bad("table reference types");
        }
        // Type indices were range-checked while reading; a tag's type must
        // have no results.
        let tag_type_ok = |t: u32| {
            self.types
                .get(t as usize)
                .is_some_and(|ty| ty.results.is_empty())
        };
        if !self
            .imported_tags()
            .chain(self.tags.iter().copied())
            .all(tag_type_ok)
        {
            return bad("tag type has results or is out of range");
        }
        if !self.globals.iter().all(|g| expr_ok(&g.init)) {
            return bad("global initialiser index out of range");
        }
        if !self.tables.iter().all(|t| expr_ok(&t.init)) {
            return bad("table initialiser index out of range");
        }
        if !self.data.iter().all(|d| expr_ok(&d.offset))
            || (self.data.iter().any(|d| !d.passive) && !has_memory)
        {
            return bad("data segment out of range");
        }
        for e in &self.elems {
            if let ElemMode::Active { table, offset } = &e.mode {
                if *table as usize >= tables || !expr_ok(offset) {
                    return bad("element segment table out of range");
                }
            }
            let ok = e.items.iter().all(|i| match i {
                ElemItem::Null => true,
                ElemItem::Func(f) => (*f as usize) < funcs,
                ElemItem::Global(g) => (*g as usize) < globals,
            });
            if !ok {
                return bad("element item out of range");
            }
        }
        for e in &self.exports {
            let ok = match e.kind {
                ExportKind::Func => (e.index as usize) < funcs,
                ExportKind::Global => (e.index as usize) < globals,
                ExportKind::Table => (e.index as usize) < tables,
                ExportKind::Memory => e.index == 0 && has_memory,
                ExportKind::Tag => (e.index as usize) < tags,
            };
            if !ok {
                return bad("export index out of range");
            }
        }
        if self.start.is_some_and(|s| s as usize >= funcs) {
            return bad("start function out of range");
        }
        if self
            .traps
            .iter()
            .any(|t| t.func_index as usize >= self.func_types.len())
        {
            return bad("trap site function out of range");
        }
        if self.wrappers.len() != self.wrapped_funcs().len()
            || self.stubs.len() != self.num_imported_funcs()
        {
            return bad("wrapper or stub count");
        }
        Ok(())
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn memory(&mut self, m: &MemoryDecl) {
        self.u64(m.min_pages);
        self.opt_u64(m.max_pages);
        self.u8(m.page_size_log2);
    }
    fn table(&mut self, t: &TableDecl) {
        self.u8(t.ty as u8);
        self.u64(t.min);
        self.opt_u64(t.max);
        self.expr(&t.init);
    }
    fn expr(&mut self, e: &ConstExpr) {
        self.u32(e.0.len() as u32);
        for op in &e.0 {
            match *op {
                ConstOp::I32(v) => {
                    self.u8(0);
                    self.u32(v);
                }
                ConstOp::I64(v) => {
                    self.u8(1);
                    self.u64(v);
                }
                ConstOp::F32(v) => {
                    self.u8(2);
                    self.u32(v);
                }
                ConstOp::F64(v) => {
                    self.u8(3);
                    self.u64(v);
                }
                ConstOp::RefNull => self.u8(4),
                ConstOp::RefFunc(f) => {
                    self.u8(5);
                    self.u32(f);
                }
                ConstOp::GlobalGet(g) => {
                    self.u8(6);
                    self.u32(g);
                }
                ConstOp::I32Add => self.u8(7),
                ConstOp::I32Sub => self.u8(8),
                ConstOp::I32Mul => self.u8(9),
                ConstOp::I64Add => self.u8(10),
                ConstOp::I64Sub => self.u8(11),
                ConstOp::I64Mul => self.u8(12),
            }
        }
    }
    fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MetadataError> {
        if self.0.len() < n {
            return Err(MetadataError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, MetadataError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, MetadataError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, MetadataError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    /// A length that must fit in what is left (each element takes at least a byte).
    fn count(&mut self) -> Result<usize, MetadataError> {
        let n = self.u32()? as usize;
        if n > self.0.len() {
            return Err(MetadataError::Truncated);
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<&'a [u8], MetadataError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn opt_u64(&mut self) -> Result<Option<u64>, MetadataError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            _ => Err(MetadataError::Malformed("option flag")),
        }
    }
    fn val_type(&mut self) -> Result<ValType, MetadataError> {
        ValType::from_code(self.u8()?).ok_or(MetadataError::Malformed("value type"))
    }
    fn flag(&mut self) -> Result<bool, MetadataError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(MetadataError::Malformed("flag")),
        }
    }
    fn string(&mut self) -> Result<String, MetadataError> {
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|_| MetadataError::Malformed("name is not UTF-8"))
    }
    fn memory(&mut self) -> Result<MemoryDecl, MetadataError> {
        let min_pages = self.u64()?;
        let max_pages = self.opt_u64()?;
        let page_size_log2 = self.u8()?;
        if page_size_log2 > 16 {
            return Err(MetadataError::Malformed("page size"));
        }
        Ok(MemoryDecl {
            min_pages,
            max_pages,
            page_size_log2,
        })
    }
    fn table(&mut self) -> Result<TableDecl, MetadataError> {
        let ty = self.val_type()?;
        if !matches!(ty, ValType::FuncRef | ValType::ExternRef) {
            return Err(MetadataError::Malformed("table element type"));
        }
        Ok(TableDecl {
            ty,
            min: self.u64()?,
            max: self.opt_u64()?,
            init: self.expr()?,
        })
    }
    fn expr(&mut self) -> Result<ConstExpr, MetadataError> {
        let mut ops = Vec::new();
        for _ in 0..self.count()? {
            ops.push(match self.u8()? {
                0 => ConstOp::I32(self.u32()?),
                1 => ConstOp::I64(self.u64()?),
                2 => ConstOp::F32(self.u32()?),
                3 => ConstOp::F64(self.u64()?),
                4 => ConstOp::RefNull,
                5 => ConstOp::RefFunc(self.u32()?),
                6 => ConstOp::GlobalGet(self.u32()?),
                7 => ConstOp::I32Add,
                8 => ConstOp::I32Sub,
                9 => ConstOp::I32Mul,
                10 => ConstOp::I64Add,
                11 => ConstOp::I64Sub,
                12 => ConstOp::I64Mul,
                _ => return Err(MetadataError::Malformed("constant expression")),
            });
        }
        Ok(ConstExpr(ops))
    }
}

/// Find the single occurrence of `marker` in `file`; `None` if absent or
/// present more than once.
pub fn find_marker(file: &[u8], marker: &[u8; 16]) -> Option<usize> {
    let mut found = None;
    let mut i = 0;
    while i + marker.len() <= file.len() {
        if file[i] == marker[0] && &file[i..i + marker.len()] == marker {
            if found.is_some() {
                return None;
            }
            found = Some(i);
        }
        i += 1;
    }
    found
}

/// SHA-256 of an artifact file with its [`HASH_LEN`] hash bytes (after
/// the hash marker at `hash_at`) taken as zero. It shows the file is intact;
/// being unkeyed, it cannot show who produced it. (A file that ends inside
/// the cell is hashed as if the cell were complete; loading refuses such a
/// file before hashing.)
pub fn artifact_hash(file: &[u8], hash_at: usize) -> [u8; HASH_LEN] {
    use sha2::Digest;
    let cell = (hash_at + HASH_MARKER.len()).min(file.len());
    let rest = (cell + HASH_LEN).min(file.len());
    let mut h = sha2::Sha256::new();
    h.update(&file[..cell]);
    h.update([0u8; HASH_LEN]);
    h.update(&file[rest..]);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metadata {
        Metadata {
            abi_version: ABI_VERSION,
            fingerprint: 0x1234,
            source_key: [0x5a; 32],
            guard_bytes: 0,
            types: vec![
                FuncType {
                    params: vec![ValType::I32, ValType::I64],
                    results: vec![ValType::I64],
                },
                FuncType {
                    params: vec![ValType::F32],
                    results: vec![],
                },
            ],
            imports: vec![
                Import {
                    module: "env".into(),
                    name: "f".into(),
                    kind: ImportKind::Func(0),
                },
                Import {
                    module: "env".into(),
                    name: "g".into(),
                    kind: ImportKind::Global {
                        ty: ValType::I32,
                        mutable: false,
                    },
                },
                Import {
                    module: "env".into(),
                    name: "t".into(),
                    kind: ImportKind::Tag(1),
                },
            ],
            func_types: vec![0, 0],
            memory: Some(MemoryDecl {
                min_pages: 1,
                max_pages: Some(4),
                page_size_log2: 16,
            }),
            globals: vec![GlobalDecl {
                ty: ValType::I64,
                mutable: true,
                init: ConstExpr(vec![ConstOp::I64(7)]),
            }],
            data: vec![DataSegment {
                passive: false,
                offset: ConstExpr(vec![
                    ConstOp::GlobalGet(0),
                    ConstOp::I32(16),
                    ConstOp::I32Add,
                ]),
                bytes: b"hello".to_vec(),
            }],
            tables: vec![
                TableDecl {
                    ty: ValType::FuncRef,
                    min: 2,
                    max: Some(10),
                    init: ConstExpr(vec![ConstOp::RefFunc(1)]),
                },
                TableDecl {
                    ty: ValType::ExternRef,
                    min: 0,
                    max: None,
                    init: ConstExpr::null(),
                },
            ],
            elems: vec![
                ElemSegment {
                    mode: ElemMode::Active {
                        table: 0,
                        offset: ConstExpr::i32(1),
                    },
                    items: vec![ElemItem::Func(0), ElemItem::Null, ElemItem::Global(1)],
                },
                ElemSegment {
                    mode: ElemMode::Passive,
                    items: vec![ElemItem::Func(2)],
                },
                ElemSegment {
                    mode: ElemMode::Declared,
                    items: vec![],
                },
            ],
            tags: vec![1, 1],
            global_refs: vec![None, None],
            table_refs: vec![
                RefPrecise {
                    nullable: false,
                    heap: RefHeap::Concrete(0),
                },
                RefPrecise::plain(ValType::ExternRef).expect("a reference type"),
            ],
            func_refs: true,
            exports: vec![
                Export {
                    name: "run".into(),
                    kind: ExportKind::Func,
                    index: 1,
                },
                Export {
                    name: "mem".into(),
                    kind: ExportKind::Memory,
                    index: 0,
                },
                Export {
                    name: "tag".into(),
                    kind: ExportKind::Tag,
                    index: 2,
                },
            ],
            start: None,
            traps: vec![TrapSite {
                func_index: 0,
                offset: 12,
                kind: TrapKind::Unreachable,
            }],
            wrappers: vec![HelperCode {
                frame_bytes: 48,
                traps: vec![(4, TrapKind::StackOverflow)],
            }],
            stubs: vec![HelperCode {
                frame_bytes: 16,
                traps: vec![],
            }],
        }
    }

    #[test]
    fn const_exprs_evaluate() {
        let e = ConstExpr(vec![
            ConstOp::GlobalGet(0),
            ConstOp::I32(16),
            ConstOp::I32Add,
        ]);
        assert_eq!(e.eval(|_| 0xffff_fff0, |_| 0), Some(0));
        assert_eq!(e.as_plain(), None);
        assert_eq!(ConstExpr::i32(5).as_plain(), Some(5));
        assert_eq!(ConstExpr(vec![ConstOp::I32Add]).eval(|_| 0, |_| 0), None);
    }

    #[test]
    fn out_of_range_indices_are_refused() {
        let mut m = sample();
        m.exports[0].index = 9;
        assert!(Metadata::decode(&m.encode()).is_err());
        let mut m = sample();
        m.elems[1].items[0] = ElemItem::Func(4);
        assert!(Metadata::decode(&m.encode()).is_err());
        // Tags: one imported + two defined, so index 3 is out of range.
        let mut m = sample();
        m.exports[2].index = 3;
        assert!(Metadata::decode(&m.encode()).is_err());
        let mut m = sample();
        m.tags.push(2);
        assert!(Metadata::decode(&m.encode()).is_err());
        let mut m = sample();
        m.imports[2].kind = ImportKind::Tag(5);
        assert!(Metadata::decode(&m.encode()).is_err());
    }

    #[test]
    fn tag_types_with_results_are_refused() {
        // Type 0 has a result: not a valid tag type.
        let mut m = sample();
        m.tags[1] = 0;
        assert_eq!(
            Metadata::decode(&m.encode()),
            Err(MetadataError::Malformed(
                "tag type has results or is out of range"
            ))
        );
        let mut m = sample();
        m.imports[2].kind = ImportKind::Tag(0);
        assert!(Metadata::decode(&m.encode()).is_err());
    }

    #[test]
    fn tag_index_space_puts_imports_first() {
        let m = sample();
        assert_eq!(m.num_imported_tags(), 1);
        assert_eq!(m.tag_type_index(0), Some(1));
        assert_eq!(m.tag_type_index(2), Some(1));
        assert_eq!(m.tag_type_index(3), None);
        assert_eq!(
            m.tag_type(1).map(|t| t.params.clone()),
            Some(vec![ValType::F32])
        );
    }

    #[test]
    fn metadata_round_trips() {
        let m = sample();
        assert_eq!(Metadata::decode(&m.encode()), Ok(m));
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let blob = sample().encode();
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x40;
            assert!(Metadata::decode(&bad).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn truncation_is_refused() {
        let blob = sample().encode();
        for n in 0..blob.len() {
            assert!(Metadata::decode(&blob[..n]).is_err(), "prefix {n} accepted");
        }
    }

    #[test]
    fn other_abi_version_is_refused_by_name() {
        let mut m = sample();
        m.abi_version = ABI_VERSION + 1;
        assert_eq!(
            Metadata::decode(&m.encode()),
            Err(MetadataError::AbiVersion {
                found: ABI_VERSION + 1,
                expected: ABI_VERSION
            })
        );
    }

    #[test]
    fn artifact_hash_ignores_only_the_hash_cell() {
        let mut file = vec![1u8; 64];
        file[8..24].copy_from_slice(&HASH_MARKER);
        let at = find_marker(&file, &HASH_MARKER).unwrap();
        let h = artifact_hash(&file, at);
        file[24] = 99; // inside the hash cell
        file[55] = 98; // still inside
        assert_eq!(artifact_hash(&file, at), h);
        file[56] = 2; // outside
        assert_ne!(artifact_hash(&file, at), h);
    }

    #[test]
    fn trap_codes_round_trip() {
        for k in TrapKind::ALL {
            assert_eq!(TrapKind::from_code(k as u8), Some(k));
        }
        assert_eq!(TrapKind::from_code(0), None);
    }
}
