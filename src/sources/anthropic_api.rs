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
use super::{FileError, Limits, Quarantined, Sink, excerpt, mask_key_hint};
use crate::model::{
    self, ApiKey, BucketWidth, CostRow, DEFAULT_WORKSPACE_NAME, SourceFamily, SourceFormat, Tokens,
    UsageRow, Workspace, check_enum,
};
use crate::vocab::TokenClass;

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
    // Dimensions of the Enterprise analytics report: rows grouped by them can overlap, so a
    // page that carries them is refused rather than read with them dropped.
    #[serde(default)]
    product: Scalar,
    #[serde(default)]
    rbac_group_id: Scalar,
    #[serde(default)]
    slack_channel_id: Scalar,
}

/// A row of a page of the Enterprise analytics report, which this parser must not read.
const ENTERPRISE_ROW: &str = "rows carry product / rbac_group_id / slack_channel_id: this is an \
    Enterprise analytics usage_report page, whose rows can overlap (one user in several groups); \
    tokenledger does not read it yet: export the Admin API usage_report/messages instead";

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
    #[serde(default)]
    list_amount: Scalar,
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
    /// A problem that makes the whole file unusable; buckets after it are skipped.
    fn fatal(&mut self) -> &mut Option<FileError>;
    /// A bucket object without `results`.
    fn missing_results(&mut self, index: usize);
}

/// What the page object said besides its buckets.
#[derive(Default)]
struct PageInfo {
    saw_data: bool,
    /// A top-level key of the Enterprise analytics report (`data_refreshed_at`, …).
    enterprise_key: Option<String>,
}

struct PageSeed<'a, R, H>(&'a mut H, PhantomData<R>);
struct DataSeed<'a, R, H>(&'a mut H, PhantomData<R>);

impl<'de, R: DeserializeOwned, H: BucketHandler<R>> DeserializeSeed<'de> for PageSeed<'_, R, H> {
    type Value = PageInfo;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<PageInfo, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, R: DeserializeOwned, H: BucketHandler<R>> Visitor<'de> for PageSeed<'_, R, H> {
    type Value = PageInfo;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a report page object with a data array")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PageInfo, A::Error> {
        let mut info = PageInfo::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "data" {
                if info.saw_data {
                    // Two `data` arrays: reading both would count their buckets twice.
                    return Err(serde::de::Error::custom(
                        "the page has the key \"data\" twice; its buckets would be counted twice",
                    ));
                }
                map.next_value_seed(DataSeed::<R, H>(self.0, PhantomData))?;
                info.saw_data = true;
            } else {
                if matches!(key.as_ref(), "data_refreshed_at" | "organization_id") {
                    info.enterprise_key = Some(key.into_owned());
                }
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(info)
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
            if self.0.fatal().is_some() {
                continue; // the file fails anyway: read on only to check the JSON
            }
            match b.results {
                Some(results) => self.0.bucket(
                    i,
                    Bucket {
                        starting_at: b.starting_at,
                        ending_at: b.ending_at,
                        results,
                    },
                ),
                None if b.group.is_set() || b.usage.is_set() || b.cost.is_set() => {
                    *self.0.fatal() = Some(FileError::new(format!(
                        "data[{i}] is a flat item with group/usage/cost and no results[]: a page of \
                         the Usage & Cost Analytics API, which tokenledger does not read yet; \
                         export usage_report/messages and cost_report instead"
                    )));
                }
                // Without results[] the bucket says nothing: it must not restate anything.
                None => self.0.missing_results(i),
            }
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
    #[serde(default)]
    results: Option<Vec<Obj<R>>>,
    // Keys of the Analytics API's flat items, only to recognise them.
    #[serde(default)]
    group: Scalar,
    #[serde(default)]
    usage: Scalar,
    #[serde(default)]
    cost: Scalar,
}

fn json_error(e: serde_json::Error) -> FileError {
    let reason = match e.classify() {
        serde_json::error::Category::Eof => format!("truncated JSON: {e}"),
        serde_json::error::Category::Io => format!("read error: {e}"),
        _ => format!("invalid JSON: {e}"),
    };
    let mut err = FileError::at(Some(e.line() as u64), Some(e.column() as u64), reason);
    err.huge_number = e.to_string().starts_with("number out of range");
    err
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
    ) -> Result<PageInfo, FileError> {
        let info = PageSeed::<R, H>(handler, PhantomData)
            .deserialize(&mut de)
            .map_err(json_error)?;
        de.end().map_err(json_error)?;
        Ok(info)
    }
    let info = match input {
        Input::Bytes(b) => go::<R, H, _>(serde_json::Deserializer::from_slice(b), handler)?,
        Input::Reader(r) => go::<R, H, _>(serde_json::Deserializer::from_reader(r), handler)?,
    };
    if let Some(e) = handler.fatal().take() {
        return Err(e);
    }
    if let Some(k) = info.enterprise_key {
        return Err(FileError::new(format!(
            "the page has a top-level {k:?}: an Enterprise analytics report page, whose rows can \
             overlap (one user in several groups); tokenledger does not read it yet: export the \
             Admin API usage_report/messages and cost_report instead"
        )));
    }
    if !info.saw_data {
        return Err(FileError::new("report page has no \"data\" array"));
    }
    Ok(())
}

