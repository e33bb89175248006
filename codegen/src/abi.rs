//! The instance ABI shared by compiled code and the runtime.
//!
//! Everything that both sides must agree on lives here and nowhere else:
//! the vmctx field offsets, the builtin table, trap kinds, the symbol names
//! in an artifact, and the artifact metadata format with its version.
//!
//! # vmctx
//!
//! Every compiled function takes a pointer to the instance's vmctx as its
//! first argument. The first [`vmctx::ABI_HEADER_SIZE`] bytes are read and
//! written by compiled code at the offsets below; bytes up to
//! [`vmctx::GLOBALS`] belong to the runtime; globals follow, one 8-byte cell
//! each (i32 and f32 in the low 4 bytes, little endian).
//!
//! # Calling convention
//!
//! Defined functions use the platform C convention (System V on x86_64):
//! `fn(vmctx, params...) -> result`. Each exported function also gets an
//! "array call" wrapper `fn(vmctx, values: *mut u64)` that reads its
//! parameters from `values[..params]` and writes its results to
//! `values[..results]`, so the runtime calls every export the same way.
//!
//! # Builtins
//!
//! Compiled code calls out of wasm only through function pointers held in
//! vmctx, always passing `vmctx` first. Before such a call it stores its fuel
//! counter to [`vmctx::FUEL`] and reloads it afterwards.

use std::fmt;

/// Version of this ABI. Bump on any change to vmctx layout, builtin
/// signatures, symbol naming, trap kinds or the metadata encoding.
pub const ABI_VERSION: u32 = 2;

/// Byte offsets of the vmctx fields that compiled code touches.
pub mod vmctx {
    /// `i64`: remaining fuel. Compiled code subtracts at every function
    /// entry and loop header and calls the `fuel_exhausted` builtin when it
    /// goes negative.
    pub const FUEL: i32 = 0;
    /// `u64`: lowest stack pointer compiled code may use (Cranelift's
    /// stack-limit check traps with `StackOverflow` below it).
    pub const STACK_LIMIT: i32 = 8;
    /// `u64`: address of linear memory byte 0.
    pub const HEAP_BASE: i32 = 16;
    /// `u64`: current linear memory length in bytes.
    pub const HEAP_LEN: i32 = 24;
    /// `extern "C" fn(vmctx)`: called when fuel goes negative. May refill
    /// [`FUEL`] and return, or suspend the instance and return when it is
    /// resumed.
    pub const FN_FUEL_EXHAUSTED: i32 = 32;
    /// `extern "C" fn(vmctx, delta_pages: u64) -> i64`: `memory.grow`.
    /// Returns the old size in pages, or -1 if the memory cannot grow.
    pub const FN_MEMORY_GROW: i32 = 40;
    /// `*const u32`: the module's canonical type ids, one per type index
    /// (process-wide: equal ids mean structurally equal signatures).
    pub const TYPE_IDS: i32 = 48;
    /// `*const TableDesc`: one [`TABLE_DESC_SIZE`]-byte descriptor
    /// `{ base: *mut u64, len: u64 }` per table. Elements are funcref
    /// pointers or externref handles, 0 is null.
    pub const TABLES: i32 = 56;
    /// `*const FuncRef`: the instance's [`FUNC_REF_SIZE`]-byte records
    /// `{ code, vmctx, type_id: u64 }`, one per defined function;
    /// `ref.func i` is `FUNC_REFS + FUNC_REF_SIZE * i`.
    pub const FUNC_REFS: i32 = 64;
    /// Table builtins: `extern "C" fn(vmctx, args: *const u64) -> i64`,
    /// arguments (each zero-extended to u64) in a buffer on the caller's
    /// stack. `table.grow`: `[table, delta, init]` -> old size or -1.
    pub const FN_TABLE_GROW: i32 = 72;
    /// `table.fill`: `[table, dst, value, len]` -> 0, or non-zero: trap
    /// `TableAccessOutOfBounds`.
    pub const FN_TABLE_FILL: i32 = 80;
    /// `table.copy`: `[dst_table, src_table, dst, src, len]` -> 0 or trap.
    pub const FN_TABLE_COPY: i32 = 88;
    /// `table.init`: `[table, segment, dst, src, len]` -> 0 or trap.
    pub const FN_TABLE_INIT: i32 = 96;
    /// `elem.drop`: `[segment]` -> 0.
    pub const FN_ELEM_DROP: i32 = 104;
    /// `memory.init`: `[segment, dst, src, len]` -> 0, or non-zero: trap
    /// `HeapOutOfBounds`.
    pub const FN_MEMORY_INIT: i32 = 112;
    /// `data.drop`: `[segment]` -> 0.
    pub const FN_DATA_DROP: i32 = 120;
    /// Size of the part of vmctx defined by this ABI.
    pub const ABI_HEADER_SIZE: usize = 128;
    /// Offset of global 0; global `i` is at `GLOBALS + 8 * i`.
    /// Bytes `ABI_HEADER_SIZE..GLOBALS` are private to the runtime.
    pub const GLOBALS: i32 = 512;
    /// Size of a table descriptor.
    pub const TABLE_DESC_SIZE: i32 = 16;
    /// Size of a `FuncRef` record; `code` at 0, `vmctx` at 8, `type_id` at 16.
    pub const FUNC_REF_SIZE: i32 = 24;
    /// Size of one global cell.
    pub const GLOBAL_SIZE: i32 = 8;

