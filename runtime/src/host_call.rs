//! Builtins that compiled code calls through the vmctx function pointers,
//! and the trampolines that run them on the worker's stack.
//!
//! Compiled code calls a builtin on its small instance stack. Host (Rust)
//! code must never run there, so each builtin entry point is an assembly
//! trampoline that moves `rsp` to just below `exec.host_sp` (the worker's
//! context saved by the switch into the guest; everything below it is free
//! while the guest runs), skips a red zone, aligns to 16 bytes, calls the
//! Rust implementation, and comes back to the instance stack.
//!
//! * `fuel_exhausted(exec)`: the Rust slow path ([`crate::fuel`]) refills
//!   fuel or decides to yield; on yield the trampoline — back on the guest
//!   stack — saves the guest context with a switch to `exec.host_sp` and,
//!   when resumed, returns to the guest (which reloads fuel from exec).
//! * Every other builtin goes through the generic `myriad_rt_host_call`
//!   trampoline: `f(vmctx, exec, arg, arg2) -> u64` on the worker stack.
//!   If `f` left `exec.status` other than `RUNNING` (a host function parked
//!   or yielded, a trap, an exit, a limit), the trampoline suspends the
//!   green thread right there; if it is resumed (park and yield only) it
//!   returns `f`'s result to the guest, or, when `f` left a repeated call
//!   in `exec.again_fn` (`HostAction::Continue`), calls it again first
//!   with the arguments it left there, as often as it asks.
//!   - `memory_grow(memory_vmctx, exec, delta_pages) -> old pages or -1`;
//!   - `table_grow/fill/copy/init`, `elem_drop`, `memory_init`,
//!     `data_drop(vmctx, exec, args) -> i64`: see [`crate::table`];
//!   - `host_call(vmctx, exec, import, values)`: see [`crate::host`].

use crate::fuel;
use crate::vmctx::{status, VmCtx};
use std::mem::offset_of;

/// Bytes skipped below `host_sp` before host code uses the worker stack.
pub const HOST_RED_ZONE: usize = 256;

