//! Instances over hand-made code: run to completion, preemption, host-stack
//! trampolines, traps, memory.grow, teardown and slot reuse.

mod common;

use common::*;
use myriad_runtime::fuel::{ns_to_tsc, rdtsc};
use myriad_runtime::{Instance, InstantiateError, Outcome, Region, RegionConfig, TrapKind, Val};
use std::sync::Arc;

const FAR: u64 = u64::MAX / 2;

#[test]
fn add_finishes_with_result() {
    let region = test_region(4);
    let m = test_module();
    let mut i = Instance::new(&region, &m, "add", &[Val::I64(40), Val::I64(2)]).unwrap();
    assert_eq!(i.resume(FAR), Outcome::Finished(vec![Val::I64(42)]));
    // Finished is sticky and does not rerun the guest.
    assert_eq!(i.resume(FAR), Outcome::Finished(vec![Val::I64(42)]));
}

#[test]
fn instantiate_errors() {
    let region = test_region(1);
    let m = test_module();
    assert_eq!(
        Instance::new(&region, &m, "nope", &[]).unwrap_err(),
        InstantiateError::NoSuchExport("nope".into())
    );
    assert!(matches!(
        Instance::new(&region, &m, "add", &[Val::I64(1)]).unwrap_err(),
        InstantiateError::ArgumentCount {
            expected: 2,
            given: 1,
            ..
        }
    ));
    assert!(matches!(
        Instance::new(&region, &m, "add", &[Val::I64(1), Val::I32(1)]).unwrap_err(),
        InstantiateError::ArgumentType { index: 1, .. }
    ));
    let _a = Instance::new(&region, &m, "add", &[Val::I64(1), Val::I64(1)]).unwrap();
    assert_eq!(
        Instance::new(&region, &m, "add", &[Val::I64(1), Val::I64(1)]).unwrap_err(),
        InstantiateError::RegionFull
    );
    let small = Arc::new(
        Region::new(RegionConfig {
            slots: 1,
            stack_size: 16384,
            heap_capacity: 8192,
            guard_size: 0,
            guard_mode: false,
            heap_reservation: 0,
        })
        .unwrap(),
    );
    assert!(matches!(
        Instance::new(&small, &m, "add", &[Val::I64(1), Val::I64(1)]).unwrap_err(),
        InstantiateError::MemoryTooLarge {
            needed: 16384,
            capacity: 8192
        }
    ));
}

#[test]
fn spin_is_preempted_then_finishes() {
    let region = test_region(2);
    let m = test_module();
    let n = 200_000u64;
    let mut i = Instance::new(&region, &m, "spin", &[Val::I64(n as i64)]).unwrap();
    let quantum = ns_to_tsc(2_000);
    let mut slices = 0;
    loop {
        let d = rdtsc() + quantum;
        match i.resume(d) {
            Outcome::Yielded => {
                slices += 1;
                assert!(i.yield_tsc() + myriad_runtime::fuel::EARLY_YIELD_CYCLES >= d);
            }
            Outcome::Finished(v) => {
                assert_eq!(v, vec![Val::I64(n as i64)]);
                break;
            }
            o => panic!("unexpected {o:?}"),
        }
    }
    assert!(slices > 1, "never preempted");
}

#[test]
fn infinite_loop_yields_on_past_deadline_and_is_cancelled_by_drop() {
    let region = test_region(1);
    let m = test_module();
    let mut i = Instance::new(&region, &m, "spin", &[Val::I64(i64::MAX)]).unwrap();
    for _ in 0..10 {
        assert_eq!(i.resume(0), Outcome::Yielded);
    }
    assert_eq!(i.resume(rdtsc() + ns_to_tsc(5_000)), Outcome::Yielded);
    drop(i);
    assert_eq!(region.free_slots(), 1);
    // request_cancel makes a far deadline yield at the next check.
    let mut i = Instance::new(&region, &m, "spin", &[Val::I64(i64::MAX)]).unwrap();
    i.request_cancel();
    assert_eq!(i.resume(FAR), Outcome::Yielded);
}

#[test]
fn host_calls_run_on_the_worker_stack() {
    let region = test_region(1);
    let m = test_module();
    let mut i = Instance::new(&region, &m, "host_sp", &[]).unwrap();
    let Outcome::Finished(v) = i.resume(FAR) else {
        panic!()
    };
    let (Val::I64(host), Val::I64(guest)) = (v[0], v[1]) else {
        panic!()
    };
    let (base, len) = region.mapping();
    let in_region = |a: i64| (a as usize) >= base && (a as usize) < base + len;
    assert!(
        in_region(guest),
        "guest sp {guest:#x} should be on the instance stack"
    );
    assert!(
        !in_region(host),
        "host call sp {host:#x} must not be on the instance stack"
    );
    assert_eq!(host % 16, 0, "host stack misaligned at call");
    let here = rsp();
    assert!(
        (host as usize) < here && here - (host as usize) < 1 << 20,
        "host call not near this thread's stack"
    );
}

