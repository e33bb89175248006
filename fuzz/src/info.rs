//! What the comparison needs to know about a module, read with
//! `wasmparser`: its exports, function types, globals and tables.

use wasmparser::{ExternalKind, Parser, Payload, RefType, ValType};

/// A value type of the subset both engines run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// `f32`
    F32,
    /// `f64`
    F64,
    /// any function reference type
    FuncRef,
    /// any extern reference type
    ExternRef,
}

/// A function signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sig {
    /// Parameter types.
    pub params: Vec<Ty>,
    /// Result types.
    pub results: Vec<Ty>,
}

/// The parts of a module the comparison uses.
#[derive(Clone, Debug, Default)]
pub struct ModuleInfo {
    /// Number of imports of any kind.
    pub imports: usize,
    /// Signature of every function (the function index space).
    pub funcs: Vec<Sig>,
    /// Type of every global.
    pub globals: Vec<Ty>,
    /// Element type of every table.
    pub tables: Vec<Ty>,
    /// Whether the module has a memory.
    pub has_memory: bool,
    /// log2 of the memory's page size (16 without a memory).
    pub page_size_log2: u32,
    /// Exported functions in export order: (name, function index).
    pub func_exports: Vec<(String, u32)>,
    /// Exported globals: (name, global index).
    pub global_exports: Vec<(String, u32)>,
    /// Exported tables: (name, table index).
    pub table_exports: Vec<(String, u32)>,
    /// The exported memory's name, if it is exported.
    pub memory_export: Option<String>,
    /// Whether the module has a start function.
    pub has_start: bool,
}

fn ty(t: ValType) -> Option<Ty> {
    Some(match t {
        ValType::I32 => Ty::I32,
        ValType::I64 => Ty::I64,
        ValType::F32 => Ty::F32,
        ValType::F64 => Ty::F64,
        ValType::Ref(r) => ref_ty(r)?,
        ValType::V128 => return None,
    })
}

fn ref_ty(r: RefType) -> Option<Ty> {
    if r.is_func_ref() || r.is_concrete_type_ref() {
        Some(Ty::FuncRef)
    } else if r.is_extern_ref() {
        Some(Ty::ExternRef)
    } else {
        None
    }
}

impl ModuleInfo {
    /// Read `wasm`. Fails on anything that does not parse or uses types
    /// outside the compared subset (v128, GC types).
    pub fn parse(wasm: &[u8]) -> Result<ModuleInfo, String> {
        let mut info = ModuleInfo {
            page_size_log2: 16,
            ..ModuleInfo::default()
        };
        let mut types: Vec<Sig> = Vec::new();
        for payload in Parser::new(0).parse_all(wasm) {
            let payload = payload.map_err(|e| e.to_string())?;
            match payload {
                Payload::TypeSection(r) => {
                    for t in r.into_iter_err_on_gc_types() {
                        let f = t.map_err(|e| e.to_string())?;
                        let conv = |ts: &[ValType]| {
                            ts.iter()
                                .map(|t| ty(*t).ok_or("unsupported value type".to_string()))
                                .collect::<Result<Vec<Ty>, String>>()
                        };
                        types.push(Sig {
                            params: conv(f.params())?,
                            results: conv(f.results())?,
                        });
                    }
                }
                Payload::ImportSection(r) => {
                    for i in r.into_imports() {
                        i.map_err(|e| e.to_string())?;
                        info.imports += 1;
                    }
                }
                Payload::FunctionSection(r) => {
                    for t in r {
                        let t = t.map_err(|e| e.to_string())?;
                        let sig = types.get(t as usize).ok_or("type index out of range")?;
                        info.funcs.push(sig.clone());
                    }
                }
                Payload::TableSection(r) => {
                    for t in r {
                        let t = t.map_err(|e| e.to_string())?;
                        info.tables
                            .push(ref_ty(t.ty.element_type).ok_or("unsupported table type")?);
                    }
                }
                Payload::MemorySection(r) => {
                    for m in r {
                        let m = m.map_err(|e| e.to_string())?;
                        info.has_memory = true;
                        info.page_size_log2 = m.page_size_log2.unwrap_or(16);
                    }
                }
                Payload::GlobalSection(r) => {
                    for g in r {
                        let g = g.map_err(|e| e.to_string())?;
                        info.globals
                            .push(ty(g.ty.content_type).ok_or("unsupported global type")?);
                    }
                }
                Payload::ExportSection(r) => {
                    for e in r {
                        let e = e.map_err(|e| e.to_string())?;
                        let name = e.name.to_string();
                        match e.kind {
                            ExternalKind::Func => info.func_exports.push((name, e.index)),
                            ExternalKind::Global => info.global_exports.push((name, e.index)),
                            ExternalKind::Table => info.table_exports.push((name, e.index)),
                            ExternalKind::Memory => info.memory_export = Some(name),
                            _ => {}
                        }
                    }
                }
                Payload::StartSection { .. } => info.has_start = true,
                _ => {}
            }
        }
        Ok(info)
    }
}
