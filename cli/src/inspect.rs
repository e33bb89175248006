//! `myriad inspect`: verify an artifact exactly as loading does, then
//! describe it, saying what the checks do and do not establish.

use crate::values::{signature, tag_signature, type_name};
use anyhow::{Context, Result};
use myriad_abi::hex;
use myriad_abi::{ExportKind, GlobalDecl, ImportKind, TrapKind, ValType};
use myriad_runtime::Module;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

fn global_value(g: &GlobalDecl) -> String {
    let Some(bits) = g.init.as_plain() else {
        return format!("{:?}", g.init.0);
    };
    match g.ty {
        ValType::I32 => (bits as u32 as i32).to_string(),
        ValType::I64 => (bits as i64).to_string(),
        ValType::F32 => f32::from_bits(bits as u32).to_string(),
        ValType::F64 => f64::from_bits(bits).to_string(),
        ValType::FuncRef | ValType::ExternRef => "null".to_string(),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Describe the artifact at `path`; a load failure is the error. With
/// `source`, also compare the recorded source key with that module's
/// (exit status 1 when they differ).
pub fn inspect(path: &Path, source: Option<&Path>) -> Result<ExitCode> {
    let module = Module::from_file(&crate::absolute(path)).map_err(anyhow::Error::new)?;
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let md = module.metadata();
    let host = myriad_codegen::host_fingerprint();
    let mut s = String::new();
    let w = &mut s;
    // Writing to a String cannot fail.
    let _ = writeln!(w, "file:          {}", path.display());
    let _ = writeln!(w, "size:          {size} bytes");
    let _ = writeln!(
        w,
        "artifact hash: {} (SHA-256, matches the file)",
        hex(module.hash())
    );
    let _ = writeln!(w, "ABI version:   {} (this runtime's)", md.abi_version);
    let _ = writeln!(
        w,
        "target:        {} (this host's; CPU features it needs, all present: {})",
        md.target,
        if md.cpu_features.is_empty() {
            "none".to_string()
        } else {
            md.cpu_features.join(" ")
        }
    );
    let _ = writeln!(
        w,
        "fingerprint:   {:016x} ({})",
        md.fingerprint,
        if md.fingerprint == host {
            "the compiler's settings on this host".to_string()
        } else {
            format!("compiled with other settings: this host's compiler gives {host:016x}")
        }
    );
    let recorded = md.source_key != [0; 32];
    let _ = writeln!(
        w,
        "source key:    {}{}",
        hex(&md.source_key),
        if recorded {
            " (recorded: SHA-256 of the wasm bytes,\n               \
             compile settings, compiler and ABI version, and fingerprint)"
        } else {
            " (none recorded)"
        }
    );
    let mut status = ExitCode::SUCCESS;
    if let Some(src) = source {
        let wasm = crate::read_wasm(src)?;
        // The settings the compile asked for (the key covers those).
        let config = myriad_codegen::CompileConfig {
            guard_bytes: md.requested_guard_bytes,
            heap_reservation: md.requested_heap_reservation,
        };
        let key = myriad_codegen::source_key(&wasm, &config);
        if key == md.source_key {
            let _ = writeln!(w, "source:        matches {}", src.display());
        } else {
            let _ = writeln!(
                w,
                "source:        DOES NOT MATCH {} (its key is {})",
                src.display(),
                hex(&key)
            );
            status = ExitCode::FAILURE;
        }
    }
    let _ = writeln!(
        w,
        "verified:      integrity: the file is intact (its SHA-256 matches) and was\n\
         \x20              built for this ABI version and CPU"
    );
    let _ = writeln!(
        w,
        "not verified:  authenticity: anyone able to write this file could have\n\
         \x20              produced a consistent one, with other code and any recorded\n\
         \x20              source key; run only artifacts this host compiled or that\n\
         \x20              you trust as you would a shared library"
    );
    let mode = if md.guard_bytes == 0 {
        "dense: complete bounds checks".to_string()
    } else if md.heap_reservation >= myriad_codegen::SPARSE_RESERVATION {
        format!(
            "sparse: no checks for offsets up to the guard; needs guard mode, \
             a {} GiB heap reservation and {} guard bytes",
            md.heap_reservation >> 30,
            md.guard_bytes
        )
    } else {
        format!(
            "guarded: needs guard mode and {} guard bytes",
            md.guard_bytes
        )
    };
    let _ = writeln!(w, "bounds:        {mode}");
    if (md.requested_guard_bytes, md.requested_heap_reservation)
        != (md.guard_bytes, md.heap_reservation)
    {
        let _ = writeln!(
            w,
            "               (compiled dense: the module has no memory of its own with \
             pages of 4 KiB or more, so it cannot rely on a guard)"
        );
    }
    match md.memory {
        None => {
            let _ = writeln!(w, "memory:        none");
        }
        Some(m) => {
            let max = m
                .max_pages
                .map_or_else(|| "none".to_string(), |p| p.to_string());
            let _ = writeln!(
                w,
                "memory:        min {} pages, max {max} pages, page size {} bytes",
                m.min_pages,
                m.page_size()
            );
        }
    }
    let _ = writeln!(w, "functions:     {}", md.func_types.len());
    let _ = writeln!(w, "globals:       {}", md.globals.len());
    let _ = writeln!(
        w,
        "tags:          {} defined, {} imported (inert: no exception handling yet)",
        md.tags.len(),
        md.num_imported_tags()
    );
    for (i, g) in md.globals.iter().enumerate() {
        let _ = writeln!(
            w,
            "  global {i}: {}{} = {}",
            if g.mutable { "mut " } else { "" },
            type_name(g.ty),
            global_value(g)
        );
    }
    // Counts active and passive segments.
    let data_bytes: usize = md.data.iter().map(|d| d.bytes.len()).sum();
    let _ = writeln!(
        w,
        "data segments: {} ({})",
        md.data.len(),
        plural(data_bytes, "byte", "bytes")
    );
    let _ = writeln!(w, "exports:       {}", md.exports.len());
    for e in &md.exports {
        let what = match e.kind {
            ExportKind::Func => module
                .export_type(&e.name)
                .map_or_else(|| "?".to_string(), signature),
            ExportKind::Global => format!("global {}", e.index),
            ExportKind::Memory => "memory".to_string(),
            ExportKind::Table => format!("table {}", e.index),
            ExportKind::Tag => md
                .tag_type(e.index)
                .map_or_else(|| "?".to_string(), tag_signature),
        };
        let _ = writeln!(w, "  {}: {what}", e.name);
    }
    match md.start {
        None => {
            let _ = writeln!(w, "start:         none");
        }
        Some(f) => {
            let _ = writeln!(w, "start:         function {f}");
        }
    }
    let _ = writeln!(w, "imports:       {}", md.imports.len());
    for i in &md.imports {
        let what = match &i.kind {
            ImportKind::Func(t) => md
                .types
                .get(*t as usize)
                .map_or_else(|| "?".to_string(), signature),
            ImportKind::Global { ty, mutable } => format!(
                "global {}{}",
                if *mutable { "mut " } else { "" },
                type_name(*ty)
            ),
            ImportKind::Memory(m) => format!(
                "memory min {} pages, max {}",
                m.min_pages,
                m.max_pages
                    .map_or_else(|| "none".to_string(), |p| p.to_string())
            ),
            ImportKind::Table(t) => format!("table of {} min {}", type_name(t.ty), t.min),
            ImportKind::Tag(t) => md
                .types
                .get(*t as usize)
                .map_or_else(|| "?".to_string(), tag_signature),
        };
        let _ = writeln!(w, "  {}.{}: {what}", i.module, i.name);
    }
    let _ = writeln!(w, "trap sites:    {}", md.traps.len());
    for kind in TrapKind::ALL {
        let n = md.traps.iter().filter(|t| t.kind == kind).count();
        if n > 0 {
            let _ = writeln!(w, "  {kind:?} ({kind}): {n}");
        }
    }
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()?;
    Ok(status)
}
