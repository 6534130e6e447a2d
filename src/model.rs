//! Canonical, provider-neutral rows and the closed vocabularies they use.
//!
//! Owns: the in-memory shape of one usage row, one cost row, one workspace and one API key,
//! and the validation of enumerated values (service tier, context window, inference geo…).
//! Must not: read files, know about Parquet, or price anything. Token counts are `u64`,
//! money is `rust_decimal::Decimal`; no float ever holds either.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use crate::vocab::Provider;

/// Width of a usage bucket, as exported by the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BucketWidth {
    Minute,
    Hour,
    Day,
}

impl BucketWidth {
    pub fn from_seconds(secs: i64) -> Option<Self> {
        match secs {
            60 => Some(Self::Minute),
            3600 => Some(Self::Hour),
            86400 => Some(Self::Day),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "1m",
            Self::Hour => "1h",
            Self::Day => "1d",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "1m" => Some(Self::Minute),
            "1h" => Some(Self::Hour),
            "1d" => Some(Self::Day),
            _ => None,
        }
    }
    pub fn seconds(self) -> i64 {
        match self {
            Self::Minute => 60,
            Self::Hour => 3600,
            Self::Day => 86400,
        }
    }
}

/// Where a row came from. Also decides precedence: see [`SourceFamily`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceFormat {
    /// `GET /v1/organizations/usage_report/messages` pages.
    AnthropicUsageApi,
    /// `GET /v1/organizations/cost_report` pages.
    AnthropicCostApi,
    /// A whole `GET /v1/organizations/analytics/cost` query: its parameters and every page
    /// (`sources::anthropic::analytics`; the envelope `tokenledger pull` writes).
    AnthropicAnalyticsCost,
    /// A whole `GET /v1/organizations/analytics/usage` query, the same envelope.
    AnthropicAnalyticsUsage,
    /// Console "Usage" CSV export (either header generation).
    AnthropicConsoleUsageCsv,
    /// Console "Cost" CSV export (dollars, display model names): a provider-side figure.
    AnthropicConsoleCostCsv,
    /// `GET /v1/organizations/workspaces`.
    AnthropicWorkspaces,
    /// `GET /v1/organizations/api_keys`.
    AnthropicApiKeys,
    /// Our credits CSV: `lot_id,provider,kind,purchased_at,amount_usd[,expires_at]`.
    CreditLotsCsv,
    /// Console balances as seen: `as_of,provider,balance_usd`.
    BalanceSnapshotsCsv,
    /// Stripe invoice objects (the API's or the dashboard's JSON), one or many per file.
    StripeInvoice,
    /// Our invoice CSV for providers without Stripe: one row per invoice line.
    InvoiceCsv,
    /// `GET /organization/costs` pages (OpenAI).
    OpenAiCosts,
    /// `GET /organization/projects` (OpenAI): the workspaces.
    OpenAiProjects,
    /// `GET /organization/projects/{id}/api_keys` (OpenAI): the API keys.
    OpenAiProjectApiKeys,
    /// `GET /organization/usage/{endpoint}` pages (OpenAI), one format per endpoint: each
    /// endpoint's pages restate only that endpoint's usage ([`Lane`]).
    OpenAiUsage(OpenAiEndpoint),
}

/// The endpoints of OpenAI's organization Usage API (`/organization/usage/{name}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpenAiEndpoint {
    Completions,
    Embeddings,
    Moderations,
    Images,
    AudioSpeeches,
    AudioTranscriptions,
    VectorStores,
    CodeInterpreterSessions,
    FileSearchCalls,
    WebSearchCalls,
}

