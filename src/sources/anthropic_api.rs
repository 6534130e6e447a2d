//! Anthropic Admin API responses: usage report pages, cost report pages, and the workspace and
//! API-key lists. Pages are parsed as a stream (bucket by bucket); a result row with a bad
//! field is quarantined with its JSON path, the rest of the page is kept.

use std::fmt;
use std::io::BufRead;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::{
    DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

use super::lenient::{Obj, Scalar};
use super::{FileError, Quarantined, Sink, excerpt};
use crate::model::{
    self, ApiKey, BucketWidth, CostRow, DEFAULT_WORKSPACE_NAME, SourceFamily, SourceFormat, Tokens,
    UsageRow, Workspace, check_enum,
};

#[derive(Deserialize, Default)]
struct CacheCreation {
    #[serde(default)]
    ephemeral_5m_input_tokens: Scalar,
    #[serde(default)]
    ephemeral_1h_input_tokens: Scalar,
}

#[derive(Deserialize, Default)]
struct ServerToolUse {
    #[serde(default)]
    web_search_requests: Scalar,
}

#[derive(Deserialize)]
struct UsageResult {
    #[serde(default)]
    api_key_id: Scalar,
    #[serde(default)]
    workspace_id: Scalar,
    #[serde(default)]
    model: Scalar,
    #[serde(default)]
    service_tier: Scalar,
    #[serde(default)]
    context_window: Scalar,
    #[serde(default)]
    inference_geo: Scalar,
    #[serde(default)]
    speed: Scalar,
    #[serde(default)]
    account_id: Scalar,
    #[serde(default)]
    service_account_id: Scalar,
    #[serde(default)]
    uncached_input_tokens: Scalar,
    #[serde(default)]
    cache_creation: Obj<CacheCreation>,
    #[serde(default)]
    cache_read_input_tokens: Scalar,
    #[serde(default)]
    output_tokens: Scalar,
    #[serde(default)]
    server_tool_use: Obj<ServerToolUse>,
}

#[derive(Deserialize)]
struct CostResult {
    #[serde(default)]
    amount: Scalar,
    #[serde(default)]
    currency: Scalar,
    #[serde(default)]
    cost_type: Scalar,
    #[serde(default)]
    description: Scalar,
    #[serde(default)]
    model: Scalar,
    #[serde(default)]
    token_type: Scalar,
    #[serde(default)]
    service_tier: Scalar,
    #[serde(default)]
    context_window: Scalar,
    #[serde(default)]
    inference_geo: Scalar,
    #[serde(default)]
    workspace_id: Scalar,
}

/// One time bucket of a report page, as read.
struct Bucket<R> {
    starting_at: Scalar,
    ending_at: Scalar,
    results: Vec<Obj<R>>,
}

/// Called once per bucket with its index in `data[]`.
trait BucketHandler<R> {
    fn bucket(&mut self, index: usize, bucket: Bucket<R>);
}

struct PageSeed<'a, R, H>(&'a mut H, PhantomData<R>);
struct DataSeed<'a, R, H>(&'a mut H, PhantomData<R>);

impl<'de, R: DeserializeOwned, H: BucketHandler<R>> DeserializeSeed<'de> for PageSeed<'_, R, H> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, R: DeserializeOwned, H: BucketHandler<R>> Visitor<'de> for PageSeed<'_, R, H> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a report page object with a data array")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut saw_data = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "data" {
                map.next_value_seed(DataSeed::<R, H>(self.0, PhantomData))?;
                saw_data = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(saw_data)
    }
}

impl<'de, R: DeserializeOwned, H: BucketHandler<R>> DeserializeSeed<'de> for DataSeed<'_, R, H> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, R: DeserializeOwned, H: BucketHandler<R>> Visitor<'de> for DataSeed<'_, R, H> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of time buckets")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while let Some(b) = seq.next_element::<RawBucket<R>>()? {
            self.0.bucket(
                i,
                Bucket {
                    starting_at: b.starting_at,
                    ending_at: b.ending_at,
                    results: b.results,
                },
            );
            i += 1;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(bound = "R: DeserializeOwned")]
