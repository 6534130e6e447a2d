//! What one export may plausibly claim: the sane window of dates, the longest span of one file,
//! bucket alignment, and no bucket claimed twice. Checked here, while parsing, so that a typo'd
//! date never widens a file's coverage (and so never restates other files' rows away).
//!
//! Must not: read the lake or know other files (overlap between files is `ingest`'s).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use super::{FileError, Quarantined, Sink};
use crate::model::{ApiKey, BucketWidth, CostRow, SourceFamily, UsageRow, Workspace, day_start};

/// The plausibility limits of an ingest (`[ingest]` in `tokenledger.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// No bucket starts before this UTC day (default 2023-01-01: before the Admin API existed).
    pub earliest: NaiveDate,
    /// No bucket starts after this UTC day (default: today + 1 day).
    pub latest: NaiveDate,
    /// A file whose buckets span more days than this is quarantined whole (default 93).
    pub max_span_days: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self::for_today(Utc::now().date_naive())
    }
}

impl Limits {
    pub const DEFAULT_EARLIEST: NaiveDate = NaiveDate::from_ymd_opt(2023, 1, 1).unwrap();
    pub const DEFAULT_MAX_SPAN_DAYS: i64 = 93;

    /// The default window for a given "today".
    pub fn for_today(today: NaiveDate) -> Self {
        Self {
            earliest: Self::DEFAULT_EARLIEST,
            latest: today + TimeDelta::days(1),
            max_span_days: Self::DEFAULT_MAX_SPAN_DAYS,
        }
    }

    /// Why a bucket `[start, end)` of `width` cannot be used, if it cannot: outside the window,
    /// or not aligned to its width in UTC (an offset export lands across two buckets).
    pub fn check_bucket(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        width: BucketWidth,
    ) -> Result<(), String> {
        let day = start.date_naive();
        if day < self.earliest || day > self.latest {
            return Err(format!(
                "bucket {} is outside the plausible window {} .. {} (a typo'd date? the window is \
                 [ingest] earliest / the day after today)",
                start.to_rfc3339(),
                self.earliest,
                self.latest
            ));
        }
        if start.timestamp().rem_euclid(width.seconds()) != 0 {
            return Err(format!(
                "bucket {} .. {} is not aligned to a whole {} in UTC (an export with a time-zone \
                 offset?); re-export in UTC",
                start.to_rfc3339(),
                end.to_rfc3339(),
                width.as_str()
            ));
        }
        Ok(())
    }

    /// Why a UTC day (a Console CSV row) cannot be used, if it cannot.
    pub fn check_day(&self, day: NaiveDate) -> Result<(), String> {
        self.check_bucket(
            day_start(day),
            day_start(day) + TimeDelta::days(1),
            BucketWidth::Day,
        )
    }
}

/// Wraps the sink of one file: refuses a file whose buckets overlap each other (the same bucket
/// twice in `data[]`, or a 1h bucket inside a 1d one) or span more than the limit. The file then
/// fails as a whole: everything it emitted is discarded by `ingest`.
pub(super) struct Guard<'a> {
    pub inner: &'a mut dyn Sink,
    limits: Limits,
    claimed: BTreeMap<(SourceFamily, i64), i64>,
    span: Option<(i64, i64)>,
    pub fatal: Option<FileError>,
}

impl<'a> Guard<'a> {
    pub fn new(inner: &'a mut dyn Sink, limits: Limits) -> Self {
        Self {
            inner,
            limits,
            claimed: BTreeMap::new(),
            span: None,
            fatal: None,
        }
    }
    /// The file's verdict once parsed.
    pub fn finish(self) -> Result<(), FileError> {
        if let Some(e) = self.fatal {
            return Err(e);
        }
        if let Some((s, e)) = self.span {
            let days = (e - s + 86_399) / 86_400;
            if days > self.limits.max_span_days {
                return Err(FileError::new(format!(
                    "the file's buckets span {days} days ({} .. {}), more than one export can \
                     plausibly cover ({} days, [ingest] max_span_days); split the export or raise the limit",
                    fmt_s(s),
                    fmt_s(e),
                    self.limits.max_span_days
                )));
            }
        }
        Ok(())
    }
}

fn fmt_s(s: i64) -> String {
    DateTime::from_timestamp(s, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| s.to_string())
}

impl Sink for Guard<'_> {
    fn usage(&mut self, row: &UsageRow<'_>) {
        self.inner.usage(row)
    }
    fn cost(&mut self, row: CostRow) {
        self.inner.cost(row)
    }
    fn workspace(&mut self, ws: Workspace) {
        self.inner.workspace(ws)
    }
    fn api_key(&mut self, key: ApiKey) {
        self.inner.api_key(key)
    }
    fn ledger(&mut self, item: crate::model::LedgerItem) {
        self.inner.ledger(item)
    }
    fn quarantine(&mut self, q: Quarantined) {
        self.inner.quarantine(q)
    }
    fn note(&mut self, note: String) {
        self.inner.note(note)
    }
    fn reset(&mut self) {
        self.claimed.clear();
        self.span = None;
        self.fatal = None;
        self.inner.reset()
    }
    fn coverage(&mut self, family: SourceFamily, start: DateTime<Utc>, end: DateTime<Utc>) {
        let (s, e) = (start.timestamp(), end.timestamp());
        let before = self
            .claimed
            .range((family, i64::MIN)..=(family, s))
            .next_back()
            .filter(|(_, pe)| **pe > s);
        let after = self
            .claimed
            .range((family, s)..(family, e))
            .find(|((_, ps), _)| *ps >= s);
        if let Some(((_, ps), pe)) = before.or(after)
            && self.fatal.is_none()
        {
            self.fatal = Some(FileError::new(format!(
                "bucket {} .. {} overlaps bucket {} .. {} of the same file (a bucket repeated in \
                 data[]?); its rows would be counted twice, so the file is not loaded",
                fmt_s(s),
                fmt_s(e),
                fmt_s(*ps),
                fmt_s(*pe)
            )));
        }
        self.claimed.insert((family, s), e);
        self.span = Some(match self.span {
            None => (s, e),
            Some((a, b)) => (a.min(s), b.max(e)),
        });
        self.inner.coverage(family, start, end)
    }
}
