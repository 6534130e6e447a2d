//! The optional config file (`tokenledger.toml`).
//!
//! Owns: reading and validating the file; resolving relative paths against its directory.
//! Must not: have side effects. The job runs with no config at all.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::pricing::BookFile;

/// `tokenledger.toml`. Unknown keys are an error, so a typo is not silently ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The lake (overridden by `--data-dir` / `TOKENLEDGER_DATA_DIR`).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Export files or directories `run` ingests.
    #[serde(default)]
    pub inputs: Vec<PathBuf>,
    /// The business timezone (IANA, e.g. "Europe/Berlin"; default UTC): the day and month an
    /// hourly or finer bucket belongs to in every report, series, alert and month close, by its
    /// start in that zone (daily buckets keep their UTC date). The credits ledger and the
    /// reconciliation stay on the provider's UTC days.
    #[serde(default, deserialize_with = "timezone")]
    pub timezone: Option<chrono_tz::Tz>,
    /// Usage or cost data whose newest day is more than this many days before the as-of day
    /// is a `stale_data` finding (default 3: the providers' data lags hours, not days).
    #[serde(default)]
    pub stale_after_days: Option<u32>,
    /// Price-book overrides, in the same shape as the default book (`[[prices.model]]`, …).
    #[serde(default)]
    pub prices: BookFile,
    /// A separate price-book override file (same shape); its rows win over `[prices]` too.
    #[serde(default)]
    pub price_file: Option<PathBuf>,
    /// Teams for chargeback: each names the workspaces and API keys it pays for.
    #[serde(default, rename = "team")]
    pub teams: Vec<Team>,
    /// Plausibility limits of ingested exports.
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub providers: ProvidersConfig,
    /// Reconciliation settings.
    #[serde(default)]
    pub reconcile: ReconcileConfig,
    #[serde(default)]
    pub credits: CreditsConfig,
    #[serde(default)]
    pub anomalies: AnomaliesConfig,
    #[serde(default)]
    pub mail: MailConfig,
    /// `[export]`: the FOCUS export.
    #[serde(default)]
    pub export: ExportConfig,
    /// `[limits.<provider>]`: the usage tier, the monthly spend cap, rate limits per model
    /// class and per workspace, over the dated default table (`src/limits/anthropic.toml`).
    #[serde(default)]
    pub limits: std::collections::BTreeMap<String, crate::limits::table::Overrides>,
    /// `[lake]`: how the lake is kept.
    #[serde(default)]
    pub lake: LakeConfig,
}

/// `[lake]`: `delta = true` makes every table a Delta Lake table (a `_delta_log` per table,
/// committed with each change; an existing lake is adopted on the next command). Preview: off
/// by default while the Delta mode settles (see the README); once a lake is Delta it stays so.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    #[serde(default)]
    pub delta: bool,
    /// The local working copy of a lake on object storage (`data_dir = "s3://…"`); default
    /// `$XDG_CACHE_HOME/tokenledger/<scheme>/<bucket>/<prefix>`.
    pub cache_dir: Option<PathBuf>,
}

/// `[export]`: where the month close writes the FOCUS 1.4 export of a final month, and the
/// billing account each provider's FOCUS rows name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// The month close writes `<focus_dir>/<YYYY-MM>/` when a month becomes final (relative to
    /// the config file); unset: only `tokenledger export focus` writes one.
    pub focus_dir: Option<PathBuf>,
    /// `parquet` (default) or `csv`.
    pub focus_format: Option<String>,
    /// `[export.billing_accounts.anthropic]` `id` (your organization id) and `name`: FOCUS's
    /// BillingAccountId/Name (default: the provider's name as the id, no name).
    #[serde(default)]
    pub billing_accounts: std::collections::BTreeMap<String, BillingAccount>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingAccount {
    pub id: String,
    pub name: Option<String>,
}

/// `[anomalies]`: what alerts (detection thresholds have defaults; amounts are strings).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomaliesConfig {
    /// A finding alerts only with at least this much impact (default "50").
    #[serde(default, deserialize_with = "money")]
    pub min_impact_usd: Option<crate::money::Money>,
    /// "low", "medium" or "high" (default "low").
    pub min_severity: Option<String>,
    /// Robust z-score a spike must reach (default 6) and its ratio to the usual (default 2.5).
    pub min_score: Option<f64>,
    pub min_ratio: Option<f64>,
    /// Days of history before a series can spike (default 14).
    pub min_history_days: Option<u32>,
    /// New keys, new models, reactivations and bursts under this are not findings ("20").
    #[serde(default, deserialize_with = "money")]
    pub floor_usd: Option<crate::money::Money>,
    /// Monthly limits: `org = "10000"`, or a workspace id or name = dollars.
    #[serde(default)]
    pub limits: std::collections::BTreeMap<String, String>,
    /// An incident (or a credit lot's amount at risk) alerted before is alerted again, as an
    /// update, each time its amount reaches another multiple of this factor ("2": doubled).
    pub regrow_factor: Option<String>,
    /// A minute at or above this percentage of a rate limit is a finding (default 80).
    pub rate_limit_pct: Option<u32>,
    /// Rate-limit headroom looks at this many days of data, ending with the newest (default 7).
    pub rate_limit_days: Option<u32>,
}

