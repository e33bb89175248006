//! Shared helpers: hand-made "compiled code" (Rust extern "C" functions and
//! a few assembly routines) and metadata builders, so the runtime can be
//! tested without the compiler.
#![allow(dead_code)]

use myriad_codegen::abi::{
    Export, ExportKind, FuncType, HelperCode, MemoryDecl, Metadata, TrapKind, TrapSite, ValType,
    ABI_VERSION,
};
use myriad_runtime::vmctx::VmCtx;
use myriad_runtime::{Module, Region, RegionConfig};
use std::sync::Arc;

core::arch::global_asm!(
    ".text",
    ".globl t_ud2",
    "t_ud2:",
    "nop",
    ".globl t_ud2_site",
    "t_ud2_site:",
    "ud2",
    ".globl t_segv",
    "t_segv:",
    "xor eax, eax",
    ".globl t_segv_site",
    "t_segv_site:",
    "mov rax, qword ptr [rax]",
    "ret",
    ".globl t_fpe",
    "t_fpe:",
    "xor ecx, ecx",
    "xor eax, eax",
    "cdq",
    ".globl t_fpe_site",
    "t_fpe_site:",
    "idiv ecx",
    "ret",
    // Load the byte at heap_base + heap_len (one past the end).
    ".globl t_oob",
    "t_oob:",
    "mov rax, qword ptr [rdi + 16]",
    "add rax, qword ptr [rdi + 24]",
    ".globl t_oob_site",
    "t_oob_site:",
    "movzx eax, byte ptr [rax]",
    "ret",
    // A fault that is in no trap table.
    ".globl t_stray",
    "t_stray:",
    "ud2",
);

extern "C" {
    pub fn t_ud2();
    pub fn t_ud2_site();
    pub fn t_segv();
    pub fn t_segv_site();
    pub fn t_fpe();
    pub fn t_fpe_site();
    pub fn t_oob();
    pub fn t_oob_site();
    pub fn t_stray();
}

pub fn addr(f: unsafe extern "C" fn()) -> usize {
    f as *const () as usize
}

/// Guest: values[0] = values[0] + values[1] (i64).
pub extern "C" fn guest_add(_vm: *mut VmCtx, _exec: *mut VmCtx, values: *mut u64) {
    // SAFETY: the runtime passes the vmctx values array.
    unsafe { *values = (*values).wrapping_add(*values.add(1)) }
}

/// Guest: spin `values[0]` iterations, each a preemption point like a
/// compiled loop header; result = iterations done. It keeps the counter
/// in `vm.fuel` and hands it to the `fuel_exhausted` trampoline in `r15`,
/// where compiled code keeps it (ABI 14), taking it back from there.
pub extern "C" fn guest_spin(vm: *mut VmCtx, _exec: *mut VmCtx, values: *mut u64) {
    // SAFETY: vm is our live vmctx; the builtin pointer follows the ABI
    // (it preserves every register but r15, which it sets to the counter).
    unsafe {
        let n = *values;
        let mut i = 0u64;
        while i < n {
            let mut f = std::ptr::read_volatile(&(*vm).fuel) - 1;
            std::ptr::write_volatile(&mut (*vm).fuel, f);
            if f < 0 {
                core::arch::asm!(
                    "call {fe}",
                    fe = in(reg) (*vm).fn_fuel_exhausted,
                    in("rdi") vm,
                    inout("r15") f,
                    clobber_abi("C"),
                );
                std::ptr::write_volatile(&mut (*vm).fuel, f);
            }
            i += 1;
        }
        *values = i;
    }
}

/// Guest: write values[1] to heap byte values[0] (i64 offset), result 0.
pub extern "C" fn guest_poke(vm: *mut VmCtx, _exec: *mut VmCtx, values: *mut u64) {
    // SAFETY: the test keeps the offset inside the heap.
    unsafe {
        let off = *values as usize;
        *(*vm).heap_base.add(off) = *values.add(1) as u8;
        *values = 0;
    }
}

/// Guest: memory.grow(values[0]) through the builtin; results: old pages,
/// new heap_len.
pub extern "C" fn guest_grow(vm: *mut VmCtx, _exec: *mut VmCtx, values: *mut u64) {
    // SAFETY: builtin pointer follows the ABI; vm is live.
    unsafe {
        let g: extern "C" fn(*mut VmCtx, *mut VmCtx, u64) -> i64 =
            std::mem::transmute((*vm).fn_memory_grow);
        let old = g(vm, vm, *values);
        *values = old as u64;
        *values.add(1) = (*vm).heap_len;
    }
}

#[inline(always)]
pub fn rsp() -> usize {
    let sp: usize;
    // SAFETY: reads the stack pointer only.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    sp
}

/// Returns the stack pointer its caller had just before the `call`: taken
/// at entry of a naked function, so no prologue of any build profile moves
/// it. The ABI requires it to be 16-byte aligned.
#[unsafe(naked)]
extern "C" fn record_sp(_vm: *mut VmCtx, _exec: *mut VmCtx, _arg: u64, _arg2: u64) -> u64 {
    core::arch::naked_asm!("lea rax, [rsp + 8]", "ret")
}