#[test]
fn traps_map_to_kinds_while_another_instance_lives() {
    let region = test_region(4);
    let m = test_module();
    let n = 300_000u64;
    let mut other = Instance::new(&region, &m, "spin", &[Val::I64(n as i64)]).unwrap();
    assert_eq!(other.resume(rdtsc() + ns_to_tsc(1000)), Outcome::Yielded);
    for (export, kind) in [
        ("ud2", TrapKind::Unreachable),
        ("segv", TrapKind::HeapOutOfBounds),
        ("fpe", TrapKind::IntegerDivisionByZero),
    ] {
        let mut t = Instance::new(&region, &m, export, &[]).unwrap();
        assert_eq!(t.resume(FAR), Outcome::Trapped(kind), "{export}");
        assert_eq!(t.resume(FAR), Outcome::Trapped(kind), "{export} sticky");
        assert_eq!(other.resume(rdtsc() + ns_to_tsc(1000)), Outcome::Yielded);
    }
    loop {
        match other.resume(rdtsc() + ns_to_tsc(50_000)) {
            Outcome::Yielded => continue,
            o => {
                assert_eq!(o, Outcome::Finished(vec![Val::I64(n as i64)]));
                break;
            }
        }
    }
}

#[test]
fn memory_grow_within_max() {
    let region = test_region(1);
    let m = test_module();
    let mut i = Instance::new(&region, &m, "grow", &[Val::I64(3)]).unwrap();
    assert_eq!(
        i.resume(FAR),
        Outcome::Finished(vec![Val::I64(4), Val::I64(7 * 4096)])
    );
    drop(i);
    let mut i = Instance::new(&region, &m, "grow", &[Val::I64(5)]).unwrap();
    assert_eq!(
        i.resume(FAR),
        Outcome::Finished(vec![Val::I64(-1), Val::I64(4 * 4096)])
    );
}

fn resident(p: *const u8, pages: usize) -> Vec<bool> {
    let mut v = vec![0u8; pages];
    // SAFETY: p is page aligned and the range is mapped (our region).
    let rc = unsafe { libc::mincore(p as *mut _, pages * 4096, v.as_mut_ptr()) };
    assert_eq!(rc, 0);
    v.iter().map(|b| b & 1 != 0).collect()
}

#[test]
fn teardown_zeroes_dirty_pages_without_touching_others() {
    let region = test_region(1);
    let m = test_module();
    let heap = region.heap_base(0);
    assert_eq!(resident(heap, 4), vec![false, false, false, false]);
    // Warm the stack/vmctx page with a guest that leaves the heap alone.
    let mut w = Instance::new(&region, &m, "add", &[Val::I64(1), Val::I64(1)]).unwrap();
    assert_eq!(w.resume(FAR), Outcome::Finished(vec![Val::I64(2)]));
    drop(w);
    assert_eq!(private_pages(heap, 4), vec![false, false, false, false]);
    for off in [10i64, 2 * 4096 + 5] {
        let mut i = Instance::new(&region, &m, "poke", &[Val::I64(off), Val::I64(0xab)]).unwrap();
        assert_eq!(i.slot(), 0);
        assert!(matches!(i.resume(FAR), Outcome::Finished(_)));
        assert_eq!(i.memory()[off as usize], 0xab);
    }
    // Dirtied pages 0 and 2 hold RAM of their own (kept warm); zeroing 1
    // and 3 allocated nothing (scanning them maps at most the shared zero
    // page). Checked per page through /proc/self/pagemap: the mapping's
    // RSS is not usable, because the kernel may merge this region's VMA
    // with a neighbouring one that another test thread is using.
    assert_eq!(private_pages(heap, 4), vec![true, false, true, false]);
    let i = Instance::new(&region, &m, "poke", &[Val::I64(0), Val::I64(0)]).unwrap();
    assert!(i.memory().iter().all(|b| *b == 0), "heap not zeroed");
    drop(i);
    // Teardown after a guest that only read page 1 must not allocate it.
    for _ in 0..100 {
        let i = Instance::new(&region, &m, "poke", &[Val::I64(0), Val::I64(0)]).unwrap();
        assert_eq!(i.memory()[4096 + 7], 0);
        drop(i);
    }
    assert_eq!(
        private_pages(heap, 4),
        vec![true, false, true, false],
        "teardown allocated read-only pages"
    );
}

#[test]
fn thousands_of_cycles_reuse_slots() {
    let region = test_region(8);
    let m = test_module();
    let t0 = std::time::Instant::now();
    for k in 0..5000i64 {
        let mut i = Instance::new(&region, &m, "add", &[Val::I64(k), Val::I64(1)]).unwrap();
        assert_eq!(i.resume(FAR), Outcome::Finished(vec![Val::I64(k + 1)]));
    }
    eprintln!("5000 instantiate+run+teardown: {:?}", t0.elapsed());
    assert_eq!(region.free_slots(), 8);
    let maps_before = region_mappings(&region);
    let all: Vec<_> = (0..8)
        .map(|k| Instance::new(&region, &m, "add", &[Val::I64(k), Val::I64(1)]).unwrap())
        .collect();
    assert_eq!(region.free_slots(), 0);
    assert_eq!(region_mappings(&region), maps_before);
    // The leading guard page and the slots.
    assert_eq!(maps_before, 2);
    drop(all);
    assert_eq!(region.free_slots(), 8);
}

