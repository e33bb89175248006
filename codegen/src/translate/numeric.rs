//! Numeric operators: constants, integer and float arithmetic,
//! comparisons and conversions.
//!
//! Integer division is guarded explicitly: a zero divisor traps with
//! `IntegerDivisionByZero`, `div_s(MIN, -1)` traps with `IntegerOverflow`,
//! and `rem_s` divides by 1 instead of -1 so `rem_s(MIN, -1)` is 0 and the
//! x86 `idiv` can never fault. Float-to-int conversions use Cranelift's
//! trapping `fcvt_to_*`, which trap with BAD_CONVERSION_TO_INTEGER (NaN)
//! and INTEGER_OVERFLOW (out of range) as the spec requires.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::immediates::{Ieee32, Ieee64};
use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;
use wasmparser::Operator;

use super::func::{trap_code, FuncTranslator};
use crate::abi::TrapKind;
use crate::error::CompileError;

/// The four integer division flavours.
#[derive(Clone, Copy)]
enum Div {
    S,
    U,
    RemS,
    RemU,
}

/// An integer constant of type `ty` with the bits of `v`, masked to the
/// width as Cranelift requires.
fn int_const(b: &mut FunctionBuilder<'_>, ty: Type, v: i64) -> Value {
    let v = if ty == types::I32 {
        i64::from(v as u32)
    } else {
        v
    };
    b.ins().iconst(ty, v)
}

