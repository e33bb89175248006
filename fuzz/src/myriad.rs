//! The Myriad side: compile through a private cache directory, instantiate
//! in a one-slot region, call exports in fuel slices, read the state.

use crate::gen::{Bounds, HEAP_CAPACITY};
use crate::info::{ModuleInfo, Ty};
use crate::model::{Outcome, Resource, State, Trap, Value, UNKNOWN_FUNC};
use myriad_codegen::CompileError;
use myriad_runtime::{
    Instance, InstantiateError, Limit, LoadError, Module, Outcome as MOutcome, Region,
    RegionConfig, TrapKind, Val,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Stack of the slot the Myriad side runs in.
pub const STACK_SIZE: usize = 128 * 1024;

/// Fuel units (function entries and loop iterations) a Myriad call may
/// spend before it ends with the fuel limit.
pub const FUEL_PER_CALL: u64 = 300_000;

/// After this many slices of one call, the slices grow to 2^20 units
/// (a guest that loops in 1-unit slices would otherwise take long).
const MAX_SMALL_SLICES: u64 = 2_000;

/// Why Myriad did not compile a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompileFailure {
    /// `CompileError::Unsupported` (a feature Myriad does not implement)
    /// or `LoadError::Unsupported` (a limit of the runtime).
    Unsupported(String),
    /// `CompileError::Invalid`: Myriad's validator refused it.
    Invalid(String),
    /// Anything else (code generation, linking, loading): always a bug
    /// for a valid module.
    Other(String),
}

/// What the Myriad side keeps between modules: its private cache
/// directory and its two regions.
pub struct MyriadSide {
    cache: PathBuf,
    plain: Arc<Region>,
    guarded: Arc<Region>,
    sparse: Arc<Region>,
}

/// Create `dir` (and parents) with mode 0700, as the cache requires.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

impl MyriadSide {
    /// A side compiling into `cache` (created 0700).
    pub fn new(cache: &Path) -> anyhow::Result<MyriadSide> {
        private_dir(cache)?;
        // The same growth limit (HEAP_CAPACITY) in every mode; sparse
        // code gets the 4 GiB reservation and the guard it relies on.
        let region = |bounds: Bounds| {
            let config = bounds.config();
            Region::new(RegionConfig {
                slots: 1,
                stack_size: STACK_SIZE,
                heap_capacity: HEAP_CAPACITY,
                heap_reservation: config.heap_reservation as usize,
                guard_size: config.guard_bytes as usize,
                guard_mode: bounds != Bounds::Dense,
            })
            .map(Arc::new)
        };
        Ok(MyriadSide {
            cache: cache.to_owned(),
            plain: region(Bounds::Dense)?,
            guarded: region(Bounds::Guarded)?,
            sparse: region(Bounds::Sparse)?,
        })
    }

    /// Compile `wasm` in `bounds` mode.
    pub fn compile(&self, wasm: &[u8], bounds: Bounds) -> Result<Arc<Module>, CompileFailure> {
        let config = bounds.config();
        match Module::compile(wasm, &config, &self.cache) {
            Ok(m) => Ok(Arc::new(m)),
            Err(LoadError::Compile(e)) => Err(match e.downcast_ref::<CompileError>() {
                Some(CompileError::Unsupported(s)) => CompileFailure::Unsupported(s.clone()),
                Some(CompileError::Invalid(s)) => CompileFailure::Invalid(s.clone()),
                _ => CompileFailure::Other(e.to_string()),
            }),
            // An implementation limit of the loader (a vmctx too large for
            // a slot, ...): like a feature Myriad lacks.
            Err(LoadError::Unsupported { reason, .. }) => {
                Err(CompileFailure::Unsupported(format!("unusable: {reason}")))
            }
            Err(e) => Err(CompileFailure::Other(e.to_string())),
        }
    }

