//! Structured control flow: blocks, loops, ifs, branches and returns.
//!
//! Every frame owns an `end` block whose parameters are the frame's
//! results; a loop additionally has a `header` block whose parameters are
//! its parameters (branches to a loop go there). Code after an
//! unconditional branch is skipped until the `else`/`end` that closes the
//! current frame.

use cranelift_codegen::ir::{self, Block, BlockCall, InstBuilder, JumpTableData, Value};
use wasmparser::{BlockType, BrTable};

use super::func::{block_args, FuncTranslator};
use super::meter::{op_weight, Meter, MERGE_WEIGHT, SEGMENT_WEIGHT, UNIT_WEIGHT};
use super::{ir_type, val_type};
use crate::error::CompileError;

/// What kind of construct a frame is.
pub(crate) enum FrameKind {
    /// The function body; its `end` block returns.
    Function,
    /// `block`.
    Block,
    /// `loop`: branches go to `header`.
    Loop {
        /// The loop header, holding the loop parameters (the first copy's
        /// header when the body is unrolled).
        header: Block,
        /// Where the loop's fuel check is: `false` at the header, `true`
        /// on its back edge (the loop's only branch back is a `br`; see
        /// [`plan_loops`]; unrolled, on the last copy's).
        edge_check: bool,
        /// The copies of an unrolled body ([`LoopPlan::copies`] > 1).
        unroll: Option<Unroll>,
    },
    /// `if`, possibly with an `else`.
    If {
        /// Where the false branch starts.
        else_block: Block,
        /// The block parameters, passed again to the else branch.
        else_params: Vec<Value>,
        /// Whether an `else` was seen.
        has_else: bool,
        /// The meter where the `if` branched: the else branch starts
        /// from it.
        entry_meter: Meter,
    },
}

/// An unrolled loop being translated: its body is read `copies` times,
/// and copy `k` branches back to copy `k + 1` (the last copy back to the
/// first), so a round of copies passes one fuel check instead of one per
/// iteration. The fuel each copy would have paid at its own check is
/// charged as the round ends: `copies - 1` units on the last copy's
/// branch back, `k - 1` units on any way out of copy `k` (a branch out, a
/// `return`, the fall-through at `end`; nothing out of the first copy).
/// The one check is where the plain loop's would be:
///
/// * at the first copy's header (loops checked at their header): it
///   charges that copy's unit and takes the slow path when fewer than
///   `copies - 1` units are left for the rest of the round;
/// * on the last copy's branch back (loops checked on their back edge):
///   it charges the whole round, `copies` units, and takes the slow path
///   below zero, as the plain loop's back edge does for its one unit.
///
/// Either way the loop spends exactly the fuel the plain loop would (one
/// unit per copy entered, or per branch back), however it is left; only
/// a trap mid-round leaves the round uncharged. A round runs at most
/// `UNROLL_BUDGET` operators, none of which calls out, between checks
/// (see [`plan_loops`] for which loops are unrolled).
pub(crate) struct Unroll {
    /// Copies in all (at least 2).
    pub copies: u32,
    /// The copy being translated, from 1.
    pub copy: u32,
    /// The next copy's header, made by the first branch back in this copy.
    pub next: Option<Block>,
    /// The loop's parameter types (each copy's header takes them).
    pub params: Vec<ir::Type>,
    /// Whether the last copy charged its round already: at a `br_if` back
    /// at the top level of its body, which both ways charges the same
    /// (`copies - 1`), so the charge goes before it and the branch back
    /// goes straight to the first copy. What follows in the copy is reached
    /// only past that point and charges nothing more.
    pub charged: bool,
}

/// An open control frame.
pub(crate) struct Frame {
    /// The construct.
    pub kind: FrameKind,
    /// Continuation after the frame; its parameters are the results.
    pub end: Block,
    /// Number of block parameters.
    pub num_params: usize,
    /// Number of block results.
    pub num_results: usize,
    /// Operand stack height below the frame's parameters.
    pub height: usize,
    /// Whether anything jumps to `end`.
    pub end_reachable: bool,
    /// The meter at `end`: the heaviest of the paths that reach it.
    pub end_meter: Meter,
}

impl Frame {
    /// Branch destination and the number of values a branch passes.
    fn branch_target(&self) -> (Block, usize) {
        match self.kind {
            FrameKind::Loop { header, .. } => (header, self.num_params),
            _ => (self.end, self.num_results),
        }
    }
}

