//! WebAssembly to Cranelift IR.
//!
//! [`parse_module`] validates the module and collects everything the
//! artifact needs (types, memory, globals, data, exports, function bodies),
//! refusing what Myriad does not support. [`func::translate_function`]
//! translates one body to a Cranelift function; [`wrapper`] builds the
//! array-call export wrappers.

pub(crate) mod bulk;
pub(crate) mod control;
pub(crate) mod func;
pub(crate) mod memory;
pub(crate) mod meter;
pub(crate) mod numeric;
pub(crate) mod table;
pub(crate) mod wrapper;

use cranelift_codegen::ir::{self, AbiParam, ArgumentPurpose};
use cranelift_codegen::isa::CallConv;
use wasmparser::{
    CompositeInnerType, ConstExpr, DataKind, ElementItems, ElementKind, Encoding, ExternalKind,
    FuncToValidate, FunctionBody, Operator, Parser, Payload, RefType, TableInit, TypeRef,
    ValidPayload, Validator, ValidatorResources, WasmFeatures,
};

use crate::abi;
use crate::error::CompileError;

/// Everything the compiler needs from a validated module.
pub(crate) struct ModuleInfo<'a> {
    /// Every type in the type section (all function types).
    pub types: Vec<abi::FuncType>,
    /// Imports in module order.
    pub imports: Vec<abi::Import>,
    /// Type index of each imported function (the first function indices).
    pub imported_funcs: Vec<u32>,
    /// Type and mutability of each imported global (the first global
    /// indices).
    pub imported_globals: Vec<(abi::ValType, bool)>,
    /// Number of imported tables (the first table indices).
    pub imported_tables: usize,
    /// The imported memory's type, if the memory is imported.
    pub imported_memory: Option<abi::MemoryDecl>,
    /// Type index of each defined function.
    pub func_types: Vec<u32>,
    /// The defined linear memory, if any.
    pub memory: Option<abi::MemoryDecl>,
    /// Defined globals with their initialisers.
    pub globals: Vec<abi::GlobalDecl>,
    /// Data segments.
    pub data: Vec<abi::DataSegment>,
    /// Defined tables.
    pub tables: Vec<abi::TableDecl>,
    /// Element segments.
    pub elems: Vec<abi::ElemSegment>,
    /// Type index of each defined exception tag (declared, linkable, but
    /// never thrown: the translator refuses exception instructions).
    pub tags: Vec<u32>,
    /// Precise reference type of each global, imports first (`None` for
    /// numeric ones).
    pub global_refs: Vec<Option<abi::RefPrecise>>,
    /// Precise element type of each table, imports first.
    pub table_refs: Vec<abi::RefPrecise>,
    /// Set by the translator when a body uses `ref.func`.
    pub uses_ref_func: std::sync::atomic::AtomicBool,
    /// Exports.
    pub exports: Vec<abi::Export>,
    /// Start function.
    pub start: Option<u32>,
    /// Function bodies, in defined-function order. Not yet validated:
    /// [`func::translate_function`] validates each one with its entry in
    /// `validators` before translating it, so bodies are validated in
    /// parallel, on the threads that compile them.
    pub bodies: Vec<FunctionBody<'a>>,
    /// What validates each body, in defined-function order.
    pub validators: Vec<FuncToValidate<ValidatorResources>>,
}