    /// Remove the compiled artifacts from the cache directory (loaded
    /// modules keep their mapping).
    pub fn clean_cache(&self) {
        if let Ok(dir) = std::fs::read_dir(&self.cache) {
            for e in dir.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Instantiate `module` (its segments, then its start function) in the
    /// region of `bounds` mode.
    pub fn instantiate(
        &self,
        module: &Arc<Module>,
        info: &ModuleInfo,
        bounds: Bounds,
        slice_units: u64,
    ) -> Instantiated {
        let region = match bounds {
            Bounds::Dense => &self.plain,
            Bounds::Guarded => &self.guarded,
            Bounds::Sparse => &self.sparse,
        };
        let inst = match Instance::instantiate(region, module) {
            Ok(i) => i,
            Err(e) => {
                return match e {
                    InstantiateError::DataSegmentOutOfBounds { .. } => {
                        Instantiated::Failed(Outcome::Trapped(Trap::MemoryOutOfBounds))
                    }
                    InstantiateError::ElemSegmentOutOfBounds { .. } => {
                        Instantiated::Failed(Outcome::Trapped(Trap::TableOutOfBounds))
                    }
                    InstantiateError::MemoryTooLarge { .. }
                    | InstantiateError::TableTooLarge(_) => {
                        Instantiated::Failed(Outcome::Limited(Resource::Memory))
                    }
                    InstantiateError::GuardMismatch(s) => Instantiated::Skip(s),
                    e => Instantiated::Failed(Outcome::Odd(format!("instantiate: {e}"))),
                };
            }
        };
        let func_ids = inst
            .table_state()
            .map(|t| {
                (0..info.funcs.len() as u32)
                    .map(|f| (t.func_ref_bits(f), f))
                    .collect()
            })
            .unwrap_or_default();
        let mut run = MyriadInstance {
            inst,
            func_ids,
            slice_units,
            slices: 0,
        };
        match run.start() {
            Ok(()) => Instantiated::Ok(run),
            Err(o) => Instantiated::Failed(o),
        }
    }
}

/// The result of instantiating on one side.
pub enum Instantiated<T = MyriadInstance> {
    /// Ready for calls.
    Ok(T),
    /// Instantiation failed (a segment out of bounds, the start function
    /// trapped or hit a limit).
    Failed(Outcome),
    /// This combination cannot run here (and is not a divergence).
    Skip(String),
}

/// A live Myriad instance and what is needed to translate its values.
pub struct MyriadInstance {
    inst: Instance,
    /// funcref bits -> function index.
    func_ids: HashMap<u64, u32>,
    slice_units: u64,
    slices: u64,
}

impl MyriadInstance {
    /// Run the pending start function, if any.
    fn start(&mut self) -> Result<(), Outcome> {
        match self.inst.call_start() {
            Ok(false) => Ok(()),
            Ok(true) => match self.finish_call() {
                Outcome::Returned(_) => Ok(()),
                other => Err(other),
            },
            Err(e) => Err(Outcome::Odd(format!("call_start: {e}"))),
        }
    }

    /// Slices run since the last call of this function.
    pub fn take_slices(&mut self) -> u64 {
        std::mem::take(&mut self.slices)
    }

    fn to_val(&self, v: &Value) -> Val {
        match v {
            Value::I32(x) => Val::I32(*x),
            Value::I64(x) => Val::I64(*x),
            Value::F32(b) => Val::F32(f32::from_bits(*b)),
            Value::F64(b) => Val::F64(f64::from_bits(*b)),
            Value::FuncRef(None) => Val::FuncRef(0),
            Value::FuncRef(Some(f)) => {
                Val::FuncRef(self.inst.table_state().map_or(0, |t| t.func_ref_bits(*f)))
            }
            Value::ExternRef(h) => Val::ExternRef(h.unwrap_or(0)),
        }
    }

    fn value_of_bits(&self, ty: Ty, bits: u64) -> Value {
        match ty {
            Ty::I32 => Value::I32(bits as u32 as i32),
            Ty::I64 => Value::I64(bits as i64),
            Ty::F32 => Value::F32(bits as u32),
            Ty::F64 => Value::F64(bits),
            Ty::FuncRef => Value::FuncRef(if bits == 0 {
                None
            } else {
                Some(self.func_ids.get(&bits).copied().unwrap_or(UNKNOWN_FUNC))
            }),
            Ty::ExternRef => Value::ExternRef((bits != 0).then_some(bits)),
        }
    }

    fn value_of(&self, v: &Val) -> Value {
        match *v {
            Val::I32(x) => Value::I32(x),
            Val::I64(x) => Value::I64(x),
            Val::F32(x) => Value::F32(x.to_bits()),
            Val::F64(x) => Value::F64(x.to_bits()),
            Val::FuncRef(b) => self.value_of_bits(Ty::FuncRef, b),
            Val::ExternRef(b) => self.value_of_bits(Ty::ExternRef, b),
        }
    }

    /// Call export `name` with `args` (of signature `sig`).
    pub fn call(&mut self, name: &str, args: &[Value]) -> Outcome {
        let vals: Vec<Val> = args.iter().map(|a| self.to_val(a)).collect();
        if let Err(e) = self.inst.call(name, &vals) {
            return Outcome::Odd(format!("call: {e}"));
        }
        self.finish_call()
    }

    /// Run the armed call to its end in fuel slices, within a fresh fuel
    /// budget of [`FUEL_PER_CALL`].
    fn finish_call(&mut self) -> Outcome {
        self.inst
            .set_fuel_limit(self.inst.fuel_used().saturating_add(FUEL_PER_CALL));
        let mut slices = 0u64;
        loop {
            let units = if slices < MAX_SMALL_SLICES {
                self.slice_units
            } else {
                1 << 20
            };
            slices += 1;
            self.slices += 1;
            match self.inst.resume_fuel(units) {
                MOutcome::Yielded => continue,
                MOutcome::Finished(vals) => {
                    return Outcome::Returned(vals.iter().map(|v| self.value_of(v)).collect())
                }
                MOutcome::Trapped(kind) => return trap_outcome(kind),
                MOutcome::Limited(Limit::Fuel) => return Outcome::Limited(Resource::Fuel),
                MOutcome::Limited(Limit::Memory) => return Outcome::Limited(Resource::Memory),
                other => return Outcome::Odd(format!("{other:?}")),
            }
        }
    }

    /// Memory, globals and tables as they are now.
    pub fn state(&self, info: &ModuleInfo) -> State {
        let globals = info
            .globals
            .iter()
            .enumerate()
            .map(|(i, ty)| {
                self.inst
                    .global_bits(i)
                    .map(|bits| self.value_of_bits(*ty, bits))
            })
            .collect();
        let tables = info
            .tables
            .iter()
            .enumerate()
            .map(|(t, ty)| {
                let elems = self.inst.table_state()?.table(t)?;
                Some(elems.iter().map(|b| self.value_of_bits(*ty, *b)).collect())
            })
            .collect();
        State {
            memory: Some(self.inst.memory().to_vec()),
            globals,
            tables,
        }
    }
}

/// A Myriad trap kind as a comparison outcome.
pub fn trap_outcome(kind: TrapKind) -> Outcome {
    match kind {
        TrapKind::StackOverflow => Outcome::Limited(Resource::StackOverflow),
        TrapKind::HeapOutOfBounds => Outcome::Trapped(Trap::MemoryOutOfBounds),
        TrapKind::IntegerOverflow => Outcome::Trapped(Trap::IntegerOverflow),
        TrapKind::IntegerDivisionByZero => Outcome::Trapped(Trap::IntegerDivisionByZero),
        TrapKind::BadConversionToInteger => Outcome::Trapped(Trap::BadConversionToInteger),
        TrapKind::Unreachable => Outcome::Trapped(Trap::Unreachable),
        TrapKind::IndirectCallTypeMismatch => Outcome::Trapped(Trap::IndirectCallTypeMismatch),
        TrapKind::TableOutOfBounds | TrapKind::TableAccessOutOfBounds => {
            Outcome::Trapped(Trap::TableOutOfBounds)
        }
        TrapKind::NullReference => Outcome::Trapped(Trap::IndirectCallToNull),
        TrapKind::HostTrap => Outcome::Odd("host trap".into()),
    }
}