#[test]
fn instances_move_between_threads() {
    let region = test_region(2);
    let m = test_module();
    let mut i = Instance::new(&region, &m, "spin", &[Val::I64(100_000)]).unwrap();
    assert_eq!(i.resume(0), Outcome::Yielded);
    let out = std::thread::spawn(move || loop {
        match i.resume(rdtsc() + ns_to_tsc(10_000)) {
            Outcome::Yielded => continue,
            o => break o,
        }
    })
    .join()
    .unwrap();
    assert_eq!(out, Outcome::Finished(vec![Val::I64(100_000)]));
}

#[test]
fn guard_mode_faults_past_heap_end_and_grow_opens_pages() {
    let region = Arc::new(
        Region::new(RegionConfig {
            slots: 4,
            stack_size: 64 * 1024,
            heap_capacity: 64 * 1024,
            guard_size: 64 * 1024,
            guard_mode: true,
            heap_reservation: 0,
        })
        .unwrap(),
    );
    let m = test_module();
    let mut i = Instance::new(&region, &m, "oob", &[]).unwrap();
    assert_eq!(i.resume(FAR), Outcome::Trapped(TrapKind::HeapOutOfBounds));
    drop(i);
    let mut g = Instance::new(&region, &m, "grow", &[Val::I64(2)]).unwrap();
    assert_eq!(
        g.resume(FAR),
        Outcome::Finished(vec![Val::I64(4), Val::I64(6 * 4096)])
    );
    assert_eq!(g.memory().len(), 6 * 4096);
    assert!(g.memory().iter().all(|b| *b == 0));
    drop(g);
    // The next instance in that slot sees only its initial 4 pages open.
    let mut i = Instance::new(&region, &m, "oob", &[]).unwrap();
    assert_eq!(i.resume(FAR), Outcome::Trapped(TrapKind::HeapOutOfBounds));
}

#[test]
fn overrun_and_slow_path_counts_with_1us_quanta() {
    let region = test_region(1);
    let m = test_module();
    let mut i = Instance::new(&region, &m, "spin", &[Val::I64(i64::MAX)]).unwrap();
    let q = ns_to_tsc(1_000);
    let mut over = Vec::new();
    let mut calls = 0;
    for _ in 0..3000 {
        let d = rdtsc() + q;
        let before = i.slow_path_calls();
        assert_eq!(i.resume_from(d - q, d), Outcome::Yielded);
        calls += i.slow_path_calls() - before;
        over.push(i.yield_tsc() as i64 - d as i64);
    }
    over.sort();
    let ns = |t: i64| t as f64 * 1e9 / myriad_runtime::tsc_hz() as f64;
    eprintln!(
        "overrun ns: p50 {:.0} p90 {:.0} p99 {:.0} max {:.0}; slow-path calls per 1us slice {:.2}",
        ns(over[over.len() / 2]),
        ns(over[over.len() * 9 / 10]),
        ns(over[over.len() * 99 / 100]),
        ns(over[over.len() - 1]),
        calls as f64 / 3000.0
    );
    // Generous bound: CI machines are noisy and this is a debug build.
    assert!(ns(over[over.len() * 9 / 10]) < 5_000.0);
}

/// For each of `pages` pages from `p`: does it hold a private page frame
/// of this process (bit 56, "exclusively mapped", of /proc/self/pagemap)?
/// False for a page never touched and for one that maps the shared zero
/// page after a read, true once it has been written.
fn private_pages(p: *const u8, pages: usize) -> Vec<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open("/proc/self/pagemap").unwrap();
    f.seek(SeekFrom::Start((p as u64 / 4096) * 8)).unwrap();
    let mut buf = vec![0u8; pages * 8];
    f.read_exact(&mut buf).unwrap();
    buf.chunks_exact(8)
        .map(|e| {
            let v = u64::from_le_bytes(e.try_into().unwrap());
            v & (1 << 63) != 0 && v & (1 << 56) != 0
        })
        .collect()
}

/// Mappings (lines of /proc/self/maps) overlapping `region`'s address range.
fn region_mappings(region: &Region) -> usize {
    let (base, len) = region.mapping();
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .next()?
                .split_once('-')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
        })
        .filter_map(|(a, b)| {
            Some((
                usize::from_str_radix(&a, 16).ok()?,
                usize::from_str_radix(&b, 16).ok()?,
            ))
        })
        .filter(|&(lo, hi)| lo < base + len && hi > base)
        .count()
}
