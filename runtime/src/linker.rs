//! Resolving a module's imports by name: host functions (typed Rust
//! closures or raw ones), other instances' exports, host globals and tags.
//!
//! ```ignore
//! let mut linker = Linker::new();
//! linker.func_wrap("env", "add", |_: &mut Caller<'_>, a: i32, b: i32| a + b);
//! linker.func_wrap("env", "log", |caller: &mut Caller<'_>, ptr: u32, len: u32| {
//!     let bytes = caller.memory().get(ptr as usize..(ptr + len) as usize).unwrap_or_default();
//!     println!("{}", String::from_utf8_lossy(bytes));
//! });
//! let instance = linker.instantiate(&region, &module, None)?;
//! ```

use crate::externs::Extern;
use crate::host::{Caller, HostAction, HostFunc};
use crate::instance::{Instance, InstantiateError};
use crate::module::Module;
use crate::region::Region;
use myriad_abi::{FuncType, ImportKind, ValType};
use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

/// Why instantiation through a [`Linker`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No definition for an import.
    #[error("unknown import: {module}.{name} ({kind}) is not defined")]
    UnknownImport {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
        /// What kind of item the module imports.
        kind: &'static str,
    },
    /// The definitions were found but instantiation failed (incompatible
    /// import, segment out of bounds, region full...).
    #[error(transparent)]
    Instantiate(#[from] InstantiateError),
}

/// Named definitions for imports. Cheap to clone; share one linker among
/// many instantiations.
#[derive(Clone, Default, Debug)]
pub struct Linker {
    items: HashMap<(String, String), Extern>,
}

impl Linker {
    /// An empty linker.
    pub fn new() -> Linker {
        Linker::default()
    }

    /// Define `module.name` as `item` (replacing an earlier definition).
    pub fn define(&mut self, module: &str, name: &str, item: Extern) -> &mut Self {
        self.items
            .insert((module.to_owned(), name.to_owned()), item);
        self
    }

    /// Define `module.name` as a raw host function of type `ty`: `body`
    /// gets the argument cells and writes the result cells.
    pub fn func(
        &mut self,
        module: &str,
        name: &str,
        ty: FuncType,
        body: impl Fn(&mut Caller<'_>, &mut [u64]) -> HostAction + Send + Sync + 'static,
    ) -> &mut Self {
        self.define(
            module,
            name,
            Extern::Func(crate::Func::Host(HostFunc::new(ty, body))),
        )
    }

    /// Define `module.name` as a typed host function: a closure taking
    /// `&mut Caller` and up to six wasm values (`i32`, `u32`, `i64`, `u64`,
    /// `f32`, `f64`) and returning `()`, one value, a pair, or a
    /// `Result<_, HostAction>` whose `Err` parks, yields, exits or traps.
    pub fn func_wrap<Params, Results>(
        &mut self,
        module: &str,
        name: &str,
        f: impl IntoHostFunc<Params, Results>,
    ) -> &mut Self {
        self.define(
            module,
            name,
            Extern::Func(crate::Func::Host(f.into_host_func())),
        )
    }

    /// Define every export of `instance` under the module name `module`.
    pub fn instance(&mut self, module: &str, instance: &Instance) -> &mut Self {
        let names: Vec<String> = instance
            .module()
            .metadata()
            .exports
            .iter()
            .map(|e| e.name.clone())
            .collect();
        for name in names {
            if let Some(item) = instance.export(&name) {
                self.define(module, &name, item);
            }
        }
        self
    }

    /// The definition of `module.name`, if any.
    pub fn get(&self, module: &str, name: &str) -> Option<&Extern> {
        self.items.get(&(module.to_owned(), name.to_owned()))
    }

    /// The definitions for `module`'s imports, in import order.
    pub fn resolve(&self, module: &Module) -> Result<Vec<Extern>, LinkError> {
        module
            .imports()
            .iter()
            .map(|imp| {
                self.get(&imp.module, &imp.name)
                    .cloned()
                    .ok_or_else(|| LinkError::UnknownImport {
                        module: imp.module.clone(),
                        name: imp.name.clone(),
                        kind: match imp.kind {
                            ImportKind::Func(_) => "function",
                            ImportKind::Global { .. } => "global",
                            ImportKind::Memory(_) => "memory",
                            ImportKind::Table(_) => "table",
                            ImportKind::Tag(_) => "tag",
                        },
                    })
            })
            .collect()
    }

    /// Resolve `module`'s imports and instantiate it in `region` with the
    /// embedder data `data` (see [`Instance::instantiate_with`]).
    pub fn instantiate(
        &self,
        region: &Arc<Region>,
        module: &Arc<Module>,
        data: Option<Box<dyn Any + Send>>,
    ) -> Result<Instance, LinkError> {
        let imports = self.resolve(module)?;
        Ok(Instance::instantiate_with(region, module, &imports, data)?)
    }
}

/// A Rust type that is a wasm value.
pub trait WasmTy: Copy + Send + 'static {
    /// Its wasm type.
    const TY: ValType;
    /// From a raw cell.
    fn from_cell(bits: u64) -> Self;
    /// To a raw cell (i32/f32 zero-extended).
    fn to_cell(self) -> u64;
}

