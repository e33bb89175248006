(module
  (import "myriad" "spawn" (func $spawn (param i32 i32 i32 i32 i32) (result i64)))
  (import "myriad" "send" (func $send (param i64 i32 i32) (result i32)))
  (import "myriad" "recv" (func $recv (param i32 i32) (result i32)))
  (import "myriad" "self" (func $self (result i64)))
  (import "myriad" "sleep" (func $sleep (param i64)))
  (memory 64 64 (pagesize 1))
  (data (i32.const 48) "skynet")
  ;; bytes 0..8: a received message; 8..32: the children's arguments
  (func (export "skynet") (param $num i64) (param $size i64) (param $parent i64) (result i64)
    (local $sum i64) (local $i i64) (local $div i64)
    (if (i64.eq (local.get $size) (i64.const 1))
      (then (local.set $sum (local.get $num)))
      (else
        (local.set $div (i64.div_u (local.get $size) (i64.const 10)))
        (i64.store (i32.const 16) (local.get $div))
        (i64.store (i32.const 24) (call $self))
        (loop $spawn
          (i64.store (i32.const 8)
            (i64.add (local.get $num) (i64.mul (local.get $i) (local.get $div))))
          ;; at capacity: wait a little and try again
          (block $spawned
            (loop $retry
              (br_if $spawned (i64.gt_s
                (call $spawn (i32.const 48) (i32.const 6) (i32.const 8) (i32.const 3) (i32.const 0))
                (i64.const 0)))
              (call $sleep (i64.const 10000))
              (br $retry)))
          (br_if $spawn (i64.lt_u
            (local.tee $i (i64.add (local.get $i) (i64.const 1))) (i64.const 10))))
        (local.set $i (i64.const 0))
        (loop $gather
          (drop (call $recv (i32.const 0) (i32.const 8)))
          (local.set $sum (i64.add (local.get $sum) (i64.load (i32.const 0))))
          (br_if $gather (i64.lt_u
            (local.tee $i (i64.add (local.get $i) (i64.const 1))) (i64.const 10))))))
    (if (i64.gt_s (local.get $parent) (i64.const 0))
      (then
        (i64.store (i32.const 0) (local.get $sum))
        ;; a full mailbox: yield and retry
        (block $sent
          (loop $retry
            (br_if $sent (i32.eqz (call $send (local.get $parent) (i32.const 0) (i32.const 8))))
            (call $sleep (i64.const 0))
            (br $retry)))))
    (local.get $sum)))
