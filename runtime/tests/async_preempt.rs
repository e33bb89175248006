//! Asynchronous preemption (`signals`, "Asynchronous preemption"): a time
//! slice of at least the threshold ends by a timer's signal that stops the
//! guest at whatever instruction it is running, saves its whole register
//! state and resumes it there later; its fuel checks never fire.
//!
//! The threshold is process-wide; this binary sets it to 20 µs so that a
//! short computation is preempted thousands of times at random
//! instructions, and checks that it computes what it computes alone, spends
//! the same fuel to the unit, and keeps its budget, with slices of every
//! kind mixed.

mod compiled;

use compiled::{compile_wat, region_with, thread_cpu_ns};
use myriad_codegen::CompileConfig;
use myriad_runtime::fuel::ns_to_tsc;
use myriad_runtime::{rdtsc, Instance, Limit, Module, Outcome, Val};
use std::sync::Arc;
use std::time::Duration;

/// `mix(n)`: a loop that keeps integer and floating-point values live in
/// registers across its iterations, compares, and loads and stores memory;
/// `fib(n)`: recursive calls, so signals land in prologues and epilogues
/// too; `both(n)`: both.
const WAT: &str = r#"(module
  (memory 1)
  (func $mix (export "mix") (param $n i64) (result i64)
    (local $i i64) (local $a i64) (local $b i64) (local $c i64)
    (local $x f64) (local $y f64) (local $z f32)
    (loop $l
      (local.set $a (i64.add (i64.mul (local.get $a) (i64.const 6364136223846793005))
                             (local.get $i)))
      (local.set $b (i64.xor (local.get $b) (i64.shr_u (local.get $a) (i64.const 17))))
      (local.set $c (select (local.get $b) (local.get $c)
                            (i64.lt_s (local.get $a) (local.get $b))))
      (local.set $x (f64.add (local.get $x)
                             (f64.mul (f64.convert_i64_u (i64.and (local.get $a) (i64.const 0xffff)))
                                      (f64.const 0.5))))
      (local.set $y (f64.add (f64.mul (local.get $y) (f64.const 0.999)) (local.get $x)))
      (local.set $z (f32.add (local.get $z) (f32.demote_f64 (local.get $y))))
      (i64.store (i32.wrap_i64 (i64.and (local.get $i) (i64.const 0xff8))) (local.get $a))
      (local.set $b (i64.add (local.get $b)
        (i64.load (i32.wrap_i64 (i64.and (i64.mul (local.get $i) (i64.const 7))
                                         (i64.const 0xff8))))))
      (br_if $l (i64.lt_u (local.tee $i (i64.add (local.get $i) (i64.const 1)))
                          (local.get $n))))
    (i64.xor (i64.xor (local.get $a) (local.get $b))
      (i64.xor (i64.xor (local.get $c) (i64.trunc_sat_f64_s (local.get $x)))
        (i64.xor (i64.reinterpret_f64 (local.get $y))
                 (i64.extend_i32_u (i32.reinterpret_f32 (local.get $z)))))))
  (func $fib (export "fib") (param $n i64) (result i64)
    (if (result i64) (i64.lt_u (local.get $n) (i64.const 2))
      (then (local.get $n))
      (else (i64.add (call $fib (i64.sub (local.get $n) (i64.const 1)))
                     (call $fib (i64.sub (local.get $n) (i64.const 2)))))))
  (func (export "both") (param $n i64) (result i64)
    (local $i i64) (local $acc i64)
    (loop $l
      (local.set $acc (i64.add (i64.rotl (local.get $acc) (i64.const 5))
        (i64.add (call $fib (i64.const 15)) (call $mix (i64.const 200)))))
      (br_if $l (i64.lt_u (local.tee $i (i64.add (local.get $i) (i64.const 1)))
                          (local.get $n))))
    (local.get $acc)))"#;

const THRESHOLD: Duration = Duration::from_micros(20);

/// The tests of this binary run one at a time: several check how long a
/// slice held its thread in wall time, which another test spinning on the
/// same core (of two) would stretch.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn setup() -> (Arc<Module>, Arc<myriad_runtime::Region>) {
    myriad_runtime::fuel::set_async_preempt_min(Some(THRESHOLD));
    (
        compile_wat(WAT, &CompileConfig::default()),
        region_with(1, 64 * 1024),
    )
}

