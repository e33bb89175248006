//! The guest API of the scheduler: Erlang-style messages and actors,
//! host functions of module `myriad` (documented with examples in
//! `docs/API.md`).
//!
//! Every spawned instance has an id ([`crate::InstanceHandle::id`]) and a
//! bounded mailbox. [`add_to_linker`] defines:
//!
//! * `send(dest: i64, ptr: i32, len: i32) -> i32`: copy `len` bytes at
//!   `ptr` into the mailbox of instance `dest`; 0, -1 if no live instance
//!   has that id, -2 if the buffer is out of bounds, -3 if the receiver's
//!   mailbox is full (its message or byte bound, or its memory limit, which
//!   the mailbox is charged to; nothing is queued, the sender may retry).
//! * `recv(ptr: i32, cap: i32) -> i32`: move the oldest message into
//!   `ptr..ptr+cap` and return its length; with an empty mailbox, park
//!   until a message arrives. A message longer than `cap` stays queued and
//!   `recv` returns `-len`; `i32::MIN` means the buffer is out of bounds.
//! * `recv_msg(ptr: i32, cap: i32, timeout_ns: i64) -> i64`: `recv` that
//!   also tells the kind and can give up. The low 32 bits are `recv`'s
//!   result, or [`crate::RECV_TIMEOUT`] (`i32::MIN + 1`) when `timeout_ns`
//!   (at least 0; negative waits forever, 0 only looks) passed first; the
//!   high 32 bits are the [`crate::MessageKind`]: 0 an ordinary message,
//!   1 a down message (a monitor), 2 an exit message (a link), both
//!   encoded as a [`crate::SystemMessage`].
//! * `self() -> i64`: the caller's id.
//! * `sleep(ns: i64)`: end the slice and stay off the run queues for `ns`
//!   nanoseconds (at least; 0 or less is a yield).
//! * `exit(code: i32)`: end the caller with this exit code (0 is a normal
//!   end for links).
//! * `spawn(export_ptr: i32, export_len: i32, args_ptr: i32, nargs: i32,
//!   flags: i32) -> i64`: start the caller's own module at the named
//!   export; `nargs` (at most 64) little-endian `i64` arguments at
//!   `args_ptr`, each converted to the export's parameter type (`i32`
//!   takes any value that fits 32 bits signed or unsigned, floats are
//!   their bit patterns). `flags`: 1 monitor the child, 2 link to it.
//!   Returns the child's id or a [spawn code](spawn_code).
//! * `spawn_module(name_ptr: i32, name_len: i32, args_ptr: i32, nargs: i32,
//!   flags: i32) -> i64`: the same for a module the embedder registered
//!   ([`crate::Scheduler::register_module`]); the name is
//!   `module NUL export`.
//! * `monitor(id: i64) -> i32`, `demonitor(id: i64) -> i32`,
//!   `link(id: i64) -> i32`, `unlink(id: i64) -> i32`: 0 or an
//!   [`crate::ActorError`] code (-1 unknown id, -2 self, -3 already ended,
//!   -4 no room, -8 no such monitor or link).
//! * `trap_exit(on: i32) -> i32`: receive exits of linked instances as
//!   messages (non-zero) or be ended by their abnormal ends (0, the
//!   default); returns the previous setting.
//! * `register(ptr: i32, len: i32) -> i32`, `unregister(ptr: i32, len:
//!   i32) -> i32`: names of the caller (0, -5 bad name, -6 taken, -7 too
//!   many, -8 not registered; `i32::MIN` buffer out of bounds).
//! * `whereis(ptr: i32, len: i32) -> i64`: the id registered under the
//!   name, -1 none, -5 bad name, `i32::MIN` buffer out of bounds.
//!
//! A guest reaches only instances of its own tenant ([`crate::Tenant`]):
//! an id of another tenant's instance answers as an ended instance's does
//! (`send` -1, `link` -3, `monitor` a down message with reason no-proc),
//! names are registered and found per tenant, and what a guest spawns
//! joins its tenant.
//!
//! The host functions find "which instance am I" without touching the
//! embedder data: the worker records the handle of the instance whose slice
//! it runs in a thread-local ([`current`]), so they work next to any
//! `SpawnOptions::data` (WASI contexts included). They only work for
//! instances run by a [`crate::Scheduler`]; elsewhere they return the
//! unknown-id code (or trap, for the blocking `recv`).

