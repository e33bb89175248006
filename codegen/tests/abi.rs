//! The ABI contract: fuel, globals, trap tables, symbols, metadata, errors
//! and the CLIF shape of fuel and bounds checks.

mod common;

use common::{build, metadata, Instance};
use myriad_codegen::abi::{self, GlobalDecl, TrapKind, ValType};
use myriad_codegen::{compile, host_fingerprint, translate_to_clif, CompileConfig, CompileError};

const SPIN: &str = r#"(module
  (func $spin (export "spin") (param i32) (result i32) (local i32)
    (loop $l
      (local.set 1 (i32.add (local.get 1) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get 1) (local.get 0))))
    (local.get 1))
  (func $leaf (result i32) (i32.const 1))
  (func (export "caller") (result i32) (call $leaf)))"#;

#[test]
fn fuel_is_counted_spilled_and_refilled() {
    let mut inst = Instance::new(SPIN);
    // Entry and each loop iteration cost one unit; nothing runs out.
    inst.set_fuel(1000, 1000);
    assert_eq!(inst.i32("spin", &[100]), 100);
    assert_eq!(inst.fuel(), 1000 - 101, "fuel spilled at return");
    assert_eq!(inst.fuel_calls(), 0);

    // Across a call: the callee sees the caller's spilled fuel and the
    // caller reloads what the callee left.
    inst.set_fuel(50, 50);
    assert_eq!(inst.i32("caller", &[]), 1);
    assert_eq!(inst.fuel(), 48);

    // Running out calls fuel_exhausted, which refills.
    let (start, refill, n) = (10i64, 10i64, 1000);
    inst.set_fuel(start, refill);
    assert_eq!(inst.i32("spin", &[n]), n);
    // The entry check charges one unit and calls out below zero. The loop
    // is unrolled into rounds of 4 copies of its body (see `Unroll` in
    // codegen/src/translate/control.rs): the first copy's header charges
    // one unit and calls out unless 3 more fit, the round's other copies
    // are charged as it ends.
    let (mut fuel, mut calls) = (start, 0);
    fuel -= 1;
    if fuel < 0 {
        calls += 1;
        fuel = refill;
    }
    let mut left = n;
    while left > 0 {
        fuel -= 1;
        if fuel < 3 {
            calls += 1;
            fuel = refill;
        }
        let copies = left.min(4);
        left -= copies;
        fuel -= i64::from(copies) - 1;
    }
    assert!(inst.fuel_calls() > 0);
    assert_eq!(inst.fuel_calls(), calls);
    assert_eq!(inst.fuel(), fuel);
}

#[test]
fn wrappers_give_their_caller_its_r15_back() {
    // The fuel counter lives in r15 in compiled code (ABI 14); r15 is
    // callee-saved for the wrapper's caller. Through loops, calls and
    // the fuel slow path, the caller's value comes back.
    let mut inst = Instance::new(SPIN);
    let sentinel = 0x5eed_0f15_dead_beef;
    inst.set_fuel(7, 5);
    let (results, r15) = inst.call_with_r15("spin", &[200], sentinel);
    assert_eq!(results, vec![200]);
    assert_eq!(r15, sentinel);
    assert!(inst.fuel_calls() > 0, "the slow path ran");
    inst.set_fuel(1000, 1000);
    let (results, r15) = inst.call_with_r15("caller", &[], !sentinel);
    assert_eq!(results, vec![1]);
    assert_eq!(r15, !sentinel);
    assert_eq!(inst.fuel(), 998, "the fuel came back through exec");
}

