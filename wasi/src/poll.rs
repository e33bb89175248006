//! `poll_oneoff`: clock subscriptions (sleeping) and descriptor
//! subscriptions, which are always ready (stdio, files), except an
//! inherited stdin with nothing to read.
//!
//! If any descriptor subscription is ready the call returns at once with
//! those events (and any clock already due). If the only descriptors are
//! an inherited stdin with nothing to read, the call waits on the host for
//! it or the first clock, blocking the thread as a read of it would.
//! Otherwise it reports every clock due by the earliest deadline and asks
//! the caller to sleep until then ([`crate::WasiOutcome::Sleep`]): under a
//! scheduler the instance sleeps off the run queues and its worker runs
//! others.
//!
//! One call takes at most [`MAX_SUBSCRIPTIONS`] subscriptions (`EINVAL`
//! above), reads each clock at most once and asks the host about each
//! descriptor at most once, so its work and its host memory (a few
//! hundred KiB at most) are bounded whatever the guest passes.

use crate::clock;
use crate::ctx::WasiCtx;
use crate::errno::{Errno, WasiResult};
use crate::fdtable::{InputStream, Kind};
use crate::memory::GuestMemory;
use crate::types::rights;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Most subscriptions one `poll_oneoff` takes (4096); more is `EINVAL`.
/// wasi-libc's `poll()` makes at most two subscriptions per `pollfd`
/// (read and write) plus one clock for the timeout, so this covers a poll
/// of every descriptor a guest can hold (twice [`MAX_FDS`](crate::MAX_FDS)
/// plus one: 2049) with room to spare, while one call's work stays well
/// under a millisecond.
pub const MAX_SUBSCRIPTIONS: u32 = 4096;

const SUBSCRIPTION_SIZE: u32 = 48;
const EVENT_SIZE: u32 = 32;
const EVENTTYPE_CLOCK: u8 = 0;
const EVENTTYPE_FD_READ: u8 = 1;
const EVENTTYPE_FD_WRITE: u8 = 2;
const SUBCLOCK_ABSTIME: u16 = 1;

/// One event to report.
struct Event {
    userdata: u64,
    error: Errno,
    kind: u8,
    nbytes: u64,
}

/// A clock subscription: when it is due, in nanoseconds from now.
struct ClockSub {
    userdata: u64,
    remaining: u64,
}

impl WasiCtx {
    /// `poll_oneoff(in, out, nsubscriptions, nevents_ptr)`. Returns how
    /// long the guest must sleep before it sees the events (`None`: no
    /// wait).
    pub(crate) fn poll_oneoff(
        &mut self,
        mem: &mut GuestMemory<'_>,
        input: u32,
        out: u32,
        nsubs: u32,
        nevents: u32,
    ) -> WasiResult<Option<Duration>> {
        if nsubs == 0 {
            return Err(Errno::INVAL);
        }
        mem.slice(
            input,
            nsubs.checked_mul(SUBSCRIPTION_SIZE).ok_or(Errno::FAULT)?,
        )?;
        mem.slice(out, nsubs.checked_mul(EVENT_SIZE).ok_or(Errno::FAULT)?)?;
        mem.slice(nevents, 4)?;
        if nsubs > MAX_SUBSCRIPTIONS {
            return Err(Errno::INVAL);
        }

        // At most MAX_SUBSCRIPTIONS of each.
        let mut events = Vec::with_capacity(nsubs as usize);
        let mut clocks = Vec::with_capacity(nsubs as usize);
        // Each clock is read once per call (the same "now" for all its
        // subscriptions), and each descriptor asked about once.
        let mut now: [Option<WasiResult<u64>>; 4] = [None; 4];
        let mut ready: std::collections::HashMap<(u32, bool), WasiResult<u64>> =
            std::collections::HashMap::new();
        // Read subscriptions on an inherited stdin that has nothing to
        // read yet (asked of the host once per call): they wait below.
        let mut stdin_ready: Option<bool> = None;
        let mut stdin_waiters = Vec::new();
        for i in 0..nsubs {
            // In range: input + nsubs*48 was checked above.
            let at = input + i * SUBSCRIPTION_SIZE;
            let userdata = mem.read_u64(at)?;
            let tag = mem.read_u8(at + 8)?;
            match tag {
                EVENTTYPE_CLOCK => {
                    let id = mem.read_u32(at + 16)?;
                    let timeout = mem.read_u64(at + 24)?;
                    let flags = mem.read_u16(at + 40)?;
                    let t = match now.get_mut(id as usize) {
                        Some(slot) => *slot.get_or_insert_with(|| clock::now(id)),
                        None => clock::now(id),
                    };
                    match t {
                        Ok(now) => {
                            let remaining = if flags & SUBCLOCK_ABSTIME != 0 {
                                timeout.saturating_sub(now)
                            } else {
                                timeout
                            };
                            clocks.push(ClockSub {
                                userdata,
                                remaining,
                            });
                        }
                        Err(e) => events.push(Event {
                            userdata,
                            error: e,
                            kind: tag,
                            nbytes: 0,
                        }),
                    }
                }
                EVENTTYPE_FD_READ | EVENTTYPE_FD_WRITE => {
                    let fd = mem.read_u32(at + 16)?;
                    let read = tag == EVENTTYPE_FD_READ;
                    let r = *ready
                        .entry((fd, read))
                        .or_insert_with(|| self.fd_ready(fd, read));
                    if r.is_ok() && read && self.is_inherited_stdin(fd) {
                        let now_ready =
                            *stdin_ready.get_or_insert_with(|| host_stdin_ready(Some(0)));
                        if !now_ready {
                            stdin_waiters.push(userdata);
                            continue;
                        }
                    }
                    let (error, nbytes) = match r {
                        Ok(n) => (Errno::SUCCESS, n),
                        Err(e) => (e, 0),
                    };
                    events.push(Event {
                        userdata,
                        error,
                        kind: tag,
                        nbytes,
                    });
                }
                _ => return Err(Errno::INVAL),
            }
        }

        let mut wait = None;
        if events.is_empty() && !stdin_waiters.is_empty() {
            // Nothing ready but an inherited stdin: wait for it or the
            // first clock on the host, as a read of it would block (see
            // the crate docs). Reporting it ready made a poll with a
            // timeout return at once and the read after it block.
            let first = clocks.iter().map(|c| c.remaining).min();
            let started = std::time::Instant::now();
            if host_stdin_ready(first) {
                for userdata in stdin_waiters {
                    events.push(Event {
                        userdata,
                        error: Errno::SUCCESS,
                        kind: EVENTTYPE_FD_READ,
                        nbytes: 0,
                    });
                }
            }
            let waited = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            for c in clocks.iter().filter(|c| c.remaining <= waited) {
                events.push(Event {
                    userdata: c.userdata,
                    error: Errno::SUCCESS,
                    kind: EVENTTYPE_CLOCK,
                    nbytes: 0,
                });
            }
        } else if events.is_empty() {
            // Only clocks: the guest sleeps until the first is due.
            let first = clocks.iter().map(|c| c.remaining).min().unwrap_or(0);
            if first > 0 {
                wait = Some(Duration::from_nanos(first));
            }
            for c in clocks.iter().filter(|c| c.remaining <= first) {
                events.push(Event {
                    userdata: c.userdata,
                    error: Errno::SUCCESS,
                    kind: EVENTTYPE_CLOCK,
                    nbytes: 0,
                });
            }
        } else {
            for c in clocks.iter().filter(|c| c.remaining == 0) {
                events.push(Event {
                    userdata: c.userdata,
                    error: Errno::SUCCESS,
                    kind: EVENTTYPE_CLOCK,
                    nbytes: 0,
                });
            }
        }

        for (i, e) in events.iter().enumerate() {
            let mut b = [0u8; EVENT_SIZE as usize];
            b[0..8].copy_from_slice(&e.userdata.to_le_bytes());
            b[8..10].copy_from_slice(&e.error.raw().to_le_bytes());
            b[10] = e.kind;
            b[16..24].copy_from_slice(&e.nbytes.to_le_bytes());
            // At most nsubs events; the out range was checked.
            mem.write_bytes(out + i as u32 * EVENT_SIZE, &b)?;
        }
        mem.write_u32(nevents, events.len() as u32)?;
        Ok(wait)
    }