use crate::actors::{self, MAX_SPAWN_ARGS};
use crate::handle::{
    deliver, recv_into, recv_result, HandleShared, InstanceHandle, MessageKind, RecvWait,
    SendError, RECV_TIMEOUT,
};
use crate::scheduler::{spawn_task, Relate, RunOptions, SpawnError};
use crate::shared::Shared;
use myriad_runtime::{Caller, HostAction, Linker, Val, ValType};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The handle of the instance whose slice is running on this thread:
/// `Some` inside a host function called by an instance a scheduler runs.
pub fn current() -> Option<InstanceHandle> {
    crate::worker::current().map(|shared| InstanceHandle { shared })
}

/// Codes `myriad.spawn` and `myriad.spawn_module` return instead of an id.
pub mod spawn_code {
    /// Every slot is in use.
    pub const AT_CAPACITY: i64 = -1;
    /// No exported function of that name.
    pub const NO_SUCH_EXPORT: i64 = -2;
    /// The arguments do not fit the export's parameters (count, a value
    /// out of `i32` range, a reference parameter), or more than 64.
    pub const BAD_ARGUMENTS: i64 = -3;
    /// A name or the argument array lies outside the caller's memory.
    pub const OUT_OF_BOUNDS: i64 = -4;
    /// The scheduler is shutting down, or the caller does not run on one.
    pub const SHUTTING_DOWN: i64 = -5;
    /// Instantiation failed otherwise (imports, memory, segments, start).
    pub const CANNOT_INSTANTIATE: i64 = -6;
    /// No module registered under that name.
    pub const NO_SUCH_MODULE: i64 = -7;
    /// The caller cannot pay for the monitor or link it asked for.
    pub const NO_ROOM: i64 = -8;
    /// Unknown flag bits.
    pub const BAD_FLAGS: i64 = -9;
}

/// Least time a guest's spawn is charged to its fuel counter in a time
/// slice (about 1.6 µs at 2.6 GHz, near an instantiation's median; see
/// `Caller::charge_time`): without it, a guest that spent cheap fuel
/// units got a grant sized for them and could spawn in a loop on it. A
/// spawn that takes longer (the child's data segments are the guest's
/// choice: 1 MiB took 0.57 ms) is charged what it took.
const SPAWN_CYCLES: u64 = 4096;

/// Time charged for copying `len` bytes of a message (8 bytes a cycle),
/// beside the fixed charge of every host call.
fn copy_cycles(len: usize) -> u64 {
    len as u64 / 8
}

/// Most bytes of an export or module name `spawn` reads.
const MAX_SPAWN_NAME: usize = 1024;

