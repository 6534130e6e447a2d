//! Parquet files in and out (arrow-rs), with fsync discipline.
//!
//! Owns: staged and atomically replaced Parquet files, the decimal-precision check of every
//! batch written, streaming reads (projected, dictionary-aware, two mirrored streams side by
//! side) and footer statistics. Must not: choose a table's schema or writer settings (that is
//! [`super::schema`]) or decide what a commit contains (that is [`super::txn`]).

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;

use super::Table;
pub use super::error::{LakeError, Result, arrow_err, io_err, pq_err};
use super::schema::writer_props;

/// fsync a directory so a rename or create inside it is durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

pub fn create_dir_all(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))
}

/// Every decimal value must fit its column's declared precision: Parquet stores a
/// `DECIMAL(28,12)` in 12 bytes and a reader trusts the declared type, so a value beyond it would
/// be read back as a different number. Writers bound their values before this (ingest refuses
/// amounts of $10¹⁵ or more, rating marks a row whose cost would not fit); this is the last line.
fn check_decimals(batch: &RecordBatch, path: &Path) -> Result<()> {
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if let arrow::datatypes::DataType::Decimal128(p, _) = f.data_type()
            && let Some(a) = c.as_any().downcast_ref::<arrow::array::Decimal128Array>()
        {
            a.validate_decimal_precision(*p)
                .map_err(|source| LakeError::DecimalOverflow {
                    path: path.to_path_buf(),
                    column: f.name().clone(),
                    precision: *p,
                    source,
                })?;
        }
    }
    Ok(())
}

/// A Parquet file being written incrementally (staging). Nothing is visible to readers of the
/// lake until the journal moves it into place.
pub struct StagedFile {
    path: PathBuf,
    writer: ArrowWriter<File>,
    rows: u64,
}

impl StagedFile {
    pub fn create(path: PathBuf, schema: SchemaRef, table: Table, ingest_id: &str) -> Result<Self> {
        Self::create_with(path, schema, writer_props(table, ingest_id))
    }
    pub fn create_with(path: PathBuf, schema: SchemaRef, props: WriterProperties) -> Result<Self> {
        if let Some(dir) = path.parent() {
            create_dir_all(dir)?;
        }
        let file = File::create(&path).map_err(io_err(&path))?;
        let writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(pq_err(&path))?;
        Ok(Self {
            path,
            writer,
            rows: 0,
        })
    }
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        check_decimals(batch, &self.path)?;
        self.rows += batch.num_rows() as u64;
        self.writer.write(batch).map_err(pq_err(&self.path))
    }
    pub fn rows(&self) -> u64 {
        self.rows
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Writes the footer and fsyncs the file. Returns its path.
    pub fn finish(self) -> Result<PathBuf> {
        let path = self.path;
        let file = self.writer.into_inner().map_err(pq_err(&path))?;
        file.sync_all().map_err(io_err(&path))?;
        Ok(path)
    }
}

/// The Arrow schema of a Parquet file, from its footer.
pub fn file_schema(path: &Path) -> Result<arrow::datatypes::SchemaRef> {
    let file = File::open(path).map_err(|e| LakeError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq_err(path))?;
    Ok(builder.schema().clone())
}

/// Streams a Parquet file's record batches; a missing file yields nothing.
pub fn read_batches(path: &Path) -> Result<Box<dyn Iterator<Item = Result<RecordBatch>> + Send>> {
    read_batches_projected(path, None)
}

/// Streams a Parquet file's record batches, only the named columns when given (batch
/// boundaries do not depend on the projection); a missing file yields nothing.
pub fn read_batches_projected(
    path: &Path,
    columns: Option<&[&str]>,
) -> Result<Box<dyn Iterator<Item = Result<RecordBatch>> + Send>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Box::new(std::iter::empty()));
        }
        Err(e) => {
            return Err(LakeError::Io {
                path: path.to_path_buf(),
                source: e,
            });
        }
    };
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq_err(path))?;
    if let Some(cols) = columns {
        let mask =
            parquet::arrow::ProjectionMask::columns(builder.parquet_schema(), cols.iter().copied());
        builder = builder.with_projection(mask);
    }
    stream(builder, path)
}

/// The batches of a configured reader, errors naming the file.
fn stream(
    builder: ParquetRecordBatchReaderBuilder<File>,
    path: &Path,
) -> Result<Box<dyn Iterator<Item = Result<RecordBatch>> + Send>> {
    let reader = builder
        .with_batch_size(64 * 1024)
        .build()
        .map_err(pq_err(path))?;
    let p = path.to_path_buf();
    Ok(Box::new(reader.map(move |r| {
        r.map_err(|source| LakeError::Arrow {
            path: p.clone(),
            source,
        })
    })))
}