/// Run `export(arg)` to its end with `next(slice index, instance)` choosing
/// each slice; returns the outcome and the fuel it used.
fn drive(
    m: &Arc<Module>,
    region: &Arc<myriad_runtime::Region>,
    export: &str,
    arg: i64,
    mut next: impl FnMut(usize, &mut Instance) -> Outcome,
) -> (Outcome, u64, Instance) {
    let mut inst = Instance::new(region, m, export, &[Val::I64(arg)]).unwrap();
    let mut k = 0;
    let outcome = loop {
        match next(k, &mut inst) {
            Outcome::Yielded => k += 1,
            other => break other,
        }
    };
    let used = inst.fuel_used();
    (outcome, used, inst)
}

fn alone(
    m: &Arc<Module>,
    region: &Arc<myriad_runtime::Region>,
    export: &str,
    arg: i64,
) -> (Outcome, u64) {
    let (o, used, inst) = drive(m, region, export, arg, |_, i| i.resume_fuel(1 << 40));
    assert_eq!(inst.async_preempts(), 0);
    (o, used)
}

/// A time slice `us` microseconds long from now.
fn slice(inst: &mut Instance, us: u64) -> Outcome {
    inst.resume(rdtsc() + ns_to_tsc(us * 1000))
}

#[test]
fn preempted_anywhere_a_guest_computes_and_spends_what_it_does_alone() {
    let _serial = serial();
    let (m, region) = setup();
    for (export, arg) in [("mix", 20_000_000), ("fib", 32), ("both", 3_000)] {
        let expect = alone(&m, &region, export, arg);
        assert!(matches!(expect.0, Outcome::Finished(_)));
        let (o, used, inst) = drive(&m, &region, export, arg, |_, i| slice(i, 40));
        eprintln!(
            "{export}: {} asynchronous preemptions, {} slow paths",
            inst.async_preempts(),
            inst.slow_path_calls()
        );
        assert!(inst.async_preempts() > 100, "{export}: too few preemptions");
        assert_eq!((o, used), expect, "{export}");
    }
}

#[test]
fn asynchronous_slices_leave_the_fuel_checks_untaken() {
    let _serial = serial();
    let (m, region) = setup();
    let (_, _, inst) = drive(&m, &region, "mix", 3_000_000, |k, i| {
        if k == 0 {
            // The first slice of a thread sets up its timers.
            i.resume_fuel(1000)
        } else {
            slice(i, 200)
        }
    });
    assert!(inst.async_preempts() > 10);
    // One slow path: the end of the first (fuel) slice.
    assert_eq!(inst.slow_path_calls(), 1);
}

#[test]
fn slices_of_every_kind_mixed_count_every_unit_once() {
    let _serial = serial();
    // An asynchronous slice may stop the guest between its copy of the
    // counter and the copy's write back; a fuel slice or a fuel-paced
    // time slice after it must still count exactly what was spent.
    let (m, region) = setup();
    for (export, arg) in [("mix", 20_000_000), ("both", 3_000)] {
        let expect = alone(&m, &region, export, arg);
        let mut fuel_slices = Vec::new();
        let (o, used, inst) = drive(&m, &region, export, arg, |k, i| match k % 3 {
            0 => slice(i, 40),
            1 => {
                let before = i.fuel_used();
                let o = i.resume_fuel(5_000);
                fuel_slices.push(i.fuel_used() - before);
                o
            }
            _ => slice(i, 10),
        });
        assert!(inst.async_preempts() > 30, "{export}");
        assert_eq!((o, used), expect, "{export}");
        // A fuel slice runs its 5,000 units (and a check's few more),
        // except when it resumed a thread whose write back erased the
        // mark of its pending counter: then the next tick marks it again.
        fuel_slices.sort_unstable();
        let median = fuel_slices[fuel_slices.len() / 2];
        assert!(
            (5_000..5_100).contains(&median),
            "{export}: median {median}"
        );
    }
}