/// Define the `myriad` host functions (see the module docs) in `linker`.
pub fn add_to_linker(linker: &mut Linker) -> &mut Linker {
    linker.func_wrap(
        "myriad",
        "send",
        |caller: &mut Caller<'_>, dest: i64, ptr: u32, len: u32| -> i32 {
            // All a send does is bounded by the mailbox limits (a copy
            // of at most `mailbox_bytes`, refused before the copy when it
            // would not fit) and charged by its length: the runtime's
            // clock read after the call is skipped.
            caller.charge_all_time(copy_cycles(len as usize));
            let Some(bytes) = guest_bytes(caller, ptr, len) else {
                return -2;
            };
            crate::worker::with_current(|me, sched| {
                let send = |target: &HandleShared| match deliver(
                    target,
                    Cow::Borrowed(bytes),
                    sched.mailbox_limits,
                ) {
                    Ok(()) => 0,
                    Err(SendError::NoSuchInstance(_)) => -1,
                    Err(SendError::MailboxFull(_)) => -3,
                };
                // Only an instance of the sender's tenant is reachable
                // (`crate::Tenant`); another's id answers as an ended one.
                let lookup = || sched.lookup(dest as u64).filter(|t| t.tenant == me.tenant);
                // SAFETY: this worker holds `me`'s task (it runs its
                // slice); `deliver` does not send, so it never reaches
                // this cache.
                unsafe { me.send_cache.with(dest as u64, lookup, send) }.unwrap_or(-1)
            })
            .unwrap_or(-1)
        },
    );
    linker.func_wrap(
        "myriad",
        "recv",
        |caller: &mut Caller<'_>, ptr: u32, cap: u32| -> Result<i32, HostAction> {
            let wait = RecvWait {
                ptr,
                cap,
                tagged: false,
                until: None,
            };
            match receive(caller, wait)? {
                Val::I32(v) => Ok(v),
                _ => Ok(i32::MIN),
            }
        },
    );
    linker.func_wrap(
        "myriad",
        "recv_msg",
        |caller: &mut Caller<'_>, ptr: u32, cap: u32, timeout_ns: i64| -> Result<i64, HostAction> {
            let until =
                (timeout_ns >= 0).then(|| Instant::now() + Duration::from_nanos(timeout_ns as u64));
            let wait = RecvWait {
                ptr,
                cap,
                tagged: true,
                until,
            };
            match receive(caller, wait)? {
                Val::I64(v) => Ok(v),
                _ => Ok(i64::from(i32::MIN)),
            }
        },
    );
    linker.func_wrap("myriad", "self", |_: &mut Caller<'_>| -> i64 {
        crate::worker::with_current(|me, _| me.id as i64).unwrap_or(-1)
    });
    linker.func_wrap(
        "myriad",
        "sleep",
        |_: &mut Caller<'_>, ns: i64| -> Result<(), HostAction> {
            Err(HostAction::Sleep(Duration::from_nanos(ns.max(0) as u64)))
        },
    );
    linker.func_wrap(
        "myriad",
        "exit",
        |_: &mut Caller<'_>, code: i32| -> Result<(), HostAction> { Err(HostAction::Exit(code)) },
    );
    linker.func_wrap(
        "myriad",
        "spawn",
        |caller: &mut Caller<'_>, ep: u32, el: u32, ap: u32, n: u32, flags: u32| -> i64 {
            let call = SpawnCall {
                registered: false,
                name: (ep, el),
                args: (ap, n),
                flags,
            };
            guest_spawn(caller, call)
        },
    );
    linker.func_wrap(
        "myriad",
        "spawn_module",
        |caller: &mut Caller<'_>, np: u32, nl: u32, ap: u32, n: u32, flags: u32| -> i64 {
            let call = SpawnCall {
                registered: true,
                name: (np, nl),
                args: (ap, n),
                flags,
            };
            guest_spawn(caller, call)
        },
    );
    linker.func_wrap("myriad", "monitor", |_: &mut Caller<'_>, id: i64| -> i32 {
        relation(|me| actors::monitor(me, id as u64, None))
    });
    linker.func_wrap(
        "myriad",
        "demonitor",
        |_: &mut Caller<'_>, id: i64| -> i32 { relation(|me| actors::demonitor(me, id as u64)) },
    );
    linker.func_wrap("myriad", "link", |_: &mut Caller<'_>, id: i64| -> i32 {
        relation(|me| actors::link(me, id as u64, None))
    });
    linker.func_wrap("myriad", "unlink", |_: &mut Caller<'_>, id: i64| -> i32 {
        relation(|me| actors::unlink(me, id as u64))
    });
    linker.func_wrap(
        "myriad",
        "trap_exit",
        |_: &mut Caller<'_>, on: i32| -> i32 {
            crate::worker::with_current(|me, _| {
                i32::from(
                    me.trap_exit
                        .swap(on != 0, std::sync::atomic::Ordering::AcqRel),
                )
            })
            .unwrap_or(-1)
        },
    );
    linker.func_wrap(
        "myriad",
        "register",
        |caller: &mut Caller<'_>, ptr: u32, len: u32| -> i32 {
            let Some(name) = guest_bytes(caller, ptr, len) else {
                return i32::MIN;
            };
            relation(|me| actors::register(me, name))
        },
    );
    linker.func_wrap(
        "myriad",
        "unregister",
        |caller: &mut Caller<'_>, ptr: u32, len: u32| -> i32 {
            let Some(name) = guest_bytes(caller, ptr, len) else {
                return i32::MIN;
            };
            relation(|me| actors::unregister(me, name))
        },
    );
    linker.func_wrap(
        "myriad",
        "whereis",
        |caller: &mut Caller<'_>, ptr: u32, len: u32| -> i64 {
            let Some(name) = guest_bytes(caller, ptr, len) else {
                return i64::from(i32::MIN);
            };
            crate::worker::with_current(|me, sched| match actors::whereis(sched, me.tenant, name) {
                Ok(Some(id)) => id as i64,
                Ok(None) => -1,
                Err(e) => i64::from(e.code()),
            })
            .unwrap_or(-1)
        },
    );
    linker
}

