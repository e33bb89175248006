//! The adversarial suite: hostile modules and hostile host-side inputs,
//! each trying to reach outside its slot or to leave something behind for
//! the next tenant. One file per attack; add a file and a `mod` line to
//! extend it. Every attack states what it tries and what must hold.
//!
//! Attacks that could crash the process if the defence failed (a write
//! into a `PROT_NONE` guard, a stack pointer below the region) run in a
//! child process (see [`harness::in_child`]), so a regression reports as a
//! failed test with the child's output rather than killing the suite.

mod harness;

mod async_signals;
mod host_results;
mod stack_frames;