/// Where `needle` occurs in `hay`.
fn occurrences(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// `add $-1,%r15`: Cranelift never emits it (the pinned register is only
/// copied), so each occurrence is a fuel check rewritten by
/// `fuel_rewrite` (see codegen/src/fuel_rewrite.rs).
const ADD_R15_MINUS_1: [u8; 7] = [0x49, 0x81, 0xC7, 0xFF, 0xFF, 0xFF, 0xFF];

#[test]
fn fuel_checks_at_loop_headers_are_one_add_on_r15() {
    // The unrolled loop's header check: `add $-1,%r15; cmp $3,%r15`
    // (the only `cmp` on r15 in the artifact).
    let so = build(SPIN, &CompileConfig::default());
    let cmp = [&ADD_R15_MINUS_1[..], &[0x49, 0x83, 0xFF, 0x03]].concat();
    assert_eq!(occurrences(&so, &cmp), 1, "SPIN's loop header");
    // (`spin`'s entry check starts a block too, after the stack check, and
    // is rewritten as well: counted below, not asserted exactly.)

    // A loop too long to unroll (30 `nop`s count as operators but compile
    // to nothing): `add $-1,%r15; js slow` at its header.
    let long = SPIN.replace("(loop $l", &format!("(loop $l {}", "(nop) ".repeat(30)));
    let so = build(&long, &CompileConfig::default());
    let js = [&ADD_R15_MINUS_1[..], &[0x0F, 0x88]].concat();
    assert!(occurrences(&so, &js) >= 1, "the long loop's header");

    // It charges and calls out as the check it replaces: one unit at the
    // entry and one per iteration, the slow path below zero.
    let mut inst = Instance::load(&so);
    let (start, refill, n) = (10i64, 7i64, 1000);
    inst.set_fuel(start, refill);
    assert_eq!(inst.i32("spin", &[n]), n);
    let (mut fuel, mut calls) = (start, 0);
    for _ in 0..=n {
        fuel -= 1;
        if fuel < 0 {
            calls += 1;
            fuel = refill;
        }
    }
    assert_eq!(inst.fuel_calls(), calls);
    assert_eq!(inst.fuel(), fuel);
}

#[test]
fn guest_constants_that_spell_a_fuel_check_are_left_alone() {
    // Two i64 constants whose bytes, side by side in the constant pool,
    // spell `mov %r15,%rax; add $-1,%rax; mov %rax,%r15; test; jl`.
    let a: u64 = 0xFFFF_C081_48F8_894C;
    let b: u64 = 0x8C0F_C085_48C7_8949;
    let wat = format!(
        r#"(module
          (func (export "consts") (param i32) (result i64) (local i32 i64)
            (loop $l
              (local.set 2 (i64.add (local.get 2)
                (select (i64.const {a}) (i64.const {b})
                        (i32.and (local.get 1) (i32.const 1)))))
              (local.set 2 (i64.xor (local.get 2) (i64.const 0xFFFFFFFF)))
              (local.set 1 (i32.add (local.get 1) (i32.const 1)))
              (br_if $l (i32.lt_u (local.get 1) (local.get 0))))
            (local.get 2)))"#,
        a = a as i64,
        b = b as i64
    );
    for config in [CompileConfig::default(), CompileConfig::sparse()] {
        let so = build(&wat, &config);
        assert!(
            occurrences(&so, &a.to_le_bytes()) >= 1,
            "the constant is in the code"
        );
        let mut inst = Instance::load(&so);
        inst.set_fuel(1000, 1000);
        let mut h: u64 = 0;
        for i in 0..100u32 {
            h = h.wrapping_add(if i & 1 != 0 { a } else { b }) ^ 0xFFFF_FFFF;
        }
        assert_eq!(inst.call("consts", &[100]), vec![h]);
    }
}

#[test]
fn globals_live_in_vmctx_cells() {
    let mut inst = Instance::new(
        r#"(module
          (global $a (mut i32) (i32.const -5))
          (global $b (mut i64) (i64.const 0x100000000))
          (global $c i32 (i32.const 7))
          (global $d f64 (f64.const 2.5))
          (global $e (mut i32) (i32.add (i32.const 40) (i32.const 2)))
          (func (export "bump") (result i32)
            (global.set $a (i32.add (global.get $a) (global.get $c)))
            (global.set $b (i64.add (global.get $b) (i64.const 1)))
            (global.get $a))
          (func (export "d") (result f64) (global.get $d))
          (func (export "e") (result i32) (global.get $e)))"#,
    );
    let globals: Vec<(ValType, bool, Option<u64>)> = inst
        .meta
        .globals
        .iter()
        .map(|g: &GlobalDecl| (g.ty, g.mutable, g.init.as_plain()))
        .collect();
    assert_eq!(
        globals,
        vec![
            (ValType::I32, true, Some(0xffff_fffb)),
            (ValType::I64, true, Some(0x1_0000_0000)),
            (ValType::I32, false, Some(7)),
            (ValType::F64, false, Some(2.5f64.to_bits())),
            (ValType::I32, true, Some(42)),
        ]
    );
    assert_eq!(inst.i32("bump", &[]), 2);
    assert_eq!(inst.i32("bump", &[]), 9);
    assert_eq!(inst.global(0) as u32, 9);
    assert_eq!(inst.global(1), 0x1_0000_0002);
    assert_eq!(inst.call("d", &[])[0], 2.5f64.to_bits());
    assert_eq!(inst.i32("e", &[]), 42);
    // The runtime may change a mutable global between calls.
    inst.set_u64(abi::vmctx::GLOBALS as usize + 8 * 4, 1234);
    assert_eq!(inst.i32("e", &[]), 1234);
}

