//! The `path_*` functions. Every lookup is confined to the directory
//! descriptor the guest names (see [`sandbox`](crate::sandbox)).

// Methods take the wasm parameters one by one, as the preview1 signature
// lists them.
#![allow(clippy::too_many_arguments)]

use crate::ctx::WasiCtx;
use crate::errno::{Errno, WasiResult};
use crate::fd::{fstat, timespecs};
use crate::fdtable::{Entry, Kind};
use crate::memory::GuestMemory;
use crate::sandbox::{self, open_beneath, Parent, SplitPath};
use crate::types::{fdflags, oflags, rights, Filestat, FILESTAT_SIZE, LOOKUP_SYMLINK_FOLLOW};
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

/// Longest symbolic link target `path_readlink` reads.
const READLINK_MAX: usize = 4096;

/// Turns a libc `-1` return into the mapped host errno.
fn check(ret: libc::c_int) -> WasiResult<()> {
    if ret < 0 {
        Err(Errno::last_host())
    } else {
        Ok(())
    }
}

/// `fstatat(parent, name, AT_SYMLINK_NOFOLLOW)`.
fn lstat_at(parent: &Parent<'_>, split: &SplitPath) -> WasiResult<libc::stat> {
    crate::fd::lstat_in(parent.raw(), &split.name)
}

fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

impl WasiCtx {
    /// The host directory of guest fd `fd`, which must hold `right`:
    /// `ENOTDIR` for non-directories, `ENOTCAPABLE` without the right.
    fn dir_fd(&self, fd: u32, right: u64) -> WasiResult<Arc<OwnedFd>> {
        let entry = self.fds.get(fd)?;
        match &entry.kind {
            Kind::Dir { fd, .. } => {
                entry.require(right)?;
                Ok(Arc::clone(fd))
            }
            _ => Err(Errno::NOTDIR),
        }
    }