#[test]
fn a_fuel_budget_ends_an_asynchronous_slice_where_it_ends_a_fuel_slice() {
    let _serial = serial();
    let (m, region) = setup();
    let limit = 1_000_000;
    let mut ends = Vec::new();
    for asynchronous in [false, true] {
        let (o, used, inst) = drive(&m, &region, "mix", 1 << 40, |k, i| {
            if k == 0 {
                i.set_fuel_limit(limit);
            }
            if asynchronous {
                slice(i, 40)
            } else {
                i.resume_fuel(1 << 40)
            }
        });
        assert_eq!(o, Outcome::Limited(Limit::Fuel));
        assert!(used >= limit && used < limit + 100, "used {used}");
        if asynchronous {
            assert!(inst.async_preempts() > 0);
        }
        ends.push(used);
    }
    assert_eq!(ends[0], ends[1]);
}

#[test]
fn a_cancel_ends_a_long_asynchronous_slice() {
    let _serial = serial();
    let (m, region) = setup();
    let mut inst = Instance::new(&region, &m, "mix", &[Val::I64(1 << 40)]).unwrap();
    // Set up this thread's timers.
    assert_eq!(inst.resume_fuel(1000), Outcome::Yielded);
    let flag: &'static std::sync::atomic::AtomicU32 =
        // SAFETY: the instance outlives the thread below, joined before it
        // is dropped.
        unsafe { &*(inst.cancel_flag() as *const _) };
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        flag.store(1, std::sync::atomic::Ordering::Relaxed);
    });
    let cpu = thread_cpu_ns();
    // A 10 s slice: only the cancel can end it soon.
    assert_eq!(slice(&mut inst, 10_000_000), Outcome::Yielded);
    let held = thread_cpu_ns() - cpu;
    canceller.join().unwrap();
    assert!(inst.async_preempts() > 0);
    // The cancel is seen at the deadline kick's next tick (1 ms of the
    // thread's CPU time, evaluated at the kernel's tick).
    assert!(held < 1_000_000_000, "held the thread {held} ns");
}

#[test]
fn a_preemption_at_the_deepest_frame_stays_within_the_reserve() {
    let _serial = serial();
    // The signal stops the guest wherever it is, so the routine that saves
    // its state writes below the interrupted stack pointer; at the deepest
    // frame that is below the stack limit, in the reserve. Spin there,
    // preempted again and again, with the reserve filled with a canary,
    // and measure the deepest byte written.
    use myriad_runtime::instance::{STACK_RESERVE, TRAMPOLINE_FRAME_MAX};
    myriad_runtime::fuel::set_async_preempt_min(Some(THRESHOLD));
    let region = Arc::new(
        myriad_runtime::Region::new(myriad_runtime::RegionConfig {
            slots: 1,
            stack_size: 4096,
            heap_capacity: 0,
            guard_size: 0,
            guard_mode: false,
            heap_reservation: 0,
        })
        .expect("region"),
    );
    let m = compile_wat(
        r#"(module
          (func $down (export "run") (param $n i64) (param $spin i64) (result i64)
            (if (result i64) (i64.eqz (local.get $n))
              (then
                (loop $l
                  (br_if $l (i64.ne (local.tee $spin (i64.sub (local.get $spin) (i64.const 1)))
                                    (i64.const 0))))
                (local.get $spin))
              (else (i64.add (call $down (i64.sub (local.get $n) (i64.const 1)) (local.get $spin))
                             (i64.const 1))))))"#,
        &CompileConfig::default(),
    );
    let run = |depth: i64, spin: i64, us: u64| {
        let mut inst =
            Instance::new(&region, &m, "run", &[Val::I64(depth), Val::I64(spin)]).unwrap();
        let mut k = 0;
        let end = loop {
            // The first slice of a thread sets up its timers.
            let o = if k == 0 {
                inst.resume_fuel(1000)
            } else {
                slice(&mut inst, us)
            };
            k += 1;
            if o != Outcome::Yielded {
                break o;
            }
        };
        (end, inst.async_preempts())
    };
    // The deepest depth that fits.
    let mut depth = 1;
    while run(depth, 1, 40).0 != Outcome::Trapped(myriad_runtime::TrapKind::StackOverflow) {
        depth += 1;
    }
    let depth = depth - 1;
    let base = region.slot_base(0) as usize;
    let limit = base + STACK_RESERVE;
    // SAFETY: the reserve of our only slot, below its stack limit; no
    // instance runs now.
    unsafe { std::ptr::write_bytes(base as *mut u8, 0xC5, STACK_RESERVE) };
    let (end, preempts) = run(depth, 20_000_000, 25);
    assert_eq!(end, Outcome::Finished(vec![Val::I64(depth)]));
    assert!(preempts > 100, "{preempts} preemptions");
    // SAFETY: as above; the instance is done.
    let reserve = unsafe { std::slice::from_raw_parts(base as *const u8, STACK_RESERVE) };
    let deepest = reserve
        .iter()
        .position(|b| *b != 0xC5)
        .map_or(0, |low| limit - (base + low));
    eprintln!(
        "depth {depth}: deepest write below the limit {deepest} bytes, {preempts} preemptions"
    );
    assert!(
        deepest > 0 && deepest <= TRAMPOLINE_FRAME_MAX,
        "wrote {deepest} bytes below the stack limit; the bound is {TRAMPOLINE_FRAME_MAX}"
    );
}

