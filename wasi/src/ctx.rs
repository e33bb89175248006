//! The per-instance WASI state and the entry point the runtime calls.

use crate::builder::WasiBuilder;
use crate::errno::{Errno, WasiResult};
use crate::fdtable::FdTable;
use crate::func::WasiFunc;
use crate::memory::GuestMemory;
use std::num::NonZeroU32;

/// What the runtime must do after a WASI call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WasiOutcome {
    /// Return this errno (0 = success) to the guest as the call's `i32`
    /// result.
    Return(u32),
    /// `proc_exit` was called: end the instance with this exit code.
    Exit(u32),
    /// `sched_yield` was called: give up the rest of the time slice, then
    /// return errno 0 to the guest.
    Yield,
    /// `poll_oneoff` waits for clocks only: its events are written; the
    /// guest must not run again for this long, then gets errno 0. Under
    /// the runtime this becomes [`myriad_runtime::HostAction::Sleep`], so a
    /// scheduler runs other instances meanwhile; a caller driving
    /// [`WasiCtx::call`] itself sleeps the thread.
    Sleep(std::time::Duration),
    /// The call did a bounded part of its work (a long `random_get`, a
    /// long `fd_readdir`) and is not finished: call
    /// [`WasiCtx::call_again`] with the same function, memory, arguments
    /// and this [`Continuation`] to do the next part, until it returns
    /// something else. The guest sees one call. Under the runtime this
    /// becomes [`myriad_runtime::HostAction::Continue`] once the slice is
    /// over, so no single host call holds a worker for long.
    Continue(Continuation),
}

/// Names a call that returned [`WasiOutcome::Continue`], so that only that
/// call, continued, picks up its progress: [`WasiCtx::call_again`] with
/// any other continuation (or after any other call on the context)
/// starts the call afresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Continuation(NonZeroU32);

impl Continuation {
    /// The continuation as a non-zero `u32` (to keep it where only an
    /// integer fits, e.g. the upper half of the call's first argument
    /// cell).
    pub fn to_raw(self) -> u32 {
        self.0.get()
    }

    /// The continuation from [`to_raw`](Self::to_raw); `None` for 0.
    pub fn from_raw(raw: u32) -> Option<Continuation> {
        NonZeroU32::new(raw).map(Continuation)
    }
}

/// Most parameters of a WASI preview1 function (`path_open` has 9).
const MAX_ARGS: usize = 16;

/// A call that returned [`WasiOutcome::Continue`]: which call it is (the
/// function, its arguments with `i32`s cut to 32 bits, and its ticket) and
/// how far it got (the meaning of `done` is the function's).
#[derive(Debug)]
struct Pending {
    func: WasiFunc,
    args: [u64; MAX_ARGS],
    ticket: Continuation,
    done: u64,
}

/// How far a call that works in parts got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Finished.
    Done,
    /// Not finished: this much is done (the function's measure).
    More(u64),
}

/// Bytes `random_get` fills per part (16 KiB). `getrandom(2)` runs at a
/// few hundred MB/s here (330 MB/s measured, flat from 4 KiB to 1 MiB
/// requests), so a part takes about 50 µs: half the scheduler's default
/// 100 µs quantum, with throughput no lower than one big call's.
pub const RANDOM_PART: usize = 16 << 10;

/// Bytes `fd_allocate` reserves per part (4 MiB). One call of 16 GiB
/// held a worker 16.6 ms on ext4 (about 1 ms a GiB), and on tmpfs, which
/// zeroes the pages, a 64 MiB part took 7.5 ms (a review, 2026-12-05): a
/// part takes about 0.5 ms on tmpfs, 4 µs on ext4.
pub const ALLOCATE_PART: u64 = 4 << 20;

/// One guest's WASI state: arguments, environment and descriptor table.
/// Each instance needs its own (build many from one [`WasiBuilder`]).
#[derive(Debug)]
pub struct WasiCtx {
    pub(crate) args: Vec<Vec<u8>>,
    /// `KEY=VALUE` strings.
    pub(crate) env: Vec<Vec<u8>>,
    pub(crate) fds: FdTable,
    /// The call that returned [`WasiOutcome::Continue`], if the last call
    /// did.
    pending: Option<Pending>,
    /// The last [`Continuation`] handed out.
    last_ticket: u32,
}

