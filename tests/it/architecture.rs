//! The "Architecture invariant:" lines of ARCHITECTURE.md, checked against the source: which
//! top-level module may import which, where polars and clap may appear, and no import cycles.
//! Read from the source text (comments and strings removed), so it needs no build of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Source text without comments and string literals (so a word in a doc comment or an error
/// message is not an import).
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            // Char literals ('"', '\\'), not lifetimes ('a).
            b'\'' if b.get(i + 2) == Some(&b'\'') => i += 3,
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

/// Top-level module → (its code, the crate modules it names).
fn modules() -> BTreeMap<String, (String, BTreeSet<String>)> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut out: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let top = top.trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(&f).unwrap());
        let entry = out.entry(top.clone()).or_default();
        for name in crate_imports(&code, &module_path(rel)) {
            if name != top {
                entry.1.insert(name);
            }
        }
        entry.0.push_str(&code);
    }
    out
}

/// The module path of a source file: `x.rs` and `x/mod.rs` are `[x]`, `x/y.rs` is `[x, y]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        })
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    parts
}

/// The top-level modules `code` (of the module at `path`) names: `crate::x`, each item of
/// `crate::{x, y::z}`, and `super::…` paths that climb to the crate root (`super::x` in
/// `a/mod.rs`, `super::super::x` in `a/b.rs`).
fn crate_imports(code: &str, path: &[String]) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    // The first identifier of each top-level item of a `{…}` group starting at `rest`.
    let group = |rest: &str| -> Vec<String> {
        let (mut depth, mut items, mut start) = (0, Vec::new(), 1);
        for (i, c) in rest.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 1 => {
                    items.push(ident(&rest[start..i]));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 1 => {
                    items.push(ident(&rest[start..i]));
                    start = i + 1;
                }
                _ => {}
            }
        }
        items
    };
    let mut out = BTreeSet::new();
    let mut names_at = |rest: &str| {
        if rest.starts_with('{') {
            out.extend(group(rest));
        } else {
            out.insert(ident(rest));
        }
    };
    for (i, _) in code.match_indices("crate::") {
        let before = code[..i].chars().next_back();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names_at(&code[i + 7..]);
        }
    }
    // `super::super::…x`: climbing as many levels as the module is deep reaches the root.
    let depth = path.len();
    let climb = "super::".repeat(depth);
    for (i, _) in code.match_indices(climb.as_str()) {
        let before = &code[..i];
        if before.ends_with("super::") || before.ends_with(|c: char| c.is_ascii_alphanumeric()) {
            continue;
        }
        let rest = &code[i + climb.len()..];
        if !rest.starts_with("super::") {
            names_at(rest);
        }
    }
    out.retain(|n| !n.is_empty() && n != "self" && n != "super");
    out
}

fn uses(code: &str, krate: &str) -> bool {
    code.contains(&format!("{krate}::")) || code.contains(&format!("use {krate}"))
}

#[test]
fn polars_lives_in_query_and_clap_in_flags() {
    for (m, (code, _)) in modules() {
        assert!(
            m == "query" || !uses(&code, "polars"),
            "Architecture invariant: polars is used only in query (found in {m})"
        );
        assert!(
            m == "flags" || !uses(&code, "clap"),
            "Architecture invariant: clap is used only in flags (found in {m})"
        );
    }
}

