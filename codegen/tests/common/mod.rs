//! Test harness: compile WAT, load the shared object, and call exports
//! directly with a fake vmctx.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use myriad_codegen::abi::{self, vmctx, Metadata, ValType};
use myriad_codegen::{compile, CompileConfig};

/// Runtime-private vmctx bytes used by the fake builtins below.
const PRIV_PAGE_LOG2: usize = 256;
const PRIV_HEAP_CAP: usize = 264;
const PRIV_FUEL_CALLS: usize = 272;
const PRIV_REFILL: usize = 280;

/// Compile WAT text with `config`.
pub fn build(wat: &str, config: &CompileConfig) -> Vec<u8> {
    let wasm = wat::parse_str(wat).expect("valid WAT");
    compile(&wasm, config).unwrap_or_else(|e| panic!("compile failed: {e}"))
}

/// The metadata blob of an artifact.
pub fn metadata(so: &[u8]) -> Metadata {
    let at = abi::find_marker(so, &abi::METADATA_MARKER).expect("one metadata marker");
    let len_at = at + abi::METADATA_MARKER.len();
    let len = u32::from_le_bytes(so[len_at..len_at + 4].try_into().unwrap()) as usize;
    Metadata::decode(&so[len_at + 4..len_at + 4 + len]).expect("metadata decodes")
}

/// The harness's `fuel_exhausted` builtin as compiled code calls it: with
/// the `preserve_all` convention, so every caller-saved register (the nine
/// general-purpose ones and `xmm0`..`xmm15`) is saved around the Rust
/// function, as the runtime's trampoline does; like it, the entry stores
/// the fuel register (`r15`) to the vmctx and reloads it on the way out.
#[unsafe(naked)]
unsafe extern "C" fn fuel_exhausted_entry(_vmctx: *mut u8) {
    core::arch::naked_asm!(
        // rsp = 16n + 8 at entry; nine pushes make it 16-aligned.
        "mov qword ptr [rdi + {fuel}], r15",
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
        "movaps [rsp + 0], xmm0",
        "movaps [rsp + 16], xmm1",
        "movaps [rsp + 32], xmm2",
        "movaps [rsp + 48], xmm3",
        "movaps [rsp + 64], xmm4",
        "movaps [rsp + 80], xmm5",
        "movaps [rsp + 96], xmm6",
        "movaps [rsp + 112], xmm7",
        "movaps [rsp + 128], xmm8",
        "movaps [rsp + 144], xmm9",
        "movaps [rsp + 160], xmm10",
        "movaps [rsp + 176], xmm11",
        "movaps [rsp + 192], xmm12",
        "movaps [rsp + 208], xmm13",
        "movaps [rsp + 224], xmm14",
        "movaps [rsp + 240], xmm15",
        "call {f}",
        "movaps xmm0, [rsp + 0]",
        "movaps xmm1, [rsp + 16]",
        "movaps xmm2, [rsp + 32]",
        "movaps xmm3, [rsp + 48]",
        "movaps xmm4, [rsp + 64]",
        "movaps xmm5, [rsp + 80]",
        "movaps xmm6, [rsp + 96]",
        "movaps xmm7, [rsp + 112]",
        "movaps xmm8, [rsp + 128]",
        "movaps xmm9, [rsp + 144]",
        "movaps xmm10, [rsp + 160]",
        "movaps xmm11, [rsp + 176]",
        "movaps xmm12, [rsp + 192]",
        "movaps xmm13, [rsp + 208]",
        "movaps xmm14, [rsp + 224]",
        "movaps xmm15, [rsp + 240]",
        "add rsp, 256",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rdi",
        "mov r15, qword ptr [rdi + {fuel}]",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rax",
        "ret",
        f = sym fuel_exhausted,
        fuel = const vmctx::FUEL,
    )
}