impl FuncTranslator<'_, '_> {
    fn block_type(&self, bt: BlockType) -> Result<(Vec<ir::Type>, Vec<ir::Type>), CompileError> {
        match bt {
            BlockType::Empty => Ok((vec![], vec![])),
            BlockType::Type(t) => Ok((vec![], vec![ir_type(val_type(t)?)])),
            BlockType::FuncType(i) => {
                let ty = self.env.module.type_at(i)?;
                Ok((
                    ty.params.iter().map(|t| ir_type(*t)).collect(),
                    ty.results.iter().map(|t| ir_type(*t)).collect(),
                ))
            }
        }
    }

    fn block_with_params(&mut self, tys: &[ir::Type]) -> Block {
        let block = self.b.create_block();
        for t in tys {
            self.b.append_block_param(block, *t);
        }
        block
    }

    fn push_frame(&mut self, kind: FrameKind, end: Block, params: usize, results: usize) {
        let height = self.stack.len().saturating_sub(params);
        self.frames.push(Frame {
            kind,
            end,
            num_params: params,
            num_results: results,
            height,
            end_reachable: false,
            end_meter: Meter::default(),
        });
    }

    pub(crate) fn block(&mut self, bt: BlockType) -> Result<(), CompileError> {
        let (params, results) = self.block_type(bt)?;
        let end = self.block_with_params(&results);
        self.push_frame(FrameKind::Block, end, params.len(), results.len());
        Ok(())
    }

    /// `loop`; `plan` says where its fuel check goes and how many copies
    /// of its body to make (see [`FrameKind::Loop`], [`Unroll`]).
    pub(crate) fn loop_(&mut self, bt: BlockType, plan: LoopPlan) -> Result<(), CompileError> {
        let (params, results) = self.block_type(bt)?;
        let unroll = (plan.copies > 1).then(|| Unroll {
            copies: plan.copies,
            copy: 1,
            next: None,
            params: params.clone(),
            charged: false,
        });
        let edge_check = plan.edge_check;
        let header = self.block_with_params(&params);
        let end = self.block_with_params(&results);
        let args = self.popn(params.len())?;
        if edge_check {
            // Each iteration pays at its branch back for the body it ran:
            // what ran before the loop pays here, in full, and a long
            // stretch without a check gets one, so that no check falls
            // inside the body for the code before it.
            if self.meter.since_check >= SEGMENT_WEIGHT / 2 {
                self.segment_check();
            }
            self.charge(self.meter.units_rounded_up());
            self.meter.debt = 0;
        } else {
            // The header's check pays the iteration and the remainder.
            self.charge(self.meter.whole_units());
        }
        self.b.ins().jump(header, &block_args(&args));
        self.b.switch_to_block(header);
        // Sealed at `end`, once every back edge is known.
        let header_params = self.b.block_params(header).to_vec();
        self.stack.extend(header_params);
        match &unroll {
            Some(_) if edge_check => {}
            Some(u) => self.fuel_check_room((u.copies - 1) * plan.units),
            None if edge_check => {}
            None => self.fuel_check(),
        }
        if !edge_check {
            self.meter = Meter::default();
        }
        if unroll.is_some() {
            self.unroll_started = true;
            self.in_unrolled = true;
        }
        self.push_frame(
            FrameKind::Loop {
                header,
                edge_check,
                unroll,
            },
            end,
            params.len(),
            results.len(),
        );
        Ok(())
    }

    pub(crate) fn if_(&mut self, bt: BlockType) -> Result<(), CompileError> {
        let (params, results) = self.block_type(bt)?;
        let cond = self.pop()?;
        let then_block = self.b.create_block();
        let else_block = self.b.create_block();
        let end = self.block_with_params(&results);
        let units = self.take_debt(MERGE_WEIGHT);
        self.charge(units);
        self.b.ins().brif(cond, then_block, &[], else_block, &[]);
        self.b.seal_block(then_block);
        self.b.seal_block(else_block);
        self.b.switch_to_block(then_block);
        let else_params = self.peekn(params.len())?.to_vec();
        let entry_meter = self.meter;
        self.push_frame(
            FrameKind::If {
                else_block,
                else_params,
                has_else: false,
                entry_meter,
            },
            end,
            params.len(),
            results.len(),
        );
        Ok(())
    }

