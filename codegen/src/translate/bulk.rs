//! Bulk memory: `memory.fill` and `memory.copy` as calls of the runtime's
//! chunked builtins (`abi::vmctx::FN_MEMORY_FILL`, `FN_MEMORY_COPY`).
//!
//! The builtin checks the whole range first (`start + len <= heap_len`,
//! trapping `HeapOutOfBounds` even for `len = 0` past the end, as the spec
//! requires), then works with `memset`/`memmove` in 64 KiB chunks charged
//! one fuel unit per 8 bytes, and hands what is left back to compiled code
//! when the slice ends (`abi::BULK_MORE`); the call sits in a loop whose
//! header is a fuel check, so a large fill or copy stays preemptible.

use cranelift_codegen::ir::{types, InstBuilder, Value};

use super::func::FuncTranslator;
use crate::abi::{vmctx, TrapKind};
use crate::error::CompileError;

impl FuncTranslator<'_, '_> {
    /// Pop three u32 operands (pushed as `a b c`) zero-extended to i64.
    fn pop3_u64(&mut self) -> Result<(Value, Value, Value), CompileError> {
        let c = self.pop()?;
        let (a, b) = self.pop2()?;
        let ext = |t: &mut Self, v| t.b.ins().uextend(types::I64, v);
        Ok((ext(self, a), ext(self, b), ext(self, c)))
    }

    /// `memory.fill d val n`: the `memory.fill` builtin, called until done
    /// (it checks the whole range first, then fills in chunks and hands
    /// back what is left when the slice ends), with a fuel check before
    /// each call.
    pub(crate) fn memory_fill(&mut self) -> Result<(), CompileError> {
        let (d, val, n) = self.pop3_u64()?;
        let mem = self.memory_vmctx();
        self.bulk_builtin_on(
            vmctx::FN_MEMORY_FILL,
            mem,
            &[d, val, n],
            TrapKind::HeapOutOfBounds,
        );
        Ok(())
    }

    /// `memory.copy d s n`: the `memory.copy` builtin (overlap as
    /// `memmove`), called like `memory.fill`'s.
    pub(crate) fn memory_copy(&mut self) -> Result<(), CompileError> {
        let (d, s, n) = self.pop3_u64()?;
        let mem = self.memory_vmctx();
        self.bulk_builtin_on(
            vmctx::FN_MEMORY_COPY,
            mem,
            &[d, s, n],
            TrapKind::HeapOutOfBounds,
        );
        Ok(())
    }
}
