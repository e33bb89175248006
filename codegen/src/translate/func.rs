//! Translation of one function body: the translator state, locals,
//! globals, calls, fuel and the operator dispatch.

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::immediates::{Ieee32, Ieee64};
use cranelift_codegen::ir::{
    self, AliasRegionData, BlockArg, FuncRef, InstBuilder, MemFlagsData, SigRef, TrapCode,
    UserExternalName, UserFuncName, Value,
};
use cranelift_codegen::ir::{types, AbiParam};
use cranelift_codegen::isa::{CallConv, TargetFrontendConfig};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use wasmparser::{FunctionBody, Operator};

use super::control::{Frame, FrameKind, LoopPlan};
use super::meter::{is_load_or_store, op_weight, Meter, UNIT_WEIGHT};
use super::{ir_type, op_name, wasm_signature, ModuleInfo};
use crate::abi::{self, vmctx, TrapKind};
use crate::error::CompileError;
use crate::CompileConfig;

/// What every function translation needs from the module and target.
pub(crate) struct FuncEnv<'a> {
    /// The module being compiled.
    pub module: &'a ModuleInfo<'a>,
    /// Compile settings.
    pub config: &'a CompileConfig,
    /// Calling convention of every compiled function.
    pub call_conv: CallConv,
    /// Target parameters for the frontend.
    pub frontend: TargetFrontendConfig,
}

/// Cranelift trap code for an explicit trap of kind `kind`.
pub(crate) fn trap_code(kind: TrapKind) -> TrapCode {
    // Every TrapKind code is a small non-zero byte, a valid user code.
    TrapCode::unwrap_user(kind as u8)
}

/// Block arguments for `values`.
pub(crate) fn block_args(values: &[Value]) -> Vec<BlockArg> {
    values.iter().map(|v| BlockArg::Value(*v)).collect()
}

/// Import defined function `index` (index among defined functions) into
/// `func` (colocated: same artifact).
pub(crate) fn import_callee(
    func: &mut ir::Function,
    call_conv: CallConv,
    module: &ModuleInfo<'_>,
    index: u32,
) -> Result<FuncRef, CompileError> {
    let sig = wasm_signature(call_conv, module.defined_func_type(index)?);
    let signature = func.import_signature(sig);
    let name = func.declare_imported_user_function(UserExternalName {
        namespace: 0,
        index,
    });
    Ok(func.import_function(ir::ExtFuncData {
        name: ir::ExternalName::user(name),
        signature,
        colocated: true,
        patchable: false,
    }))
}

/// Give `func` Cranelift's prologue stack-limit check against the
/// `STACK_LIMIT` field of its `VMContext` parameter: the limit of the
/// stack that runs the code of that vmctx now (an instance's own stack,
/// or while an instance linked to it runs, that one's: see
/// `abi::vmctx::STACK_LIMIT`). Export wrappers pass exec as that
/// parameter, wasm functions and import stubs their vmctx; both name the
/// running green thread's stack.
///
/// Every function that runs on an instance stack gets this check
/// (translated functions, export wrappers, import stubs): below the slot's
/// stack lies the previous slot's heap, so a frame that writes before a
/// check is a cross-tenant write. The check covers the whole frame
/// (saved registers, spill slots, outgoing arguments, return areas) plus
/// the return address and saved frame pointer of a callee; only the
/// runtime's trampolines run below the limit, within
/// `runtime::instance::STACK_RESERVE`.
pub(crate) fn set_stack_limit(func: &mut ir::Function) -> Result<(), CompileError> {
    let vmctx_gv = func.create_global_value(ir::GlobalValueData::VMContext);
    let limit_flags = func
        .dfg
        .mem_flags
        .insert(MemFlagsData::trusted())
        .map_err(|_| CompileError::codegen("too many memory flag sets"))?;
    let limit = func.create_global_value(ir::GlobalValueData::Load {
        base: vmctx_gv,
        offset: vmctx::STACK_LIMIT.into(),
        global_type: types::I64,
        flags: limit_flags,
    });
    func.stack_limit = Some(limit);
    Ok(())
}

