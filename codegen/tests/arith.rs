//! Integer and float operators against Rust reference semantics, on edge
//! values. Trapping inputs (division by zero, `div_s(MIN, -1)`, invalid
//! float conversions) are not executed here: the runtime's tests cover
//! traps end to end.

mod common;

use common::Instance;

/// A module exporting one function per `(name, params, result)`, each
/// applying the operator `name` to its parameters.
fn op_module(ops: &[(&str, &str, &str)]) -> String {
    let mut wat = String::from("(module\n");
    for (op, params, result) in ops {
        let n = params.split_whitespace().count();
        let gets: String = (0..n).map(|i| format!("local.get {i} ")).collect();
        wat.push_str(&format!(
            "(func (export \"{op}\") (param {params}) (result {result}) {gets} {op})\n"
        ));
    }
    wat.push(')');
    wat
}

const I32_EDGES: &[i32] = &[
    0,
    1,
    -1,
    2,
    7,
    31,
    32,
    33,
    -32,
    i32::MIN,
    i32::MIN + 1,
    i32::MAX,
    0x1234_5678,
    -0x1234_5678,
    0x0000_ff00,
];

const I64_EDGES: &[i64] = &[
    0,
    1,
    -1,
    2,
    7,
    63,
    64,
    65,
    -64,
    i64::MIN,
    i64::MIN + 1,
    i64::MAX,
    i32::MIN as i64,
    i32::MAX as i64,
    u32::MAX as i64,
    0x1234_5678_9abc_def0,
    -0x1234_5678_9abc_def0,
];

type I32Bin = fn(i32, i32) -> Option<i32>;
type I64Bin = fn(i64, i64) -> Option<i64>;

fn b(v: bool) -> i32 {
    v as i32
}

#[test]
fn i32_binary_ops() {
    let cases: &[(&str, I32Bin)] = &[
        ("i32.add", |a, b| Some(a.wrapping_add(b))),
        ("i32.sub", |a, b| Some(a.wrapping_sub(b))),
        ("i32.mul", |a, b| Some(a.wrapping_mul(b))),
        ("i32.div_s", |a, b| {
            if b == 0 || (a == i32::MIN && b == -1) {
                None
            } else {
                Some(a / b)
            }
        }),
        ("i32.div_u", |a, b| {
            (b != 0).then(|| ((a as u32) / (b as u32)) as i32)
        }),
        ("i32.rem_s", |a, b| (b != 0).then(|| a.wrapping_rem(b))),
        ("i32.rem_u", |a, b| {
            (b != 0).then(|| ((a as u32) % (b as u32)) as i32)
        }),
        ("i32.and", |a, b| Some(a & b)),
        ("i32.or", |a, b| Some(a | b)),
        ("i32.xor", |a, b| Some(a ^ b)),
        ("i32.shl", |a, b| Some(a.wrapping_shl(b as u32))),
        ("i32.shr_s", |a, b| Some(a.wrapping_shr(b as u32))),
        ("i32.shr_u", |a, b| {
            Some((a as u32).wrapping_shr(b as u32) as i32)
        }),
        ("i32.rotl", |a, b| {
            Some((a as u32).rotate_left(b as u32 % 32) as i32)
        }),
        ("i32.rotr", |a, b| {
            Some((a as u32).rotate_right(b as u32 % 32) as i32)
        }),
        ("i32.eq", |x, y| Some(b(x == y))),
        ("i32.ne", |x, y| Some(b(x != y))),
        ("i32.lt_s", |x, y| Some(b(x < y))),
        ("i32.lt_u", |x, y| Some(b((x as u32) < (y as u32)))),
        ("i32.gt_s", |x, y| Some(b(x > y))),
        ("i32.gt_u", |x, y| Some(b((x as u32) > (y as u32)))),
        ("i32.le_s", |x, y| Some(b(x <= y))),
        ("i32.le_u", |x, y| Some(b((x as u32) <= (y as u32)))),
        ("i32.ge_s", |x, y| Some(b(x >= y))),
        ("i32.ge_u", |x, y| Some(b((x as u32) >= (y as u32)))),
    ];
    let ops: Vec<_> = cases.iter().map(|(n, _)| (*n, "i32 i32", "i32")).collect();
    let mut inst = Instance::new(&op_module(&ops));
    for (name, f) in cases {
        for &x in I32_EDGES {
            for &y in I32_EDGES {
                if let Some(want) = f(x, y) {
                    assert_eq!(inst.i32(name, &[x, y]), want, "{name}({x}, {y})");
                }
            }
        }
    }
    assert_eq!(inst.i32("i32.rem_s", &[i32::MIN, -1]), 0);
}

