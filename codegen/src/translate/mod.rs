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
pub(crate) mod numeric;
pub(crate) mod table;
pub(crate) mod wrapper;

use cranelift_codegen::ir::{self, AbiParam, ArgumentPurpose};
use cranelift_codegen::isa::CallConv;
use wasmparser::{
    CompositeInnerType, ConstExpr, DataKind, ElementItems, ElementKind, Encoding, ExternalKind,
    FunctionBody, Operator, Parser, Payload, RefType, TableInit, TypeRef, Validator, WasmFeatures,
};

use crate::abi;
use crate::error::CompileError;

/// Everything the compiler needs from a validated module.
pub(crate) struct ModuleInfo<'a> {
    /// Every type in the type section (all function types).
    pub types: Vec<abi::FuncType>,
    /// Type index of each defined function.
    pub func_types: Vec<u32>,
    /// The single linear memory, if any.
    pub memory: Option<abi::MemoryDecl>,
    /// Defined globals with their constant initial values.
    pub globals: Vec<abi::GlobalDecl>,
    /// Active data segments.
    pub data: Vec<abi::DataSegment>,
    /// Tables.
    pub tables: Vec<abi::TableDecl>,
    /// Element segments.
    pub elems: Vec<abi::ElemSegment>,
    /// Set by the translator when a body uses `ref.func`.
    pub uses_ref_func: std::cell::Cell<bool>,
    /// Function exports.
    pub exports: Vec<abi::Export>,
    /// Start function.
    pub start: Option<u32>,
    /// Function bodies, in defined-function order.
    pub bodies: Vec<FunctionBody<'a>>,
}

impl ModuleInfo<'_> {
    /// Signature of defined function `index`.
    pub fn func_type(&self, index: u32) -> Result<&abi::FuncType, CompileError> {
        let ty = self
            .func_types
            .get(index as usize)
            .ok_or_else(|| CompileError::codegen(format!("function {index} out of range")))?;
        self.type_at(*ty)
    }

    /// Type `index` of the type section.
    pub fn type_at(&self, index: u32) -> Result<&abi::FuncType, CompileError> {
        self.types
            .get(index as usize)
            .ok_or_else(|| CompileError::codegen(format!("type {index} out of range")))
    }
}

/// Features the validator accepts: its defaults plus custom page sizes.
/// The translator then refuses whatever it does not implement.
fn features() -> WasmFeatures {
    WasmFeatures::default() | WasmFeatures::CUSTOM_PAGE_SIZES
}

