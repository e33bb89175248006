//! The built-in stress guests, as WebAssembly text.
//!
//! Each exports `run`. Memories use the custom-page-sizes proposal (page
//! size 1) so a heap can be exactly the configured size.

/// Which built-in guest to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Guest {
    /// A pure loop that never ends.
    Spin,
    /// Writes every 4 KiB page of its heap, over and over.
    Touch,
    /// A mixed arithmetic and memory kernel whose result is checked.
    Compute,
    /// A little work, then `myriad.sleep(ns)`, forever: exercises the
    /// scheduler's timers (`--sleep-us`).
    Sleep,
}

impl Guest {
    /// Name as given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Guest::Spin => "spin",
            Guest::Touch => "touch",
            Guest::Compute => "compute",
            Guest::Sleep => "sleep",
        }
    }

    /// WebAssembly text of the guest for a heap of `heap_bytes`.
    pub fn wat(self, heap_bytes: u64) -> String {
        match self {
            Guest::Spin => format!(
                r#"(module
  (memory (export "memory") {heap_bytes} {heap_bytes} (pagesize 1))
  (func (export "run")
    (loop $l (br $l))))"#
            ),
            Guest::Touch => format!(
                r#"(module
  (memory (export "memory") {heap_bytes} {heap_bytes} (pagesize 1))
  (func (export "run")
    (local $p i32) (local $n i32)
    (loop $forever
      (local.set $p (i32.const 0))
      (loop $pages
        (i32.store (local.get $p) (local.get $n))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (local.set $p (i32.add (local.get $p) (i32.const 4096)))
        (br_if $pages (i32.lt_u (local.get $p) (i32.const {heap_bytes}))))
      (br $forever))))"#
            ),
            Guest::Sleep => format!(
                r#"(module
  (import "myriad" "sleep" (func $sleep (param i64)))
  (memory (export "memory") {heap_bytes} {heap_bytes} (pagesize 1))
  (func (export "run") (param $ns i64)
    (local $i i32)
    (loop $forever
      (local.set $i (i32.const 0))
      (loop $work
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $work (i32.lt_u (local.get $i) (i32.const 100))))
      (call $sleep (local.get $ns))
      (br $forever))))"#
            ),
            Guest::Compute => format!(
                r#"(module
  (memory (export "memory") {heap_bytes} {heap_bytes} (pagesize 1))
  ;; Fill the heap with an xorshift stream seeded by $seed, then fold it
  ;; with multiplies and rotates, $rounds times. Returns the checksum.
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
        (br_if $fill (i32.lt_u (local.get $p) (i32.const {heap_bytes}))))
      (local.set $p (i32.const 0))
      (loop $fold
        (local.set $acc
          (i64.add
            (i64.rotl (local.get $acc) (i64.const 5))
            (i64.mul (i64.load (local.get $p)) (i64.const 0x9E3779B97F4A7C15))))
        (local.set $acc (i64.xor (local.get $acc)
          (i64.extend_i32_u (i32.load8_u (i32.add (local.get $p) (i32.const 3))))))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (br_if $fold (i32.lt_u (local.get $p) (i32.const {heap_bytes}))))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br_if $round (i32.lt_u (local.get $r) (local.get $rounds))))
    (local.get $acc)))"#
            ),
        }
    }
}

/// What the compute guest returns for `seed`, `rounds` and a heap of
/// `heap_bytes`, computed natively to check the guest.
pub fn compute_reference(seed: i64, rounds: i32, heap_bytes: u64) -> i64 {
    let words = (heap_bytes / 8) as usize;
    let mut heap = vec![0u64; words];
    let mut x = (seed | 1) as u64;
    let mut acc: u64 = 0;
    let mut r = 0;
    loop {
        for w in heap.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *w = x;
        }
        for w in heap.iter() {
            acc = acc
                .rotate_left(5)
                .wrapping_add(w.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            acc ^= (w >> 24) & 0xff;
        }
        r += 1;
        if r >= rounds {
            break;
        }
    }
    acc as i64
}
