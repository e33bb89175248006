//! Region: one mapping, slot reuse, full region, guard-mode map-count check.

use myriad_runtime::region::max_map_count;
use myriad_runtime::{Region, RegionConfig, RegionError};

/// Tests here count mappings of the whole process: run them one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn cfg(slots: usize, guard_mode: bool) -> RegionConfig {
    RegionConfig {
        slots,
        stack_size: 8192,
        heap_capacity: 16 * 1024,
        guard_size: 4096,
        guard_mode,
        heap_reservation: 0,
    }
}

/// Lines of /proc/self/maps that overlap `[base, base + len)`.
fn maps_in(base: usize, len: usize) -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| {
            let r = l.split_whitespace().next().unwrap();
            let (a, b) = r.split_once('-').unwrap();
            let (a, b) = (
                usize::from_str_radix(a, 16).unwrap(),
                usize::from_str_radix(b, 16).unwrap(),
            );
            a < base + len && b > base
        })
        .count()
}

#[test]
fn two_mappings_whatever_the_use() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Count mappings inside the region only: the process-wide count moves
    // with whatever tests running in parallel threads map and unmap.
    let r = Region::new(cfg(10_000, false)).unwrap();
    let (base, len) = r.mapping();
    // The leading guard page and the slots.
    assert_eq!(maps_in(base, len), 2);
    // Touch every slot's vmctx page and first heap page.
    let mut slots = Vec::new();
    while let Some(s) = r.alloc() {
        // SAFETY: our own slot's vmctx area and heap.
        unsafe {
            r.vmctx_addr(s).write(1);
            r.heap_base(s).write(1);
        }
        slots.push(s);
    }
    assert_eq!(slots.len(), 10_000);
    assert_eq!(r.free_slots(), 0);
    assert_eq!(maps_in(base, len), 2);
}

#[test]
fn colours_and_layout() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = Region::new(cfg(130, false)).unwrap();
    assert_eq!(r.stride() % 4096, 0);
    for s in [0u32, 1, 63, 64, 129] {
        let v = r.vmctx_addr(s) as usize;
        assert_eq!(
            (v - r.slot_base(s) as usize - r.stack_size()) / 64,
            s as usize % 64
        );
        assert_eq!(r.heap_base(s) as usize % 4096, 0);
        assert!(v + myriad_runtime::region::MAX_VMCTX_BYTES <= r.heap_base(s) as usize);
    }
}

#[test]
fn guard_mode_map_count_error_says_what_to_set() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let limit = max_map_count().unwrap();
    let err = Region::new(cfg(limit, true)).err().expect("must refuse");
    let msg = err.to_string();
    assert!(matches!(err, RegionError::MapCount { .. }), "{msg}");
    assert!(msg.contains("sysctl -w vm.max_map_count="), "{msg}");
    eprintln!("{msg}");
}

#[test]
fn guard_mode_small_region_works() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _r = Region::new(cfg(16, true)).unwrap();
    let (base, len) = _r.mapping();
    let n = maps_in(base, len);
    assert!(n <= 2 * 16 + 1, "{n} mappings for 16 slots");
    assert!(n > 1, "guard mode must split the region");
}
