//! Tables and references end to end: compile WAT, instantiate, call.

mod compiled;
use compiled::*;
use myriad_codegen::CompileConfig;
use myriad_runtime::fuel::{ns_to_tsc, rdtsc};
use myriad_runtime::{Instance, InstantiateError, Module, Outcome, Region, TrapKind, Val};
use std::sync::Arc;

const WAT: &str = r#"
(module
  (type $ii (func (param i32) (result i32)))
  (type $v (func (result i32)))
  (table $t 4 10 funcref)
  (table $x 2 externref)
  (global $fg funcref (ref.func $double))
  (global $mg (mut funcref) (ref.null func))
  (func $double (type $ii) local.get 0 i32.const 2 i32.mul)
  (func $inc (type $ii) local.get 0 i32.const 1 i32.add)
  (func $seven (type $v) i32.const 7)
  (elem (table $t) (i32.const 0) func $double $inc $seven)
  (elem $pass func $inc $double)
  (elem declare func $seven)
  (func (export "call") (param i32 i32) (result i32)
    local.get 1 local.get 0 call_indirect $t (type $ii))
  (func (export "size") (result i32) table.size $t)
  (func (export "grow") (param i32) (result i32)
    ref.func $seven local.get 0 table.grow $t)
  (func (export "fill") (param i32 i32)
    local.get 0 ref.func $inc local.get 1 table.fill $t)
  (func (export "copy") (param i32 i32 i32)
    local.get 0 local.get 1 local.get 2 table.copy $t $t)
  (func (export "init") (param i32 i32 i32)
    local.get 0 local.get 1 local.get 2 table.init $t $pass)
  (func (export "drop") elem.drop $pass)
  (func (export "is_null") (param i32) (result i32)
    local.get 0 table.get $t ref.is_null)
  (func (export "set_null") (param i32) local.get 0 ref.null func table.set $t)
  (func (export "get_oob") (result i32) i32.const 99 table.get $t ref.is_null)
  (func (export "ext_set") (param i32 externref) local.get 0 local.get 1 table.set $x)
  (func (export "ext_get") (param i32) (result externref) local.get 0 table.get $x)
  (func (export "fg_is_null") (result i32) global.get $fg ref.is_null)
  (func (export "mg") (result funcref) global.get $mg)
  (func (export "set_mg") global.get $fg global.set $mg)
  (func (export "ref_func") (result funcref) ref.func $seven)
  (func (export "select") (param i32) (result funcref)
    ref.func $inc ref.null func local.get 0 select (result funcref))
)
"#;

fn module(wat: &str) -> Arc<Module> {
    compile_wat(wat, &CompileConfig::default())
}

fn region() -> Arc<Region> {
    region_with(4, 64 * 1024)
}

fn call(i: &mut Instance, export: &str, args: &[Val]) -> Outcome {
    i.call(export, args).expect("arm call");
    loop {
        match i.resume(rdtsc() + ns_to_tsc(50_000)) {
            Outcome::Yielded => continue,
            o => return o,
        }
    }
}

fn i32s(v: &[i32]) -> Outcome {
    Outcome::Finished(v.iter().map(|x| Val::I32(*x)).collect())
}

fn trap(k: TrapKind) -> Outcome {
    Outcome::Trapped(k)
}

#[test]
fn call_indirect_dispatch_and_traps() {
    let (r, m) = (region(), module(WAT));
    let mut i = Instance::instantiate(&r, &m).unwrap();
    let c = |i: &mut Instance, slot, x| call(i, "call", &[Val::I32(slot), Val::I32(x)]);
    assert_eq!(c(&mut i, 0, 21), i32s(&[42]));
    assert_eq!(c(&mut i, 1, 21), i32s(&[22]));
    assert_eq!(c(&mut i, 2, 0), trap(TrapKind::IndirectCallTypeMismatch));
    assert_eq!(c(&mut i, 3, 0), trap(TrapKind::NullReference));
    assert_eq!(c(&mut i, 4, 0), trap(TrapKind::TableOutOfBounds));
    assert_eq!(c(&mut i, -1, 0), trap(TrapKind::TableOutOfBounds));
    // Traps end the call, not the instance: the table is still there.
    assert_eq!(c(&mut i, 0, 5), i32s(&[10]));
    assert_eq!(
        call(&mut i, "get_oob", &[]),
        trap(TrapKind::TableAccessOutOfBounds)
    );
    assert_eq!(
        TrapKind::TableAccessOutOfBounds.message(),
        "out of bounds table access"
    );
}

