//! The `fd_*` functions: reading, writing, seeking and describing open
//! descriptors.

// Methods take the wasm parameters one by one, as the preview1 signature
// lists them.
#![allow(clippy::too_many_arguments)]

use crate::ctx::{Step, WasiCtx};
use crate::dir;
use crate::errno::{Errno, WasiResult};
use crate::fdtable::{Entry, HostStream, InputStream, Kind, Output};
use crate::memory::{iovecs_len, GuestIovec, GuestMemory};
use crate::types::{
    fdflags, filetype, fstflags, rights, whence, write_fdstat, Filestat, FDSTAT_SIZE, FILESTAT_SIZE,
};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};

/// Retries `f` while it fails with `EINTR`.
pub(crate) fn retry<T>(mut f: impl FnMut() -> std::io::Result<T>) -> WasiResult<T> {
    loop {
        match f() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other.map_err(|e| Errno::from_io(&e)),
        }
    }
}

/// Turns a libc `-1` return into the mapped host errno.
fn check_ret(ret: libc::c_int) -> WasiResult<()> {
    if ret < 0 {
        Err(Errno::last_host())
    } else {
        Ok(())
    }
}

/// `fstat` of a host descriptor.
pub(crate) fn fstat(fd: RawFd) -> WasiResult<libc::stat> {
    // SAFETY: all-zero is a valid `stat`; fstat overwrites it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out pointer; an invalid fd only yields EBADF.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(Errno::last_host());
    }
    Ok(st)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: the entry `name` of host
/// directory `dir` itself, never a symbolic link's target.
pub(crate) fn lstat_in(dir: RawFd, name: &std::ffi::CStr) -> WasiResult<libc::stat> {
    // SAFETY: all-zero is a valid `stat`; fstatat overwrites it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated and `st` a valid out pointer; an
    // invalid fd only yields EBADF.
    if unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
        return Err(Errno::last_host());
    }
    Ok(st)
}

/// Turns preview1 `*_set_times` arguments into the `utimensat` pair.
pub(crate) fn timespecs(atim: u64, mtim: u64, flags: u32) -> WasiResult<[libc::timespec; 2]> {
    let flags = u16::try_from(flags).map_err(|_| Errno::INVAL)?;
    let one = |value: u64, set: u16, now: u16| -> WasiResult<libc::timespec> {
        match (flags & set != 0, flags & now != 0) {
            (true, true) => Err(Errno::INVAL),
            (false, true) => Ok(libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_NOW,
            }),
            (true, false) => Ok(libc::timespec {
                tv_sec: (value / 1_000_000_000) as libc::time_t,
                tv_nsec: (value % 1_000_000_000) as libc::c_long,
            }),
            (false, false) => Ok(libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            }),
        }
    };
    Ok([
        one(atim, fstflags::ATIM, fstflags::ATIM_NOW)?,
        one(mtim, fstflags::MTIM, fstflags::MTIM_NOW)?,
    ])
}

/// The file type a stdio entry shows the guest: a character device,
/// except an inherited stream whose host descriptor is not a terminal,
/// which is of unknown type (so that `isatty` is false, as for a native
/// program).
fn stdio_type(kind: &Kind) -> u8 {
    let host = match kind {
        Kind::Input(InputStream::Inherit) => 0,
        Kind::Output(Output::Inherit, HostStream::Stdout) => 1,
        Kind::Output(Output::Inherit, HostStream::Stderr) => 2,
        _ => return filetype::CHARACTER_DEVICE,
    };
    // SAFETY: isatty only asks about a descriptor number.
    if unsafe { libc::isatty(host) } == 1 {
        filetype::CHARACTER_DEVICE
    } else {
        filetype::UNKNOWN
    }
}

/// The raw host descriptor of a file or directory entry (`EBADF` for
/// stdio).
fn host_fd(entry: &Entry) -> WasiResult<RawFd> {
    match &entry.kind {
        Kind::File(f) => Ok(f.as_raw_fd()),
        Kind::Dir { fd, .. } => Ok(fd.as_raw_fd()),
        Kind::Input(_) | Kind::Output(..) => Err(Errno::BADF),
    }
}

