//! ARCHITECTURE.md documents every table and column of the lake.

use tokenledger::lake::{Table, schema};

#[test]
fn every_lake_column_is_documented() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ARCHITECTURE.md")).unwrap();
    for t in tokenledger::query::TABLES {
        assert!(
            doc.contains(&format!("{}/", t.dir_name())),
            "table {} missing from the layout",
            t.dir_name()
        );
        for f in schema::of(t).fields() {
            assert!(
                doc.contains(f.name().as_str()),
                "column {}.{} is not documented in ARCHITECTURE.md",
                t.dir_name(),
                f.name()
            );
        }
    }
    for f in tokenledger::rating::schema().fields() {
        let name = f.name().as_str();
        let carried = schema::of(Table::Usage).field_with_name(name).is_ok();
        assert!(
            carried || doc.contains(name),
            "column rated_usage.{name} is not documented in ARCHITECTURE.md"
        );
    }
}
