//! Canonical rows ⇄ Arrow record batches.
//!
//! Owns: the usage and cost builders (names resolved by the caller), coverage, the lists, the
//! manifest and quarantine rows, and typed column access with errors naming the column.
//! Must not: choose a schema (that is `schema`), write files (that is `io` and `txn`), or decide
//! which rows win (that is `ingest`).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Decimal128Builder, Int64Array, Int64Builder,
    StringArray, StringBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};

use super::error::{LakeError, Result};
use super::{MONEY_PRECISION, MONEY_SCALE, schema};
use crate::model::{ApiKey, CostRow, SourceFamily, UsageRow, Workspace};
use crate::vocab::Provider;

fn ts_builder() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

fn ts_builder_with(rows: usize) -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC")
}

pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).expect("lake timestamps are in range")
}

/// The workspace and API key of a usage row, as stored (IDs and names).
#[derive(Debug, Clone, Copy, Default)]
pub struct Names<'a> {
    pub workspace_id: Option<&'a str>,
    pub workspace_name: Option<&'a str>,
    pub api_key_id: Option<&'a str>,
    pub api_key_name: Option<&'a str>,
}

impl<'a> Names<'a> {
    /// The names the row itself carries.
    pub fn of(r: &'a UsageRow<'_>) -> Self {
        Self {
            workspace_id: r.workspace_id.as_deref(),
            workspace_name: r.workspace_name.as_deref(),
            api_key_id: r.api_key_id.as_deref(),
            api_key_name: r.api_key_name.as_deref(),
        }
    }
}

/// Accumulates usage rows into a record batch.
pub struct UsageBuilder {
    bucket_start: TimestampMicrosecondBuilder,
    bucket_end: TimestampMicrosecondBuilder,
    bucket_width: StringBuilder,
    provider: StringBuilder,
    dims: [StringBuilder; 16],
    tokens: [Int64Builder; crate::vocab::N_COUNTS],
    assumed: BooleanBuilder,
    unit: StringBuilder,
    unit_quantity: Int64Builder,
    modality: [Int64Builder; 4],
    requests: Int64Builder,
    source_format: StringBuilder,
    source_file: StringBuilder,
    source_row: Int64Builder,
    ingest_id: StringBuilder,
    len: usize,
}

impl Default for UsageBuilder {
    fn default() -> Self {
        Self::with_capacity(1024, 64)
    }
}

