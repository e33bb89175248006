//! Tables and references: `call_indirect`, `ref.*`, `table.*`, `elem.drop`.
//!
//! Tables live outside the slot; `vmctx.tables` points to an array with
//! one pointer per table (imports first) to its `{ base, len }` descriptor
//! (`abi::vmctx::TABLES`), so an imported table is the exporter's own.
//! Elements are funcref pointers (to `FuncRef` records) or externref
//! handles, 0 is null. `table.get/set/size` and `call_indirect` are
//! inlined; `table.grow/fill/copy/init` and `elem.drop` call runtime
//! builtins through the host-stack trampoline with their arguments in a
//! small stack buffer (`fn(vmctx, exec, args: *const u64) -> i64`). The
//! `memory.init` and `data.drop` builtins use the same convention.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I32, I64};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Value};
use wasmparser::Operator;

use super::func::{trap_code, FuncTranslator};
use super::wasm_signature;
use crate::abi::{vmctx, TrapKind};
use crate::error::CompileError;

impl FuncTranslator<'_, '_> {
    /// Translate a table or reference operator; `false` if `op` is not one.
    pub(crate) fn translate_table_op(&mut self, op: &Operator<'_>) -> Result<bool, CompileError> {
        match *op {
            Operator::RefNull { .. } => {
                let v = self.b.ins().iconst(I64, 0);
                self.stack.push(v);
            }
            Operator::RefIsNull => {
                let r = self.pop()?;
                let c = self.b.ins().icmp_imm_s(IntCC::Equal, r, 0);
                let v = self.b.ins().uextend(I32, c);
                self.stack.push(v);
            }
            Operator::RefFunc { function_index } => {
                let v = self.func_ref(function_index)?;
                self.stack.push(v);
            }
            Operator::TableSize { table } => {
                let (_, len) = self.table_desc(table)?;
                let v = self.b.ins().ireduce(I32, len);
                self.stack.push(v);
            }
            Operator::TableGet { table } => {
                let idx = self.pop()?;
                let addr = self.elem_addr(table, idx, TrapKind::TableAccessOutOfBounds)?;
                let v = self.b.ins().load(I64, table_flags(), addr, 0);
                self.stack.push(v);
            }
            Operator::TableSet { table } => {
                let val = self.pop()?;
                let idx = self.pop()?;
                let addr = self.elem_addr(table, idx, TrapKind::TableAccessOutOfBounds)?;
                self.b.ins().store(table_flags(), val, addr, 0);
            }
            Operator::TableGrow { table } => {
                let delta = self.pop()?;
                let init = self.pop()?;
                let t = self.b.ins().iconst(I64, i64::from(table));
                let delta = self.b.ins().uextend(I64, delta);
                let r = self.table_builtin(vmctx::FN_TABLE_GROW, &[t, delta, init]);
                let v = self.b.ins().ireduce(I32, r);
                self.stack.push(v);
            }
            Operator::TableFill { table } => {
                let n = self.pop()?;
                let val = self.pop()?;
                let d = self.pop()?;
                let t = self.b.ins().iconst(I64, i64::from(table));
                let d = self.b.ins().uextend(I64, d);
                let n = self.b.ins().uextend(I64, n);
                self.bulk_builtin(
                    vmctx::FN_TABLE_FILL,
                    &[t, d, val, n],
                    TrapKind::TableAccessOutOfBounds,
                );
            }
            Operator::TableCopy {
                dst_table,
                src_table,
            } => {
                let args = self.pop_u32s(3)?;
                let dt = self.b.ins().iconst(I64, i64::from(dst_table));
                let st = self.b.ins().iconst(I64, i64::from(src_table));
                self.bulk_builtin(
                    vmctx::FN_TABLE_COPY,
                    &[dt, st, args[0], args[1], args[2]],
                    TrapKind::TableAccessOutOfBounds,
                );
            }
            Operator::TableInit { elem_index, table } => {
                let args = self.pop_u32s(3)?;
                let t = self.b.ins().iconst(I64, i64::from(table));
                let e = self.b.ins().iconst(I64, i64::from(elem_index));
                self.bulk_builtin(
                    vmctx::FN_TABLE_INIT,
                    &[t, e, args[0], args[1], args[2]],
                    TrapKind::TableAccessOutOfBounds,
                );
            }
            Operator::MemoryInit { data_index, mem } => {
                if mem != 0 {
                    return Err(CompileError::unsupported("multiple memories"));
                }
                let args = self.pop_u32s(3)?;
                let seg = self.b.ins().iconst(I64, i64::from(data_index));
                self.bulk_builtin(
                    vmctx::FN_MEMORY_INIT,
                    &[seg, args[0], args[1], args[2]],
                    TrapKind::HeapOutOfBounds,
                );
            }
            Operator::DataDrop { data_index } => {
                let seg = self.b.ins().iconst(I64, i64::from(data_index));
                self.table_builtin(vmctx::FN_DATA_DROP, &[seg]);
            }
            Operator::ElemDrop { elem_index } => {
                let e = self.b.ins().iconst(I64, i64::from(elem_index));
                self.table_builtin(vmctx::FN_ELEM_DROP, &[e]);
            }
            Operator::CallIndirect {
                type_index,
                table_index,
            } => self.call_indirect(type_index, table_index)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The funcref of function `index`: an imported function's record in
    /// vmctx, or `vmctx.func_refs + FUNC_REF_SIZE * defined_index`.
    pub(crate) fn func_ref(&mut self, index: u32) -> Result<Value, CompileError> {
        let module = self.env.module;
        if index as usize >= module.num_funcs() {
            return Err(CompileError::codegen(format!(
                "ref.func {index} out of range"
            )));
        }
        let imported = module.imported_funcs.len() as u32;
        if index < imported {
            let at = self.layout.func_import(index);
            return Ok(self.b.ins().iadd_imm_s(self.vmctx, i64::from(at)));
        }
        let index = index - imported;
        module
            .uses_ref_func
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let base = self
            .b
            .ins()
            .load(I64, self.vmctx_flags, self.vmctx, vmctx::FUNC_REFS);
        Ok(self
            .b
            .ins()
            .iadd_imm_s(base, i64::from(vmctx::FUNC_REF_SIZE) * i64::from(index)))
    }

    /// Pop `n` i32 operands, zero-extended to i64, in push order.
    fn pop_u32s(&mut self, n: usize) -> Result<Vec<Value>, CompileError> {
        let vs = self.popn(n)?;
        Ok(vs
            .into_iter()
            .map(|v| self.b.ins().uextend(I64, v))
            .collect())
    }

    /// Load `(base, len)` of table `table`.
    fn table_desc(&mut self, table: u32) -> Result<(Value, Value), CompileError> {
        if table as usize >= self.env.module.num_tables() {
            return Err(CompileError::codegen(format!("table {table} out of range")));
        }
        let descs = self
            .b
            .ins()
            .load(I64, self.vmctx_flags, self.vmctx, vmctx::TABLES);
        let desc = self
            .b
            .ins()
            .load(I64, table_flags(), descs, 8 * table as i32);
        let base = self.b.ins().load(I64, table_flags(), desc, 0);
        let len = self.b.ins().load(I64, table_flags(), desc, 8);
        Ok((base, len))
    }

    /// Address of element `idx` (i32) of `table`, trapping `kind` when out
    /// of bounds.
    fn elem_addr(&mut self, table: u32, idx: Value, kind: TrapKind) -> Result<Value, CompileError> {
        let (base, len) = self.table_desc(table)?;
        let idx = self.b.ins().uextend(I64, idx);
        let oob = self
            .b
            .ins()
            .icmp(IntCC::UnsignedGreaterThanOrEqual, idx, len);
        self.b.ins().trapnz(oob, trap_code(kind));
        let off = self.b.ins().ishl_imm_u(idx, 3);
        Ok(self.b.ins().iadd(base, off))
    }

    /// Call the table builtin at vmctx offset `field` with `args` (i64
    /// values) passed in a stack buffer; returns its i64 result.
    fn table_builtin(&mut self, field: i32, args: &[Value]) -> Value {
        let buf = self.builtin_args(args);
        self.call_builtin(field, buf)
    }

    /// A stack buffer holding `args`; its address.
    fn builtin_args(&mut self, args: &[Value]) -> Value {
        let slot = self.b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            8 * args.len() as u32,
            3,
        ));
        let buf = self.b.ins().stack_addr(I64, slot, 0);
        for (i, a) in args.iter().enumerate() {
            self.b
                .ins()
                .store(MemFlagsData::trusted(), *a, buf, 8 * i as i32);
        }
        buf
    }

