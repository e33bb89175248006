//! Link groups: the unit of lifetime of instances linked to each other.
//!
//! A function reference is a pointer to a record in its instance's vmctx or
//! table state. Once instance B's reference sits in storage another
//! instance A (or the host) can reach, B must live as long as A can use
//! it. References travel along every link: through imported tables and
//! globals, as arguments and results of calls between instances, through
//! references to functions that store their argument, and onward to
//! whatever those instances link to. Rather than chase each path, an
//! instance that imports anything from another instance (or imports a
//! table or a mutable host `funcref` global) joins the groups of all of
//! them: the members of a group live until the last handle to the group is
//! gone, like a Wasmtime store. Members hold no handle to any group, so
//! groups cannot keep each other (or themselves) alive.
//!
//! Handles ([`GroupHandle`]) are the [`crate::Instance`] of a grouped
//! instance and every export taken from an instance.
//!
//! Tables and host-made `funcref` cells are [`Shared`]: they point back at
//! their group weakly, so a table the host still holds does not keep its
//! instances alive. When a group dies, its shared tables and cells are
//! scrubbed (function references set to null) before its instances are
//! freed, so a table that outlives its instances holds no dangling code
//! pointer.
//!
//! A group's code runs on one green thread at a time. A member's code may
//! run on another member's stack (a call through an import or a shared
//! table), and compiled code finds the running green thread's exec and
//! stack limit through its own vmctx (`abi::vmctx::EXEC` and
//! `STACK_LIMIT`): so as a member's green thread is switched in
//! ([`GroupHandle::enter`]), every member's two fields are pointed at it,
//! and as it is switched out, back at whatever ran before (entries nest
//! on one thread: a host function may resume another member). Another
//! thread that wants to switch a member in meanwhile waits: the fields
//! can name one stack only, and a member's code checked against another
//! stack's limit could overflow its own stack into a neighbouring slot.
//!
//! Instances that never link (the million tiny instances of the stress
//! job, and everything the scheduler runs: it refuses imports from other
//! instances) have no group and pay nothing. All structure changes take
//! one process-wide lock; they happen at instantiation, export and
//! teardown of linked instances only. Merges are by size with path
//! compression, so forwarding chains stay short.

use crate::sync::lock;
use crate::vmctx::VmCtx;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::ThreadId;

/// Guards every node's state (merges, handle counts, teardown, entries).
static LINK: Mutex<()> = Mutex::new(());

/// Signalled whenever a group's last entry leaves (see
/// [`GroupHandle::enter`]).
static LEFT: Condvar = Condvar::new();

/// The threads waiting for groups other threads own: one entry per group
/// (a node of it) a thread waits for (an instantiation may wait for
/// several). Taken only under the link lock.
static WAITS: Mutex<Vec<(ThreadId, Arc<Node>)>> = Mutex::new(Vec::new());

/// Whether `me` waiting for `root` would close a cycle: its owner waits
/// for a group whose owner waits ... for a group `me` owns. Follows every
/// wait of every thread on the way. Caller holds the link lock.
fn would_deadlock(me: ThreadId, root: &Arc<Node>) -> bool {
    let waits = lock(&WAITS);
    let mut seen: Vec<ThreadId> = Vec::new();
    let mut next: Vec<ThreadId> = owner(root).0.into_iter().collect();
    while let Some(t) = next.pop() {
        if t == me {
            return true;
        }
        if seen.contains(&t) {
            continue;
        }
        seen.push(t);
        for (_, node) in waits.iter().filter(|(w, _)| *w == t) {
            next.extend(owner(&root_of(node)).0);
        }
    }
    false
}

/// Wait (releasing the link lock meanwhile) until some group's owner
/// leaves, registered as waiting for `roots`.
fn wait_for(
    g: MutexGuard<'static, ()>,
    me: ThreadId,
    roots: &[&Arc<Node>],
) -> MutexGuard<'static, ()> {
    lock(&WAITS).extend(roots.iter().map(|r| (me, Arc::clone(r))));
    let g = LEFT.wait(g).unwrap_or_else(|e| e.into_inner());
    lock(&WAITS).retain(|(t, _)| *t != me);
    g
}

