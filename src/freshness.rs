//! Freshness: what data the lake stands on — per provider, the span of time its usage and
//! cost exports cover, and how old the newest of them is.
//!
//! Owns: reading the coverage tables (`usage_coverage`, `cost_coverage`) into spans, whether
//! a month is covered at all, and the `stale_data` finding (the newest usage or cost older
//! than `stale_after_days`). A gap in the data is never zero spend: every stage that measures
//! a rate (credits' burn, anomaly baselines, projections) asks here where its data ends.
//! Must not: write, price, or read usage rows (coverage says what was exported, not what was
//! spent).

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::Serialize;

use crate::lake::{LakeError, Layout, Table};
use crate::vocab::{Month, Provider};

/// The coverage of one table of one provider: the first instant any export covers and the
/// end of the newest one.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Span {
    pub provider: Provider,
    /// `usage` or `cost`.
    pub table: &'static str,
    pub first: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Whole UTC days from the end of the newest export to the as-of day's end (0: current).
    pub age_days: i64,
}

impl Span {
    /// The last UTC day the data covers (the day before `end` when it ends at midnight).
    pub fn last_day(&self) -> NaiveDate {
        (self.end - chrono::Duration::microseconds(1)).date_naive()
    }
}

/// One table's merged covered intervals (µs, UTC): (provider, table, intervals).
type Covered = (Provider, &'static str, Vec<(i64, i64)>);

/// Everything the lake's exports cover, as of a day.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Freshness {
    pub spans: Vec<Span>,
    /// Each table's covered intervals (µs, UTC), merged, for month questions.
    #[serde(skip)]
    intervals: Vec<Covered>,
}

const TABLES: [(Table, &str); 2] = [
    (Table::UsageCoverage, "usage"),
    (Table::CostCoverage, "cost"),
];

/// Reads the coverage tables as of `as_of` (the end of that UTC day is "now").
pub fn freshness(layout: &Layout, as_of: NaiveDate) -> Result<Freshness, LakeError> {
    let now = end_of(as_of);
    let mut out = Freshness::default();
    for (table, name) in TABLES {
        for provider in layout.providers(table)? {
            let mut iv = Vec::new();
            for month in layout.months(table, provider).map_err(|e| LakeError::Io {
                path: layout.table_dir(table),
                source: e,
            })? {
                let path = layout.month_file(table, provider, &month);
                if !path.is_file() {
                    continue;
                }
                for b in crate::lake::io::read_batches(&path)? {
                    for c in crate::lake::batch::coverage_rows(&b?)? {
                        iv.push((c.start_us, c.end_us));
                    }
                }
            }
            let iv = merge(iv);
            let (Some(first), Some(last)) = (iv.first(), iv.last()) else {
                continue;
            };
            let (first, end) = (at(first.0), at(last.1));
            out.spans.push(Span {
                provider,
                table: name,
                first,
                end,
                age_days: ((now - end).num_hours().max(0)) / 24,
            });
            out.intervals.push((provider, name, iv));
        }
    }
    Ok(out)
}

impl Freshness {
    /// Whether any usage export covers any instant of `month` in the business timezone `tz`.
    pub fn usage_covers(&self, month: Month, tz: chrono_tz::Tz) -> bool {
        let (s, e) = month_bounds(month, tz);
        self.intervals
            .iter()
            .filter(|(_, t, _)| *t == "usage")
            .any(|(_, _, iv)| iv.iter().any(|&(a, b)| a < e && b > s))
    }
    /// The usage span, all providers together: (first day, last day), if any.
    pub fn usage_days(&self) -> Option<(NaiveDate, NaiveDate)> {
        let u = self.spans.iter().filter(|s| s.table == "usage");
        let first = u.clone().map(|s| s.first.date_naive()).min()?;
        let last = u.map(Span::last_day).max()?;
        Some((first, last))
    }
    /// The newest day every provider's usage reaches (the oldest of their ends): the last day
    /// a rate measured across providers may use.
    pub fn usage_through(&self) -> Option<NaiveDate> {
        self.spans
            .iter()
            .filter(|s| s.table == "usage")
            .map(Span::last_day)
            .min()
    }
    /// Spans older than `days` (a `stale_data` finding each).
    pub fn stale(&self, days: i64) -> Vec<&Span> {
        self.spans.iter().filter(|s| s.age_days > days).collect()
    }
    /// What a month with no usage says: which span the lake does cover.
    pub fn no_usage_sentence(&self, month: Month) -> String {
        match self.usage_days() {
            Some((a, b)) => format!(
                "no usage export covers {month}: the lake's usage covers {a} to {b}; ingest {month}'s usage first"
            ),
            None => format!(
                "no usage export covers {month}: the lake has no usage yet; ingest some first"
            ),
        }
    }
}

/// The sentence of a stale span: what is old, since when, and what to do.
pub fn stale_sentence(s: &Span) -> String {
    format!(
        "{} {} data ends {} ({} day(s) before the as-of day): figures after it are missing, not zero; export or pull {} {} again",
        s.provider,
        s.table,
        s.last_day(),
        s.age_days,
        s.provider,
        s.table,
    )
}

fn end_of(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(
        &(d + chrono::Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .expect("midnight"),
    )
}

fn at(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

fn month_bounds(m: Month, tz: chrono_tz::Tz) -> (i64, i64) {
    let first = m.first_day();
    let next = m.next().map_or(first, Month::first_day);
    // Local midnight; a midnight that a DST change skips starts at the earliest valid instant.
    let us = |d: NaiveDate| {
        let local = d.and_hms_opt(0, 0, 0).expect("midnight");
        tz.from_local_datetime(&local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&local))
            .timestamp_micros()
    };
    (us(first), us(next))
}

fn merge(mut iv: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    iv.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (s, e) in iv {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}
