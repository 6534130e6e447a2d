//! Report: the monthly chargeback — list cost and tokens by the dimensions a user picks.
//!
//! Owns: `sql/report.sql` and its parameters, team mapping from the config, presentation
//! rounding (largest remainder, `money`), the totals row and UNPRICED lines.
//! Must not: price (it reads `rated_usage`), or re-read provider files.

use polars::prelude::*;

use crate::config::Team;
use crate::lake::Layout;
use crate::money;
use crate::query::{self, Cell, Grid, QueryError};
use crate::rating;

pub const REPORT_SQL: &str = include_str!("../sql/report.sql");
pub const COMBINE_SQL: &str = include_str!("../sql/report_combine.sql");

/// A `--by` dimension and the columns it contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dim {
    Workspace,
    Model,
    ApiKey,
    ServiceTier,
    Day,
    Team,
}

impl Dim {
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Dim::Workspace => &["workspace_id", "workspace_name"],
            Dim::Model => &["model"],
            Dim::ApiKey => &["api_key_id", "api_key_name"],
            Dim::ServiceTier => &["service_tier"],
            Dim::Day => &["day"],
            Dim::Team => &["team"],
        }
    }
}

/// Token columns a narrow terminal may drop first.
pub const OPTIONAL_COLUMNS: [&str; 9] = [
    "list_cost_usd_exact",
    "web_search_requests",
    "cache_write_1h_tokens",
    "cache_write_5m_tokens",
    "cache_read_tokens",
    "workspace_id",
    "api_key_id",
    "uncached_input_tokens",
    "output_tokens",
];

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Polars(#[from] PolarsError),
    /// A configuration problem (teams) or a sum that cannot be held exactly.
    #[error("{0}")]
    Config(String),
}

fn team_frames(teams: &[Team]) -> Result<(DataFrame, DataFrame), ReportError> {
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut wss: Vec<(String, String)> = Vec::new();
    for t in teams {
        for k in &t.api_keys {
            if let Some((_, other)) = keys.iter().find(|(n, _)| n == k) {
                return Err(ReportError::Config(format!(
                    "API key {k:?} is in two teams ({other:?} and {:?}); a key pays to one team",
                    t.name
                )));
            }
            keys.push((k.clone(), t.name.clone()));
        }
        for w in &t.workspaces {
            if let Some((_, other)) = wss.iter().find(|(n, _)| n == w) {
                return Err(ReportError::Config(format!(
                    "workspace {w:?} is in two teams ({other:?} and {:?})",
                    t.name
                )));
            }
            wss.push((w.clone(), t.name.clone()));
        }
    }
    // polars 0.55.2 drops left rows with a null key (Console usage has no key name) when the
    // right side of a LEFT JOIN is empty; a sentinel row no real name can equal avoids that.
    let sentinel = ("\u{0}no team\u{0}".to_string(), "(unassigned)".to_string());
    keys.push(sentinel.clone());
    wss.push(sentinel);
    let frame = |v: &[(String, String)]| -> PolarsResult<DataFrame> {
        df!(
            "name" => v.iter().map(|x| x.0.clone()).collect::<Vec<_>>(),
            "team" => v.iter().map(|x| x.1.clone()).collect::<Vec<_>>()
        )
    };
    Ok((frame(&keys)?, frame(&wss)?))
}

/// The query text for a month and dimensions (also what `--show-sql` prints).
pub fn sql_for(month: &str, dims: &[Dim]) -> String {
    let cols: Vec<&str> = dims
        .iter()
        .flat_map(|d| d.columns().iter().copied())
        .collect();
    REPORT_SQL
        .replace("{{month}}", month)
        .replace("{{dims}}", &cols.join(", "))
}

/// The combining query for the dimensions.
pub fn combine_sql_for(dims: &[Dim]) -> String {
    let cols: Vec<&str> = dims
        .iter()
        .flat_map(|d| d.columns().iter().copied())
        .collect();
    COMBINE_SQL.replace("{{dims}}", &cols.join(", "))
}

/// Result of a report: the grid to render and whether anything is unpriced.
pub struct Report {
    pub grid: Grid,
    pub unpriced_rows: usize,
    pub total_cents: i128,
}

/// The columns of a report for `dims`, before `list_cost_usd` is added.
fn columns(dims: &[Dim]) -> Vec<String> {
    let mut c: Vec<String> = dims
        .iter()
        .flat_map(|d| d.columns().iter().map(|s| s.to_string()))
        .collect();
    c.push("pricing_status".into());
    c.extend(
        crate::lake::schema::TOKEN_COLUMNS
            .iter()
            .map(|s| s.to_string()),
    );
    c.push("list_cost_usd_exact".into());
    c
}

