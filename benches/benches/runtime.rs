//! Criterion benchmarks of the hot paths: context switch, guest yield and
//! resume, instantiate, teardown, the fuel check, bulk builtins and host
//! calls.
//!
//! Run: `cargo bench -p myriad-benches` (figures in docs/PERFORMANCE.md).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use myriad_runtime::arch::{init_raw_frame, myriad_switch};
use myriad_runtime::{CompileConfig, Instance, Module, Outcome, Region, RegionConfig, Val};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn module(wat: &str) -> Arc<Module> {
    let wasm = wat::parse_str(wat).expect("bench WAT assembles");
    let cache = myriad_runtime::default_cache_dir();
    Arc::new(Module::compile(&wasm, &CompileConfig::default(), &cache).expect("compiles"))
}

fn region(slots: usize) -> Arc<Region> {
    Arc::new(
        Region::new(RegionConfig {
            slots,
            stack_size: 16 * 1024,
            heap_capacity: 16 * 1024,
            guard_size: 0,
            guard_mode: false,
            heap_reservation: 0,
        })
        .expect("region"),
    )
}

/// Two raw contexts switching back and forth: the cost of `myriad_switch`
/// itself (save callee-saved registers, swap stacks, `pop; jmp`), twice.
///
/// The coroutine's stack is placed 2 KiB away, modulo 4 KiB, from the
/// benchmark loop's own stack. Otherwise the figure depends on where the
/// two stacks happen to fall: when the frames one context pushes and the
/// other pops share their low 12 address bits, the CPU's store-to-load
/// disambiguation stalls on false dependencies (4K aliasing), and builds
/// of identical switch code measured 4 ns or 7 ns depending on the
/// binary's other code. Real instances are spread out by slot colouring.
fn raw_switch(c: &mut Criterion) {
    struct Ctx {
        main_sp: usize,
        co_sp: usize,
    }
    unsafe extern "C" fn coroutine(arg: usize) -> ! {
        let ctx = arg as *mut Ctx;
        loop {
            // SAFETY: the benchmark keeps `ctx` alive while it resumes us.
            unsafe { myriad_switch(&raw mut (*ctx).co_sp, (*ctx).main_sp) };
        }
    }
    let stack = vec![0u128; 4096 + 256]; // 64 KiB + 4 KiB of room to place the top
    let base = stack.as_ptr() as usize;
    let mut ctx = Box::new(Ctx {
        main_sp: 0,
        co_sp: 0,
    });
    let p: *mut Ctx = &mut *ctx;
    let mut placed = false;
    c.bench_function("switch/raw_round_trip", |b| {
        b.iter(|| {
            if !placed {
                // Place the coroutine's stack top 2 KiB (mod 4 KiB) away
                // from this frame, 16-byte aligned, inside `stack`.
                let probe = 0u8;
                let here = black_box(&probe) as *const u8 as usize;
                let top = base + 64 * 1024;
                let top = top + ((here + 2048).wrapping_sub(top) & 4095);
                let top = top & !15;
                // SAFETY: `top` lies within `stack` (at most 4 KiB past its
                // first 64 KiB), 16-byte aligned; the coroutine is not
                // running (it is created here or suspended in its switch,
                // holding nothing).
                unsafe { (*p).co_sp = init_raw_frame(top, coroutine, p as usize) };
                placed = true;
            }
            // SAFETY: p and its stack stay alive for the whole benchmark.
            unsafe { myriad_switch(&raw mut (*p).main_sp, (*p).co_sp) }
        })
    });
    drop(stack);
}

/// Resume a compiled guest whose slice has already ended: it runs to its
/// first loop-header check, the slow path reads the TSC, sees the deadline
/// passed and yields. One full guest round trip, including one TSC read.
fn guest_yield_resume(c: &mut Criterion) {
    let m = module(r#"(module (func (export "run") (loop $l (br $l))))"#);
    let r = region(1);
    let mut inst = Instance::new(&r, &m, "run", &[]).expect("instantiates");
    myriad_runtime::thread_init().expect("thread init");
    c.bench_function("switch/guest_yield_resume", |b| {
        b.iter(|| {
            let o = inst.resume_with_fuel(0, 0);
            debug_assert_eq!(o, Outcome::Yielded);
            black_box(o)
        })
    });
}

const DATA_MODULE: &str = r#"(module
  (memory (export "memory") 16384 16384 (pagesize 1))
  (data (i32.const 0) "a small data segment of sixty-four bytes for the instance heap..")
  (global $g (mut i64) (i64.const 7))
  (func (export "run") (result i64) (global.get $g)))"#;

