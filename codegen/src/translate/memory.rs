//! Linear memory: bounds-checked loads and stores, `memory.size` and
//! `memory.grow`.
//!
//! Every access is checked against the memory's length, which a function
//! keeps in a variable: loaded at entry and after every call (only calls
//! reach `memory.grow`). The heap base never moves, so its load is pure
//! and hoisted.
//! The index is a u32 zero-extended to 64 bits, so `index + offset + size`
//! cannot overflow. With `guard_bytes = G` and `offset + size <= G` the
//! check is only `index <= heap_len`: the runtime keeps G inaccessible
//! bytes after the heap, so the rest of the access faults and the fault is
//! mapped through the HEAP_OUT_OF_BOUNDS trap code on the access itself.
//! In sparse mode (a heap reservation of at least 4 GiB before the guard)
//! there is no check at all for such accesses: `index < 2^32` lies in the
//! reservation, inaccessible past `heap_len`, and `index + offset + size <=
//! 2^32 + G` ends in the guard, so every out-of-bounds access faults.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Type, Value};
use wasmparser::{FunctionBody, MemArg, MemArgTarget, Operator};

use super::func::{trap_code, FuncTranslator};
use crate::abi::{vmctx, TrapKind};
use crate::error::CompileError;
use crate::CompileConfig;

/// How a load widens its value.
#[derive(Clone, Copy)]
enum Ext {
    None,
    Signed,
    Unsigned,
}

