//! Review tests of the calling convention (written for ABI 13, `fn(vmctx,
//! p0, fuel, p1, ...)`; ABI 14 keeps the fuel in `r15`: `fn(vmctx,
//! params...)`): unusual signatures end to end, through every kind of call.

mod compiled;

use compiled::{call, compile_wat, region_with};
use myriad_codegen::CompileConfig;
use myriad_runtime::{Extern, FuncType, HostAction, Instance, Linker, Outcome, Val, ValType};
use std::sync::{Arc, Mutex};

use ValType::*;

fn sigs() -> Vec<(Vec<ValType>, Vec<ValType>)> {
    let twenty: Vec<ValType> = (0..20)
        .map(|i| [I32, F64, I64, F32, ExternRef, I32, F32, F64, I64, FuncRef][i % 10])
        .collect();
    let mut out = vec![
        (vec![], vec![]),
        (vec![], vec![F64, I32, F32, I64]),
        (vec![F64, I32, F32, I64], vec![F64, I32, F32, I64]),
        (vec![F32], vec![F32]),
        (vec![F64, F32], vec![]),
        (
            vec![F64, F64, F32, F32, F64, F64, F32, F32, F64, F32, F64],
            vec![F64, F32, F64],
        ),
        (twenty.clone(), twenty.clone()),
        (
            vec![ExternRef, F32, I64, FuncRef],
            vec![ExternRef, F32, I64, FuncRef],
        ),
        (vec![I64; 10], vec![I64; 10]),
        (vec![F32, F64, I32], vec![I32, F64, F32]),
        (vec![I32, F32], vec![F32, I32]),
        (
            [vec![F32; 9], vec![I32; 7]].concat(),
            [vec![I32; 7], vec![F32; 9]].concat(),
        ),
    ];
    // Pseudo-random signatures.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let all = [I32, I64, F32, F64, FuncRef, ExternRef];
    for k in 0..40 {
        let np = next(26) as usize;
        let p: Vec<ValType> = (0..np).map(|_| all[next(6) as usize]).collect();
        let r = if k % 2 == 0 {
            p.clone()
        } else {
            let nr = next(12) as usize;
            (0..nr).map(|_| all[next(6) as usize]).collect()
        };
        out.push((p, r));
    }
    out
}

fn wat_ty(t: ValType) -> &'static str {
    match t {
        I32 => "i32",
        I64 => "i64",
        F32 => "f32",
        F64 => "f64",
        FuncRef => "funcref",
        ExternRef => "externref",
        #[allow(unreachable_patterns)]
        _ => unreachable!(),
    }
}

fn list(kw: &str, ts: &[ValType]) -> String {
    if ts.is_empty() {
        return String::new();
    }
    let v: Vec<&str> = ts.iter().map(|t| wat_ty(*t)).collect();
    format!("({kw} {})", v.join(" "))
}

/// Distinct value for param/result position `i` of type `t`.
fn val(t: ValType, i: usize, salt: u64) -> Val {
    let i64v = i as i64 + salt as i64 * 1000;
    match t {
        I32 => Val::I32((0x8000_0000u32 | (0x101 * i as u32 + salt as u32 * 0x10000)) as i32),
        I64 => Val::I64(0x7EAD_BEEF_0000_0000 | i64v),
        F32 => Val::F32(1.5 + i64v as f32),
        F64 => Val::F64(-1000.25 - i64v as f64),
        ExternRef => Val::ExternRef(0xE000 + i64v as u64),
        FuncRef => Val::FuncRef(0),
        #[allow(unreachable_patterns)]
        _ => unreachable!(),
    }
}

/// A WAT constant for `val(t, i, salt)` (refs: null).
fn wat_const(t: ValType, i: usize, salt: u64) -> String {
    match val(t, i, salt) {
        Val::I32(v) => format!("(i32.const {v})"),
        Val::I64(v) => format!("(i64.const {v})"),
        Val::F32(v) => format!("(f32.const {v:?})"),
        Val::F64(v) => format!("(f64.const {v:?})"),
        Val::ExternRef(_) => "(ref.null extern)".into(),
        Val::FuncRef(_) => "(ref.null func)".into(),
    }
}