struct RawBucket<R> {
    #[serde(default)]
    starting_at: Scalar,
    #[serde(default)]
    ending_at: Scalar,
    #[serde(default = "Vec::new")]
    results: Vec<Obj<R>>,
}

fn json_error(e: serde_json::Error) -> FileError {
    let reason = match e.classify() {
        serde_json::error::Category::Eof => format!("truncated JSON: {e}"),
        serde_json::error::Category::Io => format!("read error: {e}"),
        _ => format!("invalid JSON: {e}"),
    };
    FileError {
        line: Some(e.line() as u64),
        column: Some(e.column() as u64),
        reason,
    }
}

/// JSON input: a whole file already in memory (fast path: serde_json scans slices with memchr)
/// or a stream (for files too big to hold; memory stays bounded by one bucket).
pub enum Input<'a, R: BufRead> {
    Bytes(&'a [u8]),
    Reader(R),
}

fn run_page<R: DeserializeOwned, H: BucketHandler<R>, Rd: BufRead>(
    input: Input<'_, Rd>,
    handler: &mut H,
) -> Result<(), FileError> {
    fn go<'de, R: DeserializeOwned, H: BucketHandler<R>, J: serde_json::de::Read<'de>>(
        mut de: serde_json::Deserializer<J>,
        handler: &mut H,
    ) -> Result<bool, FileError> {
        let saw = PageSeed::<R, H>(handler, PhantomData)
            .deserialize(&mut de)
            .map_err(json_error)?;
        de.end().map_err(json_error)?;
        Ok(saw)
    }
    let saw_data = match input {
        Input::Bytes(b) => go::<R, H, _>(serde_json::Deserializer::from_slice(b), handler)?,
        Input::Reader(r) => go::<R, H, _>(serde_json::Deserializer::from_reader(r), handler)?,
    };
    if !saw_data {
        return Err(FileError::new("report page has no \"data\" array"));
    }
    Ok(())
}

/// Validates a bucket's times; on failure every result of the bucket is quarantined.
fn bucket_times(
    b_index: usize,
    s: &mut Scalar,
    e: &mut Scalar,
) -> Result<(DateTime<Utc>, DateTime<Utc>, BucketWidth), Quarantined> {
    let bad = |field: &str, reason: String| Quarantined {
        location: format!("data[{b_index}]"),
        line: None,
        field: Some(field.into()),
        reason,
        excerpt: None,
    };
    let start = s
        .req_str("starting_at")
        .and_then(|v| model::parse_ts("starting_at", &v))
        .map_err(|r| bad("starting_at", r))?;
    let end = e
        .req_str("ending_at")
        .and_then(|v| model::parse_ts("ending_at", &v))
        .map_err(|r| bad("ending_at", r))?;
    let secs = (end - start).num_seconds();
    let width = BucketWidth::from_seconds(secs).ok_or_else(|| {
        bad(
            "ending_at",
            format!("bucket of {secs} s is not 1m, 1h or 1d ({start} .. {end})"),
        )
    })?;
    Ok((start, end, width))
}

struct UsageHandler<'a> {
    sink: &'a mut dyn Sink,
    ordinal: u64,
}

fn opt_enum(
    field: &str,
    v: &mut Scalar,
    allowed: &[&str],
) -> Result<Option<String>, (String, String)> {
    let s = v.opt_str(field).map_err(|r| (field.to_string(), r))?;
    if let Some(s) = &s {
        check_enum(field, s, allowed).map_err(|r| (field.to_string(), r))?;
    }
    Ok(s)
}

fn field_err(field: &str) -> impl Fn(String) -> (String, String) + '_ {
    move |r| (field.to_string(), r)
}

