//! Anthropic Admin API report pages: `usage_report/messages` and `cost_report`, read through
//! the generic page streaming of [`crate::sources::paged`]. A result row with a bad field is
//! quarantined with its JSON path; the rest of the page is kept.
//!
//! Owns: the fields of a usage and a cost result, their validation and conversion into
//! canonical rows (tokens by class, cents to exact dollars). Must not: touch the lake, or know
//! how pages are streamed (that is `paged`).

use std::borrow::Cow;
use std::fmt;
use std::io::BufRead;

use crate::vocab::Provider;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::model::{
    self, BucketWidth, CostRow, DEFAULT_WORKSPACE_NAME, SourceFamily, SourceFormat, Tokens,
    UsageRow, check_enum,
};
use crate::sources::lenient::{FromObject, Obj, Scalar};
use crate::sources::paged::{
    Bucket, BucketHandler, Input, Keep, bucket_times, no_results, quarantine_repeated, repeated,
    run_page,
};
use crate::sources::{FileError, Limits, Quarantined, Sink, excerpt};
use crate::vocab::TokenClass;

#[derive(Deserialize, Default)]
struct CacheCreation<'a> {
    #[serde(default, borrow)]
    ephemeral_5m_input_tokens: Scalar<'a>,
    #[serde(default, borrow)]
    ephemeral_1h_input_tokens: Scalar<'a>,
}

#[derive(Deserialize, Default)]
struct ServerToolUse<'a> {
    #[serde(default, borrow)]
    web_search_requests: Scalar<'a>,
}

/// One result row of a usage page, as read: every field lenient (a wrong type is a reason to
/// quarantine the row, not an error of the page). Read in place by [`usage_from_map`].
#[derive(Default)]
struct UsageResult<'a> {
    api_key_id: Scalar<'a>,
    workspace_id: Scalar<'a>,
    model: Scalar<'a>,
    service_tier: Scalar<'a>,
    context_window: Scalar<'a>,
    inference_geo: Scalar<'a>,
    speed: Scalar<'a>,
    account_id: Scalar<'a>,
    service_account_id: Scalar<'a>,
    uncached_input_tokens: Scalar<'a>,
    cache_creation: Obj<CacheCreation<'a>>,
    cache_read_input_tokens: Scalar<'a>,
    output_tokens: Scalar<'a>,
    server_tool_use: Obj<ServerToolUse<'a>>,
    // Dimensions of the Enterprise analytics report: rows grouped by them can overlap, so a
    // page that carries them is refused rather than read with them dropped.
    product: Scalar<'a>,
    rbac_group_id: Scalar<'a>,
    slack_channel_id: Scalar<'a>,
}

/// The keys of a usage result, in [`UsageResult`]'s field order; any other key is ignored.
const USAGE_FIELDS: [&str; 17] = [
    "api_key_id",
    "workspace_id",
    "model",
    "service_tier",
    "context_window",
    "inference_geo",
    "speed",
    "account_id",
    "service_account_id",
    "uncached_input_tokens",
    "cache_creation",
    "cache_read_input_tokens",
    "output_tokens",
    "server_tool_use",
    "product",
    "rbac_group_id",
    "slack_channel_id",
];

/// A key of a usage result: its index in [`USAGE_FIELDS`], or `USAGE_FIELDS.len()`.
struct UsageField(usize);

impl<'de> Deserialize<'de> for UsageField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = UsageField;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, v: &str) -> Result<UsageField, E> {
                // A match (the compiler switches on length first), not a scan of the names.
                Ok(UsageField(match v {
                    "api_key_id" => 0,
                    "workspace_id" => 1,
                    "model" => 2,
                    "service_tier" => 3,
                    "context_window" => 4,
                    "inference_geo" => 5,
                    "speed" => 6,
                    "account_id" => 7,
                    "service_account_id" => 8,
                    "uncached_input_tokens" => 9,
                    "cache_creation" => 10,
                    "cache_read_input_tokens" => 11,
                    "output_tokens" => 12,
                    "server_tool_use" => 13,
                    "product" => 14,
                    "rbac_group_id" => 15,
                    "slack_channel_id" => 16,
                    _ => USAGE_FIELDS.len(),
                }))
            }
        }
        d.deserialize_identifier(V)
    }
}

