//! The oracle: the `wasmi` interpreter, configured for exactly the
//! features Myriad implements, with fuel and with resource limits that
//! make `memory.grow` and `table.grow` fail where Myriad's do.

use crate::gen::HEAP_CAPACITY;
use crate::info::{ModuleInfo, Ty};
use crate::model::{Outcome, Resource, State, Trap, Value, UNKNOWN_FUNC};
use crate::myriad::Instantiated;
use std::collections::HashMap;
use wasmi::errors::{ErrorKind, InstantiationError, MemoryError, TableError};
use wasmi::{CompilationMode, Config, Engine, ExternRef, Func, Instance, Module, Ref, Store};
use wasmi::{ResourceLimiter, TrapCode};
use wasmi_core::LimiterError;

/// Fuel (roughly one unit per instruction) an oracle call may spend.
pub const FUEL_PER_CALL: u64 = 3_000_000;

/// Most nested calls the oracle allows before it reports a stack overflow.
pub const MAX_RECURSION: usize = 1000;

/// The store's resource limiter: memory up to the Myriad slot's heap
/// capacity, table elements in all tables together up to Myriad's
/// `MAX_TABLE_ELEMENTS`. A refused growth makes `grow` return -1, as on
/// Myriad.
#[derive(Default)]
pub struct Limits {
    table_elements: u64,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        Ok(desired <= HEAP_CAPACITY)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        if maximum.is_some_and(|m| desired > m) {
            // The table refuses by itself (after asking us): count nothing.
            return Ok(true);
        }
        let total = self.table_elements - current as u64 + desired as u64;
        if total > myriad_runtime::table::MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.table_elements = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        10
    }

    fn tables(&self) -> usize {
        1000
    }

    fn memories(&self) -> usize {
        1
    }
}

/// The oracle's engine.
pub struct Oracle {
    engine: Engine,
}

impl Default for Oracle {
    fn default() -> Self {
        Oracle::new()
    }
}

impl Oracle {
    /// An engine with Myriad's feature set: the MVP, mutable globals,
    /// multi-value, sign extension, saturating conversions, bulk memory,
    /// reference types, extended constants and custom page sizes; no tail
    /// calls, multi-memory, memory64 and SIMD (not compiled in) or wide arithmetic. Fuel on,
    /// eager compilation (so every function is validated up front).
    pub fn new() -> Oracle {
        let mut c = Config::default();
        c.consume_fuel(true)
            .compilation_mode(CompilationMode::Eager)
            .set_max_recursion_depth(MAX_RECURSION)
            .wasm_mutable_global(true)
            .wasm_multi_value(true)
            .wasm_sign_extension(true)
            .wasm_saturating_float_to_int(true)
            .wasm_bulk_memory(true)
            .wasm_reference_types(true)
            .wasm_extended_const(true)
            .wasm_custom_page_sizes(true)
            .wasm_tail_call(false)
            .wasm_multi_memory(false)
            .wasm_wide_arithmetic(false);
        Oracle {
            engine: Engine::new(&c),
        }
    }

    /// Compile (validate and translate) `wasm`.
    pub fn compile(&self, wasm: &[u8]) -> Result<Module, String> {
        Module::new(&self.engine, wasm).map_err(|e| e.to_string())
    }

    /// Instantiate `module` (segments, then the start function) in a fresh
    /// store.
    pub fn instantiate(&self, module: &Module, info: &ModuleInfo) -> Instantiated<OracleInstance> {
        let mut store = Store::new(&self.engine, Limits::default());
        store.limiter(|l| l as &mut dyn ResourceLimiter);
        if store.set_fuel(FUEL_PER_CALL).is_err() {
            return Instantiated::Failed(Outcome::Odd("fuel metering is off".into()));
        }
        let instance = match Instance::new(&mut store, module, &[]) {
            Ok(i) => i,
            Err(e) => return Instantiated::Failed(error_outcome(&e)),
        };
        let mut func_ids = HashMap::new();
        for (name, index) in &info.func_exports {
            if let Some(f) = instance.get_func(&store, name) {
                func_ids.insert(func_key(&f), *index);
            }
        }
        Instantiated::Ok(OracleInstance {
            store,
            instance,
            func_ids,
        })
    }
}

/// A stable identity of a function handle (wasmi's handles have no
/// equality; their debug form names the store slot).
fn func_key(f: &Func) -> String {
    format!("{f:?}")
}

/// A wasmi error as a comparison outcome.
pub fn error_outcome(e: &wasmi::Error) -> Outcome {
    match e.kind() {
        ErrorKind::Instantiation(InstantiationError::ElementSegmentDoesNotFit { .. })
        // wasmi's `as_trap_code` misses this one.
        | ErrorKind::Table(TableError::CopyOutOfBounds) => {
            return Outcome::Trapped(Trap::TableOutOfBounds)
        }
        ErrorKind::Table(TableError::OutOfSystemMemory | TableError::ResourceLimiterDeniedAllocation)
        | ErrorKind::Memory(
            MemoryError::OutOfSystemMemory | MemoryError::ResourceLimiterDeniedAllocation,
        ) => return Outcome::Limited(Resource::Memory),
        _ => {}
    }
    match e.as_trap_code() {
        Some(code) => trap_code_outcome(code),
        None => Outcome::Odd(e.to_string()),
    }
}

