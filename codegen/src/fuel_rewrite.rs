//! Fuel checks in one instruction: a rewrite of the x86-64 code Cranelift
//! emits for a fuel check that starts a block.
//!
//! The fuel counter lives in the pinned register `r15`
//! ([`crate::translate`]'s `fuel`). Cranelift's x86-64 backend reads and
//! writes the pinned register only through copies, so a check
//! `r15 -= k; if r15 < 0 { slow }` comes out as
//!
//! ```text
//! mov %r15,%rA ; add $-k,%rA  (or lea -k(%rA),%rB)
//! mov %rB,%r15 ; test %rB,%rB ; jl slow  (or jge, on a loop's back edge)
//! ```
//!
//! five instructions where one `add` and the branch do the same. This
//! module rewrites such a sequence, in place and at the same length, into
//!
//! ```text
//! nop (n bytes) ; add $-k,%r15 ; js slow  (jns for jge)
//! ```
//!
//! and the check of an unrolled loop's first copy (`cmp $room,%rB; jl`
//! after the copies, or `test %rB,%rB; jle` for a room of 1: the `cmp` or
//! the `test` then reads `%r15`). A charge without a
//! check (`mov; add; mov`) is left alone: what follows it is not matched,
//! so nothing would show that it does not read `%rB`.
//!
//! **Where.** Only at block starts that Cranelift reports
//! (`machine_code_cfg_info`), past at most four register-to-register
//! moves the register allocator put there, and only in the code before the
//! function's constants (the caller passes the code up to its last trap
//! site: Cranelift can leave one stale block start, at the island of traps
//! and constants after the code, where a branch it removed last had been).
//! Any other block start is an instruction boundary, and from there every
//! instruction (the moves and the check) is matched byte for byte with its
//! exact length, so no byte is ever read as an instruction that
//! is not one (a scan of the code could match a guest's constant). Loop
//! headers start blocks, and so do most function entries after the
//! prologue: the checks of loops checked at their header (the shape
//! compilers emit for C and Rust loops) and of calls are the ones
//! rewritten; a `while` loop's check on its back edge is not.
//! A rewrite never covers a relocation, a trap site or another block's
//! start.
//!
//! **Why it is exact.**
//! - The values `%rA` and `%rB` hold (the counter before and after) are
//!   dead after the sequence: the translator reads the counter with
//!   `get_pinned_reg` for each check and gives the value no use but the
//!   add, and the new value none but `set_pinned_reg` and the compare
//!   (`FuncTranslator::fuel`, `charge_units`, `fuel_check_room`).
//! - `test %rB,%rB` clears OF, so after it `jl` is `js` and `jge` is
//!   `jns`; after `add $-k,%r15` SF is the sign of the same result.
//!   `cmp $room` and `test` on `%r15` set the flags they set on `%rB`,
//!   as the two hold the same value.
//! - `r15` changes in one instruction instead of being copied out and
//!   back, so a deadline kick (`runtime/src/signals.rs`) landing inside
//!   the sequence is never lost.

/// The bytes of `add $imm32,%r15` before the immediate.
const ADD_R15_IMM32: [u8; 3] = [0x49, 0x81, 0xC7];

/// Rewrite the fuel checks that start a block of `code` (one compiled
/// function; `block_starts` its block offsets, `keep` the offsets of its
/// relocations and trap sites, which no rewrite may cover). Returns how
/// many were rewritten.
pub(crate) fn rewrite_checks(code: &mut [u8], block_starts: &[u32], keep: &[u32]) -> usize {
    let mut rewritten = 0;
    for &block in block_starts {
        let start = skip_moves(code, block as usize);
        let Some(check) = match_check(code, start) else {
            continue;
        };
        // Everything after the first byte up to the end of the last byte
        // changed must be inside this block: no other block may begin
        // there, and no relocation or trap site may lie in it.
        let inside = |o: &u32| (*o as usize) > start && (*o as usize) < check.end;
        let covers_keep = keep
            .iter()
            .any(|&o| (o as usize) >= start && (o as usize) < check.end);
        if block_starts.iter().any(inside) || covers_keep {
            continue;
        }
        apply(code, start, &check);
        rewritten += 1;
    }
    rewritten
}

