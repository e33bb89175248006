//! Checks that every import of the C test programs' checked-in wasm builds
//! (`tests/c/<name>.wasm`, rebuilt from `tests/c/<name>.c` by
//! `scripts/build-test-guests.sh`) is a preview1 function this crate knows,
//! with the signature it declares, and that every source has its build.

use myriad_abi::ValType;
use myriad_wasi::testprog;
use myriad_wasi::{WasiFunc, MODULE};
use std::collections::BTreeSet;

/// The checked-in build of `tests/c/<name>.c`.
fn load(name: &str) -> Vec<u8> {
    testprog::load(name).unwrap_or_else(|e| panic!("{e}"))
}

/// One import of a module: field name and wasm signature.
#[derive(Debug)]
struct Import {
    module: String,
    name: String,
    params: Vec<ValType>,
    results: Vec<ValType>,
}

fn val(t: wasmparser::ValType) -> ValType {
    match t {
        wasmparser::ValType::I32 => ValType::I32,
        wasmparser::ValType::I64 => ValType::I64,
        wasmparser::ValType::F32 => ValType::F32,
        wasmparser::ValType::F64 => ValType::F64,
        other => panic!("unexpected value type {other:?}"),
    }
}

/// The function imports of `wasm`, plus its export names.
fn imports_exports(wasm: &[u8]) -> (Vec<Import>, BTreeSet<String>) {
    let mut types = Vec::new();
    let mut imports = Vec::new();
    let mut exports = BTreeSet::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.unwrap() {
            wasmparser::Payload::TypeSection(r) => {
                for ty in r.into_iter_err_on_gc_types() {
                    let ty = ty.unwrap();
                    types.push((
                        ty.params().iter().copied().map(val).collect::<Vec<_>>(),
                        ty.results().iter().copied().map(val).collect::<Vec<_>>(),
                    ));
                }
            }
            wasmparser::Payload::ImportSection(r) => {
                for imp in r.into_imports() {
                    let imp = imp.unwrap();
                    let idx = match imp.ty {
                        wasmparser::TypeRef::Func(i) | wasmparser::TypeRef::FuncExact(i) => {
                            i as usize
                        }
                        other => {
                            panic!("non-function import {}.{}: {other:?}", imp.module, imp.name)
                        }
                    };
                    let (params, results) = types[idx].clone();
                    imports.push(Import {
                        module: imp.module.to_string(),
                        name: imp.name.to_string(),
                        params,
                        results,
                    });
                }
            }
            wasmparser::Payload::ExportSection(r) => {
                for exp in r {
                    exports.insert(exp.unwrap().name.to_string());
                }
            }
            _ => {}
        }
    }
    (imports, exports)
}

/// Checks every import against `WasiFunc` and returns the functions used.
fn check_imports(name: &str, wasm: &[u8]) -> BTreeSet<&'static str> {
    let (imports, exports) = imports_exports(wasm);
    assert!(exports.contains("_start"), "{name}: no _start export");
    assert!(exports.contains("memory"), "{name}: no memory export");
    let mut used = BTreeSet::new();
    for imp in &imports {
        assert_eq!(
            imp.module, MODULE,
            "{name}: import {}.{}",
            imp.module, imp.name
        );
        let f = WasiFunc::lookup(&imp.name)
            .unwrap_or_else(|| panic!("{name}: unknown WASI import {}", imp.name));
        assert_eq!(
            f.params(),
            &imp.params[..],
            "{name}: params of {}",
            imp.name
        );
        assert_eq!(
            f.results(),
            &imp.results[..],
            "{name}: results of {}",
            imp.name
        );
        used.insert(f.name());
    }
    used
}

#[test]
fn hello_imports() {
    let w = load("hello");
    let used = check_imports("hello", &w);
    assert!(
        used.contains("fd_write") && used.contains("proc_exit"),
        "{used:?}"
    );
}

#[test]
fn args_env_imports() {
    let w = load("args_env");
    let used = check_imports("args_env", &w);
    for f in [
        "args_get",
        "args_sizes_get",
        "environ_get",
        "environ_sizes_get",
    ] {
        assert!(used.contains(f), "{f} not imported: {used:?}");
    }
}

#[test]
fn copy_imports() {
    let w = load("copy");
    let used = check_imports("copy", &w);
    for f in [
        "path_open",
        "fd_read",
        "fd_write",
        "fd_readdir",
        "path_filestat_get",
        "path_create_directory",
        "path_remove_directory",
        "path_unlink_file",
        "path_rename",
        "path_symlink",
        "path_readlink",
        "fd_prestat_get",
        "fd_prestat_dir_name",
        "fd_seek",
        "fd_pread",
    ] {
        assert!(used.contains(f), "{f} not imported: {used:?}");
    }
}

#[test]
fn compute_imports() {
    let w = load("compute");
    check_imports("compute", &w);
}

#[test]
fn trap_imports() {
    let w = load("trap");
    check_imports("trap", &w);
}

#[test]
fn sleep_imports() {
    let w = load("sleep");
    let used = check_imports("sleep", &w);
    assert!(used.contains("poll_oneoff"), "{used:?}");
    assert!(used.contains("clock_time_get"), "{used:?}");
}

/// The stems of the files in `tests/c` with extension `ext`, sorted.
fn stems(ext: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(testprog::source_dir())
        .expect("read tests/c")
        .filter_map(|e| {
            let p = e.expect("read a tests/c entry").path();
            (p.extension()? == ext).then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_program_is_listed() {
    let on_disk: Vec<String> = stems("c").into_iter().filter(|n| n != "imports").collect();
    let mut listed: Vec<String> = testprog::PROGRAMS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    for p in testprog::PROGRAMS {
        assert!(
            testprog::source_dir()
                .join("expected")
                .join(format!("{p}.stdout"))
                .exists(),
            "expected/{p}.stdout"
        );
    }
}

/// Every `.c` has its checked-in `.wasm` beside it and every `.wasm` its
/// source, and each is a wasm binary (magic and version 1).
#[test]
fn every_source_has_its_build() {
    let sources = stems("c");
    assert_eq!(
        sources,
        stems("wasm"),
        "tests/c/*.c and tests/c/*.wasm differ; run {}",
        testprog::REBUILD_SCRIPT
    );
    for name in &sources {
        let w = load(name);
        assert_eq!(w.get(..8), Some(&b"\0asm\x01\0\0\0"[..]), "{name}.wasm");
    }
}

/// Every function wasi-libc's `<wasi/api.h>` declares links against this
/// crate: `imports.c` calls them all.
#[test]
fn whole_wasi_libc_surface_matches() {
    let w = load("imports");
    let used = check_imports("imports", &w);
    // 45 functions in this wasi-libc's api.h; proc_raise is the one
    // preview1 function it no longer declares.
    assert_eq!(used.len(), 45, "{used:?}");
    let all: BTreeSet<_> = WasiFunc::ALL.iter().map(|f| f.name()).collect();
    let missing: Vec<_> = all.difference(&used).collect();
    assert_eq!(missing, [&"proc_raise"]);
}