fn wat_const_val(t: ValType, i: usize, salt: u64) -> Val {
    match val(t, i, salt) {
        Val::ExternRef(_) => Val::ExternRef(0),
        v => v,
    }
}

/// id_k returns its params in order when params == results; otherwise
/// the results are constants (salt 7) and the params are checked to be
/// the expected ones (salt 0) else unreachable.
fn body_of(params: &[ValType], results: &[ValType]) -> String {
    if params == results {
        (0..params.len())
            .map(|i| format!("(local.get {i})"))
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        let mut s = String::new();
        for (i, t) in params.iter().enumerate() {
            let check = match t {
                I32 | I64 | F32 | F64 => format!(
                    "(if ({}.ne (local.get {i}) {}) (then unreachable))",
                    wat_ty(*t),
                    wat_const(*t, i, 0)
                ),
                _ => String::new(),
            };
            s.push_str(&check);
        }
        for (i, t) in results.iter().enumerate() {
            s.push(' ');
            s.push_str(&wat_const(*t, i, 7));
        }
        s
    }
}

fn expected(params: &[ValType], results: &[ValType], args: &[Val]) -> Vec<Val> {
    if params == results {
        args.to_vec()
    } else {
        results
            .iter()
            .enumerate()
            .map(|(i, t)| wat_const_val(*t, i, 7))
            .collect()
    }
}

/// The arguments of a call with parameters `p`: the caller's own
/// parameters (`local.get`s) and distinct constants.
fn arguments(p: &[ValType]) -> (String, String) {
    let gets = (0..p.len()).map(|i| format!(" (local.get {i})")).collect();
    let consts = p
        .iter()
        .enumerate()
        .map(|(i, t)| wat_const(*t, i, 0))
        .collect();
    (gets, consts)
}

/// `(module` and a type `$t{k}` per signature.
fn module_with_types(s: &[(Vec<ValType>, Vec<ValType>)]) -> String {
    let mut w = String::from("(module\n");
    for (k, (p, r)) in s.iter().enumerate() {
        w += &format!(
            "(type $t{k} (func {} {}))\n",
            list("param", p),
            list("result", r)
        );
    }
    w
}

fn provider_wat() -> String {
    let s = sigs();
    let mut w = module_with_types(&s);
    for (k, (p, r)) in s.iter().enumerate() {
        w += &format!(
            "(import \"host\" \"h{k}\" (func $h{k} (type $t{k})))\n(export \"h{k}\" (func $h{k}))\n"
        );
        let _ = (p, r);
    }
    w += &format!("(table $tab (export \"tab\") {} funcref)\n", s.len());
    for (k, (p, r)) in s.iter().enumerate() {
        let (gets, consts) = arguments(p);
        w += &format!(
            "(func $id{k} (export \"id{k}\") (type $t{k}) {})\n",
            body_of(p, r)
        );
        // A direct call, call_indirect and the host import, each with the
        // incoming parameters and with constants.
        let ind = format!("call_indirect $tab (type $t{k})");
        let at = format!(" (i32.const {k})");
        w += &callers("direct", k, r, &format!("call $id{k}"), "", &gets, &consts);
        w += &callers("indirect", k, r, &ind, &at, &gets, &consts);
        w += &callers("host", k, r, &format!("call $h{k}"), "", &gets, &consts);
        // recursion through itself with a counter in the way: a function
        // (param i32 ...p) that calls itself n times then id.
    }
    let elems: String = (0..s.len()).map(|k| format!(" $id{k}")).collect();
    w += &format!("(elem (i32.const 0) func{elems})\n");
    w += ")\n";
    w
}

