//! Checking a module's imports against what is supplied, keeping host-made
//! imports alive, and joining the link groups of linked instances.

use super::InstantiateError;
use crate::externs::{Extern, Global, GlobalOwner, KeepAlive};
use crate::group::{link_new, LinkRefused, Linking, Shared};
use crate::module::Module;
use crate::vmctx::VmCtx;
use myriad_abi::{ImportKind, ValType};
use std::sync::Arc;

/// What an importer keeps of a host-made import (host functions live in
/// its host state, tables in its table state; imports from instances are
/// kept alive by the link group).
pub(super) fn keep_alive(e: &Extern) -> Option<KeepAlive> {
    match e {
        Extern::Global(Global {
            owner: GlobalOwner::Host(cell),
            ..
        }) => Some(cell.clone()),
        Extern::Tag(t) => Some(t.keep_alive()),
        _ => None,
    }
}

/// Link a new instance whose vmctx is `vm` (see `crate::group::link_new`):
/// it joins the groups of every instance it imports from, of every table
/// it imports, and of every mutable host `funcref` global it imports (see
/// `crate::group` for why every link counts). `None`, and no cost, for an
/// instance that imports only host functions, immutable host globals,
/// tags or nothing.
pub(super) fn link(vm: *mut VmCtx, imports: &[Extern]) -> Result<Option<Linking>, LinkRefused> {
    let host_ref_cell = |g: &Global| match &g.owner {
        GlobalOwner::Host(cell) if g.mutable && g.ty == ValType::FuncRef => Some(cell.clone()),
        _ => None,
    };
    let mut groups = Vec::new();
    let mut shared: Vec<Arc<dyn Shared>> = Vec::new();
    for e in imports {
        if let Some(h) = e.group() {
            groups.push(h.node());
        }
        match e {
            Extern::Table(t) => shared.push(t.clone()),
            Extern::Global(g) => {
                if let Some(cell) = host_ref_cell(g) {
                    shared.push(cell);
                }
            }
            _ => {}
        }
    }
    if groups.is_empty() && shared.is_empty() {
        return Ok(None);
    }
    link_new(vm, &groups, &shared).map(Some)
}

/// Check `imports` against `module`'s import types (the spec's import
/// matching, with limits subtyping for memories and tables).
pub(super) fn check_imports(module: &Module, imports: &[Extern]) -> Result<(), InstantiateError> {
    let md = module.metadata();
    if imports.len() != md.imports.len() {
        return Err(InstantiateError::ImportCount {
            expected: md.imports.len(),
            given: imports.len(),
        });
    }
    // Global and table indices of the imports seen so far.
    let (mut gi, mut ti) = (0usize, 0usize);
    for (imp, ext) in md.imports.iter().zip(imports) {
        let bad = |reason: String| InstantiateError::IncompatibleImport {
            module: imp.module.clone(),
            name: imp.name.clone(),
            reason,
        };
        let limits_ok = |cur: u64, max: Option<u64>, want_min: u64, want_max: Option<u64>| {
            cur >= want_min
                && match want_max {
                    None => true,
                    Some(wm) => max.is_some_and(|m| m <= wm),
                }
        };
        match (&imp.kind, ext) {
            (ImportKind::Func(t), Extern::Func(f)) => {
                let want = &md.types[*t as usize];
                if f.ty() != want {
                    return Err(bad(format!(
                        "expected a function {want:?}, got {:?}",
                        f.ty()
                    )));
                }
            }
            (ImportKind::Global { ty, mutable }, Extern::Global(g)) => {
                let want = md.global_refs.get(gi).copied().flatten();
                gi += 1;
                // Typed references: a mutable global's type must equal the
                // import's, an immutable one's must be a subtype of it.
                let refs_ok = match (g.precise, want.map(|w| module.canon_ref(w))) {
                    (Some(have), Some(want)) if *mutable => have == want,
                    (Some(have), Some(want)) => have.is_subtype_of(want),
                    _ => true,
                };
                if !refs_ok {
                    return Err(bad(format!(
                        "expected a global of reference type {:?}, got one of {:?}",
                        want, g.precise
                    )));
                }
                if g.ty != *ty || g.mutable != *mutable {
                    return Err(bad(format!(
                        "expected a {}global of type {ty:?}, got a {}global of type {:?}",
                        if *mutable { "mutable " } else { "" },
                        if g.mutable { "mutable " } else { "" },
                        g.ty
                    )));
                }
            }
            (ImportKind::Memory(want), Extern::Memory(m)) => {
                if m.decl.page_size_log2 != want.page_size_log2
                    || !limits_ok(m.pages(), m.decl.max_pages, want.min_pages, want.max_pages)
                {
                    return Err(bad(format!(
                        "expected a memory {want:?}, got one of {} pages declared {:?}",
                        m.pages(),
                        m.decl
                    )));
                }
            }
            (ImportKind::Table(want), Extern::Table(t)) => {
                let want_ref = md.table_refs.get(ti).map(|w| module.canon_ref(*w));
                ti += 1;
                // Table element types are invariant.
                if want_ref.is_some_and(|w| w != t.precise()) {
                    return Err(bad(format!(
                        "expected a table of {want_ref:?}, got one of {:?}",
                        t.precise()
                    )));
                }
                if t.ty() != want.ty || !limits_ok(t.len(), t.declared_max(), want.min, want.max) {
                    return Err(bad(format!(
                        "expected a table of {:?} (min {}, max {:?}), got one of {} elements (max {:?})",
                        want.ty,
                        want.min,
                        want.max,
                        t.len(),
                        t.declared_max()
                    )));
                }
            }
            (ImportKind::Tag(t), Extern::Tag(tag)) => {
                // Tag types match exactly (params and results).
                let want = &md.types[*t as usize];
                if tag.ty() != want {
                    return Err(bad(format!(
                        "expected a tag {want:?}, got one of {:?}",
                        tag.ty()
                    )));
                }
            }
            (kind, ext) => {
                let want = match kind {
                    ImportKind::Func(_) => "function",
                    ImportKind::Global { .. } => "global",
                    ImportKind::Memory(_) => "memory",
                    ImportKind::Table(_) => "table",
                    ImportKind::Tag(_) => "tag",
                };
                return Err(bad(format!("expected a {want}, got a {}", ext.kind_name())));
            }
        }
    }
    Ok(())
}