unsafe extern "C" fn fuel_exhausted(vmctx: *mut u8) {
    // SAFETY: compiled code passes the harness's vmctx, whose private
    // counters lie at these offsets.
    unsafe {
        let calls = vmctx.add(PRIV_FUEL_CALLS) as *mut u64;
        *calls += 1;
        let refill = *(vmctx.add(PRIV_REFILL) as *const i64);
        *(vmctx.add(vmctx::FUEL as usize) as *mut i64) = refill;
    }
}

unsafe extern "C" fn memory_grow(vmctx: *mut u8, _exec: *mut u8, delta: u64) -> i64 {
    // SAFETY: as for fuel_exhausted; the heap fields describe the
    // harness's own heap buffer.
    unsafe {
        let log2 = *(vmctx.add(PRIV_PAGE_LOG2) as *const u64);
        let cap = *(vmctx.add(PRIV_HEAP_CAP) as *const u64);
        let len = vmctx.add(vmctx::HEAP_LEN as usize) as *mut u64;
        let old = *len;
        let Some(new) = delta
            .checked_shl(log2 as u32)
            .filter(|d| d >> log2 == delta)
            .and_then(|d| old.checked_add(d))
        else {
            return -1;
        };
        if new > cap {
            return -1;
        }
        *len = new;
        (old >> log2) as i64
    }
}

/// The harness's `memory.fill`/`memory.copy` builtins: the whole operation
/// at once (no chunks), `BULK_TRAP` when out of bounds.
unsafe extern "C" fn memory_fill(vmctx: *mut u8, _exec: *mut u8, args: *const u64) -> i64 {
    // SAFETY: as for memory_grow; `args` is the compiled code's 3-value
    // buffer.
    unsafe {
        let [d, v, n] = *(args as *const [u64; 3]);
        let base = *(vmctx.add(vmctx::HEAP_BASE as usize) as *const u64) as *mut u8;
        let len = *(vmctx.add(vmctx::HEAP_LEN as usize) as *const u64);
        if d.checked_add(n).is_none_or(|e| e > len) {
            return abi::BULK_TRAP;
        }
        std::ptr::write_bytes(base.add(d as usize), v as u8, n as usize);
        abi::BULK_DONE
    }
}

/// See [`memory_fill`].
unsafe extern "C" fn memory_copy(vmctx: *mut u8, _exec: *mut u8, args: *const u64) -> i64 {
    // SAFETY: as for memory_fill.
    unsafe {
        let [d, s, n] = *(args as *const [u64; 3]);
        let base = *(vmctx.add(vmctx::HEAP_BASE as usize) as *const u64) as *mut u8;
        let len = *(vmctx.add(vmctx::HEAP_LEN as usize) as *const u64);
        if d.checked_add(n).is_none_or(|e| e > len) || s.checked_add(n).is_none_or(|e| e > len) {
            return abi::BULK_TRAP;
        }
        std::ptr::copy(base.add(s as usize), base.add(d as usize), n as usize);
        abi::BULK_DONE
    }
}