impl UsageHandler<'_> {
    fn row(
        &self,
        start: DateTime<Utc>,
        width: BucketWidth,
        mut r: UsageResult,
    ) -> Result<UsageRow, (String, String)> {
        let cc = match r.cache_creation {
            Obj::Ok(c) => c,
            Obj::Missing | Obj::Null => {
                return Err((
                    "cache_creation".into(),
                    "missing required field cache_creation".into(),
                ));
            }
            Obj::Invalid(what) => {
                return Err((
                    "cache_creation".into(),
                    format!("cache_creation must be an object, got {what}"),
                ));
            }
        };
        let web = match r.server_tool_use {
            Obj::Ok(s) => s
                .web_search_requests
                .count_or_zero("server_tool_use.web_search_requests")
                .map_err(field_err("server_tool_use.web_search_requests"))?,
            Obj::Missing | Obj::Null => 0,
            Obj::Invalid(what) => {
                return Err((
                    "server_tool_use".into(),
                    format!("server_tool_use must be an object, got {what}"),
                ));
            }
        };
        let tokens = Tokens {
            uncached_input: r
                .uncached_input_tokens
                .count("uncached_input_tokens")
                .map_err(field_err("uncached_input_tokens"))?,
            cache_write_5m: cc
                .ephemeral_5m_input_tokens
                .count("cache_creation.ephemeral_5m_input_tokens")
                .map_err(field_err("cache_creation.ephemeral_5m_input_tokens"))?,
            cache_write_1h: cc
                .ephemeral_1h_input_tokens
                .count("cache_creation.ephemeral_1h_input_tokens")
                .map_err(field_err("cache_creation.ephemeral_1h_input_tokens"))?,
            cache_read: r
                .cache_read_input_tokens
                .count("cache_read_input_tokens")
                .map_err(field_err("cache_read_input_tokens"))?,
            output: r
                .output_tokens
                .count("output_tokens")
                .map_err(field_err("output_tokens"))?,
            web_search_requests: web,
        };
        let workspace_id = r
            .workspace_id
            .opt_str("workspace_id")
            .map_err(field_err("workspace_id"))?;
        Ok(UsageRow {
            bucket_start: start,
            bucket_width: width,
            provider: "anthropic",
            workspace_name: workspace_id
                .is_none()
                .then(|| DEFAULT_WORKSPACE_NAME.to_string()),
            workspace_id,
            api_key_id: r
                .api_key_id
                .opt_str("api_key_id")
                .map_err(field_err("api_key_id"))?,
            api_key_name: None,
            model: r.model.opt_str("model").map_err(field_err("model"))?,
            service_tier: opt_enum("service_tier", &mut r.service_tier, model::SERVICE_TIERS)?,
            context_window: opt_enum(
                "context_window",
                &mut r.context_window,
                model::CONTEXT_WINDOWS,
            )?,
            inference_geo: opt_enum("inference_geo", &mut r.inference_geo, model::INFERENCE_GEOS)?,
            speed: r.speed.opt_str("speed").map_err(field_err("speed"))?,
            account_id: r
                .account_id
                .opt_str("account_id")
                .map_err(field_err("account_id"))?,
            service_account_id: r
                .service_account_id
                .opt_str("service_account_id")
                .map_err(field_err("service_account_id"))?,
            tokens,
            cache_write_assumed_5m: false,
            source_format: SourceFormat::AnthropicUsageApi,
            source_row: self.ordinal,
        })
    }
}

