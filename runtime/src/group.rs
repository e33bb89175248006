//! Link groups: the unit of lifetime of instances that may hold each
//! other's function references.
//!
//! A function reference is a pointer to a record in its instance's vmctx or
//! table state. Once instance B's reference sits in storage that another
//! instance A (or the host) can reach, B must live as long as A can use
//! it. References flow "upward", from an importer into what it imports
//! from, through three channels only: an imported table (B stores into
//! it), an imported mutable `funcref` global, and an imported wasm function
//! with a `funcref` parameter (A's code may store the argument). Importing
//! any of these merges B into the exporter's group; the members of a group
//! live until the last handle to the group is gone, like a Wasmtime store.
//!
//! Handles ([`GroupHandle`]) are what keeps a group alive: the
//! [`crate::Instance`] of a grouped instance, every export taken from an
//! instance, and the "downward" link of an importer that is not merged
//! (B imports A's function without a `funcref` parameter: B keeps A's
//! group alive, A keeps nothing of B). Members never hold a handle to
//! their own group: merging prunes those links, so groups cannot keep
//! themselves alive.
//!
//! Tables and host-made `funcref` cells are [`Shared`]: they point back at
//! their group weakly, so a table the host still holds does not keep its
//! instances alive. When a group dies, its shared tables and cells are
//! scrubbed (function references set to null) before its instances are
//! freed, so a table that outlives its instances holds no dangling code
//! pointer.
//!
//! Instances that never link (the million tiny instances of the stress
//! job) have no group and pay nothing. All structure changes take one
//! process-wide lock; they happen at instantiation, export and teardown of
//! linked instances only.

use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Guards every node's state (merges, handle counts, teardown).
static LINK: Mutex<()> = Mutex::new(());

fn link_lock() -> MutexGuard<'static, ()> {
    LINK.lock().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A member of a group: an instance's core, which may hold downward links
/// to other groups.
pub(crate) trait Member: Send + Sync {
    /// Handles this member holds to the groups it imports from.
    fn links(&self) -> &Mutex<Vec<GroupHandle>>;
}

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
    members: Vec<Arc<dyn Member>>,
    shared: Vec<Arc<dyn Shared>>,
}

/// The root `node` forwards to. Caller holds the link lock.
fn root_of(node: &Arc<Node>) -> Arc<Node> {
    let mut n = node.clone();
    loop {
        let next = {
            let state = lock(&n.state);
            match &*state {
                State::Forward(f) => f.clone(),
                _ => break,
            }
        };
        n = next;
    }
    n
}

fn is_live(root: &Arc<Node>) -> bool {
    matches!(&*lock(&root.state), State::Root(_))
}

/// Merge `b`'s group into `a`'s. Caller holds the link lock; both live.
fn merge_locked(a: &Arc<Node>, b: &Arc<Node>) {
    let (ra, rb) = (root_of(a), root_of(b));
    if Arc::ptr_eq(&ra, &rb) {
        return;
    }
    let moved = std::mem::replace(&mut *lock(&rb.state), State::Forward(ra.clone()));
    let State::Root(moved) = moved else {
        // Not live: put it back as it was.
        *lock(&rb.state) = moved;
        return;
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
    pub(crate) fn new(member: Arc<dyn Member>) -> GroupHandle {
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

    /// Drop every member's links into this very group: after a merge they
    /// would keep the group alive from inside.
    pub(crate) fn prune_links(&self) {
        let mut pruned = Vec::new();
        {
            let _g = link_lock();
            let root = root_of(&self.0);
            let members: Vec<Arc<dyn Member>> = match &*lock(&root.state) {
                State::Root(r) => r.members.clone(),
                _ => Vec::new(),
            };
            for m in members {
                let mut links = lock(m.links());
                let mut i = 0;
                while i < links.len() {
                    if Arc::ptr_eq(&root_of(&links[i].0), &root) {
                        pruned.push(links.swap_remove(i));
                    } else {
                        i += 1;
                    }
                }
            }
        }
        // Dropped outside the lock (a drop takes it); the caller's own
        // handle keeps the count above zero.
        drop(pruned);
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
        // Freeing members may drop their links (handles to other groups),
        // which takes the lock again.
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