#[test]
fn i64_binary_ops() {
    let cases: &[(&str, I64Bin)] = &[
        ("i64.add", |a, b| Some(a.wrapping_add(b))),
        ("i64.sub", |a, b| Some(a.wrapping_sub(b))),
        ("i64.mul", |a, b| Some(a.wrapping_mul(b))),
        ("i64.div_s", |a, b| {
            if b == 0 || (a == i64::MIN && b == -1) {
                None
            } else {
                Some(a / b)
            }
        }),
        ("i64.div_u", |a, b| {
            (b != 0).then(|| ((a as u64) / (b as u64)) as i64)
        }),
        ("i64.rem_s", |a, b| (b != 0).then(|| a.wrapping_rem(b))),
        ("i64.rem_u", |a, b| {
            (b != 0).then(|| ((a as u64) % (b as u64)) as i64)
        }),
        ("i64.and", |a, b| Some(a & b)),
        ("i64.or", |a, b| Some(a | b)),
        ("i64.xor", |a, b| Some(a ^ b)),
        ("i64.shl", |a, b| Some(a.wrapping_shl(b as u32))),
        ("i64.shr_s", |a, b| Some(a.wrapping_shr(b as u32))),
        ("i64.shr_u", |a, b| {
            Some((a as u64).wrapping_shr(b as u32) as i64)
        }),
        ("i64.rotl", |a, b| {
            Some((a as u64).rotate_left((b as u64 % 64) as u32) as i64)
        }),
        ("i64.rotr", |a, b| {
            Some((a as u64).rotate_right((b as u64 % 64) as u32) as i64)
        }),
    ];
    let ops: Vec<_> = cases.iter().map(|(n, _)| (*n, "i64 i64", "i64")).collect();
    let mut inst = Instance::new(&op_module(&ops));
    for (name, f) in cases {
        for &x in I64_EDGES {
            for &y in I64_EDGES {
                if let Some(want) = f(x, y) {
                    assert_eq!(inst.i64(name, &[x, y]), want, "{name}({x}, {y})");
                }
            }
        }
    }
    assert_eq!(inst.i64("i64.rem_s", &[i64::MIN, -1]), 0);
}

#[test]
fn i64_comparisons() {
    type Cmp = fn(i64, i64) -> bool;
    let cases: &[(&str, Cmp)] = &[
        ("i64.eq", |x, y| x == y),
        ("i64.ne", |x, y| x != y),
        ("i64.lt_s", |x, y| x < y),
        ("i64.lt_u", |x, y| (x as u64) < (y as u64)),
        ("i64.gt_s", |x, y| x > y),
        ("i64.gt_u", |x, y| (x as u64) > (y as u64)),
        ("i64.le_s", |x, y| x <= y),
        ("i64.le_u", |x, y| (x as u64) <= (y as u64)),
        ("i64.ge_s", |x, y| x >= y),
        ("i64.ge_u", |x, y| (x as u64) >= (y as u64)),
    ];
    let ops: Vec<_> = cases.iter().map(|(n, _)| (*n, "i64 i64", "i32")).collect();
    let mut inst = Instance::new(&op_module(&ops));
    for (name, f) in cases {
        for &x in I64_EDGES {
            for &y in I64_EDGES {
                let got = inst.call(name, &[x as u64, y as u64])[0] as u32;
                assert_eq!(got, f(x, y) as u32, "{name}({x}, {y})");
            }
        }
    }
}

