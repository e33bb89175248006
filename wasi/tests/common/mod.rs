//! Test helpers: a fake guest (a `Vec<u8>` linear memory with a bump
//! allocator) driving `WasiCtx::call`, and scratch directories under the
//! target dir.
#![allow(dead_code)]

use myriad_wasi::{Errno, WasiCtx, WasiFunc, WasiOutcome};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// `rights` used to open files for reading and writing.
pub const RW: u64 = (1 << 0)
    | (1 << 1)
    | (1 << 2)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 6)
    | (1 << 7)
    | (1 << 8)
    | (1 << 21)
    | (1 << 22);
/// `rights` used to open files read-only.
pub const RO: u64 = (1 << 1) | (1 << 2) | (1 << 5) | (1 << 21);
/// `rights` for opening a directory to list it.
pub const DIR_RIGHTS: u64 = (1 << 14) | (1 << 13) | (1 << 18) | (1 << 21);

/// `oflags` bits.
pub const O_CREAT: u32 = 1;
pub const O_DIRECTORY: u32 = 2;
pub const O_EXCL: u32 = 4;
pub const O_TRUNC: u32 = 8;
/// `lookupflags`: follow a final symlink.
pub const FOLLOW: u32 = 1;

/// A guest: context plus memory.
pub struct Guest {
    pub ctx: WasiCtx,
    pub mem: Vec<u8>,
    next: u32,
}

impl Guest {
    pub fn new(ctx: WasiCtx) -> Guest {
        Guest {
            ctx,
            mem: vec![0; 1 << 20],
            next: 4096,
        }
    }

    /// Reserves `len` bytes (8-aligned) and returns their address.
    pub fn alloc(&mut self, len: u32) -> u32 {
        let at = self.next;
        self.next = (self.next + len + 7) & !7;
        assert!(
            (self.next as usize) < self.mem.len(),
            "test guest out of memory"
        );
        at
    }

