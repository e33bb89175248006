//! Linear memory: every load/store width, boundary accesses, memory.size
//! and memory.grow with 64 KiB and 1-byte pages, data segments.

mod common;

use common::{build, metadata, Instance};
use myriad_codegen::abi::{DataSegment, MemoryDecl, TrapKind};
use myriad_codegen::CompileConfig;

const ACCESSORS: &str = r#"
  (func (export "i32.load") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "i64.load") (param i32) (result i64) (i64.load (local.get 0)))
  (func (export "f32.load") (param i32) (result f32) (f32.load (local.get 0)))
  (func (export "f64.load") (param i32) (result f64) (f64.load (local.get 0)))
  (func (export "i32.load8_s") (param i32) (result i32) (i32.load8_s (local.get 0)))
  (func (export "i32.load8_u") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "i32.load16_s") (param i32) (result i32) (i32.load16_s (local.get 0)))
  (func (export "i32.load16_u") (param i32) (result i32) (i32.load16_u (local.get 0)))
  (func (export "i64.load8_s") (param i32) (result i64) (i64.load8_s (local.get 0)))
  (func (export "i64.load8_u") (param i32) (result i64) (i64.load8_u (local.get 0)))
  (func (export "i64.load16_s") (param i32) (result i64) (i64.load16_s (local.get 0)))
  (func (export "i64.load16_u") (param i32) (result i64) (i64.load16_u (local.get 0)))
  (func (export "i64.load32_s") (param i32) (result i64) (i64.load32_s (local.get 0)))
  (func (export "i64.load32_u") (param i32) (result i64) (i64.load32_u (local.get 0)))
  (func (export "i32.store") (param i32 i32) (i32.store (local.get 0) (local.get 1)))
  (func (export "i64.store") (param i32 i64) (i64.store (local.get 0) (local.get 1)))
  (func (export "f32.store") (param i32 f32) (f32.store (local.get 0) (local.get 1)))
  (func (export "f64.store") (param i32 f64) (f64.store (local.get 0) (local.get 1)))
  (func (export "i32.store8") (param i32 i32) (i32.store8 (local.get 0) (local.get 1)))
  (func (export "i32.store16") (param i32 i32) (i32.store16 (local.get 0) (local.get 1)))
  (func (export "i64.store8") (param i32 i64) (i64.store8 (local.get 0) (local.get 1)))
  (func (export "i64.store16") (param i32 i64) (i64.store16 (local.get 0) (local.get 1)))
  (func (export "i64.store32") (param i32 i64) (i64.store32 (local.get 0) (local.get 1)))
  (func (export "load_offset") (param i32) (result i32) (i32.load offset=1000 (local.get 0)))
  (func (export "size") (result i32) (memory.size))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
"#;

fn module(memory: &str) -> String {
    format!("(module {memory} {ACCESSORS})")
}

const PATTERN: [u8; 8] = [0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8];