/// The open file of `entry`: `EISDIR` for directories, `ESPIPE` for stdio
/// (which has no offset).
fn file_of(entry: &mut Entry) -> WasiResult<&mut File> {
    match &mut entry.kind {
        Kind::File(f) => Ok(f),
        Kind::Dir { .. } => Err(Errno::ISDIR),
        Kind::Input(_) | Kind::Output(..) => Err(Errno::SPIPE),
    }
}

/// Retries a `readv`-style call while it fails with `EINTR`; its count on
/// success.
fn retry_count(mut f: impl FnMut() -> isize) -> WasiResult<usize> {
    loop {
        let n = f();
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(Errno::from_io(&e));
        }
    }
}

/// `readv` (or `preadv` at `offset`) from host descriptor `fd` straight
/// into the guest buffers `iovs`, at most [`MAX_IO`](crate::memory::MAX_IO)
/// bytes.
fn read_into_guest(
    fd: RawFd,
    mem: &mut GuestMemory<'_>,
    iovs: &[GuestIovec],
    offset: Option<i64>,
) -> WasiResult<usize> {
    mem.with_host_iovecs_mut(iovs, |host| {
        // At most MAX_IOVS entries.
        let count = host.len() as libc::c_int;
        retry_count(|| match offset {
            // SAFETY: every iovec points into guest memory, which stays
            // mutably borrowed for the call and is writable for each
            // buffer's whole length (checked by `iovecs`).
            None => unsafe { libc::readv(fd, host.as_ptr(), count) },
            // SAFETY: as above.
            Some(off) => unsafe { libc::preadv(fd, host.as_ptr(), count, off) },
        })
    })?
}

/// `writev` (or `pwritev` at `offset`) of the guest buffers `iovs` to host
/// descriptor `fd`, at most [`MAX_IO`](crate::memory::MAX_IO) bytes.
fn write_from_guest(
    fd: RawFd,
    mem: &GuestMemory<'_>,
    iovs: &[GuestIovec],
    offset: Option<i64>,
) -> WasiResult<usize> {
    let host: Vec<libc::iovec> = mem
        .io_slices(iovs)?
        .into_iter()
        .map(|s| libc::iovec {
            // writev only reads through it.
            iov_base: s.as_ptr().cast_mut().cast(),
            iov_len: s.len(),
        })
        .collect();
    // At most MAX_IOVS entries.
    let count = host.len() as libc::c_int;
    retry_count(|| match offset {
        // SAFETY: every iovec points into guest memory, borrowed for the
        // call and readable for each buffer's whole length.
        None => unsafe { libc::writev(fd, host.as_ptr(), count) },
        // SAFETY: as above.
        Some(off) => unsafe { libc::pwritev(fd, host.as_ptr(), count, off) },
    })
}

/// A read of stdin into the guest buffers `iovs`: in-memory bytes are
/// spread over them; the host's stdin fills the first non-empty one (a
/// short read), at most [`MAX_IO`](crate::memory::MAX_IO) bytes.
fn read_input(
    stream: &mut InputStream,
    mem: &mut GuestMemory<'_>,
    iovs: &[GuestIovec],
) -> WasiResult<usize> {
    match stream {
        InputStream::Null => Ok(0),
        InputStream::Bytes(bytes, pos) => {
            let rest = bytes.get(*pos..).unwrap_or(&[]);
            let n = rest.len().min(iovecs_len(iovs));
            mem.scatter(iovs, &rest[..n])?;
            *pos += n;
            Ok(n)
        }
        InputStream::Inherit => {
            let Some(v) = iovs.iter().find(|v| v.len > 0) else {
                return Ok(0);
            };
            // MAX_IO fits in a u32.
            let len = v.len.min(crate::memory::MAX_IO as u32);
            let buf = mem.slice_mut(v.ptr, len)?;
            retry(|| std::io::stdin().lock().read(buf))
        }
    }
}