/// `len` bytes of the caller's memory at `ptr`, if in bounds.
fn guest_bytes<'c>(caller: &'c Caller<'_>, ptr: u32, len: u32) -> Option<&'c [u8]> {
    let start = ptr as usize;
    caller.memory().get(start..start.checked_add(len as usize)?)
}

/// Run an actor operation for the calling instance; its code.
fn relation(op: impl FnOnce(&Arc<HandleShared>) -> Result<(), actors::ActorError>) -> i32 {
    crate::worker::with_current(|me, _| match op(me) {
        Ok(()) => 0,
        Err(e) => e.code(),
    })
    .unwrap_or(-1)
}

/// `recv`/`recv_msg` into `wait`'s buffer: take the oldest message now,
/// or park until one arrives (or `wait.until` passes).
fn receive(caller: &mut Caller<'_>, wait: RecvWait) -> Result<Val, HostAction> {
    crate::worker::with_current(|me, _| {
        let mut slot = me.lock_slot();
        if slot.mailbox.is_empty() {
            if wait.until.is_some_and(|at| at <= Instant::now()) {
                return Ok(recv_result(wait.tagged, RECV_TIMEOUT, MessageKind::Data));
            }
            // Park; a sender (or the worker, if a message arrives before
            // the park is published) completes the receive, or the timer
            // ends it.
            slot.recv_wait = Some(wait);
            return Err(HostAction::Park);
        }
        let (result, kind) = recv_into(
            &mut slot,
            &me.account,
            caller.memory_mut(),
            wait.ptr,
            wait.cap,
        );
        // A copy of at most the mailbox's bytes, charged by its length.
        caller.charge_all_time(copy_cycles(usize::try_from(result).unwrap_or(0)));
        Ok(recv_result(wait.tagged, result, kind))
    })
    .unwrap_or_else(|| {
        Err(HostAction::Trap(
            "myriad.recv called outside a scheduler".into(),
        ))
    })
}

/// What a guest's `myriad.spawn` or `myriad.spawn_module` asks for.
#[derive(Clone, Copy)]
struct SpawnCall {
    /// `spawn_module`: the name is `module NUL export`.
    registered: bool,
    /// Pointer and length of the name in guest memory.
    name: (u32, u32),
    /// Pointer to the 8-byte arguments and their count.
    args: (u32, u32),
    /// Bit 0 monitor, bit 1 link.
    flags: u32,
}

/// `myriad.spawn` and `myriad.spawn_module`.
fn guest_spawn(caller: &mut Caller<'_>, call: SpawnCall) -> i64 {
    if call.flags & !3 != 0 {
        caller.charge_time(SPAWN_CYCLES);
        return spawn_code::BAD_FLAGS;
    }
    let t0 = myriad_runtime::rdtsc();
    let code = crate::worker::with_current(|me, sched| spawn_as(me, sched, caller, call))
        .unwrap_or(spawn_code::SHUTTING_DOWN);
    caller.charge_time(SPAWN_CYCLES.max(myriad_runtime::rdtsc().saturating_sub(t0)));
    code
}

