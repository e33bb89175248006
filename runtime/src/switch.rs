//! Register-only context switching between a worker's own stack and the
//! small per-instance stacks (x86_64 System V).
//!
//! A suspended context is a stack pointer `sp` with this frame at `sp`
//! (lowest address first):
//!
//! ```text
//! sp+0  r15   sp+8  r14   sp+16 r13   sp+24 r12   sp+32 rbx   sp+40 rbp
//! sp+48 resume address
//! ```
//!
//! [`myriad_switch`] pushes the callee-saved registers, stores `rsp` to
//! `*save_sp`, loads `load_sp`, pops the other context's registers and
//! resumes it with `pop rcx; jmp rcx`. Resuming with an indirect jump
//! instead of `ret` avoids return-stack-buffer mispredicts (9 ns instead of
//! 31–35 ns per round trip on the reference machine). No system call, no
//! signal mask, no floating-point state: Wasm cannot change MXCSR or the x87
//! control word and host code must not either.
//!
//! A fresh instance stack gets a frame built by [`init_frame`] whose resume
//! address is the `myriad_rt_entry` routine, with the vmctx pointer in the
//! `r12` slot. The entry runs `vmctx.start` (if non-zero) and the export's
//! array-call wrapper `vmctx.entry` (if non-zero), marks the vmctx
//! `FINISHED` and switches back to the worker for good. Every call armed
//! on an instance (`Instance::call`) gets a fresh frame at the same stack
//! top; the runtime sets `start` only for the first armed call. [`abandon_addr`] is the routine the signal handler
//! redirects a trapping guest to: it reloads the worker's context from
//! `vmctx.host_sp` without saving the dead guest context.

use crate::vmctx::{status, VmCtx};
use std::mem::offset_of;

/// Bytes of a saved-context frame: six callee-saved registers and the
/// resume address.
pub const FRAME_BYTES: usize = 7 * 8;

core::arch::global_asm!(
    // ---- myriad_rt_switch(save_sp: *mut usize /*rdi*/, load_sp: usize /*rsi*/)
    ".text",
    ".p2align 4",
    ".globl myriad_rt_switch",
    ".hidden myriad_rt_switch",
    ".type myriad_rt_switch,@function",
    "myriad_rt_switch:",
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov qword ptr [rdi], rsp",
    "mov rsp, rsi",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "pop rcx",
    "jmp rcx",
    ".size myriad_rt_switch, . - myriad_rt_switch",
    // ---- myriad_rt_entry: first resume of a fresh instance.
    // rsp = stack top (16-byte aligned), r12 = vmctx.
    ".p2align 4",
    ".globl myriad_rt_entry",
    ".hidden myriad_rt_entry",
    ".type myriad_rt_entry,@function",
    "myriad_rt_entry:",
    "mov rax, qword ptr [r12 + {start}]",
    "test rax, rax",
    "jz 2f",
    "mov rdi, r12",
    "mov rsi, r12",
    "mov rdx, qword ptr [r12 + {values}]",
    "call rax",
    "2:",
    "mov rax, qword ptr [r12 + {entry}]",
    "test rax, rax",
    "jz 3f",
    "mov rdi, r12",
    "mov rsi, r12",
    "mov rdx, qword ptr [r12 + {values}]",
    "call rax",
    "3:",
    "mov dword ptr [r12 + {status}], {finished}",
    "mov rdi, r12",
    // fall through into abandon: resume the worker for good.
    ".size myriad_rt_entry, . - myriad_rt_entry",
    // ---- myriad_rt_abandon(vmctx /*rdi*/): resume the worker context saved
    // in vmctx.host_sp; the current (guest) context is dropped.
    ".globl myriad_rt_abandon",
    ".hidden myriad_rt_abandon",
    ".type myriad_rt_abandon,@function",
    "myriad_rt_abandon:",
    "mov rsp, qword ptr [rdi + {host_sp}]",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "pop rcx",
    "jmp rcx",
    ".size myriad_rt_abandon, . - myriad_rt_abandon",
    start = const offset_of!(VmCtx, start),
    values = const offset_of!(VmCtx, values_ptr),
    entry = const offset_of!(VmCtx, entry),
    status = const offset_of!(VmCtx, status),
    finished = const status::FINISHED,
    host_sp = const offset_of!(VmCtx, host_sp),
);

