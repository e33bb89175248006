//! The runtime's source files form layers: no file reaches, through the
//! paths it names (`crate::module::Item`, `crate::Item` re-exported by the
//! crate root, `super::Item` in a submodule), a file that reaches back to
//! it. A circle of imports means two files can only be understood (and
//! changed) together; this test names the first circle it finds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, relative to `root`.
fn sources(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.strip_prefix(root).expect("under src").to_path_buf());
        }
    }
}

/// `text` without comments (line comments, doc comments) and string
/// contents, so paths in prose and messages do not count.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = ' ';
        let mut kept = String::new();
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if !in_str && c == '/' && chars.get(i + 1) == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                kept.push(c);
            }
            prev = c;
            i += 1;
        }
        out.push_str(&kept);
        out.push('\n');
    }
    out
}

/// Identifiers following each occurrence of `prefix` (`a::b::C`).
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        // Not part of a longer identifier (e.g. `mycrate::`).
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let segs: Vec<&str> = rest[..end].split("::").filter(|s| !s.is_empty()).collect();
        if !segs.is_empty() {
            found.push(segs);
        }
    }
    found
}

#[test]
fn runtime_source_files_form_layers_without_import_circles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    let exists = |p: &str| files.iter().any(|f| f == Path::new(p));
    // The crate root's re-exports: `crate::Name` means the file defining it.
    let lib = code_only(&std::fs::read_to_string(root.join("lib.rs")).expect("lib.rs"));
    let mut reexports: BTreeMap<String, String> = BTreeMap::new();
    for line in lib.lines() {
        let line = line.trim().trim_start_matches("pub use").trim();
        let Some((module, names)) = line.split_once("::") else {
            continue;
        };
        let names = names.trim_matches(|c| c == '{' || c == '}' || c == ',' || c == ';');
        for name in names.split(',') {
            let name = name.trim().trim_matches(|c| c == '{' || c == '}');
            if !name.is_empty() && module.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                reexports.insert(name.to_string(), module.to_string());
            }
        }
    }
    // The file a module path names: `a` -> a.rs or a/mod.rs; `a::b` ->
    // a/b.rs when that file exists.
    let resolve = |segs: &[&str]| -> Option<String> {
        let first = *segs.first()?;
        if let Some(second) = segs.get(1) {
            let sub = format!("{first}/{second}.rs");
            if exists(&sub) {
                return Some(sub);
            }
        }
        [format!("{first}.rs"), format!("{first}/mod.rs")]
            .into_iter()
            .find(|c| exists(c))
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let name = file.to_string_lossy().to_string();
        if name == "lib.rs" {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(root.join(file)).expect("source"));
        let mut deps = BTreeSet::new();
        for segs in paths_after(&code, "crate::") {
            let target = if segs[0].starts_with(|c: char| c.is_ascii_uppercase()) {
                reexports.get(segs[0]).and_then(|m| resolve(&[m.as_str()]))
            } else {
                resolve(&segs)
            };
            deps.extend(target);
        }
        // `super::x` in a submodule: the sibling file `x`, else the parent.
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            let dir = dir.to_string_lossy();
            for segs in paths_after(&code, "super::") {
                let sibling = format!("{dir}/{}.rs", segs[0]);
                deps.insert(if exists(&sibling) {
                    sibling
                } else {
                    format!("{dir}/mod.rs")
                });
            }
        }
        // A directory module's `mod.rs` names its children with `mod x;`
        // and `pub use x::...`: only the `use` counts.
        if name.ends_with("mod.rs") {
            let dir = file.parent().expect("dir").to_string_lossy().to_string();
            for line in code.lines() {
                let line = line.trim();
                if let Some(rest) = line.strip_prefix("pub use ").or(line.strip_prefix("use ")) {
                    if let Some((child, _)) = rest.split_once("::") {
                        let f = format!("{dir}/{child}.rs");
                        if exists(&f) {
                            deps.insert(f);
                        }
                    }
                }
            }
        }
        deps.remove(&name);
        edges.insert(name, deps);
    }
    // Depth-first search for a circle.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(2) => return None,
            Some(1) => {
                let at = stack.iter().position(|n| n == node).unwrap_or(0);
                let mut circle = stack[at..].to_vec();
                circle.push(node.to_string());
                return Some(circle);
            }
            _ => {}
        }
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        let mut stack = Vec::new();
        if let Some(circle) = visit(node, &edges, &mut state, &mut stack) {
            panic!(
                "import circle among runtime/src files: {}",
                circle.join(" -> ")
            );
        }
    }
    // The layers are real: a sample of edges the test must see.
    assert!(edges["instance/mod.rs"].contains("region.rs"));
    assert!(edges["arch/x86_64.rs"].contains("builtins/table.rs"));
    assert!(edges["vmctx.rs"].contains("account.rs"));
    assert!(edges.len() >= 20, "{} files", edges.len());
}