/// Wall time of each slice of `inst` until it ends, `us` microseconds
/// each (after a first fuel slice that sets up the thread's timers).
fn slice_lengths(inst: &mut Instance, us: u64, slices: usize) -> Vec<u64> {
    assert_eq!(inst.resume_fuel(1000), Outcome::Yielded);
    let mut lengths = Vec::new();
    for _ in 0..slices {
        let t = std::time::Instant::now();
        assert_eq!(slice(inst, us), Outcome::Yielded);
        lengths.push(t.elapsed().as_micros() as u64);
    }
    lengths.sort_unstable();
    lengths
}

#[test]
fn an_asynchronous_slice_ends_at_its_deadline() {
    let _serial = serial();
    let (m, region) = setup();
    let mut inst = Instance::new(&region, &m, "mix", &[Val::I64(1 << 40)]).unwrap();
    let lengths = slice_lengths(&mut inst, 2_000, 50);
    let median = lengths[lengths.len() / 2];
    eprintln!(
        "2 ms slices: median {median} us, longest {} us",
        lengths[lengths.len() - 1]
    );
    assert_eq!(inst.async_preempts(), 50);
    assert!((1_990..3_000).contains(&median), "median slice {median} us");
}

#[test]
fn a_guest_that_lives_in_host_calls_ends_its_asynchronous_slice_too() {
    let _serial = serial();
    // The signal cannot stop it in the host function; the host call's
    // time charge ends the slice at the next check after the deadline.
    myriad_runtime::fuel::set_async_preempt_min(Some(THRESHOLD));
    let region = region_with(1, 0);
    let m = compile_wat(
        r#"(module
          (import "env" "busy" (func $busy (param i64) (result i64)))
          (func (export "run") (param $n i64) (result i64) (local $acc i64)
            (loop $l
              (local.set $acc (i64.add (local.get $acc) (call $busy (local.get $n))))
              (br $l))
            (local.get $acc)))"#,
        &CompileConfig::default(),
    );
    let mut linker = myriad_runtime::Linker::new();
    linker.func(
        "env",
        "busy",
        myriad_codegen::abi::FuncType {
            params: vec![myriad_codegen::abi::ValType::I64],
            results: vec![myriad_codegen::abi::ValType::I64],
        },
        |_, cells: &mut [u64]| {
            // 20 µs of host work per call.
            let t = std::time::Instant::now();
            while t.elapsed() < Duration::from_micros(20) {
                std::hint::spin_loop();
            }
            cells[0] = cells[0].wrapping_add(1);
            myriad_runtime::HostAction::Return
        },
    );
    let mut inst = linker.instantiate(&region, &m, None).unwrap();
    inst.call("run", &[Val::I64(7)]).unwrap();
    let lengths = slice_lengths(&mut inst, 500, 40);
    let median = lengths[lengths.len() / 2];
    eprintln!("500 us slices in host calls: median {median} us");
    assert!((490..1_000).contains(&median), "median slice {median} us");
}

