//! Report: the monthly chargeback — list cost and tokens by the dimensions a user picks.
//!
//! Owns: the chargeback's pass over the month's usage ([`scan`], priced on the fly with the
//! price book's rates and `rating::row_cost`, the arithmetic that fills `rated_usage`),
//! `sql/report.sql` and its parameters (the same over `rated_usage`, [`report_sql`]), team
//! mapping from the config, and the typed result: one line per combination of the chosen
//! dimensions with its token counts and exact list cost (`None` when unpriced, never $0), and
//! the totals. Must not: decide a rate (that is `pricing`), write to the lake, re-read provider
//! files, round (that is `present`), or use polars other than through `query`.

use crate::config::Team;
use std::collections::HashMap;

use crate::lake::teams::TeamRow;
use crate::lake::{Layout, Snapshot, Table};
use crate::money::Money;
use crate::query::{self, Frame, QueryError, Sql};
use crate::vocab::{COUNT_COLUMNS, Month, PricingStatus};

pub mod scan;

pub const REPORT_SQL: &str = include_str!("../../sql/report.sql");
pub const COMBINE_SQL: &str = include_str!("../../sql/report_combine.sql");

/// A `--by` dimension and the columns it contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    Workspace,
    Model,
    ApiKey,
    ServiceTier,
    Day,
    Team,
    /// The Analytics API's `product` (Claude Code, the Messages API, batch, managed agents, …).
    Product,
    /// Who spent it: the Analytics API's actor (type, id, a user's email).
    Actor,
    /// Which provider's usage (`anthropic`, `openai`): a subtotal each.
    Provider,
}

impl Dim {
    pub const NAMES: [&'static str; 9] = [
        "workspace",
        "model",
        "api-key",
        "service-tier",
        "day",
        "team",
        "product",
        "actor",
        "provider",
    ];

    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Dim::Workspace => &["workspace_id", "workspace_name"],
            Dim::Model => &["model"],
            Dim::ApiKey => &["api_key_id", "api_key_name"],
            Dim::ServiceTier => &["service_tier"],
            Dim::Day => &["day"],
            Dim::Team => &["team"],
            Dim::Product => &["product"],
            Dim::Actor => &["actor_type", "actor_id", "actor_email"],
            Dim::Provider => &["provider"],
        }
    }
}

impl std::str::FromStr for Dim {
    type Err = String;
    fn from_str(s: &str) -> Result<Dim, String> {
        Dim::NAMES
            .iter()
            .position(|n| *n == s)
            .map(|i| {
                [
                    Dim::Workspace,
                    Dim::Model,
                    Dim::ApiKey,
                    Dim::ServiceTier,
                    Dim::Day,
                    Dim::Team,
                    Dim::Product,
                    Dim::Actor,
                    Dim::Provider,
                ][i]
            })
            .ok_or_else(|| format!("unknown dimension {s:?}; one of: {}", Dim::NAMES.join(", ")))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Lake(#[from] crate::lake::io::LakeError),
    /// A configuration problem (teams).
    #[error("{0}")]
    Config(String),
    #[error("the sum of {0} overflows 128 bits; no total is printed rather than a wrong one")]
    Overflow(String),
    #[error(
        "a line has pricing status {0:?} (rated_usage written by another version? run `tokenledger rate`)"
    )]
    Status(String),
}

/// Where a month stands when it is shown: provisional or final (the rule of `Close`), in which
/// timezone its days are, and the final chargeback already mailed to finance, if any, so a
/// late restatement is reported as one and never passes silently.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Standing {
    pub month: Month,
    /// The zone of the month's days (IANA name; `UTC` for the provider's days).
    pub timezone: String,
    pub close: crate::vocab::Close,
    /// Total and day of the last final chargeback delivered to finance for the month.
    pub final_mailed: Option<(Money, chrono::NaiveDate)>,
}