impl OpenAiEndpoint {
    pub const ALL: [OpenAiEndpoint; 10] = [
        Self::Completions,
        Self::Embeddings,
        Self::Moderations,
        Self::Images,
        Self::AudioSpeeches,
        Self::AudioTranscriptions,
        Self::VectorStores,
        Self::CodeInterpreterSessions,
        Self::FileSearchCalls,
        Self::WebSearchCalls,
    ];
    /// The path segment, and the middle of its results' `object`
    /// (`organization.usage.completions.result`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
            Self::Moderations => "moderations",
            Self::Images => "images",
            Self::AudioSpeeches => "audio_speeches",
            Self::AudioTranscriptions => "audio_transcriptions",
            Self::VectorStores => "vector_stores",
            Self::CodeInterpreterSessions => "code_interpreter_sessions",
            Self::FileSearchCalls => "file_search_calls",
            Self::WebSearchCalls => "web_search_calls",
        }
    }
    /// The `source_format` text.
    pub const fn format_name(self) -> &'static str {
        match self {
            Self::Completions => "openai-usage-completions",
            Self::Embeddings => "openai-usage-embeddings",
            Self::Moderations => "openai-usage-moderations",
            Self::Images => "openai-usage-images",
            Self::AudioSpeeches => "openai-usage-audio-speeches",
            Self::AudioTranscriptions => "openai-usage-audio-transcriptions",
            Self::VectorStores => "openai-usage-vector-stores",
            Self::CodeInterpreterSessions => "openai-usage-code-interpreter-sessions",
            Self::FileSearchCalls => "openai-usage-file-search-calls",
            Self::WebSearchCalls => "openai-usage-web-search-calls",
        }
    }
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == s)
    }
    /// The `object` of this endpoint's results (the OpenAPI description's `Usage…Result`:
    /// search calls say `file_searches` / `web_searches`, not the path's name).
    pub const fn result_object(self) -> &'static str {
        match self {
            Self::Completions => "organization.usage.completions.result",
            Self::Embeddings => "organization.usage.embeddings.result",
            Self::Moderations => "organization.usage.moderations.result",
            Self::Images => "organization.usage.images.result",
            Self::AudioSpeeches => "organization.usage.audio_speeches.result",
            Self::AudioTranscriptions => "organization.usage.audio_transcriptions.result",
            Self::VectorStores => "organization.usage.vector_stores.result",
            Self::CodeInterpreterSessions => "organization.usage.code_interpreter_sessions.result",
            Self::FileSearchCalls => "organization.usage.file_searches.result",
            Self::WebSearchCalls => "organization.usage.web_searches.result",
        }
    }
}

/// Where a coverage interval lives: its family (which decides precedence) and a scope within
/// the family. Intervals of one lane restate each other; lanes of one family never touch (an
/// OpenAI embeddings page restates embeddings, not completions). Scope 0 is everything but
/// OpenAI's usage endpoints, which are 1 + their index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lane {
    pub family: SourceFamily,
    pub scope: u8,
}

