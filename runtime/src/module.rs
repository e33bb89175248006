//! Loading compiled artifacts.
//!
//! An artifact is a shared object written by `myriad-codegen` that carries,
//! besides its code, an integrity hash cell (`abi::HASH_MARKER`, then the
//! 32-byte SHA-256 of the file) and a metadata blob (`abi::METADATA_MARKER`,
//! a u32 LE length, the blob). [`Module::from_file`] checks, in order:
//! both markers present exactly once; the artifact hash; the metadata
//! checksum and ABI version; the recorded target and CPU features against
//! this host (`abi::target`); the ELF structure (`elf.rs`: nothing that
//! would make `dlopen` load, relocate or run code, no segment past the end
//! of the file). Only then is the file `dlopen`ed (`RTLD_NOW |
//! RTLD_LOCAL`; artifacts have no relocations, so there is nothing to
//! bind), every function and export wrapper resolved, the absolute trap
//! table built (sorted by pc) and the initial global values prepared.
//!
//! The checks run on the bytes read from the file, but `dlopen` opens the
//! path again, and the dynamic loader hands back the object already loaded
//! under that path (even if the file was replaced since). So after
//! `dlopen`, the loaded object's own `abi::HASH_SYMBOL` cell (marker + 32
//! hash bytes) must equal the hash just verified; otherwise the load is
//! refused with [`LoadError::ChangedOnDisk`] rather than pairing one
//! artifact's code with another's metadata.
//!
//! Because of that path reuse, cached artifacts are stored under names
//! that determine their content: the source key for [`Module::compile`]
//! (the wasm bytes and settings they were compiled from), the artifact's
//! SHA-256 for [`Module::from_artifact_bytes`]. Both go through a checked
//! [`CacheDir`] (see [`crate::cache`]), verify a cached entry against the
//! request before using it, and replace an unusable entry atomically.
//!
//! A compile-cache hit ([`Module::compile_cached`]) does not read the whole
//! entry: it runs the ELF check on the file (a few hundred bytes), `dlopen`s
//! it, and checks the loaded object's own metadata (checksum, ABI version,
//! target, CPU features) and that it records the request's source key.
//! The whole-file SHA-256 was verified when the entry was written (from
//! the compiler's output, flushed to disk before the atomic rename); it is
//! not recomputed on a hit. What that leaves unchecked is in
//! `docs/SECURITY.md` ("What a cache hit checks").
//!
//! The integrity hash is unkeyed: it shows a file is intact, not who wrote
//! it. Loading an artifact runs its code; load only artifacts this host
//! compiled or that you trust as you would a shared library.

