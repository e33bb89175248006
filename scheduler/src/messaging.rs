//! Erlang-style messages between instances, on top of park/resume.
//!
//! Every spawned instance has an id ([`crate::InstanceHandle::id`]) and a
//! bounded mailbox of byte strings. [`add_to_linker`] defines these host
//! functions:
//!
//! * `myriad.send(dest: i64, ptr: i32, len: i32) -> i32` copies
//!   `len` bytes at `ptr` into the mailbox of instance `dest`; returns 0,
//!   -1 if no live instance has that id, -2 if the buffer is out of bounds,
//!   -3 if the receiver's mailbox is full (its message or byte bound, or
//!   its memory limit, which the mailbox is charged to; nothing is queued,
//!   the sender may yield and retry).
//! * `myriad.recv(ptr: i32, cap: i32) -> i32` moves the oldest message
//!   into `ptr..ptr+cap` and returns its length; with an empty mailbox it
//!   parks the instance until a message arrives. A message longer than
//!   `cap` stays queued and `recv` returns `-len`; `i32::MIN` means the
//!   buffer is out of bounds.
//! * `myriad.self() -> i64` returns the caller's own id.
//! * `myriad.sleep(ns: i64)` ends the slice and keeps the instance off the
//!   run queues for `ns` nanoseconds (at least; 0 or less is a yield), see
//!   [`myriad_runtime::HostAction::Sleep`].
//!
//! The host functions find "which instance am I" without touching the
//! embedder data: the worker records the handle of the instance whose slice
//! it runs in a thread-local ([`current`]), so they work next to any
//! `SpawnOptions::data` (WASI contexts included). They only work for
//! instances run by a [`crate::Scheduler`].

use crate::handle::{deliver, recv_into, InstanceHandle, SendError};
use myriad_runtime::{Caller, HostAction, Linker};

/// The handle of the instance whose slice is running on this thread:
/// `Some` inside a host function called by an instance a scheduler runs.
pub fn current() -> Option<InstanceHandle> {
    crate::worker::current().map(|shared| InstanceHandle { shared })
}

/// Define `myriad.send`, `myriad.recv`, `myriad.self` and `myriad.sleep`
/// in `linker`.
pub fn add_to_linker(linker: &mut Linker) -> &mut Linker {
    linker.func_wrap(
        "myriad",
        "send",
        |caller: &mut Caller<'_>, dest: i64, ptr: u32, len: u32| -> i32 {
            let Some(me) = crate::worker::current() else {
                return -1;
            };
            let Some(sched) = me.sched.upgrade() else {
                return -1;
            };
            let start = ptr as usize;
            let Some(bytes) = caller.memory().get(start..start + len as usize) else {
                return -2;
            };
            let Some(target) = sched.lookup(dest as u64) else {
                return -1;
            };
            match deliver(&target, bytes.to_vec(), sched.mailbox_limits) {
                Ok(()) => 0,
                Err(SendError::NoSuchInstance(_)) => -1,
                Err(SendError::MailboxFull(_)) => -3,
            }
        },
    );
    linker.func_wrap(
        "myriad",
        "recv",
        |caller: &mut Caller<'_>, ptr: u32, cap: u32| -> Result<i32, HostAction> {
            let Some(me) = crate::worker::current() else {
                return Err(HostAction::Trap(
                    "myriad.recv called outside a scheduler".into(),
                ));
            };
            let mut slot = me.lock_slot();
            if slot.mailbox.is_empty() {
                // Park; a sender (or the worker, if a message arrives
                // before the park is published) completes the recv.
                slot.recv_wait = Some((ptr, cap));
                return Err(HostAction::Park);
            }
            Ok(recv_into(
                &mut slot,
                &me.account,
                caller.memory_mut(),
                ptr,
                cap,
            ))
        },
    );
    linker.func_wrap("myriad", "self", |_: &mut Caller<'_>| -> i64 {
        crate::worker::current().map_or(-1, |h| h.id as i64)
    });
    linker.func_wrap(
        "myriad",
        "sleep",
        |_: &mut Caller<'_>, ns: i64| -> Result<(), HostAction> {
            Err(HostAction::Sleep(std::time::Duration::from_nanos(
                ns.max(0) as u64,
            )))
        },
    );
    linker
}
