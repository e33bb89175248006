//! The artifact writer: compiled functions, the metadata blob and the
//! artifact hash cell, linked in process into a shared object
//! ([`crate::shared_object`]).

use cranelift_codegen::binemit::Reloc;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{self, ExternalName, TrapCode};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::{Context, FinalizedRelocTarget};

use crate::abi::{self, HelperCode, TrapKind, TrapSite};
use crate::error::CompileError;
use crate::shared_object::{DataObject, FuncCode, PcRel32, SharedObject, Target};

/// A function compiled to machine code, not yet placed in the object:
/// what [`compile_function`] produces on any thread.
pub(crate) struct CompiledFunction {
    bytes: Vec<u8>,
    alignment: u64,
    relocs: Vec<PcRel32>,
    /// `(offset, kind)` of each trap site.
    traps: Vec<(u32, TrapKind)>,
    /// Bytes of its frame below the frame pointer.
    below_fp: Option<u32>,
}

/// Compile `func` to machine code with `ctx`, which is left cleared. Runs
/// on any thread: the functions of a module compile in parallel, and are
/// placed in the object in index order afterwards. Calls name their callee
/// as user function `(0, id)`, `id` being its index in the object.
pub(crate) fn compile_function(
    isa: &OwnedTargetIsa,
    ctx: &mut Context,
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
    let mut relocs = Vec::with_capacity(buffer.relocs().len());
    for r in buffer.relocs() {
        // Calls and RIP-relative references: all the x86-64 backend emits
        // for direct calls between colocated functions.
        if !matches!(
            r.kind,
            Reloc::X86CallPCRel4 | Reloc::X86CallPLTRel4 | Reloc::X86PCRel4
        ) {
            return Err(CompileError::codegen(format!(
                "relocation kind {:?} is not supported in artifacts",
                r.kind
            )));
        }
        let target = match &r.target {
            FinalizedRelocTarget::Func(offset) => Target::Local(*offset),
            FinalizedRelocTarget::ExternalName(ExternalName::User(name)) => {
                let name = &ctx.func.params.user_named_funcs()[*name];
                if name.namespace != 0 {
                    return Err(CompileError::codegen(format!(
                        "reference to namespace {} (only functions are referenced)",
                        name.namespace
                    )));
                }
                Target::Func(name.index)
            }
            other => {
                return Err(CompileError::codegen(format!(
                    "reference to {} (code may call only the artifact's own functions)",
                    other.display(Some(&ctx.func.params))
                )))
            }
        };
        relocs.push(PcRel32 {
            offset: r.offset,
            target,
            addend: r.addend,
        });
    }
    let mut traps = Vec::new();
    for trap in buffer.traps() {
        traps.push((trap.offset, trap_kind(trap.code)?));
    }
    let mut bytes = buffer.data().to_vec();
    // The first and last byte of each relocated field, and each trap site:
    // no rewrite may cover them.
    let keep: Vec<u32> = relocs
        .iter()
        .flat_map(|r| [r.offset, r.offset.saturating_add(3)])
        .chain(traps.iter().map(|&(offset, _)| offset))
        .collect();
    // Cranelift's `bb_starts` can hold one offset that is no instruction:
    // when the last block emitted is a lone `jmp` that the buffer's final
    // branch optimisation removes, its start stays reported, and is then
    // where the island begins (trap instructions, then constants, which
    // include a guest's `i64.const`s). Rewrite only below the last trap
    // site, which lies in or after that island's traps and before its
    // constants, and nothing in a function without one (every function
    // with a fuel check has one: its stack-limit check's).
    let code_end = traps
        .iter()
        .map(|&(offset, _)| offset as usize)
        .max()
        .unwrap_or(0);
    crate::fuel_rewrite::rewrite_checks(&mut bytes[..code_end], &compiled.bb_starts, &keep);
    let out = CompiledFunction {
        bytes,
        alignment: u64::from(buffer.alignment).max(isa.symbol_alignment()),
        relocs,
        traps,
        below_fp: buffer.frame_layout().map(|l| l.frame_to_fp_offset),
    };
    ctx.clear();
    Ok(out)
}

/// Collects compiled functions and writes the shared object.
pub(crate) struct ArtifactBuilder {
    isa: OwnedTargetIsa,
    /// Number of defined functions (ids `0..defined`).
    defined: u32,
    /// Every function by id: defined functions, then helpers as declared.
    /// `None` until defined.
    funcs: Vec<(String, Option<CompiledFunction>)>,
    ctx: Context,
}

