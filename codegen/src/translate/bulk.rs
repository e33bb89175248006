//! Bulk memory: `memory.fill` and `memory.copy`, inlined as loops.
//!
//! Both check their whole range up front (`start + len <= heap_len` in
//! 64-bit arithmetic, trapping `HeapOutOfBounds` even for `len = 0` past
//! the end, as the spec requires), then move 8 bytes per iteration and the
//! tail byte by byte. `memory.copy` copies forwards when `dst <= src` and
//! backwards otherwise, so overlapping ranges behave like `memmove`. The
//! 8-byte loops are loop headers like any other: they pay fuel, so a large
//! fill or copy stays preemptible. Inlining keeps artifacts free of
//! undefined symbols (no `memmove`/`memset` from libc).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, Block, InstBuilder, Value};
use cranelift_frontend::Variable;

use super::func::{trap_code, FuncTranslator};
use crate::abi::TrapKind;
use crate::error::CompileError;

impl FuncTranslator<'_, '_> {
    /// Trap unless `start + len <= heap_len` (all i64, no overflow).
    fn check_range(&mut self, start: Value, len: Value, heap_len: Value) {
        let end = self.b.ins().iadd(start, len);
        let oob = self.b.ins().icmp(IntCC::UnsignedGreaterThan, end, heap_len);
        self.b
            .ins()
            .trapnz(oob, trap_code(TrapKind::HeapOutOfBounds));
    }

    /// Pop three u32 operands (pushed as `a b c`) zero-extended to i64.
    fn pop3_u64(&mut self) -> Result<(Value, Value, Value), CompileError> {
        let c = self.pop()?;
        let (a, b) = self.pop2()?;
        let ext = |t: &mut Self, v| t.b.ins().uextend(types::I64, v);
        Ok((ext(self, a), ext(self, b), ext(self, c)))
    }

    fn new_var(&mut self, init: Value) -> Variable {
        let var = self.b.declare_var(types::I64);
        self.b.def_var(var, init);
        var
    }

    /// Emit `while counter-condition { body }` where the header tests
    /// `cond(counter)` and falls out to `exit`. Returns after switching to
    /// `exit`. With `fuel`, the header is a preemption point.
    fn emit_loop(
        &mut self,
        fuel: bool,
        cond: impl FnOnce(&mut Self) -> Value,
        body: impl FnOnce(&mut Self),
        exit: Block,
    ) {
        let header = self.b.create_block();
        let body_block = self.b.create_block();
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(header);
        if fuel {
            self.fuel_check();
        }
        let c = cond(self);
        self.b.ins().brif(c, body_block, &[], exit, &[]);
        self.b.switch_to_block(body_block);
        self.b.seal_block(body_block);
        body(self);
        self.b.ins().jump(header, &[]);
        self.b.seal_block(header);
        self.b.switch_to_block(exit);
        self.b.seal_block(exit);
    }