impl BucketHandler<UsageResult> for UsageHandler<'_> {
    fn bucket(&mut self, bi: usize, mut b: Bucket<UsageResult>) {
        let times = bucket_times(bi, &mut b.starting_at, &mut b.ending_at);
        let (start, end, width) = match times {
            Ok(t) => t,
            Err(q) => {
                self.ordinal += b.results.len() as u64;
                let n = b.results.len();
                self.sink.quarantine(Quarantined {
                    reason: format!("{} ({n} result rows of this bucket not loaded)", q.reason),
                    ..q
                });
                return;
            }
        };
        self.sink.coverage(SourceFamily::AdminApi, start, end);
        for (ri, r) in b.results.into_iter().enumerate() {
            self.ordinal += 1;
            let location = format!("data[{bi}].results[{ri}]");
            let res = match r {
                Obj::Ok(r) => self.row(start, width, r),
                Obj::Invalid(what) => Err((
                    "results".into(),
                    format!("result must be an object, got {what}"),
                )),
                Obj::Missing | Obj::Null => Err(("results".into(), "result is null".into())),
            };
            match res {
                Ok(row) => self.sink.usage(row),
                Err((field, reason)) => self.sink.quarantine(Quarantined {
                    location,
                    line: None,
                    field: Some(field),
                    reason,
                    excerpt: Some(excerpt(&format!(
                        "bucket starting_at {}",
                        start.to_rfc3339()
                    ))),
                }),
            }
        }
    }
}

/// Parses one `usage_report/messages` page.
pub fn parse_usage<R: BufRead>(input: Input<'_, R>, sink: &mut dyn Sink) -> Result<(), FileError> {
    let mut h = UsageHandler { sink, ordinal: 0 };
    run_page::<UsageResult, _, _>(input, &mut h)
}

struct CostHandler<'a> {
    sink: &'a mut dyn Sink,
    ordinal: u64,
}

/// The cost report's `amount` is a decimal string in cents; the lake keeps dollars, exactly.
pub fn cents_to_dollars(raw: &str) -> Result<Decimal, String> {
    let t = raw.trim();
    let valid = !t.is_empty()
        && t.chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || c == '.' || (i == 0 && c == '-'))
        && t.matches('.').count() <= 1;
    if !valid {
        return Err(format!(
            "amount {raw:?} is not a plain decimal number of cents"
        ));
    }
    let mut d = Decimal::from_str_exact(t).map_err(|e| format!("amount {raw:?}: {e}"))?;
    if d.scale() + 2 > crate::lake::MONEY_SCALE {
        return Err(format!(
            "amount {raw:?} has more than {} fractional digits of a cent; refusing to round",
            crate::lake::MONEY_SCALE - 2
        ));
    }
    d.set_scale(d.scale() + 2)
        .map_err(|e| format!("amount {raw:?}: {e}"))?;
    Ok(d)
}

impl CostHandler<'_> {
    fn row(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        mut r: CostResult,
    ) -> Result<CostRow, (String, String)> {
        let amount_raw = match &r.amount {
            Scalar::Str(s) => s.clone(),
            Scalar::UInt(_) | Scalar::NegInt(_) | Scalar::NonInteger(_) => {
                return Err((
                    "amount".into(),
                    "amount is a JSON number; the cost report sends a decimal string and a number \
                     may already have lost precision, so it is not guessed"
                        .into(),
                ));
            }
            Scalar::Missing | Scalar::Null => {
                return Err(("amount".into(), "missing required field amount".into()));
            }
            _ => return Err(("amount".into(), "amount must be a decimal string".into())),
        };
        let amount = cents_to_dollars(&amount_raw).map_err(field_err("amount"))?;
        let currency = r
            .currency
            .req_str("currency")
            .map_err(field_err("currency"))?;
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err((
                "currency".into(),
                format!("currency {currency:?} is not an ISO 4217 code"),
            ));
        }
        let cost_type = r
            .cost_type
            .req_str("cost_type")
            .map_err(field_err("cost_type"))?;
        check_enum("cost_type", &cost_type, model::COST_TYPES).map_err(field_err("cost_type"))?;
        let workspace_id = r
            .workspace_id
            .opt_str("workspace_id")
            .map_err(field_err("workspace_id"))?;
        Ok(CostRow {
            bucket_start: start,
            bucket_end: end,
            provider: "anthropic",
            workspace_name: workspace_id
                .is_none()
                .then(|| DEFAULT_WORKSPACE_NAME.to_string()),
            workspace_id,
            description: r
                .description
                .opt_str("description")
                .map_err(field_err("description"))?,
            cost_type,
            model: r.model.opt_str("model").map_err(field_err("model"))?,
            token_type: opt_enum("token_type", &mut r.token_type, model::TOKEN_TYPES)?,
            service_tier: opt_enum("service_tier", &mut r.service_tier, model::SERVICE_TIERS)?,
            context_window: opt_enum(
                "context_window",
                &mut r.context_window,
                model::CONTEXT_WINDOWS,
            )?,
            inference_geo: opt_enum("inference_geo", &mut r.inference_geo, model::INFERENCE_GEOS)?,
            currency: currency.to_ascii_uppercase(),
            amount,
            amount_raw,
            source_format: SourceFormat::AnthropicCostApi,
            source_row: self.ordinal,
        })
    }
}