/// A usage result read straight into its canonical row: the lenient fields are filled in place
/// and converted, so the large parsed struct is never moved or stored. A key given twice fails
/// the page, as it would for any derived struct ("duplicate field"). A result that is not an
/// object is refused with what it is, as [`Obj`] says it.
impl<'de> FromObject<'de> for UsageKept<'de> {
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        usage_from_map(map)
    }
    fn not_object(what: Option<String>) -> Self {
        Err(match what {
            None => ("results".into(), "result is null".into()),
            Some(w) => (
                "results".into(),
                format!("result must be an object, got {w}"),
            ),
        })
    }
}

fn usage_from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<UsageKept<'de>, A::Error> {
    let mut r = UsageResult::default();
    let mut seen = 0u32;
    while let Some(UsageField(i)) = map.next_key()? {
        if i < USAGE_FIELDS.len() {
            if seen & (1 << i) != 0 {
                return Err(serde::de::Error::duplicate_field(USAGE_FIELDS[i]));
            }
            seen |= 1 << i;
        }
        match i {
            0 => r.api_key_id = map.next_value()?,
            1 => r.workspace_id = map.next_value()?,
            2 => r.model = map.next_value()?,
            3 => r.service_tier = map.next_value()?,
            4 => r.context_window = map.next_value()?,
            5 => r.inference_geo = map.next_value()?,
            6 => r.speed = map.next_value()?,
            7 => r.account_id = map.next_value()?,
            8 => r.service_account_id = map.next_value()?,
            9 => r.uncached_input_tokens = map.next_value()?,
            10 => r.cache_creation = map.next_value()?,
            11 => r.cache_read_input_tokens = map.next_value()?,
            12 => r.output_tokens = map.next_value()?,
            13 => r.server_tool_use = map.next_value()?,
            14 => r.product = map.next_value()?,
            15 => r.rbac_group_id = map.next_value()?,
            16 => r.slack_channel_id = map.next_value()?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(usage_row(&mut r))
}

/// A row of a page of the Enterprise analytics report, which this parser must not read.
const ENTERPRISE_ROW: &str = "rows carry product / rbac_group_id / slack_channel_id: this is an \
    Enterprise analytics usage_report page, whose rows can overlap (one user in several groups); \
    tokenledger does not read it yet: export the Admin API usage_report/messages instead";

#[derive(Deserialize)]
struct CostResult<'a> {
    #[serde(default, borrow)]
    amount: Scalar<'a>,
    #[serde(default, borrow)]
    currency: Scalar<'a>,
    #[serde(default, borrow)]
    cost_type: Scalar<'a>,
    #[serde(default, borrow)]
    description: Scalar<'a>,
    #[serde(default, borrow)]
    model: Scalar<'a>,
    #[serde(default, borrow)]
    token_type: Scalar<'a>,
    #[serde(default, borrow)]
    service_tier: Scalar<'a>,
    #[serde(default, borrow)]
    context_window: Scalar<'a>,
    #[serde(default, borrow)]
    inference_geo: Scalar<'a>,
    #[serde(default, borrow)]
    workspace_id: Scalar<'a>,
    #[serde(default, borrow)]
    list_amount: Scalar<'a>,
}

impl<'de> Keep<'de> for Obj<CostResult<'de>> {
    fn read<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Obj::deserialize(d)
    }
}

/// A usage result as its canonical row (bucket time, width and ordinal filled in by the
/// bucket), or the field and reason it is refused for.
type UsageKept<'a> = Result<UsageRow<'a>, (String, String)>;

impl<'de> Keep<'de> for UsageKept<'de> {
    fn read<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::sources::lenient::object(d)
    }
}

struct UsageHandler<'a> {
    sink: &'a mut dyn Sink,
    ordinal: u64,
    limits: &'a Limits,
    fatal: Option<FileError>,
}

fn opt_enum<'a>(
    field: &str,
    v: &mut Scalar<'a>,
    allowed: &[&str],
) -> Result<Option<Cow<'a, str>>, (String, String)> {
    let s = v.opt_text(field).map_err(|r| (field.to_string(), r))?;
    if let Some(s) = &s {
        check_enum(field, s, allowed).map_err(|r| (field.to_string(), r))?;
    }
    Ok(s)
}

