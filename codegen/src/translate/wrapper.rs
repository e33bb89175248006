//! Array-call export wrappers `fn(vmctx, exec, values: *mut u64)` and
//! host-import stubs with the wasm function signature (`fn(vmctx,
//! params...) -> results`, see `abi`; a stub loads exec from its vmctx).
//!
//! A wrapper reads the parameters from `values[k]` (i32/f32 in the low four
//! bytes), keeps its caller's `r15` (callee-saved in the host's
//! convention), loads the fuel counter from `exec` into `r15` (the pinned
//! register, where compiled code keeps it), calls the function (directly,
//! or through its import record for a re-exported import), stores `r15`
//! back to `exec`, gives the caller its `r15` back and writes each result
//! to `values[k]` as a full 8-byte cell (i32/f32 zero-extended).
//!
//! A stub does the reverse for a function import bound to a host function:
//! it stores the fuel register to `exec` and its parameters as cells in a
//! stack buffer, calls the `host_call` builtin with the import's index,
//! reloads the fuel register from `exec` (the host charges it and may
//! refill it) and returns the results the host wrote back into the buffer.

use cranelift_codegen::ir::{
    self, types, AbiParam, ArgumentPurpose, InstBuilder, MemFlagsData, StackSlotData,
    StackSlotKind, UserFuncName, Value,
};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

use super::func::{import_callee, load_exec, set_stack_limit, FuncEnv};
use super::{ir_type, wasm_signature};
use crate::abi::{self, vmctx};
use crate::error::CompileError;

/// Signature of every export wrapper: `(vmctx, exec, values)`, with
/// `exec` as the `VMContext` parameter its stack-limit check reads.
pub(crate) fn wrapper_signature(call_conv: CallConv) -> ir::Signature {
    let mut sig = ir::Signature::new(call_conv);
    sig.params.push(AbiParam::new(types::I64));
    sig.params
        .push(AbiParam::special(types::I64, ArgumentPurpose::VMContext));
    sig.params.push(AbiParam::new(types::I64));
    sig
}

