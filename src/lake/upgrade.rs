//! Upgrades: a lake written by an older version gains the columns its tables have grown since,
//! so every file of a table has the table's current schema and every engine (polars, DuckDB,
//! Spark, the Arrow scans) reads all parts alike.
//!
//! Owns: the lake's schema version (the `schema N` line of the marker `_tokenledger/lake`; a
//! lake without one is version 1), and the upgrade: each Parquet file of a table whose schema
//! lacks a column of the table's current schema is rewritten with that column null or zero (values,
//! types and row order unchanged: a `usage_pricing` mirror stays aligned), all files in one
//! transaction, then the marker says the new version.
//! Must not: change or drop a value, or upgrade anything but missing nullable columns and the
//! counts a version did not have, which are zero (a type change needs its own rule here).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, new_null_array};
use arrow::record_batch::RecordBatch;

use super::error::{LakeError, Result, io_err};
use super::{Layout, SCHEMA_VERSION, Table};

/// The marker's text for the current version.
pub fn marker_text() -> String {
    format!("tokenledger lake\nschema {SCHEMA_VERSION}\n")
}

/// The schema version a lake was last written with (1: before the marker said).
pub fn version(layout: &Layout) -> u32 {
    std::fs::read_to_string(layout.marker())
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("schema ")
                    .and_then(|v| v.trim().parse().ok())
            })
        })
        .unwrap_or(1)
}

/// Whether the lake was written with an older schema than this version's.
pub fn needed(layout: &Layout) -> bool {
    version(layout) < current()
}

fn current() -> u32 {
    SCHEMA_VERSION.parse().expect("SCHEMA_VERSION is a number")
}

/// The files whose schema lacks a column of their table's current schema, by table (read from
/// each file's footer only).
pub fn stale_files(layout: &Layout) -> Result<Vec<(Table, PathBuf)>> {
    let mut out = Vec::new();
    for table in Table::ALL {
        let want = super::schema::of(table);
        for file in parquet_files(&layout.table_dir(table))? {
            let have = super::io::file_schema(&file)?;
            if !want
                .fields()
                .iter()
                .all(|f| have.field_with_name(f.name()).is_ok())
            {
                out.push((table, file));
            }
        }
    }
    Ok(out)
}

/// The batches of `file` grown to `table`'s current schema (one file in memory at a time:
/// the caller stages each before reading the next).
pub fn grown(table: Table, file: &Path) -> Result<Vec<RecordBatch>> {
    let want = super::schema::of(table);
    super::io::read_all(file)?
        .iter()
        .map(|b| grow(b, &want, file))
        .collect()
}

/// Records the current version in the marker (after the transaction that grew the files).
pub fn mark(layout: &Layout) -> Result<()> {
    super::io::write_file_atomic(&layout.marker(), marker_text().as_bytes())
        .map_err(io_err(&layout.marker()))
}

/// Count columns added after schema 1 that are not nullable: filled with 0 on upgrade.
const ZERO_FILLED: [&str; 7] = [
    "cache_write_30m_tokens",
    "cache_write_12h_tokens",
    "unit_quantity",
    "input_audio_tokens",
    "output_audio_tokens",
    "input_image_tokens",
    "output_image_tokens",
];

/// `b` with the columns of `want` it lacks, null (a lacking column must be nullable).
fn grow(b: &RecordBatch, want: &arrow::datatypes::SchemaRef, file: &Path) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = want
        .fields()
        .iter()
        .map(|f| match b.column_by_name(f.name()) {
            Some(c) => Ok(c.clone()),
            None if f.is_nullable() => Ok(new_null_array(f.data_type(), b.num_rows())),
            // A count a version did not have (schema 6: OpenAI's cache-write classes, a
            // quantity in another unit) was zero in every row it wrote.
            None if ZERO_FILLED.contains(&f.name().as_str()) => {
                Ok(Arc::new(arrow::array::Int64Array::from(vec![0i64; b.num_rows()])) as ArrayRef)
            }
            None => Err(LakeError::Column {
                path: file.to_path_buf(),
                column: f.name().clone(),
            }),
        })
        .collect::<Result<_>>()?;
    RecordBatch::try_new(Arc::clone(want), columns).map_err(|source| LakeError::Arrow {
        path: file.to_path_buf(),
        source,
    })
}

/// The Parquet files under a table's directory (parts, per-provider and flat files), sorted;
/// in-flight temp files are not parts.
fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(LakeError::Io { path: d, source: e }),
        };
        for e in rd {
            let e = e.map_err(io_err(&d))?;
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                stack.push(p);
            } else if name.starts_with("part-") && name.ends_with(".parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}