    /// Jump from the current (reachable) position to the end of the
    /// innermost frame with its results.
    fn fall_through(&mut self) -> Result<(), CompileError> {
        let (end, n, charge) = match self.frames.last() {
            Some(f) => (f.end, f.num_results, unroll_exit_charge(f)),
            None => return Err(CompileError::codegen("no open frame")),
        };
        let results = self.popn(n)?;
        let not_last_copy = match self.frames.last().map(|f| &f.kind) {
            Some(FrameKind::Loop {
                unroll: Some(u), ..
            }) => u.copy < u.copies,
            _ => false,
        };
        if not_last_copy {
            // Leaving an unrolled loop at its end from a copy but the
            // last. When nothing else runs here (the not-taken side of a
            // closing `br_if`), this block is the loop's exit: cold, so
            // that the branch back falls through into the next copy. (The
            // last copy's branch back goes to the first: its exit stays
            // in line, the fall-through of that branch.)
            let here = self.b.current_block();
            if let Some(block) = here.filter(|b| self.b.func.layout.first_inst(*b).is_none()) {
                self.b.set_cold_block(block);
            }
        }
        let units = self.take_debt(MERGE_WEIGHT);
        self.charge(charge.saturating_add(units));
        self.b.ins().jump(end, &block_args(&results));
        let meter = self.meter;
        if let Some(f) = self.frames.last_mut() {
            f.end_reachable = true;
            f.end_meter = f.end_meter.merge(meter);
        }
        Ok(())
    }

    pub(crate) fn else_(&mut self) -> Result<(), CompileError> {
        if self.reachable {
            self.fall_through()?;
        }
        let frame = self
            .frames
            .last_mut()
            .ok_or_else(|| CompileError::codegen("else without a frame"))?;
        let height = frame.height;
        let FrameKind::If {
            else_block,
            else_params,
            has_else,
            entry_meter,
        } = &mut frame.kind
        else {
            return Err(CompileError::codegen("else outside if"));
        };
        *has_else = true;
        self.meter = *entry_meter;
        let else_block = *else_block;
        let params = else_params.clone();
        self.stack.truncate(height);
        self.b.switch_to_block(else_block);
        self.stack.extend(params);
        self.reachable = true;
        Ok(())
    }

    pub(crate) fn end(&mut self) -> Result<(), CompileError> {
        if self.reachable {
            self.fall_through()?;
        }
        if self.next_copy()? {
            return Ok(());
        }
        let mut frame = self
            .frames
            .pop()
            .ok_or_else(|| CompileError::codegen("end without a frame"))?;
        match &frame.kind {
            FrameKind::If {
                else_block,
                else_params,
                has_else: false,
                entry_meter,
            } => {
                // No else: the false branch passes the parameters through
                // (validation guarantees they match the results).
                self.b.switch_to_block(*else_block);
                self.b.ins().jump(frame.end, &block_args(else_params));
                frame.end_reachable = true;
                frame.end_meter = frame.end_meter.merge(*entry_meter);
            }
            FrameKind::Loop { header, unroll, .. } => {
                self.b.seal_block(*header);
                if unroll.is_some() {
                    self.in_unrolled = false;
                }
            }
            _ => {}
        }
        self.stack.truncate(frame.height);
        self.reachable = frame.end_reachable;
        if !frame.end_reachable {
            return Ok(());
        }
        self.meter = frame.end_meter;
        self.b.switch_to_block(frame.end);
        self.b.seal_block(frame.end);
        let results = self.b.block_params(frame.end).to_vec();
        if let FrameKind::Function = frame.kind {
            if self.calls_wasm && self.meter.return_check_due() {
                // A return may be one of a chain: see RETURN_CHECK_WEIGHT.
                // The check charges the whole units of the debt.
                self.segment_check();
            }
            // The call's unit pays the remainder.
            self.charge(self.meter.whole_units());
            self.b.ins().return_(&results);
            self.reachable = false;
        } else {
            self.stack.extend(results);
        }
        Ok(())
    }

    /// At the `end` of a copy of an unrolled loop's body that branched
    /// back: start the next copy (its header sealed, the operand stack at
    /// its parameters) and ask for the body to be read again. False when
    /// the innermost frame is not such a copy.
    fn next_copy(&mut self) -> Result<bool, CompileError> {
        let Some(frame) = self.frames.last_mut() else {
            return Ok(false);
        };
        let height = frame.height;
        let FrameKind::Loop {
            unroll: Some(u), ..
        } = &mut frame.kind
        else {
            return Ok(false);
        };
        let Some(next) = u.next.take() else {
            return Ok(false);
        };
        u.copy += 1;
        // The copy's header, as the plain loop's: what the copy before
        // ran was paid by its branch back.
        self.meter.debt = 0;
        // Every branch to `next` was in the copy just translated.
        self.b.seal_block(next);
        self.stack.truncate(height);
        self.b.switch_to_block(next);
        let params = self.b.block_params(next).to_vec();
        self.stack.extend(params);
        self.reachable = true;
        self.rewind = true;
        Ok(true)
    }

    /// At a `br_if` back at the top level of an unrolled loop's last copy:
    /// charge the round here, once (see [`Unroll::charged`]).
    fn charge_round_early(&mut self) {
        let units = match self.frames.last_mut().map(|f| &mut f.kind) {
            Some(FrameKind::Loop {
                unroll: Some(u),
                edge_check: false,
                ..
            }) if u.copy == u.copies && !u.charged => {
                u.charged = true;
                u.copies - 1
            }
            _ => return,
        };
        self.charge(units);
    }