/// A matched check: what replaces it.
#[derive(Debug, PartialEq, Eq)]
struct Check {
    /// End of the copies and the arithmetic (`mov; add|lea; mov`, plus
    /// the `test` for [`Tail::Branch`]): the `nop` and the `add` fill
    /// `start..body_end`.
    body_end: usize,
    /// The counter's change (`-k`).
    imm: i32,
    /// What follows the body.
    tail: Tail,
    /// One past the last byte of the whole pattern.
    end: usize,
}

#[derive(Debug, PartialEq, Eq)]
enum Tail {
    /// `test; jcc`: the condition byte at this offset becomes this value.
    Branch { cc_at: usize, cc: u8 },
    /// `cmp $imm,%rB` at this offset: it is made to read `%r15`.
    Compare { at: usize },
    /// `test %rB,%rB` at this offset, followed by a branch on flags that
    /// `add` does not set as `test` does (`jle`): it becomes `test
    /// %r15,%r15` (same length, same flags).
    TestR15 { at: usize },
}

/// Match a check at `start` (see the module documentation).
fn match_check(code: &[u8], start: usize) -> Option<Check> {
    let a = mov_from_r15(code, start)?;
    let (b, imm, len) = add_or_lea(code, start + 3, a)?;
    let after_arith = start + 3 + len;
    mov_to_r15(code, after_arith, b)?;
    let next = after_arith + 3;
    if is_test(code, next, b) {
        let at = next + 3;
        let (cc_at, cc) = match (code.get(at)?, code.get(at + 1)?) {
            (0x0F, 0x8C) => (at + 1, 0x88),
            (0x0F, 0x8D) => (at + 1, 0x89),
            (0x7C, _) => (at, 0x78),
            (0x7D, _) => (at, 0x79),
            // Any other use of the flags (`jle` for `< 1`): keep the test,
            // on r15.
            _ => {
                return Some(Check {
                    body_end: next,
                    imm,
                    tail: Tail::TestR15 { at: next },
                    end: at,
                })
            }
        };
        let jcc_len = if cc_at == at { 2 } else { 6 };
        if code.len() < at + jcc_len {
            return None;
        }
        return Some(Check {
            body_end: at,
            imm,
            tail: Tail::Branch { cc_at, cc },
            end: at + jcc_len,
        });
    }
    let cmp_len = cmp_imm(code, next, b)?;
    Some(Check {
        body_end: next,
        imm,
        tail: Tail::Compare { at: next },
        end: next + cmp_len,
    })
}

/// Past the register-to-register moves at `at` (the register allocator's,
/// at a block start before the check: `REX.W 89 /r` or `REX.W 8B /r`
/// between two registers, neither of them `r15`), at most four.
fn skip_moves(code: &[u8], mut at: usize) -> usize {
    for _ in 0..4 {
        let Some(&[rex, op, modrm]) = code.get(at..at + 3) else {
            break;
        };
        let reg = ((modrm >> 3) & 7) | (((rex >> 2) & 1) << 3);
        let rm = (modrm & 7) | ((rex & 1) << 3);
        let is_move = rex & 0xFA == 0x48 && matches!(op, 0x89 | 0x8B) && modrm >> 6 == 3;
        if !is_move || reg == 15 || rm == 15 {
            break;
        }
        at += 3;
    }
    at
}

/// `mov %r15,%rA` (`4C/4D 89 /r`, r15 in the reg field): `A`.
fn mov_from_r15(code: &[u8], at: usize) -> Option<u8> {
    let [rex, op, modrm] = *code.get(at..at + 3)? else {
        return None;
    };
    (matches!(rex, 0x4C | 0x4D) && op == 0x89 && modrm & 0xF8 == 0xF8)
        .then_some((modrm & 7) | ((rex & 1) << 3))
}