    /// Total vmctx size for a module with `globals` globals.
    pub const fn size(globals: usize) -> usize {
        GLOBALS as usize + GLOBAL_SIZE as usize * globals
    }
}

/// Symbol name of defined function `index` (index among defined
/// functions, i.e. not counting imports).
pub fn func_symbol(index: u32) -> String {
    format!("myriad_func_{index}")
}

/// Symbol name of the array-call wrapper for defined function `index`.
pub fn export_wrapper_symbol(index: u32) -> String {
    format!("myriad_export_{index}")
}

/// Marker that starts the metadata blob inside an artifact file.
pub const METADATA_MARKER: [u8; 16] = *b"MYRIAD-METADATA\0";
/// Marker that starts the artifact hash cell (marker, then 8 hash bytes).
pub const HASH_MARKER: [u8; 16] = *b"MYRIAD-ART-HASH\0";
/// Symbol naming the metadata data object (marker + u32 length + blob).
pub const METADATA_SYMBOL: &str = "myriad_metadata";
/// Symbol naming the hash cell (marker + u64 hash).
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
}

impl TrapKind {
    /// All trap kinds, in code order.
    pub const ALL: [TrapKind; 10] = [
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

/// The module's linear memory declaration.
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

/// A table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableDecl {
    /// Element type: [`ValType::FuncRef`] or [`ValType::ExternRef`].
    pub ty: ValType,
    /// Initial length in elements.
    pub min: u64,
    /// Declared maximum length, if any.
    pub max: Option<u64>,
    /// Initial element: defined function index, or `None` for null.
    pub init: Option<u32>,
}

/// How an element segment is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElemMode {
    /// Available to `table.init` until dropped.
    Passive,
    /// Copied into `table` at `offset` at instantiation, then dropped.
    Active {
        /// Table index.
        table: u32,
        /// Element offset (constant expressions are resolved at compile
        /// time: without imports every global is known).
        offset: u32,
    },
    /// Only declares functions for `ref.func`; dropped at instantiation.
    Declared,
}

/// An element segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElemSegment {
    /// How it is used.
    pub mode: ElemMode,
    /// Items: defined function index, or `None` for a null reference.
    pub items: Vec<Option<u32>>,
}

/// A global: type, mutability and constant initial value (raw bits).
/// For a `funcref` global, `init` is the function index plus one, or 0 for
/// null (the runtime turns it into the instance's `FuncRef` pointer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalDecl {
    /// Value type.
    pub ty: ValType,
    /// Whether `global.set` may change it.
    pub mutable: bool,
    /// Initial value as raw little-endian bits in the 8-byte cell.
    pub init: u64,
}

/// A data segment. Active ones are copied into memory at instantiation
/// (and then count as dropped); passive ones serve `memory.init`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSegment {
    /// Passive (no offset, not copied at instantiation).
    pub passive: bool,
    /// Byte offset in linear memory (active segments).
    pub offset: u64,
    /// Bytes to copy.
    pub bytes: Vec<u8>,
}

/// An exported function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    /// Export name.
    pub name: String,
    /// Index among defined functions.
    pub func_index: u32,
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

