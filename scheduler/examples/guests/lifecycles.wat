(module
  (import "myriad" "spawn" (func $spawn (param i32 i32 i32 i32 i32) (result i64)))
  (import "myriad" "send" (func $send (param i64 i32 i32) (result i32)))
  (import "myriad" "recv" (func $recv (param i32 i32) (result i32)))
  (import "myriad" "self" (func $self (result i64)))
  (import "myriad" "sleep" (func $sleep (param i64)))
  (memory 64 64 (pagesize 1))
  (data (i32.const 48) "request")
  (func (export "request") (param $parent i64) (param $x i64)
    (i64.store (i32.const 0) (i64.add (i64.mul (local.get $x) (local.get $x)) (i64.const 1)))
    (block $sent
      (loop $retry
        (br_if $sent (i32.eqz (call $send (local.get $parent) (i32.const 0) (i32.const 8))))
        (call $sleep (i64.const 0))
        (br $retry))))
  ;; spawn request(self, spawned) until it succeeds
  (func $start (param $x i64)
    (i64.store (i32.const 8) (call $self))
    (i64.store (i32.const 16) (local.get $x))
    (block $ok
      (loop $retry
        (br_if $ok (i64.gt_s
          (call $spawn (i32.const 48) (i32.const 7) (i32.const 8) (i32.const 2) (i32.const 0))
          (i64.const 0)))
        (call $sleep (i64.const 10000))
        (br $retry))))
  (func (export "driver") (param $total i64) (param $inflight i64) (result i64)
    (local $spawned i64) (local $done i64) (local $sum i64)
    (block $full
      (loop $fill
        (br_if $full (i64.ge_u (local.get $spawned) (local.get $inflight)))
        (br_if $full (i64.ge_u (local.get $spawned) (local.get $total)))
        (call $start (local.get $spawned))
        (local.set $spawned (i64.add (local.get $spawned) (i64.const 1)))
        (br $fill)))
    (block $finished
      (loop $collect
        (br_if $finished (i64.ge_u (local.get $done) (local.get $total)))
        (drop (call $recv (i32.const 0) (i32.const 8)))
        (local.set $sum (i64.add (local.get $sum) (i64.load (i32.const 0))))
        (local.set $done (i64.add (local.get $done) (i64.const 1)))
        (if (i64.lt_u (local.get $spawned) (local.get $total))
          (then
            (call $start (local.get $spawned))
            (local.set $spawned (i64.add (local.get $spawned) (i64.const 1)))))
        (br $collect)))
    (local.get $sum)))