/// `add $imm,%rA` (`REX.W 81 /0 id` or `REX.W 83 /0 ib`) or `lea
/// disp(%rA),%rB` (`REX.W 8D /r`, displacement of 8 or 32 bits, no index):
/// `(B, imm, length)`.
fn add_or_lea(code: &[u8], at: usize, a: u8) -> Option<(u8, i32, usize)> {
    let rex = *code.get(at)?;
    let op = *code.get(at + 1)?;
    let modrm = *code.get(at + 2)?;
    if rex == 0x48 | (a >> 3) && modrm == 0xC0 | (a & 7) {
        return match op {
            0x81 => Some((a, imm32(code, at + 3)?, 7)),
            0x83 => Some((a, i32::from(*code.get(at + 3)? as i8), 4)),
            _ => None,
        };
    }
    // lea: REX.W, REX.R for B, no REX.X, REX.B for A; base A (not rsp or
    // r12, which need a SIB byte).
    if op != 0x8D || rex & 0xFA != 0x48 || rex & 1 != a >> 3 || modrm & 7 != a & 7 || a & 7 == 4 {
        return None;
    }
    let b = ((modrm >> 3) & 7) | (((rex >> 2) & 1) << 3);
    match modrm >> 6 {
        1 => Some((b, i32::from(*code.get(at + 3)? as i8), 4)),
        2 => Some((b, imm32(code, at + 3)?, 7)),
        _ => None,
    }
}

/// `mov %rB,%r15` (`49/4D 89 /r`, r15 in the r/m field).
fn mov_to_r15(code: &[u8], at: usize, b: u8) -> Option<()> {
    (code.get(at..at + 3)? == [0x49 | ((b >> 3) << 2), 0x89, 0xC7 | ((b & 7) << 3)]).then_some(())
}

/// `test %rB,%rB` (`REX.W 85 /r`).
fn is_test(code: &[u8], at: usize, b: u8) -> bool {
    code.get(at..at + 3) == Some(&[0x48 | ((b >> 3) * 5), 0x85, 0xC0 | ((b & 7) * 9)][..])
}

/// `cmp $imm,%rB` (`REX.W 83 /7 ib` or `REX.W 81 /7 id`): its length.
fn cmp_imm(code: &[u8], at: usize, b: u8) -> Option<usize> {
    let [rex, op, modrm] = *code.get(at..at + 3)? else {
        return None;
    };
    if rex != 0x48 | (b >> 3) || modrm != 0xF8 | (b & 7) {
        return None;
    }
    let len = match op {
        0x83 => 4,
        0x81 => 7,
        _ => return None,
    };
    (code.len() >= at + len).then_some(len)
}

fn imm32(code: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(code.get(at..at + 4)?.try_into().ok()?))
}

/// Write the rewrite of `check` at `start`.
fn apply(code: &mut [u8], start: usize, check: &Check) {
    let body = &mut code[start..check.body_end];
    let add_at = body.len() - 7;
    fill_nops(&mut body[..add_at]);
    body[add_at..add_at + 3].copy_from_slice(&ADD_R15_IMM32);
    body[add_at + 3..].copy_from_slice(&check.imm.to_le_bytes());
    match check.tail {
        Tail::Branch { cc_at, cc } => code[cc_at] = cc,
        Tail::Compare { at } => {
            code[at] = 0x49;
            code[at + 2] = 0xFF;
        }
        Tail::TestR15 { at } => code[at..at + 3].copy_from_slice(&[0x4D, 0x85, 0xFF]),
    }
}

