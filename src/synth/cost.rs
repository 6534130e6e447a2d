//! The provider's cost report for the synthetic organisation: daily buckets grouped by
//! workspace and description, at list prices (the embedded price book), without Priority Tier
//! (the provider omits it), plus web search and a code-execution charge only this report has.
//!
//! Must not: write the lake or price anything the book does not (it writes export files).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use chrono::{NaiveDate, TimeDelta};
use rust_decimal::Decimal;
use serde::Serialize;

use super::{Daily, Org, SynthOptions, rfc, write_json};
use crate::model::day_start;
use crate::pricing::PriceBook;
use crate::vocab::TokenClass;

#[derive(Serialize)]
struct CostResult {
    amount: String,
    currency: &'static str,
    cost_type: &'static str,
    description: String,
    model: Option<&'static str>,
    token_type: Option<&'static str>,
    service_tier: Option<&'static str>,
    context_window: Option<&'static str>,
    inference_geo: Option<&'static str>,
    workspace_id: Option<String>,
}

impl CostResult {
    /// A charge that is not for tokens (web search, code execution).
    fn other(dollars: Decimal, cost_type: &'static str, what: &str, ws: Option<String>) -> Self {
        CostResult {
            amount: cents(dollars),
            currency: "USD",
            cost_type,
            description: format!("{what} Usage"),
            model: None,
            token_type: None,
            service_tier: None,
            context_window: None,
            inference_geo: None,
            workspace_id: ws,
        }
    }
}

#[derive(Serialize)]
struct CostBucket {
    starting_at: String,
    ending_at: String,
    results: Vec<CostResult>,
}

#[derive(Serialize)]
struct CostPage {
    data: Vec<CostBucket>,
    has_more: bool,
    next_page: Option<String>,
}

/// Cents, exactly, as the cost report writes them.
fn cents(dollars: Decimal) -> String {
    (dollars * Decimal::ONE_HUNDRED).normalize().to_string()
}

/// (day, workspace, model, tier, context, geo): the cost report's grouping of token charges.
type Group = (
    NaiveDate,
    Option<usize>,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

/// The usage regrouped the way the cost report groups it.
#[derive(Default)]
struct Grouped {
    days: BTreeSet<NaiveDate>,
    tokens: BTreeMap<Group, [u64; 5]>,
    web_searches: BTreeMap<(NaiveDate, Option<usize>), u64>,
}

fn group(org: &Org, daily: &Daily) -> Grouped {
    let mut g = Grouped::default();
    for ((day, si), v) in daily {
        g.days.insert(*day);
        let s = &org.streams[*si];
        if s.tier == "priority" {
            continue; // Priority Tier is not in the cost report.
        }
        let t = g
            .tokens
            .entry((*day, s.workspace, s.model, s.tier, s.context, s.geo))
            .or_default();
        for (sum, n) in t.iter_mut().zip(v) {
            *sum += n;
        }
        *g.web_searches.entry((*day, s.workspace)).or_default() += v[5];
    }
    g
}

/// One day's token charges, one result per group and token class, at list price.
fn token_results(
    book: &PriceBook,
    org: &Org,
    g: &Grouped,
    day: NaiveDate,
) -> Result<Vec<CostResult>> {
    let mut results = Vec::new();
    let groups = g.tokens.range((day, None, "", "", "", "")..);
    for ((_, ws, model, tier, ctx, geo), t) in groups.take_while(|(k, _)| k.0 == day) {
        let rate = book
            .rate(
                crate::vocab::Provider::Anthropic.as_str(),
                Some(model),
                day,
                Some(tier),
                Some(ctx),
                Some(geo),
            )
            .map_err(|e| anyhow::anyhow!(e))?;
        // The synthetic organisation is Anthropic's: its five classes.
        for (i, class) in TokenClass::ALL.iter().enumerate().take(t.len()) {
            if t[i] == 0 {
                continue;
            }
            let per_mtok = rate.per_mtok[i].expect("synthetic Anthropic models price every class");
            let amount = Decimal::from(t[i]) * per_mtok / Decimal::from(1_000_000);
            let tt = class.cost_report_type();
            results.push(CostResult {
                amount: cents(amount),
                currency: "USD",
                cost_type: "tokens",
                description: format!("{model} Usage - {tt}"),
                model: Some(model),
                token_type: Some(tt),
                service_tier: Some(tier),
                context_window: Some(ctx),
                inference_geo: Some(geo),
                workspace_id: ws.map(|w| org.workspaces[w].0.clone()),
            });
        }
    }
    Ok(results)
}

/// One day's web search ($0.01 each) and, on about three days in ten, code execution hours.
fn other_results(
    org: &Org,
    g: &Grouped,
    day: NaiveDate,
    rng: &mut fastrand::Rng,
) -> Vec<CostResult> {
    let searches = g.web_searches.range((day, None)..);
    let mut results: Vec<CostResult> = searches
        .take_while(|(k, _)| k.0 == day)
        .filter(|(_, n)| **n > 0)
        .map(|((_, ws), n)| {
            let ws = ws.map(|w| org.workspaces[w].0.clone());
            CostResult::other(
                Decimal::from(*n) * Decimal::new(1, 2),
                "web_search",
                "Web Search",
                ws,
            )
        })
        .collect();
    if !org.workspaces.is_empty() && rng.u32(..100) < 30 {
        let hours = 1 + rng.u64(..40);
        let ws = org.workspaces[rng.usize(..org.workspaces.len())].0.clone();
        let dollars = Decimal::from(hours) * Decimal::new(5, 2);
        results.push(CostResult::other(
            dollars,
            "code_execution",
            "Code Execution",
            Some(ws),
        ));
    }
    results
}

/// Each month's cost report charges, exactly: [tokens and web search, code execution]; what
/// the provider's invoice for the month bills.
pub(super) type MonthCharges = BTreeMap<String, [Decimal; 2]>;

/// Writes one cost report page per month under `cost/`; returns the month's charges.
pub(super) fn write_cost_report(
    a: &SynthOptions,
    org: &Org,
    daily: &Daily,
    rng: &mut fastrand::Rng,
) -> Result<MonthCharges> {
    let book = PriceBook::load(&[])?;
    let dir = a.out.join("cost");
    std::fs::create_dir_all(&dir)?;
    let g = group(org, daily);
    let mut by_month: BTreeMap<String, Vec<CostBucket>> = BTreeMap::new();
    let mut charges = MonthCharges::new();
    for &day in &g.days {
        let mut results = token_results(&book, org, &g, day)?;
        results.extend(other_results(org, &g, day, rng));
        let c = charges.entry(day.format("%Y-%m").to_string()).or_default();
        for r in &results {
            let dollars = r.amount.parse::<Decimal>()? / Decimal::ONE_HUNDRED;
            c[usize::from(r.cost_type == "code_execution")] += dollars;
        }
        let start = day_start(day);
        let bucket = CostBucket {
            starting_at: rfc(start),
            ending_at: rfc(start + TimeDelta::days(1)),
            results,
        };
        by_month
            .entry(day.format("%Y-%m").to_string())
            .or_default()
            .push(bucket);
    }
    for (m, data) in by_month {
        let page = CostPage {
            data,
            has_more: false,
            next_page: None,
        };
        write_json(&dir.join(format!("cost-{m}.json")), &page)?;
    }
    Ok(charges)
}
