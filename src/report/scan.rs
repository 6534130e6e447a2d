//! The chargeback's one pass over `rated_usage`: each rated part of the three partitions a
//! business month touches is read column by column (projected Arrow batches, text as
//! dictionary codes, one part per thread) and summed per combination of the `--by`
//! dimensions, with no row materialised and no join per row: names and teams are resolved once
//! per distinct (key, workspace) pair. `sql/report.sql` + `sql/report_combine.sql` are the
//! same computation in SQL, the one analysts run; a test checks both give the same lines, to
//! the unit, for every dimension.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, Decimal128Array, Int64Array};
use arrow::datatypes::Date32Type;

use super::{Dim, Line, ReportError, TeamRow, UNALLOCATED};
use crate::intern::{NONE, Strings};
use crate::lake::io::{self as lio, LakeError};
use crate::money::Money;
use crate::vocab::{COUNT_COLUMNS, Month, PricingStatus};

const TEXT: [&str; 8] = [
    "business_month",
    "workspace_id",
    "workspace_name",
    "api_key_id",
    "api_key_name",
    "model_canonical",
    "service_tier",
    "pricing_status",
];

/// What a line is keyed by: one code per grouping column (`NONE` where the dimension is not
/// asked for), the day as days since 1970, the status.
type Key = ([u32; 7], i32, u32);

/// Sums of one line: the six counts, the list cost (priced rows), and whether any row had one.
#[derive(Default, Clone, Copy)]
struct Acc {
    counts: [i128; 6],
    cost: i128,
}

/// The names and teams the lake's latest lists and the config give.
pub struct Lookup {
    /// workspace id → name, API key id → name (latest lists).
    pub workspace_names: HashMap<String, String>,
    pub key_names: HashMap<String, String>,
    /// kind (`api_key` | `workspace`) × id or name → team.
    pub teams: HashMap<(&'static str, String), String>,
}

impl Lookup {
    pub fn new(
        workspace_names: HashMap<String, String>,
        key_names: HashMap<String, String>,
        rows: &[TeamRow],
    ) -> Lookup {
        Lookup {
            workspace_names,
            key_names,
            teams: rows
                .iter()
                .map(|r| ((r.kind, r.name.clone()), r.team.clone()))
                .collect(),
        }
    }
    /// (workspace name, key name, team) of a row, as `sql/report.sql` resolves them.
    fn resolve(
        &self,
        ws: Option<&str>,
        ws_name: Option<&str>,
        key: Option<&str>,
        key_name: Option<&str>,
    ) -> (Option<String>, String, String) {
        let wn = ws
            .and_then(|w| self.workspace_names.get(w).cloned())
            .or(ws_name.map(str::to_string));
        let kn = key
            .and_then(|k| self.key_names.get(k).cloned())
            .or(key_name.map(str::to_string));
        let team = |kind: &'static str, v: Option<&str>| {
            v.and_then(|v| self.teams.get(&(kind, v.to_string())).cloned())
        };
        let t = team("api_key", key)
            .or_else(|| team("api_key", kn.as_deref()))
            .or_else(|| team("workspace", ws))
            .or_else(|| team("workspace", wn.as_deref()))
            .unwrap_or_else(|| UNALLOCATED.to_string());
        let kn = kn.unwrap_or_else(|| "(Console, no key)".to_string());
        (wn, kn, t)
    }
}

/// The lines of one part: strings, and key → sums.
struct Part {
    strings: Strings,
    lines: HashMap<Key, Acc>,
}

/// Which grouping columns the dimensions ask for: workspace id, workspace name, model, key id,
/// key name, tier, team (the day is the key's second field).
fn wanted(dims: &[Dim]) -> ([bool; 7], bool) {
    let mut w = [false; 7];
    let mut day = false;
    for d in dims {
        match d {
            Dim::Workspace => (w[0], w[1]) = (true, true),
            Dim::Model => w[2] = true,
            Dim::ApiKey => (w[3], w[4]) = (true, true),
            Dim::ServiceTier => w[5] = true,
            Dim::Team => w[6] = true,
            Dim::Day => day = true,
        }
    }
    (w, day)
}

fn missing(path: &Path, column: &str) -> ReportError {
    ReportError::Lake(LakeError::Column {
        path: path.to_path_buf(),
        column: column.into(),
    })
}