impl ModuleInfo<'_> {
    /// Signature of function `index` (imports first).
    pub fn func_type(&self, index: u32) -> Result<&abi::FuncType, CompileError> {
        let imported = self.imported_funcs.len();
        let ty = match (index as usize).checked_sub(imported) {
            None => self.imported_funcs.get(index as usize),
            Some(d) => self.func_types.get(d),
        }
        .ok_or_else(|| CompileError::codegen(format!("function {index} out of range")))?;
        self.type_at(*ty)
    }

    /// Signature of defined function `index`.
    pub fn defined_func_type(&self, index: u32) -> Result<&abi::FuncType, CompileError> {
        let imported = u32::try_from(self.imported_funcs.len())
            .map_err(|_| CompileError::unsupported("too many imports"))?;
        self.func_type(imported + index)
    }

    /// Number of functions (imported and defined).
    pub fn num_funcs(&self) -> usize {
        self.imported_funcs.len() + self.func_types.len()
    }

    /// Type `index` of the type section.
    pub fn type_at(&self, index: u32) -> Result<&abi::FuncType, CompileError> {
        self.types
            .get(index as usize)
            .ok_or_else(|| CompileError::codegen(format!("type {index} out of range")))
    }

    /// The memory's type, imported or defined.
    pub fn memory_type(&self) -> Option<abi::MemoryDecl> {
        self.imported_memory.or(self.memory)
    }

    /// Number of tables (imported and defined).
    pub fn num_tables(&self) -> usize {
        self.imported_tables + self.tables.len()
    }

    /// The vmctx layout of instances of this module.
    pub fn layout(&self) -> abi::vmctx::Layout {
        abi::vmctx::Layout::new(
            self.globals.len(),
            self.imported_funcs.len(),
            self.imported_globals.len(),
            self.imported_memory.is_some(),
        )
    }
}

/// Features the validator accepts: its defaults plus custom page sizes.
/// The translator then refuses whatever it does not implement.
fn features() -> WasmFeatures {
    WasmFeatures::default() | WasmFeatures::CUSTOM_PAGE_SIZES
}

