//! Configuring a [`WasiCtx`]: arguments, environment, preopened
//! directories and stdio.

use crate::ctx::WasiCtx;
use crate::error::WasiError;
use crate::fdtable::{Entry, FdTable, HostStream, InputStream, Kind, Output, Stdin, MAX_FDS};
use crate::sandbox;
use crate::types::rights;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

/// Builds [`WasiCtx`]s. Cloning is cheap; preopened directories are opened
/// once and shared (one host descriptor each) by every context built from
/// the builder and its clones.
///
/// Defaults: no arguments, empty environment, no preopens, stdin at end of
/// file, stdout and stderr discarded.
#[derive(Clone, Debug, Default)]
pub struct WasiBuilder {
    args: Vec<Vec<u8>>,
    env: Vec<(Vec<u8>, Vec<u8>)>,
    preopens: Vec<(Arc<OwnedFd>, Vec<u8>)>,
    stdin: Stdin,
    stdout: Output,
    stderr: Output,
}

impl WasiBuilder {
    /// A builder with the defaults above.
    pub fn new() -> WasiBuilder {
        WasiBuilder::default()
    }

    /// Appends arguments (the first is conventionally the program name).
    pub fn args<I, S>(mut self, args: I) -> WasiBuilder
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_vec()));
        self
    }

    /// Sets environment variable `key` to `value` (replacing an earlier
    /// value of the same key, keeping its position).
    pub fn env(mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> WasiBuilder {
        self.set_env(key.as_ref(), value.as_ref());
        self
    }

    fn set_env(&mut self, key: &[u8], value: &[u8]) {
        match self.env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_vec(),
            None => self.env.push((key.to_vec(), value.to_vec())),
        }
    }

    /// Copies the host process's whole environment (as it is now) in.
    pub fn inherit_env(mut self) -> WasiBuilder {
        for (k, v) in std::env::vars_os() {
            self.set_env(k.as_bytes(), v.as_bytes());
        }
        self
    }

    /// Preopens host directory `host_path` as guest path `guest_path`
    /// (wasi-libc matches guest paths against it; use `"."` or `"/"` for a
    /// guest that uses relative paths). It gets the next descriptor number
    /// from 3 on. Fails if the directory cannot be opened or the kernel
    /// lacks `openat2`.
    pub fn preopen_dir(
        mut self,
        host_path: impl AsRef<Path>,
        guest_path: impl AsRef<str>,
    ) -> Result<WasiBuilder, WasiError> {
        let host_path = host_path.as_ref();
        let guest = guest_path.as_ref().as_bytes().to_vec();
        if guest.contains(&0) {
            return Err(WasiError::InvalidString {
                what: "preopen guest path",
                value: guest_path.as_ref().to_string(),
            });
        }
        if 3 + self.preopens.len() >= MAX_FDS {
            return Err(WasiError::TooManyFds);
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(host_path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ENOTDIR) {
                    WasiError::NotADirectory(host_path.to_path_buf())
                } else {
                    WasiError::Preopen {
                        path: host_path.to_path_buf(),
                        source: e,
                    }
                }
            })?;
        let fd = OwnedFd::from(file);
        sandbox::probe(fd.as_fd()).map_err(|e| WasiError::Openat2Unavailable(format!("{e}")))?;
        self.preopens.push((Arc::new(fd), guest));
        Ok(self)
    }

    /// Sets standard input.
    pub fn stdin(mut self, stdin: Stdin) -> WasiBuilder {
        self.stdin = stdin;
        self
    }

    /// Sets standard output.
    pub fn stdout(mut self, out: Output) -> WasiBuilder {
        self.stdout = out;
        self
    }

    /// Sets standard error.
    pub fn stderr(mut self, out: Output) -> WasiBuilder {
        self.stderr = out;
        self
    }

    /// Creates a context. Can be called many times; every context gets its
    /// own descriptor table, argument and environment copies, and a copy of
    /// `Stdin::Bytes` (captured outputs are shared).
    pub fn build(&self) -> Result<WasiCtx, WasiError> {
        let check = |what: &'static str, s: &[u8]| {
            if s.contains(&0) {
                Err(WasiError::InvalidString {
                    what,
                    value: String::from_utf8_lossy(s).into_owned(),
                })
            } else {
                Ok(())
            }
        };
        for a in &self.args {
            check("argument", a)?;
        }
        let mut env = Vec::with_capacity(self.env.len());
        for (k, v) in &self.env {
            check("environment variable", k)?;
            check("environment value", v)?;
            if k.is_empty() || k.contains(&b'=') {
                return Err(WasiError::InvalidString {
                    what: "environment variable",
                    value: String::from_utf8_lossy(k).into_owned(),
                });
            }
            let mut kv = k.clone();
            kv.push(b'=');
            kv.extend_from_slice(v);
            env.push(kv);
        }

        let mut fds = FdTable::default();
        let stdio = |kind| Entry {
            rights_base: if matches!(kind, Kind::Input(_)) {
                rights::STDIN
            } else {
                rights::STDOUT
            },
            kind,
            rights_inheriting: 0,
            flags: 0,
        };
        let input = match &self.stdin {
            Stdin::Inherit => InputStream::Inherit,
            Stdin::Bytes(b) => InputStream::Bytes(b.clone(), 0),
            Stdin::Null => InputStream::Null,
        };
        let too_many = |_| WasiError::TooManyFds;
        fds.insert(stdio(Kind::Input(input))).map_err(too_many)?;
        fds.insert(stdio(Kind::Output(self.stdout.clone(), HostStream::Stdout)))
            .map_err(too_many)?;
        fds.insert(stdio(Kind::Output(self.stderr.clone(), HostStream::Stderr)))
            .map_err(too_many)?;
        for (fd, guest) in &self.preopens {
            fds.insert(Entry {
                kind: Kind::Dir {
                    fd: Arc::clone(fd),
                    preopen: Some(guest.clone()),
                    cursor: crate::dir::DirCursor::default(),
                },
                rights_base: rights::DIR,
                rights_inheriting: rights::DIR | rights::FILE,
                flags: 0,
            })
            .map_err(too_many)?;
        }
        Ok(WasiCtx::from_parts(self.args.clone(), env, fds))
    }
}