/// Build the wrapper for function `index` (imports first); `name_index`
/// names the wrapper function itself.
pub(crate) fn build_wrapper(
    env: &FuncEnv<'_>,
    index: u32,
    name_index: u32,
    fctx: &mut FunctionBuilderContext,
) -> Result<ir::Function, CompileError> {
    let module = env.module;
    let ty = module.func_type(index)?.clone();
    let mut func = ir::Function::with_name_signature(
        UserFuncName::user(0, name_index),
        wrapper_signature(env.call_conv),
    );
    // The wrapper's frame grows with the signature (outgoing arguments,
    // the callee's return area): it is checked like any function's.
    set_stack_limit(&mut func)?;
    let imported = module.imported_funcs.len() as u32;
    let direct = match index.checked_sub(imported) {
        Some(defined) => Some(import_callee(&mut func, env.call_conv, module, defined)?),
        None => None,
    };
    let mut b = FunctionBuilder::new(&mut func, fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let (vmctx, exec, values) = match b.block_params(entry) {
        [vmctx, exec, values] => (*vmctx, *exec, *values),
        _ => return Err(CompileError::codegen("wrapper signature")),
    };
    let flags = MemFlagsData::trusted();
    // The fuel counter goes in the pinned register for the call; the
    // caller's value of that register (callee-saved in the host's
    // convention) comes back to it before the wrapper returns.
    let host_r15 = b.ins().get_pinned_reg(types::I64);
    let fuel = b.ins().load(types::I64, flags, exec, vmctx::FUEL);
    b.ins().set_pinned_reg(fuel);
    let mut wasm = Vec::with_capacity(ty.params.len());
    for (k, p) in ty.params.iter().enumerate() {
        let off = cell_offset(k)?;
        wasm.push(b.ins().load(ir_type(*p), flags, values, off));
    }
    let call = match direct {
        Some(callee) => {
            let all = super::call_args(vmctx, &wasm);
            b.ins().call(callee, &all)
        }
        None => {
            let at = module.layout().func_import(index);
            let code = b.ins().load(types::I64, flags, vmctx, at);
            let callee_vmctx = b.ins().load(types::I64, flags, vmctx, at + 8);
            let sig = b.import_signature(wasm_signature(env.call_conv, &ty));
            let all = super::call_args(callee_vmctx, &wasm);
            b.ins().call_indirect(sig, code, &all)
        }
    };
    let results = b.inst_results(call).to_vec();
    let fuel = b.ins().get_pinned_reg(types::I64);
    b.ins().store(flags, fuel, exec, vmctx::FUEL);
    b.ins().set_pinned_reg(host_r15);
    for (k, (r, v)) in ty.results.iter().zip(results.iter().copied()).enumerate() {
        let off = cell_offset(k)?;
        let cell = to_cell(&mut b, *r, v);
        b.ins().store(flags, cell, values, off);
    }
    b.ins().return_(&[]);
    b.finalize(env.frontend);
    Ok(func)
}

/// Build the host stub of function import `import`; `name_index` names the
/// stub itself.
pub(crate) fn build_import_stub(
    env: &FuncEnv<'_>,
    import: u32,
    name_index: u32,
    fctx: &mut FunctionBuilderContext,
) -> Result<ir::Function, CompileError> {
    let ty = env.module.func_type(import)?.clone();
    let mut func = ir::Function::with_name_signature(
        UserFuncName::user(0, name_index),
        wasm_signature(env.call_conv, &ty),
    );
    // The stub's value buffer grows with the signature: checked too.
    set_stack_limit(&mut func)?;
    let mut b = FunctionBuilder::new(&mut func, fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let params = b.block_params(entry).to_vec();
    let (vmctx, wasm) = super::split_params(&ty.params, &params)
        .ok_or_else(|| CompileError::codegen("stub signature"))?;
    let exec = load_exec(&mut b, vmctx);
    let cells = ty.params.len().max(ty.results.len()).max(1);
    let bytes =
        u32::try_from(cells * 8).map_err(|_| CompileError::unsupported("too many parameters"))?;
    let slot = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, bytes, 3));
    let buf = b.ins().stack_addr(types::I64, slot, 0);
    let flags = MemFlagsData::trusted();
    let fuel = b.ins().get_pinned_reg(types::I64);
    b.ins().store(flags, fuel, exec, vmctx::FUEL);
    for (k, (p, v)) in ty.params.iter().zip(&wasm).enumerate() {
        let cell = to_cell(&mut b, *p, *v);
        b.ins().store(flags, cell, buf, cell_offset(k)?);
    }
    let mut sig = ir::Signature::new(env.call_conv);
    for _ in 0..4 {
        sig.params.push(AbiParam::new(types::I64));
    }
    let sig = b.import_signature(sig);
    let callee = b.ins().load(types::I64, flags, vmctx, vmctx::FN_HOST_CALL);
    let which = b.ins().iconst(types::I64, i64::from(import));
    b.ins()
        .call_indirect(sig, callee, &[vmctx, exec, which, buf]);
    let fuel = b.ins().load(types::I64, flags, exec, vmctx::FUEL);
    b.ins().set_pinned_reg(fuel);
    let mut results = Vec::with_capacity(ty.results.len());
    for (k, r) in ty.results.iter().enumerate() {
        results.push(b.ins().load(ir_type(*r), flags, buf, cell_offset(k)?));
    }
    b.ins().return_(&results);
    b.finalize(env.frontend);
    Ok(func)
}

/// `v` of type `ty` as a full 8-byte cell (i32/f32 zero-extended).
fn to_cell(b: &mut FunctionBuilder<'_>, ty: abi::ValType, v: Value) -> Value {
    match ty {
        abi::ValType::I32 => b.ins().uextend(types::I64, v),
        abi::ValType::I64 | abi::ValType::FuncRef | abi::ValType::ExternRef => v,
        abi::ValType::F32 => {
            let bits = b.ins().bitcast(types::I32, MemFlagsData::new(), v);
            b.ins().uextend(types::I64, bits)
        }
        abi::ValType::F64 => b.ins().bitcast(types::I64, MemFlagsData::new(), v),
    }
}

fn cell_offset(k: usize) -> Result<i32, CompileError> {
    k.checked_mul(8)
        .and_then(|o| i32::try_from(o).ok())
        .ok_or_else(|| CompileError::unsupported("too many parameters"))
}