impl FuncTranslator<'_, '_> {
    fn unop(
        &mut self,
        f: impl FnOnce(&mut FunctionBuilder<'_>, Value) -> Value,
    ) -> Result<(), CompileError> {
        let x = self.pop()?;
        let v = f(&mut self.b, x);
        self.stack.push(v);
        Ok(())
    }

    fn binop(
        &mut self,
        f: impl FnOnce(&mut FunctionBuilder<'_>, Value, Value) -> Value,
    ) -> Result<(), CompileError> {
        let (x, y) = self.pop2()?;
        let v = f(&mut self.b, x, y);
        self.stack.push(v);
        Ok(())
    }

    fn icmp(&mut self, cc: IntCC) -> Result<(), CompileError> {
        self.binop(|b, x, y| {
            let c = b.ins().icmp(cc, x, y);
            b.ins().uextend(types::I32, c)
        })
    }

    fn fcmp(&mut self, cc: FloatCC) -> Result<(), CompileError> {
        self.binop(|b, x, y| {
            let c = b.ins().fcmp(cc, x, y);
            b.ins().uextend(types::I32, c)
        })
    }

    fn eqz(&mut self) -> Result<(), CompileError> {
        self.unop(|b, x| {
            let c = b.ins().icmp_imm_s(IntCC::Equal, x, 0);
            b.ins().uextend(types::I32, c)
        })
    }

    /// Sign-extend the low `from` bits of an integer in place (`extend8_s`...).
    fn sext_in_place(&mut self, from: Type) -> Result<(), CompileError> {
        self.unop(|b, x| {
            let ty = b.func.dfg.value_type(x);
            let narrow = b.ins().ireduce(from, x);
            b.ins().sextend(ty, narrow)
        })
    }

    fn int_div(&mut self, kind: Div) -> Result<(), CompileError> {
        let (x, y) = self.pop2()?;
        let ty = self.b.func.dfg.value_type(y);
        let b = &mut self.b;
        b.ins().trapz(y, trap_code(TrapKind::IntegerDivisionByZero));
        let v = match kind {
            Div::U => b.ins().udiv(x, y),
            Div::RemU => b.ins().urem(x, y),
            Div::S => {
                let min = if ty == types::I32 {
                    i64::from(i32::MIN)
                } else {
                    i64::MIN
                };
                let min = int_const(b, ty, min);
                let minus_one = int_const(b, ty, -1);
                let x_is_min = b.ins().icmp(IntCC::Equal, x, min);
                let y_is_minus_one = b.ins().icmp(IntCC::Equal, y, minus_one);
                let overflow = b.ins().band(x_is_min, y_is_minus_one);
                b.ins()
                    .trapnz(overflow, trap_code(TrapKind::IntegerOverflow));
                b.ins().sdiv(x, y)
            }
            Div::RemS => {
                // x rem -1 == 0 == x rem 1, and idiv by 1 cannot overflow.
                let minus_one = int_const(b, ty, -1);
                let one = int_const(b, ty, 1);
                let y_is_minus_one = b.ins().icmp(IntCC::Equal, y, minus_one);
                let divisor = b.ins().select(y_is_minus_one, one, y);
                b.ins().srem(x, divisor)
            }
        };
        self.stack.push(v);
        Ok(())
    }

    /// Translate a numeric operator; `false` if `op` is not one.
    pub(crate) fn translate_numeric_op(&mut self, op: &Operator<'_>) -> Result<bool, CompileError> {
        use types::{F32, F64, I16, I32, I64, I8};
        use Operator as O;
        let bits = MemFlagsData::new();
        match *op {
            O::I32Const { value } => {
                let v = int_const(&mut self.b, I32, i64::from(value));
                self.stack.push(v);
            }
            O::I64Const { value } => {
                let v = int_const(&mut self.b, I64, value);
                self.stack.push(v);
            }
            O::F32Const { value } => {
                let v = self.b.ins().f32const(Ieee32::with_bits(value.bits()));
                self.stack.push(v);
            }
            O::F64Const { value } => {
                let v = self.b.ins().f64const(Ieee64::with_bits(value.bits()));
                self.stack.push(v);
            }

            // Integer comparisons.
            O::I32Eqz | O::I64Eqz => self.eqz()?,
            O::I32Eq | O::I64Eq => self.icmp(IntCC::Equal)?,
            O::I32Ne | O::I64Ne => self.icmp(IntCC::NotEqual)?,
            O::I32LtS | O::I64LtS => self.icmp(IntCC::SignedLessThan)?,
            O::I32LtU | O::I64LtU => self.icmp(IntCC::UnsignedLessThan)?,
            O::I32GtS | O::I64GtS => self.icmp(IntCC::SignedGreaterThan)?,
            O::I32GtU | O::I64GtU => self.icmp(IntCC::UnsignedGreaterThan)?,
            O::I32LeS | O::I64LeS => self.icmp(IntCC::SignedLessThanOrEqual)?,
            O::I32LeU | O::I64LeU => self.icmp(IntCC::UnsignedLessThanOrEqual)?,
            O::I32GeS | O::I64GeS => self.icmp(IntCC::SignedGreaterThanOrEqual)?,
            O::I32GeU | O::I64GeU => self.icmp(IntCC::UnsignedGreaterThanOrEqual)?,

            // Float comparisons (NaN: only `ne` is true).
            O::F32Eq | O::F64Eq => self.fcmp(FloatCC::Equal)?,
            O::F32Ne | O::F64Ne => self.fcmp(FloatCC::NotEqual)?,
            O::F32Lt | O::F64Lt => self.fcmp(FloatCC::LessThan)?,
            O::F32Gt | O::F64Gt => self.fcmp(FloatCC::GreaterThan)?,
            O::F32Le | O::F64Le => self.fcmp(FloatCC::LessThanOrEqual)?,
            O::F32Ge | O::F64Ge => self.fcmp(FloatCC::GreaterThanOrEqual)?,

            // Integer arithmetic.
            O::I32Clz | O::I64Clz => self.unop(|b, x| b.ins().clz(x))?,
            O::I32Ctz | O::I64Ctz => self.unop(|b, x| b.ins().ctz(x))?,
            O::I32Popcnt | O::I64Popcnt => self.unop(|b, x| b.ins().popcnt(x))?,
            O::I32Add | O::I64Add => self.binop(|b, x, y| b.ins().iadd(x, y))?,
            O::I32Sub | O::I64Sub => self.binop(|b, x, y| b.ins().isub(x, y))?,
            O::I32Mul | O::I64Mul => self.binop(|b, x, y| b.ins().imul(x, y))?,
            O::I32DivS | O::I64DivS => self.int_div(Div::S)?,
            O::I32DivU | O::I64DivU => self.int_div(Div::U)?,
            O::I32RemS | O::I64RemS => self.int_div(Div::RemS)?,
            O::I32RemU | O::I64RemU => self.int_div(Div::RemU)?,
            O::I32And | O::I64And => self.binop(|b, x, y| b.ins().band(x, y))?,
            O::I32Or | O::I64Or => self.binop(|b, x, y| b.ins().bor(x, y))?,
            O::I32Xor | O::I64Xor => self.binop(|b, x, y| b.ins().bxor(x, y))?,
            // Cranelift masks shift and rotate amounts to the width, like wasm.
            O::I32Shl | O::I64Shl => self.binop(|b, x, y| b.ins().ishl(x, y))?,
            O::I32ShrS | O::I64ShrS => self.binop(|b, x, y| b.ins().sshr(x, y))?,
            O::I32ShrU | O::I64ShrU => self.binop(|b, x, y| b.ins().ushr(x, y))?,
            O::I32Rotl | O::I64Rotl => self.binop(|b, x, y| b.ins().rotl(x, y))?,
            O::I32Rotr | O::I64Rotr => self.binop(|b, x, y| b.ins().rotr(x, y))?,

            // Float arithmetic (Cranelift's fmin/fmax have wasm semantics).
            O::F32Abs | O::F64Abs => self.unop(|b, x| b.ins().fabs(x))?,
            O::F32Neg | O::F64Neg => self.unop(|b, x| b.ins().fneg(x))?,
            O::F32Ceil | O::F64Ceil => self.unop(|b, x| b.ins().ceil(x))?,
            O::F32Floor | O::F64Floor => self.unop(|b, x| b.ins().floor(x))?,
            O::F32Trunc | O::F64Trunc => self.unop(|b, x| b.ins().trunc(x))?,
            O::F32Nearest | O::F64Nearest => self.unop(|b, x| b.ins().nearest(x))?,
            O::F32Sqrt | O::F64Sqrt => self.unop(|b, x| b.ins().sqrt(x))?,
            O::F32Add | O::F64Add => self.binop(|b, x, y| b.ins().fadd(x, y))?,
            O::F32Sub | O::F64Sub => self.binop(|b, x, y| b.ins().fsub(x, y))?,
            O::F32Mul | O::F64Mul => self.binop(|b, x, y| b.ins().fmul(x, y))?,
            O::F32Div | O::F64Div => self.binop(|b, x, y| b.ins().fdiv(x, y))?,
            O::F32Min | O::F64Min => self.binop(|b, x, y| b.ins().fmin(x, y))?,
            O::F32Max | O::F64Max => self.binop(|b, x, y| b.ins().fmax(x, y))?,
            O::F32Copysign | O::F64Copysign => self.binop(|b, x, y| b.ins().fcopysign(x, y))?,

            // Integer conversions.
            O::I32WrapI64 => self.unop(|b, x| b.ins().ireduce(I32, x))?,
            O::I64ExtendI32S => self.unop(|b, x| b.ins().sextend(I64, x))?,
            O::I64ExtendI32U => self.unop(|b, x| b.ins().uextend(I64, x))?,
            O::I32Extend8S | O::I64Extend8S => self.sext_in_place(I8)?,
            O::I32Extend16S | O::I64Extend16S => self.sext_in_place(I16)?,
            O::I64Extend32S => self.sext_in_place(I32)?,

            // Float <-> int conversions.
            O::I32TruncF32S | O::I32TruncF64S => self.unop(|b, x| b.ins().fcvt_to_sint(I32, x))?,
            O::I32TruncF32U | O::I32TruncF64U => self.unop(|b, x| b.ins().fcvt_to_uint(I32, x))?,
            O::I64TruncF32S | O::I64TruncF64S => self.unop(|b, x| b.ins().fcvt_to_sint(I64, x))?,
            O::I64TruncF32U | O::I64TruncF64U => self.unop(|b, x| b.ins().fcvt_to_uint(I64, x))?,
            O::I32TruncSatF32S | O::I32TruncSatF64S => {
                self.unop(|b, x| b.ins().fcvt_to_sint_sat(I32, x))?
            }
            O::I32TruncSatF32U | O::I32TruncSatF64U => {
                self.unop(|b, x| b.ins().fcvt_to_uint_sat(I32, x))?
            }
            O::I64TruncSatF32S | O::I64TruncSatF64S => {
                self.unop(|b, x| b.ins().fcvt_to_sint_sat(I64, x))?
            }
            O::I64TruncSatF32U | O::I64TruncSatF64U => {
                self.unop(|b, x| b.ins().fcvt_to_uint_sat(I64, x))?
            }
            O::F32ConvertI32S | O::F32ConvertI64S => {
                self.unop(|b, x| b.ins().fcvt_from_sint(F32, x))?
            }
            O::F32ConvertI32U | O::F32ConvertI64U => {
                self.unop(|b, x| b.ins().fcvt_from_uint(F32, x))?
            }
            O::F64ConvertI32S | O::F64ConvertI64S => {
                self.unop(|b, x| b.ins().fcvt_from_sint(F64, x))?
            }
            O::F64ConvertI32U | O::F64ConvertI64U => {
                self.unop(|b, x| b.ins().fcvt_from_uint(F64, x))?
            }
            O::F32DemoteF64 => self.unop(|b, x| b.ins().fdemote(F32, x))?,
            O::F64PromoteF32 => self.unop(|b, x| b.ins().fpromote(F64, x))?,
            O::I32ReinterpretF32 => self.unop(|b, x| b.ins().bitcast(I32, bits, x))?,
            O::I64ReinterpretF64 => self.unop(|b, x| b.ins().bitcast(I64, bits, x))?,
            O::F32ReinterpretI32 => self.unop(|b, x| b.ins().bitcast(F32, bits, x))?,
            O::F64ReinterpretI64 => self.unop(|b, x| b.ins().bitcast(F64, bits, x))?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}
