//! Rating: every usage row priced at the list rates in force on its bucket's UTC date.
//!
//! Owns: the derived `rated_usage` table (one row per usage row, per-class costs at full
//! precision, the rates used, `priced`/`UNPRICED` status), and knowing when it is stale.
//! Must not: round (that is presentation), edit usage, or decide rates (that is `pricing`).
//!
//! Rated data is derived, never edited: each month's file records the price-book fingerprint
//! and the ingest that wrote its usage partition; when either changes the month is re-rated
//! from scratch, so re-pricing history after a price change is safe and repeatable.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Decimal128Builder, Int64Array, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::lake::batch::{self, i64_col, str_col, ts_col};
use crate::lake::io::{self as lio, LakeError};
use crate::lake::{Layout, MONEY_PRECISION, MONEY_SCALE, Table, schema as lschema};
use crate::pricing::{PriceBook, RateCache, canonical_model};

pub const RATED_DIR: &str = "rated_usage";

/// Columns carried over unchanged from `usage`.
const CARRIED: [&str; 19] = [
    "bucket_start",
    "bucket_end",
    "bucket_width",
    "provider",
    "workspace_id",
    "workspace_name",
    "api_key_id",
    "api_key_name",
    "model",
    "service_tier",
    "context_window",
    "inference_geo",
    "uncached_input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
    "output_tokens",
    "web_search_requests",
    "source_file",
];

pub const RATE_COLS: [&str; 6] = [
    "rate_uncached_input",
    "rate_cache_write_5m",
    "rate_cache_write_1h",
    "rate_cache_read",
    "rate_output",
    "rate_web_search",
];
pub const COST_COLS: [&str; 6] = [
    "cost_uncached_input",
    "cost_cache_write_5m",
    "cost_cache_write_1h",
    "cost_cache_read",
    "cost_output",
    "cost_web_search",
];
const TOKEN_COLS: [&str; 6] = [
    "uncached_input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
    "output_tokens",
    "web_search_requests",
];

fn money_type() -> DataType {
    DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE as i8)
}

/// Schema of `rated_usage`.
pub fn schema() -> SchemaRef {
    let usage = lschema::usage();
    let mut f: Vec<Field> = CARRIED
        .iter()
        .map(|c| usage.field_with_name(c).expect("usage column").clone())
        .collect();
    f.push(Field::new("source_row", DataType::Int64, false));
    f.push(Field::new("ingest_id", DataType::Utf8, false));
    f.push(Field::new("model_canonical", DataType::Utf8, true));
    f.push(Field::new("pricing_status", DataType::Utf8, false));
    f.push(Field::new("pricing_note", DataType::Utf8, true));
    for c in RATE_COLS {
        f.push(Field::new(c, money_type(), true));
    }
    for c in COST_COLS {
        f.push(Field::new(c, money_type(), true));
    }
    f.push(Field::new("list_cost", money_type(), true));
    f.push(Field::new("price_book", DataType::Utf8, false));
    Arc::new(Schema::new(f))
}

pub fn month_file(layout: &Layout, month: &str) -> std::path::PathBuf {
    layout
        .root
        .join(RATED_DIR)
        .join("provider=anthropic")
        .join(format!("month={month}"))
        .join("part-0.parquet")
}

fn kv(path: &std::path::Path, key: &str) -> Result<Option<String>, LakeError> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(LakeError::Io {
                path: path.into(),
                source: e,
            });
        }
    };
    let b = ParquetRecordBatchReaderBuilder::try_new(f).map_err(lio::pq_err(path))?;
    Ok(b.metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kvs| {
            kvs.iter()
                .find(|k| k.key == key)
                .and_then(|k| k.value.clone())
        }))
}