core::arch::global_asm!(
    ".text",
    // ---- myriad_rt_host_call(vmctx rdi, exec rsi, arg rdx, f rcx, arg2 r8) -> rax
    // Calls f(vmctx, exec, arg, arg2) on the worker stack, then suspends
    // the green thread if f changed exec.status.
    ".p2align 4",
    ".globl myriad_rt_host_call",
    ".hidden myriad_rt_host_call",
    ".type myriad_rt_host_call,@function",
    "myriad_rt_host_call:",
    "push rbp",
    "push rbx",
    "3:",
    "mov rbp, rsp",
    "mov rbx, rsi",            // exec
    "mov rax, qword ptr [rsi + {host_sp}]",
    "sub rax, {red}",
    "and rax, -16",
    "mov rsp, rax",
    "mov rax, rcx",
    "mov rcx, r8",
    "call rax",
    "mov rsp, rbp",
    "cmp dword ptr [rbx + {status}], {running}",
    "jne 2f",
    "pop rbx",
    "pop rbp",
    "ret",
    "2:",
    // Suspend: save the guest context in exec.guest_sp, resume the worker.
    // Two pushes keep rsp's alignment and save f's result.
    "push rax",
    "push rax",
    "lea rdi, [rbx + {guest_sp}]",
    "mov rsi, qword ptr [rbx + {host_sp}]",
    "call myriad_rt_switch",
    // Resumed (parked or yielded): return f's result to the guest, unless
    // f asked to be called again (exec.again_fn, HostAction::Continue).
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
    ".size myriad_rt_host_call, . - myriad_rt_host_call",
    // ---- myriad_rt_memory_grow(memory_vmctx, exec, delta_pages) -> i64
    ".p2align 4",
    ".globl myriad_rt_memory_grow",
    ".hidden myriad_rt_memory_grow",
    ".type myriad_rt_memory_grow,@function",
    "myriad_rt_memory_grow:",
    "lea rcx, [rip + {grow}]",
    "jmp myriad_rt_host_call",
    ".size myriad_rt_memory_grow, . - myriad_rt_memory_grow",
    // ---- myriad_rt_host_import(vmctx, exec, import, values)
    ".p2align 4",
    ".globl myriad_rt_host_import",
    ".hidden myriad_rt_host_import",
    ".type myriad_rt_host_import,@function",
    "myriad_rt_host_import:",
    "mov r8, rcx",
    "lea rcx, [rip + {host_import}]",
    "jmp myriad_rt_host_call",
    ".size myriad_rt_host_import, . - myriad_rt_host_import",
    // ---- table builtins (vmctx, exec, args: *const u64) -> i64
    ".p2align 4",
    ".globl myriad_rt_table_grow",
    ".hidden myriad_rt_table_grow",
    ".type myriad_rt_table_grow,@function",
    "myriad_rt_table_grow:",
    "lea rcx, [rip + {table_grow}]",
    "jmp myriad_rt_host_call",
    ".size myriad_rt_table_grow, . - myriad_rt_table_grow",
    ".p2align 4",
    ".globl myriad_rt_table_fill",
    ".hidden myriad_rt_table_fill",
    ".type myriad_rt_table_fill,@function",
    "myriad_rt_table_fill:",
    "lea rcx, [rip + {table_fill}]",
    "jmp myriad_rt_host_call",
    ".size myriad_rt_table_fill, . - myriad_rt_table_fill",
    ".p2align 4",
    ".globl myriad_rt_table_copy",
    ".hidden myriad_rt_table_copy",
    ".type myriad_rt_table_copy,@function",
    "myriad_rt_table_copy:",
    "lea rcx, [rip + {table_copy}]",
    "jmp myriad_rt_host_call",
    ".size myriad_rt_table_copy, . - myriad_rt_table_copy",
    ".p2align 4",
    ".globl myriad_rt_table_init",
    ".hidden myriad_rt_table_init",
    ".type myriad_rt_table_init,@function",
    "myriad_rt_table_init:",
    "lea rcx, [rip + {table_init}]",
    "jmp myriad_rt_host_call",
    ".size myriad_rt_table_init, . - myriad_rt_table_init",
    ".p2align 4",
    ".globl myriad_rt_elem_drop",
    ".hidden myriad_rt_elem_drop",
    ".type myriad_rt_elem_drop,@function",
    "myriad_rt_elem_drop:",
    "lea rcx, [rip + {elem_drop}]",
    "jmp myriad_rt_host_call",
    ".size myriad_rt_elem_drop, . - myriad_rt_elem_drop",
    ".p2align 4",
    ".globl myriad_rt_memory_init",
    ".hidden myriad_rt_memory_init",
    ".type myriad_rt_memory_init,@function",
    "myriad_rt_memory_init:",
    "lea rcx, [rip + {memory_init}]",
    "jmp myriad_rt_host_call",
    ".size myriad_rt_memory_init, . - myriad_rt_memory_init",
    ".p2align 4",
    ".globl myriad_rt_data_drop",
    ".hidden myriad_rt_data_drop",
    ".type myriad_rt_data_drop,@function",
    "myriad_rt_data_drop:",
    "lea rcx, [rip + {data_drop}]",
    "jmp myriad_rt_host_call",
    ".size myriad_rt_data_drop, . - myriad_rt_data_drop",
    // ---- myriad_rt_fuel_exhausted(exec)
    ".p2align 4",
    ".globl myriad_rt_fuel_exhausted",
    ".hidden myriad_rt_fuel_exhausted",
    ".type myriad_rt_fuel_exhausted,@function",
    "myriad_rt_fuel_exhausted:",
    "push rbp",
    "push rbx",
    "mov rbp, rsp",            // guest sp
    "mov rbx, rdi",            // exec
    "mov rax, qword ptr [rdi + {host_sp}]",
    "sub rax, {red}",
    "and rax, -16",
    "mov rsp, rax",
    "call {slow}",             // eax = 0: refilled, continue; else yield
    "mov rsp, rbp",
    "test eax, eax",
    "jnz 2f",
    "pop rbx",
    "pop rbp",
    "ret",
    "2:",
    // Yield: save the guest context in exec.guest_sp, resume the worker.
    "lea rdi, [rbx + {guest_sp}]",
    "mov rsi, qword ptr [rbx + {host_sp}]",
    "call myriad_rt_switch",
    // Resumed by the worker: back to the guest, which reloads its fuel.
    "pop rbx",
    "pop rbp",
    "ret",
    ".size myriad_rt_fuel_exhausted, . - myriad_rt_fuel_exhausted",
    host_sp = const offset_of!(VmCtx, host_sp),
    guest_sp = const offset_of!(VmCtx, guest_sp),
    again_fn = const offset_of!(VmCtx, again_fn),
    again_vmctx = const offset_of!(VmCtx, again_vmctx),
    again_arg = const offset_of!(VmCtx, again_arg),
    again_arg2 = const offset_of!(VmCtx, again_arg2),
    status = const offset_of!(VmCtx, status),
    running = const status::RUNNING,
    red = const HOST_RED_ZONE,
    grow = sym memory_grow_impl,
    host_import = sym crate::host::host_import_impl,
    table_grow = sym crate::table::table_grow_impl,
    table_fill = sym crate::table::table_fill_impl,
    table_copy = sym crate::table::table_copy_impl,
    table_init = sym crate::table::table_init_impl,
    elem_drop = sym crate::table::elem_drop_impl,
    memory_init = sym crate::table::memory_init_impl,
    data_drop = sym crate::table::data_drop_impl,

    slow = sym fuel::fuel_slow_path,
);