impl FuncTranslator<'_, '_> {
    /// Translate a memory operator; `false` if `op` is not one.
    pub(crate) fn translate_memory_op(&mut self, op: &Operator<'_>) -> Result<bool, CompileError> {
        use types::{F32, F64, I32, I64};
        use Operator as O;
        match op {
            O::I32Load { memarg } => self.load(memarg, I32, 4, Ext::None)?,
            O::I64Load { memarg } => self.load(memarg, I64, 8, Ext::None)?,
            O::F32Load { memarg } => self.load(memarg, F32, 4, Ext::None)?,
            O::F64Load { memarg } => self.load(memarg, F64, 8, Ext::None)?,
            O::I32Load8S { memarg } => self.load(memarg, I32, 1, Ext::Signed)?,
            O::I32Load8U { memarg } => self.load(memarg, I32, 1, Ext::Unsigned)?,
            O::I32Load16S { memarg } => self.load(memarg, I32, 2, Ext::Signed)?,
            O::I32Load16U { memarg } => self.load(memarg, I32, 2, Ext::Unsigned)?,
            O::I64Load8S { memarg } => self.load(memarg, I64, 1, Ext::Signed)?,
            O::I64Load8U { memarg } => self.load(memarg, I64, 1, Ext::Unsigned)?,
            O::I64Load16S { memarg } => self.load(memarg, I64, 2, Ext::Signed)?,
            O::I64Load16U { memarg } => self.load(memarg, I64, 2, Ext::Unsigned)?,
            O::I64Load32S { memarg } => self.load(memarg, I64, 4, Ext::Signed)?,
            O::I64Load32U { memarg } => self.load(memarg, I64, 4, Ext::Unsigned)?,
            O::I32Store { memarg } | O::F32Store { memarg } => self.store(memarg, 4)?,
            O::I64Store { memarg } | O::F64Store { memarg } => self.store(memarg, 8)?,
            O::I32Store8 { memarg } | O::I64Store8 { memarg } => self.store(memarg, 1)?,
            O::I32Store16 { memarg } | O::I64Store16 { memarg } => self.store(memarg, 2)?,
            O::I64Store32 { memarg } => self.store(memarg, 4)?,
            O::MemorySize { mem } => {
                check_memory_index(*mem)?;
                let log2 = self.page_size_log2()?;
                let len = self.heap_len()?;
                let pages = self.b.ins().ushr_imm_u(len, i64::from(log2));
                let pages = self.b.ins().ireduce(I32, pages);
                self.stack.push(pages);
            }
            O::MemoryGrow { mem } => {
                check_memory_index(*mem)?;
                let delta = self.pop()?;
                let delta = self.b.ins().uextend(I64, delta);
                let sig = self.grow_sig();
                let callee =
                    self.b
                        .ins()
                        .load(I64, self.vmctx_flags, self.vmctx, vmctx::FN_MEMORY_GROW);
                let owner = self.memory_vmctx();
                let exec = self.spill_fuel();
                let call = self
                    .b
                    .ins()
                    .call_indirect(sig, callee, &[owner, exec, delta]);
                let old = self
                    .b
                    .inst_results(call)
                    .first()
                    .copied()
                    .ok_or_else(|| CompileError::codegen("memory_grow has no result"))?;
                self.after_call();
                let old = self.b.ins().ireduce(I32, old);
                self.stack.push(old);
            }
            O::MemoryFill { mem } => {
                check_memory_index(*mem)?;
                self.memory_fill()?;
            }
            O::MemoryCopy { dst_mem, src_mem } => {
                check_memory_index(*dst_mem)?;
                check_memory_index(*src_mem)?;
                self.memory_copy()?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn page_size_log2(&self) -> Result<u8, CompileError> {
        self.env
            .module
            .memory_type()
            .map(|m| m.page_size_log2)
            .ok_or_else(|| CompileError::codegen("memory operator without a memory"))
    }

    /// The vmctx whose `HEAP_BASE`/`HEAP_LEN` describe the memory: this
    /// instance's, or for an imported memory the defining instance's (its
    /// import record never changes: a pure load).
    pub fn memory_vmctx(&mut self) -> Value {
        if self.env.module.imported_memory.is_some() {
            let at = self.layout.memory_import;
            self.b
                .ins()
                .load(types::I64, self.fixed_flags, self.vmctx, at)
        } else {
            self.vmctx
        }
    }

    /// The memory's current length in bytes (the variable reloaded after
    /// every call; see [`FuncTranslator::heap_len`] the field).
    pub fn heap_len(&mut self) -> Result<Value, CompileError> {
        let var = self
            .heap_len
            .ok_or_else(|| CompileError::codegen("memory operator without a memory"))?;
        Ok(self.b.use_var(var))
    }

    /// The memory's base address. A slot's heap never moves (growth
    /// extends it in place), so this is a pure load that Cranelift merges
    /// and hoists out of loops: in practice one load per function.
    pub fn heap_base(&mut self) -> Value {
        let owner = self.memory_vmctx();
        self.b
            .ins()
            .load(types::I64, self.fixed_flags, owner, vmctx::HEAP_BASE)
    }

    /// Pop the index, check `index + offset + size <= heap_len` (or the
    /// guard-mode reduction) and return the address and immediate offset.
    fn heap_addr(&mut self, memarg: &MemArg, size: u8) -> Result<(Value, i32), CompileError> {
        let MemArgTarget::Memory(mem) = memarg.target else {
            return Err(CompileError::unsupported("GC array memory operands"));
        };
        check_memory_index(mem)?;
        if memarg.ordering.is_some() {
            return Err(CompileError::unsupported("atomic memory orderings"));
        }
        // Validated: offsets of 32-bit memories fit in u32.
        let offset = memarg.offset;
        if offset > u64::from(u32::MAX) {
            return Err(CompileError::codegen("memory offset exceeds u32"));
        }
        let index = self.pop()?;
        let index = self.b.ins().uextend(types::I64, index);
        let access = offset + u64::from(size);
        let guard = self.env.config.guard_bytes;
        if self.env.config.is_sparse() && access <= guard {
            // Sparse: the reservation and guard fault for every index.
            let base = self.heap_base();
            let addr = self.b.ins().iadd(base, index);
            return match i32::try_from(offset) {
                Ok(imm) => Ok((addr, imm)),
                Err(_) => Ok((self.b.ins().iadd_imm_s(addr, offset as i64), 0)),
            };
        }
        let len = self.heap_len()?;
        let out_of_bounds = if guard > 0 && access <= guard {
            self.b.ins().icmp(IntCC::UnsignedGreaterThan, index, len)
        } else {
            // `index + access > len` as `index > len - access` in signed
            // 64-bit arithmetic: `len - access` depends only on the length
            // variable and a constant, so Cranelift computes it once per
            // change of the length (out of loops), and the check is one
            // compare and branch. No overflow: index < 2^32, access <=
            // 2^32 + 7, len <= 2^32; a negative limit (a memory shorter
            // than the access) traps every index.
            let limit = self.b.ins().iadd_imm_s(len, -(access as i64));
            self.b.ins().icmp(IntCC::SignedGreaterThan, index, limit)
        };
        self.b
            .ins()
            .trapnz(out_of_bounds, trap_code(TrapKind::HeapOutOfBounds));
        let base = self.heap_base();
        let addr = self.b.ins().iadd(base, index);
        match i32::try_from(offset) {
            Ok(imm) => Ok((addr, imm)),
            Err(_) => Ok((self.b.ins().iadd_imm_s(addr, offset as i64), 0)),
        }
    }

    fn load(&mut self, memarg: &MemArg, ty: Type, size: u8, ext: Ext) -> Result<(), CompileError> {
        let (addr, off) = self.heap_addr(memarg, size)?;
        let f = self.heap_flags;
        let ins = self.b.ins();
        let v = match (ext, size) {
            (Ext::None, _) => ins.load(ty, f, addr, off),
            (Ext::Signed, 1) => ins.sload8(ty, f, addr, off),
            (Ext::Unsigned, 1) => ins.uload8(ty, f, addr, off),
            (Ext::Signed, 2) => ins.sload16(ty, f, addr, off),
            (Ext::Unsigned, 2) => ins.uload16(ty, f, addr, off),
            (Ext::Signed, _) => ins.sload32(f, addr, off),
            (Ext::Unsigned, _) => ins.uload32(f, addr, off),
        };
        self.stack.push(v);
        Ok(())
    }

    fn store(&mut self, memarg: &MemArg, size: u8) -> Result<(), CompileError> {
        let value = self.pop()?;
        let (addr, off) = self.heap_addr(memarg, size)?;
        let width = self.b.func.dfg.value_type(value).bytes();
        let f = self.heap_flags;
        let ins = self.b.ins();
        match size {
            1 => ins.istore8(f, value, addr, off),
            2 => ins.istore16(f, value, addr, off),
            4 if width == 8 => ins.istore32(f, value, addr, off),
            _ => ins.store(f, value, addr, off),
        };
        Ok(())
    }
}

fn check_memory_index(mem: u32) -> Result<(), CompileError> {
    if mem == 0 {
        Ok(())
    } else {
        Err(CompileError::unsupported("multiple memories"))
    }
}

/// Bytes a plain load or store of `op` accesses and its memarg, or `None`
/// for any other operator.
fn access_of<'m>(op: &'m Operator<'_>) -> Option<(&'m MemArg, u8)> {
    use Operator as O;
    Some(match op {
        O::I32Load8S { memarg }
        | O::I32Load8U { memarg }
        | O::I64Load8S { memarg }
        | O::I64Load8U { memarg }
        | O::I32Store8 { memarg }
        | O::I64Store8 { memarg } => (memarg, 1),
        O::I32Load16S { memarg }
        | O::I32Load16U { memarg }
        | O::I64Load16S { memarg }
        | O::I64Load16U { memarg }
        | O::I32Store16 { memarg }
        | O::I64Store16 { memarg } => (memarg, 2),
        O::I32Load { memarg }
        | O::F32Load { memarg }
        | O::I64Load32S { memarg }
        | O::I64Load32U { memarg }
        | O::I32Store { memarg }
        | O::F32Store { memarg }
        | O::I64Store32 { memarg } => (memarg, 4),
        O::I64Load { memarg }
        | O::F64Load { memarg }
        | O::I64Store { memarg }
        | O::F64Store { memarg } => (memarg, 8),
        _ => return None,
    })
}

/// Whether the function body reads the memory's length: `memory.size`, or
/// an access that gets a bounds check under `config` (every access unless
/// sparse mode elides its check). A function that does not keeps no
/// length variable, so it neither loads the length at entry nor reloads
/// it after its calls (which would also keep the vmctx alive across them
/// and cost a saved register in the frame).
pub(crate) fn body_reads_heap_len(
    body: &FunctionBody<'_>,
    config: &CompileConfig,
) -> Result<bool, CompileError> {
    let mut reader = body.get_operators_reader()?;
    while !reader.eof() {
        let op = reader.read()?;
        if matches!(op, Operator::MemorySize { .. }) {
            return Ok(true);
        }
        if let Some((memarg, size)) = access_of(&op) {
            let unchecked =
                config.is_sparse() && memarg.offset + u64::from(size) <= config.guard_bytes;
            if !unchecked {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