/// Two exports of type `$t{k}` (results `r`) that call through `call`
/// (`call $f` or `call_indirect $tab (type $t)`, `tail` after the
/// arguments): `{name}{k}` passes its own parameters (`gets`),
/// `c{name}{k}` constants (`consts`).
fn callers(
    name: &str,
    k: usize,
    r: &[ValType],
    call: &str,
    tail: &str,
    gets: &str,
    consts: &str,
) -> String {
    format!(
        "(func (export \"{name}{k}\") (type $t{k}) ({call}{gets}{tail}))\n\
         (func (export \"c{name}{k}\") {} ({call} {consts}{tail}))\n",
        list("result", r)
    )
}

fn consumer_wat() -> String {
    let s = sigs();
    let mut w = module_with_types(&s);
    for k in 0..s.len() {
        w += &format!("(import \"p\" \"id{k}\" (func $pid{k} (type $t{k})))\n");
        w += &format!("(import \"p\" \"h{k}\" (func $ph{k} (type $t{k})))\n");
    }
    w += "(import \"p\" \"tab\" (table $tab 1 funcref))\n";
    for (k, (p, r)) in s.iter().enumerate() {
        let (gets, consts) = arguments(p);
        w += &format!("(export \"reexp{k}\" (func $pid{k}))\n");
        w += &format!("(export \"reexph{k}\" (func $ph{k}))\n");
        let ind = format!("call_indirect $tab (type $t{k})");
        let at = format!(" (i32.const {k})");
        w += &callers("imp", k, r, &format!("call $pid{k}"), "", &gets, &consts);
        w += &callers("imph", k, r, &format!("call $ph{k}"), "", &gets, &consts);
        w += &callers("impind", k, r, &ind, &at, &gets, &consts);
    }
    w += ")\n";
    w
}

/// The host calls seen: which function, with which parameter cells.
type Seen = Arc<Mutex<Vec<(usize, Vec<u64>)>>>;

fn host_linker(seen: Seen) -> Linker {
    let mut l = Linker::new();
    for (k, (p, r)) in sigs().into_iter().enumerate() {
        let seen = seen.clone();
        let ty = FuncType {
            params: p.clone(),
            results: r.clone(),
        };
        l.func("host", &format!("h{k}"), ty, move |_c, cells| {
            seen.lock().unwrap().push((k, cells[..p.len()].to_vec()));
            if p != r {
                for (i, t) in r.iter().enumerate() {
                    cells[i] = wat_const_val(*t, i, 7).to_bits();
                }
            }
            HostAction::Return
        });
    }
    l
}

fn args_for(p: &[ValType], salt: u64) -> Vec<Val> {
    p.iter()
        .enumerate()
        .map(|(i, t)| val(*t, i, salt))
        .collect()
}

fn const_args(p: &[ValType]) -> Vec<Val> {
    p.iter()
        .enumerate()
        .map(|(i, t)| wat_const_val(*t, i, 0))
        .collect()
}

fn check(
    inst: &mut Instance,
    name: &str,
    args: &[Val],
    want: Vec<Val>,
    failures: &mut Vec<String>,
) {
    let got = call(inst, name, args);
    if got != Outcome::Finished(want.clone()) {
        failures.push(format!("{name}({args:?}): want {want:?}, got {got:?}"));
    }
}