    /// Destination of a branch to `depth`, the number of values it
    /// carries and the fuel it must charge on the way (leaving or closing
    /// a round of an unrolled loop: see [`Unroll`]); marks the frame's end
    /// reachable.
    fn target(&mut self, depth: u32) -> Result<(Block, usize, u32), CompileError> {
        let idx = self.frame_index(depth)?;
        // Leaving an unrolled loop from copy k charges k. (Only innermost
        // loops are unrolled, so at most one frame can be one.)
        let mut charge = self.frames[idx + 1..]
            .iter()
            .map(unroll_exit_charge)
            .max()
            .unwrap_or(0);
        let frame = &self.frames[idx];
        let dest = match &frame.kind {
            FrameKind::Loop {
                header,
                unroll: Some(u),
                ..
            } => {
                if u.copy < u.copies {
                    match u.next {
                        Some(next) => next,
                        None => {
                            let params = u.params.clone();
                            let next = self.block_with_params(&params);
                            if let FrameKind::Loop {
                                unroll: Some(u), ..
                            } = &mut self.frames[idx].kind
                            {
                                u.next = Some(next);
                            }
                            next
                        }
                    }
                } else {
                    // The round's end: charge it (but the first copy),
                    // back to the first copy.
                    charge = if u.charged { 0 } else { u.copies - 1 };
                    *header
                }
            }
            _ => {
                let target = frame.branch_target();
                let meter = self.meter;
                let frame = &mut self.frames[idx];
                if !matches!(frame.kind, FrameKind::Loop { .. }) {
                    frame.end_reachable = true;
                    frame.end_meter = frame.end_meter.merge(meter);
                }
                return Ok((target.0, target.1, charge));
            }
        };
        Ok((dest, self.frames[idx].num_params, charge))
    }

    pub(crate) fn br(&mut self, depth: u32) -> Result<(), CompileError> {
        let units = self.take_debt(self.debt_due_before(&[depth])?);
        let (block, n, charge) = self.target(depth)?;
        let args = self.peekn(n)?.to_vec();
        let edge = self.is_loop_target(depth)?;
        self.branch(block, &args, charge.saturating_add(units), edge);
        self.reachable = false;
        Ok(())
    }

    /// End the current block with a branch to `block` with `args`:
    /// charging `charge` units of fuel first (see [`Unroll`]), and
    /// through the back-edge fuel check if `edge`.
    fn branch(&mut self, block: Block, args: &[Value], charge: u32, edge: bool) {
        if edge {
            self.back_edge(block, args, charge);
        } else {
            self.charge(charge);
            self.b.ins().jump(block, &block_args(args));
        }
    }

    /// Whether a branch to the frame `depth` levels up is the back edge of
    /// a loop whose fuel check sits on its back edge (for an unrolled
    /// loop, the last copy's).
    fn is_loop_target(&self, depth: u32) -> Result<bool, CompileError> {
        let idx = self.frame_index(depth)?;
        Ok(match &self.frames[idx].kind {
            FrameKind::Loop {
                edge_check: true,
                unroll,
                ..
            } => unroll.as_ref().is_none_or(|u| u.copy == u.copies),
            _ => false,
        })
    }

    /// The debt a branch to `depths` must pay before it if it has that
    /// much: a whole unit before a branch back to a loop (whose header
    /// starts the meter over, so what is not paid here is never paid),
    /// [`MERGE_WEIGHT`] before one that only goes forward (what is left
    /// meets the other paths at the target).
    fn debt_due_before(&self, depths: &[u32]) -> Result<u32, CompileError> {
        Ok(if self.branches_back(depths)? {
            UNIT_WEIGHT
        } else {
            MERGE_WEIGHT
        })
    }

