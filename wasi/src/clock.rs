//! Clocks: `clock_res_get`, `clock_time_get` and the time source of
//! `poll_oneoff`.
//!
//! Clock ids map to the host's `CLOCK_REALTIME`, `CLOCK_MONOTONIC`,
//! `CLOCK_PROCESS_CPUTIME_ID` and `CLOCK_THREAD_CPUTIME_ID`. The CPU-time
//! clocks measure the host: the whole process, and the worker thread that
//! happens to run the guest (green threads migrate between workers), so
//! they are only coarse hints for a guest.

use crate::errno::{Errno, WasiResult};
use crate::memory::GuestMemory;

/// `clockid` realtime.
pub const REALTIME: u32 = 0;
/// `clockid` monotonic.
pub const MONOTONIC: u32 = 1;
/// `clockid` process CPU time.
pub const PROCESS_CPUTIME: u32 = 2;
/// `clockid` thread CPU time.
pub const THREAD_CPUTIME: u32 = 3;

fn host_clock(id: u32) -> WasiResult<libc::clockid_t> {
    Ok(match id {
        REALTIME => libc::CLOCK_REALTIME,
        MONOTONIC => libc::CLOCK_MONOTONIC,
        PROCESS_CPUTIME => libc::CLOCK_PROCESS_CPUTIME_ID,
        THREAD_CPUTIME => libc::CLOCK_THREAD_CPUTIME_ID,
        _ => return Err(Errno::INVAL),
    })
}

fn to_ns(ts: &libc::timespec) -> u64 {
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// The current time of WASI clock `id` in nanoseconds (`EINVAL` for an
/// unknown id).
pub fn now(id: u32) -> WasiResult<u64> {
    let clock = host_clock(id)?;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return Err(Errno::last_host());
    }
    Ok(to_ns(&ts))
}

/// `clock_res_get(id, resolution_ptr)`.
pub fn res_get(mem: &mut GuestMemory<'_>, id: u32, out: u32) -> WasiResult<()> {
    let clock = host_clock(id)?;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    if unsafe { libc::clock_getres(clock, &mut ts) } != 0 {
        return Err(Errno::last_host());
    }
    mem.write_u64(out, to_ns(&ts).max(1))
}

/// `clock_time_get(id, precision, time_ptr)`; the precision hint is
/// ignored.
pub fn time_get(mem: &mut GuestMemory<'_>, id: u32, _precision: u64, out: u32) -> WasiResult<()> {
    let t = now(id)?;
    mem.write_u64(out, t)
}
