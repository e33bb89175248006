//! Directory listings for `fd_readdir`.
//!
//! A listing is read whole from a fresh open file description of the
//! directory (`openat(fd, ".")`, so the guest's descriptor offset is never
//! shared) when the guest asks from cookie 0, and kept until the next
//! cookie-0 call. An entry's cookie is its index in the listing plus one,
//! so later calls continue exactly where the guest's buffer ran out.

use crate::errno::{Errno, WasiResult};
use crate::types::{dirent_header, filetype};
use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// Inode number.
    pub ino: u64,
    /// A [`filetype`] value.
    pub filetype: u8,
    /// Name bytes (no NUL).
    pub name: Vec<u8>,
}

/// The entries of one directory, in the order the host returned them
/// (including `.` and `..`).
pub type Listing = Vec<DirEntry>;

/// Reads every entry of the directory `dir`.
pub fn read_listing(dir: BorrowedFd<'_>) -> WasiResult<Listing> {
    // SAFETY: "." is a valid NUL-terminated string; `dir` is a live
    // descriptor for the duration of the call.
    let raw = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c".".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        return Err(Errno::last_host());
    }
    // SAFETY: `raw` is a descriptor we just opened and own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    read_entries(fd)
}

fn read_entries(fd: OwnedFd) -> WasiResult<Listing> {
    use std::os::fd::IntoRawFd;
    let raw = fd.into_raw_fd();
    // SAFETY: `raw` is an open directory descriptor we own; on success the
    // DIR stream takes it over (closedir closes it).
    let stream = unsafe { libc::fdopendir(raw) };
    if stream.is_null() {
        let err = Errno::last_host();
        // SAFETY: fdopendir failed, so we still own `raw`.
        unsafe { libc::close(raw) };
        return Err(err);
    }
    let mut out = Vec::new();
    let result = loop {
        // SAFETY: errno is thread local; clearing it lets us tell the end of
        // the stream from an error.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `stream` is a valid DIR stream until closedir below.
        let ent = unsafe { libc::readdir64(stream) };
        if ent.is_null() {
            let code = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            break if code == 0 {
                Ok(())
            } else {
                Err(Errno::from_host(code))
            };
        }
        // SAFETY: readdir64 returned a valid entry whose d_name is a
        // NUL-terminated string; we copy what we need before the next call.
        let (ino, dtype, name) = unsafe {
            let e = &*ent;
            (
                e.d_ino,
                e.d_type,
                CStr::from_ptr(e.d_name.as_ptr()).to_bytes().to_vec(),
            )
        };
        let filetype = if dtype == libc::DT_UNKNOWN {
            // Some file systems (XFS without ftype, some network ones) do
            // not fill d_type: ask the inode. `name` is one component
            // and the link itself is examined, so this cannot leave the
            // directory.
            // SAFETY: `stream` is valid, so dirfd returns its open fd.
            lstat_at(unsafe { libc::dirfd(stream) }, &name)
        } else {
            filetype::from_dtype(dtype)
        };
        out.push(DirEntry {
            ino,
            filetype,
            name,
        });
    };
    // SAFETY: `stream` is valid and closed exactly once.
    unsafe { libc::closedir(stream) };
    result.map(|()| out)
}

/// Serializes `listing[cookie..]` as preview1 `dirent`s (24-byte header,
/// then the name) into at most `buf_len` bytes. The last entry may be cut
/// short: a full buffer tells the guest to retry with a larger one.
pub fn serialize(listing: &[DirEntry], cookie: u64, buf_len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let start = usize::try_from(cookie).unwrap_or(usize::MAX);
    for (i, e) in listing.iter().enumerate().skip(start) {
        if out.len() >= buf_len {
            break;
        }
        let namlen = u32::try_from(e.name.len()).unwrap_or(u32::MAX);
        let header = dirent_header(i as u64 + 1, e.ino, namlen, e.filetype);
        out.extend_from_slice(&header);
        out.extend_from_slice(&e.name);
    }
    out.truncate(buf_len);
    out
}

/// The WASI file type of entry `name` of directory `dir`, without
/// following a symbolic link; `UNKNOWN` if it cannot be examined.
fn lstat_at(dir: libc::c_int, name: &[u8]) -> u8 {
    std::ffi::CString::new(name)
        .ok()
        .and_then(|c| crate::fd::lstat_in(dir, &c).ok())
        .map_or(filetype::UNKNOWN, |st| filetype::from_mode(st.st_mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lstat_at_reads_the_type_from_the_inode_without_following_links() {
        let d = std::env::temp_dir().join(format!("myriad-dir-lstat-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("file"), b"x").unwrap();
        std::os::unix::fs::symlink("sub", d.join("link")).unwrap();
        let dir = std::fs::File::open(&d).unwrap();
        let fd = dir.as_raw_fd();
        assert_eq!(lstat_at(fd, b"file"), filetype::REGULAR_FILE);
        assert_eq!(lstat_at(fd, b"sub"), filetype::DIRECTORY);
        assert_eq!(lstat_at(fd, b"link"), filetype::SYMBOLIC_LINK);
        assert_eq!(lstat_at(fd, b"missing"), filetype::UNKNOWN);
        assert_eq!(lstat_at(fd, b"nul\0inside"), filetype::UNKNOWN);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
