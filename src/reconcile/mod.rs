//! Reconcile: our list cost against the provider's cost report, line by line, with causes.
//!
//! Owns: matching per day × workspace × model × charge (token class, web search, code
//! execution, session usage), the tolerance, naming the cause of every difference, and the
//! typed result (exact `Money` throughout).
//! Must not: price (reads `rated_usage`), change the lake, round (that is `present`), or use
//! polars other than through `query`.

pub mod tieout;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::lake::{Layout, Snapshot, Table};
use crate::money::Money;
use crate::pricing::{PriceBook, canonical_model};
use crate::query::{self, Frame, QueryError, Sql};
use crate::vocab::{Month, PricingStatus, Provider, TokenClass, WEB_SEARCH_COST_COLUMN};

pub const OURS_SQL: &str = include_str!("../../sql/reconcile_ours.sql");
pub const PROVIDER_SQL: &str = include_str!("../../sql/reconcile_provider.sql");
pub const COVERAGE_SQL: &str = include_str!("../../sql/reconcile_coverage.sql");

/// Differences up to this much per line count as matched (half a cent).
pub const DEFAULT_TOLERANCE: Money = Money::from_units(5_000_000_000);

/// Our cost columns (of `sql/reconcile_ours.sql`) and the cost report's charge for each.
fn charges() -> impl Iterator<Item = (&'static str, &'static str)> {
    TokenClass::ALL
        .iter()
        .map(|c| (c.cost_column(), c.cost_report_type()))
        .chain([(WEB_SEARCH_COST_COLUMN, "web_search")])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Matched,
    Explained,
    Unexplained,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Matched => "matched",
            Status::Explained => "explained",
            Status::Unexplained => "unexplained",
        }
    }
}

/// What a difference between our list cost and the cost report is, summed per day for the
/// invoice tie-out (amounts there are `provider − ours`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Matched lines: each within the tolerance.
    Rounding,
    /// Code execution and session usage: only the cost report has them.
    OnlyInCostReport,
    /// Rated at standard list here; the cost report omits Priority Tier.
    PriorityTier,
    /// No list price here; the provider billed it.
    Unpriced,
    /// A day one side has no export for.
    MissingDay,
    /// The provider's amount is after a negotiated discount; its `list_amount` says how much.
    Discount,
    /// OpenAI's long-context surcharge (a whole request over 272K input tokens at 2× input,
    /// 1.5× output on gpt-5.4, gpt-5.5, gpt-5.6): the usage API cannot show it.
    LongContext,
    Unexplained,
}

impl Part {
    /// Its line in the invoice tie-out (amounts there are `provider − ours`).
    pub const fn label(self) -> &'static str {
        match self {
            Part::OnlyInCostReport => "+ only in the cost report: code execution, session usage",
            Part::PriorityTier => "+ Priority Tier: rated at list here, not in the cost report",
            Part::Unpriced => "+ usage with no list price here",
            Part::MissingDay => "+ days one side has no export for",
            Part::Rounding => "+ rounding: lines matched within the tolerance",
            Part::Discount => "+ discount: the provider's amount after its negotiated discount",
            Part::LongContext => "+ long context: OpenAI's surcharge on requests over 272K tokens",
            Part::Unexplained => "+ unexplained: our list cost vs the cost report",
        }
    }
    pub const ALL: [Part; 8] = [
        Part::OnlyInCostReport,
        Part::PriorityTier,
        Part::Unpriced,
        Part::MissingDay,
        Part::Discount,
        Part::LongContext,
        Part::Rounding,
        Part::Unexplained,
    ];
}

/// One UTC day's totals and the parts of its difference.
#[derive(Debug, Clone, Default)]
pub struct DayParts {
    pub ours: Money,
    pub provider: Money,
    /// `provider − ours` per [`Part`].
    pub parts: BTreeMap<Part, Money>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub provider: &'static str,
    pub day: String,
    pub workspace_id: Option<String>,
    pub workspace_name: Option<String>,
    pub model: Option<String>,
    pub charge: String,
    pub ours_usd: Money,
    pub provider_usd: Money,
    pub difference_usd: Money,
    pub status: Status,
    pub cause: String,
}

