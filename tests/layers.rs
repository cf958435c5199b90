//! The module layering of `src/`: each top-level module imports only from the modules below
//! it in [`LAYERS`], so the import graph has no cycle.
//!
//! The check reads the source: every `crate::` path outside a comment (grouped imports
//! `use crate::{a::X, b::{Y, Z}}` included), with a path through a root re-export
//! (`crate::TaskRunner`) resolved to the module that defines it. A dependency that is not
//! written as a `crate::` path (a method called on a field) rides on the import that names
//! the field's type, so it is caught there.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The top-level modules of `src/`, lowest first, as in the comment in `lib.rs`.
const LAYERS: &[&str] = &[
    "sync",
    "panic",
    "id",
    "status",
    "error",
    "retry",
    "config",
    "runtime", // leaves
    "observe",
    "task",
    "queue",
    "runner", // the core
    "schedule",
    "store",
    "durable",
    "stream",
    "wait",
    "step",
    "shell",     // built on it
    "dashboard", // served
];

/// Folders of `src/` that are other crates (binaries): they reach the library only through
/// its public API (`taskrunner::`), so they are in no layer.
const OTHER_CRATES: &[&str] = &["bin"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments (line comments and doc comments; intra-doc links are not
/// imports).
fn code_of(source: &str) -> String {
    source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .map(|line| match line.find("// ") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segment of every `crate::` path in `code`, grouped imports expanded.
fn crate_paths(code: &str) -> Vec<String> {
    let mut firsts = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `taskrunner_crate::`, not ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            // The group's items, to its closing brace; each item's first segment counts.
            let mut depth = 1;
            let mut end = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = j;
                    break;
                }
            }
            let mut depth = 0;
            let mut item = String::new();
            for c in group[..end].chars().chain(std::iter::once(',')) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let first: String = item
                            .trim()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if !first.is_empty() {
                            firsts.push(first);
                        }
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 || !item.contains("::") {
                    item.push(c);
                }
            }
        } else {
            let first: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            firsts.push(first);
        }
    }
    firsts
}

/// The root re-exports of `lib.rs`: item name → the top-level module that defines it.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let code = code_of(lib);
    for statement in code.split(';') {
        let Some(at) = statement.find("pub use ") else {
            continue;
        };
        let path = statement[at + "pub use ".len()..].trim();
        let module: String = path
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let names = match path.find('{') {
            Some(open) => path[open + 1..path.rfind('}').unwrap_or(path.len())].to_owned(),
            None => path.rsplit("::").next().unwrap_or_default().to_owned(),
        };
        for name in names.split(|c: char| c == ',' || c.is_whitespace()) {
            if !name.is_empty() {
                map.insert(name.to_owned(), module.clone());
            }
        }
    }
    map
}

/// Each top-level module's imports of other top-level modules, with the files that make them.
fn module_imports() -> BTreeMap<(String, String), BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let reexports = root_reexports(&fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut imports = BTreeMap::<(String, String), BTreeSet<String>>::new();
    for file in files {
        let relative = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let module = relative
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "lib" || OTHER_CRATES.contains(&module.as_str()) {
            continue; // the root declares and re-exports everything; a binary is another crate
        }
        let code = code_of(&fs::read_to_string(&file).unwrap());
        for first in crate_paths(&code) {
            let target = if LAYERS.contains(&first.as_str()) {
                first
            } else if let Some(module) = reexports.get(&first) {
                module.clone()
            } else {
                continue; // a macro or a path this check does not know: not a module
            };
            if target != module {
                imports
                    .entry((module.clone(), target))
                    .or_default()
                    .insert(relative.clone());
            }
        }
    }
    imports
}

#[test]
fn every_module_is_in_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let module = name.trim_end_matches(".rs");
        if module != "lib" && !OTHER_CRATES.contains(&module) {
            assert!(
                LAYERS.contains(&module),
                "src/{name} is in no layer: add it to LAYERS here and to the comment in lib.rs"
            );
        }
    }
}

#[test]
fn imports_point_down_the_layers() {
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m).unwrap();
    let imports = module_imports();
    assert!(
        imports.len() > 20,
        "the check found only {} imports between modules: is it reading the source?",
        imports.len()
    );
    let upward: Vec<String> = imports
        .iter()
        .filter(|((from, to), _)| rank(to) > rank(from))
        .map(|((from, to), files)| format!("{from} -> {to} (in {files:?})"))
        .collect();
    assert!(
        upward.is_empty(),
        "imports that point up the layers (a cycle in the making):\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_check_sees_grouped_and_re_exported_imports() {
    let code = "use crate::{id::TaskId, task::{Header, Job}};\nlet r: crate::TaskRunner;";
    assert_eq!(crate_paths(code), ["id", "task", "TaskRunner"]);
    let lib = "pub use runner::{TaskHandle, TaskRunner};\npub use id::TaskId;";
    let map = root_reexports(lib);
    assert_eq!(map["TaskRunner"], "runner");
    assert_eq!(map["TaskId"], "id");
    assert!(code_of("// use crate::runner;\nlet x = 1; // crate::queue")
        .find("crate")
        .is_none());
}

/// One concept per file: a file past this many lines holds more than one.
const MAX_LINES: usize = 400;

#[test]
fn no_source_file_is_over_400_lines() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let long: Vec<String> = files
        .iter()
        .map(|file| (file, fs::read_to_string(file).unwrap().lines().count()))
        .filter(|(_, lines)| *lines > MAX_LINES)
        .map(|(file, lines)| format!("{} ({lines} lines)", file.display()))
        .collect();
    assert!(long.is_empty(), "split these by concept: {long:?}");
}
