//! Values that satisfy imports: functions (host or another instance's),
//! globals, memories, tables and (inert) exception tags, with what keeps
//! their owner alive.
//!
//! An export taken from an instance ([`crate::Instance::export`]) holds a
//! handle to that instance's link group (see `runtime/src/group.rs`), so the slot
//! (and its vmctx, memory and globals) outlives every instance that
//! imported from it. Instances
//! linked this way share state the way the WebAssembly spec says; they
//! must be run from one thread at a time (run them as one green thread,
//! or one after another), as a module's own state is not synchronised.

use crate::group::{GroupHandle, Node, Shared};
use crate::host::HostFunc;
use crate::table::Table;
use crate::types::CanonRef;
use crate::vmctx::VmCtx;
use crate::Val;
use myriad_abi::{FuncType, MemoryDecl, ValType};
use std::any::Any;
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Something that keeps a host-made import alive (an importer holds one
/// per host-made global or tag it imports).
pub type KeepAlive = Arc<dyn Any + Send + Sync>;

/// A value for one import.
#[derive(Clone, Debug)]
pub enum Extern {
    /// A function.
    Func(Func),
    /// A global.
    Global(Global),
    /// A linear memory.
    Memory(Memory),
    /// A table.
    Table(Arc<Table>),
    /// An exception tag (declared and linked only; see [`Tag`]).
    Tag(Tag),
}

impl Extern {
    /// The group of the instance this came from (none for host-made
    /// items and tables, which point at their group weakly).
    pub(crate) fn group(&self) -> Option<&GroupHandle> {
        match self {
            Extern::Func(Func::Wasm(w)) => Some(&w.owner),
            Extern::Global(Global {
                owner: GlobalOwner::Instance(h),
                ..
            }) => Some(h),
            Extern::Memory(m) => m.owner.as_ref(),
            _ => None,
        }
    }

    /// Whether this is an export of an instance (using it links the
    /// importer to that instance), rather than something the host made.
    pub fn is_from_instance(&self) -> bool {
        self.group().is_some()
    }

    /// What kind of item this is, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Extern::Func(_) => "function",
            Extern::Global(_) => "global",
            Extern::Memory(_) => "memory",
            Extern::Table(_) => "table",
            Extern::Tag(_) => "tag",
        }
    }
}

/// A function: a host closure or a wasm function of some instance.
#[derive(Clone, Debug)]
pub enum Func {
    /// A host function.
    Host(HostFunc),
    /// An exported wasm function.
    Wasm(WasmFunc),
}

impl Func {
    /// The function's signature.
    pub fn ty(&self) -> &FuncType {
        match self {
            Func::Host(h) => h.ty(),
            Func::Wasm(w) => &w.ty,
        }
    }
}

/// A wasm function exported by an instance: its code, the vmctx to call it
/// with, and its canonical type id.
#[derive(Clone)]
pub struct WasmFunc {
    pub(crate) code: usize,
    pub(crate) vmctx: usize,
    pub(crate) type_id: u64,
    pub(crate) ty: FuncType,
    /// The exporting instance's group.
    pub(crate) owner: GroupHandle,
}

impl WasmFunc {
    /// The function's signature. (Its funcref bits are not exposed.)
    pub fn ty(&self) -> &FuncType {
        &self.ty
    }
}

impl std::fmt::Debug for WasmFunc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmFunc").field("ty", &self.ty).finish()
    }
}

/// A global: an 8-byte cell in its owner's vmctx (or a host-made cell).
#[derive(Clone)]
pub struct Global {
    pub(crate) cell: *mut u64,
    pub(crate) ty: ValType,
    /// The precise reference type, for reference-typed globals.
    pub(crate) precise: Option<CanonRef>,
    pub(crate) mutable: bool,
    pub(crate) owner: GlobalOwner,
}

/// What keeps a global's cell alive.
#[derive(Clone)]
pub(crate) enum GlobalOwner {
    /// A cell in the vmctx of an instance of this group.
    Instance(GroupHandle),
    /// A host-made cell.
    Host(Arc<HostCell>),
}

/// Why a host-made extern could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExternError {
    /// The host cannot make function references: a non-null `funcref`
    /// would be a forged code pointer.
    #[error("a host-made global can hold only a null function reference")]
    FuncRefNotNull,
}

