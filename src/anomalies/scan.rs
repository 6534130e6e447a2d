//! The one pass over `rated_usage` behind every series: each pricing part is read beside the
//! usage part it mirrors, row for row, column by column (projected Arrow batches through
//! `lake::io`, one part per thread), and summed per
//! business day × API key × workspace × model and per key × day × hour, without materialising
//! the bucket-level rows. `sql/anomaly_buckets.sql` is the same aggregation in portable SQL (a
//! test checks that both give the same sums, to the unit).
//!
//! Must not: detect or alert (that is `detect` and `anomalies`), price, or use polars.

/// foldhash, not SipHash: five map operations per usage row (measured: SipHash was a fifth of a
/// nightly run's CPU on 54 M rows).
pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::path::Path;

use arrow::array::{Array, AsArray, Decimal128Array};
use arrow::datatypes::TimestampMicrosecondType;
use chrono::NaiveDate;
use chrono_tz::Tz;

use super::{AnomalyError, local_day_hour};
use crate::lake::io as lio;
use crate::vocab::PricingStatus;

pub use crate::intern::{NONE, Strings};

/// (day, key, workspace, model) → cost, in lake units.
pub type Days = HashMap<(NaiveDate, u32, u32, u32), i128>;
/// (key, day, hour) → cost.
pub type Hours = HashMap<(u32, NaiveDate, u32), i128>;

/// The sums of one part (codes into its own `strings`).
#[derive(Debug, Default)]
pub struct Sums {
    pub strings: Strings,
    pub days: Days,
    pub hours: Hours,
    /// key code → name code, workspace code → name code (the last seen).
    pub key_names: HashMap<u32, u32>,
    pub ws_names: HashMap<u32, u32>,
}

/// Read from the usage part (all but the first as dictionaries).
const USAGE: [&str; 6] = [
    "bucket_start",
    "bucket_width",
    "api_key_id",
    "api_key_name",
    "workspace_id",
    "workspace_name",
];
/// Read from its pricing part (all but the last as dictionaries).
const PRICING: [&str; 3] = ["model_canonical", "pricing_status", "list_cost"];

fn column<'a, T: 'static>(
    b: &'a arrow::record_batch::RecordBatch,
    name: &str,
    path: &std::path::Path,
) -> Result<&'a T, AnomalyError> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            AnomalyError::Lake(lio::LakeError::Column {
                path: path.to_path_buf(),
                column: name.into(),
            })
        })
}

/// Sums one pricing part beside its usage part (priced rows only; UNPRICED usage has no cost
/// to compare).
pub fn part(path: &Path, usage: &Path, tz: Tz) -> Result<Sums, AnomalyError> {
    let mut s = Sums::default();
    // Buckets repeat across keys: each start is converted to the zone once.
    let mut at: HashMap<(i64, bool), (NaiveDate, Option<u32>)> = HashMap::default();
    let missing = |column: &str| {
        AnomalyError::Lake(lio::LakeError::Column {
            path: path.to_path_buf(),
            column: column.into(),
        })
    };
    let rows = lio::zip_rows(
        lio::read_batches_dictionary(usage, &USAGE, &USAGE[1..])?,
        lio::read_batches_dictionary(path, &PRICING, &PRICING[..2])?,
        (usage, path),
    );
    for pair in rows {
        let (u, p) = pair?;
        let start = u
            .column_by_name("bucket_start")
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or_else(|| missing("bucket_start"))?;
        let cost: &Decimal128Array = column(&p, "list_cost", path)?;
        // Text columns as codes (width and status interned too: a handful of values).
        let mut text = |b: &arrow::record_batch::RecordBatch, name: &str| {
            b.column_by_name(name)
                .and_then(|c| s.strings.codes(c.as_ref()))
                .ok_or_else(|| missing(name))
        };
        let (width, status) = (text(&u, "bucket_width")?, text(&p, "pricing_status")?);
        let mut cols: Vec<Vec<u32>> = USAGE[2..]
            .iter()
            .map(|c| text(&u, c))
            .collect::<Result<_, _>>()?;
        cols.push(text(&p, "model_canonical")?);
        let daily_code = s.strings.code_of("1d");
        let costed = [
            s.strings.code_of(PricingStatus::Priced.as_str()),
            s.strings.code_of(PricingStatus::ProviderList.as_str()),
        ];
        for i in 0..u.num_rows() {
            if !costed.contains(&Some(status[i])) || cost.is_null(i) {
                continue;
            }
            let daily = Some(width[i]) == daily_code;
            let us = start.value(i);
            let (d, h) = match at.get(&(us, daily)) {
                Some(v) => *v,
                None => {
                    let v = local_day_hour(us, daily, tz)
                        .ok_or_else(|| AnomalyError::Value(format!("bucket_start {us} µs")))?;
                    *at.entry((us, daily)).or_insert(v)
                }
            };
            let [k, kn, w, wn, m] = [0, 1, 2, 3, 4].map(|j| cols[j][i]);
            let c = cost.value(i);
            *s.days.entry((d, k, w, m)).or_default() += c;
            if k != NONE {
                if let Some(h) = h {
                    *s.hours.entry((k, d, h)).or_default() += c;
                }
                s.key_names.insert(k, kn);
            }
            s.ws_names.insert(w, wn);
        }
    }
    Ok(s)
}

/// Merges the parts' sums into the first (re-coding the others' strings).
pub fn merge(parts: Vec<Sums>) -> Sums {
    let mut it = parts.into_iter();
    let Some(mut all) = it.next() else {
        return Sums::default();
    };
    for p in it {
        let rc = all.strings.recode(&p.strings);
        for ((d, k, w, m), c) in p.days {
            *all.days.entry((d, rc(k), rc(w), rc(m))).or_default() += c;
        }
        for ((k, d, h), c) in p.hours {
            *all.hours.entry((rc(k), d, h)).or_default() += c;
        }
        for (k, n) in p.key_names {
            all.key_names.insert(rc(k), rc(n));
        }
        for (w, n) in p.ws_names {
            all.ws_names.insert(rc(w), rc(n));
        }
    }
    all
}