/// Instantiate into a warm slot (16 KiB heap, 64-byte data segment) and
/// tear down (zero the heap, return the slot), timed separately.
fn instantiate_teardown(c: &mut Criterion) {
    let m = module(DATA_MODULE);
    let r = region(1);
    // Warm the slot: its pages become resident and known.
    for _ in 0..16 {
        drop(Instance::new(&r, &m, "run", &[]).expect("instantiates"));
    }
    c.bench_function("instance/instantiate_warm_16k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let i = Instance::new(&r, &m, "run", &[]).expect("instantiates");
                total += t.elapsed();
                drop(i);
            }
            total
        })
    });
    c.bench_function("instance/teardown_16k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut i = Instance::new(&r, &m, "run", &[]).expect("instantiates");
                // Run it so the guest has really been there.
                let o = i.resume(u64::MAX);
                debug_assert!(matches!(o, Outcome::Finished(_)));
                let t = Instant::now();
                drop(i);
                total += t.elapsed();
            }
            total
        })
    });
}

/// Cost of one fuel check: the same counting loop with one check per
/// iteration (its loop header) and with two (an extra nested loop header);
/// the difference per iteration is one check.
fn fuel_check(c: &mut Criterion) {
    let one = module(
        r#"(module (func (export "run") (param $n i32) (result i32) (local $i i32)
          (loop $l
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
          (local.get $i)))"#,
    );
    let two = module(
        r#"(module (func (export "run") (param $n i32) (result i32) (local $i i32)
          (loop $l
            (loop $extra_check
              (local.set $i (i32.add (local.get $i) (i32.const 1))))
            (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
          (local.get $i)))"#,
    );
    let r = region(1);
    myriad_runtime::thread_init().expect("thread init");
    const N: i32 = 1_000_000;
    let mut g = c.benchmark_group("fuel");
    g.throughput(Throughput::Elements(N as u64));
    for (name, m) in [
        ("one_check_per_iteration", &one),
        ("two_checks_per_iteration", &two),
    ] {
        g.bench_with_input(BenchmarkId::new("loop_1M", name), m, |b, m| {
            b.iter(|| {
                let mut i = Instance::new(&r, m, "run", &[Val::I32(N)]).expect("instantiates");
                // Far deadline: the slow path only refills.
                let o = i.resume(u64::MAX);
                assert_eq!(o, Outcome::Finished(vec![Val::I32(N)]));
            })
        });
    }
    g.finish();
}

/// Bulk builtins on a large table: `table.fill` and `table.copy` of 1M
/// elements (chunked into preemptible steps since ABI 6), run to the end
/// with a far deadline, on an instance that stays warm across iterations.
fn bulk_table(c: &mut Criterion) {
    let m = module(
        r#"(module (table $t 1000000 externref)
          (func (export "fill") (param i32)
            (table.fill $t (i32.const 0) (ref.null extern) (local.get 0)))
          (func (export "copy") (param i32)
            (table.copy $t $t (i32.const 0) (i32.const 1) (local.get 0))))"#,
    );
    let r = region(1);
    myriad_runtime::thread_init().expect("thread init");
    const N: i32 = 999_999;
    let mut inst = Instance::new(&r, &m, "fill", &[Val::I32(N)]).expect("instantiates");
    assert_eq!(inst.resume(u64::MAX), Outcome::Finished(vec![]));
    let mut g = c.benchmark_group("bulk");
    g.throughput(Throughput::Elements(N as u64));
    for op in ["fill", "copy"] {
        g.bench_function(BenchmarkId::new("table_1M", op), |b| {
            b.iter(|| {
                inst.call(op, &[Val::I32(N)]).expect("arms");
                let o = inst.resume(u64::MAX);
                assert_eq!(o, Outcome::Finished(vec![]));
            })
        });
    }
    g.finish();
}

/// A million calls of a host function that does nothing, from a guest
/// loop, run to the end with a far deadline: the cost of the host-call
/// path (the import stub, the dispatch, the time charge and the deadline
/// check after the call).
fn host_call(c: &mut Criterion) {
    use myriad_runtime::{FuncType, HostAction, Linker, ValType};
    let m = module(
        r#"(module (import "env" "nop" (func $nop (param i32) (result i32)))
          (func (export "run") (param $n i32) (result i32) (local $x i32)
            (loop $l
              (local.set $x (call $nop (local.get $x)))
              (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
            (local.get $x)))"#,
    );
    let r = region(1);
    myriad_runtime::thread_init().expect("thread init");
    let mut linker = Linker::new();
    linker.func(
        "env",
        "nop",
        FuncType {
            params: vec![ValType::I32],
            results: vec![ValType::I32],
        },
        |_, cells| {
            cells[0] = cells[0].wrapping_add(1);
            HostAction::Return
        },
    );
    const N: i32 = 1_000_000;
    let mut inst = linker.instantiate(&r, &m, None).expect("instantiates");
    let mut g = c.benchmark_group("host");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("call_1M", |b| {
        b.iter(|| {
            inst.call("run", &[Val::I32(N)]).expect("arms");
            let o = inst.resume(u64::MAX);
            assert!(matches!(o, Outcome::Finished(_)), "{o:?}");
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = raw_switch, guest_yield_resume, instantiate_teardown, fuel_check, bulk_table, host_call
}
criterion_main!(benches);