/// [`opt_enum`], owned.
fn opt_enum_owned(
    field: &str,
    v: &mut Scalar<'_>,
    allowed: &[&str],
) -> Result<Option<String>, (String, String)> {
    Ok(opt_enum(field, v, allowed)?.map(Cow::into_owned))
}

pub(super) fn field_err(field: &str) -> impl Fn(String) -> (String, String) + '_ {
    move |r| (field.to_string(), r)
}

/// The token counts of a usage result: the five classes (cache writes nested under
/// `cache_creation`) and web searches (under `server_tool_use`, optional).
fn usage_tokens(r: &mut UsageResult<'_>) -> Result<Tokens, (String, String)> {
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
        ..Tokens::default()
    };
    Ok(tokens)
}

/// A usage result's canonical row; its bucket (start, width) and ordinal are filled in by the
/// bucket it is in.
fn usage_row<'a>(r: &mut UsageResult<'a>) -> UsageKept<'a> {
    if r.product.is_set() || r.rbac_group_id.is_set() || r.slack_channel_id.is_set() {
        return Err(("product".into(), ENTERPRISE_ROW.into()));
    }
    let tokens = usage_tokens(r)?;
    let workspace_id = r
        .workspace_id
        .opt_text("workspace_id")
        .map_err(field_err("workspace_id"))?;
    Ok(UsageRow {
        bucket_start: DateTime::UNIX_EPOCH,
        bucket_width: BucketWidth::Day,
        provider: Provider::Anthropic,
        workspace_name: workspace_id
            .is_none()
            .then_some(Cow::Borrowed(DEFAULT_WORKSPACE_NAME)),
        workspace_id,
        api_key_id: r
            .api_key_id
            .opt_text("api_key_id")
            .map_err(field_err("api_key_id"))?,
        api_key_name: None,
        model: r.model.opt_text("model").map_err(field_err("model"))?,
        service_tier: opt_enum("service_tier", &mut r.service_tier, model::SERVICE_TIERS)?,
        context_window: opt_enum(
            "context_window",
            &mut r.context_window,
            model::CONTEXT_WINDOWS,
        )?,
        inference_geo: opt_enum("inference_geo", &mut r.inference_geo, model::INFERENCE_GEOS)?,
        speed: r.speed.opt_text("speed").map_err(field_err("speed"))?,
        account_id: r
            .account_id
            .opt_text("account_id")
            .map_err(field_err("account_id"))?,
        service_account_id: r
            .service_account_id
            .opt_text("service_account_id")
            .map_err(field_err("service_account_id"))?,
        product: None,
        agent_id: None,
        actor_type: None,
        actor_id: None,
        actor_email: None,
        tokens,
        cache_write_assumed_5m: false,
        source_format: SourceFormat::AnthropicUsageApi,
        source_row: 0,
    })
}