fn link_lock() -> MutexGuard<'static, ()> {
    lock(&LINK)
}

/// A member of a group: an instance's core, freed when the group dies.
pub(crate) type Member = Arc<dyn std::any::Any + Send + Sync>;

/// Storage that can hold function references and outlive its instances:
/// a table or a host-made global cell.
pub(crate) trait Shared: Send + Sync {
    /// The group it belongs to (weak: it does not keep the group alive).
    fn group_slot(&self) -> &Mutex<Weak<Node>>;
    /// Set every function reference it holds to null. Called with no
    /// member of its group alive or running.
    fn scrub(&self);
}

/// One union-find node; a root holds the group.
pub(crate) struct Node {
    state: Mutex<State>,
}

enum State {
    Root(Root),
    Forward(Arc<Node>),
    Dead,
}

/// A member's vmctx.
#[derive(Clone, Copy)]
struct VmPtr(*mut VmCtx);

// SAFETY: the pointer is only dereferenced under the link lock, while the
// group (which owns the member's slot) is alive, to write the two fields
// no other thread touches then (see `Root::point_members`).
unsafe impl Send for VmPtr {}

/// The members of a live group and its handle count.
struct Root {
    handles: usize,
    members: Vec<Member>,
    /// The vmctx of each member, in `members` order.
    vms: Vec<VmPtr>,
    shared: Vec<Arc<dyn Shared>>,
    /// The thread that owns the group while any of its green threads is
    /// switched in (`entries`) or an instantiation holds it (`holds`).
    thread: Option<ThreadId>,
    /// The vmctx (exec) of each green thread switched in, innermost last.
    entries: Vec<VmPtr>,
    /// Instantiations linking to the group now ([`link_new`]).
    holds: usize,
}

impl Root {
    /// Point every member's `exec` and `stack_limit` at the innermost
    /// entry, or at the member's own when none is switched in.
    fn point_members(&self) {
        let top = self.entries.last().copied();
        for vm in &self.vms {
            let vm = vm.0;
            // SAFETY: members live as long as their group, and this one
            // is live (we hold its root). Only compiled code of this
            // group reads these fields, and none runs on another thread
            // (`thread`) nor, on this one, until the caller switches in.
            unsafe {
                let exec = top.map_or(vm, |t| t.0);
                (*vm).exec = exec;
                (*vm).stack_limit = (*exec).own_stack_limit;
            }
        }
    }
}

/// The root `node` forwards to; points the nodes on the way straight at
/// it. Caller holds the link lock.
fn root_of(node: &Arc<Node>) -> Arc<Node> {
    let mut path = Vec::new();
    let mut n = node.clone();
    loop {
        let next = {
            let state = lock(&n.state);
            match &*state {
                State::Forward(f) => f.clone(),
                _ => break,
            }
        };
        path.push(std::mem::replace(&mut n, next));
    }
    for p in path {
        *lock(&p.state) = State::Forward(n.clone());
    }
    n
}

fn is_live(root: &Arc<Node>) -> bool {
    matches!(&*lock(&root.state), State::Root(_))
}

fn size(root: &Arc<Node>) -> usize {
    match &*lock(&root.state) {
        State::Root(r) => r.members.len() + r.shared.len(),
        _ => 0,
    }
}

/// The owner thread and whether green threads are switched in.
fn owner(root: &Arc<Node>) -> (Option<ThreadId>, bool) {
    match &*lock(&root.state) {
        State::Root(r) => (r.thread, !r.entries.is_empty()),
        _ => (None, false),
    }
}

/// Two groups that both run code now, or are owned by two threads, cannot
/// merge (see [`link_new`]).
#[derive(Debug)]
pub(crate) struct BothRunning;

/// Waiting for a group would deadlock (see [`GroupHandle::enter`]).
#[derive(Debug)]
pub(crate) struct WouldDeadlock;

