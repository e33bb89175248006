//! Attacks through the `myriad` command line: hostile modules given to
//! `myriad run` must end with a clear error or their own result, never a
//! crash of the command. One function per attack.

use std::path::PathBuf;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_myriad");

/// A fresh directory for one attack (the cache inside it, `0700`).
fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("myriad-cli-attack-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("work dir");
    dir
}

fn myriad(dir: &PathBuf, args: &[String]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("MYRIAD_CACHE_DIR", dir.join("cache"))
        .output()
        .expect("run myriad")
}

/// An export with 1,000 parameters and 1,000 results (the identity),
/// called with 1,000 arguments: its entry wrapper's frame (about 24 KB)
/// used to be written below a 16 KiB stack, into the memory below the
/// slot, and crash the command. Now: a clear refusal on a stack too small
/// for it, the right results on one large enough.
#[test]
fn a_thousand_parameters_and_results() {
    let dir = workdir("wide");
    let n = 1000;
    let wat = format!(
        "(module (func (export \"f\") (param {t}) (result {t}) {gets}))",
        t = vec!["i64"; n].join(" "),
        gets = (0..n)
            .map(|k| format!("(local.get {k})"))
            .collect::<String>()
    );
    std::fs::write(dir.join("wide.wat"), wat).expect("write module");
    let args = |stack_kib: u32| -> Vec<String> {
        let mut a: Vec<String> = [
            "run",
            "--stack-kib",
            &stack_kib.to_string(),
            "--invoke",
            "f",
            "wide.wat",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend((1..=n).map(|k| k.to_string()));
        a
    };
    let small = myriad(&dir, &args(16));
    let err = String::from_utf8_lossy(&small.stderr);
    assert_eq!(small.status.code(), Some(1), "stderr: {err}");
    assert!(
        err.contains("bytes of stack") && err.contains("export \"f\""),
        "stderr: {err}"
    );
    let big = myriad(&dir, &args(64));
    assert_eq!(
        big.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&big.stderr)
    );
    let out = String::from_utf8_lossy(&big.stdout);
    let results: Vec<&str> = out.lines().collect();
    let expected: Vec<String> = (1..=n).map(|k| k.to_string()).collect();
    assert_eq!(results, expected);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `proc_exit(256)`: the status was cut to its low byte, so `myriad run`
/// exited 0 and a failing program looked successful (and -1 became 255).
/// Now a status outside 0..=255 exits 1 with a note on stderr; 0..=255
/// are passed on as they are.
#[test]
fn proc_exit_outside_a_byte_never_looks_like_success() {
    let dir = workdir("exit");
    let wat = |code: i32| {
        format!(
            "(module
               (import \"wasi_snapshot_preview1\" \"proc_exit\" (func $exit (param i32)))
               (memory (export \"memory\") 1)
               (func (export \"_start\") (call $exit (i32.const {code}))))"
        )
    };
    for (code, status) in [
        (256, 1),
        (-1, 1),
        (512, 1),
        (0x1_0000 + 7, 1),
        (i32::MIN, 1),
        (i32::MAX, 1),
        (0, 0),
        (3, 3),
        (255, 255),
    ] {
        let file = format!("exit{}.wat", code as u32);
        std::fs::write(dir.join(&file), wat(code)).expect("write module");
        let o = myriad(&dir, &["run".into(), file.clone()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(status), "proc_exit({code}): {err}");
        if status == 1 {
            assert!(
                err.contains(&format!("exited with status {code}")) && err.contains("0..=255"),
                "proc_exit({code}): {err}"
            );
        } else {
            assert!(err.is_empty(), "proc_exit({code}): {err}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