/// Validate `wasm` and collect a [`ModuleInfo`].
pub(crate) fn parse_module(wasm: &[u8]) -> Result<ModuleInfo<'_>, CompileError> {
    Validator::new_with_features(features()).validate_all(wasm)?;

    let mut info = ModuleInfo {
        types: Vec::new(),
        func_types: Vec::new(),
        memory: None,
        globals: Vec::new(),
        data: Vec::new(),
        tables: Vec::new(),
        elems: Vec::new(),
        uses_ref_func: std::cell::Cell::new(false),
        exports: Vec::new(),
        start: None,
        bodies: Vec::new(),
    };
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
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
                // Name function imports first: they are the common case.
                let mut first: Option<&'static str> = None;
                for import in reader.into_imports() {
                    let what = match import?.ty {
                        TypeRef::Func(_) | TypeRef::FuncExact(_) => {
                            return Err(CompileError::unsupported("function imports"))
                        }
                        TypeRef::Table(_) => "table imports",
                        TypeRef::Memory(_) => "memory imports",
                        TypeRef::Global(_) => "global imports",
                        TypeRef::Tag(_) => "tag imports",
                    };
                    first.get_or_insert(what);
                }
                if let Some(what) = first {
                    return Err(CompileError::unsupported(what));
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
                    if table.ty.table64 {
                        return Err(CompileError::unsupported("table64"));
                    }
                    if table.ty.shared {
                        return Err(CompileError::unsupported("shared tables"));
                    }
                    let ty = ref_type(table.ty.element_type)?;
                    let init = match &table.init {
                        TableInit::RefNull => None,
                        TableInit::Expr(e) => func_of(eval_const(e, &info.globals)?),
                    };
                    info.tables.push(abi::TableDecl {
                        ty,
                        min: table.ty.initial,
                        max: table.ty.maximum,
                        init,
                    });
                }
            }
            Payload::MemorySection(reader) => {
                for mem in reader {
                    let mem = mem?;
                    if info.memory.is_some() {
                        return Err(CompileError::unsupported("multiple memories"));
                    }
                    if mem.memory64 {
                        return Err(CompileError::unsupported("memory64"));
                    }
                    if mem.shared {
                        return Err(CompileError::unsupported("shared memory"));
                    }
                    let page_size_log2 = match mem.page_size_log2 {
                        None => 16,
                        Some(p @ (0 | 16)) => p as u8,
                        Some(p) => {
                            return Err(CompileError::unsupported(format!("page size 2^{p}")))
                        }
                    };
                    info.memory = Some(abi::MemoryDecl {
                        min_pages: mem.initial,
                        max_pages: mem.maximum,
                        page_size_log2,
                    });
                }
            }
            Payload::TagSection(_) => return Err(CompileError::unsupported("tag section")),
            Payload::GlobalSection(reader) => {
                for global in reader {
                    let global = global?;
                    if global.ty.shared {
                        return Err(CompileError::unsupported("shared globals"));
                    }
                    let ty = val_type(global.ty.content_type)?;
                    let init = eval_const(&global.init_expr, &info.globals)?;
                    info.globals.push(abi::GlobalDecl {
                        ty,
                        mutable: global.ty.mutable,
                        init,
                    });
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export?;
                    match export.kind {
                        ExternalKind::Func | ExternalKind::FuncExact => {
                            info.exports.push(abi::Export {
                                name: export.name.to_string(),
                                func_index: export.index,
                            })
                        }
                        // Exporting the memory or a global needs nothing from
                        // compiled code; the runtime does not expose them.
                        ExternalKind::Memory | ExternalKind::Global => {}
                        // Tables are not linked yet; exporting one needs nothing.
                        ExternalKind::Table => {}
                        ExternalKind::Tag => return Err(CompileError::unsupported("tag exports")),
                    }
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
                                items.push(Some(f?));
                            }
                        }
                        ElementItems::Expressions(ty, exprs) => {
                            ref_type(ty)?;
                            for e in exprs {
                                items.push(func_of(eval_const(&e?, &info.globals)?));
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
                            offset: eval_const(&offset_expr, &info.globals)? as u32,
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
                            offset: 0,
                            bytes: data.data.to_vec(),
                        }),
                        DataKind::Active {
                            memory_index,
                            offset_expr,
                        } => {
                            if memory_index != 0 {
                                return Err(CompileError::unsupported("multiple memories"));
                            }
                            let offset = eval_const(&offset_expr, &info.globals)?;
                            info.data.push(abi::DataSegment {
                                passive: false,
                                // An i32 offset is unsigned in memory terms.
                                offset: offset & 0xffff_ffff,
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
    if info.bodies.len() != info.func_types.len() {
        return Err(CompileError::codegen(
            "function and code section sizes differ",
        ));
    }
    Ok(info)
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

/// A constant reference value (`function index + 1`, 0 for null) as a
/// function index.
fn func_of(bits: u64) -> Option<u32> {
    bits.checked_sub(1).map(|f| f as u32)
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

/// The native signature of a wasm function: `fn(vmctx, params...) -> results`.
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

/// Evaluate a constant expression to the raw bits of a global cell
/// (i32/f32 zero-extended; a reference is `function index + 1`, 0 for
/// null). `globals` are the globals defined so far.
fn eval_const(expr: &ConstExpr<'_>, globals: &[abi::GlobalDecl]) -> Result<u64, CompileError> {
    // Values are kept as i64 bits; i32 arithmetic wraps at 32 bits.
    let mut stack: Vec<u64> = Vec::new();
    let mut reader = expr.get_operators_reader();
    let bad = || CompileError::codegen("malformed constant expression");
    loop {
        let op = reader.read()?;
        match op {
            Operator::I32Const { value } => stack.push(u64::from(value as u32)),
            Operator::I64Const { value } => stack.push(value as u64),
            Operator::F32Const { value } => stack.push(u64::from(value.bits())),
            Operator::F64Const { value } => stack.push(value.bits()),
            Operator::GlobalGet { global_index } => {
                let g = globals.get(global_index as usize).ok_or_else(bad)?;
                stack.push(g.init);
            }
            Operator::RefNull { .. } => stack.push(0),
            Operator::RefFunc { function_index } => stack.push(u64::from(function_index) + 1),
            Operator::I32Add | Operator::I32Sub | Operator::I32Mul => {
                let b = stack.pop().ok_or_else(bad)? as u32;
                let a = stack.pop().ok_or_else(bad)? as u32;
                let r = match op {
                    Operator::I32Add => a.wrapping_add(b),
                    Operator::I32Sub => a.wrapping_sub(b),
                    _ => a.wrapping_mul(b),
                };
                stack.push(u64::from(r));
            }
            Operator::I64Add | Operator::I64Sub | Operator::I64Mul => {
                let b = stack.pop().ok_or_else(bad)?;
                let a = stack.pop().ok_or_else(bad)?;
                stack.push(match op {
                    Operator::I64Add => a.wrapping_add(b),
                    Operator::I64Sub => a.wrapping_sub(b),
                    _ => a.wrapping_mul(b),
                });
            }
            Operator::End => break,
            other => {
                return Err(CompileError::unsupported(format!(
                    "{} in a constant expression",
                    op_name(&other)
                )))
            }
        }
    }
    match stack.as_slice() {
        [v] => Ok(*v),
        _ => Err(bad()),
    }
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
