//! The Usage & Cost Analytics API (`/v1/organizations/analytics/cost` and `/analytics/usage`,
//! beta since 2026-10-29), read one **whole query** at a time.
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
//! list_amount, currency}}`, amounts strings in cents) and the usage item (`{…, usage{
//! uncached_input_tokens, cache_creation{…}, cache_read_input_tokens, output_tokens,
//! server_tool_use{web_search_requests}}}`, `product` and `agent_id` kept), their coverage.
//! The `actor` object is kept as `actor_type` (its `type`), `actor_id` (the id its type names:
//! `user_actor.user_id`, `service_account_actor.service_account_id`, `api_actor.api_key_id`,
//! `federated_actor` as `provider:subject`) and `actor_email` (a user's `email_address`, only
//! where the row has one); field names from the SDK's `BetaAnalyticsActor` variants (Ruby SDK
//! docs, `Anthropic::Models::Beta::Organization::BetaAnalyticsActor`). An actor of another
//! type is a row error, never merged with another actor.
//! Must not: read a page without its query, or accept a grouping its table has no column for
//! (`rbac_group_id`: its rows overlap, one person in several groups; refused).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::admin::{cents_to_dollars, field_err};
use crate::model::{
    self, BucketWidth, CostRow, DEFAULT_WORKSPACE_NAME, SourceFamily, SourceFormat, Tokens,
    UsageRow,
};
use crate::sources::{FileError, Limits, Quarantined, Sink};
use crate::vocab::Provider;

/// The dimensions a usage query may be grouped by and still load: the `usage` table's columns.
pub const USAGE_DIMENSIONS: [&str; 11] = [
    "workspace_id",
    "api_key_id",
    "model",
    "service_tier",
    "context_window",
    "inference_geo",
    "speed",
    "product",
    "agent_id",
    "actor",
    "actor_type",
];

/// What one endpoint's query must be: its path, the bucket widths and dimensions its table keeps.
struct Kind {
    endpoint: &'static str,
    widths: &'static [&'static str],
    dimensions: &'static [&'static str],
    table: &'static str,
}

const COST: Kind = Kind {
    endpoint: "v1/organizations/analytics/cost",
    widths: &["1d"],
    dimensions: &COST_DIMENSIONS,
    table: "cost",
};

const USAGE: Kind = Kind {
    endpoint: "v1/organizations/analytics/usage",
    widths: &["1d", "1h", "1m"],
    dimensions: &USAGE_DIMENSIONS,
    table: "usage",
};

/// The dimensions a cost query may be grouped by and still load: the `cost` table's columns
/// (`tokenledger pull` asks for exactly these).
pub const COST_DIMENSIONS: [&str; 7] = [
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
    let env = envelope(bytes)?;
    let (start, end, width) = check_query(&env.tokenledger_query, &env.pages, &COST)?;
    cover(sink, (start, end), width);
    each_item(&env.pages, sink, |item, ordinal, sink| {
        sink.cost(cost_row(item, (start, end), limits, ordinal)?);
        Ok(())
    });
    Ok(())
}

/// Parses a whole Analytics usage query (`1d`, `1h` or `1m` buckets).
pub fn parse_usage(bytes: &[u8], limits: &Limits, sink: &mut dyn Sink) -> Result<(), FileError> {
    let env = envelope(bytes)?;
    let (start, end, width) = check_query(&env.tokenledger_query, &env.pages, &USAGE)?;
    cover(sink, (start, end), width);
    each_item(&env.pages, sink, |item, ordinal, sink| {
        let row = usage_row(item, (start, end, width), limits, ordinal)?;
        sink.usage(&row);
        Ok(())
    });
    Ok(())
}

fn envelope(bytes: &[u8]) -> Result<Envelope, FileError> {
    serde_json::from_slice(bytes)
        .map_err(|e| FileError::new(format!("not a tokenledger Analytics query file: {e}")))
}

