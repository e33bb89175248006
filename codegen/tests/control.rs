//! Control flow: blocks, loops, ifs, branch tables, multi-value, calls.

mod common;

use common::Instance;

#[test]
fn nested_blocks_and_br_table() {
    let mut inst = Instance::new(
        r#"(module
          (func (export "classify") (param i32) (result i32)
            (block $d
              (block $c
                (block $b
                  (block $a
                    (br_table $a $b $c $d (local.get 0)))
                  (return (i32.const 100)))
                (return (i32.const 101)))
              (return (i32.const 102)))
            (i32.const 103))
          (func (export "table_values") (param i32) (result i32)
            (block $out (result i32)
              (block $two (result i32)
                (block $one (result i32)
                  (i32.const 7)
                  (local.get 0)
                  (br_table $one $two $out))
                (i32.const 10)
                (i32.add))
              (i32.const 20)
              (i32.add)))
          (func (export "br_if_value") (param i32) (result i32)
            (block (result i32)
              (i32.const 5)
              (local.get 0)
              (br_if 0)
              (drop)
              (i32.const 6))))"#,
    );
    for (i, want) in [(0, 100), (1, 101), (2, 102), (3, 103), (4, 103), (-1, 103)] {
        assert_eq!(inst.i32("classify", &[i]), want, "classify({i})");
    }
    // 0 -> one: 7+10+20; 1 -> two: 7+20; 2, default -> out: 7.
    for (i, want) in [(0, 37), (1, 27), (2, 7), (99, 7)] {
        assert_eq!(inst.i32("table_values", &[i]), want, "table_values({i})");
    }
    assert_eq!(inst.i32("br_if_value", &[1]), 5);
    assert_eq!(inst.i32("br_if_value", &[0]), 6);
}

#[test]
fn loops_if_else_and_select() {
    let mut inst = Instance::new(
        r#"(module
          (func (export "sum_to") (param $n i32) (result i32) (local $acc i32)
            (block $done
              (loop $top
                (br_if $done (i32.eqz (local.get $n)))
                (local.set $acc (i32.add (local.get $acc) (local.get $n)))
                (local.set $n (i32.sub (local.get $n) (i32.const 1)))
                (br $top)))
            (local.get $acc))
          (func (export "abs") (param i32) (result i32)
            (if (result i32) (i32.lt_s (local.get 0) (i32.const 0))
              (then (i32.sub (i32.const 0) (local.get 0)))
              (else (local.get 0))))
          (func (export "if_no_else") (param i32) (result i32) (local i32)
            (local.set 1 (i32.const 1))
            (if (local.get 0) (then (local.set 1 (i32.const 2))))
            (local.get 1))
          (func (export "max") (param i64 i64) (result i64)
            (select (local.get 0) (local.get 1) (i64.gt_s (local.get 0) (local.get 1))))
          (func (export "dead_code") (param i32) (result i32)
            (block (result i32)
              (if (local.get 0) (then (br 1 (i32.const 9))))
              (return (i32.const 4))
              (i32.const 1) (i32.add) (drop) (loop (br 0)) (unreachable))))"#,
    );
    assert_eq!(inst.i32("sum_to", &[100]), 5050);
    assert_eq!(inst.i32("sum_to", &[0]), 0);
    assert_eq!(inst.i32("abs", &[-5]), 5);
    assert_eq!(inst.i32("abs", &[5]), 5);
    assert_eq!(inst.i32("if_no_else", &[0]), 1);
    assert_eq!(inst.i32("if_no_else", &[3]), 2);
    assert_eq!(inst.i64("max", &[-3, 2]), 2);
    assert_eq!(inst.i64("max", &[i64::MAX, 2]), i64::MAX);
    assert_eq!(inst.i32("dead_code", &[1]), 9);
    assert_eq!(inst.i32("dead_code", &[0]), 4);
}