/// Load exec from `vmctx`'s `EXEC` field, where it is used: the fuel
/// slow path, a builtin call, a host stub. The field holds the same
/// pointer whenever this function's code runs (the runtime changes it
/// only while this green thread is switched out, or inside a call, and
/// restores it before returning), so the load could be pure; it is not
/// marked so, because Cranelift would then hoist it out of a loop that
/// calls a builtin and keep it in a register throughout (the sieve's
/// `memory.fill` loop lost 2 to 6 %). A load next to a call costs
/// nothing measurable.
pub(crate) fn load_exec(b: &mut FunctionBuilder<'_>, vmctx: Value) -> Value {
    b.ins()
        .load(types::I64, MemFlagsData::trusted(), vmctx, vmctx::EXEC)
}

/// Translate defined function `index` to Cranelift IR.
pub(crate) fn translate_function(
    env: &FuncEnv<'_>,
    index: u32,
    fctx: &mut FunctionBuilderContext,
) -> Result<ir::Function, CompileError> {
    let ty = env.module.defined_func_type(index)?.clone();
    let body = env
        .module
        .bodies
        .get(index as usize)
        .ok_or_else(|| CompileError::codegen(format!("no body for function {index}")))?;
    let v = env
        .module
        .validators
        .get(index as usize)
        .ok_or_else(|| CompileError::codegen(format!("no validator for function {index}")))?;
    wasmparser::FuncToValidate {
        resources: v.resources.clone(),
        index: v.index,
        ty: v.ty,
        features: v.features,
    }
    .into_validator(Default::default())
    .validate(body)?;
    let sig = wasm_signature(env.call_conv, &ty);
    let mut func = ir::Function::with_name_signature(UserFuncName::user(0, index), sig);

    set_stack_limit(&mut func)?;

    let region = |func: &mut ir::Function, id: u32, name: &'static str| {
        func.dfg.alias_regions.insert(AliasRegionData {
            user_id: id,
            description: name.into(),
        })
    };
    let vmctx_region = region(&mut func, 0, "vmctx");
    let globals_region = region(&mut func, 1, "globals");
    let heap_region = region(&mut func, 2, "heap");

    let mut builder = FunctionBuilder::new(&mut func, fctx);
    let entry = builder.create_block();
    builder.append_block_params_for_function_params(entry);
    builder.switch_to_block(entry);
    builder.seal_block(entry);
    let params = builder.block_params(entry).to_vec();
    let (vmctx_val, wasm_params) = super::split_params(&ty.params, &params)
        .ok_or_else(|| CompileError::codegen("function parameters"))?;

    let has_memory = env.module.memory_type().is_some();
    let heap_len = (has_memory && super::memory::body_reads_heap_len(body, env.config)?)
        .then(|| builder.declare_var(types::I64));
    let mut t = FuncTranslator {
        env,
        b: builder,
        vmctx: vmctx_val,
        layout: env.module.layout(),
        heap_len,
        locals: Vec::new(),
        stack: Vec::new(),
        frames: Vec::new(),
        reachable: true,
        unreachable_depth: 0,
        loop_plans: super::control::plan_loops(
            body,
            if env.config.is_sparse() {
                super::control::SPARSE_UNROLL_BUDGET
            } else {
                super::control::UNROLL_BUDGET
            },
        )?,
        next_loop: 0,
        meter: Meter::default(),
        calls_wasm: false,
        in_unrolled: false,
        unroll_started: false,
        rewind: false,
        vmctx_flags: MemFlagsData::trusted().with_alias_region(Some(vmctx_region)),
        globals_flags: MemFlagsData::trusted().with_alias_region(Some(globals_region)),
        // Fields written once at instantiation and never again (the heap
        // base of a slot, import records): loads of them are pure, so
        // Cranelift may merge them and hoist them out of loops.
        fixed_flags: MemFlagsData::trusted().with_readonly().with_can_move(),
        heap_flags: MemFlagsData::new()
            .with_endianness(ir::Endianness::Little)
            .with_trap_code(Some(TrapCode::HEAP_OUT_OF_BOUNDS))
            .with_alias_region(Some(heap_region)),
        fuel_sig: None,
        grow_sig: None,
        callees: HashMap::new(),
    };
    t.declare_locals(&ty, &wasm_params, body)?;

    t.reload_heap_len();
    t.fuel_check();

    let results: Vec<ir::Type> = ty.results.iter().map(|r| ir_type(*r)).collect();
    let exit = t.b.create_block();
    for r in &results {
        t.b.append_block_param(exit, *r);
    }
    t.frames.push(Frame {
        kind: FrameKind::Function,
        end: exit,
        num_params: 0,
        num_results: results.len(),
        height: 0,
        end_reachable: false,
        end_meter: Meter::default(),
    });

    let mut reader = body.get_operators_reader()?;
    // The body of the unrolled loop being translated, to read it again for
    // each copy (only innermost loops are unrolled: one at a time).
    let mut loop_body = None;
    while !reader.eof() {
        let op = reader.read()?;
        t.translate_op(op)?;
        if std::mem::take(&mut t.unroll_started) {
            loop_body = Some(reader.clone());
        }
        if std::mem::take(&mut t.rewind) {
            reader = loop_body
                .clone()
                .ok_or_else(|| CompileError::codegen("no loop body to read again"))?;
        }
    }
    if !t.frames.is_empty() {
        return Err(CompileError::codegen("function body ended inside a block"));
    }
    t.b.seal_all_blocks();
    t.b.finalize(env.frontend);
    Ok(func)
}