#[test]
fn each_module_imports_only_what_its_invariant_allows() {
    // module → crate modules it must not import.
    let stages = [
        "sources",
        "ingest",
        "lake",
        "pricing",
        "rating",
        "report",
        "reconcile",
        "credits",
        "anomalies",
        "query",
        "export",
    ];
    let forbidden: &[(&str, &[&str])] = &[
        ("vocab", &["*"]),
        ("money", &["*"]),
        ("intern", &["*"]),
        ("par", &["*"]),
        ("grid", &["*except money"]),
        (
            "model",
            &[
                "lake",
                "sources",
                "ingest",
                "query",
                "pricing",
                "rating",
                "report",
                "reconcile",
            ],
        ),
        (
            "sources",
            &[
                "lake",
                "ingest",
                "query",
                "pricing",
                "rating",
                "report",
                "reconcile",
                "run",
            ],
        ),
        (
            "lake",
            &[
                "sources",
                "ingest",
                "query",
                "pricing",
                "rating",
                "report",
                "reconcile",
                "run",
            ],
        ),
        (
            "pricing",
            &[
                "lake",
                "query",
                "rating",
                "report",
                "reconcile",
                "ingest",
                "sources",
            ],
        ),
        (
            "query",
            &[
                "rating",
                "report",
                "reconcile",
                "ingest",
                "sources",
                "pricing",
                "run",
            ],
        ),
        (
            "rating",
            &["report", "reconcile", "ingest", "sources", "query", "run"],
        ),
        (
            // The report prices on the fly with `pricing`'s rates and `rating::row_cost` (one
            // arithmetic for both), and never writes.
            "report",
            &["reconcile", "ingest", "sources", "run"],
        ),
        (
            "reconcile",
            &["rating", "report", "ingest", "sources", "run"],
        ),
        (
            "anomalies",
            &[
                "rating",
                "report",
                "reconcile",
                "credits",
                "ingest",
                "sources",
                "pricing",
                "run",
            ],
        ),
        (
            "credits",
            &[
                "rating",
                "report",
                "reconcile",
                "ingest",
                "sources",
                "pricing",
                "run",
            ],
        ),
        (
            "synth",
            &[
                "lake",
                "ingest",
                "query",
                "rating",
                "report",
                "reconcile",
                "run",
            ],
        ),
        ("settings", &["run", "ingest", "query", "rating", "report"]),
        // The export reads the lake and writes its own files: never the lake, never mail.
        ("export", &["ingest", "mail", "sources", "pull", "settings"]),
    ];
    let mods = modules();
    for (m, bad) in forbidden {
        let (_, deps) = mods.get(*m).unwrap_or_else(|| panic!("no module {m}"));
        for d in deps {
            let ok = match bad {
                ["*"] => false,
                ["*except money"] => d == "money",
                list => !list.contains(&d.as_str()),
            };
            assert!(ok, "Architecture invariant: {m} must not import {d}");
        }
    }
    // Nothing below the presentation layer renders: no stage imports present, run or cli.
    for s in stages
        .iter()
        .chain(["run", "settings", "synth", "model", "config"].iter())
    {
        for top in ["present", "run", "cli"] {
            if s == &top {
                continue;
            }
            assert!(
                !mods[*s].1.contains(top),
                "Architecture invariant: {s} must not import {top}"
            );
        }
    }
}

#[test]
fn top_level_modules_have_no_import_cycles() {
    let mods = modules();
    let deps: BTreeMap<&str, Vec<&str>> = mods
        .iter()
        .map(|(m, (_, d))| {
            let d = d
                .iter()
                .map(String::as_str)
                .filter(|x| mods.contains_key(*x))
                .collect();
            (m.as_str(), d)
        })
        .collect();
    if let Some(cycle) = cycle(&deps) {
        panic!("Architecture invariant: no import cycles; found {cycle:?}");
    }
}

/// A cycle of `deps` (the path, then the node reached again), if any: a depth-first search in
/// which a node still open is reached again.
fn cycle<'a>(deps: &BTreeMap<&'a str, Vec<&'a str>>) -> Option<Vec<&'a str>> {
    fn visit<'a>(
        n: &'a str,
        deps: &BTreeMap<&'a str, Vec<&'a str>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> bool {
        match state.get(n) {
            Some(2) => return false,
            Some(1) => {
                path.push(n);
                return true;
            }
            _ => {}
        }
        state.insert(n, 1);
        path.push(n);
        if deps[n].iter().any(|d| visit(d, deps, state, path)) {
            return true;
        }
        path.pop();
        state.insert(n, 2);
        false
    }
    let mut state = BTreeMap::new();
    deps.keys().find_map(|m| {
        let mut path = Vec::new();
        visit(m, deps, &mut state, &mut path).then_some(path)
    })
}

#[test]
fn the_source_reader_sees_imports_not_words() {
    let code = code_only(
        "// uses polars\nlet s = \"crate::x\";\nlet q = '\"'; let e = '\\'';\nuse crate::money::Money;\n",
    );
    assert!(
        !code.contains("polars") && !code.contains("crate::x") && code.contains("crate::money")
    );
}

