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
//! Instances that never link (the million tiny instances of the stress
//! job, and everything the scheduler runs: it refuses imports from other
//! instances) have no group and pay nothing. All structure changes take
//! one process-wide lock; they happen at instantiation, export and
//! teardown of linked instances only. Merges are by size with path
//! compression, so forwarding chains stay short.

use crate::sync::lock;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Guards every node's state (merges, handle counts, teardown).
static LINK: Mutex<()> = Mutex::new(());

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

/// The members of a live group and its handle count.
struct Root {
    handles: usize,
    members: Vec<Member>,
    shared: Vec<Arc<dyn Shared>>,
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

/// Merge the groups of `a` and `b` (the smaller into the larger). Caller
/// holds the link lock. Does nothing if either is dead.
fn merge_locked(a: &Arc<Node>, b: &Arc<Node>) {
    let (mut ra, mut rb) = (root_of(a), root_of(b));
    if Arc::ptr_eq(&ra, &rb) || !is_live(&ra) || !is_live(&rb) {
        return;
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
        r.shared.extend(moved.shared);
    }
}

/// A counted reference to a group: the group lives while a handle does.
pub(crate) struct GroupHandle(Arc<Node>);

impl GroupHandle {
    /// A new group whose only member is `member`; this is its one handle.
    pub(crate) fn new(member: Member) -> GroupHandle {
        GroupHandle(Arc::new(Node {
            state: Mutex::new(State::Root(Root {
                handles: 1,
                members: vec![member],
                shared: Vec::new(),
            })),
        }))
    }

    /// Merge `other`'s group into this one.
    pub(crate) fn merge(&self, other: &GroupHandle) {
        let _g = link_lock();
        merge_locked(&self.0, &other.0);
    }

    /// Make `shared` part of this group: if it already belongs to a live
    /// group, the two groups merge.
    pub(crate) fn join(&self, shared: Arc<dyn Shared>) {
        let _g = link_lock();
        let current = lock(shared.group_slot()).upgrade().map(|n| root_of(&n));
        let root = root_of(&self.0);
        match current {
            Some(c) if Arc::ptr_eq(&c, &root) => return,
            Some(c) if is_live(&c) => {
                // Its group's root list already holds it.
                merge_locked(&root, &c);
                return;
            }
            _ => {}
        }
        *lock(shared.group_slot()) = Arc::downgrade(&root);
        let mut state = lock(&root.state);
        if let State::Root(r) = &mut *state {
            r.shared.push(shared);
        }
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

impl std::fmt::Debug for GroupHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("GroupHandle")
            .field(&Arc::as_ptr(&self.0))
            .finish()
    }
}