/// State while translating one function.
pub(crate) struct FuncTranslator<'a, 'f> {
    /// Module and target.
    pub env: &'a FuncEnv<'a>,
    /// The Cranelift function builder.
    pub b: FunctionBuilder<'f>,
    /// The vmctx parameter: this module's instance.
    pub vmctx: Value,
    /// Where this module's import records live in vmctx.
    pub layout: vmctx::Layout,
    /// The memory's length, held in a variable: it changes only through
    /// `memory.grow`, which compiled code reaches by a call, so it is
    /// loaded at entry and reloaded after every call (`None` without a
    /// memory, or when the body never reads the length: see
    /// `memory::body_reads_heap_len`).
    pub heap_len: Option<Variable>,
    /// Wasm locals (parameters first).
    pub locals: Vec<Variable>,
    /// The wasm operand stack.
    pub stack: Vec<Value>,
    /// Open control frames, outermost (the function) first.
    pub frames: Vec<Frame>,
    /// Whether the current position is reachable.
    pub reachable: bool,
    /// Blocks opened in unreachable code, skipped without a frame.
    pub unreachable_depth: u32,
    /// Per `loop` of the body, in order: where its fuel check goes and
    /// whether it is unrolled ([`super::control::plan_loops`]).
    loop_plans: Vec<LoopPlan>,
    /// Ordinal of the next `loop` operator (reachable or not).
    next_loop: usize,
    /// Weight run on the heaviest path to the current point since fuel
    /// was last charged and checked (see [`super::meter`]).
    pub meter: Meter,
    /// Whether the current point is in an unrolled loop: no check is
    /// inserted there (a round weighs at most half of
    /// [`super::meter::SEGMENT_WEIGHT`]: see `plan_loops`). Each copy is
    /// metered as an iteration of the plain loop (its header starts the
    /// debt over), so the two spend the same fuel.
    pub in_unrolled: bool,
    /// Whether the body calls a wasm function (directly, through a table,
    /// or an import, which may be another instance's export): a return
    /// of such a function may be one of a chain (see
    /// [`super::meter::RETURN_CHECK_WEIGHT`]).
    pub calls_wasm: bool,
    /// Set when an unrolled loop's first copy starts: the operators that
    /// follow are its body, to be read again for the next copies.
    pub unroll_started: bool,
    /// Set at the end of a copy of an unrolled loop's body: read the body
    /// again, for the next copy.
    pub rewind: bool,
    /// Flags for vmctx header fields.
    pub vmctx_flags: MemFlagsData,
    /// Flags for global cells.
    pub globals_flags: MemFlagsData,
    /// Flags for vmctx fields that never change while the instance lives
    /// (see [`FuncTranslator::heap_base`]).
    pub fixed_flags: MemFlagsData,
    /// Flags for linear memory accesses.
    pub heap_flags: MemFlagsData,
    fuel_sig: Option<SigRef>,
    grow_sig: Option<SigRef>,
    callees: HashMap<u32, FuncRef>,
}