#[test]
fn the_source_reader_sees_grouped_and_relative_imports() {
    let path = |p: &str| module_path(Path::new(p));
    let code = code_only(
        "use crate::{money::Money, vocab::{Month, Provider},\n    grid};\nuse super::super::lake::Layout;\nuse super::sibling;\n",
    );
    let seen = crate_imports(&code, &path("report/scan.rs"));
    for m in ["money", "vocab", "grid", "lake"] {
        assert!(seen.contains(m), "{m} not seen in {seen:?}");
    }
    assert!(
        !seen.contains("sibling"),
        "super:: in a sub-file is its folder, not the root"
    );
    // In a folder's mod.rs, one `super::` is the crate root.
    let seen = crate_imports(&code_only("use super::present;\n"), &path("report/mod.rs"));
    assert!(seen.contains("present"), "{seen:?}");
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn src_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn cli_dispatches_only() {
    // The command line parses, calls one library function, prints and maps an exit code: it
    // reaches nothing below `run` but the words it prints with.
    let allowed = ["flags", "settings", "run", "present", "log", "exit"];
    let mods = modules();
    for d in &mods["cli"].1 {
        assert!(
            allowed.contains(&d.as_str()),
            "Architecture invariant: cli imports only {allowed:?}, not {d}"
        );
    }
}

#[test]
fn the_files_of_a_folder_import_each_other_without_a_circle() {
    // lake/: error ← schema ← io ← batch/ledger/teams ← txn, and the same rule in every folder.
    let src = src_dir();
    let folders: BTreeSet<std::path::PathBuf> = rust_files(&src)
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .filter(|d| d != &src)
        .collect();
    assert!(folders.contains(&src.join("lake")));
    for dir in folders {
        let folder = dir
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('/', "::");
        let files: BTreeMap<String, String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .map(|p| {
                let name = p.file_stem().unwrap().to_string_lossy().into_owned();
                (name, code_only(&std::fs::read_to_string(&p).unwrap()))
            })
            .filter(|(n, _)| n != "mod")
            .collect();
        let edges: BTreeMap<&str, Vec<&str>> = files
            .iter()
            .map(|(m, code)| {
                let to = files
                    .keys()
                    .filter(|n| *n != m)
                    .filter(|n| {
                        [format!("super::{n}"), format!("crate::{folder}::{n}")]
                            .iter()
                            .any(|pat| {
                                code.match_indices(pat.as_str()).any(|(i, _)| {
                                    !code[i + pat.len()..]
                                        .starts_with(|c: char| c.is_alphanumeric() || c == '_')
                                })
                            })
                            || code.contains("super::{") && {
                                let i = code.find("super::{").unwrap();
                                let group = &code[i..i + code[i..].find('}').unwrap_or(0)];
                                group
                                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                                    .any(|w| w == n.as_str())
                            }
                    })
                    .map(String::as_str)
                    .collect();
                (m.as_str(), to)
            })
            .collect();
        if let Some(c) = cycle(&edges) {
            panic!("Architecture invariant: no circle between the files of {folder}/: {c:?}");
        }
    }
}

#[test]
fn a_provider_is_a_word_only_at_the_edges() {
    // `vocab::Provider` names providers; the price book and each provider's own source modules
    // may spell them. Anywhere else a provider is the type, so a new one makes the compiler
    // list every place that must decide.
    let src = src_dir();
    let allowed = |rel: &str| {
        rel == "vocab.rs"
            || rel.starts_with("pricing/")
            || rel.starts_with("sources/anthropic")
            || rel.starts_with("sources/openai")
    };
    let mut seen = 0;
    for f in rust_files(&src) {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let text: String = std::fs::read_to_string(&f)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for word in ["\"anthropic\"", "\"openai\""] {
            if text.contains(word) {
                seen += 1;
                assert!(
                    allowed(&rel),
                    "Architecture invariant: the provider {word} is written as text in {rel}; use vocab::Provider"
                );
            }
        }
    }
    assert!(
        seen > 0,
        "the check must see the provider names where they are allowed"
    );
}