const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<WasiCtx>();
};

/// Argument `i` as a wasm `i32` (the low 32 bits of its cell).
fn a32(args: &[u64], i: usize) -> u32 {
    args.get(i).map_or(0, |&v| v as u32)
}

/// Argument `i` as a wasm `i64`.
fn a64(args: &[u64], i: usize) -> u64 {
    args.get(i).copied().unwrap_or(0)
}

impl WasiCtx {
    /// A builder with default settings (see [`WasiBuilder`]).
    pub fn builder() -> WasiBuilder {
        WasiBuilder::new()
    }

    pub(crate) fn from_parts(args: Vec<Vec<u8>>, env: Vec<Vec<u8>>, fds: FdTable) -> WasiCtx {
        WasiCtx {
            args,
            env,
            fds,
            pending: None,
            last_ticket: 0,
        }
    }

    /// Number of open guest descriptors (stdio and preopens included).
    pub fn open_fds(&self) -> usize {
        self.fds.len()
    }

    /// Runs WASI function `func` for a guest.
    ///
    /// `args[i]` is the raw bits of wasm parameter `i` (an `i32`
    /// zero-extended); there must be exactly `func.params().len()` of them
    /// (otherwise `EINVAL`). `memory` is the calling instance's whole linear
    /// memory. Guest pointers are checked: an access outside `memory`
    /// returns `EFAULT`. A `poll_oneoff` that waits for clocks only does
    /// not block: it returns [`WasiOutcome::Sleep`]. Reads of an inherited
    /// stdin block the calling thread.
    ///
    /// The work of one call is bounded whatever the arguments (see the
    /// crate's documentation for each bound): reads and writes move at
    /// most [`MAX_IO`](crate::memory::MAX_IO) bytes, and a call that needs
    /// more (a long `random_get` or `fd_readdir`) does a part and returns
    /// [`WasiOutcome::Continue`]; continue it with
    /// [`call_again`](Self::call_again). `call` always starts a new call:
    /// the progress of an unfinished one is dropped.
    pub fn call(&mut self, func: WasiFunc, memory: &mut [u8], args: &[u64]) -> WasiOutcome {
        self.pending = None;
        self.run(func, memory, args, 0)
    }

    /// Continues the call that returned [`WasiOutcome::Continue`]`(cont)`:
    /// `func`, `memory` and `args` must be those of that call. If `cont`
    /// does not name the unfinished call (another call came between, or
    /// the function or arguments differ), the call starts afresh, as with
    /// [`call`](Self::call): progress is never taken over by a different
    /// call.
    pub fn call_again(
        &mut self,
        func: WasiFunc,
        memory: &mut [u8],
        args: &[u64],
        cont: Continuation,
    ) -> WasiOutcome {
        let done = match self.pending.take() {
            Some(p) if p.ticket == cont && p.func == func && p.args == key(func, args) => p.done,
            _ => 0,
        };
        self.run(func, memory, args, done)
    }

    /// Remembers that `func(args)` got as far as `done` and hands out the
    /// continuation that picks it up.
    fn suspend(&mut self, func: WasiFunc, args: &[u64], done: u64) -> WasiOutcome {
        self.last_ticket = self.last_ticket.wrapping_add(1);
        let raw = NonZeroU32::new(self.last_ticket).unwrap_or(NonZeroU32::MIN);
        self.last_ticket = raw.get();
        let ticket = Continuation(raw);
        self.pending = Some(Pending {
            func,
            args: key(func, args),
            ticket,
            done,
        });
        WasiOutcome::Continue(ticket)
    }

