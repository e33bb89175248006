//! `myriad run` on the project's own C programs: the checked-in wasm builds
//! `wasi/tests/c/<name>.wasm` (rebuilt from their `.c` sources by
//! `scripts/build-test-guests.sh`; the tests need no wasm toolchain).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_myriad");

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("myriad-wasi-run-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Copies the checked-in `wasi/tests/c/<name>.wasm` into `out` (so that
/// nothing the run writes lands in the source tree) and returns the copy.
fn program(name: &str, out: &Path) -> PathBuf {
    let wasm = myriad_wasi::testprog::load(name).unwrap_or_else(|e| panic!("{e}"));
    let p = out.join(format!("{name}.wasm"));
    std::fs::write(&p, wasm).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    p
}

fn run(cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("MYRIAD_CACHE_DIR", cwd.join("cache"))
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn expected(name: &str) -> String {
    let p = myriad_wasi::testprog::source_dir()
        .join("expected")
        .join(format!("{name}.stdout"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn hello_prints_and_exits_zero() {
    let d = dir("hello");
    let p = program("hello", &d);
    let o = run(&d, &["run", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), expected("hello"));
}

#[test]
fn args_and_env_reach_the_program_and_the_exit_status_is_its() {
    let d = dir("args");
    let p = program("args_env", &d);
    let o = run(
        &d,
        &[
            "run",
            "--env",
            "GREETING=hi there",
            "--env",
            "EMPTY=",
            p.to_str().unwrap(),
            "one",
            "two words",
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "exit(argc): {}", text(&o.stderr));
    assert!(out.contains("argv[1]=one"), "{out}");
    assert!(out.contains("argv[2]=two words"), "{out}");
    assert!(out.contains("GREETING=hi there"), "{out}");
    assert!(out.contains("MISSING unset"), "{out}");
}

#[test]
fn everything_after_the_program_is_its_argument_flags_included() {
    // `myriad run`'s own flags go before the program; after it, words that
    // look like myriad's flags (`--dir`, `-v`) are the program's, even
    // right after the program (they were taken as myriad's there).
    let d = dir("args_flags");
    let p = program("args_env", &d);
    let o = run(&d, &["run", p.to_str().unwrap(), "--dir", "nowhere", "-v"]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(4), "exit(argc): {}", text(&o.stderr));
    assert!(out.contains("argv[1]=--dir"), "{out}");
    assert!(out.contains("argv[2]=nowhere"), "{out}");
    assert!(out.contains("argv[3]=-v"), "{out}");
    assert!(!text(&o.stderr).contains("cache"), "-v was not myriad's");
}

#[test]
fn file_io_in_a_preopened_dir_and_escapes_are_refused() {
    let d = dir("copy");
    let p = program("copy", &d);
    let sandbox = d.join("box");
    std::fs::create_dir_all(&sandbox).unwrap();
    std::fs::write(sandbox.join("in.txt"), "payload\n").unwrap();
    std::fs::write(d.join("escape.txt"), "secret\n").unwrap();
    let o = run(&sandbox, &["run", "--dir", ".", p.to_str().unwrap()]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    assert!(out.contains("copied out.txt: 8 bytes, identical"), "{out}");
    assert!(out.contains("open ../escape.txt: ENOTCAPABLE"), "{out}");
    assert!(out.contains("open link_out: ENOTCAPABLE"), "{out}");
    assert!(out.contains("failures: 0"), "{out}");
    assert_eq!(
        std::fs::read_to_string(sandbox.join("out.txt")).unwrap(),
        "payload\n"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("escape.txt")).unwrap(),
        "secret\n",
        "the file outside the sandbox is untouched"
    );
}

/// Reads and writes far larger than the host moves in one call (256 KiB):
/// stdio loops on the short counts, so the program sees every byte.
#[test]
fn large_reads_and_writes_go_through_in_short_parts() {
    let d = dir("bigio");
    let p = program("bigio", &d);
    let sandbox = d.join("box");
    std::fs::create_dir_all(&sandbox).unwrap();
    let o = run(&sandbox, &["run", "--dir", ".", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert_eq!(text(&o.stdout), expected("bigio"));
    // 1 MiB to stderr with one fwrite: 'a'..'z' lines of 63 characters.
    assert_eq!(o.stderr.len(), 1 << 20);
    assert!(o.stderr.iter().enumerate().all(|(i, &b)| b
        == if i % 64 == 63 {
            b'\n'
        } else {
            b'a' + (i % 26) as u8
        }));
    assert_eq!(
        std::fs::metadata(sandbox.join("big.bin")).unwrap().len(),
        3 * 1024 * 1024 + 17
    );
    assert_eq!(
        std::fs::metadata(sandbox.join("raw.bin")).unwrap().len(),
        256 * 1024
    );
}

#[test]
fn compute_kernel_and_trap() {
    let d = dir("compute");
    let p = program("compute", &d);
    let o = run(&d, &["run", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o.stdout), expected("compute"));
    let t = program("trap", &d);
    let o = run(&d, &["run", t.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(134));
    assert_eq!(text(&o.stdout), expected("trap"));
    assert!(text(&o.stderr).contains("trap: unreachable"));
}

#[test]
fn sleeping_program_sleeps() {
    let d = dir("sleep");
    let p = program("sleep", &d);
    let t = std::time::Instant::now();
    let o = run(&d, &["run", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), expected("sleep"));
    assert!(t.elapsed() >= std::time::Duration::from_millis(100));
}
