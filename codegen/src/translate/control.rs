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
        /// The loop header, holding the loop parameters.
        header: Block,
        /// Where the loop's fuel check is: `false` at the header, `true`
        /// on its back edge (the loop's only branch back is a `br`; see
        /// [`loops_checked_on_edge`]).
        edge_check: bool,
    },
    /// `if`, possibly with an `else`.
    If {
        /// Where the false branch starts.
        else_block: Block,
        /// The block parameters, passed again to the else branch.
        else_params: Vec<Value>,
        /// Whether an `else` was seen.
        has_else: bool,
    },
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
        });
    }

    pub(crate) fn block(&mut self, bt: BlockType) -> Result<(), CompileError> {
        let (params, results) = self.block_type(bt)?;
        let end = self.block_with_params(&results);
        self.push_frame(FrameKind::Block, end, params.len(), results.len());
        Ok(())
    }

    /// `loop`; `edge_check` says where its fuel check goes (see
    /// [`FrameKind::Loop`]).
    pub(crate) fn loop_(&mut self, bt: BlockType, edge_check: bool) -> Result<(), CompileError> {
        let (params, results) = self.block_type(bt)?;
        let header = self.block_with_params(&params);
        let end = self.block_with_params(&results);
        let args = self.popn(params.len())?;
        self.b.ins().jump(header, &block_args(&args));
        self.b.switch_to_block(header);
        // Sealed at `end`, once every back edge is known.
        let header_params = self.b.block_params(header).to_vec();
        self.stack.extend(header_params);
        self.push_frame(
            FrameKind::Loop { header, edge_check },
            end,
            params.len(),
            results.len(),
        );
        if !edge_check {
            self.fuel_check();
        }
        Ok(())
    }

    pub(crate) fn if_(&mut self, bt: BlockType) -> Result<(), CompileError> {
        let (params, results) = self.block_type(bt)?;
        let cond = self.pop()?;
        let then_block = self.b.create_block();
        let else_block = self.b.create_block();
        let end = self.block_with_params(&results);
        self.b.ins().brif(cond, then_block, &[], else_block, &[]);
        self.b.seal_block(then_block);
        self.b.seal_block(else_block);
        self.b.switch_to_block(then_block);
        let else_params = self.peekn(params.len())?.to_vec();
        self.push_frame(
            FrameKind::If {
                else_block,
                else_params,
                has_else: false,
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
        let (end, n) = match self.frames.last() {
            Some(f) => (f.end, f.num_results),
            None => return Err(CompileError::codegen("no open frame")),
        };
        let results = self.popn(n)?;
        self.b.ins().jump(end, &block_args(&results));
        if let Some(f) = self.frames.last_mut() {
            f.end_reachable = true;
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
        } = &mut frame.kind
        else {
            return Err(CompileError::codegen("else outside if"));
        };
        *has_else = true;
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
        let mut frame = self
            .frames
            .pop()
            .ok_or_else(|| CompileError::codegen("end without a frame"))?;
        match &frame.kind {
            FrameKind::If {
                else_block,
                else_params,
                has_else: false,
            } => {
                // No else: the false branch passes the parameters through
                // (validation guarantees they match the results).
                self.b.switch_to_block(*else_block);
                self.b.ins().jump(frame.end, &block_args(else_params));
                frame.end_reachable = true;
            }
            FrameKind::Loop { header, .. } => self.b.seal_block(*header),
            _ => {}
        }
        self.stack.truncate(frame.height);
        self.reachable = frame.end_reachable;
        if !frame.end_reachable {
            return Ok(());
        }
        self.b.switch_to_block(frame.end);
        self.b.seal_block(frame.end);
        let results = self.b.block_params(frame.end).to_vec();
        if let FrameKind::Function = frame.kind {
            let fuel = self.b.use_var(self.fuel);
            let all = super::with_fuel(fuel, &results);
            self.b.ins().return_(&all);
            self.reachable = false;
        } else {
            self.stack.extend(results);
        }
        Ok(())
    }

    /// Destination of a branch to `depth` and the number of values it
    /// carries; marks the frame's end reachable.
    fn target(&mut self, depth: u32) -> Result<(Block, usize), CompileError> {
        let idx = self
            .frames
            .len()
            .checked_sub(1 + depth as usize)
            .ok_or_else(|| CompileError::codegen("branch depth out of range"))?;
        let frame = &mut self.frames[idx];
        if !matches!(frame.kind, FrameKind::Loop { .. }) {
            frame.end_reachable = true;
        }
        Ok(frame.branch_target())
    }

    pub(crate) fn br(&mut self, depth: u32) -> Result<(), CompileError> {
        let (block, n) = self.target(depth)?;
        let args = self.peekn(n)?.to_vec();
        if self.is_loop_target(depth)? {
            self.back_edge(block, &args);
        } else {
            self.b.ins().jump(block, &block_args(&args));
        }
        self.reachable = false;
        Ok(())
    }

    /// Whether a branch to the frame `depth` levels up is the back edge of
    /// a loop whose fuel check sits on its back edge.
    fn is_loop_target(&self, depth: u32) -> Result<bool, CompileError> {
        let idx = self
            .frames
            .len()
            .checked_sub(1 + depth as usize)
            .ok_or_else(|| CompileError::codegen("branch depth out of range"))?;
        Ok(matches!(
            self.frames[idx].kind,
            FrameKind::Loop {
                edge_check: true,
                ..
            }
        ))
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
        let (block, n) = self.target(depth)?;
        let args = self.peekn(n)?.to_vec();
        let next = self.b.create_block();
        if self.is_loop_target(depth)? {
            // Not produced by `loops_checked_on_edge` (a loop with a
            // `br_if` back gets a header check), but correct if it were:
            // the taken side checks.
            let taken = self.b.create_block();
            self.b.ins().brif(cond, taken, &[], next, &[]);
            self.b.switch_to_block(taken);
            self.b.seal_block(taken);
            self.back_edge(block, &args);
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
        let mut targets = Vec::with_capacity(depths.len() + 1);
        for d in std::iter::once(default).chain(depths.iter().copied()) {
            targets.push((d, self.target(d)?));
        }
        let arity = targets.first().map_or(0, |(_, (_, n))| *n);
        let args = self.peekn(arity)?.to_vec();

        // With values to pass, each distinct target gets a small block
        // that jumps there with the arguments.
        let mut dests: Vec<Block> = Vec::with_capacity(targets.len());
        let mut trampolines: Vec<(u32, Block, Block)> = Vec::new();
        for (depth, (block, _)) in &targets {
            if arity == 0 && !self.is_loop_target(*depth)? {
                dests.push(*block);
            } else if let Some((_, t, _)) = trampolines.iter().find(|(d, _, _)| d == depth) {
                dests.push(*t);
            } else {
                let t = self.b.create_block();
                trampolines.push((*depth, t, *block));
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
        for (depth, t, block) in trampolines {
            self.b.switch_to_block(t);
            self.b.seal_block(t);
            if self.is_loop_target(depth)? {
                self.back_edge(block, &args);
            } else {
                self.b.ins().jump(block, &block_args(&args));
            }
        }
        self.reachable = false;
        Ok(())
    }
}

/// For each `loop` of a function body, in order: whether its fuel check
/// goes on its back edge instead of its header. That is the case when the
/// loop's only branch back to it is one unconditional `br`, the shape of
/// a `while` loop (`loop (br_if $exit ...) ... (br $loop)`). The check
/// then *is* the loop's closing branch: `sub; test; jge header`, with the
/// slow path after it, where a header check adds a third branch that is
/// ever taken (the out-of-fuel one) beside the exit test and the back
/// jump. On the reference CPU a loop with three such branches ran the
/// sieve kernel 15 % slower once the slow path had run (see
/// docs/PERFORMANCE.md, "Fuel checks on back edges"). Loops that branch
/// back conditionally (`br_if`, `br_table`: the do-while shape compilers
/// emit) or more than once keep the header check: their back edge is
/// already a conditional branch, and one check per loop keeps the code
/// small. Either way every iteration passes exactly one check.
pub(crate) fn loops_checked_on_edge(
    body: &wasmparser::FunctionBody<'_>,
) -> Result<Vec<bool>, CompileError> {
    use wasmparser::Operator;
    // Per open frame: the ordinal of the loop it is, if it is one.
    let mut frames: Vec<Option<usize>> = vec![None];
    // Per loop: (branches back to it, any of them conditional).
    let mut loops: Vec<(u32, bool)> = Vec::new();
    let mut reader = body.get_operators_reader()?;
    while !reader.eof() {
        match reader.read()? {
            Operator::Loop { .. } => {
                frames.push(Some(loops.len()));
                loops.push((0, false));
            }
            Operator::Block { .. } | Operator::If { .. } => frames.push(None),
            Operator::End => {
                frames.pop();
            }
            Operator::Br { relative_depth } => {
                count_back_edge(&frames, &mut loops, relative_depth, false)
            }
            Operator::BrIf { relative_depth } => {
                count_back_edge(&frames, &mut loops, relative_depth, true)
            }
            Operator::BrTable { targets } => {
                count_back_edge(&frames, &mut loops, targets.default(), true);
                for t in targets.targets() {
                    count_back_edge(&frames, &mut loops, t.map_err(CompileError::from)?, true);
                }
            }
            _ => {}
        }
    }
    Ok(loops
        .into_iter()
        .map(|(edges, conditional)| edges == 1 && !conditional)
        .collect())
}

/// Count a branch `depth` frames up in `loops` if its target is a loop.
fn count_back_edge(
    frames: &[Option<usize>],
    loops: &mut [(u32, bool)],
    depth: u32,
    conditional: bool,
) {
    let target = frames
        .len()
        .checked_sub(1 + depth as usize)
        .and_then(|i| frames[i]);
    if let Some(entry) = target.and_then(|k| loops.get_mut(k)) {
        entry.0 = entry.0.saturating_add(1);
        entry.1 |= conditional;
    }
}
