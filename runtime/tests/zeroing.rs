//! Teardown leaves mid-size heaps (more than `SCAN_MAX_PAGES` pages, up to
//! `DONTNEED_THRESHOLD`) all zero, including pages past the first 64 whose
//! dirtiness is not tracked.

mod common;

use common::*;
use myriad_runtime::region::{DONTNEED_THRESHOLD, SCAN_MAX_PAGES};
use myriad_runtime::ValType::*;
use myriad_runtime::{Instance, Outcome, Region, RegionConfig, Val};
use std::sync::Arc;

#[test]
fn mid_size_heaps_are_zero_after_teardown() {
    for pages in [32usize, 128] {
        assert!(pages > SCAN_MAX_PAGES && (pages * 4096) as u64 <= DONTNEED_THRESHOLD);
        let region = Arc::new(
            Region::new(RegionConfig {
                slots: 1,
                stack_size: 64 * 1024,
                heap_capacity: pages * 4096,
                guard_size: 0,
                guard_mode: false,
                heap_reservation: 0,
            })
            .unwrap(),
        );
        let m = raw_module(
            &[(
                "poke",
                ft(&[I64, I64], &[I64]),
                guest_poke as *const () as usize,
            )],
            mem_pages(pages as u64, Some(pages as u64), 12),
            vec![],
        );
        let offsets: Vec<usize> = [0, 5, 17, 31, 63, 64, 65, 70, 100, 127]
            .into_iter()
            .filter(|p| *p < pages)
            .map(|p| p * 4096 + (p % 4096) + 1)
            .collect();
        for round in 0..3 {
            for &off in &offsets {
                let mut i =
                    Instance::new(&region, &m, "poke", &[Val::I64(off as i64), Val::I64(0x5a)])
                        .unwrap();
                assert!(
                    i.memory().iter().all(|b| *b == 0),
                    "{pages} pages, round {round}: heap not zero before poke at {off}"
                );
                assert!(matches!(i.resume(u64::MAX / 2), Outcome::Finished(_)));
                assert_eq!(i.memory()[off], 0x5a);
            }
        }
        let i = Instance::new(&region, &m, "poke", &[Val::I64(0), Val::I64(0)]).unwrap();
        assert_eq!(i.memory().len(), pages * 4096);
        assert!(i.memory().iter().all(|b| *b == 0), "{pages} pages");
    }
}