impl UsageBuilder {
    /// A builder for `rows` rows: its buffers do not grow (and copy) until then.
    /// Room for `rows` rows whose `source_file` is `source_file_len` bytes long (the text
    /// columns' sizes are typical lengths), so a batch of that many rows is never copied
    /// into larger buffers as it grows.
    pub fn with_capacity(rows: usize, source_file_len: usize) -> Self {
        let text = |bytes: usize| StringBuilder::with_capacity(rows, rows * bytes);
        Self {
            bucket_start: ts_builder_with(rows),
            bucket_end: ts_builder_with(rows),
            bucket_width: text(2),
            provider: text(9),
            dims: std::array::from_fn(|_| text(24)),
            tokens: std::array::from_fn(|_| Int64Builder::with_capacity(rows)),
            assumed: BooleanBuilder::with_capacity(rows),
            unit: StringBuilder::new(),
            unit_quantity: Int64Builder::with_capacity(rows),
            modality: std::array::from_fn(|_| Int64Builder::with_capacity(rows)),
            requests: Int64Builder::with_capacity(rows),
            source_format: text(19),
            source_file: text(source_file_len),
            source_row: Int64Builder::with_capacity(rows),
            ingest_id: text(32),
            len: 0,
        }
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn push(&mut self, r: &UsageRow<'_>, source_file: &str, ingest_id: &str) {
        self.push_named(r, Names::of(r), source_file, ingest_id)
    }
    /// Pushes a row with its workspace and key named by the caller (borrowed, not copied into
    /// the row first).
    pub fn push_named(
        &mut self,
        r: &UsageRow<'_>,
        n: Names<'_>,
        source_file: &str,
        ingest_id: &str,
    ) {
        let (start, end) = r.bucket_micros();
        self.bucket_start.append_value(start);
        self.bucket_end.append_value(end);
        self.bucket_width.append_value(r.bucket_width.as_str());
        self.provider.append_value(r.provider.as_str());
        // The row's dimensions, with the names (and ids) resolved from the lists.
        let mut dims = r.dimensions();
        dims[..4].copy_from_slice(&[
            n.workspace_id,
            n.workspace_name,
            n.api_key_id,
            n.api_key_name,
        ]);
        for (b, v) in self.dims.iter_mut().zip(dims) {
            b.append_option(v);
        }
        let t = &r.tokens;
        for (b, v) in self.tokens.iter_mut().zip(t.counts()) {
            // Sources reject counts above i64::MAX.
            b.append_value(v as i64);
        }
        self.assumed.append_value(r.cache_write_assumed_5m);
        self.unit.append_option(t.unit);
        self.unit_quantity.append_value(t.unit_quantity as i64);
        for (b, v) in self.modality.iter_mut().zip(t.modality) {
            b.append_value(v as i64);
        }
        self.requests.append_option(t.requests.map(|n| n as i64));
        self.source_format.append_value(r.source_format.as_str());
        self.source_file.append_value(source_file);
        self.source_row.append_value(r.source_row as i64);
        self.ingest_id.append_value(ingest_id);
        self.len += 1;
    }
    pub fn finish(&mut self) -> RecordBatch {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.bucket_start.finish()),
            Arc::new(self.bucket_end.finish()),
            Arc::new(self.bucket_width.finish()),
            Arc::new(self.provider.finish()),
        ];
        cols.extend(
            self.dims
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        cols.extend(
            self.tokens
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        cols.push(Arc::new(self.assumed.finish()));
        cols.push(Arc::new(self.unit.finish()));
        cols.push(Arc::new(self.unit_quantity.finish()));
        cols.extend(
            self.modality
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        cols.push(Arc::new(self.requests.finish()));
        cols.push(Arc::new(self.source_format.finish()));
        cols.push(Arc::new(self.source_file.finish()));
        cols.push(Arc::new(self.source_row.finish()));
        cols.push(Arc::new(self.ingest_id.finish()));
        self.len = 0;
        // Finished builders keep no buffers; a file's next batch (if any) grows its own.
        *self = Self::default();
        RecordBatch::try_new(schema::usage(), cols).expect("usage builder matches its schema")
    }
}

/// Accumulates cost rows into a record batch.
pub struct CostBuilder {
    bucket_start: TimestampMicrosecondBuilder,
    bucket_end: TimestampMicrosecondBuilder,
    provider: StringBuilder,
    workspace_id: StringBuilder,
    workspace_name: StringBuilder,
    description: StringBuilder,
    cost_type: StringBuilder,
    dims: [StringBuilder; 5],
    currency: StringBuilder,
    amount: Decimal128Builder,
    amount_raw: StringBuilder,
    list_amount: Decimal128Builder,
    source_format: StringBuilder,
    source_file: StringBuilder,
    source_row: Int64Builder,
    ingest_id: StringBuilder,
    len: usize,
}

impl Default for CostBuilder {
    fn default() -> Self {
        Self {
            bucket_start: ts_builder(),
            bucket_end: ts_builder(),
            provider: StringBuilder::new(),
            workspace_id: StringBuilder::new(),
            workspace_name: StringBuilder::new(),
            description: StringBuilder::new(),
            cost_type: StringBuilder::new(),
            dims: std::array::from_fn(|_| StringBuilder::new()),
            currency: StringBuilder::new(),
            amount: Decimal128Builder::new()
                .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE as i8)
                .expect("valid decimal type"),
            amount_raw: StringBuilder::new(),
            list_amount: Decimal128Builder::new()
                .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE as i8)
                .expect("valid decimal type"),
            source_format: StringBuilder::new(),
            source_file: StringBuilder::new(),
            source_row: Int64Builder::new(),
            ingest_id: StringBuilder::new(),
            len: 0,
        }
    }
}