/// Validates a bucket's times (RFC 3339, normalised to UTC; a width of 1m, 1h or 1d, aligned
/// to it; inside the plausible window); on failure every result of the bucket is quarantined.
fn bucket_times(
    b_index: usize,
    s: &mut Scalar,
    e: &mut Scalar,
    limits: &Limits,
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
    limits
        .check_bucket(start, end, width)
        .map_err(|r| bad("starting_at", r))?;
    Ok((start, end, width))
}

/// The quarantine record of a bucket without `results`.
fn no_results(b_index: usize) -> Quarantined {
    Quarantined {
        location: format!("data[{b_index}]"),
        line: None,
        field: Some("results".into()),
        reason: "bucket has no results array: not a well-formed bucket, so it does not restate \
                 this period (an empty bucket says \"results\": [])"
            .into(),
        excerpt: None,
    }
}

/// Result rows of one bucket whose dimensions repeat: `(first, second)` ordinals in the bucket.
fn repeated<K: std::hash::Hash + Eq>(keys: impl Iterator<Item = K>) -> Option<(usize, usize)> {
    let mut seen = std::collections::HashMap::new();
    for (i, k) in keys.enumerate() {
        if let Some(&j) = seen.get(&k) {
            return Some((j, i));
        }
        seen.insert(k, i);
    }
    None
}

/// Quarantines every result of a bucket whose rows repeat a dimension combination: summing
/// them would count usage twice, keeping one would guess. The bucket restates nothing.
fn quarantine_repeated(sink: &mut dyn Sink, bi: usize, n: usize, (a, b): (usize, usize)) {
    for ri in 0..n {
        sink.quarantine(Quarantined {
            location: format!("data[{bi}].results[{ri}]"),
            line: None,
            field: None,
            reason: format!(
                "results[{a}] and results[{b}] of this bucket have the same dimensions; the \
                 provider sends one row per combination, so the bucket ({n} rows) is not loaded \
                 and does not restate this period"
            ),
            excerpt: None,
        });
    }
}

struct UsageHandler<'a> {
    sink: &'a mut dyn Sink,
    ordinal: u64,
    limits: &'a Limits,
    fatal: Option<FileError>,
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