impl SourceFormat {
    pub const ALL: [SourceFormat; 25] = [
        Self::AnthropicUsageApi,
        Self::AnthropicCostApi,
        Self::AnthropicAnalyticsCost,
        Self::AnthropicAnalyticsUsage,
        Self::AnthropicConsoleUsageCsv,
        Self::AnthropicConsoleCostCsv,
        Self::AnthropicWorkspaces,
        Self::AnthropicApiKeys,
        Self::CreditLotsCsv,
        Self::BalanceSnapshotsCsv,
        Self::StripeInvoice,
        Self::InvoiceCsv,
        Self::OpenAiCosts,
        Self::OpenAiProjects,
        Self::OpenAiProjectApiKeys,
        Self::OpenAiUsage(OpenAiEndpoint::Completions),
        Self::OpenAiUsage(OpenAiEndpoint::Embeddings),
        Self::OpenAiUsage(OpenAiEndpoint::Moderations),
        Self::OpenAiUsage(OpenAiEndpoint::Images),
        Self::OpenAiUsage(OpenAiEndpoint::AudioSpeeches),
        Self::OpenAiUsage(OpenAiEndpoint::AudioTranscriptions),
        Self::OpenAiUsage(OpenAiEndpoint::VectorStores),
        Self::OpenAiUsage(OpenAiEndpoint::CodeInterpreterSessions),
        Self::OpenAiUsage(OpenAiEndpoint::FileSearchCalls),
        Self::OpenAiUsage(OpenAiEndpoint::WebSearchCalls),
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AnthropicUsageApi => "anthropic-usage-api",
            Self::AnthropicCostApi => "anthropic-cost-api",
            Self::AnthropicAnalyticsCost => "anthropic-analytics-cost",
            Self::AnthropicAnalyticsUsage => "anthropic-analytics-usage",
            Self::AnthropicConsoleUsageCsv => "anthropic-console-usage-csv",
            Self::AnthropicConsoleCostCsv => "anthropic-console-cost-csv",
            Self::AnthropicWorkspaces => "anthropic-workspaces",
            Self::AnthropicApiKeys => "anthropic-api-keys",
            Self::CreditLotsCsv => "credit-lots-csv",
            Self::BalanceSnapshotsCsv => "balance-snapshots-csv",
            Self::StripeInvoice => "stripe-invoice",
            Self::InvoiceCsv => "invoice-csv",
            Self::OpenAiCosts => "openai-costs",
            Self::OpenAiProjects => "openai-projects",
            Self::OpenAiProjectApiKeys => "openai-project-api-keys",
            Self::OpenAiUsage(e) => e.format_name(),
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
    /// The provider whose format this is; `None` for the provider-neutral ledger formats,
    /// whose rows name their provider.
    pub fn provider(self) -> Option<Provider> {
        match self {
            Self::AnthropicUsageApi
            | Self::AnthropicCostApi
            | Self::AnthropicAnalyticsCost
            | Self::AnthropicAnalyticsUsage
            | Self::AnthropicConsoleUsageCsv
            | Self::AnthropicConsoleCostCsv
            | Self::AnthropicWorkspaces
            | Self::AnthropicApiKeys => Some(Provider::Anthropic),
            Self::OpenAiCosts
            | Self::OpenAiProjects
            | Self::OpenAiProjectApiKeys
            | Self::OpenAiUsage(_) => Some(Provider::OpenAi),
            Self::CreditLotsCsv
            | Self::BalanceSnapshotsCsv
            | Self::StripeInvoice
            | Self::InvoiceCsv => None,
        }
    }
    /// Precedence family for usage rows; `None` for non-usage formats.
    pub fn family(self) -> Option<SourceFamily> {
        match self {
            Self::AnthropicUsageApi
            | Self::AnthropicCostApi
            | Self::OpenAiCosts
            | Self::OpenAiUsage(_) => Some(SourceFamily::Api),
            Self::AnthropicAnalyticsUsage | Self::AnthropicAnalyticsCost => {
                Some(SourceFamily::Analytics)
            }
            Self::AnthropicConsoleUsageCsv | Self::AnthropicConsoleCostCsv => {
                Some(SourceFamily::Export)
            }
            _ => None,
        }
    }
    /// The coverage lane of this format's rows (`Api` for a format without a family).
    pub fn lane(self) -> Lane {
        let scope = match self {
            Self::OpenAiUsage(e) => {
                1 + OpenAiEndpoint::ALL
                    .iter()
                    .position(|x| *x == e)
                    .expect("every endpoint is in ALL") as u8
            }
            _ => 0,
        };
        Lane {
            family: self.family().unwrap_or(SourceFamily::Api),
            scope,
        }
    }
}

/// The families of sources that can report the same interval. Which one owns an interval two
/// of them cover is the [`Precedence`]; within a family the most recently ingested export of a
/// bucket wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceFamily {
    /// A provider's report pages (`usage_report`, `cost_report`: Anthropic calls them legacy
    /// since 2026-10-29), pulled or saved by hand.
    Api,
    /// Whole queries of Anthropic's Usage & Cost Analytics API.
    Analytics,
    /// A CSV a person exported from the provider's web console.
    Export,
}

impl SourceFamily {
    pub const ALL: [SourceFamily; 3] = [Self::Api, Self::Analytics, Self::Export];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Analytics => "analytics",
            Self::Export => "export",
        }
    }
    /// Also the names versions before 0.2 wrote into `usage_coverage.family`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "api" | "admin_api" => Some(Self::Api),
            "analytics" => Some(Self::Analytics),
            "export" | "console_csv" => Some(Self::Export),
            _ => None,
        }
    }
}

/// Which family owns an interval that several cover (`[ingest] precedence`, first wins; the
/// default `analytics > api > export`): the owner's rows count, the others are kept out of
/// every total (never both, never neither). A lake keeps the precedence it was built with
/// (`_tokenledger/precedence`): which rows were kept depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precedence(pub [SourceFamily; 3]);

