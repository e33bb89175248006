//! The artifact cache directory and why its entries can be trusted.
//!
//! An artifact is native code that `dlopen` runs inside this process, so a
//! cache directory is only as trustworthy as the set of users who can write
//! to it. [`CacheDir::open`] therefore accepts a directory only if it is
//! owned by this process's effective user and not writable by group or
//! others (a missing one is created with mode `0700`, parents included).
//! The check is made on the open directory itself (`open(O_DIRECTORY |
//! O_NOFOLLOW)`, then `fstat` of that descriptor), and every entry is then
//! opened, created and renamed relative to that descriptor (`openat`,
//! `renameat`); the runtime `dlopen`s entries through
//! `/proc/self/fd/<dir fd>/<name>`. So renaming or replacing a parent
//! directory after the check cannot redirect what is read or loaded. A
//! symbolic link as the last path component is followed only if it is owned
//! by this user or root, and its target must pass the same checks.
//!
//! Within a trusted directory, an entry is used only if it is a regular file
//! owned by this user and not writable by group or others, and either
//! passes the load-time checks of a cache hit and records the source key
//! of the request ([`crate::Module::compile_cached`]: ELF structure,
//! metadata checksum, ABI version, target and CPU features; the whole-file
//! hash was verified when the entry was written) or is byte-for-byte the
//! requested artifact ([`crate::Module::from_artifact_bytes`]).
//! Anything else is replaced atomically: the new artifact is written to a
//! temporary file in the same directory (`O_EXCL`, mode `0600`), flushed to
//! the disk (`fdatasync`) and renamed over the entry, so a reader sees the
//! old file or the complete new one, never a partial one, also after a
//! crash of the machine.
//!
//! Not defended: a process running as the same user (it can rewrite the
//! cache, or ptrace this process) and root. See `docs/SECURITY.md`.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Why a cache directory or entry was refused or could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Creating, opening, reading or writing failed.
    #[error("cannot use cache directory {path}: {source}")]
    Io {
        /// The directory or entry.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The path exists but is not a directory.
    #[error("refusing cache directory {path}: it is not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The directory belongs to another user, who could plant native code
    /// in it.
    #[error(
        "refusing cache directory {path}: it is owned by uid {owner}, not by this user \
         (uid {euid}); whoever owns it could plant native code that this process would run. \
         Use a directory of your own (set MYRIAD_CACHE_DIR) or remove it"
    )]
    Owner {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// This process's effective uid.
        euid: u32,
    },
    /// Group or others may write to the directory.
    #[error(
        "refusing cache directory {path}: its mode {mode:04o} lets other users write to it, \
         so they could plant native code that this process would run; \
         run `chmod 700` on it or use another directory"
    )]
    Writable {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The path is a symbolic link owned by another user (other than root),
    /// who could point it anywhere.
    #[error(
        "refusing cache directory {path}: it is a symbolic link owned by uid {owner}, \
         not by this user (uid {euid}) or root"
    )]
    SymlinkOwner {
        /// The link.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// This process's effective uid.
        euid: u32,
    },
    /// An entry is not something this user wrote (a symbolic link, not a
    /// regular file, owned by someone else, writable by group or others):
    /// it is not read and gets replaced.
    #[error("cache entry {path} is not trusted: {reason}")]
    UntrustedEntry {
        /// The entry.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// A cache directory that passed the ownership and permission checks, held
/// open so that later operations use the very directory that was checked.
#[derive(Debug, Clone)]
pub struct CacheDir {
    path: PathBuf,
    fd: Arc<OwnedFd>,
}

/// This process's effective uid.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The default per-user cache directory: `$MYRIAD_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/myriad`, else `$HOME/.cache/myriad`, else
/// `<temp dir>/myriad-<euid>` (relative settings other than
/// `MYRIAD_CACHE_DIR` are ignored, as the XDG specification asks). The
/// result is made absolute. Whichever it is, [`CacheDir::open`] still checks
/// it, so a `myriad-<euid>` planted in a shared temporary directory by
/// someone else is refused rather than used.
pub fn default_cache_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let absolute = |p: PathBuf| Some(p).filter(|p| p.is_absolute());
    let dir = var("MYRIAD_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            var("XDG_CACHE_HOME")
                .and_then(|d| absolute(PathBuf::from(d)))
                .map(|d| d.join("myriad"))
        })
        .or_else(|| {
            var("HOME")
                .and_then(|h| absolute(PathBuf::from(h)))
                .map(|h| h.join(".cache").join("myriad"))
        })
        .unwrap_or_else(|| std::env::temp_dir().join(format!("myriad-{}", effective_uid())));
    std::path::absolute(&dir).unwrap_or(dir)
}