impl Standing {
    /// The final chargeback went out with another total than `now`: a restatement.
    pub fn restated(&self, now: Money) -> Option<(Money, chrono::NaiveDate)> {
        self.final_mailed.filter(|(then, _)| *then != now)
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Values of the dimension columns, in [`Report::dim_columns`] order.
    pub dims: Vec<Option<String>>,
    pub status: PricingStatus,
    /// Token classes then web search requests ([`COUNT_COLUMNS`] order).
    pub counts: [i128; crate::vocab::N_COUNTS],
    /// Exact list cost; `None` when unpriced.
    pub list_cost: Option<Money>,
}

/// The chargeback of one month.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub month: Month,
    pub dim_columns: Vec<&'static str>,
    pub lines: Vec<Line>,
    /// Counts over every line, priced or not.
    pub total_counts: [i128; crate::vocab::N_COUNTS],
    /// List cost over the priced lines.
    pub total_cost: Money,
    pub unpriced_lines: usize,
    /// The cents each priced line shows, when a bill fixed them top down (`report --by team`
    /// with shared workspaces: the same cents as the mail); `None`: largest remainder over the
    /// lines.
    pub cents: Option<Vec<i128>>,
}

pub use crate::vocab::UNALLOCATED;

/// The config's teams with their `workspace_tags` resolved against the latest workspace lists:
/// each tagged workspace joins the team by id. Teams without tags are returned as they are.
pub fn resolve_teams(
    teams: &[Team],
    layout: &crate::lake::Layout,
) -> Result<Vec<Team>, ReportError> {
    if teams.iter().all(|t| t.workspace_tags.is_empty()) {
        return Ok(teams.to_vec());
    }
    let mut tagged: Vec<(String, String, std::collections::BTreeMap<String, String>)> = Vec::new();
    for p in layout.providers(crate::lake::Table::Workspaces)? {
        let path = layout.provider_file(crate::lake::Table::Workspaces, p);
        for b in crate::lake::io::read_all(&path)? {
            for w in crate::lake::batch::workspaces_rows(&b)? {
                let tags = w
                    .item
                    .tags
                    .as_deref()
                    .and_then(|t| serde_json::from_str(t).ok())
                    .unwrap_or_default();
                tagged.push((w.item.id, w.item.name, tags));
            }
        }
    }
    let mut out = teams.to_vec();
    for t in &mut out {
        for want in &t.workspace_tags {
            let (k, v) = want.split_once(':').unwrap_or((want.as_str(), ""));
            for (id, name, tags) in &tagged {
                let listed = t.workspaces.iter().any(|x| x == id || x == name);
                if !listed && tags.get(k).is_some_and(|x| x == v) {
                    t.workspaces.push(id.clone());
                }
            }
        }
    }
    Ok(out)
}

/// The config's team map as rows of the lake's `teams` table, or why it is ambiguous (a key or a
/// workspace in two teams).
pub fn team_rows(teams: &[Team]) -> Result<Vec<TeamRow>, ReportError> {
    let mut rows: Vec<TeamRow> = Vec::new();
    for t in teams {
        let kinds = [("api_key", &t.api_keys), ("workspace", &t.workspaces)];
        for (kind, names) in kinds {
            for n in names {
                if let Some(other) = rows.iter().find(|r| r.kind == kind && r.name == *n) {
                    let what = if kind == "api_key" {
                        "API key"
                    } else {
                        "workspace"
                    };
                    return Err(ReportError::Config(format!(
                        "{what} {n:?} is in two teams ({:?} and {:?}); it pays to one team",
                        other.team, t.name
                    )));
                }
                rows.push(TeamRow {
                    kind,
                    name: n.clone(),
                    team: t.name.clone(),
                    cost_center: t.cost_center.clone(),
                });
            }
        }
    }
    Ok(rows)
}

/// Registers `rows` as table `teams`. polars 0.55.2 drops left rows with a null key (Console
/// usage has no key name) when the right side of a LEFT JOIN is empty; a sentinel row of each
/// kind that no real name can equal avoids that (the lake's table has none).
pub fn register_teams(s: &mut Sql, rows: &[TeamRow]) -> Result<(), ReportError> {
    let sentinel = |kind| TeamRow {
        kind,
        name: "\u{0}no team\u{0}".into(),
        team: UNALLOCATED.into(),
        cost_center: None,
    };
    let all: Vec<TeamRow> = rows
        .iter()
        .cloned()
        .chain([sentinel("api_key"), sentinel("workspace")])
        .collect();
    let col = |f: fn(&TeamRow) -> Option<String>| all.iter().map(f).collect::<Vec<_>>();
    s.strings(
        "teams",
        &[
            ("kind", col(|r| Some(r.kind.to_string()))),
            ("name", col(|r| Some(r.name.clone()))),
            ("team", col(|r| Some(r.team.clone()))),
            ("cost_center", col(|r| r.cost_center.clone())),
        ],
    )?;
    Ok(())
}

