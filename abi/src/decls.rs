//! What a module declares, as the metadata records it: memory, tables,
//! globals, data and element segments, imports, exports, trap sites and
//! the compiler-made helpers.

use crate::types::*;

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
        // Nearly every expression is one constant or `global.get`: no
        // stack (instantiation evaluates every segment offset).
        if let [op] = self.0.as_slice() {
            return match *op {
                ConstOp::I32(v) | ConstOp::F32(v) => Some(u64::from(v)),
                ConstOp::I64(v) | ConstOp::F64(v) => Some(v),
                ConstOp::RefNull => Some(0),
                ConstOp::RefFunc(f) => Some(func(f)),
                ConstOp::GlobalGet(g) => Some(global(g)),
                _ => None,
            };
        }
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