extern "C" {
    /// Save the current context to `*save_sp` and resume the one saved at
    /// `load_sp`. Returns when something switches back to `*save_sp`.
    fn myriad_rt_switch(save_sp: *mut usize, load_sp: usize);
    fn myriad_rt_entry();
    fn myriad_rt_abandon();
}

/// Save the current context into `*save_sp` and resume the context saved at
/// `load_sp`; returns when another switch resumes `*save_sp`.
///
/// # Safety
///
/// `load_sp` must be a context saved by this function or built by
/// [`init_frame`], on a stack that stays valid while it runs; `save_sp` must
/// be writable. Whatever runs on the other side must eventually switch
/// back to the saved context exactly once (or never, if the caller's stack
/// is to be abandoned — which Rust frames on it must tolerate).
#[inline(always)]
pub unsafe fn myriad_switch(save_sp: *mut usize, load_sp: usize) {
    // SAFETY: the caller upholds the contract above; the routine preserves
    // all callee-saved registers and the stack pointer of this context.
    unsafe { myriad_rt_switch(save_sp, load_sp) }
}

/// Address of the raw switch routine (for hand-written callers).
pub fn switch_addr() -> usize {
    myriad_rt_switch as *const () as usize
}

/// Address of the `abandon` routine: `rdi` = vmctx; loads `rsp` from
/// `vmctx.host_sp` and resumes the worker there.
pub fn abandon_addr() -> usize {
    myriad_rt_abandon as *const () as usize
}

/// Build the initial frame of a fresh instance whose stack top (highest
/// address, exclusive) is `stack_top`; returns the `sp` to store in
/// `vmctx.guest_sp`. The first switch to it starts the entry routine with
/// `vmctx` in `r12`.
///
/// # Safety
///
/// `stack_top` must be 16-byte aligned and the [`FRAME_BYTES`] bytes below
/// it writable.
pub unsafe fn init_frame(stack_top: usize, vmctx: *mut VmCtx) -> usize {
    debug_assert_eq!(stack_top % 16, 0);
    // After the switch pops the frame, rsp == stack_top (16-aligned, as
    // after a `ret`), which is what the entry routine expects.
    let sp = stack_top - FRAME_BYTES;
    let frame = sp as *mut usize;
    // SAFETY: the caller guarantees the FRAME_BYTES below stack_top are
    // writable; sp is 8-aligned.
    unsafe {
        frame.add(0).write(0); // r15
        frame.add(1).write(0); // r14
        frame.add(2).write(0); // r13
        frame.add(3).write(vmctx as usize); // r12
        frame.add(4).write(0); // rbx
        frame.add(5).write(0); // rbp (ends frame-pointer walks)
        frame.add(6).write(myriad_rt_entry as *const () as usize);
    }
    sp
}

/// Build a frame that, when switched to, starts `f(arg)` with `rsp` 16-byte
/// aligned at entry minus 8 (as after a call). `f` must never return; it
/// must switch away for good. Used by tests and by hand-made contexts.
///
/// # Safety
///
/// As for [`init_frame`].
pub unsafe fn init_raw_frame(
    stack_top: usize,
    f: unsafe extern "C" fn(usize) -> !,
    arg: usize,
) -> usize {
    debug_assert_eq!(stack_top % 16, 0);
    // Layout: frame (56 bytes) then a fake return address slot, so that at
    // f's entry rsp % 16 == 8 like after a call.
    let sp = stack_top - 16 - FRAME_BYTES;
    let frame = sp as *mut usize;
    // SAFETY: the caller guarantees the bytes below stack_top are writable.
    unsafe {
        for i in 0..6 {
            frame.add(i).write(0);
        }
        frame.add(3).write(arg); // r12 carries the argument
        frame.add(6).write(raw_trampoline as *const () as usize);
        frame.add(7).write(f as usize); // read by raw_trampoline
        frame.add(8).write(0);
    }
    sp
}

core::arch::global_asm!(
    // After the frame pops: rsp -> [f][0]; r12 = arg.
    ".text",
    ".p2align 4",
    ".globl myriad_rt_raw_trampoline",
    ".hidden myriad_rt_raw_trampoline",
    "myriad_rt_raw_trampoline:",
    "pop rax", // f; rsp now -> [0] (stack_top - 8 after the pop: 16n + 8)
    "mov rdi, r12",
    "jmp rax", // as if called: rsp % 16 == 8
);

extern "C" {
    #[link_name = "myriad_rt_raw_trampoline"]
    fn raw_trampoline();
}