/// Whether `/proc/self/fd` can be used to name files relative to a
/// directory descriptor.
fn have_proc_fd() -> bool {
    static HAVE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAVE.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

impl CacheDir {
    /// Open the cache directory `path`, creating it (and missing parents)
    /// with mode `0700` if it does not exist, and check it: it must be a
    /// directory owned by this process's effective user and not writable by
    /// group or others; if `path` is a symbolic link, the link must be
    /// owned by this user or root (its target is then checked as above).
    pub fn open(path: &Path) -> Result<CacheDir, CacheError> {
        let io = |source| CacheError::Io {
            path: path.to_owned(),
            source,
        };
        let euid = effective_uid();
        let link = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Missing: create it private. If someone else creates it
                // first, the checks below see their directory and refuse it.
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(path)
                    .map_err(io)?;
                std::fs::symlink_metadata(path).map_err(io)?
            }
            Err(e) => return Err(io(e)),
        };
        let follow = link.file_type().is_symlink();
        if follow && link.uid() != euid && link.uid() != 0 {
            return Err(CacheError::SymlinkOwner {
                path: path.to_owned(),
                owner: link.uid(),
                euid,
            });
        }
        // O_NOFOLLOW unless we decided to follow a trusted link: a link
        // swapped in after the lstat above makes the open fail.
        let flags = libc::O_DIRECTORY | if follow { 0 } else { libc::O_NOFOLLOW };
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ENOTDIR) {
                    CacheError::NotADirectory {
                        path: path.to_owned(),
                    }
                } else {
                    io(e)
                }
            })?;
        // fstat of the descriptor: the directory we will actually use.
        let meta = dir.metadata().map_err(io)?;
        if !meta.is_dir() {
            return Err(CacheError::NotADirectory {
                path: path.to_owned(),
            });
        }
        if meta.uid() != euid {
            return Err(CacheError::Owner {
                path: path.to_owned(),
                owner: meta.uid(),
                euid,
            });
        }
        if meta.mode() & 0o022 != 0 {
            return Err(CacheError::Writable {
                path: path.to_owned(),
                mode: meta.mode() & 0o7777,
            });
        }
        Ok(CacheDir {
            path: path.to_owned(),
            fd: Arc::new(OwnedFd::from(dir)),
        })
    }

    /// The directory's path as given to [`CacheDir::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of entry `name` for messages.
    pub(crate) fn entry_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The path to `dlopen` entry `name` by: relative to the checked
    /// directory descriptor (`/proc/self/fd/<fd>/<name>`), so a parent
    /// directory renamed since the check cannot substitute another file.
    /// Falls back to the plain path without `/proc`.
    pub(crate) fn load_path(&self, name: &str) -> PathBuf {
        if have_proc_fd() {
            PathBuf::from(format!("/proc/self/fd/{}/{name}", self.fd.as_raw_fd()))
        } else {
            self.entry_path(name)
        }
    }

    /// The directory descriptor, for a module to keep open while it is
    /// loaded from it: `/proc/self/fd/<fd>/…` names stay unambiguous while
    /// the descriptor number cannot be reused.
    pub(crate) fn keep_open(&self) -> Arc<OwnedFd> {
        Arc::clone(&self.fd)
    }

    fn c_name(&self, name: &str) -> Result<CString, CacheError> {
        CString::new(name).map_err(|_| CacheError::Io {
            path: self.entry_path(name),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in entry name"),
        })
    }

    /// Open entry `name` for reading, with its length: `None` if absent; an
    /// error if it is not a regular file owned by this user and closed to
    /// group and others' writes.
    pub(crate) fn open_entry(&self, name: &str) -> Result<Option<(File, u64)>, CacheError> {
        let path = self.entry_path(name);
        let c = self.c_name(name)?;
        // SAFETY: `self.fd` is an open directory, `c` a NUL-terminated
        // relative name; the returned descriptor (if any) is ours.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK,
            )
        };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(None),
                Some(libc::ELOOP) => Err(CacheError::UntrustedEntry {
                    path,
                    reason: "it is a symbolic link".into(),
                }),
                _ => Err(CacheError::Io { path, source: e }),
            };
        }
        // SAFETY: `fd` was just returned by openat and is owned by nobody
        // else.
        let file = unsafe { File::from_raw_fd(fd) };
        let meta = file.metadata().map_err(|source| CacheError::Io {
            path: path.clone(),
            source,
        })?;
        let untrusted = |reason: String| CacheError::UntrustedEntry {
            path: path.clone(),
            reason,
        };
        if !meta.is_file() {
            return Err(untrusted("it is not a regular file".into()));
        }
        let euid = effective_uid();
        if meta.uid() != euid {
            return Err(untrusted(format!(
                "it is owned by uid {}, not by this user (uid {euid})",
                meta.uid()
            )));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(untrusted(format!(
                "its mode {:04o} lets other users write to it",
                meta.mode() & 0o7777
            )));
        }
        Ok(Some((file, meta.len())))
    }

    /// Read entry `name`: `None` if absent; an error if it is not a regular
    /// file owned by this user and closed to group and others' writes.
    pub(crate) fn read_entry(&self, name: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let Some((mut file, len)) = self.open_entry(name)? else {
            return Ok(None);
        };
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.read_to_end(&mut bytes)
            .map_err(|source| CacheError::Io {
                path: self.entry_path(name),
                source,
            })?;
        Ok(Some(bytes))
    }

    /// Atomically make `bytes` the content of entry `name`: write a fresh
    /// temporary file in the directory (`O_EXCL`, mode `0600`), flush it to
    /// the disk and rename it over the entry. A library already mapped from the old file keeps its
    /// mapping.
    pub(crate) fn write_entry(&self, name: &str, bytes: &[u8]) -> Result<(), CacheError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp_name = format!(".{name}.{}.{n}.tmp", std::process::id());
        let tmp = self.c_name(&tmp_name)?;
        let dest = self.c_name(name)?;
        let io = |path: PathBuf| move |source| CacheError::Io { path, source };
        // SAFETY: as in `read_entry`; O_EXCL|O_NOFOLLOW never opens an
        // existing file or follows a link.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                tmp.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(io(self.entry_path(&tmp_name))(
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: `fd` was just returned by openat and is owned by nobody
        // else.
        let mut file = unsafe { File::from_raw_fd(fd) };
        // Flushed before the rename: after a crash the entry is the old file
        // or the complete new one, never a name for blocks not yet written
        // (a cache hit does not hash the whole file; see `Module::compile_cached`).
        let written = file.write_all(bytes).and_then(|()| file.sync_data());
        drop(file);
        let renamed = written.and_then(|()| {
            // SAFETY: both names are NUL-terminated and relative to our
            // open directory descriptor.
            let r = unsafe {
                libc::renameat(
                    self.fd.as_raw_fd(),
                    tmp.as_ptr(),
                    self.fd.as_raw_fd(),
                    dest.as_ptr(),
                )
            };
            if r == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
        if let Err(e) = renamed {
            // SAFETY: as above; removes only our temporary name.
            unsafe { libc::unlinkat(self.fd.as_raw_fd(), tmp.as_ptr(), 0) };
            return Err(io(self.entry_path(name))(e));
        }
        Ok(())
    }
}
