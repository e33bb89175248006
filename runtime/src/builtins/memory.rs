//! The `memory.grow` builtin, and the bookkeeping of an instance's memory
//! limit that growth of memories and tables shares: what the embedder
//! holds for the instance ([`crate::MemoryAccount`]), and publishing the
//! instance's own use there.

use crate::account::MemoryAccount;
use crate::vmctx::{status, VmCtx};

/// `memory.grow` on the worker stack: grow `heap_len` by `delta_pages`
/// memory pages within `vmctx.heap_capacity`; returns the old size in
/// pages or -1. New bytes are already zero (teardown zeroes what a guest
/// dirtied); in guard mode the newly valid pages are made accessible.
/// Growing past the memory limit (`heap_limit`, which counts the
/// instance's table storage too) ends the running green thread with
/// `Limit::Memory`.
pub(crate) extern "C" fn memory_grow_impl(
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
    let shift = u32::from(vm.page_size_log2);
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
    let external = unsafe { vm_external(vmctx) };
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
        let t0 = crate::fuel::rdtsc();
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
        // The system call costs microseconds the guest's fuel rate does
        // not know of: a loop of one-page grows after cheap units held a
        // 20 µs slice for 5–18 ms before this charge.
        // SAFETY: exec is the running green thread's live context.
        unsafe {
            if crate::fuel::time_sliced(exec) {
                crate::fuel::charge_time(exec, crate::fuel::rdtsc().saturating_sub(t0));
            }
        }
        if rc != 0 {
            return -1;
        }
        vm.heap_open = new_open;
    }
    vm.heap_len = new_len;
    // SAFETY: as above; the table state is not borrowed here.
    unsafe { vm_publish(vmctx) };
    old_pages as i64
}

/// Bytes the embedder holds for the instance whose vmctx is `vm` (0
/// without an account).
///
/// # Safety
///
/// `vm` is a live vmctx whose `account` is null or a live account.
pub(crate) unsafe fn vm_external(vm: *const crate::vmctx::VmCtx) -> u64 {
    // SAFETY: per the contract.
    unsafe { (*vm).account.as_ref() }.map_or(0, MemoryAccount::external)
}

/// Publish the limit and own use (memory and tables) of the instance
/// whose vmctx is `vm` to its account, if it has one.
///
/// # Safety
///
/// As for [`vm_external`], and `vm`'s table state is not borrowed
/// mutably elsewhere.
pub(crate) unsafe fn vm_publish(vm: *const crate::vmctx::VmCtx) {
    // SAFETY: per the contract.
    unsafe {
        if let Some(account) = (*vm).account.as_ref() {
            account.set_limit((*vm).heap_limit);
            account.set_own(
                crate::table::vm_own_heap_len(vm).saturating_add(crate::table::vm_table_bytes(vm)),
            );
        }
    }
}