#[test]
fn unusual_signatures_through_every_kind_of_call() {
    let pw = provider_wat();
    let cw = consumer_wat();
    if std::env::var("DUMP_WAT").is_ok() {
        std::fs::write("/tmp/abi13_provider.wat", &pw).unwrap();
        std::fs::write("/tmp/abi13_consumer.wat", &cw).unwrap();
    }
    let pm = compile_wat(&pw, &CompileConfig::default());
    let cm = compile_wat(&cw, &CompileConfig::default());
    let region = region_with(4, 64 * 1024);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hl = host_linker(seen.clone());
    let mut p = hl.instantiate(&region, &pm, None).expect("provider");
    let mut l = Linker::new();
    l.instance("p", &p);
    let mut c = l.instantiate(&region, &cm, None).expect("consumer");
    let mut failures = Vec::new();
    for (k, (ps, rs)) in sigs().iter().enumerate() {
        // Salt 0 args are what the non-identity bodies expect.
        let salt = if ps == rs { 3 } else { 0 };
        let args = args_for(ps, salt);
        let want = expected(ps, rs, &args);
        let cwant = expected(ps, rs, &const_args(ps));
        for name in ["id", "direct", "indirect", "host"] {
            check(
                &mut p,
                &format!("{name}{k}"),
                &args,
                want.clone(),
                &mut failures,
            );
        }
        for name in ["cdirect", "cindirect", "chost"] {
            check(
                &mut p,
                &format!("{name}{k}"),
                &[],
                cwant.clone(),
                &mut failures,
            );
        }
        for name in ["reexp", "reexph", "imp", "imph", "impind"] {
            check(
                &mut c,
                &format!("{name}{k}"),
                &args,
                want.clone(),
                &mut failures,
            );
        }
        for name in ["cimp", "cimph", "cimpind"] {
            check(
                &mut c,
                &format!("{name}{k}"),
                &[],
                cwant.clone(),
                &mut failures,
            );
        }
    }
    // Every host call saw its parameters in order.
    for (k, cells) in seen.lock().unwrap().iter() {
        let (ps, rs) = &sigs()[*k];
        let salt = if ps == rs { 3 } else { 0 };
        let a: Vec<u64> = args_for(ps, salt).iter().map(|v| v.to_bits()).collect();
        let ca: Vec<u64> = const_args(ps).iter().map(|v| v.to_bits()).collect();
        if *cells != a && *cells != ca {
            failures.push(format!("host h{k} saw {cells:x?}, want {a:x?} or {ca:x?}"));
        }
    }
    eprintln!("host calls seen: {}", seen.lock().unwrap().len());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let _ = Extern::Func;
}

/// A recursive function with mixed params (more than fit in registers)
/// that changes each on the way down, run in tiny fuel slices so the
/// fuel slow path (and yields) happen with all of them live; also across
/// an instance boundary and through a funcref parameter.
const REC: &str = r#"(module
  (type $r (func (param f64 i32 f32 i64 f64 i32 f32 i64 f64 i32 f32 i64 externref i32)
                 (result i64 f64 i32 f32)))
  (type $leaf (func (param f32 i32 f64) (result f64)))
  (table $t (export "t") 4 funcref)
  (func $leafa (type $leaf) (f64.add (f64.promote_f32 (local.get 0))
                                     (f64.add (f64.convert_i32_s (local.get 1)) (local.get 2))))
  (func $leafb (type $leaf) (f64.mul (local.get 2) (f64.const 2)))
  (elem (i32.const 0) func $rec $leafa $leafb)
  (func $rec (export "rec") (type $r)
    (local $acc i64) (local $i i32)
    ;; a loop with fuel checks while every param is live
    (loop $l
      (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 20))))
    (if (result i64 f64 i32 f32) (i32.eqz (local.get 13))
      (then
        (i64.add (i64.add (local.get 3) (local.get 7)) (i64.add (local.get 11) (local.get $acc)))
        (f64.add (f64.add (local.get 0) (local.get 4)) (local.get 8))
        (i32.add (i32.add (local.get 1) (local.get 5))
                 (i32.add (local.get 9) (i32.wrap_i64 (i64.extend_i32_u (ref.is_null (local.get 12))))))
        (f32.add (f32.add (local.get 2) (local.get 6)) (local.get 10)))
      (else
        (call_indirect $t (type $r)
          (f64.add (local.get 0) (f64.const 1))
          (i32.add (local.get 1) (i32.const 2))
          (f32.add (local.get 2) (f32.const 3))
          (i64.add (local.get 3) (i64.const 4))
          (f64.add (local.get 4) (f64.const 5))
          (i32.add (local.get 5) (i32.const 6))
          (f32.add (local.get 6) (f32.const 7))
          (i64.add (local.get 7) (i64.const 8))
          (f64.add (local.get 8) (f64.const 9))
          (i32.add (local.get 9) (i32.const 10))
          (f32.add (local.get 10) (f32.const 11))
          (i64.add (local.get 11) (i64.const 12))
          (local.get 12)
          (i32.sub (local.get 13) (i32.const 1))
          (i32.const 0)))))
  (func (export "viaref") (param f32 funcref i32 f64) (result f64)
    (table.set $t (i32.const 3) (local.get 1))
    (call_indirect $t (type $leaf) (local.get 0) (local.get 2) (local.get 3) (i32.const 3)))
  (func (export "pick") (param i32) (result funcref) (table.get $t (local.get 0))))"#;