#[test]
fn multi_value_blocks_and_functions() {
    let mut inst = Instance::new(
        r#"(module
          (type $pair (func (param i32 i32) (result i32 i32)))
          (func $swap (type $pair) (local.get 1) (local.get 0))
          (func $many (result i32 i64 i32 i64 i32)
            (i32.const 1) (i64.const 2) (i32.const 3) (i64.const 4) (i32.const 5))
          (func (export "swap") (param i32 i32) (result i32 i32)
            (call $swap (local.get 0) (local.get 1)))
          (func (export "many") (result i32 i64 i32 i64 i32) (call $many))
          (func (export "block_params") (param i32 i32) (result i32)
            (local.get 0) (local.get 1)
            (block (type $pair) (call $swap))
            (i32.sub))
          (func (export "loop_params") (param $n i32) (result i32) (local $acc i32)
            ;; Sum n..1 with the counter and accumulator as loop params.
            (local.get $n) (i32.const 0)
            (loop $l (param i32 i32) (result i32 i32)
              (local.set $acc)
              (local.set $n)
              (i32.sub (local.get $n) (i32.const 1))
              (i32.add (local.get $acc) (local.get $n))
              (br_if $l (i32.gt_u (local.get $n) (i32.const 1))))
            (local.set $acc) (drop) (local.get $acc))
          (func (export "if_params") (param i32 i32) (result i32)
            (local.get 1)
            (if (param i32) (result i32) (local.get 0)
              (then (i32.const 1) (i32.add))
              (else (i32.const 1) (i32.sub)))))"#,
    );
    assert_eq!(inst.call("swap", &[1, 2]), vec![2, 1]);
    assert_eq!(inst.call("many", &[]), vec![1, 2, 3, 4, 5]);
    assert_eq!(inst.i32("block_params", &[10, 3]), 3 - 10);
    assert_eq!(inst.i32("loop_params", &[10]), 55);
    assert_eq!(inst.i32("loop_params", &[1]), 1);
    assert_eq!(inst.i32("if_params", &[1, 10]), 11);
    assert_eq!(inst.i32("if_params", &[0, 10]), 9);
}

#[test]
fn recursion_and_calls() {
    let mut inst = Instance::new(
        r#"(module
          (func $fib (export "fib") (param i32) (result i32)
            (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
              (then (local.get 0))
              (else (i32.add
                (call $fib (i32.sub (local.get 0) (i32.const 1)))
                (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
          (func $fact (param i64) (result i64)
            (if (result i64) (i64.eqz (local.get 0))
              (then (i64.const 1))
              (else (i64.mul (local.get 0) (call $fact (i64.sub (local.get 0) (i64.const 1)))))))
          (func (export "fact") (param i64) (result i64) (call $fact (local.get 0)))
          (func $even (param i32) (result i32)
            (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 1))
              (else (call $odd (i32.sub (local.get 0) (i32.const 1))))))
          (func $odd (param i32) (result i32)
            (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
              (else (call $even (i32.sub (local.get 0) (i32.const 1))))))
          (func (export "even") (param i32) (result i32) (call $even (local.get 0))))"#,
    );
    assert_eq!(inst.i32("fib", &[0]), 0);
    assert_eq!(inst.i32("fib", &[1]), 1);
    assert_eq!(inst.i32("fib", &[20]), 6765);
    assert_eq!(inst.i64("fact", &[20]), 2_432_902_008_176_640_000);
    assert_eq!(inst.i32("even", &[100]), 1);
    assert_eq!(inst.i32("even", &[7]), 0);
}

/// The stress job's "compute" guest shape: xorshift fill and fold over a
/// 16 KiB page-size-1 heap, checked against a native model.
#[test]
fn compute_kernel_matches_native() {
    const HEAP: u64 = 16384;
    let wat = format!(
        r#"(module
  (memory {HEAP} {HEAP} (pagesize 1))
  (func (export "run") (param $seed i64) (param $rounds i32) (result i64)
    (local $x i64) (local $p i32) (local $acc i64) (local $r i32)
    (local.set $x (i64.or (local.get $seed) (i64.const 1)))
    (loop $round
      (local.set $p (i32.const 0))
      (loop $fill
        (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 13))))
        (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 7))))
        (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 17))))
        (i64.store (local.get $p) (local.get $x))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (br_if $fill (i32.lt_u (local.get $p) (i32.const {HEAP}))))
      (local.set $p (i32.const 0))
      (loop $fold
        (local.set $acc
          (i64.add
            (i64.rotl (local.get $acc) (i64.const 5))
            (i64.mul (i64.load (local.get $p)) (i64.const 0x9E3779B97F4A7C15))))
        (local.set $acc (i64.xor (local.get $acc)
          (i64.extend_i32_u (i32.load8_u (i32.add (local.get $p) (i32.const 3))))))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (br_if $fold (i32.lt_u (local.get $p) (i32.const {HEAP}))))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br_if $round (i32.lt_u (local.get $r) (local.get $rounds))))
    (local.get $acc)))"#
    );
    let (seed, rounds) = (0x1234_5678_i64, 3);
    let mut heap = vec![0u64; (HEAP / 8) as usize];
    let (mut x, mut acc) = ((seed | 1) as u64, 0u64);
    for _ in 0..rounds {
        for w in heap.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *w = x;
        }
        for w in &heap {
            acc = acc
                .rotate_left(5)
                .wrapping_add(w.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            acc ^= (w >> 24) & 0xff;
        }
    }
    let mut inst = Instance::new(&wat);
    inst.set_fuel(1000, 1000);
    let got = inst.call("run", &[seed as u64, rounds as u64])[0];
    assert_eq!(got, acc);
    assert!(inst.fuel_calls() > 0, "a long kernel is preempted");
}