    /// Whether any of `depths` is a loop (a branch back to its header).
    fn branches_back(&self, depths: &[u32]) -> Result<bool, CompileError> {
        for &depth in depths {
            let idx = self.frame_index(depth)?;
            if matches!(self.frames[idx].kind, FrameKind::Loop { .. }) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether a branch to the frame `depth` levels up leaves an unrolled
    /// loop (one is open inside that frame).
    fn leaves_unrolled(&self, depth: u32) -> Result<bool, CompileError> {
        let idx = self.frame_index(depth)?;
        Ok((idx + 1..self.frames.len()).any(|i| self.is_unrolled(i)))
    }

    /// Index in `frames` (outermost first) of the frame a branch to
    /// `depth` targets.
    fn frame_index(&self, depth: u32) -> Result<usize, CompileError> {
        self.frames
            .len()
            .checked_sub(1 + depth as usize)
            .ok_or_else(|| CompileError::codegen("branch depth out of range"))
    }

    /// Whether frame `idx` (outermost first) is an unrolled loop.
    fn is_unrolled(&self, idx: usize) -> bool {
        matches!(
            self.frames.get(idx).map(|f| &f.kind),
            Some(FrameKind::Loop {
                unroll: Some(_),
                ..
            })
        )
    }

    pub(crate) fn return_(&mut self) -> Result<(), CompileError> {
        let depth = self
            .frames
            .len()
            .checked_sub(1)
            .ok_or_else(|| CompileError::codegen("return without a frame"))?;
        self.br(depth as u32)
    }

    pub(crate) fn br_if(&mut self, depth: u32) -> Result<(), CompileError> {
        let cond = self.pop()?;
        let mut back_units = 0;
        if self.branches_back(&[depth])? {
            // A branch back pays its whole units on the way back only: the
            // loop goes on (the common case) through the branch alone, not
            // a charge before it and a move of the counter on the edge
            // (the dense matmul kernel ran 5 % slower so); the way out
            // keeps the debt.
            back_units = self.meter.whole_units();
        } else {
            // Both ways ran what came before: it pays here.
            let units = self.take_debt(MERGE_WEIGHT);
            self.charge(units);
        }
        if depth == 0 {
            self.charge_round_early();
        }
        let (block, n, charge) = self.target(depth)?;
        let charge = charge.saturating_add(back_units);
        let args = self.peekn(n)?.to_vec();
        let next = self.b.create_block();
        let edge = self.is_loop_target(depth)?;
        if edge || charge > 0 {
            // The taken side checks fuel (not produced by `plan_loops`: a
            // loop with a `br_if` back gets a header check, but correct if
            // it were) or charges it. Leaving an unrolled loop is rare
            // next to its iterations: that side is cold; closing a round
            // of one is not.
            let taken = self.b.create_block();
            if charge > 0 && self.leaves_unrolled(depth)? {
                self.b.set_cold_block(taken);
            }
            self.b.ins().brif(cond, taken, &[], next, &[]);
            self.b.switch_to_block(taken);
            self.b.seal_block(taken);
            self.branch(block, &args, charge, edge);
        } else {
            self.b
                .ins()
                .brif(cond, block, &block_args(&args), next, &[]);
        }
        self.b.switch_to_block(next);
        self.b.seal_block(next);
        Ok(())
    }

    pub(crate) fn br_table(&mut self, table: &BrTable<'_>) -> Result<(), CompileError> {
        let index = self.pop()?;
        let depths = table
            .targets()
            .collect::<Result<Vec<u32>, _>>()
            .map_err(CompileError::from)?;
        let default = table.default();
        let mut all = depths.clone();
        all.push(default);
        let units = self.take_debt(self.debt_due_before(&all)?);
        self.charge(units);
        let mut targets = Vec::with_capacity(depths.len() + 1);
        for d in std::iter::once(default).chain(depths.iter().copied()) {
            targets.push((d, self.target(d)?));
        }
        let arity = targets.first().map_or(0, |(_, (_, n, _))| *n);
        let args = self.peekn(arity)?.to_vec();

        // With values to pass, fuel to check or fuel to charge, each
        // distinct target gets a small block that does it and jumps there.
        let mut dests: Vec<Block> = Vec::with_capacity(targets.len());
        let mut trampolines: Vec<(u32, Block, Block, u32)> = Vec::new();
        for (depth, (block, _, charge)) in &targets {
            if arity == 0 && *charge == 0 && !self.is_loop_target(*depth)? {
                dests.push(*block);
            } else if let Some((_, t, _, _)) = trampolines.iter().find(|(d, _, _, _)| d == depth) {
                dests.push(*t);
            } else {
                let t = self.b.create_block();
                trampolines.push((*depth, t, *block, *charge));
                dests.push(t);
            }
        }
        let pool = &mut self.b.func.dfg.value_lists;
        let calls: Vec<BlockCall> = dests
            .iter()
            .map(|b| BlockCall::new(*b, std::iter::empty(), pool))
            .collect();
        let (default_call, rest) = calls
            .split_first()
            .ok_or_else(|| CompileError::codegen("empty br_table"))?;
        let jt = self
            .b
            .create_jump_table(JumpTableData::new(*default_call, rest));
        self.b.ins().br_table(index, jt);
        for (depth, t, block, charge) in trampolines {
            self.b.switch_to_block(t);
            self.b.seal_block(t);
            let edge = self.is_loop_target(depth)?;
            self.branch(block, &args, charge, edge);
        }
        self.reachable = false;
        Ok(())
    }
}

/// The fuel charged by leaving `frame` when it is an unrolled loop: the
/// copies entered in the current round but the first, which its header
/// charged (see [`Unroll`]); 0 for any other frame.
fn unroll_exit_charge(frame: &Frame) -> u32 {
    match &frame.kind {
        FrameKind::Loop {
            unroll: Some(u), ..
        } if !u.charged => u.copy - 1,
        _ => 0,
    }
}

/// How a `loop` is translated ([`plan_loops`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LoopPlan {
    /// Whether its fuel check goes on its back edge instead of its header.
    pub edge_check: bool,
    /// How many copies of its body to translate (1: not unrolled).
    pub copies: u32,
    /// The most fuel one iteration can charge: its unit, and one per
    /// [`UNIT_WEIGHT`] of the body's weight (the room an unrolled
    /// loop's check wants per copy left in the round).
    pub units: u32,
}

/// Operators a round of copies may hold in all, in dense and guarded
/// code: a body of up to half this many operators is unrolled into
/// `budget / len` copies, at most [`MAX_COPIES`].
pub(crate) const UNROLL_BUDGET: u32 = 48;
/// The same in sparse code, compiled for one big program whose compile
/// time counts: half as many copies (SQLite compiles 1.4 % slower with
/// this budget, 3.8 % with the dense one; docs/PERFORMANCE.md, "Unrolled
/// loops").
pub(crate) const SPARSE_UNROLL_BUDGET: u32 = 24;
/// The most copies of an unrolled loop body.
const MAX_COPIES: u32 = 4;
/// The most an unrolled loop body may weigh ([`op_weight`]): a round of
/// copies then weighs at most half of [`SEGMENT_WEIGHT`], so no check
/// need be inserted inside it (a loop checked on its back edge may be
/// entered with up to half a segment run since the last check).
const MAX_UNROLLED_WEIGHT: u32 = SEGMENT_WEIGHT / 2 / MAX_COPIES;

/// For each `loop` of a function body, in order, how to translate it.
///
/// **Where its fuel check goes.** On its back edge when the loop's only
/// branch back to it is one unconditional `br`, the shape of a `while`
/// loop (`loop (br_if $exit ...) ... (br $loop)`). The check then *is*
/// the loop's closing branch: `sub; test; jge header`, with the slow path
/// after it, where a header check adds a third branch that is ever taken
/// (the out-of-fuel one) beside the exit test and the back jump. On the
/// reference CPU a loop with three such branches ran the sieve kernel
/// 15 % slower once the slow path had run (see docs/PERFORMANCE.md, "Fuel
/// checks on back edges"). Loops that branch back conditionally
/// (`br_if`, `br_table`: the do-while shape compilers emit) or more than
/// once keep the header check: their back edge is already a conditional
/// branch, and one check per loop keeps the code small. Either way every
/// iteration passes exactly one check.
///
/// **Whether to unroll it**, with `budget` operators for a round of
/// copies ([`UNROLL_BUDGET`], [`SPARSE_UNROLL_BUDGET`]; 0: never). A
/// small innermost loop (no loop inside it, at most `budget / 2`
/// operators weighing at most [`MAX_UNROLLED_WEIGHT`] in all, no calls or bulk
/// memory and table operations, at least one branch back) has its body
/// translated several times over (see
/// [`Unroll`]): one fuel check per round of copies instead of one per
/// iteration, and the copies but the last fall through into each other
/// instead of jumping back. A round runs at most `budget` operators
/// without a check, none of which calls out, so preemption stays as
/// prompt. The cost is code size, bounded by the budget per loop, and
/// compile time.
pub(crate) fn plan_loops(
    body: &wasmparser::FunctionBody<'_>,
    budget: u32,
) -> Result<Vec<LoopPlan>, CompileError> {
    use wasmparser::Operator;
    // Per open frame: the ordinal of the loop it is, if it is one.
    let mut frames: Vec<Option<usize>> = vec![None];
    // The loops open at the current operator, innermost last.
    let mut open: Vec<usize> = Vec::new();
    let mut loops: Vec<LoopStats> = Vec::new();
    let mut reader = body.get_operators_reader()?;
    let mut ops: u32 = 0;
    let mut weight: u32 = 0;
    while !reader.eof() {
        let op = reader.read()?;
        ops = ops.saturating_add(1);
        weight = weight.saturating_add(op_weight(&op));
        match &op {
            Operator::Loop { .. } => {
                if let Some(outer) = open.last().and_then(|&k| loops.get_mut(k)) {
                    outer.simple = false;
                }
                frames.push(Some(loops.len()));
                open.push(loops.len());
                loops.push(LoopStats {
                    back_edges: 0,
                    conditional: false,
                    first_op: ops,
                    len: u32::MAX,
                    first_weight: weight,
                    weight: u32::MAX,
                    simple: true,
                });
            }
            Operator::Block { .. } | Operator::If { .. } => frames.push(None),
            Operator::End => {
                if let Some(Some(k)) = frames.pop() {
                    open.pop();
                    if let Some(l) = loops.get_mut(k) {
                        // The operators strictly between `loop` and `end`.
                        l.len = ops.saturating_sub(l.first_op).saturating_sub(1);
                        l.weight = weight.saturating_sub(l.first_weight);
                    }
                }
            }
            Operator::Br { relative_depth } => {
                count_back_edge(&frames, &mut loops, *relative_depth, false)
            }
            Operator::BrIf { relative_depth } => {
                count_back_edge(&frames, &mut loops, *relative_depth, true)
            }
            Operator::BrTable { targets } => {
                count_back_edge(&frames, &mut loops, targets.default(), true);
                for t in targets.targets() {
                    count_back_edge(&frames, &mut loops, t.map_err(CompileError::from)?, true);
                }
            }
            _ => {}
        }
        if calls_out(&op) {
            if let Some(l) = open.last().and_then(|&k| loops.get_mut(k)) {
                l.simple = false;
            }
        }
    }
    Ok(loops
        .into_iter()
        .map(|l| {
            let copies = if budget > 0
                && l.simple
                && l.back_edges > 0
                && l.len <= budget / 2
                && l.weight <= MAX_UNROLLED_WEIGHT
            {
                (budget / l.len.max(1)).min(MAX_COPIES)
            } else {
                1
            };
            LoopPlan {
                edge_check: l.back_edges == 1 && !l.conditional,
                copies,
                units: 1 + l.weight.min(MAX_UNROLLED_WEIGHT) / UNIT_WEIGHT,
            }
        })
        .collect())
}

/// What [`plan_loops`] learns of one loop.
struct LoopStats {
    /// Branches back to it (reachable or not).
    back_edges: u32,
    /// Whether any of them is conditional (`br_if`, `br_table`).
    conditional: bool,
    /// Ordinal of its `loop` operator in the body.
    first_op: u32,
    /// Operators in its body (`u32::MAX` until its `end`).
    len: u32,
    /// Total weight of the operators before it ([`op_weight`]).
    first_weight: u32,
    /// Weight of its body (`u32::MAX` until its `end`): at most
    /// [`MAX_UNROLLED_WEIGHT`] to be unrolled.
    weight: u32,
    /// No loop, call or bulk operation inside.
    simple: bool,
}

/// Whether `op` calls out of compiled code (a wasm function, an import or
/// a builtin) or does work proportional to an operand: never in an
/// unrolled loop body.
fn calls_out(op: &wasmparser::Operator<'_>) -> bool {
    use wasmparser::Operator as O;
    matches!(
        op,
        O::Call { .. }
            | O::CallIndirect { .. }
            | O::CallRef { .. }
            | O::ReturnCall { .. }
            | O::ReturnCallIndirect { .. }
            | O::ReturnCallRef { .. }
            | O::MemoryGrow { .. }
            | O::MemoryFill { .. }
            | O::MemoryCopy { .. }
            | O::MemoryInit { .. }
            | O::DataDrop { .. }
            | O::TableGrow { .. }
            | O::TableFill { .. }
            | O::TableCopy { .. }
            | O::TableInit { .. }
            | O::TableGet { .. }
            | O::TableSet { .. }
            | O::ElemDrop { .. }
            | O::MemoryAtomicWait32 { .. }
            | O::MemoryAtomicWait64 { .. }
            | O::MemoryAtomicNotify { .. }
    )
}

/// Count a branch `depth` frames up in `loops` if its target is a loop.
fn count_back_edge(
    frames: &[Option<usize>],
    loops: &mut [LoopStats],
    depth: u32,
    conditional: bool,
) {
    let target = frames
        .len()
        .checked_sub(1 + depth as usize)
        .and_then(|i| frames[i]);
    if let Some(l) = target.and_then(|k| loops.get_mut(k)) {
        l.back_edges = l.back_edges.saturating_add(1);
        l.conditional |= conditional;
    }
}

#[cfg(test)]
mod tests {
    use super::{
        plan_loops, LoopPlan, MAX_COPIES, SPARSE_UNROLL_BUDGET, UNIT_WEIGHT, UNROLL_BUDGET,
    };