const REC_USER: &str = r#"(module
  (type $r (func (param f64 i32 f32 i64 f64 i32 f32 i64 f64 i32 f32 i64 externref i32)
                 (result i64 f64 i32 f32)))
  (import "p" "rec" (func $rec (type $r)))
  (import "p" "viaref" (func $viaref (param f32 funcref i32 f64) (result f64)))
  (import "p" "pick" (func $pick (param i32) (result funcref)))
  (func (export "go") (param i32 externref) (result i64 f64 i32 f32)
    (call $rec (f64.const 0.5) (i32.const 1) (f32.const 0.25) (i64.const 100)
               (f64.const 1.5) (i32.const 2) (f32.const 0.5) (i64.const 200)
               (f64.const 2.5) (i32.const 3) (f32.const 0.75) (i64.const 300)
               (local.get 1) (local.get 0)))
  (func (export "ref") (param i32) (result f64)
    (call $viaref (f32.const 1.5) (call $pick (local.get 0)) (i32.const 40) (f64.const 0.25))))"#;

fn rec_expect(n: i32, null: bool) -> Vec<Val> {
    let n64 = n as i64;
    let nf = n as f64;
    let acc = 190i64; // 0 + 1 + ... + 19 at the leaf
    Vec::from([
        Val::I64(100 + 200 + 300 + n64 * (4 + 8 + 12) + acc),
        Val::F64(0.5 + 1.5 + 2.5 + nf * (1.0 + 5.0 + 9.0)),
        Val::I32(1 + 2 + 3 + n * (2 + 6 + 10) + null as i32),
        Val::F32(0.25 + 0.5 + 0.75 + n as f32 * (3.0 + 7.0 + 11.0)),
    ])
}

#[test]
fn recursion_with_mixed_params_in_tiny_fuel_slices_and_across_instances() {
    let pm = compile_wat(REC, &CompileConfig::default());
    let um = compile_wat(REC_USER, &CompileConfig::default());
    let region = region_with(4, 64 * 1024);
    let p = Instance::instantiate(&region, &pm).expect("p");
    let mut l = Linker::new();
    l.instance("p", &p);
    let mut u = l.instantiate(&region, &um, None).expect("u");
    for (n, ext) in [(0, 0u64), (1, 7), (5, 0), (40, 9)] {
        for units in [1u64, 3, 7, 1000] {
            u.call("go", &[Val::I32(n), Val::ExternRef(ext)]).unwrap();
            let out = loop {
                match u.resume_fuel(units) {
                    Outcome::Yielded => continue,
                    o => break o,
                }
            };
            assert_eq!(
                out,
                Outcome::Finished(rec_expect(n, ext == 0)),
                "n {n} ext {ext} units {units}"
            );
        }
    }
    // Deep recursion of the provider's code on the user's stack (through
    // its table, 14 mixed params) ends in a stack overflow, not a fault.
    assert_eq!(
        call(&mut u, "go", &[Val::I32(1_000_000), Val::ExternRef(0)]),
        Outcome::Trapped(myriad_runtime::TrapKind::StackOverflow)
    );
    assert_eq!(
        call(&mut u, "go", &[Val::I32(3), Val::ExternRef(0)]),
        Outcome::Finished(rec_expect(3, true))
    );
    // A funcref param in the middle of floats and ints, called.
    assert_eq!(
        call(&mut u, "ref", &[Val::I32(1)]),
        Outcome::Finished(vec![Val::F64(1.5 + 40.0 + 0.25)])
    );
    assert_eq!(
        call(&mut u, "ref", &[Val::I32(2)]),
        Outcome::Finished(vec![Val::F64(0.5)])
    );
}