/// A model and charge whose list price in our book is not the provider's: from `first_day` on,
/// the provider's `list_amount` for the same rows implies another rate (a stale or missing price
/// in the book, found the morning after, not by finance at month end).
#[derive(Debug, Clone, Serialize)]
pub struct PriceDrift {
    /// Always `price_drift`.
    pub kind: &'static str,
    pub model: String,
    /// The cost report's name of the charge (`output_tokens`, …).
    pub token_type: String,
    pub first_day: String,
    /// Days of the month it drifted on.
    pub days: usize,
    /// USD per million units (tokens; web searches: per million searches) on the first day.
    pub our_rate: rust_decimal::Decimal,
    pub provider_rate: rust_decimal::Decimal,
    /// The provider's list cost − ours over the drifting days (what the book misses).
    pub impact_usd: Money,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceTotal {
    pub provider: &'static str,
    pub workspace_id: Option<String>,
    pub workspace_name: Option<String>,
    pub ours_usd: Money,
    pub provider_usd: Money,
    pub difference_usd: Money,
    pub unexplained_usd: Money,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reconciliation {
    pub month: Month,
    pub tolerance_usd: Money,
    pub lines_matched: usize,
    pub lines_explained: usize,
    pub lines_unexplained: usize,
    pub ours_usd: Money,
    pub provider_usd: Money,
    pub difference_usd: Money,
    pub unexplained_usd: Money,
    pub per_workspace: Vec<WorkspaceTotal>,
    /// The providers reconciled (those with a cost report in the month), each on its own.
    pub providers: Vec<&'static str>,
    /// Days whose cost report was not grouped by description, and the grain they were
    /// compared at (`day × workspace` or `day`), per provider.
    pub coarse_days: BTreeMap<&'static str, BTreeMap<String, &'static str>>,
    /// Models and charges whose list price differs from the provider's (`list_amount`).
    pub price_drift: Vec<PriceDrift>,
    /// Every line that did not match (matched lines are only counted).
    pub lines: Vec<Line>,
    /// The three-way tie-out of each invoice whose period starts in the month.
    pub tie_outs: Vec<tieout::TieOut>,
    /// Per provider and UTC day (`YYYY-MM-DD`): totals and the parts of the difference (for
    /// the tie-out of that provider's invoices).
    #[serde(skip)]
    pub days: BTreeMap<(Provider, String), DayParts>,
    /// (provider, UTC day) each side covers: [usage, cost report].
    #[serde(skip)]
    pub covered: [BTreeSet<(Provider, String)>; 2],
}

impl Reconciliation {
    /// Whether a person must look: some difference has no known cause.
    pub fn needs_review(&self) -> bool {
        self.lines_unexplained > 0
    }
    /// Unexplained differences, and invoices that do not tie out, are reasons to look.
    pub fn reviews(&self) -> Vec<crate::vocab::Review> {
        let lines = self.lines_unexplained;
        let mut out: Vec<crate::vocab::Review> = (lines > 0)
            .then(|| crate::vocab::Review::Unexplained {
                month: self.month.key(),
                lines,
            })
            .into_iter()
            .collect();
        if !self.price_drift.is_empty() {
            out.push(crate::vocab::Review::PriceDrift {
                month: self.month.key(),
                findings: self.price_drift.len(),
            });
        }
        for t in self.tie_outs.iter().filter(|t| t.needs_review) {
            out.push(crate::vocab::Review::InvoiceUnexplained {
                invoice: t.invoice_number.clone(),
            });
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("the sum of {0} overflows 128 bits; no total is printed rather than a wrong one")]
    Overflow(&'static str),
    #[error(
        "a line has pricing status {0:?} (rated_usage written by another version? run `tokenledger rate`)"
    )]
    Status(String),
    #[error(transparent)]
    Lake(#[from] crate::lake::io::LakeError),
}

/// `acc + v`, or an error naming what was summed.
fn add(acc: &mut Money, v: Money, what: &'static str) -> Result<(), ReconcileError> {
    *acc = acc.checked_add(v).ok_or(ReconcileError::Overflow(what))?;
    Ok(())
}

fn sub(a: Money, b: Money) -> Result<Money, ReconcileError> {
    a.checked_sub(b)
        .ok_or(ReconcileError::Overflow("difference"))
}

type Key = (String, Option<String>, Option<String>, String); // day, workspace_id, model, charge

#[derive(Default, Clone)]
struct Acc {
    ours: Money,
    priority: Money,
    unpriced_units: i128,
    /// Units (tokens, or web searches) of the priced rows: the rate the line implies.
    units: i128,
    provider: Money,
    /// The provider's list price of the line, where its export has one (Analytics).
    provider_list: Option<Money>,
    /// The most OpenAI's long-context surcharge could add to our cost of the line.
    long_context: Money,
    workspace_name: Option<String>,
}

/// OpenAI models whose requests over 272K input tokens are billed whole at 2× input (and
/// cached input) and 1.5× output (`../shared/reference/provider-apis.md` §7): gpt-5.4,
/// gpt-5.5 and the gpt-5.6 family.
fn openai_long_context(model: &str) -> bool {
    matches!(model, "gpt-5.4" | "gpt-5.5") || model.starts_with("gpt-5.6")
}

/// The most the long-context surcharge adds to a charge of list cost `v`: input (cached and
/// cache writes too) doubles, output is 1.5×.
fn surcharge(charge: &str, v: Money) -> Money {
    if charge == TokenClass::Output.cost_report_type() {
        Money::from_units(v.units() / 2)
    } else {
        v
    }
}

/// Whether any provider's cost report covers a day of `month`.
pub fn has_cost_report(layout: &Snapshot, month: &str) -> Result<bool, ReconcileError> {
    Ok(!cost_report_providers(layout, month)?.is_empty())
}

/// The providers whose cost report covers a day of `month`: each is reconciled on its own.
fn cost_report_providers(layout: &Layout, month: &str) -> Result<Vec<Provider>, ReconcileError> {
    Ok(layout
        .providers(Table::CostCoverage)?
        .into_iter()
        .filter(|p| layout.month_file(Table::CostCoverage, *p, month).exists())
        .collect())
}

/// Our side, once per rated part: the sums are added up here, so memory follows a part.
fn ours(
    layout: &Layout,
    (month, provider): (&str, Provider),
    acc: &mut BTreeMap<Key, Acc>,
) -> Result<(), ReconcileError> {
    let mut parts = Vec::new();
    for p in layout.providers(Table::UsagePricing)? {
        if p != provider {
            continue;
        }
        parts.extend(
            layout
                .month_parts(Table::UsagePricing, p, month)
                .map_err(|source| QueryError::Io {
                    path: layout.month_dir(Table::UsagePricing, p, month),
                    source,
                })?,
        );
    }
    for part in &parts {
        let mut s = Sql::new();
        s.rated_parts(layout, std::slice::from_ref(part))?;
        let f = s.run(
            &OURS_SQL
                .replace("{{month}}", month)
                .replace("{{provider}}", provider.as_str()),
        )?;
        add_ours(&f, provider, acc)?;
    }
    Ok(())
}

/// The count column of each charge ([`charges`] order), as read from `f`.
fn units_per_charge(f: &Frame) -> Result<Vec<Vec<Option<i128>>>, ReconcileError> {
    Ok(charges()
        .map(|(_, charge)| {
            let column = TokenClass::ALL
                .iter()
                .find(|c| c.cost_report_type() == charge)
                .map_or("web_search_requests", |c| c.column());
            f.count(column)
        })
        .collect::<Result<_, _>>()?)
}

/// Adds one rated part's sums (`sql/reconcile_ours.sql`) to `acc`.
fn add_ours(
    f: &Frame,
    provider: Provider,
    acc: &mut BTreeMap<Key, Acc>,
) -> Result<(), ReconcileError> {
    let (day, ws, wsn, model, tier, status) = (
        f.text("day")?,
        f.text("workspace_id")?,
        f.text("workspace_name")?,
        f.text("model")?,
        f.text("service_tier")?,
        f.text("pricing_status")?,
    );
    let (tokens, searches) = (f.count("tokens")?, f.count("web_search_requests")?);
    let other_units = f.count("unit_quantity")?;
    let class_units = units_per_charge(f)?;
    let costs: Vec<Vec<Option<Money>>> = charges()
        .map(|(c, _)| f.money(c))
        .collect::<Result<_, _>>()?;
    for i in 0..f.height() {
        let s = status[i].clone().unwrap_or_default();
        let priced = PricingStatus::parse(&s)
            .ok_or(ReconcileError::Status(s))?
            .has_cost();
        let is_priority = matches!(tier[i].as_deref(), Some("priority" | "priority_on_demand"));
        for (k, (_, charge)) in charges().enumerate() {
            let web = charge == "web_search";
            let m = if web { None } else { model[i].clone() };
            let e = acc
                .entry((
                    day[i].clone().unwrap_or_default(),
                    ws[i].clone(),
                    m,
                    charge.into(),
                ))
                .or_default();
            e.workspace_name = wsn[i].clone();
            if priced {
                let v = costs[k][i].ok_or(ReconcileError::Status("priced, no cost".into()))?;
                add(&mut e.ours, v, "rated_usage cost")?;
                if provider == Provider::OpenAi
                    && model[i].as_deref().is_some_and(openai_long_context)
                {
                    add(
                        &mut e.long_context,
                        surcharge(charge, v),
                        "long-context bound",
                    )?;
                }
                if !is_priority {
                    e.units = e
                        .units
                        .checked_add(class_units[k][i].unwrap_or(0))
                        .ok_or(ReconcileError::Overflow("token counts"))?;
                }
                if is_priority {
                    add(&mut e.priority, v, "rated_usage cost")?;
                }
            } else {
                // Usage in another unit (OpenAI images, …) is unpriced usage too.
                let units = if web {
                    searches[i].unwrap_or(0)
                } else {
                    tokens[i].unwrap_or(0) + other_units[i].unwrap_or(0)
                };
                e.unpriced_units = e
                    .unpriced_units
                    .checked_add(units)
                    .ok_or(ReconcileError::Overflow("unpriced token counts"))?;
            }
        }
    }
    Ok(())
}

/// Cost rows of a page not grouped by description, per UTC day: (workspace id, name, amount).
/// OpenAI's rows keep the model their line item names (`gpt-4o-2024-08-06, input` →
/// `gpt-4o`): its days are compared per day × project × model.
type Coarse = BTreeMap<String, Vec<(Option<String>, Option<String>, Option<String>, Money)>>;

/// The charge of a line compared at a coarser grain than the charge: the cost report of that
/// day was not grouped by description.
pub const ALL_CHARGES: &str = "all charges";

/// The provider's side: the cost report of the month (rows grouped by charge into `acc`, the
/// others into `coarse`).
fn provider(
    layout: &Layout,
    (month, provider): (&str, Provider),
    acc: &mut BTreeMap<Key, Acc>,
    coarse: &mut Coarse,
) -> Result<(), ReconcileError> {
    let mut s = Sql::new();
    if !s.table(layout, Table::Cost)? {
        return Ok(());
    }
    let f: Frame = s.run(
        &PROVIDER_SQL
            .replace("{{month}}", month)
            .replace("{{provider}}", provider.as_str()),
    )?;
    let (day, ws, wsn) = (
        utc_days(&f)?,
        f.text("workspace_id")?,
        f.text("workspace_name")?,
    );
    let (cost_type, token_type, model) = (
        f.text("cost_type")?,
        f.text("token_type")?,
        f.text("model")?,
    );
    let (amount, list) = (f.money("amount")?, f.money("list_amount")?);
    for i in 0..f.height() {
        let a = amount[i].ok_or(ReconcileError::Status("cost row without amount".into()))?;
        let Some(ct) = cost_type[i].clone() else {
            // Not grouped by description: compared at the grain it has (see `collapse`).
            let m = (provider == Provider::OpenAi)
                .then(|| model[i].as_deref().map(canonical_model))
                .flatten();
            coarse
                .entry(day[i].clone().unwrap_or_default())
                .or_default()
                .push((ws[i].clone(), wsn[i].clone(), m, a));
            continue;
        };
        let (charge, m) = match ct.as_str() {
            "tokens" => (
                token_type[i].clone().unwrap_or_else(|| "tokens".into()),
                model[i].as_deref().map(canonical_model),
            ),
            other => (other.to_string(), None),
        };
        let e = acc
            .entry((day[i].clone().unwrap_or_default(), ws[i].clone(), m, charge))
            .or_default();
        add(&mut e.provider, a, "cost.amount")?;
        if let Some(l) = list[i] {
            let mut sum = e.provider_list.unwrap_or(Money::ZERO);
            add(&mut sum, l, "cost.list_amount")?;
            e.provider_list = Some(sum);
        }
        if e.workspace_name.is_none() {
            e.workspace_name = wsn[i].clone();
        }
    }
    Ok(())
}

/// A day whose cost report was not grouped by description is compared at the grain it has:
/// our lines of that day are summed per workspace (when the day's rows name a workspace: the
/// page was grouped by `workspace_id`, and a null one is the default workspace) or into one
/// line for the organisation (no row names one), charge [`ALL_CHARGES`]; the provider's rows go
/// beside them. Each day is one export's (restatement), so no row is counted at two grains.
fn collapse(
    acc: &mut BTreeMap<Key, Acc>,
    coarse: Coarse,
) -> Result<BTreeMap<String, &'static str>, ReconcileError> {
    let mut grains = BTreeMap::new();
    for (day, rows) in coarse {
        let by_workspace = rows.iter().any(|r| r.0.is_some());
        // OpenAI's line items name a model (not a charge): compared per model too.
        let by_model = rows.iter().any(|r| r.2.is_some());
        grains.insert(
            day.clone(),
            match (by_workspace, by_model) {
                (true, true) => "day × workspace × model",
                (true, false) => "day × workspace",
                (false, true) => "day × model",
                (false, false) => "day",
            },
        );
        let whole = |ws: &Option<String>| if by_workspace { ws.clone() } else { None };
        let per_model = |m: &Option<String>| if by_model { m.clone() } else { None };
        let name = |n: Option<String>| {
            if by_workspace {
                n
            } else {
                Some("(all workspaces)".to_string())
            }
        };
        let mine: Vec<Key> = acc.keys().filter(|k| k.0 == day).cloned().collect();
        for k in mine {
            let a = acc.remove(&k).unwrap_or_default();
            let e = acc
                .entry((
                    day.clone(),
                    whole(&k.1),
                    per_model(&k.2),
                    ALL_CHARGES.into(),
                ))
                .or_default();
            add(&mut e.ours, a.ours, "rated_usage cost")?;
            add(&mut e.priority, a.priority, "rated_usage cost")?;
            add(&mut e.provider, a.provider, "cost.amount")?;
            add(&mut e.long_context, a.long_context, "long-context bound")?;
            e.unpriced_units = e
                .unpriced_units
                .checked_add(a.unpriced_units)
                .ok_or(ReconcileError::Overflow("unpriced token counts"))?;
            e.workspace_name = name(a.workspace_name).or(e.workspace_name.take());
        }
        for (ws, n, m, amount) in rows {
            let e = acc
                .entry((day.clone(), whole(&ws), per_model(&m), ALL_CHARGES.into()))
                .or_default();
            add(&mut e.provider, amount, "cost.amount")?;
            if e.workspace_name.is_none() {
                e.workspace_name = name(n.or_else(|| ws.is_none().then(|| "Default".into())));
            }
        }
    }
    Ok(grains)
}

/// The price-book check: per model and charge, the days where the provider's list amount for
/// the same rows (priority tier left out: the cost report omits it) differs from our list cost
/// by more than the tolerance and more than 0.5 % — a rate, not rounding.
fn price_drift(
    acc: &BTreeMap<Key, Acc>,
    tolerance: Money,
) -> Result<Vec<PriceDrift>, ReconcileError> {
    type Day = (Money, Money, i128); // ours, provider list, units
    let mut by: BTreeMap<(String, String), BTreeMap<String, Day>> = BTreeMap::new();
    for ((day, _, model, charge), a) in acc {
        let (Some(model), Some(list)) = (model, a.provider_list) else {
            continue;
        };
        if a.unpriced_units > 0 || a.units == 0 {
            continue;
        }
        let e = by
            .entry((model.clone(), charge.clone()))
            .or_default()
            .entry(day.clone())
            .or_default();
        add(&mut e.0, sub(a.ours, a.priority)?, "rated_usage cost")?;
        add(&mut e.1, list, "cost.list_amount")?;
        e.2 = e.2.saturating_add(a.units);
    }
    let rate = |m: Money, units: i128| -> rust_decimal::Decimal {
        let per_million =
            m.to_decimal().unwrap_or_default() * rust_decimal::Decimal::from(1_000_000);
        (per_million / rust_decimal::Decimal::from(units)).round_dp(6)
    };
    let mut out = Vec::new();
    for ((model, charge), days) in by {
        let mut drifting = Vec::new();
        for (day, (ours, list, units)) in &days {
            let d = sub(*list, *ours)?;
            if d.abs() > tolerance && d.abs().units().saturating_mul(200) > ours.abs().units() {
                drifting.push((day, *ours, *list, *units, d));
            }
        }
        let Some(&(first, ours, list, units, _)) = drifting.first() else {
            continue;
        };
        let mut impact = Money::ZERO;
        for d in &drifting {
            add(&mut impact, d.4, "price drift")?;
        }
        out.push(PriceDrift {
            kind: "price_drift",
            model,
            token_type: charge,
            first_day: first.clone(),
            days: drifting.len(),
            our_rate: rate(ours, units),
            provider_rate: rate(list, units),
            impact_usd: impact,
        });
    }
    Ok(out)
}

/// The UTC date (YYYY-MM-DD) of each row's `bucket_start`.
fn utc_days(f: &Frame) -> Result<Vec<Option<String>>, ReconcileError> {
    Ok(f.micros("bucket_start")?
        .into_iter()
        .map(|us| {
            us.and_then(chrono::DateTime::from_timestamp_micros)
                .map(|t| t.format("%Y-%m-%d").to_string())
        })
        .collect())
}

/// UTC days of the month each side has data for (coverage, not rows).
fn covered_days(
    layout: &Layout,
    month: &str,
    provider: Provider,
) -> Result<[BTreeSet<String>; 2], ReconcileError> {
    let sides = query::statements(COVERAGE_SQL);
    let mut out = [BTreeSet::new(), BTreeSet::new()];
    for ((i, table), sql) in [Table::UsageCoverage, Table::CostCoverage]
        .into_iter()
        .enumerate()
        .zip(&sides)
    {
        let mut s = Sql::new();
        if s.table(layout, table)? {
            let f = s.run(
                &sql.replace("{{month}}", month)
                    .replace("{{provider}}", provider.as_str()),
            )?;
            out[i].extend(utc_days(&f)?.into_iter().flatten());
        }
    }
    Ok(out)
}

/// What the reconciler knows besides the two sides: the days each covers, and the price book
/// (code execution's rate, to say how many container-hours a charge is).
struct Context<'a> {
    provider: Provider,
    tolerance: Money,
    covered: [BTreeSet<String>; 2],
    book: &'a PriceBook,
}

const PRIORITY_CAUSE: &str =
    "priority tier: rated at standard list here; the cost report omits Priority Tier";
const NO_USAGE_CAUSE: &str = "no usage export for this day (missing on our side)";

/// Whether our priority-tier cost, which the cost report omits, is the whole difference.
fn priority_explains(a: &Acc, diff: Money, cx: &Context) -> Result<bool, ReconcileError> {
    Ok(a.priority != Money::ZERO && sub(diff, a.priority)?.abs() <= cx.tolerance)
}

/// Whether we have nothing for a day because no usage export covers it.
fn no_usage_export(day: &str, a: &Acc, cx: &Context) -> bool {
    a.ours == Money::ZERO && !cx.covered[0].contains(day)
}

/// A line compared at a coarser grain (the cost report of its day not grouped by description):
/// priority tier or a missing day can still explain it; nothing finer can.
fn classify_coarse(
    day: &str,
    a: &Acc,
    diff: Money,
    cx: &Context,
) -> Result<(Status, Part, String), ReconcileError> {
    let explained = |p: Part, c: String| Ok((Status::Explained, p, c));
    if a.unpriced_units == 0 && priority_explains(a, diff, cx)? {
        return explained(Part::PriorityTier, PRIORITY_CAUSE.into());
    }
    // Unpriced usage has no cost here: the provider's amount may be anything at or above ours.
    if a.unpriced_units > 0 && diff <= cx.tolerance {
        return explained(
            Part::Unpriced,
            "usage with no list price here (an unpriced model or unit) that the provider billed"
                .into(),
        );
    }
    if no_usage_export(day, a, cx) {
        return explained(Part::MissingDay, NO_USAGE_CAUSE.into());
    }
    if a.unpriced_units == 0 && diff < Money::ZERO {
        // provider − ours > 0: within what the long-context surcharge can add?
        let over = sub(a.provider, a.ours)?;
        let most = a.long_context.checked_add(cx.tolerance);
        if a.long_context != Money::ZERO && most.is_some_and(|m| over <= m) {
            return explained(
                Part::LongContext,
                format!(
                    "long context: OpenAI bills a whole request over 272K input tokens at 2× \
                     input and 1.5× output (gpt-5.4, gpt-5.5, gpt-5.6); the usage API does not \
                     report prompt sizes, so it shows only here: ${} over our list, within the \
                     ${} such requests could add",
                    over.usd(),
                    a.long_context.usd()
                ),
            );
        }
    }
    let how = match cx.provider {
        Provider::Anthropic => {
            "export or pull it with group_by[]=description (and workspace_id) to name the causes"
        }
        Provider::OpenAi => {
            "OpenAI's Costs API is compared per day × project × model (the model its line item \
             names; the line items are kept in \
             `cost.description`)"
        }
    };
    Ok((
        Status::Unexplained,
        Part::Unexplained,
        format!(
            "the cost report of this day is not grouped by charge, so only its total compares; {how}"
        ),
    ))
}

/// The discount a line's difference is, when the provider's amount is below its own list
/// amount and that list amount meets our list cost (priority tier aside).
fn discount(a: &Acc, diff: Money, cx: &Context) -> Result<Option<String>, ReconcileError> {
    let Some(list) = a.provider_list else {
        return Ok(None);
    };
    let discount = sub(list, a.provider)?;
    // Priority tier is at standard list here and absent there either way.
    let rest = sub(sub(diff, discount)?, a.priority)?;
    if discount.abs() <= cx.tolerance || rest.abs() > cx.tolerance {
        return Ok(None);
    }
    Ok(Some(format!(
        "discount: the provider's amount ${} is after a negotiated discount of ${} on its list \
         ${}, which our list cost matches",
        a.provider.usd(),
        discount.usd(),
        list.usd()
    )))
}

/// The first cause that fits a line, or matched / unexplained.
fn classify(
    key: &Key,
    a: &Acc,
    diff: Money,
    cx: &Context,
) -> Result<(Status, Part, String), ReconcileError> {
    let (day, _, _, charge) = key;
    if diff.abs() <= cx.tolerance && a.unpriced_units == 0 {
        return Ok((Status::Matched, Part::Rounding, String::new()));
    }
    let explained = |p: Part, c: String| Ok((Status::Explained, p, c));
    if charge == ALL_CHARGES {
        return classify_coarse(day, a, diff, cx);
    }
    if a.unpriced_units > 0 {
        return explained(
            Part::Unpriced,
            format!(
                "unpriced model: {} unit(s) with no list price in force (add a price override)",
                a.unpriced_units
            ),
        );
    }
    if a.ours == Money::ZERO && (charge == "code_execution" || charge == "session_usage") {
        return explained(
            Part::OnlyInCostReport,
            only_in_cost_report(charge, day, a.provider, cx.book),
        );
    }
    if let Some(cause) = discount(a, diff, cx)? {
        return explained(Part::Discount, cause);
    }
    if priority_explains(a, diff, cx)? {
        return explained(Part::PriorityTier, PRIORITY_CAUSE.into());
    }
    if a.provider == Money::ZERO && !cx.covered[1].contains(day) {
        return explained(
            Part::MissingDay,
            "no cost report for this day (missing on the provider side)".into(),
        );
    }
    if no_usage_export(day, a, cx) {
        return explained(Part::MissingDay, NO_USAGE_CAUSE.into());
    }
    Ok((Status::Unexplained, Part::Unexplained, "unexplained".into()))
}

/// A charge the usage export cannot show; for code execution, the container-hours it bills at
/// the list rate in force (`code_execution_hour` of the price book).
fn only_in_cost_report(charge: &str, day: &str, amount: Money, book: &PriceBook) -> String {
    let what = charge.replace('_', " ");
    let rate = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .ok()
        .filter(|_| charge == "code_execution")
        // Code execution is billed by container-hour on Anthropic's cost report.
        .and_then(|d| book.unit_price(Provider::Anthropic, "code_execution_hour", d))
        .filter(|r| !r.is_zero());
    match (rate, amount.to_decimal()) {
        (Some(r), Ok(a)) => format!(
            "only in the cost report: {what} is not in the usage export ({} container-hour(s) \
             billed at ${}/h list, after the free allowance)",
            (a / r).round_dp(2).normalize(),
            r.normalize()
        ),
        _ => format!("only in the cost report: {what} is not in the usage export"),
    }
}

impl WorkspaceTotal {
    fn new(
        provider: Provider,
        workspace_id: Option<String>,
        workspace_name: Option<String>,
    ) -> Self {
        WorkspaceTotal {
            provider: provider.as_str(),
            workspace_id,
            workspace_name,
            ours_usd: Money::ZERO,
            provider_usd: Money::ZERO,
            difference_usd: Money::ZERO,
            unexplained_usd: Money::ZERO,
        }
    }
}

impl Reconciliation {
    fn new(month: Month, tolerance: Money) -> Self {
        Reconciliation {
            month,
            tolerance_usd: tolerance,
            lines_matched: 0,
            lines_explained: 0,
            lines_unexplained: 0,
            ours_usd: Money::ZERO,
            provider_usd: Money::ZERO,
            difference_usd: Money::ZERO,
            unexplained_usd: Money::ZERO,
            per_workspace: Vec::new(),
            providers: Vec::new(),
            coarse_days: BTreeMap::new(),
            price_drift: Vec::new(),
            lines: Vec::new(),
            tie_outs: Vec::new(),
            days: BTreeMap::new(),
            covered: [BTreeSet::new(), BTreeSet::new()],
        }
    }