/// Why [`link_new`] refused.
#[derive(Debug)]
pub(crate) enum LinkRefused {
    /// Two of the groups run code now.
    BothRunning,
    /// Waiting for a group another thread runs would deadlock: that
    /// thread waits, directly or through others, for one this thread
    /// runs.
    WouldDeadlock,
}

impl From<BothRunning> for LinkRefused {
    fn from(_: BothRunning) -> LinkRefused {
        LinkRefused::BothRunning
    }
}

/// Merge the groups of `a` and `b` (the smaller into the larger). Caller
/// holds the link lock. Does nothing if either is dead. A group that
/// runs code now takes the other in: its members are pointed at the
/// running green thread at once. Two running groups are refused.
fn merge_locked(a: &Arc<Node>, b: &Arc<Node>) -> Result<(), BothRunning> {
    let (mut ra, mut rb) = (root_of(a), root_of(b));
    if Arc::ptr_eq(&ra, &rb) || !is_live(&ra) || !is_live(&rb) {
        return Ok(());
    }
    let ((ta, run_a), (tb, run_b)) = (owner(&ra), owner(&rb));
    let other_threads = matches!((ta, tb), (Some(x), Some(y)) if x != y);
    if (run_a && run_b) || other_threads {
        return Err(BothRunning);
    }
    if size(&rb) > size(&ra) {
        std::mem::swap(&mut ra, &mut rb);
    }
    let State::Root(moved) = std::mem::replace(&mut *lock(&rb.state), State::Forward(ra.clone()))
    else {
        unreachable!("checked live above");
    };
    for s in &moved.shared {
        *lock(s.group_slot()) = Arc::downgrade(&ra);
    }
    let mut state = lock(&ra.state);
    if let State::Root(r) = &mut *state {
        r.handles += moved.handles;
        r.members.extend(moved.members);
        r.vms.extend(moved.vms);
        r.shared.extend(moved.shared);
        if r.entries.is_empty() {
            r.entries = moved.entries;
        }
        r.thread = r.thread.or(moved.thread);
        r.holds += moved.holds;
        r.point_members();
    }
    Ok(())
}

/// A counted reference to a group: the group lives while a handle does.
pub(crate) struct GroupHandle(Arc<Node>);

impl GroupHandle {
    /// A new group whose only member is `member`, whose vmctx is `vm`
    /// (it must point its `exec` at itself and run no code); this is its
    /// one handle.
    pub(crate) fn new(member: Member, vm: *mut VmCtx) -> GroupHandle {
        GroupHandle(Arc::new(Node {
            state: Mutex::new(State::Root(Root {
                handles: 1,
                members: vec![member],
                vms: vec![VmPtr(vm)],
                shared: Vec::new(),
                thread: None,
                entries: Vec::new(),
                holds: 0,
            })),
        }))
    }

    /// This handle's node (for [`link_new`]).
    pub(crate) fn node(&self) -> Arc<Node> {
        self.0.clone()
    }

    /// Make `shared` part of this group: if it already belongs to a live
    /// group, the two groups merge (refused when both run, as in [`link_new`]).
    pub(crate) fn join(&self, shared: Arc<dyn Shared>) -> Result<(), BothRunning> {
        let _g = link_lock();
        join_locked(&self.0, shared)
    }

    /// Switch in the green thread whose exec is member vmctx `exec`:
    /// point every member at it until the returned guard is dropped (as
    /// the green thread is switched out). Waits while green threads of
    /// another thread run the group's code; entries on this thread nest.
    ///
    /// Refused if waiting would deadlock: the other thread waits, directly
    /// or through others, for a group this thread runs (two host
    /// functions on two threads each resuming a member of the other's
    /// group).
    pub(crate) fn enter(&self, exec: *mut VmCtx) -> Result<Entered<'_>, WouldDeadlock> {
        let me = std::thread::current().id();
        let mut g = link_lock();
        loop {
            let root = root_of(&self.0);
            let mut state = lock(&root.state);
            let State::Root(r) = &mut *state else {
                // Dead: no member can run (we hold a handle, so this
                // does not happen).
                break;
            };
            if r.thread.is_some_and(|t| t != me) {
                drop(state);
                if would_deadlock(me, &root) {
                    return Err(WouldDeadlock);
                }
                g = wait_for(g, me, &[&root]);
                continue;
            }
            r.thread = Some(me);
            r.entries.push(VmPtr(exec));
            r.point_members();
            break;
        }
        drop(g);
        Ok(Entered { group: self })
    }
}

