//! What straight-line code costs in fuel.
//!
//! A fuel unit is charged at every function entry and loop iteration
//! (see `FuncTranslator::fuel_check` and [`super::control::plan_loops`]).
//! That alone would let one unit pay for any amount of code between two
//! checks: a function body of 500,000 operators without a loop or a call
//! ran 1.3 ms on one unit, and since the time-slice slow path sizes its
//! grants from the rate at which units were spent, a guest that spent
//! cheap units first held a worker for up to 1.5 s past a 20 µs slice.
//!
//! So the translator also *weighs* the operators it translates
//! ([`op_weight`]: about a cycle of dependent work per unit of weight)
//! and keeps a [`Meter`] of the weight on the heaviest path reaching the
//! current point:
//!
//! * every [`UNIT_WEIGHT`] of weight costs one more unit, charged before
//!   a branch (every way out of a point ran the code before it, so that
//!   charge is exact): before a branch back to a loop, every whole unit;
//!   before a forward branch, once [`MERGE_WEIGHT`] has accumulated; and
//!   at a loop's entry. Where paths merge, the heaviest remainder goes on,
//!   so a short path is charged at most 3 units for a long one it
//!   skipped (charging the merge for the whole heavier path let a loop's
//!   short path buy 25 units for 3 cycles, and a guest that then turned
//!   to divisions overran a 20 µs slice by 0.5 ms). The unit of the call
//!   or iteration covers the last remainder, so no unit pays for more
//!   than about twice `UNIT_WEIGHT` of weight;
//! * no path runs more than about [`SEGMENT_WEIGHT`] of weight without a
//!   fuel check: where that much has accumulated since the last one, the
//!   translator inserts one.
//!
//! The cheapest code (a tight loop, a short function) pays exactly what
//! it paid before: one unit an iteration, one a call. An unrolled loop's
//! copies are metered as the plain loop's iterations (each copy's header
//! starts the debt over, its branch back pays), so the two spend the
//! same fuel.

use wasmparser::Operator;

/// Weight one fuel unit pays for (beyond the unit of a call or an
/// iteration): about 16 cycles of dependent work. With 8, a guest that
/// turned from the cheapest units (an unrolled tight loop, a quarter of
/// a cycle each) to the dearest overran a 20 µs slice by 0.08–0.14 ms
/// instead of 0.12–0.23 ms, but loops weighing 8 to 15 (matmul's inner
/// loop) paid a charge on every branch back: the dense matmul kernel
/// ran 4.5 % slower.
pub(crate) const UNIT_WEIGHT: u32 = 16;

/// Debt a forward branch leaves unpaid to the paths it meets at its
/// target (less than 4 units' worth, which a short path meeting a long
/// one may be charged for without running it). Charging every whole unit
/// before every branch made SQLite's `.text` 4.9 % larger than before
/// the meter (a charge at nearly every branch).
pub(crate) const MERGE_WEIGHT: u32 = 4 * UNIT_WEIGHT;

/// Most weight a path runs between two fuel checks before the translator
/// inserts one: about 512 cycles of dependent work, or 32 divisions,
/// 0.2 µs. Not less, for compile time: every inserted check is a call
/// site, and register allocation slows down with the call sites of one
/// function. A function of 800,000 divisions (5.6 MB) compiles in 11 s
/// with this segment (5.8 s without checks), in 27 s with 256.
pub(crate) const SEGMENT_WEIGHT: u32 = 512;

/// Least weight since the last check at which a function that calls wasm
/// checks before it returns; it also checks when a load or store ran
/// since its last check or call of a defined function (an import, or a
/// `call_indirect` that may reach one, is no check). A return is not a
/// check: without this, each frame's code after its last call ran up to
/// a segment
/// unchecked, and a chain of returns added these up (2,000 frames of 30
/// divisions after their call ran 960,000 of weight, 0.22 ms, on one
/// unit of fuel; a 1 MiB stack holds 65,536 frames of 16 bytes, 33 M of
/// weight). A load weighs 2 but may miss the cache: frames of 30
/// dependent loads each (weight 60, under the threshold) through a large
/// table ran 171 ms on one unit, 30,000 deep (a review, 2026-12-05). Now
/// a chain runs at most this much weight of register work a frame
/// unchecked. A check before every return of a function that calls made
/// SQLite's `.text` 3.4 % larger; the weight threshold alone 1.4 % (919
/// checks; 16: 2.4 %, 128: 0.6 %). Functions that call nothing end no
/// chain but its first frame.
pub(crate) const RETURN_CHECK_WEIGHT: u32 = 64;

/// Weight of the code a straight path has run since fuel was last charged
/// and since it was last checked, on the heaviest path that reaches the
/// current point (merges take the maximum of their incoming paths).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Meter {
    /// Weight not yet charged.
    pub debt: u32,
    /// Weight since the last fuel check.
    pub since_check: u32,
    /// Loads and stores since the last fuel check or call of a defined
    /// function (see [`RETURN_CHECK_WEIGHT`]).
    pub memory_ops: u32,
}