    /// Counts one accumulated line into the totals and, unless it matched, the lines.
    fn add_line(
        &mut self,
        per_ws: &mut BTreeMap<Option<String>, WorkspaceTotal>,
        key: Key,
        a: Acc,
        name: Option<String>,
        cx: &Context,
    ) -> Result<(), ReconcileError> {
        let diff = sub(a.ours, a.provider)?;
        let w = per_ws
            .entry(key.1.clone())
            .or_insert_with(|| WorkspaceTotal::new(cx.provider, key.1.clone(), name.clone()));
        add(&mut w.ours_usd, a.ours, "rated_usage cost")?;
        add(&mut w.provider_usd, a.provider, "cost.amount")?;
        add(&mut self.ours_usd, a.ours, "rated_usage cost")?;
        add(&mut self.provider_usd, a.provider, "cost.amount")?;
        let (status, part, cause) = classify(&key, &a, diff, cx)?;
        let day = self.days.entry((cx.provider, key.0.clone())).or_default();
        add(&mut day.ours, a.ours, "rated_usage cost")?;
        add(&mut day.provider, a.provider, "cost.amount")?;
        let p = day.parts.entry(part).or_default();
        add(p, sub(a.provider, a.ours)?, "difference")?;
        match status {
            Status::Matched => {
                self.lines_matched += 1;
                return Ok(());
            }
            Status::Explained => self.lines_explained += 1,
            Status::Unexplained => {
                self.lines_unexplained += 1;
                add(&mut w.unexplained_usd, diff, "difference")?;
                add(&mut self.unexplained_usd, diff, "difference")?;
            }
        }
        let (day, workspace_id, model, charge) = key;
        self.lines.push(Line {
            provider: cx.provider.as_str(),
            day,
            workspace_id,
            workspace_name: name,
            model,
            charge,
            ours_usd: a.ours,
            provider_usd: a.provider,
            difference_usd: diff,
            status,
            cause,
        });
        Ok(())
    }
}

/// Reconciles one month: every line that does not match within `tolerance`, with its cause.
/// Each provider with a cost report in the month is reconciled on its own (its usage against
/// its cost report, its days, its causes); the totals are their sums.
pub fn reconcile(
    layout: &Snapshot,
    month: Month,
    tolerance: Money,
    book: &PriceBook,
) -> Result<Reconciliation, ReconcileError> {
    let mut r = Reconciliation::new(month, tolerance);
    for provider in cost_report_providers(layout, &month.key())? {
        reconcile_provider(layout, provider, &mut r, book)?;
    }
    r.difference_usd = sub(r.ours_usd, r.provider_usd)?;
    Ok(r)
}

/// One provider's lines, totals and days, added to `r`.
fn reconcile_provider(
    layout: &Snapshot,
    provider: Provider,
    r: &mut Reconciliation,
    book: &PriceBook,
) -> Result<(), ReconcileError> {
    let mut acc: BTreeMap<Key, Acc> = BTreeMap::new();
    let key = r.month.key();
    ours(layout, (&key, provider), &mut acc)?;
    let mut coarse = Coarse::new();
    self::provider(layout, (&key, provider), &mut acc, &mut coarse)?;
    let drift = price_drift(&acc, r.tolerance_usd)?;
    let coarse_days = collapse(&mut acc, coarse)?;
    let cx = Context {
        provider,
        tolerance: r.tolerance_usd,
        covered: covered_days(layout, &key, provider)?,
        book,
    };
    // Names from the latest workspace list (a list ingested after the data still names it).
    let names = workspace_names(layout)?;
    r.providers.push(provider.as_str());
    if !coarse_days.is_empty() {
        r.coarse_days.insert(provider.as_str(), coarse_days);
    }
    r.price_drift.extend(drift);
    let mut per_ws: BTreeMap<Option<String>, WorkspaceTotal> = BTreeMap::new();
    for (key, a) in acc {
        if a.ours == Money::ZERO && a.provider == Money::ZERO && a.unpriced_units == 0 {
            continue; // nothing on either side (e.g. a token class the row did not use)
        }
        let name = key
            .1
            .as_ref()
            .and_then(|id| names.get(id).cloned())
            .or(a.workspace_name.clone());
        r.add_line(&mut per_ws, key, a, name, &cx)?;
    }
    for w in per_ws.values_mut() {
        w.difference_usd = sub(w.ours_usd, w.provider_usd)?;
    }
    r.per_workspace.extend(per_ws.into_values());
    for (i, days) in cx.covered.into_iter().enumerate() {
        r.covered[i].extend(days.into_iter().map(|d| (provider, d)));
    }
    Ok(())
}

fn workspace_names(layout: &Layout) -> Result<HashMap<String, String>, ReconcileError> {
    let (ws, _) = query::name_frames(layout)?;
    Ok(ws
        .text("workspace_id")?
        .into_iter()
        .zip(ws.text("workspace_name")?)
        .filter_map(|(id, n)| Some((id?, n?)))
        .collect())
}

/// The invoices in the lake whose period starts in `month` (UTC), of the providers whose cost
/// report the lake holds (an invoice of another provider has nothing to tie to).
pub fn invoices_of(
    layout: &Snapshot,
    month: Month,
) -> Result<Vec<crate::model::Invoice>, ReconcileError> {
    let with_cost = layout.providers(Table::Cost)?;
    let lines = crate::lake::io::read_all(&layout.table_file(Table::InvoiceLines))?;
    let mut out = Vec::new();
    for b in crate::lake::io::read_all(&layout.table_file(Table::Invoices))? {
        for s in crate::lake::ledger::invoices_rows(&b, &lines)? {
            let inv = &s.item.invoice;
            if with_cost.contains(&inv.provider)
                && crate::model::month_key(inv.period_start) == month.key()
            {
                out.push(s.item.invoice);
            }
        }
    }
    Ok(out)
}

/// Every month the periods of `invoices` touch (they must be rated before the tie-out).
pub fn period_months(invoices: &[crate::model::Invoice]) -> Vec<Month> {
    let mut months: Vec<Month> = invoices
        .iter()
        .flat_map(tieout::period_days)
        .filter_map(|d| Month::parse(&d.format("%Y-%m").to_string()).ok())
        .collect();
    months.sort();
    months.dedup();
    months
}

/// Adds the tie-out of each invoice of `r`'s month; other months a period touches are
/// reconciled for it (they must be rated).
pub fn add_tie_outs(
    layout: &Snapshot,
    r: &mut Reconciliation,
    invoices: &[crate::model::Invoice],
    book: &PriceBook,
) -> Result<(), ReconcileError> {
    let mut others: BTreeMap<Month, Reconciliation> = BTreeMap::new();
    for m in period_months(invoices) {
        if m != r.month {
            others.insert(m, reconcile(layout, m, r.tolerance_usd, book)?);
        }
    }
    let mut recs: Vec<&Reconciliation> = others.values().collect();
    recs.push(r);
    let ties = invoices
        .iter()
        .map(|inv| tieout::tie_out(inv, &recs, r.tolerance_usd))
        .collect();
    r.tie_outs = ties;
    Ok(())
}