#[test]
fn grow_fill_copy_init_drop() {
    let (r, m) = (region(), module(WAT));
    let mut i = Instance::instantiate(&r, &m).unwrap();
    assert_eq!(call(&mut i, "size", &[]), i32s(&[4]));
    assert_eq!(call(&mut i, "grow", &[Val::I32(2)]), i32s(&[4]));
    assert_eq!(call(&mut i, "size", &[]), i32s(&[6]));
    // Maximum is 10.
    assert_eq!(call(&mut i, "grow", &[Val::I32(5)]), i32s(&[-1]));
    assert_eq!(call(&mut i, "size", &[]), i32s(&[6]));
    // New elements hold the init value ($seven: () -> i32, wrong type here).
    assert_eq!(
        call(&mut i, "call", &[Val::I32(5), Val::I32(1)]),
        trap(TrapKind::IndirectCallTypeMismatch)
    );
    // fill [4, 6) with $inc.
    assert_eq!(call(&mut i, "fill", &[Val::I32(4), Val::I32(2)]), i32s(&[]));
    assert_eq!(
        call(&mut i, "call", &[Val::I32(5), Val::I32(1)]),
        i32s(&[2])
    );
    assert_eq!(
        call(&mut i, "fill", &[Val::I32(5), Val::I32(2)]),
        trap(TrapKind::TableAccessOutOfBounds)
    );
    // copy [0, 2) to [2, 4): slot 2 becomes $double.
    assert_eq!(
        call(&mut i, "copy", &[Val::I32(2), Val::I32(0), Val::I32(2)]),
        i32s(&[])
    );
    assert_eq!(
        call(&mut i, "call", &[Val::I32(2), Val::I32(4)]),
        i32s(&[8])
    );
    assert_eq!(
        call(&mut i, "copy", &[Val::I32(5), Val::I32(0), Val::I32(2)]),
        trap(TrapKind::TableAccessOutOfBounds)
    );
    // init slot 0 from $pass[1] ($double) and slot 1 from... [$inc $double].
    assert_eq!(
        call(&mut i, "init", &[Val::I32(0), Val::I32(0), Val::I32(2)]),
        i32s(&[])
    );
    assert_eq!(
        call(&mut i, "call", &[Val::I32(0), Val::I32(4)]),
        i32s(&[5])
    );
    assert_eq!(
        call(&mut i, "init", &[Val::I32(0), Val::I32(1), Val::I32(2)]),
        trap(TrapKind::TableAccessOutOfBounds)
    );
    assert_eq!(call(&mut i, "drop", &[]), i32s(&[]));
    assert_eq!(
        call(&mut i, "init", &[Val::I32(0), Val::I32(0), Val::I32(1)]),
        trap(TrapKind::TableAccessOutOfBounds)
    );
    // Length 0 at the segment's (now empty) end is fine.
    assert_eq!(
        call(&mut i, "init", &[Val::I32(0), Val::I32(0), Val::I32(0)]),
        i32s(&[])
    );
    // table.set null, then call through it.
    assert_eq!(call(&mut i, "set_null", &[Val::I32(1)]), i32s(&[]));
    assert_eq!(call(&mut i, "is_null", &[Val::I32(1)]), i32s(&[1]));
    assert_eq!(
        call(&mut i, "call", &[Val::I32(1), Val::I32(0)]),
        trap(TrapKind::NullReference)
    );
    let st = i.table_state().expect("tables");
    assert_eq!(st.table(0).map(|t| t.len()), Some(6));
}

#[test]
fn references_and_globals() {
    let (r, m) = (region(), module(WAT));
    let mut i = Instance::instantiate(&r, &m).unwrap();
    assert_eq!(call(&mut i, "fg_is_null", &[]), i32s(&[0]));
    assert_eq!(
        call(&mut i, "mg", &[]),
        Outcome::Finished(vec![Val::FuncRef(0)])
    );
    assert_eq!(call(&mut i, "set_mg", &[]), i32s(&[]));
    let Outcome::Finished(v) = call(&mut i, "mg", &[]) else {
        panic!("mg")
    };
    assert!(matches!(v[..], [Val::FuncRef(p)] if p != 0));
    let Outcome::Finished(v) = call(&mut i, "ref_func", &[]) else {
        panic!("ref_func")
    };
    assert!(matches!(v[..], [Val::FuncRef(p)] if p != 0));
    assert_eq!(
        call(&mut i, "select", &[Val::I32(0)]),
        Outcome::Finished(vec![Val::FuncRef(0)])
    );
    assert_eq!(
        call(&mut i, "ext_set", &[Val::I32(1), Val::ExternRef(77)]),
        i32s(&[])
    );
    assert_eq!(
        call(&mut i, "ext_get", &[Val::I32(1)]),
        Outcome::Finished(vec![Val::ExternRef(77)])
    );
    assert_eq!(
        call(&mut i, "ext_get", &[Val::I32(0)]),
        Outcome::Finished(vec![Val::ExternRef(0)])
    );
    assert_eq!(call(&mut i, "is_null", &[Val::I32(3)]), i32s(&[1]));
    assert_eq!(call(&mut i, "is_null", &[Val::I32(0)]), i32s(&[0]));
}

