//! What a pull asks each provider for: endpoints, their parameters, and the windows a range is
//! cut into (pure: no I/O, no clock).
//!
//! Owns: the endpoint table of each provider (`provider-apis.md` §1–3, 5–6) — path, query,
//! how it pages, the longest window one request may span (31 buckets of `1d`, 168 of `1h`,
//! 1440 of `1m`; the Analytics API 31 days, 24 h with `1m`; lists: no window) — and the
//! `SourceFormat` its pages are, so the landing folder names it (a page of empty buckets says
//! nothing of its endpoint; the folder does).
//! Must not: fetch, write, or decide where a night starts (that is `pull`, from `pull_log`).
//!
//! OpenAI's `group_by[]` per endpoint is from the OpenAPI description (`openai/openai-openapi`,
//! as generated in `oapicf/openapi-openai` `docs/UsageApi.md`): completions `project_id,
//! user_id, api_key_id, model, batch` (+ `service_tier`, provider-apis.md §5); embeddings,
//! moderations and audio `project_id, user_id, api_key_id, model`; images those + `size,
//! source`; vector stores and code interpreter sessions `project_id`. The file- and web-search
//! endpoints postdate that description: they are grouped by `project_id` only, the one
//! dimension every endpoint documents.

use chrono::{DateTime, Duration, Utc};

use crate::model::{BucketWidth, OpenAiEndpoint, SourceFormat};
use crate::vocab::Provider;

/// The beta the Analytics endpoints need (`provider-apis.md` §1).
pub const ANALYTICS_BETA: &str = "analytics-usage-cost-2026-08-24";

/// How an endpoint's pages chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// `has_more` + `next_page`, sent back as `page` (the reports, Usage, Costs, Analytics).
    NextPage,
    /// `has_more` + `last_id`, sent back as this parameter (`after_id`; OpenAI's `after`).
    LastId(&'static str),
}

/// How a time range is written into the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    /// `starting_at` / `ending_at`, RFC 3339 (Anthropic).
    Rfc3339,
    /// `start_time` / `end_time`, Unix seconds (OpenAI).
    Unix,
    /// No range: a list, pulled whole every time.
    None,
}

/// What the pages of one endpoint become in `landing/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landing {
    /// One file per page, as the API sent it.
    Pages,
    /// One Analytics query file: `{"tokenledger_query": {…}, "pages": [page…]}` (the query
    /// says which range and grouping the pages answer; `sources::anthropic::analytics`).
    Query,
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub provider: Provider,
    /// The source format of its pages; also the landing folder's name.
    pub format: SourceFormat,
    pub path: String,
    /// Parameters every request of it carries (group_by[], bucket_width, limit, …).
    pub query: Vec<(String, String)>,
    pub paging: Paging,
    pub times: Times,
    pub landing: Landing,
    /// Bucket width and buckets per page (the report endpoints), for the page-count bound.
    pub buckets: Option<(BucketWidth, i64)>,
    /// The longest window one request may span.
    pub span: Duration,
    /// An `anthropic-beta` header the endpoint needs (the Analytics API).
    pub beta: Option<&'static str>,
}

impl Endpoint {
    pub fn name(&self) -> &'static str {
        self.format.as_str()
    }
    /// The most pages a window can take: one per bucket (a page brings at least one; the API
    /// may close a page before `limit`) and one more; rows-paged endpoints and lists get a
    /// generous fixed bound.
    pub fn max_pages(&self, window: (DateTime<Utc>, DateTime<Utc>)) -> usize {
        match self.buckets {
            Some((w, _)) => {
                let n = ((window.1 - window.0).num_seconds() + w.seconds() - 1) / w.seconds();
                n as usize + 1
            }
            None => 10_000,
        }
    }
    /// The time parameters of `window`.
    pub fn range_query(&self, window: (DateTime<Utc>, DateTime<Utc>)) -> Vec<(String, String)> {
        let rfc = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        match self.times {
            Times::Rfc3339 => vec![
                ("starting_at".into(), rfc(window.0)),
                ("ending_at".into(), rfc(window.1)),
            ],
            Times::Unix => vec![
                ("start_time".into(), window.0.timestamp().to_string()),
                ("end_time".into(), window.1.timestamp().to_string()),
            ],
            Times::None => Vec::new(),
        }
    }
}