/// The query covers every bucket of its range: a combination without a row is zero.
fn cover(sink: &mut dyn Sink, (start, end): (DateTime<Utc>, DateTime<Utc>), width: BucketWidth) {
    let step = Duration::seconds(width.seconds());
    let mut t = start;
    while t < end {
        sink.coverage(SourceFamily::Analytics, t, t + step);
        t += step;
    }
}

/// Every item of every page, in order; a row error quarantines the item with its location.
/// Every item of every page, in order; a row error quarantines the item with its location,
/// and an item that appears again in the query (the same bucket and group: a row or a page
/// repeated by the exporter) is quarantined rather than counted twice.
fn each_item(
    pages: &[Page],
    sink: &mut dyn Sink,
    mut each: impl FnMut(&serde_json::Value, u64, &mut dyn Sink) -> Result<(), (String, String)>,
) {
    let mut ordinal = 0u64;
    let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for (pi, page) in pages.iter().enumerate() {
        for (ii, item) in page.data.iter().enumerate() {
            ordinal += 1;
            let here = format!("pages[{pi}].data[{ii}]");
            let key = format!(
                "{}|{}",
                item.get("starting_at")
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                item.get("group").map(|v| v.to_string()).unwrap_or_default()
            );
            let res = match seen.get(&key) {
                Some(first) => Err((
                    "group".to_string(),
                    format!(
                        "the same bucket and group as {first}: a row or page repeated; counted once"
                    ),
                )),
                None => {
                    seen.insert(key, here.clone());
                    each(item, ordinal, sink)
                }
            };
            if let Err((field, reason)) = res {
                sink.quarantine(Quarantined {
                    location: here,
                    line: None,
                    field: Some(field),
                    reason,
                    excerpt: None,
                });
            }
        }
    }
}

/// A filtered query covers only part of its buckets: it cannot restate them.
fn check_unfiltered(q: &Query) -> Result<(), FileError> {
    let filtered: Vec<&str> = q
        .filters
        .iter()
        .filter(|(_, v)| !(v.is_null() || v.as_array().is_some_and(Vec::is_empty)))
        .map(|(k, _)| k.as_str())
        .collect();
    if filtered.is_empty() {
        return Ok(());
    }
    Err(FileError::new(format!(
        "a filtered Analytics query ({}): it covers only part of its days, so it cannot restate \
         them; pull it without filters",
        filtered.join(", ")
    )))
}

