//! The lake's readers: pairing a pricing part with its usage part row by row.

use arrow::record_batch::RecordBatch;
use std::path::Path;
use tokenledger::lake::io::{LakeError, zip_rows};
type Result<T> = std::result::Result<T, LakeError>;
use arrow::array::{Array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema};
use std::sync::Arc;

fn batches(sizes: &[i64]) -> Box<dyn Iterator<Item = Result<RecordBatch>> + Send> {
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
    let mut next = 0i64;
    let out: Vec<Result<RecordBatch>> = sizes
        .iter()
        .map(|&n| {
            let a = Int64Array::from_iter_values(next..next + n);
            next += n;
            Ok(RecordBatch::try_new(schema.clone(), vec![Arc::new(a)]).unwrap())
        })
        .collect();
    Box::new(out.into_iter())
}

fn values(b: &RecordBatch) -> Vec<i64> {
    let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    (0..a.len()).map(|i| a.value(i)).collect()
}

#[test]
fn zip_rows_pairs_row_i_with_row_i_across_different_batch_boundaries() {
    let p = Path::new("x");
    let pairs: Vec<(RecordBatch, RecordBatch)> =
        zip_rows(batches(&[3, 0, 2, 4]), batches(&[1, 5, 3]), (p, p))
            .collect::<Result<_>>()
            .unwrap();
    let lens: Vec<usize> = pairs.iter().map(|(a, _)| a.num_rows()).collect();
    assert_eq!(lens, [1, 2, 2, 1, 3]);
    let (mut left, mut right) = (Vec::new(), Vec::new());
    for (a, b) in &pairs {
        assert_eq!(a.num_rows(), b.num_rows());
        left.extend(values(a));
        right.extend(values(b));
    }
    assert_eq!(left, (0..9).collect::<Vec<_>>());
    assert_eq!(left, right);
}

#[test]
fn zip_rows_refuses_streams_of_different_lengths() {
    let (u, p) = (
        Path::new("usage/part-1.parquet"),
        Path::new("pricing/part-1.parquet"),
    );
    let out: Vec<Result<(RecordBatch, RecordBatch)>> =
        zip_rows(batches(&[3, 2]), batches(&[4]), (u, p)).collect();
    assert_eq!(
        out.len(),
        3,
        "the four common rows, then one error, then nothing"
    );
    assert!(out[..2].iter().all(|r| r.is_ok()));
    let err = out[2].as_ref().unwrap_err().to_string();
    assert!(
        err.contains("usage/part-1.parquet") && err.contains("tokenledger rate"),
        "{err}"
    );
}

/// The Parquet parts under `dir`, recursively.
fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
    out
}

/// Rewrites `file` without `column`, as a version before the column existed wrote it.
fn drop_column(file: &Path, column: &str) {
    use parquet::arrow::ArrowWriter;
    let batches = tokenledger::lake::io::read_all(file).unwrap();
    let schema = batches[0].schema();
    let keep: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| schema.field(i).name() != column)
        .collect();
    let old: Vec<RecordBatch> = batches.iter().map(|b| b.project(&keep).unwrap()).collect();
    let out = std::fs::File::create(file).unwrap();
    let mut w = ArrowWriter::try_new(out, old[0].schema(), None).unwrap();
    for b in &old {
        w.write(b).unwrap();
    }
    w.close().unwrap();
}

/// A lake written before `workspaces.tags` and `api_keys.expires_at` existed (its files lack
/// the columns, its marker no schema line) is upgraded by the first command that opens it: the
/// files gain the columns (null), the marker says the version, and no figure changes.
#[test]
fn a_lake_from_an_older_version_gains_the_new_columns_once() {
    use crate::common::*;
    use tokenledger::lake::{Layout, Table};
    use tokenledger::vocab::Provider;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&data, &[&fixtures().join("sample")]);
    let before =
        String::from_utf8(tl(&data, &["report", "--month", "2026-10", "--format", "csv"]).stdout)
            .unwrap();
    let layout = Layout::new(&data);
    let ws = layout.provider_file(Table::Workspaces, Provider::Anthropic);
    let keys = layout.provider_file(Table::ApiKeys, Provider::Anthropic);
    drop_column(&ws, "tags");
    drop_column(&keys, "expires_at");
    // Usage parts of schema 5 had neither OpenAI's cache-write classes nor another unit.
    let usage_parts: Vec<std::path::PathBuf> = walkdir(&data.join("usage"));
    assert!(!usage_parts.is_empty());
    for p in &usage_parts {
        for c in [
            "cache_write_30m_tokens",
            "cache_write_12h_tokens",
            "unit",
            "unit_quantity",
            "input_audio_tokens",
            "output_audio_tokens",
            "input_image_tokens",
            "output_image_tokens",
        ] {
            drop_column(p, c);
        }
    }
    std::fs::write(layout.marker(), "tokenledger lake\n").unwrap();
    assert!(tokenledger::lake::upgrade::needed(&layout));
    // A read command upgrades it and reads the new columns as null.
    let rows = sql(
        &data,
        "SELECT workspace_name, tags FROM workspaces ORDER BY 1",
    );
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["tags"].is_null()), "{rows:?}");
    let has = |f: &Path, c: &str| {
        tokenledger::lake::io::file_schema(f)
            .unwrap()
            .field_with_name(c)
            .is_ok()
    };
    // The files in place now (in the Delta mode an upgraded file has a new name: a data file
    // is never overwritten there).
    let ws = layout.provider_file(Table::Workspaces, Provider::Anthropic);
    let keys = layout.provider_file(Table::ApiKeys, Provider::Anthropic);
    let usage_parts: Vec<std::path::PathBuf> = walkdir(&data.join("usage"));
    assert!(has(&ws, "tags") && has(&keys, "expires_at"));
    assert!(usage_parts.iter().all(|p| has(p, "unit_quantity")));
    // Counts a version did not have were zero, and read so (not null).
    let rows = sql(
        &data,
        "SELECT SUM(cache_write_30m_tokens) AS w30, SUM(cache_write_12h_tokens) AS w12, \
         SUM(unit_quantity + input_audio_tokens + output_image_tokens) AS q, COUNT(unit) AS units \
         FROM usage",
    );
    assert_eq!(
        (
            &rows[0]["w30"],
            &rows[0]["w12"],
            &rows[0]["q"],
            &rows[0]["units"]
        ),
        (
            &serde_json::json!(0),
            &serde_json::json!(0),
            &serde_json::json!(0),
            &serde_json::json!(0)
        ),
        "{rows:?}"
    );
    assert!(
        std::fs::read_to_string(layout.marker())
            .unwrap()
            .contains(&format!("schema {}", tokenledger::lake::SCHEMA_VERSION))
    );
    assert!(!tokenledger::lake::upgrade::needed(&layout));
    let after =
        String::from_utf8(tl(&data, &["report", "--month", "2026-10", "--format", "csv"]).stdout)
            .unwrap();
    assert_eq!(before, after, "no figure changes");
    // The next list ingest writes on top of the upgraded files.
    ingest_ok(
        &data,
        &[&fixtures().join("formats").join("workspaces-tagged.json")],
    );
    let rows = sql(
        &data,
        "SELECT tags FROM workspaces WHERE workspace_name = 'Search'",
    );
    assert_eq!(rows[0]["tags"], r#"{"env":"prod","team":"search"}"#);
}