use crate::cache::{CacheDir, CacheError};
use crate::types::{canonical_type_id, CanonRef};
use crate::vmctx::TrapEntry;
use myriad_abi::hex;
use myriad_abi::{self as abi, FuncType, Metadata, MetadataError};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why an artifact was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading or writing the file failed.
    #[error("cannot access artifact {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A marker is missing or duplicated: not a Myriad artifact.
    #[error("{path} is not a Myriad artifact: {reason}")]
    NotAnArtifact {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// The ELF structure is one `dlopen` would act on beyond mapping the
    /// file (needed libraries, relocations, initialisers, an interpreter,
    /// TLS), or the file ends before its segments do (see `elf.rs`).
    #[error("{path} is refused before loading: {reason}")]
    Structure {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The artifact hash does not match its contents.
    #[error(
        "artifact {path} is corrupt or was modified: its SHA-256 is {}, the artifact says {}",
        hex(.found),
        hex(.expected)
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Hash stored in the file.
        expected: [u8; abi::HASH_LEN],
        /// Hash computed over the file.
        found: [u8; abi::HASH_LEN],
    },
    /// A cache entry is a valid artifact, but compiled from other wasm
    /// bytes or settings than the request (its recorded source key differs).
    #[error(
        "cache entry {path} was compiled from other wasm bytes or settings \
         (source key {}, the request's is {})",
        hex(.recorded),
        hex(.expected)
    )]
    SourceMismatch {
        /// The entry.
        path: PathBuf,
        /// Source key recorded in the entry's metadata.
        recorded: [u8; 32],
        /// Source key of the request.
        expected: [u8; 32],
    },
    /// The cache directory was refused or an entry could not be used.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The metadata blob was refused.
    #[error("artifact {path} has unusable metadata: {source}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// Why.
        source: MetadataError,
    },
    /// Compiled for another target, or for CPU features this CPU lacks.
    #[error("artifact {path} cannot run here: {reason}; recompile it on this host")]
    Target {
        /// The file.
        path: PathBuf,
        /// What differs (the target, or the first missing CPU feature).
        reason: String,
    },
    /// `dlopen` failed.
    #[error("cannot load artifact {path}: {source}")]
    Dlopen {
        /// The file.
        path: PathBuf,
        /// The loader's error.
        source: libloading::Error,
    },
    /// The object `dlopen` returned is not the artifact whose bytes were
    /// verified: the file changed between verification and loading, or a
    /// different artifact was already loaded from the same path.
    #[error(
        "artifact {path} changed between verification and loading, or a different artifact was \
         already loaded from that path; load artifacts by content-hash name \
         (Module::from_artifact_bytes) and never rewrite a loaded file"
    )]
    ChangedOnDisk {
        /// The file.
        path: PathBuf,
    },
    /// A symbol the metadata promises is not in the library.
    #[error("artifact {path} lacks symbol {symbol}: {source}")]
    MissingSymbol {
        /// The file.
        path: PathBuf,
        /// The symbol.
        symbol: String,
        /// The loader's error.
        source: libloading::Error,
    },
    /// The metadata is inconsistent with what the runtime can run.
    #[error("artifact {path} is unusable: {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Compiling the wasm failed.
    #[error("compilation failed: {0}")]
    Compile(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// An exported function as the runtime calls it.
#[derive(Clone, Debug)]
pub(crate) struct ExportInfo {
    /// Address of the array-call wrapper.
    pub wrapper: usize,
    /// Bytes of the wrapper's frame on the instance stack.
    pub wrapper_frame: u32,
    /// Signature.
    pub ty: FuncType,
    /// Function index (imports first).
    #[allow(dead_code)]
    pub index: u32,
}

/// A loaded artifact. `Send + Sync`; share it as `Arc<Module>`.
pub struct Module {
    path: PathBuf,
    hash: [u8; abi::HASH_LEN],
    metadata: Metadata,
    funcs: Vec<usize>,
    exports: HashMap<String, ExportInfo>,
    stubs: Vec<usize>,
    start: usize,
    trap_table: Box<[TrapEntry]>,
    globals_init: Box<[u64]>,
    /// Defined globals whose initialiser is not a plain constant (reads a
    /// global or takes a function reference), evaluated per instance.
    globals_dynamic: Box<[u32]>,
    type_ids: Box<[u32]>,
    layout: abi::vmctx::Layout,
    /// Whether instances need a `TableState` ([`needs_table_state`]).
    needs_table_state: bool,
    /// Whether the module has compiled code a preemption signal can stop
    /// (`kickable_code` is not empty): its long time slices may be
    /// asynchronous (`signals`, "Asynchronous preemption").
    preemptible: bool,
    // Dropped before the trap table and the library it points into.
    _registration: Option<crate::traps::Registration>,
    // Unloaded after everything that points into it.
    _lib: Option<libloading::os::unix::Library>,
    // The cache directory the library was opened through (as
    // `/proc/self/fd/<fd>/...`), closed only after the library is unloaded
    // so that the name cannot meanwhile denote another directory.
    _dir: Option<Arc<OwnedFd>>,
}

// SAFETY: after loading, a Module is immutable; the addresses it holds point
// into the library it owns, which stays loaded until the Module drops.
unsafe impl Send for Module {}
// SAFETY: as above; no interior mutability.
unsafe impl Sync for Module {}

#[cfg(feature = "compiler")]
/// What [`crate::Module::compile_cached`] found in the cache.
#[derive(Debug)]
pub enum CacheOutcome {
    /// An entry for exactly this request was loaded; nothing was compiled.
    Hit,
    /// There was no entry: the module was compiled and stored.
    Miss,
    /// An entry existed but was not used, for the reason given (corrupt,
    /// another ABI or CPU, compiled from other wasm or settings, not
    /// trusted): the module was compiled and the entry replaced.
    Replaced(LoadError),
}

/// The checked parts of an artifact file.
struct Checked {
    hash: [u8; abi::HASH_LEN],
    metadata: Metadata,
}

fn check_bytes(path: &Path, file: &[u8]) -> Result<Checked, LoadError> {
    let not = |reason| LoadError::NotAnArtifact {
        path: path.to_owned(),
        reason,
    };
    let hash_at = abi::find_marker(file, &abi::HASH_MARKER)
        .ok_or_else(|| not("hash marker missing or duplicated"))?;
    let meta_at = abi::find_marker(file, &abi::METADATA_MARKER)
        .ok_or_else(|| not("metadata marker missing or duplicated"))?;
    let cell = hash_at + abi::HASH_MARKER.len();
    let stored: [u8; abi::HASH_LEN] = file
        .get(cell..cell + abi::HASH_LEN)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| not("hash cell truncated"))?;
    let found = abi::artifact_hash(file, hash_at);
    if found != stored {
        return Err(LoadError::Corrupt {
            path: path.to_owned(),
            expected: stored,
            found,
        });
    }
    let metadata = check_metadata(path, &file[meta_at + abi::METADATA_MARKER.len()..])?;
    check_structure(path, &mut crate::elf::slice_reader(file), file.len() as u64)?;
    Ok(Checked {
        hash: stored,
        metadata,
    })
}