/// Guest: results = (sp inside a host-stack call, own sp).
pub extern "C" fn guest_host_sp(vm: *mut VmCtx, _exec: *mut VmCtx, values: *mut u64) {
    // SAFETY: we run as a guest of `vm`.
    unsafe {
        let host = myriad_runtime::arch::call_on_host_stack(vm, vm, 0, record_sp);
        *values = host;
        *values.add(1) = rsp() as u64;
    }
}

pub fn ft(params: &[ValType], results: &[ValType]) -> FuncType {
    FuncType {
        params: params.to_vec(),
        results: results.to_vec(),
    }
}

/// Metadata for a module whose functions each have their own type and are
/// each exported under the given names.
pub fn metadata(
    funcs: &[(&str, FuncType)],
    memory: Option<MemoryDecl>,
    traps: Vec<TrapSite>,
) -> Metadata {
    Metadata {
        abi_version: ABI_VERSION,
        fingerprint: 0x5eed,
        target: myriad_codegen::abi::target::HOST_TARGET.into(),
        cpu_features: vec![],
        source_key: [0; 32],
        guard_bytes: 0,
        heap_reservation: 0,
        requested_guard_bytes: 0,
        requested_heap_reservation: 0,
        types: funcs.iter().map(|(_, t)| t.clone()).collect(),
        imports: vec![],
        func_types: (0..funcs.len() as u32).collect(),
        memory,
        globals: vec![],
        data: vec![],
        tables: vec![],
        elems: vec![],
        tags: vec![],
        global_refs: vec![],
        table_refs: vec![],
        func_refs: false,
        exports: funcs
            .iter()
            .enumerate()
            .map(|(i, (n, _))| Export {
                name: n.to_string(),
                kind: ExportKind::Func,
                index: i as u32,
            })
            .collect(),
        start: None,
        traps,
        wrappers: vec![HelperCode::default(); funcs.len()],
        stubs: vec![],
    }
}

pub fn mem_pages(min: u64, max: Option<u64>, log2: u8) -> Option<MemoryDecl> {
    Some(MemoryDecl {
        min_pages: min,
        max_pages: max,
        page_size_log2: log2,
    })
}

/// A module of raw functions: each entry is (export name, type, address),
/// used both as the function and as its own array-call wrapper.
pub fn raw_module(
    funcs: &[(&str, FuncType, usize)],
    memory: Option<MemoryDecl>,
    traps: Vec<TrapSite>,
) -> Arc<Module> {
    let md = metadata(
        &funcs
            .iter()
            .map(|(n, t, _)| (*n, t.clone()))
            .collect::<Vec<_>>(),
        memory,
        traps,
    );
    let addrs: Vec<usize> = funcs.iter().map(|(_, _, a)| *a).collect();
    // SAFETY: the addresses are functions following the array-call ABI.
    Arc::new(unsafe { Module::from_raw_parts(md, addrs.clone(), addrs) }.expect("raw module"))
}

/// Trap site for the function at index `func` whose start is `start` and
/// trapping instruction is at `site`.
pub fn site(func: u32, start: usize, site: usize, kind: TrapKind) -> TrapSite {
    TrapSite {
        func_index: func,
        offset: (site - start) as u32,
        kind,
    }
}

/// The standard module: guests above plus the trapping routines.
pub fn test_module() -> Arc<Module> {
    use ValType::*;
    let traps = vec![
        site(4, addr(t_ud2), addr(t_ud2_site), TrapKind::Unreachable),
        site(
            5,
            addr(t_segv),
            addr(t_segv_site),
            TrapKind::HeapOutOfBounds,
        ),
        site(
            6,
            addr(t_fpe),
            addr(t_fpe_site),
            TrapKind::IntegerDivisionByZero,
        ),
        site(7, addr(t_oob), addr(t_oob_site), TrapKind::HeapOutOfBounds),
    ];
    raw_module(
        &[
            (
                "add",
                ft(&[I64, I64], &[I64]),
                guest_add as *const () as usize,
            ),
            ("spin", ft(&[I64], &[I64]), guest_spin as *const () as usize),
            (
                "poke",
                ft(&[I64, I64], &[I64]),
                guest_poke as *const () as usize,
            ),
            (
                "grow",
                ft(&[I64], &[I64, I64]),
                guest_grow as *const () as usize,
            ),
            ("ud2", ft(&[], &[]), addr(t_ud2)),
            ("segv", ft(&[], &[]), addr(t_segv)),
            ("fpe", ft(&[], &[]), addr(t_fpe)),
            ("oob", ft(&[], &[I32]), addr(t_oob)),
            ("stray", ft(&[], &[]), addr(t_stray)),
            (
                "host_sp",
                ft(&[], &[I64, I64]),
                guest_host_sp as *const () as usize,
            ),
        ],
        // 4 pages of 4 KiB = 16 KiB, growable to 8 pages.
        mem_pages(4, Some(8), 12),
        traps,
    )
}

/// A region for Rust-written guests: their debug-build frames need room.
pub fn test_region(slots: usize) -> Arc<Region> {
    Arc::new(
        Region::new(RegionConfig {
            slots,
            stack_size: 64 * 1024,
            heap_capacity: 64 * 1024,
            guard_size: 4096,
            guard_mode: false,
            heap_reservation: 0,
        })
        .expect("region"),
    )
}
