//! docs/lake.md documents every table and column of the lake, each column in its own
//! table's section (a name mentioned anywhere else does not count); the README starts with
//! the two commands CI runs; every command's help has examples.

use std::path::Path;

use tokenledger::lake::{Table, schema};

use crate::common::*;

/// The `### `…`` sections under "## The lake": heading → text up to the next heading.
fn sections(doc: &str) -> Vec<(String, String)> {
    let lake = doc
        .split("\n## ")
        .find(|s| s.starts_with("The lake"))
        .expect("a '## The lake' section");
    lake.split("\n### ")
        .skip(1)
        .map(|s| {
            let (head, body) = s.split_once('\n').unwrap_or((s, ""));
            (head.to_string(), body.to_string())
        })
        .collect()
}

/// `name` as a whole word of `text` (not as part of a longer column name).
fn mentions(text: &str, name: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

#[test]
fn every_lake_column_is_documented_in_its_tables_section() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/lake.md")).unwrap();
    let secs = sections(&doc);
    let section_of = |t: Table| -> &str {
        let tag = format!("`{}`", t.dir_name());
        &secs
            .iter()
            .find(|(h, _)| h.contains(&tag))
            .unwrap_or_else(|| panic!("no '### {tag}' section in docs/lake.md"))
            .1
    };
    let usage = section_of(Table::Usage);
    for t in tokenledger::lake::Table::ALL {
        assert!(
            doc.contains(&format!("{}/", t.dir_name())),
            "table {} missing from the layout",
            t.dir_name()
        );
        let body = section_of(t);
        for f in schema::of(t).fields() {
            let name = f.name().as_str();
            // usage_pricing repeats the usage row's key (and provider); they are documented
            // in usage's section.
            let carried = t == Table::UsagePricing
                && schema::of(Table::Usage).field_with_name(name).is_ok()
                && mentions(usage, name);
            assert!(
                mentions(body, name) || carried,
                "column {}.{name} is not documented in its section of docs/lake.md",
                t.dir_name()
            );
        }
    }
}

#[test]
fn the_docs_check_itself_tells_sections_apart() {
    let doc = "# Doc\n## The lake\n### `a`\n| x_tokens | |\n### `b`\nx\n## Next\n";
    let s = sections(doc);
    assert_eq!(s.len(), 2);
    assert!(mentions(&s[0].1, "x_tokens") && !mentions(&s[0].1, "x"));
    assert!(mentions(&s[1].1, "x") && !mentions(&s[1].1, "x_tokens"));
}

#[test]
fn the_readme_starts_with_the_two_commands_and_ci_runs_the_second_literally() {
    let [demo, tests] = readme_commands();
    assert_eq!(demo, "cargo run --release -- demo");
    let (install, test) = tests
        .split_once(" && cargo test")
        .expect("install && cargo test");
    let test = format!("cargo test{test}");
    // Every test, then every test again with the lake kept as Delta tables, then with the
    // lake in an S3 bucket on loopback.
    assert_eq!(
        test,
        "cargo test --locked && TOKENLEDGER_LAKE_DELTA=1 cargo test --locked \
         && TOKENLEDGER_TEST_S3=1 cargo test --locked"
    );
    let ci =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/run")).unwrap();
    let ci_lines: Vec<&str> = ci
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    // Each install command of the README (pip's packages, npm's Azurite) is one of .ci/run's.
    for step in install.split(" && ") {
        let (tool, what) = step.split_once(" install ").expect("<tool> install …");
        assert!(
            ci_lines
                .iter()
                .any(|l| l.contains(&format!("{tool} install")) && l.ends_with(what)),
            ".ci/run installs exactly {what:?} with {tool}:\n{ci}"
        );
    }
    assert_eq!(
        ci_lines.last().map(|l| l.trim()),
        Some(test.as_str()),
        "{ci}"
    );
    // (The first command runs, literally, in mail::the_demo_runs_the_whole_job_….)
}

#[test]
fn every_command_has_help_with_examples_and_completions_and_man_pages_come_from_clap() {
    let o = binary().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout).into_owned();
    let commands: Vec<String> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        // A command's line is indented two spaces; its wrapped description, more.
        .filter(|l| l.starts_with("  ") && !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 16, "{commands:?}");
    for c in &commands {
        let o = binary().args([c.as_str(), "--help"]).output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains("Examples:\n  tokenledger "),
            "{c} --help has no examples:\n{text}"
        );
    }
    let o = binary().args(["completions", "bash"]).output().unwrap();
    let script = String::from_utf8_lossy(&o.stdout);
    assert!(script.contains("complete -F _tokenledger"), "{script}");
    for c in &commands {
        assert!(script.contains(c.as_str()), "completion knows {c}");
    }
    let dir = tempfile::tempdir().unwrap();
    let o = binary()
        .args(["man", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let page = std::fs::read_to_string(dir.path().join("tokenledger-report.1")).unwrap();
    assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
    assert!(
        page.contains("business timezone"),
        "the page is the help text"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        commands.len() + 1
    );
}

#[test]
fn the_example_config_loads_and_names_every_setting() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("examples/tokenledger.toml")).unwrap();
    // Every field of the config structs is shown (the team list is `[[team]]`).
    let src = std::fs::read_to_string(root.join("src/config.rs")).unwrap();
    let fields: Vec<&str> = src
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| l.split_once(':').map(|(n, _)| n))
        .filter(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect();
    assert!(fields.len() > 40, "{fields:?}");
    for f in fields {
        let name = if f == "teams" { "team" } else { f };
        let shown = example.lines().any(|l| {
            let l = l.trim_start_matches(['#', ' ']);
            l.starts_with(&format!("{name} ="))
                || l.starts_with(&format!("[{name}"))
                || l.starts_with(&format!("[[{name}"))
                || l.contains(&format!(".{name}]"))
        });
        assert!(shown, "examples/tokenledger.toml does not show `{name}`");
    }
    // And it is valid: the overrides it sets are in force.
    let dir = tempfile::tempdir().unwrap();
    let o = binary()
        .arg("--config")
        .arg(root.join("examples/tokenledger.toml"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["prices", "--as-of", "2026-11-15", "--format", "csv"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let book = String::from_utf8_lossy(&o.stdout);
    assert!(book.contains("claude-sonnet-4-5,standard,2.70"), "{book}");
}