impl FuncTranslator<'_, '_> {
    fn declare_locals(
        &mut self,
        ty: &abi::FuncType,
        params: &[Value],
        body: &FunctionBody<'_>,
    ) -> Result<(), CompileError> {
        for (p, v) in ty.params.iter().zip(params) {
            let var = self.b.declare_var(ir_type(*p));
            self.b.def_var(var, *v);
            self.locals.push(var);
        }
        let mut reader = body.get_locals_reader()?;
        for _ in 0..reader.get_count() {
            let (count, vt) = reader.read()?;
            let ty = ir_type(super::val_type(vt)?);
            for _ in 0..count {
                let var = self.b.declare_var(ty);
                let zero = self.zero(ty);
                self.b.def_var(var, zero);
                self.locals.push(var);
            }
        }
        Ok(())
    }

    fn zero(&mut self, ty: ir::Type) -> Value {
        match ty {
            types::F32 => self.b.ins().f32const(Ieee32::with_bits(0)),
            types::F64 => self.b.ins().f64const(Ieee64::with_bits(0)),
            _ => self.b.ins().iconst(ty, 0),
        }
    }

    /// A constant of type `ty` from raw little-endian cell bits
    /// (numeric types and null references).
    fn const_from_bits(&mut self, ty: abi::ValType, bits: u64) -> Value {
        match ty {
            abi::ValType::I32 => self.b.ins().iconst(types::I32, i64::from(bits as u32)),
            abi::ValType::F32 => self.b.ins().f32const(Ieee32::with_bits(bits as u32)),
            abi::ValType::F64 => self.b.ins().f64const(Ieee64::with_bits(bits)),
            abi::ValType::I64 | abi::ValType::ExternRef | abi::ValType::FuncRef => {
                self.b.ins().iconst(types::I64, bits as i64)
            }
        }
    }

    /// Pop one operand.
    pub fn pop(&mut self) -> Result<Value, CompileError> {
        self.stack
            .pop()
            .ok_or_else(|| CompileError::codegen("operand stack underflow"))
    }

    /// Pop two operands, returning them in push order.
    pub fn pop2(&mut self) -> Result<(Value, Value), CompileError> {
        let y = self.pop()?;
        let x = self.pop()?;
        Ok((x, y))
    }

    /// Pop `n` operands, returning them in push order.
    pub fn popn(&mut self, n: usize) -> Result<Vec<Value>, CompileError> {
        let at = self
            .stack
            .len()
            .checked_sub(n)
            .ok_or_else(|| CompileError::codegen("operand stack underflow"))?;
        Ok(self.stack.split_off(at))
    }

    /// The top `n` operands, in push order, left on the stack.
    pub fn peekn(&self, n: usize) -> Result<&[Value], CompileError> {
        let at = self
            .stack
            .len()
            .checked_sub(n)
            .ok_or_else(|| CompileError::codegen("operand stack underflow"))?;
        Ok(&self.stack[at..])
    }

    /// `fuel -= 1; if fuel < 0 { fuel_exhausted(exec) }`, with the slow
    /// path in a cold block.
    pub fn fuel_check(&mut self) {
        self.fuel_check_units(1);
    }

    /// `fuel -= units; if fuel < 0 { fuel_exhausted(exec) }`.
    pub fn fuel_check_units(&mut self, units: u32) {
        let negative = self.charge_units(units);
        self.slow_path_if(negative);
    }

    /// The check [`super::meter`] inserts where a path has run
    /// [`super::meter::SEGMENT_WEIGHT`] since the last one: it charges
    /// the whole units of the debt (at least one) and the meter starts
    /// over.
    pub fn segment_check(&mut self) {
        let units = self.meter.whole_units().max(1);
        self.fuel_check_units(units);
        self.meter = Meter {
            debt: self
                .meter
                .debt
                .saturating_sub(units.saturating_mul(UNIT_WEIGHT)),
            since_check: 0,
            memory_ops: 0,
        };
    }