#[test]
fn integer_unary_ops_and_conversions() {
    let ops = [
        ("i32.clz", "i32", "i32"),
        ("i32.ctz", "i32", "i32"),
        ("i32.popcnt", "i32", "i32"),
        ("i32.eqz", "i32", "i32"),
        ("i32.extend8_s", "i32", "i32"),
        ("i32.extend16_s", "i32", "i32"),
        ("i64.clz", "i64", "i64"),
        ("i64.ctz", "i64", "i64"),
        ("i64.popcnt", "i64", "i64"),
        ("i64.eqz", "i64", "i32"),
        ("i64.extend8_s", "i64", "i64"),
        ("i64.extend16_s", "i64", "i64"),
        ("i64.extend32_s", "i64", "i64"),
        ("i32.wrap_i64", "i64", "i32"),
        ("i64.extend_i32_s", "i32", "i64"),
        ("i64.extend_i32_u", "i32", "i64"),
    ];
    let mut inst = Instance::new(&op_module(&ops));
    for &x in I32_EDGES {
        let u = x as u32;
        assert_eq!(
            inst.i32("i32.clz", &[x]),
            u.leading_zeros() as i32,
            "clz {x}"
        );
        assert_eq!(
            inst.i32("i32.ctz", &[x]),
            u.trailing_zeros() as i32,
            "ctz {x}"
        );
        assert_eq!(
            inst.i32("i32.popcnt", &[x]),
            u.count_ones() as i32,
            "popcnt {x}"
        );
        assert_eq!(inst.i32("i32.eqz", &[x]), (x == 0) as i32);
        assert_eq!(inst.i32("i32.extend8_s", &[x]), x as i8 as i32);
        assert_eq!(inst.i32("i32.extend16_s", &[x]), x as i16 as i32);
        assert_eq!(
            inst.call("i64.extend_i32_s", &[u as u64])[0] as i64,
            x as i64
        );
        assert_eq!(inst.call("i64.extend_i32_u", &[u as u64])[0], u as u64);
    }
    for &x in I64_EDGES {
        let u = x as u64;
        assert_eq!(
            inst.i64("i64.clz", &[x]),
            u.leading_zeros() as i64,
            "clz {x}"
        );
        assert_eq!(
            inst.i64("i64.ctz", &[x]),
            u.trailing_zeros() as i64,
            "ctz {x}"
        );
        assert_eq!(inst.i64("i64.popcnt", &[x]), u.count_ones() as i64);
        assert_eq!(inst.call("i64.eqz", &[u])[0] as u32, (x == 0) as u32);
        assert_eq!(inst.i64("i64.extend8_s", &[x]), x as i8 as i64);
        assert_eq!(inst.i64("i64.extend16_s", &[x]), x as i16 as i64);
        assert_eq!(inst.i64("i64.extend32_s", &[x]), x as i32 as i64);
        assert_eq!(inst.call("i32.wrap_i64", &[u])[0] as u32, x as u32);
    }
}

/// wasm `min`: NaN if either is NaN, and -0 < +0.
fn wasm_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        f64::from_bits(a.to_bits() | b.to_bits())
    } else {
        a.min(b)
    }
}

fn wasm_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        f64::from_bits(a.to_bits() & b.to_bits())
    } else {
        a.max(b)
    }
}

fn same(got: f64, want: f64) -> bool {
    (got.is_nan() && want.is_nan()) || got.to_bits() == want.to_bits()
}

const F64_EDGES: &[f64] = &[
    0.0,
    -0.0,
    1.0,
    -1.5,
    2.5,
    3.5,
    0.1,
    1e300,
    -1e-300,
    f64::MAX,
    f64::MIN_POSITIVE,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
];

#[test]
fn f64_ops() {
    type Bin = fn(f64, f64) -> f64;
    type Un = fn(f64) -> f64;
    let bins: &[(&str, Bin)] = &[
        ("f64.add", |a, b| a + b),
        ("f64.sub", |a, b| a - b),
        ("f64.mul", |a, b| a * b),
        ("f64.div", |a, b| a / b),
        ("f64.min", wasm_min),
        ("f64.max", wasm_max),
        ("f64.copysign", f64::copysign),
    ];
    let uns: &[(&str, Un)] = &[
        ("f64.abs", f64::abs),
        ("f64.neg", |a| -a),
        ("f64.sqrt", f64::sqrt),
        ("f64.ceil", f64::ceil),
        ("f64.floor", f64::floor),
        ("f64.trunc", f64::trunc),
        ("f64.nearest", f64::round_ties_even),
    ];
    type Cmp = fn(f64, f64) -> bool;
    let cmps: &[(&str, Cmp)] = &[
        ("f64.eq", |a, b| a == b),
        ("f64.ne", |a, b| a != b),
        ("f64.lt", |a, b| a < b),
        ("f64.gt", |a, b| a > b),
        ("f64.le", |a, b| a <= b),
        ("f64.ge", |a, b| a >= b),
    ];
    let mut ops: Vec<_> = bins.iter().map(|(n, _)| (*n, "f64 f64", "f64")).collect();
    ops.extend(uns.iter().map(|(n, _)| (*n, "f64", "f64")));
    ops.extend(cmps.iter().map(|(n, _)| (*n, "f64 f64", "i32")));
    let mut inst = Instance::new(&op_module(&ops));
    for &x in F64_EDGES {
        for (name, f) in uns {
            let got = f64::from_bits(inst.call(name, &[x.to_bits()])[0]);
            assert!(same(got, f(x)), "{name}({x}) = {got}");
        }
        for &y in F64_EDGES {
            for (name, f) in bins {
                let got = f64::from_bits(inst.call(name, &[x.to_bits(), y.to_bits()])[0]);
                assert!(same(got, f(x, y)), "{name}({x}, {y}) = {got}");
            }
            for (name, f) in cmps {
                let got = inst.call(name, &[x.to_bits(), y.to_bits()])[0];
                assert_eq!(got, f(x, y) as u64, "{name}({x}, {y})");
            }
        }
    }
}