fn pairs(kv: &[(&str, &str)]) -> Vec<(String, String)> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn group_by(dims: &[&str]) -> Vec<(String, String)> {
    dims.iter()
        .map(|d| ("group_by[]".to_string(), d.to_string()))
        .collect()
}

/// The buckets one request of `width` may hold (the reports' and Usage API's `limit` maximum).
pub fn max_buckets(width: BucketWidth) -> i64 {
    match width {
        BucketWidth::Day => 31,
        BucketWidth::Hour => 168,
        BucketWidth::Minute => 1440,
    }
}

fn report(
    provider: Provider,
    format: SourceFormat,
    path: &str,
    times: Times,
    width: BucketWidth,
    dims: &[&str],
) -> Endpoint {
    let limit = max_buckets(width);
    let mut query = pairs(&[
        ("bucket_width", width.as_str()),
        ("limit", &limit.to_string()),
    ]);
    query.extend(group_by(dims));
    Endpoint {
        provider,
        format,
        path: path.into(),
        query,
        paging: Paging::NextPage,
        times,
        landing: Landing::Pages,
        buckets: Some((width, limit)),
        span: Duration::seconds(width.seconds() * limit),
        beta: None,
    }
}

fn list(provider: Provider, format: SourceFormat, path: &str, query: &[(&str, &str)]) -> Endpoint {
    Endpoint {
        provider,
        format,
        path: path.into(),
        query: pairs(query),
        paging: Paging::LastId(if provider == Provider::OpenAi {
            "after"
        } else {
            "after_id"
        }),
        times: Times::None,
        landing: Landing::Pages,
        buckets: None,
        span: Duration::zero(),
        beta: None,
    }
}

/// Anthropic's endpoints: the usage report (every dimension the `usage` table keeps), the cost
/// report (by workspace and description: every cause reconciliation names), the workspace list
/// (archived and default ones too: they own past usage) and the key list; the Analytics usage
/// and cost queries when `analytics`.
pub fn anthropic(width: BucketWidth, analytics: bool) -> Vec<Endpoint> {
    let mut out = vec![
        list(
            Provider::Anthropic,
            SourceFormat::AnthropicWorkspaces,
            "/v1/organizations/workspaces",
            &[
                ("limit", "1000"),
                ("include_archived", "true"),
                ("include_default", "true"),
            ],
        ),
        list(
            Provider::Anthropic,
            SourceFormat::AnthropicApiKeys,
            "/v1/organizations/api_keys",
            &[("limit", "1000")],
        ),
        report(
            Provider::Anthropic,
            SourceFormat::AnthropicUsageApi,
            "/v1/organizations/usage_report/messages",
            Times::Rfc3339,
            width,
            &[
                "api_key_id",
                "workspace_id",
                "model",
                "service_tier",
                "context_window",
                "inference_geo",
            ],
        ),
        report(
            Provider::Anthropic,
            SourceFormat::AnthropicCostApi,
            "/v1/organizations/cost_report",
            Times::Rfc3339,
            BucketWidth::Day,
            &["workspace_id", "description"],
        ),
    ];
    if analytics {
        out.push(analytics_query(
            SourceFormat::AnthropicAnalyticsUsage,
            "/v1/organizations/analytics/usage",
            width,
            &[
                "workspace_id",
                "api_key_id",
                "model",
                "service_tier",
                "context_window",
            ],
        ));
        out.push(analytics_query(
            SourceFormat::AnthropicAnalyticsCost,
            "/v1/organizations/analytics/cost",
            BucketWidth::Day,
            // What the cost table keeps, read from the parser's own list: a dimension it has
            // no column for would make the query refused (five count; the last two do not).
            &crate::sources::anthropic::analytics::COST_DIMENSIONS,
        ));
    }
    out
}

