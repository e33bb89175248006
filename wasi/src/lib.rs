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
//! a preopen are `ENOTCAPABLE` (76).
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
pub use ctx::{WasiCtx, WasiOutcome};
pub use errno::Errno;
pub use error::WasiError;
pub use fdtable::{Output, Stdin, MAX_FDS};
pub use func::{WasiFunc, MODULE};