/// Two streams of the same rows (a usage part and its pricing mirror) as pairs of batches of
/// equal length, row `i` of one beside row `i` of the other: batches are sliced where the two
/// files' batch boundaries differ. A stream that ends before the other is an error naming both.
pub fn zip_rows(
    left: Box<dyn Iterator<Item = Result<RecordBatch>> + Send>,
    right: Box<dyn Iterator<Item = Result<RecordBatch>> + Send>,
    paths: (&Path, &Path),
) -> impl Iterator<Item = Result<(RecordBatch, RecordBatch)>> {
    let mismatch = (paths.0.to_path_buf(), paths.1.to_path_buf());
    let mut streams = [left, right];
    let mut pending: [Option<RecordBatch>; 2] = [None, None];
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        for k in 0..2 {
            while pending[k].as_ref().is_none_or(|b| b.num_rows() == 0) {
                match streams[k].next() {
                    Some(Ok(b)) => pending[k] = Some(b),
                    Some(Err(e)) => {
                        failed = true;
                        return Some(Err(e));
                    }
                    None => {
                        pending[k] = None;
                        break;
                    }
                }
            }
        }
        match (&pending[0], &pending[1]) {
            (None, None) => None,
            (Some(a), Some(b)) => {
                let n = a.num_rows().min(b.num_rows());
                let out = (a.slice(0, n), b.slice(0, n));
                for p in pending.iter_mut() {
                    let b = p.take().expect("both pending");
                    *p = Some(b.slice(n, b.num_rows() - n));
                }
                Some(Ok(out))
            }
            _ => {
                failed = true;
                Some(Err(LakeError::RowsDiffer {
                    usage: mismatch.0.clone(),
                    pricing: mismatch.1.clone(),
                }))
            }
        }
    })
}

