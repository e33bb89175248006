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
mod fuel_rewrite;
mod isa;
mod key;
mod shared_object;
mod translate;

use cranelift_codegen::ir::Function;
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::Context;
use cranelift_frontend::FunctionBuilderContext;

pub use error::CompileError;
pub use key::{hex, source_key};

use translate::func::{translate_function, FuncEnv};
use translate::wrapper;

/// Compile settings. Every field is part of [`source_key`].
///
/// The three bounds-check modes, from the most compact to the fastest:
///
/// * **dense** ([`CompileConfig::dense`], the default): every access is
///   checked completely; the code runs in any region (a million 16 KiB
///   slots).
/// * **guarded** ([`CompileConfig::guarded`]): `G` inaccessible bytes follow
///   the heap's current length; accesses with `offset + size <= G` check
///   only `index <= heap_len`. Needs a guard-mode region with guards of at
///   least `G`.
/// * **sparse** ([`CompileConfig::sparse`]): the heap also has a 4 GiB
///   reservation, so every 32-bit index lands in it and accesses with
///   `offset + size <= G` are not checked at all: the guard faults. Needs
///   a guard-mode region whose heap capacity is at least 4 GiB: for a
///   few big instances (what `myriad run` uses), not a million.
///
/// The guard settings are what the code may rely on, not a demand: a
/// module whose memory is imported (its guard would be another slot's),
/// whose pages are smaller than 4 KiB (its end would not be page aligned)
/// or that has no memory is compiled dense, and its metadata says so.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompileConfig {
    /// Inaccessible bytes the runtime guarantees after the heap's current
    /// length. With `G > 0`, accesses whose `offset + size <= G` check only
    /// `index <= heap_len` and rely on the guard to fault. 0 (the default)
    /// makes every bounds check complete.
    pub guard_bytes: u64,
    /// Address space the runtime reserves for the heap (inaccessible past
    /// the current length), ahead of the guard. With at least
    /// [`SPARSE_RESERVATION`] and `guard_bytes > 0`, accesses whose
    /// `offset + size <= guard_bytes` have no check. Ignored without
    /// `guard_bytes`.
    pub heap_reservation: u64,
}

/// The heap reservation of sparse mode: 4 GiB, every 32-bit index.
pub const SPARSE_RESERVATION: u64 = 1 << 32;
/// The guard of sparse mode: 32 MiB (offsets up to that are unchecked;
/// larger ones get a complete check).
pub const SPARSE_GUARD: u64 = 32 << 20;

impl CompileConfig {
    /// Dense mode: complete bounds checks everywhere.
    pub fn dense() -> CompileConfig {
        CompileConfig::default()
    }

    /// Guarded mode: rely on `guard_bytes` of faulting guard after the
    /// heap's length (0 is dense).
    pub fn guarded(guard_bytes: u64) -> CompileConfig {
        CompileConfig {
            guard_bytes,
            heap_reservation: 0,
        }
    }

    /// Sparse mode: a 4 GiB heap reservation and a [`SPARSE_GUARD`] guard;
    /// accesses with small offsets are unchecked.
    pub fn sparse() -> CompileConfig {
        CompileConfig {
            guard_bytes: SPARSE_GUARD,
            heap_reservation: SPARSE_RESERVATION,
        }
    }

    /// Whether these settings elide checks entirely (sparse).
    pub fn is_sparse(&self) -> bool {
        self.guard_bytes > 0 && self.heap_reservation >= SPARSE_RESERVATION
    }

