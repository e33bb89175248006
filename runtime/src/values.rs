//! The values the embedding API passes and the ways a slice can end:
//! [`Val`], [`Outcome`], [`Limit`].

use myriad_abi::{TrapKind, ValType};

/// A WebAssembly value passed to or returned from an export.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Val {
    /// `i32`
    I32(i32),
    /// `i64`
    I64(i64),
    /// `f32`
    F32(f32),
    /// `f64`
    F64(f64),
    /// `funcref`: raw pointer bits of a `FuncRef` record of this instance
    /// (0 is null).
    FuncRef(u64),
    /// `externref`: opaque host handle (0 is null).
    ExternRef(u64),
}

impl Val {
    /// The value's type.
    pub fn ty(&self) -> ValType {
        match self {
            Val::I32(_) => ValType::I32,
            Val::I64(_) => ValType::I64,
            Val::F32(_) => ValType::F32,
            Val::F64(_) => ValType::F64,
            Val::FuncRef(_) => ValType::FuncRef,
            Val::ExternRef(_) => ValType::ExternRef,
        }
    }

    /// The value as raw 8-byte cell bits.
    pub fn to_bits(self) -> u64 {
        match self {
            Val::I32(v) => v as u32 as u64,
            Val::I64(v) => v as u64,
            Val::F32(v) => v.to_bits() as u64,
            Val::F64(v) => v.to_bits(),
            Val::FuncRef(v) | Val::ExternRef(v) => v,
        }
    }

    /// A value of type `ty` from raw cell bits.
    pub fn from_bits(ty: ValType, bits: u64) -> Val {
        match ty {
            ValType::I32 => Val::I32(bits as u32 as i32),
            ValType::I64 => Val::I64(bits as i64),
            ValType::F32 => Val::F32(f32::from_bits(bits as u32)),
            ValType::F64 => Val::F64(f64::from_bits(bits)),
            ValType::FuncRef => Val::FuncRef(bits),
            ValType::ExternRef => Val::ExternRef(bits),
        }
    }
}

/// How a [`crate::Instance::resume`] call ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Suspended at a preemption point (deadline reached or cancel
    /// requested); resume again to continue.
    Yielded,
    /// The export returned these results. Further resumes return this again.
    Finished(Vec<Val>),
    /// A trap ended the instance. Further resumes return this again.
    Trapped(TrapKind),
    /// A host function parked the instance; it runs again after
    /// [`crate::Instance::unpark`].
    Parked,
    /// A host function ended the slice asking not to run again before
    /// this instant ([`crate::HostAction::Sleep`]). Resume it as after
    /// `Yielded`, once the instant has passed: the runtime does not hold a
    /// resume that comes earlier, which ends the guest's sleep early.
    Sleeping(std::time::Instant),
    /// A host function ended the instance with this exit code.
    Exited(i32),
    /// A resource limit ended the instance.
    Limited(Limit),
}

/// A resource limit that ended an instance.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Its fuel budget was spent.
    Fuel = 1,
    /// It tried to grow its memory past its memory limit.
    Memory = 2,
    /// Its CPU-time budget was spent (enforced by the scheduler).
    CpuTime = 3,
    /// Its wall-clock deadline passed (enforced by the scheduler).
    Deadline = 4,
}

impl Limit {
    /// The limit with numeric code `code`.
    pub fn from_code(code: u32) -> Option<Limit> {
        [Limit::Fuel, Limit::Memory, Limit::CpuTime, Limit::Deadline]
            .into_iter()
            .find(|l| *l as u32 == code)
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::Fuel => "fuel budget spent",
            Limit::Memory => "memory limit exceeded",
            Limit::CpuTime => "CPU-time budget spent",
            Limit::Deadline => "deadline passed",
        })
    }
}
