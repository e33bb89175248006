//! The artifact writer: Cranelift object code -> ELF object -> shared
//! object linked by the system C compiler, with the metadata blob and the
//! artifact hash cell.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{self, TrapCode};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::Context;
use cranelift_module::{
    default_libcall_names, DataDescription, FuncId, Linkage, Module, ModuleReloc,
};
use cranelift_object::{ObjectBuilder, ObjectModule};

use crate::abi::{self, HelperCode, TrapKind, TrapSite};
use crate::error::CompileError;

/// A defined function compiled to machine code, not yet placed in the
/// object: what [`compile_function`] produces on any thread.
pub(crate) struct CompiledFunction {
    bytes: Vec<u8>,
    alignment: u64,
    relocs: Vec<ModuleReloc>,
    /// `(offset, kind)` of each trap site.
    traps: Vec<(u32, TrapKind)>,
}

/// Compile `func` (defined function `index`, declared with FuncId `index`)
/// to machine code with `ctx`, which is left cleared. Runs on any thread:
/// the functions of a module compile in parallel, and are placed in the
/// object in index order afterwards.
pub(crate) fn compile_function(
    isa: &OwnedTargetIsa,
    ctx: &mut Context,
    index: u32,
    func: ir::Function,
) -> Result<CompiledFunction, CompileError> {
    ctx.func = func;
    ctx.compile(&**isa, &mut ControlPlane::default())
        .map_err(|e| match e.inner {
            cranelift_codegen::CodegenError::Verifier(errors) => CompileError::codegen(
                cranelift_codegen::print_errors::pretty_verifier_error(e.func, None, errors),
            ),
            other => CompileError::codegen(format!("{other:?}")),
        })?;
    let compiled = ctx
        .compiled_code()
        .ok_or_else(|| CompileError::codegen("no compiled code"))?;
    let buffer = &compiled.buffer;
    let id = FuncId::from_u32(index);
    let relocs = buffer
        .relocs()
        .iter()
        .map(|r| ModuleReloc::from_mach_reloc(r, &ctx.func, id))
        .collect();
    let mut traps = Vec::new();
    for trap in buffer.traps() {
        traps.push((trap.offset, trap_kind(trap.code)?));
    }
    let out = CompiledFunction {
        bytes: buffer.data().to_vec(),
        alignment: u64::from(buffer.alignment),
        relocs,
        traps,
    };
    ctx.clear();
    Ok(out)
}

/// Collects compiled functions and writes the shared object.
pub(crate) struct ArtifactBuilder {
    module: ObjectModule,
    funcs: Vec<FuncId>,
    ctx: Context,
}

impl ArtifactBuilder {
    /// Start an artifact whose defined functions have signatures `sigs`
    /// (function `i` is declared as `abi::func_symbol(i)` with FuncId `i`).
    pub fn new(isa: OwnedTargetIsa, sigs: &[ir::Signature]) -> Result<Self, CompileError> {
        let builder = ObjectBuilder::new(isa, "myriad", default_libcall_names())
            .map_err(|e| CompileError::codegen(e.to_string()))?;
        let mut module = ObjectModule::new(builder);
        let mut funcs = Vec::with_capacity(sigs.len());
        for (i, sig) in sigs.iter().enumerate() {
            let index =
                u32::try_from(i).map_err(|_| CompileError::unsupported("too many functions"))?;
            let id = module
                .declare_function(&abi::func_symbol(index), Linkage::Export, sig)
                .map_err(|e| CompileError::codegen(e.to_string()))?;
            // Translated code names callee `i` as user function (0, i).
            if id.as_u32() != index {
                return Err(CompileError::codegen("unexpected function id"));
            }
            funcs.push(id);
        }
        Ok(ArtifactBuilder {
            module,
            funcs,
            ctx: Context::new(),
        })
    }

    /// Declare an exported helper function (an export wrapper or an import
    /// stub) named `symbol`; returns its id, which is also the name index
    /// its IR should use.
    pub fn declare_helper(
        &mut self,
        symbol: &str,
        sig: &ir::Signature,
    ) -> Result<u32, CompileError> {
        let id = self
            .module
            .declare_function(symbol, Linkage::Export, sig)
            .map_err(|e| CompileError::codegen(e.to_string()))?;
        Ok(id.as_u32())
    }

    /// Define defined function `index` from its code compiled elsewhere
    /// ([`compile_function`]); returns its trap sites.
    pub fn define_compiled(
        &mut self,
        index: u32,
        code: CompiledFunction,
    ) -> Result<Vec<TrapSite>, CompileError> {
        let id = *self
            .funcs
            .get(index as usize)
            .ok_or_else(|| CompileError::codegen("function index out of range"))?;
        self.module
            .define_function_bytes(id, code.alignment, &code.bytes, &code.relocs)
            .map_err(|e| CompileError::codegen(format!("{e:?}")))?;
        Ok(code
            .traps
            .into_iter()
            .map(|(offset, kind)| TrapSite {
                func_index: index,
                offset,
                kind,
            })
            .collect())
    }

    /// Compile and define the helper with id `id` (from
    /// [`Self::declare_helper`]); returns its frame size and trap sites.
    pub fn define_helper(
        &mut self,
        id: u32,
        func: ir::Function,
    ) -> Result<HelperCode, CompileError> {
        self.define(FuncId::from_u32(id), func)?;
        let compiled = self
            .ctx
            .compiled_code()
            .ok_or_else(|| CompileError::codegen("no compiled code"))?;
        let below_fp = compiled
            .buffer
            .frame_layout()
            .ok_or_else(|| CompileError::codegen("no frame layout"))?
            .frame_to_fp_offset;
        // Return address and saved frame pointer, then everything below
        // the frame pointer.
        let frame_bytes = below_fp
            .checked_add(16)
            .ok_or_else(|| CompileError::codegen("frame too large"))?;
        let mut traps = Vec::new();
        for trap in compiled.buffer.traps() {
            traps.push((trap.offset, trap_kind(trap.code)?));
        }
        self.ctx.clear();
        Ok(HelperCode { frame_bytes, traps })
    }