fn part(path: &Path, month: &str, dims: &[Dim], look: &Lookup) -> Result<Part, ReportError> {
    let (want, want_day) = wanted(dims);
    let mut p = Part {
        strings: Strings::default(),
        lines: HashMap::new(),
    };
    // (key id, key name, workspace id, workspace name) codes → (ws name, key name, team) codes.
    let mut resolved: HashMap<[u32; 4], [u32; 3]> = HashMap::new();
    let mut columns: Vec<&str> = TEXT.to_vec();
    columns.extend(COUNT_COLUMNS);
    columns.extend(["business_day", "list_cost"]);
    for b in lio::read_batches_dictionary(path, &columns, &TEXT)? {
        let b = b?;
        let text: Vec<Vec<u32>> = TEXT
            .iter()
            .map(|c| {
                b.column_by_name(c)
                    .and_then(|a| p.strings.codes(a.as_ref()))
                    .ok_or_else(|| missing(path, c))
            })
            .collect::<Result<_, _>>()?;
        let counts: Vec<&Int64Array> = COUNT_COLUMNS
            .iter()
            .map(|c| {
                b.column_by_name(c)
                    .and_then(|a| a.as_any().downcast_ref::<Int64Array>())
                    .ok_or_else(|| missing(path, c))
            })
            .collect::<Result<_, _>>()?;
        let day = b
            .column_by_name("business_day")
            .and_then(|a| a.as_primitive_opt::<Date32Type>())
            .ok_or_else(|| missing(path, "business_day"))?;
        let cost = b
            .column_by_name("list_cost")
            .and_then(|a| a.as_any().downcast_ref::<Decimal128Array>())
            .ok_or_else(|| missing(path, "list_cost"))?;
        let Some(this_month) = p.strings.code_of(month) else {
            continue; // no row of the month in this batch
        };
        for (i, &m) in text[0].iter().enumerate() {
            if m != this_month {
                continue;
            }
            let [ws, wsn, key, keyn] = [text[1][i], text[2][i], text[3][i], text[4][i]];
            let names = match resolved.get(&[key, keyn, ws, wsn]) {
                Some(n) => *n,
                None => {
                    let s = &p.strings;
                    let (wn, kn, team) =
                        look.resolve(s.get(ws), s.get(wsn), s.get(key), s.get(keyn));
                    let n = [
                        wn.map_or(NONE, |w| p.strings.intern(&w)),
                        p.strings.intern(&kn),
                        p.strings.intern(&team),
                    ];
                    resolved.insert([key, keyn, ws, wsn], n);
                    n
                }
            };
            let all = [
                ws, names[0], text[5][i], key, names[1], text[6][i], names[2],
            ];
            let k: [u32; 7] = std::array::from_fn(|j| if want[j] { all[j] } else { NONE });
            let d = if want_day { day.value(i) } else { 0 };
            let acc = p.lines.entry((k, d, text[7][i])).or_default();
            for (c, col) in acc.counts.iter_mut().zip(&counts) {
                *c += i128::from(col.value(i));
            }
            if cost.is_valid(i) {
                acc.cost += cost.value(i);
            }
        }
    }
    Ok(p)
}

/// The lines of `month` over `files`, in the order `sql/report.sql` sorts them in polars (by
/// the dimension columns, NULL last, then the status).
pub fn lines(
    files: &[PathBuf],
    month: Month,
    dims: &[Dim],
    look: &Lookup,
    jobs: usize,
) -> Result<Vec<Line>, ReportError> {
    let key = month.key();
    let parts = crate::par::map(files, jobs, |f| part(f, &key, dims, look))
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    // Merge by text, not by code (each part has its own strings).
    let mut merged: HashMap<(Vec<Option<String>>, String), Acc> = HashMap::new();
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
    for p in parts {
        for ((k, d, status), acc) in p.lines {
            let text = |c: u32| p.strings.get(c).map(str::to_string);
            let mut dims_text: Vec<Option<String>> = Vec::new();
            for d_ in dims {
                match d_ {
                    Dim::Workspace => dims_text.extend([text(k[0]), text(k[1])]),
                    Dim::Model => dims_text.push(text(k[2])),
                    Dim::ApiKey => dims_text.extend([text(k[3]), text(k[4])]),
                    Dim::ServiceTier => dims_text.push(text(k[5])),
                    Dim::Team => dims_text.push(text(k[6])),
                    Dim::Day => dims_text.push(Some(
                        (epoch + chrono::TimeDelta::days(d.into())).to_string(),
                    )),
                }
            }
            let e = merged
                .entry((dims_text, text(status).unwrap_or_default()))
                .or_default();
            for (a, b) in e.counts.iter_mut().zip(acc.counts) {
                *a = a
                    .checked_add(b)
                    .ok_or_else(|| ReportError::Overflow("rated_usage counts".into()))?;
            }
            e.cost = e
                .cost
                .checked_add(acc.cost)
                .ok_or_else(|| ReportError::Overflow("rated_usage.list_cost".into()))?;
        }
    }
    let mut out: Vec<Line> = merged
        .into_iter()
        .map(|((dims, status), acc)| {
            let status = PricingStatus::parse(&status).ok_or(ReportError::Status(status))?;
            Ok(Line {
                dims,
                status,
                counts: acc.counts,
                list_cost: (status == PricingStatus::Priced).then(|| Money::from_units(acc.cost)),
            })
        })
        .collect::<Result<_, ReportError>>()?;
    // NULL sorts last, as polars and DuckDB sort ascending (Spark puts it first).
    let nulls_last = |x: &Option<String>, y: &Option<String>| match (x, y) {
        (Some(x), Some(y)) => x.cmp(y),
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
    };
    out.sort_by(|a, b| {
        a.dims
            .iter()
            .zip(&b.dims)
            .map(|(x, y)| nulls_last(x, y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.status.as_str().cmp(b.status.as_str()))
    });
    Ok(out)
}
