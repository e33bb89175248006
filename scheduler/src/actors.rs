//! Actors: instances that spawn, monitor and link each other and find
//! each other by name, as Erlang processes do.
//!
//! * **Spawn**: an instance starts another instance of its own module
//!   (same linker, the same memory limit) or of a module the embedder
//!   registered by name ([`crate::Scheduler::register_module`]), at an
//!   export with integer arguments. Spawn-and-monitor and spawn-and-link
//!   set the relation before the child can run, so a child that ends at
//!   once is still reported.
//! * **Monitor**: when the monitored instance ends, the watcher receives a
//!   [`MessageKind::Down`] message: a [`SystemMessage`] saying who ended
//!   and how. Monitoring an instance that has already ended delivers the
//!   message at once (reason [`ExitReason::NoProc`]).
//! * **Link**: both directions. When one side ends abnormally (anything
//!   but finishing or exiting with code 0), the other is ended too
//!   ([`crate::InstanceError::Killed`]), unless it traps exits: then it
//!   receives a [`MessageKind::Exit`] message instead, for normal ends
//!   too.
//! * **Names**: an instance registers names for itself (at most
//!   [`MAX_NAMES_PER_INSTANCE`], each at most [`MAX_NAME_LEN`] bytes);
//!   names are freed when it ends, and anyone can look them up.
//!
//! # Charges and bounds
//!
//! Every monitor costs its watcher [`RELATION_COST`] bytes of its memory
//! limit, and every link costs each side as much, until the relation ends
//! or its message is received (the charge then pays for the waiting
//! system message, which is therefore never refused: no down or exit
//! notice is lost, and none is unbounded). An instance holds at most
//! [`MAX_RELATIONS`] monitors and links.
//!
//! # Ordering and races
//!
//! An instance's relations live under its slot lock, beside the `ended`
//! flag its retirement sets before it reads them: a monitor or link made
//! concurrently with the end either lands before (and is notified) or
//! sees `ended` (and gets the already-ended answer). No code holds two
//! slot locks at once.

use crate::handle::{deliver_prepaid, HandleShared, InstanceError, InstanceResult, MessageKind};
use crate::scheduler::SpawnError;
use crate::shared::{Shared, Task};
use crate::sync::lock;
use myriad_runtime::{Imports, Linker, Module, Val};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Bytes of memory limit one monitor or one side of a link costs while it
/// stands (and then the system message it may produce).
pub const RELATION_COST: u64 = 64;
/// Most monitors and links one instance may hold (as watcher, as
/// monitored, or linked).
pub const MAX_RELATIONS: usize = 4096;
/// Longest registered name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Most names one instance may register.
pub const MAX_NAMES_PER_INSTANCE: usize = 8;
/// Most arguments `myriad.spawn` passes to the child's export.
pub const MAX_SPAWN_ARGS: usize = 64;
/// Size of an encoded [`SystemMessage`].
pub const SYSTEM_MESSAGE_LEN: usize = 24;

/// What a spawned instance came from: a child spawned by the guest gets
/// the same module, imports and memory limit (shared, not copied).
pub(crate) struct Origin {
    pub(crate) module: Arc<Module>,
    /// The linker the imports came from (`None`: the module imports
    /// nothing).
    pub(crate) linker: Option<Arc<Linker>>,
    /// The module's imports, resolved once; every instance shares their
    /// host-function table.
    pub(crate) imports: Imports,
    /// The memory limit (`None`: the scheduler's default).
    pub(crate) memory: Option<u64>,
}

impl Origin {
    /// Resolve `module`'s imports with `linker` and check that instances
    /// on different workers may share them.
    pub(crate) fn new(
        module: &Arc<Module>,
        linker: Option<Arc<Linker>>,
        memory: Option<u64>,
    ) -> Result<Origin, SpawnError> {
        let imports = match &linker {
            Some(l) => l.resolve(module).map_err(SpawnError::Link)?,
            None => Vec::new(),
        };
        crate::scheduler::check_unshared(module, &imports)?;
        Ok(Origin {
            module: Arc::clone(module),
            linker,
            imports: Imports::new(imports),
            memory,
        })
    }
}