#[test]
fn slices_that_end_early_leave_the_next_one_its_deadline() {
    let _serial = serial();
    // A slice that ends early (here: a host call yields at once) leaves
    // its timer armed for its deadline; the next slices do not arm it
    // again (a system call each) while it is pending, and the one that
    // runs when it fires arms it for its own deadline. A spinning slice
    // after 200 early ends must still end at its deadline.
    myriad_runtime::fuel::set_async_preempt_min(Some(THRESHOLD));
    let region = region_with(1, 0);
    let m = compile_wat(
        r#"(module
          (import "env" "nap" (func $nap (param i64) (result i64)))
          (func (export "run") (result i64) (local $i i64) (local $acc i64)
            (loop $a
              (local.set $acc (i64.add (local.get $acc) (call $nap (local.get $i))))
              (br_if $a (i64.lt_u (local.tee $i (i64.add (local.get $i) (i64.const 1)))
                                  (i64.const 200))))
            (loop $b
              (local.set $acc (i64.add (local.get $acc) (i64.const 1)))
              (br $b))
            (local.get $acc)))"#,
        &CompileConfig::default(),
    );
    let mut linker = myriad_runtime::Linker::new();
    linker.func(
        "env",
        "nap",
        myriad_codegen::abi::FuncType {
            params: vec![myriad_codegen::abi::ValType::I64],
            results: vec![myriad_codegen::abi::ValType::I64],
        },
        |_, _cells: &mut [u64]| myriad_runtime::HostAction::Yield,
    );
    let mut inst = linker.instantiate(&region, &m, None).unwrap();
    inst.call("run", &[]).unwrap();
    assert_eq!(inst.resume_fuel(1), Outcome::Yielded);
    let t = std::time::Instant::now();
    for _ in 0..200 {
        assert_eq!(slice(&mut inst, 3_000), Outcome::Yielded);
    }
    let early = t.elapsed();
    let lengths = slice_lengths(&mut inst, 3_000, 20);
    let median = lengths[lengths.len() / 2];
    eprintln!("200 early ends in {early:?}; then 3 ms slices: median {median} us");
    assert!(inst.async_preempts() >= 15);
    assert!((2_990..4_000).contains(&median), "median slice {median} us");
}

#[test]
fn bulk_work_in_an_asynchronous_slice_counts_against_its_counter_too() {
    // Review 15: a counter holding the budget left at the slice's start,
    // with bulk builtins charging the budget but not the counter, let a
    // guest spend 3.8 M units on a budget of 2 M. Fourteen 1 MiB
    // `memory.fill`s (1.83 M units) and then a spin must end where they
    // end in fuel slices.
    let _serial = serial();
    myriad_runtime::fuel::set_async_preempt_min(Some(THRESHOLD));
    let m = compile_wat(
        r#"(module
          (memory 16)
          (func (export "run") (param $fills i64) (result i64)
            (local $i i64) (local $n i64)
            (block $d (loop $l
              (br_if $d (i64.ge_u (local.get $i) (local.get $fills)))
              (memory.fill (i32.const 0) (i32.const 0) (i32.const 1048576))
              (local.set $i (i64.add (local.get $i) (i64.const 1)))
              (br $l)))
            (loop $spin
              (local.set $n (i64.add (local.get $n) (i64.const 1)))
              (i64.store (i32.const 0) (local.get $n))
              (br $spin))
            (local.get $n)))"#,
        &CompileConfig::default(),
    );
    let region = region_with(1, 16 << 16);
    let limit = 2_000_000u64;
    let mut ends = Vec::new();
    for asynchronous in [false, true] {
        let (o, used, inst) = drive(&m, &region, "run", 14, |k, i| {
            if k == 0 {
                i.set_fuel_limit(limit);
                // (Sets up the thread's timers too.)
                return i.resume_fuel(1);
            }
            if asynchronous {
                slice(i, 200_000)
            } else {
                i.resume_fuel(1 << 40)
            }
        });
        assert_eq!(o, Outcome::Limited(Limit::Fuel));
        let spins = u64::from_le_bytes(inst.memory()[0..8].try_into().unwrap());
        eprintln!("asynchronous {asynchronous}: fuel used {used}, {spins} spins");
        ends.push((used, spins));
    }
    assert_eq!(ends[0], ends[1]);
    assert!(ends[0].0 < limit + 100);
}