impl Default for Precedence {
    fn default() -> Self {
        Self([
            SourceFamily::Analytics,
            SourceFamily::Api,
            SourceFamily::Export,
        ])
    }
}

impl Precedence {
    /// From the config's list: every family once, first wins.
    pub fn parse(names: &[String]) -> Result<Self, String> {
        let mut out = Vec::new();
        for n in names {
            let f = SourceFamily::parse(n).ok_or_else(|| {
                format!("unknown source family {n:?} (one of: analytics, api, export)")
            })?;
            if out.contains(&f) {
                return Err(format!("source family {n:?} is listed twice"));
            }
            out.push(f);
        }
        out.try_into().map(Self).map_err(|v: Vec<SourceFamily>| {
            format!(
                "precedence lists {} families; list all three (analytics, api, export) in order",
                v.len()
            )
        })
    }
    /// 0 for the family that wins over every other.
    pub fn rank(&self, f: SourceFamily) -> usize {
        self.0.iter().position(|&x| x == f).unwrap_or(usize::MAX)
    }
    /// The families that win over `f`.
    pub fn above(&self, f: SourceFamily) -> impl Iterator<Item = SourceFamily> + '_ {
        let r = self.rank(f);
        self.0.iter().copied().filter(move |&x| self.rank(x) < r)
    }
    /// The families `f` wins over.
    pub fn below(&self, f: SourceFamily) -> impl Iterator<Item = SourceFamily> + '_ {
        let r = self.rank(f);
        self.0.iter().copied().filter(move |&x| self.rank(x) > r)
    }
    /// `analytics > api > export`.
    pub fn text(&self) -> String {
        self.0.map(|f| f.as_str()).join(" > ")
    }
}

pub const SERVICE_TIERS: &[&str] = &[
    "standard",
    "batch",
    "priority",
    "priority_on_demand",
    "flex",
    "flex_discount",
];
pub const CONTEXT_WINDOWS: &[&str] = &["0-200k", "200k-1M"];
pub const INFERENCE_GEOS: &[&str] = &["global", "us", "not_available"];
pub const COST_TYPES: &[&str] = &["tokens", "web_search", "code_execution", "session_usage"];
pub const TOKEN_TYPES: &[&str] = &[
    "uncached_input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation.ephemeral_1h_input_tokens",
    "cache_creation.ephemeral_5m_input_tokens",
];
pub const API_KEY_STATUSES: &[&str] = &["active", "inactive", "archived"];

/// Name the lake gives the default workspace (its id is null in every export).
pub const DEFAULT_WORKSPACE_NAME: &str = "Default";

/// Checks `value` against a closed vocabulary; the error names the field and the choices.
pub fn check_enum(field: &str, value: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "unknown {field} '{value}' (expected one of: {})",
            allowed.join(", ")
        ))
    }
}

/// Counts of one usage row. The token classes are additive: an input token is in exactly one
/// of uncached input, a cache write or a cache read (OpenAI's `input_tokens` includes cached
/// and cache-write tokens; its parser splits them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub uncached_input: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_read: u64,
    pub output: u64,
    /// OpenAI's 30-minute and 12-hour cache writes.
    pub cache_write_30m: u64,
    pub cache_write_12h: u64,
    pub web_search_requests: u64,
    /// Usage counted in another unit than tokens (OpenAI images, characters, seconds, bytes,
    /// sessions, file search calls): the unit's name and the quantity.
    pub unit: Option<&'static str>,
    pub unit_quantity: u64,
    /// OpenAI's per-modality detail, where reported: audio input and output tokens, image
    /// input and output tokens ([`MODALITY_COLUMNS`] order). Parts of the classes above, never
    /// added to them; a row with audio tokens is UNPRICED (the book has no audio rates).
    pub modality: [u64; 4],
    /// Model requests in the bucket where the source counts them (the Analytics API's
    /// `requests`, OpenAI's `num_model_requests`); `None` where it does not (the legacy usage
    /// report, the Console CSV): requests per minute are then unknown, never 0.
    pub requests: Option<u64>,
}

/// The usage columns of [`Tokens::modality`].
pub const MODALITY_COLUMNS: [&str; 4] = [
    "input_audio_tokens",
    "output_audio_tokens",
    "input_image_tokens",
    "output_image_tokens",
];