/// A member's green thread switched in ([`GroupHandle::enter`]); dropping
/// it switches the group back to what ran before.
pub(crate) struct Entered<'a> {
    group: &'a GroupHandle,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        let _g = link_lock();
        let root = root_of(&self.group.0);
        let mut state = lock(&root.state);
        if let State::Root(r) = &mut *state {
            r.entries.pop();
            release(r);
            r.point_members();
        }
    }
}

/// Clear the owner of a group nothing runs or holds any more, and wake
/// the threads waiting for it.
fn release(r: &mut Root) {
    if r.entries.is_empty() && r.holds == 0 {
        r.thread = None;
        LEFT.notify_all();
    }
}

/// Make the group of a new instance whose vmctx is `vm`, linked to the
/// groups `groups` and to the storage `shared` (tables and host `funcref`
/// cells, joined whether or not they belong to a group yet), in one step
/// under the link lock, and hold it for this thread until the returned
/// [`Linking`] is finished or dropped.
///
/// Waits while another thread owns any of those groups. Refused, before
/// anything changes, if two of them run code now (entries on this
/// thread): the new instance could not follow both. The instance's
/// function references reach the other groups' code through its element
/// segments and its code runs from theirs as soon as it is in their
/// tables, so the instantiation links first and applies its segments
/// under the hold: no other thread runs the group meanwhile, and if this
/// one does (an instantiation from a host function), the new vmctx
/// follows its green thread at once.
pub(crate) fn link_new(
    vm: *mut VmCtx,
    groups: &[Arc<Node>],
    shared: &[Arc<dyn Shared>],
) -> Result<Linking, LinkRefused> {
    let me = std::thread::current().id();
    let mut g = link_lock();
    loop {
        let mut roots: Vec<Arc<Node>> = groups.iter().map(root_of).collect();
        roots.extend(
            shared
                .iter()
                .filter_map(|s| lock(s.group_slot()).upgrade())
                .map(|n| root_of(&n)),
        );
        roots.retain(is_live);
        let busy: Vec<&Arc<Node>> = roots
            .iter()
            .filter(|r| owner(r).0.is_some_and(|t| t != me))
            .collect();
        if !busy.is_empty() {
            if busy.iter().any(|r| would_deadlock(me, r)) {
                return Err(LinkRefused::WouldDeadlock);
            }
            g = wait_for(g, me, &busy);
            continue;
        }
        let mut running: Vec<&Arc<Node>> = Vec::new();
        for r in &roots {
            if owner(r).1 && !running.iter().any(|x| Arc::ptr_eq(x, r)) {
                running.push(r);
            }
        }
        if running.len() > 1 {
            return Err(LinkRefused::BothRunning);
        }
        break;
    }
    let node = Arc::new(Node {
        state: Mutex::new(State::Root(Root {
            handles: 1,
            members: Vec::new(),
            vms: vec![VmPtr(vm)],
            shared: Vec::new(),
            thread: Some(me),
            entries: Vec::new(),
            holds: 1,
        })),
    });
    // Neither refusal can happen now: at most one group runs, and all are
    // owned by this thread or by none.
    for other in groups {
        merge_locked(&node, other)?;
    }
    for s in shared {
        join_locked(&node, s.clone())?;
    }
    drop(g);
    Ok(Linking {
        group: Some(GroupHandle(node.clone())),
        held: Some(Held { nodes: vec![node] }),
        vm,
    })
}

