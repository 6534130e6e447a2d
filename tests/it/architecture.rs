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
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name != top && !name.is_empty() {
                entry.1.insert(name);
            }
        }
        entry.0.push_str(&code);
    }
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
    // Depth-first search; a grey node reached again is a cycle.
    fn visit<'a>(
        n: &'a str,
        deps: &BTreeMap<&'a str, Vec<&'a str>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) {
        match state.get(n) {
            Some(2) => return,
            Some(1) => panic!("Architecture invariant: no import cycles; found {path:?} → {n}"),
            _ => {}
        }
        state.insert(n, 1);
        path.push(n);
        for d in &deps[n] {
            visit(d, deps, state, path);
        }
        path.pop();
        state.insert(n, 2);
    }
    let mut state = BTreeMap::new();
    for m in deps.keys() {
        visit(m, &deps, &mut state, &mut Vec::new());
    }
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