/// Why an actor operation was refused. Each has a negative code, what the
/// guest API returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ActorError {
    /// No instance with this id was ever spawned by this scheduler.
    #[error("no instance with id {0} was ever spawned")]
    UnknownId(u64),
    /// An instance cannot monitor or link itself.
    #[error("an instance cannot monitor or link itself")]
    SelfRelation,
    /// The instance has already ended (for `link`; a monitor is answered
    /// with a [`ExitReason::NoProc`] message instead).
    #[error("instance {0} has already ended")]
    Ended(u64),
    /// The caller's memory limit cannot pay for the relation, or it holds
    /// [`MAX_RELATIONS`] already.
    #[error("too many monitors and links, or no memory left to pay for them")]
    NoRoom,
    /// The name is empty or longer than [`MAX_NAME_LEN`].
    #[error("a name must have 1 to {MAX_NAME_LEN} bytes")]
    BadName,
    /// The name belongs to another live instance.
    #[error("the name is registered by another instance")]
    NameTaken,
    /// The instance has [`MAX_NAMES_PER_INSTANCE`] names already.
    #[error("an instance may register at most {MAX_NAMES_PER_INSTANCE} names")]
    TooManyNames,
    /// Nothing to remove: no such monitor, link or name of the caller.
    #[error("no such monitor, link or name")]
    NotFound,
}

impl ActorError {
    /// The code the guest API returns for this error.
    pub fn code(self) -> i32 {
        match self {
            ActorError::UnknownId(_) => -1,
            ActorError::SelfRelation => -2,
            ActorError::Ended(_) => -3,
            ActorError::NoRoom => -4,
            ActorError::BadName => -5,
            ActorError::NameTaken => -6,
            ActorError::TooManyNames => -7,
            ActorError::NotFound => -8,
        }
    }
}

/// How an instance ended, as a system message tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitReason {
    /// Its entry function returned; `detail` is its first result (as
    /// `i64`; floats as their bits; 0 without results).
    Finished = 0,
    /// A trap ended it; `detail` is the trap kind's code
    /// (`myriad_runtime::TrapKind as u8`).
    Trapped = 1,
    /// It was cancelled (by a handle or the scheduler's shutdown).
    Cancelled = 2,
    /// It exited; `detail` is the exit code.
    Exited = 3,
    /// A resource limit ended it; `detail` is the limit's code
    /// (`myriad_runtime::Limit`).
    Limit = 4,
    /// A linked instance's abnormal end ended it; `detail` is that
    /// instance's id.
    Killed = 5,
    /// It had already ended when the monitor was set (how is no longer
    /// known).
    NoProc = 6,
}

impl ExitReason {
    /// The reason with numeric code `code`.
    pub fn from_code(code: u32) -> Option<ExitReason> {
        [
            ExitReason::Finished,
            ExitReason::Trapped,
            ExitReason::Cancelled,
            ExitReason::Exited,
            ExitReason::Limit,
            ExitReason::Killed,
            ExitReason::NoProc,
        ]
        .into_iter()
        .find(|r| *r as u32 == code)
    }
}

/// A down or exit message: who ended and how. Encoded little endian in
/// [`SYSTEM_MESSAGE_LEN`] bytes: `u32 kind` ([`MessageKind`]), `u32 reason`
/// ([`ExitReason`]), `u64 id`, `i64 detail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemMessage {
    /// [`MessageKind::Down`] (a monitor) or [`MessageKind::Exit`] (a link).
    pub kind: MessageKind,
    /// The instance that ended.
    pub id: u64,
    /// How it ended.
    pub reason: ExitReason,
    /// The reason's detail (see [`ExitReason`]).
    pub detail: i64,
}

impl SystemMessage {
    /// The message for instance `id` ending with `result`.
    pub fn ended(kind: MessageKind, id: u64, result: &InstanceResult) -> SystemMessage {
        let (reason, detail) = match result {
            Ok(values) => (ExitReason::Finished, values.first().map_or(0, val_bits)),
            Err(InstanceError::Trap(kind)) => (ExitReason::Trapped, i64::from(*kind as u8)),
            Err(InstanceError::Cancelled) => (ExitReason::Cancelled, 0),
            Err(InstanceError::Exited(code)) => (ExitReason::Exited, i64::from(*code)),
            Err(InstanceError::Limit(limit)) => (ExitReason::Limit, *limit as i64),
            Err(InstanceError::Killed(by)) => (ExitReason::Killed, *by as i64),
        };
        SystemMessage {
            kind,
            id,
            reason,
            detail,
        }
    }

    /// The encoded bytes.
    pub fn encode(&self) -> [u8; SYSTEM_MESSAGE_LEN] {
        let mut b = [0u8; SYSTEM_MESSAGE_LEN];
        b[0..4].copy_from_slice(&(self.kind as u32).to_le_bytes());
        b[4..8].copy_from_slice(&(self.reason as u32).to_le_bytes());
        b[8..16].copy_from_slice(&self.id.to_le_bytes());
        b[16..24].copy_from_slice(&self.detail.to_le_bytes());
        b
    }

