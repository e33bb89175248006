//! Errors of the host-side API (building a context), as opposed to the
//! errno values returned to guests.

use std::path::PathBuf;

/// An error setting up a [`WasiCtx`](crate::WasiCtx).
#[derive(Debug, thiserror::Error)]
pub enum WasiError {
    /// A preopened directory could not be opened.
    #[error("cannot preopen {path}: {source}")]
    Preopen {
        /// The host path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A preopen's host path is not a directory.
    #[error("cannot preopen {0}: not a directory")]
    NotADirectory(PathBuf),
    /// The kernel lacks `openat2` with `RESOLVE_BENEATH` (Linux 5.6+), which
    /// the sandbox needs; there is no weaker fallback.
    #[error("openat2(RESOLVE_BENEATH) is not available ({0}); Linux 5.6 or later is required to preopen directories")]
    Openat2Unavailable(String),
    /// An argument, environment key or value, or guest path contains a NUL
    /// byte, or an environment key is empty or contains `=`.
    #[error("invalid {what}: {value:?}")]
    InvalidString {
        /// Which kind of string (`"argument"`, `"environment variable"`, ...).
        what: &'static str,
        /// The offending string, lossily decoded.
        value: String,
    },
    /// More descriptors than [`MAX_FDS`](crate::MAX_FDS).
    #[error("too many preopened directories")]
    TooManyFds,
}