    /// The check at the first copy of an unrolled loop: `fuel -= 1; if
    /// fuel < room { fuel_exhausted(exec) }` (the round charges the rest
    /// as it ends: see [`super::control::Unroll`]).
    pub fn fuel_check_room(&mut self, room: u32) {
        let f = self.fuel();
        let f = self.b.ins().iadd_imm_s(f, -1);
        self.set_fuel(f);
        let short = self
            .b
            .ins()
            .icmp_imm_s(IntCC::SignedLessThan, f, i64::from(room));
        self.slow_path_if(short);
    }

    /// If `cond`, the fuel slow path in a cold block; the builder
    /// continues after it.
    fn slow_path_if(&mut self, cond: Value) {
        let slow = self.b.create_block();
        let cont = self.b.create_block();
        self.b.set_cold_block(slow);
        self.b.ins().brif(cond, slow, &[], cont, &[]);
        self.fuel_slow_path(slow);
        self.b.ins().jump(cont, &[]);
        self.b.switch_to_block(cont);
        self.b.seal_block(cont);
    }

    /// Take the whole units of the meter's debt, to be charged before a
    /// branch, if it is at least `at_least` of weight (else 0): every way
    /// out of here ran the code before it, so charging it here is exact,
    /// and where paths meet again only what was left is merged (see
    /// [`super::meter`]).
    pub fn take_debt(&mut self, at_least: u32) -> u32 {
        if self.meter.debt < at_least.max(UNIT_WEIGHT) {
            return 0;
        }
        let units = self.meter.whole_units();
        self.meter.debt -= units * UNIT_WEIGHT;
        units
    }

    /// `fuel -= units`, no check (0 emits nothing).
    pub fn charge(&mut self, units: u32) {
        if units > 0 {
            let f = self.fuel();
            let f = self.b.ins().iadd_imm_s(f, -i64::from(units));
            self.set_fuel(f);
        }
    }

    /// A loop's back edge to `header` with `args`, carrying the loop's fuel
    /// check: `fuel -= 1; if fuel >= 0 { goto header }`, else the slow path
    /// (laid out right after, not cold, so that the branch back is the
    /// check's own branch) and then `goto header`. Ends the current block.
    /// See [`super::control::plan_loops`] for which loops.
    pub fn back_edge(&mut self, header: ir::Block, args: &[Value], extra: u32) {
        let negative = self.charge_units(extra.saturating_add(1));
        let slow = self.b.create_block();
        self.b
            .ins()
            .brif(negative, slow, &[], header, &block_args(args));
        self.fuel_slow_path(slow);
        self.b.ins().jump(header, &block_args(args));
    }

    /// `fuel -= units`: whether the counter went negative.
    fn charge_units(&mut self, units: u32) -> Value {
        let f = self.fuel();
        let f = self.b.ins().iadd_imm_s(f, -i64::from(units));
        self.set_fuel(f);
        self.b.ins().icmp_imm_s(IntCC::SignedLessThan, f, 0)
    }

    /// Fill `slow` (a fresh block) with the fuel slow path: call
    /// `fuel_exhausted(exec)`, which stores the counter (`r15`) to exec,
    /// refills it or suspends the green thread, and loads `r15` from exec
    /// again before it returns (see the runtime's trampoline): the call
    /// site only names the call. Leaves the builder in `slow`, for the
    /// caller's jump onward.
    fn fuel_slow_path(&mut self, slow: ir::Block) {
        self.b.switch_to_block(slow);
        self.b.seal_block(slow);
        let exec = self.exec();
        let callee = self.b.ins().load(
            types::I64,
            self.vmctx_flags,
            self.vmctx,
            vmctx::FN_FUEL_EXHAUSTED,
        );
        let sig = self.fuel_sig();
        self.b.ins().call_indirect(sig, callee, &[exec]);
    }

