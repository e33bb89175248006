;; Dense f64 matrix product C = A * B of 128x128 matrices in linear memory
;; (A at 0, B at 128 KiB, C at 256 KiB), `run(n)` times; returns the sum of
;; C's diagonal truncated to i64 (A[i][k] = i + k, B[k][j] = (k - j + 1) / 64:
;; see `init`).
(module
  (memory 6)
  (func $init
    (local $i i32) (local $j i32)
    (loop $li
      (local.set $j (i32.const 0))
      (loop $lj
        (f64.store
          (i32.shl (i32.add (i32.mul (local.get $i) (i32.const 128)) (local.get $j)) (i32.const 3))
          (f64.convert_i32_s (i32.add (local.get $i) (local.get $j))))
        (f64.store offset=131072
          (i32.shl (i32.add (i32.mul (local.get $i) (i32.const 128)) (local.get $j)) (i32.const 3))
          (f64.div (f64.convert_i32_s (i32.add (i32.sub (local.get $i) (local.get $j)) (i32.const 1))) (f64.const 64)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br_if $lj (i32.lt_u (local.get $j) (i32.const 128))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $li (i32.lt_u (local.get $i) (i32.const 128)))))
  (func (export "run") (param $reps i64) (result i64)
    (local $i i32) (local $j i32) (local $k i32) (local $acc f64) (local $trace f64)
    (call $init)
    (block $done
      (loop $rep
        (br_if $done (i64.eqz (local.get $reps)))
        (local.set $reps (i64.sub (local.get $reps) (i64.const 1)))
        (local.set $i (i32.const 0))
        (loop $li
          (local.set $j (i32.const 0))
          (loop $lj
            (local.set $acc (f64.const 0))
            (local.set $k (i32.const 0))
            (loop $lk
              (local.set $acc
                (f64.add (local.get $acc)
                  (f64.mul
                    (f64.load
                      (i32.shl (i32.add (i32.mul (local.get $i) (i32.const 128)) (local.get $k)) (i32.const 3)))
                    (f64.load offset=131072
                      (i32.shl (i32.add (i32.mul (local.get $k) (i32.const 128)) (local.get $j)) (i32.const 3))))))
              (local.set $k (i32.add (local.get $k) (i32.const 1)))
              (br_if $lk (i32.lt_u (local.get $k) (i32.const 128))))
            (f64.store offset=262144
              (i32.shl (i32.add (i32.mul (local.get $i) (i32.const 128)) (local.get $j)) (i32.const 3))
              (local.get $acc))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br_if $lj (i32.lt_u (local.get $j) (i32.const 128))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $li (i32.lt_u (local.get $i) (i32.const 128))))
        (br $rep)))
    (local.set $trace (f64.const 0))
    (local.set $i (i32.const 0))
    (loop $lt
      (local.set $trace (f64.add (local.get $trace)
        (f64.load offset=262144 (i32.shl (i32.mul (local.get $i) (i32.const 129)) (i32.const 3)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $lt (i32.lt_u (local.get $i) (i32.const 128))))
    (i64.trunc_sat_f64_s (local.get $trace))))