impl CostBuilder {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Fails only if the amount cannot be held exactly (sources already check this).
    pub fn push(
        &mut self,
        r: &CostRow,
        source_file: &str,
        ingest_id: &str,
    ) -> std::result::Result<(), String> {
        let amount = crate::money::Money::from_decimal(r.amount)?.units();
        let list_amount = r
            .list_amount
            .map(|d| crate::money::Money::from_decimal(d).map(|m| m.units()))
            .transpose()?;
        self.bucket_start.append_value(micros(r.bucket_start));
        self.bucket_end.append_value(micros(r.bucket_end));
        self.provider.append_value(r.provider.as_str());
        self.workspace_id.append_option(r.workspace_id.as_deref());
        self.workspace_name
            .append_option(r.workspace_name.as_deref());
        self.description.append_option(r.description.as_deref());
        self.cost_type.append_option(r.cost_type.as_deref());
        let dims = [
            &r.model,
            &r.token_type,
            &r.service_tier,
            &r.context_window,
            &r.inference_geo,
        ];
        for (b, v) in self.dims.iter_mut().zip(dims) {
            b.append_option(v.as_deref());
        }
        self.currency.append_value(&r.currency);
        self.amount.append_value(amount);
        self.amount_raw.append_value(&r.amount_raw);
        self.list_amount.append_option(list_amount);
        self.source_format.append_value(r.source_format.as_str());
        self.source_file.append_value(source_file);
        self.source_row.append_value(r.source_row as i64);
        self.ingest_id.append_value(ingest_id);
        self.len += 1;
        Ok(())
    }
    pub fn finish(&mut self) -> RecordBatch {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.bucket_start.finish()),
            Arc::new(self.bucket_end.finish()),
            Arc::new(self.provider.finish()),
            Arc::new(self.workspace_id.finish()),
            Arc::new(self.workspace_name.finish()),
            Arc::new(self.description.finish()),
            Arc::new(self.cost_type.finish()),
        ];
        cols.extend(
            self.dims
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        cols.push(Arc::new(self.currency.finish()));
        cols.push(Arc::new(self.amount.finish()));
        cols.push(Arc::new(self.amount_raw.finish()));
        cols.push(Arc::new(self.list_amount.finish()));
        cols.push(Arc::new(self.source_format.finish()));
        cols.push(Arc::new(self.source_file.finish()));
        cols.push(Arc::new(self.source_row.finish()));
        cols.push(Arc::new(self.ingest_id.finish()));
        self.len = 0;
        RecordBatch::try_new(schema::cost(), cols).expect("cost builder matches its schema")
    }
}

// ---- column access -------------------------------------------------------------------------

fn missing(b: &RecordBatch, name: &str) -> LakeError {
    LakeError::Column {
        path: format!(
            "batch with columns {:?}",
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect::<Vec<_>>()
        )
        .into(),
        column: name.into(),
    }
}

pub fn str_col<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
    b.column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| missing(b, name))
}
pub fn ts_col<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a TimestampMicrosecondArray> {
    b.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or_else(|| missing(b, name))
}
pub fn i64_col<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a Int64Array> {
    b.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| missing(b, name))
}

/// The provider a stored row names (the lake edge: text becomes the type here).
pub fn provider_at(a: &StringArray, i: usize) -> Result<Provider> {
    Provider::parse(a.value(i)).ok_or_else(|| LakeError::UnknownProviderValue {
        provider: a.value(i).into(),
    })
}

fn opt_s(a: &StringArray, i: usize) -> Option<String> {
    a.is_valid(i).then(|| a.value(i).to_string())
}
fn opt_t(a: &TimestampMicrosecondArray, i: usize) -> Option<DateTime<Utc>> {
    a.is_valid(i).then(|| from_micros(a.value(i)))
}

// ---- coverage ------------------------------------------------------------------------------

/// One covered interval, owned by one file of one ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    pub provider: Provider,
    pub family: SourceFamily,
    pub start_us: i64,
    pub end_us: i64,
    pub source_format: String,
    pub source_file: String,
    pub ingest_id: String,
}

pub fn coverage_batch(rows: &[Coverage]) -> RecordBatch {
    let mut start = ts_builder();
    let mut end = ts_builder();
    for r in rows {
        start.append_value(r.start_us);
        end.append_value(r.end_us);
    }
    let s = |f: &dyn Fn(&Coverage) -> &str| {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f))) as ArrayRef
    };
    RecordBatch::try_new(
        schema::coverage(),
        vec![
            s(&|r| r.provider.as_str()),
            s(&|r| r.family.as_str()),
            Arc::new(start.finish()),
            Arc::new(end.finish()),
            s(&|r| &r.source_format),
            s(&|r| &r.source_file),
            s(&|r| &r.ingest_id),
        ],
    )
    .expect("coverage schema")
}