    /// The fuel counter: it lives in the pinned register (`r15` on
    /// x86-64) in all compiled code, so it is no SSA value: it crosses
    /// calls, merges and loops without block parameters or arguments.
    pub fn fuel(&mut self) -> Value {
        self.b.ins().get_pinned_reg(types::I64)
    }

    /// Set the fuel counter's register.
    pub fn set_fuel(&mut self, f: Value) {
        self.b.ins().set_pinned_reg(f);
    }

    /// Exec, loaded from the vmctx here ([`load_exec`]).
    pub fn exec(&mut self) -> Value {
        load_exec(&mut self.b, self.vmctx)
    }

    /// Store the fuel register to exec (before builtin calls); returns
    /// exec, for the call.
    pub fn spill_fuel(&mut self) -> Value {
        let f = self.fuel();
        let exec = self.exec();
        self.b.ins().store(self.vmctx_flags, f, exec, vmctx::FUEL);
        exec
    }

    /// Reload the fuel register from exec (after a builtin call).
    pub fn reload_fuel(&mut self) {
        let exec = self.exec();
        let f = self
            .b
            .ins()
            .load(types::I64, self.vmctx_flags, exec, vmctx::FUEL);
        self.set_fuel(f);
    }

    /// Reload the fuel register and the memory's length after a call (and
    /// at function entry): the callee spent fuel and may have grown the
    /// memory. (The fuel slow path does neither to the memory: after it,
    /// only the fuel is reloaded, so a loop's length stays loop-invariant
    /// and what is derived from it is hoisted.)
    pub fn after_call(&mut self) {
        self.reload_fuel();
        self.reload_heap_len();
    }

    /// After a call of a wasm function (which leaves the fuel counter in
    /// its register): reload the memory's length.
    pub fn after_wasm_call(&mut self) {
        self.reload_heap_len();
    }

    /// Reload the memory's length (at entry and after calls).
    pub fn reload_heap_len(&mut self) {
        if let Some(var) = self.heap_len {
            let owner = self.memory_vmctx();
            let len = self
                .b
                .ins()
                .load(types::I64, self.vmctx_flags, owner, vmctx::HEAP_LEN);
            self.b.def_var(var, len);
        }
    }

    /// `fuel_exhausted(exec)` with the `preserve_all` convention: the call
    /// clobbers no register, so values live across a fuel check stay in
    /// registers (the runtime's trampoline saves and restores them all).
    fn fuel_sig(&mut self) -> SigRef {
        if let Some(s) = self.fuel_sig {
            return s;
        }
        let mut sig = ir::Signature::new(CallConv::PreserveAll);
        sig.params.push(AbiParam::new(types::I64));
        let s = self.b.import_signature(sig);
        self.fuel_sig = Some(s);
        s
    }

    /// Signature of the `memory_grow` builtin:
    /// `fn(memory_vmctx, exec, delta) -> i64`.
    pub fn grow_sig(&mut self) -> SigRef {
        if let Some(s) = self.grow_sig {
            return s;
        }
        let mut sig = ir::Signature::new(self.env.call_conv);
        sig.params.push(AbiParam::new(types::I64));
        sig.params.push(AbiParam::new(types::I64));
        sig.params.push(AbiParam::new(types::I64));
        sig.returns.push(AbiParam::new(types::I64));
        let s = self.b.import_signature(sig);
        self.grow_sig = Some(s);
        s
    }