/// A write of the guest buffers `iovs` to stdout or stderr, at most
/// [`MAX_IO`](crate::memory::MAX_IO) bytes, with no intermediate copy.
fn write_output(
    out: &Output,
    stream: HostStream,
    mem: &GuestMemory<'_>,
    iovs: &[GuestIovec],
) -> WasiResult<usize> {
    let slices = mem.io_slices(iovs)?;
    let total = slices.iter().map(|s| s.len()).sum();
    match out {
        Output::Null => {}
        Output::Capture(buf) => {
            let mut buf = buf.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for s in &slices {
                buf.extend_from_slice(s);
            }
        }
        Output::Inherit => {
            let r = match stream {
                HostStream::Stdout => {
                    let mut s = std::io::stdout().lock();
                    slices
                        .iter()
                        .try_for_each(|d| s.write_all(d))
                        .and_then(|()| s.flush())
                }
                HostStream::Stderr => {
                    let mut s = std::io::stderr().lock();
                    slices.iter().try_for_each(|d| s.write_all(d))
                }
            };
            r.map_err(|e| Errno::from_io(&e))?;
        }
    }
    Ok(total)
}

/// Host `fcntl(F_GETFL)` flags as preview1 `fdflags`.
fn host_fdflags(fd: RawFd) -> WasiResult<u16> {
    // SAFETY: F_GETFL reads flags only; a bad fd yields EBADF.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if fl < 0 {
        return Err(Errno::last_host());
    }
    let mut out = 0;
    if fl & libc::O_APPEND != 0 {
        out |= fdflags::APPEND;
    }
    if fl & libc::O_NONBLOCK != 0 {
        out |= fdflags::NONBLOCK;
    }
    if fl & libc::O_SYNC == libc::O_SYNC {
        out |= fdflags::SYNC;
    } else if fl & libc::O_DSYNC != 0 {
        out |= fdflags::DSYNC;
    }
    Ok(out)
}

impl WasiCtx {
    /// `fd_advise`: passed to `posix_fadvise` for files.
    pub(crate) fn fd_advise(
        &mut self,
        fd: u32,
        offset: u64,
        len: u64,
        advice: u32,
    ) -> WasiResult<()> {
        let advice = match advice {
            0 => libc::POSIX_FADV_NORMAL,
            1 => libc::POSIX_FADV_SEQUENTIAL,
            2 => libc::POSIX_FADV_RANDOM,
            3 => libc::POSIX_FADV_WILLNEED,
            4 => libc::POSIX_FADV_DONTNEED,
            5 => libc::POSIX_FADV_NOREUSE,
            _ => return Err(Errno::INVAL),
        };
        let entry = self.fds.get_mut(fd)?;
        file_of(entry)?;
        entry.require(rights::FD_ADVISE)?;
        let raw = host_fd(entry)?;
        let (off, len) = (offset as i64, len as i64);
        if off < 0 || len < 0 {
            return Err(Errno::INVAL);
        }
        // Advice is a hint. `WILLNEED` starts reading the range into the
        // page cache and `DONTNEED` drops it, work in proportion to a
        // length the guest chooses (`WILLNEED` over a large sparse file
        // took 2.5–5.6 ms in one call): both are taken and ignored.
        if advice == libc::POSIX_FADV_WILLNEED || advice == libc::POSIX_FADV_DONTNEED {
            return Ok(());
        }
        // SAFETY: posix_fadvise only takes integers; it returns an errno.
        let r = unsafe { libc::posix_fadvise(raw, off, len, advice) };
        if r != 0 {
            return Err(Errno::from_host(r));
        }
        Ok(())
    }