/// Everything the runtime needs to know about an artifact besides its code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// [`ABI_VERSION`] the artifact was built for.
    pub abi_version: u32,
    /// Fingerprint of target and CPU features the code was compiled for.
    pub fingerprint: u64,
    /// Guard bytes after the heap that compiled code relies on to elide the
    /// constant part of bounds checks (0: every check is complete).
    pub guard_bytes: u64,
    /// Function signatures; `func_types` indexes into this.
    pub types: Vec<FuncType>,
    /// Type index of each defined function.
    pub func_types: Vec<u32>,
    /// The linear memory, if the module has one.
    pub memory: Option<MemoryDecl>,
    /// Globals in index order.
    pub globals: Vec<GlobalDecl>,
    /// Data segments (active and passive) in module order.
    pub data: Vec<DataSegment>,
    /// Tables in index order.
    pub tables: Vec<TableDecl>,
    /// Element segments in module order.
    pub elems: Vec<ElemSegment>,
    /// Whether compiled code or globals use `FUNC_REFS` (`ref.func`), so
    /// instances need the `FuncRef` array even without tables.
    pub func_refs: bool,
    /// Exported functions.
    pub exports: Vec<Export>,
    /// Start function (defined function index), if any.
    pub start: Option<u32>,
    /// Trap sites, sorted by (func_index, offset).
    pub traps: Vec<TrapSite>,
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