/// Runs the report over `rated_usage` (which must be current: see `rating::ensure_rated`).
/// Workspace and key names come from the latest lists in the lake, so a list that arrived
/// after the usage still names every line.
pub fn report(
    layout: &Layout,
    month: &str,
    dims: &[Dim],
    teams: &[Team],
) -> Result<Report, ReportError> {
    // Only the month's partition: other months are never read.
    let files = query::table_files_in(
        layout,
        &format!("{}/provider=anthropic/month={month}", rating::RATED_DIR),
    )?;
    let grid = if files.is_empty() {
        Grid {
            columns: columns(dims),
            ..Grid::default()
        }
    } else {
        // sql/report.sql per rated part, then sql/report_combine.sql over the partial sums:
        // memory follows the size of a part, not of the month.
        let (k, w) = team_frames(teams)?;
        let (wn, kn) = query::name_frames(layout)?;
        let sql = sql_for(month, dims);
        let mut partials = Vec::with_capacity(files.len());
        for f in &files {
            let mut ctx = polars::sql::SQLContext::new();
            ctx.register("rated_usage", query::scan_files(std::slice::from_ref(f))?);
            ctx.register("team_keys", k.clone().lazy());
            ctx.register("team_workspaces", w.clone().lazy());
            ctx.register("workspace_names", wn.clone().lazy());
            ctx.register("api_key_names", kn.clone().lazy());
            partials.push(ctx.execute(&sql)?.collect()?.lazy());
        }
        let mut ctx = polars::sql::SQLContext::new();
        ctx.register("partials", concat(partials, UnionArgs::default())?);
        let df = ctx.execute(&combine_sql_for(dims))?.collect()?;
        Grid::from_df(&df)?
    };
    finish(grid, dims)
}

/// A sum that says so when it cannot be held, instead of wrapping.
fn checked_sum(vals: impl Iterator<Item = i128>, what: &str) -> Result<i128, ReportError> {
    let mut t: i128 = 0;
    for v in vals {
        t = t
            .checked_add(v)
            .ok_or_else(|| ReportError::Config(format!("the sum of {what} overflows 128 bits")))?;
    }
    Ok(t)
}

/// Adds `list_cost_usd` (rounded, adding up) and the totals row; marks UNPRICED lines.
fn finish(mut g: Grid, dims: &[Dim]) -> Result<Report, ReportError> {
    let status = g.col("pricing_status");
    let exact = g.col("list_cost_usd_exact");
    let mut amounts = Vec::new();
    let mut idx = Vec::new();
    let mut unpriced = 0;
    for (i, r) in g.rows.iter().enumerate() {
        let priced = status.is_some_and(|s| r[s] == Cell::Text("priced".into()));
        if priced {
            let v = match exact.map(|e| &r[e]) {
                Some(Cell::Dec(v, s)) => money::to_lake_scale(*v, *s).ok_or_else(|| {
                    ReportError::Config(format!(
                        "sum {v}e-{s} cannot be held exactly at 12 decimals"
                    ))
                })?,
                Some(Cell::Int(v)) => money::to_lake_scale(*v, 0).ok_or_else(|| {
                    ReportError::Config(format!("sum {v} cannot be held at 12 decimals"))
                })?,
                other => {
                    return Err(ReportError::Config(format!(
                        "a priced line has list cost {other:?}: expected an exact decimal \
                         (rated_usage written by another version? run `tokenledger rate`)"
                    )));
                }
            };
            amounts.push(v);
            idx.push(i);
        } else {
            unpriced += 1;
        }
    }
    let total_exact = checked_sum(amounts.iter().copied(), "rated_usage.list_cost")?;
    let cents = money::allocate_cents(&amounts);
    let total_cents: i128 = cents.iter().sum();
    let mut rounded = vec![Cell::Null; g.rows.len()];
    for (k, &i) in idx.iter().enumerate() {
        rounded[i] = Cell::Dec(cents[k], 2);
    }
    let ex = exact.unwrap_or(g.columns.len());
    for (i, r) in g.rows.iter_mut().enumerate() {
        if status.is_some_and(|s| r[s] != Cell::Text("priced".into())) {
            r[ex] = Cell::Null;
            r.insert(ex, Cell::Text("UNPRICED".into()));
        } else {
            r.insert(ex, rounded[i].clone());
        }
    }
    g.columns.insert(ex, "list_cost_usd".into());
    // Totals row: tokens summed over every line (priced or not), cost over priced lines.
    let ndims: usize = dims.iter().map(|d| d.columns().len()).sum();
    let mut footer = vec![Cell::Null; g.columns.len()];
    if !g.columns.is_empty() {
        footer[0] = Cell::Text("TOTAL".into());
    }
    for (c, name) in g.columns.iter().enumerate().skip(ndims) {
        if crate::lake::schema::TOKEN_COLUMNS.contains(&name.as_str()) {
            let mut vals = Vec::with_capacity(g.rows.len());
            for r in &g.rows {
                match &r[c] {
                    Cell::Int(v) => vals.push(*v),
                    Cell::Null => {}
                    other => {
                        return Err(ReportError::Config(format!(
                            "column {name} holds {other:?}, not a token count"
                        )));
                    }
                }
            }
            footer[c] = Cell::Int(checked_sum(
                vals.into_iter(),
                &format!("rated_usage.{name}"),
            )?);
        }
    }
    footer[ex] = Cell::Dec(total_cents, 2);
    footer[ex + 1] = Cell::Dec(total_exact, crate::lake::MONEY_SCALE as usize);
    if unpriced > 0 {
        footer[ndims] = Cell::Text(format!("{unpriced} UNPRICED"));
    }
    g.footer = Some(footer);
    Ok(Report {
        grid: g,
        unpriced_rows: unpriced,
        total_cents,
    })
}
