//! WASI preview1 (`wasi_snapshot_preview1`) for Myriad guests.
//!
//! A self-contained host library: the runtime resolves each import with
//! [`WasiFunc::lookup`], checks its signature against
//! [`WasiFunc::params`]/[`WasiFunc::results`], and on every call hands the
//! raw arguments and the instance's linear memory to [`WasiCtx::call`],
//! which returns a [`WasiOutcome`] (an errno to return, an exit, or a
//! yield).
//!
//! ```
//! use myriad_wasi::{Output, WasiCtx, WasiFunc, WasiOutcome};
//! use std::sync::{Arc, Mutex};
//!
//! let out = Arc::new(Mutex::new(Vec::new()));
//! let mut ctx = WasiCtx::builder()
//!     .args(["prog", "x"])
//!     .stdout(Output::Capture(out.clone()))
//!     .build()
//!     .unwrap();
//! let mut mem = vec![0u8; 65536];
//! // iovec at 0 -> "hi\n" at 16; nwritten at 32.
//! mem[0..4].copy_from_slice(&16u32.to_le_bytes());
//! mem[4..8].copy_from_slice(&3u32.to_le_bytes());
//! mem[16..19].copy_from_slice(b"hi\n");
//! let r = ctx.call(WasiFunc::FdWrite, &mut mem, &[1, 0, 1, 32]);
//! assert_eq!(r, WasiOutcome::Return(0));
//! assert_eq!(&*out.lock().unwrap(), b"hi\n");
//! ```
//!
//! Preopened directories are sandboxed with `openat2(RESOLVE_BENEATH)`; see
//! [`sandbox`]. Errors returned to guests are [`Errno`] values; escapes from
//! a preopen are `ENOTCAPABLE` (76), and so is `path_symlink` with an
//! absolute target.
//!
//! # Bounded host work
//!
//! No guest-chosen count or length makes one call do unbounded work or
//! allocate host memory in proportion to it:
//!
//! - `fd_read`, `fd_write`, `fd_pread`, `fd_pwrite`: at most
//!   [`memory::MAX_IOVS`] (1024) iovecs (`EINVAL` above) and at most
//!   [`memory::MAX_IO`] (256 KiB) moved per call (a short read or write),
//!   straight between guest memory and the host descriptor.
//! - `random_get`: [`RANDOM_PART`] (16 KiB) per part; a longer buffer
//!   returns [`WasiOutcome::Continue`] and is finished by
//!   [`WasiCtx::call_again`] (under the runtime, in later slices).
//! - `fd_readdir`: nothing of the directory is kept on the host; at most
//!   [`dir::ENTRIES_PER_PART`] (256) entries per part, then
//!   [`WasiOutcome::Continue`] while the guest's buffer has room.
//! - `poll_oneoff`: at most [`MAX_SUBSCRIPTIONS`] (4096) subscriptions
//!   (`EINVAL` above); each clock read and each descriptor asked about
//!   once per call.
//! - Path arguments: at most [`memory::MAX_PATH`] (4096) bytes
//!   (`ENAMETOOLONG` above, before anything is copied).
//! - `path_readlink` reads into a fixed 4096-byte buffer; `fd_allocate`
//!   uses `fallocate(2)` (`ENOTSUP` where the file system lacks it, never
//!   glibc's block-by-block emulation), [`ALLOCATE_PART`] (4 MiB) per
//!   part, then [`WasiOutcome::Continue`]; `fd_advise` ignores `WILLNEED`
//!   and `DONTNEED` (work in proportion to the range); at most
//!   [`MAX_FDS`] (1024) open descriptors (`EMFILE`).
//!
//! What still blocks the calling thread: reads of [`Stdin::Inherit`] (and
//! a `poll_oneoff` that waits for it with nothing else ready),
//! writes to [`Output::Inherit`] while the host's stdout or stderr is not
//! being drained, and `fd_sync`/`fd_datasync`, which wait for the disk to
//! take whatever the guest wrote (229 ms after 512 MiB of writes, here).
//! Descriptors come from the process's limit (`RLIMIT_NOFILE`), which all
//! contexts share, and files from the file system's space: bound both
//! outside the process when guests share one. [`Output::Capture`] keeps
//! everything a guest writes: each call adds at most 256 KiB, but the
//! total is the embedder's to cap.
//!
//! Functions that always return `ENOSYS` (52): `proc_raise`,
//! `sock_accept`, `sock_recv`, `sock_send`, `sock_shutdown`.

#![deny(missing_docs)]

mod builder;
pub mod clock;
mod ctx;
pub mod dir;
pub mod errno;
mod error;
mod fd;
mod fdtable;
mod func;
pub mod link;
pub mod memory;
mod path;
mod poll;
pub mod sandbox;
pub mod testprog;
pub mod types;

pub use builder::WasiBuilder;
pub use ctx::{Continuation, WasiCtx, WasiOutcome, ALLOCATE_PART, RANDOM_PART};
pub use errno::Errno;
pub use error::WasiError;
pub use fdtable::{Output, Stdin, MAX_FDS};
pub use func::{WasiFunc, MODULE};
pub use poll::MAX_SUBSCRIPTIONS;
