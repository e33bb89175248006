//! The guest's descriptor table: what each WASI fd number refers to.
//!
//! Numbers 0, 1 and 2 are stdin, stdout and stderr, 3 onwards the
//! preopened directories in the order they were added, then files the
//! guest opens (lowest free number first, as POSIX does). Host descriptors
//! are owned (`OwnedFd`/`File`), so closing an entry or dropping the table
//! closes them.

use crate::dir::DirCursor;
use crate::errno::{Errno, WasiResult};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

/// Most descriptors one guest may hold open at once; more is `EMFILE`.
pub const MAX_FDS: usize = 1024;

/// Where a guest's standard input comes from.
#[derive(Clone, Debug, Default)]
pub enum Stdin {
    /// The host process's standard input (reads block the calling thread).
    Inherit,
    /// These bytes, then end of file.
    Bytes(Vec<u8>),
    /// Immediately at end of file.
    #[default]
    Null,
}

/// Where a guest's standard output or error goes.
#[derive(Clone, Debug, Default)]
pub enum Output {
    /// The host process's stdout (for fd 1) or stderr (for fd 2).
    Inherit,
    /// Appended to this shared buffer.
    Capture(Arc<Mutex<Vec<u8>>>),
    /// Discarded (writes still succeed).
    #[default]
    Null,
}

/// A readable stdio stream with its read position.
#[derive(Debug)]
pub(crate) enum InputStream {
    /// Host fd 0.
    Inherit,
    /// In-memory bytes and the next position.
    Bytes(Vec<u8>, usize),
    /// Always at EOF.
    Null,
}

/// Which host stream an [`Output::Inherit`] writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HostStream {
    /// Host stdout.
    Stdout,
    /// Host stderr.
    Stderr,
}

/// What a descriptor refers to.
#[derive(Debug)]
pub(crate) enum Kind {
    /// Standard input.
    Input(InputStream),
    /// Standard output or error.
    Output(Output, HostStream),
    /// A regular file (or other non-directory) opened by `path_open`.
    File(File),
    /// A directory: a preopen (with its guest name) or one opened by
    /// `path_open`. Shared host descriptor: contexts built from one builder
    /// share their preopens.
    Dir {
        /// Host directory, opened `O_RDONLY | O_DIRECTORY`.
        fd: Arc<OwnedFd>,
        /// The guest path for `fd_prestat_*`, for preopens only.
        preopen: Option<Vec<u8>>,
        /// Where the next `fd_readdir` goes on from.
        cursor: DirCursor,
    },
}

/// One open descriptor.
#[derive(Debug)]
pub(crate) struct Entry {
    /// What it refers to.
    pub kind: Kind,
    /// Rights for operations on this descriptor.
    pub rights_base: u64,
    /// Rights that descriptors opened through this one may get.
    pub rights_inheriting: u64,
    /// `fdflags` of stdio streams (files report their host flags).
    pub flags: u16,
}

impl Entry {
    /// Fails with `ENOTCAPABLE` unless every bit of `needed` is held.
    pub fn require(&self, needed: u64) -> WasiResult<()> {
        if self.rights_base & needed == needed {
            Ok(())
        } else {
            Err(Errno::NOTCAPABLE)
        }
    }
}

/// The table of open descriptors, indexed by WASI fd number.
#[derive(Debug, Default)]
pub(crate) struct FdTable {
    slots: Vec<Option<Entry>>,
}

impl FdTable {
    /// The entry for `fd`, or `EBADF`.
    pub fn get(&self, fd: u32) -> WasiResult<&Entry> {
        self.slots
            .get(fd as usize)
            .and_then(Option::as_ref)
            .ok_or(Errno::BADF)
    }

    /// The entry for `fd`, mutably, or `EBADF`.
    pub fn get_mut(&mut self, fd: u32) -> WasiResult<&mut Entry> {
        self.slots
            .get_mut(fd as usize)
            .and_then(Option::as_mut)
            .ok_or(Errno::BADF)
    }

    /// Stores `entry` at the lowest free number.
    pub fn insert(&mut self, entry: Entry) -> WasiResult<u32> {
        if let Some(i) = self.slots.iter().position(Option::is_none) {
            self.slots[i] = Some(entry);
            return Ok(i as u32);
        }
        if self.slots.len() >= MAX_FDS {
            return Err(Errno::MFILE);
        }
        self.slots.push(Some(entry));
        Ok((self.slots.len() - 1) as u32)
    }

    /// Removes and returns the entry for `fd` (dropping it closes the host
    /// descriptor), or `EBADF`.
    pub fn remove(&mut self, fd: u32) -> WasiResult<Entry> {
        let entry = self
            .slots
            .get_mut(fd as usize)
            .and_then(Option::take)
            .ok_or(Errno::BADF)?;
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        Ok(entry)
    }

    /// Moves `from` to number `to`, closing what `to` held. Both must be
    /// open (`EBADF` otherwise), as in wasmtime and the preview1 tests.
    pub fn renumber(&mut self, from: u32, to: u32) -> WasiResult<()> {
        self.get(from)?;
        self.get(to)?;
        if from == to {
            return Ok(());
        }
        let entry = self.remove(from)?;
        self.slots[to as usize] = Some(entry);
        Ok(())
    }

    /// Number of open descriptors.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}