fn check_widths(inst: &mut Instance, at: usize) {
    inst.heap()[at..at + 8].copy_from_slice(&PATTERN);
    let a = at as u64;
    let word = u64::from_le_bytes(PATTERN);
    let r = |inst: &mut Instance, name: &str| inst.call(name, &[a])[0];
    assert_eq!(r(inst, "i64.load"), word);
    assert_eq!(r(inst, "f64.load"), word);
    assert_eq!(r(inst, "i32.load") as u32, word as u32);
    assert_eq!(r(inst, "f32.load") as u32, word as u32);
    assert_eq!(r(inst, "i32.load8_s") as u32, 0x81u8 as i8 as i32 as u32);
    assert_eq!(r(inst, "i32.load8_u") as u32, 0x81);
    assert_eq!(
        r(inst, "i32.load16_s") as u32,
        0x9281u16 as i16 as i32 as u32
    );
    assert_eq!(r(inst, "i32.load16_u") as u32, 0x9281);
    assert_eq!(r(inst, "i64.load8_s"), 0x81u8 as i8 as i64 as u64);
    assert_eq!(r(inst, "i64.load8_u"), 0x81);
    assert_eq!(r(inst, "i64.load16_s"), 0x9281u16 as i16 as i64 as u64);
    assert_eq!(r(inst, "i64.load16_u"), 0x9281);
    assert_eq!(r(inst, "i64.load32_s"), 0xb4a3_9281u32 as i32 as i64 as u64);
    assert_eq!(r(inst, "i64.load32_u"), 0xb4a3_9281);

    let stores: [(&str, usize); 9] = [
        ("i64.store", 8),
        ("f64.store", 8),
        ("i32.store", 4),
        ("f32.store", 4),
        ("i64.store32", 4),
        ("i32.store16", 2),
        ("i64.store16", 2),
        ("i32.store8", 1),
        ("i64.store8", 1),
    ];
    for (name, width) in stores {
        inst.heap()[at..at + 8].fill(0xee);
        inst.call(name, &[a, word]);
        let heap = &inst.heap()[at..at + 8];
        assert_eq!(&heap[..width], &PATTERN[..width], "{name} stores its bytes");
        assert!(
            heap[width..].iter().all(|b| *b == 0xee),
            "{name} stores only {width} bytes"
        );
    }
}

#[test]
fn every_width_loads_and_stores() {
    let mut inst = Instance::new(&module("(memory 1)"));
    check_widths(&mut inst, 16);
    check_widths(&mut inst, 1001); // unaligned
    inst.heap()[1000 + 40..1000 + 44].copy_from_slice(&7u32.to_le_bytes());
    assert_eq!(inst.i32("load_offset", &[40]), 7);
}

#[test]
fn last_valid_bytes_are_accessible() {
    let mut inst = Instance::new(&module("(memory 1)"));
    let len = inst.heap_len();
    assert_eq!(len, 65536);
    for (name, size) in [
        ("i64.load", 8),
        ("i32.load", 4),
        ("i32.load16_u", 2),
        ("i32.load8_u", 1),
    ] {
        let at = len - size;
        inst.heap()[at..].fill(0x11);
        let got = inst.call(name, &[at as u64])[0];
        assert_eq!(
            got,
            u64::from_le_bytes([0x11; 8]) >> (64 - 8 * size),
            "{name} at {at}"
        );
    }
    inst.call("i64.store", &[(len - 8) as u64, u64::MAX]);
    assert_eq!(&inst.heap()[len - 8..], &[0xff; 8]);
    // Guard mode elides the constant part but the same accesses work.
    let config = CompileConfig::guarded(4096);
    let mut inst = Instance::with_config(&module("(memory 1)"), &config);
    assert_eq!(inst.meta.guard_bytes, 4096);
    inst.call("i64.store", &[(len - 8) as u64, 0x0102_0304_0506_0708]);
    assert_eq!(
        inst.call("i64.load", &[(len - 8) as u64])[0],
        0x0102_0304_0506_0708
    );
}

#[test]
fn memory_size_and_grow_64k_pages() {
    let mut inst = Instance::new(&module("(memory 1 3)"));
    assert_eq!(
        inst.meta.memory,
        Some(MemoryDecl {
            min_pages: 1,
            max_pages: Some(3),
            page_size_log2: 16
        })
    );
    assert_eq!(inst.i32("size", &[]), 1);
    assert_eq!(inst.i32("grow", &[1]), 1);
    assert_eq!(inst.i32("size", &[]), 2);
    assert_eq!(inst.heap_len(), 2 * 65536);
    // The new page is usable right away (heap_len is reloaded after the call).
    inst.call("i32.store", &[2 * 65536 - 4, 99]);
    assert_eq!(inst.i32("i32.load", &[2 * 65536 - 4]), 99);
    assert_eq!(inst.i32("grow", &[5]), -1);
    assert_eq!(inst.i32("grow", &[0]), 2);
    assert_eq!(inst.i32("grow", &[-1]), -1, "delta is zero-extended");
}