    /// Call the builtin at vmctx offset `field` with the argument buffer
    /// `buf`; its i64 result.
    fn call_builtin(&mut self, field: i32, buf: Value) -> Value {
        self.call_builtin_on(field, self.vmctx, buf)
    }

    /// Call the builtin at vmctx offset `field` for the instance (or
    /// memory) whose vmctx is `target`, with the argument buffer `buf`.
    /// Builtin addresses never change: their loads are pure.
    fn call_builtin_on(&mut self, field: i32, target: Value, buf: Value) -> Value {
        let sig = self.grow_sig();
        let callee = self.b.ins().load(I64, self.fixed_flags, self.vmctx, field);
        let exec = self.spill_fuel();
        let inst = self
            .b
            .ins()
            .call_indirect(sig, callee, &[target, exec, buf]);
        let r = self.b.inst_results(inst)[0];
        self.after_call();
        r
    }

    /// A chunked bulk builtin: call it until it is done, with a fuel check
    /// (a preemption point) before every chunk, and trap `kind` if it
    /// reports out of bounds. The builtin rewrites the argument buffer to
    /// describe what is left after each chunk (`abi::BULK_MORE`).
    fn bulk_builtin(&mut self, field: i32, args: &[Value], kind: TrapKind) {
        self.bulk_builtin_on(field, self.vmctx, args, kind);
    }