/// The signature of a function run by the host-call trampoline.
pub type HostStackFn = extern "C" fn(*mut VmCtx, *mut VmCtx, u64, u64) -> u64;

extern "C" {
    fn myriad_rt_host_call(
        vmctx: *mut VmCtx,
        exec: *mut VmCtx,
        arg: u64,
        f: HostStackFn,
        arg2: u64,
    ) -> u64;
    fn myriad_rt_memory_grow(vmctx: *mut VmCtx, exec: *mut VmCtx, delta_pages: u64) -> i64;
    fn myriad_rt_fuel_exhausted(exec: *mut VmCtx);
    fn myriad_rt_host_import();
    fn myriad_rt_table_grow();
    fn myriad_rt_table_fill();
    fn myriad_rt_table_copy();
    fn myriad_rt_table_init();
    fn myriad_rt_elem_drop();
    fn myriad_rt_memory_init();
    fn myriad_rt_data_drop();
}

/// Address of the host-import builtin (for `vmctx.fn_host_call`).
pub fn host_import_addr() -> usize {
    myriad_rt_host_import as *const () as usize
}

/// Addresses of the table and segment builtins, in header order:
/// `table.grow`, `table.fill`, `table.copy`, `table.init`, `elem.drop`,
/// `memory.init`, `data.drop`.
pub fn table_builtin_addrs() -> [usize; 7] {
    [
        myriad_rt_table_grow as *const () as usize,
        myriad_rt_table_fill as *const () as usize,
        myriad_rt_table_copy as *const () as usize,
        myriad_rt_table_init as *const () as usize,
        myriad_rt_elem_drop as *const () as usize,
        myriad_rt_memory_init as *const () as usize,
        myriad_rt_data_drop as *const () as usize,
    ]
}

/// Address of the `fuel_exhausted` builtin (for `vmctx.fn_fuel_exhausted`).
pub fn fuel_exhausted_addr() -> usize {
    myriad_rt_fuel_exhausted as *const () as usize
}

/// Address of the `memory_grow` builtin (for `vmctx.fn_memory_grow`).
pub fn memory_grow_addr() -> usize {
    myriad_rt_memory_grow as *const () as usize
}

/// Address of the generic host-stack trampoline
/// `extern "C" fn(vmctx, exec, arg: u64, f: HostStackFn, arg2: u64) -> u64`.
/// Callable only from guest context (it needs `exec.host_sp`).
pub fn host_stack_call_addr() -> usize {
    myriad_rt_host_call as *const () as usize
}