impl Meter {
    /// The meter after running `weight` more.
    pub fn add(self, weight: u32) -> Meter {
        Meter {
            debt: self.debt.saturating_add(weight),
            since_check: self.since_check.saturating_add(weight),
            ..self
        }
    }

    /// Where two paths meet: the heavier of each.
    pub fn merge(self, other: Meter) -> Meter {
        Meter {
            debt: self.debt.max(other.debt),
            since_check: self.since_check.max(other.since_check),
            memory_ops: self.memory_ops.max(other.memory_ops),
        }
    }

    /// Whether a function that calls wasm checks before it returns from
    /// here (see [`RETURN_CHECK_WEIGHT`]).
    pub fn return_check_due(self) -> bool {
        self.since_check >= RETURN_CHECK_WEIGHT || self.memory_ops > 0
    }

    /// Whole units the debt is worth (the remainder rides on the unit of
    /// the entry or iteration that follows or precedes it).
    pub fn whole_units(self) -> u32 {
        self.debt / UNIT_WEIGHT
    }

    /// Units that pay the debt in full (rounded up).
    pub fn units_rounded_up(self) -> u32 {
        self.debt.div_ceil(UNIT_WEIGHT)
    }

    /// Whether a fuel check is due.
    pub fn check_due(self) -> bool {
        self.since_check >= SEGMENT_WEIGHT
    }
}

/// Weight of one operator: roughly its cost in cycles of dependent work.
/// Operators that move values between locals and the operand stack, or
/// only shape control flow, weigh nothing; calls weigh what the call
/// itself costs (the callee pays for its body); divisions and square
/// roots weigh what they take on current x86 cores.
pub(crate) fn op_weight(op: &Operator<'_>) -> u32 {
    use Operator as O;
    match op {
        O::Nop
        | O::Drop
        | O::Block { .. }
        | O::Loop { .. }
        | O::End
        | O::Else
        | O::Br { .. }
        | O::Return
        | O::Unreachable
        | O::LocalGet { .. }
        | O::LocalSet { .. }
        | O::LocalTee { .. }
        | O::I32Const { .. }
        | O::I64Const { .. }
        | O::F32Const { .. }
        | O::F64Const { .. }
        | O::RefNull { .. }
        | O::RefFunc { .. } => 0,
        O::I32DivS
        | O::I32DivU
        | O::I32RemS
        | O::I32RemU
        | O::I64DivS
        | O::I64DivU
        | O::I64RemS
        | O::I64RemU => 16,
        O::F32Div | O::F64Div | O::F32Sqrt | O::F64Sqrt => 8,
        O::CallIndirect { .. } | O::CallRef { .. } | O::BrTable { .. } => 4,
        _ if is_load_or_store(op) => 2,
        _ => 1,
    }
}

/// Whether `op` reads or writes linear memory (weight 2: a load that
/// misses the cache costs far more, see [`RETURN_CHECK_WEIGHT`]).
pub(crate) fn is_load_or_store(op: &Operator<'_>) -> bool {
    use Operator as O;
    matches!(
        op,
        O::I32Load { .. }
            | O::I64Load { .. }
            | O::F32Load { .. }
            | O::F64Load { .. }
            | O::I32Load8S { .. }
            | O::I32Load8U { .. }
            | O::I32Load16S { .. }
            | O::I32Load16U { .. }
            | O::I64Load8S { .. }
            | O::I64Load8U { .. }
            | O::I64Load16S { .. }
            | O::I64Load16U { .. }
            | O::I64Load32S { .. }
            | O::I64Load32U { .. }
            | O::I32Store { .. }
            | O::I64Store { .. }
            | O::F32Store { .. }
            | O::F64Store { .. }
            | O::I32Store8 { .. }
            | O::I32Store16 { .. }
            | O::I64Store8 { .. }
            | O::I64Store16 { .. }
            | O::I64Store32 { .. }
            | O::V128Load { .. }
            | O::V128Store { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::{Meter, SEGMENT_WEIGHT, UNIT_WEIGHT};

    #[test]
    fn merges_keep_the_heavier_path_and_units_round_as_documented() {
        let a = Meter::default().add(UNIT_WEIGHT * 2 + 3);
        let b = Meter {
            debt: 1,
            since_check: SEGMENT_WEIGHT,
            memory_ops: 0,
        };
        let m = a.merge(b);
        assert_eq!(m.debt, UNIT_WEIGHT * 2 + 3);
        assert_eq!(m.since_check, SEGMENT_WEIGHT);
        assert!(m.check_due());
        assert!(!a.check_due());
        assert_eq!(m.whole_units(), 2);
        assert_eq!(m.units_rounded_up(), 3);
        assert_eq!(Meter::default().units_rounded_up(), 0);
        // Saturates instead of wrapping on absurd bodies.
        assert_eq!(m.add(u32::MAX).debt, u32::MAX);
    }
}