/// An Analytics query: rows paged (`limit` 1000), time-ordered so a page is stable, at most
/// 31 days (24 h of `1m`) per query. At most five dimensions count (`cost_type`/`token_type`
/// do not): usage by workspace, key, model, tier and context window (so `inference_geo` is not
/// grouped: such rows are priced at the global rate; the legacy report has every dimension),
/// cost by every dimension the cost table keeps (workspace, model, tier, context window, geo;
/// it has no key).
fn analytics_query(
    format: SourceFormat,
    path: &str,
    width: BucketWidth,
    dims: &[&str],
) -> Endpoint {
    let mut query = pairs(&[
        ("time_bucket_width", width.as_str()),
        ("limit", "1000"),
        ("order_by", "time"),
        ("order", "asc"),
    ]);
    query.extend(group_by(dims));
    Endpoint {
        provider: Provider::Anthropic,
        format,
        path: path.into(),
        query,
        paging: Paging::NextPage,
        times: Times::Rfc3339,
        landing: Landing::Query,
        buckets: None,
        span: if width == BucketWidth::Minute {
            Duration::days(1)
        } else {
            Duration::days(31)
        },
        beta: Some(ANALYTICS_BETA),
    }
}

/// The `group_by[]` of an OpenAI usage endpoint (see the module header).
fn openai_dims(e: OpenAiEndpoint) -> &'static [&'static str] {
    use OpenAiEndpoint as E;
    match e {
        E::Completions => &[
            "project_id",
            "user_id",
            "api_key_id",
            "model",
            "batch",
            "service_tier",
        ],
        E::Embeddings | E::Moderations | E::AudioSpeeches | E::AudioTranscriptions => {
            &["project_id", "user_id", "api_key_id", "model"]
        }
        E::Images => &[
            "project_id",
            "user_id",
            "api_key_id",
            "model",
            "size",
            "source",
        ],
        E::VectorStores | E::CodeInterpreterSessions | E::FileSearchCalls | E::WebSearchCalls => {
            &["project_id"]
        }
    }
}

/// The URL path segment of an OpenAI usage endpoint.
fn openai_path(e: OpenAiEndpoint) -> &'static str {
    use OpenAiEndpoint as E;
    match e {
        E::Completions => "completions",
        E::Embeddings => "embeddings",
        E::Moderations => "moderations",
        E::Images => "images",
        E::AudioSpeeches => "audio_speeches",
        E::AudioTranscriptions => "audio_transcriptions",
        E::VectorStores => "vector_stores",
        E::CodeInterpreterSessions => "code_interpreter_sessions",
        E::FileSearchCalls => "file_search_calls",
        E::WebSearchCalls => "web_search_calls",
    }
}

/// OpenAI's endpoints: the projects (archived too), every usage endpoint, the Costs API (by
/// project and line item, daily: its only width). Project keys are listed per project, once
/// the projects are known ([`openai_project_keys`]).
pub fn openai(width: BucketWidth) -> Vec<Endpoint> {
    let mut out = vec![list(
        Provider::OpenAi,
        SourceFormat::OpenAiProjects,
        "/v1/organization/projects",
        &[("limit", "100"), ("include_archived", "true")],
    )];
    for e in OpenAiEndpoint::ALL {
        out.push(report(
            Provider::OpenAi,
            SourceFormat::OpenAiUsage(e),
            &format!("/v1/organization/usage/{}", openai_path(e)),
            Times::Unix,
            width,
            openai_dims(e),
        ));
    }
    out.push(report(
        Provider::OpenAi,
        SourceFormat::OpenAiCosts,
        "/v1/organization/costs",
        Times::Unix,
        BucketWidth::Day,
        &["project_id", "line_item"],
    ));
    out
}

/// The key list of one OpenAI project.
pub fn openai_project_keys(project_id: &str) -> Endpoint {
    list(
        Provider::OpenAi,
        SourceFormat::OpenAiProjectApiKeys,
        &format!("/v1/organization/projects/{project_id}/api_keys"),
        &[("limit", "100")],
    )
}

/// `[from, to)` cut into windows of at most `span`, each starting where the last ended.
pub fn windows(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    span: Duration,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut s = from;
    while s < to {
        let e = (s + span).min(to);
        out.push((s, e));
        s = e;
    }
    out
}

/// `t` floored to a multiple of `width` (UTC).
pub fn floor(t: DateTime<Utc>, width: BucketWidth) -> DateTime<Utc> {
    let w = width.seconds();
    DateTime::from_timestamp(t.timestamp().div_euclid(w) * w, 0).expect("in range")
}