#[test]
fn trap_sites_are_recorded() {
    let so = build(
        r#"(module
          (func $div (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
          (func $rem (param i64 i64) (result i64) (i64.rem_u (local.get 0) (local.get 1)))
          (func $unreachable unreachable)
          (func $deep (param i32) (result i32) (call $deep (local.get 0)))
          (func $conv (param f32) (result i32) (i32.trunc_f32_s (local.get 0))))"#,
        &CompileConfig::default(),
    );
    let meta = metadata(&so);
    let has = |f: u32, k: TrapKind| meta.traps.iter().any(|t| t.func_index == f && t.kind == k);
    assert!(has(0, TrapKind::IntegerDivisionByZero));
    assert!(has(0, TrapKind::IntegerOverflow));
    assert!(has(1, TrapKind::IntegerDivisionByZero));
    assert!(has(2, TrapKind::Unreachable));
    assert!(has(3, TrapKind::StackOverflow));
    assert!(has(4, TrapKind::BadConversionToInteger));
    assert!(has(4, TrapKind::IntegerOverflow));
    let keys: Vec<_> = meta
        .traps
        .iter()
        .map(|t| (t.func_index, t.offset))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "trap table is sorted");
    // Non-trapping division edges still work.
    let mut inst = Instance::load(&so);
    assert_eq!(inst.i32("div", &[i32::MIN, 1]), i32::MIN);
    assert_eq!(inst.i32("div", &[-7, 2]), -3);
}

#[test]
fn artifact_symbols_metadata_and_hash() {
    let wat = r#"(module
          (memory (export "memory") 2 5)
          (func $init)
          (func $f (export "f") (export "g") (param i32 i64) (result i64) (local.get 1))
          (start $init))"#;
    let so = build(wat, &CompileConfig::default());
    let meta = metadata(&so);
    assert_eq!(meta.abi_version, abi::ABI_VERSION);
    assert_eq!(meta.fingerprint, host_fingerprint());
    // The metadata records the key of exactly these bytes and settings.
    let wasm = wat::parse_str(wat).unwrap();
    assert_eq!(
        meta.source_key,
        myriad_codegen::source_key(&wasm, &CompileConfig::default())
    );
    assert_ne!(
        meta.source_key,
        myriad_codegen::source_key(&wasm, &CompileConfig::guarded(4096))
    );
    assert_eq!(meta.start, Some(0));
    assert!(
        so.windows(16).any(|w| w == b"myriad_export_0\0"),
        "start wrapper"
    );
    assert_eq!(meta.func_types.len(), 2);
    assert_eq!(meta.exports.len(), 3);
    assert!(meta
        .exports
        .iter()
        .filter(|e| e.kind == abi::ExportKind::Func)
        .all(|e| e.index == 1));
    let ty = &meta.types[meta.func_types[1] as usize];
    assert_eq!(ty.params, vec![ValType::I32, ValType::I64]);
    assert_eq!(ty.results, vec![ValType::I64]);

    let at = abi::find_marker(&so, &abi::HASH_MARKER).expect("one hash marker");
    let cell = at + abi::HASH_MARKER.len();
    let stored: [u8; abi::HASH_LEN] = so[cell..cell + abi::HASH_LEN].try_into().unwrap();
    assert_ne!(stored, [0; abi::HASH_LEN]);
    assert_eq!(stored, abi::artifact_hash(&so, at));

    let mut inst = Instance::load(&so);
    assert_eq!(inst.call("g", &[1, 1 << 40]), vec![1 << 40]);
}

#[test]
fn compilation_is_deterministic() {
    let a = build(SPIN, &CompileConfig::default());
    let b = build(SPIN, &CompileConfig::default());
    assert_eq!(a, b);
}