    /// Whether `fd` is an inherited stdin (the host's fd 0).
    fn is_inherited_stdin(&self, fd: u32) -> bool {
        self.fds
            .get(fd)
            .is_ok_and(|e| matches!(e.kind, Kind::Input(InputStream::Inherit)))
    }

    /// Readiness of `fd` for reading or writing: the bytes available (a
    /// hint; 0 when unknown), or the error to report in the event.
    fn fd_ready(&self, fd: u32, read: bool) -> WasiResult<u64> {
        let entry = self.fds.get(fd)?;
        entry.require(rights::POLL_FD_READWRITE)?;
        match (&entry.kind, read) {
            (Kind::Input(InputStream::Bytes(b, pos)), true) => {
                Ok(b.len().saturating_sub(*pos) as u64)
            }
            (Kind::Input(_), true) | (Kind::Output(..), false) => Ok(0),
            (Kind::File(f), true) => {
                let st = crate::fd::fstat(f.as_raw_fd())?;
                // SAFETY: lseek with SEEK_CUR 0 only reads the offset.
                let pos = unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_CUR) };
                Ok((st.st_size as u64).saturating_sub(pos.max(0) as u64))
            }
            (Kind::File(_), false) => Ok(0),
            (Kind::Dir { .. }, _) => Err(Errno::ISDIR),
            (Kind::Input(_), false) | (Kind::Output(..), true) => Err(Errno::BADF),
        }
    }
}

/// Whether the host's stdin has something to read (or is at its end, or
/// failed: a read would not block), waiting up to `timeout_ns` (`None`,
/// or a time past what `Instant` holds: for as long as it takes); a wait
/// a signal interrupts goes on for the rest of the time.
fn host_stdin_ready(timeout_ns: Option<u64>) -> bool {
    let deadline =
        timeout_ns.and_then(|ns| std::time::Instant::now().checked_add(Duration::from_nanos(ns)));
    loop {
        let mut fds = libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = deadline.map(|d| {
            let left = d.saturating_duration_since(std::time::Instant::now());
            libc::timespec {
                tv_sec: left.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            }
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `fds` is one valid pollfd, `ts_ptr` null or a valid
        // timespec, and no signal mask is passed; all outlive the call.
        let n = unsafe { libc::ppoll(&mut fds, 1, ts_ptr, std::ptr::null()) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return n > 0
            && fds.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0;
    }
}