// SAFETY: the cell stays valid while `owner` lives; access follows the
// linking contract (one thread at a time).
unsafe impl Send for Global {}
// SAFETY: as above.
unsafe impl Sync for Global {}

impl Global {
    /// A host-made global holding `value` (its type is the value's). A
    /// `funcref` global must start null: the host cannot make function
    /// references.
    pub fn new(value: Val, mutable: bool) -> Result<Global, ExternError> {
        if matches!(value, Val::FuncRef(bits) if bits != 0) {
            return Err(ExternError::FuncRefNotNull);
        }
        let cell = Arc::new(HostCell {
            value: std::cell::UnsafeCell::new(value.to_bits()),
            ty: value.ty(),
            group: Mutex::new(Weak::new()),
        });
        Ok(Global {
            cell: cell.value.get(),
            ty: value.ty(),
            precise: CanonRef::plain(value.ty()),
            mutable,
            owner: GlobalOwner::Host(cell),
        })
    }

    /// The value type.
    pub fn ty(&self) -> ValType {
        self.ty
    }

    /// Whether it is mutable.
    pub fn is_mutable(&self) -> bool {
        self.mutable
    }

    /// The current value. No guest using the global may run meanwhile.
    pub fn get(&self) -> Val {
        // SAFETY: the cell is valid while `owner` lives (we hold it).
        Val::from_bits(self.ty, unsafe { self.cell.read() })
    }
}

impl std::fmt::Debug for Global {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Global")
            .field("ty", &self.ty)
            .field("mutable", &self.mutable)
            .field("value", &self.get())
            .finish()
    }
}

/// Owns a host-made global's cell. A mutable `funcref` cell joins the link
/// group of the instances that import it (they may store references in
/// it) and is scrubbed when that group dies.
pub(crate) struct HostCell {
    value: std::cell::UnsafeCell<u64>,
    ty: ValType,
    group: Mutex<Weak<Node>>,
}

impl Shared for HostCell {
    fn group_slot(&self) -> &Mutex<Weak<Node>> {
        &self.group
    }

    fn scrub(&self) {
        if self.ty == ValType::FuncRef {
            // SAFETY: no instance of the group is alive (see Shared::scrub)
            // and the host reads the cell only under the linking contract.
            unsafe { *self.value.get() = 0 };
        }
    }
}
// SAFETY: the cell is only accessed under the linking contract.
unsafe impl Send for HostCell {}
// SAFETY: as above.
unsafe impl Sync for HostCell {}

/// A linear memory: the vmctx of the instance that defines it (its heap
/// fields describe the memory) and its declared type.
#[derive(Clone)]
pub struct Memory {
    pub(crate) vmctx: *mut VmCtx,
    pub(crate) decl: MemoryDecl,
    /// The defining instance's group; `None` only for the copy an
    /// importing instance keeps (its link to the group is held apart).
    pub(crate) owner: Option<GroupHandle>,
}

// SAFETY: as for Global.
unsafe impl Send for Memory {}
// SAFETY: as above.
unsafe impl Sync for Memory {}

impl Memory {
    /// Current size in bytes.
    pub fn len(&self) -> u64 {
        // SAFETY: the owner's vmctx is valid while `owner` (or the importing instance's link) lives.
        unsafe { (*self.vmctx).heap_len }
    }

    /// Whether the memory is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Current size in pages.
    pub fn pages(&self) -> u64 {
        self.len() >> self.decl.page_size_log2
    }

    /// The declared type (minimum as declared, not the current size).
    pub fn decl(&self) -> MemoryDecl {
        self.decl
    }
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("decl", &self.decl)
            .field("len", &self.len())
            .finish()
    }
}

/// An exception tag: an identity and a function type (parameters only).
///
/// Tags are inert until exception handling lands: modules may declare,
/// import, export and re-export them, and linking checks their types, but
/// no instruction throws or catches yet (the compiler refuses `throw`,
/// `throw_ref`, `try_table` and the legacy `try` family).
///
/// Identity follows the WebAssembly spec: each instance gets a fresh tag
/// per tag it defines, an imported tag is the very tag supplied, and each
/// [`Tag::new`] makes a new one. Clones share the identity. `==` compares
/// identity, not types: two tags of the same type from different
/// instances are different tags.
#[derive(Clone)]
pub struct Tag(Arc<TagIdentity>);