    /// `memory.fill d val n`.
    pub(crate) fn memory_fill(&mut self) -> Result<(), CompileError> {
        let n = self.pop()?;
        let val = self.pop()?;
        let d = self.pop()?;
        let n = self.b.ins().uextend(types::I64, n);
        let d = self.b.ins().uextend(types::I64, d);
        let len = self.heap_len();
        self.check_range(d, n, len);
        let base = self.heap_base();
        let start = self.b.ins().iadd(base, d);
        let byte = self.b.ins().uextend(types::I64, val);
        let byte = self.b.ins().band_imm_u(byte, 0xff);
        let splat = self
            .b
            .ins()
            .imul_imm_u(byte, 0x0101_0101_0101_0101_u64 as i64);
        let p = self.new_var(start);
        let rem = self.new_var(n);
        let flags = self.heap_flags;

        let tail = self.b.create_block();
        self.emit_loop(
            true,
            |t| {
                let r = t.b.use_var(rem);
                t.b.ins()
                    .icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, r, 8)
            },
            |t| {
                let (pv, r) = (t.b.use_var(p), t.b.use_var(rem));
                t.b.ins().store(flags, splat, pv, 0);
                let pv = t.b.ins().iadd_imm_s(pv, 8);
                let r = t.b.ins().iadd_imm_s(r, -8);
                t.b.def_var(p, pv);
                t.b.def_var(rem, r);
            },
            tail,
        );
        let done = self.b.create_block();
        self.emit_loop(
            false,
            |t| t.b.use_var(rem),
            |t| {
                let (pv, r) = (t.b.use_var(p), t.b.use_var(rem));
                t.b.ins().istore8(flags, splat, pv, 0);
                let pv = t.b.ins().iadd_imm_s(pv, 1);
                let r = t.b.ins().iadd_imm_s(r, -1);
                t.b.def_var(p, pv);
                t.b.def_var(rem, r);
            },
            done,
        );
        Ok(())
    }

    /// `memory.copy d s n`.
    pub(crate) fn memory_copy(&mut self) -> Result<(), CompileError> {
        let (d, s, n) = self.pop3_u64()?;
        let len = self.heap_len();
        self.check_range(d, n, len);
        self.check_range(s, n, len);
        let base = self.heap_base();
        let dst = self.b.ins().iadd(base, d);
        let src = self.b.ins().iadd(base, s);
        let flags = self.heap_flags;

        let forward = self.b.create_block();
        let backward = self.b.create_block();
        let done = self.b.create_block();
        let fwd = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, d, s);
        self.b.ins().brif(fwd, forward, &[], backward, &[]);

        // Forwards: offset i from 0 up to n.
        self.b.switch_to_block(forward);
        self.b.seal_block(forward);
        let zero = self.b.ins().iconst(types::I64, 0);
        let i = self.new_var(zero);
        let copy = move |t: &mut Self, ty, at: Value| {
            let from = t.b.ins().iadd(src, at);
            let to = t.b.ins().iadd(dst, at);
            let v = t.b.ins().load(ty, flags, from, 0);
            t.b.ins().store(flags, v, to, 0);
        };
        let fwd_tail = self.b.create_block();
        self.emit_loop(
            true,
            |t| {
                let iv = t.b.use_var(i);
                let left = t.b.ins().isub(n, iv);
                t.b.ins()
                    .icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, left, 8)
            },
            |t| {
                let iv = t.b.use_var(i);
                copy(t, types::I64, iv);
                let iv = t.b.ins().iadd_imm_s(iv, 8);
                t.b.def_var(i, iv);
            },
            fwd_tail,
        );
        let fwd_done = self.b.create_block();
        self.emit_loop(
            false,
            |t| {
                let iv = t.b.use_var(i);
                t.b.ins().icmp(IntCC::UnsignedLessThan, iv, n)
            },
            |t| {
                let iv = t.b.use_var(i);
                copy(t, types::I8, iv);
                let iv = t.b.ins().iadd_imm_s(iv, 1);
                t.b.def_var(i, iv);
            },
            fwd_done,
        );
        self.b.ins().jump(done, &[]);

        // Backwards: remaining count r from n down to 0.
        self.b.switch_to_block(backward);
        self.b.seal_block(backward);
        let r = self.new_var(n);
        let back_tail = self.b.create_block();
        self.emit_loop(
            true,
            |t| {
                let rv = t.b.use_var(r);
                t.b.ins()
                    .icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, rv, 8)
            },
            |t| {
                let rv = t.b.use_var(r);
                let rv = t.b.ins().iadd_imm_s(rv, -8);
                copy(t, types::I64, rv);
                t.b.def_var(r, rv);
            },
            back_tail,
        );
        let back_done = self.b.create_block();
        self.emit_loop(
            false,
            |t| t.b.use_var(r),
            |t| {
                let rv = t.b.use_var(r);
                let rv = t.b.ins().iadd_imm_s(rv, -1);
                copy(t, types::I8, rv);
                t.b.def_var(r, rv);
            },
            back_done,
        );
        self.b.ins().jump(done, &[]);

        self.b.switch_to_block(done);
        self.b.seal_block(done);
        Ok(())
    }
}