    /// One call, or one part of a call, from `done` on (0 for a new call).
    fn run(&mut self, func: WasiFunc, memory: &mut [u8], args: &[u64], done: u64) -> WasiOutcome {
        if args.len() != func.params().len() {
            return WasiOutcome::Return(u32::from(Errno::INVAL.raw()));
        }
        let mut mem = GuestMemory::new(memory);
        let m = &mut mem;
        let p = |i| a32(args, i);
        let q = |i| a64(args, i);
        use WasiFunc as F;
        let r: WasiResult<()> = match func {
            F::ProcExit => return WasiOutcome::Exit(p(0)),
            F::SchedYield => return WasiOutcome::Yield,
            F::ArgsGet => strings_get(m, &self.args, p(0), p(1)),
            F::ArgsSizesGet => strings_sizes_get(m, &self.args, p(0), p(1)),
            F::EnvironGet => strings_get(m, &self.env, p(0), p(1)),
            F::EnvironSizesGet => strings_sizes_get(m, &self.env, p(0), p(1)),
            F::ClockResGet => crate::clock::res_get(m, p(0), p(1)),
            F::ClockTimeGet => crate::clock::time_get(m, p(0), q(1), p(2)),
            F::RandomGet => match random_get(m, p(0), p(1), done) {
                Ok(Step::More(d)) => return self.suspend(func, args, d),
                Ok(Step::Done) => Ok(()),
                Err(e) => Err(e),
            },
            F::PollOneoff => match self.poll_oneoff(m, p(0), p(1), p(2), p(3)) {
                Ok(Some(wait)) => return WasiOutcome::Sleep(wait),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            },
            F::FdAdvise => self.fd_advise(p(0), q(1), q(2), p(3)),
            F::FdAllocate => match self.fd_allocate(p(0), q(1), q(2), done) {
                Ok(Step::More(d)) => return self.suspend(func, args, d),
                Ok(Step::Done) => Ok(()),
                Err(e) => Err(e),
            },
            F::FdClose => self.fd_close(p(0)),
            F::FdDatasync => self.fd_sync(p(0), true),
            F::FdSync => self.fd_sync(p(0), false),
            F::FdFdstatGet => self.fd_fdstat_get(m, p(0), p(1)),
            F::FdFdstatSetFlags => self.fd_fdstat_set_flags(p(0), p(1)),
            F::FdFdstatSetRights => self.fd_fdstat_set_rights(p(0), q(1), q(2)),
            F::FdFilestatGet => self.fd_filestat_get(m, p(0), p(1)),
            F::FdFilestatSetSize => self.fd_filestat_set_size(p(0), q(1)),
            F::FdFilestatSetTimes => self.fd_filestat_set_times(p(0), q(1), q(2), p(3)),
            F::FdPread => self.fd_pread(m, p(0), p(1), p(2), q(3), p(4)),
            F::FdPwrite => self.fd_pwrite(m, p(0), p(1), p(2), q(3), p(4)),
            F::FdRead => self.fd_read(m, p(0), p(1), p(2), p(3)),
            F::FdWrite => self.fd_write(m, p(0), p(1), p(2), p(3)),
            F::FdPrestatGet => self.fd_prestat_get(m, p(0), p(1)),
            F::FdPrestatDirName => self.fd_prestat_dir_name(m, p(0), p(1), p(2)),
            F::FdReaddir => match self.fd_readdir(m, p(0), p(1), p(2), q(3), p(4), done) {
                Ok(Step::More(d)) => return self.suspend(func, args, d),
                Ok(Step::Done) => Ok(()),
                Err(e) => Err(e),
            },
            F::FdRenumber => self.fds.renumber(p(0), p(1)),
            F::FdSeek => self.fd_seek(m, p(0), q(1), p(2), p(3)),
            F::FdTell => self.fd_tell(m, p(0), p(1)),
            F::PathCreateDirectory => self.path_create_directory(m, p(0), p(1), p(2)),
            F::PathFilestatGet => self.path_filestat_get(m, p(0), p(1), p(2), p(3), p(4)),
            F::PathFilestatSetTimes => {
                self.path_filestat_set_times(m, p(0), p(1), p(2), p(3), q(4), q(5), p(6))
            }
            F::PathLink => self.path_link(m, p(0), p(1), p(2), p(3), p(4), p(5), p(6)),
            F::PathOpen => self.path_open(m, p(0), p(1), p(2), p(3), p(4), q(5), q(6), p(7), p(8)),
            F::PathReadlink => self.path_readlink(m, p(0), p(1), p(2), p(3), p(4), p(5)),
            F::PathRemoveDirectory => self.path_remove_directory(m, p(0), p(1), p(2)),
            F::PathRename => self.path_rename(m, p(0), p(1), p(2), p(3), p(4), p(5)),
            F::PathSymlink => self.path_symlink(m, p(0), p(1), p(2), p(3), p(4)),
            F::PathUnlinkFile => self.path_unlink_file(m, p(0), p(1), p(2)),
            F::ProcRaise | F::SockAccept | F::SockRecv | F::SockSend | F::SockShutdown => {
                Err(Errno::NOSYS)
            }
        };
        WasiOutcome::Return(u32::from(r.err().unwrap_or(Errno::SUCCESS).raw()))
    }
}

