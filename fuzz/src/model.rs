//! What both engines' results are translated into before comparing:
//! values, trap classes, call outcomes and instance state.

use std::fmt;

/// A value as both sides report it.
#[derive(Clone, Debug)]
pub enum Value {
    /// `i32`
    I32(i32),
    /// `i64`
    I64(i64),
    /// `f32`, as bits
    F32(u32),
    /// `f64`, as bits
    F64(u64),
    /// `funcref`: `None` is null, otherwise the index of the function in
    /// the module's function index space ([`UNKNOWN_FUNC`] if the side
    /// cannot tell which function it is).
    FuncRef(Option<u32>),
    /// `externref`: `None` is null, otherwise the handle the fuzzer passed in.
    ExternRef(Option<u64>),
}

/// A non-null function reference whose function one side cannot name
/// (the oracle names only exported functions); it matches any non-null
/// function reference.
pub const UNKNOWN_FUNC: u32 = u32::MAX;

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (I32(a), I32(b)) => a == b,
            (I64(a), I64(b)) => a == b,
            // NaN payloads are nondeterministic: any NaN equals any NaN.
            (F32(a), F32(b)) => {
                a == b || (f32::from_bits(*a).is_nan() && f32::from_bits(*b).is_nan())
            }
            (F64(a), F64(b)) => {
                a == b || (f64::from_bits(*a).is_nan() && f64::from_bits(*b).is_nan())
            }
            (FuncRef(Some(a)), FuncRef(Some(b))) => {
                a == b || *a == UNKNOWN_FUNC || *b == UNKNOWN_FUNC
            }
            (FuncRef(a), FuncRef(b)) => a == b,
            (ExternRef(a), ExternRef(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::I32(v) => write!(f, "i32:{v}"),
            Value::I64(v) => write!(f, "i64:{v}"),
            Value::F32(b) => write!(f, "f32:{}({b:#010x})", f32::from_bits(*b)),
            Value::F64(b) => write!(f, "f64:{}({b:#018x})", f64::from_bits(*b)),
            Value::FuncRef(None) | Value::ExternRef(None) => write!(f, "null"),
            Value::FuncRef(Some(UNKNOWN_FUNC)) => write!(f, "funcref:?"),
            Value::FuncRef(Some(i)) => write!(f, "funcref:{i}"),
            Value::ExternRef(Some(h)) => write!(f, "externref:{h}"),
        }
    }
}

/// A value list, for messages.
pub fn show_values(vals: &[Value]) -> String {
    let parts: Vec<String> = vals.iter().map(|v| v.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// The trap classes both sides can tell apart. Myriad tells more (an
/// out-of-bounds `call_indirect` index from an out-of-bounds `table.get`);
/// the oracle reports both as one, so they are one class here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Trap {
    /// Out-of-bounds linear memory access (also a data segment or
    /// `memory.init`/`copy`/`fill` out of bounds).
    MemoryOutOfBounds,
    /// Out-of-bounds table access or `call_indirect` index (also an
    /// element segment out of bounds).
    TableOutOfBounds,
    /// `call_indirect` of a null element.
    IndirectCallToNull,
    /// `call_indirect` signature mismatch.
    IndirectCallTypeMismatch,
    /// Integer division or remainder by zero.
    IntegerDivisionByZero,
    /// Integer overflow (`MIN / -1`, float-to-int out of range).
    IntegerOverflow,
    /// Float-to-int conversion of a NaN.
    BadConversionToInteger,
    /// `unreachable`.
    Unreachable,
}

/// Resource limits: where they strike depends on each engine's own
/// accounting, so when either side hits one, the module is no longer
/// compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// Call stack exhausted.
    StackOverflow,
    /// Fuel budget spent.
    Fuel,
    /// A memory or table limit that is not a plain `grow` failure.
    Memory,
}

/// How a call (or an instantiation) ended on one side.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Returned these values.
    Returned(Vec<Value>),
    /// Trapped.
    Trapped(Trap),
    /// A resource limit ended it.
    Limited(Resource),
    /// Something this comparison does not expect (a host trap, an exit,
    /// an error of the embedding API): always a failure.
    Odd(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Returned(v) => write!(f, "returned {}", show_values(v)),
            Outcome::Trapped(t) => write!(f, "trapped: {t:?}"),
            Outcome::Limited(r) => write!(f, "resource limit: {r:?}"),
            Outcome::Odd(s) => write!(f, "unexpected: {s}"),
        }
    }
}

/// An instance's observable state: its memory, and every global and
/// table in index order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    /// The whole linear memory (empty without one), or `None` if this side
    /// cannot read it.
    pub memory: Option<Vec<u8>>,
    /// Globals by index; `None` for one this side cannot read.
    pub globals: Vec<Option<Value>>,
    /// Tables by index, all elements; `None` for one this side cannot read.
    pub tables: Vec<Option<Vec<Value>>>,
}

/// Where two states differ first, or `None`.
pub fn state_difference(a: &State, b: &State) -> Option<(String, String)> {
    if let (Some(ma), Some(mb)) = (&a.memory, &b.memory) {
        if ma.len() != mb.len() {
            return Some((
                format!("memory is {} bytes", ma.len()),
                format!("memory is {} bytes", mb.len()),
            ));
        }
        if let Some(i) = (0..ma.len()).find(|&i| ma[i] != mb[i]) {
            let end = (i + 16).min(ma.len());
            return Some((
                format!("memory[{i}..{end}] = {:02x?}", &ma[i..end]),
                format!("memory[{i}..{end}] = {:02x?}", &mb[i..end]),
            ));
        }
    }
    if a.globals.len() != b.globals.len() {
        return Some((
            format!("{} globals", a.globals.len()),
            format!("{} globals", b.globals.len()),
        ));
    }
    for (i, (x, y)) in a.globals.iter().zip(&b.globals).enumerate() {
        if let (Some(x), Some(y)) = (x, y) {
            if x != y {
                return Some((format!("global {i} = {x}"), format!("global {i} = {y}")));
            }
        }
    }
    if a.tables.len() != b.tables.len() {
        return Some((
            format!("{} tables", a.tables.len()),
            format!("{} tables", b.tables.len()),
        ));
    }
    for (t, (x, y)) in a.tables.iter().zip(&b.tables).enumerate() {
        if let (Some(x), Some(y)) = (x, y) {
            if x.len() != y.len() {
                return Some((
                    format!("table {t} has {} elements", x.len()),
                    format!("table {t} has {} elements", y.len()),
                ));
            }
            if let Some(i) = (0..x.len()).find(|&i| x[i] != y[i]) {
                return Some((
                    format!("table {t}[{i}] = {}", x[i]),
                    format!("table {t}[{i}] = {}", y[i]),
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nans_compare_equal_whatever_the_payload() {
        assert_eq!(Value::F32(0x7fc0_0000), Value::F32(0xffc0_0001));
        assert_ne!(Value::F32(0x7fc0_0000), Value::F32(0));
        assert_eq!(
            Value::F64(0x7ff8_0000_0000_0000),
            Value::F64(0xfff0_0000_0000_0001)
        );
        assert_ne!(Value::F64(0), Value::F64(1 << 63));
        assert_eq!(Value::FuncRef(Some(UNKNOWN_FUNC)), Value::FuncRef(Some(3)));
        assert_ne!(Value::FuncRef(Some(UNKNOWN_FUNC)), Value::FuncRef(None));
    }
}
