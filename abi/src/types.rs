//! Value, function and reference types, and trap kinds.

use std::fmt;

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
    pub(crate) fn from_code(code: u8) -> Option<ValType> {
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

    pub(crate) fn code(self) -> (u8, u32) {
        let h = match self.heap {
            RefHeap::Func => (0, 0),
            RefHeap::Extern => (1, 0),
            RefHeap::NoFunc => (2, 0),
            RefHeap::NoExtern => (3, 0),
            RefHeap::Concrete(t) => (4, t),
        };
        (h.0 | (self.nullable as u8) << 7, h.1)
    }

    pub(crate) fn from_code(tag: u8, index: u32) -> Option<RefPrecise> {
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