impl Tokens {
    /// The counts in the lake's column order ([`crate::vocab::COUNT_COLUMNS`]).
    pub fn counts(&self) -> [u64; crate::vocab::N_COUNTS] {
        [
            self.uncached_input,
            self.cache_write_5m,
            self.cache_write_1h,
            self.cache_read,
            self.output,
            self.cache_write_30m,
            self.cache_write_12h,
            self.web_search_requests,
        ]
    }
}

/// One row of the canonical usage table. Its text borrows from the parsed input where it can
/// (`'a`: an Admin API page held in memory), or owns it (`UsageRow<'static>`).
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow<'a> {
    pub bucket_start: DateTime<Utc>,
    pub bucket_width: BucketWidth,
    pub provider: Provider,
    pub workspace_id: Option<Cow<'a, str>>,
    pub workspace_name: Option<Cow<'a, str>>,
    pub api_key_id: Option<Cow<'a, str>>,
    pub api_key_name: Option<Cow<'a, str>>,
    pub model: Option<Cow<'a, str>>,
    pub service_tier: Option<Cow<'a, str>>,
    pub context_window: Option<Cow<'a, str>>,
    pub inference_geo: Option<Cow<'a, str>>,
    pub speed: Option<Cow<'a, str>>,
    pub account_id: Option<Cow<'a, str>>,
    pub service_account_id: Option<Cow<'a, str>>,
    /// The Analytics API's `product` (`messages_api`, `claude_code`, …); null elsewhere.
    pub product: Option<Cow<'a, str>>,
    /// The Analytics API's `agent_id` (a managed agent); null elsewhere.
    pub agent_id: Option<Cow<'a, str>>,
    /// Who spent it (Analytics API `actor`): `user_actor`, `service_account_actor`,
    /// `api_actor` or `federated_actor`; null elsewhere or when no actor is known.
    pub actor_type: Option<Cow<'a, str>>,
    /// The id the actor's type names (a user id, a service account id, an API key id,
    /// `provider:subject` of a federated caller).
    pub actor_id: Option<Cow<'a, str>>,
    /// A user actor's email, only where the row has one.
    pub actor_email: Option<Cow<'a, str>>,
    pub tokens: Tokens,
    /// True when the source had one undivided cache-write column (old Console CSV) and the
    /// lake booked it as 5-minute writes.
    pub cache_write_assumed_5m: bool,
    pub source_format: SourceFormat,
    /// Line (CSV) or ordinal of the result (JSON) in its source file, for lineage.
    pub source_row: u64,
}

impl UsageRow<'_> {
    /// The dimension values of the row, in the lake's column order (workspace id and name, key
    /// id and name, model, tier, context window, geo, speed, account, service account,
    /// product, agent, actor type, id and email). Two rows of one bucket with the same
    /// dimensions are the same row.
    pub fn dimensions(&self) -> [Option<&str>; 16] {
        [
            self.workspace_id.as_deref(),
            self.workspace_name.as_deref(),
            self.api_key_id.as_deref(),
            self.api_key_name.as_deref(),
            self.model.as_deref(),
            self.service_tier.as_deref(),
            self.context_window.as_deref(),
            self.inference_geo.as_deref(),
            self.speed.as_deref(),
            self.account_id.as_deref(),
            self.service_account_id.as_deref(),
            self.product.as_deref(),
            self.agent_id.as_deref(),
            self.actor_type.as_deref(),
            self.actor_id.as_deref(),
            self.actor_email.as_deref(),
        ]
    }
    /// The row with its text owned (kept beyond its input).
    pub fn into_owned(self) -> UsageRow<'static> {
        let own = |v: Option<Cow<'_, str>>| v.map(|s| Cow::Owned(s.into_owned()));
        UsageRow {
            workspace_id: own(self.workspace_id),
            workspace_name: own(self.workspace_name),
            api_key_id: own(self.api_key_id),
            api_key_name: own(self.api_key_name),
            model: own(self.model),
            service_tier: own(self.service_tier),
            context_window: own(self.context_window),
            inference_geo: own(self.inference_geo),
            speed: own(self.speed),
            account_id: own(self.account_id),
            service_account_id: own(self.service_account_id),
            product: own(self.product),
            agent_id: own(self.agent_id),
            actor_type: own(self.actor_type),
            actor_id: own(self.actor_id),
            actor_email: own(self.actor_email),
            bucket_start: self.bucket_start,
            bucket_width: self.bucket_width,
            provider: self.provider,
            tokens: self.tokens,
            cache_write_assumed_5m: self.cache_write_assumed_5m,
            source_format: self.source_format,
            source_row: self.source_row,
        }
    }
    /// The bucket's start and end in µs since the epoch (integer arithmetic: this runs once
    /// per staged row).
    pub fn bucket_micros(&self) -> (i64, i64) {
        let start = self.bucket_start.timestamp_micros();
        (start, start + self.bucket_width.seconds() * 1_000_000)
    }
    pub fn bucket_end(&self) -> DateTime<Utc> {
        self.bucket_start + chrono::TimeDelta::seconds(self.bucket_width.seconds())
    }
}