    /// `fd_allocate`: `fallocate` for files (`ENOTSUP` where the file
    /// system has no allocation call), [`crate::ctx::ALLOCATE_PART`]
    /// bytes per part from `done` on (the bytes of the range already
    /// reserved). The parts
    /// keep the file's size (`FALLOC_FL_KEEP_SIZE`); the last one extends
    /// it to the end of the range if that is further, so a call that
    /// fails part-way (`ENOSPC`, `EFBIG`) leaves the size as it was, as
    /// one `fallocate` of the whole range would.
    pub(crate) fn fd_allocate(
        &mut self,
        fd: u32,
        offset: u64,
        len: u64,
        done: u64,
    ) -> WasiResult<Step> {
        let entry = self.fds.get_mut(fd)?;
        file_of(entry)?;
        entry.require(rights::FD_ALLOCATE)?;
        let raw = host_fd(entry)?;
        let (Ok(off), Ok(total)) = (i64::try_from(offset), i64::try_from(len)) else {
            return Err(Errno::INVAL);
        };
        if total <= 0 || off.checked_add(total).is_none() {
            return Err(Errno::INVAL);
        }
        let done = done.min(len);
        let part = (len - done).min(crate::ctx::ALLOCATE_PART);
        // fallocate(2), not posix_fallocate(3): on a file system without
        // it, glibc's posix_fallocate falls back to writing every block of
        // the range, which for a guest-chosen length holds the thread for
        // as long as the guest likes. Here that is ENOTSUP at once.
        // SAFETY: fallocate only takes integers; `off + done + part` is
        // within `off + total`, which fits an i64.
        check_ret(unsafe {
            libc::fallocate(
                raw,
                libc::FALLOC_FL_KEEP_SIZE,
                off + done as i64,
                part as i64,
            )
        })?;
        let done = done + part;
        if done < len {
            return Ok(Step::More(done));
        }
        // The range's last byte again, without `KEEP_SIZE`: it is
        // allocated already, and the kernel raises the size to the range's
        // end if that is further, atomically (a `fstat` then `ftruncate`
        // cut off what another writer appended between the two).
        // SAFETY: fallocate only takes integers; `off + total - 1` fits.
        check_ret(unsafe { libc::fallocate(raw, 0, off + total - 1, 1) })?;
        Ok(Step::Done)
    }

    /// `fd_close`: closes the host descriptor too (preopens and stdio may
    /// be closed like any other).
    pub(crate) fn fd_close(&mut self, fd: u32) -> WasiResult<()> {
        self.fds.remove(fd).map(drop)
    }

    /// `fd_sync` (`data_only = false`) and `fd_datasync`.
    pub(crate) fn fd_sync(&mut self, fd: u32, data_only: bool) -> WasiResult<()> {
        let entry = self.fds.get(fd)?;
        let raw = match &entry.kind {
            Kind::Input(_) | Kind::Output(..) => return Err(Errno::INVAL),
            Kind::File(f) => f.as_raw_fd(),
            Kind::Dir { fd, .. } => fd.as_raw_fd(),
        };
        entry.require(if data_only {
            rights::FD_DATASYNC
        } else {
            rights::FD_SYNC
        })?;
        // SAFETY: fsync/fdatasync take a descriptor we own.
        let r = unsafe {
            if data_only {
                libc::fdatasync(raw)
            } else {
                libc::fsync(raw)
            }
        };
        if r != 0 {
            return Err(Errno::last_host());
        }
        Ok(())
    }