/// The token counts of a usage result: the five classes (cache writes nested under
/// `cache_creation`) and web searches (under `server_tool_use`, optional).
fn usage_tokens(r: &mut UsageResult) -> Result<Tokens, (String, String)> {
    let cc = match std::mem::take(&mut r.cache_creation) {
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
    let web = match std::mem::take(&mut r.server_tool_use) {
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
    // The fields of a usage result carry the cost report's token-type names.
    let count = |v: &Scalar, c: TokenClass| {
        let field = c.cost_report_type();
        v.count(field).map_err(field_err(field))
    };
    let tokens = Tokens {
        uncached_input: count(&r.uncached_input_tokens, TokenClass::UncachedInput)?,
        cache_write_5m: count(&cc.ephemeral_5m_input_tokens, TokenClass::CacheWrite5m)?,
        cache_write_1h: count(&cc.ephemeral_1h_input_tokens, TokenClass::CacheWrite1h)?,
        cache_read: count(&r.cache_read_input_tokens, TokenClass::CacheRead)?,
        output: count(&r.output_tokens, TokenClass::Output)?,
        web_search_requests: web,
    };
    Ok(tokens)
}

impl UsageHandler<'_> {
    fn row(
        &self,
        start: DateTime<Utc>,
        width: BucketWidth,
        mut r: UsageResult,
    ) -> Result<UsageRow, (String, String)> {
        if r.product.is_set() || r.rbac_group_id.is_set() || r.slack_channel_id.is_set() {
            return Err(("product".into(), ENTERPRISE_ROW.into()));
        }
        let tokens = usage_tokens(&mut r)?;
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
    fn fatal(&mut self) -> &mut Option<FileError> {
        &mut self.fatal
    }
    fn missing_results(&mut self, bi: usize) {
        self.sink.quarantine(no_results(bi));
    }
    fn bucket(&mut self, bi: usize, mut b: Bucket<UsageResult>) {
        let times = bucket_times(bi, &mut b.starting_at, &mut b.ending_at, self.limits);
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
        let n = b.results.len();
        let mut rows = Vec::with_capacity(n);
        for (ri, r) in b.results.into_iter().enumerate() {
            self.ordinal += 1;
            let res = match r {
                Obj::Ok(r) => self.row(start, width, r),
                Obj::Invalid(what) => Err((
                    "results".into(),
                    format!("result must be an object, got {what}"),
                )),
                Obj::Missing | Obj::Null => Err(("results".into(), "result is null".into())),
            };
            if let Err((field, reason)) = &res
                && reason == ENTERPRISE_ROW
            {
                self.fatal = Some(FileError::new(format!(
                    "data[{bi}].results[{ri}]: {field}: {reason}"
                )));
                return;
            }
            rows.push(res);
        }
        let ok = rows.iter().filter_map(|r| r.as_ref().ok());
        if let Some(pair) = repeated(ok.map(UsageRow::dimensions)) {
            quarantine_repeated(self.sink, bi, n, pair);
            return;
        }
        self.sink.coverage(SourceFamily::AdminApi, start, end);
        for (ri, res) in rows.into_iter().enumerate() {
            match res {
                Ok(row) => self.sink.usage(row),
                Err((field, reason)) => self.sink.quarantine(Quarantined {
                    location: format!("data[{bi}].results[{ri}]"),
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
pub fn parse_usage<R: BufRead>(
    input: Input<'_, R>,
    limits: &Limits,
    sink: &mut dyn Sink,
) -> Result<(), FileError> {
    let mut h = UsageHandler {
        sink,
        ordinal: 0,
        limits,
        fatal: None,
    };
    run_page::<UsageResult, _, _>(input, &mut h)
}

struct CostHandler<'a> {
    sink: &'a mut dyn Sink,
    ordinal: u64,
    limits: &'a Limits,
    fatal: Option<FileError>,
}

/// No single cost line may reach this many dollars: far beyond any real bill, and low enough
/// that no line overflows the lake's `DECIMAL(28,12)` and no sum its `DECIMAL(38,12)`.
pub const MAX_AMOUNT_DOLLARS: i64 = 1_000_000_000_000_000;

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
    if d.scale() + 2 > crate::money::SCALE {
        return Err(format!(
            "amount {raw:?} has more than {} fractional digits of a cent; refusing to round",
            crate::money::SCALE - 2
        ));
    }
    d.set_scale(d.scale() + 2)
        .map_err(|e| format!("amount {raw:?}: {e}"))?;
    if d.abs() >= Decimal::from(MAX_AMOUNT_DOLLARS) {
        return Err(format!(
            "amount {raw:?} cents is ${d}, implausibly large (limit ${MAX_AMOUNT_DOLLARS} per line); refusing it so sums stay exact"
        ));
    }
    Ok(d)
}

/// The cost report's amount: a decimal string of cents, never a JSON number.
fn amount_text(amount: &Scalar) -> Result<String, (String, String)> {
    match amount {
        Scalar::Str(s) => Ok(s.clone()),
        Scalar::UInt(_) | Scalar::NegInt(_) | Scalar::NonInteger(_) => Err((
            "amount".into(),
            "amount is a JSON number; the cost report sends a decimal string and a number \
             may already have lost precision, so it is not guessed"
                .into(),
        )),
        Scalar::Missing | Scalar::Null => {
            Err(("amount".into(), "missing required field amount".into()))
        }
        _ => Err(("amount".into(), "amount must be a decimal string".into())),
    }
}

impl CostHandler<'_> {
    fn row(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        mut r: CostResult,
    ) -> Result<CostRow, (String, String)> {
        if r.list_amount.is_set() {
            return Err((
                "list_amount".into(),
                "rows carry list_amount: an Enterprise or Analytics cost page, which tokenledger \
                 does not read yet"
                    .into(),
            ));
        }
        let amount_raw = amount_text(&r.amount)?;
        let amount = cents_to_dollars(&amount_raw).map_err(field_err("amount"))?;
        let currency = r
            .currency
            .req_str("currency")
            .map_err(field_err("currency"))?;
        let currency = super::usd_only(&currency).map_err(field_err("currency"))?;
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
            currency,
            amount,
            amount_raw,
            source_format: SourceFormat::AnthropicCostApi,
            source_row: self.ordinal,
        })
    }
}

/// The dimensions that identify a cost row within its bucket.
fn cost_key(r: &CostRow) -> [Option<&str>; 8] {
    [
        r.workspace_id.as_deref(),
        r.description.as_deref(),
        Some(r.cost_type.as_str()),
        r.model.as_deref(),
        r.token_type.as_deref(),
        r.service_tier.as_deref(),
        r.context_window.as_deref(),
        r.inference_geo.as_deref(),
    ]
}

impl BucketHandler<CostResult> for CostHandler<'_> {
    fn fatal(&mut self) -> &mut Option<FileError> {
        &mut self.fatal
    }
    fn missing_results(&mut self, bi: usize) {
        self.sink.quarantine(no_results(bi));
    }
    fn bucket(&mut self, bi: usize, mut b: Bucket<CostResult>) {
        let (start, end) = match bucket_times(bi, &mut b.starting_at, &mut b.ending_at, self.limits)
        {
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
        let n = b.results.len();
        let mut rows = Vec::with_capacity(n);
        for r in b.results {
            self.ordinal += 1;
            rows.push(match r {
                Obj::Ok(r) => self.row(start, end, r),
                Obj::Invalid(what) => Err((
                    "results".into(),
                    format!("result must be an object, got {what}"),
                )),
                Obj::Missing | Obj::Null => Err(("results".into(), "result is null".into())),
            });
        }
        let ok = rows.iter().filter_map(|r| r.as_ref().ok());
        if let Some(pair) = repeated(ok.map(cost_key)) {
            quarantine_repeated(self.sink, bi, n, pair);
            return;
        }
        self.sink.coverage(SourceFamily::AdminApi, start, end);
        for (ri, res) in rows.into_iter().enumerate() {
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
pub fn parse_cost<R: BufRead>(
    input: Input<'_, R>,
    limits: &Limits,
    sink: &mut dyn Sink,
) -> Result<(), FileError> {
    let mut h = CostHandler {
        sink,
        ordinal: 0,
        limits,
        fatal: None,
    };
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
                .map_err(field_err("partial_key_hint"))?
                .map(|h| mask_key_hint(&h)),
            status,
        };
        sink.api_key(key);
        Ok(())
    })
}