#[test]
fn f32_ops_and_conversions() {
    let ops = [
        ("f32.add", "f32 f32", "f32"),
        ("f32.min", "f32 f32", "f32"),
        ("f32.nearest", "f32", "f32"),
        ("f32.demote_f64", "f64", "f32"),
        ("f64.promote_f32", "f32", "f64"),
        ("f64.convert_i64_u", "i64", "f64"),
        ("f32.convert_i32_s", "i32", "f32"),
        ("f64.convert_i32_u", "i32", "f64"),
        ("i32.trunc_f64_s", "f64", "i32"),
        ("i32.trunc_f32_u", "f32", "i32"),
        ("i64.trunc_f64_u", "f64", "i64"),
        ("i32.trunc_sat_f64_s", "f64", "i32"),
        ("i64.trunc_sat_f32_u", "f32", "i64"),
        ("i32.reinterpret_f32", "f32", "i32"),
        ("f64.reinterpret_i64", "i64", "f64"),
    ];
    let mut inst = Instance::new(&op_module(&ops));
    let f32c = |x: f32| x.to_bits() as u64;
    let call_f32 = |inst: &mut Instance, name: &str, args: &[u64]| {
        f32::from_bits(inst.call(name, args)[0] as u32)
    };
    assert_eq!(
        call_f32(&mut inst, "f32.add", &[f32c(1.5), f32c(2.25)]),
        3.75
    );
    assert_eq!(
        call_f32(&mut inst, "f32.min", &[f32c(0.0), f32c(-0.0)]).to_bits(),
        (-0.0f32).to_bits()
    );
    assert!(call_f32(&mut inst, "f32.min", &[f32c(f32::NAN), f32c(1.0)]).is_nan());
    assert_eq!(call_f32(&mut inst, "f32.nearest", &[f32c(2.5)]), 2.0);
    assert_eq!(call_f32(&mut inst, "f32.nearest", &[f32c(-3.5)]), -4.0);
    assert_eq!(
        call_f32(&mut inst, "f32.demote_f64", &[0.1f64.to_bits()]),
        0.1f32
    );
    assert_eq!(
        inst.call("f64.promote_f32", &[f32c(0.5)])[0],
        0.5f64.to_bits()
    );
    assert_eq!(
        inst.call("f64.convert_i64_u", &[u64::MAX])[0],
        (u64::MAX as f64).to_bits()
    );
    assert_eq!(
        call_f32(&mut inst, "f32.convert_i32_s", &[(-7i32) as u32 as u64]),
        -7.0
    );
    assert_eq!(
        inst.call("f64.convert_i32_u", &[u32::MAX as u64])[0],
        (u32::MAX as f64).to_bits()
    );
    assert_eq!(
        inst.call("i32.trunc_f64_s", &[(-3.9f64).to_bits()])[0] as u32,
        -3i32 as u32
    );
    assert_eq!(
        inst.call("i32.trunc_f64_s", &[(-2147483648.9f64).to_bits()])[0] as u32,
        i32::MIN as u32
    );
    assert_eq!(
        inst.call("i32.trunc_f32_u", &[f32c(4294967040.0)])[0] as u32,
        4294967040
    );
    assert_eq!(inst.call("i32.trunc_f32_u", &[f32c(-0.9)])[0] as u32, 0);
    assert_eq!(
        inst.call("i64.trunc_f64_u", &[1.844_674_407_370_955e19_f64.to_bits()])[0],
        18446744073709549568
    );
    assert_eq!(
        inst.call("i32.trunc_sat_f64_s", &[f64::NAN.to_bits()])[0] as u32,
        0
    );
    assert_eq!(
        inst.call("i32.trunc_sat_f64_s", &[1e100f64.to_bits()])[0] as u32,
        i32::MAX as u32
    );
    assert_eq!(
        inst.call("i32.trunc_sat_f64_s", &[(-1e100f64).to_bits()])[0] as u32,
        i32::MIN as u32
    );
    assert_eq!(inst.call("i64.trunc_sat_f32_u", &[f32c(-5.0)])[0], 0);
    assert_eq!(
        inst.call("i64.trunc_sat_f32_u", &[f32c(f32::INFINITY)])[0],
        u64::MAX
    );
    assert_eq!(
        inst.call("i32.reinterpret_f32", &[f32c(-0.0)])[0],
        0x8000_0000
    );
    assert_eq!(inst.call("f64.reinterpret_i64", &[42])[0], 42);
}
