//! The artifact metadata: everything the runtime needs to know about an
//! artifact besides its code.

use crate::decls::*;
use crate::types::*;
use crate::vmctx;

/// Everything the runtime needs to know about an artifact besides its code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// [`crate::ABI_VERSION`] the artifact was built for.
    pub abi_version: u32,
    /// Fingerprint of the compiler's target settings (triple, every ISA
    /// flag, PIC and optimisation level): part of the source key, shown by
    /// `inspect`. Loading checks [`Metadata::target`] and
    /// [`Metadata::cpu_features`] instead.
    pub fingerprint: u64,
    /// The target the code was compiled for ([`crate::target::HOST_TARGET`]
    /// of the compiling host).
    pub target: String,
    /// The CPU features the code may use (Cranelift x86-64 setting names
    /// such as `has_avx2`): the runtime refuses the artifact on a CPU that
    /// lacks one ([`crate::target::host_has`]).
    pub cpu_features: Vec<String>,
    /// The source key the compiler recorded: `myriad_codegen::source_key` of the
    /// wasm bytes and compile settings it compiled (the key covers the ABI
    /// version and fingerprint too). All zero when no wasm source is
    /// recorded (e.g. hand-built artifacts). A cache uses an entry only when this equals
    /// the key of the request; it proves nothing about who wrote the file.
    pub source_key: [u8; 32],
    /// Guard bytes after the heap that compiled code relies on to elide the
    /// constant part of bounds checks (0: every check is complete).
    pub guard_bytes: u64,
    /// Bytes of address space the code relies on being reserved for the
    /// heap (inaccessible past its current length) ahead of the guard: at
    /// least 4 GiB means every 32-bit index lands in the reservation, so
    /// accesses with `offset + size <= guard_bytes` have no check at all
    /// ("sparse" mode). 0: no reliance. Non-zero only with `guard_bytes`.
    pub heap_reservation: u64,
    /// The guard bytes the compile asked for (part of the source key).
    /// The compiler relies on less than asked (`guard_bytes` 0) when the
    /// module cannot use a guard: no memory, an imported one, or pages
    /// under 4 KiB.
    pub requested_guard_bytes: u64,
    /// The heap reservation the compile asked for (part of the source
    /// key); see `requested_guard_bytes`.
    pub requested_heap_reservation: u64,
    /// Function signatures; `func_types` and function imports index into
    /// this.
    pub types: Vec<FuncType>,
    /// Imports in module order.
    pub imports: Vec<Import>,
    /// Type index of each defined function.
    pub func_types: Vec<u32>,
    /// The defined linear memory, if the module defines one.
    pub memory: Option<MemoryDecl>,
    /// Defined globals in index order (after the imported ones).
    pub globals: Vec<GlobalDecl>,
    /// Data segments (active and passive) in module order.
    pub data: Vec<DataSegment>,
    /// Defined tables in index order (after the imported ones).
    pub tables: Vec<TableDecl>,
    /// Element segments in module order.
    pub elems: Vec<ElemSegment>,
    /// Type index of each defined exception tag, in index order (after
    /// the imported ones). Each type has no results.
    pub tags: Vec<u32>,
    /// Precise reference type of each global (imports first); `None` for
    /// numeric globals. See [`RefPrecise`].
    pub global_refs: Vec<Option<RefPrecise>>,
    /// Precise element type of each table (imports first).
    pub table_refs: Vec<RefPrecise>,
    /// Whether compiled code or globals use `FUNC_REFS` (`ref.func`), so
    /// instances need the `FuncRef` array even without tables.
    pub func_refs: bool,
    /// Exports.
    pub exports: Vec<Export>,
    /// Start function (function index), if any.
    pub start: Option<u32>,
    /// Trap sites, sorted by (func_index, offset).
    pub traps: Vec<TrapSite>,
    /// The export wrappers, one per function of [`Metadata::wrapped_funcs`]
    /// in that order.
    pub wrappers: Vec<HelperCode>,
    /// The host stubs, one per function import in import order.
    pub stubs: Vec<HelperCode>,
}