#[test]
fn element_segment_out_of_bounds_fails_instantiation() {
    let r = region();
    let m = module(
        r#"(module (table 2 funcref) (func $f)
             (elem (i32.const 1) func $f $f))"#,
    );
    assert!(matches!(
        Instance::instantiate(&r, &m),
        Err(InstantiateError::ElemSegmentOutOfBounds { index: 0 })
    ));
    // The slot was not taken.
    let ok = module(r#"(module (table 2 funcref) (func $f) (elem (i32.const 1) func $f))"#);
    let _a = Instance::instantiate(&r, &ok).unwrap();
}

#[test]
fn type_ids_are_canonical_across_modules() {
    let a = module(WAT);
    let b = module(r#"(module (type (func (result i32))) (type (func (param i32) (result i32))))"#);
    assert_eq!(a.type_ids()[0], b.type_ids()[1]);
    assert_eq!(a.type_ids()[1], b.type_ids()[0]);
    assert_ne!(a.type_ids()[0], a.type_ids()[1]);
}

#[test]
fn memory_init_and_data_drop() {
    let (r, m) = (
        region(),
        module(
            r#"(module (memory 1)
                 (data $a (i32.const 0) "AB")
                 (data $p "xyz")
                 (func (export "init") (param i32 i32 i32)
                   local.get 0 local.get 1 local.get 2 memory.init $p)
                 (func (export "init_active") (param i32)
                   i32.const 0 i32.const 0 local.get 0 memory.init $a)
                 (func (export "drop") data.drop $p)
                 (func (export "load") (param i32) (result i32) local.get 0 i32.load8_u))"#,
        ),
    );
    let mut i = Instance::instantiate(&r, &m).unwrap();
    assert_eq!(&i.memory()[..2], b"AB");
    let init =
        |i: &mut Instance, d, s, n| call(i, "init", &[Val::I32(d), Val::I32(s), Val::I32(n)]);
    assert_eq!(init(&mut i, 10, 1, 2), i32s(&[]));
    assert_eq!(&i.memory()[10..12], b"yz");
    assert_eq!(init(&mut i, 10, 2, 2), trap(TrapKind::HeapOutOfBounds));
    assert_eq!(init(&mut i, 65535, 0, 2), trap(TrapKind::HeapOutOfBounds));
    // Active segments count as dropped: only length 0 is allowed.
    assert_eq!(call(&mut i, "init_active", &[Val::I32(0)]), i32s(&[]));
    assert_eq!(
        call(&mut i, "init_active", &[Val::I32(1)]),
        trap(TrapKind::HeapOutOfBounds)
    );
    assert_eq!(call(&mut i, "drop", &[]), i32s(&[]));
    assert_eq!(init(&mut i, 20, 0, 1), trap(TrapKind::HeapOutOfBounds));
    assert_eq!(init(&mut i, 20, 0, 0), i32s(&[]));
    assert_eq!(
        call(&mut i, "load", &[Val::I32(11)]),
        i32s(&[i32::from(b'z')])
    );
}

#[test]
fn memory_init_without_table_state() {
    // Only active data: no per-instance state is allocated, and every
    // segment behaves as dropped.
    let (r, m) = (
        region(),
        module(
            r#"(module (memory 1) (data (i32.const 0) "AB")
                 (func (export "init") (param i32)
                   i32.const 0 i32.const 0 local.get 0 memory.init 0))"#,
        ),
    );
    let mut i = Instance::instantiate(&r, &m).unwrap();
    assert!(i.table_state().is_none());
    assert_eq!(call(&mut i, "init", &[Val::I32(0)]), i32s(&[]));
    assert_eq!(
        call(&mut i, "init", &[Val::I32(1)]),
        trap(TrapKind::HeapOutOfBounds)
    );
}