/// `[credits]`: when the ledger's findings fire, and the auto-reload configured at the provider
/// (amounts as strings, like prices).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditsConfig {
    /// Lots expiring within these many days with money left are findings (default 60, 30, 7).
    pub horizons: Option<Vec<u32>>,
    /// A runway shorter than this many days is a finding (default 30).
    pub runway_min_days: Option<u32>,
    /// More auto-reloads than this in one day is a finding (default 2).
    pub max_reloads_per_day: Option<u32>,
    #[serde(default, deserialize_with = "money")]
    pub auto_reload_threshold_usd: Option<crate::money::Money>,
    #[serde(default, deserialize_with = "money")]
    pub auto_reload_amount_usd: Option<crate::money::Money>,
}

/// `[reconcile]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileConfig {
    /// Differences up to this many dollars per line count as matched (default "0.005").
    #[serde(default, deserialize_with = "money")]
    pub tolerance: Option<crate::money::Money>,
}

/// An amount of money written as a string (`"0.005"`), exactly.
fn timezone<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<chrono_tz::Tz>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<chrono_tz::Tz>().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "{s:?} is not an IANA time zone (e.g. \"Europe/Berlin\", \"Asia/Tokyo\", \"UTC\")"
        ))
    })
}

fn money<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<crate::money::Money>, D::Error> {
    let s = String::deserialize(d)?;
    let dec = rust_decimal::Decimal::from_str_exact(s.trim())
        .map_err(|e| serde::de::Error::custom(format!("{s:?} is not an exact decimal: {e}")))?;
    crate::money::Money::from_decimal(dec)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// `[providers.*]`: facts about each provider account.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvidersConfig {
    #[serde(default)]
    pub anthropic: ProviderConfig,
    #[serde(default)]
    pub openai: ProviderConfig,
}

/// `[providers.anthropic]` and `[providers.openai]`: what `tokenledger pull` needs of a
/// provider (a provider is pulled by `run` when its table sets `since`), and Anthropic's
/// default workspace id.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The API's base URL (default the public API; `TOKENLEDGER_<PROVIDER>_BASE_URL` wins).
    /// HTTPS, but to a loopback host.
    pub base_url: Option<String>,
    /// The environment variable holding the admin key (default `ANTHROPIC_ADMIN_KEY` /
    /// `OPENAI_ADMIN_KEY`).
    pub admin_key_env: Option<String>,
    /// A file holding the admin key (e.g. systemd's `$CREDENTIALS_DIRECTORY/…`); wins over
    /// the variable.
    pub admin_key_file: Option<PathBuf>,
    /// The first day ever pulled (`YYYY-MM-DD`, UTC).
    pub since: Option<chrono::NaiveDate>,
    /// Days before the last complete day pulled again every night (default 3; 30 for the
    /// Analytics API, whose data is not final for about 30 days).
    pub restate_days: Option<u32>,
    /// Usage bucket width: `1d`, `1h` (default) or `1m`.
    pub bucket_width: Option<String>,
    /// Also pull the Usage & Cost Analytics API (Anthropic; default false while it is beta).
    pub analytics: Option<bool>,
    /// Windows fetched at once (default 2).
    pub concurrency: Option<usize>,
    /// Seconds one request may take, body included (default 60).
    pub timeout_secs: Option<u64>,
    /// Retries of one request after the first attempt (default 4).
    pub max_retries: Option<u32>,
    /// A `retry-after` longer than this many seconds means: give up until the next run
    /// (default 120).
    pub max_wait_secs: Option<u64>,
    /// Days pulled pages stay in `landing/` after they were ingested (default 35: the
    /// Analytics API's 30-day restatement and a month close; raise it to keep an audit trail,
    /// at the cost of hashing them on every ingest).
    pub keep_days: Option<u32>,
    /// Anthropic only: the default workspace's tagged id as the Analytics API reports it (the
    /// legacy reports and the Console call that workspace null / `Default`): rows with this id
    /// are ingested as the default workspace, so both families charge it to the same team. Set
    /// it before the first Analytics ingest; rows ingested before keep the id they had.
    pub default_workspace_id: Option<String>,
}

