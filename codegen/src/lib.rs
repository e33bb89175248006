//! WebAssembly to native code: a translator on Cranelift, the instance ABI
//! shared with the runtime, and the ahead-of-time artifact writer.
//!
//! [`compile`] turns a wasm binary into the bytes of a shared object that
//! follows [`abi`]: one symbol per defined function, an array-call wrapper
//! per exported function, the metadata blob and the artifact hash.
//! [`source_key`] names what was compiled; artifact caches compare it with
//! the key of the wasm they are asked for.

#![warn(missing_docs)]

/// The instance ABI ([`myriad_abi`]), re-exported for the compiler's own
/// use and for callers that already depend on the compiler.
pub use myriad_abi as abi;
mod artifact;
mod error;
mod isa;
mod key;
mod translate;

use cranelift_codegen::ir::Function;
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::Context;
use cranelift_frontend::FunctionBuilderContext;

pub use error::CompileError;
pub use key::{hex, source_key};

use translate::func::{translate_function, FuncEnv};
use translate::{wasm_signature, wrapper};

/// Compile settings. Every field is part of [`source_key`].
#[derive(Clone, Debug, Default)]
pub struct CompileConfig {
    /// Inaccessible bytes the runtime guarantees after the heap's current
    /// length. With `G > 0`, accesses whose `offset + size <= G` check only
    /// `index <= heap_len` and rely on the guard to fault. 0 (the default)
    /// makes every bounds check complete.
    pub guard_bytes: u64,
}

/// Compile a wasm binary to a linked shared object; returns the `.so` file
/// bytes with the artifact hash patched in.
pub fn compile(wasm: &[u8], config: &CompileConfig) -> Result<Vec<u8>, CompileError> {
    with_front_end(wasm, config, |isa, env| {
        let key = key::source_key_for(wasm, config, isa::fingerprint(isa));
        emit_artifact(isa, env, config, key)
    })
}

/// Parse and validate `wasm`, then run `f` with the host ISA and the
/// translation environment: the setup `compile` and `translate_to_clif`
/// share.
fn with_front_end<R>(
    wasm: &[u8],
    config: &CompileConfig,
    f: impl FnOnce(&OwnedTargetIsa, &FuncEnv) -> Result<R, CompileError>,
) -> Result<R, CompileError> {
    let isa = isa::host_isa()?;
    let module = translate::parse_module(wasm)?;
    let env = FuncEnv {
        module: &module,
        config,
        call_conv: isa.default_call_conv(),
        frontend: isa.frontend_config(),
    };
    f(&isa, &env)
}

/// Translate every defined function in index order, handing each to `each`.
fn for_each_function(
    env: &FuncEnv,
    fctx: &mut FunctionBuilderContext,
    mut each: impl FnMut(u32, Function) -> Result<(), CompileError>,
) -> Result<(), CompileError> {
    for index in 0..env.module.bodies.len() {
        let index =
            u32::try_from(index).map_err(|_| CompileError::unsupported("too many functions"))?;
        each(index, translate_function(env, index, fctx)?)?;
    }
    Ok(())
}

/// Translate and compile every defined function of `env`'s module to
/// machine code, on one thread per core (at most one per function), and
/// return them in index order. The result does not depend on the number
/// of threads; the first error in index order is the one returned.
fn compile_functions(
    isa: &OwnedTargetIsa,
    env: &FuncEnv,
) -> Result<Vec<artifact::CompiledFunction>, CompileError> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;
    let n = env.module.bodies.len();
    let index =
        |i: usize| u32::try_from(i).map_err(|_| CompileError::unsupported("too many functions"));
    let compile_one = |i: usize, fctx: &mut FunctionBuilderContext, ctx: &mut Context| {
        let i = index(i)?;
        let func = translate_function(env, i, fctx)?;
        artifact::compile_function(isa, ctx, i, func)
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(n);
    // Small modules are not worth the threads.
    if threads <= 1 || n < 16 {
        let (mut fctx, mut ctx) = (FunctionBuilderContext::new(), Context::new());
        return (0..n)
            .map(|i| compile_one(i, &mut fctx, &mut ctx))
            .collect();
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let slots: Vec<Mutex<Option<Result<artifact::CompiledFunction, CompileError>>>> =
        (0..n).map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let (mut fctx, mut ctx) = (FunctionBuilderContext::new(), Context::new());
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let r = compile_one(i, &mut fctx, &mut ctx);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                }
            });
        }
    });
    let mut out = Vec::with_capacity(n);
    for slot in slots {
        match slot.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(r) => out.push(r?),
            // Skipped after an earlier failure (returned above, as every
            // lower index was compiled first).
            None => return Err(CompileError::codegen("function compilation stopped")),
        }
    }
    Ok(out)
}

