//! Parsing `--invoke` arguments and printing results.

use crate::usage;
use anyhow::Result;
use myriad_runtime::{FuncType, Val, ValType};

/// Name of a value type as wasm text writes it.
pub fn type_name(t: ValType) -> &'static str {
    match t {
        ValType::I32 => "i32",
        ValType::I64 => "i64",
        ValType::F32 => "f32",
        ValType::F64 => "f64",
        ValType::FuncRef => "funcref",
        ValType::ExternRef => "externref",
    }
}

/// A signature as `(i32, i64) -> f64`; no results is `()`, several are
/// parenthesised.
pub fn signature(ty: &FuncType) -> String {
    let list = |ts: &[ValType]| {
        ts.iter()
            .map(|t| type_name(*t))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let results = match ty.results.as_slice() {
        [one] => type_name(*one).to_string(),
        many => format!("({})", list(many)),
    };
    format!("({}) -> {results}", list(&ty.params))
}

/// A tag's type as `tag (i32, f64)` (tags have parameters only).
pub fn tag_signature(ty: &FuncType) -> String {
    let params: Vec<&str> = ty.params.iter().map(|t| type_name(*t)).collect();
    format!("tag ({})", params.join(", "))
}

/// Parse an integer: decimal or `0x` hex, optionally negative, into i128.
fn parse_int(s: &str) -> Option<i128> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let body = body.replace('_', "");
    let magnitude = if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        if hex.is_empty() {
            return None;
        }
        i128::from_str_radix(hex, 16).ok()?
    } else {
        if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        body.parse::<i128>().ok()?
    };
    Some(if neg { -magnitude } else { magnitude })
}

/// Parse one argument as type `t`. Integers accept the signed and the
/// unsigned range (`0xffffffff` is the i32 `-1`).
pub fn parse_val(s: &str, t: ValType) -> Option<Val> {
    Some(match t {
        ValType::I32 => {
            let v = parse_int(s)?;
            if v < i128::from(i32::MIN) || v > i128::from(u32::MAX) {
                return None;
            }
            Val::I32(v as u32 as i32)
        }
        ValType::I64 => {
            let v = parse_int(s)?;
            if v < i128::from(i64::MIN) || v > i128::from(u64::MAX) {
                return None;
            }
            Val::I64(v as u64 as i64)
        }
        ValType::F32 => Val::F32(s.parse::<f32>().ok()?),
        ValType::F64 => Val::F64(s.parse::<f64>().ok()?),
        // Only null references can be written on a command line.
        ValType::FuncRef if s == "null" => Val::FuncRef(0),
        ValType::ExternRef if s == "null" => Val::ExternRef(0),
        ValType::FuncRef | ValType::ExternRef => return None,
    })
}

/// Parse the arguments of export `name` against its signature.
pub fn parse_args(name: &str, ty: &FuncType, args: &[String]) -> Result<Vec<Val>> {
    if args.len() != ty.params.len() {
        usage!(
            "export {name:?} has signature {}: it takes {} argument{}, {} given",
            signature(ty),
            ty.params.len(),
            if ty.params.len() == 1 { "" } else { "s" },
            args.len()
        );
    }
    let mut vals = Vec::with_capacity(args.len());
    for (i, (arg, t)) in args.iter().zip(&ty.params).enumerate() {
        let Some(v) = parse_val(arg, *t) else {
            let hint = match t {
                ValType::I32 | ValType::I64 => "a decimal or 0x hex integer in range",
                ValType::F32 | ValType::F64 => "a decimal number, nan, inf or -inf",
                ValType::FuncRef | ValType::ExternRef => "null",
            };
            usage!(
                "argument {} of export {name:?} must be {} ({hint}), got {arg:?}",
                i + 1,
                type_name(*t)
            );
        };
        vals.push(v);
    }
    Ok(vals)
}

/// A result as `run --invoke` prints it: integers in decimal, floats with
/// Rust's `{}` formatting.
pub fn format_val(v: Val) -> String {
    match v {
        Val::I32(x) => x.to_string(),
        Val::I64(x) => x.to_string(),
        Val::F32(x) => x.to_string(),
        Val::F64(x) => x.to_string(),
        Val::FuncRef(0) | Val::ExternRef(0) => "null".to_string(),
        Val::FuncRef(x) => format!("funcref:{x:#x}"),
        Val::ExternRef(x) => format!("externref:{}", x - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(parse_val("-5", ValType::I32), Some(Val::I32(-5)));
        assert_eq!(parse_val("0x10", ValType::I32), Some(Val::I32(16)));
        assert_eq!(parse_val("-0x10", ValType::I32), Some(Val::I32(-16)));
        assert_eq!(parse_val("0xffffffff", ValType::I32), Some(Val::I32(-1)));
        assert_eq!(parse_val("4294967296", ValType::I32), None);
        assert_eq!(parse_val("-2147483649", ValType::I32), None);
        assert_eq!(
            parse_val("-9223372036854775808", ValType::I64),
            Some(Val::I64(i64::MIN))
        );
        assert_eq!(parse_val("0x", ValType::I64), None);
        assert_eq!(parse_val("1.5", ValType::I32), None);
        assert_eq!(parse_val("", ValType::I32), None);
        assert_eq!(parse_val("abc", ValType::I64), None);
    }

    #[test]
    fn floats() {
        assert_eq!(parse_val("1.5", ValType::F64), Some(Val::F64(1.5)));
        assert_eq!(
            parse_val("-inf", ValType::F32),
            Some(Val::F32(f32::NEG_INFINITY))
        );
        assert!(matches!(parse_val("nan", ValType::F64), Some(Val::F64(x)) if x.is_nan()));
        assert_eq!(parse_val("x", ValType::F32), None);
    }

    #[test]
    fn signatures() {
        let ty = FuncType {
            params: vec![ValType::I32],
            results: vec![ValType::I64],
        };
        assert_eq!(signature(&ty), "(i32) -> i64");
        assert_eq!(signature(&FuncType::default()), "() -> ()");
        let ty = FuncType {
            params: vec![ValType::F32, ValType::F64],
            results: vec![ValType::I32, ValType::I32],
        };
        assert_eq!(signature(&ty), "(f32, f64) -> (i32, i32)");
    }
}