/// A module whose bulk operations span many chunks
/// (`myriad_runtime::table::TABLE_CHUNK`, `MEMORY_CHUNK`): a 20,000-element
/// externref table filled with distinct handles by `setup`, and a
/// 200,000-byte passive data segment.
fn chunky() -> (Arc<Module>, Vec<u8>) {
    let seg: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let text: String = seg.iter().map(|b| format!("\\{b:02x}")).collect();
    let wat = format!(
        r#"(module
  (import "env" "ext" (func $ext (param i32) (result externref)))
  (table $x 20000 externref)
  (memory 4)
  (data $d "{text}")
  (func (export "setup") (local $i i32)
    (loop $l
      (table.set $x (local.get $i) (call $ext (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 20000)))))
  (func (export "copy") (param i32 i32 i32)
    (table.copy $x $x (local.get 0) (local.get 1) (local.get 2)))
  (func (export "get") (param i32) (result externref) (table.get $x (local.get 0)))
  (func (export "init") (param i32 i32 i32)
    (memory.init $d (local.get 0) (local.get 1) (local.get 2))))"#
    );
    (module(&wat), seg)
}

fn chunky_instance(region: &Arc<Region>, m: &Arc<Module>) -> Instance {
    let mut linker = myriad_runtime::Linker::new();
    linker.func(
        "env",
        "ext",
        myriad_runtime::FuncType {
            params: vec![myriad_runtime::ValType::I32],
            results: vec![myriad_runtime::ValType::ExternRef],
        },
        |_, cells| {
            cells[0] = (cells[0] as u32 as u64) + 1;
            myriad_runtime::HostAction::Return
        },
    );
    linker.instantiate(region, m, None).unwrap()
}

#[test]
fn chunked_table_copies_overlap_correctly_both_ways() {
    let (m, _) = chunky();
    let region = region_with(1, 4 * 65536);
    // (dst, src, len): overlapping forward and backward, each over
    // several chunks, and one reaching the table's end exactly.
    // Each runs twice: in one far-deadline slice, and in fuel slices of
    // one unit, which stop after every chunk (every resume path runs).
    let cases = [
        (100u32, 5000u32, 12000u32),
        (5000, 100, 12000),
        (0, 7999, 12001),
    ];
    for ((d, s, n), sliced) in cases.into_iter().flat_map(|c| [(c, false), (c, true)]) {
        let mut inst = chunky_instance(&region, &m);
        assert_eq!(call(&mut inst, "setup", &[]), Outcome::Finished(vec![]));
        let args = [Val::I32(d as i32), Val::I32(s as i32), Val::I32(n as i32)];
        if sliced {
            inst.call("copy", &args).unwrap();
            let mut slices = 1;
            while inst.resume_fuel(1) == Outcome::Yielded {
                slices += 1;
            }
            assert_eq!(inst.outcome(), Outcome::Finished(vec![]));
            assert!(slices >= 3, "{slices} slices for {n} elements");
        } else {
            assert_eq!(call(&mut inst, "copy", &args), Outcome::Finished(vec![]));
        }
        let mut want: Vec<u64> = (1..=20000).collect();
        want.copy_within(s as usize..(s + n) as usize, d as usize);
        for (i, w) in want.iter().enumerate() {
            assert_eq!(
                call(&mut inst, "get", &[Val::I32(i as i32)]),
                Outcome::Finished(vec![Val::ExternRef(*w)]),
                "copy({d}, {s}, {n}): element {i}"
            );
        }
    }
    // Out of bounds anywhere in the range: trap, nothing written.
    let mut inst = chunky_instance(&region, &m);
    assert_eq!(call(&mut inst, "setup", &[]), Outcome::Finished(vec![]));
    let args = [Val::I32(0), Val::I32(10000), Val::I32(10001)];
    assert_eq!(
        call(&mut inst, "copy", &args),
        trap(TrapKind::TableAccessOutOfBounds)
    );
    assert_eq!(
        call(&mut inst, "get", &[Val::I32(0)]),
        Outcome::Finished(vec![Val::ExternRef(1)])
    );
}

