//! Per-core work-stealing scheduler.
