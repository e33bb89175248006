//! Regression files: what a divergence, panic or crash leaves behind, and
//! replaying them.
//!
//! A case is a set of files with one stem in the regressions directory:
//!
//! - `<stem>.txt`: `key: value` header lines (`seed`, `kind`,
//!   `signature`, `input`), a blank line, then the description;
//! - `<stem>.wasm` (and `<stem>.wat`, printed for reading) for a module
//!   case, replayed with the run parameters of its seed;
//! - `<stem>.so` for an artifact-loader case, replayed by loading it;
//! - `<stem>.before.wasm` (header lines `before` and `before_seed`) for a
//!   divergence that shows only right after another module ran in the
//!   same slot: replay runs it first.
//!
//! `KNOWN.md` lists the stems of known, unfixed issues (lines starting
//! with ``- `stem` ``); their replay reports them without failing.

use crate::diff::{Runner, Verdict};
use crate::gen::RunParams;
use crate::loaders::{load_checked, LoadVerdict};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One regression case.
#[derive(Clone, Debug)]
pub struct Case {
    /// The file stem.
    pub name: String,
    /// The description file.
    pub txt: PathBuf,
    /// The input: a `.wasm` module or a `.so` artifact.
    pub input: PathBuf,
    /// The seed whose run parameters replay it.
    pub seed: u64,
    /// A module to run first in the same slot, with its seed (for a
    /// divergence that shows only after it).
    pub before: Option<(PathBuf, u64)>,
}

/// Write a case: `<dir>/<name>.<ext>` with `input`, the text form of a
/// module, and `<name>.txt` with `header` and `detail`. Returns the
/// description file's path.
pub fn write_case(
    dir: &Path,
    name: &str,
    ext: &str,
    input: &[u8],
    header: &[(&str, String)],
    detail: &str,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("{name}.{ext}")), input)?;
    if ext == "wasm" {
        if let Ok(text) = wasmprinter::print_bytes(input) {
            std::fs::write(dir.join(format!("{name}.wat")), text)?;
        }
    }
    let mut txt = String::new();
    for (k, v) in header {
        txt.push_str(&format!("{k}: {v}\n"));
    }
    txt.push_str(&format!("input: {name}.{ext}\n\n{detail}\n"));
    let path = dir.join(format!("{name}.txt"));
    std::fs::write(&path, txt)?;
    Ok(path)
}

/// Parse a number written as decimal or `0x` hexadecimal.
pub fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Every case in `dir` (an absent directory has none), by name.
pub fn cases(dir: &Path) -> Result<Vec<Case>, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("txt") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let field = |k: &str| {
            text.lines()
                .take_while(|l| !l.is_empty())
                .find_map(|l| l.strip_prefix(&format!("{k}: ")).map(str::to_string))
        };
        let seed = field("seed")
            .and_then(|s| parse_u64(&s))
            .ok_or_else(|| format!("{}: no `seed:` line", path.display()))?;
        let input =
            field("input").ok_or_else(|| format!("{}: no `input:` line", path.display()))?;
        let input = dir.join(input);
        if !input.exists() {
            return Err(format!(
                "{}: input {} is missing",
                path.display(),
                input.display()
            ));
        }
        let before = match (field("before"), field("before_seed")) {
            (Some(b), Some(s)) => {
                let s = parse_u64(&s)
                    .ok_or_else(|| format!("{}: bad `before_seed:` line", path.display()))?;
                Some((dir.join(b), s))
            }
            _ => None,
        };
        out.push(Case {
            name,
            txt: path,
            input,
            seed,
            before,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The stems `KNOWN.md` in `dir` lists: every line that starts with
/// ``- `stem` `` names one.
pub fn known(dir: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(dir.join("KNOWN.md")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("- `"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_string)
        .collect()
}

/// The result of replaying a case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replay {
    /// It no longer shows a problem (or was skipped, with the reason).
    Passes(String),
    /// It still shows the problem.
    Fails(String),
}

/// Replay `case` in this process (a crash kills it: run it in a child
/// process to survive that).
pub fn replay(case: &Case, runner: &Runner, artifact_cache: &Path) -> Replay {
    let Ok(input) = std::fs::read(&case.input) else {
        return Replay::Fails(format!("cannot read {}", case.input.display()));
    };
    if case.input.extension().and_then(|x| x.to_str()) == Some("so") {
        return match load_checked(&input, artifact_cache) {
            LoadVerdict::Panic(p) => Replay::Fails(format!("loading panics: {p}")),
            v => Replay::Passes(format!("load: {v:?}")),
        };
    }
    if let Some((before, seed)) = &case.before {
        let Ok(b) = std::fs::read(before) else {
            return Replay::Fails(format!("cannot read {}", before.display()));
        };
        runner.run(&b, &RunParams::from_seed(*seed));
    }
    match runner.run(&input, &RunParams::from_seed(case.seed)) {
        Verdict::Agreed(s) => Replay::Passes(format!("agreed ({} calls)", s.calls)),
        Verdict::Skipped(why) => Replay::Passes(format!("skipped: {why}")),
        Verdict::Diverged(d) => Replay::Fails(format!("{}\n{}", d.signature, d.detail)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_and_known_are_read_back() {
        let dir = std::env::temp_dir().join(format!("myriad-fuzz-cases-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write_case(
            &dir,
            "div-00000000000000ff-x",
            "wasm",
            b"\0asm\x01\0\0\0",
            &[("seed", "0xff".into()), ("kind", "divergence".into())],
            "what happened",
        )
        .expect("write");
        std::fs::write(
            dir.join("KNOWN.md"),
            "# Known\n\nText with `code` in it.\n\n- `div-00000000000000ff-x`: a known one\n",
        )
        .expect("write");
        let cs = cases(&dir).expect("cases");
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].seed, 0xff);
        assert_eq!(cs[0].name, "div-00000000000000ff-x");
        assert!(cs[0].input.ends_with("div-00000000000000ff-x.wasm"));
        assert!(dir.join("div-00000000000000ff-x.wat").exists());
        let k = known(&dir);
        assert_eq!(
            k.into_iter().collect::<Vec<_>>(),
            ["div-00000000000000ff-x"]
        );
        let _ = std::fs::remove_dir_all(&dir);
        assert!(cases(&dir).expect("absent directory").is_empty());
    }
}