    /// Decode `bytes` (exactly [`SYSTEM_MESSAGE_LEN`] of them).
    pub fn decode(bytes: &[u8]) -> Option<SystemMessage> {
        if bytes.len() != SYSTEM_MESSAGE_LEN {
            return None;
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let u64_at = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(w)
        };
        let kind = match u32_at(0) {
            1 => MessageKind::Down,
            2 => MessageKind::Exit,
            _ => return None,
        };
        Some(SystemMessage {
            kind,
            reason: ExitReason::from_code(u32_at(4))?,
            id: u64_at(8),
            detail: u64_at(16) as i64,
        })
    }
}

/// A value as the `i64` detail of a system message.
fn val_bits(v: &Val) -> i64 {
    match *v {
        Val::I32(x) => i64::from(x),
        Val::I64(x) => x,
        Val::F32(x) => i64::from(x.to_bits()),
        Val::F64(x) => x.to_bits() as i64,
        Val::FuncRef(_) | Val::ExternRef(_) => 0,
    }
}

/// Whether `result` is a normal end, which links do not propagate.
fn is_normal(result: &InstanceResult) -> bool {
    matches!(result, Ok(_) | Err(InstanceError::Exited(0)))
}

/// The scheduler of `me`, or `UnknownId` if it is gone.
fn sched_of(me: &HandleShared) -> Result<Arc<Shared>, ActorError> {
    me.sched.upgrade().ok_or(ActorError::UnknownId(me.id))
}

/// Charge `h` for one relation, within [`MAX_RELATIONS`] (`count` is what
/// it holds now).
fn charge(h: &HandleShared, count: usize) -> Result<(), ActorError> {
    if count >= MAX_RELATIONS || !h.account.try_charge(RELATION_COST) {
        return Err(ActorError::NoRoom);
    }
    Ok(())
}

/// Resolve `id` to a live instance for `me`: `Ok(Some)`, `Ok(None)` if it
/// has ended or belongs to another tenant than `me` (a guest reaches only
/// its own tenant; see `crate::Tenant`), `UnknownId` if it never existed.
/// `known` is the embedder's handle of it, if the embedder asks: then
/// tenants do not matter.
fn resolve(
    sched: &Shared,
    me: &HandleShared,
    id: u64,
    known: Option<&Arc<HandleShared>>,
) -> Result<Option<Arc<HandleShared>>, ActorError> {
    if let Some(h) = known {
        return Ok(Some(Arc::clone(h)));
    }
    if id == 0 || id >= sched.next_id.load(Ordering::Acquire) {
        return Err(ActorError::UnknownId(id));
    }
    Ok(sched.lookup(id).filter(|h| h.tenant == me.tenant))
}

/// `watcher` monitors instance `target` (see the module docs). `known` is
/// the target's handle if the caller has it.
pub(crate) fn monitor(
    watcher: &Arc<HandleShared>,
    target: u64,
    known: Option<&Arc<HandleShared>>,
) -> Result<(), ActorError> {
    if target == watcher.id {
        return Err(ActorError::SelfRelation);
    }
    let sched = sched_of(watcher)?;
    let resolved = resolve(&sched, watcher, target, known)?;
    // The watcher's side first: once the target lists the watcher, its
    // end may be notified at any moment, and the notice looks for this
    // entry (without it the down message would be lost).
    {
        let mut w = watcher.lock_slot();
        if w.ended {
            return Err(ActorError::Ended(watcher.id));
        }
        // A no-proc notice is queued whatever the mailbox holds (it is
        // prepaid); a watcher that monitors ended ids without reading
        // them stops at the mailbox's message bound like any sender (a
        // review queued 4 million).
        if resolved.is_none() && w.mailbox.len() >= sched.mailbox_limits.messages {
            return Err(ActorError::NoRoom);
        }
        charge(watcher, w.relations.monitoring.len())?;
        w.relations.monitoring.push(target);
    }
    // Whether the target took the watcher: `Some(true)` yes, `Some(false)`
    // its list of watchers is full, `None` it has ended.
    let added = resolved.as_ref().and_then(|t| {
        let mut ts = t.lock_slot();
        if ts.ended {
            None
        } else if ts.relations.watchers.len() >= MAX_RELATIONS {
            Some(false)
        } else {
            ts.relations.watchers.push(watcher.id);
            Some(true)
        }
    });
    if added != Some(true) {
        {
            let mut w = watcher.lock_slot();
            if let Some(at) = w.relations.monitoring.iter().position(|&t| t == target) {
                w.relations.monitoring.swap_remove(at);
            }
        }
        if added == Some(false) {
            // A live target whose watchers are full is not reported
            // ended (a review's watchers filled one and got a no-proc
            // down message for a running instance).
            watcher.account.release(RELATION_COST);
            return Err(ActorError::NoRoom);
        }
        // Already ended: the notice arrives at once, paid by the charge.
        let msg = SystemMessage {
            kind: MessageKind::Down,
            id: target,
            reason: ExitReason::NoProc,
            detail: 0,
        };
        deliver_prepaid(
            watcher,
            MessageKind::Down,
            msg.encode().to_vec(),
            RELATION_COST,
        );
    }
    Ok(())
}

