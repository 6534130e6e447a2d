//! ARCHITECTURE.md documents every table and column of the lake, each column in its own
//! table's section (a name mentioned anywhere else does not count).

use tokenledger::lake::{Table, schema};

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
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ARCHITECTURE.md")).unwrap();
    let secs = sections(&doc);
    let section_of = |t: Table| -> &str {
        let tag = format!("`{}`", t.dir_name());
        &secs
            .iter()
            .find(|(h, _)| h.contains(&tag))
            .unwrap_or_else(|| panic!("no '### {tag}' section in ARCHITECTURE.md"))
            .1
    };
    let usage = section_of(Table::Usage);
    for t in tokenledger::query::TABLES {
        assert!(
            doc.contains(&format!("{}/", t.dir_name())),
            "table {} missing from the layout",
            t.dir_name()
        );
        let body = section_of(t);
        for f in schema::of(t).fields() {
            let name = f.name().as_str();
            // rated_usage carries usage's columns unchanged and says so; they are documented
            // in usage's section.
            let carried = t == Table::RatedUsage
                && schema::of(Table::Usage).field_with_name(name).is_ok()
                && mentions(usage, name);
            assert!(
                mentions(body, name) || carried,
                "column {}.{name} is not documented in its section of ARCHITECTURE.md",
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
