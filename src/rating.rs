//! Rating: every usage row priced at the list rates in force on its bucket's UTC date.
//!
//! Owns: the derived `usage_pricing` table — what pricing adds to each usage row and nothing
//! the row already has (its key, per-class costs at full precision, the rates used,
//! `priced`/`UNPRICED` status, the calendar days) — and knowing when it is stale. Readers see
//! usage and pricing together through the `rated_usage` view (`sql/rated_usage.sql`).
//! Must not: round (that is presentation), edit usage, or decide rates (that is `pricing`).
//!
//! Pricing is derived, never edited: each part records the price-book fingerprint and the
//! business timezone it was computed with; when either changes the part is priced again from
//! its usage part, so re-pricing history after a price change is safe and repeatable.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Date32Array, Decimal128Builder, Int64Array, StringArray, StringBuilder,
};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono_tz::Tz;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::lake::LakeError;
use crate::lake::batch::{self, i64_col, str_col, ts_col};
use crate::lake::io as lio;
use crate::lake::{
    Layout, MONEY_PRECISION, MONEY_SCALE, Snapshot, Table, Writer, schema as lschema,
};
use crate::pricing::{PriceBook, Rate, RateCache, canonical_model};
use std::path::PathBuf;

pub use crate::lake::schema::{COST_COLUMNS, RATE_COLUMNS};
use crate::money::MAX_UNITS;
use crate::vocab::{N_COUNTS, PricingStatus, WEB_SEARCH};

/// What a row with audio tokens is unpriced for ([`unit_reason`]).
pub const AUDIO: &str = "audio tokens";

/// Why a row counted in another unit than tokens is UNPRICED: the book prices tokens and web
/// searches; OpenAI's reference gives no per-unit list price for images, characters, audio
/// seconds, vector-store bytes, code-interpreter sessions or file-search calls.
pub fn unit_reason(unit: &str, quantity: i64) -> String {
    if unit == AUDIO {
        return format!(
            "{quantity} audio tokens: the price book has no audio rate (OpenAI bills audio tokens \
             at their own rates); counted as usage, never $0"
        );
    }
    format!(
        "{quantity} {unit}: the price book has no per-unit list price for {unit} (tokens and \
         web searches only); counted as usage, never $0"
    )
}

/// Schema of `usage_pricing` (owned by the lake's schema registry).
pub fn schema() -> SchemaRef {
    lschema::usage_pricing()
}

/// The usage columns pricing reads: the row's kind and day, its counts, and its key (which the
/// pricing part repeats). The dimensions that do not change a price are never read.
const READS: [&str; 14] = [
    "unit",
    "unit_quantity",
    "input_audio_tokens",
    "output_audio_tokens",
    "bucket_start",
    "bucket_width",
    "provider",
    "model",
    "service_tier",
    "context_window",
    "inference_geo",
    "ingest_id",
    "source_file",
    "source_row",
];

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

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RateSummary {
    pub months_rated: Vec<String>,
    pub months_fresh: Vec<String>,
    pub rows: u64,
    pub unpriced_rows: u64,
    /// The fingerprint of the book rated with (the price book and any provider-list rates).
    pub price_book: String,
}

impl RateSummary {
    /// Usage rated UNPRICED is a reason to look (per month: see the report).
    pub fn reviews(&self) -> Vec<crate::vocab::Review> {
        (self.unpriced_rows > 0)
            .then(|| crate::vocab::Review::Unpriced {
                month: self.months_rated.join(", "),
                lines: self.unpriced_rows as usize,
            })
            .into_iter()
            .collect()
    }
}

/// What a pricing part is derived from besides its usage part: the price book, the business
/// timezone of its calendar columns, and the version of its schema. A part with another stamp
/// is rated again.
fn stamp(book: &PriceBook, tz: Tz) -> String {
    format!("book:{};tz:{};v4", book.fingerprint, tz.name())
}