pub fn coverage_rows(b: &RecordBatch) -> Result<Vec<Coverage>> {
    let (p, fam, st, en, sf, file, ing) = (
        str_col(b, "provider")?,
        str_col(b, "family")?,
        ts_col(b, "bucket_start")?,
        ts_col(b, "bucket_end")?,
        str_col(b, "source_format")?,
        str_col(b, "source_file")?,
        str_col(b, "ingest_id")?,
    );
    (0..b.num_rows())
        .map(|i| {
            Ok(Coverage {
                provider: provider_at(p, i)?,
                family: SourceFamily::parse(fam.value(i)).ok_or_else(|| {
                    LakeError::UnknownFamily {
                        family: fam.value(i).into(),
                    }
                })?,
                start_us: st.value(i),
                end_us: en.value(i),
                source_format: sf.value(i).into(),
                source_file: file.value(i).into(),
                ingest_id: ing.value(i).into(),
            })
        })
        .collect()
}

// ---- dimension tables ----------------------------------------------------------------------

/// A workspace or key as stored, with the ingest that last named it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored<T> {
    pub item: T,
    pub source_file: String,
    pub ingest_id: String,
}

pub fn workspaces_batch(rows: &[Stored<Workspace>]) -> RecordBatch {
    let mut created = ts_builder();
    let mut archived = ts_builder();
    for r in rows {
        created.append_option(r.item.created_at.map(micros));
        archived.append_option(r.item.archived_at.map(micros));
    }
    RecordBatch::try_new(
        schema::workspaces(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.item.provider.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.item.id),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.item.name),
            )),
            Arc::new(created.finish()),
            Arc::new(archived.finish()),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.item.display_color.as_deref()),
            )),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.item.tags.as_deref()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.source_file),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.ingest_id),
            )),
        ],
    )
    .expect("workspaces schema")
}

pub fn workspaces_rows(b: &RecordBatch) -> Result<Vec<Stored<Workspace>>> {
    let prov = str_col(b, "provider")?;
    let (id, name, created, archived, color, file, ing) = (
        str_col(b, "workspace_id")?,
        str_col(b, "workspace_name")?,
        ts_col(b, "created_at")?,
        ts_col(b, "archived_at")?,
        str_col(b, "display_color")?,
        str_col(b, "source_file")?,
        str_col(b, "ingest_id")?,
    );
    // Written before tags were kept: none.
    let tags = b
        .column_by_name("tags")
        .and_then(|c| c.as_string_opt::<i32>());
    (0..b.num_rows())
        .map(|i| {
            Ok(Stored {
                item: Workspace {
                    provider: provider_at(prov, i)?,
                    id: id.value(i).into(),
                    name: name.value(i).into(),
                    created_at: opt_t(created, i),
                    archived_at: opt_t(archived, i),
                    display_color: opt_s(color, i),
                    tags: tags.and_then(|t| opt_s(t, i)),
                },
                source_file: file.value(i).into(),
                ingest_id: ing.value(i).into(),
            })
        })
        .collect()
}

pub fn api_keys_batch(rows: &[Stored<ApiKey>]) -> RecordBatch {
    let mut created = ts_builder();
    let mut expires = ts_builder();
    for r in rows {
        created.append_option(r.item.created_at.map(micros));
        expires.append_option(r.item.expires_at.map(micros));
    }
    let opt = |f: &dyn Fn(&ApiKey) -> Option<&str>| {
        Arc::new(StringArray::from_iter(rows.iter().map(|r| f(&r.item)))) as ArrayRef
    };
    RecordBatch::try_new(
        schema::api_keys(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.item.provider.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.item.id),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.item.name),
            )),
            opt(&|k| k.workspace_id.as_deref()),
            Arc::new(created.finish()),
            opt(&|k| k.created_by_id.as_deref()),
            opt(&|k| k.partial_key_hint.as_deref()),
            opt(&|k| k.status.as_deref()),
            Arc::new(expires.finish()),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.source_file),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.ingest_id),
            )),
        ],
    )
    .expect("api_keys schema")
}

