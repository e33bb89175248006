;; Sieve of Eratosthenes over a byte array, repeated: `run(n)` sieves the
;; numbers below 65,536 n times and returns the count of primes found in
;; the last pass (6,542).
(module
  (memory 1)
  (func (export "run") (param $reps i64) (result i64)
    (local $i i32) (local $j i32) (local $count i64)
    (block $done
      (loop $rep
        (br_if $done (i64.eqz (local.get $reps)))
        (local.set $reps (i64.sub (local.get $reps) (i64.const 1)))
        ;; clear
        (memory.fill (i32.const 0) (i32.const 1) (i32.const 65536))
        (local.set $count (i64.const 0))
        (local.set $i (i32.const 2))
        (loop $outer
          (if (i32.load8_u (local.get $i))
            (then
              (local.set $count (i64.add (local.get $count) (i64.const 1)))
              (local.set $j (i32.mul (local.get $i) (local.get $i)))
              (block $inner_done
                (loop $inner
                  (br_if $inner_done (i32.ge_u (local.get $j) (i32.const 65536)))
                  (i32.store8 (local.get $j) (i32.const 0))
                  (local.set $j (i32.add (local.get $j) (local.get $i)))
                  (br $inner)))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $outer (i32.lt_u (local.get $i) (i32.const 65536))))
        (br $rep)))
    (local.get $count)))