    fn define(&mut self, id: FuncId, func: ir::Function) -> Result<(), CompileError> {
        self.ctx.func = func;
        self.module
            .define_function(id, &mut self.ctx)
            .map_err(|e| match e {
                cranelift_module::ModuleError::Compilation(
                    cranelift_codegen::CodegenError::Verifier(errors),
                ) => CompileError::codegen(cranelift_codegen::print_errors::pretty_verifier_error(
                    &self.ctx.func,
                    None,
                    errors,
                )),
                other => CompileError::codegen(format!("{other:?}")),
            })
    }

    /// Add the metadata and hash objects, write the object file, link it
    /// into a shared object and patch the artifact hash in.
    pub fn finish(mut self, metadata: &[u8]) -> Result<Vec<u8>, CompileError> {
        let len = u32::try_from(metadata.len())
            .map_err(|_| CompileError::unsupported("metadata larger than 4 GiB"))?;
        let mut blob = Vec::with_capacity(metadata.len() + 20);
        blob.extend_from_slice(&abi::METADATA_MARKER);
        blob.extend_from_slice(&len.to_le_bytes());
        blob.extend_from_slice(metadata);
        self.data_object(abi::METADATA_SYMBOL, blob)?;
        let mut cell = abi::HASH_MARKER.to_vec();
        cell.extend_from_slice(&[0u8; abi::HASH_LEN]);
        self.data_object(abi::HASH_SYMBOL, cell)?;

        let object = self
            .module
            .finish()
            .emit()
            .map_err(|e| CompileError::Link(format!("writing the object file: {e}")))?;
        let mut so = link(&object)?;
        patch_hash(&mut so)?;
        Ok(so)
    }

    fn data_object(&mut self, name: &str, bytes: Vec<u8>) -> Result<(), CompileError> {
        let id = self
            .module
            .declare_data(name, Linkage::Export, false, false)
            .map_err(|e| CompileError::codegen(e.to_string()))?;
        let mut data = DataDescription::new();
        data.define(bytes.into_boxed_slice());
        data.set_align(16);
        self.module
            .define_data(id, &data)
            .map_err(|e| CompileError::codegen(e.to_string()))
    }
}

/// Map a Cranelift trap code to the ABI's trap kind.
fn trap_kind(code: TrapCode) -> Result<TrapKind, CompileError> {
    Ok(match code {
        TrapCode::STACK_OVERFLOW => TrapKind::StackOverflow,
        TrapCode::HEAP_OUT_OF_BOUNDS => TrapKind::HeapOutOfBounds,
        TrapCode::INTEGER_OVERFLOW => TrapKind::IntegerOverflow,
        TrapCode::INTEGER_DIVISION_BY_ZERO => TrapKind::IntegerDivisionByZero,
        TrapCode::BAD_CONVERSION_TO_INTEGER => TrapKind::BadConversionToInteger,
        other => TrapKind::from_code(other.as_raw().get())
            .ok_or_else(|| CompileError::codegen(format!("unknown trap code {other}")))?,
    })
}

/// Check both markers occur exactly once and write the artifact hash.
fn patch_hash(so: &mut [u8]) -> Result<(), CompileError> {
    if abi::find_marker(so, &abi::METADATA_MARKER).is_none() {
        return Err(CompileError::Link(
            "the metadata marker does not occur exactly once in the artifact \
             (does a data segment or constant contain it?)"
                .into(),
        ));
    }
    let at = abi::find_marker(so, &abi::HASH_MARKER).ok_or_else(|| {
        CompileError::Link(
            "the hash marker does not occur exactly once in the artifact \
             (does a data segment or constant contain it?)"
                .into(),
        )
    })?;
    let hash = abi::artifact_hash(so, at);
    let cell = at + abi::HASH_MARKER.len();
    so.get_mut(cell..cell + abi::HASH_LEN)
        .ok_or_else(|| CompileError::Link("hash cell truncated".into()))?
        .copy_from_slice(&hash);
    Ok(())
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, CompileError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("myriad-{}-{n}", std::process::id()));
        // A stale directory from an earlier process with the same pid.
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        // Private (0700): the linked `.so` is read back from here, so no
        // other user may write into it. `create_dir` fails on a name
        // another user planted meanwhile rather than using it.
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&path)?;
        Ok(TempDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Link an object file into a shared object with the system `cc`.
fn link(object: &[u8]) -> Result<Vec<u8>, CompileError> {
    let dir = TempDir::new()?;
    let obj = dir.path().join("module.o");
    let out = dir.path().join("module.so");
    std::fs::write(&obj, object)?;
    let output = Command::new("cc")
        .args([
            "-shared",
            "-nostdlib",
            // Bind calls between functions inside the artifact directly.
            "-Wl,-Bsymbolic",
            // Cranelift's objects carry no .note.GNU-stack section.
            "-Wl,-z,noexecstack",
            "-Wl,-z,now",
            "-o",
        ])
        .arg(&out)
        .arg(&obj)
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                CompileError::Link(
                    "the system C compiler `cc` was not found; it is needed to link \
                     artifacts (install gcc or clang)"
                        .into(),
                )
            } else {
                CompileError::Link(format!("running `cc`: {e}"))
            }
        })?;
    if !output.status.success() {
        return Err(CompileError::Link(format!(
            "`cc -shared` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(std::fs::read(&out)?)
}