/// Whether `ensure_rated` would write anything for `months` (all usage months when empty):
/// a usage part without a current pricing mirror, a pricing part without its usage part, or a
/// `rated_usage` table of an older version (which stored the priced rows whole).
pub fn needs_rating(
    layout: &Snapshot,
    book: &PriceBook,
    tz: Tz,
    months: &[String],
) -> Result<bool, LakeError> {
    if !legacy_parts(layout)?.is_empty() {
        return Ok(true);
    }
    let want = stamp(book, tz);
    for (p, m) in layout.partitions(Table::Usage)? {
        if !(months.is_empty() || months.contains(&m)) {
            continue;
        }
        let usage = layout
            .month_parts(Table::Usage, p, &m)
            .map_err(lio::io_err(&layout.root))?;
        for u in &usage {
            let target = layout.pricing_mirror(u, p, &m);
            if kv(&target, "tokenledger.rated_from")?.as_deref() != Some(want.as_str()) {
                return Ok(true);
            }
        }
        let rated = layout
            .month_parts(Table::UsagePricing, p, &m)
            .map_err(lio::io_err(&layout.root))?;
        if rated.len() != usage.len() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The usage months of `months` (all when empty) as they stand, when [`needs_rating`] says
/// nothing is stale: what [`ensure_rated`] would report without writing.
pub fn fresh(layout: &Snapshot, months: &[String]) -> Result<RateSummary, LakeError> {
    let all = layout.all_months(Table::Usage)?;
    Ok(RateSummary {
        months_fresh: all
            .into_iter()
            .filter(|m| months.is_empty() || months.contains(m))
            .collect(),
        ..RateSummary::default()
    })
}

/// Makes `usage_pricing` (and so the `rated_usage` view) current for `months` (all usage
/// months when empty), for every provider, in one write transaction of `writer`.
///
/// `usage_pricing` mirrors `usage` part by part: usage part files are immutable (a change
/// writes new names), so a pricing part named like its usage part and stamped with the price
/// book's fingerprint is current. Only missing or stale parts are priced (in parallel); pricing
/// parts whose usage part is gone, and the whole-row `rated_usage` files an older version
/// wrote, are deleted.
pub fn ensure_rated(
    writer: &Writer,
    book: &PriceBook,
    tz: Tz,
    months: &[String],
    jobs: usize,
) -> Result<RateSummary, LakeError> {
    let layout: &Layout = writer;
    // Pricing parts are staged, then renamed into place (and orphans removed) in one commit; a
    // killed rating leaves the lake as before.
    let mut txn = writer.begin(format!(
        "rate-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ")
    ));
    let staging = txn.staging().to_path_buf();
    let mut s = RateSummary::default();
    let stamp = stamp(book, tz);
    for (p, m) in layout.partitions(Table::Usage)? {
        if !(months.is_empty() || months.contains(&m)) {
            continue;
        }
        let usage = layout
            .month_parts(Table::Usage, p, &m)
            .map_err(lio::io_err(&layout.root))?;
        let mut todo = Vec::new();
        for u in &usage {
            let target = layout.pricing_mirror(u, p, &m);
            if kv(&target, "tokenledger.rated_from")?.as_deref() != Some(stamp.as_str()) {
                let staged = staging
                    .join(p.as_str())
                    .join(&m)
                    .join(target.file_name().expect("a part name"));
                todo.push((u.clone(), staged, target));
            }
        }
        let month_list = if todo.is_empty() {
            &mut s.months_fresh
        } else {
            let (rows, unpriced) = rate_parts(book, tz, &todo, &stamp, jobs)?;
            s.rows += rows;
            s.unpriced_rows += unpriced;
            for (_, staged, target) in todo {
                txn.rename(staged, target);
            }
            &mut s.months_rated
        };
        if !month_list.contains(&m) {
            month_list.push(m.clone());
        }
        // Pricing parts of usage parts that were restated away (an ingest removes them in its
        // own commit; this also cleans a lake written by an older version).
        let rated = layout
            .month_parts(Table::UsagePricing, p, &m)
            .map_err(lio::io_err(&layout.root))?;
        // By logical name: a re-rated mirror is `<usage part's stem>~<rating>.parquet` in the
        // Delta mode (a data file is never overwritten there).
        let names: std::collections::HashSet<String> =
            usage.iter().map(|u| crate::lake::logical_name(u)).collect();
        let mirrored = |r: &PathBuf| names.contains(&crate::lake::logical_name(r));
        for r in rated.into_iter().filter(|r| !mirrored(r)) {
            txn.remove(r);
        }
    }
    // A month rated for one provider and fresh for another was rated.
    s.months_fresh.retain(|m| !s.months_rated.contains(m));
    for l in legacy_parts(layout)? {
        txn.remove(l);
    }
    if !txn.is_empty() {
        crate::lake::txn::crash_point("rate-staged");
    }
    txn.commit()?;
    Ok(s)
}

/// The files of `rated_usage/`, where versions before `usage_pricing` stored priced rows whole
/// (dimensions included). The name is now the view's: a stale copy must not shadow it.
fn legacy_parts(layout: &Layout) -> Result<Vec<PathBuf>, LakeError> {
    crate::lake::parquet_files(&layout.root.join(LEGACY_DIR))
}

/// Where versions before `usage_pricing` kept whole priced rows.
pub const LEGACY_DIR: &str = "rated_usage";

/// Prices usage parts into staged pricing parts, `jobs` at a time: (rows, unpriced rows).
fn rate_parts(
    book: &PriceBook,
    tz: Tz,
    todo: &[(PathBuf, PathBuf, PathBuf)],
    stamp: &str,
    jobs: usize,
) -> Result<(u64, u64), LakeError> {
    let props = lschema::writer_props_with(
        Table::UsagePricing,
        "rating",
        &[("tokenledger.rated_from", stamp)],
    );
    let results = crate::par::map(
        todo,
        jobs,
        |(src, staged, _)| -> Result<(u64, u64), LakeError> {
            let mut cache = RateCache::new(book);
            let (mut rows, mut unpriced) = (0u64, 0u64);
            // Streams: one batch in memory at a time, written as it is rated.
            let mut w = lio::StagedFile::create_with(staged.clone(), schema(), props.clone())?;
            let columns: Vec<&str> = READS
                .iter()
                .chain(lschema::TOKEN_COLUMNS.iter())
                .copied()
                .collect();
            for b in lio::read_batches_projected(src, Some(&columns))? {
                let rated = rate_batch(&b?, &mut cache, &book.fingerprint, tz)?;
                rows += rated.num_rows() as u64;
                unpriced += str_col(&rated, "pricing_status")?
                    .iter()
                    .filter(|s| *s == Some(PricingStatus::Unpriced.as_str()))
                    .count() as u64;
                w.write(&rated)?;
            }
            w.finish()?;
            Ok((rows, unpriced))
        },
    );
    let mut total = (0, 0);
    for r in results {
        let (a, b) = r?;
        total.0 += a;
        total.1 += b;
    }
    Ok(total)
}

fn opt(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

fn money_builder(n: usize) -> Decimal128Builder {
    Decimal128Builder::with_capacity(n)
        .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE as i8)
        .expect("valid decimal type")
}

/// What a usage row has besides tokens: a quantity in another unit with its price per unit
/// (lake units) where the book has one, or, unpriced, the unit and quantity (audio tokens
/// count here: the book has no audio rate).
#[derive(Debug, Clone, Copy, Default)]
pub struct Units<'a> {
    pub priced: Option<(i128, i64)>,
    pub unpriced: Option<(&'a str, i64)>,
}

impl<'a> Units<'a> {
    /// The units of a row of `provider` on `day`: `unit` and its quantity, and its audio tokens.
    pub fn of(
        book: &PriceBook,
        (provider, day): (&str, chrono::NaiveDate),
        unit: Option<(&'a str, i64)>,
        audio: i64,
    ) -> Units<'a> {
        if audio != 0 {
            return Units {
                priced: None,
                unpriced: Some((AUDIO, audio)),
            };
        }
        match unit.filter(|u| u.1 != 0) {
            Some((u, n)) => match book.usage_unit_price(provider, u, day) {
                Some(per) => Units {
                    priced: Some((per, n)),
                    unpriced: None,
                },
                None => Units {
                    priced: None,
                    unpriced: Some((u, n)),
                },
            },
            None => Units::default(),
        }
    }
}

/// The token part of a row's cost ([`row_cost`]; all zero without a rate, which only a row of
/// priced units alone may lack), or why the row is UNPRICED.
pub fn priced_row(
    rate: Option<&Rate>,
    counts: [i64; N_COUNTS],
    units: &Units,
) -> Result<RowCost, String> {
    if let Some((unit, n)) = units.unpriced {
        return Err(unit_reason(unit, n));
    }
    match rate {
        Some(r) => row_cost(r, counts).map_err(|e| e.reason().to_string()),
        None => Ok(([0; N_COUNTS], 0, [None; N_COUNTS])),
    }
}

/// Why a row whose cost does not fit the lake is UNPRICED.
pub const TOO_LARGE: &str = "the cost of this row at the rate in force does not fit the lake's money \
     columns (DECIMAL(28,12)): check the token counts and the price override";

/// Why a row cannot be priced at a rate it has.
#[derive(Debug, Clone, PartialEq)]
pub enum Unpriceable {
    /// A cost would not fit `DECIMAL(28,12)` ([`TOO_LARGE`]).
    TooLarge,
    /// The row has tokens (or searches) of a class the rate has no price for: the reason.
    NoPrice(String),
}

impl Unpriceable {
    pub fn reason(&self) -> &str {
        match self {
            Unpriceable::TooLarge => TOO_LARGE,
            Unpriceable::NoPrice(r) => r,
        }
    }
}

/// The costs of one row (token classes, then web search), their sum, and the rates as stored
/// (per MTok, then per search; `None` where the class has no price), in lake units.
pub type RowCost = ([i128; N_COUNTS], i128, [Option<i128>; N_COUNTS]);

/// The exact cost of one usage row at `rate`: see [`RowCost`]. Fails when the row has usage of
/// a class without a price, or when any figure would not fit `DECIMAL(28,12)`. Rating and the
/// report's on-the-fly pricing both use this, so they cannot disagree.
pub fn row_cost(rate: &Rate, counts: [i64; N_COUNTS]) -> Result<RowCost, Unpriceable> {
    if let Some(reason) = rate.missing(&counts) {
        return Err(Unpriceable::NoPrice(reason));
    }
    // Rates per MTok with ≤ 6 decimals: count × per_token is the exact cost at scale 12, and
    // the rate per MTok at scale 12 is per_token × 10⁶.
    let fits = |v: Option<i128>| {
        v.filter(|v| v.abs() <= MAX_UNITS)
            .ok_or(Unpriceable::TooLarge)
    };
    let mut costs = [0i128; N_COUNTS];
    let mut per_mtok = [None; N_COUNTS];
    for k in 0..N_COUNTS {
        let (unit, per_stored) = match k {
            WEB_SEARCH => (rate.per_search, rate.per_search),
            _ => (
                rate.per_token[k],
                rate.per_token[k].and_then(|p| p.checked_mul(1_000_000)),
            ),
        };
        let Some(unit) = unit else { continue };
        per_mtok[k] = Some(fits(per_stored)?);
        costs[k] = fits(i128::from(counts[k]).checked_mul(unit))?;
    }
    let total = costs
        .iter()
        .try_fold(0i128, |acc, c| acc.checked_add(*c))
        .filter(|t| t.abs() <= MAX_UNITS)
        .ok_or(Unpriceable::TooLarge)?;
    Ok((costs, total, per_mtok))
}

/// The price of one unit of each count (token classes, then web search) in lake units; 0
/// where there is none (a row with such a count is not priced at all: [`Rate::missing`]).
fn units(rate: &Rate) -> [i128; N_COUNTS] {
    std::array::from_fn(|k| match k {
        WEB_SEARCH => rate.per_search.unwrap_or(0),
        _ => rate.per_token[k].unwrap_or(0),
    })
}

/// Bit k set: count k (token class, then web search) has no price at `rate`.
pub fn absent_mask(rate: &Rate) -> u8 {
    (0..N_COUNTS)
        .filter(|&k| match k {
            WEB_SEARCH => rate.per_search.is_none(),
            _ => rate.per_token[k].is_none(),
        })
        .fold(0u8, |m, k| m | (1 << k))
}

/// The largest count (in absolute value) below which every row at `rate` prices without
/// overflow: a row whose counts are all at most this, and that has no count of a class without
/// a price, has `row_cost` `Ok`, and its total is `Σ count × rate`. So a scan may sum the
/// counts of such rows first and price the sums with [`sum_cost`], to the same unit. `None`
/// when the rate itself does not fit (no row prices).
pub fn safe_count(rate: &Rate) -> Option<u64> {
    row_cost(rate, [0; N_COUNTS]).ok()?;
    let weight: i128 = units(rate).iter().map(|p| p.abs()).sum();
    Some(match MAX_UNITS.checked_div(weight) {
        Some(c) => u64::try_from(c).unwrap_or(u64::MAX),
        None => u64::MAX, // a free rate: every row costs 0
    })
}

/// The cost of summed counts at `rate` (the sum of the rows' `row_cost` totals, when each row
/// was within [`safe_count`]); `None` on 128-bit overflow.
pub fn sum_cost(rate: &Rate, sums: [i128; N_COUNTS]) -> Option<i128> {
    let mut total = 0i128;
    for (sum, unit) in sums.iter().zip(units(rate)) {
        total = total.checked_add(sum.checked_mul(unit)?)?;
    }
    Some(total)
}

/// The columns pricing adds to a batch, built row by row.
struct Priced {
    canon: StringBuilder,
    status: StringBuilder,
    note: StringBuilder,
    rates: Vec<Decimal128Builder>,
    costs: Vec<Decimal128Builder>,
    /// Per unit of `usage.unit`, and its cost (null where the row has no such usage).
    unit: [Decimal128Builder; 2],
    total: Decimal128Builder,
}

impl Priced {
    fn new(n: usize) -> Self {
        Priced {
            canon: StringBuilder::with_capacity(n, n * 20),
            status: StringBuilder::with_capacity(n, n * 8),
            note: StringBuilder::new(),
            rates: (0..N_COUNTS).map(|_| money_builder(n)).collect(),
            costs: (0..N_COUNTS).map(|_| money_builder(n)).collect(),
            unit: [money_builder(n), money_builder(n)],
            total: money_builder(n),
        }
    }
    /// A priced row: `counts` in [`lschema::TOKEN_COLUMNS`] order. A cost beyond the lake's
    /// money columns (a count near `INT64` at an absurd override price) makes the row UNPRICED
    /// with the reason, never a wrapped or truncated amount.
    fn priced(&mut self, rate: Option<&Rate>, counts: [i64; N_COUNTS], units: &Units) {
        let (costs, total, per_mtok) = match priced_row(rate, counts, units) {
            Ok(c) => c,
            Err(reason) => return self.unpriced(&reason),
        };
        let (total, unit) = match units.priced {
            Some((per, n)) => match per.checked_mul(i128::from(n)).and_then(|c| {
                Some(c)
                    .filter(|c| c.abs() <= MAX_UNITS)
                    .zip(total.checked_add(c))
            }) {
                Some((c, t)) if t.abs() <= MAX_UNITS => (t, Some((per, c))),
                _ => return self.unpriced(TOO_LARGE),
            },
            None => (total, None),
        };
        let rate = rate.filter(|_| counts.iter().any(|c| *c != 0));
        let status = if rate.is_some_and(|r| r.provider_list) {
            PricingStatus::ProviderList
        } else {
            PricingStatus::Priced
        };
        self.status.append_value(status.as_str());
        self.note
            .append_option(rate.and_then(|r| r.note.as_deref()));
        for k in 0..N_COUNTS {
            self.costs[k].append_value(costs[k]);
            self.rates[k].append_option(per_mtok[k]);
        }
        self.unit[0].append_option(unit.map(|u| u.0));
        self.unit[1].append_option(unit.map(|u| u.1));
        self.total.append_value(total);
    }
    /// One row at the rate its kind has (or why it has none).
    fn row(&mut self, rate: &Result<Rate, String>, counts: [i64; N_COUNTS], units: &Units) {
        match rate {
            Ok(rate) => self.priced(Some(rate), counts, units),
            // A row of units alone needs no token rate.
            Err(_) if units.priced.is_some() && counts.iter().all(|c| *c == 0) => {
                self.priced(None, counts, units)
            }
            Err(_) if units.unpriced.is_some() => {
                let (u, n) = units.unpriced.expect("checked");
                self.unpriced(&unit_reason(u, n))
            }
            Err(reason) => self.unpriced(reason),
        }
    }
    /// No price in force: null cost and rates (never $0), and the reason.
    fn unpriced(&mut self, reason: &str) {
        self.status.append_value(PricingStatus::Unpriced.as_str());
        self.note.append_value(reason);
        for k in 0..N_COUNTS {
            self.costs[k].append_null();
            self.rates[k].append_null();
        }
        self.unit.iter_mut().for_each(|b| b.append_null());
        self.total.append_null();
    }
    fn finish(mut self, cols: &mut Vec<ArrayRef>) {
        cols.push(Arc::new(self.canon.finish()));
        cols.push(Arc::new(self.status.finish()));
        cols.push(Arc::new(self.note.finish()));
        for r in self.rates.iter_mut().chain(self.costs.iter_mut()) {
            cols.push(Arc::new(r.finish()));
        }
        for u in &mut self.unit {
            cols.push(Arc::new(u.finish()));
        }
        cols.push(Arc::new(self.total.finish()));
    }
}

/// `utc_day`, `business_day` and `business_month` of each row (see [`business_day`]).
fn calendar_columns(b: &RecordBatch, tz: Tz, cols: &mut Vec<ArrayRef>) -> Result<(), LakeError> {
    let start = ts_col(b, "bucket_start")?;
    let width = str_col(b, "bucket_width")?;
    let n = b.num_rows();
    let (mut utc, mut local) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut month = StringBuilder::with_capacity(n, n * 7);
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
    let days = |d: chrono::NaiveDate| (d - epoch).num_days() as i32;
    // Rows come bucket by bucket: the zone conversion and the month text are computed once per
    // bucket start, not once per row.
    let mut last: Option<(i64, bool, i32, i32, String)> = None;
    for i in 0..n {
        let (us, daily) = (start.value(i), width.value(i) == "1d");
        let hit = last.as_ref().filter(|l| l.0 == us && l.1 == daily);
        let (u, l, m) = match hit {
            Some(l) => (l.2, l.3, &l.4),
            None => {
                let t = batch::from_micros(us);
                let d = business_day(t, daily, tz);
                let v = (
                    us,
                    daily,
                    days(t.date_naive()),
                    days(d),
                    d.format("%Y-%m").to_string(),
                );
                let l = last.insert(v);
                (l.2, l.3, &l.4)
            }
        };
        utc.push(u);
        local.push(l);
        month.append_value(m);
    }
    cols.push(Arc::new(Date32Array::from(utc)));
    cols.push(Arc::new(Date32Array::from(local)));
    cols.push(Arc::new(month.finish()));
    Ok(())
}

/// The business day of a bucket starting at `start`: an hourly or finer bucket belongs to the
/// day its start falls on in `tz`; a daily bucket (the provider's UTC day, which no zone can
/// split) keeps its UTC date.
pub fn business_day(
    start: chrono::DateTime<chrono::Utc>,
    daily: bool,
    tz: Tz,
) -> chrono::NaiveDate {
    if daily {
        start.date_naive()
    } else {
        start.with_timezone(&tz).date_naive()
    }
}

/// Prices one batch of usage rows.
pub fn rate_batch(
    b: &RecordBatch,
    cache: &mut RateCache,
    book_fp: &str,
    tz: Tz,
) -> Result<RecordBatch, LakeError> {
    let n = b.num_rows();
    let start = ts_col(b, "bucket_start")?;
    let provider = str_col(b, "provider")?;
    let model = str_col(b, "model")?;
    let tier = str_col(b, "service_tier")?;
    let ctx = str_col(b, "context_window")?;
    let geo = str_col(b, "inference_geo")?;
    let tokens: Vec<&Int64Array> = lschema::TOKEN_COLUMNS
        .iter()
        .map(|c| i64_col(b, c))
        .collect::<Result<_, _>>()?;
    let unit = str_col(b, "unit")?;
    let quantity = i64_col(b, "unit_quantity")?;
    let audio = [
        i64_col(b, "input_audio_tokens")?,
        i64_col(b, "output_audio_tokens")?,
    ];
    let mut p = Priced::new(n);
    // The model's alias, once per run of equal model ids (rows repeat a few hundred models).
    let mut canon: Option<(String, String)> = None;
    for i in 0..n {
        let day = batch::from_micros(start.value(i)).date_naive();
        let m = opt(model, i);
        match m {
            Some(id) => {
                if canon.as_ref().is_none_or(|(k, _)| k != id) {
                    canon = Some((id.to_string(), canonical_model(id)));
                }
                p.canon.append_value(&canon.as_ref().expect("set above").1);
            }
            None => p.canon.append_null(),
        }
        let (t, c, g) = (opt(tier, i), opt(ctx, i), opt(geo, i));
        let heard = audio[0].value(i).saturating_add(audio[1].value(i));
        let units = Units::of(
            cache.book(),
            (provider.value(i), day),
            opt(unit, i).map(|u| (u, quantity.value(i))),
            heard,
        );
        let counts = std::array::from_fn(|k| tokens[k].value(i));
        p.row(
            cache.get(provider.value(i), m, day, t, c, g),
            counts,
            &units,
        );
    }
    // The row's key (and provider, a partition key repeated in every file), as in usage.
    let mut cols: Vec<ArrayRef> = ["provider"]
        .iter()
        .chain(lschema::USAGE_KEY.iter())
        .map(|c| {
            b.column_by_name(c).cloned().ok_or(LakeError::BatchColumn {
                table: "usage",
                column: c,
            })
        })
        .collect::<Result<_, _>>()?;
    p.finish(&mut cols);
    cols.push(Arc::new(StringArray::from_iter_values(
        std::iter::repeat_n(book_fp, n),
    )));
    calendar_columns(b, tz, &mut cols)?;
    RecordBatch::try_new(schema(), cols).map_err(|source| LakeError::Batch {
        table: "usage_pricing",
        source,
    })
}
