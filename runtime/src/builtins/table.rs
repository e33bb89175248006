//! The table and segment builtins compiled code calls through the vmctx
//! (`table.grow/fill/copy/init`, `elem.drop`, `memory.init`, `data.drop`):
//! `extern "C" fn(vmctx, exec, args, _) -> u64`, run on the worker stack by
//! the host-call trampoline, taking their arguments from a `u64` buffer on
//! the guest stack. Bulk operations check their whole range first, then
//! work in chunks and stop between chunks when the slice is over
//! ([`BULK_MORE`]: compiled code passes a fuel check and calls again with
//! the rest).

use crate::fuel::{charge_fuel, charge_time, slice_over, time_sliced};
use crate::table::{range, vm_own_heap_len, GrowStep, TableState, TABLE_CHUNK};
use crate::vmctx::VmCtx;
use myriad_abi::{BULK_DONE, BULK_MORE, BULK_TRAP};

/// `memory.init`: check that `n` bytes of data segment `seg` from `s`
/// fit at heap offset `d`, and copy the first `copy` (at most `n`) of
/// them. Without a table state every segment is active, hence dropped
/// (length 0). Returns 0, or 1 for out of bounds (nothing copied).
///
/// `mem` is the vmctx describing the memory (`memory_vmctx`), read through
/// the raw pointer: it may be the running green thread's own vmctx, which
/// the fuel bookkeeping between chunks borrows mutably.
///
/// # Safety
///
/// `mem` is a live vmctx whose `heap_base..heap_base + heap_len` is the
/// memory's accessible heap, not otherwise borrowed during the call.
unsafe fn memory_init(
    mem: *const VmCtx,
    st: Option<&TableState>,
    seg: u64,
    d: u64,
    s: u64,
    copy: u64,
    n: u64,
) -> u64 {
    let bytes: &[u8] = match st {
        Some(st) => match (
            st.module.metadata().data.get(seg as usize),
            st.data_dropped.get(seg as usize),
        ) {
            (Some(seg), Some(false)) => &seg.bytes,
            _ => &[],
        },
        None => &[],
    };
    // SAFETY: per the contract (plain reads of two fields).
    let (base, len) = unsafe { ((*mem).heap_base, (*mem).heap_len as usize) };
    let (Some(sr), Some(dr)) = (range(s, n, bytes.len()), range(d, n, len)) else {
        return 1;
    };
    // SAFETY: heap_base..heap_base+heap_len is the memory's accessible
    // heap (dr lies within it); the guest is suspended in this builtin.
    let heap = unsafe { std::slice::from_raw_parts_mut(base, len) };
    let copy = copy.min(n) as usize;
    heap[dr.start..dr.start + copy].copy_from_slice(&bytes[sr.start..sr.start + copy]);
    0
}

pub(crate) extern "C" fn memory_init_impl(
    vmctx: *mut VmCtx,
    exec: *mut VmCtx,
    args: u64,
    _: u64,
) -> u64 {
    // SAFETY: called by compiled code through the trampoline with a
    // 4-value buffer on its stack; vmctx is the running guest's, and its
    // table state (if any) is owned by the instance and not otherwise
    // accessed while the guest runs.
    unsafe {
        // The buffer is the compiled code's own 8-byte aligned stack slot,
        // not otherwise referenced during the call.
        let buf = &mut *(args as *mut [u64; 4]);
        let [seg, d, s, n] = *buf;
        let mem = (*vmctx).memory_vmctx.cast_const();
        let st = (*vmctx).table_state.cast::<TableState>();
        let st = if st.is_null() { None } else { Some(&*st) };
        // The whole rest first: out of bounds writes nothing.
        if memory_init(mem, st, seg, d, s, 0, n) != 0 {
            return BULK_TRAP as u64;
        }
        let done = in_chunks(exec, (d, s, n), MEMORY_CHUNK, false, |(d, s, k)| {
            memory_init(mem, st, seg, d, s, k, k);
            k.div_ceil(8)
        });
        more_at(done, &mut buf[1..])
    }
}