    fn translate_op(&mut self, op: Operator<'_>) -> Result<(), CompileError> {
        // Exception handling: tags are declared and linked but nothing
        // throws or catches yet. Refused even in unreachable code, where
        // `try_table`/`try` would otherwise upset the block count.
        if matches!(
            op,
            Operator::Throw { .. }
                | Operator::ThrowRef
                | Operator::TryTable { .. }
                | Operator::Try { .. }
                | Operator::Catch { .. }
                | Operator::CatchAll
                | Operator::Rethrow { .. }
                | Operator::Delegate { .. }
        ) {
            return Err(CompileError::unsupported(op_name(&op)));
        }
        let plan = if let Operator::Loop { .. } = op {
            let k = self.next_loop;
            self.next_loop += 1;
            *self
                .loop_plans
                .get(k)
                .ok_or_else(|| CompileError::codegen("loop count mismatch"))?
        } else {
            LoopPlan {
                edge_check: false,
                copies: 1,
                units: 1,
            }
        };
        if !self.reachable {
            return self.translate_unreachable_op(&op);
        }
        self.meter = self.meter.add(op_weight(&op));
        if is_load_or_store(&op) {
            self.meter.memory_ops = self.meter.memory_ops.saturating_add(1);
        }
        // What runs after a call of a defined function (which checks fuel
        // at its entry) is a new stretch of the frame's return path (see
        // `RETURN_CHECK_WEIGHT`). Not after an import or `call_indirect`
        // (which may reach one): a host function is no check, and 28
        // loads then a cheap import call returned unchecked (60,004 units
        // on one 1-unit slice, 20,000 deep).
        let imported = self.env.module.imported_funcs.len() as u32;
        let checked_call =
            matches!(op, Operator::Call { function_index } if function_index >= imported);
        if matches!(op, Operator::Call { .. } | Operator::CallIndirect { .. }) {
            self.calls_wasm = true;
        }
        self.translate_reachable_op(op, plan)?;
        if checked_call {
            self.meter.memory_ops = 0;
        }
        if self.reachable && !self.in_unrolled && self.meter.check_due() {
            self.segment_check();
        }
        Ok(())
    }

    fn translate_reachable_op(
        &mut self,
        op: Operator<'_>,
        plan: LoopPlan,
    ) -> Result<(), CompileError> {
        match op {
            Operator::Nop => {}
            Operator::Unreachable => {
                self.b.ins().trap(trap_code(TrapKind::Unreachable));
                self.reachable = false;
            }
            Operator::Block { blockty } => self.block(blockty)?,
            Operator::Loop { blockty } => self.loop_(blockty, plan)?,
            Operator::If { blockty } => self.if_(blockty)?,
            Operator::Else => self.else_()?,
            Operator::End => self.end()?,
            Operator::Br { relative_depth } => self.br(relative_depth)?,
            Operator::BrIf { relative_depth } => self.br_if(relative_depth)?,
            Operator::BrTable { targets } => self.br_table(&targets)?,
            Operator::Return => self.return_()?,
            Operator::Call { function_index } => self.call(function_index)?,
            Operator::Drop => {
                self.pop()?;
            }
            Operator::Select | Operator::TypedSelect { .. } => {
                let cond = self.pop()?;
                let (x, y) = self.pop2()?;
                let v = self.b.ins().select(cond, x, y);
                self.stack.push(v);
            }
            Operator::LocalGet { local_index } => {
                let var = self.local(local_index)?;
                let v = self.b.use_var(var);
                self.stack.push(v);
            }
            Operator::LocalSet { local_index } => {
                let var = self.local(local_index)?;
                let v = self.pop()?;
                self.b.def_var(var, v);
            }
            Operator::LocalTee { local_index } => {
                let var = self.local(local_index)?;
                let v = *self
                    .stack
                    .last()
                    .ok_or_else(|| CompileError::codegen("operand stack underflow"))?;
                self.b.def_var(var, v);
            }
            Operator::GlobalGet { global_index } => self.global_get(global_index)?,
            Operator::GlobalSet { global_index } => self.global_set(global_index)?,
            other => {
                if !(self.translate_memory_op(&other)?
                    || self.translate_numeric_op(&other)?
                    || self.translate_table_op(&other)?)
                {
                    return Err(CompileError::unsupported(op_name(&other)));
                }
            }
        }
        Ok(())
    }