impl Metadata {
    /// Imported functions' type indices, in import order.
    pub fn imported_funcs(&self) -> impl Iterator<Item = u32> + '_ {
        self.imports.iter().filter_map(|i| match i.kind {
            ImportKind::Func(t) => Some(t),
            _ => None,
        })
    }

    /// Number of imported functions (the first function indices).
    pub fn num_imported_funcs(&self) -> usize {
        self.imported_funcs().count()
    }

    /// Imported globals' types, in import order.
    pub fn imported_globals(&self) -> impl Iterator<Item = (ValType, bool)> + '_ {
        self.imports.iter().filter_map(|i| match i.kind {
            ImportKind::Global { ty, mutable } => Some((ty, mutable)),
            _ => None,
        })
    }

    /// Number of imported globals.
    pub fn num_imported_globals(&self) -> usize {
        self.imported_globals().count()
    }

    /// Imported tables, in import order.
    pub fn imported_tables(&self) -> impl Iterator<Item = &TableDecl> + '_ {
        self.imports.iter().filter_map(|i| match &i.kind {
            ImportKind::Table(t) => Some(t),
            _ => None,
        })
    }

    /// The imported memory's type, if the memory is imported.
    pub fn imported_memory(&self) -> Option<MemoryDecl> {
        self.imports.iter().find_map(|i| match i.kind {
            ImportKind::Memory(m) => Some(m),
            _ => None,
        })
    }

    /// Imported tags' type indices, in import order.
    pub fn imported_tags(&self) -> impl Iterator<Item = u32> + '_ {
        self.imports.iter().filter_map(|i| match i.kind {
            ImportKind::Tag(t) => Some(t),
            _ => None,
        })
    }

    /// Number of imported tags (the first tag indices).
    pub fn num_imported_tags(&self) -> usize {
        self.imported_tags().count()
    }

    /// Type index of tag `index` (imports first).
    pub fn tag_type_index(&self, index: u32) -> Option<u32> {
        let imported = self.num_imported_tags();
        match (index as usize).checked_sub(imported) {
            None => self.imported_tags().nth(index as usize),
            Some(d) => self.tags.get(d).copied(),
        }
    }

    /// Signature of tag `index` (imports first).
    pub fn tag_type(&self, index: u32) -> Option<&FuncType> {
        self.types.get(self.tag_type_index(index)? as usize)
    }

    /// Type index of function `index` (imports first).
    pub fn func_type_index(&self, index: u32) -> Option<u32> {
        let imported = self.num_imported_funcs();
        match (index as usize).checked_sub(imported) {
            None => self.imported_funcs().nth(index as usize),
            Some(d) => self.func_types.get(d).copied(),
        }
    }

    /// Signature of function `index` (imports first).
    pub fn func_type(&self, index: u32) -> Option<&FuncType> {
        self.types.get(self.func_type_index(index)? as usize)
    }

    /// Type and mutability of global `index` (imports first).
    pub fn global_type(&self, index: u32) -> Option<(ValType, bool)> {
        let imported = self.num_imported_globals();
        match (index as usize).checked_sub(imported) {
            None => self.imported_globals().nth(index as usize),
            Some(d) => self.globals.get(d).map(|g| (g.ty, g.mutable)),
        }
    }

    /// The vmctx layout of instances of this module.
    pub fn vmctx_layout(&self) -> vmctx::Layout {
        vmctx::Layout::new(
            self.globals.len(),
            self.num_imported_funcs(),
            self.num_imported_globals(),
            self.imported_memory().is_some(),
        )
    }

    /// Functions that get an array-call wrapper (`export_wrapper_symbol`):
    /// every exported function and the start function, sorted, unique.
    pub fn wrapped_funcs(&self) -> Vec<u32> {
        let mut wrapped: Vec<u32> = self
            .exports
            .iter()
            .filter(|e| e.kind == ExportKind::Func)
            .map(|e| e.index)
            .collect();
        wrapped.extend(self.start);
        wrapped.sort_unstable();
        wrapped.dedup();
        wrapped
    }
}

/// Why a metadata blob or artifact was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetadataError {
    /// The blob ended before a field was complete.
    #[error("artifact metadata is truncated")]
    Truncated,
    /// The blob's checksum does not match its contents.
    #[error("artifact metadata checksum mismatch: the artifact is corrupt")]
    Checksum,
    /// A field holds a value this ABI does not define.
    #[error("artifact metadata is malformed: {0}")]
    Malformed(&'static str),
    /// Built for another ABI version.
    #[error("artifact was built for Myriad ABI version {found}, this runtime needs {expected}")]
    AbiVersion {
        /// Version found in the artifact.
        found: u32,
        /// Version this build understands.
        expected: u32,
    },
}