/// A loaded artifact with one fake instance.
pub struct Instance {
    pub meta: Metadata,
    lib: libloading::Library,
    vmctx: Vec<u128>,
    heap: Vec<u8>,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Instance {
    /// Compile `wat` and instantiate it with default settings.
    pub fn new(wat: &str) -> Instance {
        Self::with_config(wat, &CompileConfig::default())
    }

    /// Compile `wat` with `config` and instantiate it.
    pub fn with_config(wat: &str, config: &CompileConfig) -> Instance {
        Self::load(&build(wat, config))
    }

    /// Load an artifact and set up a fake vmctx and heap.
    pub fn load(so: &[u8]) -> Instance {
        let meta = metadata(so);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path: PathBuf =
            std::env::temp_dir().join(format!("myriad-test-{}-{n}.so", std::process::id()));
        std::fs::write(&path, so).unwrap();
        // SAFETY: an artifact the compiler just produced (no initialisers).
        let lib = unsafe { libloading::Library::new(&path) }.expect("dlopen artifact");
        std::fs::remove_file(&path).unwrap();

        let size = meta.vmctx_layout().size;
        let vmctx = vec![0u128; size.div_ceil(16)];
        let (heap, min_len, log2) = match meta.memory {
            Some(m) => {
                let min = m.min_pages << m.page_size_log2;
                let max = m.max_pages.map_or(u64::MAX, |p| p << m.page_size_log2);
                let cap = (min + (8 << m.page_size_log2)).min(max).max(min);
                (vec![0u8; cap as usize], min, m.page_size_log2 as u64)
            }
            None => (Vec::new(), 0, 16),
        };
        let mut inst = Instance {
            meta,
            lib,
            vmctx,
            heap,
        };
        for d in inst.meta.data.clone() {
            if d.passive {
                continue;
            }
            let at = d.offset.as_plain().expect("plain data offset") as usize;
            inst.heap[at..at + d.bytes.len()].copy_from_slice(&d.bytes);
        }
        let base = inst.heap.as_mut_ptr() as u64;
        let cap = inst.heap.len() as u64;
        inst.set_u64(vmctx::FUEL as usize, 1 << 40);
        inst.set_u64(vmctx::STACK_LIMIT as usize, 0);
        // The harness's vmctx is its own exec.
        let own = inst.vmctx_ptr() as u64;
        inst.set_u64(vmctx::EXEC as usize, own);
        inst.set_u64(vmctx::HEAP_BASE as usize, base);
        inst.set_u64(vmctx::HEAP_LEN as usize, min_len);
        inst.set_u64(
            vmctx::FN_FUEL_EXHAUSTED as usize,
            fuel_exhausted_entry as unsafe extern "C" fn(*mut u8) as usize as u64,
        );
        inst.set_u64(
            vmctx::FN_MEMORY_GROW as usize,
            memory_grow as unsafe extern "C" fn(*mut u8, *mut u8, u64) -> i64 as usize as u64,
        );
        type Bulk = unsafe extern "C" fn(*mut u8, *mut u8, *const u64) -> i64;
        inst.set_u64(
            vmctx::FN_MEMORY_FILL as usize,
            memory_fill as Bulk as usize as u64,
        );
        inst.set_u64(
            vmctx::FN_MEMORY_COPY as usize,
            memory_copy as Bulk as usize as u64,
        );
        inst.set_u64(PRIV_PAGE_LOG2, log2);
        inst.set_u64(PRIV_HEAP_CAP, cap);
        inst.set_u64(PRIV_REFILL, 1 << 40);
        for (i, g) in inst.meta.globals.clone().iter().enumerate() {
            inst.set_u64(
                vmctx::GLOBALS as usize + 8 * i,
                g.init.as_plain().unwrap_or(0),
            );
        }
        inst
    }

    fn vmctx_ptr(&mut self) -> *mut u8 {
        self.vmctx.as_mut_ptr() as *mut u8
    }

    /// Read a u64 vmctx field.
    pub fn get_u64(&mut self, offset: usize) -> u64 {
        // SAFETY: the tests pass offsets inside the harness's vmctx.
        unsafe { *(self.vmctx_ptr().add(offset) as *const u64) }
    }

    /// Write a u64 vmctx field.
    pub fn set_u64(&mut self, offset: usize, v: u64) {
        // SAFETY: as for get_u64.
        unsafe { *(self.vmctx_ptr().add(offset) as *mut u64) = v }
    }

    /// Current fuel in vmctx.
    pub fn fuel(&mut self) -> i64 {
        self.get_u64(vmctx::FUEL as usize) as i64
    }

    /// Set the fuel and the amount `fuel_exhausted` refills.
    pub fn set_fuel(&mut self, fuel: i64, refill: i64) {
        self.set_u64(vmctx::FUEL as usize, fuel as u64);
        self.set_u64(PRIV_REFILL, refill as u64);
    }

    /// How often `fuel_exhausted` was called.
    pub fn fuel_calls(&mut self) -> u64 {
        self.get_u64(PRIV_FUEL_CALLS)
    }

    /// Global `i`'s cell.
    pub fn global(&mut self, i: usize) -> u64 {
        self.get_u64(vmctx::GLOBALS as usize + 8 * i)
    }

    /// Current heap length in bytes.
    pub fn heap_len(&mut self) -> usize {
        self.get_u64(vmctx::HEAP_LEN as usize) as usize
    }

    /// The linear memory up to its current length.
    pub fn heap(&mut self) -> &mut [u8] {
        let len = self.heap_len();
        &mut self.heap[..len]
    }

    /// Call export `name` with raw argument cells; returns raw result cells.
    pub fn call(&mut self, name: &str, args: &[u64]) -> Vec<u64> {
        self.call_with_r15(name, args, 0).0
    }

    /// Call export `name` with `r15 = r15` (the register compiled code
    /// pins the fuel counter in, callee-saved for the caller); returns the
    /// result cells and `r15` as the wrapper left it.
    pub fn call_with_r15(&mut self, name: &str, args: &[u64], r15: u64) -> (Vec<u64>, u64) {
        let export = self
            .meta
            .exports
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no export {name}"))
            .clone();
        let ty = self
            .meta
            .func_type(export.index)
            .expect("export type")
            .clone();
        assert_eq!(ty.params.len(), args.len(), "argument count for {name}");
        let nresults = ty.results.len();
        let mut values = vec![0u64; args.len().max(nresults)];
        values[..args.len()].copy_from_slice(args);
        let symbol = abi::export_wrapper_symbol(export.index);
        let vmctx = self.vmctx_ptr();
        // SAFETY: the wrapper follows the array-call ABI; `values` holds
        // max(params, results) cells; the harness's vmctx is complete.
        let r15 = unsafe {
            let f = self
                .lib
                .get::<unsafe extern "C" fn(*mut u8, *mut u8, *mut u64)>(symbol.as_bytes())
                .expect("wrapper symbol");
            call_wrapper_with_r15(*f as usize, vmctx, values.as_mut_ptr(), r15)
        };
        values.truncate(nresults);
        (values, r15)
    }

    /// Call an export taking and returning i32s.
    pub fn i32(&mut self, name: &str, args: &[i32]) -> i32 {
        let args: Vec<u64> = args.iter().map(|a| *a as u32 as u64).collect();
        self.call(name, &args)[0] as u32 as i32
    }

    /// Call an export taking and returning i64s.
    pub fn i64(&mut self, name: &str, args: &[i64]) -> i64 {
        let args: Vec<u64> = args.iter().map(|a| *a as u64).collect();
        self.call(name, &args)[0] as i64
    }

    /// Result types of export `name`.
    pub fn results(&self, name: &str) -> Vec<ValType> {
        let e = self.meta.exports.iter().find(|e| e.name == name).unwrap();
        self.meta
            .func_type(e.index)
            .expect("export type")
            .results
            .clone()
    }
}

/// `wrapper(vmctx, vmctx, values)` with `r15 = r15`; returns `r15` as the
/// wrapper left it (it must be the value it was called with).
#[unsafe(naked)]
unsafe extern "C" fn call_wrapper_with_r15(
    _wrapper: usize,
    _vmctx: *mut u8,
    _values: *mut u64,
    _r15: u64,
) -> u64 {
    core::arch::naked_asm!(
        // rsp = 16n + 8 at entry; two pushes and 8 bytes make it aligned.
        "push r15",
        "push rbx",
        "sub rsp, 8",
        "mov r15, rcx",
        "mov rax, rdi",
        "mov rdi, rsi",
        "call rax",
        "mov rax, r15",
        "add rsp, 8",
        "pop rbx",
        "pop r15",
        "ret",
    )
}