/// Fill `out` with the fewest recommended multi-byte `nop`s (at most 9
/// bytes each).
fn fill_nops(out: &mut [u8]) {
    const NOPS: [&[u8]; 9] = [
        &[0x90],
        &[0x66, 0x90],
        &[0x0F, 0x1F, 0x00],
        &[0x0F, 0x1F, 0x40, 0x00],
        &[0x0F, 0x1F, 0x44, 0x00, 0x00],
        &[0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00],
        &[0x0F, 0x1F, 0x80, 0x00, 0x00, 0x00, 0x00],
        &[0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
        &[0x66, 0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
    ];
    let mut rest = out;
    while !rest.is_empty() {
        let n = rest.len().min(9);
        let (head, tail) = rest.split_at_mut(n);
        head.copy_from_slice(NOPS[n - 1]);
        rest = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `mov %r15,%rax; add $-1,%rax; mov %rax,%r15; test %rax,%rax; jl +0x10`
    /// then a `ret`.
    const HEADER: [u8; 23] = [
        0x4C, 0x89, 0xF8, 0x48, 0x81, 0xC0, 0xFF, 0xFF, 0xFF, 0xFF, 0x49, 0x89, 0xC7, 0x48, 0x85,
        0xC0, 0x0F, 0x8C, 0x10, 0x00, 0x00, 0x00, 0xC3,
    ];

    #[test]
    fn a_header_check_becomes_one_add_and_js() {
        let mut code = HEADER.to_vec();
        assert_eq!(rewrite_checks(&mut code, &[0], &[]), 1);
        assert_eq!(
            code,
            [
                0x66, 0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00, // nop (9)
                0x49, 0x81, 0xC7, 0xFF, 0xFF, 0xFF, 0xFF, // add $-1,%r15
                0x0F, 0x88, 0x10, 0x00, 0x00, 0x00, // js +0x10 (same target)
                0xC3,
            ]
        );
    }

    #[test]
    fn register_moves_before_the_check_are_stepped_over() {
        // mov %rdi,%rbx; mov %r13,%r8 (8B form); then the check.
        let moves = [0x48, 0x89, 0xFB, 0x4D, 0x8B, 0xC5];
        let mut code = [&moves[..], &HEADER[..]].concat();
        assert_eq!(rewrite_checks(&mut code, &[0], &[]), 1);
        assert_eq!(code[..6], moves);
        assert_eq!(
            code[15..24],
            [0x49, 0x81, 0xC7, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x88]
        );
        // A move into r15, or a memory operand, ends the moves: no match.
        for mv in [[0x49, 0x89, 0xFF], [0x48, 0x89, 0x3B]] {
            let mut code = [&mv[..], &HEADER[..]].concat();
            let before = code.clone();
            assert_eq!(rewrite_checks(&mut code, &[0], &[]), 0);
            assert_eq!(code, before);
        }
        // Five moves: more than are stepped over.
        let mut code = [&[0x48, 0x89, 0xFB].repeat(5)[..], &HEADER[..]].concat();
        assert_eq!(rewrite_checks(&mut code, &[0], &[]), 0);
    }

    #[test]
    fn the_lea_form_with_high_registers_and_jge() {
        // mov %r15,%rdi; lea -0x2(%rdi),%r9; mov %r9,%r15; test %r9,%r9;
        // jge -0x20
        let mut code = vec![
            0x4C, 0x89, 0xFF, 0x4C, 0x8D, 0x4F, 0xFE, 0x4D, 0x89, 0xCF, 0x4D, 0x85, 0xC9, 0x0F,
            0x8D, 0xE0, 0xFF, 0xFF, 0xFF,
        ];
        assert_eq!(rewrite_checks(&mut code, &[0], &[]), 1);
        assert_eq!(
            code,
            [
                0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00, // nop (6)
                0x49, 0x81, 0xC7, 0xFE, 0xFF, 0xFF, 0xFF, // add $-2,%r15
                0x0F, 0x89, 0xE0, 0xFF, 0xFF, 0xFF, // jns
            ]
        );
    }

    #[test]
    fn an_unrolled_loops_compare_reads_r15() {
        // mov %r15,%rcx; add $-1,%rcx; mov %rcx,%r15; cmp $3,%rcx; jl
        let mut code = vec![
            0x4C, 0x89, 0xF9, 0x48, 0x81, 0xC1, 0xFF, 0xFF, 0xFF, 0xFF, 0x49, 0x89, 0xCF, 0x48,
            0x83, 0xF9, 0x03, 0x0F, 0x8C, 0x00, 0x01, 0x00, 0x00,
        ];
        assert_eq!(rewrite_checks(&mut code, &[0], &[]), 1);
        assert_eq!(
            code[..17],
            [
                0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00, // nop (6)
                0x49, 0x81, 0xC7, 0xFF, 0xFF, 0xFF, 0xFF, // add $-1,%r15
                0x49, 0x83, 0xFF, 0x03, // cmp $3,%r15
            ]
        );
        // The branch is untouched: it reads the flags of the same compare.
        assert_eq!(code[17..19], [0x0F, 0x8C]);
    }

    #[test]
    fn a_test_before_another_branch_reads_r15() {
        // The same check ending in `jle` (a room of 1): the test stays.
        let mut code = HEADER.to_vec();
        code[17] = 0x8E;
        assert_eq!(rewrite_checks(&mut code, &[0], &[]), 1);
        assert_eq!(
            code[..22],
            [
                0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00, // nop (6)
                0x49, 0x81, 0xC7, 0xFF, 0xFF, 0xFF, 0xFF, // add $-1,%r15
                0x4D, 0x85, 0xFF, // test %r15,%r15
                0x0F, 0x8E, 0x10, 0x00, 0x00, 0x00, // jle, unchanged
            ]
        );
    }

    #[test]
    fn a_charge_without_a_check_is_left_alone() {
        // mov %r15,%rdx; add $-3,%rdx; mov %rdx,%r15; ret
        let mut add = vec![
            0x4C, 0x89, 0xFA, 0x48, 0x81, 0xC2, 0xFD, 0xFF, 0xFF, 0xFF, 0x49, 0x89, 0xD7, 0xC3,
        ];
        let before = add.clone();
        assert_eq!(rewrite_checks(&mut add, &[0], &[]), 0);
        assert_eq!(add, before);
    }

    #[test]
    fn nothing_is_rewritten_off_a_block_start_or_across_what_must_stay() {
        // Not at a block start: the same bytes elsewhere are not looked at.
        let mut code = [&[0x90][..], &HEADER[..]].concat();
        let before = code.clone();
        assert_eq!(rewrite_checks(&mut code, &[0], &[]), 0);
        assert_eq!(rewrite_checks(&mut code, &[], &[]), 0);
        assert_eq!(code, before);
        // A block starting inside, a trap site or a relocation inside.
        for (starts, keep) in [
            (vec![0, 13], vec![]),
            (vec![0], vec![3]),
            (vec![0], vec![18]),
        ] {
            let mut code = HEADER.to_vec();
            assert_eq!(rewrite_checks(&mut code, &starts, &keep), 0);
            assert_eq!(code, HEADER);
        }
    }

    #[test]
    fn near_misses_are_left_alone() {
        let variants: [(usize, u8); 6] = [
            (2, 0xF0),  // mov %r14,%rax: not the counter
            (5, 0xC1),  // add to %rcx, not %rax
            (12, 0xC6), // mov %rax,%r14
            (15, 0xC9), // test %rcx,%rcx
            (14, 0x84), // test %al,%al (8-bit)
            (4, 0x01),  // add %reg form
        ];
        for (at, byte) in variants {
            let mut code = HEADER.to_vec();
            code[at] = byte;
            let before = code.clone();
            assert_eq!(
                rewrite_checks(&mut code, &[0], &[]),
                0,
                "byte {at} = {byte:#x}"
            );
            assert_eq!(code, before);
        }
        // Truncated anywhere: no match, no panic.
        for len in 0..HEADER.len() - 1 {
            let mut code = HEADER[..len].to_vec();
            assert_eq!(rewrite_checks(&mut code, &[0], &[]), 0);
        }
        // A block start past the end.
        assert_eq!(rewrite_checks(&mut HEADER.to_vec(), &[100], &[]), 0);
    }

    #[test]
    fn nops_fill_exactly() {
        for n in 1..=20 {
            let mut out = vec![0xCC; n];
            fill_nops(&mut out);
            assert!(!out.contains(&0xCC), "{n} bytes: {out:x?}");
        }
    }
}
