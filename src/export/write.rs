//! Writing a dataset as Parquet (arrow-rs: `DECIMAL(38,12)`, `TIMESTAMP(μs, UTC)`, UTF-8 text
//! and JSON text, ZSTD) or CSV (plain digits, ISO 8601 `…Z` times, empty for null), each file
//! through a temporary file and one rename, with nothing in it that changes between runs (no
//! time, no host), so the same lake exports the same bytes.
//!
//! Must not: decide a value (the rows come from `focus.rs`), or write into the lake.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Decimal128Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::ExportError;
use super::focus::{DECIMAL_PRECISION, DECIMAL_SCALE, Dataset, Kind, Value, trimmed};

/// The file formats of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Parquet,
    Csv,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
        }
    }
}

/// Rows per record batch written.
const BATCH_ROWS: usize = 65_536;

fn schema(d: &Dataset) -> Arc<Schema> {
    let fields: Vec<Field> = d
        .columns
        .iter()
        .map(|(name, kind)| {
            let t = match kind {
                Kind::Text | Kind::Json => DataType::Utf8,
                Kind::Decimal => DataType::Decimal128(DECIMAL_PRECISION, DECIMAL_SCALE),
                Kind::Time => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            };
            Field::new(*name, t, true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn column(rows: &[Vec<Value>], i: usize, kind: Kind) -> ArrayRef {
    match kind {
        Kind::Text | Kind::Json => {
            let mut b = StringBuilder::new();
            for r in rows {
                match &r[i] {
                    Value::Text(s) => b.append_value(s),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Kind::Decimal => {
            let mut b = Decimal128Builder::new();
            for r in rows {
                match r[i] {
                    Value::Dec(v) => b.append_value(v),
                    _ => b.append_null(),
                }
            }
            Arc::new(
                b.finish()
                    .with_precision_and_scale(DECIMAL_PRECISION, DECIMAL_SCALE)
                    .expect("precision 38, scale 12 is valid"),
            )
        }
        Kind::Time => {
            let mut b = TimestampMicrosecondBuilder::new();
            for r in rows {
                match r[i] {
                    Value::Time(t) => b.append_value(t),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish().with_timezone("UTC"))
        }
    }
}

fn parquet_bytes(
    d: &Dataset,
    out: &mut std::fs::File,
) -> Result<(), parquet::errors::ParquetError> {
    let schema = schema(d);
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_key_value_metadata(Some(vec![
            KeyValue::new("focus.version".into(), "1.4".to_string()),
            KeyValue::new("focus.dataset".into(), d.name.to_string()),
            KeyValue::new(
                "tokenledger.version".into(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
        ]))
        .build();
    let mut w = ArrowWriter::try_new(out, schema.clone(), Some(props))?;
    for chunk in d.rows.chunks(BATCH_ROWS) {
        let cols: Vec<ArrayRef> = d
            .columns
            .iter()
            .enumerate()
            .map(|(i, (_, k))| column(chunk, i, *k))
            .collect();
        w.write(&RecordBatch::try_new(schema.clone(), cols)?)?;
    }
    w.close()?;
    Ok(())
}

/// A cell as CSV text: decimals as plain digits (no exponent, no trailing zeros), times as
/// `2026-10-01T00:00:00Z`, null as empty.
pub fn csv_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Text(s) => s.clone(),
        Value::Dec(d) => trimmed(*d),
        Value::Time(t) => chrono::DateTime::from_timestamp_micros(*t)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default(),
    }
}

fn csv_bytes(d: &Dataset, out: &mut std::fs::File) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(out));
    w.write_record(d.columns.iter().map(|c| c.0))?;
    for r in &d.rows {
        w.write_record(r.iter().map(csv_text))?;
    }
    w.flush()
}

/// Writes `d` as `<dir>/<name>.<ext>` through a temporary file in `dir` and one rename.
pub fn write(d: &Dataset, dir: &Path, format: Format) -> Result<PathBuf, ExportError> {
    let path = dir.join(format!("{}.{}", d.name, format.extension()));
    let io = |source| ExportError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    let mut f = tmp.as_file().try_clone().map_err(io)?;
    match format {
        Format::Parquet => parquet_bytes(d, &mut f).map_err(|source| ExportError::Parquet {
            path: path.clone(),
            source,
        })?,
        Format::Csv => csv_bytes(d, &mut f).map_err(io)?,
    }
    tmp.as_file().sync_all().map_err(io)?;
    // A temporary file is private (0600); an export is for other tools and people to read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::Permissions::from_mode(0o644);
        std::fs::set_permissions(tmp.path(), mode).map_err(io)?;
    }
    tmp.persist(&path).map_err(|e| io(e.error))?;
    Ok(path)
}
