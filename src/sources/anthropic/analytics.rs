//! The Usage & Cost Analytics API (`/v1/organizations/analytics/cost`, beta since 2026-10-29),
//! read one **whole query** at a time.
//!
//! An Analytics page restates nothing on its own: its rows exist only where there was cost, it
//! is ordered by spend, and it does not say which range, filters or grouping its query had — a
//! page of a query filtered to one workspace looks like a complete day. So tokenledger reads a
//! query file: `{"tokenledger_query": {endpoint, starting_at, ending_at, time_bucket_width,
//! group_by[], filters{}}, "pages": [page…]}` (what `tokenledger pull` writes; see
//! `fixtures/README.md`). It is complete only when its pages run to `has_more: false`, and then
//! it covers `[starting_at, ending_at)` — capped at the last page's `data_refreshed_at`, beyond
//! which buckets are incomplete — every day of it, a day without a row being zero. A filtered,
//! incomplete or unknown-grouping query is refused whole, with the reason (never half-loaded).
//!
//! Owns: the query envelope, the cost item (`{starting_at, ending_at, group{…}, cost{amount,
//! list_amount, currency}}`, amounts strings in cents), its coverage. Must not: read a page
//! without its query, or keep a dimension the `cost` table has no column for (rows would merge).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::admin::{cents_to_dollars, field_err};
use crate::model::{self, CostRow, DEFAULT_WORKSPACE_NAME, SourceFamily, SourceFormat};
use crate::sources::{FileError, Limits, Quarantined, Sink};
use crate::vocab::Provider;

/// The dimensions a cost query may be grouped by and still load: the `cost` table's columns.
const COST_DIMENSIONS: [&str; 7] = [
    "workspace_id",
    "model",
    "service_tier",
    "context_window",
    "inference_geo",
    "cost_type",
    "token_type",
];

#[derive(Deserialize)]
struct Envelope {
    tokenledger_query: Query,
    #[serde(default)]
    pages: Vec<Page>,
}

#[derive(Deserialize)]
struct Query {
    endpoint: String,
    starting_at: String,
    ending_at: String,
    #[serde(default)]
    time_bucket_width: Option<String>,
    #[serde(default)]
    group_by: Vec<String>,
    #[serde(default)]
    filters: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    data: Vec<serde_json::Value>,
    #[serde(default)]
    has_more: Option<bool>,
    #[serde(default)]
    data_refreshed_at: Option<String>,
}

/// Parses a whole Analytics cost query (the file is read whole: a query is at most 31 days).
pub fn parse_cost(bytes: &[u8], limits: &Limits, sink: &mut dyn Sink) -> Result<(), FileError> {
    let env: Envelope = serde_json::from_slice(bytes)
        .map_err(|e| FileError::new(format!("not a tokenledger Analytics query file: {e}")))?;
    let q = &env.tokenledger_query;
    let (start, end) = check_query(q, &env.pages)?;
    let mut day = start;
    while day < end {
        sink.coverage(SourceFamily::Api, day, day + Duration::days(1));
        day += Duration::days(1);
    }
    let mut ordinal = 0u64;
    for (pi, page) in env.pages.iter().enumerate() {
        for (ii, item) in page.data.iter().enumerate() {
            ordinal += 1;
            match cost_row(item, (start, end), limits, ordinal) {
                Ok(row) => sink.cost(row),
                Err((field, reason)) => sink.quarantine(Quarantined {
                    location: format!("pages[{pi}].data[{ii}]"),
                    line: None,
                    field: Some(field),
                    reason,
                    excerpt: None,
                }),
            }
        }
    }
    Ok(())
}