/// Compile every function of `env`'s module and link the artifact.
fn emit_artifact(
    isa: &OwnedTargetIsa,
    env: &FuncEnv,
    config: &CompileConfig,
    source_key: [u8; 32],
) -> Result<Vec<u8>, CompileError> {
    let module = env.module;
    let sigs = module
        .func_types
        .iter()
        .map(|t| Ok(wasm_signature(env.call_conv, module.type_at(*t)?)))
        .collect::<Result<Vec<_>, CompileError>>()?;
    let mut out = artifact::ArtifactBuilder::new(isa.clone(), &sigs)?;

    let mut traps = Vec::new();
    for (index, code) in compile_functions(isa, env)?.into_iter().enumerate() {
        traps.extend(out.define_compiled(index as u32, code)?);
    }
    let mut fctx = FunctionBuilderContext::new();

    // Array-call wrappers for every exported function and the start
    // function, so the runtime calls all of them the same way.
    let wrapped = {
        let mut w: Vec<u32> = module
            .exports
            .iter()
            .filter(|e| e.kind == abi::ExportKind::Func)
            .map(|e| e.index)
            .collect();
        w.extend(module.start);
        w.sort_unstable();
        w.dedup();
        w
    };
    let mut wrappers = Vec::with_capacity(wrapped.len());
    for index in wrapped {
        let sig = wrapper::wrapper_signature(env.call_conv);
        let id = out.declare_helper(&abi::export_wrapper_symbol(index), &sig)?;
        let func = wrapper::build_wrapper(env, index, id, &mut fctx)?;
        wrappers.push(out.define_helper(id, func)?);
    }
    // A host stub per function import.
    let mut stubs = Vec::with_capacity(module.imported_funcs.len());
    for (import, ty) in module.imported_funcs.iter().enumerate() {
        let import = import as u32;
        let sig = wasm_signature(env.call_conv, module.type_at(*ty)?);
        let id = out.declare_helper(&abi::import_stub_symbol(import), &sig)?;
        let func = wrapper::build_import_stub(env, import, id, &mut fctx)?;
        stubs.push(out.define_helper(id, func)?);
    }

    traps.sort_by_key(|t| (t.func_index, t.offset));
    let metadata = abi::Metadata {
        abi_version: abi::ABI_VERSION,
        fingerprint: isa::fingerprint(isa),
        target: abi::target::HOST_TARGET.into(),
        cpu_features: isa::cpu_features(isa),
        source_key,
        guard_bytes: config.guard_bytes,
        types: module.types.clone(),
        imports: module.imports.clone(),
        func_types: module.func_types.clone(),
        memory: module.memory,
        globals: module.globals.clone(),
        data: module.data.clone(),
        tables: module.tables.clone(),
        elems: module.elems.clone(),
        tags: module.tags.clone(),
        global_refs: module.global_refs.clone(),
        table_refs: module.table_refs.clone(),
        func_refs: module
            .uses_ref_func
            .load(std::sync::atomic::Ordering::Relaxed)
            || !module.tables.is_empty()
            || !module.elems.is_empty()
            || module.globals.iter().any(|g| g.ty == abi::ValType::FuncRef),
        exports: module.exports.clone(),
        start: module.start,
        traps,
        wrappers,
        stubs,
    };
    out.finish(&metadata.encode())
}

/// Fingerprint of this host's target and CPU features as used for
/// compilation (part of the source key; the runtime checks the recorded
/// target and CPU features instead, see `myriad_abi::target`).
/// Returns 0 if the host ISA is not supported by Cranelift (no artifact can
/// be compiled for it, so none can match).
pub fn host_fingerprint() -> u64 {
    isa::host_isa().map_or(0, |isa| isa::fingerprint(&isa))
}

/// For tests and inspection: the CLIF text of every defined function after
/// translation, before optimisation.
pub fn translate_to_clif(wasm: &[u8], config: &CompileConfig) -> Result<Vec<String>, CompileError> {
    with_front_end(wasm, config, |_, env| {
        let mut fctx = FunctionBuilderContext::new();
        let mut out = Vec::new();
        for_each_function(env, &mut fctx, |_, func| {
            out.push(func.display().to_string());
            Ok(())
        })?;
        Ok(out)
    })
}
