;; The sieve of `sieve.wat` with its loops in the rotated (do-while) form
;; that LLVM emits for C and Rust loops: the test that continues the loop
;; is a `br_if` back to its header at the bottom, guarded by one test
;; before entry. Same work and result (6,542 primes below 65,536).
(module
  (memory 1)
  (func (export "run") (param $reps i64) (result i64)
    (local $i i32) (local $j i32) (local $count i64)
    (block $done
      (loop $rep
        (br_if $done (i64.eqz (local.get $reps)))
        (local.set $reps (i64.sub (local.get $reps) (i64.const 1)))
        (memory.fill (i32.const 0) (i32.const 1) (i32.const 65536))
        (local.set $count (i64.const 0))
        (local.set $i (i32.const 2))
        (loop $outer
          (if (i32.load8_u (local.get $i))
            (then
              (local.set $count (i64.add (local.get $count) (i64.const 1)))
              (local.set $j (i32.mul (local.get $i) (local.get $i)))
              (if (i32.lt_u (local.get $j) (i32.const 65536))
                (then
                  (loop $inner
                    (i32.store8 (local.get $j) (i32.const 0))
                    (local.set $j (i32.add (local.get $j) (local.get $i)))
                    (br_if $inner (i32.lt_u (local.get $j) (i32.const 65536))))))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $outer (i32.lt_u (local.get $i) (i32.const 65536))))
        (br $rep)))
    (local.get $count)))
