//! Types as the runtime compares them across modules: the process-wide
//! interner that gives every function signature a canonical id (what
//! `call_indirect` and linking compare), and precise reference types with
//! those ids (`CanonRef`).

use crate::sync::lock;
use myriad_abi::{FuncType, RefHeap, RefPrecise, ValType};
use std::collections::HashMap;

/// The process-wide id of signature `ty`: equal ids mean structurally
/// equal signatures (the map compares keys exactly; the hash only picks a
/// bucket). Ids are never reused. `None` when ids run out.
pub fn canonical_type_id(ty: &FuncType) -> Option<u32> {
    static INTERNER: std::sync::OnceLock<std::sync::Mutex<HashMap<FuncType, u32>>> =
        std::sync::OnceLock::new();
    let mut map = lock(INTERNER.get_or_init(Default::default));
    if let Some(id) = map.get(ty) {
        return Some(*id);
    }
    let id = u32::try_from(map.len()).ok()?;
    map.insert(ty.clone(), id);
    Some(id)
}

/// The precise type of a reference-typed global or table as the runtime
/// compares it: a [`RefPrecise`] whose `Concrete` heap type holds the
/// process-wide canonical type id instead of a module's type index (so
/// types of different modules compare). Made by `Module::canon_ref`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CanonRef(pub(crate) RefPrecise);

impl CanonRef {
    /// `funcref`/`externref` (nullable, abstract); `None` for numbers.
    pub(crate) fn plain(ty: ValType) -> Option<CanonRef> {
        RefPrecise::plain(ty).map(CanonRef)
    }

    /// Whether every value of `self` is a value of `other` (reference
    /// subtyping without GC: concrete function types match by identity).
    pub(crate) fn is_subtype_of(self, other: CanonRef) -> bool {
        use RefHeap::*;
        let (a, b) = (self.0, other.0);
        let heap = match (a.heap, b.heap) {
            (x, y) if x == y => true,
            (Concrete(_) | NoFunc, Func) | (NoFunc, Concrete(_)) | (NoExtern, Extern) => true,
            _ => false,
        };
        heap && (b.nullable || !a.nullable)
    }
}