impl BucketHandler<CostResult> for CostHandler<'_> {
    fn bucket(&mut self, bi: usize, mut b: Bucket<CostResult>) {
        let (start, end) = match bucket_times(bi, &mut b.starting_at, &mut b.ending_at) {
            Ok((s, e, BucketWidth::Day)) => (s, e),
            Ok((s, e, w)) => {
                self.ordinal += b.results.len() as u64;
                self.sink.quarantine(Quarantined {
                    location: format!("data[{bi}]"),
                    line: None,
                    field: Some("ending_at".into()),
                    reason: format!(
                        "cost report buckets are daily, this one is {} ({s} .. {e})",
                        w.as_str()
                    ),
                    excerpt: None,
                });
                return;
            }
            Err(q) => {
                self.ordinal += b.results.len() as u64;
                self.sink.quarantine(q);
                return;
            }
        };
        self.sink.coverage(SourceFamily::AdminApi, start, end);
        for (ri, r) in b.results.into_iter().enumerate() {
            self.ordinal += 1;
            let res = match r {
                Obj::Ok(r) => self.row(start, end, r),
                Obj::Invalid(what) => Err((
                    "results".into(),
                    format!("result must be an object, got {what}"),
                )),
                Obj::Missing | Obj::Null => Err(("results".into(), "result is null".into())),
            };
            match res {
                Ok(row) => self.sink.cost(row),
                Err((field, reason)) => self.sink.quarantine(Quarantined {
                    location: format!("data[{bi}].results[{ri}]"),
                    line: None,
                    field: Some(field),
                    reason,
                    excerpt: Some(format!("bucket starting_at {}", start.to_rfc3339())),
                }),
            }
        }
    }
}

/// Parses one `cost_report` page.
pub fn parse_cost<R: BufRead>(input: Input<'_, R>, sink: &mut dyn Sink) -> Result<(), FileError> {
    let mut h = CostHandler { sink, ordinal: 0 };
    run_page::<CostResult, _, _>(input, &mut h)
}

#[derive(Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct ListPage<T> {
    data: Option<Vec<Obj<T>>>,
}

#[derive(Deserialize)]
struct WorkspaceItem {
    #[serde(default)]
    id: Scalar,
    #[serde(default)]
    name: Scalar,
    #[serde(default)]
    created_at: Scalar,
    #[serde(default)]
    archived_at: Scalar,
    #[serde(default)]
    display_color: Scalar,
}

#[derive(Deserialize, Default)]
struct CreatedBy {
    #[serde(default)]
    id: Scalar,
}

#[derive(Deserialize)]
struct ApiKeyItem {
    #[serde(default)]
    id: Scalar,
    #[serde(default)]
    name: Scalar,
    #[serde(default)]
    workspace_id: Scalar,
    #[serde(default)]
    created_at: Scalar,
    #[serde(default)]
    created_by: Obj<CreatedBy>,
    #[serde(default)]
    partial_key_hint: Scalar,
    #[serde(default)]
    status: Scalar,
}

