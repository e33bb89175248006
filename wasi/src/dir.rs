//! Directory listings for `fd_readdir`, read a bounded part at a time.
//!
//! An entry's cookie is its index in the directory plus one, so a call
//! from cookie `k` lists entries `k, k+1, ...`. Nothing of the directory is
//! kept on the host between calls but a [`DirCursor`] per guest
//! descriptor: the index of the next entry and the host position (the
//! `d_off` of the entry before it) where it starts. Each part opens a
//! fresh open file description of the directory (`openat(fd, ".")`, so
//! the guest's descriptor offset is never shared and nothing stays open
//! between calls), seeks to the cursor, and reads at most
//! [`ENTRIES_PER_PART`] entries with `getdents64` into one
//! [`HOST_BUF`]-byte buffer, writing them straight into the guest's
//! buffer. A cookie behind the cursor rewinds to the start (cookie 0
//! always does, and so sees the directory as it is now); one ahead is
//! reached by skipping entries, part by part. The usual walk (each call
//! from the cookie where the last one stopped) never rewinds or skips.
//!
//! So a call's host memory is one small buffer whatever the directory's
//! size or the guest's buffer length, and its work comes in parts of
//! bounded size ([`crate::WasiOutcome::Continue`]).

use crate::errno::{Errno, WasiResult};
use crate::types::{dirent_header, filetype, DIRENT_SIZE};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Most directory entries (skipped or listed) one part reads.
pub const ENTRIES_PER_PART: u32 = 256;

/// Bytes of the host buffer `getdents64` fills (8 KiB: at least 29
/// entries of the longest names, about 300 of short ones).
pub const HOST_BUF: usize = 8 << 10;

/// Where the next `fd_readdir` of a descriptor goes on from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirCursor {
    /// Index of the next entry (the cookie that continues there).
    pub index: u64,
    /// Host position where that entry starts (0 at the start).
    pub pos: i64,
}

/// How far one part of a listing got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The listing is done: the guest buffer holds this many bytes (less
    /// than its length only at the end of the directory).
    Done(usize),
    /// Not done; this many bytes of the guest buffer are written.
    More(usize),
}

/// One part of `fd_readdir(cookie)` on directory `dir`: preview1
/// `dirent`s (24-byte header, then the name) for the entries from
/// `cookie` on, written into `out` after the first `written` bytes (the
/// earlier parts' work). The last entry may be cut short: a full buffer
/// tells the guest to retry with a larger one. `cursor` is the
/// descriptor's; `written` is 0 on a call's first part.
pub fn read_part(
    dir: BorrowedFd<'_>,
    cursor: &mut DirCursor,
    cookie: u64,
    out: &mut [u8],
    mut written: usize,
) -> WasiResult<Part> {
    if written >= out.len() {
        return Ok(Part::Done(out.len()));
    }
    // Nothing is written until the cookie is reached, so with `written`
    // 0 this is a first part, or a later one still skipping (which never
    // passes the cookie).
    if written == 0 && cookie < cursor.index {
        *cursor = DirCursor::default();
    }
    let fd = open_fresh(dir)?;
    if cursor.pos != 0 {
        // SAFETY: lseek only takes integers; `fd` is ours.
        if unsafe { libc::lseek(fd.as_raw_fd(), cursor.pos, libc::SEEK_SET) } < 0 {
            return Err(Errno::last_host());
        }
    }
    let mut host = vec![0u8; HOST_BUF];
    let mut budget = ENTRIES_PER_PART;
    loop {
        let n = getdents(&fd, &mut host)?;
        if n == 0 {
            return Ok(Part::Done(written));
        }
        let mut at = 0;
        while at < n {
            let ent = parse(&host[at..n])?;
            if cursor.index >= cookie {
                let ft = if ent.dtype == libc::DT_UNKNOWN {
                    // Some file systems (XFS without ftype, some network
                    // ones) do not fill d_type: ask the inode. `name` is
                    // one component and the link itself is examined, so
                    // this cannot leave the directory.
                    lstat_at(fd.as_raw_fd(), ent.name)
                } else {
                    filetype::from_dtype(ent.dtype)
                };
                // A name is at most 255 bytes.
                let namlen = ent.name.len() as u32;
                let header = dirent_header(cursor.index + 1, ent.ino, namlen, ft);
                let room = out.len() - written;
                let put = |dst: &mut [u8]| {
                    let h = DIRENT_SIZE.min(dst.len());
                    dst[..h].copy_from_slice(&header[..h]);
                    let rest = &mut dst[h..];
                    let m = rest.len().min(ent.name.len());
                    rest[..m].copy_from_slice(&ent.name[..m]);
                };
                let need = DIRENT_SIZE + ent.name.len();
                if need > room {
                    // Cut short; the cursor stays on this entry, where the
                    // guest's next call (from the last whole entry's
                    // cookie) starts.
                    put(&mut out[written..]);
                    return Ok(Part::Done(out.len()));
                }
                put(&mut out[written..written + need]);
                written += need;
            }
            cursor.index += 1;
            cursor.pos = ent.next;
            at += ent.reclen;
            budget -= 1;
            if written == out.len() {
                return Ok(Part::Done(written));
            }
            if budget == 0 {
                return Ok(Part::More(written));
            }
        }
    }
}

/// A new open file description of directory `dir`.
fn open_fresh(dir: BorrowedFd<'_>) -> WasiResult<OwnedFd> {
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
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// `getdents64` into `buf`: the bytes filled, 0 at the end.
fn getdents(fd: &OwnedFd, buf: &mut [u8]) -> WasiResult<usize> {
    loop {
        // SAFETY: `buf` is writable for its whole length; `fd` is an open
        // directory we own.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(Errno::from_io(&e));
        }
    }
}

/// One `linux_dirent64` record.
struct RawEntry<'a> {
    ino: u64,
    /// Position of the next entry (`d_off`).
    next: i64,
    reclen: usize,
    dtype: u8,
    name: &'a [u8],
}

/// The record at the start of `b` (the kernel's `linux_dirent64`:
/// `d_ino` u64, `d_off` i64, `d_reclen` u16, `d_type` u8, then the
/// NUL-terminated name, padded); `EIO` if it does not fit.
fn parse(b: &[u8]) -> WasiResult<RawEntry<'_>> {
    const NAME: usize = 19;
    let field = |r: std::ops::Range<usize>| b.get(r).ok_or(Errno::IO);
    let ino = u64::from_ne_bytes(field(0..8)?.try_into().map_err(|_| Errno::IO)?);
    let next = i64::from_ne_bytes(field(8..16)?.try_into().map_err(|_| Errno::IO)?);
    let reclen = usize::from(u16::from_ne_bytes(
        field(16..18)?.try_into().map_err(|_| Errno::IO)?,
    ));
    let dtype = *b.get(18).ok_or(Errno::IO)?;
    if reclen <= NAME {
        return Err(Errno::IO);
    }
    let raw = field(NAME..reclen)?;
    let len = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    Ok(RawEntry {
        ino,
        next,
        reclen,
        dtype,
        name: &raw[..len],
    })
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