fn dim_columns(dims: &[Dim]) -> Vec<&'static str> {
    dims.iter()
        .flat_map(|d| d.columns().iter().copied())
        .collect()
}

/// The order of the lines: by each dimension's name before its id (a workspace or key by what
/// people call it, the id only to part two of the same name), as [`dim_columns`] indexes.
pub fn order_indexes(dims: &[Dim]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 0;
    for d in dims {
        let n = d.columns().len();
        match d {
            Dim::Workspace | Dim::ApiKey => out.extend([at + 1, at]),
            _ => out.extend(at..at + n),
        }
        at += n;
    }
    out
}

fn order_columns(dims: &[Dim]) -> String {
    let cols = dim_columns(dims);
    order_indexes(dims)
        .into_iter()
        .map(|i| cols[i])
        .collect::<Vec<_>>()
        .join(", ")
}

/// The query text for a month and dimensions (also what `--show-sql` prints).
pub fn sql_for(month: Month, dims: &[Dim]) -> String {
    let around = |m: Option<Month>| m.map_or_else(|| month.key(), Month::key);
    REPORT_SQL
        .replace("{{month_before}}", &around(month.previous()))
        .replace("{{month_after}}", &around(month.next()))
        .replace("{{month}}", &month.key())
        .replace("{{order}}", &order_columns(dims))
        .replace("{{dims}}", &dim_columns(dims).join(", "))
}

/// The combining query for the dimensions.
pub fn combine_sql_for(dims: &[Dim]) -> String {
    COMBINE_SQL
        .replace("{{order}}", &order_columns(dims))
        .replace("{{dims}}", &dim_columns(dims).join(", "))
}

/// What `--show-sql` prints: the view both steps read, then both steps, filled in.
pub fn show_sql(month: Month, dims: &[Dim]) -> String {
    format!(
        "-- step 0, the view rated_usage (register it once per session):\n{}\n\
         -- step 1, once per pricing part file (with its usage part):\n{}\n\
         -- step 2, over the partial results of step 1:\n{}",
        crate::query::RATED_USAGE_SQL,
        sql_for(month, dims),
        combine_sql_for(dims)
    )
}

impl Report {
    /// Unpriced usage is a reason to look.
    pub fn reviews(&self) -> Vec<crate::vocab::Review> {
        let lines = self.unpriced_lines;
        (lines > 0)
            .then(|| crate::vocab::Review::Unpriced {
                month: self.month.key(),
                lines,
            })
            .into_iter()
            .collect()
    }
}

/// Runs the report in one Arrow pass over the month's usage parts, priced on the fly as
/// `rating` prices them ([`scan`]; `sql/report.sql` over `rated_usage` is the same in SQL, see
/// [`report_sql`]). Workspace and key names come from the latest lists in the lake, so a list
/// that arrived after the usage still names every line.
pub fn report(
    layout: &Snapshot,
    month: Month,
    dims: &[Dim],
    teams: &[Team],
    pricing: &scan::Pricing,
) -> Result<Report, ReportError> {
    Ok(reports(layout, month, &[dims], teams, pricing)?
        .pop()
        .expect("one grouping"))
}

/// The chargeback of `month` in several groupings, from one scan of its usage (the month
/// close's bill needs three: a scan each read the month three times).
pub fn reports(
    layout: &Snapshot,
    month: Month,
    groupings: &[&[Dim]],
    teams: &[Team],
    pricing: &scan::Pricing,
) -> Result<Vec<Report>, ReportError> {
    let files = partition_files(layout, month, Table::Usage)?;
    let rows = team_rows(teams)?;
    let (wn, kn) = query::name_frames(layout)?;
    let map = |f: &Frame, id: &str, name: &str| -> Result<HashMap<String, String>, ReportError> {
        Ok(f.text(id)?
            .into_iter()
            .zip(f.text(name)?)
            .filter_map(|(i, n)| Some((i?, n?)))
            .collect())
    };
    let look = scan::Lookup::new(
        map(&wn, "workspace_id", "workspace_name")?,
        map(&kn, "api_key_id", "api_key_name")?,
        &rows,
    );
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let all = scan::groupings(&files, month, groupings, &look, pricing, jobs)?;
    groupings
        .iter()
        .zip(all)
        .map(|(dims, lines)| from_lines(month, dims, lines))
        .collect()
}