/// One row of the provider's cost report. `amount` is in the currency's major unit (dollars),
/// converted exactly from the export's cents.
#[derive(Debug, Clone, PartialEq)]
pub struct CostRow {
    pub bucket_start: DateTime<Utc>,
    pub bucket_end: DateTime<Utc>,
    pub provider: Provider,
    pub workspace_id: Option<String>,
    pub workspace_name: Option<String>,
    pub description: Option<String>,
    /// `None`: a page not grouped by `description` — the row is the day's (or the day ×
    /// workspace's) total, its charge unknown.
    pub cost_type: Option<String>,
    pub model: Option<String>,
    pub token_type: Option<String>,
    pub service_tier: Option<String>,
    pub context_window: Option<String>,
    pub inference_geo: Option<String>,
    pub currency: String,
    pub amount: Decimal,
    /// The amount exactly as the export wrote it (cents, as a string), for lineage.
    pub amount_raw: String,
    /// The same charge at list price, before discounts (the Analytics cost report's
    /// `list_amount`); `None` where the export has none (the legacy cost report).
    pub list_amount: Option<Decimal>,
    pub source_format: SourceFormat,
    pub source_row: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    pub provider: Provider,
    pub id: String,
    pub name: String,
    pub created_at: Option<DateTime<Utc>>,
    pub archived_at: Option<DateTime<Utc>>,
    pub display_color: Option<String>,
    /// The workspace's `tags` (`team`, `env`, …) as a JSON object text with sorted keys,
    /// `{"env":"prod","team":"search"}`; `[[team]] workspace_tags` selects workspaces by them.
    pub tags: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub provider: Provider,
    pub id: String,
    pub name: String,
    pub workspace_id: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub created_by_id: Option<String>,
    /// Already masked by the provider (`sk-ant-api03-R2D...igAA`); the full key never exists here.
    pub partial_key_hint: Option<String>,
    pub status: Option<String>,
    /// When the key stops working, if it was created with an expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// First day of the month of `t`, as `YYYY-MM` (the lake's partition key).
pub fn month_key(t: DateTime<Utc>) -> String {
    t.format("%Y-%m").to_string()
}

/// An ingest id (`20261207T031500123Z-9f3a`: the ingest's UTC start to the millisecond, then a
/// random suffix): sortable by time, unique enough for one data dir (which is locked).
pub fn ingest_id(now: DateTime<Utc>, suffix: u16) -> String {
    format!("{}-{suffix:04x}", now.format(INGEST_ID_TIME))
}

/// The time part of an ingest id.
const INGEST_ID_TIME: &str = "%Y%m%dT%H%M%S%3fZ";

/// When the ingest of an id started (`None`: not an ingest id).
pub fn ingest_id_time(id: &str) -> Option<DateTime<Utc>> {
    let stamp = id.get(..19)?;
    chrono::NaiveDateTime::parse_from_str(stamp, INGEST_ID_TIME)
        .ok()
        .map(|t| t.and_utc())
}

pub fn day_start(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

/// Parses an RFC 3339 timestamp into UTC, with an error that quotes the value.
pub fn parse_ts(field: &str, s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{field} '{s}' is not an RFC 3339 timestamp ({e})"))
}

/// What a credit lot is (the `kind` column of the credits CSV).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditKind {
    /// Bought in the Console; expires one year after purchase.
    Prepaid,
    /// A prepaid purchase made by auto-reload; expires one year after purchase.
    AutoReload,
    /// Granted; its expiry must be stated.
    Promotional,
    /// A subscription's programmatic credit: `amount` per billing cycle (from `purchased_at`,
    /// monthly), unused credit lapses at cycle end; `expires_at` ends the subscription.
    Monthly,
}

impl CreditKind {
    pub const ALL: [CreditKind; 4] = [
        Self::Prepaid,
        Self::AutoReload,
        Self::Promotional,
        Self::Monthly,
    ];
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Prepaid => "prepaid",
            Self::AutoReload => "auto_reload",
            Self::Promotional => "promotional",
            Self::Monthly => "monthly",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One purchase or grant of credit. Dates are UTC days: the lot is usable on the days
/// `purchased_at <= day < expires_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreditLot {
    pub lot_id: String,
    pub provider: Provider,
    pub kind: CreditKind,
    pub purchased_at: NaiveDate,
    /// Dollars (for `monthly`: per cycle).
    pub amount: Decimal,
    /// Stated, or the rule's (prepaid: a year after purchase); `None` only for a monthly
    /// subscription that has not ended.
    pub expires_at: Option<NaiveDate>,
    /// Whether `expires_at` was in the file (else the one-year rule made it).
    pub expiry_stated: bool,
    pub source_row: u64,
}

/// A prepaid lot's expiry: one year after purchase, a 29 February purchase on 28 February.
pub fn one_year_after(d: NaiveDate) -> NaiveDate {
    d.checked_add_months(chrono::Months::new(12))
        .expect("dates in the plausible window have a year after them")
}

/// The balance the provider's Console showed on a day (an assertion on the ledger).
#[derive(Debug, Clone, PartialEq)]
pub struct BalanceSnapshot {
    pub as_of: NaiveDate,
    pub provider: Provider,
    pub balance: Decimal,
    pub source_row: u64,
}

/// One invoice, amounts in dollars, exact (Stripe's integer cents / 100).
#[derive(Debug, Clone, PartialEq)]
pub struct Invoice {
    pub provider: Provider,
    pub number: String,
    pub invoice_id: Option<String>,
    pub currency: String,
    /// The period the invoice bills, `[start, end)`.
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub subtotal: Decimal,
    pub discount: Decimal,
    pub tax: Decimal,
    pub total: Decimal,
    /// The customer balance before the invoice (negative: a credit the customer holds).
    pub starting_balance: Decimal,
    pub amount_due: Decimal,
    pub lines: Vec<InvoiceLine>,
    /// Whether `lines` are all the invoice's lines (Stripe pages long line lists).
    pub lines_complete: bool,
    /// Who issued it, as the invoice says (Stripe `account_name`: "Anthropic, PBC").
    pub issuer_name: Option<String>,
    /// When it was issued (Stripe `status_transitions.finalized_at`, else `created`; the CSV's
    /// `issued_at`).
    pub issued_at: Option<DateTime<Utc>>,
    /// When payment is due (Stripe `due_date`; null when charged automatically).
    pub due_at: Option<DateTime<Utc>>,
    /// The issuer's status as sent (Stripe `open`, `paid`, `uncollectible`; the CSV's `status`).
    pub status: Option<String>,
    /// Stripe `collection_method`: `charge_automatically` or `send_invoice`.
    pub collection_method: Option<String>,
    pub source_row: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceLine {
    pub line_no: u64,
    pub description: Option<String>,
    pub amount: Decimal,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub quantity: Option<i64>,
}

impl Invoice {
    /// Negative lines: credits applied on the invoice (promotional or prepaid credit).
    pub fn credits_applied(&self) -> Decimal {
        self.lines
            .iter()
            .map(|l| l.amount)
            .filter(|a| a.is_sign_negative())
            .sum()
    }
}

/// What a credits or invoice file holds (small, keyed: a later file replaces by key).
#[derive(Debug, Clone, PartialEq)]
pub enum LedgerItem {
    Lot(CreditLot),
    Snapshot(BalanceSnapshot),
    Invoice(Box<Invoice>),
}