/// Validate `wasm`, all but its function bodies, and collect a
/// [`ModuleInfo`] (the bodies are validated as they are translated). Each
/// section is validated before it is read. Callers give the validator's
/// verdict precedence over other errors with [`validate_all`].
pub(crate) fn parse_module(wasm: &[u8]) -> Result<ModuleInfo<'_>, CompileError> {
    let mut validator = Validator::new_with_features(features());

    let mut info = ModuleInfo {
        types: Vec::new(),
        imports: Vec::new(),
        imported_funcs: Vec::new(),
        imported_globals: Vec::new(),
        imported_tables: 0,
        imported_memory: None,
        func_types: Vec::new(),
        memory: None,
        globals: Vec::new(),
        data: Vec::new(),
        tables: Vec::new(),
        elems: Vec::new(),
        tags: Vec::new(),
        global_refs: Vec::new(),
        table_refs: Vec::new(),
        uses_ref_func: std::sync::atomic::AtomicBool::new(false),
        exports: Vec::new(),
        start: None,
        bodies: Vec::new(),
        validators: Vec::new(),
    };
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload?;
        if let ValidPayload::Func(f, _) = validator.payload(&payload)? {
            info.validators.push(f);
        }
        match payload {
            Payload::Version { encoding, .. } => {
                if encoding != Encoding::Module {
                    return Err(CompileError::unsupported("components"));
                }
            }
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group?.types() {
                        match &sub.composite_type.inner {
                            CompositeInnerType::Func(f) => info.types.push(abi::FuncType {
                                params: val_types(f.params())?,
                                results: val_types(f.results())?,
                            }),
                            _ => return Err(CompileError::unsupported("GC types")),
                        }
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import?;
                    let kind = match import.ty {
                        TypeRef::Func(t) | TypeRef::FuncExact(t) => {
                            info.imported_funcs.push(t);
                            abi::ImportKind::Func(t)
                        }
                        TypeRef::Global(g) => {
                            if g.shared {
                                return Err(CompileError::unsupported("shared globals"));
                            }
                            let ty = val_type(g.content_type)?;
                            info.imported_globals.push((ty, g.mutable));
                            info.global_refs.push(ref_precise(g.content_type));
                            abi::ImportKind::Global {
                                ty,
                                mutable: g.mutable,
                            }
                        }
                        TypeRef::Memory(m) => {
                            if info.imported_memory.is_some() {
                                return Err(CompileError::unsupported("multiple memories"));
                            }
                            let m = memory_decl(&m)?;
                            info.imported_memory = Some(m);
                            abi::ImportKind::Memory(m)
                        }
                        TypeRef::Table(t) => {
                            info.imported_tables += 1;
                            info.table_refs.push(ref_precise_of(t.element_type));
                            abi::ImportKind::Table(table_decl(&t, abi::ConstExpr::null())?)
                        }
                        TypeRef::Tag(t) => abi::ImportKind::Tag(tag_type(&info, &t)?),
                    };
                    info.imports.push(abi::Import {
                        module: import.module.to_string(),
                        name: import.name.to_string(),
                        kind,
                    });
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    info.func_types.push(ty?);
                }
            }
            Payload::TableSection(reader) => {
                for table in reader {
                    let table = table?;
                    let init = match &table.init {
                        TableInit::RefNull => abi::ConstExpr::null(),
                        TableInit::Expr(e) => const_expr(e)?,
                    };
                    info.tables.push(table_decl(&table.ty, init)?);
                    info.table_refs.push(ref_precise_of(table.ty.element_type));
                }
            }
            Payload::MemorySection(reader) => {
                for mem in reader {
                    let mem = mem?;
                    if info.memory.is_some() || info.imported_memory.is_some() {
                        return Err(CompileError::unsupported("multiple memories"));
                    }
                    info.memory = Some(memory_decl(&mem)?);
                }
            }
            Payload::TagSection(reader) => {
                for tag in reader {
                    let t = tag_type(&info, &tag?)?;
                    info.tags.push(t);
                }
            }
            Payload::GlobalSection(reader) => {
                for global in reader {
                    let global = global?;
                    if global.ty.shared {
                        return Err(CompileError::unsupported("shared globals"));
                    }
                    info.global_refs.push(ref_precise(global.ty.content_type));
                    info.globals.push(abi::GlobalDecl {
                        ty: val_type(global.ty.content_type)?,
                        mutable: global.ty.mutable,
                        init: const_expr(&global.init_expr)?,
                    });
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export?;
                    let kind = match export.kind {
                        ExternalKind::Func | ExternalKind::FuncExact => abi::ExportKind::Func,
                        ExternalKind::Memory => abi::ExportKind::Memory,
                        ExternalKind::Global => abi::ExportKind::Global,
                        ExternalKind::Table => abi::ExportKind::Table,
                        ExternalKind::Tag => abi::ExportKind::Tag,
                    };
                    info.exports.push(abi::Export {
                        name: export.name.to_string(),
                        kind,
                        index: export.index,
                    });
                }
            }
            Payload::StartSection { func, .. } => info.start = Some(func),
            Payload::ElementSection(reader) => {
                for elem in reader {
                    let elem = elem?;
                    let mut items = Vec::new();
                    match elem.items {
                        ElementItems::Functions(funcs) => {
                            for f in funcs {
                                items.push(abi::ElemItem::Func(f?));
                            }
                        }
                        ElementItems::Expressions(ty, exprs) => {
                            ref_type(ty)?;
                            for e in exprs {
                                items.push(elem_item(&const_expr(&e?)?)?);
                            }
                        }
                    }
                    let mode = match elem.kind {
                        ElementKind::Passive => abi::ElemMode::Passive,
                        ElementKind::Declared => abi::ElemMode::Declared,
                        ElementKind::Active {
                            table_index,
                            offset_expr,
                        } => abi::ElemMode::Active {
                            table: table_index.unwrap_or(0),
                            offset: const_expr(&offset_expr)?,
                        },
                    };
                    info.elems.push(abi::ElemSegment { mode, items });
                }
            }
            Payload::DataSection(reader) => {
                for data in reader {
                    let data = data?;
                    match data.kind {
                        DataKind::Passive => info.data.push(abi::DataSegment {
                            passive: true,
                            offset: abi::ConstExpr::i32(0),
                            bytes: data.data.to_vec(),
                        }),
                        DataKind::Active {
                            memory_index,
                            offset_expr,
                        } => {
                            if memory_index != 0 {
                                return Err(CompileError::unsupported("multiple memories"));
                            }
                            info.data.push(abi::DataSegment {
                                passive: false,
                                offset: const_expr(&offset_expr)?,
                                bytes: data.data.to_vec(),
                            });
                        }
                    }
                }
            }
            Payload::CodeSectionEntry(body) => info.bodies.push(body),
            Payload::DataCountSection { .. }
            | Payload::CodeSectionStart { .. }
            | Payload::CustomSection(_)
            | Payload::End(_) => {}
            _ => return Err(CompileError::unsupported("component sections")),
        }
    }
    if info.bodies.len() != info.func_types.len() || info.validators.len() != info.bodies.len() {
        return Err(CompileError::codegen(
            "function and code section sizes differ",
        ));
    }
    Ok(info)
}

