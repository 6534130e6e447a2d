//! The `pull_log` table: what each pull fetched, and where the next one starts.
//!
//! Owns: reading and appending the rows, and the resume rule (an endpoint is pulled through
//! the end of the unbroken run of complete windows from its first day). Must not: fetch.

use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::lake::io as lio;
use crate::lake::{LakeError, Layout, Table, Writer};

/// One row of `pull_log`.
#[derive(Debug, Clone, Serialize)]
pub struct LogRow {
    pub pull_id: String,
    pub provider: String,
    pub endpoint: String,
    pub range_start: DateTime<Utc>,
    pub range_end: DateTime<Utc>,
    /// `complete` or `failed`.
    pub status: String,
    pub pages: i64,
    pub bytes: i64,
    pub requests: i64,
    pub retries: i64,
    pub content_hash: Option<String>,
    pub landing_path: Option<String>,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}
fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Every row written so far.
pub fn read(layout: &Layout) -> Result<Vec<LogRow>, LakeError> {
    use crate::lake::batch::{i64_col, str_col, ts_col};
    let mut out = Vec::new();
    for b in lio::read_all(&layout.table_file(Table::PullLog))? {
        let s = |n: &str| str_col(&b, n);
        let (id, prov, ep, st) = (s("pull_id")?, s("provider")?, s("endpoint")?, s("status")?);
        let (hash, path, err) = (s("content_hash")?, s("landing_path")?, s("error")?);
        let t = |n: &str| ts_col(&b, n);
        let (rs, re, sa, fa) = (
            t("range_start")?,
            t("range_end")?,
            t("started_at")?,
            t("finished_at")?,
        );
        let i = |n: &str| i64_col(&b, n);
        let (pages, bytes, reqs, retries) =
            (i("pages")?, i("bytes")?, i("requests")?, i("retries")?);
        let opt = |a: &StringArray, r: usize| (!a.is_null(r)).then(|| a.value(r).to_string());
        for r in 0..b.num_rows() {
            out.push(LogRow {
                pull_id: id.value(r).into(),
                provider: prov.value(r).into(),
                endpoint: ep.value(r).into(),
                range_start: from_micros(rs.value(r)),
                range_end: from_micros(re.value(r)),
                status: st.value(r).into(),
                pages: pages.value(r),
                bytes: bytes.value(r),
                requests: reqs.value(r),
                retries: retries.value(r),
                content_hash: opt(hash, r),
                landing_path: opt(path, r),
                error: opt(err, r),
                started_at: from_micros(sa.value(r)),
                finished_at: from_micros(fa.value(r)),
            });
        }
    }
    Ok(out)
}

/// Writes `rows` (the old ones and tonight's) as the table, in a transaction of its own.
pub fn write(writer: &Writer, rows: &[LogRow]) -> Result<(), LakeError> {
    let strs = |f: &dyn Fn(&LogRow) -> Option<&str>| {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let ints = |f: &dyn Fn(&LogRow) -> i64| {
        Arc::new(Int64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let times = |f: &dyn Fn(&LogRow) -> DateTime<Utc>| {
        Arc::new(
            TimestampMicrosecondArray::from(rows.iter().map(|r| micros(f(r))).collect::<Vec<_>>())
                .with_timezone("UTC"),
        )
    };
    let b = RecordBatch::try_new(
        crate::lake::schema::of(Table::PullLog),
        vec![
            strs(&|r| Some(&r.pull_id)),
            strs(&|r| Some(&r.provider)),
            strs(&|r| Some(&r.endpoint)),
            times(&|r| r.range_start),
            times(&|r| r.range_end),
            strs(&|r| Some(&r.status)),
            ints(&|r| r.pages),
            ints(&|r| r.bytes),
            ints(&|r| r.requests),
            ints(&|r| r.retries),
            strs(&|r| r.content_hash.as_deref()),
            strs(&|r| r.landing_path.as_deref()),
            strs(&|r| r.error.as_deref()),
            times(&|r| r.started_at),
            times(&|r| r.finished_at),
        ],
    )
    .expect("pull_log schema");
    writer.replace_table(Table::PullLog, &[b])
}

/// The earliest start of a window of `endpoint` whose latest attempt failed (no later pull
/// landed a window covering it): the next pull starts there at the latest.
pub fn first_unfinished(rows: &[LogRow], provider: &str, endpoint: &str) -> Option<DateTime<Utc>> {
    let of = |r: &&LogRow| r.provider == provider && r.endpoint == endpoint;
    rows.iter()
        .filter(of)
        .filter(|f| f.status != "complete")
        .filter(|f| {
            !rows.iter().filter(of).any(|c| {
                c.status == "complete"
                    && c.pull_id > f.pull_id
                    && c.range_start <= f.range_start
                    && c.range_end >= f.range_end
            })
        })
        .map(|f| f.range_start)
        .min()
}

/// How far `endpoint` of `provider` is pulled: from `since`, the end of the unbroken run of
/// complete windows (a failed window stops it, so the next night fetches it again).
pub fn pulled_through(
    rows: &[LogRow],
    provider: &str,
    endpoint: &str,
    since: DateTime<Utc>,
) -> DateTime<Utc> {
    let mut done: Vec<(DateTime<Utc>, DateTime<Utc>)> = rows
        .iter()
        .filter(|r| r.provider == provider && r.endpoint == endpoint && r.status == "complete")
        .map(|r| (r.range_start, r.range_end))
        .collect();
    done.sort();
    let mut cursor = since;
    for (s, e) in done {
        if s > cursor {
            break;
        }
        cursor = cursor.max(e);
    }
    cursor
}