    /// `fd_fdstat_get`: stdio are character devices without seek rights
    /// (so wasi-libc treats them as terminals and line-buffers stdout),
    /// except an inherited stream whose host descriptor is not a terminal
    /// (a file or a pipe): that one is of unknown type, so `isatty` is
    /// false, as for a native program (programs wrote colour codes and
    /// progress bars into redirected output).
    pub(crate) fn fd_fdstat_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        out: u32,
    ) -> WasiResult<()> {
        mem.slice(out, FDSTAT_SIZE)?;
        let entry = self.fds.get(fd)?;
        let (ft, flags) = match &entry.kind {
            Kind::Input(_) | Kind::Output(..) => (stdio_type(&entry.kind), entry.flags),
            Kind::Dir { fd, .. } => (filetype::DIRECTORY, host_fdflags(fd.as_raw_fd())?),
            Kind::File(f) => (
                filetype::from_mode(fstat(f.as_raw_fd())?.st_mode),
                host_fdflags(f.as_raw_fd())?,
            ),
        };
        write_fdstat(
            mem,
            out,
            ft,
            flags,
            entry.rights_base,
            entry.rights_inheriting,
        )
    }

    /// `fd_fdstat_set_flags`: `APPEND` and `NONBLOCK` can change; the sync
    /// flags cannot be changed after opening (`ENOTSUP`).
    pub(crate) fn fd_fdstat_set_flags(&mut self, fd: u32, flags: u32) -> WasiResult<()> {
        let flags = u16::try_from(flags).map_err(|_| Errno::INVAL)?;
        let changeable = fdflags::APPEND | fdflags::NONBLOCK;
        let entry = self.fds.get_mut(fd)?;
        entry.require(rights::FD_FDSTAT_SET_FLAGS)?;
        let raw = match &entry.kind {
            Kind::Input(_) | Kind::Output(..) => {
                if flags & !changeable != 0 {
                    return Err(Errno::NOTSUP);
                }
                entry.flags = flags;
                return Ok(());
            }
            Kind::File(f) => f.as_raw_fd(),
            Kind::Dir { fd, .. } => fd.as_raw_fd(),
        };
        let current = host_fdflags(raw)?;
        if (current ^ flags) & !changeable != 0 {
            return Err(Errno::NOTSUP);
        }
        // SAFETY: F_GETFL/F_SETFL only read and set status flags.
        let r = unsafe {
            let mut fl = libc::fcntl(raw, libc::F_GETFL);
            if fl < 0 {
                -1
            } else {
                fl &= !(libc::O_APPEND | libc::O_NONBLOCK);
                if flags & fdflags::APPEND != 0 {
                    fl |= libc::O_APPEND;
                }
                if flags & fdflags::NONBLOCK != 0 {
                    fl |= libc::O_NONBLOCK;
                }
                libc::fcntl(raw, libc::F_SETFL, fl)
            }
        };
        if r < 0 {
            return Err(Errno::last_host());
        }
        Ok(())
    }

    /// `fd_fdstat_set_rights`: rights can only be dropped.
    pub(crate) fn fd_fdstat_set_rights(
        &mut self,
        fd: u32,
        base: u64,
        inheriting: u64,
    ) -> WasiResult<()> {
        let entry = self.fds.get_mut(fd)?;
        if base & !entry.rights_base != 0 || inheriting & !entry.rights_inheriting != 0 {
            return Err(Errno::NOTCAPABLE);
        }
        entry.rights_base = base;
        entry.rights_inheriting = inheriting;
        Ok(())
    }

    /// `fd_filestat_get`; stdio report a zeroed character device.
    pub(crate) fn fd_filestat_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        out: u32,
    ) -> WasiResult<()> {
        mem.slice(out, FILESTAT_SIZE)?;
        let entry = self.fds.get(fd)?;
        entry.require(rights::FD_FILESTAT_GET)?;
        let stat = match host_fd(entry) {
            Ok(raw) => Filestat::from_host(&fstat(raw)?),
            // Stdio: of the type `fd_fdstat_get` reports.
            Err(_) => Filestat {
                filetype: stdio_type(&entry.kind),
                ..Filestat::default()
            },
        };
        stat.write(mem, out)
    }

    /// `fd_filestat_set_size`: `ftruncate`.
    pub(crate) fn fd_filestat_set_size(&mut self, fd: u32, size: u64) -> WasiResult<()> {
        let entry = self.fds.get_mut(fd)?;
        file_of(entry)?;
        entry.require(rights::FD_FILESTAT_SET_SIZE)?;
        let file = file_of(entry)?;
        if size > i64::MAX as u64 {
            return Err(Errno::INVAL);
        }
        retry(|| file.set_len(size))
    }

    /// `fd_filestat_set_times`: `futimens` on files and directories.
    pub(crate) fn fd_filestat_set_times(
        &mut self,
        fd: u32,
        atim: u64,
        mtim: u64,
        flags: u32,
    ) -> WasiResult<()> {
        let times = timespecs(atim, mtim, flags)?;
        let entry = self.fds.get(fd)?;
        entry.require(rights::FD_FILESTAT_SET_TIMES)?;
        let raw = host_fd(entry)?;
        // SAFETY: `times` points to two valid timespecs.
        if unsafe { libc::futimens(raw, times.as_ptr()) } != 0 {
            return Err(Errno::last_host());
        }
        Ok(())
    }

    /// `fd_read`: scatter read from stdin or a file, straight into guest
    /// memory, at most [`MAX_IO`](crate::memory::MAX_IO) bytes.
    pub(crate) fn fd_read(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        nread: u32,
    ) -> WasiResult<()> {
        let iovs = mem.iovecs(iovs, iovs_len)?;
        mem.slice(nread, 4)?;
        let entry = self.fds.get_mut(fd)?;
        if matches!(entry.kind, Kind::Output(..)) {
            return Err(Errno::BADF);
        }
        entry.require(rights::FD_READ)?;
        let n = match &mut entry.kind {
            Kind::Input(stream) => read_input(stream, mem, &iovs)?,
            Kind::File(f) => read_into_guest(f.as_raw_fd(), mem, &iovs, None)?,
            Kind::Dir { .. } => return Err(Errno::ISDIR),
            Kind::Output(..) => return Err(Errno::BADF),
        };
        // n <= MAX_IO.
        mem.write_u32(nread, n as u32)
    }

    /// `fd_pread`: scatter read at `offset` without moving the file offset,
    /// at most [`MAX_IO`](crate::memory::MAX_IO) bytes.
    pub(crate) fn fd_pread(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        offset: u64,
        nread: u32,
    ) -> WasiResult<()> {
        let iovs = mem.iovecs(iovs, iovs_len)?;
        mem.slice(nread, 4)?;
        let entry = self.fds.get_mut(fd)?;
        file_of(entry)?;
        entry.require(rights::FD_READ | rights::FD_SEEK)?;
        let file = file_of(entry)?;
        let offset = i64::try_from(offset).map_err(|_| Errno::INVAL)?;
        let n = read_into_guest(file.as_raw_fd(), mem, &iovs, Some(offset))?;
        mem.write_u32(nread, n as u32)
    }

    /// `fd_write`: gather write to stdout/stderr or a file, straight from
    /// guest memory, at most [`MAX_IO`](crate::memory::MAX_IO) bytes.
    pub(crate) fn fd_write(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        nwritten: u32,
    ) -> WasiResult<()> {
        let iovs = mem.iovecs(iovs, iovs_len)?;
        mem.slice(nwritten, 4)?;
        let entry = self.fds.get_mut(fd)?;
        if matches!(entry.kind, Kind::Input(_)) {
            return Err(Errno::BADF);
        }
        entry.require(rights::FD_WRITE)?;
        let n = match &mut entry.kind {
            Kind::Output(out, stream) => write_output(out, *stream, mem, &iovs)?,
            Kind::File(f) => write_from_guest(f.as_raw_fd(), mem, &iovs, None)?,
            Kind::Dir { .. } => return Err(Errno::ISDIR),
            Kind::Input(_) => return Err(Errno::BADF),
        };
        // n <= MAX_IO.
        mem.write_u32(nwritten, n as u32)
    }

    /// `fd_pwrite`: gather write at `offset` without moving the file
    /// offset, at most [`MAX_IO`](crate::memory::MAX_IO) bytes.
    pub(crate) fn fd_pwrite(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        offset: u64,
        nwritten: u32,
    ) -> WasiResult<()> {
        let iovs = mem.iovecs(iovs, iovs_len)?;
        mem.slice(nwritten, 4)?;
        let entry = self.fds.get_mut(fd)?;
        file_of(entry)?;
        entry.require(rights::FD_WRITE | rights::FD_SEEK)?;
        let file = file_of(entry)?;
        let offset = i64::try_from(offset).map_err(|_| Errno::INVAL)?;
        let n = write_from_guest(file.as_raw_fd(), mem, &iovs, Some(offset))?;
        mem.write_u32(nwritten, n as u32)
    }

    /// `fd_seek`: stdio has no offset (`ESPIPE`); directories `EISDIR`.
    pub(crate) fn fd_seek(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        offset: u64,
        how: u32,
        out: u32,
    ) -> WasiResult<()> {
        mem.slice(out, 8)?;
        let offset = offset as i64;
        let pos = match u8::try_from(how).map_err(|_| Errno::INVAL)? {
            whence::SET => SeekFrom::Start(u64::try_from(offset).map_err(|_| Errno::INVAL)?),
            whence::CUR => SeekFrom::Current(offset),
            whence::END => SeekFrom::End(offset),
            _ => return Err(Errno::INVAL),
        };
        let entry = self.fds.get_mut(fd)?;
        file_of(entry)?;
        let needed = if pos == SeekFrom::Current(0) {
            rights::FD_TELL
        } else {
            rights::FD_SEEK
        };
        if entry.rights_base & (needed | rights::FD_SEEK) == 0 {
            return Err(Errno::NOTCAPABLE);
        }
        let file = file_of(entry)?;
        let new = retry(|| file.seek(pos))?;
        mem.write_u64(out, new)
    }

    /// `fd_tell`: the current file offset.
    pub(crate) fn fd_tell(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        out: u32,
    ) -> WasiResult<()> {
        mem.slice(out, 8)?;
        let entry = self.fds.get_mut(fd)?;
        file_of(entry)?;
        if entry.rights_base & (rights::FD_TELL | rights::FD_SEEK) == 0 {
            return Err(Errno::NOTCAPABLE);
        }
        let file = file_of(entry)?;
        let pos = retry(|| file.stream_position())?;
        mem.write_u64(out, pos)
    }

    /// `fd_prestat_get`: tag 0 (directory) and the guest name's length, for
    /// preopens only (`EBADF` otherwise, which ends wasi-libc's scan).
    pub(crate) fn fd_prestat_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        out: u32,
    ) -> WasiResult<()> {
        let name = self.preopen_name(fd)?;
        let len = u32::try_from(name.len()).map_err(|_| Errno::OVERFLOW)?;
        let mut b = [0u8; 8];
        b[4..8].copy_from_slice(&len.to_le_bytes());
        mem.write_bytes(out, &b)
    }

    /// `fd_prestat_dir_name`: the guest name, not NUL-terminated
    /// (`ENAMETOOLONG` if `len` is too small).
    pub(crate) fn fd_prestat_dir_name(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        ptr: u32,
        len: u32,
    ) -> WasiResult<()> {
        let name = self.preopen_name(fd)?;
        if name.len() > len as usize {
            return Err(Errno::NAMETOOLONG);
        }
        mem.write_bytes(ptr, name)
    }

    fn preopen_name(&self, fd: u32) -> WasiResult<&[u8]> {
        match &self.fds.get(fd)?.kind {
            Kind::Dir {
                preopen: Some(name),
                ..
            } => Ok(name),
            _ => Err(Errno::BADF),
        }
    }

    /// `fd_readdir`: entries from `cookie` on (see [`dir`]), one part of
    /// at most [`dir::ENTRIES_PER_PART`] entries per call; `done` is the
    /// bytes of `buf` earlier parts wrote.
    pub(crate) fn fd_readdir(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        buf: u32,
        buf_len: u32,
        cookie: u64,
        bufused: u32,
        done: u64,
    ) -> WasiResult<Step> {
        mem.slice(buf, buf_len)?;
        mem.slice(bufused, 4)?;
        let entry = self.fds.get_mut(fd)?;
        entry.require(rights::FD_READDIR)?;
        let Kind::Dir {
            fd: dirfd, cursor, ..
        } = &mut entry.kind
        else {
            return Err(Errno::NOTDIR);
        };
        let out = mem.slice_mut(buf, buf_len)?;
        let written = usize::try_from(done).unwrap_or(usize::MAX).min(out.len());
        match dir::read_part(dirfd.as_fd(), cursor, cookie, out, written)? {
            dir::Part::More(w) => Ok(Step::More(w as u64)),
            dir::Part::Done(w) => {
                // w <= buf_len, a u32.
                mem.write_u32(bufused, w as u32)?;
                Ok(Step::Done)
            }
        }
    }
}