/// `memory.grow` on the worker stack: grow `heap_len` by `delta_pages`
/// memory pages within `vmctx.heap_capacity`; returns the old size in
/// pages or -1. New bytes are already zero (teardown zeroes what a guest
/// dirtied); in guard mode the newly valid pages are made accessible.
/// Growing past the memory limit (`heap_limit`, which counts the
/// instance's table storage too) ends the running green thread with
/// `Limit::Memory`.
extern "C" fn memory_grow_impl(
    vmctx: *mut VmCtx,
    exec: *mut VmCtx,
    delta_pages: u64,
    _: u64,
) -> u64 {
    memory_grow(vmctx, exec, delta_pages) as u64
}

fn memory_grow(vmctx: *mut VmCtx, exec: *mut VmCtx, delta_pages: u64) -> i64 {
    // SAFETY: compiled code passes the live vmctx defining the memory; we
    // are on the worker stack and nothing else touches it while the guest
    // runs (instances linked by imports run on one green thread at a time).
    let vm = unsafe { &mut *vmctx };
    let shift = vm.page_size_log2;
    let old_len = vm.heap_len;
    let old_pages = old_len >> shift;
    let Some(delta_bytes) = delta_pages
        .checked_shl(shift)
        .filter(|b| b >> shift == delta_pages)
    else {
        return -1;
    };
    let Some(new_len) = old_len.checked_add(delta_bytes) else {
        return -1;
    };
    // A grow the memory itself refuses (past its maximum or the slot)
    // fails as the spec says, whatever the limit.
    if new_len > vm.heap_capacity {
        return -1;
    }
    // The limit covers the instance's tables too.
    let table_bytes = if vm.heap_limit == u64::MAX {
        0
    } else {
        // SAFETY: the table state is the instance's own, not borrowed
        // while this runs.
        unsafe { crate::table::vm_table_bytes(vmctx) }
    };
    // SAFETY: vm's account is null or kept alive by its core.
    let external = unsafe { crate::account::vm_external(vmctx) };
    if new_len.saturating_add(table_bytes).saturating_add(external) > vm.heap_limit {
        // SAFETY: exec is the running green thread's live context.
        let ex = unsafe { &mut *exec };
        ex.status = status::LIMITED;
        ex.trap_kind = crate::Limit::Memory as u32;
        return -1;
    }
    if vm.guard_mode != 0 && new_len > vm.heap_open {
        let page = crate::region::page_size() as u64;
        let new_open = new_len.div_ceil(page) * page;
        // SAFETY: [heap_base + heap_open, heap_base + new_open) lies within
        // this slot's heap capacity (new_len <= heap_capacity, which the
        // region rounds to pages), so only this instance's pages change.
        let rc = unsafe {
            libc::mprotect(
                vm.heap_base.add(vm.heap_open as usize).cast(),
                (new_open - vm.heap_open) as usize,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if rc != 0 {
            return -1;
        }
        vm.heap_open = new_open;
    }
    vm.heap_len = new_len;
    // SAFETY: as above; the table state is not borrowed here.
    unsafe { crate::account::vm_publish(vmctx) };
    old_pages as i64
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
    unsafe { myriad_rt_host_call(vmctx, exec, arg, f, 0) }
}

/// Call the `memory_grow` builtin the way compiled code does (tests).
///
/// # Safety
///
/// As for [`call_on_host_stack`].
pub unsafe fn call_memory_grow(vmctx: *mut VmCtx, delta_pages: u64) -> i64 {
    // SAFETY: as for call_on_host_stack (the instance runs its own code).
    unsafe { myriad_rt_memory_grow(vmctx, vmctx, delta_pages) }
}

/// Call the `fuel_exhausted` builtin the way compiled code does (tests).
///
/// # Safety
///
/// As for [`call_on_host_stack`]; may suspend the caller's context.
pub unsafe fn call_fuel_exhausted(exec: *mut VmCtx) {
    // SAFETY: as for call_on_host_stack.
    unsafe { myriad_rt_fuel_exhausted(exec) }
}
