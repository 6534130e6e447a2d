//! The export's one pass over the month's usage, the same sums as `sql/focus_usage.sql`: each
//! pricing part read beside the usage part it mirrors, row for row, column by column
//! (projected Arrow batches through `lake::io`, text as dictionary codes), summed per UTC day ×
//! provider × workspace × key × model × tier × context × geo × unit × status. Memory follows the
//! groups, not the rows (polars' grouping of the SQL by twelve text keys held ~120 bytes per
//! row: 620 MiB for a dense month). Names and teams are resolved once per group, as the SQL
//! does; a test checks both give the same groups, to the unit.
//!
//! Must not: price, write, or use polars.

use std::path::Path;

use arrow::array::{Array, AsArray, Decimal128Array, Int64Array};
use arrow::datatypes::Date32Type;

use super::ExportError;
use crate::intern::{NONE, Strings};
use crate::lake::io as lio;

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Read from the usage part as dictionaries.
const USAGE_TEXT: [&str; 10] = [
    "provider",
    "workspace_id",
    "workspace_name",
    "api_key_id",
    "api_key_name",
    "service_tier",
    "context_window",
    "inference_geo",
    "unit",
    "ingest_id",
];
/// The sums, in `focus::Group` charge order: token classes, web search requests, the unit.
pub const COUNTS: [&str; 9] = [
    "uncached_input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
    "output_tokens",
    "cache_write_30m_tokens",
    "cache_write_12h_tokens",
    "web_search_requests",
    "unit_quantity",
];
pub const COSTS: [&str; 9] = [
    "cost_uncached_input",
    "cost_cache_write_5m",
    "cost_cache_write_1h",
    "cost_cache_read",
    "cost_output",
    "cost_cache_write_30m",
    "cost_cache_write_12h",
    "cost_web_search",
    "cost_unit",
];
const PRICING_TEXT: [&str; 2] = ["model_canonical", "pricing_status"];

/// A group's key: provider, workspace id and name, key id and name, tier, context, geo, unit,
/// model, status (codes), and the UTC day (days since 1970).
pub type Key = ([u32; 11], i32);

/// A group's sums.
#[derive(Debug, Clone, Default)]
pub struct Sums {
    pub counts: [i128; 9],
    /// `None` once a row of the group had no cost (UNPRICED).
    pub costs: [Option<i128>; 9],
    /// The earliest and the latest ingest id (codes).
    pub first_ingest: u32,
    pub last_ingest: u32,
}

/// The month's groups, with the strings their codes point into.
#[derive(Default)]
pub struct Groups {
    pub strings: Strings,
    pub groups: HashMap<Key, Sums>,
}

fn missing(path: &Path, column: &str) -> ExportError {
    ExportError::Lake(lio::LakeError::Column {
        path: path.to_path_buf(),
        column: column.into(),
    })
}

/// The columns `names` of a batch, each as the array type `T`.
fn typed<'a, T: 'static>(
    b: &'a arrow::record_batch::RecordBatch,
    names: &[&str],
    path: &Path,
) -> Result<Vec<&'a T>, ExportError> {
    names
        .iter()
        .map(|c| {
            b.column_by_name(c)
                .and_then(|a| a.as_any().downcast_ref::<T>())
                .ok_or_else(|| missing(path, c))
        })
        .collect()
}

/// Adds one pricing part (beside its usage part) to `g`.
// Row `i` is read across a dozen columns at once: an index, not an iterator, says so.
#[allow(clippy::needless_range_loop)]
pub fn part(g: &mut Groups, pricing: &Path, usage: &Path) -> Result<(), ExportError> {
    let usage_cols: Vec<&str> = USAGE_TEXT.iter().chain(COUNTS.iter()).copied().collect();
    let pricing_cols: Vec<&str> = PRICING_TEXT
        .iter()
        .chain(["utc_day"].iter())
        .chain(COSTS.iter())
        .copied()
        .collect();
    let rows = lio::zip_rows(
        lio::read_batches_dictionary(usage, &usage_cols, &USAGE_TEXT)?,
        lio::read_batches_dictionary(pricing, &pricing_cols, &PRICING_TEXT)?,
        (usage, pricing),
    );
    for pair in rows {
        let (u, p) = pair?;
        let mut text = |b: &arrow::record_batch::RecordBatch, name: &str, path: &Path| {
            b.column_by_name(name)
                .and_then(|c| g.strings.codes(c.as_ref()))
                .ok_or_else(|| missing(path, name))
        };
        let mut codes: Vec<Vec<u32>> = Vec::with_capacity(12);
        for c in USAGE_TEXT {
            codes.push(text(&u, c, usage)?);
        }
        for c in PRICING_TEXT {
            codes.push(text(&p, c, pricing)?);
        }
        let day = p
            .column_by_name("utc_day")
            .and_then(|c| c.as_primitive_opt::<Date32Type>())
            .ok_or_else(|| missing(pricing, "utc_day"))?;
        let counts: Vec<&Int64Array> = typed(&u, &COUNTS, usage)?;
        let costs: Vec<&Decimal128Array> = typed(&p, &COSTS, pricing)?;
        for i in 0..u.num_rows() {
            // provider, ws, ws name, key, key name, tier, ctx, geo, unit | model, status
            let k: [u32; 11] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11].map(|j| codes[j][i]);
            let d = if day.is_null(i) {
                i32::MIN
            } else {
                day.value(i)
            };
            let ingest = codes[9][i];
            let fresh = || Sums {
                first_ingest: NONE,
                last_ingest: NONE,
                ..Sums::default()
            };
            let s = g.groups.entry((k, d)).or_insert_with(fresh);
            for j in 0..9 {
                s.counts[j] += i128::from(counts[j].value(i));
                // As SQL's SUM: nulls are skipped, null only when every row's is.
                if !costs[j].is_null(i) {
                    s.costs[j] = Some(s.costs[j].unwrap_or(0) + costs[j].value(i));
                }
            }
            let text = |c: u32| g.strings.get(c);
            // One ingest loads many rows: compare the text only when the code differs.
            if s.first_ingest == NONE
                || (ingest != s.first_ingest && text(ingest) < text(s.first_ingest))
            {
                s.first_ingest = ingest;
            }
            if s.last_ingest == NONE
                || (ingest != s.last_ingest && text(ingest) > text(s.last_ingest))
            {
                s.last_ingest = ingest;
            }
        }
    }
    Ok(())
}