    /// Copies `bytes` into fresh guest memory.
    pub fn put(&mut self, bytes: &[u8]) -> u32 {
        let at = self.alloc(bytes.len() as u32);
        self.mem[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
        at
    }

    pub fn call(&mut self, f: WasiFunc, args: &[u64]) -> WasiOutcome {
        self.ctx.call(f, &mut self.mem, args)
    }

    /// Calls `f` and returns its errno (panics on Exit/Yield).
    pub fn errno(&mut self, f: WasiFunc, args: &[u64]) -> u16 {
        match self.call(f, args) {
            WasiOutcome::Return(e) => e as u16,
            other => panic!("{f:?} returned {other:?}"),
        }
    }

    pub fn u32_at(&self, at: u32) -> u32 {
        u32::from_le_bytes(self.mem[at as usize..at as usize + 4].try_into().unwrap())
    }

    pub fn u64_at(&self, at: u32) -> u64 {
        u64::from_le_bytes(self.mem[at as usize..at as usize + 8].try_into().unwrap())
    }

    pub fn bytes_at(&self, at: u32, len: usize) -> &[u8] {
        &self.mem[at as usize..at as usize + len]
    }

    /// `path_open` relative to `dirfd`: the new fd or the errno.
    pub fn open(
        &mut self,
        dirfd: u32,
        lookup: u32,
        path: &str,
        oflags: u32,
        rights: u64,
        fdflags: u32,
    ) -> Result<u32, u16> {
        let p = self.put(path.as_bytes());
        let out = self.alloc(4);
        let e = self.errno(
            WasiFunc::PathOpen,
            &[
                dirfd.into(),
                lookup.into(),
                p.into(),
                path.len() as u64,
                oflags.into(),
                rights,
                rights,
                fdflags.into(),
                out.into(),
            ],
        );
        if e == 0 {
            Ok(self.u32_at(out))
        } else {
            Err(e)
        }
    }

    /// Writes `data` to `fd` with one iovec per chunk of `split` bytes.
    pub fn write_fd(&mut self, fd: u32, data: &[u8]) -> Result<u32, u16> {
        let buf = self.put(data);
        let iov = self.alloc(8);
        self.mem[iov as usize..iov as usize + 4].copy_from_slice(&buf.to_le_bytes());
        self.mem[iov as usize + 4..iov as usize + 8]
            .copy_from_slice(&(data.len() as u32).to_le_bytes());
        let out = self.alloc(4);
        let e = self.errno(WasiFunc::FdWrite, &[fd.into(), iov.into(), 1, out.into()]);
        if e == 0 {
            Ok(self.u32_at(out))
        } else {
            Err(e)
        }
    }

    /// Reads up to `len` bytes from `fd`.
    pub fn read_fd(&mut self, fd: u32, len: u32) -> Result<Vec<u8>, u16> {
        let buf = self.alloc(len);
        let iov = self.alloc(8);
        self.mem[iov as usize..iov as usize + 4].copy_from_slice(&buf.to_le_bytes());
        self.mem[iov as usize + 4..iov as usize + 8].copy_from_slice(&len.to_le_bytes());
        let out = self.alloc(4);
        let e = self.errno(WasiFunc::FdRead, &[fd.into(), iov.into(), 1, out.into()]);
        if e == 0 {
            let n = self.u32_at(out) as usize;
            Ok(self.bytes_at(buf, n).to_vec())
        } else {
            Err(e)
        }
    }

    /// A `path_*` function taking `(fd, path, path_len)`.
    pub fn path_call(&mut self, f: WasiFunc, dirfd: u32, path: &str) -> u16 {
        let p = self.put(path.as_bytes());
        self.errno(f, &[dirfd.into(), p.into(), path.len() as u64])
    }

    /// `path_filestat_get`: the 64-byte filestat or the errno.
    pub fn stat(&mut self, dirfd: u32, lookup: u32, path: &str) -> Result<Vec<u8>, u16> {
        let p = self.put(path.as_bytes());
        let out = self.alloc(64);
        let e = self.errno(
            WasiFunc::PathFilestatGet,
            &[
                dirfd.into(),
                lookup.into(),
                p.into(),
                path.len() as u64,
                out.into(),
            ],
        );
        if e == 0 {
            Ok(self.bytes_at(out, 64).to_vec())
        } else {
            Err(e)
        }
    }

    /// `path_rename` within one directory fd.
    pub fn rename(&mut self, dirfd: u32, from: &str, to: &str) -> u16 {
        let a = self.put(from.as_bytes());
        let b = self.put(to.as_bytes());
        self.errno(
            WasiFunc::PathRename,
            &[
                dirfd.into(),
                a.into(),
                from.len() as u64,
                dirfd.into(),
                b.into(),
                to.len() as u64,
            ],
        )
    }

    /// `path_symlink`: creates `link` (relative to `dirfd`) holding `target`.
    pub fn symlink(&mut self, target: &str, dirfd: u32, link: &str) -> u16 {
        let a = self.put(target.as_bytes());
        let b = self.put(link.as_bytes());
        self.errno(
            WasiFunc::PathSymlink,
            &[
                a.into(),
                target.len() as u64,
                dirfd.into(),
                b.into(),
                link.len() as u64,
            ],
        )
    }
}

/// File type byte of a filestat.
pub fn filetype(stat: &[u8]) -> u8 {
    stat[16]
}

/// Size field of a filestat.
pub fn size(stat: &[u8]) -> u64 {
    u64::from_le_bytes(stat[32..40].try_into().unwrap())
}

/// errno constants as the raw values `Guest::errno` returns.
pub fn e(errno: Errno) -> u16 {
    errno.raw()
}

/// A scratch tree: `<root>/sandbox` (to preopen) and `<root>/outside`
/// holding `secret.txt`, removed on drop.
pub struct Scratch {
    pub root: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "wasi-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("sandbox")).unwrap();
        std::fs::create_dir_all(root.join("outside")).unwrap();
        std::fs::write(root.join("outside/secret.txt"), b"secret").unwrap();
        std::fs::write(root.join("secret.txt"), b"secret").unwrap();
        Scratch { root }
    }

    pub fn sandbox(&self) -> PathBuf {
        self.root.join("sandbox")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