impl ArtifactBuilder {
    /// Start an artifact with `defined` defined functions (function `i` is
    /// exported as `abi::func_symbol(i)` and has id `i`).
    pub fn new(isa: OwnedTargetIsa, defined: usize) -> Result<Self, CompileError> {
        let defined =
            u32::try_from(defined).map_err(|_| CompileError::unsupported("too many functions"))?;
        let funcs = (0..defined).map(|i| (abi::func_symbol(i), None)).collect();
        Ok(ArtifactBuilder {
            isa,
            defined,
            funcs,
            ctx: Context::new(),
        })
    }

    /// Declare an exported helper function (an export wrapper or an import
    /// stub) named `symbol`; returns its id, which is also the name index
    /// its IR should use.
    pub fn declare_helper(&mut self, symbol: &str) -> Result<u32, CompileError> {
        let id = u32::try_from(self.funcs.len())
            .map_err(|_| CompileError::unsupported("too many functions"))?;
        self.funcs.push((symbol.to_owned(), None));
        Ok(id)
    }

    /// Define defined function `index` from its code compiled elsewhere
    /// ([`compile_function`]); returns its trap sites.
    pub fn define_compiled(
        &mut self,
        index: u32,
        code: CompiledFunction,
    ) -> Result<Vec<TrapSite>, CompileError> {
        if index >= self.defined {
            return Err(CompileError::codegen("function index out of range"));
        }
        let traps = code
            .traps
            .iter()
            .map(|&(offset, kind)| TrapSite {
                func_index: index,
                offset,
                kind,
            })
            .collect();
        self.funcs[index as usize].1 = Some(code);
        Ok(traps)
    }

    /// Compile and define the helper with id `id` (from
    /// [`Self::declare_helper`]); returns its frame size and trap sites.
    pub fn define_helper(
        &mut self,
        id: u32,
        func: ir::Function,
    ) -> Result<HelperCode, CompileError> {
        if id < self.defined || id as usize >= self.funcs.len() {
            return Err(CompileError::codegen("helper id out of range"));
        }
        let code = compile_function(&self.isa, &mut self.ctx, func)?;
        let below_fp = code
            .below_fp
            .ok_or_else(|| CompileError::codegen("no frame layout"))?;
        // Return address and saved frame pointer, then everything below
        // the frame pointer.
        let frame_bytes = below_fp
            .checked_add(16)
            .ok_or_else(|| CompileError::codegen("frame too large"))?;
        let traps = code.traps.clone();
        self.funcs[id as usize].1 = Some(code);
        Ok(HelperCode { frame_bytes, traps })
    }

    /// Add the metadata and hash objects, link the shared object and patch
    /// the artifact hash in.
    pub fn finish(self, metadata: &[u8]) -> Result<Vec<u8>, CompileError> {
        let len = u32::try_from(metadata.len())
            .map_err(|_| CompileError::unsupported("metadata larger than 4 GiB"))?;
        let mut blob = Vec::with_capacity(metadata.len() + 20);
        blob.extend_from_slice(&abi::METADATA_MARKER);
        blob.extend_from_slice(&len.to_le_bytes());
        blob.extend_from_slice(metadata);
        let mut cell = abi::HASH_MARKER.to_vec();
        cell.extend_from_slice(&[0u8; abi::HASH_LEN]);
        let data = vec![
            DataObject {
                name: abi::METADATA_SYMBOL.into(),
                bytes: blob,
                alignment: 16,
            },
            DataObject {
                name: abi::HASH_SYMBOL.into(),
                bytes: cell,
                alignment: 16,
            },
        ];
        let mut funcs = Vec::with_capacity(self.funcs.len());
        for (name, code) in self.funcs {
            let code = code
                .ok_or_else(|| CompileError::codegen(format!("function `{name}` not defined")))?;
            funcs.push(FuncCode {
                name,
                bytes: code.bytes,
                alignment: code.alignment,
                relocs: code.relocs,
            });
        }
        let mut so = SharedObject { funcs, data }
            .write()
            .map_err(|e| CompileError::Link(e.to_string()))?;
        patch_hash(&mut so)?;
        Ok(so)
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