/// Remove one monitor of `watcher` on `target` (its charge returns).
pub(crate) fn demonitor(watcher: &Arc<HandleShared>, target: u64) -> Result<(), ActorError> {
    {
        let mut w = watcher.lock_slot();
        let list = &mut w.relations.monitoring;
        let at = list
            .iter()
            .position(|&t| t == target)
            .ok_or(ActorError::NotFound)?;
        list.swap_remove(at);
    }
    watcher.account.release(RELATION_COST);
    let sched = sched_of(watcher)?;
    if let Some(t) = sched.lookup(target) {
        let mut ts = t.lock_slot();
        if let Some(at) = ts.relations.watchers.iter().position(|&w| w == watcher.id) {
            ts.relations.watchers.swap_remove(at);
        }
    }
    Ok(())
}

/// Link `me` and instance `other` (see the module docs).
pub(crate) fn link(
    me: &Arc<HandleShared>,
    other: u64,
    known: Option<&Arc<HandleShared>>,
) -> Result<(), ActorError> {
    if other == me.id {
        return Err(ActorError::SelfRelation);
    }
    let sched = sched_of(me)?;
    let Some(o) = resolve(&sched, me, other, known)? else {
        return Err(ActorError::Ended(other));
    };
    // Our side first: once the other side lists us, its end may be
    // notified at any moment, and the notice looks for this entry.
    {
        let mut m = me.lock_slot();
        if m.ended {
            return Err(ActorError::Ended(me.id));
        }
        if m.relations.links.contains(&other) {
            return Ok(());
        }
        charge(me, m.relations.links.len())?;
        m.relations.links.push(other);
    }
    let refused = {
        let mut os = o.lock_slot();
        if os.ended {
            Some(ActorError::Ended(other))
        } else if charge(&o, os.relations.links.len()).is_err() {
            Some(ActorError::NoRoom)
        } else {
            os.relations.links.push(me.id);
            None
        }
    };
    if let Some(e) = refused {
        unlink_side(me, other);
        return Err(e);
    }
    if me.lock_slot().ended {
        // `me` ended meanwhile (only an embedder can link an instance
        // from outside) and its retirement may have missed the other
        // side's entry: take it back.
        unlink_side(&o, me.id);
        return Err(ActorError::Ended(me.id));
    }
    Ok(())
}

/// Remove `gone` from `h`'s links, returning its charge; whether it was
/// there.
fn unlink_side(h: &HandleShared, gone: u64) -> bool {
    let mut s = h.lock_slot();
    let Some(at) = s.relations.links.iter().position(|&l| l == gone) else {
        return false;
    };
    s.relations.links.swap_remove(at);
    drop(s);
    h.account.release(RELATION_COST);
    true
}

/// Remove the link between `me` and `other`.
pub(crate) fn unlink(me: &Arc<HandleShared>, other: u64) -> Result<(), ActorError> {
    if !unlink_side(me, other) {
        return Err(ActorError::NotFound);
    }
    let sched = sched_of(me)?;
    if let Some(o) = sched.lookup(other) {
        unlink_side(&o, me.id);
    }
    Ok(())
}

/// Check a name's length.
fn check_name(name: &[u8]) -> Result<(), ActorError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(ActorError::BadName);
    }
    Ok(())
}

