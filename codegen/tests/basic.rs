//! End-to-end smoke tests: compile, load, call.

mod common;

use common::Instance;

#[test]
fn returns_a_constant() {
    let mut inst = Instance::new(r#"(module (func (export "run") (result i32) i32.const 42))"#);
    assert_eq!(inst.i32("run", &[]), 42);
}