/// A new instance's group, made and held by [`link_new`] while the
/// instance is built. [`Linking::finish`] makes the instance's core a
/// member and ends the hold; dropped unfinished (the instance failed
/// before it had a core to keep), it takes the vmctx back out of the
/// group, which must not point into a slot that is freed.
pub(crate) struct Linking {
    group: Option<GroupHandle>,
    /// Released when the linking ends, before the group's handle goes
    /// (which may end the group).
    held: Option<Held>,
    vm: *mut VmCtx,
}

impl Linking {
    /// Make `member` (the core that owns the vmctx) a member of the group
    /// and return the instance's handle; the hold ends.
    pub(crate) fn finish(mut self, member: Member) -> GroupHandle {
        let group = self.group.take().expect("finished once");
        {
            let _g = link_lock();
            let root = root_of(&group.0);
            let mut state = lock(&root.state);
            if let State::Root(r) = &mut *state {
                r.members.push(member);
            }
        }
        group
    }
}

impl Drop for Linking {
    fn drop(&mut self) {
        let Some(group) = self.group.take() else {
            return;
        };
        {
            let _g = link_lock();
            let root = root_of(&group.0);
            let mut state = lock(&root.state);
            if let State::Root(r) = &mut *state {
                r.vms.retain(|v| v.0 != self.vm);
            }
        }
        drop(self.held.take());
        drop(group);
    }
}

/// The hold of a group being linked ([`link_new`]).
pub(crate) struct Held {
    nodes: Vec<Arc<Node>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let _g = link_lock();
        for n in &self.nodes {
            let root = root_of(n);
            let mut state = lock(&root.state);
            if let State::Root(r) = &mut *state {
                r.holds = r.holds.saturating_sub(1);
                release(r);
            }
        }
        // A group that died meanwhile released no one: wake them anyway.
        LEFT.notify_all();
    }
}

impl Clone for GroupHandle {
    fn clone(&self) -> GroupHandle {
        let _g = link_lock();
        let root = root_of(&self.0);
        let mut state = lock(&root.state);
        if let State::Root(r) = &mut *state {
            r.handles += 1;
        }
        drop(state);
        GroupHandle(self.0.clone())
    }
}

impl Drop for GroupHandle {
    fn drop(&mut self) {
        let dead = {
            let _g = link_lock();
            let root = root_of(&self.0);
            let mut state = lock(&root.state);
            let last = match &mut *state {
                State::Root(r) => {
                    r.handles -= 1;
                    r.handles == 0
                }
                _ => false,
            };
            if !last {
                return;
            }
            let State::Root(r) = std::mem::replace(&mut *state, State::Dead) else {
                return;
            };
            // No handle is left, so no member can run: scrub what may
            // outlive the members, under the lock so that an instance
            // importing one of them now joins a fresh group after this.
            for s in &r.shared {
                s.scrub();
                *lock(s.group_slot()) = Weak::new();
            }
            r
        };
        // Freed outside the lock: a member's teardown may drop handles of
        // host-made imports that take it.
        drop(dead);
    }
}

/// Make `shared` part of `node`'s group (see [`GroupHandle::join`]).
/// Caller holds the link lock.
fn join_locked(node: &Arc<Node>, shared: Arc<dyn Shared>) -> Result<(), BothRunning> {
    let current = lock(shared.group_slot()).upgrade().map(|n| root_of(&n));
    let root = root_of(node);
    match current {
        Some(c) if Arc::ptr_eq(&c, &root) => return Ok(()),
        Some(c) if is_live(&c) => {
            // Its group's root list already holds it.
            return merge_locked(&root, &c);
        }
        _ => {}
    }
    *lock(shared.group_slot()) = Arc::downgrade(&root);
    let mut state = lock(&root.state);
    if let State::Root(r) = &mut *state {
        r.shared.push(shared);
    }
    Ok(())
}

impl std::fmt::Debug for GroupHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("GroupHandle")
            .field(&Arc::as_ptr(&self.0))
            .finish()
    }
}