#[test]
fn memory_size_and_grow_1_byte_pages() {
    let wat = module("(memory 16384 20000 (pagesize 1))");
    let mut inst = Instance::new(&wat);
    assert_eq!(
        inst.meta.memory,
        Some(MemoryDecl {
            min_pages: 16384,
            max_pages: Some(20000),
            page_size_log2: 0
        })
    );
    assert_eq!(inst.heap_len(), 16384);
    assert_eq!(inst.i32("size", &[]), 16384);
    assert_eq!(inst.i32("grow", &[3]), 16384);
    assert_eq!(inst.i32("size", &[]), 16387);
    check_widths(&mut inst, 16387 - 8);
    assert_eq!(inst.i32("grow", &[10000]), -1);
}

#[test]
fn data_segments_are_recorded() {
    let so = build(
        r#"(module (memory 1)
            (data (i32.const 8) "hello")
            (data (i32.const 0xfff0) "\01\02")
            (func (export "get") (param i32) (result i32) (i32.load8_u (local.get 0))))"#,
        &CompileConfig::default(),
    );
    let meta = metadata(&so);
    assert_eq!(
        meta.data,
        vec![
            DataSegment {
                passive: false,
                offset: myriad_codegen::abi::ConstExpr::i32(8),
                bytes: b"hello".to_vec()
            },
            DataSegment {
                passive: false,
                offset: myriad_codegen::abi::ConstExpr::i32(0xfff0),
                bytes: vec![1, 2]
            },
        ]
    );
    let mut inst = Instance::load(&so);
    assert_eq!(inst.i32("get", &[9]), b'e' as i32);
    assert_eq!(inst.i32("get", &[0xfff1]), 2);
}

#[test]
fn bounds_checks_are_recorded_as_trap_sites() {
    for guard in [0, 65536] {
        let so = build(&module("(memory 1)"), &CompileConfig::guarded(guard));
        let meta = metadata(&so);
        let oob = meta
            .traps
            .iter()
            .filter(|t| t.kind == TrapKind::HeapOutOfBounds);
        // At least one site per accessor (the explicit check).
        let funcs: std::collections::BTreeSet<u32> = oob.map(|t| t.func_index).collect();
        assert!(
            funcs.len() >= 23,
            "guard {guard}: {} functions with checks",
            funcs.len()
        );
    }
}

#[test]
fn memory_fill_and_copy_match_memmove() {
    let mut inst = Instance::new(
        r#"(module (memory 1)
          (func (export "fill") (param i32 i32 i32) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
          (func (export "copy") (param i32 i32 i32) (memory.copy (local.get 0) (local.get 1) (local.get 2))))"#,
    );
    let seed: Vec<u8> = (0..256u32).map(|i| (i * 37 + 11) as u8).collect();
    for n in [0usize, 1, 7, 8, 9, 15, 16, 17, 63, 100] {
        for (d, s) in [
            (10usize, 40usize),
            (40, 10),
            (20, 23),
            (23, 20),
            (30, 30),
            (0, 128),
        ] {
            inst.heap()[..256].copy_from_slice(&seed);
            let mut want = seed.clone();
            want.copy_within(s..s + n, d);
            inst.call("copy", &[d as u64, s as u64, n as u64]);
            assert_eq!(&inst.heap()[..256], &want[..], "copy d={d} s={s} n={n}");

            inst.heap()[..256].copy_from_slice(&seed);
            let mut want = seed.clone();
            want[d..d + n].fill(0xab);
            inst.call("fill", &[d as u64, 0x12ab, n as u64]);
            assert_eq!(&inst.heap()[..256], &want[..], "fill d={d} n={n}");
        }
    }
    // Up to the very end of memory.
    let len = inst.heap_len();
    inst.call("fill", &[(len - 13) as u64, 0x7f, 13]);
    assert!(inst.heap()[len - 13..].iter().all(|b| *b == 0x7f));
    inst.call("copy", &[0, (len - 13) as u64, 13]);
    assert!(inst.heap()[..13].iter().all(|b| *b == 0x7f));
    inst.call("fill", &[len as u64, 0, 0]);
}
