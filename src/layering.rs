//! The house's rules, checked over the source text: a module uses only modules of its own or
//! lower layers (the list in the crate doc), and no two files of one folder import each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest first; a module may use those before it.
const LAYERS: [&str; 24] = [
    "allocator",
    "schema",
    "clock",
    "db",
    "generate",
    "config",
    "usage",
    "cluster",
    "storage",
    "ingest",
    "query",
    "render",
    "panels",
    "check",
    "live",
    "alerts",
    "metering",
    "auth",
    "actions",
    "demo",
    "http",
    "server",
    "cli_auth",
    "cli_generate",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without its unit tests and comment lines (they may name anything).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Names after `prefix` (`crate::x`, `super::x`, or inside `super::{x, y}`).
fn names_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in code.match_indices(prefix) {
        let rest = &code[i + prefix.len()..];
        let list = match rest.strip_prefix('{') {
            Some(inner) => inner.split('}').next().unwrap_or(""),
            None => rest
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
                .unwrap_or(""),
        };
        for name in list.split(',') {
            let name = name.trim().split("::").next().unwrap_or("").trim();
            if name.starts_with(|c: char| c.is_ascii_lowercase()) {
                names.insert(name.to_string());
            }
        }
    }
    names
}

#[test]
fn imports_point_down_and_files_do_not_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut upward = vec![];
    // (folder, file stem) → the sibling stems it names through `super::`.
    let mut siblings: BTreeMap<(PathBuf, String), BTreeSet<String>> = BTreeMap::new();
    for path in &files {
        let rel = path.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let top = top.trim_end_matches(".rs").to_string();
        let code = code(path);
        if let Some(own) = rank(&top) {
            for used in names_after(&code, "crate::") {
                if rank(&used).is_some_and(|r| r > own) {
                    upward.push(format!("{} uses crate::{used}", rel.display()));
                }
            }
        }
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        if stem != "mod" && stem != "lib" && stem != "main" {
            let folder = path.parent().unwrap().to_path_buf();
            siblings.insert((folder, stem), names_after(&code, "super::"));
        }
    }
    let mut circles = vec![];
    for ((folder, a), uses) in &siblings {
        for b in uses {
            let back = siblings.get(&(folder.clone(), b.clone()));
            if a < b && back.is_some_and(|names| names.contains(a)) {
                circles.push(format!("{}: {a} <-> {b}", folder.display()));
            }
        }
    }
    assert!(upward.is_empty(), "imports running up a layer: {upward:#?}");
    assert!(
        circles.is_empty(),
        "files importing each other: {circles:#?}"
    );
}