/// `[ingest]`: what an export may plausibly claim (see `sources::Limits`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// No bucket before this UTC day (default 2023-01-01).
    pub earliest: Option<chrono::NaiveDate>,
    /// No bucket after today + this many days (default 1).
    pub days_ahead: Option<u32>,
    /// A file spanning more days is quarantined whole (default 93).
    pub max_span_days: Option<u32>,
    /// Which family owns a day several cover, first wins (default `["analytics", "api",
    /// "export"]`); fixed for a lake once its first ingest ran.
    pub precedence: Option<Vec<String>>,
}

impl IngestConfig {
    /// The limits in force today.
    pub fn limits(&self, today: chrono::NaiveDate) -> crate::sources::Limits {
        let mut l = crate::sources::Limits::for_today(today);
        if let Some(e) = self.earliest {
            l.earliest = e;
        }
        if let Some(d) = self.days_ahead {
            l.latest = today + chrono::TimeDelta::days(d.into());
        }
        if let Some(m) = self.max_span_days {
            l.max_span_days = m.into();
        }
        l
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    pub name: String,
    /// Shown on the team's report and the finance summary.
    #[serde(default)]
    pub cost_center: Option<String>,
    /// Who receives the team's monthly chargeback mail.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Workspace ids or names (`Default` for the default workspace).
    #[serde(default)]
    pub workspaces: Vec<String>,
    /// Workspaces by their tags instead of by hand: `["team:search"]` is every workspace whose
    /// `team` tag is `search` in the latest workspace list (`KEY:VALUE`; any one matches).
    #[serde(default)]
    pub workspace_tags: Vec<String>,
    /// API key ids or names billed to this team wherever they run; a key's team wins over its
    /// workspace's team.
    #[serde(default)]
    pub api_keys: Vec<String>,
}

/// `[mail]`: who sends, who reads the finance summary, how mail leaves.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// The sender, e.g. `FinOps <finops@example.com>` (default `tokenledger <tokenledger@localhost>`).
    pub from: Option<String>,
    /// Recipients of the finance summary.
    #[serde(default)]
    pub finance: Vec<String>,
    /// Recipients of the nightly alert digest (default: `finance`).
    pub alerts: Option<Vec<String>>,
    /// Absent: messages are written as `.eml` files to the outbox under the data dir.
    pub smtp: Option<SmtpConfig>,
    /// A directory of templates overriding the built-in ones (`reports/` in the repository
    /// holds the defaults: `team.html`, `team.txt`, `finance.html`, `finance.txt`).
    pub templates: Option<PathBuf>,
    /// Days after a month ends during which late provider data may still land (default 3):
    /// the month is provisional until then.
    pub grace_days: Option<u32>,
    /// Workspaces (ids or names) whose cost no team owns is shared: allocated across the teams
    /// in proportion to their own spend, shown as its own line (default: none).
    #[serde(default)]
    pub shared_workspaces: Vec<String>,
    /// Attempts per message in one run before it stays queued for the next (default 3).
    pub attempts: Option<u32>,
    /// Wait before the second attempt, doubled after each (default 2000 ms).
    pub backoff_ms: Option<u64>,
}

/// `[mail.smtp]`. The password only ever comes from the environment or a file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Default 587 (STARTTLS), 465 (implicit TLS), 25 (none).
    pub port: Option<u16>,
    /// "starttls" (required, never opportunistic), "implicit" or "none" (loopback hosts only).
    pub tls: Option<String>,
    pub username: Option<String>,
    /// The environment variable holding the password.
    pub password_env: Option<String>,
    /// A file holding the password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// A PEM file of extra root certificates to trust (a private CA).
    pub ca_file: Option<PathBuf>,
    /// Seconds before a connection or command times out (default 30).
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {} is invalid", path.display())]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    /// A value that parses but means nothing (an unknown severity, an amount that is no number).
    #[error("config {} is invalid: {what}", path.display())]
    Value { path: PathBuf, what: String },
}

impl Config {
    /// Loads `explicit`, or `./tokenledger.toml` when present, or the empty config.
    pub fn load(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => {
                let p = PathBuf::from("tokenledger.toml");
                if !p.exists() {
                    return Ok((Config::default(), None));
                }
                p
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let mut cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            source: Box::new(e),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let rel = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        cfg.inputs = cfg.inputs.into_iter().map(rel).collect();
        cfg.price_file = cfg.price_file.map(rel);
        // `s3://…`, `gs://…`, `az://…`: object storage, not a path to resolve.
        cfg.data_dir =
            cfg.data_dir.map(
                |d| match d.to_str().and_then(crate::lake::remote::is_remote) {
                    Some(_) => d,
                    None => rel(d),
                },
            );
        cfg.lake.cache_dir = cfg.lake.cache_dir.take().map(rel);
        cfg.mail.templates = cfg.mail.templates.map(rel);
        if let Some(smtp) = cfg.mail.smtp.as_mut() {
            smtp.password_file = smtp.password_file.take().map(rel);
            smtp.ca_file = smtp.ca_file.take().map(rel);
        }
        Ok((cfg, Some(path)))
    }
}