    /// The settings the code of `module` actually relies on (recorded in
    /// its metadata): these, or dense when the memory is imported, has
    /// pages under 4 KiB, or does not exist.
    fn effective_for(&self, module: &translate::ModuleInfo<'_>) -> CompileConfig {
        let own_paged = module
            .memory
            .is_some_and(|m| m.page_size_log2 >= 12 && module.imported_memory.is_none());
        if own_paged && self.guard_bytes > 0 {
            CompileConfig {
                guard_bytes: self.guard_bytes,
                heap_reservation: self.heap_reservation,
            }
        } else {
            CompileConfig::dense()
        }
    }
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
    let run = || {
        let module = translate::parse_module(wasm)?;
        let effective = config.effective_for(&module);
        let env = FuncEnv {
            module: &module,
            config: &effective,
            call_conv: isa.default_call_conv(),
            frontend: isa.frontend_config(),
        };
        f(&isa, &env)
    };
    // Bodies are validated as they are compiled, in parallel; whatever
    // failed, an invalid module is reported by the validator's first error
    // in file order, as if all of it had been validated first.
    run().map_err(|e| match translate::validate_all(wasm) {
        Err(invalid) => invalid,
        Ok(()) => e,
    })
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
///
/// Threads take functions largest body first (longest-processing-time
/// order): the few big functions start at once instead of whenever their
/// index comes up, so no thread is left compiling one of them alone at
/// the end while the others idle.
fn compile_functions(
    isa: &OwnedTargetIsa,
    env: &FuncEnv,
) -> Result<Vec<artifact::CompiledFunction>, CompileError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let n = env.module.bodies.len();
    let index =
        |i: usize| u32::try_from(i).map_err(|_| CompileError::unsupported("too many functions"));
    let compile_one = |i: usize, fctx: &mut FunctionBuilderContext, ctx: &mut Context| {
        let i = index(i)?;
        let func = translate_function(env, i, fctx)?;
        artifact::compile_function(isa, ctx, func)
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
    let order = largest_first(&env.module.bodies);
    let next = AtomicUsize::new(0);
    // The lowest index that failed so far: functions above it are skipped
    // (their results could not be returned), those below still compile,
    // so the error returned is the first in index order whatever the
    // threads' timing.
    let first_failure = AtomicUsize::new(usize::MAX);
    let slots: Vec<Mutex<Option<Result<artifact::CompiledFunction, CompileError>>>> =
        (0..n).map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let (mut fctx, mut ctx) = (FunctionBuilderContext::new(), Context::new());
                while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if i > first_failure.load(Ordering::Relaxed) {
                        continue;
                    }
                    let r = compile_one(i, &mut fctx, &mut ctx);
                    if r.is_err() {
                        first_failure.fetch_min(i, Ordering::Relaxed);
                        // A failed translation leaves the builder context
                        // mid-function (only a finished one is cleared),
                        // and reusing it would corrupt the next function.
                        (fctx, ctx) = (FunctionBuilderContext::new(), Context::new());
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
            // Only functions above a failed one are skipped, and that
            // failure is returned first.
            None => return Err(CompileError::codegen("function compilation stopped")),
        }
    }
    Ok(out)
}

/// The indices of `bodies`, largest body first (ties in index order).
fn largest_first(bodies: &[wasmparser::FunctionBody<'_>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..bodies.len()).collect();
    order.sort_by_key(|&i| {
        let range = bodies[i].range();
        std::cmp::Reverse(range.end.saturating_sub(range.start))
    });
    order
}

/// Compile every function of `env`'s module and link the artifact.
fn emit_artifact(
    isa: &OwnedTargetIsa,
    env: &FuncEnv,
    requested: &CompileConfig,
    source_key: [u8; 32],
) -> Result<Vec<u8>, CompileError> {
    let module = env.module;
    // What the code relies on (dense for a module that cannot use guards).
    let config = env.config;
    let mut out = artifact::ArtifactBuilder::new(isa.clone(), module.func_types.len())?;

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
        let id = out.declare_helper(&abi::export_wrapper_symbol(index))?;
        let func = wrapper::build_wrapper(env, index, id, &mut fctx)?;
        wrappers.push(out.define_helper(id, func)?);
    }
    // A host stub per function import.
    let mut stubs = Vec::with_capacity(module.imported_funcs.len());
    for import in 0..module.imported_funcs.len() {
        let import = import as u32;
        let id = out.declare_helper(&abi::import_stub_symbol(import))?;
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
        heap_reservation: config.heap_reservation,
        requested_guard_bytes: requested.guard_bytes,
        requested_heap_reservation: requested.heap_reservation,
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
