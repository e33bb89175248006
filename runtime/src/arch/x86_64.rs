//! x86-64 System V: the context switch, the entry of a fresh instance, the
//! trampolines that run builtins and host functions on the worker stack,
//! and the few fields of a signal's saved context the fault handler
//! touches. Every routine is a naked function: its assembly is its whole
//! body, with no prologue of the compiler's.
//!
//! # Saved contexts
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
//! signal mask, no floating-point state: Wasm cannot change MXCSR or the
//! x87 control word and host code must not either.
//!
//! A fresh instance stack gets a frame built by [`init_frame`] whose resume
//! address is the entry routine, with the vmctx pointer in the `r12` slot.
//! The entry runs `vmctx.start` (if non-zero) and the export's array-call
//! wrapper `vmctx.entry` (if non-zero), marks the vmctx `FINISHED` and
//! switches back to the worker for good ([`abandon_addr`], which the fault
//! handler also redirects a trapping guest to).
//!
//! # Host calls
//!
//! Compiled code calls builtins on its small instance stack. Host (Rust)
//! code must never run there, so each builtin's entry point moves `rsp` to
//! just below `exec.host_sp` (the worker's context saved by the switch into
//! the guest; everything below it is free while the guest runs), skips
//! [`HOST_RED_ZONE`], aligns to 16 bytes, calls the Rust function, and
//! comes back to the instance stack.
//!
//! * `fuel_exhausted(exec)`: the Rust slow path ([`crate::fuel`]) refills
//!   fuel or decides to yield; on yield the trampoline — back on the guest
//!   stack — saves the guest context with a switch to `exec.host_sp` and,
//!   when resumed, returns to the guest (which reloads fuel from exec).
//! * Every other builtin goes through the generic host-call trampoline:
//!   `f(vmctx, exec, arg, arg2) -> u64` on the worker stack. If `f` left
//!   `exec.status` other than `RUNNING` (a host function parked or yielded,
//!   a trap, an exit, a limit), the trampoline suspends the green thread
//!   right there; if it is resumed (park and yield only) it returns `f`'s
//!   result to the guest, or, when `f` left a repeated call in
//!   `exec.again_fn` (`HostAction::Continue`, a `table.grow` in parts),
//!   calls it again first with the arguments it left there.
//!
//! What these routines write below an instance's stack limit is bounded by
//! [`crate::region::TRAMPOLINE_FRAME_MAX`].

use crate::vmctx::{status, VmCtx};
use core::arch::naked_asm;
use std::mem::offset_of;

/// Bytes of a saved-context frame: six callee-saved registers and the
/// resume address.
pub const FRAME_BYTES: usize = 7 * 8;

/// Bytes skipped below `host_sp` before host code uses the worker stack
/// (more than the System V red zone of 128 bytes).
pub const HOST_RED_ZONE: usize = 256;

/// The signature of a function run by the host-call trampoline.
pub type HostStackFn = extern "C" fn(*mut VmCtx, *mut VmCtx, u64, u64) -> u64;

// ---- Context switch and instance entry -----------------------------------

/// `switch(save_sp: *mut usize, load_sp: usize)`: save this context at
/// `*save_sp`, resume the one saved at `load_sp`.
#[unsafe(naked)]
unsafe extern "C" fn switch(_save_sp: *mut usize, _load_sp: usize) {
    naked_asm!(
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
    )
}

/// First resume of a fresh instance: `rsp` = stack top (16-byte aligned,
/// as after a `ret`), `r12` = vmctx. Runs the start function and the entry
/// wrapper, marks the instance finished and resumes the worker for good.
#[unsafe(naked)]
unsafe extern "C" fn entry() {
    naked_asm!(
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
        "jmp {abandon}",
        start = const offset_of!(VmCtx, start),
        values = const offset_of!(VmCtx, values_ptr),
        entry = const offset_of!(VmCtx, entry),
        status = const offset_of!(VmCtx, status),
        finished = const status::FINISHED,
        abandon = sym abandon,
    )
}