fn opt_ts(field: &str, v: &mut Scalar) -> Result<Option<DateTime<Utc>>, (String, String)> {
    v.opt_str(field)
        .and_then(|s| s.map(|s| model::parse_ts(field, &s)).transpose())
        .map_err(|r| (field.to_string(), r))
}

fn parse_list<T: DeserializeOwned, R: BufRead>(
    input: Input<'_, R>,
    sink: &mut dyn Sink,
    mut each: impl FnMut(T, &mut dyn Sink) -> Result<(), (String, String)>,
) -> Result<(), FileError> {
    let page: ListPage<T> = match input {
        Input::Bytes(b) => serde_json::from_slice(b),
        Input::Reader(r) => serde_json::from_reader(r),
    }
    .map_err(json_error)?;
    let Some(data) = page.data else {
        return Err(FileError::new("list response has no \"data\" array"));
    };
    for (i, item) in data.into_iter().enumerate() {
        let res = match item {
            Obj::Ok(t) => each(t, sink),
            Obj::Invalid(w) => Err(("data".into(), format!("item must be an object, got {w}"))),
            Obj::Missing | Obj::Null => Err(("data".into(), "item is null".into())),
        };
        if let Err((field, reason)) = res {
            sink.quarantine(Quarantined {
                location: format!("data[{i}]"),
                line: None,
                field: Some(field),
                reason,
                excerpt: None,
            });
        }
    }
    Ok(())
}

/// Parses a `GET /v1/organizations/workspaces` response.
pub fn parse_workspaces<R: BufRead>(
    reader: Input<'_, R>,
    sink: &mut dyn Sink,
) -> Result<(), FileError> {
    parse_list::<WorkspaceItem, _>(reader, sink, |mut w, sink| {
        let ws = Workspace {
            id: w.id.req_str("id").map_err(field_err("id"))?,
            name: w.name.req_str("name").map_err(field_err("name"))?,
            created_at: opt_ts("created_at", &mut w.created_at)?,
            archived_at: opt_ts("archived_at", &mut w.archived_at)?,
            display_color: w
                .display_color
                .opt_str("display_color")
                .map_err(field_err("display_color"))?,
        };
        sink.workspace(ws);
        Ok(())
    })
}

/// Parses a `GET /v1/organizations/api_keys` response.
pub fn parse_api_keys<R: BufRead>(
    reader: Input<'_, R>,
    sink: &mut dyn Sink,
) -> Result<(), FileError> {
    parse_list::<ApiKeyItem, _>(reader, sink, |mut k, sink| {
        let created_by_id = match k.created_by {
            Obj::Ok(mut c) => {
                c.id.opt_str("created_by.id")
                    .map_err(field_err("created_by.id"))?
            }
            Obj::Missing | Obj::Null => None,
            Obj::Invalid(w) => {
                return Err((
                    "created_by".into(),
                    format!("created_by must be an object, got {w}"),
                ));
            }
        };
        let status = k.status.opt_str("status").map_err(field_err("status"))?;
        if let Some(s) = &status {
            check_enum("status", s, model::API_KEY_STATUSES).map_err(field_err("status"))?;
        }
        let key = ApiKey {
            id: k.id.req_str("id").map_err(field_err("id"))?,
            name: k.name.req_str("name").map_err(field_err("name"))?,
            workspace_id: k
                .workspace_id
                .opt_str("workspace_id")
                .map_err(field_err("workspace_id"))?,
            created_at: opt_ts("created_at", &mut k.created_at)?,
            created_by_id,
            partial_key_hint: k
                .partial_key_hint
                .opt_str("partial_key_hint")
                .map_err(field_err("partial_key_hint"))?,
            status,
        };
        sink.api_key(key);
        Ok(())
    })
}