/// The ELF check of `elf.rs` on a file of `len` bytes read through `read`.
fn check_structure(path: &Path, read: crate::elf::ReadAt<'_>, len: u64) -> Result<(), LoadError> {
    crate::elf::check(read, len).map_err(|reason| LoadError::Structure {
        path: path.to_owned(),
        reason,
    })
}

/// Decode the metadata whose u32 LE length starts `rest` (the bytes after
/// `abi::METADATA_MARKER`; the blob follows the length) and check it: its
/// checksum and ABI version (`Metadata::decode`), then the recorded target
/// and CPU features against this host.
fn check_metadata(path: &Path, rest: &[u8]) -> Result<Metadata, LoadError> {
    let truncated = || LoadError::Metadata {
        path: path.to_owned(),
        source: MetadataError::Truncated,
    };
    let meta_len = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(truncated)? as usize;
    let blob = rest.get(4..4 + meta_len).ok_or_else(truncated)?;
    let metadata = Metadata::decode(blob).map_err(|source| LoadError::Metadata {
        path: path.to_owned(),
        source,
    })?;
    let target = |reason: String| LoadError::Target {
        path: path.to_owned(),
        reason,
    };
    if metadata.target != abi::target::HOST_TARGET {
        return Err(target(format!(
            "it was compiled for {:?}, this host is {:?}",
            metadata.target,
            abi::target::HOST_TARGET
        )));
    }
    if let Some(f) = abi::target::first_missing(metadata.cpu_features.iter().map(String::as_str)) {
        return Err(target(format!(
            "its code uses the CPU feature {f}, which this CPU lacks (or this runtime does not know)"
        )));
    }
    Ok(metadata)
}

/// The bytes of the data object `symbol` in the loaded library (its address
/// and its size from the symbol table), or `None` if there is no such
/// object.
fn loaded_object<'l>(lib: &'l libloading::os::unix::Library, symbol: &str) -> Option<&'l [u8]> {
    // SAFETY: we only take the symbol's address; nothing is called.
    let addr = unsafe { lib.get::<*const u8>(symbol.as_bytes()) }
        .ok()?
        .into_raw()
        .cast::<u8>();
    // Ask the loader for the symbol's size before reading there.
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::uninit();
    let mut sym: *mut libc::c_void = std::ptr::null_mut();
    // SAFETY: `info` and `sym` are valid out-pointers; RTLD_DL_SYMENT (1)
    // makes `sym` point to the symbol's `Elf64_Sym` in the loaded object,
    // which stays loaded while `lib` lives.
    let size = unsafe {
        const RTLD_DL_SYMENT: libc::c_int = 1;
        if libc::dladdr1(addr.cast(), info.as_mut_ptr(), &mut sym, RTLD_DL_SYMENT) == 0
            || sym.is_null()
        {
            return None;
        }
        (*sym.cast::<libc::Elf64_Sym>()).st_size as usize
    };
    // A damaged symbol table must not make us read outside the mapping.
    if !within_loaded_segment(addr as usize, size) {
        return None;
    }
    // SAFETY: `[addr, addr + size)` lies within one loaded segment of an
    // object (checked just above), which stays mapped while `lib` lives;
    // the ELF check made sure every loaded segment's file part lies within
    // the file, so reading it cannot fault.
    Some(unsafe { std::slice::from_raw_parts(addr, size) })
}

/// Whether `[addr, addr + len)` lies within one readable `PT_LOAD` segment
/// of an object the dynamic loader has loaded (`dl_iterate_phdr`).
fn within_loaded_segment(addr: usize, len: usize) -> bool {
    struct Query {
        start: usize,
        end: usize,
        found: bool,
    }
    /// `dl_iterate_phdr` callback: sets `found` and stops at the segment
    /// holding the query's range.
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `Query` passed below, exclusively ours for
        // the call; `info` is valid for the callback's duration, and its
        // `dlpi_phdr` points to `dlpi_phnum` program headers.
        let (q, info) = unsafe { (&mut *data.cast::<Query>(), &*info) };
        for i in 0..usize::from(info.dlpi_phnum) {
            // SAFETY: `i < dlpi_phnum` (see above).
            let ph = unsafe { &*info.dlpi_phdr.add(i) };
            if ph.p_type != libc::PT_LOAD || ph.p_flags & libc::PF_R == 0 {
                continue;
            }
            let start = (info.dlpi_addr as usize).wrapping_add(ph.p_vaddr as usize);
            let end = start.saturating_add(ph.p_memsz as usize);
            if start <= q.start && q.end <= end {
                q.found = true;
                return 1;
            }
        }
        0
    }
    let Some(end) = addr.checked_add(len) else {
        return false;
    };
    let mut q = Query {
        start: addr,
        end,
        found: false,
    };
    // SAFETY: `visit` matches the callback type and only reads the loader's
    // records and writes `q`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut q as *mut Query).cast()) };
    q.found
}