/// The heap of the memory whose vmctx is `mem`, as a slice.
///
/// # Safety
///
/// `mem` is a live vmctx describing an accessible heap
/// (`heap_base..heap_base + heap_len`) not otherwise borrowed during the
/// slice's use.
unsafe fn heap<'a>(mem: *const VmCtx) -> &'a mut [u8] {
    // SAFETY: per the contract.
    unsafe {
        let (base, len) = ((*mem).heap_base, (*mem).heap_len as usize);
        if len == 0 {
            return &mut [];
        }
        std::slice::from_raw_parts_mut(base, len)
    }
}

/// `memory.fill`: check `[d, d + n)` against the memory, then set it to the
/// low byte of `val` in chunks of [`MEMORY_CHUNK`] bytes, one fuel unit per
/// 8 bytes, stopping between chunks when the slice is over.
pub(crate) extern "C" fn memory_fill_impl(
    mem: *mut VmCtx,
    exec: *mut VmCtx,
    args: u64,
    _: u64,
) -> u64 {
    // SAFETY: compiled code calls with the memory's vmctx, the running
    // green thread's exec and its 3-value stack buffer (8-byte aligned,
    // not otherwise referenced during the call).
    unsafe {
        let buf = &mut *(args as *mut [u64; 3]);
        let [d, val, n] = *buf;
        let mem = mem.cast_const();
        if range(d, n, heap(mem).len()).is_none() {
            return BULK_TRAP as u64;
        }
        // The source slot of the span is unused (in_chunks advances it
        // with the destination); the value is `val` throughout.
        let done = in_chunks(exec, (d, 0, n), MEMORY_CHUNK, false, |(d, _, k)| {
            heap(mem)[d as usize..(d + k) as usize].fill(val as u8);
            k.div_ceil(8)
        });
        // `more_at` wrote the rest as [dst, 0 + done, len]: put the value
        // back in its slot.
        let r = more_at(done, buf);
        buf[1] = val;
        r
    }
}

/// `memory.copy`: check both ranges, then `memmove` in chunks of
/// [`MEMORY_CHUNK`] bytes (backwards when the destination is above the
/// source, so each chunk reads only bytes no earlier chunk wrote), one fuel
/// unit per 8 bytes, stopping between chunks when the slice is over.
pub(crate) extern "C" fn memory_copy_impl(
    mem: *mut VmCtx,
    exec: *mut VmCtx,
    args: u64,
    _: u64,
) -> u64 {
    // SAFETY: as for memory_fill_impl.
    unsafe {
        let buf = &mut *(args as *mut [u64; 3]);
        let [d, s, n] = *buf;
        let mem = mem.cast_const();
        let len = heap(mem).len();
        if range(d, n, len).is_none() || range(s, n, len).is_none() {
            return BULK_TRAP as u64;
        }
        let done = in_chunks(exec, (d, s, n), MEMORY_CHUNK, d > s, |(d, s, k)| {
            heap(mem).copy_within(s as usize..(s + k) as usize, d as usize);
            k.div_ceil(8)
        });
        more_at(done, buf)
    }
}

pub(crate) extern "C" fn data_drop_impl(
    vmctx: *mut VmCtx,
    _exec: *mut VmCtx,
    args: u64,
    _: u64,
) -> u64 {
    // SAFETY: as above, 1 value. Without a table state every segment is
    // already dropped.
    unsafe {
        let [seg] = (args as *const [u64; 1]).read_unaligned();
        let st = (*vmctx).table_state.cast::<TableState>();
        if let Some(st) = st.as_mut() {
            if let Some(d) = st.data_dropped.get_mut(seg as usize) {
                *d = true;
            }
        }
        0
    }
}

/// Run `f` on the instance's table state with `N` builtin arguments.
///
/// # Safety
///
/// `vmctx` is the live vmctx of the running guest; `args` points to `N`
/// readable u64 values on its stack.
unsafe fn with_state<const N: usize>(
    vmctx: *mut VmCtx,
    args: u64,
    f: impl FnOnce(&mut TableState, [u64; N]) -> u64,
) -> u64 {
    // SAFETY: per the contract, args points at N u64 written by compiled
    // code just before the call; vmctx is live and its table state (if
    // any) is owned by the instance, which is running (not accessed
    // elsewhere).
    unsafe {
        let a = (args as *const [u64; N]).read_unaligned();
        let st = (*vmctx).table_state.cast::<TableState>();
        if st.is_null() {
            return 1;
        }
        f(&mut *st, a)
    }
}