#[test]
fn data_containing_a_marker_is_refused() {
    let marker: String = abi::HASH_MARKER
        .iter()
        .map(|b| format!("\\{b:02x}"))
        .collect();
    let wat = format!(r#"(module (memory 1) (data (i32.const 0) "{marker}"))"#);
    let wasm = wat::parse_str(&wat).unwrap();
    let err = compile(&wasm, &CompileConfig::default()).unwrap_err();
    assert!(matches!(err, CompileError::Link(_)), "{err}");
}

fn compile_wat(wat: &str) -> Result<Vec<u8>, CompileError> {
    compile(&wat::parse_str(wat).unwrap(), &CompileConfig::default())
}

#[test]
fn unsupported_features_are_named() {
    let cases = [
        (
            r#"(module (import "env" "m" (memory 1)) (memory 1))"#,
            "unsupported: multiple memories",
        ),
        (r#"(module (table i64 1 funcref))"#, "unsupported: table64"),
        (r#"(module (memory i64 1))"#, "unsupported: memory64"),
        (
            r#"(module (memory 1) (memory 1))"#,
            "unsupported: multiple memories",
        ),
        (
            r#"(module (memory 1 1 shared))"#,
            "unsupported: shared memory",
        ),
        (
            r#"(module (func (result v128) (v128.const i64x2 0 0)))"#,
            "unsupported: v128",
        ),
        (
            r#"(module (func (v128.const i64x2 0 0) (drop)))"#,
            "unsupported: v128.const",
        ),
        (
            r#"(module (func (param anyref)))"#,
            "unsupported: GC reference types",
        ),
        (
            r#"(module (func (return_call 0)))"#,
            "unsupported: return_call",
        ),
    ];
    for (wat, want) in cases {
        match compile_wat(wat) {
            Err(e @ CompileError::Unsupported(_)) => assert_eq!(e.to_string(), want, "{wat}"),
            other => panic!("{wat}: expected {want}, got {other:?}"),
        }
    }
}

#[test]
fn exception_instructions_are_refused() {
    let cases = [
        (
            r#"(module (tag $e) (func (throw $e)))"#,
            "unsupported: throw",
        ),
        (
            r#"(module (tag $e (param i32)) (func (param i32) (throw $e (local.get 0))))"#,
            "unsupported: throw",
        ),
        (
            r#"(module (func unreachable throw_ref))"#,
            "unsupported: throw_ref",
        ),
        (
            r#"(module (func (block $h (try_table (catch_all $h) nop))))"#,
            "unsupported: try_table",
        ),
        (
            r#"(module (tag $e) (func (block $h (try_table (catch $e $h)))))"#,
            "unsupported: try_table",
        ),
        // Dead code is no escape: the block structure would be miscounted.
        (
            r#"(module (func unreachable (block $h (try_table (catch_all $h)))))"#,
            "unsupported: try_table",
        ),
        (
            r#"(module (tag $e) (func return (throw $e)))"#,
            "unsupported: throw",
        ),
    ];
    for (wat, want) in cases {
        match compile_wat(wat) {
            Err(e @ CompileError::Unsupported(_)) => assert_eq!(e.to_string(), want, "{wat}"),
            other => panic!("{wat}: expected {want}, got {other:?}"),
        }
    }
    // Legacy exception handling (`try`/`catch`/`rethrow`/`delegate`) is not
    // a validator feature Myriad enables: refused as invalid before the
    // translator (which would refuse it as unsupported) sees it.
    for wat in [
        r#"(module (tag $e) (func try nop catch $e end))"#,
        r#"(module (func try nop catch_all end))"#,
        r#"(module (func try $l nop catch_all rethrow $l end))"#,
        r#"(module (func block try nop delegate 0 end))"#,
    ] {
        match compile_wat(wat) {
            Err(CompileError::Invalid(e)) => {
                assert!(
                    e.contains("legacy_exceptions feature required"),
                    "{wat}: {e}"
                )
            }
            other => panic!("{wat}: expected a refusal, got {other:?}"),
        }
    }
}

#[test]
fn tags_are_recorded() {
    let so = compile_wat(
        r#"(module
             (type $t (func (param i32 f64)))
             (import "env" "f" (func))
             (import "env" "e" (tag $e (param i64)))
             (tag $d (type $t))
             (tag $z)
             (export "e" (tag $e))
             (export "d" (tag $d))
             (export "z" (tag $z)))"#,
    )
    .expect("tags are accepted");
    let meta = metadata(&so);
    let e_ty = match meta.imports[1].kind {
        abi::ImportKind::Tag(t) => t,
        ref other => panic!("expected a tag import, got {other:?}"),
    };
    assert_eq!(meta.types[e_ty as usize].params, vec![ValType::I64]);
    assert_eq!(meta.num_imported_tags(), 1);
    assert_eq!(meta.tags.len(), 2);
    assert_eq!(
        meta.tag_type(1).map(|t| t.params.clone()),
        Some(vec![ValType::I32, ValType::F64])
    );
    assert_eq!(meta.tag_type(2).map(|t| t.params.is_empty()), Some(true));
    let tags: Vec<(String, u32)> = meta
        .exports
        .iter()
        .filter(|e| e.kind == abi::ExportKind::Tag)
        .map(|e| (e.name.clone(), e.index))
        .collect();
    assert_eq!(
        tags,
        vec![("e".into(), 0), ("d".into(), 1), ("z".into(), 2)]
    );
}

#[test]
fn tables_and_elements_are_recorded() {
    let so = compile_wat(
        r#"(module
             (global $o i32 (i32.const 1))
             (table $t 3 8 funcref)
             (table $x 1 externref)
             (func $f) (func $g (result i32) i32.const 0 call_indirect $t (type 0) i32.const 1)
             (elem (table $t) (global.get $o) func $g $f)
             (elem $p funcref (ref.func $f) (ref.null func))
             (elem declare func $g))"#,
    )
    .expect("compiles");
    let meta = metadata(&so);
    assert_eq!(
        meta.tables,
        vec![
            abi::TableDecl {
                ty: ValType::FuncRef,
                min: 3,
                max: Some(8),
                init: abi::ConstExpr::null()
            },
            abi::TableDecl {
                ty: ValType::ExternRef,
                min: 1,
                max: None,
                init: abi::ConstExpr::null()
            },
        ]
    );
    assert_eq!(
        meta.elems,
        vec![
            abi::ElemSegment {
                mode: abi::ElemMode::Active {
                    table: 0,
                    offset: abi::ConstExpr(vec![abi::ConstOp::GlobalGet(0)])
                },
                items: vec![abi::ElemItem::Func(1), abi::ElemItem::Func(0)],
            },
            abi::ElemSegment {
                mode: abi::ElemMode::Passive,
                items: vec![abi::ElemItem::Func(0), abi::ElemItem::Null],
            },
            abi::ElemSegment {
                mode: abi::ElemMode::Declared,
                items: vec![abi::ElemItem::Func(1)],
            },
        ]
    );
    assert!(meta.func_refs);
    assert!(meta
        .traps
        .iter()
        .any(|t| t.kind == abi::TrapKind::IndirectCallTypeMismatch));
}

#[test]
fn invalid_modules_are_refused() {
    for bytes in [&b"not wasm"[..], b"\0asm\x01\0\0\0\x01", b""] {
        match compile(bytes, &CompileConfig::default()) {
            Err(e @ CompileError::Invalid(_)) => {
                let msg = e.to_string();
                assert!(
                    msg.starts_with("invalid module: ") && msg.contains(" at offset "),
                    "{msg}"
                );
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
    // Well formed but ill typed.
    let err = compile_wat(r#"(module (func (result i32) (i64.const 0)))"#).unwrap_err();
    assert!(matches!(err, CompileError::Invalid(_)), "{err}");
}

#[test]
fn clif_has_fuel_checks_and_bounds_checks() {
    let wasm = wat::parse_str(
        r#"(module (memory 1)
          (func (param i32) (result i32) (loop $l (br_if $l (local.get 0))) (i32.load (local.get 0))))"#,
    )
    .unwrap();
    let clif = translate_to_clif(&wasm, &CompileConfig::default()).unwrap();
    assert_eq!(clif.len(), 1);
    let f = &clif[0];
    let fuel_exhausted = format!("v0+{}", abi::vmctx::FN_FUEL_EXHAUSTED);
    // One fuel check at entry and one in the loop (once per round of its
    // unrolled copies): two slow paths (the exits from the copies are
    // cold too).
    assert!(f.matches(" cold:").count() >= 2, "{f}");
    assert_eq!(f.matches("call_indirect").count(), 2, "{f}");
    assert_eq!(f.matches(&fuel_exhausted).count(), 2, "{f}");
    assert!(f.contains("stack_limit = gv"), "{f}");
    // The bounds check: index > heap_len - 4 (signed) traps as
    // HeapOutOfBounds; the length is loaded at entry and after calls.
    let heap_len = format!("v0+{}", abi::vmctx::HEAP_LEN);
    assert!(f.contains(&heap_len), "{f}");
    assert!(f.contains("v28 = -4") || f.contains("= -4"), "{f}");
    assert!(f.contains("icmp sgt"), "{f}");
    let trap = format!("trapnz v{{}}, user{}", TrapKind::HeapOutOfBounds as u8);
    assert!(
        f.lines().any(|l| l.contains("trapnz")
            && l.ends_with(&format!("user{}", TrapKind::HeapOutOfBounds as u8))),
        "{trap}: {f}"
    );

    // Guard mode: the check compares the bare index.
    let guarded = translate_to_clif(&wasm, &CompileConfig::guarded(4096)).unwrap();
    assert!(!guarded[0].contains("iconst.i64 4\n"), "{}", guarded[0]);
    assert!(guarded[0].contains("icmp ugt"), "{}", guarded[0]);

    // Sparse mode: no check at all for a small offset.
    let sparse = translate_to_clif(&wasm, &CompileConfig::sparse()).unwrap();
    assert!(!sparse[0].contains("trapnz"), "{}", sparse[0]);
    assert!(!sparse[0].contains("icmp ugt"), "{}", sparse[0]);
}

#[test]
fn sparse_mode_checks_offsets_past_its_guard() {
    let far = myriad_codegen::SPARSE_GUARD + 1;
    let wasm = wat::parse_str(format!(
        r#"(module (memory 1)
          (func (param i32) (result i32) (i32.load offset={far} (local.get 0))))"#
    ))
    .unwrap();
    let sparse = translate_to_clif(&wasm, &CompileConfig::sparse()).unwrap();
    assert!(sparse[0].contains("trapnz"), "{}", sparse[0]);
}

#[test]
fn modules_that_cannot_use_guards_are_compiled_dense() {
    let cases = [
        // No memory at all.
        "(module (func (export \"f\") (result i32) (i32.const 1)))",
        // An imported memory: its guard would be another slot's.
        r#"(module (import "env" "m" (memory 1))
             (func (export "f") (param i32) (result i32) (i32.load (local.get 0))))"#,
        // One-byte pages: the heap end is not page aligned.
        r#"(module (memory 1 (pagesize 1))
             (func (export "f") (param i32) (result i32) (i32.load (local.get 0))))"#,
    ];
    for wat in cases {
        let wasm = wat::parse_str(wat).unwrap();
        for config in [CompileConfig::sparse(), CompileConfig::guarded(65536)] {
            let so = compile(&wasm, &config).unwrap();
            let meta = metadata(&so);
            assert_eq!(meta.guard_bytes, 0, "{wat}");
            assert_eq!(meta.heap_reservation, 0, "{wat}");
            assert_eq!(meta.requested_guard_bytes, config.guard_bytes, "{wat}");
            assert_eq!(
                meta.requested_heap_reservation, config.heap_reservation,
                "{wat}"
            );
        }
    }
    // A module with its own paged memory keeps the requested settings.
    let wasm = wat::parse_str("(module (memory 1))").unwrap();
    let so = compile(&wasm, &CompileConfig::sparse()).unwrap();
    let meta = metadata(&so);
    assert_eq!(meta.guard_bytes, myriad_codegen::SPARSE_GUARD);
    assert_eq!(meta.heap_reservation, myriad_codegen::SPARSE_RESERVATION);
}

#[test]
fn functions_that_never_read_the_heap_length_do_not_load_it() {
    let wasm = wat::parse_str(
        r#"(module (memory 1)
          (func $rec (param i32) (result i32) (call $rec (i32.add (local.get 0) (i32.const 1))))
          (func (param i32) (result i32) (i32.load (local.get 0)))
          (func (result i32) (memory.size)))"#,
    )
    .unwrap();
    let heap_len = format!("v0+{}", abi::vmctx::HEAP_LEN);
    let dense = translate_to_clif(&wasm, &CompileConfig::dense()).unwrap();
    // The recursion neither loads the length at entry nor after its call.
    assert!(!dense[0].contains(&heap_len), "{}", dense[0]);
    // A checked access and memory.size read it.
    assert!(dense[1].contains(&heap_len), "{}", dense[1]);
    assert!(dense[2].contains(&heap_len), "{}", dense[2]);
    // In sparse mode the small-offset access needs no length either.
    let sparse = translate_to_clif(&wasm, &CompileConfig::sparse()).unwrap();
    assert!(!sparse[1].contains(&heap_len), "{}", sparse[1]);
    assert!(sparse[2].contains(&heap_len), "{}", sparse[2]);
}
