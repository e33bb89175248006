//! Parallel compilation: functions are compiled on several threads, the
//! largest first, but the artifact and the error returned do not depend
//! on the threads' timing.

use myriad_codegen::{compile, CompileConfig, CompileError};

/// A module of `n` functions (enough to take the parallel path); function
/// `i` gets `body(i)` as its body, or a loop of `weight(i)` additions.
fn module(n: usize, body: impl Fn(usize) -> Option<String>) -> Vec<u8> {
    let mut wat = String::from("(module (tag $e)\n");
    for i in 0..n {
        let body = body(i).unwrap_or_else(|| {
            // Bodies of different sizes, so that the largest-first order
            // differs from index order.
            let adds = "(local.set 0 (i32.add (local.get 0) (i32.const 3)))".repeat(1 + i % 7);
            format!("(loop $l {adds} (br_if $l (local.get 0))) (local.get 0)")
        });
        wat.push_str(&format!(
            "(func (export \"f{i}\") (param i32) (result i32) {body})\n"
        ));
    }
    wat.push(')');
    wat::parse_str(&wat).expect("valid wat")
}

#[test]
fn artifacts_are_identical_whatever_the_order() {
    let wasm = module(64, |_| None);
    let a = compile(&wasm, &CompileConfig::default()).expect("compiles");
    for _ in 0..3 {
        let b = compile(&wasm, &CompileConfig::default()).expect("compiles");
        assert!(a == b, "two compilations of one module differ");
    }
}

#[test]
fn the_first_error_in_index_order_is_returned() {
    // Function 40 fails and is by far the largest, so it is compiled
    // first; function 5 fails too, later, and its error is the one
    // returned.
    let big = "(local.set 0 (i32.add (local.get 0) (i32.const 1)))".repeat(400);
    let wasm = module(64, |i| match i {
        5 => Some("(throw $e) (local.get 0)".into()),
        40 => Some(format!(
            "{big} (block $h (try_table (catch_all $h) nop)) (local.get 0)"
        )),
        _ => None,
    });
    for _ in 0..5 {
        match compile(&wasm, &CompileConfig::default()) {
            Err(e @ CompileError::Unsupported(_)) => {
                assert_eq!(e.to_string(), "unsupported: throw")
            }
            other => panic!("expected the error of function 5, got {other:?}"),
        }
    }
}

#[test]
fn an_invalid_body_is_reported_as_the_validator_reports_it() {
    // Bodies are validated on the compiling threads. Function 50 is
    // invalid and the largest (compiled first), function 20 is invalid
    // too, and function 5 uses an instruction the compiler refuses: the
    // error is still the validator's first, function 20's, as when the
    // whole module was validated before anything else.
    let big = "(local.set 0 (i32.add (local.get 0) (i32.const 1)))".repeat(400);
    let wasm = module(64, |i| match i {
        5 => Some("(throw $e) (local.get 0)".into()),
        20 => Some("(i64.add (local.get 0) (i64.const 1))".into()),
        50 => Some(format!("{big} (f32.neg (local.get 0))")),
        _ => None,
    });
    let Err(expected) = wasmparser::Validator::new().validate_all(&wasm) else {
        panic!("the module is invalid");
    };
    for _ in 0..5 {
        match compile(&wasm, &CompileConfig::default()) {
            Err(e @ CompileError::Invalid(_)) => {
                let text = e.to_string();
                assert!(text.contains(expected.message()), "{text} / {expected}");
                assert!(
                    text.contains(&format!("{:#x}", expected.offset()))
                        || text.contains(&expected.offset().to_string()),
                    "{text} / {expected}"
                );
            }
            other => panic!("expected the validator's error, got {other:?}"),
        }
    }
}

#[test]
fn a_valid_module_compiles_with_bodies_validated_in_parallel() {
    // A body that is valid only because of a type defined in the module
    // (a multi-value block type): the per-body validators see the module.
    let wasm = module(40, |i| {
        (i % 3 == 0)
            .then(|| "(block (result i32 i32) (local.get 0) (i32.const 1)) (i32.add)".to_string())
    });
    compile(&wasm, &CompileConfig::default()).expect("compiles");
}