impl WasmTy for i32 {
    const TY: ValType = ValType::I32;
    fn from_cell(bits: u64) -> Self {
        bits as u32 as i32
    }
    fn to_cell(self) -> u64 {
        u64::from(self as u32)
    }
}

impl WasmTy for u32 {
    const TY: ValType = ValType::I32;
    fn from_cell(bits: u64) -> Self {
        bits as u32
    }
    fn to_cell(self) -> u64 {
        u64::from(self)
    }
}

impl WasmTy for i64 {
    const TY: ValType = ValType::I64;
    fn from_cell(bits: u64) -> Self {
        bits as i64
    }
    fn to_cell(self) -> u64 {
        self as u64
    }
}

impl WasmTy for u64 {
    const TY: ValType = ValType::I64;
    fn from_cell(bits: u64) -> Self {
        bits
    }
    fn to_cell(self) -> u64 {
        self
    }
}

impl WasmTy for f32 {
    const TY: ValType = ValType::F32;
    fn from_cell(bits: u64) -> Self {
        f32::from_bits(bits as u32)
    }
    fn to_cell(self) -> u64 {
        u64::from(self.to_bits())
    }
}

impl WasmTy for f64 {
    const TY: ValType = ValType::F64;
    fn from_cell(bits: u64) -> Self {
        f64::from_bits(bits)
    }
    fn to_cell(self) -> u64 {
        self.to_bits()
    }
}

/// What a typed host function may return.
pub trait HostReturn: Send + 'static {
    /// Its wasm result types.
    fn types() -> Vec<ValType>;
    /// Write the results to `cells` and say what to do next.
    fn store(self, cells: &mut [u64]) -> HostAction;
}

impl HostReturn for () {
    fn types() -> Vec<ValType> {
        Vec::new()
    }
    fn store(self, _: &mut [u64]) -> HostAction {
        HostAction::Return
    }
}

impl<T: WasmTy> HostReturn for T {
    fn types() -> Vec<ValType> {
        vec![T::TY]
    }
    fn store(self, cells: &mut [u64]) -> HostAction {
        cells[0] = self.to_cell();
        HostAction::Return
    }
}

impl<A: WasmTy, B: WasmTy> HostReturn for (A, B) {
    fn types() -> Vec<ValType> {
        vec![A::TY, B::TY]
    }
    fn store(self, cells: &mut [u64]) -> HostAction {
        cells[0] = self.0.to_cell();
        cells[1] = self.1.to_cell();
        HostAction::Return
    }
}

/// `Err(action)` parks, yields, sleeps, exits or traps instead of
/// returning. With `Err(HostAction::Yield)` or `Err(HostAction::Sleep(_))`
/// the results are left as they are (zero).
impl<R: HostReturn> HostReturn for Result<R, HostAction> {
    fn types() -> Vec<ValType> {
        R::types()
    }
    fn store(self, cells: &mut [u64]) -> HostAction {
        match self {
            Ok(r) => r.store(cells),
            Err(action) => action,
        }
    }
}

/// A closure that can become a [`HostFunc`]; implemented for
/// `Fn(&mut Caller, A1, ..., An) -> R` with `n <= 6`.
pub trait IntoHostFunc<Params, Results> {
    /// The host function, with the signature derived from the types.
    fn into_host_func(self) -> HostFunc;
}

macro_rules! impl_into_host_func {
    ($($arg:ident),*) => {
        impl<F, R, $($arg: WasmTy),*> IntoHostFunc<($($arg,)*), R> for F
        where
            F: Fn(&mut Caller<'_>, $($arg),*) -> R + Send + Sync + 'static,
            R: HostReturn,
        {
            #[allow(non_snake_case, unused_mut, unused_variables, unused_assignments)]
            fn into_host_func(self) -> HostFunc {
                let ty = FuncType {
                    params: vec![$($arg::TY),*],
                    results: R::types(),
                };
                HostFunc::new(ty, move |caller: &mut Caller<'_>, cells: &mut [u64]| {
                    let mut i = 0;
                    $(
                        let $arg = $arg::from_cell(cells[i]);
                        i += 1;
                    )*
                    (self)(caller, $($arg),*).store(cells)
                })
            }
        }
    };
}

impl_into_host_func!();
impl_into_host_func!(A1);
impl_into_host_func!(A1, A2);
impl_into_host_func!(A1, A2, A3);
impl_into_host_func!(A1, A2, A3, A4);
impl_into_host_func!(A1, A2, A3, A4, A5);
impl_into_host_func!(A1, A2, A3, A4, A5, A6);