/// The parts of `table` in the three UTC partitions a business month can touch, for every
/// provider in the lake.
fn partition_files(
    layout: &Layout,
    month: Month,
    table: Table,
) -> Result<Vec<std::path::PathBuf>, ReportError> {
    let mut files = Vec::new();
    for p in layout.providers(table)? {
        for m in month.partitions() {
            files.extend(
                layout
                    .month_parts(table, p, &m)
                    .map_err(|source| QueryError::Io {
                        path: layout.month_dir(table, p, &m),
                        source,
                    })?,
            );
        }
    }
    Ok(files)
}

/// The same report through the shipped SQL (`sql/report.sql` per rated part, then
/// `sql/report_combine.sql`), as analysts run it: what [`report`] is checked against.
pub fn report_sql(
    layout: &Layout,
    month: Month,
    dims: &[Dim],
    teams: &[Team],
) -> Result<Report, ReportError> {
    let files = partition_files(layout, month, Table::UsagePricing)?;
    let frame = if files.is_empty() {
        Frame::default()
    } else {
        let rows = team_rows(teams)?;
        let (wn, kn) = query::name_frames(layout)?;
        let sql = sql_for(month, dims);
        let mut partials = Vec::with_capacity(files.len());
        for f in &files {
            let mut s = Sql::new();
            s.rated_parts(layout, std::slice::from_ref(f))?;
            register_teams(&mut s, &rows)?;
            s.frame("workspaces", wn.clone());
            s.frame("api_keys", kn.clone());
            partials.push(s.run(&sql)?);
        }
        let mut s = Sql::new();
        s.frame("partials", Frame::concat(partials)?);
        s.run(&combine_sql_for(dims))?
    };
    decode(month, dims, &frame)
}

/// The typed report from the combined result, strictly (an unexpected type is an error).
fn decode(month: Month, dims: &[Dim], f: &Frame) -> Result<Report, ReportError> {
    let dim_columns = dim_columns(dims);
    let mut lines: Vec<Line> = (0..f.height())
        .map(|_| Line {
            dims: Vec::with_capacity(dim_columns.len()),
            status: PricingStatus::Priced,
            counts: [0; crate::vocab::N_COUNTS],
            list_cost: None,
        })
        .collect();
    if f.height() > 0 {
        for c in &dim_columns {
            for (l, v) in lines.iter_mut().zip(f.text(c)?) {
                l.dims.push(v);
            }
        }
        for (l, s) in lines.iter_mut().zip(f.text("pricing_status")?) {
            let s = s.unwrap_or_default();
            l.status = PricingStatus::parse(&s).ok_or(ReportError::Status(s))?;
        }
        for (k, c) in COUNT_COLUMNS.iter().enumerate() {
            for (l, v) in lines.iter_mut().zip(f.count(c)?) {
                l.counts[k] = v.unwrap_or(0);
            }
        }
        for (l, v) in lines.iter_mut().zip(f.money("list_cost_usd_exact")?) {
            l.list_cost = match (l.status.has_cost(), v) {
                (true, Some(m)) => Some(m),
                (true, None) => {
                    return Err(ReportError::Status("priced, with no list cost".into()));
                }
                (false, _) => None,
            };
        }
    }
    from_lines(month, dims, lines)
}

/// The report of `lines` (in order): the totals, checked.
fn from_lines(month: Month, dims: &[Dim], lines: Vec<Line>) -> Result<Report, ReportError> {
    let dim_columns = dim_columns(dims);
    let mut total_counts = [0i128; crate::vocab::N_COUNTS];
    for (k, c) in COUNT_COLUMNS.iter().enumerate() {
        for l in &lines {
            total_counts[k] = total_counts[k]
                .checked_add(l.counts[k])
                .ok_or_else(|| ReportError::Overflow(format!("rated_usage.{c}")))?;
        }
    }
    let total_cost = Money::sum(lines.iter().filter_map(|l| l.list_cost))
        .ok_or_else(|| ReportError::Overflow("rated_usage.list_cost".into()))?;
    Ok(Report {
        cents: None,
        month,
        dim_columns,
        unpriced_lines: lines
            .iter()
            .filter(|l| l.status == PricingStatus::Unpriced)
            .count(),
        lines,
        total_counts,
        total_cost,
    })
}