/// [`guest_spawn`] for the running instance `me` of `sched`.
fn spawn_as(
    me: &Arc<HandleShared>,
    sched: &Arc<Shared>,
    caller: &mut Caller<'_>,
    call: SpawnCall,
) -> i64 {
    let SpawnCall {
        registered,
        name: (name_ptr, name_len),
        args: (args_ptr, nargs),
        flags,
    } = call;
    use spawn_code::*;
    if name_len as usize > MAX_SPAWN_NAME {
        return NO_SUCH_EXPORT;
    }
    let Some(name) = guest_bytes(caller, name_ptr, name_len) else {
        return OUT_OF_BOUNDS;
    };
    // The caller's own origin is borrowed, not cloned: its reference
    // count is shared by every instance of the module on every worker.
    let looked_up;
    let (origin, export) = match registered {
        false => match &me.origin {
            Some(o) => (o, name),
            None => return SHUTTING_DOWN,
        },
        true => {
            let Some(nul) = name.iter().position(|&b| b == 0) else {
                return NO_SUCH_MODULE;
            };
            // The caller's tenant's own module of that name first.
            let modules = crate::sync::lock(&sched.modules);
            let module = &name[..nul];
            looked_up = modules
                .get(&(Some(me.tenant), module.into()))
                .or_else(|| modules.get(&(None, module.into())))
                .cloned();
            drop(modules);
            match &looked_up {
                Some(o) => (o, &name[nul + 1..]),
                None => return NO_SUCH_MODULE,
            }
        }
    };
    let Ok(export) = std::str::from_utf8(export) else {
        return NO_SUCH_EXPORT;
    };
    let Some(ty) = origin.module.export_type(export) else {
        return NO_SUCH_EXPORT;
    };
    if nargs as usize > MAX_SPAWN_ARGS || nargs as usize != ty.params.len() {
        return BAD_ARGUMENTS;
    }
    let Some(raw) = guest_bytes(caller, args_ptr, nargs.saturating_mul(8)) else {
        return OUT_OF_BOUNDS;
    };
    let mut args = [Val::I64(0); MAX_SPAWN_ARGS];
    for ((chunk, param), arg) in raw.chunks_exact(8).zip(&ty.params).zip(&mut args) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = i64::from_le_bytes(word);
        let val = match param {
            ValType::I32 => {
                match i32::try_from(v).or_else(|_| u32::try_from(v).map(|u| u as i32)) {
                    Ok(x) => Val::I32(x),
                    Err(_) => return BAD_ARGUMENTS,
                }
            }
            ValType::I64 => Val::I64(v),
            ValType::F32 => match u32::try_from(v) {
                Ok(bits) => Val::F32(f32::from_bits(bits)),
                Err(_) => return BAD_ARGUMENTS,
            },
            ValType::F64 => Val::F64(f64::from_bits(v as u64)),
            _ => return BAD_ARGUMENTS,
        };
        *arg = val;
    }
    let args = &args[..ty.params.len()];

    let relate = Relate {
        monitor: flags & 1 != 0,
        link: flags & 2 != 0,
    };
    let parent = [(me, relate)];
    let related: &[_] = if flags != 0 { &parent } else { &[] };
    // The child joins the spawner's tenant.
    let run = RunOptions {
        tenant: crate::Tenant(me.tenant),
        ..RunOptions::default()
    };
    match spawn_task(sched, origin, export, args, run, related) {
        Ok(child) => child.id as i64,
        Err(SpawnError::AtCapacity { .. }) => AT_CAPACITY,
        Err(SpawnError::ShuttingDown) => SHUTTING_DOWN,
        // The spawner runs, so it has not ended; were it ending, the
        // relation it asked for could not be made.
        Err(SpawnError::NoRoom | SpawnError::RelatedEnded(_)) => NO_ROOM,
        Err(SpawnError::Instantiate(e)) => match e {
            myriad_runtime::InstantiateError::NoSuchExport(_) => NO_SUCH_EXPORT,
            myriad_runtime::InstantiateError::ArgumentCount { .. }
            | myriad_runtime::InstantiateError::ArgumentType { .. } => BAD_ARGUMENTS,
            _ => CANNOT_INSTANTIATE,
        },
        Err(SpawnError::Link(_) | SpawnError::SharedImport { .. }) => CANNOT_INSTANTIATE,
    }
}