/// Validate all of `wasm`, bodies included, on this thread: the error to
/// report when compiling it failed in any way, since an invalid module is
/// reported as invalid (the validator's first error in file order) rather
/// than by whatever part of the compiler met the problem first.
pub(crate) fn validate_all(wasm: &[u8]) -> Result<(), CompileError> {
    Validator::new_with_features(features()).validate_all(wasm)?;
    Ok(())
}

/// Convert a wasm value type to the ABI's.
pub(crate) fn val_type(ty: wasmparser::ValType) -> Result<abi::ValType, CompileError> {
    match ty {
        wasmparser::ValType::I32 => Ok(abi::ValType::I32),
        wasmparser::ValType::I64 => Ok(abi::ValType::I64),
        wasmparser::ValType::F32 => Ok(abi::ValType::F32),
        wasmparser::ValType::F64 => Ok(abi::ValType::F64),
        wasmparser::ValType::V128 => Err(CompileError::unsupported("v128")),
        wasmparser::ValType::Ref(r) => ref_type(r),
    }
}

/// Convert a reference type. Function references of any kind (`funcref`,
/// `(ref null $t)`, `(ref $t)`, `nullfuncref`; types are all function types
/// as GC types are refused) share the funcref representation, `externref`
/// and `noextern` the externref one; validation already guarantees their
/// typing. Other heap types (GC) are refused.
pub(crate) fn ref_type(ty: RefType) -> Result<abi::ValType, CompileError> {
    use wasmparser::{AbstractHeapType as A, HeapType as H};
    match ty.heap_type() {
        H::Concrete(_)
        | H::Exact(_)
        | H::Abstract {
            shared: false,
            ty: A::Func | A::NoFunc,
        } => Ok(abi::ValType::FuncRef),
        H::Abstract {
            shared: false,
            ty: A::Extern | A::NoExtern,
        } => Ok(abi::ValType::ExternRef),
        _ => Err(CompileError::unsupported("GC reference types")),
    }
}

/// The precise reference type of a value type (`None` if numeric), for
/// link-time matching; call after [`val_type`] accepted it.
fn ref_precise(ty: wasmparser::ValType) -> Option<abi::RefPrecise> {
    match ty {
        wasmparser::ValType::Ref(r) => Some(ref_precise_of(r)),
        _ => None,
    }
}

/// The precise form of a reference type [`ref_type`] accepted.
fn ref_precise_of(ty: RefType) -> abi::RefPrecise {
    use wasmparser::{AbstractHeapType as A, HeapType as H};
    let heap = match ty.heap_type() {
        H::Concrete(i) | H::Exact(i) => match i.as_module_index() {
            Some(t) => abi::RefHeap::Concrete(t),
            None => abi::RefHeap::Func,
        },
        H::Abstract { ty: A::NoFunc, .. } => abi::RefHeap::NoFunc,
        H::Abstract {
            ty: A::NoExtern, ..
        } => abi::RefHeap::NoExtern,
        H::Abstract { ty: A::Extern, .. } => abi::RefHeap::Extern,
        _ => abi::RefHeap::Func,
    };
    abi::RefPrecise {
        nullable: ty.is_nullable(),
        heap,
    }
}

