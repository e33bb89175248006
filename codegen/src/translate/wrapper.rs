//! Array-call export wrappers: `fn(vmctx, values: *mut u64)`.
//!
//! A wrapper reads the parameters from `values[k]` (i32/f32 in the low four
//! bytes), calls the function directly and writes each result to
//! `values[k]` as a full 8-byte cell (i32/f32 zero-extended).

use cranelift_codegen::ir::{
    self, types, AbiParam, ArgumentPurpose, InstBuilder, MemFlagsData, UserFuncName,
};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

use super::func::{import_callee, FuncEnv};
use super::ir_type;
use crate::abi;
use crate::error::CompileError;

/// Signature of every export wrapper.
pub(crate) fn wrapper_signature(call_conv: CallConv) -> ir::Signature {
    let mut sig = ir::Signature::new(call_conv);
    sig.params
        .push(AbiParam::special(types::I64, ArgumentPurpose::VMContext));
    sig.params.push(AbiParam::new(types::I64));
    sig
}

/// Build the wrapper for defined function `index`; `name_index` names the
/// wrapper function itself.
pub(crate) fn build_wrapper(
    env: &FuncEnv<'_>,
    index: u32,
    name_index: u32,
    fctx: &mut FunctionBuilderContext,
) -> Result<ir::Function, CompileError> {
    let ty = env.module.func_type(index)?.clone();
    let mut func = ir::Function::with_name_signature(
        UserFuncName::user(0, name_index),
        wrapper_signature(env.call_conv),
    );
    let callee = import_callee(&mut func, env.call_conv, env.module, index)?;
    let mut b = FunctionBuilder::new(&mut func, fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let (vmctx, values) = match b.block_params(entry) {
        [vmctx, values] => (*vmctx, *values),
        _ => return Err(CompileError::codegen("wrapper signature")),
    };
    let flags = MemFlagsData::trusted();
    let mut args = vec![vmctx];
    for (k, p) in ty.params.iter().enumerate() {
        let off = cell_offset(k)?;
        args.push(b.ins().load(ir_type(*p), flags, values, off));
    }
    let call = b.ins().call(callee, &args);
    let results = b.inst_results(call).to_vec();
    for (k, (r, v)) in ty.results.iter().zip(results).enumerate() {
        let off = cell_offset(k)?;
        let cell = match r {
            abi::ValType::I32 => b.ins().uextend(types::I64, v),
            abi::ValType::I64 | abi::ValType::FuncRef | abi::ValType::ExternRef => v,
            abi::ValType::F32 => {
                let bits = b.ins().bitcast(types::I32, MemFlagsData::new(), v);
                b.ins().uextend(types::I64, bits)
            }
            abi::ValType::F64 => b.ins().bitcast(types::I64, MemFlagsData::new(), v),
        };
        b.ins().store(flags, cell, values, off);
    }
    b.ins().return_(&[]);
    b.finalize(env.frontend);
    Ok(func)
}

fn cell_offset(k: usize) -> Result<i32, CompileError> {
    k.checked_mul(8)
        .and_then(|o| i32::try_from(o).ok())
        .ok_or_else(|| CompileError::unsupported("too many parameters"))
}
