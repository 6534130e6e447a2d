//! Reconcile: our list cost against the provider's cost report, line by line, with causes.
//!
//! Owns: matching per day × workspace × model × charge (token class, web search, code
//! execution, session usage), the tolerance, and naming the cause of every difference.
//! Must not: price (reads `rated_usage`) or change the lake.

use std::collections::{BTreeMap, BTreeSet};

use polars::prelude::*;
use serde::Serialize;

use crate::lake::{Layout, MONEY_SCALE, Table};
use crate::money;
use crate::pricing::canonical_model;
use crate::query::{self, Cell, Grid, QueryError};
use crate::rating;

pub const OURS_SQL: &str = include_str!("../sql/reconcile_ours.sql");
pub const PROVIDER_SQL: &str = include_str!("../sql/reconcile_provider.sql");
pub const COVERAGE_SQL: &str = include_str!("../sql/reconcile_coverage.sql");

/// Our charge columns and the cost report's name for each.
const CHARGES: [(&str, &str); 6] = [
    ("uncached_input_tokens", "uncached_input_tokens"),
    ("cache_write_5m", "cache_creation.ephemeral_5m_input_tokens"),
    ("cache_write_1h", "cache_creation.ephemeral_1h_input_tokens"),
    ("cache_read_input_tokens", "cache_read_input_tokens"),
    ("output_tokens", "output_tokens"),
    ("web_search", "web_search"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Matched,
    Explained,
    Unexplained,
}

#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub day: String,
    pub workspace_id: Option<String>,
    pub workspace_name: Option<String>,
    pub model: Option<String>,
    pub charge: String,
    /// Fixed point, scale 12.
    #[serde(skip)]
    pub ours: i128,
    #[serde(skip)]
    pub provider: i128,
    pub ours_usd: String,
    pub provider_usd: String,
    pub difference_usd: String,
    pub status: Status,
    pub cause: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceTotal {
    /// Fixed point (scale 12): ours, provider, unexplained.
    #[serde(skip)]
    pub exact: [i128; 3],
    pub workspace_id: Option<String>,
    pub workspace_name: Option<String>,
    pub ours_usd: String,
    pub provider_usd: String,
    pub difference_usd: String,
    pub unexplained_usd: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reconciliation {
    pub month: String,
    pub tolerance_usd: String,
    pub lines_matched: usize,
    pub lines_explained: usize,
    pub lines_unexplained: usize,
    pub ours_usd: String,
    pub provider_usd: String,
    pub difference_usd: String,
    pub unexplained_usd: String,
    pub per_workspace: Vec<WorkspaceTotal>,
    /// Every line that did not match (matched lines are only counted).
    pub lines: Vec<Line>,
}

impl Reconciliation {
    pub fn exit_code(&self) -> i32 {
        if self.lines_unexplained > 0 {
            crate::exit::QUARANTINED
        } else {
            crate::exit::OK
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Polars(#[from] PolarsError),
    #[error("amount {0} cannot be held exactly at 12 decimals")]
    Inexact(String),
    #[error("column {0} of the reconciliation query is {1}, not a number")]
    NotANumber(&'static str, String),
    #[error("the sum of {0} overflows 128 bits; no total is printed rather than a wrong one")]
    Overflow(&'static str),
}

/// `acc + v`, or an error naming what was summed.
fn add(acc: &mut i128, v: i128, what: &'static str) -> Result<(), ReconcileError> {
    *acc = acc.checked_add(v).ok_or(ReconcileError::Overflow(what))?;
    Ok(())
}

type Key = (String, Option<String>, Option<String>, String); // day, workspace_id, model, charge

#[derive(Default, Clone)]
struct Acc {
    ours: i128,
    priority: i128,
    unpriced_units: i128,
    provider: i128,
    workspace_name: Option<String>,
}

fn text(c: &Cell) -> Option<String> {
    match c {
        Cell::Text(s) => Some(s.clone()),
        _ => None,
    }
}
/// A money cell at the lake's scale, exactly (an error rather than a rounded value).
fn fixed(c: &Cell, what: &'static str) -> Result<i128, ReconcileError> {
    match c {
        Cell::Dec(v, s) => {
            money::to_lake_scale(*v, *s).ok_or_else(|| ReconcileError::Inexact(format!("{v}e-{s}")))
        }
        Cell::Int(v) => {
            money::to_lake_scale(*v, 0).ok_or_else(|| ReconcileError::Inexact(v.to_string()))
        }
        other => Err(ReconcileError::NotANumber(what, format!("{other:?}"))),
    }
}
fn int(c: &Cell, what: &'static str) -> Result<i128, ReconcileError> {
    match c {
        Cell::Int(v) => Ok(*v),
        other => Err(ReconcileError::NotANumber(what, format!("{other:?}"))),
    }
}

fn run(ctx: &mut polars::sql::SQLContext, sql: &str, month: &str) -> Result<Grid, ReconcileError> {
    let df = ctx.execute(&sql.replace("{{month}}", month))?.collect()?;
    Ok(Grid::from_df(&df)?)
}

/// Reconciles one month. `tolerance` is in the lake's fixed point (scale 12).
/// Whether the provider's cost report covers any day of `month`.
pub fn has_cost_report(layout: &Layout, month: &str) -> Result<bool, ReconcileError> {
    Ok(layout
        .month_file(Table::CostCoverage, "anthropic", month)
        .exists())
}

pub fn reconcile(
    layout: &Layout,
    month: &str,
    tolerance: i128,
) -> Result<Reconciliation, ReconcileError> {
    let mut ctx = polars::sql::SQLContext::new();
    let mut acc: BTreeMap<Key, Acc> = BTreeMap::new();
    let rated = query::table_files_in(
        layout,
        &format!("{}/provider=anthropic/month={month}", rating::RATED_DIR),
    )?;
    // Once per rated part: the sums are added up here, so memory follows a part, not the month.
    for part in &rated {
        ctx.register(
            "rated_usage",
            query::scan_files(std::slice::from_ref(part))?,
        );
        let g = run(&mut ctx, OURS_SQL, month)?;
        let c = |n: &str| g.col(n).expect("column of reconcile_ours.sql");
        for r in &g.rows {
            let day = text(&r[c("day")]).unwrap_or_default();
            let ws = text(&r[c("workspace_id")]);
            let model = text(&r[c("model")]);
            let priced = text(&r[c("pricing_status")]).as_deref() == Some("priced");
            let tier = text(&r[c("service_tier")]);
            let is_priority = matches!(tier.as_deref(), Some("priority" | "priority_on_demand"));
            for (col, charge) in CHARGES {
                let m = if charge == "web_search" {
                    None
                } else {
                    model.clone()
                };
                let e = acc
                    .entry((day.clone(), ws.clone(), m, charge.to_string()))
                    .or_default();
                e.workspace_name = text(&r[c("workspace_name")]);
                if priced {
                    let v = fixed(&r[c(col)], "rated_usage cost")?;
                    add(&mut e.ours, v, "rated_usage cost")?;
                    if is_priority {
                        add(&mut e.priority, v, "rated_usage cost")?;
                    }
                } else {
                    let units = if charge == "web_search" {
                        int(&r[c("web_search_requests")], "web_search_requests")?
                    } else {
                        int(&r[c("tokens")], "tokens")?
                    };
                    add(&mut e.unpriced_units, units, "unpriced token counts")?;
                }
            }
        }
    }
    if let Some(lf) = query::scan(layout, Table::Cost)? {
        ctx.register("cost", lf);
        let g = run(&mut ctx, PROVIDER_SQL, month)?;
        let c = |n: &str| g.col(n).expect("column of reconcile_provider.sql");
        for r in &g.rows {
            let cost_type = text(&r[c("cost_type")]).unwrap_or_default();
            let charge = match cost_type.as_str() {
                "tokens" => text(&r[c("token_type")]).unwrap_or_else(|| "tokens".into()),
                other => other.to_string(),
            };
            let model = if cost_type == "tokens" {
                text(&r[c("model")]).map(|m| canonical_model(&m))
            } else {
                None
            };
            let e = acc
                .entry((
                    text(&r[c("day")]).unwrap_or_default(),
                    text(&r[c("workspace_id")]),
                    model,
                    charge,
                ))
                .or_default();
            add(
                &mut e.provider,
                fixed(&r[c("amount")], "cost.amount")?,
                "cost.amount",
            )?;
            if e.workspace_name.is_none() {
                e.workspace_name = text(&r[c("workspace_name")]);
            }
        }
    }
    let mut covered: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let sides = query::statements(COVERAGE_SQL);
    for ((side, table), sql) in [
        ("usage", Table::UsageCoverage),
        ("cost", Table::CostCoverage),
    ]
    .into_iter()
    .zip(&sides)
    {
        if let Some(lf) = query::scan(layout, table)? {
            ctx.register(table.dir_name(), lf);
            for r in run(&mut ctx, sql, month)?.rows {
                covered
                    .entry(side)
                    .or_default()
                    .insert(text(&r[0]).unwrap_or_default());
            }
        }
    }
    let has_day = |side: &str, d: &str| covered.get(side).is_some_and(|s| s.contains(d));
    // Names from the latest workspace list (a list ingested after the data still names it).
    let names = workspace_names(layout)?;

    let mut lines = Vec::new();
    let (mut matched, mut explained, mut unexplained) = (0, 0, 0);
    let mut per_ws: BTreeMap<Option<String>, (Option<String>, i128, i128, i128)> = BTreeMap::new();
    let (mut tot_ours, mut tot_prov, mut tot_unexpl) = (0i128, 0i128, 0i128);
    for ((day, ws, model, charge), a) in acc {
        if a.ours == 0 && a.provider == 0 && a.unpriced_units == 0 {
            continue; // nothing on either side (e.g. a token class the row did not use)
        }
        let diff = a
            .ours
            .checked_sub(a.provider)
            .ok_or(ReconcileError::Overflow("difference"))?;
        let name = ws
            .as_ref()
            .and_then(|id| names.get(id).cloned())
            .or(a.workspace_name.clone());
        let w = per_ws.entry(ws.clone()).or_insert((name.clone(), 0, 0, 0));
        add(&mut w.1, a.ours, "rated_usage cost")?;
        add(&mut w.2, a.provider, "cost.amount")?;
        add(&mut tot_ours, a.ours, "rated_usage cost")?;
        add(&mut tot_prov, a.provider, "cost.amount")?;
        let (status, cause) = if diff.abs() <= tolerance && a.unpriced_units == 0 {
            (Status::Matched, String::new())
        } else if a.unpriced_units > 0 {
            (
                Status::Explained,
                format!(
                    "unpriced model: {} unit(s) with no list price in force (add a price override)",
                    a.unpriced_units
                ),
            )
        } else if a.ours == 0 && (charge == "code_execution" || charge == "session_usage") {
            (
                Status::Explained,
                format!(
                    "only in the cost report: {} is not in the usage export",
                    charge.replace('_', " ")
                ),
            )
        } else if a.priority != 0 && (diff - a.priority).abs() <= tolerance {
            (
                Status::Explained,
                "priority tier: rated at standard list here; the cost report omits Priority Tier"
                    .into(),
            )
        } else if a.provider == 0 && !has_day("cost", &day) {
            (
                Status::Explained,
                "no cost report for this day (missing on the provider side)".into(),
            )
        } else if a.ours == 0 && !has_day("usage", &day) {
            (
                Status::Explained,
                "no usage export for this day (missing on our side)".into(),
            )
        } else {
            (Status::Unexplained, "unexplained".into())
        };
        match status {
            Status::Matched => {
                matched += 1;
                continue;
            }
            Status::Explained => explained += 1,
            Status::Unexplained => {
                unexplained += 1;
                add(&mut w.3, diff, "difference")?;
                add(&mut tot_unexpl, diff, "difference")?;
            }
        }
        lines.push(Line {
            day,
            workspace_id: ws,
            workspace_name: name,
            model,
            charge,
            ours: a.ours,
            provider: a.provider,
            ours_usd: money::exact(a.ours),
            provider_usd: money::exact(a.provider),
            difference_usd: money::exact(diff),
            status,
            cause,
        });
    }
    Ok(Reconciliation {
        month: month.to_string(),
        tolerance_usd: money::exact(tolerance),
        lines_matched: matched,
        lines_explained: explained,
        lines_unexplained: unexplained,
        ours_usd: money::exact(tot_ours),
        provider_usd: money::exact(tot_prov),
        difference_usd: money::exact(
            tot_ours
                .checked_sub(tot_prov)
                .ok_or(ReconcileError::Overflow("difference"))?,
        ),
        unexplained_usd: money::exact(tot_unexpl),
        per_workspace: per_ws
            .into_iter()
            .map(|(id, (name, o, p, u))| WorkspaceTotal {
                exact: [o, p, u],
                workspace_id: id,
                workspace_name: name,
                ours_usd: money::exact(o),
                provider_usd: money::exact(p),
                difference_usd: money::exact(o - p),
                unexplained_usd: money::exact(u),
            })
            .collect(),
        lines,
    })
}

fn workspace_names(
    layout: &Layout,
) -> Result<std::collections::HashMap<String, String>, ReconcileError> {
    let (ws, _) = query::name_frames(layout)?;
    let g = Grid::from_df(&ws)?;
    Ok(g.rows
        .into_iter()
        .filter_map(|r| match (&r[0], &r[1]) {
            (Cell::Text(id), Cell::Text(n)) => Some((id.clone(), n.clone())),
            _ => None,
        })
        .collect())
}

/// The differences as a grid (table and CSV output).
pub fn lines_grid(r: &Reconciliation) -> Grid {
    let opt = |s: &Option<String>| s.clone().map(Cell::Text).unwrap_or(Cell::Null);
    Grid {
        columns: [
            "day",
            "workspace_id",
            "workspace_name",
            "model",
            "charge",
            "ours_usd",
            "provider_usd",
            "difference_usd",
            "status",
            "cause",
        ]
        .map(String::from)
        .to_vec(),
        rows: r
            .lines
            .iter()
            .map(|l| {
                vec![
                    Cell::Text(l.day.clone()),
                    opt(&l.workspace_id),
                    opt(&l.workspace_name),
                    opt(&l.model),
                    Cell::Text(l.charge.clone()),
                    Cell::Dec(l.ours, MONEY_SCALE as usize),
                    Cell::Dec(l.provider, MONEY_SCALE as usize),
                    Cell::Dec(l.ours - l.provider, MONEY_SCALE as usize),
                    Cell::Text(format!("{:?}", l.status).to_lowercase()),
                    Cell::Text(l.cause.clone()),
                ]
            })
            .collect(),
        footer: None,
    }
}

/// Per-workspace totals as a grid, each money column rounded so that it adds up to its total.
pub fn workspace_grid(r: &Reconciliation) -> Grid {
    let col = |k: usize| -> Vec<i128> { r.per_workspace.iter().map(|w| w.exact[k]).collect() };
    let diff: Vec<i128> = r
        .per_workspace
        .iter()
        .map(|w| w.exact[0] - w.exact[1])
        .collect();
    let cols = [col(0), col(1), diff, col(2)];
    let cents: Vec<Vec<i128>> = cols.iter().map(|c| money::allocate_cents(c)).collect();
    let mut rows = Vec::new();
    for (i, w) in r.per_workspace.iter().enumerate() {
        let mut row = vec![
            w.workspace_id.clone().map(Cell::Text).unwrap_or(Cell::Null),
            w.workspace_name
                .clone()
                .map(Cell::Text)
                .unwrap_or(Cell::Null),
        ];
        row.extend(cents.iter().map(|c| Cell::Dec(c[i], 2)));
        rows.push(row);
    }
    let mut footer = vec![Cell::Text("TOTAL".into()), Cell::Null];
    footer.extend(
        cols.iter()
            .map(|c| Cell::Dec(money::round_cents(c.iter().sum()), 2)),
    );
    Grid {
        columns: [
            "workspace_id",
            "workspace_name",
            "ours_usd",
            "provider_usd",
            "difference_usd",
            "unexplained_usd",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        footer: Some(footer),
    }
}