/// 64-bit FNV-1a hash. Used for metadata checksums and artifact integrity
/// (it detects corruption, not deliberate forgery).
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
        w.u32(self.func_types.len() as u32);
        for t in &self.func_types {
            w.u32(*t);
        }
        match &self.memory {
            None => w.u8(0),
            Some(m) => {
                w.u8(1);
                w.u64(m.min_pages);
                match m.max_pages {
                    None => w.u8(0),
                    Some(max) => {
                        w.u8(1);
                        w.u64(max);
                    }
                }
                w.u8(m.page_size_log2);
            }
        }
        w.u32(self.globals.len() as u32);
        for g in &self.globals {
            w.u8(g.ty as u8);
            w.u8(g.mutable as u8);
            w.u64(g.init);
        }
        w.u32(self.data.len() as u32);
        for d in &self.data {
            w.u8(d.passive as u8);
            w.u64(d.offset);
            w.bytes(&d.bytes);
        }
        w.u32(self.tables.len() as u32);
        for t in &self.tables {
            w.u8(t.ty as u8);
            w.u64(t.min);
            w.opt_u64(t.max);
            w.opt_u64(t.init.map(u64::from));
        }
        w.u32(self.elems.len() as u32);
        for e in &self.elems {
            match e.mode {
                ElemMode::Passive => w.u8(0),
                ElemMode::Active { table, offset } => {
                    w.u8(1);
                    w.u32(table);
                    w.u32(offset);
                }
                ElemMode::Declared => w.u8(2),
            }
            w.u32(e.items.len() as u32);
            for i in &e.items {
                w.u32(i.map_or(u32::MAX, |f| f));
            }
        }
        w.u8(self.func_refs as u8);
        w.u32(self.exports.len() as u32);
        for e in &self.exports {
            w.bytes(e.name.as_bytes());
            w.u32(e.func_index);
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
        let payload = w.0;
        let mut out = Vec::with_capacity(payload.len() + 8);
        out.extend_from_slice(&hash64(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// Parse and check a blob written by [`Metadata::encode`]. Refuses a
    /// blob whose checksum fails or whose ABI version differs.
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
        let mut func_types = Vec::new();
        for _ in 0..r.count()? {
            let t = r.u32()?;
            if t as usize >= types.len() {
                return Err(MetadataError::Malformed("function type index out of range"));
            }
            func_types.push(t);
        }
        let memory = match r.u8()? {
            0 => None,
            1 => {
                let min_pages = r.u64()?;
                let max_pages = match r.u8()? {
                    0 => None,
                    1 => Some(r.u64()?),
                    _ => return Err(MetadataError::Malformed("memory maximum flag")),
                };
                let page_size_log2 = r.u8()?;
                if page_size_log2 > 16 {
                    return Err(MetadataError::Malformed("page size"));
                }
                Some(MemoryDecl {
                    min_pages,
                    max_pages,
                    page_size_log2,
                })
            }
            _ => return Err(MetadataError::Malformed("memory flag")),
        };
        let mut globals = Vec::new();
        for _ in 0..r.count()? {
            let ty = r.val_type()?;
            let mutable = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(MetadataError::Malformed("global mutability")),
            };
            let init = r.u64()?;
            globals.push(GlobalDecl { ty, mutable, init });
        }
        let mut data = Vec::new();
        for _ in 0..r.count()? {
            let passive = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(MetadataError::Malformed("data segment mode")),
            };
            let offset = r.u64()?;
            let bytes = r.bytes()?.to_vec();
            data.push(DataSegment {
                passive,
                offset,
                bytes,
            });
        }
        let nfuncs = func_types.len();
        let func_index = |f: u32| -> Result<u32, MetadataError> {
            if (f as usize) < nfuncs {
                Ok(f)
            } else {
                Err(MetadataError::Malformed("function index out of range"))
            }
        };
        let mut tables = Vec::new();
        for _ in 0..r.count()? {
            let ty = r.val_type()?;
            if !matches!(ty, ValType::FuncRef | ValType::ExternRef) {
                return Err(MetadataError::Malformed("table element type"));
            }
            let min = r.u64()?;
            let max = r.opt_u64()?;
            let init = match r.opt_u64()? {
                None => None,
                Some(f) => Some(func_index(
                    u32::try_from(f).map_err(|_| MetadataError::Malformed("table init"))?,
                )?),
            };
            tables.push(TableDecl { ty, min, max, init });
        }
        let mut elems = Vec::new();
        for _ in 0..r.count()? {
            let mode = match r.u8()? {
                0 => ElemMode::Passive,
                1 => {
                    let table = r.u32()?;
                    if table as usize >= tables.len() {
                        return Err(MetadataError::Malformed("element table index"));
                    }
                    ElemMode::Active {
                        table,
                        offset: r.u32()?,
                    }
                }
                2 => ElemMode::Declared,
                _ => return Err(MetadataError::Malformed("element mode")),
            };
            let n = r.u32()? as usize;
            if n > r.0.len() / 4 {
                return Err(MetadataError::Truncated);
            }
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(match r.u32()? {
                    u32::MAX => None,
                    f => Some(func_index(f)?),
                });
            }
            elems.push(ElemSegment { mode, items });
        }
        let func_refs = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(MetadataError::Malformed("func_refs flag")),
        };
        let mut exports = Vec::new();
        for _ in 0..r.count()? {
            let name = String::from_utf8(r.bytes()?.to_vec())
                .map_err(|_| MetadataError::Malformed("export name is not UTF-8"))?;
            let func_index = r.u32()?;
            if func_index as usize >= func_types.len() {
                return Err(MetadataError::Malformed(
                    "export function index out of range",
                ));
            }
            exports.push(Export { name, func_index });
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
        if !r.0.is_empty() {
            return Err(MetadataError::Malformed("trailing bytes"));
        }
        Ok(Metadata {
            abi_version,
            fingerprint,
            guard_bytes,
            types,
            func_types,
            memory,
            globals,
            data,
            tables,
            elems,
            func_refs,
            exports,
            start,
            traps,
        })
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

/// Hash of an artifact file with its 8 hash bytes (after the hash marker at
/// `hash_at`) taken as zero.
pub fn artifact_hash(file: &[u8], hash_at: usize) -> u64 {
    let cell = hash_at + HASH_MARKER.len();
    let mut h = hash64(&file[..cell]);
    // Continue FNV over 8 zero bytes, then the rest.
    for _ in 0..8 {
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    for &b in &file[cell + 8..] {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metadata {
        Metadata {
            abi_version: ABI_VERSION,
            fingerprint: 0x1234,
            guard_bytes: 0,
            types: vec![FuncType {
                params: vec![ValType::I32, ValType::I64],
                results: vec![ValType::I64],
            }],
            func_types: vec![0, 0],
            memory: Some(MemoryDecl {
                min_pages: 1,
                max_pages: Some(4),
                page_size_log2: 16,
            }),
            globals: vec![GlobalDecl {
                ty: ValType::I64,
                mutable: true,
                init: 7,
            }],
            data: vec![DataSegment {
                passive: false,
                offset: 16,
                bytes: b"hello".to_vec(),
            }],
            tables: vec![
                TableDecl {
                    ty: ValType::FuncRef,
                    min: 2,
                    max: Some(10),
                    init: Some(1),
                },
                TableDecl {
                    ty: ValType::ExternRef,
                    min: 0,
                    max: None,
                    init: None,
                },
            ],
            elems: vec![
                ElemSegment {
                    mode: ElemMode::Active {
                        table: 0,
                        offset: 1,
                    },
                    items: vec![Some(0), None],
                },
                ElemSegment {
                    mode: ElemMode::Passive,
                    items: vec![Some(1)],
                },
                ElemSegment {
                    mode: ElemMode::Declared,
                    items: vec![],
                },
            ],
            func_refs: true,
            exports: vec![Export {
                name: "run".into(),
                func_index: 1,
            }],
            start: None,
            traps: vec![TrapSite {
                func_index: 0,
                offset: 12,
                kind: TrapKind::Unreachable,
            }],
        }
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
        let mut file = vec![1u8; 40];
        file[8..24].copy_from_slice(&HASH_MARKER);
        let at = find_marker(&file, &HASH_MARKER).unwrap();
        let h = artifact_hash(&file, at);
        file[24] = 99; // inside the hash cell
        assert_eq!(artifact_hash(&file, at), h);
        file[39] = 2; // outside
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