/// What a [`Tag`] points to; its address is the tag's identity.
struct TagIdentity {
    ty: FuncType,
}

/// Why a host [`Tag`] could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TagError {
    /// A tag's function type must have no results.
    #[error("a tag's function type must have no results, got {0:?}")]
    HasResults(Vec<ValType>),
}

impl Tag {
    /// A new host tag of type `ty` (distinct from every other tag). Inert
    /// until exception handling lands; useful to satisfy tag imports.
    /// Fails if `ty` has results.
    pub fn new(ty: FuncType) -> Result<Tag, TagError> {
        if !ty.results.is_empty() {
            return Err(TagError::HasResults(ty.results));
        }
        Ok(Tag::fresh(ty))
    }

    /// A new tag without checking `ty` (a module's tag types were checked
    /// when its metadata was read).
    pub(crate) fn fresh(ty: FuncType) -> Tag {
        Tag(Arc::new(TagIdentity { ty }))
    }

    /// The tag's function type (its parameters are the exception's
    /// payload; it has no results).
    pub fn ty(&self) -> &FuncType {
        &self.0.ty
    }

    /// Whether `self` and `other` are the same tag (same identity).
    pub fn same(&self, other: &Tag) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Something that keeps this tag alive (its identity).
    pub(crate) fn keep_alive(&self) -> KeepAlive {
        self.0.clone()
    }
}

impl PartialEq for Tag {
    fn eq(&self, other: &Tag) -> bool {
        self.same(other)
    }
}

impl Eq for Tag {}

impl std::fmt::Debug for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tag")
            .field("id", &Arc::as_ptr(&self.0))
            .field("ty", &self.0.ty)
            .finish()
    }
}

/// The host functions among `imports`, by function-import index.
pub(crate) fn host_funcs(imports: &[Extern]) -> crate::host::HostFuncs {
    imports
        .iter()
        .filter_map(|e| match e {
            Extern::Func(Func::Host(h)) => Some(Some(h.clone())),
            Extern::Func(Func::Wasm(_)) => Some(None),
            _ => None,
        })
        .collect()
}

/// A module's resolved imports prepared for many instantiations
/// ([`crate::Instance::instantiate_imports`]): the externs (`externs()[i]`
/// for the module's import `i`) and the table of host functions every
/// instance shares, so an instantiation neither allocates a table nor
/// touches a host function's reference count.
#[derive(Clone, Debug)]
pub struct Imports {
    externs: Vec<Extern>,
    funcs: crate::host::HostFuncs,
    /// The module these externs last passed the import check for. The
    /// check's answer cannot change for the same module: types are
    /// immutable, and memories and tables only grow, which keeps a
    /// minimum met (maxima are declared, not current). The `Weak` keeps
    /// the module's allocation, so its address cannot denote another one.
    checked_for: OnceLock<Weak<crate::Module>>,
}

impl Imports {
    /// Prepare `externs` (as [`crate::Linker::resolve`] returns them).
    pub fn new(externs: Vec<Extern>) -> Imports {
        let funcs = host_funcs(&externs);
        Imports {
            externs,
            funcs,
            checked_for: OnceLock::new(),
        }
    }

    /// Whether the externs passed the import check for `module` before.
    pub(crate) fn checked_for(&self, module: &Arc<crate::Module>) -> bool {
        self.checked_for
            .get()
            .is_some_and(|m| std::ptr::eq(m.as_ptr(), Arc::as_ptr(module)))
    }

    /// Remember that the externs passed the import check for `module`
    /// (the first module only).
    pub(crate) fn mark_checked(&self, module: &Arc<crate::Module>) {
        let _ = self.checked_for.set(Arc::downgrade(module));
    }

    /// The externs, in the module's import order.
    pub fn externs(&self) -> &[Extern] {
        &self.externs
    }

    /// The shared host-function table.
    pub(crate) fn funcs(&self) -> &crate::host::HostFuncs {
        &self.funcs
    }
}