    /// The plans of the loops of the first function of `wat`, with
    /// `budget` operators for a round of copies.
    fn plans_with(wat: &str, budget: u32) -> Vec<LoopPlan> {
        let wasm = wat::parse_str(wat).expect("test WAT assembles");
        for payload in wasmparser::Parser::new(0).parse_all(&wasm) {
            if let Ok(wasmparser::Payload::CodeSectionEntry(body)) = payload {
                return plan_loops(&body, budget).expect("plan");
            }
        }
        panic!("no function body");
    }

    fn plans(wat: &str) -> Vec<LoopPlan> {
        plans_with(wat, UNROLL_BUDGET)
    }

    fn plan(edge_check: bool, copies: u32) -> LoopPlan {
        LoopPlan {
            edge_check,
            copies,
            units: 1,
        }
    }

    #[test]
    fn small_innermost_loops_are_unrolled() {
        // 6 operators: 48 / 6 = 8 copies, capped.
        let p = plans(
            "(module (func (param i32) (loop $l
               (br_if $l (i32.eqz (local.tee 0 (i32.sub (local.get 0) (i32.const 1))))))))",
        );
        assert_eq!(p, vec![plan(false, MAX_COPIES)]);
        // The `while` shape keeps its back-edge check.
        let p = plans(
            "(module (func (param i32) (block $done (loop $l
               (br_if $done (i32.eqz (local.get 0)))
               (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
               (br $l)))))",
        );
        assert_eq!(p, vec![plan(true, MAX_COPIES)]);
        // Sparse code gets half the budget: 8 operators, 24 / 8 = 3 copies.
        let p = plans_with(
            "(module (func (param i32) (loop $l nop nop
               (br_if $l (i32.eqz (local.tee 0 (i32.sub (local.get 0) (i32.const 1))))))))",
            SPARSE_UNROLL_BUDGET,
        );
        assert_eq!(p, vec![plan(false, 3)]);
        // No budget, no unrolling.
        let p = plans_with(
            "(module (func (param i32) (loop $l (br_if $l (local.get 0)))))",
            0,
        );
        assert_eq!(p, vec![plan(false, 1)]);
    }

    #[test]
    fn copies_shrink_with_the_body_and_long_bodies_are_not_unrolled() {
        let body = |nops: usize| {
            format!(
                "(module (func (param i32) (loop $l {} (br_if $l (local.get 0)))))",
                "nop ".repeat(nops)
            )
        };
        // The body is the nops, `local.get` and `br_if`.
        assert_eq!(plans(&body(14)), vec![plan(false, 3)]);
        assert_eq!(plans(&body(22)), vec![plan(false, 2)]);
        assert_eq!(plans(&body(23)), vec![plan(false, 1)]);
    }

    #[test]
    fn loops_with_loops_calls_or_bulk_operations_or_no_way_back_are_not_unrolled() {
        // The outer loop holds a loop; the inner one is unrolled.
        let p = plans(
            "(module (func (param i32) (loop $o (loop $i (br_if $i (local.get 0)))
               (br_if $o (local.get 0)))))",
        );
        assert_eq!(p, vec![plan(false, 1), plan(false, MAX_COPIES)]);
        // A loop in dead code still counts as one inside.
        let p = plans(
            "(module (func (param i32) (loop $o (br_if $o (local.get 0)) (return)
               (loop $i))))",
        );
        assert_eq!(p[0].copies, 1);
        let p = plans(
            "(module (func $f (param i32) (loop $l (call $f (local.get 0))
               (br_if $l (local.get 0)))))",
        );
        assert_eq!(p, vec![plan(false, 1)]);
        let p = plans(
            "(module (memory 1) (func (param i32) (loop $l
               (memory.fill (i32.const 0) (i32.const 0) (local.get 0))
               (br_if $l (local.get 0)))))",
        );
        assert_eq!(p, vec![plan(false, 1)]);
        // No branch back: nothing to unroll.
        let p = plans("(module (func (loop $l (nop))))");
        assert_eq!(p, vec![plan(false, 1)]);
    }

    #[test]
    fn heavy_bodies_are_not_unrolled() {
        // Four divisions and the branch back weigh 65, over the limit;
        // three (49) are not, and an iteration then charges up to
        // 1 + 49 / UNIT_WEIGHT units.
        let divs = |n: usize| {
            format!(
                "(module (func (param i32) (loop $l (br_if $l {}(local.get 0){}))))",
                "(i32.div_u ".repeat(n),
                " (local.get 0))".repeat(n)
            )
        };
        let p = plans(&divs(4));
        assert_eq!(p[0].copies, 1);
        let p = plans(&divs(3));
        assert_eq!(p[0].copies, MAX_COPIES);
        assert_eq!(p[0].units, 1 + 49 / UNIT_WEIGHT);
    }
}