/// The range a complete, unfiltered, daily cost query restates; why not otherwise.
fn check_query(q: &Query, pages: &[Page]) -> Result<(DateTime<Utc>, DateTime<Utc>), FileError> {
    if q.endpoint.trim_start_matches('/') != "v1/organizations/analytics/cost" {
        return Err(FileError::new(format!(
            "an Analytics query of {:?}: tokenledger reads /v1/organizations/analytics/cost \
             queries only (usage queries: not yet)",
            q.endpoint
        )));
    }
    let filtered: Vec<&String> = q
        .filters
        .iter()
        .filter(|(_, v)| !(v.is_null() || v.as_array().is_some_and(Vec::is_empty)))
        .map(|(k, _)| k)
        .collect();
    if !filtered.is_empty() {
        return Err(FileError::new(format!(
            "a filtered Analytics query ({}): it covers only part of its days, so it cannot \
             restate them; pull it without filters",
            filtered
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if q.time_bucket_width.as_deref() != Some("1d") {
        return Err(FileError::new(format!(
            "an Analytics cost query with time_bucket_width {:?}: the cost table keeps UTC days; \
             pull it with time_bucket_width=1d",
            q.time_bucket_width
        )));
    }
    if let Some(d) = q
        .group_by
        .iter()
        .find(|d| !COST_DIMENSIONS.contains(&d.as_str()))
    {
        return Err(FileError::new(format!(
            "an Analytics cost query grouped by {d:?}, which the cost table has no column for \
             (rows would merge); group by {} only",
            COST_DIMENSIONS.join(", ")
        )));
    }
    let complete = pages.last().is_some_and(|p| p.has_more == Some(false))
        && pages[..pages.len().saturating_sub(1)]
            .iter()
            .all(|p| p.has_more == Some(true));
    if !complete {
        return Err(FileError::new(format!(
            "an incomplete Analytics query ({} page(s), the last without has_more: false): a \
             partial query restates nothing, so none of it was loaded; pull it again",
            pages.len()
        )));
    }
    let ts = |field: &str, v: &str| model::parse_ts(field, v).map_err(FileError::new);
    let start = ts("starting_at", &q.starting_at)?;
    let mut end = ts("ending_at", &q.ending_at)?;
    // Buckets after the data's refresh are incomplete: the query restates whole days before it.
    if let Some(r) = pages.last().and_then(|p| p.data_refreshed_at.as_deref()) {
        let refreshed = ts("data_refreshed_at", r)?;
        end = end.min(model::day_start(refreshed.date_naive()));
    }
    if start != model::day_start(start.date_naive()) || end <= start {
        return Err(FileError::new(format!(
            "an Analytics cost query from {start} to {end}: not whole UTC days before its \
             data_refreshed_at"
        )));
    }
    Ok((start, end))
}

/// The string of `obj[key]` (`None`: absent, null or ""), or why not.
fn text(obj: &serde_json::Value, key: &str) -> Result<Option<String>, (String, String)> {
    match obj.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) if s.len() <= crate::sources::lenient::MAX_TEXT => {
            Ok(Some(s.clone()))
        }
        Some(serde_json::Value::String(_)) => Err((key.into(), format!("{key} is too long"))),
        Some(other) => Err((key.into(), format!("{key} must be a string, got {other}"))),
    }
}

/// An amount: a string of cents (a JSON number may already have lost precision).
fn cents(
    obj: &serde_json::Value,
    key: &str,
) -> Result<Option<(String, rust_decimal::Decimal)>, (String, String)> {
    match obj.get(key) {
        Some(serde_json::Value::Number(_)) => Err((
            key.into(),
            format!("{key} is a JSON number; the Analytics API sends a decimal string of cents"),
        )),
        _ => match text(obj, key)? {
            Some(raw) => {
                let d = cents_to_dollars(&raw).map_err(field_err(key))?;
                Ok(Some((raw, d)))
            }
            None => Ok(None),
        },
    }
}

fn cost_row(
    item: &serde_json::Value,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    limits: &Limits,
    ordinal: u64,
) -> Result<CostRow, (String, String)> {
    let ts = |k: &str| -> Result<DateTime<Utc>, (String, String)> {
        let v = text(item, k)?.ok_or_else(|| (k.to_string(), format!("missing {k}")))?;
        model::parse_ts(k, &v).map_err(|r| (k.to_string(), r))
    };
    let (s, e) = (ts("starting_at")?, ts("ending_at")?);
    if e - s != Duration::days(1) || s != model::day_start(s.date_naive()) {
        return Err(("ending_at".into(), format!("not a UTC day: {s} .. {e}")));
    }
    if s < start || e > end {
        return Err((
            "starting_at".into(),
            format!("{s} is outside the query's complete range {start} .. {end}"),
        ));
    }
    limits
        .check_day(s.date_naive())
        .map_err(|r| ("starting_at".to_string(), r))?;
    let group = item.get("group").cloned().unwrap_or_default();
    let cost = item
        .get("cost")
        .filter(|c| c.is_object())
        .ok_or_else(|| ("cost".to_string(), "missing cost object".to_string()))?;
    let (amount_raw, amount) = cents(cost, "amount")?
        .ok_or_else(|| ("amount".to_string(), "missing amount".to_string()))?;
    let list_amount = cents(cost, "list_amount")?.map(|(_, d)| d);
    let currency = text(cost, "currency")?
        .ok_or_else(|| ("currency".to_string(), "missing currency".to_string()))?;
    let currency = crate::sources::usd_only(&currency).map_err(field_err("currency"))?;
    let enum_of = |k: &str, allowed: &[&str]| -> Result<Option<String>, (String, String)> {
        let v = text(&group, k)?;
        if let Some(v) = &v {
            model::check_enum(k, v, allowed).map_err(field_err(k))?;
        }
        Ok(v)
    };
    let cost_type = enum_of("cost_type", model::COST_TYPES)?;
    let workspace_id = text(&group, "workspace_id")?;
    Ok(CostRow {
        bucket_start: s,
        bucket_end: e,
        provider: Provider::Anthropic,
        workspace_name: (workspace_id.is_none() && cost_type.is_some())
            .then(|| DEFAULT_WORKSPACE_NAME.to_string()),
        workspace_id,
        description: None,
        cost_type,
        model: text(&group, "model")?,
        token_type: enum_of("token_type", model::TOKEN_TYPES)?,
        service_tier: enum_of("service_tier", model::SERVICE_TIERS)?,
        context_window: enum_of("context_window", model::CONTEXT_WINDOWS)?,
        inference_geo: enum_of("inference_geo", model::INFERENCE_GEOS)?,
        currency,
        amount,
        amount_raw,
        list_amount,
        source_format: SourceFormat::AnthropicAnalyticsCost,
        source_row: ordinal,
    })
}