/// A wasmi trap code as a comparison outcome.
pub fn trap_code_outcome(code: TrapCode) -> Outcome {
    Outcome::Trapped(match code {
        TrapCode::UnreachableCodeReached => Trap::Unreachable,
        TrapCode::MemoryOutOfBounds => Trap::MemoryOutOfBounds,
        TrapCode::TableOutOfBounds => Trap::TableOutOfBounds,
        TrapCode::IndirectCallToNull => Trap::IndirectCallToNull,
        TrapCode::IntegerDivisionByZero => Trap::IntegerDivisionByZero,
        TrapCode::IntegerOverflow => Trap::IntegerOverflow,
        TrapCode::BadConversionToInteger => Trap::BadConversionToInteger,
        TrapCode::BadSignature => Trap::IndirectCallTypeMismatch,
        TrapCode::StackOverflow => return Outcome::Limited(Resource::StackOverflow),
        TrapCode::OutOfFuel => return Outcome::Limited(Resource::Fuel),
        TrapCode::GrowthOperationLimited => return Outcome::Limited(Resource::Memory),
    })
}

/// A live oracle instance.
pub struct OracleInstance {
    store: Store<Limits>,
    instance: Instance,
    /// function handle identity -> function index
    func_ids: HashMap<String, u32>,
}

impl OracleInstance {
    fn make_val(&mut self, v: &Value) -> wasmi::Val {
        match v {
            Value::I32(x) => wasmi::Val::I32(*x),
            Value::I64(x) => wasmi::Val::I64(*x),
            Value::F32(b) => wasmi::Val::F32(wasmi::F32::from_bits(*b)),
            Value::F64(b) => wasmi::Val::F64(wasmi::F64::from_bits(*b)),
            Value::ExternRef(Some(h)) => {
                wasmi::Val::ExternRef(Ref::Val(ExternRef::new(&mut self.store, *h)))
            }
            Value::ExternRef(None) => wasmi::Val::ExternRef(Ref::Null),
            // The fuzzer passes only null function references.
            Value::FuncRef(_) => wasmi::Val::FuncRef(Ref::Null),
        }
    }

    fn value_of(&self, v: &wasmi::Val) -> Value {
        match v {
            wasmi::Val::I32(x) => Value::I32(*x),
            wasmi::Val::I64(x) => Value::I64(*x),
            wasmi::Val::F32(x) => Value::F32(x.to_bits()),
            wasmi::Val::F64(x) => Value::F64(x.to_bits()),
            wasmi::Val::FuncRef(r) => Value::FuncRef(r.val().map(|f| {
                self.func_ids
                    .get(&func_key(f))
                    .copied()
                    .unwrap_or(UNKNOWN_FUNC)
            })),
            wasmi::Val::ExternRef(r) => Value::ExternRef(r.val().map(|e| {
                e.data(&self.store)
                    .downcast_ref::<u64>()
                    .copied()
                    .unwrap_or(0)
            })),
            // No SIMD in the compared subset.
            wasmi::Val::V128(_) => Value::ExternRef(Some(u64::MAX)),
        }
    }

    /// Call export `name` with `args` (of types `params`), returning
    /// `results` values.
    pub fn call(&mut self, name: &str, args: &[Value], results: &[Ty]) -> Outcome {
        let Some(func) = self.instance.get_func(&self.store, name) else {
            return Outcome::Odd(format!("no function export {name:?}"));
        };
        if self.store.set_fuel(FUEL_PER_CALL).is_err() {
            return Outcome::Odd("fuel metering is off".into());
        }
        let inputs: Vec<wasmi::Val> = args.iter().map(|a| self.make_val(a)).collect();
        let mut outputs: Vec<wasmi::Val> = results
            .iter()
            .map(|t| match t {
                Ty::I32 => wasmi::Val::I32(0),
                Ty::I64 => wasmi::Val::I64(0),
                Ty::F32 => wasmi::Val::F32(wasmi::F32::from_bits(0)),
                Ty::F64 => wasmi::Val::F64(wasmi::F64::from_bits(0)),
                Ty::FuncRef => wasmi::Val::FuncRef(Ref::Null),
                Ty::ExternRef => wasmi::Val::ExternRef(Ref::Null),
            })
            .collect();
        match func.call(&mut self.store, &inputs, &mut outputs) {
            Ok(()) => Outcome::Returned(outputs.iter().map(|v| self.value_of(v)).collect()),
            Err(e) => error_outcome(&e),
        }
    }

    /// Memory, globals and tables as they are now (through the exports).
    pub fn state(&self, info: &ModuleInfo) -> State {
        let memory = if info.has_memory {
            info.memory_export.as_ref().and_then(|name| {
                self.instance
                    .get_memory(&self.store, name)
                    .map(|m| m.data(&self.store).to_vec())
            })
        } else {
            Some(Vec::new())
        };
        let mut globals: Vec<Option<Value>> = vec![None; info.globals.len()];
        for (name, index) in &info.global_exports {
            if let (Some(g), Some(slot)) = (
                self.instance.get_global(&self.store, name),
                globals.get_mut(*index as usize),
            ) {
                *slot = Some(self.value_of(&g.get(&self.store)));
            }
        }
        let mut tables: Vec<Option<Vec<Value>>> = vec![None; info.tables.len()];
        for (name, index) in &info.table_exports {
            if let (Some(t), Some(slot)) = (
                self.instance.get_table(&self.store, name),
                tables.get_mut(*index as usize),
            ) {
                let size = t.size(&self.store);
                let elems = (0..size)
                    .map(|i| match t.get(&self.store, i) {
                        Some(v) => self.value_of(&v),
                        None => Value::ExternRef(Some(u64::MAX)),
                    })
                    .collect();
                *slot = Some(elems);
            }
        }
        State {
            memory,
            globals,
            tables,
        }
    }
}