    /// [`Self::bulk_builtin`] for the instance or memory whose vmctx is
    /// `target`.
    pub(crate) fn bulk_builtin_on(
        &mut self,
        field: i32,
        target: Value,
        args: &[Value],
        kind: TrapKind,
    ) {
        let buf = self.builtin_args(args);
        let header = self.b.create_block();
        let exit = self.b.create_block();
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(header);
        self.fuel_check();
        let r = self.call_builtin_on(field, target, buf);
        let more = self
            .b
            .ins()
            .icmp_imm_s(IntCC::Equal, r, crate::abi::BULK_MORE);
        self.b.ins().brif(more, header, &[], exit, &[]);
        self.b.seal_block(header);
        self.b.switch_to_block(exit);
        self.b.seal_block(exit);
        self.b.ins().trapnz(r, trap_code(kind));
    }

    fn call_indirect(&mut self, type_index: u32, table: u32) -> Result<(), CompileError> {
        let ty = self.env.module.type_at(type_index)?.clone();
        let idx = self.pop()?;
        let args = self.popn(ty.params.len())?;
        let addr = self.elem_addr(table, idx, TrapKind::TableOutOfBounds)?;
        let entry = self.b.ins().load(I64, table_flags(), addr, 0);
        self.b
            .ins()
            .trapz(entry, trap_code(TrapKind::NullReference));
        let flags = MemFlagsData::trusted().with_readonly();
        let got = self.b.ins().load(I64, flags, entry, 16);
        let ids = self
            .b
            .ins()
            .load(I64, self.fixed_flags, self.vmctx, vmctx::TYPE_IDS);
        let want = self
            .b
            .ins()
            .uload32(flags, ids, (4 * i64::from(type_index)) as i32);
        let bad = self.b.ins().icmp(IntCC::NotEqual, got, want);
        self.b
            .ins()
            .trapnz(bad, trap_code(TrapKind::IndirectCallTypeMismatch));
        let code = self.b.ins().load(I64, flags, entry, 0);
        let callee_vmctx = self.b.ins().load(I64, flags, entry, 8);
        let sig = wasm_signature(self.env.call_conv, &ty);
        let sig = self.b.import_signature(sig);
        let call_args = super::call_args(callee_vmctx, &args);
        let inst = self.b.ins().call_indirect(sig, code, &call_args);
        let results = self.b.inst_results(inst).to_vec();
        self.after_wasm_call();
        self.stack.extend(results);
        Ok(())
    }
}

/// Flags for table descriptors and elements: runtime-owned memory that is
/// always valid (bounds are checked explicitly), changed by builtins (calls
/// end any reuse of loaded values).
fn table_flags() -> MemFlagsData {
    MemFlagsData::trusted()
}