/// Convert a memory type, refusing what Myriad does not implement.
fn memory_decl(mem: &wasmparser::MemoryType) -> Result<abi::MemoryDecl, CompileError> {
    if mem.memory64 {
        return Err(CompileError::unsupported("memory64"));
    }
    if mem.shared {
        return Err(CompileError::unsupported("shared memory"));
    }
    let page_size_log2 = match mem.page_size_log2 {
        None => 16,
        Some(p @ (0 | 16)) => p as u8,
        Some(p) => return Err(CompileError::unsupported(format!("page size 2^{p}"))),
    };
    Ok(abi::MemoryDecl {
        min_pages: mem.initial,
        max_pages: mem.maximum,
        page_size_log2,
    })
}

/// The type index of a tag. Validation guarantees an exception tag whose
/// function type has no results; checked again here since the runtime
/// relies on it.
fn tag_type(info: &ModuleInfo<'_>, tag: &wasmparser::TagType) -> Result<u32, CompileError> {
    if !info.type_at(tag.func_type_idx)?.results.is_empty() {
        return Err(CompileError::codegen("tag type has results"));
    }
    Ok(tag.func_type_idx)
}

/// Convert a table type with its initial element.
fn table_decl(
    ty: &wasmparser::TableType,
    init: abi::ConstExpr,
) -> Result<abi::TableDecl, CompileError> {
    if ty.table64 {
        return Err(CompileError::unsupported("table64"));
    }
    if ty.shared {
        return Err(CompileError::unsupported("shared tables"));
    }
    Ok(abi::TableDecl {
        ty: ref_type(ty.element_type)?,
        min: ty.initial,
        max: ty.maximum,
        init,
    })
}

/// An element-segment item from its constant expression.
fn elem_item(e: &abi::ConstExpr) -> Result<abi::ElemItem, CompileError> {
    match e.0.as_slice() {
        [abi::ConstOp::RefNull] => Ok(abi::ElemItem::Null),
        [abi::ConstOp::RefFunc(f)] => Ok(abi::ElemItem::Func(*f)),
        [abi::ConstOp::GlobalGet(g)] => Ok(abi::ElemItem::Global(*g)),
        _ => Err(CompileError::unsupported(
            "element expressions other than ref.null, ref.func and global.get",
        )),
    }
}

fn val_types(tys: &[wasmparser::ValType]) -> Result<Vec<abi::ValType>, CompileError> {
    tys.iter().map(|t| val_type(*t)).collect()
}

/// The Cranelift type of an ABI value type.
pub(crate) fn ir_type(ty: abi::ValType) -> ir::Type {
    match ty {
        abi::ValType::I32 => ir::types::I32,
        abi::ValType::I64 => ir::types::I64,
        abi::ValType::F32 => ir::types::F32,
        abi::ValType::F64 => ir::types::F64,
        abi::ValType::FuncRef | abi::ValType::ExternRef => ir::types::I64,
    }
}

/// The native signature of a wasm function: `fn(vmctx, params...) ->
/// results`, the wasm parameters and results as they are. The vmctx
/// carries Cranelift's VMContext purpose: the stack-limit check reads
/// through it (`vmctx.stack_limit`). The fuel counter is no parameter:
/// it lives in the pinned register (`r15` on x86-64) in all compiled
/// code (see `FuncTranslator::fuel`).
pub(crate) fn wasm_signature(call_conv: CallConv, ty: &abi::FuncType) -> ir::Signature {
    let mut sig = ir::Signature::new(call_conv);
    sig.params.push(AbiParam::special(
        ir::types::I64,
        ArgumentPurpose::VMContext,
    ));
    sig.params
        .extend(ty.params.iter().map(|t| AbiParam::new(ir_type(*t))));
    sig.returns
        .extend(ty.results.iter().map(|t| AbiParam::new(ir_type(*t))));
    sig
}