/// Like [`with_state`], but `f` may rewrite the arguments (what is left of
/// a chunked operation).
///
/// # Safety
///
/// As [`with_state`]; the `N` values are also writable.
unsafe fn with_state_mut<const N: usize>(
    vmctx: *mut VmCtx,
    args: u64,
    f: impl FnOnce(&mut TableState, &mut [u64; N]) -> u64,
) -> u64 {
    // SAFETY: per the contract (the buffer is the compiled code's own
    // stack slot, 8-byte aligned, not otherwise referenced during the call).
    unsafe {
        let st = (*vmctx).table_state.cast::<TableState>();
        if st.is_null() {
            return BULK_TRAP as u64;
        }
        f(&mut *st, &mut *(args as *mut [u64; N]))
    }
}

pub(crate) extern "C" fn table_grow_impl(
    vmctx: *mut VmCtx,
    exec: *mut VmCtx,
    args: u64,
    _: u64,
) -> u64 {
    // SAFETY: called by compiled code through the trampoline with a
    // 3-value buffer; vmctx is the live vmctx of the instance whose code
    // grows the table and exec the running green thread's.
    unsafe {
        let heap_bytes = vm_own_heap_len(vmctx);
        // Memory the embedder holds for the instance counts too.
        let limit = (*vmctx)
            .heap_limit
            .saturating_sub(crate::builtins::memory::vm_external(vmctx));
        let t0 = time_sliced(exec).then(crate::fuel::rdtsc);
        let step = with_state(vmctx, args, |st, [t, d, init]| {
            match st.grow_step(t as usize, d, init, heap_bytes, limit, exec) {
                GrowStep::Done(old) => old as u64,
                GrowStep::Limit => {
                    let ex = &mut *exec;
                    ex.status = crate::vmctx::status::LIMITED;
                    ex.trap_kind = crate::Limit::Memory as u32;
                    u64::MAX
                }
                GrowStep::More => {
                    // End the slice inside the builtin; the host-call
                    // trampoline calls it again with the same arguments
                    // when the instance next runs.
                    let ex = &mut *exec;
                    ex.again_fn = table_grow_impl as *const () as usize;
                    ex.again_vmctx = vmctx;
                    ex.again_arg = args;
                    ex.again_arg2 = 0;
                    ex.yield_tsc = crate::fuel::rdtsc();
                    ex.status = crate::vmctx::status::YIELDED;
                    0
                }
            }
        });
        if let Some(t0) = t0 {
            charge_time(exec, crate::fuel::rdtsc().saturating_sub(t0));
        }
        crate::builtins::memory::vm_publish(vmctx);
        step
    }
}

pub(crate) extern "C" fn table_fill_impl(
    vmctx: *mut VmCtx,
    exec: *mut VmCtx,
    args: u64,
    _: u64,
) -> u64 {
    // SAFETY: as above, 4 values.
    unsafe {
        with_state_mut(vmctx, args, |st, a: &mut [u64; 4]| {
            let [t, d, v, n] = *a;
            if st.fill(t as usize, d, v, 0, n) != 0 {
                return BULK_TRAP as u64;
            }
            let done = in_chunks(exec, (d, 0, n), TABLE_CHUNK, false, |(d, _, k)| {
                st.fill(t as usize, d, v, k, k);
                k
            });
            match done {
                Ok(()) => BULK_DONE as u64,
                Err((d, _, n)) => {
                    *a = [t, d, v, n];
                    BULK_MORE as u64
                }
            }
        })
    }
}

pub(crate) extern "C" fn table_copy_impl(
    vmctx: *mut VmCtx,
    exec: *mut VmCtx,
    args: u64,
    _: u64,
) -> u64 {
    // SAFETY: as above, 5 values.
    unsafe {
        with_state_mut(vmctx, args, |st, a: &mut [u64; 5]| {
            let [dt, stb, d, s, n] = *a;
            let (dt, stb) = (dt as usize, stb as usize);
            if st.copy(dt, stb, d, s, 0, n) != 0 {
                return BULK_TRAP as u64;
            }
            // Overlapping copies within one table stay correct chunk by
            // chunk if each chunk moves away from the data still to copy:
            // forward when the destination is below the source, backward
            // otherwise.
            let done = in_chunks(exec, (d, s, n), TABLE_CHUNK, d > s, |(d, s, k)| {
                st.copy(dt, stb, d, s, k, k);
                k
            });
            more_at(done, &mut a[2..])
        })
    }
}