/// What a rated month was computed from; equal stamps mean the file is fresh.
fn stamp(layout: &Layout, book: &PriceBook, month: &str) -> Result<String, LakeError> {
    let usage = layout.month_file(Table::Usage, "anthropic", month);
    let writer = kv(&usage, "tokenledger.written_by_ingest")?.unwrap_or_default();
    Ok(format!("usage:{writer};book:{}", book.fingerprint))
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RateSummary {
    pub months_rated: Vec<String>,
    pub months_fresh: Vec<String>,
    pub rows: u64,
    pub unpriced_rows: u64,
}

/// Makes `rated_usage` current for `months` (all usage months when empty). Call with the
/// exclusive lock held: it replaces files (atomically, one per month).
pub fn ensure_rated(
    layout: &Layout,
    book: &PriceBook,
    months: &[String],
) -> Result<RateSummary, LakeError> {
    let all = layout
        .months(Table::Usage, "anthropic")
        .map_err(lio::io_err(&layout.root))?;
    let months: Vec<String> = if months.is_empty() {
        all
    } else {
        months.iter().filter(|m| all.contains(m)).cloned().collect()
    };
    let mut s = RateSummary::default();
    for m in months {
        let target = month_file(layout, &m);
        let want = stamp(layout, book, &m)?;
        if kv(&target, "tokenledger.rated_from")?.as_deref() == Some(want.as_str()) {
            s.months_fresh.push(m);
            continue;
        }
        let (rows, unpriced) = rate_month(layout, book, &m, &want)?;
        s.rows += rows;
        s.unpriced_rows += unpriced;
        s.months_rated.push(m);
    }
    Ok(s)
}

fn rate_month(
    layout: &Layout,
    book: &PriceBook,
    month: &str,
    stamp: &str,
) -> Result<(u64, u64), LakeError> {
    let src = layout.month_file(Table::Usage, "anthropic", month);
    let mut cache = RateCache::new(book);
    let mut out = Vec::new();
    let (mut rows, mut unpriced) = (0u64, 0u64);
    for b in lio::read_batches(&src)? {
        let b = b?;
        let rated = rate_batch(&b, &mut cache, &book.fingerprint)?;
        rows += rated.num_rows() as u64;
        unpriced += str_col(&rated, "pricing_status")?
            .iter()
            .filter(|s| *s == Some("UNPRICED"))
            .count() as u64;
        out.push(rated);
    }
    let target = month_file(layout, month);
    write_rated(&target, &out, stamp)?;
    Ok((rows, unpriced))
}

fn write_rated(
    target: &std::path::Path,
    batches: &[RecordBatch],
    stamp: &str,
) -> Result<(), LakeError> {
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::KeyValue;
    let dir = target.parent().expect("has a dir");
    lio::create_dir_all(dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(".parquet.partial")
        .tempfile_in(dir)
        .map_err(lio::io_err(dir))?;
    let mut props = lio::writer_props(Table::Usage, "rating").into_builder();
    props = props.set_key_value_metadata(Some(vec![
        KeyValue::new("tokenledger.table".into(), RATED_DIR.to_string()),
        KeyValue::new(
            "tokenledger.schema_version".into(),
            crate::lake::SCHEMA_VERSION.to_string(),
        ),
        KeyValue::new("tokenledger.rated_from".into(), stamp.to_string()),
    ]));
    let file = tmp.reopen().map_err(lio::io_err(tmp.path()))?;
    let mut w =
        ArrowWriter::try_new(file, schema(), Some(props.build())).map_err(lio::pq_err(target))?;
    for b in batches {
        w.write(b).map_err(lio::pq_err(target))?;
    }
    let f = w.into_inner().map_err(lio::pq_err(target))?;
    f.sync_all().map_err(lio::io_err(target))?;
    tmp.persist(target).map_err(|e| LakeError::Io {
        path: target.into(),
        source: e.error,
    })?;
    lio::fsync_dir(dir)
}

fn opt(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

fn money_builder(n: usize) -> Decimal128Builder {
    Decimal128Builder::with_capacity(n)
        .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE as i8)
        .expect("valid decimal type")
}

/// Prices one batch of usage rows.
pub fn rate_batch(
    b: &RecordBatch,
    cache: &mut RateCache,
    book_fp: &str,
) -> Result<RecordBatch, LakeError> {
    let n = b.num_rows();
    let start = ts_col(b, "bucket_start")?;
    let provider = str_col(b, "provider")?;
    let model = str_col(b, "model")?;
    let tier = str_col(b, "service_tier")?;
    let ctx = str_col(b, "context_window")?;
    let geo = str_col(b, "inference_geo")?;
    let tokens: Vec<&Int64Array> = TOKEN_COLS
        .iter()
        .map(|c| i64_col(b, c))
        .collect::<Result<_, _>>()?;

    let mut canon = StringBuilder::with_capacity(n, n * 20);
    let mut status = StringBuilder::with_capacity(n, n * 8);
    let mut note = StringBuilder::new();
    let mut rates: Vec<Decimal128Builder> = (0..6).map(|_| money_builder(n)).collect();
    let mut costs: Vec<Decimal128Builder> = (0..6).map(|_| money_builder(n)).collect();
    let mut total = money_builder(n);
    for i in 0..n {
        let day = batch::from_micros(start.value(i)).date_naive();
        let m = opt(model, i);
        canon.append_option(m.map(canonical_model));
        match cache.get(
            provider.value(i),
            m,
            day,
            opt(tier, i),
            opt(ctx, i),
            opt(geo, i),
        ) {
            Ok(rate) => {
                status.append_value("priced");
                note.append_option(rate.note.as_deref());
                let mut sum: i128 = 0;
                for k in 0..6 {
                    // Rates per MTok with ≤ 6 decimals, so count × fp is the exact cost at scale 12.
                    let c = tokens[k].value(i) as i128 * rate.fp[k];
                    sum += c;
                    costs[k].append_value(c);
                    rates[k].append_value(if k < 5 {
                        rate.fp[k] * 1_000_000
                    } else {
                        rate.fp[5]
                    });
                }
                total.append_value(sum);
            }
            Err(reason) => {
                status.append_value("UNPRICED");
                note.append_value(reason);
                for k in 0..6 {
                    costs[k].append_null();
                    rates[k].append_null();
                }
                total.append_null();
            }
        }
    }
    let mut cols: Vec<ArrayRef> = CARRIED
        .iter()
        .map(|c| b.column_by_name(c).expect("usage column").clone())
        .collect();
    cols.push(
        b.column_by_name("source_row")
            .expect("usage column")
            .clone(),
    );
    cols.push(b.column_by_name("ingest_id").expect("usage column").clone());
    cols.push(Arc::new(canon.finish()));
    cols.push(Arc::new(status.finish()));
    cols.push(Arc::new(note.finish()));
    for mut r in rates {
        cols.push(Arc::new(r.finish()));
    }
    for mut c in costs {
        cols.push(Arc::new(c.finish()));
    }
    cols.push(Arc::new(total.finish()));
    cols.push(Arc::new(StringArray::from_iter_values(
        std::iter::repeat_n(book_fp, n),
    )));
    RecordBatch::try_new(schema(), cols).map_err(|e| LakeError::Other(format!("rated batch: {e}")))
}
