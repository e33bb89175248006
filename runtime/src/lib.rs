//! The Myriad runtime: artifact loading, the slot region, instances,
//! context switching, traps and host calls.

pub mod vmctx;
