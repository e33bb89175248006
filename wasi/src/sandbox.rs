//! Path resolution confined to a directory descriptor.
//!
//! Every lookup a guest path causes goes through `openat2(2)` with
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` relative to the directory
//! descriptor the guest named. The kernel then refuses, atomically with the
//! lookup, any path that would leave that directory: a `..` above it, an
//! absolute path, and a symbolic link (anywhere in the path, including one
//! created concurrently) whose target lies outside, as well as `/proc`
//! style magic links. Such refusals come back as `EXDEV`, which we report
//! as `ENOTCAPABLE` (76). Absolute guest paths are refused up front with
//! `ENOTCAPABLE` too.
//!
//! Operations that have no `openat2` form (`mkdirat`, `unlinkat`,
//! `renameat`, `symlinkat`, `linkat`, `readlinkat`, `fstatat`,
//! `utimensat`) first open the path's *parent* through `openat2` and then
//! act on a single final component relative to that descriptor, never
//! following a symbolic link in it. The final component is never `..`: a
//! path ending in `.` or `..` is resolved whole and acted on as `.`.
//!
//! There is no fallback for kernels without `openat2` (before 5.6):
//! [`probe`] fails and so does preopening a directory.

use crate::errno::{Errno, WasiResult};
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// How many times a lookup is retried when `openat2` reports `EAGAIN`
/// (a concurrent rename made the kernel unsure the walk stayed beneath).
const EAGAIN_RETRIES: u32 = 64;

/// Opens `path` relative to `dir` with `openat2`, confined beneath `dir`.
///
/// `flags` are `open(2)` flags (`O_CLOEXEC` is always added); `mode` is used
/// only with `O_CREAT`. Escapes return `ENOTCAPABLE`.
pub fn open_beneath(
    dir: BorrowedFd<'_>,
    path: &[u8],
    flags: i32,
    mode: u32,
) -> WasiResult<OwnedFd> {
    if path.first() == Some(&b'/') {
        return Err(Errno::NOTCAPABLE);
    }
    let cpath = CString::new(path).map_err(|_| Errno::ILSEQ)?;
    let flags = flags | libc::O_CLOEXEC;
    let mut how: libc::open_how = {
        // SAFETY: open_how is a plain C struct of integers; all zeroes is a
        // valid value, and it may grow fields in future libc versions.
        unsafe { std::mem::zeroed() }
    };
    how.flags = flags as u32 as u64;
    how.mode = if flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE {
        u64::from(mode)
    } else {
        0
    };
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    let mut tries = 0;
    loop {
        // SAFETY: `cpath` is a valid NUL-terminated string and `how` a valid
        // open_how whose size we pass; both outlive the call. The returned
        // descriptor, if any, is owned by nobody else.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                cpath.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if ret >= 0 {
            // SAFETY: the kernel just returned this new descriptor to us.
            return Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) });
        }
        let err = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        match err {
            libc::EXDEV => return Err(Errno::NOTCAPABLE),
            libc::EAGAIN if tries < EAGAIN_RETRIES => tries += 1,
            libc::EINTR => {}
            _ => return Err(Errno::from_host(err)),
        }
    }
}

/// Checks that this kernel has `openat2` with `RESOLVE_BENEATH`, by opening
/// `.` beneath `dir`.
pub fn probe(dir: BorrowedFd<'_>) -> WasiResult<()> {
    open_beneath(dir, b".", libc::O_PATH | libc::O_DIRECTORY, 0).map(drop)
}

/// A guest path split into the directory that holds it and its final
/// component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitPath {
    /// Path of the parent directory, relative to the base descriptor; empty
    /// means the base directory itself.
    pub parent: Vec<u8>,
    /// The final component: never empty, never contains `/`, never `..`.
    pub name: CString,
    /// The path ended in `/` (the target must be a directory).
    pub trailing_slash: bool,
}

/// Splits a guest path. Empty paths are `ENOENT`, absolute ones
/// `ENOTCAPABLE`; a path whose last component is `.` or `..` becomes
/// (whole path, `.`) so that `..` is always resolved by `openat2`.
pub fn split(path: &[u8]) -> WasiResult<SplitPath> {
    if path.is_empty() {
        return Err(Errno::NOENT);
    }
    if path[0] == b'/' {
        return Err(Errno::NOTCAPABLE);
    }
    let mut end = path.len();
    while end > 0 && path[end - 1] == b'/' {
        end -= 1;
    }
    let trailing_slash = end < path.len();
    let trimmed = &path[..end];
    let (parent, name) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (&trimmed[..0], trimmed),
    };
    let (parent, name) = if name == b"." || name == b".." {
        (trimmed, &b"."[..])
    } else {
        (parent, name)
    };
    Ok(SplitPath {
        parent: parent.to_vec(),
        name: CString::new(name).map_err(|_| Errno::ILSEQ)?,
        trailing_slash,
    })
}

/// A directory descriptor to act relative to: the base itself or a parent
/// opened beneath it.
pub enum Parent<'a> {
    /// The base directory.
    Base(BorrowedFd<'a>),
    /// A subdirectory opened with [`open_beneath`].
    Opened(OwnedFd),
}

impl Parent<'_> {
    /// The raw descriptor for an `*at` call.
    pub fn raw(&self) -> RawFd {
        match self {
            Parent::Base(fd) => fd.as_raw_fd(),
            Parent::Opened(fd) => fd.as_raw_fd(),
        }
    }
}

/// Opens the parent directory of `split` beneath `dir`.
pub fn open_parent<'a>(dir: BorrowedFd<'a>, split: &SplitPath) -> WasiResult<Parent<'a>> {
    if split.parent.is_empty() {
        return Ok(Parent::Base(dir));
    }
    open_beneath(dir, &split.parent, libc::O_PATH | libc::O_DIRECTORY, 0).map(Parent::Opened)
}

/// Splits `path` and opens its parent: the usual first step of a `path_*`
/// function.
pub fn resolve<'a>(dir: BorrowedFd<'a>, path: &[u8]) -> WasiResult<(Parent<'a>, SplitPath)> {
    let split = split(path)?;
    let parent = open_parent(dir, &split)?;
    Ok((parent, split))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(p: &str) -> (String, String, bool) {
        let s = split(p.as_bytes()).unwrap();
        (
            String::from_utf8(s.parent).unwrap(),
            s.name.to_str().unwrap().to_string(),
            s.trailing_slash,
        )
    }

    #[test]
    fn split_paths() {
        assert_eq!(sp("a"), ("".into(), "a".into(), false));
        assert_eq!(sp("a/b/c"), ("a/b".into(), "c".into(), false));
        assert_eq!(sp("a/b/"), ("a".into(), "b".into(), true));
        assert_eq!(sp(".."), ("..".into(), ".".into(), false));
        assert_eq!(sp("a/.."), ("a/..".into(), ".".into(), false));
        assert_eq!(sp("."), (".".into(), ".".into(), false));
        assert_eq!(sp("a//"), ("".into(), "a".into(), true));
        assert_eq!(split(b"").unwrap_err(), Errno::NOENT);
        assert_eq!(split(b"/etc").unwrap_err(), Errno::NOTCAPABLE);
        assert_eq!(split(b"a\0b").unwrap_err(), Errno::ILSEQ);
    }
}
