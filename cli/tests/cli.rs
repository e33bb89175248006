//! End-to-end tests of the `myriad` binary, each with its own cache dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_myriad");

const PROG: &str = r#"(module
  (memory 1 4)
  (global $g (mut i32) (i32.const 7))
  (data (i32.const 0) "hello")
  (func $fib (export "fib") (param $n i32) (result i64)
    (if (result i64) (i32.lt_s (local.get $n) (i32.const 2))
      (then (i64.extend_i32_s (local.get $n)))
      (else (i64.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "add64") (param i64 i64) (result i64) (i64.add (local.get 0) (local.get 1)))
  (func (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func (export "floats") (param f64 f32) (result f64 f32)
    (f64.add (local.get 0) (f64.const 0.25)) (local.get 1))
  (func (export "oob") (result i32) (i32.load (i32.const 1000000)))
)"#;

/// A fresh directory for one test, with a cache dir inside.
struct Env {
    dir: PathBuf,
}

impl Env {
    fn new(name: &str) -> Env {
        let dir =
            std::env::temp_dir().join(format!("myriad-cli-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Env { dir }
    }

    fn cache(&self) -> PathBuf {
        self.dir.join("cache")
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn myriad(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .current_dir(&self.dir)
            .env("MYRIAD_CACHE_DIR", self.cache())
            .output()
            .unwrap()
    }

    fn cache_entries(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = match std::fs::read_dir(self.cache()) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(o));
    stdout(o)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn compile_then_inspect() {
    let env = Env::new("inspect");
    env.write("prog.wat", PROG);
    // Relative paths: `inspect t.so` must not go through the library search path.
    let o = env.myriad(&["compile", "prog.wat", "-o", "prog.so"]);
    ok(&o);
    assert!(env.dir.join("prog.so").exists());
    let out = ok(&env.myriad(&["inspect", "prog.so"]));
    let abi_line = format!("ABI version:   {}", myriad_codegen::abi::ABI_VERSION);
    for want in [
        abi_line.as_str(),
        "target:        x86_64-linux (this host's; CPU features it needs, all present: ",
        "has_sse3",
        "(the compiler's settings on this host)",
        "bounds:        dense: complete bounds checks",
        "memory:        min 1 pages, max 4 pages, page size 65536 bytes",
        "global 0: mut i32 = 7",
        "data segments: 1 (5 bytes)",
        "fib: (i32) -> i64",
        "add64: (i64, i64) -> i64",
        "floats: (f64, f32) -> (f64, f32)",
        "oob: () -> i32",
        "imports:       0",
        "start:         none",
        "IntegerDivisionByZero",
        "size:          ",
        "artifact hash: ",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // The artifact runs directly, too.
    assert_eq!(
        ok(&env.myriad(&["run", "--invoke", "fib", "prog.so", "10"])),
        "55\n"
    );
    // Compile with guard bytes: recorded in the artifact.
    ok(&env.myriad(&["compile", "prog.wat", "-o", "g.so", "--guard-kib", "64"]));
    let out = ok(&env.myriad(&["inspect", "g.so"]));
    assert!(
        out.contains("bounds:        guarded: needs guard mode and 65536 guard bytes"),
        "{out}"
    );
    assert_eq!(
        ok(&env.myriad(&["run", "--invoke", "add", "g.so", "2", "3"])),
        "5\n"
    );
}

#[test]
fn invoke_runs_alone_or_in_the_quantum_asked_for() {
    // Without --quantum-us the instance runs in fuel slices of 2^40 units;
    // with it, in time slices of that many microseconds: fib(30) spans
    // thousands of 1 µs slices and comes out the same.
    let env = Env::new("quantum");
    let prog = env.write("prog.wat", PROG);
    let prog = p(&prog);
    for q in [None, Some("1"), Some("100")] {
        let mut args = vec!["run"];
        if let Some(q) = q {
            args.extend(["--quantum-us", q]);
        }
        args.extend(["--invoke", "fib", prog, "30"]);
        assert_eq!(ok(&env.myriad(&args)), "832040\n", "{args:?}");
    }
    let o = env.myriad(&["run", "--quantum-us", "0", "--invoke", "fib", prog, "3"]);
    assert_eq!(o.status.code(), Some(2), "a zero quantum is refused");
}

#[test]
fn invoke_prints_results() {
    let env = Env::new("invoke");
    let prog = env.write("prog.wat", PROG);
    let prog = p(&prog);
    assert_eq!(
        ok(&env.myriad(&["run", "--invoke", "fib", prog, "20"])),
        "6765\n"
    );
    assert_eq!(
        ok(&env.myriad(&["run", "--invoke", "fib", prog, "30"])),
        "832040\n"
    );
    assert_eq!(
        ok(&env.myriad(&["run", "--invoke", "add", prog, "-5", "0x10"])),
        "11\n"
    );
    assert_eq!(
        ok(&env.myriad(&["run", "--invoke", "add", prog, "0x7fffffff", "1"])),
        "-2147483648\n"
    );
    assert_eq!(
        ok(&env.myriad(&["run", "--invoke", "add64", prog, "-9000000000", "-0x10"])),
        "-9000000016\n"
    );
    assert_eq!(
        ok(&env.myriad(&["run", "--invoke", "floats", prog, "1.5", "-inf"])),
        "1.75\n-inf\n"
    );
    assert_eq!(
        ok(&env.myriad(&["run", "--invoke", "floats", prog, "inf", "nan"])),
        "inf\nNaN\n"
    );
    // A .wasm binary works like text.
    let wasm = wat::parse_str(PROG).unwrap();
    std::fs::write(env.dir.join("prog.wasm"), wasm).unwrap();
    assert_eq!(
        ok(&env.myriad(&["run", "--invoke", "div", "prog.wasm", "-7", "2"])),
        "-3\n"
    );
}

#[test]
fn trap_exits_134() {
    let env = Env::new("trap");
    let prog = env.write("prog.wat", PROG);
    let o = env.myriad(&["run", "--invoke", "div", p(&prog), "1", "0"]);
    assert_eq!(o.status.code(), Some(134));
    assert!(
        stderr(&o).contains("error: trap: integer divide by zero"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "");
    let o = env.myriad(&["run", "--invoke", "oob", p(&prog)]);
    assert_eq!(o.status.code(), Some(134));
    assert!(
        stderr(&o).contains("error: trap: out of bounds memory access"),
        "{}",
        stderr(&o)
    );
    let u = env.write("u.wat", r#"(module (func (export "_start") unreachable))"#);
    let o = env.myriad(&["run", p(&u)]);
    assert_eq!(o.status.code(), Some(134));
    assert!(
        stderr(&o).contains("error: trap: unreachable"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bounds_modes_compile_run_and_inspect() {
    let env = Env::new("bounds");
    let prog = env.write("prog.wat", PROG);
    // `run` of a source compiles sparse by default; dense on request. Both
    // give the same answers and the same out-of-bounds trap.
    for extra in [
        &[][..],
        &["--bounds", "dense"][..],
        &["--bounds", "sparse"][..],
    ] {
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        let mut fib = args.clone();
        fib.extend_from_slice(&["--invoke", "fib", p(&prog), "20"]);
        assert_eq!(ok(&env.myriad(&fib)), "6765\n", "{extra:?}");
        let mut oob = args.clone();
        oob.extend_from_slice(&["--invoke", "oob", p(&prog)]);
        let o = env.myriad(&oob);
        assert_eq!(o.status.code(), Some(134), "{extra:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("out of bounds memory access"),
            "{}",
            stderr(&o)
        );
    }
    // Dense and sparse artifacts are distinct cache entries.
    assert_eq!(env.cache_entries().len(), 2, "{:?}", env.cache_entries());

    ok(&env.myriad(&["compile", "--bounds", "sparse", "prog.wat", "-o", "s.so"]));
    let out = ok(&env.myriad(&["inspect", "s.so", "--source", "prog.wat"]));
    assert!(out.contains("bounds:        sparse: "), "{out}");
    assert!(out.contains("4 GiB heap reservation"), "{out}");
    assert_eq!(
        ok(&env.myriad(&["run", "--invoke", "add", "s.so", "2", "3"])),
        "5\n"
    );
    // A module without memory is compiled dense whatever was asked, and
    // inspect says why.
    env.write(
        "nomem.wat",
        r#"(module (func (export "f") (result i32) (i32.const 3)))"#,
    );
    ok(&env.myriad(&["compile", "--bounds", "sparse", "nomem.wat", "-o", "n.so"]));
    let out = ok(&env.myriad(&["inspect", "n.so"]));
    assert!(out.contains("bounds:        dense"), "{out}");
    assert!(out.contains("(compiled dense: "), "{out}");
    // Nonsense combinations are usage errors.
    for args in [
        &["run", "--bounds", "sparse", "--guard-kib", "0", "prog.wat"][..],
        &["run", "--bounds", "loose", "prog.wat"][..],
    ] {
        let o = env.myriad(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn out_of_bounds_segments_trap_at_instantiation() {
    let env = Env::new("segments");
    let data = env.write(
        "data.wat",
        r#"(module (memory 1) (data (i32.const 65535) "ab") (func (export "_start")))"#,
    );
    let elem = env.write(
        "elem.wat",
        r#"(module (table 1 funcref) (func $f) (elem (i32.const 1) $f)
             (func (export "_start")))"#,
    );
    for (prog, want) in [
        (&data, "error: trap: out of bounds memory access"),
        (&elem, "error: trap: out of bounds table access"),
    ] {
        for bounds in ["dense", "sparse"] {
            let o = env.myriad(&["run", "--bounds", bounds, p(prog)]);
            assert_eq!(o.status.code(), Some(134), "{bounds}: {}", stderr(&o));
            assert!(stderr(&o).contains(want), "{bounds}: {}", stderr(&o));
        }
    }
}

#[test]
fn redirected_stdio_is_not_a_terminal() {
    // The exit status is 10 + the file types of fds 0 and 1 (fdstat)
    // and of fd 1 (filestat): 0 unknown, 2 a character device, which
    // wasi-libc's `isatty` takes for a terminal. The test's stdin and
    // pipes are not terminals (programs wrote colour codes into
    // redirected output).
    let env = Env::new("tty");
    let w = env.write(
        "w.wat",
        r#"(module
             (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $st (param i32 i32) (result i32)))
             (import "wasi_snapshot_preview1" "fd_filestat_get" (func $fst (param i32 i32) (result i32)))
             (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
             (memory (export "memory") 1)
             (func (export "_start")
               (drop (call $st (i32.const 0) (i32.const 64)))
               (drop (call $st (i32.const 1) (i32.const 96)))
               (drop (call $fst (i32.const 1) (i32.const 128)))
               (call $exit (i32.add (i32.add (i32.const 10) (i32.load8_u (i32.const 144)))
                 (i32.add (i32.load8_u (i32.const 64)) (i32.load8_u (i32.const 96)))))))"#,
    );
    let o = env.myriad(&["run", p(&w)]);
    assert_eq!(o.status.code(), Some(10), "{}", stderr(&o));
}

/// Run `poll_oneoff` of a clock of `timeout_ns` and a read of stdin, with
/// stdin a pipe that stays open and empty until `write_after` (if any)
/// passes, when a byte is written to it. Returns the exit status (10 ×
/// events + the first event's userdata: 1 the clock, 2 stdin) and the
/// time it took.
fn poll_clock_and_stdin(
    timeout_ns: u64,
    write_after: Option<std::time::Duration>,
) -> (Option<i32>, std::time::Duration) {
    // A directory of its own per call: the tests that call this run at
    // once, and a shared one let one test's program replace the other's.
    let env = Env::new(&format!("pollin-{timeout_ns}-{}", write_after.is_some()));
    let w = env.write(
        "w.wat",
        &format!(
            r#"(module
             (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
             (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
             (memory (export "memory") 1)
             (func (export "_start")
               (i64.store (i32.const 0) (i64.const 1))
               (i32.store8 (i32.const 8) (i32.const 0))
               (i32.store (i32.const 16) (i32.const 1))
               (i64.store (i32.const 24) (i64.const {timeout_ns}))
               (i64.store (i32.const 48) (i64.const 2))
               (i32.store8 (i32.const 56) (i32.const 1))
               (i32.store (i32.const 64) (i32.const 0))
               (drop (call $poll (i32.const 0) (i32.const 128) (i32.const 2) (i32.const 512)))
               (call $exit (i32.add (i32.mul (i32.load (i32.const 512)) (i32.const 10))
                 (i32.wrap_i64 (i64.load (i32.const 128)))))))"#,
            timeout_ns = timeout_ns as i64
        ),
    );
    let t = std::time::Instant::now();
    let mut child = Command::new(BIN)
        .args(["run", p(&w)])
        .current_dir(&env.dir)
        .env("MYRIAD_CACHE_DIR", env.cache())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Hold the pipe open (and empty) until the program ends, or write.
    let mut stdin = child.stdin.take();
    if let Some(after) = write_after {
        std::thread::sleep(after);
        use std::io::Write;
        stdin.as_mut().unwrap().write_all(b"x").unwrap();
    }
    let status = child.wait().unwrap();
    drop(stdin);
    (status.code(), t.elapsed())
}

#[test]
fn poll_of_an_inherited_stdin_with_nothing_to_read_waits_for_its_clock() {
    // One event, the clock, after 200 ms. An inherited stdin was reported
    // ready at once, and the read after it blocked.
    let (code, took) = poll_clock_and_stdin(200_000_000, None);
    assert_eq!(code, Some(11));
    assert!(took >= std::time::Duration::from_millis(200));
}

#[test]
fn poll_of_an_inherited_stdin_with_the_longest_clock_waits_for_input() {
    // A clock of u64::MAX ns is past what the host's clock holds: the wait
    // is for input only (it must not overflow), and input ends it.
    let (code, _) = poll_clock_and_stdin(u64::MAX, Some(std::time::Duration::from_millis(100)));
    assert_eq!(code, Some(12));
}

#[test]
fn invoke_of_a_wasi_module_is_explained() {
    let env = Env::new("invoke-wasi");
    let w = env.write(
        "w.wat",
        r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
             (func (export "_start")) (func (export "f") (result i32) (i32.const 1)))"#,
    );
    let o = env.myriad(&["run", "--invoke", "f", p(&w)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--invoke calls an export without WASI")
            && stderr(&o).contains("wasi_snapshot_preview1.proc_exit"),
        "{}",
        stderr(&o)
    );
    // Without --invoke its _start runs with WASI.
    let o = env.myriad(&["run", p(&w)]);
    assert_eq!(ok(&o), "");
}

#[test]
fn start_runs_and_missing_start_is_explained() {
    let env = Env::new("start");
    let s = env.write("s.wat", r#"(module (func (export "_start")))"#);
    let o = env.myriad(&["run", p(&s)]);
    assert_eq!(ok(&o), "");
    let prog = env.write("prog.wat", PROG);
    let o = env.myriad(&["run", p(&prog)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no _start export; use --invoke NAME"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_arguments_exit_2() {
    let env = Env::new("args");
    let prog = env.write("prog.wat", PROG);
    let prog = p(&prog);
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "--invoke", "add", prog, "1"],
            "takes 2 arguments, 1 given",
        ),
        (
            &["run", "--invoke", "fib", prog, "1", "2"],
            "takes 1 argument, 2 given",
        ),
        (
            &["run", "--invoke", "fib", prog, "x"],
            "argument 1 of export \"fib\" must be i32",
        ),
        (
            &["run", "--invoke", "fib", prog, "4294967296"],
            "must be i32",
        ),
        (
            &["run", "--invoke", "floats", prog, "1", "y"],
            "argument 2 of export \"floats\" must be f32",
        ),
        (
            &["run", "--invoke", "nope", prog],
            "no exported function named \"nope\"",
        ),
        (&["run", "--bogus", prog], "--bogus"),
    ];
    for (args, want) in cases {
        let o = env.myriad(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(want),
            "{args:?}: want {want:?} in {}",
            stderr(&o)
        );
    }
}

#[test]
fn second_run_hits_the_cache() {
    let env = Env::new("cache");
    let prog = env.write("prog.wat", PROG);
    let prog = p(&prog);
    let o = env.myriad(&["-v", "run", "--invoke", "fib", prog, "15"]);
    assert_eq!(ok(&o), "610\n");
    assert!(stderr(&o).contains("cache miss"), "{}", stderr(&o));
    let entries = env.cache_entries();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].extension().is_some_and(|e| e == "so"));
    let mtime = std::fs::metadata(&entries[0]).unwrap().modified().unwrap();

    let o = env.myriad(&["-v", "run", "--invoke", "fib", prog, "15"]);
    assert_eq!(ok(&o), "610\n");
    assert!(stderr(&o).contains("cache hit"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("cache miss"), "{}", stderr(&o));
    assert_eq!(env.cache_entries(), entries);
    assert_eq!(
        std::fs::metadata(&entries[0]).unwrap().modified().unwrap(),
        mtime
    );

    // --no-cache neither reads nor writes it.
    let o = env.myriad(&["-v", "run", "--no-cache", "--invoke", "fib", prog, "15"]);
    assert_eq!(ok(&o), "610\n");
    assert!(!stderr(&o).contains("cache hit"), "{}", stderr(&o));
    assert_eq!(env.cache_entries(), entries);

    // A different guard setting is a different entry.
    ok(&env.myriad(&["run", "--guard-kib", "64", "--invoke", "fib", prog, "15"]));
    assert_eq!(env.cache_entries().len(), 2);
}

#[test]
fn corrupt_cache_entry_is_recompiled() {
    let env = Env::new("corrupt-cache");
    let prog = env.write("prog.wat", PROG);
    let prog = p(&prog);
    ok(&env.myriad(&["run", "--invoke", "fib", prog, "12"]));
    let entries = env.cache_entries();
    assert_eq!(entries.len(), 1);
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    // A byte of the metadata (a cache hit checks its checksum; it does not
    // hash the whole file, see docs/SECURITY.md).
    let at =
        myriad_abi::find_marker(&bytes, &myriad_abi::METADATA_MARKER).unwrap() + 16 + 4 + 8 + 5;
    bytes[at] ^= 0xff;
    std::fs::write(&entries[0], &bytes).unwrap();

    let o = env.myriad(&["-v", "run", "--invoke", "fib", prog, "12"]);
    assert_eq!(ok(&o), "144\n");
    assert!(
        stderr(&o).contains("warning: discarding unusable cache entry"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("corrupt"), "{}", stderr(&o));
    assert_eq!(env.cache_entries(), entries);
    let o = env.myriad(&["-v", "run", "--invoke", "fib", prog, "12"]);
    assert_eq!(ok(&o), "144\n");
    assert!(stderr(&o).contains("cache hit"), "{}", stderr(&o));
}

#[test]
fn inspect_shows_tags() {
    let env = Env::new("inspect-tags");
    env.write(
        "tags.wat",
        r#"(module
             (import "env" "e" (tag (param i32 f64)))
             (tag (export "t") (param i64))
             (export "e" (tag 0)))"#,
    );
    ok(&env.myriad(&["compile", "tags.wat", "-o", "tags.so"]));
    let out = ok(&env.myriad(&["inspect", "tags.so"]));
    for want in [
        "tags:          1 defined, 1 imported",
        "t: tag (i64)",
        "e: tag (i32, f64)",
        "env.e: tag (i32, f64)",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

#[test]
fn inspect_corrupt_artifact_fails() {
    let env = Env::new("corrupt");
    env.write("prog.wat", PROG);
    ok(&env.myriad(&["compile", "prog.wat", "-o", "prog.so"]));
    let mut bytes = std::fs::read(env.dir.join("prog.so")).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(env.dir.join("bad.so"), &bytes).unwrap();
    for args in [
        &["inspect", "bad.so"][..],
        &["run", "--invoke", "fib", "bad.so", "3"][..],
    ] {
        let o = env.myriad(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stderr(&o).contains("corrupt"), "{}", stderr(&o));
        assert_eq!(stdout(&o), "");
    }
    // Not an artifact at all.
    env.write("junk.so", "not an elf file");
    let o = env.myriad(&["inspect", "junk.so"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not a Myriad artifact"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unresolvable_imports_are_refused_by_name() {
    let env = Env::new("imports");
    let w = env.write(
        "imp.wat",
        r#"(module
             (import "env" "nowhere" (func (param i32)))
             (func (export "_start")))"#,
    );
    // Imports compile; running needs a definition for each.
    ok(&env.myriad(&["compile", p(&w), "-o", "x.so"]));
    let o = env.myriad(&["run", p(&w)]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("env.nowhere"), "{e}");
}

#[test]
fn invalid_input_fails_clearly() {
    let env = Env::new("invalid");
    env.write(
        "bad.wat",
        "(module (func (export \"f\") (result i32) i64.const 1))",
    );
    let o = env.myriad(&["run", "--invoke", "f", "bad.wat"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot compile"), "{}", stderr(&o));
    let o = env.myriad(&["run", "missing.wasm"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot read"), "{}", stderr(&o));
    env.write("syntax.wat", "(module (func");
    let o = env.myriad(&["compile", "syntax.wat", "-o", "s.so"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not a valid .wasm or .wat module"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn compiling_and_running_needs_no_toolchain() {
    // Artifacts are linked in process: with nothing on PATH (no `cc`, no
    // `ld`), compiling, inspecting and running still work.
    let env = Env::new("no-toolchain");
    let prog = env.write("p.wat", PROG);
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .current_dir(&env.dir)
            .env_clear()
            .env("PATH", "")
            .env("MYRIAD_CACHE_DIR", env.cache())
            .output()
            .unwrap()
    };
    let prog = prog.to_str().unwrap();
    let o = run(&["compile", prog, "-o", "p.so"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["inspect", "p.so"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["run", "--invoke", "fib", prog, "20"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "6765");
}
