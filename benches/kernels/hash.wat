;; A register-only integer hash (xorshift-multiply rounds): `run(n)` mixes
;; n rounds and returns the state.
(module
  (func (export "run") (param $n i64) (result i64)
    (local $h i64)
    (local.set $h (i64.const 0x9e3779b97f4a7c15))
    (block $done
      (loop $l
        (br_if $done (i64.eqz (local.get $n)))
        (local.set $h (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 33))))
        (local.set $h (i64.mul (local.get $h) (i64.const 0xff51afd7ed558ccd)))
        (local.set $h (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 29))))
        (local.set $h (i64.add (local.get $h) (local.get $n)))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $l)))
    (local.get $h)))