/// `args_sizes_get`/`environ_sizes_get`: the count at `count_ptr`, the
/// total size of the NUL-terminated strings at `size_ptr`.
fn strings_sizes_get(
    mem: &mut GuestMemory<'_>,
    strings: &[Vec<u8>],
    count_ptr: u32,
    size_ptr: u32,
) -> WasiResult<()> {
    let count = u32::try_from(strings.len()).map_err(|_| Errno::OVERFLOW)?;
    let size: usize = strings.iter().map(|s| s.len() + 1).sum();
    let size = u32::try_from(size).map_err(|_| Errno::OVERFLOW)?;
    mem.write_u32(count_ptr, count)?;
    mem.write_u32(size_ptr, size)
}

/// `args_get`/`environ_get`: one `u32` pointer per string at `ptrs`, and
/// the strings, each NUL-terminated, back to back at `buf`.
fn strings_get(
    mem: &mut GuestMemory<'_>,
    strings: &[Vec<u8>],
    ptrs: u32,
    buf: u32,
) -> WasiResult<()> {
    let mut at = u64::from(buf);
    for (i, s) in strings.iter().enumerate() {
        let dst = u32::try_from(at).map_err(|_| Errno::FAULT)?;
        let slot = u32::try_from(u64::from(ptrs) + 4 * i as u64).map_err(|_| Errno::FAULT)?;
        mem.write_u32(slot, dst)?;
        mem.write_bytes(dst, s)?;
        let nul = u32::try_from(at + s.len() as u64).map_err(|_| Errno::FAULT)?;
        mem.write_u8(nul, 0)?;
        at += s.len() as u64 + 1;
    }
    Ok(())
}

/// The arguments of `func` as they identify a call: `i32`s cut to their
/// low 32 bits (the rest of the cell is not part of the value).
fn key(func: WasiFunc, args: &[u64]) -> [u64; MAX_ARGS] {
    let mut out = [0u64; MAX_ARGS];
    for ((o, &a), t) in out.iter_mut().zip(args).zip(func.params()) {
        *o = match t {
            myriad_abi::ValType::I32 => u64::from(a as u32),
            _ => a,
        };
    }
    out
}

/// `random_get`: `len` bytes from the kernel's `getrandom(2)`, filled
/// [`RANDOM_PART`] bytes per part from `done` on.
fn random_get(mem: &mut GuestMemory<'_>, ptr: u32, len: u32, done: u64) -> WasiResult<Step> {
    let buf = mem.slice_mut(ptr, len)?;
    let start = usize::try_from(done).unwrap_or(usize::MAX).min(buf.len());
    let end = start.saturating_add(RANDOM_PART).min(buf.len());
    fill_random(&mut buf[start..end])?;
    Ok(if end < buf.len() {
        Step::More(end as u64)
    } else {
        Step::Done
    })
}

/// Fills `buf` from `getrandom(2)`.
fn fill_random(buf: &mut [u8]) -> WasiResult<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is a valid writable buffer of `rest.len()` bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(Errno::from_io(&e));
        }
        done += n as usize;
    }
    Ok(())
}