impl<'a> BucketHandler<'a, UsageKept<'a>> for UsageHandler<'_> {
    fn fatal(&mut self) -> &mut Option<FileError> {
        &mut self.fatal
    }
    fn missing_results(&mut self, bi: usize) {
        self.sink.quarantine(no_results(bi));
    }
    fn bucket(&mut self, bi: usize, mut b: Bucket<'a, UsageKept<'a>>) {
        let times = bucket_times(bi, &mut b.starting_at, &mut b.ending_at, self.limits);
        let n = b.results.len();
        let (start, end, width) = match times {
            Ok(t) => t,
            Err(q) => {
                self.ordinal += n as u64;
                self.sink.quarantine(Quarantined {
                    reason: format!("{} ({n} result rows of this bucket not loaded)", q.reason),
                    ..q
                });
                return;
            }
        };
        for (ri, res) in b.results.iter_mut().enumerate() {
            self.ordinal += 1;
            match res {
                Ok(row) => {
                    row.bucket_start = start;
                    row.bucket_width = width;
                    row.source_row = self.ordinal;
                }
                Err((field, reason)) if reason == ENTERPRISE_ROW => {
                    self.fatal = Some(FileError::new(format!(
                        "data[{bi}].results[{ri}]: {field}: {reason}"
                    )));
                    return;
                }
                Err(_) => {}
            }
        }
        let ok = b.results.iter().filter_map(|r| r.as_ref().ok());
        if let Some(pair) = repeated(n, ok.map(UsageRow::dimensions)) {
            quarantine_repeated(self.sink, bi, n, pair);
            return;
        }
        self.sink.coverage(SourceFamily::Api, start, end);
        for (ri, res) in b.results.iter_mut().enumerate() {
            match res {
                Ok(row) => self.sink.usage(row),
                Err((field, reason)) => self.sink.quarantine(Quarantined {
                    location: format!("data[{bi}].results[{ri}]"),
                    line: None,
                    field: Some(std::mem::take(field)),
                    reason: std::mem::take(reason),
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
    run_page::<UsageKept<'_>, _, _>(input, &mut h)
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
fn amount_text(amount: &Scalar<'_>) -> Result<String, (String, String)> {
    match amount {
        Scalar::Str(s) => Ok(s.to_string()),
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

/// A cost row's `cost_type`: required when the row is grouped by description; absent on a page
/// not grouped by it. The cost report's default grouping is none, and `workspace_id` alone is
/// common: such rows carry no description and no cost_type, and are the day's (or the day ×
/// workspace's) total (Admin API cost_report: `group_by[]` is `workspace_id` and/or
/// `description`; the fields of a dimension not grouped are null).
fn cost_type(v: &mut Scalar<'_>, described: bool) -> Result<Option<String>, (String, String)> {
    match v.opt_str("cost_type").map_err(field_err("cost_type"))? {
        Some(ct) => {
            check_enum("cost_type", &ct, model::COST_TYPES).map_err(field_err("cost_type"))?;
            Ok(Some(ct))
        }
        None if !described => Ok(None),
        None => Err((
            "cost_type".into(),
            "missing required field cost_type (a row grouped by description names its cost \
             type)"
                .into(),
        )),
    }
}

impl CostHandler<'_> {
    fn row(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        mut r: CostResult<'_>,
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
        let currency = crate::sources::usd_only(&currency).map_err(field_err("currency"))?;
        let description = r
            .description
            .opt_str("description")
            .map_err(field_err("description"))?;
        let cost_type = cost_type(&mut r.cost_type, description.is_some())?;
        let workspace_id = r
            .workspace_id
            .opt_str("workspace_id")
            .map_err(field_err("workspace_id"))?;
        Ok(CostRow {
            bucket_start: start,
            bucket_end: end,
            provider: Provider::Anthropic,
            // A null workspace is the default one on a page grouped by charge; on a page not
            // grouped by description it may be the whole organisation (reconcile decides per
            // day), so it is not named.
            workspace_name: (workspace_id.is_none() && cost_type.is_some())
                .then(|| DEFAULT_WORKSPACE_NAME.to_string()),
            workspace_id,
            description,
            cost_type,
            model: r.model.opt_str("model").map_err(field_err("model"))?,
            token_type: opt_enum_owned("token_type", &mut r.token_type, model::TOKEN_TYPES)?,
            service_tier: opt_enum_owned(
                "service_tier",
                &mut r.service_tier,
                model::SERVICE_TIERS,
            )?,
            context_window: opt_enum_owned(
                "context_window",
                &mut r.context_window,
                model::CONTEXT_WINDOWS,
            )?,
            inference_geo: opt_enum_owned(
                "inference_geo",
                &mut r.inference_geo,
                model::INFERENCE_GEOS,
            )?,
            currency,
            amount,
            amount_raw,
            list_amount: None,
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
        r.cost_type.as_deref(),
        r.model.as_deref(),
        r.token_type.as_deref(),
        r.service_tier.as_deref(),
        r.context_window.as_deref(),
        r.inference_geo.as_deref(),
    ]
}

impl<'a> BucketHandler<'a, Obj<CostResult<'a>>> for CostHandler<'_> {
    fn fatal(&mut self) -> &mut Option<FileError> {
        &mut self.fatal
    }
    fn missing_results(&mut self, bi: usize) {
        self.sink.quarantine(no_results(bi));
    }
    fn bucket(&mut self, bi: usize, mut b: Bucket<'a, Obj<CostResult<'a>>>) {
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
        if let Some(pair) = repeated(n, ok.map(cost_key)) {
            quarantine_repeated(self.sink, bi, n, pair);
            return;
        }
        self.sink.coverage(SourceFamily::Api, start, end);
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
    run_page::<Obj<CostResult<'_>>, _, _>(input, &mut h)
}
