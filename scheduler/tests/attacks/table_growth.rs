//! Attack: grow a table to the runtime's 10 million elements (80 MiB of
//! host memory outside the slot) under the scheduler's default
//! configuration, which used to set no memory limit.
//!
//! Must hold: the default memory limit (the heap plus as much again, at
//! least 64 KiB) ends the instance with `Limit::Memory` long before, and
//! a modest table still grows.

use super::module;
use myriad_runtime::Val;
use myriad_scheduler::{InstanceError, Limit, Scheduler, SchedulerConfig};

const GROWER: &str = r#"(module
  (table 1 funcref)
  (func (export "run") (param $n i32) (result i32)
    (table.grow (ref.null func) (local.get $n))))"#;

#[test]
fn default_limits_stop_a_huge_table() {
    let s = Scheduler::new(SchedulerConfig {
        workers: 1,
        capacity: 4,
        heap_capacity: 64 * 1024,
        pin_workers: false,
        ..SchedulerConfig::default()
    })
    .expect("scheduler");
    let m = module(GROWER);
    let huge = s
        .spawn(&m, "run", &[Val::I32(10_000_000 - 1)])
        .expect("spawn");
    assert_eq!(huge.join(), Err(InstanceError::Limit(Limit::Memory)));
    // 64 KiB + 64 KiB of limit: 8,000 elements (64,000 bytes) fit.
    let modest = s.spawn(&m, "run", &[Val::I32(8_000)]).expect("spawn");
    assert_eq!(modest.join(), Ok(vec![Val::I32(1)]));
    s.shutdown();
}
