(module
  (import "myriad" "send" (func $send (param i64 i32 i32) (result i32)))
  (import "myriad" "recv" (func $recv (param i32 i32) (result i32)))
  (memory 64 64 (pagesize 1))
  ;; A ring member. Bytes 0..8: the next member's id (the first message);
  ;; 8..20: the token, the hops still to make (i32) and the id of the
  ;; instance to hand it to when none are left (i64). Runs until cancelled.
  (func (export "member") (result i32)
    (drop (call $recv (i32.const 0) (i32.const 8)))
    (loop $hop
      (drop (call $recv (i32.const 8) (i32.const 12)))
      (if (i32.eqz (i32.load (i32.const 8)))
        (then
          (drop (call $send (i64.load (i32.const 12)) (i32.const 8) (i32.const 12))))
        (else
          (i32.store (i32.const 8) (i32.sub (i32.load (i32.const 8)) (i32.const 1)))
          (drop (call $send (i64.load (i32.const 0)) (i32.const 8) (i32.const 12)))))
      (br $hop))
    (i32.const 0))
  ;; Wait for the spent token; its length (12).
  (func (export "waiter") (result i32)
    (call $recv (i32.const 32) (i32.const 12))))