/// The range a complete, unfiltered query restates (and its bucket width); why not otherwise.
fn check_query(
    q: &Query,
    pages: &[Page],
    kind: &Kind,
) -> Result<(DateTime<Utc>, DateTime<Utc>, BucketWidth), FileError> {
    if q.endpoint.trim_start_matches('/') != kind.endpoint {
        return Err(FileError::new(format!(
            "an Analytics query of {:?} where {} was expected",
            q.endpoint, kind.endpoint
        )));
    }
    check_unfiltered(q)?;
    let width = q
        .time_bucket_width
        .as_deref()
        .filter(|w| kind.widths.contains(w))
        .and_then(BucketWidth::parse)
        .ok_or_else(|| {
            FileError::new(format!(
                "an Analytics {} query with time_bucket_width {:?}: pull it with one of {}",
                kind.table,
                q.time_bucket_width,
                kind.widths.join(", ")
            ))
        })?;
    if let Some(d) = q
        .group_by
        .iter()
        .find(|d| !kind.dimensions.contains(&d.as_str()))
    {
        return Err(FileError::new(format!(
            "an Analytics {} query grouped by {d:?}, which the {} table has no column for \
             (rows would merge); group by {} only",
            kind.table,
            kind.table,
            kind.dimensions.join(", ")
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
    // Buckets after the data's refresh are incomplete: the query restates whole buckets
    // before it.
    if let Some(r) = pages.last().and_then(|p| p.data_refreshed_at.as_deref()) {
        let refreshed = ts("data_refreshed_at", r)?.timestamp();
        let floor = refreshed - refreshed.rem_euclid(width.seconds());
        end = end.min(DateTime::from_timestamp(floor, 0).unwrap_or(end));
    }
    if start.timestamp().rem_euclid(width.seconds()) != 0 || end <= start {
        return Err(FileError::new(format!(
            "an Analytics query from {start} to {end}: not whole {} buckets before its \
             data_refreshed_at",
            width.as_str()
        )));
    }
    Ok((start, end, width))
}

/// An item's `group` object (the API always sends one, its ungrouped dimensions null).
fn group_of(item: &serde_json::Value) -> Result<serde_json::Value, (String, String)> {
    match item.get("group") {
        Some(g @ serde_json::Value::Object(_)) => Ok(g.clone()),
        None | Some(serde_json::Value::Null) => Err(("group".into(), "missing group".into())),
        Some(other) => Err((
            "group".into(),
            format!("group must be an object, got {other}"),
        )),
    }
}

use crate::sources::lenient::json_text as text;

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

/// An item's bucket: one `width` of the query's complete range, aligned, in the plausible window.
fn item_bucket(
    item: &serde_json::Value,
    (start, end, width): (DateTime<Utc>, DateTime<Utc>, BucketWidth),
    limits: &Limits,
) -> Result<(DateTime<Utc>, DateTime<Utc>), (String, String)> {
    let ts = |k: &str| -> Result<DateTime<Utc>, (String, String)> {
        let v = text(item, k)?.ok_or_else(|| (k.to_string(), format!("missing {k}")))?;
        model::parse_ts(k, &v).map_err(|r| (k.to_string(), r))
    };
    let (s, e) = (ts("starting_at")?, ts("ending_at")?);
    if (e - s).num_seconds() != width.seconds() {
        return Err((
            "ending_at".into(),
            format!("{s} .. {e} is not one {} bucket", width.as_str()),
        ));
    }
    if s < start || e > end {
        return Err((
            "starting_at".into(),
            format!("{s} is outside the query's complete range {start} .. {end}"),
        ));
    }
    limits
        .check_bucket(s, e, width)
        .map_err(|r| ("starting_at".to_string(), r))?;
    Ok((s, e))
}

fn cost_row(
    item: &serde_json::Value,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    limits: &Limits,
    ordinal: u64,
) -> Result<CostRow, (String, String)> {
    let (s, e) = item_bucket(item, (start, end, BucketWidth::Day), limits)?;
    let group = group_of(item)?;
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

/// The actor's (type, id, email) from `group.actor` (an object by `type`) or, grouped by
/// `actor_type` alone, that value; all `None` for a null actor (several may coexist: usage
/// no actor can be named for, e.g. the Console).
type Actor = (Option<String>, Option<String>, Option<String>);
fn actor_of(group: &serde_json::Value) -> Result<Actor, (String, String)> {
    let a = match group.get("actor") {
        None | Some(serde_json::Value::Null) => {
            return Ok((text(group, "actor_type")?, None, None));
        }
        Some(a @ serde_json::Value::Object(_)) => a,
        Some(other) => {
            return Err((
                "actor".into(),
                format!("actor must be an object, got {other}"),
            ));
        }
    };
    let need = |k: &str| -> Result<String, (String, String)> {
        text(a, k)?.ok_or_else(|| (format!("actor.{k}"), format!("actor.{k} is missing")))
    };
    let kind = need("type")?;
    let (id, email) = match kind.as_str() {
        "user_actor" => (need("user_id")?, text(a, "email_address")?),
        "service_account_actor" => (need("service_account_id")?, None),
        "api_actor" => (need("api_key_id")?, None),
        "federated_actor" => {
            let p = need("provider")?;
            match text(a, "subject")? {
                Some(sub) => (format!("{p}:{sub}"), None),
                None => (p, None),
            }
        }
        other => {
            return Err((
                "actor.type".into(),
                format!(
                    "unknown actor type {other:?} (this version reads user_actor, \
                     service_account_actor, api_actor, federated_actor); its rows would merge \
                     with another actor's"
                ),
            ));
        }
    };
    Ok((Some(kind), Some(id), email))
}

/// A count: a non-negative JSON integer (absent or null: 0).
fn count(obj: &serde_json::Value, path: &[&str]) -> Result<u64, (String, String)> {
    let name = path.join(".");
    let mut v = obj;
    for k in path {
        match v.get(k) {
            Some(x) => v = x,
            None => return Ok(0),
        }
    }
    match v {
        serde_json::Value::Null => Ok(0),
        serde_json::Value::Number(n) => n.as_u64().ok_or_else(|| {
            (
                name.clone(),
                format!("{name} must be a non-negative integer, got {n}"),
            )
        }),
        other => Err((
            name.clone(),
            format!("{name} must be an integer, got {other}"),
        )),
    }
}

fn usage_row(
    item: &serde_json::Value,
    (start, end, width): (DateTime<Utc>, DateTime<Utc>, BucketWidth),
    limits: &Limits,
    ordinal: u64,
) -> Result<UsageRow<'static>, (String, String)> {
    let (s, _) = item_bucket(item, (start, end, width), limits)?;
    let group = group_of(item)?;
    let usage = item
        .get("usage")
        .filter(|u| u.is_object())
        .ok_or_else(|| ("usage".to_string(), "missing usage object".to_string()))?;
    let owned = |k: &str| -> Result<Option<std::borrow::Cow<'static, str>>, (String, String)> {
        Ok(text(&group, k)?.map(std::borrow::Cow::Owned))
    };
    let enum_of = |k: &str,
                   allowed: &[&str]|
     -> Result<Option<std::borrow::Cow<'static, str>>, (String, String)> {
        let v = text(&group, k)?;
        if let Some(v) = &v {
            model::check_enum(k, v, allowed).map_err(field_err(k))?;
        }
        Ok(v.map(std::borrow::Cow::Owned))
    };
    let workspace_id = owned("workspace_id")?;
    let (actor_type, actor_id, actor_email) = actor_of(&group)?;
    Ok(UsageRow {
        bucket_start: s,
        bucket_width: width,
        provider: Provider::Anthropic,
        workspace_name: workspace_id
            .is_none()
            .then_some(std::borrow::Cow::Borrowed(DEFAULT_WORKSPACE_NAME)),
        workspace_id,
        api_key_id: owned("api_key_id")?,
        api_key_name: None,
        model: owned("model")?,
        service_tier: enum_of("service_tier", model::SERVICE_TIERS)?,
        context_window: enum_of("context_window", model::CONTEXT_WINDOWS)?,
        inference_geo: enum_of("inference_geo", model::INFERENCE_GEOS)?,
        speed: owned("speed")?,
        account_id: None,
        service_account_id: None,
        product: owned("product")?,
        agent_id: owned("agent_id")?,
        actor_type: actor_type.map(std::borrow::Cow::Owned),
        actor_id: actor_id.map(std::borrow::Cow::Owned),
        actor_email: actor_email.map(std::borrow::Cow::Owned),
        tokens: Tokens {
            uncached_input: count(usage, &["uncached_input_tokens"])?,
            cache_write_5m: count(usage, &["cache_creation", "ephemeral_5m_input_tokens"])?,
            cache_write_1h: count(usage, &["cache_creation", "ephemeral_1h_input_tokens"])?,
            cache_read: count(usage, &["cache_read_input_tokens"])?,
            output: count(usage, &["output_tokens"])?,
            web_search_requests: count(usage, &["server_tool_use", "web_search_requests"])?,
            // `requests` is an int or null (provider-apis.md §3): null stays unknown.
            requests: usage
                .get("requests")
                .filter(|v| !v.is_null())
                .map(|_| count(usage, &["requests"]))
                .transpose()?,
            ..Tokens::default()
        },
        cache_write_assumed_5m: false,
        source_format: SourceFormat::AnthropicAnalyticsUsage,
        source_row: ordinal,
    })
}