#[test]
fn chunked_memory_init_copies_everything_or_nothing() {
    let (m, seg) = chunky();
    let region = region_with(1, 4 * 65536);
    let mut inst = chunky_instance(&region, &m);
    let args = [Val::I32(1000), Val::I32(50), Val::I32(190_000)];
    assert_eq!(call(&mut inst, "init", &args), Outcome::Finished(vec![]));
    assert_eq!(&inst.memory()[1000..191_000], &seg[50..190_050]);
    assert!(inst.memory()[..1000].iter().all(|b| *b == 0));
    // Past the memory's end: trap, and not one byte changes.
    let before = inst.memory().to_vec();
    let args = [Val::I32(100_000), Val::I32(0), Val::I32(190_000)];
    assert_eq!(
        call(&mut inst, "init", &args),
        trap(TrapKind::HeapOutOfBounds)
    );
    assert_eq!(inst.memory(), &before[..]);
}

#[test]
fn a_huge_table_fill_is_preempted_between_chunks() {
    let m = module(
        r#"(module (table $t 2000000 externref)
             (func (export "fill") (param i32)
               (table.fill $t (i32.const 0) (ref.null extern) (local.get 0))))"#,
    );
    let region = region_with(1, 0);
    let mut inst = Instance::new(&region, &m, "fill", &[Val::I32(2_000_000)]).unwrap();
    // 2 million elements are 16 MB of stores: far more than 20 µs.
    let mut yields = 0;
    loop {
        match inst.resume(rdtsc() + ns_to_tsc(20_000)) {
            Outcome::Yielded => yields += 1,
            Outcome::Finished(v) => {
                assert!(v.is_empty());
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(yields >= 5, "only {yields} yields: not preempted mid-fill");
}

#[test]
fn a_huge_table_grow_is_preempted_and_seen_as_one_grow() {
    // 4 million externref elements: 32 MB written (and faulted in) by the
    // grow, far more than a 20 µs slice. The guest must see one grow: the
    // old size, then the new size and the init value everywhere, also in
    // 1-unit fuel slices (every chunk boundary a resume point).
    let m = module(
        r#"(module
             (import "env" "ext" (func $ext (result externref)))
             (table $t 3 externref)
             (func (export "grow") (param $n i32) (result i32 i32 externref externref)
               (table.grow $t (call $ext) (local.get $n))
               (table.size $t)
               (table.get $t (i32.const 3))
               (table.get $t (i32.sub (table.size $t) (i32.const 1)))))"#,
    );
    let mut linker = myriad_runtime::Linker::new();
    linker.func(
        "env",
        "ext",
        myriad_runtime::FuncType {
            params: vec![],
            results: vec![myriad_runtime::ValType::ExternRef],
        },
        |_, cells| {
            cells[0] = 0xE7;
            myriad_runtime::HostAction::Return
        },
    );
    let n = 4_000_000;
    let expected = Outcome::Finished(vec![
        Val::I32(3),
        Val::I32(3 + n),
        Val::ExternRef(0xE7),
        Val::ExternRef(0xE7),
    ]);
    let region = region_with(1, 0);
    let mut inst = linker.instantiate(&region, &m, None).unwrap();
    inst.call("grow", &[Val::I32(n)]).unwrap();
    let mut yields = 0;
    let end = loop {
        match inst.resume(rdtsc() + ns_to_tsc(20_000)) {
            Outcome::Yielded => yields += 1,
            other => break other,
        }
    };
    assert_eq!(end, expected);
    assert!(yields >= 5, "only {yields} yields: not preempted mid-grow");
    drop(inst);
    let mut inst = linker.instantiate(&region, &m, None).unwrap();
    inst.call("grow", &[Val::I32(n / 100)]).unwrap();
    let mut slices = 0;
    let end = loop {
        slices += 1;
        match inst.resume_fuel(1) {
            Outcome::Yielded => continue,
            other => break other,
        }
    };
    assert_eq!(
        end,
        Outcome::Finished(vec![
            Val::I32(3),
            Val::I32(3 + n / 100),
            Val::ExternRef(0xE7),
            Val::ExternRef(0xE7),
        ])
    );
    assert!(slices >= 10, "{slices} fuel slices");
}

#[test]
fn a_loop_of_small_bulk_ops_still_ends_its_time_slices() {
    // Each memory.init is one 64 KiB chunk (a few µs): no chunk boundary
    // inside it looks at the clock, so the fuel counter must account for
    // its time. Otherwise, once the slow path has learnt the rate of plain
    // code (`spin` first), a grant sized for 100 µs of plain code lasts
    // through thousands of these copies.
    let seg = "\\00".repeat(65536);
    let m = module(&format!(
        r#"(module (memory 2) (data $d "{seg}")
             (func (export "spin") (param $n i32) (local $i i32)
               (loop $l
                 (local.set $i (i32.add (local.get $i) (i32.const 1)))
                 (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))
             (func (export "run") (param $k i32)
               (loop $l
                 (memory.init $d (i32.const 0) (i32.const 0) (i32.const 65536))
                 (local.set $k (i32.sub (local.get $k) (i32.const 1)))
                 (br_if $l (local.get $k)))))"#
    ));
    let region = region_with(1, 2 * 65536);
    let slices = |inst: &mut Instance| {
        let mut yields = 0;
        loop {
            match inst.resume(rdtsc() + ns_to_tsc(100_000)) {
                Outcome::Yielded => yields += 1,
                Outcome::Finished(_) => return yields,
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    let mut inst = Instance::new(&region, &m, "spin", &[Val::I32(20_000_000)]).unwrap();
    slices(&mut inst);
    // 5,000 copies of 64 KiB: tens of milliseconds of memcpy in all.
    inst.call("run", &[Val::I32(5000)]).unwrap();
    let yields = slices(&mut inst);
    assert!(yields >= 20, "only {yields} yields in 5,000 x 64 KiB");
}

#[test]
fn chunked_memory_fill_and_copy_are_preempted_and_behave_like_memset_and_memmove() {
    // 4 pages: a copy or fill of 200,000 bytes spans four 64 KiB chunks.
    let m = module(
        r#"(module (memory (export "mem") 4)
             (func (export "fill") (param i32 i32 i32)
               (memory.fill (local.get 0) (local.get 1) (local.get 2)))
             (func (export "copy") (param i32 i32 i32)
               (memory.copy (local.get 0) (local.get 1) (local.get 2))))"#,
    );
    let region = region_with(1, 4 * 65536);
    let mut inst = Instance::instantiate(&region, &m).unwrap();
    let pattern: Vec<u8> = (0..4 * 65536u32).map(|i| (i * 7 % 251) as u8).collect();
    // Run a call in 1-unit fuel slices (a chunk per slice at most).
    let run = |inst: &mut Instance, export: &str, args: &[Val]| -> u32 {
        inst.call(export, args).unwrap();
        let mut slices = 0;
        loop {
            slices += 1;
            match inst.resume_fuel(1) {
                Outcome::Yielded => continue,
                Outcome::Finished(v) => {
                    assert!(v.is_empty());
                    return slices;
                }
                other => panic!("{export}: {other:?}"),
            }
        }
    };
    for (d, s) in [(1000u32, 0u32), (0, 1000), (0, 70_000), (70_000, 0), (5, 5)] {
        inst.memory_mut().copy_from_slice(&pattern);
        let n = 190_000u32;
        let slices = run(
            &mut inst,
            "copy",
            &[Val::I32(d as i32), Val::I32(s as i32), Val::I32(n as i32)],
        );
        let mut want = pattern.clone();
        want.copy_within(s as usize..(s + n) as usize, d as usize);
        assert!(
            inst.memory() == want.as_slice(),
            "copy {d} <- {s}: not a memmove"
        );
        assert!(slices >= 3, "copy {d} <- {s}: {slices} slices");
    }
    inst.memory_mut().copy_from_slice(&pattern);
    let slices = run(
        &mut inst,
        "fill",
        &[Val::I32(3), Val::I32(0x1AB), Val::I32(200_000)],
    );
    let mut want = pattern.clone();
    want[3..200_003].fill(0xAB);
    assert!(
        inst.memory() == want.as_slice(),
        "fill: not a memset of the low byte"
    );
    assert!(slices >= 3, "fill: {slices} slices");
    // Out of bounds: a trap, nothing written, even for length 0 past the end.
    inst.memory_mut().copy_from_slice(&pattern);
    inst.call(
        "fill",
        &[Val::I32(4 * 65536 - 10), Val::I32(0), Val::I32(11)],
    )
    .unwrap();
    assert_eq!(
        run_plain(&mut inst),
        Outcome::Trapped(TrapKind::HeapOutOfBounds)
    );
    inst.call("copy", &[Val::I32(4 * 65536 + 1), Val::I32(0), Val::I32(0)])
        .unwrap();
    assert_eq!(
        run_plain(&mut inst),
        Outcome::Trapped(TrapKind::HeapOutOfBounds)
    );
    assert!(
        inst.memory() == pattern.as_slice(),
        "a trapping bulk op wrote"
    );
}

fn run_plain(inst: &mut Instance) -> Outcome {
    loop {
        match inst.resume(rdtsc() + ns_to_tsc(1_000_000)) {
            Outcome::Yielded => continue,
            other => return other,
        }
    }
}