#[test]
fn a_host_function_blocked_past_the_deadline_is_not_interrupted() {
    // Review 15: retrying the signal on the wall clock while the thread
    // was in a host call interrupted a blocked system call 1,258 times in
    // 50 ms. Host calls end a due slice themselves on return.
    let _serial = serial();
    myriad_runtime::fuel::set_async_preempt_min(Some(THRESHOLD));
    static EINTRS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let region = region_with(1, 0);
    let m = compile_wat(
        r#"(module
          (import "env" "wait" (func $wait))
          (func (export "run") (local $i i64)
            (call $wait)
            (loop $l (local.set $i (i64.add (local.get $i) (i64.const 1))) (br $l))))"#,
        &CompileConfig::default(),
    );
    let mut linker = myriad_runtime::Linker::new();
    linker.func(
        "env",
        "wait",
        myriad_codegen::abi::FuncType {
            params: vec![],
            results: vec![],
        },
        |_, _: &mut [u64]| {
            let end = std::time::Instant::now() + Duration::from_millis(30);
            loop {
                let left = end.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                let ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: left.as_nanos() as libc::c_long,
                };
                let mut rem = ts;
                // SAFETY: valid timespecs for the call.
                if unsafe { libc::nanosleep(&ts, &mut rem) } != 0 {
                    EINTRS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            myriad_runtime::HostAction::Return
        },
    );
    let mut inst = linker.instantiate(&region, &m, None).unwrap();
    inst.call("run", &[]).unwrap();
    assert_eq!(inst.resume_fuel(1), Outcome::Yielded);
    let t = std::time::Instant::now();
    // A 1 ms slice that blocks for 30 ms in its host call, then spins.
    assert_eq!(slice(&mut inst, 1_000), Outcome::Yielded);
    let took = t.elapsed();
    eprintln!("1 ms slice blocked 30 ms: ended after {took:?}");
    assert_eq!(EINTRS.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert!(took < Duration::from_millis(40), "{took:?}");
}

#[test]
fn a_nested_resume_leaves_the_outer_slice_its_deadline() {
    // Review 15: a host function that resumed another instance armed the
    // thread's one preemption timer for the inner slice's deadline, and
    // the outer slice ran on to the CPU tick (2.5-6.7 ms for 1 ms).
    let _serial = serial();
    myriad_runtime::fuel::set_async_preempt_min(Some(THRESHOLD));
    static INNER: std::sync::Mutex<Option<Instance>> = std::sync::Mutex::new(None);
    let region = region_with(2, 0);
    let inner = compile_wat(r#"(module (func (export "f")))"#, &CompileConfig::default());
    let outer = compile_wat(
        r#"(module
          (import "env" "nested" (func $nested))
          (func (export "run") (local $i i64)
            (call $nested)
            (loop $l (local.set $i (i64.add (local.get $i) (i64.const 1))) (br $l))))"#,
        &CompileConfig::default(),
    );
    let mut linker = myriad_runtime::Linker::new();
    linker.func(
        "env",
        "nested",
        myriad_codegen::abi::FuncType {
            params: vec![],
            results: vec![],
        },
        |_, _: &mut [u64]| {
            let mut g = INNER.lock().unwrap();
            let b = g.as_mut().unwrap();
            // A 200 ms slice of the inner instance, which finishes at once.
            assert!(matches!(
                b.resume(rdtsc() + ns_to_tsc(200_000_000)),
                Outcome::Finished(_)
            ));
            myriad_runtime::HostAction::Return
        },
    );
    for _ in 0..5 {
        *INNER.lock().unwrap() = Some(Instance::new(&region, &inner, "f", &[]).unwrap());
        let mut a = linker.instantiate(&region, &outer, None).unwrap();
        a.call("run", &[]).unwrap();
        assert_eq!(a.resume_fuel(1), Outcome::Yielded);
        let t = std::time::Instant::now();
        assert_eq!(slice(&mut a, 1_000), Outcome::Yielded);
        let took = t.elapsed();
        eprintln!("outer 1 ms slice around a nested 200 ms one: {took:?}");
        assert!(took < Duration::from_micros(1_900), "{took:?}");
        drop(a);
        *INNER.lock().unwrap() = None;
    }
}