/// Like [`read_batches_projected`], with the text columns in `dict` read as dictionary arrays
/// (`Dictionary(Int32, Utf8)`): the file's dictionary pages are kept as they are, so a reader
/// interns a few hundred distinct values per batch instead of one string per row.
///
/// Read one row group at a time: a batch that spans two row groups spans two dictionaries, and
/// the reader then re-interns every value of it. A text column that is NULL in a whole row
/// group (its dictionary page is empty: e.g. `workspace_name` before any workspace list was
/// ingested) is not read at all but given as an all-NULL dictionary array: arrow-rs cannot keep
/// an empty dictionary and would hash every NULL slot of it into a new one (measured: 38% of a
/// chargeback's CPU).
pub fn read_batches_dictionary(
    path: &Path,
    columns: &[&str],
    dict: &[&str],
) -> Result<Box<dyn Iterator<Item = Result<RecordBatch>> + Send>> {
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::arrow_reader::ArrowReaderOptions;
    let open = || File::open(path).map_err(io_err(path));
    let plain = ParquetRecordBatchReaderBuilder::try_new(open()?).map_err(pq_err(path))?;
    let dict_type = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let fields: Vec<Field> = plain
        .schema()
        .fields()
        .iter()
        .map(|f| {
            if dict.contains(&f.name().as_str()) && f.data_type() == &DataType::Utf8 {
                Field::new(f.name(), dict_type.clone(), f.is_nullable())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let metadata = plain.metadata().clone();
    drop(plain);
    let schema = std::sync::Arc::new(Schema::new(fields));
    let file = std::sync::Arc::new(open()?);
    let mut readers = Vec::with_capacity(metadata.num_row_groups());
    for g in 0..metadata.num_row_groups() {
        let nulls =
            null_dictionary_columns(&file, &metadata, g, columns, dict).map_err(pq_err(path))?;
        let options = ArrowReaderOptions::new().with_schema(schema.clone());
        let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(open()?, options)
            .map_err(pq_err(path))?;
        let read: Vec<&str> = columns
            .iter()
            .copied()
            .filter(|c| !nulls.iter().any(|n| n == c))
            .collect();
        let mask = parquet::arrow::ProjectionMask::columns(builder.parquet_schema(), read);
        let batches = stream(builder.with_projection(mask).with_row_groups(vec![g]), path)?;
        if nulls.is_empty() {
            readers.push(batches);
            continue;
        }
        let dict_type = dict_type.clone();
        let owned = path.to_path_buf();
        readers.push(Box::new(batches.map(move |b| {
            let b = b?;
            let mut fields: Vec<Field> = b
                .schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            let mut cols = b.columns().to_vec();
            for n in &nulls {
                fields.push(Field::new(n.as_str(), dict_type.clone(), true));
                cols.push(arrow::array::new_null_array(&dict_type, b.num_rows()));
            }
            RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), cols)
                .map_err(arrow_err(&owned))
        })));
    }
    Ok(Box::new(readers.into_iter().flatten()))
}

/// The text columns of `dict` (and `columns`) whose chunk in row group `g` has an empty
/// dictionary page, i.e. holds only NULLs. (A writer falls back from dictionary encoding only
/// when the dictionary grows too large, so an empty dictionary page means no value at all.)
fn null_dictionary_columns(
    file: &std::sync::Arc<File>,
    metadata: &parquet::file::metadata::ParquetMetaData,
    g: usize,
    columns: &[&str],
    dict: &[&str],
) -> parquet::errors::Result<Vec<String>> {
    use parquet::column::page::{Page, PageReader};
    use parquet::file::serialized_reader::SerializedPageReader;
    let rg = metadata.row_group(g);
    let mut out = Vec::new();
    for (i, c) in rg.columns().iter().enumerate() {
        let name = rg.schema_descr().column(i).name().to_string();
        let Some(wanted) = columns.iter().find(|w| **w == name && dict.contains(w)) else {
            continue;
        };
        // An all-NULL chunk is a few bytes of levels per page: only a small chunk is opened
        // (a page reader costs a codec) to look at its dictionary page.
        if c.dictionary_page_offset().is_none() || c.compressed_size() > 64 * 1024 {
            continue;
        }
        let mut pages = SerializedPageReader::new(file.clone(), c, rg.num_rows() as usize, None)?;
        if let Some(Page::DictionaryPage { num_values: 0, .. }) = pages.get_next_page()? {
            out.push(wanted.to_string());
        }
    }
    Ok(out)
}

/// The span `[min bucket_start, max bucket_end)` of a part's rows in µs, from the footer's
/// statistics (no row is read); `None` when a row group has no statistics for them.
pub fn time_span(path: &Path) -> Result<Option<(i64, i64)>> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::statistics::Statistics;
    let file = File::open(path).map_err(io_err(path))?;
    let reader = SerializedFileReader::new(file).map_err(pq_err(path))?;
    let meta = reader.metadata();
    let schema = meta.file_metadata().schema_descr();
    let index = |name: &str| (0..schema.num_columns()).find(|&i| schema.column(i).name() == name);
    let (Some(s), Some(e)) = (index("bucket_start"), index("bucket_end")) else {
        return Ok(None);
    };
    let mut span: Option<(i64, i64)> = None;
    for rg in meta.row_groups() {
        let lo = match rg.column(s).statistics() {
            Some(Statistics::Int64(v)) => v.min_opt().copied(),
            _ => None,
        };
        let hi = match rg.column(e).statistics() {
            Some(Statistics::Int64(v)) => v.max_opt().copied(),
            _ => None,
        };
        let (Some(lo), Some(hi)) = (lo, hi) else {
            return Ok(None);
        };
        span = Some(span.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
    }
    Ok(span)
}

/// Test hook: `TOKENLEDGER_CRASH_AT=<point>` aborts the process at that point, the same as a
/// `kill -9` there. Points: `staged`, `mid-stage`, `committed`, `mid-apply` (any commit), `delta-committed` (after a
/// table's Delta commit, before the next table's),
/// `rate-staged` (rating), `mail-delivered` (a message accepted, not yet in the sent-ledger),
/// `mail-recorded` (after its ledger row), `alert-delivered` (a digest accepted, not recorded).
pub fn crash_point(point: &str) {
    if std::env::var("TOKENLEDGER_CRASH_AT").is_ok_and(|v| v == point) {
        eprintln!("tokenledger: simulated crash at {point}");
        std::process::abort();
    }
}

/// The number of rows of a Parquet file, from its footer.
pub fn row_count(path: &Path) -> Result<i64> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = File::open(path).map_err(io_err(path))?;
    let reader = SerializedFileReader::new(file).map_err(pq_err(path))?;
    Ok(reader.metadata().file_metadata().num_rows())
}

/// Reads a whole (small) Parquet file.
pub fn read_all(path: &Path) -> Result<Vec<RecordBatch>> {
    read_batches(path)?.collect()
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory, synced, renamed
/// over `path` (a killed write leaves the old file or the new one, never half of one).
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