/// `abandon(vmctx)`: resume the worker context saved in `vmctx.host_sp`;
/// the current (guest) context is dropped.
#[unsafe(naked)]
unsafe extern "C" fn abandon(_vmctx: *mut VmCtx) {
    naked_asm!(
        "mov rsp, qword ptr [rdi + {host_sp}]",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "pop rcx",
        "jmp rcx",
        host_sp = const offset_of!(VmCtx, host_sp),
    )
}

/// After a raw frame pops (see [`init_raw_frame`]): `rsp` points at
/// `[f][0]`, `r12` holds the argument; enter `f(arg)` as if called.
#[unsafe(naked)]
unsafe extern "C" fn raw_trampoline() {
    naked_asm!(
        "pop rax", // f; rsp now -> [0] (16n + 8, as after a call)
        "mov rdi, r12",
        "jmp rax",
    )
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
    unsafe { switch(save_sp, load_sp) }
}

/// Address of the raw switch routine (for hand-written callers).
pub fn switch_addr() -> usize {
    switch as *const () as usize
}

/// Address of the `abandon` routine: `rdi` = vmctx; loads `rsp` from
/// `vmctx.host_sp` and resumes the worker there.
pub fn abandon_addr() -> usize {
    abandon as *const () as usize
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
        frame.add(6).write(entry as *const () as usize);
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

// ---- Host calls ----------------------------------------------------------

/// `host_call(vmctx rdi, exec rsi, arg rdx, f rcx, arg2 r8) -> rax`: call
/// `f(vmctx, exec, arg, arg2)` on the worker stack, then suspend the green
/// thread if `f` changed `exec.status`, and call `f` again on resume if it
/// left a repeated call in `exec.again_fn`.
#[unsafe(naked)]
unsafe extern "C" fn host_call(
    _vmctx: *mut VmCtx,
    _exec: *mut VmCtx,
    _arg: u64,
    _f: HostStackFn,
    _arg2: u64,
) -> u64 {
    naked_asm!(
        "push rbp",
        "push rbx",
        "3:",
        "mov rbp, rsp",
        "mov rbx, rsi", // exec
        "mov rax, qword ptr [rsi + {host_sp}]",
        "sub rax, {red}",
        "and rax, -16",
        "mov rsp, rax",
        "mov rax, rcx",
        "mov rcx, r8",
        "call rax",
        // In an asynchronous slice, end a due slice at the guest's next
        // check (`fuel::end_if_due`): the preemption signal does not stop
        // a thread in here, and not every builtin reads the clock.
        "cmp byte ptr [rbx + {async_slice}], 0",
        "jne 6f",
        "5:",
        "mov rsp, rbp",
        "cmp dword ptr [rbx + {status}], {running}",
        "jne 2f",
        "pop rbx",
        "pop rbp",
        "ret",
        "2:",
        // Suspend: save the guest context in exec.guest_sp, resume the
        // worker. Two pushes keep rsp's alignment and save f's result.
        "push rax",
        "push rax",
        "lea rdi, [rbx + {guest_sp}]",
        "mov rsi, qword ptr [rbx + {host_sp}]",
        "call {switch}",
        // Resumed (parked or yielded): return f's result to the guest,
        // unless f asked to be called again (exec.again_fn).
        "pop rax",
        "pop rax",
        "mov rcx, qword ptr [rbx + {again_fn}]",
        "test rcx, rcx",
        "jnz 4f",
        "pop rbx",
        "pop rbp",
        "ret",
        "4:",
        // The stack is as it was after the entry pushes: call f again with
        // the arguments it left in exec.
        "mov qword ptr [rbx + {again_fn}], 0",
        "mov rdi, qword ptr [rbx + {again_vmctx}]",
        "mov rsi, rbx",
        "mov rdx, qword ptr [rbx + {again_arg}]",
        "mov r8, qword ptr [rbx + {again_arg2}]",
        "jmp 3b",
        "6:",
        // Still on the worker stack, 16-aligned: keep f's result.
        "push rax",
        "push rax",
        "mov rdi, rbx",
        "call {end_if_due}",
        "pop rax",
        "pop rax",
        "jmp 5b",
        async_slice = const offset_of!(VmCtx, async_slice),
        end_if_due = sym crate::fuel::end_if_due,
        host_sp = const offset_of!(VmCtx, host_sp),
        guest_sp = const offset_of!(VmCtx, guest_sp),
        again_fn = const offset_of!(VmCtx, again_fn),
        again_vmctx = const offset_of!(VmCtx, again_vmctx),
        again_arg = const offset_of!(VmCtx, again_arg),
        again_arg2 = const offset_of!(VmCtx, again_arg2),
        status = const offset_of!(VmCtx, status),
        running = const status::RUNNING,
        red = const HOST_RED_ZONE,
        switch = sym switch,
    )
}

/// `fuel_exhausted(exec)`: run the fuel slow path on the worker stack;
/// yield the green thread if it says so.
///
/// Compiled code calls this with Cranelift's `preserve_all` convention:
/// the call site assumes no register changes (only the flags), so values
/// live across a fuel check (a loop's accumulators, in floating-point
/// registers too) stay in registers instead of being spilled around every
/// loop header. The trampoline therefore saves every caller-saved register
/// — nine general-purpose and the sixteen `xmm` registers Cranelift
/// allocates — on the guest stack before anything else, and restores them
/// on the way back, after a yield included (the worker clobbers them in
/// between). The fuel counter lives in `r15` in compiled code (ABI 14):
/// the trampoline stores it to `exec.fuel` first and loads `r15` from
/// there last, so the call site does neither.
#[unsafe(naked)]
unsafe extern "C" fn fuel_exhausted(_exec: *mut VmCtx) {
    naked_asm!(
        // rsp = 16n + 8 at entry; eleven pushes make it 16-aligned.
        "push rbp",
        "push rbx",
        "push rax",
        "push rcx",
        "push rdx",
        "push rsi",
        "push rdi",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "sub rsp, 256",
        "movaps xmmword ptr [rsp + 0], xmm0",
        "movaps xmmword ptr [rsp + 16], xmm1",
        "movaps xmmword ptr [rsp + 32], xmm2",
        "movaps xmmword ptr [rsp + 48], xmm3",
        "movaps xmmword ptr [rsp + 64], xmm4",
        "movaps xmmword ptr [rsp + 80], xmm5",
        "movaps xmmword ptr [rsp + 96], xmm6",
        "movaps xmmword ptr [rsp + 112], xmm7",
        "movaps xmmword ptr [rsp + 128], xmm8",
        "movaps xmmword ptr [rsp + 144], xmm9",
        "movaps xmmword ptr [rsp + 160], xmm10",
        "movaps xmmword ptr [rsp + 176], xmm11",
        "movaps xmmword ptr [rsp + 192], xmm12",
        "movaps xmmword ptr [rsp + 208], xmm13",
        "movaps xmmword ptr [rsp + 224], xmm14",
        "movaps xmmword ptr [rsp + 240], xmm15",
        "mov rbp, rsp", // guest sp, saved state above it
        "mov rbx, rdi", // exec
        // Compiled code keeps the counter in r15 (ABI 14): store it where
        // the slow path and the resumer read it.
        "mov qword ptr [rbx + {fuel}], r15",
        "mov rax, qword ptr [rdi + {host_sp}]",
        "sub rax, {red}",
        "and rax, -16",
        "mov rsp, rax",
        "call {slow}", // eax = 0: refilled, continue; else yield
        "mov rsp, rbp",
        "test eax, eax",
        "jz 3f",
        // Yield: save the guest context in exec.guest_sp, resume the worker.
        "lea rdi, [rbx + {guest_sp}]",
        "mov rsi, qword ptr [rbx + {host_sp}]",
        "call {switch}",
        // Resumed by the worker (or refilled): restore everything and go
        // back to the guest, which reloads its fuel.
        "3:",
        // The counter as the slow path refilled it or the resumer set it
        // (r15 itself is as the switch left it: stale).
        "mov r15, qword ptr [rbx + {fuel}]",
        "movaps xmm0, xmmword ptr [rsp + 0]",
        "movaps xmm1, xmmword ptr [rsp + 16]",
        "movaps xmm2, xmmword ptr [rsp + 32]",
        "movaps xmm3, xmmword ptr [rsp + 48]",
        "movaps xmm4, xmmword ptr [rsp + 64]",
        "movaps xmm5, xmmword ptr [rsp + 80]",
        "movaps xmm6, xmmword ptr [rsp + 96]",
        "movaps xmm7, xmmword ptr [rsp + 112]",
        "movaps xmm8, xmmword ptr [rsp + 128]",
        "movaps xmm9, xmmword ptr [rsp + 144]",
        "movaps xmm10, xmmword ptr [rsp + 160]",
        "movaps xmm11, xmmword ptr [rsp + 176]",
        "movaps xmm12, xmmword ptr [rsp + 192]",
        "movaps xmm13, xmmword ptr [rsp + 208]",
        "movaps xmm14, xmmword ptr [rsp + 224]",
        "movaps xmm15, xmmword ptr [rsp + 240]",
        "add rsp, 256",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rax",
        "pop rbx",
        "pop rbp",
        "ret",
        host_sp = const offset_of!(VmCtx, host_sp),
        guest_sp = const offset_of!(VmCtx, guest_sp),
        red = const HOST_RED_ZONE,
        slow = sym crate::fuel::fuel_slow_path,
        fuel = const offset_of!(VmCtx, fuel),
        switch = sym switch,
    )
}

/// Bytes `async_preempt` and the handler that enters it write below the
/// interrupted stack pointer: the pc and exec (16), the flags and eleven
/// registers (96), up to 8 of alignment, the sixteen `xmm` registers
/// (256), then a `call` and the switch's six pushes (56): 432.
pub const ASYNC_PREEMPT_FRAME: usize = 16 + 96 + 8 + 256 + 56;

const _: () = assert!(ASYNC_PREEMPT_FRAME <= crate::region::TRAMPOLINE_FRAME_MAX);

/// The asynchronous preemption of a green thread (see `crate::signals`,
/// "Asynchronous preemption"), entered as if the interrupted compiled code
/// had called it: the signal handler ([`inject_async_preempt`]) pushed
/// the interrupted pc (where the `ret` below goes back to) and then exec,
/// and pointed `rip` here.
///
/// Unlike at a call, every register is live at an arbitrary instruction:
/// the flags, all fifteen general-purpose registers and the sixteen `xmm`
/// registers Cranelift allocates are kept. The flags and the nine
/// caller-saved and two used callee-saved registers go on the guest stack;
/// `r12`–`r14` survive the Rust call and the switch as callee-saved; `r15`
/// (the fuel counter, ABI 14) is stored to `exec.fuel` and reloaded from
/// there on resume, as the fuel trampoline does. The Rust side
/// (`fuel::async_preempt_path`) counts the fuel spent and marks the green
/// thread yielded (or out of budget); the trampoline then always switches
/// to the worker. When resumed it restores everything and returns to the
/// interrupted instruction.
#[unsafe(naked)]
unsafe extern "C" fn async_preempt() {
    naked_asm!(
        // [rsp] = exec, [rsp + 8] = the interrupted pc. rsp's alignment
        // is whatever the interrupted code had (a multiple of 8).
        "pushfq",
        "push rbp",
        "push rbx",
        "push rax",
        "push rcx",
        "push rdx",
        "push rsi",
        "push rdi",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "mov rbp, rsp", // saved registers above; exec at rbp + 96
        "mov rbx, qword ptr [rbp + 96]",
        "and rsp, -16",
        "sub rsp, 256",
        "movaps xmmword ptr [rsp + 0], xmm0",
        "movaps xmmword ptr [rsp + 16], xmm1",
        "movaps xmmword ptr [rsp + 32], xmm2",
        "movaps xmmword ptr [rsp + 48], xmm3",
        "movaps xmmword ptr [rsp + 64], xmm4",
        "movaps xmmword ptr [rsp + 80], xmm5",
        "movaps xmmword ptr [rsp + 96], xmm6",
        "movaps xmmword ptr [rsp + 112], xmm7",
        "movaps xmmword ptr [rsp + 128], xmm8",
        "movaps xmmword ptr [rsp + 144], xmm9",
        "movaps xmmword ptr [rsp + 160], xmm10",
        "movaps xmmword ptr [rsp + 176], xmm11",
        "movaps xmmword ptr [rsp + 192], xmm12",
        "movaps xmmword ptr [rsp + 208], xmm13",
        "movaps xmmword ptr [rsp + 224], xmm14",
        "movaps xmmword ptr [rsp + 240], xmm15",
        "mov qword ptr [rbx + {fuel}], r15",
        // The Rust side runs on the worker stack, like the fuel slow path.
        "mov rax, qword ptr [rbx + {host_sp}]",
        "sub rax, {red}",
        "and rax, -16",
        "mov rsp, rax",
        "mov rdi, rbx",
        "call {preempted}",
        "mov rsp, rbp",
        "and rsp, -16",
        "sub rsp, 256",
        // Suspend: save this context in exec.guest_sp, resume the worker.
        "lea rdi, [rbx + {guest_sp}]",
        "mov rsi, qword ptr [rbx + {host_sp}]",
        "call {switch}",
        // Resumed: the counter as the resumer left it (see
        // `fuel::begin_async_slice`), then everything else as it was.
        "mov r15, qword ptr [rbx + {fuel}]",
        "movaps xmm0, xmmword ptr [rsp + 0]",
        "movaps xmm1, xmmword ptr [rsp + 16]",
        "movaps xmm2, xmmword ptr [rsp + 32]",
        "movaps xmm3, xmmword ptr [rsp + 48]",
        "movaps xmm4, xmmword ptr [rsp + 64]",
        "movaps xmm5, xmmword ptr [rsp + 80]",
        "movaps xmm6, xmmword ptr [rsp + 96]",
        "movaps xmm7, xmmword ptr [rsp + 112]",
        "movaps xmm8, xmmword ptr [rsp + 128]",
        "movaps xmm9, xmmword ptr [rsp + 144]",
        "movaps xmm10, xmmword ptr [rsp + 160]",
        "movaps xmm11, xmmword ptr [rsp + 176]",
        "movaps xmm12, xmmword ptr [rsp + 192]",
        "movaps xmm13, xmmword ptr [rsp + 208]",
        "movaps xmm14, xmmword ptr [rsp + 224]",
        "movaps xmm15, xmmword ptr [rsp + 240]",
        "mov rsp, rbp",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rax",
        "pop rbx",
        "pop rbp",
        "popfq",
        "lea rsp, [rsp + 8]", // drop exec; lea leaves the flags alone
        "ret",
        host_sp = const offset_of!(VmCtx, host_sp),
        guest_sp = const offset_of!(VmCtx, guest_sp),
        red = const HOST_RED_ZONE,
        preempted = sym crate::fuel::async_preempt_path,
        fuel = const offset_of!(VmCtx, fuel),
        switch = sym switch,
    )
}

/// Bytes after an interrupted pc that `in_counter_window` looks at.
pub const WINDOW_SCAN_BYTES: usize = 96;

/// Whether the thread interrupted at `pc` may be inside a *counter
/// window*: compiled code changes the fuel counter `r15` through a copy,
/// `mov %r15,%rA; add $-k,%rA (or lea -k(%rA),%rB); mov %rB,%r15` (see
/// `fuel_rewrite` in myriad-codegen), three adjacent instructions with no
/// branch or branch target among them, and a thread stopped between the
/// copy and the write back would, once resumed, write the old counter's
/// copy over whatever the runtime put in `r15` meanwhile. Before a
/// builtin call the copy is stored to `exec.fuel` instead (`mov
/// %r15,%rax; mov 0x98(%r12),%rsi; mov %rax,(%rsi); ...; call; mov
/// 0x0(%rbx),%rcx; mov %rcx,%r15`), and a thread stopped before that
/// store would store the old counter over the new one, which the reload
/// after the call then takes (review 15: 30 bytes from the copy to the
/// reload); the scan reaches the reload and calls that a window too
/// (also after the store, where it is harmless: the next slice only
/// keeps its counter).
///
/// Looks at the bytes from `pc` (up to `end`, exclusive, or
/// [`WINDOW_SCAN_BYTES`]) for the first move into `r15` or out of it:
/// a move into it first means `pc` is inside a window; a move out of it
/// first (the next window's copy), or neither, means it is not. The bytes
/// are matched as they come, not decoded: an immediate that looks like
/// such a move can only make a window seem open where none is (the next
/// slice then keeps its counter, unrefreshed) or closed where the real
/// move follows it,
/// and a window is a dozen bytes with no immediate before its write back
/// but the `add`'s, whose bytes (`ff`s or small values) match neither.
///
/// # Safety
///
/// `pc..end` is mapped, readable code.
pub(crate) unsafe fn in_counter_window(pc: usize, end: usize) -> bool {
    let end = end.min(pc.saturating_add(WINDOW_SCAN_BYTES));
    if end < pc + 3 {
        return false;
    }
    // SAFETY: per the contract.
    let code = unsafe { std::slice::from_raw_parts(pc as *const u8, end - pc) };
    for w in code.windows(3) {
        let (rex, op, modrm) = (w[0], w[1], w[2]);
        // Register to register (mod = 11), 64-bit (REX.W).
        if rex & 0xF0 != 0x40 || rex & 0x08 == 0 || modrm & 0xC0 != 0xC0 {
            continue;
        }
        // The modrm `reg` field names r15 (REX.R and reg = 7), or its
        // `rm` field does (REX.B and rm = 7).
        let reg_r15 = rex & 0x04 != 0 && modrm & 0x38 == 0x38;
        let rm_r15 = rex & 0x01 != 0 && modrm & 0x07 == 0x07;
        let (into, out_of) = match op {
            0x89 => (rm_r15, reg_r15), // mov reg -> rm
            0x8B => (reg_r15, rm_r15), // mov rm -> reg
            _ => continue,
        };
        if into && out_of {
            continue; // mov %r15,%r15
        }
        if into {
            return true;
        }
        if out_of {
            return false;
        }
    }
    false
}

/// Rewrite a signal's saved context so that, when the handler returns,
/// the interrupted thread enters [`async_preempt`] as if the instruction
/// at the interrupted pc had been a call of it: push the pc and `exec` on
/// the interrupted stack and point `rip` at the routine. Refuses (returns
/// false, changes nothing) unless the stack pointer is 8-aligned and at
/// or above `exec.stack_limit`, where compiled code always keeps it (every
/// frame is checked against the limit before it is built, and
/// [`ASYNC_PREEMPT_FRAME`] bytes below it lie within the reserve: see
/// `crate::region::STACK_RESERVE`).
///
/// # Safety
///
/// As for [`fault_pc`], with the context writable; the interrupted pc is
/// in compiled code (whose `r15` is the fuel counter) of the green thread
/// of `exec`, which this thread runs.
pub(crate) unsafe fn inject_async_preempt(uc: *mut libc::ucontext_t, exec: *mut VmCtx) -> bool {
    // SAFETY: per the contract; the two words written lie just below the
    // interrupted rsp, which is at or above the running stack's limit, so
    // they and the trampoline's frame are within the guest stack's reserve.
    unsafe {
        let gregs = &mut (*uc).uc_mcontext.gregs;
        let rsp = gregs[libc::REG_RSP as usize] as usize;
        if !rsp.is_multiple_of(8) || rsp < (*exec).stack_limit as usize {
            return false;
        }
        let sp = rsp - 16;
        (sp as *mut usize).write(exec as usize);
        (sp as *mut usize)
            .add(1)
            .write(gregs[libc::REG_RIP as usize] as usize);
        gregs[libc::REG_RSP as usize] = sp as i64;
        gregs[libc::REG_RIP as usize] = async_preempt as *const () as usize as i64;
    }
    true
}

/// `memory_grow(memory_vmctx, exec, delta_pages) -> old pages or -1`.
#[unsafe(naked)]
unsafe extern "C" fn memory_grow(_vmctx: *mut VmCtx, _exec: *mut VmCtx, _delta: u64) -> i64 {
    naked_asm!(
        "lea rcx, [rip + {f}]",
        "jmp {host_call}",
        f = sym crate::builtins::memory::memory_grow_impl,
        host_call = sym host_call,
    )
}

/// `host_import(vmctx, exec, import, values)`: a host function import.
#[unsafe(naked)]
unsafe extern "C" fn host_import() {
    naked_asm!(
        "mov r8, rcx",
        "lea rcx, [rip + {f}]",
        "jmp {host_call}",
        f = sym crate::host::host_import_impl,
        host_call = sym host_call,
    )
}

/// An entry point of a table or segment builtin:
/// `name(vmctx, exec, args) -> i64` runs `$f` through the host-call
/// trampoline. (A macro because each entry point must be a function of its
/// own, with its own address, whose whole body is these two instructions.)
macro_rules! table_builtin_entry {
    ($name:ident, $f:path) => {
        #[unsafe(naked)]
        unsafe extern "C" fn $name() {
            naked_asm!(
                "lea rcx, [rip + {f}]",
                "jmp {host_call}",
                f = sym $f,
                host_call = sym host_call,
            )
        }
    };
}

table_builtin_entry!(table_grow, crate::builtins::table::table_grow_impl);
table_builtin_entry!(table_fill, crate::builtins::table::table_fill_impl);
table_builtin_entry!(table_copy, crate::builtins::table::table_copy_impl);
table_builtin_entry!(table_init, crate::builtins::table::table_init_impl);
table_builtin_entry!(elem_drop, crate::builtins::table::elem_drop_impl);
table_builtin_entry!(memory_init, crate::builtins::table::memory_init_impl);
table_builtin_entry!(data_drop, crate::builtins::table::data_drop_impl);
table_builtin_entry!(memory_fill, crate::builtins::table::memory_fill_impl);
table_builtin_entry!(memory_copy, crate::builtins::table::memory_copy_impl);

/// Address of the host-import builtin (for `vmctx.fn_host_call`).
pub fn host_import_addr() -> usize {
    host_import as *const () as usize
}

/// Addresses of the table and segment builtins, in header order:
/// `table.grow`, `table.fill`, `table.copy`, `table.init`, `elem.drop`,
/// `memory.init`, `data.drop`.
pub fn table_builtin_addrs() -> [usize; 7] {
    [
        table_grow as *const () as usize,
        table_fill as *const () as usize,
        table_copy as *const () as usize,
        table_init as *const () as usize,
        elem_drop as *const () as usize,
        memory_init as *const () as usize,
        data_drop as *const () as usize,
    ]
}

/// Addresses of the `memory.fill` and `memory.copy` builtins.
pub fn memory_builtin_addrs() -> [usize; 2] {
    [
        memory_fill as *const () as usize,
        memory_copy as *const () as usize,
    ]
}

/// Address of the `fuel_exhausted` builtin (for `vmctx.fn_fuel_exhausted`).
pub fn fuel_exhausted_addr() -> usize {
    fuel_exhausted as *const () as usize
}

/// Address of the `memory_grow` builtin (for `vmctx.fn_memory_grow`).
pub fn memory_grow_addr() -> usize {
    memory_grow as *const () as usize
}

/// Address of the generic host-stack trampoline
/// `extern "C" fn(vmctx, exec, arg: u64, f: HostStackFn, arg2: u64) -> u64`.
/// Callable only from guest context (it needs `exec.host_sp`).
pub fn host_stack_call_addr() -> usize {
    host_call as *const () as usize
}

/// Run `f(vmctx, exec, arg, 0)` through the host-stack trampoline.
///
/// # Safety
///
/// Must be called on a guest stack of the green thread owning `exec`,
/// while it runs (so the area below `exec.host_sp` is free).
pub unsafe fn call_on_host_stack(
    vmctx: *mut VmCtx,
    exec: *mut VmCtx,
    arg: u64,
    f: HostStackFn,
) -> u64 {
    // SAFETY: per the caller's contract the worker stack below host_sp is
    // free; the trampoline returns on this stack with callee-saved intact.
    unsafe { host_call(vmctx, exec, arg, f, 0) }
}

/// Call the `memory_grow` builtin the way compiled code does (tests).
///
/// # Safety
///
/// As for [`call_on_host_stack`].
pub unsafe fn call_memory_grow(vmctx: *mut VmCtx, delta_pages: u64) -> i64 {
    // SAFETY: as for call_on_host_stack (the instance runs its own code).
    unsafe { memory_grow(vmctx, vmctx, delta_pages) }
}

/// Call the `fuel_exhausted` builtin the way compiled code does (tests).
///
/// # Safety
///
/// As for [`call_on_host_stack`]; may suspend the caller's context.
pub unsafe fn call_fuel_exhausted(exec: *mut VmCtx) {
    // SAFETY: as for call_on_host_stack.
    unsafe { fuel_exhausted(exec) }
}

// ---- Signal contexts -----------------------------------------------------

/// The faulting instruction's address in a signal's saved context.
///
/// # Safety
///
/// `uc` is the `ucontext_t` the kernel passed to a signal handler.
pub(crate) unsafe fn fault_pc(uc: *const libc::ucontext_t) -> usize {
    // SAFETY: per the contract.
    unsafe { (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] as usize }
}

/// The interrupted thread's `r15`: in compiled code, the fuel counter
/// (ABI 14).
///
/// # Safety
///
/// As for [`fault_pc`].
pub(crate) unsafe fn fault_r15(uc: *const libc::ucontext_t) -> i64 {
    // SAFETY: per the contract.
    unsafe { (*uc).uc_mcontext.gregs[libc::REG_R15 as usize] }
}

/// Set the interrupted thread's `r15` (the fuel counter in compiled code)
/// for when the handler returns.
///
/// # Safety
///
/// As for [`fault_pc`], with the context writable.
pub(crate) unsafe fn set_fault_r15(uc: *mut libc::ucontext_t, value: i64) {
    // SAFETY: per the contract.
    unsafe { (*uc).uc_mcontext.gregs[libc::REG_R15 as usize] = value }
}

/// Make the interrupted thread, when the handler returns, continue in the
/// abandon routine for `vm`: it switches back to the worker whose context
/// is saved at `vm.host_sp`, dropping the faulting guest context.
///
/// # Safety
///
/// As for [`fault_pc`]; `vm` is the live vmctx of the guest that faulted,
/// whose `host_sp` holds the worker's saved context.
pub(crate) unsafe fn resume_in_abandon(uc: *mut libc::ucontext_t, vm: *mut VmCtx) {
    // SAFETY: per the contract.
    unsafe {
        let gregs = &mut (*uc).uc_mcontext.gregs;
        gregs[libc::REG_RIP as usize] = abandon_addr() as i64;
        gregs[libc::REG_RDI as usize] = vm as i64;
        // abandon loads rsp from host_sp itself; point rsp at a valid,
        // aligned spot on the worker stack meanwhile.
        gregs[libc::REG_RSP as usize] = (((*vm).host_sp - HOST_RED_ZONE) & !15) as i64;
    }
}

/// Issue prefetches of the cache lines at `addr` (a hint; never faults).
#[inline(always)]
pub fn prefetch(addr: *const u8) {
    // SAFETY: prefetch is a hint and never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr.cast());
    }
}