/// The native arguments of a call of a wasm function: the callee's
/// vmctx, then the wasm arguments `wasm` ([`wasm_signature`]).
pub(crate) fn call_args(vmctx: ir::Value, wasm: &[ir::Value]) -> Vec<ir::Value> {
    let mut args = Vec::with_capacity(wasm.len() + 1);
    args.push(vmctx);
    args.extend_from_slice(wasm);
    args
}

/// A wasm function's native parameters `values` (of a function with wasm
/// parameters `params`) taken apart: `(vmctx, wasm parameters)`.
pub(crate) fn split_params(
    params: &[abi::ValType],
    values: &[ir::Value],
) -> Option<(ir::Value, Vec<ir::Value>)> {
    let (vmctx, wasm) = values.split_first()?;
    (wasm.len() == params.len()).then(|| (*vmctx, wasm.to_vec()))
}

/// Read a constant expression. Validation has already checked its typing
/// and that it is constant; this keeps the operators for the runtime to
/// evaluate at instantiation (a `global.get` may read an import).
fn const_expr(expr: &ConstExpr<'_>) -> Result<abi::ConstExpr, CompileError> {
    let mut ops = Vec::new();
    let mut reader = expr.get_operators_reader();
    loop {
        let op = reader.read()?;
        ops.push(match op {
            Operator::I32Const { value } => abi::ConstOp::I32(value as u32),
            Operator::I64Const { value } => abi::ConstOp::I64(value as u64),
            Operator::F32Const { value } => abi::ConstOp::F32(value.bits()),
            Operator::F64Const { value } => abi::ConstOp::F64(value.bits()),
            Operator::GlobalGet { global_index } => abi::ConstOp::GlobalGet(global_index),
            Operator::RefNull { .. } => abi::ConstOp::RefNull,
            Operator::RefFunc { function_index } => abi::ConstOp::RefFunc(function_index),
            Operator::I32Add => abi::ConstOp::I32Add,
            Operator::I32Sub => abi::ConstOp::I32Sub,
            Operator::I32Mul => abi::ConstOp::I32Mul,
            Operator::I64Add => abi::ConstOp::I64Add,
            Operator::I64Sub => abi::ConstOp::I64Sub,
            Operator::I64Mul => abi::ConstOp::I64Mul,
            Operator::End => break,
            other => {
                return Err(CompileError::unsupported(format!(
                    "{} in a constant expression",
                    op_name(&other)
                )))
            }
        });
    }
    if abi::ConstExpr(ops.clone()).eval(|_| 0, |_| 0).is_none() {
        return Err(CompileError::codegen("malformed constant expression"));
    }
    Ok(abi::ConstExpr(ops))
}

/// The text-format name of an operator, e.g. `f32.add` or `call_indirect`,
/// derived from its `Debug` name (`F32Add`, `CallIndirect`).
pub(crate) fn op_name(op: &Operator<'_>) -> String {
    const PREFIXES: &[&str] = &[
        "i32", "i64", "f32", "f64", "v128", "i8x16", "i16x8", "i32x4", "i64x2", "f32x4", "f64x2",
        "local", "global", "memory", "table", "ref", "data", "elem", "struct", "array", "i31",
        "any", "extern",
    ];
    let debug = format!("{op:?}");
    let camel = debug.split([' ', '{', '(']).next().unwrap_or_default();
    let mut words: Vec<String> = Vec::new();
    for ch in camel.chars() {
        if ch.is_ascii_uppercase() || words.is_empty() {
            words.push(String::new());
        }
        if let Some(word) = words.last_mut() {
            word.push(ch.to_ascii_lowercase());
        }
    }
    match words.split_first() {
        Some((first, rest)) if !rest.is_empty() && PREFIXES.contains(&first.as_str()) => {
            format!("{first}.{}", rest.join("_"))
        }
        _ => words.join("_"),
    }
}