    /// `path_open`. The host access mode follows the requested rights
    /// (`FD_READ`/`FD_READDIR` read; `FD_WRITE`, `FD_ALLOCATE`,
    /// `FD_FILESTAT_SET_SIZE` write); requested rights are cut down to what
    /// the directory may hand on and what the file type allows.
    pub(crate) fn path_open(
        &mut self,
        mem: &mut GuestMemory<'_>,
        dirfd: u32,
        lookup: u32,
        path: u32,
        path_len: u32,
        oflags: u32,
        rights_base: u64,
        rights_inheriting: u64,
        fdflags: u32,
        fd_out: u32,
    ) -> WasiResult<()> {
        mem.slice(fd_out, 4)?;
        let path = mem.path(path, path_len)?;
        let oflags = u16::try_from(oflags).map_err(|_| Errno::INVAL)?;
        let fdflags = u16::try_from(fdflags).map_err(|_| Errno::INVAL)?;
        let mut needed = rights::PATH_OPEN;
        if oflags & oflags::CREAT != 0 {
            needed |= rights::PATH_CREATE_FILE;
        }
        if oflags & oflags::TRUNC != 0 {
            needed |= rights::PATH_FILESTAT_SET_SIZE;
        }
        let dir = self.dir_fd(dirfd, needed)?;
        let parent_inheriting = self.fds.get(dirfd)?.rights_inheriting;
        let base = rights_base & parent_inheriting;
        let inheriting = rights_inheriting & parent_inheriting;

        let mut flags = 0;
        if lookup & LOOKUP_SYMLINK_FOLLOW == 0 {
            flags |= libc::O_NOFOLLOW;
        }
        if oflags & oflags::CREAT != 0 {
            flags |= libc::O_CREAT;
        }
        if oflags & oflags::DIRECTORY != 0 {
            flags |= libc::O_DIRECTORY;
        }
        if oflags & oflags::EXCL != 0 {
            flags |= libc::O_EXCL;
        }
        if oflags & oflags::TRUNC != 0 {
            flags |= libc::O_TRUNC;
        }
        if fdflags & fdflags::APPEND != 0 {
            flags |= libc::O_APPEND;
        }
        if fdflags & fdflags::DSYNC != 0 {
            flags |= libc::O_DSYNC;
        }
        if fdflags & (fdflags::SYNC | fdflags::RSYNC) != 0 {
            flags |= libc::O_SYNC;
        }
        if fdflags & fdflags::NONBLOCK != 0 {
            flags |= libc::O_NONBLOCK;
        }
        let read = base & (rights::FD_READ | rights::FD_READDIR) != 0;
        let write =
            base & (rights::FD_WRITE | rights::FD_ALLOCATE | rights::FD_FILESTAT_SET_SIZE) != 0;
        flags |= match (read, write) {
            (_, false) => libc::O_RDONLY,
            (false, true) => libc::O_WRONLY,
            (true, true) => libc::O_RDWR,
        };
        let host = open_beneath(dir.as_fd(), &path, flags, 0o666)?;
        let st = fstat(host.as_raw_fd())?;
        let entry = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            Entry {
                kind: Kind::Dir {
                    fd: Arc::new(host),
                    preopen: None,
                    cursor: crate::dir::DirCursor::default(),
                },
                rights_base: base & rights::DIR,
                rights_inheriting: inheriting,
                flags: 0,
            }
        } else {
            Entry {
                kind: Kind::File(File::from(host)),
                rights_base: base & rights::FILE,
                rights_inheriting: inheriting,
                flags: 0,
            }
        };
        let fd = self.fds.insert(entry)?;
        mem.write_u32(fd_out, fd)
    }

    /// `path_filestat_get`. Following a final symbolic link resolves it with
    /// `openat2` (so it cannot lead outside); otherwise the link itself is
    /// described.
    pub(crate) fn path_filestat_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
        dirfd: u32,
        lookup: u32,
        path: u32,
        path_len: u32,
        out: u32,
    ) -> WasiResult<()> {
        mem.slice(out, FILESTAT_SIZE)?;
        let path = mem.path(path, path_len)?;
        let dir = self.dir_fd(dirfd, rights::PATH_FILESTAT_GET)?;
        let split = sandbox::split(&path)?;
        let st = if lookup & LOOKUP_SYMLINK_FOLLOW != 0 || split.trailing_slash {
            let fd = open_beneath(dir.as_fd(), &path, libc::O_PATH, 0)?;
            fstat(fd.as_raw_fd())?
        } else {
            let parent = sandbox::open_parent(dir.as_fd(), &split)?;
            lstat_at(&parent, &split)?
        };
        Filestat::from_host(&st).write(mem, out)
    }

    /// `path_filestat_set_times`.
    pub(crate) fn path_filestat_set_times(
        &mut self,
        mem: &mut GuestMemory<'_>,
        dirfd: u32,
        lookup: u32,
        path: u32,
        path_len: u32,
        atim: u64,
        mtim: u64,
        fst: u32,
    ) -> WasiResult<()> {
        let path = mem.path(path, path_len)?;
        let times = timespecs(atim, mtim, fst)?;
        let dir = self.dir_fd(dirfd, rights::PATH_FILESTAT_SET_TIMES)?;
        let split = sandbox::split(&path)?;
        if lookup & LOOKUP_SYMLINK_FOLLOW != 0 || split.trailing_slash {
            let fd = open_beneath(dir.as_fd(), &path, libc::O_PATH, 0)?;
            // SAFETY: "" is NUL-terminated; `times` holds two timespecs;
            // AT_EMPTY_PATH makes this act on `fd` itself.
            check(unsafe {
                libc::utimensat(
                    fd.as_raw_fd(),
                    c"".as_ptr(),
                    times.as_ptr(),
                    libc::AT_EMPTY_PATH,
                )
            })
        } else {
            let parent = sandbox::open_parent(dir.as_fd(), &split)?;
            // SAFETY: `name` is NUL-terminated; `times` holds two timespecs.
            check(unsafe {
                libc::utimensat(
                    parent.raw(),
                    split.name.as_ptr(),
                    times.as_ptr(),
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            })
        }
    }

    /// `path_create_directory`: `mkdirat` in the resolved parent.
    pub(crate) fn path_create_directory(
        &mut self,
        mem: &mut GuestMemory<'_>,
        dirfd: u32,
        path: u32,
        path_len: u32,
    ) -> WasiResult<()> {
        let path = mem.path(path, path_len)?;
        let dir = self.dir_fd(dirfd, rights::PATH_CREATE_DIRECTORY)?;
        let (parent, split) = sandbox::resolve(dir.as_fd(), &path)?;
        // SAFETY: `name` is NUL-terminated.
        check(unsafe { libc::mkdirat(parent.raw(), split.name.as_ptr(), 0o777) })
    }

    /// `path_remove_directory`: `unlinkat(AT_REMOVEDIR)`.
    pub(crate) fn path_remove_directory(
        &mut self,
        mem: &mut GuestMemory<'_>,
        dirfd: u32,
        path: u32,
        path_len: u32,
    ) -> WasiResult<()> {
        let path = mem.path(path, path_len)?;
        let dir = self.dir_fd(dirfd, rights::PATH_REMOVE_DIRECTORY)?;
        let (parent, split) = sandbox::resolve(dir.as_fd(), &path)?;
        // SAFETY: `name` is NUL-terminated.
        check(unsafe { libc::unlinkat(parent.raw(), split.name.as_ptr(), libc::AT_REMOVEDIR) })
    }

    /// `path_unlink_file`: `unlinkat`; a trailing slash is `ENOTDIR` (or
    /// `EISDIR` for a directory).
    pub(crate) fn path_unlink_file(
        &mut self,
        mem: &mut GuestMemory<'_>,
        dirfd: u32,
        path: u32,
        path_len: u32,
    ) -> WasiResult<()> {
        let path = mem.path(path, path_len)?;
        let dir = self.dir_fd(dirfd, rights::PATH_UNLINK_FILE)?;
        let (parent, split) = sandbox::resolve(dir.as_fd(), &path)?;
        if split.trailing_slash {
            let st = lstat_at(&parent, &split)?;
            return Err(if is_dir(&st) {
                Errno::ISDIR
            } else {
                Errno::NOTDIR
            });
        }
        // SAFETY: `name` is NUL-terminated.
        check(unsafe { libc::unlinkat(parent.raw(), split.name.as_ptr(), 0) })
    }

    /// `path_rename`: `renameat` between two resolved parents.
    pub(crate) fn path_rename(
        &mut self,
        mem: &mut GuestMemory<'_>,
        old_fd: u32,
        old: u32,
        old_len: u32,
        new_fd: u32,
        new: u32,
        new_len: u32,
    ) -> WasiResult<()> {
        let old = mem.path(old, old_len)?;
        let new = mem.path(new, new_len)?;
        let old_dir = self.dir_fd(old_fd, rights::PATH_RENAME_SOURCE)?;
        let new_dir = self.dir_fd(new_fd, rights::PATH_RENAME_TARGET)?;
        let (op, os) = sandbox::resolve(old_dir.as_fd(), &old)?;
        let (np, ns) = sandbox::resolve(new_dir.as_fd(), &new)?;
        if (os.trailing_slash || ns.trailing_slash) && !is_dir(&lstat_at(&op, &os)?) {
            return Err(Errno::NOTDIR);
        }
        // SAFETY: both names are NUL-terminated.
        check(unsafe { libc::renameat(op.raw(), os.name.as_ptr(), np.raw(), ns.name.as_ptr()) })
    }

    /// `path_link`: `linkat` without following; asking to follow a final
    /// symbolic link is `ENOTSUP` (it would need privileges to do safely).
    pub(crate) fn path_link(
        &mut self,
        mem: &mut GuestMemory<'_>,
        old_fd: u32,
        lookup: u32,
        old: u32,
        old_len: u32,
        new_fd: u32,
        new: u32,
        new_len: u32,
    ) -> WasiResult<()> {
        let old = mem.path(old, old_len)?;
        let new = mem.path(new, new_len)?;
        let old_dir = self.dir_fd(old_fd, rights::PATH_LINK_SOURCE)?;
        let new_dir = self.dir_fd(new_fd, rights::PATH_LINK_TARGET)?;
        if lookup & LOOKUP_SYMLINK_FOLLOW != 0 {
            return Err(Errno::NOTSUP);
        }
        let (op, os) = sandbox::resolve(old_dir.as_fd(), &old)?;
        let (np, ns) = sandbox::resolve(new_dir.as_fd(), &new)?;
        // SAFETY: both names are NUL-terminated.
        check(unsafe { libc::linkat(op.raw(), os.name.as_ptr(), np.raw(), ns.name.as_ptr(), 0) })
    }

    /// `path_readlink`: the link's target, cut to `buf_len` bytes.
    pub(crate) fn path_readlink(
        &mut self,
        mem: &mut GuestMemory<'_>,
        dirfd: u32,
        path: u32,
        path_len: u32,
        buf: u32,
        buf_len: u32,
        bufused: u32,
    ) -> WasiResult<()> {
        mem.slice(buf, buf_len)?;
        mem.slice(bufused, 4)?;
        let path = mem.path(path, path_len)?;
        let dir = self.dir_fd(dirfd, rights::PATH_READLINK)?;
        let (parent, split) = sandbox::resolve(dir.as_fd(), &path)?;
        let mut target = vec![0u8; READLINK_MAX];
        // SAFETY: `name` is NUL-terminated; `target` is writable for its
        // whole length.
        let n = unsafe {
            libc::readlinkat(
                parent.raw(),
                split.name.as_ptr(),
                target.as_mut_ptr().cast(),
                target.len(),
            )
        };
        if n < 0 {
            return Err(Errno::last_host());
        }
        let n = (n as usize).min(buf_len as usize);
        mem.write_bytes(buf, &target[..n])?;
        mem.write_u32(bufused, n as u32)
    }

    /// `path_symlink`: creates `new` holding `old`. An absolute target is
    /// refused with `ENOTCAPABLE`, like an absolute path: it names
    /// something outside every preopen by construction, and while the
    /// guest could never follow it (lookups are confined), a host tool
    /// working on the directory could. A relative target may still climb
    /// out with `..` (and a later rename can make any relative target do
    /// so), so it is allowed: following it is confined like every other
    /// lookup, and fails with `ENOTCAPABLE` if it leads outside. Host tools
    /// must not follow symbolic links in a preopened directory (see
    /// `docs/SECURITY.md`).
    pub(crate) fn path_symlink(
        &mut self,
        mem: &mut GuestMemory<'_>,
        old: u32,
        old_len: u32,
        dirfd: u32,
        new: u32,
        new_len: u32,
    ) -> WasiResult<()> {
        let old = mem.path(old, old_len)?;
        if old.is_empty() {
            return Err(Errno::NOENT);
        }
        if old.first() == Some(&b'/') {
            return Err(Errno::NOTCAPABLE);
        }
        let target = CString::new(old).map_err(|_| Errno::ILSEQ)?;
        let new = mem.path(new, new_len)?;
        let dir = self.dir_fd(dirfd, rights::PATH_SYMLINK)?;
        let (parent, split) = sandbox::resolve(dir.as_fd(), &new)?;
        // SAFETY: both strings are NUL-terminated.
        check(unsafe { libc::symlinkat(target.as_ptr(), parent.raw(), split.name.as_ptr()) })
    }
}