    /// In unreachable code only the block structure matters.
    fn translate_unreachable_op(&mut self, op: &Operator<'_>) -> Result<(), CompileError> {
        match op {
            Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => {
                self.unreachable_depth += 1;
            }
            Operator::Else if self.unreachable_depth == 0 => self.else_()?,
            Operator::End => {
                if self.unreachable_depth > 0 {
                    self.unreachable_depth -= 1;
                } else {
                    self.end()?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn local(&self, index: u32) -> Result<Variable, CompileError> {
        self.locals
            .get(index as usize)
            .copied()
            .ok_or_else(|| CompileError::codegen(format!("local {index} out of range")))
    }

    /// Where global `index` lives: for an imported global, a load of its
    /// cell pointer; for a defined one, its vmctx offset. Also the type,
    /// and the constant value of an immutable defined global whose
    /// initialiser is a plain constant.
    fn global(
        &mut self,
        index: u32,
    ) -> Result<(abi::ValType, Value, i32, Option<u64>), CompileError> {
        let module = self.env.module;
        let imported = module.imported_globals.len();
        match (index as usize).checked_sub(imported) {
            None => {
                let (ty, _) = module.imported_globals[index as usize];
                let at = self.layout.global_import(index);
                let cell = self
                    .b
                    .ins()
                    .load(types::I64, self.vmctx_flags, self.vmctx, at);
                Ok((ty, cell, 0, None))
            }
            Some(d) => {
                let g = module
                    .globals
                    .get(d)
                    .ok_or_else(|| CompileError::codegen(format!("global {index} out of range")))?;
                let offset = i64::from(vmctx::GLOBALS) + i64::from(vmctx::GLOBAL_SIZE) * d as i64;
                let offset = i32::try_from(offset)
                    .map_err(|_| CompileError::unsupported("more globals than fit in vmctx"))?;
                let constant = if g.mutable { None } else { g.init.as_plain() };
                Ok((g.ty, self.vmctx, offset, constant))
            }
        }
    }

    fn global_get(&mut self, index: u32) -> Result<(), CompileError> {
        let (ty, base, offset, constant) = self.global(index)?;
        let v = match constant {
            Some(bits) => self.const_from_bits(ty, bits),
            None => self
                .b
                .ins()
                .load(ir_type(ty), self.globals_flags, base, offset),
        };
        self.stack.push(v);
        Ok(())
    }

    fn global_set(&mut self, index: u32) -> Result<(), CompileError> {
        let (_, base, offset, _) = self.global(index)?;
        let v = self.pop()?;
        self.b.ins().store(self.globals_flags, v, base, offset);
        Ok(())
    }

    fn call(&mut self, index: u32) -> Result<(), CompileError> {
        let module = self.env.module;
        let nparams = module.func_type(index)?.params.len();
        let imported = module.imported_funcs.len() as u32;
        if index < imported {
            return self.call_import(index);
        }
        let defined = index - imported;
        let callee = match self.callees.get(&defined) {
            Some(c) => *c,
            None => {
                let c = import_callee(self.b.func, self.env.call_conv, module, defined)?;
                self.callees.insert(defined, c);
                c
            }
        };
        let wasm = self.popn(nparams)?;
        let args = super::call_args(self.vmctx, &wasm);
        let inst = self.b.ins().call(callee, &args);
        let results = self.b.inst_results(inst).to_vec();
        self.after_wasm_call();
        self.stack.extend(results);
        Ok(())
    }

    /// Call imported function `index` through its vmctx record: the
    /// record's code with the record's vmctx (whose exec and stack limit
    /// follow this green thread: see `abi::vmctx::EXEC`).
    fn call_import(&mut self, index: u32) -> Result<(), CompileError> {
        let ty = self.env.module.func_type(index)?.clone();
        let at = self.layout.func_import(index);
        // Import records are written at instantiation only.
        let code = self
            .b
            .ins()
            .load(types::I64, self.fixed_flags, self.vmctx, at);
        let callee_vmctx = self
            .b
            .ins()
            .load(types::I64, self.fixed_flags, self.vmctx, at + 8);
        let sig = wasm_signature(self.env.call_conv, &ty);
        let sig = self.b.import_signature(sig);
        let wasm = self.popn(ty.params.len())?;
        let args = super::call_args(callee_vmctx, &wasm);
        let inst = self.b.ins().call_indirect(sig, code, &args);
        let results = self.b.inst_results(inst).to_vec();
        self.after_wasm_call();
        self.stack.extend(results);
        Ok(())
    }
}