pub(crate) extern "C" fn table_init_impl(
    vmctx: *mut VmCtx,
    exec: *mut VmCtx,
    args: u64,
    _: u64,
) -> u64 {
    // SAFETY: as above, 5 values.
    unsafe {
        with_state_mut(vmctx, args, |st, a: &mut [u64; 5]| {
            let [t, e, d, s, n] = *a;
            let (t, e) = (t as usize, e as usize);
            if st.init(t, e, d, s, 0, n) != 0 {
                return BULK_TRAP as u64;
            }
            let done = in_chunks(exec, (d, s, n), TABLE_CHUNK, false, |(d, s, k)| {
                st.init(t, e, d, s, k, k);
                k
            });
            more_at(done, &mut a[2..])
        })
    }
}

/// Bytes `memory.init` copies between two looks at the slice (a few
/// microseconds of `memcpy`).
pub const MEMORY_CHUNK: u64 = 64 * 1024;

/// Part of a bulk operation: destination start, source start, length.
type Span = (u64, u64, u64);

/// Split the rest of a bulk operation, `n` items from `d` (destination)
/// and `s` (source), into the chunk to do now and what is left (`None`:
/// nothing). Forward takes the first `chunk` items; `backward` takes the
/// last ones.
fn split(d: u64, s: u64, n: u64, chunk: u64, backward: bool) -> (Span, Option<Span>) {
    let k = n.min(chunk);
    let left = n - k;
    if backward {
        ((d + left, s + left, k), (left > 0).then_some((d, s, left)))
    } else {
        ((d, s, k), (left > 0).then_some((d + k, s + k, left)))
    }
}

/// Do the bulk operation `span` (destination, source, length; already
/// bounds-checked) in chunks of at most `chunk` items with `op`, which
/// returns the fuel units a chunk costs. `Err(rest)` when the slice ended
/// first ([`slice_over`]): the caller hands `rest` back to compiled code
/// with `BULK_MORE`.
///
/// # Safety
///
/// `exec` is the running green thread's live context.
unsafe fn in_chunks(
    exec: *mut VmCtx,
    span: Span,
    chunk: u64,
    backward: bool,
    mut op: impl FnMut(Span) -> u64,
) -> Result<(), Span> {
    // SAFETY: per the contract (exec is the running green thread's).
    let t0 = unsafe { time_sliced(exec) }.then(crate::fuel::rdtsc);
    let mut rest = Some(span);
    let mut result = Ok(());
    while let Some((d, s, n)) = rest {
        let now;
        (now, rest) = split(d, s, n, chunk, backward);
        let units = op(now);
        // SAFETY: as above.
        unsafe { charge_fuel(exec, units) };
        if let Some(left) = rest {
            // SAFETY: as above.
            if unsafe { slice_over(exec) } {
                result = Err(left);
                break;
            }
        }
    }
    if let Some(t0) = t0 {
        // SAFETY: as above.
        unsafe { charge_time(exec, crate::fuel::rdtsc().saturating_sub(t0)) };
    }
    result
}

/// The builtin result for `done`, writing what is left into `args`
/// (`[dst, src, len]`) when the slice ended first.
fn more_at(done: Result<(), Span>, args: &mut [u64]) -> u64 {
    match done {
        Ok(()) => BULK_DONE as u64,
        Err((d, s, n)) => {
            args.copy_from_slice(&[d, s, n]);
            BULK_MORE as u64
        }
    }
}

pub(crate) extern "C" fn elem_drop_impl(
    vmctx: *mut VmCtx,
    _exec: *mut VmCtx,
    args: u64,
    _: u64,
) -> u64 {
    // SAFETY: as above, 1 value.
    unsafe {
        with_state(vmctx, args, |st, [e]| {
            st.drop_elem(e as usize);
            0
        })
    }
}