pub fn api_keys_rows(b: &RecordBatch) -> Result<Vec<Stored<ApiKey>>> {
    let prov = str_col(b, "provider")?;
    let (id, name, ws, created, by, hint, status, file, ing) = (
        str_col(b, "api_key_id")?,
        str_col(b, "api_key_name")?,
        str_col(b, "workspace_id")?,
        ts_col(b, "created_at")?,
        str_col(b, "created_by_id")?,
        str_col(b, "partial_key_hint")?,
        str_col(b, "status")?,
        str_col(b, "source_file")?,
        str_col(b, "ingest_id")?,
    );
    // Written before expiries were kept: none.
    let expires = b
        .column_by_name("expires_at")
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>());
    (0..b.num_rows())
        .map(|i| {
            Ok(Stored {
                item: ApiKey {
                    provider: provider_at(prov, i)?,
                    id: id.value(i).into(),
                    name: name.value(i).into(),
                    workspace_id: opt_s(ws, i),
                    created_at: opt_t(created, i),
                    created_by_id: opt_s(by, i),
                    partial_key_hint: opt_s(hint, i),
                    status: opt_s(status, i),
                    expires_at: expires.and_then(|e| opt_t(e, i)),
                },
                source_file: file.value(i).into(),
                ingest_id: ing.value(i).into(),
            })
        })
        .collect()
}

// ---- ingest log and quarantine -------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IngestLogRow {
    pub content_hash: String,
    pub source_file: String,
    pub size_bytes: u64,
    pub source_format: Option<String>,
    pub ingest_id: String,
    pub ingested_at: DateTime<Utc>,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_quarantined: u64,
    pub rows_superseded: u64,
    pub status: String,
}

pub fn ingest_log_batch(rows: &[IngestLogRow]) -> RecordBatch {
    let mut at = ts_builder();
    for r in rows {
        at.append_value(micros(r.ingested_at));
    }
    let n = |f: &dyn Fn(&IngestLogRow) -> u64| {
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| f(r) as i64),
        )) as ArrayRef
    };
    RecordBatch::try_new(
        schema::ingest_log(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.content_hash),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.source_file),
            )),
            n(&|r| r.size_bytes),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.source_format.as_deref()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.ingest_id),
            )),
            Arc::new(at.finish()),
            n(&|r| r.rows_read),
            n(&|r| r.rows_loaded),
            n(&|r| r.rows_quarantined),
            n(&|r| r.rows_superseded),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.status),
            )),
        ],
    )
    .expect("ingest_log schema")
}

pub fn ingest_log_rows(b: &RecordBatch) -> Result<Vec<IngestLogRow>> {
    let (h, f, sz, fmt, ing, at, rr, rl, rq, rs, st) = (
        str_col(b, "content_hash")?,
        str_col(b, "source_file")?,
        i64_col(b, "size_bytes")?,
        str_col(b, "source_format")?,
        str_col(b, "ingest_id")?,
        ts_col(b, "ingested_at")?,
        i64_col(b, "rows_read")?,
        i64_col(b, "rows_loaded")?,
        i64_col(b, "rows_quarantined")?,
        i64_col(b, "rows_superseded")?,
        str_col(b, "status")?,
    );
    Ok((0..b.num_rows())
        .map(|i| IngestLogRow {
            content_hash: h.value(i).into(),
            source_file: f.value(i).into(),
            size_bytes: sz.value(i) as u64,
            source_format: opt_s(fmt, i),
            ingest_id: ing.value(i).into(),
            ingested_at: from_micros(at.value(i)),
            rows_read: rr.value(i) as u64,
            rows_loaded: rl.value(i) as u64,
            rows_quarantined: rq.value(i) as u64,
            rows_superseded: rs.value(i) as u64,
            status: st.value(i).into(),
        })
        .collect())
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QuarantineRow {
    pub source_file: String,
    pub source_format: Option<String>,
    pub location: String,
    pub line: Option<u64>,
    pub field: Option<String>,
    pub reason: String,
    pub excerpt: Option<String>,
}

pub fn quarantine_batch(rows: &[QuarantineRow], ingest_id: &str, at: DateTime<Utc>) -> RecordBatch {
    let mut ts = ts_builder();
    for _ in rows {
        ts.append_value(micros(at));
    }
    RecordBatch::try_new(
        schema::quarantine(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|_| ingest_id),
            )),
            Arc::new(ts.finish()),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.source_file),
            )),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.source_format.as_deref()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.location),
            )),
            Arc::new(Int64Array::from_iter(
                rows.iter().map(|r| r.line.map(|l| l as i64)),
            )),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.field.as_deref()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.reason),
            )),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.excerpt.as_deref()),
            )),
        ],
    )
    .expect("quarantine schema")
}