/// The hash recorded in the loaded library's `abi::HASH_SYMBOL` cell.
fn loaded_hash(lib: &libloading::os::unix::Library) -> Option<[u8; abi::HASH_LEN]> {
    let cell = loaded_object(lib, abi::HASH_SYMBOL)?;
    let (marker, stored) = cell.split_at_checked(abi::HASH_MARKER.len())?;
    if marker != abi::HASH_MARKER {
        return None;
    }
    stored.get(..abi::HASH_LEN)?.try_into().ok()
}

/// Check that the object `dlopen` returned carries the hash verified from
/// the file's bytes: `abi::HASH_SYMBOL` must be an object of at least 48
/// bytes holding `abi::HASH_MARKER` followed by `hash`.
fn check_loaded_hash(
    path: &Path,
    lib: &libloading::os::unix::Library,
    hash: &[u8; abi::HASH_LEN],
) -> Result<(), LoadError> {
    if loaded_hash(lib).as_ref() != Some(hash) {
        return Err(LoadError::ChangedOnDisk {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// `dlopen` the artifact at `open_path` (`path` names it in errors).
fn open_library(path: &Path, open_path: &Path) -> Result<libloading::os::unix::Library, LoadError> {
    // SAFETY: loading maps the file and would run the library's
    // initialisers; every caller has passed the file through the ELF check
    // (`elf.rs`) first, which refuses initialisers, relocations, needed
    // libraries, an interpreter and TLS, so nothing of the file runs here.
    // The artifacts have no relocations and import nothing, so there is
    // nothing to bind: RTLD_NOW costs nothing over RTLD_LAZY.
    unsafe {
        libloading::os::unix::Library::open(
            Some(open_path.as_os_str()),
            libc::RTLD_NOW | libc::RTLD_LOCAL,
        )
    }
    .map_err(|source| LoadError::Dlopen {
        path: path.to_owned(),
        source,
    })
}

impl Module {
    /// Load and check an artifact file (see the module docs for the checks).
    pub fn from_file(path: &Path) -> Result<Module, LoadError> {
        crate::tsc::start_calibration();
        let file = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        let checked = check_bytes(path, &file)?;
        drop(file);
        Self::load_checked(path, &dlopen_path(path), checked, None)
    }

    /// `dlopen` the artifact at `open_path` whose bytes passed `check_bytes`
    /// as `checked` (`path` names it in errors and [`Module::path`]), check
    /// the loaded object is that artifact, resolve its symbols and assemble
    /// the module. `dir` is kept open while the module lives.
    fn load_checked(
        path: &Path,
        open_path: &Path,
        checked: Checked,
        dir: Option<Arc<OwnedFd>>,
    ) -> Result<Module, LoadError> {
        let Checked { hash, metadata } = checked;
        let lib = open_library(path, open_path)?;
        check_loaded_hash(path, &lib, &hash)?;
        Self::from_library(path, hash, metadata, lib, dir)
    }

    /// Load cache entry `name` (open as `file`, `len` bytes, already checked
    /// as this user's by [`CacheDir::open_entry`]) on a cache hit, without
    /// reading the whole file: the ELF check (`elf.rs`, a few hundred
    /// bytes), then `dlopen`, then the metadata of the loaded object itself
    /// (checksum, ABI version, target, CPU features) and its source key,
    /// which must be `key`. The artifact hash is not recomputed; see
    /// `docs/SECURITY.md` for why a private cache entry does not need it.
    #[cfg(feature = "compiler")]
    fn load_entry(
        cache: &CacheDir,
        name: &str,
        file: &std::fs::File,
        len: u64,
        key: &[u8; 32],
    ) -> Result<Module, LoadError> {
        use std::os::unix::fs::FileExt;
        let path = cache.entry_path(name);
        let mut read = |offset: u64, buf: &mut [u8]| file.read_exact_at(buf, offset).is_ok();
        check_structure(&path, &mut read, len)?;
        let lib = open_library(&path, &cache.load_path(name))?;
        let not = |reason| LoadError::NotAnArtifact {
            path: path.clone(),
            reason,
        };
        let cell =
            loaded_object(&lib, abi::METADATA_SYMBOL).ok_or_else(|| not("no metadata object"))?;
        let rest = cell
            .strip_prefix(&abi::METADATA_MARKER)
            .ok_or_else(|| not("metadata object without its marker"))?;
        let metadata = check_metadata(&path, rest)?;
        if metadata.source_key != *key {
            return Err(LoadError::SourceMismatch {
                path,
                recorded: metadata.source_key,
                expected: *key,
            });
        }
        let hash = loaded_hash(&lib).ok_or_else(|| not("no hash cell"))?;
        Self::from_library(&path, hash, metadata, lib, Some(cache.keep_open()))
    }

    /// Resolve the symbols `metadata` promises in the loaded `lib` and
    /// assemble the module.
    fn from_library(
        path: &Path,
        hash: [u8; abi::HASH_LEN],
        metadata: Metadata,
        lib: libloading::os::unix::Library,
        dir: Option<Arc<OwnedFd>>,
    ) -> Result<Module, LoadError> {
        let sym = |name: String| -> Result<usize, LoadError> {
            // SAFETY: we only take the address; nothing is called here.
            match unsafe { lib.get::<*const u8>(name.as_str()) } {
                Ok(s) => Ok(s.into_raw() as usize),
                Err(source) => Err(LoadError::MissingSymbol {
                    path: path.to_owned(),
                    symbol: name,
                    source,
                }),
            }
        };
        let mut funcs = Vec::with_capacity(metadata.func_types.len());
        for i in 0..metadata.func_types.len() as u32 {
            funcs.push(sym(abi::func_symbol(i))?);
        }
        let mut wrappers = Vec::new();
        for f in metadata.wrapped_funcs() {
            wrappers.push(sym(abi::export_wrapper_symbol(f))?);
        }
        let mut stubs = Vec::new();
        for i in 0..metadata.num_imported_funcs() as u32 {
            stubs.push(sym(abi::import_stub_symbol(i))?);
        }
        let mut module = Self::assemble(
            path.to_owned(),
            hash,
            metadata,
            funcs,
            wrappers,
            stubs,
            Some(lib),
        )?;
        module._dir = dir;
        Ok(module)
    }

    /// Build a module from code that is already in memory (hand-written
    /// machine code in tests, or a JIT): `funcs[i]` is the address of
    /// defined function `i`, `wrappers[j]` that of the array-call wrapper of
    /// function `metadata.wrapped_funcs()[j]`. Function imports are not
    /// supported this way. The fingerprint is not checked.
    ///
    /// # Safety
    ///
    /// The addresses must be code following the Myriad ABI for the
    /// signatures in `metadata`, and stay valid for the module's life. In
    /// particular (ABI 14) a function keeps the fuel counter in `r15`:
    /// one that other compiled code calls must leave `r15` as it found it
    /// or lower (it may charge fuel, never refill it), and a wrapper must
    /// give its caller the `r15` it was called with.
    pub unsafe fn from_raw_parts(
        metadata: Metadata,
        funcs: Vec<usize>,
        wrappers: Vec<usize>,
    ) -> Result<Module, LoadError> {
        let path = PathBuf::from("<raw parts>");
        if funcs.len() != metadata.func_types.len()
            || wrappers.len() != metadata.wrapped_funcs().len()
            || metadata.num_imported_funcs() != 0
        {
            return Err(LoadError::Unsupported {
                path,
                reason: "function or wrapper count differs from the metadata".into(),
            });
        }
        Self::assemble(
            path,
            [0; abi::HASH_LEN],
            metadata,
            funcs,
            wrappers,
            Vec::new(),
            None,
        )
    }

    fn assemble(
        path: PathBuf,
        hash: [u8; abi::HASH_LEN],
        metadata: Metadata,
        funcs: Vec<usize>,
        wrappers: Vec<usize>,
        stubs: Vec<usize>,
        lib: Option<libloading::os::unix::Library>,
    ) -> Result<Module, LoadError> {
        let unsupported = |reason: String| LoadError::Unsupported {
            path: path.clone(),
            reason,
        };
        let layout = metadata.vmctx_layout();
        if layout.size > crate::region::MAX_VMCTX_BYTES {
            return Err(unsupported(format!(
                "{} globals and {} imports need a {}-byte vmctx, more than a slot's vmctx area holds ({} bytes)",
                metadata.globals.len(),
                metadata.imports.len(),
                layout.size,
                crate::region::MAX_VMCTX_BYTES
            )));
        }
        let wrapped = metadata.wrapped_funcs();
        let wrapper_of = |f: u32| -> usize {
            wrapped
                .binary_search(&f)
                .ok()
                .and_then(|i| wrappers.get(i).copied())
                .unwrap_or(0)
        };
        let wrapper_frame_of = |f: u32| -> u32 {
            wrapped
                .binary_search(&f)
                .ok()
                .and_then(|i| metadata.wrappers.get(i))
                .map_or(0, |h| h.frame_bytes)
        };
        let mut exports = HashMap::new();
        for e in &metadata.exports {
            if e.kind != abi::ExportKind::Func {
                continue;
            }
            let ty = metadata
                .func_type(e.index)
                .ok_or_else(|| unsupported("export of an unknown function".into()))?
                .clone();
            exports.insert(
                e.name.clone(),
                ExportInfo {
                    wrapper: wrapper_of(e.index),
                    wrapper_frame: wrapper_frame_of(e.index),
                    ty,
                    index: e.index,
                },
            );
        }
        let mut trap_table = Vec::with_capacity(metadata.traps.len());
        for t in &metadata.traps {
            let f = *funcs
                .get(t.func_index as usize)
                .ok_or_else(|| unsupported("trap site in an unknown function".into()))?;
            trap_table.push(TrapEntry {
                pc: f + t.offset as usize,
                kind: t.kind as u8,
            });
        }
        // The wrappers' and stubs' prologue stack checks.
        let helpers = wrappers
            .iter()
            .zip(&metadata.wrappers)
            .chain(stubs.iter().zip(&metadata.stubs));
        for (&at, code) in helpers {
            for &(offset, kind) in &code.traps {
                trap_table.push(TrapEntry {
                    pc: at + offset as usize,
                    kind: kind as u8,
                });
            }
        }
        trap_table.sort_by_key(|e| e.pc);
        let trap_table = trap_table.into_boxed_slice();
        let start = metadata.start.map(wrapper_of).unwrap_or(0);
        // Plain constants; funcref and global.get initialisers are
        // evaluated per instance.
        let globals_dynamic = (0..metadata.globals.len() as u32)
            .filter(|&i| metadata.globals[i as usize].init.as_plain().is_none())
            .collect();
        let globals_init = metadata
            .globals
            .iter()
            .map(|g| g.init.as_plain().unwrap_or(0))
            .collect();
        let type_ids = metadata
            .types
            .iter()
            .map(canonical_type_id)
            .collect::<Option<Box<[u32]>>>()
            .ok_or_else(|| unsupported("too many distinct function types".into()))?;
        // The compiled code the deadline kick may interrupt: the defined
        // functions only (see `kickable_code`). None for code from raw
        // parts (hand-written, or Rust functions in tests), where `r15`
        // may be the host's.
        let code = match (&lib, trap_table.last()) {
            (Some(_), Some(last)) => kickable_code(&funcs, &wrappers, &stubs, last.pc),
            _ => 0..0,
        };
        // Preemption signals may stop only code in that range.
        let preemptible = !code.is_empty();
        // SAFETY: the boxed table is owned by the Module and dropped after
        // the registration (field order); `code` is the loaded artifact's
        // defined functions (where `r15` is always the counter), mapped
        // while `lib` (dropped after the registration) is.
        let registration = unsafe { crate::traps::register_trap_table(&trap_table, code) }
            .ok_or_else(|| unsupported("too many modules loaded at once".into()))?;
        let needs_table_state = needs_table_state(&metadata);
        Ok(Module {
            path,
            hash,
            metadata,
            funcs,
            exports,
            stubs,
            start,
            trap_table,
            globals_init,
            globals_dynamic,
            type_ids,
            layout,
            needs_table_state,
            preemptible,
            _registration: Some(registration),
            _lib: lib,
            _dir: None,
        })
    }

    /// Load artifact `bytes` through the cache directory `cache_dir`
    /// (opened and checked with [`CacheDir::open`]): the bytes are checked
    /// first, then stored as `<cache_dir>/<SHA-256 hex>.so` unless that
    /// entry already holds exactly these bytes (an entry with any other
    /// content is replaced atomically), and that entry is loaded.
    pub fn from_artifact_bytes(bytes: &[u8], cache_dir: &Path) -> Result<Module, LoadError> {
        crate::tsc::start_calibration();
        let checked = check_bytes(Path::new("<artifact bytes>"), bytes)?;
        let cache = CacheDir::open(cache_dir)?;
        let name = format!("{}.so", hex(&checked.hash));
        // Use the entry only if it is byte for byte what we were given.
        match cache.read_entry(&name) {
            Ok(Some(existing)) if existing == bytes => {}
            _ => cache.write_entry(&name, bytes)?,
        }
        Self::load_checked(
            &cache.entry_path(&name),
            &cache.load_path(&name),
            checked,
            Some(cache.keep_open()),
        )
    }

    /// Compile `wasm` with `config` through the cache directory `cache_dir`
    /// (opened and checked with [`CacheDir::open`]; see
    /// [`Module::compile_cached`]).
    #[cfg(feature = "compiler")]
    pub fn compile(
        wasm: &[u8],
        config: &myriad_codegen::CompileConfig,
        cache_dir: &Path,
    ) -> Result<Module, LoadError> {
        let cache = CacheDir::open(cache_dir)?;
        Self::compile_cached(wasm, config, &cache).map(|(module, _)| module)
    }

    /// Load `wasm` compiled with `config` from `cache`, compiling it only
    /// if needed. The entry is `<source key hex>.so`, with the key from
    /// [`myriad_codegen::source_key`] (wasm bytes, settings, ABI version,
    /// this host's compiler fingerprint). It is used only if it is a regular
    /// file of this user's, passes the ELF check, `dlopen` succeeds and the
    /// loaded object's metadata passes its checks (checksum, ABI version,
    /// target and CPU features) and records exactly that key (the
    /// whole-file hash is verified when an entry is written, not on a hit);
    /// otherwise
    /// the module is compiled and the entry replaced atomically. Says which
    /// happened.
    #[cfg(feature = "compiler")]
    pub fn compile_cached(
        wasm: &[u8],
        config: &myriad_codegen::CompileConfig,
        cache: &CacheDir,
    ) -> Result<(Module, CacheOutcome), LoadError> {
        crate::tsc::start_calibration();
        let key = myriad_codegen::source_key(wasm, config);
        let name = format!("{}.so", hex(&key));
        let path = cache.entry_path(&name);
        let outcome = match cache.open_entry(&name) {
            Ok(None) => CacheOutcome::Miss,
            Ok(Some((file, len))) => match Self::load_entry(cache, &name, &file, len, &key) {
                Ok(module) => return Ok((module, CacheOutcome::Hit)),
                Err(e) => CacheOutcome::Replaced(e),
            },
            Err(e) => CacheOutcome::Replaced(LoadError::Cache(e)),
        };
        let bytes =
            myriad_codegen::compile(wasm, config).map_err(|e| LoadError::Compile(Box::new(e)))?;
        let checked = check_bytes(&path, &bytes)?;
        if checked.metadata.source_key != key {
            // The compiler records the same key; anything else is a bug.
            return Err(LoadError::SourceMismatch {
                path,
                recorded: checked.metadata.source_key,
                expected: key,
            });
        }
        cache.write_entry(&name, &bytes)?;
        let module = Self::load_checked(
            &path,
            &cache.load_path(&name),
            checked,
            Some(cache.keep_open()),
        )?;
        Ok((module, outcome))
    }

    /// The artifact's metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Signature of the exported function `name`.
    pub fn export_type(&self, name: &str) -> Option<&FuncType> {
        self.exports.get(name).map(|e| &e.ty)
    }

    /// The module's imports, in order.
    pub fn imports(&self) -> &[abi::Import] {
        &self.metadata.imports
    }

    /// The vmctx layout of this module's instances.
    pub fn layout(&self) -> abi::vmctx::Layout {
        self.layout
    }

    /// Address of the host stub of function import `i`.
    pub(crate) fn stub(&self, i: usize) -> usize {
        self.stubs.get(i).copied().unwrap_or(0)
    }

    /// Names of the exported functions.
    pub fn export_names(&self) -> impl Iterator<Item = &str> {
        self.exports.keys().map(|s| s.as_str())
    }

    /// The file this module was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The artifact's integrity hash (SHA-256 of the file with the hash
    /// cell zeroed; all zero for [`Module::from_raw_parts`]). Verified
    /// against the file on every load except a compile-cache hit, which
    /// reports the hash the entry records (verified when it was written).
    pub fn hash(&self) -> &[u8; abi::HASH_LEN] {
        &self.hash
    }

    /// Absolute addresses of the defined functions.
    pub fn func_addrs(&self) -> &[usize] {
        &self.funcs
    }

    /// The absolute trap table, sorted by pc.
    pub fn trap_table(&self) -> &[TrapEntry] {
        &self.trap_table
    }

    pub(crate) fn export(&self, name: &str) -> Option<&ExportInfo> {
        self.exports.get(name)
    }

    /// Whether the module's code can be stopped by a preemption signal
    /// (decided at load).
    pub(crate) fn preemptible(&self) -> bool {
        self.preemptible
    }

    /// Whether instances need a `TableState` (decided at load).
    pub(crate) fn needs_table_state(&self) -> bool {
        self.needs_table_state
    }

    pub(crate) fn start_addr(&self) -> usize {
        self.start
    }

    pub(crate) fn globals_init(&self) -> &[u64] {
        &self.globals_init
    }

    /// Indices of the defined globals whose initialiser must be evaluated
    /// per instance (see `globals_init` for the others).
    pub(crate) fn globals_dynamic(&self) -> &[u32] {
        &self.globals_dynamic
    }

    /// `r` with its concrete type index replaced by the canonical type id.
    pub(crate) fn canon_ref(&self, r: abi::RefPrecise) -> CanonRef {
        let heap = match r.heap {
            abi::RefHeap::Concrete(t) => {
                abi::RefHeap::Concrete(self.type_ids().get(t as usize).copied().unwrap_or(u32::MAX))
            }
            abstract_heap => abstract_heap,
        };
        CanonRef(abi::RefPrecise { heap, ..r })
    }

    /// Canonical (process-wide) type id of each type index.
    pub fn type_ids(&self) -> &[u32] {
        &self.type_ids
    }
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("path", &self.path)
            .field("hash", &format_args!("{}", hex(&self.hash)))
            .field("functions", &self.funcs.len())
            .field("exports", &self.exports.len())
            .finish()
    }
}

/// The path to hand to `dlopen`: a name without a slash would make it search
/// the library path instead of opening the file we just verified, so such a
/// name is anchored to the current directory.
fn dlopen_path(path: &Path) -> std::borrow::Cow<'_, Path> {
    if path.as_os_str().as_encoded_bytes().contains(&b'/') {
        std::borrow::Cow::Borrowed(path)
    } else {
        std::borrow::Cow::Owned(Path::new(".").join(path))
    }
}

/// The code of an artifact where `r15` is always the fuel counter, which
/// the deadline kick may mark: its defined functions, `funcs` (their
/// addresses), which the artifact writer places first in `.text`, before
/// every wrapper and stub (`helpers`). Not the helpers: an export wrapper
/// holds its caller's `r15` on entry, until it has saved it, and again
/// from restoring it to its return, and marking that value would hand the
/// host a corrupted register. With no helpers the functions end at the
/// last trap site, `last_trap` (every function ends in its stack check's
/// `ud2`, two bytes). Empty if the layout is not the writer's.
fn kickable_code(
    funcs: &[usize],
    wrappers: &[usize],
    stubs: &[usize],
    last_trap: usize,
) -> std::ops::Range<usize> {
    let (Some(&start), Some(&last_func)) = (funcs.iter().min(), funcs.iter().max()) else {
        return 0..0;
    };
    let end = match wrappers.iter().chain(stubs).copied().min() {
        Some(helper) if helper > last_func => helper,
        Some(_) => return 0..0,
        None => last_trap.saturating_add(2),
    };
    start..end.max(start)
}

#[cfg(test)]
mod kickable_code_tests {
    use super::kickable_code;

    #[test]
    fn the_kick_covers_the_functions_and_no_wrapper_or_stub() {
        // Functions at 0x1000 and 0x1100, a wrapper at 0x1200, a stub at
        // 0x1300: the functions up to the first helper.
        assert_eq!(
            kickable_code(&[0x1100, 0x1000], &[0x1200], &[0x1300], 0x1350),
            0x1000..0x1200
        );
        // No helpers: up to the last trap's end.
        assert_eq!(kickable_code(&[0x1000], &[], &[], 0x1080), 0x1000..0x1082);
        // A helper among the functions (not the writer's layout), or no
        // functions: nothing.
        assert_eq!(
            kickable_code(&[0x1000, 0x1400], &[0x1200], &[], 0x1500),
            0..0
        );
        assert_eq!(kickable_code(&[], &[0x1200], &[], 0x1300), 0..0);
    }
}

#[cfg(test)]
mod dlopen_path_tests {
    use super::dlopen_path;
    use std::path::Path;

    #[test]
    fn bare_names_are_anchored_to_the_current_directory() {
        assert_eq!(dlopen_path(Path::new("t.so")), Path::new("./t.so"));
        assert_eq!(dlopen_path(Path::new("a/t.so")), Path::new("a/t.so"));
        assert_eq!(dlopen_path(Path::new("/x/t.so")), Path::new("/x/t.so"));
    }
}

#[cfg(test)]
mod loaded_segment_tests {
    use super::within_loaded_segment;

    static CELL: [u8; 64] = [7; 64];

    #[test]
    fn ranges_inside_a_loaded_segment_pass_and_others_do_not() {
        let at = CELL.as_ptr() as usize;
        assert!(within_loaded_segment(at, CELL.len()));
        assert!(!within_loaded_segment(8, 8));
        assert!(!within_loaded_segment(at, usize::MAX / 2));
        assert!(!within_loaded_segment(usize::MAX - 4, 8));
    }
}

/// Whether values of type `t` are references.
fn is_ref(t: abi::ValType) -> bool {
    matches!(t, abi::ValType::FuncRef | abi::ValType::ExternRef)
}

/// Whether instances of a module with metadata `md` need a
/// `table::TableState`.
fn needs_table_state(md: &myriad_abi::Metadata) -> bool {
    // `ref.func` of an imported function does not set `func_refs`: with
    // function imports, any funcref in a signature may carry one out and
    // back in, and it must be recognised as the instance's own.
    let imports_funcs = md
        .imports
        .iter()
        .any(|i| matches!(i.kind, myriad_abi::ImportKind::Func(_)));
    let signatures_hold_refs = md
        .types
        .iter()
        .any(|ft| ft.params.iter().chain(&ft.results).any(|v| is_ref(*v)));
    md.func_refs
        || (imports_funcs && signatures_hold_refs)
        || !md.tables.is_empty()
        || !md.elems.is_empty()
        || md.data.iter().any(|d| d.passive)
        || md.imports.iter().any(|i| match &i.kind {
            // Function references can come in through these: the state
            // holds what host-returned and imported ones are checked
            // against. Numeric functions, memories and tags bring none.
            myriad_abi::ImportKind::Table(_) => true,
            myriad_abi::ImportKind::Global { ty, .. } => is_ref(*ty),
            myriad_abi::ImportKind::Func(t) => md
                .types
                .get(*t as usize)
                .is_none_or(|ft| ft.params.iter().chain(&ft.results).any(|v| is_ref(*v))),
            _ => false,
        })
}