/// Register `name` for `me`.
pub(crate) fn register(me: &Arc<HandleShared>, name: &[u8]) -> Result<(), ActorError> {
    check_name(name)?;
    let sched = sched_of(me)?;
    let mut slot = me.lock_slot();
    if slot.ended {
        return Err(ActorError::Ended(me.id));
    }
    if slot.relations.names.len() >= MAX_NAMES_PER_INSTANCE {
        return Err(ActorError::TooManyNames);
    }
    let mut names = lock(&sched.names);
    let name: Box<[u8]> = name.into();
    let key = (me.tenant, name);
    match names.get(&key) {
        Some(&id) if id == me.id => return Ok(()),
        Some(_) => return Err(ActorError::NameTaken),
        None => {}
    }
    names.insert(key.clone(), me.id);
    slot.relations.names.push(key.1);
    Ok(())
}

/// Remove `me`'s registration of `name`.
pub(crate) fn unregister(me: &Arc<HandleShared>, name: &[u8]) -> Result<(), ActorError> {
    check_name(name)?;
    let sched = sched_of(me)?;
    let mut slot = me.lock_slot();
    let at = slot
        .relations
        .names
        .iter()
        .position(|n| &**n == name)
        .ok_or(ActorError::NotFound)?;
    let name = slot.relations.names.swap_remove(at);
    lock(&sched.names).remove(&(me.tenant, name));
    Ok(())
}

/// The live instance of `tenant` registered as `name`.
pub(crate) fn whereis(sched: &Shared, tenant: u64, name: &[u8]) -> Result<Option<u64>, ActorError> {
    check_name(name)?;
    Ok(lock(&sched.names).get(&(tenant, name.into())).copied())
}

/// Free the names of `id` (it has ended), before its result is
/// published: whoever joins it finds the names free.
pub(crate) fn free_names(shared: &Shared, id: u64, tenant: u64, names: &mut Vec<Box<[u8]>>) {
    if names.is_empty() {
        return;
    }
    let mut registered = lock(&shared.names);
    for name in names.drain(..) {
        let key = (tenant, name);
        if registered.get(&key) == Some(&id) {
            registered.remove(&key);
        }
    }
}

/// After `handle`'s instance ended with `result` (its `ended` flag set and
/// its relations taken in `relations`, its names freed): tell its watchers,
/// and end or tell its links. Linked instances parked or sleeping are
/// retired here; they are pushed on `more` instead of retired
/// recursively, so a long chain of links cannot overflow the stack.
pub(crate) fn notify_end(
    handle: &HandleShared,
    result: &InstanceResult,
    relations: crate::handle::Relations,
    shared: &Shared,
    more: &mut Vec<(Task, InstanceResult)>,
) {
    // Monitors this instance held: drop them from their targets (its own
    // charges die with its account).
    for target in relations.monitoring {
        if let Some(t) = shared.lookup(target) {
            let mut ts = t.lock_slot();
            if let Some(at) = ts.relations.watchers.iter().position(|&w| w == handle.id) {
                ts.relations.watchers.swap_remove(at);
            }
        }
    }
    if !relations.watchers.is_empty() {
        let down = SystemMessage::ended(MessageKind::Down, handle.id, result).encode();
        for watcher in relations.watchers {
            let Some(w) = shared.lookup(watcher) else {
                continue;
            };
            let mut ws = w.lock_slot();
            // The charge of this monitor moves to the message.
            let Some(at) = ws.relations.monitoring.iter().position(|&t| t == handle.id) else {
                continue;
            };
            ws.relations.monitoring.swap_remove(at);
            drop(ws);
            deliver_prepaid(&w, MessageKind::Down, down.to_vec(), RELATION_COST);
        }
    }
    let normal = is_normal(result);
    for linked in relations.links {
        let Some(l) = shared.lookup(linked) else {
            continue;
        };
        let mut ls = l.lock_slot();
        let Some(at) = ls.relations.links.iter().position(|&x| x == handle.id) else {
            continue;
        };
        ls.relations.links.swap_remove(at);
        if l.trap_exit.load(Ordering::Acquire) {
            drop(ls);
            let exit = SystemMessage::ended(MessageKind::Exit, handle.id, result).encode();
            deliver_prepaid(&l, MessageKind::Exit, exit.to_vec(), RELATION_COST);
            continue;
        }
        drop(ls);
        l.account.release(RELATION_COST);
        if normal {
            continue;
        }
        // End it: at its next slice boundary if it runs or waits in a
        // queue, here if it is parked or sleeping.
        let _ = l
            .killed_by
            .compare_exchange(0, handle.id, Ordering::AcqRel, Ordering::Acquire);
        l.cancel.store(true, Ordering::Release);
        let task = l.lock_slot().task.take();
        if let Some(task) = task {
            let error = l.cancel_error();
            more.push((*task, Err(error)));
        }
    }
}
